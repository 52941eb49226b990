"""Who sees what through /run/task-diag (spec section 4): the daemon
answers for the process that calls read() (FUSE's caller pid), with its
credentials and namespaces, not its own (root's).

  - a reader with uid 65534 sees only its own tasks;
  - a reader in a new pid namespace sees that namespace, with its pids;
  - a reader in a user namespace sees CRED ids mapped into it;
  - a dump handed over to another process (inherited over exec, or passed
    with SCM_RIGHTS) is refused with EPERM on read when that process has
    other credentials; with the same credentials it reads on; and whoever
    reads first is whom the dump answers for, not who wrote the request.
"""
import errno
import json
import os
import shutil
import signal
import socket
import subprocess

import pytest

from task_diag import wire
from helpers import ROOT, build_c, need
from helpers.ns import NOBODY, Procs, setpriv
from helpers.front import (BASE, CRED, MSG_BASE, PY, bpf_dump, check_reads, parse_td, td_errno, td_ok,
                        request, transact)

HERE = os.path.dirname(os.path.abspath(__file__))
CLONE_NEWUSER = 0x10000000


@pytest.fixture(scope='module')
def tools():
    for tool in ('setpriv', 'unshare'):
        need(shutil.which(tool), tool + ' is needed')


def td_as(td, prefix, *args):
    """td_dump under @prefix: (its pid, tasks by pid)."""
    p = subprocess.Popen(list(prefix) + [td] + [str(a) for a in args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd='/')
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    tasks, ends = parse_td(out)
    assert len(ends) == 1
    return p.pid, {t['pid']: t for t in tasks}


IDS = ('uid', 'euid', 'suid', 'fsuid')
GIDS = ('gid', 'egid', 'sgid', 'fsgid')


def ids(task):
    return ([task['cred.' + k] for k in IDS], [task['cred.' + k] for k in GIDS])


# --- uid 65534 -----------------------------------------------------------------------

def test_nobody_sees_only_its_own_tasks(td, front, tools):
    with Procs() as procs:
        mine = [procs.sleeper(setpriv(NOBODY)) for _ in range(2)]
        root = procs.sleeper()
        other = procs.sleeper(setpriv(NOBODY + 1000))
        pid, seen = td_as(td, setpriv(NOBODY), '-s', 'all_thread', '-g', 'base,cred')
        assert pid in seen and seen[pid]['base.comm'] == 'td_dump'
        for p in mine:
            assert p.pid in seen
        for p in (root, other):
            assert p.pid not in seen
        assert os.getpid() not in seen
        for t in seen.values():
            assert ids(t) == ([NOBODY] * 4, [NOBODY] * 4), t
        # root, through the same file, sees them all
        _, everything = td_as(td, (), '-s', 'all_thread')
        for p in mine + [root, other]:
            assert p.pid in everything


# --- a pid namespace -------------------------------------------------------------------

PIDNS = r'''
import json, os, subprocess, sys, time
td, outside = sys.argv[1], sys.argv[2]
sleeps = [subprocess.Popen(['sleep', '600']) for _ in range(2)]
for s in sleeps:
    while open('/proc/%d/comm' % s.pid).read().strip() != 'sleep':
        time.sleep(0.01)
listing = sorted(int(n) for n in os.listdir('/proc') if n.isdigit())
def run(*args):
    p = subprocess.Popen([td] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    out, err = p.communicate()
    return [p.pid, p.returncode, out, err]
out = {'me': os.getpid(), 'sleeps': [s.pid for s in sleeps], 'listing': listing,
       'all': run('-g', 'base'), 'outside': run('-s', 'one', '-p', outside),
       'children': run('-s', 'children', '-p', '1'), 'mounts': open('/proc/self/mounts').read()}
for s in sleeps:
    s.kill()
    s.wait()
print(json.dumps(out))
'''


def test_pid_namespace_reader(td, front, tools):
    r = subprocess.run(['unshare', '--pid', '--fork', '--mount-proc', PY, '-c', PIDNS, td,
                        str(os.getpid())], capture_output=True, text=True, timeout=120, cwd='/')
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert ' %s fuse' % front in got['mounts']                 # the file is there
    assert got['me'] == 1
    td_pid, rc, out, err = got['all']
    assert rc == 0, err
    tasks = {t['pid']: t for t in parse_td(out)[0]}
    assert set(tasks) == set(got['listing']) | {td_pid}       # that namespace, all of it
    assert tasks[1]['base.ppid'] == 0                          # its parent is outside
    for pid in got['sleeps'] + [td_pid]:
        assert tasks[pid]['base.ppid'] == 1 and tasks[pid]['tgid'] == pid
    assert max(tasks) < 100
    # a pid of the parent namespace names no task here
    _, rc, out, err = got['outside']
    assert rc == 1 and 'errno=%d ' % errno.ESRCH in err, (out, err)
    td_pid, rc, out, err = got['children']
    assert rc == 0, err
    assert {t['pid'] for t in parse_td(out)[0]} == set(got['sleeps']) | {td_pid}


# --- user namespaces -------------------------------------------------------------------

# Outside ids that nothing else on the machine uses.
OUT_ROOT, OUT_FIVE = 123450, 123455

USERNS = r'''
import ctypes, json, os, subprocess, sys, time
td = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000):
    raise OSError(ctypes.get_errno(), 'unshare(CLONE_NEWUSER)')
print('unshared', flush=True)
sys.stdin.readline()                    # the test wrote our uid_map and gid_map
os.setgroups([])
os.setresgid(0, 0, 0)
os.setresuid(0, 0, 0)
libc.prctl(4, 1, 0, 0, 0)               # PR_SET_DUMPABLE: setresuid() cleared it, and
                                        # our mm belongs to the initial user namespace
child = subprocess.Popen(['sleep', '600'], user=5, group=5, extra_groups=[], cwd='/')
while open('/proc/%d/comm' % child.pid).read().strip() != 'sleep':
    time.sleep(0.01)
p = subprocess.Popen([td, '-s', 'all_thread', '-g', 'base,cred'], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True, cwd='/')
out, err = p.communicate()
status = {}
for pid in (os.getpid(), child.pid):
    lines = dict(l.split(':', 1) for l in open('/proc/%d/status' % pid) if ':' in l)
    status[pid] = [[int(x) for x in lines['Uid'].split()], [int(x) for x in lines['Gid'].split()]]
print(json.dumps({'me': os.getpid(), 'child': child.pid, 'td': [p.pid, p.returncode, out, err],
                  'status': status}), flush=True)
sys.stdin.readline()                    # until the test looked from outside
child.kill()
child.wait()
'''


def test_user_namespace_cred_mapped(td, front, tools):
    child = None
    with Procs() as procs:
        p = procs.start([PY, '-c', USERNS, td], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE)
        try:
            assert p.stdout.readline() == b'unshared\n', p.stderr.read()
            for name in ('uid_map', 'gid_map'):
                with open('/proc/%d/%s' % (p.pid, name), 'w') as f:
                    f.write('0 %d 1\n5 %d 1\n' % (OUT_ROOT, OUT_FIVE))
            p.stdin.write(b'go\n')
            p.stdin.flush()
            line = p.stdout.readline()
            assert line, p.stderr.read()
            got = json.loads(line)
            me, child = got['me'], got['child']
            td_pid, rc, out, err = got['td']
            assert rc == 0, err
            tasks = {t['pid']: t for t in parse_td(out)[0]}
            # only the tasks of its user namespace (where it holds CAP_SYS_PTRACE)
            assert set(tasks) == {me, child, td_pid}
            # ids as that namespace numbers them, as its /proc shows them
            for pid in (me, child):
                uids, gids = got['status'][str(pid)]
                assert ids(tasks[pid]) == (uids, gids)
            assert ids(tasks[child]) == ([5] * 4, [5] * 4)
            assert ids(tasks[me]) == ([0] * 4, [0] * 4)
            assert ids(tasks[td_pid]) == ([0] * 4, [0] * 4)
            # and from outside, the same tasks with the ids of the initial namespace
            outside = bpf_dump(wire.DUMP_ONE, child, CRED)[child]
            assert ids(outside) == ([OUT_FIVE] * 4, [OUT_FIVE] * 4)
            outside = bpf_dump(wire.DUMP_ONE, me, CRED)[me]
            assert ids(outside) == ([OUT_ROOT] * 4, [OUT_ROOT] * 4)
        finally:
            if child is not None:
                try:
                    os.kill(child, signal.SIGKILL)  # the helper reaps it, or init does
                except ProcessLookupError:
                    pass
            if p.poll() is None:
                p.stdin.write(b'done\n')
                p.stdin.flush()
                p.wait(timeout=10)


def test_map_root_user_reader(td, front, tools):
    """unshare --user --map-root-user run by nobody: root inside, 65534 outside."""
    pid, seen = td_as(td, setpriv(NOBODY) + ['unshare', '--user', '--map-root-user'],
                      '-s', 'all', '-g', 'base,cred')
    assert ids(seen[pid]) == ([0] * 4, [0] * 4)
    for t in seen.values():
        # other tasks of uid 65534 (outside the namespace) map to no id in it
        assert t['pid'] == pid or ids(t) == ([NOBODY] * 4, [NOBODY] * 4)


# --- a dump handed to another process ---------------------------------------------------

READER = r'''
import json, os, socket, sys
how, arg = sys.argv[1], int(sys.argv[2])
if how == 'inherit':
    fd = arg
else:
    s = socket.socket(fileno=arg)
    _, fds, _, _ = socket.recv_fds(s, 16, 1)
    fd = fds[0]
reads = []
try:
    while True:
        data = os.read(fd, 1 << 16)
        if not data:
            break
        reads.append(data.hex())
    print(json.dumps({'reads': reads}))
except OSError as e:
    print(json.dumps({'errno': e.errno, 'reads': reads}))
'''


def hand_over(fd, how, prefix=()):
    """Runs READER under @prefix with @fd, inherited or passed with
    SCM_RIGHTS; what it read."""
    if how == 'inherit':
        r = subprocess.run(list(prefix) + [PY, '-c', READER, how, str(fd)], pass_fds=(fd,),
                           capture_output=True, text=True, timeout=60, cwd='/')
    else:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            p = subprocess.Popen(list(prefix) + [PY, '-c', READER, how, str(theirs.fileno())],
                                 pass_fds=(theirs.fileno(),), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, cwd='/')
            theirs.close()
            socket.send_fds(ours, [b'x'], [fd])
            out, err = p.communicate(timeout=60)
            r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
        finally:
            ours.close()
            theirs.close()
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    got['reads'] = [bytes.fromhex(h) for h in got['reads']]
    return got


@pytest.mark.parametrize('how', ['inherit', 'scm_rights'])
def test_other_credentials_eperm(fd, family, tools, how):
    os.write(fd, request(wire.DUMP_THREAD, family.pid, BASE, 7))
    first = os.read(fd, MSG_BASE)
    got = hand_over(fd, how, setpriv(NOBODY))
    assert got == {'errno': errno.EPERM, 'reads': []}
    # The foreign reader's EPERM leaves the owner's dump alone: it reads on
    # to the end, every thread once, then 0, then a new request is taken.
    rest = b''
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        rest += chunk
    assert sorted(t.pid for t in wire.decode(first + rest)) == family.tids
    _, tasks = transact(fd, request(wire.DUMP_THREAD, family.pid, BASE, 8))
    assert sorted(t.pid for t in tasks) == family.tids
    assert len(first) == MSG_BASE


@pytest.mark.parametrize('how', ['inherit', 'scm_rights'])
def test_same_credentials_read_on(fd, family, how):
    os.write(fd, request(wire.DUMP_THREAD, family.pid, BASE, 9))
    first = os.read(fd, MSG_BASE)
    got = hand_over(fd, how)
    assert 'errno' not in got
    msgs = check_reads([first] + got['reads'], 9)
    assert sorted(m[1][0] for m in msgs) == family.tids
    assert os.read(fd, 1 << 16) == b''          # the other process read it to its end


def test_first_reader_is_whom_it_answers_for(fd, family, tools):
    """Written by root, first read by nobody: nobody's answer."""
    os.write(fd, request(wire.DUMP_ALL_THREAD, 0, BASE | CRED, 10))
    got = hand_over(fd, 'inherit', setpriv(NOBODY))
    assert 'errno' not in got
    tasks = list(wire.iter_decode(b''.join(got['reads'])))
    assert tasks and family.pid not in {t.pid for t in tasks}
    assert os.getpid() not in {t.pid for t in tasks}
    for t in tasks:
        assert (t.cred.uid, t.cred.euid, t.cred.fsuid, t.cred.gid) == (NOBODY,) * 4
    # root, reading the same request on another descriptor, sees everything
    _, mine = transact(fd, request(wire.DUMP_ALL_THREAD, 0, BASE, 11))
    assert set(family.tids) <= {t.pid for t in mine}


# --- the original selftests (_run.sh) in a new pid and mount namespace -----------------

SELFTEST = r'''
import json, os, subprocess, sys
td, fork, names, tmp = sys.argv[1:5]
def run(*args):
    p = subprocess.run([td] + [str(a) for a in args], capture_output=True, text=True,
                       errors='surrogateescape')
    return [p.returncode, p.stdout, p.stderr]
def start(*args):
    p = subprocess.Popen(list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().startswith('ready')
    return p
load = start(fork, '1000', '10')                # 1000 processes x 10 threads
one = start(fork, '1', '1234')                  # a process of 1234 threads
one_child = int(open('/proc/%d/task/%d/children' % (one.pid, one.pid)).read().split()[0])
work = start(sys.executable, names, tmp)        # every kind of VMA name
out = {'me': os.getpid(), 'fork': load.pid, 'one': one_child, 'work': work.pid,
       'all': run('-s', 'all', '-g', 'base,vma'),                      # all --maps
       'All': run('-s', 'all_thread', '-g', 'base,cred,vma_stat'),     # All --smaps --cred
       'children': run('-s', 'children', '-p', load.pid),
       'one_cred': run('-s', 'one', '-p', 1, '-g', 'base,cred'),
       'thread': run('-s', 'thread', '-p', one_child, '-g', 'base,cred,vma_stat'),
       'maps': run('-s', 'one', '-p', work.pid, '-g', 'vma', '-m'),
       'want': open('/proc/%d/maps' % work.pid, 'rb').read().decode('utf-8', 'surrogateescape')}
for p in (load, one, work):
    p.terminate() if p is not work else p.kill()
    p.wait()
print(json.dumps(out))
'''


@pytest.fixture(scope='module')
def fork_tool(tmp_path_factory):
    """bench/fork.c, the original selftests' load generator, built."""
    return build_c(os.path.join(ROOT, 'bench', 'fork.c'),
                   str(tmp_path_factory.mktemp('fork') / 'fork'), '-O2', '-Wall', '-Werror',
                   '-pthread')


def test_original_selftests_in_a_pid_namespace(td, front, tools, fork_tool, tmp_path):
    """What the original's run.sh did (unshare -p -f -m --mount-proc, then
    task_diag_all all --maps, All --smaps --cred, children, one --cred, and
    thread --maps --cred --smaps of a 1234-thread process), with td_dump on
    /run/task-diag and the default load: every task, every thread, no error;
    and the VMA lines of a process with every kind of name equal to its maps
    as read in that namespace."""
    os.chmod(tmp_path, 0o755)
    r = subprocess.run(['unshare', '-p', '-f', '-m', '--mount-proc', PY, '-c', SELFTEST, td,
                        fork_tool, os.path.join(HERE, 'helpers', 'names.py'), str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd='/')
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got['me'] == 1
    results = {}
    for name in ('all', 'All', 'children', 'one_cred', 'thread', 'maps'):
        rc, out, err = got[name]
        assert (rc, err) == (0, ''), (name, err)
        results[name] = out
    tasks = lambda name: parse_td('\n'.join(  # noqa: E731 (td_dump's task lines only)
        line for line in results[name].splitlines() if not line.startswith('vma')))[0]
    forks = [t for t in tasks('all') if t['base.comm'] == 'fork']
    assert len(forks) == 1000 + 1 + 2            # the load, its parent, one's parent and child
    assert all(t['vma.count'] > 5 for t in forks)
    threads = [t for t in tasks('All') if t['base.comm'] == 'fork']
    assert len(threads) == 1000 * 10 + 1 + 1 + 1234
    assert all(('vma.count' in t) == (t['pid'] == t['tgid']) for t in threads)
    assert all(t['vma.count'] > 5 for t in threads if t['pid'] == t['tgid'])
    children = tasks('children')
    assert len(children) == 1000 and all(t['base.ppid'] == got['fork'] for t in children)
    (init,) = tasks('one_cred')
    assert init['pid'] == 1 and init['cred.uid'] == 0
    thread = tasks('thread')
    assert len(thread) == 1234 and {t['tgid'] for t in thread} == {got['one']}
    stats = [line for line in results['All'].splitlines() if line.startswith('vma_stat ')]
    assert not stats                              # no -m there; the counts say enough
    lines = [line.split(' ', 2)[2] for line in results['maps'].splitlines()
             if line.startswith('vma ')]
    want = got['want'].splitlines()
    # maps pads the inode column to align names; td_dump prints one space
    assert [' '.join(line.split(None, 5)) for line in lines] == \
           [' '.join(line.split(None, 5)) for line in want]
    assert any('/ovl/merged/from lower' in line for line in lines)


def test_a_hidden_pid_answers_as_a_missing_one(td, front, tools):
    """ONE, THREAD and CHILDREN of a pid the reader may not see give ESRCH,
    as for a pid that does not exist (hidepid=invisible): that it exists is
    itself something /proc would not tell."""
    with Procs() as procs:
        hidden = procs.sleeper()                    # root's
        mine = procs.sleeper(setpriv(NOBODY))
        missing = 4194304 - 3
        for strategy in ('one', 'thread', 'children'):
            for pid in (hidden.pid, missing):
                assert td_errno(td, '-s', strategy, '-p', pid,
                                prefix=setpriv(NOBODY)) == errno.ESRCH, (strategy, pid)
            # and a pid it may see is answered
            tasks, _ = td_ok(td, '-s', 'one' if strategy == 'children' else strategy, '-p',
                             mine.pid, prefix=setpriv(NOBODY))
            assert [t['pid'] for t in tasks] == [mine.pid]


# --- a dump handed over: its first reader gone, its pid given to another ----------------

HANDOVER = r'''
import json, os, sys
from task_diag import wire
path, uid, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fd = os.open(path, os.O_RDWR)
os.write(fd, wire.encode_request(wire.DUMP_ALL, 0, wire.SHOW_BASE))

def child(body):
    pid = os.fork()
    if pid == 0:
        try:
            body()
        finally:
            os._exit(0)
    return pid

def first_read():
    os.read(fd, 16 * 1024)          # the dump now answers for root
    if mode == 'exec':
        os.execv('/bin/sleep', ['sleep', '30'])
r = child(first_read)
if mode == 'exec':
    import time
    while open('/proc/%d/comm' % r).read().strip() != 'sleep':
        time.sleep(0.01)
else:
    os.waitpid(r, 0)

rd, wr = os.pipe()
def finish():
    try:
        if uid:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        data = b''.join(iter(lambda: os.read(fd, 1 << 20), b''))
        out = {'err': 0, 'pids': [t.pid for t in wire.decode(data, wire.SHOW_BASE)]}
    except OSError as e:
        out = {'err': e.errno, 'pids': []}
    os.write(wr, json.dumps(out).encode())
for attempt in range(200):          # the reader's pid to the next process, as an attacker would
    if mode != 'exec':
        with open('/proc/sys/kernel/ns_last_pid', 'w') as f:
            f.write(str(r - 1))
    c = os.fork()
    if c == 0:
        if mode == 'exec' or os.getpid() == r:
            finish()
        os._exit(0)
    os.waitpid(c, 0)
    if mode == 'exec' or c == r:
        break
else:
    sys.exit('could not get pid %d again' % r)
os.close(wr)
got = json.loads(os.read(rd, 1 << 20))
if mode == 'exec':
    os.kill(r, 9)
    os.waitpid(r, 0)
got['reused'] = mode == 'exec' or c == r
print(json.dumps(got))
'''


@pytest.mark.parametrize('uid,mode', [(NOBODY, 'exit'), (0, 'exit'), (0, 'exec')],
                         ids=['nobody-gets-the-pid', 'root-gets-the-pid', 'first-reader-execs'])
def test_dump_of_a_reader_gone_is_not_finished_by_another(front, uid, mode):
    """A request read first by a root process, which then exits (its pid
    given to the next process, forced through ns_last_pid) or execs another
    program: whoever reads on, other credentials or the same, gets EPERM
    and none of the answer, which stays root's."""
    r = subprocess.run([PY, '-c', HANDOVER, front, str(uid), mode], capture_output=True,
                       text=True, timeout=120, cwd='/')
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got['reused']
    assert (got['err'], got['pids']) == (errno.EPERM, [])


# --- one user cannot take the daemon's descriptors -------------------------------------

HOLDER = r'''
import errno, os, sys
from task_diag import wire
path, want = sys.argv[1], int(sys.argv[2])
held, refused = [], None
for i in range(want):
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as e:
        refused = e.errno
        break
    os.write(fd, wire.encode_request(wire.DUMP_ALL_THREAD, 0, wire.SHOW_BASE))
    os.read(fd, 64 * 1024)          # started: the daemon holds an iterator for it
    held.append(fd)
print(len(held), refused, flush=True)
sys.stdin.read()
'''


def test_one_user_cannot_starve_the_others(td, front, tools):
    """uid 65534 opens and starts as many dumps as it can, from two
    processes: it gets its share (task_diag.front.daemon.PER_USER) and EMFILE
    after, and root's dump goes through meanwhile."""
    from task_diag.front.daemon import PER_USER
    holders = []
    try:
        for _ in range(2):
            holders.append(subprocess.Popen(setpriv(NOBODY) + [PY, '-c', HOLDER, front, '1000'],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            text=True, cwd='/'))
        counts = []
        for h in holders:
            n, refused = h.stdout.readline().split()
            counts.append(int(n))
            assert refused == str(errno.EMFILE)
        assert sum(counts) == PER_USER
        tasks, _ = td_ok(td, '-s', 'all')               # root, through the file, meanwhile
        assert {h.pid for h in holders} <= {t['pid'] for t in tasks}
    finally:
        for h in holders:
            h.kill()
            h.wait()
