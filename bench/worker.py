"""One Python measurement of bench/run.py, in a fresh interpreter so that no
cache of an earlier run helps (psutil keeps every Process it has seen).

    worker.py psutil                 psutil.process_iter(...) into a list
    worker.py dump                   task_diag.dump(DUMP_ALL) into a list
    worker.py one PID CALLS ORDER    DUMP_ONE through the API against
                                     reading stat + status, CALLS times each;
                                     ORDER: "api,proc" or "proc,api"

Prints one JSON object; times are measured here, imports excluded:
cpu_ms is user + system time of this process, wall_ms is elapsed time.
"""
import json
import resource
import sys
import time


def cpu_ms():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return (ru.ru_utime + ru.ru_stime) * 1000


def measure(fn, *args):
    """(fn's result, cpu ms, wall ms)"""
    c0, w0 = cpu_ms(), time.perf_counter()
    result = fn(*args)
    w1, c1 = time.perf_counter(), cpu_ms()
    return result, c1 - c0, (w1 - w0) * 1000


def run_psutil():
    import psutil
    tasks, cpu, wall = measure(
        lambda: list(psutil.process_iter(['pid', 'ppid', 'name', 'uids', 'gids'])))
    return {'tasks': len(tasks), 'cpu_ms': cpu, 'wall_ms': wall}


def run_dump():
    import task_diag
    show = task_diag.SHOW_BASE | task_diag.SHOW_CRED

    def dump():
        return list(task_diag.dump(task_diag.DUMP_ALL, show=show, source='bpf'))
    # The first call also opens the backend (its module, the pinned objects).
    # Its tasks are dropped at once: alive, they would slow the garbage
    # collections of the second call.
    first_cpu, first_wall = measure(dump)[1:]
    tasks, cpu, wall = measure(dump)
    return {'tasks': len(tasks), 'cpu_ms': cpu, 'wall_ms': wall,
            'first_cpu_ms': first_cpu, 'first_wall_ms': first_wall}


def proc_one(pid):
    """What DUMP_ONE with BASE, CRED and STAT answers, from /proc."""
    with open('/proc/%d/stat' % pid, 'rb') as f:
        stat = f.read()
    with open('/proc/%d/status' % pid, 'rb') as f:
        status = f.read()
    close = stat.rindex(b')')      # comm may hold ') '
    comm = stat[stat.index(b'(') + 1:close].decode('utf-8', 'surrogateescape')
    fields = stat[close + 2:].split()
    base = (pid, comm, fields[0], int(fields[1]), int(fields[2]), int(fields[3]))
    counters = tuple(int(x) for x in fields[7:15]) + (int(fields[17]),)
    keys = {}
    for line in status.splitlines():
        key, _, value = line.partition(b':')
        keys[key] = value
    cred = (tuple(int(x) for x in keys[b'Uid'].split()),
            tuple(int(x) for x in keys[b'Gid'].split()),
            int(keys[b'TracerPid']),
            tuple(int(keys[k], 16) for k in (b'CapInh', b'CapPrm', b'CapEff', b'CapBnd')))
    return base, counters, cred


def run_one(pid, calls, order):
    import task_diag
    show = task_diag.SHOW_BASE | task_diag.SHOW_CRED | task_diag.SHOW_STAT

    def api():
        return list(task_diag.dump(task_diag.DUMP_ONE, pid, show=show, source='bpf'))
    ways = {'api': api, 'proc': lambda: proc_one(pid)}
    for fn in ways.values():        # warm-up: the backend is opened here
        fn()

    def loop(fn):
        for _ in range(calls):
            fn()
    out = {'calls': calls}
    for name in order:
        _, cpu, wall = measure(loop, ways[name])
        out[name] = {'cpu_us': cpu * 1000 / calls, 'wall_us': wall * 1000 / calls}
    return out


def main(argv):
    mode = argv[1]
    if mode == 'psutil':
        result = run_psutil()
    elif mode == 'dump':
        result = run_dump()
    elif mode == 'one':
        result = run_one(int(argv[2]), int(argv[3]), argv[4].split(','))
    else:
        raise SystemExit('unknown mode %r' % mode)
    json.dump(result, sys.stdout)


if __name__ == '__main__':
    main(sys.argv)
