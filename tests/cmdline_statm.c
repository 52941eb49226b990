/*
 * A process of known command line, memory and scheduling, for
 * tests/test_cmdline_statm.py.  What it does is read from the environment
 * (its argv is the object of the tests, so it carries no options):
 *
 *   TD_MODE   plain (default): nothing more
 *             empty: execve() itself with argv = {NULL} and TD_MODE=plain
 *             title: rewrite the argument area with the bytes of stdin
 *                    (read to EOF) from argv[0] on, running past arg_end
 *                    into the environment area where the title is longer;
 *                    TD_TITLE_NUL=0: no NUL after the title
 *             mem:   warm up, read /proc/self/statm, map TD_PAGES private
 *                    anonymous pages and TD_SHARED pages of a memfd
 *                    MAP_SHARED, write to every page, read statm again
 *             tty:   setsid(), then stdin (a pty slave) becomes the
 *                    controlling terminal (TIOCSCTTY)
 *   TD_SCHED   what the main thread applies to itself (see sched_apply)
 *   TD_THREADS threads to start, ';'-separated, each with the TD_SCHED
 *              syntax ("-": nothing); each applies its own to its tid
 *   TD_VMAS    that many one-page mappings more, each its own VMA
 *   TD_STOP=1  raise(SIGSTOP) once reported
 *
 * Then one line on stdout: "ready pid=P tids=T1,T2,... [before=...
 * after=...]", and it sleeps forever.  Any failure: a message on stderr,
 * exit 2 (no line).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

extern char **environ;

#define MAX_THREADS 8

static char out[4096];
static size_t out_len;
static pid_t tids[MAX_THREADS + 1];
static pthread_barrier_t barrier;

static void die(const char *what)
{
	fprintf(stderr, "cmdline_statm: %s: %s\n", what, strerror(errno));
	_exit(2);
}

static void say(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out + out_len, sizeof(out) - out_len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(out) - out_len) {
		errno = ENOSPC;
		die("report");
	}
	out_len += n;
}

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* "nice:N", "fifo:P", "rr:P", "batch:N" (SCHED_BATCH, nice N), "idle",
 * "-" or "": applied to the calling thread, by its tid. */
static void sched_apply(const char *spec)
{
	struct sched_param sp = { 0 };
	const char *colon;
	int value = 0, policy = -1;

	if (!spec || !*spec || !strcmp(spec, "-"))
		return;
	colon = strchr(spec, ':');
	if (colon)
		value = atoi(colon + 1);
	if (!strncmp(spec, "nice", 4)) {
		policy = -1;
	} else if (!strncmp(spec, "fifo", 4)) {
		policy = SCHED_FIFO;
		sp.sched_priority = value;
	} else if (!strncmp(spec, "rr", 2)) {
		policy = SCHED_RR;
		sp.sched_priority = value;
	} else if (!strncmp(spec, "batch", 5)) {
		policy = SCHED_BATCH;
	} else if (!strncmp(spec, "idle", 4)) {
		policy = SCHED_IDLE;
	} else {
		errno = EINVAL;
		die(spec);
	}
	if (policy >= 0 && sched_setscheduler(gettid_(), policy, &sp))
		die("sched_setscheduler");
	if ((policy < 0 || policy == SCHED_BATCH) &&
	    setpriority(PRIO_PROCESS, gettid_(), value))
		die("setpriority");
}

static void *thread_main(void *arg)
{
	const char *spec = arg;
	int i = 0;

	sched_apply(spec);
	while (tids[i])
		i++;	/* the barrier orders the threads: one at a time */
	tids[i] = gettid_();
	pthread_barrier_wait(&barrier);
	pthread_barrier_wait(&barrier);
	for (;;)
		pause();
	return NULL;
}

static void start_threads(char *list)
{
	char *specs[MAX_THREADS];
	int n = 0;
	pthread_t th;

	for (char *s = strtok(list, ";"); s; s = strtok(NULL, ";")) {
		if (n == MAX_THREADS) {
			errno = E2BIG;
			die("TD_THREADS");
		}
		specs[n++] = strdup(s);
	}
	tids[0] = gettid_();
	for (int i = 0; i < n; i++) {
		if (pthread_barrier_init(&barrier, NULL, 2))
			die("pthread_barrier_init");
		if (pthread_create(&th, NULL, thread_main, specs[i]))
			die("pthread_create");
		pthread_barrier_wait(&barrier);		/* its tid is in */
		pthread_barrier_wait(&barrier);		/* it leaves the barrier */
		pthread_barrier_destroy(&barrier);
	}
}

/* One read() of /proc/self/statm into @buf: no stdio, no allocation. */
static void read_statm(char *buf, size_t size)
{
	int fd = open("/proc/self/statm", O_RDONLY);
	ssize_t n;

	if (fd < 0)
		die("open statm");
	n = read(fd, buf, size - 1);
	if (n <= 0)
		die("read statm");
	buf[n] = 0;
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = 0;
	close(fd);
}

