"""What one answer holds in the daemon, however many VMAs a task has.

A process of 60,000 VMAs (an unprivileged user can make one, up to
vm.max_map_count) gives megabytes of records and about 75 MB of smaps
text.  A transaction of /run/task-diag reads its answer 32 KiB at a time;
each of its users may hold 64 at once.  Before, each such read held the
whole task: 116 MB traced for VMA_STAT from smaps, 8 MB for VMA from the
programs.  Now smaps is read and parsed 64 KiB at a time, and a task whose
records from the programs pass JOIN_MAX is read that way too.
"""
import os
import subprocess
import sys
import textwrap
import tracemalloc

import pytest

from task_diag import wire
from task_diag.bpf_backend import JOIN_MAX

from helpers import need

N = 60000
HELD_MAX = JOIN_MAX + (1 << 20)    # the passes held, a few pieces; not the task

CHILD = textwrap.dedent(r'''
    import ctypes, mmap, sys
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    n, page = int(sys.argv[1]), mmap.PAGESIZE   # n VMAs, in pairs
    base = libc.mmap(None, n * page, 3, 0x22, -1, 0)
    for i in range(0, n, 2):
        # every other page read-only: no two neighbours merge
        libc.mprotect(ctypes.c_void_p(base + i * page), page, 1)
        ctypes.memset(base + (i + 1) * page, 1, 1)
    print('ready', flush=True)
    sys.stdin.read()
''')


@pytest.fixture
def backend(vma_backend, vma_stat_source):
    vma_stat_source('smaps')
    return vma_backend


@pytest.fixture(scope='module')
def big():
    """The pid of a process with more than N VMAs."""
    with open('/proc/sys/vm/max_map_count') as f:
        need(int(f.read()) > N + 100, 'vm.max_map_count is below %d' % (N + 100))
    p = subprocess.Popen([sys.executable, '-c', CHILD, str(N)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b'ready\n'
        yield p.pid
    finally:
        p.kill()
        p.wait()


def smaps_ranges(pid):
    out = []
    with open('/proc/%d/smaps' % pid, 'rb') as f:
        for line in f:
            head = line.split(b' ', 1)[0]
            if b'-' in head and not head.endswith(b':'):
                start, end = head.split(b'-')
                out.append((int(start, 16), int(end, 16)))
    return out


@pytest.mark.parametrize('show', [wire.SHOW_BASE | wire.SHOW_VMA,
                                  wire.SHOW_BASE | wire.SHOW_VMA | wire.SHOW_VMA_STAT],
                         ids=['vma', 'vma_stat'])
def test_a_huge_task_is_answered_in_pieces(backend, big, show):
    want = smaps_ranges(big)
    assert len(want) > N
    tracemalloc.start()
    try:
        s = backend.stream(wire.DUMP_ONE, big, show)
        raw = []
        while True:
            piece = s.read(32768)
            if not piece:
                break
            raw.append(piece)
        # what the stream held besides the pieces handed out, which the
        # test keeps: the traced peak minus what is still traced
        _, peak = tracemalloc.get_traced_memory()
        kept = sum(len(p) for p in raw)
    finally:
        tracemalloc.stop()
    assert peak - kept < HELD_MAX, 'held %.1f MiB' % ((peak - kept) / 2**20)
    (task,) = wire.iter_decode(b''.join(raw))
    assert [(v.start, v.end) for v in task.vmas] == want
    if show & wire.SHOW_VMA_STAT:
        # each of the child's N/2 writable pages was touched once, its
        # N/2 read-only ones never: smaps' numbers, VMA by VMA
        page = os.sysconf('SC_PAGE_SIZE')
        one = [v for v in task.vmas if v.end - v.start == page]
        assert sum(1 for v in one if v.vm_flags & wire.VMA_F['WRITE']
                   and v.stat.resident == page) >= N // 2
        assert sum(1 for v in one if not v.vm_flags & wire.VMA_F['WRITE']
                   and v.stat.resident == 0) >= N // 2
    else:
        # more records than JOIN_MAX holds: the task came from /proc
        assert len(task.vmas) * wire.VMA.size > JOIN_MAX
        assert s.tasks_from_proc == 1
