"""TASK_DIAG_VMA records from /proc/PID/smaps, and the messages that carry
them, split with TASK_DIAG_FLAG_CONT so that none exceeds MSG_MAX.

Everything comes from one read of /proc/PID/smaps, even when only SHOW_VMA
is asked for: its header lines are the lines of /proc/PID/maps, and its
VmFlags line is the only place /proc shows vm_flags beyond "rwxs" (and
"s" there is VM_MAYSHARE, not VM_SHARED).  The price is the page-table walk
smaps does for its statistics: about 5 ms per GiB resident (4 KiB pages)
and ten times the text of maps to parse, for flags that are exact; maps
alone could not tell SHARED, MAYWRITE, ACCOUNT, LOCKED, ... apart.

Per field:
  start, end, pgoff, major, minor, inode, name: the header line, which is
      the /proc/PID/maps line; the name is its last column exactly (the
      kernel pads with spaces to column 72, then writes one more; a file
      name keeps " (deleted)" and shows a newline as "\\012"; [heap],
      [stack], [vdso], [anon:NAME], ... as they are); no name: name_len 0.
  vm_flags: the VmFlags mnemonics, each mapped to its TASK_DIAG_VMA_F_*
      bit; mnemonics with no bit in the spec (wf, lf, um, uw, gu, sl, ...)
      are dropped.
  generation: 0.  /proc does not show i_generation.
  stat (SHOW_VMA_STAT): Rss, Shared_Clean, Shared_Dirty, Private_Clean,
      Private_Dirty, Referenced, Anonymous, AnonHugePages, Swap, in bytes
      (kB * 1024, exact: the kernel counts whole pages).  pss is Pss kB *
      1024 << 12: smaps prints pss >> (10 + PSS_SHIFT), so the sub-kB part
      the kernel keeps (bytes << 12) is lost here; pss >> 22 is exact.
"""
import re

from .. import wire

# The largest message a task's data is split into (nlmsghdr included).
MSG_MAX = 32768

# VmFlags mnemonics (fs/proc/task_mmu.c, show_smap_vma_flags) -> spec bit.
# "dw" and "mp" are gone from recent kernels; "bt" is VM_ARCH_1 on arm64.
VMFLAG_BITS = {
    b'rd': 'READ', b'wr': 'WRITE', b'ex': 'EXEC', b'sh': 'SHARED',
    b'mr': 'MAYREAD', b'mw': 'MAYWRITE', b'me': 'MAYEXEC', b'ms': 'MAYSHARE',
    b'gd': 'GROWSDOWN', b'pf': 'PFNMAP', b'dw': 'DENYWRITE', b'mp': 'MPX',
    b'lo': 'LOCKED', b'io': 'IO', b'sr': 'SEQ_READ', b'rr': 'RAND_READ',
    b'dc': 'DONTCOPY', b'de': 'DONTEXPAND', b'ac': 'ACCOUNT', b'nr': 'NORESERVE',
    b'ht': 'HUGETLB', b'ar': 'ARCH_1', b'bt': 'ARCH_1', b'dd': 'DONTDUMP',
    b'sd': 'SOFTDIRTY', b'mm': 'MIXEDMAP', b'hg': 'HUGEPAGE', b'nh': 'NOHUGEPAGE',
    b'mg': 'MERGEABLE',
}
VMFLAG_BITS = {code: wire.VMA_F[name] for code, name in VMFLAG_BITS.items()}
# The mnemonic of each spec bit (to print VmFlags back), in bit order: the
# order in which the kernel prints them too.
VMFLAG_CODES = dict(sorted((bit, code.decode()) for code, bit in VMFLAG_BITS.items()
                           if code != b'bt'))

# The smaps fields of task_diag_vma_stat, in its order (pss last, apart).
STAT_KEYS = (b'Rss', b'Shared_Clean', b'Shared_Dirty', b'Private_Clean', b'Private_Dirty',
             b'Referenced', b'Anonymous', b'AnonHugePages', b'Swap')
PSS_SHIFT = 12

