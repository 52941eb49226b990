// SPDX-License-Identifier: GPL-2.0
/*
 * forkrate RATE SECONDS: fork and reap RATE short-lived children a second
 * (each exits at once), for SECONDS, paced in steps of 10 ms; prints
 * "forked N in S s".  The load of watch()'s benchmark (bench/run.py).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double rate, seconds, start, elapsed;
	long done = 0;

	if (argc != 3)
		return 2;
	rate = atof(argv[1]);
	seconds = atof(argv[2]);
	start = now();
	while ((elapsed = now() - start) < seconds) {
		if (done >= elapsed * rate) {
			usleep(1000);
			continue;
		}
		pid_t pid = fork();

		if (pid < 0)
			return 1;
		if (pid == 0)
			_exit(done & 0xff);
		waitpid(pid, NULL, 0);
		done++;
	}
	printf("forked %ld in %.3f s\n", done, now() - start);
	return 0;
}
