/*
 * libFuzzer target: notify-json.c's strict parser, on any bytes (a
 * stream message's payload comes from whoever may publish on
 * scoutfs.notify.>).  Beyond ASan, UBSan and LeakSanitizer:
 *
 * - a refusal gives a reason;
 * - what is accepted makes sense: a gap covers at least one seq, with
 *   lost = seq - after_seq - 1;
 * - what is accepted, written again by notify-format.c, is one valid
 *   UTF-8 line (JSON and text alike) that parses back to the same
 *   record, path bytes and origin.
 *
 * With FUZZ_MUST_REFUSE=1 in the environment every input must be
 * refused: tests/fuzz/run.sh runs tests/fuzz/refused/json/ so (the
 * payloads the parser once took and must not).  With FUZZ_TAKEN_TO=FILE
 * an input's origin and record, as text, or "refused: why", is written
 * to FILE: tests/fuzz/run.sh compares that of each input of
 * tests/fuzz/taken/json/ with what it must be (keys written escaped, in
 * another order, or unknown ones that begin like known ones).
 */
#include "fuzzlib.h"
#include "notify-format.h"
#include "notify-json.h"

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* r written as JSON parses back to r; the text line is one line too */
static void round_trip(const struct nj_record *r)
{
	struct nf_origin o = { r->fsid, r->node, r->rid };
	struct nj_record back;
	struct fz_out out;
	const char *why = "";
	char err[160];

	fz_open(&out);
	if (r->gap)
		nf_json_gap(out.f, r->after_seq, r->seq, &o);
	else
		nf_json_record(out.f, &r->rec, r->path, r->path_len, &o);
	fz_close(&out);
	FZ_ASSERT(fz_lines(out.buf, out.len, &why) == 1, "JSON written again: %s: %.*s", why,
		  (int)out.len, out.buf);
	FZ_ASSERT(!nj_parse(out.buf, out.len, &back, err, sizeof(err)),
		  "what the encoder wrote does not parse: %s: %.*s", err, (int)out.len, out.buf);
	FZ_ASSERT(back.gap == r->gap && back.seq == r->seq && back.after_seq == r->after_seq &&
		  back.lost == r->lost, "gap or seq changed");
	FZ_ASSERT(!memcmp(&back.rec, &r->rec, sizeof(r->rec)), "the record's fields changed");
	FZ_ASSERT(!back.path == !r->path && back.path_len == r->path_len &&
		  (!r->path || !memcmp(back.path, r->path, r->path_len)), "the path's bytes changed");
	FZ_ASSERT(same_str(back.fsid, r->fsid) && same_str(back.node, r->node) &&
		  same_str(back.rid, r->rid), "fsid, node or rid changed");
	nj_free(&back);
	free(out.buf);

	fz_open(&out);
	if (r->gap)
		nf_text_gap(out.f, r->after_seq, r->seq);
	else
		nf_text_record(out.f, &r->rec, r->path, r->path_len);
	fz_close(&out);
	FZ_ASSERT(fz_lines(out.buf, out.len, &why) == 1, "text line: %s: %.*s", why, (int)out.len,
		  out.buf);
	free(out.buf);
}

static bool must_refuse;
static const char *taken_to;

/*
 * r's origin and record as text, or why it was refused (r NULL), as
 * the whole of FUZZ_TAKEN_TO's file: libFuzzer may run an input twice
 * (the second time to look for a leak).
 */
static void taken(const struct nj_record *r, const char *why)
{
	FILE *f = fopen(taken_to, "w");

	FZ_ASSERT(f, "cannot write %s: %s", taken_to, strerror(errno));
	if (!r) {
		fprintf(f, "refused: %s\n", why);
	} else {
		fprintf(f, "fsid=%s node=%s rid=%s\n", r->fsid ? r->fsid : "-",
			r->node ? r->node : "-", r->rid ? r->rid : "-");
		if (r->gap)
			nf_text_gap(f, r->after_seq, r->seq);
		else
			nf_text_record(f, &r->rec, r->path, r->path_len);
	}
	FZ_ASSERT(!fclose(f), "cannot write %s", taken_to);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	must_refuse = getenv("FUZZ_MUST_REFUSE") && !strcmp(getenv("FUZZ_MUST_REFUSE"), "1");
	taken_to = getenv("FUZZ_TAKEN_TO");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nj_record r;
	char err[160] = "";

	if (nj_parse((const char *)data, size, &r, err, sizeof(err))) {
		FZ_ASSERT(err[0] && memchr(err, 0, sizeof(err)), "a refusal without a reason");
		if (taken_to)
			taken(NULL, err);
		return 0;
	}
	if (taken_to)
		taken(&r, NULL);
	FZ_ASSERT(!must_refuse, "taken, but must be refused: %.*s", (int)size, (const char *)data);
	if (r.gap)
		FZ_ASSERT(r.seq > r.after_seq && r.seq - r.after_seq >= 2 &&
			  r.lost == r.seq - r.after_seq - 1,
			  "a gap after_seq %llu seq %llu lost %llu", (unsigned long long)r.after_seq,
			  (unsigned long long)r.seq, (unsigned long long)r.lost);
	else
		FZ_ASSERT(r.seq == r.rec.seq, "seq is the record's");
	round_trip(&r);
	nj_free(&r);
	return 0;
}
