/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Internal interface between the task_diag iterator programs and the
 * processes that drive them (task_diag's in-process backend, the FUSE
 * front).  Not part of the wire format: keep in sync with
 * task_diag/iterproto.py (tests/test_layout.py compares the two).
 *
 * A reader that wants another answer than the default of the file it
 * reads ({DUMP_ALL or DUMP_ALL_THREAD, SHOW_BASE}) stores a td_request under
 * its own thread id in the td_requests map, then opens an iterator and
 * reads.  Only root can write the map, so the pinned files stay safe to
 * leave world-readable: whoever else reads them gets the default.
 */
#ifndef __TD_ITER_H
#define __TD_ITER_H

struct td_request {
	__u64 show_flags;
	__u64 dump_strategy;
	__u32 pid;		/* ONE: the task; THREAD: its tgid; CHILDREN: the parent */
	__u32 seq;		/* echoed as nlmsg_seq */
	__u64 reader_start;	/* the reader thread's start (field 22 of its /proc stat,
				 * clock ticks after boot): guards against tid reuse */
	__u32 found;		/* set by the program: a task with tid == pid exists */
	__u32 found_tgid;	/* set by the program: that task's tgid */
};

/* Written by task-diag-load after loading, read back by --status. */
struct td_config {
	__u32 overflowuid;	/* /proc/sys/kernel/overflowuid */
	__u32 overflowgid;
	__u64 loaded_at;	/* CLOCK_REALTIME seconds */
	__u8 obj_sha256[32];	/* of the loaded .bpf.o: tells a rebuild from a reload */
};

#define TD_MAX_REQUESTS 4096

#endif /* __TD_ITER_H */
