/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Internal interface between the task_diag iterator programs and the
 * processes that drive them (task_diag's in-process backend, the FUSE
 * front).  Not part of the wire format: keep in sync with
 * task_diag/iterproto.py (tests/test_layout.py compares the two).
 *
 * A reader that wants another answer than the default of the file it
 * reads ({DUMP_ALL or DUMP_ALL_THREAD, SHOW_BASE}) stores a td_request under
 * its own thread in the td_requests map, then opens an iterator and
 * reads.  The key names the thread as the thread itself can: its pid
 * namespace's inode number (stat /proc/thread-self/ns/pid) in the high
 * 32 bits, its thread id in that namespace in the low 32 bits.  Only root can write the map, so the pinned files stay safe to
 * leave world-readable: whoever else reads them gets the default.
 */
#ifndef __TD_ITER_H
#define __TD_ITER_H

/*
 * Who the answer is for: what ptrace_may_access(), pid_nr_ns() and
 * from_kuid() need of the reader.  Taken from current for each task, or
 * once, by a TD_PROBE_VIEWER pass over the reader's own task, when a
 * daemon reads on another process's behalf (the FUSE front).  Kernel
 * pointers are kept as numbers: only compared, or read with probes.
 */
struct td_viewer {
	__u64 cap_effective;
	__u64 user_ns;		/* struct user_namespace *, of its subjective cred */
	__u64 pid_ns;		/* struct pid_namespace *, its active one */
	__u64 signal;		/* struct signal_struct *: tells its thread group */
	__u32 fsuid, fsgid, euid;
	__u32 user_ns_level;	/* user_ns->level: 0 is init_user_ns */
	__u32 pid_ns_level;	/* pid_ns->level */
	__u32 valid;		/* 1 once filled: use this, not current */
	/* Which process, as it is now: a driver that answers for it (the
	 * FUSE front) tells it from a process that got its pid later, or from
	 * itself after an execve(), by these; never by the pointers above. */
	__u64 start;		/* its leader's start_boottime */
	__u64 exec_id;		/* its leader's self_exec_id */
	__u32 tgid;		/* in the initial pid namespace */
};

struct td_request {
	__u64 show_flags;
	__u64 dump_strategy;
	__u32 pid;		/* ONE: the task; THREAD: its tgid; CHILDREN: the parent */
	__u32 seq;		/* echoed as nlmsg_seq */
	__u64 reader_start;	/* the reader thread's start (field 22 of its /proc stat,
				 * clock ticks after boot): guards against tid reuse */
	__u32 found;		/* set by the program: a task with tid == pid exists */
	__u32 found_tgid;	/* set by the program: that task's tgid */
	__u64 found_exec;	/* set by the program: its leader's self_exec_id */
	struct td_viewer viewer;
	/* A task whose VMAs did not fit one program run (TD_BUDGET bytes):
	 * see TD_CONT_*.  Zero in every request a reader stores first. */
	__u64 cont_start;	/* the next vm_start to answer */
	__u32 cont_pid;		/* the task, numbered in the viewer's pid namespace */
	__u32 cont_state;	/* TD_CONT_* */
	/* Set by a driver that may read a task's VMAs from its /proc (the
	 * smaps source, a tier without VMA code, a name the programs cannot
	 * resolve): its pid namespace, in which TD_ATTR_HOST_PID numbers the
	 * task, so that the driver finds it in its own /proc.  0: none. */
	__u64 host_pid_ns;	/* struct pid_namespace *, the driver's */
	/* The viewer's root (fs->root), filled with the viewer: VMA names
	 * are printed relative to it, as its /proc/PID/maps would print them
	 * (a chrooted reader of /run/task-diag).  Not in td_viewer, which
	 * the programs keep on their stack. */
	__u64 root[2];		/* struct vfsmount *, struct dentry * */
	__u32 host_pid_ns_level;
	__u32 from_proc;	/* set by the program: a message of this read has
				 * TD_MSG_F_VMA_FROM_PROC */
	__u32 flags;		/* TD_REQ_*, set by the driver */
	/* The viewer's cgroup namespace root (struct cgroup *), filled with
	 * the viewer: CGROUP paths start there, as in its /proc/PID/cgroup */
	__u64 cgns_root;
	__u64 cg_id;		/* TASK_DIAG_REQ_CGROUP: 0, or the cgroup whose
				 * subtree ALL and ALL_THREAD answer */
	/* td_cgroup (td_css.h): where a run of the walk of the subtree
	 * stopped, its buffer full: in cgroup cgc_id, after the task whose
	 * (global) tid is cgc_pid (0: from its first); set by the program.
	 * cgc_seek: 1 from the driver for a run that goes on from there; the
	 * program clears it where it finds that cgroup, or sets 2 when the
	 * task is gone; still 1 after the run, the cgroup is gone */
	__u64 cgc_id;
	__u32 cgc_pid;
	__u32 cgc_seek;
	/* set by a plain object's programs: the messages of this request so
	 * far marked TD_MSG_F_CMDLINE_FROM_PROC (a driver looks after each
	 * read) */
	__u64 cmdline_proc;
};

