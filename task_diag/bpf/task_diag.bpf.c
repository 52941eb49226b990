// SPDX-License-Identifier: GPL-2.0
/*
 * task_diag over a BPF task iterator: one netlink message per task, in the
 * wire format of task_diag/bpf/task_diag.h, assembled in a per-CPU scratch buffer and
 * written with one bpf_seq_write().
 *
 * Two entry points share everything: td_all answers {DUMP_ALL, SHOW_BASE}
 * and td_all_threads {DUMP_ALL_THREAD, SHOW_BASE} to whoever reads them,
 * unless root left a request for its own thread in td_requests (td_iter.h).
 *
 * Who sees what is decided here, for the thread that reads (current): its
 * pid namespace numbers every pid, its user namespace maps every id, and
 * tasks that fail the kernel's ptrace_may_access(PTRACE_MODE_READ_FSCREDS)
 * test for its credentials are skipped, as the original did.
 */
#include "td_kernel.h"
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "task_diag.h"
#include "td_iter.h"

char LICENSE[] SEC("license") = "GPL";

/* Sleepable where CMDLINE is read by the programs (bpf_copy_from_user_task()
 * may fault the argument pages in): the .s objects. */
#ifdef TD_SLEEPABLE
#define TD_ITER_SEC "iter.s/task"
#else
#define TD_ITER_SEC "iter/task"
#endif

#include "td_maps.h"
#include "td_ids.h"
#include "td_creds.h"
#include "td_groups.h"
#include "td_cgroup.h"
#include "td_directmap.h"
#ifndef TD_NO_VMA
#include "td_pagewalk.h"
#include "td_dwalk.h"
#include "td_vma_names.h"
#include "td_vmas.h"
#endif
#include "td_msg.h"
#include "td_css.h"
#ifdef TD_SLEEPABLE
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
#endif
#include "td_cmdline.h"


/*
 * Whether and how @ctx->task is shown to the reader, and its message,
 * built and written; 1 to have the iterator show the task again.  Where
 * the message waits for CMDLINE (TD_EMIT_CMDLINE), *@claimed is the
 * scratch buffer that holds it, still ours.
 */
static __always_inline int pick_task(struct bpf_iter__task *ctx, u64 default_strategy,
				     struct td_scratch **claimed, u64 *shown)
{
	struct task_struct *task = ctx->task;
	struct task_struct *reader;
	struct td_request *req;
	struct td_viewer me = {}, *v = &me;
	struct td_scratch *scratch;
	u64 show = TASK_DIAG_SHOW_BASE, strategy = default_strategy;
	u32 seqno = 0, pid, tgid, cont = TD_CONT_NONE;
	bool leader, resume;
	u64 key;
	int ret;

	if (!task)
		return 0;
	reader = bpf_get_current_task_btf();
	key = reader_key(reader);
	req = bpf_map_lookup_elem(&td_requests, &key);
	if (req && req->reader_start != reader->start_boottime / NSEC_PER_TICK)
		req = NULL;
	if (req) {
		show = req->show_flags;
		strategy = req->dump_strategy;
		seqno = req->seq;
		cont = req->cont_state;
		if (strategy == TD_PROBE_LSM) {
			bpf_probe_read_kernel(&req->viewer, TD_LSM_PEEK, task->cred->security);
			return 0;
		}
		if (strategy == TD_PROBE_VIEWER) {
			struct fs_struct *fs = ((struct task_struct___fs *)task)->fs;

			fill_viewer(&req->viewer, task);
			req->cgns_root = cgns_root(task);
			if (fs) {
				req->root[0] = (u64)fs->root.mnt;
				req->root[1] = (u64)fs->root.dentry;
			}
			/* pid: td_config.landlock_off, where the driver knows
			 * it: the 8 bytes there, Landlock's domain, go to
			 * found and found_tgid (td_iter.h) */
			if (req->pid && req->pid <= TD_LSM_PEEK - 7)
				bpf_probe_read_kernel(&req->found, 8,
						      task->cred->security + req->pid - 1);
			return 0;
		}
		if (strategy == TD_PROBE_CALIBRATE) {
			u32 zero = 0;

			if (task == reader)
				req->found = td_pw_calibrate(bpf_map_lookup_elem(&td_config, &zero));
			return 0;
		}
		if (req->viewer.valid)
			v = &req->viewer;
	}
	resume = cont == TD_CONT_RESUME;
	leader = task->group_leader == task;
	if (!leader && strategy == TASK_DIAG_DUMP_ALL)
		return 0;		/* processes only: skip threads first, cheaply */
	/* the request's cgroup filter, next: most tasks stop here */
	if (req && req->cg_id && !resume &&
	    !in_cgroup(task, req->cg_id, strategy == TASK_DIAG_DUMP_ALL))
		return 0;
	if (v == &me)
		fill_viewer(&me, reader);

