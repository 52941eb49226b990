"""The built bpf/task_diag.bpf.o on distribution kernels, not only on this
machine's: for each stock kernel, stock-kernel-run boots it in a throw-away
VM and runs vm_check.py there (load, compare the BPF answers with the
/proc fallback's byte for byte, unload).  Nothing is loaded on the host.

    make test-kernels                              the kernel stock-kernel-run picks
    TASK_DIAG_KERNELS="6.1.0-56-amd64 6.1.0-57" make test-kernels

Where the tool is missing or the VM cannot boot (exit 125) the test skips,
or fails under TASK_DIAG_REQUIRE_BPF=1 (make sets it), like every BPF test.
STOCK_KERNEL_RUN names another copy of the tool; its own STOCK_KERNEL_RUN_*
variables (ACCEL, MEM, SMP, ...) pass through.  TASK_DIAG_KERNEL_TIMEOUT:
seconds allowed in the VM (default 300).
"""
import os
import re
import subprocess
import sys

import pytest

from conftest import need

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VM_CHECK = os.path.join(HERE, 'vm_check.py')
BPF_OBJ = os.path.join(ROOT, 'bpf', 'task_diag.bpf.o')
VM_TIMEOUT = int(os.environ.get('TASK_DIAG_KERNEL_TIMEOUT', '300'))  # in the VM, seconds

SUMMARY = re.compile(r'^TASK_DIAG_VM_CHECK (?P<result>ok|FAIL) kernel=(?P<kernel>\S+) '
                     r'checks=(?P<checks>\d+) mismatches=(?P<mismatches>\d+) '
                     r'seconds=(?P<seconds>[\d.]+)', re.M)


def tool_candidates():
    """$STOCK_KERNEL_RUN alone when set; else the tool beside the repository
    (CI: a fresh clone with ../shared next to it), then where the
    development machines keep it."""
    if os.environ.get('STOCK_KERNEL_RUN'):
        yield os.environ['STOCK_KERNEL_RUN']
        return
    yield os.path.join(os.path.dirname(ROOT), 'shared', 'tools', 'stock-kernel-run')
    yield '/work/shared/tools/stock-kernel-run'


def find_tool():
    for path in tool_candidates():
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def kernels():
    """TASK_DIAG_KERNELS: kernel ABIs, separated by spaces or commas; unset or
    empty: the one stock-kernel-run picks (linux-image-amd64's)."""
    abis = re.split(r'[\s,]+', os.environ.get('TASK_DIAG_KERNELS', '').strip())
    return [abi for abi in abis if abi] or [None]


def tail(text, lines=40):
    return '\n'.join(text.rstrip().split('\n')[-lines:])


@pytest.mark.parametrize('kernel', kernels(), ids=lambda k: k or 'default')
def test_same_answers_on_stock_kernel(kernel):
    tool = find_tool()
    need(tool is not None, 'stock-kernel-run not found (looked at %s)'
         % ', '.join(tool_candidates()))
    need(os.path.exists(BPF_OBJ), '%s is missing: make -C bpf' % BPF_OBJ)
    cmd = [tool, '--timeout', str(VM_TIMEOUT)]
    if kernel:
        cmd += ['--kernel', kernel]
    # The interpreter running this test, by absolute path (a pyenv shim
    # costs seconds per call under emulation); the host's / is visible in
    # the VM, read-only.
    cmd += ['--', sys.executable, VM_CHECK]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1')   # the repo is shared read-write
    env.pop('STOCK_KERNEL_RUN_GUEST', None)
    try:
        r = subprocess.run(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=VM_TIMEOUT + 180)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors='replace') if isinstance(e.stdout, bytes) else e.stdout
        pytest.fail('stock-kernel-run did not finish in %d s:\n%s'
                    % (VM_TIMEOUT + 180, tail(out or '')))
    print(r.stdout)                                         # shown with -s, or on failure
    need(r.returncode != 125, 'the VM could not boot kernel %s (stock-kernel-run exit 125):\n%s'
         % (kernel or '(default)', tail(r.stdout)))
    assert r.returncode != 124, 'vm_check.py timed out after %d s in the VM:\n%s' % (
        VM_TIMEOUT, tail(r.stdout))
    found = list(SUMMARY.finditer(r.stdout))
    mismatches = [line for line in r.stdout.split('\n')
                  if line.startswith(('MISMATCH', 'task-diag-load:'))]
    assert r.returncode == 0 and found, (
        'vm_check.py failed on kernel %s (exit %d); the whole output is under "Captured '
        'stdout call"\n%s' % (kernel or '(default)', r.returncode,
                               '\n'.join(mismatches + [m.group(0) for m in found])
                               if mismatches else tail(r.stdout, 30)))
    summary = found[-1]
    assert summary['result'] == 'ok' and int(summary['mismatches']) == 0, summary.group(0)
    assert int(summary['checks']) >= 100, 'too few checks ran: ' + summary.group(0)
    if kernel:
        assert summary['kernel'].startswith(kernel), \
            'asked for kernel %s, the VM ran %s' % (kernel, summary['kernel'])


