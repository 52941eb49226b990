"""CMDLINE through the direct map (task_diag/bpf/td_directmap.h,
td_config.cmdline_direct): the programs read a command line from the
page it is in, through the kernel's direct map, instead of with
bpf_copy_from_user_task(), which also pins the page and may sleep to
fault it in.  Not sleeping, the plain (not sleepable) objects read
CMDLINE too (Debian 12's 6.1).  A command line whose pages are not
present, not small, or not in one anonymous readable VMA, or whose
mmap_lock a writer holds, goes the slow way: bpf_copy_from_user_task() in
a sleepable object; in a plain one the message comes marked and the
driver reads /proc/PID/cmdline.

The direct read reads kernel memory at addresses it derives from the
calibrated direct-map base (the same as --vma-stat=pagewalk's), so it is
enabled only when:
  - the machine is x86-64;
  - the calibration pass finds the direct map's base;
  - for processes built here (a command line of two pages, one short) and
    this process, CMDLINE read that way equals /proc/PID/cmdline, and none
    of those reads went the slow way.
Until then it serves the loader's own reads only (cmdline_checker).
Otherwise CMDLINE stays on the slow way and the reason is printed, in one
line.
"""
import ctypes
import os
import platform
import signal
import subprocess
import sys
import time

from .. import tdconfig, wire
from ..bpf_backend import BpfBackend
from ..iterproto import PIN_DIR, VMA_STAT_PAGEWALK
from . import pagewalk

CHECKING = 2            # td_config.cmdline_direct: for cmdline_checker's reads only
CHECK_TRIES = 3
PR_SET_PDEATHSIG = 1

# The probe processes: a stopped Python whose arguments are two pages
# long (the read crosses a page boundary) and one with a short command line.
_STOP = 'import os, signal; os.kill(os.getpid(), signal.SIGSTOP)'
PROBES = ([sys.executable, '-c', _STOP, 'x' * 3000, 'y' * 3000],
          [sys.executable, '-c', _STOP])


class Refused(Exception):
    """The direct read cannot be trusted here; the message says why."""


def why_not():
    """None when the direct read may be tried, else the reason."""
    if platform.machine() != 'x86_64':
        return 'it knows only x86-64 page tables (this is %s)' % platform.machine()
    return None


def _wait_stopped(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pagewalk._stopped(pid):
            return
        time.sleep(0.005)
    raise Refused('probe process %d did not stop' % pid)


def check(backend, fd, pids):
    """Raises Refused unless CMDLINE of each of @pids equals the first
    TASK_DIAG_CMDLINE_MAX bytes of its /proc/PID/cmdline, read the direct
    way (td_config.cmdline_slow does not move; it counts every reader's
    reads, so a try during which another reader's moved it is tried
    again)."""
    for _ in range(CHECK_TRIES):
        slow = tdconfig.read(fd)['cmdline_slow']
        for pid in pids:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                want = f.read()[:wire.TASK_DIAG_CMDLINE_MAX]
            tasks = wire.decode(backend.raw(wire.DUMP_ONE, pid,
                                            wire.SHOW_BASE | wire.SHOW_CMDLINE))
            if len(tasks) != 1 or tasks[0].cmdline != want:
                raise Refused('pid %d: CMDLINE %r..., /proc %r...'
                              % (pid, tasks[0].cmdline[:40] if tasks else None, want[:40]))
        if tdconfig.read(fd)['cmdline_slow'] == slow:
            return
    raise Refused('the probe processes\' pages were not read the direct way')


def _start_probes():
    """The probe processes, stopped; killed with us (PR_SET_PDEATHSIG)."""
    procs = []
    try:
        for argv in PROBES:
            procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                          preexec_fn=_die_with_parent))
        for p in procs:
            _wait_stopped(p.pid)
    except BaseException:
        _stop_probes(procs)
        raise
    return procs


def _die_with_parent():
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _stop_probes(procs):
    for p in procs:
        p.kill()
        p.wait()


def enable(pin_dir=PIN_DIR):
    """Sets td_config.cmdline_direct after every check; raises Refused (it
    is then 0, and the bases are dropped unless the VMA page walk uses
    them).  During the check the direct read serves this process alone
    (cmdline_checker): bases not yet checked serve no other reader."""
    fd = tdconfig.open_pinned(pin_dir)
    try:
        reason = why_not()
        if reason:
            raise Refused(reason)
        backend = BpfBackend(pin_dir)
        procs = []
        try:
            pagewalk.calibrate(backend)
            tdconfig.update(fd, cmdline_direct=CHECKING, cmdline_checker=os.getpid())
            procs = _start_probes()
            check(backend, fd, [p.pid for p in procs] + [os.getpid()])
            tdconfig.update(fd, cmdline_direct=1, cmdline_checker=0)
        except BaseException as e:
            cfg = tdconfig.read(fd)
            tdconfig.update(fd, cmdline_direct=0, cmdline_checker=0,
                            **({} if cfg['vma_stat'] == VMA_STAT_PAGEWALK else
                               {'pw_page_offset': 0, 'pw_vmemmap': 0}))
            if isinstance(e, pagewalk.Refused):
                raise Refused(str(e)) from None
            raise
        finally:
            _stop_probes(procs)
            backend.close()
    finally:
        os.close(fd)
