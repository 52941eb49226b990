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


#define NLM_F_MULTI	0x2
#define NLMSG_HDRLEN	16
#define NLA_HDRLEN	4
#define CAP_SYS_PTRACE	19
#define SUID_DUMP_USER	1
#define MMF_DUMPABLE_MASK 3

/* Task states, include/linux/sched.h (same values from 4.14 to 6.18). */
#define TASK_REPORT		0x7f
#define TASK_UNINTERRUPTIBLE	0x0002
#define TASK_NOLOAD		0x0400
#define TASK_IDLE		(TASK_UNINTERRUPTIBLE | TASK_NOLOAD)
#define TASK_REPORT_IDLE	(TASK_REPORT + 1)
#define TASK_RTLOCK_WAIT	0x1000
#define TASK_FROZEN		0x8000

#define USER_HZ		100
#define NSEC_PER_TICK	(1000000000ULL / USER_HZ)

#define TD_MAX_NS_LEVEL	32	/* MAX_PID_NS_LEVEL, and user namespaces nest as deep */
#define TD_MAX_EXTENTS	340	/* UID_GID_MAP_MAX_EXTENTS */
#define TD_MAX_THREADS	(1 << 20)

/* Scratch for one message; a power of two so that lengths can be masked.
 * The slack behind it takes one VMA record with its longest name written at
 * any masked offset. */
#define TD_BUF_SIZE	16384
#define TD_BUF_MASK	(TD_BUF_SIZE - 1)
#define TD_NAME_MAX	4096		/* PATH_MAX */
#define TD_SLACK	8192
/* What one program run may write: the iterator's seq buffer is 32 KiB and
 * a write must leave it one byte short.  A task with more goes on in
 * continuation passes (td_iter.h, TD_CONT_*). */
#define TD_BUDGET	(28 * 1024)
/* Room kept in each message for what may close it: the STAT attribute. */
#define TD_GATE_LEN	(64 + 12)	/* the [vsyscall] record: struct, name, pad */
#define TD_STAT_LEN	80		/* struct task_diag_vma_stat */
/* what a task's last message needs after its VMAs: STAT, the gate area's
 * record, and TD_ATTR_HOST_PID (td_iter.h) */
#define TD_TAIL		(NLA_HDRLEN + 72 + TD_GATE_LEN + TD_STAT_LEN + NLA_HDRLEN + 24)
#define TD_MSG_HDR	(NLMSG_HDRLEN + 12)	/* nlmsghdr + task_diag_msg */
#define PF_KTHREAD	0x00200000
#define PAGE_SHIFT	12
#define ENOENT		2
#define ENAMETOOLONG	36

struct td_nlmsghdr {
	__u32 nlmsg_len;
	__u16 nlmsg_type;
	__u16 nlmsg_flags;
	__u32 nlmsg_seq;
	__u32 nlmsg_pid;
};

struct td_nlattr {
	__u16 nla_len;
	__u16 nla_type;
};

struct td_scratch {
	char buf[TD_BUF_SIZE + TD_SLACK];
	__u64 vma_next;		/* td_put_vmas' results */
	__u32 vma_off;
	/* the viewer's root, for VMA names: set before td_put_vmas() */
	__u64 root_mnt, root_dentry;
	__u64 busy;		/* a run is building its message here: show_task() */
};

/* Per CPU: [0] for every answer, the others spares for the answers without
 * VMAs of runs that found [0] taken (show_task()). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct td_scratch);
} td_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct td_config);
} td_config SEC(".maps");

/* LRU: a reader that died without deleting its entry is evicted in time;
 * reader_start makes a stale entry useless to the next owner of the tid. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TD_MAX_REQUESTS);
	__type(key, __u64);		/* pid ns inode << 32 | tid in that ns */
	__type(value, struct td_request);
} td_requests SEC(".maps");

/*
 * Reading the kernel: ctx->task and the current task are trusted BTF
 * pointers, and so is every pointer loaded through them, so fields are
 * read with plain loads (the verifier guards them).  bpf_probe_read is
 * kept for what plain loads cannot do: an array indexed by a variable,
 * and the viewer's kernel pointers, which travel as numbers.
 */

/* ---- pids in the viewer's namespace ----------------------------------- */

/* numbers[@level] of @pid, indexed by a variable: computed address and a
 * probe.  Out of line and returning numbers, so that the compiler does not
 * merge these loads with the plain ones of the callers (the verifier
 * would refuse one load instruction used with two kinds of pointer). */
static __noinline u64 upid_at(u64 pid_addr, u32 level, bool want_ns)
{
	struct upid upid = {};

	if (level >= TD_MAX_NS_LEVEL ||
	    bpf_probe_read_kernel(&upid, sizeof(upid), (void *)pid_addr +
				  bpf_core_field_offset(struct pid, numbers) +
				  level * bpf_core_type_size(struct upid)))
		return 0;
	return want_ns ? (u64)upid.ns : (u64)(u32)upid.nr;
}

/* pid_nr_ns(): the number of @pid in the namespace @ns_addr at @ns_level,
 * 0 if @pid is not visible there. */
static __always_inline u32 pid_nr_ns(struct pid *pid, u64 ns_addr, u32 ns_level)
{
	if (!pid || ns_level > pid->level)
		return 0;
	if (ns_level == 0)
		return (u64)pid->numbers[0].ns == ns_addr ? pid->numbers[0].nr : 0;
	if (upid_at((u64)pid, ns_level, true) != ns_addr)
		return 0;
	return upid_at((u64)pid, ns_level, false);
}

/* task_active_pid_ns() of a live task. */
static __always_inline u64 task_pid_ns(struct task_struct *task, u32 *level)
{
	struct pid *pid = task->thread_pid;

	*level = 0;
	if (!pid)
		return 0;
	*level = pid->level;
	if (*level == 0)
		return (u64)pid->numbers[0].ns;
	return upid_at((u64)pid, *level, true);
}

