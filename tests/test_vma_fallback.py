"""TASK_DIAG_VMA and TASK_DIAG_VMA_STAT against /proc/PID/maps and
/proc/PID/smaps, for every source in SOURCES, on processes this module
builds (a small C helper) and stops with SIGSTOP before comparing:

  zoo       anonymous memory touched in part; private file mappings with
            copy-on-write pages; a file mapped at 5 GiB; shared file
            mappings (one of a read-only descriptor); shared anonymous
            memory shared with a forked child; a deleted file; a memfd;
            names with spaces and a newline; PROT_NONE guard pages and
            guard regions; THP by madvise; one area per vm_flag that
            madvise, mlock and mmap can set; two extra threads;
  zoo-child the zoo's child, sharing part of its memory;
  many      20,000 mappings (alternating protections, every tenth a file
            with a long name), whose VMAs need many CONT messages.

The /proc readers here are the test's own, not task_diag.procfs'.  Every
process started is killed by pid at the end of the module.
"""
import errno
import io
import os
import signal
import struct
import subprocess
import time

import pytest

import task_diag
from task_diag import maps_cli, wire
from task_diag.procfs import maps as fb_maps

from helpers import build_c
from helpers.vma import as_maps, read_maps, read_smaps

# The sources under test: adding a backend is adding its name here.
# 'bpf' takes VMA_STAT from smaps, 'pagewalk' from the BPF page walk.
HERE = os.path.dirname(os.path.abspath(__file__))   # tests/arena.h, for the C below
SOURCES = ['proc', 'bpf', 'pagewalk']

MSG_MAX = 32768
VMA, VMA_STAT = wire.SHOW_VMA, wire.SHOW_VMA_STAT
BASE, CRED, STAT = wire.SHOW_BASE, wire.SHOW_CRED, wire.SHOW_STAT
ALL_GROUPS = BASE | CRED | VMA | VMA_STAT | STAT
CONT = wire.TASK_DIAG_FLAG_CONT
PF_KTHREAD = 0x00200000
MANY = 20000

# VmFlags mnemonic -> bit number, written out from the spec's table (not
# taken from wire or task_diag.procfs).
SPEC_BITS = {
    'rd': 0, 'wr': 1, 'ex': 2, 'sh': 3, 'mr': 4, 'mw': 5, 'me': 6, 'ms': 7,
    'gd': 8, 'pf': 9, 'dw': 10, 'mp': 11, 'lo': 12, 'io': 13, 'sr': 14, 'rr': 15,
    'dc': 16, 'de': 17, 'ac': 18, 'nr': 19, 'ht': 20, 'ar': 21, 'dd': 22, 'sd': 23,
    'mm': 24, 'hg': 25, 'nh': 26, 'mg': 27,
}
F = {name: 1 << bit for name, bit in (
    ('READ', 0), ('WRITE', 1), ('EXEC', 2), ('SHARED', 3), ('MAYREAD', 4), ('MAYWRITE', 5),
    ('MAYEXEC', 6), ('MAYSHARE', 7), ('GROWSDOWN', 8), ('PFNMAP', 9), ('LOCKED', 12),
    ('IO', 13), ('SEQ_READ', 14), ('RAND_READ', 15), ('DONTCOPY', 16), ('DONTEXPAND', 17),
    ('ACCOUNT', 18), ('NORESERVE', 19), ('DONTDUMP', 22), ('HUGEPAGE', 25),
    ('NOHUGEPAGE', 26), ('MERGEABLE', 27))}
STAT_LINES = ('Rss', 'Shared_Clean', 'Shared_Dirty', 'Private_Clean', 'Private_Dirty',
              'Referenced', 'Anonymous', 'AnonHugePages', 'Swap')


@pytest.fixture(params=SOURCES)
def source(request):
    """The task_diag.dump() source for the param, with VMA_STAT's source set."""
    if request.param == 'proc':
        return 'proc'
    switch = request.getfixturevalue('vma_stat_source')    # conftest: loads BPF
    switch('pagewalk' if request.param == 'pagewalk' else 'smaps')
    return 'bpf'


