"""The task_diag wire format: the one Python definition of every struct.

Mirrors bpf/task_diag.h field for field (tests/test_layout.py compiles the
header and compares sizes and offsets).  Layout of a response::

    +----------+---------------+------------------+------------------+---
    | nlmsghdr | task_diag_msg | nlattr BASE+body | nlattr CRED+body | ...
    +----------+---------------+------------------+------------------+---
      16 bytes   12 bytes        4 + 44             4 + 64

Groups come in the order BASE, CRED, VMA, STAT; a task split over several
messages has TASK_DIAG_FLAG_CONT set in every message but its last.

Two decoders: decode() for the hot path (struct over whole buffers, one
iter_unpack when every message has the same shape) and, for people,
task_diag.nlmsg (pyroute2 message classes built from the tables below).
"""
import gc
import struct
from collections import namedtuple
from functools import partial
from itertools import repeat

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
TASK_DIAG_STATM = 5             # reserved
TASK_DIAG_CMDLINE = 6           # reserved
TASK_DIAG_ATTR_MAX = 6

SHOW_BASE = 1 << TASK_DIAG_BASE
SHOW_CRED = 1 << TASK_DIAG_CRED
SHOW_VMA = 1 << TASK_DIAG_VMA
SHOW_VMA_STAT = 1 << TASK_DIAG_VMA_STAT
SHOW_STAT = 1 << TASK_DIAG_STAT
SHOW_STATM = 1 << TASK_DIAG_STATM
SHOW_CMDLINE = 1 << TASK_DIAG_CMDLINE

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

# Which layout each attribute carries (VMA is a packed array of records).
ATTR_LAYOUTS = {TASK_DIAG_BASE: BASE, TASK_DIAG_CRED: CREDS, TASK_DIAG_STAT: STAT}
ATTR_NAMES = {TASK_DIAG_BASE: 'base', TASK_DIAG_CRED: 'cred', TASK_DIAG_VMA: 'vma',
              TASK_DIAG_STAT: 'stat'}
# The fill order of the original: BASE, CRED, VMA, STAT (not enum order).
ATTR_ORDER = (TASK_DIAG_BASE, TASK_DIAG_CRED, TASK_DIAG_VMA, TASK_DIAG_STAT)


# --- records ------------------------------------------------------------

class Base(namedtuple('Base', BASE.names)):
    """task_diag_base.  comm is a str (bytes that are not UTF-8 kept as
    surrogate escapes, like os.fsdecode).  The decoder stores the raw
    16 bytes and decodes when comm is looked at, through .comm, [7],
    iteration, equality, hash, repr or _asdict(): decoding every comm of a
    large dump up front would cost a fifth of its decode time."""
    __slots__ = ()

    @property
    def comm(self):
        raw = tuple.__getitem__(self, 7)
        return raw if isinstance(raw, str) else decode_comm(raw)

    def __iter__(self):
        yield from tuple.__getitem__(self, slice(0, 7))
        yield self.comm

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self)[i]
        return self.comm if i in (7, -1) else tuple.__getitem__(self, i)

    @property
    def state_letter(self):
        return STATE_LETTERS[self.state] if self.state < len(STATE_LETTERS) else '?'

    def __eq__(self, other):
        if not isinstance(other, Base):
            return tuple(self) == other
        return tuple(self) == tuple(other)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(tuple(self))

    def _asdict(self):
        d = dict(zip(self._fields, self))
        d['comm'] = self.comm
        return d

    def __repr__(self):
        return 'Base(%s)' % ', '.join('%s=%r' % kv for kv in self._asdict().items())


Cred = namedtuple('Cred', CREDS.names)
Stat = namedtuple('Stat', STAT.names)
VmaStat = namedtuple('VmaStat', VMA_STAT.names)
Vma = namedtuple('Vma', ('start', 'end', 'vm_flags', 'pgoff', 'major', 'minor', 'inode',
                         'generation', 'name', 'stat'))


