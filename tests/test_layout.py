"""The Python struct tables against the C header, as compiled.

A C program generated from the Python tables is built with gcc against
task_diag/bpf/task_diag.h and task_diag/bpf/td_iter.h and prints sizeof, offsetof and the size
of every field the tables name; clang -Wpadded tells where the C structs
have padding, so that a C member the tables lack cannot hide behind a
Python pad.  The header's constants are compared with Python's, and the
header's VMA helpers walk records that Python packed.
"""
import os
import re
import shutil
import struct
import subprocess

import pytest

from task_diag import iterproto, wire

from helpers import ROOT

BPF_DIR = os.path.join(ROOT, 'task_diag', 'bpf')
HEADERS = '#include <stddef.h>\n#include <stdio.h>\n#include <linux/types.h>\n' \
          '#include <linux/netlink.h>\n#include "task_diag.h"\n#include "td_iter.h"\n' \
          '#include "td_events.h"\n'

# Every table of both modules (wire.NLMSGHDR .. wire.REQUEST, iterproto's).
LAYOUTS = [v for mod in (wire, iterproto) for v in vars(mod).values() if isinstance(v, wire.Layout)]
assert {'task_diag_base', 'task_diag_creds', 'td_request', 'td_config'} <= \
    {l.cname for l in LAYOUTS}

# The sizes the spec states (task_diag_uapi.md), so that a change made to
# both the header and the tables is still noticed.
SPEC_SIZES = {'nlmsghdr': 16, 'nlattr': 4, 'task_diag_msg': 12, 'task_diag_base': 44,
              'task_diag_creds': 64, 'task_diag_stat': 72, 'task_diag_vma': 64,
              'task_diag_vma_stat': 80, 'task_diag_pid': 24}


def _constants():
    """{C name: Python value} of every constant the header and wire share."""
    c = {'TASK_DIAG_CMD_GET': wire.TASK_DIAG_CMD_GET,
         'TASK_DIAG_FLAG_CONT': wire.TASK_DIAG_FLAG_CONT,
         'TASK_DIAG_COMM_LEN': wire.TASK_DIAG_COMM_LEN,
         'TASK_DIAG_ATTR_MAX': wire.TASK_DIAG_ATTR_MAX,
         'NLM_F_MULTI': wire.NLM_F_MULTI, 'NLMSG_HDRLEN': wire.NLMSG_HDRLEN,
         'NLA_HDRLEN': wire.NLA_HDRLEN, 'NLA_TYPE_MASK': wire.NLA_TYPE_MASK,
         'TD_PROBE_FOUND': iterproto.PROBE_FOUND, 'TD_PROBE_VIEWER': iterproto.PROBE_VIEWER}
    for group in ('BASE', 'CRED', 'VMA', 'VMA_STAT', 'STAT', 'STATM', 'CMDLINE'):
        c['TASK_DIAG_' + group] = getattr(wire, 'TASK_DIAG_' + group)
        c['TASK_DIAG_SHOW_' + group] = getattr(wire, 'SHOW_' + group)
    for strategy, name in wire.STRATEGY_NAMES.items():
        c['TASK_DIAG_DUMP_' + name.upper()] = strategy
    for name, bit in wire.VMA_F.items():
        c['TASK_DIAG_VMA_F_' + name] = bit
    states = ('RUNNING', 'INTERRUPTIBLE', 'UNINTERRUPTIBLE', 'STOPPED', 'TRACE_STOP', 'DEAD',
              'ZOMBIE', 'PARKED', 'IDLE')
    for state, letter in zip(states, 'RSDTtXZPI'):
        c['TASK_DIAG_' + state] = wire.STATE_LETTERS.index(letter)
    return c


def _program():
    lines = [HEADERS, 'int main(void)\n{']
    for layout in LAYOUTS:
        s = 'struct ' + layout.cname
        lines.append('\tprintf("size %s %%zu\\n", sizeof(%s));' % (layout.cname, s))
        for name in layout.names:
            lines.append('\tprintf("field %s %s %%zu %%zu\\n", offsetof(%s, %s), '
                         'sizeof(((%s *)0)->%s));' % (layout.cname, name, s, name, s, name))
    for name in _constants():
        expr = '(__u16)NLA_TYPE_MASK' if name == 'NLA_TYPE_MASK' else name   # an int ~(...)
        lines.append('\tprintf("const %s %%llu\\n", (unsigned long long)(%s));' % (name, expr))
    lines.append('\treturn 0;\n}\n')
    return '\n'.join(lines)


