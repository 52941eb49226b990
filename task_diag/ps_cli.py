"""task-diag ps: the processes of one task_diag request, like ps.

    task-diag ps              PID PPID PGID SID STAT COMMAND
    task-diag ps --threads    PID TID PPID PGID SID STAT COMMAND
    task-diag ps -f           UID PID PPID C STIME TTY TIME CMD, as `ps -ef`
    task-diag ps -f --threads UID PID PPID LWP C NLWP STIME TTY TIME CMD, as `ps -efL`

-f is procps-ng 4.0's full format, column for column: the rules below
are those of its src/ps/output.c (pr_euser, pr_c, pr_stime, pr_time,
pr_args, show_one_proc), library/readproc.c (read_unvectored),
library/escape.c and library/devname.c, as ps runs in a UTF-8 locale.
Each column comes from the task's groups (BASE, CRED, STAT, CMDLINE,
STAT_EXT) and from what ps reads of the reader's machine (the clock,
btime and uptime, user names, /dev and /proc/tty/drivers, pid_max),
never from the task's /proc directory: every backend prints the same.

Where it differs from ps: the name of a task without a command line
(a kernel thread, a zombie) is task->comm, 15 bytes, where ps shows the
kernel's longer name of kernel threads and workqueue workers
("[kworker/0:1]" for "[kworker/0:1-events]"); a command line is its
first TASK_DIAG_CMDLINE_MAX (4096) bytes, where ps reads 128 KiB; a
terminal that neither /proc/tty/drivers nor the names by major number
find in /dev is '?' (ps also tries the task's /proc/PID/fd/2).
"""
import locale
import os
import pwd
import sys
import time
import unicodedata

from . import api, wire

FULL_SHOW = (wire.SHOW_BASE | wire.SHOW_CRED | wire.SHOW_STAT | wire.SHOW_CMDLINE
             | wire.SHOW_STAT_EXT)


def printable(name):
    """@name as ps prints it: a character that is not printable (a control
    such as ESC, which would drive the terminal, or a byte that is not
    UTF-8, decoded as a surrogate escape) becomes '?', as procps'
    escape_str() does."""
    if name.isprintable():
        return name
    return ''.join(c if c.isprintable() else '?' for c in name)


# --- the plain format -------------------------------------------------------

def cmd_ps_plain(threads, source, out, cgroup=None):
    strategy = wire.DUMP_ALL_THREAD if threads else wire.DUMP_ALL
    tasks = api.dump(strategy, show=wire.SHOW_BASE, source=source, cgroup=cgroup)
    cols = ('PID', 'TID', 'PPID', 'PGID', 'SID') if threads else ('PID', 'PPID', 'PGID', 'SID')
    rows = []
    for t in tasks:
        b = t.base
        stat_ = b.state_letter + ('s' if b.sid == b.tgid else '')
        ids = (b.tgid, b.pid, b.ppid, b.pgid, b.sid) if threads else \
            (b.tgid, b.ppid, b.pgid, b.sid)
        rows.append([str(i) for i in ids] + [stat_, printable(b.comm)])
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    header = ' '.join(c.rjust(w) for c, w in zip(cols, widths)) + ' STAT COMMAND'
    print(header, file=out)
    for r in rows:
        print(' '.join(v.rjust(w) for v, w in zip(r, widths)) + ' ' + r[-2].ljust(4) + ' '
              + r[-1], file=out)
    return 0


# --- text: what procps escapes ------------------------------------------------

# library/escape.c: the length of a UTF-8 sequence by its first byte (-1:
# cannot start one), and what esc_all() makes of a byte ('' keeps it).
_UTF_LEN = [1] * 0x80 + [-1] * 0x42 + [2] * 0x1e + [3] * 0x10 + [4] * 5 + [-1] * 11
_ESC_ALL = bytes(b if 0x20 <= b < 0x7f else ord('.') if b < 0x80 else ord('?')
                 for b in range(256))


def _escape_lib(raw):
    """library/escape.c escape_str() in a UTF-8 locale, on the bytes of a
    C string: a control character becomes '?'; from a byte that cannot
    start a UTF-8 sequence (or one cut by the end) on, esc_all(): controls
    and DEL '.', every byte >= 0x80 '?'.  Only lead bytes are looked at."""
    out = bytearray(raw)
    i, n = 0, len(out)
    while i < n:
        c = out[i]
        k = _UTF_LEN[c]
        if k < 0 or i + k > n:
            out[i:] = out[i:].translate(_ESC_ALL)
            break
        if c < 0x20 or c == 0x7f:
            out[i] = 0x3f
        i += k
    return bytes(out)


