/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The fixed groups: BASE, CRED, STAT, STATM and STAT_EXT of one task.
 *
 * Part of task_diag.bpf.c, included there in order (each part uses the
 * ones before it); not a header of its own.
 */
#ifndef __TD_GROUPS_H
#define __TD_GROUPS_H

/* ---- the groups ------------------------------------------------------ */

/* __task_state_index(): the letter /proc/PID/stat shows, as an index. */
static __always_inline u8 task_state_index(struct task_struct *task)
{
	unsigned int state, report;
	int fls;

	if (bpf_core_field_exists(task->__state))
		state = task->__state;
	else
		state = ((struct task_struct___pre514 *)task)->state;
	report = (state | task->exit_state) & TASK_REPORT;
	if ((state & TASK_IDLE) == TASK_IDLE)
		report = TASK_REPORT_IDLE;
	if (state & (TASK_RTLOCK_WAIT | TASK_FROZEN))
		report = TASK_UNINTERRUPTIBLE;
	/* fls(): report has at most 8 bits */
	for (fls = 8; fls > 0; fls--)
		if (report & (1U << (fls - 1)))
			break;
	return fls;
}

/* task->comm with plain loads; the kernel pads it with zeros after the
 * NUL (strscpy_pad), but we clear that tail ourselves rather than trust it. */
static __always_inline void copy_comm(char *dst, struct task_struct *task)
{
	u64 lo = *(u64 *)&task->comm[0], hi = *(u64 *)&task->comm[8];
	bool end = false;
	int i;

	__builtin_memcpy(dst, &lo, 8);
	__builtin_memcpy(dst + 8, &hi, 8);
	for (i = 0; i < TASK_DIAG_COMM_LEN; i++) {
		if (end)
			dst[i] = 0;
		else if (!dst[i])
			end = true;
	}
	dst[TASK_DIAG_COMM_LEN - 1] = 0;
}

/*
 * The fill_*() of the groups are subprograms (__noinline), not inlined
 * into td_all and td_cgroup: the verifier then walks each one's branches
 * (pid levels, task states) apart from the caller's, whose paths meet
 * again after the call (fill_base(): 47k fewer instructions explored in
 * the plain object without VMAs, down to 441k).  fill_creds() stays
 * inlined: its id maps' bpf_loop() callbacks would be a fourth frame
 * under td_all's, past the verifier's 512 bytes of stack in the plain
 * walk object.
 */
static __noinline void fill_base(struct task_diag_base *b, struct task_struct *task,
				 const struct td_viewer *v, u32 pid, u32 tgid)
{
	struct task_struct *tracer;

	b->tgid = tgid;
	b->pid = pid;
	b->ppid = task->thread_pid ? task_nr(task->real_parent, PIDTYPE_TGID, v) : 0;
	b->tpid = 0;
	if (task->ptrace) {
		tracer = task->parent;
		if (tracer)
			b->tpid = task_nr(tracer, PIDTYPE_PID, v);
	}
	b->sid = task_nr(task, PIDTYPE_SID, v);
	b->pgid = task_nr(task, PIDTYPE_PGID, v);
	b->state = task_state_index(task);
	copy_comm(b->comm, task);
}

static __always_inline void put_caps(struct task_diag_caps *c, u64 v)
{
	c->cap[0] = v;
	c->cap[1] = v >> 32;
}

static __always_inline void fill_creds(struct task_diag_creds *c, struct task_struct *task,
				       const struct td_viewer *v)
{
	const struct cred *cred = task->real_cred;

	put_caps(&c->cap_inheritable, READ_CAPS(cred, cap_inheritable));
	put_caps(&c->cap_permitted, READ_CAPS(cred, cap_permitted));
	put_caps(&c->cap_effective, READ_CAPS(cred, cap_effective));
	put_caps(&c->cap_bset, READ_CAPS(cred, cap_bset));
	c->uid = map_id_up(v, false, cred->uid.val);
	c->euid = map_id_up(v, false, cred->euid.val);
	c->suid = map_id_up(v, false, cred->suid.val);
	c->fsuid = map_id_up(v, false, cred->fsuid.val);
	c->gid = map_id_up(v, true, cred->gid.val);
	c->egid = map_id_up(v, true, cred->egid.val);
	c->sgid = map_id_up(v, true, cred->sgid.val);
	c->fsgid = map_id_up(v, true, cred->fsgid.val);
}

