"""/run/task-diag for the tests: the daemon (ensure_front()), the C client
tests/td_dump.c (run_td(), td_ok(), td_errno(), parse_td()), raw requests
and reads (request(), transact(), check_reads()), and Family: stopped
processes and threads of known shape whose answers do not move.  The
fixtures front, td, fd and family (tests/conftest.py) are built on these."""
import errno
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time

import pytest

import task_diag
from task_diag import wire
from task_diag.front import service

from . import ROOT, need
from .ns import comm_of

FRONT = service.MOUNTPOINT
TD_DUMP_C = os.path.join(ROOT, 'tests', 'td_dump.c')
PY = sys.executable

BASE, CRED, STAT = wire.SHOW_BASE, wire.SHOW_CRED, wire.SHOW_STAT
ALL_GROUPS = BASE | CRED | STAT
GROUP_NAMES = {BASE: 'base', CRED: 'cred', STAT: 'stat'}
STOPPED = wire.STATE_LETTERS.index('T')
MSG_BASE = 16 + 12 + 4 + 44                       # one BASE-only message: 76 bytes
MSG_ALL = MSG_BASE + 4 + 64 + 4 + 72              # BASE|CRED|STAT: 220 bytes
MAX_READS = 100000                                # a dump that never ends is a failure


# --- the front, the C client ---------------------------------------------------

# What the daemon runs: a daemon started before any of these changed runs
# old code, and is restarted (task-diag-load keeps a front that answers).
CODE = [os.path.join(ROOT, 'task_diag', 'front', name) for name in ('daemon.py',
                                                                     'transaction.py')] + [
    os.path.join(ROOT, 'task_diag', name) for name in ('bpf_backend.py', 'wire.py',
                                                       'iterproto.py')]


def daemon_pid():
    return service.front_pid()


def started_at(pid):
    """When process @pid started, in seconds since the epoch."""
    with open('/proc/%d/stat' % pid) as f:
        ticks = int(f.read().rsplit(')', 1)[1].split()[19])
    with open('/proc/stat') as f:
        btime = next(int(line.split()[1]) for line in f if line.startswith('btime '))
    return btime + ticks / os.sysconf('SC_CLK_TCK')


def reap(pid):
    """Reaps @pid if it is our child (a daemon this process started)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def ensure_front():
    """The front answering with the code of this tree; (re)started if needed."""
    pid = daemon_pid()
    stale = pid is not None and started_at(pid) < max(os.stat(p).st_mtime for p in CODE) - 1
    if pid is None or stale or not service.front_answers(timeout=2):
        service.stop_front()
        if pid:
            reap(pid)
        service.start_front()
    need(service.front_answers(timeout=5), FRONT + ' does not answer')
    return FRONT


def parse_value(key, value):
    if key == 'base.comm':
        return re.sub(r'\\x([0-9a-f]{2})', lambda m: chr(int(m.group(1), 16)), value)
    return int(value, 0)


def parse_td(out):
    """td_dump's stdout: ([task dict], [end dict]) where a task dict maps
    'pid', 'tgid' and 'group.field' to values."""
    tasks, ends = [], []
    for line in out.splitlines():
        words = line.split(' ')
        if words[0] == 'end':
            ends.append({k: int(v) for k, v in (w.split('=', 1) for w in words[1:])})
        else:
            tasks.append({k: parse_value(k, v) for k, v in (w.split('=', 1) for w in words)})
    return tasks, ends


def run_td(td, *args, prefix=(), timeout=120, **kw):
    return subprocess.run(list(prefix) + [td] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, **kw)


def td_ok(td, *args, **kw):
    """td_dump's tasks and ends; it must succeed."""
    r = run_td(td, *args, **kw)
    assert r.returncode == 0, 'td_dump %s: %d %s' % (args, r.returncode, r.stderr)
    assert r.stderr == ''
    return parse_td(r.stdout)


def td_errno(td, *args, call='read', **kw):
    """The errno of a td_dump that must fail in @call."""
    r = run_td(td, *args, **kw)
    assert r.returncode == 1, 'td_dump %s: %d %r %r' % (args, r.returncode, r.stdout, r.stderr)
    m = re.match(r'td_dump: (\w+): errno=(\d+) ', r.stderr)
    assert m and m.group(1) == call, r.stderr
    return int(m.group(2))


def fields(task):
    """A wire.Task as the dict td_dump prints."""
    out = {'pid': task.pid, 'tgid': task.tgid}
    for name, value in (('base', task.base), ('cred', task.cred), ('stat', task.stat)):
        if value is not None:
            out.update(('%s.%s' % (name, k), v) for k, v in value._asdict().items())
    return out


def bpf_dump(strategy, pid=0, show=BASE):
    return {t.pid: fields(t) for t in task_diag.dump(strategy, pid, show, source='bpf')}


# --- raw transactions ------------------------------------------------------------

