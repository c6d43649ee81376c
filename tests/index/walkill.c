/*
 * walkill: preloaded into scoutfs-notify-heat by the index tier, it
 * SIGKILLs the process at its $WALKILL_AT-th write to a SQLite WAL
 * file (a name ending in "-wal"): in the middle of writing a
 * transaction, where a crash is hardest to survive, at a point that is
 * the same each run, which a kill from outside can't aim at.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static long writes;

static int is_wal(int fd)
{
	char link[64];
	char path[4096];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 4)
		return 0;
	path[n] = 0;
	return !strcmp(path + n - 4, "-wal");
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	const char *at = getenv("WALKILL_AT");

	if (!real_pwrite64)
		real_pwrite64 = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
	if (at && is_wal(fd) && ++writes == atol(at))
		raise(SIGKILL);
	return real_pwrite64(fd, buf, len, off);
}
