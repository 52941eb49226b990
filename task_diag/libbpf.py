"""A thin ctypes binding to the system's libbpf.so.1: only the calls
task-diag needs, each returning a file descriptor or raising OSError.

libbpf 1.x reports errors as a negative errno return (or NULL plus errno
for pointer returns), so every wrapper checks once, here.
"""
import ctypes
import ctypes.util
import errno
import os
import threading

BPF_TRACE_ITER = 28             # enum bpf_attach_type
BPF_ANY = 0

_lib = None


def lib():
    """The loaded libbpf, or OSError(ENOENT) with a reason."""
    global _lib
    if _lib is None:
        name = 'libbpf.so.1'
        try:
            _lib = ctypes.CDLL(name, use_errno=True)
        except OSError:
            found = ctypes.util.find_library('bpf')
            if not found:
                raise OSError(errno.ENOENT, 'libbpf.so.1 not found (Debian: apt-get install libbpf1)')
            _lib = ctypes.CDLL(found, use_errno=True)
        _declare(_lib)
    return _lib


class bpf_iter_link_info(ctypes.Structure):
    """union bpf_iter_link_info, task member (16 bytes: the union's size)."""
    _fields_ = [('tid', ctypes.c_uint32), ('pid', ctypes.c_uint32),
                ('pid_fd', ctypes.c_uint32), ('_pad', ctypes.c_uint32)]


class bpf_iter_link_info_cgroup(ctypes.Structure):
    """union bpf_iter_link_info, cgroup member (16 bytes)."""
    _fields_ = [('order', ctypes.c_uint32), ('cgroup_fd', ctypes.c_uint32),
                ('cgroup_id', ctypes.c_uint64)]


BPF_CGROUP_ITER_DESCENDANTS_PRE = 2     # enum bpf_cgroup_iter_order


class bpf_link_create_opts(ctypes.Structure):
    """struct bpf_link_create_opts of libbpf 1.1 up to iter_info_len; sz
    tells newer libbpf versions which fields we know."""
    _fields_ = [('sz', ctypes.c_size_t), ('flags', ctypes.c_uint32),
                ('iter_info', ctypes.POINTER(bpf_iter_link_info)),
                ('iter_info_len', ctypes.c_uint32), ('target_btf_id', ctypes.c_uint32),
                ('_union', ctypes.c_uint64 * 5)]


