/*
 * opensearch_summary.c: the index side of the range summaries
 * (opensearch_summary.h; docs/ENGINE.md "Verifying by range summaries").
 *
 * Each range is one search of an _msearch: size 0, no hit count, a bool
 * filter of a `range` on the keyword id field (gt the range's low key, lte
 * its high key; open where the range is) and OPENSEARCH_QUERY, and a
 * scripted_metric computing summary.c's hash of each copy's key, _id and
 * version, added up. Only doc values are read, never stored fields, so a
 * range costs the index about as much as an aggregation over its ids. The
 * sum comes back as text ("count:sum"): a JSON number would pass through a
 * double and lose its low bits.
 *
 * Each search asks not to use the shard request cache (its metadata line's
 * request_cache: false; OpenSearch caches size-0 searches by default). A
 * run asks each range once, so caching gains the run nothing, and a pass
 * over 4M ids put 4,000 entries into a cache of 1% of the heap, evicting
 * what the cluster's own dashboards keep there; and a cached answer would
 * make a benchmark measure the cache (docs/PERFORMANCE.md, session 12).
 */
#include "opensearch_summary.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* The aggregation, as text, shared by every search of a request. */
static char *
agg_text(const struct os_summary_keys *k)
{
	cJSON *a = cJSON_CreateObject();
	cJSON *sm = cJSON_AddObjectToObject(cJSON_AddObjectToObject(a, "s"), "scripted_metric");
	cJSON *params = cJSON_AddObjectToObject(sm, "params");
	char *text = NULL;

	cJSON_AddStringToObject(sm, "init_script", summary_script_init);
	cJSON_AddStringToObject(sm, "map_script", summary_script_map);
	cJSON_AddStringToObject(sm, "combine_script", summary_script_combine);
	cJSON_AddStringToObject(sm, "reduce_script", summary_script_reduce);
	cJSON_AddStringToObject(params, "f", k->id_field);
	/* "" when there is no version field: a scripted_metric deep-copies
	 * its params and fails on a null (QA20 F3) */
	cJSON_AddStringToObject(params, "v", k->version_field ? k->version_field : "");
	cJSON_AddBoolToObject(params, "d", k->version_date);
	if (params && cJSON_GetObjectItem(params, "d"))
		text = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	return text;
}

/* One search line of the _msearch body: the range (lo, hi]. */
static RC_MUST_CHECK rcode
put_search(struct opensearch *os, struct buf *b, const char *field, const char *lo, const char *hi,
           const char *agg)
{
	cJSON *q = cJSON_CreateObject();
	cJSON *filter = cJSON_AddArrayToObject(cJSON_AddObjectToObject(q, "bool"), "filter");
	cJSON *c = cJSON_CreateObject();
	char *text = NULL;
	rcode rc = RC_ERR_NOMEM;

	if (c && filter && cJSON_AddItemToArray(filter, c)) {
		if (lo == NULL && hi == NULL) {
			cJSON_AddStringToObject(cJSON_AddObjectToObject(c, "exists"), "field",
			                        field);
		} else {
			cJSON *r =
			    cJSON_AddObjectToObject(cJSON_AddObjectToObject(c, "range"), field);
			if (lo)
				cJSON_AddStringToObject(r, "gt", lo);
			if (hi)
				cJSON_AddStringToObject(r, "lte", hi);
		}
	} else {
		cJSON_Delete(c);
	}
	if (filter && opensearch_add_query(os, filter) == RC_OK)
		text = cJSON_PrintUnformatted(q);
	if (text && buf_printf(b,
	                       "{\"request_cache\":false}\n"
	                       "{\"size\":0,\"track_total_hits\":false,\"query\":%s,"
	                       "\"aggs\":%s}\n",
	                       text, agg) == RC_OK)
		rc = RC_OK;
	free(text);
	cJSON_Delete(q);
	return rc;
}

/* Why one search failed, short: its first root cause ("type: reason"),
 * else its error object as text. */
static char *
search_error(const cJSON *resp)
{
	cJSON *e = cJSON_GetObjectItem(resp, "error");
	cJSON *root = cJSON_GetArrayItem(cJSON_GetObjectItem(e, "root_cause"), 0);
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(root, "type"));
	const char *reason = cJSON_GetStringValue(cJSON_GetObjectItem(root, "reason"));
	char *text;

	if (type && reason) {
		struct buf b = {0};
		if (buf_printf(&b, "%.100s: %.400s", type, reason)) {
			buf_free(&b);
			return NULL;
		}
		return b.data;
	}
	text = e ? cJSON_PrintUnformatted(e) : NULL;
	if (text && strlen(text) > 600)
		strcpy(text + 597, "...");
	return text;
}

