/*
 * api.c: the HTTP API (libmicrohttpd) and `reconciler serve`.
 *
 * - One table of routes (method, path pattern, handler, help) drives
 *   dispatch, 404/405 answers and the list of endpoints at GET /.
 * - Each connection has its own thread; handlers that read the journal use
 *   the API's own SQLite connection under a mutex, so reads never wait on a
 *   run's transactions (WAL).
 * - Bodies over 64 KiB are refused with 413 before they are read; a body
 *   must be a JSON object; every error is {"success": false, "error": ...}.
 * - With API_TOKEN set, POST routes need "Authorization: Bearer <token>"
 *   (API_TOKEN_READ=true: GET routes too, but the liveness and readiness
 *   probes), compared in constant time.
 * - Shutdown (SIGTERM/SIGINT): stop accepting, interrupt the run after its
 *   in-flight batch, exit 0 within 10 s; a second signal exits at once.
 */
#include "config.h"
#include "engine.h"
#include "log.h"
#include "mongo.h"
#include "opensearch.h"
#include "scheduler.h"
#include "store.h"
#include "util.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#define MAX_BODY         (64 * 1024)
#define SHUTDOWN_WAIT_MS 9000

int serve_main(struct config *cfg);

struct api {
	const struct config *cfg;
	struct scheduler *sched;
	pthread_mutex_t store_mu;
	struct store *store;
	pthread_mutex_t health_mu;
	struct mongo *mongo;
	struct opensearch *os;
};

struct request {
	struct buf body;
	bool too_large;
	bool answered; /* a response is queued already (413 before the body) */
};

struct reply {
	int status;
	cJSON *json;
	struct buf text; /* used instead of json when content_type is set */
	const char *content_type;
	char allow[64];
};

struct call {
	struct api *api;
	struct MHD_Connection *conn;
	const char *method;
	const char *path;
	const char *id_segment; /* the {id} of the path, if any */
	cJSON *body;            /* parsed JSON object (POST), never NULL for POST */
	struct reply *reply;
};

typedef void (*handler_fn)(struct call *c);

struct route {
	const char *method;
	const char *pattern;
	handler_fn fn;
	const char *help;
};

/* ---- replies ---------------------------------------------------------- */

static void
reply_json(struct call *c, int status, cJSON *json)
{
	cJSON_Delete(c->reply->json);
	c->reply->status = status;
	c->reply->json = json;
}

static void reply_error(struct call *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reply_error(struct call *c, int status, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	cJSON *o = cJSON_CreateObject();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	util_mask_secrets(msg, sizeof(msg));
	cJSON_AddFalseToObject(o, "success");
	cJSON_AddStringToObject(o, "error", msg);
	reply_json(c, status, o);
}

static cJSON *
ok_object(void)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddTrueToObject(o, "success");
	return o;
}

static void
add_iso_or_null(cJSON *o, const char *key, int64_t ms)
{
	char ts[32];

	if (ms <= 0) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	util_ms_to_iso(ms, ts, sizeof(ts));
	cJSON_AddStringToObject(o, key, ts);
}

static void
add_count(cJSON *o, const char *key, int64_t v)
{
	if (v < 0)
		cJSON_AddNullToObject(o, key);
	else
		cJSON_AddNumberToObject(o, key, (double)v);
}

/* ---- parameters ------------------------------------------------------- */

/* A query parameter as an integer in [min, max]; false (and a 400 reply)
 * when it is there but not such a number. */
static bool
query_int(struct call *c, const char *name, int64_t min, int64_t max, int64_t dflt, int64_t *out)
{
	const char *v = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, name);

	*out = dflt;
	if (v == NULL)
		return true;
	if (util_parse_i64(v, out) || *out < min || *out > max) {
		reply_error(c, 400, "%s must be an integer from %lld to %lld", name, (long long)min,
		            (long long)max);
		return false;
	}
	return true;
}

static bool
run_id_of(struct call *c, int64_t *id)
{
	if (util_parse_i64(c->id_segment, id) || *id <= 0) {
		reply_error(c, 400, "run id must be a positive integer");
		return false;
	}
	return true;
}

/* A boolean member of the body; false (and a 400) when of another type. */
static bool
body_bool(struct call *c, const char *name, bool dflt, bool *out)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(c->body, name);

	*out = dflt;
	if (v == NULL || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsBool(v)) {
		reply_error(c, 400, "%s must be true or false", name);
		return false;
	}
	*out = cJSON_IsTrue(v);
	return true;
}

