/*
 * heat-upsert: the bare loop the access index's ingest is measured
 * against: the same file upsert statement (ha_prepare_upsert()) into
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

static int one(struct hs_stmt *st, const char *line, size_t len)
{
	unsigned long long fsid, ino, t, ln, uid;
	int n = 0;
	int i;

	if (sscanf(line, "%llx %llu %llu %llu %llu %n", &fsid, &ino, &t, &ln, &uid, &n) != 5)
		return -1;
	hs_bi(st, 1, (int64_t)fsid);
	hs_bi(st, 2, (int64_t)ino);
	hs_bb(st, 3, line + n, len - (size_t)n);
	hs_bi(st, 4, (int64_t)t);
	hs_bi(st, 5, (int64_t)t);
	hs_bi(st, 6, 0);
	hs_bi(st, 7, 0);
	hs_bi(st, 8, (int64_t)t);
	hs_bi(st, 9, 0);
	hs_bi(st, 10, (int64_t)t);
	for (i = 11; i <= 14; i++)
		hs_bi(st, i, i == 12 ? 1 : i == 13 ? (int64_t)ln : 0);
	hs_bi(st, 15, (int64_t)uid);
	hs_bi(st, 16, 1);
	hs_bf(st, 17, 1.0);
	hs_bi(st, 18, (int64_t)t);
	return hs_run(st);
}

int main(int argc, char **argv)
{
	struct hs_stmt *st = NULL;
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
	if (!h || ha_prepare_upsert(h, &st)) {
		fprintf(stderr, "heat-upsert: %s\n", h ? h->err : err);
		return 1;
	}
	t0 = now();
	if (hs_begin(h) || hs_pipeline(h, true))
		return 1;
	while ((len = getline(&line, &cap, stdin)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = 0;
		if (one(st, line, (size_t)len)) {
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
	hs_finalize(st);
	hs_close(h);
	return 0;
}
