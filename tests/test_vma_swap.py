"""TASK_DIAG_VMA_STAT with swapped pages: every
field of every VMA's statistics against /proc/PID/smaps, for a process
whose memory is partly in swap, through each backend ('bpf', 'proc'),
each VMA_STAT source of the loader ('smaps', 'pagewalk') and the FUSE
file /run/task-diag.

Swap comes from tests/helpers/swap.py (a zram device of our own, else a swap
file; the module is skipped, with the reason, when neither can be had).
The test process (a small C program, built here) maps, in an arena of its
own where no two areas can merge:

  anon        16 MiB private anonymous, all written, 12 MiB paged out;
  shmem       8 MiB MAP_SHARED anonymous (shmem, "/dev/zero (deleted)"),
              all written, 4 MiB paged out;
  memfd_part  4 MiB of an 8 MiB memfd from offset 2 MiB: all read, its
              first 1 MiB paged out, and 2 MiB of the file outside the
              mapping paged out before it was made (through a mapping of
              the whole file, gone since): smaps counts only the swap of
              the mapped range;
  memfd_cow   a 4 MiB memfd mapped private and writable: 256 pages copied
              on write (128 copies paged out: anonymous swap), 256 read,
              and about 256 of the file's own pages paged out (through a
              shared mapping, gone since): smaps counts those where the
              mapping has no page (shmem swap behind pte_none);
  memfd_ro    the same memfd mapped private, read only, untouched: smaps
              counts the swap of the whole object.

It pages out with MADV_PAGEOUT, then stops itself (SIGSTOP); nothing in
it moves while it is compared.  Pages MADV_PAGEOUT left in memory are
paged out again from here (process_madvise) a few times; the setup fails,
with the numbers, when smaps shows no swap in one of these areas.
"""
import ctypes
import os
import select
import signal
import subprocess
import time

import pytest

import task_diag
from task_diag import wire

from helpers import BuildError, build_c
from helpers.front import request, transact
from helpers.vma import as_maps, read_smaps

SHOW = task_diag.SHOW_BASE | task_diag.SHOW_VMA | task_diag.SHOW_VMA_STAT
HERE = os.path.dirname(os.path.abspath(__file__))   # tests/arena.h, for the C below
PG = 4096
MiB = 1 << 20
MADV_PAGEOUT = 21
SYS_PROCESS_MADVISE = 440           # the same number on every architecture
TRIES = 5

# task_diag_vma_stat field -> smaps line (kB); pss apart
FIELDS = (('resident', 'Rss'), ('shared_clean', 'Shared_Clean'),
          ('shared_dirty', 'Shared_Dirty'), ('private_clean', 'Private_Clean'),
          ('private_dirty', 'Private_Dirty'), ('referenced', 'Referenced'),
          ('anonymous', 'Anonymous'), ('anonymous_thp', 'AnonHugePages'), ('swap', 'Swap'))

