"""Who sees what (spec section 4) through the pinned iterator files (loaded
into a pin directory of this module's own: see `pins`), the
in-process BPF backend and the /proc fallback, for readers with other
credentials, in a pid namespace and in user namespaces.

Each reader is a separate process (tests/helpers/ns.py) that reports what it
read and, as an oracle, the kernel's own verdict for every task of its
/proc: readlink(/proc/PID/exe) is refused exactly when
ptrace_may_access(PTRACE_MODE_READ_FSCREDS) fails, the rule of section 4.
Tasks that appear, vanish or change credentials while the reader works are
left out of the exact comparison (they are 'unstable').
"""
import errno
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from task_diag import wire
from task_diag.iterproto import PIN_ALL, PIN_ALL_THREADS, PINS

import task_diag
from task_diag.bpf_backend import BpfBackend
from helpers import need
from helpers.ns import (NOBODY, Procs, Reader, comm_of, setpriv, status_ids, userns_sleeper,
                    write_id_maps)

ALL, ALL_THREADS = PIN_ALL, PIN_ALL_THREADS        # names of pinned files
BASE, CRED = wire.SHOW_BASE, wire.SHOW_CRED
CAP_NET_BIND_SERVICE = 10
OTHER_GID = 4321            # a gid nobody's processes do not have

THREAD_READS = ('pinned_all_threads', 'proc_all_threads')


def _tools():
    for tool in ('setpriv', 'unshare', 'nsenter'):
        need(shutil.which(tool), '%s (util-linux) is needed' % tool)
    need(os.geteuid() == 0, 'access tests start readers with other credentials: need root')


@pytest.fixture(scope='module')
def pins():
    """task_diag loaded by task-diag-load into a pin directory of this
    module's own: the same programs and files as under the default
    directory, which others load and unload concurrently.  Readers read
    the pinned files there, and their 'bpf' backend uses these pins.
    TASK_DIAG_ACCESS_PINS=DIR: use what is pinned in DIR instead (e.g. the
    default /sys/fs/bpf/task_diag), neither loaded nor removed here."""
    need(os.geteuid() == 0, 'BPF tests need root')
    given = os.environ.get('TASK_DIAG_ACCESS_PINS')
    if given:
        need(all(os.path.exists(os.path.join(given, p)) for p in PINS),
             'TASK_DIAG_ACCESS_PINS=%s: pins missing' % given)
        yield given
        return
    # A bpffs of this module's own, that readers with other ids can reach:
    # /sys/fs/bpf is mounted 0700 by task-diag-load, make and systemd alike.
    fs = tempfile.mkdtemp(prefix='td-bpffs-')
    os.chmod(fs, 0o755)
    subprocess.run(['mount', '-t', 'bpf', '-o', 'mode=0755', 'bpf', fs], check=True)
    path = os.path.join(fs, 'task_diag')
    try:
        r = subprocess.run([sys.executable, '-m', 'task_diag.loader.load', '--pin-dir', path,
                            '--no-front'], capture_output=True, text=True, timeout=120)
        need(r.returncode == 0, 'task-diag-load failed: ' + r.stderr.strip())
        need(all(os.path.exists(os.path.join(path, p)) for p in PINS),
             'task-diag-load left pins missing under ' + path)
        yield path
    finally:
        subprocess.run(['umount', fs], check=True)      # the pins go with the instance
        os.rmdir(fs)


@pytest.fixture(autouse=True)
def _prerequisites(pins):
    _tools()


def ok(read):
    """The tasks of a read, or a failure that says what the reader got."""
    assert not isinstance(read, dict), 'the reader got an error: %s' % read.get('error')
    return read


def ints(d):
    return {int(k): v for k, v in d.items()}


def stable(result, threads):
    """{id: may read} of the tasks whose kernel verdict was the same before
    and after the reads: by tid for thread dumps, by tgid otherwise."""
    before, after = ints(result['verdict_before']), ints(result['verdict_after'])
    out = {}
    for tid, (tgid, verdict) in before.items():
        if after.get(tid) != [tgid, verdict]:
            continue
        if threads or tid == tgid:
            out[tid] = verdict
    return out


