"""What the tests share besides fixtures (those are in tests/conftest.py):
each helper module is imported by the tests that need it, never a test
module by another.

  ns       reader processes in other users and namespaces (also a script)
  procs    processes with known properties, for the field tests
  front    /run/task-diag: the C client, raw requests, a stopped family
  loader   task-diag-load on a pin directory of a test's own
  vma      maps lines from records and from /proc; smaps parsed apart
  swap     swap for the VMA_STAT tests (a zram device, else a file)
  names    a process with every kind of VMA name (a script)
"""
import os
import shutil
import sys
import subprocess

import pytest

REQUIRE_BPF = os.environ.get('TASK_DIAG_REQUIRE_BPF') == '1'
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTS = os.path.join(ROOT, 'tests')
PY = sys.executable


def need(condition, reason):
    """Skip, or fail when BPF is required, unless @condition holds."""
    if not condition:
        if REQUIRE_BPF:
            pytest.fail('TASK_DIAG_REQUIRE_BPF=1: ' + reason)
        pytest.skip(reason)


class BuildError(Exception):
    """gcc failed: its message."""


def build_c(source, exe, *flags):
    """gcc @flags @source (a path, or a name under tests/) into @exe, written
    whole (a process may run the old one meanwhile, a VM may see it); @exe.
    The one place the tests compile C."""
    need(shutil.which('gcc'), 'gcc is needed to build %s' % source)
    if not os.path.isabs(source):
        source = os.path.join(TESTS, source)
    os.makedirs(os.path.dirname(exe), exist_ok=True)
    tmp = '%s.%d' % (exe, os.getpid())
    r = subprocess.run(['gcc'] + list(flags) + ['-o', tmp, source], capture_output=True,
                       text=True)
    if r.returncode:
        raise BuildError('gcc %s: %s' % (source, r.stderr.strip()))
    os.replace(tmp, exe)
    return exe
