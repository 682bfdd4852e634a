/*
 * api.h: the HTTP API's routes and their handlers (api.c), and the service's
 * state they act on (serve.c fills it). Not a public API. The files of the
 * HTTP side, each one job, calls going one way (serve -> api -> http):
 *   serve.c  `reconciler serve`: journal, schedulers, the daemon, signals,
 *            shutdown; hands http.c the routes and the mirror resolver;
 *   api.c    the routes and their handlers (one table: method, path, help);
 *   http.c   libmicrohttpd plumbing (http.h): bodies, limits, dispatch, the
 *            token, replies on the wire. It never calls api.c.
 */
#ifndef RECONCILER_API_H
#define RECONCILER_API_H

#include "config.h"
#include "http.h"
#include "probe.h"
#include "report.h"
#include "store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct engine_opts;
struct scheduler;
struct scheduler_slots;
struct stream_tailer;

/* One mirror of the service: its settings, the worker that runs it and
 * its change stream's tailer. */
struct api_mirror {
	const struct config *cfg;
	struct scheduler *sched;
	struct stream_tailer *stream;    /* live sync (CHANGE_STREAM_ENABLED, the API) */
	struct probe_conns health_conns; /* kept open between health probes */
};

struct api {
	const struct config *cfg; /* the global settings: HTTP, token, journal */
	struct api_mirror *mirrors;
	size_t n_mirrors;
	bool labelled; /* metrics say mirror="..." (not when the only mirror is default) */
	struct scheduler_slots *slots;
	pthread_mutex_t store_mu;
	struct store *store;
	pthread_mutex_t health_mu; /* the mirrors' health_conns */
};

/* The route table (api.c): dispatch, 404/405 answers and GET / read it. */
extern const struct route api_routes[];
extern const size_t api_n_routes;
/* The body members the routes read, NULL-terminated (http.c's checks). */
extern const char *const api_body_members[];

/* The mirror called name into c->mirror; false (and a 404 listing the
 * names) when there is none: serve.c hands it to http.c for {m}. */
bool api_mirror_named(struct call *c, const char *name);

/* ---- the handlers' arguments: each parser returns false after replying
 * (400 naming what is allowed; 500 out of memory). They read only c->body,
 * c->id_segment and the query (http_query), so a unit test calls them with
 * a call of its own. */

/* A query parameter as an integer in [min, max] (dflt when not given). */
bool api_query_int(struct call *c, const char *name, int64_t min, int64_t max, int64_t dflt,
                   int64_t *out);
/* The {id} of the path as a run id (a positive integer). */
bool api_run_id(struct call *c, int64_t *id);
/* ?kind= (a drift kind) into *kind, *filter pointing to it (NULL: not given). */
bool api_query_kind(struct call *c, const enum drift_kind **filter, enum drift_kind *kind);
/* ?status= (a run status) into *status, *filter pointing to it (NULL: not given). */
bool api_query_status(struct call *c, const enum run_status **filter, enum run_status *status);
/* ?state= of the drift history (open when not given). */
bool api_query_state(struct call *c, enum drift_history_state *state);
/* A boolean member of the body (dflt when not given or null). */
bool api_body_bool(struct call *c, const char *name, bool dflt, bool *out);
/* "intervalMs" of the body, in RECONCILIATION_INTERVAL_MS's bounds (0: not given). */
bool api_body_interval(struct call *c, int64_t *interval);
/* A targeted check's body: "ids" (an array of id texts, borrowed from the
 * body into o->ids, which the caller frees) or "since" (an ISO 8601 time);
 * *kind becomes RUN_IDS when one is there. */
bool api_body_target(struct call *c, struct engine_opts *o, enum run_kind *kind);

#endif