	pid = task_nr(task, PIDTYPE_PID, v);
	tgid = task_nr(task, PIDTYPE_TGID, v);
	if (!pid)
		return 0;		/* not in the viewer's namespace, or released */

	if (req && cont != TD_CONT_NONE) {
		if (pid != req->cont_pid)
			/* PENDING: end the read before this task (td_iter.h) */
			return cont == TD_CONT_PENDING ? 1 : 0;
		if (!resume)		/* shown again after an overflow: afresh */
			req->cont_state = TD_CONT_NONE;
	}
	/* found: only a task the viewer may see, so that a hidden pid
	 * answers ESRCH as a missing one does (hidepid=invisible) */
	if (req && pid == req->pid && !resume && may_read(v, task)) {
		req->found = 1;
		req->found_tgid = tgid;
		req->found_exec = task->group_leader->self_exec_id;
	}
	switch (resume ? TD_CONT_RESUME + 0x100 : strategy) {
	case TD_CONT_RESUME + 0x100:
		break;
	case TASK_DIAG_DUMP_ALL:
		if (!leader)
			return 0;
		break;
	case TASK_DIAG_DUMP_ONE:
		if (!req || pid != req->pid)
			return 0;
		break;
	case TASK_DIAG_DUMP_ALL_THREAD:
		break;
	case TASK_DIAG_DUMP_CHILDREN:
		if (!req || !leader ||
		    task_nr(task->real_parent, PIDTYPE_TGID, v) != req->pid)
			return 0;
		break;
	case TASK_DIAG_DUMP_THREAD:
		if (!req || tgid != req->pid)
			return 0;
		break;
	default:
		return 0;
	}

	if (!may_read(v, task))
		return 0;

	/*
	 * This CPU's scratch buffers (the message, the page walk's state) are
	 * ours from here until the end, under a per-CPU try-lock.  Where a BPF
	 * program can be preempted (preempt=full, lazy preemption, PREEMPT_RT)
	 * another reader's run may take this CPU while we are in the middle of
	 * a message: without the lock it would write the same buffers, and one
	 * of the two messages could carry the other's task, which its reader
	 * may not be allowed to see.  A run that asks for VMAs needs [0] (the
	 * VMA code, td_put_vmas() and below, uses [0] and the page walk's and
	 * the name cache's per-CPU state, all under [0]'s lock); one that does
	 * not takes any free buffer, the spares first.  A run that finds none
	 * writes nothing and has its task shown again (return 1: the iterator
	 * retries it; as the first task of a read, the read fails with EAGAIN,
	 * which our clients read again).  Where programs cannot be preempted
	 * the first buffer tried is always free, except in the sleepable
	 * objects: a run that sleeps reading a command line keeps its buffer
	 * meanwhile, and another reader's run may take the CPU.
	 */
	if (show & TASK_DIAG_SHOW_VMA) {
		scratch = claim_scratch(0);
	} else {
		scratch = claim_spare();
		show &= ~(u64)(TASK_DIAG_SHOW_VMA | TASK_DIAG_SHOW_VMA_STAT);
	}
	if (!scratch)
		return 1;
	ret = emit_task(ctx, task, v, req, scratch, show, strategy, seqno, pid, tgid, leader,
			resume);
	if (ret == TD_EMIT_CMDLINE) {
		*claimed = scratch;
		*shown = show;
		return ret;
	}
	barrier();		/* every store to the buffers before the release */
	__sync_lock_test_and_set(&scratch->busy, 0);
	return ret;
}

/*
 * The non-sleepable objects run pick_task() as it is: a BPF iterator runs
 * them in an RCU read-side section.  The sleepable ones (the .s objects,
 * TD_SLEEPABLE) take that section themselves for it, so that every pointer
 * it follows is what it would be there, and leave it only to read the
 * command line, which may sleep.
 */
static __always_inline int show_task(struct bpf_iter__task *ctx, u64 default_strategy)
{
	struct td_scratch *scratch = NULL;
	u64 show = 0;
	int ret;

#ifdef TD_SLEEPABLE
	bpf_rcu_read_lock();
#endif
	ret = pick_task(ctx, default_strategy, &scratch, &show);
#ifdef TD_SLEEPABLE
	bpf_rcu_read_unlock();
#endif
	if (ret == TD_EMIT_CMDLINE && scratch) {
		ret = put_cmdline_and_write(ctx, scratch, show);
		barrier();
		__sync_lock_test_and_set(&scratch->busy, 0);
	}
	return ret == TD_EMIT_CMDLINE ? 0 : ret;
}

SEC(TD_ITER_SEC)
int td_all(struct bpf_iter__task *ctx)
{
	return show_task(ctx, TASK_DIAG_DUMP_ALL);
}

SEC(TD_ITER_SEC)
int td_all_threads(struct bpf_iter__task *ctx)
{
	return show_task(ctx, TASK_DIAG_DUMP_ALL_THREAD);
}
