"""psutil.process_iter(), answered from one task_diag dump.

    import task_diag.psutil as tdps
    for p in tdps.process_iter(['pid', 'name', 'username', 'memory_info']):
        print(p.pid, p.info)
    p.open_files()              # anything else: the real psutil.Process

process_iter(attrs=None, ad_value=None) yields, in pid order, objects
with .pid, .info (the dict psutil's Process.as_dict(attrs, ad_value)
gives: the same keys, in the same order, the same values and types) and,
for every other attribute, the psutil.Process of that pid, made on first
use (its constructor reads /proc, so it is never made up front).

One dump of every process the reader may see (BASE, CRED, STAT, STATM,
CMDLINE, STAT_EXT; CMDLINE only when name or cmdline is asked for)
answers these attributes for every process at once:

    pid ppid name cmdline status username uids gids num_threads
    cpu_times memory_info terminal nice create_time

each as psutil's Linux code (psutil/_pslinux.py) computes it from the
same /proc files; the comment at each attribute below says which field
and rule.  The rest goes to psutil, per process:

  - attributes the dump cannot answer (num_fds, exe, ...): psutil's
    Process of that pid, with as_dict()'s ad_value rules;
  - pids /proc lists that the dump lacks (other users' processes, which
    psutil still partly answers; pid 1 where even root may not ptrace
    it; processes started during the dump): psutil's as_dict() whole;
  - a cmdline of TASK_DIAG_CMDLINE_MAX bytes (it may have been cut):
    psutil's cmdline();
  - the name of a kernel thread or workqueue worker, which /proc/PID/stat
    shows longer than task->comm: read from /proc/PID/stat as psutil does.

The answer is the dump's moment: a process that exits after the dump is
still given, as it was (psutil gives it too if it reads it before it
exits); one that psutil's part finds gone is left out, as psutil leaves
out a process that raises NoSuchProcess.  Zombies and AccessDenied give
ad_value where psutil's as_dict() gives it.  The objects are kept
between calls as psutil keeps its Process objects (for the same pid and
start time; process_iter.cache_clear() forgets them), so that stateful
methods such as cpu_percent() see their previous call.

Everything per process is done a column at a time: the fields are read
from the whole response by strided memoryviews, and records and dicts
are made by map() and comprehensions, so that what is left per process
is the making of the objects psutil gives (psutil's own cost is mostly
that, and reading four files per process).
"""
import functools
import gc
import os
import pwd
import threading
from collections import deque
from itertools import compress, repeat
from operator import add, and_, eq, ge, lt, mul, not_, truediv

import psutil as _psutil
from psutil import _pslinux, _psposix

from . import api, wire
from .procfs.backend import parse_stat, read_file

__all__ = ['process_iter', 'Process', 'ANSWERED']

# The attributes one dump answers for every process.
ANSWERED = frozenset(('pid', 'ppid', 'name', 'cmdline', 'status', 'username', 'uids', 'gids',
                      'num_threads', 'cpu_times', 'memory_info', 'terminal', 'nice',
                      'create_time'))

# psutil's own constants, so that every number is computed as it computes it
CLOCK_TICKS = _pslinux.CLOCK_TICKS
PAGESIZE = _pslinux.PAGESIZE
ENCODING = _psutil._common.ENCODING
ENCODING_ERRS = _psutil._common.ENCODING_ERRS

PF_WQ_WORKER = 0x00000020
PF_KTHREAD = 0x00200000
STATE_ZOMBIE = wire.STATE_LETTERS.index('Z')
# base.state indexes wire.STATE_LETTERS; psutil maps the letter of
# /proc/PID/stat with PROC_STATUSES, '?' for a letter it does not know
STATUS_OF_STATE = {i: _pslinux.PROC_STATUSES.get(letter, '?')
                   for i, letter in enumerate(wire.STATE_LETTERS)}

_pmap = {}                      # pid -> Process, the objects of the last call


# --- psutil's types -----------------------------------------------------