/* One _msearch of n ranges (n at most OS_SUMMARY_PER_REQUEST). */
static RC_MUST_CHECK rcode
summaries_once(struct opensearch *os, struct summary_range *r, size_t n,
               const struct os_summary_keys *k, const char *agg, char **failed, struct rerror *err)
{
	struct buf body = {0}, resp = {0}, path = {0};
	cJSON *j = NULL, *arr, *it;
	long status = 0;
	size_t i = 0;
	rcode rc = RC_OK;

	for (size_t t = 0; rc == RC_OK && t < n; t++)
		rc = put_search(os, &body, k->id_field, r[t].lo, r[t].hi, agg);
	if (rc == RC_OK)
		rc = buf_printf(&path, "%s/_msearch", opensearch_index(os));
	if (rc) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	rc = opensearch_request(os, &status, &resp, "POST", path.data, body.data, body.len, err);
	if (rc == RC_OK && status != 200)
		rc = rerror_set(err, status == 404 ? RC_ERR_NOTFOUND : RC_ERR_OPENSEARCH,
		                "opensearch _msearch (range summaries): HTTP %ld: %.300s", status,
		                resp.data ? resp.data : "");
	if (rc == RC_OK && (j = cJSON_ParseWithLength(resp.data, resp.len)) == NULL)
		rc = rerror_set(err, RC_ERR_OPENSEARCH,
		                "opensearch _msearch (range summaries): answer is not JSON");
	if (rc)
		goto out;
	arr = cJSON_GetObjectItem(j, "responses");
	cJSON_ArrayForEach(it, arr)
	{
		cJSON *v;
		if (i >= n)
			break;
		v = cJSON_GetObjectItem(
		    cJSON_GetObjectItem(cJSON_GetObjectItem(it, "aggregations"), "s"), "value");
		r[i].os_ok = cJSON_IsString(v) &&
		             summary_parse(v->valuestring, &r[i].os_count, &r[i].os_sum);
		if (!r[i].os_ok && failed && *failed == NULL) {
			*failed = search_error(it);
			if (*failed == NULL)
				*failed = strdup("no summary in the answer");
		}
		i++;
	}
out:
	cJSON_Delete(j);
	buf_free(&body);
	buf_free(&resp);
	buf_free(&path);
	return rc;
}

rcode
opensearch_summaries(struct opensearch *os, struct summary_range *r, size_t n,
                     const struct os_summary_keys *k, char **failed, struct rerror *err)
{
	char *agg = agg_text(k);
	rcode rc = agg ? RC_OK : rerror_set(err, RC_ERR_NOMEM, "out of memory");

	if (failed)
		*failed = NULL;
	for (size_t i = 0; i < n; i++)
		r[i].os_ok = false;
	for (size_t at = 0; rc == RC_OK && at < n; at += OS_SUMMARY_PER_REQUEST)
		rc = summaries_once(
		    os, r + at, n - at < OS_SUMMARY_PER_REQUEST ? n - at : OS_SUMMARY_PER_REQUEST,
		    k, agg, failed, err);
	free(agg);
	return rc;
}

rcode
opensearch_summary_probe(struct opensearch *os, char **refused, const struct os_summary_keys *k,
                         struct rerror *err)
{
	/* nothing sorts before "": the range is empty, yet the script is
	 * compiled on every shard, so a cluster without it says so */
	struct summary_range r = {.hi = ""};
	char *failed = NULL;
	rcode rc;

	*refused = NULL;
	r.lo = NULL;
	rc = opensearch_summaries(os, &r, 1, k, &failed, err);
	if (rc == RC_OK && !r.os_ok) {
		*refused = failed ? failed : strdup("no summary in the answer");
		failed = NULL;
		if (*refused == NULL)
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	} else if (rc == RC_ERR_OPENSEARCH && strstr(err->message, "HTTP 400")) {
		/* the whole request refused for its script */
		*refused = strdup(err->message);
		*err = (struct rerror){0};
		rc = *refused ? RC_OK : rerror_set(err, RC_ERR_NOMEM, "out of memory");
	}
	free(failed);
	return rc;
}

bool
opensearch_summary_refused(const char *reason)
{
	static const char *const said[] = {
	    "script_lang not supported", /* no Painless */
	    "cannot execute",            /* script.allowed_types / allowed_contexts */
	    "compilations",              /* max_compilations_rate */
	    "_id field is disallowed",   /* indices.id_field_data.enabled: false */
	};

	for (size_t i = 0; reason && i < sizeof(said) / sizeof(said[0]); i++)
		if (strstr(reason, said[i]))
			return true;
	return false;
}
