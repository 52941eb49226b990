/*
 * Maps a file over the whole pages of its own argument area, reads them
 * (so that they are present, as a page the direct read might take), then
 * stops: /proc/PID/cmdline reads only anonymous memory (FOLL_ANON), so it
 * shows the arguments up to the file, and CMDLINE must show the same,
 * never the file's bytes.  argv_over_file FILE ARG... (at least two pages
 * of them)
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
	int fd = open(argv[1], O_RDONLY);

	if (argc < 2 || fd < 0)
		return 2;
	if (end <= start)
		return 4;		/* arguments too short to hold a whole page */
	if (mmap((void *)start, end - start, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0)
	    == MAP_FAILED)
		return 3;
	for (unsigned long p = start; p < end; p += page)
		(void)*(volatile char *)p;
	raise(SIGSTOP);
	return 0;
}
