"""make bench: how fast task_diag answers, against /proc and psutil.

    sudo .venv/bin/python bench/run.py [--scales 1000,5000,10000x5] [--runs 5] [--quick]
                                       [--vma] [--vma-nproc 5000]

For each scale (NPROC processes, or NPROCxTHREADS) it starts the load
(bench/fork.c), waits until the tasks exist, and measures, in runs that go
round-robin over the methods (so that every ratio compares runs made under
the same conditions):
  proc_scan      C: open/read/close every /proc/PID/stat (proc_scan.c -p)
  iter_read      C: read the pinned iterator /sys/fs/bpf/task_diag/all (iter_read.c -p)
  iter_floor     the same reader over bench/iter_floor.bpf.c, pinned for the
                 benchmark only: the kernel's task iterator writing a 76-byte
                 message per process and doing nothing else, the least any
                 pinned iterator can cost here (for the 1/10 target: how far
                 below the /proc scan the floor itself is)
  psutil         psutil.process_iter(['pid','ppid','name','uids','gids']) into a list
  task_diag      list(task_diag.dump(DUMP_ALL, show=BASE|CRED, source='bpf')), the
                 second call of a fresh interpreter (the first one is reported apart)
  groups_base    {DUMP_ALL, BASE}: the raw bytes through the pinned path in-process
                 (worker.py groups), what the groups below are measured against
  groups_cmdline_statm, groups_cgroup_ns   the same with BASE|STATM|CMDLINE and
                 with BASE|CGROUP|NS
  groups_filtered  {DUMP_ALL, BASE} with the cgroup filter of a cgroup holding
                 FILTER_NPROC (200) of the load's processes (scales of 1000 up)
  psutil_iter    psutil.process_iter(DROPIN_ATTRS) into a list: its first and its
                 second call in a fresh interpreter (run.py --dropin-worker psutil)
  tdps_iter      task_diag.psutil.process_iter(DROPIN_ATTRS), the drop-in, the
                 same way (run.py --dropin-worker task_diag; the default source,
                 the fastest that works); its .info dicts are psutil's
  fuse_read      C: one {DUMP_ALL, SHOW_BASE} transaction on /run/task-diag, the
                 FUSE front (iter_read.c -p -w): open, write the request, read to
                 0; after each, the front daemon's VmRSS and VmHWM (its pid in
                 /run/task-diag.pid).  Left out when the front does not answer
                 (task-diag-load starts it)
and, for loads with threads, the same two C readers over every thread
(proc_scan_threads, iter_threads).  At the smallest scale it also compares
DUMP_ONE through the API with reading stat + status in Python (dump_one).

Then the VMA section (alone with --vma), under a load of --vma-nproc
processes (5000, --quick 1000), each method over every process of the
system, in the same round-robin runs:
  maps_read      C: open/read/close every /proc/PID/maps (maps_scan.c)
  procmap_query  C: open every /proc/PID/maps and loop the PROCMAP_QUERY ioctl
                 over its VMAs, names included (maps_scan.c -q; 6.11+)
  smaps_read     C: open/read/close every /proc/PID/smaps (maps_scan.c -s)
  smaps_psutil   psutil.Process(pid).memory_maps(grouped=False) for every pid
  smaps_plain    every /proc/PID/smaps through a plain Python line parser
  vma_read       C: {DUMP_ALL, SHOW_VMA} through the pinned path: the request
                 stored in the pinned map, the iterator read to the end, the
                 continuation passes of big tasks run (vma_read.c)
  vma_floor      C: iter_read -v over bench/vma_floor.bpf.c, pinned for the
                 benchmark only: the task iterator and the open-coded VMA
                 iterator writing a 64-byte record per VMA (start, end, flags)
                 and nothing else, the least a single-pass VMA dump can cost
                 here (for the 1/3 target: how far below the maps reader the
                 floor itself is)
  vma_iter       the same raw bytes in-process from Python (BpfBackend.raw)
  vma_dump       list(task_diag.dump(DUMP_ALL, show=BASE|VMA, source='bpf')),
                 every VMA record touched
and, for each VMA_STAT source that task-diag-load --vma-stat can enable
(smaps, pagewalk), with SHOW_VMA_STAT added to the same two:
  vma_stat_iter/SOURCE, vma_stat_dump/SOURCE, and for pagewalk (whose
  statistics come from the programs, not from Python) vma_stat_read/pagewalk
The source is switched with task-diag-load --no-front --vma-stat=SOURCE
between two methods that need different ones (never inside a measure), and
put back as it was found at the end, whatever happened.  A source that
cannot be enabled is reported n/a with the loader's reason.  Every VMA
method also counts the VMAs it got: the table shows them, and the vma_iter
records are checked against the maps_read lines, so that a reader that
lost VMAs cannot look fast.

Each figure is the median over the runs of the cost measured inside the
measured process (start-up and imports excluded): cpu = user + system.
Prints the tables and writes every sample to bench/out/results.json.
"""
import argparse
import ctypes
import json
import os
import platform
import resource
import select
import signal
import statistics
import subprocess
import sys
import time

from task_diag import cgroups, libbpf, tdconfig
from task_diag.front import service
from task_diag.iterproto import PIN_ALL as PIN_ALL_NAME, PIN_ALL_THREADS, PIN_DIR
from task_diag.iterproto import VMA_STAT_SOURCES as VMA_STAT_SOURCE_NUMBERS
from task_diag.wire import (SHOW_BASE, SHOW_CGROUP, SHOW_CMDLINE, SHOW_NS, SHOW_STATM, SHOW_VMA,
                           SHOW_VMA_STAT)

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.join(HERE, 'bin')
OUT = os.path.join(HERE, 'out')
PY = sys.executable
PIN_ALL = os.path.join(PIN_DIR, PIN_ALL_NAME)
PIN_THREADS = os.path.join(PIN_DIR, PIN_ALL_THREADS)
PIN_FLOOR = '/sys/fs/bpf/task_diag_bench_floor'     # iter_floor.bpf.o, during a run only
PIN_VMA_FLOOR = '/sys/fs/bpf/task_diag_bench_vma_floor'     # vma_floor.bpf.o, the same
FRONT = service.MOUNTPOINT
PID_MAX = '/proc/sys/kernel/pid_max'
THREADS_MAX = '/proc/sys/kernel/threads-max'
PID_MAX_LIMIT = 4 << 20         # the kernel's ceiling on 64-bit
LOADER = os.path.join(os.path.dirname(PY), 'task-diag-load')
# --pin-dir (hidden, as the loader's): the VMA section against another
# pinned copy, loaded there by task-diag-load --pin-dir; for trying the
# benchmark itself without touching the pins everyone uses
vma_pin_dir = None

