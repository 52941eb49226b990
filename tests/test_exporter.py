"""task-diag-exporter scraped by a real Prometheus server (Debian's
prometheus, started here on 127.0.0.1 with a config and a data directory
of its own, stopped at the end): the series of a stopped workload have
the values /proc gives, and the counters do not go back when its
processes exit."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from helpers import PY, need
from helpers.procs import wait_states

GROUP = 'tdexpwork'
N = 4
PAGE = os.sysconf('SC_PAGE_SIZE')
HZ = os.sysconf('SC_CLK_TCK')
WORKER = r'''
import ctypes, os, time
ctypes.CDLL(None).prctl(15, b'tdexpwork', 0, 0, 0)
end = time.process_time() + 0.2
while time.process_time() < end:
    pass
blob = bytearray(4 << 20)
for i in range(0, len(blob), 4096):
    blob[i] = 1
os.kill(os.getpid(), 19)
time.sleep(1000)
'''


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_http(url, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def stack(bpf, tmp_path):
    """(query function, workload Popens): the exporter (root: with its
    watch) and Prometheus scraping it every second, both stopped and the
    workload killed at the end."""
    need(os.geteuid() == 0, 'the exporter counts exited processes as root')
    prom = shutil.which('prometheus')
    need(prom, "Debian's prometheus package (make test installs it)")
    workers = [subprocess.Popen([PY, '-c', WORKER]) for _ in range(N)]
    procs = []
    try:
        for w in workers:
            wait_states(w.pid, 'T')
        eport, pport = free_port(), free_port()
        procs.append(subprocess.Popen([sys.executable, '-m', 'task_diag.exporter',
                                       '--listen', '127.0.0.1:%d' % eport],
                                      stderr=subprocess.DEVNULL))
        wait_http('http://127.0.0.1:%d/metrics' % eport)
        config = tmp_path / 'prometheus.yml'
        config.write_text(
            'global: {scrape_interval: 1s, evaluation_interval: 1s}\n'
            'scrape_configs:\n'
            '  - job_name: task-diag\n'
            '    static_configs: [{targets: ["127.0.0.1:%d"]}]\n' % eport)
        procs.append(subprocess.Popen(
            [prom, '--config.file=%s' % config, '--storage.tsdb.path=%s' % (tmp_path / 'data'),
             '--web.listen-address=127.0.0.1:%d' % pport], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
        api = 'http://127.0.0.1:%d/api/v1/' % pport
        wait_http(api + 'status/buildinfo')

        def query(q, path='query', **params):
            url = api + path + '?' + urllib.parse.urlencode(dict(query=q, **params))
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
            assert body['status'] == 'success', body
            return body['data']['result']
        yield query, workers
    finally:
        for p in workers + procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if p in procs else signal.SIGKILL)
        for p in workers + procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def value(query, q, timeout=30):
    """The value of @q once Prometheus has it (a scrape after the start)."""
    deadline = time.monotonic() + timeout
    while True:
        result = query(q)
        if result:
            return float(result[0]['value'][1])
        assert time.monotonic() < deadline, 'no series for %s' % q
        time.sleep(0.5)


def proc_sums(pids):
    utime = stime = resident = 0
    for pid in pids:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            fields = f.read().rsplit(b')', 1)[1].split()
        utime += int(fields[11])
        stime += int(fields[12])
        with open('/proc/%d/statm' % pid) as f:
            resident += int(f.read().split()[1]) * PAGE
    return utime / HZ, stime / HZ, resident


def test_series_equal_proc_and_counters_never_go_back(stack):
    query, workers = stack
    sel = '{groupname="%s"}' % GROUP
    assert value(query, 'namedprocess_namegroup_num_procs' + sel) == N
    assert value(query, 'namedprocess_namegroup_num_threads' + sel) == N
    utime, stime, resident = proc_sums(w.pid for w in workers)
    assert utime + stime >= 0.2 * N * 0.9             # each burned 0.2 s
    user = value(query, 'namedprocess_namegroup_cpu_seconds_total{groupname="%s",mode="user"}'
                 % GROUP)
    system = value(query, 'namedprocess_namegroup_cpu_seconds_total{groupname="%s",'
                   'mode="system"}' % GROUP)
    assert abs(user - utime) < 1e-9 and abs(system - stime) < 1e-9
    assert value(query, 'namedprocess_namegroup_memory_bytes{groupname="%s",memtype="resident"}'
                 % GROUP) == resident
    start = time.time()
    # the workload exits: its CPU stays in the counters (from the exit events)
    for w in workers:
        w.kill()
        w.wait()
    deadline = time.monotonic() + 30
    while value(query, 'namedprocess_namegroup_num_procs' + sel) != 0:
        assert time.monotonic() < deadline, 'the exited processes are still counted'
        time.sleep(0.5)
    time.sleep(2)
    series = query('namedprocess_namegroup_cpu_seconds_total' + sel, path='query_range',
                   start=start - 5, end=time.time(), step='0.5')
    assert len(series) == 2
    for s in series:
        points = [float(v) for _, v in s['values']]
        assert len(points) > 5
        assert points == sorted(points), (s['metric'], points)     # never back
    after = value(query, 'namedprocess_namegroup_cpu_seconds_total{groupname="%s",mode="user"}'
                  % GROUP)
    assert after >= user


def test_group_by_cgroup(bpf):
    """--group-by cgroup: the processes there when the exporter starts are
    in their cgroups' groups (their paths), not all in '/'."""
    need(os.geteuid() == 0, 'making cgroups needs root')
    from helpers.cgroups import CgroupTree
    from task_diag.exporter import Collector, Groups
    with CgroupTree() as tree:
        tree.mkdir('g1')
        tree.mkdir('g2')
        ones = [tree.spawn('g1', ['sleep', '1000']) for _ in range(2)]
        two = tree.spawn('g2', ['sleep', '1000'])
        for p in ones + [two]:
            wait_states(p.pid, 'S')
        c = Collector(Groups('cgroup'), cgroup=tree.path())
        try:
            (procs,) = [m for m in c.collect() if m.name.endswith('num_procs')]
            got = {s.labels['groupname']: s.value for s in procs.samples}
        finally:
            c.close()
        with open('/proc/%d/cgroup' % two.pid) as f:
            g2 = [line[3:].strip() for line in f if line.startswith('0::')][0]
        assert got == {g2[:-len('g2')] + 'g1': 2, g2: 1}
