"""One Python measurement of bench/run.py, in a fresh interpreter so that no
cache of an earlier run helps (psutil keeps every Process it has seen).

    worker.py psutil                 psutil.process_iter(...) into a list
    worker.py dump                   task_diag.dump(DUMP_ALL) into a list
    worker.py one PID CALLS ORDER    DUMP_ONE through the API against
                                     reading stat + status, CALLS times each;
                                     ORDER: "api,proc" or "proc,api"
    worker.py smaps_psutil           psutil.Process(pid).memory_maps(grouped=False)
                                     for every process
    worker.py smaps_plain            every /proc/PID/smaps through a plain
                                     line parser into one dict per VMA
    worker.py groups SHOW [CGROUP]   the raw bytes of {DUMP_ALL, SHOW} through
                                     the pinned path in-process (BpfBackend.raw):
                                     what groups cost the dump; with CGROUP (an
                                     id), that subtree only (the request's filter)
    worker.py scrape                 one scrape of task-diag-exporter's collector
    worker.py watch_rate FORKRATE RATE SECONDS   a watch() read while bench/bin/forkrate
                                     forks RATE children a second
    worker.py vma_iter SHOW [PIN]    the raw bytes of {DUMP_ALL, SHOW} through
                                     the pinned path in-process (BpfBackend.raw)
    worker.py vma_dump SHOW [PIN]    task_diag.dump(DUMP_ALL, show=SHOW,
                                     source='bpf') into a list, every VMA touched
                                     (PIN: the pins of another copy, run.py --pin-dir)

Prints one JSON object; times are measured here, imports excluded:
cpu_ms is user + system time of this process, wall_ms is elapsed time.
The VMA modes also count the VMAs they got (vmas), so that a reader that
lost them cannot look fast.
"""
import json
import os
import resource
import struct
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


# --- VMAs -------------------------------------------------------------------

def pids():
    return [int(name) for name in os.listdir('/proc') if name.isdigit()]


def run_smaps_psutil():
    import psutil

    def scan():
        maps = []
        for pid in psutil.pids():
            try:
                maps.append(psutil.Process(pid).memory_maps(grouped=False))
            except psutil.Error:        # gone meanwhile (NoSuchProcess, ZombieProcess)
                pass
        return maps, sum(1 for m in maps for _ in m)
    (maps, vmas), cpu, wall = measure(scan)
    return {'tasks': len(maps), 'vmas': vmas, 'cpu_ms': cpu, 'wall_ms': wall}


def parse_smaps_plain(data):
    """One dict per VMA of smaps text @data: the header line's fields, then
    every "Key: value [kB]" line under its bytes key (kB turned into bytes),
    VmFlags a list."""
    vmas, cur = [], None
    for line in data.split(b'\n'):
        key, sep, rest = line.partition(b':')
        if sep and b' ' not in key:
            if key == b'VmFlags':
                cur['VmFlags'] = rest.split()
            else:
                words = rest.split()
                cur[key] = int(words[0]) << 10 if len(words) > 1 else int(words[0])
        elif line:
            # "start-end perms offset dev inode [name]"; a name may hold spaces
            fields = line.split(None, 5)
            start, end = fields[0].split(b'-')
            cur = {'start': int(start, 16), 'end': int(end, 16), 'perms': fields[1].decode(),
                   'offset': int(fields[2], 16), 'dev': fields[3].decode(),
                   'inode': int(fields[4]),
                   'name': os.fsdecode(fields[5]) if len(fields) > 5 else None}
            vmas.append(cur)
    return vmas


def run_smaps_plain():
    def scan():
        maps = []
        for pid in pids():
            try:
                with open('/proc/%d/smaps' % pid, 'rb') as f:
                    maps.append(parse_smaps_plain(f.read()))
            except (FileNotFoundError, ProcessLookupError):
                pass                    # gone meanwhile
            except PermissionError:
                pass                    # hidden from root too (pid 1 here)
        return maps, sum(1 for m in maps for _ in m)
    (maps, vmas), cpu, wall = measure(scan)
    return {'tasks': len(maps), 'vmas': vmas, 'cpu_ms': cpu, 'wall_ms': wall}


def count_raw(buf):
    """(tasks, vma records) of a raw answer: tasks are messages without
    TASK_DIAG_FLAG_CONT, records are walked by their vma_len."""
    from task_diag import wire
    vma_len = struct.Struct('<H')
    len_off = wire.VMA.offsets()['vma_len']
    tasks = vmas = 0
    for _, (_, _, flags), attrs in wire.iter_messages(buf):
        if not flags & wire.TASK_DIAG_FLAG_CONT:
            tasks += 1
        for nla_type, start, end in attrs:
            if nla_type == wire.TASK_DIAG_VMA:
                off = start
                while off < end:
                    length = vma_len.unpack_from(buf, off + len_off)[0]
                    if length < wire.VMA.size:
                        raise ValueError('bad vma_len %d at offset %d' % (length, off))
                    off += length
                    vmas += 1
    return tasks, vmas


