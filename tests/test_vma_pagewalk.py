"""task-diag-load --vma-stat=pagewalk: the BPF page-table walk as
VMA_STAT's source (task_diag/bpf/td_pagewalk.h, task_diag/loader/pagewalk.py).

What the walk answers is compared with smaps field by field in
test_vma_fallback.py (source 'pagewalk', every VMA of its processes) and
test_vma_swap.py; this module checks how the source is enabled: only
after its self-check, refused in one line where it cannot be trusted,
refused when its bases are wrong (plausible garbage, caught), reported by
--status, and that the walk of a big VMA is spread over program runs.

Every test loads into a pin directory of its own, as test_loader does.
"""
import os
import subprocess
import sys
import time

import pytest

from task_diag import tdconfig, wire
from task_diag.iterproto import VMA_STAT_PAGEWALK, VMA_STAT_SMAPS
from task_diag.loader import pagewalk
from task_diag.loader import load as loader
from task_diag.bpf_backend import BpfBackend

from helpers.loader import load, run

SHOW = wire.SHOW_BASE | wire.SHOW_VMA | wire.SHOW_VMA_STAT
CONT = wire.TASK_DIAG_FLAG_CONT
REFUSED = 'task-diag-load: --vma-stat=pagewalk refused: '
CALIBRATIONS = 200


def vma_stat(pin_dir):
    return tdconfig.read_pinned(pin_dir)['vma_stat']


@pytest.fixture
def walking(pin_dir):
    """Pins of our own with the page walk enabled; yields the directory."""
    load(pin_dir)
    r = run(pin_dir, '--no-front', '--vma-stat=pagewalk')
    assert r.returncode == 0, r.stderr
    assert 'checked against smaps' in r.stdout
    return pin_dir


def test_enable_status_disable(walking):
    assert vma_stat(walking) == VMA_STAT_PAGEWALK
    cfg = tdconfig.read_pinned(walking)
    assert cfg['pw_page_offset'] and cfg['pw_vmemmap'] and cfg['pw_levels'] in (4, 5)
    assert cfg['pw_page_offset'] % (1 << 30) == 0 and cfg['pw_vmemmap'] % (1 << 30) == 0
    assert cfg['pw_bad'] == 0
    lines = run(walking, '--status').stdout.splitlines()
    assert [line for line in lines if line.startswith('vma_stat:')][0].startswith(
        'vma_stat: pagewalk')
    r = run(walking, '--no-front', '--vma-stat=smaps')
    assert r.returncode == 0 and vma_stat(walking) == VMA_STAT_SMAPS
    lines = run(walking, '--status').stdout.splitlines()
    assert 'vma_stat: smaps (read from /proc/PID/smaps)' in lines


def test_a_fresh_load_reads_smaps(pin_dir):
    """VMA_STAT from smaps after a load; the bases are found only where
    CMDLINE's direct read uses them (task_diag/loader/cmdline.py)."""
    load(pin_dir)
    assert vma_stat(pin_dir) == VMA_STAT_SMAPS
    cfg = tdconfig.read_pinned(pin_dir)
    assert bool(cfg['pw_page_offset']) == bool(cfg['cmdline_direct'])


@pytest.mark.parametrize('case', ['config', 'mapcount', 'arch', 'vma_iter', 'device'])
def test_refusals_are_one_line(pin_dir, monkeypatch, capsys, case):
    """Where the walk cannot be trusted it is not tried: exit 1, one line
    saying why, and the source stays smaps."""
    load(pin_dir)
    config = pagewalk.kernel_config()
    if case == 'config':
        monkeypatch.setattr(pagewalk, 'kernel_config', lambda: None)
    elif case == 'mapcount':
        monkeypatch.setattr(pagewalk, 'kernel_config',
                            lambda: dict(config, CONFIG_NO_PAGE_MAPCOUNT='y'))
    elif case == 'device':
        monkeypatch.setattr(pagewalk, 'kernel_config',
                            lambda: dict(config, CONFIG_DEVICE_PRIVATE='y'))
    elif case == 'arch':
        monkeypatch.setattr(pagewalk.platform, 'machine', lambda: 'aarch64')
    else:
        real = loader.kernel_features
        monkeypatch.setattr(loader, 'kernel_features',
                            lambda: dict(real(), open_coded_vma_iter=False))
    rc = loader.main(['--no-front', '--vma-stat=pagewalk', '--pin-dir', pin_dir])
    out, err = capsys.readouterr()
    assert rc == 1
    assert err.count('\n') == 1 and err.startswith(REFUSED) and \
        err.rstrip().endswith('VMA_STAT stays on smaps'), err
    assert vma_stat(pin_dir) == VMA_STAT_SMAPS


