"""The task_diag wire format: the one Python definition of every struct.

Mirrors task_diag/bpf/task_diag.h field for field (tests/test_layout.py compiles the
header and compares sizes and offsets).  Layout of a response::

    +----------+---------------+------------------+------------------+---
    | nlmsghdr | task_diag_msg | nlattr BASE+body | nlattr CRED+body | ...
    +----------+---------------+------------------+------------------+---
      16 bytes   12 bytes        4 + 44             4 + 64

Groups come in the order BASE, CRED, VMA, STAT, STATM, CMDLINE (the
original's), then this project's (STAT_EXT); a task split over several
messages has TASK_DIAG_FLAG_CONT set in every message but its last.

Two decoders: decode() for the hot path (when every message has the same
shape, each field is read for all messages at once and no Python code runs
per task) and, for people, task_diag.nlmsg (pyroute2 message classes built
from the tables below).
"""
import errno
import gc
import struct
import sys
from array import array
from collections import namedtuple
from itertools import chain, repeat
from operator import add, and_, itemgetter, mul

# --- constants (task_diag.h) ---------------------------------------------

TASK_DIAG_CMD_GET = 0xD101
TASK_DIAG_FLAG_CONT = 0x1
NLM_F_MULTI = 0x2
NLMSG_HDRLEN = 16
NLA_HDRLEN = 4
NLA_TYPE_MASK = 0x3FFF          # ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER)

# Attribute types: one enum, the request bits derive from it.
TASK_DIAG_BASE = 0
TASK_DIAG_CRED = 1
TASK_DIAG_VMA = 2
TASK_DIAG_VMA_STAT = 3          # a modifier of VMA, never an attribute type
TASK_DIAG_STAT = 4
TASK_DIAG_STATM = 5             # the original's last rebase; our layout
TASK_DIAG_CMDLINE = 6           # the original's last rebase: /proc/PID/cmdline's bytes
TASK_DIAG_STAT_EXT = 7          # ours: the rest of /proc/PID/stat
TASK_DIAG_NS = 8                # ours: the /proc/PID/ns/* inode numbers
TASK_DIAG_CGROUP = 9            # ours: the cgroup v2 id and path of /proc/PID/cgroup
TASK_DIAG_ATTR_MAX = 9
TASK_DIAG_CMDLINE_MAX = 4096    # CMDLINE: what one read of this many bytes gives

SHOW_BASE = 1 << TASK_DIAG_BASE
SHOW_CRED = 1 << TASK_DIAG_CRED
SHOW_VMA = 1 << TASK_DIAG_VMA
SHOW_VMA_STAT = 1 << TASK_DIAG_VMA_STAT
SHOW_STAT = 1 << TASK_DIAG_STAT
SHOW_STATM = 1 << TASK_DIAG_STATM
SHOW_CMDLINE = 1 << TASK_DIAG_CMDLINE
SHOW_STAT_EXT = 1 << TASK_DIAG_STAT_EXT
SHOW_NS = 1 << TASK_DIAG_NS
SHOW_CGROUP = 1 << TASK_DIAG_CGROUP

# Our extension of the request: attributes after task_diag_pid.
TASK_DIAG_REQ_CGROUP = 1        # u64 cgroup id: ALL and ALL_THREAD answer its subtree

DUMP_ALL = 0
DUMP_ONE = 1
DUMP_ALL_THREAD = 2
DUMP_CHILDREN = 3
DUMP_THREAD = 4
STRATEGIES = (DUMP_ALL, DUMP_ONE, DUMP_ALL_THREAD, DUMP_CHILDREN, DUMP_THREAD)
STRATEGY_NAMES = {DUMP_ALL: 'all', DUMP_ONE: 'one', DUMP_ALL_THREAD: 'all_thread',
                  DUMP_CHILDREN: 'children', DUMP_THREAD: 'thread'}
# Strategies whose pid field names a task (ESRCH when it does not exist).
NEEDS_PID = (DUMP_ONE, DUMP_CHILDREN, DUMP_THREAD)


def sends_vmas(strategy, pid, tgid):
    """Whether task @pid of thread group @tgid carries its VMAs in a dump
    of @strategy: in thread dumps only the thread-group leader does (its
    threads share its mm), as the original's selftest expects."""
    return pid == tgid or strategy not in (DUMP_ALL_THREAD, DUMP_THREAD)


def check_request(strategy, pid):
    """The checks every backend makes before it looks at a task (spec
    section 3): OSError EINVAL for an unknown strategy, ESRCH for a
    strategy that names a task by a pid that cannot be one."""
    if strategy not in STRATEGIES:
        raise OSError(errno.EINVAL, 'unknown dump strategy %r' % (strategy,))
    if strategy in NEEDS_PID and pid <= 0:
        raise OSError(errno.ESRCH, 'no task %d' % pid)

# task_diag_base.state indexes this string: the letter of /proc/PID/stat.
STATE_LETTERS = 'RSDTtXZPI'

TASK_DIAG_COMM_LEN = 16

VMA_FLAG_NAMES = (
    'READ', 'WRITE', 'EXEC', 'SHARED', 'MAYREAD', 'MAYWRITE', 'MAYEXEC', 'MAYSHARE',
    'GROWSDOWN', 'PFNMAP', 'DENYWRITE', 'MPX', 'LOCKED', 'IO', 'SEQ_READ', 'RAND_READ',
    'DONTCOPY', 'DONTEXPAND', 'ACCOUNT', 'NORESERVE', 'HUGETLB', 'ARCH_1', 'DONTDUMP',
    'SOFTDIRTY', 'MIXEDMAP', 'HUGEPAGE', 'NOHUGEPAGE', 'MERGEABLE',
)
VMA_F = {name: 1 << bit for bit, name in enumerate(VMA_FLAG_NAMES)}


# --- struct tables ---------------------------------------------------------

class Layout:
    """One C struct: ordered (name, struct format) pairs, little-endian and
    packed as written; padding is spelled out with 'x' entries named _pad."""

    def __init__(self, cname, fields):
        self.cname = cname
        self.fields = fields
        self.fmt = '<' + ''.join(fmt for _, fmt in fields)
        self.struct = struct.Struct(self.fmt)
        self.size = self.struct.size
        self.names = tuple(name for name, fmt in fields if not fmt.endswith('x'))

    def offsets(self):
        """{field: byte offset}, for the layout test against the C header."""
        out, off = {}, 0
        for name, fmt in self.fields:
            if not fmt.endswith('x'):
                out[name] = off
            off += struct.calcsize('<' + fmt)
        return out

    def pack(self, *values):
        return self.struct.pack(*values)


