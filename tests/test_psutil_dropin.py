"""task_diag.psutil.process_iter() against psutil.process_iter(): the
same .info dicts (keys, their order, values and their types) for every
process of the machine and a made tree of 1000, from each source.

The made tree (SleepTree) is stopped (SIGSTOP) before anything is read:
a stopped process does not move, so for it both must be exactly equal,
CPU times and memory included.  It holds the cases: names of 15
characters completed from cmdline[0] or not, longer ones, names with
spaces, parentheses, a newline and bytes that are not UTF-8; command
lines of 4095, 4096 and 5000 bytes, with '\\r' and '\\r\\n', spaces,
empty arguments, bytes that are not UTF-8, rewritten as one string with
spaces (setproctitle) and running on into the environment; other users
(one that /etc/passwd lacks), saved ids that differ, nice values, a
controlling terminal, zombies (one with a long name), threads; and,
from tests/helpers/procs.py, a zombie leader whose threads live on.

The rest of the machine runs meanwhile.  Its processes are read by
psutil before and after ours, and each value must equal one of those
two reads or lie between them (numbers, field by field: CPU times and
memory); a process where some value lies outside is read again, up to
five rounds, and fails only if it never agrees.  The test's own process
is left out: the comparison itself moves its memory.
"""
import ctypes
import json
import os
import signal
import subprocess
import tempfile
import time

import psutil
import pytest

import task_diag
import task_diag.psutil as tdps
from task_diag import api, wire

from helpers import PY, TESTS, need
from helpers.infos import differ, same
from helpers import procs as helper_procs
from helpers.front import free_pid, wait_for
from helpers.ns import NOBODY, setpriv

TICK = 1 / os.sysconf('SC_CLK_TCK')
AD = 'access-denied'                    # an ad_value nothing else equals
ANSWERED = sorted(tdps.ANSWERED)
BENCH_ATTRS = ['pid', 'ppid', 'name', 'cmdline', 'username', 'status', 'num_threads',
               'cpu_times', 'memory_info']
# attributes the dump does not answer (psutil does, per process)
OTHERS = ['num_fds', 'num_ctx_switches', 'exe', 'cwd', 'cpu_num', 'io_counters']
UNKNOWN_UID = 54321                     # no /etc/passwd entry: username is str(uid)
SLEEP = os.path.realpath('/bin/sleep')
YES = os.path.realpath('/usr/bin/yes')
N_TREE = 1000
PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37
_libc = ctypes.CDLL(None, use_errno=True)


# --- the made tree ---------------------------------------------------------------

# One spawner: forks its children from the spec on its stdin (each sets
# its session, terminal, nice and ids, then execs sleep, or yes for free
# arguments: it fills a pipe nobody reads and waits), then zombies (a
# child that names itself and exits, never reaped) and threads; prints
# {pid, kids} and sleeps until the test kills it.  Bytes travel as
# latin-1 strings.
SPAWNER = r'''
import ctypes, json, os, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
spec = json.loads(sys.stdin.readline())
b = lambda s: s.encode('latin-1')
out_r, out_w = os.pipe()                # never read: yes fills it and waits
kids = []
for c in spec['children']:
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(out_w, 1)
            if c.get('tty'):
                os.setsid()
                os.open(c['tty'], os.O_RDWR)     # a session leader's first tty is its own
            if 'nice' in c:
                os.setpriority(os.PRIO_PROCESS, 0, c['nice'])
            if 'gid' in c:
                os.setgroups([])
                os.setresgid(*c['gid'])
            if 'uid' in c:
                os.setresuid(*c['uid'])
            os.execve(b(c['path']), [b(a) for a in c['argv']], {b'A': b'env-after-argv'})
        finally:
            os._exit(127)
    kids.append(pid)
for name in spec['zombies']:
    pid = os.fork()
    if pid == 0:
        libc.prctl(15, b(name), 0, 0, 0)
        os._exit(0)
    kids.append(pid)
stop = threading.Event()
for _ in range(spec['threads']):
    threading.Thread(target=stop.wait, daemon=True).start()
print(json.dumps({'pid': os.getpid(), 'kids': kids}), flush=True)
sys.stdin.read()
'''