DEFAULT_SCALES = '1000,5000,10000,20000,50000,10000x5'
QUICK_SCALES = '1000,5000'
VMA_NPROC, QUICK_VMA_NPROC = 5000, 1000
VMA_STAT_SOURCES = tuple(VMA_STAT_SOURCE_NUMBERS)     # smaps, pagewalk

# (target, scales it is judged at, ratio key, minimum ratio); a key with
# "_mib" is a size in MiB, and one that starts with "cost_" a ratio, that
# must stay at or below the bound instead
TARGETS = (
    ('pinned iterator CPU <= 1/10 of the /proc scan', (20000, 50000), 'proc_iter_cpu', 10),
    ('task_diag.dump() >= 30x faster than psutil (wall)', (5000, 20000), 'psutil_dump_wall', 30),
    # task_diag.psutil.process_iter(DROPIN_ATTRS) against psutil's, wall
    ('process_iter drop-in >= 30x psutil, 1st calls', (10000, 20000), 'dropin_wall', 30),
    ('process_iter drop-in >= 30x psutil, 2nd calls', (10000, 20000), 'dropin_wall2', 30),
    # CPU of a dump, the programs' included (the reader's system time)
    ('CMDLINE+STATM in a BASE dump <= 1.5x BASE alone (CPU)', (10000, 20000), 'cost_groups_cpu',
     1.5),
    ('CGROUP+NS in a BASE dump <= 1.5x BASE alone (CPU)', (10000, 20000), 'cost_cgns_cpu', 1.5),
    ('cgroup filter, 200 of the tasks: <= 1/10 of BASE (CPU)', (20000,), 'cost_filter_cpu', 0.1),
    ('/run/task-diag transaction wall <= 1/5 of /proc scan', (20000, 50000), 'proc_fuse_wall', 5),
    ('/run/task-diag daemon RSS < 64 MiB', (50000,), 'front_rss_mib', 64),
)

# The VMA section's ratios: key -> (numerator method, denominator method,
# cpu_ms or wall_ms); "/SOURCE" keys for each VMA_STAT source
VMA_RATIOS = {
    'maps_iter_cpu': ('maps_read', 'vma_read', 'cpu_ms'),
    'maps_floor_cpu': ('maps_read', 'vma_floor', 'cpu_ms'),
    'floor_iter_cpu': ('vma_read', 'vma_floor', 'cpu_ms'),
    'query_iter_cpu': ('procmap_query', 'vma_read', 'cpu_ms'),
    'maps_pyiter_cpu': ('maps_read', 'vma_iter', 'cpu_ms'),
    'maps_query_cpu': ('maps_read', 'procmap_query', 'cpu_ms'),
    'psutil_dump_wall': ('smaps_psutil', 'vma_dump', 'wall_ms'),
}
for _source in VMA_STAT_SOURCES:
    VMA_RATIOS.update({
        'smaps_statiter_cpu/' + _source: ('smaps_read', 'vma_stat_iter/' + _source, 'cpu_ms'),
        'smaps_statread_cpu/' + _source: ('smaps_read', 'vma_stat_read/' + _source, 'cpu_ms'),
        'psutil_statdump_wall/' + _source: ('smaps_psutil', 'vma_stat_dump/' + _source,
                                            'wall_ms'),
        'plain_statdump_wall/' + _source: ('smaps_plain', 'vma_stat_dump/' + _source,
                                           'wall_ms'),
    })

# The VMA section's targets: (target, ratio key, bound, strict): the ratio
# must be >= bound, or > bound when strict
VMA_TARGETS = (
    ('VMA iterator CPU <= 1/3 of reading every maps (C)', 'maps_iter_cpu', 3, False),
    ('VMA iterator CPU < PROCMAP_QUERY loop (C)', 'query_iter_cpu', 1, True),
    ('pagewalk VMA_STAT CPU <= reading every smaps (C)', 'smaps_statread_cpu/pagewalk', 1,
     False),
    ('dump() VMA_STAT >= 5x faster than psutil, smaps', 'psutil_statdump_wall/smaps', 5, False),
    ('dump() VMA_STAT >= 5x faster than psutil, pagewalk', 'psutil_statdump_wall/pagewalk', 5,
     False),
)
# Every VMA method's count against maps_read's lines of the same run: a few
# VMAs more or fewer, as processes come and go between the two (the reader
# itself is one, with more VMAs in Python than in C; the other users of the
# machine start Pythons of a hundred VMAs each).  More than this in every
# run is a reader that lost (or invented) some, and the ratios it is part
# of are reported "invalid" instead of judged
VMA_COUNT_TOLERANCE = 0.02
# the readers that never get the gate VMA ([vsyscall]) maps shows: one less per mm
NO_GATE = ('procmap_query', 'vma_floor')


# --- building and running the tools -----------------------------------------

def build():
    os.makedirs(BIN, exist_ok=True)
    for tool, extra in (('fork', ['-pthread']), ('proc_scan', []), ('iter_read', []),
                        ('maps_scan', []), ('vma_read', ['-lbpf']), ('forkrate', [])):
        subprocess.run(['gcc', '-O2', '-Wall', '-o', os.path.join(BIN, tool),
                        os.path.join(HERE, tool + '.c')] + extra, check=True)
    # the floor programs, compiled as task_diag/bpf/Makefile compiles ours
    multiarch = subprocess.run(['gcc', '-print-multiarch'], stdout=subprocess.PIPE,
                               text=True).stdout.strip()
    for name in ('iter_floor', 'vma_floor'):
        obj = os.path.join(BIN, name + '.bpf.o')
        subprocess.run(['clang', '-g', '-O2', '-target', 'bpf', '-D__TARGET_ARCH_x86', '-Wall',
                        '-Werror', '-I' + os.path.join(HERE, '..', 'task_diag', 'bpf')] +
                       (['-I/usr/include/' + multiarch] if multiarch else []) +
                       ['-c', os.path.join(HERE, name + '.bpf.c'), '-o', obj], check=True)
        subprocess.run(['llvm-strip', '-g', obj], check=True)


