/* SPDX-License-Identifier: GPL-2.0 */
/*
 * VMA_STAT by walking the page tables (task-diag-load --vma-stat=pagewalk):
 * the numbers of /proc/PID/smaps for one VMA, without the text, computed
 * the way fs/proc/task_mmu.c computes them in 6.18 with CONFIG_PAGE_MAPCOUNT
 * (smap_gather_stats, smaps_pte_range, smaps_account, shmem_swap_usage).
 * x86-64 with 4 KiB pages only.
 *
 * It reads page tables and struct pages with probes, through the direct
 * map and the struct page array whose bases td_directmap.h finds.  A wrong
 * base or a kernel whose mapcount rules differ gives plausible garbage,
 * not errors: the loader enables this source only after comparing it with
 * smaps on processes it builds, and the walk counts folios whose
 * ->mapping is not its VMA's file (td_config.pw_bad) as it goes.  It
 * takes no page-table lock and no folio reference: a folio split or freed
 * under it can tear one VMA's numbers, never crash (probes fault safely;
 * the VMA iterator holds the mmap_lock, so the page tables under the VMA
 * it visits stay: munmap detaches a VMA before it frees its tables).
 *
 * Where it breaks (memory encryption, device memory, protection keys): the
 * README's VMA_STAT section, Known limits.
 */
#ifndef __TD_PAGEWALK_H
#define __TD_PAGEWALK_H

#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)

struct page___flags_struct {
	struct { unsigned long f; } flags;
};
struct page___flags_word {
	unsigned long flags;
};

struct folio {
	td_atomic_t _entire_mapcount;	/* in the folio's second page */
};

enum pageflags {
	PG_referenced, PG_dirty, PG_head, PG_young,
};

struct xa_node {
	unsigned char shift;
	void *slots[64];
};

struct xarray {
	void *xa_head;
};

struct address_space {
	struct xarray i_pages;
};

struct shmem_inode_info {
	unsigned long swapped;		/* pages of the object in swap */
	struct inode vfs_inode;
};

#pragma clang attribute pop

#define PW_PSS_SHIFT	12

#define VM_WRITE	0x00000002ULL
#define VM_SHARED	0x00000008ULL
#define VM_PFNMAP	0x00000400ULL
#define VM_HUGETLB	0x00400000ULL
#define TMPFS_MAGIC	0x01021994

/* How many page-table entries one program run may look at before the
 * task's remaining VMAs go to the next run (TD_CONT_*): the walk cannot
 * sleep, and 1 GiB of 4 KiB pages costs about 12 ms.  Checked between
 * VMAs: one VMA is walked whole, however big (a 512 GiB heap of 4 KiB
 * pages would hold the CPU for seconds). */
#define TD_PW_BUDGET	(1U << 18)

struct td_pw_stat {		/* task_diag_vma_stat, in the order of the UAPI */
	u64 resident, shared_clean, shared_dirty, private_clean, private_dirty;
	u64 referenced, anonymous, anonymous_thp, swap, pss;
};

/* The state of one VMA's walk: per CPU, since it is too big for the stack
 * of a call chain that nests bpf_loop() three deep. */
struct td_pw {
	struct td_pw_stat s;
	u64 addr, end;			/* the walk's position, the VMA's end */
	u64 pgd, base, vmemmap;
	u32 levels, pidx;		/* 4 or 5; first PTE index of the current table */
	u64 table_addr;			/* the user address that PTE 0 of the table maps */
	u64 vm_start, vm_pgoff, f_mapping;
	u32 shmem_holes;		/* count swapped shmem behind page-table holes */
	u32 max_swapfiles, hwpoison_num;
	u32 pg_dirty, pg_referenced, pg_head, pg_young, has_young;
	u32 o_flags;
	/* the large folio last looked at: consecutive PTEs map the same one */
	u64 f_folio, f_flags, f_mapping_seen;
	s32 f_ref, f_entire;
	/* a PMD-mapped folio's pages, for the per-page mapcount loop */
	u64 sub_pfn;
	s32 sub_entire;
	u32 sub_dirty;
	/* the shmem object's xarray, for swap entries in a range */
	u64 x_head, x_idx, x_last, x_count;
	u64 win_pfn;			/* first pfn in td_pw_buf.win, + 1 (0: empty) */
	u64 last_pfn;			/* the struct page read before */
	u64 steps;			/* entries looked at in this program run */
	u64 bad;			/* file folios not of this VMA's file */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct td_pw);
} td_pw SEC(".maps");