# (link name, argv[0]) of links to yes: comm is the link's name (its
# first 15 bytes), psutil's name() completes a 15-byte one from
# cmdline[0]'s base name
NAMES = [
    ('yes', '/usr/bin/yes'),
    ('td-abcdefghijkl', '/x/td-abcdefghijklmnop'),        # 15: completed
    ('td-15-char-name', 'other-argv0'),                   # 15: not completed
    ('td-a-much-longer-name', '/usr/td-a-much-longer-name'),  # cut to 15, completed
    ('td-a-much-longer-one', 'td-a-much-longer-nam'),     # cut to 15, completed as argv[0]
    ('td (x) y)', 'td (x) y)'),
    ('td\nnl\\bs', 'td\nnl'),
    ('td-\xff\xfe-\x80', 'td-\xff-argv'),
    ('td-\xc3\xa9t\xc3\xa9', '/x/td-\xc3\xa9t\xc3\xa9'),  # UTF-8 e-acute
]
# argv after argv[0]
ARGS = [
    ['600'],
    ['600', ''],                        # an empty argument
    ['600', '0'],
    ['600', 'a b', ' '],
    ['600', 'cr\rx', 'crlf\r\nx'],      # read as text: both become '\n'
    ['600', '\xff\xfe'],
]


def tree_spec(links, tty_paths):
    """The children of 10 spawners: 980 sleeps and yeses, 10 zombies."""
    kinds = []
    for link, argv0 in NAMES:
        for rest in ARGS:
            kinds.append({'path': links[link], 'argv': [argv0] + rest})
    # command lines around TASK_DIAG_CMDLINE_MAX: argv[0] NUL "600" NUL
    for size in (4095, 4096, 4097, 5000, 70000):
        kinds.append({'path': SLEEP, 'argv': ['L' * (size - 5), '600']})
    for uid, gid in (((NOBODY,) * 3, (NOBODY,) * 3), ((UNKNOWN_UID,) * 3, (UNKNOWN_UID,) * 3),
                     ((1, 2, 3), (4, 5, 6)), ((0, 0, 0), (7, 0, 7))):
        kinds.append({'path': SLEEP, 'argv': ['sleep', '600'], 'uid': uid, 'gid': gid})
    for nice in (-5, 5, 19):
        kinds.append({'path': SLEEP, 'argv': ['sleep', '600'], 'nice': nice})
    for tty in tty_paths:
        kinds.append({'path': SLEEP, 'argv': ['sleep', '600'], 'tty': tty})
    # every kind once, the names and arguments again in every third
    # process, plain sleeps in the others
    common = kinds[:len(NAMES) * len(ARGS)]
    children = kinds + [common[i % len(common)] if i % 3 == 0 else
                        {'path': SLEEP, 'argv': ['/bin/sleep', '600']}
                        for i in range(980 - len(kinds))]
    spawners = []
    for s in range(10):
        spawners.append({'children': children[s * 98:(s + 1) * 98],
                         'zombies': ['zombie', 'zombie-long-name-x'] if s < 5 else [],
                         'threads': s % 4})
    return spawners


def state_of(pid):
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            return f.read().rsplit(b')', 1)[1].split()[0].decode()
    except (FileNotFoundError, ProcessLookupError):
        return None


def exe_of(pid):
    try:
        return os.readlink('/proc/%d/exe' % pid)
    except OSError:
        return None


def arg_area(pid):
    """(arg_start, arg_end) of /proc/PID/stat (fields 48, 49)."""
    with open('/proc/%d/stat' % pid, 'rb') as f:
        fields = f.read().rsplit(b')', 1)[1].split()
    return int(fields[45]), int(fields[46])


def rewrite_args(pid, end_nul):
    """What setproctitle() does: the arguments of (stopped) @pid made one
    string, its NULs turned into spaces (the last one too unless
    @end_nul: then the kernel reads on into the environment)."""
    start, end = arg_area(pid)
    with open('/proc/%d/mem' % pid, 'r+b', buffering=0) as mem:
        mem.seek(start)
        data = mem.read(end - start)
        new = data[:-1].replace(b'\0', b' ') + (b'\0' if end_nul else b' ')
        mem.seek(start)
        mem.write(new)


