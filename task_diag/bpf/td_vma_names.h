/* SPDX-License-Identifier: GPL-2.0 */
/*
 * VMA names as /proc/PID/maps prints them, the file-name cache, and the
 * bookkeeping of one walk of a task's VMAs (td_name_work).
 *
 * Part of task_diag.bpf.c, included there in order (each part uses the
 * ones before it); not a header of its own.
 */
#ifndef __TD_VMA_NAMES_H
#define __TD_VMA_NAMES_H

/*
 * ---- VMA names ---------------------------------------------------------
 *
 * /proc/PID/maps prints a file's name with seq_path(m, path, "\n"): d_path()
 * relative to the READER's root (current->fs->root), " (deleted)" after an
 * unlinked dentry, and every '\n' of the result as the four bytes "\012"
 * (mangle_path()).  Nothing else is escaped: not '\\', not ' '.  The other
 * names ([anon:NAME], [anon_shmem:NAME], [vdso], [heap], ...) are printed as
 * they are (seq_printf, seq_puts), and prctl(PR_SET_VMA_ANON_NAME) refuses
 * control characters in NAME: nothing to escape there.
 *
 * The file-name cache.  d_path() for every file VMA was most of
 * what names cost, and most file VMAs name the same few files: several
 * VMAs per file (text, data, relro, bss), the same libraries in every
 * process.  So each file's name is resolved once per dump (and per CPU),
 * into td_names, and a cached name is served only if everything that makes
 * d_path() print it is as it was when it was resolved:
 *
 *  - the dump: the iterator's session_id (td_name_work.dump), a number the
 *    kernel gives each iterator file it opens and never gives again (the
 *    seq_file pointer, by contrast, is reused once freed).  A name is never
 *    trusted in another dump: whatever changed between two dumps (a rename
 *    anywhere on the path, a mount, a deletion) shows in the second.
 *  - the file's path, f_path.mnt and f_path.dentry: the key;
 *  - the reader's root, current->fs->root's mnt and dentry, also in the
 *    key: d_path() prints relative to it (a chrooted reader, a reader in
 *    another mount namespace, a pinned file read by several readers);
 *  - the dentry, as it is now: d_parent, d_name (hash and length), d_inode,
 *    and d_unlinked() (IS_ROOT, or unhashed: what decides " (deleted)").
 *    They are read before d_path() when a name is resolved, so that a
 *    change racing with it leaves a slot that no longer matches, never a
 *    stale match.  Inside a dump this catches the file's own rename or
 *    move (d_move() changes d_name or d_parent), its deletion (d_delete()
 *    of a dentry still in use unhashes it at once, so the next VMA already
 *    shows " (deleted)"), and a dentry freed and reused for another file
 *    (unless it has the same parent, name and inode: then it prints the
 *    same).
 *
 * What a cached name cannot see, inside one dump only: a directory above
 * the file renamed, or a mount moved above it, after the name was resolved
 * and before a later VMA of the same file.  /proc/PID/maps read then shows
 * the new name; the rest of this dump shows the one the file had earlier in
 * the same dump; the next dump shows the new one.  Seeing it would take a
 * walk up every dentry and mount at each use, i.e. most of d_path() again
 * (the sequence counts of rename_lock and mount_lock would tell, but BPF
 * cannot reach them everywhere: here they are neither in BTF nor, without
 * CONFIG_KALLSYMS_ALL, in kallsyms).
 *
 * Not cached: names from d_op->d_dname (pipes, sockets, anon inodes,
 * dma-bufs), made from state that changes without d_move() (a dma-buf's
 * name); and names longer than TD_NC_NAME bytes, escapes and NUL included
 * (the slot then says so, and each VMA of that file gets d_path() into the
 * record, as before the cache).
 *
 * td_names is per CPU and direct-mapped: a lookup is an inlined array
 * access, nothing is shared between CPUs, nothing is locked.  512 slots of
 * 360 bytes: 180 KiB per CPU.  A dump that migrates fills the other CPU's
 * slots too; a collision costs a d_path(), and as the VMAs of a file are
 * adjacent, even a thrashing cache resolves a file about once per process.
 *
 * A run of the program can be preempted by another run on the same CPU
 * (only migration is disabled).  show_task() runs the VMA code under a
 * per-CPU lock, so such a run does not reach this cache; the protocol
 * below does not rely on that and stays as the cache's own defence.  A slot has
 * one writer at a time (writers, counted with atomic adds: a second writer
 * finds 2 and backs off), seq is odd while it writes, and a reader keeps a
 * copy only if seq was even and is unchanged after the copy (a seqcount;
 * all on one CPU, so compiler barriers are the only ordering needed).  The
 * name is written by d_path() into the slot itself, under that protocol,
 * never copied from a buffer another run may write, and the slot is
 * matched against the dentry as loaded then, never against values parked
 * in per-CPU memory (td_name_work) that such a run may overwrite.
 */
