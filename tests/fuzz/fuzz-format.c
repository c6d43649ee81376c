/*
 * libFuzzer target: notify-format.c's text and JSON encoders, on any
 * record and any file name (names are whatever users make them).  The
 * input is a 64-byte record (short inputs are padded with zeros), then
 * one byte of choices, then the name's bytes.  Properties:
 *
 * - each record is one line, of valid UTF-8 without a control or
 *   invisible character (text and JSON);
 * - the text line's path= field, decoded ("\\\\", "\\xHH"), gives back
 *   the exact name bytes, and every field before it is what the record
 *   says;
 * - the JSON line parses (notify-json.c) to the same record, and its
 *   path (path_b64 when the name is not UTF-8) is the exact name bytes;
 *   the origin's strings come back too;
 * - nf_text_str alone: no space, the same decoding.
 */
#include "fuzzlib.h"

#include <inttypes.h>
#include "notify-format.h"
#include "notify-json.h"

_Static_assert(sizeof(nf_rec_t) == 64, "notify records are 64 bytes");
#define NOT_IN_JSON	60

static void check_text(const nf_rec_t *r, const char *name, size_t len, bool with_path)
{
	struct fz_out out;
	const char *why = "";
	const char *p;
	char *dec;
	char want[96];
	long n;

	fz_open(&out);
	nf_text_record(out.f, r, with_path ? name : NULL, len);
	fz_close(&out);
	FZ_ASSERT(fz_lines(out.buf, out.len, &why) == 1, "text: %s: %.*s", why, (int)out.len,
		  out.buf);
	snprintf(want, sizeof(want), " seq=%" PRIu64 " ", (uint64_t)r->seq);
	FZ_ASSERT(memmem(out.buf, out.len, want, strlen(want)), "text: no %s", want);
	p = memmem(out.buf, out.len, " path=", 6);
	FZ_ASSERT(!p == !with_path, "text: path= %s", with_path ? "missing" : "without a path");
	if (with_path) {
		p += 6;
		dec = malloc(out.len + 1);
		n = fz_text_decode(p, out.len - 1 - (size_t)(p - out.buf), dec);
		FZ_ASSERT(n >= 0 && (size_t)n == len && !memcmp(dec, name, len),
			  "text: path= does not decode to the name");
		free(dec);
	}
	free(out.buf);
}

static void check_json(const nf_rec_t *r, const char *name, size_t len, bool with_path,
		       const struct nf_origin *o)
{
	struct nj_record back;
	struct fz_out out;
	const char *why = "";
	char err[160];

	fz_open(&out);
	nf_json_record(out.f, r, with_path ? name : NULL, len, o);
	fz_close(&out);
	FZ_ASSERT(fz_lines(out.buf, out.len, &why) == 1, "JSON: %s: %.*s", why, (int)out.len,
		  out.buf);
	FZ_ASSERT(!nj_parse(out.buf, out.len, &back, err, sizeof(err)), "JSON does not parse: %s: %.*s",
		  err, (int)out.len, out.buf);
	FZ_ASSERT(!back.gap && !memcmp(&back.rec, r, sizeof(*r)),
		  "JSON: the record's fields changed");
	FZ_ASSERT(!back.path == !with_path, "JSON: path");
	if (with_path)
		FZ_ASSERT(back.path_len == len && !memcmp(back.path, name, len),
			  "JSON: the path is not the exact name bytes");
	FZ_ASSERT(o ? back.fsid && !strcmp(back.fsid, o->fsid) && !strcmp(back.node, o->node) &&
		  !strcmp(back.rid, o->rid) : !back.fsid && !back.node && !back.rid,
		  "JSON: the origin changed");
	nj_free(&back);
	free(out.buf);
}

static void check_str(const char *s, size_t len)
{
	struct fz_out out;
	const char *why = "";
	char *dec;
	long n;

	fz_open(&out);
	nf_text_str(out.f, s, len);
	putc('\n', out.f);
	fz_close(&out);
	FZ_ASSERT(fz_lines(out.buf, out.len, &why) == 1, "nf_text_str: %s", why);
	dec = malloc(out.len);
	n = fz_text_decode(out.buf, out.len - 1, dec);
	FZ_ASSERT(n >= 0 && (size_t)n == len && !memcmp(dec, s, len),
		  "nf_text_str does not decode to its input");
	free(dec);
	free(out.buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct nf_origin origin = { "5ca1ab1e0123abcd", "n1", "0123456789abcdef" };
	nf_rec_t r = { 0 };
	uint8_t choice = 0;
	const char *name;
	char *copy;
	size_t len;

	memcpy(&r, data, size < sizeof(r) ? size : sizeof(r));
	if (size > sizeof(r))
		choice = data[sizeof(r)];
	/* the known ops, which the record's own bytes rarely make */
	if (((choice >> 2) & 7) >= 1 && ((choice >> 2) & 7) <= 4)
		r.op = (choice >> 2) & 7;
	/* the last 4 bytes, which JSON does not carry (zero in every record) */
	memset((char *)&r + NOT_IN_JSON, 0, sizeof(r) - NOT_IN_JSON);
	len = size > sizeof(r) + 1 ? size - sizeof(r) - 1 : 0;
	/* a copy of exactly the name's bytes, for ASan to catch a read past it */
	copy = malloc(len ? len : 1);
	memcpy(copy, data + size - len, len);
	name = copy;

	check_text(&r, name, len, !(choice & 1));
	check_json(&r, name, len, !(choice & 1), choice & 2 ? &origin : NULL);
	check_str(name, len);
	free(copy);
	return 0;
}
