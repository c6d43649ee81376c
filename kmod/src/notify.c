/*
 * Copyright (C) 2026 The scoutfs-notify authors.  All rights reserved.
 *
 * This program is free software; you can redistribute it and/or
 * modify it under the terms of the GNU General Public
 * License v2 as published by the Free Software Foundation.
 *
 * This program is distributed in the hope that it will be useful,
 * but WITHOUT ANY WARRANTY; without even the implied warranty of
 * MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the GNU
 * General Public License for more details.
 */
#include <linux/kernel.h>
#include <linux/fs.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/uaccess.h>
#include <linux/wait.h>
#include <linux/sched.h>
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/ktime.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/log2.h>
#include <linux/mm.h>

#include "format.h"
#include "ioctl.h"
#include "super.h"
#include "counters.h"
#include "inode.h"
#include "notify.h"

/*
 * Access notifications are a best-effort observation stream for
 * archive agents and auditors.  They must never slow or block the I/O
 * they describe, so the design trades completeness for cost:
 *
 * - Nothing at all is recorded until a reader attaches.  The hooks in
 *   the I/O paths test a single flag in the super block info and fall
 *   through.
 *
 * - Records are stored in a fixed ring that's allocated with the
 *   mount.  Emitting never sleeps or allocates, it takes a spinlock
 *   for the time it takes to copy 64 bytes.  When the ring is full the
 *   new record is dropped and only its sequence number is consumed so
 *   the reader sees exactly how many records it lost.
 *
 * - There's one reader, the first directory file that drains the ring.
 *   It stays attached until the file is released, so a reader that
 *   exits or is killed detaches with its final fput.  The open file
 *   also pins the mount so teardown never races with a reader.
 *
 * The reader copies records straight out of the ring without holding
 * the lock: producers only write slots between head and the tail that
 * only the reader advances, after its copy succeeded.
 *
 * A reader can ask for merged records: a call that continues the
 * newest record (the next sequential read of the same file by the same
 * process and credentials, or the same open again) then extends that
 * record and counts the call in it instead of taking a slot and a seq.
 * A sequential reader of a big file makes one record per drain instead
 * of one per call, and the busier the mount, the longer the daemon's
 * batches and so the more each record covers.
 *
 * A waiting reader can ask for a batch.  Producers then only wake it
 * when the ring goes from empty to non-empty and when it reaches the
 * batch size the reader is waiting for, so a busy mount costs a couple
 * of wakeups per batch rather than one per record, and a quiet one
 * still delivers its first record at once.
 *
 * A forced unmount (umount -f) must not be held up by the reader's
 * open file.  Once it begins, nothing more is recorded, a waiting
 * reader is woken, it gets what is left in the ring and then -ENOLINK
 * so that it closes its file, and no new reader can attach.
 */

#define NOTIFY_RING_BYTES	(64 * 1024)
#define NOTIFY_RING_NR		(NOTIFY_RING_BYTES / \
				 sizeof(struct scoutfs_ioctl_notify_record))
#define NOTIFY_RING_MASK	(NOTIFY_RING_NR - 1)
#define NOTIFY_BATCH_US_MAX	USEC_PER_SEC

struct notify_info {
	struct super_block *sb;

	/* protects the ring indices, seq, the reader, and slot writes */
	spinlock_t lock;
	u64 head;
	u64 tail;
	u64 next_seq;
	struct file *reader;
	/* wake the waiting reader when the ring holds this many, 0: don't */
	u64 wake_nr;
	/* the reader asked for merged records (its latest call's flag) */
	bool merge;
	/* slots below this may be being copied out: never merge into them */
	u64 copy_end;
	/* a forced unmount has begun: record nothing, readers get -ENOLINK */
	bool shutdown;

	/* serializes drains from threads sharing the reader file */
	struct mutex read_mutex;
	wait_queue_head_t waitq;

	struct scoutfs_ioctl_notify_record *ring;
};

#define DECLARE_NOTIFY_INFO(sb, name) \
	struct notify_info *name = SCOUTFS_SB(sb)->notify_info

