/*
 * opensearch.c: OpenSearch over libcurl, JSON through cJSON.
 *
 * - One curl easy handle per struct, reused so requests share a keep-alive
 *   connection. TLS verification is on unless OPENSEARCH_TLS_VERIFY=false
 *   (the system this replaces turned it off unconditionally).
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
 * - _bulk: each document's action (enum bulk_action: index, update or
 *   delete) and its metadata are spelled in one place (bulk_lines).
 *   Answers are read item by item: one rejected document fails alone, with
 *   OpenSearch's reason. A whole-request 429/502/503/504 or a lost
 *   connection, and documents turned away with 429 or by a concurrent
 *   dynamic-mapping update, are retried with exponential backoff and full
 *   jitter (SYNC_MAX_RETRIES); a request refused as a whole for what it
 *   holds (413, 400) is split until the document at fault stands alone.
 */
#include "opensearch.h"
#include "doc.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

struct opensearch {
	CURL *curl;
	char *base;
	char *index_path; /* "/<escaped index>" */
	char *userpwd;
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

rcode
opensearch_open(struct opensearch **out, const struct config *cfg, struct rerror *err)
{
	struct opensearch *os;
	char *esc;

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
	if (cfg->opensearch_query && *cfg->opensearch_query) {
		os->query = cJSON_Parse(cfg->opensearch_query);
		if (!cJSON_IsObject(os->query)) {
			opensearch_free(os);
			return rerror_set(err, RC_ERR_CONFIG,
			                  "OPENSEARCH_QUERY is invalid: not a JSON object");
		}
	}
	if (*cfg->opensearch_username) {
		size_t n = strlen(cfg->opensearch_username) + strlen(cfg->opensearch_password) + 2;
		os->userpwd = malloc(n);
		if (os->userpwd == NULL) {
			opensearch_free(os);
			return rerror_set(err, RC_ERR_NOMEM, "out of memory");
		}
		snprintf(os->userpwd, n, "%s:%s", cfg->opensearch_username,
		         cfg->opensearch_password);
		curl_easy_setopt(os->curl, CURLOPT_USERPWD, os->userpwd);
		curl_easy_setopt(os->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	}
	curl_easy_setopt(os->curl, CURLOPT_ERRORBUFFER, os->errbuf);
	curl_easy_setopt(os->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(os->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(os->curl, CURLOPT_TIMEOUT_MS, (long)cfg->opensearch_timeout_ms);
	curl_easy_setopt(os->curl, CURLOPT_SSL_VERIFYPEER, cfg->opensearch_tls_verify ? 1L : 0L);
	curl_easy_setopt(os->curl, CURLOPT_SSL_VERIFYHOST, cfg->opensearch_tls_verify ? 2L : 0L);
	if (*cfg->opensearch_ca_file)
		curl_easy_setopt(os->curl, CURLOPT_CAINFO, cfg->opensearch_ca_file);
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
	cJSON_Delete(os->query);
	if (os->userpwd) {
		memset(os->userpwd, 0, strlen(os->userpwd));
		free(os->userpwd);
	}
	free(os);
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
	headers =
	    curl_slist_append(headers, strstr(path, "_bulk") ? "Content-Type: application/x-ndjson"
	                                                     : "Content-Type: application/json");
	headers = curl_slist_append(headers, "Expect:");
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
		rc = rerror_set(err, RC_ERR_OPENSEARCH, "opensearch %s unreachable: %s",
		                masked ? masked : "",
		                *os->errbuf ? os->errbuf : curl_easy_strerror(cc));
		free(masked);
	} else {
		curl_easy_getinfo(os->curl, CURLINFO_RESPONSE_CODE, status);
	}
	if (rc == RC_OK && *status == 401) {
		/* wrong credentials are no outage: no retry or resume mends them
		 * (RC_ERR_CONFIG: exit 78, the run is not resumable) */
		char *masked = util_mask_uri(os->base);
		rc = rerror_set(err, RC_ERR_CONFIG,
		                "opensearch %s: authentication failed (HTTP 401): check "
		                "OPENSEARCH_USERNAME and OPENSEARCH_PASSWORD",
		                masked ? masked : "");
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

/* A short reason from an OpenSearch error body. */
static void
error_reason(const struct buf *resp, long status, char *out, size_t len)
{
	cJSON *j = resp->data ? cJSON_Parse(resp->data) : NULL;
	cJSON *e = j ? cJSON_GetObjectItem(j, "error") : NULL;
	char text[1024];

	if (cJSON_IsObject(e)) {
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
		error_reason(&resp, status, reason, sizeof(reason));
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
		error_reason(&resp, status, reason, sizeof(reason));
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
opensearch_refresh(struct opensearch *os, struct rerror *err)
{
	char path[2048]; /* an index name escapes to up to 765 bytes */
	cJSON *j;
	rcode rc;

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
 * with nul, ids that held a NUL (see mangle_nul). */
static RC_MUST_CHECK rcode
read_hits(cJSON *j, bool nul, struct idlist *out, const struct os_keys *k, size_t *count,
          size_t *skipped, struct rerror *err)
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
		if (key == NULL || docid == NULL)
			continue; /* no id value: cannot be placed in key order */
		if (nul && (strchr(key, '\x01') || strchr(docid, '\x01'))) {
			(*skipped)++;
			continue;
		}
		has_version = hit_version(h, k, version, sizeof(version), &ms);
		struct hit_where w = {.index = cJSON_IsString(index) ? index->valuestring : NULL,
		                      .routing =
		                          cJSON_IsString(routing) ? routing->valuestring : NULL,
		                      .docid = strcmp(key, docid) ? docid : NULL};
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
	         "hits.hits.fields,hits.hits._source,hits.hits.sort&preference=_local",
	         os->index_path);
	rc = request_json_nul(os, answer, nul, "POST", path, text, err);
	free(text);
	return rc;
}

/* One page of copies in key order: of all copies (ids NULL) or of the n
 * ids given, strictly after `after` (NULL: from the start); *full when the
 * page was full. */
static RC_MUST_CHECK rcode
search_page(struct opensearch *os, struct idlist *out, bool *full, const struct os_keys *k,
            const char *const *ids, size_t n, const char *after, int size, struct rerror *err)
{
	cJSON *body = cJSON_CreateObject(), *sort, *s, *answer = NULL;
	size_t got = 0, skipped = 0;
	bool nul = false, by_id = strcmp(k->sort_field, "_id") == 0;
	rcode rc = RC_ERR_NOMEM;

	*full = false;
	if (body == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	cJSON_AddNumberToObject(body, "size", size);
	if (k->version_source && k->version_field && *k->version_field)
		cJSON_AddItemToArray(cJSON_AddArrayToObject(body, "_source"),
		                     cJSON_CreateString(k->version_field));
	else
		cJSON_AddFalseToObject(body, "_source");
	cJSON_AddFalseToObject(body, "track_total_hits");
	if (ids || os->query) {
		/* {"bool": {"filter": [ids or terms, the mirror's clause]}}: no
		 * scores, and the sort and search_after page within it */
		cJSON *filter = cJSON_AddArrayToObject(
		    cJSON_AddObjectToObject(cJSON_AddObjectToObject(body, "query"), "bool"),
		    "filter");
		if (ids && filter) {
			cJSON *q = cJSON_CreateObject();
			cJSON_AddItemToArray(filter, q);
			cJSON *terms = cJSON_AddObjectToObject(q, by_id ? "ids" : "terms");
			cJSON *vals =
			    cJSON_AddArrayToObject(terms, by_id ? "values" : k->sort_field);
			for (size_t i = 0; vals && i < n; i++)
				cJSON_AddItemToArray(vals, cJSON_CreateString(ids[i]));
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
		rc = read_hits(answer, nul, out, k, &got, &skipped, err);
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
                  const char *const *ids, size_t n, const char *after, int size, struct rerror *err)
{
	size_t before = out->n, run;
	bool full;
	rcode rc;

	*more = false;
	rc = search_page(os, out, &full, k, ids, n, after, size, err);
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
	rc = search_page(os, out, &full, k, one, 1, NULL, 10000, err);
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
	return page_in_key_order(os, out, more, k, NULL, 0, after, size, err);
}

rcode
opensearch_lookup(struct opensearch *os, struct idlist *out, const struct os_keys *k,
                  const char *const *ids, size_t n, struct rerror *err)
{
	const char *after = NULL;
	char *last = NULL;
	bool more = n > 0;
	rcode rc = RC_OK;

	/* every copy of every id, in pages: an id may have several */
	while (rc == RC_OK && more) {
		size_t before = out->n;
		rc = page_in_key_order(os, out, &more, k, ids, n, after, 1000, err);
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
		error_reason(out, status, reason, sizeof(reason));
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
		error_reason(resp, status, reason, sizeof(reason));
		rc = rerror_set(err, status == 404 ? RC_ERR_NOTFOUND : RC_ERR_OPENSEARCH,
		                "opensearch %s %s: %s", method, path, reason);
	}
	return rc;
}

rcode
opensearch_mget(struct opensearch *os, struct buf *resp, const struct os_get *docs, size_t n,
                const char *const *includes, size_t n_inc, struct rerror *err)
{
	struct buf body = {0}, inc = {0};
	char path[2048]; /* an index name escapes to up to 765 bytes */
	rcode rc = buf_puts(&inc, n_inc ? "[" : "true");

	for (size_t i = 0; rc == RC_OK && i < n_inc; i++) {
		if (i)
			rc = buf_puts(&inc, ",");
		if (rc == RC_OK)
			rc = doc_json_string(&inc, includes[i], strlen(includes[i]));
	}
	if (rc == RC_OK && n_inc)
		rc = buf_puts(&inc, "]");
	if (rc == RC_OK)
		rc = buf_puts(&body, "{\"docs\":[");
	for (size_t i = 0; rc == RC_OK && i < n; i++) {
		rc = buf_puts(&body, i ? ",{\"_id\":" : "{\"_id\":");
		if (rc == RC_OK)
			rc = doc_json_string(&body, docs[i].id, strlen(docs[i].id));
		if (rc == RC_OK && docs[i].index) {
			rc = buf_puts(&body, ",\"_index\":");
			if (rc == RC_OK)
				rc = doc_json_string(&body, docs[i].index, strlen(docs[i].index));
		}
		if (rc == RC_OK && docs[i].routing) {
			rc = buf_puts(&body, ",\"routing\":");
			if (rc == RC_OK)
				rc = doc_json_string(&body, docs[i].routing,
				                     strlen(docs[i].routing));
		}
		if (rc == RC_OK)
			rc = buf_printf(&body, ",\"_source\":%s}", inc.data);
	}
	if (rc == RC_OK)
		rc = buf_puts(&body, "]}");
	if (rc)
		rc = rerror_set(err, rc, "out of memory");
	else {
		snprintf(path, sizeof(path), "%s/_mget", os->index_path);
		rc = request_raw(os, resp, "POST", path, &body, err);
	}
	buf_free(&body);
	buf_free(&inc);
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
			error_reason(&resp, status, reason, sizeof(reason));
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

static const char *const bulk_action_names[] = {
    [BULK_INDEX] = "index", [BULK_UPDATE] = "update", [BULK_DELETE] = "delete"};

const char *
bulk_action_name(enum bulk_action a)
{
	return bulk_action_names[a];
}

/* What an action adds to its action line after _id, _index and routing. */
static RC_MUST_CHECK rcode
bulk_action_meta(struct buf *b, const struct bulk_doc *d)
{
	rcode rc = RC_OK;

	switch (d->action) {
	case BULK_INDEX:
		/* update actions accept no external version (config.c refuses it) */
		if (d->version >= 0)
			rc = buf_printf(b, ",\"version\":%lld,\"version_type\":\"external_gte\"",
			                (long long)d->version);
		/* an update runs no named pipeline (OpenSearch 2.19 accepts the key
		 * and ignores it; only index.default_pipeline runs): sent on index
		 * only */
		if (rc == RC_OK && d->pipeline && (rc = buf_puts(b, ",\"pipeline\":")) == RC_OK)
			rc = doc_json_string(b, d->pipeline, strlen(d->pipeline));
		return rc;
	case BULK_UPDATE:
		/* as the live syncer: a concurrent write of the same copy is retried */
		return buf_puts(b, ",\"retry_on_conflict\":3");
	case BULK_DELETE:
		return RC_OK;
	}
	return RC_OK;
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
		if ((rc = buf_append(b, d->source, d->source_len)) == RC_OK)
			rc = buf_puts(b, "\n");
		return rc;
	case BULK_UPDATE:
		if ((rc = buf_puts(b, "{\"doc\":")) == RC_OK &&
		    (rc = buf_append(b, d->source, d->source_len)) == RC_OK)
			rc = buf_puts(b, ",\"doc_as_upsert\":true}\n");
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
		/* only an external version makes a conflict mean "newer there" */
		d->newer = res.items[i].version_conflict && d->version >= 0;
		d->reason = res.items[i].reason;
		res.items[i].reason = NULL;
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
	for (size_t i = 0; i < n; i++) {
		idx[i] = i;
		docs[i].status = 0;
		docs[i].newer = false;
		free(docs[i].reason);
		docs[i].reason = NULL;
	}
	rc = bulk_split(os, docs, idx, m, attempts, stop, err);
	/* documents the index turned away with 429 inside a 200 answer, or
	 * that lost a race for a dynamic mapping: sent again, with the same
	 * backoff as whole requests */
	for (int round = 0; rc == RC_OK && round < os->max_retries; round++) {
		m = 0;
		for (size_t i = 0; i < n; i++)
			if (docs[i].status == 429 || mapping_race(&docs[i]))
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
		docs[i].newer = false;
	}
}
