/* test_store.c: the journal: migrations add up to schema/schema.sql, run
 * lifecycle, counters recomputed from drift rows, lock. */
#include "check.h"
#include "report.h"
#include "store.h"
#include "util.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

/* "type name sql" of every schema object, whitespace folded, sorted. */
static char *
schema_of(sqlite3 *db)
{
	sqlite3_stmt *st;
	struct buf b = {0};

	sqlite3_prepare_v2(
	    db,
	    "SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master"
	    " WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
	    -1, &st, NULL);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *s = (const char *)sqlite3_column_text(st, 0);
		bool space = false;
		for (; *s; s++) {
			if (*s == ' ' || *s == '\n' || *s == '\t') {
				space = true;
				continue;
			}
			if (space)
				CHECK(buf_append(&b, " ", 1) == RC_OK);
			space = false;
			CHECK(buf_append(&b, s, 1) == RC_OK);
		}
		CHECK(buf_append(&b, "\n", 1) == RC_OK);
	}
	sqlite3_finalize(st);
	return b.data;
}

static char *
read_file(const char *path)
{
	struct buf b = {0};
	char chunk[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		CHECK(buf_append(&b, chunk, n) == RC_OK);
	fclose(f);
	return b.data;
}

static void
test_schema(const char *dbpath)
{
	const char *src = getenv("RECONCILER_SOURCE_DIR");
	char path[4096];
	sqlite3 *a, *b;
	char *sa, *sb, *sql;

	snprintf(path, sizeof(path), "%s/schema/schema.sql", src ? src : ".");
	sql = read_file(path);
	CHECK(sql != NULL);
	if (sql == NULL)
		return;
	sqlite3_open(dbpath, &a);
	sqlite3_open(":memory:", &b);
	CHECK(sqlite3_exec(b, sql, NULL, NULL, NULL) == SQLITE_OK);
	sa = schema_of(a);
	sb = schema_of(b);
	CHECK(sa && sb && strcmp(sa, sb) == 0);
	if (!(sa && sb && strcmp(sa, sb) == 0))
		fprintf(stderr, "migrated:\n%s\nschema.sql:\n%s\n", sa, sb);
	free(sa);
	free(sb);
	free(sql);
	sqlite3_close(a);
	sqlite3_close(b);
}

static void
test_lifecycle(struct store *s)
{
	struct store_run *r = NULL;
	int64_t id, other, no;
	bool added;
	cJSON *j = NULL;

	CHECK(store_run_begin(s, &id, "default", RUN_CHECK, "test", "{\"X\":\"1\"}") == RC_OK &&
	      id > 0);
	CHECK(store_run_unfinished(s, &other, NULL) == RC_OK && other == id);
	struct store_drift a = {.doc_id = "a", .id_type = "oid", .kind = DRIFT_MISSING};
	struct store_drift b = {.doc_id = "b", .id_type = "oid", .kind = DRIFT_ORPHAN};
	struct store_drift b2 = {.doc_id = "b",
	                         .id_type = "oid",
	                         .kind = DRIFT_DUPLICATE,
	                         .os_index = "v1",
	                         .routing = "r7"};
	CHECK(store_drift_add(s, id, &a, -1, DRIFT_PENDING, NULL, &added) == RC_OK && added);
	CHECK(store_drift_add(s, id, &a, -1, DRIFT_PENDING, NULL, &added) == RC_OK &&
	      !added); /* seen twice (a resumed pass), counted once */
	CHECK(store_drift_add(s, id, &b, -1, DRIFT_REPORTED, NULL, NULL) == RC_OK);
	/* the same id, another copy: its own row */
	CHECK(store_drift_add(s, id, &b2, -1, DRIFT_PENDING, NULL, &added) == RC_OK && added);
	CHECK(store_batch_next_no(s, id, &no) == RC_OK && no == 1);
	CHECK(store_batch_add(s, id, no, BATCH_INDEX, 1, 100, NULL, NULL) == RC_OK);
	CHECK(store_drift_assign(s, id, &a, no) == RC_OK);
	struct store_pending *p = NULL;
	size_t n = 0;
	CHECK(store_batches_pending(s, id, &p, &n) == RC_OK && n == 1 && p[0].batch_no == 1);
	free(p);
	CHECK(store_drift_set(s, id, &a, DRIFT_DONE, NULL) == RC_OK);
	CHECK(store_drift_set(s, id, &b2, DRIFT_DONE, NULL) == RC_OK);
	CHECK(store_batch_commit(s, id, no, BATCH_COMMITTED, 1, 0, 1, 5) == RC_OK);
	CHECK(store_run_cursor(s, id, "oid", "a", 8, 10, NULL) == RC_OK);
	CHECK(store_error(s, id, no, "a", "repair", "opensearch", "x", "boom") == RC_OK);
	CHECK(store_run_finish(s, id, RUN_COMPLETED, NULL) == RC_OK);
	CHECK(store_run_get(s, &r, id) == RC_OK);
	CHECK(r && r->missing == 1 && r->orphans == 1 && r->repaired == 1 && r->stale == 0);
	CHECK(r && r->duplicates == 1 && r->deleted == 1 && r->conflicts == 0);
	CHECK(r && r->status == RUN_COMPLETED && r->finished_at != NULL);
	CHECK(r && r->cursor && strcmp(r->cursor, "a") == 0);
	store_run_free(r);
	CHECK(store_run_unfinished(s, &other, NULL) == RC_OK && other == 0);
	CHECK(report_run(s, &j, id) == RC_OK && j != NULL);
	CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "errors")) == 1);
	CHECK(cJSON_IsObject(cJSON_GetObjectItem(j, "config")));
	cJSON_Delete(j);
	CHECK(report_run(s, &j, 999) == RC_ERR_NOTFOUND);
	CHECK(report_runs(s, &j, NULL, 10, 0, &(enum run_status){RUN_COMPLETED}) == RC_OK &&
	      cJSON_GetArraySize(j) == 1);
	cJSON_Delete(j);
	CHECK(report_totals(s, &j, NULL) == RC_OK);
	CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "totalChecks")) == 1);
	CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "documentsSynced")) == 2);
	cJSON_Delete(j);
	CHECK(report_ids(s, &j, id, &(enum drift_kind){DRIFT_ORPHAN}, NULL, 10) == RC_OK &&
	      cJSON_GetArraySize(j) == 1);
	cJSON_Delete(j);
	/* pages of one row: a page holds every row of its last id ("b" has an
	 * orphan row and a duplicate row), so paging by id loses none */
	CHECK(report_ids(s, &j, id, NULL, NULL, 1) == RC_OK && cJSON_GetArraySize(j) == 1);
	cJSON_Delete(j);
	CHECK(report_ids(s, &j, id, NULL, "a", 1) == RC_OK && cJSON_GetArraySize(j) == 2);
	cJSON_Delete(j);
	CHECK(report_ids(s, &j, id, NULL, "b", 1) == RC_OK && cJSON_GetArraySize(j) == 0);
	cJSON_Delete(j);
}

