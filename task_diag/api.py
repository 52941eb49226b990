"""task_diag.dump(): one request, one list of tasks, from the fastest
backend that works for the caller.

Backends, all answering the same request with the same bytes:
  'bpf'   the pinned BPF iterator driven in-process (root: needs bpf());
  'file'  /run/task-diag, the same iterator through the FUSE front, for
          every other reader;
  'proc'  task_diag.procfs, built from /proc, for every kernel and reader.
"""
import errno
import os
import threading
from itertools import chain

from . import cgroups, wire
from .bpf_backend import BpfBackend
from .front.client import FileBackend
from .procfs.backend import ProcBackend

SOURCES = ('bpf', 'file', 'proc')
_backends = {}
_lock = threading.Lock()


def _open(source):
    if source == 'bpf':
        return BpfBackend()
    if source == 'file':
        return FileBackend()
    if source == 'proc':
        return ProcBackend()
    raise ValueError('unknown source %r (one of %s)' % (source, ', '.join(SOURCES)))


def backend(source=None):
    """The backend for @source, or the fastest that works when None."""
    with _lock:
        for key, b in list(_backends.items()):
            if getattr(b, 'stale', None) and b.stale():
                # reloaded pins: open them again (and choose again)
                _backends.pop(key)
                if key is None:
                    _backends.pop(b.name, None)
                # not closed here: a dump in another thread may still use
                # it; BpfBackend closes its descriptors when it goes
        if source is not None:
            b = _backends.get(source)
            if b is None:
                b = _backends[source] = _open(source)
            return b
        b = _backends.get(None)
        if b is None:
            b = None
            for candidate in (('bpf', 'file') if os.geteuid() == 0 else ('file',)):
                try:
                    b = _open(candidate)
                    break
                except OSError:
                    pass            # nothing pinned, no bpf(), no front: next
            if b is None:
                b = _open('proc')
            _backends[None] = _backends[b.name] = b
        return b


def _fallback(b, source, e):
    """Whether the error @e of backend @b calls for /proc instead: a group
    the fastest backend cannot produce here (EOPNOTSUPP: VMA_STAT, or VMA
    on kernels before 6.7), when no source was asked for."""
    return e.errno == errno.EOPNOTSUPP and source is None and b.name != 'proc'


def _cgroup_id(strategy, cgroup):
    """The filter's id for @cgroup (None, an id or a cgroup v2 path)."""
    if cgroup is None:
        return 0
    cg = cgroups.cgroup_id(cgroup)
    wire.check_filter(strategy, cg)
    return cg


def raw(strategy=wire.DUMP_ALL, pid=0, show=wire.SHOW_BASE, seq=0, source=None, cgroup=None):
    """The response bytes of one request (the netlink message stream).
    @cgroup: only the tasks of that cgroup's subtree (ALL, ALL_THREAD): an
    id, or the path of a cgroup v2 directory."""
    cg = _cgroup_id(strategy, cgroup)
    b = backend(source)
    try:
        return b.raw(strategy, pid, show, seq, cgroup=cg)
    except OSError as e:
        if not _fallback(b, source, e):
            raise
        return backend('proc').raw(strategy, pid, show, seq, cgroup=cg)


def pieces(strategy=wire.DUMP_ALL, pid=0, show=wire.SHOW_BASE, seq=0, source=None,
           cgroup=None):
    """The response to one request as an iterator of pieces of whole
    messages, read as it is consumed (a whole system's VMAs are tens of
    megabytes).  Errors of the request are raised here, before any piece;
    the same fallback to /proc as raw()."""
    cg = _cgroup_id(strategy, cgroup)
    b = backend(source)
    it = b.pieces(strategy, pid, show, seq, cgroup=cg)
    try:
        first = next(it, None)
    except OSError as e:
        if not _fallback(b, source, e):
            raise
        it = backend('proc').pieces(strategy, pid, show, seq, cgroup=cg)
        first = next(it, None)
    return iter(()) if first is None else chain((first,), it)


def dump(strategy=wire.DUMP_ALL, pid=0, show=wire.SHOW_BASE, source=None, cgroup=None):
    """Iterator of wire.Task for one request.  Raises OSError: ESRCH when
    the pid of ONE, THREAD or CHILDREN does not exist, EINVAL for an unknown
    strategy.  @cgroup (an id, or a cgroup v2 directory's path): ALL and
    ALL_THREAD answer only the tasks of its subtree, selected in the kernel;
    ENOENT when there is no such cgroup, EINVAL for what is no cgroup or
    another strategy.  The request is answered before this returns.  With VMAs the
    response is decoded piece by piece as it is read; without, whole (it is
    small, and the fast decoder reads each field over all of it at once)."""
    if show & wire.SHOW_VMA:
        return iter(wire.decode_pieces(pieces(strategy, pid, show, 0, source, cgroup), show))
    return iter(wire.decode(raw(strategy, pid, show, 0, source, cgroup), show))
