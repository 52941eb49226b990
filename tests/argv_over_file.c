/*
 * Maps a file over the whole pages of its own argument area, reads them
 * (so that they are present, as a page the direct read might take), then
 * stops: /proc/PID/cmdline reads only anonymous memory (FOLL_ANON), so it
 * shows the arguments up to the file, and CMDLINE must show the same,
 * never the file's bytes.  With ARGV_OVER=cow, a private writable map of
 * the file, written (anonymous pages, a file's VMA); with
 * ARGV_OVER=wronly, anonymous memory mapped write-only, written: /proc
 * stops there too.  argv_over_file FILE ARG... (at least two pages of them)
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	unsigned long page = sysconf(_SC_PAGESIZE);
	/* only whole pages inside the argument strings: the pages at either
	 * end may hold the stack's pointers and frames, which we still use */
	unsigned long start = ((unsigned long)argv[1] + page - 1) & ~(page - 1);
	unsigned long end = (unsigned long)(argv[argc - 1] + strlen(argv[argc - 1]) + 1) &
			    ~(page - 1);
	const char *mode = getenv("ARGV_OVER");
	int fd = open(argv[1], O_RDONLY);
	void *p;

	if (argc < 2 || fd < 0)
		return 2;
	if (end <= start)
		return 4;		/* arguments too short to hold a whole page */
	if (mode && !strcmp(mode, "cow")) {
		/* the file's private copy, written: anonymous pages in a
		 * file's VMA, which /proc does not read either */
		p = mmap((void *)start, end - start, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_FIXED, fd, 0);
		if (p != MAP_FAILED)
			memset(p, 'C', end - start);
	} else if (mode && !strcmp(mode, "wronly")) {
		/* anonymous memory that may be written and not read: /proc
		 * reads without FOLL_FORCE, so not this */
		p = mmap((void *)start, end - start, PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p != MAP_FAILED)
			memset(p, 'W', end - start);
	} else {
		p = mmap((void *)start, end - start, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
		for (unsigned long a = start; p != MAP_FAILED && a < end; a += page)
			(void)*(volatile char *)a;
	}
	if (p == MAP_FAILED)
		return 3;
	raise(SIGSTOP);
	return 0;
}
