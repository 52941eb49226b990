/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel types the task_diag programs read, declared by hand for
 * CO-RE.  Only the fields we use are listed; libbpf matches them by name
 * against the running kernel's BTF and relocates every offset, so this file
 * does not depend on the kernel it was compiled on.  Fields that moved or
 * changed type between kernel versions have ___flavour twins below, tested
 * with bpf_core_field_exists().
 *
 * Our own types are prefixed td_: every struct here is marked for CO-RE and
 * a name that the kernel also uses would be relocated against the kernel's.
 */
#ifndef __TD_KERNEL_H
#define __TD_KERNEL_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef int s32;
typedef long long s64;
typedef _Bool bool;
#define true 1
#define false 0

#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)

struct list_head {
	struct list_head *next, *prev;
};

typedef struct { u32 val; } kuid_t;
typedef struct { u32 val; } kgid_t;
/* kernel_cap_t: a struct kernel_cap_struct { u32 cap[2]; } before 6.3, a
 * struct { u64 val; } since: tell them apart with bpf_core_field_exists(). */
typedef struct { u64 val; } kernel_cap_t;
struct kernel_cap_struct {
	u32 cap[2];
};

struct uid_gid_extent {
	u32 first;
	u32 lower_first;
	u32 count;
};

/* nr_extents and extent[] sit in an anonymous union/struct whose layout
 * changed in 6.x; CO-RE finds the names inside anonymous members. */
struct uid_gid_map {
	u32 nr_extents;
	struct uid_gid_extent extent[5];
	struct uid_gid_extent *reverse;
};

struct ns_common {
	unsigned int inum;
};

struct user_namespace {
	struct ns_common ns;
	struct uid_gid_map uid_map;
	struct uid_gid_map gid_map;
	struct user_namespace *parent;
	int level;
	kuid_t owner;
};

struct cred {
	kuid_t uid, suid, euid, fsuid;
	kgid_t gid, sgid, egid, fsgid;
	kernel_cap_t cap_inheritable;
	kernel_cap_t cap_permitted;
	kernel_cap_t cap_effective;
	kernel_cap_t cap_bset;
	struct user_namespace *user_ns;
	void *security;			/* the LSMs' blobs (CONFIG_SECURITY) */
};

struct pid_namespace {
	unsigned int level;
	struct ns_common ns;
};

struct uts_namespace { struct ns_common ns; };
struct ipc_namespace { struct ns_common ns; };
struct mnt_namespace { struct ns_common ns; };
struct net { struct ns_common ns; };
struct time_namespace { struct ns_common ns; };

/* CGROUP (td_cgroup.h): the default (v2) hierarchy only */
struct kernfs_node {
	const char *name;
	u64 id;				/* the cgroup's id: its directory's inode */
};

struct cgroup;
struct cgroup_subsys_state {
	struct cgroup *cgroup;
	unsigned int flags;		/* CSS_ONLINE: not removed */
	struct cgroup_subsys_state *parent;
};

struct cgroup {
	struct cgroup_subsys_state self;	/* self.parent: the parent's */
	int level;			/* the root's is 0 */
	struct kernfs_node *kn;
	struct cgroup *ancestors[];	/* [level]: itself; 6.0+ */
};

struct css_set {
	struct cgroup *dfl_cgrp;
};

struct cgroup_namespace {
	struct ns_common ns;
	struct css_set *root_cset;	/* root_cset->dfl_cgrp: the namespace's root */
};

struct nsproxy {
	struct uts_namespace *uts_ns;
	struct ipc_namespace *ipc_ns;
	struct mnt_namespace *mnt_ns;
	struct pid_namespace *pid_ns_for_children;
	struct net *net_ns;
	struct cgroup_namespace *cgroup_ns;
};

/* CONFIG_TIME_NS (5.6) only: tested with bpf_core_field_exists() */
struct nsproxy___time {
	struct time_namespace *time_ns;
};

struct upid {
	int nr;
	struct pid_namespace *ns;
};

struct pid {
	unsigned int level;
	struct upid numbers[1];
};