def ps_text(raw):
    """The str ps prints for the bytes @raw: readproc's escape_str(), then
    that of ps itself (an invalid sequence or a character that is not
    printable: '?')."""
    return printable(_escape_lib(raw).decode('utf-8', 'surrogateescape'))


def _cells(text):
    """Terminal cells of @text, as wcwidth() counts them (near enough)."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in 'WF' else 1 for c in text)


def command(cmdline, comm, zombie):
    """The CMD of ps -f: the command line as readproc's read_unvectored()
    joins it (trailing NULs dropped, other NULs and newlines made spaces,
    then a last space dropped), '?' when that leaves nothing; without a
    command line (a kernel thread, a zombie, an exited mm) '[comm]', and
    ' <defunct>' after it for a zombie (escape_command())."""
    if cmdline:
        joined = cmdline.rstrip(b'\0')
        kept = len(joined)
        joined = joined.replace(b'\0', b' ').replace(b'\n', b' ')
        if kept == len(cmdline) and joined.endswith(b' '):
            joined = joined[:-1]
        return ps_text(joined) or '?'
    name = comm.encode('utf-8', 'surrogateescape') if isinstance(comm, str) else comm
    return '[' + ps_text(name) + ']' + (' <defunct>' if zombie else '')


# --- the other columns -------------------------------------------------------

_users = {}


def user(uid, width=8):
    """UID of ps -f (pr_euser): the effective user's name, or its number
    when it has none (or a name of 33 bytes or more: pwcache's limit);
    either cut to the column with '+' as its last character when longer
    (1234567890 is '1234567+'), the number whole when the cut would fall
    after a byte that is not ASCII."""
    name = _users.get(uid)
    if name is None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except (KeyError, OverflowError):
            name = None
        if name is None or len(name.encode('utf-8', 'surrogateescape')) >= 33:
            name = str(uid)
        name = printable(name)
        if _cells(name) > width:
            head = name.encode('utf-8', 'surrogateescape')[:width]
            name = head[:-1].decode('utf-8', 'replace') + '+' if head[-1] < 127 else str(uid)
        _users[uid] = name
    return name


def cpu_percent(ticks, start_time, boot_ticks, hz):
    """C (pr_c): CPU ticks * 100 over the ticks of the task's life, at
    most 99; the life as procps takes it, through a double."""
    life = boot_ticks - start_time
    jiffies = int(life / hz * hz) if life > 0 else 0
    return min(ticks * 100 // jiffies, 99) if jiffies else 0


def cputime(ticks, hz):
    """TIME (pr_time): [DD-]HH:MM:SS of @ticks of CPU."""
    t = int(ticks / hz)
    dd, t = divmod(t, 86400)
    text = '%02d:%02d:%02d' % (t // 3600, t // 60 % 60, t % 60)
    return '%d-%s' % (dd, text) if dd else text


def start_stamp(start_time, btime, now, hz):
    """STIME (pr_stime): the start, boot time + @start_time ticks in whole
    seconds, local time: HH:MM today, MmmDD this year, else the year."""
    started = time.localtime(btime + start_time // hz)
    today = time.localtime(now)
    fmt = '%H:%M'
    if today.tm_yday != started.tm_yday:
        fmt = '%b%d'
    if today.tm_year != started.tm_year:
        fmt = '%Y'
    return time.strftime(fmt, started)


# devname.c guess_name(): majors whose names follow a pattern
_GUESS = {11: 'ttyB%d', 17: 'ttyH%d', 19: 'ttyC%d', 22: 'ttyD%d', 23: 'ttyD%d',
          24: 'ttyE%d', 32: 'ttyX%d', 43: 'ttyI%d', 46: 'ttyR%d', 48: 'ttyL%d',
          57: 'ttyP%d', 71: 'ttyF%d', 75: 'ttyW%d', 78: 'ttyM%d', 105: 'ttyV%d',
          112: 'ttyM%d', 148: 'ttyT%d', 154: 'ttySR%d', 164: 'ttyCH%d', 166: 'ttyACM%d',
          172: 'ttyMX%d', 174: 'ttySI%d', 188: 'ttyUSB%d', 208: 'ttyU%d', 216: 'ttyUB%d',
          224: 'ttyY%d', 227: '3270/tty%d', 229: 'iseries/vtty%d'}


class Ttys:
    """TTY (pr_tty8, devname.c dev_to_tty): the name under /dev of the
    device @tty_nr, '?' for none.  As procps: the drivers of
    /proc/tty/drivers first, then the names by major number; a name counts
    only when /dev has it as that device.  (ps last reads the task's
    /proc/PID/fd/2 and fd/255: not here, so a terminal known by neither
    way is '?'.)"""

    def __init__(self, drivers='/proc/tty/drivers', dev='/dev'):
        self.dev = dev
        self.names = {}
        self.drivers = []       # (name, major, minor_first, minor_last, devfs)
        try:
            with open(drivers, 'rb') as f:
                text = f.read(9999).decode('ascii', 'replace')
        except OSError:
            text = ''
        for line in text.split('\n'):
            parts = line.split()
            if len(parts) < 4 or not parts[1].startswith('/dev/') or len(parts[1]) < 6:
                continue
            name, devfs = parts[1][5:], False
            if len(name) >= 3 and name.endswith('%d'):
                name, devfs = name[:-2], True
            try:
                first, _, last = parts[3].partition('-')
                first = int(first)
                last = int(last) if last else first
                self.drivers.insert(0, (name[:15], int(parts[2]), first, last, devfs))
            except ValueError:
                continue

    def _is(self, path, major, minor):
        try:
            rdev = os.stat(os.path.join(self.dev, path)).st_rdev
        except (OSError, ValueError):
            return False
        return os.major(rdev) == major and os.minor(rdev) == minor

    def _find(self, major, minor):
        for name, maj, first, last, devfs in self.drivers:
            if maj == major and first <= minor <= last:
                for path in ('%s%d' % (name, minor), '%s/%d' % (name, minor)) + \
                        (() if devfs else (name,)):
                    if self._is(path, major, minor):
                        return path
                break               # driver_name() tries the first match only
        if major == 4:
            path = 'tty%d' % minor if minor < 64 else 'ttyS%d' % (minor - 64)
        elif 136 <= major <= 143:
            path = 'pts/%d' % (minor + (major - 136) * 256)
        elif major == 3 and minor < 256:
            path = 'tty' + 'pqrstuvwxyzabcde'[minor >> 4] + '0123456789abcdef'[minor & 15]
        elif major in _GUESS:
            path = _GUESS[major] % minor
        elif major == 156:
            path = 'ttySR%d' % (minor + 256)
        else:
            return None
        return path if self._is(path, major, minor) else None

    def __call__(self, tty_nr):
        name = self.names.get(tty_nr)
        if name is None:
            path = self._find(os.major(tty_nr), os.minor(tty_nr)) if tty_nr else None
            name = '?' if path is None else \
                ''.join(c if ' ' < c <= '~' else '?' for c in path[:64])
            self.names[tty_nr] = name
        return name


# --- the table: show_one_proc() ------------------------------------------------

RIGHT, LEFT, USER, UNLIMITED = 'right', 'left', 'user', 'unlimited'
SPACE_AMOUNT = 144          # output.c: the most padding one column gets


def line(columns, values, max_cols=None):
    """One line as show_one_proc() lays it out: @columns [(width, how)],
    @values their texts.  A value wider than its column pushes the rest
    right, and later columns give back what they can.  The last column
    (CMD) is cut to end by @max_cols cells, when given (a terminal)."""
    out = []
    correct = actual = dospace = 0
    last = len(columns) - 1
    for i, ((width, how), text) in enumerate(zip(columns, values)):
        amount = _cells(text)
        leftpad = max(width - amount, 0) if how == RIGHT else 0
        space = correct - actual + leftpad
        if space < 1:
            space = dospace
        space = min(space, SPACE_AMOUNT)
        if i == last:
            if max_cols is not None:
                room = max_cols - max(correct, actual) if correct - actual >= 1 else \
                    max_cols - actual - dospace
                text = _cut(text, max(room, 0))
            out.append(' ' * space + text)
            break
        out.append(' ' * space + text)
        actual += space + amount
        correct += width + 1
        dospace = 1
    return ''.join(out)


def _cut(text, cells):
    if _cells(text) <= cells:
        return text
    out, used = [], 0
    for c in text:
        w = _cells(c)
        if used + w > cells:
            break
        out.append(c)
        used += w
    return ''.join(out)


def pid_width():
    """The width of a PID column: as many digits as pid_max has."""
    try:
        with open('/proc/sys/kernel/pid_max') as f:
            return len(f.read().strip()) or 5
    except OSError:
        return 5


class Clock:
    """What the times of ps -f are taken against, read once: clock ticks
    per second, the boot time (btime of /proc/stat), the uptime in ticks
    (/proc/uptime through a double, as libproc2 does) and now."""

    def __init__(self):
        self.hz = os.sysconf('SC_CLK_TCK')
        self.now = int(time.time())
        self.btime = 0
        with open('/proc/stat', 'rb') as f:
            for row in f:
                if row.startswith(b'btime '):
                    self.btime = int(row.split()[1])
                    break
        with open('/proc/uptime', 'rb') as f:
            self.boot_ticks = int(float(f.read().split()[0]) * self.hz)


def full_rows(tasks, threads, clock, ttys):
    """The values of each task's ps -f line (ps -fL with @threads)."""
    hz = clock.hz
    for t in tasks:
        b, st, ext = t.base, t.stat, t.stat_ext
        ticks = st.utime + st.stime
        values = [user(t.cred.euid), str(b.tgid), str(b.ppid)]
        if threads:
            values.append(str(b.pid))
        values.append('%2d' % cpu_percent(ticks, ext.start_time, clock.boot_ticks, hz))
        if threads:
            values.append(str(st.threads))
        values += [start_stamp(ext.start_time, clock.btime, clock.now, hz), ttys(ext.tty_nr),
                   cputime(ticks, hz),
                   command(t.cmdline, b.comm, b.state_letter == 'Z')]
        yield values


def full_columns(threads):
    """[(header, width, how)] of ps -f (-fL with @threads)."""
    pid = pid_width()
    cols = [('UID', 8, USER), ('PID', max(pid, 3), RIGHT), ('PPID', max(pid, 4), RIGHT)]
    if threads:
        cols.append(('LWP', max(pid, 3), RIGHT))
    cols.append(('C', 2, RIGHT))
    if threads:
        cols.append(('NLWP', 4, RIGHT))
    return cols + [('STIME', 5, RIGHT), ('TTY', 8, LEFT), ('TIME', 8, RIGHT),
                   ('CMD', 27, UNLIMITED)]


OUTBUF_SIZE = 2 * 64 * 1024


def screen_columns(out):
    """The screen width of ps (global.c set_screen_size()): COLUMNS when
    it is a number below 128 KiB, else a terminal's width; None (lines
    are not cut) when @out is no terminal."""
    cols = None
    try:
        if out.isatty():
            cols = os.get_terminal_size(out.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        pass
    try:
        env = int(os.environ.get('COLUMNS', ''), 0)
        if 0 < env < OUTBUF_SIZE:
            cols = env
    except ValueError:
        pass
    return cols


def active_columns(screen, columns):
    """Where ps cuts its lines (output.c check_header_width()): the
    smallest multiple of the @screen width that holds every column at
    its width, the last at 3, and a space between each two."""
    if screen is None:
        return None
    total = sum(columns[i][0] for i in range(len(columns) - 1)) + 3 + len(columns) - 1
    active = screen
    while active < total and active < OUTBUF_SIZE // 2:
        active += screen
    return active


def cmd_ps_full(threads, source, out, cgroup=None):
    try:
        locale.setlocale(locale.LC_TIME, '')     # month names as ps gives them
    except locale.Error:
        pass
    strategy = wire.DUMP_ALL_THREAD if threads else wire.DUMP_ALL
    # ps -L lists each process's threads together, the leader first
    tasks = sorted(api.dump(strategy, show=FULL_SHOW, source=source, cgroup=cgroup),
                   key=lambda t: (t.tgid, t.pid != t.tgid, t.pid))
    clock = Clock()
    cols = full_columns(threads)
    layout = [(w, how) for _, w, how in cols]
    max_cols = active_columns(screen_columns(out), layout)
    write = out.write
    write(line(layout, [c for c, _, _ in cols], max_cols) + '\n')
    for values in full_rows(tasks, threads, clock, Ttys()):
        write(line(layout, values, max_cols) + '\n')
    return 0


def cmd_ps(args, out=None):
    out = sys.stdout if out is None else out
    cgroup = getattr(args, 'cgroup', None)
    if args.full:
        return cmd_ps_full(args.threads, args.source, out, cgroup)
    return cmd_ps_plain(args.threads, args.source, out, cgroup)
