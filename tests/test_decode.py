"""wire.decode(buf, show) (the fast path: one struct over whole messages)
against wire.iter_decode (the generic path) and pyroute2's task_diag.nlmsg,
on real dumps of both sources and on synthetic messages built here:
continuations (TASK_DIAG_FLAG_CONT), attributes of unknown types, VMA
records, and broken framing, which must raise wire.DecodeError and nothing
else.
"""
import errno
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import task_diag
from helpers import need
from task_diag import wire
from task_diag.bpf_backend import vma_supported

SHOW3 = wire.SHOW_BASE | wire.SHOW_CRED | wire.SHOW_STAT
SHOWS = [wire.SHOW_BASE, wire.SHOW_CRED, wire.SHOW_STAT, wire.SHOW_BASE | wire.SHOW_CRED,
         wire.SHOW_BASE | wire.SHOW_STAT, wire.SHOW_CRED | wire.SHOW_STAT, SHOW3, 0]
CONT = wire.TASK_DIAG_FLAG_CONT


def generic(buf):
    return list(wire.iter_decode(buf))


def fast_only(monkeypatch, buf, show):
    """wire.decode(buf, show) with the generic path disabled: proves the fast
    path handled @buf by itself."""
    with monkeypatch.context() as m:
        def no_generic(*_):
            raise AssertionError('fast path fell back to the generic decoder')
        m.setattr(wire, 'iter_decode', no_generic)
        m.setattr(wire, 'iter_decode_pieces', no_generic)    # what decode() falls back to
        return wire.decode(buf, show)


def messages(buf):
    """(pid, tgid, flags, [(nla_type, payload)]) per message, read here
    with plain struct, independently of wire."""
    out, off = [], 0
    while off < len(buf):
        length, = struct.unpack_from('<I', buf, off)
        pid, tgid, flags = struct.unpack_from('<III', buf, off + 16)
        attrs, a = [], off + 28
        while a < off + length:
            nla_len, nla_type = struct.unpack_from('<HH', buf, a)
            attrs.append((nla_type, buf[a + 4:a + nla_len]))
            a += (nla_len + 3) & ~3
        out.append((pid, tgid, flags, attrs))
        off += (length + 3) & ~3
    return out


# --- real dumps ------------------------------------------------------------

@pytest.mark.parametrize('show', SHOWS, ids=lambda s: 'show%#x' % s)
@pytest.mark.parametrize('strategy', [wire.DUMP_ALL, wire.DUMP_ALL_THREAD], ids=['all', 'threads'])
def test_real_dump_fast_equals_generic(source, strategy, show, monkeypatch):
    buf = task_diag.raw(strategy, 0, show, source=source)
    fast = fast_only(monkeypatch, buf, show)
    assert len(fast) > 10
    assert fast == generic(buf) == wire.decode(buf)
    raw = messages(buf)
    assert [(t.pid, t.tgid) for t in fast] == [(m[0], m[1]) for m in raw]
    assert all(m[2] == 0 for m in raw)
    for t, (_, _, _, attrs) in zip(fast, raw):
        assert [a[0] for a in attrs] == [a for a in wire.ATTR_ORDER if show & (1 << a)]
        for group, layout in (('base', wire.BASE), ('cred', wire.CREDS), ('stat', wire.STAT)):
            value = getattr(t, group)
            payload = dict(attrs).get({'base': wire.TASK_DIAG_BASE, 'cred': wire.TASK_DIAG_CRED,
                                       'stat': wire.TASK_DIAG_STAT}[group])
            assert (value is None) == (payload is None)
            if value is not None:
                fields = layout.struct.unpack(payload)
                if group == 'base':
                    assert fields[:7] == tuple(value)[:7]
                    assert fields[7].rstrip(b'\0') == value.comm.encode('utf-8', 'surrogateescape')
                else:
                    assert fields == tuple(value)
        assert t.vmas is None and t.unknown is None


def test_real_dump_through_nlmsg(source):
    """pyroute2's readable decoder says what wire.decode says, message by message."""
    nlmsg = pytest.importorskip('task_diag.nlmsg')
    buf = task_diag.raw(wire.DUMP_ALL_THREAD, 0, SHOW3, 77, source=source)
    tasks = wire.decode(buf, SHOW3)
    dicts = nlmsg.to_dicts(buf)
    assert len(dicts) == len(tasks) > 10
    for d, t in zip(dicts, tasks):
        assert (d['pid'], d['tgid'], d['flags'], d['seq'], d['type']) == \
            (t.pid, t.tgid, 0, 77, wire.TASK_DIAG_CMD_GET)
        assert d['base'] == t.base._asdict()
        assert d['cred'] == t.cred._asdict()
        assert d['stat'] == t.stat._asdict()