CHILD_C = r'''#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#include "arena.h"

/* written all over, not one value (zram keeps same-filled pages apart) */
static void fill(char *p, size_t first, size_t n)
{
	for (size_t i = first; i < first + n; i++)
		for (size_t j = 0; j < PG; j += 512)
			p[i * PG + j] = (char)(i * 7 + j / 512 + 1);
}

static void readp(char *p, size_t first, size_t n)
{
	volatile char sink;
	for (size_t i = first; i < first + n; i++)
		sink = p[i * PG];
	(void)sink;
}

static void pageout(char *p, size_t first, size_t n)
{
	if (madvise(p + first * PG, n * PG, MADV_PAGEOUT))
		die("madvise(MADV_PAGEOUT)");
}

static int memfd(const char *name, size_t pages)
{
	int fd = memfd_create(name, 0);
	if (fd < 0 || ftruncate(fd, pages * PG))
		die("memfd");
	return fd;
}

static char *whole(int fd, size_t pages)
{
	char *p = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap memfd");
	return p;
}

static void report(const char *label, char *p, size_t pages)
{
	printf("%s %lx %lx\n", label, (unsigned long)p, (unsigned long)(p + pages * PG));
}

int main(void)
{
	char *a, *b, *c, *d, *e, *t;
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);	/* the test gone, so are we */
	if (getppid() == 1)
		return 1;
	arena_open();

	/* anon: 16 MiB private anonymous, all written, 12 MiB paged out */
	a = place(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(a, 4096 * PG, MADV_NOHUGEPAGE);		/* 4 KiB pages, whatever THP says */
	fill(a, 0, 4096);
	pageout(a, 0, 3072);
	/* shmem: 8 MiB shared anonymous, all written, 4 MiB paged out */
	b = place(2048, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	fill(b, 0, 2048);
	pageout(b, 0, 1024);
	/* memfd_part: pages 512-1535 of a 2048-page memfd; pages 0-255 and
	 * 1792-2047 paged out through a whole mapping, then 512-767 through ours */
	fd = memfd("td-swap-partial", 2048);
	t = whole(fd, 2048);
	fill(t, 0, 2048);
	pageout(t, 0, 256);
	pageout(t, 1792, 256);
	munmap(t, 2048 * PG);
	c = place(1024, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 512 * PG);
	readp(c, 0, 1024);
	pageout(c, 0, 256);
	close(fd);
	/* memfd_cow: a 1024-page memfd, private: pages 0-255 copied on write
	 * (0-127 paged out), 256-511 read; the file's pages 512-767 paged out
	 * through a shared mapping (those that fault-around did not map here) */
	fd = memfd("td-swap-cow", 1024);
	t = whole(fd, 1024);
	fill(t, 0, 1024);
	d = place(1024, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	fill(d, 0, 256);
	readp(d, 256, 256);
	pageout(d, 0, 128);
	pageout(t, 512, 256);
	munmap(t, 1024 * PG);
	/* memfd_ro: the same memfd, private, read only, untouched */
	e = place(1024, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	munmap(cursor, arena + arena_size - cursor);

	report("anon", a, 4096);
	report("shmem", b, 2048);
	report("memfd_part", c, 1024);
	report("memfd_cow", d, 1024);
	report("memfd_ro", e, 1024);
	printf("ready\n");
	fflush(stdout);
	raise(SIGSTOP);
	for (;;)
		pause();
}
'''

# What paging out from here may still push to swap, per area: (offset,
# length) in the area, and when the area is done (smaps fields in kB).
# memfd_ro has nothing to page out (its swap is the file's).
GOALS = {
    'anon': ((0, 12 * MiB), lambda f: f['Swap'] == 12 * 1024),
    'shmem': ((0, 4 * MiB), lambda f: f['Swap'] == 4 * 1024),
    'memfd_part': ((0, 1 * MiB), lambda f: f['Swap'] == 1024),
    'memfd_cow': ((0, 128 * PG), lambda f: f['Anonymous'] == 128 * 4),
    'memfd_ro': (None, lambda f: True),
}


# --- the test process ------------------------------------------------------------

class Iovec(ctypes.Structure):
    _fields_ = [('iov_base', ctypes.c_void_p), ('iov_len', ctypes.c_size_t)]


_libc = ctypes.CDLL(None, use_errno=True)


def process_pageout(pid, ranges):
    """MADV_PAGEOUT over @ranges [(start, end)] of process @pid, from here."""
    pidfd = os.pidfd_open(pid)
    try:
        iov = (Iovec * len(ranges))(*(Iovec(s, e - s) for s, e in ranges))
        r = _libc.syscall(ctypes.c_long(SYS_PROCESS_MADVISE), ctypes.c_long(pidfd), iov,
                          ctypes.c_size_t(len(ranges)), ctypes.c_long(MADV_PAGEOUT),
                          ctypes.c_long(0))
        if r < 0:
            err = ctypes.get_errno()
            raise OSError(err, 'process_madvise(MADV_PAGEOUT): ' + os.strerror(err))
    finally:
        os.close(pidfd)


