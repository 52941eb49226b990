"""Test processes with chosen properties, created and killed by pid.

    spec = node('root', threads=[b'worker'], children=[
        node('kid', comm=b'a) b (c', stop=True),
        node('dead', zombie=True),
    ])
    with Tree(spec) as tree:
        tree['kid'].pid, tree['kid'].tids, tree['kid'].ppid

Every node is a Python process forked from the one above it (the root is
this file run as a script).  A node applies, in this order: setsid/setpgid,
its comm, forks its children, capability sets, credentials, then starts its
threads (so they inherit all of it) and reports {label, pid, ppid, tids} on a
pipe.  It then sleeps in pause() forever, unless it is a zombie (exits, and
its parent never reaps it), its leader exits alone (leader_exits), or it
execs the small C helper below to sit in vfork() (state D).

The test process is a child subreaper while the tree lives: at exit every
process is SIGKILLed by pid, the orphans come back to us, and we reap each
pid, so no zombie is left behind whatever happened in the test.
"""
import ast
import copy
import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PTRACE_SEIZE = 0x4206
SYS_EXIT = {'x86_64': 60, 'aarch64': 93}.get(os.uname().machine)
CAP_V3 = 0x20080522
CAP_SETGID, CAP_SETUID = 6, 7

_libc = ctypes.CDLL(None, use_errno=True)


def node(label, **props):
    """A process.  Properties: comm (bytes); threads ([comm bytes]);
    children ([node]); thread_children ([node] forked from the first extra
    thread); setsid; setpgid; uid, gid ((real, effective, saved, fs)) with
    uid_caps (the caps kept); caps (dict bset_drop, inh, prm, eff);
    zombie; leader_exits (the main thread exits, the others live on);
    work (seconds of CPU in a reaped child, an exited thread and the main
    thread); trace_parent (True: ptrace the parent from the main thread,
    'thread': from the first extra one); vfork_child (the label of the
    child this process waits for in vfork(), in state D); stop (SIGSTOPped
    by Tree once all are ready)."""
    return dict(label=label, **props)


def _walk(spec):
    yield spec
    for child in list(spec.get('children', ())) + list(spec.get('thread_children', ())):
        yield from _walk(child)
    if spec.get('vfork_child'):
        yield dict(label=spec['vfork_child'])


VFORK_C = r'''
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>

static void report(int fd, const char *label)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "{'label': '%s', 'pid': %d, 'ppid': %d, 'tids': [%d]}\n",
			 label, getpid(), getppid(), getpid());
	if (write(fd, buf, n) != n)
		_exit(1);
}

/* vforker FD LABEL CHILD_LABEL: report, vfork(); the child reports and sleeps,
 * so the parent stays in wait_for_vfork_done(), state D, until it is killed. */
int main(int argc, char **argv)
{
	int fd = atoi(argv[1]);

	report(fd, argv[2]);
	if (vfork() == 0) {
		prctl(PR_SET_NAME, "vfork child");
		report(fd, argv[3]);
		for (;;)
			pause();
	}
	return 0;
}
'''


def build_vforker(directory):
    """Compiles VFORK_C into @directory; returns the program's path."""
    src, exe = os.path.join(directory, 'vforker.c'), os.path.join(directory, 'vforker')
    with open(src, 'w') as f:
        f.write(VFORK_C)
    from . import build_c      # here: this file also runs as a script, outside the package
    return build_c(src, exe, '-O1', '-Wall', '-Werror')


# --- inside the test processes ----------------------------------------------

def _check(ret, what):
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, '%s: %s' % (what, os.strerror(err)))
    return ret


def set_comm(comm):
    """prctl(PR_SET_NAME) of the calling thread; the kernel keeps 15 bytes."""
    _check(_libc.prctl(PR_SET_NAME, ctypes.c_char_p(comm), 0, 0, 0), 'PR_SET_NAME')