#include "td_cputime.h"

/* do_task_stat(): the whole process, or one thread (!whole). */
static __noinline void fill_stat(struct task_diag_stat *s, struct task_struct *task,
				      bool whole)
{
	struct signal_struct *sig = task->signal;
	u64 ut, st;

	s->cminflt = sig->cmin_flt;
	s->cmajflt = sig->cmaj_flt;
	s->cutime = sig->cutime / NSEC_PER_TICK;
	s->cstime = sig->cstime / NSEC_PER_TICK;
	s->threads = sig->nr_threads;

	if (whole) {
		u64 minflt, majflt;

		process_times(task, &ut, &st, &minflt, &majflt);
		s->minflt = minflt;
		s->majflt = majflt;
	} else {
		s->minflt = task->min_flt;
		s->majflt = task->maj_flt;
		cputime_adjust(task->se.sum_exec_runtime, task->utime, task->stime,
			       task->prev_cputime.utime, task->prev_cputime.stime, &ut, &st);
	}
	s->utime = ut / NSEC_PER_TICK;
	s->stime = st / NSEC_PER_TICK;
}

/* ---- STATM: task_statm() ---------------------------------------------- */

#define TD_PAGE	(1ULL << PAGE_SHIFT)

enum { TD_MM_FILEPAGES = 0, TD_MM_ANONPAGES = 1, TD_MM_SHMEMPAGES = 3 };

/*
 * percpu_counter_sum() needs where each CPU's copy of per-CPU data is
 * (__per_cpu_offset[cpu]): data, not in kallsyms without
 * CONFIG_KALLSYMS_ALL, so neither a ksym nor bpf_per_cpu_ptr() finds it.
 * td_scratch shows it: its key 0 is the __percpu pointer pptrs[0], and
 * bpf_map_lookup_percpu_elem() gives that plus CPU @cpu's offset.  Both
 * are read as numbers (bpf_probe_read_kernel() of the pointers, which we
 * do not dereference ourselves): the verifier forbids arithmetic on them.
 * The offsets are fixed at boot: the first run that needs them keeps them
 * in td_pcpu, and every later one reads one number per CPU.
 */
#define TD_PCPU_MAX	8192		/* NR_CPUS at most (x86 MAXSMP) */

struct td_pcpu_offsets {
	__u64 n;			/* how many are known; 0: none yet */
	__u64 off[TD_PCPU_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct td_pcpu_offsets);
} td_pcpu SEC(".maps");

static __always_inline u64 as_number(void *ptr)
{
	u64 n = 0;

	bpf_probe_read_kernel(&n, sizeof(n), &ptr);
	return n;
}

struct td_pcpu_fill {
	struct td_pcpu_offsets *o;
	u64 base;			/* td_scratch's pptrs[0] */
};

static long pcpu_fill_cb(u32 cpu, struct td_pcpu_fill *c)
{
	u32 zero = 0;
	void *mine = bpf_map_lookup_percpu_elem(&td_scratch, &zero, cpu);

	if (!mine)
		return 1;
	c->o->off[cpu & (TD_PCPU_MAX - 1)] = as_number(mine) - c->base;
	return 0;
}