@functools.lru_cache(maxsize=None)
def _types():
    """psutil's namedtuple types, taken from what it returns for this
    process (their module moved between psutil versions): {attr: type}."""
    me = _psutil.Process()
    with me.oneshot():
        return {'cpu_times': type(me.cpu_times()), 'memory_info': type(me.memory_info()),
                'uids': type(me.uids()), 'gids': type(me.gids())}


def _check_attrs(attrs):
    """The names as_dict() answers for @attrs, in the order of the dict it
    makes (it iterates set(attrs), or all names for an empty one); the
    same TypeError and ValueError as psutil's as_dict()."""
    valid = _psutil._as_dict_attrnames
    if not isinstance(attrs, (list, tuple, set, frozenset)):
        raise TypeError(f"invalid attrs type {type(attrs)}")
    attrs = set(attrs)
    invalid = attrs - valid
    if invalid:
        raise ValueError("invalid attr name{} {}".format(
            "s" if len(invalid) > 1 else "", ", ".join(map(repr, invalid))))
    return tuple(attrs or valid)


# --- the object yielded ----------------------------------------------------

class Process:
    """One process of process_iter(): .pid, .info (when attrs were given),
    and every other attribute from psutil.Process(pid), made on first use
    and kept (a cpu_percent() depends on the object it was called on
    before).  Equal to, and hashed as, the psutil.Process of the same
    process (pid and start time after boot, psutil's _ident since 6.0)."""
    __slots__ = ('pid', 'info', '_ident', '_proc')

    def _process(self):
        """The psutil.Process behind this one; NoSuchProcess when the
        pid is gone or now another process's."""
        proc = self._proc
        if proc is None:
            proc = _psutil.Process(self.pid)
            # the same process: the same start time, as psutil computes it
            if self._ident is not None and \
                    proc.create_time() != self._ident[1] + _pslinux.boot_time():
                raise _psutil.NoSuchProcess(
                    self.pid, msg='process no longer exists and its PID has been reused')
            self._proc = proc
        return proc

    def __getattr__(self, name):
        # called only for what the slots do not hold
        if name == 'info' or name.startswith('__'):
            raise AttributeError(name)  # no info: attrs=None, as psutil's (never made up)
        return getattr(self._process(), name)

    @property
    def ident(self):
        """(pid, start time in seconds after boot): psutil's Process._ident."""
        return self._ident if self._ident is not None else self._process()._ident

    def __eq__(self, other):
        if isinstance(other, Process):
            return self.ident == other.ident
        if isinstance(other, _psutil.Process):
            return self.ident == other._ident
        return NotImplemented

    def __hash__(self):
        return hash(self.ident)

    def __repr__(self):
        try:
            return repr(self._process())
        except _psutil.Error:
            return 'task_diag.psutil.Process(pid=%d, status=terminated)' % self.pid


def _new_process(pid, ident, proc=None):
    p = Process.__new__(Process)
    p.pid, p._ident, p._proc = pid, ident, proc
    return p


# --- the dump as columns ---------------------------------------------------------

# The groups the drop-in reads: every answered attribute's, in one dump
SHOW = (wire.SHOW_BASE | wire.SHOW_CRED | wire.SHOW_STAT | wire.SHOW_STATM |
        wire.SHOW_CMDLINE | wire.SHOW_STAT_EXT)
# and without CMDLINE, when neither name nor cmdline is asked for
SHOW_FIXED = SHOW & ~wire.SHOW_CMDLINE


class _Records:
    """wire.Columns' interface over wire.Task records (the generic
    decoder's), for a response of another shape: a producer that sends a
    task without one of the groups (its pid is then in .missing, for
    psutil), a message cut in two (TASK_DIAG_FLAG_CONT)."""

    def __init__(self, buf, show):
        groups = [wire.ATTR_NAMES[attr] for attr in wire.FIXED_GROUPS if show & (1 << attr)]
        if show & wire.SHOW_CMDLINE:
            groups.append('cmdline')
        tasks = list(wire.iter_decode(buf))
        complete = [t.pid == t.tgid and all(getattr(t, g) is not None for g in groups)
                    for t in tasks]
        self.missing = [t.pid for t, ok in zip(tasks, complete) if not ok]
        self.tasks = list(compress(tasks, complete))
        self.n = len(self.tasks)
        self.pids = [t.pid for t in self.tasks]
        self.cmdlines = [t.cmdline for t in self.tasks]

    def col(self, group, field):
        return [getattr(getattr(t, group), field) for t in self.tasks]

    def comms(self, encoding, errors):
        # wire decodes comm as UTF-8 with surrogate escapes
        return [t.base.comm.encode('utf-8', 'surrogateescape').decode(encoding, errors)
                for t in self.tasks]


