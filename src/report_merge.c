/*
 * report_merge.c: the combined report of a split run (report_merge.h).
 *
 * Each journal is one process's (one pod's volume): its newest run that is
 * a partition is taken, read through report_run (the counts `show --json`
 * gives) and store_run_get (the partition and its plan). The merge sums
 * the counts and checks what a person cannot see from N reports side by
 * side: that the runs are partitions 0..N-1 of one N, each once, of one
 * mirror and kind, and that their key ranges tile the key space (the
 * processes computed the same plan; a collection whose smallest or largest
 * id changed between the processes' starts gives plans that do not). The
 * journals stay open only while read; nothing is written.
 */
#include "report_merge.h"

#include "report.h"
#include "store.h"
#include "store_sql.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The counts summed (show --json's keys). */
static const char *const summed[] = {
    "mongoCount",     "opensearchCount",  "compared",          "missingCount",   "orphanCount",
    "staleCount",     "skippedCount",     "repairedCount",     "deletedCount",   "failedCount",
    "duplicateCount", "conflictCount",    "skippedNewerCount", "reindexedCount", "orphansKept",
    "keptCount",      "rangesSummarized", "rangesDescended"};
#define N_SUMMED (sizeof(summed) / sizeof(*summed))

/* A status's weight when the partitions' statuses are combined: the worst
 * one is the split run's. */
static int
status_weight(const char *st)
{
	static const char *const order[] = {"completed", "held",        "cancelled",
	                                    "running",   "interrupted", "failed"};
	for (int i = 0; i < 6; i++)
		if (st && strcmp(st, order[i]) == 0)
			return i;
	return 6;
}

/* The newest partition run of the journal s (of mirror; NULL: of any)
 * (0: none). */
static RC_MUST_CHECK rcode
newest_partition_run(struct store *s, int64_t *id, const char *mirror)
{
	sqlite3_stmt *st;
	rcode rc = store_sql_prepare(s, &st,
	                             "SELECT id FROM runs WHERE partition_n IS NOT NULL AND "
	                             "(?1 IS NULL OR mirror = ?1) ORDER BY id DESC LIMIT 1",
	                             "t", mirror);

	*id = 0;
	if (rc)
		return rc;
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	else if (step != SQLITE_DONE)
		rc = RC_ERR_STORE;
	sqlite3_finalize(st);
	return rc;
}

static cJSON *
text_or_null(const char *s)
{
	return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

/* Whether the journal's runs table has the partition columns (a journal
 * of an older reconciler has none; it is read as it is, not migrated). */
static RC_MUST_CHECK rcode
has_partitions(struct store *s, bool *yes)
{
	sqlite3_stmt *st;
	rcode rc =
	    store_sql_prepare(s, &st, "SELECT count(*) FROM pragma_table_info(?) WHERE name = ?",
	                      "tt", "runs", "partition_n");

	*yes = false;
	if (rc)
		return rc;
	if (sqlite3_step(st) == SQLITE_ROW)
		*yes = sqlite3_column_int64(st, 0) > 0;
	else
		rc = RC_ERR_STORE;
	sqlite3_finalize(st);
	return rc;
}

/* A journal opened read-only and never changed (another pod's file):
 * what is not a journal file is said before SQLite would create, migrate
 * or misread it. */
static RC_MUST_CHECK rcode
open_journal(struct store **out, const char *journal, struct rerror *err)
{
	struct stat sb;
	bool yes = false;
	int pending = 0;
	rcode rc;

	*out = NULL;
	if (stat(journal, &sb) == 0 && S_ISDIR(sb.st_mode))
		return rerror_set(err, RC_ERR_INVALID,
		                  "journal %s is a directory: give the journal files "
		                  "(each partition's STATE_DB)",
		                  journal);
	if (stat(journal, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 0)
		return rerror_set(err, RC_ERR_INVALID,
		                  "journal %s is an empty file, not a journal (no run was "
		                  "recorded in it)",
		                  journal);
	if ((rc = store_open_read_as_is(out, &pending, journal, err)))
		return rc;
	if ((rc = has_partitions(*out, &yes)) || !yes) {
		store_free(*out);
		*out = NULL;
		return rerror_set(err, rc ? rc : RC_ERR_NOTFOUND,
		                  "journal %s is not a partition journal (written by an older "
		                  "reconciler)",
		                  journal);
	}
	return RC_OK;
}

/* The setting key of the journaled configuration snapshot, NULL if none. */
static cJSON *
config_text(const cJSON *rep, const char *key)
{
	const char *v =
	    cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "config"), key));
	return v ? cJSON_CreateString(v) : cJSON_CreateNull();
}

