/*
 * report.c: the journal read for people: run history, one run's report,
 * drift ids, errors, the status route's totals and /metrics' numbers, all
 * as JSON (cJSON) or metric callbacks. Reads only; the commit transactions
 * stay in store.c. Every query binds its parameters (store_sql_prepare).
 */
#include "report.h"
#include "store.h"
#include "store_sql.h"
#include "util.h"

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

/* Turns every row of a prepared statement into a JSON object (column name
 * -> value) appended to arr. */
static RC_MUST_CHECK rcode
rows_to_json(sqlite3_stmt *st, cJSON *arr)
{
	int step;

	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		cJSON *o = cJSON_CreateObject();
		if (o == NULL)
			return RC_ERR_NOMEM;
		cJSON_AddItemToArray(arr, o);
		for (int i = 0; i < sqlite3_column_count(st); i++) {
			const char *name = sqlite3_column_name(st, i);
			cJSON *v;
			switch (sqlite3_column_type(st, i)) {
			case SQLITE_INTEGER:
				v = cJSON_CreateNumber((double)sqlite3_column_int64(st, i));
				break;
			case SQLITE_FLOAT:
				v = cJSON_CreateNumber(sqlite3_column_double(st, i));
				break;
			case SQLITE_NULL:
				v = cJSON_CreateNull();
				break;
			default:
				v = cJSON_CreateString((const char *)sqlite3_column_text(st, i));
			}
			if (v == NULL)
				return RC_ERR_NOMEM;
			cJSON_AddItemToObject(o, name, v);
		}
	}
	return step == SQLITE_DONE ? RC_OK : RC_ERR_STORE;
}

static RC_MUST_CHECK rcode
query_json(struct store *s, cJSON **out, sqlite3_stmt *st)
{
	cJSON *arr = cJSON_CreateArray();
	rcode rc = arr ? rows_to_json(st, arr) : RC_ERR_NOMEM;

	sqlite3_finalize(st);
	if (rc) {
		cJSON_Delete(arr);
		return rc;
	}
	*out = arr;
	return RC_OK;
}

/* A kind filter's word as run_ids.kind and drift_history.kind spell it;
 * NULL (every kind) binds as NULL. */
static const char *
kind_word(const enum drift_kind *kind)
{
	return kind ? store_drift_kind_name(*kind) : NULL;
}

#define LIVE(EXPR, COL, AS) STORE_LIVE(EXPR, COL) " AS " AS

/* A run's columns as the API names them; its counters live while it has
 * not ended. One clause per line, kept out of clang-format, which flows it
 * across hundreds of columns differently on every pass. */
/* clang-format off */
#define RUN_COLUMNS                                                                                \
	"id, mirror, kind, trigger, status, phase, started_at AS startedAt, "                      \
	"finished_at AS finishedAt, heartbeat_at AS heartbeatAt, mongo_count AS mongoCount, "      \
	"opensearch_count AS opensearchCount, compared, "                                          \
	LIVE(STORE_CNT_KIND("runs.id", "missing"), "missing_count", "missingCount") ", "           \
	LIVE(STORE_CNT_KIND("runs.id", "orphan"), "orphan_count", "orphanCount") ", "              \
	LIVE(STORE_CNT_KIND("runs.id", "stale"), "stale_count", "staleCount") ", "                 \
	LIVE(STORE_CNT_SKIPPED("runs.id"), "skipped_count", "skippedCount") ", "                   \
	LIVE(STORE_CNT_REPAIRED("runs.id"), "repaired_count", "repairedCount") ", "                \
	LIVE(STORE_CNT_DELETED("runs.id"), "deleted_count", "deletedCount") ", "                   \
	LIVE(STORE_CNT_FAILED("runs.id"), "failed_count", "failedCount") ", "                      \
	"resume_count AS resumeCount, error, "                                                     \
	LIVE(STORE_CNT_KIND("runs.id", "duplicate"), "duplicate_count", "duplicateCount") ", "     \
	LIVE(STORE_CNT_KIND("runs.id", "conflict"), "conflict_count", "conflictCount") ", "        \
	LIVE(STORE_CNT_NEWER("runs.id"), "skipped_newer_count", "skippedNewerCount") ", "          \
	"full_write AS fullWrite, "                                                                \
	LIVE(STORE_CNT_REINDEXED("runs.id"), "reindexed_count", "reindexedCount") ", "             \
	LIVE(STORE_CNT_ORPHANS_KEPT("runs.id"), "orphans_kept_count", "orphansKept") ", "         \
	"kept_count AS keptCount, verify, verify_note AS verifyNote, "                              \
	"ranges_summarized AS rangesSummarized, ranges_descended AS rangesDescended, "             \
	"partition_k AS partitionK, partition_n AS partitionN, partition_type AS partitionType, "  \
	"partition_lo AS partitionLo, partition_hi AS partitionHi, split_of AS splitOf"
/* clang-format on */

rcode
report_runs(struct store *s, cJSON **out, const char *mirror, int64_t limit, int64_t before,
            const enum run_status *status)
{
	sqlite3_stmt *st;
	rcode rc;

	*out = NULL;
	rc = store_sql_prepare(s, &st,
	                       "SELECT " RUN_COLUMNS " FROM runs WHERE (?1 <= 0 OR id < ?1) AND"
	                       " (?2 IS NULL OR status = ?2) AND (?4 IS NULL OR mirror = ?4)"
	                       " ORDER BY id DESC LIMIT ?3",
	                       "itit", before, status ? store_run_status_name(*status) : NULL,
	                       limit, mirror);
	return rc ? rc : query_json(s, out, st);
}