/*
 * Merge the call that @rec describes into the newest record in the
 * ring if it continues it, for a reader that asked for merging.
 *
 * The reader copies slots out of the ring without the lock, so the one
 * thing that makes merging safe is that we never write a slot it may be
 * reading: copy_records() sets copy_end, under this lock, to the end of
 * the slots it is about to copy before it drops the lock, and we only
 * merge into a slot at or beyond it.  Those slots are ours until a later
 * drain takes the lock again, and it then sees everything we wrote
 * under the lock.  So a record is never changed once a drain has begun
 * to copy it: a call after that takes a new record, and no call is
 * counted twice or missed.
 *
 * Only the newest record qualifies, and only when nothing was stored or
 * dropped after it (its seq is the last one given out), so each record
 * still stands for calls made between its seq and the next, and a seq
 * gap still counts lost records of one call each.  A record stored for
 * a reader that didn't merge (@calls 0) is never merged into.
 */
static bool merge_record(struct notify_info *ninf,
			 struct scoutfs_ioctl_notify_record *rec)
{
	struct scoutfs_ioctl_notify_record *last;

	if (!ninf->merge || ninf->head == ninf->tail ||
	    ninf->head - 1 < ninf->copy_end)
		return false;

	last = &ninf->ring[(ninf->head - 1) & NOTIFY_RING_MASK];
	if (last->seq + 1 != ninf->next_seq || last->calls == 0 ||
	    last->calls == U32_MAX || last->op != rec->op ||
	    last->ino != rec->ino || last->pid != rec->pid ||
	    last->uid != rec->uid || last->gid != rec->gid)
		return false;

	if (rec->op == SCOUTFS_NOTIFY_OP_READ &&
	    rec->offset == last->offset + last->len)
		last->len += rec->len;
	else if (!(rec->op == SCOUTFS_NOTIFY_OP_OPEN &&
		   rec->flags == last->flags))
		return false;

	last->calls++;
	return true;
}

/*
 * Store a record in the ring, or drop it if the ring is full.  Either
 * way the record consumes a sequence number so that gaps in the seqs
 * that the reader sees account for every dropped record; a call merged
 * into the newest record consumes neither a slot nor a seq.  Returns
 * true if the reader might need to be woken: the ring went from empty
 * to non-empty, or it now holds the batch that the reader waits for.
 */
static bool store_record(struct super_block *sb, struct notify_info *ninf,
			 struct scoutfs_ioctl_notify_record *rec)
{
	bool wake = false;

	assert_spin_locked(&ninf->lock);

	if (merge_record(ninf, rec)) {
		scoutfs_inc_counter(sb, notify_merged);
		return false;
	}

	rec->seq = ninf->next_seq++;
	rec->calls = ninf->merge ? 1 : 0;

	if (ninf->head - ninf->tail < NOTIFY_RING_NR) {
		wake = ninf->head == ninf->tail;
		ninf->ring[ninf->head & NOTIFY_RING_MASK] = *rec;
		ninf->head++;
		wake |= ninf->head - ninf->tail == ninf->wake_nr;
		scoutfs_inc_counter(sb, notify_emitted);
	} else {
		scoutfs_inc_counter(sb, notify_dropped_ring_full);
	}

	return wake;
}

/*
 * The reader only sleeps after seeing an empty ring under the lock, so
 * only the store that makes the ring non-empty needs to wake it.  The
 * barrier orders our head update before testing for waiters against
 * the waiter's queueing before it tests the ring.
 */
static void wake_reader(struct notify_info *ninf)
{
	smp_mb();
	if (waitqueue_active(&ninf->waitq))
		wake_up(&ninf->waitq);
}

static void init_record(struct scoutfs_ioctl_notify_record *rec, u32 op,
			u64 ino, u64 offset, u64 len, u32 flags)
{
	*rec = (struct scoutfs_ioctl_notify_record) {
		.ino = ino,
		.time_ns = ktime_to_ns(ktime_get_real()),
		.offset = offset,
		.len = len,
		.op = op,
		.pid = task_tgid_nr(current),
		.uid = from_kuid(&init_user_ns, current_fsuid()),
		.gid = from_kgid(&init_user_ns, current_fsgid()),
		.flags = flags,
	};
}

/*
 * Record an access for the attached reader.  Callers have already seen
 * scoutfs_notify_watched() return true, but the reader can detach
 * before we get the lock, so we check again and record nothing once
 * it's gone.  The record is built before taking the lock so the
 * critical section is just the copy into the ring.
 */