/* inode << 32 | number of @pid in its own (deepest) namespace. */
static __noinline u64 own_key_at(u64 pid_addr, u32 level)
{
	struct pid_namespace *ns = (void *)upid_at(pid_addr, level, true);

	return (u64)BPF_CORE_READ(ns, ns.inum) << 32 | upid_at(pid_addr, level, false);
}

/* The td_requests key of @reader: how it names itself (td_iter.h). */
static __always_inline u64 reader_key(struct task_struct *reader)
{
	struct pid *pid = reader->thread_pid;

	if (!pid)
		return 0;
	if (pid->level == 0)
		return (u64)pid->numbers[0].ns->ns.inum << 32 | (u32)reader->pid;
	return own_key_at((u64)pid, pid->level);
}

/* __task_pid_nr_ns(): nothing once the task is released (!pid_alive). */
static __always_inline u32 task_nr(struct task_struct *task, enum pid_type type,
				   const struct td_viewer *v)
{
	struct pid *pid = task->thread_pid;

	if (!pid)
		return 0;
	/* In the initial namespace the task's own fields hold its numbers:
	 * no struct pid to touch (a cache miss per task saved). */
	if (v->pid_ns_level == 0 && type == PIDTYPE_PID)
		return task->pid;
	if (v->pid_ns_level == 0 && type == PIDTYPE_TGID)
		return task->tgid;
	if (type != PIDTYPE_PID)
		pid = task->signal->pids[type];
	return pid_nr_ns(pid, v->pid_ns, v->pid_ns_level);
}

/* ---- user namespaces and credentials -------------------------------- */

struct td_map_ctx {
	struct uid_gid_extent *extents;
	u32 id;
	u32 result;
};

static long map_extent_cb(u32 i, struct td_map_ctx *c)
{
	struct uid_gid_extent e;

	if (bpf_probe_read_kernel(&e, sizeof(e), c->extents + i))
		return 1;
	if (c->id >= e.lower_first && c->id - e.lower_first < e.count) {
		c->result = c->id - e.lower_first + e.first;
		return 1;
	}
	return 0;
}

static __always_inline u32 overflow_id(bool gid)
{
	u32 zero = 0;
	struct td_config *cfg = bpf_map_lookup_elem(&td_config, &zero);

	if (!cfg)
		return 65534;
	return gid ? cfg->overflowgid : cfg->overflowuid;
}

/* from_kuid_munged(): map a global id up into the viewer's namespace;
 * unmapped ids read as the overflow id.  The namespace is a number here:
 * probe reads. */
static __always_inline u32 map_id_up(const struct td_viewer *v, bool gid, u32 id)
{
	struct user_namespace *ns = (void *)v->user_ns;
	struct uid_gid_map *map;
	struct td_map_ctx c = { .id = id, .result = (u32)-1 };
	u32 n;

	if (v->user_ns_level == 0)	/* init_user_ns maps every id to itself */
		return id;
	map = gid ? &ns->gid_map : &ns->uid_map;
	n = BPF_CORE_READ(map, nr_extents);
	if (n <= 5)
		c.extents = (void *)map + bpf_core_field_offset(struct uid_gid_map, extent);
	else
		c.extents = BPF_CORE_READ(map, reverse);
	if (n > TD_MAX_EXTENTS)
		n = TD_MAX_EXTENTS;
	bpf_loop(n, map_extent_cb, &c, 0);
	return c.result == (u32)-1 ? overflow_id(gid) : c.result;
}

/* One capability set as 64 bits, low word first, on every kernel. */
#define READ_CAPS(cred, set)							\
	(bpf_core_field_exists(((kernel_cap_t *)0)->val) ? (cred)->set.val :	\
	 ((struct kernel_cap_struct *)&(cred)->set)->cap[0] |			\
	 (u64)((struct kernel_cap_struct *)&(cred)->set)->cap[1] << 32)

/*
 * cap_capable(): does the viewer hold @cap in @targ?  Walks from @targ up
 * to the viewer's namespace; the owner of a child namespace holds every
 * cap in it.
 */
static __always_inline bool ns_capable(const struct td_viewer *v,
				       struct user_namespace *targ, int cap)
{
	struct user_namespace *ns = targ;
	int i;

	for (i = 0; i < TD_MAX_NS_LEVEL + 1 && ns; i++) {
		struct user_namespace *parent;

		if ((u64)ns == v->user_ns)
			return v->cap_effective & (1ULL << cap);
		if (ns->level <= v->user_ns_level)
			return false;
		parent = ns->parent;
		if ((u64)parent == v->user_ns && ns->owner.val == v->euid)
			return true;
		ns = parent;
	}
	return false;
}

static __always_inline unsigned long mm_dumpable(struct mm_struct *mm)
{
	if (bpf_core_field_exists(struct mm_struct___flags_bitmap, flags))
		return ((struct mm_struct___flags_bitmap *)mm)->flags.__mm_flags[0] &
		       MMF_DUMPABLE_MASK;
	return ((struct mm_struct___flags_word *)mm)->flags & MMF_DUMPABLE_MASK;
}

/* The viewer as the kernel sees @task when it calls: current_cred() is
 * the subjective cred, task_active_pid_ns() the pid namespace. */
static __always_inline void fill_viewer(struct td_viewer *v, struct task_struct *task)
{
	const struct cred *cred = task->cred;
	struct user_namespace *uns = cred->user_ns;

	v->cap_effective = READ_CAPS(cred, cap_effective);
	v->user_ns = (u64)uns;
	v->user_ns_level = uns->level;
	v->pid_ns = task_pid_ns(task, &v->pid_ns_level);
	v->signal = (u64)task->signal;
	v->fsuid = cred->fsuid.val;
	v->fsgid = cred->fsgid.val;
	v->euid = cred->euid.val;
	v->valid = 1;
	v->start = task->group_leader->start_boottime;
	v->exec_id = task->group_leader->self_exec_id;
	v->tgid = task->tgid;
}