# --- synthetic messages -----------------------------------------------------

def base(pid, tgid=None, comm=b'comm', **kw):
    v = dict(tgid=tgid or pid, pid=pid, ppid=1, tpid=0, sid=1, pgid=1, state=1, comm=comm)
    v.update(kw)
    return v


def pack_base(v):
    return wire.BASE.pack(v['tgid'], v['pid'], v['ppid'], v['tpid'], v['sid'], v['pgid'],
                          v['state'], v['comm'])


def as_base(v):
    return wire.Base(**dict(v, comm=v['comm'].decode('utf-8', 'surrogateescape')))


CRED = wire.Cred(0x1, 0x1ffffffffff, 0xffffffff00000000, 0x8000000000000001,
                 12345, 23456, 34567, 45678, 22222, 33333, 44444, 55555)
STAT = wire.Stat(2 ** 64 - 1, 2, 3, 4, 5, 6, 7, 2 ** 63, 2 ** 32 - 1)


def vma_record(start, end, name=None, stat=None, flags=0x3, pgoff=0, dev=(0, 0), inode=0,
               generation=0):
    """One packed task_diag_vma record: the struct, its stat, its name, 4-byte
    aligned (name_off/stat_off relative to the record)."""
    extra, name_off, name_len, stat_off, stat_len = b'', 0, 0, 0, 0
    if stat is not None:
        stat_off, stat_len = wire.VMA.size, wire.VMA_STAT.size
        extra += wire.VMA_STAT.pack(*stat)
    if name is not None:
        name_off, name_len = wire.VMA.size + len(extra), len(name) + 1
        extra += name + b'\0'
    extra += b'\0' * (-len(extra) & 3)
    head = wire.VMA.pack(start, end, flags, pgoff, dev[0], dev[1], inode, generation,
                         wire.VMA.size + len(extra), name_off, name_len, stat_off, stat_len)
    return head + extra


def as_vma(start, end, name=None, stat=None, flags=0x3, pgoff=0, dev=(0, 0), inode=0,
           generation=0):
    return wire.Vma(start, end, flags, pgoff, dev[0], dev[1], inode, generation,
                    None if name is None else name.decode('utf-8', 'surrogateescape'),
                    None if stat is None else wire.VmaStat(*stat))


VMAS = [dict(start=0x400000, end=0x401000, name=b'/bin/t\xffrue', flags=0x75, pgoff=4096,
             dev=(8, 1), inode=1234, generation=9, stat=tuple(range(1, 11))),
        dict(start=0x600000, end=0x601000),
        dict(start=0x7ff000, end=0x800000, name=b'[stack]', stat=(4096,) * 10),
        dict(start=0x900000, end=0x901000, name=b'')]


BASES = [base(1, comm=b'init'),
         base(4242, 4240, comm=b'\xff\xfe(\x80) x', state=8, tpid=77, ppid=2 ** 32 - 1),
         base(2 ** 31, comm=b'123456789abcdef', state=6)]


def tasks_buf(bases=BASES):
    """Three tasks, all groups, values at the edges of their types."""
    buf = b''.join(wire.encode_message(b['pid'], b['tgid'], [
        (wire.TASK_DIAG_BASE, pack_base(b)), (wire.TASK_DIAG_CRED, wire.CREDS.pack(*CRED)),
        (wire.TASK_DIAG_STAT, wire.STAT.pack(*STAT))], seq=5) for b in bases)
    want = [wire.Task(b['pid'], b['tgid'], as_base(b), CRED, STAT) for b in bases]
    return buf, want


def test_synthetic_values(monkeypatch):
    buf, want = tasks_buf()
    assert fast_only(monkeypatch, buf, SHOW3) == want
    assert generic(buf) == want
    assert want[1].base.comm == '\udcff\udcfe(\udc80) x'
    assert want[1].base.state_letter == 'I'
    assert wire.decode(b'', SHOW3) == [] == generic(b'')


def test_fast_path_rejects_other_shapes(monkeypatch):
    """A buffer of a shape other than @show's is not misread by the fast path:
    decode() gives what the generic path gives."""
    buf, want = tasks_buf()
    for show in SHOWS:
        assert wire.decode(buf, show) == want
    only_base = b''.join(wire.encode_message(b['pid'], b['tgid'],
                                             [(wire.TASK_DIAG_BASE, pack_base(b))]) for b in BASES)
    assert wire.decode(only_base, SHOW3) == generic(only_base)
    assert [t.cred for t in wire.decode(only_base, SHOW3)] == [None] * 3
    # same length as BASE+CRED but two CRED-sized attributes of another type
    odd = wire.encode_message(9, 9, [(40, bytes(44)), (wire.TASK_DIAG_CRED, wire.CREDS.pack(*CRED))])
    assert wire.decode(odd, wire.SHOW_BASE | wire.SHOW_CRED) == generic(odd)
    assert generic(odd)[0].unknown == [(40, bytes(44))] and generic(odd)[0].base is None


