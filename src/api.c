/*
 * api.c: the routes of the HTTP API and their handlers.
 *
 * - One table of routes (method, path pattern, handler, help) drives
 *   dispatch (http.c), 404/405 answers and the list of endpoints at GET /.
 * - Handlers that read the journal use the API's own SQLite connection
 *   under a mutex, so reads never wait on a run's transactions (WAL).
 * - Mirrors: routes under /api/mirrors/{m} act on one mirror; the seed's
 *   routes act on the only mirror, or with several on every mirror (or the
 *   one ?mirror= names) and answer with the seed's keys summed plus a
 *   per-mirror breakdown, so a client of the seed keeps working unchanged.
 */
#include "api.h"
#include "docdiff.h"
#include "run.h"
#include "log.h"
#include "probe.h"
#include "report.h"
#include "scheduler.h"
#include "store.h"
#include "stream.h"
#include "util.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

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

/* "a, b, c": the n words of an enum's name table, word(0) to word(n - 1),
 * for an error that lists what is allowed. */
static void
words_of(char *out, size_t len, const char *(*word)(int), int n)
{
	size_t used = 0;

	out[0] = '\0';
	for (int i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%s", i ? ", " : "", word(i));
}

static const char *
kind_word(int i)
{
	return store_drift_kind_name((enum drift_kind)i);
}

static const char *
status_word(int i)
{
	return store_run_status_name((enum run_status)i);
}

static const char *
state_word(int i)
{
	return report_history_state_name((enum drift_history_state)i);
}

bool
api_query_int(struct call *c, const char *name, int64_t min, int64_t max, int64_t dflt,
              int64_t *out)
{
	const char *v = http_query(c, name);

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

bool
api_run_id(struct call *c, int64_t *id)
{
	if (util_parse_i64(c->id_segment, id) || *id <= 0) {
		reply_error(c, 400, "run id must be a positive integer");
		return false;
	}
	return true;
}

bool
api_query_kind(struct call *c, const enum drift_kind **filter, enum drift_kind *kind)
{
	const char *v = http_query(c, "kind");
	char words[200];

	*filter = NULL;
	if (v == NULL)
		return true;
	if (store_drift_kind_parse(v, kind)) {
		words_of(words, sizeof(words), kind_word, (int)DRIFT_CONFLICT + 1);
		reply_error(c, 400, "kind must be one of %s", words);
		return false;
	}
	*filter = kind;
	return true;
}

bool
api_query_status(struct call *c, const enum run_status **filter, enum run_status *status)
{
	const char *v = http_query(c, "status");
	char words[200];

	*filter = NULL;
	if (v == NULL)
		return true;
	if (store_run_status_parse(v, status)) {
		words_of(words, sizeof(words), status_word, RUN_STATUS_COUNT);
		reply_error(c, 400, "status must be one of %s", words);
		return false;
	}
	*filter = status;
	return true;
}

bool
api_query_state(struct call *c, enum drift_history_state *state)
{
	const char *v = http_query(c, "state");
	char words[200];

	*state = DRIFT_HISTORY_OPEN;
	if (v && report_history_state_parse(v, state)) {
		words_of(words, sizeof(words), state_word, DRIFT_HISTORY_COUNT);
		reply_error(c, 400, "state must be one of %s", words);
		return false;
	}
	return true;
}

bool
api_body_bool(struct call *c, const char *name, bool dflt, bool *out)
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

bool
api_body_interval(struct call *c, int64_t *interval)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(c->body, "intervalMs");
	int64_t min = 0, max = 0;

	*interval = 0;
	if (v == NULL || cJSON_IsNull(v))
		return true;
	/* the setting's own bounds: the schedule a route sets is one a file could */
	if (!config_key_bounds("RECONCILIATION_INTERVAL_MS", &min, &max)) {
		reply_error(c, 500, "RECONCILIATION_INTERVAL_MS is not in the settings table");
		return false;
	}
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
	    v->valuedouble < (double)min || v->valuedouble > (double)max) {
		reply_error(c, 400, "intervalMs must be an integer from %lld to %lld",
		            (long long)min, (long long)max);
		return false;
	}
	*interval = (int64_t)v->valuedouble;
	return true;
}

/* Most ids one API request takes: so many ids of the longest kind (512
 * bytes) still fit the 64 KiB body limit, so a list one over it is a 400
 * naming the limit, never a 413 about bytes. */
#define API_IDS_MAX 100

/* "ids" of a targeted check into o (borrowed from the body). */
static bool
body_ids(struct call *c, const cJSON *ids, struct engine_opts *o)
{
	const cJSON *v;
	size_t i = 0;

	if (!cJSON_IsArray(ids)) {
		reply_error(c, 400, "ids must be an array of id strings");
		return false;
	}
	int n = cJSON_GetArraySize(ids);
	if (n > API_IDS_MAX) {
		reply_error(c, 400,
		            "more than %d ids given: that is the most one request takes "
		            "(reconciler check --ids FILE takes up to %d; a larger set is a "
		            "job for a full check)",
		            API_IDS_MAX, ENGINE_IDS_MAX);
		return false;
	}
	o->ids = calloc(n ? (size_t)n : 1, sizeof(*o->ids));
	if (o->ids == NULL) {
		reply_error(c, 500, "out of memory");
		return false;
	}
	cJSON_ArrayForEach(v, ids)
	{
		if (!cJSON_IsString(v)) {
			reply_error(c, 400,
			            "ids[%zu] must be a string (the id's canonical text, "
			            "docs/MAPPING.md)",
			            i);
			return false;
		}
		o->ids[i++] = v->valuestring;
	}
	o->n_ids = i;
	return true;
}

bool
api_body_target(struct call *c, struct engine_opts *o, enum run_kind *kind)
{
	cJSON *ids = cJSON_GetObjectItemCaseSensitive(c->body, "ids");
	cJSON *since = cJSON_GetObjectItemCaseSensitive(c->body, "since");

	if (ids && !cJSON_IsNull(ids)) {
		if (!body_ids(c, ids, o))
			return false;
		*kind = RUN_IDS;
	}
	if (since && !cJSON_IsNull(since)) {
		if (!cJSON_IsString(since) || util_iso_to_ms(since->valuestring, &o->since_ms)) {
			reply_error(c, 400,
			            "since must be an ISO 8601 time as a string (e.g. "
			            "\"2026-11-29T10:00:00Z\")");
			return false;
		}
		o->since = true;
		*kind = RUN_IDS;
	}
	return true;
}

/* ---- handlers ----------------------------------------------------------- */

static void
h_root(struct call *c)
{
	cJSON *o, *eps;

	c->reply->vary_accept = true;
	if (ui_wants_html(MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Accept")) &&
	    ui_file_find(&c->reply->file, "/") == RC_OK) {
		c->reply->status = 200;
		return;
	}
	o = ok_object();
	eps = cJSON_AddArrayToObject(o, "endpoints");
	cJSON_AddStringToObject(o, "service", "reconciler");
	cJSON_AddStringToObject(o, "version", RECONCILER_VERSION);
	for (size_t i = 0; i < api_n_routes; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "method", api_routes[i].method);
		cJSON_AddStringToObject(e, "path", api_routes[i].pattern);
		cJSON_AddStringToObject(e, "description", api_routes[i].help);
		cJSON_AddItemToArray(eps, e);
	}
	reply_json(c, 200, o);
}

/* The dashboard: the page at /ui, its files at /ui/NAME (ui.c). */
static void
h_ui(struct call *c)
{
	if (ui_file_find(&c->reply->file, c->path) == RC_OK)
		c->reply->status = 200;
	else
		reply_error(c, 404, "no file %s", c->path);
}

static bool
journal_ok(struct api *a)
{
	pthread_mutex_lock(&a->store_mu);
	bool ok = store_ping(a->store) == RC_OK;
	pthread_mutex_unlock(&a->store_mu);
	return ok;
}

/* Reads answer and a write commits: a full disk, a read-only file or
 * another process's lock shows here before (or after) a run meets it. */
