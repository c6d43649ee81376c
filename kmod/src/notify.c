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
#ifdef KC_USE_IOMAP_FOR_IO
#include <linux/uio.h>
#endif

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
 *
 * Asynchronous direct reads (aio, io_uring) complete after read_iter
 * returned -EIOCBQUEUED, through the kiocb's ki_complete, which can be
 * called in interrupt context.  They are recorded there, with the
 * bytes actually read and the identity of the task that submitted
 * them, which is kept in a small table with the mount: so the ring's
 * lock is taken with interrupts disabled everywhere.
 */

#define NOTIFY_RING_BYTES	(64 * 1024)
#define NOTIFY_RING_NR		(NOTIFY_RING_BYTES / \
				 sizeof(struct scoutfs_ioctl_notify_record))
#define NOTIFY_RING_MASK	(NOTIFY_RING_NR - 1)
#define NOTIFY_BATCH_US_MAX	USEC_PER_SEC

/* who a record is about: the task that asked for the access */
struct notify_ident {
	u32 pid;
	u32 uid;
	u32 gid;
};

#ifdef KC_USE_IOMAP_FOR_IO
/* asynchronous direct reads in flight that are recorded at completion */
#define NOTIFY_DIO_NR		64

/*
 * A queued asynchronous direct read: its kiocb, the completion that we
 * call once we've recorded it, and what the record needs from the
 * submitter.  A slot is free when its iocb is NULL.
 */
struct notify_dio_slot {
	struct kiocb *iocb;
	void (*ki_complete)(struct kiocb *iocb, long ret);
	u64 ino;
	loff_t pos;
	struct notify_ident id;
};
#endif

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

#ifdef KC_USE_IOMAP_FOR_IO
	/* the queued direct reads, taken and freed in any context */
	spinlock_t dio_lock;
	struct notify_dio_slot dio[NOTIFY_DIO_NR];
#endif
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
 * a reader that didn't merge (@calls 0) is never merged into, and calls
 * merge only with the same flags: a direct read recorded when it was
 * queued (SCOUTFS_NOTIFY_READ_SUBMITTED, the length asked for) never
 * merges with one recorded when it completed (the bytes read).
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
	    last->uid != rec->uid || last->gid != rec->gid ||
	    last->flags != rec->flags)
		return false;

	if (rec->op == SCOUTFS_NOTIFY_OP_READ &&
	    rec->offset == last->offset + last->len)
		last->len += rec->len;
	else if (rec->op != SCOUTFS_NOTIFY_OP_OPEN)
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

/* the current task is the one accessing: only in process context */
static void current_ident(struct notify_ident *id)
{
	id->pid = task_tgid_nr(current);
	id->uid = from_kuid(&init_user_ns, current_fsuid());
	id->gid = from_kgid(&init_user_ns, current_fsgid());
}

static void init_record(struct scoutfs_ioctl_notify_record *rec, u32 op,
			u64 ino, u64 offset, u64 len, u32 flags,
			const struct notify_ident *id)
{
	*rec = (struct scoutfs_ioctl_notify_record) {
		.ino = ino,
		.time_ns = ktime_to_ns(ktime_get_real()),
		.offset = offset,
		.len = len,
		.op = op,
		.pid = id->pid,
		.uid = id->uid,
		.gid = id->gid,
		.flags = flags,
	};
}

/*
 * Record an access for the attached reader on behalf of the task @id.
 * Callers have already seen scoutfs_notify_watched() return true, but
 * the reader can detach before we get the lock, so we check again and
 * record nothing once it's gone.  The record is built before taking
 * the lock so the critical section is just the copy into the ring.
 * This runs in any context, I/O completion interrupts included: it
 * doesn't look at current, sleep or allocate, and the lock is taken
 * with interrupts disabled.
 */
