"""task-diag-load: load the task_diag BPF programs, pin them, start the
transactional file /run/task-diag.

    sudo task-diag-load            load, pin, start the front (again: nothing changes)
    sudo task-diag-load --unload   stop the front, remove every pin
    task-diag-load --status        what is loaded, from where, on which kernel
    sudo task-diag-load --tier T   load tier T (dpath, walk, novma) or fail

Which object is loaded is decided on the running kernel, never on the one
the objects were built on (TIERS): the richest tier whose prerequisites the
kernel's BTF shows is tried first, and a tier the verifier refuses is left
for the next one; the refusal's last verifier lines go to VERIFIER_LOG.

Pins, under /sys/fs/bpf/task_diag/: all and all_threads (iterator links,
0444, safe for anyone to read: the program applies the reader's
credentials and namespaces), prog_task, requests and config (0600).
The front is a FUSE daemon (task_diag.front.daemon) mounted on
/run/task-diag; its pid is in /run/task-diag.pid, its log in
/run/task-diag.log.
"""
import argparse
import ctypes
import errno
import hashlib
import os
import stat
import sys
import time

from .. import bpf, libbpf, lsm, tdconfig
from ..bpf_backend import BpfBackend
from ..front import service
from ..front.client import MOUNTPOINT, fuse_mounted, mount_type
from ..iterproto import (CONFIG, OPTIONAL_PINS, PIN_ALL, PIN_ALL_THREADS, PIN_CONFIG, PIN_DIR,
                         PIN_PROG, PIN_PROG_CGROUP, PIN_REQUESTS, PINS, TIER_DPATH, TIER_NOVMA,
                         TIER_WALK, VMA_STAT_PAGEWALK, VMA_STAT_SOURCES)
from ..procfs.maps import read_vmas
from . import cmdline as cmdline_direct, pagewalk, statm

BPFFS = '/sys/fs/bpf'
BPF_FS_MAGIC = 0xCAFE4A11
VMLINUX_BTF = '/sys/kernel/btf/vmlinux'
BTF_KIND_STRUCT, BTF_KIND_ENUM, BTF_KIND_FUNC = 4, 6, 12

# What each feature needs in the kernel's BTF, and what it buys.
FEATURES = (
    ('task_iter', 'bpf_iter_task', BTF_KIND_FUNC, 'iter/task (5.8)'),
    ('task_iter_filter', 'bpf_iter_task_type', BTF_KIND_ENUM,
     'per-link tid/pid filter of iter/task (6.1)'),
    ('task_vma_iter', 'bpf_iter_task_vma', BTF_KIND_FUNC, 'iter/task_vma (5.12)'),
    ('open_coded_vma_iter', 'bpf_iter_task_vma_new', BTF_KIND_FUNC,
     'open-coded bpf_iter_task_vma (6.7)'),
    ('task_from_pid', 'bpf_task_from_pid', BTF_KIND_FUNC, 'bpf_task_from_pid kfunc (6.2)'),
    ('trusted_vm_file', 'vm_area_struct__safe_trusted_or_null', BTF_KIND_STRUCT,
     'verifier trusts vm_area_struct.vm_file (late 2025)'),
    ('sleepable_cmdline', 'bpf_rcu_read_lock', BTF_KIND_FUNC,
     'bpf_rcu_read_lock kfunc for sleepable iterators, which read CMDLINE (6.2)'),
    ('css_task_iter', 'bpf_iter_css_task_new', BTF_KIND_FUNC,
     'open-coded css_task iterator: the cgroup filter walks only the subtree (6.7)'),
)


class Refusal(Exception):
    """A prerequisite is missing: one line that says which."""


