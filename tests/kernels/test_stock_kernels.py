"""The built BPF objects on distribution kernels, not only on this
machine's: for each stock kernel, stock-kernel-run boots it in a throw-away
VM and runs vm_check.py there (load the tier the kernel verifies, compare
the BPF answers with the /proc fallback's byte for byte, `task-diag ps`
with /proc, VMA with maps and VMA_STAT with smaps, a protocol round through
/run/task-diag with the C client tests/td_dump.c, unload), then
vm_stress.py on the same kernel booted with preempt=full.  Nothing is
loaded on the host.

    make test-kernels                              Debian 12's 6.1 and Debian 13's 6.12
    TASK_DIAG_KERNELS="6.1.0-56-amd64 6.1.0-57" make test-kernels
    TASK_DIAG_KERNEL_SUITES=trixie make test-kernels

TASK_DIAG_KERNEL_SUITES: Debian suites, separated by spaces or commas
(default "bookworm trixie").  "bookworm" (or "default") boots through the
host's own apt sources, without --suite (bookworm on this Debian 12 host),
the kernel stock-kernel-run picks there, or each ABI of TASK_DIAG_KERNELS
(separated by spaces or commas); every other suite boots the default kernel
of that suite (stock-kernel-run --suite SUITE): trixie's 6.12 has the
open-coded VMA iterator (the walk tier), bookworm's 6.1 has not (novma).

Where the tool is missing or the VM fails (exit 125) the test skips, or
fails under TASK_DIAG_REQUIRE_BPF=1 (make sets it), like every BPF test; a
VM that died before the command started is booted again (run_vm).
STOCK_KERNEL_RUN names another copy of the tool; its own STOCK_KERNEL_RUN_*
variables (ACCEL, MEM, SMP, ...) pass through, STOCK_KERNEL_RUN_SUITE and
_KERNEL excepted (the parameters here say which kernel).  The accelerator
is the tool's choice: KVM where /proc/cpuinfo shows vmx or svm, TCG
otherwise.  The development machines have a /dev/kvm without vmx (kvm_pvm):
STOCK_KERNEL_RUN_ACCEL=kvm hangs there until the timeout, so TCG it is
(measured on a 2-CPU one: vm_check 14 s on 6.1, 20 s on 6.12; the stress
21 s and 27 s; the whole directory 83 s).  TASK_DIAG_KERNEL_TIMEOUT:
seconds allowed in the VM (default 300).
"""
import os
import re
import subprocess
import sys

import pytest

from helpers import build_c, need

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VM_CHECK = os.path.join(HERE, 'vm_check.py')
BPF_OBJ = os.path.join(ROOT, 'task_diag', 'bpf', 'task_diag.bpf.o')
VM_TIMEOUT = int(os.environ.get('TASK_DIAG_KERNEL_TIMEOUT', '300'))  # in the VM, seconds

SUMMARY = re.compile(r'^TASK_DIAG_VM_CHECK (?P<result>ok|FAIL) kernel=(?P<kernel>\S+) '
                     r'checks=(?P<checks>\d+) mismatches=(?P<mismatches>\d+) '
                     r'seconds=(?P<seconds>[\d.]+)(?: tier=(?P<tier>\S+))?', re.M)


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


DEFAULT_SUITES = ('', 'default', 'bookworm')


def words(name):
    """The words of environment variable @name, separated by spaces or commas."""
    return [w for w in re.split(r'[\s,]+', os.environ.get(name, '').strip()) if w]


def kernels():
    """[(suite, kernel ABI)]: each suite of TASK_DIAG_KERNEL_SUITES; the
    default one ('': no --suite) with each ABI of TASK_DIAG_KERNELS, or with
    None (the kernel stock-kernel-run picks), the others with None."""
    suites = words('TASK_DIAG_KERNEL_SUITES') or ['bookworm', 'trixie']
    abis = words('TASK_DIAG_KERNELS') or [None]
    out = []
    for suite in suites:
        if suite in DEFAULT_SUITES:
            out += [('', abi) for abi in abis]
        else:
            out.append((suite, None))
    return out


