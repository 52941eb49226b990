"""Drive the pinned task_diag iterator in-process (root only).

Reuses what task-diag-load pinned: no program is loaded or verified here.
A request is a td_request stored under the reading thread's id in the
pinned requests map; the program looks it up for each task it visits.
ONE and THREAD read through a link filtered to that task in the kernel, so
they never walk every task.

A Stream answers one request piece by piece (the FUSE front reads it as
its client reads, from whichever of its threads serves that read), and
may answer for another process than the caller: its viewer.
"""
import collections
import ctypes
import errno
import os
import queue
import struct
import threading
import time

from . import cgroups, libbpf, lsm, tdconfig, wire
from .iterproto import (ATTR_HOST_PID, CONT_DONE, CONT_MORE, CONT_PENDING, CONT_RESUME,
                         EMPTY_VIEWER, HOST_PID, MSG_F_CMDLINE_FROM_PROC, MSG_F_VMA_FROM_PROC,
                         PIN_ALL, PIN_ALL_THREADS,
                         PIN_CONFIG, PIN_DIR, PIN_PROG, PIN_PROG_CGROUP, PIN_REQUESTS, PROBE_FOUND, PROBE_VIEWER,
                         REQ_HOST_EACH, TD_REQUEST, TIER_NOVMA, VIEWER, VMA_STAT_PAGEWALK)
from .procfs import maps

STALE_CHECK_S = 0.05   # BpfBackend.stale()
READ_SIZE = 1 << 16     # the iterator hands out at most its 32 KiB buffer per read;
                        # under malloc's mmap threshold, so no fresh pages per read
_F = {name: i for i, name in enumerate(TD_REQUEST.names)}
_U32_AT = struct.Struct('<I').unpack_from
EAGAIN_TRIES = 200      # a program returns 1 (EAGAIN) while no scratch buffer is free
SMAPS_PIECE = 1 << 16   # a task's smaps is read and parsed this much at a time
# The continuation passes of one task are held until its last one says
# whether its VMAs come from /proc; past this many bytes they come from
# /proc anyway, read piece by piece (a task has up to vm.max_map_count,
# 65530, VMAs: megabytes of records, per transaction).
JOIN_MAX = 1 << 20


def _request(strategy, pid=0, show=0, seq=0, viewer=EMPTY_VIEWER, cgroup=0):
    """A td_request field list, continuation fields clear.  @viewer: a
    td_viewer, or one with its root, confinement and cgroup namespace
    root after it, as viewer_of() gives.  @cgroup: the filter's id, 0."""
    fields = [0] * len(TD_REQUEST.names)
    fields[_F['show_flags']] = show
    fields[_F['dump_strategy']] = strategy
    fields[_F['pid']] = pid
    fields[_F['seq']] = seq
    fields[_F['viewer']] = viewer[:VIEWER.size]
    fields[_F['root']] = viewer[VIEWER.size:VIEWER.size + ROOT_SIZE].ljust(ROOT_SIZE, b'\0')
    cgns = viewer[VIEWER.size + ROOT_SIZE + 1:VIEWER.size + ROOT_SIZE + 9]
    fields[_F['cgns_root']] = int.from_bytes(cgns, 'little') if len(cgns) == 8 else 0
    fields[_F['cg_id']] = cgroup
    return fields


def _confined(viewer):
    """How viewer_of() found the viewer confined (lsm.FREE, lsm.LANDLOCK, ...)."""
    return viewer[VIEWER.size + ROOT_SIZE] if len(viewer) > VIEWER.size + ROOT_SIZE else lsm.FREE


def _read(fd, size=READ_SIZE):
    """os.read, again while the program asks to be run again (EAGAIN)."""
    for i in range(EAGAIN_TRIES):
        try:
            return os.read(fd, size)
        except BlockingIOError:
            time.sleep(0.001 * min(i + 1, 10))
    return os.read(fd, size)


def _proc_cmdline(host, start):
    """CMDLINE of the task @host of our /proc, as the programs give it: one
    read of TASK_DIAG_CMDLINE_MAX bytes of /proc/HOST/cmdline, as root (the
    programs decided the viewer may see the task; cmdline is every
    reader's in /proc).  Empty when the task is gone, or its pid is now
    another's (its @start, clock ticks after boot, differs)."""
    try:
        fd = os.open('/proc/%d/cmdline' % host, os.O_RDONLY)
    except (FileNotFoundError, ProcessLookupError):
        return b''
    try:
        data = os.read(fd, wire.TASK_DIAG_CMDLINE_MAX)
    except (ProcessLookupError, OSError):
        return b''
    finally:
        os.close(fd)
    if start is not None and _start_ticks(host) != start:
        return b''
    return data


def vma_supported(pin_dir=PIN_DIR):
    """Whether the loaded programs write VMA records themselves (a tier
    with the VMA code); without, VMAs come from /proc/PID/maps."""
    try:
        b = BpfBackend(pin_dir)
    except OSError:
        return False
    try:
        return b.has_vma()
    finally:
        b.close()


ROOT_SIZE = 16          # td_request.root: the viewer's root {mnt, dentry}
CLONE_FS = 0x200
_libc = ctypes.CDLL(None, use_errno=True)
CAP_SYS_PTRACE = 19
_V = {name: i for i, name in enumerate(VIEWER.names)}
NSEC_PER_TICK = 10 ** 9 // os.sysconf('SC_CLK_TCK')   # /proc/PID/stat's start: clock ticks


