"""task-diag-load (spec section 5): idempotent load, --unload, --status,
refusal without root, repair of a partial load.

Every test loads into a pin directory of its own (the hidden --pin-dir
option), never the default one, which others use concurrently; the
directory is removed whatever happens.  With --pin-dir other than the
default the loader starts no front (/run/task-diag).
"""
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from task_diag import wire
from task_diag.iterproto import CONFIG, PIN_ALL, PIN_ALL_THREADS, PIN_CONFIG, PIN_REQUESTS, PINS
from task_diag import libbpf, tdconfig
from task_diag.loader import load as loader

from helpers import need
from helpers.loader import BPFFS, EXPECTED_PINS, KIND, LOADER, MODES, load, run
from helpers.ns import NOBODY



def bpftool_id(kind, path):
    r = subprocess.run(['bpftool', '-j', kind, 'show', 'pinned', path],
                       capture_output=True, text=True)
    assert r.returncode == 0, 'bpftool %s show pinned %s: %s' % (kind, path, r.stdout + r.stderr)
    return json.loads(r.stdout)['id']


def exists(kind, obj_id):
    r = subprocess.run(['bpftool', '-j', kind, 'show', 'id', str(obj_id)],
                       capture_output=True, text=True)
    return r.returncode == 0


def snapshot(pin_dir):
    """{pin: (inode, mode, kind, kernel object id)} and the config's load time."""
    out = {}
    for name in EXPECTED_PINS:
        path = os.path.join(pin_dir, name)
        st = os.stat(path)
        out[name] = (st.st_ino, st.st_mode & 0o7777, KIND[name], bpftool_id(KIND[name], path))
    cfg = tdconfig.read_pinned(pin_dir)
    out['loaded_at'] = cfg['loaded_at'] if cfg else None
    return out


def object_ids(snap):
    """(kind, id) of every kernel object behind a snapshot's pins, with the
    program behind each link (all_threads' is pinned nowhere else)."""
    ids = {(v[2], v[3]) for k, v in snap.items() if k in EXPECTED_PINS}
    for name in (PIN_ALL, PIN_ALL_THREADS):
        r = subprocess.run(['bpftool', '-j', 'link', 'show', 'id', str(snap[name][3])],
                           capture_output=True, text=True)
        ids.add(('prog', json.loads(r.stdout)['prog_id']))
    return ids


def assert_freed(ids):
    """The kernel objects are gone (freeing is asynchronous: wait a little)."""
    deadline = time.monotonic() + 10
    while True:
        left = {i for i in ids if exists(*i)}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, 'still in the kernel after their pins went: %s' % sorted(left)


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).digest()


def assert_works(pin_dir):
    """The pins form one working whole: the iterator files answer, and the
    in-process backend (program + request map) answers a BASE|CRED request."""
    with open(os.path.join(pin_dir, PIN_ALL), 'rb') as f:
        tasks = {t.pid: t for t in wire.decode(f.read())}
    me = tasks.get(os.getpid())
    assert me is not None and me.base.ppid == os.getppid() and os.getppid() in tasks
    assert 'kthreadd' in {t.base.comm for t in tasks.values()}, 'root sees kernel threads'
    with open(os.path.join(pin_dir, PIN_ALL_THREADS), 'rb') as f:
        assert os.getpid() in {t.pid for t in wire.decode(f.read())}
    from task_diag.bpf_backend import BpfBackend
    b = BpfBackend(pin_dir)
    try:
        got = wire.decode(b.raw(wire.DUMP_ONE, os.getpid(), wire.SHOW_BASE | wire.SHOW_CRED))
    finally:
        b.close()
    assert [t.pid for t in got] == [os.getpid()]
    assert got[0].cred is not None and got[0].cred.uid == 0 and got[0].base.comm == \
        open('/proc/self/comm').read().strip()[:15]


# ---------------------------------------------------------------------------