/* ---- handlers ----------------------------------------------------------- */

static const struct route routes[];
static const size_t n_routes;

static void
h_root(struct call *c)
{
	cJSON *o = ok_object(), *eps = cJSON_AddArrayToObject(o, "endpoints");

	cJSON_AddStringToObject(o, "service", "reconciler");
	cJSON_AddStringToObject(o, "version", RECONCILER_VERSION);
	for (size_t i = 0; i < n_routes; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "method", routes[i].method);
		cJSON_AddStringToObject(e, "path", routes[i].pattern);
		cJSON_AddStringToObject(e, "description", routes[i].help);
		cJSON_AddItemToArray(eps, e);
	}
	reply_json(c, 200, o);
}

static bool
journal_ok(struct api *a)
{
	pthread_mutex_lock(&a->store_mu);
	bool ok = store_ping(a->store) == RC_OK;
	pthread_mutex_unlock(&a->store_mu);
	return ok;
}

static cJSON *
health_item(bool ok, int64_t ms, const char *version, const char *error)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddBoolToObject(o, "ok", ok);
	cJSON_AddNumberToObject(o, "latencyMs", (double)ms);
	if (version)
		cJSON_AddStringToObject(o, "version", version);
	if (!ok && error) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", error);
		util_mask_secrets(msg, sizeof(msg));
		cJSON_AddStringToObject(o, "error", msg);
	}
	return o;
}

static void
h_health(struct call *c)
{
	struct api *a = c->api;
	struct rerror err = {0};
	char *version = NULL;
	cJSON *o = cJSON_CreateObject();
	bool all = true, ok;
	int64_t t0;

	pthread_mutex_lock(&a->health_mu);
	t0 = util_mono_ms();
	ok = (a->mongo || mongo_open(&a->mongo, a->cfg->mongodb_uri, a->cfg->mongodb_database,
	                             a->cfg->mongodb_collection, &err) == RC_OK) &&
	     mongo_ping(a->mongo, &version, &err) == RC_OK;
	cJSON_AddItemToObject(o, "mongodb",
	                      health_item(ok, util_mono_ms() - t0, version, err.message));
	all &= ok;
	free(version);
	version = NULL;
	t0 = util_mono_ms();
	ok = (a->os || opensearch_open(&a->os, a->cfg, &err) == RC_OK) &&
	     opensearch_info(a->os, &version, &err) == RC_OK;
	cJSON_AddItemToObject(o, "opensearch",
	                      health_item(ok, util_mono_ms() - t0, version, err.message));
	all &= ok;
	free(version);
	pthread_mutex_unlock(&a->health_mu);
	t0 = util_mono_ms();
	ok = journal_ok(a);
	cJSON_AddItemToObject(
	    o, "journal", health_item(ok, util_mono_ms() - t0, NULL, "journal does not answer"));
	all &= ok;
	cJSON_AddBoolToObject(o, "success", all);
	cJSON_AddStringToObject(o, "status", all ? "ok" : "degraded");
	reply_json(c, all ? 200 : 503, o);
}

static void
h_live(struct call *c)
{
	cJSON *o = ok_object();
	cJSON_AddStringToObject(o, "status", "live");
	reply_json(c, 200, o);
}

static void
h_ready(struct call *c)
{
	bool ok = journal_ok(c->api);
	cJSON *o = cJSON_CreateObject();

	cJSON_AddBoolToObject(o, "success", ok);
	cJSON_AddStringToObject(o, "status", ok ? "ready" : "journal unavailable");
	reply_json(c, ok ? 200 : 503, o);
}

static void
h_start(struct call *c)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(c->body, "intervalMs"), *o;
	int64_t interval = c->api->cfg->interval_ms;
	const int64_t max = 30LL * 24 * 3600 * 1000;

	if (v && !cJSON_IsNull(v)) {
		if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
		    v->valuedouble < 1000 || v->valuedouble > (double)max) {
			reply_error(c, 400, "intervalMs must be an integer from 1000 to %lld",
			            (long long)max);
			return;
		}
		interval = (int64_t)v->valuedouble;
	}
	scheduler_enable(c->api->sched, interval);
	log_info("api: schedule started, every %lld ms (until restart)", (long long)interval);
	o = ok_object();
	cJSON_AddStringToObject(o, "message", "Reconciliation service started");
	cJSON_AddNumberToObject(o, "intervalMs", (double)interval);
	cJSON_AddNumberToObject(o, "intervalMinutes", (double)interval / 60000.0);
	reply_json(c, 200, o);
}

