/*
 * sample.c: `reconciler check --sample N`: an estimate of a mirror's drift
 * rate in the time N lookups take, not a pass over every id.
 *
 * The MongoDB side draws N random documents with the aggregation stage
 * $sample where the server has it; a server that refuses the stage
 * (FerretDB 1.x) gets Algorithm R over the _id-sorted id stream instead:
 * every id is read once (the time of MongoDB's side of a pass, not of the
 * index's), N kept, O(N) memory, reproducible with the same seed. The index
 * side draws N random copies with a function_score random_score query
 * (seeded, over _seq_no) under OPENSEARCH_QUERY: orphans exist only in the
 * index, so only its own sample can estimate them.
 *
 * Both samples' ids go through one targeted run (engine_opts.sample: a
 * RUN_IDS run journaled as kind sample and dry, nothing written), so each
 * id is judged missing, stale or orphan exactly as a check judges it. The
 * estimate is read back from that run's drift rows: of the MongoDB
 * sample, those judged missing or stale; of the index sample, those judged
 * orphans; each rate with its 95% Wilson score interval (no finite
 * population correction: where N is a large share of the collection the
 * interval is wider than it need be, never narrower). The estimate is
 * journaled in run_samples, which `show` and the API's run report read.
 */
#include "sample.h"

#include "log.h"
#include "mongo.h"
#include "opensearch.h"
#include "report.h"
#include "store.h"
#include "util.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

void
sample_wilson(int64_t k, int64_t n, double z, double *low, double *high)
{
	if (n <= 0) {
		*low = 0;
		*high = 1;
		return;
	}
	double p = (double)k / (double)n, z2n = z * z / (double)n;
	double centre = (p + z2n / 2) / (1 + z2n);
	double half = z / (1 + z2n) * sqrt(p * (1 - p) / (double)n + z2n / (4 * (double)n));

	*low = k == 0 ? 0 : fmax(0, centre - half); /* exact at the ends, not 1e-17 off */
	*high = k == n ? 1 : fmin(1, centre + half);
}

uint64_t
sample_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

rcode
sample_reservoir_init(struct sample_reservoir *r, int64_t k, uint64_t seed)
{
	*r = (struct sample_reservoir){.k = k, .state = seed};
	r->v = calloc((size_t)(k > 0 ? k : 1), sizeof(*r->v));
	return r->v ? RC_OK : RC_ERR_NOMEM;
}

rcode
sample_reservoir_offer(struct sample_reservoir *r, const char *text)
{
	char *copy;
	uint64_t j;

	r->seen++;
	if (r->n < r->k) {
		if ((copy = strdup(text)) == NULL)
			return RC_ERR_NOMEM;
		r->v[r->n++] = copy;
		return RC_OK;
	}
	/* uniform in [0, seen): the high word of a 64x64 product (no modulo bias) */
	j = (uint64_t)(((unsigned __int128)sample_next(&r->state) * (uint64_t)r->seen) >> 64);
	if (j >= (uint64_t)r->k)
		return RC_OK;
	if ((copy = strdup(text)) == NULL)
		return RC_ERR_NOMEM;
	free(r->v[j]);
	r->v[j] = copy;
	return RC_OK;
}

