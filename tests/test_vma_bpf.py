"""VMA records from the BPF programs against /proc/PID/maps, line by line.

The processes are built here (anonymous, private and shared file
mappings, a deleted file, memfd, PROT_NONE guards, [heap], [stack],
[anon:NAME] where the kernel has it, 20,000 mappings) and stopped while
compared, [vsyscall] included: the gate area is no VMA the iterator
visits, the loader hands its line to the programs.
"""
import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import threading

import pytest

from task_diag import wire
from task_diag.bpf_backend import vma_supported

from helpers import need
from helpers.vma import maps_lines, vma_lines

SHOW = wire.SHOW_BASE | wire.SHOW_CRED | wire.SHOW_VMA | wire.SHOW_STAT
MAX_MSG = 32 * 1024

CHILD = textwrap.dedent(r'''
    import ctypes, mmap, os, sys, tempfile
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.sbrk.restype = ctypes.c_void_p
    libc.sbrk.argtypes = [ctypes.c_long]
    PAGE = mmap.PAGESIZE
    keep = []
    n = int(sys.argv[1])
    d = sys.argv[2]
    # files: private and shared, one deleted, a memfd
    for name, flags in (('priv', mmap.MAP_PRIVATE), ('shared', mmap.MAP_SHARED),
                        ('gone', mmap.MAP_SHARED)):
        path = os.path.join(d, name)
        with open(path, 'wb') as f:
            f.write(b'x' * 4 * PAGE)
        fd = os.open(path, os.O_RDWR)
        keep.append(mmap.mmap(fd, 2 * PAGE, flags=flags, offset=PAGE))
        os.close(fd)
    os.unlink(os.path.join(d, 'gone'))
    mfd = os.memfd_create('td-memfd')
    os.ftruncate(mfd, 2 * PAGE)
    keep.append(mmap.mmap(mfd, 2 * PAGE, flags=mmap.MAP_SHARED))
    # guard pages around anonymous memory
    base = libc.mmap(None, 5 * PAGE, 0, 0x22, -1, 0)
    libc.mprotect(ctypes.c_void_p(base + PAGE), 3 * PAGE, 3)
    # a named anonymous mapping, where the kernel has CONFIG_ANON_VMA_NAME
    anon = libc.mmap(None, 2 * PAGE, 3, 0x22, -1, 0)
    name = ctypes.create_string_buffer(b'td-name')
    libc.prctl(0x53564d41, 0, ctypes.c_ulong(anon), 2 * PAGE, name)
    # the heap
    libc.sbrk(64 * PAGE)
    # many mappings that cannot merge: alternate protections
    if n:
        big = libc.mmap(None, 2 * n * PAGE, 3, 0x22, -1, 0)
        for i in range(0, 2 * n, 2):
            libc.mprotect(ctypes.c_void_p(big + i * PAGE), PAGE, 1)
    sys.stdout.write('ready\n')
    sys.stdout.flush()
    sys.stdin.read()
''')


@pytest.fixture
def backend(vma_backend):
    return vma_backend


