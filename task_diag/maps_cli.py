"""task-diag maps PID [--smaps]: a process's VMAs printed from one
task_diag request, in the format of /proc/PID/maps (byte for byte, for the
fields task_diag carries), or with --smaps a block per VMA with the
statistics task_diag_vma_stat carries, in the format of /proc/PID/smaps.

    main_maps(pid)                  # like cat /proc/PID/maps
    main_maps(pid, smaps=True)      # like cat /proc/PID/smaps, fewer lines
"""
import argparse
import errno
import os
import sys

from . import api, wire
from .procfs.maps import PAD_COLUMN, PSS_SHIFT, VMFLAG_CODES

READ, WRITE, EXEC, MAYSHARE = (wire.VMA_F[n] for n in ('READ', 'WRITE', 'EXEC', 'MAYSHARE'))

# The smaps lines we can print, in the kernel's order: (label, field).
SMAPS_LINES = (('Size', None), ('Rss', 'resident'), ('Pss', 'pss'),
               ('Shared_Clean', 'shared_clean'), ('Shared_Dirty', 'shared_dirty'),
               ('Private_Clean', 'private_clean'), ('Private_Dirty', 'private_dirty'),
               ('Referenced', 'referenced'), ('Anonymous', 'anonymous'),
               ('AnonHugePages', 'anonymous_thp'), ('Swap', 'swap'))


def perms(vm_flags):
    """The permission column of maps: 's' is VM_MAYSHARE, as the kernel has it."""
    return ('r' if vm_flags & READ else '-') + ('w' if vm_flags & WRITE else '-') + \
        ('x' if vm_flags & EXEC else '-') + ('s' if vm_flags & MAYSHARE else 'p')


def maps_line(v):
    """The /proc/PID/maps line of wire.Vma @v, newline included, as bytes:
    show_vma_header_prefix(), then, before a name, spaces to column 72 and
    one more."""
    line = b'%08x-%08x %s %08x %02x:%02x %d ' % (v.start, v.end, perms(v.vm_flags).encode(),
                                                v.pgoff, v.major, v.minor, v.inode)
    if v.name is not None:
        name = v.name if isinstance(v.name, bytes) else v.name.encode('utf-8', 'surrogateescape')
        line = line.ljust(PAD_COLUMN) + b' ' + name
    return line + b'\n'


def smaps_block(v):
    """maps_line(v), then the smaps lines task_diag carries (kB, the
    kernel's widths) and VmFlags with the mnemonics of the spec's bits."""
    out = [maps_line(v)]
    for label, field in SMAPS_LINES:
        if field is None:
            value = v.end - v.start
        elif v.stat is None:
            continue
        elif field == 'pss':
            value = v.stat.pss >> PSS_SHIFT
        else:
            value = getattr(v.stat, field)
        out.append(b'%-16s%8d kB\n' % (label.encode() + b':', value >> 10))
    out.append(b'VmFlags: ' + b''.join(code.encode() + b' ' for bit, code in VMFLAG_CODES.items()
                                       if v.vm_flags & bit) + b'\n')
    return b''.join(out)


def format_maps(vmas, smaps=False):
    """The text of maps (or of the smaps-like blocks) for @vmas, as bytes."""
    fmt = smaps_block if smaps else maps_line
    return b''.join(fmt(v) for v in vmas or ())


def vmas_of(pid, smaps=False, source=None):
    """The VMAs of process @pid (a list of wire.Vma, [] for a kernel thread
    or a zombie).  OSError ESRCH when there is no such task, EACCES when
    the reader may not see it."""
    show = wire.SHOW_VMA | (wire.SHOW_VMA_STAT if smaps else 0)
    for t in api.dump(wire.DUMP_ONE, pid, show=show, source=source):
        if t.pid == pid:
            return t.vmas or []
    raise OSError(errno.EACCES, os.strerror(errno.EACCES), '/proc/%d/maps' % pid)


def main_maps(pid, smaps=False, source=None, out=None):
    """Prints the VMAs of @pid like /proc/PID/maps (or, with @smaps, like
    /proc/PID/smaps for the fields task_diag carries) to the binary stream
    @out (default: standard output).  Returns 0; raises OSError (ESRCH,
    EACCES) as vmas_of() does."""
    text = format_maps(vmas_of(pid, smaps, source), smaps)
    if out is None:
        sys.stdout.flush()
        out = sys.stdout.buffer
    out.write(text)
    out.flush()
    return 0


if __name__ == '__main__':
    ap = argparse.ArgumentParser(prog='task-diag maps', description=__doc__.split('\n')[0])
    ap.add_argument('pid', type=int)
    ap.add_argument('--smaps', action='store_true')
    ap.add_argument('--source', choices=api.SOURCES, default=None)
    args = ap.parse_args()
    try:
        sys.exit(main_maps(args.pid, args.smaps, args.source))
    except OSError as e:
        print('task-diag: %s' % (e.strerror or e), file=sys.stderr)
        sys.exit(1)
