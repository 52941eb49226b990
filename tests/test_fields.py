"""Every field of BASE, CRED and STAT, for every dump strategy and both
sources, against /proc/PID/task/TID/{stat,status}, psutil and syscalls,
on processes this module creates (tests/procs.py) and kills by pid.

The /proc reader here is the test's own (not task_diag.procfs'), so the
'proc' source is checked against an independent parser too.  Each value
is read before and after the dump: where both agree the dump must give
exactly that value; a counter that moved in between must lie between
them.  Stopped and zombie processes do not move: there every field,
STAT included, must be equal, and the two backends byte-identical.
"""
import errno
import os
import struct
import subprocess

import psutil
import pytest

import task_diag
from task_diag import wire

from helpers import procs
from helpers import need
from helpers.procs import node

SHOW3 = wire.SHOW_BASE | wire.SHOW_CRED | wire.SHOW_STAT
PF_KTHREAD = 0x00200000

# The capability sets of the 'caps' process: some bits dropped from the
# bounding set (low and high word), an inheritable set, permitted and
# effective sets that differ from each other and from the bounding set.
# NET_RAW SYS_MODULE SYS_ADMIN MKNOD BPF CHECKPOINT_RESTORE
BSET_DROP = (13, 16, 21, 27, 39, 40)
_all_caps = int(open('/proc/self/status').read().split('CapBnd:')[1].split()[0], 16)
_bset = _all_caps & ~sum(1 << c for c in BSET_DROP)
CAPS = dict(bset_drop=BSET_DROP,
            inh=(1 << 0 | 1 << 5 | 1 << 38) & _bset,               # CHOWN KILL PERFMON
            prm=_bset & ~(1 << 12 | 1 << 19 | 1 << 37),     # - NET_ADMIN SYS_PTRACE AUDIT_READ
            eff=_bset & ~(1 << 12 | 1 << 19 | 1 << 37 | 1 << 1 | 1 << 34))  # - DAC_OVERRIDE SYSLOG
UID = (12345, 23456, 34567, 45678)          # real, effective, saved, fs
GID = (22222, 33333, 44444, 55555)

SPEC = node('root', comm=b'td-test-root', threads=[b'root thread'], children=[
    node('threads', comm=b'a) b (c',
         threads=[b'thr one', b'123456789abcdef', b'\xff\xfe(\x80) x', b'this-thread-name-is-long'],
         thread_children=[node('thread-kid', comm=b'thread-kid')],
         children=[node('grand', comm=b'grand child', threads=[b'grand-thr'],
                        children=[node('great', comm=b'great')])]),
    node('stopped', comm=b'stopped (T)', threads=[b'stopped-thr1', b'stopped-thr2'], stop=True,
         children=[node('stopped-kid', comm=b'stopped kid', stop=True)]),
    node('traced', comm=b'traced', threads=[b'traced-thr'],
         children=[node('tracer', comm=b'tracer', threads=[b'tracer-thr'],
                        trace_parent='thread')]),
    node('traced-stopped', comm=b'traced stopped', stop=True,
         children=[node('tracer2', comm=b'tracer2', trace_parent=True)]),
    node('zparent', comm=b'zparent', children=[node('zombie', comm=b'zombie)(x', zombie=True)]),
    node('uid', comm=b'uid', uid=UID, gid=GID, uid_caps=1 << 5, threads=[b'uid-thr'], stop=True),
    node('caps', comm=b'caps', caps=CAPS, threads=[b'caps-thr'], stop=True),
    node('caps-running', comm=b'caps running', caps=CAPS),
    node('session', comm=b'session', setsid=True, children=[
        node('pgrp', comm=b'pgrp', setpgid=True, children=[
            node('pgrp-kid', comm=b'pgrp-kid', stop=True)])]),
    node('comm15', comm=b'123456789abcdef'),
    node('commlong', comm=b'this-comm-is-longer-than-15'),
    node('nonutf8', comm=b'\xff\xfe(\x80) x', stop=True),
    node('nasty', comm=b'x) Z 1 (2\n', stop=True),
    node('zleader', comm=b'zleader', threads=[b'zleader-thr'], leader_exits=True),
    node('zleader-stopped', comm=b'zleader stopped', threads=[b'zls-thr1', b'zls-thr2'],
         leader_exits=True, stop=True),
    node('vfork', vfork_child='vfork-child'),
    node('busy', comm=b'busy', work=0.05, threads=[b'busy-thr'], stop=True),
])


