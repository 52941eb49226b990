// SPDX-License-Identifier: GPL-2.0
/*
 * The floor of the VMA read, for bench/run.py, as iter_floor.bpf.c is the
 * floor of the task read: an iter/task program that, for each process,
 * walks its VMAs with the open-coded VMA iterator (the single pass
 * task_diag/bpf/task_diag.bpf.c makes) and writes for each one a 64-byte record
 * with start, end and the raw vm_flags, in TASK_DIAG_VMA messages of up to
 * 16 KiB, and nothing else: no BASE, no viewer or visibility check, no
 * flag translation, no device or inode, no names.  Reading it costs the
 * kernel's task iterator, its VMA iterator and a bpf_seq_write per 240
 * VMAs: the least a single-pass VMA dump can cost here, measured in the
 * same runs as the maps reader and the real one.  A process with more
 * than 480 VMAs gets its first 480, and one whose mm is busy none (the
 * real program goes on in another run, or shows the task again; the
 * benchmark's count check shows what the floor left out).  One per-CPU
 * buffer, no lock: fine for a benchmark on a kernel without preemption,
 * not for readers in general.  Never pinned outside a benchmark.  Needs
 * the open-coded VMA iterator (6.7+); the benchmark goes on without it.
 */
#include "td_kernel.h"
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <stddef.h>
#include "task_diag.h"
#include "floor.h"

char LICENSE[] SEC("license") = "GPL";

extern int bpf_iter_task_vma_new(struct bpf_iter_task_vma *it, struct task_struct *task,
				 __u64 addr) __ksym;
extern struct vm_area_struct *bpf_iter_task_vma_next(struct bpf_iter_task_vma *it) __ksym;
extern void bpf_iter_task_vma_destroy(struct bpf_iter_task_vma *it) __ksym;

#define TDF_HDR		sizeof(struct tdf_head)
#define TDF_RECORDS	240					/* 15360 bytes of records */
#define TDF_MESSAGES	2	/* a run's output must fit the iterator's 32 KiB buffer */

struct tdf_buf {
	struct tdf_head h;
	struct task_diag_vma vma[TDF_RECORDS];
	__u32 n;			/* records in vma[]: kept here, not in a
					 * register, so that the verifier's loop
					 * states converge */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tdf_buf);
} tdf_buf SEC(".maps");

/* Writes the message holding b->n records, flagged CONT when the task's
 * next message continues it. */
static __always_inline void tdf_flush(struct seq_file *seq, struct tdf_buf *b, bool cont)
{
	__u64 len = TDF_HDR + (__u64)b->n * sizeof(struct task_diag_vma);

	b->n = 0;
	asm volatile("" : "+r"(len));	/* check the value passed, as is */
	if (len > offsetof(struct tdf_buf, n))
		return;
	b->h.nlmsg_len = len;
	b->h.nla_len = len - TDF_HDR + 4;
	b->h.msg.flags = cont ? TASK_DIAG_FLAG_CONT : 0;
	bpf_seq_write(seq, b, len);
}

SEC("iter/task")
int td_vma_floor(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct bpf_iter_task_vma it;
	struct vm_area_struct *vma;
	struct tdf_buf *b;
	__u32 zero = 0, n, messages = 0;

	if (!task || task->group_leader != task)
		return 0;
	/* What this run writes must fit the rest of the read's 32 KiB: when
	 * it would not, end the read before the task (it comes first in the
	 * next), as task_diag's vma_room() does, instead of walking it twice. */
	if (task->mm && ctx->meta->seq->count) {
		__u64 vmas = (__u32)task->mm->map_count;

		if (vmas > TDF_MESSAGES * TDF_RECORDS)
			vmas = TDF_MESSAGES * TDF_RECORDS;
		if (ctx->meta->seq->count + TDF_MESSAGES * TDF_HDR +
		    vmas * sizeof(struct task_diag_vma) > ctx->meta->seq->size)
			return 1;
	}
	b = bpf_map_lookup_elem(&tdf_buf, &zero);
	if (!b)
		return 0;
	tdf_head_init(&b->h, task, TASK_DIAG_VMA, 0);	/* lengths: tdf_flush() */
	b->n = 0;
	bpf_iter_task_vma_new(&it, task, 0);
	while ((vma = bpf_iter_task_vma_next(&it))) {
		struct task_diag_vma *r;

		if (b->n >= TDF_RECORDS) {
			if (++messages >= TDF_MESSAGES)
				break;
			tdf_flush(ctx->meta->seq, b, true);
		}
		n = b->n;
		if (n >= TDF_RECORDS)
			break;
		r = &b->vma[n];
		r->start = vma->vm_start;
		r->end = vma->vm_end;
		r->vm_flags = vma->vm_flags;
		r->vma_len = sizeof(*r);
		b->n = n + 1;
	}
	bpf_iter_task_vma_destroy(&it);
	tdf_flush(ctx->meta->seq, b, false);
	return 0;
}
