/*
 * See notify-path.h.  The cache is direct mapped by inode number: a
 * collision only costs another ioctl.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <linux/types.h>

#ifndef U64_MAX
#define U64_MAX UINT64_MAX
#endif
#include "ioctl.h"
#include "notify-path.h"

#define NP_CACHE_NR		4096
#define SCOUTFS_SUPER_MAGIC	0x554f4353

struct np_cache {
	int mnt_fd;
	char *mnt;
	struct {
		uint64_t ino;
		char *path;
		size_t len;
	} slot[NP_CACHE_NR];
	union {
		struct scoutfs_ioctl_ino_path_result res;
		char buf[sizeof(struct scoutfs_ioctl_ino_path_result) + PATH_MAX];
	} u;
};

struct np_cache *np_cache_new(int mnt_fd, const char *mnt)
{
	struct np_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->mnt_fd = mnt_fd;
	c->mnt = strdup(mnt);
	if (!c->mnt) {
		free(c);
		return NULL;
	}
	return c;
}

void np_cache_free(struct np_cache *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < NP_CACHE_NR; i++)
		free(c->slot[i].path);
	free(c->mnt);
	free(c);
}

const char *np_path(struct np_cache *c, uint64_t ino, bool refresh, size_t *len)
{
	struct scoutfs_ioctl_ino_path args = {
		.ino = ino,
		.result_ptr = (uintptr_t)&c->u,
		.result_bytes = sizeof(c->u),
	};
	size_t s = ino % NP_CACHE_NR;
	size_t n;
	char *p;
	int plen;

	if (c->mnt_fd < 0 || ino == 0)
		return NULL;
	if (!refresh && c->slot[s].ino == ino && c->slot[s].path) {
		*len = c->slot[s].len;
		return c->slot[s].path;
	}
	if (ioctl(c->mnt_fd, SCOUTFS_IOC_INO_PATH, &args) < 0)
		return NULL;
	n = c->u.res.path_bytes;
	if (n > PATH_MAX)
		return NULL;
	while (n > 0 && c->u.res.path[n - 1] == '\0')
		n--;
	plen = asprintf(&p, "%s%s%.*s", c->mnt, c->mnt[strlen(c->mnt) - 1] == '/' ? "" : "/",
			(int)n, (char *)c->u.res.path);
	if (plen < 0)
		return NULL;
	free(c->slot[s].path);
	c->slot[s].ino = ino;
	c->slot[s].path = p;
	/* a NUL inside the name would end it early: keep what the ioctl said */
	c->slot[s].len = (size_t)plen;
	*len = c->slot[s].len;
	return p;
}

int np_mount_ids(int fd, char fsid[NP_FSID_LEN], char rid[NP_RID_LEN])
{
	struct scoutfs_ioctl_statfs_more sfm;
	struct statfs sfs;
	uint32_t w[2];

	if (fstatfs(fd, &sfs))
		return -1;
	if ((uint32_t)sfs.f_type != SCOUTFS_SUPER_MAGIC) {
		errno = ENOTTY;
		return -1;
	}
	/* coreutils puts f_fsid's first word in the high 32 bits */
	memcpy(w, &sfs.f_fsid, sizeof(w));
	snprintf(fsid, NP_FSID_LEN, "%" PRIx64, ((uint64_t)w[0] << 32) | w[1]);
	memset(&sfm, 0, sizeof(sfm));
	if (ioctl(fd, SCOUTFS_IOC_STATFS_MORE, &sfm) < 0)
		return -1;
	snprintf(rid, NP_RID_LEN, "%016" PRIx64, (uint64_t)sfm.rid);
	return 0;
}
