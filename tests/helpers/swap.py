"""Swap space for the duration of a test module, and nothing left behind.

    def test_x(swap):               # the fixture (tests/conftest.py); skipped, with the reason, when no swap can be had
        swap.kind, swap.path        # 'zram' or 'file', what /proc/swaps names

    with Swap() as s:               # the same as a context manager (SwapUnavailable)
        ...

Where it comes from, in order of preference:
  zram  a device of our own (/sys/class/zram-control/hot_add), else zram0
        when nobody uses it (disksize 0: the claim is the disksize write,
        which the kernel refuses once the device is set up);
  file  a file on the root file system (posix_fallocate, mode 0600; zeros
        written out when swapon refuses the preallocated file).
Then mkswap and swapon(2) at the highest priority, so pages go to it
before any other swap.  At the end: swapoff, then the device reset and
hot-removed (a claimed zram0 only reset), or the file and its directory
deleted.  Swap that was on before is never touched: only the device or
file made here is swapped off.

What cannot be undone by try/finally (the test process SIGKILLed, its
terminal gone) is undone by a guardian: a process of its own session
that holds the other end of a pipe from us, learns each step as it is
taken, and tears down whatever the last step left when the pipe closes
without a "done".
"""
import ctypes
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time


SIZE = 256 << 20
PRIORITY = 32767                    # SWAP_FLAG_PRIO_MASK: the highest there is
SWAP_FLAG_PREFER = 0x8000
LABEL = 'td-test-swap'
ZRAM_CONTROL = '/sys/class/zram-control'

_libc = ctypes.CDLL(None, use_errno=True)


class SwapUnavailable(Exception):
    """No swap could be set up; str() says why."""


def active_swaps():
    """The file names in /proc/swaps (octal escapes undone)."""
    try:
        with open('/proc/swaps', 'rb') as f:
            lines = f.read().split(b'\n')[1:]
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        if line.strip():
            name = line.split()[0].decode('unicode_escape').encode('latin-1')
            out.append(os.fsdecode(name))
    return out


def _syscall_path(fn, path, *args):
    if fn(os.fsencode(path), *args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)


def swapon(path, priority=PRIORITY):
    _syscall_path(_libc.swapon, path,
                  ctypes.c_int(SWAP_FLAG_PREFER | (priority & 0x7fff)))


def swapoff(path):
    _syscall_path(_libc.swapoff, path)


def _read(path):
    with open(path) as f:
        return f.read().strip()


def _write(path, value, retries=0):
    """Writes @value to a sysfs file; EBUSY retried @retries times (a
    device that swapoff just closed may still be held for a moment)."""
    for attempt in range(retries + 1):
        try:
            with open(path, 'w') as f:
                f.write(str(value))
            return
        except OSError as e:
            if e.errno != errno.EBUSY or attempt == retries:
                raise
            time.sleep(0.1)


def _mkswap(path):
    exe = shutil.which('mkswap') or next(
        (p for p in ('/usr/sbin/mkswap', '/sbin/mkswap') if os.access(p, os.X_OK)), None)
    if exe is None:
        raise SwapUnavailable('mkswap not found')
    r = subprocess.run([exe, '-L', LABEL, path], capture_output=True, text=True)
    if r.returncode != 0:
        raise SwapUnavailable('mkswap %s: %s' % (path, (r.stderr or r.stdout).strip()))


