/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CMDLINE: what a read of TASK_DIAG_CMDLINE_MAX bytes at the start of
 * /proc/PID/cmdline returns (get_mm_cmdline() and get_mm_proctitle() of
 * fs/proc/base.c), read from the task's memory through the direct map
 * where it can be (td_directmap.h), else with bpf_copy_from_user_task().
 * That helper may fault pages in, so only a sleepable program may call
 * it: the .s objects (TD_SLEEPABLE), whose runs do everything else in an
 * RCU read-side section, as a non-sleepable program runs, and read the
 * command line after it (show_task()).
 *
 * Part of task_diag.bpf.c, included there in order (each part uses the
 * ones before it); not a header of its own.
 */
#ifndef __TD_CMDLINE_H
#define __TD_CMDLINE_H

#define TD_CMDLINE_MAX	TASK_DIAG_CMDLINE_MAX
#define TD_PAGE_BYTES	(1UL << PAGE_SHIFT)

struct td_strnlen_ctx {
	const char *s;
	u32 got, len;
};

static long strnlen_cb(u32 i, struct td_strnlen_ctx *c)
{
	/* the mask shows the verifier the bound that bpf_loop() keeps */
	if (i >= c->got || !c->s[i & (TD_CMDLINE_MAX - 1)])
		return 1;
	c->len = i + 1;
	return 0;
}

struct td_anon_ctx {
	unsigned long addr, room;
};

static long anon_room_cb(struct task_struct *task, struct vm_area_struct *vma,
			 struct td_anon_ctx *c)
{
	/* vma_is_anonymous(): what FOLL_ANON lets /proc read */
	c->room = vma->vm_ops ? 0 : vma->vm_end - c->addr;
	return 0;
}

/*
 * How many bytes at @addr /proc would read: get_mm_cmdline() reads with
 * FOLL_ANON, so only from an anonymous mapping (a file mapped over the
 * argument area reads as nothing; reading it here could also wait on a
 * slow file system while we hold a scratch buffer).  bpf_find_vma() only
 * try-locks the mmap_lock: while a writer holds it we read, as the
 * argument area is the stack's, anonymous, unless a task mapped over it.
 */
static __always_inline unsigned long anon_room(struct task_struct *task, unsigned long addr)
{
	struct td_anon_ctx c = { .addr = addr };
	long err = bpf_find_vma(task, addr, anon_room_cb, &c, 0);

	if (err == -EBUSY)
		return TD_CMDLINE_MAX;
	return err ? 0 : c.room;
}

/* Whose memory read_cmdline() reads, and how */
struct td_ucopy {
	struct task_struct *task;
	struct td_config *cfg;		/* NULL: no direct reads */
	u64 pgd;			/* the task's page tables, for them */
};

/*
 * @n bytes of the task's memory at @addr into @dst, or as many as there
 * are up to the end of @addr's page when the rest is not mapped
 * (access_remote_vm() returns what it could read; our helper all or
 * nothing).  Returns the bytes read.  Through the direct map where the
 * loader enabled it (td_directmap.h: pages present and anonymous, the
 * common case), else with bpf_copy_from_user_task(), which takes the
 * task's mmap_lock, pins each page and may fault it in: about five times
 * the cost.
 */
static __always_inline u32 copy_task(char *dst, u32 n, unsigned long addr, struct td_ucopy *u)
{
	u32 head = TD_PAGE_BYTES - (addr & (TD_PAGE_BYTES - 1));
	struct task_struct *task = u->task;
	unsigned long room;
	int err;

	if (n > TD_CMDLINE_MAX)
		n = TD_CMDLINE_MAX;
	if (!n)
		return 0;
	if (u->cfg && u->cfg->cmdline_direct) {
		bpf_rcu_read_lock();
		err = dm_user_copy(dst, n, addr, u->pgd, u->cfg);
		bpf_rcu_read_unlock();
		if (!err)
			return n;
		__sync_fetch_and_add(&u->cfg->cmdline_slow, 1);
	}
	room = anon_room(task, addr);
	if (n > room)
		n = room;
	if (!n)
		return 0;
	if (!bpf_copy_from_user_task(dst, n, (void *)addr, task, 0))
		return n;
	if (head >= n || head > TD_CMDLINE_MAX)
		return 0;
	return bpf_copy_from_user_task(dst, head, (void *)addr, task, 0) ? 0 : head;
}

static __always_inline u32 read_cmdline(char *dst, struct task_struct *task, u64 mm_then,
					 struct td_ucopy *u)
{
	unsigned long arg_start, arg_end, env_start, env_end, count, argv;
	struct td_strnlen_ctx c = {};
	struct mm_struct *mm;
	bool known = false;
	char last = 0;
	u32 got = 0;

	mm = task->mm;
	if (!mm || (task->flags & PF_KTHREAD) || (u64)mm != mm_then)
		return 0;		/* get_task_mm(): none for these */
	arg_start = mm->arg_start;
	arg_end = mm->arg_end;
	env_start = mm->env_start;
	env_end = mm->env_end;
	if (!env_end || arg_start >= arg_end)
		return 0;		/* not far enough into exec */
	/* setproctitle() may run on into the environment, and only there */
	if (env_start != arg_end || env_end < env_start)
		env_start = env_end = arg_end;
	count = env_end - arg_start;
	if (count > TD_CMDLINE_MAX)
		count = TD_CMDLINE_MAX;

