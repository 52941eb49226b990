"""One open file of /run/task-diag: the original's write-a-request,
read-the-answer protocol (spec sections 1 to 3), independent of FUSE so
that it can be tested on its own.

Errors, as the spec's table:
  write() shorter than a netlink header          EINVAL
  write() while a request is pending             EBUSY
  first read(): payload short, unknown strategy  EINVAL
  first read(): no task pid                      ESRCH
  read() with no request pending                 0
  read() by other credentials than the first     EPERM (the dump goes on)
  read() by a caller outside our pid namespace   EPERM
  read() buffer < 16 KiB that cannot hold the next message  EINVAL
Any other error ends the transaction; the descriptor then takes a new
request.
"""
import collections
import errno
import threading

from .. import wire
from ..iterproto import VIEWER

SMALL_READ = 16 * 1024     # a read at least this big always makes progress


class _NotYours(OSError):
    """EPERM for a reader other than the dump's owner: unlike every other
    error it does not end the transaction, or any process that shares the
    descriptor could cut the owner's dump short unnoticed (its next read
    would return 0, a normal end)."""


class Transaction:
    """@engine: an object with stream(strategy, pid, show, seq, viewer) and
    viewer_of(pid) (loader.pinned.PinnedBackend).  Its streams' read(n)
    hand out whole messages (Stream.read() does for n >= 32 KiB): pieces
    are passed on whole, only one cut at a read's end is walked."""

    def __init__(self, engine):
        self.engine = engine
        self.lock = threading.Lock()    # one client may read from two threads
        self.request = None             # the bytes written, until the dump ends
        self.started = False            # the first read() has opened the stream
        self.stream = None              # None again once the iterator is exhausted
        self.reader = None              # (pid, viewer) of the first read()
        # What the stream gave beyond the last read: pieces of whole
        # messages each, as Stream.read() hands them out.
        self.pieces = collections.deque()

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
        self.started = False
        self.pieces.clear()

    def read(self, size, caller_pid):
        with self.lock:
            if self.request is None:
                return b''
            if size <= 0:
                return b''          # not the end of the dump (the kernel sends none)
            try:
                return self._read(size, caller_pid)
            except _NotYours:
                raise                   # the owner's dump goes on
            except OSError:
                self._end()
                raise

    def _read(self, size, caller_pid):
        if caller_pid <= 0:
            # FUSE gives pid 0 for a caller outside the daemon's pid
            # namespace: we cannot tell whom to answer for (and a probe of
            # "pid 0" would walk every task), so we answer no one.
            raise OSError(errno.EPERM, 'the reader is outside our pid namespace')
        # Not `self.stream is None`: the stream is set to None when the
        # iterator is exhausted, and testing that here restarted the dump
        # on the read after its last message, so that it never returned 0
        # (a client reading to the end looped for ever).
        if not self.started:
            try:
                hdr, (show, strategy, pid) = wire.decode_request(self.request)
            except ValueError as e:
                raise OSError(errno.EINVAL, str(e))
            if strategy not in wire.STRATEGIES:
                raise OSError(errno.EINVAL, 'unknown dump strategy %d' % strategy)
            viewer = self.engine.viewer_of(caller_pid)
            self.reader = (caller_pid, viewer)
            self.stream = self.engine.stream(strategy, pid, show, hdr[3], viewer)
            self.started = True
        elif caller_pid != self.reader[0]:
            # Another process reads on: only if it holds the same credentials
            # and namespaces as the one that started the dump.  Not the
            # whole viewer: it names the thread group too, which refused
            # every other process, a forked child with the very same ids
            # included.  The rest of the dump is still answered for the
            # first reader's viewer.
            if (_credentials(self.engine.viewer_of(caller_pid))
                    != _credentials(self.reader[1])):
                raise _NotYours(errno.EPERM, 'the dump was started by other credentials')
        # Whole pieces while they fit, then the whole messages of the next
        # that fit: only that piece is walked message by message (walking
        # every message in Python cost 4 ms of the 22 ms a 20k-task dump
        # takes through the file).
        out, room, pieces = [], size, self.pieces
        while room > 0:
            if not pieces:
                if self.stream is None:
                    break
                # one iterator read at a time: the client's reads pace the
                # kernel's, and no more than 32 KiB waits here per dump
                piece = self.stream.read(once=True)
                if not piece:
                    self.stream = None
                    break
                pieces.append(piece)
            piece = pieces[0]
            if len(piece) <= room:
                out.append(pieces.popleft())
                room -= len(piece)
                continue
            end = _whole_messages(piece, room)
            if end:
                out.append(piece[:end])
                pieces[0] = piece[end:]
            break
        if not out:
            if not pieces:
                self._end()             # the dump is over: 0, then a new request
                return b''
            if size < SMALL_READ:
                raise OSError(errno.EINVAL, 'read buffer too small for the next message')
            raise OSError(errno.EOVERFLOW, 'a message larger than the read buffer')
        return out[0] if len(out) == 1 else b''.join(out)

    def close(self):
        with self.lock:
            self._end()


_SIGNAL = slice(VIEWER.offsets()['signal'], VIEWER.offsets()['signal'] + 8)


def _credentials(viewer):
    """@viewer (a td_viewer) without td_viewer.signal, its thread group."""
    if len(viewer) != VIEWER.size:
        return viewer           # not a td_viewer (a test's engine): compare it whole
    return viewer[:_SIGNAL.start] + bytes(8) + viewer[_SIGNAL.stop:]


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
