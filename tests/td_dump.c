// SPDX-License-Identifier: GPL-2.0
/*
 * td_dump: a task_diag client in C, written only against task_diag/bpf/task_diag.h,
 * libc and <linux/netlink.h>.  It is the proof that /run/task-diag speaks
 * the original protocol to any language: one write() of a request, read()s
 * until one returns 0.
 *
 *   td_dump [-f FILE] [-s all|one|all_thread|children|thread|N] [-p PID]
 *           [-g base,cred,vma,vma_stat,stat|MASK] [-q SEQ] [-b READBUF] [-n REQUESTS] [-m]
 *
 *   -f  the transactional file (default /run/task-diag)
 *   -s  the dump strategy, by name or number (default all)
 *   -p  the pid of ONE, THREAD and CHILDREN
 *   -g  the groups, by name or as a show_flags number (default base)
 *   -q  nlmsg_seq of the request (default 1); request i (from 0) uses SEQ + i
 *   -b  the read() buffer (default 160 KiB, what the original tools used)
 *   -n  how many requests, one after the other, on the same descriptor
 *   -m  print each VMA record too (before its task's line), as a line of
 *       /proc/PID/maps after "vma PID ", and its statistics, if any, in kB
 *       as smaps names them after "vma_stat PID "
 *
 * Prints one line per task (after merging TASK_DIAG_FLAG_CONT messages):
 *   pid=P tgid=T [base.F=V ...] [cred.F=V ...] [vma.count=N] [stat.F=V ...]
 * with the field names of the spec (caps as one 64-bit hex number, comm
 * with bytes outside [!-~] and '\' escaped as \xNN), then after each
 * request's end:
 *   end seq=S tasks=N messages=M reads=R bytes=B
 *
 * Checks the framing of every read(): each holds whole messages only, of
 * type TASK_DIAG_CMD_GET with flags NLM_F_MULTI, the request's nlmsg_seq
 * and nlmsg_pid 0; attributes in the order BASE, CRED, VMA, STAT and only
 * the requested ones, each requested group exactly once per task; a CONT
 * message followed by the same task; no task twice in one dump; the end a
 * read() of 0 outside a CONT run.
 *
 * Exit status: 0 done; 1 a system call failed (stderr:
 * "td_dump: <call>: errno=N NAME (text)"); 2 the answer broke the
 * protocol (stderr: "td_dump: framing: ..."); 64 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../task_diag/bpf/task_diag.h"

static const char *path = "/run/task-diag";

static const char *errno_name(int err)
{
	switch (err) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case EBADF: return "EBADF";
	case EACCES: return "EACCES";
	case EBUSY: return "EBUSY";
	case EINVAL: return "EINVAL";
	case ESPIPE: return "ESPIPE";
	case ENOSYS: return "ENOSYS";
	case EOVERFLOW: return "EOVERFLOW";
	case ENOTCONN: return "ENOTCONN";
	case ECONNABORTED: return "ECONNABORTED";
	default: return "?";
	}
}

static void __attribute__((noreturn)) sys_fail(const char *call)
{
	int err = errno;

	fprintf(stderr, "td_dump: %s: errno=%d %s (%s)\n", call, err, errno_name(err),
		strerror(err));
	exit(1);
}

static void __attribute__((noreturn, format(printf, 1, 2))) framing(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("td_dump: framing: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr, "usage: td_dump [-f FILE] [-s all|one|all_thread|children|thread|N] "
		"[-p PID] [-g base,cred,vma,vma_stat,stat|MASK] [-q SEQ] [-b READBUF] "
		"[-n REQUESTS] [-m]\n");
	exit(64);
}

static unsigned long long number(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || !*s || *end)
		usage();
	return v;
}

static unsigned long long parse_strategy(const char *s)
{
	static const char *names[] = {
		[TASK_DIAG_DUMP_ALL] = "all",
		[TASK_DIAG_DUMP_ONE] = "one",
		[TASK_DIAG_DUMP_ALL_THREAD] = "all_thread",
		[TASK_DIAG_DUMP_CHILDREN] = "children",
		[TASK_DIAG_DUMP_THREAD] = "thread",
	};
	unsigned i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i]))
			return i;
	return number(s);		/* any number: the daemon judges it */
}