# A header line: show_vma_header_prefix() then, if the VMA has a name,
# padding to column 72 (seq_pad), one space and the name.
_HEADER = re.compile(rb'([0-9a-f]+)-([0-9a-f]+) [r-][w-][x-][sp] ([0-9a-f]+) '
                     rb'([0-9a-f]+):([0-9a-f]+) ([0-9]+) ([^\n]*)')
_HEADER_LINE = re.compile(_HEADER.pattern + rb'$', re.MULTILINE)
PAD_COLUMN = 72             # seq_setwidth(m, 25 + sizeof(void *) * 6 - 1)
# VmFlags is the last line of each block; a name cannot hold a newline
# (seq_path shows it as \012), so this splits between blocks.
_VMFLAGS_SEP = b'\nVmFlags:'
_VMFLAGS_LINE = re.compile(rb'^VmFlags:([^\n]*)', re.MULTILINE)
_KB_FIELD = re.compile(rb'^(\w+): +([0-9]+) kB$', re.MULTILINE)
# The statistics in the order every kernel since 4.x prints them, lines
# between them skipped; _KB_FIELD when this does not match.
_STAT_LINES = re.compile(
    rb'\nRss: +([0-9]+) kB\nPss: +([0-9]+) kB\n(?:[^\n]*\n)*?'
    rb'Shared_Clean: +([0-9]+) kB\nShared_Dirty: +([0-9]+) kB\n'
    rb'Private_Clean: +([0-9]+) kB\nPrivate_Dirty: +([0-9]+) kB\n'
    rb'Referenced: +([0-9]+) kB\nAnonymous: +([0-9]+) kB\n(?:[^\n]*\n)*?'
    rb'AnonHugePages: +([0-9]+) kB\n(?:[^\n]*\n)*?Swap: +([0-9]+) kB\n')


def _stat(text, pos, endpos):
    """task_diag_vma_stat of the smaps block at text[pos:endpos]."""
    m = _STAT_LINES.search(text, pos, endpos)
    if m is not None:
        rss, pss, *rest = (int(x) << 10 for x in m.groups())
        return wire.VmaStat(rss, *rest, pss << PSS_SHIFT)
    kb = dict(_KB_FIELD.findall(text, pos, endpos))
    return wire.VmaStat(*(int(kb.get(k, 0)) << 10 for k in STAT_KEYS),
                        int(kb.get(b'Pss', 0)) << (10 + PSS_SHIFT))


def _vma(m, text, endpos, codes, with_stat):
    """wire.Vma from the header match @m in @text, its block ending at
    @endpos, and the VmFlags mnemonics @codes."""
    name = None
    if m.group(7):
        name = text[max(m.start(7) - m.start(0), PAD_COLUMN) + m.start(0) + 1:m.end(7)]
    flags = 0
    bits = VMFLAG_BITS
    for code in codes.split():
        flags |= bits.get(code, 0)
    return wire.Vma(int(m.group(1), 16), int(m.group(2), 16), flags, int(m.group(3), 16),
                    int(m.group(4), 16), int(m.group(5), 16), int(m.group(6)), 0, name,
                    _stat(text, m.end(), endpos) if with_stat else None)


def parse_smaps(data, with_stat=False):
    """wire.Vma (name as bytes, or None) of each VMA of smaps text @data,
    in its order (the address order); stat only if @with_stat."""
    # Fast path: split at the VmFlags lines; piece i+1 starts with the
    # mnemonics of VMA i, then the block of VMA i+1.
    pieces = data.split(_VMFLAGS_SEP)
    vmas = []
    block, match = pieces[0], _HEADER.match
    for nxt in pieces[1:]:
        m = match(block)
        if m is None:
            break
        nl = nxt.find(b'\n')
        if nl < 0:
            nl = len(nxt)
        vmas.append(_vma(m, block, len(block), nxt[:nl], with_stat))
        block = nxt[nl + 1:]
    else:
        if not block:
            return vmas
    # Anything else (a kernel without VmFlags, text this does not expect):
    # one block per header line.
    vmas = []
    heads = list(_HEADER_LINE.finditer(data))
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(data)
        codes = _VMFLAGS_LINE.search(data, m.end(), end)
        vmas.append(_vma(m, data, end, codes.group(1) if codes else b'', with_stat))
    return vmas


