"""task-diag ps -f against procps' ps -ef (and -f --threads against
ps -efL), line for line, on processes made for it; the groups STATM,
CMDLINE and STAT_EXT through dump and decode; the rules of ps -f's
columns one by one."""
import os
import pwd
import re
import subprocess
import sys
import time

import pytest

from helpers import ROOT
from helpers.procs import wait_states
from task_diag import ps_cli, wire

TD = os.path.join(ROOT, '.venv', 'bin', 'task-diag')
PY = sys.executable
# ps and task-diag in the same UTF-8 locale, writing to a pipe, no COLUMNS
ENV = {k: v for k, v in os.environ.items() if k not in ('COLUMNS', 'LANG', 'LANGUAGE')
       and not k.startswith('LC_')}
ENV['LC_ALL'] = 'C.UTF-8'

# A stopped process of known shape: settings from its environment, which
# ps -f does not show, so that its argv is only what the test chose.
CHILD = r'''
import os, signal, sys, threading
env = os.environ
if env.get('TD_TTY'):
    import fcntl, termios
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
if env.get('TD_COMM'):
    import ctypes
    ctypes.CDLL(None).prctl(15, ctypes.c_char_p(bytes.fromhex(env['TD_COMM'])), 0, 0, 0)
for _ in range(int(env.get('TD_THREADS', '0'))):
    threading.Thread(target=threading.Event().wait, daemon=True).start()
if env.get('TD_BURN'):
    import time
    end = time.process_time() + float(env['TD_BURN'])
    while time.process_time() < end:
        pass
if env.get('TD_EUID'):
    os.setresuid(0, int(env['TD_EUID']), 0)
sys.stdout.write('ready\n')
sys.stdout.flush()
os.kill(os.getpid(), signal.SIGSTOP)
signal.pause()
'''


def long_user():
    """A user whose name is longer than ps's UID column (ps shows it cut,
    with '+'), or None."""
    users = [p for p in pwd.getpwall() if 8 < len(p.pw_name) < 33 and p.pw_uid != 0]
    return users[0].pw_uid if users else None


class Made:
    """Processes made for the comparison, each stopped (so its CPU time
    and state stay put), by label: .pids[label]."""

    def __init__(self):
        self.procs = {}
        self.pids = {}
        self.master = None

    def start(self, label, args, executable=None, stdin_code=False, tty=False, **env):
        e = dict(ENV, **{'TD_' + k.upper(): str(v) for k, v in env.items()})
        kw = {}
        if tty:
            master, slave = os.openpty()
            self.master = master
            kw = dict(stdin=slave, stderr=slave, start_new_session=True)
            e['TD_TTY'] = '1'
        elif stdin_code:
            kw = dict(stdin=subprocess.PIPE)
        else:
            kw = dict(stdin=subprocess.DEVNULL)
        p = subprocess.Popen(args, executable=executable or PY, stdout=subprocess.PIPE,
                             env=e, **kw)
        if tty:
            os.close(slave)
        if stdin_code:
            p.stdin.write(CHILD.encode())
            p.stdin.close()
        self.procs[label] = p
        self.pids[label] = p.pid
        return p

    def wait(self):
        for label, p in self.procs.items():
            if label == 'zombie':
                wait_states(p.pid, 'Z')
                continue
            assert p.stdout.readline() == b'ready\n', label
            wait_states(p.pid, 'T')

    def close(self):
        for p in self.procs.values():
            try:
                p.kill()
            except ProcessLookupError:
                pass
            p.wait()
            if p.stdout:
                p.stdout.close()
        if self.master is not None:
            os.close(self.master)


HOSTILE = [b'\x1b]0;pwn\x07', 'caf\xe9\x01', b'line\nbreak\r', b'\xff\x1bafter\x7f']
HOSTILE_COMM = b'\x1b]0;pwn\x07\xff\xfe'        # sets the terminal's title, then no UTF-8
BIG = ['%03d-' % i + 'x' * 45 for i in range(60)]          # 3000 bytes: one line of 3 KB
HUGE = ['y' * 5000]                                         # past TASK_DIAG_CMDLINE_MAX