static bool
journal_writable(struct api *a, char *why, size_t len)
{
	struct rerror err = {0};
	bool ok;

	pthread_mutex_lock(&a->store_mu);
	ok = store_ping(a->store) == RC_OK;
	if (!ok)
		snprintf(why, len, "journal does not answer reads");
	else if (store_probe_write(a->store, 2000, &err)) { /* a probe answers quickly */
		ok = false;
		snprintf(why, len, "%s", err.message);
	}
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

/* Adds mongodb and opensearch, as probed, to o. */
static void
health_sides(cJSON *o, const struct probe *p)
{
	cJSON_AddItemToObject(o, "mongodb",
	                      health_item(p->mongodb.ok, p->mongodb.latency_ms, p->mongodb.version,
	                                  p->mongodb.err.message));
	cJSON_AddItemToObject(o, "opensearch",
	                      health_item(p->opensearch.ok, p->opensearch.latency_ms,
	                                  p->opensearch.version, p->opensearch.err.message));
}

static void
h_health(struct call *c)
{
	struct api *a = c->api;
	char why[512] = "";
	cJSON *o = cJSON_CreateObject(), *mirrors = NULL;
	bool ok, servers = true;
	int64_t t0;

	/* every mirror's servers (a file may spread mirrors over clusters):
	 * the first's at the top level, as before mirrors; with several, each
	 * under mirrors.NAME, and any one down makes the whole degraded */
	if (a->n_mirrors > 1)
		mirrors = cJSON_AddObjectToObject(o, "mirrors");
	pthread_mutex_lock(&a->health_mu);
	for (size_t i = 0; i < a->n_mirrors; i++) {
		struct probe p;
		struct api_mirror *m = &a->mirrors[i];
		cJSON *mo = mirrors ? cJSON_AddObjectToObject(mirrors, m->cfg->name) : NULL;
		/* servers already asked for an earlier mirror are not asked again
		 * (a cluster that is down would cost its timeout once per mirror) */
		const cJSON *same = NULL;
		for (size_t j = 0; mo && j < i && !same; j++)
			if (config_same_opensearch(a->mirrors[j].cfg, m->cfg) &&
			    config_same_mongodb(a->mirrors[j].cfg, m->cfg))
				same = cJSON_GetObjectItemCaseSensitive(mirrors,
				                                        a->mirrors[j].cfg->name);
		if (same) {
			cJSON *ms = cJSON_Duplicate(cJSON_GetObjectItem(same, "mongodb"), true),
			      *os = cJSON_Duplicate(cJSON_GetObjectItem(same, "opensearch"), true);
			if (!ms || !cJSON_AddItemToObject(mo, "mongodb", ms))
				cJSON_Delete(ms);
			if (!os || !cJSON_AddItemToObject(mo, "opensearch", os))
				cJSON_Delete(os);
			continue;
		}
		if (probe_servers(&p, m->cfg, PROBE_VERSION, &m->health_conns) != RC_OK)
			servers = false;
		if (i == 0)
			health_sides(o, &p);
		if (mo)
			health_sides(mo, &p);
		probe_clear(&p);
	}
	pthread_mutex_unlock(&a->health_mu);
	t0 = util_mono_ms();
	ok = journal_writable(a, why, sizeof(why));
	cJSON_AddItemToObject(o, "journal", health_item(ok, util_mono_ms() - t0, NULL, why));
	ok = ok && servers;
	cJSON_AddBoolToObject(o, "success", ok);
	cJSON_AddStringToObject(o, "status", ok ? "ok" : "degraded");
	reply_json(c, ok ? 200 : 503, o);
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

/* ---- mirrors ------------------------------------------------------------ */

bool
api_mirror_named(struct call *c, const char *name)
{
	struct api *a = c->api;
	char names[400] = "";
	size_t n = 0;

	for (size_t i = 0; i < a->n_mirrors; i++)
		if (strcmp(a->mirrors[i].cfg->name, name) == 0) {
			c->mirror = &a->mirrors[i];
			return true;
		}
	for (size_t i = 0; i < a->n_mirrors && n < sizeof(names); i++)
		n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s", i ? ", " : "",
		                      a->mirrors[i].cfg->name);
	reply_error(c, 404, "no mirror %.64s (mirrors: %s)", name, names);
	return false;
}

/* ?mirror=NAME on a seed route: that mirror only. */
static bool
query_mirror(struct call *c)
{
	const char *name = http_query(c, "mirror");

	return name == NULL || api_mirror_named(c, name);
}

/* The mirrors a seed route acts on: the one named, else all. */
static void
targets(struct call *c, struct api_mirror **first, size_t *n)
{
	if (c->mirror) {
		*first = c->mirror;
		*n = 1;
	} else {
		*first = c->api->mirrors;
		*n = c->api->n_mirrors;
	}
}

/* ---- schedule ------------------------------------------------------------ */

static void
h_start(struct call *c)
{
	cJSON *o, *list = NULL;
	int64_t interval = 0, shown = 0;
	struct api_mirror *m;
	size_t n;

	if (!query_mirror(c) || !api_body_interval(c, &interval))
		return;
	targets(c, &m, &n);
	if (n > 1)
		list = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		/* without intervalMs each mirror keeps its own */
		int64_t each = interval ? interval : m[i].cfg->interval_ms;
		scheduler_enable(m[i].sched, each);
		log_info("api: mirror %s: schedule started, every %lld ms (until restart)",
		         m[i].cfg->name, (long long)each);
		if (shown == 0 || each < shown)
			shown = each;
		if (list) {
			cJSON *e = cJSON_CreateObject();
			cJSON_AddStringToObject(e, "mirror", m[i].cfg->name);
			cJSON_AddNumberToObject(e, "intervalMs", (double)each);
			cJSON_AddItemToArray(list, e);
		}
	}
	o = ok_object();
	cJSON_AddStringToObject(o, "message", "Reconciliation service started");
	cJSON_AddNumberToObject(o, "intervalMs", (double)shown);
	cJSON_AddNumberToObject(o, "intervalMinutes", (double)shown / 60000.0);
	if (list)
		cJSON_AddItemToObject(o, "mirrors", list);
	reply_json(c, 200, o);
}

static void
h_stop(struct call *c)
{
	cJSON *o;
	struct api_mirror *m;
	size_t n;

	if (!query_mirror(c))
		return;
	targets(c, &m, &n);
	for (size_t i = 0; i < n; i++) {
		scheduler_disable(m[i].sched);
		log_info("api: mirror %s: schedule stopped (until restart)", m[i].cfg->name);
	}
	o = ok_object();
	cJSON_AddStringToObject(o, "message", "Reconciliation service stopped");
	reply_json(c, 200, o);
}

/* ---- status -------------------------------------------------------------- */

static cJSON *
progress_json(const struct engine_progress *p)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "runId", (double)p->run_id);
	cJSON_AddStringToObject(o, "kind", store_run_kind_name(p->kind));
	cJSON_AddStringToObject(o, "phase", run_phase_name(p->phase));
	add_iso_or_null(o, "startedAt", p->started_ms);
	cJSON_AddNumberToObject(o, "elapsedMs", (double)p->elapsed_ms);
	add_count(o, "mongoCount", p->mongo_count);
	add_count(o, "opensearchCount", p->opensearch_count);
	cJSON_AddNumberToObject(o, "compared", (double)p->compared);
	cJSON_AddNumberToObject(o, "missingCount", (double)p->missing);
	cJSON_AddNumberToObject(o, "orphanCount", (double)p->orphans);
	cJSON_AddNumberToObject(o, "staleCount", (double)p->stale);
	cJSON_AddNumberToObject(o, "repairedCount", (double)p->repaired);
	cJSON_AddNumberToObject(o, "reindexedCount", (double)p->reindexed);
	cJSON_AddNumberToObject(o, "deletedCount", (double)p->deleted);
	cJSON_AddNumberToObject(o, "failedCount", (double)p->failed);
	return o;
}

/* The seed's status of one mirror: stats (journal totals and the schedule)
 * into *stats, and its scheduler's state. */
static RC_MUST_CHECK rcode
mirror_stats(struct api *a, const struct api_mirror *m, cJSON **stats, struct scheduler_status *st)
{
	rcode rc;

	scheduler_status(m->sched, st);
	pthread_mutex_lock(&a->store_mu);
	rc = report_totals(a->store, stats, m->cfg->name);
	pthread_mutex_unlock(&a->store_mu);
	if (rc)
		return rc;
	cJSON_AddBoolToObject(*stats, "isRunning", st->enabled);
	add_iso_or_null(*stats, "nextCheckAt", st->next_at_ms);
	cJSON_AddNumberToObject(*stats, "intervalMs", (double)st->interval_ms);
	return RC_OK;
}

/* ---- live sync ------------------------------------------------------------ */

#define STREAM_GAPS_SHOWN   20    /* GET .../stream lists the open gaps and the newest closed */
#define STREAM_STOP_WAIT_MS 10000 /* POST .../stream/stop waits this long for the batch */

static void
add_str_or_null(cJSON *o, const char *key, const char *v)
{
	if (v && *v)
		cJSON_AddStringToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

/* A gap of the journal as .../stream lists it. */
static cJSON *
gap_json(const struct store_gap *g)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "id", (double)g->id);
	cJSON_AddStringToObject(o, "reason", g->reason);
	add_str_or_null(o, "detail", g->detail);
	add_str_or_null(o, "lostFrom", g->lost_from);
	add_str_or_null(o, "reopenedAt", g->reopened_at);
	add_count(o, "catchupRunId", g->catchup_run_id > 0 ? g->catchup_run_id : -1);
	add_str_or_null(o, "closedAt", g->closed_at);
	cJSON_AddBoolToObject(o, "open", g->closed_at == NULL);
	return o;
}

/* A mirror's live sync into o: the tailer's state and lag, the journal's
 * place and counts, and (gaps) its gaps. RC_ERR_STORE when the journal
 * fails. */
static RC_MUST_CHECK rcode
stream_fill(cJSON *o, struct api *a, const struct api_mirror *m, bool gaps)
{
	struct stream_status ss;
	struct store_stream js = {0};
	struct store_gap *g = NULL;
	size_t ng = 0;
	rcode rc;

	stream_tailer_status(m->stream, &ss);
	pthread_mutex_lock(&a->store_mu);
	rc = store_stream_get(a->store, &js, m->cfg->name);
	if (rc == RC_OK && gaps)
		rc = store_stream_gaps_list(a->store, &g, &ng, m->cfg->name, STREAM_GAPS_SHOWN);
	pthread_mutex_unlock(&a->store_mu);
	if (rc == RC_OK) {
		cJSON_AddBoolToObject(o, "enabled", m->cfg->change_stream_enabled);
		cJSON_AddStringToObject(o, "state", stream_state_name(ss.state));
		cJSON_AddBoolToObject(o, "catchingUp", ss.catching_up);
		cJSON_AddBoolToObject(o, "reconnecting", ss.reconnecting);
		add_count(o, "lagSeconds", ss.lag_s);
		add_str_or_null(o, "clusterTime", js.cluster_time);
		cJSON_AddNumberToObject(o, "eventsApplied", (double)js.events_applied);
		cJSON_AddNumberToObject(o, "eventsFailed", (double)js.events_failed);
		cJSON_AddNumberToObject(o, "batches", (double)js.batches);
		cJSON_AddNumberToObject(o, "gapsTotal", (double)js.gaps);
		cJSON_AddNumberToObject(o, "gapsOpen", (double)js.open_gaps);
		add_str_or_null(o, "error", ss.error);
	}
	if (rc == RC_OK && gaps) {
		cJSON *list = cJSON_AddArrayToObject(o, "gaps");
		for (size_t i = 0; i < ng; i++)
			cJSON_AddItemToArray(list, gap_json(&g[i]));
	}
	store_stream_gaps_free(g, ng);
	store_stream_clear(&js);
	return rc ? RC_ERR_STORE : RC_OK;
}

