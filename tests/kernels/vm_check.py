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

Besides: the tier loaded must be the richest whose prerequisites the
kernel's BTF shows (loader.TIERS, Tier.missing()); `task-diag ps` must
list the processes of /proc, with the test tasks' columns as their
/proc/PID/stat says; VMA must equal /proc/PID/maps for the test tasks and
VMA_STAT smaps for the stopped one (on every tier: where the programs have
no VMA code, the driver reads maps and smaps itself); and a protocol round
through /run/task-diag (the FUSE front, started here) with the C client
tests/td_dump.c, which the host builds (tests/bin/td_dump, or --td-dump
PATH): its tasks against /proc and the BPF answers, its -m VMA lines
against maps and smaps.  And a task whose mmap_lock a writer nearly
always wants (tests/hammer.c, tests/bin/hammer or --hammer PATH): each
dump of it answered, its VMAs where maps has them.  Where AppArmor runs,
a reader it confines gets no VMA through /run/task-diag.

    vm_check.py [--force] [--td-dump PATH] [--hammer PATH]

The last line of stdout is the summary the host test parses:
    TASK_DIAG_VM_CHECK ok kernel=6.1.0-56-amd64 checks=123 mismatches=0 seconds=12.3 tier=novma
(`FAIL` instead of `ok` on any mismatch; exit status 1, or 2 when the
program does not load at all).  Python is 20-40x slower under TCG: keep
this file small.
"""
import ctypes
import errno
import io
import os
import re
import shutil
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

import subprocess                                           # noqa: E402

import task_diag                                            # noqa: E402
from task_diag import cli, wire                             # noqa: E402
from task_diag.front.client import MOUNTPOINT, fuse_mounted  # noqa: E402
from task_diag.iterproto import PIN_ALL, PIN_ALL_THREADS, PIN_DIR  # noqa: E402
from task_diag.procfs.maps import read_vmas        # noqa: E402
from task_diag.procfs.backend import ProcBackend    # noqa: E402
from task_diag.front import service                          # noqa: E402
from task_diag.loader import load as loader                 # noqa: E402
from task_diag import lsm, tdconfig                         # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))                   # tests/: helpers
from helpers.vma import maps_lines, parse_maps, vma_lines  # noqa: E402

TD_DUMP = (sys.argv[sys.argv.index('--td-dump') + 1] if '--td-dump' in sys.argv[:-1]
           else os.path.join(os.path.dirname(HERE), 'bin', 'td_dump'))
HAMMER = (sys.argv[sys.argv.index('--hammer') + 1] if '--hammer' in sys.argv[:-1]
          else os.path.join(os.path.dirname(HERE), 'bin', 'hammer'))

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


def check_new_groups(pids):
    """STATM, STAT_EXT, NS and CMDLINE against /proc: byte for byte for the test
    tasks (sleeping, stopped or dead: their memory holds still), and for
    every task that lived through both reads, its command line, start time,
    tty and policy.  CMDLINE from the programs where the loader says a
    sleepable object is loaded; elsewhere the programs refuse it
    (EOPNOTSUPP) and task_diag.dump() answers it from /proc."""
    global checks
    cfg = tdconfig.read_pinned(PIN_DIR)
    cmdline = bool(cfg['cmdline'] or cfg['cmdline_direct'])
    say('CMDLINE: %s' % ('by the programs, through the direct map%s' % (
        ', else with bpf_copy_from_user_task()' if cfg['cmdline'] else
        ' (a plain object), else from /proc') if cfg['cmdline_direct'] else
        'by the programs, with bpf_copy_from_user_task()' if cfg['cmdline'] else
        'from /proc (a plain object without the direct read)'))
    if cfg['cmdline_direct']:
        check_cmdline_ways(pids, both=bool(cfg['cmdline']))
    show = wire.SHOW_BASE | wire.SHOW_STATM | wire.SHOW_STAT_EXT | wire.SHOW_NS
    if cmdline:
        show |= wire.SHOW_CMDLINE
    else:
        checks += 1
        try:
            task_diag.raw(wire.DUMP_ONE, os.getpid(), wire.SHOW_CMDLINE, source='bpf')
            problem('CMDLINE: a plain object answered it')
        except OSError as e:
            if e.errno != errno.EOPNOTSUPP:
                problem('CMDLINE from a plain object: %r, not EOPNOTSUPP' % e)
        checks += 1
        got = list(task_diag.dump(wire.DUMP_ONE, os.getpid(), wire.SHOW_CMDLINE))
        want = open('/proc/self/cmdline', 'rb').read(wire.TASK_DIAG_CMDLINE_MAX)
        if len(got) != 1 or got[0].cmdline != want:
            problem('CMDLINE by the /proc fallback: %r, expected %r' % (got, want))
    quiet = {pid for name, pid in pids.items() if name != 'td-traced'}
    for strategy, label in ((wire.DUMP_ALL, 'ALL'), (wire.DUMP_ALL_THREAD, 'ALL_THREAD')):
        before = all_tids()
        bpf = task_diag.raw(strategy, 0, show, source='bpf')
        proc = task_diag.raw(strategy, 0, show, source='proc')
        alive = before & all_tids()
        b, p = dict(split(bpf)), dict(split(proc))
        for pid in sorted(quiet):
            checks += 1
            if b.get(pid) != p.get(pid):
                problem('%s statm|stat_ext|cmdline: task %d differs\n    bpf:  %s\n'
                        '    proc: %s' % (label, pid, describe(b.get(pid, b''), show),
                                          describe(p.get(pid, b''), show)))
        for pid in sorted(alive & set(b) & set(p) - quiet):
            tb, tp = wire.decode(b[pid], show)[0], wire.decode(p[pid], show)[0]
            checks += 1
            keep = ('start_time', 'tty_nr', 'policy', 'rt_priority')
            if (tb.cmdline != tp.cmdline or tb.ns != tp.ns
                    or [getattr(tb.stat_ext, k) for k in keep]
                    != [getattr(tp.stat_ext, k) for k in keep]):
                problem('%s: task %d differs\n    bpf:  %r\n    proc: %r' % (label, pid, tb, tp))


def check_cmdline_ways(pids, both):
    """CMDLINE of the test tasks read through the direct map (none of them
    the slow way) and, @both (a sleepable object), with
    bpf_copy_from_user_task(): /proc's bytes each way."""
    global checks
    fd = tdconfig.open_pinned(PIN_DIR)
    try:
        for direct in ((1, 0) if both else (1,)):
            tdconfig.update(fd, cmdline_direct=direct)
            slow = tdconfig.read(fd)['cmdline_slow']
            for pid in sorted(pids.values()):
                checks += 1
                try:
                    with open('/proc/%d/cmdline' % pid, 'rb') as f:
                        want = f.read(wire.TASK_DIAG_CMDLINE_MAX)
                    got = list(task_diag.dump(wire.DUMP_ONE, pid, wire.SHOW_CMDLINE,
                                              source='bpf'))
                except OSError:
                    continue                # a dead test task: no cmdline either way
                if len(got) != 1 or got[0].cmdline != want:
                    problem('CMDLINE (direct=%d) of %d: %r, /proc %r' % (direct, pid, got, want))
            if direct and tdconfig.read(fd)['cmdline_slow'] != slow:
                problem('CMDLINE: the direct read sent %d test tasks the slow way'
                        % (tdconfig.read(fd)['cmdline_slow'] - slow))
    finally:
        tdconfig.update(fd, cmdline_direct=1)
        os.close(fd)