/* The runs of the split run of one process (RECONCILE_PARTITIONS,
 * migration 0019) that the journal's newest partition run is one of:
 * ids[k] for each of its *n partitions (0: none in the journal); *n = 0
 * when that run is not of one (a `check --partition K/N` run, or a
 * journal from before split runs). */
static RC_MUST_CHECK rcode
split_ids(int64_t *ids, int *n, const char *journal, const char *mirror, struct rerror *err)
{
	struct store *s = NULL;
	struct store_run *sr = NULL;
	sqlite3_stmt *st = NULL;
	int64_t id = 0, has = 0;
	rcode rc = open_journal(&s, journal, err);

	*n = 0;
	if (rc)
		return rc;
	if ((rc = store_sql_prepare(s, &st,
	                            "SELECT count(*) FROM pragma_table_info(?) WHERE name = ?",
	                            "tt", "runs", "split_of")) == RC_OK) {
		has = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
		sqlite3_finalize(st);
	}
	if (rc == RC_OK && has && (rc = newest_partition_run(s, &id, mirror)) == RC_OK && id &&
	    (rc = store_run_get(s, &sr, id)) == RC_OK && sr->split_of > 0 &&
	    sr->partition_n <= REPORT_MERGE_MAX) {
		for (int k = 0; rc == RC_OK && k < sr->partition_n; k++)
			rc = store_split_partition(s, &ids[k], sr->split_of, k);
		*n = rc == RC_OK ? sr->partition_n : 0;
	}
	store_run_free(sr);
	store_free(s);
	return rc ? rerror_set(err, rc, "journal %s: cannot be read", journal) : RC_OK;
}

/* One journal's partition: its report, with its place and plan; run id
 * (0: the journal's newest partition run). */
static RC_MUST_CHECK rcode
read_part(cJSON **out, const char *journal, int64_t id, const char *mirror, struct rerror *err)
{
	struct store *s = NULL;
	struct store_run *sr = NULL;
	cJSON *rep = NULL, *errors = NULL;
	rcode rc = open_journal(&s, journal, err);

	*out = NULL;
	if (rc)
		return rc;
	if (id == 0 && (rc = newest_partition_run(s, &id, mirror))) {
		rc = rerror_set(err, rc, "journal %s: cannot be read", journal);
		goto out;
	}
	if (id == 0) {
		rc = rerror_set(err, RC_ERR_NOTFOUND,
		                "journal %s holds no partition run (check --partition K/N)",
		                journal);
		goto out;
	}
	if ((rc = store_run_get(s, &sr, id)) || (rc = report_run(s, &rep, id)) ||
	    (rc = report_errors(s, &errors, id, 100))) {
		rc = rerror_set(err, rc, "journal %s: cannot read run %" PRId64, journal, id);
		goto out;
	}
	/* what the run read and wrote, from its configuration snapshot */
	cJSON_AddItemToObject(rep, "mongodbDatabase", config_text(rep, "MONGODB_DATABASE"));
	cJSON_AddItemToObject(rep, "mongodbCollection", config_text(rep, "MONGODB_COLLECTION"));
	cJSON_AddItemToObject(rep, "opensearchIndex", config_text(rep, "OPENSEARCH_INDEX"));
	/* the bulky parts of show's report stay in show */
	cJSON_DeleteItemFromObject(rep, "config");
	cJSON_DeleteItemFromObject(rep, "events");
	cJSON_DeleteItemFromObject(rep, "batches");
	cJSON_DeleteItemFromObject(rep, "driftSample");
	cJSON_DeleteItemFromObject(rep, "errors");
	cJSON_AddItemToObject(rep, "errors", errors);
	errors = NULL;
	cJSON_AddStringToObject(rep, "journal", journal);
	cJSON_AddNumberToObject(rep, "partition", sr->partition_k);
	cJSON_AddNumberToObject(rep, "partitionCount", sr->partition_n);
	cJSON_AddItemToObject(rep, "idType", text_or_null(sr->partition_type));
	cJSON_AddItemToObject(rep, "lo", text_or_null(sr->partition_lo));
	cJSON_AddItemToObject(rep, "hi", text_or_null(sr->partition_hi));
	*out = rep;
	rep = NULL;
out:
	cJSON_Delete(rep);
	cJSON_Delete(errors);
	store_run_free(sr);
	store_free(s);
	return rc;
}