static void emit_ident(struct super_block *sb, u32 op, u64 ino,
		       u64 offset, u64 len, u32 flags,
		       const struct notify_ident *id)
{
	DECLARE_NOTIFY_INFO(sb, ninf);
	struct scoutfs_ioctl_notify_record rec;
	unsigned long irq_flags;
	bool wake = false;

	init_record(&rec, op, ino, offset, len, flags, id);

	spin_lock_irqsave(&ninf->lock, irq_flags);
	if (ninf->reader && !ninf->shutdown)
		wake = store_record(sb, ninf, &rec);
	spin_unlock_irqrestore(&ninf->lock, irq_flags);

	if (wake)
		wake_reader(ninf);
}

/* an access by the current task, in process context */
void scoutfs_notify_emit(struct super_block *sb, u32 op, u64 ino,
			 u64 offset, u64 len, u32 flags)
{
	struct notify_ident id;

	current_ident(&id);
	emit_ident(sb, op, ino, offset, len, flags, &id);
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

#ifdef KC_USE_IOMAP_FOR_IO
/*
 * A queued direct read that we arranged to see complete: record it
 * with the bytes the completion reports (all of the read call, earlier
 * submissions of its retry loop included) on behalf of the task that
 * submitted it, then complete it as the kiocb's owner (aio, io_uring)
 * asked.  This can run in interrupt context: nothing here looks at
 * current, sleeps or allocates.  The slot was claimed before the read
 * was submitted and once it was queued only we free it, so it is
 * always found.
 */
static void notify_dio_complete(struct kiocb *iocb, long ret)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	DECLARE_NOTIFY_INFO(inode->i_sb, ninf);
	struct notify_dio_slot slot = { .iocb = NULL };
	unsigned long flags;
	int i;

	spin_lock_irqsave(&ninf->dio_lock, flags);
	for (i = 0; i < NOTIFY_DIO_NR; i++) {
		if (ninf->dio[i].iocb == iocb) {
			slot = ninf->dio[i];
			ninf->dio[i].iocb = NULL;
			break;
		}
	}
	spin_unlock_irqrestore(&ninf->dio_lock, flags);

	if (WARN_ON_ONCE(!slot.iocb))
		return;

	iocb->ki_complete = slot.ki_complete;
	if (ret > 0)
		emit_ident(inode->i_sb, SCOUTFS_NOTIFY_OP_READ, slot.ino,
			   slot.pos, ret, 0, &slot.id);
	slot.ki_complete(iocb, ret);
}

/*
 * An asynchronous direct read is about to be submitted while a reader
 * is attached.  If it's queued, read_iter returns -EIOCBQUEUED and the
 * read completes later, perhaps in interrupt context where its
 * submitter is long gone: so the submitter's identity goes in a slot
 * and the kiocb completes through notify_dio_complete().  @done bytes
 * of the read call were read by earlier submissions of its retry loop:
 * the record covers the whole call, as a synchronous read's does.
 * With every slot taken the read is recorded when it's queued, with
 * the length asked for (up to the file size) and a flag that says so.
 */
void scoutfs_notify_dio_prepare(struct kiocb *iocb, struct iov_iter *to,
				size_t done, struct scoutfs_notify_dio *nd)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	DECLARE_NOTIFY_INFO(inode->i_sb, ninf);
	struct notify_dio_slot *slot = NULL;
	loff_t size = i_size_read(inode);
	unsigned long flags;
	int i;

	nd->armed = true;
	nd->sb = inode->i_sb;
	nd->ino = scoutfs_ino(inode);
	nd->pos = iocb->ki_pos - done;
	nd->len = done;
	if (iocb->ki_pos < size)
		nd->len += min_t(u64, iov_iter_count(to), size - iocb->ki_pos);

	spin_lock_irqsave(&ninf->dio_lock, flags);
	for (i = 0; i < NOTIFY_DIO_NR; i++) {
		if (!ninf->dio[i].iocb) {
			slot = &ninf->dio[i];
			slot->iocb = iocb;
			slot->ki_complete = iocb->ki_complete;
			slot->ino = nd->ino;
			slot->pos = nd->pos;
			current_ident(&slot->id);
			iocb->ki_complete = notify_dio_complete;
			break;
		}
	}
	spin_unlock_irqrestore(&ninf->dio_lock, flags);

	nd->slot = slot;
}