# The helper: `vmazoo zoo DIR` and `vmazoo many DIR N` build the processes,
# print their pids and wait.
VMAZOO_C = r'''#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

#include "arena.h"

static char *map(size_t pages, int prot, int flags, int fd, off_t off)
{
	char *p = mmap(NULL, pages * PG, prot, flags, fd, off);
	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static int make_file(const char *dir, const char *name, size_t pages)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die(path);
	for (size_t i = 0; i < pages; i++) {
		char buf[PG];
		memset(buf, 'a' + i % 26, sizeof(buf));
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			die("write");
	}
	return fd;
}

static void touch(char *p, size_t first, size_t n, int write)
{
	volatile char sink;
	for (size_t i = first; i < first + n; i++) {
		if (write)
			p[i * PG] = 1;
		else
			sink = p[i * PG];
	}
	(void)sink;
}

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void arena_align(size_t bytes)
{
	char *next = (char *)(((uintptr_t)cursor + bytes - 1) & ~(bytes - 1));
	if (next != cursor)
		munmap(cursor, next - cursor);
	cursor = next;
}

static void arena_close(void)
{
	munmap(cursor, arena + arena_size - cursor);
}

static __attribute__((noreturn)) void zoo(const char *dir)
{
	int sync[2], fd;
	char *anon, *cow, *shf, *shanon, *del, *mfd, *thp, *sp;
	pid_t child;
	pthread_t t1, t2;

	arena_open();
	/* anonymous, touched in part: written, read (zero page), untouched */
	anon = place(64, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	touch(anon, 0, 10, 1);
	touch(anon, 20, 5, 0);
	/* private file mapping: read all, copy-on-write some */
	fd = make_file(dir, "private file", 16);
	cow = place(16, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	touch(cow, 0, 16, 0);
	touch(cow, 0, 4, 1);
	close(fd);
	/* the same file at an offset, read only */
	fd = make_file(dir, "offset file", 32);
	touch(place(8, PROT_READ, MAP_PRIVATE, fd, 12 * PG), 0, 3, 0);
	close(fd);
	/* a sparse file mapped at 5 GiB: an offset of more than 8 hex digits */
	fd = make_file(dir, "sparse file", 0);
	if (ftruncate(fd, (5L << 30) + 2 * PG))
		die("ftruncate");
	touch(place(2, PROT_READ, MAP_SHARED, fd, 5L << 30), 0, 1, 0);
	close(fd);
	/* shared file mapping: dirty and clean pages, shared with the child */
	fd = make_file(dir, "shared file", 8);
	shf = place(8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	touch(shf, 0, 3, 1);
	touch(shf, 3, 3, 0);
	close(fd);
	/* shared file mapping of a read-only descriptor: MAYSHARE, not SHARED */
	{
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, "name with  spaces (x)");
		close(make_file(dir, "name with  spaces (x)", 2));
		fd = open(path, O_RDONLY);
		sp = place(2, PROT_READ, MAP_SHARED, fd, 0);
		touch(sp, 0, 1, 0);
		close(fd);
	}
	/* a name /proc escapes */
	close(make_file(dir, "new\nline", 1));
	{
		char path[4096];
		snprintf(path, sizeof(path), "%s/new\nline", dir);
		fd = open(path, O_RDONLY);
		touch(place(1, PROT_READ, MAP_PRIVATE, fd, 0), 0, 1, 0);
		close(fd);
	}
	/* shared anonymous memory, shared with the child below */
	shanon = place(16, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	touch(shanon, 0, 8, 1);
	/* a deleted file */
	fd = make_file(dir, "deleted file", 4);
	del = place(4, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	touch(del, 1, 2, 1);
	close(fd);
	{
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, "deleted file");
		unlink(path);
	}
	/* a memfd */
	fd = memfd_create("td-memfd", 0);
	if (fd < 0 || ftruncate(fd, 4 * PG))
		die("memfd");
	mfd = place(4, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	touch(mfd, 0, 2, 1);
	close(fd);
	/* guard pages: PROT_NONE between two writable areas */
	anon = place(12, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	touch(anon, 0, 12, 1);
	if (mprotect(anon + 4 * PG, 4 * PG, PROT_NONE))
		die("mprotect");
	/* guard regions (6.13+), where the kernel has them */
	anon = place(8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	touch(anon, 0, 8, 1);
	madvise(anon + 2 * PG, 2 * PG, MADV_GUARD_INSTALL);
	/* THP: 4 MiB at a 2 MiB boundary, MADV_HUGEPAGE, all touched */
	arena_align(2UL << 20);
	thp = place(1024, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(thp, 4UL << 20, MADV_HUGEPAGE);
	touch(thp, 0, 1024, 1);
	/* vm_flags: each its own area */
	anon = place(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mlock(anon, 2 * PG))
		die("mlock");
	touch(place(4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0),
	      3, 1, 1);
	anon = place(2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(anon, 2 * PG, MADV_DONTDUMP);
	anon = place(2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(anon, 2 * PG, MADV_DONTFORK);
	touch(anon, 0, 1, 1);
	anon = place(2, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(anon, 2 * PG, MADV_RANDOM);
	anon = place(2, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(anon, 2 * PG, MADV_SEQUENTIAL);
	place(2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	anon = place(2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(anon, 2 * PG, MADV_NOHUGEPAGE);
	anon = place(2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(anon, 2 * PG, MADV_MERGEABLE);
	anon = place(2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(anon, 2 * PG, MADV_WIPEONFORK);
	anon = place(2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, anon, 2 * PG, "td anon name");
	/* /dev/zero, private */
	fd = open("/dev/zero", O_RDONLY);
	touch(place(3, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), 0, 1, 1);
	close(fd);

	arena_close();

	if (pipe(sync))
		die("pipe");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(1);
		touch(shanon, 4, 8, 1);		/* pages 4-7 shared, 8-11 the child's */
		touch(cow, 0, 1, 1);		/* its own copy: the parent's is private again */
		touch(shf, 0, 5, 0);
		touch(mfd, 1, 1, 0);
		if (write(sync[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	{
		char c;
		if (read(sync[0], &c, 1) != 1)
			die("child");
	}
	if (pthread_create(&t1, NULL, idle, NULL) || pthread_create(&t2, NULL, idle, NULL))
		die("pthread_create");
	printf("%d %d\n", (int)getpid(), (int)child);
	fflush(stdout);
	for (;;)
		pause();
}

/* N one-page areas, alternately read-only and read-write (so they do not
 * merge), every third touched; every tenth a page of a file with a long
 * name. */
static __attribute__((noreturn)) void many(const char *dir, long n)
{
	char name[256];
	char *base;
	int fd;

	memset(name, 'n', 200);
	strcpy(name + 200, "-long-name");
	fd = make_file(dir, name, 1);
	base = map(n, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (long i = 0; i < n; i++) {
		if (i % 10 == 5) {
			if (mmap(base + i * PG, PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0)
			    == MAP_FAILED)
				die("mmap file");
			continue;
		}
		if (i % 2 && mprotect(base + i * PG, PG, PROT_READ | PROT_WRITE))
			die("mprotect");
		if (i % 3 == 0)
			touch(base + i * PG, 0, 1, i % 2);
	}
	printf("%d\n", (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "zoo"))
		zoo(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "many"))
		many(argv[2], atol(argv[3]));
	fprintf(stderr, "usage: vmazoo zoo DIR | many DIR N\n");
	return 2;
}
'''