def test_load_pins_everything(pin_dir):
    before = set(os.listdir(BPFFS))
    r = load(pin_dir)
    assert 'loaded' in r.stdout and pin_dir in r.stdout and 'already' not in r.stdout
    assert sorted(os.listdir(pin_dir)) == sorted(EXPECTED_PINS)
    for name in EXPECTED_PINS:
        assert os.stat(os.path.join(pin_dir, name)).st_mode & 0o7777 == MODES[name], name
    new = set(os.listdir(BPFFS)) - before
    assert os.path.basename(pin_dir) in new
    assert not new & set(PINS), 'pins created directly under %s: %s' % (BPFFS, new & set(PINS))
    cfg = tdconfig.read_pinned(pin_dir)
    assert cfg['obj_sha256'] == sha256(loader.object_path())
    with open('/proc/sys/kernel/overflowuid') as f:
        assert cfg['overflowuid'] == int(f.read())
    with open('/proc/sys/kernel/overflowgid') as f:
        assert cfg['overflowgid'] == int(f.read())
    assert abs(cfg['loaded_at'] - time.time()) < 300
    assert_works(pin_dir)


def test_load_twice_is_a_no_op(pin_dir):
    load(pin_dir)
    first = snapshot(pin_dir)
    r = load(pin_dir)
    assert 'already loaded' in r.stdout, r.stdout
    assert snapshot(pin_dir) == first, 'the second load replaced pins'
    assert_works(pin_dir)


def test_unload_removes_everything(pin_dir):
    before = set(os.listdir(BPFFS))
    load(pin_dir)
    ids = object_ids(snapshot(pin_dir))
    r = run(pin_dir, '--unload')
    assert r.returncode == 0, r.stderr
    assert 'unloaded' in r.stdout and '%d pins removed' % len(EXPECTED_PINS) in r.stdout, r.stdout
    assert not os.path.exists(pin_dir), 'the pin directory is still there: %s' % (
        os.listdir(pin_dir),)
    after = set(os.listdir(BPFFS))
    # Entries other runs of this test may have made meanwhile aside, nothing is new.
    new = {e for e in after - before
           if not e.startswith('task_diag_test_') or e == os.path.basename(pin_dir)}
    assert not new, 'left under %s: %s' % (BPFFS, new)
    assert_freed(ids)
    r = run(pin_dir, '--unload')
    assert r.returncode == 0 and 'nothing was loaded' in r.stdout, (r.stdout, r.stderr)
    assert not os.path.exists(pin_dir)


@pytest.mark.parametrize('args', [[], ['--unload']], ids=['load', 'unload'])
def test_non_root_is_refused(pin_dir, args):
    need(shutil.which('setpriv'), 'setpriv (util-linux) is needed')
    if args:
        load(pin_dir)
        first = snapshot(pin_dir)
    r = run(pin_dir, *args, user=NOBODY)
    assert r.returncode != 0
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('task-diag-load: '), r.stderr
    assert 'root' in lines[0], 'the reason names what is missing: %r' % lines[0]
    assert 'Traceback' not in r.stderr and r.stdout == ''
    if args:
        assert snapshot(pin_dir) == first, 'a refused --unload changed the pins'
    else:
        assert not os.path.exists(pin_dir), 'a refused load created %s' % pin_dir


def _features_expected():
    """{feature: whether this kernel has it}, from the version each needs;
    the trusted vm_file, which no version tells (a late-2025 verifier change,
    backported or not), from bpftool's dump of the kernel's BTF."""
    release = tuple(int(x) for x in re.match(r'(\d+)\.(\d+)', os.uname().release).groups())
    out = {}
    for name, _, _, what in loader.FEATURES:
        if name == 'trusted_vm_file':
            out[name] = btf_has('vm_area_struct__safe_trusted_or_null')
            continue
        need_version = tuple(int(x) for x in re.search(r'\((\d+)\.(\d+)\)', what).groups())
        out[name] = release >= need_version
    return out


def btf_has(type_name):
    """Whether bpftool finds @type_name among the kernel's BTF types."""
    r = subprocess.run(['bpftool', 'btf', 'dump', 'file', '/sys/kernel/btf/vmlinux',
                        'format', 'raw'], capture_output=True, text=True, check=True)
    return "'%s'" % type_name in r.stdout


def _status(pin_dir, user=None):
    r = run(pin_dir, '--status', user=user)
    assert 'Traceback' not in r.stderr, r.stderr
    return r


