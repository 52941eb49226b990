"""task_diag.watch(): the tasks now, then what happens to them.

    w = task_diag.watch(show=SHOW_BASE | SHOW_STAT)
    for item in w:              # wire.Task records first (one dump), then Events
        ...
    w.close()

A watch loads its own BPF programs (task_diag/bpf/task_diag_events.bpf.c)
and attaches them before it dumps: fork, exec (the new comm and command
line), exit (when the process is reaped: its wait status and its final
CPU times and faults, those its parent's wait4() gets) and renames
(prctl(PR_SET_NAME), /proc/PID/comm).  They come from a ring buffer, and
are joined to the dump so that no process is missed or comes twice: a
process the dump has is not also reported by its fork event.  Events the
ring had no room for are counted and reported as an Event of kind 'lost'.

Processes, not threads (a thread's rename excepted: its tid).  Pids are
those of the initial pid namespace.  Root only (the programs are
tracing programs): others get EPERM.
"""
import ctypes
import errno
import os
from collections import namedtuple

from . import api, bpf, cgroups, libbpf, wire
from .iterproto import EV_COMM, EV_CONFIG, EV_EXEC, EV_EXIT, EV_FORK, EVENT

OBJECT = os.path.join(os.path.dirname(bpf.__file__), 'task_diag_events.bpf.o')
PROGRAMS = (b'td_ev_fork', b'td_ev_exec', b'td_ev_exit', b'td_ev_comm')
RING_SIZE = 4 << 20             # bytes: some 45,000 events of a fork, exit or rename
KINDS = {EV_FORK: 'fork', EV_EXEC: 'exec', EV_EXIT: 'exit', EV_COMM: 'comm'}
NSEC_PER_TICK = 10 ** 9 // os.sysconf('SC_CLK_TCK')


class Event(namedtuple('Event', 'kind pid tgid ppid start_time comm cmdline status '
                                'utime stime minflt majflt ktime count')):
    """One event: @kind 'fork', 'exec', 'exit', 'comm' or 'lost' (@count
    events dropped, the ring being full; its other fields None).  pid,
    tgid, ppid (the parent's tgid); start_time in clock ticks after boot,
    as STAT_EXT's (a reused pid's is another); comm (str).  exec: cmdline,
    the bytes of the new command line (TASK_DIAG_CMDLINE_MAX at most).
    exit: status, the wait status (os.waitstatus_to_exitcode() reads it),
    utime and stime in ns and the faults of the whole process, final: as
    its parent's wait4() rusage gives them.  ktime: when, in ns of
    CLOCK_BOOTTIME."""
    __slots__ = ()

    @property
    def exitcode(self):
        return os.waitstatus_to_exitcode(self.status) if self.kind == 'exit' else None


