/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel's direct map: where it starts, and reading a task's memory
 * through it.  x86-64 with 4 KiB pages only.
 *
 * No helper reads page tables or struct page for us, so the page walk
 * (td_pagewalk.h, VMA_STAT) and CMDLINE's fast path (dm_user_copy()
 * below) read kernel memory with probes, at addresses they derive: the
 * direct map base (page_offset_base) and the struct page array
 * (vmemmap_base), both randomised and neither in BTF nor, without
 * KALLSYMS_ALL, in kallsyms.  td_pw_calibrate() finds them once, in a
 * TD_PROBE_CALIBRATE pass run by the loader, and keeps them in td_config.
 * A wrong base gives plausible garbage, not errors: the loader enables
 * each user of the bases only after comparing what it gives with /proc on
 * processes it builds (task_diag/loader/pagewalk.py, cmdline.py).  The
 * direct read of CMDLINE uses page_offset_base only.
 *
 * Part of task_diag.bpf.c, included there in order; not a header of its own.
 */
#ifndef __TD_DIRECTMAP_H
#define __TD_DIRECTMAP_H

#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)

typedef struct { int counter; } td_atomic_t;

/* struct page: only the fields the page walk and the direct read use (its
 * flags, a word or a struct by version: td_pagewalk.h) */
struct page {
	unsigned long compound_head;	/* bit 0: a tail page, the rest its folio */
	void *mapping;			/* bit 0: anonymous */
	td_atomic_t _mapcount;
	td_atomic_t _refcount;
};

struct mm_struct___pw {
	void *pgd;
};

struct vm_struct {
	struct page **pages;
};

struct task_struct___pw {
	void *stack;
	struct vm_struct *stack_vm_area;
	struct mm_struct___pw *mm;
};

#pragma clang attribute pop

/* x86-64 page-table entry bits (arch/x86/include/asm/pgtable_types.h) */
#define PW_PRESENT	(1ULL << 0)
#define PW_ACCESSED	(1ULL << 5)
#define PW_DIRTY	(1ULL << 6)
#define PW_PSE		(1ULL << 7)
#define PW_PROTNONE	(1ULL << 8)	/* _PAGE_GLOBAL, meaningful only when !PRESENT */
#define PW_SPECIAL	(1ULL << 9)	/* vm_normal_page() returns NULL */
#define PW_SAVED_DIRTY	(1ULL << 58)	/* dirty, moved aside for shadow stacks */
#define PW_PHYS_MASK	((1ULL << 52) - 1)
#define PW_PTE_PFN	(PW_PHYS_MASK & ~0xfffULL)
#define PW_PMD_PFN	(PW_PHYS_MASK & ~((1ULL << 21) - 1))
#define PW_PUD_PFN	(PW_PHYS_MASK & ~((1ULL << 30) - 1))
#define PW_NONE_MASK	(PW_DIRTY | PW_ACCESSED)	/* pte_none() ignores these (KNL erratum) */
#define PW_GB		(1ULL << 30)
#define PW_PMD_SIZE	(1ULL << 21)
#define PW_PAGE_SIZE	4096ULL
#define PW_SWP_TYPE(e)	((u32)((e) >> 59))	/* __swp_type(): top 5 bits */
#define PW_SWP_OFFSET(e) ((~(e) << 5) >> 14)	/* __swp_offset(): inverted (L1TF) */
/* swp_offset_pfn(): a migration entry keeps young and dirty bits above the
 * pfn, whose width is MAX_PHYSMEM_BITS - PAGE_SHIFT (52 or 46 bits) */
#define PW_SWP_PFN(e, levels) (PW_SWP_OFFSET(e) & ((1ULL << ((levels) == 5 ? 40 : 34)) - 1))

static __always_inline int pw_read8(u64 addr, u64 *v)
{
	return bpf_probe_read_kernel(v, 8, (void *)addr);
}

/* ---- calibration -------------------------------------------------------- */

#define PW_USER		(1ULL << 2)
#define PW_HIGH_BITS	(0x7ffULL << 52)	/* software and protection-key bits */
#define PW_PUD_RSVD	(((1ULL << 30) - 1) & ~((1ULL << 13) - 1))
#define PW_PMD_RSVD	(((1ULL << 21) - 1) & ~((1ULL << 13) - 1))
/* The lowest start KASLR gives the direct map (__PAGE_OFFSET_BASE_L4/L5):
 * it only ever moves it up. */
#define PW_DIRECT_MIN_L4	0xffff888000000000ULL
#define PW_DIRECT_MIN_L5	0xff11000000000000ULL

/* A leaf of the kernel's own mappings: present, not user, none of the
 * software or protection-key bits the kernel sets only on user pages,
 * and none of the bits a large page's entry reserves (@rsvd).  Calibration
 * reads candidate page tables at guessed addresses, so most of what it
 * reads is not a page table at all: these checks turn such garbage away
 * (an 8-byte value that happens to be present and point the right way
 * was seen here in about 3% of calibrations before they existed). */