def corrupt(pin_dir, **fields):
    fd = tdconfig.open_pinned(pin_dir)
    try:
        cfg = tdconfig.read(fd)
        tdconfig.update(fd, **{k: cfg[k] + v for k, v in fields.items()})
    finally:
        os.close(fd)


def test_calibration_finds_the_same_bases_from_any_process(walking):
    """Calibration reads page tables at guessed addresses, where most of
    what it reads is not a page table; before it checked entries and
    required a single match, about 3% of fresh processes took garbage for
    a match and failed (or could have found wrong bases).  Each forked
    child has page tables and a kernel stack of its own: every one of
    them must find the bases the loader found."""
    want = tdconfig.read_pinned(walking)
    results = []
    for _ in range(CALIBRATIONS):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                b = BpfBackend(walking)
                pagewalk.calibrate(b)
                code = 0
            except pagewalk.Refused as e:
                os.write(2, (str(e) + '\n').encode())
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        cfg = tdconfig.read_pinned(walking)
        results.append((os.waitstatus_to_exitcode(status), cfg['pw_page_offset'],
                        cfg['pw_vmemmap']))
    assert set(results) == {(0, want['pw_page_offset'], want['pw_vmemmap'])}


@pytest.mark.parametrize('fields', [
    {'pw_vmemmap': 4096},               # 64 struct pages off: every read succeeds
    {'pw_vmemmap': 1 << 30},            # a wrong region
    {'pw_page_offset': 1 << 30},        # page tables read from the wrong place
], ids=['vmemmap+4k', 'vmemmap+1g', 'page_offset+1g'])
def test_wrong_bases_are_caught(walking, fields):
    """Bases a little wrong give numbers that look right: the self-check
    is what stands between them and a reader."""
    corrupt(walking, **fields)
    b = BpfBackend(walking)
    try:
        with pytest.raises(pagewalk.Refused, match='disagrees with smaps'):
            pagewalk.self_check(b)
    finally:
        b.close()


@pytest.mark.parametrize('was_on', [False, True], ids=['turning-on', 'while-on'])
def test_failed_check_leaves_smaps(pin_dir, monkeypatch, capsys, was_on):
    """A check that fails after calibrating leaves no bases behind, and the
    source on smaps: when turning the walk on, and when checking it again
    while it is on (then the bases were kept during the check)."""
    load(pin_dir)
    if was_on:
        assert run(pin_dir, '--no-front', '--vma-stat=pagewalk').returncode == 0
        assert vma_stat(pin_dir) == VMA_STAT_PAGEWALK

    def calibrate_wrong(backend):
        real_calibrate(backend)
        corrupt(pin_dir, pw_vmemmap=4096)
    real_calibrate = pagewalk.calibrate
    monkeypatch.setattr(pagewalk, 'calibrate', calibrate_wrong)
    rc = loader.main(['--no-front', '--vma-stat=pagewalk', '--pin-dir', pin_dir])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith(REFUSED) and 'disagrees with smaps' in err
    cfg = tdconfig.read_pinned(pin_dir)
    assert cfg['vma_stat'] == VMA_STAT_SMAPS and cfg['pw_page_offset'] == 0 == cfg['pw_vmemmap']
    assert cfg['cmdline_direct'] == 0           # the bases it read with are gone too


