/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Ids and pid namespaces: a task's pids as the viewer numbers them.
 *
 * Part of task_diag.bpf.c, included there in order (each part uses the
 * ones before it); not a header of its own.
 */
#ifndef __TD_IDS_H
#define __TD_IDS_H

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

#endif /* __TD_IDS_H */