rcode
report_last_run(struct store *s, cJSON **out, const char *mirror)
{
	sqlite3_stmt *st;
	rcode rc;

	*out = NULL;
	rc = store_sql_prepare(s, &st,
	                       "SELECT " RUN_COLUMNS " FROM runs WHERE " STORE_VERIFYING
	                       " AND (?1 IS NULL OR mirror = ?1) ORDER BY id DESC LIMIT 1",
	                       "t", mirror);
	return rc ? rc : query_json(s, out, st);
}

/* A sample run's estimate (run_samples, `check --sample N`) as "sample";
 * no key for a run that has none. */
static RC_MUST_CHECK rcode
add_sample(struct store *s, cJSON *run, int64_t run_id)
{
	sqlite3_stmt *st;
	cJSON *arr = NULL;
	rcode rc = store_sql_prepare(
	    s, &st,
	    "SELECT asked, seed, method, population, mongo_n AS mongoN, missing, stale,"
	    " rate, rate_low AS rateLow, rate_high AS rateHigh, 'wilson95' AS interval,"
	    " index_n AS indexN, orphans, orphan_rate AS orphanRate, orphan_low AS orphanLow,"
	    " orphan_high AS orphanHigh, seconds, note FROM run_samples WHERE run_id = ?",
	    "i", run_id);

	if (rc || (rc = query_json(s, &arr, st)))
		return rc;
	if (cJSON_GetArraySize(arr) > 0)
		cJSON_AddItemToObject(run, "sample", cJSON_DetachItemFromArray(arr, 0));
	cJSON_Delete(arr);
	return RC_OK;
}

rcode
report_run(struct store *s, cJSON **out, int64_t run_id)
{
	sqlite3_stmt *st;
	cJSON *arr = NULL, *run, *part;
	rcode rc;

	*out = NULL;
	rc = store_sql_prepare(
	    s, &st, "SELECT " RUN_COLUMNS ", cursor, config FROM runs WHERE id = ?", "i", run_id);
	if (rc || (rc = query_json(s, &arr, st)))
		return rc;
	if (cJSON_GetArraySize(arr) == 0) {
		cJSON_Delete(arr);
		return RC_ERR_NOTFOUND;
	}
	run = cJSON_DetachItemFromArray(arr, 0);
	cJSON_Delete(arr);
	/* the snapshot is JSON text: show it as an object */
	cJSON *cfg = cJSON_GetObjectItem(run, "config");
	if (cJSON_IsString(cfg)) {
		cJSON *parsed = cJSON_Parse(cfg->valuestring);
		if (parsed)
			cJSON_ReplaceItemInObject(run, "config", parsed);
	}
	rc = store_sql_prepare(s, &st,
	                       "SELECT action, status, count(*) AS batches, SUM(docs) AS docs,"
	                       " SUM(bytes) AS bytes, SUM(ok) AS ok, SUM(failed) AS failed,"
	                       " SUM(attempts) AS attempts, SUM(took_ms) AS tookMs FROM batches"
	                       " WHERE run_id = ? GROUP BY action, status ORDER BY action, status",
	                       "i", run_id);
	if (rc == RC_OK && (rc = query_json(s, &part, st)) == RC_OK)
		cJSON_AddItemToObject(run, "batches", part);
	if (rc == RC_OK && (rc = report_errors(s, &part, run_id, 20)) == RC_OK)
		cJSON_AddItemToObject(run, "errors", part);
	if (rc == RC_OK)
		rc = store_sql_prepare(s, &st,
		                       "SELECT at, event, detail FROM run_events WHERE run_id = ?"
		                       " ORDER BY id LIMIT 200",
		                       "i", run_id);
	if (rc == RC_OK && (rc = query_json(s, &part, st)) == RC_OK)
		cJSON_AddItemToObject(run, "events", part);
	if (rc == RC_OK)
		rc = store_sql_prepare(s, &st,
		                       "SELECT kind, doc_id AS id, status, reason, fields FROM "
		                       "run_ids WHERE run_id = ?"
		                       " ORDER BY kind, doc_id LIMIT 20",
		                       "i", run_id);
	if (rc == RC_OK && (rc = query_json(s, &part, st)) == RC_OK)
		cJSON_AddItemToObject(run, "driftSample", part);
	if (rc == RC_OK)
		rc = add_sample(s, run, run_id);
	if (rc) {
		cJSON_Delete(run);
		return rc;
	}
	*out = run;
	return RC_OK;
}

/* ---- one run's report as text ----------------------------------------- */

static const char *
text_of(const cJSON *o, const char *key)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
	return v ? v : "-";
}

/* A count, or "-" where it was not taken (a JSON null). */
static const char *
count_of(char *buf, size_t len, const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(o, key);

	if (!cJSON_IsNumber(v))
		return "-";
	snprintf(buf, len, "%.0f", v->valuedouble);
	return buf;
}

/* How the pass verified its key ranges (RECONCILE_VERIFY), where it had
 * one. */
static void
text_verify(FILE *out, const cJSON *r)
{
	const char *verify = cJSON_GetStringValue(cJSON_GetObjectItem(r, "verify"));
	const char *note = cJSON_GetStringValue(cJSON_GetObjectItem(r, "verifyNote"));
	char a[32], b[32];

	if (verify == NULL)
		return;
	/* a note on a summary run is where the merge took over (QA26 F2) */
	if (strcmp(verify, "summary") == 0)
		fprintf(
		    out,
		    "  verified   by range summaries%s: %s ranges in sync by their summaries, %s "
		    "streamed (they differed)%s%s\n",
		    note ? ", then by merge" : "", count_of(a, sizeof(a), r, "rangesSummarized"),
		    count_of(b, sizeof(b), r, "rangesDescended"), note ? "; " : "",
		    note ? note : "");
	else
		fprintf(out, "  verified   by merge (every index id streamed)%s%s\n",
		        note ? ": " : "", note ? note : "");
}

