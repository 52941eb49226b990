"""Section 4 of the spec for VMA records: a reader gets the mappings only
of tasks it may see, with either VMA_STAT source.  Through /run/task-diag,
the one way a reader other than root asks for VMAs:

  - uid 65534 gets its own processes' VMAs and statistics, and no task,
    hence no mapping, of root's (DUMP_ALL), nothing for a root pid (ONE);
  - a reader in a new pid namespace gets VMA_STAT from either source (the
    smaps source finds its tasks in the daemon's /proc by the numbers the
    programs hand the daemon, ATTR_HOST_PID), equal to its own smaps read
    inside.
"""
import errno
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from task_diag import tdconfig, wire
from task_diag import lsm
from task_diag.front import service
from helpers import need
from helpers.ns import NOBODY, Procs, setpriv
from helpers.front import PY

SHOW = wire.SHOW_BASE | wire.SHOW_VMA | wire.SHOW_VMA_STAT

# Run as the reader: one request on the file, the answer as JSON.
READER = r'''
import json, os, sys
from task_diag import wire
from task_diag.procfs.maps import read_vmas
path, strategy, pid, show = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if pid == 0 and strategy == wire.DUMP_ONE:
    pid = os.getpid()
fd = os.open(path, os.O_RDWR)
os.write(fd, wire.encode_request(strategy, pid, show))
chunks, err = [], 0
try:
    while True:
        c = os.read(fd, 1 << 20)
        if not c:
            break
        chunks.append(c)
except OSError as e:
    err = e.errno
tasks = {}
for t in wire.decode(b''.join(chunks), show):
    tasks[t.pid] = {'vmas': [
        [v.start, v.end, v.name, list(v.stat) if v.stat else None] for v in t.vmas or []]}
own = [[v.start, v.end, list(v.stat)] for v in read_vmas('/proc/self', with_stat=True)]
print(json.dumps({'me': os.getpid(), 'err': err, 'tasks': tasks, 'own': own}))
'''


