/*
 * heat-upsert: the bare loop the access index's ingest is measured
 * against: the same file upserts (ha_upsert(), a row at a time) into
 * the same engine, one row per record read from stdin, no NATS, no
 * parsing, no coalescing, one transaction per BATCH records, pipelined
 * where the engine can as the ingest's are.
 *
 *   heat-upsert DB BATCH < records    lines "fsid ino time_ns len uid path"
 *
 * Prints "rows/s=X secs=S rows=N".
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heat-apply.h"
#include "heat-store.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int one(struct ha_upsert *u, char *line, size_t len)
{
	unsigned long long fsid, ino, t, ln, uid;
	struct fdelta d;
	const struct fdelta *dp = &d;
	int n = 0;

	if (sscanf(line, "%llx %llu %llu %llu %llu %n", &fsid, &ino, &t, &ln, &uid, &n) != 5)
		return -1;
	d = (struct fdelta){ .fsid = fsid, .ino = ino, .path = line + n, .path_len = len - (size_t)n,
			     .path_ns = (int64_t)t, .first_ns = (int64_t)t, .last_read = (int64_t)t,
			     .last_use = (int64_t)t, .calls = 1, .bytes = (int64_t)ln, .uid = (int64_t)uid,
			     .reader_id = 1, .heat = 1.0, .heat_ns = (int64_t)t };
	return ha_upsert(u, &dp, 1);
}

int main(int argc, char **argv)
{
	struct ha_upsert u;
	enum hs_err kind;
	char err[600];
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long batch;
	long rows = 0;
	double t0;
	struct hs *h;

	if (argc != 3 || (batch = atol(argv[2])) <= 0) {
		fprintf(stderr, "usage: heat-upsert DB BATCH < records\n");
		return 2;
	}
	h = hs_open(argv[1], false, 10000, 0, 0, err, sizeof(err), &kind);
	if (!h || ha_upsert_prepare(h, &u)) {
		fprintf(stderr, "heat-upsert: %s\n", h ? h->err : err);
		return 1;
	}
	t0 = now();
	if (hs_begin(h) || hs_pipeline(h, true))
		return 1;
	while ((len = getline(&line, &cap, stdin)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = 0;
		if (one(&u, line, (size_t)len)) {
			fprintf(stderr, "heat-upsert: row %ld: %s\n", rows, h->err);
			return 1;
		}
		if (++rows % batch == 0 &&
		    (hs_pipeline(h, false) || hs_commit(h) || hs_begin(h) || hs_pipeline(h, true))) {
			fprintf(stderr, "heat-upsert: %s\n", h->err);
			return 1;
		}
	}
	if (hs_pipeline(h, false) || hs_commit(h)) {
		fprintf(stderr, "heat-upsert: %s\n", h->err);
		return 1;
	}
	printf("rows/s=%.0f secs=%.3f rows=%ld\n", rows / (now() - t0), now() - t0, rows);
	free(line);
	ha_upsert_finalize(&u);
	hs_close(h);
	return 0;
}