static void
test_lock(const char *path, struct store *s)
{
	struct store *s2 = NULL;
	struct rerror e = {0};
	int64_t holder;

	CHECK(store_lock(s, &holder, NULL, &e) == RC_OK);
	CHECK(store_open(&s2, path, &e) == RC_OK);
	/* flock is per open file: a second handle is refused like a second process */
	CHECK(store_lock(s2, &holder, NULL, &e) == RC_ERR_BUSY);
	store_unlock(s);
	CHECK(store_lock(s2, &holder, NULL, &e) == RC_OK);
	store_free(s2);
}

static void
on_metric(void *ctx, const char *name, const char *labels, double value)
{
	struct buf *b = ctx;

	CHECK(buf_printf(b, "%s{%s} %g\n", name, labels, value) == RC_OK);
}

/* Runs belong to mirrors: the unfinished run, reports, totals, metrics and
 * the lock are each mirror's own. */
static void
test_mirrors(const char *path, struct store *s)
{
	struct store *s2 = NULL;
	struct store_run *r = NULL;
	struct rerror e = {0};
	int64_t a, b, other, holder;
	cJSON *j = NULL;
	struct buf m = {0};
	const char *const names[] = {"ads", "users"};

	CHECK(store_run_begin(s, &a, "ads", RUN_CHECK, "test", "{}") == RC_OK);
	CHECK(store_run_begin(s, &b, "users", RUN_DRY_RUN, "test", "{}") == RC_OK);
	CHECK(store_run_get(s, &r, a) == RC_OK && r && strcmp(r->mirror, "ads") == 0);
	store_run_free(r);
	CHECK(store_run_unfinished(s, &other, "ads") == RC_OK && other == a);
	CHECK(store_run_unfinished(s, &other, "users") == RC_OK && other == b);
	CHECK(store_run_unfinished(s, &other, "default") == RC_OK && other == 0);
	CHECK(store_run_unfinished(s, &other, NULL) == RC_OK && other == b);
	CHECK(report_runs(s, &j, "ads", 10, 0, NULL) == RC_OK && cJSON_GetArraySize(j) == 1);
	CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "mirror")),
	             "ads") == 0);
	cJSON_Delete(j);
	CHECK(report_totals(s, &j, "users") == RC_OK);
	CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "totalChecks")) == 1);
	cJSON_Delete(j);
	CHECK(store_error(s, a, -1, NULL, "diff", "engine", "x", "ads broke") == RC_OK);
	CHECK(report_totals(s, &j, "ads") == RC_OK);
	CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "errors")) == 1);
	cJSON_Delete(j);
	CHECK(store_run_finish(s, a, RUN_COMPLETED, NULL) == RC_OK);
	CHECK(store_run_finish(s, b, RUN_INTERRUPTED, NULL) == RC_OK);
	/* labelled: one series per mirror, a family's series together */
	CHECK(report_metrics(s, names, 2, true, on_metric, &m) == RC_OK && m.data);
	CHECK(m.data &&
	      strstr(m.data, "reconciler_runs_total{mirror=\"ads\",status=\"completed\"} 1\n"));
	/* a run not ended is a gauge (its status still changes); ended ones
	 * count from 0 */
	CHECK(m.data &&
	      strstr(m.data, "reconciler_runs{mirror=\"users\",status=\"interrupted\"} 1\n"));
	CHECK(m.data &&
	      strstr(m.data, "reconciler_runs_total{mirror=\"users\",status=\"held\"} 0\n"));
	CHECK(m.data && !strstr(m.data, "reconciler_runs_total{mirror=\"users\",status=\"interr"));
	CHECK(m.data && strstr(m.data, "reconciler_errors_total{mirror=\"ads\"} 1\n"));
	CHECK(m.data && strstr(m.data, "reconciler_errors_total{mirror=\"users\"} 0\n"));
	CHECK(m.data && strstr(m.data, "reconciler_errors_total{mirror=\"ads\"} "
	                               "1\nreconciler_errors_total{mirror=\"users\"} 0\n"));
	buf_free(&m);
	/* unlabelled (the one mirror default): that mirror's runs only, never
	 * the journal's other mirrors (QA8b F9); here a mirror with none */
	const char *const dflt[] = {"nobody"};
	CHECK(report_metrics(s, dflt, 1, false, on_metric, &m) == RC_OK && m.data);
	CHECK(m.data && strstr(m.data, "reconciler_runs_total{status=\"completed\"} 0\n"));
	CHECK(m.data && strstr(m.data, "reconciler_runs{status=\"interrupted\"} 0\n"));
	CHECK(m.data && strstr(m.data, "reconciler_errors_total{} 0\n"));
	CHECK(m.data && !strstr(m.data, "mirror="));
	CHECK(m.data && !strstr(m.data, "reconciler_last_run_timestamp_seconds"));
	buf_free(&m);
	/* one lock per mirror: two mirrors at once, one mirror once */
	CHECK(store_open(&s2, path, &e) == RC_OK);
	CHECK(store_lock(s, &holder, "ads", &e) == RC_OK);
	CHECK(store_lock(s2, &holder, "users", &e) == RC_OK);
	store_unlock(s2);
	CHECK(store_lock(s2, &holder, "ads", &e) == RC_ERR_BUSY && strstr(e.message, "ads"));
	/* a probe names the holder and keeps nothing */
	CHECK(store_lock_probe(s2, &holder, "ads", &e) == RC_ERR_BUSY && strstr(e.message, "ads"));
	CHECK(store_lock_probe(s2, &holder, "users", &e) == RC_OK);
	CHECK(store_lock(s2, &holder, "users", &e) == RC_OK);
	store_unlock(s2);
	store_unlock(s);
	CHECK(store_lock(s2, &holder, "ads", &e) == RC_OK);
	store_free(s2);
}

