"""The FUSE daemon behind /run/task-diag: one regular file, mode 0666,
where a client writes one request and reads the answer (the original
/proc/task-diag protocol; see transaction.py for its rules).

Every answer comes from the pinned BPF iterator, for the process that
calls read(): FUSE tells us its pid, a probe pass snapshots its
credentials and namespaces (its viewer), and the BPF program applies
them exactly as it does for a reader of the pinned files.  The daemon
streams: it reads from the iterator as its client reads, so its memory
does not grow with the number of tasks.

    python -m task_diag.front.daemon [--mountpoint /run/task-diag]
"""
import argparse
import collections
import errno
import itertools
import logging
import os
import resource
import stat
import sys
import threading
import time

import mfusepy as fuse

from ..bpf_backend import BpfBackend
from .client import MOUNTPOINT
from .transaction import Transaction

log = logging.getLogger('task-diag-fuse')

# Open files of /run/task-diag per user (root aside): each holds a
# transaction, and a started one an iterator descriptor, so that without a
# bound one user could take every descriptor of the daemon and stop
# everyone's dumps.  The next open() gets EMFILE.  USERS bounds them all
# together, as a user with many subordinate ids (rootless containers) is
# many uids here; root's opens are counted apart.
PER_USER = 64
USERS = 1024


class TaskDiagFile(fuse.Operations):
    use_ns = True

    def __init__(self, engine):
        self.engine = engine
        self.files = {}                 # fh -> (Transaction, uid)
        self.per_user = collections.Counter()
        self.fhs = itertools.count(1)
        self._mutex = threading.Lock()
        self.mtime = time.time_ns()

    def _tx(self, fi):
        with self._mutex:
            tx, _ = self.files.get(fi.fh, (None, None))
        if tx is None:
            raise fuse.FuseOSError(errno.EBADF)
        return tx

    @fuse.overrides(fuse.Operations)
    def getattr(self, path, fh=None):
        if path != '/':
            raise fuse.FuseOSError(errno.ENOENT)
        return {'st_mode': stat.S_IFREG | 0o666, 'st_nlink': 1, 'st_size': 0,
                'st_uid': 0, 'st_gid': 0,
                'st_atime': self.mtime, 'st_mtime': self.mtime, 'st_ctime': self.mtime}

    @fuse.overrides(fuse.Operations)
    def open(self, path, fi):
        if path != '/':
            raise fuse.FuseOSError(errno.ENOENT)
        uid = fuse.fuse_get_context()[0]
        with self._mutex:
            if uid != 0 and (self.per_user[uid] >= PER_USER or
                             sum(self.per_user.values()) - self.per_user[0] >= USERS):
                raise fuse.FuseOSError(errno.EMFILE)
            self.per_user[uid] += 1
            fi.fh = next(self.fhs)
            self.files[fi.fh] = (Transaction(self.engine), uid)
        fi.direct_io = 1            # every read() reaches us, none is cached
        fi.nonseekable = 1
        return 0

    @fuse.overrides(fuse.Operations)
    def read(self, path, size, offset, fi):
        pid = fuse.fuse_get_context()[2]
        return self._tx(fi).read(size, pid)

    @fuse.overrides(fuse.Operations)
    def write(self, path, data, offset, fi):
        return self._tx(fi).write(data)

    @fuse.overrides(fuse.Operations)
    def truncate(self, path, length, fh=None):
        return 0                    # open(O_TRUNC) of a transactional file: nothing to do

    @fuse.overrides(fuse.Operations)
    def release(self, path, fi):
        with self._mutex:
            tx, uid = self.files.pop(fi.fh, (None, None))
            if tx is not None:
                self.per_user[uid] -= 1
                if not self.per_user[uid]:
                    del self.per_user[uid]
        if tx is not None:
            tx.close()
        return 0


def cli(args=None):
    ap = argparse.ArgumentParser(prog='task-diag-fuse', description=__doc__.split('\n')[0])
    ap.add_argument('--mountpoint', default=MOUNTPOINT)
    ap.add_argument('--pin-dir', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--debug', action='store_true')
    args = ap.parse_args(args)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format='task-diag-fuse: %(message)s')
    # as many descriptors as we may: PER_USER bounds each user's share
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        engine = BpfBackend(args.pin_dir) if args.pin_dir else BpfBackend()
    except OSError as e:
        print('task-diag-fuse: the BPF programs are not loaded (%s); run task-diag-load'
              % (e.strerror or e), file=sys.stderr)
        return 1
    if not os.path.exists(args.mountpoint):
        with open(args.mountpoint, 'x'):
            pass                    # FUSE mounts its root file over a regular file
    fuse.FUSE(TaskDiagFile(engine), args.mountpoint, raw_fi=True, foreground=True,
              allow_other=True, fsname='task-diag', subtype='task-diag', debug=args.debug)
    return 0


if __name__ == '__main__':
    sys.exit(cli())
