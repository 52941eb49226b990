/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * task_diag: the wire format of the original /proc/task-diag patch series
 * (Andrei Vagin, 2015-2020), kept bit for bit.  See shared spec
 * task_diag_uapi.md.  This is the one C definition of every struct: the BPF
 * programs, the tests' C code and any C client include it.
 *
 * A request is one write() of a struct nlmsghdr followed directly by a
 * struct task_diag_pid.  The answer is a stream of netlink messages, one or
 * more per task: nlmsghdr (type TASK_DIAG_CMD_GET, flags NLM_F_MULTI),
 * struct task_diag_msg, then one netlink attribute per requested group in
 * the order BASE, CRED, VMA, STAT, STATM, CMDLINE, then the groups this
 * project adds (STAT_EXT, NS, CGROUP), in number order.
 */
#ifndef _UAPI_LINUX_TASK_DIAG_H
#define _UAPI_LINUX_TASK_DIAG_H

#include <linux/types.h>

#define TASK_DIAG_CMD_GET 0xd101U	/* nlmsg_type of every response message */

struct task_diag_msg {
	__u32 pid;			/* thread id, in the reader's pid namespace */
	__u32 tgid;
	__u32 flags;
};

#define TASK_DIAG_FLAG_CONT 0x00000001	/* this task continues in the next message */

enum {
	TASK_DIAG_BASE = 0,
	TASK_DIAG_CRED,
	TASK_DIAG_VMA,
	TASK_DIAG_VMA_STAT,		/* a modifier of VMA, never an attribute type */
	TASK_DIAG_STAT,
	TASK_DIAG_STATM,		/* last rebase of the series; our layout, below */
	TASK_DIAG_CMDLINE,		/* last rebase: the bytes of /proc/PID/cmdline */
	/* groups this project adds: numbered after the original's */
	TASK_DIAG_STAT_EXT,		/* the rest of /proc/PID/stat: start time, tty, nice */
	TASK_DIAG_NS,			/* the namespaces, as /proc/PID/ns/ names them */
	TASK_DIAG_CGROUP,		/* the cgroup v2 id and path, as /proc/PID/cgroup */

	__TASK_DIAG_ATTR_MAX
#define TASK_DIAG_ATTR_MAX (__TASK_DIAG_ATTR_MAX - 1)
};

#define TASK_DIAG_SHOW_BASE	(1ULL << TASK_DIAG_BASE)
#define TASK_DIAG_SHOW_CRED	(1ULL << TASK_DIAG_CRED)
#define TASK_DIAG_SHOW_VMA	(1ULL << TASK_DIAG_VMA)
#define TASK_DIAG_SHOW_VMA_STAT	(1ULL << TASK_DIAG_VMA_STAT)
#define TASK_DIAG_SHOW_STAT	(1ULL << TASK_DIAG_STAT)
#define TASK_DIAG_SHOW_STATM	(1ULL << TASK_DIAG_STATM)
#define TASK_DIAG_SHOW_CMDLINE	(1ULL << TASK_DIAG_CMDLINE)
#define TASK_DIAG_SHOW_STAT_EXT	(1ULL << TASK_DIAG_STAT_EXT)
#define TASK_DIAG_SHOW_NS	(1ULL << TASK_DIAG_NS)
#define TASK_DIAG_SHOW_CGROUP	(1ULL << TASK_DIAG_CGROUP)

/* Index into "RSDTtXZPI": the letter /proc/PID/stat shows. */
enum {
	TASK_DIAG_RUNNING,
	TASK_DIAG_INTERRUPTIBLE,
	TASK_DIAG_UNINTERRUPTIBLE,
	TASK_DIAG_STOPPED,
	TASK_DIAG_TRACE_STOP,
	TASK_DIAG_DEAD,
	TASK_DIAG_ZOMBIE,
	TASK_DIAG_PARKED,
	TASK_DIAG_IDLE,
};

#define TASK_DIAG_COMM_LEN 16

struct task_diag_base {			/* 44 bytes */
	__u32	tgid;
	__u32	pid;
	__u32	ppid;			/* the real parent's tgid, 0 outside the reader's ns */
	__u32	tpid;			/* the tracer's pid, 0 if not traced */
	__u32	sid;
	__u32	pgid;
	__u8	state;
	char	comm[TASK_DIAG_COMM_LEN];
};

struct task_diag_caps {
	__u32 cap[2];			/* cap[0]: low 32 bits */
};

struct task_diag_creds {		/* 64 bytes */
	struct task_diag_caps cap_inheritable;
	struct task_diag_caps cap_permitted;
	struct task_diag_caps cap_effective;
	struct task_diag_caps cap_bset;

	__u32 uid;			/* in the reader's user namespace */
	__u32 euid;
	__u32 suid;
	__u32 fsuid;
	__u32 gid;
	__u32 egid;
	__u32 sgid;
	__u32 fsgid;
};

