"""VMA records and /proc/PID/maps lines in one comparable form: the
(address, perms, offset, dev, inode) head of a maps line and its name."""
from task_diag import wire


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