def wait_stopped(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            data = f.read()
        if data[data.rindex(b')') + 2:].split()[0] == b'T':
            return
        if time.monotonic() > deadline:
            raise AssertionError('process %d did not stop' % pid)
        time.sleep(0.01)


def read_lines(p, timeout=60):
    """The child's lines up to "ready"."""
    fd, buf, deadline = p.stdout.fileno(), b'', time.monotonic() + timeout
    while b'ready\n' not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError('the test process is not ready: %r' % buf)
        chunk = os.read(fd, 4096)
        if not chunk:
            raise AssertionError('the test process failed (%r): %r' % (p.wait(), buf))
        buf += chunk
    return buf.split(b'ready\n')[0].decode().splitlines()


class Swapped:
    """The stopped test process: pid, areas {label: (start, end)}."""

    def __init__(self, pid, areas):
        self.pid, self.areas = pid, areas
        self.labels = {start: label for label, (start, _) in areas.items()}

    def blocks(self, smaps=None):
        """{label: smaps fields} of the areas."""
        by_start = {h[0]: (h, f) for h, f, _ in (smaps or read_smaps(self.pid))}
        out = {}
        for label, (start, end) in self.areas.items():
            assert start in by_start, '%s: no VMA at %#x' % (label, start)
            h, f = by_start[start]
            assert h[1] == end, '%s: VMA %#x-%#x, expected to end at %#x' % (label, start,
                                                                             h[1], end)
            out[label] = f
        return out

    def label(self, header):
        return self.labels.get(header[0]) or '%#x-%#x %s' % (header[0], header[1], header[6])


def table(blocks):
    return '\n'.join('  %-10s Rss %6d kB  Swap %6d kB  SwapPss %6d kB  Anonymous %6d kB'
                     % (label, f['Rss'], f['Swap'], f.get('SwapPss', -1), f['Anonymous'])
                     for label, f in blocks.items())


@pytest.fixture(scope='module')
def child_exe(tmp_path_factory):
    d = tmp_path_factory.mktemp('vmaswap')
    src, exe = str(d / 'swapchild.c'), str(d / 'swapchild')
    with open(src, 'w') as f:
        f.write(CHILD_C)
    # static where it links: no shared library whose Pss moves as other
    # processes map and unmap it
    flags = ('-O1', '-Wall', '-Werror', '-I', HERE)
    try:
        return build_c(src, exe, *flags, '-static')
    except BuildError:
        return build_c(src, exe, *flags)


@pytest.fixture(scope='module')
def swapped(swap, child_exe):  # noqa: F811 (the fixture imported above)
    """The test process, stopped, with pages in swap in each area."""
    p = subprocess.Popen([child_exe], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        areas = {}
        for line in read_lines(p):
            label, start, end = line.split()
            areas[label] = (int(start, 16), int(end, 16))
        assert sorted(areas) == sorted(GOALS), areas
        wait_stopped(p.pid)
        proc = Swapped(p.pid, areas)
        for attempt in range(TRIES):
            blocks = proc.blocks()
            left = [label for label, (_, done) in GOALS.items() if not done(blocks[label])]
            if not left:
                break
            ranges = [(areas[label][0] + off, areas[label][0] + off + size)
                      for label in left if GOALS[label][0]
                      for off, size in [GOALS[label][0]]]
            if ranges:
                process_pageout(p.pid, ranges)
            time.sleep(0.1 * (attempt + 1))
        blocks = proc.blocks()
        empty = [label for label, f in blocks.items() if f['Swap'] == 0]
        if empty:
            pytest.fail('setup failed: smaps shows no swap in %s after %d tries '
                        '(swap: %s)\n%s' % (', '.join(empty), TRIES, swap.describe(),
                                            table(blocks)), pytrace=False)
        proc.setup = table(blocks)
        yield proc
    finally:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        p.stdout.close()


# --- the loader's VMA_STAT source ---------------------------------------------------

@pytest.fixture(params=['smaps', 'pagewalk'])
def stat_source(request, vma_stat_source):
    """Where the BPF backend takes VMA_STAT from: 'smaps' (the task's
    /proc/PID/smaps) or 'pagewalk' (a page-table walk in BPF); conftest's
    vma_stat_source sets it (task-diag-load --vma-stat) and sets smaps back."""
    vma_stat_source(request.param)
    return request.param


# --- the comparison -------------------------------------------------------------------

def differences(proc, vmas, smaps, exact_pss):
    """Every way @vmas (wire.Vma) differ from @smaps, as readable lines."""
    if vmas is None:
        return ['no VMA attribute']
    if len(vmas) != len(smaps):
        return ['%d VMAs, smaps has %d' % (len(vmas), len(smaps))]
    out = []
    for v, (h, f, lines) in zip(vmas, smaps):
        if as_maps(v) != h:
            out.append('VMA %r, smaps %r' % (as_maps(v), lines[0]))
            continue
        label = proc.label(h)
        if v.stat is None:
            out.append('%s: no stat' % label)
            continue
        for field, key in FIELDS:
            got, want = getattr(v.stat, field), f[key] << 10
            if got != want:
                out.append('%s: %s %d (%d kB), smaps %s %d kB'
                           % (label, field, got, got >> 10, key, f[key]))
        # pss is bytes << 12; smaps prints pss >> 22 in kB
        if (v.stat.pss != f['Pss'] << 22) if exact_pss else (v.stat.pss >> 22 != f['Pss']):
            out.append('%s: pss %d (%d kB), smaps Pss %d kB'
                       % (label, v.stat.pss, v.stat.pss >> 22, f['Pss']))
    return out


def agree(proc, get_vmas, exact_pss):
    """get_vmas() against smaps read right before and right after it;
    retried while smaps moves between the two reads (the Pss of the libc
    pages it shares follows other processes even while it is stopped) or
    the two differ.  Returns the VMAs."""
    for attempt in range(TRIES):
        before = read_smaps(proc.pid)
        vmas = get_vmas()
        after = read_smaps(proc.pid)
        if before != after:
            why = ['smaps changed between the reads before and after']
        else:
            why = differences(proc, vmas, before, exact_pss)
            if not why:
                return vmas
        time.sleep(0.05 * (attempt + 1))
    raise AssertionError('VMA_STAT differs from smaps (setup:\n%s)\n%s'
                         % (proc.setup, '\n'.join(why)))


def swap_of(proc, vmas):
    return {proc.labels[v.start]: v.stat.swap for v in vmas if v.start in proc.labels}


def dump_vmas(pid, source):
    tasks = list(task_diag.dump(task_diag.DUMP_ONE, pid, show=SHOW, source=source))
    assert [t.pid for t in tasks] == [pid]
    assert tasks[0].base is not None
    return tasks[0].vmas


# --- the tests ---------------------------------------------------------------------------

def test_setup_is_what_it_says(swapped):
    """What the areas must show by how they were made (so that the
    comparisons below compare something)."""
    b = swapped.blocks()
    assert b['anon']['Swap'] > 0 and b['anon']['Rss'] + b['anon']['Swap'] == 16 * 1024
    assert b['anon']['SwapPss'] == b['anon']['Swap']
    assert b['shmem']['Swap'] > 0 and b['shmem']['Rss'] + b['shmem']['Swap'] == 8 * 1024
    assert b['memfd_part']['Swap'] > 0 and b['memfd_part']['Swap'] <= 1024
    assert b['memfd_part']['Rss'] + b['memfd_part']['Swap'] == 4 * 1024
    # the copies' swap and the file's swap behind the pages it has not mapped
    assert b['memfd_cow']['Swap'] > b['memfd_cow']['SwapPss'] > 0
    assert b['memfd_ro']['Rss'] == 0 and b['memfd_ro']['Swap'] > 0


def test_vma_stat_equals_smaps(swapped, source, stat_source):
    """Every field of every VMA's task_diag_vma_stat is its smaps line in
    bytes (pss: bytes << 12, all the precision smaps has for the sources
    that read it, the kB for the page walk), swap included, for the areas
    in swap and every other VMA of the process."""
    exact_pss = source == 'proc' or stat_source == 'smaps'
    vmas = agree(swapped, lambda: dump_vmas(swapped.pid, source), exact_pss)
    in_swap = swap_of(swapped, vmas)
    assert sorted(in_swap) == sorted(GOALS) and all(in_swap.values()), in_swap


def test_vma_stat_through_run_task_diag(swapped, front, stat_source):
    """The same through the transactional file /run/task-diag (raw write()
    and read() of the protocol, tests/helpers/front.py)."""
    fd = os.open(front, os.O_RDWR)
    try:
        def get():
            _, tasks = transact(fd, request(wire.DUMP_ONE, swapped.pid, SHOW, 41))
            assert [t.pid for t in tasks] == [swapped.pid]
            return tasks[0].vmas
        vmas = agree(swapped, get, stat_source == 'smaps')
    finally:
        os.close(fd)
    in_swap = swap_of(swapped, vmas)
    assert sorted(in_swap) == sorted(GOALS) and all(in_swap.values()), in_swap