def kernel_id(param):
    suite, abi = param
    return '%s-%s' % (suite or 'bookworm', abi or 'default')


KERNELS = kernels()


def describe(suite, kernel):
    return '%s%s' % (kernel or '(default)', ' of ' + suite if suite else '')


def vm_command(tool, suite, kernel, *options):
    cmd = [tool, '--timeout', str(VM_TIMEOUT)] + list(options)
    if suite:
        cmd += ['--suite', suite]
    if kernel:
        cmd += ['--kernel', kernel]
    return cmd


def vm_env():
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1')   # the repo is shared read-write
    for name in ('STOCK_KERNEL_RUN_GUEST', 'STOCK_KERNEL_RUN_SUITE', 'STOCK_KERNEL_RUN_KERNEL'):
        env.pop(name, None)
    return env


def build(source, exe, *flags):
    """gcc @source into tests/bin/@exe (the VM sees the repo); its path."""
    return build_c(source, os.path.join(ROOT, 'tests', 'bin', exe), '-O2', *flags)


@pytest.fixture(scope='module')
def td_dump():
    return build('td_dump.c', 'td_dump', '-Wall', '-Wextra', '-Werror')


@pytest.fixture(scope='module')
def hammer():
    return build('hammer.c', 'hammer', '-Wall', '-Werror', '-pthread')


def tail(text, lines=40):
    return '\n'.join(text.rstrip().split('\n')[-lines:])


BOOT_ATTEMPTS = 3


def run_vm(cmd):
    """stock-kernel-run @cmd; its stdout and stderr (the tool's own messages,
    the console on a failure) as one text.  A failure if it outlives the VM's
    own timeout by 3 minutes.

    A VM that dies before the command printed anything is booted again, up to
    BOOT_ATTEMPTS times: under TCG the guest kernel sometimes oopses while it
    patches its own text at boot (an int3 in sched_clock_cpu, seen once in
    CI on 6.12), before init runs any of our code.  A VM that dies after the
    command started (both checks print a line before they load anything) is
    a failure of this project, never retried."""
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        try:
            r = subprocess.run(cmd, cwd=ROOT, env=vm_env(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=VM_TIMEOUT + 180)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors='replace') if isinstance(e.stdout, bytes) else e.stdout
            pytest.fail('stock-kernel-run did not finish in %d s:\n%s'
                        % (VM_TIMEOUT + 180, tail(out or '')))
        booted = r.returncode != 125 or r.stdout.strip()
        if booted or attempt == BOOT_ATTEMPTS:
            r.stdout += r.stderr
            return r
        print('boot %d of %d failed before the command started:\n%s'
              % (attempt, BOOT_ATTEMPTS, tail(r.stderr, 12)))


