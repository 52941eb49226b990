"""TASK_DIAG_NS against the /proc/PID/ns links, through every backend:
processes made in new namespaces of every kind (unshare(1)), a zombie
(which keeps only its pid and user namespaces), threads, every task of
the machine, and a reader of another uid, who sees what its /proc shows."""
import json
import os
import signal
import subprocess
import time

import pytest

import task_diag
from task_diag import wire

from helpers import PY, need
from helpers.ns import NOBODY, setpriv
from helpers.procs import wait_states

KINDS = ('cgroup', 'ipc', 'mnt', 'net', 'pid', 'time', 'user', 'uts')
UNSHARE = {'cgroup': '--cgroup', 'ipc': '--ipc', 'mnt': '--mount', 'net': '--net',
           'pid': '--pid', 'time': '--time', 'user': '--user', 'uts': '--uts'}


@pytest.fixture
def source(every_source):
    """Every backend, the front's file included (conftest's every_source)."""
    return every_source


def proc_ns(pid, tid=None):
    """The inode each /proc/PID/ns link names, 0 where there is none, in
    the order of task_diag_ns."""
    d = '/proc/%d' % pid if tid is None else '/proc/%d/task/%d' % (pid, tid)
    out = []
    for name in wire.NS.names:
        try:
            out.append(os.stat('%s/ns/%s' % (d, name)).st_ino)
        except (FileNotFoundError, ProcessLookupError):
            out.append(0)
    return wire.Ns(*out)


def one(pid, source, strategy=wire.DUMP_ONE):
    return {t.pid: t for t in task_diag.dump(strategy, pid, show=wire.SHOW_BASE | wire.SHOW_NS,
                                             source=source)}


