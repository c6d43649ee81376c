/*
 * scoutfs-notify-heat: a persisted, cluster-wide index of how the files
 * of scoutfs filesystems are used, built from the access records of
 * scoutfs-notifyd, to answer "which files have not been read since T,
 * coldest first" and "which are hot" for archive and tiering policies.
 *
 *   ingest   the service: apply records from the NATS JetStream stream
 *            (a durable consumer) or from one node's daemon socket
 *   scan     add the files no record named (never read), remove the gone
 *   cold, hot, stat, report, coverage, dump   the queries
 *
 * Every command is its own file (heat-ingest.c, heat-scan.c,
 * heat-query.c); this one parses the global options and dispatches.
 * Nothing is ever written into a watched filesystem: the index is a
 * database elsewhere (heat-store.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heat.h"

struct heat_global g = { HS_DEFAULT_DB, 10000 };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--db DB] [--busy-timeout DUR] COMMAND [options]\n"
		"\n"
		"A persisted, cluster-wide index of how scoutfs files are used, built from\n"
		"the records of scoutfs-notifyd (see scoutfs-notify-heat(8)).\n"
		"\n"
		"Commands:\n"
		"  ingest --server URL ...   apply the records of the NATS JetStream stream\n"
		"  ingest --socket MOUNT     apply the records of this node's daemon\n"
		"  scan MOUNT                add files never named by a record, remove gone ones\n"
		"  cold [--not-read-since WHEN] [--under DIR]   coldest first\n"
		"  hot [--top N] [--since WHEN] [--under DIR]    hottest first\n"
		"  stat PATH...              what the index has of these files\n"
		"  report --by uid|node|dir  totals per last reader's uid, node, or directory\n"
		"  coverage [--since WHEN]   which mounts were observed, when, and what was lost\n"
		"  dump                      every row, in a fixed order\n"
		"  init [--heat-period DUR] [--heat-loss PCT]   create the database\n"
		"\n"
		"Global options:\n"
		"  --db DB                 a SQLite file (default " HS_DEFAULT_DB ",\n"
		"                          or $SCOUTFS_NOTIFY_HEAT_DB), or a postgresql:// URI\n"
		"  --busy-timeout DUR      how long to wait for another writer's lock (10s)\n"
		"  -h, --help              this text; COMMAND --help for a command's\n"
		"\n"
		"Engines in this build: sqlite%s.  Sources: socket%s.\n",
		hs_postgres ? ", postgresql" : "",
#ifdef HEAT_NATS
		", nats"
#else
		""
#endif
		);
}

int64_t heat_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

double heat_duration(const char *s)
{
	static const struct {
		const char *unit;
		double secs;
	} units[] = { { "", 1 }, { "ms", 0.001 }, { "s", 1 }, { "m", 60 }, { "h", 3600 },
		      { "d", 86400 }, { "w", 7 * 86400 } };
	unsigned long long v;
	char *end;
	size_t i;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || v > 100ULL * 366 * 86400 * 1000)
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(end, units[i].unit))
			return (double)v * units[i].secs;
	return -1;
}

int64_t heat_when(const char *s)
{
	struct tm tm = { 0 };
	const char *p;
	int64_t frac = 0;
	int64_t scale = 100000000;
	double d;
	time_t t;
	int n = 0;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) == 6 && n == 19) {
		p = s + n;
		if (*p == '.')
			for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
				frac += (*p - '0') * scale;
		if (strcmp(p, "Z") || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
		    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
			return -1;
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		t = timegm(&tm);
		return t < 0 ? -1 : (int64_t)t * 1000000000LL + frac;
	}
	d = heat_duration(s);
	if (d < 0 || !strcmp(s, "0") || strspn(s, "0123456789") == strlen(s))
		return -1;
	return heat_now() - (int64_t)(d * 1e9);
}

int64_t heat_count(const char *s)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v == 0 || v > INT64_MAX)
		return -1;
	return (int64_t)v;
}

int heat_status(enum hs_err kind)
{
	switch (kind) {
	case HS_E_READONLY:
	case HS_E_SCHEMA:
		return EXIT_PERMANENT;
	default:
		return EXIT_TRANSIENT;
	}
}

static const char *hint(enum hs_err kind)
{
	switch (kind) {
	case HS_E_LOCKED:
		return " (another process holds the database: nothing was written; try again)";
	case HS_E_READONLY:
		return " (the database can't be written: nothing was written)";
	case HS_E_FULL:
		return " (no space for the database: nothing was written)";
	case HS_E_CONFLICT:
		return " (nothing was written)";
	default:
		return "";
	}
}

int heat_store_error(struct hs *h, const char *what)
{
	fprintf(stderr, PROG ": %s: %s%s\n", what, h->err, hint(h->kind));
	return heat_status(h->kind);
}

struct hs *heat_open(bool readonly, double period_s, double loss, int *status)
{
	enum hs_err kind;
	char err[600];
	struct hs *h;

	h = hs_open(g.db, readonly, g.busy_ms, period_s, loss, err, sizeof(err), &kind);
	if (!h) {
		fprintf(stderr, PROG ": database %s: %s%s\n", g.db, err, hint(kind));
		*status = heat_status(kind);
	}
	return h;
}

int cmd_init(int argc, char **argv)
{
	double period = 0;
	double loss = 0;
	struct hs *h;
	int status = 0;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--heat-period") && i + 1 < argc) {
			period = heat_duration(argv[++i]);
			if (period <= 0) {
				fprintf(stderr, PROG ": --heat-period needs a duration (1h), not '%s'\n", argv[i]);
				return EXIT_USAGE;
			}
		} else if (!strcmp(argv[i], "--heat-loss") && i + 1 < argc) {
			loss = strtod(argv[++i], NULL) / 100.0;
			if (!(loss > 0 && loss < 1)) {
				fprintf(stderr, PROG ": --heat-loss needs a percentage over 0 and under 100\n");
				return EXIT_USAGE;
			}
		} else {
			fprintf(stderr, "usage: " PROG " init [--heat-period DUR] [--heat-loss PCT]\n");
			return !strcmp(argv[i], "--help") ? 0 : EXIT_USAGE;
		}
	}
	h = heat_open(false, period, loss, &status);
	if (!h)
		return status;
	if ((period && h->heat_period_s != period) || (loss && h->heat_loss != loss)) {
		fprintf(stderr, PROG ": database %s exists with heat period %gs and loss %g%%: not changed\n",
			g.db, h->heat_period_s, h->heat_loss * 100);
		status = EXIT_PERMANENT;
	} else {
		printf("database %s: schema %d, %s, heat period %gs, loss %g%%\n", g.db, HS_SCHEMA,
		       h->e->name, h->heat_period_s, h->heat_loss * 100);
	}
	hs_close(h);
	return status;
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
} cmds[] = {
	{ "ingest", cmd_ingest }, { "scan", cmd_scan }, { "cold", cmd_cold },
	{ "hot", cmd_hot }, { "stat", cmd_stat }, { "report", cmd_report },
	{ "coverage", cmd_coverage }, { "dump", cmd_dump }, { "init", cmd_init },
};

/* the global options, before the command: the command's index, or -1 (status set) */
static int global_opts(int argc, char **argv, int *status)
{
	double d;
	int i;

	if (getenv("SCOUTFS_NOTIFY_HEAT_DB") && *getenv("SCOUTFS_NOTIFY_HEAT_DB"))
		g.db = getenv("SCOUTFS_NOTIFY_HEAT_DB");
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--db") && i + 1 < argc) {
			g.db = argv[++i];
		} else if (!strcmp(argv[i], "--busy-timeout") && i + 1 < argc) {
			d = heat_duration(argv[++i]);
			if (d < 0 || d > 3600) {
				fprintf(stderr, PROG ": --busy-timeout needs a duration up to 1h (10s, 500ms)\n");
				*status = EXIT_USAGE;
				return -1;
			}
			g.busy_ms = (int)(d * 1000);
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			*status = 0;
			return -1;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, PROG ": unknown option '%s' (before the command)\n", argv[i]);
			*status = EXIT_USAGE;
			return -1;
		} else {
			return i;
		}
	}
	usage(stderr);
	*status = EXIT_USAGE;
	return -1;
}

int main(int argc, char **argv)
{
	int status = 0;
	size_t k;
	int i;

	i = global_opts(argc, argv, &status);
	if (i < 0)
		return status;
	if (!*g.db) {
		fprintf(stderr, PROG ": --db is empty\n");
		return EXIT_USAGE;
	}
	for (k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++)
		if (!strcmp(argv[i], cmds[k].name))
			return cmds[k].fn(argc - i, argv + i);
	fprintf(stderr, PROG ": unknown command '%s' (" PROG " --help lists them)\n", argv[i]);
	return EXIT_USAGE;
}
