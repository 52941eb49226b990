"""/run/task-diag, the transactional file (spec sections 1 to 3): the
protocol through the C client tests/td_dump.c (written against
task_diag/bpf/task_diag.h alone: the proof that the file speaks to any language)
and through raw os.write()/os.read(), every strategy, every group, and
each row of the error table.

The answers are compared with task_diag.dump(source='bpf') for processes
of the test's own, stopped (SIGSTOP) so that nothing in them moves.

Its helpers are in tests/helpers/front.py, its fixtures (front, td, fd,
family) in tests/conftest.py.

lseek() and pread()/pwrite() (spec: "offsets are ignored, lseek/pread are
not supported"): the file is opened non-seekable (FOPEN_NONSEEKABLE), so
the kernel refuses all three with ESPIPE before the daemon sees them, and
a dump in progress goes on unharmed (test_lseek_pread_pwrite_espipe).
"""
import errno
import os

import pytest

import task_diag
from task_diag import wire
from task_diag.iterproto import VIEWER

from helpers.front import (ALL_GROUPS, BASE, CRED, GROUP_NAMES, MSG_ALL, MSG_BASE, STAT,
                           STOPPED, bpf_dump, check_reads, daemon_pid, expect_errno, fields,
                           free_pid, raw_request, read_all, request, td_errno, td_ok, transact)

# =================================================================================
# the C client: every strategy, every group, against the bpf backend
# =================================================================================

STRATEGIES = ['all', 'one', 'all_thread', 'children', 'thread']


def family_case(family, name):
    """(strategy, pid, the pids the answer holds of ours, exact): for
    exact, the answer has these pids and no other."""
    leader, threads = family.pid, family.tids
    return {
        'all': (wire.DUMP_ALL, 0, [leader] + family.kids, False),
        'one': (wire.DUMP_ONE, threads[1], [threads[1]], True),
        'all_thread': (wire.DUMP_ALL_THREAD, 0, threads + family.kids, False),
        'children': (wire.DUMP_CHILDREN, leader, family.kids, True),
        'thread': (wire.DUMP_THREAD, leader, threads, True),
    }[name]


@pytest.mark.parametrize('name', STRATEGIES)
def test_c_client_strategy(td, family, name):
    strategy, pid, ours, exact = family_case(family, name)
    tasks, ends = td_ok(td, '-s', name, '-p', pid, '-g', 'base,cred,stat', '-q', 77)
    got = {t['pid']: t for t in tasks}
    assert len(got) == len(tasks)
    assert ends == [dict(seq=77, tasks=len(tasks), messages=len(tasks), reads=ends[0]['reads'],
                         bytes=len(tasks) * MSG_ALL)]
    want = bpf_dump(strategy, pid, ALL_GROUPS)
    if exact:
        assert sorted(got) == sorted(ours) == sorted(want)
    for p in ours:
        assert got[p] == want[p]
        assert got[p]['base.state'] == STOPPED
    if name in ('all', 'all_thread'):
        assert os.getpid() in got and daemon_pid() in got     # not only ours
    if name == 'all':
        assert all(t['pid'] == t['tgid'] for t in tasks)
        assert not set(family.tids[1:]) & set(got)


@pytest.mark.parametrize('groups', ['base', 'cred', 'stat', 'base,cred', 'cred,stat',
                                    'base,stat', 'base,cred,stat', '0'])
def test_c_client_groups(td, family, groups):
    show = 0 if groups == '0' else sum(k for k, v in GROUP_NAMES.items() if v in groups)
    tasks, _ = td_ok(td, '-s', 'thread', '-p', family.pid, '-g', groups)
    want = bpf_dump(wire.DUMP_THREAD, family.pid, show)
    assert {t['pid']: t for t in tasks} == want
    assert sorted(want) == family.tids
    for t in tasks:
        assert {k.split('.')[0] for k in t if '.' in k} == {
            v for k, v in GROUP_NAMES.items() if show & k}


def test_c_client_stat_per_thread(td, family):
    """STAT is the thread's in thread dumps, the process's otherwise."""
    thread = {t['pid']: t for t in td_ok(td, '-s', 'thread', '-p', family.pid, '-g', 'stat')[0]}
    one = td_ok(td, '-s', 'one', '-p', family.pid, '-g', 'stat')[0][0]
    assert one['stat.threads'] == len(family.tids)
    assert one['stat.minflt'] >= sum(t['stat.minflt'] for t in thread.values()) > 0


