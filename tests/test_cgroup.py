"""TASK_DIAG_CGROUP against /proc/PID/cgroup, and the request's cgroup
filter against the cgroup.procs and cgroup.threads files, through every
backend.  Everything happens in a test-owned subtree of the unified
hierarchy (helpers.cgroups.CgroupTree): processes and threads in nested
cgroups, a zombie, a zombie whose cgroup was removed, a reader in a
cgroup namespace of its own, and a reader of another uid."""
import errno
import json
import os
import signal
import subprocess

import pytest

import task_diag
from task_diag import wire

from helpers import PY, need
from helpers.cgroups import CgroupTree
from helpers.front import read_all
from helpers.ns import NOBODY, setpriv
from helpers.procs import wait_states

SHOW = wire.SHOW_BASE | wire.SHOW_CGROUP
THREADS = r'''
import threading, time
for _ in range(3):
    threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()
print(flush=True)
time.sleep(1000)
'''


@pytest.fixture
def source(every_source):
    """Every backend, the front's file included (conftest's every_source)."""
    return every_source


def proc_cgroup(pid, tid=None):
    """The path of the 0:: line of /proc/PID/cgroup, " (deleted)" and all,
    or None when the task is gone."""
    path = '/proc/%d/cgroup' % pid if tid is None else '/proc/%d/task/%d/cgroup' % (pid, tid)
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in data.split(b'\n'):
        if line.startswith(b'0::'):
            return line[3:].decode('utf-8', 'surrogateescape')
    return None


@pytest.fixture(scope='module')
def tree():
    """td-test-PID/{a, a/b, a/b/c, d}: a sleeper in a, a process with three
    threads in a/b (one thread moved to a/b/c, a threaded cgroup), a
    zombie in a, a sleeper in d; every cgroup and process removed at the
    end."""
    need(os.geteuid() == 0, 'making cgroups needs root')
    with CgroupTree() as t:
        for rel in ('a', 'a/b', 'a/b/c', 'd'):
            t.mkdir(rel)
        t.sleeper_a = t.spawn('a', ['sleep', '1000'])
        t.threads_b = t.spawn('a/b', [PY, '-c', THREADS], stdout=subprocess.PIPE)
        t.threads_b.stdout.readline()
        t.sleeper_d = t.spawn('d', ['sleep', '1000'])
        t.zombie_a = t.spawn('a', [PY, '-c', 'import os; os._exit(3)'])
        wait_states(t.zombie_a.pid, 'Z')
        for p in (t.sleeper_a, t.sleeper_d):
            wait_states(p.pid, 'S')
        yield t


def by_pid(strategy, source, **kw):
    return {t.pid: t for t in task_diag.dump(strategy, show=SHOW, source=source, **kw)}


def test_the_tree_is_what_the_kernel_says(tree):
    """The oracle's side: the processes are where the tests expect them."""
    assert proc_cgroup(tree.sleeper_a.pid).endswith('/td-test-%d/a' % os.getpid())
    assert proc_cgroup(tree.threads_b.pid).endswith('/a/b')
    assert tree.zombie_a.pid not in tree.listed('a')       # zombies: not in cgroup.procs
    assert proc_cgroup(tree.zombie_a.pid).endswith('/a')   # but /proc still names it


def test_cgroup_of_made_processes(tree, source):
    got = by_pid(wire.DUMP_ALL, source)
    for p, rel in ((tree.sleeper_a, 'a'), (tree.threads_b, 'a/b'), (tree.sleeper_d, 'd'),
                   (tree.zombie_a, 'a')):
        cg = got[p.pid].cgroup
        assert cg.proc_path == proc_cgroup(p.pid), p.pid
        assert cg.id == os.stat(tree.path(rel)).st_ino
        assert not cg.deleted and not cg.flags & wire.CGROUP_F_CUT


@pytest.mark.parametrize('strategy', [wire.DUMP_ALL, wire.DUMP_ALL_THREAD],
                         ids=['all', 'threads'])
def test_every_task(source, strategy):
    """Every task that lives through the dump: CGROUP equals its 0:: line
    (read before and after: a task may move meanwhile)."""
    checked = 0
    for t in task_diag.dump(strategy, show=SHOW, source=source):
        tid = None if strategy == wire.DUMP_ALL else t.pid
        before = proc_cgroup(t.tgid, tid)
        if before == t.cgroup.proc_path:
            checked += 1
            continue
        after = proc_cgroup(t.tgid, tid)
        if after is None or after != before:
            continue
        pytest.fail('task %d: CGROUP %r, /proc %r' % (t.pid, t.cgroup, after))
    assert checked > 10


