"""Drive the pinned task_diag iterator in-process (root only).

Reuses what task-diag-load pinned: no program is loaded or verified here.
A request is a td_request stored under the reading thread's id in the
pinned requests map; the program looks it up for each task it visits.
ONE and THREAD read through a link filtered to that task in the kernel, so
they never walk every task.

A Stream answers one request piece by piece (the FUSE front reads it as
its client reads, from whichever of its threads serves that read), and
may answer for another process than the caller: its viewer.
"""
import errno
import os
import threading

from .. import wire
from ..iterproto import (CONFIG, EMPTY_VIEWER, PIN_ALL, PIN_ALL_THREADS, PIN_CONFIG, PIN_DIR,
                         PIN_PROG, PIN_REQUESTS, PROBE_FOUND, PROBE_VIEWER, REQUEST, VIEWER)
from . import libbpf

READ_SIZE = 1 << 20     # the iterator hands out at most its 32 KiB buffer per read
_F = {name: i for i, name in enumerate(REQUEST.names)}


def _thread_start_ticks():
    """Field 22 of this thread's stat: what the program compares with
    task->start_boottime, so that a stale request of a dead thread whose
    tid was reused is ignored."""
    with open('/proc/thread-self/stat', 'rb') as f:
        data = f.read()
    return int(data[data.rindex(b')') + 2:].split()[19])


class PinnedBackend:
    """The BPF backend.  Opening it fails with OSError when nothing is
    pinned or the caller may not use the bpf() syscall."""

    name = 'bpf'

    def __init__(self, pin_dir=PIN_DIR):
        self.pin_dir = pin_dir
        self._fds = []
        try:
            self.link_all = self._get(PIN_ALL)
            self.link_threads = self._get(PIN_ALL_THREADS)
            self.prog = self._get(PIN_PROG)
            self.requests = self._get(PIN_REQUESTS)
        except OSError:
            self.close()
            raise
        self._local = threading.local()
        self._own_pid_ns = None

    def _get(self, name):
        fd = libbpf.obj_get(os.path.join(self.pin_dir, name))
        self._fds.append(fd)
        return fd

    def close(self):
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def config(self):
        """The td_config the loader wrote, as a dict."""
        fd = libbpf.obj_get(os.path.join(self.pin_dir, PIN_CONFIG))
        try:
            value = bytearray(CONFIG.size)
            libbpf.map_lookup(fd, (0).to_bytes(4, 'little'), _cbuf(value))
            return dict(zip(CONFIG.names, CONFIG.struct.unpack(bytes(value))))
        finally:
            os.close(fd)

    # -- the request map, keyed by the calling thread ----------------------

    def _key(self):
        """(map key, start ticks) of the calling thread, as td_iter.h says:
        the thread as it names itself, so that it works in any pid namespace."""
        key = getattr(self._local, 'key', None)
        if key is None:
            ns = os.stat('/proc/thread-self/ns/pid').st_ino
            key = self._local.key = (
                (ns << 32 | threading.get_native_id()).to_bytes(8, 'little'),
                _thread_start_ticks())
        return key

    def put(self, fields):
        """Stores the request @fields (a list in REQUEST order, reader_start
        filled in here) for this thread; returns the key."""
        key, start = self._key()
        fields[_F['reader_start']] = start
        libbpf.map_update(self.requests, key, REQUEST.pack(*fields))
        return key

    def get(self, key):
        """The request stored under @key as a field list, as the program left it."""
        value = bytearray(REQUEST.size)
        if not libbpf.map_lookup(self.requests, key, _cbuf(value)):
            return None
        return list(REQUEST.struct.unpack(bytes(value)))

    def drop(self, key):
        libbpf.map_delete(self.requests, key)

    def read_link(self, link_fd):
        """All of one iterator over @link_fd."""
        fd = libbpf.iter_create(link_fd)
        try:
            chunks = []
            while True:
                chunk = os.read(fd, READ_SIZE)
                if not chunk:
                    return b''.join(chunks)
                chunks.append(chunk)
        finally:
            os.close(fd)

    def filtered_link(self, tid=0, pid=0):
        return libbpf.link_create_task_iter(self.prog, tid=tid, pid=pid)

    def probe(self, strategy, pid, viewer=EMPTY_VIEWER, tid=None):
        """Runs a PROBE_* pass over the task @tid of our pid namespace (all
        tasks when None) and returns the request as the program left it."""
        key = self.put([0, strategy, pid, 0, 0, 0, 0, viewer])
        try:
            if tid is None:
                self.read_link(self.link_all)
            else:
                link = self.filtered_link(tid=tid)
                try:
                    self.read_link(link)
                finally:
                    os.close(link)
            return self.get(key)
        finally:
            self.drop(key)

    def viewer_of(self, pid):
        """The td_viewer of process @pid (a pid of our namespace): whom a
        Stream answers for, when it answers for someone else."""
        fields = self.probe(PROBE_VIEWER, 0, tid=pid)
        viewer = fields[_F['viewer']] if fields else EMPTY_VIEWER
        if not VIEWER.struct.unpack(viewer)[VIEWER.names.index('valid')]:
            raise OSError(errno.ESRCH, 'no process %d' % pid)
        return viewer

    def same_pid_ns(self, viewer):
        """Whether @viewer numbers pids as we do (then the kernel's per-link
        filter, which takes our numbers, can serve ONE and THREAD)."""
        if viewer == EMPTY_VIEWER:
            return True
        if self._own_pid_ns is None:
            own = self.viewer_of(os.getpid())
            self._own_pid_ns = VIEWER.struct.unpack(own)[VIEWER.names.index('pid_ns')]
        return VIEWER.struct.unpack(viewer)[VIEWER.names.index('pid_ns')] == self._own_pid_ns

    # -- one transaction ----------------------------------------------------

    def stream(self, strategy, pid=0, show=wire.SHOW_BASE, seq=0, viewer=EMPTY_VIEWER):
        return Stream(self, strategy, pid, show, seq, viewer)

    def raw(self, strategy, pid=0, show=wire.SHOW_BASE, seq=0):
        """The response bytes for one request, as /proc/task-diag gave them."""
        s = Stream(self, strategy, pid, show, seq)
        try:
            chunks = []
            while True:
                chunk = s.read()
                if not chunk:
                    return b''.join(chunks)
                chunks.append(chunk)
        finally:
            s.close()