def _check_features(text):
    assert 'kernel: %s' % os.uname().release in text
    for name, want in _features_expected().items():
        m = re.search(r'^\s+%s\s+(yes|no)\b' % name, text, re.M)
        assert m, 'feature %s not reported:\n%s' % (name, text)
        assert m.group(1) == ('yes' if want else 'no'), (
            '%s: reported %s on kernel %s' % (name, m.group(1), os.uname().release))


def test_status_not_loaded(pin_dir):
    r = _status(pin_dir)
    assert re.search(r'not loaded \(%s' % re.escape(pin_dir), r.stdout), r.stdout
    _check_features(r.stdout)
    assert not os.path.exists(pin_dir), '--status created the pin directory'


@pytest.mark.parametrize('user', [None, NOBODY], ids=['root', 'nobody'])
def test_status_loaded(pin_dir, user):
    load(pin_dir)
    r = _status(pin_dir, user)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert re.search(r'^task_diag: loaded, pinned under %s$' % re.escape(pin_dir), r.stdout,
                     re.M), r.stdout
    _check_features(r.stdout)
    for name in EXPECTED_PINS:
        assert re.search(r'^\s+%s\s+%04o$' % (name, MODES[name]), r.stdout, re.M), (
            name, r.stdout)
    if user is None:
        # where it comes from: the object, its sha256, unchanged since
        digest = sha256(loader.object_path()).hex()[:16]
        assert '%s (sha256 %s)' % (loader.object_path(), digest) in r.stdout, r.stdout
        cfg = tdconfig.read_pinned(pin_dir)
        assert 'overflowuid %d overflowgid %d' % (cfg['overflowuid'], cfg['overflowgid']) \
            in r.stdout, r.stdout


def test_status_partly_loaded(pin_dir):
    load(pin_dir)
    os.unlink(os.path.join(pin_dir, PIN_REQUESTS))
    r = _status(pin_dir)
    assert 'partly loaded' in r.stdout, r.stdout
    assert not re.search(r'^\s+%s\s' % PIN_REQUESTS, r.stdout, re.M)


@pytest.mark.parametrize('missing', EXPECTED_PINS)
def test_partial_load_is_repaired(pin_dir, missing):
    load(pin_dir)
    first = snapshot(pin_dir)
    old = object_ids(first)
    os.unlink(os.path.join(pin_dir, missing))
    r = load(pin_dir)
    assert 'already' not in r.stdout and 'loaded' in r.stdout, r.stdout
    assert sorted(os.listdir(pin_dir)) == sorted(EXPECTED_PINS)
    second = snapshot(pin_dir)
    for name in EXPECTED_PINS:
        assert second[name][1] == MODES[name], name
        # one consistent set: everything was loaded anew, nothing kept from before
        assert second[name][3] != first[name][3], '%s kept from the partial load' % name
    assert_works(pin_dir)
    assert_freed(old)


def test_other_build_is_replaced(pin_dir):
    """Pins whose config names another object (a rebuild) are replaced."""
    load(pin_dir)
    first = snapshot(pin_dir)
    old = object_ids(first)
    fd = libbpf.obj_get(os.path.join(pin_dir, PIN_CONFIG))
    try:
        cfg = tdconfig.read_pinned(pin_dir)
        value = CONFIG.pack(*dict(cfg, obj_sha256=bytes(32)).values())
        libbpf.map_update(fd, (0).to_bytes(4, 'little'), value)
    finally:
        os.close(fd)
    assert 'differs from the file now' in _status(pin_dir).stdout
    r = load(pin_dir)
    assert 'already' not in r.stdout and 'loaded' in r.stdout, r.stdout
    second = snapshot(pin_dir)
    assert all(second[n][3] != first[n][3] for n in EXPECTED_PINS), (first, second)
    assert tdconfig.read_pinned(pin_dir)['obj_sha256'] == sha256(loader.object_path())
    assert_works(pin_dir)
    assert_freed(old)


