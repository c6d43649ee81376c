#ifndef _SCOUTFS_NOTIFY_H_
#define _SCOUTFS_NOTIFY_H_

#include "super.h"

int scoutfs_notify_setup(struct super_block *sb);
void scoutfs_notify_destroy(struct super_block *sb);
void scoutfs_notify_umount_begin(struct super_block *sb);

void scoutfs_notify_emit(struct super_block *sb, u32 op, u64 ino,
			 u64 offset, u64 len, u32 flags);
int scoutfs_notify_release(struct inode *inode, struct file *file);
long scoutfs_ioc_read_notify(struct file *file, unsigned long arg);

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

#endif
