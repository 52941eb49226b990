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
	area = mmap(NULL, size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
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
