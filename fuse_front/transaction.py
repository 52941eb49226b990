"""One open file of /run/task-diag: the original's write-a-request,
read-the-answer protocol (spec sections 1 to 3), independent of FUSE so
that it can be tested on its own.

Errors, as the spec's table:
  write() shorter than a netlink header          EINVAL
  write() while a request is pending             EBUSY
  first read(): payload short, unknown strategy  EINVAL
  first read(): no task pid                      ESRCH
  read() with no request pending                 0
  read() by other credentials than the first     EPERM
  read() buffer < 16 KiB that cannot hold the next message  EINVAL
Any error ends the transaction; the descriptor then takes a new request.
"""
import errno
import threading

from .. import wire

SMALL_READ = 16 * 1024     # a read at least this big always makes progress
CHUNK = 64 * 1024          # what we take from the iterator at a time


class Transaction:
    """@engine: an object with stream(strategy, pid, show, seq, viewer) and
    viewer_of(pid) (loader.pinned.PinnedBackend)."""

    def __init__(self, engine):
        self.engine = engine
        self.lock = threading.Lock()    # one client may read from two threads
        self.request = None             # the bytes written, until the dump ends
        self.stream = None
        self.reader = None              # (pid, viewer) of the first read()
        self.buf = b''                  # what the iterator gave beyond the last read

    def write(self, data):
        with self.lock:
            if len(data) < wire.NLMSG_HDRLEN:
                raise OSError(errno.EINVAL, 'shorter than a netlink header')
            if self.request is not None:
                raise OSError(errno.EBUSY, 'a request is pending')
            self.request = bytes(data)
            return len(data)

    def _end(self):
        if self.stream is not None:
            self.stream.close()
        self.request = self.stream = self.reader = None
        self.buf = b''

    def read(self, size, caller_pid):
        with self.lock:
            if self.request is None:
                return b''
            try:
                return self._read(size, caller_pid)
            except OSError:
                self._end()
                raise

    def _read(self, size, caller_pid):
        if self.stream is None:
            try:
                hdr, (show, strategy, pid) = wire.decode_request(self.request)
            except ValueError as e:
                raise OSError(errno.EINVAL, str(e))
            if strategy not in wire.STRATEGIES:
                raise OSError(errno.EINVAL, 'unknown dump strategy %d' % strategy)
            viewer = self.engine.viewer_of(caller_pid)
            self.reader = (caller_pid, viewer)
            self.stream = self.engine.stream(strategy, pid, show, hdr[3], viewer)
        elif caller_pid != self.reader[0]:
            # Another process reads on: only if it holds the same credentials
            # and namespaces (its viewer) as the one that started the dump.
            if self.engine.viewer_of(caller_pid) != self.reader[1]:
                raise OSError(errno.EPERM, 'the dump was started by other credentials')
        while len(self.buf) < size and self.stream is not None:
            chunk = self.stream.read(CHUNK)
            if not chunk:
                self.stream = None
                break
            self.buf += chunk
        end = _whole_messages(self.buf, size)
        if end == 0:
            if not self.buf:
                self._end()             # the dump is over: 0, then a new request
                return b''
            if size < SMALL_READ:
                raise OSError(errno.EINVAL, 'read buffer too small for the next message')
            raise OSError(errno.EOVERFLOW, 'a message larger than the read buffer')
        out, self.buf = self.buf[:end], self.buf[end:]
        return out

    def close(self):
        with self.lock:
            self._end()


def _whole_messages(buf, size):
    """How many bytes of @buf, at most @size, end on a message boundary."""
    off, n = 0, len(buf)
    while off + 4 <= n:
        length = int.from_bytes(buf[off:off + 4], 'little')
        nxt = off + ((length + 3) & ~3)
        if length < wire.NLMSG_HDRLEN or nxt > n or nxt > size:
            break
        off = nxt
    return off