/* A live sync's catch-up is a run of its own kind: named "catchup", a
 * whole check (store_run_kind_checks), never offered for a resume. */
static void
test_catchup_kind(struct store *s)
{
	struct store_run *r = NULL;
	enum run_kind k = RUN_CHECK;
	int64_t id = 0, unfinished = -1;

	CHECK(strcmp(store_run_kind_name(RUN_CATCHUP), "catchup") == 0);
	CHECK(store_run_kind_parse("catchup", &k) == 0 && k == RUN_CATCHUP);
	CHECK(store_run_kind_checks(RUN_CHECK) && store_run_kind_checks(RUN_CATCHUP));
	CHECK(!store_run_kind_checks(RUN_DRY_RUN) && !store_run_kind_checks(RUN_IDS) &&
	      !store_run_kind_checks(RUN_FULL) && !store_run_kind_checks(RUN_SAMPLE));
	CHECK(store_run_begin(s, &id, "cu", RUN_CATCHUP, "catchup", "{}") == RC_OK);
	CHECK(store_run_get(s, &r, id) == RC_OK && r->kind == RUN_CATCHUP);
	store_run_free(r);
	CHECK(store_run_finish(s, id, RUN_INTERRUPTED, "killed") == RC_OK);
	CHECK(store_run_unfinished(s, &unfinished, "cu") == RC_OK && unfinished == 0);
	CHECK(store_run_finish(s, id, RUN_CANCELLED, "test") == RC_OK);
}