# --- the test processes ---------------------------------------------------

def wait_stopped(pid, timeout=10):
    """Until every thread of @pid is in state T."""
    deadline = time.monotonic() + timeout
    while True:
        states = set()
        for tid in os.listdir('/proc/%d/task' % pid):
            with open('/proc/%d/task/%s/stat' % (pid, tid), 'rb') as f:
                data = f.read()
            states.add(data[data.rindex(b')') + 2:].split()[0])
        if states == {b'T'}:
            return
        if time.monotonic() > deadline:
            raise AssertionError('process %d not stopped: %r' % (pid, states))
        time.sleep(0.01)


def kill_and_reap(pids, popen):
    """SIGKILL each of @pids, reap our child @popen, and wait until the
    others (grandchildren, reaped by whoever adopts them) are gone."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    popen.wait()
    deadline = time.monotonic() + 10
    for pid in pids:
        while os.path.exists('/proc/%d' % pid) and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)     # ours if we are a subreaper
            except ChildProcessError:
                pass
            time.sleep(0.01)


class Helper:
    def __init__(self, exe, directory):
        self.exe, self.dir = exe, directory

    def start(self, *args):
        """Runs the helper, reads the pids it reports, stops them all,
        and writes back dirty file pages (so that writeback cannot turn
        Shared_Dirty into Shared_Clean under the test).  Returns
        (popen, pids)."""
        p = subprocess.Popen([self.exe] + list(args), stdout=subprocess.PIPE)
        pids = []
        try:
            line = p.stdout.readline()
            assert line, 'vmazoo %s failed' % ' '.join(args)
            pids = [int(x) for x in line.split()]
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            for pid in pids:
                wait_stopped(pid)
            os.sync()
        except BaseException:
            kill_and_reap(pids or [p.pid], p)
            raise
        return p, pids


@pytest.fixture(scope='module')
def helper(tmp_path_factory):
    d = tmp_path_factory.mktemp('vmazoo')
    src, exe = str(d / 'vmazoo.c'), str(d / 'vmazoo')
    with open(src, 'w') as f:
        f.write(VMAZOO_C)
    build_c(src, exe, '-O1', '-Wall', '-Werror', '-pthread', '-I', HERE)
    return Helper(exe, str(d))


class Zoo:
    def __init__(self, pid, child, directory):
        self.pid, self.child, self.dir = pid, child, directory
        self.tids = sorted(int(t) for t in os.listdir('/proc/%d/task' % pid))


@pytest.fixture(scope='module')
def zoo(helper):
    d = os.path.join(helper.dir, 'zoo')
    os.mkdir(d)
    p, (pid, child) = helper.start('zoo', d)
    try:
        yield Zoo(pid, child, d)
    finally:
        kill_and_reap([child, pid], p)


@pytest.fixture(scope='module')
def many(helper):
    d = os.path.join(helper.dir, 'many')
    os.mkdir(d)
    p, (pid,) = helper.start('many', d, str(MANY))
    try:
        yield pid
    finally:
        kill_and_reap([pid], p)


@pytest.fixture(scope='module')
def stopped(zoo, many):
    """{label: pid} of the stopped processes."""
    return {'zoo': zoo.pid, 'zoo-child': zoo.child, 'many': many}


LABELS = ['zoo', 'zoo-child', 'many']


# --- /proc as this test reads it -------------------------------------------

def dump_one(pid, show, source):
    tasks = list(task_diag.dump(wire.DUMP_ONE, pid, show=show, source=source))
    assert [t.pid for t in tasks] == [pid]
    return tasks[0]


def agree(pid, read, action, check, tries=5):
    """check(read(pid), action()), which asserts.  Retried: even while @pid
    is stopped, the Pss of the pages it shares (libc's) follows processes
    that start and exit elsewhere.  A difference that lasts through @tries
    attempts fails."""
    for attempt in range(tries):
        want = read(pid)
        got = action()
        try:
            return check(want, got)
        except AssertionError:
            if attempt == tries - 1:
                raise
        time.sleep(0.05)


def thp_mode():
    try:
        with open('/sys/kernel/mm/transparent_hugepage/enabled') as f:
            return f.read().split('[')[1].split(']')[0]
    except (OSError, IndexError):
        return 'never'


# --- the processes are what the tests think they are ------------------------

def test_processes_have_every_case(zoo, many):
    """Seen through /proc (else the rest proves little)."""
    smaps = read_smaps(zoo.pid)
    by_name = {h[7]: (h, f) for h, f, _ in smaps if h[7] is not None}
    d = zoo.dir.encode()
    for name in (b'/memfd:td-memfd (deleted)', d + b'/deleted file (deleted)',
                 b'/dev/zero (deleted)', d + b'/new\\012line', d + b'/name with  spaces (x)',
                 d + b'/private file', d + b'/shared file', d + b'/offset file',
                 d + b'/sparse file', b'[heap]', b'[stack]', b'[vdso]'):
        assert name in by_name, name
    h, f = by_name[d + b'/private file']                   # copies shared with the child
    assert f['Private_Dirty'] > 0 and f['Shared_Dirty'] > 0 and f['Anonymous'] > 0
    assert by_name[d + b'/offset file'][1]['Private_Clean'] > 0
    h, f = by_name[b'/dev/zero (deleted)']                  # shared with the child
    assert h[2] == 'rw-s' and f['Shared_Dirty'] > 0 and f['Pss'] < f['Rss']
    h, f = by_name[d + b'/name with  spaces (x)']
    assert h[2] == 'r--s' and 'sh' not in f['VmFlags'] and 'ms' in f['VmFlags']
    assert by_name[d + b'/offset file'][0][3] == 12 * 4096
    assert by_name[d + b'/sparse file'][0][3] == 5 << 30
    assert any(h[2] == '---p' for h, _, _ in smaps)            # guard pages
    codes = {c for _, f, _ in smaps for c in f['VmFlags']}
    assert {'lo', 'gd', 'dd', 'dc', 'rr', 'sr', 'nr', 'hg', 'nh', 'mg', 'pf', 'io', 'de',
            'ac', 'sh', 'ms'} <= codes, codes
    if thp_mode() in ('always', 'madvise'):
        assert any(f['AnonHugePages'] > 0 and 'hg' in f['VmFlags'] for _, f, _ in smaps)
    assert len(zoo.tids) == 3
    assert len(read_maps(many)) > MANY


# --- records against maps and smaps -----------------------------------------

@pytest.mark.parametrize('label', LABELS)
def test_records_equal_maps(stopped, source, label):
    """Every record, in order, is the same line of /proc/PID/maps: start,
    end, perms, offset, device, inode and name."""
    pid = stopped[label]

    def check(want, task):
        got = [as_maps(v) for v in task.vmas]
        assert len(got) == len(want)
        for i, (g, w) in enumerate(zip(got, want)):
            assert g == w, 'line %d' % i
        assert all(v.stat is None for v in task.vmas)
        if source == 'proc':
            assert all(v.generation == 0 for v in task.vmas)
    agree(pid, read_maps, lambda: dump_one(pid, VMA, source), check)


@pytest.mark.parametrize('label', LABELS)
def test_vm_flags_equal_smaps(stopped, source, label):
    """vm_flags: exactly the VmFlags of smaps that have a bit in the spec."""
    pid = stopped[label]

    def check(smaps, task):
        assert len(task.vmas) == len(smaps)
        for v, (h, f, _) in zip(task.vmas, smaps):
            want = 0
            for code in f['VmFlags']:
                want |= 1 << SPEC_BITS[code] if code in SPEC_BITS else 0
            assert (v.start, v.vm_flags) == (h[0], want), (h, f['VmFlags'])
    agree(pid, read_smaps, lambda: dump_one(pid, VMA, source), check)


def test_vm_flags_known_answers(zoo, source):
    """Flags the zoo's areas must have, by how they were made."""
    vmas = {v.name: v for v in dump_one(zoo.pid, VMA, source).vmas}
    d = zoo.dir
    rw_shared = F['READ'] | F['WRITE'] | F['SHARED'] | F['MAYREAD'] | F['MAYWRITE'] | \
        F['MAYEXEC'] | F['MAYSHARE']
    assert vmas[d + '/shared file'].vm_flags == rw_shared
    assert vmas['/memfd:td-memfd (deleted)'].vm_flags == rw_shared
    # a read-only descriptor: may share, but neither shares nor may write
    assert vmas[d + '/name with  spaces (x)'].vm_flags == \
        F['READ'] | F['MAYREAD'] | F['MAYEXEC'] | F['MAYSHARE']
    assert vmas[d + '/private file'].vm_flags == \
        F['READ'] | F['WRITE'] | F['MAYREAD'] | F['MAYWRITE'] | F['MAYEXEC'] | F['ACCOUNT']
    assert vmas['[stack]'].vm_flags & F['GROWSDOWN']
    vvar = vmas['[vvar]'].vm_flags
    assert vvar & F['PFNMAP'] and vvar & F['IO'] and vvar & F['DONTDUMP'] and \
        not vvar & F['WRITE']
    anon = [v.vm_flags for v in dump_one(zoo.pid, VMA, source).vmas if v.name is None]
    for name in ('LOCKED', 'GROWSDOWN', 'DONTDUMP', 'DONTCOPY', 'RAND_READ', 'SEQ_READ',
                 'NOHUGEPAGE', 'MERGEABLE', 'HUGEPAGE'):
        assert any(fl & F[name] for fl in anon), name
    assert any(fl & F['NORESERVE'] and not fl & F['ACCOUNT'] for fl in anon)
    assert any(not fl & (F['READ'] | F['WRITE'] | F['EXEC']) for fl in anon)      # PROT_NONE


@pytest.mark.parametrize('label', LABELS)
def test_vma_stat_equals_smaps(stopped, source, label):
    """Every task_diag_vma_stat field is the smaps line, in bytes; pss is
    bytes << 12, of which smaps shows the kB."""
    pid = stopped[label]

    def check(smaps, task):
        assert len(task.vmas) == len(smaps)
        for v, (h, f, _) in zip(task.vmas, smaps):
            assert as_maps(v) == h
            s = v.stat
            got = [s.resident, s.shared_clean, s.shared_dirty, s.private_clean,
                   s.private_dirty, s.referenced, s.anonymous, s.anonymous_thp, s.swap]
            assert got == [f[k] << 10 for k in STAT_LINES], h
            assert s.pss >> 22 == f['Pss'], h
            if source == 'proc':            # all the precision smaps has
                assert s.pss == f['Pss'] << 22, h
    agree(pid, read_smaps, lambda: dump_one(pid, VMA | VMA_STAT, source), check)


def test_zoo_stat_values(zoo, source):
    """Some values that follow from what the zoo did, not only from smaps."""
    task = dump_one(zoo.pid, VMA | VMA_STAT, source)
    vmas = {v.name: v for v in task.vmas}
    st = vmas['/dev/zero (deleted)'].stat             # pages 0-7 ours, 4-7 shared
    assert st.resident == 8 * 4096 and st.shared_dirty == 4 * 4096
    assert st.pss >> 12 == 6 * 4096                    # 4 pages + 4 halves
    # 16 pages read, 4 copied on write before the fork, 1 of them copied
    # again by the child
    st = vmas[zoo.dir + '/private file'].stat
    assert (st.resident, st.anonymous, st.private_dirty, st.shared_dirty, st.shared_clean) == \
        (16 * 4096, 4 * 4096, 4096, 3 * 4096, 12 * 4096)
    st = vmas[zoo.dir + '/offset file'].stat    # 3 pages read (more by fault-around), ours
    assert st.resident >= 3 * 4096 and st.private_clean == st.resident
    assert st.pss == st.resident << 12
    if thp_mode() in ('always', 'madvise'):
        assert any(v.stat.anonymous_thp == 4 << 20 and v.vm_flags & F['HUGEPAGE']
                   for v in task.vmas)


# --- the records on the wire -----------------------------------------------

def messages(buf):
    """(pid, tgid, flags, [(nla_type, payload)], nlmsg_len) of each message,
    read with plain struct."""
    out, off = [], 0
    while off < len(buf):
        length, mtype, mflags, _seq, _port, pid, tgid, flags = \
            struct.unpack_from('<IHHIIIII', buf, off)
        assert mtype == wire.TASK_DIAG_CMD_GET and length >= 28
        attrs, a = [], off + 28
        while a < off + length:
            nla_len, nla_type = struct.unpack_from('<HH', buf, a)
            attrs.append((nla_type, buf[a + 4:a + nla_len]))
            a += (nla_len + 3) & ~3
        assert a == off + length
        out.append((pid, tgid, flags, attrs, length))
        off += (length + 3) & ~3
    return out


def records(payload):
    """The task_diag_vma records of one attribute, checked field by field
    against the layout: [(fields dict, raw record)]."""
    out, off = [], 0
    while off < len(payload):
        (start, end, flags, pgoff, major, minor, inode, gen, vma_len, name_off, name_len,
         stat_off, stat_len, pad) = struct.unpack_from('<QQQQIIQIHHHHHH', payload, off)
        assert pad == 0
        assert vma_len % 4 == 0 and off + vma_len <= len(payload)
        rec = payload[off:off + vma_len]
        body = 64
        if stat_len:
            assert (stat_off, stat_len) == (64, 80)
            body += 80
        else:
            assert stat_off == 0
        if name_len:
            assert name_off == body and rec[body + name_len - 1] == 0
            assert b'\0' not in rec[body:body + name_len - 1]
            body += name_len
        else:
            assert name_off == 0
        assert vma_len == (body + 3) & ~3 and rec[body:] == b'\0' * (vma_len - body)
        out.append((dict(start=start, end=end, name_len=name_len, stat_len=stat_len), rec))
        off += vma_len
    return out


@pytest.mark.parametrize('show', [VMA, VMA | VMA_STAT], ids=['vma', 'vma_stat'])
def test_record_layout(zoo, source, show):
    """Records tile the attribute exactly: struct, stat at 64, name with its
    NUL, zero padding to 4; in address order, not overlapping."""
    buf = task_diag.raw(wire.DUMP_ONE, zoo.pid, show, source=source)
    recs = [r for _, _, _, attrs, _ in messages(buf) for t, p in attrs
            if t == wire.TASK_DIAG_VMA for r in records(p)]
    assert len(recs) == len(read_maps(zoo.pid))
    assert all(bool(f['stat_len']) == bool(show & VMA_STAT) for f, _ in recs)
    assert any(f['name_len'] % 4 != 1 for f, _ in recs)          # padding exercised
    for (a, _), (b, _) in zip(recs, recs[1:]):
        assert a['start'] < a['end'] <= b['start']


# --- main_maps ---------------------------------------------------------------

@pytest.mark.parametrize('label', LABELS)
def test_main_maps_is_proc_maps(stopped, source, label):
    """main_maps prints /proc/PID/maps byte for byte."""
    pid = stopped[label]

    def read(pid):
        with open('/proc/%d/maps' % pid, 'rb') as f:
            return f.read()

    def run():
        out = io.BytesIO()
        assert maps_cli.main_maps(pid, source=source, out=out) == 0
        return out.getvalue()

    def check(want, got):
        assert got == want
    agree(pid, read, run, check)


def test_main_maps_to_stdout(zoo, source, capfdbinary):
    assert maps_cli.main_maps(zoo.pid, source=source) == 0
    with open('/proc/%d/maps' % zoo.pid, 'rb') as f:
        assert capfdbinary.readouterr().out == f.read()


def test_main_smaps_lines_are_smaps_lines(zoo, source):
    """With smaps=True each block is the maps line, then lines that are
    the same lines of /proc/PID/smaps, then VmFlags with the mnemonics
    that have a bit in the spec."""
    def run():
        out = io.BytesIO()
        assert maps_cli.main_maps(zoo.pid, smaps=True, source=source, out=out) == 0
        return out.getvalue()

    def check(smaps, text):
        blocks = []
        for line in text.split(b'\n')[:-1]:
            if not line.startswith((b'Size:', b'VmFlags:')) and b':' not in line.split(b' ')[0]:
                blocks.append([line])
            else:
                blocks[-1].append(line)
        assert len(blocks) == len(smaps)
        for mine, (_, f, theirs) in zip(blocks, smaps):
            assert mine[0] == theirs[0]
            assert [line.split(b':')[0] for line in mine[1:]] == \
                [b'Size', b'Rss', b'Pss'] + [k.encode() for k in STAT_LINES[1:]] + [b'VmFlags']
            for line in mine[1:-1]:
                assert line in theirs, line
            assert mine[-1] == b'VmFlags: ' + b''.join(
                c.encode() + b' ' for c in f['VmFlags'] if c in SPEC_BITS)
    agree(zoo.pid, read_smaps, run, check)


def test_main_maps_errors(source):
    with pytest.raises(OSError) as e:
        maps_cli.main_maps(2 ** 22 + 1, source=source, out=io.BytesIO())
    assert e.value.errno == errno.ESRCH


# --- who gets VMAs -------------------------------------------------------------

def test_thread_dumps_leaders_only(zoo, source):
    """In THREAD and ALL_THREAD dumps only the thread-group leader carries
    VMAs; ONE of a thread carries its process's."""
    one = dump_one(zoo.pid, VMA, source).vmas
    assert one
    tasks = list(task_diag.dump(wire.DUMP_THREAD, zoo.pid, show=BASE | VMA, source=source))
    assert [t.pid for t in tasks] == zoo.tids
    for t in tasks:
        assert t.vmas == (one if t.pid == zoo.pid else None), t
    seen = set()
    for t in task_diag.dump(wire.DUMP_ALL_THREAD, show=BASE | VMA, source=source):
        if t.pid != t.tgid:
            assert t.vmas is None, t
        if t.tgid == zoo.pid:
            seen.add(t.pid)
            if t.pid == zoo.pid:
                assert t.vmas == one
    assert sorted(seen) == zoo.tids
    assert dump_one(zoo.tids[1], VMA, source).vmas == one


def test_no_mm_no_vmas(source):
    """Kernel threads and zombies have no mm: no VMA attribute at all."""
    kthreads = []
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                with open('/proc/%s/stat' % name, 'rb') as f:
                    data = f.read()
            except OSError:
                continue
            if int(data[data.rindex(b')') + 2:].split()[6]) & PF_KTHREAD:
                kthreads.append(int(name))
    tasks = {t.pid: t for t in task_diag.dump(wire.DUMP_ALL, show=BASE | VMA, source=source)}
    if kthreads:
        assert any(k in tasks for k in kthreads)
    for k in kthreads:
        if k in tasks:
            assert tasks[k].vmas is None, tasks[k]
    assert tasks[os.getpid()].vmas                       # and processes do have VMAs
    p = subprocess.Popen(['true'])
    try:
        deadline = time.monotonic() + 10
        while True:
            with open('/proc/%d/stat' % p.pid, 'rb') as f:
                data = f.read()
            if data[data.rindex(b')') + 2:].split()[0] == b'Z':
                break
            assert time.monotonic() < deadline, 'no zombie'
            time.sleep(0.01)
        t = dump_one(p.pid, BASE | VMA | VMA_STAT | STAT, source)
        assert t.base.state_letter == 'Z' and t.vmas is None and t.stat is not None
    finally:
        p.wait()


def test_vma_stat_alone_sends_nothing(zoo, source):
    """VMA_STAT is a modifier of VMA: alone it adds nothing."""
    assert task_diag.raw(wire.DUMP_ONE, zoo.pid, BASE | VMA_STAT, source=source) == \
        task_diag.raw(wire.DUMP_ONE, zoo.pid, BASE, source=source)
    assert dump_one(zoo.pid, VMA_STAT, source).vmas is None


# --- CONT ---------------------------------------------------------------------

def attr_size(payload):
    return 4 + ((len(payload) + 3) & ~3)


@pytest.mark.parametrize('show', [VMA, VMA | VMA_STAT, ALL_GROUPS, VMA | STAT, BASE | VMA],
                         ids=['vma', 'vma_stat', 'all', 'vma+stat', 'base+vma'])
def test_cont_split(many, source, show):
    """20,000 VMAs: messages of at most 32 KiB, split between records,
    CONT on all but the last, BASE and CRED in the first, STAT in the
    last, each message as full as the rule lets it be; the decoded task
    has every VMA, in order."""
    want = read_maps(many)          # the VMAs of a stopped process do not change
    buf = task_diag.raw(wire.DUMP_ONE, many, show, source=source)
    msgs = messages(buf)
    assert len(msgs) > 10
    head = [a for a in (wire.TASK_DIAG_BASE, wire.TASK_DIAG_CRED) if show & (1 << a)]
    tail = [wire.TASK_DIAG_STAT] if show & STAT else []
    tail_size = 4 + wire.STAT.size if show & STAT else 0
    recs = []
    for i, (pid, tgid, flags, attrs, length) in enumerate(msgs):
        last = i == len(msgs) - 1
        assert (pid, tgid) == (many, many)
        assert length <= MSG_MAX
        assert flags == (0 if last else CONT)
        types = [t for t, _ in attrs]
        assert types == (head if i == 0 else []) + [wire.TASK_DIAG_VMA] + (tail if last else [])
        vma = records(dict(attrs)[wire.TASK_DIAG_VMA])
        assert vma
        if i and source == 'proc':
            # the previous message could not take this one's first record
            # (the fallback's rule; the programs split at their 16 KiB
            # scratch buffer and their per-run budget instead)
            prev = msgs[i - 1][4]
            assert prev + len(vma[0][1]) + tail_size > MSG_MAX
        recs += vma
    assert len(recs) == len(want)
    tasks = list(wire.iter_decode(buf))
    assert len(tasks) == 1 and [as_maps(v) for v in tasks[0].vmas] == want
    # the same as dump() gives (Pss of shared pages may move meanwhile)
    no_pss = [v._replace(stat=v.stat and v.stat._replace(pss=0)) for v in tasks[0].vmas]
    assert no_pss == [v._replace(stat=v.stat and v.stat._replace(pss=0))
                      for v in dump_one(many, show, source).vmas]
    if show & STAT:
        assert tasks[0].stat is not None
    if show & BASE:
        assert tasks[0].base.pid == many


@pytest.mark.parametrize('strategy', [wire.DUMP_ALL, wire.DUMP_ALL_THREAD],
                         ids=['all', 'all_thread'])
def test_no_message_over_32k(many, source, strategy):
    """No message of a whole-system dump exceeds 32 KiB; the decoder puts
    each task back together."""
    buf = task_diag.raw(strategy, 0, ALL_GROUPS, source=source)
    msgs = messages(buf)
    assert max(m[4] for m in msgs) <= MSG_MAX
    assert sum(1 for m in msgs if m[0] == many) > 10
    tasks = list(wire.iter_decode(buf))
    pids = [t.pid for t in tasks]
    assert len(pids) == len(set(pids))
    assert len(next(t for t in tasks if t.pid == many).vmas) > MANY


# --- the pieces, on synthetic input -----------------------------------------

def test_parse_long_prefix():
    """A header longer than the pad column: the name starts one space
    after it; shorter: at column 73.  Names keep inner and trailing
    spaces."""
    lines = [b'ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0' + b' ' * 18 + b'[vsyscall]',
             b'7f0000000000-7f0000001000 r--s 1234567890abc 103:0f 18446744073709551615 '
             b' /a  b ',
             b'7f0000002000-7f0000003000 rw-p 00000000 00:00 0 ']
    vmas = fb_maps.parse_smaps(b'\n'.join(lines) + b'\n')
    assert [v.name for v in vmas] == [b'[vsyscall]', b'/a  b ', None]
    assert vmas[1][:7] == (0x7f0000000000, 0x7f0000001000, 0, 0x1234567890abc, 0x103, 0xf,
                           2 ** 64 - 1)
    assert [maps_cli.maps_line(v._replace(vm_flags=f)) for v, f in
            zip(vmas, (F['EXEC'], F['READ'] | F['MAYSHARE'], F['READ'] | F['WRITE']))] == \
        [line + b'\n' for line in lines]


def test_encode_records_roundtrip():
    """wire.encode_vma_records against wire.decode_vmas, names of every
    length modulo 4, with and without stat."""
    vmas = [wire.Vma(i << 12, (i + 1) << 12, i, i * 4096, 8, i, 1000 + i, 7,
                     None if i % 5 == 4 else 'n' * i,
                     wire.VmaStat(*range(i, i + 10)) if i % 2 else None) for i in range(12)]
    recs = wire.encode_vma_records(vmas)
    assert wire.decode_vmas(b''.join(recs), 0, sum(map(len, recs))) == vmas
    for (f, _), v in zip(records(b''.join(recs)), vmas):
        assert f['name_len'] == (0 if v.name is None else len(v.name) + 1)


def test_split_rule():
    """task_messages with a small limit: greedy, STAT room kept in every
    message, records never split."""
    recs = [bytes([i]) * (64 + 4 * i) for i in range(30)]
    head = [(wire.TASK_DIAG_BASE, b'b' * 44)]
    tail = [(wire.TASK_DIAG_STAT, b's' * 72)]
    for limit in (400, 512, 1000, 4096):
        buf = b''.join(fb_maps.task_messages(5, 5, head, recs, tail, limit=limit))
        msgs = messages(buf)
        got = b''
        for i, (_, _, flags, attrs, length) in enumerate(msgs):
            assert length <= limit
            assert flags == (0 if i == len(msgs) - 1 else CONT)
            got += dict(attrs)[wire.TASK_DIAG_VMA]
            if i:
                first = next(r for r in recs if dict(msgs[i][3])[wire.TASK_DIAG_VMA]
                             .startswith(r))
                assert msgs[i - 1][4] + len(first) + 76 > limit
        assert got == b''.join(recs)
        assert [t for t, _ in msgs[0][3]][0] == wire.TASK_DIAG_BASE
        assert [t for t, _ in msgs[-1][3]][-1] == wire.TASK_DIAG_STAT