def run_vma_iter(show, pin_dir=None):
    from task_diag import wire
    from task_diag.bpf_backend import BpfBackend
    b = BpfBackend(pin_dir) if pin_dir else BpfBackend()
    # Warm-up on ourselves: the first SHOW_VMA request reads the kernel's
    # BTF once (pinned.vma_supported()), which no dump should be charged.
    b.raw(wire.DUMP_ONE, os.getpid(), show=show)
    buf, cpu, wall = measure(b.raw, wire.DUMP_ALL, 0, show)
    tasks, vmas = count_raw(buf)
    return {'tasks': tasks, 'vmas': vmas, 'bytes': len(buf), 'cpu_ms': cpu, 'wall_ms': wall}


def run_groups(show, cgroup=0):
    from task_diag import wire
    from task_diag.bpf_backend import BpfBackend
    b = BpfBackend()
    b.raw(wire.DUMP_ONE, os.getpid(), show=show)        # warm-up: the pinned objects
    buf, cpu, wall = measure(lambda: b.raw(wire.DUMP_ALL, 0, show, cgroup=cgroup))
    return {'tasks': sum(1 for _ in wire.message_spans(buf)), 'bytes': len(buf),
            'cpu_ms': cpu, 'wall_ms': wall}


def run_scrape():
    """One scrape of task-diag-exporter's collector, in-process, as
    prometheus_client serves it (the text exposition of every metric),
    after a first one (imports, the backend, the watch's dump)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from task_diag.exporter import Collector, Groups
    c = Collector(Groups('comm'))
    registry = CollectorRegistry()
    registry.register(c)
    try:
        generate_latest(registry)
        text, cpu, wall = measure(generate_latest, registry)
    finally:
        c.close()
    return {'tasks': 0, 'bytes': len(text), 'cpu_ms': cpu, 'wall_ms': wall}


def run_watch_rate(forkrate, rate, seconds):
    """A task_diag.watch() read while @forkrate forks and reaps @rate
    children a second for @seconds: the events it got of them, the ones
    lost, and its CPU (this process's: the reads, the decoding)."""
    import subprocess
    import task_diag
    w = task_diag.watch()
    w.dump()
    c0, w0 = cpu_ms(), time.perf_counter()
    load = subprocess.Popen([forkrate, str(rate), str(seconds)], stdout=subprocess.PIPE)
    exits = lost = 0
    while load.poll() is None:
        for e in w.poll(0.1):
            if e.kind == 'exit' and e.ppid == load.pid:
                exits += 1
            elif e.kind == 'lost':
                lost += e.count
    out = load.stdout.read().decode().split()
    forked = int(out[1])
    deadline = time.monotonic() + 10
    while exits < forked and time.monotonic() < deadline:
        for e in w.poll(0.1):
            if e.kind == 'exit' and e.ppid == load.pid:
                exits += 1
            elif e.kind == 'lost':
                lost += e.count
    cpu, wall = cpu_ms() - c0, (time.perf_counter() - w0) * 1000
    w.close()
    return {'tasks': forked, 'exits': exits, 'lost': lost, 'rate': forked / float(out[3]),
            'cpu_ms': cpu, 'wall_ms': wall}


def run_vma_dump(show, pin_dir=None):
    import task_diag
    if pin_dir:
        # dump() itself, on the backend of those pins
        from task_diag.bpf_backend import BpfBackend
        task_diag.api._backends['bpf'] = BpfBackend(pin_dir)
    # Warm-up on ourselves: imports, the backend's pinned objects, the BTF.
    list(task_diag.dump(task_diag.DUMP_ONE, os.getpid(), show=show, source='bpf'))

    def dump():
        tasks = list(task_diag.dump(task_diag.DUMP_ALL, show=show, source='bpf'))
        vmas = 0
        for t in tasks:
            for v in t.vmas or ():
                vmas += v.end > v.start         # touched: a lazy decoder pays here
        return tasks, vmas
    (tasks, vmas), cpu, wall = measure(dump)
    return {'tasks': len(tasks), 'vmas': vmas, 'cpu_ms': cpu, 'wall_ms': wall}


def main(argv):
    mode = argv[1]
    if mode == 'psutil':
        result = run_psutil()
    elif mode == 'smaps_psutil':
        result = run_smaps_psutil()
    elif mode == 'smaps_plain':
        result = run_smaps_plain()
    elif mode == 'scrape':
        result = run_scrape()
    elif mode == 'watch_rate':
        result = run_watch_rate(argv[2], int(argv[3]), float(argv[4]))
    elif mode == 'groups':
        result = run_groups(int(argv[2]), int(argv[3]) if len(argv) > 3 else 0)
    elif mode == 'vma_iter':
        result = run_vma_iter(int(argv[2]), *argv[3:4])
    elif mode == 'vma_dump':
        result = run_vma_dump(int(argv[2]), *argv[3:4])
    elif mode == 'dump':
        result = run_dump()
    elif mode == 'one':
        result = run_one(int(argv[2]), int(argv[3]), argv[4].split(','))
    else:
        raise SystemExit('unknown mode %r' % mode)
    json.dump(result, sys.stdout)


if __name__ == '__main__':
    main(sys.argv)