class Tier:
    """One built object: @needs are FEATURES the kernel's BTF must show
    for it to be tried; @costs says what a kernel loses without it."""

    def __init__(self, name, number, obj, needs, costs):
        self.name, self.number, self.obj, self.needs, self.costs = name, number, obj, needs, costs

    def path(self, sleepable=False):
        """The object; @sleepable: its .s twin, which reads CMDLINE itself
        (task_diag/bpf/td_cmdline.h)."""
        obj = self.obj.replace('.bpf.o', '.s.bpf.o') if sleepable else self.obj
        return os.path.join(os.path.dirname(bpf.__file__), obj)

    def objects(self, features):
        """[(path, sleepable)] to try, in order: the sleepable twin first
        where the kernel's BTF shows what it needs and it was built."""
        out = [(self.path(), False)]
        if features.get('sleepable_cmdline') and os.path.exists(self.path(True)):
            out.insert(0, (self.path(True), True))
        return out

    def missing(self, features):
        """The first of our needs the kernel lacks, or None."""
        return next((n for n in self.needs if not features.get(n)), None)


# Richest first (task_diag/bpf/Makefile builds each object).
TIERS = (
    Tier('dpath', TIER_DPATH, 'task_diag.bpf.o', ('open_coded_vma_iter', 'trusted_vm_file'),
         'VMA names: dentry walk, not bpf_d_path (a name the walk cannot resolve exactly '
         'sends its task to /proc/PID/maps)'),
    Tier('walk', TIER_WALK, 'task_diag.walk.bpf.o', ('open_coded_vma_iter',),
         'VMA, VMA_STAT: from /proc/PID/maps and smaps, read by the driver; no page walk'),
    Tier('novma', TIER_NOVMA, 'task_diag.novma.bpf.o', ('task_iter',), ''),
)
TIER_BY_NAME = {t.name: t for t in TIERS}
TIER_BY_NUMBER = {t.number: t for t in TIERS}
VERIFIER_LOG = '/run/task-diag-verifier.log'


class Rejected(OSError):
    """The kernel refused to load an object (the verifier, most often)."""


def object_path(features=None):
    """The object of the richest tier the kernel's BTF allows: the first
    one task-diag-load tries."""
    if features is None:
        features = kernel_features()
    tier = next((t for t in TIERS if not t.missing(features)), TIERS[-1])
    return tier.objects(features)[0][0]


def kernel_features():
    """{feature: bool}, read from the kernel's BTF (empty without BTF)."""
    if not os.path.exists(VMLINUX_BTF):
        return {}
    L = libbpf.lib()
    btf = L.btf__load_vmlinux_btf()
    if not btf:
        return {}
    try:
        return {name: L.btf__find_by_name_kind(btf, sym.encode(), kind) > 0
                for name, sym, kind, _ in FEATURES}
    finally:
        L.btf__free(btf)


def ensure_bpffs():
    if mount_type(BPFFS) == 'bpf':
        return
    libc = ctypes.CDLL(None, use_errno=True)
    # 0700, as systemd mounts it: the pinned maps and programs are root's
    if libc.mount(b'bpf', BPFFS.encode(), b'bpf', 0, b'mode=0700') != 0:
        err = ctypes.get_errno()
        raise Refusal('bpffs is not mounted on %s and cannot be (%s); run: mount -t bpf bpf %s'
                      % (BPFFS, os.strerror(err), BPFFS))


def check_prerequisites():
    if os.geteuid() != 0:
        raise Refusal('must run as root: loading BPF programs needs CAP_SYS_ADMIN (try sudo)')
    if not os.path.exists(VMLINUX_BTF):
        raise Refusal('the kernel has no BTF (%s missing; needs CONFIG_DEBUG_INFO_BTF=y)'
                      % VMLINUX_BTF)
    try:
        libbpf.lib()
    except OSError as e:
        raise Refusal(str(e))
    features = kernel_features()
    if not features.get('task_iter'):
        raise Refusal('kernel %s is too old for BPF task iterators (need 5.8 or later)'
                      % os.uname().release)
    ensure_bpffs()
    return features


def tiers_to_try(features, forced=None):
    """[(tier, None or why it is skipped)], richest first; only @forced
    (a tier name) when given, whatever the kernel shows."""
    out = []
    for t in TIERS:
        if forced and t.name != forced:
            continue
        lack = None if forced else t.missing(features)
        why = None
        if lack:
            why = 'not on this kernel: %s' % dict((f[0], f[3]) for f in FEATURES)[lack]
        elif not os.path.exists(t.path()):
            why = '%s is missing: build it with make -C task_diag/bpf (needs clang)' % t.path()
        out.append((t, why))
    return out