class FloorIterator:
    """bench/bin/NAME.bpf.o loaded and its iterator program PROG pinned at
    PIN for the time of the benchmark (a leftover of a killed run is
    replaced); unpinned on exit, whatever happened.  If it cannot be
    loaded (vma_floor needs the open-coded VMA iterator), the benchmark
    goes on without that method."""

    def __init__(self, name, prog, pin):
        self.name, self.prog, self.pin = name, prog, pin

    def __enter__(self):
        self.__exit__()
        try:
            self._pin()
        except BaseException as e:
            self.__exit__()
            if not isinstance(e, Exception):
                raise
            print('bench/run.py: no %s: %s' % (self.name, e), file=sys.stderr)
        return self

    def _pin(self):
        L = libbpf.lib()
        obj_name = self.name + '.bpf.o'
        obj = L.bpf_object__open_file(os.path.join(BIN, obj_name).encode(), None)
        if not obj:
            raise RuntimeError('cannot open ' + obj_name)
        try:
            with libbpf.quiet_libbpf() as log:
                if L.bpf_object__load(obj) < 0:
                    raise RuntimeError('%s refused:\n%s' % (obj_name, '\n'.join(log.lines[-20:])))
            link = L.bpf_program__attach_iter(
                L.bpf_object__find_program_by_name(obj, self.prog.encode()), None)
            if not link:
                raise RuntimeError('attaching %s failed' % obj_name)
            try:
                libbpf._check(L.bpf_link__pin(link, self.pin.encode()), 'pinning ' + self.name)
            finally:
                L.bpf_link__destroy(link)       # the pin keeps it
        finally:
            L.bpf_object__close(obj)

    def __exit__(self, *exc):
        try:
            os.unlink(self.pin)
        except FileNotFoundError:
            pass


def children_cpu_ms():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (ru.ru_utime + ru.ru_stime) * 1000


def spawn(argv, timeout=600):
    """Run @argv to its end; (stdout, whole-process cpu ms from its rusage)."""
    before = children_cpu_ms()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    if p.returncode:
        raise RuntimeError('%s failed (%d): %s' % (' '.join(argv), p.returncode, p.stderr))
    return p.stdout, children_cpu_ms() - before


def c_tool(argv):
    """A C reader's "key value ..." line, its own times turned into ms."""
    out, proc_cpu = spawn(argv)
    words = out.split()
    fields = {k: int(v) for k, v in zip(words[::2], words[1::2])}
    sample = {'tasks': fields['tasks'], 'cpu_ms': fields['cpu_us'] / 1000,
              'wall_ms': fields['wall_us'] / 1000, 'proc_cpu_ms': proc_cpu}
    for key in ('mms', 'vmas', 'bytes'):       # maps_scan's
        if key in fields:
            sample[key] = fields[key]
    return sample


def py_worker(*args):
    out, proc_cpu = spawn([PY, os.path.join(HERE, 'worker.py')] + [str(a) for a in args])
    result = json.loads(out)
    result['proc_cpu_ms'] = proc_cpu
    return result


# --- task_diag.psutil against psutil (the drop-in) ----------------------------------

# The attributes of the drop-in's benchmark: what a ps-like tool asks
DROPIN_ATTRS = ['pid', 'ppid', 'name', 'cmdline', 'username', 'status', 'num_threads',
                'cpu_times', 'memory_info']


def self_cpu_ms():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return (ru.ru_utime + ru.ru_stime) * 1000


def dropin_worker(which):
    """run.py --dropin-worker psutil|task_diag, in a fresh interpreter (no
    cache of an earlier run helps): two calls of process_iter(DROPIN_ATTRS)
    into a list, each timed inside (imports excluded; the first call of
    task_diag also opens its backend, as psutil's first makes its Process
    objects), each list dropped before the next call.  Prints one JSON
    object: cpu_ms, wall_ms of the first call, cpu2_ms, wall2_ms of the
    second, tasks (of the first), source (task_diag's backend)."""
    if which == 'psutil':
        import psutil
        iterate, source = psutil.process_iter, None
    else:
        import task_diag
        import task_diag.psutil as tdps
        iterate = tdps.process_iter
    out = {}
    for suffix in ('', '2'):
        c0, w0 = self_cpu_ms(), time.perf_counter()
        procs = list(iterate(DROPIN_ATTRS))
        w1, c1 = time.perf_counter(), self_cpu_ms()
        out['cpu%s_ms' % suffix], out['wall%s_ms' % suffix] = c1 - c0, (w1 - w0) * 1000
        out.setdefault('tasks', len(procs))
        del procs
    if which != 'psutil':
        source = task_diag.backend().name
    out['source'] = source
    json.dump(out, sys.stdout)


def dropin(which):
    out, proc_cpu = spawn([PY, os.path.abspath(__file__), '--dropin-worker', which])
    sample = json.loads(out)
    sample['proc_cpu_ms'] = proc_cpu
    return sample


def front_rss_kib(field='VmRSS'):
    """VmRSS (or another size of /proc/PID/status) of the front daemon, in
    KiB (None without one)."""
    try:
        pid = service.front_pid()
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def fuse_read():
    sample = c_tool([os.path.join(BIN, 'iter_read'), '-p', '-w', FRONT])
    sample['front_rss_kib'] = front_rss_kib()
    sample['front_hwm_kib'] = front_rss_kib('VmHWM')     # its peak, since it started
    return sample


def count_tasks(path):
    return c_tool([os.path.join(BIN, 'iter_read'), path])['tasks']


# --- the load and the limits it needs ----------------------------------------

def set_subreaper():
    """Orphans of the load come back to us, not to pid 1 (which may not
    reap them), should the fork parent die before its children."""
    PR_SET_CHILD_SUBREAPER = 36
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0):
        raise OSError(ctypes.get_errno(), 'prctl(PR_SET_CHILD_SUBREAPER)')


def read_int(path):
    with open(path) as f:
        return int(f.read())


def write_int(path, value):
    with open(path, 'w') as f:
        f.write('%d\n' % value)


class Limits:
    """Raises pid_max and threads-max for @tasks more tasks, restores them."""

    def __init__(self, tasks):
        self.need = 2 * (tasks + count_tasks(PIN_THREADS))    # room for pid reuse
        self.saved = {}

    def __enter__(self):
        for path, ceiling in ((PID_MAX, PID_MAX_LIMIT), (THREADS_MAX, None)):
            old = read_int(path)
            if old < self.need:
                self.saved[path] = old
                write_int(path, min(self.need, ceiling) if ceiling else self.need)
        return self

    def __exit__(self, *exc):
        for path, old in self.saved.items():
            write_int(path, old)


