/*
 * Applying access records to the index: what scoutfs-notify-heat's
 * ingest does with every record, from a NATS message (subject, the
 * Nats-Msg-Id header, payload: ha_msg(), which takes the raw bytes so
 * that it can be fuzzed) or from a daemon's socket (ha_rec()).
 *
 * Idempotent: each mount (fsid, node, rid) has a next seq; every seq
 * below it was applied or is inside one of the mount's gaps (records
 * lost, or not seen).  A record below it and in no gap was applied
 * already and changes nothing (a redelivered or duplicated message); a
 * record inside a gap (delivered late, after a NATS server failover)
 * is applied and the gap shrinks; a record past it makes the seqs
 * between a gap.  A GAP message makes its seqs a gap.
 *
 * Coalesced: records change files in memory (one delta per file:
 * counts added, times the latest, the heat summed); ha_flush() writes
 * every delta as one upsert, the mounts, their observation periods and
 * gaps, and the caller's stream position, in one transaction.  So the
 * database is always the state after some prefix of each mount's
 * records, and a process killed at any point and started again applies
 * exactly what had not been committed.
 *
 * What a record does to its file (ino of fsid):
 *   OPEN   opens += calls, last_open_ns
 *   READ   read_calls += calls, read_bytes += len, last_read_ns,
 *          last_use_ns, the reader (uid, mount), heat += calls
 *   MMAP   mmaps += 1, last_mmap_ns, last_use_ns, the reader, heat += 1
 * where calls is the record's call count (calls, which merged records
 * carry; 0 means 1) and a time is the latest record's.  ATTACH starts
 * an observation period of its mount.  A record of an op this version
 * doesn't know is counted (unknown) and changes no file.  A message
 * that fails any check (not schema 1, malformed, a payload that
 * differs from its subject or message id) changes nothing at all: its
 * seqs become part of a gap when the records after it come.
 */
#ifndef _SCOUTFS_HEAT_APPLY_H_
#define _SCOUTFS_HEAT_APPLY_H_

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "notify-format.h"
#include "heat-store.h"

#define HA_OK		0	/* applied, or nothing new in it */
#define HA_REJECT	1	/* bad input: nothing changed, the reason in err */
#define HA_FATAL	(-1)	/* out of memory: flush nothing, exit */

#define HA_NODE_MAX	64
#define HA_SUBJECT_PREFIX	"scoutfs.notify"

struct ha;

struct ha_counts {
	uint64_t messages;	/* messages taken */
	uint64_t applied;	/* records applied */
	uint64_t duplicate;	/* records applied already: nothing changed */
	uint64_t late;		/* records applied from inside a gap */
	uint64_t rejected;	/* messages (or socket records) refused */
	uint64_t unknown;	/* records of an op this version doesn't know */
	uint64_t gaps;		/* gaps recorded */
	uint64_t lost;		/* records counted lost in them */
	uint64_t flushes;	/* transactions committed */
	uint64_t rows;		/* file rows written */
};

/*
 * A new applier over store (NULL: memory only, for fuzzing; no flush),
 * with the decay of the heat (period in seconds, loss a fraction).
 */
struct ha *ha_new(struct hs *store, double period_s, double loss);
void ha_free(struct ha *a);

/* use store (and its heat parameters) from now on: before ha_load() */
int ha_rebind(struct ha *a, struct hs *store);

/* --path-map FROM=TO: paths under FROM are stored under TO; -1 if malformed */
int ha_map_add(struct ha *a, const char *spec);

/* path after the --path-map rules (valid until the next call) */
const char *ha_map(struct ha *a, const char *path, size_t len, size_t *out_len);

/* the mounts the store knows: 0, or HS_ERR (the store's err says why) */
int ha_load(struct ha *a);

/*
 * One NATS message: its subject, the value of its Nats-Msg-Id header
 * (NULL if it had none) and its payload, none NUL-terminated.  Returns
 * HA_OK, HA_REJECT with the reason in err, or HA_FATAL.
 */
int ha_msg(struct ha *a, const char *subj, size_t subj_len, const char *msgid, size_t msgid_len,
	   const char *data, size_t len, char *err, size_t errlen);

