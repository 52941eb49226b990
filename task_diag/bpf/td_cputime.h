/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CPU times as the kernel reports them: cputime_adjust() (utime and stime
 * scaled to the precise runtime) and a process's sum over its threads,
 * for STAT (td_groups.h) and for the exit events (task_diag_events.bpf.c).
 *
 * Included by both; needs td_kernel.h before it.
 */
#ifndef __TD_CPUTIME_H
#define __TD_CPUTIME_H

#ifndef TD_MAX_THREADS
#define TD_MAX_THREADS	(1 << 20)
#endif

/* mul_u64_u64_div_u64(): a * b / c in 128 bits, by long division. */
struct td_div_ctx {
	u64 hi, lo, c, q, r;
};

static long div128_cb(u32 i, struct td_div_ctx *d)
{
	u32 bit = 127 - i;
	u64 top = d->r >> 63;
	u64 in = bit >= 64 ? (d->hi >> (bit - 64)) & 1 : (d->lo >> bit) & 1;

	d->r = (d->r << 1) | in;
	if (top || d->r >= d->c) {
		d->r -= d->c;
		if (bit < 64)
			d->q |= 1ULL << bit;
	}
	return 0;
}

static __always_inline u64 mul_div(u64 a, u64 b, u64 c)
{
	struct td_div_ctx d = { .c = c };
	u64 a_lo = (u32)a, a_hi = a >> 32, b_lo = (u32)b, b_hi = b >> 32;
	u64 ll, lh, hl, hh, mid;

	if (!c)
		return 0;
	if (!a_hi && !b_hi)
		return a * b / c;
	ll = a_lo * b_lo;
	lh = a_lo * b_hi;
	hl = a_hi * b_lo;
	hh = a_hi * b_hi;
	mid = (ll >> 32) + (u32)lh + (u32)hl;
	d.lo = (mid << 32) | (u32)ll;
	d.hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
	if (!d.hi)
		return d.lo / c;
	bpf_loop(128, div128_cb, &d, 0);
	return d.q;
}

/*
 * cputime_adjust() without its side effect: the kernel stores the result
 * in @prev, which we may not write; computing from the same inputs gives
 * the value /proc returns now.
 */
static __always_inline void cputime_adjust(u64 rtime, u64 utime, u64 stime,
					   u64 prev_ut, u64 prev_st, u64 *ut, u64 *st)
{
	if (prev_st + prev_ut >= rtime) {
		*ut = prev_ut;
		*st = prev_st;
		return;
	}
	if (stime == 0) {
		utime = rtime;
	} else if (utime == 0) {
		stime = rtime;
	} else {
		stime = mul_div(stime, rtime, stime + utime);
		if (stime > rtime)
			stime = rtime;
	}
	if (stime < prev_st)
		stime = prev_st;
	utime = rtime - stime;
	if (utime < prev_ut) {
		utime = prev_ut;
		stime = rtime - utime;
	}
	*ut = utime;
	*st = stime;
}

struct td_sum_ctx {
	struct list_head *head, *node;
	u64 utime, stime, rtime, min_flt, maj_flt;
	long off;	/* offsetof(struct task_struct, thread_node) */
};

/* for_each_thread(): add up the live threads, as thread_group_cputime(). */
static long sum_thread_cb(u32 i, struct td_sum_ctx *c)
{
	struct list_head *node = c->node;
	struct task_struct *t;

	if (!node || node == c->head)
		return 1;
	t = (void *)node - c->off;
	c->utime += BPF_CORE_READ(t, utime);
	c->stime += BPF_CORE_READ(t, stime);
	c->rtime += BPF_CORE_READ(t, se.sum_exec_runtime);
	c->min_flt += BPF_CORE_READ(t, min_flt);
	c->maj_flt += BPF_CORE_READ(t, maj_flt);
	c->node = BPF_CORE_READ(node, next);
	return 0;
}

/* thread_group_cputime() of @task's process, before its adjustment: the
 * sums over its threads, live and dead, in @c */
static __always_inline void process_sums(struct task_struct *task, struct td_sum_ctx *c)
{
	struct signal_struct *sig = task->signal;

	/* The callback gets the list as numbers: it walks with probes. */
	c->head = &sig->thread_head;
	c->node = sig->thread_head.next;
	c->off = bpf_core_field_offset(struct task_struct, thread_node);
	c->utime = sig->utime;
	c->stime = sig->stime;
	c->rtime = sig->sum_sched_runtime;
	c->min_flt = sig->min_flt;
	c->maj_flt = sig->maj_flt;
	bpf_loop(TD_MAX_THREADS, sum_thread_cb, c, 0);
}

/*
 * thread_group_cputime_adjusted() of @task's process, in ns, from its
 * sums @c, and its faults: what /proc/PID/stat and a parent's wait4()
 * rusage give (the latter stores the same values in prev_cputime before
 * release_task()).
 */
static __always_inline void process_times_of(struct task_struct *task, struct td_sum_ctx *c,
					     u64 *ut, u64 *st, u64 *minflt, u64 *majflt)
{
	struct signal_struct *sig = task->signal;

	*minflt = c->min_flt;
	*majflt = c->maj_flt;
	cputime_adjust(c->rtime, c->utime, c->stime, sig->prev_cputime.utime,
		       sig->prev_cputime.stime, ut, st);
}

static __always_inline void process_times(struct task_struct *task, u64 *ut, u64 *st,
					  u64 *minflt, u64 *majflt)
{
	struct td_sum_ctx c = {};

	process_sums(task, &c);
	process_times_of(task, &c, ut, st, minflt, majflt);
}

#endif /* __TD_CPUTIME_H */