def assert_matches_kernel(tasks, result, threads, what):
    """The tasks shown are exactly those the kernel lets the reader see
    (among the tasks that were stable meanwhile)."""
    verdict = stable(result, threads)
    shown = {t['pid'] for t in tasks}
    should = {i for i, v in verdict.items() if v}
    missing = should - shown
    extra = (shown & set(verdict)) - should
    assert not missing, '%s: hides tasks the kernel lets the reader see: %s' % (
        what, describe(missing))
    assert not extra, '%s: shows tasks the kernel hides from the reader: %s' % (
        what, describe(extra))
    # Whatever was shown but is not in the stable set must at least exist in
    # the reader's /proc at one of the two moments (no invented pids).
    seen = set(ints(result['verdict_before'])) | set(ints(result['verdict_after']))
    assert shown <= seen, '%s: pids not in the reader\'s /proc: %s' % (what, sorted(shown - seen))


def describe(pids):
    out = []
    for pid in sorted(pids)[:20]:
        ids = status_ids(pid)
        out.append('%d(%s %s)' % (pid, comm_of(pid), ids[0] if ids else 'gone'))
    return ', '.join(out)


def by_pid(tasks):
    return {t['pid']: t for t in tasks}


# ---------------------------------------------------------------------------
# a reader with uid/gid 65534
# ---------------------------------------------------------------------------

NOBODY_READS = {
    'pinned_all': ['pinned', ALL],
    'pinned_all_threads': ['pinned', ALL_THREADS],
    'proc_all': ['proc', wire.DUMP_ALL, 0, BASE],
    'proc_all_threads': ['proc', wire.DUMP_ALL_THREAD, 0, BASE],
}


@pytest.fixture(scope='module')
def nobody(pins):
    """A uid/gid 65534 reader with a child (sleep) and a second thread, and
    what it read; alive until the module's tests are done."""
    _tools()
    with Reader(setpriv(NOBODY, NOBODY), {'children': [{}], 'thread': True,
                                          'reads': NOBODY_READS, 'pin_dir': pins}) as r:
        ready = r.expect('ready')
        assert ready['ids'] == [[NOBODY] * 3, [NOBODY] * 3]
        r.go()
        result = r.expect('result')
        yield ready, result


@pytest.mark.parametrize('read', sorted(NOBODY_READS))
def test_nobody_sees_its_own_tasks(nobody, read):
    ready, result = nobody
    tasks = by_pid(ok(result['reads'][read]))
    me, child = ready['pid'], ready['children'][0]
    assert me in tasks, 'the reader itself is missing'
    assert child in tasks, 'the reader\'s own child (same uid) is missing'
    assert tasks[child]['base'][2] == me, 'the child\'s ppid'
    assert tasks[child]['base'][-1] == 'sleep'
    assert tasks[me]['tgid'] == me
    if read in THREAD_READS:
        assert ready['thread'] in tasks, 'the reader\'s second thread is missing'
        assert tasks[ready['thread']]['tgid'] == me
    else:
        assert ready['thread'] not in tasks, 'a thread in a process dump'


@pytest.mark.parametrize('read', sorted(NOBODY_READS))
def test_nobody_sees_no_task_of_other_ids(nobody, read):
    """Every task shown has uid and gid 65534 everywhere, and is dumpable
    (its /proc files belong to 65534); root's tasks are absent."""
    ready, result = nobody
    tasks = ok(result['reads'][read])
    assert status_ids(1)[0] == [0] * 4, 'pid 1 is expected to be root\'s here'
    shown = {t['pid'] for t in tasks}
    assert 1 not in shown, 'pid 1 (root) is shown to uid 65534'
    assert os.getpid() not in shown, 'the test (root) is shown to uid 65534'
    checked = 0
    for t in tasks:
        ids = status_ids(t['tgid'], t['pid'])
        if ids is None:
            continue            # exited since
        uids, gids, _ = ids
        assert uids == [NOBODY] * 4 and gids == [NOBODY] * 4, (
            'task %d (%s) with uids %s gids %s is shown to uid 65534'
            % (t['pid'], t['base'][-1], uids, gids))
        try:
            # (a /proc file, not the directory: only files of a task that is
            # not dumpable belong to root)
            owner = os.stat('/proc/%d/task/%d/status' % (t['tgid'], t['pid'])).st_uid
        except FileNotFoundError:
            continue
        assert owner == NOBODY, 'task %d is not dumpable but shown' % t['pid']
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize('read', sorted(NOBODY_READS))
def test_nobody_view_is_the_kernels(nobody, read):
    _, result = nobody
    assert_matches_kernel(ok(result['reads'][read]), result, read in THREAD_READS, read)