def _whole_blocks(buf):
    """The length of the head of smaps text @buf that holds whole VMA
    blocks only (each ends with its VmFlags line), 0 if none."""
    end = len(buf)
    while True:
        cut = buf.rfind(_VMFLAGS_SEP, 0, end)
        if cut < 0:
            return 0
        nl = buf.find(b'\n', cut + 1)
        if nl >= 0:
            return nl + 1
        end = cut


def iter_smaps(pieces, with_stat=False):
    """parse_smaps() of smaps text that comes as the iterable @pieces (the
    reads of one open smaps file), one list of wire.Vma per piece that
    ends a block: no more than a piece and one unfinished block are held
    at a time, however many VMAs the task has.  (A kernel without VmFlags
    lines, 3.x, has its text parsed whole at the end.)"""
    buf = b''
    for piece in pieces:
        buf += piece
        n = _whole_blocks(buf)
        if n:
            yield parse_smaps(buf[:n], with_stat)
            buf = buf[n:]
    if buf:
        yield parse_smaps(buf, with_stat)


def read_vmas(task_dir, with_stat=False):
    """The VMAs of the task at @task_dir ([] for a kernel thread or a
    zombie, which have no mm).  Raises what opening or reading smaps
    raises (PermissionError, FileNotFoundError, ProcessLookupError).  The
    names are printed relative to the root of the thread that reads."""
    with open(task_dir + '/smaps', 'rb') as f:
        return parse_smaps(f.read(), with_stat)


def vma_records(task_dir, with_stat=False):
    """The encoded VMA records of the task at @task_dir (wire.encode_vma_records),
    None when it has no mm, is gone, or changed credentials meanwhile."""
    try:
        return wire.encode_vma_records(read_vmas(task_dir, with_stat)) or None
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def task_messages(pid, tgid, head, records, tail, seq=0, limit=MSG_MAX):
    """The messages of one task, as a list: iter_task_messages()."""
    return list(iter_task_messages(pid, tgid, head, records or (), tail, seq, limit))


def iter_task_messages(pid, tgid, head, records, tail, seq=0, limit=MSG_MAX):
    """The messages of one task, each as soon as it is full: @head
    attributes ([(type, payload)]: BASE, CRED), the VMA @records (an
    iterable of bytes, one per record, see wire.encode_vma_records), then
    the @tail attributes (STAT).

    The rule, which the BPF side follows too: a record goes into the
    current message if the message, the record and the tail then still
    fit in @limit bytes; otherwise the message is closed with
    TASK_DIAG_FLAG_CONT and the next one, with the same pid and tgid,
    starts with a VMA attribute.  So the tail always fits into the last
    message, no VMA attribute is empty, and records are never split.
    Without records there is no VMA attribute: one message, as without
    SHOW_VMA."""
    fixed = wire.NLMSG_HDRLEN + wire.MSG.size
    head_size = sum(wire.NLA_HDRLEN + (len(p) + 3 & ~3) for _, p in head)
    tail_size = sum(wire.NLA_HDRLEN + (len(p) + 3 & ~3) for _, p in tail)
    attrs, size, chunk = head, fixed + head_size + wire.NLA_HDRLEN, []
    for rec in records:
        if chunk and size + len(rec) + tail_size > limit:
            yield wire.encode_message(pid, tgid, attrs + [(wire.TASK_DIAG_VMA, b''.join(chunk))],
                                      seq, wire.TASK_DIAG_FLAG_CONT)
            attrs, size, chunk = [], fixed + wire.NLA_HDRLEN, []
        chunk.append(rec)
        size += len(rec)
    if not chunk:
        yield wire.encode_message(pid, tgid, head + tail, seq)
    else:
        yield wire.encode_message(pid, tgid, attrs + [(wire.TASK_DIAG_VMA, b''.join(chunk))]
                                  + tail, seq)
