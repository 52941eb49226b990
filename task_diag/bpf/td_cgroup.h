/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CGROUP: a task's cgroup in the unified (v2) hierarchy, its id and its
 * path as proc_cgroup_show() prints it for the reader; and the request's
 * cgroup filter (TASK_DIAG_REQ_CGROUP).
 *
 * Part of task_diag.bpf.c, included there in order (each part uses the
 * ones before it); not a header of its own.
 *
 * The kernel prints the path with kernfs_path_from_node(task's cgroup,
 * reader's namespace root): "/" when they are the same, else one "/.."
 * for each level from the namespace root up to their common ancestor,
 * then "/NAME" for each level from there down to the task's cgroup.  Both
 * cgroups are found here through cgroup->ancestors[level] (6.0+), which
 * is the cgroup itself at its own level and the root at 0; the names are
 * those of the cgroups' kernfs nodes, read where they live (a rename
 * replaces a name under RCU, which the iterator holds).
 */
#ifndef __TD_CGROUP_H
#define __TD_CGROUP_H

#include "td_subtree.h"

#define CSS_ONLINE		(1 << 1)	/* include/linux/cgroup-defs.h, 4.x to 6.18 */
#define TD_CG_NAME_MAX		256	/* NAME_MAX, and its NUL */

/* The root of @reader's cgroup namespace (a struct cgroup *, as a number):
 * where its /proc/PID/cgroup paths start. */
static __always_inline u64 cgns_root(struct task_struct *reader)
{
	struct nsproxy *ns = reader->nsproxy;

	if (!ns || !ns->cgroup_ns || !ns->cgroup_ns->root_cset)
		return 0;
	return as_number(ns->cgroup_ns->root_cset->dfl_cgrp);
}

/* cgroup @cg's ancestor at @level (ancestors[level]), as a number; 0 when
 * the kernel lacks ancestors[] (before 6.0) */
static __always_inline u64 cg_ancestor(u64 cg, u32 level)
{
	struct cgroup *c = (void *)cg;
	u64 a = 0;

	if (!bpf_core_field_exists(c->ancestors))
		return 0;
	bpf_probe_read_kernel(&a, sizeof(a), &c->ancestors[level & (TD_CG_DEPTH - 1)]);
	return a;
}

struct td_cg_ctx {
	struct td_scratch *s;	/* s->cg_o: the path's length so far */
	char *path;
	u64 to;			/* the task's cgroup */
	u32 common;		/* the level of the common ancestor */
	u32 cut;
};

static long cg_up_cb(u32 k, struct td_cg_ctx *c)
{
	u32 o = c->s->cg_o;

	if (o > TASK_DIAG_CGROUP_PATH_MAX - 4) {
		c->cut = 1;
		return 1;
	}
	c->path[o] = '/';
	c->path[o + 1] = '.';
	c->path[o + 2] = '.';
	c->s->cg_o = o + 3;
	return 0;
}

static long cg_down_cb(u32 k, struct td_cg_ctx *c)
{
	/* outside BPF_CORE_READ(), which would relocate c's fields too */
	struct cgroup *cg = (void *)cg_ancestor(c->to, c->common + 1 + k);
	const char *name = BPF_CORE_READ(cg, kn, name);
	u32 o = c->s->cg_o;
	long n;

	if (!name || o > TASK_DIAG_CGROUP_PATH_MAX - 1 - TD_CG_NAME_MAX) {
		c->cut = 1;
		return 1;
	}
	c->path[o] = '/';
	n = bpf_probe_read_kernel_str(c->path + o + 1, TD_CG_NAME_MAX, name);
	if (n < 1) {
		c->cut = 1;
		return 1;
	}
	c->s->cg_o = o + n;	/* n counts the NUL, where the next '/' goes */
	return 0;
}

/*
 * The payload of a CGROUP attribute in @s->cg, for cgroup @cg (a task's
 * task->cgroups->dfl_cgrp, as a number) and the reader whose cgroup
 * namespace root is @from; returns its length, 0 without @cg.  A global
 * function: the verifier checks it once, on its own, where a static one
 * would be checked again from each of emit_task()'s many paths, far too
 * many with its loops.  So it takes numbers, and reads with probes.  The
 * caller holds RCU, which keeps the cgroups and their names.
 */
__noinline int td_fill_cgroup(struct td_scratch *s, u64 cg, u64 from)
{
	struct task_diag_cgroup *x;
	struct cgroup *to = (void *)cg;
	struct td_cg_ctx c;
	u32 lt = 0, lf = 0, common, k, o;

	if (!s || !cg)
		return 0;
	x = (void *)s->cg;
	c.path = s->cg + sizeof(*x);
	x->id = BPF_CORE_READ(to, kn, id);
	lt = BPF_CORE_READ(to, level);
	x->reserved = 0;
	x->flags = (BPF_CORE_READ(to, self.flags) & CSS_ONLINE) ? 0 : TASK_DIAG_CGROUP_F_DELETED;
	if (from)
		lf = BPF_CORE_READ((struct cgroup *)from, level);
	if (!bpf_core_field_exists(to->ancestors) || !from || lt >= TD_CG_DEPTH ||
	    lf >= TD_CG_DEPTH) {
		x->flags |= TASK_DIAG_CGROUP_F_CUT;
		c.path[0] = 0;
		return sizeof(*x) + 1;
	}
	if (cg == from) {
		c.path[0] = '/';
		c.path[1] = 0;
		return sizeof(*x) + 2;
	}
	/* the deepest level at which both have the same ancestor (the root,
	 * at 0, at least) */
	common = lt < lf ? lt : lf;
	for (k = 0; k < TD_CG_DEPTH && common; k++) {
		if (cg_ancestor(cg, common) == cg_ancestor(from, common))
			break;
		common--;
	}
	s->cg_o = 0;
	c.s = s;
	c.to = cg;
	c.common = common;
	c.cut = 0;
	/* up from the reader's root to the common ancestor, then down to the
	 * task's cgroup by name */
	bpf_loop(lf - common, cg_up_cb, &c, 0);
	bpf_loop(lt - common, cg_down_cb, &c, 0);
	if (c.cut)
		x->flags |= TASK_DIAG_CGROUP_F_CUT;
	o = s->cg_o;
	if (o > TASK_DIAG_CGROUP_PATH_MAX - 1)
		o = TASK_DIAG_CGROUP_PATH_MAX - 1;
	/* the verifier must see the bound on the register that indexes */
	asm volatile("" : "+r"(o));
	o &= TASK_DIAG_CGROUP_PATH_MAX - 1;
	c.path[o] = 0;
	return sizeof(*x) + o + 1;
}

/* @task's cgroup in the unified hierarchy, as a number for td_fill_cgroup() */
static __always_inline u64 task_cgroup(struct task_struct *task)
{
	struct css_set *cset = task->cgroups;

	/* a number to the verifier too: td_fill_cgroup() takes scalars */
	return cset ? as_number(cset->dfl_cgrp) : 0;
}

/*
 * Whether @task is in the subtree of the cgroup with id @id as the
 * kernel's cgroup.procs (@procs: a leader of a live process) or
 * cgroup.threads (a thread not exiting) lists it.
 */
static __noinline bool in_cgroup(struct task_struct *task, u64 id, bool procs)
{
	if (procs ? !task->signal->live.counter : (task->flags & PF_EXITING))
		return false;
	return task_in_subtree(task, id);
}

#endif /* __TD_CGROUP_H */
