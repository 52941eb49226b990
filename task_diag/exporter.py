"""task-diag-exporter: process metrics for Prometheus, per group of
processes, in the shape process-exporter's users know.

    task-diag-exporter [--listen 127.0.0.1:9256] [--group-by comm|cgroup]
                       [--config GROUPS.json] [--cgroup PATH]

Each scrape is one dump ({DUMP_ALL, BASE|STAT|STATM|STAT_EXT|CGROUP}); each
process counts in one group: its comm (--group-by comm, the default), its
cgroup v2 path (--group-by cgroup), or the first of a JSON map
{"group name": "regular expression"} whose expression matches its comm
(--config; unmatched processes are left out).  A process stays in the
group it was first seen in (an exec that changes its comm does not move
its CPU between groups: counters never go back).

Metrics (namedprocess_namegroup_*, labelled groupname): num_procs,
num_threads, memory_bytes{memtype=resident|virtual}, and the counters
cpu_seconds_total{mode=user|system}, major_page_faults_total and
minor_page_faults_total, which include the processes that exited since
the exporter started: as root it runs a task_diag.watch() whose exit
events carry each process's final times and faults, so that a process
that lived between two scrapes is counted too.  Context switches are not
in task_diag's groups: not exported.  With --group-by cgroup a process
that lived only between two scrapes is not counted (its exit event has
no cgroup).  Without root the counters are those of the live processes
only (they may go back when a process exits), and it says so on stderr.
"""
import argparse
import json
import os
import re
import sys
import threading
import time

from . import api, wire
from .watch import watch

SHOW = (wire.SHOW_BASE | wire.SHOW_STAT | wire.SHOW_STATM | wire.SHOW_STAT_EXT |
        wire.SHOW_CGROUP)
PAGE = os.sysconf('SC_PAGE_SIZE')
HZ = os.sysconf('SC_CLK_TCK')
PREFIX = 'namedprocess_namegroup_'


class Groups:
    """Which group a process is in: by comm, by cgroup, or by a regex map."""

    def __init__(self, by='comm', patterns=None):
        self.by = by
        self.patterns = [(name, re.compile(rx)) for name, rx in (patterns or {}).items()]

    def of(self, comm, cgroup):
        if self.patterns:
            return next((name for name, rx in self.patterns if rx.search(comm)), None)
        return cgroup if self.by == 'cgroup' else comm


