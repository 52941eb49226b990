"""Cgroups (v2) as the request's filter names them: by id, the inode number
of a cgroup's directory in cgroupfs (what TASK_DIAG_CGROUP reports, and
what name_to_handle_at() and the BPF helpers call a cgroup id), or by a
path in the unified hierarchy's mount (/sys/fs/cgroup).

cgroup_id() turns what a caller gives into an id, with the errors of the
request: EINVAL for something that is no cgroup, ENOENT for one that does
not exist.  find() goes the other way, for the backends: the directory of
an id under this process's mount, or None when there is none.
"""
import ctypes
import errno
import os
import stat
import threading

CGROUP2_SUPER_MAGIC = 0x63677270
FILEID_KERNFS = 0xfe            # include/linux/exportfs.h: a kernfs node by its u64 id
DEFAULT_MOUNT = '/sys/fs/cgroup'

_cache = {}                     # id -> path, checked again (stat) at each use
_lock = threading.Lock()


def _unescape(field):
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field):
        if field[i] == '\\' and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return ''.join(out)


def mount_point():
    """Where the unified hierarchy is mounted for this process with its
    root at the root of our cgroup namespace (/sys/fs/cgroup first), or
    None."""
    found = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            left, _, right = line.partition(' - ')
            fields, rest = left.split(), right.split()
            if rest and rest[0] == 'cgroup2' and fields[3] == '/':
                found.append(_unescape(fields[4]))
    if DEFAULT_MOUNT in found:
        return DEFAULT_MOUNT
    return found[0] if found else None


def _is_cgroupfs(path):
    class _Statfs(ctypes.Structure):
        _fields_ = [('f_type', ctypes.c_long), ('_rest', ctypes.c_byte * 112)]
    buf = _Statfs()
    if _libc().statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return buf.f_type & 0xffffffff == CGROUP2_SUPER_MAGIC


_libc_handle = None


def _libc():
    global _libc_handle
    if _libc_handle is None:
        _libc_handle = ctypes.CDLL(None, use_errno=True)
    return _libc_handle


def cgroup_id(cgroup):
    """The id of @cgroup: an int id (EINVAL if not positive), or the path
    of a cgroup v2 directory (ENOENT if there is none, EINVAL if it is no
    cgroup v2 directory)."""
    if isinstance(cgroup, bool):
        raise OSError(errno.EINVAL, 'not a cgroup: %r' % (cgroup,))
    if isinstance(cgroup, int):
        if cgroup <= 0 or cgroup >= 1 << 64:
            raise OSError(errno.EINVAL, 'not a cgroup id: %d' % cgroup)
        return cgroup
    path = os.fspath(cgroup)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise OSError(errno.ENOENT, 'no cgroup %s' % path)
    if not stat.S_ISDIR(st.st_mode) or not _is_cgroupfs(path):
        raise OSError(errno.EINVAL, 'not a cgroup v2 directory: %s' % path)
    return st.st_ino


class _FileHandle(ctypes.Structure):
    _fields_ = [('handle_bytes', ctypes.c_uint), ('handle_type', ctypes.c_int),
                ('f_handle', ctypes.c_uint64)]


def _by_handle(mount, cg_id):
    """The path of cgroup @cg_id under @mount, through open_by_handle_at()
    (CAP_DAC_READ_SEARCH); None if it does not exist; raises PermissionError
    without the capability."""
    mfd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fh = _FileHandle(8, FILEID_KERNFS, cg_id)
        fd = _libc().open_by_handle_at(mfd, ctypes.byref(fh), os.O_RDONLY | os.O_DIRECTORY)
        if fd < 0:
            e = ctypes.get_errno()
            if e in (errno.EPERM, errno.EACCES):
                raise PermissionError(e, os.strerror(e))
            return None         # ESTALE, ENOENT: no such cgroup
        try:
            path = os.readlink('/proc/self/fd/%d' % fd)
        finally:
            os.close(fd)
    finally:
        os.close(mfd)
    # only what lies under our mount counts (a cgroup outside our cgroup
    # namespace's root is not there)
    return path if path == mount or path.startswith(mount.rstrip('/') + '/') else None


def _walk(mount, cg_id):
    for top, dirs, _files in os.walk(mount):
        try:
            if os.stat(top).st_ino == cg_id:
                return top
        except FileNotFoundError:
            continue
    return None


def find(cg_id, mount=None):
    """The directory of cgroup @cg_id under @mount (the unified hierarchy's
    mount, mount_point() by default), or None: no such cgroup, or none
    that this process's mount shows."""
    mount = mount or mount_point()
    if mount is None:
        return None
    with _lock:
        path = _cache.get((mount, cg_id))
    if path is not None:
        try:
            if os.stat(path).st_ino == cg_id:
                return path
        except OSError:
            pass
    try:
        path = _by_handle(mount, cg_id)
    except PermissionError:
        path = _walk(mount, cg_id)
    if path is not None:
        with _lock:
            _cache[(mount, cg_id)] = path
    return path


def subtree(path):
    """@path and every cgroup below it (directories of cgroupfs)."""
    for top, dirs, _files in os.walk(path):
        yield top