class _CapHeader(ctypes.Structure):
    _fields_ = [('version', ctypes.c_uint32), ('pid', ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [('effective', ctypes.c_uint32), ('permitted', ctypes.c_uint32),
                ('inheritable', ctypes.c_uint32)]


def capset(inh, prm, eff):
    """capset(2) of the calling thread, 64-bit masks."""
    data = (_CapData * 2)()
    for i in range(2):
        data[i].effective = (eff >> 32 * i) & 0xffffffff
        data[i].permitted = (prm >> 32 * i) & 0xffffffff
        data[i].inheritable = (inh >> 32 * i) & 0xffffffff
    _check(_libc.capset(ctypes.byref(_CapHeader(CAP_V3, 0)), data), 'capset')


def burn(seconds):
    """@seconds of this thread's CPU time, in user and kernel mode, with
    page faults."""
    end = time.thread_time() + seconds
    with open('/dev/zero', 'rb', buffering=0) as zero:
        while time.thread_time() < end:
            b'x' * (1 << 20)            # fresh pages, written: minor faults
            zero.read(1 << 16)          # kernel time
            sum(range(10000))           # user time


def _work(seconds):
    """CPU time and faults in a child that we reap (cutime, cminflt), in a
    thread that exits (the process's own sums), and in this thread."""
    pid = os.fork()
    if pid == 0:
        burn(seconds)
        os._exit(0)
    os.waitpid(pid, 0)
    t = threading.Thread(target=burn, args=(seconds,))
    t.start()
    t.join()
    while len(os.listdir('/proc/self/task')) > 1:
        time.sleep(0.001)               # until the kernel released the thread
    burn(seconds)


def _fork(spec, fd):
    pid = os.fork()
    if pid == 0:
        try:
            _run(spec, fd)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(1)
    return pid


def _thread(comm, children, seize, tids, started, fd):
    set_comm(comm)
    tids.append(threading.get_native_id())
    for child in children:
        _fork(child, fd)            # its real_parent is this thread
    if seize:                       # the tracer is this thread, not the leader
        _check(_libc.ptrace(PTRACE_SEIZE, os.getppid(), 0, 0), 'PTRACE_SEIZE')
    started.release()
    threading.Event().wait()


def _run(spec, fd):
    if spec.get('setsid'):
        os.setsid()
    if spec.get('setpgid'):
        os.setpgid(0, 0)
    if 'comm' in spec:
        set_comm(spec['comm'])
    for child in spec.get('children', ()):
        _fork(child, fd)
    if spec.get('trace_parent') is True:
        _check(_libc.ptrace(PTRACE_SEIZE, os.getppid(), 0, 0), 'PTRACE_SEIZE')
    caps = spec.get('caps')
    if caps:
        for cap in caps.get('bset_drop', ()):
            _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), 'PR_CAPBSET_DROP')
        capset(caps['inh'], caps['prm'], caps['eff'])
    if 'uid' in spec:
        # keep CAP_SETUID/SETGID over setresuid() to choose fsuid/fsgid freely
        uid, gid = spec['uid'], spec['gid']
        _check(_libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), 'PR_SET_KEEPCAPS')
        os.setresgid(*gid[:3])
        os.setresuid(*uid[:3])
        setids, keep = 1 << CAP_SETUID | 1 << CAP_SETGID, spec.get('uid_caps', 0)
        capset(0, setids | keep, setids)
        _libc.setfsuid(uid[3])
        _libc.setfsgid(gid[3])
        capset(0, keep, keep)
    if spec.get('work'):
        _work(spec['work'])
    tids, started = [threading.get_native_id()], threading.Semaphore(0)
    for i, comm in enumerate(spec.get('threads', ())):
        children = spec.get('thread_children', ()) if i == 0 else ()
        seize = i == 0 and spec.get('trace_parent') == 'thread'
        threading.Thread(target=_thread, args=(comm, children, seize, tids, started, fd),
                         daemon=True).start()
        started.acquire()
    if spec.get('vfork_child'):
        os.execv(spec['vforker'], ['vforker', str(fd), spec['label'], spec['vfork_child']])
    report = dict(label=spec['label'], pid=os.getpid(), ppid=os.getppid(), tids=tids)
    os.write(fd, repr(report).encode() + b'\n')
    if spec.get('zombie'):
        os._exit(0)
    if spec.get('leader_exits'):
        _libc.syscall(SYS_EXIT, 0)  # this thread only: the leader turns zombie
    while True:
        signal.pause()


# --- in the test ----------------------------------------------------------

class Proc:
    """One process of the tree, as it reported itself."""

    def __init__(self, spec, report):
        self.spec = spec
        self.label = spec['label']
        self.pid = report['pid']
        self.ppid = report['ppid']
        self.tids = sorted(report['tids'])

    def __repr__(self):
        return 'Proc(%s, pid=%d, tids=%s)' % (self.label, self.pid, self.tids)