def test_threads_each_their_own(tree, source):
    """A thread moved alone into a threaded cgroup: its own path in thread
    dumps, as /proc/PID/task/TID/cgroup; the filter of that cgroup answers
    that thread only, with ALL_THREAD, and no process with ALL (its leader
    is elsewhere: cgroup.procs of a threaded cgroup lists none)."""
    rel = 't-%s' % source
    tree.mkdir(rel)
    tree.mkdir(rel + '/c')
    p = tree.spawn(rel, [PY, '-c', THREADS], stdout=subprocess.PIPE)
    try:
        p.stdout.readline()
        tids = sorted(int(x) for x in os.listdir('/proc/%d/task' % p.pid))
        assert len(tids) == 4
        moved = tids[-1]
        with open(tree.path(rel + '/c/cgroup.type'), 'w') as f:
            f.write('threaded')
        tree.move(moved, rel + '/c', threads=True)
        got = {t.pid: t for t in task_diag.dump(wire.DUMP_THREAD, p.pid, show=SHOW,
                                                source=source)}
        assert sorted(got) == tids
        for tid in tids:
            assert got[tid].cgroup.proc_path == proc_cgroup(p.pid, tid)
        assert got[moved].cgroup.path.endswith('/%s/c' % rel)
        assert got[p.pid].cgroup.path.endswith('/' + rel)
        assert set(by_pid(wire.DUMP_ALL_THREAD, source, cgroup=tree.path(rel + '/c'))) == \
            {moved} == tree.listed(rel + '/c', threads=True)
        assert set(by_pid(wire.DUMP_ALL, source, cgroup=tree.path(rel + '/c'))) == set()
        assert set(by_pid(wire.DUMP_ALL, source, cgroup=tree.path(rel))) == {p.pid}
    finally:
        p.kill()
        p.wait()


def test_deleted_cgroup_of_a_zombie(tree, source):
    """A zombie whose cgroup was removed: /proc adds " (deleted)"; the flag
    says it, the path is the same."""
    tree.mkdir('gone')
    z = tree.spawn('gone', [PY, '-c', 'import os; os._exit(0)'])
    wait_states(z.pid, 'Z')
    tree.rmdir('gone')
    want = proc_cgroup(z.pid)
    assert want.endswith('/gone (deleted)')
    cg = by_pid(wire.DUMP_ALL, source)[z.pid].cgroup
    assert cg.deleted and cg.path == want[:-len(' (deleted)')] and cg.proc_path == want


# --- the filter ---------------------------------------------------------------

@pytest.mark.parametrize('rel', ['', 'a', 'a/b', 'd'])
@pytest.mark.parametrize('strategy', [wire.DUMP_ALL, wire.DUMP_ALL_THREAD],
                         ids=['all', 'threads'])
def test_filter_is_the_subtree(tree, source, strategy, rel):
    """Exactly the tasks the subtree's cgroup.procs (cgroup.threads) files
    list, by path and by id; a zombie, which they do not list, left out."""
    threads = strategy == wire.DUMP_ALL_THREAD
    want = tree.listed(rel, threads)
    assert want
    for key in (tree.path(rel), os.stat(tree.path(rel)).st_ino):
        got = by_pid(strategy, source, cgroup=key)
        assert set(got) == want == tree.listed(rel, threads)
        for t in got.values():
            assert t.cgroup.proc_path == proc_cgroup(t.tgid, t.pid if threads else None)
    assert tree.zombie_a.pid not in want


def test_filter_errors(tree, source):
    tree.mkdir('tmp')
    gone_path = tree.path('tmp')
    gone_id = os.stat(gone_path).st_ino
    tree.rmdir('tmp')
    for key in (gone_path, gone_id):
        with pytest.raises(OSError) as e:
            list(task_diag.dump(wire.DUMP_ALL, show=SHOW, source=source, cgroup=key))
        assert e.value.errno == errno.ENOENT, key
    for key in (0, -1, '/tmp', tree.path('a/cgroup.procs')):
        with pytest.raises(OSError) as e:
            list(task_diag.dump(wire.DUMP_ALL, show=SHOW, source=source, cgroup=key))
        assert e.value.errno == errno.EINVAL, key
    for strategy in (wire.DUMP_ONE, wire.DUMP_THREAD, wire.DUMP_CHILDREN):
        with pytest.raises(OSError) as e:
            list(task_diag.dump(strategy, os.getpid(), show=SHOW, source=source,
                                cgroup=tree.path('a')))
        assert e.value.errno == errno.EINVAL