class bpf_iter_attach_opts(ctypes.Structure):
    _fields_ = [('sz', ctypes.c_size_t), ('link_info', ctypes.POINTER(bpf_iter_link_info)),
                ('link_info_len', ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]

PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
# ring_buffer_sample_fn: (ctx, data, size) -> 0, or < 0 to stop the poll
RING_SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


def _declare(L):
    c_int, c_void_p, c_char_p = ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
    sigs = {
        'bpf_obj_get': (c_int, [c_char_p]),
        'bpf_iter_create': (c_int, [c_int]),
        'bpf_link_create': (c_int, [c_int, c_int, c_int, ctypes.POINTER(bpf_link_create_opts)]),
        'bpf_map_update_elem': (c_int, [c_int, c_void_p, c_void_p, ctypes.c_uint64]),
        'bpf_map_lookup_elem': (c_int, [c_int, c_void_p, c_void_p]),
        'bpf_map_delete_elem': (c_int, [c_int, c_void_p]),
        'bpf_object__open_file': (c_void_p, [c_char_p, c_void_p]),
        'bpf_object__load': (c_int, [c_void_p]),
        'bpf_object__close': (None, [c_void_p]),
        'bpf_object__find_program_by_name': (c_void_p, [c_void_p, c_char_p]),
        'bpf_object__find_map_by_name': (c_void_p, [c_void_p, c_char_p]),
        'bpf_map__fd': (c_int, [c_void_p]),
        'bpf_map__value_size': (ctypes.c_uint32, [c_void_p]),
        'bpf_map__pin': (c_int, [c_void_p, c_char_p]),
        'bpf_program__pin': (c_int, [c_void_p, c_char_p]),
        'bpf_program__fd': (c_int, [c_void_p]),
        'bpf_program__set_log_buf': (c_int, [c_void_p, c_void_p, ctypes.c_size_t]),
        'bpf_program__set_autoload': (c_int, [c_void_p, ctypes.c_bool]),
        'bpf_program__attach': (c_void_p, [c_void_p]),
        'bpf_map__set_max_entries': (c_int, [c_void_p, ctypes.c_uint32]),
        'ring_buffer__new': (c_void_p, [c_int, RING_SAMPLE_FN, c_void_p, c_void_p]),
        'ring_buffer__poll': (c_int, [c_void_p, c_int]),
        'ring_buffer__consume': (c_int, [c_void_p]),
        'ring_buffer__free': (None, [c_void_p]),
        'bpf_program__attach_iter': (c_void_p, [c_void_p, ctypes.POINTER(bpf_iter_attach_opts)]),
        'bpf_link__pin': (c_int, [c_void_p, c_char_p]),
        'bpf_link__destroy': (c_int, [c_void_p]),
        'libbpf_set_print': (c_void_p, [PRINT_FN]),
        'btf__load_vmlinux_btf': (c_void_p, []),
        'btf__find_by_name_kind': (c_int, [c_void_p, c_char_p, ctypes.c_uint32]),
        'btf__free': (None, [c_void_p]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(L, name)
        fn.restype = res
        fn.argtypes = args


def _check(ret, what):
    """libbpf returns -errno; some calls also leave errno set."""
    if ret is None or (isinstance(ret, int) and ret < 0):
        err = -ret if isinstance(ret, int) and ret < 0 else ctypes.get_errno()
        err = err or errno.EINVAL
        raise OSError(err, '%s: %s' % (what, os.strerror(err)))
    return ret


def obj_get(path):
    return _check(lib().bpf_obj_get(os.fsencode(path)), 'bpf_obj_get(%s)' % path)


def iter_create(link_fd):
    return _check(lib().bpf_iter_create(link_fd), 'bpf_iter_create')


_link_args = threading.local()


def link_create_task_iter(prog_fd, tid=0, pid=0):
    """A new iterator link of @prog_fd visiting only thread @tid, or the
    threads of process @pid (pids of the caller's pid namespace).  Every
    DUMP_ONE makes one: the ctypes arguments are built once per thread."""
    args = getattr(_link_args, 'value', None)
    if args is None:
        info = bpf_iter_link_info()
        opts = bpf_link_create_opts(sz=ctypes.sizeof(bpf_link_create_opts),
                                    iter_info=ctypes.pointer(info),
                                    iter_info_len=ctypes.sizeof(info))
        args = _link_args.value = (info, opts, ctypes.byref(opts))
    info, _, opts_ref = args
    info.tid, info.pid = tid, pid
    return _check(lib().bpf_link_create(prog_fd, 0, BPF_TRACE_ITER, opts_ref),
                  'bpf_link_create')


def link_create_cgroup_iter(prog_fd, cgroup_id):
    """A new iterator link of the iter/cgroup program @prog_fd that walks
    the cgroup @cgroup_id and its descendants in pre-order (ENOENT: no
    such cgroup)."""
    info = bpf_iter_link_info_cgroup(order=BPF_CGROUP_ITER_DESCENDANTS_PRE, cgroup_id=cgroup_id)
    opts = bpf_link_create_opts(sz=ctypes.sizeof(bpf_link_create_opts),
                                iter_info=ctypes.cast(ctypes.pointer(info),
                                                      ctypes.POINTER(bpf_iter_link_info)),
                                iter_info_len=ctypes.sizeof(info))
    return _check(lib().bpf_link_create(prog_fd, 0, BPF_TRACE_ITER, ctypes.byref(opts)),
                  'bpf_link_create (cgroup %d)' % cgroup_id)


def possible_cpus():
    """How many CPU numbers the kernel may use (/sys/.../cpu/possible,
    "0-3" or "0,2-5"): per-CPU data exists for each, and a per-CPU map's
    lookup fills a value for each."""
    with open('/sys/devices/system/cpu/possible') as f:
        text = f.read().strip()
    return max(int(part.split('-')[-1]) for part in text.split(',')) + 1


def map_update(fd, key, value):
    _check(lib().bpf_map_update_elem(fd, key, value, BPF_ANY), 'bpf_map_update_elem')


def map_lookup(fd, key, value):
    """Fills @value; False when the key is absent."""
    ret = lib().bpf_map_lookup_elem(fd, key, value)
    if ret < 0:
        err = -ret if ret != -1 else ctypes.get_errno()
        if err == errno.ENOENT:
            return False
        _check(-err, 'bpf_map_lookup_elem')
    return True


def map_delete(fd, key):
    ret = lib().bpf_map_delete_elem(fd, key)
    if ret < 0 and -ret != errno.ENOENT and ctypes.get_errno() != errno.ENOENT:
        _check(ret, 'bpf_map_delete_elem')


class quiet_libbpf:
    """Collects libbpf's log instead of printing it (bpftool's
    libbpf_print_none habit); .text holds it for error messages."""

    def __init__(self):
        self.lines = []
        self._cb = PRINT_FN(self._print)
        self._old = None

    def _print(self, level, fmt, args):
        # On x86-64 and arm64 a va_list argument is passed as a pointer, so
        # libc's vsnprintf can format it for us.
        buf = ctypes.create_string_buffer(1024)
        _libc.vsnprintf(buf, len(buf), fmt, args)
        self.lines.append(buf.value.decode(errors='replace').rstrip())
        return 0

    def __enter__(self):
        self._old = lib().libbpf_set_print(self._cb)
        return self

    def __exit__(self, *exc):
        lib().libbpf_set_print(ctypes.cast(self._old, PRINT_FN) if self._old else PRINT_FN())
        return False

    @property
    def text(self):
        return '\n'.join(self.lines)