@pytest.fixture(scope='module')
def made():
    """{label: pid}: a sleeper in new namespaces of each kind and of all at
    once (its pid namespace's init: `unshare --fork`), a zombie, a process
    with threads.  All killed and reaped at the end."""
    need(os.geteuid() == 0, 'unshare of every namespace needs root')
    procs, pids = [], {}
    try:
        for kind in KINDS + ('all',):
            flags = list(UNSHARE.values()) if kind == 'all' else [UNSHARE[kind]]
            p = subprocess.Popen(['unshare', '--fork'] + flags + ['sleep', '1000'])
            procs.append(p)
            pids[kind] = p
        for kind, p in list(pids.items()):
            # the sleeper is unshare's child, the one in every new namespace
            for _ in range(2000):
                kids = open('/proc/%d/task/%d/children' % (p.pid, p.pid)).read().split()
                if kids:
                    break
                time.sleep(0.005)
            pids[kind] = int(kids[0])
            wait_states(pids[kind], 'S')
        zombie = subprocess.Popen([PY, '-c', 'import os; os._exit(0)'])
        procs.append(zombie)
        wait_states(zombie.pid, 'Z')
        pids['zombie'] = zombie.pid
        threads = subprocess.Popen(
            [PY, '-c', 'import threading, time\n'
                       'for _ in range(3): threading.Thread(target=time.sleep, args=(1000,),'
                       ' daemon=True).start()\n'
                       'print(flush=True); time.sleep(1000)'], stdout=subprocess.PIPE)
        procs.append(threads)
        threads.stdout.readline()
        pids['threads'] = threads.pid
        yield pids
    finally:
        # the sleepers first, by pid: unshare's children, which killing
        # unshare would leave running (reparented, as their namespace's init)
        for kind in KINDS + ('all',):
            if isinstance(pids.get(kind), int):
                try:
                    os.kill(pids[kind], signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def test_made_processes_are_in_their_namespaces(made):
    """The oracle's side: each sleeper's link of its kind differs from ours
    (the test would prove nothing otherwise); the zombie has only pid and
    user links."""
    mine = proc_ns(os.getpid())
    for kind in KINDS:
        assert getattr(proc_ns(made[kind]), kind) != getattr(mine, kind), kind
        assert getattr(proc_ns(made['all']), kind) != getattr(mine, kind), kind
    z = proc_ns(made['zombie'])
    assert z.pid and z.user and not (z.net or z.mnt or z.uts or z.ipc or z.cgroup)


@pytest.mark.parametrize('label', KINDS + ('all', 'zombie'))
def test_ns_of_made_processes(made, source, label):
    pid = made[label]
    got = one(pid, source)
    assert got[pid].ns == proc_ns(pid)


def test_ns_per_thread(made, source):
    """THREAD and ALL_THREAD: each thread's links (a thread may unshare
    alone; these share their process's)."""
    pid = made['threads']
    tids = sorted(int(t) for t in os.listdir('/proc/%d/task' % pid))
    assert len(tids) == 4
    got = one(pid, source, wire.DUMP_THREAD)
    assert sorted(got) == tids
    for tid in tids:
        assert got[tid].ns == proc_ns(pid, tid)


@pytest.mark.parametrize('strategy', [wire.DUMP_ALL, wire.DUMP_ALL_THREAD],
                         ids=['all', 'threads'])
def test_every_task(source, strategy):
    """Every task that lives through the dump: its links before and after
    are the same (a task may unshare meanwhile), and so is its NS."""
    got = {t.pid: (t.tgid, t.ns) for t in task_diag.dump(
        strategy, show=wire.SHOW_BASE | wire.SHOW_NS, source=source)}
    checked = 0
    for pid, (tgid, ns) in got.items():
        tid = None if strategy == wire.DUMP_ALL else pid
        before = proc_ns(tgid, tid)
        if before == ns:
            checked += 1
            continue
        after = proc_ns(tgid, tid)
        if after != before or not os.path.exists('/proc/%d' % pid):
            continue                # changed or gone meanwhile
        pytest.fail('task %d: NS %r, /proc %r' % (pid, ns, after))
    assert checked > 10


NOBODY_READ = r'''
import json, os, sys
import task_diag
from task_diag import wire
source = sys.argv[1]
out = {}
for t in task_diag.dump(wire.DUMP_ALL, show=wire.SHOW_BASE | wire.SHOW_NS, source=source):
    out[t.pid] = list(t.ns)
json.dump(out, sys.stdout)
'''


def test_nobody_sees_what_its_proc_shows(made, source, request):
    """uid 65534 gets NS for its own processes, equal to their links, and
    none for root's (whose links its /proc refuses)."""
    if source == 'bpf':
        request.getfixturevalue('front')
        source = 'file'                 # what a reader that is not root uses
    mine = subprocess.Popen(setpriv(NOBODY) + ['sleep', '1000'])
    try:
        wait_states(mine.pid, 'S')
        r = subprocess.run(setpriv(NOBODY) + [PY, '-c', NOBODY_READ, source],
                           capture_output=True, text=True, timeout=120, cwd='/')
        assert r.returncode == 0, r.stderr
        seen = {int(k): v for k, v in json.loads(r.stdout).items()}
        assert seen[mine.pid] == list(proc_ns(mine.pid))
        for label in KINDS:
            assert made[label] not in seen
        assert 1 not in seen and os.getpid() not in seen
    finally:
        mine.send_signal(signal.SIGKILL)
        mine.wait()


def test_ns_with_cmdline_in_one_message(made, source):
    """With CMDLINE (which the sleepable programs read after the rest) NS
    still comes last, once, and equal."""
    pid = made['all']
    show = wire.SHOW_BASE | wire.SHOW_CMDLINE | wire.SHOW_STAT_EXT | wire.SHOW_NS
    raw = task_diag.raw(wire.DUMP_ONE, pid, show, source=source)
    (_, _, attrs), = list(wire.iter_messages(raw))
    assert [a[0] for a in attrs] == [wire.TASK_DIAG_BASE, wire.TASK_DIAG_CMDLINE,
                                     wire.TASK_DIAG_STAT_EXT, wire.TASK_DIAG_NS]
    (t,) = wire.decode(raw, show)
    assert t.ns == proc_ns(pid)
    assert t.cmdline == open('/proc/%d/cmdline' % pid, 'rb').read()