NLMSGHDR = Layout('nlmsghdr', (
    ('nlmsg_len', 'I'), ('nlmsg_type', 'H'), ('nlmsg_flags', 'H'),
    ('nlmsg_seq', 'I'), ('nlmsg_pid', 'I'),
))
NLATTR = Layout('nlattr', (('nla_len', 'H'), ('nla_type', 'H')))

MSG = Layout('task_diag_msg', (('pid', 'I'), ('tgid', 'I'), ('flags', 'I')))

BASE = Layout('task_diag_base', (
    ('tgid', 'I'), ('pid', 'I'), ('ppid', 'I'), ('tpid', 'I'), ('sid', 'I'), ('pgid', 'I'),
    ('state', 'B'), ('comm', '16s'),
    ('_pad', '3x'),             # the struct is 4-byte aligned
))

# task_diag_caps is u32 cap[2], low word first: on the wire that is a
# little-endian u64, which is how the API shows a capability set.
CREDS = Layout('task_diag_creds', (
    ('cap_inheritable', 'Q'), ('cap_permitted', 'Q'), ('cap_effective', 'Q'), ('cap_bset', 'Q'),
    ('uid', 'I'), ('euid', 'I'), ('suid', 'I'), ('fsuid', 'I'),
    ('gid', 'I'), ('egid', 'I'), ('sgid', 'I'), ('fsgid', 'I'),
))

STAT = Layout('task_diag_stat', (
    ('minflt', 'Q'), ('cminflt', 'Q'), ('majflt', 'Q'), ('cmajflt', 'Q'),
    ('utime', 'Q'), ('stime', 'Q'), ('cutime', 'Q'), ('cstime', 'Q'),
    ('threads', 'I'),
    ('_pad', '4x'),             # u64 alignment of the struct
))

STATM = Layout('task_diag_statm', (
    ('size', 'Q'), ('resident', 'Q'), ('shared', 'Q'), ('text', 'Q'), ('lib', 'Q'),
    ('data', 'Q'), ('dt', 'Q'),
))

STAT_EXT = Layout('task_diag_stat_ext', (
    ('start_time', 'Q'), ('tty_nr', 'I'), ('flags', 'I'), ('priority', 'i'), ('nice', 'i'),
    ('rt_priority', 'I'), ('policy', 'I'), ('delayacct_blkio_ticks', 'Q'),
))

NS = Layout('task_diag_ns', (
    ('cgroup', 'I'), ('ipc', 'I'), ('mnt', 'I'), ('net', 'I'), ('pid', 'I'),
    ('pid_for_children', 'I'), ('time', 'I'), ('user', 'I'), ('uts', 'I'),
))

# TASK_DIAG_CGROUP's payload: this header, then the path, NUL-terminated.
CGROUP = Layout('task_diag_cgroup', (('id', 'Q'), ('flags', 'I'), ('reserved', 'I')))
CGROUP_F_DELETED = 0x1          # the cgroup was removed: /proc adds " (deleted)"
CGROUP_F_CUT = 0x2              # the path was cut (too long, or too deep for the programs)
CGROUP_PATH_MAX = 4096          # with its NUL

VMA = Layout('task_diag_vma', (
    ('start', 'Q'), ('end', 'Q'), ('vm_flags', 'Q'), ('pgoff', 'Q'),
    ('major', 'I'), ('minor', 'I'), ('inode', 'Q'), ('generation', 'I'),
    ('vma_len', 'H'), ('name_off', 'H'), ('name_len', 'H'), ('stat_off', 'H'), ('stat_len', 'H'),
    ('_pad', '2x'),             # u64 alignment of the struct
))

VMA_STAT = Layout('task_diag_vma_stat', (
    ('resident', 'Q'), ('shared_clean', 'Q'), ('shared_dirty', 'Q'),
    ('private_clean', 'Q'), ('private_dirty', 'Q'), ('referenced', 'Q'),
    ('anonymous', 'Q'), ('anonymous_thp', 'Q'), ('swap', 'Q'), ('pss', 'Q'),
))

REQUEST = Layout('task_diag_pid', (
    ('show_flags', 'Q'), ('dump_strategy', 'Q'), ('pid', 'I'),
    ('_pad', '4x'),             # u64 alignment of the struct
))

# Which layout each attribute carries (VMA is a packed array of records,
# CMDLINE bytes).
ATTR_LAYOUTS = {TASK_DIAG_BASE: BASE, TASK_DIAG_CRED: CREDS, TASK_DIAG_STAT: STAT,
                TASK_DIAG_STATM: STATM, TASK_DIAG_STAT_EXT: STAT_EXT, TASK_DIAG_NS: NS}
ATTR_NAMES = {TASK_DIAG_BASE: 'base', TASK_DIAG_CRED: 'cred', TASK_DIAG_VMA: 'vma',
              TASK_DIAG_STAT: 'stat', TASK_DIAG_STATM: 'statm', TASK_DIAG_CMDLINE: 'cmdline',
              TASK_DIAG_STAT_EXT: 'stat_ext', TASK_DIAG_NS: 'ns', TASK_DIAG_CGROUP: 'cgroup'}
# The fill order of the original: BASE, CRED, VMA, STAT, STATM, CMDLINE
# (not enum order); then ours, in number order.
ATTR_ORDER = (TASK_DIAG_BASE, TASK_DIAG_CRED, TASK_DIAG_VMA, TASK_DIAG_STAT, TASK_DIAG_STATM,
              TASK_DIAG_CMDLINE, TASK_DIAG_STAT_EXT, TASK_DIAG_NS, TASK_DIAG_CGROUP)
# The groups of fixed size, in that order: the fast decoder's shapes.
FIXED_GROUPS = (TASK_DIAG_BASE, TASK_DIAG_CRED, TASK_DIAG_STAT, TASK_DIAG_STATM,
                TASK_DIAG_STAT_EXT, TASK_DIAG_NS)
# The groups of any length: bytes (CMDLINE), a struct and a string (CGROUP).
VAR_GROUPS = (TASK_DIAG_CMDLINE, TASK_DIAG_CGROUP)


# --- records ------------------------------------------------------------

class Base(namedtuple('Base', BASE.names)):
    """task_diag_base.  comm is a str: the bytes before the first NUL, those
    that are not UTF-8 kept as surrogate escapes, like os.fsdecode()."""
    __slots__ = ()

    @property
    def state_letter(self):
        return STATE_LETTERS[self.state] if self.state < len(STATE_LETTERS) else '?'


Cred = namedtuple('Cred', CREDS.names)
Stat = namedtuple('Stat', STAT.names)
Statm = namedtuple('Statm', STATM.names)
StatExt = namedtuple('StatExt', STAT_EXT.names)
Ns = namedtuple('Ns', NS.names)


