"""The stock-kernel check, run INSIDE a throw-away VM by stock-kernel-run
(tests/kernels/test_stock_kernels.py starts it; run by hand with
`stock-kernel-run -- /path/to/.venv/bin/python tests/kernels/vm_check.py`).

It loads the built task_diag.bpf.o with task-diag-load, makes a small tree
of processes in known, stable states, and asks every dump strategy for
BASE|CRED|STAT through both backends: the BPF iterator (source='bpf') and
the /proc fallback (source='proc').  The messages of the test tasks must
be byte for byte the same; for the other tasks of the VM (kernel threads,
PID 1, ourselves) the fields that cannot change between two calls must
match.  It also reads the pinned iterator files directly, as root and as an
unprivileged user, then unloads and checks that nothing is left pinned.

The last line of stdout is the summary the host test parses:
    TASK_DIAG_VM_CHECK ok kernel=6.1.0-56-amd64 checks=123 mismatches=0 seconds=12.3
(`FAIL` instead of `ok` on any mismatch; exit status 1, or 2 when the
program does not load at all).  Python is 20-40x slower under TCG: keep
this file small.
"""
import ctypes
import errno
import io
import os
import signal
import sys
import threading
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout

TAG = 'TASK_DIAG_VM_CHECK'
T0 = time.monotonic()


def say(*args):
    print(*args, flush=True)


if os.environ.get('STOCK_KERNEL_RUN_GUEST') != '1' and '--force' not in sys.argv:
    # It loads and unloads /sys/fs/bpf/task_diag: never on a shared host.
    say('%s FAIL kernel=%s checks=0 mismatches=1 seconds=0 reason=not-in-a-VM'
        % (TAG, os.uname().release))
    sys.stderr.write('vm_check.py: refusing to run outside stock-kernel-run '
                     '(STOCK_KERNEL_RUN_GUEST is not 1; --force overrides)\n')
    sys.exit(2)

import task_diag                                            # noqa: E402
from task_diag import wire                                  # noqa: E402
from task_diag.iterproto import PIN_ALL, PIN_ALL_THREADS, PIN_DIR  # noqa: E402
from task_diag.kernel_fallback.procfs import ProcBackend    # noqa: E402
from task_diag.loader import load as loader                 # noqa: E402

SHOW3 = wire.SHOW_BASE | wire.SHOW_CRED | wire.SHOW_STAT
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME, PR_SET_DUMPABLE, PR_SET_KEEPCAPS = 15, 4, 8
PTRACE_TRACEME = 0

checks = 0
problems = []


def problem(msg):
    problems.append(msg)
    say('MISMATCH: ' + msg)


def set_comm(name):
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()), 0, 0, 0)


# --- capabilities (the 6.1 kernel_cap_t is u32 cap[2]: test both words) ----

class CapHeader(ctypes.Structure):
    _fields_ = [('version', ctypes.c_uint32), ('pid', ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [('effective', ctypes.c_uint32), ('permitted', ctypes.c_uint32),
                ('inheritable', ctypes.c_uint32)]


def set_caps(effective=None, permitted=None, inheritable=None):
    """capset(2) of the calling thread; None keeps a set as it is."""
    hdr = CapHeader(0x20080522, 0)             # _LINUX_CAPABILITY_VERSION_3
    data = (CapData * 2)()
    if libc.capget(ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), 'capget')
    for name, value in (('effective', effective), ('permitted', permitted),
                        ('inheritable', inheritable)):
        if value is not None:
            setattr(data[0], name, value & 0xffffffff)
            setattr(data[1], name, value >> 32)
    if libc.capset(ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), 'capset')


def bits(*caps):
    return sum(1 << c for c in caps)


# --- the process tree -------------------------------------------------------

def fork_child(name, body):
    """Forks a child named @name that runs @body(ready_fd); returns (pid, fd
    that reads one byte once the child is about to block)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            set_comm(name)
            body(w)
        except BaseException:
            traceback.print_exc()
        os._exit(1)
    os.close(w)
    return pid, r


def ready(w):
    os.write(w, b'!')
    os.close(w)


def body_sleeper(w):
    ready(w)
    while True:
        signal.pause()


def body_session(w):
    os.setsid()
    body_sleeper(w)


def spin(seconds):
    """Burn CPU in user and system mode, for non-zero times in STAT."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        os.stat('/')