static const char *
str_of(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
}

static int
int_of(const cJSON *o, const char *key)
{
	return (int)cJSON_GetNumberValue(cJSON_GetObjectItem(o, key));
}

static bool
same_text(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* Whether the partitions make up one plan; what does not, into problems. */
static bool
plan_whole(cJSON *parts, cJSON *problems)
{
	int n = int_of(cJSON_GetArrayItem(parts, 0), "partitionCount");
	int count = cJSON_GetArraySize(parts);
	const cJSON *first = cJSON_GetArrayItem(parts, 0), *p;
	cJSON **at = calloc((size_t)(n > 0 ? n : 1), sizeof(*at));
	char msg[600];
	bool ok = at != NULL;

	cJSON_ArrayForEach(p, parts)
	{
		int k = int_of(p, "partition");
		if (int_of(p, "partitionCount") != n) {
			snprintf(msg, sizeof(msg), "%s is partition %d/%d, the others of %d",
			         str_of(p, "journal"), k, int_of(p, "partitionCount"), n);
			cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
			ok = false;
		} else if (at && at[k]) {
			snprintf(msg, sizeof(msg),
			         "partition %d/%d is in %s and in %s: counted once (the first)", k,
			         n, str_of(at[k], "journal"), str_of(p, "journal"));
			cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
			cJSON_AddBoolToObject((cJSON *)p, "twice", true);
			ok = false;
		} else if (at) {
			at[k] = (cJSON *)p;
		}
		if (!same_text(str_of(p, "mirror"), str_of(first, "mirror")) ||
		    !same_text(str_of(p, "kind"), str_of(first, "kind"))) {
			snprintf(msg, sizeof(msg), "%s is a %s of mirror %s, %s a %s of mirror %s",
			         str_of(p, "journal"), str_of(p, "kind"), str_of(p, "mirror"),
			         str_of(first, "journal"), str_of(first, "kind"),
			         str_of(first, "mirror"));
			cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
			ok = false;
		}
	}
	for (int k = 0; at && k < n; k++) {
		if (at[k] == NULL) {
			snprintf(msg, sizeof(msg),
			         "partition %d/%d is missing (%d of %d journals given)", k, n,
			         count, n);
			cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
			ok = false;
			continue;
		}
		if (k > 0 && at[k - 1] &&
		    !same_text(str_of(at[k - 1], "hi"), str_of(at[k], "lo"))) {
			snprintf(
			    msg, sizeof(msg),
			    "partitions %d and %d do not meet (%.100s, %.100s): the processes "
			    "computed different plans (the collection's smallest or largest id "
			    "changed between their starts); run the split again",
			    k - 1, k, str_of(at[k - 1], "hi") ? str_of(at[k - 1], "hi") : "+inf",
			    str_of(at[k], "lo") ? str_of(at[k], "lo") : "-inf");
			cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
			ok = false;
		}
	}
	free(at);
	/* a partition given twice is counted once: the second copy goes */
	for (int i = cJSON_GetArraySize(parts) - 1; i >= 0; i--)
		if (cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(parts, i), "twice")))
			cJSON_DeleteItemFromArray(parts, i);
	return ok;
}

/* Whether every partition's run read the same collection into the same
 * index (their journaled configurations): journals of two mirrors' or
 * two environments' splits do not add up. */
