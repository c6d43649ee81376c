/*
 * A small strict parser for the JSON records that notify-format.c
 * writes (schema 1), so that a consumer of the records can print them
 * again with notify-format.c, text included, whatever a file name held.
 *
 * Strict: the whole input must be one JSON object (RFC 8259) of valid
 * UTF-8 with nothing but whitespace after it, its members' values
 * strings, numbers, true, false or null (no nesting: records are flat),
 * no key twice, "schema" 1, the fields a record or a gap must have, and
 * "time" must be what "time_ns" says.  Members this version doesn't
 * know are skipped, so that fields can be added.
 */
#ifndef _SCOUTFS_NOTIFY_JSON_H_
#define _SCOUTFS_NOTIFY_JSON_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "notify-format.h"

struct nj_record {
	bool gap;		/* a GAP object: after_seq, seq (and lost) */
	nf_rec_t rec;		/* a record: every field of it */
	uint64_t after_seq;
	uint64_t seq;
	uint64_t lost;
	char *path;		/* NULL when there was none; bytes, path_len of them */
	size_t path_len;
	char *fsid;		/* NULL when missing; never holds a NUL */
	char *node;
	char *rid;
	char *mem;		/* the one allocation path, fsid, node and rid are in */
};

/*
 * Parse len bytes of buf into *r: 0, or -1 with a reason in err.
 * nj_free() what a successful parse allocated: one block of len + 1
 * bytes that holds every decoded string (a string and its NUL never
 * take more bytes than its quoted form), a malloc() a record where a
 * block a string made the allocator a tenth of an ingest's time.
 */
int nj_parse(const char *buf, size_t len, struct nj_record *r, char *err, size_t errlen);
void nj_free(struct nj_record *r);

#endif
