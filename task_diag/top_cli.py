"""task-diag top: the processes by CPU, refreshed every second.

    task-diag top [--interval S] [--cgroup PATH] [--once [--json]]

Each refresh is one dump ({DUMP_ALL, BASE|CRED|STAT|STATM|STAT_EXT}, with
--cgroup that subtree only): %CPU is a process's utime + stime since the
last refresh over the time between them (100% is one CPU, as top's
Irix mode), RSS its resident memory.  For root it runs over watch(): the
events between two refreshes tell the processes that came and went in
between, which the header counts with the CPU the exited ones used (their
wait4() times), so that a burst of short-lived processes shows.  The
screen is drawn with blessed (fullscreen, no hand-written escapes); q
quits.  --once prints one table (or --json, a list of rows) measured over
one interval and exits.
"""
import json
import os
import sys
import time

from . import api, wire
from .ps_cli import printable, user
from .watch import watch

SHOW = wire.SHOW_BASE | wire.SHOW_CRED | wire.SHOW_STAT | wire.SHOW_STATM | wire.SHOW_STAT_EXT
PAGE = os.sysconf('SC_PAGE_SIZE')
HZ = os.sysconf('SC_CLK_TCK')
COLUMNS = ('PID', 'USER', 'STATE', '%CPU', 'RSS', 'COMMAND')


def snapshot(source, cgroup):
    """(monotonic time, {(pid, start_time): Task}) of one dump."""
    now = time.monotonic()
    tasks = api.dump(wire.DUMP_ALL, show=SHOW, source=source, cgroup=cgroup)
    return now, {(t.pid, t.stat_ext.start_time): t for t in tasks}


def rows(before, after):
    """The table's rows: a dict per process of @after, with its %CPU over
    the time since @before (a process new since then: since it started),
    sorted by CPU, then pid."""
    (t0, old), (t1, new) = before, after
    elapsed = max(t1 - t0, 1e-6) * HZ            # clock ticks
    out = []
    for key, t in new.items():
        ticks = t.stat.utime + t.stat.stime
        prev = old.get(key)
        used = ticks - (prev.stat.utime + prev.stat.stime) if prev else ticks
        out.append({'pid': t.pid, 'user': user(t.cred.euid), 'state': t.base.state_letter,
                    'cpu_percent': round(100.0 * max(used, 0) / elapsed, 1),
                    'rss_bytes': t.statm.resident * PAGE, 'command': printable(t.base.comm)})
    out.sort(key=lambda r: (-r['cpu_percent'], r['pid']))
    return out


def _size(n):
    for unit in ('', 'K', 'M', 'G', 'T'):
        if n < 10240 or unit == 'T':
            return '%d%s' % (n, unit)
        n //= 1024


def table(rs, limit=None):
    lines = ['%7s %-8s %5s %5s %6s %s' % COLUMNS]
    for r in rs[:limit]:
        lines.append('%7d %-8s %5s %5.1f %6s %s' % (r['pid'], r['user'][:8], r['state'],
                                                   r['cpu_percent'], _size(r['rss_bytes']),
                                                   r['command']))
    return lines


class Churn:
    """What a root watch() saw between two refreshes: processes started and
    exited, and the CPU (ticks) of those that exited; None without root."""

    def __init__(self, cgroup):
        try:
            self.w = watch(show=SHOW, cgroup=cgroup)
        except PermissionError:
            self.w = None

    def first(self, source, cgroup):
        """The first snapshot: the watch's own dump where there is one (the
        join needs it), one dump either way."""
        if self.w is None:
            return snapshot(source, cgroup)
        now = time.monotonic()
        return now, {(t.pid, t.stat_ext.start_time): t for t in self.w.dump()}

    def take(self):
        if self.w is None:
            return None
        forks = exits = lost = 0
        ns = 0
        for e in self.w.poll(0):
            if e.kind == 'fork':
                forks += 1
            elif e.kind == 'exit':
                exits += 1
                ns += e.utime + e.stime
            elif e.kind == 'lost':
                lost += e.count
        return forks, exits, ns, lost

    def close(self):
        if self.w is not None:
            self.w.close()


def header(after, churn, interval):
    procs = len(after[1])
    text = 'task-diag top - %s, %d processes' % (time.strftime('%H:%M:%S'), procs)
    if churn is not None:
        forks, exits, ns, lost = churn
        text += ', %d started and %d exited in %.1f s (%.1f%% CPU by those)%s' % (
            forks, exits, interval, 100.0 * ns / 1e9 / interval,
            ', %d events lost' % lost if lost else '')
    return text


def once(args, out):
    before = snapshot(args.source, args.cgroup)
    time.sleep(args.interval)
    rs = rows(before, snapshot(args.source, args.cgroup))
    if args.json:
        json.dump(rs, out, indent=1)
        out.write('\n')
    else:
        out.write('\n'.join(table(rs)) + '\n')
    return 0


def live(args):
    import blessed             # the top extra; only the live view needs it
    term = blessed.Terminal()
    churn = Churn(args.cgroup)
    try:
        before = churn.first(args.source, args.cgroup)
        with term.fullscreen(), term.cbreak(), term.hidden_cursor():
            key = term.inkey(timeout=min(args.interval, 0.2))
            while key.lower() != 'q':
                after = snapshot(args.source, args.cgroup)
                # a terminal that does not say its size: 80x24
                width, height = term.width or 80, term.height or 24
                lines = [header(after, churn.take(), after[0] - before[0]), '']
                lines += table(rows(before, after), max(height - 3, 1))
                out = term.home + term.clear
                for i, text in enumerate(lines):
                    out += term.move_xy(0, i) + (term.reverse(text[:width]) if i == 2
                                                 else text[:width])
                sys.stdout.write(out)
                sys.stdout.flush()
                before = after
                key = term.inkey(timeout=args.interval)
    finally:
        churn.close()
    return 0


def main_top(args, out=None):
    if args.once:
        return once(args, sys.stdout if out is None else out)
    return live(args)