#define TD_NC_SLOTS	512			/* per CPU; a power of two */
#define TD_NC_BITS	9			/* log2(TD_NC_SLOTS) */
#define TD_NC_NAME	256			/* longest cached name, NUL included */
#define TD_NC_LONG	0xffff			/* len: longer than that */

/* escape()'s counters */
struct td_esc_state {
	u32 noinline;	/* always 0: bpf_loop()'s flags (see TD_ESCAPE) */
	u32 n;		/* bytes, NUL included */
	u32 nl;		/* newlines: seen, counted, then still to move */
	u32 to;		/* where the byte being moved goes */
};

struct td_name_slot {
	u64 seq;		/* odd while written */
	u64 writers;		/* writers in; only one writes */
	u64 dump;		/* session_id; 0: empty */
	u64 mnt, dentry;	/* f_path */
	u64 root_mnt, root_dentry;	/* the reader's root */
	u64 parent, inode, hash_len;	/* the dentry as the name was taken */
	u32 unlinked;
	u32 len;		/* with the NUL; TD_NC_LONG: not cached */
	struct td_esc_state esc;	/* while the slot is written */
	char name[TD_NC_NAME];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TD_NC_SLOTS);
	__type(key, u32);
	__type(value, struct td_name_slot);
} td_names SEC(".maps");

/*
 * Per CPU: the session_id of the dump the program runs for, set by
 * td_put_vmas() before its first VMA; the slot's hash, whose input passes
 * through here to become numbers (the verifier allows no arithmetic on a
 * pointer, and what is loaded from a map is a number); escape()'s counters
 * for names not cached.  Used under show_task()'s per-CPU lock; were
 * another run to overwrite it, dump would hold another dump in progress, the
 * hash picks another slot (checked like any), and the counters are those
 * of a name written into the shared scratch buffer, which such a run
 * overwrites anyway.  What is cached never depends on them.
 */
struct td_name_work {
	u64 dump;
	u64 h[3];
	struct td_esc_state esc;
	u32 inexact;	/* a name of this run's task could not be resolved exactly */
	u32 mm_seq;	/* td_put_vmas(): the mm's write sequence when it began */
	u32 vmas;	/* td_put_vmas(): the records it wrote */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct td_name_work);
} td_name_work SEC(".maps");

static __always_inline struct td_name_work *name_work(void)
{
	u32 zero = 0;

	return bpf_map_lookup_elem(&td_name_work, &zero);
}

static __always_inline u32 mm_write_seq(struct mm_struct *mm);

/* Before the walk of @mm's VMAs in dump @session_id (the name cache's and
 * vma_walk_end()'s state). */
static __always_inline void name_cache_dump(u64 session_id, struct mm_struct *mm)
{
	struct td_name_work *w = name_work();

	if (w) {
		w->dump = session_id;
		w->inexact = 0;
		w->mm_seq = mm_write_seq(mm);
		w->vmas = 0;
	}
}