class Load:
    """bench/bin/fork NPROC THREADS in its own process group: started and
    waited for on entry, killed and reaped on exit, whatever happened."""

    def __init__(self, nproc, threads):
        self.nproc, self.threads = nproc, threads
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen([os.path.join(BIN, 'fork'), str(self.nproc),
                                      str(self.threads)],
                                     stdout=subprocess.PIPE, start_new_session=True)
        try:
            self._wait_ready(timeout=120 + self.nproc * self.threads / 100)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while not select.select([self.proc.stdout], [], [], 1)[0]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError('fork %d %d did not start' % (self.nproc, self.threads))
        line = self.proc.stdout.readline().decode()
        if line.split() != ['ready', str(self.nproc)]:
            raise RuntimeError('fork: %r' % line)
        # The tasks are there as the kernel sees them.
        while (count_tasks(PIN_ALL) < self.nproc + 1
               or count_tasks(PIN_THREADS) < self.nproc * self.threads + 1):
            if time.monotonic() > deadline:
                raise RuntimeError('the tasks of fork %d %d never showed up'
                                   % (self.nproc, self.threads))
            time.sleep(0.5)

    def stop(self):
        if self.proc is None:
            return
        # A second Ctrl-C must not cut the clean-up short.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            pgid = self.proc.pid
            _killpg(pgid, signal.SIGTERM)    # fork kills and reaps its children
            try:
                self.proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                _killpg(pgid, signal.SIGKILL)
                self.proc.wait()
            # Anything of the group still alive was orphaned to us.
            _killpg(pgid, signal.SIGKILL)
            while True:
                try:
                    os.waitpid(-1, 0)
                except ChildProcessError:
                    break
            self.proc.stdout.close()
            self.proc = None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


FILTER_NPROC = 200     # the processes of the load put in a cgroup of their own


class FilterCgroup:
    """FILTER_NPROC processes of @load in a cgroup of their own (td-bench-PID
    under the cgroup2 mount), for groups_filtered: .id, or 0 where there is
    no cgroup2 mount or the load is smaller.  On exit they go back to the
    root cgroup and the cgroup is removed."""

    def __init__(self, load):
        self.load, self.id, self.path, self.pids = load, 0, None, []

    def __enter__(self):
        mount = cgroups.mount_point()
        if mount is None or self.load.nproc < 5 * FILTER_NPROC:
            return self
        pid = self.load.proc.pid
        with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
            self.pids = [int(x) for x in f.read().split()][:FILTER_NPROC]
        self.path = os.path.join(mount, 'td-bench-%d' % os.getpid())
        os.mkdir(self.path)
        try:
            for p in self.pids:
                with open(os.path.join(self.path, 'cgroup.procs'), 'w') as f:
                    f.write(str(p))
        except BaseException:
            self.__exit__()
            raise
        self.id = os.stat(self.path).st_ino
        self.mount = mount
        return self

    def __exit__(self, *exc):
        if self.path is None:
            return
        for p in self.pids:
            try:
                with open(os.path.join(cgroups.mount_point(), 'cgroup.procs'), 'w') as f:
                    f.write(str(p))
            except OSError:
                pass        # gone
        for _ in range(100):
            try:
                os.rmdir(self.path)
                break
            except OSError:
                time.sleep(0.05)
        self.path = None


def _killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


# --- measuring ---------------------------------------------------------------

def methods_for(threads, with_one, load_pid, one_calls):
    """{name: function of the run index returning one sample}"""
    proc_scan, iter_read = os.path.join(BIN, 'proc_scan'), os.path.join(BIN, 'iter_read')
    methods = {
        'proc_scan': lambda r: c_tool([proc_scan, '-p']),
        'iter_read': lambda r: c_tool([iter_read, '-p', PIN_ALL]),
        'psutil': lambda r: py_worker('psutil'),
        'task_diag': lambda r: py_worker('dump'),
        'groups_base': lambda r: py_worker('groups', SHOW_BASE),
        'groups_cmdline_statm': lambda r: py_worker(
            'groups', SHOW_BASE | SHOW_STATM | SHOW_CMDLINE),
        'groups_cgroup_ns': lambda r: py_worker('groups', SHOW_BASE | SHOW_CGROUP | SHOW_NS),
        'exporter_scrape': lambda r: py_worker('scrape'),
        'psutil_iter': lambda r: dropin('psutil'),
        'tdps_iter': lambda r: dropin('task_diag'),
    }
    if os.path.exists(PIN_FLOOR):
        methods['iter_floor'] = lambda r: c_tool([iter_read, '-p', PIN_FLOOR])
    if service.front_answers():
        methods['fuse_read'] = lambda r: fuse_read()
    if threads > 1:
        methods['proc_scan_threads'] = lambda r: c_tool([proc_scan, '-p', '-t'])
        methods['iter_threads'] = lambda r: c_tool([iter_read, '-p', PIN_THREADS])
    if with_one:
        # Which of the two goes first alternates too.
        methods['dump_one'] = lambda r: py_worker(
            'one', load_pid, one_calls, 'api,proc' if r % 2 == 0 else 'proc,api')
    return methods


def measure_scale(nproc, threads, runs, with_one, one_calls):
    with Load(nproc, threads) as load, FilterCgroup(load) as cg:
        methods = methods_for(threads, with_one, load.proc.pid, one_calls)
        if cg.id:
            methods['groups_filtered'] = lambda r: py_worker('groups', SHOW_BASE, cg.id)
        names = list(methods)
        samples = {name: [] for name in names}
        for r in range(runs):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                samples[name].append(methods[name](r))
    return samples


def median(samples, *keys):
    values = []
    for s in samples:
        for k in keys:
            s = s[k]
        values.append(s)
    return statistics.median(values)


