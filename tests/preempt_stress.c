// SPDX-License-Identifier: GPL-2.0
/*
 * preempt_stress PIN SECONDS READERS: readers of the pinned iterator PIN
 * (/sys/fs/bpf/task_diag/all), half of them root and half uid 65534, all
 * reading it over and over for SECONDS while they take the CPUs from each
 * other.  Where a BPF program can be preempted (preempt=full), a run that
 * loses its CPU in the middle of a message could see another reader's run
 * write the same per-CPU buffer: the message would then carry another
 * task's data, possibly one its reader may not see.  The programs hold
 * their buffers under a per-CPU try-lock (show_task()).  Checked here:
 *   - every message is whole and its own: 76 bytes, BASE, base.pid and
 *     base.tgid equal to the header's, a comm that belongs to that pid
 *     among the processes made here;
 *   - a uid 65534 reader sees only processes of uid 65534 (those made
 *     here and the uid 65534 readers, told by their names), and each of
 *     the ones made here.
 * Prints "reads R messages M eagain E bad B leaks L" and exits 1 if B or
 * L is not 0 (or nothing was read).  Written against task_diag/bpf/task_diag.h only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include "../task_diag/bpf/task_diag.h"

#define NOBODY 65534
#define ROOTS 100
#define OWNS 20

struct counts { long reads, messages, eagain, bad, leaks; };

static pid_t roots[ROOTS], owns[OWNS];
static struct counts *shared;	/* one per reader, in shared memory */

static pid_t sleeper(const char *comm, int uid)
{
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		prctl(PR_SET_NAME, comm);	/* before it is 65534's */
		if (uid && (setresgid(uid, uid, uid) || setresuid(uid, uid, uid)))
			_exit(1);
		prctl(PR_SET_DUMPABLE, 1);	/* reset by the change of ids */
		for (;;)
			pause();
	}
	return pid;
}

static int in(pid_t pid, const pid_t *set, int n)
{
	for (int i = 0; i < n; i++)
		if (set[i] == pid)
			return i;
	return -1;
}

/* Checks one read's messages; @mine: the reader is uid 65534 */
static void check(const char *p, ssize_t n, int mine, struct counts *c, int *seen)
{
	const char *end = p + n;

	while (p < end) {
		const struct nlmsghdr *h = (const void *)p;
		const struct task_diag_msg *m = NLMSG_DATA(h);
		const struct nlattr *a = (const void *)(m + 1);
		const struct task_diag_base *b = (const void *)(a + 1);
		int r, o;

		c->messages++;
		if (end - p < 76 || h->nlmsg_len != 76 || h->nlmsg_type != TASK_DIAG_CMD_GET ||
		    a->nla_type != TASK_DIAG_BASE || a->nla_len != 4 + sizeof(*b) ||
		    b->pid != m->pid || b->tgid != m->tgid) {
			c->bad++;
			return;
		}
		r = in(m->pid, roots, ROOTS);
		o = in(m->pid, owns, OWNS);
		if ((r >= 0 && strcmp(b->comm, "td-root")) || (o >= 0 && strcmp(b->comm, "td-own")) ||
		    (r < 0 && (!strcmp(b->comm, "td-root"))) || (o < 0 && !strcmp(b->comm, "td-own")))
			c->bad++;		/* a comm that is not this pid's */
		if (mine && strcmp(b->comm, "td-own") && strcmp(b->comm, "td-reader-65534"))
			c->leaks++;		/* not uid 65534's, shown to it */
		if (o >= 0)
			seen[o] = 1;
		p += NLMSG_ALIGN(h->nlmsg_len);
	}
}

static void reader(const char *pin, double seconds, int mine, struct counts *c)
{
	static char buf[1 << 16];
	struct timespec t0, t;
	int seen[OWNS];

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_NAME, mine ? "td-reader-65534" : "td-reader-0");	/* before it is 65534's */
	if (mine && (setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY)))
		_exit(3);
	prctl(PR_SET_DUMPABLE, 1);		/* reset by the change of ids */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		int fd = open(pin, O_RDONLY);
		ssize_t n;

		if (fd < 0)
			_exit(4);
		memset(seen, 0, sizeof(seen));
		while ((n = read(fd, buf, sizeof(buf))) != 0) {
			if (n < 0) {
				if (errno != EAGAIN)
					_exit(5);
				c->eagain++;	/* the first task of a read shown again */
				continue;
			}
			check(buf, n, mine, c, seen);
		}
		close(fd);
		c->reads++;
		if (mine)
			for (int i = 0; i < OWNS; i++)
				c->bad += !seen[i];	/* its own, all of them */
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec + (t.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
	_exit(0);
}

int main(int argc, char **argv)
{
	int readers = argc > 3 ? atoi(argv[3]) : 4, status, failed = 0;
	double seconds = argc > 2 ? atof(argv[2]) : 10;
	struct counts total = {0};
	pid_t *pids;

	if (argc < 2 || readers < 2) {
		fprintf(stderr, "usage: preempt_stress PIN [SECONDS [READERS]]\n");
		return 2;
	}
	for (int i = 0; i < ROOTS; i++)
		roots[i] = sleeper("td-root", 0);
	for (int i = 0; i < OWNS; i++)
		owns[i] = sleeper("td-own", NOBODY);
	usleep(200000);			/* names and ids set */
	shared = mmap(NULL, readers * sizeof(*shared), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pids = calloc(readers, sizeof(*pids));
	for (int i = 0; i < readers; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			reader(argv[1], seconds, i % 2, &shared[i]);
	}
	for (int i = 0; i < readers; i++) {
		waitpid(pids[i], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			fprintf(stderr, "preempt_stress: reader %d (%s) failed: status %#x\n",
				i, i % 2 ? "uid 65534" : "root", status);
			failed = 1;
		}
		total.reads += shared[i].reads;
		total.messages += shared[i].messages;
		total.eagain += shared[i].eagain;
		total.bad += shared[i].bad;
		total.leaks += shared[i].leaks;
	}
	for (int i = 0; i < ROOTS; i++)
		kill(roots[i], SIGKILL);
	for (int i = 0; i < OWNS; i++)
		kill(owns[i], SIGKILL);
	while (wait(NULL) > 0)
		;
	printf("reads %ld messages %ld eagain %ld bad %ld leaks %ld%s\n", total.reads,
	       total.messages, total.eagain, total.bad, total.leaks, failed ? " reader-failed" : "");
	return failed || total.bad || total.leaks || !total.reads;
}