static void
text_head(FILE *out, const cJSON *r)
{
	char a[32], b[32], c[32], d[32], e[32];
	int64_t t0, t1;
	const char *err = cJSON_GetStringValue(cJSON_GetObjectItem(r, "error"));

	fprintf(out, "run %s of mirror %s: %s, %s (trigger %s, phase %s)\n",
	        count_of(a, sizeof(a), r, "id"), text_of(r, "mirror"), text_of(r, "kind"),
	        text_of(r, "status"), text_of(r, "trigger"), text_of(r, "phase"));
	fprintf(out, "  started    %s\n", text_of(r, "startedAt"));
	if (util_iso_to_ms(text_of(r, "startedAt"), &t0) == 0 &&
	    util_iso_to_ms(text_of(r, "finishedAt"), &t1) == 0)
		fprintf(out, "  finished   %s (took %.1f s)\n", text_of(r, "finishedAt"),
		        (double)(t1 - t0) / 1000.0);
	else
		fprintf(out, "  finished   -  (last heartbeat %s)\n", text_of(r, "heartbeatAt"));
	fprintf(out, "  counted    mongodb %s, opensearch %s; compared %s\n",
	        count_of(a, sizeof(a), r, "mongoCount"),
	        count_of(b, sizeof(b), r, "opensearchCount"),
	        count_of(c, sizeof(c), r, "compared"));
	fprintf(out, "  drift      missing %s, stale %s, orphans %s, duplicates %s, conflicts %s\n",
	        count_of(a, sizeof(a), r, "missingCount"), count_of(b, sizeof(b), r, "staleCount"),
	        count_of(c, sizeof(c), r, "orphanCount"),
	        count_of(d, sizeof(d), r, "duplicateCount"),
	        count_of(e, sizeof(e), r, "conflictCount"));
	fprintf(out, "  done       repaired %s, deleted %s, failed %s, skipped %s",
	        count_of(a, sizeof(a), r, "repairedCount"),
	        count_of(b, sizeof(b), r, "deletedCount"), count_of(c, sizeof(c), r, "failedCount"),
	        count_of(d, sizeof(d), r, "skippedCount"));
	fprintf(out, " (newer in the index %s); resumed %s times\n",
	        count_of(a, sizeof(a), r, "skippedNewerCount"),
	        count_of(b, sizeof(b), r, "resumeCount"));
	/* two different things a person may call kept (QA19 F7): copies the
	 * keep clause protects, and orphans only reported by the policy */
	fprintf(out,
	        "  kept       %s by OPENSEARCH_KEEP_QUERY; orphans not deleted %s "
	        "(RECONCILE_ORPHANS=report)\n",
	        count_of(a, sizeof(a), r, "keptCount"), count_of(b, sizeof(b), r, "orphansKept"));
	text_verify(out, r);
	if (err)
		fprintf(out, "  error      %s\n", err);
}

static void
text_batches(FILE *out, const cJSON *r)
{
	const cJSON *b;
	char n[32], d[32], ok[32], f[32], at[32], ms[32];

	if (cJSON_GetArraySize(cJSON_GetObjectItem(r, "batches")) == 0) {
		fprintf(out, "batches: none\n");
		return;
	}
	fprintf(out, "batches\n  %-8s %-11s %8s %9s %9s %7s %8s %9s\n", "action", "status",
	        "batches", "docs", "ok", "failed", "attempts", "took ms");
	cJSON_ArrayForEach(b, cJSON_GetObjectItem(r, "batches"))
	    fprintf(out, "  %-8s %-11s %8s %9s %9s %7s %8s %9s\n", text_of(b, "action"),
	            text_of(b, "status"), count_of(n, sizeof(n), b, "batches"),
	            count_of(d, sizeof(d), b, "docs"), count_of(ok, sizeof(ok), b, "ok"),
	            count_of(f, sizeof(f), b, "failed"), count_of(at, sizeof(at), b, "attempts"),
	            count_of(ms, sizeof(ms), b, "tookMs"));
}

/* Errors, and the events a person reads (warnings, holds, the start and
 * the end; the phases are left to --json). */
static void
text_events(FILE *out, const cJSON *r)
{
	const cJSON *e, *errs = cJSON_GetObjectItem(r, "errors");
	int shown = 0, left = 0;

	if (cJSON_GetArraySize(errs) == 0)
		fprintf(out, "errors: none\n");
	else
		fprintf(out, "errors (the first %d)\n", cJSON_GetArraySize(errs));
	cJSON_ArrayForEach(e, errs)
	{
		const char *doc = cJSON_GetStringValue(cJSON_GetObjectItem(e, "id"));
		fprintf(out, "  %s %s%s%s%s\n", text_of(e, "at"), doc ? "id " : "", doc ? doc : "",
		        doc ? ": " : "", text_of(e, "message"));
	}
	fprintf(out, "events\n");
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "events"))
	{
		if (strcmp(text_of(e, "event"), "phase") == 0)
			continue;
		if (shown++ >= 12) {
			left++;
			continue;
		}
		fprintf(out, "  %s %-9s %s\n", text_of(e, "at"), text_of(e, "event"),
		        text_of(e, "detail"));
	}
	if (left)
		fprintf(out, "  ... %d more (reconciler show %.0f --json)\n", left,
		        cJSON_GetNumberValue(cJSON_GetObjectItem(r, "id")));
}

/* A share as a person reads it: 10.2%, 0.31%. */
static const char *
percent_of(char *buf, size_t len, const cJSON *o, const char *key)
{
	double v = cJSON_GetNumberValue(cJSON_GetObjectItem(o, key)) * 100;

	snprintf(buf, len, v >= 1 || v == 0 ? "%.1f%%" : "%.2f%%", v);
	return buf;
}

