/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the VMA test programs share (tests/test_vma_fallback.py's vmazoo,
 * tests/test_vma_swap.py's swap child; each is built with -I tests): die(),
 * and areas placed one after the other in an address range reserved up
 * front, each followed by an unmapped page, so that neighbours never merge
 * and nothing else lands between them.
 */
#ifndef TD_TESTS_ARENA_H
#define TD_TESTS_ARENA_H
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define PG 4096UL

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static char *arena, *cursor;
static const size_t arena_size = 64UL << 20;

static void arena_open(void)
{
	arena = mmap(NULL, arena_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		     -1, 0);
	if (arena == MAP_FAILED)
		die("mmap arena");
	cursor = arena + PG;
	munmap(arena, PG);
}

static char *place(size_t pages, int prot, int flags, int fd, off_t off)
{
	char *p = mmap(cursor, pages * PG, prot, flags | MAP_FIXED, fd, off);
	if (p == MAP_FAILED)
		die("mmap");
	cursor += (pages + 1) * PG;
	if (munmap(cursor - PG, PG))
		die("munmap");
	return p;
}
#endif
