/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The head of a message with one attribute, as the floor programs
 * (iter_floor.bpf.c, vma_floor.bpf.c) write it: nlmsghdr, task_diag_msg,
 * nlattr; 32 bytes.  Ours, prefixed: td_kernel.h marks every struct for
 * CO-RE, and a kernel name would be relocated against the kernel's.
 */
#ifndef __TD_BENCH_FLOOR_H
#define __TD_BENCH_FLOOR_H

struct tdf_head {
	__u32 nlmsg_len;
	__u16 nlmsg_type;
	__u16 nlmsg_flags;		/* NLM_F_MULTI */
	__u32 nlmsg_seq;
	__u32 nlmsg_pid;
	struct task_diag_msg msg;
	__u16 nla_len;
	__u16 nla_type;
};

/* A head for @task's message whose attribute @type has @len payload bytes */
static __always_inline void tdf_head_init(struct tdf_head *h, struct task_struct *task,
					  __u16 type, __u32 len)
{
	h->nlmsg_len = sizeof(*h) + len;
	h->nlmsg_type = TASK_DIAG_CMD_GET;
	h->nlmsg_flags = 2;
	h->msg.pid = task->pid;
	h->msg.tgid = task->tgid;
	h->msg.flags = 0;
	h->nla_len = 4 + len;
	h->nla_type = type;
}

#endif
