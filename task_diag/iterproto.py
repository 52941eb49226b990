"""The internal request record between task_diag's drivers and the BPF
iterator programs (task_diag/bpf/td_iter.h, struct td_request); not the wire format.
Keep in sync with td_iter.h: tests/test_layout.py compares the two."""
from .wire import Layout

VIEWER_FIELDS = (
    ('cap_effective', 'Q'), ('user_ns', 'Q'), ('pid_ns', 'Q'), ('signal', 'Q'),
    ('fsuid', 'I'), ('fsgid', 'I'), ('euid', 'I'), ('user_ns_level', 'I'),
    ('pid_ns_level', 'I'), ('valid', 'I'),
    # which process (td_iter.h): compared by drivers, never the pointers
    ('start', 'Q'), ('exec_id', 'Q'), ('tgid', 'I'), ('_pad', '4x'),
)
VIEWER = Layout('td_viewer', VIEWER_FIELDS)

TD_REQUEST = Layout('td_request', (
    ('show_flags', 'Q'), ('dump_strategy', 'Q'),
    ('pid', 'I'), ('seq', 'I'),
    ('reader_start', 'Q'),      # the reader thread's start, clock ticks after boot
    ('found', 'I'), ('found_tgid', 'I'),
    ('found_exec', 'Q'),        # set by the program: the found task's leader's self_exec_id
    ('viewer', '%ds' % VIEWER.size),   # struct td_viewer, filled by a TD_PROBE_VIEWER pass
    ('cont_start', 'Q'),        # a task's VMAs split over program runs (td_iter.h)
    ('cont_pid', 'I'), ('cont_state', 'I'),
    ('host_pid_ns', 'Q'),       # TD_ATTR_HOST_PID wanted: the driver's pid namespace
    ('root', '16s'),            # the viewer's fs->root {mnt, dentry}, filled with the viewer
    ('host_pid_ns_level', 'I'),
    ('from_proc', 'I'),         # set by the program: TD_MSG_F_VMA_FROM_PROC in this read
    ('flags', 'I'),             # REQ_*
    ('_pad', '4x'),
    ('cgns_root', 'Q'),         # the viewer's cgroup namespace root, filled with the viewer
    ('cg_id', 'Q'),             # TASK_DIAG_REQ_CGROUP: the subtree ALL and ALL_THREAD answer
    # td_cgroup's place in the walk of the subtree, after a full buffer
    # (set by the program, td_css.h); cgc_seek: 1 to go on from there, left
    # non-zero by a run that could not find it again
    ('cgc_id', 'Q'), ('cgc_pid', 'I'), ('cgc_seek', 'I'),
    ('cmdline_proc', 'Q'),      # set by a plain object: messages marked MSG_F_CMDLINE_FROM_PROC
))
REQ_HOST_EACH = 1               # TD_ATTR_HOST_PID in every task's first message
HOST_PID = Layout('td_host_pid', (('tid', 'I'), ('tgid', 'I'), ('start', 'Q'),
                                  ('exec_id', 'Q')))

# Between the programs and their drivers only (td_iter.h); drivers strip both.
MSG_F_VMA_FROM_PROC = 0x80000000    # task_diag_msg.flags: read this task's VMAs from /proc
MSG_F_CMDLINE_FROM_PROC = 0x40000000    # ...and its CMDLINE (a plain object could not)
ATTR_HOST_PID = 0x3f00              # {tid, tgid} in the driver's pid namespace
EMPTY_VIEWER = bytes(VIEWER.size)