class Task(namedtuple('Task', 'pid tgid base cred stat vmas unknown',
                      defaults=(None, None, None, None, None))):
    """One task of a dump: pid and tgid of task_diag_msg, then its groups,
    None where not requested.  unknown: [(nla_type, bytes)] of attributes
    this version does not know.  A tuple: cheap to make by the ten thousand."""
    __slots__ = ()

    def __repr__(self):
        return 'Task(pid=%d, tgid=%d, base=%r, cred=%r, stat=%r, vmas=%s)' % (
            self.pid, self.tgid, self.base, self.cred, self.stat,
            None if self.vmas is None else '[%d]' % len(self.vmas))


def decode_comm(raw):
    """comm as str; bytes that are not UTF-8 kept as surrogate escapes,
    like os.fsdecode().  Producers zero-fill after the NUL."""
    return raw.split(b'\0', 1)[0].decode('utf-8', 'surrogateescape')


# --- requests -------------------------------------------------------------

def encode_request(strategy, pid=0, show=SHOW_BASE, seq=0):
    """nlmsghdr + task_diag_pid, as one write() of the original tools:
    nlmsg_len covers the payload padded as an attribute (16 + 28 = 44)."""
    body = REQUEST.pack(show, strategy, pid)
    total = NLMSG_HDRLEN + NLA_HDRLEN + len(body)
    return NLMSGHDR.pack(total, 0, 0, seq, 0) + body + b'\0' * NLA_HDRLEN


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
    """The task_diag_vma records of @vmas (Vma tuples: name str, bytes or
    None; stat a VmaStat, a 10-tuple or None), one bytes object per record,
    in order; b''.join() of them is the payload of a TASK_DIAG_VMA
    attribute.  A record: the 64-byte struct, then the stat (stat_off 64,
    stat_len 80) if any, then the name and its NUL (name_len = strlen + 1)
    if any, zero-padded to 4 bytes; vma_len is the whole record."""
    out = []
    append = out.append
    pack, pack_stat = _VMA_REC.pack, _VMA_STAT_REC.pack
    for v in vmas:
        start, end, flags, pgoff, major, minor, inode, gen, name, stat = v
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
_ATTR_HDR = NLATTR.struct
_VMA_REC = VMA.struct
_VMA_STAT_REC = VMA_STAT.struct


def _fixed_shape(show):
    """For requests without VMAs every message has the same shape.  Returns
    its size, the u32 words every message must repeat (offset, value): its
    length, type and flags, task_diag_msg.flags = 0, each attribute's
    header; and for pid/tgid and each group a struct that reads just that
    part of a message (the rest is padding), with the type to make of it."""
    words, parts, off = [], [], NLMSG_HDRLEN + MSG.size
    groups = []
    for attr, cls in ((TASK_DIAG_BASE, Base), (TASK_DIAG_CRED, Cred), (TASK_DIAG_STAT, Stat)):
        if show & (1 << attr):
            layout = ATTR_LAYOUTS[attr]
            words.append((off, (NLA_HDRLEN + layout.size) | attr << 16))
            groups.append((attr, off + NLA_HDRLEN, layout, cls))
            off += NLA_HDRLEN + layout.size
    size = off
    words += [(0, size), (4, TASK_DIAG_CMD_GET | NLM_F_MULTI << 16), (24, 0)]
    ids = struct.Struct('<%dxII%dx' % (NLMSG_HDRLEN, size - NLMSG_HDRLEN - 8))
    for attr, start, layout, cls in groups:
        parts.append((attr, struct.Struct('<%dx%s%dx' % (
            start, layout.fmt[1:], size - start - layout.size)), cls))
    return size, words, ids, parts


_shapes = {}


def decode(buf, show=None):
    """Decode a whole response into a list of Task.  @show, the request's
    show_flags, enables the fast path; without it the generic path runs."""
    if show is not None and not show & SHOW_VMA and buf:
        key = show & (SHOW_BASE | SHOW_CRED | SHOW_STAT)
        shape = _shapes.get(key)
        if shape is None:
            shape = _shapes[key] = _fixed_shape(key)
        tasks = _decode_fixed(buf, *shape)
        if tasks is not None:
            return tasks
    return list(iter_decode(buf))