/*
 * ptrace_may_access(task, PTRACE_MODE_READ_FSCREDS) for the viewer:
 * __ptrace_may_access() followed by commoncap's cap_ptrace_access_check().
 * Yama only restricts attaching, not this read mode.
 */
static __always_inline bool may_read(const struct td_viewer *v, struct task_struct *task)
{
	const struct cred *tc;
	struct user_namespace *tns;
	struct mm_struct *mm;

	/* same thread group: the signal_struct, and the process it belongs
	 * to, since a driver may hold a viewer after its process exited and
	 * its signal_struct went to another */
	if (v->signal == (u64)task->signal && v->tgid == task->tgid &&
	    v->start == task->group_leader->start_boottime)
		return true;
	/* CAP_SYS_PTRACE in the initial user namespace passes every test
	 * below: each namespace descends from it.  That is root's case. */
	if (v->user_ns_level == 0 && (v->cap_effective & (1ULL << CAP_SYS_PTRACE)))
		return true;

	tc = task->real_cred;
	tns = tc->user_ns;
	if (!(v->fsuid == tc->euid.val && v->fsuid == tc->suid.val && v->fsuid == tc->uid.val &&
	      v->fsgid == tc->egid.val && v->fsgid == tc->sgid.val && v->fsgid == tc->gid.val) &&
	    !ns_capable(v, tns, CAP_SYS_PTRACE))
		return false;

	mm = task->mm;
	if (mm && mm_dumpable(mm) != SUID_DUMP_USER && !ns_capable(v, mm->user_ns, CAP_SYS_PTRACE))
		return false;

	/* commoncap: the task's permitted set must be within the viewer's
	 * effective set (same user namespace), or it needs CAP_SYS_PTRACE. */
	if (v->user_ns == (u64)tns && !(READ_CAPS(tc, cap_permitted) & ~v->cap_effective))
		return true;
	return ns_capable(v, tns, CAP_SYS_PTRACE);
}

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

static __always_inline void fill_base(struct task_diag_base *b, struct task_struct *task,
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

/* mul_u64_u64_div_u64(): a * b / c in 128 bits, by long division. */
struct td_div_ctx {
	u64 hi, lo, c, q, r;
};

static long div128_cb(u32 i, struct td_div_ctx *d)
{
	u32 bit = 127 - i;
	u64 top = d->r >> 63;
	u64 in = bit >= 64 ? (d->hi >> (bit - 64)) & 1 : (d->lo >> bit) & 1;

	d->r = (d->r << 1) | in;
	if (top || d->r >= d->c) {
		d->r -= d->c;
		if (bit < 64)
			d->q |= 1ULL << bit;
	}
	return 0;
}

static __always_inline u64 mul_div(u64 a, u64 b, u64 c)
{
	struct td_div_ctx d = { .c = c };
	u64 a_lo = (u32)a, a_hi = a >> 32, b_lo = (u32)b, b_hi = b >> 32;
	u64 ll, lh, hl, hh, mid;

	if (!c)
		return 0;
	if (!a_hi && !b_hi)
		return a * b / c;
	ll = a_lo * b_lo;
	lh = a_lo * b_hi;
	hl = a_hi * b_lo;
	hh = a_hi * b_hi;
	mid = (ll >> 32) + (u32)lh + (u32)hl;
	d.lo = (mid << 32) | (u32)ll;
	d.hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
	if (!d.hi)
		return d.lo / c;
	bpf_loop(128, div128_cb, &d, 0);
	return d.q;
}

/*
 * cputime_adjust() without its side effect: the kernel stores the result
 * in @prev, which we may not write; computing from the same inputs gives
 * the value /proc returns now.
 */
static __always_inline void cputime_adjust(u64 rtime, u64 utime, u64 stime,
					   u64 prev_ut, u64 prev_st, u64 *ut, u64 *st)
{
	if (prev_st + prev_ut >= rtime) {
		*ut = prev_ut;
		*st = prev_st;
		return;
	}
	if (stime == 0) {
		utime = rtime;
	} else if (utime == 0) {
		stime = rtime;
	} else {
		stime = mul_div(stime, rtime, stime + utime);
		if (stime > rtime)
			stime = rtime;
	}
	if (stime < prev_st)
		stime = prev_st;
	utime = rtime - stime;
	if (utime < prev_ut) {
		utime = prev_ut;
		stime = rtime - utime;
	}
	*ut = utime;
	*st = stime;
}

struct td_sum_ctx {
	struct list_head *head, *node;
	u64 utime, stime, rtime, min_flt, maj_flt;
	long off;	/* offsetof(struct task_struct, thread_node) */
};

/* for_each_thread(): add up the live threads, as thread_group_cputime(). */
static long sum_thread_cb(u32 i, struct td_sum_ctx *c)
{
	struct list_head *node = c->node;
	struct task_struct *t;

	if (!node || node == c->head)
		return 1;
	t = (void *)node - c->off;
	c->utime += BPF_CORE_READ(t, utime);
	c->stime += BPF_CORE_READ(t, stime);
	c->rtime += BPF_CORE_READ(t, se.sum_exec_runtime);
	c->min_flt += BPF_CORE_READ(t, min_flt);
	c->maj_flt += BPF_CORE_READ(t, maj_flt);
	c->node = BPF_CORE_READ(node, next);
	return 0;
}

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
		/* The callback gets the list as numbers: it walks with probes. */
		struct td_sum_ctx c = {
			.head = &sig->thread_head,
			.node = sig->thread_head.next,
			.off = bpf_core_field_offset(struct task_struct, thread_node),
			.utime = sig->utime,
			.stime = sig->stime,
			.rtime = sig->sum_sched_runtime,
			.min_flt = sig->min_flt,
			.maj_flt = sig->maj_flt,
		};

		bpf_loop(TD_MAX_THREADS, sum_thread_cb, &c, 0);
		s->minflt = c.min_flt;
		s->majflt = c.maj_flt;
		cputime_adjust(c.rtime, c.utime, c.stime, sig->prev_cputime.utime,
			       sig->prev_cputime.stime, &ut, &st);
	} else {
		s->minflt = task->min_flt;
		s->majflt = task->maj_flt;
		cputime_adjust(task->se.sum_exec_runtime, task->utime, task->stime,
			       task->prev_cputime.utime, task->prev_cputime.stime, &ut, &st);
	}
	s->utime = ut / NSEC_PER_TICK;
	s->stime = st / NSEC_PER_TICK;
}


