/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The message: one task's attributes, in the order of the spec.
 *
 * Part of task_diag.bpf.c, included there in order (each part uses the
 * ones before it); not a header of its own.
 */
#ifndef __TD_MSG_H
#define __TD_MSG_H

/* ---- the message ----------------------------------------------------- */

/* emit_task(): the message waits for its CMDLINE (td_cmdline.h) */
#define TD_EMIT_CMDLINE	2

/*
 * The length of the message being built, scratch->tail_off, is read and
 * written only through these and put_attr(), with volatile accesses, so
 * that it lives in the map and in no register from one attribute to the
 * next (put_cmdline_and_write() reads it once, when the groups are in).
 * For the verifier a value loaded from a map is unknown within the bounds
 * checked, where a register would carry one constant for each set of
 * groups shown: the paths through "if (show & ...)" would then never meet
 * again, and their number doubles with each group (the plain object
 * without VMAs needed 941k of the verifier's 1M instructions).
 */
static __always_inline u32 msg_len(struct td_scratch *s)
{
	return *(volatile u32 *)&s->tail_off;
}

static __always_inline void set_msg_len(struct td_scratch *s, u32 len)
{
	*(volatile u32 *)&s->tail_off = len;
}

/* Reserves an attribute of @len payload bytes at *@off, the message's
 * length (&scratch->tail_off in emit_head() and emit_rest(), see
 * msg_len(); a local of put_cmdline_and_write()); returns the payload. */
static __always_inline void *put_attr(char *buf, u32 *off, u16 type, u32 len)
{
	struct td_nlattr *nla;
	u32 o = *(volatile u32 *)off;

	/* room for the largest group struct, STAT: the verifier must see
	 * every attribute's payload in bounds whatever @len */
	if (o > TD_BUF_SIZE - NLA_HDRLEN - TD_SIZEOF(struct task_diag_stat))
		return NULL;
	nla = (void *)(buf + o);
	nla->nla_len = NLA_HDRLEN + len;
	nla->nla_type = type;
	*(volatile u32 *)off = o + ((NLA_HDRLEN + len + 3) & ~3);
	return buf + o + NLA_HDRLEN;
}

/* The root of the viewer's cgroup namespace: CGROUP paths start there. */
static __always_inline u64 viewer_cgns(struct td_request *req)
{
	if (req && req->viewer.valid)
		return req->cgns_root;
	return cgns_root(bpf_get_current_task_btf());
}

/* @task's TD_ATTR_HOST_PID payload (td_iter.h) for the driver of @req */
static __always_inline void fill_host_pid(struct td_host_pid *host, struct task_struct *task,
					  struct td_request *req)
{
	host->tid = pid_nr_ns(task->thread_pid, req->host_pid_ns, req->host_pid_ns_level);
	host->tgid = pid_nr_ns(task->signal->pids[PIDTYPE_TGID], req->host_pid_ns,
			       req->host_pid_ns_level);
	host->start = task->start_boottime / NSEC_PER_TICK;
	host->exec_id = task->group_leader->self_exec_id;
}

/* TD_ATTR_HOST_PID of @task (td_iter.h); false when it does not fit. */
static __always_inline bool put_host_pid(char *buf, u32 *off, struct task_struct *task,
					 struct td_request *req)
{
	struct td_host_pid *host = put_attr(buf, off, TD_ATTR_HOST_PID, sizeof(*host));

	if (!host)
		return false;
	fill_host_pid(host, task, req);
	return true;
}

/* td_scratch[@key] of this CPU, if no other run is using it: then ours
 * until we clear its busy (show_task()). */
static __always_inline struct td_scratch *claim_scratch(u32 key)
{
	struct td_scratch *s = bpf_map_lookup_elem(&td_scratch, &key);

	return s && !__sync_val_compare_and_swap(&s->busy, 0, 1) ? s : NULL;
}

/* A free buffer for an answer without VMAs: the spares first, [0] last,
 * which the runs that need VMAs need (pick_task()) */
static __always_inline struct td_scratch *claim_spare(void)
{
	struct td_scratch *s = claim_scratch(1);

	if (!s)
		s = claim_scratch(2);
	if (!s)
		s = claim_scratch(3);
	if (!s)
		s = claim_scratch(0);
	return s;
}

/*
 * The end of every message: the CGROUP attribute, if fill_cgroup() left
 * one in @s->cg, at @off; then the message is written.
 */
