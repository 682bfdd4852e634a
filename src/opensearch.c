/*
 * opensearch.c: OpenSearch over libcurl, JSON through cJSON.
 *
 * - One curl easy handle per struct, reused so requests share a keep-alive
 *   connection. TLS verification is on unless OPENSEARCH_TLS_VERIFY=false
 *   (the system this replaces turned it off unconditionally).
 * - Authentication (apply_auth, auth_header: one place): basic auth, a
 *   bearer token, or a token file read again before a request whenever
 *   its file changed (inode, size or mtime: a rotated Kubernetes or
 *   identity-provider token is picked up without a restart); a client
 *   certificate and key for mutual TLS. A 401 names the settings in use
 *   (auth_hint), never their values.
 * - The id stream sorts on the keyword id field (or _id) and pages with
 *   search_after. The key is read from each hit's sort value (not asked
 *   for again as a doc value) and the version from doc values (a date as
 *   epoch_millis). Each hit also brings its _id, _index and _routing: _id
 *   and _routing are stored fields, so a page reads a stored-field block
 *   per hit. The pass needs them before anything acts (which copy of a key
 *   to keep, a copy under a foreign _id); pages without them were measured
 *   faster and not kept (docs/PERFORMANCE.md, "Lean index pages"). _source
 *   is off, except the version field itself when its doc values cannot be
 *   used (not a numeric, date or keyword type, doc_values false, a
 *   normalizer, ignore_above, or another type in another backing index);
 *   run.c decides, struct os_keys says.
 * - The copies' bodies are read only where a run needs them: _mget of the
 *   fields the transform writes for the stale-by-content comparison,
 *   GET _source of the one copy a routing move carries over, and a search
 *   for every copy of one id (docdiff.c). Also here: counts, the mapping of
 *   a field, an alias's backing indexes and their uuids, creating the
 *   index or mapping the id field as keyword, and _refresh.
 * - A mirror's OPENSEARCH_QUERY (the index documents that are its own, in
 *   an index shared with other collections) is a bool filter around every
 *   read that judges documents: the id stream, lookups by id, _count and
 *   the count of documents without the id field. Documents outside it are
 *   not seen, so they are never this mirror's orphans or duplicates.
 * - Every read that judges copies returns each hit's _seq_no and
 *   _primary_term, and the writes of a run are conditional on them
 *   (if_seq_no/if_primary_term, create for a missing document): a copy a
 *   live syncer wrote since is refused as a conflict, which is left to that
 *   newer write (skipped_newer), never failed (docs/ENGINE.md, "Concurrent
 *   writers").
 * - _bulk: each document's action (enum bulk_action: index, create, update
 *   or delete) and its metadata are spelled in one place (bulk_lines).
 *   Answers are read item by item: one rejected document fails alone, with
 *   OpenSearch's reason. A whole-request 429/502/503/504 or a lost
 *   connection, and documents turned away with 429 or by a concurrent
 *   dynamic-mapping update, are retried with exponential backoff and full
 *   jitter (SYNC_MAX_RETRIES); a request refused as a whole for what it
 *   holds (413, 400) is split until the document at fault stands alone.
 */
#include "opensearch.h"
#include "aws.h"
#include "doc.h"
#include "log.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

struct opensearch {
	CURL *curl;
	char *base;
	char *index_path; /* "/<escaped index>" */
	char *userpwd;
	char *bearer;           /* "Authorization: Bearer ..." header; NULL: none */
	char *token_file;       /* OPENSEARCH_BEARER_TOKEN_FILE; NULL: none */
	struct stat token_seen; /* the token file when bearer was read from it */
	const char *auth_hint;  /* the settings a 401 names */
	bool client_cert;       /* OPENSEARCH_CLIENT_CERT is set */
	char *aws_region;       /* OPENSEARCH_AWS_REGION: every request signed; NULL: off */
	int aws_service;        /* enum aws_service */
	int64_t max_retries;
	cJSON *query; /* OPENSEARCH_QUERY's clause; NULL: the whole index */
	char errbuf[CURL_ERROR_SIZE];
};

void
opensearch_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void
opensearch_global_cleanup(void)
{
	curl_global_cleanup();
}

const char *
opensearch_index(const struct opensearch *os)
{
	return os->index_path;
}

/* Zeroes and frees a string that held a credential. */
static void
free_secret(char *s)
{
	if (s) {
		memset(s, 0, strlen(s));
		free(s);
	}
}