@pytest.fixture(scope='module')
def tree():
    need(os.geteuid() == 0, 'the test processes need root (setresuid, capset, ptrace)')
    with procs.Tree(SPEC) as t:
        yield t


def stable(tree):
    """Processes that cannot change while the module runs: stopped, zombie,
    or waiting in vfork() for a child that never execs."""
    return {p.pid for p in tree if p.spec.get('stop') or p.spec.get('zombie') or
            p.spec.get('vfork_child')}


def pairs(tree):
    """(tgid, tid) of every task of the tree."""
    return [(p.pid, tid) for p in tree for tid in p.tids]


# --- what /proc, psutil and the dump say, as flat dicts --------------------

COUNTERS = ('minflt', 'cminflt', 'majflt', 'cmajflt', 'utime', 'stime', 'cutime', 'cstime')


def read_stat(path):
    with open(path, 'rb') as f:
        data = f.read()
    lpar, rpar = data.index(b'('), data.rindex(b')')
    f = data[rpar + 2:].split()
    out = dict(comm=data[lpar + 1:rpar], state=f[0].decode(), ppid=int(f[1]),
               pgid=int(f[2]), sid=int(f[3]), flags=int(f[6]), threads=int(f[17]))
    out.update(zip(COUNTERS, (int(x) for x in f[7:15])))
    return out


def read_status(path):
    with open(path, 'rb') as f:
        lines = f.read().decode('ascii', 'replace').splitlines()
    return dict(line.split(':', 1) for line in lines if ':' in line)


def proc_view(tgid, tid, per_thread):
    """The fields of the task as /proc shows them; STAT from the thread's
    stat for thread dumps, from the process's otherwise."""
    d = '/proc/%d/task/%d' % (tgid, tid)
    st, status = read_stat(d + '/stat'), read_status(d + '/status')
    pst = st if per_thread else read_stat('/proc/%d/stat' % tgid)
    v = {'msg.pid': tid, 'msg.tgid': tgid, 'base.tgid': tgid, 'base.pid': tid,
         'base.ppid': st['ppid'], 'base.tpid': int(status['TracerPid']),
         'base.sid': st['sid'], 'base.pgid': st['pgid'], 'base.state': st['state'],
         'base.comm': st['comm']}
    for key, names in (('Uid', ('uid', 'euid', 'suid', 'fsuid')),
                       ('Gid', ('gid', 'egid', 'sgid', 'fsgid'))):
        v.update(('cred.' + n, int(x)) for n, x in zip(names, status[key].split()))
    for key, name in (('CapInh', 'cap_inheritable'), ('CapPrm', 'cap_permitted'),
                      ('CapEff', 'cap_effective'), ('CapBnd', 'cap_bset')):
        v['cred.' + name] = int(status[key], 16)
    v.update(('stat.' + n, pst[n]) for n in COUNTERS + ('threads',))
    return v


PSUTIL_STATES = {'running': 'R', 'sleeping': 'S', 'disk-sleep': 'D', 'stopped': 'T',
                 'tracing-stop': 't', 'dead': 'X', 'zombie': 'Z', 'parked': 'P', 'idle': 'I'}
TICK = os.sysconf('SC_CLK_TCK')


def psutil_view(tgid, tid, per_thread):
    """What psutil (and getsid/getpgid) say; psutil.Process(tid) reads
    /proc/TID, the thread's own name and state with process-wide times."""
    p = psutil.Process(tid)
    v = {'base.ppid': p.ppid(), 'base.sid': os.getsid(tid), 'base.pgid': os.getpgid(tid),
         'base.state': PSUTIL_STATES[p.status()],
         'base.comm': p.name().encode('utf-8', 'surrogateescape'),
         'stat.threads': p.num_threads()}
    v.update(zip(('cred.uid', 'cred.euid', 'cred.suid'), p.uids()))
    v.update(zip(('cred.gid', 'cred.egid', 'cred.sgid'), p.gids()))
    if per_thread:
        th = [t for t in psutil.Process(tgid).threads() if t.id == tid]
        assert len(th) == 1, (tgid, tid)
        user, system = th[0].user_time, th[0].system_time
    else:
        ct = psutil.Process(tgid).cpu_times()
        user, system = ct.user, ct.system
        v['stat.cutime'] = round(ct.children_user * TICK)
        v['stat.cstime'] = round(ct.children_system * TICK)
    v['stat.utime'], v['stat.stime'] = round(user * TICK), round(system * TICK)
    return v


