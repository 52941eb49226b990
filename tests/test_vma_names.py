"""VMA names on every tier with VMA code, against /proc/PID/maps as the
same reader sees it: files on the root mount and on a tmpfs, a bind mount
and an overlayfs, names with spaces, a newline and bytes that are not
UTF-8, a deep path, a deleted file, memfd, SysV shm, shared /dev/zero,
an io_uring ring (anon_inode), [heap], [stack], [vdso] (helpers/names.py
makes them); a chrooted reader; names the walk gives up on, which must
come from /proc/PID/maps, never wrong.

Each tier is loaded into a pin directory of its own (task-diag-load's
--tier, here loader.load() of that tier's object), so the default pins are
not touched.  Only the tiers this kernel can have are compared: which they
are, and that the others are refused, is test_tiers.py's business.
"""
import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

from task_diag import wire
from task_diag.loader import load as loader
from task_diag.bpf_backend import BpfBackend

from helpers.vma import maps_lines, vma_lines

HERE = os.path.dirname(os.path.abspath(__file__))
HELPER = os.path.join(HERE, 'helpers', 'names.py')
SHOW = wire.SHOW_BASE | wire.SHOW_VMA


def _vma_tiers():
    try:
        features = loader.kernel_features()
    except OSError:
        features = {}
    tiers = [t.name for t in loader.TIERS if t.number != loader.TIER_NOVMA
             and not t.missing(features)]
    return tiers or ['walk']        # no VMA tier at all: the fixture fails, not skips


@pytest.fixture(scope='module', params=_vma_tiers())
def tier(request, bpf):
    t = loader.TIER_BY_NAME[request.param]
    pin_dir = '/sys/fs/bpf/td_names_%s_%s' % (t.name, uuid.uuid4().hex[:8])
    loader.load(t.path(), pin_dir, t.number)
    b = BpfBackend(pin_dir)
    try:
        assert b.has_vma()
        yield b
    finally:
        b.close()
        loader.unload(pin_dir)


def _spawn(tmp_path, *args):
    p = subprocess.Popen([sys.executable, HELPER, str(tmp_path)] + list(args),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = p.stdout.readline().decode()
    assert line.startswith('ready'), line
    os.kill(p.pid, signal.SIGSTOP)          # nothing changes while compared
    return p, line.split()[1:]


def _end(p):
    p.kill()
    p.wait()


@pytest.fixture(scope='module')
def names(tmp_path_factory):
    p, extra = _spawn(tmp_path_factory.mktemp('names'))
    yield p, 'io_uring' in extra
    _end(p)


def _dump(backend, pid):
    """(VMA lines, tasks answered from /proc) of process @pid."""
    s = backend.stream(wire.DUMP_ONE, pid, SHOW)
    try:
        raw = s.read(1 << 62)
    finally:
        s.close()
    (task,) = wire.iter_decode(raw)
    return vma_lines(task.vmas), s.tasks_from_proc


def test_every_kind_of_name(tier, names):
    p, uring = names
    want = maps_lines(p.pid)
    text = '\n'.join(name for _, name in want)
    # the workload has what it should, or the comparison proves less
    for part in ('/plain', '/with space', '/new\\012line', '/bytes \udcff\udcfe',
                 '/d39/deep', '/gone (deleted)', '/tmpfs/on tmpfs', '/bind/bound',
                 '/ovl/merged/from lower', '/ovl/merged/in upper',
                 '/memfd:td names memfd (deleted)', '/SYSV00000000 (deleted)',
                 '/dev/zero (deleted)', '[heap]', '[stack]', '[vdso]', 'libc.so'):
        assert part in text, part
    if uring:
        assert 'anon_inode:[io_uring]' in text
    got, from_proc = _dump(tier, p.pid)
    assert got == want
    assert from_proc == 0, 'the names came from /proc/PID/maps, not from BPF'


def test_overlay_names_its_own_inode(tier, names):
    """file_user_inode(): the device and inode of the overlayfs file, not of
    the file under it (the backing file's)."""
    p, _ = names
    got, _ = _dump(tier, p.pid)
    ovl = [line for line in got if '/ovl/merged/' in line[1]]
    assert len(ovl) == 2
    for head, name in ovl:
        st = os.stat('/proc/%d/root%s' % (p.pid, name))
        major, minor = (int(x, 16) for x in head.split()[3].split(':'))
        assert (os.makedev(major, minor), int(head.split()[4])) == (st.st_dev, st.st_ino)


def test_names_the_walk_gives_up_on_come_from_maps(tier, tmp_path):
    p, _ = _spawn(tmp_path, '--hard')
    try:
        want = maps_lines(p.pid)
        names = [name for _, name in want]
        assert any(n.endswith('/deeper than the walk') and n.count('/s') >= 300 for n in names)
        assert any(n.endswith('/longer than a record') and len(n) > 4096 for n in names)
        got, from_proc = _dump(tier, p.pid)
        assert got == want
        assert from_proc == 1
    finally:
        _end(p)


def test_a_dentry_that_is_its_own_parent(tier, tmp_path):
    """A file opened by handle after the dentry cache was dropped maps
    through a disconnected dentry (IS_ROOT, not its mount's root):
    /proc/PID/maps prints "/", not " (deleted)" after it."""
    p, _ = _spawn(tmp_path, '--disconnected')
    try:
        want = maps_lines(p.pid)
        got, from_proc = _dump(tier, p.pid)
    finally:
        _end(p)
    assert any(name == '/' for _, name in want), want
    assert got == want and from_proc == 0


CHROOT_READER = r'''
import json, os, sys
from task_diag import wire
from task_diag.bpf_backend import BpfBackend
sys.path.insert(0, sys.argv[4])
from helpers.vma import parse_maps, vma_lines
pin_dir, pid, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
b = BpfBackend(pin_dir)
b._key()                        # needs /proc: taken before the chroot
maps = os.open('/proc/%d/maps' % pid, os.O_RDONLY)
os.chroot(root)
os.chdir('/')
s = b.stream(wire.DUMP_ONE, pid, wire.SHOW_BASE | wire.SHOW_VMA)
(task,) = wire.iter_decode(s.read(1 << 62))
data = b''
while True:
    chunk = os.read(maps, 1 << 16)      # maps prints relative to the reader's root now
    if not chunk:
        break
    data += chunk
print(json.dumps({'got': vma_lines(task.vmas), 'want': parse_maps(data),
                  'from_proc': s.tasks_from_proc}))
'''


def _chrooted(script, where, tmp_path, *args):
    """@script run chrooted into @tmp_path over the '--here' workload, which
    maps files there: (its output, the VMA lines it got, its maps lines)."""
    p, _ = _spawn(tmp_path, '--here')
    try:
        r = subprocess.run([sys.executable, '-c', script, where, str(p.pid), str(tmp_path),
                            HERE] + [str(a) for a in args], capture_output=True, text=True,
                           timeout=60,
                           env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE)))
    finally:
        _end(p)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    return out, [tuple(x) for x in out['got']], [tuple(x) for x in out['want']]


