"""Readers that take the CPU from each other, INSIDE a throw-away VM whose
kernel can preempt BPF programs (stock-kernel-run --append preempt=full;
tests/kernels/test_stock_kernels.py starts it).

The programs build each message in a per-CPU buffer.  Where a run can be
preempted, another reader's run may write that buffer meanwhile; the
programs hold it under a per-CPU try-lock (show_task(), claim_scratch()).
This loads the built object with task-diag-load, opens bpffs to everyone
(the pins are 0444), runs tests/preempt_stress.c (root and uid 65534
readers, 3 of each on 2 CPUs) and unloads.  The last line of stdout:
    TASK_DIAG_VM_STRESS ok kernel=6.1.0-56-amd64 preempt=full reads=... bad=0 leaks=0
"""
import os
import re
import subprocess
import sys

TAG = 'TASK_DIAG_VM_STRESS'
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PIN_ALL = '/sys/fs/bpf/task_diag/all'
SECONDS = os.environ.get('TASK_DIAG_STRESS_SECONDS', '10')


def main():
    kernel = os.uname().release
    if os.environ.get('STOCK_KERNEL_RUN_GUEST') != '1':
        print('%s FAIL kernel=%s reason=not-in-a-VM' % (TAG, kernel), flush=True)
        sys.stderr.write('vm_stress.py: refusing to run outside stock-kernel-run\n')
        return 2
    # A first line before anything is loaded: run_vm() boots again only a VM
    # that died before its command printed.
    print('vm_stress: kernel %s' % kernel, flush=True)
    exe = sys.argv[1]
    mode = re.search(r'\((\w+)\)', open('/sys/kernel/debug/sched/preempt').read()
                     if os.path.exists('/sys/kernel/debug/sched/preempt') else '')
    preempt = mode.group(1) if mode else '?'
    if not os.path.ismount('/sys/fs/bpf'):
        subprocess.run(['mount', '-t', 'bpf', 'bpf', '/sys/fs/bpf'], check=True)
    os.chmod('/sys/fs/bpf', 0o755)          # a throw-away VM: let uid 65534 reach the pins
    load = [sys.executable, '-m', 'task_diag.loader.load']
    r = subprocess.run(load + ['--no-front'], cwd=ROOT, capture_output=True, text=True)
    if r.returncode:
        print(r.stdout + r.stderr)
        print('%s FAIL kernel=%s reason=load' % (TAG, kernel), flush=True)
        return 1
    try:
        r = subprocess.run([exe, PIN_ALL, SECONDS, '6'], capture_output=True, text=True,
                           timeout=float(SECONDS) + 120)
    finally:
        subprocess.run(load + ['--unload'], cwd=ROOT, capture_output=True)
    print(r.stdout + r.stderr)
    fields = dict(re.findall(r'(\w+) (\d+)', r.stdout))
    ok = r.returncode == 0 and fields.get('bad') == '0' and fields.get('leaks') == '0'
    print('%s %s kernel=%s preempt=%s reads=%s messages=%s eagain=%s bad=%s leaks=%s'
          % (TAG, 'ok' if ok else 'FAIL', kernel, preempt, fields.get('reads'),
             fields.get('messages'), fields.get('eagain'), fields.get('bad'),
             fields.get('leaks')), flush=True)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