/* The PTEs of one table that a VMA covers, and one struct page, each
 * read with one probe; and a window of PW_WIN consecutive struct pages,
 * read with one probe when the walk goes through physically consecutive
 * pages (anonymous memory faulted in order, large folios): fewer, longer
 * probes. */
#define PW_WIN		16
struct td_pw_buf {
	u64 table[512];
	u64 page[8];			/* struct page is 64 bytes (checked) */
	u64 win[PW_WIN * 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct td_pw_buf);
} td_pw_buf SEC(".maps");

/* bpf_loop() takes only a stack pointer as its callback's context */
struct td_pw_ref {
	struct td_pw *w;
};

/* ---- accounting: smaps_account() and smaps_page_accumulate() ------------ */

static __always_inline void pw_accumulate(struct td_pw_stat *s, u64 size, u64 pss, u32 dirty,
					  u32 private)
{
	s->pss += pss;
	if (dirty) {
		if (private)
			s->private_dirty += size;
		else
			s->shared_dirty += size;
	} else {
		if (private)
			s->private_clean += size;
		else
			s->shared_clean += size;
	}
}

/* folio_precise_page_mapcount(): the page's own mapcount (0 for a typed
 * page: page_type shares the word) plus the folio's entire mapcount. */
static __always_inline u32 pw_mapcount(s32 raw, s32 entire)
{
	s32 mc = raw + 1;

	if (raw < (s32)0xff000000)
		mc = 0;
	mc += entire;
	return mc < 0 ? 0 : mc;
}

/* struct page of @pfn, whole, into @buf->page: from the window, or the
 * window loaded when the page read before was in the same block (a
 * second touch: pages scattered over memory would make every window
 * load a waste), or alone.  The
 * window lives only as long as one VMA's walk (td_pw_vma clears it). */
static __always_inline int pw_read_page(struct td_pw *w, struct td_pw_buf *buf, u64 pfn)
{
	u64 first = pfn & ~(u64)(PW_WIN - 1), i = pfn & (PW_WIN - 1);
	bool near = first == (w->last_pfn & ~(u64)(PW_WIN - 1));

	w->last_pfn = pfn;
	if (w->win_pfn != first + 1) {
		if (!near)
			return bpf_probe_read_kernel(buf->page, 64, (void *)(w->vmemmap + pfn * 64));
		w->win_pfn = 0;
		if (bpf_probe_read_kernel(buf->win, sizeof(buf->win),
					  (void *)(w->vmemmap + first * 64)))
			return -1;
		w->win_pfn = first + 1;
	}
	__builtin_memcpy(buf->page, &buf->win[i * 8], 64);
	return 0;
}

#define PW_FIELD(pg, type, field) \
	(*(type *)((char *)(pg) + (bpf_core_field_offset(struct page, field) & (64 - sizeof(type)))))

static long pw_sub_cb(u64 i, struct td_pw_ref *r)
{
	struct td_pw *w = r->w;
	struct td_pw_buf *buf;
	u32 zero = 0, mc;
	u64 pss = PW_PAGE_SIZE << PW_PSS_SHIFT;

	buf = bpf_map_lookup_elem(&td_pw_buf, &zero);
	if (!buf || pw_read_page(w, buf, w->sub_pfn + i))
		return 1;
	mc = pw_mapcount(PW_FIELD(buf->page, s32, _mapcount), w->sub_entire);
	if (mc >= 2)
		pss /= mc;
	pw_accumulate(&w->s, PW_PAGE_SIZE, pss, w->sub_dirty, mc < 2);
	return 0;
}

#define PW_YOUNG	1
#define PW_DIRTYBIT	2
#define PW_PRESENTBIT	4
#define PW_PMD		8

/* smaps_account() (and, for @nr 512, smaps_pmd_entry()'s THP part) for the
 * page at @pfn mapped with the PW_* @bits. */