@pytest.fixture(scope='module')
def made():
    m = Made()
    try:
        m.start('spaces', [PY, '-c', CHILD, 'one arg with spaces', '', 'two  spaces', 'end '])
        m.start('big', [PY, '-c', CHILD] + BIG)
        m.start('huge', [PY, '-c', CHILD] + HUGE)
        m.start('hostile', [PY, '-c', CHILD] + HOSTILE, comm=HOSTILE_COMM.hex())
        m.start('argv0', [b''], stdin_code=True)            # /proc/PID/cmdline is b'\0'
        m.start('renamed', [b'my-daemon: worker'] + [PY, '-c', CHILD][1:])
        m.start('burner', [PY, '-c', CHILD, 'burner'], burn=1.2)
        m.start('nameless', [PY, '-c', CHILD, 'nameless'], euid=54321)
        m.start('wide_uid', [PY, '-c', CHILD, 'wide uid'], euid=1234567890)
        uid = long_user()
        if uid is not None:
            m.start('long_user', [PY, '-c', CHILD, 'long user'], euid=uid)
        m.start('tty', [PY, '-c', CHILD, 'on a tty'], tty=True)
        m.start('threads', [PY, '-c', CHILD, 'threaded'], threads=2)
        m.start('zombie', ['true'], executable='/bin/true')
        m.wait()
        yield m
    finally:
        m.close()


# --- ps -ef and ours ---------------------------------------------------------