def _cbuf(value):
    return (libbpf.ctypes.c_char * len(value)).from_buffer(value)


class Stream:
    """One request's answer, read piece by piece with read().  Errors of
    the request (ESRCH, EINVAL) come from the first read, as the original's
    did; b'' marks the end."""

    def __init__(self, backend, strategy, pid, show, seq, viewer=EMPTY_VIEWER):
        if strategy not in wire.STRATEGIES:
            raise OSError(errno.EINVAL, 'unknown dump strategy %r' % (strategy,))
        self.b = backend
        self.strategy = strategy
        self.pid = pid
        self.fields = [show, strategy, pid, seq, 0, 0, 0, viewer]
        self.fd = -1
        self.started = False
        self.done = False
        self.key = None

    def _open(self, tid=0, pid=0):
        """The iterator: filtered by the kernel to @tid or process @pid
        where our pid numbers are the viewer's, otherwise over every task
        (the program filters)."""
        b = self.b
        if (tid or pid) and b.same_pid_ns(self.fields[_F['viewer']]):
            link = b.filtered_link(tid=tid, pid=pid)
            try:
                self.fd = libbpf.iter_create(link)
            finally:
                os.close(link)      # the iterator holds the link
        elif self.strategy == wire.DUMP_ALL_THREAD:
            self.fd = libbpf.iter_create(b.link_threads)
        else:
            self.fd = libbpf.iter_create(b.link_all)

    def _put(self):
        self.key = self.b.put(self.fields)

    def _start(self):
        strategy, pid = self.strategy, self.pid
        if strategy in wire.NEEDS_PID and pid <= 0:
            raise OSError(errno.ESRCH, 'no task %d' % pid)
        self._open(tid=pid if strategy == wire.DUMP_ONE else 0,
                   pid=pid if strategy == wire.DUMP_THREAD else 0)
        self._put()
        chunk = os.read(self.fd, READ_SIZE)
        if chunk or strategy not in wire.NEEDS_PID:
            return chunk
        # Nothing: no such task, a task the viewer may not see, or (THREAD)
        # a thread id where the kernel's per-process filter wants the tgid.
        got = self.b.get(self.key)
        found, tgid = (got[_F['found']], got[_F['found_tgid']]) if got else (0, 0)
        if strategy == wire.DUMP_THREAD and not found:
            got = self.b.probe(PROBE_FOUND, pid, self.fields[_F['viewer']],
                               tid=pid if self.b.same_pid_ns(self.fields[_F['viewer']]) else None)
            found, tgid = (got[_F['found']], got[_F['found_tgid']]) if got else (0, 0)
            if found:
                os.close(self.fd)
                self.fd = -1
                self.fields[_F['pid']] = tgid
                self._open(pid=tgid)
                self._put()
                return os.read(self.fd, READ_SIZE)
        if not found:
            raise OSError(errno.ESRCH, 'no task %d' % pid)
        return b''

    def read(self, size=READ_SIZE):
        """The next piece (whole messages when @size is at least the
        iterator's 32 KiB), b'' at the end.  The request is stored under
        the calling thread only for the time of the read: a FUSE daemon
        serves one client's reads from any of its threads."""
        if self.done:
            return b''
        try:
            if not self.started:
                self.started = True
                chunk = self._start()
            else:
                self._put()
                chunk = os.read(self.fd, size)
        except OSError:
            self.close()
            raise
        finally:
            if self.key is not None:
                self.b.drop(self.key)
                self.key = None
        if not chunk:
            self.close()
        return chunk

    def close(self):
        self.done = True
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