/* os->bearer from a token: the whole header line. */
static RC_MUST_CHECK rcode
set_bearer(struct opensearch *os, const char *token, size_t len, struct rerror *err)
{
	static const char pfx[] = "Authorization: Bearer ";
	char *h = malloc(sizeof(pfx) + len);

	if (h == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	memcpy(h, pfx, sizeof(pfx) - 1);
	memcpy(h + sizeof(pfx) - 1, token, len);
	h[sizeof(pfx) - 1 + len] = '\0';
	free_secret(os->bearer);
	os->bearer = h;
	return RC_OK;
}

/* A token file's text (at most 64 KiB: a JWT is a few KiB). */
static RC_MUST_CHECK rcode
read_token_file(struct buf *out, const char *path, struct rerror *err)
{
	char chunk[4096];
	size_t n;
	rcode rc = RC_OK;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return rerror_set(err, RC_ERR_CONFIG, "OPENSEARCH_BEARER_TOKEN_FILE=%s: %s", path,
		                  strerror(errno));
	while (rc == RC_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		rc = out->len + n > 65536
		         ? rerror_set(err, RC_ERR_CONFIG,
		                      "OPENSEARCH_BEARER_TOKEN_FILE=%s: larger than 64 KiB", path)
		         : buf_append(out, chunk, n);
	}
	memset(chunk, 0, sizeof(chunk));
	fclose(f);
	return rc;
}

/* Reads the token file again when it is not the file last read: a rotated
 * token (written in place or swapped in by a rename or a symlink, as
 * Kubernetes does) is used from the next request on. */
static RC_MUST_CHECK rcode
token_refresh(struct opensearch *os, struct rerror *err)
{
	struct stat st;
	struct buf text = {0};
	const char *t;
	size_t n;
	rcode rc;

	if (stat(os->token_file, &st) != 0)
		return rerror_set(err, RC_ERR_CONFIG, "OPENSEARCH_BEARER_TOKEN_FILE=%s: %s",
		                  os->token_file, strerror(errno));
	if (os->bearer && st.st_ino == os->token_seen.st_ino &&
	    st.st_dev == os->token_seen.st_dev && st.st_size == os->token_seen.st_size &&
	    st.st_mtim.tv_sec == os->token_seen.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == os->token_seen.st_mtim.tv_nsec)
		return RC_OK;
	rc = read_token_file(&text, os->token_file, err);
	if (rc)
		return rc;
	t = text.data ? text.data : "";
	n = text.len;
	while (n > 0 &&
	       (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' ' || t[n - 1] == '\t'))
		n--;
	while (n > 0 && (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r'))
		t++, n--;
	if (n == 0 || memchr(t, '\n', n) || memchr(t, '\r', n))
		rc = rerror_set(err, RC_ERR_CONFIG, "OPENSEARCH_BEARER_TOKEN_FILE=%s: %s",
		                os->token_file, n == 0 ? "empty" : "holds more than one line");
	else
		rc = set_bearer(os, t, n, err);
	if (rc == RC_OK)
		os->token_seen = st;
	if (text.data)
		memset(text.data, 0, text.len);
	buf_free(&text);
	return rc;
}

/* The credentials on the handle (basic auth) or kept for each request's
 * headers (a bearer token); which settings a 401 should name. */
static RC_MUST_CHECK rcode
apply_auth(struct opensearch *os, const struct config *cfg, struct rerror *err)
{
	os->auth_hint = "no credentials are set (OPENSEARCH_USERNAME and OPENSEARCH_PASSWORD, "
	                "OPENSEARCH_BEARER_TOKEN, OPENSEARCH_CLIENT_CERT)";
	if (*cfg->opensearch_bearer_token) {
		os->auth_hint = "check OPENSEARCH_BEARER_TOKEN";
		return set_bearer(os, cfg->opensearch_bearer_token,
		                  strlen(cfg->opensearch_bearer_token), err);
	}
	if (*cfg->opensearch_bearer_token_file) {
		os->auth_hint = "check the token in OPENSEARCH_BEARER_TOKEN_FILE";
		os->token_file = strdup(cfg->opensearch_bearer_token_file);
		if (os->token_file == NULL)
			return rerror_set(err, RC_ERR_NOMEM, "out of memory");
		return token_refresh(os, err);
	}
	if (*cfg->opensearch_username) {
		size_t n = strlen(cfg->opensearch_username) + strlen(cfg->opensearch_password) + 2;

		os->auth_hint = "check OPENSEARCH_USERNAME and OPENSEARCH_PASSWORD";
		os->userpwd = malloc(n);
		if (os->userpwd == NULL)
			return rerror_set(err, RC_ERR_NOMEM, "out of memory");
		snprintf(os->userpwd, n, "%s:%s", cfg->opensearch_username,
		         cfg->opensearch_password);
		curl_easy_setopt(os->curl, CURLOPT_USERPWD, os->userpwd);
		curl_easy_setopt(os->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	} else if (*cfg->opensearch_client_cert) {
		os->auth_hint = "check the certificate in OPENSEARCH_CLIENT_CERT";
	}
	return RC_OK;
}

rcode
opensearch_open(struct opensearch **out, const struct config *cfg, struct rerror *err)
{
	struct opensearch *os;
	char *esc;
	rcode rc;

	*out = NULL;
	os = calloc(1, sizeof(*os));
	if (os == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	os->curl = curl_easy_init();
	os->base = strdup(cfg->opensearch_url);
	esc = os->curl ? curl_easy_escape(os->curl, cfg->opensearch_index, 0) : NULL;
	if (esc)
		os->index_path = malloc(strlen(esc) + 2);
	if (os->curl == NULL || os->base == NULL || os->index_path == NULL) {
		curl_free(esc);
		opensearch_free(os);
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	}
	sprintf(os->index_path, "/%s", esc);
	curl_free(esc);
	os->max_retries = cfg->sync_max_retries;
	os->aws_service = cfg->opensearch_aws_service;
	if (*cfg->opensearch_aws_region &&
	    (os->aws_region = strdup(cfg->opensearch_aws_region)) == NULL) {
		opensearch_free(os);
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	}
	if (cfg->opensearch_query && *cfg->opensearch_query) {
		os->query = cJSON_Parse(cfg->opensearch_query);
		if (!cJSON_IsObject(os->query)) {
			opensearch_free(os);
			return rerror_set(err, RC_ERR_CONFIG,
			                  "OPENSEARCH_QUERY is invalid: not a JSON object");
		}
	}
	rc = apply_auth(os, cfg, err);
	if (rc) {
		opensearch_free(os);
		return rc;
	}
	curl_easy_setopt(os->curl, CURLOPT_ERRORBUFFER, os->errbuf);
	curl_easy_setopt(os->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(os->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(os->curl, CURLOPT_TIMEOUT_MS, (long)cfg->opensearch_timeout_ms);
	curl_easy_setopt(os->curl, CURLOPT_SSL_VERIFYPEER, cfg->opensearch_tls_verify ? 1L : 0L);
	curl_easy_setopt(os->curl, CURLOPT_SSL_VERIFYHOST, cfg->opensearch_tls_verify ? 2L : 0L);
	if (*cfg->opensearch_ca_file)
		curl_easy_setopt(os->curl, CURLOPT_CAINFO, cfg->opensearch_ca_file);
	os->client_cert = *cfg->opensearch_client_cert != '\0';
	if (os->client_cert) {
		/* mutual TLS: the key may share the certificate's file */
		curl_easy_setopt(os->curl, CURLOPT_SSLCERT, cfg->opensearch_client_cert);
		curl_easy_setopt(os->curl, CURLOPT_SSLKEY,
		                 *cfg->opensearch_client_key ? cfg->opensearch_client_key
		                                             : cfg->opensearch_client_cert);
	}
	curl_easy_setopt(os->curl, CURLOPT_ACCEPT_ENCODING, "");
	*out = os;
	return RC_OK;
}

void
opensearch_free(struct opensearch *os)
{
	if (os == NULL)
		return;
	if (os->curl)
		curl_easy_cleanup(os->curl);
	free(os->base);
	free(os->index_path);
	free(os->aws_region);
	cJSON_Delete(os->query);
	free_secret(os->userpwd);
	free_secret(os->bearer);
	free(os->token_file);
	free(os);
}

/* What to look at when a request over https failed in or after the TLS
 * handshake: a server that asks for a client certificate ends the
 * connection (TLS 1.3: at the first read), which curl reports in several
 * ways. Empty for a plain connection failure or http. */
static const char *
tls_hint(const struct opensearch *os, CURLcode cc)
{
	if (strncmp(os->base, "https:", 6) != 0 || cc == CURLE_COULDNT_RESOLVE_HOST ||
	    cc == CURLE_COULDNT_CONNECT || cc == CURLE_OPERATION_TIMEDOUT)
		return "";
	if (strstr(os->errbuf, "certificate required") && !os->client_cert)
		return " (the server asks for a client certificate: set OPENSEARCH_CLIENT_CERT "
		       "and OPENSEARCH_CLIENT_KEY)";
	return os->client_cert ? " (TLS: check OPENSEARCH_CLIENT_CERT, OPENSEARCH_CLIENT_KEY and "
	                         "OPENSEARCH_CA_FILE)"
	                       : " (TLS: does the server ask for a client certificate "
	                         "(OPENSEARCH_CLIENT_CERT)? check OPENSEARCH_CA_FILE too)";
}

static size_t
on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct buf *b = ctx;

	return buf_append(b, data, size * n) ? 0 : size * n;
}

rcode
opensearch_request(struct opensearch *os, long *status, struct buf *resp, const char *method,
                   const char *path, const char *body, size_t body_len, struct rerror *err)
{
	struct curl_slist *headers = NULL;
	struct buf url = {0};
	CURLcode cc;
	rcode rc = RC_OK;

	*status = 0;
	buf_reset(resp);
	if (buf_printf(&url, "%s%s", os->base, path))
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	headers = curl_slist_append(headers, strstr(path, "_bulk") || strstr(path, "_msearch")
	                                         ? "Content-Type: application/x-ndjson"
	                                         : "Content-Type: application/json");
	headers = curl_slist_append(headers, "Expect:");
	/* a token file is read again when it changed; AWS SigV4 (docs/AWS.md)
	 * may rewrite the URL's query into the form it signs (config.c refuses
	 * a token together with AWS signing) */
	if ((os->token_file && (rc = token_refresh(os, err)) != RC_OK) ||
	    (os->aws_region && (rc = aws_sign(&headers, &url, method, body, body_len,
	                                      os->aws_region, os->aws_service, err)))) {
		curl_slist_free_all(headers);
		buf_free(&url);
		return rc;
	}
	if (os->bearer)
		headers = curl_slist_append(headers, os->bearer);
	curl_easy_setopt(os->curl, CURLOPT_URL, url.data);
	curl_easy_setopt(os->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(os->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(os->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(os->curl, CURLOPT_WRITEDATA, resp);
	if (body) {
		curl_easy_setopt(os->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(os->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	} else {
		curl_easy_setopt(os->curl, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(os->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
		curl_easy_setopt(os->curl, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(os->curl, CURLOPT_CUSTOMREQUEST, method);
		if (strcmp(method, "HEAD") == 0)
			curl_easy_setopt(os->curl, CURLOPT_NOBODY, 1L);
	}
	os->errbuf[0] = '\0';
	cc = curl_easy_perform(os->curl);
	curl_easy_setopt(os->curl, CURLOPT_NOBODY, 0L);
	if (cc != CURLE_OK) {
		char *masked = util_mask_uri(os->base);
		rc = rerror_set(
		    err, RC_ERR_OPENSEARCH, "opensearch %s unreachable: %s%s", masked ? masked : "",
		    *os->errbuf ? os->errbuf : curl_easy_strerror(cc), tls_hint(os, cc));
		free(masked);
	} else {
		curl_easy_getinfo(os->curl, CURLINFO_RESPONSE_CODE, status);
		if (os->aws_region)
			rc = aws_refusal(*status, resp, err);
	}
	if (rc == RC_OK && *status == 401) {
		/* wrong credentials are no outage: no retry or resume mends them
		 * (RC_ERR_CONFIG: exit 78, the run is not resumable) */
		char *masked = util_mask_uri(os->base);
		rc = rerror_set(err, RC_ERR_CONFIG,
		                "opensearch %s: authentication failed (HTTP 401): %s",
		                masked ? masked : "", os->auth_hint);
		free(masked);
	}
	curl_slist_free_all(headers);
	buf_free(&url);
	return rc;
}

/* "type: reason" of an OpenSearch error object, followed by its innermost
 * cause: the outer reason is often generic ("failed to parse") while the
 * last caused_by says what was wrong (a depth limit, a bad date). */
static void
format_error(const cJSON *e, char *out, size_t len)
{
	const cJSON *inner = e, *c;
	const cJSON *type = cJSON_GetObjectItem(e, "type");
	const cJSON *reason = cJSON_GetObjectItem(e, "reason");

	for (int depth = 0;
	     depth < 32 && cJSON_IsObject(c = cJSON_GetObjectItem(inner, "caused_by")); depth++)
		inner = c;
	int n = snprintf(out, len, "%s: %s", cJSON_IsString(type) ? type->valuestring : "error",
	                 cJSON_IsString(reason) ? reason->valuestring : "(no reason)");
	/* a search's outer reason ("all shards failed") hides the shard's: the
	 * first root_cause says it */
	const cJSON *roots = cJSON_GetObjectItem(e, "root_cause");
	if (inner == e && cJSON_IsArray(roots) && cJSON_GetArraySize(roots) > 0) {
		const cJSON *rr = cJSON_GetObjectItem(cJSON_GetArrayItem(roots, 0), "reason");
		if (cJSON_IsString(rr) &&
		    !(cJSON_IsString(reason) && strcmp(rr->valuestring, reason->valuestring) == 0))
			inner = cJSON_GetArrayItem(roots, 0);
	}
	if (inner != e && n >= 0 && (size_t)n < len) {
		const cJSON *it = cJSON_GetObjectItem(inner, "type");
		const cJSON *ir = cJSON_GetObjectItem(inner, "reason");
		snprintf(out + n, len - (size_t)n, " (caused by %s: %s)",
		         cJSON_IsString(it) ? it->valuestring : "error",
		         cJSON_IsString(ir) ? ir->valuestring : "(no reason)");
	}
}

/* A short reason from an OpenSearch error body; a 401 says which
 * credentials were refused. */
static void
error_reason(const struct opensearch *os, const struct buf *resp, long status, char *out,
             size_t len)
{
	cJSON *j = resp->data ? cJSON_Parse(resp->data) : NULL;
	cJSON *e = j ? cJSON_GetObjectItem(j, "error") : NULL;
	char text[1024];

	if (status == 401) {
		snprintf(out, len, "authentication failed (HTTP 401): %s", os->auth_hint);
	} else if (cJSON_IsObject(e)) {
		format_error(e, text, sizeof(text));
		snprintf(out, len, "HTTP %ld: %s", status, text);
	} else if (cJSON_IsString(e)) {
		snprintf(out, len, "HTTP %ld: %s", status, e->valuestring);
	} else {
		snprintf(out, len, "HTTP %ld: %.200s", status, resp->data ? resp->data : "");
	}
	cJSON_Delete(j);
}

/* cJSON ends a string at an escaped NUL: "s1\u0000old" would read as "s1",
 * another document's id, and a delete of it would hit that document. Such
 * escapes become "\u0001" (same length); true when there were any, and
 * readers of ids then leave strings holding \x01 alone. */
static bool
mangle_nul(char *s, size_t len)
{
	bool any = false;

	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] != '\\')
			continue;
		/* in JSON a backslash always starts an escape: skip what it escapes */
		if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0) {
			s[i + 5] = '1';
			any = true;
			i += 5;
		} else {
			i++;
		}
	}
	return any;
}

/* GET/POST that must answer 200 with JSON; *json is the parsed body, and
 * *nul (may be NULL) says whether NUL escapes were mangled. */
static RC_MUST_CHECK rcode
request_json_nul(struct opensearch *os, cJSON **json, bool *nul, const char *method,
                 const char *path, const char *body, struct rerror *err)
{
	struct buf resp = {0};
	long status;
	rcode rc;
	bool mangled = false;

	*json = NULL;
	rc = opensearch_request(os, &status, &resp, method, path, body, body ? strlen(body) : 0,
	                        err);
	if (rc == RC_OK && status != 200) {
		char reason[1100];
		error_reason(os, &resp, status, reason, sizeof(reason));
		rc = rerror_set(err, status == 404 ? RC_ERR_NOTFOUND : RC_ERR_OPENSEARCH,
		                "opensearch %s %s: %s", method, path, reason);
	}
	if (rc == RC_OK && resp.data)
		mangled = mangle_nul(resp.data, resp.len);
	if (rc == RC_OK && (*json = cJSON_ParseWithLength(resp.data, resp.len)) == NULL)
		rc = rerror_set(err, RC_ERR_OPENSEARCH, "opensearch %s %s: answer is not JSON",
		                method, path);
	if (nul)
		*nul = mangled;
	buf_free(&resp);
	return rc;
}

static RC_MUST_CHECK rcode
request_json(struct opensearch *os, cJSON **json, const char *method, const char *path,
             const char *body, struct rerror *err)
{
	return request_json_nul(os, json, NULL, method, path, body, err);
}

rcode
opensearch_info(struct opensearch *os, char **version, struct rerror *err)
{
	cJSON *j, *v;
	rcode rc;

	*version = NULL;
	rc = request_json(os, &j, "GET", "/", NULL, err);
	if (rc)
		return rc;
	v = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "version"), "number");
	*version = strdup(cJSON_IsString(v) ? v->valuestring : "unknown");
	cJSON_Delete(j);
	return *version ? RC_OK : RC_ERR_NOMEM;
}

rcode
opensearch_set_range(struct opensearch *os, const char *field, const char *lo, const char *hi)
{
	cJSON *both, *f, *range, *bounds;

	if (lo == NULL && hi == NULL)
		return RC_OK;
	both = cJSON_CreateObject();
	f = cJSON_AddArrayToObject(cJSON_AddObjectToObject(both, "bool"), "filter");
	range = cJSON_CreateObject();
	bounds = cJSON_AddObjectToObject(cJSON_AddObjectToObject(range, "range"), field);
	if (f == NULL || bounds == NULL || (lo && !cJSON_AddStringToObject(bounds, "gte", lo)) ||
	    (hi && !cJSON_AddStringToObject(bounds, "lt", hi)) || !cJSON_AddItemToArray(f, range)) {
		cJSON_Delete(range);
		cJSON_Delete(both);
		return RC_ERR_NOMEM;
	}
	/* the mirror's query and the range: every search, count and summary
	 * of this connection selects both */
	if (os->query && !cJSON_AddItemToArray(f, os->query)) {
		cJSON_Delete(both);
		return RC_ERR_NOMEM;
	}
	os->query = both;
	return RC_OK;
}

/* Adds OPENSEARCH_QUERY's clause (a copy) to the array `filter` of a bool
 * query; nothing without one. */
static rcode
add_mirror_query(const struct opensearch *os, cJSON *filter)
{
	cJSON *copy;

	if (os->query == NULL)
		return RC_OK;
	if (filter == NULL || (copy = cJSON_Duplicate(os->query, true)) == NULL)
		return RC_ERR_NOMEM;
	return cJSON_AddItemToArray(filter, copy) ? RC_OK : RC_ERR_NOMEM;
}

/* {"query": {"bool": {"filter": [the mirror's query, extra]}}} as text;
 * extra (a clause, or NULL) is the body's whatever happens. NULL without
 * memory. */
static char *
filter_body(const struct opensearch *os, cJSON *extra)
{
	cJSON *b = cJSON_CreateObject();
	cJSON *f = cJSON_AddArrayToObject(
	    cJSON_AddObjectToObject(cJSON_AddObjectToObject(b, "query"), "bool"), "filter");
	char *text = NULL;

	if (f && add_mirror_query(os, f) == RC_OK &&
	    (extra == NULL || cJSON_AddItemToArray(f, extra))) {
		extra = NULL; /* the body's */
		text = cJSON_PrintUnformatted(b);
	}
	cJSON_Delete(extra);
	cJSON_Delete(b);
	return text;
}

/* One _count request; its "count" into *count. */
static RC_MUST_CHECK rcode
count_request(struct opensearch *os, int64_t *count, const char *path, const char *body,
              struct rerror *err)
{
	cJSON *j, *c;
	rcode rc = request_json(os, &j, body ? "POST" : "GET", path, body, err);

	if (rc)
		return rc;
	c = cJSON_GetObjectItem(j, "count");
	if (cJSON_IsNumber(c))
		*count = (int64_t)c->valuedouble;
	else
		rc = rerror_set(err, RC_ERR_OPENSEARCH, "opensearch _count: no count in answer");
	cJSON_Delete(j);
	return rc;
}

rcode
opensearch_count(struct opensearch *os, int64_t *count, struct rerror *err)
{
	char path[2048]; /* an index name escapes to up to 765 bytes */
	char *body = NULL;
	rcode rc;

	*count = -1;
	snprintf(path, sizeof(path), "%s/_count", os->index_path);
	/* the mirror's own documents */
	if (os->query && (body = filter_body(os, NULL)) == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	rc = count_request(os, count, path, body, err);
	free(body);
	return rc;
}

rcode
opensearch_count_shared(struct opensearch *os, int64_t *count, const char *index,
                        const char *other_query, struct rerror *err)
{
	char path[2048]; /* an index name escapes to up to 765 bytes */
	cJSON *other = cJSON_Parse(other_query);
	char *body = other ? filter_body(os, other) : NULL;
	char *esc = curl_easy_escape(os->curl, index, 0);
	rcode rc;

	*count = 0;
	if (body == NULL || esc == NULL) {
		free(body);
		curl_free(esc);
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	}
	snprintf(path, sizeof(path), "/%s/_count", esc);
	curl_free(esc);
	rc = count_request(os, count, path, body, err);
	free(body);
	return rc == RC_ERR_NOTFOUND ? RC_OK : rc;
}

rcode
opensearch_count_missing(struct opensearch *os, int64_t *count, const char *field,
                         struct rerror *err)
{
	char path[2048]; /* an index name escapes to up to 765 bytes */
	cJSON *body = cJSON_CreateObject(), *j = NULL, *c;
	char *text;
	rcode rc;

	*count = 0;
	cJSON *bq = cJSON_AddObjectToObject(cJSON_AddObjectToObject(body, "query"), "bool");
	cJSON *exists = cJSON_AddObjectToObject(cJSON_AddObjectToObject(bq, "must_not"), "exists");
	cJSON_AddStringToObject(exists, "field", field);
	text = os->query && add_mirror_query(os, cJSON_AddArrayToObject(bq, "filter"))
	           ? NULL
	           : cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	if (text == NULL)
		return RC_ERR_NOMEM;
	snprintf(path, sizeof(path), "%s/_count", os->index_path);
	rc = request_json(os, &j, "POST", path, text, err);
	free(text);
	if (rc == RC_ERR_NOTFOUND)
		return RC_OK;
	if (rc)
		return rc;
	c = cJSON_GetObjectItem(j, "count");
	if (cJSON_IsNumber(c))
		*count = (int64_t)c->valuedouble;
	cJSON_Delete(j);
	return RC_OK;
}

rcode
opensearch_count_unkept(struct opensearch *os, int64_t *count, const char *keep_query,
                        struct rerror *err)
{
	char path[2048]; /* an index name escapes to up to 765 bytes */
	cJSON *body, *bq, *keep;
	char *text = NULL;
	rcode rc;

	*count = -1;
	if (keep_query == NULL || *keep_query == '\0')
		return opensearch_count(os, count, err);
	if (!cJSON_IsObject(keep = cJSON_Parse(keep_query))) {
		cJSON_Delete(keep);
		return rerror_set(err, RC_ERR_CONFIG, "OPENSEARCH_KEEP_QUERY is not a JSON object");
	}
	/* {"query": {"bool": {"filter": [mirror's], "must_not": [keep]}}} */
	body = cJSON_CreateObject();
	bq = cJSON_AddObjectToObject(cJSON_AddObjectToObject(body, "query"), "bool");
	cJSON *not = cJSON_AddArrayToObject(bq, "must_not");
	if (not &&cJSON_AddItemToArray(not, keep)) {
		keep = NULL; /* the body's */
		if (add_mirror_query(os, os->query ? cJSON_AddArrayToObject(bq, "filter") : NULL) ==
		    RC_OK)
			text = cJSON_PrintUnformatted(body);
	}
	cJSON_Delete(keep);
	cJSON_Delete(body);
	if (text == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/_count", os->index_path);
	rc = count_request(os, count, path, text, err);
	free(text);
	return rc;
}

rcode
opensearch_copy_matches(struct opensearch *os, bool *match, const char *index, const char *docid,
                        const char *clause, struct rerror *err)
{
	char path[2048]; /* an index name escapes to up to 765 bytes */
	cJSON *id = cJSON_CreateString(docid), *c = cJSON_Parse(clause), *extra = NULL;
	char *idt = id ? cJSON_PrintUnformatted(id) : NULL, *ct = NULL, *body = NULL;
	char *esc = index ? curl_easy_escape(os->curl, index, 0) : NULL;
	struct buf q = {0};
	int64_t n = 0;
	rcode rc = RC_OK;

	*match = false;
	if (!cJSON_IsObject(c))
		rc = rerror_set(err, RC_ERR_CONFIG, "the clause is not a JSON object");
	/* {"bool": {"filter": [{"ids": ...}, clause]}}, under the mirror's query */
	else if (idt == NULL || (index && esc == NULL) ||
	         (ct = cJSON_PrintUnformatted(c)) == NULL ||
	         buf_printf(&q, "{\"bool\":{\"filter\":[{\"ids\":{\"values\":[%s]}},%s]}}", idt,
	                    ct) ||
	         (extra = cJSON_Parse(q.data)) == NULL || (body = filter_body(os, extra)) == NULL)
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	if (rc == RC_OK) {
		if (esc)
			snprintf(path, sizeof(path), "/%s/_count", esc);
		else
			snprintf(path, sizeof(path), "%s/_count", os->index_path);
		rc = count_request(os, &n, path, body, err);
		*match = rc == RC_OK && n > 0;
	}
	cJSON_Delete(id);
	cJSON_Delete(c);
	curl_free(esc);
	free(idt);
	free(ct);
	free(body);
	buf_free(&q);
	return rc;
}

/* OpenSearch's reason for refusing the _count body `body` ("" when it
 * takes it, or the index does not exist: nothing to run it on). A 400 is
 * the query's fault (a closed index aside); a shard that failed on an
 * answer of 200 (an alias whose indices map a field apart) too. */
static RC_MUST_CHECK rcode
refused_reason(struct opensearch *os, char *reason, size_t len, const char *body,
               struct rerror *err)
{
	char path[2048]; /* an index name escapes to up to 765 bytes */
	struct buf resp = {0};
	cJSON *j = NULL;
	long status = 0;
	rcode rc;

	reason[0] = '\0';
	snprintf(path, sizeof(path), "%s/_count", os->index_path);
	rc = opensearch_request(os, &status, &resp, "POST", path, body, strlen(body), err);
	if (rc == RC_OK)
		j = resp.data ? cJSON_ParseWithLength(resp.data, resp.len) : NULL;
	const cJSON *e = cJSON_GetObjectItem(j, "error");
	const cJSON *type = cJSON_GetObjectItem(e, "type");
	bool closed =
	    cJSON_IsString(type) && strcmp(type->valuestring, "index_closed_exception") == 0;
	if (rc == RC_OK && status == 400 && cJSON_IsObject(e) && !closed) {
		format_error(e, reason, len);
	} else if (rc == RC_OK && status == 200) {
		const cJSON *f = cJSON_GetArrayItem(
		    cJSON_GetObjectItem(cJSON_GetObjectItem(j, "_shards"), "failures"), 0);
		if (cJSON_IsObject(cJSON_GetObjectItem(f, "reason")))
			format_error(cJSON_GetObjectItem(f, "reason"), reason, len);
	} else if (rc == RC_OK && status != 404) {
		char why[1100];
		error_reason(os, &resp, status, why, sizeof(why));
		rc = rerror_set(err, RC_ERR_OPENSEARCH, "opensearch POST %s: %s", path, why);
	}
	cJSON_Delete(j);
	buf_free(&resp);
	return rc;
}

rcode
opensearch_check_queries(struct opensearch *os, const struct config *cfg, struct rerror *err)
{
	const char *names[2] = {"OPENSEARCH_QUERY", "OPENSEARCH_KEEP_QUERY"};
	const char *texts[2] = {cfg->opensearch_query, cfg->opensearch_keep_query};
	char reason[700], who[300] = "";
	rcode rc = RC_OK;

	if (cfg->set && cfg->set->n_mirrors > 1)
		snprintf(who, sizeof(who), " (mirror %s)", cfg->name);
	for (int i = 0; i < 2 && rc == RC_OK; i++) {
		if (texts[i] == NULL || *texts[i] == '\0')
			continue;
		/* the keep clause as the run asks it: under the mirror's own */
		cJSON *keep = i ? cJSON_Parse(texts[i]) : NULL;
		if (i && !cJSON_IsObject(keep)) {
			cJSON_Delete(keep);
			return rerror_set(err, RC_ERR_CONFIG, "%s%s is not a JSON object", names[i],
			                  who);
		}
		char *body = filter_body(os, keep);
		if (body == NULL)
			return rerror_set(err, RC_ERR_NOMEM, "out of memory");
		rc = refused_reason(os, reason, sizeof(reason), body, err);
		free(body);
		if (rc == RC_OK && reason[0])
			rc = rerror_set(
			    err, RC_ERR_CONFIG,
			    "%s%s is refused by OpenSearch (index %.100s): %.260s. Correct "
			    "it so that the index's _count takes {\"query\": CLAUSE}; "
			    "nothing was changed",
			    names[i], who, cfg->opensearch_index, reason);
	}
	return rc;
}

rcode
opensearch_field_type(struct opensearch *os, char **type, char **inexact, const char *field,
                      struct rerror *err)
{
	struct buf path = {0};
	cJSON *j = NULL, *idx, *m, *t;
	char *esc;
	rcode rc;

	*type = NULL;
	if (inexact)
		*inexact = NULL;
	esc = curl_easy_escape(os->curl, field, 0);
	if (esc == NULL || buf_printf(&path, "%s/_mapping/field/%s", os->index_path, esc)) {
		curl_free(esc);
		buf_free(&path);
		return RC_ERR_NOMEM;
	}
	curl_free(esc);
	rc = request_json(os, &j, "GET", path.data, NULL, err);
	buf_free(&path);
	if (rc)
		return rc;
	/* {"<index>": {"mappings": {"<field>": {"mapping": {"<leaf>": {"type": ...}}}}}} */
	idx = j->child;
	m = idx ? cJSON_GetObjectItem(cJSON_GetObjectItem(idx, "mappings"), field) : NULL;
	m = m ? cJSON_GetObjectItem(m, "mapping") : NULL;
	t = m && m->child ? cJSON_GetObjectItem(m->child, "type") : NULL;
	if (cJSON_IsString(t))
		*type = strdup(t->valuestring);
	/* does every backing index keep every value exactly, as doc values? */
	cJSON_ArrayForEach(idx, j)
	{
		cJSON *f = cJSON_GetObjectItem(cJSON_GetObjectItem(idx, "mappings"), field);
		cJSON *leaf = f ? cJSON_GetObjectItem(f, "mapping") : NULL;
		leaf = leaf ? leaf->child : NULL;
		cJSON *norm = leaf ? cJSON_GetObjectItem(leaf, "normalizer") : NULL;
		cJSON *above = leaf ? cJSON_GetObjectItem(leaf, "ignore_above") : NULL;
		cJSON *dv = leaf ? cJSON_GetObjectItem(leaf, "doc_values") : NULL;
		cJSON *lt = leaf ? cJSON_GetObjectItem(leaf, "type") : NULL;
		char why[200] = "";
		if (cJSON_IsString(norm))
			snprintf(why, sizeof(why), "has the normalizer %.100s", norm->valuestring);
		else if (cJSON_IsNumber(above))
			snprintf(why, sizeof(why), "has ignore_above %d", above->valueint);
		else if (cJSON_IsFalse(dv))
			snprintf(why, sizeof(why), "has doc_values false");
		else if (*type && (!cJSON_IsString(lt) || strcmp(lt->valuestring, *type)))
			snprintf(why, sizeof(why), "is %.40s in %.80s but %.40s in another index",
			         cJSON_IsString(lt) ? lt->valuestring : "not mapped", idx->string,
			         *type);
		if (*why && inexact && *inexact == NULL)
			*inexact = strdup(why);
	}
	cJSON_Delete(j);
	return RC_OK;
}

rcode
opensearch_targets(struct opensearch *os, char **write_index, int *n_indices, struct rerror *err)
{
	struct buf path = {0};
	cJSON *j = NULL, *idx;
	rcode rc;

	*write_index = NULL;
	*n_indices = 1;
	if (buf_printf(&path, "/_alias%s", os->index_path))
		return RC_ERR_NOMEM;
	rc = request_json(os, &j, "GET", path.data, NULL, err);
	buf_free(&path);
	if (rc == RC_ERR_NOTFOUND) {
		/* not an alias: the name is the index (which may not exist yet) */
		*err = (struct rerror){0};
		return RC_OK;
	}
	if (rc)
		return rc;
	/* {"v1": {"aliases": {"name": {}}}, "v2": {"aliases": {"name":
	 * {"is_write_index": true}}}} */
	int n = cJSON_GetArraySize(j);
	const char *write = n == 1 ? j->child->string : NULL;
	cJSON_ArrayForEach(idx, j)
	{
		cJSON *a = cJSON_GetObjectItem(idx, "aliases");
		cJSON *w = a && a->child ? cJSON_GetObjectItem(a->child, "is_write_index") : NULL;
		if (cJSON_IsTrue(w))
			write = idx->string;
	}
	*n_indices = n > 0 ? n : 1;
	if (write && (*write_index = strdup(write)) == NULL)
		rc = RC_ERR_NOMEM;
	cJSON_Delete(j);
	return rc;
}

rcode
opensearch_concrete(struct opensearch *os, struct os_concrete **out, size_t *n, const char *index,
                    struct rerror *err)
{
	struct buf path = {0};
	cJSON *j = NULL, *idx;
	char *esc = NULL;
	rcode rc;

	*out = NULL;
	*n = 0;
	if (index && (esc = curl_easy_escape(os->curl, index, 0)) == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	rc = esc ? buf_printf(&path, "/%s/_settings/index.uuid", esc)
	         : buf_printf(&path, "%s/_settings/index.uuid", os->index_path);
	curl_free(esc);
	if (rc)
		return rerror_set(err, rc, "out of memory");
	rc = request_json(os, &j, "GET", path.data, NULL, err);
	buf_free(&path);
	if (rc == RC_ERR_NOTFOUND) { /* nothing of that name yet */
		*err = (struct rerror){0};
		return RC_OK;
	}
	if (rc)
		return rc;
	/* {"concrete-name": {"settings": {"index": {"uuid": "..."}}}, ...} */
	size_t cap = (size_t)cJSON_GetArraySize(j);
	if (cap && (*out = calloc(cap, sizeof(**out))) == NULL)
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	cJSON_ArrayForEach(idx, j)
	{
		cJSON *u = cJSON_GetObjectItem(
		    cJSON_GetObjectItem(cJSON_GetObjectItem(idx, "settings"), "index"), "uuid");
		if (rc || !idx->string || !cJSON_IsString(u))
			continue;
		struct os_concrete *c = &(*out)[(*n)++];
		c->name = strdup(idx->string);
		c->uuid = strdup(u->valuestring);
		if (c->name == NULL || c->uuid == NULL)
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	}
	cJSON_Delete(j);
	if (rc) {
		opensearch_concrete_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

void
opensearch_concrete_free(struct os_concrete *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		free(v[i].uuid);
	}
	free(v);
}

/* Maps id_field as keyword: PUT at the index with {"mappings": ...}
 * (create: the index too) or at its _mapping. */
static RC_MUST_CHECK rcode
put_id_keyword(struct opensearch *os, const char *id_field, bool create, struct rerror *err)
{
	struct buf body = {0}, resp = {0}, path = {0};
	long status = 0;
	rcode rc;

	rc = buf_puts(&body, create ? "{\"mappings\":{\"properties\":{" : "{\"properties\":{");
	if (rc == RC_OK)
		rc = doc_json_string(&body, id_field, strlen(id_field));
	if (rc == RC_OK)
		rc = buf_puts(&body,
		              create ? ":{\"type\":\"keyword\"}}}}" : ":{\"type\":\"keyword\"}}}");
	if (rc == RC_OK)
		rc = buf_printf(&path, "%s%s", os->index_path, create ? "" : "/_mapping");
	if (rc)
		rc = rerror_set(err, rc, "out of memory");
	if (rc == RC_OK)
		rc = opensearch_request(os, &status, &resp, "PUT", path.data, body.data, body.len,
		                        err);
	/* creating, 400 resource_already_exists_exception: created meanwhile,
	 * as good; any other 400 (a bad name, the cluster's shard limit) is
	 * the error it says */
	if (rc == RC_OK && status != 200 &&
	    !(create && status == 400 && resp.data &&
	      strstr(resp.data, "resource_already_exists_exception"))) {
		char reason[1100];
		error_reason(os, &resp, status, reason, sizeof(reason));
		rc = rerror_set(err, RC_ERR_OPENSEARCH, "cannot %s %s as keyword: %s",
		                create ? "create the index with" : "map", id_field, reason);
	}
	buf_free(&body);
	buf_free(&resp);
	buf_free(&path);
	return rc;
}

rcode
opensearch_create_index(struct opensearch *os, const char *id_field, struct rerror *err)
{
	return put_id_keyword(os, id_field, true, err);
}

rcode
opensearch_map_id_field(struct opensearch *os, const char *id_field, struct rerror *err)
{
	return put_id_keyword(os, id_field, false, err);
}

rcode
opensearch_index_pipeline(struct opensearch *os, char **name, struct rerror *err)
{
	char path[2048]; /* an index name escapes to up to 765 bytes */
	cJSON *j = NULL, *idx, *v;
	rcode rc;

	*name = NULL;
	snprintf(path, sizeof(path),
	         "%s/_settings/index.default_pipeline,index.final_pipeline?flat_settings=true",
	         os->index_path);
	rc = request_json(os, &j, "GET", path, NULL, err);
	if (rc == RC_ERR_NOTFOUND) { /* no index yet: none */
		*err = (struct rerror){0};
		return RC_OK;
	}
	if (rc)
		return rc;
	/* {"<index>": {"settings": {"index.default_pipeline": "p"}}, ...} */
	cJSON_ArrayForEach(idx, j)
	{
		cJSON *set = cJSON_GetObjectItem(idx, "settings");
		const char *keys[] = {"index.default_pipeline", "index.final_pipeline"};
		for (size_t i = 0; *name == NULL && i < 2; i++) {
			v = cJSON_GetObjectItem(set, keys[i]);
			if (cJSON_IsString(v) && strcmp(v->valuestring, "_none") != 0 &&
			    (*name = strdup(v->valuestring)) == NULL)
				rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		}
	}
	cJSON_Delete(j);
	return rc;
}

rcode
opensearch_refresh(struct opensearch *os, struct rerror *err)
{
	char path[2048]; /* an index name escapes to up to 765 bytes */
	cJSON *j;
	rcode rc;

	/* Serverless has no _refresh: its documents become searchable on their
	 * own, within seconds (docs/AWS.md) */
	if (os->aws_region && os->aws_service == AWS_SERVICE_AOSS)
		return RC_OK;
	snprintf(path, sizeof(path), "%s/_refresh", os->index_path);
	rc = request_json(os, &j, "POST", path, NULL, err);
	cJSON_Delete(j);
	return rc;
}

/* Version text of a hit's doc value (number or string), normalized. */
static bool
hit_version(cJSON *h, const struct os_keys *k, char *out, size_t len, int64_t *ms)
{
	cJSON *v = NULL;

	*ms = -1;
	if (k->version_field == NULL || *k->version_field == '\0')
		return false;
	if (k->version_source) {
		/* from _source, along the dotted path (objects only) */
		char path[256];
		snprintf(path, sizeof(path), "%s", k->version_field);
		v = cJSON_GetObjectItem(h, "_source");
		/* strtok_r: pages are read on two threads (run.c's prefetch) */
		char *save = NULL;
		for (char *part = strtok_r(path, ".", &save); v && part;
		     part = strtok_r(NULL, ".", &save))
			v = cJSON_IsObject(v) ? cJSON_GetObjectItem(v, part) : NULL;
		if (cJSON_IsArray(v))
			v = cJSON_GetArrayItem(v, 0);
	} else {
		cJSON *arr =
		    cJSON_GetObjectItem(cJSON_GetObjectItem(h, "fields"), k->version_field);
		v = cJSON_IsArray(arr) ? cJSON_GetArrayItem(arr, 0) : NULL;
	}
	if (cJSON_IsNumber(v))
		return doc_version_from_number(v->valuedouble, out, len);
	if (cJSON_IsString(v))
		return doc_version_from_text(v->valuestring, out, len, ms);
	return false;
}

/* Appends the hits of a search answer to out; *count says how many hits
 * there were (a page is full by them), *skipped how many were left alone:
 * with nul, ids that held a NUL (see mangle_nul). keys_only: the search
 * read no stored fields, so hits carry no _id and no _routing: each copy
 * is taken to be under its key, its place marked unknown. */
static RC_MUST_CHECK rcode
read_hits(cJSON *j, bool nul, bool keys_only, struct idlist *out, const struct os_keys *k,
          size_t *count, size_t *skipped, struct rerror *err)
{
	cJSON *hits = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "hits"), "hits"), *h;
	bool by_id = strcmp(k->sort_field, "_id") == 0;

	*count = *skipped = 0;
	if (hits == NULL)
		return RC_OK; /* filter_path drops an empty hits array entirely */
	if (!cJSON_IsArray(hits))
		return rerror_set(err, RC_ERR_OPENSEARCH, "opensearch search: no hits in answer");
	cJSON_ArrayForEach(h, hits)
	{
		cJSON *idv = cJSON_GetObjectItem(h, "_id");
		cJSON *index = cJSON_GetObjectItem(h, "_index");
		cJSON *routing = cJSON_GetObjectItem(h, "_routing");
		cJSON *seq = cJSON_GetObjectItem(h, "_seq_no");
		cJSON *term = cJSON_GetObjectItem(h, "_primary_term");
		const char *key = NULL, *docid = cJSON_IsString(idv) ? idv->valuestring : NULL;
		char version[64];
		int64_t ms;
		bool has_version;

		(*count)++;
		if (by_id) {
			key = docid;
		} else {
			/* the key is the hit's sort value: asking for it again as a
			 * doc value would cost the index a second lookup per hit */
			cJSON *arr = cJSON_GetObjectItem(h, "sort");
			cJSON *v = cJSON_IsArray(arr) ? cJSON_GetArrayItem(arr, 0) : NULL;
			key = cJSON_IsString(v) ? v->valuestring : NULL;
		}
		if (keys_only && !by_id)
			docid = key;
		if (key == NULL || docid == NULL)
			continue; /* no id value: cannot be placed in key order */
		if (nul && (strchr(key, '\x01') || strchr(docid, '\x01'))) {
			(*skipped)++;
			continue;
		}
		has_version = hit_version(h, k, version, sizeof(version), &ms);
		struct hit_where w = {
		    .index = cJSON_IsString(index) ? index->valuestring : NULL,
		    .routing = cJSON_IsString(routing) ? routing->valuestring : NULL,
		    .docid = strcmp(key, docid) ? docid : NULL,
		    .seq_no = cJSON_IsNumber(seq) ? (int64_t)seq->valuedouble : 0,
		    .primary_term = cJSON_IsNumber(term) ? (int64_t)term->valuedouble : 0,
		    .where_unknown = keys_only && !by_id};
		if (idlist_push_hit(out, key, strlen(key), -1, has_version ? version : NULL, ms,
		                    &w))
			return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	}
	if (*skipped)
		log_warn("opensearch: %zu index documents have a NUL character in their id: left "
		         "alone (they can be neither compared nor deleted safely)",
		         *skipped);
	return RC_OK;
}

static RC_MUST_CHECK rcode
docvalue_fields(cJSON *body, const struct os_keys *k)
{
	cJSON *dv = cJSON_AddArrayToObject(body, "docvalue_fields");

	if (dv == NULL)
		return RC_ERR_NOMEM;
	/* the key comes with each hit's sort values */
	if (k->version_field && *k->version_field && !k->version_source) {
		cJSON *f = cJSON_CreateObject();
		cJSON_AddItemToArray(dv, f);
		cJSON_AddStringToObject(f, "field", k->version_field);
		if (k->version_format)
			cJSON_AddStringToObject(f, "format", k->version_format);
	}
	return RC_OK;
}

static RC_MUST_CHECK rcode
search(struct opensearch *os, cJSON *body, cJSON **answer, bool *nul, struct rerror *err)
{
	char path[2048]; /* an index name escapes to up to 765 bytes */
	char *text = cJSON_PrintUnformatted(body);
	rcode rc;

	if (text == NULL)
		return RC_ERR_NOMEM;
	/* search_after pages need no hit count; preference keeps pages on one copy */
	snprintf(path, sizeof(path),
	         "%s/_search?filter_path=hits.hits._id,hits.hits._index,hits.hits._routing,"
	         "hits.hits._seq_no,hits.hits._primary_term,"
	         "hits.hits.fields,hits.hits._source,hits.hits.sort&preference=_local",
	         os->index_path);
	rc = request_json_nul(os, answer, nul, "POST", path, text, err);
	free(text);
	return rc;
}

/* One page of copies in key order: of all copies (ids NULL) or of the n
 * ids given (keys; with docids, _ids), strictly after `after` (NULL: from
 * the start) and up to hi (NULL: the end); *full when the page was full.
 * keys_only: no stored fields are read (read_hits). */
static RC_MUST_CHECK rcode
search_page(struct opensearch *os, struct idlist *out, bool *full, const struct os_keys *k,
            const char *const *ids, size_t n, bool docids, const char *after, const char *hi,
            bool keys_only, int size, struct rerror *err)
{
	cJSON *body = cJSON_CreateObject(), *sort, *s, *answer = NULL;
	size_t got = 0, skipped = 0;
	bool nul = false, by_id = strcmp(k->sort_field, "_id") == 0;
	rcode rc = RC_ERR_NOMEM;

	*full = false;
	if (body == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	if (ids && (by_id || docids)) {
		/* OpenSearch refuses an ids query holding "" (400 "Ids can't be
		 * empty") and holds no copy under an empty _id (it refuses one on
		 * write): such ids have no copies, and the others are asked */
		size_t asked = 0;
		for (size_t i = 0; i < n; i++)
			asked += *ids[i] != '\0';
		if (asked == 0) {
			cJSON_Delete(body);
			return RC_OK;
		}
	}
	cJSON_AddNumberToObject(body, "size", size);
	/* _source needs the stored fields, and a search by _id has no other
	 * key than the stored _id */
	keys_only = keys_only && !by_id && !k->version_source;
	if (k->version_source && k->version_field && *k->version_field)
		cJSON_AddItemToArray(cJSON_AddArrayToObject(body, "_source"),
		                     cJSON_CreateString(k->version_field));
	else
		cJSON_AddFalseToObject(body, "_source");
	/* in an index written in a random id order, reading the stored _id
	 * and _routing of scattered documents is most of a page's cost; the
	 * key, the version (doc values), _index and _seq_no still come back */
	if (keys_only)
		cJSON_AddStringToObject(body, "stored_fields", "_none_");
	cJSON_AddFalseToObject(body, "track_total_hits");
	/* what a repair's write is conditional on: the copy as judged */
	cJSON_AddTrueToObject(body, "seq_no_primary_term");
	if (ids || os->query || hi) {
		/* {"bool": {"filter": [ids or terms, the mirror's clause]}}: no
		 * scores, and the sort and search_after page within it */
		cJSON *filter = cJSON_AddArrayToObject(
		    cJSON_AddObjectToObject(cJSON_AddObjectToObject(body, "query"), "bool"),
		    "filter");
		if (ids && filter) {
			cJSON *q = cJSON_CreateObject();
			cJSON_AddItemToArray(filter, q);
			bool ids_query = by_id || docids;
			cJSON *terms = cJSON_AddObjectToObject(q, ids_query ? "ids" : "terms");
			cJSON *vals =
			    cJSON_AddArrayToObject(terms, ids_query ? "values" : k->sort_field);
			for (size_t i = 0; vals && i < n; i++)
				if (!ids_query || *ids[i])
					cJSON_AddItemToArray(vals, cJSON_CreateString(ids[i]));
		}
		if (hi && filter) {
			/* a range's pages stop at its end: a page past it would be
			 * read for nothing; and start after `after`, as search_after
			 * does: without that bound every copy from the start of the
			 * key space matches, and OpenSearch visits them all to sort,
			 * so a page cost more the later its range (docs/ENGINE.md,
			 * "Verifying by range summaries") */
			cJSON *q = cJSON_CreateObject(), *rq;
			cJSON_AddItemToArray(filter, q);
			rq = cJSON_AddObjectToObject(cJSON_AddObjectToObject(q, "range"),
			                             k->sort_field);
			if (after)
				cJSON_AddStringToObject(rq, "gt", after);
			cJSON_AddStringToObject(rq, "lte", hi);
		}
		if (add_mirror_query(os, filter))
			goto out;
	}
	sort = cJSON_AddArrayToObject(body, "sort");
	s = cJSON_AddObjectToObject(
	    cJSON_AddItemToArray(sort, cJSON_CreateObject()) ? sort->child : NULL, k->sort_field);
	cJSON_AddStringToObject(s, "order", "asc");
	/* a shard (or index) without the field mapped sorts as empty instead
	 * of failing the whole search (an index with no mapping at all refuses
	 * even a sort on _id) */
	cJSON_AddStringToObject(s, "unmapped_type", "keyword");
	if (after) {
		cJSON *sa = cJSON_AddArrayToObject(body, "search_after");
		cJSON_AddItemToArray(sa, cJSON_CreateString(after));
	}
	if (s == NULL || docvalue_fields(body, k))
		goto out;
	rc = search(os, body, &answer, &nul, err);
	if (rc == RC_OK)
		rc = read_hits(answer, nul, keys_only, out, k, &got, &skipped, err);
	if (rc == RC_OK)
		*full = got == (size_t)size;
out:
	if (rc == RC_ERR_NOMEM && err->code == RC_OK)
		rerror_set(err, rc, "out of memory");
	cJSON_Delete(answer);
	cJSON_Delete(body);
	return rc;
}

/* Copies of one id tie on the key (an alias's indices, custom routing
 * within one index), and search_after past a key skips all of them: a page
 * must not end inside such a run. A full page gives back its trailing run
 * (the next page starts with it again, whole); a page that is one run only
 * is completed with every copy of that key. *more: there may be more. */
static RC_MUST_CHECK rcode
page_in_key_order(struct opensearch *os, struct idlist *out, bool *more, const struct os_keys *k,
                  const char *const *ids, size_t n, bool docids, const char *after, const char *hi,
                  bool keys_only, int size, struct rerror *err)
{
	size_t before = out->n, run;
	bool full;
	rcode rc;

	*more = false;
	rc = search_page(os, out, &full, k, ids, n, docids, after, hi, keys_only, size, err);
	if (rc || !full || out->n == before)
		return rc;
	*more = true;
	for (run = 1;
	     out->n - run > before &&
	     diff_compare(idlist_id(out, out->n - run - 1), out->v[out->n - run - 1].id_len,
	                  idlist_id(out, out->n - 1), out->v[out->n - 1].id_len) == 0;
	     run++)
		;
	if (out->n - run > before) {
		out->n -= run; /* the arena keeps their bytes until the next clear */
		return RC_OK;
	}
	/* the whole page is one key: all its copies, then past it */
	char *key = strdup(idlist_id(out, out->n - 1));
	if (key == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	out->n = before;
	const char *one[1] = {key};
	rc = search_page(os, out, &full, k, one, 1, false, NULL, NULL, keys_only, 10000, err);
	if (rc == RC_OK && full)
		rc = rerror_set(err, RC_ERR_OPENSEARCH,
		                "opensearch: more than 10000 copies of the id %.200s", key);
	free(key);
	return rc;
}

rcode
opensearch_scan(struct opensearch *os, struct idlist *out, bool *more, const struct os_keys *k,
                const char *after, int size, struct rerror *err)
{
	return page_in_key_order(os, out, more, k, NULL, 0, false, after, NULL, false, size, err);
}

rcode
opensearch_scan_range(struct opensearch *os, struct idlist *out, bool *more,
                      const struct os_keys *k, const char *after, const char *hi, bool keys_only,
                      int size, struct rerror *err)
{
	return page_in_key_order(os, out, more, k, NULL, 0, false, after, hi, keys_only, size, err);
}

rcode
opensearch_add_query(const struct opensearch *os, struct cJSON *filter)
{
	return add_mirror_query(os, filter);
}

/* Every copy of the n keys (with docids: under the n _ids), in key order. */
static RC_MUST_CHECK rcode
lookup(struct opensearch *os, struct idlist *out, const struct os_keys *k, const char *const *ids,
       size_t n, bool docids, struct rerror *err)
{
	const char *after = NULL;
	char *last = NULL;
	bool more = n > 0;
	rcode rc = RC_OK;

	/* every copy of every id, in pages: an id may have several */
	while (rc == RC_OK && more) {
		size_t before = out->n;
		rc = page_in_key_order(os, out, &more, k, ids, n, docids, after, NULL, false, 1000,
		                       err);
		if (rc == RC_OK && more && out->n > before) {
			free(last);
			if ((last = strdup(idlist_id(out, out->n - 1))) == NULL)
				rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
			after = last;
		}
	}
	free(last);
	return rc;
}

rcode
opensearch_lookup(struct opensearch *os, struct idlist *out, const struct os_keys *k,
                  const char *const *ids, size_t n, struct rerror *err)
{
	return lookup(os, out, k, ids, n, false, err);
}

/* The first copy of key in l (sorted by key), or l->n. */
static size_t
first_copy(const struct idlist *l, const char *key)
{
	size_t lo = 0, hi = l->n, len = strlen(key);

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (diff_compare(idlist_id(l, mid), l->v[mid].id_len, key, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Does copy i of l sit where a write of c lands: its _id, its concrete
 * index and its shard's routing (none: the _id routes)? */
static bool
copy_is_target(const struct idlist *l, size_t i, const struct os_cond *c, const char *write_index)
{
	const char *index = idlist_index(l, i), *want = c->index ? c->index : write_index;
	const char *id = idlist_target(l, i), *routing = idlist_routing(l, i);

	if (strcmp(id, c->id) != 0)
		return false;
	if (want && index && strcmp(index, want) != 0)
		return false;
	return strcmp(routing ? routing : id, c->routing ? c->routing : c->id) == 0;
}

rcode
opensearch_conditions(struct opensearch *os, struct os_cond *c, size_t n, const struct os_keys *k,
                      const char *write_index, bool by_docid, struct rerror *err)
{
	struct idlist l = {0};
	const char **keys = malloc((n ? n : 1) * sizeof(*keys));
	rcode rc = keys ? RC_OK : rerror_set(err, RC_ERR_NOMEM, "out of memory");

	for (size_t i = 0; keys && i < n; i++) {
		keys[i] = by_docid ? c[i].id : c[i].key;
		c[i].found = c[i].own = false;
		c[i].seq_no = c[i].primary_term = 0;
		c[i].version[0] = '\0';
	}
	if (rc == RC_OK && n)
		rc = lookup(os, &l, k, keys, n, by_docid, err);
	if (rc == RC_ERR_NOTFOUND) { /* no index: no copies */
		*err = (struct rerror){0};
		rc = RC_OK;
	}
	for (size_t i = 0; rc == RC_OK && i < n; i++) {
		size_t len = strlen(c[i].key);
		/* by key: the run of copies of the key; by _id: any copy */
		for (size_t j = by_docid ? 0 : first_copy(&l, c[i].key);
		     j < l.n && (by_docid ||
		                 diff_compare(idlist_id(&l, j), l.v[j].id_len, c[i].key, len) == 0);
		     j++) {
			if (!copy_is_target(&l, j, &c[i], write_index))
				continue;
			const char *v = idlist_version(&l, j);
			c[i].found = true;
			c[i].own =
			    diff_compare(idlist_id(&l, j), l.v[j].id_len, c[i].key, len) == 0;
			c[i].seq_no = l.v[j].seq_no;
			c[i].primary_term = l.v[j].primary_term;
			snprintf(c[i].version, sizeof(c[i].version), "%s", v ? v : "");
			break;
		}
	}
	idlist_free(&l);
	free(keys);
	return rc;
}

rcode
opensearch_lookup_kept(struct opensearch *os, struct idlist *out, const struct os_keys *k,
                       const char *keep_query, const char *const *ids, size_t n, struct rerror *err)
{
	cJSON *keep = cJSON_Parse(keep_query), *both = cJSON_CreateObject(), *mine = os->query;
	cJSON *filter = cJSON_AddArrayToObject(cJSON_AddObjectToObject(both, "bool"), "filter");
	rcode rc = RC_OK;

	if (!cJSON_IsObject(keep))
		rc = rerror_set(err, RC_ERR_CONFIG, "OPENSEARCH_KEEP_QUERY is not a JSON object");
	else if (filter == NULL || add_mirror_query(os, filter) ||
	         !cJSON_AddItemToArray(filter, keep))
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	else
		keep = NULL; /* both's */
	/* the lookup under the mirror's clause and the keep clause both */
	if (rc == RC_OK) {
		os->query = both;
		rc = opensearch_lookup(os, out, k, ids, n, err);
		os->query = mine;
	}
	cJSON_Delete(keep);
	cJSON_Delete(both);
	return rc;
}

rcode
opensearch_get_source(struct opensearch *os, struct buf *out, bool *found, const char *index,
                      const char *id, const char *routing, struct rerror *err)
{
	char *ei = index ? curl_easy_escape(os->curl, index, 0) : NULL;
	char *eid = curl_easy_escape(os->curl, id, 0);
	char *er = routing ? curl_easy_escape(os->curl, routing, 0) : NULL;
	struct buf path = {0};
	long status = 0;
	rcode rc;

	*found = false;
	if ((index && ei == NULL) || eid == NULL || (routing && er == NULL) ||
	    buf_printf(&path, "%s%s/_source/%s%s%s", index ? "/" : os->index_path, ei ? ei : "",
	               eid, er ? "?routing=" : "", er ? er : "")) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	rc = opensearch_request(os, &status, out, "GET", path.data, NULL, 0, err);
	if (rc == RC_OK && status == 200)
		*found = true;
	else if (rc == RC_OK && status != 404) {
		char reason[1100];
		error_reason(os, out, status, reason, sizeof(reason));
		rc = rerror_set(err, RC_ERR_OPENSEARCH,
		                "opensearch: reading the copy of %.200s: %s", id, reason);
	}
out:
	curl_free(ei);
	curl_free(eid);
	curl_free(er);
	buf_free(&path);
	return rc;
}

/* A request whose answer is kept as it came (not parsed here). */
static RC_MUST_CHECK rcode
request_raw(struct opensearch *os, struct buf *resp, const char *method, const char *path,
            const struct buf *body, struct rerror *err)
{
	long status = 0;
	rcode rc;

	buf_reset(resp);
	rc = opensearch_request(os, &status, resp, method, path, body->data, body->len, err);
	if (rc == RC_OK && status != 200) {
		char reason[1100];
		error_reason(os, resp, status, reason, sizeof(reason));
		rc = rerror_set(err, status == 404 ? RC_ERR_NOTFOUND : RC_ERR_OPENSEARCH,
		                "opensearch %s %s: %s", method, path, reason);
	}
	return rc;
}

/* One _mget of docs (in the order given; each its _id, and its index and
 * routing where set), each asking for source (a JSON value: true, false,
 * a list of fields, {"excludes": ...}); query: "" or "?filter_path=...". */
static RC_MUST_CHECK rcode
mget_request(struct opensearch *os, struct buf *resp, const struct os_get *docs, size_t n,
             const char *source, const char *query, struct rerror *err)
{
	struct buf body = {0};
	char path[2048]; /* an index name escapes to up to 765 bytes */
	rcode rc = buf_puts(&body, "{\"docs\":[");

	for (size_t i = 0; rc == RC_OK && i < n; i++) {
		rc = buf_puts(&body, i ? ",{\"_id\":" : "{\"_id\":");
		if (rc == RC_OK)
			rc = doc_json_string(&body, docs[i].id, strlen(docs[i].id));
		if (rc == RC_OK && docs[i].index && (rc = buf_puts(&body, ",\"_index\":")) == RC_OK)
			rc = doc_json_string(&body, docs[i].index, strlen(docs[i].index));
		if (rc == RC_OK && docs[i].routing &&
		    (rc = buf_puts(&body, ",\"routing\":")) == RC_OK)
			rc = doc_json_string(&body, docs[i].routing, strlen(docs[i].routing));
		if (rc == RC_OK)
			rc = buf_printf(&body, ",\"_source\":%s}", source);
	}
	if (rc == RC_OK)
		rc = buf_puts(&body, "]}");
	if (rc)
		rc = rerror_set(err, rc, "out of memory");
	else {
		snprintf(path, sizeof(path), "%s/_mget%s", os->index_path, query);
		rc = request_raw(os, resp, "POST", path, &body, err);
	}
	buf_free(&body);
	return rc;
}

/* An _mget whose _source is `open names close` (each name a JSON string),
 * or true when there are no names. */
static RC_MUST_CHECK rcode
mget_source(struct opensearch *os, struct buf *resp, const struct os_get *docs, size_t n,
            const char *open, const char *const *names, size_t n_names, const char *close,
            struct rerror *err)
{
	struct buf src = {0};
	rcode rc = buf_puts(&src, n_names ? open : "true");

	for (size_t i = 0; rc == RC_OK && i < n_names; i++) {
		if (i)
			rc = buf_puts(&src, ",");
		if (rc == RC_OK)
			rc = doc_json_string(&src, names[i], strlen(names[i]));
	}
	if (rc == RC_OK && n_names)
		rc = buf_puts(&src, close);
	if (rc)
		rc = rerror_set(err, rc, "out of memory");
	else
		rc = mget_request(os, resp, docs, n, src.data, "", err);
	buf_free(&src);
	return rc;
}

rcode
opensearch_mget(struct opensearch *os, struct buf *resp, const struct os_get *docs, size_t n,
                const char *const *includes, size_t n_inc, struct rerror *err)
{
	return mget_source(os, resp, docs, n, "[", includes, n_inc, "]", err);
}

rcode
opensearch_mget_excluding(struct opensearch *os, struct buf *resp, const struct os_get *docs,
                          size_t n, const char *const *excludes, size_t n_exc, struct rerror *err)
{
	return mget_source(os, resp, docs, n, "{\"excludes\":[", excludes, n_exc, "]}", err);
}

rcode
opensearch_conditions_now(struct opensearch *os, struct os_cond *c, size_t n, struct rerror *err)
{
	struct buf resp = {0};
	struct os_get *gets = calloc(n ? n : 1, sizeof(*gets));
	cJSON *answer = NULL, *docs, *d;
	size_t i = 0, asked = 0;
	rcode rc = RC_OK;

	if (gets == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	for (size_t k = 0; k < n; k++) {
		c[k].found = c[k].own = false;
		c[k].seq_no = c[k].primary_term = 0;
		c[k].version[0] = '\0';
		/* an empty _id holds no copy, and _mget refuses the whole request
		 * for it: such ids are not asked (found false) */
		if (*c[k].id)
			gets[asked++] = (struct os_get){
			    .index = c[k].index, .id = c[k].id, .routing = c[k].routing};
	}
	if (asked == 0)
		goto out;
	/* every doc keeps its _id, so the answer's array stays in the order asked */
	rc = mget_request(os, &resp, gets, asked, "false",
	                  "?filter_path=docs._id,docs.found,docs._seq_no,docs._primary_term", err);
	if (rc == RC_ERR_NOTFOUND) { /* no index: no copies */
		*err = (struct rerror){0};
		rc = RC_OK;
		goto out;
	}
	if (rc)
		goto out;
	answer = cJSON_ParseWithLength(resp.data, resp.len);
	docs = cJSON_GetObjectItem(answer, "docs");
	if (!cJSON_IsArray(docs) || (size_t)cJSON_GetArraySize(docs) != asked) {
		rc = rerror_set(err, RC_ERR_OPENSEARCH,
		                "opensearch _mget: an answer not understood");
		goto out;
	}
	cJSON_ArrayForEach(d, docs)
	{
		cJSON *seq = cJSON_GetObjectItem(d, "_seq_no");
		cJSON *term = cJSON_GetObjectItem(d, "_primary_term");
		while (i < n && *c[i].id == '\0')
			i++; /* not asked */
		assert(i < n);
		/* not found, or an error for this copy (its index missing): none there */
		if (cJSON_IsTrue(cJSON_GetObjectItem(d, "found")) && cJSON_IsNumber(seq) &&
		    cJSON_IsNumber(term)) {
			c[i].found = c[i].own = true;
			c[i].seq_no = (int64_t)seq->valuedouble;
			c[i].primary_term = (int64_t)term->valuedouble;
		}
		i++;
	}
out:
	cJSON_Delete(answer);
	buf_free(&resp);
	free(gets);
	return rc;
}

rcode
opensearch_copies(struct opensearch *os, struct buf *resp, const char *id_field, const char *id,
                  struct rerror *err)
{
	struct buf body = {0};
	char path[2048]; /* an index name escapes to up to 765 bytes */
	rcode rc = buf_puts(&body, "{\"size\":100,\"query\":{\"bool\":{\"should\":["
	                           "{\"ids\":{\"values\":[");

	if (rc == RC_OK)
		rc = doc_json_string(&body, id, strlen(id));
	if (rc == RC_OK)
		rc = buf_puts(&body, "]}}");
	if (rc == RC_OK && id_field && *id_field) {
		rc = buf_puts(&body, ",{\"term\":{");
		if (rc == RC_OK)
			rc = doc_json_string(&body, id_field, strlen(id_field));
		if (rc == RC_OK)
			rc = buf_puts(&body, ":");
		if (rc == RC_OK)
			rc = doc_json_string(&body, id, strlen(id));
		if (rc == RC_OK)
			rc = buf_puts(&body, "}}");
	}
	if (rc == RC_OK)
		rc = buf_puts(&body, "]}}}");
	if (rc)
		rc = rerror_set(err, rc, "out of memory");
	else {
		snprintf(path, sizeof(path), "%s/_search", os->index_path);
		rc = request_raw(os, resp, "POST", path, &body, err);
	}
	buf_free(&body);
	return rc;
}

void
bulk_result_free(struct bulk_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->items[i].reason);
	free(r->items);
	memset(r, 0, sizeof(*r));
}

static RC_MUST_CHECK rcode
parse_bulk(struct bulk_result *res, const struct buf *resp, size_t n_items, struct rerror *err)
{
	cJSON *j, *items, *it;
	const char *head;
	size_t i = 0;

	res->items = calloc(n_items ? n_items : 1, sizeof(*res->items));
	if (res->items == NULL)
		return RC_ERR_NOMEM;
	res->n = n_items;
	/* the common case, "errors":false near the top, needs no parse */
	head = resp->data ? strstr(resp->data, "\"errors\":") : NULL;
	if (head && head - resp->data < 64 && strncmp(head + 9, "false", 5) == 0) {
		for (i = 0; i < n_items; i++)
			res->items[i].status = 200;
		return RC_OK;
	}
	j = cJSON_ParseWithLength(resp->data, resp->len);
	items = j ? cJSON_GetObjectItem(j, "items") : NULL;
	if (!cJSON_IsArray(items)) {
		cJSON_Delete(j);
		return rerror_set(err, RC_ERR_OPENSEARCH, "opensearch _bulk: answer has no items");
	}
	cJSON_ArrayForEach(it, items)
	{
		cJSON *op = it->child, *st, *e;
		if (i >= n_items)
			break;
		st = op ? cJSON_GetObjectItem(op, "status") : NULL;
		res->items[i].status = cJSON_IsNumber(st) ? st->valueint : 0;
		e = op ? cJSON_GetObjectItem(op, "error") : NULL;
		if (cJSON_IsObject(e)) {
			cJSON *type = cJSON_GetObjectItem(e, "type");
			res->items[i].version_conflict =
			    res->items[i].status == 409 && cJSON_IsString(type) &&
			    strcmp(type->valuestring, "version_conflict_engine_exception") == 0;
			res->items[i].blocked =
			    res->items[i].status == 403 && cJSON_IsString(type) &&
			    strcmp(type->valuestring, "cluster_block_exception") == 0;
			char text[1024];
			format_error(e, text, sizeof(text));
			res->items[i].reason = strdup(text);
			if (res->items[i].reason == NULL) {
				cJSON_Delete(j);
				return RC_ERR_NOMEM;
			}
		}
		i++;
	}
	cJSON_Delete(j);
	if (i != n_items)
		return rerror_set(err, RC_ERR_OPENSEARCH,
		                  "opensearch _bulk: %zu items answered for %zu sent", i, n_items);
	return RC_OK;
}

/* One backoff policy for everything that is retried: exponential from
 * 200 ms to 30 s, full jitter (sleep uniformly in [b/2, b]). true when
 * stop cut the sleep short. */
struct backoff {
	int64_t next_ms;
};

static bool
backoff_sleep(struct backoff *b, volatile int *stop)
{
	if (b->next_ms <= 0)
		b->next_ms = 200;
	int64_t ms = b->next_ms / 2 + (int64_t)(random() % (b->next_ms / 2 + 1));
	if (b->next_ms < 30000)
		b->next_ms *= 2;
	return util_sleep_ms(ms, stop);
}

/* One _bulk request, retried whole while the index is busy or unreachable. */
static RC_MUST_CHECK rcode
bulk_once(struct opensearch *os, struct bulk_result *res, int *attempts, const char *body,
          size_t len, size_t n_items, volatile int *stop, struct rerror *err)
{
	struct buf resp = {0};
	struct backoff bo = {0};
	char path[2048]; /* an index name escapes to up to 765 bytes */
	rcode rc = RC_OK;

	memset(res, 0, sizeof(*res));
	/* only what parse_bulk reads: each item's status (which keeps the
	 * items in order) and error; the rest (_index, _id, _version, result,
	 * _shards, _seq_no, ...) is ~200 bytes an item OpenSearch need not
	 * write nor we read */
	snprintf(path, sizeof(path), "%s/_bulk?filter_path=errors,items.*.status,items.*.error",
	         os->index_path);
	for (int tries = 1;; tries++) {
		long status = 0;
		(*attempts)++;
		rc = opensearch_request(os, &status, &resp, "POST", path, body, len, err);
		res->http_status = status;
		if (rc == RC_OK && status == 200) {
			rc = parse_bulk(res, &resp, n_items, err);
			break;
		}
		if (rc == RC_OK && status == 413) {
			rc = rerror_set(err, RC_ERR_TOOLARGE,
			                "opensearch _bulk: 413 request too large"
			                " (%zu bytes)",
			                len);
			break;
		}
		bool transient =
		    rc != RC_OK || status == 429 || status == 502 || status == 503 || status == 504;
		if (rc == RC_OK && !transient) {
			char reason[1100];
			error_reason(os, &resp, status, reason, sizeof(reason));
			/* 400: the request as a whole was refused for what it holds
			 * (a validation failure): the caller splits it */
			rc = rerror_set(err, status == 400 ? RC_ERR_INVALID : RC_ERR_OPENSEARCH,
			                "opensearch _bulk: %s", reason);
			break;
		}
		if (tries > os->max_retries) {
			if (rc == RC_OK)
				rc = rerror_set(err, RC_ERR_RETRY,
				                "opensearch _bulk: HTTP %ld after %d attempts",
				                status, tries);
			break;
		}
		log_warn("opensearch _bulk: %s; retry %d",
		         rc ? err->message
		            : (status == 429 ? "429 too many requests" : "server busy"),
		         tries);
		if (backoff_sleep(&bo, stop)) {
			rc = rerror_set(err, RC_ERR_CANCELLED, "cancelled while backing off");
			break;
		}
		rc = RC_OK;
	}
	buf_free(&resp);
	if (rc && res->items == NULL)
		res->n = 0;
	return rc;
}

rcode
opensearch_bulk(struct opensearch *os, struct bulk_result *res, int *attempts, const char *body,
                size_t len, size_t n_items, volatile int *stop, struct rerror *err)
{
	*attempts = 0;
	return bulk_once(os, res, attempts, body, len, n_items, stop, err);
}

static const char *const bulk_action_names[] = {[BULK_INDEX] = "index",
                                                [BULK_CREATE] = "create",
                                                [BULK_UPDATE] = "update",
                                                [BULK_DELETE] = "delete"};

const char *
bulk_action_name(enum bulk_action a)
{
	return bulk_action_names[a];
}

/* What an action adds to its action line after _id, _index and routing. */
static RC_MUST_CHECK rcode
bulk_action_meta(struct buf *b, const struct bulk_doc *d)
{
	bool cond = d->if_primary_term > 0;
	rcode rc = RC_OK;

	/* only on the copy it judged: another write since and it is refused */
	if (cond)
		rc = buf_printf(b, ",\"if_seq_no\":%lld,\"if_primary_term\":%lld",
		                (long long)d->if_seq_no, (long long)d->if_primary_term);
	/* update actions accept no external version (config.c refuses it), nor
	 * conditional writes, and create only internal ones */
	if (rc == RC_OK && d->action == BULK_INDEX && !cond && d->version >= 0)
		rc = buf_printf(b, ",\"version\":%lld,\"version_type\":\"external_gte\"",
		                (long long)d->version);
	switch (d->action) {
	case BULK_INDEX:
	case BULK_CREATE:
		/* an update runs no named pipeline (OpenSearch 2.19 accepts the key
		 * and ignores it; only index.default_pipeline runs): sent on index
		 * and create only */
		if (rc == RC_OK && d->pipeline && (rc = buf_puts(b, ",\"pipeline\":")) == RC_OK)
			rc = doc_json_string(b, d->pipeline, strlen(d->pipeline));
		return rc;
	case BULK_UPDATE:
		/* as the live syncer: a concurrent write of the same copy is
		 * retried; a conditional one must not be (it is refused as a
		 * conflict) */
		return rc == RC_OK && !cond ? buf_puts(b, ",\"retry_on_conflict\":3") : rc;
	case BULK_DELETE:
		return rc;
	}
	return rc;
}

/* The source line that follows the action line: the document, wrapped for
 * an update; a delete has none. */
static RC_MUST_CHECK rcode
bulk_source(struct buf *b, const struct bulk_doc *d)
{
	rcode rc = RC_OK;

	if (d->source == NULL)
		return RC_OK;
	switch (d->action) {
	case BULK_INDEX:
	case BULK_CREATE:
		if ((rc = buf_append(b, d->source, d->source_len)) == RC_OK)
			rc = buf_puts(b, "\n");
		return rc;
	case BULK_UPDATE:
		/* a conditional update is {"doc": source} alone: OpenSearch 2.19
		 * refuses compare-and-write with doc_as_upsert */
		if ((rc = buf_puts(b, "{\"doc\":")) == RC_OK &&
		    (rc = buf_append(b, d->source, d->source_len)) == RC_OK)
			rc = buf_puts(b, d->if_primary_term > 0 ? "}\n"
			                                        : ",\"doc_as_upsert\":true}\n");
		return rc;
	case BULK_DELETE:
		return RC_OK;
	}
	return RC_OK;
}

/* The action line (and source) of one document: the one place where a
 * write's metadata is spelled (docs/ENGINE.md, "How a repair writes"). */
static RC_MUST_CHECK rcode
bulk_lines(struct buf *b, const struct bulk_doc *d)
{
	rcode rc = buf_printf(b, "{\"%s\":{\"_id\":", bulk_action_name(d->action));

	if (rc == RC_OK)
		rc = doc_json_string(b, d->id, strlen(d->id));
	if (rc == RC_OK && d->index && (rc = buf_puts(b, ",\"_index\":")) == RC_OK)
		rc = doc_json_string(b, d->index, strlen(d->index));
	if (rc == RC_OK && d->routing && (rc = buf_puts(b, ",\"routing\":")) == RC_OK)
		rc = doc_json_string(b, d->routing, strlen(d->routing));
	if (rc == RC_OK)
		rc = bulk_action_meta(b, d);
	if (rc == RC_OK)
		rc = buf_puts(b, "}}\n");
	if (rc == RC_OK)
		rc = bulk_source(b, d);
	return rc;
}

static RC_MUST_CHECK rcode
set_reason(struct bulk_doc *d, int status, const char *reason)
{
	free(d->reason);
	d->status = status;
	d->reason = reason ? strdup(reason) : NULL;
	return reason && d->reason == NULL ? RC_ERR_NOMEM : RC_OK;
}

/* A conditional write's (or a create's) answer: refused because the copy
 * changed since it was judged (409 version conflict: written since, or
 * created meanwhile; 404 on an update: deleted since) is left to that
 * newer write, not failed. A conditional delete of a copy gone since is
 * answered 409 "but no document was found": gone, as a 404 says. */
static RC_MUST_CHECK rcode
conditional_outcome(struct bulk_doc *d, bool conflict)
{
	bool cond = d->if_primary_term > 0 || d->action == BULK_CREATE;
	char text[1200];

	if (!cond)
		return RC_OK;
	if (d->action == BULK_DELETE && conflict && d->reason &&
	    strstr(d->reason, "but no document was found"))
		return set_reason(d, 404, NULL);
	if (!conflict && !(d->status == 404 && d->action == BULK_UPDATE))
		return RC_OK;
	snprintf(text, sizeof(text),
	         "the index copy changed after it was judged: left to the newer write (%s)",
	         d->reason ? d->reason : "version conflict");
	d->newer = true;
	return set_reason(d, d->status, text);
}

/* Sends docs[idx[0..n-1]] as one request, splitting it while it is refused
 * as a whole for what it holds. */
static RC_MUST_CHECK rcode
bulk_split(struct opensearch *os, struct bulk_doc *docs, const size_t *idx, size_t n, int *attempts,
           volatile int *stop, struct rerror *err)
{
	struct buf body = {0};
	struct bulk_result res;
	rcode rc = RC_OK;

	for (size_t i = 0; rc == RC_OK && i < n; i++)
		rc = bulk_lines(&body, &docs[idx[i]]);
	if (rc == RC_OK)
		rc = bulk_once(os, &res, attempts, body.data, body.len, n, stop, err);
	else
		memset(&res, 0, sizeof(res));
	buf_free(&body);
	if (rc == RC_ERR_TOOLARGE || rc == RC_ERR_INVALID) {
		bulk_result_free(&res);
		if (n == 1) {
			/* handled: this document's failure, not the request's */
			rc = set_reason(&docs[idx[0]], rc == RC_ERR_TOOLARGE ? 413 : 400,
			                rc == RC_ERR_TOOLARGE
			                    ? "document too large for the index (HTTP 413)"
			                    : err->message);
			*err = (struct rerror){0};
			return rc;
		}
		*err = (struct rerror){0};
		rc = bulk_split(os, docs, idx, n / 2, attempts, stop, err);
		return rc ? rc : bulk_split(os, docs, idx + n / 2, n - n / 2, attempts, stop, err);
	}
	for (size_t i = 0; rc == RC_OK && i < res.n && i < n; i++) {
		struct bulk_doc *d = &docs[idx[i]];
		free(d->reason);
		d->status = res.items[i].status;
		/* an external version, or a condition on the copy judged, makes a
		 * conflict mean "newer there" */
		d->newer = res.items[i].version_conflict && d->version >= 0;
		d->blocked = res.items[i].blocked;
		d->reason = res.items[i].reason;
		res.items[i].reason = NULL;
		rc = conditional_outcome(d, res.items[i].version_conflict);
	}
	bulk_result_free(&res);
	return rc;
}

/* Refused because another request changed the mapping at the same time:
 * two concurrent _bulk requests that both map a new field dynamically, one
 * from an integer and one from a decimal value, and the later update loses
 * ("mapper [f] cannot be changed from type [long] to [float]"). Sent again,
 * the document meets the settled mapping (and is coerced to it, or fails
 * with the real reason). */
static bool
mapping_race(const struct bulk_doc *d)
{
	return d->status == 400 && d->reason &&
	       strstr(d->reason, "illegal_argument_exception: mapper [") &&
	       strstr(d->reason, "cannot be changed from type [");
}

rcode
opensearch_bulk_send(struct opensearch *os, struct bulk_doc *docs, size_t n, int *attempts,
                     volatile int *stop, struct rerror *err)
{
	struct backoff bo = {0};
	size_t *idx = malloc((n ? n : 1) * sizeof(*idx)), m = n;
	rcode rc;

	*attempts = 0;
	if (idx == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	m = 0;
	for (size_t i = 0; i < n; i++) {
		if (docs[i].decided)
			continue; /* its outcome was known before sending */
		idx[m++] = i;
		docs[i].status = 0;
		docs[i].newer = docs[i].blocked = false;
		free(docs[i].reason);
		docs[i].reason = NULL;
	}
	rc = m ? bulk_split(os, docs, idx, m, attempts, stop, err) : RC_OK;
	/* documents the index turned away with 429 inside a 200 answer, or
	 * that lost a race for a dynamic mapping: sent again, with the same
	 * backoff as whole requests */
	for (int round = 0; rc == RC_OK && round < os->max_retries; round++) {
		m = 0;
		for (size_t i = 0; i < n; i++)
			if (!docs[i].decided && (docs[i].status == 429 || mapping_race(&docs[i])))
				idx[m++] = i;
		if (m == 0)
			break;
		log_warn("opensearch _bulk: %zu documents rejected with 429 or by a concurrent "
		         "mapping update; retrying",
		         m);
		if (backoff_sleep(&bo, stop))
			break;
		rc = bulk_split(os, docs, idx, m, attempts, stop, err);
	}
	free(idx);
	return rc;
}

void
bulk_docs_reset(struct bulk_doc *docs, size_t n)
{
	for (size_t i = 0; docs && i < n; i++) {
		free(docs[i].reason);
		docs[i].reason = NULL;
		docs[i].status = 0;
		docs[i].newer = docs[i].blocked = false;
		docs[i].decided = false;
	}
}
