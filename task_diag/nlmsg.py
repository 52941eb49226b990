"""pyroute2 message classes for task_diag responses: the readable decoder
(`task-diag decode < dump.bin`).  Slower than wire.decode(), but it shows
every message with its header and attributes as pyroute2 does, and keeps
what it does not know as raw bytes.  The field tables are those of
task_diag.wire: nothing is defined twice.
"""
import sys

from pyroute2.netlink import nla, nlmsg

from . import wire
from .ps_cli import printable


def _fields(layout):
    # pyroute2 skips fields whose names start with '_' (our padding).
    return tuple(('__' + name if name.startswith('_') else name, fmt)
                 for name, fmt in layout.fields)


class task_diag_msg(nlmsg):
    """nlmsghdr + struct task_diag_msg + one attribute per group."""

    fields = _fields(wire.MSG)
    nla_map = (
        (wire.TASK_DIAG_BASE, 'TASK_DIAG_BASE', 'base'),
        (wire.TASK_DIAG_CRED, 'TASK_DIAG_CRED', 'cred'),
        (wire.TASK_DIAG_VMA, 'TASK_DIAG_VMA', 'vma'),
        (wire.TASK_DIAG_STAT, 'TASK_DIAG_STAT', 'stat'),
        (wire.TASK_DIAG_STATM, 'TASK_DIAG_STATM', 'statm'),
        (wire.TASK_DIAG_CMDLINE, 'TASK_DIAG_CMDLINE', 'cmdline'),
        (wire.TASK_DIAG_STAT_EXT, 'TASK_DIAG_STAT_EXT', 'stat_ext'),
        (wire.TASK_DIAG_NS, 'TASK_DIAG_NS', 'ns'),
        (wire.TASK_DIAG_CGROUP, 'TASK_DIAG_CGROUP', 'cgroup'),
    )

    class base(nla):
        fields = _fields(wire.BASE)

        def decode(self):
            nla.decode(self)
            self['comm'] = wire.decode_comm(self['comm'])

    class cred(nla):
        fields = _fields(wire.CREDS)

    class stat(nla):
        fields = _fields(wire.STAT)

    class statm(nla):
        fields = _fields(wire.STATM)

    class ns(nla):
        fields = _fields(wire.NS)

    class stat_ext(nla):
        fields = _fields(wire.STAT_EXT)

    class cmdline(nla):
        """The bytes of /proc/PID/cmdline: 'raw', and 'args' as psutil
        splits them."""
        fields = ()

        def decode(self):
            nla.decode(self)
            self['raw'] = bytes(self.data[self.offset + 4:self.offset + self.length])
            self['args'] = wire.split_cmdline(self['raw'])

    class cgroup(nla):
        """task_diag_cgroup and the path after it."""
        fields = ()

        def decode(self):
            nla.decode(self)
            cg = wire.decode_cgroup(self.data[self.offset + 4:self.offset + self.length])
            self.update(cg._asdict())

    class vma(nla):
        """The packed task_diag_vma records, decoded by wire.decode_vmas."""
        fields = ()

        def decode(self):
            nla.decode(self)
            start = self.offset + 4
            end = self.offset + self.length
            self['records'] = [v._asdict() for v in wire.decode_vmas(self.data, start, end)]


def parse(buf):
    """[task_diag_msg] for a whole response."""
    for _ in wire.iter_messages(buf):
        pass                    # check the framing first: DecodeError, not garbage
    out = []
    view = memoryview(buf)
    for off, length in wire.message_spans(buf):
        # one message's bytes each, not the rest of the buffer: that would
        # copy a whole-system dump once per task
        m = task_diag_msg(bytes(view[off:off + length]))
        m.decode()
        out.append(m)
    return out


KNOWN = {number for number, _, _ in task_diag_msg.nla_map}


def to_dicts(buf):
    """Plain dicts, comparable with wire.decode(): one per message.
    Attributes pyroute2 has no class for are kept, as the list 'unknown'
    of (nla_type, payload bytes): pyroute2 keeps only their header."""
    out = []
    for m, (_, _, attrs) in zip(parse(buf), wire.iter_messages(buf)):
        d = {'pid': m['pid'], 'tgid': m['tgid'], 'flags': m['flags'],
             'seq': m['header']['sequence_number'], 'type': m['header']['type']}
        for name, value in m['attrs']:
            if name == 'UNKNOWN':
                continue
            key = name.replace('TASK_DIAG_', '').lower()
            if hasattr(value, 'items'):
                value = {k: v for k, v in value.items()
                         if k not in ('header', 'attrs') and not k.startswith('_')}
            d[key] = value
        unknown = [(t, bytes(buf[a:b])) for t, a, b in attrs if t not in KNOWN]
        if unknown:
            d['unknown'] = unknown
        out.append(d)
    return out


def dump_text(buf, out=sys.stdout):
    """One block per message, pyroute2's field names, the state as its
    letter, comm as ps prints it (no byte that drives a terminal), the
    command line as Python literals (raw bytes, and args as
    Task.args splits them), stat_ext's PF_* flags in hex."""
    for d in to_dicts(buf):
        flags = ' CONT' if d['flags'] & wire.TASK_DIAG_FLAG_CONT else ''
        print('message pid %d tgid %d seq %d%s' % (d['pid'], d['tgid'], d['seq'], flags), file=out)
        for group in ('base', 'cred', 'vma', 'stat', 'statm', 'cmdline', 'stat_ext', 'ns',
                      'cgroup'):
            value = d.get(group)
            if value is None:
                continue
            if group == 'base':
                value = dict(value, state=wire.STATE_LETTERS[value['state']]
                             if value['state'] < len(wire.STATE_LETTERS) else value['state'],
                             comm=printable(value['comm']))
            elif group == 'cmdline':
                value = {'raw': repr(value['raw']), 'args': repr(value['args'])}
            elif group == 'stat_ext':
                value = dict(value, flags='%#x' % value['flags'])
            if group == 'vma':
                for rec in value['records']:
                    print('  vma %s' % rec, file=out)
                continue
            print('  %s %s' % (group, ' '.join('%s=%s' % kv for kv in value.items())), file=out)
        for nla_type, payload in d.get('unknown', ()):
            print('  attr %d %s' % (nla_type, payload.hex()), file=out)
