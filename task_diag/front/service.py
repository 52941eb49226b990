"""The front's life: start the daemon of /run/task-diag (or another mount
point), find it, ask whether it answers, stop it.  Used by task-diag-load
and by the benchmark; one pid file per mount point."""
import ctypes
import hashlib
import os
import signal
import subprocess
import sys
import time

from .. import bpf_backend, iterproto, libbpf, lsm, wire
from ..iterproto import PIN_DIR
from . import client
from .client import MOUNTPOINT, fuse_mounted

PIDFILE = '/run/task-diag.pid'
LOGFILE = '/run/task-diag.log'
MNT_DETACH = 2
DAEMON = 'task_diag.front.daemon'


def pidfile(path=MOUNTPOINT):
    """The pid file of the front on @path: one per mount point, so that a
    front started on another path never stops, or is taken for, the real
    one."""
    if os.path.abspath(path) == MOUNTPOINT:
        return PIDFILE
    return '/run/task-diag-%s.pid' % hashlib.sha256(os.fsencode(os.path.abspath(path))
                                                     ).hexdigest()[:16]


def front_pid(path=MOUNTPOINT):
    """The pid of a live front daemon serving @path, or None: the pid file's
    process must be our daemon, started for that mount point."""
    try:
        with open(pidfile(path)) as f:
            pid = int(f.read())
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            argv = f.read().split(b'\0')
    except (OSError, ValueError):
        return None
    want = os.fsencode(os.path.abspath(path))
    if DAEMON.encode() in argv and any(a == b'--mountpoint' and b == want
                                       for a, b in zip(argv, argv[1:])):
        return pid
    return None


def front_answers(path=MOUNTPOINT, timeout=0.0):
    """Whether a request on @path gets an answer (our own task), trying
    for up to @timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_RDWR)
            try:
                os.write(fd, wire.encode_request(wire.DUMP_ONE, os.getpid()))
                if os.read(fd, 64 * 1024):
                    return True
            finally:
                os.close(fd)
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _umount(path):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(path.encode(), MNT_DETACH)


def stop_front(path=MOUNTPOINT):
    """Stops the daemon and removes its mount, including a stale one left
    by a daemon that died; returns whether anything was there."""
    found = False
    pid = front_pid(path)
    if pid:
        found = True
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if front_pid(path) != pid:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
    if fuse_mounted(path):
        found = True
        _umount(path)
    if os.path.isfile(path) and not fuse_mounted(path) and os.path.getsize(path) == 0:
        os.unlink(path)                 # the empty mountpoint: nothing may mistake it for the front
    try:
        os.unlink(pidfile(path))
    except FileNotFoundError:
        pass
    return found


def _front_outdated(path=MOUNTPOINT):
    """Whether the code the daemon runs changed after it started (its pid
    file is written at its start): then it is restarted, so that loading
    again after an upgrade does not leave the old daemon serving."""
    here = os.path.dirname(os.path.abspath(client.__file__))
    code = [os.path.join(here, n) for n in os.listdir(here) if n.endswith('.py')]
    code += [bpf_backend.__file__, iterproto.__file__, wire.__file__, libbpf.__file__,
             lsm.__file__]
    try:
        started = os.stat(pidfile(path)).st_mtime
        return max(os.stat(f).st_mtime for f in code) > started
    except OSError:
        return True


def start_front(pin_dir=PIN_DIR, path=MOUNTPOINT):
    """Starts the daemon unless one answers already; waits until the file
    answers.  A stale mount (its daemon killed) is removed first."""
    path = os.path.abspath(path)
    if front_pid(path) and front_answers(path) and not _front_outdated(path):
        return False
    stop_front(path)
    log = open(LOGFILE, 'ab')
    # -I: the daemon runs as root; without it the directory the admin
    # stands in (and PYTHONPATH) would come first on its sys.path, and a
    # module planted there would run as root.  From / besides.
    proc = subprocess.Popen(
        [sys.executable, '-I', '-m', DAEMON, '--mountpoint', path, '--pin-dir', pin_dir],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd='/')
    log.close()
    with open(pidfile(path), 'w') as f:
        f.write('%d\n' % proc.pid)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if fuse_mounted(path) and front_answers(path, timeout=0.5):
            return True
        time.sleep(0.05)
    stop_front(path)
    tail = ''
    try:
        with open(LOGFILE, 'rb') as f:
            tail = f.read()[-400:].decode(errors='replace').strip().splitlines()[-1]
    except (OSError, IndexError):
        pass
    raise OSError(0, 'the front on %s did not answer%s' % (path, ': ' + tail if tail else ''))