def test_backend_notices_a_reload(pin_dir, monkeypatch):
    """A process that drives the pins in-process (BpfBackend) notices
    when task-diag-load replaced them: task_diag.api then opens the new
    ones, and the old object goes once the old backend is closed."""
    from task_diag import api
    from task_diag import bpf_backend as pinned
    load(pin_dir)
    old = object_ids(snapshot(pin_dir))
    b = pinned.BpfBackend(pin_dir)
    assert wire.decode(b.raw(wire.DUMP_ONE, os.getpid()), wire.SHOW_BASE)[0].pid == os.getpid()
    time.sleep(pinned.STALE_CHECK_S)
    assert not b.stale()
    fd = libbpf.obj_get(os.path.join(pin_dir, PIN_CONFIG))
    try:
        cfg = tdconfig.read_pinned(pin_dir)
        libbpf.map_update(fd, (0).to_bytes(4, 'little'),
                          CONFIG.pack(*dict(cfg, obj_sha256=bytes(32)).values()))
    finally:
        os.close(fd)
    load(pin_dir)                           # another build's pins: replaced
    time.sleep(pinned.STALE_CHECK_S)
    assert b.stale()
    # the API drops it and opens the pins again (here: the default ones,
    # which may not be loaded in this test's session)
    monkeypatch.setitem(api._backends, 'bpf', b)
    try:
        assert api.backend('bpf') is not b
    except OSError:
        pass
    assert api._backends.get('bpf') is not b
    # the old programs still answer (the descriptors hold them), until closed
    assert wire.decode(b.raw(wire.DUMP_ONE, os.getpid()), wire.SHOW_BASE)[0].pid == os.getpid()
    b.close()
    assert_freed(old)
    assert_works(pin_dir)