def test_enabling_again_never_leaves_a_dump_without_statistics(walking, monkeypatch):
    """task-diag-load --vma-stat=pagewalk while the walk is on checks it
    again; a dump that chose the walk meanwhile (here: one made while the
    check runs) still gets every VMA's statistics: the bases are not taken
    away for the check."""
    b = BpfBackend(walking)
    show = wire.SHOW_BASE | wire.SHOW_VMA | wire.SHOW_VMA_STAT
    meanwhile = []

    def calibrate_after_a_dump(backend):
        data = b.raw(wire.DUMP_ONE, os.getpid(), show, vma_stat=VMA_STAT_PAGEWALK)
        (t,) = wire.decode(data, show)
        meanwhile.append([v for v in t.vmas if v.stat is None])
        real_calibrate(backend)
    real_calibrate = pagewalk.calibrate
    monkeypatch.setattr(pagewalk, 'calibrate', calibrate_after_a_dump)
    try:
        pagewalk.enable(loader.kernel_features(), walking)
    finally:
        b.close()
    assert meanwhile == [[]]
    assert vma_stat(walking) == VMA_STAT_PAGEWALK


def test_smaps_source_ignores_a_calibrated_walk(walking):
    """With the source back on smaps, the numbers are smaps' (pss at kB
    precision), though the walk stays calibrated."""
    assert run(walking, '--no-front', '--vma-stat=smaps').returncode == 0
    b = BpfBackend(walking)
    try:
        # what would tell the walk apart here: a pss below the kB (our
        # libraries' pages are shared with other processes)
        walked = wire.decode(b.raw(wire.DUMP_ONE, os.getpid(), SHOW,
                                   vma_stat=VMA_STAT_PAGEWALK), SHOW)
        assert any(v.stat.pss % (1 << 22) for v in walked[0].vmas)
        tasks = wire.decode(b.raw(wire.DUMP_ONE, os.getpid(), SHOW), SHOW)
    finally:
        b.close()
    assert all(v.stat.pss % (1 << 22) == 0 for v in tasks[0].vmas)


# --- a VMA bigger than one program run may walk -----------------------------

BIG = r'''
import mmap, os, signal, sys
size = int(sys.argv[1])
maps = []
for i in range(2):
    m = mmap.mmap(-1, size, mmap.MAP_PRIVATE)
    m.madvise(mmap.MADV_NOHUGEPAGE)       # 4 KiB pages: one PTE each
    if i:
        m.madvise(mmap.MADV_DONTFORK)     # other flags: not merged with the first
    for off in range(0, size, 4096):
        m[off] = 1
    maps.append(m)
os.kill(os.getpid(), signal.SIGSTOP)
'''


@pytest.fixture
def big():
    """A stopped process with two 1.1 GiB areas of 4 KiB pages: each takes
    the walk over its budget (TD_PW_BUDGET, 1 GiB)."""
    p = subprocess.Popen([sys.executable, '-c', BIG, str(1100 << 20)])
    try:
        deadline = time.monotonic() + 120
        while True:
            with open('/proc/%d/stat' % p.pid, 'rb') as f:
                if f.read().rpartition(b')')[2].split()[0] == b'T':
                    break
            assert p.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        yield p.pid
    finally:
        p.kill()
        p.wait()


def test_big_vmas_go_on_in_the_next_run(walking, big):
    b = BpfBackend(walking)
    try:
        for _ in range(3):      # Pss of libc follows other processes: retry
            want = pagewalk._smaps_stats(big)
            data = b.raw(wire.DUMP_ONE, big, SHOW)
            if want == pagewalk._smaps_stats(big):
                break
    finally:
        b.close()
    msgs = list(wire.iter_messages(data))
    flags = [ident[2] for _, ident, _ in msgs]
    assert all(f & CONT for f in flags[:-1]) and not flags[-1] & CONT
    # each big VMA is the last record of its message: the budget, not the
    # output's size, ended that program run
    big_starts = set()
    for _, _, attrs in msgs:
        for t, start, end in attrs:
            if t == wire.TASK_DIAG_VMA:
                recs = wire.decode_vmas(data, start, end)
                for i, v in enumerate(recs):
                    if v.end - v.start >= 1100 << 20:
                        assert i == len(recs) - 1, 'a big VMA did not end its run'
                        big_starts.add(v.start)
    assert len(big_starts) == 2
    tasks = wire.decode(data, SHOW)
    walk = {(v.start, v.end): v.stat for v in tasks[0].vmas}
    assert pagewalk.differences(walk, want) == []
    assert sum(1 for s in walk.values() if s.resident >= 1100 << 20) == 2