def td_view(t):
    v = {'msg.pid': t.pid, 'msg.tgid': t.tgid}
    if t.base is not None:
        v.update(('base.' + k, getattr(t.base, k)) for k in wire.BASE.names)
        v['base.state'] = wire.STATE_LETTERS[t.base.state]
        v['base.comm'] = t.base.comm.encode('utf-8', 'surrogateescape')
    if t.cred is not None:
        v.update(('cred.' + k, getattr(t.cred, k)) for k in wire.CREDS.names)
    if t.stat is not None:
        v.update(('stat.' + k, getattr(t.stat, k)) for k in wire.STAT.names)
    return v


def compare(errors, where, got, before, after, ps, exact):
    """Append to @errors every field of @got that does not match."""
    for key, want in before.items():
        if key not in got:
            errors.append('%s %s: missing' % (where, key))
            continue
        g, a = got[key], after[key]
        if exact and a != want:
            errors.append('%s %s: a stopped task changed: %r -> %r' % (where, key, want, a))
        if want == a:
            if g != want:
                errors.append('%s %s: got %r, /proc %r' % (where, key, g, want))
        elif key.split('.')[1] in COUNTERS:
            if not want <= g <= a:
                errors.append('%s %s: got %r, /proc moved %r..%r' % (where, key, g, want, a))
        elif g not in (want, a):
            errors.append('%s %s: got %r, /proc %r then %r' % (where, key, g, want, a))
    for key, want in ps.items():
        if key not in got:
            continue
        if (exact or key.split('.')[1] not in COUNTERS) and got[key] != want and \
                (exact or before.get(key) == after.get(key)):
            errors.append('%s %s: got %r, psutil %r' % (where, key, got[key], want))


def check_tasks(tree, tasks, expect, per_thread, before, after):
    """@tasks (decoded dump) holds each (tgid, tid) of @expect once, with the
    values of /proc and psutil."""
    seen = {}
    for t in tasks:
        assert t.pid not in seen, 'task %d twice' % t.pid
        seen[t.pid] = t
    errors = []
    quiet = stable(tree)
    for tgid, tid in expect:
        assert tid in seen, 'task %d (of %d) missing' % (tid, tgid)
        t = seen[tid]
        assert t.base is not None and t.cred is not None and t.stat is not None, t
        ps = psutil_view(tgid, tid, per_thread)
        compare(errors, 'task %d/%d' % (tgid, tid), td_view(t), before[tid], after[tid], ps,
                tgid in quiet)
    assert not errors, '\n'.join(errors)


def snapshot(task_pairs, per_thread):
    return {tid: proc_view(tgid, tid, per_thread) for tgid, tid in task_pairs}


def dump(strategy, pid, source, show=SHOW3):
    return list(task_diag.dump(strategy, pid, show=show, source=source))


# --- the tree is what the tests think it is -------------------------------