static void map_and_touch(long pages, long shared, long page)
{
	char *p;
	int fd;

	if (pages) {
		p = mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
		if (p == MAP_FAILED)
			die("mmap anonymous");
		for (long i = 0; i < pages; i++)
			p[i * page] = 1;
	}
	if (shared) {
		fd = memfd_create("td-shared", 0);
		if (fd < 0)
			die("memfd_create");
		if (ftruncate(fd, shared * page))
			die("ftruncate");
		p = mmap(NULL, shared * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			die("mmap memfd");
		close(fd);
		for (long i = 0; i < shared; i++)
			p[i * page] = 1;
	}
}

static void mem(void)
{
	static char before[256], after[256], warm[256];
	long page = sysconf(_SC_PAGESIZE);
	long pages = atol(getenv("TD_PAGES") ? getenv("TD_PAGES") : "0");
	long shared = atol(getenv("TD_SHARED") ? getenv("TD_SHARED") : "0");
	char *p;

	/* Warm up: every library page the measured steps run is mapped by
	 * now, so that the two reads differ by the mappings alone. */
	read_statm(warm, sizeof(warm));
	map_and_touch(1, 1, page);
	p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || munmap(p, page))
		die("warm-up");
	read_statm(before, sizeof(before));
	map_and_touch(pages, shared, page);
	read_statm(after, sizeof(after));
	for (char *c = before; *c; c++)
		if (*c == ' ')
			*c = ',';
	for (char *c = after; *c; c++)
		if (*c == ' ')
			*c = ',';
	say(" before=%s after=%s", before, after);
}

/* @n one-page anonymous mappings, read-only and writable in turn: the
 * kernel merges none with its neighbour. */
static void vmas(long n)
{
	long page = sysconf(_SC_PAGESIZE);

	for (long i = 0; i < n; i++)
		if (mmap(NULL, page, i % 2 ? PROT_READ : PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
			die("mmap");
}

static void title(char **argv, int argc)
{
	static char buf[1 << 16];
	const char *nul = getenv("TD_TITLE_NUL");
	int with_nul = !nul || strcmp(nul, "0");
	char *start = argv[0], *arg_end, *env_end;
	size_t len = 0;
	ssize_t n;
	int i;

	arg_end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
	env_end = arg_end;
	for (i = 0; environ[i]; i++)
		env_end = environ[i] + strlen(environ[i]) + 1;
	while ((n = read(0, buf + len, sizeof(buf) - len)) > 0)
		len += n;
	if (n < 0)
		die("read title");
	if (len + with_nul > (size_t)(env_end - start)) {
		errno = E2BIG;
		die("title longer than the argument and environment areas");
	}
	/* from here on environ's strings are gone: nothing reads them */
	memcpy(start, buf, len);
	if (with_nul)
		start[len] = 0;
	say(" arg_start=%lu arg_end=%lu env_end=%lu", (unsigned long)start,
	    (unsigned long)arg_end, (unsigned long)env_end);
}

int main(int argc, char **argv)
{
	const char *mode = getenv("TD_MODE") ? getenv("TD_MODE") : "plain";
	const char *sched = getenv("TD_SCHED");
	const char *threads = getenv("TD_THREADS");
	int stop = getenv("TD_STOP") && !strcmp(getenv("TD_STOP"), "1");
	char *list = threads ? strdup(threads) : NULL;

	if (!strcmp(mode, "empty")) {
		char *none[] = { NULL };

		if (setenv("TD_MODE", "plain", 1))
			die("setenv");
		execve("/proc/self/exe", none, environ);
		die("execve");
	}
	if (argc < 1) {		/* kernels before 5.18 */
		errno = EINVAL;
		die("argc 0");
	}
	sched = sched ? strdup(sched) : NULL;
	if (!strcmp(mode, "tty")) {
		if (setsid() < 0)
			die("setsid");
		if (ioctl(0, TIOCSCTTY, 0))
			die("TIOCSCTTY");
	}
	sched_apply(sched);
	if (getenv("TD_VMAS"))
		vmas(atol(getenv("TD_VMAS")));
	tids[0] = gettid_();
	if (list)
		start_threads(list);
	say("ready pid=%d tids=%d", getpid(), tids[0]);
	for (int i = 1; i <= MAX_THREADS && tids[i]; i++)
		say(",%d", tids[i]);
	if (!strcmp(mode, "mem"))
		mem();
	else if (!strcmp(mode, "title"))
		title(argv, argc);
	else if (strcmp(mode, "plain") && strcmp(mode, "tty")) {
		errno = EINVAL;
		die(mode);
	}
	say("\n");
	if (write(1, out, out_len) != (ssize_t)out_len)
		die("write");
	if (stop)
		raise(SIGSTOP);
	for (;;)
		pause();
}