def test_cont_merges_groups(monkeypatch):
    """A task split over three messages is one Task, by both paths."""
    b = base(10)
    buf = (wire.encode_message(10, 10, [(wire.TASK_DIAG_BASE, pack_base(b))], flags=CONT) +
           wire.encode_message(10, 10, [(wire.TASK_DIAG_CRED, wire.CREDS.pack(*CRED))],
                               flags=CONT) +
           wire.encode_message(10, 10, [(wire.TASK_DIAG_STAT, wire.STAT.pack(*STAT))]) +
           wire.encode_message(11, 11, [(wire.TASK_DIAG_BASE, pack_base(base(11)))]))
    want = [wire.Task(10, 10, as_base(b), CRED, STAT), wire.Task(11, 11, as_base(base(11)))]
    assert generic(buf) == want
    assert wire.decode(buf, SHOW3) == want


def test_cont_merges_vma_records():
    """VMA records of one task split over messages are concatenated in order,
    between the task's other groups."""
    recs = [vma_record(**v) for v in VMAS]
    b = base(20)
    buf = (wire.encode_message(20, 20, [(wire.TASK_DIAG_BASE, pack_base(b)),
                                        (wire.TASK_DIAG_VMA, recs[0] + recs[1])], flags=CONT) +
           wire.encode_message(20, 20, [(wire.TASK_DIAG_VMA, recs[2])], flags=CONT) +
           wire.encode_message(20, 20, [(wire.TASK_DIAG_VMA, recs[3]),
                                        (wire.TASK_DIAG_STAT, wire.STAT.pack(*STAT))]))
    want = [wire.Task(20, 20, as_base(b), None, STAT, [as_vma(**v) for v in VMAS])]
    show = wire.SHOW_BASE | wire.SHOW_VMA | wire.SHOW_VMA_STAT | wire.SHOW_STAT
    assert generic(buf) == want
    assert wire.decode(buf, show) == want
    assert want[0].vmas[0].name == '/bin/t\udcffrue' and want[0].vmas[3].name == ''
    # no VMA attribute at all: None; an empty one: []
    empty = wire.encode_message(21, 21, [(wire.TASK_DIAG_VMA, b'')])
    assert generic(empty)[0].vmas == []


def test_vma_record_reads_like_a_namedtuple():
    """wire.Vma is one flat tuple (the stat's numbers inside), read like
    the namedtuple (start ... name, stat) the API documents."""
    stat = wire.VmaStat(*range(1, 11))
    v = wire.Vma(0x1000, 0x3000, 0x73, 4096, 8, 1, 77, 3, '/lib/x', stat)
    assert (v.start, v.end, v.vm_flags, v.pgoff, v.major, v.minor, v.inode, v.generation,
            v.name, v.stat) == (0x1000, 0x3000, 0x73, 4096, 8, 1, 77, 3, '/lib/x', stat)
    assert type(v.stat) is wire.VmaStat and v.stat.pss == 10
    bare = wire.Vma(0x1000, 0x3000, 0x73, 4096, 8, 1, 77, 3)
    assert bare.name is None and bare.stat is None
    assert v._replace(stat=None, name=None) == bare and bare._replace(stat=stat, name='/lib/x') == v
    assert wire.Vma(**v._asdict()) == v and v._asdict()['stat'] == stat
    assert v != bare and v != v._replace(stat=stat._replace(pss=11))
    assert list(v._asdict()) == ['start', 'end', 'vm_flags', 'pgoff', 'major', 'minor',
                                 'inode', 'generation', 'name', 'stat']
    assert wire.Vma._make(v._asdict().values()) == v
    match v:
        case wire.Vma(start, end, name='/lib/x', stat=wire.VmaStat(resident=1)):
            assert (start, end) == (0x1000, 0x3000)
        case _:
            raise AssertionError('no match')
    assert repr(v).startswith("Vma(start=4096, end=12288,") and 'stat=VmaStat(resident=1' in repr(v)
    import copy
    import pickle
    assert pickle.loads(pickle.dumps(v)) == v and copy.deepcopy(bare) == bare
    with pytest.raises(TypeError):
        wire.Vma(1, 2, 3, 4, 5, 6, 7, 8, 'x', (1, 2, 3))
    with pytest.raises(ValueError):
        v._replace(size=1)
    # a stat the producer put elsewhere than right after the struct
    rec = bytearray(vma_record(0x1000, 0x2000, name=b'n', stat=tuple(range(10))))
    moved = (rec[:wire.VMA.size] + bytes(8) + rec[wire.VMA.size:wire.VMA.size + 80] +
             rec[wire.VMA.size + 80:])
    length, name_off, name_len = len(moved), wire.VMA.size + 88, 2
    struct.pack_into('<HHHHH', moved, wire.VMA.offsets()['vma_len'],
                     length, name_off, name_len, wire.VMA.size + 8, 80)
    (got,) = wire.decode_vmas(bytes(moved), 0, len(moved))
    assert got == wire.Vma(0x1000, 0x2000, 0x3, 0, 0, 0, 0, 0, 'n', wire.VmaStat(*range(10)))