def ratios(samples):
    """Medians of the per-run ratios: each from runs of the same round."""
    def per_run(num, den, key):
        return statistics.median(a[key] / b[key] for a, b in zip(samples[num], samples[den]))
    out = {'proc_iter_cpu': per_run('proc_scan', 'iter_read', 'cpu_ms'),
           'psutil_dump_wall': per_run('psutil', 'task_diag', 'wall_ms'),
           'psutil_dump_cpu': per_run('psutil', 'task_diag', 'cpu_ms')}
    if 'groups_base' in samples:
        out['cost_groups_cpu'] = per_run('groups_cmdline_statm', 'groups_base', 'cpu_ms')
        out['cost_groups_wall'] = per_run('groups_cmdline_statm', 'groups_base', 'wall_ms')
        out['cost_cgns_cpu'] = per_run('groups_cgroup_ns', 'groups_base', 'cpu_ms')
        out['cost_cgns_wall'] = per_run('groups_cgroup_ns', 'groups_base', 'wall_ms')
    if 'groups_filtered' in samples:
        out['cost_filter_cpu'] = per_run('groups_filtered', 'groups_base', 'cpu_ms')
        out['cost_filter_wall'] = per_run('groups_filtered', 'groups_base', 'wall_ms')
    if 'tdps_iter' in samples:
        for key, field in (('dropin_wall', 'wall_ms'), ('dropin_cpu', 'cpu_ms'),
                           ('dropin_wall2', 'wall2_ms'), ('dropin_cpu2', 'cpu2_ms')):
            out[key] = per_run('psutil_iter', 'tdps_iter', field)
    if 'iter_floor' in samples:
        out['proc_floor_cpu'] = per_run('proc_scan', 'iter_floor', 'cpu_ms')
    if 'iter_threads' in samples:
        out['proc_iter_threads_cpu'] = per_run('proc_scan_threads', 'iter_threads', 'cpu_ms')
    if 'fuse_read' in samples:
        out['proc_fuse_wall'] = per_run('proc_scan', 'fuse_read', 'wall_ms')
        rss = [s['front_rss_kib'] for s in samples['fuse_read'] if s['front_rss_kib']]
        if rss:
            out['front_rss_mib'] = max(rss) / 1024      # the largest seen after a run
    return out


# --- the VMA section -----------------------------------------------------------

def loader_argv(*args):
    return [LOADER] + (['--pin-dir', vma_pin_dir] if vma_pin_dir else []) + list(args)