def body_stopped(w):
    """Two threads that ran a while, and a reaped child that did too (so
    that utime, stime, cutime, cstime and cminflt are not all 0), stopped
    by SIGSTOP: nothing of it changes any more."""
    grandchild = os.fork()
    if grandchild == 0:
        spin(0.2)
        os._exit(0)
    os.waitpid(grandchild, 0)
    started = threading.Event()

    def thread():
        set_comm('td-stopped-thr')
        spin(0.2)
        started.set()
        threading.Event().wait()
    threading.Thread(target=thread, daemon=True).start()
    spin(0.2)
    started.wait()
    ready(w)
    os.kill(os.getpid(), signal.SIGSTOP)
    while True:
        signal.pause()


def body_traced(w):
    libc.ptrace(PTRACE_TRACEME, 0, None, None)
    ready(w)
    os.kill(os.getpid(), signal.SIGSTOP)       # a ptrace stop: state 't', TracerPid us
    while True:
        signal.pause()


def body_zombie(w):
    ready(w)
    os._exit(0)


def body_user(w):
    """uid/gid 1000 everywhere, dumpable: what an unprivileged reader of
    uid 1000 may see."""
    os.setgroups([])
    os.setresgid(1000, 1000, 1000)
    os.setresuid(1000, 1000, 1000)
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    body_sleeper(w)


def body_nodump(w):
    """Like td-user but not dumpable (the default after a uid change):
    hidden from uid 1000 by mm->flags alone (an unsigned long on 6.1)."""
    os.setgroups([])
    os.setresgid(1000, 1000, 1000)
    os.setresuid(1000, 1000, 1000)
    body_sleeper(w)


def body_mixed(w):
    """Every id different, supplementary groups, and capability sets with
    bits in both 32-bit words (CAP_SYSLOG 34, CAP_BPF 39)."""
    set_caps(inheritable=bits(0, 5, 34, 39))
    libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)
    os.setgroups([3000, 3001])
    os.setresgid(2000, 2001, 2002)
    os.setresuid(1000, 1001, 1002)             # permitted kept, effective cleared
    set_caps(effective=bits(5, 34))
    body_sleeper(w)


CHILDREN = (
    ('td-sleeper', body_sleeper, 'S'),
    ('td-session', body_session, 'S'),
    ('td-stopped', body_stopped, 'T'),
    ('td-traced', body_traced, 't'),
    ('td-zombie', body_zombie, 'Z'),
    ('td-user', body_user, 'S'),
    ('td-nodump', body_nodump, 'S'),
    ('td-mixed', body_mixed, 'S'),
)


def states(pid):
    """{tid: state letter} of the threads of @pid."""
    out = {}
    for tid in os.listdir('/proc/%d/task' % pid):
        with open('/proc/%d/task/%s/stat' % (pid, tid), 'rb') as f:
            data = f.read()
        out[int(tid)] = chr(data[data.rindex(b')') + 2])
    return out