def test_tree_has_every_case(tree):
    """The scenarios exist, seen through /proc (else the rest proves little)."""
    v = {tid: proc_view(tgid, tid, True) for tgid, tid in pairs(tree)}

    def base(label, key, tid=None):
        return v[tid or tree[label].pid]['base.' + key]

    assert len(tree['threads'].tids) == 5 and len(tree['stopped'].tids) == 3
    assert {base('stopped', 'state', t) for t in tree['stopped'].tids} == {'T'}
    assert base('traced-stopped', 'state') == 't'
    assert base('zombie', 'state') == 'Z'
    assert base('root', 'state') == 'S'
    assert base('vfork', 'state') == 'D' and tree['vfork-child'].ppid == tree['vfork'].pid
    assert base('zleader', 'state') == 'Z'
    assert base('zleader', 'state', tree['zleader'].tids[1]) == 'S'
    assert [base('zleader-stopped', 'state', t) for t in tree['zleader-stopped'].tids] == \
        ['Z', 'T', 'T']
    assert base('traced', 'tpid') == tree['tracer'].tids[1]         # a thread, not its tgid
    assert base('traced', 'tpid', tree['traced'].tids[1]) == 0     # only the leader is traced
    assert base('traced-stopped', 'tpid') == tree['tracer2'].pid
    assert tree['thread-kid'].ppid == tree['threads'].pid
    kid = tree['pgrp-kid'].pid
    assert len({kid, base('pgrp-kid', 'sid'), base('pgrp-kid', 'pgid')}) == 3
    assert base('session', 'sid') == base('session', 'pgid') == tree['session'].pid
    assert base('root', 'sid') != tree['root'].pid and base('root', 'pgid') != tree['root'].pid
    u = v[tree['uid'].pid]
    assert [u['cred.' + k] for k in ('uid', 'euid', 'suid', 'fsuid')] == list(UID)
    assert [u['cred.' + k] for k in ('gid', 'egid', 'sgid', 'fsgid')] == list(GID)
    assert u['cred.cap_permitted'] == u['cred.cap_effective'] == 1 << 5
    c = v[tree['caps'].pid]
    assert [c['cred.' + k] for k in ('cap_inheritable', 'cap_permitted', 'cap_effective',
                                     'cap_bset')] == [CAPS['inh'], CAPS['prm'], CAPS['eff'], _bset]
    assert len({CAPS['inh'], CAPS['prm'], CAPS['eff'], _bset}) == 4
    assert base('threads', 'comm') == b'a) b (c'
    assert base('comm15', 'comm') == b'123456789abcdef'
    assert base('commlong', 'comm') == b'this-comm-is-lo'
    assert base('nonutf8', 'comm') == b'\xff\xfe(\x80) x'
    assert base('nasty', 'comm') == b'x) Z 1 (2\n'
    busy = proc_view(tree['busy'].pid, tree['busy'].pid, False)
    assert busy['stat.cutime'] + busy['stat.cstime'] > 0 and busy['stat.cminflt'] > 100
    assert busy['stat.utime'] + busy['stat.stime'] > 0
    assert [base('threads', 'comm', t) for t in tree['threads'].tids[1:]] == [
        b'thr one', b'123456789abcdef', b'\xff\xfe(\x80) x', b'this-thread-nam']


# --- the strategies, each source --------------------------------------------

def test_dump_one(tree, source):
    """ONE of every task, thread ids included: that task alone, STAT of its
    whole process."""
    for tgid, tid in pairs(tree):
        before = snapshot([(tgid, tid)], False)
        tasks = dump(wire.DUMP_ONE, tid, source)
        after = snapshot([(tgid, tid)], False)
        assert [(t.pid, t.tgid) for t in tasks] == [(tid, tgid)]
        check_tasks(tree, tasks, [(tgid, tid)], False, before, after)


def test_dump_thread(tree, source):
    """THREAD of every task, the leader or another thread: every thread of
    its group, per-thread STAT."""
    for p in tree:
        group = [(p.pid, tid) for tid in p.tids]
        for query in p.tids:
            before = snapshot(group, True)
            tasks = dump(wire.DUMP_THREAD, query, source)
            after = snapshot(group, True)
            assert sorted(t.pid for t in tasks) == p.tids, (p, query)
            assert {t.tgid for t in tasks} == {p.pid}
            check_tasks(tree, tasks, group, True, before, after)


def test_dump_children(tree, source):
    """CHILDREN of every process: exactly its children (psutil agrees),
    one message each, whole-process STAT."""
    for p in tree:
        kids = sorted(q.pid for q in tree if q.ppid == p.pid)
        assert sorted(c.pid for c in psutil.Process(p.pid).children()) == kids
        expect = [(k, k) for k in kids]
        before = snapshot(expect, False)
        tasks = dump(wire.DUMP_CHILDREN, p.pid, source)
        after = snapshot(expect, False)
        assert sorted(t.pid for t in tasks) == kids, p
        assert all(t.pid == t.tgid for t in tasks)
        check_tasks(tree, tasks, expect, False, before, after)
    # the pytest process is the parent of the tree's root
    assert tree['root'].pid in [t.pid for t in dump(wire.DUMP_CHILDREN, os.getpid(), source)]


