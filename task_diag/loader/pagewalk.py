"""task-diag-load --vma-stat=pagewalk: VMA_STAT from the programs' own
page-table walk (task_diag/bpf/td_pagewalk.h) instead of /proc/PID/smaps.

The walk copies smaps' rules (6.18, CONFIG_PAGE_MAPCOUNT) and reads kernel
memory at addresses it derives; where either is wrong it would report
plausible numbers, not errors.  So it is enabled only when:
  - the machine is x86-64 and the object has the VMA code (6.7+);
  - the kernel's config is readable and has the mapcount model the walk
    copies (not CONFIG_NO_PAGE_MAPCOUNT; no CONFIG_DEVICE_PRIVATE, whose
    swap entries it does not follow); MAX_SWAPFILES comes from it;
  - a calibration pass finds the address-space bases;
  - on processes built here (anonymous memory touched in part, a private
    file mapping with copy-on-write pages, a shared file mapping written
    in part, anonymous memory shared with a forked child, copy-on-write
    anonymous memory after that fork, a THP where THP is enabled, plus
    every library mapping they have), every field of every VMA equals the
    same VMA of /proc/PID/smaps, read before and after.
Otherwise the source stays smaps and the refusal says why, in one line.
"""
import ctypes
import gzip
import mmap
import os
import platform
import signal
import sys
import tempfile
import time

from .. import wire
from ..iterproto import (TIER_NOVMA, PIN_DIR, PROBE_CALIBRATE, TD_REQUEST, VMA_STAT_PAGEWALK,
                         VMA_STAT_SMAPS)
from .. import tdconfig
from ..bpf_backend import BpfBackend
from ..procfs.maps import read_vmas

PSS_KB_SHIFT = 12 + 10          # smaps prints pss >> (PSS_SHIFT + 10)
CHECK_TRIES = 3                 # a library's mapcount can change under a check
MADV_HUGEPAGE = 14
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


class Refused(Exception):
    """The walk cannot be trusted here; the message says why, in one line."""


# --- the kernel's configuration ------------------------------------------

def kernel_config():
    """{CONFIG_NAME: value} of the running kernel, from /proc/config.gz or
    /boot/config-RELEASE; None when neither is readable."""
    paths = ('/proc/config.gz', '/boot/config-' + os.uname().release)
    for path in paths:
        try:
            opener = gzip.open if path.endswith('.gz') else open
            with opener(path, 'rt') as f:
                text = f.read()
        except OSError:
            continue
        config = {}
        for line in text.splitlines():
            if line.startswith('CONFIG_'):
                name, _, value = line.partition('=')
                config[name] = value
        return config
    return None


def swap_constants(config):
    """(MAX_SWAPFILES, SWP_HWPOISON_NUM) as include/linux/swapops.h and
    swap.h compute them: 32 swap types less the ones that entries for
    migration, hwpoison, device memory and PTE markers take."""
    migration = 3 if config.get('CONFIG_MIGRATION') == 'y' else 0
    hwpoison = 1 if config.get('CONFIG_MEMORY_FAILURE') == 'y' else 0
    device = 3 if config.get('CONFIG_DEVICE_PRIVATE') == 'y' else 0
    marker = 1          # SWP_PTE_MARKER_NUM: unconditional since 6.5
    return 32 - migration - hwpoison - device - marker, hwpoison


def why_not(features):
    """None when the walk may be tried on this machine, else the reason."""
    if platform.machine() != 'x86_64':
        return 'the page walk knows only x86-64 page tables (this is %s)' % platform.machine()
    if not features.get('open_coded_vma_iter'):
        return 'this kernel lacks the open-coded VMA iterator (6.7) that VMA records need'
    config = kernel_config()
    if config is None:
        return 'the kernel config is not readable (/proc/config.gz, /boot/config-*)'
    if config.get('CONFIG_NO_PAGE_MAPCOUNT') == 'y':
        return 'CONFIG_NO_PAGE_MAPCOUNT: smaps estimates sharing in a way the walk does not copy'
    if config.get('CONFIG_DEVICE_PRIVATE') == 'y':
        return 'CONFIG_DEVICE_PRIVATE: the walk does not follow device-private entries'
    if config.get('CONFIG_MIGRATION') != 'y':
        return 'no CONFIG_MIGRATION: the walk assumes its swap entry types'
    if config.get('CONFIG_VMAP_STACK') != 'y':
        return 'no CONFIG_VMAP_STACK: the calibration needs a vmalloc\'ed kernel stack'
    return None


# --- the self-check's processes --------------------------------------------

def _touch(m, start, end, write, step=mmap.PAGESIZE):
    for off in range(start, end, step):
        if write:
            m[off] = 1
        else:
            m[off]


