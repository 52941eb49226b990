/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Constants, the per-CPU scratch buffers and the maps every part shares.
 *
 * Part of task_diag.bpf.c, included there in order (each part uses the
 * ones before it); not a header of its own.
 */
#ifndef __TD_MAPS_H
#define __TD_MAPS_H

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
/* A size as an int, as the bounds it enters are computed (a size_t would
 * turn them 64-bit, and the verifier's view of them with it). */
#define TD_SIZEOF(x)	((int)sizeof(x))
/* the [vsyscall] record: struct, name, pad */
#define TD_GATE_LEN	(TD_SIZEOF(struct task_diag_vma) + TD_SIZEOF("[vsyscall]") + 1)
#define TD_STAT_LEN	TD_SIZEOF(struct task_diag_vma_stat)
/* what a task's last message needs after its VMAs: STAT, STATM, CMDLINE,
 * STAT_EXT, NS, CGROUP, the gate area's record, and TD_ATTR_HOST_PID (td_iter.h) */
#define TD_TAIL		(NLA_HDRLEN + TD_SIZEOF(struct task_diag_stat) + TD_GATE_LEN + \
			 TD_STAT_LEN + NLA_HDRLEN + TD_SIZEOF(struct td_host_pid) + \
			 NLA_HDRLEN + TD_SIZEOF(struct task_diag_statm) + \
			 NLA_HDRLEN + TASK_DIAG_CMDLINE_MAX + \
			 NLA_HDRLEN + TD_SIZEOF(struct task_diag_stat_ext) + \
			 NLA_HDRLEN + TD_SIZEOF(struct task_diag_ns) + \
			 NLA_HDRLEN + TD_CG_PAYLOAD_MAX)
#define TD_CG_PAYLOAD_MAX (TD_SIZEOF(struct task_diag_cgroup) + TASK_DIAG_CGROUP_PATH_MAX)
#define TD_MSG_HDR	(NLMSG_HDRLEN + TD_SIZEOF(struct task_diag_msg))
#define PF_KTHREAD	0x00200000
#define PF_EXITING	0x00000004
#define PAGE_SHIFT	12
#define ENOENT		2
#define EBUSY		16
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
	/* the message's length as it is built (msg_len(), td_msg.h): where
	 * CMDLINE goes when it is asked (td_cmdline.h); cmdline_ext and
	 * cmdline_ns hold STAT_EXT and NS, which follow CMDLINE, while the
	 * run reads the command line */
	__u32 tail_off;
	struct task_diag_stat_ext cmdline_ext;
	struct task_diag_ns cmdline_ns;
	/* CGROUP, the last attribute: its payload is built here, apart,
	 * and appended by put_cgroup_and_write() */
	__u32 cg_len;		/* 0: none */
	__u32 cg_o;		/* td_fill_cgroup(): the path's length so far */
	char cg[TD_CG_PAYLOAD_MAX];
	__u64 cmdline_mm;	/* the task's mm and self_exec_id at the check */
	__u64 cmdline_exec;
	/* a plain object's TD_ATTR_HOST_PID for a command line it could not
	 * read (td_cmdline.h), made while the task was at hand */
	struct td_host_pid cmdline_host;
	__u32 cmdline_host_ok;	/* 1: the driver asked for it (host_pid_ns) */
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

#endif /* __TD_MAPS_H */