/* ---- VMAs ------------------------------------------------------------- */

#ifndef TD_NO_VMA
extern int bpf_iter_task_vma_new(struct bpf_iter_task_vma *it, struct task_struct *task,
				 u64 addr) __ksym;
extern struct vm_area_struct *bpf_iter_task_vma_next(struct bpf_iter_task_vma *it) __ksym;
extern void bpf_iter_task_vma_destroy(struct bpf_iter_task_vma *it) __ksym;

#include "td_pagewalk.h"
#include "td_dwalk.h"

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

/*
 * ---- VMA names ---------------------------------------------------------
 *
 * /proc/PID/maps prints a file's name with seq_path(m, path, "\n"): d_path()
 * relative to the READER's root (current->fs->root), " (deleted)" after an
 * unlinked dentry, and every '\n' of the result as the four bytes "\012"
 * (mangle_path()).  Nothing else is escaped: not '\\', not ' '.  The other
 * names ([anon:NAME], [anon_shmem:NAME], [vdso], [heap], ...) are printed as
 * they are (seq_printf, seq_puts), and prctl(PR_SET_VMA_ANON_NAME) refuses
 * control characters in NAME: nothing to escape there.
 *
 * The file-name cache (issue 4).  d_path() for every file VMA was most of
 * what names cost, and most file VMAs name the same few files: several
 * VMAs per file (text, data, relro, bss), the same libraries in every
 * process.  So each file's name is resolved once per dump (and per CPU),
 * into td_names, and a cached name is served only if everything that makes
 * d_path() print it is as it was when it was resolved:
 *
 *  - the dump: the iterator's session_id (td_name_work.dump), a number the
 *    kernel gives each iterator file it opens and never gives again (the
 *    seq_file pointer, by contrast, is reused once freed).  A name is never
 *    trusted in another dump: whatever changed between two dumps (a rename
 *    anywhere on the path, a mount, a deletion) shows in the second.
 *  - the file's path, f_path.mnt and f_path.dentry: the key;
 *  - the reader's root, current->fs->root's mnt and dentry, also in the
 *    key: d_path() prints relative to it (a chrooted reader, a reader in
 *    another mount namespace, a pinned file read by several readers);
 *  - the dentry, as it is now: d_parent, d_name (hash and length), d_inode,
 *    and d_unlinked() (IS_ROOT, or unhashed: what decides " (deleted)").
 *    They are read before d_path() when a name is resolved, so that a
 *    change racing with it leaves a slot that no longer matches, never a
 *    stale match.  Inside a dump this catches the file's own rename or
 *    move (d_move() changes d_name or d_parent), its deletion (d_delete()
 *    of a dentry still in use unhashes it at once, so the next VMA already
 *    shows " (deleted)"), and a dentry freed and reused for another file
 *    (unless it has the same parent, name and inode: then it prints the
 *    same).
 *
 * What a cached name cannot see, inside one dump only: a directory above
 * the file renamed, or a mount moved above it, after the name was resolved
 * and before a later VMA of the same file.  /proc/PID/maps read then shows
 * the new name; the rest of this dump shows the one the file had earlier in
 * the same dump; the next dump shows the new one.  Seeing it would take a
 * walk up every dentry and mount at each use, i.e. most of d_path() again
 * (the sequence counts of rename_lock and mount_lock would tell, but BPF
 * cannot reach them everywhere: here they are neither in BTF nor, without
 * CONFIG_KALLSYMS_ALL, in kallsyms).
 *
 * Not cached: names from d_op->d_dname (pipes, sockets, anon inodes,
 * dma-bufs), made from state that changes without d_move() (a dma-buf's
 * name); and names longer than TD_NC_NAME bytes, escapes and NUL included
 * (the slot then says so, and each VMA of that file gets d_path() into the
 * record, as before the cache).
 *
 * td_names is per CPU and direct-mapped: a lookup is an inlined array
 * access, nothing is shared between CPUs, nothing is locked.  512 slots of
 * 360 bytes: 180 KiB per CPU.  A dump that migrates fills the other CPU's
 * slots too; a collision costs a d_path(), and as the VMAs of a file are
 * adjacent, even a thrashing cache resolves a file about once per process.
 *
 * A run of the program can be preempted by another run on the same CPU
 * (only migration is disabled).  show_task() runs the VMA code under a
 * per-CPU lock, so such a run does not reach this cache; the protocol
 * below does not rely on that and stays as the cache's own defence.  A slot has
 * one writer at a time (writers, counted with atomic adds: a second writer
 * finds 2 and backs off), seq is odd while it writes, and a reader keeps a
 * copy only if seq was even and is unchanged after the copy (a seqcount;
 * all on one CPU, so compiler barriers are the only ordering needed).  The
 * name is written by d_path() into the slot itself, under that protocol,
 * never copied from a buffer another run may write, and the slot is
 * matched against the dentry as loaded then, never against values parked
 * in per-CPU memory (td_name_work) that such a run may overwrite.
 */
#define TD_NC_SLOTS	512			/* per CPU; a power of two */
#define TD_NC_BITS	9			/* log2(TD_NC_SLOTS) */
#define TD_NC_NAME	256			/* longest cached name, NUL included */
#define TD_NC_LONG	0xffff			/* len: longer than that */
#define barrier()	asm volatile("" ::: "memory")

/* escape()'s counters */
struct td_esc_state {
	u32 noinline;	/* always 0: bpf_loop()'s flags (see TD_ESCAPE) */
	u32 n;		/* bytes, NUL included */
	u32 nl;		/* newlines: seen, counted, then still to move */
	u32 to;		/* where the byte being moved goes */
};