/* td_pcpu with the offsets of CPUs 0..@cpus-1, or NULL */
static __always_inline struct td_pcpu_offsets *pcpu_offsets(u32 cpus)
{
	struct bpf_array *scratch = (void *)as_number(&td_scratch);
	struct td_pcpu_fill c = {};
	u32 zero = 0;

	c.o = bpf_map_lookup_elem(&td_pcpu, &zero);
	if (!c.o || cpus > TD_PCPU_MAX)
		return NULL;
	if (c.o->n == cpus)
		return c.o;
	if (bpf_probe_read_kernel(&c.base, sizeof(c.base), &scratch->pptrs[0]) || !c.base ||
	    bpf_loop(cpus, pcpu_fill_cb, &c, 0) != cpus)
		return NULL;
	c.o->n = cpus;			/* runs that race here write the same numbers */
	return c.o;
}

/* The per-CPU counts of the mm's three RSS counters, summed over CPUs */
struct td_pcpu_sum {
	struct td_pcpu_offsets *o;
	u64 at[3];			/* each counter's __percpu s32, as a number */
	s64 sum[3];
	u32 together;			/* the three are FILE, ANON, _, SHMEM in a row */
};

static long pcpu_sum_cb(u32 cpu, struct td_pcpu_sum *c)
{
	u64 off = c->o->off[cpu & (TD_PCPU_MAX - 1)];
	s32 v[4] = {};

	if (c->together) {
		/* percpu_counter_init_many() (6.6) puts an mm's counters in
		 * one per-CPU allocation: one read for the three */
		if (bpf_probe_read_kernel(v, sizeof(v), (void *)(c->at[0] + off)))
			return 1;
		c->sum[0] += v[0];
		c->sum[1] += v[1];
		c->sum[2] += v[3];
		return 0;
	}
	if (bpf_probe_read_kernel(&v[0], 4, (void *)(c->at[0] + off)) ||
	    bpf_probe_read_kernel(&v[1], 4, (void *)(c->at[1] + off)) ||
	    bpf_probe_read_kernel(&v[2], 4, (void *)(c->at[2] + off)))
		return 1;
	c->sum[0] += v[0];
	c->sum[1] += v[1];
	c->sum[2] += v[2];
	return 0;
}

/*
 * get_mm_counter() of MM_FILEPAGES, MM_ANONPAGES and MM_SHMEMPAGES as
 * /proc/PID/statm reads them on this kernel, into @out, each clamped at 0
 * like the kernel.  Before 6.2 atomics; since, per-CPU counters that /proc
 * reads either as their approximate totals (percpu_counter_read()) or,
 * since the 2025 change to statm, summed over the CPUs
 * (percpu_counter_sum()).  Which one the kernel does cannot be seen in
 * BTF: the loader measures it and sets td_config.statm_cpus (0: the
 * approximate totals; N: sum CPUs 0..N-1).
 */
static __always_inline void mm_counters(struct mm_struct *mm, u32 cpus, u64 out[3])
{
	struct td_pcpu_sum c = {};
	int i;

	if (bpf_core_type_exists(struct mm_rss_stat___atomic)) {
		struct mm_struct___atomic_rss *old = (void *)mm;

		c.sum[0] = BPF_CORE_READ(old, rss_stat.count[TD_MM_FILEPAGES].counter);
		c.sum[1] = BPF_CORE_READ(old, rss_stat.count[TD_MM_ANONPAGES].counter);
		c.sum[2] = BPF_CORE_READ(old, rss_stat.count[TD_MM_SHMEMPAGES].counter);
	} else {
		/* constant indices: CO-RE relocates each, while a variable one
		 * would be scaled by our short struct's size */
		c.sum[0] = mm->rss_stat[TD_MM_FILEPAGES].count;
		c.sum[1] = mm->rss_stat[TD_MM_ANONPAGES].count;
		c.sum[2] = mm->rss_stat[TD_MM_SHMEMPAGES].count;
		if (cpus) {
			c.o = pcpu_offsets(cpus);
			c.at[0] = as_number(mm->rss_stat[TD_MM_FILEPAGES].counters);
			c.at[1] = as_number(mm->rss_stat[TD_MM_ANONPAGES].counters);
			c.at[2] = as_number(mm->rss_stat[TD_MM_SHMEMPAGES].counters);
			c.together = c.at[1] == c.at[0] + 4 && c.at[2] == c.at[0] + 12;
			if (c.o && c.at[0] && c.at[1] && c.at[2])
				bpf_loop(cpus, pcpu_sum_cb, &c, 0);
		}
	}
	for (i = 0; i < 3; i++)
		out[i] = c.sum[i] < 0 ? 0 : c.sum[i];
}

