"""task-diag cgtop: tasks, CPU time and memory per cgroup, from one dump.

One request, {DUMP_ALL, BASE | STAT | STATM | CGROUP} (with --cgroup, only
that subtree, selected in the kernel), summed per cgroup v2 as
systemd-cgtop does: each cgroup's row counts the processes of its whole
subtree.  Per process: its thread count (STAT.threads: TASKS), its CPU
time (utime + stime of the whole process, clock ticks: CPU TICKS) and its
resident memory (STATM.resident pages: RSS).  A process counts where its
leader is (its threads may be in threaded cgroups below).  Paths are as
the reader's /proc/PID/cgroup shows them.  Kernel threads sit in the root
cgroup.

    task-diag cgtop [--cgroup PATH] [--depth N] [--all] [--json]
"""
import json
import os
import shutil
import sys

from . import api, cgroups, wire
from .ps_cli import printable

SHOW = wire.SHOW_BASE | wire.SHOW_STAT | wire.SHOW_STATM | wire.SHOW_CGROUP
PAGE = os.sysconf('SC_PAGE_SIZE')


def _outside(path):
    """A path of /.. steps: a cgroup outside the reader's namespace (a
    name may start with '..': '/svc/..cache' is not one)."""
    return path == '/..' or path.startswith('/../')


def _ancestors(path):
    """@path and the cgroups above it, as paths: /a/b, /a, /; a path of
    /.. steps (outside the reader's namespace) only itself."""
    if _outside(path) or path == '/':
        return [path]
    parts = path.strip('/').split('/')
    return ['/' + '/'.join(parts[:i]) for i in range(len(parts), 0, -1)] + ['/']


def summary(tasks, depth=None, top='/'):
    """{path: {'cgroup', 'id', 'processes', 'tasks', 'cpu_ticks', 'rss_bytes'}}
    of the processes of @tasks, each counted in its cgroup and every one
    above it up to @top (rows down to @depth levels below the root)."""
    rows = {}
    under = top.rstrip('/') + '/'
    for t in tasks:
        cg = t.cgroup
        if cg is None:
            continue
        own = cg.proc_path
        for path in _ancestors(own):
            if depth is not None and path != '/' and path.count('/') > depth:
                continue
            if top != '/' and path != top and not path.startswith(under):
                continue            # above the subtree asked for
            r = rows.get(path)
            if r is None:
                r = rows[path] = {'cgroup': path, 'id': None, 'processes': 0, 'tasks': 0,
                                  'cpu_ticks': 0, 'rss_bytes': 0}
            if path == own:
                r['id'] = cg.id
            r['processes'] += 1
            r['tasks'] += t.stat.threads if t.stat else 1
            if t.stat:
                r['cpu_ticks'] += t.stat.utime + t.stat.stime
            if t.statm:
                r['rss_bytes'] += t.statm.resident * PAGE
    return rows


def _size(n):
    for unit in ('B', 'K', 'M', 'G', 'T'):
        if n < 1024 or unit == 'T':
            return ('%d%s' % (n, unit)) if unit == 'B' else '%.1f%s' % (n, unit)
        n /= 1024.0


def main_cgtop(args, out=None):
    out = sys.stdout if out is None else out
    tasks = api.dump(wire.DUMP_ALL, show=SHOW, source=args.source, cgroup=args.cgroup)
    mount = cgroups.mount_point()
    top = '/'
    if args.cgroup is not None and mount:
        where = cgroups.find(cgroups.cgroup_id(args.cgroup), mount)
        if where is not None:
            rel = os.path.relpath(where, mount)
            top = '/' if rel == '.' else '/' + rel
    rows = summary(tasks, args.depth, top)
    for r in rows.values():
        if r['id'] is None and mount and not _outside(r['cgroup']):
            try:        # a cgroup with no process of its own: the id from the mount
                r['id'] = os.stat(os.path.join(mount, r['cgroup'].lstrip('/'))).st_ino
            except OSError:
                pass
    rows = sorted(rows.values(),
                  key=lambda r: (-r['cpu_ticks'], -r['rss_bytes'], r['cgroup']))
    if args.json:
        json.dump(rows, out, indent=1)
        out.write('\n')
        return 0
    if not args.all:
        lines = shutil.get_terminal_size((80, 24)).lines
        rows = rows[:max(lines - 2, 1)]
    hz = os.sysconf('SC_CLK_TCK')
    out.write('%-50s %6s %6s %12s %9s\n' % ('CGROUP', 'PROCS', 'TASKS', 'CPU TIME', 'RSS'))
    for r in rows:
        secs = r['cpu_ticks'] / hz
        out.write('%-50s %6d %6d %12s %9s\n' % (
            printable(r['cgroup']), r['processes'], r['tasks'],
            '%d:%05.2f' % (secs // 60, secs % 60), _size(r['rss_bytes'])))
    return 0