static __noinline int pw_account(struct td_pw *w, u64 pfn, u32 nr, u32 bits)
{
	u32 zero = 0, young = bits & PW_YOUNG, dirty = !!(bits & PW_DIRTYBIT);
	u32 present = !!(bits & PW_PRESENTBIT), anon, large;
	u64 head, folio, flags, mapping, size;
	s32 ref, entire = 0, raw, e2;
	struct td_pw_buf *buf;

	if (!w)
		return 0;
	buf = bpf_map_lookup_elem(&td_pw_buf, &zero);
	if (!buf || pw_read_page(w, buf, pfn))
		return 0;
	head = PW_FIELD(buf->page, u64, compound_head);
	raw = PW_FIELD(buf->page, s32, _mapcount);
	if (head & 1) {
		folio = head - 1;		/* a tail page: its folio's fields */
		if (folio != w->f_folio) {
			if (bpf_probe_read_kernel(buf->page, 64, (void *)folio))
				return 0;
			w->f_flags = *(u64 *)((char *)buf->page + (w->o_flags & 56));
			w->f_mapping_seen = PW_FIELD(buf->page, u64, mapping);
			w->f_ref = PW_FIELD(buf->page, s32, _refcount);
			if (bpf_probe_read_kernel(&e2, 4, (void *)folio +
					bpf_core_field_offset(struct folio, _entire_mapcount)))
				return 0;
			w->f_entire = e2 + 1;
			w->f_folio = folio;
		}
		flags = w->f_flags;
		mapping = w->f_mapping_seen;
		ref = w->f_ref;
		entire = w->f_entire;
	} else {
		folio = w->vmemmap + pfn * 64;
		flags = *(u64 *)((char *)buf->page + (w->o_flags & 56));
		mapping = PW_FIELD(buf->page, u64, mapping);
		ref = PW_FIELD(buf->page, s32, _refcount);
		if ((flags >> (w->pg_head & 63)) & 1) {	/* the head of a large folio */
			if (bpf_probe_read_kernel(&e2, 4, (void *)folio +
					bpf_core_field_offset(struct folio, _entire_mapcount)))
				return 0;
			entire = e2 + 1;
		}
	}
	anon = mapping & 1;
	large = (flags >> (w->pg_head & 63)) & 1;

	/* A page of a file VMA belongs to that file: if not, the bases or
	 * the layout are wrong (mapping 0: a driver's vm_insert_page()). */
	if (w->f_mapping && mapping && !anon && present && mapping != w->f_mapping)
		w->bad++;

	if (bits & PW_PMD) {
		if (!mapping)
			return 0;		/* the huge zero folio */
		if (anon)
			w->s.anonymous_thp += PW_PMD_SIZE;
	}
	size = (u64)nr * PW_PAGE_SIZE;
	dirty = dirty || ((flags >> (w->pg_dirty & 63)) & 1);
	if (anon)
		w->s.anonymous += size;
	w->s.resident += size;
	if (young || ((flags >> (w->pg_referenced & 63)) & 1) ||
	    (w->has_young && ((flags >> (w->pg_young & 63)) & 1)))
		w->s.referenced += size;

	/* mapped once for sure (refcount 1), or a migration entry: the
	 * whole size, counted private only when present */
	if (ref == 1 || !present) {
		pw_accumulate(&w->s, size, size << PW_PSS_SHIFT, dirty, present);
		return 0;
	}
	if (!large)
		entire = 0;
	if (nr == 1) {
		u32 mc = pw_mapcount(raw, entire);
		u64 pss = PW_PAGE_SIZE << PW_PSS_SHIFT;

		if (mc >= 2)
			pss /= mc;
		pw_accumulate(&w->s, PW_PAGE_SIZE, pss, dirty, mc < 2);
		return 0;
	}
	{
		struct td_pw_ref r = { .w = w };

		w->sub_pfn = pfn;
		w->sub_entire = entire;
		w->sub_dirty = dirty;
		bpf_loop(nr, pw_sub_cb, &r, 0);
	}
	return 0;
}

/* ---- shmem: swapped pages of the object in a range ---------------------- */

#define PW_XA_NODE(e)		(((e) & 3) == 2 && (e) > 4096)
#define PW_XA_SIBLING(e)	(((e) & 3) == 2 && ((e) >> 2) < 63)

/* One step of shmem_partial_swap_usage(): the entry at x_idx, counted when
 * it is a value (a swap entry), then on to the next index it does not cover. */
