/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The events of task_diag.watch() (task_diag/watch.py): what the programs
 * of task_diag_events.bpf.c put in their ring buffer.  Between them and
 * their driver only, as td_iter.h is for the iterators.
 */
#ifndef __TD_EVENTS_H
#define __TD_EVENTS_H

#define TD_EV_FORK	1	/* a process was created */
#define TD_EV_EXEC	2	/* it executed a program: comm, command line */
#define TD_EV_EXIT	3	/* it died: its status, its final times */
#define TD_EV_COMM	4	/* a task renamed itself (prctl, /proc/PID/comm) */

#define TD_EV_CMDLINE_MAX 4096	/* TASK_DIAG_CMDLINE_MAX */

struct td_event {		/* 88 bytes; EXEC: the command line after it */
	__u32 type;		/* TD_EV_* */
	__u32 pid;		/* thread id, in the initial pid namespace */
	__u32 tgid;
	__u32 ppid;		/* FORK, EXEC: the parent's tgid (real_parent) */
	__u64 start;		/* the task's start_boottime, ns: tells a reused pid */
	__u64 ktime;		/* bpf_ktime_get_boot_ns() of the event */
	char comm[16];
	__u32 status;		/* EXIT: the status its parent's wait gets */
	__u32 cmdline_len;	/* EXEC: the bytes after the struct */
	__u64 utime, stime;	/* EXIT: the process's, ns, as its parent's wait4() rusage */
	__u64 minflt, majflt;	/* EXIT: the process's */
};

struct td_ev_config {
	__u64 cgroup;		/* 0, or the id of the cgroup whose subtree's events count */
};

#endif /* __TD_EVENTS_H */