class Watch:
    """The iterator watch() returns: iterate it for the dump's tasks, then
    the events, for ever (close() ends it); or dump() once and poll()."""

    def __init__(self, show=wire.SHOW_BASE, cgroup=None, ring_size=RING_SIZE):
        self._obj = self._ring = None       # what close() frees, whatever fails below
        self._links = []
        if os.geteuid() != 0:
            raise PermissionError(errno.EPERM, 'task_diag.watch() loads tracing programs: '
                                  'root only')
        self.show = show | wire.SHOW_BASE | wire.SHOW_STAT_EXT     # the join needs start_time
        self.cgroup = None if cgroup is None else cgroups.cgroup_id(cgroup)
        if self.cgroup is not None and cgroups.mount_point() and \
                cgroups.find(self.cgroup) is None:
            raise OSError(errno.ENOENT, 'no cgroup with id %d' % self.cgroup)
        self.known = set()          # (pid, start ticks) of the dump's processes
        self.pending = []
        self.dropped = 0            # events lost so far (reported as 'lost' events)
        self._cb = libbpf.RING_SAMPLE_FN(self._sample)
        try:
            self._load(ring_size)
        except BaseException:
            self.close()
            raise

    def _load(self, ring_size):
        L = libbpf.lib()
        with libbpf.quiet_libbpf():
            obj = self._obj = L.bpf_object__open_file(os.fsencode(OBJECT), None)
            if not obj:
                raise OSError(ctypes.get_errno() or errno.ENOENT, 'cannot open %s' % OBJECT)
            ring = L.bpf_object__find_map_by_name(obj, b'td_ev_ring')
            libbpf._check(L.bpf_map__set_max_entries(ring, ring_size), 'ring size %d' % ring_size)
            libbpf._check(L.bpf_object__load(obj), 'loading %s' % os.path.basename(OBJECT))
        cfg = L.bpf_map__fd(L.bpf_object__find_map_by_name(obj, b'td_ev_config'))
        libbpf.map_update(cfg, (0).to_bytes(4, 'little'), EV_CONFIG.pack(self.cgroup or 0))
        self._drops_fd = L.bpf_map__fd(L.bpf_object__find_map_by_name(obj, b'td_ev_drops'))
        self._ncpus = libbpf.possible_cpus()
        for name in PROGRAMS:
            link = L.bpf_program__attach(L.bpf_object__find_program_by_name(obj, name))
            if not link:
                err = ctypes.get_errno() or errno.EINVAL
                raise OSError(err, 'attaching %s: %s' % (name.decode(), os.strerror(err)))
            self._links.append(link)
        self._ring = L.ring_buffer__new(L.bpf_map__fd(ring), self._cb, None, None)
        if not self._ring:
            raise OSError(ctypes.get_errno() or errno.ENOMEM, 'ring_buffer__new')

    # -- the events ---------------------------------------------------------

    def _sample(self, ctx, data, size):
        self.pending.append(ctypes.string_at(data, size))
        return 0

    def _lost(self):
        value = (ctypes.c_uint64 * self._ncpus)()
        libbpf.map_lookup(self._drops_fd, (0).to_bytes(4, 'little'), value)
        total = sum(value)
        new, self.dropped = total - self.dropped, total
        return new

    def poll(self, timeout=1.0):
        """The events that come within @timeout seconds (None: until one
        comes), joined to the dump: a list, maybe empty."""
        L = libbpf.lib()
        ms = -1 if timeout is None else int(timeout * 1000)
        ret = L.ring_buffer__poll(self._ring, ms)
        if ret < 0 and -ret != errno.EINTR:
            raise OSError(-ret, 'ring_buffer__poll')
        raws, self.pending = self.pending, []
        out = []
        lost = self._lost()
        if lost:
            out.append(Event('lost', None, None, None, None, None, None, None, None, None,
                             None, None, None, lost))
        for raw in raws:
            ev = self._event(raw)
            if ev is not None:
                out.append(ev)
        return out

    def _event(self, raw):
        (kind, pid, tgid, ppid, start, ktime, comm, status, cmdline_len, utime, stime,
         minflt, majflt) = EVENT.struct.unpack_from(raw)
        start_time = start // NSEC_PER_TICK
        if kind == EV_FORK and (pid, start_time) in self.known:
            return None             # the dump has it
        cmdline = bytes(raw[EVENT.size:EVENT.size + cmdline_len]) if kind == EV_EXEC else None
        if kind != EV_EXIT:
            status = utime = stime = minflt = majflt = None
        return Event(KINDS.get(kind, kind), pid, tgid, ppid, start_time,
                     wire.decode_comm(comm), cmdline, status, utime, stime, minflt, majflt,
                     ktime, None)

    # -- the dump, and the whole ----------------------------------------------

    def dump(self):
        """The dump of the processes (after the programs were attached):
        wire.Task records, with STAT_EXT (start_time) whatever show said."""
        tasks = list(api.dump(wire.DUMP_ALL, show=self.show, cgroup=self.cgroup))
        self.known = {(t.pid, t.stat_ext.start_time) for t in tasks}
        return tasks

    def __iter__(self):
        yield from self.dump()
        while self._ring is not None:
            yield from self.poll(None)

    def close(self):
        L = libbpf.lib()
        if self._ring:
            L.ring_buffer__free(self._ring)
            self._ring = None
        for link in self._links:
            L.bpf_link__destroy(link)
        self._links = []
        if self._obj:
            L.bpf_object__close(self._obj)
            self._obj = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


def watch(show=wire.SHOW_BASE | wire.SHOW_STAT, cgroup=None, ring_size=RING_SIZE):
    """A Watch: the processes now (one dump of @show, with the cgroup
    filter @cgroup), then the events that follow, joined so that none is
    missed or comes twice.  Root only (EPERM)."""
    return Watch(show, cgroup, ring_size)