# ---------------------------------------------------------------------------
# tasks of the same uid that uid 65534 may or may not see
# ---------------------------------------------------------------------------

NONDUMPABLE = r'''
import ctypes, sys
PR_SET_DUMPABLE = 4
assert ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
print('ready', flush=True)
sys.stdin.read()
'''

# name: (visible to another uid-65534 reader?, why)
TARGETS = {
    'plain': (True, 'same uid and gid, dumpable, no capabilities'),
    'nondumpable': (False, 'prctl(PR_SET_DUMPABLE, 0)'),
    'capable': (False, 'holds CAP_NET_BIND_SERVICE in its permitted set, the reader does not '
                       '(commoncap: permitted must be a subset of the reader\'s effective set)'),
    'other_gid': (False, 'same uid, gid %d' % OTHER_GID),
    'userns_of_nobody': (True, 'uid 65534 in a user namespace that uid 65534 created: '
                               'the owner holds CAP_SYS_PTRACE in it'),
    'userns_of_root': (False, 'uid 65534 in a user namespace that root created: same ids, but '
                              'no CAP_SYS_PTRACE in that namespace'),
}
TARGET_READS = {
    'pinned_all': ['pinned', ALL],
    'pinned_all_threads': ['pinned', ALL_THREADS],
    'proc_all': ['proc', wire.DUMP_ALL, 0, BASE],
}


@pytest.fixture(scope='module')
def targets(pins):
    _tools()
    with Procs() as procs:
        nb = setpriv(NOBODY, NOBODY)
        pids = {}
        pids['plain'] = procs.sleeper(nb).pid
        pids['nondumpable'] = procs.python(nb, NONDUMPABLE).pid
        pids['capable'] = procs.sleeper(
            nb + ['--inh-caps=+net_bind_service', '--ambient-caps=+net_bind_service']).pid
        pids['other_gid'] = procs.sleeper(setpriv(NOBODY, OTHER_GID)).pid
        pids['userns_of_nobody'] = procs.sleeper(nb + ['unshare', '--user']).pid
        pids['userns_of_root'] = userns_sleeper(procs, [(NOBODY, NOBODY, 1)],
                                                [(NOBODY, NOBODY, 1)], NOBODY, NOBODY).pid
        # The targets are what their names say (else the test proves nothing).
        for name, pid in pids.items():
            uids, gids, cap_prm = status_ids(pid)
            assert uids == [NOBODY] * 4, (name, uids)
            assert gids == [OTHER_GID if name == 'other_gid' else NOBODY] * 4, (name, gids)
            assert bool(cap_prm & (1 << CAP_NET_BIND_SERVICE)) == (name == 'capable'), name
            if name != 'capable':
                assert cap_prm == 0, (name, hex(cap_prm))
        own_ns = os.readlink('/proc/self/ns/user')
        for name in ('userns_of_nobody', 'userns_of_root'):
            assert os.readlink('/proc/%d/ns/user' % pids[name]) != own_ns, name
        assert os.stat('/proc/%d/status' % pids['nondumpable']).st_uid == 0  # not dumpable
        for name in TARGETS:
            if name != 'nondumpable':
                assert os.stat('/proc/%d/status' % pids[name]).st_uid == NOBODY, name

        with Reader(nb, {'reads': TARGET_READS, 'pin_dir': pins}) as r:
            r.expect('ready')
            r.go()
            result = r.expect('result')
            yield pids, result


@pytest.mark.parametrize('read', sorted(TARGET_READS))
@pytest.mark.parametrize('target', sorted(TARGETS))
def test_same_uid_visibility(targets, target, read):
    pids, result = targets
    pid = pids[target]
    visible, why = TARGETS[target]
    kernel = ints(result['verdict_before']).get(pid)
    assert kernel == [pid, visible], (
        'test setup: the kernel %s %s (%s) to the reader' % (
            'shows' if kernel and kernel[1] else 'hides', target, why))
    shown = pid in {t['pid'] for t in ok(result['reads'][read])}
    assert shown == visible, '%s: %s is %s, but should %s: %s' % (
        read, target, 'shown' if shown else 'hidden', 'be shown' if visible else 'not', why)


