"""VMA records from the BPF programs against /proc/PID/maps, line by line.

The processes are built here (anonymous, private and shared file
mappings, a deleted file, memfd, PROT_NONE guards, [heap], [stack],
[anon:NAME] where the kernel has it, 20,000 mappings) and stopped while
compared, [vsyscall] included: the gate area is no VMA the iterator
visits, the loader hands its line to the programs.
"""
import os
import signal
import struct
import subprocess
import sys
import textwrap

import pytest

from task_diag import wire
from task_diag.loader.pinned import PinnedBackend, vma_supported

from conftest import need

SHOW = wire.SHOW_BASE | wire.SHOW_CRED | wire.SHOW_VMA | wire.SHOW_STAT
MAX_MSG = 32 * 1024

CHILD = textwrap.dedent(r'''
    import ctypes, mmap, os, sys, tempfile
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.sbrk.restype = ctypes.c_void_p
    libc.sbrk.argtypes = [ctypes.c_long]
    PAGE = mmap.PAGESIZE
    keep = []
    n = int(sys.argv[1])
    d = sys.argv[2]
    # files: private and shared, one deleted, a memfd
    for name, flags in (('priv', mmap.MAP_PRIVATE), ('shared', mmap.MAP_SHARED),
                        ('gone', mmap.MAP_SHARED)):
        path = os.path.join(d, name)
        with open(path, 'wb') as f:
            f.write(b'x' * 4 * PAGE)
        fd = os.open(path, os.O_RDWR)
        keep.append(mmap.mmap(fd, 2 * PAGE, flags=flags, offset=PAGE))
        os.close(fd)
    os.unlink(os.path.join(d, 'gone'))
    mfd = os.memfd_create('td-memfd')
    os.ftruncate(mfd, 2 * PAGE)
    keep.append(mmap.mmap(mfd, 2 * PAGE, flags=mmap.MAP_SHARED))
    # guard pages around anonymous memory
    base = libc.mmap(None, 5 * PAGE, 0, 0x22, -1, 0)
    libc.mprotect(ctypes.c_void_p(base + PAGE), 3 * PAGE, 3)
    # a named anonymous mapping, where the kernel has CONFIG_ANON_VMA_NAME
    anon = libc.mmap(None, 2 * PAGE, 3, 0x22, -1, 0)
    name = ctypes.create_string_buffer(b'td-name')
    libc.prctl(0x53564d41, 0, ctypes.c_ulong(anon), 2 * PAGE, name)
    # the heap
    libc.sbrk(64 * PAGE)
    # many mappings that cannot merge: alternate protections
    if n:
        big = libc.mmap(None, 2 * n * PAGE, 3, 0x22, -1, 0)
        for i in range(0, 2 * n, 2):
            libc.mprotect(ctypes.c_void_p(big + i * PAGE), PAGE, 1)
    sys.stdout.write('ready\n')
    sys.stdout.flush()
    sys.stdin.read()
''')


@pytest.fixture
def backend(bpf):
    need(vma_supported(), 'the kernel lacks the open-coded VMA iterator')
    b = PinnedBackend()
    yield b
    b.close()