def make_tree():
    """{name: pid}; every child settled in its expected state."""
    pids, fds = {}, {}
    for name, body, _ in CHILDREN:
        pids[name], fds[name] = fork_child(name, body)
    deadline = time.monotonic() + 60
    for name, _, want in CHILDREN:
        if os.read(fds[name], 1) != b'!':
            raise RuntimeError('child %s died before it was ready' % name)
        os.close(fds[name])
        while True:
            st = states(pids[name])
            if all(s == want for s in st.values()) and (name != 'td-stopped' or len(st) == 2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError('child %s stays in %r, not %s' % (name, st, want))
            time.sleep(0.02)
    return pids


def kill_tree(pids):
    for pid in pids.values():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids.values():
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


# --- comparing ----------------------------------------------------------------

def split(data):
    """[(pid, message bytes)] of a response, in order (CONT messages of one
    task joined)."""
    out, off = [], 0
    for hdr, (pid, tgid, flags), attrs in wire.iter_messages(data):
        end = off + ((hdr[0] + 3) & ~3)
        if out and out[-1][0] == pid and out[-1][2]:
            out[-1] = (pid, out[-1][1] + data[off:end], flags & wire.TASK_DIAG_FLAG_CONT)
        else:
            out.append((pid, data[off:end], flags & wire.TASK_DIAG_FLAG_CONT))
        off = end
    return [(pid, msg) for pid, msg, _ in out]


def describe(msg, show):
    try:
        tasks = wire.decode(msg, show)
        return repr(tasks[0]) if len(tasks) == 1 else repr(tasks)
    except Exception as e:      # a malformed message: show the bytes
        return 'undecodable (%s): %s' % (e, msg.hex())


def all_tids():
    out = set()
    for p in os.listdir('/proc'):
        if p.isdigit():
            try:
                out.update(int(t) for t in os.listdir('/proc/%s/task' % p))
            except OSError:
                pass
    return out


def fields_stable(msg, show):
    """What cannot change between two reads of a live task that is not
    ours: ids, names and credentials (not the state, not the times)."""
    t = wire.decode(msg, show)[0]
    b = t.base and t.base._replace(state=None)
    return (t.pid, t.tgid, b, t.cred)


def compare(label, bpf, proc, show, strict, alive=None):
    """@strict: pids whose messages must be equal byte for byte; the other
    pids are compared on fields_stable(), if they lived through both reads
    (@alive), and must then be in both answers in the same order."""
    global checks
    b, p = split(bpf), split(proc)
    bd, pd = dict(b), dict(p)
    if len(bd) != len(b) or len(pd) != len(p):
        problem('%s: a task appears twice (bpf %d/%d, proc %d/%d messages/pids)'
                % (label, len(b), len(bd), len(p), len(pd)))
    for pid in sorted(strict):
        checks += 1
        if pid not in bd or pid not in pd:
            problem('%s: test task %d missing from %s' % (
                label, pid, ' and '.join(s for s, d in (('bpf', bd), ('proc', pd))
                                           if pid not in d)))
        elif bd[pid] != pd[pid]:
            problem('%s: task %d differs\n    bpf:  %s\n    proc: %s\n    bpf  bytes %s\n'
                    '    proc bytes %s' % (label, pid, describe(bd[pid], show),
                                           describe(pd[pid], show), bd[pid].hex(),
                                           pd[pid].hex()))
    if alive is None:
        return
    for pid in sorted((set(bd) | set(pd)) - set(strict)):
        if pid not in alive:
            continue                            # came or went between the reads
        checks += 1
        if pid not in bd or pid not in pd:
            problem('%s: live task %d only in %s: %s' % (
                label, pid, 'bpf' if pid in bd else 'proc',
                describe(bd.get(pid) or pd.get(pid), show)))
        elif fields_stable(bd[pid], show) != fields_stable(pd[pid], show):
            problem('%s: task %d differs\n    bpf:  %s\n    proc: %s'
                    % (label, pid, describe(bd[pid], show), describe(pd[pid], show)))
    order_b = [pid for pid, _ in b if pid in pd]
    order_p = [pid for pid, _ in p if pid in bd]
    checks += 1
    if order_b != order_p:
        problem('%s: tasks in another order: bpf %s, proc %s' % (label, order_b, order_p))


def both(strategy, pid=0, show=SHOW3, seq=0):
    """(bpf bytes, proc bytes, tids alive before and after)."""
    before = all_tids()
    bpf = task_diag.raw(strategy, pid, show, seq, source='bpf')
    proc = task_diag.raw(strategy, pid, show, seq, source='proc')
    return bpf, proc, before & all_tids()


def open_pinned(name):
    return os.open(os.path.join(PIN_DIR, name), os.O_RDONLY)


def read_all(fd):
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b''.join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def read_pinned(name):
    return read_all(open_pinned(name))


def unprivileged_read(uid):
    """As uid/gid @uid without capabilities: the pinned files and the /proc
    fallback's answer to the same requests, from a forked child.  The files
    are opened while still root: Debian mounts bpffs with mode 0700 (so
    does this VM), and the program applies the credentials of whoever
    reads, at read() time, whoever opened."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            fd_all, fd_threads = open_pinned(PIN_ALL), open_pinned(PIN_ALL_THREADS)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            proc = ProcBackend()
            out = [read_all(fd_all), proc.raw(wire.DUMP_ALL, 0, wire.SHOW_BASE),
                   read_all(fd_threads), proc.raw(wire.DUMP_ALL_THREAD, 0, wire.SHOW_BASE)]
            with os.fdopen(w, 'wb') as f:
                for blob in out:
                    f.write(len(blob).to_bytes(4, 'little') + blob)
            code = 0
        except BaseException:
            traceback.print_exc()
        os._exit(code)
    os.close(w)
    with os.fdopen(r, 'rb') as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError('the unprivileged reader failed (status %#x)' % status)
    out, off = [], 0
    while off < len(data):
        n = int.from_bytes(data[off:off + 4], 'little')
        out.append(data[off + 4:off + 4 + n])
        off += 4 + n
    return out, pid


def run_checks(pids):
    global checks
    me = os.getpid()
    leaders = set(pids.values())
    stopped = pids['td-stopped']
    stopped_tids = sorted(states(stopped))
    thread_tid = [t for t in stopped_tids if t != stopped][0]
    tids = leaders | set(stopped_tids)
    say('test tasks: %s; thread %d of td-stopped; reader %d' % (
        ', '.join('%s=%d' % kv for kv in pids.items()), thread_tid, me))

    # Every strategy, BASE|CRED|STAT.
    bpf, proc, alive = both(wire.DUMP_ALL)
    compare('ALL', bpf, proc, SHOW3, leaders, alive)
    bpf, proc, alive = both(wire.DUMP_ALL, show=wire.SHOW_BASE | wire.SHOW_CRED)
    compare('ALL base|cred', bpf, proc, wire.SHOW_BASE | wire.SHOW_CRED,
            leaders | {me}, alive)
    bpf, proc, alive = both(wire.DUMP_ALL_THREAD)
    compare('ALL_THREAD', bpf, proc, SHOW3, tids, alive)
    for t in wire.decode(bpf, SHOW3):           # what the test tasks look like
        if t.pid in tids:
            b, c, st = t.base, t.cred, t.stat
            say('  %-14s %3d/%-3d ppid %-3d sid %-3d pgid %-3d tpid %-3d %s '
                'uid %d/%d/%d/%d gid %d/%d/%d/%d cap inh %#x prm %#x eff %#x bnd %#x '
                'stat %s' % (
                    b.comm, t.pid, t.tgid, b.ppid, b.sid, b.pgid, b.tpid, b.state_letter,
                    c.uid, c.euid, c.suid, c.fsuid, c.gid, c.egid, c.sgid, c.fsgid,
                    c.cap_inheritable, c.cap_permitted, c.cap_effective, c.cap_bset,
                    '/'.join(str(getattr(st, k)) for k in wire.STAT.names)))
    for name, pid in sorted(pids.items()) + [('td-stopped thread', thread_tid)]:
        bpf, proc, _ = both(wire.DUMP_ONE, pid, seq=pid)
        compare('ONE %s' % name, bpf, proc, SHOW3, {pid})
    for show in (0, wire.SHOW_BASE, wire.SHOW_CRED, wire.SHOW_STAT):
        bpf, proc, _ = both(wire.DUMP_ONE, stopped, show)
        compare('ONE td-stopped show=%#x' % show, bpf, proc, show, {stopped})
    for name, pid in (('td-stopped', stopped), ('td-stopped by its thread', thread_tid),
                      ('td-zombie', pids['td-zombie'])):
        bpf, proc, _ = both(wire.DUMP_THREAD, pid)
        expect = set(stopped_tids) if pid in stopped_tids else {pid}
        compare('THREAD %s' % name, bpf, proc, SHOW3, expect)
        checks += 1
        if set(p for p, _ in split(bpf)) != expect:
            problem('THREAD %s: bpf gave %s, expected %s'
                    % (name, [p for p, _ in split(bpf)], sorted(expect)))
    bpf, proc, _ = both(wire.DUMP_CHILDREN, me, seq=3)
    checks += 1
    if bpf != proc:
        problem('CHILDREN of the reader: whole answers differ (%d vs %d bytes)'
                % (len(bpf), len(proc)))
    compare('CHILDREN of the reader', bpf, proc, SHOW3, leaders)
    bpf, proc, alive = both(wire.DUMP_CHILDREN, 1)
    compare('CHILDREN of 1', bpf, proc, SHOW3, set(), alive)

    # No such task.
    gone = 4194304 - 7
    for strategy in wire.NEEDS_PID:
        for source in ('bpf', 'proc'):
            checks += 1
            try:
                task_diag.raw(strategy, gone, SHOW3, source=source)
                problem('strategy %d pid %d: no ESRCH from %s' % (strategy, gone, source))
            except OSError as e:
                if e.errno != errno.ESRCH:
                    problem('strategy %d: %s gave %r, not ESRCH' % (strategy, source, e))

    # The pinned files, read directly (the default answers, spec section 5).
    for name, strategy in ((PIN_ALL, wire.DUMP_ALL), (PIN_ALL_THREADS, wire.DUMP_ALL_THREAD)):
        before = all_tids()
        pinned = read_pinned(name)
        bpf = task_diag.raw(strategy, 0, wire.SHOW_BASE, source='bpf')
        proc = task_diag.raw(strategy, 0, wire.SHOW_BASE, source='proc')
        alive = before & all_tids()
        strict = (leaders if strategy == wire.DUMP_ALL else tids) | {me}
        compare('pinned %s vs bpf' % name, pinned, bpf, wire.SHOW_BASE, strict, alive)
        compare('pinned %s vs proc' % name, pinned, proc, wire.SHOW_BASE, strict, alive)

    # An unprivileged reader: ptrace_may_access() for uid 1000, no caps.
    (all_b, all_p, thr_b, thr_p), reader = unprivileged_read(1000)
    for label, bpf, proc in (('uid 1000 pinned all', all_b, all_p),
                             ('uid 1000 pinned all_threads', thr_b, thr_p)):
        seen = [p for p, _ in split(bpf)]
        compare(label, bpf, proc, wire.SHOW_BASE, set(seen) | set(p for p, _ in split(proc)))
        checks += 1
        if sorted(seen) != sorted([reader, pids['td-user']]):
            problem('%s: saw %s, expected only itself (%d) and td-user (%d)'
                    % (label, seen, reader, pids['td-user']))


def loader_main(*args):
    """task-diag-load @args in-process (a second interpreter costs seconds
    here); (exit status, its stdout and stderr)."""
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        try:
            rc = loader.main(list(args))
        except SystemExit as e:         # argparse: an option this loader lacks
            rc = e.code if isinstance(e.code, int) else 2
    return rc, out.getvalue()


def load():
    """task-diag-load, without the FUSE front where the loader has one: the
    subject here is the BPF object, and a second Python process (the front
    daemon) would double the time the check takes under emulation."""
    rc, out = loader_main('--no-front')
    if rc == 2 and 'unrecognized arguments' in out:
        rc, out = loader_main()
    sys.stdout.write(out)
    if rc != 0:
        return False
    status = io.StringIO()
    with redirect_stdout(status):
        loader.main(['--status'])
    sys.stdout.write(status.getvalue())
    return True


def main():
    kernel = os.uname().release
    say('kernel %s, python %s' % (kernel, sys.version.split()[0]))
    if os.path.exists(PIN_DIR):
        say('%s was pinned before the check: unloading it first' % PIN_DIR)
        loader.unload(PIN_DIR)
    if not load():
        say('%s FAIL kernel=%s checks=0 mismatches=1 seconds=%.1f reason=load-failed'
            % (TAG, kernel, time.monotonic() - T0))
        return 2
    pids = {}
    try:
        pids = make_tree()
        say('tree ready after %.1f s' % (time.monotonic() - T0))
        run_checks(pids)
    except Exception:
        problem('the check crashed:\n' + traceback.format_exc())
    finally:
        kill_tree(pids)
        rc, out = loader_main('--unload')
        sys.stdout.write(out)
        if rc != 0:
            problem('task-diag-load --unload failed (exit %s)' % rc)
    if os.path.exists(PIN_DIR) or loader.pinned(PIN_DIR):
        problem('%s is still there after task-diag-load --unload' % PIN_DIR)
    with open('/proc/self/mounts') as f:
        left = [line.strip() for line in f if 'task-diag' in line or 'task_diag' in line]
    if left:
        problem('still mounted after task-diag-load --unload: %s' % left)
    say('%s %s kernel=%s checks=%d mismatches=%d seconds=%.1f' % (
        TAG, 'FAIL' if problems else 'ok', kernel, checks, len(problems),
        time.monotonic() - T0))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
