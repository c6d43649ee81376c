/*
 * scoutfs-notify-heat scan MOUNT: the files no record ever named, and
 * the files that are gone.  Records only say what was used, so a file
 * nobody read since observation began would be missing from every cold
 * list; unlinks are not recorded, so a deleted file would stay in it.
 * The scan walks the mount (not crossing into other filesystems) and
 * upserts every regular file it finds as seen now (a new one with no
 * use at all: "not read since observation began"), then, when it
 * walked the whole filesystem without an error, removes the files of
 * this filesystem it did not see and no record named since it began.
 *
 * It never writes into the filesystem: directories are opened with
 * O_NOATIME (their atime would otherwise move, and in scoutfs any inode
 * update moves the inode's meta_seq, which archivers follow), files are
 * only fstatat()ed, never opened.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "heat.h"
#include "heat-apply.h"
#include "notify-path.h"

#define SCAN_BATCH	10000
#define ERRORS_SHOWN	10

struct scan {
	struct hs *h;
	struct ha *maps;	/* for --path-map only */
	struct ha_upsert up;
	uint64_t fsid;
	dev_t dev;
	int64_t start;
	uint64_t seen;
	uint64_t errors;
	uint64_t in_batch;
	bool failed;		/* the database failed: stop */
};

static void scan_usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--db DB] scan MOUNT [--path-map FROM=TO] [--no-remove]\n"
		"\n"
		"Walk the scoutfs mount MOUNT (no other filesystem, no atime touched) and add\n"
		"every regular file the index has not seen, as not read since observation\n"
		"began; then, if MOUNT is the filesystem's root and the walk had no error,\n"
		"remove the files it did not find that no record named since it began.\n");
}

static void scan_error(struct scan *s, const char *path, const char *what)
{
	if (s->errors++ < ERRORS_SHOWN)
		fprintf(stderr, PROG ": scan: %s: %s: %s\n", path, what, strerror(errno));
}

static bool commit_batch(struct scan *s)
{
	if (hs_commit(s->h) || hs_begin(s->h)) {
		heat_store_error(s->h, "scan");
		s->failed = true;
		return false;
	}
	s->in_batch = 0;
	return true;
}

/* one regular file: seen now, with the path it has now */
static void add_file(struct scan *s, uint64_t ino, const char *path, size_t len)
{
	struct fdelta d = { .fsid = s->fsid, .ino = ino, .path_ns = s->start,
			    .first_ns = s->start, .seen_ns = s->start, .uid = -1 };
	const struct fdelta *dp = &d;

	d.path = (char *)ha_map(s->maps, path, len, &d.path_len);
	if (ha_upsert(&s->up, &dp, 1)) {
		heat_store_error(s->h, "scan");
		s->failed = true;
		return;
	}
	s->seen++;
	if (++s->in_batch >= SCAN_BATCH)
		commit_batch(s);
}

static char *join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name) < 0)
		return NULL;
	return p;
}

static void walk(struct scan *s, int dfd, const char *path);

static void entry(struct scan *s, int dfd, const char *dir, const char *name)
{
	struct stat st;
	char *p = join(dir, name);
	int fd;

	if (!p) {
		s->failed = true;
		return;
	}
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW)) {
		if (errno != ENOENT)	/* gone since readdir: not an error */
			scan_error(s, p, "stat");
	} else if (S_ISREG(st.st_mode)) {
		add_file(s, (uint64_t)st.st_ino, p, strlen(p));
	} else if (S_ISDIR(st.st_mode) && st.st_dev == s->dev) {
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC);
		if (fd < 0 && errno != ENOENT)
			scan_error(s, p, errno == EPERM ? "open without touching its atime (O_NOATIME needs root or the owner)" : "open");
		else if (fd >= 0)
			walk(s, fd, p);
	}
	free(p);
}

/* every entry of the directory open at dfd (closed here), depth first */
static void walk(struct scan *s, int dfd, const char *path)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;

	if (!d) {
		scan_error(s, path, "opendir");
		close(dfd);
		return;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				scan_error(s, path, "readdir");
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		entry(s, dirfd(d), path, de->d_name);
		if (s->failed)
			break;
	}
	closedir(d);
}

/* is mnt the root of its filesystem (not a directory inside it)? */
static bool fs_root(const char *mnt, const struct stat *st)
{
	struct stat up;
	char *p = join(mnt, "..");
	bool r;

	r = p && !lstat(p, &up) && (up.st_dev != st->st_dev || up.st_ino == st->st_ino);
	free(p);
	return r;
}

static int64_t count_added(struct scan *s)
{
	struct hs_stmt *st;
	int64_t n = -1;

	if (hs_prepare(s->h, &st, "SELECT COUNT(*) FROM files WHERE fsid = $1 AND first_ns = $2"))
		return -1;
	hs_bi(st, 1, (int64_t)s->fsid);
	hs_bi(st, 2, s->start);
	if (hs_step(st) == HS_ROW)
		n = hs_ci(st, 0);
	hs_finalize(st);
	return n;
}