class SleepTree:
    """N_TREE processes under this one (10 spawners, their sleeps and
    zombies), all stopped; killed and reaped by pid at exit."""

    def __enter__(self):
        self.spawners, self.pids, self.zombies = [], [], []
        self.tmp = tempfile.mkdtemp(prefix='td-psutil-')
        self.ptys = [os.openpty() for _ in range(2)]
        flag = ctypes.c_int()
        _libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)
        self.subreaper = flag.value
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)     # the orphans come back to us
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self):
        links = {}
        for link, _ in NAMES:
            path = os.path.join(self.tmp.encode(), link.encode('latin-1'))
            os.symlink(YES, path)
            links[link] = path.decode('latin-1')
        specs = tree_spec(links, [os.ttyname(slave) for _, slave in self.ptys])
        for spec in specs:
            p = subprocess.Popen([PY, '-c', SPAWNER], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, cwd='/')
            self.spawners.append(p)
            p.stdin.write(json.dumps(spec).encode() + b'\n')
            p.stdin.flush()
        for p, spec in zip(self.spawners, specs):
            line = p.stdout.readline()
            assert line, 'a spawner failed'
            report = json.loads(line)
            kids = report['kids']
            self.pids.append(p.pid)
            self.pids += kids
            self.zombies += kids[len(spec['children']):]
        sleeps = [pid for pid in self.pids if pid not in self.zombies and
                  pid not in {p.pid for p in self.spawners}]
        wait_for(lambda: all(exe_of(pid) in (SLEEP, YES) for pid in sleeps),
                 'the children to exec', timeout=60)
        wait_for(lambda: all(state_of(pid) == 'Z' for pid in self.zombies), 'the zombies',
                 timeout=60)
        for pid in self.pids:
            if pid not in self.zombies:
                os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: all(state_of(pid) == ('Z' if pid in self.zombies else 'T')
                             for pid in self.pids), 'the tree to stop', timeout=60)
        # two whose command line setproctitle() rewrote (one string with
        # spaces; one running on into the environment)
        self.retitled = sleeps[:2]
        rewrite_args(sleeps[0], end_nul=True)
        rewrite_args(sleeps[1], end_nul=False)
        assert len(self.pids) == N_TREE

    def __exit__(self, *exc):
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        left = set(self.pids)
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            for pid in sorted(left):
                try:
                    done = os.waitpid(pid, os.WNOHANG)[0]
                except ChildProcessError:       # not ours (yet), or gone
                    done = pid if not os.path.exists('/proc/%d' % pid) else 0
                if done:
                    left.discard(pid)
            if left:
                time.sleep(0.01)
        for p in self.spawners:
            p.returncode = -signal.SIGKILL      # reaped above
            p.stdin.close()
            p.stdout.close()
        _libc.prctl(PR_SET_CHILD_SUBREAPER, self.subreaper, 0, 0, 0)
        for master, slave in self.ptys:
            os.close(master)
            os.close(slave)
        for name in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, name))
        os.rmdir(self.tmp)
        assert not left, 'test processes not reaped: %s' % sorted(left)


# a few from tests/helpers/procs.py: a zombie leader whose threads live
# on, another id set (fsuid/fsgid too), a process stopped under a tracer
# (status tracing-stop) and one waiting in vfork() (disk-sleep)
HELPER_SPEC = helper_procs.node('td-psutil-helpers', stop=True, children=[
    helper_procs.node('zleader', comm=b'zleader', threads=[b'zl-thr'], leader_exits=True,
                      stop=True),
    helper_procs.node('ids', comm=b'ids', uid=(1001, 1002, 1003, 1004),
                      gid=(2001, 2002, 2003, 2004), stop=True),
    helper_procs.node('traced', comm=b'traced', stop=True, children=[
        helper_procs.node('tracer', comm=b'tracer', trace_parent=True, stop=True)]),
    helper_procs.node('vfork', vfork_child='vfork-child'),
])