static __noinline int put_cgroup_and_write(struct seq_file *seq, struct td_scratch *s, u32 off)
{
	struct td_nlmsghdr *nlh;
	struct td_nlattr *nla;
	u32 len;
	u64 total;

	if (!s)
		return 0;
	len = s->cg_len;
	if (len) {
		if (off > TD_BUF_SIZE - NLA_HDRLEN - TD_CG_PAYLOAD_MAX || len > TD_CG_PAYLOAD_MAX)
			return 0;
		/* bounds on the registers that index, as the verifier must see them */
		asm volatile("" : "+r"(off), "+r"(len));
		off &= TD_BUF_MASK;
		len &= 2 * TASK_DIAG_CGROUP_PATH_MAX - 1;
		nla = (void *)(s->buf + off);
		nla->nla_len = NLA_HDRLEN + len;
		nla->nla_type = TASK_DIAG_CGROUP;
		bpf_probe_read_kernel(s->buf + off + NLA_HDRLEN, len, s->cg);
		/* zeros to the next 4 bytes: the message's end */
		__builtin_memset(s->buf + off + NLA_HDRLEN + len, 0, 4);
		off += NLA_HDRLEN + ((len + 3) & ~3U);
	}
	nlh = (void *)s->buf;
	nlh->nlmsg_len = off;
	/* the verifier must see off's bound checked in the 64-bit register
	 * that the helper gets */
	total = off;
	asm volatile("" : "+r"(total));
	if (total > TD_BUF_SIZE)
		return 0;
	bpf_seq_write(seq, s->buf, total);
	return 0;
}

/*
 * The start of @task's message in @scratch: the headers, TD_ATTR_HOST_PID
 * where every message carries it, BASE and CRED (not in a continuation,
 * @resume); returns where the next attribute goes, 0 when the message
 * cannot be built.
 */
static __always_inline u32 emit_head(struct td_scratch *scratch, struct task_struct *task,
				     const struct td_viewer *v, struct td_request *req, u64 show,
				     u32 seqno, u32 pid, u32 tgid, bool resume)
{
	struct td_nlmsghdr *nlh;
	struct task_diag_msg *msg;
	u32 *off = &scratch->tail_off;
	void *p;

	nlh = (void *)scratch->buf;
	nlh->nlmsg_type = TASK_DIAG_CMD_GET;
	nlh->nlmsg_flags = NLM_F_MULTI;
	nlh->nlmsg_seq = seqno;
	nlh->nlmsg_pid = 0;
	msg = (void *)(scratch->buf + NLMSG_HDRLEN);
	msg->pid = pid;
	msg->tgid = tgid;
	msg->flags = 0;
	set_msg_len(scratch, NLMSG_HDRLEN + sizeof(*msg));

	if (req && req->host_pid_ns && (req->flags & TD_REQ_HOST_EACH) && !resume &&
	    !put_host_pid(scratch->buf, off, task, req))
		return 0;
	if ((show & TASK_DIAG_SHOW_BASE) && !resume) {
		p = put_attr(scratch->buf, off, TASK_DIAG_BASE, sizeof(struct task_diag_base));
		if (!p)
			return 0;
		/* to the next 8 bytes: whole 8-byte stores, the 4 past the
		 * struct are the next attribute's or past the message */
		__builtin_memset(p, 0, (TD_SIZEOF(struct task_diag_base) + 7) & ~7);
		fill_base(p, task, v, pid, tgid);
	}
	if ((show & TASK_DIAG_SHOW_CRED) && !resume) {
		p = put_attr(scratch->buf, off, TASK_DIAG_CRED, sizeof(struct task_diag_creds));
		if (!p)
			return 0;
		fill_creds(p, task, v);
	}
	return msg_len(scratch);
}

/*
 * The end of @task's message from @off: STAT, STATM, STAT_EXT, NS and
 * CGROUP, the message flags @flags; then it is written to @seq, or, with
 * CMDLINE in the sleepable objects, left for put_cmdline_and_write()
 * (TD_EMIT_CMDLINE).
 */