def request(strategy, pid=0, show=BASE, seq=0):
    return wire.encode_request(strategy, pid, show, seq)


def raw_request(nlmsg_len, strategy=wire.DUMP_ALL, pid=0, show=BASE, seq=0, size=None):
    """A request with any nlmsg_len, @size bytes long (default 44)."""
    data = (struct.pack('<IHHII', nlmsg_len & 0xffffffff, 0, 0, seq, 0) +
            wire.REQUEST.pack(show, strategy, pid) + bytes(4))
    size = len(data) if size is None else size
    return (data + bytes(max(0, size - len(data))))[:size]


def read_all(fd, size=1 << 17):
    """Every read() of the answer up to the 0 that ends it; fails as soon
    as a task comes again (a dump that starts over never ends)."""
    reads, seen, last = [], set(), None
    for _ in range(MAX_READS):
        data = os.read(fd, size)
        if not data:
            return reads
        assert len(data) <= size
        reads.append(data)
        for _, (pid, _, _), _ in wire.iter_messages(data):
            if pid != last:         # the messages of one task (CONT) follow each other
                assert pid not in seen, 'task %d twice in one dump' % pid
                seen.add(pid)
                last = pid
    raise AssertionError('the dump never ends')


def check_reads(reads, seq):
    """Every read holds whole messages of the spec's shape; the messages."""
    msgs = []
    for data in reads:
        n = 0
        for hdr, msg, attrs in wire.iter_messages(data):   # raises on a cut message
            length, mtype, flags, mseq, mpid = hdr
            assert (mtype, flags, mseq, mpid) == (wire.TASK_DIAG_CMD_GET, wire.NLM_F_MULTI,
                                                  seq, 0), hdr
            n += (length + 3) & ~3
            msgs.append((hdr, msg, attrs))
        assert n == len(data)
    return msgs


def transact(fd, req, size=1 << 17, seq=None):
    """Writes @req, reads the answer to its end: (reads, decoded tasks)."""
    assert os.write(fd, req) == len(req)
    reads = read_all(fd, size)
    if seq is None:
        seq = struct.unpack_from('<I', req, 8)[0]
    check_reads(reads, seq)
    tasks = list(wire.iter_decode(b''.join(reads)))
    pids = [t.pid for t in tasks]
    assert len(pids) == len(set(pids)), 'a task twice in one dump'
    return reads, tasks


def expect_errno(err, fn, *args):
    with pytest.raises(OSError) as e:
        fn(*args)
    assert e.value.errno == err, 'expected %s, got %r' % (errno.errorcode[err], e.value)


# --- processes of our own, stopped ---------------------------------------------------

FAMILY = r'''
import json, os, sys, threading
kids = []
for i in range(2):
    pid = os.fork()
    if pid == 0:
        os.execvp('sleep', ['sleep', '600'])
    kids.append(pid)
tids, ready, stop = [threading.get_native_id()], threading.Semaphore(0), threading.Event()
def body():
    tids.append(threading.get_native_id())
    ready.release()
    stop.wait()
for i in range(2):
    threading.Thread(target=body, daemon=True).start()
    ready.acquire()
print(json.dumps({'pid': os.getpid(), 'tids': tids, 'kids': kids}), flush=True)
sys.stdin.read()                # until the test is done: then kill and reap the kids
for k in kids:
    os.kill(k, 9)
    os.waitpid(k, 0)
'''


def task_state(pid, tid=None):
    path = '/proc/%d/task/%d/stat' % (pid, tid or pid)
    try:
        with open(path) as f:
            return f.read().rsplit(')', 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def wait_for(predicate, what, timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for ' + what)
        time.sleep(0.01)


class Family:
    """A python process with two more threads and two children (sleep), all
    stopped: pid, tids (the leader first), kids.  Killed and reaped on exit."""

    def __enter__(self):
        self.p = subprocess.Popen([PY, '-c', FAMILY], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, start_new_session=True)
        try:
            info = json.loads(self.p.stdout.readline())
            self.pid, self.tids, self.kids = info['pid'], sorted(info['tids']), info['kids']
            wait_for(lambda: all(comm_of(k) == 'sleep' for k in self.kids), 'the kids to exec')
            os.killpg(self.p.pid, signal.SIGSTOP)
            wait_for(lambda: all(task_state(self.pid, t) == 'T' for t in self.tids) and
                     all(task_state(k) == 'T' for k in self.kids), 'the family to stop')
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGCONT)
                self.p.stdin.close()            # the parent kills and reaps its kids
                self.p.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait()
        self.p.stdout.close()


def free_pid():
    """A pid that no task has (that of a child we reaped; nothing reuses
    it before pid_max wraps)."""
    p = subprocess.Popen(['true'])
    p.wait()
    assert not os.path.exists('/proc/%d' % p.pid)
    return p.pid
