// SPDX-License-Identifier: GPL-2.0
/*
 * iter_read [-p] [-v] [-w] [PATH]: the C reader of a pinned task_diag iterator, i.e. a
 * DUMP_ALL through the pinned file alone, with no request written.  Opens
 * PATH (default /sys/fs/bpf/task_diag/all; .../all_threads for every
 * thread), read()s 160 KiB at a time until 0 and walks the netlink
 * messages by nlmsg_len.
 *   -p  also pull pid, ppid and comm out of each BASE attribute, the work
 *       proc_scan -p does on /proc/PID/stat
 *   -v  also count the records of each VMA attribute (for an iterator that
 *       writes VMAs: bench/vma_floor.bpf.c); adds "vmas V" to the line
 *   -w  a transaction on the transactional file instead (PATH, e.g.
 *       /run/task-diag): open it read-write and write one request
 *       {DUMP_ALL, SHOW_BASE} (the original tools' 44 bytes) before reading
 *
 * Prints one line: "tasks N messages M bytes B cpu_us C wall_us W checksum
 * S": the cost of the dump alone (process start-up excluded), C being user
 * + system time.  Exits 1 on a malformed stream.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#include "../task_diag/bpf/task_diag.h"

#define CHUNK (160 << 10)

static char buf[CHUNK];


/* pid + ppid + comm[0] of the BASE attribute of @msg, 0 if it has none */
static unsigned long parse_base(struct nlmsghdr *hdr)
{
	char *pos = (char *)NLMSG_DATA(hdr) + sizeof(struct task_diag_msg);
	char *end = (char *)hdr + hdr->nlmsg_len;
	struct task_diag_base base;
	char comm[TASK_DIAG_COMM_LEN];

	while (pos + NLA_HDRLEN <= end) {
		struct nlattr *na = (struct nlattr *)pos;

		if (na->nla_len < NLA_HDRLEN || pos + na->nla_len > end)
			break;
		if ((na->nla_type & NLA_TYPE_MASK) == TASK_DIAG_BASE &&
		    na->nla_len >= NLA_HDRLEN + sizeof(base)) {
			memcpy(&base, pos + NLA_HDRLEN, sizeof(base));
			memcpy(comm, base.comm, sizeof(comm));
			comm[sizeof(comm) - 1] = '\0';
			return base.pid + base.ppid + comm[0];
		}
		pos += NLA_ALIGN(na->nla_len);
	}
	return 0;
}

/* the records of the VMA attributes of @msg */
static long count_vmas(struct nlmsghdr *hdr)
{
	char *pos = (char *)NLMSG_DATA(hdr) + sizeof(struct task_diag_msg);
	char *end = (char *)hdr + hdr->nlmsg_len;
	long n = 0;

	while (pos + NLA_HDRLEN <= end) {
		struct nlattr *na = (struct nlattr *)pos;
		char *rec, *rend = pos + na->nla_len;

		if (na->nla_len < NLA_HDRLEN || rend > end)
			break;
		if ((na->nla_type & NLA_TYPE_MASK) == TASK_DIAG_VMA) {
			for (rec = pos + NLA_HDRLEN; rec + sizeof(struct task_diag_vma) <= rend; n++) {
				struct task_diag_vma v;

				memcpy(&v, rec, sizeof(v));
				if (v.vma_len < sizeof(v))
					break;
				rec += v.vma_len;
			}
		}
		pos += NLA_ALIGN(na->nla_len);
	}
	return n;
}

int main(int argc, char **argv)
{
	const char *path = "/sys/fs/bpf/task_diag/all";
	long long tasks = 0, messages = 0, bytes = 0, vmas = 0, wall0, cpu0;
	unsigned long checksum = 0;
	int opt, parse = 0, with_vmas = 0, transaction = 0, fd;
	ssize_t n;

	while ((opt = getopt(argc, argv, "pvw")) != -1) {
		if (opt == 'p') {
			parse = 1;
		} else if (opt == 'v') {
			with_vmas = 1;
		} else if (opt == 'w') {
			transaction = 1;
		} else {
			fprintf(stderr, "usage: iter_read [-p] [-v] [-w] [PATH]\n");
			return 2;
		}
	}
	if (optind < argc)
		path = argv[optind];

	wall0 = now_us();
	cpu0 = cpu_us();
	fd = open(path, transaction ? O_RDWR : O_RDONLY);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	if (transaction) {
		struct {
			struct nlmsghdr hdr;
			struct task_diag_pid req;
			char pad[NLA_HDRLEN];
		} __attribute__((packed)) request = {
			.hdr = { .nlmsg_len = sizeof(request) },
			.req = { .show_flags = TASK_DIAG_SHOW_BASE,
				 .dump_strategy = TASK_DIAG_DUMP_ALL },
		};

		if (write(fd, &request, sizeof(request)) != sizeof(request)) {
			perror(path);
			return 1;
		}
	}
	/* EAGAIN: the program asked for the read's first task to be shown
	 * again (a preemptible kernel took its CPU mid-message, or its mm
	 * was busy): read again. */
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EAGAIN)) {
		char *pos = buf, *end = buf + (n > 0 ? n : 0);

		if (n < 0)
			continue;
		bytes += n;
		/* Every read() returns whole messages (spec section 2). */
		while (pos < end) {
			struct nlmsghdr *hdr = (struct nlmsghdr *)pos;
			struct task_diag_msg *msg = NLMSG_DATA(hdr);

			if (end - pos < NLMSG_HDRLEN + (long)sizeof(*msg) ||
			    hdr->nlmsg_len < NLMSG_HDRLEN + sizeof(*msg) ||
			    hdr->nlmsg_len > end - pos) {
				fprintf(stderr, "%s: bad message at byte %lld\n",
					path, bytes - (end - pos));
				return 1;
			}
			messages++;
			if (!(msg->flags & TASK_DIAG_FLAG_CONT))
				tasks++;
			if (parse)
				checksum += parse_base(hdr);
			if (with_vmas)
				vmas += count_vmas(hdr);
			pos += NLMSG_ALIGN(hdr->nlmsg_len);
		}
	}
	if (n < 0) {
		perror(path);
		return 1;
	}
	close(fd);
	printf("tasks %lld messages %lld bytes %lld cpu_us %lld wall_us %lld checksum %lu",
	       tasks, messages, bytes, cpu_us() - cpu0, now_us() - wall0, checksum);
	if (with_vmas)
		printf(" vmas %lld", vmas);
	printf("\n");
	return 0;
}