# ---------------------------------------------------------------------------
# a reader in its own pid namespace
# ---------------------------------------------------------------------------

PIDNS = ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child']


@pytest.fixture(scope='module')
def pidns(pins):
    """A root reader that is pid 1 of a new pid namespace (with /proc of
    it), with a child and a second thread."""
    _tools()
    outside = os.getpid()
    reads = {
        'pinned_all': ['pinned', ALL],
        'pinned_all_threads': ['pinned', ALL_THREADS],
        'proc_all': ['proc', wire.DUMP_ALL, 0, BASE | CRED],
        'proc_all_threads': ['proc', wire.DUMP_ALL_THREAD, 0, BASE],
        'bpf_all': ['bpf', wire.DUMP_ALL, 0, BASE],
        'bpf_all_threads': ['bpf', wire.DUMP_ALL_THREAD, 0, BASE],
        'bpf_all_cred': ['bpf', wire.DUMP_ALL, 0, BASE | CRED],
        'bpf_one_1': ['bpf', wire.DUMP_ONE, 1, BASE | CRED],
        'proc_one_1': ['proc', wire.DUMP_ONE, 1, BASE | CRED],
        'bpf_one_outside': ['bpf', wire.DUMP_ONE, outside, BASE],
        'proc_one_outside': ['proc', wire.DUMP_ONE, outside, BASE],
        'bpf_children_1': ['bpf', wire.DUMP_CHILDREN, 1, BASE],
        'proc_children_1': ['proc', wire.DUMP_CHILDREN, 1, BASE],
        'bpf_thread_1': ['bpf', wire.DUMP_THREAD, 1, BASE],
    }
    with Reader(PIDNS, {'children': [{}], 'thread': True, 'reads': reads,
                        'pin_dir': pins}) as r:
        ready = r.expect('ready')
        r.go()
        result = r.expect('result')
        yield ready, result


def _ns_tids(result):
    """{tid: tgid} of the namespace, from its /proc (root sees them all)."""
    return {tid: tgid for tid, (tgid, _) in ints(result['verdict_before']).items()}


def test_pidns_reader_is_pid_1(pidns):
    ready, result = pidns
    assert ready['pid'] == 1
    tids = _ns_tids(result)
    assert tids == {1: 1, ready['children'][0]: ready['children'][0], ready['thread']: 1}, (
        'the namespace holds the reader, its thread and its child only: %s' % tids)


@pytest.mark.parametrize('read', ['pinned_all', 'proc_all', 'bpf_all'])
def test_pidns_all(pidns, read):
    ready, result = pidns
    tasks = by_pid(ok(result['reads'][read]))
    child = ready['children'][0]
    assert sorted(tasks) == sorted({1, child}), (
        '%s in the namespace shows %s, not its own processes 1 and %d' % (read, sorted(tasks),
                                                                         child))
    one, kid = tasks[1]['base'], tasks[child]['base']
    # tgid pid ppid tpid sid pgid state comm
    assert one[:3] == [1, 1, 0], 'pid 1 of the namespace: ppid is 0 (its parent is outside)'
    assert one[4:6] == [0, 0], 'its session and group leaders are outside the namespace'
    assert kid[:3] == [child, child, 1]
    assert kid[-1] == 'sleep' and one[-1] == 'python'


@pytest.mark.parametrize('read', ['pinned_all_threads', 'proc_all_threads',
                                  'bpf_all_threads'])
def test_pidns_all_threads(pidns, read):
    ready, result = pidns
    tasks = by_pid(ok(result['reads'][read]))
    assert {t: tasks[t]['tgid'] for t in tasks} == _ns_tids(result), read


def test_pidns_pinned_equals_fallback_and_bpf(pidns):
    _, result = pidns
    pinned = by_pid(ok(result['reads']['pinned_all']))
    for read in ('proc_all', 'bpf_all'):
        other = by_pid(ok(result['reads'][read]))
        assert sorted(other) == sorted(pinned)
        for pid in pinned:
            # state aside: the reader itself may be running in one read only
            assert pinned[pid]['base'][:6] + pinned[pid]['base'][7:] == \
                other[pid]['base'][:6] + other[pid]['base'][7:], (read, pid)