static long pw_xa_cb(u64 i, struct td_pw_ref *r)
{
	struct td_pw *w = r->w;
	u64 idx = w->x_idx, entry = w->x_head, node, e;
	u8 shift;
	u32 off;

	if (idx > w->x_last)
		return 1;
	if (!PW_XA_NODE(entry)) {		/* one entry, at index 0 */
		if (idx == 0 && (entry & 1))
			w->x_count += 1;
		return 1;
	}
	node = entry - 2;
	for (int level = 0; level < 11; level++) {
		if (bpf_probe_read_kernel(&shift, 1, (void *)(node +
				bpf_core_field_offset(struct xa_node, shift))))
			return 1;
		if (level == 0 && shift < 58 && (idx >> shift) >= 64)
			return 1;		/* past the end of the tree */
		off = (idx >> (shift & 63)) & 63;
		if (pw_read8(node + bpf_core_field_offset(struct xa_node, slots) + off * 8, &entry))
			return 1;
		if (PW_XA_SIBLING(entry)) {
			if (pw_read8(node + bpf_core_field_offset(struct xa_node, slots) +
				     ((entry >> 2) & 63) * 8, &e))
				return 1;
			entry = e;
		}
		if (PW_XA_NODE(entry) && shift) {
			node = entry - 2;
			continue;
		}
		if (entry & 1)			/* xa_is_value() */
			w->x_count += 1ULL << (shift & 63);
		w->x_idx = ((idx >> (shift & 63)) + 1) << (shift & 63);
		return 0;
	}
	return 1;
}

/* bytes of the shmem object swapped out in pages [@first, @last] */
static __noinline u64 pw_shmem_swapped(struct td_pw *w, u64 first, u64 last)
{
	struct td_pw_ref r = { .w = w };

	if (!w)
		return 0;
	w->x_idx = first;
	w->x_last = last;
	w->x_count = 0;
	bpf_loop(1 << 20, pw_xa_cb, &r, 0);
	return w->x_count << 12;
}

/* smaps_pte_hole(): the swapped pages behind a hole of a private writable
 * shmem mapping count as its swap */
static __always_inline void pw_hole(struct td_pw *w, u64 start, u64 end)
{
	if (!w->shmem_holes)
		return;
	if (end > w->end)
		end = w->end;
	if (start >= end)
		return;
	w->s.swap += pw_shmem_swapped(w, ((start - w->vm_start) >> 12) + w->vm_pgoff,
				      ((end - 1 - w->vm_start) >> 12) + w->vm_pgoff);
}

/* ---- the walk: walk_page_vma() with smaps' callbacks -------------------- */

/* a non-present, non-none entry: swap, migration, or a marker */
static __always_inline void pw_swap_entry(struct td_pw *w, u64 e, u32 nr, u32 pmd)
{
	u32 type = PW_SWP_TYPE(e);

	if (type < w->max_swapfiles) {
		if (!pmd)
			w->s.swap += PW_PAGE_SIZE;
		return;
	}
	/* pfn entries (is_pfn_swap_entry()): hwpoison (the type right after
	 * the swap files, with CONFIG_MEMORY_FAILURE) and migration (the 3
	 * after it): the page, counted as not present; markers: nothing */
	if (type >= w->max_swapfiles && type < w->max_swapfiles + w->hwpoison_num + 3)
		pw_account(w, PW_SWP_PFN(e, w->levels), nr, pmd ? PW_PMD : 0);
}

static long pw_pte_cb(u64 i, struct td_pw_ref *r)
{
	struct td_pw *w = r->w;
	struct td_pw_buf *buf;
	u32 zero = 0, idx = w->pidx + (u32)i;
	u64 e, v, addr;

	if (idx >= 512)
		return 1;
	addr = w->table_addr + ((u64)idx << 12);
	if (addr >= w->end)
		return 1;
	buf = bpf_map_lookup_elem(&td_pw_buf, &zero);
	if (!buf)
		return 1;
	w->steps++;
	e = buf->table[i & 511];
	if ((e & ~PW_NONE_MASK) == 0) {			/* pte_none */
		pw_hole(w, addr, addr + PW_PAGE_SIZE);
		return 0;
	}
	if (e & (PW_PRESENT | PW_PROTNONE)) {		/* pte_present */
		if (e & PW_SPECIAL)
			return 0;			/* the zero page, pfn maps */
		v = (e & PW_PRESENT) ? e : ~e;		/* PROT_NONE: pfn inverted (L1TF) */
		pw_account(w, (v & PW_PTE_PFN) >> 12, 1, PW_PRESENTBIT |
			   ((e & PW_ACCESSED) ? PW_YOUNG : 0) |
			   ((e & (PW_DIRTY | PW_SAVED_DIRTY)) ? PW_DIRTYBIT : 0));
		return 0;
	}
	pw_swap_entry(w, e, 1, 0);
	return 0;
}

