// SPDX-License-Identifier: GPL-2.0
/*
 * The events of task_diag.watch(): fork, exec, exit and renames of tasks,
 * put in a ring buffer (td_events.h) that the driver (task_diag/watch.py)
 * reads after its dump.  Loaded by each watch() for itself, never pinned:
 * it goes with the watch.
 *
 * Exit is reported at the last context switch of the process's last
 * thread (sched_switch with TASK_DEAD, every thread past do_exit(), the
 * leader dead): its runtime is final then, and so its CPU times are
 * those its parent's wait4() rusage gives, to the nanosecond
 * (cputime_adjust() of the same numbers; or, where the parent reaped it
 * before that switch, what its wait stored), and its status the one its
 * parent's wait gets.  Not later: the task is freed (sched_process_free)
 * an RCU grace period after its reaping, which lazy RCU may stretch to
 * seconds.  Tracing points only (tp_btf), no fentry: a kernel may refuse
 * fentry (this development machine's does, EPERM with no verifier log).
 */
#include "td_kernel.h"
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "task_diag.h"
#include "td_events.h"
#include "td_cputime.h"
#include "td_subtree.h"

char LICENSE[] SEC("license") = "GPL";

#define SIGNAL_GROUP_EXIT	0x00000004	/* include/linux/sched/signal.h */
#define TASK_DEAD		0x00000080	/* include/linux/sched.h */
#define EXIT_DEAD		0x00000010	/* exit_state: being reaped, or reaped */
#define BPF_NOEXIST		1		/* bpf_map_update_elem(): only a new key */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);		/* the driver may set another size */
} td_ev_ring SEC(".maps");

/* events the ring had no room for: the driver reports them */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} td_ev_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct td_ev_config);
} td_ev_config SEC(".maps");

struct td_ev_buf {
	struct td_event ev;
	char cmdline[TD_EV_CMDLINE_MAX];
};

/* an event with its command line is built here: too big for the stack */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct td_ev_buf);
} td_ev_scratch SEC(".maps");

/* Whether events of @task count: the config's cgroup filter */
static __always_inline bool wanted(struct task_struct *task)
{
	u32 zero = 0;
	struct td_ev_config *cfg = bpf_map_lookup_elem(&td_ev_config, &zero);

	return !cfg || !cfg->cgroup || task_in_subtree(task, cfg->cgroup);
}

/* The scratch event, filled with what every event says of @task */
static __always_inline struct td_event *new_event(u32 type, struct task_struct *task)
{
	u32 zero = 0;
	struct td_ev_buf *b = bpf_map_lookup_elem(&td_ev_scratch, &zero);
	struct td_event *ev;

	if (!b)
		return NULL;
	ev = &b->ev;
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->pid = task->pid;
	ev->tgid = task->tgid;
	ev->start = task->start_boottime;
	ev->ktime = bpf_ktime_get_boot_ns();
	bpf_probe_read_kernel_str(ev->comm, sizeof(ev->comm), task->comm);
	return ev;
}

static __always_inline void send(void *data, u64 size)
{
	if (bpf_ringbuf_output(&td_ev_ring, data, size, 0)) {
		u32 zero = 0;
		u64 *drops = bpf_map_lookup_elem(&td_ev_drops, &zero);

		if (drops)
			*drops += 1;
	}
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(td_ev_fork, struct task_struct *parent, struct task_struct *child)
{
	struct td_event *ev;

	if (child->pid != child->tgid || !wanted(child))
		return 0;		/* a thread */
	ev = new_event(TD_EV_FORK, child);
	if (!ev)
		return 0;
	ev->ppid = child->real_parent->tgid;
	send(ev, sizeof(*ev));
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(td_ev_exec, struct task_struct *p, int old_pid, void *bprm)
{
	struct td_ev_buf *b;
	struct mm_struct *mm;
	u64 len = 0;

	if (!wanted(p))
		return 0;
	if (!new_event(TD_EV_EXEC, p))
		return 0;
	b = (void *)bpf_map_lookup_elem(&td_ev_scratch, &(u32){0});
	if (!b)
		return 0;
	b->ev.ppid = p->real_parent->tgid;
	mm = p->mm;
	/* the new program's arguments, just written by the kernel (present)
	 * in the memory of the task that runs us: current */
	if (mm && mm->arg_end > mm->arg_start) {
		len = mm->arg_end - mm->arg_start;
		if (len > TD_EV_CMDLINE_MAX)
			len = TD_EV_CMDLINE_MAX;
		if (bpf_probe_read_user(b->cmdline, len & (TD_EV_CMDLINE_MAX - 1 + TD_EV_CMDLINE_MAX),
					(void *)mm->arg_start))
			len = 0;
	}
	b->ev.cmdline_len = len;
	send(b, sizeof(b->ev) + (len & (2 * TD_EV_CMDLINE_MAX - 1)));
	return 0;
}

/* one exit event per process: the last of its threads to switch out
 * dead may race with its leader's, both seeing the group dead */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);		/* the leader's start_boottime ^ tgid << 32 */
	__type(value, __u8);
} td_ev_exited SEC(".maps");