@pytest.fixture(scope='module')
def tree():
    need(os.geteuid() == 0, 'the test processes need root (other ids, /proc/PID/mem)')
    with SleepTree() as t, helper_procs.Tree(HELPER_SPEC) as helpers_tree:
        t.helpers = [p.pid for p in helpers_tree]
        yield t


def stable_pids(tree):
    return set(tree.pids) | set(tree.helpers)


# --- comparing ---------------------------------------------------------------------

def infos(procs):
    return {p.pid: p.info for p in procs}


def psutil_infos(attrs, ad_value=AD):
    psutil.process_iter.cache_clear()
    return infos(psutil.process_iter(attrs, ad_value=ad_value))


def ours(attrs, source, ad_value=AD):
    tdps.process_iter.cache_clear()
    return infos(tdps.process_iter(attrs, ad_value=ad_value, source=source))


def between(got, before, after):
    """@got equals @before or @after, or lies between them (numbers, and
    tuples of numbers field by field); types as psutil's."""
    if same(got, before) or same(got, after):
        return True
    if type(got) is not type(before) or type(before) is not type(after):
        return False
    if isinstance(got, tuple):
        return len(got) == len(before) == len(after) and all(map(between, got, before, after))
    if isinstance(got, (int, float)) and not isinstance(got, bool):
        return min(before, after) <= got <= max(before, after)
    return False


def check_machine(attrs, source, stable, ad_value=AD, rounds=5):
    """Ours against psutil's, read before and after.  Returns ours (the
    last round) after checking: every stable pid exactly equal (keys in
    psutil's order), every process psutil saw in both reads present,
    every value of the others in between, retried up to @rounds."""
    suspects = None
    for _ in range(rounds):
        before = psutil_infos(attrs, ad_value)
        got = ours(attrs, source, ad_value)
        after = psutil_infos(attrs, ad_value)
        assert list(got) == sorted(got), 'not in pid order'
        for pid in stable:
            assert pid in got, 'stable pid %d missing' % pid
            assert same(before[pid], after[pid]), 'a stopped process moved: %d' % pid
            assert same(got[pid], before[pid]), (pid, differ(got[pid], before[pid]))
        bad = {}
        for pid in set(before) & set(after):
            if pid == os.getpid() or pid in stable:
                continue
            if pid not in got:
                bad[pid] = 'missing'
                continue
            if list(got[pid]) != list(before[pid]):
                bad[pid] = ('keys', list(got[pid]), list(before[pid]))
                continue
            for k in before[pid]:
                if not between(got[pid][k], before[pid][k], after[pid][k]):
                    bad[pid] = (k, got[pid][k], before[pid][k], after[pid][k])
        if suspects is not None:
            bad = {pid: v for pid, v in bad.items() if pid in suspects}
        if not bad:
            return got
        suspects = set(bad)
    raise AssertionError('never agreed with psutil in %d rounds: %r' % (rounds, bad))


# --- the tests ----------------------------------------------------------------------

def test_tree_has_every_case(tree):
    """The cases the module doc promises are in the tree (so that the
    differential test below tests them)."""
    attrs = ANSWERED
    got = psutil_infos(attrs)
    tree_infos = [got[pid] for pid in stable_pids(tree)]
    names = {i['name'] for i in tree_infos}
    assert {'td-abcdefghijklmnop', 'td-15-char-name', 'td-a-much-longer-name',
            'td-a-much-longer-nam', 'td (x) y)', 'td\nnl\\bs'} <= names
    assert any('\udcff' in n for n in names)                 # not UTF-8
    assert sum(i['cmdline'] == AD for i in tree_infos) == 11  # zombies, the zombie leader
    assert sum(i['status'] == 'zombie' for i in tree_infos) == 11
    lengths = {len('\0'.join(i['cmdline'])) + 1 for i in tree_infos if i['cmdline'] != AD}
    assert {4095, 4096, 4097, 5000, 70000} <= lengths
    retitled = [got[pid]['cmdline'] for pid in tree.retitled]
    assert retitled == [['/usr/bin/yes', '600'], ['/usr/bin/yes', '600', '', 'A=env-after-argv']]
    assert {'nobody', str(UNKNOWN_UID)} <= {i['username'] for i in tree_infos}
    assert {-5, 0, 5, 19} <= {i['nice'] for i in tree_infos}
    assert sum(i['terminal'] is not None for i in tree_infos) == 2
    assert max(i['num_threads'] for i in tree_infos) >= 3
    assert {'stopped', 'tracing-stop', 'disk-sleep', 'zombie'} <= {i['status'] for i in tree_infos}