static void
h_stream(struct call *c)
{
	cJSON *o = ok_object();

	cJSON_AddStringToObject(o, "mirror", c->mirror->cfg->name);
	if (stream_fill(o, c->api, c->mirror, true)) {
		cJSON_Delete(o);
		reply_error(c, 500, "cannot read the journal");
		return;
	}
	reply_json(c, 200, o);
}

/* The answer of start and stop: the stream as it is now. */
static void
reply_stream(struct call *c, int status, const char *message)
{
	cJSON *o = ok_object();

	cJSON_AddStringToObject(o, "mirror", c->mirror->cfg->name);
	cJSON_AddStringToObject(o, "message", message);
	if (stream_fill(o, c->api, c->mirror, false)) {
		cJSON_Delete(o);
		reply_error(c, 500, "cannot read the journal");
		return;
	}
	reply_json(c, status, o);
}

static void
h_stream_start(struct call *c)
{
	struct rerror err = {0};
	rcode rc = stream_tailer_start(c->mirror->stream, &err);

	if (rc == RC_ERR_BUSY) {
		reply_error(c, 409, "%s", err.message);
		return;
	}
	if (rc) {
		reply_error(c, 500, "%s", err.message);
		return;
	}
	/* a stream that cannot start (another sync holds the mirror, a setting)
	 * ends within its setup's first steps: the answer says so instead of
	 * "running" (QA22) */
	struct stream_status ss;
	for (int waited = 0; waited < 2000; waited += 50) {
		stream_tailer_status(c->mirror->stream, &ss);
		if (ss.state != STREAM_RUNNING || ss.reconnecting)
			break;
		util_sleep_ms(50, NULL);
	}
	if (ss.state == STREAM_FAILED) {
		/* the error names the mirror already */
		reply_error(c,
		            ss.end_rc == RC_ERR_BUSY     ? 409
		            : ss.end_rc == RC_ERR_CONFIG ? 422
		                                         : 500,
		            "live sync did not start: %s", ss.error);
		return;
	}
	log_info("api: mirror %s: live sync started (until restart)", c->mirror->cfg->name);
	reply_stream(c, 202, "live sync started (until restart)");
}

static void
h_stream_stop(struct call *c)
{
	struct stream_status ss;

	stream_tailer_status(c->mirror->stream, &ss);
	if (ss.state != STREAM_RUNNING) {
		reply_error(c, 409, "mirror %s: the stream is not running (%s)",
		            c->mirror->cfg->name, stream_state_name(ss.state));
		return;
	}
	log_info("api: mirror %s: live sync stopping (until restart)", c->mirror->cfg->name);
	/* the batch being read is written and journaled first: a short wait */
	if (stream_tailer_stop(c->mirror->stream, STREAM_STOP_WAIT_MS))
		reply_stream(c, 200, "live sync stopped; every acknowledged batch is journaled");
	else
		reply_stream(c, 202, "live sync stopping after its batch");
}

/* One mirror as /api/mirrors shows it: what it mirrors, its status and its
 * newest run. NULL (and *rc) when the journal fails. */
