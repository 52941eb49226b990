"""The client side of /run/task-diag: the backend task_diag.dump() uses for
readers who cannot drive BPF themselves (everyone but root).  Plain
write() and read() calls, exactly what a C client does."""
import errno
import os
import threading

from .. import wire

READ_SIZE = 160 * 1024          # what the original tools read at a time


# Where the front lives.  Defined here, not in daemon.py: importing the
# daemon needs mfusepy and libfuse, which a reader of the file does not.
MOUNTPOINT = '/run/task-diag'


def mount_type(path):
    """The file system type mounted at @path ('bpf', 'fuse.task-diag', ...),
    or None: of the mount on top, the last listed, where several are
    stacked there."""
    found = None
    try:
        with open('/proc/self/mounts') as f:
            for line in f:
                fields = line.split()
                if fields[1] == path:
                    found = fields[2]
    except OSError:
        pass
    return found


def fuse_mounted(path=MOUNTPOINT):
    return (mount_type(path) or '').startswith('fuse')


class FileBackend:
    name = 'file'

    def __init__(self, path=MOUNTPOINT):
        self.path = path
        self._local = threading.local()
        # The mountpoint is a plain file when no daemon serves it: writing a
        # request to that would read back nothing, an empty "answer".
        if not fuse_mounted(path):
            raise OSError(errno.ENOENT, '%s is not served (run task-diag-load)' % path)
        fd = os.open(path, os.O_RDWR)   # fails (ECONNABORTED) when its daemon died
        self._local.fd = fd

    def _fd(self):
        fd = getattr(self._local, 'fd', None)
        if fd is None:
            fd = self._local.fd = os.open(self.path, os.O_RDWR)
        return fd

    def _send(self, request):
        """The descriptor @request was written to.  One kept from before a
        restart of the front belongs to a daemon that is gone (ENOTCONN,
        ECONNABORTED): nothing was sent, so it is opened again, once."""
        fd = self._fd()
        try:
            os.write(fd, request)
            return fd
        except OSError as e:
            self._local.fd = None
            os.close(fd)
            if e.errno not in (errno.ENOTCONN, errno.ECONNABORTED):
                raise
        fd = self._fd()
        try:
            os.write(fd, request)
        except OSError:
            self._local.fd = None
            os.close(fd)
            raise
        return fd

    def pieces(self, strategy, pid=0, show=wire.SHOW_BASE, seq=0, cgroup=0):
        """The response as the front hands it out: whole messages per read."""
        fd = self._send(wire.encode_request(strategy, pid, show, seq, cgroup))
        ended = False
        try:
            while True:
                chunk = os.read(fd, READ_SIZE)
                if not chunk:
                    ended = True
                    return
                yield chunk
        finally:
            if not ended:
                # Left unread (an error, a consumer that stopped): the
                # front would refuse this descriptor's next request (EBUSY)
                # while this transaction lasts.  Closing it ends it.
                self._local.fd = None
                os.close(fd)

    def raw(self, strategy, pid=0, show=wire.SHOW_BASE, seq=0, cgroup=0):
        return b''.join(self.pieces(strategy, pid, show, seq, cgroup))