struct td_name_slot {
	u64 seq;		/* odd while written */
	u64 writers;		/* writers in; only one writes */
	u64 dump;		/* session_id; 0: empty */
	u64 mnt, dentry;	/* f_path */
	u64 root_mnt, root_dentry;	/* the reader's root */
	u64 parent, inode, hash_len;	/* the dentry as the name was taken */
	u32 unlinked;
	u32 len;		/* with the NUL; TD_NC_LONG: not cached */
	struct td_esc_state esc;	/* while the slot is written */
	char name[TD_NC_NAME];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TD_NC_SLOTS);
	__type(key, u32);
	__type(value, struct td_name_slot);
} td_names SEC(".maps");

/*
 * Per CPU: the session_id of the dump the program runs for, set by
 * td_put_vmas() before its first VMA; the slot's hash, whose input passes
 * through here to become numbers (the verifier allows no arithmetic on a
 * pointer, and what is loaded from a map is a number); escape()'s counters
 * for names not cached.  Used under show_task()'s per-CPU lock; were
 * another run to overwrite it, dump would hold another dump in progress, the
 * hash picks another slot (checked like any), and the counters are those
 * of a name written into the shared scratch buffer, which such a run
 * overwrites anyway.  What is cached never depends on them.
 */
struct td_name_work {
	u64 dump;
	u64 h[3];
	struct td_esc_state esc;
	u32 inexact;	/* a name of this run's task could not be resolved exactly */
	u32 mm_seq;	/* td_put_vmas(): the mm's write sequence when it began */
	u32 vmas;	/* td_put_vmas(): the records it wrote */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct td_name_work);
} td_name_work SEC(".maps");

static __always_inline struct td_name_work *name_work(void)
{
	u32 zero = 0;

	return bpf_map_lookup_elem(&td_name_work, &zero);
}

static __always_inline u32 mm_write_seq(struct mm_struct *mm);

/* Before the walk of @mm's VMAs in dump @session_id (the name cache's and
 * vma_walk_end()'s state). */
static __always_inline void name_cache_dump(u64 session_id, struct mm_struct *mm)
{
	struct td_name_work *w = name_work();

	if (w) {
		w->dump = session_id;
		w->inexact = 0;
		w->mm_seq = mm_write_seq(mm);
		w->vmas = 0;
	}
}

/* Whether a name of the task being written could not be resolved exactly
 * (then its messages get TD_MSG_F_VMA_FROM_PROC). */
static __always_inline bool names_inexact(void)
{
	struct td_name_work *w = name_work();

	return w && w->inexact;
}

/*
 * The mm's write sequence, for td_put_vmas() to know whether a writer held
 * mmap_lock while it walked.  Since 6.18.y (and 7.0) the VMA iterator walks
 * under per-VMA locks, and passes over a VMA that a writer holds without a
 * word: a walk that began while a writer held the lock (an odd seqcount) or
 * during which the sequence moved may lack a VMA.  Kernels whose sequence is
 * an int bump it on unlock only: it comes back doubled (never odd, as we
 * cannot tell a writer in).  0 where there are no per-VMA locks: their
 * iterator holds mmap_lock for reading, and no writer can come in.
 */
static __always_inline u32 mm_write_seq(struct mm_struct *mm)
{
	if (bpf_core_field_exists(struct mm_struct___lock_seqcount, mm_lock_seq))
		return ((struct mm_struct___lock_seqcount *)mm)->mm_lock_seq.sequence;
	if (bpf_core_field_exists(struct mm_struct___lock_seq_int, mm_lock_seq))
		return (u32)((struct mm_struct___lock_seq_int *)mm)->mm_lock_seq << 1;
	return 0;
}

/* One more VMA record written by this walk. */
static __always_inline void vma_counted(void)
{
	struct td_name_work *w = name_work();

	if (w)
		w->vmas++;
}

/* After the walk: the task is marked for /proc (TD_MSG_F_VMA_FROM_PROC, whose
 * reader takes mmap_lock and misses nothing) if a writer may have hidden a
 * VMA from the walk, or if a walk of the whole task (@whole) wrote another
 * number of VMAs than the mm has. */
static __always_inline void vma_walk_end(struct mm_struct *mm, bool whole)
{
	struct td_name_work *w = name_work();
	u32 seq;

	if (!w)
		return;
	seq = mm_write_seq(mm);
	if ((w->mm_seq & 1) || seq != w->mm_seq ||
	    (whole && w->vmas != (u32)mm->map_count))
		w->inexact = 1;
}

/* The task's VMAs cannot be walked here (the iterator refused: a busy
 * mmap_lock before 6.18.y, no per-VMA locks since): /proc reads them. */
static __always_inline void vma_walk_refused(void)
{
	struct td_name_work *w = name_work();

	if (w)
		w->inexact = 1;
}

/*
 * d_path() of @file's path into @dst (room: @size, a power of two): with
 * bpf_d_path() where the verifier trusts vm_file (TD_NAME_DPATH, the
 * richest tier) and the path is f_path; otherwise by td_walk_name().
 * Returns the length with the NUL, or a negative error.
 */
static __always_inline long name_path(char *dst, u32 size, struct file *file)
{
	u32 zero = 0;
	struct td_scratch *scratch = bpf_map_lookup_elem(&td_scratch, &zero);
	u64 mnt, dentry;

	if (!scratch)
		return TD_INEXACT;
#ifdef TD_NAME_DPATH
	{
		/* bpf_d_path() prints relative to current's root: only
		 * where that is the viewer's too */
		struct task_struct___fs *me = (void *)bpf_get_current_task_btf();
		struct fs_struct *fs = me->fs;

		if (!td_backing(file) && fs && (u64)fs->root.mnt == scratch->root_mnt &&
		    (u64)fs->root.dentry == scratch->root_dentry)
			return bpf_d_path(&file->f_path, dst, size);
	}
#endif
	td_user_path(file, &mnt, &dentry);
	return td_walk_into(dst, size, mnt, dentry, scratch->root_mnt, scratch->root_dentry);
}