def test_pieces_decode_like_the_whole():
    """decode_pieces() over a response cut at any message boundaries (a
    task's CONT messages in different pieces) gives what decode() gives
    for the whole, through both paths."""
    recs = [vma_record(**v) for v in VMAS]
    msgs = [wire.encode_message(20, 20, [(wire.TASK_DIAG_BASE, pack_base(base(20))),
                                         (wire.TASK_DIAG_VMA, recs[0] + recs[1])], flags=CONT),
            wire.encode_message(20, 20, [(wire.TASK_DIAG_VMA, recs[2])], flags=CONT),
            wire.encode_message(20, 20, [(wire.TASK_DIAG_VMA, recs[3])]),
            wire.encode_message(21, 21, [(wire.TASK_DIAG_BASE, pack_base(base(21))),
                                         (wire.TASK_DIAG_VMA, recs[0])])]
    whole = b''.join(msgs)
    show = wire.SHOW_BASE | wire.SHOW_VMA | wire.SHOW_VMA_STAT
    want = wire.decode(whole, show)
    assert [len(t.vmas) for t in want] == [4, 1]
    for cuts in range(1 << (len(msgs) - 1)):        # every way to cut between messages
        pieces, cur = [], msgs[0]
        for i, m in enumerate(msgs[1:]):
            if cuts >> i & 1:
                pieces.append(cur)
                cur = m
            else:
                cur += m
        pieces.append(cur)
        assert wire.decode_pieces(iter(pieces), show) == want, cuts
        assert list(wire.iter_decode_pieces(pieces)) == want, cuts
    # a task whose CONT never ends, even over pieces
    with pytest.raises(wire.DecodeError):
        wire.decode_pieces(msgs[:2], show)
    # the fast path takes pieces too
    buf, tasks = tasks_buf()
    assert wire.decode_pieces([buf[:len(buf) // 3], buf[len(buf) // 3:]], SHOW3) == tasks


@pytest.mark.parametrize('show', [wire.SHOW_BASE | wire.SHOW_CRED,
                                  wire.SHOW_BASE | wire.SHOW_VMA], ids=['base', 'vma'])
def test_real_pieces(source, show):
    """Every piece a backend hands out holds whole messages, and decoding
    the pieces one by one gives what decoding them joined gives."""
    if show & wire.SHOW_VMA and source == 'bpf':
        need(vma_supported(), 'the kernel lacks the open-coded VMA iterator')
    pieces = list(task_diag.api.pieces(wire.DUMP_ALL, 0, show, source=source))
    assert pieces
    for piece in pieces:
        list(wire.iter_messages(piece))         # raises on a cut message
    tasks = wire.decode_pieces(pieces, show)
    assert tasks == wire.decode(b''.join(pieces), show)
    assert len({t.pid for t in tasks}) == len(tasks) > 10


def test_pieces_fall_back_to_proc_on_eopnotsupp(monkeypatch):
    """Without a source, a group the fastest backend cannot give
    (EOPNOTSUPP at the request) comes from /proc; with a source, the
    error is the caller's."""
    class Without:
        name = 'bpf'

        def pieces(self, *args, **kwargs):
            raise OSError(errno.EOPNOTSUPP, 'no VMA_STAT here')
            yield
    monkeypatch.setitem(task_diag.api._backends, None, Without())
    monkeypatch.setitem(task_diag.api._backends, 'bpf', Without())
    show = wire.SHOW_BASE | wire.SHOW_VMA
    (got,) = task_diag.dump(wire.DUMP_ONE, os.getpid(), show)
    (want,) = task_diag.dump(wire.DUMP_ONE, os.getpid(), show, source='proc')
    assert got.pid == os.getpid() and got.vmas
    assert [(v.start, v.name) for v in got.vmas][:5] == [(v.start, v.name) for v in want.vmas][:5]
    with pytest.raises(OSError) as e:
        task_diag.dump(wire.DUMP_ONE, os.getpid(), show, source='bpf')
    assert e.value.errno == errno.EOPNOTSUPP


def test_cont_at_end_of_dump_raises():
    buf, _ = tasks_buf()
    cut = wire.encode_message(30, 30, [(wire.TASK_DIAG_BASE, pack_base(base(30)))], flags=CONT)
    for decode in (generic, lambda b: wire.decode(b, wire.SHOW_BASE)):
        with pytest.raises(wire.DecodeError):
            decode(buf + cut)


def test_cont_followed_by_another_task_raises():
    """A message with CONT must be followed by the same task: a dump where
    another task comes next lost the rest of the first one, and the
    decoder must say so rather than drop the partial task."""
    buf = (wire.encode_message(40, 40, [(wire.TASK_DIAG_BASE, pack_base(base(40)))], flags=CONT) +
           wire.encode_message(41, 41, [(wire.TASK_DIAG_BASE, pack_base(base(41)))]))
    for decode in (generic, lambda b: wire.decode(b, wire.SHOW_BASE)):
        with pytest.raises(wire.DecodeError):
            decode(buf)


def test_unknown_attributes_kept(monkeypatch):
    """Attributes of types this decoder does not know are kept, in order,
    with their payload; known ones with NLA_F_NESTED/NET_BYTEORDER set are
    still known; an attribute longer than its struct (a later version) is
    read for the fields we know."""
    b = base(50)
    buf = wire.encode_message(50, 50, [
        (41, b'\x01\x02\x03\x04\x05\x06\x07\x08'),
        (wire.TASK_DIAG_BASE | 0x8000, pack_base(b)),
        (42, b'sleep\x00100\x00'),
        (wire.TASK_DIAG_CRED, wire.CREDS.pack(*CRED) + b'\xee' * 8),
        (0x3fff, b'xyz'),
        (wire.TASK_DIAG_VMA_STAT, b''),
    ], flags=CONT) + wire.encode_message(50, 50, [(1000, b'\xaa' * 5)])
    want = wire.Task(50, 50, as_base(b), CRED, unknown=[
        (41, b'\x01\x02\x03\x04\x05\x06\x07\x08'),
        (42, b'sleep\x00100\x00'), (0x3fff, b'xyz'),
        (wire.TASK_DIAG_VMA_STAT, b''), (1000, b'\xaa' * 5)])
    assert generic(buf) == [want]
    assert wire.decode(buf, wire.SHOW_BASE | wire.SHOW_CRED) == [want]


def test_unknown_attributes_through_nlmsg():
    """pyroute2's decoder keeps what it does not know: the type and payload
    of each unknown attribute can be found in its output."""
    nlmsg = pytest.importorskip('task_diag.nlmsg')
    buf = wire.encode_message(51, 51, [(wire.TASK_DIAG_BASE, pack_base(base(51))),
                                       (41, b'\x11\x22\x33\x44'),
                                       (300, b'\x55\x66\x77')])
    d, = nlmsg.to_dicts(buf)
    assert d['base'] == as_base(base(51))._asdict()

    def leaves(x):
        if isinstance(x, dict):
            for k, v in x.items():
                yield k
                yield from leaves(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                yield from leaves(v)
        else:
            yield x

    found = set()
    for leaf in leaves(d):
        if isinstance(leaf, (bytes, bytearray)):
            found.add(bytes(leaf).hex())
        elif isinstance(leaf, str):
            found.add(leaf.replace(':', '').lower())
    assert {'11223344', '556677'} <= found, d


def test_vmas_through_nlmsg():
    nlmsg = pytest.importorskip('task_diag.nlmsg')
    recs = b''.join(vma_record(**v) for v in VMAS)
    buf = wire.encode_message(52, 52, [(wire.TASK_DIAG_VMA, recs)])
    d, = nlmsg.to_dicts(buf)
    assert [wire.Vma(**r) for r in d['vma']['records']] == [as_vma(**v) for v in VMAS]


# --- broken framing ---------------------------------------------------------

def _decoders(show):
    return [('generic', generic), ('fast', lambda b: wire.decode(b, show))]


def test_truncated_anywhere(monkeypatch):
    """Cut at a message boundary: the whole tasks before it.  Cut anywhere
    else: DecodeError, from both paths."""
    buf, want = tasks_buf()
    size = len(buf) // 3
    for n in range(1, len(buf)):
        for name, decode in _decoders(SHOW3):
            if n % size == 0:
                assert decode(buf[:n]) == want[:n // size], (name, n)
            else:
                with pytest.raises(wire.DecodeError):
                    decode(buf[:n])


def _set(buf, off, fmt, value):
    b = bytearray(buf)
    struct.pack_into(fmt, b, off, value)
    return bytes(b)


BASE_ATTR = 28                      # first attribute: after nlmsghdr + task_diag_msg
CRED_ATTR = BASE_ATTR + 4 + 44
STAT_ATTR = CRED_ATTR + 4 + 64


@pytest.mark.parametrize('off,fmt,value', [
    (0, '<I', 0), (0, '<I', 4), (0, '<I', 27),          # nlmsg_len below header + msg
    (0, '<I', 10 ** 6),                                 # beyond the buffer
    (BASE_ATTR, '<H', 0), (BASE_ATTR, '<H', 3),         # nla_len below its header
    (STAT_ATTR, '<H', 4 + 72 + 4),                      # attribute beyond its message
    (BASE_ATTR, '<H', 4 + 43),                          # short task_diag_base
    (CRED_ATTR, '<H', 4 + 60),                          # short task_diag_creds
    (STAT_ATTR, '<H', 4 + 64),                          # short task_diag_stat
], ids=['len0', 'len4', 'len27', 'len-huge', 'nla0', 'nla3', 'nla-beyond', 'short-base',
        'short-cred', 'short-stat'])
def test_bad_lengths(off, fmt, value):
    buf, _ = tasks_buf()
    one = len(buf) // 3
    for where in (0, one, 2 * one):               # first, middle and last message
        bad = _set(buf, where + off, fmt, value)
        for name, decode in _decoders(SHOW3):
            with pytest.raises(wire.DecodeError):
                decode(bad)


def _vma_buf(payload):
    return wire.encode_message(60, 60, [(wire.TASK_DIAG_VMA, payload)]) + \
        wire.encode_message(61, 61, [(wire.TASK_DIAG_BASE, pack_base(base(61)))])


VMA_LEN, NAME_OFF, NAME_LEN, STAT_OFF, STAT_LEN = 52, 54, 56, 58, 60   # in task_diag_vma


@pytest.mark.parametrize('case', [
    'vma_len-short', 'vma_len-zero', 'vma_len-beyond', 'partial-record', 'name-beyond',
    'stat-beyond', 'stat-short'])
def test_bad_vma_records(case):
    rec = vma_record(**VMAS[0])
    recs = rec + vma_record(**VMAS[2])
    bad = {
        'vma_len-short': lambda: _set(recs, VMA_LEN, '<H', 32),
        'vma_len-zero': lambda: _set(recs, VMA_LEN, '<H', 0),
        'vma_len-beyond': lambda: _set(recs, VMA_LEN, '<H', len(recs) + 4),
        'partial-record': lambda: recs + rec[:40],
        'name-beyond': lambda: _set(rec, NAME_OFF, '<H', len(rec) + 8),
        'stat-beyond': lambda: _set(rec, STAT_OFF, '<H', 60000),
        # a stat that claims 16 bytes, at the record's last 16
        'stat-short': lambda: _set(_set(rec, STAT_OFF, '<H', len(rec) - 16), STAT_LEN, '<H', 16),
    }[case]()
    with pytest.raises(wire.DecodeError):
        generic(_vma_buf(bad))
    with pytest.raises(wire.DecodeError):
        wire.decode(_vma_buf(bad), wire.SHOW_VMA | wire.SHOW_VMA_STAT)


def _fuzz_base():
    buf, _ = tasks_buf()
    recs = b''.join(vma_record(**v) for v in VMAS)
    vbuf = (wire.encode_message(70, 70, [(wire.TASK_DIAG_BASE, pack_base(base(70))),
                                         (wire.TASK_DIAG_VMA, recs)], flags=CONT) +
            wire.encode_message(70, 70, [(wire.TASK_DIAG_STAT, wire.STAT.pack(*STAT))]))
    return buf, vbuf


FUZZ_PLAIN, FUZZ_VMA = _fuzz_base()


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(which=st.sampled_from(['plain', 'vma']),
       edits=st.lists(st.tuples(st.integers(0, 10 ** 4), st.integers(0, 255)), min_size=1,
                      max_size=4),
       cut=st.integers(0, 10 ** 4))
def test_fuzz_fast_and_generic_agree(which, edits, cut):
    """Any damaged buffer: both paths give the same tasks, or both raise
    DecodeError; never another exception."""
    buf = bytearray(FUZZ_PLAIN if which == 'plain' else FUZZ_VMA)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    buf = bytes(buf[:len(buf) - cut % 64])
    show = SHOW3 if which == 'plain' else SHOW3 | wire.SHOW_VMA | wire.SHOW_VMA_STAT
    results = both_paths(buf, show)
    assert results[0] == results[1]


def both_paths(buf, show):
    """[the generic decoder's tasks, decode(show)'s], DecodeError (the
    class) in place of what raised it."""
    results = []
    for decode in (generic, lambda b: wire.decode(b, show)):
        try:
            results.append(decode(buf))
        except wire.DecodeError:
            results.append(wire.DecodeError)
    return results


# --- STATM, CMDLINE, STAT_EXT -------------------------------------------------

SHOW_ALL_FIXED = (wire.SHOW_BASE | wire.SHOW_CRED | wire.SHOW_STAT | wire.SHOW_STATM
                  | wire.SHOW_STAT_EXT)
CMDLINES = (b'', b'a', b'ab\x00', b'abc\x00', b'sleep\x00100\x00', b'\xff\xfe title',
            b'x' * 4095 + b'\x00', b'y' * 4096)


def new_group_tasks(show):
    """Tasks with every group of @show, a command line each from CMDLINES."""
    out = []
    for i, cmdline in enumerate(CMDLINES):
        pid = 100 + i
        b = base(pid)
        task = wire.Task(pid, pid,
                         base=as_base(b) if show & wire.SHOW_BASE else None,
                         cred=CRED if show & wire.SHOW_CRED else None,
                         stat=wire.Stat(*STAT) if show & wire.SHOW_STAT else None,
                         statm=wire.Statm(4000 + i, 300, 200, 5, 0, 900, 0)
                         if show & wire.SHOW_STATM else None,
                         cmdline=cmdline if show & wire.SHOW_CMDLINE else None,
                         stat_ext=wire.StatExt(12345 + i, 34816, 0x400100, 20, -i, 0, 0, 7 * i)
                         if show & wire.SHOW_STAT_EXT else None,
                         ns=wire.Ns(*range(4026531830 + i, 4026531839 + i))
                         if show & wire.SHOW_NS else None)
        attrs = []
        for attr in wire.ATTR_ORDER:
            name = wire.ATTR_NAMES[attr]
            value = getattr(task, name, None)
            if value is None:
                continue
            if attr == wire.TASK_DIAG_BASE:
                attrs.append((attr, pack_base(b)))
            elif attr == wire.TASK_DIAG_CMDLINE:
                attrs.append((attr, value))
            else:
                attrs.append((attr, wire.ATTR_LAYOUTS[attr].pack(*value)))
        out.append((task, wire.encode_message(pid, pid, attrs, seq=3)))
    return out


@pytest.mark.parametrize('show', [
    SHOW_ALL_FIXED, SHOW_ALL_FIXED | wire.SHOW_CMDLINE, wire.SHOW_CMDLINE,
    SHOW_ALL_FIXED | wire.SHOW_NS | wire.SHOW_CMDLINE, wire.SHOW_NS,
    wire.SHOW_BASE | wire.SHOW_CMDLINE, wire.SHOW_CMDLINE | wire.SHOW_STAT_EXT,
    wire.SHOW_STATM, wire.SHOW_STAT_EXT | wire.SHOW_BASE])
def test_new_groups_decode(show):
    """STATM and STAT_EXT through the fixed fast path, CMDLINE (every length
    modulo 4, empty, a whole page) through its own: the same tasks as the
    generic decoder and as encoded; the fast paths are taken."""
    tasks = new_group_tasks(show)
    buf = b''.join(m for _, m in tasks)
    want = [t for t, _ in tasks]
    assert generic(buf) == want
    assert wire.decode(buf, show) == want
    if show & wire.SHOW_CMDLINE:
        fast = wire._decode_columns(buf, show)
    else:
        fast = wire._decode_fixed(buf, wire._Shape(show))
    assert fast == want


def test_cmdline_fast_path_rejects_other_shapes():
    """A CONT message, a foreign message type or a missing group sends a
    CMDLINE dump to the generic decoder, which reads it right."""
    show = wire.SHOW_BASE | wire.SHOW_CMDLINE | wire.SHOW_STAT_EXT
    tasks = new_group_tasks(show)
    msgs = [m for _, m in tasks]
    split = msgs[:2] + [wire.encode_message(102, 102, [(wire.TASK_DIAG_BASE,
                                                        pack_base(base(102)))], 3, CONT),
                        wire.encode_message(102, 102, [(wire.TASK_DIAG_CMDLINE, b'ab\x00'),
                                                       (wire.TASK_DIAG_STAT_EXT,
                                                        wire.STAT_EXT.pack(*tasks[2][0]
                                                                           .stat_ext))], 3)]
    assert wire._decode_columns(b''.join(split), show) is None
    assert wire.decode(b''.join(split), show) == generic(b''.join(split))
    assert wire.decode(b''.join(split), show)[2] == tasks[2][0]
    no_ext = msgs[:1] + [wire.encode_message(101, 101, [(wire.TASK_DIAG_BASE,
                                                         pack_base(base(101))),
                                                        (wire.TASK_DIAG_CMDLINE, b'a')], 3)]
    assert wire._decode_columns(b''.join(no_ext), show) is None
    assert wire.decode(b''.join(no_ext), show)[1].stat_ext is None


@pytest.mark.parametrize('raw,args', [
    (b'', []),
    (b'sleep\x00100\x00', ['sleep', '100']),
    (b'a\x00\x00b\x00', ['a', '', 'b']),              # an empty argument
    (b'nginx: worker process', ['nginx:', 'worker', 'process']),     # a title, no NUL
    (b'postgres: checkpointer \x00', ['postgres:', 'checkpointer', '']),
    (b'one arg\x00', ['one', 'arg']),                  # one NUL, spaces: psutil #1179
    (b'a\r\nb\x00c\rd\x00', ['a\nb', 'c\nd']),         # text mode: newlines translated
    (b'\xff\xfe\x00ok\x00', ['\udcff\udcfe', 'ok']),  # not UTF-8: surrogate escapes
])
def test_args_split_as_psutil(raw, args):
    """Task.args splits the command line as psutil's Process.cmdline()
    splits /proc/PID/cmdline (psutil/_pslinux.py)."""
    assert wire.Task(1, 1, cmdline=raw).args == args
    assert wire.split_cmdline(raw) == args
    assert wire.Task(1, 1).args is None


def test_args_of_a_cut_command_line():
    """A command line cut at TASK_DIAG_CMDLINE_MAX has NULs inside and none
    at its end: split at the NULs, as psutil splits the whole file."""
    whole = b''.join(b'arg%04d\x00' % i for i in range(600))
    cut = whole[:wire.TASK_DIAG_CMDLINE_MAX]
    args = wire.split_cmdline(cut)
    assert args[:-1] == wire.split_cmdline(whole)[:len(args) - 1]
    assert whole.split(b'\x00')[len(args) - 1].startswith(args[-1].encode())


@pytest.mark.parametrize('show', [
    SHOW_ALL_FIXED, SHOW_ALL_FIXED | wire.SHOW_CMDLINE, wire.SHOW_BASE | wire.SHOW_CMDLINE])
def test_columns_equal_the_records(show):
    """wire.columns() reads the same fields as the decoders' records: each
    column, the command lines and the names."""
    tasks = new_group_tasks(show)
    buf = b''.join(m for _, m in tasks)
    want = [t for t, _ in tasks]
    cols = wire.columns(buf, show)
    assert cols is not None and cols.n == len(want) and cols.pids == [t.pid for t in want]
    for attr, name in wire.ATTR_NAMES.items():
        if not show & (1 << attr) or attr in (wire.TASK_DIAG_CMDLINE, wire.TASK_DIAG_VMA):
            continue
        for field in wire.ATTR_LAYOUTS[attr].names:
            if field == 'comm':
                continue
            assert cols.col(name, field) == [getattr(getattr(t, name), field) for t in want], \
                (name, field)
    if show & wire.SHOW_BASE:
        assert cols.comms() == [t.base.comm for t in want]
    if show & wire.SHOW_CMDLINE:
        assert cols.cmdlines == [t.cmdline for t in want]
    # a task cut in two: not one shape
    cut = wire.encode_message(1, 1, [], flags=CONT) + buf
    assert wire.columns(cut, show) is None


SHOW_EVERY = SHOW_ALL_FIXED | wire.SHOW_CMDLINE | wire.SHOW_NS
FUZZ_CMDLINE = b''.join(m for _, m in new_group_tasks(SHOW_EVERY))


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, 10 ** 5), st.integers(0, 255)), min_size=1,
                      max_size=4),
       cut=st.integers(0, 10 ** 4))
def test_fuzz_cmdline_paths_agree(edits, cut):
    """A damaged dump with CMDLINE (and every fixed group): the columns'
    fast path and the generic decoder give the same tasks, or both raise
    DecodeError; columns() reads what it accepts as the records say."""
    buf = bytearray(FUZZ_CMDLINE)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    buf = bytes(buf[:len(buf) - cut % 64])
    results = both_paths(buf, SHOW_EVERY)
    assert results[0] == results[1]
    cols = wire.columns(buf, SHOW_EVERY)
    if cols is not None and results[0] is not wire.DecodeError:
        assert cols.pids == [t.pid for t in results[0]]
        assert cols.cmdlines == [t.cmdline for t in results[0]]
        assert cols.col('ns', 'net') == [t.ns.net for t in results[0]]