def test_pidns_bpf_one_pid_1_with_cred(pidns):
    """DUMP_ONE of the namespace's pid 1 with BASE|CRED through the in-process
    BPF backend: the reader itself, ppid 0, root's credentials, as the
    fallback reads them from /proc."""
    _, result = pidns
    proc = ok(result['reads']['proc_one_1'])
    got = ok(result['reads']['bpf_one_1'])
    assert [t['pid'] for t in got] == [1]
    assert got[0]['base'][:3] == [1, 1, 0]
    assert got[0]['cred'] is not None, (
        'no CRED attribute: the request (show_flags BASE|CRED) did not reach the program '
        'when the reader is in another pid namespace')
    assert got[0]['cred'] == proc[0]['cred']
    assert got[0]['cred'][4:] == [0] * 8


def test_pidns_bpf_all_with_cred(pidns):
    _, result = pidns
    got = by_pid(ok(result['reads']['bpf_all_cred']))
    proc = by_pid(ok(result['reads']['proc_all']))
    assert sorted(got) == sorted(proc)
    for pid in proc:
        assert got[pid]['cred'] == proc[pid]['cred'], 'CRED of %d' % pid


def test_pidns_bpf_children_of_1(pidns):
    ready, result = pidns
    assert [t['pid'] for t in ok(result['reads']['proc_children_1'])] == ready['children']
    got = ok(result['reads']['bpf_children_1'])
    assert [t['pid'] for t in got] == ready['children'], (
        'CHILDREN of pid 1 in the namespace: %s' % [t['pid'] for t in got])


def test_pidns_bpf_thread_of_1(pidns):
    ready, result = pidns
    got = ok(result['reads']['bpf_thread_1'])
    assert sorted(t['pid'] for t in got) == sorted([1, ready['thread']])
    assert {t['tgid'] for t in got} == {1}


@pytest.mark.parametrize('source', ['bpf', 'proc'])
def test_pidns_pid_outside_is_esrch(pidns, source):
    """The test's own pid means nothing in the namespace: ESRCH."""
    _, result = pidns
    if os.getpid() in _ns_tids(result):
        pytest.skip('our pid happens to exist in the namespace too')
    got = result['reads']['%s_one_outside' % source]
    assert isinstance(got, dict) and got['errno'] == errno.ESRCH, got


# ---------------------------------------------------------------------------
# readers in user namespaces
# ---------------------------------------------------------------------------

def userns_reader(pins, uid_map, gid_map, children, reads, then=None):
    """A reader that unshares a user namespace, gets @uid_map/@gid_map
    (written by us, root of the parent namespace), becomes root of it, and
    starts @children ([{'uid', 'gid'}] of the namespace).  @then(reader,
    ready): run before the reads; returns extra request fields."""
    r = Reader([], {'userns': True, 'become': [0, 0], 'children': children, 'reads': reads,
                    'pin_dir': pins})
    try:
        unshared = r.expect('unshared')
        write_id_maps(unshared['pid'], uid_map, gid_map)
        r.go()
        ready = r.expect('ready')
        extra = then(r, ready) if then else {}
        r.go(**extra)
        result = r.expect('result')
    except BaseException:
        r.close()
        raise
    return r, ready, result


USERNS_READS = {
    'pinned_all': ['pinned', ALL],
    'pinned_all_threads': ['pinned', ALL_THREADS],
    'proc_cred': ['proc', wire.DUMP_ALL, 0, BASE | CRED],
    'bpf_cred': ['bpf', wire.DUMP_ALL, 0, BASE | CRED],
}

# A: root of the namespace is uid 100000 outside, as in an unprivileged container.
MAP_A = [(0, 100000, 1), (1000, 101000, 1)]


@pytest.fixture(scope='module')
def userns_a(pins):
    _tools()
    r, ready, result = userns_reader(pins, MAP_A, MAP_A, [{'uid': 1000, 'gid': 1000}], USERNS_READS)
    with r:
        yield ready, result


