"""VMAs of a task whose mmap_lock is always wanted by a writer.

Two threads of tests/hammer.c mprotect() a populated 128 MiB mapping back
and forth without pause, so that a writer holds the task's mmap_lock, or waits
for it, nearly all the time.  Before 6.18.y the open-coded VMA iterator
only try-locked mmap_lock: the program asked for the task again and again,
and the dump failed after the driver's retries.  Since, it walks under
per-VMA locks and passes over a VMA a writer holds without a word: the
hammered mapping was missing from about half the dumps of this kernel
(6.18.44).  Either way the task must be answered, and exactly: its walk is
marked for /proc (TD_MSG_F_VMA_FROM_PROC), whose reader takes the lock.
"""
import os
import signal
import subprocess

import pytest

from task_diag import wire

from helpers import build_c


DUMPS = 30


@pytest.fixture
def backend(vma_backend):
    return vma_backend


@pytest.fixture
def hammered(tmp_path):
    """(pid, start of the hammered mapping) of a running hammer."""
    exe = build_c('hammer.c', str(tmp_path / 'hammer'), '-O2', '-Wall', '-Werror', '-pthread')
    p = subprocess.Popen([exe], stdout=subprocess.PIPE)
    try:
        area = int(p.stdout.readline(), 16)
        yield p.pid, area
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()


def ranges_from_maps(pid):
    """[(start, end)] of /proc/PID/maps: the hammer changes permissions
    only, never where its mappings are."""
    out = []
    with open('/proc/%d/maps' % pid) as f:
        for line in f:
            start, end = line.split(None, 1)[0].split('-')
            out.append((int(start, 16), int(end, 16)))
    return out


def one_dump(backend, pid, show):
    """(the task, how many tasks the driver answered from /proc)."""
    s = backend.stream(wire.DUMP_ONE, pid, show)
    raw = b''.join(iter(s.read, b''))
    (task,) = wire.iter_decode(raw)
    return task, s.tasks_from_proc


@pytest.mark.parametrize('show', [wire.SHOW_BASE | wire.SHOW_VMA,
                                  wire.SHOW_BASE | wire.SHOW_VMA | wire.SHOW_VMA_STAT],
                         ids=['vma', 'vma_stat'])
def test_busy_task_is_answered_whole(backend, vma_stat_source, hammered, show):
    # VMA_STAT from the page walk: from smaps, every task's VMAs come from
    # /proc anyway, and the programs' walk would not be tested
    if show & wire.SHOW_VMA_STAT:
        vma_stat_source('pagewalk')
    pid, area = hammered
    want = ranges_from_maps(pid)
    assert any(start == area for start, _ in want)
    from_proc = 0
    for i in range(DUMPS * 10):
        if i >= DUMPS and from_proc:
            break
        task, n = one_dump(backend, pid, show)
        from_proc += n
        assert [(v.start, v.end) for v in task.vmas] == want
        if show & wire.SHOW_VMA_STAT:
            assert all(v.stat is not None for v in task.vmas)
    # the writers overlapped some walks (none to a half of 30 here: it
    # depends on who has the CPUs), or this test did not hold the lock
    # busy and proves nothing
    assert from_proc > 0


def test_busy_task_does_not_stall_a_dump_of_all(backend, hammered):
    pid, area = hammered
    want = ranges_from_maps(pid)
    tasks = [t for t in wire.iter_decode(backend.raw(wire.DUMP_ALL,
                                                     show=wire.SHOW_BASE | wire.SHOW_VMA))
             if t.pid == pid]
    assert len(tasks) == 1
    assert [(v.start, v.end) for v in tasks[0].vmas] == want
