/* SPDX-License-Identifier: GPL-2.0 */
/*
 * VMA records: a task's VMAs and their statistics into messages, split by
 * the seq buffer's budget and continued in later passes.
 *
 * Part of task_diag.bpf.c, included there in order (each part uses the
 * ones before it); not a header of its own.
 */
#ifndef __TD_VMAS_H
#define __TD_VMAS_H

/* ---- VMAs ------------------------------------------------------------- */

extern int bpf_iter_task_vma_new(struct bpf_iter_task_vma *it, struct task_struct *task,
				 u64 addr) __ksym;
extern struct vm_area_struct *bpf_iter_task_vma_next(struct bpf_iter_task_vma *it) __ksym;
extern void bpf_iter_task_vma_destroy(struct bpf_iter_task_vma *it) __ksym;


/*
 * The kernel's VM_* bits (include/linux/mm.h, the same values from 5.15
 * to 6.18; VM_DENYWRITE and VM_MPX are gone there) as TASK_DIAG_VMA_F_*.
 * Dropped, having no TASK_DIAG bit: UFFD_MISSING (9), UFFD_WP (12),
 * LOCKONFAULT (19), SYNC (23), WIPEONFORK (25) and everything above 31.
 */
static __always_inline u64 vma_flags(unsigned long f)
{
	return (f & 0x1ff) |			/* READ .. GROWSDOWN: 0-8 */
	       ((f >> 10) & 1) << 9 |		/* PFNMAP 10 */
	       ((f >> 13) & 0x3f) << 12 |	/* LOCKED .. DONTEXPAND: 13-18 */
	       ((f >> 20) & 0x7) << 18 |	/* ACCOUNT, NORESERVE, HUGETLB: 20-22 */
	       ((f >> 24) & 1) << 21 |		/* ARCH_1 24 */
	       ((f >> 26) & 0x3f) << 22;	/* DONTDUMP .. MERGEABLE: 26-31 */
}

static __always_inline u32 out_limit(u32 written)
{
	u32 left = written < TD_BUDGET ? TD_BUDGET - written : 0;

	return left < TD_BUF_SIZE ? left : TD_BUF_SIZE;
}

static __always_inline void close_vma_attr(char *buf, u32 attr, u32 off)
{
	u64 a = attr;
	struct td_nlattr *nla;

	asm volatile("" : "+r"(a));
	nla = (void *)(buf + (a & TD_BUF_MASK));
	nla->nla_len = off - attr;
	nla->nla_type = TASK_DIAG_VMA;
}

#ifndef __arg_trusted		/* bpf_helpers.h has them since libbpf 1.4 */
#define __arg_trusted __attribute__((btf_decl_tag("arg:trusted")))
#define __arg_ctx __attribute__((btf_decl_tag("arg:ctx")))
#endif

/*
 * One VMA record at @off of the scratch buffer: the struct, room for its
 * statistics if @with_stat (td_vma_stat() fills it), its name; returns
 * its length (vma_len), 0 on failure.  A global function: the verifier checks it once, not once per
 * state of the loop that calls it.
 */
__noinline int td_vma_record(struct vm_area_struct *vma __arg_trusted, u32 off, u32 with_stat)
{
	u32 zero = 0, nlen, len, slen = 0;
	u64 tail;
	struct td_scratch *scratch = bpf_map_lookup_elem(&td_scratch, &zero);
	struct task_diag_vma *rec;
	struct file *file;
	struct mm_struct *mm;

	if (!scratch)
		return 0;
	rec = (void *)(scratch->buf + (off & TD_BUF_MASK));
	file = vma->vm_file;
	mm = vma->vm_mm;
	rec->start = vma->vm_start;
	rec->end = vma->vm_end;
	rec->vm_flags = vma_flags(vma->vm_flags);
	rec->pgoff = 0;
	rec->major = 0;
	rec->minor = 0;
	rec->inode = 0;
	rec->generation = 0;
	if (file) {
		/* plain loads through the trusted vma: a probe-read helper
		 * call each would cost more than the rest of the record */
		struct inode *inode = file->f_inode;
		u32 dev;

		rec->pgoff = (u64)vma->vm_pgoff << PAGE_SHIFT;
		if (td_backing(file)) {
			/* file_user_inode(): overlayfs' inode, as maps shows */
			inode = BPF_CORE_READ((struct backing_file *)file, user_path.dentry, d_inode);
			dev = BPF_CORE_READ(inode, i_sb, s_dev);
			rec->inode = BPF_CORE_READ(inode, i_ino);
			rec->generation = BPF_CORE_READ(inode, i_generation);
		} else {
			dev = inode->i_sb->s_dev;
			rec->inode = inode->i_ino;
			rec->generation = inode->i_generation;
		}
		rec->major = dev >> 20;
		rec->minor = dev & 0xfffff;
	}
	if (with_stat)
		slen = TD_STAT_LEN;	/* filled by td_vma_stat() */
	nlen = mm ? vma_name((char *)rec + sizeof(*rec) + slen, vma, mm) : 0;
	if (nlen > TD_NAME_MAX)
		nlen = 0;
	len = (sizeof(*rec) + slen + nlen + 3) & ~3;
	/* The scratch buffer holds earlier tasks' names: clear the struct's
	 * tail padding and the bytes between the name's NUL and the next
	 * record, or they would reach a reader who may not see those tasks. */
	*(u16 *)((char *)rec + sizeof(*rec) - 2) = 0;
	tail = sizeof(*rec) + slen + nlen;
	asm volatile("" : "+r"(tail));		/* keep the mask for the verifier */
	*(u32 *)((char *)rec + (tail & (TD_SLACK - 1))) = 0;
	rec->vma_len = len;
	rec->name_off = nlen ? sizeof(*rec) + slen : 0;
	rec->name_len = nlen;
	rec->stat_off = slen ? sizeof(*rec) : 0;
	rec->stat_len = slen;
	vma_counted();
	return len;
}

