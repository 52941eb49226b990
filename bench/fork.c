// SPDX-License-Identifier: GPL-2.0
/*
 * fork NPROC [THREADS]: the load generator of the benchmarks (after the
 * original task_diag selftests' fork tool).  Forks NPROC children; each
 * child starts THREADS-1 extra pthreads and everyone sleeps.
 *
 * Unlike the original, the parent stays: it prints "ready" once every child
 * has all its threads, and on SIGTERM or SIGINT kills and reaps every child
 * before it exits, so that no zombie is left to whoever is pid 1.  Children
 * also die when the parent dies (PR_SET_PDEATHSIG).  Run it in its own
 * process group: "kill -TERM -PGID" then ends the whole load.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREAD_STACK (64 << 10)	/* 10k x 5 threads must stay small */

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* In the child: start the extra threads, report on @ready_fd, sleep. */
static void __attribute__((noreturn))
child(int nthreads, int ready_fd, pid_t parent, const sigset_t *stop)
{
	pthread_attr_t attr;
	pthread_t t;
	int i;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)	/* the parent died before prctl() */
		_exit(1);
	/* A SIGTERM that came while blocked kills us here. */
	sigprocmask(SIG_UNBLOCK, stop, NULL);

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	for (i = 1; i < nthreads; i++) {
		if (pthread_create(&t, &attr, sleeper, NULL)) {
			fprintf(stderr, "fork: pthread_create failed in %d\n", getpid());
			_exit(1);
		}
	}
	if (write(ready_fd, "", 1) != 1)
		_exit(1);
	close(ready_fd);
	for (;;)
		pause();
}

static void reap_all(void)
{
	while (wait(NULL) > 0 || errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	int nproc, nthreads = 1, ready[2], started = 0, got = 0, status = 0, sig;
	sigset_t stop;
	pid_t *pids, self = getpid();
	char c;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: fork NPROC [THREADS]\n");
		return 2;
	}
	nproc = atoi(argv[1]);
	if (argc > 2)
		nthreads = atoi(argv[2]);
	if (nproc < 0 || nthreads < 1) {
		fprintf(stderr, "fork: NPROC >= 0 and THREADS >= 1\n");
		return 2;
	}
	pids = calloc(nproc ? nproc : 1, sizeof(*pids));
	if (!pids || pipe(ready)) {
		perror("fork");
		return 1;
	}

	/* Blocked here and taken with sigwait() below, so that a stop request
	 * during the fork loop is not lost; the children unblock them.  Reset
	 * first: an ignored signal (shells ignore SIGINT in background jobs)
	 * would never reach sigwait() nor end a child. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigprocmask(SIG_BLOCK, &stop, NULL);

	for (; started < nproc; started++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("fork: fork");
			status = 1;
			break;
		}
		if (pid == 0) {
			close(ready[0]);
			child(nthreads, ready[1], self, &stop);
		}
		pids[started] = pid;
	}
	close(ready[1]);

	/* One byte per child that got all its threads; EOF once every child
	 * has written or died. */
	while (got < started) {
		ssize_t n = read(ready[0], &c, 1);

		if (n == 1)
			got++;
		else if (n == 0 || errno != EINTR)
			break;
	}
	if (got < started) {
		fprintf(stderr, "fork: only %d of %d children started\n", got, started);
		status = 1;
	}
	if (!status) {
		printf("ready %d\n", started);
		fflush(stdout);
		sigwait(&stop, &sig);
	}

	for (int i = 0; i < started; i++)
		kill(pids[i], SIGKILL);
	reap_all();
	return status;
}