static unsigned long long parse_groups(const char *s)
{
	unsigned long long show = 0;
	char *copy, *tok, *save;

	if (*s >= '0' && *s <= '9')
		return number(s);
	copy = strdup(s);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "base"))
			show |= TASK_DIAG_SHOW_BASE;
		else if (!strcmp(tok, "cred"))
			show |= TASK_DIAG_SHOW_CRED;
		else if (!strcmp(tok, "stat"))
			show |= TASK_DIAG_SHOW_STAT;
		else if (!strcmp(tok, "vma"))
			show |= TASK_DIAG_SHOW_VMA;
		else if (!strcmp(tok, "vma_stat"))
			show |= TASK_DIAG_SHOW_VMA | TASK_DIAG_SHOW_VMA_STAT;
		else
			usage();
	}
	free(copy);
	return show;
}

/* --- one task, possibly spread over CONT messages -------------------------- */

struct task {
	__u32 pid, tgid;
	int open;			/* a CONT message announced more of it */
	int have[TASK_DIAG_ATTR_MAX + 1];
	struct task_diag_base base;
	struct task_diag_creds cred;
	struct task_diag_stat stat;
	long long vmas;			/* VMA records, over all its messages */
};

static int print_vmas;			/* -m */

static __u64 caps(struct task_diag_caps c)
{
	return (__u64)c.cap[1] << 32 | c.cap[0];
}

static void print_comm(const char *comm)
{
	int i;

	for (i = 0; i < TASK_DIAG_COMM_LEN && comm[i]; i++) {
		unsigned char c = comm[i];

		if (c > ' ' && c <= '~' && c != '\\')
			putchar(c);
		else
			printf("\\x%02x", c);
	}
}

static void print_task(const struct task *t)
{
	printf("pid=%u tgid=%u", t->pid, t->tgid);
	if (t->have[TASK_DIAG_BASE]) {
		const struct task_diag_base *b = &t->base;

		printf(" base.tgid=%u base.pid=%u base.ppid=%u base.tpid=%u base.sid=%u"
		       " base.pgid=%u base.state=%u base.comm=",
		       b->tgid, b->pid, b->ppid, b->tpid, b->sid, b->pgid, b->state);
		print_comm(b->comm);
	}
	if (t->have[TASK_DIAG_VMA] || t->vmas)
		printf(" vma.count=%lld", t->vmas);
	if (t->have[TASK_DIAG_CRED]) {
		const struct task_diag_creds *c = &t->cred;

		printf(" cred.cap_inheritable=0x%llx cred.cap_permitted=0x%llx"
		       " cred.cap_effective=0x%llx cred.cap_bset=0x%llx",
		       (unsigned long long)caps(c->cap_inheritable),
		       (unsigned long long)caps(c->cap_permitted),
		       (unsigned long long)caps(c->cap_effective),
		       (unsigned long long)caps(c->cap_bset));
		printf(" cred.uid=%u cred.euid=%u cred.suid=%u cred.fsuid=%u"
		       " cred.gid=%u cred.egid=%u cred.sgid=%u cred.fsgid=%u",
		       c->uid, c->euid, c->suid, c->fsuid, c->gid, c->egid, c->sgid, c->fsgid);
	}
	if (t->have[TASK_DIAG_STAT]) {
		const struct task_diag_stat *s = &t->stat;

		printf(" stat.minflt=%llu stat.cminflt=%llu stat.majflt=%llu stat.cmajflt=%llu"
		       " stat.utime=%llu stat.stime=%llu stat.cutime=%llu stat.cstime=%llu"
		       " stat.threads=%u",
		       (unsigned long long)s->minflt, (unsigned long long)s->cminflt,
		       (unsigned long long)s->majflt, (unsigned long long)s->cmajflt,
		       (unsigned long long)s->utime, (unsigned long long)s->stime,
		       (unsigned long long)s->cutime, (unsigned long long)s->cstime, s->threads);
	}
	putchar('\n');
}

/* Position of an attribute type in the fill order BASE, CRED, VMA, STAT,
 * then the extension groups; -1 for a type this client does not know. */
static int order_of(int type)
{
	switch (type) {
	case TASK_DIAG_BASE: return 0;
	case TASK_DIAG_CRED: return 1;
	case TASK_DIAG_VMA: return 2;
	case TASK_DIAG_STAT: return 3;
	case TASK_DIAG_STATM: return 4;
	case TASK_DIAG_CMDLINE: return 5;
	default: return -1;
	}
}

