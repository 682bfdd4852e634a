/*
 * report.h: the journal read for people (report.c): run history, one run's
 * report, drift ids and history, errors, the status route's totals and
 * /metrics' numbers, as JSON for the CLI and the API (the caller owns
 * *out). Reads only; the journal's writers are store.h's.
 *
 * A mirror argument filters by mirror (NULL: every mirror); a filter by a
 * state or kind is a pointer to its enum (NULL: every one), so the words
 * stay in store.c's name tables.
 */
#ifndef RECONCILER_REPORT_H
#define RECONCILER_REPORT_H

#include "error.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

/* Runs, newest first: at most limit, with ids below before (0: from the
 * newest), of one status (NULL: any). */
RC_MUST_CHECK rcode report_runs(struct store *s, cJSON **out, const char *mirror, int64_t limit,
                                int64_t before, const enum run_status *status);
/* The mirror's (NULL: any) newest run that verifies, as an array of at
 * most one: a sample is no verification (STORE_VERIFYING). */
RC_MUST_CHECK rcode report_last_run(struct store *s, cJSON **out, const char *mirror);
RC_MUST_CHECK rcode report_run(struct store *s, cJSON **out, int64_t run_id);
/* report_run for a person (`reconciler show`): what ran, when and for how
 * long, the counts, batches, errors, warnings and a few drift ids of each
 * kind, in about a screen; `show --json` is report_run's JSON. */
RC_MUST_CHECK rcode report_run_text(struct store *s, FILE *out, int64_t run_id);
/* A run's drift rows of one kind (NULL: any) by id, after the id `after`
 * (NULL: from the first): at least limit rows unless there are fewer, and
 * every row of the last id listed. */
RC_MUST_CHECK rcode report_ids(struct store *s, cJSON **out, int64_t run_id,
                               const enum drift_kind *kind, const char *after, int64_t limit);
/* One page of a run's drift rows in the order of their key (kind, then
 * id, type and copy), after the row `after` (NULL: from the first), with
 * the keys of report_ids' rows: the NDJSON export pages with it, so a
 * million rows never sit in memory at once. */
RC_MUST_CHECK rcode report_ids_page(struct store *s, cJSON **out, int64_t run_id,
                                    const enum drift_kind *kind, const struct store_drift *after,
                                    int64_t limit);

/* Which drift history rows report_drift lists (one name table, report.c). */
enum drift_history_state {
	DRIFT_HISTORY_OPEN,      /* seen in the mirror's latest pass (or since), not repaired */
	DRIFT_HISTORY_RECURRING, /* in STORE_RECURRING_STREAK runs in a row, or back after repair */
	DRIFT_HISTORY_ALL,
};
#define DRIFT_HISTORY_COUNT ((int)DRIFT_HISTORY_ALL + 1)
int report_history_state_parse(const char *name, enum drift_history_state *out); /* 0 or -1 */
const char *report_history_state_name(enum drift_history_state st);

/* Drift history rows of a mirror (NULL: every mirror), of one kind (NULL:
 * any), by id: those with ids after `after` (NULL: from the first), at
 * least limit rows unless there are fewer, and every row of the last id
 * listed (so paging by id loses none). */
RC_MUST_CHECK rcode report_drift(struct store *s, cJSON **out, const char *mirror,
                                 enum drift_history_state state, const enum drift_kind *kind,
                                 const char *after, int64_t limit);
RC_MUST_CHECK rcode report_errors(struct store *s, cJSON **out, int64_t run_id, int64_t limit);
/* Totals for the status route: checks, syncs, documents synced, errors
 * (those of the mirror's runs; with NULL also those of no run), last times. */
RC_MUST_CHECK rcode report_totals(struct store *s, cJSON **out, const char *mirror);
/* Small numbers for /metrics: calls fn(name, labels, value), family by
 * family, one series per mirror of mirrors (n of them), each of that
 * mirror's runs only (never the journal's other mirrors, such as removed
 * ones), labelled mirror="name" when labelled. */
RC_MUST_CHECK rcode report_metrics(
    struct store *s, const char *const *mirrors, size_t n, bool labelled,
    void (*fn)(void *ctx, const char *name, const char *labels, double value), void *ctx);

#endif