/* Whether a name of the task being written could not be resolved exactly
 * (then its messages get TD_MSG_F_VMA_FROM_PROC). */
static __always_inline bool names_inexact(void)
{
	struct td_name_work *w = name_work();

	return w && w->inexact;
}

/*
 * The mm's write sequence, for td_put_vmas() to know whether a writer held
 * mmap_lock while it walked.  Since 6.18.y (and 7.0) the VMA iterator walks
 * under per-VMA locks, and passes over a VMA that a writer holds without a
 * word: a walk that began while a writer held the lock (an odd seqcount) or
 * during which the sequence moved may lack a VMA.  Kernels whose sequence is
 * an int bump it on unlock only: it comes back doubled (never odd, as we
 * cannot tell a writer in).  0 where there are no per-VMA locks: their
 * iterator holds mmap_lock for reading, and no writer can come in.
 */
static __always_inline u32 mm_write_seq(struct mm_struct *mm)
{
	if (bpf_core_field_exists(struct mm_struct___lock_seqcount, mm_lock_seq))
		return ((struct mm_struct___lock_seqcount *)mm)->mm_lock_seq.sequence;
	if (bpf_core_field_exists(struct mm_struct___lock_seq_int, mm_lock_seq))
		return (u32)((struct mm_struct___lock_seq_int *)mm)->mm_lock_seq << 1;
	return 0;
}

/* One more VMA record written by this walk. */
static __always_inline void vma_counted(void)
{
	struct td_name_work *w = name_work();

	if (w)
		w->vmas++;
}

/* After the walk: the task is marked for /proc (TD_MSG_F_VMA_FROM_PROC, whose
 * reader takes mmap_lock and misses nothing) if a writer may have hidden a
 * VMA from the walk, or if a walk of the whole task (@whole) wrote another
 * number of VMAs than the mm has. */
static __always_inline void vma_walk_end(struct mm_struct *mm, bool whole)
{
	struct td_name_work *w = name_work();
	u32 seq;

	if (!w)
		return;
	seq = mm_write_seq(mm);
	if ((w->mm_seq & 1) || seq != w->mm_seq ||
	    (whole && w->vmas != (u32)mm->map_count))
		w->inexact = 1;
}

/* The task's VMAs cannot be walked here (the iterator refused: a busy
 * mmap_lock before 6.18.y, no per-VMA locks since): /proc reads them. */
static __always_inline void vma_walk_refused(void)
{
	struct td_name_work *w = name_work();

	if (w)
		w->inexact = 1;
}

/*
 * d_path() of @file's path into @dst (room: @size, a power of two): with
 * bpf_d_path() where the verifier trusts vm_file (TD_NAME_DPATH, the
 * richest tier) and the path is f_path; otherwise by td_walk_name().
 * Returns the length with the NUL, or a negative error.
 */
static __always_inline long name_path(char *dst, u32 size, struct file *file)
{
	u32 zero = 0;
	struct td_scratch *scratch = bpf_map_lookup_elem(&td_scratch, &zero);
	u64 mnt, dentry;

	if (!scratch)
		return TD_INEXACT;
#ifdef TD_NAME_DPATH
	{
		/* bpf_d_path() prints relative to current's root: only
		 * where that is the viewer's too */
		struct task_struct___fs *me = (void *)bpf_get_current_task_btf();
		struct fs_struct *fs = me->fs;

		if (!td_backing(file) && fs && (u64)fs->root.mnt == scratch->root_mnt &&
		    (u64)fs->root.dentry == scratch->root_dentry)
			return bpf_d_path(&file->f_path, dst, size);
	}
#endif
	td_user_path(file, &mnt, &dentry);
	return td_walk_into(dst, size, mnt, dentry, scratch->root_mnt, scratch->root_dentry);
}