@pytest.mark.parametrize('attrs', [ANSWERED, BENCH_ATTRS, ['name', 'pid'], ['cmdline']],
                         ids=['answered', 'bench', 'name-pid', 'cmdline'])
def test_same_as_psutil(tree, source, attrs):
    """The differential test: every process, every answered attribute."""
    got = check_machine(attrs, source, stable_pids(tree))
    assert len(got) > N_TREE


def test_attrs_it_does_not_answer(tree, source):
    """Attributes of psutil's that the dump lacks come from psutil, per
    process, in as_dict()'s order, mixed with the dump's."""
    attrs = ['pid', 'name', 'memory_info'] + OTHERS
    check_machine(attrs, source, stable_pids(tree))


def test_all_attrs(tree, source):
    """attrs=[]: every attribute, as psutil's as_dict() gives them (it
    drops kernel threads, whose environ() raises NoSuchProcess)."""
    stable = stable_pids(tree)
    # A page's pss (and referenced bit) moves with the other processes
    # that map it, even for a stopped process: these two are compared by
    # type only (psutil answers them for us anyway).
    moving = ('memory_maps', 'memory_full_info')
    before, got = psutil_infos([]), ours([], source)
    assert set(stable) <= set(got)
    assert 2 not in got and 2 not in before         # kthreadd
    for pid in stable:
        assert list(got[pid]) == list(before[pid])
        for k in moving:
            assert type(got[pid][k]) is type(before[pid][k])
            got[pid][k] = before[pid][k] = None
        # cpu_percent() of a new Process is 0.0 in both
        assert same(got[pid], before[pid]), (pid, differ(got[pid], before[pid]))


DELAYACCT = '/proc/sys/kernel/task_delayacct'