def _probe_main(path, ready_w):
    """The probe process (python -m task_diag.loader.pagewalk PATH FD): the
    mappings the check covers, a child that shares them, both stopped.  A
    fresh process, not a fork of the loader: pages copy-on-write shared
    with a process that runs on would change their mapcounts under the
    check.  Never returns."""
    try:
        page = mmap.PAGESIZE
        anon = mmap.mmap(-1, 64 * page, mmap.MAP_PRIVATE)     # (-1 alone: MAP_SHARED)
        _touch(anon, 0, 40 * page, True)                # touched in part
        with open(path, 'r+b') as f:
            private = mmap.mmap(f.fileno(), 64 * page, mmap.MAP_PRIVATE)
            shared = mmap.mmap(f.fileno(), 64 * page, mmap.MAP_SHARED)
        _touch(private, 0, 32 * page, False)
        _touch(private, 8 * page, 16 * page, True)      # copy-on-write pages
        _touch(shared, 16 * page, 48 * page, False)
        _touch(shared, 24 * page, 28 * page, True)      # dirty file pages
        shm = mmap.mmap(-1, 32 * page, mmap.MAP_SHARED)
        _touch(shm, 0, 32 * page, True)
        cow = mmap.mmap(-1, 32 * page, mmap.MAP_PRIVATE)
        _touch(cow, 0, 32 * page, True)
        thp = None
        if _thp_enabled():
            size = 4 << 20                              # holds one aligned 2 MiB
            thp = mmap.mmap(-1, size, mmap.MAP_PRIVATE)
            thp.madvise(MADV_HUGEPAGE)
            _touch(thp, 0, size, True)
        pid = os.fork()
        if pid == 0:
            _die_with_parent()
            _touch(cow, 0, 8 * page, True)              # breaks copy-on-write
            _touch(shm, 0, 4 * page, True)
            os.kill(os.getpid(), signal.SIGSTOP)
            os._exit(0)
        os.write(ready_w, b'%d\n' % pid)
        os.kill(os.getpid(), signal.SIGSTOP)
    finally:
        os._exit(0)


def _die_with_parent():
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _thp_enabled():
    try:
        with open('/sys/kernel/mm/transparent_hugepage/enabled') as f:
            return '[never]' not in f.read()
    except OSError:
        return False


def _stopped(pid):
    """Whether @pid is stopped (state T; loader/cmdline.py's probes too)."""
    with open('/proc/%d/stat' % pid, 'rb') as f:
        return f.read().rpartition(b')')[2].split()[0] == b'T'


class ProbeProcesses:
    """Two stopped processes with the mappings the check covers; killed and
    reaped, and their file removed, on exit."""

    def __init__(self):
        self.pids = []
        self.path = None
        self.was_subreaper = None

    def __enter__(self):
        try:
            return self._start()
        except BaseException:
            self.__exit__()             # what was started before it failed
            raise

    def _start(self):
        libc = ctypes.CDLL(None, use_errno=True)
        self.was_subreaper = ctypes.c_int(0)
        libc.prctl(37, ctypes.byref(self.was_subreaper), 0, 0, 0)      # PR_GET_CHILD_SUBREAPER
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)    # to reap the grandchild
        fd, self.path = tempfile.mkstemp(prefix='task-diag-pagewalk.')
        with os.fdopen(fd, 'wb') as f:
            f.write(os.urandom(64 * mmap.PAGESIZE))
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                os.set_inheritable(w, True)
                _die_with_parent()      # kept over exec: no probe outlives us
                # -I: root must not import modules from whatever the
                # current directory or PYTHONPATH hold
                os.execv(sys.executable, [sys.executable, '-I', '-m', __name__, self.path,
                                          str(w)])
            finally:
                os._exit(127)
        self.pids.append(pid)
        os.close(w)
        with os.fdopen(r, 'rb') as f:
            line = f.readline()
        if not line:
            raise Refused('the probe process died before it was ready')
        self.pids.append(int(line))
        deadline = time.monotonic() + 10
        while not all(_stopped(p) for p in self.pids):
            if time.monotonic() > deadline:
                raise Refused('the probe processes did not stop')
            time.sleep(0.005)
        return self.pids

    def __exit__(self, *exc):
        for pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in self.pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        if self.was_subreaper is not None and not self.was_subreaper.value:
            ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        if self.path:
            os.unlink(self.path)
            self.path = None


# --- calibration and the check ---------------------------------------------

# td_pw_calibrate()'s failures, by the step it returns
CALIBRATION_STEPS = {
    0: 'the calibration pass did not run on our own task',
    1: 'no td_config map',
    2: 'our task has no page tables',
    3: 'no direct-map base explains our page tables, task_struct and kernel stack',
    4: 'kernel stacks are not vmalloc\'ed (no CONFIG_VMAP_STACK)',
    5: 'the kernel stack\'s page array is missing or unreadable',
    6: 'more than one direct-map base explains our page tables, task_struct and stack',
    7: 'struct page is not 64 bytes',
}


def calibrate(backend):
    """Runs the TD_PROBE_CALIBRATE pass over our own task; raises Refused."""
    got = backend.probe(PROBE_CALIBRATE, 0, tid=os.getpid())
    result = ctypes.c_int32(got[TD_REQUEST.names.index('found')]).value if got else 0
    if result != 1:
        raise Refused('calibration failed (step %d): %s'
                      % (-result, CALIBRATION_STEPS.get(-result, 'unknown step')))