/*
 * The page-walk statistics of @vma into the record td_vma_record() put at
 * @off.  Apart from it, so that the walk's deep call chain (bpf_loop
 * callbacks three deep) does not carry td_vma_record()'s stack: the
 * verifier allows 512 bytes for a whole chain.
 */
__noinline int td_vma_stat(struct vm_area_struct *vma __arg_trusted, u32 off)
{
	u32 zero = 0;
	struct td_scratch *scratch = bpf_map_lookup_elem(&td_scratch, &zero);
	struct td_config *cfg = bpf_map_lookup_elem(&td_config, &zero);

	if (!scratch || !cfg)
		return -1;
	return td_pw_vma(vma, (void *)(scratch->buf + (off & TD_BUF_MASK) +
				       sizeof(struct task_diag_vma)), cfg);
}

/* Writes the message of @len bytes built in @buf; false when the seq
 * buffer is full (then the iterator throws this run's output away and
 * shows the task again). */
static __always_inline bool flush_msg(struct seq_file *seq, char *buf, u32 len32, bool cont)
{
	struct td_nlmsghdr *nlh = (void *)buf;
	struct task_diag_msg *msg = (void *)(buf + NLMSG_HDRLEN);
	u64 len = len32;

	nlh->nlmsg_len = len;
	msg->flags = (cont ? TASK_DIAG_FLAG_CONT : 0) |
		     (names_inexact() ? TD_MSG_F_VMA_FROM_PROC : 0);
	asm volatile("" : "+r"(len));
	if (len > TD_BUF_SIZE)
		return false;
	return !bpf_seq_write(seq, buf, len);
}

enum { TD_VMA_DONE, TD_VMA_MORE, TD_VMA_FAIL, TD_VMA_RETRY };

/* What a VMA record takes on average, its name included (93 bytes over
 * every VMA of this machine, where most names are libraries'); the
 * statistics add TD_STAT_LEN. */
#define TD_VMA_EST	96

/*
 * Whether the task's VMAs (of @mm, after the @off bytes of its message
 * built so far) are likely to fit in what is left of the read's seq_file
 * buffer.  Everything a run writes must fit there: a task that overflows
 * it is thrown away and built again, as the first task of the next read.
 * Ending the read before such a task (its run returns 1) saves building
 * its VMAs twice, once for about every 30 KiB of output: a few percent of
 * the CPU of a VMA dump, more with the page walk.  The estimate is from
 * map_count; wrong either way it costs one of those two things, never
 * output.  The first task of a read always goes on (the read would fail):
 * what does not fit then is split with TD_CONT.
 */
static __always_inline bool vma_room(struct seq_file *seq, struct mm_struct *mm, u32 off,
				     u32 with_stat)
{
	u64 used = seq->count, need;

	if (!used)
		return true;
	need = off + (u64)(u32)mm->map_count * (TD_VMA_EST + (with_stat ? TD_STAT_LEN : 0));
	return used + need <= seq->size;
}

/*
 * The task's VMAs from @start on, into the message open in the scratch
 * buffer (@off bytes long) and as many more messages as TD_BUDGET allows.
 * Returns TD_VMA_DONE (the last message is open, scratch->vma_off long, its
 * VMA attribute closed), TD_VMA_MORE (everything written, scratch->vma_next
 * is where to go on), TD_VMA_FAIL (the seq buffer overflowed) or
 * TD_VMA_RETRY (the page walk's bases went away: show the task again).  A
 * walk the iterator refuses, or one a writer may have cut short, is marked
 * for /proc (vma_walk_refused(), vma_walk_end()), never retried: a task
 * whose mmap_lock stays busy must not stall the dump.  Global, so that the
 * verifier checks it once.
 */