def pinned(pin_dir=PIN_DIR):
    return [name for name in PINS + OPTIONAL_PINS if os.path.exists(os.path.join(pin_dir, name))]


def expected_pins(cfg):
    """What a whole load with the td_config @cfg pins."""
    return PINS + ((PIN_PROG_CGROUP,) if cfg and cfg['cgroup_walk'] else ())


def _pin_dir_exists(pin_dir):
    """Whether @pin_dir is there, as a directory of its own: a link (or
    anything but a directory) is not followed, whatever it points to."""
    try:
        st = os.lstat(pin_dir)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        raise Refusal('%s is not a directory (a link, or a file): not touched; remove it '
                      'by hand if it is not yours' % pin_dir)
    if st.st_uid != 0 or st.st_mode & 0o022:
        raise Refusal('%s is not root\'s alone (owner %d, mode %04o): not used; remove it by '
                      'hand if it is not yours' % (pin_dir, st.st_uid, st.st_mode & 0o7777))
    return True


def unload(pin_dir=PIN_DIR):
    """Removes every pin and the directory; returns what was removed.
    Only the entries the loader makes (PINS, OPTIONAL_PINS) are removed:
    anything else there is left, and the directory with it."""
    removed = []
    if _pin_dir_exists(pin_dir):
        for name in PINS + OPTIONAL_PINS:
            try:
                os.unlink(os.path.join(pin_dir, name))
                removed.append(name)
            except FileNotFoundError:
                pass
        try:
            os.rmdir(pin_dir)
        except OSError as e:
            if e.errno != errno.ENOTEMPTY:
                raise
            raise Refusal('%s holds entries task-diag-load did not make (%s): left there'
                          % (pin_dir, ', '.join(sorted(os.listdir(pin_dir)))))
    return removed


def _sysctl_id(name):
    try:
        with open('/proc/sys/kernel/' + name) as f:
            return int(f.read())
    except OSError:
        return 65534


def _gate_area():
    """(start, end, vm_flags) of [vsyscall] as our own maps shows it, or
    zeros: the same for every 64-bit process of this boot."""
    try:
        for v in read_vmas('/proc/self'):
            if v.name in (b'[vsyscall]', '[vsyscall]'):
                return v.start, v.end, v.vm_flags
    except OSError:
        pass
    return 0, 0, 0


LOG_BUF = 4 << 20      # the verifier's log of a refused program: its tail
                        # (the kernel keeps the tail of a log that overflows, 6.4 on)