def _smaps_stats(pid):
    return {(v.start, v.end): v.stat for v in read_vmas('/proc/%d' % pid, with_stat=True)}


def _walk_stats(backend, pid):
    data = backend.raw(wire.DUMP_ONE, pid, wire.SHOW_BASE | wire.SHOW_VMA | wire.SHOW_VMA_STAT,
                       vma_stat=VMA_STAT_PAGEWALK)
    tasks = list(wire.decode(data, wire.SHOW_BASE | wire.SHOW_VMA | wire.SHOW_VMA_STAT))
    if len(tasks) != 1 or tasks[0].vmas is None:
        raise Refused('the probe process %d was not answered' % pid)
    return {(v.start, v.end): v.stat for v in tasks[0].vmas}


def differences(walk, smaps):
    """The fields where @walk (by VMA) differs from @smaps, as text."""
    out = []
    if set(walk) != set(smaps):
        out.append('VMAs %s' % sorted(set(walk) ^ set(smaps))[:3])
    for key in sorted(set(walk) & set(smaps)):
        w, s = walk[key], smaps[key]
        if w is None:
            out.append('%x-%x: no statistics' % key)
            continue
        for name in wire.VmaStat._fields:
            a, b = getattr(w, name), getattr(s, name)
            if name == 'pss':
                a, b = a >> PSS_KB_SHIFT, b >> PSS_KB_SHIFT
            if a != b:
                out.append('%x-%x %s %d != smaps %d' % (key[0], key[1], name, a, b))
    return out


def self_check(backend):
    """Compares the walk with smaps on the probe processes; raises Refused
    with the first difference when no try agrees completely."""
    with ProbeProcesses() as pids:
        diff, disagreed = [], 0
        # A try during which smaps moved (the Pss of shared pages follows
        # other processes' mappings: busy machines, test suites) proves
        # nothing either way: it is tried again, up to a bound.
        for _ in range(CHECK_TRIES * 10):
            diff, moved = [], False
            for pid in pids:
                before = _smaps_stats(pid)
                walk = _walk_stats(backend, pid)
                after = _smaps_stats(pid)
                if before != after:
                    diff, moved = ['smaps of %d changed while it was stopped' % pid], True
                    break
                diff += ['pid %d: %s' % (pid, d) for d in differences(walk, before)]
            if not diff:
                return len(pids)
            if moved:
                time.sleep(0.05)
                continue
            disagreed += 1
            if disagreed >= CHECK_TRIES:
                break
        raise Refused('the page walk disagrees with smaps (%d differences; first: %s)'
                      % (len(diff), diff[0]))


def enable(features, pin_dir=PIN_DIR):
    """Sets VMA_STAT's source to pagewalk after every check; raises Refused
    (the source is then smaps)."""
    reason = why_not(features)
    if reason:
        raise Refused(reason)
    max_swapfiles, hwpoison = swap_constants(kernel_config())
    fd = tdconfig.open_pinned(pin_dir)
    try:
        cfg = tdconfig.read(fd)
        if cfg['tier'] == TIER_NOVMA:
            raise Refused('the tier loaded (novma) has no VMA code to walk from')
        if cfg['vma_stat'] == VMA_STAT_PAGEWALK and cfg['pw_page_offset']:
            # Checked again while on: the bases stay as they are (they are
            # fixed at boot, and calibration finds them again), so that a
            # dump that chose the walk meanwhile still gets its statistics.
            tdconfig.update(fd, pw_bad=0, pw_max_swapfiles=max_swapfiles,
                          pw_hwpoison_num=hwpoison)
        else:
            # the bases stay: CMDLINE's direct read may use them (cmdline.py)
            tdconfig.update(fd, vma_stat=VMA_STAT_SMAPS, pw_bad=0,
                          pw_max_swapfiles=max_swapfiles, pw_hwpoison_num=hwpoison)
        backend = BpfBackend(pin_dir)
        try:
            calibrate(backend)
            self_check(backend)
            if tdconfig.read(fd)['pw_bad']:
                raise Refused('the walk met pages outside their mapping during the check')
        except BaseException:
            # bases that may be wrong serve nobody, CMDLINE's direct read
            # neither (it goes the slow way until the next load checks it;
            # --status says so)
            tdconfig.update(fd, vma_stat=VMA_STAT_SMAPS, pw_page_offset=0, pw_vmemmap=0,
                            cmdline_direct=0)
            raise
        finally:
            backend.close()
        tdconfig.update(fd, vma_stat=VMA_STAT_PAGEWALK)
    finally:
        os.close(fd)


def disable(pin_dir=PIN_DIR):
    fd = tdconfig.open_pinned(pin_dir)
    try:
        tdconfig.update(fd, vma_stat=VMA_STAT_SMAPS)
    finally:
        os.close(fd)


if __name__ == '__main__':
    _probe_main(sys.argv[1], int(sys.argv[2]))