/* A completed run closes older unfinished runs of its mirror and kind
 * (resuming them later would re-send stale batches); other mirrors' and
 * other kinds' runs stay resumable. */
static void
test_supersede(struct store *s)
{
	struct store_run *r = NULL;
	int64_t old, dry, other, fresh;

	CHECK(store_run_begin(s, &old, "sup", RUN_CHECK, "cli", "{}") == RC_OK);
	CHECK(store_run_begin(s, &dry, "sup", RUN_DRY_RUN, "cli", "{}") == RC_OK);
	CHECK(store_run_begin(s, &other, "sup-other", RUN_CHECK, "cli", "{}") == RC_OK);
	CHECK(store_run_finish(s, old, RUN_INTERRUPTED, "killed") == RC_OK);
	CHECK(store_run_begin(s, &fresh, "sup", RUN_CHECK, "api", "{}") == RC_OK);
	CHECK(store_run_finish(s, fresh, RUN_COMPLETED, NULL) == RC_OK);
	CHECK(store_run_get(s, &r, old) == RC_OK && r->status == RUN_CANCELLED && r->error &&
	      strstr(r->error, "superseded by run") != NULL);
	store_run_free(r);
	CHECK(store_run_get(s, &r, dry) == RC_OK && r->status == RUN_RUNNING);
	store_run_free(r);
	CHECK(store_run_get(s, &r, other) == RC_OK && r->status == RUN_RUNNING);
	store_run_free(r);
	CHECK(store_run_finish(s, dry, RUN_COMPLETED, NULL) == RC_OK);
	CHECK(store_run_finish(s, other, RUN_COMPLETED, NULL) == RC_OK);
}

/* A split run of one process (RECONCILE_PARTITIONS, migration 0019): its
 * partitions' runs tied by split_of. A completed partition supersedes no
 * run (its siblings run on: QA25 F2), a live-sync gap is closed only when
 * every partition completed (F13), and the split is one pass of the drift
 * history (F12): three splits that each see "a" in partition 0 and "b" in
 * partition 1 make both recurring and open. */
