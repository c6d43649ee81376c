/*
 * What the commands of scoutfs-notify-heat share: the global options,
 * opening the database with a clear error, times and durations on the
 * command line, and the exit statuses (those of the other tools).
 */
#ifndef _SCOUTFS_HEAT_H_
#define _SCOUTFS_HEAT_H_

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "heat-store.h"

#define PROG			"scoutfs-notify-heat"

#define EXIT_TRANSIENT		1	/* try again later: locked, full, NATS away */
#define EXIT_USAGE		2
#define EXIT_PERMANENT		3	/* won't work as it is: schema, read-only */

struct heat_global {
	const char *db;
	int busy_ms;
};

extern struct heat_global g;

/* open the database, or print why not and return NULL (*status set) */
struct hs *heat_open(bool readonly, double period_s, double loss, int *status);

/* the exit status for a store failure */
int heat_status(enum hs_err kind);

/* print the store's error, prefixed, and return its exit status */
int heat_store_error(struct hs *h, const char *what);

/* now, CLOCK_REALTIME, in ns */
int64_t heat_now(void);

/*
 * A time on the command line: RFC 3339 in UTC (2026-11-26T08:00:00Z,
 * a fraction allowed) or a duration ago (90s, 10m, 2h, 30d, 4w).  ns,
 * or -1.
 */
int64_t heat_when(const char *s);

/* a duration: 90s, 10m, 2h, 30d, 4w (a bare number is seconds); seconds or -1 */
double heat_duration(const char *s);

/* a positive integer option, or -1 */
int64_t heat_count(const char *s);

int cmd_ingest(int argc, char **argv);
int cmd_scan(int argc, char **argv);
int cmd_cold(int argc, char **argv);
int cmd_hot(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_coverage(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_init(int argc, char **argv);

#endif