/*
 * mangle_path(..., "\n") in place: the buffer holds n bytes, NUL included,
 * and has room for mask + 1.  Returns the new length, 0 if it would not
 * fit.  Passes with bpf_loop(): look for a '\n' eight bytes at a time (the
 * usual name has none, and that is all it costs); if there is one, count
 * them, then move the bytes back from the end, each '\n' becoming "\012".
 * The buffer's size is a constant of each instance (the mask), for the
 * verifier; the counters are in the slot being written or in td_name_work,
 * the callbacks' context only says where.  bpf_loop()'s flags, always 0,
 * are loaded from memory so that the verifier does not inline the loop:
 * inlined, each bpf_loop() takes 24 bytes of the caller's stack, of the
 * 512 that the chain td_all -> td_put_vmas -> td_vma_record shares, and
 * these loops only run when a name is resolved.
 */
struct td_esc {
	char *buf;
	struct td_esc_state *st;
};

#define TD_NL8		0x0a0a0a0a0a0a0a0aULL	/* '\n' in each byte */
#define TD_ONES8	0x0101010101010101ULL
#define TD_HIGH8	0x8080808080808080ULL

#define TD_ESCAPE(sfx, mask)							\
static long esc_scan_##sfx(u32 i, struct td_esc *e)				\
{										\
	u64 v = *(u64 *)(e->buf + ((i * 8) & ((mask) & ~7))) ^ TD_NL8;		\
										\
	if (!((v - TD_ONES8) & ~v & TD_HIGH8))		/* no zero byte in v */	\
		return 0;							\
	e->st->nl = 1;		/* maybe: bytes past the NUL are looked at too */\
	return 1;								\
}										\
										\
static long esc_count_##sfx(u32 i, struct td_esc *e)				\
{										\
	if (e->buf[i & (mask)] == '\n')						\
		e->st->nl++;							\
	return 0;								\
}										\
										\
static long esc_move_##sfx(u32 i, struct td_esc *e)				\
{										\
	struct td_esc_state *st = e->st;					\
	char *buf = e->buf, c = buf[(st->n - 1 - i) & (mask)];			\
	u32 to = st->to;							\
										\
	if (c != '\n') {							\
		buf[to & (mask)] = c;						\
		st->to = to - 1;						\
		return 0;							\
	}									\
	buf[(to - 3) & (mask)] = '\\';						\
	buf[(to - 2) & (mask)] = '0';						\
	buf[(to - 1) & (mask)] = '1';						\
	buf[to & (mask)] = '2';							\
	st->to = to - 4;							\
	return --st->nl == 0;	/* the bytes before it stay where they are */	\
}										\
										\