static __always_inline bool pw_kernel_leaf(u64 e, u64 rsvd)
{
	return (e & PW_PRESENT) && !(e & (PW_USER | PW_HIGH_BITS | rsvd));
}

/* Translates kernel address @va through the kernel half of the page
 * tables at @pgd (itself a direct-map address), taking @base as the
 * direct map's start; 0 and the physical address in *@phys on success. */
static __always_inline int pw_kernel_phys(u64 pgd, u64 base, u64 va, u32 levels, u64 *phys)
{
	u64 e, t;

	if (pw_read8(pgd + ((va >> (levels == 5 ? 48 : 39)) & 511) * 8, &e) || !(e & PW_PRESENT))
		return -1;
	t = e & PW_PTE_PFN;
	if (levels == 5) {
		if (pw_read8(base + t + ((va >> 39) & 511) * 8, &e) || !(e & PW_PRESENT))
			return -1;
		t = e & PW_PTE_PFN;
	}
	if (pw_read8(base + t + ((va >> 30) & 511) * 8, &e) || !(e & PW_PRESENT))
		return -1;
	if (e & PW_PSE) {
		if (!pw_kernel_leaf(e, PW_PUD_RSVD))
			return -1;
		*phys = (e & PW_PUD_PFN) | (va & (PW_GB - 1));
		return 0;
	}
	t = e & PW_PTE_PFN;
	if (pw_read8(base + t + ((va >> 21) & 511) * 8, &e) || !(e & PW_PRESENT))
		return -1;
	if (e & PW_PSE) {
		if (!pw_kernel_leaf(e, PW_PMD_RSVD))
			return -1;
		*phys = (e & PW_PMD_PFN) | (va & (PW_PMD_SIZE - 1));
		return 0;
	}
	t = e & PW_PTE_PFN;
	if (pw_read8(base + t + ((va >> 12) & 511) * 8, &e) || !pw_kernel_leaf(e, 0))
		return -1;
	*phys = (e & PW_PTE_PFN) | (va & 0xfff);
	return 0;
}

struct td_pw_cal {
	u64 pgd, task, stack;	/* the addresses a base must explain */
	u64 page0;		/* the stack's first struct page */
	u64 lowest;		/* PW_DIRECT_MIN_*: no candidate below it */
	u64 found, vmemmap;
	u32 levels, matches;
};

/* Candidate @k: KASLR puts the direct map on a 1 GiB boundary at or below
 * pgd's address minus its physical address, so try base = pgd rounded
 * down - k GiB.  A candidate matches when the pgd and the task_struct
 * (both direct-map addresses, from different allocators) translate to
 * themselves under it, and the kernel stack (vmalloc, another walk)
 * translates to the frame of its first struct page: the vmemmap base
 * that pair gives must be 1 GiB aligned, as KASLR aligns it.  Every
 * candidate is tried: calibration succeeds only when exactly one
 * matches, so a garbage match cannot hide behind the true one or stand
 * in for it. */
static long pw_cal_cb(u64 k, struct td_pw_cal *c)
{
	u64 base = (c->pgd & ~(PW_GB - 1)) - k * PW_GB, phys, stack_phys, vmemmap;

	if (base < c->lowest)
		return 1;
	if (pw_kernel_phys(c->pgd, base, c->pgd, c->levels, &phys) || base + phys != c->pgd)
		return 0;
	if (pw_kernel_phys(c->pgd, base, c->task, c->levels, &phys) || base + phys != c->task)
		return 0;
	if (pw_kernel_phys(c->pgd, base, c->stack, c->levels, &stack_phys))
		return 0;
	vmemmap = c->page0 - (stack_phys >> 12) * 64;
	if (vmemmap & (PW_GB - 1))
		return 0;
	c->found = base;
	c->vmemmap = vmemmap;
	c->matches++;
	return 0;
}

/*
 * Finds page_offset_base and vmemmap_base from the current task (the
 * loader, in its TD_PROBE_CALIBRATE pass) into @cfg; returns 1, or a
 * negative step number that failed.  vmemmap_base comes from one known
 * (struct page *, pfn) pair: the first page of the current task's kernel
 * stack, which CONFIG_VMAP_STACK allocates with vmalloc and so records in
 * stack_vm_area->pages[0].
 */
static __noinline int td_pw_calibrate(struct td_config *cfg)
{
	struct task_struct___pw *cur = (void *)bpf_get_current_task_btf();
	struct td_pw_cal c = {};
	struct vm_struct *area;
	u64 pages;

	if (!cfg)
		return -1;
	c.pgd = (u64)BPF_CORE_READ(cur, mm, pgd);
	if (!c.pgd)
		return -2;
	c.task = bpf_get_current_task();	/* a number: BTF pointers take no shifts */
	c.stack = (u64)BPF_CORE_READ(cur, stack);
	area = BPF_CORE_READ(cur, stack_vm_area);
	if (!area)
		return -4;		/* no CONFIG_VMAP_STACK */
	pages = (u64)BPF_CORE_READ(area, pages);
	if (!pages || pw_read8(pages, &c.page0))
		return -5;
	if (bpf_core_type_size(struct page) != 64)
		return -7;		/* the walk reads 64-byte struct pages */
	/* Under 4-level paging every kernel address is at or above
	 * 0xffff800000000000; under 5-level the direct map is far below. */
	c.levels = c.pgd < 0xffff000000000000ULL ? 5 : 4;
	c.lowest = c.levels == 5 ? PW_DIRECT_MIN_L5 : PW_DIRECT_MIN_L4;
	bpf_loop(1 << 16, pw_cal_cb, &c, 0);	/* up to 64 TiB of RAM */
	if (!c.matches)
		return -3;
	if (c.matches > 1)
		return -6;		/* more than one base explains them */
	cfg->pw_page_offset = c.found;
	cfg->pw_vmemmap = c.vmemmap;
	cfg->pw_levels = c.levels;
	return 1;
}

