/* SPDX-License-Identifier: GPL-2.0 */
/*
 * td_cgroup: ALL and ALL_THREAD with the cgroup filter, walking only the
 * subtree.  The task iterator visits every task of the machine to answer
 * the 200 of one cgroup; this iter/cgroup program is linked, per request,
 * to the filter's cgroup in pre-order (a link of the driver's, cgroup_id
 * in its link info), and walks each cgroup's own tasks with the open-coded
 * css_task iterator (6.7; where BTF lacks it the loader does not load
 * this program, whose kfuncs are weak for that, and the task iterator's
 * filter, td_cgroup.h in_cgroup(), answers).
 * ALL: CSS_TASK_ITER_PROCS, the leaders of live processes (cgroup.procs);
 * ALL_THREAD: every task not exiting (cgroup.threads).  Tasks come in the
 * order of the walk, not of pids.
 *
 * A cgroup iterator answers one read only (cgroup_iter.c: the next read of
 * the same iterator is EOPNOTSUPP), at most the 32 KiB of its buffer.  So
 * before each message the program makes sure the largest one fits; when
 * it does not, it leaves in the request where it stopped (cgc_id,
 * cgc_pid) and ends the walk (returns 1), and the driver reads a new
 * iterator of the same link, with cgc_seek set, whose run skips the
 * cgroups before that one and the tasks up to that task (and clears
 * cgc_seek there, or sets it to 2 when that task is gone).  Without the groups that may not come
 * from here (VMA: continuations; CMDLINE: it sleeps), which the driver
 * asks of the task iterator instead.
 *
 * Part of task_diag.bpf.c, included there in order (each part uses the
 * ones before it); not a header of its own.
 */
#ifndef __TD_CSS_H
#define __TD_CSS_H

#define CSS_TASK_ITER_PROCS	(1U << 0)	/* include/linux/cgroup.h */

/* The groups td_cgroup answers; the largest message it may write */
#define TD_CSS_SHOW	(TASK_DIAG_SHOW_BASE | TASK_DIAG_SHOW_CRED | TASK_DIAG_SHOW_STAT | \
			 TASK_DIAG_SHOW_STATM | TASK_DIAG_SHOW_STAT_EXT | TASK_DIAG_SHOW_NS | \
			 TASK_DIAG_SHOW_CGROUP)
#define TD_CSS_MSG_MAX	(TD_MSG_HDR + 7 * NLA_HDRLEN + TD_SIZEOF(struct task_diag_base) + \
			 TD_SIZEOF(struct task_diag_creds) + TD_SIZEOF(struct task_diag_stat) + \
			 TD_SIZEOF(struct task_diag_statm) + TD_SIZEOF(struct task_diag_stat_ext) + \
			 TD_SIZEOF(struct task_diag_ns) + TD_CG_PAYLOAD_MAX + 64)

extern int bpf_iter_css_task_new(struct bpf_iter_css_task *it, struct cgroup_subsys_state *css,
				 unsigned int flags) __weak __ksym;
extern struct task_struct *bpf_iter_css_task_next(struct bpf_iter_css_task *it) __weak __ksym;
extern void bpf_iter_css_task_destroy(struct bpf_iter_css_task *it) __weak __ksym;

/* A global function's pointer argument that the caller passes trusted
 * (6.8): the verifier then lets it be used as a trusted pointer */
#define __arg_trusted __attribute__((btf_decl_tag("arg:trusted")))

/*
 * @task's message, if the viewer may see it: 0, or 1 when no scratch
 * buffer is free (the walk stops before @task, to go on in a new run).
 * A global function: the verifier checks it once, on its own; as a static
 * one it was checked again for each state of the walk's loop, and the
 * program went past a million instructions.
 */
__noinline int css_emit(struct seq_file *seq __arg_trusted, struct task_struct *task __arg_trusted,
			const struct td_viewer *v, struct td_request *req)
{
	bool thread_dump;
	struct td_scratch *scratch;
	u32 pid, tgid, off;
	u64 show;
	int ret = 0;

	if (!seq || !task || !v || !req)
		return 0;
	show = req->show_flags & TD_CSS_SHOW;
	thread_dump = req->dump_strategy == TASK_DIAG_DUMP_ALL_THREAD;

	pid = task_nr(task, PIDTYPE_PID, v);
	tgid = task_nr(task, PIDTYPE_TGID, v);
	if (!pid || !may_read(v, task))
		return 0;
	scratch = claim_spare();
	if (!scratch)
		return 1;
	off = emit_head(scratch, task, v, req, show, req->seq, pid, tgid, false);
	if (off)
		emit_rest(seq, task, req, scratch, show, thread_dump, off, 0);
	barrier();		/* every store to the buffers before the release */
	__sync_lock_test_and_set(&scratch->busy, 0);
	return ret;
}

SEC("iter/cgroup")
int td_cgroup(struct bpf_iter__cgroup *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct cgroup *cg = ctx->cgroup;
	struct task_struct *reader, *task;
	struct td_viewer me = {}, *v = &me;
	struct bpf_iter_css_task it;
	struct td_request *req;
	u32 after = 0, last = 0;
	int ret = 0;
	u64 key;

	reader = bpf_get_current_task_btf();
	key = reader_key(reader);
	req = bpf_map_lookup_elem(&td_requests, &key);
	if (!req || req->reader_start != reader->start_boottime / NSEC_PER_TICK)
		return 1;		/* only for a reader's request */
	if (!cg)
		return 0;		/* the walk is over */
	if (req->cgc_seek) {
		/* a new run after a full buffer: on from where the last stopped */
		if (cg->kn->id != req->cgc_id)
			return 0;
		after = req->cgc_pid;
		req->cgc_seek = 0;
		req->cgc_id = 0;
		req->cgc_pid = 0;
	}
	if (req->viewer.valid)
		v = &req->viewer;
	else
		fill_viewer(&me, reader);
	bpf_iter_css_task_new(&it, &cg->self,
			      req->dump_strategy == TASK_DIAG_DUMP_ALL ? CSS_TASK_ITER_PROCS : 0);
	while ((task = bpf_iter_css_task_next(&it))) {
		if (after) {
			if (task->pid == after)
				after = 0;
			continue;
		}
		if (seq->size - seq->count < TD_CSS_MSG_MAX ||
		    css_emit(seq, task, v, req)) {
			req->cgc_id = cg->kn->id;
			req->cgc_pid = last;
			ret = 1;
			break;
		}
		last = task->pid;
	}
	bpf_iter_css_task_destroy(&it);
	if (after)
		req->cgc_seek = 2;	/* the task the last run stopped after is gone */
	return ret;
}

#endif /* __TD_CSS_H */
