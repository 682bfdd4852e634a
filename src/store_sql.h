/*
 * store_sql.h: the journal's statement helper, shared by store.c (writes)
 * and report.c (reads). Not for other modules: they call store.h.
 */
#ifndef RECONCILER_STORE_SQL_H
#define RECONCILER_STORE_SQL_H

#include "error.h"
#include "store.h"

#include <sqlite3.h>

/* Prepares sql on s's connection and binds its parameters: types is one
 * letter per "?" (i int64, t text or NULL, n int64 where < 0 means NULL),
 * the values follow. *out is NULL on failure; the caller
 * finalizes it. Errors are logged with what a person can do about them. */
RC_MUST_CHECK rcode store_sql_prepare(struct store *s, sqlite3_stmt **out, const char *sql,
                                      const char *types, ...);

/* A pass, for drift history: a check, dry run or catch-up of the mirror
 * that completed (SQL lists, for "kind IN" and "status IN"). */
#define STORE_PASS_KINDS    "('check', 'dry_run', 'catchup')"
#define STORE_PASS_STATUSES "('completed', 'held')" /* held: a whole pass, its deletes kept */
/* A run that verifies (a pass, a targeted run, a full re-index): every kind
 * but a sample, an estimate that is no verification (docs/ENGINE.md "A
 * quick estimate"; QA20 F7). For status, totals, the newest run and drift
 * history. */
#define STORE_VERIFYING "kind <> 'sample'"

/* A run's counters, computed from its rows (ID: the SQL for the run's id,
 * "?1" in a statement that binds it or "runs.id" in a query over runs;
 * `kind` outside the subqueries is the run's kind). store_run_recount
 * writes them into runs; report.c computes them live for a run not ended,
 * whose stored counters lag by up to a second (store.c's design comment). */
#define STORE_CNT_KIND(ID, K)                                                                      \
	"(SELECT count(*) FROM run_ids WHERE run_id = " ID " AND kind = '" K "')"
#define STORE_CNT_NEWER(ID)                                                                        \
	"(SELECT COALESCE(SUM(skipped_newer), 0) FROM batches WHERE run_id = " ID                  \
	" AND status = 'committed')"
/* a check's newer copies are skipped rows too: counted apart */
#define STORE_CNT_SKIPPED(ID)                                                                      \
	"((SELECT count(*) FROM run_ids WHERE run_id = " ID                                        \
	" AND status = 'skipped') - CASE WHEN "                                                    \
	"full_write = 1 THEN 0 ELSE " STORE_CNT_NEWER(ID) " END)"
/* drift repaired; a run that writes every document by id range
 * (full_write: a full re-index) counts what it wrote apart */
#define STORE_CNT_REPAIRED(ID)                                                                     \
	"(SELECT count(*) FROM run_ids WHERE run_id = " ID                                         \
	" AND kind IN ('missing', 'stale') AND "                                                   \
	"status = 'done')"
#define STORE_CNT_REINDEXED(ID)                                                                    \
	"(CASE WHEN full_write = 1 THEN (SELECT COALESCE(SUM(ok), 0) FROM batches WHERE run_id "   \
	"= " ID " AND action = 'index' AND status = 'committed' AND first_id IS NOT NULL) ELSE 0 " \
	"END)"
/* orphans a check found and kept (RECONCILE_ORPHANS=report); a dry run
 * keeps nothing (it writes nothing), a held run says so itself */
#define STORE_CNT_ORPHANS_KEPT(ID)                                                                 \
	"(CASE WHEN kind = 'dry_run' OR delete_brake = 'held' THEN 0 ELSE (SELECT count(*) "       \
	"FROM run_ids WHERE run_id = " ID " AND kind = 'orphan' AND status = 'reported') END)"
#define STORE_CNT_DELETED(ID)                                                                      \
	"(SELECT count(*) FROM run_ids WHERE run_id = " ID                                         \
	" AND kind IN ('orphan', 'duplicate') AND status = 'done')"
#define STORE_CNT_FAILED(ID)                                                                       \
	"(CASE WHEN full_write = 1 THEN (SELECT COALESCE(SUM(failed), 0) FROM batches WHERE "      \
	"run_id = " ID ") + (SELECT count(*) FROM errors WHERE run_id = " ID " AND batch_no IS "   \
	"NULL AND doc_id IS NOT NULL AND phase = 'repair') ELSE (SELECT count(*) FROM run_ids "    \
	"WHERE run_id = " ID " AND status = 'failed') END)"

/* A counter as stored once the run has ended, live from its rows while it
 * has not: stored ones lag a running run, and a run stopped by a full disk
 * could not store its last ones. */
#define STORE_LIVE(EXPR, COL)                                                                      \
	"(CASE WHEN status IN ('running', 'interrupted') THEN " EXPR " ELSE " COL " END)"

/* The SET list that stores every counter of the run ID (a recount). */
/* (clang-format reflows this list differently on every pass) */
/* clang-format off */
#define STORE_RUN_COUNTS_SET(ID)                                                                   \
	"missing_count = " STORE_CNT_KIND(ID, "missing") ", "                                      \
	"orphan_count = " STORE_CNT_KIND(ID, "orphan") ", "                                        \
	"duplicate_count = " STORE_CNT_KIND(ID, "duplicate") ", "                                  \
	"conflict_count = " STORE_CNT_KIND(ID, "conflict") ", "                                    \
	"stale_count = " STORE_CNT_KIND(ID, "stale") ", "                                          \
	"skipped_newer_count = " STORE_CNT_NEWER(ID) ", "                                          \
	"skipped_count = " STORE_CNT_SKIPPED(ID) ", "                                              \
	"repaired_count = " STORE_CNT_REPAIRED(ID) ", "                                            \
	"reindexed_count = " STORE_CNT_REINDEXED(ID) ", "                                          \
	"orphans_kept_count = " STORE_CNT_ORPHANS_KEPT(ID) ", "                                                    \
	"deleted_count = " STORE_CNT_DELETED(ID) ", "                                              \
	"failed_count = " STORE_CNT_FAILED(ID)
/* clang-format on */

#endif