def task_states(pid):
    """{tid: state letter} of the threads of @pid, from /proc/.../status:
    unlike stat, reading it leaves the kernel's cputime_adjust() state
    (prev_cputime) alone, so a first reader of the times can still be tested."""
    out = {}
    for tid in os.listdir('/proc/%d/task' % pid):
        try:
            with open('/proc/%d/task/%s/status' % (pid, tid), 'rb') as f:
                data = f.read()
        except FileNotFoundError:
            continue
        out[int(tid)] = data.split(b'\nState:', 1)[1].split()[0].decode()
    return out


def wait_states(pid, letters, timeout=30, only=None):
    """Until every thread of @pid (or thread @only) is in one of @letters."""
    deadline = time.monotonic() + timeout
    while True:
        states = task_states(pid)
        if only is not None:
            states = {tid: s for tid, s in states.items() if tid == only}
        if states and all(s in letters for s in states.values()):
            return states
        if time.monotonic() > deadline:
            raise TimeoutError('pid %d: states %r, want %r' % (pid, states, letters))
        time.sleep(0.005)


class Tree:
    """Starts the processes of @spec; a context manager that kills and reaps
    them all, by pid, at exit.  tree[label] -> Proc."""

    def __init__(self, spec, timeout=60):
        self.spec = spec
        self.timeout = timeout
        self.procs = {}
        self._popen = None
        self._subreaper = None
        self._tmp = None

    def __getitem__(self, label):
        return self.procs[label]

    def __iter__(self):
        return iter(self.procs.values())

    def __enter__(self):
        flag = ctypes.c_int()
        _check(_libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0), 'prctl')
        self._subreaper = flag.value
        _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 'prctl')
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self):
        spec = copy.deepcopy(self.spec)
        specs = {s['label']: s for s in _walk(spec)}
        if any(s.get('vfork_child') for s in specs.values()):
            self._tmp = tempfile.mkdtemp(prefix='td-procs-')
            exe = build_vforker(self._tmp)
            for s in specs.values():
                if s.get('vfork_child'):
                    s['vforker'] = exe
        r, w = os.pipe()
        try:
            self._popen = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), str(w), repr(spec)],
                pass_fds=(w,), stdin=subprocess.DEVNULL)
        finally:
            os.close(w)
        with os.fdopen(r, 'rb') as pipe:
            deadline = time.monotonic() + self.timeout
            buf = b''
            while len(self.procs) < len(specs):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([pipe], [], [], left)[0]:
                    raise TimeoutError('test processes not ready: have %s' % sorted(self.procs))
                chunk = os.read(pipe.fileno(), 65536)
                if not chunk:
                    raise RuntimeError('a test process failed: have %s' % sorted(self.procs))
                buf += chunk
                *lines, buf = buf.split(b'\n')
                for line in lines:
                    report = ast.literal_eval(line.decode())
                    self.procs[report['label']] = Proc(specs[report['label']], report)
        for p in self:
            if p.spec.get('zombie'):
                wait_states(p.pid, 'Z')
            if p.spec.get('vfork_child'):
                wait_states(p.pid, 'D')
            if p.spec.get('leader_exits'):
                wait_states(p.pid, 'Z', only=p.pid)
        for p in self:
            if p.spec.get('stop'):
                os.kill(p.pid, signal.SIGSTOP)
        for p in self:
            if p.spec.get('stop'):
                traced = any(c.get('trace_parent') for c in p.spec.get('children', ()))
                wait_states(p.pid, ('t' if traced else 'T') +
                            ('Z' if p.spec.get('leader_exits') else ''))

    def pids(self):
        pids = [p.pid for p in self]
        if self._popen is not None and self._popen.pid not in pids:
            pids.append(self._popen.pid)
        return pids

    def __exit__(self, *exc):
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        left = set(pids)
        deadline = time.monotonic() + 20
        while left and time.monotonic() < deadline:
            for pid in sorted(left):
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    # not (yet) reparented to us, or already gone
                    done = pid if not os.path.exists('/proc/%d' % pid) else 0
                if done:
                    left.discard(pid)
                    if self._popen is not None and pid == self._popen.pid:
                        self._popen.returncode = -signal.SIGKILL
            if left:
                time.sleep(0.01)
        if self._subreaper is not None:
            _libc.prctl(PR_SET_CHILD_SUBREAPER, self._subreaper, 0, 0, 0)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        if left:
            raise RuntimeError('test processes not reaped: %s' % sorted(left))
        return False


if __name__ == '__main__':
    _run(ast.literal_eval(sys.argv[2]), int(sys.argv[1]))
