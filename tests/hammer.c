/*
 * A task whose mmap_lock a writer nearly always holds or waits for: two
 * threads mprotect() a populated mapping back and forth without pause.
 * Prints the mapping's address in hex, then sleeps until killed.
 *
 *	hammer [MiB]		(default 128)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static char *area;
static size_t size;

static void *hammer(void *arg)
{
	(void)arg;
	for (;;) {
		mprotect(area, size, PROT_READ);
		mprotect(area, size, PROT_READ | PROT_WRITE);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;
	int i;

	size = (argc > 1 ? strtoul(argv[1], NULL, 10) : 128) << 20;
	/* between two PROT_NONE guard pages: as its protection changes the
	 * mapping would merge with an anonymous neighbour and split again,
	 * and its VMAs would not stay where maps showed them */
	area = mmap(NULL, size + 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		return 1;
	area = mmap(area + 4096, size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_FIXED, -1, 0);
	if (area == MAP_FAILED)
		return 1;
	memset(area, 1, size);		/* page tables for mprotect() to change */
	for (i = 0; i < 2; i++)
		if (pthread_create(&t, NULL, hammer, NULL))
			return 1;
	printf("%lx\n", (unsigned long)area);
	fflush(stdout);
	for (;;)
		pause();
}
