"""How this kernel's /proc/PID/statm reads the RSS counters, measured once
at load time for STATM (td_config.statm_cpus; the programs' side is
mm_counter() in task_diag/bpf/td_groups.h).

Since 6.2 each RSS counter of an mm is a per-CPU counter: a total that
lags, and a small count per CPU.  /proc read the total alone
(percpu_counter_read_positive()) until a 2025 change made statm and status
sum the CPUs (get_mm_counter_sum()), a change backported to some stable
kernels and not others.  Nothing in BTF tells the two apart, so we look:
a stopped child that has just faulted in a few pages (fewer than a
counter's batch, so they wait in this CPU's count) has a total and a sum
that differ, and /proc shows one of them.  Before 6.2 the counters are
atomics and both readings are the same number: nothing to choose.
"""
import mmap
import os
import signal

from .. import wire
from ..libbpf import possible_cpus

ATTEMPTS = 8


def _child():
    """Fault in a few pages, stop, and again when continued: each round
    leaves counts waiting on the CPU it ran on.  Exits with its parent's
    SIGKILL."""
    area = mmap.mmap(-1, ATTEMPTS * 16 * mmap.PAGESIZE)
    for round_ in range(ATTEMPTS):
        for page in range(round_ * 16, round_ * 16 + 3 + round_):
            area[page * mmap.PAGESIZE] = 1
        os.kill(os.getpid(), signal.SIGSTOP)
    os._exit(0)


def _resident(backend, pid, cpus, set_cpus):
    set_cpus(cpus)
    tasks = wire.decode(backend.raw(wire.DUMP_ONE, pid, wire.SHOW_STATM))
    return tasks[0].statm.resident if tasks else None


def measure(backend, set_cpus):
    """The td_config.statm_cpus that makes STATM equal /proc/PID/statm
    here: possible_cpus() where /proc sums the CPUs, 0 where it reads the
    total (or where both are the same: atomics).  @backend answers
    requests with the programs just loaded; @set_cpus(n) writes
    td_config.statm_cpus, which is left at the answer (at 0, the totals,
    when the measurement fails).  The programs are pinned already: a root
    reader of this moment may get either reading."""
    cpus = possible_cpus()
    answer = 0
    pid = os.fork()
    if pid == 0:                        # pragma: no cover (the child)
        try:
            _child()
        finally:
            os._exit(1)
    reaped = False
    try:
        for _ in range(ATTEMPTS):
            _, status = os.waitpid(pid, os.WUNTRACED)
            if not os.WIFSTOPPED(status):
                reaped = True           # it ended: its pid is no longer ours
                break
            summed = _resident(backend, pid, cpus, set_cpus)
            total = _resident(backend, pid, 0, set_cpus)
            with open('/proc/%d/statm' % pid, 'rb') as f:
                shown = int(f.read().split()[1])
            if summed != total and shown in (summed, total):    # this round tells
                answer = cpus if shown == summed else 0            # them apart
                break
            os.kill(pid, signal.SIGCONT)
    finally:
        if not reaped:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        set_cpus(answer)
    return answer
