"""CMDLINE through the direct map (task_diag/bpf/td_directmap.h,
td_config.cmdline_direct): the programs read a command line from the
page it is in, through the kernel's direct map, instead of with
bpf_copy_from_user_task(), which takes the task's mmap_lock and pins the
page: about a fifth of the cost per process.  Pages that are not present,
anonymous and small still go the slow way, one by one.

The direct read reads kernel memory at addresses it derives from the
calibrated bases (the same ones as --vma-stat=pagewalk) and takes no lock,
so it is enabled only when:
  - the machine is x86-64 and the loaded object reads CMDLINE (sleepable);
  - the kernel frees page tables after an RCU grace period
    (CONFIG_MMU_GATHER_RCU_TABLE_FREE, from its config or kallsyms), which
    the read's RCU section relies on;
  - the calibration pass finds the bases;
  - for processes built here (a command line of two pages, one short) and
    this process, CMDLINE read that way equals /proc/PID/cmdline, and none
    of those reads went the slow way.
Otherwise CMDLINE stays on bpf_copy_from_user_task() and the reason is
printed, in one line.
"""
import os
import platform
import signal
import subprocess
import sys
import time

from .. import tdconfig, wire
from ..bpf_backend import BpfBackend
from ..iterproto import PIN_DIR
from . import pagewalk

# The probe processes: a stopped Python whose arguments are two pages
# long (the read crosses a page boundary) and one with a short command line.
_STOP = 'import os, signal; os.kill(os.getpid(), signal.SIGSTOP)'
PROBES = ([sys.executable, '-c', _STOP, 'x' * 3000, 'y' * 3000],
          [sys.executable, '-c', _STOP])


class Refused(Exception):
    """The direct read cannot be trusted here; the message says why."""


def rcu_table_free():
    """Whether this kernel frees page tables after an RCU grace period
    (CONFIG_MMU_GATHER_RCU_TABLE_FREE): from its config, or, where that is
    not readable (a VM's kernel, a container), from kallsyms, which lists
    the callback that option compiles in (mm/mmu_gather.c)."""
    config = pagewalk.kernel_config()
    if config is not None:
        return config.get('CONFIG_MMU_GATHER_RCU_TABLE_FREE') == 'y'
    try:
        with open('/proc/kallsyms') as f:
            return any(line.rstrip().endswith(' tlb_remove_table_rcu') for line in f)
    except OSError:
        return False


def why_not(cfg):
    """None when the direct read may be tried, else the reason."""
    if platform.machine() != 'x86_64':
        return 'it knows only x86-64 page tables (this is %s)' % platform.machine()
    if not cfg['cmdline']:
        return 'the object loaded does not read CMDLINE'
    if not rcu_table_free():
        return ('no CONFIG_MMU_GATHER_RCU_TABLE_FREE (neither in the kernel config nor in '
                'kallsyms): page tables may be freed under the read')
    return None


def _wait_stopped(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            if f.read().rsplit(b')', 1)[1].split()[0] == b'T':
                return
        time.sleep(0.005)
    raise Refused('probe process %d did not stop' % pid)


def check(backend, fd, pids):
    """Raises Refused unless CMDLINE of each of @pids equals the first
    TASK_DIAG_CMDLINE_MAX bytes of its /proc/PID/cmdline, read the direct
    way (td_config.cmdline_slow does not move)."""
    slow = tdconfig.read(fd)['cmdline_slow']
    for pid in pids:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            want = f.read()[:wire.TASK_DIAG_CMDLINE_MAX]
        tasks = wire.decode(backend.raw(wire.DUMP_ONE, pid, wire.SHOW_BASE | wire.SHOW_CMDLINE))
        if len(tasks) != 1 or tasks[0].cmdline != want:
            raise Refused('pid %d: CMDLINE %r..., /proc %r...'
                          % (pid, tasks[0].cmdline[:40] if tasks else None, want[:40]))
    if tdconfig.read(fd)['cmdline_slow'] != slow:
        raise Refused('the probe processes\' pages were not read the direct way')


def enable(pin_dir=PIN_DIR):
    """Sets td_config.cmdline_direct after every check; raises Refused (it
    is then 0)."""
    fd = tdconfig.open_pinned(pin_dir)
    try:
        reason = why_not(tdconfig.read(fd))
        if reason:
            raise Refused(reason)
        backend = BpfBackend(pin_dir)
        procs = []
        try:
            pagewalk.calibrate(backend)
            tdconfig.update(fd, cmdline_direct=1)
            procs = [subprocess.Popen(argv, stdin=subprocess.DEVNULL) for argv in PROBES]
            for p in procs:
                _wait_stopped(p.pid)
            check(backend, fd, [p.pid for p in procs] + [os.getpid()])
        except BaseException as e:
            tdconfig.update(fd, cmdline_direct=0)
            if isinstance(e, pagewalk.Refused):
                raise Refused(str(e)) from None
            raise
        finally:
            for p in procs:
                p.send_signal(signal.SIGKILL)
                p.wait()
            backend.close()
    finally:
        os.close(fd)