def check_cgroup(pids):
    """CGROUP against /proc (byte for byte: ids from a cgroup2 mount, made
    here if the guest has none) for every task that lived through both
    dumps, with two of the test tasks moved into a nested cgroup of their
    own; the filter of that subtree against its cgroup.procs and
    cgroup.threads, from the programs."""
    global checks
    from task_diag import cgroups
    mounted = None
    mount = cgroups.mount_point()
    if mount is None:
        mounted = mount = '/run/td-vm-cgroup2'
        os.makedirs(mount, exist_ok=True)
        subprocess.run(['mount', '-t', 'cgroup2', 'none', mount], check=True)
    top = os.path.join(mount, 'td-vm')
    made = [top, top + '/inner']
    try:
        for d in made:
            os.mkdir(d)
        movers = [pids['td-sleeper'], pids['td-stopped']]
        for pid, d in zip(movers, made):
            with open(d + '/cgroup.procs', 'w') as f:
                f.write(str(pid))
        # CGROUP alone: the bytes compared are its own (a task's state may
        # change between the two dumps, its cgroup does not)
        show = wire.SHOW_CGROUP
        for strategy, label in ((wire.DUMP_ALL, 'ALL'), (wire.DUMP_ALL_THREAD, 'ALL_THREAD')):
            before = all_tids()
            b = dict(split(task_diag.raw(strategy, 0, show, source='bpf')))
            p = dict(split(task_diag.raw(strategy, 0, show, source='proc')))
            alive = before & all_tids()
            for pid in sorted(alive & set(b) & set(p)):
                checks += 1
                if b[pid] != p[pid]:
                    problem('%s cgroup: task %d differs\n    bpf:  %r\n    proc: %r' % (
                        label, pid, wire.decode(b[pid], show), wire.decode(p[pid], show)))
            for pid in movers:
                checks += 1
                if pid not in b or not wire.decode(b[pid], show)[0].cgroup.path.startswith(
                        '/td-vm'):
                    problem('%s cgroup: task %d not in /td-vm: %r' % (label, pid, b.get(pid)))
            threads = strategy == wire.DUMP_ALL_THREAD
            want = set()
            for d in made:
                with open(d + ('/cgroup.threads' if threads else '/cgroup.procs')) as f:
                    want.update(int(x) for x in f.read().split())
            got = {t.pid for t in task_diag.dump(strategy, show=show, source='bpf', cgroup=top)}
            checks += 1
            if got != want or not want:
                problem('%s filter of /td-vm: %s, cgroup.procs/threads: %s'
                        % (label, sorted(got), sorted(want)))
        say('CGROUP: checked (mount %s%s)' % (mount, ', made here' if mounted else ''))
    finally:
        for pid in pids.values():
            try:        # back to the root cgroup, so that ours can go
                with open(mount + '/cgroup.procs', 'w') as f:
                    f.write(str(pid))
            except OSError:
                pass
        for d in reversed(made):
            try:
                os.rmdir(d)
            except OSError as e:
                problem('cgroup %s not removed: %s' % (d, e))
        if mounted:
            subprocess.run(['umount', mounted], check=False)