enum pid_type {
	PIDTYPE_PID,
	PIDTYPE_TGID,
	PIDTYPE_PGID,
	PIDTYPE_SID,
	PIDTYPE_MAX,
};

struct prev_cputime {
	u64 utime;
	u64 stime;
};

/* CONFIG_TASK_DELAY_ACCT only: tested with bpf_core_field_exists() */
struct task_delay_info {
	u64 blkio_delay;		/* ns */
};

struct task_struct___delays {
	struct task_delay_info *delays;
};

struct tty_driver {
	int major;
	int minor_start;
};

struct tty_struct {
	struct tty_driver *driver;
	int index;
};

struct signal_struct {
	struct { int counter; } live;	/* threads not yet in do_exit() */
	int nr_threads;
	struct tty_struct *tty;		/* the controlling terminal, or NULL */
	struct list_head thread_head;
	struct pid *pids[PIDTYPE_MAX];
	u64 utime, stime, cutime, cstime;
	unsigned long min_flt, maj_flt, cmin_flt, cmaj_flt;
	unsigned long long sum_sched_runtime;
	struct prev_cputime prev_cputime;
	unsigned int flags;		/* SIGNAL_GROUP_EXIT: group_exit_code is the status */
	int group_exit_code;
	/* seqlock_t: __exit_signal() moves a dying thread's counts into the
	 * sums above and off the thread list inside its write section */
	struct {
		struct {
			struct { unsigned int sequence; } seqcount;
		} seqcount;
	} stats_lock;
};

/* The RSS counters: per-CPU counters since 6.2 (the mm's rss_stat is an
 * array of these), atomics before (a struct of an array). */
struct percpu_counter {
	s64 count;
	s32 *counters;			/* __percpu */
};

/* kernel/bpf/arraymap.c: a per-CPU array's values, one __percpu pointer
 * per key (in a union of flexible arrays) */
struct bpf_array {
	void *pptrs[0];
};

typedef struct { s64 counter; } atomic_long_t;

struct mm_rss_stat___atomic {
	atomic_long_t count[4];
};

struct mm_struct {
	struct user_namespace *user_ns;
	unsigned long start_brk, brk, start_stack;
	unsigned long start_code, end_code;
	unsigned long arg_start, arg_end, env_start, env_end;
	unsigned long total_vm, data_vm, stack_vm;
	struct percpu_counter rss_stat[4];	/* NR_MM_COUNTERS */
	void *pgd;			/* pgd_t *: the page walk's root */
	int map_count;			/* its VMAs */
};

struct mm_struct___atomic_rss {		/* before 6.2 */
	struct mm_rss_stat___atomic rss_stat;
};

/* ---- VMAs (only used by the object built with the VMA code) ---- */

struct super_block {
	u32 s_dev;			/* dev_t */
	unsigned long s_magic;
};

struct inode {
	unsigned long i_ino;
	u32 i_generation;
	long long i_size;
	struct super_block *i_sb;
};

struct dentry;

struct vfsmount {
	struct dentry *mnt_root;
};

/* fs/mount.h: the vfsmount is embedded; container_of() with CO-RE. */
struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
};

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};

struct address_space;

struct file {
	struct path f_path;
	struct inode *f_inode;
	struct address_space *f_mapping;
	unsigned int f_mode;		/* fmode_t */
};

/* fs/file_table.c (6.6+): overlayfs maps a backing file whose f_path is
 * the real file; /proc/PID/maps shows user_path (file_user_path()).
 * user_path sits in an anonymous union on recent kernels. */
struct backing_file {
	struct file file;
	struct path user_path;
};

struct vm_area_struct;

struct vm_operations_struct {
	const char *(*name)(struct vm_area_struct *vma);
};

struct vm_special_mapping {
	const char *name;
};

struct anon_vma_name {
	char name[0];
};

struct vm_area_struct {
	unsigned long vm_start, vm_end;		/* in an anonymous union since 6.x */
	struct mm_struct *vm_mm;
	unsigned long vm_flags;			/* ditto (vm_flags / __vm_flags) */
	const struct vm_operations_struct *vm_ops;
	unsigned long vm_pgoff;
	struct file *vm_file;
	void *vm_private_data;
};

