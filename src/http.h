/*
 * http.h: the HTTP plumbing under the API (http.c, libmicrohttpd): one
 * request's call, its reply, the shape of a route, and the reply helpers.
 *
 * Calls go one way: serve.c hands http.c the route table and a mirror
 * resolver (struct http_server); http.c dispatches to the handlers (api.c),
 * which answer through the reply helpers here. http.c knows nothing of
 * api.c: a handler's context (struct api) is opaque to it.
 */
#ifndef RECONCILER_HTTP_H
#define RECONCILER_HTTP_H

#include "error.h"
#include "ui.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

struct api;        /* the handlers' context (api.h); opaque here */
struct api_mirror; /* one mirror of it (api.h); opaque here */

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
	struct MHD_Connection *conn; /* NULL in unit tests: no query, no headers */
	const char *method;
	const char *path;
	const char *id_segment; /* the {id} of the path, if any */
	const char *doc_id;     /* the {doc} of the path, percent-decoded (may hold NULs) */
	size_t doc_id_len;
	const char *doc_error;     /* why {doc} could not be decoded, or NULL */
	struct api_mirror *mirror; /* {m} of the path or ?mirror=; NULL: every mirror */
	cJSON *body;               /* parsed JSON object (POST), never NULL for POST */
	struct reply *reply;
	/* the query's parameters, name then value, NULL-terminated: read instead
	 * of the connection's when conn is NULL (unit tests) */
	const char *const *args;
};

typedef void (*handler_fn)(struct call *c);

struct route {
	const char *method;
	const char *pattern;
	handler_fn fn;
	const char *help;
	/* the body members the route reads, NULL-terminated; NULL: none. Any
	 * other member is a 400 naming it: a misspelt "allowDelete" must not
	 * run a check without the option the client meant */
	const char *const *members;
};

/* What serve.c hands the libmicrohttpd callbacks (their cls). */
struct http_server {
	const struct route *routes;
	size_t n_routes;
	const char *token; /* API_TOKEN; "" when there is none */
	bool token_read;   /* API_TOKEN_READ: GET routes need it too */
	/* the body members some route reads: a NUL in one or one given twice
	 * is refused (NULL-terminated) */
	const char *const *body_members;
	struct api *api; /* each call's c->api */
	/* the {m} segment of a path into c->mirror; false (after replying)
	 * when it names no mirror */
	bool (*mirror_named)(struct call *c, const char *name);
};

/* Replies. reply_json takes json over; reply_error masks secrets. */
void reply_json(struct call *c, int status, cJSON *json);
void reply_error(struct call *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
cJSON *ok_object(void); /* {"success": true}, the caller adds to it */

/* A query parameter of the call (NULL when not given), as libmicrohttpd
 * decoded it (http_unescape). */
const char *http_query(const struct call *c, const char *name);

/* libmicrohttpd callbacks; cls is the struct http_server. */
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

/* ---- the pure parts of a request, exposed for the unit tests ---------- */

/* A {name} segment of a path. */
struct http_segment {
	const char *at;
	size_t len;
};
/* Whether path has the shape of pattern; seg[0] gets the {m} segment,
 * seg[1] the {id} one, seg[2] the {doc} one. */
bool http_path_matches(const char *pattern, const char *path, struct http_segment seg[3]);
/* Percent-decodes s (len bytes) into *out (malloc'd, NUL-terminated, may
 * hold NULs: *out_len says how long). False on a bad escape (*out is then
 * set, the caller frees it) or out of memory (*out NULL). */
bool http_percent_decode(const char *s, size_t len, char **out, size_t *out_len);
/* Whether an Authorization header carries the bearer token (constant time). */
bool http_token_ok(const char *header, const char *token);
/* What makes a JSON body doubtful though cJSON took it, or NULL: a member a
 * route reads (one of members, NULL-terminated) given twice, or a NUL
 * (\u0000) in its name or in a string of its value. */
const char *http_body_doubtful(const char *text, size_t len, const char *const *members);
/* The first member of body (an object) not among members (NULL-terminated,
 * or NULL for none), or NULL when every one is known. */
const char *http_body_unknown(const cJSON *body, const char *const *members);
/* The first name given twice among names (n of them; sorted in place), or
 * NULL. */
const char *http_name_twice(const char **names, size_t n);

#endif