#define TASK_DIAG_VMA_F_READ		(1ULL <<  0)
#define TASK_DIAG_VMA_F_WRITE		(1ULL <<  1)
#define TASK_DIAG_VMA_F_EXEC		(1ULL <<  2)
#define TASK_DIAG_VMA_F_SHARED		(1ULL <<  3)
#define TASK_DIAG_VMA_F_MAYREAD		(1ULL <<  4)
#define TASK_DIAG_VMA_F_MAYWRITE	(1ULL <<  5)
#define TASK_DIAG_VMA_F_MAYEXEC		(1ULL <<  6)
#define TASK_DIAG_VMA_F_MAYSHARE	(1ULL <<  7)
#define TASK_DIAG_VMA_F_GROWSDOWN	(1ULL <<  8)
#define TASK_DIAG_VMA_F_PFNMAP		(1ULL <<  9)
#define TASK_DIAG_VMA_F_DENYWRITE	(1ULL << 10)
#define TASK_DIAG_VMA_F_MPX		(1ULL << 11)
#define TASK_DIAG_VMA_F_LOCKED		(1ULL << 12)
#define TASK_DIAG_VMA_F_IO		(1ULL << 13)
#define TASK_DIAG_VMA_F_SEQ_READ	(1ULL << 14)
#define TASK_DIAG_VMA_F_RAND_READ	(1ULL << 15)
#define TASK_DIAG_VMA_F_DONTCOPY	(1ULL << 16)
#define TASK_DIAG_VMA_F_DONTEXPAND	(1ULL << 17)
#define TASK_DIAG_VMA_F_ACCOUNT		(1ULL << 18)
#define TASK_DIAG_VMA_F_NORESERVE	(1ULL << 19)
#define TASK_DIAG_VMA_F_HUGETLB		(1ULL << 20)
#define TASK_DIAG_VMA_F_ARCH_1		(1ULL << 21)
#define TASK_DIAG_VMA_F_DONTDUMP	(1ULL << 22)
#define TASK_DIAG_VMA_F_SOFTDIRTY	(1ULL << 23)
#define TASK_DIAG_VMA_F_MIXEDMAP	(1ULL << 24)
#define TASK_DIAG_VMA_F_HUGEPAGE	(1ULL << 25)
#define TASK_DIAG_VMA_F_NOHUGEPAGE	(1ULL << 26)
#define TASK_DIAG_VMA_F_MERGEABLE	(1ULL << 27)

struct task_diag_vma_stat {		/* 80 bytes, all in bytes */
	__u64 resident;
	__u64 shared_clean;
	__u64 shared_dirty;
	__u64 private_clean;
	__u64 private_dirty;
	__u64 referenced;
	__u64 anonymous;
	__u64 anonymous_thp;
	__u64 swap;
	__u64 pss;			/* fixed point: bytes << 12 */
} __attribute__((__aligned__(4)));

/*
 * One VMA record of a TASK_DIAG_VMA attribute.  Records are packed and only
 * 4-byte aligned: copy one before reading its 64-bit fields.
 */
struct task_diag_vma {			/* 64 bytes */
	__u64 start, end;
	__u64 vm_flags;			/* TASK_DIAG_VMA_F_* */
	__u64 pgoff;			/* in bytes */
	__u32 major;
	__u32 minor;
	__u64 inode;
	__u32 generation;
	__u16 vma_len;			/* bytes from this record to the next */
	__u16 name_off;			/* relative to the record; 0, 0: no name */
	__u16 name_len;
	__u16 stat_off;			/* relative to the record; 0, 0: no stat */
	__u16 stat_len;
} __attribute__((__aligned__(4)));

static inline char *task_diag_vma_name(struct task_diag_vma *vma)
{
	if (!vma->name_len)
		return 0;
	return ((char *)vma) + vma->name_off;
}

static inline struct task_diag_vma_stat *task_diag_vma_stat(struct task_diag_vma *vma)
{
	if (!vma->stat_len)
		return 0;
	return (struct task_diag_vma_stat *)(((char *)vma) + vma->stat_off);
}

/* Walks the records of one TASK_DIAG_VMA attribute; nla_data() and
 * nla_len() come from the including program (libnl or its own). */
#define task_diag_for_each_vma(vma, attr)					\
	for (vma = (struct task_diag_vma *)nla_data(attr);			\
	     (char *)vma < (char *)nla_data(attr) + nla_len(attr);		\
	     vma = (struct task_diag_vma *)((char *)vma + vma->vma_len))

struct task_diag_stat {			/* 72 bytes */
	__u64 minflt;
	__u64 cminflt;
	__u64 majflt;
	__u64 cmajflt;
	__u64 utime;			/* clock ticks, as in /proc/PID/stat */
	__u64 stime;
	__u64 cutime;
	__u64 cstime;

	__u32 threads;
};

/*
 * TASK_DIAG_STATM: the seven numbers of /proc/PID/statm, in pages, for the
 * task's mm (the thread group's: threads share it); all 0 without an mm
 * (kernel threads, zombies).  The original's last rebase sent a struct of
 * this name whose header was never published; this layout is ours.
 */
