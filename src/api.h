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

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct scheduler;
struct scheduler_slots;
struct store;
struct mongo;
struct opensearch;

/* One mirror of the service: its settings and the worker that runs it. */
struct api_mirror {
	const struct config *cfg;
	struct scheduler *sched;
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

#endif
