"""Drive the pinned task_diag iterator in-process (root only).

Reuses what task-diag-load pinned: no program is loaded or verified here.
One request costs a map update, an iterator (plus, for ONE and THREAD, a
link filtered to that task in the kernel, so they never walk every task),
its reads, and a map delete.
"""
import errno
import os
import threading

from .. import wire
from ..iterproto import (CONFIG, PIN_ALL, PIN_ALL_THREADS, PIN_CONFIG, PIN_DIR,
                                   PIN_PROG, PIN_REQUESTS, PROBE_FOUND, REQUEST, EMPTY_VIEWER)
from . import libbpf

READ_SIZE = 1 << 20     # the iterator hands out at most its 32 KiB buffer per read


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
            key = (0).to_bytes(4, 'little')
            value = bytearray(CONFIG.size)
            buf = (libbpf.ctypes.c_char * CONFIG.size).from_buffer(value)
            libbpf.map_lookup(fd, key, buf)
            return dict(zip(CONFIG.names, CONFIG.struct.unpack(bytes(value))))
        finally:
            os.close(fd)

    # -- one transaction ----------------------------------------------------

    def _start_ticks(self):
        ticks = getattr(self._local, 'start', None)
        if ticks is None:
            ticks = self._local.start = _thread_start_ticks()
        return ticks

    def _read_iter(self, link_fd):
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

    def _read_filtered(self, tid=0, pid=0):
        link = libbpf.link_create_task_iter(self.prog, tid=tid, pid=pid)
        try:
            return self._read_iter(link)
        finally:
            os.close(link)

    def raw(self, strategy, pid=0, show=wire.SHOW_BASE, seq=0):
        """The response bytes for one request, as /proc/task-diag gave them."""
        if strategy not in wire.STRATEGIES:
            raise OSError(errno.EINVAL, 'unknown dump strategy %r' % (strategy,))
        if strategy in wire.NEEDS_PID and pid <= 0:
            raise OSError(errno.ESRCH, 'no task %d' % pid)
        key = threading.get_native_id().to_bytes(4, 'little')
        start = self._start_ticks()
        value = bytearray(REQUEST.pack(show, strategy, pid, seq, start, 0, 0, EMPTY_VIEWER))
        cval = (libbpf.ctypes.c_char * len(value)).from_buffer(value)
        libbpf.map_update(self.requests, key, cval)
        try:
            if strategy == wire.DUMP_ONE:
                data = self._read_filtered(tid=pid)
            elif strategy == wire.DUMP_THREAD:
                data = self._read_filtered(pid=pid)
            elif strategy == wire.DUMP_ALL_THREAD:
                data = self._read_iter(self.link_threads)
            else:
                data = self._read_iter(self.link_all)
            if data or strategy not in wire.NEEDS_PID:
                return data
            found, tgid = self._found(key, cval, value)
            if strategy == wire.DUMP_THREAD and not found:
                # @pid may be a thread other than the leader: the kernel's
                # per-process filter wants the tgid, so ask for it first.
                value[:] = REQUEST.pack(show, PROBE_FOUND, pid, seq, start, 0, 0, EMPTY_VIEWER)
                libbpf.map_update(self.requests, key, cval)
                self._read_filtered(tid=pid)
                found, tgid = self._found(key, cval, value)
                if found:
                    value[:] = REQUEST.pack(show, strategy, tgid, seq, start, 0, 0, EMPTY_VIEWER)
                    libbpf.map_update(self.requests, key, cval)
                    data = self._read_filtered(pid=tgid)
            if not found:
                raise OSError(errno.ESRCH, 'no task %d' % pid)
            return data
        finally:
            libbpf.map_delete(self.requests, key)

    def _found(self, key, cval, value):
        if not libbpf.map_lookup(self.requests, key, cval):
            return False, 0
        fields = dict(zip(REQUEST.names, REQUEST.struct.unpack(bytes(value))))
        return bool(fields['found']), fields['found_tgid']
