"""Readers confined by an LSM: a reader of /run/task-diag must get no
more than its /proc gives it, and the programs' ptrace test has no LSM
hook.

AppArmor, SELinux and Smack decide a PTRACE_MODE_READ (what
/proc/PID/maps asks) by a policy the programs cannot evaluate: a reader
they confine gets no VMA (confinement()).  Confined means: an AppArmor
label other than unconfined (or a profile in complain or unconfined mode),
any process while SELinux enforces, any process under Smack.  Yama
restricts attaching only, and TOMOYO has no ptrace hook: neither refuses
maps.

Landlock is measured instead.  Whether Landlock's ptrace hook refuses a process in a domain the
mappings of a task outside it (/proc/PID/maps: PTRACE_MODE_READ) is
measured at load time, by a confined helper reading another's maps: on
this project's 6.18 it does not (only attaching, /proc/PID/mem, is
refused), and then there is nothing to refuse.  Where it does, readers in
a domain get no VMA, and for that the programs must tell them: where
Landlock keeps a task's domain in its cred->security blob.

The blob's layout is decided at boot (each LSM's share, in the order of
/sys/kernel/security/lsm) and is in no BTF, so it is measured: one helper
process restricts itself with an (almost empty) Landlock ruleset, another
does not, and the TD_PROBE_LSM pass copies the first LSM_PEEK bytes of each
one's blob.  The domain is where the unconfined helper has 0 and the
confined one a kernel pointer; exactly one such place, or it is not known.
"""
import ctypes
import os
import re
import subprocess
import sys

from .iterproto import LSM_PEEK, PROBE_LSM, TD_REQUEST

SYS_landlock_create_ruleset = 444
LANDLOCK_CREATE_RULESET_VERSION = 1
KERNEL_POINTER = 0xffff800000000000

# A helper: restricts itself (argv[1] == 'confined'), tries the maps of
# process argv[2], says "ready read" or "ready refused", waits.
HELPER = r'''
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if sys.argv[1] == 'confined':
    attr = (ctypes.c_uint64 * 3)(1 << 10, 0, 0)      # handled: LANDLOCK_ACCESS_FS_MAKE_SOCK
    fd = libc.syscall(444, attr, 8, 0)               # landlock_create_ruleset
    if fd < 0 or libc.prctl(38, 1, 0, 0, 0) or libc.syscall(446, fd, 0):   # NO_NEW_PRIVS
        print('failed %d' % ctypes.get_errno(), flush=True)
        sys.exit(1)
try:
    open('/proc/%s/maps' % sys.argv[2], 'rb').read()
    print('ready read', flush=True)
except OSError:
    print('ready refused', flush=True)
sys.stdin.read()
'''


def landlock_abi():
    """Landlock's ABI version, 0 where the kernel has it off or lacks it."""
    libc = ctypes.CDLL(None, use_errno=True)
    v = libc.syscall(SYS_landlock_create_ruleset, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    return max(v, 0)


def _blob(backend, pid):
    got = backend.probe(PROBE_LSM, 0, tid=pid)
    return got[TD_REQUEST.names.index('viewer')][:LSM_PEEK] if got else b''


LANDLOCK_READS = -1     # landlock_offset(): a domain may read others' maps

# How a viewer is confined (the byte after its root in viewer_of()'s blob).
FREE, LANDLOCK, APPARMOR, SELINUX, SMACK = range(5)
NAMES = {LANDLOCK: 'Landlock', APPARMOR: 'AppArmor', SELINUX: 'SELinux', SMACK: 'Smack'}
_FREE_MODES = {b'complain', b'unconfined'}


def _apparmor_free(label):
    """Whether AppArmor label @label refuses nothing: "unconfined", or
    every mode in it complain or unconfined ("a (enforce)", "a//&b
    (complain)", "a (enforce)//&b (complain)" for a stack of mixed modes)."""
    modes = re.findall(rb'\((\w+)\)', label)
    return label == b'unconfined' or bool(modes) and all(m in _FREE_MODES for m in modes)


def active_lsms():
    """The LSMs the kernel runs, in order; where securityfs is not mounted,
    those of ours that show elsewhere that they run."""
    try:
        with open('/sys/kernel/security/lsm') as f:
            return f.read().strip().split(',')
    except OSError:
        pass
    found = []
    try:
        with open('/sys/module/apparmor/parameters/enabled') as f:
            if f.read().strip() == 'Y':
                found.append('apparmor')
    except OSError:
        pass
    if os.path.exists('/sys/fs/selinux/enforce'):
        found.append('selinux')
    return found


def _attr(pid, name):
    try:
        with open('/proc/%d/attr/%s' % (pid, name), 'rb') as f:
            return f.read().rstrip(b'\n\0')
    except OSError:
        return None


def _selinux_enforcing():
    try:
        with open('/sys/fs/selinux/enforce') as f:
            return f.read().strip() != '0'
    except OSError:
        return True         # SELinux runs and we cannot tell: as if it enforced


def reads_labels(lsms):
    """Whether confinement() reads a process's /proc/PID/attr with @lsms."""
    return 'apparmor' in lsms


def confinement(pid, lsms=None):
    """APPARMOR, SELINUX or SMACK where that LSM runs and may refuse
    process @pid the maps of others by its policy; FREE otherwise."""
    for name in active_lsms() if lsms is None else lsms:
        if name == 'apparmor':
            label = _attr(pid, 'apparmor/current')
            if label is None:
                label = _attr(pid, 'current')      # kernels before 5.8
            if label is None or not _apparmor_free(label):
                return APPARMOR
        elif name == 'selinux' and _selinux_enforcing():
            return SELINUX
        elif name == 'smack':
            return SMACK
    return FREE


def landlock_offset(backend):
    """td_config.landlock_off: the domain pointer's offset in the blob + 1
    where Landlock refuses a confined reader the maps of others;
    LANDLOCK_READS where it does not (nothing to refuse); 0 when Landlock
    is off or the place is not found (then --status says so)."""
    if not landlock_abi():
        return 0
    helpers = []
    try:
        for kind in ('free', 'confined'):
            p = subprocess.Popen([sys.executable, '-I', '-c', HELPER, kind,
                                  str(helpers[0].pid if helpers else os.getpid())], cwd='/',
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            helpers.append(p)
            said = p.stdout.readline()
            if not said.startswith(b'ready'):
                return 0
        if said == b'ready read\n':
            return LANDLOCK_READS
        free, confined = (_blob(backend, p.pid) for p in helpers)
    finally:
        for p in helpers:
            p.kill()
            p.wait()
    if len(free) < LSM_PEEK or len(confined) < LSM_PEEK:
        return 0
    places = [off for off in range(0, LSM_PEEK, 8)
              if int.from_bytes(free[off:off + 8], 'little') == 0
              and int.from_bytes(confined[off:off + 8], 'little') >= KERNEL_POINTER]
    return places[0] + 1 if len(places) == 1 else 0