void
sample_reservoir_free(struct sample_reservoir *r)
{
	for (int64_t i = 0; r->v && i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	*r = (struct sample_reservoir){0};
}

/* A side's ids: owned texts. */
struct ids {
	char **v;
	size_t n;
};

static void
ids_free(struct ids *s)
{
	for (size_t i = 0; s->v && i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	*s = (struct ids){0};
}

static int
cmp_text(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted, each id once ($sample may hand one document twice). */
static void
ids_distinct(struct ids *s)
{
	size_t k = 0;

	if (s->n == 0)
		return;
	qsort(s->v, s->n, sizeof(*s->v), cmp_text);
	for (size_t i = 0; i < s->n; i++) {
		if (k && strcmp(s->v[k - 1], s->v[i]) == 0)
			free(s->v[i]);
		else
			s->v[k++] = s->v[i];
	}
	s->n = k;
}

/* Leaves out the ids a targeted run refuses (engine_opts_check): over
 * OpenSearch's _id limit or not UTF-8. No index copy can carry them, so a
 * check journals such a document failed; the estimate says how many it
 * left out. Returns how many. */
static size_t
ids_lookable(struct ids *s)
{
	size_t k = 0, out = 0;

	for (size_t i = 0; i < s->n; i++) {
		size_t len = strlen(s->v[i]);
		if (len > OPENSEARCH_ID_MAX_BYTES || !util_utf8_valid(s->v[i], len)) {
			free(s->v[i]);
			out++;
		} else {
			s->v[k++] = s->v[i];
		}
	}
	s->n = k;
	return out;
}

static bool
ids_has(const struct ids *s, const char *id, size_t *at)
{
	char **hit = s->n ? bsearch(&id, s->v, s->n, sizeof(*s->v), cmp_text) : NULL;

	if (hit)
		*at = (size_t)(hit - s->v);
	return hit != NULL;
}

/* Algorithm R over MongoDB's id stream (under the filter). */
static RC_MUST_CHECK rcode
draw_stream(struct ids *out, int64_t *population, struct mongo *m, const struct sample_opts *o,
            struct rerror *err)
{
	struct sample_reservoir r;
	struct mongo_scan *scan = NULL;
	struct idlist one = {0};
	int cls;
	bool end = false, unsafe;
	rcode rc = sample_reservoir_init(&r, o->n, o->seed);

	if (rc)
		return rerror_set(err, rc, "out of memory");
	rc = mongo_scan_open(&scan, m, NULL, 0, NULL, false, MONGO_FETCH_BATCH_DOCS, true, err);
	while (rc == RC_OK && !end) {
		if (o->stop && *o->stop) {
			rc = rerror_set(err, RC_ERR_CANCELLED, "stopped while drawing the sample");
			break;
		}
		idlist_clear(&one);
		rc = mongo_scan_next_id(scan, &one, &cls, &end, &unsafe, NULL, err);
		if (rc == RC_OK && !end && !unsafe &&
		    (rc = sample_reservoir_offer(&r, idlist_id(&one, 0))) != RC_OK)
			rc = rerror_set(err, rc, "out of memory");
	}
	idlist_free(&one);
	mongo_scan_free(scan);
	*population = r.seen;
	out->v = r.v; /* the reservoir's texts become the side's */
	out->n = (size_t)r.n;
	r.v = NULL;
	sample_reservoir_free(&r);
	return rc;
}

/* What the numbers do not say, appended to res->note. */
__attribute__((format(printf, 2, 3))) static void
note(struct sample_result *res, const char *fmt, ...)
{
	size_t at = strlen(res->note);
	va_list ap;

	if (at + 2 >= sizeof(res->note))
		return;
	if (at)
		at += (size_t)snprintf(res->note + at, sizeof(res->note) - at, "; ");
	va_start(ap, fmt);
	vsnprintf(res->note + at, sizeof(res->note) - at, fmt, ap);
	va_end(ap);
}

/* The MongoDB side: $sample, else the id stream. */
static RC_MUST_CHECK rcode
draw_mongo(struct ids *out, struct sample_result *res, const struct config *cfg,
           const struct sample_opts *o, struct rerror *err)
{
	struct mongo *m = NULL;
	struct idlist got = {0};
	struct rerror why = {0};
	bool refused = false;
	rcode rc;

	*out = (struct ids){0};
	res->method = "$sample";
	res->population = -1;
	if ((rc = mongo_open(&m, cfg->mongodb_uri, cfg->mongodb_database, cfg->mongodb_collection,
	                     err)) ||
	    (rc = mongo_set_filter(m, cfg->filter, err)) ||
	    (rc = mongo_sample_ids(m, &got, o->n, &refused, &why)))
		goto out;
	if (refused) {
		log_msg(LOG_INFO, 0,
		        "%s: the server does not take $sample: drawing %" PRId64
		        " ids from the id stream instead (reads every id once)",
		        why.message, o->n);
		res->method = "id stream";
		rc = draw_stream(out, &res->population, m, o, err);
		res->mongo_all = res->population <= o->n;
		goto out;
	}
	/* fewer than asked: $sample handed every document (it may hand one
	 * twice, so fewer distinct ids alone would not say it) */
	res->mongo_all = (int64_t)got.n < o->n;
	if ((out->v = calloc(got.n ? got.n : 1, sizeof(*out->v))) == NULL)
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == RC_OK && i < got.n; i++)
		if ((out->v[out->n++] = strdup(idlist_id(&got, i))) == NULL)
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
out:
	if (rc && why.message[0] && err->message[0] == '\0')
		*err = why;
	idlist_free(&got);
	mongo_free(m);
	return rc;
}

/* The search body of the index side's draw: n copies scored by a seeded
 * random_score over _seq_no (doc values every copy has) under the
 * mirror's query, each with the id field's value (id_field NULL: their
 * _id alone) (NULL: no memory). */
static char *
index_draw_body(const struct config *cfg, const char *id_field, const struct sample_opts *o)
{
	cJSON *b = cJSON_CreateObject(), *fs, *rs, *q = NULL, *dv;
	char *text = NULL;

	if (*cfg->opensearch_query)
		q = cJSON_Parse(cfg->opensearch_query); /* config.c checked it */
	if (q == NULL)
		q = cJSON_CreateObject(), cJSON_AddObjectToObject(q, "match_all");
	fs = cJSON_AddObjectToObject(cJSON_AddObjectToObject(b, "query"), "function_score");
	if (b && q && fs && cJSON_AddItemToObject(fs, "query", q)) {
		q = NULL;
		rs = cJSON_AddObjectToObject(fs, "random_score");
		cJSON_AddNumberToObject(rs, "seed", (double)o->seed);
		cJSON_AddStringToObject(rs, "field", "_seq_no");
		cJSON_AddStringToObject(fs, "boost_mode", "replace");
		cJSON_AddNumberToObject(b, "size", (double)o->n);
		/* counted up to N + 1: whether the draw took every copy */
		cJSON_AddNumberToObject(b, "track_total_hits", (double)o->n + 1);
		cJSON_AddFalseToObject(b, "_source");
		if (id_field && (dv = cJSON_AddArrayToObject(b, "docvalue_fields")) != NULL)
			cJSON_AddItemToArray(dv, cJSON_CreateString(id_field));
		text = cJSON_PrintUnformatted(b);
	}
	cJSON_Delete(q);
	cJSON_Delete(b);
	return text;
}

/* Where the draw reads each copy's id, as the pass reads it (QA20 F5):
 * *field is OPENSEARCH_ID_FIELD when it is a keyword whose doc values are
 * the ids exactly, else NULL: the copies' _id (a dynamically mapped text
 * field, whose .keyword has ignore_above, has no usable doc values; asking
 * for them fails the whole search). A missing index is no error here: the
 * draw says so. */
static RC_MUST_CHECK rcode
draw_id_field(const char **field, struct opensearch *os, const struct config *cfg,
              struct rerror *err)
{
	const char *idf = cfg->opensearch_id_field;
	char *type = NULL, *inexact = NULL;
	rcode rc;

	*field = NULL;
	if (*idf == '\0')
		return RC_OK;
	rc = opensearch_field_type(os, &type, &inexact, idf, err);
	if (rc == RC_ERR_NOTFOUND) {
		*err = (struct rerror){0};
		rc = RC_OK;
	}
	if (rc == RC_OK && type && strcmp(type, "keyword") == 0 && inexact == NULL)
		*field = idf;
	free(type);
	free(inexact);
	return rc;
}

/* Why a search failed: its first root cause, else its reason. */
static void
draw_failed(struct sample_result *res, long status, const cJSON *j)
{
	const cJSON *e = cJSON_GetObjectItem(j, "error");
	const cJSON *root = cJSON_GetArrayItem(cJSON_GetObjectItem(e, "root_cause"), 0);
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(root, "type"));
	const char *why = cJSON_GetStringValue(cJSON_GetObjectItem(root, "reason"));

	if (why == NULL) {
		type = cJSON_GetStringValue(cJSON_GetObjectItem(e, "type"));
		why = cJSON_GetStringValue(cJSON_GetObjectItem(e, "reason"));
	}
	note(res, "orphans not estimated: the index answered the draw with HTTP %ld%s%.60s%s%.250s",
	     status, why || type ? ": " : "", type ? type : "", type && why ? ": " : "",
	     why ? why : "");
}

/* The index side: n random copies' ids (the id field's value, else _id).
 * *answered false (and why in res->note) when the index cannot be drawn
 * from: orphans are then not estimated. */
static RC_MUST_CHECK rcode
draw_index(struct ids *out, bool *answered, struct sample_result *res, const struct config *cfg,
           const struct sample_opts *o, struct rerror *err)
{
	struct opensearch *os = NULL;
	struct buf resp = {0}, path = {0};
	const char *idf = NULL;
	char *body = NULL;
	cJSON *j = NULL, *hit;
	long status = 0;
	rcode rc;

	*out = (struct ids){0};
	*answered = false;
	if ((rc = opensearch_open(&os, cfg, err)) || (rc = draw_id_field(&idf, os, cfg, err)))
		goto out;
	if ((body = index_draw_body(cfg, idf, o)) == NULL) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = buf_printf(&path, "%s/_search", opensearch_index(os))) || /* "/INDEX", escaped */
	    (rc = opensearch_request(os, &status, &resp, "POST", path.data, body, strlen(body),
	                             err)))
		goto out;
	j = resp.data ? cJSON_Parse(resp.data) : NULL;
	cJSON *hits = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "hits"), "hits");
	if (status != 200 || !cJSON_IsArray(hits)) {
		draw_failed(res, status, j);
		goto out;
	}
	*answered = true;
	/* a search hands a copy once: fewer than N, or a total of N (N copies
	 * and N asked: every one, QA20 F10), is the whole index */
	const cJSON *total = cJSON_GetObjectItem(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(j, "hits"), "total"), "value");
	res->index_all = cJSON_GetArraySize(hits) < o->n ||
	                 (cJSON_IsNumber(total) && total->valuedouble <= (double)o->n);
	if ((out->v = calloc((size_t)cJSON_GetArraySize(hits) + 1, sizeof(*out->v))) == NULL) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	cJSON_ArrayForEach(hit, hits)
	{
		const cJSON *f =
		    idf ? cJSON_GetArrayItem(
		              cJSON_GetObjectItem(cJSON_GetObjectItem(hit, "fields"), idf), 0)
		        : NULL;
		const char *id = cJSON_IsString(f)
		                     ? f->valuestring
		                     : cJSON_GetStringValue(cJSON_GetObjectItem(hit, "_id"));
		if (id && *id && (out->v[out->n++] = strdup(id)) == NULL) {
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
			break;
		}
	}