STRESS = re.compile(r'^TASK_DIAG_VM_STRESS (?P<result>ok|FAIL) kernel=(?P<kernel>\S+) '
                    r'preempt=(?P<preempt>\S+) reads=(?P<reads>\S+)', re.M)


@pytest.mark.parametrize('kernel', kernels(), ids=lambda k: k or 'default')
def test_readers_stay_apart_on_a_preemptible_kernel(kernel, tmp_path):
    """The same object on the stock kernel booted with preempt=full, where a
    BPF program can lose its CPU in the middle of a message: root and uid
    65534 readers racing on 2 CPUs get only whole messages of their own
    tasks (tests/preempt_stress.c; without the programs' lock, 10 s of
    this showed uid 65534 root's processes)."""
    tool = find_tool()
    need(tool is not None, 'stock-kernel-run not found (looked at %s)'
         % ', '.join(tool_candidates()))
    need(os.path.exists(BPF_OBJ), '%s is missing: make -C bpf' % BPF_OBJ)
    exe = os.path.join(ROOT, 'tests', 'bin', 'preempt_stress')    # the VM sees the repo
    os.makedirs(os.path.dirname(exe), exist_ok=True)
    subprocess.run(['gcc', '-O2', '-Wall', '-Werror', '-o', exe,
                    os.path.join(ROOT, 'tests', 'preempt_stress.c')], check=True)
    cmd = [tool, '--timeout', str(VM_TIMEOUT), '--smp', '2', '--append', 'preempt=full']
    if kernel:
        cmd += ['--kernel', kernel]
    cmd += ['--', sys.executable, os.path.join(HERE, 'vm_stress.py'), exe]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1')
    env.pop('STOCK_KERNEL_RUN_GUEST', None)
    r = subprocess.run(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=VM_TIMEOUT + 180)
    print(r.stdout)
    need(r.returncode != 125, 'the VM could not boot kernel %s (stock-kernel-run exit 125):\n%s'
         % (kernel or '(default)', tail(r.stdout)))
    found = list(STRESS.finditer(r.stdout))
    assert found, 'vm_stress.py gave no summary (exit %d):\n%s' % (r.returncode, tail(r.stdout))
    summary = found[-1]
    assert summary['preempt'] == 'full', 'the VM did not run preempt=full: ' + summary.group(0)
    assert summary['result'] == 'ok' and r.returncode == 0, tail(r.stdout, 10)
    assert int(summary['reads']) > 100, summary.group(0)


def test_vm_check_refuses_to_run_on_the_host():
    """vm_check.py loads and unloads /sys/fs/bpf/task_diag: outside the VM
    it must stop before touching anything (the host's pins are shared)."""
    env = dict(os.environ)
    env.pop('STOCK_KERNEL_RUN_GUEST', None)
    r = subprocess.run([sys.executable, VM_CHECK], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert 'reason=not-in-a-VM' in r.stdout and 'refusing' in r.stderr
