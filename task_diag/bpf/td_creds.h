/* SPDX-License-Identifier: GPL-2.0 */
/*
 * User namespaces and credentials: ids as the viewer sees them, the viewer
 * itself, and may_read(), the ptrace rule of /proc.
 *
 * Part of task_diag.bpf.c, included there in order (each part uses the
 * ones before it); not a header of its own.
 */
#ifndef __TD_CREDS_H
#define __TD_CREDS_H

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

struct td_cap_ctx {
	const struct td_viewer *v;
	u64 ns;				/* struct user_namespace *, as a number */
	int cap, held;
};

static long ns_capable_cb(u32 i, struct td_cap_ctx *c)
{
	const struct td_viewer *v = c->v;
	struct user_namespace *ns = (void *)c->ns;
	u64 parent;

	if (!c->ns)
		return 1;
	if (c->ns == v->user_ns) {
		c->held = !!(v->cap_effective & (1ULL << c->cap));
		return 1;
	}
	if (BPF_CORE_READ(ns, level) <= v->user_ns_level)
		return 1;
	parent = (u64)BPF_CORE_READ(ns, parent);
	if (parent == v->user_ns && BPF_CORE_READ(ns, owner.val) == v->euid) {
		c->held = 1;
		return 1;
	}
	c->ns = parent;
	return 0;
}

/*
 * cap_capable(): does the viewer hold @cap in @targ?  Walks from @targ up
 * to the viewer's namespace; the owner of a child namespace holds every
 * cap in it.  A bpf_loop(): unrolled, the walk of up to 33 levels made
 * the verifier's work on every path through may_read() tip the larger
 * objects over its million instructions.
 */
static __always_inline bool ns_capable(const struct td_viewer *v,
				       struct user_namespace *targ, int cap)
{
	struct td_cap_ctx c = { .v = v, .ns = (u64)targ, .cap = cap };

	bpf_loop(TD_MAX_NS_LEVEL + 1, ns_capable_cb, &c, 0);
	return c.held;
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

#endif /* __TD_CREDS_H */