static __always_inline u64 pw_next(u64 a, u32 shift)
{
	return (a | ((1ULL << shift) - 1)) + 1;
}

/* One step: from the top level down to what maps w->addr, then on past it. */
static long pw_walk_cb(u64 i, struct td_pw_ref *r)
{
	struct td_pw *w = r->w;
	struct td_pw_buf *buf;
	u64 a = w->addr, e, t, v, n, base = w->base;
	u32 zero = 0, top = w->levels == 5 ? 48 : 39;

	if (a >= w->end)
		return 1;
	w->steps++;
	if (pw_read8(w->pgd + ((a >> top) & 511) * 8, &e))
		goto fail;
	if (!(e & PW_PRESENT)) {
		w->addr = pw_next(a, top);
		pw_hole(w, a, w->addr);
		return 0;
	}
	t = e & PW_PTE_PFN;
	if (w->levels == 5) {
		if (pw_read8(base + t + ((a >> 39) & 511) * 8, &e))
			goto fail;
		if (!(e & PW_PRESENT)) {
			w->addr = pw_next(a, 39);
			pw_hole(w, a, w->addr);
			return 0;
		}
		t = e & PW_PTE_PFN;
	}
	if (pw_read8(base + t + ((a >> 30) & 511) * 8, &e))		/* PUD */
		goto fail;
	if (!(e & PW_PRESENT) || (e & PW_PSE)) {	/* none, or a PUD leaf (DAX, pfnmap) */
		w->addr = pw_next(a, 30);
		if (!(e & PW_PRESENT))
			pw_hole(w, a, w->addr);
		return 0;
	}
	t = e & PW_PTE_PFN;
	if (pw_read8(base + t + ((a >> 21) & 511) * 8, &e))		/* PMD */
		goto fail;
	if ((e & ~PW_NONE_MASK) == 0) {			/* pmd_none */
		w->addr = pw_next(a, 21);
		pw_hole(w, a, w->addr);
		return 0;
	}
	if (e & (PW_PRESENT | PW_PROTNONE | PW_PSE)) {	/* pmd_present */
		if (e & PW_PSE) {			/* a PMD-mapped THP */
			if (!(e & PW_SPECIAL)) {
				v = (e & PW_PRESENT) ? e : ~e;
				pw_account(w, (v & PW_PMD_PFN) >> 12, 512,
					   PW_PRESENTBIT | PW_PMD |
					   ((e & PW_ACCESSED) ? PW_YOUNG : 0) |
					   ((e & (PW_DIRTY | PW_SAVED_DIRTY)) ? PW_DIRTYBIT : 0));
			}
			w->addr = pw_next(a, 21);
			return 0;
		}
		/* A PTE table: only the entries from w->addr to the end of the
		 * VMA or of the table, into buf->table[0...].  Most VMAs span a
		 * few pages: copying the whole 4 KiB table for each cost more
		 * than the rest of the walk. */
		buf = bpf_map_lookup_elem(&td_pw_buf, &zero);
		if (!buf)
			return 1;
		v = pw_next(a, 21);
		n = ((w->end < v ? w->end : v) - a) >> 12;
		if (n > 512)
			n = 512;
		if (bpf_probe_read_kernel(buf->table, n * 8,
					  (void *)(base + (e & PW_PTE_PFN) + ((a >> 12) & 511) * 8)))
			goto fail;
		w->table_addr = a & ~(PW_PMD_SIZE - 1);
		w->pidx = (a >> 12) & 511;
		bpf_loop(n, pw_pte_cb, r, 0);
		w->addr = v;
		return 0;
	}
	pw_swap_entry(w, e, 512, 1);			/* a THP migration entry */
	w->addr = pw_next(a, 21);
	return 0;
fail:
	/* an unreadable table: torn by a concurrent free, or bad bases (then
	 * the loader's self-check has refused this source) */
	w->bad++;
	w->addr = pw_next(a, 12);
	return 0;
}

/*
 * smap_gather_stats()'s shmem part: the object's swapped pages that this
 * VMA maps, counted up front, except for a private writable mapping, whose
 * swapped pages count only where its page table has a hole.
 */