static void
h_stop(struct call *c)
{
	cJSON *o = ok_object();

	scheduler_disable(c->api->sched);
	log_info("api: schedule stopped (until restart)");
	cJSON_AddStringToObject(o, "message", "Reconciliation service stopped");
	reply_json(c, 200, o);
}

static cJSON *
progress_json(const struct engine_progress *p)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "runId", (double)p->run_id);
	cJSON_AddStringToObject(o, "kind", p->kind);
	cJSON_AddStringToObject(o, "phase", p->phase);
	add_iso_or_null(o, "startedAt", p->started_ms);
	cJSON_AddNumberToObject(o, "elapsedMs", (double)p->elapsed_ms);
	add_count(o, "mongoCount", p->mongo_count);
	add_count(o, "opensearchCount", p->opensearch_count);
	cJSON_AddNumberToObject(o, "compared", (double)p->compared);
	cJSON_AddNumberToObject(o, "missingCount", (double)p->missing);
	cJSON_AddNumberToObject(o, "orphanCount", (double)p->orphans);
	cJSON_AddNumberToObject(o, "staleCount", (double)p->stale);
	cJSON_AddNumberToObject(o, "repairedCount", (double)p->repaired);
	cJSON_AddNumberToObject(o, "deletedCount", (double)p->deleted);
	cJSON_AddNumberToObject(o, "failedCount", (double)p->failed);
	return o;
}

static void
h_status(struct call *c)
{
	struct scheduler_status st;
	cJSON *stats = NULL, *o;
	rcode rc;

	scheduler_status(c->api->sched, &st);
	pthread_mutex_lock(&c->api->store_mu);
	rc = store_report_totals(c->api->store, &stats, NULL);
	pthread_mutex_unlock(&c->api->store_mu);
	if (rc) {
		reply_error(c, 500, "cannot read the journal");
		return;
	}
	cJSON_AddBoolToObject(stats, "isRunning", st.enabled);
	add_iso_or_null(stats, "nextCheckAt", st.next_at_ms);
	cJSON_AddNumberToObject(stats, "intervalMs", (double)st.interval_ms);
	o = ok_object();
	cJSON_AddItemToObject(o, "stats", stats);
	if (st.progress.active)
		cJSON_AddItemToObject(o, "currentRun", progress_json(&st.progress));
	else
		cJSON_AddNullToObject(o, "currentRun");
	reply_json(c, 200, o);
}

static void
run_now(struct call *c, const char *kind, bool wait)
{
	struct engine_result res;
	struct rerror err = {0};
	int64_t run_id = 0;
	rcode rc;
	cJSON *o;

	rc = scheduler_run_now(c->api->sched, &run_id, &res, kind, "api", wait, &err);
	if (rc == RC_ERR_BUSY) {
		o = cJSON_CreateObject();
		cJSON_AddFalseToObject(o, "success");
		cJSON_AddStringToObject(o, "error", err.message);
		add_count(o, "runId", run_id > 0 ? run_id : -1);
		reply_json(c, 409, o);
		return;
	}
	if (!wait && rc == RC_OK) {
		o = ok_object();
		cJSON_AddNumberToObject(o, "runId", (double)run_id);
		cJSON_AddStringToObject(o, "message", "run started");
		reply_json(c, 202, o);
		return;
	}
	if (rc && res.run_id == 0) {
		reply_error(c, err.code == RC_ERR_BUSY ? 409 : 500, "%s", err.message);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "success", rc == RC_OK);
	cJSON_AddBoolToObject(o, "inSync",
	                      rc == RC_OK && res.missing + res.orphans + res.stale +
	                                             res.duplicates + res.conflicts ==
	                                         0);
	add_count(o, "mongoCount", res.mongo_count);
	add_count(o, "opensearchCount", res.opensearch_count);
	if (res.mongo_count >= 0 && res.opensearch_count >= 0)
		cJSON_AddNumberToObject(o, "difference",
		                        (double)(res.mongo_count - res.opensearch_count));
	else
		cJSON_AddNullToObject(o, "difference");
	cJSON_AddNumberToObject(o, "synced", (double)(res.repaired + res.deleted));
	cJSON_AddNumberToObject(o, "missingCount", (double)res.missing);
	cJSON_AddNumberToObject(o, "orphanCount", (double)res.orphans);
	cJSON_AddNumberToObject(o, "staleCount", (double)res.stale);
	cJSON_AddNumberToObject(o, "failedCount", (double)res.failed);
	cJSON_AddNumberToObject(o, "duplicateCount", (double)res.duplicates);
	cJSON_AddNumberToObject(o, "conflictCount", (double)res.conflicts);
	cJSON_AddNumberToObject(o, "runId", (double)res.run_id);
	cJSON_AddStringToObject(o, "status", res.status);
	if (rc) {
		char msg[600];
		snprintf(msg, sizeof(msg), "%s", err.message);
		util_mask_secrets(msg, sizeof(msg));
		cJSON_AddStringToObject(o, "error", msg);
	}
	reply_json(c, rc ? 500 : 200, o);
}