CONFIG = Layout('td_config', (
    ('overflowuid', 'I'), ('overflowgid', 'I'), ('loaded_at', 'Q'), ('obj_sha256', '32s'),
    ('gate_start', 'Q'), ('gate_end', 'Q'), ('gate_flags', 'Q'),
    # VMA_STAT by page-table walk (task_diag/bpf/td_pagewalk.h)
    ('pw_page_offset', 'Q'), ('pw_vmemmap', 'Q'), ('pw_bad', 'Q'),
    ('pw_levels', 'I'), ('pw_max_swapfiles', 'I'), ('pw_hwpoison_num', 'I'),
    ('vma_stat', 'I'),
    ('tier', 'I'),              # TIER_*: the object loaded
    ('tier_forced', 'I'),       # 1: by task-diag-load --tier
    ('landlock_off', 'i'),      # Landlock's domain in cred->security, + 1 (task_diag/lsm.py)
    ('statm_cpus', 'I'),        # STATM's RSS: 0 approximate, N summed over N CPUs (loader)
    ('cmdline', 'I'),           # 1: a sleepable object, which reads CMDLINE itself
    ('cgroup_walk', 'I'),       # 1: td_cgroup pinned (PIN_PROG_CGROUP)
    ('cmdline_direct', 'I'),    # 1: CMDLINE read through the direct map (loader/cmdline.py);
                                # 2: for the reads of cmdline_checker alone (its check)
    ('cmdline_slow', 'I'),      # CMDLINE reads that went the slow way (tests look)
    ('cmdline_checker', 'I'),   # the tgid of the loader checking the direct read
    ('reserved', 'I'),
))

# td_config.tier: the objects, richest first (task_diag/bpf/Makefile, task_diag/loader/load.py)
TIER_DPATH, TIER_WALK, TIER_NOVMA = 1, 2, 3

# td_config.vma_stat: where VMA_STAT's numbers come from
VMA_STAT_SMAPS, VMA_STAT_PAGEWALK = 0, 1
VMA_STAT_SOURCES = {'smaps': VMA_STAT_SMAPS, 'pagewalk': VMA_STAT_PAGEWALK}

# dump_strategy values that the programs answer with nothing (td_iter.h):
PROBE_FOUND = 0xff              # only: does a task with tid == pid exist, its tgid
PROBE_VIEWER = 0xfe             # only: fill td_request.viewer from the task visited
PROBE_CALIBRATE = 0xfd          # only: find td_config.pw_* from the reader's own task
PROBE_LSM = 0xfc                # only: copy the task's cred->security blob into viewer
LSM_PEEK = 64

# td_request.cont_state (td_iter.h)
CONT_NONE, CONT_PENDING, CONT_RESUME, CONT_DONE, CONT_MORE = 0, 1, 2, 3, 4

# Pinned objects, under the bpffs directory (spec section 5).
PIN_DIR = '/sys/fs/bpf/task_diag'
PIN_ALL = 'all'                 # iterator link, {DUMP_ALL, SHOW_BASE}
PIN_ALL_THREADS = 'all_threads'  # iterator link, {DUMP_ALL_THREAD, SHOW_BASE}
PIN_PROG = 'prog_task'          # the program, for per-request links
PIN_REQUESTS = 'requests'       # td_requests map
PIN_CONFIG = 'config'           # td_config map
PINS = (PIN_ALL, PIN_ALL_THREADS, PIN_PROG, PIN_REQUESTS, PIN_CONFIG)
# Pinned where the kernel has the css_task iterator (6.7): td_cgroup
# (task_diag/bpf/td_css.h), for per-request links of the cgroup filter
PIN_PROG_CGROUP = 'prog_cgroup'
OPTIONAL_PINS = (PIN_PROG_CGROUP,)


# task_diag.watch()'s events (task_diag/bpf/td_events.h)
EV_FORK, EV_EXEC, EV_EXIT, EV_COMM = 1, 2, 3, 4
EVENT = Layout('td_event', (
    ('type', 'I'), ('pid', 'I'), ('tgid', 'I'), ('ppid', 'I'),
    ('start', 'Q'),             # start_boottime, ns
    ('ktime', 'Q'),             # bpf_ktime_get_boot_ns() of the event
    ('comm', '16s'),
    ('status', 'I'),            # EXIT: the wait status
    ('cmdline_len', 'I'),       # EXEC: the command line's bytes after the struct
    ('utime', 'Q'), ('stime', 'Q'),     # EXIT: ns, as the parent's wait4() rusage
    ('minflt', 'Q'), ('majflt', 'Q'),
))
EV_CONFIG = Layout('td_ev_config', (('cgroup', 'Q'),))
