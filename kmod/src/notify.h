#ifndef _SCOUTFS_NOTIFY_H_
#define _SCOUTFS_NOTIFY_H_

#include "super.h"

struct vm_area_struct;
struct notify_dio_slot;
struct iov_iter;

int scoutfs_notify_setup(struct super_block *sb);
void scoutfs_notify_destroy(struct super_block *sb);
void scoutfs_notify_umount_begin(struct super_block *sb);

void scoutfs_notify_emit(struct super_block *sb, u32 op, u64 ino,
			 u64 offset, u64 len, u32 flags);
int scoutfs_notify_release(struct inode *inode, struct file *file);
long scoutfs_ioc_read_notify(struct file *file, unsigned long arg);

int scoutfs_notify_open(struct inode *inode, struct file *file);
void scoutfs_notify_record_read(struct inode *inode, loff_t pos, size_t len);
void scoutfs_notify_record_mmap(struct file *file,
				struct vm_area_struct *vma);

/*
 * Hooks in the I/O paths only record while a reader is attached.  This
 * is the single test they make otherwise.  It's racy by design: an
 * access racing with an attach may not be recorded, and the emit
 * checks again under the lock so nothing is recorded after a detach.
 */
static inline bool scoutfs_notify_watched(struct super_block *sb)
{
	return unlikely(READ_ONCE(SCOUTFS_SB(sb)->notify_watched));
}

/*
 * The read paths call this once per read call, after any data waits,
 * with the file position the call started at and its return value.
 */
static inline void scoutfs_notify_read(struct inode *inode, loff_t pos,
				       ssize_t ret)
{
	if (scoutfs_notify_watched(inode->i_sb) && ret > 0)
		scoutfs_notify_record_read(inode, pos, ret);
}

/*
 * The same for read_iter methods that can return -EIOCBQUEUED: the
 * kiocb of a queued read belongs to its completion, so it's only
 * looked at when the call returned data.
 */
static inline void scoutfs_notify_read_iocb(struct inode *inode,
					    struct kiocb *iocb, ssize_t ret)
{
	if (scoutfs_notify_watched(inode->i_sb) && ret > 0)
		scoutfs_notify_record_read(inode, iocb->ki_pos - ret, ret);
}

#ifdef KC_USE_IOMAP_FOR_IO
/* an asynchronous direct read's submission, between the two calls below */
struct scoutfs_notify_dio {
	struct super_block *sb;
	struct notify_dio_slot *slot;
	u64 ino;
	loff_t pos;
	u64 len;
	bool armed;
};

void scoutfs_notify_dio_prepare(struct kiocb *iocb, struct iov_iter *to,
				size_t done, struct scoutfs_notify_dio *nd);
void scoutfs_notify_dio_submitted(struct kiocb *iocb,
				  struct scoutfs_notify_dio *nd, ssize_t ret);

/*
 * The iomap direct read path calls this before each iomap_dio_rw() of
 * a read call that has read @done bytes so far, and the next one with
 * what it returned.  An asynchronous read that is queued (-EIOCBQUEUED)
 * is then recorded when it completes; every other read is recorded by
 * read_iter when it returns.
 */
static inline void scoutfs_notify_dio_begin(struct kiocb *iocb,
					    struct iov_iter *to, size_t done,
					    struct scoutfs_notify_dio *nd)
{
	nd->armed = false;
	if (scoutfs_notify_watched(file_inode(iocb->ki_filp)->i_sb) &&
	    !is_sync_kiocb(iocb))
		scoutfs_notify_dio_prepare(iocb, to, done, nd);
}

static inline void scoutfs_notify_dio_end(struct kiocb *iocb,
					  struct scoutfs_notify_dio *nd,
					  ssize_t ret)
{
	if (unlikely(nd->armed))
		scoutfs_notify_dio_submitted(iocb, nd, ret);
}
#endif

/* the mmap method calls this once the vma is set up */
static inline void scoutfs_notify_mmap(struct file *file,
				       struct vm_area_struct *vma)
{
	if (scoutfs_notify_watched(file_inode(file)->i_sb))
		scoutfs_notify_record_mmap(file, vma);
}

#endif
