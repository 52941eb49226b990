"""VMA records and /proc/PID/maps lines in one comparable form: the
(address, perms, offset, dev, inode) head of a maps line and its name; and
the tests' own reading of maps and smaps (parse_header(), read_smaps()),
apart from task_diag.procfs."""
from task_diag import wire

F = wire.VMA_F


def maps_lines(pid):
    with open('/proc/%d/maps' % pid, 'rb') as f:
        return parse_maps(f.read())


def parse_maps(data):
    """[(head, name)] of the bytes of a /proc/PID/maps file."""
    lines = data.decode('utf-8', 'surrogateescape').splitlines()
    out = []
    for line in lines:
        f = line.split(None, 5)
        name = f[5] if len(f) > 5 else ''
        out.append((' '.join(f[:5]), name))
    return out


def vma_lines(vmas):
    out = []
    for v in vmas:
        perms = ''.join(c if v.vm_flags & wire.VMA_F[n] else '-'
                        for c, n in (('r', 'READ'), ('w', 'WRITE'), ('x', 'EXEC')))
        perms += 's' if v.vm_flags & wire.VMA_F['MAYSHARE'] else 'p'
        name = v.name
        if isinstance(name, bytes):
            name = name.rstrip(b'\0').decode('utf-8', 'surrogateescape')
        out.append(('%x-%x %s %08x %02x:%02x %d' % (v.start, v.end, perms, v.pgoff, v.major,
                                                   v.minor, v.inode), name or ''))
    return out


def parse_header(line):
    """(start, end, perms, offset, major, minor, inode, name) of a maps
    line; name None when there is none."""
    parts = line.split(None, 5)
    start, end = (int(x, 16) for x in parts[0].split(b'-'))
    major, minor = (int(x, 16) for x in parts[3].split(b':'))
    name = parts[5] if len(parts) > 5 else None
    return (start, end, parts[1].decode(), int(parts[2], 16), major, minor, int(parts[4]),
            name)


def read_maps(pid):
    with open('/proc/%d/maps' % pid, 'rb') as f:
        data = f.read()
    return [parse_header(line) for line in data.split(b'\n') if line]


def read_smaps(pid):
    """[(header tuple, {field: int, 'VmFlags': [codes]}, [raw lines])]."""
    with open('/proc/%d/smaps' % pid, 'rb') as f:
        data = f.read()
    out = []
    for line in data.split(b'\n'):
        if not line:
            continue
        first = line.split(b' ', 1)[0]
        if b'-' in first and not first.endswith(b':'):
            out.append((parse_header(line), {}, [line]))
            continue
        key, _, value = line.partition(b':')
        fields = out[-1][1]
        out[-1][2].append(line)
        if key == b'VmFlags':
            fields['VmFlags'] = value.decode().split()
        elif value.endswith(b' kB'):
            fields[key.decode()] = int(value[:-3])
    return out


def perms_of(flags):
    return ('r' if flags & F['READ'] else '-') + ('w' if flags & F['WRITE'] else '-') + \
        ('x' if flags & F['EXEC'] else '-') + ('s' if flags & F['MAYSHARE'] else 'p')


def as_maps(v):
    """A decoded wire.Vma as the tuple parse_header() gives."""
    name = None if v.name is None else v.name.encode('utf-8', 'surrogateescape')
    return (v.start, v.end, perms_of(v.vm_flags), v.pgoff, v.major, v.minor, v.inode, name)