/* td_request.flags */
#define TD_REQ_HOST_EACH	1	/* TD_ATTR_HOST_PID in every task's first
					 * message, not only in those marked
					 * TD_MSG_F_VMA_FROM_PROC (at their end) */

/*
 * Between the programs and their drivers only, never shown to a reader:
 * the drivers strip both.
 *  - TD_MSG_F_VMA_FROM_PROC, in task_diag_msg.flags: a VMA name of this
 *    task could not be resolved exactly in BPF (td_dwalk.h); the driver
 *    answers the task's VMAs from its /proc/PID/maps instead.
 *  - TD_ATTR_HOST_PID: { tid, tgid } of the task in the driver's pid
 *    namespace (td_request.host_pid_ns).
 */
#define TD_MSG_F_VMA_FROM_PROC	0x80000000U
/* CMDLINE of this task could not be read by a plain (not sleepable)
 * object, only through the direct map (td_cmdline.h): its attribute is
 * empty, and the driver fills it from /proc/PID/cmdline */
#define TD_MSG_F_CMDLINE_FROM_PROC	0x40000000U
#define TD_ATTR_HOST_PID	0x3f00

struct td_host_pid {
	__u32 tid, tgid;	/* in the driver's pid namespace */
	__u64 start;		/* clock ticks after boot, as field 22 of its
				 * /proc/PID/stat: tells a reused pid */
	__u64 exec_id;		/* its leader's self_exec_id: tells an execve() */
};

/*
 * cont_state.  A run that stops inside a task's VMAs (its last message so
 * far has TASK_DIAG_FLAG_CONT) sets PENDING, cont_pid and cont_start, and
 * returns 1 for every other task (the read ends before it: the iterator
 * shows it again on the next read).  The reader then stores RESUME with
 * the same cont_pid and cont_start and reads a pass over that task (a
 * link filtered to it, or, for a reader in another pid namespace, all
 * tasks), whose program answers only the rest of its VMAs (then STAT) and
 * leaves DONE when done, MORE with a new cont_start when not; RESUME left
 * as it was means the task is gone.  In such a pass every other task
 * writes nothing, before the task (RESUME) and after it (DONE, MORE: not
 * PENDING, whose 1 would end each read of the pass before its first task,
 * an EAGAIN the pass could never get past).  After the passes the reader
 * stores its request again, with NONE.
 * A PENDING whose task's messages are not at the end of what the read
 * returned was discarded by an overflow of the seq buffer: the iterator
 * shows that task again, from its start.
 */
#define TD_CONT_NONE	0
#define TD_CONT_PENDING	1
#define TD_CONT_RESUME	2
#define TD_CONT_DONE	3
#define TD_CONT_MORE	4

/* dump_strategy values outside the UAPI's, that answer nothing: */
#define TD_PROBE_FOUND	0xff	/* only set found/found_tgid */
#define TD_PROBE_VIEWER	0xfe	/* only fill viewer (and root) from the task
				 * visited; with pid = td_config.landlock_off,
				 * found and found_tgid get the 8 bytes there
				 * in its cred->security: Landlock's domain */