/* A sample run's estimate: each side's rate and its interval. */
static void
text_sample(FILE *out, const cJSON *r)
{
	const cJSON *e = cJSON_GetObjectItem(r, "sample");
	char a[32], b[32], c[32], d[32], f[32], g[32];
	const char *note = cJSON_GetStringValue(cJSON_GetObjectItem(e, "note"));

	if (e == NULL)
		return;
	fprintf(out, "estimate   %s MongoDB documents of %s asked (%s, seed %s) in %.1f s\n",
	        count_of(a, sizeof(a), e, "mongoN"), count_of(b, sizeof(b), e, "asked"),
	        text_of(e, "method"), count_of(c, sizeof(c), e, "seed"),
	        cJSON_GetNumberValue(cJSON_GetObjectItem(e, "seconds")));
	fprintf(out,
	        "  drift rate %s (missing %s, stale %s), 95%% interval %s to %s (Wilson score)\n",
	        percent_of(a, sizeof(a), e, "rate"), count_of(b, sizeof(b), e, "missing"),
	        count_of(c, sizeof(c), e, "stale"), percent_of(d, sizeof(d), e, "rateLow"),
	        percent_of(f, sizeof(f), e, "rateHigh"));
	if (cJSON_IsNumber(cJSON_GetObjectItem(e, "indexN")))
		fprintf(out, "  orphan rate %s (%s of %s index copies), 95%% interval %s to %s\n",
		        percent_of(a, sizeof(a), e, "orphanRate"),
		        count_of(b, sizeof(b), e, "orphans"), count_of(c, sizeof(c), e, "indexN"),
		        percent_of(d, sizeof(d), e, "orphanLow"),
		        percent_of(g, sizeof(g), e, "orphanHigh"));
	else
		fprintf(out, "  orphan rate not estimated\n");
	if (note)
		fprintf(out, "  note       %s\n", note);
}

/* A few ids of each kind the run found, with their state and why. */
static RC_MUST_CHECK rcode
text_drift(struct store *s, FILE *out, const cJSON *r, int64_t run_id)
{
	static const struct {
		enum drift_kind kind;
		const char *count;
	} kinds[] = {{DRIFT_MISSING, "missingCount"},
	             {DRIFT_STALE, "staleCount"},
	             {DRIFT_ORPHAN, "orphanCount"},
	             {DRIFT_DUPLICATE, "duplicateCount"},
	             {DRIFT_CONFLICT, "conflictCount"}};
	enum { SAMPLE = 5 };
	bool any = false;

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		cJSON *rows = NULL, *row;
		char n[32];
		int i = 0;
		rcode rc = report_ids_page(s, &rows, run_id, &kinds[k].kind, NULL, SAMPLE);
		if (rc)
			return rc;
		if (cJSON_GetArraySize(rows) > 0) {
			if (!any)
				fprintf(out,
				        "drift sample (every row: reconciler show %" PRId64
				        " --ndjson)\n",
				        run_id);
			any = true;
			fprintf(out, "  %s (%s)\n", store_drift_kind_name(kinds[k].kind),
			        count_of(n, sizeof(n), r, kinds[k].count));
		}
		cJSON_ArrayForEach(row, rows)
		{
			const char *why = cJSON_GetStringValue(cJSON_GetObjectItem(row, "reason"));
			const char *fields =
			    cJSON_GetStringValue(cJSON_GetObjectItem(row, "fields"));
			const char *error = cJSON_GetStringValue(cJSON_GetObjectItem(row, "error"));
			if (i++ >= SAMPLE)
				break;
			fprintf(out, "    %-26s %s%s%s%s%s%s%s\n", text_of(row, "id"),
			        text_of(row, "status"), why ? ": " : "", why ? why : "",
			        fields ? " fields " : "", fields ? fields : "",
			        error ? " error: " : "", error ? error : "");
		}
		cJSON_Delete(rows);
	}
	if (!any)
		fprintf(out, "drift: none journaled\n");
	return RC_OK;
}

rcode
report_run_text(struct store *s, FILE *out, int64_t run_id)
{
	cJSON *r = NULL;
	rcode rc = report_run(s, &r, run_id);

	if (rc)
		return rc;
	text_head(out, r);
	text_sample(out, r);
	text_batches(out, r);
	text_events(out, r);
	rc = text_drift(s, out, r, run_id);
	fprintf(out, "settings, every event and batch: reconciler show %" PRId64 " --json\n",
	        run_id);
	cJSON_Delete(r);
	return rc;
}

rcode
report_ids(struct store *s, cJSON **out, int64_t run_id, const enum drift_kind *kind,
           const char *after, int64_t limit)
{
	sqlite3_stmt *st;
	rcode rc;

	*out = NULL;
	/* a page ends with every row of its last id (an id may have several
	 * rows: kinds, copies), so after=its last id loses none; ?5 the
	 * limit-th id, NULL on the last page */
	rc = store_sql_prepare(
	    s, &st,
	    "WITH b AS (SELECT doc_id AS last FROM run_ids WHERE run_id = ?1 AND"
	    " (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR doc_id > ?3)"
	    " ORDER BY doc_id LIMIT 1 OFFSET ?4 - 1)"
	    " SELECT doc_id AS id, id_type AS idType, kind, status, batch_no AS batch,"
	    " error, reason, NULLIF(os_index, '') AS \"index\", NULLIF(routing, '') AS routing,"
	    " NULLIF(os_id, '') AS copyId, fields FROM run_ids WHERE "
	    "run_id = ?1 AND (?2 IS NULL OR kind = ?2) AND"
	    " (?3 IS NULL OR doc_id > ?3) AND"
	    " ((SELECT last FROM b) IS NULL OR doc_id <= (SELECT last FROM b))"
	    " ORDER BY doc_id, kind, id_type, os_index, os_id, routing",
	    "itti", run_id, kind_word(kind), after, limit);
	return rc ? rc : query_json(s, out, st);
}

