/*
 * http.c: the HTTP plumbing under the API (libmicrohttpd).
 *
 * - Each connection has its own thread (MHD_USE_THREAD_PER_CONNECTION).
 * - Bodies over 64 KiB are refused with 413 before they are read; a body
 *   must be a JSON object; every error is {"success": false, "error": ...}
 *   with secrets masked.
 * - The route table drives dispatch: a path that matches no pattern is
 *   404, a pattern matched with another method 405 with Allow. serve.c
 *   hands it over (struct http_server) with the mirror resolver and the
 *   body members the routes read, so http.c never calls api.c.
 *   A {id} or {m} segment too long for its buffer never becomes a valid one.
 *   Routes with a {doc} segment (a document id: any text, "/" included)
 *   are matched against the URI as it came, before libmicrohttpd decodes
 *   it, and the segment is then percent-decoded alone.
 * - A handler may stream its body (reply->stream: an export of any size
 *   in bounded memory); libmicrohttpd pulls it block by block.
 * - With API_TOKEN set, POST routes need "Authorization: Bearer <token>"
 *   (API_TOKEN_READ=true: GET routes too, but the liveness and readiness
 *   probes and the dashboard's page and files, ui_is_page), compared in
 *   constant time.
 * - A query parameter given twice is a 400 naming it (query_once), like a
 *   body member given twice.
 */
#include "http.h"
#include "jtree.h"
#include "log.h"
#include "ui.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_BODY (64 * 1024)

static int
hex_digit(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

size_t
http_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	char *out = s;

	(void)cls;
	(void)conn;
	for (const char *in = s; *in;) {
		int hi, lo;
		if (in[0] == '%' && (hi = hex_digit(in[1])) >= 0 && (lo = hex_digit(in[2])) >= 0 &&
		    (hi | lo) != 0) {
			*out++ = (char)(hi * 16 + lo);
			in += 3;
		} else {
			*out++ = *in++;
		}
	}
	*out = '\0';
	return (size_t)(out - s);
}

struct request {
	char *raw;    /* the URI as it came (http_on_uri), or NULL */
	bool started; /* the first call of the handler was made */
	struct buf body;
	bool too_large;
	bool answered; /* a response is queued already (413 before the body) */
};

/* ---- replies ---------------------------------------------------------- */

void
reply_json(struct call *c, int status, cJSON *json)
{
	cJSON_Delete(c->reply->json);
	c->reply->status = status;
	c->reply->json = json;
}

void
reply_error(struct call *c, int status, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	cJSON *o = cJSON_CreateObject();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	util_mask_secrets(msg, sizeof(msg));
	util_utf8_clean(msg);
	cJSON_AddFalseToObject(o, "success");
	cJSON_AddStringToObject(o, "error", msg);
	reply_json(c, status, o);
}

cJSON *
ok_object(void)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddTrueToObject(o, "success");
	return o;
}

bool
http_path_matches(const char *pattern, const char *path, struct http_segment seg[3])
{
	const char *p = pattern, *q = path;

	while (*p && *q) {
		int which = strncmp(p, "{m}", 3) == 0     ? 0
		            : strncmp(p, "{id}", 4) == 0  ? 1
		            : strncmp(p, "{doc}", 5) == 0 ? 2
		                                          : -1;
		if (which >= 0) {
			size_t n = strcspn(q, "/");
			if (n == 0)
				return false;
			seg[which].at = q;
			seg[which].len = n;
			p += which == 0 ? 3 : which == 1 ? 4 : 5;
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

bool
http_percent_decode(const char *s, size_t len, char **out, size_t *out_len)
{
	char *d = malloc(len + 1);
	size_t n = 0;

	*out = d;
	*out_len = 0;
	if (d == NULL)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%') {
			d[n++] = s[i];
			continue;
		}
		int hi = i + 2 < len ? hex_digit(s[i + 1]) : -1;
		int lo = i + 2 < len ? hex_digit(s[i + 2]) : -1;
		if (hi < 0 || lo < 0) {
			d[n] = '\0';
			return false;
		}
		d[n++] = (char)(hi << 4 | lo);
		i += 2;
	}
	d[n] = '\0';
	*out_len = n;
	return true;
}

bool
http_token_ok(const char *header, const char *token)
{
	size_t tl = strlen(token), hl;
	unsigned char diff = 0;

	/* the scheme is case-insensitive (RFC 7235) */
	if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0)
		return false;
	header += 7;
	hl = strlen(header);
	diff |= (unsigned char)(hl != tl);
	for (size_t i = 0; i < tl; i++)
		diff |= (unsigned char)(token[i] ^ (i < hl ? header[i] : 0));
	return diff == 0;
}

/* Whether name[0..len) is one of members (jtree's strings are not
 * NUL-terminated: lengths throughout). */