def _columns(buf, show):
    """The dump as columns: wire's, or from its records where a message
    has another shape."""
    cols = wire.columns(buf, show)
    return cols if cols is not None else _Records(buf, show)


class _Listing(threading.Thread):
    """The pids /proc lists, read in a thread of its own; pids() waits
    for them (and raises what the listing raised)."""

    def __init__(self):
        super().__init__(name='task_diag.psutil: pids', daemon=True)
        self._pids = self._error = None
        self.start()

    def run(self):
        try:
            self._pids = _listed()
        except BaseException as e:      # handed to the caller
            self._error = e

    def pids(self):
        self.join()
        if self._error is not None:
            raise self._error
        return self._pids


def _listed():
    """The pids /proc lists, as psutil.pids() reads them."""
    return set(_pslinux.pids())


# --- one dict per process ------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _dict_maker(keys):
    """A function from rows (one value per key, in order) to a list of
    dicts.  A dict display in a list comprehension is the quickest way
    CPython makes many dicts of the same keys (half the time of
    dict(zip(keys, row))), so one is compiled for each key tuple.  The
    keys are psutil attribute names, checked against psutil's own list."""
    names = ['v%d' % i for i in range(len(keys))]
    src = 'lambda rows: [{%s} for %s, in rows]' % (
        ', '.join('%r: %s' % (k, v) for k, v in zip(keys, names)), ', '.join(names))
    return eval(src, {})            # noqa: S307 - the source is made above from checked names


