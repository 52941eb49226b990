// SPDX-License-Identifier: GPL-2.0
/*
 * vma_read [SHOW [PIN_DIR]]: a C client of the pinned path, as a root tool
 * written against task_diag/bpf/task_diag.h and task_diag/bpf/td_iter.h would be: it stores a
 * {DUMP_ALL, SHOW} request (default BASE|VMA) for its thread in the pinned
 * requests map, reads the pinned iterator to the end, and runs the
 * continuation passes of a task whose VMAs did not fit a program run
 * (td_iter.h, TD_CONT_*), as task_diag/bpf_backend.py does.  Counts tasks and VMA
 * records; prints "tasks N vmas V bytes B cpu_us C wall_us W".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "clock.h"
#include "../task_diag/bpf/task_diag.h"
#include "../task_diag/bpf/td_iter.h"

static char buf[1 << 16];		/* a read gives at most the iterator's 32 KiB */
static long long tasks, vmas, bytes;

static void count(const char *p, ssize_t n)
{
	const char *end = p + n;

	bytes += n;
	while (p < end) {
		const struct nlmsghdr *h = (const void *)p;
		const struct task_diag_msg *m = NLMSG_DATA(h);
		const char *a = (const char *)(m + 1), *ae = p + h->nlmsg_len;

		if (h->nlmsg_len < NLMSG_HDRLEN + sizeof(*m) || h->nlmsg_len > end - p) {
			fprintf(stderr, "vma_read: bad message\n");
			exit(1);
		}
		while (a + NLA_HDRLEN <= ae) {
			const struct nlattr *na = (const void *)a;

			if (na->nla_len < NLA_HDRLEN)
				break;
			if (na->nla_type == TASK_DIAG_VMA)
				for (const char *r = a + NLA_HDRLEN; r + sizeof(struct task_diag_vma) <=
				     a + na->nla_len; r += ((const struct task_diag_vma *)r)->vma_len) {
					vmas++;
					if (!((const struct task_diag_vma *)r)->vma_len)
						break;
				}
			a += NLA_ALIGN(na->nla_len);
		}
		if (!(m->flags & TASK_DIAG_FLAG_CONT))
			tasks++;
		p += NLMSG_ALIGN(h->nlmsg_len);
	}
}

/* the iterator to its end; -1 on error */
static int read_all(int fd)
{
	ssize_t n;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EAGAIN)
			continue;		/* a task's mm was busy: shown again */
		if (n <= 0)
			return n;
		count(buf, n);
	}
}

/* field 22 of /proc/thread-self/stat: the request's reader_start */
static unsigned long long start_ticks(void)
{
	char s[4096], *p;
	int fd = open("/proc/thread-self/stat", O_RDONLY), i;
	ssize_t n = read(fd, s, sizeof(s) - 1);

	close(fd);
	s[n > 0 ? n : 0] = 0;
	p = strrchr(s, ')') + 2;
	for (i = 0; i < 19; i++)
		p = strchr(p, ' ') + 1;
	return strtoull(p, NULL, 10);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 2 ? argv[2] : "/sys/fs/bpf/task_diag";
	struct td_request req = {0}, got;
	char path[512];
	long long wall0, cpu0;
	int map, link, prog, fd;
	struct stat st;
	ssize_t n;
	__u64 key;

	req.show_flags = argc > 1 ? strtoull(argv[1], NULL, 0) :
			 (1ULL << TASK_DIAG_BASE) | (1ULL << TASK_DIAG_VMA);
	req.dump_strategy = TASK_DIAG_DUMP_ALL;
	req.reader_start = start_ticks();
	stat("/proc/thread-self/ns/pid", &st);
	key = (__u64)st.st_ino << 32 | (__u32)gettid();
	snprintf(path, sizeof(path), "%s/requests", dir);
	map = bpf_obj_get(path);
	snprintf(path, sizeof(path), "%s/all", dir);
	link = bpf_obj_get(path);
	snprintf(path, sizeof(path), "%s/prog_task", dir);
	prog = bpf_obj_get(path);
	if (map < 0 || link < 0 || prog < 0) {
		perror("bpf_obj_get");
		return 1;
	}
	wall0 = now_us();
	cpu0 = cpu_us();
	if (bpf_map_update_elem(map, &key, &req, 0)) {
		perror("storing the request");
		return 1;
	}
	fd = bpf_iter_create(link);
	if (fd < 0) {
		perror("bpf_iter_create");
		goto fail;
	}
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0)
			break;
		count(buf, n);
		if (bpf_map_lookup_elem(map, &key, &got) || got.cont_state != TD_CONT_PENDING)
			continue;
		/* the rest of that task: passes over it alone, each going on
		 * where the last stopped */
		while (got.cont_state == TD_CONT_PENDING || got.cont_state == TD_CONT_MORE) {
			union bpf_iter_link_info li = { .task.tid = got.cont_pid };
			LIBBPF_OPTS(bpf_link_create_opts, o, .iter_info = &li,
				    .iter_info_len = sizeof(li));
			int l = bpf_link_create(prog, 0, BPF_TRACE_ITER, &o), f;
			__u64 start = got.cont_start;

			if (l < 0) {
				perror("bpf_link_create");
				goto fail;
			}
			got.cont_state = TD_CONT_RESUME;
			bpf_map_update_elem(map, &key, &got, 0);
			f = bpf_iter_create(l);
			close(l);
			if (f < 0 || read_all(f) < 0) {
				perror("continuation");
				goto fail;
			}
			close(f);
			if (bpf_map_lookup_elem(map, &key, &got) ||
			    (got.cont_state == TD_CONT_MORE && got.cont_start <= start))
				break;		/* gone, or no progress */
		}
		bpf_map_update_elem(map, &key, &req, 0);	/* cont_state NONE again */
	}
	if (n < 0) {
		perror("read");
		goto fail;
	}
	close(fd);
	bpf_map_delete_elem(map, &key);
	printf("tasks %lld vmas %lld bytes %lld cpu_us %lld wall_us %lld\n",
	       tasks, vmas, bytes, cpu_us() - cpu0, now_us() - wall0);
	return 0;
fail:
	bpf_map_delete_elem(map, &key);		/* leave no request behind */
	return 1;
}