out:
	cJSON_Delete(j);
	buf_free(&resp);
	buf_free(&path);
	free(body);
	opensearch_free(os);
	return rc;
}

/* Marks in hit[] the ids of side that the run journaled as one of kinds
 * (and did not skip). */
static RC_MUST_CHECK rcode
mark(struct store *s, int64_t run_id, const struct ids *side, const enum drift_kind *kinds,
     size_t n_kinds, bool *hit, int64_t *count)
{
	cJSON *rows = NULL, *row;
	size_t at;
	rcode rc = RC_OK;

	for (size_t k = 0; rc == RC_OK && k < n_kinds; k++) {
		/* at most a row per copy of each id looked up: one page */
		if ((rc = report_ids(s, &rows, run_id, &kinds[k], NULL, INT64_MAX / 2)))
			break;
		cJSON_ArrayForEach(row, rows)
		{
			const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(row, "id"));
			const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(row, "status"));
			/* left alone on purpose (RECONCILE_MIN_AGE_MS: the live syncer
			 * is writing it): a check would not call it drift either */
			if (st && strcmp(st, store_drift_state_name(DRIFT_SKIPPED)) == 0)
				continue;
			if (id && ids_has(side, id, &at))
				hit[at] = true;
		}
		cJSON_Delete(rows);
		rows = NULL;
	}
	*count = 0;
	for (size_t i = 0; i < side->n; i++)
		*count += hit[i];
	return rc;
}

