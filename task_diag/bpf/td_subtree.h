/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Whether a task's cgroup (v2) is in the subtree of the cgroup with a
 * given id: the cgroup filter of dumps (td_cgroup.h) and of events
 * (task_diag_events.bpf.c).  Needs td_kernel.h before it.
 */
#ifndef __TD_SUBTREE_H
#define __TD_SUBTREE_H

#define TD_CG_DEPTH		64	/* the levels the test walks up; the
					 * levels a CGROUP path names (ancestors[]) */

/* @task's cgroup or one of its ancestors (up to TD_CG_DEPTH levels) has
 * id @id.  Plain loads, a few per level. */
static __always_inline bool task_in_subtree(struct task_struct *task, u64 id)
{
	struct css_set *cset = task->cgroups;
	struct cgroup *c;
	u32 i;

	if (!cset)
		return false;
	c = cset->dfl_cgrp;
	for (i = 0; i < TD_CG_DEPTH && c; i++) {
		if (c->kn->id == id)
			return true;
		if (!c->self.parent)
			return false;
		c = c->self.parent->cgroup;
	}
	return false;
}

#endif /* __TD_SUBTREE_H */