def load(obj_path, pin_dir=PIN_DIR, tier=TIER_DPATH, forced=False, cmdline=False,
         cgroup_walk=False):
    """Loads @obj_path and pins it under @pin_dir; td_cgroup, the walk of a
    cgroup subtree (td_css.h), only with @cgroup_walk (its kfuncs are 6.7's).
    On any error every pin made so far is removed and the object closed;
    Rejected when the kernel refused the object (its .log: the verifier's
    last lines)."""
    L = libbpf.lib()
    with open(obj_path, 'rb') as f:
        digest = hashlib.sha256(f.read()).digest()
    obj = None
    if not _pin_dir_exists(pin_dir):
        os.makedirs(pin_dir, mode=0o755)
    try:
        with libbpf.quiet_libbpf() as log:
            obj = L.bpf_object__open_file(os.fsencode(obj_path), None)
            if not obj:
                raise OSError(ctypes.get_errno(), 'cannot open %s' % obj_path)
            # our own log buffers: libbpf fills them only when a load fails
            bufs = {}
            for name in (b'td_all', b'td_all_threads', b'td_cgroup'):
                prog = L.bpf_object__find_program_by_name(obj, name)
                if not prog:
                    continue        # td_cgroup: an object built before it
                if name == b'td_cgroup' and not cgroup_walk:
                    L.bpf_program__set_autoload(prog, False)
                    continue
                bufs[name] = ctypes.create_string_buffer(LOG_BUF)
                L.bpf_program__set_log_buf(prog, bufs[name], LOG_BUF)
            ret = L.bpf_object__load(obj)
            if ret < 0:
                verifier = next((b.value for b in bufs.values() if b.value), b'')
                lines = verifier.decode(errors='replace').rstrip().split('\n')
                e = Rejected(-ret, 'the kernel refused %s (%s)' % (os.path.basename(obj_path),
                                                                 os.strerror(-ret)))
                e.log = '\n'.join(log.lines[-10:] + lines[-40:])
                raise e
        for prog_name, pin in (('td_all', PIN_ALL), ('td_all_threads', PIN_ALL_THREADS)):
            prog = L.bpf_object__find_program_by_name(obj, prog_name.encode())
            link = L.bpf_program__attach_iter(prog, None)
            if not link:
                err = ctypes.get_errno()
                raise OSError(err, 'attaching %s: %s' % (prog_name, os.strerror(err)))
            try:
                libbpf._check(L.bpf_link__pin(link, os.path.join(pin_dir, pin).encode()),
                              'pinning ' + pin)
            finally:
                L.bpf_link__destroy(link)      # the pin keeps the link
            os.chmod(os.path.join(pin_dir, pin), 0o444)
        prog = L.bpf_object__find_program_by_name(obj, b'td_all')
        libbpf._check(L.bpf_program__pin(prog, os.path.join(pin_dir, PIN_PROG).encode()),
                      'pinning ' + PIN_PROG)
        prog = L.bpf_object__find_program_by_name(obj, b'td_cgroup')
        if cgroup_walk and prog:
            libbpf._check(L.bpf_program__pin(prog, os.path.join(pin_dir, PIN_PROG_CGROUP)
                                             .encode()), 'pinning ' + PIN_PROG_CGROUP)
        for map_name, pin in (('td_requests', PIN_REQUESTS), ('td_config', PIN_CONFIG)):
            m = L.bpf_object__find_map_by_name(obj, map_name.encode())
            libbpf._check(L.bpf_map__pin(m, os.path.join(pin_dir, pin).encode()),
                          'pinning ' + pin)
        cfg = L.bpf_object__find_map_by_name(obj, b'td_config')
        if L.bpf_map__value_size(cfg) != CONFIG.size:
            # an object built before td_iter.h changed: its config would
            # drop the fields it does not have
            raise OSError(errno.EINVAL, '%s has a td_config of %d bytes, not %d: rebuild it '
                          '(make -C task_diag/bpf)' % (obj_path, L.bpf_map__value_size(cfg),
                                                       CONFIG.size))
        fields = dict.fromkeys(CONFIG.names, 0)     # VMA_STAT from smaps, walk not calibrated
        fields.update(zip(('overflowuid', 'overflowgid', 'loaded_at', 'obj_sha256'),
                          (_sysctl_id('overflowuid'), _sysctl_id('overflowgid'),
                           int(time.time()), digest)))
        fields.update(zip(('gate_start', 'gate_end', 'gate_flags'), _gate_area()))
        fields['tier'] = tier
        fields['tier_forced'] = int(forced)
        fields['cmdline'] = int(cmdline)
        fields['cgroup_walk'] = int(bool(cgroup_walk and prog))
        tdconfig.write(L.bpf_map__fd(cfg), fields)
    except BaseException:
        unload(pin_dir)
        raise
    finally:
        if obj:
            L.bpf_object__close(obj)
    return digest


