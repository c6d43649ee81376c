/*
 * The text and JSON forms of access records, shared by every tool that
 * writes them (see notify-format.h for the encoding rules).  File names
 * are whatever users made them: a name may hold a newline followed by
 * a made-up record, tabs, quotes, bytes that are not UTF-8 or
 * characters that look like '/'.  Nothing here trusts them: the text
 * form escapes every byte that could end a line, separate a field or
 * change how the line reads, and the JSON form is valid UTF-8 with the
 * exact bytes kept in base64 when they are not.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "notify-format.h"

const char *nf_op_name(uint32_t op)
{
	switch (op) {
	case SCOUTFS_NOTIFY_OP_OPEN:
		return "OPEN";
	case SCOUTFS_NOTIFY_OP_READ:
		return "READ";
	case SCOUTFS_NOTIFY_OP_ATTACH:
		return "ATTACH";
	case SCOUTFS_NOTIFY_OP_MMAP:
		return "MMAP";
	}
	return NULL;
}

void nf_time(uint64_t ns, char *buf, size_t size)
{
	time_t secs = ns / 1000000000ULL;
	struct tm tm;
	size_t n;

	gmtime_r(&secs, &tm);
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, size - n, ".%09" PRIu64 "Z", (uint64_t)(ns % 1000000000ULL));
}

/*
 * The length of the valid UTF-8 sequence at s (at most len bytes), 0
 * if s doesn't start one: no overlong forms, no surrogates, nothing
 * above U+10FFFF.  *cp gets the code point.
 */
static size_t utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c = s[0];
	size_t n;
	size_t i;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		c &= 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		c &= 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		c &= 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* characters that are valid but change how a line reads, unseen */
static bool invisible(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x61c ||
	       (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff;
}

void nf_text_str(FILE *f, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	uint32_t cp;
	size_t n;
	size_t i;

	while (len > 0) {
		n = utf8_seq(s, len, &cp);
		if (n == 1 && cp > 0x20 && cp != 0x7f && cp != '\\') {
			putc(cp, f);
		} else if (n == 1 && cp == '\\') {
			fputs("\\\\", f);
		} else if (n > 1 && !invisible(cp)) {
			fwrite(s, 1, n, f);
		} else {
			/* one byte of garbage, or every byte of what is hidden */
			if (n == 0)
				n = 1;
			for (i = 0; i < n; i++)
				fprintf(f, "\\x%02x", s[i]);
		}
		s += n;
		len -= n;
	}
}

static void base64(FILE *f, const unsigned char *s, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t v;
	size_t i;

	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		putc(tab[v >> 18], f);
		putc(tab[(v >> 12) & 63], f);
		putc(tab[(v >> 6) & 63], f);
		putc(tab[v & 63], f);
	}
	if (len - i == 1) {
		v = (uint32_t)s[i] << 16;
		fprintf(f, "%c%c==", tab[v >> 18], tab[(v >> 12) & 63]);
	} else if (len - i == 2) {
		v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
		fprintf(f, "%c%c%c=", tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63]);
	}
}

/* a JSON string literal of s; returns false if s was not valid UTF-8 */
static bool json_str(FILE *f, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	bool valid = true;
	uint32_t cp;
	size_t n;

	putc('"', f);
	while (len > 0) {
		n = utf8_seq(s, len, &cp);
		if (n == 0) {
			/* U+FFFD REPLACEMENT CHARACTER for each invalid byte */
			fputs("\xef\xbf\xbd", f);
			valid = false;
			n = 1;
		} else if (cp == '"' || cp == '\\') {
			fprintf(f, "\\%c", (int)cp);
		} else if (cp < 0x20 || cp == 0x7f || invisible(cp)) {
			fprintf(f, "\\u%04x", cp);
		} else {
			fwrite(s, 1, n, f);
		}
		s += n;
		len -= n;
	}
	putc('"', f);
	return valid;
}

bool nf_json_member(FILE *f, const char *name, const char *s, size_t len)
{
	bool valid;

	fprintf(f, "\"%s\": ", name);
	valid = json_str(f, s, len);
	if (!valid) {
		fprintf(f, ", \"%s_b64\": \"", name);
		base64(f, (const unsigned char *)s, len);
		putc('"', f);
	}
	return valid;
}

/* {"schema": N, and where the record came from, if known */
static void json_open(FILE *f, const struct nf_origin *o)
{
	fprintf(f, "{\"schema\": %d", NF_JSON_SCHEMA);
	if (!o)
		return;
	if (o->fsid) {
		fputs(", ", f);
		nf_json_member(f, "fsid", o->fsid, strlen(o->fsid));
	}
	if (o->node) {
		fputs(", ", f);
		nf_json_member(f, "node", o->node, strlen(o->node));
	}
	if (o->rid) {
		fputs(", ", f);
		nf_json_member(f, "rid", o->rid, strlen(o->rid));
	}
}