static void
h_check(struct call *c)
{
	bool wait, dry;

	if (!body_bool(c, "wait", true, &wait) || !body_bool(c, "dryRun", false, &dry))
		return;
	run_now(c, dry ? "dry_run" : "check", wait);
}

static void
h_full(struct call *c)
{
	bool wait;

	if (!body_bool(c, "wait", false, &wait))
		return;
	run_now(c, "full", wait);
}

static void
h_runs(struct call *c)
{
	static const char *const statuses[] = {"running",     "completed", "failed",
	                                       "interrupted", "cancelled", NULL};
	const char *status = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "status");
	int64_t limit, before;
	cJSON *runs = NULL, *o, *last;
	bool known = status == NULL;
	rcode rc;

	if (!query_int(c, "limit", 1, 1000, 20, &limit) ||
	    !query_int(c, "before", 1, INT64_MAX, 0, &before))
		return;
	for (int i = 0; status && statuses[i]; i++)
		known |= strcmp(status, statuses[i]) == 0;
	if (!known) {
		reply_error(
		    c, 400,
		    "status must be one of running, completed, failed, interrupted, cancelled");
		return;
	}
	pthread_mutex_lock(&c->api->store_mu);
	rc = store_report_runs(c->api->store, &runs, NULL, limit, before, status);
	pthread_mutex_unlock(&c->api->store_mu);
	if (rc) {
		reply_error(c, 500, "cannot read the journal");
		return;
	}
	o = ok_object();
	last = cJSON_GetArrayItem(runs, cJSON_GetArraySize(runs) - 1);
	if (cJSON_GetArraySize(runs) == limit && last)
		cJSON_AddNumberToObject(o, "nextBefore",
		                        cJSON_GetNumberValue(cJSON_GetObjectItem(last, "id")));
	else
		cJSON_AddNullToObject(o, "nextBefore");
	cJSON_AddItemToObject(o, "runs", runs);
	reply_json(c, 200, o);
}

static void
h_run(struct call *c)
{
	int64_t id;
	cJSON *run = NULL, *o;
	rcode rc;

	if (!run_id_of(c, &id))
		return;
	pthread_mutex_lock(&c->api->store_mu);
	rc = store_report_run(c->api->store, &run, id);
	pthread_mutex_unlock(&c->api->store_mu);
	if (rc == RC_ERR_NOTFOUND) {
		reply_error(c, 404, "no run %lld", (long long)id);
		return;
	}
	if (rc) {
		reply_error(c, 500, "cannot read the journal");
		return;
	}
	o = ok_object();
	cJSON_AddItemToObject(o, "run", run);
	reply_json(c, 200, o);
}

/* 404s an unknown run; true when it exists. Holds no lock. */
static bool
run_exists(struct call *c, int64_t id)
{
	struct store_run *r = NULL;
	rcode rc;

	pthread_mutex_lock(&c->api->store_mu);
	rc = store_run_get(c->api->store, &r, id);
	pthread_mutex_unlock(&c->api->store_mu);
	store_run_free(r);
	if (rc == RC_ERR_NOTFOUND) {
		reply_error(c, 404, "no run %lld", (long long)id);
		return false;
	}
	if (rc) {
		reply_error(c, 500, "cannot read the journal");
		return false;
	}
	return true;
}