static __noinline void fill_statm(struct task_diag_statm *s, struct task_struct *task,
				  u32 cpus)
{
	struct mm_struct *mm = task->mm;
	u64 rss[3];		/* file, anon, shmem */

	if (!mm || (task->flags & PF_KTHREAD))
		return;		/* get_task_mm(): none for zombies, nor for a kernel
				 * thread that borrows an mm (kthread_use_mm()) */
	mm_counters(mm, cpus, rss);
	s->size = mm->total_vm;
	s->shared = rss[0] + rss[2];
	s->resident = s->shared + rss[1];
	s->text = (((mm->end_code + TD_PAGE - 1) & ~(TD_PAGE - 1)) -
		   (mm->start_code & ~(TD_PAGE - 1))) >> PAGE_SHIFT;
	s->data = mm->data_vm + mm->stack_vm;
}

/* ---- STAT_EXT: more of do_task_stat() -------------------------------- */

/* new_encode_dev(tty_devnum(tty)) */
static __always_inline u32 tty_nr(struct signal_struct *sig)
{
	struct tty_struct *tty = sig->tty;
	u32 major, minor;

	if (!tty)
		return 0;
	major = tty->driver->major;
	minor = tty->driver->minor_start + tty->index;
	return (minor & 0xff) | (major << 8) | ((minor & ~0xffU) << 12);
}

static __noinline void fill_stat_ext(struct task_diag_stat_ext *x, struct task_struct *task)
{
	x->start_time = task->start_boottime / NSEC_PER_TICK;
	x->tty_nr = tty_nr(task->signal);
	x->flags = task->flags;
	x->priority = task->prio - 100;		/* task_prio(): prio - MAX_RT_PRIO */
	x->nice = task->static_prio - 120;	/* task_nice(): PRIO_TO_NICE() */
	x->rt_priority = task->rt_priority;
	x->policy = task->policy;
	x->delayacct_blkio_ticks = 0;		/* delayacct_blkio_ticks() */
	if (bpf_core_field_exists(((struct task_struct___delays *)task)->delays)) {
		struct task_delay_info *d = ((struct task_struct___delays *)task)->delays;

		if (d)
			x->delayacct_blkio_ticks = BPF_CORE_READ(d, blkio_delay) / NSEC_PER_TICK;
	}
}

/* ---- NS: the targets of the /proc/PID/ns links ------------------------ */

static __noinline void fill_ns(struct task_diag_ns *x, struct task_struct *task)
{
	struct nsproxy *ns = task->nsproxy;
	u32 level;

	__builtin_memset(x, 0, sizeof(*x));
	/* user: from the task's credentials, pid: its active pid namespace;
	 * both there for a zombie too, as their links are */
	x->user = task->real_cred->user_ns->ns.inum;
	if (task->thread_pid)
		x->pid = BPF_CORE_READ((struct pid_namespace *)task_pid_ns(task, &level), ns.inum);
	if (!ns)
		return;		/* exited: exit_task_namespaces() cleared it */
	x->uts = ns->uts_ns->ns.inum;
	x->ipc = ns->ipc_ns->ns.inum;
	x->mnt = ns->mnt_ns->ns.inum;
	x->net = ns->net_ns->ns.inum;
	x->cgroup = ns->cgroup_ns->ns.inum;
	if (ns->pid_ns_for_children)
		x->pid_for_children = ns->pid_ns_for_children->ns.inum;
	if (bpf_core_field_exists(((struct nsproxy___time *)ns)->time_ns))
		x->time = BPF_CORE_READ((struct nsproxy___time *)ns, time_ns, ns.inum);
}

#endif /* __TD_GROUPS_H */