static bool
body_member_known(const char *const *members, const char *name, size_t len)
{
	for (size_t i = 0; members[i]; i++)
		if (strlen(members[i]) == len && memcmp(name, members[i], len) == 0)
			return true;
	return false;
}

/* What makes a parsed body doubtful though cJSON took it, or NULL: a member
 * a route reads given twice (cJSON keeps both and a handler reads the
 * first: which one a client meant is not known), or a NUL (\u0000) in its
 * name or in a string of its value: cJSON's C strings end there, so
 * "ids\u0000x" would be read as ids and an id "a\u0000b" as "a". jtree
 * keeps each string's length, so the body is read again with it. */
const char *
http_body_doubtful(const char *text, size_t len, const char *const *members)
{
	struct jt *t = NULL;
	struct rerror err = {0};
	const char *why = NULL;

	if (jt_parse(&t, text, len, &err) != RC_OK)
		return NULL; /* cJSON took it: what jtree refuses is not ours to judge */
	for (size_t i = 0; t->type == JT_OBJECT && i < t->n && !why; i++) {
		const struct jt *m = &t->kids[i];
		const char *nul = m->key ? memchr(m->key, '\0', m->key_len) : NULL;
		/* the name as cJSON reads it: cut at a NUL */
		if (m->key == NULL ||
		    !body_member_known(members, m->key, nul ? (size_t)(nul - m->key) : m->key_len))
			continue; /* names nothing a route reads */
		if (nul)
			why = "a member's name holds a NUL character (\\u0000)";
		for (size_t j = i + 1; j < t->n && !why; j++)
			if (t->kids[j].key_len == m->key_len &&
			    memcmp(t->kids[j].key, m->key, m->key_len) == 0)
				why = "a member is given twice";
		const struct jt *v = m;
		for (size_t k = 0; !why && k < (m->type == JT_ARRAY ? m->n : 1); k++) {
			v = m->type == JT_ARRAY ? &m->kids[k] : m;
			if (v->type == JT_STRING && v->str_len && memchr(v->str, '\0', v->str_len))
				why = "a string holds a NUL character (\\u0000)";
		}
	}
	jt_free(t);
	return why;
}

const char *
http_body_unknown(const cJSON *body, const char *const *members)
{
	const cJSON *m;

	cJSON_ArrayForEach(m, body)
	{
		bool known = false;
		for (size_t i = 0; members && members[i] && !known; i++)
			known = strcmp(members[i], m->string) == 0;
		if (!known)
			return m->string;
	}
	return NULL;
}

/* A body member the route does not read is a 400 naming it and the ones
 * it reads (docs/API.md), before the handler runs. */
static bool
body_members_known(struct call *c, const struct route *hit)
{
	const char *bad = http_body_unknown(c->body, hit->members);
	char list[256] = "", name[65];
	size_t n = 0;

	if (bad == NULL)
		return true;
	/* the client's bytes, shown as printable ASCII: a reply stays valid UTF-8 */
	for (n = 0; bad[n] && n + 1 < sizeof(name); n++)
		name[n] = bad[n] >= 0x20 && bad[n] < 0x7f && bad[n] != '"' ? bad[n] : '?';
	name[n] = '\0';
	n = 0;
	for (size_t i = 0; hit->members && hit->members[i] && n < sizeof(list); i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "",
		                      hit->members[i]);
	if (*list)
		reply_error(c, 400, "unknown body member \"%s\" (%s %s takes: %s)", name,
		            hit->method, hit->pattern, list);
	else
		reply_error(c, 400, "unknown body member \"%s\" (%s %s takes no body members)",
		            name, hit->method, hit->pattern);
	return false;
}

/* The query's parameter names, gathered to find one given twice. */
struct query_names {
	const char **names;
	size_t n, cap;
	bool nomem;
};

static enum MHD_Result
query_name_add(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct query_names *q = cls;

	(void)kind;
	(void)value;
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;
		const char **p = realloc(q->names, cap * sizeof(*p));
		if (p == NULL) {
			q->nomem = true;
			return MHD_NO;
		}
		q->names = p;
		q->cap = cap;
	}
	q->names[q->n++] = key ? key : "";
	return MHD_YES;
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted, so a long query costs n log n. */
const char *
http_name_twice(const char **names, size_t n)
{
	if (n < 2)
		return NULL;
	qsort(names, n, sizeof(*names), cmp_name);
	for (size_t i = 1; i < n; i++)
		if (strcmp(names[i - 1], names[i]) == 0)
			return names[i];
	return NULL;
}

const char *
http_query(const struct call *c, const char *name)
{
	if (c->conn)
		return MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, name);
	for (size_t i = 0; c->args && c->args[i]; i += 2)
		if (strcmp(c->args[i], name) == 0)
			return c->args[i + 1];
	return NULL;
}