def spawn(tmp_path, n=0):
    p = subprocess.Popen([sys.executable, '-c', CHILD, str(n), str(tmp_path)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.readline() == b'ready\n'
    os.kill(p.pid, signal.SIGSTOP)
    return p


def finish(p):
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


def messages(raw):
    """[(pid, tgid, flags, length)] of every message."""
    out, off = [], 0
    while off < len(raw):
        length, = struct.unpack_from('=I', raw, off)
        pid, tgid, flags = struct.unpack_from('=III', raw, off + 16)
        out.append((pid, tgid, flags, length))
        off += (length + 3) & ~3
    return out


def check_messages(raw):
    msgs = messages(raw)
    assert all(m[3] <= MAX_MSG for m in msgs)
    for a, b in zip(msgs, msgs[1:]):
        if a[2] & wire.TASK_DIAG_FLAG_CONT:
            assert (a[0], a[1]) == (b[0], b[1])
    assert not msgs or not msgs[-1][2] & wire.TASK_DIAG_FLAG_CONT
    return msgs


def test_one_matches_maps(backend, tmp_path):
    p = spawn(tmp_path)
    try:
        raw = backend.raw(wire.DUMP_ONE, p.pid, SHOW)
        check_messages(raw)
        (task,) = wire.iter_decode(raw)
        assert task.base is not None and task.cred is not None and task.stat is not None
        got, want = vma_lines(task.vmas), maps_lines(p.pid)
        assert got == want
        names = {n for _, n in want}
        assert '[heap]' in names and '[stack]' in names and '[vdso]' in names
        assert str(tmp_path / 'gone') + ' (deleted)' in names
        assert '/memfd:td-memfd (deleted)' in names
    finally:
        finish(p)


def test_many_mappings(backend, tmp_path):
    p = spawn(tmp_path, 20000)
    try:
        raw = backend.raw(wire.DUMP_ONE, p.pid, SHOW)
        msgs = check_messages(raw)
        assert len(msgs) > 1 and all(m[0] == p.pid for m in msgs)
        (task,) = wire.iter_decode(raw)
        assert task.stat is not None
        want = maps_lines(p.pid)
        assert len(want) > 20000
        assert vma_lines(task.vmas) == want
    finally:
        finish(p)


@pytest.mark.parametrize('strategy', [wire.DUMP_ALL, wire.DUMP_ALL_THREAD, wire.DUMP_CHILDREN])
def test_dumps_with_a_big_task(backend, tmp_path, strategy):
    """A task that takes several program runs in the middle of a dump."""
    p = spawn(tmp_path, 20000)
    try:
        pid = os.getpid() if strategy == wire.DUMP_CHILDREN else 0
        raw = backend.raw(strategy, pid, SHOW)
        check_messages(raw)
        decoded = list(wire.iter_decode(raw))
        tasks = {t.pid: t for t in decoded}
        # Reads end before a task whose VMAs would not fit (or overflow
        # and show it again): each task once, whole.
        assert len(tasks) == len(decoded)
        assert p.pid in tasks
        assert vma_lines(tasks[p.pid].vmas) == maps_lines(p.pid)
        for t in tasks.values():
            if t.pid != t.tgid:
                assert not t.vmas, 'thread %d carries VMAs' % t.pid
    finally:
        finish(p)


def test_threads_and_kernel_threads(backend):
    raw = backend.raw(wire.DUMP_ALL_THREAD, 0, wire.SHOW_BASE | wire.SHOW_VMA)
    check_messages(raw)
    for t in wire.iter_decode(raw):
        if t.pid != t.tgid:
            assert not t.vmas
        elif t.pid == 2 or (t.base and t.base.ppid == 2):
            assert not t.vmas, 'kernel thread %d carries VMAs' % t.pid


def test_thread_dump_of_self(backend):
    raw = backend.raw(wire.DUMP_THREAD, os.getpid(), wire.SHOW_VMA)
    check_messages(raw)
    tasks = list(wire.iter_decode(raw))
    leader = [t for t in tasks if t.pid == os.getpid()]
    assert leader and leader[0].vmas
    assert all(not t.vmas for t in tasks if t.pid != os.getpid())


def test_vma_stat_from_smaps_through_bpf():
    """VMA_STAT through the BPF backend: the programs decide who sees which
    task, each record's statistics come from the task's smaps: the same
    bytes as the /proc backend, for a stopped process."""
    import task_diag
    from task_diag import wire
    p = subprocess.Popen(['sleep', '1000'])
    try:
        os.kill(p.pid, signal.SIGSTOP)
        show = wire.SHOW_BASE | wire.SHOW_VMA | wire.SHOW_VMA_STAT | wire.SHOW_STAT
        for attempt in range(5):        # shared pages' Pss moves as others map them
            got = task_diag.raw(wire.DUMP_ONE, p.pid, show, source='bpf')
            want = task_diag.raw(wire.DUMP_ONE, p.pid, show, source='proc')
            if got == want:
                break
        assert got == want
        (task,) = wire.decode(got)
        assert task.vmas[-1].name == '[vsyscall]'
        assert all(v.stat is not None for v in task.vmas)
        assert sum(v.stat.resident for v in task.vmas) > 0
    finally:
        p.kill()
        p.wait()


# --- names: the escape of seq_path(), and the file-name cache -----------------

NAMES_CHILD = textwrap.dedent(r'''
    import ctypes, mmap, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    PAGE = mmap.PAGESIZE
    n = int(sys.argv[1])
    memfd = os.fsencode(sys.argv[2])
    keep = []
    for path in sys.argv[3:]:          # two VMAs per file: text-like, then data-like
        fd = os.open(os.fsencode(path), os.O_RDONLY)
        keep.append(mmap.mmap(fd, PAGE, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ))
        keep.append(mmap.mmap(fd, PAGE, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ))
        os.close(fd)
    if memfd:
        mfd = os.memfd_create(memfd)
        os.ftruncate(mfd, PAGE)
        keep.append(mmap.mmap(mfd, PAGE))
    if n:                              # n more VMAs: alternate protections
        big = libc.mmap(None, n * PAGE, 3, 0x22, -1, 0)
        for i in range(0, n, 2):
            libc.mprotect(ctypes.c_void_p(big + i * PAGE), PAGE, 1)
    sys.stdout.write('ready\n')
    sys.stdout.flush()
    sys.stdin.read()
''')


def spawn_names(paths, memfd=b'', n=0):
    p = subprocess.Popen([sys.executable, '-c', NAMES_CHILD, str(n), os.fsdecode(memfd)]
                         + [os.fsdecode(x) for x in paths],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.readline() == b'ready\n'
    os.kill(p.pid, signal.SIGSTOP)
    return p


PAGE_SIZE = os.sysconf('SC_PAGE_SIZE')


def make_file(path):
    with open(path, 'wb') as f:
        f.write(b'x' * 2 * PAGE_SIZE)
    return path


# show_vma_header_prefix() ends where the name would start if it were not
# padded to column 73 (seq_pad): every byte after the padding is the name.
_MAPS_HEAD = re.compile(rb'^([0-9a-f]+-[0-9a-f]+ \S{4} [0-9a-f]+ [0-9a-f]+:[0-9a-f]+ \d+) ?')


def maps_names(pid):
    """[(start, name bytes)] of each /proc/PID/maps line: the last column
    exactly, b'' for none."""
    with open('/proc/%d/maps' % pid, 'rb') as f:
        data = f.read()
    out = []
    for line in data.split(b'\n')[:-1]:
        m = _MAPS_HEAD.match(line)
        assert m, line
        name = line[m.end():].lstrip(b' ')
        out.append((int(line.split(b'-', 1)[0], 16), name))
    return out


def record_names(raw, pid):
    """[(start, name bytes)] of task @pid's VMA records in the response @raw,
    read from the records themselves (no decoder): the name up to its NUL."""
    out = []
    for _, (mpid, _, _), attrs in wire.iter_messages(raw):
        if mpid != pid:
            continue
        for nla_type, a, end in attrs:
            if nla_type != wire.TASK_DIAG_VMA:
                continue
            while a < end:
                rec = dict(zip(wire.VMA.names, wire.VMA.struct.unpack_from(raw, a)))
                name = b''
                if rec['name_len']:
                    name = raw[a + rec['name_off']:a + rec['name_off'] + rec['name_len']]
                    assert name.endswith(b'\0') and b'\0' not in name[:-1], name
                    name = name[:-1]
                out.append((rec['start'], name))
                a += rec['vma_len']
    return out


def dump_raw(source, pid):
    import task_diag
    return task_diag.raw(wire.DUMP_ONE, pid, wire.SHOW_BASE | wire.SHOW_VMA, source=source)


def test_names_escaped_as_maps(source, tmp_path):
    """seq_path(m, path, "\\n"): a newline of a file's name is "\\012" in
    maps, a backslash or a space is itself; the records' names are the maps
    column byte for byte, whichever backend, cached or not: a name of more
    than 256 bytes with newlines is escaped outside the cache, a memfd's
    name (" (deleted)", d_path of an unlinked dentry) as well."""
    deep = tmp_path / ('d' * 200) / ('e\n' * 40)
    deep.mkdir(parents=True)
    files = [make_file(tmp_path / name) for name in
             ('new\nline', 'back\\slash and space', '\n\ntwo\nand\\012 \n', 'plain')]
    files.append(make_file(deep / 'long\nname'))
    if source == 'bpf':
        need(vma_supported(), 'the kernel lacks the open-coded VMA iterator')
    p = spawn_names(files, memfd=b'mem\nfd')
    try:
        got = record_names(dump_raw(source, p.pid), p.pid)
        want = maps_names(p.pid)
        assert got == want
        names = {name for _, name in want}
        t = os.fsencode(tmp_path)
        assert t + b'/new\\012line' in names
        assert t + b'/back\\slash and space' in names
        assert t + b'/\\012\\012two\\012and\\012 \\012' in names
        assert t + b'/plain' in names
        assert b'/memfd:mem\\012fd (deleted)' in names
        long_name = os.fsencode(deep / 'long\nname').replace(b'\n', b'\\012')
        assert len(long_name) > 256 and long_name in names
    finally:
        finish(p)


def test_rename_and_delete_show_in_the_next_dump(backend, tmp_path):
    """A name is never taken from an earlier dump: a rename of the file or of
    a directory above it, and a deletion, show in the very next dump, as in
    /proc/PID/maps."""
    (tmp_path / 'dir').mkdir()
    path = make_file(tmp_path / 'dir' / 'a')
    p = spawn_names([path])
    t = os.fsencode(tmp_path)

    def names():
        got = record_names(backend.raw(wire.DUMP_ONE, p.pid, wire.SHOW_VMA), p.pid)
        assert got == maps_names(p.pid)
        return {name for _, name in got}
    try:
        assert t + b'/dir/a' in names()
        assert t + b'/dir/a' in names()             # the same in a second dump
        os.rename(tmp_path / 'dir' / 'a', tmp_path / 'dir' / 'b')
        now = names()
        assert t + b'/dir/b' in now and t + b'/dir/a' not in now
        os.rename(tmp_path / 'dir', tmp_path / 'dir\nnew')
        now = names()
        assert t + b'/dir\\012new/b' in now and t + b'/dir/b' not in now
        os.unlink(tmp_path / 'dir\nnew' / 'b')
        now = names()
        assert t + b'/dir\\012new/b (deleted)' in now and t + b'/dir\\012new/b' not in now
    finally:
        finish(p)


@pytest.mark.parametrize('change', ['rename', 'unlink'])
def test_change_inside_one_dump(backend, tmp_path, change):
    """Two processes map the same file and land in different read()s of
    one iterator file, i.e. of one dump (each sends over 16 KiB, and a read
    returns at most 32 KiB).  Renamed or deleted between those reads, the
    file shows its new state in the second process's records: a name cached
    earlier in the dump is checked against the dentry before it is used."""
    path = make_file(tmp_path / 'shared')
    first, second = spawn_names([path], n=240), spawn_names([path], n=240)
    if second.pid < first.pid:          # the iterator goes in pid order
        first, second = second, first
    old = os.fsencode(path)
    new = old + b' (deleted)'
    if change == 'rename':
        new = os.fsencode(tmp_path / 'renamed\n').replace(b'\n', b'\\012')
    try:
        s = backend.stream(wire.DUMP_ALL, 0, wire.SHOW_BASE | wire.SHOW_VMA)
        chunks, changed = [], False
        try:
            while True:
                chunk = s.read(once=True)
                if not chunk:
                    break
                pids = {m[0] for m in messages(chunk)}
                assert not (first.pid in pids and second.pid in pids), \
                    'both processes in one read: the test proves nothing'
                chunks.append(chunk)
                if first.pid in pids and not changed:
                    if change == 'rename':
                        os.rename(path, tmp_path / 'renamed\n')
                    else:
                        os.unlink(path)
                    changed = True
        finally:
            s.close()
        raw = b''.join(chunks)
        check_messages(raw)
        for p in (first, second):
            size = sum(m[3] for m in messages(raw) if m[0] == p.pid)
            # one program run (TD_BUDGET), not continuation passes, which
            # read other iterator files
            assert 16 * 1024 < size < 28 * 1024, size
        a, b = record_names(raw, first.pid), record_names(raw, second.pid)
        assert changed and a and b
        assert [n for _, n in a].count(old) == 2
        assert [n for _, n in b].count(new) == 2
        assert b == maps_names(second.pid)
    finally:
        finish(first)
        finish(second)


def test_names_follow_the_reader_root(backend, tmp_path):
    """d_path() prints relative to the reader's root: a reader chrooted
    halfway through a dump (a child reading on from the same iterator file,
    on the same CPU, so that the cache is the same) sees the file it shares
    with the first reader under its own root, never a name the first reader
    cached."""
    root = tmp_path / 'root'
    root.mkdir()
    path = make_file(root / 'f')
    first, second = spawn_names([path], n=240), spawn_names([path], n=240)
    if second.pid < first.pid:
        first, second = second, first
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})
    s = backend.stream(wire.DUMP_ALL, 0, wire.SHOW_BASE | wire.SHOW_VMA)
    try:
        chunks = []
        while True:
            chunk = s.read(once=True)
            assert chunk, 'the dump ended before the first process'
            chunks.append(chunk)
            pids = {m[0] for m in messages(chunk)}
            assert second.pid not in pids
            if first.pid in pids:
                break
        rfd, wfd = os.pipe()
        child = os.fork()
        if not child:                   # reads on, chrooted
            try:
                os.close(rfd)
                backend._local = threading.local()
                backend._key()          # needs /proc: before chroot
                os.chroot(root)
                os.chdir('/')
                while True:
                    chunk = s.read(once=True)
                    os.write(wfd, struct.pack('=I', len(chunk)) + chunk)
                    if not chunk or second.pid in {m[0] for m in messages(chunk)}:
                        break
                os._exit(0)
            except BaseException:      # noqa: BLE001 (a forked child never returns)
                os._exit(1)
        os.close(wfd)
        with os.fdopen(rfd, 'rb') as f:
            data = f.read()
        assert os.waitpid(child, 0)[1] == 0
        off = 0
        while off < len(data):
            n, = struct.unpack_from('=I', data, off)
            chunks.append(data[off + 4:off + 4 + n])
            off += 4 + n
        raw = b''.join(chunks)
        a, b = record_names(raw, first.pid), record_names(raw, second.pid)
        assert [n for _, n in a].count(os.fsencode(path)) == 2
        assert [n for _, n in b].count(b'/f') == 2
        assert a == maps_names(first.pid)
    finally:
        s.close()
        os.sched_setaffinity(0, affinity)
        finish(first)
        finish(second)
