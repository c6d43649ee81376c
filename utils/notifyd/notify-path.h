/*
 * Paths of inodes through a scoutfs mount, for the tools that print or
 * publish records: scoutfs's SCOUTFS_IOC_INO_PATH (which needs root)
 * behind a small cache, so that a busy stream of reads doesn't cost an
 * ioctl each.  OPEN records refresh the cache entry (a file may have
 * been renamed since).  Also the mount's identity: the fsid as
 * `stat -f -c %i` spells it and the rid from SCOUTFS_IOC_STATFS_MORE.
 */
#ifndef _SCOUTFS_NOTIFY_PATH_H_
#define _SCOUTFS_NOTIFY_PATH_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NP_FSID_LEN	17	/* 16 hex digits at most, and a NUL */
#define NP_RID_LEN	17	/* exactly 16 hex digits, and a NUL */

struct np_cache;

/* a cache for the mount open at mnt_fd, whose path is mnt (kept) */
struct np_cache *np_cache_new(int mnt_fd, const char *mnt);
void np_cache_free(struct np_cache *c);

/*
 * The path of ino through the mount, NULL if it can't be had; *len gets
 * its length (paths are bytes: they may hold anything but NUL).  The
 * result stays valid until the next call.
 */
const char *np_path(struct np_cache *c, uint64_t ino, bool refresh, size_t *len);

/*
 * The fsid and rid of the scoutfs filesystem whose mount point fd is
 * open: 0, or -1 with errno (ENOTTY/EINVAL: not scoutfs).  The fsid as
 * `stat -f -c %i` prints it, the rid as 16 hex digits.
 */
int np_mount_ids(int fd, char fsid[NP_FSID_LEN], char rid[NP_RID_LEN]);

#endif
