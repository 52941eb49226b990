"""task_diag.watch(): the dump, then fork, exec, exit and rename events,
against what the kernel tells the parent: 10,000 short-lived children
forked and reaped while a watch runs, each seen forked and exited once,
its wait status and its wait4() CPU times equal to the event's; exec's
comm and command line; renames; the cgroup filter; a full ring reported;
and EPERM for a reader that is not root."""
import collections
import ctypes
import os
import subprocess
import time

import pytest

import task_diag
from task_diag import wire

from helpers import PY, need
from helpers.cgroups import CgroupTree
from helpers.ns import NOBODY, setpriv

PR_SET_NAME = 15
N_CHILDREN = 10000


@pytest.fixture
def watcher(bpf):
    need(os.geteuid() == 0, 'watch() needs root')
    w = task_diag.watch()
    yield w
    w.close()


def drain(w, until, timeout=60):
    """Events of @w until @until(events so far) holds."""
    events = []
    deadline = time.monotonic() + timeout
    while not until(events):
        assert time.monotonic() < deadline, 'timed out: %d events' % len(events)
        events += w.poll(0.2)
    return events


def burn(ns):
    end = time.process_time_ns() + ns
    while time.process_time_ns() < end:
        pass


def test_ten_thousand_children(watcher):
    """Fork and reap N_CHILDREN children (most exit at once, under 1 ms; one
    in 50 burns 2 ms of CPU first): each comes once as a fork and once as an
    exit, with the status and the CPU times wait4() gave us.  With pid_max
    at 32768 a pid comes back within the run: children are told apart by
    their pid and their place among those that had it."""
    me = os.getpid()
    snapshot = watcher.dump()
    assert me in {t.pid for t in snapshot}
    reaped = collections.defaultdict(list)     # pid -> [(status, rusage)], in order
    events = []
    for i in range(N_CHILDREN):
        pid = os.fork()
        if pid == 0:
            if i % 50 == 0:
                burn(2_000_000)
            os._exit(i % 256)
        _, status, ru = os.wait4(pid, 0)
        reaped[pid].append((status, ru))
        if i % 500 == 499:
            events += watcher.poll(0)

    def ours(evs, kind):
        return [e for e in evs if e.kind == kind and e.ppid == me and e.pid in reaped]
    events += drain(watcher, lambda evs: len(ours(evs + events, 'exit')) >= N_CHILDREN)
    assert not [e for e in events if e.kind == 'lost'], 'events dropped'
    forks, exits = ours(events, 'fork'), ours(events, 'exit')
    counts = collections.Counter({pid: len(v) for pid, v in reaped.items()})
    assert sum(counts.values()) == N_CHILDREN
    assert collections.Counter(e.pid for e in forks) == counts      # each once
    assert collections.Counter(e.pid for e in exits) == counts
    burned = 0
    by_pid = collections.defaultdict(list)
    for e in sorted(exits, key=lambda e: e.ktime):
        by_pid[e.pid].append(e)
    for pid, evs in by_pid.items():
        for e, (status, ru) in zip(evs, reaped[pid]):
            assert e.status == status, e
            assert e.exitcode == os.waitstatus_to_exitcode(status)
            # rusage: the same ns, as a timeval
            assert e.utime // 1000 == round(ru.ru_utime * 1e6), (e, ru)
            assert e.stime // 1000 == round(ru.ru_stime * 1e6), (e, ru)
            assert e.minflt == ru.ru_minflt and e.majflt == ru.ru_majflt, (e, ru)
            burned += e.utime + e.stime >= 2_000_000
    assert burned >= N_CHILDREN // 50
    comm = open('/proc/self/comm').read().strip()[:15]
    assert all(e.comm == comm for e in forks)


def test_exec_and_rename(watcher):
    watcher.dump()
    p = subprocess.Popen(['sleep', '0.3'])
    libc = ctypes.CDLL(None, use_errno=True)
    with open('/proc/self/comm', 'rb') as f:
        was = f.read().strip()
    libc.prctl(PR_SET_NAME, b'td-renamed', 0, 0, 0)
    try:
        p.wait()
        events = drain(watcher, lambda evs: any(e.kind == 'exit' and e.pid == p.pid
                                                for e in evs))
    finally:
        libc.prctl(PR_SET_NAME, was, 0, 0, 0)
    mine = [e for e in events if e.pid == p.pid]
    assert [e.kind for e in mine] == ['fork', 'exec', 'exit']
    assert mine[1].comm == 'sleep' and mine[1].cmdline == b'sleep\x000.3\x00'
    assert mine[2].status == 0 and mine[2].comm == 'sleep'
    renames = [e for e in events if e.kind == 'comm' and e.pid == os.getpid()]
    assert renames and renames[0].comm == 'td-renamed'


