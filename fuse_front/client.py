"""The client side of /run/task-diag: the backend task_diag.dump() uses for
readers who cannot drive BPF themselves (everyone but root).  Plain
write() and read() calls, exactly what a C client does."""
import os
import threading

from .. import wire
from .daemon import MOUNTPOINT

READ_SIZE = 160 * 1024          # what the original tools read at a time


class FileBackend:
    name = 'file'

    def __init__(self, path=MOUNTPOINT):
        self.path = path
        self._local = threading.local()
        fd = os.open(path, os.O_RDWR)   # fails (ENOENT, ENOTCONN) when no daemon serves it
        self._local.fd = fd

    def _fd(self):
        fd = getattr(self._local, 'fd', None)
        if fd is None:
            fd = self._local.fd = os.open(self.path, os.O_RDWR)
        return fd

    def raw(self, strategy, pid=0, show=wire.SHOW_BASE, seq=0):
        fd = self._fd()
        os.write(fd, wire.encode_request(strategy, pid, show, seq))
        chunks = []
        while True:
            chunk = os.read(fd, READ_SIZE)
            if not chunk:
                return b''.join(chunks)
            chunks.append(chunk)
