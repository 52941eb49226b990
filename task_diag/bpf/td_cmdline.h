/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CMDLINE: what a read of TASK_DIAG_CMDLINE_MAX bytes at the start of
 * /proc/PID/cmdline returns (get_mm_cmdline() and get_mm_proctitle() of
 * fs/proc/base.c), read from the task's memory through the direct map
 * where it can be (td_directmap.h), else with bpf_copy_from_user_task().
 * That helper may fault pages in, so only a sleepable program may call
 * it: the .s objects (TD_SLEEPABLE), whose runs do everything else in an
 * RCU read-side section, as a non-sleepable program runs, and read the
 * command line after it (show_task()).  The plain objects read through
 * the direct map only: a command line they cannot read so is marked
 * TD_MSG_F_CMDLINE_FROM_PROC, and the driver reads it from /proc.
 *
 * Part of task_diag.bpf.c, included there in order (each part uses the
 * ones before it); not a header of its own.
 */
#ifndef __TD_CMDLINE_H
#define __TD_CMDLINE_H

#define TD_CMDLINE_MAX	TASK_DIAG_CMDLINE_MAX
#define TD_PAGE_BYTES	(1UL << PAGE_SHIFT)
/* td_read_cmdline(): a plain object could not read it (the driver will) */
#define TD_CMDLINE_FROM_PROC	(TD_CMDLINE_MAX + 1)

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

/* vma_cb()'s context: one read's look at the VMA, and the direct read */
struct td_vma_ctx {
	char *dst;
	u64 addr, pgd, room;
	struct td_config *cfg;
	u32 n, direct, ok;
};

#define TD_VM_READ	0x1ULL

/*
 * bpf_find_vma()'s callback, run under the task's mmap_lock (read) with
 * the VMA at the address.  @room: how many bytes from the address /proc
 * would read, get_mm_cmdline() reading with FOLL_ANON: only from an
 * anonymous mapping (a file mapped over the argument area reads as
 * nothing; reading it here could also wait on a slow file system while
 * we hold a scratch buffer).  Then, with @direct, the direct read
 * (td_directmap.h), where every byte asked is in this VMA and it is
 * readable (no FOLL_FORCE either).  One callback for both: each is
 * verified at every call site.
 */
static long vma_cb(struct task_struct *task, struct vm_area_struct *vma, struct td_vma_ctx *c)
{
	c->room = vma->vm_ops ? 0 : vma->vm_end - c->addr;
	if (c->direct && c->cfg && c->room >= c->n && (vma->vm_flags & TD_VM_READ))
		c->ok = !dm_user_copy(c->dst, c->n, c->addr, c->pgd, c->cfg);
	return 0;
}

/* Whose memory read_cmdline() reads, and how */
struct td_ucopy {
	struct task_struct *task;
	struct td_config *cfg;		/* NULL: no direct reads */
	u64 pgd;			/* the task's page tables, for them */
	u32 failed;			/* a plain object could not read a page */
	u32 direct;			/* through the direct map, for this reader */
};

/*
 * @n bytes of the task's memory at @addr into @dst, or as many as there
 * are up to the end of @addr's page when the rest is not mapped
 * (access_remote_vm() returns what it could read; our helper all or
 * nothing).  Returns the bytes read.  Through the direct map where the
 * loader enabled it (td_directmap.h, under bpf_find_vma()'s mmap_lock:
 * pages present, in one readable anonymous VMA; the common case), else,
 * in a sleepable object, with bpf_copy_from_user_task(), which also pins
 * each page and may fault it in: about twice the cost.  A plain object
 * cannot sleep: it sets u->failed, and the driver reads /proc.
 */