static cJSON *
mirror_json(struct api *a, const struct api_mirror *m, rcode *rc)
{
	struct scheduler_status st;
	cJSON *o, *stats = NULL, *runs = NULL, *cm;

	*rc = mirror_stats(a, m, &stats, &st);
	if (*rc == RC_OK) {
		pthread_mutex_lock(&a->store_mu);
		*rc = report_last_run(a->store, &runs, m->cfg->name);
		pthread_mutex_unlock(&a->store_mu);
	}
	if (*rc) {
		cJSON_Delete(stats);
		return NULL;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", m->cfg->name);
	cJSON_AddStringToObject(o, "mongodbDatabase", m->cfg->mongodb_database);
	cJSON_AddStringToObject(o, "mongodbCollection", m->cfg->mongodb_collection);
	cJSON_AddStringToObject(o, "opensearchIndex", m->cfg->opensearch_index);
	cJSON_AddItemToObject(o, "stats", stats);
	if ((*rc = stream_fill(cJSON_AddObjectToObject(o, "stream"), a, m, false))) {
		cJSON_Delete(runs);
		cJSON_Delete(o);
		return NULL;
	}
	if (st.progress.active)
		cJSON_AddItemToObject(o, "currentRun", progress_json(&st.progress));
	else
		cJSON_AddNullToObject(o, "currentRun");
	cJSON_AddBoolToObject(o, "queued", st.queued);
	cm = cJSON_AddObjectToObject(o, "countMonitor");
	cJSON_AddBoolToObject(cm, "enabled", m->cfg->count_monitor_enabled);
	add_iso_or_null(cm, "lastCheckAt", st.last_count_check_ms);
	add_count(cm, "mongoCount", st.last_mongo_count);
	add_count(cm, "opensearchCount", st.last_opensearch_count);
	if (cJSON_GetArraySize(runs) > 0)
		cJSON_AddItemToObject(o, "lastRun", cJSON_DetachItemFromArray(runs, 0));
	else
		cJSON_AddNullToObject(o, "lastRun");
	cJSON_Delete(runs);
	return o;
}

static void
add_max_string(cJSON *sum, cJSON *one, const char *key)
{
	const char *a = cJSON_GetStringValue(cJSON_GetObjectItem(sum, key));
	const char *b = cJSON_GetStringValue(cJSON_GetObjectItem(one, key));

	/* ISO-8601 UTC text sorts as time */
	if (b && (a == NULL || strcmp(b, a) > 0))
		cJSON_ReplaceItemInObject(sum, key, cJSON_CreateString(b));
}

static void
add_sum(cJSON *sum, cJSON *one, const char *key)
{
	cJSON *v = cJSON_GetObjectItem(sum, key);

	cJSON_SetNumberValue(v, cJSON_GetNumberValue(v) +
	                            cJSON_GetNumberValue(cJSON_GetObjectItem(one, key)));
}

static void
h_status(struct call *c)
{
	struct api *a = c->api;
	struct scheduler_status st;
	cJSON *stats = NULL, *o, *list, *current = NULL;
	int64_t next = 0, interval_on = 0, interval_all = 0;
	bool any_on = false;
	rcode rc;

	if (!query_mirror(c))
		return;
	if (a->n_mirrors == 1 || c->mirror) { /* exactly the seed's answer, for the one */
		if (mirror_stats(a, c->mirror ? c->mirror : &a->mirrors[0], &stats, &st)) {
			reply_error(c, 500, "cannot read the journal");
			return;
		}
		o = ok_object();
		cJSON_AddItemToObject(o, "stats", stats);
		if (st.progress.active)
			cJSON_AddItemToObject(o, "currentRun", progress_json(&st.progress));
		else
			cJSON_AddNullToObject(o, "currentRun");
		reply_json(c, 200, o);
		return;
	}
	/* several: the seed's keys summed over the mirrors, and each mirror */
	o = ok_object();
	stats = cJSON_AddObjectToObject(o, "stats");
	cJSON_AddNullToObject(stats, "lastCheck");
	cJSON_AddNullToObject(stats, "lastSync");
	cJSON_AddNumberToObject(stats, "totalChecks", 0);
	cJSON_AddNumberToObject(stats, "totalSyncs", 0);
	cJSON_AddNumberToObject(stats, "documentsSynced", 0);
	cJSON_AddNumberToObject(stats, "errors", 0);
	list = cJSON_CreateArray();
	for (size_t i = 0; i < a->n_mirrors; i++) {
		cJSON *m = mirror_json(a, &a->mirrors[i], &rc), *ms;
		if (m == NULL) {
			cJSON_Delete(list);
			cJSON_Delete(o);
			reply_error(c, 500, "cannot read the journal");
			return;
		}
		cJSON_AddItemToArray(list, m);
		ms = cJSON_GetObjectItem(m, "stats");
		add_max_string(stats, ms, "lastCheck");
		add_max_string(stats, ms, "lastSync");
		add_sum(stats, ms, "totalChecks");
		add_sum(stats, ms, "totalSyncs");
		add_sum(stats, ms, "documentsSynced");
		add_sum(stats, ms, "errors");
		scheduler_status(a->mirrors[i].sched, &st);
		any_on |= st.enabled;
		if (st.enabled && st.next_at_ms && (next == 0 || st.next_at_ms < next))
			next = st.next_at_ms;
		if (st.enabled && (interval_on == 0 || st.interval_ms < interval_on))
			interval_on = st.interval_ms;
		if (interval_all == 0 || st.interval_ms < interval_all)
			interval_all = st.interval_ms;
		if (current == NULL && cJSON_IsObject(cJSON_GetObjectItem(m, "currentRun")))
			current = cJSON_Duplicate(cJSON_GetObjectItem(m, "currentRun"), true);
	}
	cJSON_AddBoolToObject(stats, "isRunning", any_on);
	add_iso_or_null(stats, "nextCheckAt", next);
	/* the shortest of the schedules that are on (of all when none is) */
	cJSON_AddNumberToObject(stats, "intervalMs", (double)(any_on ? interval_on : interval_all));
	if (current)
		cJSON_AddItemToObject(o, "currentRun", current);
	else
		cJSON_AddNullToObject(o, "currentRun");
	cJSON_AddItemToObject(o, "mirrors", list);
	reply_json(c, 200, o);
}

static void
h_mirrors(struct call *c)
{
	struct api *a = c->api;
	cJSON *o = ok_object(), *list = cJSON_AddArrayToObject(o, "mirrors");
	rcode rc;

	for (size_t i = 0; i < a->n_mirrors; i++) {
		cJSON *m = mirror_json(a, &a->mirrors[i], &rc);
		if (m == NULL) {
			cJSON_Delete(o);
			reply_error(c, 500, "cannot read the journal");
			return;
		}
		cJSON_AddItemToArray(list, m);
	}
	reply_json(c, 200, o);
}

static void
h_mirror(struct call *c)
{
	rcode rc;
	cJSON *m = mirror_json(c->api, c->mirror, &rc), *o;

	if (m == NULL) {
		reply_error(c, 500, "cannot read the journal");
		return;
	}
	o = ok_object();
	cJSON_AddItemToObject(o, "mirror", m);
	reply_json(c, 200, o);
}

/* ---- runs now -------------------------------------------------------------- */

/* The seed's answer to a finished check (or full run) of one mirror. */
static cJSON *
result_json(const struct engine_result *res, rcode rc, const struct rerror *err)
{
	cJSON *o = cJSON_CreateObject();
	/* no run begun: nothing was counted, so every count is unknown (null),
	 * never 0, and there is no run to name */
	bool begun = res->run_id > 0;
#define COUNT(v) (begun ? (int64_t)(v) : -1)

	int sync = engine_result_in_sync(res, rc);
	char note[600];

	cJSON_AddBoolToObject(o, "success", rc == RC_OK);
	/* null: not known (a full re-index does not look for drift) */
	if (sync < 0)
		cJSON_AddNullToObject(o, "inSync");
	else
		cJSON_AddBoolToObject(o, "inSync", sync == 1);
	add_count(o, "mongoCount", COUNT(res->mongo_count));
	add_count(o, "opensearchCount", COUNT(res->opensearch_count));
	if (begun && res->mongo_count >= 0 && res->opensearch_count >= 0)
		cJSON_AddNumberToObject(o, "difference",
		                        (double)(res->mongo_count - res->opensearch_count));
	else
		cJSON_AddNullToObject(o, "difference");
	/* the seed's "documents indexed + deleted": a re-index's writes too
	 * (reindexedCount says how many of them) */
	add_count(o, "synced", COUNT(res->repaired + res->reindexed + res->deleted));
	add_count(o, "missingCount", COUNT(res->missing));
	add_count(o, "orphanCount", COUNT(res->orphans));
	add_count(o, "staleCount", COUNT(res->stale));
	add_count(o, "failedCount", COUNT(res->failed));
	add_count(o, "duplicateCount", COUNT(res->duplicates));
	add_count(o, "conflictCount", COUNT(res->conflicts));
	add_count(o, "skippedNewerCount", COUNT(res->skipped_newer));
	add_count(o, "reindexedCount", COUNT(res->reindexed));
	add_count(o, "orphansKept", COUNT(res->orphans_kept));
	add_count(o, "keptCount", COUNT(res->kept));
	add_count(o, "runId", begun ? res->run_id : -1);
	engine_result_note(res, note, sizeof(note));
	if (*note)
		cJSON_AddStringToObject(o, "note", note);
#undef COUNT
	if (res->run_id && res->status == RUN_HELD) {
		/* the brake kept the orphan deletes: why, and how to release it */
		cJSON_AddNumberToObject(o, "heldCount", (double)res->held);
		cJSON_AddStringToObject(o, "held", res->why);
	}
	/* no run begun: it failed before the journal had one */
	cJSON_AddStringToObject(o, "status",
	                        res->run_id ? store_run_status_name(res->status) : "failed");
	if (rc) {
		char msg[600];
		snprintf(msg, sizeof(msg), "%s", err->message);
		util_mask_secrets(msg, sizeof(msg));
		cJSON_AddStringToObject(o, "error", msg);
	}
	return o;
}

/* 409: the mirror and the run that hold it. */
static void
reply_busy(struct call *c, const struct api_mirror *m, int64_t run_id, const char *message)
{
	cJSON *o = cJSON_CreateObject();
	char msg[600];

	snprintf(msg, sizeof(msg), "%s", message);
	util_mask_secrets(msg, sizeof(msg));
	cJSON_AddFalseToObject(o, "success");
	cJSON_AddStringToObject(o, "error", msg);
	add_count(o, "runId", run_id > 0 ? run_id : -1);
	cJSON_AddStringToObject(o, "mirror", m->cfg->name);
	reply_json(c, 409, o);
}

/* Whether another process (or a run of this one) holds mirror m's journal
 * lock: true, with *holder (its run from the journal, 0 when unknown) and
 * err's message naming it. */
static bool
lock_held(struct api *a, const struct api_mirror *m, int64_t *holder, struct rerror *err)
{
	rcode rc;

	pthread_mutex_lock(&a->store_mu);
	rc = store_lock_probe(a->store, holder, m->cfg->name, err);
	pthread_mutex_unlock(&a->store_mu);
	return rc == RC_ERR_BUSY;
}

/* Whether mirror m has a run: this service's (*other false; waits for the
 * id of one that is starting, so a 409 names it) or another process's
 * (*other true, err naming it). *run_id that run, 0 when unknown. The
 * journal lock is also held by this service's own run from just after its
 * request, so a held lock is looked at twice: a run of ours that appeared
 * meanwhile is named as ours. */
static bool
mirror_busy(struct api *a, const struct api_mirror *m, int64_t *run_id, bool *other,
            struct rerror *err)
{
	*other = false;
	if (scheduler_busy_run(m->sched, run_id))
		return true;
	if (!lock_held(a, m, run_id, err))
		return false;
	int64_t ours = 0;
	if (scheduler_busy_run(m->sched, &ours)) {
		*run_id = ours;
		*err = (struct rerror){0}; /* handled: it is ours */
		return true;
	}
	*other = true;
	return true;
}

/* The status of a run's answer: 422 when a setting refused it at its
 * start (a clause OpenSearch refuses, a transform that does not load: the
 * error names it, nothing ran; the request was fine), 500 when it failed. */
static int
run_http(rcode rc)
{
	return rc == RC_OK ? 200 : rc == RC_ERR_CONFIG ? 422 : 500;
}

/* A run of one mirror now: the seed's answers (named says the mirror was
 * named by the route, and the answer names it too). */
static void
run_one(struct call *c, struct api_mirror *m, enum run_kind kind, const struct engine_opts *opts,
        bool wait, bool named)
{
	struct engine_result res;
	struct rerror err = {0};
	int64_t run_id = 0;
	rcode rc;
	cJSON *o;

	if (kind == RUN_IDS && engine_opts_check(m->cfg, opts, &err)) {
		reply_error(c, 400, "%s", err.message);
		return;
	}
	bool other = false;
	/* another process's run: 409 naming it, and no run queued to fail on it;
	 * ours: the request below names it */
	if (mirror_busy(c->api, m, &run_id, &other, &err) && other) {
		reply_busy(c, m, run_id, err.message);
		return;
	}
	run_id = 0;
	rc = scheduler_run_now_opts(m->sched, &run_id, &res, kind, "api", opts, wait, &err);
	if (rc == RC_ERR_BUSY && res.run_id == 0 && run_id == 0) {
		/* taken by another process since the look: name its run if it can */
		struct rerror again = {0};
		(void)lock_held(c->api, m, &run_id, &again);
	}
	if (rc == RC_ERR_BUSY) {
		reply_busy(c, m, run_id, err.message);
		return;
	}
	if (!wait && rc == RC_OK) {
		o = ok_object();
		add_count(o, "runId", run_id > 0 ? run_id : -1);
		cJSON_AddStringToObject(o, "message",
		                        run_id > 0 ? "run started"
		                                   : "run queued: other mirrors' runs hold every "
		                                     "slot (RECONCILE_CONCURRENCY)");
		if (named)
			cJSON_AddStringToObject(o, "mirror", m->cfg->name);
		reply_json(c, 202, o);
		return;
	}
	if (rc && res.run_id == 0) {
		reply_error(c, err.code == RC_ERR_BUSY ? 409 : run_http(rc), "%s", err.message);
		return;
	}
	o = result_json(&res, rc, &err);
	if (named)
		cJSON_AddStringToObject(o, "mirror", m->cfg->name);
	reply_json(c, run_http(rc), o);
}

static void
add_sum_counts(cJSON *sum, const cJSON *one, const char *key)
{
	cJSON *a = cJSON_GetObjectItem(sum, key), *b = cJSON_GetObjectItem(one, key);

	/* a count one mirror could not take leaves the sum unknown */
	if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
		cJSON_SetNumberValue(a, a->valuedouble + b->valuedouble);
	else
		cJSON_ReplaceItemInObject(sum, key, cJSON_CreateNull());
}

/* The counts run_all sums over the mirrors. */
static const char *const all_counts[] = {"mongoCount",    "opensearchCount", "difference",
                                         "synced",        "missingCount",    "orphanCount",
                                         "staleCount",    "failedCount",     "duplicateCount",
                                         "conflictCount", "reindexedCount",  "orphansKept"};

/* Whether every mirror takes the ids of a targeted check; false after a 400. */
static bool
all_opts_ok(struct call *c, enum run_kind kind, const struct engine_opts *opts)
{
	struct api *a = c->api;

	for (size_t i = 0; kind == RUN_IDS && i < a->n_mirrors; i++) {
		struct rerror err = {0};
		if (engine_opts_check(a->mirrors[i].cfg, opts, &err)) {
			reply_error(c, 400, "mirror %s: %s", a->mirrors[i].cfg->name, err.message);
			return false;
		}
	}
	return true;
}

/* Whether no mirror has a run (this service's, or another process's: its
 * journal lock); false after a 409 naming the busy ones and the first's run. */
static bool
all_free(struct call *c)
{
	struct api *a = c->api;
	char busy[600] = "", msg[700];
	size_t n_busy = 0, first_busy = 0, len = 0;
	int64_t busy_run = 0;
	bool busy_other = false;

	for (size_t i = 0; i < a->n_mirrors; i++) {
		struct rerror err = {0};
		int64_t holder = 0;
		bool other = false;
		if (!mirror_busy(a, &a->mirrors[i], &holder, &other, &err))
			continue;
		/* named: the first busy mirror whose run has an id (one queued for
		 * a slot has none yet), else the first busy one */
		if (n_busy++ == 0 || (busy_run <= 0 && holder > 0)) {
			first_busy = i;
			busy_run = holder;
			busy_other = other;
		}
		if (len < sizeof(busy))
			len += (size_t)snprintf(busy + len, sizeof(busy) - len, "%s%s",
			                        len ? "; " : "", a->mirrors[i].cfg->name);
	}
	if (n_busy == 0)
		return true;
	snprintf(msg, sizeof(msg), "a run is in progress on mirror%s %s%s", n_busy > 1 ? "s" : "",
	         busy, busy_run > 0 || busy_other ? "" : " (starting or waiting for a slot)");
	if (busy_run > 0)
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), " (run %" PRId64 " on %s%s)",
		         busy_run, a->mirrors[first_busy].cfg->name,
		         busy_other ? ", in another process" : "");
	else if (busy_other)
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg),
		         " (another process holds %s)", a->mirrors[first_busy].cfg->name);
	reply_busy(c, &a->mirrors[first_busy], busy_run, msg);
	return false;
}

