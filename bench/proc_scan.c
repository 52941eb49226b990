// SPDX-License-Identifier: GPL-2.0
/*
 * proc_scan [-p] [-t]: the /proc baseline (after the original selftests'
 * task_proc_all).  For every numeric entry of /proc, open, read and close
 * /proc/PID/stat; count the tasks.
 *   -p  also parse pid, ppid and comm out of each stat, as a task_diag
 *       reader of BASE gets them, so that both sides do comparable work
 *   -t  every thread instead: /proc/PID/task/TID/stat
 *
 * Prints one line: "tasks N cpu_us C wall_us W checksum S": the cost of
 * the scan alone (process start-up excluded), C being user + system time.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

static int parse;
static unsigned long checksum;	/* keeps the parsing from being optimised out */


/* "pid (comm) state ppid ...": comm may hold spaces and ')', so it runs
 * to the last ')'. */
static void parse_stat(char *buf, ssize_t len)
{
	char comm[16], *open, *close;
	int pid, ppid;
	char state;

	buf[len] = '\0';
	open = strchr(buf, '(');
	close = strrchr(buf, ')');
	if (!open || !close || close < open)
		return;
	pid = atoi(buf);
	len = close - open - 1;
	if (len > (ssize_t)sizeof(comm) - 1)
		len = sizeof(comm) - 1;
	memcpy(comm, open + 1, len);
	comm[len] = '\0';
	if (sscanf(close + 2, "%c %d", &state, &ppid) == 2)
		checksum += pid + ppid + comm[0];
}

static int is_pid(const char *name)
{
	return name[0] >= '0' && name[0] <= '9';
}

/* open/read/close one stat file; 1 if it was there */
static int read_stat(const char *path)
{
	char buf[4096];
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;	/* the task exited since readdir() */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0 && parse)
		parse_stat(buf, n);
	return n > 0;
}

static int scan_threads(const char *pid)
{
	char path[PATH_MAX];
	struct dirent *de;
	int tasks = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%s/task", pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (!is_pid(de->d_name))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/task/%s/stat", pid, de->d_name);
		tasks += read_stat(path);
	}
	closedir(d);
	return tasks;
}

int main(int argc, char **argv)
{
	int opt, threads = 0, tasks = 0;
	long long wall0, cpu0;
	struct dirent *de;
	char path[PATH_MAX];
	DIR *d;

	while ((opt = getopt(argc, argv, "pt")) != -1) {
		switch (opt) {
		case 'p':
			parse = 1;
			break;
		case 't':
			threads = 1;
			break;
		default:
			fprintf(stderr, "usage: proc_scan [-p] [-t]\n");
			return 2;
		}
	}

	wall0 = now_us();
	cpu0 = cpu_us();
	d = opendir("/proc");
	if (!d) {
		perror("/proc");
		return 1;
	}
	while ((de = readdir(d))) {
		if (!is_pid(de->d_name))
			continue;
		if (threads) {
			tasks += scan_threads(de->d_name);
		} else {
			snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
			tasks += read_stat(path);
		}
	}
	closedir(d);
	printf("tasks %d cpu_us %lld wall_us %lld checksum %lu\n",
	       tasks, cpu_us() - cpu0, now_us() - wall0, checksum);
	return 0;
}
