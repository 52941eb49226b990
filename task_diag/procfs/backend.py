"""task_diag messages built from /proc, byte for byte in the layout the BPF
programs write: for kernels without BPF iterators, for readers who cannot
use bpf(), and as an independent oracle in the tests.

Who sees what follows the kernel's own checks: /proc is opened by the
reader, so pids are those of the pid namespace /proc was mounted for, ids
are mapped into the reader's user namespace by the kernel, and a task is
shown only if readlink(/proc/PID/exe) is not refused: that readlink is
guarded by ptrace_may_access(PTRACE_MODE_READ_FSCREDS), the very test the
original applied.

/proc names kernel threads and workqueue workers longer than task->comm
("kworker/0:1-events"); task_comm() recovers the comm they start with.

STATM is /proc/PID/statm; CMDLINE, one read of TASK_DIAG_CMDLINE_MAX
bytes of /proc/PID/cmdline; STAT_EXT, more fields of the stat file that
BASE reads; NS, the inodes the /proc/PID/ns links name; CGROUP, the "0::"
line of /proc/PID/cgroup, with the id of that directory in our cgroup2
mount (0 where the mount does not show it: a path with "/.." outside our
cgroup namespace, a removed cgroup, no mount).  The cgroup filter reads
the cgroup.procs or cgroup.threads files of the subtree in that mount.

VMA and VMA_STAT come from /proc/PID/smaps (maps.py), for thread-group
leaders only in thread dumps; a task without an mm (kernel thread, zombie)
gets no VMA attribute; a task whose records do not fit into one message of
maps.MSG_MAX bytes is split between records with TASK_DIAG_FLAG_CONT.
"""
import errno
import os

from .. import cgroups, wire
from . import maps

STATE_INDEX = {letter: i for i, letter in enumerate(wire.STATE_LETTERS)}
PF_WQ_WORKER = 0x00000020
PF_KTHREAD = 0x00200000


# --- raw readers, one per file (bytes in, fields out) ---------------------

def read_file(path):
    with open(path, 'rb') as f:
        return f.read()


def parse_stat(data):
    """(comm bytes, [fields from state on]) of a stat file; comm runs to
    the last ')', as it may hold spaces and parentheses."""
    lpar = data.index(b'(')
    rpar = data.rindex(b')')
    return data[lpar + 1:rpar], data[rpar + 2:].split()