def _same_shape(buf, size, words):
    """Whether every message of @buf has the fixed words: one strided
    memoryview per word, compared in C, no Python work per message."""
    if len(buf) % size or size % 4:
        return False
    n = len(buf) // size
    words_mv = memoryview(buf).cast('B').cast('I')
    step = size // 4
    return all(words_mv[off // 4::step].tolist().count(value) == n for off, value in words)


def _decode_fixed(buf, size, words, ids, parts):
    if not _same_shape(buf, size, words):
        return None                 # a CONT, a foreign message: the generic path
    # Each group is read by its own struct over the whole buffer and made
    # into its type by map(): loops in C, none in Python but the last.  The
    # objects hold no cycles, so the cyclic collector, which would run many
    # times over them, is kept out.
    gc_was = gc.isenabled()
    gc.disable()
    try:
        groups = {attr: map(partial(tuple.__new__, cls), st.iter_unpack(buf))
                  for attr, st, cls in parts}
        none = repeat(None)
        return list(map(_make_task, ids.iter_unpack(buf),
                        groups.get(TASK_DIAG_BASE, none), groups.get(TASK_DIAG_CRED, none),
                        groups.get(TASK_DIAG_STAT, none)))
    finally:
        if gc_was:
            gc.enable()


def _make_task(ids, base, cred, stat, _new=tuple.__new__):
    return _new(Task, (ids[0], ids[1], base, cred, stat, None, None))


def decode_vmas(buf, start, end):
    """The packed task_diag_vma records of one VMA attribute [start, end).
    Every offset is checked against the record it belongs to."""
    vmas = []
    off = start
    while off < end:
        if end - off < VMA.size:
            raise DecodeError('partial vma record at offset %d' % off)
        (vstart, vend, flags, pgoff, major, minor, inode, gen, vma_len,
         name_off, name_len, stat_off, stat_len) = _VMA_REC.unpack_from(buf, off)
        if vma_len < VMA.size or off + vma_len > end:
            raise DecodeError('bad vma_len %d at offset %d' % (vma_len, off))
        name = None
        if name_len:
            if name_off < VMA.size or name_off + name_len > vma_len:
                raise DecodeError('vma name outside its record at offset %d' % off)
            raw = buf[off + name_off:off + name_off + name_len]
            name = raw.split(b'\0', 1)[0].decode('utf-8', 'surrogateescape')
        stat = None
        if stat_len:
            if stat_len < VMA_STAT.size or stat_off < VMA.size or stat_off + stat_len > vma_len:
                raise DecodeError('vma stat outside its record at offset %d' % off)
            stat = VmaStat._make(_VMA_STAT_REC.unpack_from(buf, off + stat_off))
        vmas.append(Vma(vstart, vend, flags, pgoff, major, minor, inode, gen, name, stat))
        off += vma_len
    return vmas


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
    cur = None                          # [pid, tgid, base, cred, stat, vmas, unknown]
    for hdr, (pid, tgid, flags), attrs in iter_messages(buf):
        if cur is None:
            cur = [pid, tgid, None, None, None, None, None]
        elif (cur[0], cur[1]) != (pid, tgid):
            raise DecodeError('task %d continues (TASK_DIAG_FLAG_CONT) into task %d'
                              % (cur[0], pid))
        for nla_type, start, end in attrs:
            layout = ATTR_LAYOUTS.get(nla_type)
            if layout is not None:
                if end - start < layout.size:
                    raise DecodeError('short %s attribute at offset %d' % (layout.cname, start))
                values = layout.struct.unpack_from(buf, start)
                if nla_type == TASK_DIAG_BASE:
                    cur[2] = Base._make(values)
                elif nla_type == TASK_DIAG_CRED:
                    cur[3] = Cred._make(values)
                else:
                    cur[4] = Stat._make(values)
            elif nla_type == TASK_DIAG_VMA:
                if cur[5] is None:
                    cur[5] = []
                cur[5].extend(decode_vmas(buf, start, end))
            else:
                if cur[6] is None:
                    cur[6] = []
                cur[6].append((nla_type, bytes(buf[start:end])))
        if not flags & TASK_DIAG_FLAG_CONT:
            yield Task._make(cur)
            cur = None
    if cur is not None:
        raise DecodeError('dump ends inside task %d (TASK_DIAG_FLAG_CONT)' % cur[0])
