"""task-diag ps -o: the columns a user may pick, procps' names for them.

Each column names the groups it needs and how it prints a task; cmd_ps_o()
asks for the union of the groups of the columns picked, in one request.
The namespace columns print the inode number of the /proc/PID/ns link, as
procps' (cgroupns ipcns mntns netns pidns userns utsns; timens is ours);
CGROUP is the path of the task's cgroup v2 (the 0:: line of
/proc/PID/cgroup, where procps prints every hierarchy's line), CGROUPID
its id.
"""
import os
import sys

from . import api, wire
from .ps_cli import command, printable, user

PAGE_KIB = os.sysconf('SC_PAGE_SIZE') // 1024


def _ns(field):
    return ((field.upper() + 'NS', wire.SHOW_NS, True,
             lambda t: str(getattr(t.ns, field) or '-')))


# name: (header, groups, right-justified, text of a task)
COLUMNS = {
    'pid': ('PID', wire.SHOW_BASE, True, lambda t: str(t.base.tgid)),
    'tid': ('TID', wire.SHOW_BASE, True, lambda t: str(t.base.pid)),
    'ppid': ('PPID', wire.SHOW_BASE, True, lambda t: str(t.base.ppid)),
    'pgid': ('PGID', wire.SHOW_BASE, True, lambda t: str(t.base.pgid)),
    'sid': ('SID', wire.SHOW_BASE, True, lambda t: str(t.base.sid)),
    'stat': ('STAT', wire.SHOW_BASE, False,
             lambda t: t.base.state_letter + ('s' if t.base.sid == t.base.tgid else '')),
    'user': ('USER', wire.SHOW_CRED, False, lambda t: user(t.cred.euid)),
    'uid': ('UID', wire.SHOW_CRED, True, lambda t: str(t.cred.euid)),
    'comm': ('COMMAND', wire.SHOW_BASE, False, lambda t: printable(t.base.comm)),
    'args': ('COMMAND', wire.SHOW_BASE | wire.SHOW_CMDLINE, False,
             lambda t: command(t.cmdline, t.base.comm, t.base.state_letter == 'Z')),
    'rss': ('RSS', wire.SHOW_STATM, True, lambda t: str(t.statm.resident * PAGE_KIB)),
    'vsz': ('VSZ', wire.SHOW_STATM, True, lambda t: str(t.statm.size * PAGE_KIB)),
    'nlwp': ('NLWP', wire.SHOW_STAT, True, lambda t: str(t.stat.threads)),
    'cgroup': ('CGROUP', wire.SHOW_CGROUP, False,
               lambda t: printable(t.cgroup.proc_path) if t.cgroup else '-'),
    'cgroupid': ('CGROUPID', wire.SHOW_CGROUP, True,
                 lambda t: str(t.cgroup.id) if t.cgroup else '-'),
}
COLUMNS.update({name + 'ns': _ns(name)
                for name in ('cgroup', 'ipc', 'mnt', 'net', 'pid', 'user', 'uts', 'time')})
ALIASES = {'lwp': 'tid', 'spid': 'tid', 'cmd': 'args', 'command': 'args', 'ucomm': 'comm',
           'euid': 'uid', 'euser': 'user', 'thcount': 'nlwp', 'rssize': 'rss', 'vsize': 'vsz'}


def parse_columns(text):
    """The column names of an -o list (commas or spaces); ValueError for
    one we do not have."""
    names = []
    for part in text.replace(',', ' ').split():
        name = ALIASES.get(part.lower(), part.lower())
        if name not in COLUMNS:
            raise ValueError('unknown column %r (one of %s)' % (part, ', '.join(sorted(COLUMNS))))
        names.append(name)
    if not names:
        raise ValueError('no columns')
    return names


def cmd_ps_o(names, threads, source, cgroup, out):
    show = 0
    for name in names:
        show |= COLUMNS[name][1]
    strategy = wire.DUMP_ALL_THREAD if threads else wire.DUMP_ALL
    tasks = api.dump(strategy, show=show | wire.SHOW_BASE, source=source, cgroup=cgroup)
    cols = [COLUMNS[n] for n in names]
    rows = [[text(t) for _, _, _, text in cols] for t in tasks]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, (h, _, _, _) in enumerate(cols)]
    last = len(cols) - 1

    def fmt(values):
        cells = []
        for i, (v, (_, _, right, _)) in enumerate(zip(values, cols)):
            cells.append(v.rjust(widths[i]) if right else
                         (v if i == last else v.ljust(widths[i])))
        return ' '.join(cells)
    out.write(fmt([h for h, _, _, _ in cols]) + '\n')
    for r in rows:
        out.write(fmt(r) + '\n')
    return 0


def main_ps_o(args, out=None):
    return cmd_ps_o(parse_columns(args.o), args.threads, args.source, args.cgroup,
                    sys.stdout if out is None else out)
