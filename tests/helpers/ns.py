"""Readers with other credentials and namespaces, for test_access.py.

A reader is this file run as a script (`python nsutil.py reader JSON`),
started under setpriv, unshare, or a user namespace of its own.  It talks
to the test over a pipe, one JSON line per stage:

  1. (only with "userns": true) it unshares a user namespace and says
     {"stage": "unshared"}; the test writes its uid_map/gid_map, then a line;
  2. it becomes the ids of "become" (inside its namespace), starts the
     sleeping children of "children" and a thread if "thread", and says
     {"stage": "ready", ...pids}; the test may start more processes, then
     writes a line;
  3. it reads what "reads" names (pinned files and the 'bpf' backend use
     the pins under "pin_dir"), takes the kernel's own verdict (readlink
     of /proc/PID/exe, refused exactly when ptrace_may_access(
     PTRACE_MODE_READ_FSCREDS) fails) before and after, says
     {"stage": "result", ...}, and waits for the end of its stdin, so that
     every process it shows is still alive while the test checks it.

Everything it starts dies with it; the test side (Reader) kills the reader
and anything the test registered, whatever happens.
"""
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = sys.executable
NOBODY = 65534
CLONE_NEWUSER = 0x10000000


# ---------------------------------------------------------------------------
# the test side
# ---------------------------------------------------------------------------

def setpriv(uid, gid=None, *extra):
    """The setpriv prefix that runs a command as @uid/@gid (@uid's number
    by default), no groups."""
    gid = uid if gid is None else gid
    return ['setpriv', '--reuid=%d' % uid, '--regid=%d' % gid, '--clear-groups', *extra]


def status_ids(pid, tid=None):
    """(uids, gids, CapPrm) of a task from /proc/PID/status (as we, root, see
    them), or None when it is gone."""
    path = '/proc/%d/status' % pid if tid is None else '/proc/%d/task/%d/status' % (pid, tid)
    try:
        with open(path) as f:
            lines = dict(line.split(':', 1) for line in f if ':' in line)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return ([int(x) for x in lines['Uid'].split()], [int(x) for x in lines['Gid'].split()],
            int(lines['CapPrm'], 16))


