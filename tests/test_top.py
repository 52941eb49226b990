"""task-diag top: --once --json against /proc on a process that burns CPU,
and the live view driven in a pty: it draws, refreshes, and quits on q."""
import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from helpers import PY, need

TOP = [sys.executable, '-m', 'task_diag.cli']
SPIN = 'import time\nend = time.time() + 30\nwhile time.time() < end: pass\n'


@pytest.mark.parametrize('source', ['proc', 'bpf'])
def test_once_json(source, request):
    if source == 'bpf':
        request.getfixturevalue('bpf')
    spinner = subprocess.Popen([PY, '-c', SPIN])
    try:
        r = subprocess.run(TOP + ['--source', source, 'top', '--once', '--json',
                                  '--interval', '1'],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        rows = json.loads(r.stdout)
        assert set(rows[0]) == {'pid', 'user', 'state', 'cpu_percent', 'rss_bytes', 'command'}
        cpus = [x['cpu_percent'] for x in rows]
        assert cpus == sorted(cpus, reverse=True)
        (me,) = [x for x in rows if x['pid'] == spinner.pid]
        assert me['cpu_percent'] > 50 and me['state'] == 'R' and me['user'] == 'root'
        with open('/proc/%d/statm' % spinner.pid) as f:
            resident = int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
        assert abs(me['rss_bytes'] - resident) < 1 << 20
        assert me['command'] == 'python3' or me['command'].startswith('python')
    finally:
        spinner.kill()
        spinner.wait()


def _read(fd, seconds):
    out = b''
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if select.select([fd], [], [], 0.05)[0]:
            try:
                out += os.read(fd, 1 << 16)
            except OSError:
                break
    return out


def test_live_view_in_a_pty(bpf):
    """In a 100x30 pty (a terminal that answers no queries: blessed told
    not to wait): the header and the column titles, drawn again at each
    refresh; q quits with 0 and leaves the alternate screen."""
    need(os.geteuid() == 0, 'the live view watches events as root')
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(TERM='xterm-256color', BLESSED_QUERY_TIMEOUT_SECONDS='0.1')
        os.execv(sys.executable, TOP + ['top', '--interval', '0.5'])
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 30, 100, 0, 0))
        out = _read(fd, 3.5)
        assert out.count(b'task-diag top - ') >= 3, out[-2000:]
        assert b'PID USER' in out and b'%CPU' in out and b'COMMAND' in out
        assert b'\x1b[?1049h' in out                    # the alternate screen
        os.write(fd, b'q')
        tail = _read(fd, 1.0)
        _, status = os.waitpid(pid, 0)
        pid = None
        assert os.waitstatus_to_exitcode(status) == 0
        assert b'\x1b[?1049l' in tail                   # left it
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