class Cgroup(namedtuple('Cgroup', 'id path flags')):
    """TASK_DIAG_CGROUP: the id of the task's cgroup v2 (its directory's
    inode number), its path as the "0::" line of /proc/PID/cgroup shows it
    to the reader (a str, surrogate escapes for bytes that are not UTF-8)
    and CGROUP_F_* flags."""
    __slots__ = ()

    @property
    def deleted(self):
        return bool(self.flags & CGROUP_F_DELETED)

    @property
    def proc_path(self):
        """The path as /proc/PID/cgroup prints it: " (deleted)" added."""
        return self.path + ' (deleted)' if self.deleted else self.path


def decode_cgroup(payload):
    """A Cgroup from the payload of a TASK_DIAG_CGROUP attribute."""
    if len(payload) < CGROUP.size + 1:
        raise DecodeError('TASK_DIAG_CGROUP payload of %d bytes' % len(payload))
    cg_id, flags, _ = CGROUP.struct.unpack_from(payload)
    path = bytes(payload[CGROUP.size:]).split(b'\0', 1)[0]
    return Cgroup(cg_id, path.decode('utf-8', 'surrogateescape'), flags)


def encode_cgroup(cg_id, path, flags=0):
    """The payload of a TASK_DIAG_CGROUP attribute; @path: bytes."""
    return CGROUP.pack(cg_id, flags, 0) + path + b'\0'
VmaStat = namedtuple('VmaStat', VMA_STAT.names)

try:
    from _collections import _tuplegetter   # what namedtuple's fields are
except ImportError:                          # pragma: no cover (other Pythons)
    def _tuplegetter(index, doc):
        return property(itemgetter(index), doc=doc)

_VMA_HEAD = VMA.names[:8]       # start ... generation


class Vma(tuple):
    """One VMA, read by field name: start, end, vm_flags, pgoff, major,
    minor, inode, generation, name (str, or None), stat (VmaStat, or
    None); _asdict(), _replace(), _make() and match patterns as for a
    namedtuple.  Not a 10-tuple, though: the tuple holds the eight
    numbers, then the ten of the statistics when there are some, then the
    name (9 or 19 items).  A whole system has some 10^5 VMAs; one object
    each rather than a Vma and a VmaStat halves what the decoder makes and
    what the garbage collector walks.  stat makes its VmaStat when asked;
    equality compares every value."""
    __slots__ = ()
    __match_args__ = _VMA_HEAD + ('name', 'stat')

    def __new__(cls, start, end, vm_flags, pgoff, major, minor, inode, generation,
                name=None, stat=None):
        head = (start, end, vm_flags, pgoff, major, minor, inode, generation)
        if stat is None:
            return tuple.__new__(cls, head + (name,))
        if len(stat) != len(VMA_STAT.names):
            raise TypeError('stat needs %d values, got %d' % (len(VMA_STAT.names), len(stat)))
        return tuple.__new__(cls, head + tuple(stat) + (name,))

    for _i, _n in enumerate(_VMA_HEAD):
        locals()[_n] = _tuplegetter(_i, 'task_diag_vma.' + _n)
    del _i, _n
    name = property(itemgetter(-1), doc='the name /proc/PID/maps shows, or None')

    @property
    def stat(self):
        """task_diag_vma_stat (SHOW_VMA_STAT), or None"""
        return tuple.__new__(VmaStat, self[8:18]) if len(self) > 9 else None

    @classmethod
    def _make(cls, iterable):
        return cls(*iterable)

    def _asdict(self):
        return dict(zip(self.__match_args__, self[:8] + (self[-1], self.stat)))

    def _replace(self, **changes):
        values = self._asdict()
        unknown = set(changes) - set(values)
        if unknown:
            raise ValueError('Got unexpected field names: %r' % sorted(unknown))
        values.update(changes)
        return Vma(**values)

    def __getnewargs__(self):
        return self[:8] + (self[-1], self.stat)

    def __repr__(self):
        return 'Vma(%s)' % ', '.join('%s=%r' % kv for kv in self._asdict().items())


class Task(namedtuple('Task',
                      'pid tgid base cred stat vmas unknown statm cmdline stat_ext ns cgroup',
                      defaults=(None,) * 10)):
    """One task of a dump: pid and tgid of task_diag_msg, then its groups,
    None where not requested (cmdline: the raw bytes of CMDLINE).
    unknown: [(nla_type, bytes)] of attributes this version does not know.
    A tuple: cheap to make by the ten thousand.  Records are immutable, and
    decode() gives tasks with equal credentials one Cred (and equal names
    one comm str) to share."""
    __slots__ = ()

    @property
    def args(self):
        """The command line as a list of str, decoded as psutil's
        Process.cmdline() decodes /proc/PID/cmdline (the file system
        encoding, surrogate escapes, text-mode newlines; a title rewritten
        with spaces split at the spaces); None without CMDLINE."""
        return None if self.cmdline is None else split_cmdline(self.cmdline)

    def __repr__(self):
        extra = ''.join(', %s=%r' % (name, getattr(self, name))
                        for name in ('statm', 'cmdline', 'stat_ext', 'ns', 'cgroup')
                        if getattr(self, name) is not None)
        return 'Task(pid=%d, tgid=%d, base=%r, cred=%r, stat=%r, vmas=%s%s)' % (
            self.pid, self.tgid, self.base, self.cred, self.stat,
            None if self.vmas is None else '[%d]' % len(self.vmas), extra)


_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


def split_cmdline(raw):
    """The arguments in the bytes of /proc/PID/cmdline, as psutil's
    Process.cmdline() gives them (psutil/_pslinux.py): it reads the file
    as text (so '\r' and '\r\n' become '\n'), drops one trailing
    separator, NUL if the data ends with one, else a space, and splits at
    it; data ending in NUL that holds no other NUL but spaces is split at
    the spaces (a title rewritten by setproctitle)."""
    if not raw:
        return []
    data = raw.decode(_FS_ENCODING, _FS_ERRORS)
    if '\r' in data:
        data = data.replace('\r\n', '\n').replace('\r', '\n')
    if not data.endswith('\x00') and '\x00' in data:
        # argv cut at TASK_DIAG_CMDLINE_MAX: psutil, which reads the whole
        # file, splits it at the NULs (a rewritten title holds a NUL only
        # as its last byte); its last argument is cut here
        return data.split('\x00')
    sep = '\x00' if data.endswith('\x00') else ' '
    if data.endswith(sep):
        data = data[:-1]
    args = data.split(sep)
    if sep == '\x00' and len(args) == 1 and ' ' in data:
        args = data.split(' ')
    return args