static bool
same_targets(cJSON *parts, cJSON *problems)
{
	static const char *const keys[] = {"mongodbDatabase", "mongodbCollection",
	                                   "opensearchIndex"};
	const cJSON *first = cJSON_GetArrayItem(parts, 0), *p;
	char msg[1400];
	bool ok = true;

	cJSON_ArrayForEach(p, parts)
	{
		bool same = true;
		for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
			same = same && same_text(str_of(p, keys[i]), str_of(first, keys[i]));
		if (same)
			continue;
		snprintf(msg, sizeof(msg),
		         "partition %d (%.200s) read %.100s.%.100s into index %.100s, partition "
		         "%d (%.200s) %.100s.%.100s into %.100s: not one split run",
		         int_of(p, "partition"), str_of(p, "journal"), str_of(p, "mongodbDatabase"),
		         str_of(p, "mongodbCollection"), str_of(p, "opensearchIndex"),
		         int_of(first, "partition"), str_of(first, "journal"),
		         str_of(first, "mongodbDatabase"), str_of(first, "mongodbCollection"),
		         str_of(first, "opensearchIndex"));
		cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
		ok = false;
	}
	return ok;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* "5.0 h", "12 min", "40 s": a difference of start times for a person. */
static void
span_text(char *buf, size_t len, int64_t ms)
{
	if (ms >= 3600 * 1000)
		snprintf(buf, len, "%.1f h", (double)ms / 3600000.0);
	else if (ms >= 60 * 1000)
		snprintf(buf, len, "%" PRId64 " min", ms / 60000);
	else
		snprintf(buf, len, "%" PRId64 " s", ms / 1000);
}

/* Whether the runs belong to one split run: each began within max_spread
 * seconds of the middle start (the median). A pod that failed before it
 * journaled a new run (it could not take its lease, it was not
 * scheduled) leaves its previous run, a CronJob's day older, which must
 * not make the report an all-clear. */
static bool
one_split_run(cJSON *parts, int64_t max_spread, cJSON *problems)
{
	int count = cJSON_GetArraySize(parts), i = 0;
	int64_t *t = calloc((size_t)(count > 0 ? count : 1), sizeof(*t)), mid;
	const cJSON *p;
	char msg[700], span[32];
	bool ok = t != NULL;

	cJSON_ArrayForEach(p, parts)
	{
		if (t && util_iso_to_ms(str_of(p, "startedAt"), &t[i++]) != 0)
			ok = false;
	}
	if (!ok || count == 0) {
		free(t);
		if (count > 0)
			cJSON_AddItemToArray(
			    problems,
			    cJSON_CreateString("a partition's start time cannot be read"));
		return count > 0 ? false : true;
	}
	qsort(t, (size_t)count, sizeof(*t), cmp_i64);
	mid = t[count / 2];
	free(t);
	cJSON_ArrayForEach(p, parts)
	{
		int64_t at = 0, d;
		if (util_iso_to_ms(str_of(p, "startedAt"), &at) != 0)
			continue;
		d = at < mid ? mid - at : at - mid;
		if (d <= max_spread * 1000)
			continue;
		span_text(span, sizeof(span), d);
		snprintf(msg, sizeof(msg),
		         "partition %d's run (run %d in %.250s) began at %s, %s %s the others "
		         "(more than --max-spread %" PRId64 " s): from %s split run? run it again",
		         int_of(p, "partition"), int_of(p, "id"), str_of(p, "journal"),
		         str_of(p, "startedAt"), span, at < mid ? "before" : "after", max_spread,
		         at < mid ? "an earlier" : "a later");
		cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
		ok = false;
	}
	return ok;
}

/* Whether journals[i] is the same file as an earlier one (the same path
 * after realpath, or the same device and inode: a hard link, a bind
 * mount): counted once, the second named as a problem. */
static bool
given_before(const char *const *journals, size_t i, cJSON *problems)
{
	struct stat a, b;
	char ra[PATH_MAX], rb[PATH_MAX], msg[600];

	for (size_t j = 0; j < i; j++) {
		bool same =
		    realpath(journals[i], ra) && realpath(journals[j], rb) && strcmp(ra, rb) == 0;
		same = same || (stat(journals[i], &a) == 0 && stat(journals[j], &b) == 0 &&
		                a.st_dev == b.st_dev && a.st_ino == b.st_ino);
		if (same) {
			snprintf(msg, sizeof(msg),
			         "%.250s is the same journal as %.250s (given twice): counted once",
			         journals[i], journals[j]);
			cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
			return true;
		}
	}
	return false;
}

rcode
report_merge(cJSON **out, bool *complete, const char *const *journals, size_t n, int64_t max_spread,
             const char *mirror, struct rerror *err)
{
	cJSON *m = cJSON_CreateObject(), *parts = cJSON_CreateArray(),
	      *problems = cJSON_CreateArray(), *p;
	const char *worst = "completed";
	rcode rc = m && parts && problems ? RC_OK : rerror_set(err, RC_ERR_NOMEM, "out of memory");
	bool twice = false;

	*out = NULL;
	*complete = false;
	/* one journal of a split run of one process: its partitions */
	int64_t ids[REPORT_MERGE_MAX] = {0};
	int n_split = 0;
	if (rc == RC_OK && n == 1)
		rc = split_ids(ids, &n_split, journals[0], mirror, err);
	for (int k = 0; rc == RC_OK && k < n_split; k++) {
		cJSON *part = NULL;
		if (ids[k] && (rc = read_part(&part, journals[0], ids[k], mirror, err)) == RC_OK)
			cJSON_AddItemToArray(parts, part);
	}
	for (size_t i = 0; rc == RC_OK && n_split == 0 && i < n; i++) {
		cJSON *part = NULL;
		if (given_before(journals, i, problems))
			twice = true;
		else if ((rc = read_part(&part, journals[i], 0, mirror, err)) == RC_OK)
			cJSON_AddItemToArray(parts, part);
	}
	if (rc) {
		cJSON_Delete(m);
		cJSON_Delete(parts);
		cJSON_Delete(problems);
		return rc;
	}
	p = cJSON_GetArrayItem(parts, 0);
	cJSON_AddStringToObject(m, "mirror", str_of(p, "mirror"));
	cJSON_AddStringToObject(m, "kind", str_of(p, "kind"));
	cJSON_AddNumberToObject(m, "partitionCount", int_of(p, "partitionCount"));
	cJSON_AddItemToObject(m, "mongodbDatabase",
	                      cJSON_Duplicate(cJSON_GetObjectItem(p, "mongodbDatabase"), 1));
	cJSON_AddItemToObject(m, "mongodbCollection",
	                      cJSON_Duplicate(cJSON_GetObjectItem(p, "mongodbCollection"), 1));
	cJSON_AddItemToObject(m, "opensearchIndex",
	                      cJSON_Duplicate(cJSON_GetObjectItem(p, "opensearchIndex"), 1));
	cJSON_AddNumberToObject(m, "maxSpreadSeconds", (double)max_spread);
	*complete = plan_whole(parts, problems) & same_targets(parts, problems) &
	            one_split_run(parts, max_spread, problems) & !twice;
	cJSON_AddBoolToObject(m, "complete", *complete);
	cJSON_AddItemToObject(m, "problems", problems);
	for (size_t c = 0; c < N_SUMMED; c++) {
		double sum = 0;
		bool known = true;
		cJSON_ArrayForEach(p, parts)
		{
			const cJSON *v = cJSON_GetObjectItem(p, summed[c]);
			known = known && cJSON_IsNumber(v);
			sum += cJSON_IsNumber(v) ? v->valuedouble : 0;
		}
		cJSON_AddItemToObject(m, summed[c],
		                      known ? cJSON_CreateNumber(sum) : cJSON_CreateNull());
	}
	cJSON_ArrayForEach(p, parts) if (status_weight(str_of(p, "status")) > status_weight(worst))
	    worst = str_of(p, "status");
	cJSON_AddStringToObject(m, "status", worst ? worst : "unknown");
	cJSON_AddItemToObject(m, "partitions", parts);
	*out = m;
	return RC_OK;
}

static const char *
count_text(char *buf, size_t len, const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(o, key);
	if (!cJSON_IsNumber(v))
		return "-";
	snprintf(buf, len, "%.0f", v->valuedouble);
	return buf;
}

/* One line of the table: a partition's, or the total's. */
static void
text_row(FILE *out, const char *label, const char *status, const cJSON *o)
{
	static const char *const cols[] = {"compared",     "missingCount",   "orphanCount",
	                                   "staleCount",   "duplicateCount", "repairedCount",
	                                   "deletedCount", "failedCount"};
	char buf[32];

	fprintf(out, "%-8s %-11s", label, status);
	for (size_t i = 0; i < sizeof(cols) / sizeof(*cols); i++)
		fprintf(out, " %9s", count_text(buf, sizeof(buf), o, cols[i]));
	fputc('\n', out);
}

rcode
report_merge_text(FILE *out, const cJSON *m)
{
	const cJSON *parts = cJSON_GetObjectItem(m, "partitions"), *p, *e;
	int n = int_of(m, "partitionCount");
	char label[32];

	fprintf(out, "split run: %s of mirror %s, %d of %d partitions, %s (status %s)\n",
	        str_of(m, "kind"), str_of(m, "mirror"), cJSON_GetArraySize(parts), n,
	        cJSON_IsTrue(cJSON_GetObjectItem(m, "complete")) ? "the plan is complete"
	                                                         : "the plan is NOT complete",
	        str_of(m, "status"));
	fprintf(out, "%s.%s -> index %s\n",
	        str_of(m, "mongodbDatabase") ? str_of(m, "mongodbDatabase") : "?",
	        str_of(m, "mongodbCollection") ? str_of(m, "mongodbCollection") : "?",
	        str_of(m, "opensearchIndex") ? str_of(m, "opensearchIndex") : "?");
	fprintf(out, "%-8s %-11s %9s %9s %9s %9s %9s %9s %9s %9s\n", "part", "status", "compared",
	        "missing", "orphans", "stale", "dupl.", "repaired", "deleted", "failed");
	cJSON_ArrayForEach(p, parts)
	{
		snprintf(label, sizeof(label), "%d/%d", int_of(p, "partition"),
		         int_of(p, "partitionCount"));
		text_row(out, label, str_of(p, "status"), p);
	}
	text_row(out, "total", str_of(m, "status"), m);
	fputc('\n', out);
	cJSON_ArrayForEach(p, parts)
	{
		const char *lo = str_of(p, "lo"), *hi = str_of(p, "hi");
		fprintf(out, "%d/%d: run %d in %s, %s ids [%s, %s)\n", int_of(p, "partition"),
		        int_of(p, "partitionCount"), int_of(p, "id"), str_of(p, "journal"),
		        str_of(p, "idType") ? str_of(p, "idType") : "(not planned)",
		        lo ? lo : "-inf", hi ? hi : "+inf");
		fprintf(out, "   %s, started %s, finished %s\n", str_of(p, "status"),
		        str_of(p, "startedAt") ? str_of(p, "startedAt") : "-",
		        str_of(p, "finishedAt") ? str_of(p, "finishedAt") : "(not finished)");
		if (str_of(p, "error"))
			fprintf(out, "   error: %s\n", str_of(p, "error"));
		cJSON_ArrayForEach(e, cJSON_GetObjectItem(p, "errors"))
		    fprintf(out, "   %s %s: %s\n", str_of(e, "phase") ? str_of(e, "phase") : "",
		            str_of(e, "id") ? str_of(e, "id") : "",
		            str_of(e, "message") ? str_of(e, "message") : "");
	}
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(m, "problems"))
	    fprintf(out, "problem: %s\n", cJSON_GetStringValue(e));
	return ferror(out) ? RC_ERR_INTERNAL : RC_OK;
}