#define IDS_COLUMNS                                                                                \
	"SELECT doc_id AS id, id_type AS idType, kind, status, batch_no AS batch, error, reason,"  \
	" NULLIF(os_index, '') AS \"index\", NULLIF(routing, '') AS routing, NULLIF(os_id, '')"    \
	" AS copyId, fields FROM run_ids WHERE run_id = ?1 AND (?2 IS NULL OR kind = ?2)"
#define IDS_ORDER " ORDER BY kind, doc_id, id_type, os_index, os_id, routing LIMIT ?9"

rcode
report_ids_page(struct store *s, cJSON **out, int64_t run_id, const enum drift_kind *kind,
                const struct store_drift *after, int64_t limit)
{
	sqlite3_stmt *st;
	rcode rc;

	*out = NULL;
	/* two statements, so each uses the primary key's order (a "?3 IS
	 * NULL OR" would make every page scan the run from its start) */
	if (after == NULL)
		rc = store_sql_prepare(s, &st, IDS_COLUMNS IDS_ORDER, "ittttttti", run_id,
		                       kind_word(kind), NULL, NULL, NULL, NULL, NULL, NULL, limit);
	else
		rc = store_sql_prepare(
		    s, &st,
		    IDS_COLUMNS " AND (kind, doc_id, id_type, os_index, os_id, routing) >"
		                " (?3, ?4, ?5, ?6, ?7, ?8)" IDS_ORDER,
		    "ittttttti", run_id, kind_word(kind), store_drift_kind_name(after->kind),
		    after->doc_id, after->id_type, after->os_index ? after->os_index : "",
		    after->os_id ? after->os_id : "", after->routing ? after->routing : "", limit);
	return rc ? rc : query_json(s, out, st);
}

static const char *const drift_history_state_names[] = {[DRIFT_HISTORY_OPEN] = "open",
                                                        [DRIFT_HISTORY_RECURRING] = "recurring",
                                                        [DRIFT_HISTORY_ALL] = "all"};
_Static_assert(sizeof(drift_history_state_names) / sizeof(drift_history_state_names[0]) ==
                   DRIFT_HISTORY_COUNT,
               "one name per drift history state");

int
report_history_state_parse(const char *name, enum drift_history_state *out)
{
	for (int i = 0; i < DRIFT_HISTORY_COUNT; i++)
		if (name && strcmp(name, drift_history_state_names[i]) == 0) {
			*out = (enum drift_history_state)i;
			return 0;
		}
	return -1;
}

const char *
report_history_state_name(enum drift_history_state st)
{
	assert(st >= 0 && st <= DRIFT_HISTORY_ALL);
	return drift_history_state_names[st];
}

/* Each mirror (?1: that one) with its newest pass (0: none yet); a split
 * run (RECONCILE_PARTITIONS) is one pass, named by its first run's id
 * (QA25 F12; v_drift_history says the same). */
#define PASSES                                                                                     \
	"p AS (SELECT mirror, COALESCE(max(CASE WHEN kind IN " STORE_PASS_KINDS                    \
	" AND status IN " STORE_PASS_STATUSES " THEN COALESCE(split_of, id) END), 0) AS pass "     \
	"FROM runs WHERE ?1 IS NULL OR mirror = ?1 GROUP BY mirror)"
#define HIST_OPEN                                                                                  \
	"(h.last_run >= p.pass AND (h.repaired_run IS NULL OR h.repaired_run < h.last_run))"
/* the rows of one state with ids after ?3, then a page of them by id */
#define HIST_QUERY(cond)                                                                           \
	"WITH " PASSES ", hp AS (SELECT h.*, " HIST_OPEN " AS is_open FROM p CROSS JOIN"           \
	" drift_history h WHERE h.mirror = p.mirror AND (?2 IS NULL OR h.kind = ?2) AND"           \
	" (?3 IS NULL OR h.doc_id > ?3) AND " cond "),"                                            \
	" page AS (SELECT doc_id FROM hp ORDER BY doc_id LIMIT ?4)"                                \
	" SELECT hp.mirror, hp.kind, hp.doc_id AS id, hp.id_type AS idType,"                       \
	" NULLIF(hp.os_index, '') AS \"index\", NULLIF(hp.routing, '') AS routing,"                \
	" NULLIF(hp.os_id, '') AS copyId, hp.first_run AS firstRun,"                               \
	" hp.first_seen_at AS firstSeenAt, hp.last_run AS lastRun, hp.last_seen_at AS lastSeenAt," \
	" hp.times_seen AS timesSeen, hp.streak, hp.repaired_run AS repairedRun,"                  \
	" hp.repaired_at AS repairedAt, hp.repairs, hp.returns,"                                   \
	" hp.recurring_run IS NOT NULL AS recurring, hp.recurring_run AS recurringRun,"            \
	" hp.is_open AS open, i.status AS lastStatus, i.error AS lastError FROM hp"                \
	" LEFT JOIN run_ids i ON i.run_id = hp.last_run AND i.kind = hp.kind"                      \
	" AND i.doc_id = hp.doc_id AND i.id_type = hp.id_type AND i.os_index = hp.os_index"        \
	" AND i.os_id = hp.os_id AND i.routing = hp.routing"                                       \
	" WHERE hp.doc_id <= (SELECT max(doc_id) FROM page)"                                       \
	" ORDER BY hp.doc_id, hp.mirror, hp.kind, hp.id_type, hp.os_index, hp.os_id, hp.routing"