/*
 * mangle_path(..., "\n") in place: the buffer holds n bytes, NUL included,
 * and has room for mask + 1.  Returns the new length, 0 if it would not
 * fit.  Passes with bpf_loop(): look for a '\n' eight bytes at a time (the
 * usual name has none, and that is all it costs); if there is one, count
 * them, then move the bytes back from the end, each '\n' becoming "\012".
 * The buffer's size is a constant of each instance (the mask), for the
 * verifier; the counters are in the slot being written or in td_name_work,
 * the callbacks' context only says where.  bpf_loop()'s flags, always 0,
 * are loaded from memory so that the verifier does not inline the loop:
 * inlined, each bpf_loop() takes 24 bytes of the caller's stack, of the
 * 512 that the chain td_all -> td_put_vmas -> td_vma_record shares, and
 * these loops only run when a name is resolved.
 */
struct td_esc {
	char *buf;
	struct td_esc_state *st;
};

#define TD_NL8		0x0a0a0a0a0a0a0a0aULL	/* '\n' in each byte */
#define TD_ONES8	0x0101010101010101ULL
#define TD_HIGH8	0x8080808080808080ULL

#define TD_ESCAPE(sfx, mask)							\
static long esc_scan_##sfx(u32 i, struct td_esc *e)				\
{										\
	u64 v = *(u64 *)(e->buf + ((i * 8) & ((mask) & ~7))) ^ TD_NL8;		\
										\
	if (!((v - TD_ONES8) & ~v & TD_HIGH8))		/* no zero byte in v */	\
		return 0;							\
	e->st->nl = 1;		/* maybe: bytes past the NUL are looked at too */\
	return 1;								\
}										\
										\
static long esc_count_##sfx(u32 i, struct td_esc *e)				\
{										\
	if (e->buf[i & (mask)] == '\n')						\
		e->st->nl++;							\
	return 0;								\
}										\
										\
static long esc_move_##sfx(u32 i, struct td_esc *e)				\
{										\
	struct td_esc_state *st = e->st;					\
	char *buf = e->buf, c = buf[(st->n - 1 - i) & (mask)];			\
	u32 to = st->to;							\
										\
	if (c != '\n') {							\
		buf[to & (mask)] = c;						\
		st->to = to - 1;						\
		return 0;							\
	}									\
	buf[(to - 3) & (mask)] = '\\';						\
	buf[(to - 2) & (mask)] = '0';						\
	buf[(to - 1) & (mask)] = '1';						\
	buf[to & (mask)] = '2';							\
	st->to = to - 4;							\
	return --st->nl == 0;	/* the bytes before it stay where they are */	\
}										\
										\
