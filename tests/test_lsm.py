"""Who counts as confined by an LSM whose policy the programs cannot
evaluate (task_diag/lsm.py confinement()).  The labels are the kernel's
formats; AppArmor itself refusing a confined reader VMA through
/run/task-diag is checked in the stock-kernel VMs (tests/kernels), where
Debian's kernels run it."""
import os

import pytest

from task_diag import lsm


@pytest.mark.parametrize('label,want', [
    (b'unconfined', lsm.FREE),
    (b'td-confined (enforce)', lsm.APPARMOR),
    (b'td-confined (kill)', lsm.APPARMOR),
    (b'td-confined (complain)', lsm.FREE),          # logs, refuses nothing
    (b'td-confined (unconfined)', lsm.FREE),        # AppArmor 4's unconfined mode
    (b'a (enforce)//&b (complain)', lsm.APPARMOR),   # stacked: one enforces
    (None, lsm.APPARMOR),                            # cannot tell: as if confined
])
def test_apparmor_labels(monkeypatch, label, want):
    monkeypatch.setattr(lsm, '_attr', lambda pid, name: label)
    assert lsm.confinement(os.getpid(), ['capability', 'apparmor']) == want


def test_selinux_enforcing_confines_everyone(monkeypatch):
    monkeypatch.setattr(lsm, '_selinux_enforcing', lambda: True)
    assert lsm.confinement(os.getpid(), ['selinux']) == lsm.SELINUX
    monkeypatch.setattr(lsm, '_selinux_enforcing', lambda: False)
    assert lsm.confinement(os.getpid(), ['selinux']) == lsm.FREE


def test_lsms_without_a_maps_policy():
    # Yama restricts attaching only, TOMOYO has no ptrace hook, Landlock is
    # measured apart: none of them confines here
    assert lsm.confinement(os.getpid(), ['lockdown', 'capability', 'landlock', 'yama',
                                         'tomoyo', 'bpf']) == lsm.FREE
    assert lsm.confinement(os.getpid(), ['smack']) == lsm.SMACK