static void
h_ids(struct call *c)
{
	const char *kind = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "kind");
	const char *after = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "after");
	int64_t id, limit;
	cJSON *ids = NULL, *o, *last;
	rcode rc;

	if (!run_id_of(c, &id) || !query_int(c, "limit", 1, 10000, 100, &limit))
		return;
	enum drift_kind dk;
	if (kind && store_drift_kind_parse(kind, &dk)) {
		reply_error(c, 400,
		            "kind must be one of missing, stale, orphan, duplicate, conflict");
		return;
	}
	if (!run_exists(c, id))
		return;
	pthread_mutex_lock(&c->api->store_mu);
	rc = store_report_ids(c->api->store, &ids, id, kind, after, limit);
	pthread_mutex_unlock(&c->api->store_mu);
	if (rc) {
		reply_error(c, 500, "cannot read the journal");
		return;
	}
	o = ok_object();
	cJSON_AddNumberToObject(o, "runId", (double)id);
	last = cJSON_GetArrayItem(ids, cJSON_GetArraySize(ids) - 1);
	if (cJSON_GetArraySize(ids) == limit && last)
		cJSON_AddStringToObject(o, "nextAfter",
		                        cJSON_GetStringValue(cJSON_GetObjectItem(last, "id")));
	else
		cJSON_AddNullToObject(o, "nextAfter");
	cJSON_AddItemToObject(o, "ids", ids);
	reply_json(c, 200, o);
}

static void
h_errors(struct call *c)
{
	int64_t id, limit;
	cJSON *errors = NULL, *o;
	rcode rc;

	if (!run_id_of(c, &id) || !query_int(c, "limit", 1, 1000, 100, &limit) ||
	    !run_exists(c, id))
		return;
	pthread_mutex_lock(&c->api->store_mu);
	rc = store_report_errors(c->api->store, &errors, id, limit);
	pthread_mutex_unlock(&c->api->store_mu);
	if (rc) {
		reply_error(c, 500, "cannot read the journal");
		return;
	}
	o = ok_object();
	cJSON_AddNumberToObject(o, "runId", (double)id);
	cJSON_AddItemToObject(o, "errors", errors);
	reply_json(c, 200, o);
}

static void
h_cancel(struct call *c)
{
	struct store_run *r = NULL;
	struct rerror err = {0};
	int64_t id, holder;
	cJSON *o;
	rcode rc;

	if (!run_id_of(c, &id))
		return;
	if (scheduler_cancel(c->api->sched, id)) {
		log_msg(LOG_INFO, id, "api: cancel requested");
		o = ok_object();
		cJSON_AddNumberToObject(o, "runId", (double)id);
		cJSON_AddStringToObject(o, "message", "cancelling after the in-flight batch");
		reply_json(c, 202, o);
		return;
	}
	pthread_mutex_lock(&c->api->store_mu);
	rc = store_run_get(c->api->store, &r, id);
	if (rc == RC_OK && strcmp(r->status, "interrupted") && strcmp(r->status, "running")) {
		reply_error(c, 409, "run %lld is %s", (long long)id, r->status);
	} else if (rc == RC_OK) {
		/* not ours to stop: cancel it in the journal unless a process runs it */
		if (store_lock(c->api->store, &holder, r->mirror, &err) == RC_OK) {
			rc = store_run_finish(c->api->store, id, "cancelled",
			                      "cancelled through the API");
			store_unlock(c->api->store);
			o = ok_object();
			cJSON_AddNumberToObject(o, "runId", (double)id);
			cJSON_AddStringToObject(o, "message", "cancelled");
			if (rc)
				reply_error(c, 500, "cannot write the journal");
			else
				reply_json(c, 200, o), o = NULL;
			cJSON_Delete(o);
		} else {
			reply_error(c, 409, "run %lld is running in another process",
			            (long long)id);
		}
	} else if (rc == RC_ERR_NOTFOUND) {
		reply_error(c, 404, "no run %lld", (long long)id);
	} else {
		reply_error(c, 500, "cannot read the journal");
	}
	pthread_mutex_unlock(&c->api->store_mu);
	store_run_free(r);
}

struct metrics_ctx {
	struct buf *out;
	char last[96];
};

