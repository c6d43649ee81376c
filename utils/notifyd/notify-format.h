/*
 * How the scoutfs-notify tools write access records: one text line or
 * one JSON object per record, the same for every tool that prints or
 * publishes them, so that what users control (file names, reached
 * through paths) can never forge a record or break a parser.
 *
 * Text: every field is key=value, fields are separated by one space and
 * a record is one line.  Strings from users are written with byte
 * escapes: "\\" for a backslash and "\xHH" (two lower case hex digits)
 * for a space, a control character (0x00-0x1f, 0x7f), a byte that is
 * not part of valid UTF-8, and every byte of the characters that change
 * how a line reads without being visible (C1 controls U+0080-U+009F,
 * U+061C, U+200B-U+200F, U+2028-U+202E, U+2060-U+206F and U+FEFF).
 * Everything else, valid UTF-8 included, is written as it is.  The
 * escaped form decodes back to the exact bytes (Python:
 * codecs.escape_decode).
 *
 * JSON: always valid UTF-8 (RFC 8259), with control characters and the
 * invisible characters above written as \uXXXX.  A string that is not valid
 * UTF-8 is written with U+FFFD for each invalid byte and, beside it, a
 * field named like it with "_b64" appended that holds the exact bytes
 * in base64 (RFC 4648); a consumer takes the bytes from "path_b64" when
 * it is there and from "path" otherwise.
 */
#ifndef _SCOUTFS_NOTIFY_FORMAT_H_
#define _SCOUTFS_NOTIFY_FORMAT_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <linux/types.h>

#ifndef U64_MAX
#define U64_MAX UINT64_MAX
#endif
#include "ioctl.h"

/* the version of the JSON record schema, its "schema" field */
#define NF_JSON_SCHEMA 1

typedef struct scoutfs_ioctl_notify_record nf_rec_t;

/* where a record came from, for JSON records that leave the node */
struct nf_origin {
	const char *fsid;	/* as `stat -f -c %i` prints it */
	const char *node;	/* the node's name */
	const char *rid;	/* the mount's rid, 16 hex digits */
};

/* "OPEN", "READ", ..., NULL for an op this build doesn't know */
const char *nf_op_name(uint32_t op);

/* RFC 3339 in UTC with nanoseconds; size >= NF_TIME_LEN */
#define NF_TIME_LEN 40
void nf_time(uint64_t ns, char *buf, size_t size);

/*
 * The length of the valid UTF-8 sequence at s (at most len bytes, len
 * >= 1), 0 if s doesn't start one; *cp gets its code point
 */
size_t nf_utf8_seq(const unsigned char *s, size_t len, uint32_t *cp);

/* the text form of len bytes of s (see above) */
void nf_text_str(FILE *f, const char *s, size_t len);

/*
 * A JSON member "name": "s", and "name_b64": "<base64>" after it when s
 * is not valid UTF-8.  Returns true when it was valid UTF-8.
 */
bool nf_json_member(FILE *f, const char *name, const char *s, size_t len);

/* one record as a text line, path (len bytes) may be NULL */
void nf_text_record(FILE *f, const nf_rec_t *r, const char *path, size_t path_len);

/* one record as a JSON line; origin may be NULL, path may be NULL */
void nf_json_record(FILE *f, const nf_rec_t *r, const char *path, size_t path_len,
		    const struct nf_origin *origin);

/* records after_seq + 1 .. seq - 1 were lost: a text or JSON line */
void nf_text_gap(FILE *f, uint64_t after_seq, uint64_t seq);
void nf_json_gap(FILE *f, uint64_t after_seq, uint64_t seq, const struct nf_origin *origin);

/* seq went back (a new mount): a text or JSON line */
void nf_text_reset(FILE *f, uint64_t after_seq, uint64_t seq);
void nf_json_reset(FILE *f, uint64_t after_seq, uint64_t seq, const struct nf_origin *origin);

#endif