@pytest.mark.parametrize('suite,kernel', KERNELS, ids=[kernel_id(k) for k in KERNELS])
def test_same_answers_on_stock_kernel(suite, kernel, td_dump, hammer):
    tool = find_tool()
    need(tool is not None, 'stock-kernel-run not found (looked at %s)'
         % ', '.join(tool_candidates()))
    need(os.path.exists(BPF_OBJ), '%s is missing: make -C task_diag/bpf' % BPF_OBJ)
    # The interpreter running this test, by absolute path (a pyenv shim
    # costs seconds per call under emulation); the host's / is visible in
    # the VM, read-only.
    cmd = vm_command(tool, suite, kernel) + ['--', sys.executable, VM_CHECK,
                                             '--td-dump', td_dump, '--hammer', hammer]
    r = run_vm(cmd)
    print(r.stdout)                                         # shown with -s, or on failure
    need(r.returncode != 125, 'the VM failed on kernel %s (stock-kernel-run exit 125):\n%s'
         % (describe(suite, kernel), tail(r.stdout)))
    assert r.returncode != 124, 'vm_check.py timed out after %d s in the VM:\n%s' % (
        VM_TIMEOUT, tail(r.stdout))
    found = list(SUMMARY.finditer(r.stdout))
    mismatches = [line for line in r.stdout.split('\n')
                  if line.startswith(('MISMATCH', 'task-diag-load:'))]
    assert r.returncode == 0 and found, (
        'vm_check.py failed on kernel %s (exit %d); the whole output is under "Captured '
        'stdout call"\n%s' % (describe(suite, kernel), r.returncode,
                               '\n'.join(mismatches + [m.group(0) for m in found])
                               if mismatches else tail(r.stdout, 30)))
    summary = found[-1]
    assert summary['result'] == 'ok' and int(summary['mismatches']) == 0, summary.group(0)
    assert int(summary['checks']) >= 100, 'too few checks ran: ' + summary.group(0)
    assert summary['tier'] not in (None, '?'), 'no tier checked: ' + summary.group(0)
    if kernel:
        assert summary['kernel'].startswith(kernel), \
            'asked for kernel %s, the VM ran %s' % (kernel, summary['kernel'])


STRESS = re.compile(r'^TASK_DIAG_VM_STRESS (?P<result>ok|FAIL) kernel=(?P<kernel>\S+) '
                    r'preempt=(?P<preempt>\S+) reads=(?P<reads>\S+)', re.M)


@pytest.mark.parametrize('suite,kernel', KERNELS, ids=[kernel_id(k) for k in KERNELS])
def test_readers_stay_apart_on_a_preemptible_kernel(suite, kernel):
    """The same object on the stock kernel booted with preempt=full, where a
    BPF program can lose its CPU in the middle of a message: root and uid
    65534 readers racing on 2 CPUs get only whole messages of their own
    tasks (tests/preempt_stress.c; without the programs' lock, 10 s of
    this showed uid 65534 root's processes).  On every kernel: each loads
    another tier, with other programs (20-30 s a run under TCG)."""
    tool = find_tool()
    need(tool is not None, 'stock-kernel-run not found (looked at %s)'
         % ', '.join(tool_candidates()))
    need(os.path.exists(BPF_OBJ), '%s is missing: make -C task_diag/bpf' % BPF_OBJ)
    exe = build('preempt_stress.c', 'preempt_stress', '-Wall', '-Werror')
    cmd = vm_command(tool, suite, kernel, '--smp', '2', '--append', 'preempt=full')
    cmd += ['--', sys.executable, os.path.join(HERE, 'vm_stress.py'), exe]
    r = run_vm(cmd)
    print(r.stdout)
    need(r.returncode != 125, 'the VM failed on kernel %s (stock-kernel-run exit 125):\n%s'
         % (describe(suite, kernel), tail(r.stdout)))
    found = list(STRESS.finditer(r.stdout))
    assert found, 'vm_stress.py gave no summary (exit %d):\n%s' % (r.returncode, tail(r.stdout))
    summary = found[-1]
    assert summary['preempt'] == 'full', 'the VM did not run preempt=full: ' + summary.group(0)
    assert summary['result'] == 'ok' and r.returncode == 0, tail(r.stdout, 10)
    assert int(summary['reads']) > 100, summary.group(0)
    if kernel:
        assert summary['kernel'].startswith(kernel), \
            'asked for kernel %s, the VM ran %s' % (kernel, summary['kernel'])


def test_vm_check_refuses_to_run_on_the_host():
    """vm_check.py loads and unloads /sys/fs/bpf/task_diag: outside the VM
    it must stop before touching anything (the host's pins are shared)."""
    env = dict(os.environ)
    env.pop('STOCK_KERNEL_RUN_GUEST', None)
    r = subprocess.run([sys.executable, VM_CHECK], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert 'reason=not-in-a-VM' in r.stdout and 'refusing' in r.stderr