#define TD_DM_PAGE	4096U

/* ---- user memory through the direct map ---------------------------------- */

/* The 4 KiB page of user address @va: read there the page table entry
 * that maps it, and return the direct-map address of @va where the page
 * is present and normal (not the zero page, a PFN map's: those go the
 * slow way, as do huge pages); 0 otherwise.  *@pte_at, *@pte: where the
 * entry is and what it held, for the check after the copy. */
static __always_inline u64 dm_user_page(u64 pgd, u64 va, u64 base, u32 levels,
					u64 *pte_at, u64 *pte)
{
	u64 e, t;

	if (va >> (levels == 5 ? 56 : 47))
		return 0;			/* not a user address */
	if (pw_read8(pgd + ((va >> (levels == 5 ? 48 : 39)) & 511) * 8, &e) || !(e & PW_PRESENT))
		return 0;
	if (levels == 5) {
		if (pw_read8(base + (e & PW_PTE_PFN) + ((va >> 39) & 511) * 8, &e) ||
		    !(e & PW_PRESENT))
			return 0;
	}
	if (pw_read8(base + (e & PW_PTE_PFN) + ((va >> 30) & 511) * 8, &e) ||
	    (e & (PW_PRESENT | PW_PSE)) != PW_PRESENT)
		return 0;			/* a 1 GiB page */
	if (pw_read8(base + (e & PW_PTE_PFN) + ((va >> 21) & 511) * 8, &e) ||
	    (e & (PW_PRESENT | PW_PSE)) != PW_PRESENT)
		return 0;			/* a 2 MiB page */
	t = base + (e & PW_PTE_PFN) + ((va >> 12) & 511) * 8;
	if (pw_read8(t, &e) || (e & (PW_PRESENT | PW_USER | PW_SPECIAL)) != (PW_PRESENT | PW_USER))
		return 0;
	*pte_at = t;
	*pte = e;
	return base + (e & PW_PTE_PFN) + (va & 0xfff);
}

/*
 * @n (1 to 4096) bytes of the user memory at @addr of the mm whose page
 * tables are at @pgd into @dst, through the direct map: 0, or -1 where a
 * page is not one dm_user_page() takes (the caller then reads the slow
 * way).  The caller holds the mm's mmap_lock, and the VMA at @addr is
 * still there (bpf_find_vma()), so the page tables we walk stay (munmap
 * detaches the VMAs before it frees their tables; the rest that frees
 * them takes the lock for writing or waits for an RCU grace period, and
 * we are in an RCU read-side section).  The page itself we do not pin,
 * as get_user_pages() would: reclaim, migration or MADV_DONTNEED can
 * free it while we copy, but not before its entry changes, so each entry
 * must hold the same value after the copy, or the copy is thrown away.
 * (Left: a page freed, used and freed by others, and mapped at the same
 * place again, all within our copy; README, Known limits.)
 */
static __always_inline int dm_user_copy(char *dst, u32 n, u64 addr, u64 pgd,
					 struct td_config *cfg)
{
	u64 base = cfg->pw_page_offset, len = n;
	u64 at1 = 0, pte1 = 0, at2 = 0, pte2 = 0, src1, src2 = 0, now;
	u64 head = TD_DM_PAGE - (addr & (TD_DM_PAGE - 1));
	u32 levels = cfg->pw_levels;

	if (!len || len > TD_DM_PAGE || !base || !pgd)
		return -1;
	src1 = dm_user_page(pgd, addr, base, levels, &at1, &pte1);
	if (!src1)
		return -1;
	if (len <= head) {
		/* the masks show an older verifier the bounds it lost */
		if (bpf_probe_read_kernel(dst, len & (2 * TD_DM_PAGE - 1), (void *)src1))
			return -1;
	} else {
		head &= TD_DM_PAGE - 1;
		src2 = dm_user_page(pgd, addr + head, base, levels, &at2, &pte2);
		if (!src2 || bpf_probe_read_kernel(dst, head, (void *)src1) ||
		    bpf_probe_read_kernel(dst + head, (len - head) & (TD_DM_PAGE - 1), (void *)src2))
			return -1;
	}
	if (pw_read8(at1, &now) || now != pte1)
		return -1;
	if (src2 && (pw_read8(at2, &now) || now != pte2))
		return -1;
	return 0;
}

#endif /* __TD_DIRECTMAP_H */