/* --- the pids of one dump, to find a task shown twice as soon as it is -----
 * (a dump that started over would otherwise run for ever) */

static __u32 *pids;		/* open addressing; pid 0 (idle tasks) kept apart */
static size_t npids, cap_pids;
static int seen_zero;

static int insert(__u32 pid)
{
	size_t i;

	if (!pid) {
		if (seen_zero)
			return 0;
		seen_zero = 1;
		npids++;
		return 1;
	}
	for (i = (pid * 2654435761u) & (cap_pids - 1); pids[i]; i = (i + 1) & (cap_pids - 1))
		if (pids[i] == pid)
			return 0;
	pids[i] = pid;
	npids++;
	return 1;
}

static void forget_all(void)
{
	if (pids)
		memset(pids, 0, cap_pids * sizeof(*pids));
	npids = 0;
	seen_zero = 0;
}

/* 1 the first time @pid is given in this dump, 0 after */
static int remember(__u32 pid)
{
	if (2 * (npids + 1) > cap_pids) {
		__u32 *old = pids;
		size_t i, old_cap = cap_pids, n = npids;
		int zero = seen_zero;

		cap_pids = cap_pids ? 2 * cap_pids : 4096;
		pids = calloc(cap_pids, sizeof(*pids));
		if (!pids)
			sys_fail("calloc");
		npids = 0;
		seen_zero = 0;
		for (i = 0; i < old_cap; i++)
			if (old[i])
				insert(old[i]);
		npids = n;
		seen_zero = zero;
		free(old);
	}
	return insert(pid);
}

/* --- one message ----------------------------------------------------------- */

/* The records of one VMA attribute: checked, counted, printed with -m. */
static void vma_records(struct task *t, char *data, size_t len, __u64 show)
{
	char *p = data, *end = data + len;

	while (p < end) {
		struct task_diag_vma v;
		const char *name;

		if ((size_t)(end - p) < sizeof(v))
			framing("task %u: a VMA record cut short", t->pid);
		memcpy(&v, p, sizeof(v));
		if (v.vma_len < sizeof(v) || v.vma_len > end - p ||
		    (v.name_len && (v.name_off < sizeof(v) ||
				    v.name_off + v.name_len > v.vma_len ||
				    p[v.name_off + v.name_len - 1])) ||
		    (v.stat_len && (v.stat_off < sizeof(v) ||
				    v.stat_off + v.stat_len > v.vma_len)))
			framing("task %u: a bad VMA record", t->pid);
		if (!(show & TASK_DIAG_SHOW_VMA_STAT) != !v.stat_len)
			framing("task %u: VMA statistics %s", t->pid,
				v.stat_len ? "not requested, sent" : "requested, not sent");
		t->vmas++;
		if (print_vmas) {
			name = v.name_len ? p + v.name_off : "";
			printf("vma %u %llx-%llx %c%c%c%c %08llx %02x:%02x %llu%s%s\n", t->pid,
			       (unsigned long long)v.start, (unsigned long long)v.end,
			       v.vm_flags & TASK_DIAG_VMA_F_READ ? 'r' : '-',
			       v.vm_flags & TASK_DIAG_VMA_F_WRITE ? 'w' : '-',
			       v.vm_flags & TASK_DIAG_VMA_F_EXEC ? 'x' : '-',
			       v.vm_flags & TASK_DIAG_VMA_F_MAYSHARE ? 's' : 'p',
			       (unsigned long long)v.pgoff, v.major, v.minor,
			       (unsigned long long)v.inode, *name ? " " : "", name);
			if (v.stat_len >= sizeof(struct task_diag_vma_stat)) {
				struct task_diag_vma_stat st;

				memcpy(&st, p + v.stat_off, sizeof(st));
				printf("vma_stat %u Rss=%llu Pss=%llu Shared_Clean=%llu "
				       "Shared_Dirty=%llu Private_Clean=%llu Private_Dirty=%llu "
				       "Referenced=%llu Anonymous=%llu AnonHugePages=%llu Swap=%llu\n",
				       t->pid, (unsigned long long)st.resident >> 10,
				       (unsigned long long)st.pss >> 22,
				       (unsigned long long)st.shared_clean >> 10,
				       (unsigned long long)st.shared_dirty >> 10,
				       (unsigned long long)st.private_clean >> 10,
				       (unsigned long long)st.private_dirty >> 10,
				       (unsigned long long)st.referenced >> 10,
				       (unsigned long long)st.anonymous >> 10,
				       (unsigned long long)st.anonymous_thp >> 10,
				       (unsigned long long)st.swap >> 10);
			}
		}
		p += v.vma_len;
	}
}