def test_iowait_while_delay_accounting_is_on(tree, source):
    """With delay accounting on (sysctl kernel.task_delayacct, put back
    after), iowait is STAT_EXT's delayacct_blkio_ticks, as psutil reads
    field 42 of /proc/PID/stat; a task that waited for a disk read while
    it was on has some."""
    need(os.path.exists(DELAYACCT), 'no %s (a kernel before 5.14)' % DELAYACCT)
    with open(DELAYACCT) as f:
        was = f.read().strip()
    try:
        with open(DELAYACCT, 'w') as f:
            f.write('1')
        # block I/O waits of our own: reads that miss the page cache
        with tempfile.NamedTemporaryFile(dir='/var/tmp') as tmp:
            tmp.write(os.urandom(8 << 20))
            tmp.flush()
            os.fsync(tmp.fileno())
            os.posix_fadvise(tmp.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            with open(tmp.name, 'rb', buffering=0) as f:
                while f.read(1 << 16):
                    pass
        check_machine(['pid', 'cpu_times'], source, stable_pids(tree))
        mine = {p.pid: p.info for p in tdps.process_iter(['pid', 'cpu_times'], source=source)}
        assert mine[os.getpid()]['cpu_times'].iowait == \
            psutil.Process().cpu_times().iowait
    finally:
        with open(DELAYACCT, 'w') as f:
            f.write(was)


def test_zombies(tree, source):
    """A zombie's cmdline is ad_value (ZombieProcess); its name is not
    completed from it; the rest is answered."""
    got = ours(ANSWERED, source)
    want = psutil_infos(ANSWERED)
    assert len(tree.zombies) == 10
    for pid in tree.zombies:
        assert got[pid]['cmdline'] == AD
        assert got[pid]['status'] == 'zombie'
        assert got[pid]['name'] in ('zombie', 'zombie-long-nam')
        assert same(got[pid], want[pid])


def test_pid_order_and_the_fast_path(tree, source):
    """Sorted by pid; and the dump (with CMDLINE or without) is read by
    the columnar path, not the generic decoder's records."""
    for show in (tdps.SHOW, tdps.SHOW_FIXED):
        raw = api.raw(wire.DUMP_ALL, 0, show, source=source)
        cols = wire.columns(raw, show)
        assert cols is not None and cols.n > N_TREE
    pids = [p.pid for p in tdps.process_iter(['pid'], source=source)]
    assert pids == sorted(pids) and len(set(pids)) == len(pids)


def test_no_psutil_process_made_up_front(tree, source, monkeypatch):
    """psutil.Process is made only where psutil must answer: pids the dump
    lacks and command lines the dump may have cut, not per process."""
    tdps._types()                       # its one Process of ourselves, once
    made = []
    init = psutil.Process.__init__

    def counting(self, pid=None):
        made.append(pid)
        init(self, pid)
    monkeypatch.setattr(psutil.Process, '__init__', counting)
    dumped = {t.pid: t for t in task_diag_dump(source)}
    lacking = set(psutil.pids()) - set(dumped)
    long_cmd = {pid for pid, t in dumped.items() if len(t.cmdline) >= wire.TASK_DIAG_CMDLINE_MAX}
    for attrs in (None, ANSWERED):
        del made[:]
        procs = list(tdps.process_iter(attrs, source=source))
        allowed = lacking | (long_cmd if attrs else set())
        assert set(made) <= allowed | set(psutil.pids()) - set(dumped), made
        assert len(made) <= len(allowed) + 5, (len(made), len(allowed))
        assert len(procs) > 10 * len(made)


def task_diag_dump(source):
    return task_diag.dump(task_diag.DUMP_ALL, show=tdps.SHOW, source=source)


def test_invalid_attrs_like_psutil(source):
    """Wrong names and types fail as psutil's do, at the first next()."""
    for attrs, exc in ((['pid', 'bogus'], ValueError), (['nope', 'nada'], ValueError),
                       ('name', TypeError), ({'pid': 1}, TypeError)):
        it = tdps.process_iter(attrs, source=source)        # nothing raised yet
        with pytest.raises(exc) as ours_e:
            next(it)
        with pytest.raises(exc) as theirs_e:
            next(psutil.process_iter(attrs))
        assert str(ours_e.value) == str(theirs_e.value)


def test_fallthrough_and_cache(tree, source):
    """Anything but pid and info is the psutil.Process of that pid: its
    methods answer as psutil's; the objects stay between calls (as
    psutil's do), so cpu_percent() has its previous call; cache_clear()."""
    pid = tree.pids[5]
    tdps.process_iter.cache_clear()
    first = {p.pid: p for p in tdps.process_iter(['name'], source=source)}
    p = first[pid]
    assert p._proc is None                           # not made yet
    real = psutil.Process(pid)
    assert p.memory_maps() == real.memory_maps()
    assert p.open_files() == real.open_files()
    assert p.exe() == real.exe() in (SLEEP, YES)
    assert p.children() == real.children()
    assert p == real and hash(p) == hash(real) and real == p
    assert p.cpu_percent() == 0.0                    # the first call of this object
    second = {q.pid: q for q in tdps.process_iter(['ppid'], source=source)}
    assert second[pid] is p and p.info == {'ppid': real.ppid()}
    assert p.cpu_percent() == 0.0                    # its second: a stopped process
    assert p._proc._last_proc_cpu_times is not None
    # attrs=None: no info, as psutil's (after its cache is cleared)
    tdps.process_iter.cache_clear()
    bare = {q.pid: q for q in tdps.process_iter(source=source)}
    assert bare[pid] is not p and not hasattr(bare[pid], 'info')
    assert bare[pid]._proc is None
    psutil.process_iter.cache_clear()
    assert not hasattr(next(psutil.process_iter()), 'info')
    with pytest.raises(AttributeError):
        bare[pid].no_such_method


def test_vanished(tree, source, monkeypatch):
    """A pid that /proc lists but is gone, a process gone between the
    dump and psutil's part, a pid now another process's: as psutil, left
    out or NoSuchProcess."""
    child = subprocess.Popen(['sleep', '600'])
    try:
        wait_for(lambda: exe_of(child.pid) == SLEEP, 'sleep to exec', timeout=60)
        raws = {show: api.raw(wire.DUMP_ALL, 0, show, source=source)
                for show in (tdps.SHOW, tdps.SHOW_FIXED)}
    finally:
        child.kill()
        child.wait()
    gone = free_pid()
    listed = set(psutil.pids()) | {gone, child.pid}
    monkeypatch.setattr(tdps, '_listed', lambda: listed)
    monkeypatch.setattr(api, 'raw', lambda strategy, pid, show, source=None: raws[show])
    # the dump's answers: the child as it was (a snapshot, as if psutil
    # had read it just before it exited); the gone pid left out
    got = {p.pid: p for p in tdps.process_iter(['name', 'cmdline'], source=source)}
    assert gone not in got
    assert got[child.pid].info == {'name': 'sleep', 'cmdline': ['sleep', '600']}
    with pytest.raises(psutil.NoSuchProcess):
        got[child.pid].memory_maps()
    # psutil's part finds it gone: left out, as psutil leaves it out
    got = {p.pid for p in tdps.process_iter(['name', 'num_fds'], source=source)}
    assert child.pid not in got and gone not in got and tree.pids[0] in got
    # a pid now another process's (another start time): NoSuchProcess
    pid = tree.pids[3]
    stale = tdps._new_process(pid, (pid, 12.34))
    with pytest.raises(psutil.NoSuchProcess):
        stale.name()


# As nobody: the dump holds only nobody's own processes; every other pid
# is psutil's answer, with AccessDenied -> ad_value where psutil has it.
NOBODY_CHECK = r'''
import json, sys
import psutil
import task_diag
import task_diag.psutil as tdps
from task_diag import api, wire
attrs, source, stable, AD, tests = json.loads(sys.argv[1])
sys.path.insert(0, tests)
from helpers.infos import same
def run(it):
    return {p.pid: p.info for p in it}
before = run(psutil.process_iter(attrs, ad_value=AD))
ours = run(tdps.process_iter(attrs, ad_value=AD, source=source))
after = run(psutil.process_iter(attrs, ad_value=AD))
dumped = [t.pid for t in wire.iter_decode(api.raw(wire.DUMP_ALL, 0, tdps.SHOW, source=source))]
bad = [[pid, repr(ours.get(pid)), repr(before[pid])] for pid in stable
       if pid in before and not same(ours.get(pid), before[pid])]
print(json.dumps({'bad': bad, 'dumped': dumped, 'uid': __import__('os').getuid(),
                  'ad': sorted({pid for pid, i in ours.items() if AD in i.values()}),
                  'both': sorted(set(before) & set(after) - set(ours))}))
'''


def test_ad_value_as_nobody(tree, source, request):
    """Run as uid 65534: other users' processes come from psutil (which
    still answers most of their attributes), AccessDenied gives ad_value;
    nobody's own processes of the tree come from the dump; all equal."""
    if source == 'bpf':
        request.getfixturevalue('front')
        source = 'file'                 # what a reader that is not root uses
    attrs = ANSWERED + ['num_fds', 'exe']
    stable = sorted(stable_pids(tree))
    r = subprocess.run(setpriv(NOBODY) + [PY, '-c', NOBODY_CHECK,
                                          json.dumps([attrs, source, stable, AD, TESTS])],
                       capture_output=True, text=True, timeout=300, cwd='/')
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out['uid'] == NOBODY
    assert out['bad'] == []
    assert out['both'] == []                        # nobody lost
    mine = {pid for pid in tree.pids if psutil.Process(pid).uids().real == NOBODY}
    assert mine and mine <= set(out['dumped'])      # answered by the dump
    assert not set(out['dumped']) & (set(tree.pids) - mine)
    assert set(tree.pids) - mine - set(tree.zombies) <= set(out['ad'])  # num_fds, exe of root's