def teardown(state):
    """Undoes what @state records; every step tolerates its not having
    happened.  Returns the errors (strings)."""
    errors = []
    path = state.get('path')
    if path and state.get('swapon') and path in active_swaps():
        for attempt in range(3):
            try:
                swapoff(path)
                break
            except OSError as e:
                if attempt == 2:
                    errors.append('swapoff %s: %s' % (path, e.strerror))
                time.sleep(0.2)
    if state.get('kind') == 'zram' and state.get('zram') is not None:
        dev = '/sys/block/zram%d' % state['zram']
        if path in active_swaps():
            errors.append('%s still swapped on: zram%d left as it is' % (path, state['zram']))
        else:
            if state.get('claimed') and os.path.exists(dev):
                try:
                    _write(dev + '/reset', 1, retries=50)
                except OSError as e:
                    errors.append('reset zram%d: %s' % (state['zram'], e.strerror))
            if state.get('hot_added') and os.path.exists(dev):
                try:
                    _write(ZRAM_CONTROL + '/hot_remove', state['zram'], retries=50)
                except OSError as e:
                    errors.append('hot_remove zram%d: %s' % (state['zram'], e.strerror))
    if state.get('node'):
        try:
            os.unlink(state['node'])
        except FileNotFoundError:
            pass
    if state.get('kind') == 'file' and path:
        if path in active_swaps():
            errors.append('%s still swapped on: left as it is' % path)
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    if state.get('dir'):
        try:
            os.rmdir(state['dir'])
        except FileNotFoundError:
            pass
        except OSError as e:
            errors.append('rmdir %s: %s' % (state['dir'], e.strerror))
    return errors


