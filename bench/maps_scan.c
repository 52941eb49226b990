// SPDX-License-Identifier: GPL-2.0
/*
 * maps_scan [-s | -q]: the /proc baselines of the VMA benchmarks.  For every
 * numeric entry of /proc (every process), one of:
 *   (default)  open, read to the end and close /proc/PID/maps; a VMA is a line
 *   -s         the same with /proc/PID/smaps (its page-table walk for the
 *              statistics included); a VMA is a "VmFlags:" line, the last
 *              line of each block
 *   -q         open /proc/PID/maps and loop the PROCMAP_QUERY ioctl (6.11+)
 *              from address 0, PROCMAP_QUERY_COVERING_OR_NEXT_VMA, each
 *              query asking for the VMA's name too, so that it gets what a
 *              maps line holds; a VMA is a successful query.  The gate VMA
 *              ([vsyscall]) is not in the mm's tree, so it never answers it:
 *              one VMA per process fewer than maps
 *
 * Prints one line: "tasks N mms M vmas V bytes B cpu_us C wall_us W checksum
 * S": tasks are the processes whose file could be opened (kernel threads
 * included), mms those of them with at least one VMA, bytes what was read
 * (-q: of names, NULs included), then the cost of the scan alone (process
 * start-up excluded), C being user + system time.
 * Exits 1 when PROCMAP_QUERY is not there (ENOTTY).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/types.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "clock.h"

/* Debian 12's linux/fs.h (6.1) lacks it: copied from the kernel's
 * include/uapi/linux/fs.h (6.11+). */
#ifndef PROCMAP_QUERY
#define PROCFS_IOCTL_MAGIC 'f'	/* 0x66 */
enum procmap_query_flags {
	PROCMAP_QUERY_VMA_READABLE = 0x01,
	PROCMAP_QUERY_VMA_WRITABLE = 0x02,
	PROCMAP_QUERY_VMA_EXECUTABLE = 0x04,
	PROCMAP_QUERY_VMA_SHARED = 0x08,
	PROCMAP_QUERY_COVERING_OR_NEXT_VMA = 0x10,
	PROCMAP_QUERY_FILE_BACKED_VMA = 0x20,
};

struct procmap_query {
	__u64 size;
	__u64 query_flags;		/* in */
	__u64 query_addr;		/* in */
	__u64 vma_start;		/* out */
	__u64 vma_end;			/* out */
	__u64 vma_flags;		/* out */
	__u64 vma_page_size;		/* out */
	__u64 vma_offset;		/* out */
	__u64 inode;			/* out */
	__u32 dev_major;		/* out */
	__u32 dev_minor;		/* out */
	__u32 vma_name_size;		/* in/out */
	__u32 build_id_size;		/* in/out */
	__u64 vma_name_addr;		/* in */
	__u64 build_id_addr;		/* in */
};
#define PROCMAP_QUERY _IOWR(PROCFS_IOCTL_MAGIC, 17, struct procmap_query)
#endif

#define CHUNK (128 << 10)	/* seq_file fills what it is given: few reads */

static char buf[CHUNK];
static long long vmas, bytes, mms;
static unsigned long checksum;	/* keeps the queries' results used */


static int is_pid(const char *name)
{
	return name[0] >= '0' && name[0] <= '9';
}

/* Lines of @p[0..n) that start with @prefix, given that the byte before
 * @p began a line when @at_bol; updates @at_bol for the next piece. */
static long long count_lines(const char *p, ssize_t n, const char *prefix, int *at_bol)
{
	size_t plen = strlen(prefix);
	const char *end = p + n, *nl;
	long long lines = 0;

	while (p < end) {
		/* A line counts where it starts.  A prefix cut by the end
		 * of a read would not count, but seq_file hands out whole
		 * records (an smaps block, a maps line) per read. */
		if (*at_bol && (size_t)(end - p) >= plen && !memcmp(p, prefix, plen))
			lines++;
		nl = memchr(p, '\n', end - p);
		if (!nl) {
			*at_bol = 0;
			return lines;
		}
		p = nl + 1;
		*at_bol = 1;
	}
	return lines;
}

/* open/read to 0/close @path, counting lines that start with @prefix
 * ("" counts every line); 1 if it could be opened */
static int read_file(const char *path, const char *prefix)
{
	long long before = vmas;
	int fd, at_bol = 1;
	ssize_t n;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;	/* the process exited since readdir() */
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		bytes += n;
		vmas += count_lines(buf, n, prefix, &at_bol);
	}
	close(fd);
	mms += vmas > before;
	return 1;
}

/* Every VMA of the process of @path (its maps) by PROCMAP_QUERY; 1 if
 * the file could be opened, -1 if the kernel has no such ioctl. */
static int query_all(const char *path)
{
	static char name[PATH_MAX];
	struct procmap_query q;
	long long before = vmas;
	__u64 addr = 0;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	for (;;) {
		memset(&q, 0, sizeof(q));
		q.size = sizeof(q);
		q.query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA;
		q.query_addr = addr;
		q.vma_name_addr = (__u64)(unsigned long)name;
		q.vma_name_size = sizeof(name);
		if (ioctl(fd, PROCMAP_QUERY, &q) < 0) {
			int err = errno;

			close(fd);
			if (err == ENOTTY || err == EINVAL)
				return -1;
			mms += vmas > before;
			return 1;	/* ENOENT: no VMA at or after @addr; ESRCH: gone */
		}
		vmas++;
		bytes += q.vma_name_size;	/* the name's length with its NUL, 0 if none */
		checksum += q.vma_start + q.vma_flags + q.inode + (q.vma_name_size ? name[0] : 0);
		addr = q.vma_end;
	}
}

int main(int argc, char **argv)
{
	const char *file = "maps", *prefix = "";
	int opt, query = 0, tasks = 0;
	long long wall0, cpu0;
	struct dirent *de;
	char path[PATH_MAX];
	DIR *d;

	while ((opt = getopt(argc, argv, "sq")) != -1) {
		switch (opt) {
		case 's':
			file = "smaps";
			prefix = "VmFlags:";
			break;
		case 'q':
			query = 1;
			break;
		default:
			fprintf(stderr, "usage: maps_scan [-s | -q]\n");
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
		snprintf(path, sizeof(path), "/proc/%s/%s", de->d_name, file);
		if (query) {
			int r = query_all(path);

			if (r < 0) {
				fprintf(stderr, "maps_scan: PROCMAP_QUERY: not on this kernel (6.11+)\n");
				return 1;
			}
			tasks += r;
		} else {
			tasks += read_file(path, prefix);
		}
	}
	closedir(d);
	printf("tasks %d mms %lld vmas %lld bytes %lld cpu_us %lld wall_us %lld checksum %lu\n",
	       tasks, mms, vmas, bytes, cpu_us() - cpu0, now_us() - wall0, checksum);
	return 0;
}