/* A run requested of every mirror: tickets[i] its ticket, 0 (and an entry
 * in list saying why) for a mirror taken between the look and the request.
 * 200, or 409 when one was taken. */
static int
all_request(struct call *c, enum run_kind kind, const struct engine_opts *opts, uint64_t *tickets,
            cJSON *list)
{
	struct api *a = c->api;
	int http = 200;

	for (size_t i = 0; i < a->n_mirrors; i++) {
		struct rerror err = {0};
		int64_t run_id = 0;
		if (scheduler_request_opts(a->mirrors[i].sched, &tickets[i], &run_id, kind, "api",
		                           opts, &err) == RC_OK)
			continue;
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "mirror", a->mirrors[i].cfg->name);
		cJSON_AddFalseToObject(e, "success");
		cJSON_AddStringToObject(e, "error", err.message);
		add_count(e, "runId", run_id > 0 ? run_id : -1);
		cJSON_AddItemToArray(list, e);
		tickets[i] = 0;
		http = 409;
	}
	return http;
}

/* Without wait: each mirror's run as started (or queued) into list. */
static void
all_started(struct call *c, const uint64_t *tickets, cJSON *list)
{
	struct api *a = c->api;

	for (size_t i = 0; i < a->n_mirrors; i++) {
		struct engine_result res;
		struct rerror err = {0};
		int64_t run_id = 0;
		if (tickets[i] == 0)
			continue;
		rcode rc =
		    scheduler_wait(a->mirrors[i].sched, &run_id, &res, tickets[i], false, &err);
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "mirror", a->mirrors[i].cfg->name);
		cJSON_AddBoolToObject(e, "success", rc == RC_OK);
		add_count(e, "runId", run_id > 0 ? run_id : -1);
		cJSON_AddBoolToObject(e, "queued", rc == RC_OK && run_id == 0);
		if (rc)
			cJSON_AddStringToObject(e, "error", err.message);
		cJSON_AddItemToArray(list, e);
	}
}

/* With wait: each mirror's result into list and summed into o; the
 * answer's HTTP status (http: 200, or 409 when a request was refused). */
static int
all_waited(struct call *c, const uint64_t *tickets, cJSON *o, cJSON *list, int http)
{
	struct api *a = c->api;
	bool all_ok = true, all_in_sync = true, unknown = false, all_config = true;
	/* or how the first mirror that did not complete ended */
	enum run_status status = RUN_COMPLETED;

	cJSON_AddTrueToObject(o, "inSync");
	for (size_t k = 0; k < sizeof(all_counts) / sizeof(all_counts[0]); k++)
		cJSON_AddNumberToObject(o, all_counts[k], 0);
	for (size_t i = 0; i < a->n_mirrors; i++) {
		struct engine_result res;
		struct rerror err = {0};
		int64_t run_id = 0;
		cJSON *e;
		if (tickets[i] == 0)
			continue;
		rcode rc =
		    scheduler_wait(a->mirrors[i].sched, &run_id, &res, tickets[i], true, &err);
		e = result_json(&res, rc, &err);
		cJSON_AddStringToObject(e, "mirror", a->mirrors[i].cfg->name);
		for (size_t k = 0; k < sizeof(all_counts) / sizeof(all_counts[0]); k++)
			add_sum_counts(o, e, all_counts[k]);
		all_ok &= rc == RC_OK;
		all_config &= rc == RC_OK || rc == RC_ERR_CONFIG;
		if (rc == RC_ERR_BUSY && res.run_id == 0)
			http = 409; /* another process took it since the look */
		all_in_sync &= !cJSON_IsFalse(cJSON_GetObjectItem(e, "inSync"));
		unknown |= cJSON_IsNull(cJSON_GetObjectItem(e, "inSync"));
		if (status == RUN_COMPLETED && (res.run_id == 0 || res.status != RUN_COMPLETED))
			status = res.run_id ? res.status : RUN_FAILED;
		cJSON_AddItemToArray(list, e);
	}
	cJSON_ReplaceItemInObject(o, "success", cJSON_CreateBool(all_ok && http == 200));
	/* null when every mirror found none but some did not look (re-indexed) */
	cJSON_ReplaceItemInObject(o, "inSync",
	                          all_ok && all_in_sync && unknown
	                              ? cJSON_CreateNull()
	                              : cJSON_CreateBool(all_ok && all_in_sync));
	cJSON_AddNullToObject(o, "runId"); /* several runs: each mirror's below */
	cJSON_AddStringToObject(o, "status", store_run_status_name(status));
	return !all_ok && http == 200 ? (all_config ? 422 : 500) : http;
}

/* Runs every mirror (in the slots RECONCILE_CONCURRENCY gives): the seed's
 * keys summed, each mirror's answer in "mirrors". Starts none while one is
 * busy, so a 409 means nothing was started. */
static void
run_all(struct call *c, enum run_kind kind, const struct engine_opts *opts, bool wait)
{
	uint64_t *tickets;
	cJSON *o, *list;
	int http;

	if (!all_opts_ok(c, kind, opts) || !all_free(c))
		return;
	tickets = calloc(c->api->n_mirrors, sizeof(*tickets));
	if (tickets == NULL) {
		reply_error(c, 500, "out of memory");
		return;
	}
	o = ok_object();
	list = cJSON_CreateArray();
	http = all_request(c, kind, opts, tickets, list);
	if (!wait) {
		all_started(c, tickets, list);
		cJSON_AddNullToObject(o, "runId"); /* several runs: each mirror's below */
		cJSON_AddStringToObject(o, "message", "runs started");
		http = http == 200 ? 202 : http;
	} else {
		http = all_waited(c, tickets, o, list, http);
	}
	cJSON_AddItemToObject(o, "mirrors", list);
	free(tickets);
	reply_json(c, http, o);
}

static void
h_check(struct call *c)
{
	struct engine_opts opts = {0};
	enum run_kind kind;
	bool wait, dry;

	/* the mirror of /api/mirrors/{m}/check, or of ?mirror= */
	if (!api_body_bool(c, "wait", true, &wait) || !api_body_bool(c, "dryRun", false, &dry) ||
	    !api_body_bool(c, "allowDeletes", false, &opts.allow_deletes) ||
	    (c->mirror == NULL && !query_mirror(c)))
		return;
	/* a release is one mirror's: an operator answering one mirror's held
	 * run must not release another's, whose hold they never saw */
	if (opts.allow_deletes && c->mirror == NULL && c->api->n_mirrors > 1) {
		reply_error(c, 400,
		            "allowDeletes releases the brake on deletes of one mirror: name it "
		            "(?mirror=NAME or POST /api/mirrors/NAME/check)");
		return;
	}
	kind = dry ? RUN_DRY_RUN : RUN_CHECK;
	if (!api_body_target(c, &opts, &kind))
		goto out;
	if (kind == RUN_IDS && dry) {
		reply_error(c, 400,
		            "ids and since check and repair given documents: not with "
		            "dryRun");
		goto out;
	}
	if (c->mirror || c->api->n_mirrors == 1)
		run_one(c, c->mirror ? c->mirror : &c->api->mirrors[0], kind, &opts, wait,
		        c->mirror != NULL);
	else
		run_all(c, kind, &opts, wait);
out:
	free(opts.ids); /* the strings are the body's */
}

static void
h_full(struct call *c)
{
	bool wait, dry;

	if (!api_body_bool(c, "wait", false, &wait) || !api_body_bool(c, "dryRun", false, &dry) ||
	    (c->mirror == NULL && !query_mirror(c)))
		return;
	/* nothing named "dry" writes: a full re-index is nothing but writes */
	if (dry) {
		reply_error(c, 400,
		            "dryRun: a full re-index writes every document, it has no dry run "
		            "(POST .../check {\"dryRun\": true} detects drift without writing)");
		return;
	}
	if (c->mirror || c->api->n_mirrors == 1)
		run_one(c, c->mirror ? c->mirror : &c->api->mirrors[0], RUN_FULL, NULL, wait,
		        c->mirror != NULL);
	else
		run_all(c, RUN_FULL, NULL, wait);
}