	/* Each read of another task's memory costs a page-table walk and a
	 * page pinned: one read covers an argv that fits, its last byte
	 * included; a longer one (rare) is tested by a read of that byte. */
	argv = arg_end - arg_start;
	if (argv <= TD_CMDLINE_MAX) {
		got = copy_task(dst, argv, arg_start, u);
		if (got == argv) {
			last = dst[(argv - 1) & (TD_CMDLINE_MAX - 1)];
			known = true;
		}
	}
	if (!known && copy_task(&last, 1, arg_end - 1, u) != 1)
		last = 0;

	if (last) {
		/* the last byte of argv is not NUL: a rewritten title, its
		 * first string up to a page, with its NUL if there is one */
		c.s = dst;
		if (known) {
			c.got = got;
			bpf_loop(TD_CMDLINE_MAX, strnlen_cb, &c, 0);
		}
		if (!known || (c.len == c.got && count > c.got)) {
			/* no NUL in argv, and the title may run on */
			c.len = 0;
			c.got = copy_task(dst, TD_PAGE_BYTES, arg_start, u);
			bpf_loop(TD_CMDLINE_MAX, strnlen_cb, &c, 0);
		}
		if (c.len < c.got)
			c.len++;
		return c.len < count ? c.len : count;
	}
	/* otherwise strictly [arg_start, arg_end) */
	if (count > argv)
		count = argv;
	if (known)
		return count;		/* in dst already */
	return copy_task(dst, count, arg_start, u);
}

/*
 * The payload of @task's CMDLINE into @dst (TD_CMDLINE_MAX bytes of room);
 * its length.  @mm and @exec_id: the task's mm and self_exec_id when the
 * access check passed, in the RCU section.  We read its mm after it,
 * holding no reference: an exec in between (a setuid one too) would give
 * another program's memory at this one's addresses, so the same mm and
 * exec count must still be there after the reads, or the payload is
 * empty, as for a task that has gone.
 */
static __noinline u32 td_read_cmdline(char *dst, struct task_struct *task, u64 mm_then,
				      u64 exec_id)
{
	struct td_ucopy u = {};
	u32 len, zero = 0;

	if (!task || !dst || !mm_then)
		return 0;
	u.task = task;
	u.cfg = bpf_map_lookup_elem(&td_config, &zero);
	u.pgd = (u64)BPF_CORE_READ((struct mm_struct___pw *)mm_then, pgd);
	len = read_cmdline(dst, task, mm_then, &u);
	if ((u64)task->mm != mm_then || task->self_exec_id != exec_id)
		return 0;
	return len;
}

/*
 * The end of a message that emit_task() left at scratch->tail_off, with
 * CMDLINE asked: the CMDLINE attribute, then STAT_EXT and NS if asked; then
 * put_cgroup_and_write().  Runs outside the RCU section: it may sleep.
 */
static __noinline int put_cmdline_and_write(struct bpf_iter__task *ctx,
					    struct td_scratch *scratch, u64 show)
{
	/* a subprogram of its own: its frame is not on td_all's VMA path,
	 * whose stack is at the verifier's 512 bytes */
	struct task_struct *task = ctx->task;
	u32 off, len;
	struct td_nlattr *nla;

	if (!task || !scratch)
		return 0;
	off = scratch->tail_off;
	if (off > TD_BUF_SIZE - 2 * NLA_HDRLEN - TD_CMDLINE_MAX -
		  TD_SIZEOF(struct task_diag_stat_ext))
		return 0;
	nla = (void *)(scratch->buf + off);
	len = td_read_cmdline(scratch->buf + off + NLA_HDRLEN, task, scratch->cmdline_mm,
			      scratch->cmdline_exec);
	if (len > TD_CMDLINE_MAX)
		return 0;
	nla->nla_len = NLA_HDRLEN + len;
	nla->nla_type = TASK_DIAG_CMDLINE;
	/* zeros up to the next attribute */
	if (len & 3) {
		char *pad = scratch->buf + off + NLA_HDRLEN + len;

		pad[0] = 0;
		if ((len & 3) <= 2)
			pad[1] = 0;
		if ((len & 3) == 1)
			pad[2] = 0;
	}
	off += NLA_HDRLEN + ((len + 3) & ~3U);
	if (show & TASK_DIAG_SHOW_STAT_EXT) {
		if (off > TD_BUF_SIZE - NLA_HDRLEN - TD_SIZEOF(struct task_diag_stat_ext))
			return 0;
		nla = (void *)(scratch->buf + off);
		nla->nla_len = NLA_HDRLEN + sizeof(struct task_diag_stat_ext);
		nla->nla_type = TASK_DIAG_STAT_EXT;
		__builtin_memcpy(scratch->buf + off + NLA_HDRLEN, &scratch->cmdline_ext,
				 sizeof(struct task_diag_stat_ext));
		off += NLA_HDRLEN + sizeof(struct task_diag_stat_ext);
	}
	if (show & TASK_DIAG_SHOW_NS) {
		if (off > TD_BUF_SIZE - NLA_HDRLEN - TD_SIZEOF(struct task_diag_ns))
			return 0;
		nla = (void *)(scratch->buf + off);
		nla->nla_len = NLA_HDRLEN + sizeof(struct task_diag_ns);
		nla->nla_type = TASK_DIAG_NS;
		__builtin_memcpy(scratch->buf + off + NLA_HDRLEN, &scratch->cmdline_ns,
				 sizeof(struct task_diag_ns));
		off += NLA_HDRLEN + sizeof(struct task_diag_ns);
	}
	return put_cgroup_and_write(ctx->meta->seq, scratch, off);
}

#endif /* __TD_CMDLINE_H */