def test_dump_all(tree, source):
    """ALL: thread-group leaders only, each once, every process of the tree."""
    expect = [(p.pid, p.pid) for p in tree]
    before = snapshot(expect, False)
    tasks = dump(wire.DUMP_ALL, 0, source)
    after = snapshot(expect, False)
    assert all(t.pid == t.tgid == t.base.pid == t.base.tgid for t in tasks)
    threads = {tid for p in tree for tid in p.tids[1:]}
    assert not threads & {t.pid for t in tasks}
    assert os.getpid() in {t.pid for t in tasks}
    check_tasks(tree, tasks, expect, False, before, after)


def test_dump_all_thread(tree, source):
    """ALL_THREAD: every thread of the tree, each once, per-thread STAT."""
    expect = pairs(tree)
    before = snapshot(expect, True)
    tasks = dump(wire.DUMP_ALL_THREAD, 0, source)
    after = snapshot(expect, True)
    assert all(t.pid == t.base.pid and t.tgid == t.base.tgid for t in tasks)
    check_tasks(tree, tasks, expect, True, before, after)


def test_single_groups(tree, source):
    """Each group alone carries the same values as with the others."""
    p = tree['stopped']
    for strategy, per_thread in ((wire.DUMP_THREAD, True), (wire.DUMP_ONE, False)):
        full = {t.pid: t for t in dump(strategy, p.pid, source)}
        for show, name in ((wire.SHOW_BASE, 'base'), (wire.SHOW_CRED, 'cred'),
                           (wire.SHOW_STAT, 'stat')):
            tasks = dump(strategy, p.pid, source, show)
            assert tasks and [t.pid for t in tasks] == list(full)
            for t in tasks:
                for other in ('base', 'cred', 'stat'):
                    got = getattr(t, other)
                    assert got == (getattr(full[t.pid], name) if other == name else None)
        assert [(t.pid, t.base, t.cred, t.stat) for t in dump(strategy, p.pid, source, 0)] == \
            [(pid, None, None, None) for pid in full]


def test_first_reader_of_cpu_times(source):
    """The kernel scales utime/stime to the precise runtime (cputime_adjust)
    and keeps the result as a floor for the next reader: test a dump that
    is the first to read a busy process's times (no /proc stat read before),
    whole-process and per thread."""
    need(os.geteuid() == 0, 'the test processes need root')
    spec = node('busy', comm=b'busy', work=0.1, threads=[b'busy-thr'], stop=True)
    with procs.Tree(spec) as tree:
        p = tree['busy']
        whole = dump(wire.DUMP_ONE, p.pid, source)
        threads = dump(wire.DUMP_THREAD, p.pid, source)
        expect = [(p.pid, tid) for tid in p.tids]
        snap = snapshot(expect[:1], False)
        assert snap[p.pid]['stat.utime'] + snap[p.pid]['stat.stime'] >= 10
        check_tasks(tree, whole, expect[:1], False, snap, snapshot(expect[:1], False))
        snap = snapshot(expect, True)
        check_tasks(tree, threads, expect, True, snap, snapshot(expect, True))


# --- errors --------------------------------------------------------------

def _free_pid():
    """A pid that just existed and was reaped."""
    child = subprocess.Popen(['true'])
    child.wait()
    return child.pid


@pytest.mark.parametrize('strategy', wire.NEEDS_PID,
                         ids=[wire.STRATEGY_NAMES[s] for s in wire.NEEDS_PID])
def test_missing_pid_is_esrch(source, strategy):
    for pid in (_free_pid(), 0x7fffffff):
        with pytest.raises(OSError) as e:
            dump(strategy, pid, source)
        assert e.value.errno == errno.ESRCH, (strategy, pid)
        with pytest.raises(OSError) as e:
            task_diag.raw(strategy, pid, wire.SHOW_BASE, source=source)
        assert e.value.errno == errno.ESRCH, (strategy, pid)


