"""Life cycle of the front /run/task-diag (spec section 5): task-diag-load
starts the daemon and is a no-op when it answers; a daemon killed with
SIGKILL leaves a stale mount that --status reports and the next
task-diag-load replaces; --unload stops the daemon and unmounts.

Each test leaves the front running (as the other tests expect), whatever
happens in it.
"""
import errno
import os
import signal
import subprocess
import time

import pytest

from task_diag import wire
from task_diag.front import service
from task_diag.front.client import FileBackend
from helpers import ROOT
from helpers.front import FRONT, PY, daemon_pid, reap, task_state, td_errno, td_ok

LOADER = [PY, '-m', 'task_diag.loader.load']


def run_loader(*args):
    return subprocess.run(LOADER + list(args), capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


def fuse_mounts():
    with open('/proc/self/mounts') as f:
        return [line for line in f
                if line.split()[1] == FRONT and line.split()[2].startswith('fuse')]


def gone(pid, timeout=15):
    """Waits until process @pid is gone (reaped if it is our child; a zombie
    that another parent has yet to reap counts as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap(pid)
        if task_state(pid) in (None, 'Z', 'X'):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def restore(front):
    """The front answers at the start; it answers again at the end."""
    assert service.front_answers(timeout=5)
    yield
    if not service.front_answers(timeout=1) or len(fuse_mounts()) != 1:
        r = run_loader()
        assert r.returncode == 0, r.stderr
    assert service.front_answers(timeout=10)


def test_load_twice_keeps_the_daemon(td, restore):
    r = run_loader()                    # settles a reload, should the pins be of another build
    assert r.returncode == 0, r.stderr
    pid = daemon_pid()
    assert pid
    for _ in range(2):
        r = run_loader()
        assert r.returncode == 0, r.stderr
        assert 'already loaded' in r.stdout, r.stdout
        assert daemon_pid() == pid
    assert len(fuse_mounts()) == 1
    r = run_loader('--status')
    assert 'front: %s, daemon pid %d, answering' % (FRONT, pid) in r.stdout, r.stdout
    td_ok(td, '-s', 'one', '-p', pid)


def test_kill9_stale_mount_then_load(td, restore):
    pid = daemon_pid()
    assert pid
    os.kill(pid, signal.SIGKILL)
    assert gone(pid)
    # the mount outlives its daemon: a stale one, that says so
    assert len(fuse_mounts()) == 1
    # (the kernel aborted the connection when the daemon's /dev/fuse closed)
    assert td_errno(td, '-f', FRONT, call='open') in (errno.ECONNABORTED, errno.ENOTCONN)
    r = run_loader('--status')
    assert 'front: stale mount on %s' % FRONT in r.stdout, r.stdout
    # the next load cleans it up and starts a new daemon
    r = run_loader()
    assert r.returncode == 0, r.stderr
    assert '%s answers' % FRONT in r.stdout, r.stdout
    new = daemon_pid()
    assert new and new != pid
    assert len(fuse_mounts()) == 1
    tasks, _ = td_ok(td, '-s', 'one', '-p', new)
    assert [t['pid'] for t in tasks] == [new]


def test_unload_stops_and_unmounts(td, restore):
    pid = daemon_pid()
    assert pid
    r = run_loader('--unload')
    assert r.returncode == 0, r.stderr
    assert 'front stopped' in r.stdout, r.stdout
    assert gone(pid)
    assert fuse_mounts() == []
    assert not os.path.exists(service.PIDFILE)
    r = run_loader('--status')
    assert 'front: not running' in r.stdout, r.stdout
    # and back, for the other tests
    r = run_loader()
    assert r.returncode == 0, r.stderr
    assert '%s answers' % FRONT in r.stdout, r.stdout
    assert daemon_pid() not in (None, pid)
    assert len(fuse_mounts()) == 1


PLANT = '''
import os
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'ran-as-%d' % os.getuid()),
     'w').close()
raise ImportError('planted')
'''


def test_a_module_planted_where_root_stands_does_not_run(front, tmp_path):
    """task-diag-load run from a directory where anyone can write: the
    daemon (root) must not import a module planted there (it starts with
    python -I, from /).  And a front on another mount point has its own pid
    file: stopping it leaves the real one running."""
    plant = tmp_path / 'plant'
    plant.mkdir()
    os.chmod(plant, 0o1777)
    for name in ('mfusepy.py', 'fuse.py', 'errno.py'):   # what the daemon imports first
        (plant / name).write_text(PLANT)
    other = str(tmp_path / 'other-front')
    real = service.front_pid()
    assert real
    code = ('import os, sys; from task_diag.front import service; os.chdir(sys.argv[1]); '
            'service.start_front(path=sys.argv[2])')
    r = subprocess.run([PY, '-c', code, str(plant), other], capture_output=True, text=True,
                       timeout=60, cwd=str(plant), env=dict(os.environ, PYTHONPATH=str(plant)))
    try:
        assert r.returncode == 0, r.stderr
        assert not [p.name for p in plant.iterdir() if p.name.startswith('ran-as-')]
        assert service.front_answers(other, timeout=5)
        ours = service.front_pid(other)
        assert ours and ours != real
        assert service.pidfile(other) != service.PIDFILE
    finally:
        service.stop_front(other)
    assert service.front_pid() == real and service.front_answers(timeout=5)
    assert not os.path.exists(service.pidfile(other))


def test_a_backend_outlives_a_restart_of_the_front(restore):
    """A FileBackend opened before the front restarts (task-diag-load after
    an upgrade, a crash) answers its next request: its descriptor of the
    dead daemon is opened again, once, before anything was sent."""
    b = FileBackend()
    before = wire.decode(b.raw(wire.DUMP_ONE, os.getpid(), wire.SHOW_BASE))
    pid = daemon_pid()
    service.stop_front()
    assert gone(pid)
    assert service.start_front()
    after = wire.decode(b.raw(wire.DUMP_ONE, os.getpid(), wire.SHOW_BASE))
    assert before == after and after[0].pid == os.getpid()