def load_tier(features, pin_dir=PIN_DIR, forced=None, out=None):
    """Loads the richest tier that the kernel verifies (only @forced, when
    given) and pins it; returns the Tier.  A refused richer tier is never
    fatal while a poorer one loads: its verifier lines go to VERIFIER_LOG."""
    out = out or sys.stdout
    refused = []
    for tier, why in tiers_to_try(features, forced):
        if why:
            if forced:
                raise Refusal('tier %s: %s' % (tier.name, why))
            continue
        # each object with td_cgroup where the kernel has its kfuncs, then
        # without it: a verifier that refuses the walk keeps the rest
        walks = (True, False) if features.get('css_task_iter') else (False,)
        variants = [(path, sleepable, walk) for path, sleepable in tier.objects(features)
                    for walk in walks]
        for i, (path, sleepable, walk) in enumerate(variants):
            label = tier.name + (' (sleepable, CMDLINE)' if sleepable else '') + \
                (' (cgroup walk)' if walk else '')
            try:
                load(path, pin_dir, tier.number, forced=bool(forced), cmdline=sleepable,
                     cgroup_walk=walk)
                _find_landlock(pin_dir)
                _measure_statm(pin_dir)
                _cmdline_direct(pin_dir, sleepable)
                return tier
            except Rejected as e:
                refused.append('== %s: %s\n%s\n' % (label, e.strerror, e.log))
                _write_verifier_log(refused)
                last = i == len(variants) - 1
                print('task-diag-load: tier %s refused by the kernel (%s; its log: %s)%s'
                      % (label, os.strerror(e.errno), VERIFIER_LOG,
                         '; trying its next object' if not last
                         else '' if forced else '; trying the next'), file=out)
                if forced and last:
                    raise
    raise Refusal('no tier loads on kernel %s (logs: %s)' % (os.uname().release, VERIFIER_LOG))


def _find_landlock(pin_dir):
    """td_config.landlock_off (task_diag/lsm.py), measured with the programs
    just pinned."""
    backend = BpfBackend(pin_dir)
    try:
        off = lsm.landlock_offset(backend)
    except (OSError, ValueError) as e:  # not measured: --status says "not found"
        print('task-diag-load: Landlock not measured (%s)' % e, file=sys.stderr)
        off = 0
    finally:
        backend.close()
    fd = tdconfig.open_pinned(pin_dir)
    try:
        tdconfig.update(fd, landlock_off=off)
    finally:
        os.close(fd)


def _measure_statm(pin_dir):
    """td_config.statm_cpus (task_diag/loader/statm.py), measured with the
    programs just pinned."""
    backend = BpfBackend(pin_dir)
    fd = tdconfig.open_pinned(pin_dir)
    try:
        statm.measure(backend, lambda n: tdconfig.update(fd, statm_cpus=n))
    except (OSError, ValueError, IndexError) as e:    # STATM then reads the totals
        print('task-diag-load: STATM counters not measured (%s)' % e, file=sys.stderr)
    finally:
        backend.close()
        os.close(fd)


def _cmdline_direct(pin_dir, sleepable):
    """td_config.cmdline_direct (task_diag/loader/cmdline.py), checked
    with the programs just pinned; a refusal leaves CMDLINE to
    bpf_copy_from_user_task() (a sleepable object) or to /proc (a plain
    one), and says why."""
    try:
        cmdline_direct.enable(pin_dir)
    except (cmdline_direct.Refused, OSError) as e:
        print('task-diag-load: CMDLINE through the direct map refused (%s); it is read %s'
              % (e, 'with bpf_copy_from_user_task()' if sleepable else 'from /proc'),
              file=sys.stderr)


def _write_verifier_log(entries):
    try:
        with open(VERIFIER_LOG, 'w') as f:
            f.write('kernel %s, %s\n' % (os.uname().release, time.strftime('%Y-%m-%d %H:%M:%S')))
            f.writelines(entries)
    except OSError:
        pass


def loaded_tier(cfg):
    """The Tier a td_config says is loaded (configs before tiers: dpath)."""
    return TIER_BY_NUMBER.get(cfg['tier'], TIERS[0])


def loaded_path(cfg):
    """The object file a td_config says is loaded."""
    return loaded_tier(cfg).path(bool(cfg['cmdline']))


def _sha256(path):
    try:
        with open(path, 'rb') as f:
            return hashlib.sha256(f.read()).digest()
    except OSError:
        return None


def up_to_date(pin_dir=PIN_DIR, forced=None):
    """Whether what is pinned is whole and what task-diag-load would load
    now: the same object file, the tier asked for (the richest that
    loaded, when not forced)."""
    cfg = tdconfig.read_pinned(pin_dir)
    if not cfg or sorted(pinned(pin_dir)) != sorted(expected_pins(cfg)):
        return False
    tier = loaded_tier(cfg)
    if cfg['obj_sha256'] != _sha256(loaded_path(cfg)):
        return False
    return tier.name == forced if forced else not cfg['tier_forced']