static __always_inline u32 escape_##sfx(struct td_esc_state *st, char *buf, long n)\
{										\
	struct td_esc e = { .buf = buf, .st = st };				\
										\
	if (n <= 0 || n > (mask) + 1)						\
		return 0;							\
	st->n = n;								\
	st->nl = 0;								\
	bpf_loop((n + 7) >> 3, esc_scan_##sfx, &e, st->noinline);				\
	if (!st->nl)								\
		return n;							\
	st->nl = 0;								\
	bpf_loop(n, esc_count_##sfx, &e, st->noinline);					\
	if (!st->nl)								\
		return n;							\
	if (n + 3 * st->nl > (mask) + 1)					\
		return 0;							\
	n += 3 * st->nl;							\
	st->to = n - 1;								\
	bpf_loop(st->n, esc_move_##sfx, &e, st->noinline);					\
	return n;								\
}

TD_ESCAPE(slot, TD_NC_NAME - 1)
TD_ESCAPE(full, TD_NAME_MAX - 1)

/* A cached name to @dst, in 64-byte blocks of plain loads and stores (no
 * helper call): the bytes after the NUL up to the block's end are junk,
 * overwritten by the next record or past the end of the message (the
 * caller clears the padding of its record). */
static __always_inline void copy_name(char *dst, const char *src, u32 len)
{
	__builtin_memcpy(dst, src, 64);
	if (len <= 64)
		return;
	__builtin_memcpy(dst + 64, src + 64, 64);
	if (len <= 128)
		return;
	__builtin_memcpy(dst + 128, src + 128, 128);
}

/* A name not cached: d_path() into the record, as before the cache.
 * One that cannot be had exactly (an error, or longer than a record
 * holds) marks the task for /proc/PID/maps. */
static __always_inline int name_direct(char *dst, struct file *file)
{
	struct td_name_work *w = name_work();
	long n = name_path(dst, TD_NAME_MAX, file);
	int len;

	if (!w)
		return 0;
	len = escape_full(&w->esc, dst, n);
	if (!len)
		w->inexact = 1;
	return len;
}

/* Resolves the name into the slot @s, if no one else is writing it. */
static __always_inline int name_fill(char *dst, struct file *file, struct td_name_slot *s, u64 dump)
{
	u32 zero = 0;
	struct td_scratch *scratch = bpf_map_lookup_elem(&td_scratch, &zero);
	struct dentry *d = file->f_path.dentry;
	u32 len = 0;
	long n;
	u64 l;

	__sync_fetch_and_add(&s->writers, 1);
	barrier();
	if (scratch && *(volatile u64 *)&s->writers == 1) {
		__sync_fetch_and_add(&s->seq, 1);
		barrier();
		/* Taken before d_path(), so that a change racing with it
		 * leaves a slot that no longer matches, never a stale match. */
		s->dump = dump;
		s->dentry = (u64)d;
		s->mnt = (u64)file->f_path.mnt;
		s->root_mnt = scratch->root_mnt;
		s->root_dentry = scratch->root_dentry;
		s->parent = (u64)d->d_parent;
		s->inode = (u64)d->d_inode;
		s->hash_len = d->d_name.hash_len;
		s->unlinked = d->d_parent == d || !d->d_hash.pprev;	/* d_unlinked() */
		barrier();
		n = name_path(s->name, TD_NC_NAME, file);
		len = escape_slot(&s->esc, s->name, n);
		/* -ENAMETOOLONG, or no room for the escapes: too long for a
		 * slot.  Another error: not cached. */
		s->len = len ? len : n > 0 || n == -ENAMETOOLONG ? TD_NC_LONG : 0;
		l = len;
		asm volatile("" : "+r"(l));	/* test the register passed */
		if (l <= TD_NC_NAME)
			bpf_probe_read_kernel(dst, l, s->name);
		barrier();
		__sync_fetch_and_add(&s->seq, 1);
	}
	barrier();
	__sync_fetch_and_add(&s->writers, -1);
	return len ? len : name_direct(dst, file);
}

/*
 * The name of the file @file maps, as /proc/PID/maps shows it to the
 * reader, at @dst (room: TD_NAME_MAX); its length with the NUL, 0 if none:
 * d_path() failed, or the name is longer than TD_NAME_MAX, escapes
 * included (/proc/PID/maps would show it; a record cannot hold it).
 */
static __always_inline int file_name(char *dst, struct file *file)
{
	struct dentry *d = file->f_path.dentry;
	const struct dentry_operations *dop = d->d_op;
	struct td_name_work *w = name_work();
	struct td_name_slot *s;
	struct td_scratch *scratch;
	u64 dump, seq, l, root_mnt, root_dentry;
	u32 idx = 0;

	scratch = bpf_map_lookup_elem(&td_scratch, &idx);
	/* d_dname names and overlayfs' backing files: not cached */
	if (!w || !scratch || (dop && dop->d_dname) || td_backing(file))
		return name_direct(dst, file);
	dump = w->dump;
	if (!dump)
		return name_direct(dst, file);
	root_mnt = scratch->root_mnt;
	root_dentry = scratch->root_dentry;
	/* The key and the dentry's state are compared (and stored) from
	 * fresh loads, never from td_name_work, which is only the hash's. */
	w->h[0] = (u64)d;
	w->h[1] = (u64)file->f_path.mnt;
	w->h[2] = root_dentry;
	idx = ((*(volatile u64 *)&w->h[0] ^ *(volatile u64 *)&w->h[1] << 7 ^
		*(volatile u64 *)&w->h[2] << 13) * 0x9e3779b97f4a7c15ULL) >> (64 - TD_NC_BITS);
	s = bpf_map_lookup_elem(&td_names, &idx);
	if (!s)
		return name_direct(dst, file);

	seq = *(volatile u64 *)&s->seq;
	barrier();
	if (!(seq & 1) && s->dump == dump && s->dentry == (u64)d &&
	    s->mnt == (u64)file->f_path.mnt && s->root_dentry == root_dentry &&
	    s->root_mnt == root_mnt && s->parent == (u64)d->d_parent &&
	    s->inode == (u64)d->d_inode && s->hash_len == d->d_name.hash_len &&
	    s->unlinked == (d->d_parent == d || !d->d_hash.pprev)) {
		l = s->len;
		if (l == TD_NC_LONG)
			return name_direct(dst, file);
		if (l && l <= TD_NC_NAME) {
			copy_name(dst, s->name, l);
			barrier();
			if (*(volatile u64 *)&s->seq == seq)
				return l;
		}
	}
	return name_fill(dst, file, s, dump);
}

/*
 * The name /proc/PID/maps shows (get_vma_name() and show_map_vma(), 6.18),
 * written NUL-ended at @dst (room: TD_NAME_MAX); returns its length with
 * the NUL, 0 for no name.  A special mapping ([vdso], [vvar], [uprobes],
 * ...) is told by vm_ops->name being set on a VMA without a file:
 * special_mapping_vmops is the only such vm_operations_struct with a name()
 * in the tree, and its name() returns vm_special_mapping->name from
 * vm_private_data.  Not handled: overlayfs' file_user_path() (we print
 * f_path), arch_vma_name() (NULL on x86).  @vma is trusted: its fields,
 * and those of what it points to, are plain loads (no helper call).
 */
static __always_inline int vma_name(char *dst, struct vm_area_struct *vma, struct mm_struct *mm)
{
	struct anon_vma_name *anon = NULL;
	struct file *file = vma->vm_file;
	const struct vm_operations_struct *ops;
	const char *name;
	long n;

	if (bpf_core_field_exists(struct vm_area_struct___anon_name, anon_name))
		anon = ((struct vm_area_struct___anon_name *)vma)->anon_name;
	if (file && !anon)
		return file_name(dst, file);
	if (file) {
		__builtin_memcpy(dst, "[anon_shmem:", 12);
		n = bpf_probe_read_kernel_str(dst + 12, 80, (void *)anon +
					      bpf_core_field_offset(struct anon_vma_name, name));
		goto bracket;
	}
	ops = vma->vm_ops;
	if (ops && ops->name) {
		struct vm_special_mapping *sm = vma->vm_private_data;

		name = BPF_CORE_READ(sm, name);
		if (name) {
			n = bpf_probe_read_kernel_str(dst, 256, name);
			return n > 0 ? n : 0;
		}
	}
	if (vma->vm_start < mm->brk && vma->vm_end > mm->start_brk) {
		__builtin_memcpy(dst, "[heap]", 7);
		return 7;
	}
	if (vma->vm_start <= mm->start_stack && vma->vm_end >= mm->start_stack) {
		__builtin_memcpy(dst, "[stack]", 8);
		return 8;
	}
	if (!anon)
		return 0;
	__builtin_memcpy(dst, "[anon:", 6);
	n = bpf_probe_read_kernel_str(dst + 6, 80, (void *)anon +
				      bpf_core_field_offset(struct anon_vma_name, name));
	if (n <= 0)
		return 0;
	n += 6;
	goto close;
bracket:
	if (n <= 0)
		return 0;
	n += 12;
close:
	/* n counts the NUL: put "]" on it and a NUL after */
	if (n < 2 || n > 100)
		return 0;
	dst[n - 1] = ']';
	dst[n] = 0;
	return n + 1;
}

#endif /* __TD_VMA_NAMES_H */