/* SQL's 0/1 as JSON's false/true. */
static void
json_bools(cJSON *rows, const char *const *keys, size_t n)
{
	cJSON *r;

	cJSON_ArrayForEach(r, rows) for (size_t k = 0; k < n; k++)
	{
		cJSON *v = cJSON_GetObjectItem(r, keys[k]);
		if (cJSON_IsNumber(v))
			cJSON_ReplaceItemInObject(r, keys[k],
			                          cJSON_CreateBool(v->valuedouble != 0));
	}
}

rcode
report_drift(struct store *s, cJSON **out, const char *mirror, enum drift_history_state state,
             const enum drift_kind *kind, const char *after, int64_t limit)
{
	static const char *const sql[] = {
	    [DRIFT_HISTORY_OPEN] = HIST_QUERY(HIST_OPEN),
	    [DRIFT_HISTORY_RECURRING] = HIST_QUERY("h.recurring_run IS NOT NULL"),
	    [DRIFT_HISTORY_ALL] = HIST_QUERY("1"),
	};
	static const char *const bools[] = {"recurring", "open"};
	sqlite3_stmt *st;
	rcode rc;

	*out = NULL;
	assert(state >= 0 && state <= DRIFT_HISTORY_ALL);
	rc = store_sql_prepare(s, &st, sql[state], "ttti", mirror, kind_word(kind), after, limit);
	if (rc == RC_OK)
		rc = query_json(s, out, st);
	if (rc == RC_OK)
		json_bools(*out, bools, 2);
	return rc;
}

rcode
report_errors(struct store *s, cJSON **out, int64_t run_id, int64_t limit)
{
	sqlite3_stmt *st;
	rcode rc;

	*out = NULL;
	rc = store_sql_prepare(
	    s, &st,
	    "SELECT at, phase, source, batch_no AS batch, doc_id AS id, code, message"
	    " FROM errors WHERE run_id = ? ORDER BY id LIMIT ?",
	    "ii", run_id, limit);
	return rc ? rc : query_json(s, out, st);
}

rcode
report_totals(struct store *s, cJSON **out, const char *mirror)
{
	sqlite3_stmt *st;
	cJSON *arr = NULL;
	rcode rc;

	*out = NULL;
	rc = store_sql_prepare(
	    s, &st,
	    "WITH r AS (SELECT * FROM runs WHERE " STORE_VERIFYING
	    " AND (?1 IS NULL OR mirror = ?1))"
	    " SELECT (SELECT max(started_at) FROM r) AS lastCheck,"
	    " (SELECT max(finished_at) FROM r WHERE repaired_count + deleted_count > 0)"
	    "  AS lastSync,"
	    " (SELECT count(*) FROM r) AS totalChecks,"
	    " (SELECT count(*) FROM r WHERE repaired_count + deleted_count > 0) AS totalSyncs,"
	    " (SELECT COALESCE(SUM(repaired_count + deleted_count), 0) FROM r)"
	    "  AS documentsSynced,"
	    " (SELECT COALESCE(SUM(reindexed_count), 0) FROM r) AS documentsReindexed,"
	    " (SELECT count(*) FROM errors WHERE ?1 IS NULL"
	    "  OR run_id IN (SELECT id FROM runs WHERE mirror = ?1)) AS errors",
	    "t", mirror);
	if (rc || (rc = query_json(s, &arr, st)))
		return rc;
	*out = cJSON_DetachItemFromArray(arr, 0);
	cJSON_Delete(arr);
	return *out ? RC_OK : RC_ERR_STORE;
}

/* The order /metrics lists run statuses in: alphabetical, as it always did. */
static const enum run_status metric_order[] = {RUN_CANCELLED, RUN_COMPLETED,   RUN_FAILED,
                                               RUN_HELD,      RUN_INTERRUPTED, RUN_RUNNING};
_Static_assert(sizeof(metric_order) / sizeof(metric_order[0]) == RUN_STATUS_COUNT,
               "every run status has its place in /metrics");
#define N_METRIC_STATUSES RUN_STATUS_COUNT

/* One mirror's numbers (or the whole journal's), read before any is
 * written, so each family's series come together as the format wants. */
struct mirror_metrics {
	int64_t runs[N_METRIC_STATUSES];
	int64_t sums[13]; /* missing, orphan, stale, repaired, deleted, failed, errors, dup,
	                   * conflict, skipped_newer, reindexed, ranges summarized and
	                   * descended (RECONCILE_VERIFY) */
	bool has_last, has_mc, has_oc, has_success, has_kept;
	double last_start, last_duration, mc, oc, last_success;
	double kept; /* copies OPENSEARCH_KEEP_QUERY kept, by the last pass that ended */
	int64_t open[DRIFT_CONFLICT + 1]; /* drift history: open ids by kind */
	int64_t recurring;                /* recurring ids the latest pass (or one since) saw */
};

/* The copies OPENSEARCH_KEEP_QUERY kept by the last pass over the whole
 * index that ended (QA19 F7): a full re-index, a targeted run or a sample
 * sees no kept copy. */
static RC_MUST_CHECK rcode
metrics_kept(struct store *s, struct mirror_metrics *m, const char *mirror)
{
	sqlite3_stmt *st;
	int step;
	/* a split run's partitions each kept their own range's: summed */
	rcode rc = store_sql_prepare(
	    s, &st,
	    "SELECT sum(kept_count) FROM runs WHERE COALESCE(split_of, id) = (SELECT "
	    "COALESCE(split_of, id) FROM runs WHERE status IN ('completed', 'held') AND kind "
	    "IN " STORE_PASS_KINDS " AND (?1 IS NULL OR mirror = ?1) ORDER BY id DESC LIMIT 1)",
	    "t", mirror);

	if (rc)
		return rc;
	step = sqlite3_step(st);
	if (step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		m->has_kept = true;
		m->kept = sqlite3_column_double(st, 0);
	}
	sqlite3_finalize(st);
	return step == SQLITE_ROW || step == SQLITE_DONE ? RC_OK : RC_ERR_STORE;
}