/* The gate area's record after the last VMA, as /proc/PID/maps shows it
 * (TD_TAIL keeps room for it), with smaps' numbers for it (all 0: no page
 * table maps it) if @with_stat; returns its length, 0 when there is none. */
static __always_inline u32 put_gate(char *buf, u32 off, u32 with_stat)
{
	u32 zero = 0;
	struct td_config *cfg = bpf_map_lookup_elem(&td_config, &zero);
	struct task_diag_vma *rec;
	char *name;

	if (!cfg || !cfg->gate_end || off > TD_BUF_SIZE)
		return 0;
	rec = (void *)(buf + (off & TD_BUF_MASK));
	__builtin_memset(rec, 0, TD_GATE_LEN + TD_STAT_LEN);
	rec->start = cfg->gate_start;
	rec->end = cfg->gate_end;
	rec->vm_flags = cfg->gate_flags;
	if (with_stat) {
		rec->stat_off = sizeof(*rec);
		rec->stat_len = TD_STAT_LEN;
	}
	rec->vma_len = TD_GATE_LEN + rec->stat_len;
	rec->name_off = sizeof(*rec) + rec->stat_len;
	rec->name_len = sizeof("[vsyscall]");
	name = (char *)rec + sizeof(*rec) + (with_stat ? TD_STAT_LEN : 0);
	__builtin_memcpy(name, "[vsyscall]", sizeof("[vsyscall]"));
	return rec->vma_len;
}

__noinline int td_put_vmas(void *ctx __arg_ctx, struct task_struct *task __arg_trusted,
			   u64 start, u32 off, u32 with_stat)
{
	struct seq_file *seq = ((struct bpf_iter__task *)ctx)->meta->seq;
	struct bpf_iter_task_vma it;
	struct vm_area_struct *vma;
	struct td_scratch *scratch;
	u32 zero = 0, attr, written = 0, limit = out_limit(0);
	int ret = TD_VMA_DONE, err;
	char *buf;

	scratch = bpf_map_lookup_elem(&td_scratch, &zero);
	if (!scratch)
		return TD_VMA_FAIL;
	name_cache_dump(((struct bpf_iter__task *)ctx)->meta->session_id, task->mm);
	buf = scratch->buf;
	if (off > TD_BUF_SIZE - 256)
		return TD_VMA_FAIL;
	attr = off;
	off += NLA_HDRLEN;
	td_pw_steps(true);
	err = bpf_iter_task_vma_new(&it, task, start);
	if (err) {
		bpf_iter_task_vma_destroy(&it);
		if (err != -ENOENT)
			vma_walk_refused();
		close_vma_attr(buf, attr, off);
		scratch->vma_off = off;
		return TD_VMA_DONE;
	}
	while ((vma = bpf_iter_task_vma_next(&it))) {
		u32 len, to = TD_MSG_HDR + NLA_HDRLEN;

		/* Page walks cannot sleep: past their budget, the rest of the
		 * task goes to the next run, as when the output is full. */
		if (with_stat && off > to && td_pw_steps(false) > TD_PW_BUDGET) {
			close_vma_attr(buf, attr, off);
			if (!flush_msg(seq, buf, off, true))
				ret = TD_VMA_FAIL;
			else {
				scratch->vma_next = vma->vm_start;
				ret = TD_VMA_MORE;
			}
			break;
		}
		len = td_vma_record(vma, off, with_stat);
		if (len && with_stat && td_vma_stat(vma, off)) {
			/* the walk's bases went away meanwhile (a failed
			 * check turned it off): the task shown again from
			 * where this run began, without statistics, rather
			 * than half a task */
			ret = TD_VMA_RETRY;
			break;
		}
		if (!len || len > TD_NAME_MAX + 256) {
			ret = TD_VMA_FAIL;
			break;
		}
		if (off + len + TD_TAIL <= limit) {
			off += len;
			continue;
		}
		/* Not in this message: end it, and move the record to the
		 * start of the next if that fits the budget. */
		close_vma_attr(buf, attr, off);
		if (!flush_msg(seq, buf, off, true)) {
			ret = TD_VMA_FAIL;
			break;
		}
		written += off;
		limit = out_limit(written);
		if (to + len + TD_TAIL > limit || off < to + len || off > TD_BUF_SIZE) {
			scratch->vma_next = vma->vm_start;
			ret = TD_VMA_MORE;
			break;
		}
		{
			u64 n = len;

			asm volatile("" : "+r"(n));
			bpf_probe_read_kernel(buf + to, n & (TD_NAME_MAX * 2 - 1),
					      buf + (off & TD_BUF_MASK));
		}
		attr = TD_MSG_HDR;
		off = to + len;
	}
	bpf_iter_task_vma_destroy(&it);
	if (ret == TD_VMA_DONE) {
		off += put_gate(buf, off, with_stat);
		close_vma_attr(buf, attr, off);
		scratch->vma_off = off;
	}
	return ret;
}

#endif /* __TD_VMAS_H */