def decode_comm(raw):
    """comm as str; bytes that are not UTF-8 kept as surrogate escapes,
    like os.fsdecode().  Producers zero-fill after the NUL."""
    return raw.split(b'\0', 1)[0].decode('utf-8', 'surrogateescape')


# --- requests -------------------------------------------------------------

def encode_request(strategy, pid=0, show=SHOW_BASE, seq=0, cgroup=0):
    """nlmsghdr + task_diag_pid, as one write() of the original tools:
    nlmsg_len covers the payload padded as an attribute (16 + 28 = 44).
    With @cgroup (an id), our extension: a TASK_DIAG_REQ_CGROUP attribute
    after task_diag_pid instead of the padding."""
    body = REQUEST.pack(show, strategy, pid)
    if cgroup:
        body += NLATTR.pack(NLA_HDRLEN + 8, TASK_DIAG_REQ_CGROUP) + _U64.pack(cgroup)
        return NLMSGHDR.pack(NLMSG_HDRLEN + len(body), 0, 0, seq, 0) + body
    total = NLMSG_HDRLEN + NLA_HDRLEN + len(body)
    return NLMSGHDR.pack(total, 0, 0, seq, 0) + body + b'\0' * NLA_HDRLEN


def request_cgroup(buf):
    """The cgroup id of a request's TASK_DIAG_REQ_CGROUP attribute, 0
    without one; OSError EINVAL for an attribute we do not know, one of a
    bad length, or id 0.  A header of length 0 ends the attributes (the
    original's tools pad the request with 4 zero bytes)."""
    end = min(_U32.unpack_from(buf)[0], len(buf))
    off, cg = NLMSG_HDRLEN + REQUEST.size, 0
    while off + NLA_HDRLEN <= end:
        nla_len, nla_type = NLATTR.struct.unpack_from(buf, off)
        if nla_len == 0:
            break
        if nla_len < NLA_HDRLEN or off + nla_len > end:
            raise OSError(errno.EINVAL, 'bad request attribute length %d' % nla_len)
        if nla_type != TASK_DIAG_REQ_CGROUP or nla_len != NLA_HDRLEN + 8:
            raise OSError(errno.EINVAL, 'unknown request attribute %d (length %d)'
                          % (nla_type, nla_len))
        cg = _U64.unpack_from(buf, off + NLA_HDRLEN)[0]
        if not cg:
            raise OSError(errno.EINVAL, 'TASK_DIAG_REQ_CGROUP: cgroup id 0')
        off += (nla_len + 3) & ~3
    return cg


def check_filter(strategy, cgroup):
    """A cgroup filter only with ALL and ALL_THREAD: EINVAL otherwise."""
    if cgroup and strategy not in (DUMP_ALL, DUMP_ALL_THREAD):
        raise OSError(errno.EINVAL, 'a cgroup filter needs DUMP_ALL or DUMP_ALL_THREAD, not %s'
                      % STRATEGY_NAMES.get(strategy, strategy))


def decode_request(buf):
    """(nlmsghdr fields, (show_flags, dump_strategy, pid)); raises ValueError
    when the payload is shorter than task_diag_pid."""
    if len(buf) < NLMSG_HDRLEN:
        raise ValueError('shorter than a netlink header')
    hdr = NLMSGHDR.struct.unpack_from(buf)
    if hdr[0] < NLMSG_HDRLEN + REQUEST.size or hdr[0] > len(buf):
        raise ValueError('payload shorter than task_diag_pid')
    return hdr, REQUEST.struct.unpack_from(buf, NLMSG_HDRLEN)


def encode_message(pid, tgid, attrs, seq=0, flags=0):
    """One response message from [(nla_type, payload bytes)]."""
    parts = [b'', MSG.pack(pid, tgid, flags)]
    for nla_type, payload in attrs:
        parts.append(NLATTR.pack(NLA_HDRLEN + len(payload), nla_type))
        parts.append(payload)
        parts.append(b'\0' * (-len(payload) & 3))
    body = b''.join(parts)
    parts[0] = NLMSGHDR.pack(NLMSG_HDRLEN + len(body), TASK_DIAG_CMD_GET, NLM_F_MULTI, seq, 0)
    return parts[0] + body


def encode_vma_records(vmas):
    """The task_diag_vma records of @vmas (Vma only, not plain tuples: the
    name a str, bytes or None), one bytes object per record,
    in order; b''.join() of them is the payload of a TASK_DIAG_VMA
    attribute.  A record: the 64-byte struct, then the stat (stat_off 64,
    stat_len 80) if any, then the name and its NUL (name_len = strlen + 1)
    if any, zero-padded to 4 bytes; vma_len is the whole record."""
    out = []
    append = out.append
    pack, pack_stat = _VMA_REC.pack, _VMA_STAT_REC.pack
    for v in vmas:
        start, end, flags, pgoff, major, minor, inode, gen = v[:8]
        name, stat = v[-1], v[8:18] if len(v) > 9 else None
        off = VMA.size
        stat_off = stat_len = 0
        stat_raw = b''
        if stat is not None:
            stat_raw = pack_stat(*stat)
            stat_off, stat_len = off, VMA_STAT.size
            off += VMA_STAT.size
        name_off = name_len = 0
        name_raw = b''
        if name is not None:
            if isinstance(name, str):
                name = name.encode('utf-8', 'surrogateescape')
            name_raw = name + b'\0'
            name_off, name_len = off, len(name_raw)
            off += name_len
        pad = -off & 3
        append(pack(start, end, flags, pgoff, major, minor, inode, gen, off + pad,
                    name_off, name_len, stat_off, stat_len) + stat_raw + name_raw + b'\0' * pad)
    return out


# --- decoding -------------------------------------------------------------

class DecodeError(ValueError):
    """A response that is not well formed, with the offset where it broke."""


_HDR_MSG = struct.Struct('<IHHIIIII')      # nlmsghdr + task_diag_msg
_U32 = struct.Struct('<I')                 # nlmsg_len
_U64 = struct.Struct('<Q')
_ATTR_HDR = NLATTR.struct
_VMA_REC = VMA.struct
_VMA_STAT_REC = VMA_STAT.struct
_PID_WORD = (NLMSG_HDRLEN + MSG.offsets()['pid']) // 4
_TGID_WORD = (NLMSG_HDRLEN + MSG.offsets()['tgid']) // 4
_FLAGS_WORD = (NLMSG_HDRLEN + MSG.offsets()['flags']) // 4
_BASE_OFF = BASE.offsets()


