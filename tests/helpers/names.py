"""A process that maps one file of every kind of name /proc/PID/maps shows,
for the VMA name tests (test_vma_names.py).  Run as a script:

    python helpers_names.py DIR [--hard | --here | --disconnected]

It enters a mount namespace of its own (so that its mounts go with it),
mounts under DIR a tmpfs, a bind mount and an overlayfs, maps from each
and from the root mount (names with spaces, a newline, bytes that are
not UTF-8, a deep path), a deleted file, a memfd, SysV shared memory,
shared /dev/zero and, where the kernel lets it, an io_uring ring (an
anon_inode name); prints "ready" and waits for its stdin to close.
--hard: only names the BPF walk gives up on; --here: a few files, in the
caller's mount namespace; --disconnected: a file opened by handle.
"""
import ctypes
import mmap
import os
import sys

PAGE = mmap.PAGESIZE
CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE, MS_BIND = 0x4000, 1 << 18, 4096

libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
keep = []


def check(ret, what):
    if ret == -1 or ret is None:
        err = ctypes.get_errno()
        raise OSError(err, '%s: %s' % (what, os.strerror(err)))
    return ret


def mount(src, target, fstype, flags=0, data=None):
    check(libc.mount(src and os.fsencode(src), os.fsencode(target),
                     fstype and fstype.encode(), flags, data and data.encode()),
          'mount %s' % target)


def map_file(path, shared=False, size=2 * PAGE):
    with open(path, 'wb') as f:
        f.write(b'x' * size)
    fd = os.open(path, os.O_RDWR)
    keep.append(mmap.mmap(fd, size, flags=mmap.MAP_SHARED if shared else mmap.MAP_PRIVATE))
    os.close(fd)


def map_existing(path):
    fd = os.open(path, os.O_RDONLY)
    keep.append(mmap.mmap(fd, PAGE, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ))
    os.close(fd)