/* Each side's drifted ids, from the run's drift rows. */
static RC_MUST_CHECK rcode
estimate(struct sample_result *res, const struct config *cfg, const struct ids *ms,
         const struct ids *is, struct rerror *err)
{
	static const enum drift_kind missing[] = {DRIFT_MISSING}, stale[] = {DRIFT_STALE},
	                             orphan[] = {DRIFT_ORPHAN};
	struct store *s = NULL;
	bool *hit = calloc(ms->n + is->n + 1, sizeof(*hit));
	int64_t n_missing = 0, n_drifted = 0;
	rcode rc = hit ? store_open(&s, cfg->state_db, err) : RC_ERR_NOMEM;

	/* missing and stale of one id count it once */
	if (rc == RC_OK)
		rc = mark(s, res->run.run_id, ms, missing, 1, hit, &n_missing);
	if (rc == RC_OK)
		rc = mark(s, res->run.run_id, ms, stale, 1, hit, &n_drifted);
	if (rc == RC_OK && res->orphans_estimated)
		rc = mark(s, res->run.run_id, is, orphan, 1, hit + ms->n, &res->orphans);
	res->mongo_n = (int64_t)ms->n;
	res->missing = n_missing;
	res->stale = n_drifted - n_missing;
	res->index_n = (int64_t)is->n;
	res->rate = res->mongo_n ? (double)n_drifted / (double)res->mongo_n : 0;
	sample_wilson(n_drifted, res->mongo_n, SAMPLE_Z95, &res->low, &res->high);
	if (res->mongo_all && res->mongo_n)
		res->low = res->high = res->rate;
	res->orphan_rate = res->index_n ? (double)res->orphans / (double)res->index_n : 0;
	sample_wilson(res->orphans, res->index_n, SAMPLE_Z95, &res->orphan_low, &res->orphan_high);
	if (res->index_all && res->index_n)
		res->orphan_low = res->orphan_high = res->orphan_rate;
	if (rc == RC_OK) {
		struct store_sample row = {
		    .asked = res->asked,
		    .seed = res->seed,
		    .method = res->method,
		    .population = res->population,
		    .mongo_n = res->mongo_n,
		    .missing = res->missing,
		    .stale = res->stale,
		    .rate = res->rate,
		    .rate_low = res->low,
		    .rate_high = res->high,
		    .index_n = res->orphans_estimated ? res->index_n : -1,
		    .orphans = res->orphans_estimated ? res->orphans : -1,
		    .orphan_rate = res->orphans_estimated ? res->orphan_rate : NAN,
		    .orphan_low = res->orphans_estimated ? res->orphan_low : NAN,
		    .orphan_high = res->orphans_estimated ? res->orphan_high : NAN,
		    .seconds = res->seconds,
		    .note = *res->note ? res->note : NULL};
		rc = store_sample_record(s, res->run.run_id, &row);
	}
	if (rc && err->message[0] == '\0')
		(void)rerror_set(err, rc, "journal: cannot record the sample's estimate");
	store_free(s);
	free(hit);
	return rc;
}