@pytest.mark.parametrize('strategy', [5, 6, 0xff, 1 << 32, 2 ** 64 - 1])
def test_bad_strategy_is_einval(source, strategy):
    with pytest.raises(OSError) as e:
        dump(strategy, os.getpid(), source)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        task_diag.raw(strategy, os.getpid(), wire.SHOW_BASE, source=source)
    assert e.value.errno == errno.EINVAL


# --- the whole system --------------------------------------------------------

def _system_view(tgid, tid):
    v = proc_view(tgid, tid, True)
    return {k: x for k, x in v.items() if not k.startswith('stat.')}


def _comm_ok(td_comm, proc_name, flags):
    """task->comm against the name /proc shows: equal for user tasks; for
    kernel threads /proc may show a longer name that comm starts, and a
    workqueue worker's name continues with '-' or '+' and its work."""
    if not flags & PF_KTHREAD:
        return td_comm == proc_name
    if not 0 < len(td_comm) < wire.TASK_DIAG_COMM_LEN or not proc_name.startswith(td_comm):
        return False
    return td_comm == proc_name[:wire.TASK_DIAG_COMM_LEN - 1] or \
        proc_name[len(td_comm):len(td_comm) + 1] in (b'-', b'+')


def _system_mismatches(t, source):
    try:
        flags = read_stat('/proc/%d/task/%d/stat' % (t.tgid, t.pid))['flags']
        before = _system_view(t.tgid, t.pid)
    except (FileNotFoundError, ProcessLookupError):
        return []                   # gone since
    got = td_view(t)
    out = [k for k, want in before.items()
           if k != 'base.comm' and got[k] != want]
    if not _comm_ok(got['base.comm'], before['base.comm'], flags):
        out.append('base.comm')
    return [(k, got[k], before[k]) for k in out]


def test_every_task_of_the_system(source):
    """BASE and CRED of every task, kernel threads included (comm a prefix
    of their /proc name, idle ones in state I).  A task that changed
    between /proc and the dump is asked again (ONE) until both agree."""
    tasks = dump(wire.DUMP_ALL_THREAD, 0, source, wire.SHOW_BASE | wire.SHOW_CRED)
    kthreads = idle = 0
    errors = []
    for t in tasks:
        bad = _system_mismatches(t, source)
        for _ in range(20):
            if not bad:
                break
            try:
                again = dump(wire.DUMP_ONE, t.pid, source, wire.SHOW_BASE | wire.SHOW_CRED)
            except ProcessLookupError:
                bad = []
                break
            bad = _system_mismatches(again[0], source) if again else []
        if bad:
            errors.append('task %d/%d (%r): %r' % (t.tgid, t.pid, t.base.comm, bad))
        if t.base.ppid == 2 or t.pid == 2:
            kthreads += 1
            idle += t.base.state == wire.STATE_LETTERS.index('I')
    assert not errors, '\n'.join(errors)
    assert len(tasks) > 20 and kthreads > 5 and idle > 0, (len(tasks), kthreads, idle)


def _stat_mismatches(t, per_thread, before, after):
    """STAT of a task that may be running: what was stable must be equal,
    counters must lie between the two reads; utime and stime never drop
    below the first read and their sum not above the second (cputime_adjust
    moves time between them, and each is rounded down to ticks)."""
    got = td_view(t)
    bad = []
    for key, want in before.items():
        if not key.startswith('stat.'):
            continue
        g, a = got[key], after[key]
        if want == a:
            ok = g == want
        elif key in ('stat.utime', 'stat.stime'):
            ok = g >= want
        else:
            ok = want <= g <= a
        if not ok:
            bad.append((key, g, want, a))
    total = got['stat.utime'] + got['stat.stime']
    if not total <= after['stat.utime'] + after['stat.stime'] + 1:
        bad.append(('utime+stime', total, after['stat.utime'] + after['stat.stime']))
    return bad


