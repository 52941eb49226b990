"""/run/task-diag under abuse: random sequences of opens, writes, reads and
closes (hypothesis) meet only the errors of the table and leave the
daemon answering; 16 clients dumping while processes fork and exit get
well-formed dumps and leave the daemon's memory where it was; a client
killed in the middle of a dump leaves nothing behind in the daemon.
"""
import errno
import os
import signal
import subprocess
import threading
import time

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from task_diag import wire
from helpers.front import (ALL_GROUPS, BASE, MSG_BASE, PY, check_reads, daemon_pid, raw_request,
                        read_all, request, transact, wait_for)

TABLE = {errno.EINVAL, errno.EBUSY, errno.ESRCH, errno.EPERM}
VMA_BOTH = wire.SHOW_VMA | wire.SHOW_VMA_STAT


def vmrss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmRSS:'))


def fd_count(pid):
    return len(os.listdir('/proc/%d/fd' % pid))


def answers(front):
    """One DUMP_ONE of ourselves on a fresh descriptor."""
    fd = os.open(front, os.O_RDWR)
    try:
        _, tasks = transact(fd, request(wire.DUMP_ONE, os.getpid(), ALL_GROUPS, 1))
        return [t.pid for t in tasks] == [os.getpid()]
    finally:
        os.close(fd)


# =================================================================================
# random sequences
# =================================================================================

PIDS = ('self', 'leader', 'thread', 'kid', 0, 1, 0xffffffff)
SHOWS = (0, BASE, ALL_GROUPS, wire.SHOW_STAT, BASE | wire.SHOW_VMA,
         wire.SHOW_VMA | wire.SHOW_STAT, BASE | VMA_BOTH, 1 << 40)

valid_requests = st.builds(
    lambda strategy, pid, show, seq, nlmsg_len: ('req', strategy, pid, show, seq, nlmsg_len, 44),
    st.sampled_from(wire.STRATEGIES), st.sampled_from(PIDS), st.sampled_from(SHOWS),
    st.integers(0, (1 << 32) - 1), st.sampled_from([40, 44]))
requests = st.builds(
    lambda strategy, pid, show, seq, nlmsg_len, size: ('req', strategy, pid, show, seq,
                                                      nlmsg_len, size),
    st.one_of(st.sampled_from(wire.STRATEGIES), st.sampled_from([5, 0xfe, 0xff, 1 << 63]),
              st.integers(0, (1 << 64) - 1)),
    st.sampled_from(PIDS),
    st.one_of(st.sampled_from(SHOWS), st.integers(0, (1 << 64) - 1)),
    st.integers(0, (1 << 32) - 1),
    st.one_of(st.just(44), st.just(40), st.integers(0, 64), st.integers(0, (1 << 32) - 1)),
    st.one_of(st.just(44), st.integers(0, 120)))
junk = st.binary(max_size=120).map(lambda b: ('bytes', b))
read_sizes = st.one_of(st.integers(0, 400), st.integers(0, 1 << 18),
                       st.sampled_from([MSG_BASE, 16383, 16384, 65536, 1 << 17, 1 << 20]))
write_ops = st.tuples(st.just('write'), st.integers(0, 3),
                      st.one_of(valid_requests, requests, junk))
read_ops = st.tuples(st.just('read'), st.integers(0, 3), read_sizes)
ops = st.lists(st.one_of(
    st.tuples(st.just('open')), write_ops, read_ops, write_ops, read_ops, read_ops,
    st.tuples(st.just('close'), st.integers(0, 3)),
), min_size=2, max_size=40)
EXAMPLES = int(os.environ.get('TD_FRONT_EXAMPLES', '60'))     # more for a long hunt


class Model:
    """One descriptor as the spec says it behaves."""

    def __init__(self, fd):
        self.fd = fd
        self.request = None         # the bytes of the pending request


def build(data, family):
    if data[0] == 'bytes':
        return data[1]
    _, strategy, pid, show, seq, nlmsg_len, size = data
    pid = {'self': os.getpid(), 'leader': family.pid, 'thread': family.tids[1],
           'kid': family.kids[0]}.get(pid, pid)
    return raw_request(nlmsg_len, strategy, pid, show, seq, size)


def check_read(m, size):
    """One read() on a descriptor with a request pending."""
    req = m.request
    try:
        data = os.read(m.fd, size)
    except OSError as e:
        event('read: %s' % errno.errorcode.get(e.errno, e.errno))
        m.request = None                                    # any error ends the dump
        valid, strategy, show = True, None, 0
        try:
            _, (show, strategy, _) = wire.decode_request(req)
        except ValueError:
            valid = False
        valid = valid and strategy in wire.STRATEGIES
        assert e.errno in TABLE, 'read(%d) of %r: %r' % (size, req, e)
        assert e.errno != errno.EBUSY
        if e.errno == errno.ESRCH:
            assert valid and strategy in wire.NEEDS_PID
        if e.errno == errno.EINVAL and valid:
            assert size < 16384, 'EINVAL for a valid request and a %d-byte read' % size
        return
    assert len(data) <= size
    event('read: data' if data else 'read: end')
    if not data:
        m.request = None
        return
    hdr, _ = wire.decode_request(req)
    check_reads([data], hdr[3])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops)
