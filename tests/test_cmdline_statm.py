"""STATM, CMDLINE and STAT_EXT, exactly as /proc gives them, through every
backend ('proc', 'bpf', 'file').

  STATM     /proc/PID/statm (size resident shared text lib data dt, pages);
            the thread group's in thread dumps; 0s without an mm
  CMDLINE   what one read(fd, 4096) of /proc/PID/cmdline returns; empty
            (the attribute present, no bytes) without an mm;
            Task.args = psutil.Process(pid).cmdline()
  STAT_EXT  /proc/PID/stat fields 22, 7, 9, 18, 19, 40, 41, 42 (start_time
            tty_nr flags priority nice rt_priority policy
            delayacct_blkio_ticks); per thread
            (/proc/PID/task/TID/stat) in thread dumps

The oracle is the test's own reader of /proc (not task_diag.procfs), so
the 'proc' backend is checked too.  The processes with known properties
are tests/cmdline_statm.c (what it does is set by its environment, its
argv being what is tested) and helpers.procs trees (a zombie, a thread
group whose leader exited); all but the tree's two sleeping parents are
stopped or dead, so their values must be equal in /proc before the dump,
in the dump and in /proc after it.  For the rest of the machine, see test_every_task_on_the_machine.
"""
import errno
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import time

import psutil
import pytest

import task_diag
from task_diag import tdconfig, wire
from task_diag.front import service
from task_diag.bpf_backend import BpfBackend, vma_supported
from task_diag.procfs.maps import read_vmas

from helpers import PY, build_c, need
from helpers import procs
from helpers.procs import node, wait_states
from helpers.ns import NOBODY, setpriv

BASE, CRED, STAT = wire.SHOW_BASE, wire.SHOW_CRED, wire.SHOW_STAT
STATM, CMDLINE, STAT_EXT = wire.SHOW_STATM, wire.SHOW_CMDLINE, wire.SHOW_STAT_EXT
NEW = STATM | CMDLINE | STAT_EXT
EVERYTHING = BASE | CRED | STAT | NEW
MAX = wire.TASK_DIAG_CMDLINE_MAX
PAGE = os.sysconf('SC_PAGE_SIZE')
PF_KTHREAD = 0x00200000
SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE = 0, 1, 2, 3, 5
OTHER_UID = 12345
GROUPS = ('cmdline', 'statm', 'stat_ext')

# StatExt field -> its number in /proc/PID/stat (man 5 proc: 1-based)
STAT_EXT_FIELDS = (('start_time', 22), ('tty_nr', 7), ('flags', 9), ('priority', 18),
                   ('nice', 19), ('rt_priority', 40), ('policy', 41),
                   ('delayacct_blkio_ticks', 42))
assert tuple(name for name, _ in STAT_EXT_FIELDS) == wire.STAT_EXT.names


@pytest.fixture
def source(every_source):
    """Every backend, the front's file included (conftest's every_source)."""
    return every_source


def dump(strategy, pid, source, show=NEW):
    return list(task_diag.dump(strategy, pid, show=show, source=source))


# --- /proc, read here ------------------------------------------------------

def read_file(path):
    with open(path, 'rb') as f:
        return f.read()


def read_once(path, size=MAX):
    """What one read() of @size bytes from the start of @path returns."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def stat_field(data, n):
    """Field @n (1-based, man 5 proc) of a stat file's bytes, n >= 3."""
    return data[data.rindex(b')') + 2:].split()[n - 3]


def proc_stat_ext(path):
    data = read_file(path)
    return wire.StatExt(*(int(stat_field(data, n)) for _, n in STAT_EXT_FIELDS))


def proc_statm(path):
    return wire.Statm(*(int(x) for x in read_file(path).split()))


def proc_view(d):
    """The three groups as /proc shows them for the task at @d (a
    /proc/PID or /proc/PID/task/TID directory); None when it is gone."""
    try:
        return {'cmdline': read_once(d + '/cmdline'), 'statm': proc_statm(d + '/statm'),
                'stat_ext': proc_stat_ext(d + '/stat')}
    except (FileNotFoundError, ProcessLookupError):
        return None


def task_dir(tgid, pid, per_thread):
    """Where /proc shows a task of a dump: the thread's directory in thread
    dumps, /proc/PID otherwise (for ONE of a thread id: /proc/TID)."""
    return '/proc/%d/task/%d' % (tgid, pid) if per_thread else '/proc/%d' % pid


def td_view(t):
    return {'cmdline': t.cmdline, 'statm': t.statm, 'stat_ext': t.stat_ext}


def mismatches(t, before, after, exact):
    """[(what, got, /proc before, /proc after)] of task @t against two
    /proc reads around its dump.  @exact (a stopped or dead task): nothing
    may move, and every value must be /proc's.  Otherwise a value (cmdline,
    or one field of statm and stat_ext) is compared only when /proc showed
    it the same before and after the dump: one that moved in between is
    left to the retries of the caller."""
    got, out = td_view(t), []
    for group in GROUPS:
        g, b, a = got[group], before[group], after[group]
        if exact:
            if a != b:
                out.append((group + ' changed in /proc', None, b, a))
            elif g != b:
                out.append((group, g, b, a))
        elif group == 'cmdline':
            if a == b and g != b:
                out.append((group, g, b, a))
        elif g is None:
            out.append((group, None, b, a))
        else:
            out.extend(('%s.%s' % (group, name), gv, bv, av)
                       for name, gv, bv, av in zip(b._fields, g, b, a) if bv == av and gv != bv)
    return out


def check(tasks, expect, per_thread, before, after, exact):
    """@tasks hold each pid of @expect ({pid: tgid}) once, with /proc's
    values; returns them by pid."""
    seen = {}
    for t in tasks:
        assert t.pid not in seen, 'task %d twice' % t.pid
        seen[t.pid] = t
    errors = []
    for pid, tgid in sorted(expect.items()):
        assert pid in seen, 'task %d (of %d) missing' % (pid, tgid)
        t = seen[pid]
        assert t.tgid == tgid, (t.pid, t.tgid, tgid)
        assert type(t.cmdline) is bytes and len(t.cmdline) <= MAX, t
        assert type(t.statm) is wire.Statm and type(t.stat_ext) is wire.StatExt, t
        bad = mismatches(t, before[pid], after[pid], pid in exact)
        errors.extend('task %d/%d %s: got %r, /proc %r then %r' % ((tgid, pid) + b)
                      for b in bad)
    assert not errors, '\n'.join(errors)
    return seen


def views(expect, per_thread):
    out = {}
    for pid, tgid in expect.items():
        v = proc_view(task_dir(tgid, pid, per_thread))
        assert v is not None, 'task %d of %d is gone' % (pid, tgid)
        out[pid] = v
    return out


def psutil_args(pid):
    """psutil's Process.cmdline(); [] for a zombie (psutil raises)."""
    try:
        return psutil.Process(pid).cmdline()
    except psutil.ZombieProcess:
        return []


def encode_tty(rdev):
    """tty_nr as the kernel shows it: new_encode_dev() of the device."""
    major, minor = os.major(rdev), os.minor(rdev)
    return (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)


def joined(argv):
    """The argument area of a process exec'd with @argv."""
    return b''.join(a + b'\0' for a in argv)


# --- the processes ----------------------------------------------------------

@pytest.fixture(scope='module')
def helper():
    """tests/cmdline_statm.c built into a directory every uid can reach."""
    tmp = tempfile.mkdtemp(prefix='td-cmdline-')
    try:
        os.chmod(tmp, 0o755)
        yield build_c('cmdline_statm.c', os.path.join(tmp, 'cmdline_statm'), '-O1', '-Wall',
                      '-Wextra', '-Werror', '-pthread')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class Kid:
    """One process of cmdline_statm.c and what it reported: pid, tids and
    its other key=value words (report)."""

    def __init__(self, label, popen, argv):
        self.label, self.p, self.pid, self.argv = label, popen, popen.pid, argv
        self.tids, self.report, self.expect = [popen.pid], {}, None

    def __repr__(self):
        return 'Kid(%s, pid=%d, tids=%s)' % (self.label, self.pid, self.tids)


