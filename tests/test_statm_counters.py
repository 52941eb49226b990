"""STATM's RSS counters are read the way this kernel's /proc/PID/statm
reads them, which task-diag-load measures (task_diag/loader/statm.py):
since 6.2 each counter is per-CPU, and a task that has just faulted in a
few pages has them waiting in its CPUs' counts, in the sum /proc shows on
2025 kernels and not in the total it showed before."""
import mmap
import os
import signal

import pytest

from task_diag import libbpf

from task_diag import tdconfig, wire
from task_diag.bpf_backend import BpfBackend
from task_diag.loader import statm


def _stopped_child(pages):
    """A child that faults in @pages anonymous and shared pages and stops
    itself; its pid."""
    pid = os.fork()
    if pid == 0:                                    # pragma: no cover (the child)
        try:
            private = mmap.mmap(-1, pages * mmap.PAGESIZE, flags=mmap.MAP_PRIVATE)
            shared = mmap.mmap(-1, pages * mmap.PAGESIZE)
            for i in range(pages):
                private[i * mmap.PAGESIZE] = 1
                shared[i * mmap.PAGESIZE] = 1
            os.kill(os.getpid(), signal.SIGSTOP)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    return pid


@pytest.fixture
def backend(bpf):
    b = BpfBackend()
    yield b
    b.close()


@pytest.fixture
def child():
    pid = _stopped_child(5)
    yield pid
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _statm(backend, pid):
    (t,) = wire.decode(backend.raw(wire.DUMP_ONE, pid, wire.SHOW_STATM))
    return tuple(t.statm)


def _proc_statm(pid):
    with open('/proc/%d/statm' % pid) as f:
        return tuple(int(x) for x in f.read().split())


def test_statm_as_proc_reads_it(backend, child):
    """The measured way gives /proc's numbers for a stopped task with
    counts waiting on its CPUs; where the measurement chose the sum, the
    totals alone (the other way) miss them for some such task (a fold can
    empty a CPU's count: a few children are tried), so the choice is seen
    to matter."""
    cfg = tdconfig.read_pinned()
    assert cfg['statm_cpus'] in (0, libbpf.possible_cpus())
    assert _statm(backend, child) == _proc_statm(child)
    if not cfg['statm_cpus']:
        return
    fd = tdconfig.open_pinned()
    differed = False
    try:
        for _ in range(5):
            pid = _stopped_child(5)
            try:
                tdconfig.update(fd, statm_cpus=cfg['statm_cpus'])
                shown = _proc_statm(pid)
                assert _statm(backend, pid) == shown
                tdconfig.update(fd, statm_cpus=0)
                totals = _statm(backend, pid)
            finally:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            if totals != shown:
                differed = True
                break
    finally:
        tdconfig.update(fd, statm_cpus=cfg['statm_cpus'])
        os.close(fd)
    assert differed, 'the totals equalled the sums for 5 children: nothing was measured'


def test_measure_finds_what_proc_shows(backend):
    """statm.measure() on its own: the answer it leaves set is one that
    makes STATM equal /proc for a fresh stopped child."""
    fd = tdconfig.open_pinned()
    before = tdconfig.read(fd)['statm_cpus']
    try:
        answer = statm.measure(backend, lambda n: tdconfig.update(fd, statm_cpus=n))
        assert answer == before         # the loader measured the same
        pid = _stopped_child(3)
        try:
            assert _statm(backend, pid) == _proc_statm(pid)
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    finally:
        tdconfig.update(fd, statm_cpus=before)
        os.close(fd)