def test_userns_a_ids_outside(userns_a):
    """Setup: the reader is uid 100000 outside, its child 101000."""
    ready, _ = userns_a
    assert ready['ids'] == [[0] * 3, [0] * 3]
    assert status_ids(ready['pid'])[:2] == ([100000] * 4, [100000] * 4)
    assert status_ids(ready['children'][0])[:2] == ([101000] * 4, [101000] * 4)


@pytest.mark.parametrize('read', ['pinned_all', 'pinned_all_threads', 'proc_cred'])
def test_userns_a_sees_only_its_namespace(userns_a, read):
    ready, result = userns_a
    tasks = ok(result['reads'][read])
    assert {t['pid'] for t in tasks} == {ready['pid'], ready['children'][0]}
    assert_matches_kernel(tasks, result, read == 'pinned_all_threads', read)


def test_userns_a_fallback_cred_is_mapped(userns_a):
    ready, result = userns_a
    tasks = by_pid(ok(result['reads']['proc_cred']))
    child = ready['children'][0]
    assert tasks[ready['pid']]['cred'][4:] == [0] * 8
    assert tasks[child]['cred'][4:] == [1000] * 8
    inside = result['proc_status'][str(child)]
    assert tasks[child]['cred'][4:8] == inside['uid'] and tasks[child]['cred'][8:] == inside['gid']


def test_userns_a_bpf_backend_refused(userns_a):
    """The in-process BPF backend needs the root-only pins: a user-namespace
    root that is not root outside is refused (and task_diag.dump() moves on
    to /run/task-diag, whose CRED mapping for such a reader is tested in
    test_front).  The pinned files it may read give BASE only."""
    ready, result = userns_a
    got = result['reads']['bpf_cred']
    assert isinstance(got, dict), 'the bpf backend opened for a user-namespace reader'
    assert 'Permission denied' in got['error'] or 'Operation not permitted' in got['error'], got


# B: root of the namespace is root outside (so the in-process BPF backend,
# which needs the root-owned pins, works in it); six extents, more than the
# kernel keeps inline (5), so uid_map is read through its sorted copy.
MAP_B = [(0, 0, 1), (1000, 101000, 1), (2000, 102000, 1), (3000, 103000, 1),
         (4000, 104000, 1), (5000, 105000, 1)]
UNMAPPED = 4242


@pytest.fixture(scope='module')
def userns_b(pins):
    """Reader in B, children at 1000/1000 and 5000/3000 of B, and a sleep
    that joined B with uid/gid 4242, which B does not map (overflow ids)."""
    _tools()
    procs = Procs()

    def joiner(r, ready):
        p = procs.sleeper(setpriv(UNMAPPED, UNMAPPED, '--inh-caps=+sys_admin,+sys_ptrace',
                                  '--ambient-caps=+sys_admin,+sys_ptrace')
                          + ['nsenter', '--preserve-credentials',
                             '--user=/proc/%d/ns/user' % ready['pid']])
        ready['joined'] = p.pid
        return {'status_of': [p.pid]}

    with procs:
        r, ready, result = userns_reader(pins, MAP_B, MAP_B, [{'uid': 1000, 'gid': 1000},
                                                        {'uid': 5000, 'gid': 3000}],
                                         USERNS_READS, joiner)
        with r:
            yield ready, result


def test_userns_b_setup(userns_b):
    ready, _ = userns_b
    c1, c2 = ready['children']
    assert status_ids(ready['pid'])[:2] == ([0] * 4, [0] * 4)
    assert status_ids(c1)[:2] == ([101000] * 4, [101000] * 4)
    assert status_ids(c2)[:2] == ([105000] * 4, [103000] * 4)
    assert status_ids(ready['joined'])[:2] == ([UNMAPPED] * 4, [UNMAPPED] * 4)
    ns = os.readlink('/proc/%d/ns/user' % ready['pid'])
    assert os.readlink('/proc/%d/ns/user' % ready['joined']) == ns
    assert os.readlink('/proc/self/ns/user') != ns


@pytest.mark.parametrize('read', ['pinned_all', 'pinned_all_threads', 'proc_cred',
                                  'bpf_cred'])