class _Build:
    """The values of each answered attribute for every task of @cols, a
    list each.  A fix-up that finds a process gone adds its index to
    @gone; @wrappers: the Process of each task."""

    def __init__(self, cols, ad_value, wrappers):
        self.cols, self.ad_value, self.wrappers = cols, ad_value, wrappers
        self.gone = set()               # indexes of tasks gone meanwhile
        self._args = None
        self._cache = {}

    def _col(self, group, field):
        key = (group, field)
        if key not in self._cache:
            self._cache[key] = self.cols.col(group, field)
        return self._cache[key]

    def value(self, name):
        return getattr(self, 'attr_' + name)()

    # pid: the process's pid (task_diag_msg.pid)
    def attr_pid(self):
        return self.cols.pids

    # ppid: /proc/PID/stat field 4
    def attr_ppid(self):
        return self._col('base', 'ppid')

    # status: the letter of /proc/PID/stat field 3, by PROC_STATUSES
    def attr_status(self):
        return list(map(STATUS_OF_STATE.get, self._col('base', 'state'), repeat('?')))

    # num_threads: "Threads:" of /proc/PID/status, the same count as
    # stat's num_threads (signal->nr_threads)
    def attr_num_threads(self):
        return self._col('stat', 'threads')

    # nice: getpriority(PRIO_PROCESS, pid), the leader's nice, which is
    # /proc/PID/stat field 19
    def attr_nice(self):
        return self._col('stat_ext', 'nice')

    # uids, gids: "Uid:"/"Gid:" of /proc/PID/status, (real, effective,
    # saved); one tuple for each distinct triple
    def _ids(self, kind, fields):
        triples = list(zip(*(self._col('cred', f) for f in fields)))
        made = {t: tuple.__new__(kind, t) for t in set(triples)}
        return list(map(made.__getitem__, triples))

    def attr_uids(self):
        return self._ids(_types()['uids'], ('uid', 'euid', 'suid'))

    def attr_gids(self):
        return self._ids(_types()['gids'], ('gid', 'egid', 'sgid'))

    # username: pwd.getpwuid(real uid).pw_name, str(uid) for a uid the
    # system cannot resolve; looked up once per distinct uid
    def attr_username(self):
        uids = self._col('cred', 'uid')
        names = {}
        for uid in set(uids):
            try:
                names[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                names[uid] = str(uid)
        return list(map(names.__getitem__, uids))

    # cpu_times: stat fields 14-17 and 42 (delayacct_blkio_ticks) in clock
    # ticks, float(ticks) / CLOCK_TICKS (the same float as ticks / CLOCK_TICKS)
    def attr_cpu_times(self):
        ticks = [self._col('stat', f) for f in ('utime', 'stime', 'cutime', 'cstime')]
        return _records(_types()['cpu_times'], ticks + [self._iowait()], truediv, CLOCK_TICKS)

    def _iowait(self):
        """delayacct_blkio_ticks of each task (stat field 42)."""
        return self._col('stat_ext', 'delayacct_blkio_ticks')

    # memory_info: /proc/PID/statm (size resident shared text lib data dt)
    # times PAGESIZE, as (rss, vms, shared, text, lib, data, dirty)
    def attr_memory_info(self):
        pages = [self._col('statm', f)
                 for f in ('resident', 'size', 'shared', 'text', 'lib', 'data', 'dt')]
        return _records(_types()['memory_info'], pages, mul, PAGESIZE)

    # terminal: the /dev/tty* or /dev/pts/* path whose st_rdev is stat
    # field 7 (tty_nr), else None; psutil's map, made once per call
    def attr_terminal(self):
        tmap = _psposix.get_terminal_map()
        return list(map(tmap.get, self._col('stat_ext', 'tty_nr')))

    # create_time: boot time (btime of /proc/stat) + stat field 22 /
    # CLOCK_TICKS, as psutil adds them
    def attr_create_time(self):
        return list(map(add, self.ctimes(self.cols), repeat(_pslinux.boot_time())))

    @staticmethod
    def ctimes(cols):
        """Start times in seconds after boot: psutil's _ctime, and the
        second half of its process identity."""
        return list(map(truediv, cols.col('stat_ext', 'start_time'), repeat(CLOCK_TICKS)))

    # cmdline: /proc/PID/cmdline split as psutil splits it; empty for a
    # zombie: ZombieProcess, so ad_value; a payload that may have been
    # cut: psutil's own cmdline()
    def args(self):
        """The cmdline of each task (a list), and {index: the exception
        (ZombieProcess, AccessDenied) that as_dict() turns into ad_value}."""
        if self._args is not None:
            return self._args
        raws = self.cols.cmdlines
        # it may have been cut: psutil's cmdline()
        ask = _where(map(ge, map(len, raws), repeat(wire.TASK_DIAG_CMDLINE_MAX)))
        args = _split_all(raws)
        errors = {}
        states = None
        for i in _where(map(not_, raws)):          # kernel threads, zombies
            if states is None:
                states = self._col('base', 'state')
            if states[i] == STATE_ZOMBIE:
                errors[i] = _psutil.ZombieProcess(self.cols.pids[i])
        for i in ask:
            try:
                args[i] = self.wrappers[i]._process().cmdline()
            except (_psutil.AccessDenied, _psutil.ZombieProcess) as e:
                errors[i] = e
            except _psutil.NoSuchProcess:
                self.gone.add(i)
        self._args = args, errors
        return self._args

    def attr_cmdline(self):
        args, errors = self.args()
        if errors:
            args = args[:]
            for i in errors:
                args[i] = self.ad_value
        return args

    # name: /proc/PID/stat field 2: task->comm, but the longer name of a
    # kernel thread or workqueue worker (read from that file).  A name of
    # 15 characters or more is completed from cmdline[0] when its base
    # name starts with it (psutil's Process.name())
    def attr_name(self):
        names = self.cols.comms(ENCODING, ENCODING_ERRS)
        flags = self._col('stat_ext', 'flags')
        pids = self.cols.pids
        for i in _where(map(and_, flags, repeat(PF_WQ_WORKER | PF_KTHREAD))):
            if flags[i] & PF_WQ_WORKER or len(names[i]) >= wire.TASK_DIAG_COMM_LEN - 1:
                try:
                    names[i] = parse_stat(read_file('/proc/%d/stat' % pids[i]))[0].decode(
                        ENCODING, ENCODING_ERRS)
                except (FileNotFoundError, ProcessLookupError):
                    self.gone.add(i)
        long_names = _where(map(ge, map(len, names), repeat(15)))
        if long_names:
            args, errors = self.args()
            for i in long_names:
                cmdline = args[i]
                if cmdline and i not in errors:
                    extended = os.path.basename(cmdline[0])
                    if extended.startswith(names[i]):
                        names[i] = extended
        return names


def _records(kind, columns, op, operand):
    """kind(op(a, operand), op(b, operand), ...) for each row (a, b, ...)
    of @columns.  Most processes of a big machine are alike (a server's
    workers, a benchmark's children): when most rows repeat (judged by
    the first column), each distinct row is made once and shared
    (records are immutable: it shows only in `is`); otherwise every
    value is computed column by column, in C."""
    if 2 * len(set(columns[0])) <= len(columns[0]):
        rows = list(zip(*columns))
        distinct = set(rows)
        if 2 * len(distinct) <= len(rows):
            made = {row: tuple.__new__(kind, map(op, row, repeat(operand))) for row in distinct}
            return list(map(made.__getitem__, rows))
    values = [map(op, column, repeat(operand)) for column in columns]
    return list(map(tuple.__new__, repeat(kind), zip(*values)))


def _where(flags):
    """The indexes of the true values of @flags."""
    flags = list(flags)
    return list(compress(range(len(flags)), flags))


def _split_all(raws):
    """wire.split_cmdline() of every raw cmdline (psutil's split).  Many
    processes have the same command line (a server's workers): when most
    do, each distinct one is split once, and each process gets its own
    copy of the list, as psutil gives."""
    distinct = set(raws)
    if 2 * len(distinct) > len(raws):
        return _split_each(raws)
    distinct = list(distinct)
    split = dict(zip(distinct, _split_each(distinct)))
    return list(map(list, map(split.__getitem__, raws)))


def _split_each(raws):
    """_split_all() without the sharing, in bulk for the common case:
    data that ends with NUL (or is empty), has more than one argument and
    no '\\r'.  Split at every NUL, such data ends with an empty string,
    which pop() takes off (psutil drops the last NUL); what pop() finds
    otherwise marks data of another kind."""
    texts = list(map(bytes.decode, raws, repeat(ENCODING), repeat(ENCODING_ERRS)))
    args = list(map(str.split, texts, repeat('\x00')))
    odd = set(_where(map(bool, map(list.pop, args))))                  # no NUL at the end
    odd.update(_where(map(eq, map(len, args), repeat(1))))            # one argument
    odd.update(_where(map(str.__contains__, texts, repeat('\r'))))     # text-mode newlines
    for i in odd:
        args[i] = wire.split_cmdline(raws[i])
    return args


# --- process_iter ---------------------------------------------------------------

def _rest(proc, names, ad_value, attrs_given):
    """{name: value} for @names from psutil.Process @proc, by as_dict()'s
    rules (AccessDenied and ZombieProcess give ad_value; NoSuchProcess
    goes up; NotImplementedError goes up when attrs were named, else the
    name is left out)."""
    out = {}
    with proc.oneshot():
        for name in names:
            try:
                out[name] = getattr(proc, name)()
            except (_psutil.AccessDenied, _psutil.ZombieProcess):
                out[name] = ad_value
            except NotImplementedError:
                if attrs_given:
                    raise
    return out


def _snapshot(attrs, ad_value, source):
    """The list process_iter() yields."""
    keys = None if attrs is None else _check_attrs(attrs)
    # /proc is listed while the dump is read: at 10,000 processes the
    # kernel takes a third as long for the one as for the other, and both
    # wait in system calls, the GIL released.  (Not while it is decoded:
    # listdir() takes the GIL back at every name.)  A pid listed and not
    # dumped is answered by psutil (or found gone); one dumped and not
    # listed started meanwhile.
    show = SHOW if keys is not None and ('name' in keys or 'cmdline' in keys) else SHOW_FIXED
    listing = _Listing()
    try:
        raw = api.raw(wire.DUMP_ALL, 0, show, source=source)
    finally:
        listing.join()
    listed = listing.pids()
    gc_was = gc.isenabled()
    gc.disable()                        # tens of thousands of objects, none in a cycle
    try:
        cols = _columns(raw, show)
        del raw
        pids = cols.pids
        build = _Build(cols, ad_value, _wrappers(pids, _Build.ctimes(cols)))
        if keys is not None:
            values = {k: build.value(k) for k in ANSWERED.intersection(keys)}
            rest = [k for k in keys if k not in ANSWERED]
            infos = _dict_maker(keys)(zip(*[values[k] if k in values else repeat(None, cols.n)
                                            for k in keys]))
            if rest:
                _answer_rest(build, infos, rest, ad_value, bool(attrs))
            deque(map(setattr, build.wrappers, repeat('info'), infos), 0)
        procs = build.wrappers
        if build.gone:                  # found gone by a fix-up: left out, as psutil does
            procs = [w for i, w in enumerate(procs) if i not in build.gone]
        extra = sorted(listed.difference(pids).union(getattr(cols, 'missing', ())))
    finally:
        if gc_was:
            gc.enable()
    # pids the dump lacks: psutil's answer whole
    procs += filter(None, (_psutil_process(pid, attrs, ad_value) for pid in extra))
    if extra or not all(map(lt, pids, pids[1:])):
        procs.sort(key=_pid_of)
    return procs


def _wrappers(pids, ctimes):
    """A Process for each pid: the one of the last call when it is the
    same process (pid and start time: psutil's identity), else a new one."""
    idents = list(zip(pids, ctimes))
    if not _pmap:                       # the first call: all new, made in bulk
        procs = list(map(Process.__new__, repeat(Process, len(pids))))
        for name, values in (('pid', pids), ('_ident', idents), ('_proc', repeat(None))):
            deque(map(setattr, procs, repeat(name), values), 0)
        return procs
    return [w if w is not None and w._ident == ident else _new_process(pid, ident)
            for w, pid, ident in zip(map(_pmap.get, pids), pids, idents)]


def _answer_rest(build, infos, rest, ad_value, attrs_given):
    """The attributes @rest, which the dump cannot answer, from psutil."""
    for i, (w, info) in enumerate(zip(build.wrappers, infos)):
        if i in build.gone:
            continue
        try:
            values = _rest(w._process(), rest, ad_value, attrs_given)
        except _psutil.NoSuchProcess:
            build.gone.add(i)
            continue
        info.update(values)
        for k in rest:
            if k not in values:         # NotImplementedError with attrs=[]: left out
                del info[k]


_pid_of = Process.pid.__get__


def _psutil_process(pid, attrs, ad_value):
    """The Process of @pid, all from psutil (the one of the last call if
    any, as psutil keeps them); None when it is gone."""
    w = _pmap.get(pid)
    try:
        if w is None or w._proc is None:
            w = _new_process(pid, None, _psutil.Process(pid))
            w._ident = w._proc._ident
        if attrs is not None:
            w.info = w._proc.as_dict(attrs=attrs, ad_value=ad_value)
    except _psutil.NoSuchProcess:
        return None
    return w


def process_iter(attrs=None, ad_value=None, *, source=None):
    """psutil.process_iter(attrs, ad_value), from one dump: a generator of
    Process (see the module's doc), sorted by pid.  @source: the dump's
    backend ('bpf', 'file', 'proc'; default: the fastest that works).
    The dump is made at the first next()."""
    global _pmap
    procs = _snapshot(attrs, ad_value, source)
    _pmap = dict(zip(map(_pid_of, procs), procs))
    yield from procs


process_iter.cache_clear = lambda: _pmap.clear()  # noqa: E731 (psutil's spelling)
process_iter.cache_clear.__doc__ = "Clear process_iter()'s cache of Process objects."