def test_random_sequences(front, family, ops):
    open_fds = []
    try:
        for op in ops:
            if op[0] == 'open' or not open_fds:
                if len(open_fds) < 4:
                    open_fds.append(Model(os.open(front, os.O_RDWR)))
                if op[0] == 'open':
                    continue
            m = open_fds[op[1] % len(open_fds)]
            if op[0] == 'close':
                os.close(m.fd)
                open_fds.remove(m)
            elif op[0] == 'write':
                data = build(op[2], family)
                if not data:
                    assert os.write(m.fd, data) == 0
                elif len(data) < wire.NLMSG_HDRLEN:
                    with pytest.raises(OSError) as e:
                        os.write(m.fd, data)
                    assert e.value.errno == errno.EINVAL
                elif m.request is not None:
                    with pytest.raises(OSError) as e:
                        os.write(m.fd, data)
                    assert e.value.errno == errno.EBUSY
                else:
                    assert os.write(m.fd, data) == len(data)
                    m.request = data
            else:
                size = op[2]
                if m.request is None or size == 0:
                    assert os.read(m.fd, size) == b''
                else:
                    check_read(m, size)
    finally:
        for m in open_fds:
            os.close(m.fd)
    assert answers(front)


# =================================================================================
# 16 clients while processes come and go
# =================================================================================

CHURN = r'''
import os, threading, time
end = time.monotonic() + 600
while time.monotonic() < end:
    pids = []
    for _ in range(10):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        pids.append(pid)
    threads = [threading.Thread(target=time.sleep, args=(0.001,)) for _ in range(4)]
    for t in threads:
        t.start()
    for pid in pids:
        os.waitpid(pid, 0)
    for t in threads:
        t.join()
'''

CLIENTS, DUMPS = 16, 50


def run_clients(front, dumps, errors, counts):
    def client(i):
        fd = os.open(front, os.O_RDWR)
        try:
            for j in range(dumps):
                strategy = (wire.DUMP_ALL, wire.DUMP_ALL_THREAD)[(i + j) % 2]
                show = (BASE, ALL_GROUPS)[i % 2]
                seq = i << 16 | j
                os.write(fd, request(strategy, 0, show, seq))
                reads = read_all(fd, (1 << 16, 4096, 1 << 17, 16384)[i % 4])
                msgs = check_reads(reads, seq)
                tasks = list(wire.iter_decode(b''.join(reads)))
                pids = [t.pid for t in tasks]
                assert len(pids) == len(set(pids)) == len(msgs)
                if strategy == wire.DUMP_ALL:
                    assert os.getpid() in pids            # nothing of ours left out
                    assert all(t.pid == t.tgid for t in tasks)
                else:
                    assert threading.get_native_id() in pids
                counts.append(len(pids))
        except BaseException as e:          # noqa: BLE001 - reported by the test
            errors.append('client %d: %r' % (i, e))
        finally:
            os.close(fd)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_16_clients_while_processes_fork_and_exit(front):
    pid = daemon_pid()
    churn = subprocess.Popen([PY, '-c', CHURN], start_new_session=True)
    try:
        errors, counts = [], []
        run_clients(front, 5, errors, counts)              # warm-up: the daemon's threads
        assert not errors, errors
        rss0 = vmrss_kib(pid)
        counts.clear()
        t0 = time.monotonic()
        run_clients(front, DUMPS, errors, counts)
        elapsed = time.monotonic() - t0
        assert churn.poll() is None                        # the load ran all along
    finally:
        os.killpg(churn.pid, signal.SIGKILL)
        churn.wait()
    assert not errors, errors[:5]
    assert len(counts) == CLIENTS * DUMPS
    assert daemon_pid() == pid
    rss1 = vmrss_kib(pid)
    print('%d dumps in %.1f s; daemon VmRSS %d -> %d KiB' % (len(counts), elapsed, rss0, rss1))
    assert rss1 < rss0 + 4096, 'daemon VmRSS grew from %d to %d KiB' % (rss0, rss1)
    assert answers(front)


# =================================================================================
# a client killed in the middle of a dump
# =================================================================================

CLIENT = r'''
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.write(fd, bytes.fromhex(sys.argv[2]))
data = os.read(fd, int(sys.argv[3]))
print(len(data), flush=True)
sys.stdin.read()
'''


def stable(fn, pid):
    """@fn(pid) once two readings 0.1 s apart agree."""
    last = fn(pid)
    for _ in range(100):
        time.sleep(0.1)
        now = fn(pid)
        if now == last:
            return now
        last = now
    raise AssertionError('%s of the daemon does not settle' % fn.__name__)


def kill_mid_dump(front, i):
    """A client that writes a request, reads once and is SIGKILLed; checks
    that the daemon held the transaction's iterator meanwhile."""
    pid = daemon_pid()
    show = (BASE, ALL_GROUPS | wire.SHOW_VMA)[i % 2]
    size = (2 * MSG_BASE, 16384)[i % 2]
    p = subprocess.Popen([PY, '-c', CLIENT, front, request(wire.DUMP_ALL_THREAD, 0, show, i).hex(),
                          str(size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert int(p.stdout.readline()) > 0                # after the first read
        before = fd_count(pid)
    finally:
        p.kill()
        p.wait()
        p.stdin.close()
        p.stdout.close()
    return before


def test_client_killed_mid_dump_leaks_nothing(front):
    pid = daemon_pid()
    for i in range(10):                 # warm-up: the daemon's threads and arenas
        kill_mid_dump(front, i)
    base = stable(fd_count, pid)
    rss0 = stable(vmrss_kib, pid)
    for i in range(20):
        # the transaction holds its iterator's descriptor while open ...
        assert kill_mid_dump(front, i) > base
        # ... and the release of the killed client's file frees it
        wait_for(lambda: fd_count(pid) == base, 'the daemon to free the transaction', 10)
    assert daemon_pid() == pid
    assert answers(front)
    assert stable(fd_count, pid) == base
    rss1 = stable(vmrss_kib, pid)
    assert rss1 < rss0 + 2048, 'daemon VmRSS grew from %d to %d KiB' % (rss0, rss1)