def spawn(tmp_path, n=0):
    p = subprocess.Popen([sys.executable, '-c', CHILD, str(n), str(tmp_path)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.readline() == b'ready\n'
    os.kill(p.pid, signal.SIGSTOP)
    return p


def finish(p):
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


def maps_lines(pid):
    with open('/proc/%d/maps' % pid, 'rb') as f:
        lines = f.read().decode('utf-8', 'surrogateescape').splitlines()
    out = []
    for line in lines:
        f = line.split(None, 5)
        name = f[5] if len(f) > 5 else ''
        out.append((' '.join(f[:5]), name))
    return out


def vma_lines(vmas):
    out = []
    for v in vmas:
        perms = ''.join(c if v.vm_flags & wire.VMA_F[n] else '-'
                        for c, n in (('r', 'READ'), ('w', 'WRITE'), ('x', 'EXEC')))
        perms += 's' if v.vm_flags & wire.VMA_F['MAYSHARE'] else 'p'
        name = v.name
        if isinstance(name, bytes):
            name = name.rstrip(b'\0').decode('utf-8', 'surrogateescape')
        out.append(('%x-%x %s %08x %02x:%02x %d' % (v.start, v.end, perms, v.pgoff, v.major,
                                                   v.minor, v.inode), name or ''))
    return out


def messages(raw):
    """[(pid, tgid, flags, length)] of every message."""
    out, off = [], 0
    while off < len(raw):
        length, = struct.unpack_from('=I', raw, off)
        pid, tgid, flags = struct.unpack_from('=III', raw, off + 16)
        out.append((pid, tgid, flags, length))
        off += (length + 3) & ~3
    return out


def check_messages(raw):
    msgs = messages(raw)
    assert all(m[3] <= MAX_MSG for m in msgs)
    for a, b in zip(msgs, msgs[1:]):
        if a[2] & wire.TASK_DIAG_FLAG_CONT:
            assert (a[0], a[1]) == (b[0], b[1])
    assert not msgs or not msgs[-1][2] & wire.TASK_DIAG_FLAG_CONT
    return msgs


def test_one_matches_maps(backend, tmp_path):
    p = spawn(tmp_path)
    try:
        raw = backend.raw(wire.DUMP_ONE, p.pid, SHOW)
        check_messages(raw)
        (task,) = wire.iter_decode(raw)
        assert task.base is not None and task.cred is not None and task.stat is not None
        got, want = vma_lines(task.vmas), maps_lines(p.pid)
        assert got == want
        names = {n for _, n in want}
        assert '[heap]' in names and '[stack]' in names and '[vdso]' in names
        assert str(tmp_path / 'gone') + ' (deleted)' in names
        assert '/memfd:td-memfd (deleted)' in names
    finally:
        finish(p)


def test_many_mappings(backend, tmp_path):
    p = spawn(tmp_path, 20000)
    try:
        raw = backend.raw(wire.DUMP_ONE, p.pid, SHOW)
        msgs = check_messages(raw)
        assert len(msgs) > 1 and all(m[0] == p.pid for m in msgs)
        (task,) = wire.iter_decode(raw)
        assert task.stat is not None
        want = maps_lines(p.pid)
        assert len(want) > 20000
        assert vma_lines(task.vmas) == want
    finally:
        finish(p)


@pytest.mark.parametrize('strategy', [wire.DUMP_ALL, wire.DUMP_ALL_THREAD, wire.DUMP_CHILDREN])
def test_dumps_with_a_big_task(backend, tmp_path, strategy):
    """A task that takes several program runs in the middle of a dump."""
    p = spawn(tmp_path, 20000)
    try:
        pid = os.getpid() if strategy == wire.DUMP_CHILDREN else 0
        raw = backend.raw(strategy, pid, SHOW)
        check_messages(raw)
        tasks = {t.pid: t for t in wire.iter_decode(raw)}
        assert p.pid in tasks
        assert vma_lines(tasks[p.pid].vmas) == maps_lines(p.pid)
        for t in tasks.values():
            if t.pid != t.tgid:
                assert not t.vmas, 'thread %d carries VMAs' % t.pid
    finally:
        finish(p)


def test_threads_and_kernel_threads(backend):
    raw = backend.raw(wire.DUMP_ALL_THREAD, 0, wire.SHOW_BASE | wire.SHOW_VMA)
    check_messages(raw)
    for t in wire.iter_decode(raw):
        if t.pid != t.tgid:
            assert not t.vmas
        elif t.pid == 2 or (t.base and t.base.ppid == 2):
            assert not t.vmas, 'kernel thread %d carries VMAs' % t.pid


def test_thread_dump_of_self(backend):
    raw = backend.raw(wire.DUMP_THREAD, os.getpid(), wire.SHOW_VMA)
    check_messages(raw)
    tasks = list(wire.iter_decode(raw))
    leader = [t for t in tasks if t.pid == os.getpid()]
    assert leader and leader[0].vmas
    assert all(not t.vmas for t in tasks if t.pid != os.getpid())


def test_vma_stat_from_smaps_through_bpf():
    """VMA_STAT through the BPF backend: the programs decide who sees which
    task, each record's statistics come from the task's smaps: the same
    bytes as the /proc backend, for a stopped process."""
    import task_diag
    from task_diag import wire
    p = subprocess.Popen(['sleep', '1000'])
    try:
        os.kill(p.pid, signal.SIGSTOP)
        show = wire.SHOW_BASE | wire.SHOW_VMA | wire.SHOW_VMA_STAT | wire.SHOW_STAT
        for attempt in range(5):        # shared pages' Pss moves as others map them
            got = task_diag.raw(wire.DUMP_ONE, p.pid, show, source='bpf')
            want = task_diag.raw(wire.DUMP_ONE, p.pid, show, source='proc')
            if got == want:
                break
        assert got == want
        (task,) = wire.decode(got)
        assert task.vmas[-1].name == '[vsyscall]'
        assert all(v.stat is not None for v in task.vmas)
        assert sum(v.stat.resident for v in task.vmas) > 0
    finally:
        p.kill()
        p.wait()