/* files of this filesystem not seen and not named by a record since the scan began */
static int64_t remove_gone(struct scan *s)
{
	struct hs_stmt *st;
	int64_t n = -1;

	if (hs_prepare(s->h, &st, "DELETE FROM files WHERE fsid = $1 AND seen_ns < $2 AND"
				  " last_open_ns < $2 AND last_use_ns < $2 AND path_ns < $2"))
		return -1;
	hs_bi(st, 1, (int64_t)s->fsid);
	hs_bi(st, 2, s->start);
	if (hs_step(st) != HS_ERR)
		n = hs_changes(st);
	hs_finalize(st);
	return n;
}

static int record_scan(struct scan *s, const char *mnt, int64_t added, int64_t removed,
		       bool complete)
{
	struct hs_stmt *st;
	int ret;

	if (hs_prepare(s->h, &st, "INSERT INTO scans (fsid, start_ns, end_ns, root, seen, added,"
				  " removed, complete) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
		return HS_ERR;
	hs_bi(st, 1, (int64_t)s->fsid);
	hs_bi(st, 2, s->start);
	hs_bi(st, 3, heat_now());
	hs_bb(st, 4, mnt, strlen(mnt));
	hs_bi(st, 5, (int64_t)s->seen);
	hs_bi(st, 6, added);
	hs_bi(st, 7, removed);
	hs_bi(st, 8, complete);
	ret = hs_run(st);
	hs_finalize(st);
	return ret;
}

/* the end of a walk: what is gone, the scan's own row; its exit status */
static int finish(struct scan *s, const char *mnt, bool root, bool remove)
{
	bool complete = !s->errors && !s->failed;
	int64_t added = count_added(s);
	int64_t removed = 0;

	if (added < 0)
		return heat_store_error(s->h, "scan");
	if (complete && root && remove) {
		removed = remove_gone(s);
		if (removed < 0)
			return heat_store_error(s->h, "scan");
	}
	if (record_scan(s, mnt, added, removed, complete && root) || hs_commit(s->h))
		return heat_store_error(s->h, "scan");
	printf("scan of %s (fsid %" PRIx64 "): %" PRIu64 " files seen, %" PRId64 " added, %" PRId64
	       " removed%s\n", mnt, s->fsid, s->seen, added, removed,
	       !complete ? "; incomplete (errors above): nothing removed" :
	       !root ? "; not the filesystem's root: nothing removed" :
	       !remove ? " (--no-remove)" : "");
	return complete ? 0 : EXIT_TRANSIENT;
}

static int scan_opts(int argc, char **argv, struct scan *s, const char **mnt, bool *remove)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--path-map") && i + 1 < argc) {
			if (ha_map_add(s->maps, argv[++i])) {
				fprintf(stderr, PROG ": scan: --path-map needs /FROM=/TO\n");
				return EXIT_USAGE;
			}
		} else if (!strcmp(argv[i], "--no-remove")) {
			*remove = false;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			scan_usage(stdout);
			return -1;
		} else if (argv[i][0] != '-' && !*mnt) {
			*mnt = argv[i];
		} else {
			scan_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!*mnt) {
		scan_usage(stderr);
		return EXIT_USAGE;
	}
	return 0;
}

int cmd_scan(int argc, char **argv)
{
	struct scan s = { 0 };
	char fsid[NP_FSID_LEN];
	char rid[NP_RID_LEN];
	const char *mnt = NULL;
	bool remove = true;
	struct stat st;
	int status;
	int fd;

	s.maps = ha_new(NULL, 0, 0);
	if (!s.maps)
		return EXIT_TRANSIENT;
	status = scan_opts(argc, argv, &s, &mnt, &remove);
	if (status)
		goto out;
	fd = open(mnt, O_RDONLY | O_DIRECTORY | O_NOATIME | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) || np_mount_ids(fd, fsid, rid)) {
		fprintf(stderr, PROG ": scan: %s: not a scoutfs mount (%s)\n", mnt, strerror(errno));
		if (fd >= 0)
			close(fd);
		status = EXIT_USAGE;
		goto out;
	}
	s.fsid = strtoull(fsid, NULL, 16);
	s.dev = st.st_dev;
	s.h = heat_open(false, 0, 0, &status);
	if (!s.h) {
		close(fd);
		goto out;
	}
	s.start = heat_now();
	if (ha_upsert_prepare(s.h, &s.up) || hs_begin(s.h)) {
		close(fd);
		status = heat_store_error(s.h, "scan");
		goto out;
	}
	walk(&s, fd, mnt);
	status = s.failed ? EXIT_TRANSIENT : finish(&s, mnt, fs_root(mnt, &st), remove);
	if (s.failed)
		hs_rollback(s.h);
out:
	ha_upsert_finalize(&s.up);
	ha_free(s.maps);
	hs_close(s.h);
	return status < 0 ? 0 : status;
}