def test_unknown_groups_ignored(td, fd, family):
    """Bits of no group: ignored."""
    more = wire.SHOW_BASE | 1 << (wire.TASK_DIAG_ATTR_MAX + 1) | 1 << 40 | 1 << 63
    base, _ = td_ok(td, '-s', 'children', '-p', family.pid, '-g', 'base')
    other, _ = td_ok(td, '-s', 'children', '-p', family.pid, '-g', hex(more))
    assert other == base and len(base) == 2
    plain, _ = transact(fd, request(wire.DUMP_CHILDREN, family.pid, BASE, 6))
    odd, _ = transact(fd, request(wire.DUMP_CHILDREN, family.pid, more, 6))
    assert b''.join(odd) == b''.join(plain)


def test_c_client_seq_and_several_requests(td, family):
    """nlmsg_seq echoed (wrapping past 2^32 - 1), three requests on one
    descriptor, each ending with a 0."""
    tasks, ends = td_ok(td, '-s', 'thread', '-p', family.pid, '-q', 0xfffffffe, '-n', 3)
    assert [e['seq'] for e in ends] == [0xfffffffe, 0xffffffff, 0]
    assert [e['tasks'] for e in ends] == [3, 3, 3]
    for i in range(3):
        assert sorted(t['pid'] for t in tasks[3 * i:3 * i + 3]) == family.tids