#define TD_PROBE_LSM	0xfc	/* only copy the visited task's cred->security
				 * blob (its first TD_LSM_PEEK bytes) into
				 * viewer: the loader finds Landlock's place */
#define TD_LSM_PEEK	64
#define TD_PROBE_CALIBRATE 0xfd	/* only find td_config.pw_* from the reader's own
				 * task; found = 1 on success, else < 0 */

/* Written by task-diag-load after loading, read back by --status. */
struct td_config {
	__u32 overflowuid;	/* /proc/sys/kernel/overflowuid */
	__u32 overflowgid;
	__u64 loaded_at;	/* CLOCK_REALTIME seconds */
	__u8 obj_sha256[32];	/* of the loaded .bpf.o: tells a rebuild from a reload */
	/* The gate area /proc/PID/maps shows last as [vsyscall] (x86-64): not
	 * a VMA the iterator visits, so the loader reads it from its own maps. */
	__u64 gate_start, gate_end;	/* 0, 0: none */
	__u64 gate_flags;		/* TASK_DIAG_VMA_F_* */
	/* VMA_STAT by page-table walk (td_pagewalk.h): the bases found by a
	 * TD_PROBE_CALIBRATE pass, constants of the kernel's config that the
	 * loader reads, and the source that readers are given. */
	__u64 pw_page_offset;	/* page_offset_base; 0: not calibrated */
	__u64 pw_vmemmap;	/* vmemmap_base */
	__u64 pw_bad;		/* folios a walk found outside their VMA's file */
	__u32 pw_levels;	/* paging levels, 4 or 5 */
	__u32 pw_max_swapfiles;	/* MAX_SWAPFILES */
	__u32 pw_hwpoison_num;	/* SWP_HWPOISON_NUM */
	__u32 vma_stat;		/* TD_VMA_STAT_* */
	__u32 tier;		/* TD_TIER_*: which object the loader loaded */
	__u32 tier_forced;	/* 1: by task-diag-load --tier */
	/* Landlock's domain pointer in cred->security, + 1, where a reader in
	 * a domain may not read others' maps; 0: no Landlock, or not found;
	 * 0xffffffff: it may (nothing to refuse).  Found by the loader
	 * (task_diag/lsm.py, TD_PROBE_LSM); read by the drivers. */
	__u32 landlock_off;
	/* STATM's RSS counters as /proc reads them (td_groups.h,
	 * mm_counter()): 0, each per-CPU counter's approximate total; N, its
	 * exact sum over CPUs 0..N-1.  Measured by the loader. */
	__u32 statm_cpus;
	__u32 cmdline;		/* 1: a sleepable object (.s), which reads CMDLINE */
	__u32 cgroup_walk;	/* 1: td_cgroup loaded and pinned (td_css.h) */
	/* CMDLINE through the direct map (td_directmap.h), which needs the
	 * pw_* bases: 1 once the loader checked it against /proc;
	 * TD_CMDLINE_CHECKING while it checks, for the reads of
	 * cmdline_checker (its tgid) alone */
	__u32 cmdline_direct;
	__u32 cmdline_slow;	/* CMDLINE reads that went the slow way (tests look) */
	__u32 cmdline_checker;
	__u32 reserved;
};

/* td_config.tier (task_diag/loader/load.py, TIERS) */
#define TD_TIER_DPATH	1	/* task_diag.bpf.o: VMA names by bpf_d_path() */
#define TD_TIER_WALK	2	/* task_diag.walk.bpf.o: VMA names by a dentry walk */
#define TD_TIER_NOVMA	3	/* task_diag.novma.bpf.o: no VMA groups in BPF */

#define TD_CMDLINE_CHECKING	2	/* td_config.cmdline_direct */

#define TD_VMA_STAT_SMAPS	0	/* from /proc/PID/smaps, by the reader's driver */
#define TD_VMA_STAT_PAGEWALK	1	/* by the programs (td_pagewalk.h) */

#define TD_MAX_REQUESTS 4096

#endif /* __TD_ITER_H */