static void message(struct task *t, struct nlmsghdr *hdr, __u32 seq, __u64 show,
		    long long at)
{
	struct task_diag_msg msg;
	char *pos, *end = (char *)hdr + hdr->nlmsg_len;
	int last = -1;

	if (hdr->nlmsg_type != TASK_DIAG_CMD_GET)
		framing("message at byte %lld: nlmsg_type 0x%x, not 0x%x", at,
			hdr->nlmsg_type, TASK_DIAG_CMD_GET);
	if (hdr->nlmsg_flags != NLM_F_MULTI)
		framing("message at byte %lld: nlmsg_flags 0x%x, not NLM_F_MULTI", at,
			hdr->nlmsg_flags);
	if (hdr->nlmsg_seq != seq)
		framing("message at byte %lld: nlmsg_seq %u, the request's is %u", at,
			hdr->nlmsg_seq, seq);
	if (hdr->nlmsg_pid != 0)
		framing("message at byte %lld: nlmsg_pid %u, not 0", at, hdr->nlmsg_pid);
	memcpy(&msg, NLMSG_DATA(hdr), sizeof(msg));
	if (msg.flags & ~TASK_DIAG_FLAG_CONT)
		framing("message at byte %lld: unknown task_diag_msg flags 0x%x", at, msg.flags);
	if (t->open) {
		if (msg.pid != t->pid || msg.tgid != t->tgid)
			framing("message at byte %lld: task %u/%u after a CONT of task %u/%u", at,
				msg.pid, msg.tgid, t->pid, t->tgid);
	} else {
		memset(t, 0, sizeof(*t));
		t->pid = msg.pid;
		t->tgid = msg.tgid;
	}

	pos = (char *)NLMSG_DATA(hdr) + sizeof(msg);
	while (pos < end) {
		struct nlattr *na = (struct nlattr *)pos;
		int type, order;
		size_t len;
		void *data = pos + NLA_HDRLEN;

		if (end - pos < NLA_HDRLEN || na->nla_len < NLA_HDRLEN || na->nla_len > end - pos)
			framing("message at byte %lld: bad attribute at +%ld", at,
				(long)(pos - (char *)hdr));
		type = na->nla_type & NLA_TYPE_MASK;
		len = na->nla_len - NLA_HDRLEN;
		order = order_of(type);
		if (order < 0 || !(show & (1ULL << type)))
			framing("message at byte %lld: attribute %d was not requested", at, type);
		if (order < last)
			framing("message at byte %lld: attribute %d out of order", at, type);
		last = order;
		if (type != TASK_DIAG_VMA && t->have[type])
			framing("task %u: attribute %d twice", t->pid, type);
		t->have[type]++;
		switch (type) {
		case TASK_DIAG_BASE:
			if (len < sizeof(t->base))
				framing("task %u: BASE of %zu bytes", t->pid, len);
			memcpy(&t->base, data, sizeof(t->base));
			break;
		case TASK_DIAG_CRED:
			if (len < sizeof(t->cred))
				framing("task %u: CRED of %zu bytes", t->pid, len);
			memcpy(&t->cred, data, sizeof(t->cred));
			break;
		case TASK_DIAG_STAT:
			if (len < sizeof(t->stat))
				framing("task %u: STAT of %zu bytes", t->pid, len);
			memcpy(&t->stat, data, sizeof(t->stat));
			break;
		case TASK_DIAG_VMA:
			vma_records(t, data, len, show);
			break;
		}
		pos += NLA_ALIGN(na->nla_len);
	}

	t->open = msg.flags & TASK_DIAG_FLAG_CONT;
	if (!t->open) {
		static const int groups[] = { TASK_DIAG_BASE, TASK_DIAG_CRED, TASK_DIAG_STAT };
		unsigned g;

		for (g = 0; g < sizeof(groups) / sizeof(groups[0]); g++)
			if ((show & (1ULL << groups[g])) && !t->have[groups[g]])
				framing("task %u: group %d requested, not sent", t->pid, groups[g]);
		if (!remember(t->pid))
			framing("task %u twice in one dump", t->pid);
		print_task(t);
	}
}