def _request_with(attrs):
    body = wire.REQUEST.pack(wire.SHOW_BASE, wire.DUMP_ALL, 0) + attrs
    return wire.NLMSGHDR.pack(wire.NLMSG_HDRLEN + len(body), 0, 0, 0, 0) + body


def test_filter_on_the_file(tree, front):
    """The request's attribute as a client of /run/task-diag writes it:
    a good one filters; id 0, an unknown type, a bad length: EINVAL; the
    original's request (4 zero bytes after task_diag_pid) is unfiltered."""
    cg = os.stat(tree.path('d')).st_ino
    good = wire.NLATTR.pack(12, wire.TASK_DIAG_REQ_CGROUP) + cg.to_bytes(8, 'little')
    fd = os.open('/run/task-diag', os.O_RDWR)
    try:
        os.write(fd, _request_with(good))
        data = b''.join(read_all(fd))
        assert {t.pid for t in wire.decode(data)} == {tree.sleeper_d.pid}
        for bad in (wire.NLATTR.pack(12, wire.TASK_DIAG_REQ_CGROUP) + bytes(8),
                    wire.NLATTR.pack(12, 7) + cg.to_bytes(8, 'little'),
                    wire.NLATTR.pack(8, wire.TASK_DIAG_REQ_CGROUP) + bytes(4)):
            os.write(fd, _request_with(bad))
            with pytest.raises(OSError) as e:
                os.read(fd, 1 << 16)
            assert e.value.errno == errno.EINVAL
        os.write(fd, wire.encode_request(wire.DUMP_ALL))
        data = b''.join(read_all(fd))
        assert {tree.sleeper_d.pid, tree.sleeper_a.pid, os.getpid()} <= \
            {t.pid for t in wire.decode(data)}
    finally:
        os.close(fd)


NOBODY_READ = r'''
import json, sys
import task_diag
from task_diag import wire
out = {}
for t in task_diag.dump(wire.DUMP_ALL, show=wire.SHOW_BASE | wire.SHOW_CGROUP, source=sys.argv[1],
                        cgroup=sys.argv[2]):
    out[t.pid] = t.cgroup.proc_path
json.dump(out, sys.stdout)
'''


def test_nobody_filtered_sees_what_its_proc_shows(tree, source, request):
    """uid 65534 filtering the subtree gets its own process there, not
    root's, whose /proc/PID/exe it may not read."""
    if source == 'bpf':
        request.getfixturevalue('front')
        source = 'file'
    mine = tree.spawn('a', setpriv(NOBODY) + ['sleep', '1000'])
    wait_states(mine.pid, 'S')
    r = subprocess.run(setpriv(NOBODY) + [PY, '-c', NOBODY_READ, source, tree.path('a')],
                       capture_output=True, text=True, timeout=120, cwd='/')
    assert r.returncode == 0, r.stderr
    seen = {int(k): v for k, v in json.loads(r.stdout).items()}
    assert seen == {mine.pid: proc_cgroup(mine.pid)}
    assert tree.sleeper_a.pid in tree.listed('a')
    mine.send_signal(signal.SIGKILL)
    mine.wait()


# --- a reader in a cgroup namespace ---------------------------------------------

NS_READ = r'''
import json, os, sys
import task_diag
from task_diag import wire
def proc(pid):
    try:
        data = open('/proc/%d/cgroup' % pid, 'rb').read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return [l for l in data.decode().splitlines() if l.startswith('0::')][0][3:]
out = {}
for t in task_diag.dump(wire.DUMP_ALL, show=wire.SHOW_BASE | wire.SHOW_CGROUP, source=sys.argv[1]):
    out[t.pid] = [t.cgroup.proc_path, t.cgroup.id, proc(t.pid)]
json.dump({'me': os.getpid(), 'tasks': out}, sys.stdout)
'''


def test_reader_in_a_cgroup_namespace(tree, source):
    """A reader whose cgroup namespace's root is td-test/a/b/ns-*: paths
    relative to it, "/.." where a task is not below it, as its /proc
    prints them."""
    rel = 'a/b/ns-' + source
    tree.mkdir(rel)
    # the reader enters it, then unshares its cgroup namespace there
    r = subprocess.run(
        ['sh', '-c', 'echo $$ > %s/cgroup.procs && exec unshare --cgroup "$@"'
         % tree.path(rel), 'sh', PY, '-c', NS_READ, source],
        capture_output=True, text=True, timeout=120)
    tree.rmdir(rel)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    tasks = {int(k): v for k, v in out['tasks'].items()}
    assert tasks[out['me']][0] == '/' == tasks[out['me']][2]
    checked = 0
    for pid, (got, cg_id, want) in tasks.items():
        if want is None or proc_cgroup(pid) is None:
            continue                    # gone meanwhile
        assert got == want, pid
        checked += 1
    assert checked > 10
    assert tasks[tree.sleeper_a.pid][0] == '/../..'
    assert tasks[tree.sleeper_d.pid][0] == '/../../../d'
    assert tasks[os.getpid()][0].startswith('/../../../..')
    if source != 'proc':                # the /proc fallback has no mount to find ids in
        assert tasks[tree.sleeper_d.pid][1] == os.stat(tree.path('d')).st_ino