def test_pin_dir_is_hidden_from_help():
    r = subprocess.run(LOADER + ['--help'], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert '--unload' in r.stdout and '--status' in r.stdout
    assert '--pin-dir' not in r.stdout


# --- tiers: what verifies on this kernel, each one forced --------------------------------

def _tier_possible(tier):
    """Whether this kernel can load @tier, by the independent oracle: the
    version for the VMA iterator, bpftool's BTF dump for the trusted vm_file."""
    have = _features_expected()
    return all(have[n] for n in tier.needs)


TINY = r'''
import mmap, os, sys
f = open(sys.argv[1], 'wb+'); f.write(b'x' * 8192); f.flush()
m = mmap.mmap(f.fileno(), 8192)
os.unlink(sys.argv[1])
print('ready', flush=True)
sys.stdin.read()
'''


def _answers(pin_dir, tmp_path):
    """The tier under @pin_dir answers: BASE of this process, VMAs of a
    child equal to its maps (through whatever source the tier has)."""
    from task_diag.bpf_backend import BpfBackend
    from helpers.vma import maps_lines, vma_lines
    b = BpfBackend(pin_dir)
    child = subprocess.Popen([sys.executable, '-c', TINY, str(tmp_path / 'mapped')],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b'ready\n'
        (me,) = wire.iter_decode(b.raw(wire.DUMP_ONE, os.getpid(), wire.SHOW_BASE))
        assert (me.pid, me.base.ppid) == (os.getpid(), os.getppid())
        (task,) = wire.iter_decode(b.raw(wire.DUMP_ONE, child.pid,
                                         wire.SHOW_BASE | wire.SHOW_VMA))
        lines = maps_lines(child.pid)
        assert any(n.endswith('/mapped (deleted)') for _, n in lines)
        assert vma_lines(task.vmas) == lines
        return b.has_vma()
    finally:
        child.kill()
        child.wait()
        b.close()


@pytest.mark.parametrize('name', [t.name for t in loader.TIERS])
def test_each_tier_forced(pin_dir, tmp_path, name):
    tier = loader.TIER_BY_NAME[name]
    r = run(pin_dir, '--tier', name, '--no-front')
    if not _tier_possible(tier):
        # refused by the verifier, not by a guess: the log says so
        assert r.returncode == 1, r.stdout + r.stderr
        assert 'tier %s refused by the kernel' % name in r.stdout, r.stdout
        assert loader.VERIFIER_LOG in r.stdout
        with open(loader.VERIFIER_LOG) as f:
            log = f.read()
        assert '== %s:' % name in log and os.uname().release in log
        # the verifier's refusal of bpf_d_path(vma->vm_file), or libbpf's of a
        # kfunc the kernel lacks (before 6.7)
        assert 'R1 type=untrusted_ptr' in log or 'bpf_iter_task_vma_new' in log, log[-2000:]
        assert not os.path.exists(pin_dir) or not os.listdir(pin_dir)
        return
    assert r.returncode == 0, r.stdout + r.stderr
    # the sleepable twin where the kernel's BTF allows it (it verifies
    # wherever the plain one does, on the kernels we test)
    path, sleepable = tier.objects(loader.kernel_features())[0]
    assert 'loaded tier %s (%s)' % (name, os.path.basename(path)) in r.stdout
    assert tdconfig.read_pinned(pin_dir)['cmdline'] == sleepable
    status = _status(pin_dir).stdout
    assert '  tier: %s (forced by --tier)' % name in status, status
    assert tdconfig.read_pinned(pin_dir)['tier'] == tier.number
    assert _answers(pin_dir, tmp_path) == (tier.number != loader.TIER_NOVMA)
    # again: the same tier forced is already loaded; the default then replaces it
    assert 'already loaded' in run(pin_dir, '--tier', name, '--no-front').stdout
    assert 'loaded tier' in run(pin_dir, '--no-front').stdout


def test_default_tier_is_the_richest_that_verifies(pin_dir, tmp_path):
    richest = next(t for t in loader.TIERS if _tier_possible(t))
    load(pin_dir)
    status = _status(pin_dir).stdout
    assert '  tier: %s\n' % richest.name in status, status
    for t in loader.TIERS[:loader.TIERS.index(richest)]:
        assert '    without %s (' % t.name in status
    _answers(pin_dir, tmp_path)


def test_a_refused_tier_falls_back(pin_dir, tmp_path):
    """Told that every feature is there, the loader tries the richest tier;
    where the verifier refuses it, the next one loads and the refusal is
    logged, never fatal."""
    features = dict(loader.kernel_features(), trusted_vm_file=True)
    out = io.StringIO()
    tier = loader.load_tier(features, pin_dir, out=out)
    try:
        if _tier_possible(loader.TIERS[0]):
            assert tier is loader.TIERS[0] and out.getvalue() == ''
        else:
            assert tier.name == 'walk', out.getvalue()
            assert 'tier dpath refused by the kernel' in out.getvalue()
            with open(loader.VERIFIER_LOG) as f:
                assert 'bpf_d_path' in f.read()
            _answers(pin_dir, tmp_path)
    finally:
        loader.unload(pin_dir)


# --- bpffs: mounted 0700, links and strangers' entries left alone -----------------------

def test_bpffs_mounted_by_the_loader_is_root_only(tools_unshare):
    """Where /sys/fs/bpf is not bpffs, task-diag-load mounts it mode 0700 (in
    a mount namespace of the test's own, over a tmpfs that hides the real
    one)."""
    script = ('mount -t tmpfs tmpfs /sys/fs/bpf && "$@" --no-front --pin-dir '
              '/sys/fs/bpf/td && stat -c %a /sys/fs/bpf && grep " /sys/fs/bpf bpf " '
              '/proc/self/mounts && "$@" --unload --pin-dir /sys/fs/bpf/td')
    r = subprocess.run(['unshare', '-m', '--propagation', 'private', 'sh', '-c', script, 'sh']
                       + LOADER, capture_output=True, text=True, timeout=120, cwd='/')
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.split('\n')
    assert int(lines[1], 8) & 0o777 == 0o700, r.stdout       # stat of the new mount's root
    assert lines[-3].endswith(',mode=700 0 0'), r.stdout      # the one on top, ours


@pytest.fixture
def tools_unshare():
    need(shutil.which('unshare'), 'unshare (util-linux) is needed')


def test_unload_follows_no_link_and_leaves_what_is_not_ours(pin_dir):
    target = pin_dir + '-target'
    os.mkdir(target)
    os.mkdir(os.path.join(target, 'victim'))
    try:
        os.symlink(target, pin_dir)
        for args in (['--unload'], []):
            r = run(pin_dir, *args)
            assert r.returncode == 1 and 'not a directory' in r.stderr, r.stderr
            assert os.listdir(target) == ['victim']
        os.unlink(pin_dir)
        load(pin_dir)
        os.mkdir(os.path.join(pin_dir, 'stranger'))
        r = run(pin_dir, '--unload')
        assert r.returncode == 1 and 'stranger' in r.stderr, r.stderr
        assert os.listdir(pin_dir) == ['stranger']
    finally:
        if os.path.islink(pin_dir):
            os.unlink(pin_dir)
        shutil.rmtree(target, ignore_errors=True)
