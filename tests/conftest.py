"""The fixtures every test module may use (their helpers are in
tests/helpers/).  Tests that need BPF use the `bpf` fixture: it loads
task_diag (and unloads it at the end if it loaded it).  Where BPF cannot
be had, they skip, unless TASK_DIAG_REQUIRE_BPF=1 (CI, make test): then
they fail, so that a suite that skips everything cannot pass."""
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

from task_diag import tdconfig
from task_diag.front import service
from task_diag.iterproto import PIN_DIR, PINS
from task_diag.bpf_backend import BpfBackend, vma_supported

from helpers import build_c, need
from helpers.front import Family, ensure_front
from helpers.loader import BPFFS, remove_pins
from helpers.swap import Swap, SwapUnavailable


@pytest.fixture(scope='session')
def bpf():
    """task_diag loaded and pinned at PIN_DIR; yields the pin directory."""
    need(os.geteuid() == 0, 'BPF tests need root')
    # Idempotent: a no-op when this build is already pinned, a reload when
    # the pins come from another build (a stale checkout's).
    r = subprocess.run([sys.executable, '-m', 'task_diag.loader.load'],
                       capture_output=True, text=True)
    need(r.returncode == 0, 'task-diag-load failed: ' + r.stderr.strip())
    need(all(os.path.exists(os.path.join(PIN_DIR, p)) for p in PINS),
         'task-diag-load left pins missing under ' + PIN_DIR)
    # Leave things as they were: unload what this session loaded, stop a
    # front it started.
    pins_loaded = 'task-diag: loaded tier' in r.stdout
    front_started = 'answers' in r.stdout
    # The tests expect the loader's default VMA_STAT source (smaps); a
    # machine where someone enabled the page walk gets it back afterwards.
    from task_diag.iterproto import VMA_STAT_SOURCES
    from task_diag.loader import load as loader, pagewalk
    cfg = tdconfig.read_pinned()
    walked = bool(cfg) and cfg['vma_stat'] == VMA_STAT_SOURCES['pagewalk']
    if walked:
        pagewalk.disable()
    yield PIN_DIR
    if walked and not pins_loaded:
        try:
            pagewalk.enable(loader.kernel_features())
        except Exception as e:         # the tests are over: say it, do not fail them
            print('tests: could not put VMA_STAT back on the page walk: %s' % e)
    if pins_loaded:
        subprocess.run([sys.executable, '-m', 'task_diag.loader.load', '--unload'],
                       capture_output=True)
    elif front_started:
        service.stop_front()


@pytest.fixture
def vma_stat_source(bpf):
    """Sets VMA_STAT's source of the default pins: call it with 'smaps' or
    'pagewalk' (task-diag-load --vma-stat; the page walk only after its
    self-check).  Whatever the test set, smaps is back at the end: the
    other modules expect the loader's default."""
    from task_diag.loader import load as loader, pagewalk
    from task_diag.iterproto import VMA_STAT_SOURCES

    def switch(name):
        if tdconfig.read_pinned()['vma_stat'] == VMA_STAT_SOURCES[name]:
            return
        if name == 'pagewalk':
            try:
                pagewalk.enable(loader.kernel_features())
            except pagewalk.Refused as e:
                need(False, 'task-diag-load --vma-stat=pagewalk refused: %s' % e)
        else:
            pagewalk.disable()
    yield switch
    switch('smaps')


@pytest.fixture
def vma_backend(bpf):
    """A BpfBackend of the default pins, whose programs write VMA
    records (a tier with the VMA code)."""
    need(vma_supported(), 'the kernel lacks the open-coded VMA iterator')
    b = BpfBackend()
    yield b
    b.close()


@pytest.fixture(params=['bpf', 'proc'])
def source(request):
    """Each backend in turn; the bpf one needs BPF loaded."""
    if request.param == 'bpf':
        request.getfixturevalue('bpf')
    return request.param


@pytest.fixture(params=['proc', 'bpf', 'file'])
def every_source(request):
    """Each backend in turn, the front's file too: 'bpf' and 'file' need
    task_diag loaded, 'file' the front.  Modules that test every group
    through every backend name it their source."""
    if request.param != 'proc':
        request.getfixturevalue('bpf')
    if request.param == 'file':
        request.getfixturevalue('front')
    return request.param


@pytest.fixture
def pin_dir():
    """A fresh pin directory name under bpffs; removed at the end, loaded or not."""
    need(os.geteuid() == 0, 'loading BPF needs root')
    need(os.path.ismount(BPFFS), 'no bpffs on ' + BPFFS)
    need(shutil.which('bpftool'), 'bpftool is needed to read object ids')
    path = os.path.join(BPFFS, 'task_diag_test_%d_%s' % (os.getpid(), uuid.uuid4().hex[:8]))
    assert not os.path.exists(path)
    try:
        yield path
    finally:
        remove_pins(path)


# --- /run/task-diag (tests/helpers/front.py) --------------------------------

@pytest.fixture(scope='session')
def front(bpf):
    """/run/task-diag, served by a daemon that runs this tree's code."""
    return ensure_front()


@pytest.fixture(scope='session')
def td():
    """The path of td_dump, built from tests/td_dump.c into a directory
    that readers with other ids (nobody, user namespaces) can reach."""
    tmp = tempfile.mkdtemp(prefix='td_dump-')
    try:
        os.chmod(tmp, 0o755)
        yield build_c('td_dump.c', os.path.join(tmp, 'td_dump'), '-O2', '-Wall', '-Wextra',
                      '-Werror')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def fd(front):
    """An open descriptor of /run/task-diag."""
    fd = os.open(front, os.O_RDWR)
    yield fd
    os.close(fd)


@pytest.fixture(scope='module')
def family(front):
    """Stopped processes and threads of known shape (helpers.front.Family)."""
    with Family() as f:
        yield f


# --- swap (tests/helpers/swap.py) -------------------------------------------

@pytest.fixture(scope='module')
def swap():
    """Swap for the test module (a Swap); skipped, with the reason, when
    it cannot be had."""
    s = Swap()
    try:
        s.__enter__()
    except SwapUnavailable as e:
        pytest.skip(str(e))
    try:
        yield s
    finally:
        s.__exit__(None, None, None)