# --- the walk of the subtree (td_cgroup), where the kernel has it ----------------

@pytest.fixture
def walk_backend(bpf):
    """A BpfBackend whose pins have td_cgroup: required where the kernel's
    BTF has the css_task iterator (6.7), skipped elsewhere."""
    from task_diag.bpf_backend import BpfBackend
    from task_diag.loader import load
    b = BpfBackend()
    if b.prog_cgroup is None:
        b.close()
        assert not load.kernel_features().get('css_task_iter'), \
            'the kernel has the css_task iterator but td_cgroup is not pinned'
        need(False, 'no css_task iterator on this kernel: the task iterator filters')
    yield b
    b.close()


def test_walk_answers_filtered_dumps(tree, walk_backend):
    """With the walk loaded, the filter's requests without VMA and CMDLINE
    take it; those with them take the task iterator; both answer the same
    tasks."""
    from task_diag.bpf_backend import CgroupWalk, Stream
    cg = os.stat(tree.path('a')).st_ino
    s = walk_backend.stream(wire.DUMP_ALL, 0, SHOW | wire.SHOW_NS | wire.SHOW_STAT, cgroup=cg)
    assert isinstance(s, CgroupWalk)
    s.close()
    for show in (SHOW | wire.SHOW_CMDLINE, SHOW | wire.SHOW_VMA):
        s = walk_backend.stream(wire.DUMP_ALL, 0, show, cgroup=cg)
        assert isinstance(s, Stream)
        s.close()
        got = [t.pid for t in wire.decode(walk_backend.raw(wire.DUMP_ALL, 0, show, cgroup=cg),
                                         show)]
        assert sorted(got) == sorted(tree.listed('a'))


def test_walk_in_many_runs(tree, walk_backend):
    """A subtree whose answer is many times the iterator's 32 KiB: each run
    goes on where the last stopped; every task once."""
    tree.mkdir('many')
    tree.mkdir('many/x')
    procs = [tree.spawn('many' if i % 2 else 'many/x', ['sleep', '1000']) for i in range(300)]
    try:
        for p in procs:
            wait_states(p.pid, 'S')
        show = wire.SHOW_BASE | wire.SHOW_CRED | wire.SHOW_STAT | wire.SHOW_CGROUP
        s = walk_backend.stream(wire.DUMP_ALL, 0, show, cgroup=os.stat(tree.path('many')).st_ino)
        pieces = []
        while True:
            piece = s.read(once=True)
            if not piece:
                break
            pieces.append(piece)
        assert len(pieces) >= 3         # some 250 bytes each: 114 to a 32 KiB run
        tasks = wire.decode(b''.join(pieces), show)
        pids = [t.pid for t in tasks]
        assert len(pids) == len(set(pids)) == 300
        assert set(pids) == {p.pid for p in procs} == tree.listed('many')
        for t in tasks:
            assert t.cgroup.proc_path == proc_cgroup(t.pid)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def test_walk_starts_over_when_its_place_is_gone(tree, walk_backend):
    """The task a run stopped after exits before the next run: the walk
    starts over and leaves out what it answered; every task that lived
    through it comes once."""
    tree.mkdir('lost')
    procs = [tree.spawn('lost', ['sleep', '1000']) for _ in range(400)]
    try:
        for p in procs:
            wait_states(p.pid, 'S')
        show = wire.SHOW_BASE | wire.SHOW_CRED | wire.SHOW_STAT | wire.SHOW_CGROUP
        s = walk_backend.stream(wire.DUMP_ALL, 0, show, cgroup=os.stat(tree.path('lost')).st_ino)
        first = s.read(once=True)
        from task_diag.bpf_backend import _F
        stopped_after = s.fields[_F['cgc_pid']]
        assert stopped_after in {p.pid for p in procs}
        victim = next(p for p in procs if p.pid == stopped_after)
        victim.kill()
        victim.wait()
        rest = s.read(1 << 62)
        assert s.restarts == 1
        pids = [t.pid for t in wire.decode(first + rest, show)]
        assert len(pids) == len(set(pids))
        assert set(pids) == {p.pid for p in procs}      # the victim was answered first
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
