/*
 * Maps a file over its own argument area, then stops: /proc/PID/cmdline
 * reads only anonymous memory (FOLL_ANON), so it shows nothing, and
 * CMDLINE must show nothing either.  argv_over_file FILE ARG...
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
	unsigned long start = (unsigned long)argv[1] & ~(page - 1);
	unsigned long end = (unsigned long)(argv[argc - 1] + strlen(argv[argc - 1]) + 1);
	int fd = open(argv[1], O_RDONLY);

	if (argc < 2 || fd < 0)
		return 2;
	/* the pages of argv[1..] (argv[0] may share the first): after this
	 * nothing here reads argv again */
	if (mmap((void *)start, end - start, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0)
	    == MAP_FAILED)
		return 3;
	raise(SIGSTOP);
	return 0;
}