static void
test_split(struct store *s)
{
	struct store_drift a = {.doc_id = "a", .id_type = "string", .kind = DRIFT_MISSING};
	struct store_drift b = {.doc_id = "b", .id_type = "string", .kind = DRIFT_MISSING};
	struct store_run *r = NULL;
	int64_t p[3][2], gap = 0, closed = -1, split = 0, id = 0;
	cJSON *j = NULL;

	CHECK(store_stream_gap(s, &gap, "sp", GAP_HISTORY_LOST, "test") == RC_OK);
	for (int i = 0; i < 3; i++) {
		for (int k = 0; k < 2; k++) {
			CHECK(store_run_begin(s, &p[i][k], "sp", RUN_CHECK, "test", "{}") == RC_OK);
			CHECK(store_run_partition(s, p[i][k], k, 2, "string", k ? "m" : NULL,
			                          k ? NULL : "m") == RC_OK);
			CHECK(store_run_split(s, p[i][k], p[i][0]) == RC_OK);
			CHECK(store_drift_add(s, p[i][k], k ? &b : &a, -1, DRIFT_REPORTED, NULL,
			                      NULL) == RC_OK);
		}
		CHECK(store_split_unfinished(s, &split, "sp", RUN_CHECK, 2) == RC_OK &&
		      split == p[i][0]);
		CHECK(store_split_partition(s, &id, p[i][0], 1) == RC_OK && id == p[i][1]);
		/* partition 1 ends first: partition 0 runs on, and the gap stays open */
		CHECK(store_run_finish(s, p[i][1], RUN_COMPLETED, NULL) == RC_OK);
		CHECK(store_run_get(s, &r, p[i][0]) == RC_OK && r->status == RUN_RUNNING &&
		      r->split_of == p[i][0]);
		store_run_free(r);
		CHECK(store_stream_gaps_checked(s, &closed, "sp") == RC_OK);
		CHECK(closed == 0);
		CHECK(store_run_finish(s, p[i][0], RUN_COMPLETED, NULL) == RC_OK);
		CHECK(store_stream_gaps_checked(s, &closed, "sp") == RC_OK);
		CHECK(closed == (i == 0 ? 1 : 0));
	}
	CHECK(report_drift(s, &j, "sp", DRIFT_HISTORY_OPEN, NULL, NULL, 10) == RC_OK &&
	      cJSON_GetArraySize(j) == 2);
	cJSON_Delete(j);
	CHECK(report_drift(s, &j, "sp", DRIFT_HISTORY_RECURRING, NULL, NULL, 10) == RC_OK &&
	      cJSON_GetArraySize(j) == 2);
	cJSON_Delete(j);
}

/* The drift history row of id "h" in mirror hist as the drift report
 * shows it (state all). */
static cJSON *
hist_row(struct store *s)
{
	cJSON *j = NULL, *row;

	CHECK(report_drift(s, &j, "hist", DRIFT_HISTORY_ALL, NULL, NULL, 10) == RC_OK);
	CHECK(cJSON_GetArraySize(j) == 1);
	row = cJSON_DetachItemFromArray(j, 0);
	cJSON_Delete(j);
	return row;
}

static double
num(const cJSON *o, const char *key)
{
	return cJSON_GetNumberValue(cJSON_GetObjectItem(o, key));
}

/* Drift across runs: streaks are broken by a pass that did not see the id
 * (not by an unfinished run or a full one), three in a row make it
 * recurring, a repair names its run, and open follows the latest pass. */
