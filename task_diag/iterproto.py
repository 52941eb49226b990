"""The internal request record between task_diag's drivers and the BPF
iterator programs (bpf/td_iter.h, struct td_request); not the wire format.
Keep in sync with td_iter.h: tests/test_layout.py compares the two."""
from .wire import Layout

REQUEST = Layout('td_request', (
    ('show_flags', 'Q'), ('dump_strategy', 'Q'),
    ('pid', 'I'), ('seq', 'I'),
    ('reader_start', 'Q'),      # the reader thread's start, clock ticks after boot
    ('found', 'I'), ('found_tgid', 'I'),
))

CONFIG = Layout('td_config', (
    ('overflowuid', 'I'), ('overflowgid', 'I'), ('loaded_at', 'Q'), ('obj_sha256', '32s'),
))

# A dump_strategy that the programs answer with nothing: used to ask only
# whether a task exists (td_request.found) and what its tgid is.
PROBE_STRATEGY = 0xff

# Pinned objects, under the bpffs directory (spec section 5).
PIN_DIR = '/sys/fs/bpf/task_diag'
PIN_ALL = 'all'                 # iterator link, {DUMP_ALL, SHOW_BASE}
PIN_ALL_THREADS = 'all_threads'  # iterator link, {DUMP_ALL_THREAD, SHOW_BASE}
PIN_PROG = 'prog_task'          # the program, for per-request links
PIN_REQUESTS = 'requests'       # td_requests map
PIN_CONFIG = 'config'           # td_config map
PINS = (PIN_ALL, PIN_ALL_THREADS, PIN_PROG, PIN_REQUESTS, PIN_CONFIG)