def run(args):
    r = subprocess.run(args, capture_output=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode('utf-8')


def parse(text, threads):
    """(header, {pid or (pid, lwp): (line without C, C)}).  C is the
    2-character field after PPID (and LWP): where it sits depends on the
    columns before it, not on its value, so the rest of the line is
    compared exactly and C, which falls while a stopped task ages, by
    its bounds."""
    lines = text.split('\n')
    assert lines[-1] == '', 'no newline at the end'
    c_field = 4 if threads else 3
    rows = {}
    for line in lines[1:-1]:
        fields = list(re.finditer(r'\S+', line))
        end = fields[c_field].end()
        key = int(fields[1].group())
        if threads:
            key = (key, int(fields[3].group()))
        rows[key] = (line[:end - 2] + '##' + line[end:], int(line[end - 2:end]))
    return lines[0], rows


def compare(source, threads=False):
    """ps, ours, ps again: (ps before, ours, ps after), parsed."""
    flags = ['-efL'] if threads else ['-ef']
    before = parse(run(['ps'] + flags), threads)
    ours = parse(run([TD, '--source', source, 'ps', '-f'] + (['--threads'] if threads else [])),
                 threads)
    after = parse(run(['ps'] + flags), threads)
    return before, ours, after


def check_line(key, before, ours, after):
    """Our line of @key is ps's: the same text, C between ps's two."""
    assert key in ours[1], 'task %r missing from task-diag ps -f' % (key,)
    (line0, c0), (line1, c1), (line2, c2) = before[1][key], ours[1][key], after[1][key]
    assert line0 == line2, 'ps itself changed its line of %r' % (key,)
    assert line1 == line0
    assert c2 <= c1 <= c0


def test_ps_f_is_ps_ef(source, made):
    before, ours, after = compare(source)
    assert ours[0] == before[0]
    assert before[0].split() == 'UID PID PPID C STIME TTY TIME CMD'.split()
    for label, pid in made.pids.items():
        if label != 'huge':
            check_line(pid, before, ours, after)
    check_line(2, before, ours, after)                          # kthreadd
    text = ours[1]

    # What the lines say, so that a ps which went wrong the same way
    # cannot pass: ps -f's rules, spelled out.
    def cmd(label):
        line = text[made.pids[label]][0]
        return line[re.search(r' (\d+-)?\d\d:\d\d:\d\d ', line).end():]

    def joined(*args):
        return ' '.join(args).replace('\n', ' ')
    assert cmd('spaces') == joined(PY, '-c', CHILD, 'one arg with spaces', '', 'two  spaces',
                                   'end ')
    assert cmd('big') == joined(PY, '-c', CHILD, *BIG)
    assert cmd('hostile') == joined(PY, '-c', CHILD, '?]0;pwn? café? line break? ?.after.')
    assert cmd('argv0') == '?'
    assert cmd('renamed').startswith('my-daemon: worker -c')
    assert cmd('zombie') == '[true] <defunct>'
    assert text[2][0].endswith(' [kthreadd]')
    lines = {label: text[pid][0] for label, pid in made.pids.items()}
    assert lines['nameless'].startswith('54321 ')
    assert lines['wide_uid'].startswith('1234567+ ')              # no name: the number, cut
    assert re.match(r'root +\d+ +\d+ ## \d\d:\d\d pts/\d+ ', lines['tty']), lines['tty']
    assert ' 00:00:01 ' in lines['burner']
    assert text[made.pids['burner']][1] > 0
    if 'long_user' in lines:
        name = pwd.getpwuid(long_user()).pw_name
        assert lines['long_user'].startswith(name[:7] + '+ ')


def test_ps_f_cuts_the_command_line_at_cmdline_max(source, made):
    """A command line past TASK_DIAG_CMDLINE_MAX (4096 bytes): ours is its
    first 4096 bytes, ps shows it whole; the rest of the line is ps's."""
    pid = made.pids['huge']
    ps = parse(run(['ps', '-f', '-p', str(pid)]), False)[1][pid][0]
    ours = parse(run([TD, '--source', source, 'ps', '-f']), False)[1][pid][0]
    start = ps.index(PY)
    assert ours[:start] == ps[:start]
    assert len(ours) - start == wire.TASK_DIAG_CMDLINE_MAX
    assert ps.startswith(ours) and len(ps) - start > 5000


def test_ps_f_threads_is_ps_efl(source, made):
    before, ours, after = compare(source, threads=True)
    assert ours[0] == before[0]
    assert before[0].split() == 'UID PID PPID LWP C NLWP STIME TTY TIME CMD'.split()
    pid = made.pids['threads']
    keys = sorted(k for k in before[1] if k[0] == pid)
    assert len(keys) == 3 and keys[0] == (pid, pid)
    assert sorted(k for k in ours[1] if k[0] == pid) == keys
    for key in keys + [(made.pids['burner'],) * 2, (2, 2)]:
        check_line(key, before, ours, after)
    assert [ours[1][k][0].split('##')[1].split()[0] for k in keys] == ['3'] * 3  # NLWP


def whole_system_wrongs(source):
    """(tasks compared, of them equal, {task: why ours is wrong}) of one
    round: ps, ours, ps; tasks that ps shows the same way both times."""
    before, ours, after = compare(source)
    stable = [k for k in before[1] if k in after[1] and before[1][k] == after[1][k]
              and k in ours[1]]
    same, wrong = 0, {}
    for key in stable:
        (line0, c0), (line1, c1) = before[1][key], ours[1][key]
        if c1 != c0:
            wrong[key] = ('C %d, ps %d' % (c1, c0), line1, line0)
        elif line1 == line0:
            same += 1
        elif not name_cut(line0, line1):
            wrong[key] = ('line', line1, line0)
    return len(stable), same, wrong


def name_cut(ps, ours):
    """Whether line @ours is @ps but for what task_diag cannot have: a
    kernel thread's longer name (ours: the 15 bytes of task->comm; a
    workqueue worker's without the '-' and the work queue after it), a
    command line past TASK_DIAG_CMDLINE_MAX."""
    cmd = ours[re.search(r' (\d+-)?\d\d:\d\d:\d\d ', ours).end():]
    if ps.startswith(ours) and 4000 < len(cmd.encode()) <= wire.TASK_DIAG_CMDLINE_MAX:
        return True
    if ' [' not in ours or not ours.endswith(']'):
        return False
    head, name = ours[:-1].rsplit(' [', 1)
    if not (ps.startswith(head + ' [' + name) and ps.endswith(']')):
        return False
    longer = ps[len(head) + 2 + len(name):-1]
    return len(name.encode()) == 15 or longer.startswith('-')


def test_ps_f_whole_system(source, made):
    """Every task that ps shows the same way twice around our run has our
    line, but for a kernel thread's name (name_cut()).  A task on which
    ours differs must differ in three rounds: a task that changed and
    changed back during one (a young process whose C rose and fell) does
    not fail the test, an error of ours does."""
    wrongs = None
    for _ in range(3):
        compared, same, wrong = whole_system_wrongs(source)
        assert compared > 20 and same > len(made.pids)
        wrongs = wrong if wrongs is None else {k: v for k, v in wrong.items() if k in wrongs}
        if not wrongs:
            break
    assert not wrongs


def test_name_cut():
    ps = 'root        13     2  0 08:53 ?        00:00:00 [kworker/R-mm_percpu_wq]'
    assert name_cut(ps, ps.replace('mm_percpu_wq]', 'mm_pe]'))
    assert not name_cut(ps, ps.replace('mm_percpu_wq]', 'mm_p]'))      # 14 bytes: a real cut?
    assert not name_cut(ps, ps.replace('root ', 'daemon').replace('mm_percpu_wq]', 'mm_pe]'))
    ps = 'root      5953     2  0 12:03 ?        00:00:00 [kworker/0:1-events]'
    assert name_cut(ps, ps.replace('-events', ''))
    assert not name_cut(ps, ps.replace('1-events', ''))
    assert not name_cut(ps, ps.replace(' 0 12', ' 1 12').replace('-events', ''))


@pytest.mark.parametrize('columns,cut', [(70, 70), (50, 100), (20, 60)])
def test_ps_f_is_cut_to_columns(source, made, columns, cut):
    """COLUMNS (or a terminal's width) cuts each line as it cuts ps's: at
    the first multiple of it that holds the header."""
    env = dict(ENV, COLUMNS=str(columns))
    pid = made.pids['big']
    ps = subprocess.run(['ps', '-f', '-p', str(pid)], capture_output=True, env=env)
    ours = subprocess.run([TD, '--source', source, 'ps', '-f'], capture_output=True, env=env)
    assert ours.returncode == 0, ours.stderr
    ps_head, ps_rows = parse(ps.stdout.decode(), False)
    head, rows = parse(ours.stdout.decode(), False)
    assert head == ps_head
    assert len(rows[pid][0]) == cut and rows[pid][0] == ps_rows[pid][0]   # C aside


def test_plain_ps_is_as_it_was(source, made):
    out = run([TD, '--source', source, 'ps'])
    assert out.split('\n')[0].split() == 'PID PPID PGID SID STAT COMMAND'.split()
    pid = made.pids['big']
    line = next(x for x in out.split('\n') if x.split()[:1] == [str(pid)])
    assert line.split() == [str(pid), str(os.getpid()), str(os.getpgid(pid)),
                            str(os.getsid(pid)), 'T', 'python']


# --- dump and decode -----------------------------------------------------------

def proc_stat(pid):
    with open('/proc/%d/stat' % pid, 'rb') as f:
        data = f.read()
    return data[data.rindex(b')') + 2:].split()             # field 3 first


def test_dump_shows_cmdline_and_statm(source, made):
    pid = made.pids['spaces']
    out = run([TD, '--source', source, 'dump', '--strategy', 'one', '--pid', str(pid),
               '--show', 'cmdline,statm'])
    lines = out.split('\n')
    assert lines[0] == 'message pid %d tgid %d seq 0' % (pid, pid)
    with open('/proc/%d/statm' % pid) as f:
        statm = f.read().split()
    names = ('size', 'resident', 'shared', 'text', 'lib', 'data', 'dt')
    assert lines[1] == '  statm ' + ' '.join('%s=%s' % kv for kv in zip(names, statm))
    with open('/proc/%d/cmdline' % pid, 'rb') as f:
        raw = f.read()
    args = [PY, '-c', CHILD, 'one arg with spaces', '', 'two  spaces', 'end ']
    assert raw == b'\0'.join(a.encode() for a in args) + b'\0'
    assert lines[2] == '  cmdline raw=%r args=%r' % (raw, args)
    assert lines[3:] == ['']                                # nothing else: no base, no stat_ext


def test_dump_shows_stat_ext_and_decode_reads_it_back(source, made):
    pid = made.pids['tty']
    out = run([TD, '--source', source, 'dump', '--strategy', 'one', '--pid', str(pid),
               '--show', 'base,stat_ext,cmdline'])
    f = proc_stat(pid)
    ext = out.split('\n')[3]
    flags = int(f[6])
    assert ext == ('  stat_ext start_time=%s tty_nr=%s flags=%#x priority=%s nice=%s '
                   'rt_priority=%s policy=%s delayacct_blkio_ticks=%s'
                   % (f[19].decode(), f[4].decode(), flags, f[15].decode(), f[16].decode(),
                      f[37].decode(), f[38].decode(), f[39].decode()))
    assert int(f[4]) >> 8 in range(136, 144)                # a pts
    raw = subprocess.run([TD, '--source', source, 'dump', '--strategy', 'one', '--pid',
                          str(pid), '--show', 'base,stat_ext,cmdline', '--raw'],
                         capture_output=True, env=ENV, check=True).stdout
    decoded = subprocess.run([TD, 'decode'], input=raw, capture_output=True, env=ENV, check=True)
    assert decoded.stdout.decode() == out


def test_dump_of_a_hostile_command_line_writes_no_control_byte(source, made):
    """decode prints comm and the command line escaped: nothing that
    drives a terminal, all of it UTF-8."""
    pid = made.pids['hostile']
    r = subprocess.run([TD, '--source', source, 'dump', '--strategy', 'one', '--pid', str(pid),
                        '--show', 'base,cmdline'], capture_output=True, env=ENV)
    assert r.returncode == 0, r.stderr
    assert not re.search(rb'[\x00-\x09\x0b-\x1f\x7f]', r.stdout)
    text = r.stdout.decode('utf-8')
    assert ' comm=?]0;pwn???\n' in text                    # as ps prints it
    assert r"'\x1b]0;pwn\x07'" in text and r"'\udcff\x1bafter\x7f'" in text


def test_dump_show_names_every_group():
    r = subprocess.run([TD, 'dump', '--show', 'bogus'], capture_output=True, env=ENV)
    assert r.returncode == 2
    for name in ('statm', 'cmdline', 'stat_ext'):
        assert name in r.stderr.decode()


# --- the rules, one by one ------------------------------------------------------

@pytest.mark.parametrize('raw,comm,zombie,cmd', [
    (b'a\0b c\0\0\0', 'x', False, 'a b c'),                 # trailing NULs dropped
    (b'a\0\0b\0', 'x', False, 'a  b'),                      # an empty argument: two spaces
    (b'a b ', 'x', False, 'a b'),                           # no NUL at the end: its space dropped
    (b'a\0b \0', 'x', False, 'a b '),                       # a space before the NUL kept
    (b'a\nb\n', 'x', False, 'a b'),                         # newlines are spaces
    (b'\0', 'x', False, '?'),                               # nothing left: '?'
    (b'\0\0', 'x', True, '?'),
    (b'', 'kthreadd', False, '[kthreadd]'),
    (b'', 'sh', True, '[sh] <defunct>'),
    (b'', 'a\x1bb', False, '[a?b]'),
    (b'\x1b[1m\t\0', 'x', False, '?[1m?'),                  # controls: '?'
    (b'caf\xc3\xa9\x07', 'x', False, 'caf\xe9?'),
    (b'\xe4\xb8\xad\xff\x07\x7f\xc3\xa9', 'x', False, '\u4e2d?..??'),   # after bad UTF-8: '.'
])
def test_command(raw, comm, zombie, cmd):
    assert ps_cli.command(raw, comm, zombie) == cmd


@pytest.mark.parametrize('ticks,text', [
    (0, '00:00:00'), (99, '00:00:00'), (100, '00:00:01'), (6000, '00:01:00'),
    (360000, '01:00:00'), (8639999, '23:59:59'), (8640000, '1-00:00:00'),
    (8640000 * 12 + 366100, '12-01:01:01'),
])
def test_cputime(ticks, text):
    assert ps_cli.cputime(ticks, 100) == text


@pytest.mark.parametrize('ticks,start,boot,c', [
    (0, 0, 1000, 0), (50, 0, 100, 50), (50, 100, 100, 0), (50, 200, 100, 0),
    (500, 0, 100, 99), (3, 0, 299, 1), (3, 0, 301, 0), (29, 0, 100, 29),
    (7, 0, 29, 25),             # 29 ticks through a double are 28 (29 / 100.0 * 100)
])
def test_cpu_percent(ticks, start, boot, c):
    assert ps_cli.cpu_percent(ticks, start, boot, 100) == c


def test_start_stamp():
    now = int(time.mktime((2026, 12, 5, 12, 30, 0, 0, 0, -1)))
    boot = now - 86400 * 400
    at = lambda t: (t - boot) * 100                         # noqa: E731
    assert ps_cli.start_stamp(at(now - 3600), boot, now, 100) == '11:30'
    assert ps_cli.start_stamp(at(now - 12 * 3600 - 60), boot, now, 100) == '00:29'
    assert ps_cli.start_stamp(at(now - 12 * 3600 - 31 * 60), boot, now, 100) == 'Dec04'
    assert ps_cli.start_stamp(at(now - 86400 * 15), boot, now, 100) == 'Nov20'
    assert ps_cli.start_stamp(at(now - 86400 * 340), boot, now, 100) == '2025'
    assert ps_cli.start_stamp(at(now - 3600) + 99, boot, now, 100) == '11:30'   # seconds cut


def test_user_names():
    ps_cli._users.clear()
    assert ps_cli.user(0) == 'root'
    assert ps_cli.user(54321) == '54321'
    assert ps_cli.user(1234567890) == '1234567+'
    assert ps_cli.user(12345678) == '12345678'
    uid = long_user()
    if uid is not None:
        name = pwd.getpwuid(uid).pw_name
        assert ps_cli.user(uid) == name[:7] + '+'


def test_line_layout():
    R, L = ps_cli.RIGHT, ps_cli.LEFT
    cols = [(8, ps_cli.USER), (5, R), (5, R), (2, R), (5, R), (8, L), (8, R), (27, ps_cli.UNLIMITED)]
    values = ['root', '7', '2', ' 0', '12:30', '?', '00:00:00', '[x]']
    line = ps_cli.line
    assert line(cols, values) == 'root         7     2  0 12:30 ?        00:00:00 [x]'
    # a value wider than its column pushes the next ones, which give it back
    assert line(cols, ['1234567890'] + values[1:]) == \
        '1234567890   7     2  0 12:30 ?        00:00:00 [x]'
    assert line(cols, values[:5] + ['pts/1234567'] + values[6:]) == \
        'root         7     2  0 12:30 pts/1234567 00:00:00 [x]'
    assert line(cols, values, max_cols=49) == 'root         7     2  0 12:30 ?        00:00:00 ['
    assert line(cols, values, max_cols=40) == 'root         7     2  0 12:30 ?        00:00:00 '
    assert line(cols, values[:7] + ['\u4e2d\u6587x'], max_cols=51) == \
        'root         7     2  0 12:30 ?        00:00:00 \u4e2d'       # wide: two cells each
    assert ps_cli.active_columns(None, cols) is None
    assert [ps_cli.active_columns(w, cols) for w in (80, 51, 50, 20)] == [80, 51, 100, 60]


class Dev:
    """A /dev of a test's own, with character devices of chosen numbers."""

    def __init__(self, root):
        self.root = root

    def node(self, path, major, minor):
        full = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        os.mknod(full, 0o600 | 0o020000, os.makedev(major, minor))


def test_tty_names(tmp_path):
    if os.geteuid() != 0:
        pytest.skip('mknod needs root')
    dev = Dev(str(tmp_path / 'dev'))
    dev.node('pts/3', 136, 3)
    dev.node('pts/300', 137, 44)
    dev.node('tty2', 4, 2)
    dev.node('ttyS1', 4, 65)
    dev.node('ttyUSB10', 188, 10)
    dev.node('console', 5, 1)
    drivers = tmp_path / 'drivers'
    drivers.write_text('/dev/console         /dev/console    5       1 system:console\n'
                       'serial               /dev/ttyS       4      64 serial\n'
                       'pty_slave            /dev/pts      136 0-1048575 pty:slave\n')
    ttys = ps_cli.Ttys(str(drivers), dev.root)
    assert ttys(0) == '?'
    assert ttys(os.makedev(136, 3)) == 'pts/3'
    assert ttys(os.makedev(137, 44)) == 'pts/300'              # 256 + 44, by its major
    assert ttys(os.makedev(4, 2)) == 'tty2'
    assert ttys(os.makedev(4, 65)) == 'ttyS1'
    assert ttys(os.makedev(188, 10)) == 'ttyUSB10'
    assert ttys(os.makedev(5, 1)) == 'console'
    assert ttys(os.makedev(136, 4)) == '?'                     # no such node
    assert ttys(os.makedev(250, 0)) == '?'