def reader(prefix, front, strategy, pid=0):
    r = subprocess.run(list(prefix) + [PY, '-c', READER, front, str(strategy), str(pid),
                                       str(SHOW)],
                       capture_output=True, text=True, timeout=120, cwd='/')
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def uid_of(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('Uid:'):
                return int(line.split()[1])


@pytest.fixture(params=['smaps', 'pagewalk'])
def source(request, vma_stat_source):
    vma_stat_source(request.param)
    return request.param


def test_nobody_gets_only_its_own_mappings(front, source):
    need(shutil.which('setpriv'), 'setpriv is needed')
    with Procs() as procs:
        root = procs.sleeper()
        mine = procs.sleeper(setpriv(NOBODY))
        got = reader(setpriv(NOBODY), front, wire.DUMP_ALL)
        assert got['err'] == 0
        tasks = {int(pid): t for pid, t in got['tasks'].items()}
        assert got['me'] in tasks and mine.pid in tasks and root.pid not in tasks
        assert os.getpid() not in tasks
        for pid, t in tasks.items():
            if pid != got['me']:
                assert uid_of(pid) == NOBODY, pid
        # its own process: every mapping, with statistics
        vmas = tasks[got['me']]['vmas']
        assert vmas and all(stat is not None for _, _, _, stat in vmas)
        assert len(tasks[mine.pid]['vmas']) > 5
        # a task it may not see is as a missing one: ESRCH (hidepid=invisible)
        one = reader(setpriv(NOBODY), front, wire.DUMP_ONE, root.pid)
        assert one['err'] == errno.ESRCH and one['tasks'] == {}
        one = reader(setpriv(NOBODY), front, wire.DUMP_ONE, mine.pid)
        assert list(one['tasks']) == [str(mine.pid)] and one['tasks'][str(mine.pid)]['vmas']


def test_pid_namespace_reader_gets_stats(front, source):
    need(shutil.which('unshare'), 'unshare is needed')
    got = reader(['unshare', '--pid', '--fork', '--mount-proc'], front, wire.DUMP_ONE)
    assert got['me'] == 1                   # numbered in its own namespace
    assert got['err'] == 0 and list(got['tasks']) == [str(got['me'])]
    walked = {(s, e): stat for s, e, _, stat in got['tasks'][str(got['me'])]['vmas']}
    own = {(s, e): stat for s, e, stat in got['own']}
    # smaps is read after the dump, while the reader ran on: a few of its
    # areas may have grown or split since; the rest may not differ
    common = set(walked) & set(own)
    assert len(common) >= 0.9 * len(own) and all(walked[k] for k in common)
    differ = [k for k in common if walked[k][:9] != own[k][:9]]
    assert len(differ) <= 3, differ


# In a new pid namespace: a stopped child with more mappings than one
# program run writes, then two sleepers with higher pids; a DUMP_ALL of
# BASE|VMA through the file: every pid it got, in order, and the child's
# VMAs against its maps.
BIG_READER = r'''
import json, os, signal, subprocess, sys
from task_diag import wire
path = sys.argv[1]
big = subprocess.Popen([sys.executable, '-c', """
import mmap, sys
keep = [mmap.mmap(-1, 4096, prot=mmap.PROT_READ | (mmap.PROT_WRITE if i % 2 else 0))
        for i in range(20000)]
print('ready', flush=True)
sys.stdin.read()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
assert big.stdout.readline() == b'ready\n'
os.kill(big.pid, signal.SIGSTOP)
sleepers = [subprocess.Popen(['sleep', '60']) for _ in range(2)]
try:
    show = wire.SHOW_BASE | wire.SHOW_VMA
    fd = os.open(path, os.O_RDWR)
    os.write(fd, wire.encode_request(wire.DUMP_ALL, 0, show))
    chunks = []
    while True:
        c = os.read(fd, 1 << 20)
        if not c:
            break
        chunks.append(c)
    tasks = list(wire.decode(b''.join(chunks), show))
    with open('/proc/%d/maps' % big.pid) as f:
        maps = [line.split()[0] for line in f]
    vmas = {t.pid: ['%x-%x' % (v.start, v.end) for v in t.vmas or []] for t in tasks}
    print(json.dumps({'big': big.pid, 'sleepers': [p.pid for p in sleepers],
                      'pids': [t.pid for t in tasks], 'ok': vmas.get(big.pid) == maps,
                      'maps': len(maps), 'got': len(vmas.get(big.pid, []))}))
finally:
    for p in sleepers + [big]:
        p.kill()
        p.wait()
'''


def test_pid_namespace_reader_with_a_big_task(front):
    """A reader in another pid namespace gets its continuation passes over
    every task (no per-task link in its namespace): the tasks after the
    big one come once (not again from the pass that finished it), and the
    passes end (before, each read of a pass after the first failed with
    EAGAIN: the reader got EAGAIN)."""
    need(shutil.which('unshare'), 'unshare is needed')
    r = subprocess.run(['unshare', '--pid', '--fork', '--mount-proc', PY, '-c', BIG_READER,
                        front], capture_output=True, text=True, timeout=120, cwd='/')
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert len(got['pids']) == len(set(got['pids'])), got['pids']
    assert got['big'] in got['pids'] and set(got['sleepers']) <= set(got['pids'])
    assert got['ok'] and got['maps'] > 20000, (got['got'], got['maps'])


TURNS_SETUID = r'''
import os, sys
print('ready', flush=True)
sys.stdin.readline()
os.execv(sys.argv[1], [sys.argv[1], '60'])
'''


def _suid_dir():
    """A directory on a file system that honours set-user-ID bits (/tmp may
    be mounted nosuid)."""
    for d in (tempfile.gettempdir(), '/var/tmp', os.path.dirname(os.path.abspath(__file__))):
        if not os.statvfs(d).f_flag & os.ST_NOSUID:
            return d
    pytest.fail('no directory here honours set-user-ID bits')


def _wait(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'timed out waiting for ' + what
        time.sleep(0.01)


def test_a_task_that_turns_setuid_before_its_smaps_is_read(front):
    """The programs let uid 65534 see its own process; before the daemon
    (root) reads that process's smaps, the process execs a setuid-root
    program, which /proc would now refuse 65534.  The daemon, paused there
    by its test hook, must leave the task out, not hand over what it read."""
    need(shutil.which('setpriv'), 'setpriv is needed')
    top = tempfile.mkdtemp(prefix='td-setuid-', dir=_suid_dir())
    pause = tempfile.mkdtemp(prefix='td-pause-')
    other = os.path.join(top, 'front')
    target = None
    try:
        os.chmod(top, 0o755)
        suid = os.path.join(top, 'suid-sleep')
        shutil.copy('/bin/sleep', suid)
        os.chown(suid, 0, 0)
        os.chmod(suid, 0o4755)
        r = subprocess.run([PY, '-c', 'import sys; from task_diag.front import service; '
                            'service.start_front(path=sys.argv[1])', other], capture_output=True,
                           text=True, timeout=60, env=dict(os.environ,
                                                           TASK_DIAG_TEST_PAUSE_DIR=pause))
        assert r.returncode == 0, r.stderr
        target = subprocess.Popen(setpriv(NOBODY) + [PY, '-c', TURNS_SETUID, suid],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd='/')
        assert target.stdout.readline() == b'ready\n'
        open(os.path.join(pause, 'pause-%d' % target.pid), 'w').close()
        reader_ = subprocess.Popen(setpriv(NOBODY) + [PY, '-c', READER, other,
                                                      str(wire.DUMP_ONE), str(target.pid),
                                                      str(SHOW)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   cwd='/')
        _wait(lambda: os.path.exists(os.path.join(pause, 'paused-%d' % target.pid)),
              'the daemon to reach the smaps read')
        target.stdin.write(b'go\n')
        target.stdin.flush()
        _wait(lambda: uid_of(target.pid) == NOBODY and euid_of(target.pid) == 0,
              'the setuid exec')
        os.unlink(os.path.join(pause, 'pause-%d' % target.pid))
        out, err = reader_.communicate(timeout=60)
        assert reader_.returncode == 0, err
        got = json.loads(out)
        assert (got['err'], got['tasks']) == (0, {})
        # as /proc would have it: 65534 may not read it any more
        r = subprocess.run(setpriv(NOBODY) + ['cat', '/proc/%d/smaps' % target.pid],
                           capture_output=True, text=True)
        assert r.returncode != 0 and 'Permission denied' in r.stderr
    finally:
        if target:
            target.kill()
            target.wait()
        service.stop_front(other)
        shutil.rmtree(top, ignore_errors=True)
        shutil.rmtree(pause, ignore_errors=True)


def euid_of(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('Uid:'):
                return int(line.split()[2])


CONFINED_READER = r'''
import ctypes, json, os, sys
from task_diag import wire
path, target = sys.argv[1], int(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)
attr = (ctypes.c_uint64 * 3)(1 << 10, 0, 0)         # handles LANDLOCK_ACCESS_FS_MAKE_SOCK only
fd = libc.syscall(444, attr, 8, 0)
assert fd >= 0 and not libc.prctl(38, 1, 0, 0, 0) and not libc.syscall(446, fd, 0), \
    ctypes.get_errno()
out = {}
try:                                                  # what /proc gives it now
    out['maps'] = [line.split()[0] for line in open('/proc/%d/maps' % target)]
    out['proc'] = 0
except OSError as e:
    out['proc'] = e.errno
for name, show in (('vma', wire.SHOW_BASE | wire.SHOW_VMA), ('base', wire.SHOW_BASE)):
    f = os.open(path, os.O_RDWR)
    os.write(f, wire.encode_request(wire.DUMP_ONE, target, show))
    try:
        data = b''.join(iter(lambda: os.read(f, 1 << 20), b''))
        tasks = list(wire.decode(data, show))
        out[name] = [0, [t.pid for t in tasks]]
        if name == 'vma':
            out['vmas'] = ['%x-%x' % (v.start, v.end) for t in tasks for v in t.vmas]
    except OSError as e:
        out[name] = [e.errno, []]
    os.close(f)
print(json.dumps(out))
'''


def test_a_landlock_confined_reader_gets_what_its_proc_gives(front):
    """A reader in a Landlock domain: where Landlock lets it read the maps of
    a process outside its domain (its ptrace hook refuses attaching, not
    reading, on 6.18), it gets that process's VMAs, as its /proc gives
    them; where Landlock refuses it, it gets no VMA (EACCES).  BASE either
    way.  task-diag-load measured which (td_config.landlock_off)."""
    need(lsm.landlock_abi() > 0, 'Landlock is not active on this kernel')
    off = tdconfig.read_pinned()['landlock_off']
    assert off, 'task-diag-load did not measure Landlock'
    with Procs() as procs:
        target = procs.sleeper()
        r = subprocess.run([PY, '-c', CONFINED_READER, front, str(target.pid)],
                           capture_output=True, text=True, timeout=60, cwd='/')
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)
        if off == lsm.LANDLOCK_READS:
            assert got['proc'] == 0                            # the oracle: /proc gives them
            assert got['vma'] == [0, [target.pid]]
            assert got['vmas'] == got['maps'] and got['maps']
        else:
            assert got['proc'] == errno.EACCES                 # the oracle: /proc refuses
            assert got['vma'] == [errno.EACCES, []]
        assert got['base'] == [0, [target.pid]]
