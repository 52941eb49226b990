"""task-diag: the command line.

    task-diag ps [--threads]          PID PPID PGID SID STAT COMMAND, like ps
    task-diag ps -f [--threads]       UID PID PPID C STIME TTY TIME CMD, like ps -ef (-efL)
    task-diag ps -o pid,cgroup,netns  the columns asked for (ps -o); --cgroup PATH: its subtree
    task-diag cgtop [--json]          processes, CPU time and memory per cgroup
    task-diag top [--once [--json]]   the processes by CPU, live (q quits)
    task-diag maps PID [--smaps]      its mappings, like /proc/PID/maps (or smaps)
    task-diag dump [options] > f.bin  one request, the raw response
    task-diag decode < f.bin          print a response message by message
"""
import argparse
import sys

from . import api, ps_columns, wire
from .cgtop_cli import main_cgtop
from .top_cli import main_top
from .maps_cli import main_maps
from .ps_cli import cmd_ps, printable  # noqa: F401 (printable: cli's, as it was)

GROUPS = {'base': wire.SHOW_BASE, 'cred': wire.SHOW_CRED, 'stat': wire.SHOW_STAT,
          'vma': wire.SHOW_VMA, 'vma_stat': wire.SHOW_VMA | wire.SHOW_VMA_STAT,
          'statm': wire.SHOW_STATM, 'cmdline': wire.SHOW_CMDLINE,
          'stat_ext': wire.SHOW_STAT_EXT, 'ns': wire.SHOW_NS, 'cgroup': wire.SHOW_CGROUP}
STRATEGIES = {name: value for value, name in wire.STRATEGY_NAMES.items()}


def parse_show(text):
    show = 0
    for name in text.split(','):
        if name not in GROUPS:
            raise argparse.ArgumentTypeError('unknown group %r (one of %s)'
                                             % (name, ', '.join(GROUPS)))
        show |= GROUPS[name]
    return show


def _columns(text):
    try:
        ps_columns.parse_columns(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))
    return text


def _cgroup(text):
    """A cgroup as the command line names it: a number is an id, anything
    else a path."""
    return int(text) if text.isdigit() else text


def cmd_ps_or_o(args):
    """ps, ps -f (ps_cli), or the columns of -o (ps_columns)."""
    if args.o:
        return ps_columns.main_ps_o(args)
    return cmd_ps(args)


def cmd_dump(args):
    data = api.raw(STRATEGIES[args.strategy], args.pid, args.show, args.seq, source=args.source,
                   cgroup=args.cgroup)
    if args.raw:
        sys.stdout.buffer.write(data)
    else:
        from . import nlmsg     # pyroute2: 110 ms of start-up that ps does not need
        nlmsg.dump_text(data)
    return 0


def cmd_maps(args):
    return main_maps(args.pid, args.smaps, args.source)


def cmd_decode(args):
    from . import nlmsg     # as in cmd_dump
    data = open(args.file, 'rb').read() if args.file else sys.stdin.buffer.read()
    nlmsg.dump_text(data)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog='task-diag', description=__doc__.split('\n')[0])
    ap.add_argument('--source', choices=api.SOURCES, default=None,
                    help='force a backend (default: the fastest that works)')
    sub = ap.add_subparsers(dest='cmd', required=True)

    p = sub.add_parser('ps', help='list processes like ps')
    p.add_argument('--threads', '-L', action='store_true', help='every thread')
    p.add_argument('-f', dest='full', action='store_true',
                   help="full format, as procps' ps -ef: UID PID PPID C STIME TTY TIME CMD")
    p.add_argument('-o', metavar='COLUMNS', type=_columns,
                   help='the columns to print, comma-separated (ps -o): ' + ', '.join(
                       sorted(ps_columns.COLUMNS)))
    p.add_argument('--cgroup', type=_cgroup, metavar='PATH|ID',
                   help="only the processes of this cgroup v2's subtree")
    p.set_defaults(func=cmd_ps_or_o)

    p = sub.add_parser('cgtop', help='processes, CPU time and memory per cgroup')
    p.add_argument('--cgroup', type=_cgroup, metavar='PATH|ID', help='only this subtree')
    p.add_argument('--depth', type=int, default=3,
                   help='rows for cgroups down to this depth (default 3)')
    p.add_argument('--all', action='store_true', help='every row, not one screen')
    p.add_argument('--json', action='store_true', help='the rows as JSON, every one')
    p.set_defaults(func=main_cgtop)

    p = sub.add_parser('top', help='the processes by CPU, refreshed every second (q quits)')
    p.add_argument('--interval', type=float, default=1.0, help='seconds between refreshes')
    p.add_argument('--cgroup', type=_cgroup, metavar='PATH|ID', help='only this subtree')
    p.add_argument('--once', action='store_true', help='one table over one interval, then exit')
    p.add_argument('--json', action='store_true', help='with --once: the rows as JSON')
    p.set_defaults(func=main_top)

    p = sub.add_parser('maps', help="a process's mappings, like /proc/PID/maps")
    p.add_argument('pid', type=int)
    p.add_argument('--smaps', action='store_true', help='with statistics, like smaps')
    p.set_defaults(func=cmd_maps)

    p = sub.add_parser('dump', help='send one request, print or write the response')
    p.add_argument('--strategy', choices=STRATEGIES, default='all')
    p.add_argument('--pid', type=int, default=0)
    p.add_argument('--show', type=parse_show, default=wire.SHOW_BASE,
                   help='groups, comma-separated: ' + ', '.join(GROUPS))
    p.add_argument('--seq', type=int, default=0)
    p.add_argument('--raw', action='store_true', help='write the binary response')
    p.add_argument('--cgroup', type=_cgroup, metavar='PATH|ID',
                   help="ALL, ALL_THREAD: only this cgroup v2's subtree")
    p.set_defaults(func=cmd_dump)

    p = sub.add_parser('decode', help='print a binary response (stdin or FILE)')
    p.add_argument('file', nargs='?')
    p.set_defaults(func=cmd_decode)

    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except OSError as e:
        print('task-diag: %s' % (e.strerror or e), file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except wire.DecodeError as e:
        print('task-diag: malformed response: %s' % e, file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