def check_watch():
    """task_diag.watch() on this kernel: its programs load, and 200 children
    forked and reaped here come each as one fork and one exit with the
    status and CPU times wait4() gave."""
    global checks
    import task_diag
    try:
        w = task_diag.watch()
    except OSError as e:
        problem('watch(): %r' % e)
        return
    try:
        w.dump()
        reaped = {}
        for i in range(200):
            pid = os.fork()
            if pid == 0:
                if i % 20 == 0:
                    spin(0.002)
                os._exit(i % 7)
            _, status, ru = os.wait4(pid, 0)
            reaped[pid] = (status, ru)
        events = []
        deadline = time.monotonic() + 30
        while (sum(e.kind == 'exit' and e.pid in reaped for e in events) < len(reaped)
               and time.monotonic() < deadline):
            events += w.poll(0.2)
        forks = sorted(e.pid for e in events if e.kind == 'fork' and e.pid in reaped)
        exits = [e for e in events if e.kind == 'exit' and e.pid in reaped]
        checks += 2
        if forks != sorted(reaped) or sorted(e.pid for e in exits) != sorted(reaped):
            problem('watch: %d forks, %d exits of %d children'
                    % (len(forks), len(exits), len(reaped)))
        for e in exits:
            status, ru = reaped[e.pid]
            checks += 1
            if (e.status != status or e.utime // 1000 != round(ru.ru_utime * 1e6)
                    or e.stime // 1000 != round(ru.ru_stime * 1e6)):
                problem('watch: %r, wait4: status %d utime %r stime %r'
                        % (e, status, ru.ru_utime, ru.ru_stime))
        say('watch: %d children, %d events, %d lost' % (len(reaped), len(events), w.dropped))
    finally:
        w.close()


# --- the tier, task-diag ps, VMA and VMA_STAT, the front -----------------------

def check_tier(status_text):
    """The tier loaded against the richest whose prerequisites the kernel's
    BTF shows; both where the config and where --status say it.  The
    name, for the summary."""
    global checks
    features = loader.kernel_features()
    cfg = tdconfig.read_pinned(PIN_DIR)
    got = loader.loaded_tier(cfg)
    want = next((t for t in loader.TIERS if not t.missing(features)), None)
    say('tier %s, expected %s (kernel features: %s)' % (
        got.name, want and want.name, ', '.join(sorted(f for f, v in features.items() if v))))
    checks += 1
    if got is not want or cfg['tier_forced']:
        log = ''
        try:
            with open(loader.VERIFIER_LOG) as f:
                log = '\n    ' + '\n    '.join(f.read().strip().splitlines()[-15:])
        except OSError:
            pass
        problem('tier %s%s loaded, expected %s (the richest this kernel has the '
                'prerequisites of)%s' % (got.name, ' (forced)' if cfg['tier_forced'] else '',
                                         want and want.name, log))
    shown = [line.split(':', 1)[1].split()[0] for line in status_text.splitlines()
             if line.startswith('  tier:')]
    checks += 1
    if shown != [got.name]:
        problem('task-diag-load --status shows tier %s, the config %s' % (shown, got.name))
    return got.name


def proc_pids():
    return {int(p) for p in os.listdir('/proc') if p.isdigit()}


def proc_stat(pid):
    """(comm, state letter, ppid, pgrp, session) of /proc/PID/stat."""
    with open('/proc/%d/stat' % pid, 'rb') as f:
        data = f.read()
    close = data.rindex(b')')
    rest = data[close + 2:].split()
    return (data[data.index(b'(') + 1:close].decode('utf-8', 'surrogateescape'),
            rest[0].decode(), int(rest[1]), int(rest[2]), int(rest[3]))


def check_pid_set(label, printed, before, after, extra=()):
    """@printed: the pids an answer listed; every process of /proc that
    lived through it must be there.  One that /proc never showed, before or
    after, may have lived only meanwhile (a kworker, a modprobe the kernel
    started): a few such are allowed, not more."""
    global checks
    checks += 1
    stable = before & after
    missing = stable - printed
    unknown = printed - before - after - set(extra)
    if missing or len(unknown) > 3:
        problem('%s: pids not as in /proc: missing %s, not in /proc %s'
                % (label, sorted(missing), sorted(unknown)))


def check_ps(pids):
    """`task-diag ps` (cli.main in-process: a second interpreter costs
    seconds here) against /proc."""
    global checks
    out = io.StringIO()
    before = proc_pids()
    with redirect_stdout(out):
        rc = cli.main(['--source', 'bpf', 'ps'])
    after = proc_pids()
    lines = out.getvalue().splitlines()
    checks += 1
    if rc != 0 or not lines or lines[0].split() != ['PID', 'PPID', 'PGID', 'SID', 'STAT',
                                                     'COMMAND']:
        problem('task-diag ps: exit %s, output %r' % (rc, out.getvalue()[:500]))
        return
    rows = {}
    for line in lines[1:]:
        f = line.split(None, 5)
        rows[int(f[0])] = (f[5] if len(f) > 5 else '', f[4], int(f[1]), int(f[2]), int(f[3]))
    say('task-diag ps: %d processes' % len(rows))
    check_pid_set('task-diag ps', set(rows), before, after)
    for name, pid in sorted(pids.items()):
        checks += 1
        comm, state, ppid, pgrp, sid = proc_stat(pid)
        want = (comm, state + ('s' if sid == pid else ''), ppid, pgrp, sid)
        if rows.get(pid) != want:
            problem('task-diag ps: %s (%d) shows COMMAND STAT PPID PGID SID %s, /proc/%d/stat %s'
                    % (name, pid, rows.get(pid), pid, want))


def vma_key(v):
    """What maps and smaps show of a VMA: not the generation."""
    name = v.name.decode('utf-8', 'surrogateescape') if isinstance(v.name, bytes) else v.name
    return (v.start, v.end, v.vm_flags, v.pgoff, v.major, v.minor, v.inode, name or '', v.stat)


def check_vmas(pids):
    """VMA of the test tasks (all stopped or asleep) against their maps, in
    one CHILDREN request, and against the /proc backend's answer.  VMA_STAT
    of the stopped one against its smaps (retried: the Pss of shared pages
    moves as other processes map them), and byte for byte against the
    /proc backend's (VMA_STAT comes from smaps after a load, on every tier,
    split as the /proc backend splits it)."""
    global checks
    me = os.getpid()
    show = wire.SHOW_BASE | wire.SHOW_VMA
    bpf, proc, _ = both(wire.DUMP_CHILDREN, me, show)
    # Not byte for byte: the programs split a task's VMAs into messages of
    # their 16 KiB buffer, the /proc backend into 32 KiB ones (both
    # TASK_DIAG_FLAG_CONT, both right); and /proc has no i_generation.
    tasks = {t.pid: t for t in wire.decode(bpf, show)}
    ptasks = {t.pid: t for t in wire.decode(proc, show)}
    for name, pid in sorted(pids.items()):
        checks += 1
        tb, tp = tasks.get(pid), ptasks.get(pid)
        if tb is None or tp is None or tb.base != tp.base:
            problem('CHILDREN of the reader base|vma: %s (%d) differs (bpf, proc): %s, %s'
                    % (name, pid, tb and tb.base, tp and tp.base))
            continue
        vb, vp = ([v._replace(generation=0) for v in t.vmas or []] for t in (tb, tp))
        if vb != vp:
            lb, lp = vma_lines(vb), vma_lines(vp)
            problem('CHILDREN of the reader base|vma: the VMAs of %s (%d) differ (bpf, '
                    'proc): %s' % (name, pid, maps_diff(lb, lp) if lb != lp else
                                   [(b, p) for b, p in zip(vb, vp) if b != p][:2]))
    for name, pid in sorted(pids.items()):
        checks += 1
        want = maps_lines(pid)
        got = vma_lines(tasks[pid].vmas or []) if pid in tasks else None
        if got != want:
            problem('VMA of %s (%d) differs from its maps: %s' % (
                name, pid, maps_diff(got or [], want)))
    stopped = pids['td-stopped']
    show = wire.SHOW_BASE | wire.SHOW_VMA | wire.SHOW_VMA_STAT
    for attempt in range(5):
        before = [vma_key(v) for v in read_vmas('/proc/%d' % stopped, with_stat=True)]
        bpf = task_diag.raw(wire.DUMP_ONE, stopped, show, source='bpf')
        proc = task_diag.raw(wire.DUMP_ONE, stopped, show, source='proc')
        smaps = [vma_key(v) for v in read_vmas('/proc/%d' % stopped, with_stat=True)]
        got = [vma_key(v) for v in wire.decode(bpf, show)[0].vmas or []]
        if before == smaps and got == smaps and bpf == proc:
            break
    say('VMA_STAT of td-stopped: %d VMAs, Rss %d kB (attempt %d)' % (
        len(got), sum(v[-1].resident for v in got if v[-1]) >> 10, attempt + 1))
    checks += 1
    if got != smaps or not smaps:
        diff = [(g, w) for g, w in zip(got, smaps) if g != w][:2]
        problem('VMA_STAT of td-stopped differs from its smaps: %d VMAs against %d; first '
                'differences (bpf, smaps): %s' % (len(got), len(smaps), diff))
    checks += 1
    if bpf != proc:
        problem('VMA_STAT of td-stopped: bpf and proc answers differ (%d vs %d bytes)'
                % (len(bpf), len(proc)))


def check_busy():
    """VMA of a task whose mmap_lock two threads keep taking for writing
    (tests/test_vma_busy.py says why): every dump answered, whole."""
    global checks
    p = subprocess.Popen([HAMMER, '16'], stdout=subprocess.PIPE)
    try:
        p.stdout.readline()
        show = wire.SHOW_BASE | wire.SHOW_VMA
        for _ in range(5):
            checks += 1
            want = [(v.start, v.end) for v in read_vmas('/proc/%d' % p.pid)]
            try:
                (task,) = wire.decode(task_diag.raw(wire.DUMP_ONE, p.pid, show, source='bpf'),
                                      show)
            except OSError as e:
                problem('VMA of the hammered task: the dump failed: %s' % e)
                break
            got = [(v.start, v.end) for v in task.vmas or []]
            if got != want:
                problem('VMA of the hammered task: %d VMAs where maps has %d; missing %s'
                        % (len(got), len(want), sorted(set(want) - set(got))[:3]))
    finally:
        p.kill()
        p.wait()


def td_fields(task):
    """A wire.Task as the dict td_dump prints."""
    out = {'pid': task.pid, 'tgid': task.tgid}
    for group, value in (('base', task.base), ('cred', task.cred), ('stat', task.stat)):
        if value is not None:
            out.update(('%s.%s' % (group, k), v) for k, v in value._asdict().items())
    return out


def td_parse(text):
    """td_dump's task lines as dicts; its vma and vma_stat lines; its ends."""
    tasks, vmas, stats, ends = [], [], [], []
    for line in text.splitlines():
        if line.startswith('vma '):
            vmas.append(line.split(' ', 2)[2])
        elif line.startswith('vma_stat '):
            stats.append(line.split(' ', 2)[2])
        elif line.startswith('end '):
            ends.append(dict(w.split('=', 1) for w in line.split()[1:]))
        else:
            task = {}
            for word in line.split(' '):
                k, v = word.split('=', 1)
                task[k] = (re.sub(rb'\\x([0-9a-f]{2})', lambda m: bytes([int(m[1], 16)]),
                                  v.encode()).decode('utf-8', 'surrogateescape')
                           if k == 'base.comm' else int(v, 0))
            tasks.append(task)
    return tasks, vmas, stats, ends


SMAPS_KB = ('Rss', 'Pss', 'Shared_Clean', 'Shared_Dirty', 'Private_Clean', 'Private_Dirty',
            'Referenced', 'Anonymous', 'AnonHugePages', 'Swap')


def smaps_kb(pid):
    """What td_dump -m prints after "vma_stat PID " for each VMA of @pid,
    from its smaps, as lines without Pss (see td_stats())."""
    out, cur = [], None
    with open('/proc/%d/smaps' % pid) as f:
        for line in f:
            key, _, rest = line.partition(':')
            if ' ' not in key and key in SMAPS_KB:
                cur[key] = rest.split()[0]
            elif '-' in line.split(' ', 1)[0] and not line.startswith('VmFlags'):
                cur = {}
                out.append(cur)
    return [' '.join('%s=%s' % (k, d.get(k, '0')) for k in SMAPS_KB if k != 'Pss')
            for d in out]


def td_stats(lines):
    """td_dump's vma_stat lines without Pss: td_dump itself maps libc, and
    the front serves it, so the Pss of the pages they share with the task
    is another while it runs (the in-process check compares Pss, with no
    process of ours running meanwhile)."""
    return [' '.join(w for w in line.split() if not w.startswith('Pss=')) for line in lines]


def run_td(*args, under=()):
    """(td_dump's pid, exit status, stdout, stderr); @under: a command
    that runs it (aa-exec ...)."""
    p = subprocess.Popen(list(under) + [TD_DUMP] + [str(a) for a in args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    return p.pid, p.returncode, out, err


def start_front():
    """/dev/fuse, then task-diag-load again, this time with its front;
    whether /run/task-diag answers."""
    global checks
    checks += 1
    if not os.path.exists('/dev/fuse'):
        r = subprocess.run(['modprobe', 'fuse'], capture_output=True, text=True)
        if not os.path.exists('/dev/fuse'):
            problem('no /dev/fuse in the VM, modprobe fuse: exit %d %s; /proc/filesystems '
                    'has fuse: %s' % (r.returncode, r.stderr.strip(),
                                      'fuse' in open('/proc/filesystems').read()))
            return False
    t = time.monotonic()
    rc, out = loader_main()
    sys.stdout.write(out)
    if rc != 0 or not service.front_answers(MOUNTPOINT, timeout=5):
        log = ''
        try:
            with open(service.LOGFILE, 'rb') as f:
                log = f.read()[-1500:].decode(errors='replace')
        except OSError:
            pass
        problem('the front did not start: task-diag-load exit %d; mounted %s; its log:\n%s'
                % (rc, fuse_mounted(MOUNTPOINT), log))
        return False
    say('front on %s answers after %.1f s (pid %s)' % (MOUNTPOINT, time.monotonic() - t,
                                                       service.front_pid()))
    return True


def check_front(pids):
    """A protocol round through /run/task-diag with the C client."""
    global checks
    checks += 1
    if not (os.path.isfile(TD_DUMP) and os.access(TD_DUMP, os.X_OK)):
        problem('%s is missing: the host builds it (gcc -O2 -Wall -Wextra -Werror -o '
                'tests/bin/td_dump tests/td_dump.c)' % TD_DUMP)
        return
    if not start_front():
        return
    me = os.getpid()
    leaders = set(pids.values())

    # ALL, BASE|CRED|STAT: the processes of /proc, the test tasks as BPF sees them.
    before = proc_pids()
    td_pid, rc, out, err = run_td('-s', 'all', '-g', 'base,cred,stat', '-q', 7)
    after = proc_pids()
    bpf = {t.pid: td_fields(t) for t in task_diag.dump(wire.DUMP_CHILDREN, me, SHOW3,
                                                       source='bpf')}
    checks += 1
    if rc != 0 or err:
        problem('td_dump -s all: exit %d, stderr %r' % (rc, err))
        return
    tasks, _, _, ends = td_parse(out)
    say('td_dump -s all through %s: %d tasks, %s' % (MOUNTPOINT, len(tasks), ends))
    seen = {t['pid']: t for t in tasks}
    check_pid_set('td_dump -s all', set(seen), before, after, extra={td_pid})
    checks += 1
    if td_pid not in seen or seen[td_pid].get('base.comm') != 'td_dump' or len(ends) != 1 \
            or int(ends[0].get('tasks', -1)) != len(tasks) or ends[0].get('seq') != '7':
        problem('td_dump -s all: itself (%d) %s, end lines %s, %d tasks'
                % (td_pid, seen.get(td_pid), ends, len(tasks)))
    for name, pid in sorted(pids.items()):
        checks += 1
        if seen.get(pid) != bpf.get(pid):
            problem('td_dump -s all: %s (%d) differs from the BPF answer\n    td_dump: %s\n'
                    '    bpf:     %s' % (name, pid, seen.get(pid), bpf.get(pid)))
    checks += 1
    if leaders - set(seen):
        problem('td_dump -s all: test tasks %s missing' % sorted(leaders - set(seen)))

    # ONE of the stopped task, VMA (the programs' records, where the tier
    # has VMA code) and VMA|VMA_STAT (the driver's, from smaps, unless the
    # page walk is on): its maps, and its smaps in kB.
    stopped = pids['td-stopped']
    for groups in ('vma', 'vma,vma_stat'):
        label = 'td_dump -s one -p %d -g %s -m' % (stopped, groups)
        for attempt in range(5):
            smaps = smaps_kb(stopped)
            _, rc, out, err = run_td('-s', 'one', '-p', stopped, '-g', groups, '-m')
            tasks, vmas, stats, ends = td_parse(out)
            stats = td_stats(stats)
            if rc == 0 and not err and stats == (smaps if ',' in groups else []) and \
                    smaps == smaps_kb(stopped):
                break
        checks += 1
        if rc != 0 or err or [t['pid'] for t in tasks] != [stopped] or \
                tasks[0].get('vma.count') != len(vmas):
            problem('%s: exit %d, stderr %r, tasks %s, %d vma lines'
                    % (label, rc, err, tasks, len(vmas)))
            continue
        say('%s: %d VMAs (attempt %d)' % (label, len(vmas), attempt + 1))
        checks += 1
        got, want = parse_maps('\n'.join(vmas).encode('utf-8', 'surrogateescape')), \
            maps_lines(stopped)
        if got != want:
            problem('%s: VMA lines differ from /proc/%d/maps: %s' % (
                label, stopped, maps_diff(got, want)))
        if ',' in groups:
            checks += 1
            if stats != smaps:
                problem('%s: vma_stat lines differ from /proc/%d/smaps: first: %s'
                        % (label, stopped, [(g, w) for g, w in zip(stats, smaps) if g != w][:3]))
    check_apparmor(pids)


AA_PROFILE = """profile td-confined {
  file,
  capability,
  network,
  signal,
  unix,
  ptrace (read, trace) peer=td-confined,
}
"""


def check_apparmor(pids):
    """A reader confined by AppArmor (a profile that allows everything but
    ptrace outside itself: the maps of others), through /run/task-diag:
    VMA refused with EACCES, as its /proc refuses the maps; BASE answered.
    Where AppArmor runs (Debian's kernels) and apparmor_parser is there
    (the host's apparmor package)."""
    global checks
    if 'apparmor' not in lsm.active_lsms() or not os.path.isdir('/sys/kernel/security/apparmor'):
        say('AppArmor: not running on this kernel: not checked')
        return
    checks += 1
    if not shutil.which('apparmor_parser') or not shutil.which('aa-exec'):
        # the host's package (make setup installs it): its absence would
        # silently turn this check off where it matters
        problem('AppArmor runs here but apparmor_parser/aa-exec are missing '
                '(Debian: apt-get install apparmor)')
        return
    path = '/tmp/td-confined.aa'
    with open(path, 'w') as f:
        f.write(AA_PROFILE)
    r = subprocess.run(['apparmor_parser', '-r', '-K', path], capture_output=True, text=True)
    checks += 1
    if r.returncode:
        problem('AppArmor: apparmor_parser refused the test profile: %s' % r.stderr.strip())
        return
    under = ('aa-exec', '-p', 'td-confined', '--')
    stopped = pids['td-stopped']
    try:
        r = subprocess.run(list(under) + ['cat', '/proc/%d/maps' % stopped], capture_output=True)
        say('AppArmor: td-confined reading /proc/%d/maps: %s' % (
            stopped, 'refused' if r.returncode else 'allowed (this kernel does not mediate it)'))
        checks += 1
        _, rc, out, err = run_td('-s', 'one', '-p', stopped, '-g', 'vma', under=under)
        if rc != 1 or 'EACCES' not in err:
            problem('AppArmor: td-confined asked for VMA: exit %d, stderr %r (EACCES wanted)'
                    % (rc, err))
        checks += 1
        _, rc, out, err = run_td('-s', 'one', '-p', stopped, '-g', 'base', under=under)
        if rc != 0 or 'pid=%d ' % stopped not in out:
            problem('AppArmor: td-confined asked for BASE: exit %d, stderr %r' % (rc, err))
    finally:
        subprocess.run(['apparmor_parser', '-R', path], capture_output=True)


def maps_diff(got, want):
    """What differs between two lists of maps lines (helpers.vma), short."""
    diff = [(g, w) for g, w in zip(got, want) if g != w]
    return '%d lines against %d, %d differ; the first (got, maps): %s' % (
        len(got), len(want), len(diff), diff[:2])


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
        return None
    status = io.StringIO()
    loader.status(PIN_DIR, out=status)      # what task-diag-load --status prints
    sys.stdout.write(status.getvalue())
    return status.getvalue()


def main():
    global checks
    kernel = os.uname().release
    say('kernel %s, python %s' % (kernel, sys.version.split()[0]))
    if os.path.exists(PIN_DIR):
        say('%s was pinned before the check: unloading it first' % PIN_DIR)
        loader.unload(PIN_DIR)
    status_text = load()
    if status_text is None:
        say('%s FAIL kernel=%s checks=0 mismatches=1 seconds=%.1f reason=load-failed'
            % (TAG, kernel, time.monotonic() - T0))
        return 2
    pids, tier = {}, '?'
    try:
        tier = check_tier(status_text)
        pids = make_tree()
        say('tree ready after %.1f s' % (time.monotonic() - T0))
        run_checks(pids)
        check_new_groups(pids)
        check_cgroup(pids)
        check_watch()
        check_ps(pids)
        check_vmas(pids)
        check_busy()
        say('in-process checks done after %.1f s' % (time.monotonic() - T0))
        check_front(pids)
    except Exception:
        problem('the check crashed:\n' + traceback.format_exc())
    finally:
        kill_tree(pids)
        front = service.front_pid()
        rc, out = loader_main('--unload')
        sys.stdout.write(out)
        if rc != 0:
            problem('task-diag-load --unload failed (exit %s)' % rc)
        checks += bool(front)
        if front and ('front stopped' not in out or service.front_pid()
                      or fuse_mounted(MOUNTPOINT)):
            problem('task-diag-load --unload left the front (pid %d) running or mounted'
                    % front)
    if os.path.exists(PIN_DIR) or loader.pinned(PIN_DIR):
        problem('%s is still there after task-diag-load --unload' % PIN_DIR)
    with open('/proc/self/mounts') as f:
        left = [line.strip() for line in f if 'task-diag' in line or 'task_diag' in line]
    if left:
        problem('still mounted after task-diag-load --unload: %s' % left)
    say('%s %s kernel=%s checks=%d mismatches=%d seconds=%.1f tier=%s' % (
        TAG, 'FAIL' if problems else 'ok', kernel, checks, len(problems),
        time.monotonic() - T0, tier))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