def read_head(path, size):
    """What one read() of @size bytes from the start of @path returns."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def parse_status(data):
    """{key: value bytes} of a status file."""
    out = {}
    for line in data.split(b'\n'):
        key, sep, value = line.partition(b':')
        if sep:
            out[key] = value.strip()
    return out


def may_read(task_dir):
    """ptrace_may_access(PTRACE_MODE_READ_FSCREDS) as the kernel answers it
    for us: readlink(exe) is refused with EACCES when it fails.  A kernel
    thread or zombie has no exe (ENOENT) but passed the check."""
    try:
        os.readlink(task_dir + '/exe')
    except PermissionError:
        return False
    except OSError:
        pass
    return True


def task_comm(name, flags):
    """task->comm from the name /proc shows (stat field 2, flags field 9).
    A regular workqueue worker shows comm ("kworker/..." without '-' or
    '+'), then '-' or '+' and what it works on (wq_worker_comm()).  Other
    workers, rescuers, are named after their workqueue, which may hold a
    '-' ("kworker/R-rcu_gp" since 6.9, "edac-poller" before): we leave
    their names alone.  A kernel thread shows its full name
    (get_kthread_comm()), of which comm holds the first 15 bytes, like
    every other task."""
    if (flags & PF_WQ_WORKER and name.startswith(b'kworker/')
            and not name.startswith(b'kworker/R-')):
        for i, c in enumerate(name):
            if c in b'-+':
                name = name[:i]
                break
    return name[:wire.TASK_DIAG_COMM_LEN - 1]


# --- one task --------------------------------------------------------------

def _base(pid, tgid, comm, f, status):
    # stat fields from state on: state ppid pgrp session tty_nr tpgid flags
    return wire.BASE.pack(tgid, pid, int(f[1]), int(status[b'TracerPid']), int(f[3]),
                          int(f[2]), STATE_INDEX.get(f[0].decode(), 0),
                          task_comm(comm, int(f[6])))


def _creds(status):
    uids = [int(x) for x in status[b'Uid'].split()]
    gids = [int(x) for x in status[b'Gid'].split()]
    caps = [int(status[k], 16) for k in (b'CapInh', b'CapPrm', b'CapEff', b'CapBnd')]
    return wire.CREDS.pack(*caps, *uids, *gids)


def _stat(f):
    # minflt cminflt majflt cmajflt utime stime cutime cstime: fields 10-17;
    # num_threads: field 20 (f[0] is field 3).
    return wire.STAT.pack(*(int(x) for x in f[7:15]), int(f[17]))


def _statm(data):
    # size resident shared text lib data dt, in pages
    return wire.STATM.pack(*(int(x) for x in data.split()))


def _stat_ext(f):
    # starttime: field 22; tty_nr 7, flags 9, priority 18, nice 19,
    # rt_priority 40, policy 41, delayacct_blkio_ticks 42 (f[0] is field 3)
    return wire.STAT_EXT.pack(int(f[19]), int(f[4]), int(f[6]), int(f[15]), int(f[16]),
                              int(f[37]), int(f[38]), int(f[39]))


def _ns(task_dir):
    # the inode each /proc/PID/ns link names; 0 where there is no link
    # (a namespace the kernel lacks, or a zombie's: it keeps pid and user)
    inos = []
    for name in wire.NS.names:
        try:
            inos.append(os.stat('%s/ns/%s' % (task_dir, name)).st_ino)
        except (FileNotFoundError, ProcessLookupError):
            inos.append(0)
    return wire.NS.pack(*inos)


DELETED = b' (deleted)'


def _cgroup(data, mount):
    # the "0::" line: the unified hierarchy's path; " (deleted)" after a
    # removed cgroup's (a zombie's), which the flag says instead
    for line in data.split(b'\n'):
        if line.startswith(b'0::'):
            path, flags = line[3:], 0
            if path.endswith(DELETED):
                path, flags = path[:-len(DELETED)], wire.CGROUP_F_DELETED
            cg_id = 0
            if mount and not flags and path != b'/..' and not path.startswith(b'/../'):
                try:
                    cg_id = os.stat(os.fsencode(mount) + path).st_ino
                except OSError:
                    pass
            return wire.encode_cgroup(cg_id, path, flags)
    return None                     # no unified hierarchy shown


def task_message(task_dir, pid, tgid, show, seq, stat_dir=None, vmas=True, cg_mount=None):
    """The message(s) of the task at @task_dir, or None if it is gone or
    hidden: one message, or several (TASK_DIAG_FLAG_CONT) when its VMA
    records do not fit into maps.MSG_MAX bytes.  @stat_dir: where STAT
    comes from (the process's directory for whole-process values, the
    thread's for per-thread ones).  @vmas: False where VMAs are not sent
    (threads other than the leader in thread dumps).  @cg_mount: our cgroup2
    mount, for CGROUP's ids."""
    if not may_read(task_dir):
        return None
    try:
        comm, f = parse_stat(read_file(task_dir + '/stat'))
        status = parse_status(read_file(task_dir + '/status')) if show & (
            wire.SHOW_BASE | wire.SHOW_CRED) else None
        sf = f if stat_dir in (None, task_dir) else parse_stat(read_file(stat_dir + '/stat'))[1]
        records = None
        if vmas and show & wire.SHOW_VMA:
            records = maps.vma_records(task_dir, bool(show & wire.SHOW_VMA_STAT))
        statm = read_file(task_dir + '/statm') if show & wire.SHOW_STATM else None
        cmdline = read_head(task_dir + '/cmdline', wire.TASK_DIAG_CMDLINE_MAX) \
            if show & wire.SHOW_CMDLINE else None
        cgroup = read_file(task_dir + '/cgroup') if show & wire.SHOW_CGROUP else None
    except (FileNotFoundError, ProcessLookupError):
        return None                 # exited meanwhile
    head = []
    if show & wire.SHOW_BASE:
        head.append((wire.TASK_DIAG_BASE, _base(pid, tgid, comm, f, status)))
    if show & wire.SHOW_CRED:
        head.append((wire.TASK_DIAG_CRED, _creds(status)))
    tail = []
    if show & wire.SHOW_STAT:
        tail.append((wire.TASK_DIAG_STAT, _stat(sf)))
    if statm is not None:
        tail.append((wire.TASK_DIAG_STATM, _statm(statm)))
    if cmdline is not None:
        tail.append((wire.TASK_DIAG_CMDLINE, cmdline))
    if show & wire.SHOW_STAT_EXT:
        tail.append((wire.TASK_DIAG_STAT_EXT, _stat_ext(f)))
    if show & wire.SHOW_NS:
        tail.append((wire.TASK_DIAG_NS, _ns(task_dir)))
    if cgroup is not None:
        payload = _cgroup(cgroup, cg_mount)
        if payload is not None:
            tail.append((wire.TASK_DIAG_CGROUP, payload))
    if not records:                 # no mm (kernel thread, zombie): no VMA attribute
        return wire.encode_message(pid, tgid, head + tail, seq)
    return b''.join(maps.task_messages(pid, tgid, head, records, tail, seq))


# --- the strategies -------------------------------------------------------

def _numeric(path):
    try:
        return sorted(int(n) for n in os.listdir(path) if n.isdigit())
    except (FileNotFoundError, ProcessLookupError):
        return []


class ProcBackend:
    name = 'proc'

    def __init__(self, proc='/proc'):
        self.proc = proc

    def _tgid(self, pid):
        """The tgid of task @pid, or None when there is none or the reader
        may not see it: ONE, THREAD and CHILDREN then answer ESRCH, as the
        programs do (hidepid=invisible)."""
        try:
            tgid = int(parse_status(read_file('%s/%d/status' % (self.proc, pid)))[b'Tgid'])
        except (FileNotFoundError, ProcessLookupError, KeyError):
            return None
        return tgid if may_read('%s/%d' % (self.proc, pid)) else None

    def _in_cgroup(self, cg_id, threads):
        """The pids (@threads: the tids) that the cgroup.procs (cgroup.threads)
        files of the subtree of cgroup @cg_id list, in order; ENOENT when
        our cgroup2 mount has no such cgroup."""
        path = cgroups.find(cg_id)
        if path is None:
            raise OSError(errno.ENOENT, 'no cgroup with id %d' % cg_id)
        ids = set()
        for d in cgroups.subtree(path):
            try:
                ids.update(int(x) for x in read_file(
                    d + ('/cgroup.threads' if threads else '/cgroup.procs')).split())
            except OSError:
                pass    # removed meanwhile; a threaded cgroup's cgroup.procs (EOPNOTSUPP)
        return sorted(ids)

    def tasks(self, strategy, pid, cgroup=0):
        """(task dir, pid, tgid, stat dir) of each task the request names, in
        pid order, as the BPF iterator walks them."""
        proc = self.proc
        if cgroup and strategy == wire.DUMP_ALL:
            for p in self._in_cgroup(cgroup, False):
                d = '%s/%d' % (proc, p)
                yield d, p, p, d
        elif cgroup and strategy == wire.DUMP_ALL_THREAD:
            for tid in self._in_cgroup(cgroup, True):
                try:
                    tgid = int(parse_status(read_file('%s/%d/status' % (proc, tid)))[b'Tgid'])
                except (FileNotFoundError, ProcessLookupError, KeyError):
                    continue
                d = '%s/%d/task/%d' % (proc, tgid, tid)
                yield d, tid, tgid, d
        elif strategy == wire.DUMP_ALL:
            for p in _numeric(proc):
                d = '%s/%d' % (proc, p)
                yield d, p, p, d
        elif strategy == wire.DUMP_ALL_THREAD:
            threads = sorted((tid, tgid) for tgid in _numeric(proc)
                             for tid in _numeric('%s/%d/task' % (proc, tgid)))
            for tid, tgid in threads:
                d = '%s/%d/task/%d' % (proc, tgid, tid)
                yield d, tid, tgid, d
        elif strategy == wire.DUMP_ONE:
            tgid = self._tgid(pid)
            if tgid is None:
                raise OSError(errno.ESRCH, 'no task %d' % pid)
            d = '%s/%d' % (proc, pid)
            yield d, pid, tgid, d
        elif strategy == wire.DUMP_THREAD:
            tgid = self._tgid(pid)
            if tgid is None:
                raise OSError(errno.ESRCH, 'no task %d' % pid)
            for tid in _numeric('%s/%d/task' % (proc, tgid)):
                d = '%s/%d/task/%d' % (proc, tgid, tid)
                yield d, tid, tgid, d
        elif strategy == wire.DUMP_CHILDREN:
            if self._tgid(pid) is None:
                raise OSError(errno.ESRCH, 'no task %d' % pid)
            for p in _numeric(proc):
                d = '%s/%d' % (proc, p)
                try:
                    if int(parse_stat(read_file(d + '/stat'))[1][1]) != pid:
                        continue
                except (FileNotFoundError, ProcessLookupError):
                    continue
                yield d, p, p, d
        else:
            raise OSError(errno.EINVAL, 'unknown dump strategy %r' % (strategy,))

    def pieces(self, strategy, pid=0, show=wire.SHOW_BASE, seq=0, cgroup=0):
        """The response, one task's messages at a time."""
        wire.check_request(strategy, pid)
        wire.check_filter(strategy, cgroup)
        cg_mount = cgroups.mount_point() if show & wire.SHOW_CGROUP else None
        for task_dir, p, tgid, stat_dir in self.tasks(strategy, pid, cgroup):
            msg = task_message(task_dir, p, tgid, show, seq, stat_dir,
                               vmas=wire.sends_vmas(strategy, p, tgid), cg_mount=cg_mount)
            if msg is not None:
                yield msg

    def raw(self, strategy, pid=0, show=wire.SHOW_BASE, seq=0, cgroup=0):
        return b''.join(self.pieces(strategy, pid, show, seq, cgroup))