static void
metric(void *ctx, const char *name, const char *labels, double value)
{
	struct metrics_ctx *m = ctx;
	static const struct {
		const char *name, *type, *help;
	} families[] = {
	    {"reconciler_runs_total", "counter", "Runs in the journal by status."},
	    {"reconciler_drift_found_total", "counter", "Drifted documents found, by kind."},
	    {"reconciler_documents_repaired_total", "counter",
	     "Documents indexed (index) or deleted (delete) by repairs."},
	    {"reconciler_documents_failed_total", "counter", "Documents OpenSearch rejected."},
	    {"reconciler_errors_total", "counter", "Errors in the journal."},
	    {"reconciler_last_run_timestamp_seconds", "gauge", "Start of the last finished run."},
	    {"reconciler_last_run_duration_seconds", "gauge", "Duration of the last finished run."},
	    {"reconciler_documents", "gauge", "Documents counted on each side by the last run."},
	    {"reconciler_run_active", "gauge", "1 while a run is in progress."},
	    {"reconciler_schedule_enabled", "gauge", "1 while the schedule is on."},
	    {"reconciler_current_run_compared", "gauge", "Ids compared so far by the active run."},
	};

	if (strcmp(m->last, name) != 0) {
		for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
			if (strcmp(families[i].name, name) == 0)
				buf_printf(m->out, "# HELP %s %s\n# TYPE %s %s\n", name,
				           families[i].help, name, families[i].type);
		snprintf(m->last, sizeof(m->last), "%s", name);
	}
	if (*labels)
		buf_printf(m->out, "%s{%s} %.17g\n", name, labels, value);
	else
		buf_printf(m->out, "%s %.17g\n", name, value);
}

