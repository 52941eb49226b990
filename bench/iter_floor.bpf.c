// SPDX-License-Identifier: GPL-2.0
/*
 * The floor of the pinned iterator, for bench/run.py: an iter/task program
 * that does for each process only what any answer must (skip threads, put
 * pid and tgid in a message the size of a BASE answer, write it) and none
 * of task_diag's work (viewer, visibility, the BASE fields).  Reading it
 * costs the kernel's task iterator plus one bpf_seq_write per process: the
 * least CPU a pinned iterator can take here, measured in the same runs as
 * the /proc scan and the real one.  Never pinned outside a benchmark.
 */
#include "td_kernel.h"
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "task_diag.h"
#include "floor.h"

char LICENSE[] SEC("license") = "GPL";

/* head + task_diag_base: 76 bytes, as the BASE answer of task_diag/bpf/task_diag.bpf.c */
struct tdf_msg {
	struct tdf_head h;
	struct task_diag_base base;
};

SEC("iter/task")
int td_floor(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct tdf_msg m = {};

	if (!task || task->group_leader != task)
		return 0;
	tdf_head_init(&m.h, task, TASK_DIAG_BASE, sizeof(m.base));
	m.base.pid = m.h.msg.pid;
	m.base.tgid = m.h.msg.tgid;
	bpf_seq_write(ctx->meta->seq, &m, sizeof(m));
	return 0;
}