@pytest.mark.parametrize('bufsize', [MSG_BASE, 1000, 16384, 1 << 20])
def test_c_client_read_buffers(td, bufsize):
    """Whole messages per read whatever the buffer (td_dump checks it)."""
    tasks, ends = td_ok(td, '-b', bufsize)
    assert ends[0]['bytes'] == len(tasks) * MSG_BASE
    if bufsize == MSG_BASE:
        assert ends[0]['reads'] == len(tasks)
    assert ends[0]['reads'] >= -(-ends[0]['bytes'] // bufsize)


def test_c_client_errors(td, family):
    assert td_errno(td, '-s', 'one', '-p', free_pid()) == errno.ESRCH
    assert td_errno(td, '-s', 5) == errno.EINVAL
    assert td_errno(td, '-b', MSG_BASE - 1) == errno.EINVAL
    assert td_errno(td, '-f', '/nonexistent/task-diag', call='open') == errno.ENOENT


# =================================================================================
# raw os.write / os.read
# =================================================================================

@pytest.mark.parametrize('name', STRATEGIES)
def test_raw_strategy(fd, family, name):
    strategy, pid, ours, exact = family_case(family, name)
    _, tasks = transact(fd, request(strategy, pid, ALL_GROUPS, seq=1234))
    got = {t.pid: fields(t) for t in tasks}
    want = bpf_dump(strategy, pid, ALL_GROUPS)
    if exact:
        assert sorted(got) == sorted(ours) == sorted(want)
    for p in ours:
        assert got[p] == want[p]


@pytest.mark.parametrize('seq', [0, 1, 0x12345678, 0xffffffff])
def test_seq_echoed_multi_flag(fd, family, seq):
    reads, tasks = transact(fd, request(wire.DUMP_THREAD, family.pid, ALL_GROUPS, seq))
    for hdr, msg, attrs in check_reads(reads, seq):
        assert hdr[3] == seq and hdr[2] == wire.NLM_F_MULTI
        assert msg[2] == 0                              # no CONT without VMAs
        assert [a[0] for a in attrs] == [wire.TASK_DIAG_BASE, wire.TASK_DIAG_CRED,
                                         wire.TASK_DIAG_STAT]
    assert sorted(t.pid for t in tasks) == family.tids


@pytest.mark.parametrize('size', [MSG_ALL, MSG_ALL + 100, 1000, 4096, 16384, 65536, 1 << 17,
                                  1 << 20])
def test_every_read_whole_messages(fd, size):
    reads, tasks = transact(fd, request(wire.DUMP_ALL_THREAD, 0, ALL_GROUPS, 9), size)
    # as full as whole messages allow: a read leaves out less than a message
    # (the FUSE layer hands the daemon at most 128 KiB at a time)
    for data in reads[:-1]:
        assert len(data) > min(size, 1 << 17) - MSG_ALL
    assert len(tasks) > 10


def test_end_is_zero_and_stays_zero(fd, family):
    """After the 0 that ends a dump, reads go on returning 0 (no request is
    pending): the dump does not start over."""
    transact(fd, request(wire.DUMP_THREAD, family.pid))
    for _ in range(3):
        assert os.read(fd, 1 << 16) == b''


def test_second_request_same_descriptor(fd, family):
    _, first = transact(fd, request(wire.DUMP_CHILDREN, family.pid, BASE, 1))
    _, second = transact(fd, request(wire.DUMP_THREAD, family.pid, CRED | STAT, 2))
    _, third = transact(fd, request(wire.DUMP_ONE, family.kids[0], ALL_GROUPS, 3))
    assert sorted(t.pid for t in first) == sorted(family.kids)
    assert sorted(t.pid for t in second) == family.tids and second[0].base is None
    assert [fields(t) for t in third] == list(bpf_dump(wire.DUMP_ONE, family.kids[0],
                                                       ALL_GROUPS).values())


def test_file_position_is_ignored(fd, family):
    """Writes leave a position behind; the next request does not care."""
    for seq in range(3):
        _, tasks = transact(fd, request(wire.DUMP_THREAD, family.pid, BASE, seq))
        assert sorted(t.pid for t in tasks) == family.tids


def test_lseek_pread_pwrite_espipe(fd, family):
    """Not supported: ESPIPE from the kernel (non-seekable file); the dump
    in progress is not disturbed."""
    os.write(fd, request(wire.DUMP_THREAD, family.pid, BASE, 5))
    first = os.read(fd, MSG_BASE)
    expect_errno(errno.ESPIPE, os.lseek, fd, 0, os.SEEK_SET)
    expect_errno(errno.ESPIPE, os.lseek, fd, 0, os.SEEK_CUR)
    expect_errno(errno.ESPIPE, os.pread, fd, 1 << 16, 0)
    expect_errno(errno.ESPIPE, os.pwrite, fd, request(wire.DUMP_ALL), 0)
    rest = read_all(fd)
    msgs = check_reads([first] + rest, 5)
    assert sorted(m[1][0] for m in msgs) == family.tids


# --- the error table ---------------------------------------------------------------

def assert_takes_new_request(fd, family):
    """After an error: nothing pending, a new request answered."""
    assert os.read(fd, 1 << 16) == b''
    _, tasks = transact(fd, request(wire.DUMP_THREAD, family.pid, BASE, 42))
    assert sorted(t.pid for t in tasks) == family.tids


@pytest.mark.parametrize('size', [1, 8, 15])
def test_write_shorter_than_header_einval(fd, family, size):
    expect_errno(errno.EINVAL, os.write, fd, request(wire.DUMP_ALL)[:size])
    assert_takes_new_request(fd, family)


def test_write_while_pending_ebusy(fd, family):
    req = request(wire.DUMP_THREAD, family.pid, BASE, 3)
    os.write(fd, req)
    expect_errno(errno.EBUSY, os.write, fd, req)           # before the first read
    first = os.read(fd, MSG_BASE)
    expect_errno(errno.EBUSY, os.write, fd, req)           # halfway
    rest = read_all(fd, MSG_BASE)
    assert sorted(m[1][0] for m in check_reads([first] + rest, 3)) == family.tids
    assert os.write(fd, req) == len(req)                   # after the 0
    assert sorted(m[1][0] for m in check_reads(read_all(fd), 3)) == family.tids


@pytest.mark.parametrize('nlmsg_len,size', [
    (16, 44), (39, 44), (0, 44), (44, 40), (44, 39), (100, 44), (0xffffffff, 44)])
def test_short_payload_einval_at_first_read(fd, family, nlmsg_len, size):
    """nlmsg_len < 16 + 24, or a write shorter than nlmsg_len: the write is
    taken, the first read says EINVAL."""
    data = raw_request(nlmsg_len, wire.DUMP_THREAD, family.pid, size=size)
    assert os.write(fd, data) == size
    expect_errno(errno.EINVAL, os.read, fd, 1 << 16)
    assert_takes_new_request(fd, family)


@pytest.mark.parametrize('size', [40, 44, 200])
def test_request_is_the_first_nlmsg_len_bytes(fd, family, size):
    """nlmsg_len 40 (no padding) is a whole request; bytes after nlmsg_len
    are ignored, whatever they are."""
    data = raw_request(40, wire.DUMP_THREAD, family.pid, BASE, 8)
    data += b'\xff' * (size - 40)
    _, tasks = transact(fd, data)
    assert sorted(t.pid for t in tasks) == family.tids


@pytest.mark.parametrize('strategy', [5, 6, 0xfe, 0xff, 1 << 32, (1 << 64) - 1])
def test_unknown_strategy_einval(fd, family, strategy):
    """0xfe and 0xff are the programs' internal probes: no client may ask for them."""
    os.write(fd, request(strategy, family.pid))
    expect_errno(errno.EINVAL, os.read, fd, 1 << 16)
    assert_takes_new_request(fd, family)


@pytest.mark.parametrize('strategy', [wire.DUMP_ONE, wire.DUMP_THREAD, wire.DUMP_CHILDREN])
@pytest.mark.parametrize('which', ['zero', 'free', 'huge'])
def test_missing_pid_esrch(fd, family, strategy, which):
    pid = {'zero': 0, 'free': free_pid(), 'huge': 0xffffffff}[which]
    os.write(fd, request(strategy, pid, ALL_GROUPS))
    expect_errno(errno.ESRCH, os.read, fd, 1 << 16)
    assert_takes_new_request(fd, family)


def test_children_of_childless_is_empty(fd, family):
    """A pid that exists without children: an empty answer, not ESRCH."""
    reads, tasks = transact(fd, request(wire.DUMP_CHILDREN, family.kids[0]))
    assert reads == [] and tasks == []


def test_read_with_nothing_pending_is_zero(front):
    fd = os.open(front, os.O_RDWR)
    try:
        assert os.read(fd, 1 << 16) == b''
        assert os.read(fd, 10) == b''
    finally:
        os.close(fd)


def test_small_read_buffer_einval(fd, family):
    """< 16 KiB and too small for the next message: EINVAL, the transaction
    ends; a buffer that holds one message gets one."""
    os.write(fd, request(wire.DUMP_THREAD, family.pid, ALL_GROUPS, 4))
    expect_errno(errno.EINVAL, os.read, fd, MSG_ALL - 1)
    assert_takes_new_request(fd, family)
    os.write(fd, request(wire.DUMP_THREAD, family.pid, ALL_GROUPS, 4))
    first = os.read(fd, MSG_ALL)
    assert len(first) == MSG_ALL
    expect_errno(errno.EINVAL, os.read, fd, 100)           # halfway too
    assert_takes_new_request(fd, family)


def test_16k_reads_always_progress_with_vmas(fd):
    """With VMAs a task's messages are long and split (CONT); a 16 KiB
    buffer still always makes progress, and the continuations hold."""
    show = BASE | wire.SHOW_VMA | STAT
    reads, tasks = transact(fd, request(wire.DUMP_ALL_THREAD, 0, show, 16), 16384)
    assert any(len(d) > 8192 for d in reads)
    assert all(t.vmas is not None for t in tasks if t.pid == os.getpid())
    assert len({t.pid for t in tasks}) == len(tasks)


def test_vma_stat_answered(fd, family):
    """VMA_STAT through the file: each record carries its smaps statistics,
    the same bytes the /proc backend builds, for a stopped process."""
    show = BASE | wire.SHOW_VMA | wire.SHOW_VMA_STAT
    for attempt in range(5):        # shared pages' Pss moves as others map them
        _, tasks = transact(fd, request(wire.DUMP_ONE, family.pid, show, 3))
        want = list(task_diag.dump(wire.DUMP_ONE, family.pid, show, source='proc'))
        if tasks == want:
            break
    assert tasks == want
    assert tasks[0].vmas and all(v.stat is not None for v in tasks[0].vmas)
    assert any(v.stat.resident for v in tasks[0].vmas)


# =================================================================================
# the Transaction alone (task_diag/front/transaction.py), with a fake engine
# =================================================================================

class FakeStream:
    """Whole messages of MSG_BASE bytes, at most @size a read, as Stream does;
    with @once, what one iterator read would give (up to 32 KiB)."""

    def __init__(self, data):
        self.data = data

    def read(self, size=64 * 1024, once=False):
        if once:
            size = 32 * 1024
        cut = size - size % MSG_BASE
        out, self.data = self.data[:cut], self.data[cut:]
        return out

    def close(self):
        pass


class FakeEngine:
    """Answers every request with @n messages; viewers from @viewers {pid: bytes}."""

    def __init__(self, n=5, viewers=None):
        self.n = n
        self.viewers = viewers or {}
        self.streams = 0

    def viewer_of(self, pid):
        if pid not in self.viewers:
            raise OSError(errno.ESRCH, 'no process %d' % pid)
        return self.viewers[pid]

    def stream(self, strategy, pid, show, seq, viewer, cgroup=0):
        self.streams += 1
        return FakeStream(b''.join(wire.encode_message(i, i, [(0, bytes(44))], seq)
                                   for i in range(1, self.n + 1)))


def viewer(**values):
    v = dict.fromkeys(VIEWER.names, 0)
    v.update(valid=1, **values)
    return VIEWER.pack(*(v[n] for n in VIEWER.names))


def test_transaction_ends_with_zero_once():
    from task_diag.front.transaction import Transaction
    tx = Transaction(FakeEngine(viewers={10: viewer()}))
    tx.write(request(wire.DUMP_ALL))
    data = tx.read(1 << 16, 10)
    assert len(list(wire.iter_messages(data))) == 5
    assert tx.read(1 << 16, 10) == b''
    assert tx.read(1 << 16, 10) == b''                     # not a new dump
    assert tx.engine.streams == 1


def test_transaction_caller_outside_pid_namespace_eperm():
    """FUSE gives pid 0 for a caller outside the daemon's pid namespace."""
    from task_diag.front.transaction import Transaction
    tx = Transaction(FakeEngine(viewers={0: viewer()}))
    tx.write(request(wire.DUMP_ALL))
    expect_errno(errno.EPERM, tx.read, 1 << 16, 0)
    assert tx.engine.streams == 0


def test_transaction_other_reader_same_credentials():
    """Another process reads on: allowed with the same credentials (only the
    thread group differs), EPERM with others."""
    from task_diag.front.transaction import Transaction
    viewers = {10: viewer(fsuid=1000, signal=0x1000), 11: viewer(fsuid=1000, signal=0x2000),
               12: viewer(fsuid=1001, signal=0x1000)}
    tx = Transaction(FakeEngine(viewers=viewers))
    tx.write(request(wire.DUMP_ALL))
    assert len(tx.read(MSG_BASE, 10)) == MSG_BASE
    assert len(tx.read(MSG_BASE, 11)) == MSG_BASE
    expect_errno(errno.EPERM, tx.read, MSG_BASE, 12)
    assert len(tx.read(MSG_BASE, 10)) == MSG_BASE           # the owner's dump goes on


def test_transaction_pieces_cut_on_message_boundaries():
    from task_diag.front.transaction import Transaction
    tx = Transaction(FakeEngine(n=1000, viewers={10: viewer()}))
    tx.write(request(wire.DUMP_ALL))
    got = []
    for size in [1000, 16384, 65536, 200000, MSG_BASE, 1 << 17, 1 << 17]:
        data = tx.read(size, 10)
        assert len(data) == min(1000 - len(got), size // MSG_BASE) * MSG_BASE
        got += [m[1][0] for m in wire.iter_messages(data)]
    assert got == list(range(1, 1001))
    assert tx.read(1 << 16, 10) == b''


def test_file_client_left_unread_does_not_block_the_next_request(front):
    """A caller that stops reading a response (an error while decoding, a
    loop left early) must not leave its thread's descriptor in the middle
    of a transaction: the front would refuse the next request (EBUSY)."""
    from task_diag.front.client import FileBackend
    b = FileBackend(front)
    pieces = b.pieces(wire.DUMP_ALL, 0, BASE)
    assert wire.iter_messages(next(pieces))         # a transaction under way
    pieces.close()
    tasks = wire.decode(b.raw(wire.DUMP_ALL, 0, BASE), BASE)
    assert os.getpid() in {t.pid for t in tasks}
    # and through the API: the dump after an abandoned one is whole
    for _ in task_diag.api.pieces(wire.DUMP_ALL, 0, BASE | wire.SHOW_VMA, source='file'):
        break
    (me,) = task_diag.dump(wire.DUMP_ONE, os.getpid(), BASE | wire.SHOW_VMA, source='file')
    assert me.vmas and me.base.pid == os.getpid()