static __always_inline u32 escape_##sfx(struct td_esc_state *st, char *buf, long n)\
{										\
	struct td_esc e = { .buf = buf, .st = st };				\
										\
	if (n <= 0 || n > (mask) + 1)						\
		return 0;							\
	st->n = n;								\
	st->nl = 0;								\
	bpf_loop((n + 7) >> 3, esc_scan_##sfx, &e, st->noinline);				\
	if (!st->nl)								\
		return n;							\
	st->nl = 0;								\
	bpf_loop(n, esc_count_##sfx, &e, st->noinline);					\
	if (!st->nl)								\
		return n;							\
	if (n + 3 * st->nl > (mask) + 1)					\
		return 0;							\
	n += 3 * st->nl;							\
	st->to = n - 1;								\
	bpf_loop(st->n, esc_move_##sfx, &e, st->noinline);					\
	return n;								\
}

TD_ESCAPE(slot, TD_NC_NAME - 1)
TD_ESCAPE(full, TD_NAME_MAX - 1)

/* A cached name to @dst, in 64-byte blocks of plain loads and stores (no
 * helper call): the bytes after the NUL up to the block's end are junk,
 * overwritten by the next record or past the end of the message (the
 * caller clears the padding of its record). */
static __always_inline void copy_name(char *dst, const char *src, u32 len)
{
	__builtin_memcpy(dst, src, 64);
	if (len <= 64)
		return;
	__builtin_memcpy(dst + 64, src + 64, 64);
	if (len <= 128)
		return;
	__builtin_memcpy(dst + 128, src + 128, 128);
}

/* A name not cached: d_path() into the record, as before the cache.
 * One that cannot be had exactly (an error, or longer than a record
 * holds) marks the task for /proc/PID/maps. */
static __always_inline int name_direct(char *dst, struct file *file)
{
	struct td_name_work *w = name_work();
	long n = name_path(dst, TD_NAME_MAX, file);
	int len;

	if (!w)
		return 0;
	len = escape_full(&w->esc, dst, n);
	if (!len)
		w->inexact = 1;
	return len;
}

/* Resolves the name into the slot @s, if no one else is writing it. */
static __always_inline int name_fill(char *dst, struct file *file, struct td_name_slot *s, u64 dump)
{
	u32 zero = 0;
	struct td_scratch *scratch = bpf_map_lookup_elem(&td_scratch, &zero);
	struct dentry *d = file->f_path.dentry;
	u32 len = 0;
	long n;
	u64 l;

	__sync_fetch_and_add(&s->writers, 1);
	barrier();
	if (scratch && *(volatile u64 *)&s->writers == 1) {
		__sync_fetch_and_add(&s->seq, 1);
		barrier();
		/* Taken before d_path(), so that a change racing with it
		 * leaves a slot that no longer matches, never a stale match. */
		s->dump = dump;
		s->dentry = (u64)d;
		s->mnt = (u64)file->f_path.mnt;
		s->root_mnt = scratch->root_mnt;
		s->root_dentry = scratch->root_dentry;
		s->parent = (u64)d->d_parent;
		s->inode = (u64)d->d_inode;
		s->hash_len = d->d_name.hash_len;
		s->unlinked = d->d_parent == d || !d->d_hash.pprev;	/* d_unlinked() */
		barrier();
		n = name_path(s->name, TD_NC_NAME, file);
		len = escape_slot(&s->esc, s->name, n);
		/* -ENAMETOOLONG, or no room for the escapes: too long for a
		 * slot.  Another error: not cached. */
		s->len = len ? len : n > 0 || n == -ENAMETOOLONG ? TD_NC_LONG : 0;
		l = len;
		asm volatile("" : "+r"(l));	/* test the register passed */
		if (l <= TD_NC_NAME)
			bpf_probe_read_kernel(dst, l, s->name);
		barrier();
		__sync_fetch_and_add(&s->seq, 1);
	}
	barrier();
	__sync_fetch_and_add(&s->writers, -1);
	return len ? len : name_direct(dst, file);
}

/*
 * The name of the file @file maps, as /proc/PID/maps shows it to the
 * reader, at @dst (room: TD_NAME_MAX); its length with the NUL, 0 if none:
 * d_path() failed, or the name is longer than TD_NAME_MAX, escapes
 * included (/proc/PID/maps would show it; a record cannot hold it).
 */
static __always_inline int file_name(char *dst, struct file *file)
{
	struct dentry *d = file->f_path.dentry;
	const struct dentry_operations *dop = d->d_op;
	struct td_name_work *w = name_work();
	struct td_name_slot *s;
	struct td_scratch *scratch;
	u64 dump, seq, l, root_mnt, root_dentry;
	u32 idx = 0;

	scratch = bpf_map_lookup_elem(&td_scratch, &idx);
	/* d_dname names and overlayfs' backing files: not cached */
	if (!w || !scratch || (dop && dop->d_dname) || td_backing(file))
		return name_direct(dst, file);
	dump = w->dump;
	if (!dump)
		return name_direct(dst, file);
	root_mnt = scratch->root_mnt;
	root_dentry = scratch->root_dentry;
	/* The key and the dentry's state are compared (and stored) from
	 * fresh loads, never from td_name_work, which is only the hash's. */
	w->h[0] = (u64)d;
	w->h[1] = (u64)file->f_path.mnt;
	w->h[2] = root_dentry;
	idx = ((*(volatile u64 *)&w->h[0] ^ *(volatile u64 *)&w->h[1] << 7 ^
		*(volatile u64 *)&w->h[2] << 13) * 0x9e3779b97f4a7c15ULL) >> (64 - TD_NC_BITS);
	s = bpf_map_lookup_elem(&td_names, &idx);
	if (!s)
		return name_direct(dst, file);

	seq = *(volatile u64 *)&s->seq;
	barrier();
	if (!(seq & 1) && s->dump == dump && s->dentry == (u64)d &&
	    s->mnt == (u64)file->f_path.mnt && s->root_dentry == root_dentry &&
	    s->root_mnt == root_mnt && s->parent == (u64)d->d_parent &&
	    s->inode == (u64)d->d_inode && s->hash_len == d->d_name.hash_len &&
	    s->unlinked == (d->d_parent == d || !d->d_hash.pprev)) {
		l = s->len;
		if (l == TD_NC_LONG)
			return name_direct(dst, file);
		if (l && l <= TD_NC_NAME) {
			copy_name(dst, s->name, l);
			barrier();
			if (*(volatile u64 *)&s->seq == seq)
				return l;
		}
	}
	return name_fill(dst, file, s, dump);
}

/*
 * The name /proc/PID/maps shows (get_vma_name() and show_map_vma(), 6.18),
 * written NUL-ended at @dst (room: TD_NAME_MAX); returns its length with
 * the NUL, 0 for no name.  A special mapping ([vdso], [vvar], [uprobes],
 * ...) is told by vm_ops->name being set on a VMA without a file:
 * special_mapping_vmops is the only such vm_operations_struct with a name()
 * in the tree, and its name() returns vm_special_mapping->name from
 * vm_private_data.  Not handled: overlayfs' file_user_path() (we print
 * f_path), arch_vma_name() (NULL on x86).  @vma is trusted: its fields,
 * and those of what it points to, are plain loads (no helper call).
 */
static __always_inline int vma_name(char *dst, struct vm_area_struct *vma, struct mm_struct *mm)
{
	struct anon_vma_name *anon = NULL;
	struct file *file = vma->vm_file;
	const struct vm_operations_struct *ops;
	const char *name;
	long n;

	if (bpf_core_field_exists(struct vm_area_struct___anon_name, anon_name))
		anon = ((struct vm_area_struct___anon_name *)vma)->anon_name;
	if (file && !anon)
		return file_name(dst, file);
	if (file) {
		__builtin_memcpy(dst, "[anon_shmem:", 12);
		n = bpf_probe_read_kernel_str(dst + 12, 80, (void *)anon +
					      bpf_core_field_offset(struct anon_vma_name, name));
		goto bracket;
	}
	ops = vma->vm_ops;
	if (ops && ops->name) {
		struct vm_special_mapping *sm = vma->vm_private_data;

		name = BPF_CORE_READ(sm, name);
		if (name) {
			n = bpf_probe_read_kernel_str(dst, 256, name);
			return n > 0 ? n : 0;
		}
	}
	if (vma->vm_start < mm->brk && vma->vm_end > mm->start_brk) {
		__builtin_memcpy(dst, "[heap]", 7);
		return 7;
	}
	if (vma->vm_start <= mm->start_stack && vma->vm_end >= mm->start_stack) {
		__builtin_memcpy(dst, "[stack]", 8);
		return 8;
	}
	if (!anon)
		return 0;
	__builtin_memcpy(dst, "[anon:", 6);
	n = bpf_probe_read_kernel_str(dst + 6, 80, (void *)anon +
				      bpf_core_field_offset(struct anon_vma_name, name));
	if (n <= 0)
		return 0;
	n += 6;
	goto close;
bracket:
	if (n <= 0)
		return 0;
	n += 12;
close:
	/* n counts the NUL: put "]" on it and a NUL after */
	if (n < 2 || n > 100)
		return 0;
	dst[n - 1] = ']';
	dst[n] = 0;
	return n + 1;
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

#define __arg_trusted __attribute__((btf_decl_tag("arg:trusted")))
#define __arg_ctx __attribute__((btf_decl_tag("arg:ctx")))

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
#endif /* !TD_NO_VMA */

/* ---- the message ----------------------------------------------------- */

/* Reserves an attribute of @len payload bytes at *@off; returns the payload. */
static __always_inline void *put_attr(char *buf, u32 *off, u16 type, u32 len)
{
	struct td_nlattr *nla;
	u32 o = *off;

	if (o > TD_BUF_SIZE - NLA_HDRLEN - 72)
		return NULL;
	nla = (void *)(buf + o);
	nla->nla_len = NLA_HDRLEN + len;
	nla->nla_type = type;
	*off = o + ((NLA_HDRLEN + len + 3) & ~3);
	return buf + o + NLA_HDRLEN;
}

/* td_scratch[@key] of this CPU, if no other run is using it: then ours
 * until we clear its busy (show_task()). */
/* TD_ATTR_HOST_PID of @task (td_iter.h); false when it does not fit. */
static __always_inline bool put_host_pid(char *buf, u32 *off, struct task_struct *task,
					 struct td_request *req)
{
	struct td_host_pid *host = put_attr(buf, off, TD_ATTR_HOST_PID, sizeof(*host));

	if (!host)
		return false;
	host->tid = pid_nr_ns(task->thread_pid, req->host_pid_ns, req->host_pid_ns_level);
	host->tgid = pid_nr_ns(task->signal->pids[PIDTYPE_TGID], req->host_pid_ns,
			       req->host_pid_ns_level);
	host->start = task->start_boottime / NSEC_PER_TICK;
	host->exec_id = task->group_leader->self_exec_id;
	return true;
}

static __always_inline struct td_scratch *claim_scratch(u32 key)
{
	struct td_scratch *s = bpf_map_lookup_elem(&td_scratch, &key);

	return s && !__sync_val_compare_and_swap(&s->busy, 0, 1) ? s : NULL;
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
	struct seq_file *seq = ctx->meta->seq;
	bool thread_dump = strategy == TASK_DIAG_DUMP_ALL_THREAD ||
			   strategy == TASK_DIAG_DUMP_THREAD;
	struct td_nlmsghdr *nlh;
	struct task_diag_msg *msg;
	u32 off, flags = 0;
	u64 len;
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
	off = NLMSG_HDRLEN + sizeof(*msg);

	if (req && req->host_pid_ns && (req->flags & TD_REQ_HOST_EACH) && !resume &&
	    !put_host_pid(scratch->buf, &off, task, req))
		return 0;
	if ((show & TASK_DIAG_SHOW_BASE) && !resume) {
		p = put_attr(scratch->buf, &off, TASK_DIAG_BASE, sizeof(struct task_diag_base));
		if (!p)
			return 0;
		__builtin_memset(p, 0, 48);	/* tail padding included */
		fill_base(p, task, v, pid, tgid);
	}
	if ((show & TASK_DIAG_SHOW_CRED) && !resume) {
		p = put_attr(scratch->buf, &off, TASK_DIAG_CRED, sizeof(struct task_diag_creds));
		if (!p)
			return 0;
		fill_creds(p, task, v);
	}
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
	if (show & TASK_DIAG_SHOW_STAT) {
		p = put_attr(scratch->buf, &off, TASK_DIAG_STAT, sizeof(struct task_diag_stat));
		if (!p)
			return 0;
		__builtin_memset(p, 0, sizeof(struct task_diag_stat));
		fill_stat(p, task, !thread_dump);
	}
	/* where the driver finds a task whose VMAs it reads from /proc */
	if ((flags & TD_MSG_F_VMA_FROM_PROC) && req && req->host_pid_ns &&
	    !put_host_pid(scratch->buf, &off, task, req))
		return 0;

	nlh->nlmsg_len = off;
	msg->flags = flags;
	/* the compiler knows off's bound; the verifier must see it checked,
	 * in the 64-bit register that the helper gets */
	len = off;
	asm volatile("" : "+r"(len));
	if (len > TD_BUF_SIZE)
		return 0;
	bpf_seq_write(seq, scratch->buf, len);
	return 0;
}


static __always_inline int show_task(struct bpf_iter__task *ctx, u64 default_strategy)
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
#ifndef TD_NO_VMA
			u32 zero = 0;

			if (task == reader)
				req->found = td_pw_calibrate(bpf_map_lookup_elem(&td_config, &zero));
#endif
			return 0;
		}
		if (req->viewer.valid)
			v = &req->viewer;
	}
	resume = cont == TD_CONT_RESUME;
	leader = task->group_leader == task;
	if (!leader && strategy == TASK_DIAG_DUMP_ALL)
		return 0;		/* processes only: skip threads first, cheaply */
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
	 * the first buffer tried is always free.
	 */
	if (show & TASK_DIAG_SHOW_VMA) {
		scratch = claim_scratch(0);
	} else {
		/* the spares first: [0] stays free for the runs that need it */
		scratch = claim_scratch(1);
		if (!scratch)
			scratch = claim_scratch(2);
		if (!scratch)
			scratch = claim_scratch(3);
		if (!scratch)
			scratch = claim_scratch(0);
		show &= ~(u64)(TASK_DIAG_SHOW_VMA | TASK_DIAG_SHOW_VMA_STAT);
	}
	if (!scratch)
		return 1;
	ret = emit_task(ctx, task, v, req, scratch, show, strategy, seqno, pid, tgid, leader,
			resume);
	barrier();		/* every store to the buffers before the release */
	__sync_lock_test_and_set(&scratch->busy, 0);
	return ret;
}

SEC("iter/task")
int td_all(struct bpf_iter__task *ctx)
{
	return show_task(ctx, TASK_DIAG_DUMP_ALL);
}

SEC("iter/task")
int td_all_threads(struct bpf_iter__task *ctx)
{
	return show_task(ctx, TASK_DIAG_DUMP_ALL_THREAD);
}