def test_userns_b_sees_only_its_namespace(userns_b, read):
    """Only tasks of its own user namespace: the test process has the very
    same ids (all 0) and is dumpable, but lives in the parent namespace, where
    the reader has no CAP_SYS_PTRACE (commoncap)."""
    ready, result = userns_b
    tasks = ok(result['reads'][read])
    want = {ready['pid'], ready['joined'], *ready['children']}
    assert {t['pid'] for t in tasks} == want
    assert os.getpid() not in {t['pid'] for t in tasks}
    assert_matches_kernel(tasks, result, read == 'pinned_all_threads', read)


@pytest.mark.parametrize('read', ['proc_cred', 'bpf_cred'])
def test_userns_b_cred_is_mapped(userns_b, read):
    ready, result = userns_b
    tasks = by_pid(ok(result['reads'][read]))
    c1, c2 = ready['children']
    o = 65534       # overflowuid, overflowgid
    assert tasks[ready['pid']]['cred'][4:] == [0] * 8
    assert tasks[c1]['cred'][4:] == [1000] * 8
    assert tasks[c2]['cred'][4:] == [5000] * 4 + [3000] * 4
    assert tasks[ready['joined']]['cred'][4:] == [o] * 8, 'unmapped ids read as overflow ids'
    for pid in (c1, c2, ready['joined']):
        inside = result['proc_status'][str(pid)]
        assert tasks[pid]['cred'][4:8] == inside['uid'], pid
        assert tasks[pid]['cred'][8:] == inside['gid'], pid


def test_userns_b_bpf_equals_fallback(userns_b):
    _, result = userns_b
    got = by_pid(ok(result['reads']['bpf_cred']))
    proc = by_pid(ok(result['reads']['proc_cred']))
    assert sorted(got) == sorted(proc)
    for pid in proc:
        assert got[pid]['cred'] == proc[pid]['cred'], pid
        assert got[pid]['base'][:6] == proc[pid]['base'][:6], pid


def test_userns_b_ids_from_outside(userns_b, pins):
    """Root of the initial namespace sees the same tasks with global ids."""
    ready, _ = userns_b
    c1, c2 = ready['children']
    bpf = BpfBackend(pins)
    try:
        for source in ('bpf', 'proc'):
            got = {}
            for pid in (c2, ready['joined']):
                if source == 'bpf':
                    tasks = wire.decode(bpf.raw(wire.DUMP_ONE, pid, BASE | CRED))
                else:
                    tasks = task_diag.dump(wire.DUMP_ONE, pid, BASE | CRED, source='proc')
                got.update({t.pid: t.cred for t in tasks})
            assert got[c2][4:] == (105000,) * 4 + (103000,) * 4, source
            assert got[ready['joined']][4:] == (UNMAPPED,) * 8, source
    finally:
        bpf.close()


HIDDEN_ONE = r'''
import errno, sys
from task_diag import wire
from task_diag.procfs.backend import ProcBackend
b = ProcBackend()
for strategy in (wire.DUMP_ONE, wire.DUMP_THREAD, wire.DUMP_CHILDREN):
    for pid in map(int, sys.argv[1:]):
        try:
            got = b.raw(strategy, pid, wire.SHOW_BASE)
            print(strategy, pid, 'answered', len(got))
        except OSError as e:
            print(strategy, pid, errno.errorcode[e.errno])
'''


def test_proc_backend_hides_a_pid_as_missing():
    """The /proc fallback answers ONE, THREAD and CHILDREN of a pid its
    reader may not see with ESRCH, as the programs do (hidepid=invisible),
    and a pid it may see as before."""
    with Procs() as procs:
        hidden = procs.sleeper()                    # root's
        mine = procs.sleeper(setpriv(NOBODY))
        r = subprocess.run(setpriv(NOBODY) + [sys.executable, '-c', HIDDEN_ONE,
                                              str(hidden.pid), str(4194304 - 3), str(mine.pid)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.split('\n')
        for strategy in (wire.DUMP_ONE, wire.DUMP_THREAD, wire.DUMP_CHILDREN):
            for pid in (hidden.pid, 4194304 - 3):
                assert '%d %d ESRCH' % (strategy, pid) in lines, r.stdout
            answered = '%d %d answered' % (strategy, mine.pid)
            assert any(line.startswith(answered) for line in lines), r.stdout