static __always_inline u32 copy_task(char *dst, u32 n, unsigned long addr, struct td_ucopy *u)
{
	struct td_vma_ctx c = { .dst = dst, .addr = addr, .pgd = u->pgd, .cfg = u->cfg,
				.direct = u->direct };
	long err;

	if (n > TD_CMDLINE_MAX)
		n = TD_CMDLINE_MAX;
	if (!n)
		return 0;
	c.n = n;
#ifdef TD_SLEEPABLE
	bpf_rcu_read_lock();
#endif
	/* a writer holding the lock: -EBUSY, no direct read */
	err = bpf_find_vma(u->task, addr, vma_cb, &c, 0);
#ifdef TD_SLEEPABLE
	bpf_rcu_read_unlock();
#endif
	if (!err && c.ok)
		return n;
	if (u->direct)
		__sync_fetch_and_add(&u->cfg->cmdline_slow, 1);
#ifdef TD_SLEEPABLE
	{
		u32 head = TD_PAGE_BYTES - (addr & (TD_PAGE_BYTES - 1));
		/* while a writer holds the lock we read, as the argument area
		 * is the stack's, anonymous, unless a task mapped over it */
		unsigned long room = err == -EBUSY ? TD_CMDLINE_MAX : err ? 0 : c.room;

		if (n > room)
			n = room;
		if (!n)
			return 0;
		if (!bpf_copy_from_user_task(dst, n, (void *)addr, u->task, 0))
			return n;
		if (head >= n || head > TD_CMDLINE_MAX)
			return 0;
		return bpf_copy_from_user_task(dst, head, (void *)addr, u->task, 0) ? 0 : head;
	}
#else
	u->failed = 1;
	return 0;
#endif
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

	/* Each read of another task's memory costs a VMA lookup and a
	 * page-table walk: one read covers an argv that fits, its last byte
	 * included; a longer one (rare) is tested by a read of that byte. */
	argv = arg_end - arg_start;
	if (argv <= TD_CMDLINE_MAX) {
		got = copy_task(dst, argv, arg_start, u);
		if (got == argv) {
			last = dst[(argv - 1) & (TD_CMDLINE_MAX - 1)];
			known = true;
		}
	}
	/* (into dst, which the reads below write again: a stack byte would
	 * show the verifier a 1-byte room for the direct read's 4096) */
	if (!known)
		last = copy_task(dst, 1, arg_end - 1, u) == 1 ? dst[0] : 0;

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
	/* while the loader checks it, its reads alone (loader/cmdline.py) */
	u.direct = u.cfg && (u.cfg->cmdline_direct == 1 ||
			     (u.cfg->cmdline_direct == TD_CMDLINE_CHECKING &&
			      u.cfg->cmdline_checker == bpf_get_current_task_btf()->tgid));
	u.pgd = (u64)BPF_CORE_READ((struct mm_struct___pw *)mm_then, pgd);
	len = read_cmdline(dst, task, mm_then, &u);
	if ((u64)task->mm != mm_then || task->self_exec_id != exec_id)
		return 0;
	return u.failed ? TD_CMDLINE_FROM_PROC : len;
}

/*
 * The end of a message that emit_task() left at scratch->tail_off, with
 * CMDLINE asked: the CMDLINE attribute, then STAT_EXT and NS if asked; then
 * put_cgroup_and_write().  In the sleepable objects it runs outside the
 * RCU section: it may sleep.  In the plain ones, a command line not read
 * leaves the attribute empty, the message marked
 * TD_MSG_F_CMDLINE_FROM_PROC with where the driver finds the task
 * (TD_ATTR_HOST_PID, unless the message has it already), and the count
 * in the reader's request.
 */
static __noinline int put_cmdline_and_write(struct bpf_iter__task *ctx,
					    struct td_scratch *scratch, u64 show)
{
	/* a subprogram of its own: its frame is not on td_all's VMA path,
	 * whose stack is at the verifier's 512 bytes */
	struct task_struct *task = ctx->task;
#ifndef TD_SLEEPABLE
	bool from_proc = false;
#endif
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
#ifndef TD_SLEEPABLE
	if (len == TD_CMDLINE_FROM_PROC) {
		from_proc = true;
		len = 0;
	}
#endif
	if (len > TD_CMDLINE_MAX)
		return 0;
	/* the bound again, kept from the compiler, for 6.1's verifier */
	barrier_var(len);
	len &= 2 * TD_CMDLINE_MAX - 1;
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
#ifndef TD_SLEEPABLE
	if (from_proc) {
		struct task_diag_msg *msg = (void *)(scratch->buf + NLMSG_HDRLEN);
		u64 key = reader_key(bpf_get_current_task_btf());
		struct td_request *req = bpf_map_lookup_elem(&td_requests, &key);
		struct td_host_pid *host;

		msg->flags |= TD_MSG_F_CMDLINE_FROM_PROC;
		if (scratch->cmdline_host_ok) {
			host = put_attr(scratch->buf, &off, TD_ATTR_HOST_PID, sizeof(*host));
			if (!host)
				return 0;
			__builtin_memcpy(host, &scratch->cmdline_host, sizeof(*host));
		}
		if (req)
			__sync_fetch_and_add(&req->cmdline_proc, 1);
	}
#endif
	return put_cgroup_and_write(ctx->meta->seq, scratch, off);
}

#endif /* __TD_CMDLINE_H */