def _build(tmp, name, source, compiler='gcc', extra=()):
    src = os.path.join(tmp, name + '.c')
    with open(src, 'w') as f:
        f.write(source)
    exe = os.path.join(tmp, name)
    r = subprocess.run([compiler, '-std=gnu11', '-Wall', '-Wextra', '-Werror', '-I', BPF_DIR,
                        *extra, '-o', exe, src], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return exe, r.stderr


@pytest.fixture(scope='module')
def c_layout(tmp_path_factory):
    """{'size': {struct: n}, 'field': {(struct, field): (offset, size)},
    'const': {name: value}} as the compiled header says."""
    if not shutil.which('gcc'):
        pytest.fail('gcc is needed to check the layout against the header')
    exe, _ = _build(str(tmp_path_factory.mktemp('layout')), 'layout', _program())
    out = {'size': {}, 'field': {}, 'const': {}}
    run = subprocess.run([exe], capture_output=True, text=True, check=True)
    for line in run.stdout.splitlines():
        kind, *rest = line.split()
        if kind == 'size':
            out['size'][rest[0]] = int(rest[1])
        elif kind == 'field':
            out['field'][rest[0], rest[1]] = (int(rest[2]), int(rest[3]))
        else:
            out['const'][rest[0]] = int(rest[1])
    return out


@pytest.mark.parametrize('layout', LAYOUTS, ids=[l.cname for l in LAYOUTS])
def test_struct_layout(c_layout, layout):
    """Size, and offset and size of every named field, as in C."""
    assert layout.size == c_layout['size'][layout.cname]
    if layout.cname in SPEC_SIZES:
        assert layout.size == SPEC_SIZES[layout.cname]
    offsets = layout.offsets()
    for name, fmt in layout.fields:
        if fmt.endswith('x'):
            continue
        assert c_layout['field'][layout.cname, name] == \
            (offsets[name], struct.calcsize('<' + fmt)), name


def test_creds_caps_are_u32_pairs(c_layout):
    """Each capability set is struct task_diag_caps {u32 cap[2]}, low word
    first: Python reads it as one little-endian u64 at the member's offset."""
    for name in ('cap_inheritable', 'cap_permitted', 'cap_effective', 'cap_bset'):
        assert c_layout['field']['task_diag_creds', name][1] == 8
        assert dict(wire.CREDS.fields)[name] == 'Q'
    raw = struct.pack('<II', 0x89abcdef, 0x1234567)
    assert struct.unpack('<Q', raw)[0] == 0x0123456789abcdef


def test_padding_is_padding(tmp_path):
    """Every byte of each C struct is either a field the Python table names
    or padding the compiler added where the table has its _pad: no C
    member is missing from the tables."""
    if not shutil.which('clang'):
        pytest.fail('clang (needed for the BPF build) is needed for -Wpadded')
    decls = ''.join('struct %s v%d;\n' % (l.cname, i) for i, l in enumerate(LAYOUTS))
    _, err = _build(str(tmp_path), 'padded', HEADERS + decls + 'int main(void) { return 0; }\n',
                    'clang', ['-Wpadded', '-Wno-error=padded'])
    reported = {}
    for m in re.finditer(r"padding (?:size of |struct )?'struct (\w+)' with (\d+) bytes? to "
                         r"(alignment boundary|align '(\w+)')", err):
        reported.setdefault(m.group(1), []).append(
            ('tail' if m.group(3) == 'alignment boundary' else m.group(4), int(m.group(2))))
    assert reported, err            # -Wpadded works: task_diag_base has a tail pad
    for layout in LAYOUTS:
        pads, prev = [], None
        for name, fmt in layout.fields:
            if fmt.endswith('x'):
                pads.append([None, struct.calcsize('<' + fmt), prev])
            else:
                if pads and pads[-1][0] is None:
                    pads[-1][0] = name      # interior pad: before this field
                prev = name
        want = sorted(('tail' if p[0] is None else p[0], p[1]) for p in pads)
        assert sorted(reported.get(layout.cname, [])) == want, layout.cname


def test_constants(c_layout):
    consts = _constants()
    assert set(c_layout['const']) == set(consts)
    mismatched = {k: (c_layout['const'][k], v) for k, v in consts.items()
                  if c_layout['const'][k] != v}
    assert not mismatched, mismatched
    assert len(wire.VMA_F) == 28 and wire.VMA_F['MERGEABLE'] == 1 << 27
    assert not {iterproto.PROBE_FOUND, iterproto.PROBE_VIEWER} & set(wire.STRATEGIES)


def test_header_is_a_standalone_uapi_header(tmp_path):
    """The header compiles alone, as C99 with -pedantic and as C++."""
    src = tmp_path / 'alone.c'
    src.write_text('#include "task_diag.h"\nint main(void) { return TASK_DIAG_DUMP_ONE - 1; }\n')
    for cmd in (['gcc', '-std=c99', '-pedantic', '-Wall', '-Wextra', '-Werror', '-fsyntax-only'],
                ['gcc', '-x', 'c++', '-Wall', '-Wextra', '-Werror', '-fsyntax-only']):
        r = subprocess.run(cmd + ['-I', BPF_DIR, str(src)], capture_output=True, text=True)
        assert r.returncode == 0, (cmd, r.stderr)


VMA_WALK = HEADERS + r'''
#include <string.h>
#include <unistd.h>
static void *nla_data(const struct nlattr *nla) { return (char *)nla + NLA_HDRLEN; }
static int nla_len(const struct nlattr *nla) { return nla->nla_len - NLA_HDRLEN; }

int main(void)
{
	static __u32 buf[4096];
	struct task_diag_vma *vma;
	struct nlattr *attr = (struct nlattr *)buf;

	if (read(0, buf, sizeof(buf)) <= 0)
		return 1;
	task_diag_for_each_vma(vma, attr) {
		struct task_diag_vma v;
		struct task_diag_vma_stat st;
		char *name = task_diag_vma_name(vma);

		memcpy(&v, vma, sizeof(v));
		printf("%llx %llx %llx %llx %u %u %llu %u %s", v.start, v.end, v.vm_flags, v.pgoff,
		       v.major, v.minor, v.inode, v.generation, name ? name : "-");
		if (task_diag_vma_stat(vma)) {
			memcpy(&st, task_diag_vma_stat(vma), sizeof(st));
			printf(" %llu %llu %llu", st.resident, st.shared_dirty, st.pss);
		}
		printf("\n");
	}
	return 0;
}
'''


def test_vma_helpers_walk_python_records(tmp_path):
    """task_diag_for_each_vma(), task_diag_vma_name() and task_diag_vma_stat()
    of the header read records packed by the Python tables (4-byte aligned,
    names and stats at their offsets) as wire.decode_vmas does."""
    exe, _ = _build(str(tmp_path), 'vmawalk', VMA_WALK)
    records = []
    cases = [(b'/usr/lib/x86_64-linux-gnu/libc.so.6', True), (None, False), (b'[heap]', True),
             (b'[anon:x y]', False)]
    for i, (name, with_stat) in enumerate(cases):
        off = wire.VMA.size
        rec = bytearray(wire.VMA.size)
        extra = b''
        name_off = name_len = stat_off = stat_len = 0
        if with_stat:
            stat_off, stat_len = off, wire.VMA_STAT.size
            extra += wire.VMA_STAT.pack(4096 * (i + 1), 1, 8192 * i, 3, 4, 5, 6, 7, 8, 4096 << 12)
        if name:
            name_off, name_len = off + len(extra), len(name) + 1
            extra += name + b'\0'
        extra += b'\0' * (-len(extra) & 3)
        wire.VMA.struct.pack_into(rec, 0, 0x400000 + i * 0x10000, 0x401000 + i * 0x10000,
                                  wire.VMA_F['READ'] | wire.VMA_F['MAYSHARE'] << i, i * 4096,
                                  8, i, 1000 + i, 7 + i, wire.VMA.size + len(extra),
                                  name_off, name_len, stat_off, stat_len)
        records.append(bytes(rec) + extra)
    payload = b''.join(records)
    attr = wire.NLATTR.pack(wire.NLA_HDRLEN + len(payload), wire.TASK_DIAG_VMA) + payload
    out = subprocess.run([exe], input=attr, capture_output=True, check=True).stdout.decode()
    vmas = wire.decode_vmas(attr, wire.NLA_HDRLEN, len(attr))
    assert len(vmas) == 4 and vmas[2].name == '[heap]' and vmas[1].name is None
    want = []
    for v in vmas:
        line = '%x %x %x %x %u %u %u %u %s' % (v.start, v.end, v.vm_flags, v.pgoff, v.major,
                                                v.minor, v.inode, v.generation, v.name or '-')
        if v.stat:
            line += ' %u %u %u' % (v.stat.resident, v.stat.shared_dirty, v.stat.pss)
        want.append(line)
    assert out.splitlines() == want
