/*
 * Replaces the whole pages of its own argument area again and again with
 * fresh anonymous pages, each filled with one letter (A to Z, in turn),
 * until killed: the pages a reader of its command line translated may be
 * freed, and taken by another process, while it copies them.  With
 * "fill", instead fills and frees memory with 0xa5 bytes as fast as it
 * can: the other process, whose freed pages the first one's reader must
 * never show.
 * Prints "ready" once it runs.  argv_churn ARG... | argv_churn fill
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	unsigned long page = sysconf(_SC_PAGESIZE);

	if (argc == 2 && !strcmp(argv[1], "fill")) {
		printf("ready\n");
		fflush(stdout);
		for (;;) {
			size_t len = 64 * page;
			char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (p == MAP_FAILED)
				return 3;
			memset(p, 0xa5, len);
			munmap(p, len);
		}
	}
	/* only whole pages inside the argument strings, as argv_over_file.c */
	unsigned long start = ((unsigned long)argv[1] + page - 1) & ~(page - 1);
	unsigned long end = (unsigned long)(argv[argc - 1] + strlen(argv[argc - 1]) + 1) &
			    ~(page - 1);

	if (argc < 2 || end <= start)
		return 4;
	printf("ready\n");
	fflush(stdout);
	for (unsigned long n = 0;; n++) {
		char *p = mmap((void *)start, end - start, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

		if (p == MAP_FAILED)
			return 3;
		memset(p, 'A' + n % 26, end - start);
	}
}
