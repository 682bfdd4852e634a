/*
 * api.h: what the HTTP side shares inside the binary (not a public API):
 * the service's state, one request's call, the route table's shape and the
 * reply helpers. Three files use it, each one job:
 *   api.c    the routes and their handlers (one table: method, path, help);
 *   http.c   libmicrohttpd plumbing: bodies, limits, dispatch, the token,
 *            replies on the wire;
 *   serve.c  `reconciler serve`: journal, schedulers, the daemon, signals,
 *            shutdown.
 */
#ifndef RECONCILER_API_H
#define RECONCILER_API_H

#include "config.h"
#include "probe.h"
#include "ui.h"
#include "util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

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

struct reply {
	int status;
	cJSON *json;
	struct buf text; /* used instead of json when content_type is set */
	const char *content_type;
	const struct ui_file *file; /* a dashboard file (ui.c), instead of json and text */
	bool vary_accept;           /* the answer depends on Accept (GET /) */
	char allow[64];
	/* a body made while it is sent (with content_type, instead of text):
	 * libmicrohttpd calls stream for each block and stream_free with
	 * stream_ctx once the response is done (or could not be made) */
	MHD_ContentReaderCallback stream;
	MHD_ContentReaderFreeCallback stream_free;
	void *stream_ctx;
};

struct call {
	struct api *api;
	struct MHD_Connection *conn;
	const char *method;
	const char *path;
	const char *id_segment; /* the {id} of the path, if any */
	const char *doc_id;     /* the {doc} of the path, percent-decoded (may hold NULs) */
	size_t doc_id_len;
	const char *doc_error;     /* why {doc} could not be decoded, or NULL */
	struct api_mirror *mirror; /* {m} of the path or ?mirror=; NULL: every mirror */
	cJSON *body;               /* parsed JSON object (POST), never NULL for POST */
	struct reply *reply;
};

typedef void (*handler_fn)(struct call *c);

struct route {
	const char *method;
	const char *pattern;
	handler_fn fn;
	const char *help;
};

/* The route table (api.c): dispatch, 404/405 answers and GET / read it. */
extern const struct route api_routes[];
extern const size_t api_n_routes;

/* Replies (http.c). reply_json takes json over; reply_error masks secrets. */
void reply_json(struct call *c, int status, cJSON *json);
void reply_error(struct call *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
cJSON *ok_object(void); /* {"success": true}, the caller adds to it */

/* The mirror called name into c->mirror; false (and a 404 listing the
 * names) when there is none (api.c). */
bool mirror_named(struct call *c, const char *name);

/* libmicrohttpd callbacks (http.c); cls is the struct api. */
enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **con_cls);
void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                       enum MHD_RequestTerminationCode toe);
/* MHD_OPTION_URI_LOG_CALLBACK: keeps the request's URI as it came, before
 * libmicrohttpd decodes it (a document id may hold an encoded "/"). */
void *http_on_uri(void *cls, const char *uri, struct MHD_Connection *conn);

/* Percent-decoding of paths and query values (MHD_OPTION_UNESCAPE_CALLBACK):
 * as libmicrohttpd's own, but "%00" stays as it is, so a NUL can never cut a
 * path or a value short ("/api/mirrors/ads%00" names no mirror, not "ads"). */
size_t http_unescape(void *cls, struct MHD_Connection *conn, char *s);

int serve_main(const struct config_set *set);

#endif