static RC_MUST_CHECK rcode
metrics_read(struct store *s, struct mirror_metrics *m, const char *mirror)
{
	sqlite3_stmt *st;
	rcode rc;
	int step;

	memset(m, 0, sizeof(*m));
	rc = store_sql_prepare(s, &st,
	                       "SELECT status, count(*) FROM runs WHERE ?1 IS NULL OR mirror = ?1"
	                       " GROUP BY status",
	                       "t", mirror);
	if (rc)
		return rc;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		enum run_status status;
		if (store_run_status_parse((const char *)sqlite3_column_text(st, 0), &status) == 0)
			m->runs[status] = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		return RC_ERR_STORE;
	rc = store_sql_prepare(
	    s, &st,
	    "SELECT COALESCE(SUM(missing_count),0), COALESCE(SUM(orphan_count),0),"
	    " COALESCE(SUM(stale_count),0), COALESCE(SUM(repaired_count),0),"
	    " COALESCE(SUM(deleted_count),0), COALESCE(SUM(failed_count),0),"
	    " (SELECT count(*) FROM errors WHERE ?1 IS NULL"
	    "  OR run_id IN (SELECT id FROM runs WHERE mirror = ?1)),"
	    " COALESCE(SUM(duplicate_count),0), COALESCE(SUM(conflict_count),0),"
	    " COALESCE(SUM(skipped_newer_count),0), COALESCE(SUM(reindexed_count),0),"
	    " COALESCE(SUM(ranges_summarized),0), COALESCE(SUM(ranges_descended),0)"
	    " FROM runs WHERE " STORE_VERIFYING " AND (?1 IS NULL OR mirror = ?1)",
	    "t", mirror);
	if (rc)
		return rc;
	step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		for (int i = 0; i < 13; i++)
			m->sums[i] = sqlite3_column_int64(st, i);
	sqlite3_finalize(st);
	if (step != SQLITE_ROW)
		return RC_ERR_STORE;
	rc = store_sql_prepare(
	    s, &st,
	    "SELECT CAST(strftime('%s', started_at) AS INTEGER),"
	    " (julianday(finished_at) - julianday(started_at)) * 86400.0,"
	    " mongo_count, opensearch_count FROM runs WHERE finished_at IS NOT NULL"
	    " AND " STORE_VERIFYING " AND (?1 IS NULL OR mirror = ?1) ORDER BY id DESC LIMIT 1",
	    "t", mirror);
	if (rc)
		return rc;
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		m->has_last = true;
		m->last_start = sqlite3_column_double(st, 0);
		m->last_duration = sqlite3_column_double(st, 1);
		m->has_mc = sqlite3_column_type(st, 2) != SQLITE_NULL;
		m->mc = sqlite3_column_double(st, 2);
		m->has_oc = sqlite3_column_type(st, 3) != SQLITE_NULL;
		m->oc = sqlite3_column_double(st, 3);
	}
	sqlite3_finalize(st);
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		return RC_ERR_STORE;
	if ((rc = metrics_kept(s, m, mirror)))
		return rc;
	rc = store_sql_prepare(s, &st,
	                       "SELECT (julianday(finished_at) - 2440587.5) * 86400.0 FROM runs"
	                       " WHERE status = 'completed' AND " STORE_VERIFYING
	                       " AND (?1 IS NULL OR mirror = ?1)"
	                       " ORDER BY id DESC LIMIT 1",
	                       "t", mirror);
	if (rc)
		return rc;
	step = sqlite3_step(st);
	if (step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		m->has_success = true;
		m->last_success = sqlite3_column_double(st, 0);
	}
	sqlite3_finalize(st);
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		return RC_ERR_STORE;
	/* what each mirror's latest pass saw (the index on last_run: O(that)) */
	rc = store_sql_prepare(s, &st,
	                       "WITH " PASSES " SELECT h.kind,"
	                       " sum(h.repaired_run IS NULL OR h.repaired_run < h.last_run),"
	                       " sum(h.recurring_run IS NOT NULL)"
	                       " FROM p CROSS JOIN drift_history h WHERE h.mirror = p.mirror"
	                       " AND h.last_run >= p.pass GROUP BY h.kind",
	                       "t", mirror);
	if (rc)
		return rc;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		enum drift_kind k;
		if (store_drift_kind_parse((const char *)sqlite3_column_text(st, 0), &k) == 0)
			m->open[k] = sqlite3_column_int64(st, 1);
		m->recurring += sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	return step == SQLITE_DONE ? RC_OK : RC_ERR_STORE;
}

/* "mirror=\"m\"" joined with extra labels (either may be empty). */
static void
metric_labels(char *out, size_t len, const char *mirror, const char *extra)
{
	if (mirror)
		snprintf(out, len, "mirror=\"%s\"%s%s", mirror, *extra ? "," : "", extra);
	else
		snprintf(out, len, "%s", extra);
}

/* Where the numbers go: fn(ctx, ...) for each series, one per mirror. */
struct metric_out {
	const char *const *mirrors;
	size_t n;
	bool labelled;
	void (*fn)(void *ctx, const char *name, const char *labels, double value);
	void *ctx;
};

/* One series of mirror i, extra its labels besides the mirror's. */
static void
metric_emit(const struct metric_out *out, size_t i, const char *name, const char *extra,
            double value)
{
	char labels[192];

	metric_labels(labels, sizeof(labels), out->labelled ? out->mirrors[i] : NULL, extra);
	out->fn(out->ctx, name, labels, value);
}