def loader(*args, timeout=300):
    """(exit status, the last line of its stderr or stdout) of task-diag-load."""
    try:
        p = subprocess.run(loader_argv(*args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, str(e)
    lines = (p.stderr.strip() or p.stdout.strip()).splitlines()
    return p.returncode, lines[-1] if lines else ''


def vma_stat_source():
    """The active VMA_STAT source, as td_config holds it."""
    cfg = tdconfig.read_pinned(vma_pin_dir or PIN_DIR)
    names = {number: name for name, number in VMA_STAT_SOURCE_NUMBERS.items()}
    return names.get(cfg['vma_stat'], 'smaps') if cfg else 'smaps'


def set_vma_stat(source):
    """Switches VMA_STAT to @source; None, or why it could not.  --no-front:
    the benchmark changes the source only, it starts no daemon."""
    rc, last = loader('--no-front', '--vma-stat=' + source)
    if rc:
        return 'task-diag-load --vma-stat=%s: exit %d: %s' % (source, rc, last)
    now = vma_stat_source()
    if now != source:
        return 'task-diag-load --vma-stat=%s left it on %s' % (source, now)
    return None


class VmaStatSources:
    """Which VMA_STAT sources can be enabled, tried on entry (each is
    enabled once, then the one found is put back); switch() between
    methods; the source found is put back on exit, whatever happened."""

    def __init__(self):
        self.found = self.current = None
        self.usable, self.refused = [], {}

    def __enter__(self):
        if vma_pin_dir:
            loader('--no-front')        # those pins exist from here on
        self.found = self.current = vma_stat_source()
        try:
            for source in VMA_STAT_SOURCES:
                why = self.switch(source)
                if why:
                    self.refused[source] = why
                else:
                    self.usable.append(source)
            self.switch(self.found)
        except BaseException:
            self.__exit__()
            raise
        return self

    def switch(self, source):
        if source == self.current:
            return None
        self.current = None             # unknown until it is read back
        why = set_vma_stat(source)
        self.current = vma_stat_source()
        return why

    def __exit__(self, *exc):
        # A second Ctrl-C must not leave the source switched.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            if self.current != self.found:
                why = set_vma_stat(self.found)
                if why:
                    print('bench/run.py: could not put VMA_STAT back on %s: %s'
                          % (self.found, why), file=sys.stderr)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def vma_methods(sources):
    """{name: (VMA_STAT source it needs or None, function of the run index)}:
    the methods that need one source are kept together, so that a run
    switches only a few times."""
    maps_scan = os.path.join(BIN, 'maps_scan')
    vma_read = os.path.join(BIN, 'vma_read')
    pin = [vma_pin_dir] if vma_pin_dir else []
    methods = {
        'maps_read': (None, lambda r: c_tool([maps_scan])),
        'procmap_query': (None, lambda r: c_tool([maps_scan, '-q'])),
        'smaps_read': (None, lambda r: c_tool([maps_scan, '-s'])),
        'smaps_psutil': (None, lambda r: py_worker('smaps_psutil')),
        'smaps_plain': (None, lambda r: py_worker('smaps_plain')),
        'vma_read': (None, lambda r: c_tool([vma_read, str(SHOW_BASE | SHOW_VMA)] + pin)),
        'vma_iter': (None, lambda r: py_worker('vma_iter', SHOW_VMA, *pin)),
        'vma_dump': (None, lambda r: py_worker('vma_dump', SHOW_BASE | SHOW_VMA, *pin)),
    }
    if os.path.exists(PIN_VMA_FLOOR):
        methods['vma_floor'] = (None, lambda r: c_tool(
            [os.path.join(BIN, 'iter_read'), '-v', PIN_VMA_FLOOR]))
    for source in sources:
        if source == 'pagewalk':
            methods['vma_stat_read/' + source] = (source, lambda r: c_tool(
                [vma_read, str(SHOW_BASE | SHOW_VMA | SHOW_VMA_STAT)] + pin))
        methods['vma_stat_iter/' + source] = (
            source, lambda r: py_worker('vma_iter', SHOW_VMA | SHOW_VMA_STAT, *pin))
        methods['vma_stat_dump/' + source] = (
            source, lambda r: py_worker('vma_dump', SHOW_BASE | SHOW_VMA | SHOW_VMA_STAT, *pin))
    return methods


def fork_child_vmas(load):
    """VMAs of one process of the load (its fork children are all alike)."""
    try:
        with open('/proc/%d/task/%d/children' % (load.proc.pid, load.proc.pid)) as f:
            child = int(f.read().split()[0])
        with open('/proc/%d/maps' % child, 'rb') as f:
            return f.read().count(b'\n')
    except (OSError, IndexError, ValueError):
        return None


def measure_vma(nproc, runs):
    """The VMA section's samples, {'refused': {source: why}}, and the VMA
    count of one process of the load."""
    with VmaStatSources() as sources, Load(nproc, 1) as load:
        methods = vma_methods(sources.usable)
        names = list(methods)
        samples = {name: [] for name in names}
        for r in range(runs):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                source, fn = methods[name]
                # The others run under the source found, whatever the
                # order: the same conditions in every run
                why = sources.switch(source or sources.found)
                if why:
                    raise RuntimeError(why)     # it could be switched a moment ago
                samples[name].append(fn(r))
        return samples, sources.refused, fork_child_vmas(load)


def vma_ratios(samples):
    """Medians of the per-run ratios: each from runs of the same round
    (None where a method did not run)."""
    out = {}
    for key, (num, den, field) in VMA_RATIOS.items():
        if num in samples and den in samples:
            out[key] = statistics.median(a[field] / b[field]
                                         for a, b in zip(samples[num], samples[den]))
        else:
            out[key] = None
    return out


def vma_count_check(samples):
    """{method: how far its VMA count is from maps_read's lines}: the
    smallest over the runs of the relative difference in the same run
    (processes that come and go make some runs differ, a broken reader
    differs in all).  procmap_query is compared with the lines less one
    per mm: it never gets the gate VMA, nor does vma_floor."""
    check = {}
    for name, runs in samples.items():
        if name == 'maps_read':
            continue
        offs = []
        for maps, other in zip(samples['maps_read'], runs):
            lines = maps['vmas'] - (maps['mms'] if name in NO_GATE else 0)
            offs.append(abs(other['vmas'] - lines) / max(lines, 1))
        check[name] = min(offs)
    return check


# --- reporting ----------------------------------------------------------------

def label(nproc, threads):
    name = '%gk' % (nproc / 1000) if nproc >= 1000 else str(nproc)
    return name if threads == 1 else '%s x%d' % (name, threads)


def print_tables(results):
    if results['scales']:
        print_scales(results)
    if results.get('vma'):
        print_vma(results['vma'])
    print('\n%-52s %-9s %10s %8s' % ('target', 'scale', 'measured', 'result'))
    for t in results['targets']:
        measured = ('-' if t['measured'] is None else
                    '%.1f MiB' % t['measured'] if t['unit'] == 'MiB' else
                    '%.1f %s' % (t['measured'], t['unit']) if t['unit'] in ('ms', '%') else
                    '%d lost' % t['measured'] if t['unit'] == 'lost' else
                    '%.1fx' % t['measured'] if t['measured'] >= 1 else '%.3fx' % t['measured'])
        print('%-52s %-9s %10s %8s' % (t['target'], t['scale'], measured, t['result']))


def print_scales(results):
    print('\n%-9s %-20s %8s %10s %10s' % ('scale', 'method', 'tasks', 'cpu ms', 'wall ms'))
    for sc in results['scales']:
        lab = label(sc['nproc'], sc['threads'])
        for name, samples in sc['samples'].items():
            print('%-9s %-20s %8d %10.2f %10.2f' % (
                lab, name, median(samples, 'tasks'), median(samples, 'cpu_ms'),
                median(samples, 'wall_ms')))
            if name == 'task_diag':
                print('%-9s %-20s %8s %10.2f %10.2f' % (
                    lab, 'task_diag 1st call', '', median(samples, 'first_cpu_ms'),
                    median(samples, 'first_wall_ms')))
            if name in ('psutil_iter', 'tdps_iter'):
                print('%-9s %-20s %8s %10.2f %10.2f' % (
                    lab, name + ' 2nd call', '', median(samples, 'cpu2_ms'),
                    median(samples, 'wall2_ms')))

    print('\n(the C readers never sleep: a wall time well above the cpu time means other\n'
          ' work on the machine had the CPUs)')
    print('\nratios (medians of the per-run ratios)')
    print('%-9s %20s %21s %22s %21s %24s %20s %15s' % (
        'scale', '/proc-scan/iter CPU', '/proc-scan/floor CPU', 'psutil/task_diag wall',
        'psutil/task_diag CPU', 'threads /proc/iter CPU', '/proc-scan/FUSE wall',
        'front RSS MiB'))
    for sc in results['scales']:
        r = sc['ratios']
        thr = '%.1fx' % r['proc_iter_threads_cpu'] if 'proc_iter_threads_cpu' in r else '-'
        fuse = '%.1fx' % r['proc_fuse_wall'] if 'proc_fuse_wall' in r else '-'
        rss = '%.1f' % r['front_rss_mib'] if 'front_rss_mib' in r else '-'
        floor = '%.1fx' % r['proc_floor_cpu'] if 'proc_floor_cpu' in r else '-'
        print('%-9s %20s %21s %22s %21s %24s %20s %15s' % (
            label(sc['nproc'], sc['threads']), '%.1fx' % r['proc_iter_cpu'], floor,
            '%.1fx' % r['psutil_dump_wall'], '%.1fx' % r['psutil_dump_cpu'], thr, fuse, rss))

    dropin = [sc for sc in results['scales'] if 'dropin_wall' in sc['ratios']]
    if dropin:
        sources = sorted({s['source'] for sc in dropin for s in sc['samples']['tdps_iter']})
        print('\npsutil.process_iter / task_diag.psutil.process_iter (source %s), attrs\n%s'
              % (', '.join(sources), DROPIN_ATTRS))
        print('%-9s %14s %14s %14s %14s' % ('scale', '1st call wall', '1st call CPU',
                                            '2nd call wall', '2nd call CPU'))
        for sc in dropin:
            r = sc['ratios']
            print('%-9s %14s %14s %14s %14s' % (
                label(sc['nproc'], sc['threads']), *('%.1fx' % r[k] for k in (
                    'dropin_wall', 'dropin_cpu', 'dropin_wall2', 'dropin_cpu2'))))

    costs = [sc for sc in results['scales'] if 'cost_groups_cpu' in sc['ratios']]
    if costs:
        print('\nthe cost of groups and of the filter against {DUMP_ALL, BASE}, raw bytes '
              'in-process: BASE|STATM|CMDLINE, BASE|CGROUP|NS, and BASE with the cgroup filter '
              'of %d processes' % FILTER_NPROC)
        print('%-9s %10s %10s %10s %10s %10s %10s' % (
            'scale', 'cmd CPU', 'cmd wall', 'cgns CPU', 'cgns wall', 'filt CPU', 'filt wall'))
        for sc in costs:
            r = sc['ratios']
            print('%-9s %10s %10s %10s %10s %10s %10s' % (
                label(sc['nproc'], sc['threads']),
                *('%.3fx' % r[k] if k in r else '-' for k in (
                    'cost_groups_cpu', 'cost_groups_wall', 'cost_cgns_cpu', 'cost_cgns_wall',
                    'cost_filter_cpu', 'cost_filter_wall'))))

    ev = results.get('events')
    if ev:
        print('\nwatch() while bench/bin/forkrate forks and reaps %d children a second for '
              '%d s (each run)' % (WATCH_RATE, WATCH_SECONDS))
        print('%10s %8s %8s %10s %12s' % ('forked', 'exits', 'lost', 'rate/s', 'watch CPU %'))
        for w in ev['watch']:
            print('%10d %8d %8d %10.0f %12.1f' % (w['tasks'], w['exits'], w['lost'], w['rate'],
                                                 100.0 * w['cpu_ms'] / w['wall_ms']))
        print('exporter (with its watch), %d s without a scrape: %.1f ms of CPU'
              % (IDLE_SECONDS, ev['idle_cpu_ms']))

    one = results.get('dump_one')
    if one:
        print('\nDUMP_ONE (BASE|CRED|STAT), %d calls, at %s: per call' % (
            one['calls'], one['scale']))
        print('%-28s %10s %10s' % ('way', 'cpu us', 'wall us'))
        for way, name in (('api', 'task_diag.dump(DUMP_ONE)'), ('proc', 'stat+status in Python')):
            print('%-28s %10.1f %10.1f' % (name, one[way]['cpu_us'], one[way]['wall_us']))


def print_vma(vma):
    lab = label(vma['nproc'], 1)
    maps = vma['samples']['maps_read']
    procs, mms, vmas = (median(maps, k) for k in ('tasks', 'mms', 'vmas'))
    print('\nVMAs at %s (bench/fork %d, %s VMAs in each child); every method reads every\n'
          'process of the system: %d, %d of them with an mm, %d VMAs (%.1f per mm)'
          % (lab, vma['nproc'], vma['fork_child_vmas'], procs, mms, vmas, vmas / max(mms, 1)))
    print('%-9s %-24s %8s %9s %10s %10s' % ('scale', 'method', 'tasks', 'vmas', 'cpu ms',
                                           'wall ms'))
    for name, samples in vma['samples'].items():
        print('%-9s %-24s %8d %9d %10.2f %10.2f' % (
            lab, name, median(samples, 'tasks'), median(samples, 'vmas'),
            median(samples, 'cpu_ms'), median(samples, 'wall_ms')))
    for source, why in vma['refused'].items():
        print('%-9s %-24s %s' % (lab, 'vma_stat_*/' + source, 'n/a: ' + why))
    check = vma['count_check']
    bad = [name for name, off in check.items() if off > VMA_COUNT_TOLERANCE]
    print('VMA counts against maps_read lines of the same run (procmap_query, vma_floor: less\n'
          'one per mm, the gate VMA they never get), closest run: at most %.2f%% apart, %s: %s'
          % (100 * max(check.values()), 'vma_read %.2f%%' % (100 * check['vma_read']),
             'MISMATCH ' + ', '.join(bad) if bad else 'ok'))

    print('\nVMA ratios (medians of the per-run ratios)')
    r = vma['ratios']
    for key, (num, den, field) in VMA_RATIOS.items():
        value = r.get(key)
        lost = any(check.get(name, 0) > VMA_COUNT_TOLERANCE for name in (num, den))
        print('%-9s %-42s %-5s %8s' % (lab, '%s / %s' % (num, den), field.split('_')[0],
                                       'n/a' if value is None else
                                       'invalid' if lost else '%.2fx' % value))


# --- watch() and the exporter ----------------------------------------------------

WATCH_RATE, WATCH_SECONDS = 5000, 4      # fork+exit a second, for this long
IDLE_SECONDS = 15                       # the exporter's idle cost: one scrape interval
SCRAPE_SCALE = 20000


def exporter_idle(seconds):
    """CPU ms a task-diag-exporter (root: with its watch) takes over
    @seconds without a scrape, started and warmed up first (one scrape)."""
    import socket
    import urllib.request
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    p = subprocess.Popen([PY, '-m', 'task_diag.exporter', '--listen', '127.0.0.1:%d' % port],
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port, timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

        def cpu():
            with open('/proc/%d/stat' % p.pid, 'rb') as f:
                fields = f.read().rsplit(b')', 1)[1].split()
            return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf('SC_CLK_TCK')
        c0 = cpu()
        time.sleep(seconds)
        return cpu() - c0
    finally:
        p.terminate()
        p.wait()


def measure_events(runs):
    """watch() under WATCH_RATE fork+exit a second (runs), and the
    exporter's CPU between two scrapes (once)."""
    forkrate = os.path.join(BIN, 'forkrate')
    watch = [py_worker('watch_rate', forkrate, WATCH_RATE, WATCH_SECONDS) for _ in range(runs)]
    return {'watch': watch, 'idle_cpu_ms': exporter_idle(IDLE_SECONDS)}


def judge_events(results, by_scale, targets):
    """The targets of watch() and the exporter."""
    sc = by_scale.get((SCRAPE_SCALE, 1))
    scrape = sc['samples'].get('exporter_scrape') if sc else None
    value = median(scrape, 'wall_ms') if scrape else None
    targets.append({'target': 'exporter scrape < 100 ms wall', 'scale': label(SCRAPE_SCALE, 1),
                    'measured': value, 'unit': 'ms',
                    'result': 'not run' if value is None else 'pass' if value < 100 else 'FAIL'})
    ev = results.get('events')
    idle = None
    if ev and scrape:
        # one scrape and the idle rest, per scrape interval
        idle = 100.0 * (median(scrape, 'cpu_ms') + ev['idle_cpu_ms']) / (IDLE_SECONDS * 1000)
    targets.append({'target': 'exporter CPU < 1%% at %d s scrapes' % IDLE_SECONDS,
                    'scale': label(SCRAPE_SCALE, 1), 'measured': idle, 'unit': '%',
                    'result': 'not run' if idle is None else 'pass' if idle < 1 else 'FAIL'})
    lost = None
    if ev:
        lost = max(w['lost'] + (w['tasks'] - w['exits']) for w in ev['watch'])
    targets.append({'target': 'watch() at %d fork+exit/s: nothing lost' % WATCH_RATE,
                    'scale': '-', 'measured': lost, 'unit': 'lost',
                    'result': 'not run' if lost is None else 'pass' if lost == 0 else 'FAIL'})


def judge(results):
    by_scale = {(sc['nproc'], sc['threads']): sc for sc in results['scales']}
    targets = []
    judge_events(results, by_scale, targets)
    for text, scales, key, bound in TARGETS if results['scales'] else ():
        below = key.endswith('_mib') or key.startswith('cost_')    # must stay <= @bound
        for nproc in scales:
            sc = by_scale.get((nproc, 1))
            value = sc['ratios'].get(key) if sc else None
            targets.append({'target': text, 'scale': label(nproc, 1), 'measured': value,
                            'unit': 'MiB' if key.endswith('_mib') else 'x',
                            'result': 'not run' if value is None else
                            'pass' if (value <= bound if below else value >= bound) else 'FAIL'})
    one = results.get('dump_one')
    text = 'DUMP_ONE via API CPU <= stat+status in Python'
    if one:
        value = one['proc']['cpu_us'] / one['api']['cpu_us']
        targets.append({'target': text, 'scale': one['scale'], 'measured': value, 'unit': 'x',
                        'result': 'pass' if value >= 1 else 'FAIL'})
    elif results['scales']:
        targets.append({'target': text, 'scale': '-', 'measured': None, 'unit': 'x',
                        'result': 'not run'})
    vma = results.get('vma')
    if vma:
        for text, key, bound, strict in VMA_TARGETS:
            value = vma['ratios'].get(key)
            source = key.partition('/')[2]
            lost = any(vma['count_check'].get(name, 0) > VMA_COUNT_TOLERANCE
                       for name in VMA_RATIOS[key][:2])
            result = ('n/a' if source in vma['refused'] else 'not run' if value is None else
                      'invalid' if lost else
                      'pass' if (value > bound if strict else value >= bound) else 'FAIL')
            targets.append({'target': text, 'scale': label(vma['nproc'], 1), 'measured': value,
                            'unit': 'x', 'result': result})
    return targets


# --- main -------------------------------------------------------------------------

def parse_scales(text):
    """"1000,10000x5" -> [(1000, 1), (10000, 5)]"""
    scales = []
    for item in text.split(','):
        nproc, _, threads = item.partition('x')
        scales.append((int(nproc), int(threads or 1)))
    return scales


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--scales', default=DEFAULT_SCALES,
                    help='NPROC or NPROCxTHREADS, comma separated (default %(default)s)')
    ap.add_argument('--runs', type=int, default=5, help='runs per method (default 5)')
    ap.add_argument('--one-calls', type=int, default=2000,
                    help='DUMP_ONE calls per run (default 2000)')
    ap.add_argument('--quick', action='store_true',
                    help='only --scales %s and --vma-nproc %d' % (QUICK_SCALES, QUICK_VMA_NPROC))
    ap.add_argument('--vma', action='store_true', help='only the VMA section')
    ap.add_argument('--no-events', dest='events', action='store_false',
                    help='without the section of watch() and the exporter')
    ap.add_argument('--vma-nproc', type=int,
                    help='the load of the VMA section (default %d)' % VMA_NPROC)
    ap.add_argument('--pin-dir', help=argparse.SUPPRESS)
    args = ap.parse_args()
    global vma_pin_dir
    vma_pin_dir = args.pin_dir
    scales = [] if args.vma else parse_scales(QUICK_SCALES if args.quick else args.scales)
    vma_nproc = args.vma_nproc or (QUICK_VMA_NPROC if args.quick else VMA_NPROC)
    if os.geteuid() != 0:
        sys.exit('bench/run.py: run as root (pid_max, and the bpf backend of task_diag)')

    # SIGTERM unwinds like Ctrl-C, through every clean-up below.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    build()
    set_subreaper()
    results = {'kernel': platform.release(), 'cpus': os.cpu_count(), 'runs': args.runs,
               'started': time.strftime('%Y-%m-%d %H:%M:%S'), 'scales': []}
    smallest = min(scales) if scales else None
    with Limits(max([n * t for n, t in scales] + [vma_nproc])), \
            FloorIterator('iter_floor', 'td_floor', PIN_FLOOR), \
            FloorIterator('vma_floor', 'td_vma_floor', PIN_VMA_FLOOR):
        for nproc, threads in scales:
            lab = label(nproc, threads)
            print('%s: starting the load, %d runs' % (lab, args.runs), flush=True)
            t0 = time.monotonic()
            samples = measure_scale(nproc, threads, args.runs, (nproc, threads) == smallest,
                                    args.one_calls)
            one = samples.pop('dump_one', None)
            if one:
                results['dump_one'] = {
                    'scale': lab, 'calls': args.one_calls, 'samples': one,
                    'api': {k: median(one, 'api', k) for k in ('cpu_us', 'wall_us')},
                    'proc': {k: median(one, 'proc', k) for k in ('cpu_us', 'wall_us')}}
            results['scales'].append({'nproc': nproc, 'threads': threads, 'samples': samples,
                                      'ratios': ratios(samples)})
            print('%s: done in %.0f s' % (lab, time.monotonic() - t0), flush=True)
        lab = label(vma_nproc, 1)
        print('VMAs at %s: starting the load, %d runs' % (lab, args.runs), flush=True)
        t0 = time.monotonic()
        samples, refused, child_vmas = measure_vma(vma_nproc, args.runs)
        results['vma'] = {'nproc': vma_nproc, 'samples': samples, 'refused': refused,
                          'fork_child_vmas': child_vmas,
                          'ratios': vma_ratios(samples),
                          'count_check': vma_count_check(samples)}
        print('VMAs at %s: done in %.0f s' % (lab, time.monotonic() - t0), flush=True)
    if args.events and not args.vma:
        print('watch() and the exporter: starting, %d runs' % args.runs, flush=True)
        results['events'] = measure_events(args.runs)
    results['targets'] = judge(results)
    print_tables(results)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    print('\nsamples: %s' % os.path.relpath(os.path.join(OUT, 'results.json')))


if __name__ == '__main__':
    if sys.argv[1:2] == ['--dropin-worker']:       # one measure, in a fresh interpreter
        dropin_worker(sys.argv[2])
        sys.exit(0)
    try:
        main()
    except KeyboardInterrupt:      # the loads are gone and the limits restored by now
        sys.exit('bench/run.py: interrupted')