def io_uring_ring():
    """An io_uring's submission ring: anon_inode:[io_uring] in maps."""
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 4, params)           # io_uring_setup(4 entries)
    if fd < 0:
        return False
    addr = libc.mmap(None, PAGE, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
    return addr not in (None, ctypes.c_void_p(-1).value)


def hard(d):
    """Names the BPF walk gives up on: a path deeper than its steps, and
    one longer than a record holds (PATH_MAX); /proc/PID/maps shows both."""
    for depth, component, name in ((300, 's', 'deeper than the walk'),
                                    (20, 'L' * 250, 'longer than a record')):
        fd = os.open(d, os.O_RDONLY)
        for _ in range(depth):
            os.mkdir(component, dir_fd=fd)
            fd2 = os.open(component, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = fd2
        f = os.open(name, os.O_RDWR | os.O_CREAT, 0o600, dir_fd=fd)
        os.ftruncate(f, PAGE)
        keep.append(mmap.mmap(f, PAGE, flags=mmap.MAP_SHARED))
        os.close(f)
        os.close(fd)


class _FileHandle(ctypes.Structure):
    _fields_ = [('handle_bytes', ctypes.c_uint), ('handle_type', ctypes.c_int),
                ('f_handle', ctypes.c_ubyte * 128)]


def disconnected(d):
    """A file mapped through a dentry that is its own parent: opened by
    handle (open_by_handle_at) after the dentry cache was dropped, as NFS
    servers and fanotify tools do.  /proc/PID/maps shows it as "/"."""
    path = os.path.join(d, 'by handle')
    with open(path, 'wb') as f:
        f.write(b'h' * PAGE)
    fh, mount_id = _FileHandle(handle_bytes=128), ctypes.c_int()
    check(libc.name_to_handle_at(-100, os.fsencode(path), ctypes.byref(fh),
                                 ctypes.byref(mount_id), 0), 'name_to_handle_at')
    mfd = os.open('/', os.O_RDONLY)
    os.sync()
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('2')
    fd = check(libc.open_by_handle_at(mfd, ctypes.byref(fh), os.O_RDONLY), 'open_by_handle_at')
    keep.append(mmap.mmap(fd, PAGE, prot=mmap.PROT_READ, flags=mmap.MAP_PRIVATE))
    os.close(fd)
    os.close(mfd)


def main(d):
    if len(sys.argv) > 2 and sys.argv[2] in ('--hard', '--here', '--disconnected'):
        if sys.argv[2] == '--hard':
            hard(d)
        elif sys.argv[2] == '--disconnected':
            disconnected(d)
        else:                       # in our mount namespace: for a chrooted reader
            for name in ('plain', 'with space', 'gone'):
                map_file(os.path.join(d, name))
            os.unlink(os.path.join(d, 'gone'))
        sys.stdout.write('ready\n')
        sys.stdout.flush()
        sys.stdin.read()
        return
    check(libc.unshare(CLONE_NEWNS), 'unshare')
    mount(None, '/', None, MS_REC | MS_PRIVATE)
    # the root mount: odd names and a deep path
    for name in ('plain', 'with space', 'new\nline', b'bytes \xff\xfe'.decode('utf-8',
                                                                              'surrogateescape')):
        map_file(os.path.join(d, name))
    deep = os.path.join(d, *['d%d' % i for i in range(40)])
    os.makedirs(deep)
    map_file(os.path.join(deep, 'deep'))
    map_file(os.path.join(d, 'gone'), shared=True)
    os.unlink(os.path.join(d, 'gone'))
    # a tmpfs, a bind mount of a directory, an overlayfs
    for sub in ('tmpfs', 'src', 'bind', 'ovl'):
        os.mkdir(os.path.join(d, sub))
    mount('tmpfs', os.path.join(d, 'tmpfs'), 'tmpfs')
    map_file(os.path.join(d, 'tmpfs', 'on tmpfs'), shared=True)
    map_file(os.path.join(d, 'src', 'bound'))
    mount(os.path.join(d, 'src'), os.path.join(d, 'bind'), None, MS_BIND)
    map_existing(os.path.join(d, 'bind', 'bound'))
    ovl = os.path.join(d, 'ovl')
    mount('tmpfs', ovl, 'tmpfs')
    for sub in ('lower', 'upper', 'work', 'merged'):
        os.mkdir(os.path.join(ovl, sub))
    with open(os.path.join(ovl, 'lower', 'from lower'), 'wb') as f:
        f.write(b'l' * PAGE)
    mount('overlay', os.path.join(ovl, 'merged'), 'overlay',
          data='lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work' % (ovl, ovl, ovl))
    map_existing(os.path.join(ovl, 'merged', 'from lower'))
    map_file(os.path.join(ovl, 'merged', 'in upper'))
    # names from the kernel: memfd, SysV shm, shared /dev/zero, anon_inode
    mfd = os.memfd_create('td names memfd')
    os.ftruncate(mfd, PAGE)
    keep.append(mmap.mmap(mfd, PAGE, flags=mmap.MAP_SHARED))
    shm = check(libc.shmget(0, PAGE, 0o600 | 0o1000), 'shmget')   # IPC_PRIVATE, IPC_CREAT
    if libc.shmat(shm, None, 0) in (None, ctypes.c_void_p(-1).value):
        check(-1, 'shmat')
    libc.shmctl(shm, 0, None)                   # IPC_RMID: gone once detached
    zfd = os.open('/dev/zero', os.O_RDWR)
    keep.append(mmap.mmap(zfd, PAGE, flags=mmap.MAP_SHARED))
    os.close(zfd)
    uring = io_uring_ring()
    sys.stdout.write('ready %s\n' % ('io_uring' if uring else 'no-io_uring'))
    sys.stdout.flush()
    sys.stdin.read()


if __name__ == '__main__':
    main(sys.argv[1])