static __always_inline void pw_shmem(struct td_pw *w, struct vm_area_struct *vma, u64 vm_flags)
{
	struct file *f = vma->vm_file;
	struct inode *inode;
	struct shmem_inode_info *info;
	u64 swapped, size, len;

	if (!f)
		return;
	/* plain loads through the VMA: this runs for every file VMA */
	inode = f->f_inode;
	if (inode->i_sb->s_magic != TMPFS_MAGIC)
		return;
	info = (void *)inode - bpf_core_field_offset(struct shmem_inode_info, vfs_inode);
	swapped = BPF_CORE_READ(info, swapped);
	if (!swapped)
		return;
	size = inode->i_size;
	len = w->end - w->vm_start;
	w->x_head = (u64)f->f_mapping->i_pages.xa_head;
	if (!(vm_flags & VM_SHARED) && (vm_flags & VM_WRITE)) {
		w->shmem_holes = 1;
		return;
	}
	if (!w->vm_pgoff && len >= size) {
		w->s.swap += swapped << 12;
		return;
	}
	w->s.swap += pw_shmem_swapped(w, w->vm_pgoff, w->vm_pgoff + (len >> 12) - 1);
}

/*
 * The smaps numbers of @vma into @out (80 bytes); 0 on success, -1 when
 * the walk is not set up (the loader's calibration has not run).
 */
static __always_inline int td_pw_vma(struct vm_area_struct *vma, struct td_pw_stat *out,
				     const struct td_config *cfg)
{
	struct td_pw *w;
	struct td_pw_ref r;
	u32 zero = 0;
	u64 vm_flags, steps;

	if (!cfg->pw_page_offset || !cfg->pw_vmemmap)
		return -1;
	w = bpf_map_lookup_elem(&td_pw, &zero);
	if (!w)
		return -1;
	steps = w->steps;
	__builtin_memset(w, 0, sizeof(*w));
	w->steps = steps;
	w->base = cfg->pw_page_offset;
	w->vmemmap = cfg->pw_vmemmap;
	w->levels = cfg->pw_levels;
	w->max_swapfiles = cfg->pw_max_swapfiles;
	w->hwpoison_num = cfg->pw_hwpoison_num;
	w->pgd = (u64)vma->vm_mm->pgd;
	if (bpf_core_field_exists(struct page___flags_struct, flags))
		w->o_flags = bpf_core_field_offset(struct page___flags_struct, flags);
	else
		w->o_flags = bpf_core_field_offset(struct page___flags_word, flags);
	w->pg_dirty = bpf_core_enum_value(enum pageflags, PG_dirty);
	w->pg_referenced = bpf_core_enum_value(enum pageflags, PG_referenced);
	w->pg_head = bpf_core_enum_value(enum pageflags, PG_head);
	if (bpf_core_enum_value_exists(enum pageflags, PG_young)) {
		w->has_young = 1;	/* CONFIG_PAGE_IDLE_FLAG on 64-bit */
		w->pg_young = bpf_core_enum_value(enum pageflags, PG_young);
	}
	vm_flags = vma->vm_flags;
	w->addr = w->vm_start = vma->vm_start;
	w->end = vma->vm_end;
	w->vm_pgoff = vma->vm_pgoff;
	if (vma->vm_file)
		w->f_mapping = (u64)vma->vm_file->f_mapping;
	pw_shmem(w, vma, vm_flags);
	/* walk_page_test(): smaps skips hugetlb (its own fields) and pfnmap */
	if (!(vm_flags & (VM_HUGETLB | VM_PFNMAP))) {
		r.w = w;
		bpf_loop(1 << 23, pw_walk_cb, &r, 0);
	}
	__builtin_memcpy(out, &w->s, sizeof(*out));
	if (w->bad)
		__sync_fetch_and_add((u64 *)&cfg->pw_bad, w->bad);
	return 0;
}

/* Entries the walks of this program run have looked at; reset with @reset. */
static __always_inline u64 td_pw_steps(bool reset)
{
	u32 zero = 0;
	struct td_pw *w = bpf_map_lookup_elem(&td_pw, &zero);
	u64 n;

	if (!w)
		return 0;
	n = w->steps;
	if (reset)
		w->steps = 0;
	return n;
}

#endif /* __TD_PAGEWALK_H */