def test_chrooted_reader(tier, tmp_path):
    """A reader chrooted into the workload's directory: names below it as
    its /proc/PID/maps shows them (from its root), the others as seen from
    above (d_path() never meets that root on their way up)."""
    out, got, want = _chrooted(CHROOT_READER, tier.pin_dir, tmp_path)
    names_ = [n for _, n in want]
    assert {'/plain', '/with space', '/gone (deleted)'} <= set(names_)   # from its root
    assert any('/libc.so' in n for n in names_)                # outside it: from above
    assert got == want
    assert out['from_proc'] == 0


FRONT_CHROOT_READER = r'''
import json, os, sys
from task_diag import wire
sys.path.insert(0, sys.argv[4])
from helpers.vma import parse_maps, vma_lines
front, pid, root, show = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[5])
fd = os.open(front, os.O_RDWR)
maps = os.open('/proc/%d/maps' % pid, os.O_RDONLY)
os.chroot(root)
os.chdir('/')
os.write(fd, wire.encode_request(wire.DUMP_ONE, pid, show))
data = b''.join(iter(lambda: os.read(fd, 1 << 20), b''))
(task,) = wire.iter_decode(data)
want = b''.join(iter(lambda: os.read(maps, 1 << 16), b''))
print(json.dumps({'got': vma_lines(task.vmas), 'want': parse_maps(want)}))
'''


@pytest.mark.parametrize('show', [SHOW, SHOW | wire.SHOW_VMA_STAT], ids=['vma', 'vma_stat'])
def test_chrooted_reader_of_the_file(front, tmp_path, show):
    """The same through /run/task-diag: the daemon is not chrooted, the
    names are printed from the reader's root all the same, whether the
    programs write them (VMA) or the daemon reads them from the task's
    smaps (VMA_STAT from smaps, the default source)."""
    _, got, want = _chrooted(FRONT_CHROOT_READER, front, tmp_path, show)
    assert {'/plain', '/with space', '/gone (deleted)'} <= {n for _, n in want}
    assert got == want


def test_task_diag_maps_is_proc_maps_byte_for_byte(bpf, names):
    """The command line over the default load: `task-diag maps PID` prints
    what /proc/PID/maps holds, every byte, for every kind of name."""
    p, _ = names
    with open('/proc/%d/maps' % p.pid, 'rb') as f:
        want = f.read()
    r = subprocess.run([os.path.join(os.path.dirname(HERE), '.venv', 'bin', 'task-diag'),
                        '--source', 'bpf', 'maps', str(p.pid)], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert b'/with space' in want and b'(deleted)' in want and b'/ovl/merged/' in want
    assert r.stdout == want