class Collector:
    """A prometheus_client collector: one dump per scrape, the exits since
    the last from the watch."""

    def __init__(self, groups, cgroup=None, source=None):
        self.groups, self.cgroup, self.source = groups, cgroup, source
        self.lock = threading.Lock()
        self.member = {}            # (pid, start ticks) -> group, sticky
        self.gone = {}              # group -> [utime s, stime s, majflt, minflt] of exited
        self.exited = set()         # keys whose exit was counted (their zombie left out)
        self.watch = None
        # key -> (group, its counters at the last scrape): carried into its
        # group's sums while it is gone from the dump and its exit not yet
        # counted (the event thread behind, or the kernel's reaping ahead
        # of the event), so that the counters never go back
        self.last = {}
        try:
            # the dump's groups: those of a scrape, for the same groups
            self.watch = watch(show=SHOW, cgroup=cgroup)
        except PermissionError:
            print('task-diag-exporter: not root: no exit events, the counters are those of '
                  'the live processes', file=sys.stderr)
        if self.watch is not None:
            self._note(self.watch.dump())
            self._thread = threading.Thread(target=self._events, daemon=True)
            self._thread.start()

    def _group(self, key, comm, cgroup):
        g = self.member.get(key)
        if g is None:
            g = self.member[key] = self.groups.of(comm, cgroup)
        return g

    def _note(self, tasks):
        with self.lock:
            for t in tasks:
                cg = t.cgroup.proc_path if t.cgroup else '/'
                self._group((t.pid, t.stat_ext.start_time), t.base.comm, cg)

    def _events(self):
        while True:
            w = self.watch
            if w is None:
                return
            try:
                self._drain(w, 1.0)
            except OSError as e:        # counted on: say it, keep reading
                print('task-diag-exporter: reading the events: %s' % e, file=sys.stderr)
                time.sleep(1)

    def _drain(self, w, timeout):
        """Counts the exits waiting in @w's ring (for up to @timeout s)."""
        for e in w.poll(timeout):
            if e.kind != 'exit':
                continue
            key = (e.pid, e.start_time)
            with self.lock:
                g = self.member.pop(key, None)
                if g is None:
                    # lived and died between two scrapes: its comm says its
                    # group (its cgroup is not in the event)
                    if self.groups.by == 'cgroup' and not self.groups.patterns:
                        continue
                    g = self.groups.of(e.comm, None)
                if g is None:
                    continue
                acc = self.gone.setdefault(g, [0, 0, 0, 0])
                acc[0] += e.utime / 1e9
                acc[1] += e.stime / 1e9
                acc[2] += e.majflt
                acc[3] += e.minflt
                self.exited.add(key)

    def _sums(self):
        """({group: [procs, threads, resident, virtual, user s, system s,
        majflt, minflt]} of the live processes, {group: [user s, system s,
        majflt, minflt]} of the exited ones) from one dump, read column by
        column (wire.columns(): no record per process)."""
        show = SHOW if self.groups.by == 'cgroup' and not self.groups.patterns else \
            SHOW & ~wire.SHOW_CGROUP
        buf = api.raw(wire.DUMP_ALL, 0, show, source=self.source, cgroup=self.cgroup)
        cols = wire.columns(buf, show)
        if cols is None:                # a message of another shape: record by record
            tasks = wire.decode(buf, show)
            rows = [(t.pid, t.stat_ext.start_time, t.base.comm,
                     t.cgroup.proc_path if t.cgroup else '/', t.stat.threads, t.statm.resident,
                     t.statm.size, t.stat.utime, t.stat.stime, t.stat.majflt, t.stat.minflt)
                    for t in tasks]
        else:
            cgs = [c.proc_path for c in cols.cgroups] if show & wire.SHOW_CGROUP else \
                [None] * cols.n
            rows = zip(cols.pids, cols.col('stat_ext', 'start_time'), cols.comms(), cgs,
                       cols.col('stat', 'threads'), cols.col('statm', 'resident'),
                       cols.col('statm', 'size'), cols.col('stat', 'utime'),
                       cols.col('stat', 'stime'), cols.col('stat', 'majflt'),
                       cols.col('stat', 'minflt'))
        live = {}
        with self.lock:
            keys, last = set(), {}
            member, exited, of = self.member, self.exited, self.groups.of
            for pid, start, comm, cg, thr, res, size, ut, st, majf, minf in rows:
                key = (pid, start)
                keys.add(key)
                if key in exited:
                    continue            # a zombie whose exit is counted
                g = member.get(key)
                if g is None:
                    g = member[key] = of(comm, cg or '/')
                if g is None:
                    continue
                v = live.get(g)
                if v is None:
                    v = live[g] = [0, 0, 0, 0, 0, 0, 0, 0]
                last[key] = (g, (ut, st, majf, minf))
                v[0] += 1
                v[1] += thr
                v[2] += res
                v[3] += size
                v[4] += ut
                v[5] += st
                v[6] += majf
                v[7] += minf
            if self.watch is not None:
                for key, (g, counts) in self.last.items():
                    if key in keys or key in exited:
                        continue
                    last[key] = (g, counts)     # gone, its exit not counted yet
                    v = live.get(g)
                    if v is None:
                        v = live[g] = [0, 0, 0, 0, 0, 0, 0, 0]
                    for i, c in enumerate(counts, 4):
                        v[i] += c
            self.last = last
            if self.watch is None:
                # forget the processes that are gone (with a watch, their
                # exit events do, after counting them)
                for key in list(member):
                    if key not in keys:
                        del member[key]
            self.exited &= keys
            gone = {g: list(v) for g, v in self.gone.items()}
        for v in live.values():         # pages and ticks to bytes and seconds
            v[2] *= PAGE
            v[3] *= PAGE
            v[4] /= HZ
            v[5] /= HZ
        return live, gone

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        live, gone = self._sums()
        procs = GaugeMetricFamily(PREFIX + 'num_procs', 'number of processes in this group',
                                  labels=['groupname'])
        threads = GaugeMetricFamily(PREFIX + 'num_threads', 'number of threads in this group',
                                    labels=['groupname'])
        mem = GaugeMetricFamily(PREFIX + 'memory_bytes', 'memory of the processes in this group',
                                labels=['groupname', 'memtype'])
        cpu = CounterMetricFamily(PREFIX + 'cpu_seconds', 'CPU time of the group, exited '
                                  'processes included', labels=['groupname', 'mode'])
        majf = CounterMetricFamily(PREFIX + 'major_page_faults', 'major page faults of the '
                                   'group, exited processes included', labels=['groupname'])
        minf = CounterMetricFamily(PREFIX + 'minor_page_faults', 'minor page faults of the '
                                   'group, exited processes included', labels=['groupname'])
        for g in sorted(set(live) | set(gone)):
            v = live.get(g, [0, 0, 0, 0, 0.0, 0.0, 0, 0])
            d = gone.get(g, [0.0, 0.0, 0, 0])
            procs.add_metric([g], v[0])
            threads.add_metric([g], v[1])
            mem.add_metric([g, 'resident'], v[2])
            mem.add_metric([g, 'virtual'], v[3])
            cpu.add_metric([g, 'user'], v[4] + d[0])
            cpu.add_metric([g, 'system'], v[5] + d[1])
            majf.add_metric([g], v[6] + d[2])
            minf.add_metric([g], v[7] + d[3])
        return [procs, threads, mem, cpu, majf, minf]

    def close(self):
        w, self.watch = self.watch, None
        if w is not None:
            self._thread.join(timeout=5)
            w.close()


def parse_listen(text):
    host, _, port = text.rpartition(':')
    return host or '127.0.0.1', int(port)


def main(argv=None):
    ap = argparse.ArgumentParser(prog='task-diag-exporter',
                                 description=__doc__.split('\n')[0])
    ap.add_argument('--listen', default='127.0.0.1:9256', type=parse_listen,
                    help='address:port to serve /metrics on (default 127.0.0.1:9256)')
    ap.add_argument('--group-by', choices=('comm', 'cgroup'), default='comm')
    ap.add_argument('--config', help='JSON map {"group name": "regex on comm"}')
    ap.add_argument('--cgroup', help='only the processes of this cgroup v2 subtree')
    ap.add_argument('--source', choices=api.SOURCES, default=None)
    args = ap.parse_args(argv)
    from prometheus_client import REGISTRY, start_http_server
    patterns = None
    if args.config:
        with open(args.config) as f:
            patterns = json.load(f)
    collector = Collector(Groups(args.group_by, patterns), args.cgroup, args.source)
    REGISTRY.register(collector)
    host, port = args.listen
    start_http_server(port, addr=host)
    print('task-diag-exporter: http://%s:%d/metrics' % (host, port), file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        collector.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