/* CONFIG_ANON_VMA_NAME only: tested with bpf_core_field_exists(). */
struct vm_area_struct___anon_name {
	struct anon_vma_name *anon_name;
};

struct bpf_iter_task_vma {
	u64 __opaque[1];
} __attribute__((aligned(8)));

/* mm->flags: an unsigned long before 6.18, a one-word bitmap type since. */
struct mm_struct___flags_word {
	unsigned long flags;
};

struct mm_struct___flags_bitmap {
	struct { unsigned long __mm_flags[1]; } flags;
};

/* CONFIG_PER_VMA_LOCK (6.4+): the mm's write sequence.  A seqcount since
 * 6.14 (odd while a writer holds mmap_lock, bumped on lock and unlock), an
 * int before (bumped on unlock only).  Tested with bpf_core_field_exists(). */
struct mm_struct___lock_seqcount {
	struct { unsigned int sequence; } mm_lock_seq;
};

struct mm_struct___lock_seq_int {
	int mm_lock_seq;
};

struct sched_entity {
	u64 sum_exec_runtime;
};

struct task_struct {
	int pid;
	int tgid;
	unsigned int __state;
	int exit_state;
	int exit_code;			/* the wait status of a task that exited */
	unsigned int in_execve: 1;	/* in execve(): its rename is the exec's */
	unsigned int ptrace;
	unsigned int flags;
	int prio, static_prio;
	unsigned int rt_priority, policy;
	u64 start_boottime;
	u64 self_exec_id;		/* u64 since 5.7; counts execve()s */
	struct task_struct *real_parent;
	struct task_struct *parent;
	struct task_struct *group_leader;
	struct pid *thread_pid;
	struct list_head thread_node;
	struct signal_struct *signal;
	const struct cred *real_cred;
	const struct cred *cred;
	struct mm_struct *mm;
	struct nsproxy *nsproxy;
	struct css_set *cgroups;	/* CONFIG_CGROUPS */
	char comm[16];
	unsigned long min_flt, maj_flt;
	u64 utime, stime;
	struct sched_entity se;
	struct prev_cputime prev_cputime;
};

/* task->state was a long until 5.14 renamed it __state. */
struct task_struct___pre514 {
	long state;
};

struct seq_file {
	char *buf;
	unsigned long size;		/* of buf: 8 pages for BPF iterators */
	unsigned long count;		/* bytes the read has in buf so far */
};

struct bpf_iter_meta {
	struct seq_file *seq;
	u64 session_id;
	u64 seq_num;
};

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
};

struct bpf_iter__cgroup {
	struct bpf_iter_meta *meta;
	struct cgroup *cgroup;		/* NULL: the walk is over */
};

/* The open-coded css_task iterator's state (6.7): its size is the kernel's */
struct bpf_iter_css_task {
	u64 __opaque[1];
} __attribute__((aligned(8)));

#pragma clang attribute pop

/* BPF map definitions (not kernel types, not relocated). */
enum bpf_map_type {
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

/* ---- the file-name cache of vma_name() (task_diag.bpf.c) ---- */

#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)

struct hlist_bl_node {
	struct hlist_bl_node *next, **pprev;
};

/* hash and len in an anonymous struct inside an anonymous union: CO-RE
 * finds hash_len there. */
struct qstr {
	u64 hash_len;
	const unsigned char *name;
};

struct dentry_operations {
	char *(*d_dname)(struct dentry *dentry, char *buf, int buflen);
};

struct dentry {
	struct hlist_bl_node d_hash;	/* pprev NULL: unhashed */
	struct dentry *d_parent;
	struct qstr d_name;		/* in an anonymous union on recent kernels */
	struct inode *d_inode;
	const struct dentry_operations *d_op;
};

struct fs_struct {
	struct path root;
};

struct task_struct___fs {
	struct fs_struct *fs;
};

#pragma clang attribute pop

#endif /* __TD_KERNEL_H */
