"""make bench: how fast task_diag answers, against /proc and psutil.

    sudo .venv/bin/python bench/run.py [--scales 1000,5000,10000x5] [--runs 5] [--quick]

For each scale (NPROC processes, or NPROCxTHREADS) it starts the load
(bench/fork.c), waits until the tasks exist, and measures, in runs that go
round-robin over the methods (so that every ratio compares runs made under
the same conditions):
  proc_scan      C: open/read/close every /proc/PID/stat (proc_scan.c -p)
  iter_read      C: read the pinned iterator /sys/fs/bpf/task_diag/all (iter_read.c -p)
  psutil         psutil.process_iter(['pid','ppid','name','uids','gids']) into a list
  task_diag      list(task_diag.dump(DUMP_ALL, show=BASE|CRED, source='bpf')), the
                 second call of a fresh interpreter (the first one is reported apart)
  fuse_read      C: one {DUMP_ALL, SHOW_BASE} transaction on /run/task-diag, the
                 FUSE front (iter_read.c -p -w): open, write the request, read to
                 0; after each, the front daemon's VmRSS and VmHWM (its pid in
                 /run/task-diag.pid).  Left out when the front does not answer
                 (task-diag-load starts it)
and, for loads with threads, the same two C readers over every thread
(proc_scan_threads, iter_threads).  At the smallest scale it also compares
DUMP_ONE through the API with reading stat + status in Python (dump_one).

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

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.join(HERE, 'bin')
OUT = os.path.join(HERE, 'out')
PY = sys.executable
PIN_ALL = '/sys/fs/bpf/task_diag/all'
PIN_THREADS = '/sys/fs/bpf/task_diag/all_threads'
FRONT = '/run/task-diag'
FRONT_PIDFILE = '/run/task-diag.pid'
PID_MAX = '/proc/sys/kernel/pid_max'
THREADS_MAX = '/proc/sys/kernel/threads-max'
PID_MAX_LIMIT = 4 << 20         # the kernel's ceiling on 64-bit

DEFAULT_SCALES = '1000,5000,10000,20000,50000,10000x5'
QUICK_SCALES = '1000,5000'

# (target, scales it is judged at, ratio key, minimum ratio); a key with
# "_mib" is a size in MiB that must stay below the bound instead
TARGETS = (
    ('pinned iterator CPU <= 1/10 of the /proc scan', (20000, 50000), 'proc_iter_cpu', 10),
    ('task_diag.dump() >= 30x faster than psutil (wall)', (5000, 20000), 'psutil_dump_wall', 30),
    ('/run/task-diag transaction wall <= 1/5 of /proc scan', (20000, 50000), 'proc_fuse_wall', 5),
    ('/run/task-diag daemon RSS < 64 MiB', (50000,), 'front_rss_mib', 64),
)


# --- building and running the tools -----------------------------------------

def build():
    os.makedirs(BIN, exist_ok=True)
    for tool, extra in (('fork', ['-pthread']), ('proc_scan', []), ('iter_read', [])):
        subprocess.run(['gcc', '-O2', '-Wall', '-o', os.path.join(BIN, tool),
                        os.path.join(HERE, tool + '.c')] + extra, check=True)


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
    return {'tasks': fields['tasks'], 'cpu_ms': fields['cpu_us'] / 1000,
            'wall_ms': fields['wall_us'] / 1000, 'proc_cpu_ms': proc_cpu}


def py_worker(*args):
    out, proc_cpu = spawn([PY, os.path.join(HERE, 'worker.py')] + [str(a) for a in args])
    result = json.loads(out)
    result['proc_cpu_ms'] = proc_cpu
    return result


def front_rss_kib(field='VmRSS'):
    """VmRSS (or another size of /proc/PID/status) of the front daemon, in
    KiB (None without one)."""
    try:
        with open(FRONT_PIDFILE) as f:
            pid = int(f.read())
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def front_answers():
    try:
        c_tool([os.path.join(BIN, 'iter_read'), '-w', FRONT])
        return True
    except (RuntimeError, subprocess.TimeoutExpired):
        return False


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
    }
    if front_answers():
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
    with Load(nproc, threads) as load:
        methods = methods_for(threads, with_one, load.proc.pid, one_calls)
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
    if 'iter_threads' in samples:
        out['proc_iter_threads_cpu'] = per_run('proc_scan_threads', 'iter_threads', 'cpu_ms')
    if 'fuse_read' in samples:
        out['proc_fuse_wall'] = per_run('proc_scan', 'fuse_read', 'wall_ms')
        rss = [s['front_rss_kib'] for s in samples['fuse_read'] if s['front_rss_kib']]
        if rss:
            out['front_rss_mib'] = max(rss) / 1024      # the largest seen after a run
    return out


# --- reporting ----------------------------------------------------------------

def label(nproc, threads):
    name = '%gk' % (nproc / 1000) if nproc >= 1000 else str(nproc)
    return name if threads == 1 else '%s x%d' % (name, threads)


def print_tables(results):
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

    print('\n(the C readers never sleep: a wall time well above the cpu time means other\n'
          ' work on the machine had the CPUs)')
    print('\nratios (medians of the per-run ratios)')
    print('%-9s %20s %22s %21s %24s %20s %15s' % (
        'scale', '/proc-scan/iter CPU', 'psutil/task_diag wall', 'psutil/task_diag CPU',
        'threads /proc/iter CPU', '/proc-scan/FUSE wall', 'front RSS MiB'))
    for sc in results['scales']:
        r = sc['ratios']
        thr = '%.1fx' % r['proc_iter_threads_cpu'] if 'proc_iter_threads_cpu' in r else '-'
        fuse = '%.1fx' % r['proc_fuse_wall'] if 'proc_fuse_wall' in r else '-'
        rss = '%.1f' % r['front_rss_mib'] if 'front_rss_mib' in r else '-'
        print('%-9s %20s %22s %21s %24s %20s %15s' % (
            label(sc['nproc'], sc['threads']), '%.1fx' % r['proc_iter_cpu'],
            '%.1fx' % r['psutil_dump_wall'], '%.1fx' % r['psutil_dump_cpu'], thr, fuse, rss))

    one = results.get('dump_one')
    if one:
        print('\nDUMP_ONE (BASE|CRED|STAT), %d calls, at %s: per call' % (
            one['calls'], one['scale']))
        print('%-28s %10s %10s' % ('way', 'cpu us', 'wall us'))
        for way, name in (('api', 'task_diag.dump(DUMP_ONE)'), ('proc', 'stat+status in Python')):
            print('%-28s %10.1f %10.1f' % (name, one[way]['cpu_us'], one[way]['wall_us']))

    print('\n%-52s %-9s %10s %8s' % ('target', 'scale', 'measured', 'result'))
    for t in results['targets']:
        measured = ('-' if t['measured'] is None else
                    '%.1f MiB' % t['measured'] if t['unit'] == 'MiB' else '%.1fx' % t['measured'])
        print('%-52s %-9s %10s %8s' % (t['target'], t['scale'], measured, t['result']))


def judge(results):
    by_scale = {(sc['nproc'], sc['threads']): sc for sc in results['scales']}
    targets = []
    for text, scales, key, bound in TARGETS:
        below = key.endswith('_mib')        # a size that must stay below @bound
        for nproc in scales:
            sc = by_scale.get((nproc, 1))
            value = sc['ratios'].get(key) if sc else None
            targets.append({'target': text, 'scale': label(nproc, 1), 'measured': value,
                            'unit': 'MiB' if below else 'x',
                            'result': 'not run' if value is None else
                            'pass' if (value < bound if below else value >= bound) else 'FAIL'})
    one = results.get('dump_one')
    text = 'DUMP_ONE via API CPU <= stat+status in Python'
    if one:
        value = one['proc']['cpu_us'] / one['api']['cpu_us']
        targets.append({'target': text, 'scale': one['scale'], 'measured': value, 'unit': 'x',
                        'result': 'pass' if value >= 1 else 'FAIL'})
    else:
        targets.append({'target': text, 'scale': '-', 'measured': None, 'unit': 'x',
                        'result': 'not run'})
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
    ap.add_argument('--quick', action='store_true', help='only --scales ' + QUICK_SCALES)
    args = ap.parse_args()
    scales = parse_scales(QUICK_SCALES if args.quick else args.scales)
    if os.geteuid() != 0:
        sys.exit('bench/run.py: run as root (pid_max, and the bpf backend of task_diag)')

    # SIGTERM unwinds like Ctrl-C, through every clean-up below.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    build()
    set_subreaper()
    results = {'kernel': platform.release(), 'cpus': os.cpu_count(), 'runs': args.runs,
               'started': time.strftime('%Y-%m-%d %H:%M:%S'), 'scales': []}
    smallest = min(scales)
    with Limits(max(n * t for n, t in scales)):
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
    results['targets'] = judge(results)
    print_tables(results)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    print('\nsamples: %s' % os.path.relpath(os.path.join(OUT, 'results.json')))


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:      # the loads are gone and the limits restored by now
        sys.exit('bench/run.py: interrupted')