static void
test_history(struct store *s)
{
	struct store_drift h = {.doc_id = "h", .id_type = "string", .kind = DRIFT_MISSING};
	enum run_kind kinds[] = {RUN_DRY_RUN, RUN_CHECK,   RUN_DRY_RUN, RUN_FULL,
	                         RUN_CHECK,   RUN_DRY_RUN, RUN_CHECK};
	enum run_status ends[] = {RUN_COMPLETED, RUN_COMPLETED, RUN_COMPLETED, RUN_COMPLETED,
	                          RUN_FAILED,    RUN_COMPLETED, RUN_COMPLETED};
	bool sees[] = {true, false, true, false, true, true, false};
	int64_t ids[7];
	cJSON *row, *j = NULL;

	for (int i = 0; i < 7; i++) {
		CHECK(store_run_begin(s, &ids[i], "hist", kinds[i], "test", "{}") == RC_OK);
		if (sees[i])
			CHECK(store_drift_add(s, ids[i], &h, -1, DRIFT_REPORTED, NULL, NULL) ==
			      RC_OK);
		if (i == 5) { /* open while the run that saw it is the latest */
			row = hist_row(s);
			CHECK(cJSON_IsTrue(cJSON_GetObjectItem(row, "open")));
			CHECK(num(row, "streak") == 3 &&
			      cJSON_IsTrue(cJSON_GetObjectItem(row, "recurring")));
			CHECK(num(row, "recurringRun") == (double)ids[5]);
			cJSON_Delete(row);
			/* repaired in the same run: no longer open */
			CHECK(store_drift_set(s, ids[5], &h, DRIFT_DONE, NULL) == RC_OK);
		}
		CHECK(store_run_finish(s, ids[i], ends[i], NULL) == RC_OK);
		if (i == 2) { /* runs 0 and 2 saw it, the completed check 1 did not */
			row = hist_row(s);
			CHECK(num(row, "streak") == 1 && num(row, "timesSeen") == 2);
			CHECK(num(row, "firstRun") == (double)ids[0] &&
			      num(row, "lastRun") == (double)ids[2]);
			CHECK(cJSON_IsFalse(cJSON_GetObjectItem(row, "recurring")));
			cJSON_Delete(row);
		}
	}
	/* 2, 4 (failed: not a pass) and 5 in a row, around the full run 3 */
	row = hist_row(s);
	CHECK(num(row, "streak") == 3 && num(row, "timesSeen") == 4);
	CHECK(num(row, "repairedRun") == (double)ids[5] && num(row, "repairs") == 1);
	CHECK(cJSON_IsString(cJSON_GetObjectItem(row, "repairedAt")));
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(row, "open")));
	CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(row, "lastStatus")), "done") == 0);
	cJSON_Delete(row);
	CHECK(report_drift(s, &j, "hist", DRIFT_HISTORY_OPEN, NULL, NULL, 10) == RC_OK &&
	      cJSON_GetArraySize(j) == 0);
	cJSON_Delete(j);
	CHECK(report_drift(s, &j, "hist", DRIFT_HISTORY_RECURRING,
	                   &(enum drift_kind){DRIFT_MISSING}, NULL, 10) == RC_OK &&
	      cJSON_GetArraySize(j) == 1);
	cJSON_Delete(j);
	CHECK(report_drift(s, &j, "hist", DRIFT_HISTORY_RECURRING, &(enum drift_kind){DRIFT_STALE},
	                   NULL, 10) == RC_OK &&
	      cJSON_GetArraySize(j) == 0);
	cJSON_Delete(j);
	CHECK(report_drift(s, &j, "hist", DRIFT_HISTORY_ALL, NULL, "h", 10) == RC_OK &&
	      cJSON_GetArraySize(j) == 0);
	cJSON_Delete(j);
}

static void *
ping_many(void *arg)
{
	struct store *s = arg;

	for (int i = 0; i < 2000; i++)
		CHECK(store_ping(s) == RC_OK);
	return NULL;
}

/* The statement cache: with 2 slots every lifecycle step evicts (the
 * results are the same as with all cached), and two threads running the
 * same statement on one connection (the API's) each get their own. */
static void
test_stmt_cache(const char *dir)
{
	char path[256];
	struct store *s = NULL;
	struct rerror e = {0};
	pthread_t t;

	snprintf(path, sizeof(path), "%s/cache.db", dir);
	CHECK(store_open(&s, path, &e) == RC_OK);
	store_test_stmt_cache(s, 2);
	test_lifecycle(s);
	store_test_stmt_cache(s, 1);
	CHECK(pthread_create(&t, NULL, ping_many, s) == 0);
	ping_many(s);
	CHECK(pthread_join(t, NULL) == 0);
	store_free(s);
}

int
main(void)
{
	char dir[] = "/tmp/reconciler-store-XXXXXX", path[256];
	struct store *s = NULL;
	struct rerror e = {0};
	int applied = -1;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/sub/j.db", dir);
	CHECK(store_open(&s, path, &e) == RC_OK);
	test_schema(path);
	test_lifecycle(s);
	test_lock(path, s);
	test_mirrors(path, s);
	test_supersede(s);
	test_catchup_kind(s);
	test_history(s);
	test_split(s);
	store_free(s);
	test_stmt_cache(dir);
	/* reopening applies nothing */
	CHECK(store_open(&s, path, &e) == RC_OK);
	CHECK(store_migrate(s, &applied, &e) == RC_OK && applied == 0);
	store_free(s);
	/* a journal that cannot be created says why */
	CHECK(store_open(&s, "/proc/nope/j.db", &e) == RC_ERR_STORE && s == NULL);
	CHECK(strstr(e.message, "/proc/nope/j.db") != NULL);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return check_done("test_store");
}