class Swap:
    """Swap of @size bytes while inside; raises SwapUnavailable (with every
    way tried and why it failed) when there is none to be had."""

    def __init__(self, size=SIZE, priority=PRIORITY, prefer=('zram', 'file')):
        self.size, self.priority, self.prefer = size, priority, prefer
        self.state = {}
        self.kind = self.path = None
        self.before = []
        self._guardian = None

    def describe(self):
        s = self.state
        if s.get('kind') == 'zram':
            how = 'zram%d (%s)' % (s['zram'], 'hot-added' if s.get('hot_added') else 'free zram0')
        else:
            how = 'swap file'
        return '%s %s, %d MiB, priority %d' % (how, self.path, self.size >> 20, self.priority)

    # --- the guardian -------------------------------------------------------

    def _tell(self):
        """The guardian learns the current state (before the step it names
        is taken, where the step's result is a name we already know)."""
        if self._guardian is not None:
            try:
                self._guardian.stdin.write((json.dumps(self.state) + '\n').encode())
                self._guardian.stdin.flush()
            except OSError:
                pass

    def _start_guardian(self):
        try:
            self._guardian = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), 'guard'],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True,
                cwd='/')
        except OSError:
            self._guardian = None           # try/finally alone, then

    def _stop_guardian(self, done=True):
        g, self._guardian = self._guardian, None
        if g is None:
            return
        try:
            if done:
                g.stdin.write(b'done\n')
            g.stdin.close()
        except OSError:
            pass
        try:
            g.wait(timeout=30)
        except subprocess.TimeoutExpired:
            g.kill()
            g.wait()

    # --- setting up -----------------------------------------------------------

    def __enter__(self):
        if os.geteuid() != 0:
            raise SwapUnavailable('swap needs root')
        self.before = active_swaps()
        self._start_guardian()
        why = []
        try:
            for kind in self.prefer:
                self.state = {'kind': kind}
                try:
                    getattr(self, '_setup_' + kind)()
                    self.kind, self.path = kind, self.state['path']
                    return self
                except (SwapUnavailable, OSError) as e:
                    if isinstance(e, OSError):
                        e = '%s%s' % (e.strerror, ' (%s)' % e.filename if e.filename else '')
                    why.append('%s: %s' % (kind, e))
                    errors = teardown(self.state)
                    if errors:
                        why.append('%s cleanup: %s' % (kind, '; '.join(errors)))
                    self.state = {}
                    self._tell()
            raise SwapUnavailable('no swap could be set up (' + '; '.join(why) + ')')
        except BaseException:           # interrupted halfway, too
            errors = teardown(self.state)
            self._stop_guardian(done=not errors)
            raise

    def __exit__(self, *exc):
        errors = ['teardown did not finish']
        try:
            errors = teardown(self.state)
        finally:
            # what is left, the guardian tries again (it is told "done" only
            # when nothing is)
            self._stop_guardian(done=not errors)
        if errors:
            raise RuntimeError('swap teardown: ' + '; '.join(errors))
        self.state = {}

    def _free_zram0(self):
        dev = '/sys/block/zram0'
        if not os.path.isdir(dev) or _read(dev + '/disksize') != '0':
            return False
        if os.listdir(dev + '/holders') or '/dev/zram0' in self.before:
            return False
        return True

    def _setup_zram(self):
        s = self.state
        hot_add = os.path.join(ZRAM_CONTROL, 'hot_add')
        why = []
        if os.path.exists(hot_add):
            try:
                s['zram'] = int(_read(hot_add))     # reading it adds the device
                s['hot_added'] = True
                self._tell()
            except OSError as e:
                why.append('hot_add: %s' % e.strerror)
        else:
            why.append('no %s' % hot_add)
        if s.get('zram') is None:
            if not self._free_zram0():
                raise SwapUnavailable(', '.join(why + ['zram0 absent or in use']))
            s['zram'] = 0
        n = s['zram']
        dev = '/sys/block/zram%d' % n
        s['claimed'] = True
        self._tell()
        try:
            _write(dev + '/disksize', self.size)
        except OSError as e:
            if not s.get('hot_added'):
                s['claimed'] = False        # somebody else's after all: not ours to reset
            raise SwapUnavailable('zram%d disksize: %s' % (n, e.strerror))
        s['path'] = self._device_node(n)
        self._tell()
        _mkswap(s['path'])
        self._swapon()

    def _device_node(self, n):
        """/dev/zramN if devtmpfs made it, else a node of our own."""
        major, minor = (int(x) for x in _read('/sys/block/zram%d/dev' % n).split(':'))
        want = os.makedev(major, minor)
        path = '/dev/zram%d' % n
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                st = os.stat(path)
                if stat.S_ISBLK(st.st_mode) and st.st_rdev == want:
                    return path
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        self.state['dir'] = tempfile.mkdtemp(prefix='td-swap-')
        node = os.path.join(self.state['dir'], 'zram%d' % n)
        self.state['node'] = node
        self._tell()
        os.mknod(node, 0o600 | stat.S_IFBLK, want)
        return node

    def _setup_file(self):
        s = self.state
        root = os.stat('/').st_dev
        parent = next(d for d in ('/var/tmp', '/')
                      if os.path.isdir(d) and os.stat(d).st_dev == root)
        s['dir'] = tempfile.mkdtemp(prefix='td-swap-', dir=parent)
        path = s['path'] = os.path.realpath(os.path.join(s['dir'], 'swapfile'))
        self._tell()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.posix_fallocate(fd, 0, self.size)
            os.fsync(fd)
        finally:
            os.close(fd)
        _mkswap(path)
        try:
            self._swapon()
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            # a file system that wants the blocks written, not preallocated
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
            try:
                chunk = bytes(1 << 20)
                for _ in range(self.size >> 20):
                    os.write(fd, chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
            _mkswap(path)
            self._swapon()

    def _swapon(self):
        s = self.state
        s['swapon'] = True
        self._tell()
        try:
            swapon(s['path'], self.priority)
        except OSError as e:
            s['swapon'] = False
            raise SwapUnavailable('swapon %s: %s' % (s['path'], e.strerror))
        if s['path'] not in active_swaps():
            raise SwapUnavailable('%s not in /proc/swaps after swapon' % s['path'])


def _guard():
    """The guardian: the last state read from stdin is torn down when stdin
    ends without "done"."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    state = {}
    for line in sys.stdin.buffer:
        if line.strip() == b'done':
            return 0
        try:
            state = json.loads(line)
        except ValueError:
            continue
    errors = teardown(state)
    if errors:
        sys.stderr.write('swap guardian: %s\n' % '; '.join(errors))
    return 1 if errors else 0


if __name__ == '__main__':
    if sys.argv[1:] == ['guard']:
        sys.exit(_guard())
    sys.exit('usage: swap.py guard')