/* Both sides' ids, each once, as one targeted run's (owned by o). */
static RC_MUST_CHECK rcode
union_ids(struct engine_opts *o, const struct ids *ms, const struct ids *is)
{
	size_t n = 0;

	o->ids = calloc(ms->n + is->n + 1, sizeof(*o->ids));
	if (o->ids == NULL)
		return RC_ERR_NOMEM;
	for (size_t i = 0; i < ms->n + is->n; i++) {
		const char *id = i < ms->n ? ms->v[i] : is->v[i - ms->n];
		size_t at;
		if (i >= ms->n && ids_has(ms, id, &at))
			continue;
		if ((o->ids[n++] = strdup(id)) == NULL) {
			o->n_ids = n - 1;
			return RC_ERR_NOMEM;
		}
	}
	o->n_ids = n;
	return RC_OK;
}

rcode
sample_run(struct sample_result *res, struct engine *e, const struct config *cfg,
           const struct sample_opts *o, struct rerror *err)
{
	struct ids ms = {0}, is = {0};
	struct engine_opts eo = {.sample = true};
	int64_t t0 = util_now_ms();
	rcode rc;

	memset(res, 0, sizeof(*res));
	res->asked = o->n;
	res->seed = o->seed;
	if ((rc = draw_mongo(&ms, res, cfg, o, err)) ||
	    (rc = draw_index(&is, &res->orphans_estimated, res, cfg, o, err)))
		goto out;
	ids_distinct(&ms);
	ids_distinct(&is);
	size_t unfit = ids_lookable(&ms);
	if (unfit)
		note(res,
		     "%zu sampled document%s left out: an _id over %d bytes or not UTF-8, which no "
		     "index copy can carry (a check journals it failed)",
		     unfit, unfit == 1 ? "" : "s", OPENSEARCH_ID_MAX_BYTES);
	(void)ids_lookable(&is); /* a copy's id came from the index: never */
	/* what the lookups cannot see, said where the numbers are read */
	if (!*cfg->version_field)
		note(res, "%s",
		     "no RECONCILE_VERSION_FIELD: stale copies cannot be told (missing and orphans "
		     "only)");
	else if (cfg->compare == COMPARE_CONTENT)
		note(res, "%s",
		     "RECONCILE_COMPARE=content: the lookups compare versions, as a targeted run "
		     "does, so copies stale by content alone are not counted");
	if (res->mongo_all)
		note(res,
		     "the collection holds %" PRId64 " documents (of %" PRId64
		     " asked): every one was looked up, so its rate is exact for this moment",
		     (int64_t)ms.n, o->n);
	if (res->orphans_estimated && res->index_all)
		note(res,
		     "the index holds %" PRId64 " copies (of %" PRId64
		     " asked): every one was looked up, so its orphan rate is exact",
		     (int64_t)is.n, o->n);
	if (ms.n + is.n == 0) {
		rc =
		    rerror_set(err, RC_ERR_INVALID,
		               "nothing to sample: the collection (under RECONCILE_FILTER) and the "
		               "index (under OPENSEARCH_QUERY) hold no documents");
		goto out;
	}
	if (o->stop && *o->stop) {
		rc = rerror_set(err, RC_ERR_CANCELLED, "stopped before the lookups");
		goto out;
	}
	if ((rc = union_ids(&eo, &ms, &is))) {
		rc = rerror_set(err, rc, "out of memory");
		goto out;
	}
	rc = engine_run_opts(e, &res->run, RUN_IDS, "cli", -1, &eo, err);
	res->seconds = (double)(util_now_ms() - t0) / 1000.0;
	if (rc == RC_OK && res->run.run_id && res->run.status == RUN_COMPLETED)
		rc = estimate(res, cfg, &ms, &is, err);
out:
	engine_opts_release(&eo);
	ids_free(&ms);
	ids_free(&is);
	return rc;
}