/*
 * The direct read was submitted and read_iter's caller gets @ret.  A
 * queued read (-EIOCBQUEUED) completes through us, later or already:
 * its kiocb isn't ours to touch any more.  Any other outcome means the
 * read is over (read_iter records what it returns), and the kiocb gets
 * its own completion back.
 */
void scoutfs_notify_dio_submitted(struct kiocb *iocb,
				  struct scoutfs_notify_dio *nd, ssize_t ret)
{
	DECLARE_NOTIFY_INFO(nd->sb, ninf);
	unsigned long flags;

	if (ret == -EIOCBQUEUED) {
		if (!nd->slot && nd->len > 0)
			scoutfs_notify_emit(nd->sb, SCOUTFS_NOTIFY_OP_READ, nd->ino,
					    nd->pos, nd->len,
					    SCOUTFS_NOTIFY_READ_SUBMITTED);
		return;
	}

	if (nd->slot) {
		iocb->ki_complete = nd->slot->ki_complete;
		spin_lock_irqsave(&ninf->dio_lock, flags);
		nd->slot->iocb = NULL;
		spin_unlock_irqrestore(&ninf->dio_lock, flags);
	}
}
#endif

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
	struct notify_ident id;
	bool attached = false;
	bool wake = false;
	int ret = 0;

	current_ident(&id);
	init_record(&rec, SCOUTFS_NOTIFY_OP_ATTACH, 0, 0, 0, 0, &id);

	spin_lock_irq(&ninf->lock);
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
	spin_unlock_irq(&ninf->lock);

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
		spin_lock_irq(&ninf->lock);
		if (ninf->reader == file) {
			ninf->reader = NULL;
			ninf->merge = false;
			WRITE_ONCE(SCOUTFS_SB(sb)->notify_watched, false);
		}
		spin_unlock_irq(&ninf->lock);
	}

	return 0;
}

static u64 ring_count(struct notify_info *ninf)
{
	u64 nr;

	spin_lock_irq(&ninf->lock);
	nr = ninf->head - ninf->tail;
	spin_unlock_irq(&ninf->lock);

	return nr;
}

/* a waiting reader is done when the ring holds nr or we're unmounting */
static bool wait_done(struct notify_info *ninf, u64 nr)
{
	return ring_count(ninf) >= nr || READ_ONCE(ninf->shutdown);
}

static void set_wake_nr(struct notify_info *ninf, u64 nr)
{
	spin_lock_irq(&ninf->lock);
	ninf->wake_nr = nr;
	spin_unlock_irq(&ninf->lock);
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

	spin_lock_irq(&ninf->lock);
	head = ninf->head;
	tail = ninf->tail;
	avail = min(head - tail, nr);
	ninf->copy_end = tail + avail;
	spin_unlock_irq(&ninf->lock);

	while (copied < avail) {
		idx = (tail + copied) & NOTIFY_RING_MASK;
		n = min_t(u64, avail - copied, NOTIFY_RING_NR - idx);

		left = copy_to_user(&urecs[copied], &ninf->ring[idx], n * size);
		copied += n - DIV_ROUND_UP(left, size);
		if (left)
			break;
	}

	if (copied > 0) {
		spin_lock_irq(&ninf->lock);
		ninf->tail = tail + copied;
		spin_unlock_irq(&ninf->lock);
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

	spin_lock_irq(&ninf->lock);
	ninf->shutdown = true;
	spin_unlock_irq(&ninf->lock);

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
#ifdef KC_USE_IOMAP_FOR_IO
	spin_lock_init(&ninf->dio_lock);
#endif
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