def status(pin_dir=PIN_DIR, out=None):
    out = out or sys.stdout
    names = pinned(pin_dir)
    cfg = tdconfig.read_pinned(pin_dir) if names else None
    features = kernel_features()
    print('kernel: %s' % os.uname().release, file=out)
    for name, _, _, what in FEATURES:
        print('  %-20s %-4s %s' % (name, 'yes' if features.get(name) else 'no', what), file=out)
    pid = service.front_pid()
    if pid:
        print('front: %s, daemon pid %d, %s' % (
            MOUNTPOINT, pid, 'answering' if service.front_answers() else 'NOT answering'), file=out)
    elif fuse_mounted():
        print('front: stale mount on %s (daemon gone); task-diag-load cleans it up'
              % MOUNTPOINT, file=out)
    else:
        print('front: not running', file=out)
    if not names:
        print('task_diag: not loaded (%s is empty)' % pin_dir, file=out)
        return 1
    # (a reader who may not read the config: the optional pins optional)
    whole = sorted(names) == sorted(expected_pins(cfg)) if cfg else set(PINS) <= set(names)
    state = 'loaded' if whole else 'partly loaded (run task-diag-load again)'
    print('task_diag: %s, pinned under %s' % (state, pin_dir), file=out)
    for name in names:
        st = os.stat(os.path.join(pin_dir, name))
        print('  %-12s %04o' % (name, st.st_mode & 0o7777), file=out)
    if cfg:
        tier = loaded_tier(cfg)
        obj = loaded_path(cfg)
        print('  tier: %s%s' % (tier.name, ' (forced by --tier)' if cfg['tier_forced'] else ''),
              file=out)
        for richer in TIERS[:TIERS.index(tier)]:
            lack = richer.missing(features)
            why = ('not on this kernel: %s' % dict((f[0], f[3]) for f in FEATURES)[lack] if lack
                   else 'forced' if cfg['tier_forced']
                   else 'refused by the verifier at load, log: %s' % VERIFIER_LOG)
            print('    without %s (%s): %s' % (richer.name, why, TIERS[TIERS.index(richer)].costs),
                  file=out)
        current = _sha256(obj)
        print('  object: %s (sha256 %s%s)' % (obj, cfg['obj_sha256'].hex()[:16],
              '' if current == cfg['obj_sha256'] else ', differs from the file now'), file=out)
        print('  loaded at: %s' % time.strftime('%Y-%m-%d %H:%M:%S',
                                                 time.localtime(cfg['loaded_at'])), file=out)
        print('  overflowuid %d overflowgid %d' % (cfg['overflowuid'], cfg['overflowgid']),
              file=out)
        where = 'where its pages are present, in a readable anonymous VMA'
        if cfg['cmdline']:
            how = 'read by the programs (a sleepable object), %s' % (
                'through the direct map %s, else with bpf_copy_from_user_task() (%d reads '
                'so far)' % (where, cfg['cmdline_slow']) if cfg['cmdline_direct']
                else 'with bpf_copy_from_user_task()')
        elif cfg['cmdline_direct']:
            how = ('read by the programs through the direct map %s, else by the driver from '
                   '/proc (%d so far)' % (where, cfg['cmdline_slow']))
        else:
            how = ('not in this object (needs the direct read, x86-64, or a sleepable '
                   'iterator and bpf_rcu_read_lock, 6.2): requests with it are answered '
                   'from /proc')
        print('  CMDLINE: %s' % how, file=out)
        print('  cgroup filter: %s' % (
            'walks the subtree (td_cgroup, the css_task iterator)'
            if os.path.exists(os.path.join(pin_dir, PIN_PROG_CGROUP)) else
            'a test of each task in the task iterator (the css_task iterator is 6.7\'s, or '
            'the kernel refused td_cgroup)'), file=out)
        print('  STATM: RSS counters %s, as /proc/PID/statm reads them'
              % ('summed over %d CPUs' % cfg['statm_cpus'] if cfg['statm_cpus']
                 else 'as their totals'), file=out)
        if cfg['landlock_off'] == lsm.LANDLOCK_READS:
            print('  landlock: a reader in a domain may read the maps of others, as here: '
                  'nothing to refuse', file=out)
        elif cfg['landlock_off']:
            print('  landlock: a reader in a domain may not read the maps of others; its '
                  'domain at +%d of cred->security: no VMA for it' % (cfg['landlock_off'] - 1),
                  file=out)
        else:
            print('  landlock: %s' % ('off' if not lsm.landlock_abi() else
                                      'domain not found: confined readers are not told apart'),
                  file=out)
        if cfg['vma_stat'] == VMA_STAT_PAGEWALK:
            print('vma_stat: pagewalk (BPF page-table walk; page_offset_base %#x, '
                  'vmemmap_base %#x, %d-level paging; %d pages met outside their mapping)'
                  % (cfg['pw_page_offset'], cfg['pw_vmemmap'], cfg['pw_levels'], cfg['pw_bad']),
                  file=out)
        else:
            print('vma_stat: smaps (read from /proc/PID/smaps)', file=out)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog='task-diag-load', description=__doc__.split('\n')[0])
    group = ap.add_mutually_exclusive_group()
    group.add_argument('--unload', action='store_true', help='remove every pin')
    group.add_argument('--status', action='store_true', help='report what is loaded')
    ap.add_argument('--no-front', action='store_true',
                    help='load and pin only; do not start /run/task-diag')
    ap.add_argument('--vma-stat', choices=sorted(VMA_STAT_SOURCES),
                    help='where VMA_STAT comes from: smaps (the default at load) or '
                         'pagewalk (a BPF page-table walk, x86-64, enabled only after '
                         'a check against smaps)')
    ap.add_argument('--tier', choices=[t.name for t in TIERS],
                    help='load this tier or fail (default: the richest the kernel verifies)')
    ap.add_argument('--pin-dir', default=PIN_DIR, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.status:
        return status(args.pin_dir)
    try:
        if args.unload:
            if os.geteuid() != 0:
                raise Refusal('must run as root to remove pins under %s' % BPFFS)
            front = args.pin_dir == PIN_DIR and service.stop_front()
            removed = unload(args.pin_dir)
            if removed or front:
                print('task-diag: unloaded (%d pins removed%s)'
                      % (len(removed), ', front stopped' if front else ''))
            else:
                print('task-diag: nothing was loaded')
            return 0
        features = check_prerequisites()
        fresh = not up_to_date(args.pin_dir, args.tier)
        if fresh:
            if args.pin_dir == PIN_DIR:
                service.stop_front()            # it holds the old programs
            if pinned(args.pin_dir) or _pin_dir_exists(args.pin_dir):
                unload(args.pin_dir)    # another build, or a partial load: replace it
            tier = load_tier(features, args.pin_dir, args.tier)
            print('task-diag: loaded tier %s (%s), pinned under %s'
                  % (tier.name, os.path.basename(loaded_path(tdconfig.read_pinned(args.pin_dir))),
                     args.pin_dir))
        started = False
        if args.no_front and args.pin_dir == PIN_DIR and not service.front_pid() and fuse_mounted():
            service.stop_front()                # a stale mount: whoever starts the front next needs it gone
        if not args.no_front and args.pin_dir == PIN_DIR:
            started = service.start_front(args.pin_dir)
            if started:
                print('task-diag: %s answers' % MOUNTPOINT)
        if not fresh and not started:
            print('task-diag: already loaded (%s)' % args.pin_dir)
        if args.vma_stat == 'pagewalk':
            try:
                pagewalk.enable(features, args.pin_dir)
            except pagewalk.Refused as e:
                print('task-diag-load: --vma-stat=pagewalk refused: %s; VMA_STAT stays on smaps'
                      % e, file=sys.stderr)
                return 1
            print('task-diag: VMA_STAT from the page walk (checked against smaps)')
        elif args.vma_stat == 'smaps':
            pagewalk.disable(args.pin_dir)
            print('task-diag: VMA_STAT from smaps')
        return 0
    except Refusal as e:
        print('task-diag-load: %s' % e, file=sys.stderr)
        return 1
    except OSError as e:
        print('task-diag-load: %s' % (e.strerror or e), file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