/* One partition's drift rows, page by page (show --ndjson's order). */
static RC_MUST_CHECK rcode
part_ndjson(FILE *out, struct store *s, int64_t id, int k)
{
	cJSON *rows = NULL, *last = NULL, *r;
	rcode rc = RC_OK;
	int count;

	do {
		struct store_drift after = {0};
		if (last) {
			after.doc_id = str_of(last, "id");
			after.id_type = str_of(last, "idType");
			after.os_index = str_of(last, "index");
			after.os_id = str_of(last, "copyId");
			after.routing = str_of(last, "routing");
			if (store_drift_kind_parse(str_of(last, "kind"), &after.kind))
				rc = RC_ERR_STORE;
		}
		if (rc == RC_OK)
			rc = report_ids_page(s, &rows, id, NULL, last ? &after : NULL, 1000);
		if (rc)
			break;
		cJSON_ArrayForEach(r, rows)
		{
			cJSON_AddNumberToObject(r, "partition", k);
			char *line = cJSON_PrintUnformatted(r);
			if (line == NULL) {
				rc = RC_ERR_NOMEM;
				break;
			}
			fprintf(out, "%s\n", line);
			free(line);
		}
		count = cJSON_GetArraySize(rows);
		if (count > 0) {
			cJSON_Delete(last);
			last = cJSON_DetachItemFromArray(rows, count - 1);
		}
		cJSON_Delete(rows);
		rows = NULL;
	} while (rc == RC_OK && count == 1000);
	cJSON_Delete(last);
	return rc;
}

rcode
report_merge_ndjson(FILE *out, const cJSON *m, struct rerror *err)
{
	const cJSON *p;
	rcode rc = RC_OK;

	cJSON_ArrayForEach(p, cJSON_GetObjectItem(m, "partitions"))
	{
		struct store *s = NULL;
		const char *journal = str_of(p, "journal");
		if ((rc = open_journal(&s, journal, err)))
			return rc;
		rc =
		    part_ndjson(out, s, (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(p, "id")),
		                int_of(p, "partition"));
		store_free(s);
		if (rc)
			return rerror_set(err, rc, "journal %s: cannot read its drift", journal);
	}
	return RC_OK;
}