def wait_for(predicate, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for ' + what)
        time.sleep(0.01)


def comm_of(pid):
    try:
        with open('/proc/%d/comm' % pid) as f:
            return f.read().strip()
    except (FileNotFoundError, ProcessLookupError):
        return None


def kill(p):
    """Kills a Popen (and, for a process group leader, its group) and reaps it."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL) if p.pid == os.getpgid(p.pid) else p.kill()
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.kill()
        except ProcessLookupError:
            pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    for f in (p.stdin, p.stdout, p.stderr):
        if f:
            try:
                f.close()
            except OSError:
                pass


class Procs:
    """Processes a test starts; all killed at exit, even on failure."""

    def __init__(self):
        self.procs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            kill(p)

    def add(self, p):
        self.procs.append(p)
        return p

    def start(self, argv, **kw):
        """Starts @argv in its own session, stdin and stdout /dev/null
        unless given."""
        kw.setdefault('stdin', subprocess.DEVNULL)
        kw.setdefault('stdout', subprocess.DEVNULL)
        return self.add(subprocess.Popen(argv, start_new_session=True, cwd='/', **kw))

    def sleeper(self, prefix=(), comm='sleep', check=None):
        """Starts `prefix + [sleep 600]` in its own session and waits until
        it runs sleep (prefixes such as setpriv exec it: same pid)."""
        p = self.add(subprocess.Popen(list(prefix) + ['sleep', '600'], start_new_session=True,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE))
        wait_for(lambda: comm_of(p.pid) == comm or p.poll() is not None,
                 'pid %d to exec %s' % (p.pid, comm))
        assert p.poll() is None, '%s failed: %s' % (prefix, p.stderr.read().decode())
        if check:
            wait_for(lambda: check(p.pid), 'pid %d to be set up' % p.pid)
        return p

    def python(self, prefix, code):
        """Starts `prefix + [python -c code]`; waits for its first line
        (the code prints one when it is set up)."""
        p = self.add(subprocess.Popen(prefix + [PY, '-c', code], start_new_session=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, cwd='/'))
        line = _readline(p, 20)
        assert line.strip() == b'ready', 'helper failed: %r %r' % (line, _stderr(p))
        return p


USERNS_SLEEPER = r'''
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000) != 0:
    raise OSError(ctypes.get_errno(), 'unshare(CLONE_NEWUSER)')
print('unshared', flush=True)
sys.stdin.readline()
uid, gid = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([])
os.setresgid(gid, gid, gid)
os.setresuid(uid, uid, uid)
os.execvp('sleep', ['sleep', '600'])
'''


def userns_sleeper(procs, uid_map, gid_map, uid, gid):
    """A sleep in a new user namespace that we (root) create and own, with
    @uid_map/@gid_map, running as @uid/@gid of that namespace."""
    p = procs.add(subprocess.Popen([PY, '-c', USERNS_SLEEPER, str(uid), str(gid)],
                                   start_new_session=True, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd='/'))
    line = _readline(p, 20)
    assert line.strip() == b'unshared', 'helper failed: %r %r' % (line, _stderr(p))
    write_id_maps(p.pid, uid_map, gid_map)
    p.stdin.write(b'go\n')
    p.stdin.flush()
    wait_for(lambda: comm_of(p.pid) == 'sleep' or p.poll() is not None,
             'pid %d to exec sleep' % p.pid)
    assert p.poll() is None, 'helper failed: %s' % _stderr(p)
    return p


def _stderr(p):
    try:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        return p.stderr.read().decode(errors='replace')
    except Exception as e:      # noqa: BLE001 - only for a message
        return '<%s>' % e


def _readline(p, timeout):
    """One line of @p's binary stdout, without blocking past @timeout
    (what follows the line is kept for the next call)."""
    fd = p.stdout.fileno()
    buf = getattr(p, '_nsutil_buf', b'')
    deadline = time.monotonic() + timeout
    while b'\n' not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError('no answer from pid %d within %ds' % (p.pid, timeout))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                p._nsutil_buf = b''
                return buf
            buf += chunk
    line, _, rest = buf.partition(b'\n')
    p._nsutil_buf = rest
    return line + b'\n'


class Reader:
    """A reader process (this file run as a script) and its protocol.
    @prefix: the command that gives it its credentials or namespaces."""

    def __init__(self, prefix, request, timeout=60):
        self.request = request
        self.timeout = timeout
        self.p = subprocess.Popen(prefix + [PY, HERE, 'reader', json.dumps(request)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, cwd='/', start_new_session=True)
        self.extra = Procs()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.extra.__exit__()
        if self.p.poll() is None:
            try:
                self.p.stdin.close()        # the reader's cue to end
            except OSError:
                pass
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        kill(self.p)

    def expect(self, stage):
        line = _readline(self.p, self.timeout)
        if not line:
            raise AssertionError('reader died before %s: %s' % (stage, _stderr(self.p)))
        msg = json.loads(line)
        if msg.get('stage') != stage:
            raise AssertionError('reader said %r, expected stage %s' % (msg, stage))
        return msg

    def go(self, **extra):
        """Lets the reader on to its next stage; @extra is merged into its
        request (before the reads only)."""
        self.p.stdin.write(json.dumps(extra).encode() + b'\n')
        self.p.stdin.flush()


def write_id_maps(pid, uid_map, gid_map):
    """uid_map/gid_map of @pid's user namespace: [(inside, outside, count)].
    We write them as root of the parent namespace, so any mapping goes."""
    for name, m in (('uid_map', uid_map), ('gid_map', gid_map)):
        with open('/proc/%d/%s' % (pid, name), 'w') as f:
            f.write(''.join('%d %d %d\n' % e for e in m))


# ---------------------------------------------------------------------------
# the reader side
# ---------------------------------------------------------------------------

def _task_json(t):
    return {'pid': t.pid, 'tgid': t.tgid,
            'base': list(t.base) if t.base is not None else None,
            'cred': list(t.cred) if t.cred is not None else None}


def _listing(path):
    try:
        return [int(n) for n in os.listdir(path) if n.isdigit()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def _verdict(path):
    try:
        os.readlink(path + '/exe')
    except PermissionError:
        return False
    except OSError:
        pass                # kernel thread, zombie (ENOENT): the check passed
    return True


def kernel_verdicts():
    """{tid: [tgid, may read]} for every thread in our /proc."""
    out = {}
    for tgid in _listing('/proc'):
        for tid in _listing('/proc/%d/task' % tgid):
            out[tid] = [tgid, _verdict('/proc/%d/task/%d' % (tgid, tid))]
    return out


def _do_read(spec, pin_dir=None):
    """One read named by @spec: ["pinned", name of a pinned file under
    @pin_dir] or [source, strategy, pid, show] for task_diag.dump(), whose
    'bpf' backend then uses the pins under @pin_dir."""
    from task_diag import wire
    import task_diag
    from task_diag.iterproto import PIN_DIR
    pin_dir = pin_dir or PIN_DIR
    if spec[0] == 'pinned':
        with open(os.path.join(pin_dir, spec[1]), 'rb') as f:
            data = f.read()
        return [_task_json(t) for t in wire.decode(data)]
    source, strategy, pid, show = spec
    if source == 'bpf' and pin_dir != PIN_DIR and 'bpf' not in task_diag.api._backends:
        from task_diag.bpf_backend import BpfBackend
        task_diag.api._backends['bpf'] = BpfBackend(pin_dir)
    return [_task_json(t) for t in task_diag.dump(strategy, pid, show, source=source)]


def _libc():
    import ctypes
    return ctypes.CDLL(None, use_errno=True)


def reader_main(request):
    say = lambda msg: (sys.stdout.write(json.dumps(msg) + '\n'), sys.stdout.flush())  # noqa: E731
    children = []
    try:
        if request.get('userns'):
            import ctypes
            if _libc().unshare(CLONE_NEWUSER) != 0:
                raise OSError(ctypes.get_errno(), 'unshare(CLONE_NEWUSER)')
            say({'stage': 'unshared', 'pid': os.getpid()})
            if not sys.stdin.readline():
                return
        become = request.get('become')
        if become:
            # Import what the reads need while we may still read everything
            # (the interpreter's own files may be out of reach of the new ids).
            import ctypes.util  # noqa: F401
            import task_diag  # noqa: F401
            from task_diag.procfs import backend  # noqa: F401
            from task_diag import bpf_backend, libbpf  # noqa: F401
            libbpf.lib()
            uid, gid = become
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        for c in request.get('children', ()):
            kw = {}
            if c.get('uid') is not None:
                kw = dict(user=c['uid'], group=c['gid'], extra_groups=[])
            p = subprocess.Popen(['sleep', '600'], stdin=subprocess.DEVNULL, **kw)
            children.append(p)
        for p in children:     # Popen returns once exec succeeded; the name may lag
            deadline = time.monotonic() + 10
            while comm_of(p.pid) != 'sleep' and time.monotonic() < deadline:
                time.sleep(0.01)
        stop = threading.Event()
        tid = []
        if request.get('thread'):
            started = threading.Event()

            def body():
                tid.append(threading.get_native_id())
                started.set()
                stop.wait()
            th = threading.Thread(target=body, daemon=True)
            th.start()
            started.wait()
        say({'stage': 'ready', 'pid': os.getpid(), 'tid': threading.get_native_id(),
             'children': [p.pid for p in children], 'thread': tid[0] if tid else None,
             'ids': [os.getresuid(), os.getresgid()]})
        line = sys.stdin.readline()
        if not line:
            return
        request.update(json.loads(line))      # what the test adds once we are set up
        out = {'stage': 'result', 'verdict_before': kernel_verdicts(), 'reads': {}}
        for name, spec in request.get('reads', {}).items():
            try:
                out['reads'][name] = _do_read(spec, request.get('pin_dir'))
            except Exception as e:      # noqa: BLE001 - reported to the test
                out['reads'][name] = {'error': '%s: %s' % (type(e).__name__, e),
                                      'errno': getattr(e, 'errno', None)}
        out['verdict_after'] = kernel_verdicts()
        out['proc_status'] = {}
        for pid in list(request.get('status_of', ())) + [p.pid for p in children]:
            try:
                with open('/proc/%d/status' % pid) as f:
                    st = dict(line.split(':', 1) for line in f if ':' in line)
                out['proc_status'][pid] = {'uid': [int(x) for x in st['Uid'].split()],
                                           'gid': [int(x) for x in st['Gid'].split()]}
            except OSError as e:
                out['proc_status'][pid] = {'error': str(e)}
        say(out)
        sys.stdin.read()        # until the test is done with us
        stop.set()
    finally:
        for p in children:
            try:
                p.kill()
                p.wait()
            except OSError:
                pass


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == 'reader':
        reader_main(json.loads(sys.argv[2]))
    else:
        sys.exit('usage: nsutil.py reader JSON')
