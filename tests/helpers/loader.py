"""task-diag-load on a pin directory of a test's own (the pin_dir fixture,
tests/conftest.py, makes and removes it)."""
import os
import subprocess
import sys

from task_diag.iterproto import (PIN_ALL, PIN_ALL_THREADS, PIN_CONFIG, PIN_PROG, PIN_PROG_CGROUP,
                                 PIN_REQUESTS, PINS)
from task_diag.loader import load as _load

from . import ROOT
from .ns import setpriv

BPFFS = '/sys/fs/bpf'
SCRIPT = os.path.join(ROOT, '.venv', 'bin', 'task-diag-load')
LOADER = [SCRIPT] if os.access(SCRIPT, os.X_OK) else [sys.executable, '-m',
                                                      'task_diag.loader.load']
MODES = {PIN_ALL: 0o444, PIN_ALL_THREADS: 0o444, PIN_PROG: 0o600, PIN_REQUESTS: 0o600,
         PIN_CONFIG: 0o600, PIN_PROG_CGROUP: 0o600}
KIND = {PIN_ALL: 'link', PIN_ALL_THREADS: 'link', PIN_PROG: 'prog', PIN_REQUESTS: 'map',
        PIN_CONFIG: 'map', PIN_PROG_CGROUP: 'prog'}
# What a load pins here: td_cgroup too where the kernel has the css_task
# iterator (the verifier of this machine takes it)
EXPECTED_PINS = PINS + ((PIN_PROG_CGROUP,) if _load.kernel_features().get('css_task_iter')
                        else ())


def remove_pins(path):
    """Removes a pin directory and whatever is in it."""
    if os.path.isdir(path):
        for name in os.listdir(path):
            p = os.path.join(path, name)
            if os.path.isdir(p) and not os.path.islink(p):
                remove_pins(p)
            else:
                os.unlink(p)
        os.rmdir(path)


def run(pin_dir, *args, user=None):
    prefix = setpriv(user, user) if user is not None else []
    return subprocess.run(prefix + LOADER + list(args) + ['--pin-dir', pin_dir],
                          capture_output=True, text=True, timeout=120, cwd='/')


def load(pin_dir):
    r = run(pin_dir)
    assert r.returncode == 0, 'task-diag-load failed (%d): %s' % (r.returncode, r.stderr)
    assert r.stderr == '', r.stderr
    return r