def test_the_dump_and_the_events_join(watcher):
    """A process that the dump has does not come again as a fork; one that
    exits after the dump comes as an exit."""
    p = subprocess.Popen(['sleep', '1000'])
    tasks = watcher.dump()
    assert p.pid in {t.pid for t in tasks}
    p.kill()
    p.wait()
    events = drain(watcher, lambda evs: any(e.kind == 'exit' and e.pid == p.pid
                                            for e in evs))
    assert not [e for e in events if e.kind == 'fork' and e.pid == p.pid]
    (ex,) = [e for e in events if e.kind == 'exit' and e.pid == p.pid]
    assert os.WIFSIGNALED(ex.status) and os.WTERMSIG(ex.status) == 9


def test_iterating_yields_tasks_then_events(bpf):
    """Iterating a watch: the dump's tasks (with the groups asked), then
    events; a process that came and went before the dump comes as events."""
    need(os.geteuid() == 0, 'watch() needs root')
    with task_diag.watch(show=wire.SHOW_BASE | wire.SHOW_STAT) as w:
        p = subprocess.Popen(['true'])
        p.wait()
        items = []
        for item in w:
            items.append(item)
            if isinstance(item, task_diag.Event) and item.kind == 'exit' and item.pid == p.pid:
                break
    first = next(i for i, x in enumerate(items) if isinstance(x, task_diag.Event))
    assert first > 10 and all(isinstance(x, wire.Task) and x.stat is not None
                              for x in items[:first])
    assert all(isinstance(x, task_diag.Event) for x in items[first:])
    assert [x.kind for x in items[first:] if x.pid == p.pid] == ['fork', 'exec', 'exit']


def test_cgroup_filter(bpf):
    need(os.geteuid() == 0, 'watch() needs root')
    with CgroupTree() as tree, task_diag.watch(cgroup=tree.mkdir('w')) as w:
        w.dump()
        inside = tree.spawn('w', ['true'])
        outside = subprocess.Popen(['true'])
        inside.wait()
        outside.wait()
        events = drain(w, lambda evs: any(e.kind == 'exit' and e.pid == inside.pid
                                          for e in evs))
        time.sleep(0.2)
        events += w.poll(0.2)
        assert {e.kind for e in events if e.pid == inside.pid} >= {'exec', 'exit'}
        assert not [e for e in events if e.pid == outside.pid]


def test_a_full_ring_is_reported(bpf):
    """A ring of one page that nobody reads: the events it had no room for
    come as one 'lost' event with their count."""
    need(os.geteuid() == 0, 'watch() needs root')
    with task_diag.watch(ring_size=4096) as w:
        for _ in range(200):
            subprocess.run(['true'])
        events = w.poll(0.5)
        lost = [e for e in events if e.kind == 'lost']
        assert lost and lost[0].count > 0 and w.dropped == lost[0].count
        assert 0 < len(events) - 1 < 200 * 3


def test_not_root():
    r = subprocess.run(setpriv(NOBODY) + [PY, '-c', 'import task_diag; task_diag.watch()'],
                       capture_output=True, text=True, cwd='/')
    assert r.returncode != 0
    assert 'PermissionError' in r.stderr and 'root only' in r.stderr


THREADED = r'''
import ctypes, os, sys, threading, time
libc = ctypes.CDLL(None)
if sys.argv[1] == 'leader-first':
    # the main thread ends first (pthread_exit); the other burns, then
    # exits with 5: the process ends then, with status 5
    def last():
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass
        os._exit(5)
    threading.Thread(target=last).start()
    libc.pthread_exit(None)
else:
    # a thread other than the leader executes a program: the process goes on
    def run():
        os.execv('/bin/sleep', ['sleep', '0.2'])
    threading.Thread(target=run).start()
    time.sleep(100)
'''


@pytest.mark.parametrize('how', ['leader-first', 'exec-from-thread'])
def test_threaded_processes_exit_once(watcher, how):
    """A process whose leader ends first: one exit, when its last thread
    ends, with that status and the times wait4() gives.  A process whose
    non-leader thread executes a program: no exit then, one when the
    program ends."""
    watcher.dump()
    p = subprocess.Popen([PY, '-c', THREADED, how])
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = status
    events = drain(watcher, lambda evs: any(e.kind == 'exit' and e.pid == p.pid
                                            for e in evs))
    time.sleep(0.3)
    events += watcher.poll(0.2)
    (ex,) = [e for e in events if e.kind == 'exit' and e.pid == p.pid]
    assert ex.status == status
    assert ex.utime // 1000 == round(ru.ru_utime * 1e6)
    assert ex.stime // 1000 == round(ru.ru_stime * 1e6)
    if how == 'leader-first':
        assert os.waitstatus_to_exitcode(status) == 5 and ex.utime + ex.stime >= 50_000_000
    else:
        assert [e.kind for e in events if e.pid == p.pid] == ['fork', 'exec', 'exec', 'exit']
        assert ex.comm == 'sleep' and status == 0
