"""task_diag: information about processes in one binary request.

    import task_diag
    for t in task_diag.dump(task_diag.DUMP_ALL, show=task_diag.SHOW_BASE | task_diag.SHOW_CRED):
        print(t.pid, t.base.ppid, t.base.comm, t.cred.uid)
"""
from .wire import (DUMP_ALL, DUMP_ALL_THREAD, DUMP_CHILDREN, DUMP_ONE, DUMP_THREAD,  # noqa: F401
                   SHOW_BASE, SHOW_CGROUP, SHOW_CMDLINE, SHOW_CRED, SHOW_NS, SHOW_STAT,
                   SHOW_STAT_EXT, SHOW_STATM, SHOW_VMA, SHOW_VMA_STAT, STATE_LETTERS, Base, Cgroup,
                   Cred, Ns, Stat, StatExt, Statm, Task, Vma, VmaStat)
from .api import backend, dump, raw  # noqa: F401
from .watch import Event, watch  # noqa: F401

__all__ = ['dump', 'raw', 'backend', 'watch', 'Event', 'Task', 'Base', 'Cred', 'Stat', 'Vma', 'VmaStat',
           'DUMP_ALL', 'DUMP_ONE', 'DUMP_ALL_THREAD', 'DUMP_CHILDREN', 'DUMP_THREAD',
           'SHOW_BASE', 'SHOW_CRED', 'SHOW_VMA', 'SHOW_VMA_STAT', 'SHOW_STAT',
           'SHOW_STATM', 'SHOW_CMDLINE', 'SHOW_STAT_EXT', 'SHOW_NS', 'SHOW_CGROUP', 'Statm',
           'StatExt', 'Ns', 'Cgroup',
           'STATE_LETTERS']