class _Shape:
    """For requests without VMAs every message has the same shape: @size
    bytes, with u32 words that every message repeats (@words: (index,
    value)): its length, type and flags, task_diag_msg.flags = 0 and each
    attribute's header.  @groups: {attribute: payload offset}; @field(),
    a struct that reads one field of a message and skips the rest."""

    def __init__(self, show):
        self.words, self.groups = [], {}
        off = NLMSG_HDRLEN + MSG.size
        for attr in FIXED_GROUPS:
            if show & (1 << attr):
                layout = ATTR_LAYOUTS[attr]
                self.words.append((off // 4, (NLA_HDRLEN + layout.size) | attr << 16))
                self.groups[attr] = off + NLA_HDRLEN
                off += NLA_HDRLEN + layout.size
        self.size = off                 # every group is a multiple of 4 bytes
        self.words += [(0, off), (1, TASK_DIAG_CMD_GET | NLM_F_MULTI << 16), (_FLAGS_WORD, 0)]
        base = self.groups.get(TASK_DIAG_BASE)
        if base is not None:
            self.comm = self.field(base + _BASE_OFF['comm'], '%ds' % TASK_DIAG_COMM_LEN)
        if TASK_DIAG_CRED in self.groups:
            self.cred = self.field(self.groups[TASK_DIAG_CRED], '%ds' % CREDS.size)
        self.records = {}               # the other fixed groups: a struct each
        for attr, record in ((TASK_DIAG_STAT, Stat), (TASK_DIAG_STATM, Statm),
                             (TASK_DIAG_STAT_EXT, StatExt), (TASK_DIAG_NS, Ns)):
            if attr in self.groups:
                self.records[attr] = (self.field(self.groups[attr], ATTR_LAYOUTS[attr].fmt[1:]),
                                      record)

    def field(self, off, fmt):
        return struct.Struct('<%dx%s%dx' % (off, fmt, self.size - off - struct.calcsize(fmt)))


_shapes = {}
_FIXED_SHOW = sum(1 << attr for attr in FIXED_GROUPS)


def decode(buf, show=None):
    """Decode a whole response into a list of Task.  @show, the request's
    show_flags, enables the fast path; without it the generic path runs."""
    return decode_pieces((buf,), show)


def decode_pieces(pieces, show=None):
    """decode() of a response given as an iterable of pieces of whole
    messages (reads of a stream), each decoded as it comes: with VMAs, the
    tens of megabytes of a whole system's response are never one buffer."""
    if show is not None and not show & SHOW_VMA:
        # the fast paths read each field over the whole response at once
        buf = b''.join(pieces)
        pieces = (buf,)
        if buf and show & (SHOW_CMDLINE | SHOW_CGROUP):
            tasks = _decode_columns(buf, show & (_FIXED_SHOW | SHOW_CMDLINE | SHOW_CGROUP))
            if tasks is not None:
                return tasks
        elif buf:
            key = show & _FIXED_SHOW
            shape = _shapes.get(key)
            if shape is None:
                shape = _shapes[key] = _Shape(key)
            tasks = _decode_fixed(buf, shape)
            if tasks is not None:
                return tasks
    # VMA records are a tuple each, a whole system's some 10^5: without
    # the collector's passes over them while they are made (see
    # _decode_fixed) a dump with VMAs decodes in less than half the time.
    # Paused for the whole dump, the reads of the pieces included: turned
    # back on between pieces, it would walk the records made so far again
    # and again.
    gc_was = gc.isenabled()
    gc.disable()
    try:
        return list(iter_decode_pieces(pieces))
    finally:
        if gc_was:
            gc.enable()


_new = tuple.__new__


def _decode_fixed(buf, shape):
    """The fast path: the tasks of @buf if every message has @shape, else
    None.  No Python code runs per task: each field is read for all
    messages at once, by a strided memoryview or a struct over the whole
    buffer, and the records are made by map() and zip(), in C."""
    size = shape.size
    if len(buf) % size:
        return None                 # a CONT, a foreign message: the generic path
    n = len(buf) // size
    if n == 1:
        return None                 # DUMP_ONE: the generic path is quicker than the set-up here
    step = size // 4
    words = memoryview(buf).cast('B').cast('I')
    # Every message must have the fixed words: each compared, in C, as
    # one strided view against a run of its value.
    for index, value in shape.words:
        if words[index::step] != array('I', (value,)) * n:
            return None
    pids = words[_PID_WORD::step].tolist()
    tgids = words[_TGID_WORD::step].tolist()
    # The cyclic collector would otherwise run over these tuples many times
    # while they are made (every 700, and every tenth time over all made so
    # far); none of them can be part of a cycle.  It runs once, when our
    # caller next allocates, and that pass is part of the cost of a dump.
    gc_was = gc.isenabled()
    gc.disable()
    try:
        none = repeat(None)
        bases = creds = none
        if TASK_DIAG_CRED in shape.groups:
            # a list: the raw fields, freed now, leave their memory to the
            # records made next
            creds = list(_shared(_column(shape.cred, buf), _make_creds))
        if TASK_DIAG_BASE in shape.groups:
            bases = _bases(buf, shape, words, pids, tgids)
        stats, statms, exts, nss = (map(_new, repeat(shape.records[attr][1]),
                                        shape.records[attr][0].iter_unpack(buf))
                                    if attr in shape.records else none
                                    for attr in (TASK_DIAG_STAT, TASK_DIAG_STATM,
                                                 TASK_DIAG_STAT_EXT, TASK_DIAG_NS))
        return list(map(_new, repeat(Task), zip(pids, tgids, bases, creds, stats, none, none,
                                                statms, none, exts, nss, none)))
    finally:
        if gc_was:
            gc.enable()


def _decode_columns(buf, show):
    """The fast path with CMDLINE or CGROUP: the tasks of @buf read column by column
    (columns()), if every message has the shape of @show, else None; the
    records are made by zip() and map(), as in _decode_fixed()."""
    cols = columns(buf, show)
    if cols is None or cols.n < 2:
        return None
    gc_was = gc.isenabled()
    gc.disable()
    try:
        none = repeat(None)
        records = {}
        for attr in cols.shape.groups:
            name, layout = ATTR_NAMES[attr], ATTR_LAYOUTS[attr]
            fields = [cols.col(name, f) for f in layout.names if f != 'comm']
            if attr == TASK_DIAG_BASE:
                records[attr] = map(_new, repeat(Base), zip(*fields, cols.comms()))
            elif attr == TASK_DIAG_CRED:
                records[attr] = list(_shared(list(zip(*fields)), _make_cred_tuples))
            else:
                record = {TASK_DIAG_STAT: Stat, TASK_DIAG_STATM: Statm,
                          TASK_DIAG_STAT_EXT: StatExt, TASK_DIAG_NS: Ns}[attr]
                records[attr] = map(_new, repeat(record), zip(*fields))
        get = records.get
        return list(map(_new, repeat(Task), zip(
            cols.pids, cols.tgids, get(TASK_DIAG_BASE, none), get(TASK_DIAG_CRED, none),
            get(TASK_DIAG_STAT, none), none, none, get(TASK_DIAG_STATM, none),
            cols.cmdlines if show & SHOW_CMDLINE else none, get(TASK_DIAG_STAT_EXT, none),
            get(TASK_DIAG_NS, none), cols.cgroups if show & SHOW_CGROUP else none)))
    finally:
        if gc_was:
            gc.enable()


def _make_cred_tuples(values):
    return map(_new, repeat(Cred), values)


def _column(st, buf):
    """The one field that @st reads, from every message of @buf."""
    return list(map(itemgetter(0), st.iter_unpack(buf)))


def _shared(raws, make):
    """make(raws), the record of each raw field, but with one record made
    for each distinct value and shared by every task that has it: most
    tasks share their credentials and their name with many others, and a
    record made once costs neither the time to make it again nor the
    memory and garbage-collector time to keep it.  Records are immutable,
    so sharing one shows only in `is`.  When most values are distinct,
    looking them up is only extra work: then each is made."""
    distinct = list(set(raws))
    if 2 * len(distinct) > len(raws):
        return make(raws)
    return map(dict(zip(distinct, make(distinct))).__getitem__, raws)


def _make_creds(raws):
    return map(_new, repeat(Cred), map(CREDS.struct.unpack, raws))


def _make_comms(raws):
    """[decode_comm(raw) for raw in raws], by one decode and one split
    rather than three calls per comm.  NUL is a character of its own in
    UTF-8, never part of a sequence that surrogateescape escapes, so the
    names joined by NULs decode to each name as it decodes alone.  A name
    with a NUL left inside once its padding is stripped (bytes after its
    terminator) would split in two: then one at a time."""
    comms = b'\0'.join(map(bytes.rstrip, raws, repeat(b'\0'))).decode(
        'utf-8', 'surrogateescape').split('\0')
    if len(comms) != len(raws):
        comms = list(map(decode_comm, raws))
    return comms


def _bases(buf, shape, words, pids, tgids):
    """The Base of every message, zipped from one list per field: a struct
    can read the whole record but cannot make comm a str."""
    start, step = shape.groups[TASK_DIAG_BASE], shape.size // 4
    cols = []
    for name in BASE.names[:6]:         # tgid pid ppid tpid sid pgid: u32, 4-byte aligned
        col = words[(start + _BASE_OFF[name]) // 4::step]
        # base.tgid and base.pid repeat task_diag_msg's: the same int
        # objects then serve both, two fewer to make and keep per task.
        if name == 'tgid' and col == words[_TGID_WORD::step]:
            cols.append(tgids)
        elif name == 'pid' and col == words[_PID_WORD::step]:
            cols.append(pids)
        else:
            cols.append(col.tolist())
    cols.append(memoryview(buf).cast('B')[start + _BASE_OFF['state']::shape.size].tolist())
    cols.append(list(_shared(_column(shape.comm, buf), _make_comms)))     # the raw ones freed
    return map(_new, repeat(Base), zip(*cols))


# Three reads of a record: its lengths and offsets; its first eight fields;
# those eight and a stat right after the struct.
_VMA_TRAILER = struct.Struct('<%dx%s' % (VMA.offsets()['vma_len'],
                                         ''.join(f for _, f in VMA.fields[8:])))
_VMA_HEAD_REC = struct.Struct('<' + ''.join(f for _, f in VMA.fields[:8]))
_VMA_HEAD_STAT_REC = struct.Struct(_VMA_HEAD_REC.format + '%dx' % (
    VMA.size - _VMA_HEAD_REC.size) + VMA_STAT.fmt[1:])


def decode_vmas(buf, start, end, names=None):
    """The packed task_diag_vma records of one VMA attribute [start, end),
    as Vma.  Every offset is checked against the record it belongs to.
    @names, a dict shared by the calls of one decode, maps a name's raw
    bytes to its str: most mappings of a system name the same few files,
    decoded once.  A stat right after the struct (where every producer puts
    it) is read with the struct in one go."""
    if names is None:
        names = {}
    vmas = []
    append = vmas.append
    new = tuple.__new__
    trailer, head, head_stat = (_VMA_TRAILER.unpack_from, _VMA_HEAD_REC.unpack_from,
                                _VMA_HEAD_STAT_REC.unpack_from)
    rec_size, stat_size = VMA.size, VMA_STAT.size
    off = start
    while off < end:
        if end - off < rec_size:
            raise DecodeError('partial vma record at offset %d' % off)
        vma_len, name_off, name_len, stat_off, stat_len = trailer(buf, off)
        if vma_len < rec_size or off + vma_len > end:
            raise DecodeError('bad vma_len %d at offset %d' % (vma_len, off))
        name = None
        if name_len:
            if name_off < rec_size or name_off + name_len > vma_len:
                raise DecodeError('vma name outside its record at offset %d' % off)
            raw = buf[off + name_off:off + name_off + name_len]
            if type(raw) is not bytes:
                raw = bytes(raw)
            name = names.get(raw)
            if name is None:
                name = names[raw] = raw.split(b'\0', 1)[0].decode('utf-8', 'surrogateescape')
        if not stat_len:
            append(new(Vma, head(buf, off) + (name,)))
        elif stat_len < stat_size or stat_off < rec_size or stat_off + stat_len > vma_len:
            raise DecodeError('vma stat outside its record at offset %d' % off)
        elif stat_off == rec_size:
            append(new(Vma, head_stat(buf, off) + (name,)))
        else:
            append(new(Vma, head(buf, off) + _VMA_STAT_REC.unpack_from(buf, off + stat_off)
                       + (name,)))
        off += vma_len
    return vmas


def message_offsets(buf, least=NLMSG_HDRLEN):
    """The offset of every message of @buf, which must be whole messages
    of at least @least bytes each, or None: message_spans() for the
    decoders that read a whole response at once, in one loop of its own
    (a message's length is where the next one starts: no walk over
    the buffer can be done a column at a time)."""
    offs, off, n = [], 0, len(buf)
    append, unpack = offs.append, _U32.unpack_from
    while off + NLMSG_HDRLEN <= n:
        length, = unpack(buf, off)
        if length < least or off + length > n:
            return None
        append(off)
        off += (length + 3) & ~3
    return offs if off == n else None


def message_spans(buf):
    """(offset, nlmsg_len) of each whole message at the head of @buf, in
    order, up to the first that is cut short or is no message: the one
    walker of message boundaries, for what cuts and joins responses
    (iter_messages() decodes and checks the framing)."""
    off, n = 0, len(buf)
    while off + NLMSG_HDRLEN <= n:
        length = _U32.unpack_from(buf, off)[0]
        if length < NLMSG_HDRLEN or off + length > n:
            return
        yield off, length
        off += (length + 3) & ~3


def whole_head(buf, size):
    """How many bytes of @buf, at most @size, end on a message boundary
    (0 when its first message is longer)."""
    end, n = 0, len(buf)
    for off, length in message_spans(buf):
        nxt = off + ((length + 3) & ~3)
        if nxt > size or nxt > n:
            break
        end = nxt
    return end


def last_message(buf):
    """The task_diag_msg (pid, tgid, flags) of the last whole message of
    @buf, or None."""
    last = None
    for off, length in message_spans(buf):
        if length >= NLMSG_HDRLEN + MSG.size:
            last = off
    return None if last is None else MSG.struct.unpack_from(buf, last + NLMSG_HDRLEN)


def iter_messages(buf):
    """Yields (nlmsghdr tuple, task_diag_msg tuple, [(nla_type, start, end)])
    for each message of a response, checking the framing."""
    off, n = 0, len(buf)
    while off < n:
        if n - off < NLMSG_HDRLEN + MSG.size:
            raise DecodeError('truncated message at offset %d' % off)
        fields = _HDR_MSG.unpack_from(buf, off)
        length = fields[0]
        if length < NLMSG_HDRLEN + MSG.size or off + length > n:
            raise DecodeError('bad nlmsg_len %d at offset %d' % (length, off))
        attrs = []
        a, end = off + NLMSG_HDRLEN + MSG.size, off + length
        while a + NLA_HDRLEN <= end:
            nla_len, nla_type = _ATTR_HDR.unpack_from(buf, a)
            if nla_len < NLA_HDRLEN or a + nla_len > end:
                raise DecodeError('bad nla_len %d at offset %d' % (nla_len, a))
            attrs.append((nla_type & NLA_TYPE_MASK, a + NLA_HDRLEN, a + nla_len))
            a += (nla_len + 3) & ~3
        yield fields[:5], fields[5:], attrs
        off += (length + 3) & ~3


def iter_decode(buf):
    """Generic decoder: any groups, CONT continuations merged into one Task."""
    return iter_decode_pieces((buf,))


def iter_decode_pieces(pieces):
    """iter_decode() of a response in pieces of whole messages; a task's
    CONT messages may go on in the next piece."""
    cur = None                          # [pid, tgid, base, cred, stat, vmas, unknown, statm,
                                        #  cmdline, stat_ext, ns, cgroup]
    names = {}                          # VMA names, decoded once per dump
    for buf in pieces:
        for hdr, (pid, tgid, flags), attrs in iter_messages(buf):
            if cur is None:
                cur = [pid, tgid, None, None, None, None, None, None, None, None, None, None]
            elif (cur[0], cur[1]) != (pid, tgid):
                raise DecodeError('task %d continues (TASK_DIAG_FLAG_CONT) into task %d'
                                  % (cur[0], pid))
            for nla_type, start, end in attrs:
                layout = ATTR_LAYOUTS.get(nla_type)
                if layout is not None:
                    if end - start < layout.size:
                        raise DecodeError('short %s attribute at offset %d'
                                          % (layout.cname, start))
                    values = layout.struct.unpack_from(buf, start)
                    if nla_type == TASK_DIAG_BASE:
                        cur[2] = Base._make(values[:7] + (decode_comm(values[7]),))
                    elif nla_type == TASK_DIAG_CRED:
                        cur[3] = Cred._make(values)
                    elif nla_type == TASK_DIAG_STAT:
                        cur[4] = Stat._make(values)
                    elif nla_type == TASK_DIAG_STATM:
                        cur[7] = Statm._make(values)
                    elif nla_type == TASK_DIAG_STAT_EXT:
                        cur[9] = StatExt._make(values)
                    else:
                        cur[10] = Ns._make(values)
                elif nla_type == TASK_DIAG_CMDLINE:
                    cur[8] = bytes(buf[start:end])
                elif nla_type == TASK_DIAG_CGROUP:
                    cur[11] = decode_cgroup(buf[start:end])
                elif nla_type == TASK_DIAG_VMA:
                    if cur[5] is None:
                        cur[5] = []
                    cur[5].extend(decode_vmas(buf, start, end, names))
                else:
                    if cur[6] is None:
                        cur[6] = []
                    cur[6].append((nla_type, bytes(buf[start:end])))
            if not flags & TASK_DIAG_FLAG_CONT:
                yield Task._make(cur)
                cur = None
    if cur is not None:
        raise DecodeError('dump ends inside task %d (TASK_DIAG_FLAG_CONT)' % cur[0])


# --- columns -----------------------------------------------------------------

class ColumnShape:
    """Where each field of a message of @show lies.  Messages without
    CMDLINE or CGROUP all have one size: a response is then an array of
    records.  Those two are of any length (VAR_GROUPS): cut their payloads
    out (their headers stay) and the rest is again an array of records,
    of @size bytes.  @cuts: for each, in wire order, the offset in a
    record where its payload was."""

    def __init__(self, show):
        self.show = show
        off = NLMSG_HDRLEN + MSG.size
        # the words every message repeats: its type and flags, and
        # task_diag_msg.flags 0 (no TASK_DIAG_FLAG_CONT)
        self.words = [(1, TASK_DIAG_CMD_GET | NLM_F_MULTI << 16),
                      ((NLMSG_HDRLEN + MSG.offsets()['flags']) // 4, 0)]
        self.pid = NLMSG_HDRLEN + MSG.offsets()['pid']
        self.tgid = NLMSG_HDRLEN + MSG.offsets()['tgid']
        self.groups = {}                # attribute -> payload offset in a record
        self.cuts = []                  # [(attribute, record offset of its payload)]
        for attr in ATTR_ORDER:
            if not show & (1 << attr):
                continue
            if attr in VAR_GROUPS:
                off += NLA_HDRLEN       # its nlattr stays: nla_len, nla_type
                self.cuts.append((attr, off))
                continue
            layout = ATTR_LAYOUTS[attr]
            self.words.append((off // 4, (NLA_HDRLEN + layout.size) | attr << 16))
            self.groups[attr] = off + NLA_HDRLEN
            off += NLA_HDRLEN + layout.size
        self.size = off                 # of a record
        self.offsets = {attr: ATTR_LAYOUTS[attr].offsets() for attr in self.groups}
        self.formats = {attr: dict(ATTR_LAYOUTS[attr].fields) for attr in self.groups}


_U16 = struct.Struct('<H')


class Columns:
    """The tasks of a response, a field at a time: pids, tgids, col(group, field)
    (a list, one value per task), comms (str), cmdlines (raw bytes, with
    CMDLINE), cgroups (Cgroup records, with CGROUP); or None from read()
    when a message has another shape."""

    @classmethod
    def read(cls, buf, shape):
        if type(buf) is not bytes:
            buf = bytes(buf)
        self = cls()
        self.shape, self.size, self._views = shape, shape.size, {}
        self.payloads = {}
        if not buf:
            self.buf, self.n, self.pids, self.tgids = b'', 0, [], []
            self.payloads = {attr: [] for attr, _ in shape.cuts}
            return self
        lengths = None
        if shape.cuts:
            self.buf = self._cut(buf)
            if self.buf is None:
                return None
            lengths = self._lengths
        else:
            self.buf = buf
        self.n = len(self.buf) // shape.size
        if len(self.buf) % shape.size or (lengths is not None and self.n != len(lengths)):
            return None
        # the words every message repeats (lengths, types, flags 0: no
        # TASK_DIAG_FLAG_CONT), each compared for all messages at once
        words = self._view('I')
        step = shape.size // 4
        for index, value in shape.words:
            if words[index::step] != array('I', (value,)) * self.n:
                return None
        if lengths is None:
            if words[0::step] != array('I', (shape.size,)) * self.n:
                return None
        elif words[0::step].tolist() != lengths:
            return None
        if shape.cuts:
            halves = self._view('H')
            hstep = shape.size // 2
            for attr, cut in shape.cuts:
                if halves[(cut - NLA_HDRLEN) // 2 + 1::hstep] != array('H', (attr,)) * self.n:
                    return None
        self.pids = words[shape.pid // 4::step].tolist()
        self.tgids = words[shape.tgid // 4::step].tolist()
        return self

    @property
    def cmdlines(self):
        return self.payloads[TASK_DIAG_CMDLINE]

    @property
    def cgroups(self):
        return list(map(decode_cgroup, self.payloads[TASK_DIAG_CGROUP]))

    def _cut(self, buf):
        """@buf without the payloads of the variable groups, which go to
        self.payloads; self._lengths: what each message's nlmsg_len must
        be for our shape.  None if @buf is not whole messages long enough
        for it."""
        shape, n = self.shape, len(buf)
        offs = message_offsets(buf, shape.size)
        if offs is None:
            return None
        ends = offs[1:] + [n]
        segments = []                   # the record's pieces of each message
        seg_starts = offs
        grown = repeat(0)               # each message's payload bytes so far
        for attr, cut in shape.cuts:
            hdrs = list(map(add, map(add, offs, grown), repeat(cut - NLA_HDRLEN)))
            if hdrs[-1] + NLA_HDRLEN > n:
                return None
            nla_lens = list(map(itemgetter(0), map(_U16.unpack_from, repeat(buf), hdrs)))
            if min(nla_lens) < NLA_HDRLEN:
                return None
            starts = list(map(add, hdrs, repeat(NLA_HDRLEN)))
            self.payloads[attr] = list(map(buf.__getitem__,
                                           map(slice, starts, map(add, hdrs, nla_lens))))
            padded = list(map(and_, map(add, nla_lens, repeat(3 - NLA_HDRLEN)), repeat(~3)))
            segments.append(map(buf.__getitem__, map(slice, seg_starts, starts)))
            seg_starts = list(map(add, starts, padded))
            grown = list(map(add, grown, padded))
        segments.append(map(buf.__getitem__, map(slice, seg_starts, ends)))
        self._lengths = list(map(add, grown, repeat(shape.size)))
        return b''.join(chain.from_iterable(zip(*segments)))

    def _view(self, fmt, shift=0):
        """@fmt items of the records from byte @shift on (a u64 at an
        offset that is 4 mod 8 is read from a view shifted by 4)."""
        key = (fmt, shift)
        view = self._views.get(key)
        if view is None:
            width = struct.calcsize(fmt)
            mv = memoryview(self.buf)[shift:]
            view = self._views[key] = mv[:len(mv) - len(mv) % width].cast(fmt)
        return view

    def col(self, group, field):
        attr = _ATTR_BY_NAME[group]
        off = self.shape.groups[attr] + self.shape.offsets[attr][field]
        fmt = self.shape.formats[attr][field]
        size = self.size
        if fmt == 'Q':
            if size % 8 == 0:
                shift = off % 8
                return self._view('Q', shift)[(off - shift) // 8::size // 8].tolist()
            lo, hi = (self._view('I')[o // 4::size // 4].tolist() for o in (off, off + 4))
            return list(map(add, lo, map(mul, hi, repeat(1 << 32))))
        if fmt in ('I', 'i'):
            return self._view(fmt)[off // 4::size // 4].tolist()
        if fmt == 'B':
            return self._view('B')[off::size].tolist()
        raise ValueError('no column for %s.%s (%s)' % (group, field, fmt))

    def comms(self, encoding='utf-8', errors='surrogateescape'):
        """base.comm of each task as str, decoded with @encoding (psutil
        decodes the name of /proc/PID/stat with the file system's); most
        tasks share a name with others: each distinct one is decoded
        once."""
        base = TASK_DIAG_BASE
        off = self.shape.groups[base] + self.shape.offsets[base]['comm']
        field = struct.Struct('<%dx%ds%dx' % (off, TASK_DIAG_COMM_LEN,
                                              self.size - off - TASK_DIAG_COMM_LEN))
        raws = list(map(itemgetter(0), field.iter_unpack(self.buf)))
        names = {raw: raw.split(b'\0', 1)[0].decode(encoding, errors) for raw in set(raws)}
        return list(map(names.__getitem__, raws))


_ATTR_BY_NAME = {name: attr for attr, name in ATTR_NAMES.items()}
_column_shapes = {}


def columns(buf, show):
    """The tasks of a response to @show (no VMA), a field at a time: a
    Columns, or None when a message has another shape (a producer that
    left a group out, a task cut in two by TASK_DIAG_FLAG_CONT): for
    callers that make their own objects from the fields (task_diag.psutil)
    rather than Task records."""
    shape = _column_shapes.get(show)
    if shape is None:
        shape = _column_shapes[show] = ColumnShape(show)
    return Columns.read(buf, shape)