void scoutfs_notify_emit(struct super_block *sb, u32 op, u64 ino,
			 u64 offset, u64 len, u32 flags)
{
	DECLARE_NOTIFY_INFO(sb, ninf);
	struct scoutfs_ioctl_notify_record rec;
	bool wake = false;

	init_record(&rec, op, ino, offset, len, flags);

	spin_lock(&ninf->lock);
	if (ninf->reader && !ninf->shutdown)
		wake = store_record(sb, ninf, &rec);
	spin_unlock(&ninf->lock);

	if (wake)
		wake_reader(ninf);
}

/*
 * Regular files didn't need an open method until access notifications
 * wanted to see opens.  It only records, it never fails an open that
 * the vfs would otherwise have allowed.  The vfs refuses O_DIRECT
 * after calling ->open when the mapping can't do direct IO, we don't
 * record those opens that are about to fail.
 */
int scoutfs_notify_open(struct inode *inode, struct file *file)
{
	struct super_block *sb = inode->i_sb;

	if (scoutfs_notify_watched(sb) &&
	    (!(file->f_flags & O_DIRECT) || file->f_mapping->a_ops->direct_IO))
		scoutfs_notify_emit(sb, SCOUTFS_NOTIFY_OP_OPEN, scoutfs_ino(inode),
				    0, 0, file->f_flags);

	return 0;
}

void scoutfs_notify_record_read(struct inode *inode, loff_t pos, size_t len)
{
	scoutfs_notify_emit(inode->i_sb, SCOUTFS_NOTIFY_OP_READ,
			    scoutfs_ino(inode), pos, len, 0);
}

/*
 * Reads through a mapping are page faults that we can't afford to
 * record one by one, so a notify reader sees the mapping itself: the
 * file range it covers and whether it's shared (VM_MAYSHARE, so
 * MAP_SHARED of a read-only file counts) and writable.
 */
void scoutfs_notify_record_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct inode *inode = file_inode(file);
	u32 flags = 0;

	if (vma->vm_flags & VM_MAYSHARE)
		flags |= SCOUTFS_NOTIFY_MMAP_SHARED;
	if (vma->vm_flags & VM_WRITE)
		flags |= SCOUTFS_NOTIFY_MMAP_WRITE;

	scoutfs_notify_emit(inode->i_sb, SCOUTFS_NOTIFY_OP_MMAP,
			    scoutfs_ino(inode), (u64)vma->vm_pgoff << PAGE_SHIFT,
			    vma->vm_end - vma->vm_start, flags);
}

/*
 * Make the file the mount's reader if there isn't one yet.  Recording
 * starts here, and the first record of the observed period is an
 * attach record stored under the same lock, so that it precedes every
 * record that the hooks emit once they see the watched flag.  Every
 * call of the reader also says here whether the records stored from
 * now on are merged.
 */
static int attach_reader(struct super_block *sb, struct notify_info *ninf,
			 struct file *file, bool merge)
{
	struct scoutfs_ioctl_notify_record rec;
	bool attached = false;
	bool wake = false;
	int ret = 0;

	init_record(&rec, SCOUTFS_NOTIFY_OP_ATTACH, 0, 0, 0, 0);

	spin_lock(&ninf->lock);
	if (ninf->shutdown) {
		ret = -ENOLINK;
	} else if (ninf->reader == NULL) {
		ninf->reader = file;
		ninf->merge = merge;
		WRITE_ONCE(SCOUTFS_SB(sb)->notify_watched, true);
		wake = store_record(sb, ninf, &rec);
		attached = true;
	} else if (ninf->reader != file) {
		ret = -EBUSY;
	} else {
		ninf->merge = merge;
	}
	spin_unlock(&ninf->lock);

	if (attached)
		scoutfs_inc_counter(sb, notify_reader_attached);
	if (wake)
		wake_reader(ninf);

	return ret;
}

/*
 * Directory files are released here, which is how an attached reader
 * detaches, however its file was closed.  Records still in the ring
 * are kept for the next reader.  The file can't be released while an
 * ioctl is using it so there's no draining reader to worry about.
 */
int scoutfs_notify_release(struct inode *inode, struct file *file)
{
	struct super_block *sb = inode->i_sb;
	DECLARE_NOTIFY_INFO(sb, ninf);

	if (scoutfs_notify_watched(sb)) {
		spin_lock(&ninf->lock);
		if (ninf->reader == file) {
			ninf->reader = NULL;
			ninf->merge = false;
			WRITE_ONCE(SCOUTFS_SB(sb)->notify_watched, false);
		}
		spin_unlock(&ninf->lock);
	}

	return 0;
}