def _sees_all(viewer):
    """Whether @viewer passes every visibility test: ourselves (root), or
    CAP_SYS_PTRACE in the initial user namespace."""
    if viewer[:VIEWER.size] == EMPTY_VIEWER:
        return True
    v = VIEWER.struct.unpack_from(viewer)
    return v[_V['user_ns_level']] == 0 and bool(v[_V['cap_effective']] >> CAP_SYS_PTRACE & 1)


def _start_ticks(pid):
    """Field 22 of /proc/@pid/stat (its start, clock ticks after boot), or None."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(b')') + 2:].split()[19])


class RootedReader:
    """Reads /proc files as a thread whose root is another process's.
    /proc/PID/maps and smaps print each name relative to the root of the
    thread that reads them; for a viewer whose root is not ours (a
    chrooted reader of /run/task-diag) a thread of ours takes that root
    (unshare(CLONE_FS), then chroot: that thread only) and reads there what
    was opened here (read()), so that the names are those its own /proc
    shows."""

    def __init__(self, root_pid):
        self.jobs = queue.Queue()
        self.ready = queue.Queue()
        self.thread = threading.Thread(target=self._work, args=(root_pid,), daemon=True,
                                       name='task-diag root of %d' % root_pid)
        self.thread.start()
        err = self.ready.get()
        if err:
            raise err

    def _work(self, root_pid):
        try:
            if _libc.unshare(CLONE_FS):
                raise OSError(ctypes.get_errno(), 'unshare(CLONE_FS)')
            os.chroot('/proc/%d/root' % root_pid)
            os.chdir('/')
        except OSError as e:
            self.ready.put(e)
            return
        self.ready.put(None)
        while True:
            job = self.jobs.get()
            if job is None:
                return
            fd, size, out = job
            try:
                out.put(os.read(fd, size))
            except OSError as e:
                out.put(e)

    def read(self, fd, size):
        """os.read(@fd, @size) done there."""
        out = queue.Queue()
        self.jobs.put((fd, size, out))
        got = out.get()
        if isinstance(got, OSError):
            raise got
        return got

    def close(self):
        self.jobs.put(None)


def _test_pause(host):
    """For tests only (TASK_DIAG_TEST_PAUSE_DIR): where DIR/pause-HOST
    exists, say paused-HOST and wait until pause-HOST is gone, so that a
    test can change the task between the programs' check and the /proc
    read."""
    d = os.environ.get('TASK_DIAG_TEST_PAUSE_DIR')
    if not d or not os.path.exists(os.path.join(d, 'pause-%d' % host)):
        return
    open(os.path.join(d, 'paused-%d' % host), 'w').close()
    deadline = time.monotonic() + 30
    while os.path.exists(os.path.join(d, 'pause-%d' % host)) and time.monotonic() < deadline:
        time.sleep(0.01)


def _thread_start_ticks():
    """Field 22 of this thread's stat: what the program compares with
    task->start_boottime, so that a stale request of a dead thread whose
    tid was reused is ignored."""
    with open('/proc/thread-self/stat', 'rb') as f:
        data = f.read()
    return int(data[data.rindex(b')') + 2:].split()[19])


class BpfBackend:
    """The BPF backend.  Opening it fails with OSError when nothing is
    pinned or the caller may not use the bpf() syscall."""

    name = 'bpf'

    def __init__(self, pin_dir=PIN_DIR):
        self.pin_dir = pin_dir
        self._fds = []
        try:
            # the inode before and after: a reload in between would pair
            # old descriptors with the new pins' inode (then never stale)
            ino = os.stat(os.path.join(pin_dir, PIN_ALL)).st_ino
            self.link_all = self._get(PIN_ALL)
            self.link_threads = self._get(PIN_ALL_THREADS)
            self.prog = self._get(PIN_PROG)
            self.requests = self._get(PIN_REQUESTS)
            self.config_map = self._get(PIN_CONFIG)
            # td_cgroup, where the loader pinned it (the css_task iterator)
            self.prog_cgroup = (self._get(PIN_PROG_CGROUP) if os.path.exists(
                os.path.join(pin_dir, PIN_PROG_CGROUP)) else None)
            self._ino = ino
            if os.stat(os.path.join(pin_dir, PIN_ALL)).st_ino != ino:
                raise OSError(errno.EAGAIN, 'task-diag-load replaced the pins meanwhile')
        except OSError:
            self.close()
            raise
        self._local = threading.local()
        self._own_pid_ns = None
        self._has_vma = None
        self._has_cmdline = None
        self._landlock_off = None
        self._lsms = None               # lsm.active_lsms(), once
        self._own_root = None
        self._checked, self._stale = time.monotonic(), False

    def _get(self, name):
        fd = libbpf.obj_get(os.path.join(self.pin_dir, name))
        self._fds.append(fd)
        return fd

    def close(self, _close=os.close):
        # os.close bound at definition: __del__ may run at interpreter
        # exit, when the module's globals are gone
        for fd in self._fds:
            _close(fd)
        self._fds = []

    def __del__(self):
        # a backend dropped as stale may still serve a Stream that holds
        # it: its descriptors go with the last reference
        self.close()

    def stale(self):
        """Whether task-diag-load has replaced the pins since we opened
        them: we would drive the old program, which answers on with the
        old configuration (a fresh load's has no page walk, for one).
        Looked at once per STALE_CHECK_S at most: the stat() costs a tenth
        of a DUMP_ONE, and for that long after a reload the old object's
        answers are as good as they were just before it."""
        now = time.monotonic()
        if self._stale or now - self._checked < STALE_CHECK_S:
            return self._stale
        self._checked = now
        try:
            self._stale = os.stat(os.path.join(self.pin_dir, PIN_ALL)).st_ino != self._ino
        except OSError:
            self._stale = True
        return self._stale

    def config(self):
        """The td_config of the program we drive, as a dict."""
        return tdconfig.read(self.config_map)

    def has_cmdline(self):
        """Whether our programs read CMDLINE: a sleepable object, or a plain
        one through the direct map (the command lines it cannot read that
        way come marked, and Stream reads them from /proc)."""
        if self._has_cmdline is None:
            cfg = self.config()
            self._has_cmdline = bool(cfg['cmdline'] or cfg['cmdline_direct'])
        return self._has_cmdline

    def has_vma(self):
        """Whether our programs write VMA records (the tier loaded)."""
        if self._has_vma is None:
            self._has_vma = self.config()['tier'] != TIER_NOVMA
        return self._has_vma

    # -- the request map, keyed by the calling thread ----------------------

    def _key(self):
        """(map key, start ticks) of the calling thread, as td_iter.h says:
        the thread as it names itself, so that it works in any pid namespace."""
        key = getattr(self._local, 'key', None)
        if key is None:
            ns = os.stat('/proc/thread-self/ns/pid').st_ino
            key = self._local.key = (
                (ns << 32 | threading.get_native_id()).to_bytes(8, 'little'),
                _thread_start_ticks())
        return key

    def put(self, fields):
        """Stores the request @fields (a list in TD_REQUEST order, reader_start
        filled in here) for this thread; returns the key."""
        key, start = self._key()
        fields[_F['reader_start']] = start
        libbpf.map_update(self.requests, key, TD_REQUEST.pack(*fields))
        return key

    def get(self, key):
        """The request stored under @key as a field list, as the program left it."""
        value = bytearray(TD_REQUEST.size)
        if not libbpf.map_lookup(self.requests, key, _cbuf(value)):
            return None
        return list(TD_REQUEST.struct.unpack(bytes(value)))

    def drop(self, key):
        libbpf.map_delete(self.requests, key)

    def read_link(self, link_fd):
        """All of one iterator over @link_fd."""
        fd = libbpf.iter_create(link_fd)
        try:
            chunks = []
            while True:
                chunk = _read(fd)
                if not chunk:
                    return b''.join(chunks)
                chunks.append(chunk)
        finally:
            os.close(fd)

    def filtered_link(self, tid=0, pid=0):
        return libbpf.link_create_task_iter(self.prog, tid=tid, pid=pid)

    def probe(self, strategy, pid, viewer=EMPTY_VIEWER, tid=None):
        """Runs a PROBE_* pass over the task @tid of our pid namespace (all
        tasks when None) and returns the request as the program left it."""
        key = self.put(_request(strategy, pid, viewer=viewer))
        try:
            if tid is None:
                self.read_link(self.link_all)
            else:
                link = self.filtered_link(tid=tid)
                try:
                    self.read_link(link)
                finally:
                    os.close(link)
            return self.get(key)
        finally:
            self.drop(key)

    def viewer_of(self, pid):
        """The td_viewer of process @pid (a pid of our namespace), then its
        root {mnt, dentry}, how an LSM confines it (a byte) and its cgroup
        namespace's root (8 bytes): whom a Stream answers for, when it
        answers for someone else."""
        if self._landlock_off is None:
            self._landlock_off = max(self.config()['landlock_off'], 0)     # LANDLOCK_READS: -1
        fields = self.probe(PROBE_VIEWER, self._landlock_off, tid=pid)
        if not fields or not VIEWER.struct.unpack(fields[_F['viewer']])[_V['valid']]:
            raise OSError(errno.ESRCH, 'no process %d' % pid)
        if self._lsms is None:
            self._lsms = lsm.active_lsms()
        if self._landlock_off and (fields[_F['found']] or fields[_F['found_tgid']]):
            confined = lsm.LANDLOCK
        elif pid == os.getpid():
            confined = lsm.FREE     # ourselves (own_root(), own_pid_ns()): maybe without /proc
        else:
            confined = lsm.confinement(pid, self._lsms)
            # a label read is the process the programs saw: its leader's start
            v = VIEWER.struct.unpack(fields[_F['viewer']])
            if lsm.reads_labels(self._lsms) and \
                    _start_ticks(v[_V['tgid']]) != v[_V['start']] // NSEC_PER_TICK:
                raise OSError(errno.ESRCH, 'process %d exited meanwhile' % pid)
        return (fields[_F['viewer']] + fields[_F['root']] + bytes([confined])
                + fields[_F['cgns_root']].to_bytes(8, 'little'))

    def own_root(self):
        """Our root {mnt, dentry}, as td_request.root holds a viewer's."""
        if self._own_root is None:
            self._own_root = self.viewer_of(os.getpid())[VIEWER.size:VIEWER.size + ROOT_SIZE]
        return self._own_root

    def own_pid_ns(self):
        """(struct pid_namespace * as a number, level) of our pid namespace."""
        if self._own_pid_ns is None:
            own = VIEWER.struct.unpack_from(self.viewer_of(os.getpid()))
            self._own_pid_ns = (own[VIEWER.names.index('pid_ns')],
                                own[VIEWER.names.index('pid_ns_level')])
        return self._own_pid_ns

    def same_pid_ns(self, viewer):
        """Whether @viewer numbers pids as we do (then the kernel's per-link
        filter, which takes our numbers, can serve ONE and THREAD)."""
        if viewer[:VIEWER.size] == EMPTY_VIEWER:
            return True
        return (VIEWER.struct.unpack_from(viewer)[VIEWER.names.index('pid_ns')]
                == self.own_pid_ns()[0])

    # -- one transaction ----------------------------------------------------

    def vma_stat_source(self):
        """Where VMA_STAT comes from now: VMA_STAT_SMAPS or _PAGEWALK, as
        task-diag-load --vma-stat left it."""
        return self.config()['vma_stat']

    def stream(self, strategy, pid=0, show=wire.SHOW_BASE, seq=0, viewer=EMPTY_VIEWER,
               cgroup=0):
        """The answer to one request, to read(): a walk of the cgroup subtree
        (CgroupWalk) where it can answer, else the task iterator (Stream)."""
        if cgroup and self.prog_cgroup is not None and strategy in CgroupWalk.STRATEGIES \
                and not show & ~CgroupWalk.SHOW:
            return CgroupWalk(self, strategy, show, seq, viewer, cgroup)
        return Stream(self, strategy, pid, show, seq, viewer, cgroup=cgroup)

    def raw(self, strategy, pid=0, show=wire.SHOW_BASE, seq=0, vma_stat=None, cgroup=0):
        """The response bytes for one request, as /proc/task-diag gave them.
        @vma_stat forces a VMA_STAT source (the loader's self-check)."""
        s = (self.stream(strategy, pid, show, seq, cgroup=cgroup) if vma_stat is None else
             Stream(self, strategy, pid, show, seq, vma_stat=vma_stat, cgroup=cgroup))
        try:
            return s.read(1 << 62)      # all of it, in one call
        finally:
            s.close()

    def pieces(self, strategy, pid=0, show=wire.SHOW_BASE, seq=0, cgroup=0):
        """The response as the iterator hands it out, one read (and the
        continuation passes of the task it leaves unfinished) per piece:
        a decoder that takes them one by one never holds the whole
        response, nor pays for copying it into one buffer."""
        s = self.stream(strategy, pid, show, seq, cgroup=cgroup)
        try:
            while True:
                piece = s.read(once=True)
                if not piece:
                    return
                yield piece
        finally:
            s.close()


# The groups that follow VMA on the wire: a task's last message carries them.
_AFTER_VMA = frozenset(wire.ATTR_ORDER[wire.ATTR_ORDER.index(wire.TASK_DIAG_VMA) + 1:])


def _cut(buf, size):
    """(head, rest) of @buf: at most @size bytes, whole messages where one
    fits (messages are at most 32 KiB)."""
    if len(buf) <= size:
        return buf, b''
    off = wire.whole_head(buf, size) or size
    return buf[:off], buf[off:]


def _cbuf(value):
    return (libbpf.ctypes.c_char * len(value)).from_buffer(value)


class Stream:
    """One request's answer, read piece by piece with read().  Errors of
    the request (ESRCH, EINVAL) come from the first read, as the original's
    did; b'' marks the end."""

    def __init__(self, backend, strategy, pid, show, seq, viewer=EMPTY_VIEWER, vma_stat=None,
                 cgroup=0):
        # Where VMA records come from.  The programs write them, with their
        # statistics when VMA_STAT comes from the page walk (task-diag-load
        # --vma-stat=pagewalk).  Otherwise (VMA_STAT from smaps, or a tier
        # without the VMA code) the programs answer BASE, CRED and STAT, and
        # so decide who sees which task, and each task's VMAs are read here
        # from its /proc/PID/smaps or maps, the kernel's own numbers: the
        # proc_vmas case.  A task whose names the programs could not
        # resolve exactly comes with MSG_F_VMA_FROM_PROC and is answered
        # the same way.  To find the tasks of a reader of another pid
        # namespace in our /proc, the programs add ATTR_HOST_PID.
        if show & wire.SHOW_CMDLINE and not backend.has_cmdline():
            # a plain object without the direct read: api.dump() answers
            # from /proc (its EOPNOTSUPP fallback), and so does a client
            # that reads /proc itself
            raise OSError(errno.EOPNOTSUPP, 'TASK_DIAG_SHOW_CMDLINE: not read by the programs '
                          'loaded here (see task-diag-load --status)')
        # A plain object reads CMDLINE through the direct map only: a
        # command line it could not read so comes marked
        # (MSG_F_CMDLINE_FROM_PROC), and is read here from /proc
        # (_cmdlines_from_proc()).
        self.cmdline_fixups = bool(show & wire.SHOW_CMDLINE) and not backend.config()['cmdline']
        self.cmdline_marked = 0      # td_request.cmdline_proc seen so far
        want_vma = bool(show & wire.SHOW_VMA)
        if want_vma and _confined(viewer):
            # a reader whom an LSM may refuse the maps of others (Landlock
            # only where the loader found it does, task_diag/lsm.py): the
            # programs' ptrace test has no LSM hook, so none at all for
            # such a reader, rather than more than its /proc gives it
            raise OSError(errno.EACCES, 'TASK_DIAG_SHOW_VMA: not for a reader confined by %s'
                          % lsm.NAMES.get(_confined(viewer), 'an LSM'))
        self.with_stat = bool(want_vma and show & wire.SHOW_VMA_STAT)
        self.proc_vmas = want_vma and not backend.has_vma()
        if self.with_stat and not self.proc_vmas:
            if vma_stat is None:
                vma_stat = backend.vma_stat_source()
            self.proc_vmas = vma_stat != VMA_STAT_PAGEWALK
        if self.proc_vmas:
            show &= ~(wire.SHOW_VMA | wire.SHOW_VMA_STAT)
        self.b = backend
        self.strategy = strategy
        self.pid = pid
        self.show = show
        self.fields = _request(strategy, pid, show, seq, viewer, cgroup)
        self.cgroup = cgroup
        # A task whose VMAs are read from /proc for a viewer who might not
        # see every task: that read is root's, after the programs decided
        # the viewer may see the task.  In between the task may have
        # exec'd a setuid program (or died, its pid reused): so after the
        # read the same task (its start) must still be there and visible
        # to the viewer, or it is left out.
        self.recheck = want_vma and not _sees_all(viewer)
        if want_vma or self.cmdline_fixups:
            self.fields[_F['host_pid_ns']], self.fields[_F['host_pid_ns_level']] = \
                backend.own_pid_ns()
        if want_vma:
            if self.proc_vmas and (self.recheck or not backend.same_pid_ns(viewer)):
                self.fields[_F['flags']] |= REQ_HOST_EACH
        self.tasks_from_proc = 0     # tasks marked MSG_F_VMA_FROM_PROC (tests look)
        self.viewer = viewer
        self._rooted = None          # RootedReader of a viewer whose root is not ours
        self.pending = b''           # read by _next(), not yet handed out
        self.parts = collections.deque()    # _next(): bytes, or generators of bytes
        self.fd = -1
        self.started = False
        self.drained = False         # the iterator has given its end
        self.done = False
        self.key = None

    def _open(self, tid=0, pid=0):
        """The iterator: filtered by the kernel to @tid or process @pid
        where our pid numbers are the viewer's, otherwise over every task
        (the program filters)."""
        b = self.b
        if (tid or pid) and b.same_pid_ns(self.fields[_F['viewer']]):
            link = b.filtered_link(tid=tid, pid=pid)
            try:
                self.fd = libbpf.iter_create(link)
            finally:
                os.close(link)      # the iterator holds the link
        elif self.strategy == wire.DUMP_ALL_THREAD:
            self.fd = libbpf.iter_create(b.link_threads)
        else:
            self.fd = libbpf.iter_create(b.link_all)

    def _put(self):
        self.key = self.b.put(self.fields)
        self.cmdline_marked = 0         # its count starts again

    def _start(self):
        strategy, pid = self.strategy, self.pid
        wire.check_request(strategy, pid)
        wire.check_filter(strategy, self.cgroup)
        if self.cgroup and cgroups.mount_point() and cgroups.find(self.cgroup) is None:
            raise OSError(errno.ENOENT, 'no cgroup with id %d' % self.cgroup)
        self._open(tid=pid if strategy == wire.DUMP_ONE else 0,
                   pid=pid if strategy == wire.DUMP_THREAD else 0)
        self._put()
        chunk = _read(self.fd)
        if chunk or strategy not in wire.NEEDS_PID:
            return chunk
        # Nothing: no such task, a task the viewer may not see, or (THREAD)
        # a thread id where the kernel's per-process filter wants the tgid.
        got = self.b.get(self.key)
        found, tgid = (got[_F['found']], got[_F['found_tgid']]) if got else (0, 0)
        if strategy == wire.DUMP_THREAD and not found:
            got = self.b.probe(PROBE_FOUND, pid, self.fields[_F['viewer']],
                               tid=pid if self.b.same_pid_ns(self.fields[_F['viewer']]) else None)
            found, tgid = (got[_F['found']], got[_F['found_tgid']]) if got else (0, 0)
            if found:
                os.close(self.fd)
                self.fd = -1
                self.fields[_F['pid']] = tgid
                self._open(pid=tgid)
                self._put()
                return _read(self.fd)
        if not found:
            raise OSError(errno.ESRCH, 'no task %d' % pid)
        return b''

    def read(self, size=READ_SIZE, once=False):
        """The next piece of at most @size bytes (whole messages when
        @size is at least the iterator's 32 KiB), b'' at the end; with
        @once, what one iterator read gave, whatever its size (a test that
        changes things between the kernel's reads).  The request is stored
        under the calling thread only for the time of the call: a FUSE
        daemon serves one client's reads from any of its threads."""
        if not self.pending and not self.done:
            self.pending = self._next(size, once)
        if once:
            size = len(self.pending)
        chunk, self.pending = _cut(self.pending, size)
        return chunk

    def _next(self, want, once=False):
        """Whole messages until @want bytes (@once: all that one iterator
        read gave) or the end.  They come from the parts waiting, then from
        more iterator reads; a part is bytes, or the messages of one task
        whose VMAs are read from /proc as they are pulled, so that no more
        than about @want bytes are held however big a task is."""
        pieces, total = [], 0
        try:
            while total < want or (once and self.parts):
                if self.parts:
                    piece = self._pull()
                    if piece:
                        pieces.append(piece)
                        total += len(piece)
                    continue
                if once and pieces:
                    break
                if self.drained:
                    self.close()
                    break
                self.parts.extend(self._iterator_read())
        except OSError:
            self.close()
            raise
        finally:
            if self.key is not None:
                self.b.drop(self.key)
                self.key = None
        return b''.join(pieces)

    def _pull(self):
        """The next bytes of the first part, None when it has no more."""
        part = self.parts[0]
        if isinstance(part, bytes):
            self.parts.popleft()
            return part
        piece = next(part, None)
        if piece is None:
            self.parts.popleft()
        return piece

    def _iterator_read(self):
        """The parts of one iterator read, with the continuation passes of
        a task it left unfinished spliced in (td_iter.h, TD_CONT_*); [] at
        the iterator's end."""
        if not self.started:
            self.started = True
            chunk = self._start()
        else:
            if self.key is None:
                self._put()
            chunk = _read(self.fd)
        from_proc = False
        if chunk and self.show & wire.SHOW_VMA:
            got = self.b.get(self.key)
            from_proc = bool(got and got[_F['from_proc']])
            more = self._continuation(chunk, got)
            if more is not None:
                chunk, passes_from_proc = chunk + more[0], more[1]
                from_proc = from_proc or passes_from_proc
                self._put()     # the passes left their own request
            elif from_proc:
                self._put()     # from_proc clear for the next read
        if not chunk:
            self.drained = True
            return []
        if self.proc_vmas or from_proc:
            return self._vmas_from_proc(chunk)
        # marked command lines: where VMAs are asked, a continuation may
        # have put the request again, so every read is looked through
        if self.cmdline_fixups and (self.show & wire.SHOW_VMA or self._cmdline_marks()):
            chunk = self._cmdlines_from_proc(chunk)
        return [chunk]

    def _cmdline_marks(self):
        """Whether the programs marked a command line since the last look
        (td_request.cmdline_proc)."""
        got = self.b.get(self.key) if self.key is not None else None
        marked = got[_F['cmdline_proc']] if got else 0
        if marked == self.cmdline_marked:
            return False
        self.cmdline_marked = marked
        return True

    def _cmdlines_from_proc(self, chunk):
        """@chunk with each message marked MSG_F_CMDLINE_FROM_PROC given its
        command line from /proc (_proc_cmdline()), unmarked, and without
        the ATTR_HOST_PID the programs added for it."""
        out, keep = [], 0
        for (off, length), (hdr, (pid, tgid, flags), attrs) in zip(wire.message_spans(chunk),
                                                                    wire.iter_messages(chunk)):
            if flags & MSG_F_CMDLINE_FROM_PROC:
                out += [chunk[keep:off], self._message_with_cmdline(chunk, hdr, pid, tgid,
                                                                    flags, attrs)]
                keep = off + ((length + 3) & ~3)
        if not out:
            return chunk
        out.append(chunk[keep:])
        return b''.join(out)

    def _message_with_cmdline(self, chunk, hdr, pid, tgid, flags, attrs):
        """One marked message again, its CMDLINE from /proc; ATTR_HOST_PID
        stays where a VMA stage still needs it."""
        host, start = pid, None
        for t, a, b in attrs:
            if t == ATTR_HOST_PID:
                host, _, start, _ = HOST_PID.struct.unpack_from(chunk, a)
        keep_host = flags & MSG_F_VMA_FROM_PROC or self.fields[_F['flags']] & REQ_HOST_EACH
        kept = [(t, _proc_cmdline(host, start) if t == wire.TASK_DIAG_CMDLINE
                 else bytes(chunk[a:b])) for t, a, b in attrs
                if t != ATTR_HOST_PID or keep_host]
        return wire.encode_message(pid, tgid, kept, hdr[3], flags & ~MSG_F_CMDLINE_FROM_PROC)

    def _vmas_from_proc(self, chunk):
        """The parts of @chunk: for each task that needs them (every task in
        the proc_vmas case, else those marked MSG_F_VMA_FROM_PROC) its
        messages with VMA records from its /proc/PID/smaps, split as the
        fallback splits them (VMAs for thread-group leaders only in thread
        dumps; none without an mm), and without ATTR_HOST_PID."""
        out, group = [], []
        for msg in wire.iter_messages(chunk):
            group.append(msg)
            if not msg[1][2] & wire.TASK_DIAG_FLAG_CONT:
                out.append(self._task_from_proc(chunk, group))
                group = []
        if group:                       # cannot be: a read ends with a task's end
            out.append(self._task_from_proc(chunk, group))
        return out

    def _task_from_proc(self, chunk, group):
        """The messages of one task, @group: [iter_messages() items]; a
        generator if its VMAs are read from /proc."""
        hdr, (pid, tgid, _), attrs = group[0]
        host, start, exec_id = pid, None, None
        for t, a, b in (a for m in group for a in m[2]):
            if t == ATTR_HOST_PID:
                host, _, start, exec_id = HOST_PID.struct.unpack_from(chunk, a)
                break
        head = [(t, bytes(chunk[a:b])) for t, a, b in attrs
                if t not in _AFTER_VMA and t not in (wire.TASK_DIAG_VMA, ATTR_HOST_PID)]
        last_flags = group[-1][1][2]
        tail = [(t, _proc_cmdline(host, start)
                 if t == wire.TASK_DIAG_CMDLINE and last_flags & MSG_F_CMDLINE_FROM_PROC
                 else bytes(chunk[a:b])) for t, a, b in group[-1][2] if t in _AFTER_VMA]
        marked = any(m[1][2] & MSG_F_VMA_FROM_PROC for m in group)
        self.tasks_from_proc += marked
        if (self.proc_vmas or marked) and wire.sends_vmas(self.strategy, pid, tgid):
            return self._messages_from_proc(pid, tgid, host, start, exec_id, head, tail, hdr[3])
        # the programs' VMA records, as they are, only without ATTR_HOST_PID
        out = []
        for hdr, (pid, tgid, flags), attrs in group:
            kept = [(t, bytes(chunk[a:b])) for t, a, b in attrs if t != ATTR_HOST_PID]
            if flags & MSG_F_CMDLINE_FROM_PROC:
                kept = [(t, _proc_cmdline(host, start)) if t == wire.TASK_DIAG_CMDLINE
                        else (t, v) for t, v in kept]
            out.append(wire.encode_message(pid, tgid, kept, hdr[3],
                                           flags & ~(MSG_F_VMA_FROM_PROC |
                                                     MSG_F_CMDLINE_FROM_PROC)))
        return b''.join(out)

    def _messages_from_proc(self, pid, tgid, host, start, exec_id, head, tail, seq):
        """Generator: the messages of one task with the VMA records of its
        /proc/HOST/smaps, read SMAPS_PIECE bytes at a time as they are
        pulled.  What was read goes out only after a check that the task is
        still the one the programs showed (its @start) and, for a viewer
        who might not see every task, still its to see and running the
        same program (@exec_id): the reads are root's.  A task that fails
        the check ends there: without VMAs if it has died (its pid may be
        another's), with nothing more for a viewer who may no longer see
        it; cut short by a closing message if some of it went out."""
        fd = -1
        if host:
            _test_pause(host)
            try:
                fd = os.open('/proc/%d/smaps' % host, os.O_RDONLY)
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
        read, pieces_read = self._proc_read(), [0]

        def pieces():
            while True:
                try:
                    piece = read(fd, SMAPS_PIECE)
                except (FileNotFoundError, ProcessLookupError, PermissionError):
                    return          # gone meanwhile: what was read stands
                if not piece:
                    return
                pieces_read[0] += 1
                yield piece

        def records():
            for vmas in maps.iter_smaps(pieces(), self.with_stat):
                yield from wire.encode_vma_records(vmas)

        sent = False
        try:
            for msg in maps.iter_task_messages(pid, tgid, head, records() if fd >= 0 else (),
                                               tail, seq):
                if pieces_read[0]:
                    if start is not None and _start_ticks(host) != start:
                        yield wire.encode_message(pid, tgid, tail if sent else head + tail, seq)
                        return
                    if self.recheck and not self._still_visible(pid, host, exec_id):
                        if sent:
                            yield wire.encode_message(pid, tgid, [], seq)
                        return
                sent = True
                yield msg
        finally:
            if fd >= 0:
                os.close(fd)

    def _proc_read(self):
        """os.read for /proc files of our viewer: here, or, for a viewer
        whose root is not ours, by a RootedReader in its root."""
        if self._rooted is None:
            root = self.viewer[VIEWER.size:VIEWER.size + ROOT_SIZE]
            if not root.strip(b'\0') or root == self.b.own_root():
                return os.read
            tgid = VIEWER.struct.unpack_from(self.viewer)[_V['tgid']]
            self._rooted = RootedReader(tgid)
        return self._rooted.read

    def _still_visible(self, pid, host, exec_id):
        """Whether task @pid (@host in our /proc) may be seen by the viewer
        now, and runs the program it ran when the programs showed it (its
        @exec_id: a setuid program exec'd and left in between would pass
        the check alone)."""
        if exec_id is None:
            return False
        got = self.b.probe(PROBE_FOUND, pid, self.fields[_F['viewer']],
                           tid=host if self.b.same_pid_ns(self.fields[_F['viewer']]) else None)
        self.key = None                 # the probe took our thread's request: store it again
        return bool(got and got[_F['found']] and got[_F['found_exec']] == exec_id)

    def _continuation(self, chunk, got):
        """The rest of the task that @chunk ends inside, if any: passes over
        that task alone, each a program run that goes on where the last
        stopped, until one ends the task.  None when there was none, else
        (bytes, whether a pass marked MSG_F_VMA_FROM_PROC)."""
        if not got or got[_F['cont_state']] != CONT_PENDING:
            return None
        pid, start = got[_F['cont_pid']], got[_F['cont_start']]
        last = wire.last_message(chunk)
        if not last or last[0] != pid or not last[2] & wire.TASK_DIAG_FLAG_CONT:
            # the run that set it was thrown away (seq buffer overflow):
            # the iterator shows that task again on the next read
            self._put()         # with cont_state NONE again
            return None
        tgid = last[1]
        b = self.b
        viewer = self.fields[_F['viewer']]
        link = b.filtered_link(tid=pid) if b.same_pid_ns(viewer) else None
        out, from_proc, held = [], bool(got[_F['from_proc']]), 0
        try:
            while True:
                fields = list(self.fields)
                fields[_F['from_proc']] = int(from_proc)     # marks the task's last message
                fields[_F['cont_pid']] = pid
                fields[_F['cont_start']] = start
                fields[_F['cont_state']] = CONT_RESUME
                self.key = b.put(fields)
                if link is not None:
                    data = b.read_link(link)
                elif self.strategy == wire.DUMP_ALL_THREAD:
                    data = b.read_link(b.link_threads)
                else:
                    data = b.read_link(b.link_all)
                got = b.get(self.key)
                out.append(data)
                held += len(data)
                from_proc = from_proc or bool(got and got[_F['from_proc']])
                state = got[_F['cont_state']] if got else CONT_RESUME
                if state == CONT_MORE and got[_F['cont_start']] > start:
                    start = got[_F['cont_start']]
                    # Past JOIN_MAX the task's VMAs come from /proc; then
                    # only its last message matters (STAT, ATTR_HOST_PID:
                    # from_proc tells the next pass to mark it), and the
                    # passes before it need not be held.
                    from_proc = from_proc or held > JOIN_MAX
                    if from_proc:
                        out, held = [], 0
                    continue
                if state != CONT_DONE:
                    # the task is gone (or stuck): end its messages
                    out.append(wire.encode_message(pid, tgid, [], self.fields[_F['seq']]))
                return b''.join(out), from_proc
        finally:
            if link is not None:
                os.close(link)

    def close(self):
        self.done = True
        for part in self.parts:
            if not isinstance(part, bytes):
                part.close()        # its smaps descriptor
        self.parts.clear()
        if self._rooted is not None:
            self._rooted.close()
            self._rooted = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class CgroupWalk:
    """{ALL or ALL_THREAD, groups without VMA and CMDLINE} with the cgroup
    filter, answered by td_cgroup (task_diag/bpf/td_css.h), which walks only
    the subtree: a link of it to the cgroup, one iterator per run of at
    most the iterator's 32 KiB (a cgroup iterator answers one read), each
    run going on where the last one stopped (cgc_id, cgc_pid, cgc_seek:
    kept here between runs, stored with the request under the reading
    thread for each run, as Stream does).  Where the program could not find that
    place again (its cgroup removed, its task gone), the walk starts over
    and the tasks already answered are left out.  Errors of the request
    come from the first read: ENOENT, no such cgroup."""

    STRATEGIES = (wire.DUMP_ALL, wire.DUMP_ALL_THREAD)
    SHOW = (wire.SHOW_BASE | wire.SHOW_CRED | wire.SHOW_STAT | wire.SHOW_STATM |
            wire.SHOW_STAT_EXT | wire.SHOW_NS | wire.SHOW_CGROUP)
    RESTARTS = 100          # walks started over before giving up (EAGAIN)

    def __init__(self, backend, strategy, show, seq, viewer, cgroup):
        self.b = backend
        self.strategy, self.cgroup = strategy, cgroup
        self.fields = _request(strategy, 0, show, seq, viewer, cgroup)
        self.link = -1
        self.done = False
        self.seen = None            # tids answered, from the second run on
        self.restarts = 0

    def read(self, size=READ_SIZE, once=False):
        """Whole messages: one run's (@once), or every run's; b'' at the end."""
        out = []
        try:
            while not self.done:
                out.append(self._run())
                if once and out[-1]:
                    break
        except OSError:
            self.close()
            raise
        return b''.join(out)

    def _run(self):
        if self.link < 0:
            wire.check_filter(self.strategy, self.cgroup)
            self.link = libbpf.link_create_cgroup_iter(self.b.prog_cgroup, self.cgroup)
        key = self.b.put(self.fields)
        try:
            data = self.b.read_link(self.link)
            got = self.b.get(key)
        finally:
            self.b.drop(key)
        if got is None:
            raise OSError(errno.EAGAIN, 'the request was evicted from the map')
        if self.seen is not None:
            data = self._unseen(data)
        more = got[_F['cgc_id']]
        if got[_F['cgc_seek']]:
            # the place to go on from was not there: start over, the tasks
            # answered so far left out
            self.restarts += 1
            if self.restarts > self.RESTARTS:
                raise OSError(errno.EAGAIN, 'the cgroup subtree changes faster than it is read')
            self.fields[_F['cgc_id']] = self.fields[_F['cgc_pid']] = 0
            self.fields[_F['cgc_seek']] = 0
            more = True
        elif more:
            self.fields[_F['cgc_id']], self.fields[_F['cgc_pid']] = more, got[_F['cgc_pid']]
            self.fields[_F['cgc_seek']] = 1
        if more and self.seen is None:
            self.seen = set()
            data = self._unseen(data)
        if not more:
            self.close()
        return data

    def _unseen(self, data):
        """@data without the messages of tasks answered before."""
        keep, seen = [], self.seen
        for off, length in wire.message_spans(data):
            tid = _U32_AT(data, off + wire.NLMSG_HDRLEN)[0]
            if tid not in seen:
                seen.add(tid)
                keep.append(data[off:off + ((length + 3) & ~3)])
        return b''.join(keep)

    def close(self):
        if self.link >= 0:
            os.close(self.link)
            self.link = -1
        self.done = True