/* A query parameter given twice (?mirror=a&mirror=b) is a 400 naming it,
 * as a body member given twice is: which one a client meant is not known
 * (libmicrohttpd's lookup would quietly answer the first). false after
 * replying. */
static bool
query_once(struct call *c)
{
	struct query_names q = {0};
	const char *twice = NULL;
	bool ok = true;

	MHD_get_connection_values(c->conn, MHD_GET_ARGUMENT_KIND, query_name_add, &q);
	if (q.nomem) {
		reply_error(c, 500, "out of memory");
		ok = false;
	} else if ((twice = http_name_twice(q.names, q.n)) != NULL) {
		reply_error(c, 400,
		            "query parameter %.64s is given twice (which one was "
		            "meant is not known)",
		            twice);
		ok = false;
	}
	free(q.names);
	return ok;
}

/* A segment into buf: one too long for it must not be cut into a valid id
 * or name, so it becomes "-", which is neither. */
static void
segment_copy(char *buf, size_t len, struct http_segment seg)
{
	snprintf(buf, len, "%.*s", (int)(seg.len < len ? seg.len : 1),
	         seg.len < len ? seg.at : "-");
}

/* Where route_find puts the {id} and {m} segments. */
struct segments {
	char id[64], mirror[80];
};

/* The route of c->path (raw: the path as it came, which routes with a {doc}
 * match), or NULL with the methods allowed on the path in rep->allow.
 * *doc gets the decoded {doc} segment (the caller frees it), segs the {id}
 * and {m} ones. */
static const struct route *
route_find(const struct http_server *srv, struct call *c, const char *raw, char **doc,
           struct segments *segs)
{
	struct reply *rep = c->reply;
	bool is_get = !strcmp(c->method, "GET") || !strcmp(c->method, "HEAD");

	for (size_t i = 0; i < srv->n_routes; i++) {
		const struct route *r = &srv->routes[i];
		struct http_segment seg[3] = {{"", 0}, {"", 0}, {"", 0}};
		bool by_doc = strstr(r->pattern, "{doc}") != NULL;
		if (!http_path_matches(r->pattern, by_doc ? raw : c->path, seg))
			continue;
		if (by_doc && *doc == NULL) {
			if (!http_percent_decode(seg[2].at, seg[2].len, doc, &c->doc_id_len))
				c->doc_error =
				    *doc ? "the id in the path is not valid percent-encoding"
				         : "out of memory";
			c->doc_id = *doc ? *doc : "";
		}
		if (!strcmp(r->method, c->method) || (is_get && !strcmp(r->method, "GET"))) {
			segment_copy(segs->id, sizeof(segs->id), seg[1]);
			segment_copy(segs->mirror, sizeof(segs->mirror), seg[0]);
			return r;
		}
		size_t used = strlen(rep->allow);
		snprintf(rep->allow + used, sizeof(rep->allow) - used, "%s%s", used ? ", " : "",
		         r->method);
	}
	return NULL;
}