/* one record of mount (fsid, node, rid) with its path (NULL: none) */
int ha_rec(struct ha *a, uint64_t fsid, const char *node, const char *rid, const nf_rec_t *r,
	   const char *path, size_t path_len, char *err, size_t errlen);

/*
 * Write what is pending in one transaction, with the meta value
 * pos_key = pos_val (the stream position; NULL for none).  0, or
 * HS_ERR with everything rolled back (the store's err and kind say
 * why): the caller must then exit, its memory is ahead of the database.
 */
int ha_flush(struct ha *a, const char *pos_key, const char *pos_val);

/* what ha_flush_async() calls when its transaction is done: ret 0 committed, else HS_ERR */
typedef void ha_done_fn(void *cookie, int ret);

/*
 * The same in the writer thread, while the caller applies what comes
 * next: what is pending is handed over whole, and done(cookie, ...) is
 * called from that thread once its transaction is committed or rolled
 * back.  One transaction at a time: this waits for the one before.
 * HS_ERR: that one (or an earlier one) failed, or this could not be
 * handed over (done is not called: cookie is still the caller's);
 * nothing more is ever written, and the caller must exit.
 */
int ha_flush_async(struct ha *a, const char *pos_key, const char *pos_val, ha_done_fn *done,
		   void *cookie);

/* wait for the transaction in the writer thread, if any: 0, or HS_ERR as ha_flush() */
int ha_wait(struct ha *a);

/* whether the writer thread is writing a transaction now */
bool ha_busy(struct ha *a);

/*
 * Start a thread of the service (the writer, ingest's fetch thread)
 * with every signal blocked in it: signals are the main thread's.
 * Returns 0 or pthread_create()'s error.
 */
int ha_thread_start(pthread_t *th, void *(*fn)(void *), void *arg);

/* files with pending changes, and whether anything at all is pending */
size_t ha_pending_files(const struct ha *a);
bool ha_pending(const struct ha *a);

const struct ha_counts *ha_counts(struct ha *a);

/*
 * One file's changes, as its row in files takes them: counts added,
 * times the latest, the latest path, the heat decayed and summed.  A
 * flush's delta, a scanned file, the benchmark's bare loop's record.
 */
struct fdelta {
	uint64_t fsid;
	uint64_t ino;		/* 0: a free slot */
	char *path;		/* NULL: none seen */
	size_t path_len;
	int64_t path_ns;
	int64_t first_ns;
	int64_t seen_ns;	/* a scan's time, 0 from records */
	int64_t last_open;
	int64_t last_read;
	int64_t last_mmap;
	int64_t last_use;
	int64_t opens;
	int64_t calls;
	int64_t bytes;
	int64_t mmaps;
	int64_t uid;		/* the reader at last_use, -1 none */
	int64_t reader_id;	/* its mount's id, 0 none */
	double heat;
	int64_t heat_ns;
};

/*
 * The statements that add deltas to files' rows (the writer's, the
 * scan's and the bare loop's).  On an engine of path_apart (SQLite) the
 * path is written by a statement of its own, only where it changes, and
 * the upsert of the rest leaves files_path alone; elsewhere the upsert
 * writes it too.
 */
#define HA_UPSERT_ROWS	32	/* the rows of one statement: a statement a row costs its own */

struct ha_upsert {
	struct hs_stmt *path;	/* a row's path, where it has another (path_apart) */
	struct hs_stmt *row;	/* the rest of one row */
	struct hs_stmt *rows;	/* ... of HA_UPSERT_ROWS rows */
};

int ha_upsert_prepare(struct hs *h, struct ha_upsert *u);
void ha_upsert_finalize(struct ha_upsert *u);

/* n deltas (no file twice) into their rows: 0 or HS_ERR */
int ha_upsert(struct ha_upsert *u, const struct fdelta *const *d, size_t n);

/* the decayed heat factor for dt_ns nanoseconds (shared with the queries) */
double ha_decay(double period_s, double loss, int64_t dt_ns);

/* a token of a subject: 1 to 64 letters, digits, '-' or '_' */
bool ha_token_ok(const char *s, size_t len);

#endif