static u64 ring_count(struct notify_info *ninf)
{
	u64 nr;

	spin_lock(&ninf->lock);
	nr = ninf->head - ninf->tail;
	spin_unlock(&ninf->lock);

	return nr;
}

/* a waiting reader is done when the ring holds nr or we're unmounting */
static bool wait_done(struct notify_info *ninf, u64 nr)
{
	return ring_count(ninf) >= nr || READ_ONCE(ninf->shutdown);
}

static void set_wake_nr(struct notify_info *ninf, u64 nr)
{
	spin_lock(&ninf->lock);
	ninf->wake_nr = nr;
	spin_unlock(&ninf->lock);
}

/*
 * Wait for a batch of records once some are in the ring.  Producers
 * only wake us when the ring reaches the batch size (set under the
 * lock they store under), and the optional batch timer is an hrtimer
 * so that a batch can be gathered for less than a jiffy.  Without the
 * timer the caller's remaining timeout bounds the wait.  Returns 0
 * when the batch is there or the time is up, -EINTR on a signal.
 */
static long wait_batch(struct notify_info *ninf, u64 nr, u32 batch_us,
		       long timeout)
{
	long ret;

	if (nr <= 1 || wait_done(ninf, nr))
		return 0;

	set_wake_nr(ninf, nr);
	if (batch_us) {
		ret = wait_event_interruptible_hrtimeout(ninf->waitq,
					wait_done(ninf, nr),
					ns_to_ktime((u64)batch_us * NSEC_PER_USEC));
		if (ret == -ETIME)
			ret = 0;
	} else {
		ret = wait_event_interruptible_timeout(ninf->waitq,
						       wait_done(ninf, nr),
						       timeout);
	}
	set_wake_nr(ninf, 0);

	return ret < 0 ? -EINTR : 0;
}

/*
 * Copy as many whole records as fit from the tail of the ring to
 * userspace.  The tail is only advanced past the records that were
 * completely copied, a fault leaves the rest in the ring for the next
 * call.  Returns the number of records copied, or -EFAULT if a fault
 * prevented copying any.  copy_end tells producers, before we drop the
 * lock, which slots they must no longer merge into (merge_record()).
 */
static long copy_records(struct notify_info *ninf,
			 struct scoutfs_ioctl_notify_record __user *urecs,
			 u64 nr)
{
	const size_t size = sizeof(struct scoutfs_ioctl_notify_record);
	unsigned long left;
	u64 copied = 0;
	u64 avail;
	u64 tail;
	u64 head;
	u64 idx;
	u64 n;

	spin_lock(&ninf->lock);
	head = ninf->head;
	tail = ninf->tail;
	avail = min(head - tail, nr);
	ninf->copy_end = tail + avail;
	spin_unlock(&ninf->lock);

	while (copied < avail) {
		idx = (tail + copied) & NOTIFY_RING_MASK;
		n = min_t(u64, avail - copied, NOTIFY_RING_NR - idx);

		left = copy_to_user(&urecs[copied], &ninf->ring[idx], n * size);
		copied += n - DIV_ROUND_UP(left, size);
		if (left)
			break;
	}

	if (copied > 0) {
		spin_lock(&ninf->lock);
		ninf->tail = tail + copied;
		spin_unlock(&ninf->lock);
	}

	if (copied == 0 && avail > 0)
		return -EFAULT;

	return copied;
}

/*
 * Drain records for the caller, attaching it as the reader on its
 * first call.  Arguments are checked before attaching so that a bad
 * call changes nothing.  Waiting is interruptible and returns -EINTR
 * rather than restarting so a caller's timeout isn't extended.  A
 * waiting caller first waits for any record, as it always has, and
 * only then, if it asked for a batch, for the rest of the batch.  The
 * merge flag of each call decides merging from then on, so a reader
 * that doesn't pass it sees one record per call.
 */