/* Runs by their status: those that ended a counter, every status from 0
 * (an alert's increase() needs the 0 before the first held run). Running
 * and interrupted runs change status, so their numbers go down too: a
 * gauge, reconciler_runs, not a counter. */
static void
metrics_runs(const struct metric_out *out, const struct mirror_metrics *m)
{
	char extra[64];

	for (int fam = 0; fam < 2; fam++)
		for (size_t o = 0; o < sizeof(metric_order) / sizeof(metric_order[0]); o++)
			for (size_t i = 0; i < out->n; i++) {
				enum run_status k = metric_order[o];
				if (store_run_status_unfinished(k) != (fam == 1))
					continue;
				snprintf(extra, sizeof(extra), "status=\"%s\"",
				         store_run_status_name(k));
				metric_emit(out, i,
				            fam ? "reconciler_runs" : "reconciler_runs_total",
				            extra, (double)m[i].runs[k]);
			}
}

/* The sums over the runs: a family's series one after the other. */
static void
metrics_sums(const struct metric_out *out, const struct mirror_metrics *m)
{
	static const struct {
		const char *name, *labels;
		int sum;
	} sums[] = {
	    {"reconciler_drift_found_total", "kind=\"missing\"", 0},
	    {"reconciler_drift_found_total", "kind=\"orphan\"", 1},
	    {"reconciler_drift_found_total", "kind=\"stale\"", 2},
	    {"reconciler_drift_found_total", "kind=\"duplicate\"", 7},
	    {"reconciler_drift_found_total", "kind=\"conflict\"", 8},
	    {"reconciler_documents_repaired_total", "action=\"index\"", 3},
	    {"reconciler_documents_repaired_total", "action=\"delete\"", 4},
	    /* what full re-indexes wrote: no drift, counted apart */
	    {"reconciler_documents_reindexed_total", "", 10},
	    {"reconciler_documents_failed_total", "", 5},
	    {"reconciler_documents_skipped_newer_total", "", 9},
	    {"reconciler_errors_total", "", 6},
	    /* RECONCILE_VERIFY: key ranges proven by their summaries, and
	     * ranges streamed because theirs differed */
	    {"reconciler_ranges_summarized_total", "", 11},
	    {"reconciler_ranges_descended_total", "", 12},
	};
	const size_t n_sums = sizeof(sums) / sizeof(sums[0]);

	/* families are adjacent rows of sums[] */
	for (size_t k = 0; k < n_sums;) {
		size_t end = k;
		while (end < n_sums && strcmp(sums[end].name, sums[k].name) == 0)
			end++;
		for (size_t i = 0; i < out->n; i++)
			for (size_t j = k; j < end; j++)
				metric_emit(out, i, sums[j].name, sums[j].labels,
				            (double)m[i].sums[sums[j].sum]);
		k = end;
	}
}

/* The last success, and the drift history: open ids by kind, recurring ids. */
static void
metrics_drift(const struct metric_out *out, const struct mirror_metrics *m)
{
	char extra[64];

	for (size_t i = 0; i < out->n; i++)
		if (m[i].has_success)
			metric_emit(out, i, "reconciler_last_success_timestamp_seconds", "",
			            m[i].last_success);
	for (size_t i = 0; i < out->n; i++)
		for (int k = 0; k <= DRIFT_CONFLICT; k++) {
			snprintf(extra, sizeof(extra), "kind=\"%s\"",
			         store_drift_kind_name((enum drift_kind)k));
			metric_emit(out, i, "reconciler_drift_open", extra, (double)m[i].open[k]);
		}
	for (size_t i = 0; i < out->n; i++)
		metric_emit(out, i, "reconciler_drift_recurring", "", (double)m[i].recurring);
}

/* The last finished run: its start, duration and the counts it took. */
static void
metrics_last(const struct metric_out *out, const struct mirror_metrics *m)
{
	for (size_t i = 0; i < out->n; i++)
		if (m[i].has_last)
			metric_emit(out, i, "reconciler_last_run_timestamp_seconds", "",
			            m[i].last_start);
	for (size_t i = 0; i < out->n; i++)
		if (m[i].has_last)
			metric_emit(out, i, "reconciler_last_run_duration_seconds", "",
			            m[i].last_duration);
	for (size_t i = 0; i < out->n; i++) {
		if (m[i].has_last && m[i].has_mc)
			metric_emit(out, i, "reconciler_documents", "side=\"mongodb\"", m[i].mc);
		if (m[i].has_last && m[i].has_oc)
			metric_emit(out, i, "reconciler_documents", "side=\"opensearch\"", m[i].oc);
	}
	for (size_t i = 0; i < out->n; i++)
		if (m[i].has_kept)
			metric_emit(out, i, "reconciler_kept_copies", "", m[i].kept);
}

rcode
report_metrics(struct store *s, const char *const *mirrors, size_t n, bool labelled,
               void (*fn)(void *ctx, const char *name, const char *labels, double value), void *ctx)
{
	const struct metric_out out = {mirrors, n, labelled, fn, ctx};
	struct mirror_metrics *m;
	rcode rc = RC_OK;

	m = calloc(n ? n : 1, sizeof(*m));
	if (m == NULL)
		return RC_ERR_NOMEM;
	for (size_t i = 0; i < n && rc == RC_OK; i++)
		rc = metrics_read(s, &m[i], mirrors[i]);
	if (rc == RC_OK) {
		metrics_runs(&out, m);
		metrics_sums(&out, m);
		metrics_drift(&out, m);
		metrics_last(&out, m);
	}
	free(m);
	return rc;
}