/* --- one request ------------------------------------------------------------ */

static void dump(int fd, __u64 strategy, __u32 pid, __u64 show, __u32 seq, char *buf,
		 size_t bufsize)
{
	struct {
		struct nlmsghdr hdr;
		struct task_diag_pid req;
		char pad[NLA_HDRLEN];		/* the original tools' 44 bytes */
	} __attribute__((packed)) request;
	long long messages = 0, reads = 0, bytes = 0;
	struct task t = { 0 };
	ssize_t n;

	memset(&request, 0, sizeof(request));
	request.hdr.nlmsg_len = sizeof(request);
	request.hdr.nlmsg_type = TASK_DIAG_CMD_GET;
	request.hdr.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	request.hdr.nlmsg_seq = seq;
	request.req.show_flags = show;
	request.req.dump_strategy = strategy;
	request.req.pid = pid;
	n = write(fd, &request, sizeof(request));
	if (n < 0)
		sys_fail("write");
	if (n != sizeof(request))
		framing("write took %zd of %zu bytes", n, sizeof(request));

	forget_all();
	for (;;) {
		char *p, *end;

		n = read(fd, buf, bufsize);
		if (n < 0)
			sys_fail("read");
		if (n == 0)
			break;
		if ((size_t)n > bufsize)
			framing("read %zd bytes into %zu", n, bufsize);
		reads++;
		p = buf;
		end = buf + n;
		/* Every read() returns whole messages (spec section 2). */
		while (p < end) {
			struct nlmsghdr *hdr = (struct nlmsghdr *)p;
			long long at = bytes + (p - buf);

			if (end - p < NLMSG_HDRLEN + (long)sizeof(struct task_diag_msg) ||
			    hdr->nlmsg_len < NLMSG_HDRLEN + sizeof(struct task_diag_msg) ||
			    hdr->nlmsg_len > (size_t)(end - p))
				framing("read %lld of %zd bytes ends inside a message (at byte %lld)",
					reads, n, at);
			message(&t, hdr, seq, show, at);
			messages++;
			if ((size_t)(end - p) < NLMSG_ALIGN(hdr->nlmsg_len))
				framing("read %lld ends in the padding of a message", reads);
			p += NLMSG_ALIGN(hdr->nlmsg_len);
		}
		bytes += n;
	}
	if (t.open)
		framing("the dump ended inside task %u (TASK_DIAG_FLAG_CONT)", t.pid);
	printf("end seq=%u tasks=%zu messages=%lld reads=%lld bytes=%lld\n", seq, npids,
	       messages, reads, bytes);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	unsigned long long strategy = TASK_DIAG_DUMP_ALL, show = TASK_DIAG_SHOW_BASE;
	unsigned long long pid = 0, seq = 1, bufsize = 160 << 10, requests = 1, i;
	char *buf;
	int opt, fd;

	while ((opt = getopt(argc, argv, "f:s:p:g:q:b:n:m")) != -1) {
		switch (opt) {
		case 'f': path = optarg; break;
		case 's': strategy = parse_strategy(optarg); break;
		case 'p': pid = number(optarg); break;
		case 'g': show = parse_groups(optarg); break;
		case 'q': seq = number(optarg); break;
		case 'b': bufsize = number(optarg); break;
		case 'n': requests = number(optarg); break;
		case 'm': print_vmas = 1; break;
		default: usage();
		}
	}
	if (optind != argc || !bufsize || pid > UINT32_MAX || seq > UINT32_MAX)
		usage();
	buf = malloc(bufsize);
	if (!buf)
		sys_fail("malloc");
	fd = open(path, O_RDWR);
	if (fd < 0)
		sys_fail("open");
	for (i = 0; i < requests; i++)
		dump(fd, strategy, pid, show, (__u32)(seq + i), buf, bufsize);
	if (close(fd))
		sys_fail("close");
	free(buf);
	free(pids);
	return 0;
}