long scoutfs_ioc_read_notify(struct file *file, unsigned long arg)
{
	struct super_block *sb = file_inode(file)->i_sb;
	DECLARE_NOTIFY_INFO(sb, ninf);
	struct scoutfs_ioctl_read_notify __user *urn = (void __user *)arg;
	struct scoutfs_ioctl_read_notify rn;
	long timeout;
	long ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;

	if (!S_ISDIR(file_inode(file)->i_mode))
		return -ENOTDIR;

	if (copy_from_user(&rn, urn, sizeof(rn)))
		return -EFAULT;

	if (rn.recs_nr == 0 || (rn.flags & SCOUTFS_IOC_RN__UNKNOWN) ||
	    rn._reserved != 0 ||
	    (rn.timeout_ms != 0 && !(rn.flags & SCOUTFS_IOC_RN_WAIT)) ||
	    rn.timeout_ms > U32_MAX ||
	    ((rn.batch_nr || rn.batch_us) && !(rn.flags & SCOUTFS_IOC_RN_WAIT)) ||
	    rn.batch_nr > rn.recs_nr || rn.batch_us > NOTIFY_BATCH_US_MAX ||
	    (rn.batch_us && rn.batch_nr <= 1))
		return -EINVAL;

	ret = attach_reader(sb, ninf, file, rn.flags & SCOUTFS_IOC_RN_MERGE);
	if (ret < 0)
		return ret;

	if (mutex_lock_interruptible(&ninf->read_mutex))
		return -EINTR;

	if (rn.flags & SCOUTFS_IOC_RN_WAIT) {
		if (rn.timeout_ms)
			timeout = msecs_to_jiffies(rn.timeout_ms);
		else
			timeout = MAX_SCHEDULE_TIMEOUT;

		if (!wait_done(ninf, 1)) {
			ret = wait_event_interruptible_timeout(ninf->waitq,
							       wait_done(ninf, 1),
							       timeout);
			if (ret < 0) {
				ret = -EINTR;
				goto out;
			}
			if (timeout != MAX_SCHEDULE_TIMEOUT)
				timeout = ret;
		}

		if (timeout > 0 && ring_count(ninf) > 0) {
			ret = wait_batch(ninf, min_t(u64, rn.batch_nr, NOTIFY_RING_NR),
					 rn.batch_us, timeout);
			if (ret < 0)
				goto out;
		}
	}

	if (READ_ONCE(ninf->shutdown) && ring_count(ninf) == 0) {
		ret = -ENOLINK;
		goto out;
	}

	ret = copy_records(ninf, (void __user *)(unsigned long)rn.recs_ptr,
			   rn.recs_nr);
out:
	mutex_unlock(&ninf->read_mutex);
	return ret;
}

/*
 * A forced unmount has begun.  The reader's open file keeps the mount
 * busy, so the unmount can only finish once the reader has closed it:
 * stop recording and wake a waiting reader so it finds the ring empty
 * and -ENOLINK at once rather than at the end of its timeout.
 */
void scoutfs_notify_umount_begin(struct super_block *sb)
{
	DECLARE_NOTIFY_INFO(sb, ninf);

	if (!ninf)
		return;

	spin_lock(&ninf->lock);
	ninf->shutdown = true;
	spin_unlock(&ninf->lock);

	wake_up_all(&ninf->waitq);
}

int scoutfs_notify_setup(struct super_block *sb)
{
	struct scoutfs_sb_info *sbi = SCOUTFS_SB(sb);
	struct notify_info *ninf;

	BUILD_BUG_ON(sizeof(struct scoutfs_ioctl_notify_record) != 64);
	BUILD_BUG_ON(!is_power_of_2(NOTIFY_RING_NR));

	ninf = kzalloc(sizeof(struct notify_info), GFP_KERNEL);
	if (!ninf)
		return -ENOMEM;

	ninf->ring = vzalloc(NOTIFY_RING_BYTES);
	if (!ninf->ring) {
		kfree(ninf);
		return -ENOMEM;
	}

	ninf->sb = sb;
	spin_lock_init(&ninf->lock);
	ninf->next_seq = 1;
	mutex_init(&ninf->read_mutex);
	init_waitqueue_head(&ninf->waitq);

	sbi->notify_info = ninf;
	return 0;
}

/*
 * The reader's open file pins the mount, so by the time the super is
 * put it has been released and detached.
 */
void scoutfs_notify_destroy(struct super_block *sb)
{
	struct scoutfs_sb_info *sbi = SCOUTFS_SB(sb);
	struct notify_info *ninf = sbi->notify_info;

	if (ninf) {
		WARN_ON_ONCE(ninf->reader != NULL);
		vfree(ninf->ring);
		kfree(ninf);
		sbi->notify_info = NULL;
	}
}