class Kids:
    """Starts processes of cmdline_statm.c; kills and reaps every one, by
    pid, at close(), whatever happened."""

    def __init__(self, exe):
        self.exe = exe
        self.kids = {}
        self.keep = []                  # descriptors closed once all died (a pty master)

    def __getitem__(self, label):
        return self.kids[label]

    def __iter__(self):
        return iter(self.kids.values())

    def start(self, label, argv=None, env=None, title=None, prefix=(), stop=True, stdin=None):
        """@argv: its argv (bytes; argv[0] too, the program is named apart),
        or, under @prefix (setpriv), the arguments after argv[0] (then the
        program's path); @title: bytes written to its stdin (TD_MODE=title)."""
        environ = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'TD_STOP': '1' if stop else '0'}
        environ.update(env or {})
        if prefix:
            argv = [self.exe.encode()] + list(argv or [])
            cmd, executable = list(prefix) + argv, None
        else:
            argv = list(argv or [b'td-' + label.encode()])
            cmd, executable = argv, self.exe
        p = subprocess.Popen(cmd, executable=executable, env=environ, cwd='/',
                             stdin=subprocess.PIPE if title is not None else
                             (stdin if stdin is not None else subprocess.DEVNULL),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        kid = self.kids[label] = Kid(label, p, argv)
        if title is not None:
            p.stdin.write(title)
            p.stdin.close()
        words = self._report(p).split()
        assert words[0] == 'ready', words
        kid.report = dict(w.split('=', 1) for w in words[1:])
        assert int(kid.report['pid']) == p.pid
        kid.tids = sorted(int(x) for x in kid.report['tids'].split(','))
        if stop:
            wait_states(p.pid, 'T')
        return kid

    @staticmethod
    def _report(p, timeout=30):
        fd, buf = p.stdout.fileno(), b''
        while not buf.endswith(b'\n'):
            if not select.select([fd], [], [], timeout)[0]:
                raise AssertionError('pid %d did not report' % p.pid)
            chunk = os.read(fd, 65536)
            if not chunk:
                p.wait(10)
                raise AssertionError('pid %d failed: %s' % (p.pid, p.stderr.read().decode()))
            buf += chunk
        return buf.decode()

    def close(self):
        for kid in self.kids.values():
            try:
                os.kill(kid.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for kid in self.kids.values():
            try:
                kid.p.wait(20)
            except subprocess.TimeoutExpired:
                pass
            for f in (kid.p.stdin, kid.p.stdout, kid.p.stderr):
                if f:
                    f.close()
        for fd in self.keep:
            os.close(fd)
        self.keep = []


def long_argv(total):
    """An argv whose NUL-terminated strings take exactly @total bytes."""
    argv = [b'td-long-%d' % total]
    used, i = len(argv[0]) + 1, 0
    while total - used >= 200:
        argv.append((b'%05d-' % i + b'abcdefghijklmnopqrstuvwxyz' * 4)[:99])
        used, i = used + 100, i + 1
    argv.append((b'%05d+' % i + b'ABCDEFGHIJKLMNOPQRSTUVWXYZ' * 8)[:total - used - 1])
    assert len(joined(argv)) == total
    return argv


LONG = (MAX - 1, MAX, MAX + 1, 10000, 200000)
ODD_ARGS = [b'td-odd', b'\xff\xfe', b'caf\xc3\xa9', b'a b  c', b'cr\rin', b'crlf\r\n', b'\r',
            b'', b' lead', b'tail ', b'\x80', b'tab\there', b'\n']
TITLE_PAD = {'TD_PAD': 'p' * 8000}      # an environment area longer than a page
TITLE_LONG = b'td title rewritten past its arguments, with spaces ' + b'x' * 300
TITLE_PAGE = (b'page title ' + b'y' * 89) * 60      # 6000 bytes, no NUL in the first page
TITLE_SHORT_ARGV = [b'td-title-short-argv0', b'first-argument', b'second-argument']
TITLE_EXACT_ARGV = [b'td-title-exact', b'abc']
MEM_PAGES, MEM_SHARED = 100, 30
VMAS = 1200         # VMA records of some 80 KiB: a task over several messages
THREAD_SCHED = ('nice:7', 'fifo:10', 'batch:3')    # one each, after the leader ('nice:1')
SCHED_CASES = {     # label: (TD_SCHED, (policy, rt_priority, priority, nice))
    'sched-fifo': ('fifo:42', (SCHED_FIFO, 42, -43, 0)),
    'sched-rr': ('rr:7', (SCHED_RR, 7, -8, 0)),
    'sched-batch': ('batch:5', (SCHED_BATCH, 0, 25, 5)),
    'sched-idle': ('idle', (SCHED_IDLE, 0, 20, 0)),
    'sched-nice': ('nice:-5', (SCHED_OTHER, 0, 15, -5)),
}


def start_all(kids):
    """Every stopped process of the module, each with .expect, its
    cmdline's bytes."""
    for total in LONG:
        kids.start('long%d' % total, long_argv(total)).expect = joined(long_argv(total))[:MAX]
    kids.start('odd', ODD_ARGS).expect = joined(ODD_ARGS)
    one = [b'td one argument with spaces']
    kids.start('one-arg', one).expect = joined(one)
    # execve(argv = {NULL}): the kernel gives it one empty argument (5.18)
    kids.start('empty', [b'td-empty'], env={'TD_MODE': 'empty'}).expect = b'\0'
    # titles: the argument area rewritten (setproctitle)
    kids.start('title-long', [b'td-title-long', b'ab'], dict(TITLE_PAD, TD_MODE='title'),
               TITLE_LONG).expect = TITLE_LONG + b'\0'
    kids.start('title-page', [b'td-title-page', b'ab'], dict(TITLE_PAD, TD_MODE='title'),
               TITLE_PAGE).expect = TITLE_PAGE[:PAGE]
    kids.start('title-short', TITLE_SHORT_ARGV, dict(TITLE_PAD, TD_MODE='title'),
               b'short').expect = b'short\0' + joined(TITLE_SHORT_ARGV)[6:]
    area = len(joined(TITLE_EXACT_ARGV))
    exact = (b'E x a c t ' * area)[:area]
    kids.start('title-exact', TITLE_EXACT_ARGV, dict(TITLE_PAD, TD_MODE='title'),
               exact).expect = exact + b'\0'
    argv = [b'td-mem', b'pages']
    kids.start('mem', argv, {'TD_MODE': 'mem', 'TD_PAGES': str(MEM_PAGES),
                             'TD_SHARED': str(MEM_SHARED)}).expect = joined(argv)
    argv = [b'td-threads', b'four threads']
    kids.start('threads', argv, {'TD_SCHED': 'nice:1',
                                 'TD_THREADS': ';'.join(THREAD_SCHED)}).expect = joined(argv)
    for label, (spec, _) in SCHED_CASES.items():
        kids.start(label, [label.encode()], {'TD_SCHED': spec}).expect = joined([label.encode()])
    argv = long_argv(6000)
    kids.start('vmas', argv, {'TD_VMAS': str(VMAS)}).expect = joined(argv)[:MAX]
    # a command line of each length modulo 4: every padding of CMDLINE's
    # attribute (test_message_layout), whatever else runs on the machine
    for pad in range(4):
        argv = [b'td-pad' + b'x' * pad]             # 7 + pad bytes
        kids.start('pad%d' % pad, argv).expect = joined(argv)
    master, slave = os.openpty()
    kids.keep.append(master)            # closed after it died: no hangup meanwhile
    try:
        rdev = os.fstat(slave).st_rdev
        kid = kids.start('tty', [b'td-tty'], {'TD_MODE': 'tty'}, stdin=slave)
    finally:
        os.close(slave)
    kid.expect = joined([b'td-tty'])
    kid.tty_rdev = rdev


TREE = node('td-root', comm=b'td-root', children=[
    node('zparent', comm=b'td-zparent', children=[node('zombie', comm=b'td-zombie', zombie=True)]),
    node('zleader', comm=b'td-zleader', threads=[b'td-zl-1', b'td-zl-2'], leader_exits=True,
         stop=True),
])


class Made:
    """Everything this module made: kids (cmdline_statm.c), tree (helpers.procs)."""

    def __init__(self, kids, tree):
        self.kids, self.tree = kids, tree

    def tasks(self):
        """{pid: tgid} of every task made."""
        out = {tid: k.pid for k in self.kids for tid in k.tids}
        out.update((tid, p.pid) for p in self.tree for tid in p.tids)
        return out

    def processes(self):
        return [k.pid for k in self.kids] + [p.pid for p in self.tree]

    def stable(self):
        """Tasks that cannot change: stopped or dead (the tree's root and
        zparent sleep, but may run)."""
        out = {tid for k in self.kids for tid in k.tids}
        for label in ('zombie', 'zleader'):
            out.update(self.tree[label].tids)
        return out


@pytest.fixture(scope='module')
def made(helper):
    need(os.geteuid() == 0, 'the test processes need root (SCHED_FIFO, negative nice)')
    kids = Kids(helper)
    try:
        start_all(kids)
        with procs.Tree(TREE) as tree:
            yield Made(kids, tree)
    finally:
        kids.close()


def test_made_processes_are_what_they_say(made):
    """The scenarios exist, seen through /proc and /proc/PID/mem (else the
    rest proves little)."""
    kids = made.kids
    for k in kids:
        got = read_once('/proc/%d/cmdline' % k.pid)
        assert got == k.expect, (k, got[:200], k.expect[:200])
    for total in LONG:
        k = kids['long%d' % total]
        whole = read_file('/proc/%d/cmdline' % k.pid)
        assert len(whole) == total and whole[:MAX] == k.expect
    # a title past arg_end, whose last byte is no NUL: the kernel's
    # setproctitle case (get_mm_proctitle())
    for label in ('title-long', 'title-page', 'title-exact', 'title-short'):
        k = kids[label]
        stat = read_file('/proc/%d/stat' % k.pid)
        arg_start, arg_end, env_start, env_end = (int(stat_field(stat, n))
                                                  for n in (48, 49, 50, 51))
        assert (arg_start, arg_end, env_end) == tuple(
            int(k.report[n]) for n in ('arg_start', 'arg_end', 'env_end'))
        assert env_start == arg_end and env_end - arg_start > PAGE + 100
        with open('/proc/%d/mem' % k.pid, 'rb') as mem:
            mem.seek(arg_start)
            area = mem.read(env_end - arg_start)
        last = area[arg_end - arg_start - 1]
        if label == 'title-short':
            assert last == 0 and area.startswith(b'short\0')
        else:
            assert last != 0 and b'\0' not in area[:arg_end - arg_start], label
    assert b'\0' not in kids['title-page'].expect and len(kids['title-page'].expect) == PAGE
    assert len(kids['title-long'].expect) > len(joined([b'td-title-long', b'ab']))
    # memory: the two reads of statm of the process itself differ by the
    # mappings it made: anonymous pages are resident and data, the memfd's
    # resident and shared.  It mapped nothing after the second, but its
    # report and its stop may have faulted in more of libc's pages.
    k = kids['mem']
    before = [int(x) for x in k.report['before'].split(',')]
    after = wire.Statm(*(int(x) for x in k.report['after'].split(',')))
    delta = [a - b for a, b in zip(after, before)]
    assert delta == [MEM_PAGES + MEM_SHARED, MEM_PAGES + MEM_SHARED, MEM_SHARED, 0, 0,
                     MEM_PAGES, 0], (before, after)
    now = proc_statm('/proc/%d/statm' % k.pid)
    assert (now.size, now.text, now.data) == (after.size, after.text, after.data)
    assert now.resident >= after.resident and now.shared >= after.shared
    # scheduling, per thread and per process
    k = kids['threads']
    assert len(k.tids) == 1 + len(THREAD_SCHED)
    ext = [proc_stat_ext('/proc/%d/task/%d/stat' % (k.pid, tid)) for tid in k.tids]
    # (the FIFO thread keeps the nice it inherited from the leader)
    assert [(e.policy, e.rt_priority, e.nice) for e in ext] == [
        (SCHED_OTHER, 0, 1), (SCHED_OTHER, 0, 7), (SCHED_FIFO, 10, 1), (SCHED_BATCH, 0, 3)]
    assert ext[2].priority == -11 and ext[1].priority == 27
    assert proc_stat_ext('/proc/%d/stat' % k.pid) == ext[0]
    for label, (_, want) in SCHED_CASES.items():
        e = proc_stat_ext('/proc/%d/stat' % kids[label].pid)
        assert (e.policy, e.rt_priority, e.priority, e.nice) == want, label
    k = kids['tty']
    e = proc_stat_ext('/proc/%d/stat' % k.pid)
    assert e.tty_nr == encode_tty(k.tty_rdev) != 0
    assert all(proc_stat_ext('/proc/%d/stat' % x.pid).tty_nr == 0 for x in kids if x is not k)
    # the dead: no mm, no command line
    tree = made.tree
    assert wait_states(tree['zombie'].pid, 'Z')
    assert read_file('/proc/%d/cmdline' % tree['zombie'].pid) == b''
    assert proc_statm('/proc/%d/statm' % tree['zombie'].pid) == (0,) * 7
    zl = tree['zleader']
    assert len(zl.tids) == 3
    assert [wait_states(zl.pid, 'ZT')[t] for t in zl.tids] == ['Z', 'T', 'T']
    assert proc_statm('/proc/%d/statm' % zl.pid) == (0,) * 7
    assert proc_statm('/proc/%d/task/%d/statm' % (zl.pid, zl.tids[1])).size > 0
    assert read_file('/proc/%d/task/%d/cmdline' % (zl.pid, zl.tids[1])) != b''


# --- made processes, every strategy -----------------------------------------------

def check_made(made, tasks, expect, per_thread, before):
    after = views(expect, per_thread)
    return check(tasks, expect, per_thread, before, after, made.stable())


def test_dump_one(made, source):
    """ONE of every task made, thread ids included: /proc/TID's values."""
    for pid, tgid in sorted(made.tasks().items()):
        expect = {pid: tgid}
        before = views(expect, False)
        tasks = dump(wire.DUMP_ONE, pid, source)
        assert [(t.pid, t.tgid) for t in tasks] == [(pid, tgid)]
        check_made(made, tasks, expect, False, before)


def test_dump_thread(made, source):
    """THREAD of every process made: each thread's STAT_EXT, the group's
    STATM and CMDLINE (the zombie leader's own: none)."""
    tasks_of = {}
    for pid, tgid in made.tasks().items():
        tasks_of.setdefault(tgid, {})[pid] = tgid
    for tgid, expect in sorted(tasks_of.items()):
        before = views(expect, True)
        tasks = dump(wire.DUMP_THREAD, tgid, source)
        assert sorted(t.pid for t in tasks) == sorted(expect), tgid
        check_made(made, tasks, expect, True, before)


def test_dump_all(made, source):
    expect = {p: p for p in made.processes()}
    before = views(expect, False)
    tasks = dump(wire.DUMP_ALL, 0, source)
    assert all(t.pid == t.tgid for t in tasks)
    check_made(made, tasks, expect, False, before)


def test_dump_all_thread(made, source):
    expect = made.tasks()
    before = views(expect, True)
    tasks = dump(wire.DUMP_ALL_THREAD, 0, source)
    check_made(made, tasks, expect, True, before)


def test_dump_children(made, source):
    """CHILDREN of this process (the kids) and of the zombie's parent."""
    for parent, kids in ((os.getpid(), [k.pid for k in made.kids]),
                         (made.tree['zparent'].pid, [made.tree['zombie'].pid])):
        expect = {k: k for k in kids}
        before = views(expect, False)
        tasks = dump(wire.DUMP_CHILDREN, parent, source)
        check_made(made, [t for t in tasks if t.pid in expect], expect, False, before)


# --- made processes, each case ------------------------------------------------------

def one(pid, source, show=NEW):
    (t,) = dump(wire.DUMP_ONE, pid, source, show)
    assert t.pid == pid
    return t


@pytest.mark.parametrize('label', ['odd', 'one-arg', 'empty', 'title-long', 'title-page',
                                   'title-short', 'title-exact', 'mem', 'tty'] +
                         ['long%d' % n for n in LONG])
def test_cmdline(made, source, label):
    """The bytes of /proc/PID/cmdline, the first 4096 of a longer one;
    args as psutil splits the same bytes (a title with spaces at them,
    '\\r' as '\\n', bytes that are not UTF-8 as surrogate escapes)."""
    k = made.kids[label]
    t = one(k.pid, source, BASE | CMDLINE)
    assert t.cmdline == k.expect == read_once('/proc/%d/cmdline' % k.pid)
    assert t.statm is None and t.stat_ext is None
    if read_file('/proc/%d/cmdline' % k.pid) == t.cmdline:
        # the whole command line (not cut at 4096 bytes): psutil's split
        assert t.args == psutil_args(k.pid)
    if label == 'odd':
        assert t.args == [os.fsdecode(a).replace('\r\n', '\n').replace('\r', '\n')
                          for a in ODD_ARGS]
    if label in ('one-arg', 'title-long'):
        assert t.args == k.expect[:-1].decode().split(' ')
    if label == 'empty':
        assert t.args == ['']


@pytest.mark.parametrize('total', LONG[2:], ids=lambda n: 'long%d' % n)
def test_long_args_as_psutil(made, source, total):
    """A command line cut at 4096 bytes: args are psutil's, the last one
    cut where the bytes end (not the whole cut buffer as one argument, as
    psutil would split bytes that end without a NUL: a title's rule)."""
    k = made.kids['long%d' % total]
    t = one(k.pid, source, CMDLINE)
    assert t.cmdline == k.expect and len(t.cmdline) == MAX
    full = psutil_args(k.pid)
    args = t.args
    assert len(args) > 1 and args[:-1] == full[:len(args) - 1], (args[:3], full[:3])
    assert full[len(args) - 1].startswith(args[-1])


def test_statm_of_known_memory(made, source):
    """Memory the process mapped itself (stopped since): /proc's values,
    with the mappings it measured itself (test_made_processes_are_what_they_say:
    exactly those pages more between its two reads); the threads
    share their group's numbers."""
    k = made.kids['mem']
    after = wire.Statm(*(int(x) for x in k.report['after'].split(',')))
    before = proc_statm('/proc/%d/statm' % k.pid)
    t = one(k.pid, source, STATM)
    assert t.statm == before == proc_statm('/proc/%d/statm' % k.pid)
    assert (t.statm.size, t.statm.text, t.statm.data) == (after.size, after.text, after.data)
    assert t.statm.resident >= after.resident > MEM_PAGES + MEM_SHARED
    assert t.statm.shared >= after.shared >= MEM_SHARED
    assert t.statm.lib == t.statm.dt == 0
    assert t.cmdline is None and t.stat_ext is None and t.base is None
    k = made.kids['threads']
    group = proc_statm('/proc/%d/statm' % k.pid)
    assert group.resident > 0
    for strategy in (wire.DUMP_THREAD, wire.DUMP_ALL_THREAD):
        tasks = [t for t in dump(strategy, k.pid, source, STATM) if t.tgid == k.pid]
        assert sorted(t.pid for t in tasks) == k.tids
        assert {t.statm for t in tasks} == {group}


def test_stat_ext_per_thread(made, source):
    """Threads of one process with their own nice and policy: each its own
    in thread dumps and in ONE of its tid, the leader's in ALL."""
    k = made.kids['threads']
    want = {tid: proc_stat_ext('/proc/%d/task/%d/stat' % (k.pid, tid)) for tid in k.tids}
    assert len({(e.nice, e.policy) for e in want.values()}) == len(k.tids)
    for strategy in (wire.DUMP_THREAD, wire.DUMP_ALL_THREAD):
        got = {t.pid: t.stat_ext for t in dump(strategy, k.pid, source, STAT_EXT)
               if t.tgid == k.pid}
        assert got == want, wire.STRATEGY_NAMES[strategy]
    for tid in k.tids:
        assert one(tid, source, STAT_EXT).stat_ext == want[tid] == \
            proc_stat_ext('/proc/%d/stat' % tid)
    (t,) = [t for t in dump(wire.DUMP_ALL, 0, source, STAT_EXT) if t.pid == k.pid]
    assert t.stat_ext == want[k.pid]


@pytest.mark.parametrize('label', sorted(SCHED_CASES))
def test_stat_ext_scheduling(made, source, label):
    k = made.kids[label]
    policy, rt_priority, priority, nice = SCHED_CASES[label][1]
    e = one(k.pid, source, STAT_EXT).stat_ext
    assert e == proc_stat_ext('/proc/%d/stat' % k.pid)
    assert (e.policy, e.rt_priority, e.priority, e.nice) == (policy, rt_priority, priority, nice)
    assert e.flags & PF_KTHREAD == 0 and e.tty_nr == 0


def test_stat_ext_tty(made, source):
    k = made.kids['tty']
    e = one(k.pid, source, STAT_EXT).stat_ext
    assert e == proc_stat_ext('/proc/%d/stat' % k.pid)
    assert e.tty_nr == encode_tty(k.tty_rdev) != 0


def test_stat_ext_start_time(made, source):
    """start_time in clock ticks after boot, per task: psutil's create_time()
    of the same process within a tick, the same as /proc's."""
    boot = psutil.boot_time()
    tick = os.sysconf('SC_CLK_TCK')
    for k in made.kids:
        e = one(k.pid, source, STAT_EXT).stat_ext
        assert e.start_time == proc_stat_ext('/proc/%d/stat' % k.pid).start_time
        assert abs(boot + e.start_time / tick - psutil.Process(k.pid).create_time()) < 2 / tick


def test_dead_have_no_mm(made, source):
    """A zombie, and a leader that exited before its threads: no command
    line (the attribute there, empty), statm 0s; their threads have both."""
    tree = made.tree
    z = tree['zombie'].pid
    for strategy in (wire.DUMP_ONE, wire.DUMP_THREAD):
        (t,) = dump(strategy, z, source, NEW | BASE)
        assert t.base.state == wire.STATE_LETTERS.index('Z')
        assert t.cmdline == b'' and t.args == [] and t.statm == (0,) * 7
        assert t.stat_ext == proc_stat_ext('/proc/%d/stat' % z)
    assert psutil_args(z) == []
    zl = tree['zleader']
    t = one(zl.pid, source, NEW)
    assert t.cmdline == b'' and t.statm == (0,) * 7
    threads = {t.pid: t for t in dump(wire.DUMP_THREAD, zl.pid, source, NEW)}
    assert sorted(threads) == zl.tids
    assert threads[zl.pid].cmdline == b'' and threads[zl.pid].statm == (0,) * 7
    group = proc_statm('/proc/%d/task/%d/statm' % (zl.pid, zl.tids[1]))
    cmdline = read_once('/proc/%d/task/%d/cmdline' % (zl.pid, zl.tids[1]))
    assert group.size > 0 and cmdline
    for tid in zl.tids[1:]:
        assert threads[tid].statm == group and threads[tid].cmdline == cmdline


def kernel_threads():
    """{pid: StatExt} of the kernel threads (PF_KTHREAD) in /proc now."""
    out = {}
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                e = proc_stat_ext('/proc/%s/stat' % name)
            except (FileNotFoundError, ProcessLookupError):
                continue
            if e.flags & PF_KTHREAD:
                out[int(name)] = e
    return out


def test_kernel_threads(source):
    """kthreadd and the other kernel threads: no command line, statm 0s,
    PF_KTHREAD and their policy (migration/N: SCHED_FIFO 99) in STAT_EXT."""
    kthreads = kernel_threads()
    assert 2 in kthreads and len(kthreads) > 5
    t = one(2, source, NEW | BASE)
    assert t.base.comm == 'kthreadd'
    assert t.cmdline == b'' and t.args == [] and t.statm == (0,) * 7
    assert t.stat_ext.flags & PF_KTHREAD
    assert t.stat_ext == proc_stat_ext('/proc/2/stat')
    assert psutil_args(2) == []
    rt = [pid for pid, e in kthreads.items() if e.policy == SCHED_FIFO]
    assert rt, 'no SCHED_FIFO kernel thread (migration/N)'
    got = {t.pid: t for t in dump(wire.DUMP_ALL, 0, source, NEW)}
    checked = 0
    for pid, e in sorted(kthreads.items()):
        if pid not in got:
            assert not os.path.exists('/proc/%d' % pid), 'kernel thread %d missing' % pid
            continue
        t = got[pid]
        assert t.cmdline == b'' and t.statm == (0,) * 7, pid
        try:
            now = proc_stat_ext('/proc/%d/stat' % pid)
        except (FileNotFoundError, ProcessLookupError):
            continue        # exited since
        if now == e:        # the same before and after the dump
            assert t.stat_ext == e, pid
            checked += 1
    assert checked > 5
    for pid in rt[:3]:
        e = one(pid, source, STAT_EXT).stat_ext
        assert e.policy == SCHED_FIFO and e.rt_priority > 0 and e.priority == -1 - e.rt_priority
        assert e == proc_stat_ext('/proc/%d/stat' % pid)


def test_groups_alone(made, source):
    """Each group alone, or with the others, carries the same values; the
    groups not asked for are None."""
    for k in (made.kids['threads'], made.kids['odd']):
        for strategy in (wire.DUMP_ONE, wire.DUMP_THREAD):
            full = {t.pid: t for t in dump(strategy, k.pid, source, EVERYTHING)}
            assert full and all(t.base is not None and t.stat is not None for t in full.values())
            for show, name in ((STATM, 'statm'), (CMDLINE, 'cmdline'), (STAT_EXT, 'stat_ext')):
                tasks = dump(strategy, k.pid, source, show)
                assert [t.pid for t in tasks] == list(full)
                for t in tasks:
                    for group in GROUPS:
                        want = getattr(full[t.pid], group) if group == name else None
                        assert getattr(t, group) == want, (k, strategy, group)
                    assert t.base is None and t.cred is None and t.stat is None


def test_with_vmas(made, source):
    """A task whose VMA records take several messages (TASK_DIAG_FLAG_CONT):
    STATM, CMDLINE and STAT_EXT come once, after the VMA attribute of its
    last message, with /proc's values."""
    need(source == 'proc' or vma_supported(), 'the kernel lacks the open-coded VMA iterator')
    k = made.kids['vmas']
    show = BASE | wire.SHOW_VMA | NEW
    buf = task_diag.raw(wire.DUMP_ONE, k.pid, show, source=source)
    msgs = messages(buf)
    assert len(msgs) > 2 and all(m[:2] == (k.pid, k.pid) for m in msgs)
    assert [m[2] for m in msgs] == [wire.TASK_DIAG_FLAG_CONT] * (len(msgs) - 1) + [0]
    for m in msgs[:-1]:
        assert not {a[0] for a in m[3]} & {wire.TASK_DIAG_STATM, wire.TASK_DIAG_CMDLINE,
                                           wire.TASK_DIAG_STAT_EXT}
    assert [a[0] for a in msgs[-1][3]] == [wire.TASK_DIAG_VMA, wire.TASK_DIAG_STATM,
                                           wire.TASK_DIAG_CMDLINE, wire.TASK_DIAG_STAT_EXT]
    assert all(len(m) <= 32768 for m in _raw_messages(buf))
    (t,) = wire.decode(buf, show)
    want = proc_view('/proc/%d' % k.pid)
    assert td_view(t) == want and t.cmdline == k.expect
    with open('/proc/%d/maps' % k.pid) as f:
        assert len(t.vmas) == len(f.readlines()) > VMAS


def _raw_messages(buf):
    off = 0
    while off < len(buf):
        length, = struct.unpack_from('<I', buf, off)
        yield buf[off:off + length]
        off += (length + 3) & ~3


# --- the whole machine ------------------------------------------------------------

def machine(per_thread):
    """{pid: (tgid, /proc view, may read)} of every task (thread dumps) or
    process in /proc now; may read: readlink(exe) not refused, the kernel's
    ptrace_may_access verdict, which decides what a dump shows."""
    out = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        tgid = int(name)
        if per_thread:
            try:
                tids = [int(x) for x in os.listdir('/proc/%d/task' % tgid)]
            except (FileNotFoundError, ProcessLookupError):
                continue
        else:
            tids = [tgid]
        for tid in tids:
            d = task_dir(tgid, tid, per_thread)
            try:
                os.readlink(d + '/exe')
                may = True
            except PermissionError:
                may = False
            except OSError:
                may = True          # no mm (ENOENT): the check passed
            v = proc_view(d)
            if v is not None:
                out[tid] = (tgid, v, may)
    return out


@pytest.mark.parametrize('strategy', [wire.DUMP_ALL, wire.DUMP_ALL_THREAD],
                         ids=['all', 'threads'])
def test_every_task_on_the_machine(source, strategy):
    """Every process (ALL) or thread (ALL_THREAD) of the machine, running
    ones included, against /proc read just before and just after the dump.

    Tolerance for tasks that change: a value is compared only where /proc
    showed it equal before and after (cmdline whole; statm and stat_ext
    field by field: start_time, tty_nr, policy, rt_priority, text and, for
    the idle majority, size and resident are the same, while a busy task's
    resident is skipped when it moved).  A task whose dump differs from
    two equal reads around it is asked again, in a new dump of the same
    strategy between two new reads, up to 5 times: only a difference that
    persists is an error.  A task in /proc before and after (same start
    time) that the kernel lets us see must be in the dump; one that was
    born or died in between may or may not be."""
    per_thread = strategy == wire.DUMP_ALL_THREAD
    before = machine(per_thread)
    tasks = dump(strategy, 0, source, NEW)
    after = machine(per_thread)
    got = {}
    for t in tasks:
        assert t.pid not in got, 'task %d twice' % t.pid
        got[t.pid] = t
    lasting = {pid for pid in set(before) & set(after)
               if before[pid][1]['stat_ext'].start_time == after[pid][1]['stat_ext'].start_time
               and before[pid][2] and after[pid][2]}
    missing = lasting - set(got)
    assert not missing, 'tasks not in the dump: %s' % sorted(missing)
    # The FUSE daemon's memory moves while it serves the dump itself (and
    # our own while we decode it): their STATM is compared by the made
    # processes' tests, not here.
    busy = {os.getpid(), service.front_pid()}
    bad = {}
    for pid in lasting:
        if before[pid][0] in busy:
            continue
        tgid = before[pid][0]
        assert got[pid].tgid == tgid, (pid, got[pid].tgid, tgid)
        m = mismatches(got[pid], before[pid][1], after[pid][1], False)
        if m:
            bad[pid] = m
    for _ in range(5):
        if not bad:
            break
        b = machine(per_thread)
        again = {t.pid: t for t in dump(strategy, 0, source, NEW)}
        a = machine(per_thread)
        for pid in list(bad):
            if pid not in b or pid not in a or pid not in again:
                del bad[pid]        # gone: nothing left to compare
                continue
            m = mismatches(again[pid], b[pid][1], a[pid][1], False)
            if m:
                bad[pid] = m
            else:
                del bad[pid]
    assert not bad, '\n'.join('task %d (%s): %r' % (pid, read_once('/proc/%d/comm' % pid)
                                                       if os.path.exists('/proc/%d' % pid)
                                                       else 'gone', m)
                              for pid, m in sorted(bad.items()))
    # what was compared: user tasks with command lines and memory, kernel
    # threads without
    user = [pid for pid in lasting if got[pid].cmdline]
    kernel = [pid for pid in lasting if got[pid].stat_ext.flags & PF_KTHREAD]
    assert len(user) > 10 and len(kernel) > 5, (len(user), len(kernel))
    assert all(got[pid].statm.size > 0 for pid in user)
    assert all(got[pid].statm == (0,) * 7 and got[pid].cmdline == b'' for pid in kernel)


# --- another uid's processes, seen by uid 65534 -------------------------------------

READER = r'''
import json, os, sys
import task_diag
print(json.dumps({'pid': os.getpid()}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    out = {'reads': {}, 'may_read': {}}
    for name, (source, strategy, pid, show) in req['reads'].items():
        try:
            out['reads'][name] = [[t.pid, t.tgid, t.cmdline.hex(), list(t.statm),
                                   list(t.stat_ext)]
                                  for t in task_diag.dump(strategy, pid, show, source=source)]
        except OSError as e:
            out['reads'][name] = {'errno': e.errno, 'error': str(e)}
    for pid in req['verdicts']:
        try:
            os.readlink('/proc/%d/exe' % pid)
            out['may_read'][pid] = True
        except PermissionError:
            out['may_read'][pid] = False
    print(json.dumps(out), flush=True)
'''

NOBODY_ARGS = [b'td nobody arg', b'\xfe\xff', b'']


@pytest.fixture(scope='module')
def strangers(helper):
    """Stopped processes of root and of uid 12345, one of uid 65534, and a
    uid 65534 reader that dumps on request (a python, READER)."""
    need(os.geteuid() == 0, 'the test processes need root')
    need(shutil.which('setpriv'), 'setpriv (util-linux) is needed')
    kids = Kids(helper)
    try:
        env = {'TD_MODE': 'mem', 'TD_PAGES': '20', 'TD_SHARED': '5'}
        kids.start('root-target', [b'td-root-target', b'root \xff arg'], env)
        kids.start('other-target', [b'other uid arg'], env, prefix=setpriv(OTHER_UID))
        kids.start('own-target', NOBODY_ARGS, env, prefix=setpriv(NOBODY))
        for k, uid in (('root-target', 0), ('other-target', OTHER_UID), ('own-target', NOBODY)):
            assert os.stat('/proc/%d' % kids[k].pid).st_uid == uid
        reader = subprocess.Popen(setpriv(NOBODY) + [PY, '-c', READER], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd='/')
        try:
            line = reader.stdout.readline()
            assert line, reader.stderr.read().decode()
            assert json.loads(line)['pid'] == reader.pid
            yield kids, reader
        finally:
            reader.kill()
            reader.wait(20)
            for f in (reader.stdin, reader.stdout, reader.stderr):
                f.close()
    finally:
        kids.close()


def ask(reader, reads, verdicts):
    reader.stdin.write(json.dumps({'reads': reads, 'verdicts': verdicts}).encode() + b'\n')
    reader.stdin.flush()
    line = reader.stdout.readline()
    assert line, 'the reader died: %s' % reader.stderr.read().decode()
    return json.loads(line)


def bpf_as(pid, strategy, target, show):
    """The 'bpf' backend answering for process @pid, as it does for the
    front's readers (BpfBackend.viewer_of)."""
    b = BpfBackend()
    try:
        s = b.stream(strategy, target, show, 0, viewer=b.viewer_of(pid))
        try:
            data = s.read(1 << 62)
        finally:
            s.close()
    except OSError as e:
        return {'errno': e.errno, 'error': str(e)}
    finally:
        b.close()
    return [[t.pid, t.tgid, t.cmdline.hex(), list(t.statm), list(t.stat_ext)]
            for t in wire.decode(data, show)]


def test_other_uid_unseen_by_nobody(strangers, source):
    """uid 65534 sees none of the tasks of root or uid 12345 (the kernel
    refuses it their exe: /proc's ptrace check), though their cmdline and
    statm files are world-readable; its own processes it sees, with their
    command line, memory and STAT_EXT."""
    kids, reader = strangers
    root_t, other_t, own = kids['root-target'], kids['other-target'], kids['own-target']
    show = BASE | NEW
    # (no CHILDREN: of a parent uid 65534 may not see, the BPF paths
    # answer ESRCH, /proc's its visible children)
    reads = {'all': [source, wire.DUMP_ALL, 0, show],
             'all_threads': [source, wire.DUMP_ALL_THREAD, 0, show]}
    for k in (root_t, other_t, own):
        reads['one %s' % k.label] = [source, wire.DUMP_ONE, k.pid, show]
        reads['thread %s' % k.label] = [source, wire.DUMP_THREAD, k.pid, show]
    verdicts = [k.pid for k in (root_t, other_t, own)] + [reader.pid]
    before = {k.pid: proc_view('/proc/%d' % k.pid) for k in (root_t, other_t, own)}
    if source == 'bpf':
        out = {'reads': {name: bpf_as(reader.pid, *spec[1:]) for name, spec in reads.items()},
               'may_read': ask(reader, {}, verdicts)['may_read']}
    else:
        out = ask(reader, reads, verdicts)
    may = {int(k): v for k, v in out['may_read'].items()}
    assert may == {root_t.pid: False, other_t.pid: False, own.pid: True, reader.pid: True}
    got = out['reads']
    for name in ('all', 'all_threads'):
        assert isinstance(got[name], list), (name, got[name])
        shown = {row[0]: row for row in got[name]}
        assert root_t.pid not in shown and other_t.pid not in shown, name
        assert own.pid in shown and reader.pid in shown, name
        # the reader runs, but its command line does not move
        assert bytes.fromhex(shown[reader.pid][2]) == read_once('/proc/%d/cmdline' % reader.pid)
        assert all(os.stat('/proc/%d' % pid).st_uid == NOBODY for pid in shown
                   if os.path.exists('/proc/%d' % pid)), name
    for k in (root_t, other_t):
        for how in ('one', 'thread'):
            r = got['%s %s' % (how, k.label)]
            if source == 'proc':
                # /proc's fallback leaves the task out (an empty answer);
                # the BPF paths answer as for a missing pid (README)
                assert r == [] or r.get('errno') == errno.ESRCH, (how, k.label, r)
            else:
                assert isinstance(r, dict) and r['errno'] == errno.ESRCH, (how, k.label, r)
    want = proc_view('/proc/%d' % own.pid)
    assert want == before[own.pid]
    assert want['cmdline'] == joined(own.argv) and own.argv[1:] == NOBODY_ARGS
    for name in ('all', 'all_threads', 'one own-target', 'thread own-target'):
        rows = [row for row in got[name] if row[0] == own.pid]
        assert len(rows) == 1, name
        _, tgid, cmdline, statm, ext = rows[0]
        assert tgid == own.pid
        assert bytes.fromhex(cmdline) == want['cmdline'], name
        assert tuple(statm) == want['statm'] and want['statm'].resident >= 25, name
        assert tuple(ext) == want['stat_ext'], name


# --- the decoders and the bytes -----------------------------------------------------

def messages(buf):
    """(pid, tgid, flags, [(nla_type, nla_len, payload, padding)]) per
    message, read here with plain struct, independently of wire."""
    out, off = [], 0
    while off < len(buf):
        length, mtype, mflags = struct.unpack_from('<IHH', buf, off)
        assert (mtype, mflags) == (wire.TASK_DIAG_CMD_GET, wire.NLM_F_MULTI)
        assert 28 <= length <= len(buf) - off
        pid, tgid, flags = struct.unpack_from('<III', buf, off + 16)
        attrs, a = [], off + 28
        while a < off + length:
            nla_len, nla_type = struct.unpack_from('<HH', buf, a)
            assert 4 <= nla_len <= off + length - a
            end = a + ((nla_len + 3) & ~3)
            attrs.append((nla_type, nla_len, buf[a + 4:a + nla_len], buf[a + nla_len:end]))
            a = end
        assert a == off + length, 'attributes overrun the message at %d' % off
        out.append((pid, tgid, flags, attrs))
        off += (length + 3) & ~3
    return out


FIXED_SHOWS = [STATM, STAT_EXT, STATM | STAT_EXT, BASE | STATM, STAT | STAT_EXT,
               EVERYTHING & ~CMDLINE]
CMDLINE_SHOWS = [CMDLINE, CMDLINE | STAT_EXT, STATM | CMDLINE, BASE | CMDLINE, NEW,
                 EVERYTHING]


def generic(buf):
    return list(wire.iter_decode(buf))


def fast_only(monkeypatch, buf, show):
    """wire.decode(buf, show) with the generic decoder unreachable: proves
    that a fast path (_decode_fixed, or _decode_columns with CMDLINE)
    decoded @buf by itself."""
    with monkeypatch.context() as m:
        def no_generic(*_):
            raise AssertionError('the fast path fell back to the generic one')
        m.setattr(wire, 'iter_decode_pieces', no_generic)
        m.setattr(wire, 'iter_decode', no_generic)
        return wire.decode(buf, show)


@pytest.mark.parametrize('show', FIXED_SHOWS, ids=lambda s: 'show%#x' % s)
@pytest.mark.parametrize('strategy', [wire.DUMP_ALL, wire.DUMP_ALL_THREAD], ids=['all', 'threads'])
def test_fast_decoder_agrees(source, strategy, show, monkeypatch):
    """wire.decode(buf, show), with the generic path unreachable, gives what
    wire.decode(buf) and wire.iter_decode give, and what the bytes say."""
    buf = task_diag.raw(strategy, 0, show, source=source)
    fast = fast_only(monkeypatch, buf, show)
    assert len(fast) > 20
    assert fast == wire.decode(buf) == generic(buf)
    raw = messages(buf)
    assert [(t.pid, t.tgid) for t in fast] == [(r[0], r[1]) for r in raw]
    for t, (_, _, flags, attrs) in zip(fast, raw):
        assert flags == 0
        assert [a[0] for a in attrs] == [g for g in wire.ATTR_ORDER if show & (1 << g)]
        payload = {a[0]: a[2] for a in attrs}
        for group, attr, layout in (('statm', wire.TASK_DIAG_STATM, wire.STATM),
                                    ('stat_ext', wire.TASK_DIAG_STAT_EXT, wire.STAT_EXT)):
            value = getattr(t, group)
            if show & (1 << attr):
                assert value == layout.struct.unpack(payload[attr])
            else:
                assert value is None
        assert t.cmdline is None


@pytest.mark.parametrize('show', CMDLINE_SHOWS, ids=lambda s: 'show%#x' % s)
@pytest.mark.parametrize('strategy', [wire.DUMP_ALL, wire.DUMP_ALL_THREAD], ids=['all', 'threads'])
def test_decoders_agree_with_cmdline(made, source, strategy, show, monkeypatch):
    """With CMDLINE (messages of different lengths): the fast path alone
    (_decode_columns), decode without show, iter_decode and pyroute2's
    task_diag.nlmsg say the same, and what the bytes say; command lines
    of every length up to 4096 bytes, empty ones included (made)."""
    nlmsg = pytest.importorskip('task_diag.nlmsg')
    buf = task_diag.raw(strategy, 0, show, 99, source=source)
    tasks = fast_only(monkeypatch, buf, show)
    assert len(tasks) > 20
    assert tasks == wire.decode(buf) == generic(buf)
    assert all(type(t.cmdline) is bytes for t in tasks)
    dicts = nlmsg.to_dicts(buf)
    assert len(dicts) == len(tasks)
    for t, d, (_, _, flags, attrs) in zip(tasks, dicts, messages(buf)):
        assert flags == 0
        assert [a[0] for a in attrs] == [g for g in wire.ATTR_ORDER if show & (1 << g)]
        payload = {a[0]: a[2] for a in attrs}
        assert (d['pid'], d['tgid'], d['seq']) == (t.pid, t.tgid, 99)
        assert payload[wire.TASK_DIAG_CMDLINE] == t.cmdline == d['cmdline']['raw']
        assert d['cmdline']['args'] == t.args
        for group, attr, layout in (('statm', wire.TASK_DIAG_STATM, wire.STATM),
                                    ('stat_ext', wire.TASK_DIAG_STAT_EXT, wire.STAT_EXT)):
            value = getattr(t, group)
            if show & (1 << attr):
                assert value == layout.struct.unpack(payload[attr]) and \
                    d[group] == value._asdict()
            else:
                assert value is None and group not in d
        if show & BASE:
            assert d['base'] == t.base._asdict()
    lengths = {len(t.cmdline) for t in tasks}
    assert {0, 1, MAX} <= lengths and len(lengths) > 10


def test_message_layout(made, source):
    """Every group's attribute in the order BASE CRED STAT STATM CMDLINE
    STAT_EXT; STATM 56 bytes, STAT_EXT 32, CMDLINE its bytes alone
    (nla_len 4 + length, no NUL added, zero padding to 4 bytes; an empty
    one is a 4-byte attribute)."""
    buf = task_diag.raw(wire.DUMP_ALL_THREAD, 0, EVERYTHING, 7, source=source)
    order = [wire.TASK_DIAG_BASE, wire.TASK_DIAG_CRED, wire.TASK_DIAG_STAT, wire.TASK_DIAG_STATM,
             wire.TASK_DIAG_CMDLINE, wire.TASK_DIAG_STAT_EXT]
    lengths = set()
    empty = 0
    pads = {made.kids['pad%d' % n].pid: made.kids['pad%d' % n].expect for n in range(4)}
    for pid, _, flags, attrs in messages(buf):
        assert flags == 0
        assert [a[0] for a in attrs] == order, pid
        by = {a[0]: a for a in attrs}
        assert by[wire.TASK_DIAG_STATM][1] == 4 + 56
        assert by[wire.TASK_DIAG_STAT_EXT][1] == 4 + 40
        _, nla_len, payload, pad = by[wire.TASK_DIAG_CMDLINE]
        assert nla_len == 4 + len(payload) <= 4 + MAX
        assert pad == b'\0' * (-len(payload) & 3)
        lengths.add(len(payload) % 4)
        empty += not payload
        if pid in pads:
            assert payload == pads.pop(pid)
    # every padding seen (the pad kids alone give each), and empty ones
    assert not pads and lengths == {0, 1, 2, 3} and empty > 5


SEQ = 0x5eed


@pytest.mark.parametrize('source', ['bpf', 'file'], indirect=True)
def test_same_bytes_as_the_fallback(made, source):
    """For the stopped and dead tasks made here, every strategy's messages
    are byte for byte those of the /proc fallback (all groups)."""
    stable = made.stable()
    tasks = made.tasks()
    requests = [(wire.DUMP_ALL, 0, {p for p in made.processes() if p in stable}),
                (wire.DUMP_ALL_THREAD, 0, stable),
                (wire.DUMP_CHILDREN, os.getpid(), {k.pid for k in made.kids})]
    for pid in sorted(stable):
        requests.append((wire.DUMP_ONE, pid, {pid}))
        if pid == tasks[pid]:
            requests.append((wire.DUMP_THREAD, pid, {t for t in stable if tasks[t] == pid}))
    for strategy, pid, want in requests:
        got = {}
        for src in (source, 'proc'):
            buf = task_diag.raw(strategy, pid, EVERYTHING, SEQ, source=src)
            got[src] = {}
            off = 0
            while off < len(buf):
                length, = struct.unpack_from('<I', buf, off)
                p, = struct.unpack_from('<I', buf, off + 16)
                if p in want:
                    got[src][p] = buf[off:off + length]
                off += (length + 3) & ~3
            assert set(got[src]) == want, (src, strategy, pid)
        for p in sorted(want):
            assert got[source][p] == got['proc'][p], (strategy, pid, p)


@pytest.fixture(scope='module', params=['file', 'cow', 'wronly'])
def argv_over_file(request, tmp_path_factory):
    """A stopped process that mapped a file over its argument area (and
    read it), a private copy of it that it wrote, or write-only anonymous
    memory (tests/argv_over_file.c, ARGV_OVER)."""
    exe = build_c('argv_over_file.c', os.path.join(str(tmp_path_factory.mktemp('bin')),
                                                   'argv_over_file'), '-O2', '-Wall')
    data = tmp_path_factory.mktemp('data') / 'over'
    data.write_bytes(b'FILE BYTES, NOT THE ARGUMENTS\0' * 400)
    p = subprocess.Popen([exe, str(data)] + ['argument-%02d-' % i + 'x' * 400
                                             for i in range(40)],
                         env=dict(os.environ, ARGV_OVER=request.param))
    try:
        wait_states(p.pid, 'T')
        yield p.pid
    finally:
        p.kill()
        p.wait()


# what the three kinds of argv_over_file wrote over the arguments
OVER_BYTES = (b'FILE BYTES', b'CCCC', b'WWWW')


def test_argv_over_a_file_reads_as_proc(argv_over_file, source):
    """A file mapped over the argument area (or a written private copy of
    it, or write-only memory): /proc reads only readable anonymous VMAs
    (FOLL_ANON, no FOLL_FORCE), so it stops where the mapping begins; so
    does CMDLINE, rather than read on into the mapping's bytes."""
    pid = argv_over_file
    whole = read_file('/proc/%d/cmdline' % pid)
    assert not any(map(whole.__contains__, OVER_BYTES)) and whole.startswith(b'/')
    assert b'argument-39-' not in whole                 # cut where the file begins
    want = whole[:wire.TASK_DIAG_CMDLINE_MAX]
    (t,) = dump(wire.DUMP_ONE, pid, source)
    assert t.cmdline == want


# --- the two ways the programs read a command line ---------------------------------

@pytest.fixture(params=['direct', 'slow'])
def cmdline_way(request):
    """CMDLINE read by the programs through the direct map (td_directmap.h,
    td_config.cmdline_direct, which the loader turned on after its check),
    or with bpf_copy_from_user_task() (turned off for the test, then put
    back): (the way, a descriptor of td_config)."""
    cfg = tdconfig.read_pinned()
    need(cfg and cfg['cmdline'], 'the loaded object does not read CMDLINE (not sleepable)')
    if request.param == 'direct':
        need(cfg['cmdline_direct'], 'the loader did not turn the direct read on '
             '(task-diag-load --status says why)')
    fd = tdconfig.open_pinned()
    try:
        tdconfig.update(fd, cmdline_direct=int(request.param == 'direct'))
        yield request.param, fd
    finally:
        tdconfig.update(fd, cmdline_direct=cfg['cmdline_direct'])
        os.close(fd)


def slow_reads(fd):
    return tdconfig.read(fd)['cmdline_slow']


def test_cmdline_both_ways(made, cmdline_way):
    """Every made process's command line (long ones, titles, bytes that are
    not UTF-8, an empty argv) is /proc's either way; the direct way reads
    them all itself (their pages are present and anonymous)."""
    way, fd = cmdline_way
    slow = slow_reads(fd)
    checked = 0
    for k in made.kids:
        if k.expect is None or k.label.startswith('dead'):
            continue
        t = one(k.pid, 'bpf', BASE | CMDLINE)
        assert t.cmdline == k.expect == read_once('/proc/%d/cmdline' % k.pid), k
        checked += 1
    assert checked >= 10
    if way == 'direct':
        assert slow_reads(fd) == slow


def test_cmdline_over_a_file_both_ways(argv_over_file, cmdline_way):
    """A file's pages (present: the process read them) over the argument
    area: the direct read refuses them (not anonymous memory) and the slow
    way stops where /proc stops."""
    way, fd = cmdline_way
    pid = argv_over_file
    slow = slow_reads(fd)
    (t,) = dump(wire.DUMP_ONE, pid, 'bpf', BASE | CMDLINE)
    assert t.cmdline == read_file('/proc/%d/cmdline' % pid)[:MAX]
    assert not any(map(t.cmdline.__contains__, OVER_BYTES))
    if way == 'direct':
        assert slow_reads(fd) > slow


def test_direct_read_check_refuses_wrong_bases(made):
    """The loader's check (task_diag/loader/cmdline.py) turns the direct
    read away where the bases are wrong: it reads the wrong memory or
    none, and never gives it to a reader."""
    from task_diag.loader import cmdline as direct
    cfg = tdconfig.read_pinned()
    need(cfg and cfg['cmdline_direct'], 'the direct read is not on')
    fd = tdconfig.open_pinned()
    b = BpfBackend()
    try:
        tdconfig.update(fd, pw_page_offset=cfg['pw_page_offset'] + (1 << 30))
        with pytest.raises(direct.Refused):
            direct.check(b, fd, [made.kids['long10000'].pid, os.getpid()])
    finally:
        tdconfig.update(fd, pw_page_offset=cfg['pw_page_offset'])
        b.close()
        os.close(fd)


def test_cmdline_of_pages_replaced_meanwhile(tmp_path, cmdline_way):
    """A process that replaces its argument pages with fresh ones again and
    again (tests/argv_churn.c), beside one that fills and frees memory with
    0xa5 bytes: for 3 s, every CMDLINE read of the first shows its own bytes
    only (its arguments, or one of its letters), never a freed page's that
    another process took; and the reads go both ways (the direct read
    gives way where a page is being replaced)."""
    way, fd = cmdline_way
    exe = build_c('argv_churn.c', str(tmp_path / 'argv_churn'), '-O2', '-Wall', '-Werror')
    args = ['arg-%02d-' % i + 'x' * 300 for i in range(40)]
    kids = [subprocess.Popen([exe, 'fill'], stdout=subprocess.PIPE),
            subprocess.Popen([exe] + args, stdout=subprocess.PIPE)]
    try:
        for k in kids:
            assert k.stdout.readline() == b'ready\n'
        pid = kids[1].pid
        allowed = set(exe.encode() + b'\0arg-0123456789x' + bytes(range(ord('A'), ord('Z') + 1)))
        slow, reads, letters = slow_reads(fd), 0, set()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            (t,) = dump(wire.DUMP_ONE, pid, 'bpf', CMDLINE)
            assert set(t.cmdline) <= allowed, sorted(set(t.cmdline) - allowed)[:10]
            assert t.cmdline.startswith(exe.encode() + b'\0')
            letters |= set(t.cmdline) - set(exe.encode() + b'\0arg-0123456789x')
            reads += 1
        assert reads > 100 and len(letters) > 1     # it did read pages being replaced
        if way == 'direct':
            # two copies a read (the last byte of its 12 KiB of arguments,
            # then the first 4 KiB); some of them the direct way
            assert 0 < slow_reads(fd) - slow < 2 * reads
    finally:
        for k in kids:
            k.kill()
            k.wait()
            k.stdout.close()


# --- a plain (not sleepable) object: the direct read, and /proc for the rest ---------

@pytest.fixture(params=['walk', 'novma'])
def plain(request, pin_dir):
    """A plain object loaded under a pin directory of the test's own, with
    the direct read checked on (task_diag/loader/cmdline.py): what Debian
    12's 6.1 loads, which has no bpf_rcu_read_lock for a sleepable one.
    The walk tier reads VMAs itself; novma leaves them to the driver."""
    from task_diag.loader import cmdline as direct, load as loader
    tier = loader.TIER_BY_NAME[request.param]
    need(not tier.missing(loader.kernel_features()), 'tier %s is not for this kernel'
         % request.param)
    loader.load(tier.path(False), pin_dir, tier.number, cmdline=False)
    try:
        direct.enable(pin_dir)
    except direct.Refused as e:
        need(False, 'the direct read is refused here: %s' % e)
    assert tdconfig.read_pinned(pin_dir)['cmdline'] == 0
    b = BpfBackend(pin_dir)
    try:
        yield b
    finally:
        b.close()


def internal_marks(buf):
    """The programs' marks a driver must take away, left in a response."""
    return [(pid, hex(flags), [hex(t) for t, _, _ in attrs if t >= 0x3f00])
            for _, (pid, _, flags), attrs in wire.iter_messages(buf)
            if flags & 0xc0000000 or any(t >= 0x3f00 for t, _, _ in attrs)]


def test_plain_object_reads_cmdline(made, plain):
    """A plain object answers CMDLINE through the direct map: every made
    process's command line is /proc's, none of them from /proc."""
    fd = tdconfig.open_pinned(plain.pin_dir)
    try:
        slow = slow_reads(fd)
        show = BASE | CMDLINE | STAT_EXT | wire.SHOW_NS
        for k in made.kids:
            if k.expect is None or k.label.startswith('dead'):
                continue
            buf = plain.raw(wire.DUMP_ONE, k.pid, show)
            (t,) = wire.decode(buf, show)
            assert t.cmdline == k.expect == read_once('/proc/%d/cmdline' % k.pid), k
            assert t.stat_ext is not None and t.ns is not None
            assert not internal_marks(buf)
        assert slow_reads(fd) == slow
    finally:
        os.close(fd)


@pytest.mark.parametrize('show', [BASE | CMDLINE, BASE | CMDLINE | STAT_EXT | wire.SHOW_NS,
                                  BASE | wire.SHOW_VMA | CMDLINE],
                         ids=['cmdline', 'with-ns', 'with-vma'])
def test_plain_object_marks_what_it_cannot_read(argv_over_file, plain, show):
    """A command line in a file's pages: a plain object cannot read it (it
    may not sleep), marks the message, and the driver fills it from
    /proc, in DUMP_ONE and in DUMP_ALL, VMAs or not; no mark and no
    TD_ATTR_HOST_PID reach the reader."""
    pid = argv_over_file
    want = read_file('/proc/%d/cmdline' % pid)[:MAX]
    fd = tdconfig.open_pinned(plain.pin_dir)
    try:
        slow = slow_reads(fd)
        for strategy in (wire.DUMP_ONE, wire.DUMP_ALL):
            buf = plain.raw(strategy, pid, show)
            assert not internal_marks(buf)
            (t,) = [t for t in wire.decode(buf, show) if t.pid == pid]
            assert t.cmdline == want and not any(map(t.cmdline.__contains__, OVER_BYTES))
            if show & wire.SHOW_VMA:
                assert [v.start for v in t.vmas] == [v.start for v in
                                                     read_vmas('/proc/%d' % pid)]
        assert slow_reads(fd) >= slow + 2
    finally:
        os.close(fd)


def test_plain_object_without_the_direct_read(plain):
    """Turned off, a plain object leaves CMDLINE out: EOPNOTSUPP, which
    task_diag.dump() answers from /proc (api's fallback)."""
    fd = tdconfig.open_pinned(plain.pin_dir)
    try:
        tdconfig.update(fd, cmdline_direct=0)
        b = BpfBackend(plain.pin_dir)
        try:
            with pytest.raises(OSError) as e:
                b.raw(wire.DUMP_ONE, os.getpid(), BASE | CMDLINE)
            assert e.value.errno == errno.EOPNOTSUPP
        finally:
            b.close()
    finally:
        os.close(fd)
