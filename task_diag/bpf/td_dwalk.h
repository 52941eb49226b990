/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A file's name as d_path() prints it, by walking its dentries and mounts
 * with plain (probe) loads: the VMA name path for kernels whose verifier
 * does not trust vm_area_struct.vm_file (every kernel before the late-2025
 * change that marked it trusted-or-null), where bpf_d_path() refuses the
 * pointer; and, on every kernel, for overlayfs' backing files, whose
 * user_path no helper takes.
 *
 * What it follows, from fs/d_path.c (the same from 5.13 to 6.18):
 *  - d_path(): a dentry with d_op->d_dname that is not the root of its
 *    mount is named by that callback.  Two are done here, by their
 *    address (kallsyms): simple_dname(), "/NAME (deleted)" (memfd, SysV
 *    shm, shared /dev/zero, every d_alloc_pseudo() file), and
 *    anon_inodefs_dname(), "anon_inode:NAME" (io_uring, perf, bpf maps).
 *    Any other (a dma-buf's, which reads state under a lock) is INEXACT.
 *    Otherwise " (deleted)" goes after an unlinked dentry (d_unlinked():
 *    IS_ROOT or unhashed), then prepend_path().
 *  - __prepend_path(): up from the dentry until the reader's root; at the
 *    root of a mount, on to its mountpoint in the parent mount; at the root
 *    of a mount without a parent (another namespace's root, an internal or
 *    detached mount) stop with what was found; a dentry that is its own
 *    parent but not its mount's root escaped (the result is then "/").
 *    Nothing found: "/".
 *
 * What d_path() has and this lacks: rename_lock and mount_lock (neither in
 * BTF nor, without CONFIG_KALLSYMS_ALL, in kallsyms), which make it retry
 * a walk that raced with a rename or a mount change.  Instead the walk is
 * done twice and a checksum of every dentry, name and mount it passed is
 * compared: a change between the two gives INEXACT, and the driver reads
 * that task's VMAs from /proc/PID/maps (td_iter.h, TD_MSG_F_VMA_FROM_PROC),
 * never a wrong name.  A path deeper than TD_WALK_STEPS components and
 * mounts, or longer than TD_NAME_MAX, is INEXACT too.
 *
 * Every load goes through a pointer the verifier does not trust, and so is
 * a probe: a dentry freed under us (RCU keeps it readable while the
 * iterator's program runs) reads as it was, or faults to zero.
 */
#ifndef __TD_DWALK_H
#define __TD_DWALK_H

#define TD_WALK_STEPS	256		/* components and mount crossings */
#define TD_WALK_BUF	(2 * TD_NAME_MAX)
#define TD_WALK_END	TD_NAME_MAX	/* the name is built backwards from here */
#define TD_INEXACT	(-1000)		/* td_walk_name(): cannot say exactly */

extern const void simple_dname __ksym __weak;
extern const void anon_inodefs_dname __ksym __weak;

enum { TD_WALK_ON, TD_WALK_DONE, TD_WALK_ESCAPED, TD_WALK_LONG };

/* The walk's state, per CPU, used under show_task()'s lock of td_scratch[0]
 * like the name cache. */
struct td_walk {
	u64 dentry, mnt;		/* where the walk is: struct dentry *, struct mount * */
	u64 root_dentry, root_vfsmnt;	/* the reader's root */
	u64 sum;			/* what the walk passed, mixed */
	u32 pos;			/* buf[pos, TD_WALK_END) holds the name so far */
	u32 state;			/* TD_WALK_* */
	u32 copy;			/* 0: only the sum (the second pass) */
	u32 noinline;			/* always 0: bpf_loop()'s flags (see TD_ESCAPE) */
	u32 out;			/* td_walk_name()'s result starts at buf[out] */
	char buf[TD_WALK_BUF];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct td_walk);
} td_walk SEC(".maps");

static __always_inline u64 td_mix(u64 sum, u64 v)
{
	return (sum ^ v) * 0x100000001b3ULL + (v >> 29);
}

static __always_inline struct mount *real_mount(struct vfsmount *m)
{
	return (void *)m - bpf_core_field_offset(struct mount, mnt);
}

/* bpf_loop()'s context must be on the stack: it says where the state is. */
struct td_walk_ctx {
	struct td_walk *w;
};

/* One step of __prepend_path(). */
static long td_walk_step(u32 i, struct td_walk_ctx *c)
{
	struct td_walk *w = c->w;
	struct dentry *d = (void *)w->dentry, *parent;
	struct mount *m = (void *)w->mnt, *mp;
	const unsigned char *name;
	u64 hash_len;
	u32 len, pos;

	if ((u64)d == w->root_dentry && (u64)&m->mnt == w->root_vfsmnt) {
		w->state = TD_WALK_DONE;
		return 1;
	}
	if (d == BPF_CORE_READ(m, mnt.mnt_root)) {
		mp = BPF_CORE_READ(m, mnt_parent);
		if (mp == m || !mp) {		/* a global root */
			w->state = TD_WALK_DONE;
			return 1;
		}
		w->dentry = (u64)BPF_CORE_READ(m, mnt_mountpoint);
		w->mnt = (u64)mp;
		w->sum = td_mix(w->sum, (u64)mp);
		return 0;
	}
	parent = BPF_CORE_READ(d, d_parent);
	if (parent == d || !parent) {
		w->state = TD_WALK_ESCAPED;
		return 1;
	}
	hash_len = BPF_CORE_READ(d, d_name.hash_len);
	name = BPF_CORE_READ(d, d_name.name);
	len = hash_len >> 32;
	w->sum = td_mix(td_mix(td_mix(w->sum, (u64)d), hash_len), (u64)name);
	pos = w->pos;
	if (len + 1 > pos) {
		w->state = TD_WALK_LONG;
		return 1;
	}
	pos -= len + 1;
	if (w->copy) {
		w->buf[pos & (TD_NAME_MAX - 1)] = '/';
		if (bpf_probe_read_kernel(w->buf + ((pos + 1) & (TD_NAME_MAX - 1)),
					  len & (TD_NAME_MAX - 1), name))
			w->sum = td_mix(w->sum, 1);	/* a read that faulted: the pass is not to be trusted */
	}
	w->pos = pos;
	w->dentry = (u64)parent;
	return 0;
}

/* One pass of prepend_path() from @dentry on @vfsmnt; returns TD_WALK_*. */
static __always_inline u32 td_walk_pass(struct td_walk *w, u64 dentry, u64 vfsmnt, u32 copy)
{
	struct td_walk_ctx c = { .w = w };

	w->dentry = dentry;
	w->mnt = (u64)real_mount((void *)vfsmnt);
	w->sum = 0;
	w->pos = TD_WALK_END;
	w->state = TD_WALK_ON;
	w->copy = copy;
	bpf_loop(TD_WALK_STEPS, td_walk_step, &c, w->noinline);
	return w->state;
}

/* The result: " (deleted)" after the name at w->buf[@pos, @end) if
 * @deleted, then the NUL; its length with the NUL, or -ENAMETOOLONG.
 * w->out says where it starts. */
static __always_inline long td_walk_out(struct td_walk *w, u32 pos, u32 end, bool deleted)
{
	u32 n = end - pos + (deleted ? 10 : 0) + 1;

	if (pos >= end || end > TD_WALK_END || n > TD_NAME_MAX)
		return -ENAMETOOLONG;
	if (deleted)
		__builtin_memcpy(w->buf + (end & (TD_WALK_BUF - 1)), " (deleted)", 10);
	w->buf[(end + (deleted ? 10 : 0)) & (TD_WALK_BUF - 1)] = 0;
	w->out = pos;
	return n;
}

/*
 * d_path() of the path {@vfsmnt, @dentry} relative to the reader's root
 * {@root_mnt, @root_dentry} (the viewer's fs->root),
 * NUL-ended in td_walk's buf from its out; returns its length with the
 * NUL, -ENAMETOOLONG, or TD_INEXACT.  td_walk_into() copies it.
 */
static __noinline long td_walk_name(u64 vfsmnt, u64 dentry, u64 root_mnt, u64 root_dentry)
{
	struct dentry *d = (void *)dentry;
	const struct dentry_operations *dop = BPF_CORE_READ(d, d_op);
	struct td_walk *w;
	u32 zero = 0, state, pos, len;
	bool unlinked;
	u64 sum, dname;

	w = bpf_map_lookup_elem(&td_walk, &zero);
	if (!w || !root_mnt)
		return TD_INEXACT;
	/* d_unlinked(): unhashed and not IS_ROOT (a disconnected dentry,
	 * from open_by_handle_at(), is IS_ROOT and prints "/") */
	unlinked = BPF_CORE_READ(d, d_parent) != d && !BPF_CORE_READ(d, d_hash.pprev);
	dname = dop ? (u64)BPF_CORE_READ(dop, d_dname) : 0;
	if (dname && (BPF_CORE_READ(d, d_parent) != d ||
		      d != BPF_CORE_READ((struct vfsmount *)vfsmnt, mnt_root))) {
		u64 hash_len = BPF_CORE_READ(d, d_name.hash_len);
		const unsigned char *name = BPF_CORE_READ(d, d_name.name);

		len = hash_len >> 32;
		if (len >= TD_NAME_MAX - 16)
			return -ENAMETOOLONG;
		if (dname == (u64)&simple_dname && dname) {
			w->buf[0] = '/';
			if (bpf_probe_read_kernel(w->buf + 1, len & (TD_NAME_MAX - 1), name))
				return TD_INEXACT;
			return td_walk_out(w, 0, len + 1, true);
		}
		if (dname == (u64)&anon_inodefs_dname && dname) {
			__builtin_memcpy(w->buf, "anon_inode:", 11);
			if (bpf_probe_read_kernel(w->buf + 11, len & (TD_NAME_MAX - 1), name))
				return TD_INEXACT;
			return td_walk_out(w, 0, len + 11, false);
		}
		return TD_INEXACT;
	}
	w->root_dentry = root_dentry;
	w->root_vfsmnt = root_mnt;
	state = td_walk_pass(w, dentry, vfsmnt, 1);
	if (state == TD_WALK_ON)
		return TD_INEXACT;		/* deeper than TD_WALK_STEPS */
	if (state == TD_WALK_LONG)
		return -ENAMETOOLONG;
	sum = w->sum;
	pos = w->pos;
	if (td_walk_pass(w, dentry, vfsmnt, 0) != state || w->sum != sum || w->pos != pos)
		return TD_INEXACT;		/* a rename or a mount raced with the walk */
	if (state == TD_WALK_ESCAPED || pos >= TD_WALK_END) {
		pos = TD_WALK_END - 1;
		w->buf[pos] = '/';
	}
	return td_walk_out(w, pos, TD_WALK_END, unlinked);
}

/* td_walk_name() into @dst, whose room @size is a constant where this is
 * inlined (the verifier must see the copy bounded). */
static __always_inline long td_walk_into(char *dst, u32 size, u64 vfsmnt, u64 dentry,
					 u64 root_mnt, u64 root_dentry)
{
	long n = td_walk_name(vfsmnt, dentry, root_mnt, root_dentry);
	struct td_walk *w;
	u32 zero = 0;
	u64 l = n;

	if (n <= 0)
		return n;
	if (n > size)
		return -ENAMETOOLONG;
	w = bpf_map_lookup_elem(&td_walk, &zero);
	if (!w)
		return TD_INEXACT;
	asm volatile("" : "+r"(l));
	if (l > size)
		return -ENAMETOOLONG;
	if (bpf_probe_read_kernel(dst, l, w->buf + (w->out & (TD_NAME_MAX - 1))))
		return TD_INEXACT;
	return n;
}

/*
 * Whether @file is a backing file (fs/file_table.c, 6.6 on), for which
 * /proc/PID/maps names user_path and its inode (file_user_path(),
 * file_user_inode()), not f_path: what overlayfs, and FUSE passthrough,
 * map.  FMODE_BACKING is not one bit across kernels (bit 25, then 24 from
 * the fsnotify pre-content change, which stable kernels took at various
 * points: Debian's 6.12.118 has 24), and the bit next to it meant other
 * things (FMODE_DIO_PARALLEL_WRITE, FMODE_NONOTIFY).  So either bit only
 * makes the file a candidate, and it is one if what sits at user_path
 * names a dentry of an overlayfs or FUSE inode other than f_path's: memory
 * past a struct file that is not a backing_file (read with probes, which
 * cannot fault) does not pass for that.
 */
#define TD_FMODE_BACKING_BITS	(3U << 24)
#define OVERLAYFS_SUPER_MAGIC	0x794c7630
#define FUSE_SUPER_MAGIC	0x65735546

static __always_inline bool td_backing(struct file *file)
{
	struct backing_file *bf = (void *)file;
	struct dentry *ud;
	unsigned long magic;

	if (!bpf_core_field_exists(struct backing_file, user_path) ||
	    !(BPF_CORE_READ(file, f_mode) & TD_FMODE_BACKING_BITS))
		return false;
	ud = BPF_CORE_READ(bf, user_path.dentry);
	if (!ud || ud == BPF_CORE_READ(file, f_path.dentry))
		return false;
	magic = BPF_CORE_READ(ud, d_inode, i_sb, s_magic);
	return magic == OVERLAYFS_SUPER_MAGIC || magic == FUSE_SUPER_MAGIC;
}

static __always_inline void td_user_path(struct file *file, u64 *mnt, u64 *dentry)
{
	if (td_backing(file)) {
		struct backing_file *bf = (void *)file;

		*mnt = (u64)BPF_CORE_READ(bf, user_path.mnt);
		*dentry = (u64)BPF_CORE_READ(bf, user_path.dentry);
		return;
	}
	*mnt = (u64)BPF_CORE_READ(file, f_path.mnt);
	*dentry = (u64)BPF_CORE_READ(file, f_path.dentry);
}

#endif /* __TD_DWALK_H */
