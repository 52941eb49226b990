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
  read() by another process after the first reader exited or exec'd
                                                 EPERM (the dump ends)
  read() by a caller outside our pid namespace   EPERM
  read() buffer < 16 KiB that cannot hold the next message  EINVAL
Any other error ends the transaction; the descriptor then takes a new
request.
"""
import collections
import errno
import os
import select
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
    viewer_of(pid) (task_diag.bpf_backend.BpfBackend).  Its streams' read(n)
    hand out whole messages (Stream.read() does for n >= 32 KiB): pieces
    are passed on whole, only one cut at a read's end is walked."""

    def __init__(self, engine):
        self.engine = engine
        self.lock = threading.Lock()    # one client may read from two threads
        self.request = None             # the bytes written, until the dump ends
        self.started = False            # the first read() has opened the stream
        self.stream = None              # None again once the iterator is exhausted
        self.reader = None              # the viewer of the first read()
        self.first = None               # _FirstReader of the first read()
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
        if self.first is not None:
            self.first.close()
        self.request = self.stream = self.reader = self.first = None
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
            wire.check_request(strategy, pid)
            cgroup = wire.request_cgroup(self.request)
            wire.check_filter(strategy, cgroup)
            viewer = self.engine.viewer_of(caller_pid)
            self.first = _FirstReader(caller_pid, viewer)
            self.reader = viewer
            self.stream = self.engine.stream(strategy, pid, show, hdr[3], viewer, cgroup=cgroup)
            self.started = True
        else:
            self._check_reader(caller_pid)
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
            end = wire.whole_head(piece, room)
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

    def _check_reader(self, caller_pid):
        """Whoever reads on must hold the credentials and namespaces the dump
        answers for, now (a process can change them without a new pid: a
        setuid binary it execs, setresuid(), setns()).  Not the whole viewer:
        it names the thread group too, which refused every other process, a
        forked child with the very same ids included.  Another process than
        the first reader (by pid, start time and execve count, never by a
        pid alone, which a new process may get) reads on only while the
        first lives, unchanged: the dump is answered for the first reader's
        viewer, whose pointers (its signal_struct: "same thread group" in
        the programs) are only sound while it lives."""
        fresh = self.engine.viewer_of(caller_pid)
        if _credentials(fresh) != _credentials(self.reader):
            raise _NotYours(errno.EPERM, 'the dump was started by other credentials')
        if _who(fresh) == _who(self.reader):
            return
        if not self.first.unchanged(self.engine):
            self._end()
            raise OSError(errno.EPERM, 'the process that started the dump exited or '
                                       'executed another program')

    def close(self):
        with self.lock:
            self._end()


class _FirstReader:
    """The process of the first read(): a pidfd, which tells when it exits
    whatever pid a new process gets, and its viewer, which says whether it
    exec'd since."""

    def __init__(self, caller_pid, viewer):
        self.viewer = viewer
        self.pid = caller_pid
        self.fd = -1
        try:
            self.pid = _tgid(caller_pid)
            self.fd = os.pidfd_open(self.pid)
        except (OSError, AttributeError, ValueError):
            pass                        # a test's engine, or gone already: unchanged() says no

    def unchanged(self, engine):
        if self.fd < 0 or len(self.viewer) < VIEWER.size:
            return len(self.viewer) < VIEWER.size       # a test's engine without processes
        poll = select.poll()            # not select(): descriptors go past 1024 here
        poll.register(self.fd, select.POLLIN)
        if poll.poll(0):
            return False                # exited
        try:
            now = engine.viewer_of(self.pid)
        except OSError:
            return False
        return _who(now) == _who(self.viewer)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _tgid(pid):
    """The process of thread @pid (a pid of our namespace)."""
    with open('/proc/%d/status' % pid, 'rb') as f:
        for line in f:
            if line.startswith(b'Tgid:'):
                return int(line.split()[1])
    raise ValueError('no Tgid for %d' % pid)


_OFF = VIEWER.offsets()
_SIGNAL = slice(_OFF['signal'], _OFF['signal'] + 8)
_WHO = slice(_OFF['start'], VIEWER.size)           # start, exec_id, tgid (td_iter.h)


def _credentials(viewer):
    """@viewer (a td_viewer, its root after it) without what names the
    process: its thread group (signal) and who it is (start, exec_id,
    tgid).  Its root stays: names are printed relative to it."""
    if len(viewer) < VIEWER.size:
        return viewer           # not a td_viewer (a test's engine): compare it whole
    return viewer[:_SIGNAL.start] + bytes(8) + viewer[_SIGNAL.stop:_WHO.start] + \
        viewer[VIEWER.size:]


def _who(viewer):
    """Which process @viewer is: its leader's start, its execve count, its tgid."""
    if len(viewer) < VIEWER.size:
        return viewer
    return viewer[_WHO]