void nf_json_record(FILE *f, const nf_rec_t *r, const char *path, size_t path_len,
		    const struct nf_origin *origin)
{
	const char *name = nf_op_name(r->op);
	char when[NF_TIME_LEN];

	nf_time(r->time_ns, when, sizeof(when));
	json_open(f, origin);
	fprintf(f, ", \"seq\": %" PRIu64 ", \"op\": ", (uint64_t)r->seq);
	if (name)
		fprintf(f, "\"%s\"", name);
	else
		fprintf(f, "%u", r->op);
	fprintf(f, ", \"time\": \"%s\", \"time_ns\": %" PRIu64 ", \"pid\": %u"
		", \"uid\": %u, \"gid\": %u, \"ino\": %" PRIu64
		", \"offset\": %" PRIu64 ", \"len\": %" PRIu64 ", \"flags\": %u",
		when, (uint64_t)r->time_ns, r->pid, r->uid, r->gid, (uint64_t)r->ino,
		(uint64_t)r->offset, (uint64_t)r->len, r->flags);
	if (r->calls)
		fprintf(f, ", \"calls\": %u", r->calls);
	if (r->op == SCOUTFS_NOTIFY_OP_MMAP)
		fprintf(f, ", \"shared\": %s, \"writable\": %s",
			r->flags & SCOUTFS_NOTIFY_MMAP_SHARED ? "true" : "false",
			r->flags & SCOUTFS_NOTIFY_MMAP_WRITE ? "true" : "false");
	if (path) {
		fputs(", ", f);
		nf_json_member(f, "path", path, path_len);
	}
	fputs("}\n", f);
}

void nf_text_record(FILE *f, const nf_rec_t *r, const char *path, size_t path_len)
{
	const char *name = nf_op_name(r->op);
	char when[NF_TIME_LEN];

	nf_time(r->time_ns, when, sizeof(when));
	fprintf(f, "%s seq=%" PRIu64 " ", when, (uint64_t)r->seq);
	if (name)
		fprintf(f, "%-6s", name);
	else
		fprintf(f, "op=%u", r->op);
	fprintf(f, " pid=%u uid=%u gid=%u", r->pid, r->uid, r->gid);
	switch (r->op) {
	case SCOUTFS_NOTIFY_OP_OPEN:
		fprintf(f, " ino=%" PRIu64 " flags=%#o", (uint64_t)r->ino, r->flags);
		break;
	case SCOUTFS_NOTIFY_OP_READ:
		fprintf(f, " ino=%" PRIu64 " offset=%" PRIu64 " len=%" PRIu64,
			(uint64_t)r->ino, (uint64_t)r->offset, (uint64_t)r->len);
		break;
	case SCOUTFS_NOTIFY_OP_ATTACH:
		fputs(" (reader attached: records before this were not observed)", f);
		break;
	case SCOUTFS_NOTIFY_OP_MMAP:
		fprintf(f, " ino=%" PRIu64 " offset=%" PRIu64 " len=%" PRIu64 " map=%s,%s",
			(uint64_t)r->ino, (uint64_t)r->offset, (uint64_t)r->len,
			r->flags & SCOUTFS_NOTIFY_MMAP_SHARED ? "shared" : "private",
			r->flags & SCOUTFS_NOTIFY_MMAP_WRITE ? "write" : "read");
		break;
	default:
		fprintf(f, " ino=%" PRIu64 " offset=%" PRIu64 " len=%" PRIu64
			" flags=%#o", (uint64_t)r->ino, (uint64_t)r->offset,
			(uint64_t)r->len, r->flags);
		break;
	}
	/* a merged record: how many calls it stands for */
	if (r->calls > 1)
		fprintf(f, " calls=%u", r->calls);
	if (path) {
		fputs(" path=", f);
		nf_text_str(f, path, path_len);
	}
	putc('\n', f);
}

void nf_text_gap(FILE *f, uint64_t after_seq, uint64_t seq)
{
	fprintf(f, "%" PRIu64 " records lost (seq %" PRIu64 " to %" PRIu64 ")\n",
		seq - after_seq - 1, after_seq + 1, seq - 1);
}

void nf_json_gap(FILE *f, uint64_t after_seq, uint64_t seq, const struct nf_origin *origin)
{
	json_open(f, origin);
	fprintf(f, ", \"op\": \"GAP\", \"lost\": %" PRIu64 ", \"after_seq\": %" PRIu64
		", \"seq\": %" PRIu64 "}\n", seq - after_seq - 1, after_seq, seq);
}

void nf_text_reset(FILE *f, uint64_t after_seq, uint64_t seq)
{
	fprintf(f, "seq went back from %" PRIu64 " to %" PRIu64
		" (the filesystem was mounted again)\n", after_seq, seq);
}

void nf_json_reset(FILE *f, uint64_t after_seq, uint64_t seq, const struct nf_origin *origin)
{
	json_open(f, origin);
	fprintf(f, ", \"op\": \"SEQ_RESET\", \"seq_reset\": true, \"after_seq\": %" PRIu64
		", \"seq\": %" PRIu64 "}\n", after_seq, seq);
}