static void
h_runs(struct call *c)
{
	const enum run_status *status;
	enum run_status parsed;
	int64_t limit, before;
	cJSON *runs = NULL, *o, *last;
	rcode rc;

	if (!api_query_int(c, "limit", 1, 1000, 20, &limit) ||
	    !api_query_int(c, "before", 1, INT64_MAX, 0, &before) ||
	    (c->mirror == NULL && !query_mirror(c)) || !api_query_status(c, &status, &parsed))
		return;
	pthread_mutex_lock(&c->api->store_mu);
	rc = report_runs(c->api->store, &runs, c->mirror ? c->mirror->cfg->name : NULL, limit,
	                 before, status);
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

/* The run as stored into *out (may be NULL: only the check), or a 404 for
 * an unknown run or, on a mirror's route, a run of another mirror. */
static bool
run_get(struct call *c, struct store_run **out, int64_t id)
{
	struct store_run *r = NULL;
	rcode rc;

	if (out)
		*out = NULL;
	pthread_mutex_lock(&c->api->store_mu);
	rc = store_run_get(c->api->store, &r, id);
	pthread_mutex_unlock(&c->api->store_mu);
	if (rc == RC_OK && c->mirror && strcmp(r->mirror, c->mirror->cfg->name) != 0)
		rc = RC_ERR_NOTFOUND; /* ids are the journal's: another mirror's run is not here */
	if (rc == RC_ERR_NOTFOUND) {
		if (c->mirror)
			reply_error(c, 404, "no run %lld in mirror %s", (long long)id,
			            c->mirror->cfg->name);
		else
			reply_error(c, 404, "no run %lld", (long long)id);
	} else if (rc) {
		reply_error(c, 500, "cannot read the journal");
	}
	if (rc == RC_OK && out)
		*out = r;
	else
		store_run_free(r);
	return rc == RC_OK;
}

static void
h_run(struct call *c)
{
	int64_t id;
	cJSON *run = NULL, *o;
	rcode rc;

	if (!api_run_id(c, &id) || (c->mirror && !run_get(c, NULL, id)))
		return;
	pthread_mutex_lock(&c->api->store_mu);
	rc = report_run(c->api->store, &run, id);
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

static void
h_ids(struct call *c)
{
	const char *after = http_query(c, "after");
	const enum drift_kind *kind;
	enum drift_kind dk;
	int64_t id, limit;
	cJSON *ids = NULL, *o, *last;
	rcode rc;

	if (!api_run_id(c, &id) || !api_query_int(c, "limit", 1, 10000, 100, &limit) ||
	    !api_query_kind(c, &kind, &dk) || !run_get(c, NULL, id))
		return;
	pthread_mutex_lock(&c->api->store_mu);
	rc = report_ids(c->api->store, &ids, id, kind, after, limit);
	pthread_mutex_unlock(&c->api->store_mu);
	if (rc) {
		reply_error(c, 500, "cannot read the journal");
		return;
	}
	o = ok_object();
	cJSON_AddNumberToObject(o, "runId", (double)id);
	last = cJSON_GetArrayItem(ids, cJSON_GetArraySize(ids) - 1);
	if (cJSON_GetArraySize(ids) >= limit && last) /* every row of its last id */
		cJSON_AddStringToObject(o, "nextAfter",
		                        cJSON_GetStringValue(cJSON_GetObjectItem(last, "id")));
	else
		cJSON_AddNullToObject(o, "nextAfter");
	cJSON_AddItemToObject(o, "ids", ids);
	reply_json(c, 200, o);
}

/* ---- the NDJSON export of a run: streamed page by page ------------------ */

#define NDJSON_PAGE 1000

struct ndjson_stream {
	struct api *api;
	int64_t run_id;
	bool by_kind; /* ?kind= given: only rows of kind */
	enum drift_kind kind;
	cJSON *last;    /* the last row sent: the next page starts after it */
	struct buf out; /* the current page as NDJSON */
	size_t sent;    /* bytes of out already handed over */
	bool end;       /* no page after out */
};

static void
ndjson_free(void *cls)
{
	struct ndjson_stream *n = cls;

	if (n == NULL)
		return;
	cJSON_Delete(n->last);
	buf_free(&n->out);
	free(n);
}

/* The next page into n->out; the store's lock is held only for the read,
 * so a slow client never holds up other requests. */
static RC_MUST_CHECK rcode
ndjson_page(struct ndjson_stream *n)
{
	cJSON *rows = NULL, *r;
	struct store_drift after = {0}, *ap = NULL;
	rcode rc = RC_OK;
	int count;

	if (n->last) {
		const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(n->last, "kind"));
		after.doc_id = cJSON_GetStringValue(cJSON_GetObjectItem(n->last, "id"));
		after.id_type = cJSON_GetStringValue(cJSON_GetObjectItem(n->last, "idType"));
		after.os_index = cJSON_GetStringValue(cJSON_GetObjectItem(n->last, "index"));
		after.os_id = cJSON_GetStringValue(cJSON_GetObjectItem(n->last, "copyId"));
		after.routing = cJSON_GetStringValue(cJSON_GetObjectItem(n->last, "routing"));
		if (store_drift_kind_parse(kind, &after.kind) || !after.doc_id || !after.id_type)
			return RC_ERR_INTERNAL;
		ap = &after;
	}
	pthread_mutex_lock(&n->api->store_mu);
	rc = report_ids_page(n->api->store, &rows, n->run_id, n->by_kind ? &n->kind : NULL, ap,
	                     NDJSON_PAGE);
	pthread_mutex_unlock(&n->api->store_mu);
	if (rc)
		return rc;
	buf_reset(&n->out);
	n->sent = 0;
	cJSON_ArrayForEach(r, rows)
	{
		char *line = cJSON_PrintUnformatted(r);
		rc = line ? buf_printf(&n->out, "%s\n", line) : RC_ERR_NOMEM;
		free(line);
		if (rc)
			break;
	}
	count = cJSON_GetArraySize(rows);
	n->end = count < NDJSON_PAGE;
	if (rc == RC_OK && count > 0) {
		cJSON_Delete(n->last);
		n->last = cJSON_DetachItemFromArray(rows, count - 1);
	}
	cJSON_Delete(rows);
	return rc;
}

static ssize_t
ndjson_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct ndjson_stream *n = cls;
	size_t len;

	(void)pos;
	while (n->sent >= n->out.len) {
		if (n->end)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (ndjson_page(n)) {
			log_msg(LOG_WARN, n->run_id,
			        "api: the NDJSON export stopped: cannot read "
			        "the journal");
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
	}
	len = n->out.len - n->sent;
	if (len > max)
		len = max;
	memcpy(buf, n->out.data + n->sent, len);
	n->sent += len;
	return (ssize_t)len;
}

static void
h_ids_ndjson(struct call *c)
{
	struct ndjson_stream *n;
	const enum drift_kind *kind;
	enum drift_kind dk;
	int64_t id;

	if (!api_run_id(c, &id) || !api_query_kind(c, &kind, &dk) || !run_get(c, NULL, id))
		return;
	n = calloc(1, sizeof(*n));
	if (n == NULL) {
		reply_error(c, 500, "out of memory");
		return;
	}
	n->by_kind = kind != NULL;
	if (kind)
		n->kind = *kind;
	n->api = c->api;
	n->run_id = id;
	c->reply->status = 200;
	c->reply->content_type = "application/x-ndjson";
	c->reply->stream = ndjson_read;
	c->reply->stream_free = ndjson_free;
	c->reply->stream_ctx = n;
}

/* ---- drift across runs ------------------------------------------------- */

static void
h_drift(struct call *c)
{
	const char *after = http_query(c, "after");
	enum drift_history_state hs;
	const enum drift_kind *kind;
	enum drift_kind dk;
	const char *mirror;
	int64_t limit;
	cJSON *rows = NULL, *o, *last;
	rcode rc;

	if (!api_query_int(c, "limit", 1, 10000, 100, &limit) || !api_query_kind(c, &kind, &dk) ||
	    (c->mirror == NULL && !query_mirror(c)) || !api_query_state(c, &hs))
		return;
	mirror = c->mirror ? c->mirror->cfg->name : NULL;
	pthread_mutex_lock(&c->api->store_mu);
	rc = report_drift(c->api->store, &rows, mirror, hs, kind, after, limit);
	pthread_mutex_unlock(&c->api->store_mu);
	if (rc) {
		reply_error(c, 500, "cannot read the journal");
		return;
	}
	o = ok_object();
	if (mirror)
		cJSON_AddStringToObject(o, "mirror", mirror);
	cJSON_AddStringToObject(o, "state", report_history_state_name(hs));
	/* a page holds every row of its last id: the next starts after it */
	last = cJSON_GetArrayItem(rows, cJSON_GetArraySize(rows) - 1);
	if (cJSON_GetArraySize(rows) >= limit && last)
		cJSON_AddStringToObject(o, "nextAfter",
		                        cJSON_GetStringValue(cJSON_GetObjectItem(last, "id")));
	else
		cJSON_AddNullToObject(o, "nextAfter");
	cJSON_AddItemToObject(o, "drift", rows);
	reply_json(c, 200, o);
}

static void
h_errors(struct call *c)
{
	int64_t id, limit;
	cJSON *errors = NULL, *o;
	rcode rc;

	if (!api_run_id(c, &id) || !api_query_int(c, "limit", 1, 1000, 100, &limit) ||
	    !run_get(c, NULL, id))
		return;
	pthread_mutex_lock(&c->api->store_mu);
	rc = report_errors(c->api->store, &errors, id, limit);
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

/* The mirror a run of the journal belongs to, or NULL (a mirror no longer
 * configured). */
static struct api_mirror *
mirror_of_run(struct api *a, const struct store_run *r)
{
	for (size_t i = 0; i < a->n_mirrors; i++)
		if (strcmp(a->mirrors[i].cfg->name, r->mirror) == 0)
			return &a->mirrors[i];
	return NULL;
}

/* A run no scheduler of this service runs: cancelled in the journal (read
 * again under the lock: it may have ended since), unless a process runs it. */
static void
cancel_in_journal(struct call *c, int64_t id)
{
	struct store_run *r = NULL;
	struct rerror err = {0};
	rcode rc;

	pthread_mutex_lock(&c->api->store_mu);
	rc = store_run_get(c->api->store, &r, id);
	if (rc == RC_OK && !store_run_status_unfinished(r->status)) {
		reply_error(c, 409, "run %lld is %s", (long long)id,
		            store_run_status_name(r->status));
	} else if (rc == RC_OK) {
		rc = store_run_cancel(c->api->store, id, r->mirror, "cancelled through the API",
		                      &err);
		if (rc == RC_ERR_BUSY) {
			reply_error(c, 409, "run %lld is running in another process",
			            (long long)id);
		} else if (rc) {
			reply_error(c, 500, "cannot write the journal");
		} else {
			cJSON *o = ok_object();
			cJSON_AddNumberToObject(o, "runId", (double)id);
			cJSON_AddStringToObject(o, "message", "cancelled");
			reply_json(c, 200, o);
		}
	} else if (rc == RC_ERR_NOTFOUND) {
		reply_error(c, 404, "no run %lld", (long long)id);
	} else {
		reply_error(c, 500, "cannot read the journal");
	}
	pthread_mutex_unlock(&c->api->store_mu);
	store_run_free(r);
}

static void
h_cancel(struct call *c)
{
	struct store_run *r = NULL;
	struct api_mirror *m;
	int64_t id;

	if (!api_run_id(c, &id) || !run_get(c, &r, id))
		return;
	m = mirror_of_run(c->api, r);
	if (!store_run_status_unfinished(r->status)) {
		/* the journal has its end already: a scheduler that has not yet
		 * cleared its active run must not answer 202 for it */
		reply_error(c, 409, "run %lld is %s", (long long)id,
		            store_run_status_name(r->status));
	} else if (m && (scheduler_cancel(m->sched, id) ||
	                 /* a partition of the split run in progress: the split
	                  * (its partition 0's run) is what the scheduler runs */
	                 (r->split_of > 0 && r->split_of != id &&
	                  scheduler_cancel(m->sched, r->split_of)))) {
		log_msg(LOG_INFO, id, "api: cancel requested");
		cJSON *o = ok_object();
		cJSON_AddNumberToObject(o, "runId", (double)id);
		cJSON_AddStringToObject(o, "message", "cancelling after the in-flight batch");
		reply_json(c, 202, o);
	} else {
		/* a resume waiting for a slot leaves the queue now (the mirror is
		 * free at once), and the run is cancelled in the journal */
		if (m && scheduler_unqueue(m->sched, id))
			log_msg(LOG_INFO, id, "api: cancelled while waiting for a slot");
		cancel_in_journal(c, id);
	}
	store_run_free(r);
}

struct metrics_ctx {
	struct buf *out;
	char last[96];
	rcode rc; /* the first failure to append (out of memory) */
};

static void
metric(void *ctx, const char *name, const char *labels, double value)
{
	struct metrics_ctx *m = ctx;
	static const struct {
		const char *name, *type, *help;
	} families[] = {
	    {"reconciler_runs_total", "counter",
	     "Runs that ended, by status (completed, failed, cancelled, held)."},
	    {"reconciler_runs", "gauge", "Runs not ended, by status (running, interrupted)."},
	    {"reconciler_drift_found_total", "counter", "Drifted documents found, by kind."},
	    {"reconciler_documents_repaired_total", "counter",
	     "Documents indexed (index) or deleted (delete) by repairs."},
	    {"reconciler_documents_reindexed_total", "counter",
	     "Documents written by full re-indexes (not drift: counted apart from repairs)."},
	    {"reconciler_documents_failed_total", "counter", "Documents OpenSearch rejected."},
	    {"reconciler_documents_skipped_newer_total", "counter",
	     "Writes OpenSearch refused because its copy holds a newer external version."},
	    {"reconciler_errors_total", "counter", "Errors in the journal."},
	    {"reconciler_ranges_summarized_total", "counter",
	     "Key ranges proven in sync by their summaries (RECONCILE_VERIFY)."},
	    {"reconciler_ranges_descended_total", "counter",
	     "Key ranges streamed and merged because their summaries differed."},
	    {"reconciler_last_run_timestamp_seconds", "gauge", "Start of the last finished run."},
	    {"reconciler_last_run_duration_seconds", "gauge", "Duration of the last finished run."},
	    {"reconciler_last_success_timestamp_seconds", "gauge",
	     "End of the last run that completed."},
	    {"reconciler_drift_open", "gauge",
	     "Drifted ids open now (seen by the latest pass or since, not repaired), by kind."},
	    {"reconciler_drift_recurring", "gauge",
	     "Recurring drifted ids (3 runs in a row, or back after a repair) the latest pass or "
	     "one since saw."},
	    {"reconciler_documents", "gauge", "Documents counted on each side by the last run."},
	    {"reconciler_kept_copies", "gauge",
	     "Index copies without a MongoDB document that OPENSEARCH_KEEP_QUERY kept, by the "
	     "last check or dry run that ended."},
	    {"reconciler_run_active", "gauge", "1 while a run is in progress."},
	    {"reconciler_schedule_enabled", "gauge", "1 while the schedule is on."},
	    {"reconciler_schedule_interval_seconds", "gauge",
	     "Time between scheduled runs (also while the schedule is off)."},
	    {"reconciler_current_run_compared", "gauge", "Ids compared so far by the active run."},
	    {"reconciler_stream_up", "gauge",
	     "1 while the mirror's live sync runs in this service (0: stopped or failed)."},
	    {"reconciler_stream_lag_seconds", "gauge",
	     "Seconds since the cluster time of the oldest change the stream read and did not "
	     "apply yet (0 caught up)."},
	    {"reconciler_stream_events_total", "counter",
	     "Change events written to the index by live sync, by outcome (applied, failed)."},
	    {"reconciler_stream_gaps_total", "counter",
	     "Gaps: times the stream lost its place and went on from now (closed by a catch-up)."},
	    {"reconciler_stream_gaps_open", "gauge", "Gaps no catch-up run has closed yet."},
	};

	if (strcmp(m->last, name) != 0) {
		for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
			if (strcmp(families[i].name, name) == 0)
				if (m->rc == RC_OK)
					m->rc =
					    buf_printf(m->out, "# HELP %s %s\n# TYPE %s %s\n", name,
					               families[i].help, name, families[i].type);
		snprintf(m->last, sizeof(m->last), "%s", name);
	}
	if (m->rc)
		return;
	if (*labels)
		m->rc = buf_printf(m->out, "%s{%s} %.17g\n", name, labels, value);
	else
		m->rc = buf_printf(m->out, "%s %.17g\n", name, value);
}

/* One mirror's series of live sync's family (0 up, 1 lag, 2-3 events
 * applied and failed, 4 gaps, 5 gaps open): for a mirror whose stream runs
 * or ran here, or whose journal has a stream (a `reconciler sync` of its
 * own); up and lag only for the first. */
static void
stream_series(struct metrics_ctx *m, int family, const char *labels, const struct stream_status *ss,
              const struct store_stream *j)
{
	bool here = ss->state != STREAM_DISABLED;
	char l2[200];

	if (!here && !(j->token || j->batches || j->gaps || j->events_applied || j->events_failed))
		return;
	switch (family) {
	case 0:
		if (here)
			metric(m, "reconciler_stream_up", labels,
			       ss->state == STREAM_RUNNING ? 1 : 0);
		break;
	case 1:
		if (here && ss->lag_s >= 0)
			metric(m, "reconciler_stream_lag_seconds", labels, (double)ss->lag_s);
		break;
	case 2:
	case 3:
		snprintf(l2, sizeof(l2), "%s%soutcome=\"%s\"", labels, *labels ? "," : "",
		         family == 2 ? "applied" : "failed");
		metric(m, "reconciler_stream_events_total", l2,
		       (double)(family == 2 ? j->events_applied : j->events_failed));
		break;
	case 4:
		metric(m, "reconciler_stream_gaps_total", labels, (double)j->gaps);
		break;
	default:
		metric(m, "reconciler_stream_gaps_open", labels, (double)j->open_gaps);
		break;
	}
}

/* Live sync's series, family by family (stream_series). */
static RC_MUST_CHECK rcode
stream_metrics(struct api *a, struct metrics_ctx *m)
{
	struct stream_status *ss = calloc(a->n_mirrors ? a->n_mirrors : 1, sizeof(*ss));
	struct store_stream *js = calloc(a->n_mirrors ? a->n_mirrors : 1, sizeof(*js));
	char labels[160];
	rcode rc = ss && js ? RC_OK : RC_ERR_NOMEM;

	pthread_mutex_lock(&a->store_mu);
	for (size_t i = 0; rc == RC_OK && i < a->n_mirrors; i++)
		rc = store_stream_get(a->store, &js[i], a->mirrors[i].cfg->name);
	pthread_mutex_unlock(&a->store_mu);
	for (size_t i = 0; rc == RC_OK && i < a->n_mirrors; i++)
		stream_tailer_status(a->mirrors[i].stream, &ss[i]);
	for (int family = 0; rc == RC_OK && family < 6; family++)
		for (size_t i = 0; i < a->n_mirrors; i++) {
			if (a->labelled)
				snprintf(labels, sizeof(labels), "mirror=\"%s\"",
				         a->mirrors[i].cfg->name);
			else
				labels[0] = '\0';
			stream_series(m, family, labels, &ss[i], &js[i]);
		}
	for (size_t i = 0; js && i < a->n_mirrors; i++)
		store_stream_clear(&js[i]);
	free(ss);
	free(js);
	return rc == RC_ERR_NOMEM ? rc : rc ? RC_ERR_STORE : RC_OK;
}

static void
h_metrics(struct call *c)
{
	struct api *a = c->api;
	struct metrics_ctx m = {.out = &c->reply->text};
	struct scheduler_status *st = calloc(a->n_mirrors, sizeof(*st));
	const char **names = calloc(a->n_mirrors, sizeof(*names));
	char labels[96];
	rcode rc = st && names ? RC_OK : RC_ERR_NOMEM;

	for (size_t i = 0; rc == RC_OK && i < a->n_mirrors; i++)
		names[i] = a->mirrors[i].cfg->name;
	if (rc == RC_OK) {
		pthread_mutex_lock(&a->store_mu);
		rc = report_metrics(a->store, names, a->n_mirrors, a->labelled, metric, &m);
		pthread_mutex_unlock(&a->store_mu);
	}
	if (rc) {
		free(st);
		free(names);
		buf_free(&c->reply->text);
		reply_error(c, 500, "cannot read the journal");
		return;
	}
	for (size_t i = 0; i < a->n_mirrors; i++)
		scheduler_status(a->mirrors[i].sched, &st[i]);
	/* family by family, a series per mirror; unlabelled there is one mirror */
	for (int family = 0; family < 4; family++)
		for (size_t i = 0; i < a->n_mirrors; i++) {
			if (a->labelled)
				snprintf(labels, sizeof(labels), "mirror=\"%s\"", names[i]);
			else
				labels[0] = '\0';
			if (family == 0)
				metric(&m, "reconciler_run_active", labels,
				       st[i].progress.active ? 1 : 0);
			else if (family == 1)
				metric(&m, "reconciler_schedule_enabled", labels,
				       st[i].enabled ? 1 : 0);
			else if (family == 2)
				metric(&m, "reconciler_schedule_interval_seconds", labels,
				       (double)st[i].interval_ms / 1000.0);
			else
				metric(&m, "reconciler_current_run_compared", labels,
				       st[i].progress.active ? (double)st[i].progress.compared : 0);
		}
	free(st);
	free(names);
	if ((rc = stream_metrics(a, &m)) == RC_ERR_STORE) {
		buf_free(&c->reply->text);
		reply_error(c, 500, "cannot read the journal");
		return;
	}
	if (m.rc || rc) {
		buf_free(&c->reply->text);
		reply_error(c, 500, "out of memory writing the metrics");
		return;
	}
	c->reply->status = 200;
	c->reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- one document ------------------------------------------------------- */

static void
h_doc_diff(struct call *c)
{
	struct buf out = {0};
	struct rerror err = {0};
	enum docdiff_state state;
	const char *bad = c->doc_error ? c->doc_error : docdiff_bad_id(c->doc_id, c->doc_id_len);
	rcode rc;

	if (bad) {
		reply_error(c, 400, "%s", bad);
		return;
	}
	rc = buf_puts(&out, "{\"success\":true,\"diff\":");
	if (rc == RC_OK)
		rc = docdiff_json(&out, &state, c->mirror->cfg, c->doc_id, &err);
	if (rc == RC_OK)
		rc = buf_puts(&out, "}");
	if (rc == RC_OK) {
		/* as built, not through cJSON: numbers past a double's precision
		 * stay exact */
		buf_free(&c->reply->text);
		c->reply->text = out;
		c->reply->content_type = "application/json";
		c->reply->status = 200;
		return;
	}
	buf_free(&out);
	if (rc == RC_ERR_NOTFOUND)
		reply_error(c, 404, "%s", err.message);
	else if (rc == RC_ERR_INVALID)
		reply_error(c, 400, "%s", err.message);
	else if (rc == RC_ERR_CONFIG)
		reply_error(c, 500, "the mirror's transform does not load: %s", err.message);
	else if (rc == RC_ERR_NOMEM)
		reply_error(c, 500, "out of memory");
	else
		reply_error(c, 502, "%s", err.message);
}

/* The members some route reads from a body (http.c refuses a body with a
 * NUL in one, or one given twice). */
const char *const api_body_members[] = {"wait",       "dryRun", "allowDeletes", "ids", "since",
                                        "intervalMs", NULL};

/* Each POST route's members (a route's body is read against its list). */
static const char *const check_members[] = {"wait", "dryRun", "allowDeletes", "ids", "since", NULL};
static const char *const full_members[] = {"wait", "dryRun", NULL};
static const char *const start_members[] = {"intervalMs", NULL};

const struct route api_routes[] = {
    {"GET", "/", h_root, "service, version and endpoints", NULL},
    {"GET", "/api/health", h_health, "MongoDB, OpenSearch and journal, each with ok and latency",
     NULL},
    {"GET", "/api/health/live", h_live, "liveness probe", NULL},
    {"GET", "/api/health/ready", h_ready, "readiness probe: the journal answers", NULL},
    {"POST", "/api/reconciliation/start", h_start,
     "start the schedule ({\"intervalMs\": N}; every mirror, or ?mirror=)", start_members},
    {"POST", "/api/reconciliation/stop", h_stop, "stop the schedule (every mirror, or ?mirror=)",
     NULL},
    {"GET", "/api/reconciliation/status", h_status,
     "totals from the journal and the active run (several mirrors: summed, and each)", NULL},
    {"POST", "/api/reconciliation/check", h_check,
     "run now ({\"wait\": true, \"dryRun\": false, \"allowDeletes\": false, \"ids\": [...], "
     "\"since\": TIME}; every mirror, or ?mirror=); 409 while "
     "a run is active",
     check_members},
    {"GET", "/api/reconciliation/runs", h_runs, "run history (?limit=&before=&status=&mirror=)",
     NULL},
    {"GET", "/api/reconciliation/runs/{id}", h_run, "one run's report", NULL},
    {"GET", "/api/reconciliation/runs/{id}/ids", h_ids,
     "drift ids of a run (?kind=missing|stale|orphan|duplicate|conflict&limit=&after=)", NULL},
    {"GET", "/api/reconciliation/runs/{id}/ids.ndjson", h_ids_ndjson,
     "every drift row of a run as NDJSON, streamed (?kind=)", NULL},
    {"GET", "/api/reconciliation/runs/{id}/errors", h_errors, "errors of a run (?limit=)", NULL},
    {"GET", "/api/reconciliation/drift", h_drift,
     "drift across runs: each id's history (?state=open|recurring|all&kind=&limit=&after="
     "&mirror=)",
     NULL},
    {"POST", "/api/reconciliation/runs/{id}/cancel", h_cancel, "cancel a run", NULL},
    {"POST", "/api/sync/full", h_full,
     "start a full, resumable re-index ({\"wait\": false}; every mirror, or ?mirror=)",
     full_members},
    {"GET", "/api/mirrors", h_mirrors, "the mirrors, each with its status and newest run", NULL},
    {"GET", "/api/mirrors/{m}", h_mirror, "one mirror's status and newest run", NULL},
    {"POST", "/api/mirrors/{m}/check", h_check,
     "run the mirror now ({\"wait\": true, \"dryRun\": false, \"allowDeletes\": false, "
     "\"ids\": [...], \"since\": TIME}); 409 while it has a run",
     check_members},
    {"POST", "/api/mirrors/{m}/full", h_full, "a full re-index of the mirror ({\"wait\": false})",
     full_members},
    {"GET", "/api/mirrors/{m}/runs", h_runs, "the mirror's runs (?limit=&before=&status=)", NULL},
    {"GET", "/api/mirrors/{m}/runs/{id}", h_run, "one run of the mirror", NULL},
    {"GET", "/api/mirrors/{m}/runs/{id}/ids", h_ids, "drift ids of a run of the mirror", NULL},
    {"GET", "/api/mirrors/{m}/runs/{id}/ids.ndjson", h_ids_ndjson,
     "every drift row of a run of the mirror as NDJSON, streamed (?kind=)", NULL},
    {"GET", "/api/mirrors/{m}/runs/{id}/errors", h_errors, "errors of a run of the mirror", NULL},
    {"GET", "/api/mirrors/{m}/drift", h_drift,
     "the mirror's drift across runs (?state=open|recurring|all&kind=&limit=&after=)", NULL},
    {"POST", "/api/mirrors/{m}/runs/{id}/cancel", h_cancel, "cancel a run of the mirror", NULL},
    {"GET", "/api/mirrors/{m}/docs/{doc}/diff", h_doc_diff,
     "one document: what a repair would write, the index copy, and a JSON Patch between them "
     "({doc}: the canonical id, percent-encoded)",
     NULL},
    {"GET", "/api/mirrors/{m}/stream", h_stream,
     "the mirror's live sync: state, lag, the last cluster time, events, gaps and their "
     "catch-up runs",
     NULL},
    {"POST", "/api/mirrors/{m}/stream/start", h_stream_start,
     "start tailing the mirror's change stream (until restart); 409 while it runs or another sync "
     "tails it",
     NULL},
    {"POST", "/api/mirrors/{m}/stream/stop", h_stream_stop,
     "stop the mirror's live sync (its batch journaled first); 409 when it does not run", NULL},
    {"GET", "/metrics", h_metrics, "Prometheus metrics (mirror=\"...\" on every series)", NULL},
    {"GET", "/ui", h_ui, "the dashboard page (also GET / when Accept prefers text/html)", NULL},
    {"GET", "/ui/{id}", h_ui, "a file of the dashboard page (app.js, app.css, icon.svg)", NULL},
};
const size_t api_n_routes = sizeof(api_routes) / sizeof(api_routes[0]);