/* process_times() from one consistent view of the sums: read outside any
 * write section of sig->stats_lock (__exit_signal() of a thread being
 * released moves its counts to the sums and it off the list inside one),
 * as thread_group_cputime() reads them; adjusted once, after */
static __always_inline void stable_times(struct task_struct *leader, struct signal_struct *sig,
					 u64 *ut, u64 *st, u64 *minflt, u64 *majflt)
{
	struct td_sum_ctx c = {};
	u32 s1, s2, i;

	/* a few tries: a write section is a few hundred ns; the last try's
	 * sums stand if every one met one */
	for (i = 0; i < 8; i++) {
		s1 = BPF_CORE_READ(sig, stats_lock.seqcount.seqcount.sequence);
		process_sums(leader, &c);
		s2 = BPF_CORE_READ(sig, stats_lock.seqcount.seqcount.sequence);
		if (!(s1 & 1) && s1 == s2)
			break;
	}
	process_times_of(leader, &c, ut, st, minflt, majflt);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(td_ev_exit, bool preempt, struct task_struct *p, struct task_struct *next,
	     unsigned int prev_state)
{
	struct task_struct *leader;
	struct signal_struct *sig;
	struct td_event *ev;
	u64 ut, st, minflt, majflt, key;
	__u8 one = 1;

	/* every context switch comes here: leave at once unless it is a
	 * thread's last, and its process's: every thread past do_exit()'s
	 * count (live), none left on the list but the leader (or none:
	 * reaped already), and the leader this one or dead already */
	if (!(prev_state & TASK_DEAD))
		return 0;
	sig = p->signal;
	leader = p->group_leader;
	if (sig->live.counter || sig->nr_threads > 1)	/* 0: reaped already */
		return 0;
	if (leader != p && !(BPF_CORE_READ(leader, __state) & TASK_DEAD))
		return 0;
	if (!wanted(leader))
		return 0;
	key = leader->start_boottime ^ ((u64)leader->tgid << 32);
	if (bpf_map_update_elem(&td_ev_exited, &key, &one, BPF_NOEXIST))
		return 0;		/* the other thread said it */
	ev = new_event(TD_EV_EXIT, leader);
	if (!ev)
		return 0;
	ev->ppid = leader->real_parent->tgid;
	ev->status = (sig->flags & SIGNAL_GROUP_EXIT) ? sig->group_exit_code : leader->exit_code;
	stable_times(leader, sig, &ut, &st, &minflt, &majflt);
	/* Reaped already (its parent on another CPU, between exit_notify()
	 * and this switch): the parent's wait took the times of that moment
	 * and left them in prev_cputime, a few µs short of these; those are
	 * the ones it reported. */
	if ((leader->exit_state & EXIT_DEAD) &&
	    sig->prev_cputime.utime + sig->prev_cputime.stime) {
		ut = sig->prev_cputime.utime;
		st = sig->prev_cputime.stime;
	}
	ev->utime = ut;
	ev->stime = st;
	ev->minflt = minflt;
	ev->majflt = majflt;
	send(ev, sizeof(*ev));
	return 0;
}

SEC("tp_btf/task_rename")
int BPF_PROG(td_ev_comm, struct task_struct *tsk, const char *buf)
{
	struct td_event *ev;

	if (BPF_CORE_READ_BITFIELD_PROBED(tsk, in_execve) || !wanted(tsk))
		return 0;		/* an exec's: the EXEC event says it */
	ev = new_event(TD_EV_COMM, tsk);
	if (!ev)
		return 0;
	bpf_probe_read_kernel_str(ev->comm, sizeof(ev->comm), buf);
	send(ev, sizeof(*ev));
	return 0;
}