static __always_inline int emit_rest(struct seq_file *seq, struct task_struct *task,
				     struct td_request *req, struct td_scratch *scratch, u64 show,
				     bool thread_dump, u32 off, u32 flags)
{
	struct task_diag_msg *msg = (void *)(scratch->buf + NLMSG_HDRLEN);
	u32 *len = &scratch->tail_off;
	void *p;

	set_msg_len(scratch, off);
	if (show & TASK_DIAG_SHOW_STAT) {
		p = put_attr(scratch->buf, len, TASK_DIAG_STAT, sizeof(struct task_diag_stat));
		if (!p)
			return 0;
		__builtin_memset(p, 0, sizeof(struct task_diag_stat));
		fill_stat(p, task, !thread_dump);
	}
	if (show & TASK_DIAG_SHOW_STATM) {
		u32 zero = 0;
		struct td_config *cfg = bpf_map_lookup_elem(&td_config, &zero);

		p = put_attr(scratch->buf, len, TASK_DIAG_STATM, sizeof(struct task_diag_statm));
		if (!p)
			return 0;
		__builtin_memset(p, 0, sizeof(struct task_diag_statm));
		fill_statm(p, task, cfg ? cfg->statm_cpus : 0);
	}
	/* CMDLINE comes next, read after the RCU section in the sleepable
	 * objects (td_cmdline.h), by its own subprogram in all: STAT_EXT and
	 * NS, which follow it, are filled now, while we hold the task */
	if (show & TASK_DIAG_SHOW_CMDLINE) {
		if (show & TASK_DIAG_SHOW_STAT_EXT)
			fill_stat_ext(&scratch->cmdline_ext, task);
		if (show & TASK_DIAG_SHOW_NS)
			fill_ns(&scratch->cmdline_ns, task);
#ifndef TD_SLEEPABLE
		/* where the driver finds the task, should the command line
		 * have to come from its /proc */
		scratch->cmdline_host_ok = req && req->host_pid_ns &&
					   !(req->flags & TD_REQ_HOST_EACH) &&
					   !(flags & TD_MSG_F_VMA_FROM_PROC);
		if (scratch->cmdline_host_ok)
			fill_host_pid(&scratch->cmdline_host, task, req);
#endif
	} else {
		if (show & TASK_DIAG_SHOW_STAT_EXT) {
			p = put_attr(scratch->buf, len, TASK_DIAG_STAT_EXT,
				     sizeof(struct task_diag_stat_ext));
			if (!p)
				return 0;
			fill_stat_ext(p, task);
		}
		if (show & TASK_DIAG_SHOW_NS) {
			p = put_attr(scratch->buf, len, TASK_DIAG_NS, sizeof(struct task_diag_ns));
			if (!p)
				return 0;
			fill_ns(p, task);
		}
	}
	/* CGROUP, the last attribute: built apart, put_cgroup_and_write()
	 * appends it */
	scratch->cg_len = 0;
	if (show & TASK_DIAG_SHOW_CGROUP)
		scratch->cg_len = td_fill_cgroup(scratch, task_cgroup(task), viewer_cgns(req));
	/* where the driver finds a task whose VMAs it reads from /proc */
	if ((flags & TD_MSG_F_VMA_FROM_PROC) && req && req->host_pid_ns &&
	    !put_host_pid(scratch->buf, len, task, req))
		return 0;
	off = msg_len(scratch);

	msg->flags = flags;
	if (show & TASK_DIAG_SHOW_CMDLINE) {
		scratch->cmdline_mm = (u64)task->mm;
		scratch->cmdline_exec = task->self_exec_id;
		return TD_EMIT_CMDLINE;
	}
	return put_cgroup_and_write(seq, scratch, off);
}

/*
 * The messages of @task, built in this CPU's scratch buffers and written:
 * show_task()'s second half, run only while the buffers are ours.
 */
static __always_inline int emit_task(struct bpf_iter__task *ctx, struct task_struct *task,
				     const struct td_viewer *v, struct td_request *req,
				     struct td_scratch *scratch, u64 show, u64 strategy, u32 seqno,
				     u32 pid, u32 tgid, bool leader, bool resume)
{
	bool thread_dump = strategy == TASK_DIAG_DUMP_ALL_THREAD ||
			   strategy == TASK_DIAG_DUMP_THREAD;
	u32 off, flags = 0;

	off = emit_head(scratch, task, v, req, show, seqno, pid, tgid, resume);
	if (!off)
		return 0;
#ifndef TD_NO_VMA
	/* VMAs: of a process's leader in thread dumps, none without an mm
	 * (kernel threads, zombies), as /proc/PID/maps reads empty there.
	 * Only for a reader's request: the default answer has no VMA. */
	if ((show & TASK_DIAG_SHOW_VMA) && req && (leader || !thread_dump)) {
		struct mm_struct *mm = task->mm;

		if (mm && !(task->flags & PF_KTHREAD)) {
			u32 zero = 0;
			struct td_config *cfg = bpf_map_lookup_elem(&td_config, &zero);
			u32 with_stat = (show & TASK_DIAG_SHOW_VMA_STAT) && cfg &&
					cfg->pw_page_offset && cfg->pw_vmemmap;

			int vmas;

			if (!resume && !vma_room(ctx->meta->seq, mm, off, with_stat))
				return 1;
			if (req->viewer.valid) {
				scratch->root_mnt = req->root[0];
				scratch->root_dentry = req->root[1];
			} else {
				struct task_struct___fs *me = (void *)bpf_get_current_task_btf();
				struct fs_struct *fs = me->fs;

				scratch->root_mnt = fs ? (u64)fs->root.mnt : 0;
				scratch->root_dentry = fs ? (u64)fs->root.dentry : 0;
			}
			vmas = td_put_vmas(ctx, task, resume ? req->cont_start : 0, off, with_stat);
			vma_walk_end(mm, vmas == TD_VMA_DONE && !resume);
			/* a name not exact in this run, or in an earlier run of
			 * this task (the driver passes from_proc on) */
			if (vmas != TD_VMA_RETRY && (names_inexact() || (resume && req->from_proc))) {
				flags = TD_MSG_F_VMA_FROM_PROC;
				req->from_proc = 1;
			}
			switch (vmas) {
			case TD_VMA_RETRY:
				return 1;
			case TD_VMA_DONE:
				break;
			case TD_VMA_MORE:
				req->cont_pid = pid;
				req->cont_start = scratch->vma_next;
				req->cont_state = resume ? TD_CONT_MORE : TD_CONT_PENDING;
				return 0;
			default:
				return 0;
			}
			off = scratch->vma_off;
		}
	}
	if (resume)
		req->cont_state = TD_CONT_DONE;
#endif
	return emit_rest(ctx->meta->seq, task, req, scratch, show, thread_dump, off, flags);
}

#endif /* __TD_MSG_H */