@pytest.mark.parametrize('strategy', [wire.DUMP_ALL, wire.DUMP_ALL_THREAD], ids=['all', 'threads'])
def test_every_task_stat(source, strategy):
    """STAT of every process (ALL) and thread (ALL_THREAD) of the system,
    long-running ones included (beyond 2**32 ns their times take the
    128-bit path of the scaling); a task that does not fit is asked again
    until it does."""
    per_thread = strategy == wire.DUMP_ALL_THREAD
    view = lambda t: proc_view(t.tgid, t.pid, per_thread)       # noqa: E731
    before = {}
    for t in dump(strategy, 0, source, wire.SHOW_STAT):
        try:
            before[t.pid] = view(t)
        except (FileNotFoundError, ProcessLookupError):
            pass
    tasks = dump(strategy, 0, source, wire.SHOW_STAT)
    errors, checked = [], 0
    for t in tasks:
        try:
            after = view(t)
        except (FileNotFoundError, ProcessLookupError):
            continue
        bad = _stat_mismatches(t, per_thread, before[t.pid], after) if t.pid in before else None
        for _ in range(10):
            if not bad:
                break
            try:
                first = view(t)
                again = [x for x in dump(wire.DUMP_THREAD if per_thread else wire.DUMP_ONE,
                                         t.pid, source, wire.SHOW_STAT) if x.pid == t.pid]
                bad = _stat_mismatches(again[0], per_thread, first, view(t)) if again else []
            except (FileNotFoundError, ProcessLookupError):
                bad = []
        checked += 1
        if bad:
            errors.append('task %d/%d: %r' % (t.tgid, t.pid, bad))
    assert not errors, '\n'.join(errors)
    assert checked > 20


# --- the two backends, byte for byte ---------------------------------------

def split_messages(buf):
    """[(nlmsghdr tuple, task pid, message bytes)], framing checked."""
    out, off = [], 0
    while off < len(buf):
        hdr = struct.unpack_from('<IHHII', buf, off)
        assert 28 <= hdr[0] <= len(buf) - off, (off, hdr)
        pid = struct.unpack_from('<I', buf, off + 16)[0]
        out.append((hdr, pid, buf[off:off + hdr[0]]))
        off += (hdr[0] + 3) & ~3
    return out


def _requests(tree):
    quiet = [p for p in tree if p.pid in stable(tree)]
    yield wire.DUMP_ALL, 0, {p.pid for p in quiet}
    yield wire.DUMP_ALL_THREAD, 0, {tid for p in quiet for tid in p.tids}
    for p in quiet:
        for tid in p.tids:
            yield wire.DUMP_ONE, tid, {tid}
            yield wire.DUMP_THREAD, tid, set(p.tids)
        yield wire.DUMP_CHILDREN, p.ppid, {q.pid for q in quiet if q.ppid == p.ppid}


@pytest.mark.parametrize('show', [SHOW3, wire.SHOW_BASE, wire.SHOW_CRED, wire.SHOW_STAT, 0],
                         ids=['base+cred+stat', 'base', 'cred', 'stat', 'none'])
def test_backends_byte_identical(tree, bpf, show):
    """bpf and proc give the same bytes for the stopped and zombie tasks, for
    every strategy; every message has the right header and echoes seq."""
    seq = 0xdead0000 | show
    for strategy, pid, want in _requests(tree):
        got = {}
        for source in ('bpf', 'proc'):
            buf = task_diag.raw(strategy, pid, show, seq, source=source)
            msgs = split_messages(buf)
            for hdr, _, _ in msgs:
                assert hdr[1:] == (wire.TASK_DIAG_CMD_GET, wire.NLM_F_MULTI, seq, 0), hdr
            got[source] = {p: m for _, p, m in msgs if p in want}
            assert set(got[source]) == want, (source, strategy, pid)
        for p in sorted(want):
            assert got['bpf'][p] == got['proc'][p], (strategy, pid, p, got['bpf'][p].hex(),
                                                     got['proc'][p].hex())


def test_unknown_show_bits_ignored(tree, source):
    """Bits of no group add nothing to the answer."""
    p = tree['stopped']
    want = task_diag.raw(wire.DUMP_THREAD, p.pid, SHOW3, source=source)
    for extra in (1 << (wire.TASK_DIAG_ATTR_MAX + 1), 1 << 40, 1 << 63):
        assert task_diag.raw(wire.DUMP_THREAD, p.pid, SHOW3 | extra, source=source) == want