static void
h_metrics(struct call *c)
{
	struct metrics_ctx m = {.out = &c->reply->text};
	struct scheduler_status st;
	rcode rc;

	pthread_mutex_lock(&c->api->store_mu);
	rc = store_report_metrics(c->api->store, NULL, 0, metric, &m);
	pthread_mutex_unlock(&c->api->store_mu);
	if (rc) {
		reply_error(c, 500, "cannot read the journal");
		return;
	}
	scheduler_status(c->api->sched, &st);
	metric(&m, "reconciler_run_active", "", st.progress.active ? 1 : 0);
	metric(&m, "reconciler_schedule_enabled", "", st.enabled ? 1 : 0);
	metric(&m, "reconciler_current_run_compared", "",
	       st.progress.active ? (double)st.progress.compared : 0);
	c->reply->status = 200;
	c->reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static const struct route routes[] = {
    {"GET", "/", h_root, "service, version and endpoints"},
    {"GET", "/api/health", h_health, "MongoDB, OpenSearch and journal, each with ok and latency"},
    {"GET", "/api/health/live", h_live, "liveness probe"},
    {"GET", "/api/health/ready", h_ready, "readiness probe: the journal answers"},
    {"POST", "/api/reconciliation/start", h_start, "start the schedule ({\"intervalMs\": N})"},
    {"POST", "/api/reconciliation/stop", h_stop, "stop the schedule"},
    {"GET", "/api/reconciliation/status", h_status, "totals from the journal and the active run"},
    {"POST", "/api/reconciliation/check", h_check,
     "run now ({\"wait\": true, \"dryRun\": false}); 409 while a run is active"},
    {"GET", "/api/reconciliation/runs", h_runs, "run history (?limit=&before=&status=)"},
    {"GET", "/api/reconciliation/runs/{id}", h_run, "one run's report"},
    {"GET", "/api/reconciliation/runs/{id}/ids", h_ids,
     "drift ids of a run (?kind=missing|stale|orphan|duplicate|conflict&limit=&after=)"},
    {"GET", "/api/reconciliation/runs/{id}/errors", h_errors, "errors of a run (?limit=)"},
    {"POST", "/api/reconciliation/runs/{id}/cancel", h_cancel, "cancel a run"},
    {"POST", "/api/sync/full", h_full, "start a full, resumable re-index"},
    {"GET", "/metrics", h_metrics, "Prometheus metrics"},
};
static const size_t n_routes = sizeof(routes) / sizeof(routes[0]);

/* Whether path has the shape of pattern; *id gets the {id} segment. */
static bool
path_matches(const char *pattern, const char *path, const char **id, size_t *id_len)
{
	const char *p = pattern, *q = path;

	while (*p && *q) {
		if (strncmp(p, "{id}", 4) == 0) {
			size_t n = strcspn(q, "/");
			if (n == 0)
				return false;
			*id = q;
			*id_len = n;
			p += 4;
			q += n;
			continue;
		}
		if (*p != *q)
			return false;
		p++;
		q++;
	}
	return *p == '\0' && *q == '\0';
}

/* Constant-time comparison of the bearer token. */
static bool
token_ok(const char *header, const char *token)
{
	size_t tl = strlen(token), hl;
	unsigned char diff = 0;

	if (header == NULL || strncmp(header, "Bearer ", 7) != 0)
		return false;
	header += 7;
	hl = strlen(header);
	diff |= (unsigned char)(hl != tl);
	for (size_t i = 0; i < tl; i++)
		diff |= (unsigned char)(token[i] ^ (i < hl ? header[i] : 0));
	return diff == 0;
}

static void
dispatch(struct api *a, struct MHD_Connection *conn, const char *method, const char *url,
         struct request *rq, struct reply *rep)
{
	struct call c = {.api = a, .conn = conn, .method = method, .reply = rep};
	char path[512], id[64] = "";
	const struct route *hit = NULL;
	bool is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	size_t n;

	snprintf(path, sizeof(path), "%s", url);
	n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	c.path = path;
	for (size_t i = 0; i < n_routes; i++) {
		const char *ids = NULL;
		size_t idl = 0;
		if (!path_matches(routes[i].pattern, path, &ids, &idl))
			continue;
		if (!strcmp(routes[i].method, method) ||
		    (is_get && !strcmp(routes[i].method, "GET"))) {
			hit = &routes[i];
			snprintf(id, sizeof(id), "%.*s", (int)(idl < 63 ? idl : 63),
			         ids ? ids : "");
			break;
		}
		size_t used = strlen(rep->allow);
		snprintf(rep->allow + used, sizeof(rep->allow) - used, "%s%s", used ? ", " : "",
		         routes[i].method);
	}
	if (hit == NULL) {
		if (*rep->allow)
			reply_error(&c, 405, "method %s not allowed on %s (allowed: %s)", method,
			            path, rep->allow);
		else
			reply_error(&c, 404, "no route %s %s", method, path);
		return;
	}
	c.id_segment = id;
	if (*a->cfg->api_token) {
		bool needs =
		    !is_get || (a->cfg->api_token_read && strcmp(path, "/api/health/live") &&
		                strcmp(path, "/api/health/ready"));
		const char *auth =
		    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
		if (needs && !token_ok(auth, a->cfg->api_token)) {
			reply_error(&c, 401, "missing or wrong bearer token");
			return;
		}
	}
	if (!is_get) {
		if (rq->body.len == 0) {
			c.body = cJSON_CreateObject();
		} else {
			c.body = cJSON_ParseWithLength(rq->body.data, rq->body.len);
			if (c.body == NULL) {
				reply_error(&c, 400, "malformed JSON body");
				return;
			}
			if (!cJSON_IsObject(c.body)) {
				cJSON_Delete(c.body);
				reply_error(&c, 400, "the body must be a JSON object");
				return;
			}
		}
	}
	hit->fn(&c);
	cJSON_Delete(c.body);
}

static enum MHD_Result
send_reply(struct MHD_Connection *conn, struct reply *rep)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *text = NULL;

	if (rep->content_type) {
		resp = MHD_create_response_from_buffer(
		    rep->text.len, rep->text.data ? rep->text.data : "", MHD_RESPMEM_MUST_COPY);
	} else {
		text = rep->json ? cJSON_PrintUnformatted(rep->json) : NULL;
		if (text == NULL)
			text = strdup("{\"success\":false,\"error\":\"out of memory\"}");
		resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	}
	if (resp == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type",
	                        rep->content_type ? rep->content_type : "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (rep->status == 405)
		MHD_add_response_header(resp, "Allow", rep->allow);
	ret = MHD_queue_response(conn, (unsigned)rep->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct api *a = cls;
	struct request *rq = *con_cls;
	struct reply rep = {.status = 500};
	enum MHD_Result ret;

	(void)version;
	if (rq == NULL) {
		const char *cl =
		    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		int64_t len = 0;
		rq = calloc(1, sizeof(*rq));
		if (rq == NULL)
			return MHD_NO;
		*con_cls = rq;
		if (cl && (util_parse_i64(cl, &len) || len > MAX_BODY)) {
			/* refuse before reading it */
			struct call c = {.reply = &rep};
			reply_error(&c, 413, "request body over %d bytes", MAX_BODY);
			ret = send_reply(conn, &rep);
			cJSON_Delete(rep.json);
			rq->too_large = rq->answered = true;
			return ret;
		}
		return MHD_YES;
	}
	if (rq->answered) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!rq->too_large && rq->body.len + *upload_size > MAX_BODY)
			rq->too_large = true;
		if (!rq->too_large && buf_append(&rq->body, upload, *upload_size))
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	if (rq->too_large) {
		struct call c = {.reply = &rep};
		reply_error(&c, 413, "request body over %d bytes", MAX_BODY);
	} else {
		dispatch(a, conn, method, url, rq, &rep);
	}
	if (rep.status >= 500 || rep.status == 401 || rep.status == 409)
		log_msg(rep.status >= 500 ? LOG_WARN : LOG_INFO, 0, "api: %s %s -> %d", method, url,
		        rep.status);
	else
		log_msg(LOG_DEBUG, 0, "api: %s %s -> %d", method, url, rep.status);
	ret = send_reply(conn, &rep);
	cJSON_Delete(rep.json);
	buf_free(&rep.text);
	return ret;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (rq) {
		buf_free(&rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

/* ---- serve --------------------------------------------------------------- */

static sigset_t stop_signals;

static void *
second_signal(void *arg)
{
	int sig;

	(void)arg;
	sigwait(&stop_signals, &sig);
	log_warn("second signal: exiting at once (the journal is transactional)");
	_exit(130);
	return NULL;
}

int
serve_main(struct config *cfg)
{
	struct api a = {.cfg = cfg};
	struct rerror err = {0};
	struct MHD_Daemon *d = NULL;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr *addr;
	unsigned flags =
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
	int64_t unfinished = 0;
	int sig, rc = 0;
	pthread_t t2;

	pthread_mutex_init(&a.store_mu, NULL);
	pthread_mutex_init(&a.health_mu, NULL);
	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if (inet_pton(AF_INET, cfg->http_bind, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)cfg->port);
		addr = (struct sockaddr *)&sin;
	} else if (inet_pton(AF_INET6, cfg->http_bind, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons((uint16_t)cfg->port);
		addr = (struct sockaddr *)&sin6;
		flags |= MHD_USE_IPv6;
	} else {
		fprintf(stderr,
		        "reconciler: HTTP_BIND=\"%s\" is invalid: expected an IPv4 or IPv6 "
		        "address\n",
		        cfg->http_bind);
		return 78;
	}
	/* signals are taken by sigwait in this thread, never by a handler */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (store_open(&a.store, cfg->state_db, &err)) {
		log_error("%s", err.message);
		rc = 2;
		goto out;
	}
	store_run_unfinished(a.store, &unfinished, cfg->name);
	if (scheduler_new(&a.sched, cfg, &err) || scheduler_start(a.sched, unfinished > 0, &err)) {
		log_error("%s", err.message);
		rc = 2;
		goto out;
	}
	d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, &a,
	                     MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
	                     NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
	                     MHD_OPTION_CONNECTION_LIMIT, (unsigned)128, MHD_OPTION_END);
	if (d == NULL) {
		log_error("cannot listen on %s:%lld (in use, or not an address of this host)",
		          cfg->http_bind, (long long)cfg->port);
		rc = 2;
		goto out;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	log_info("reconciler %s listening on %s:%u; schedule %s%s", RECONCILER_VERSION,
	         cfg->http_bind, info ? info->port : (unsigned)cfg->port,
	         cfg->reconciliation_enabled ? "on" : "off",
	         unfinished ? "; resuming the interrupted run" : "");

	sigwait(&stop_signals, &sig);
	log_info("signal %d: shutting down (in-flight batch first)", sig);
	pthread_create(&t2, NULL, second_signal, NULL);
	pthread_detach(t2);
	MHD_socket ls = MHD_quiesce_daemon(d); /* no new connections */
	if (ls != MHD_INVALID_SOCKET)
		close(ls);
	if (!scheduler_shutdown(a.sched, SHUTDOWN_WAIT_MS)) {
		struct scheduler_status st;
		scheduler_status(a.sched, &st);
		log_warn("the run did not stop in time: marking it interrupted and exiting");
		if (st.progress.run_id > 0)
			store_run_finish(a.store, st.progress.run_id, "interrupted",
			                 "service stopped before the in-flight batch finished");
		log_close();
		_exit(0);
	}
	MHD_stop_daemon(d);
	d = NULL;
	log_info("stopped");
out:
	if (d)
		MHD_stop_daemon(d);
	if (a.sched)
		scheduler_shutdown(a.sched, SHUTDOWN_WAIT_MS);
	scheduler_free(a.sched);
	store_free(a.store);
	mongo_free(a.mongo);
	opensearch_free(a.os);
	pthread_mutex_destroy(&a.store_mu);
	pthread_mutex_destroy(&a.health_mu);
	return rc;
}