/* With API_TOKEN set, whether the call may go on: false after a 401. */
static bool
token_allows(const struct http_server *srv, struct call *c, const struct route *hit, bool is_get)
{
	if (*srv->token == '\0')
		return true;
	/* the dashboard's files hold no data: the page asks for the token */
	bool page = ui_is_page(hit->pattern,
	                       MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Accept"));
	bool needs = !is_get || (srv->token_read && !page && strcmp(c->path, "/api/health/live") &&
	                         strcmp(c->path, "/api/health/ready"));
	const char *auth = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Authorization");
	if (needs && !http_token_ok(auth, srv->token)) {
		reply_error(c, 401, "missing or wrong bearer token");
		return false;
	}
	return true;
}

/* A POST's body into c->body: an empty one is {}; false after a 400. */
static bool
body_parse(struct call *c, const struct request *rq, const char *const *members)
{
	const char *why;

	if (rq->body.len == 0) {
		c->body = cJSON_CreateObject();
		return true;
	}
	if (memchr(rq->body.data, '\0', rq->body.len)) {
		reply_error(c, 400, "malformed JSON body (a NUL byte)");
		return false;
	}
	/* the buffer's terminating NUL is in the length: with
	 * require_null_terminated, trailing junk is refused */
	c->body = cJSON_ParseWithLengthOpts(rq->body.data, rq->body.len + 1, NULL, true);
	if (c->body == NULL) {
		reply_error(c, 400, "malformed JSON body");
		return false;
	}
	if (!cJSON_IsObject(c->body)) {
		reply_error(c, 400, "the body must be a JSON object");
		goto refused;
	}
	if ((why = http_body_doubtful(rq->body.data, rq->body.len, members)) != NULL) {
		reply_error(c, 400, "malformed JSON body: %s", why);
		goto refused;
	}
	return true;
refused:
	cJSON_Delete(c->body);
	c->body = NULL;
	return false;
}

/* raw: the path as it came (routes with a {doc} match it); *doc gets
 * the decoded {doc} segment (the caller frees it). */
static void
dispatch_route(const struct http_server *srv, struct MHD_Connection *conn, const char *method,
               const char *url, const char *raw, char **doc, struct request *rq, struct reply *rep)
{
	struct call c = {.api = srv->api, .conn = conn, .method = method, .reply = rep};
	struct segments segs = {"", ""};
	char path[4096];
	const struct route *hit;
	bool is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	size_t n;

	if (strlen(url) >= sizeof(path)) {
		/* a truncated copy could match a route it does not name */
		reply_error(&c, 404, "no route %s (the path is over %zu bytes)", method,
		            sizeof(path) - 1);
		return;
	}
	snprintf(path, sizeof(path), "%s", url);
	n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	c.path = path;
	hit = route_find(srv, &c, raw, doc, &segs);
	if (hit == NULL) {
		if (*rep->allow)
			reply_error(&c, 405, "method %s not allowed on %s (allowed: %s)", method,
			            path, rep->allow);
		else
			reply_error(&c, 404, "no route %s %s", method, path);
		return;
	}
	c.id_segment = segs.id;
	if (!token_allows(srv, &c, hit, is_get) || !query_once(&c))
		return;
	if (strstr(hit->pattern, "{m}") && !srv->mirror_named(&c, segs.mirror))
		return;
	if (!is_get && !body_parse(&c, rq, srv->body_members))
		return;
	if (!is_get && !body_members_known(&c, hit)) {
		cJSON_Delete(c.body);
		return;
	}
	hit->fn(&c);
	cJSON_Delete(c.body);
}

static void
dispatch(const struct http_server *srv, struct MHD_Connection *conn, const char *method,
         const char *url, struct request *rq, struct reply *rep)
{
	const char *r0 = rq->raw ? rq->raw : url;
	size_t rn = strcspn(r0, "?#");
	char *raw, *doc = NULL;

	while (rn > 1 && r0[rn - 1] == '/')
		rn--;
	if ((raw = strndup(r0, rn)) == NULL) {
		struct call c = {.reply = rep};
		reply_error(&c, 500, "out of memory");
		return;
	}
	dispatch_route(srv, conn, method, url, raw, &doc, rq, rep);
	free(raw);
	free(doc);
}

static enum MHD_Result
send_reply(struct MHD_Connection *conn, struct reply *rep)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *text = NULL;

	if (rep->stream) {
		/* the size is unknown: HTTP/1.1 sends it chunked */
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, rep->stream,
		                                         rep->stream_ctx, rep->stream_free);
		if (resp == NULL && rep->stream_free)
			rep->stream_free(rep->stream_ctx);
		rep->stream = NULL; /* the response owns the context now */
	} else if (rep->file) {
		resp = MHD_create_response_from_buffer(rep->file->len, (void *)rep->file->data,
		                                       MHD_RESPMEM_PERSISTENT);
	} else if (rep->content_type) {
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
	                        rep->file           ? rep->file->content_type
	                        : rep->content_type ? rep->content_type
	                                            : "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	for (size_t i = 0; rep->file && ui_headers[i][0]; i++)
		MHD_add_response_header(resp, ui_headers[i][0], ui_headers[i][1]);
	if (rep->vary_accept)
		MHD_add_response_header(resp, "Vary", "Accept");
	if (rep->status == 405)
		MHD_add_response_header(resp, "Allow", rep->allow);
	ret = MHD_queue_response(conn, (unsigned)rep->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result
http_on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	const struct http_server *srv = cls;
	struct request *rq = *con_cls;
	struct reply rep = {.status = 500};
	enum MHD_Result ret;

	(void)version;
	if (rq == NULL || !rq->started) {
		const char *cl =
		    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		int64_t len = 0;
		if (rq == NULL && (rq = calloc(1, sizeof(*rq))) == NULL)
			return MHD_NO;
		rq->started = true;
		*con_cls = rq;
		if (cl && (util_parse_i64(cl, &len) || len > MAX_BODY)) {
			/* refuse before reading it */
			struct call c = {.reply = &rep};
			reply_error(&c, 413, "request body over %d bytes", MAX_BODY);
			log_msg(LOG_DEBUG, 0, "api: %s %s -> 413", method, url);
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
		dispatch(srv, conn, method, url, rq, &rep);
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

void *
http_on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct request *rq = calloc(1, sizeof(*rq));

	(void)cls;
	(void)conn;
	if (rq)
		rq->raw = strdup(uri); /* NULL: routes match the decoded path */
	return rq;
}

void
http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                  enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (rq) {
		buf_free(&rq->body);
		free(rq->raw);
		free(rq);
		*con_cls = NULL;
	}
}
