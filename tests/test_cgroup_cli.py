"""task-diag ps --cgroup, ps -o (CGROUP, CGROUPID and the namespace
columns) and task-diag cgtop, against /proc and the cgroup files, on
stopped processes in a test-owned cgroup subtree (their numbers hold
still between the command and the check)."""
import json
import os
import subprocess
import sys

import pytest

from task_diag import cli

from helpers import PY, need
from helpers.cgroups import CgroupTree
from helpers.procs import wait_states

PAGE = os.sysconf('SC_PAGE_SIZE')
BURN = r'''
import os, threading, time
def spin():
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
workers = [threading.Thread(target=spin) for _ in range(2)]
for w in workers: w.start()
for w in workers: w.join()
blob = bytearray(8 << 20)
for i in range(0, len(blob), 4096): blob[i] = 1
threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()
os.kill(os.getpid(), 19)        # SIGSTOP: stopped, with its numbers
time.sleep(1000)
'''


@pytest.fixture
def source(every_source):
    """Every backend, the front's file included (conftest's every_source)."""
    return every_source


@pytest.fixture(scope='module')
def tree():
    """svc/{web, db}: two stopped workers in web (each burned CPU, holds
    8 MiB, has a second thread), one in db; removed at the end."""
    need(os.geteuid() == 0, 'making cgroups needs root')
    with CgroupTree() as t:
        for rel in ('svc', 'svc/web', 'svc/db'):
            t.mkdir(rel)
        t.workers = {'svc/web': [t.spawn('svc/web', [PY, '-c', BURN]) for _ in range(2)],
                     'svc/db': [t.spawn('svc/db', [PY, '-c', BURN])]}
        for procs in t.workers.values():
            for p in procs:
                wait_states(p.pid, 'T')
        yield t


def run(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def proc_stat(pid):
    data = open('/proc/%d/stat' % pid, 'rb').read()
    f = data[data.rindex(b')') + 2:].split()
    return int(f[11]) + int(f[12]), int(f[17])          # utime + stime, threads


def rss(pid):
    return int(open('/proc/%d/statm' % pid).read().split()[1]) * PAGE


def proc_cgroup(pid):
    return [line[3:] for line in open('/proc/%d/cgroup' % pid).read().splitlines()
            if line.startswith('0::')][0]


def all_workers(tree, under='svc'):
    return [p for rel, procs in tree.workers.items() if rel.startswith(under) for p in procs]


def test_ps_o_columns(tree, source, capsys):
    cols = 'pid,ppid,stat,cgroup,cgroupid,netns,pidns,mntns,userns,nlwp,rss,args'
    out = run(['--source', source, 'ps', '-o', cols, '--cgroup', tree.path('svc')], capsys)
    lines = out.splitlines()
    assert lines[0].split() == ['PID', 'PPID', 'STAT', 'CGROUP', 'CGROUPID', 'NETNS', 'PIDNS',
                                'MNTNS', 'USERNS', 'NLWP', 'RSS', 'COMMAND']
    rows = {int(r.split()[0]): r.split(None, 11) for r in lines[1:]}
    assert set(rows) == {p.pid for p in all_workers(tree)} == tree.listed('svc')
    for p in all_workers(tree):
        r = rows[p.pid]
        assert r[1] == str(os.getpid()) and r[2] == 'T'
        assert r[3] == proc_cgroup(p.pid)
        assert int(r[4]) == os.stat(tree.mount + r[3]).st_ino
        for i, ns in ((5, 'net'), (6, 'pid'), (7, 'mnt'), (8, 'user')):
            assert int(r[i]) == os.stat('/proc/%d/ns/%s' % (p.pid, ns)).st_ino
        assert int(r[9]) == proc_stat(p.pid)[1] == 2
        assert int(r[10]) * 1024 == rss(p.pid)
        assert r[11] == '%s -c %s' % (PY, BURN.replace('\n', ' '))      # as ps -o args: newlines are spaces


def test_ps_formats_filtered(tree, source, capsys):
    """The plain and -f formats with --cgroup: the processes of db only
    (by id here); with --threads, their threads."""
    db = os.stat(tree.path('svc/db')).st_ino
    want = {p.pid for p in tree.workers['svc/db']}
    out = run(['--source', source, 'ps', '--cgroup', str(db)], capsys)
    assert {int(r.split()[0]) for r in out.splitlines()[1:]} == want
    out = run(['--source', source, 'ps', '-f', '--cgroup', str(db)], capsys)
    assert {int(r.split()[1]) for r in out.splitlines()[1:]} == want
    out = run(['--source', source, 'ps', '--threads', '--cgroup', str(db)], capsys)
    assert {int(r.split()[1]) for r in out.splitlines()[1:]} == \
        tree.listed('svc/db', threads=True)
    assert len(out.splitlines()) - 1 == 2 * len(want)


def test_cgtop_json(tree, source, capsys):
    """Per cgroup of the subtree, its whole subtree's processes: their
    count, threads, CPU ticks and resident bytes, as /proc gives them."""
    out = run(['--source', source, 'cgtop', '--json', '--cgroup', tree.path('svc')], capsys)
    rows = {r['cgroup']: r for r in json.loads(out)}
    svc = proc_cgroup(tree.workers['svc/db'][0].pid).rsplit('/', 1)[0]
    assert set(rows) == {svc, svc + '/web', svc + '/db'}
    for rel, path in (('svc', svc), ('svc/web', svc + '/web'), ('svc/db', svc + '/db')):
        procs = all_workers(tree, rel)
        r = rows[path]
        assert r['id'] == os.stat(tree.path(rel)).st_ino
        assert r['processes'] == len(procs)
        assert r['tasks'] == sum(proc_stat(p.pid)[1] for p in procs)
        assert r['cpu_ticks'] == sum(proc_stat(p.pid)[0] for p in procs)
        assert r['cpu_ticks'] >= 30 * len(procs)        # each burned 0.6 s
        assert r['rss_bytes'] == sum(rss(p.pid) for p in procs)


def test_cgtop_screen(tree, capsys):
    out = run(['cgtop', '--all', '--cgroup', tree.path('svc')], capsys)
    lines = out.splitlines()
    assert lines[0].split() == ['CGROUP', 'PROCS', 'TASKS', 'CPU', 'TIME', 'RSS']
    assert len(lines) == 4
    assert lines[1].split()[0].endswith('/svc')         # the most CPU: all three
    assert [r.split()[1] for r in lines[1:]] == ['3', '2', '1']


def test_cli_errors(tree):
    bad = subprocess.run([sys.executable, '-m', 'task_diag.cli', 'ps', '-o', 'pid,nope'],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown column 'nope'" in bad.stderr
    gone = subprocess.run([sys.executable, '-m', 'task_diag.cli', 'ps', '--cgroup',
                           tree.path('no-such')], capture_output=True, text=True)
    assert gone.returncode == 1 and 'no cgroup' in gone.stderr