struct task_diag_statm {		/* 56 bytes */
	__u64 size;			/* total_vm */
	__u64 resident;			/* file + anon + shmem pages */
	__u64 shared;			/* file + shmem pages */
	__u64 text;
	__u64 lib;			/* always 0, as in /proc */
	__u64 data;			/* data_vm + stack_vm */
	__u64 dt;			/* always 0, as in /proc */
};

/*
 * TASK_DIAG_CMDLINE carries no struct: its payload is the bytes a read of
 * TASK_DIAG_CMDLINE_MAX bytes from the start of /proc/PID/cmdline returns
 * to the same reader (NUL-separated arguments, the last one NUL-terminated
 * unless the task rewrote its argument area); empty for kernel threads and
 * zombies.  A payload of exactly TASK_DIAG_CMDLINE_MAX bytes may have been
 * cut there.
 */
#define TASK_DIAG_CMDLINE_MAX 4096

/*
 * TASK_DIAG_STAT_EXT: fields of /proc/PID/stat that task_diag_stat lacks,
 * with the same values (per thread in ALL_THREAD and THREAD dumps, as
 * /proc/PID/task/TID/stat gives them).
 */
struct task_diag_stat_ext {		/* 40 bytes */
	__u64 start_time;		/* field 22: clock ticks after boot */
	__u32 tty_nr;			/* field 7: the controlling tty's device, 0: none */
	__u32 flags;			/* field 9: PF_* (PF_KTHREAD 0x00200000) */
	__s32 priority;			/* field 18 */
	__s32 nice;			/* field 19 */
	__u32 rt_priority;		/* field 40 */
	__u32 policy;			/* field 41: SCHED_* */
	__u64 delayacct_blkio_ticks;	/* field 42: block I/O delay, clock ticks */
};

/*
 * TASK_DIAG_NS: the inode number of each namespace of the task, the number
 * in the /proc/PID/ns/NAME link ("net:[4026531840]"); 0 where /proc has
 * no link: a namespace the kernel lacks (time before 5.6), or one a dead
 * task no longer holds (a zombie keeps only its pid and user namespaces).
 */
struct task_diag_ns {			/* 36 bytes */
	__u32 cgroup;
	__u32 ipc;
	__u32 mnt;
	__u32 net;
	__u32 pid;
	__u32 pid_for_children;
	__u32 time;
	__u32 user;
	__u32 uts;
};

/*
 * TASK_DIAG_CGROUP: the task's cgroup in the unified (v2) hierarchy, then
 * its path as the "0::" line of /proc/PID/cgroup shows it to the same
 * reader: relative to the root of the reader's cgroup namespace ("/.."
 * steps where the task's cgroup is not below it), NUL-terminated.  The
 * line's " (deleted)" suffix, for a zombie whose cgroup was removed, is
 * the flag TASK_DIAG_CGROUP_F_DELETED, not part of the path.
 */
struct task_diag_cgroup {		/* 16 bytes, then the path */
	__u64 id;			/* the inode number of its cgroupfs directory */
	__u32 flags;			/* TASK_DIAG_CGROUP_F_* */
	__u32 reserved;			/* 0 */
	char path[];
};

#define TASK_DIAG_CGROUP_F_DELETED	0x1	/* removed: /proc adds " (deleted)" */
#define TASK_DIAG_CGROUP_F_CUT		0x2	/* path longer than TASK_DIAG_CGROUP_PATH_MAX
						 * or deeper than the programs go: cut */
#define TASK_DIAG_CGROUP_PATH_MAX	4096	/* with its NUL */

#define TASK_DIAG_DUMP_ALL		0
#define TASK_DIAG_DUMP_ONE		1
#define TASK_DIAG_DUMP_ALL_THREAD	2
#define TASK_DIAG_DUMP_CHILDREN		3
#define TASK_DIAG_DUMP_THREAD		4

struct task_diag_pid {			/* the request, 24 bytes */
	__u64	show_flags;
	__u64	dump_strategy;

	__u32	pid;
};

/*
 * Our extension of the request: netlink attributes after task_diag_pid,
 * inside nlmsg_len.  A client that sends none has the original's request;
 * an attribute header of length 0 ends the list (the original's tools pad
 * the request with 4 zero bytes).  An unknown type is EINVAL.
 */
enum {
	TASK_DIAG_REQ_UNSPEC = 0,
	TASK_DIAG_REQ_CGROUP,		/* __u64: a cgroup v2 id; ALL and ALL_THREAD
					 * answer only the tasks of its subtree, those
					 * its and its descendants' cgroup.procs and
					 * cgroup.threads list.  ENOENT: no such cgroup;
					 * EINVAL: id 0, or another strategy */
};

/* Leftover of the genetlink versions; kept so old clients compile. */
enum {
	TASK_DIAG_CMD_ATTR_UNSPEC = 0,
	TASK_DIAG_CMD_ATTR_GET,
	__TASK_DIAG_CMD_ATTR_MAX,
};
#define TASK_DIAG_CMD_ATTR_MAX (__TASK_DIAG_CMD_ATTR_MAX - 1)

#endif /* _UAPI_LINUX_TASK_DIAG_H */
