/*
 * run_read.c: the pass's reads, backed by the real servers (pass.h's
 * pass_io; the pass itself does no I/O): MongoDB's id stream, the index's
 * pages and lookups, the lookups of a targeted run, and the existence
 * checks made before a copy is called an orphan.
 *
 * The index stream is read one page ahead (struct prefetch, run_int.h):
 * while the pass merges a page with MongoDB's ids, the next page is asked
 * for on a connection of its own, so the two streams overlap. A range the
 * summaries found different (RECONCILE_VERIFY) is read without prefetch:
 * its pages stop at its end, and it is mostly one page.
 */
#include "run_int.h"

#include "log.h"

#include <stdlib.h>
#include <string.h>

rcode
read_mongo_next(void *ctx, struct idlist *out, int *cls, bool *end, bool *unsafe,
                struct rerror *err)
{
	struct run *r = ctx;
	rcode rc = mongo_scan_next_id(r->scan, out, cls, end, unsafe, r->cfg->version_field, err);

	if (rc == RC_OK && !*end && r->content.on &&
	    content_stash_push(&r->content, idlist_id(out, out->n - 1), out->v[out->n - 1].type,
	                       mongo_scan_last_doc(r->scan)))
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	return rc;
}

static void *
prefetch_main(void *arg)
{
	struct prefetch *p = arg;

	p->rc = opensearch_scan(p->os, &p->page, &p->more, p->keys, p->after, p->size, &p->err);
	return NULL;
}

/* Waits for the page in flight, if any; its answer stays in p. */
static void
prefetch_join(struct prefetch *p)
{
	if (p->running) {
		pthread_join(p->thread, NULL);
		p->running = false;
	}
}

void
read_prefetch_free(struct prefetch *p)
{
	prefetch_join(p);
	opensearch_free(p->os);
	free(p->after);
	idlist_free(&p->page);
	memset(p, 0, sizeof(*p));
}

/* Asks for the page after `after` in the background. Not fatal: when it
 * cannot start, the pass asks for the page itself. */
static void
prefetch_start(struct run *r, const char *after, int size)
{
	struct prefetch *p = &r->pre;
	struct rerror e = {0};

	prefetch_join(p);
	free(p->after);
	idlist_clear(&p->page);
	p->after = strdup(after);
	p->keys = &r->keys;
	p->size = size;
	p->more = false;
	p->rc = RC_OK;
	p->err = (struct rerror){0};
	if (p->after == NULL ||
	    (p->os == NULL &&
	     (opensearch_open(&p->os, r->cfg, &e) ||
	      opensearch_set_range(p->os, r->cfg->opensearch_id_field, r->part.lo, r->part.hi)))) {
		opensearch_free(p->os); /* a connection without the partition's range: none */
		p->os = NULL;
		return; /* e dropped: the page is read in turn instead */
	}
	p->running = pthread_create(&p->thread, NULL, prefetch_main, p) == 0;
}

rcode
read_index_page(void *ctx, struct idlist *out, bool *more, const char *after, int size,
                struct rerror *err)
{
	struct run *r = ctx;
	struct prefetch *p = &r->pre;
	rcode rc;

	(void)size; /* the pass's chunk; pages are OPENSEARCH_SCAN_PAGE ids */
	size = (int)r->cfg->opensearch_scan_page;
	if (p->running && after && p->after && strcmp(after, p->after) == 0) {
		/* the page asked for ahead: its answer, or its error, as if
		 * asked now */
		prefetch_join(p);
		rc = p->rc;
		*more = p->more;
		for (size_t i = 0; rc == RC_OK && i < p->page.n; i++)
			if (idlist_push_from(out, &p->page, i))
				rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		if (p->rc)
			*err = p->err;
	} else {
		/* another place in the key space (a new segment starts over):
		 * what was asked ahead is not needed */
		prefetch_join(p);
		rc = opensearch_scan(r->os, out, more, &r->keys, after, size, err);
	}
	free(p->after);
	p->after = NULL;
	if (rc == RC_OK && *more && out->n)
		prefetch_start(r, idlist_id(out, out->n - 1), size);
	return rc;
}

rcode
read_index_range(void *ctx, struct idlist *out, bool *more, const char *after, const char *hi,
                 bool keys_only, int size, struct rerror *err)
{
	struct run *r = ctx;

	(void)size;
	return opensearch_scan_range(r->os, out, more, &r->keys, after, hi, keys_only,
	                             (int)r->cfg->opensearch_scan_page, err);
}

void
read_summary_keys(const struct run *r, struct os_summary_keys *k)
{
	*k = (struct os_summary_keys){.id_field = r->keys.sort_field,
	                              .version_field =
	                                  *r->cfg->version_field ? r->cfg->version_field : NULL,
	                              .version_date = strcmp(r->version_type, "date") == 0};
}

rcode
read_index_summaries(void *ctx, struct summary_range *rg, size_t n, struct rerror *err)
{
	struct run *r = ctx;
	struct os_summary_keys k;
	char *failed = NULL;
	rcode rc;

	read_summary_keys(r, &k);
	rc = opensearch_summaries(r->os, rg, n, &k, &failed, err);
	if (rc == RC_OK && failed && !r->summary_failed_said) {
		r->summary_failed_said = true;
		log_msg(LOG_WARN, r->id,
		        "a range's summary failed (such ranges are streamed; said once): %s",
		        failed);
	}
	free(failed);
	return rc;
}

rcode
read_verify_merge(void *ctx, const char *why, struct rerror *err)
{
	struct run *r = ctx;
	rcode rc;

	log_msg(LOG_INFO, r->id, "%s", why);
	/* no range summarized yet: the whole pass merges (QA20 F8) */
	rc = store_run_verify(
	    r->store, r->id,
	    r->stats.ranges_summarized + r->stats.ranges_descended ? "summary" : "merge", why);
	if (rc == RC_OK)
		rc = store_event(r->store, r->id, "verify", why);
	return rc ? rerror_set(err, rc, "journal: cannot record how the run verifies") : RC_OK;
}

rcode
read_index_lookup(void *ctx, struct idlist *out, const char *const *ids, size_t n,
                  struct rerror *err)
{
	struct run *r = ctx;

	return opensearch_lookup(r->os, out, &r->keys, ids, n, err);
}

static bool
same_text(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Whether found (in key order) holds the copy osl[k]: its key, index,
 * routing and _id. */
static bool
holds_copy(const struct idlist *found, const struct idlist *osl, size_t k)
{
	const char *id = idlist_id(osl, k);
	size_t lo = 0, hi = found->n, len = osl->v[k].id_len;

	while (lo < hi) { /* the first entry not before id */
		size_t mid = lo + (hi - lo) / 2;
		if (diff_compare(idlist_id(found, mid), found->v[mid].id_len, id, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t j = lo; j < found->n && strcmp(idlist_id(found, j), id) == 0; j++)
		if (same_text(idlist_index(found, j), idlist_index(osl, k)) &&
		    same_text(idlist_routing(found, j), idlist_routing(osl, k)) &&
		    same_text(idlist_docid(found, j), idlist_docid(osl, k)))
			return true;
	return false;
}

rcode
read_kept_orphans(void *ctx, const struct idlist *osl, const size_t *idx, size_t n, bool *kept,
                  struct rerror *err)
{
	struct run *r = ctx;
	struct idlist found = {0};
	const char **ids = malloc((n ? n : 1) * sizeof(*ids));
	rcode rc = ids ? RC_OK : rerror_set(err, RC_ERR_NOMEM, "out of memory");

	/* the orphans' copies under the keep clause: one lookup per 1000 */
	for (size_t i = 0; rc == RC_OK && i < n; i++)
		ids[i] = idlist_id(osl, idx[i]);
	for (size_t at = 0; rc == RC_OK && at < n; at += 1000)
		rc = opensearch_lookup_kept(r->os, &found, &r->keys, r->cfg->opensearch_keep_query,
		                            ids + at, n - at < 1000 ? n - at : 1000, err);
	for (size_t i = 0; rc == RC_OK && i < n; i++)
		kept[i] = holds_copy(&found, osl, idx[i]);
	idlist_free(&found);
	free(ids);
	return rc;
}

struct exists_ctx {
	const char *const *texts;
	const enum id_type *types; /* NULL: any type counts */
	size_t n;
	bool *exists;
	char **other;
	size_t *owner; /* per value asked: the text it stands for */
	struct buf text;
	rcode rc;
};

/* A value MongoDB refused to be asked about: its text cannot be proven
 * absent, so it is not called an orphan (nor a conflict). */
static void
on_exists_refused(void *ctx, size_t index, const char *reason)
{
	struct exists_ctx *x = ctx;
	size_t i = x->owner[index];

	log_warn("mongodb refused to be asked for the id %.200s (%s): it is not called an "
	         "orphan",
	         x->texts[i], reason);
	if (x->exists)
		x->exists[i] = true;
}

static int
on_exists(void *ctx, const bson_t *doc)
{
	struct exists_ctx *x = ctx;
	bson_iter_t it;
	enum id_type type;

	if (!bson_iter_init_find(&it, doc, "_id"))
		return 0;
	buf_reset(&x->text);
	if ((x->rc = doc_id_canonical(bson_iter_value(&it), &x->text, &type)))
		return 1;
	for (size_t i = 0; i < x->n; i++) {
		if (strcmp(x->texts[i], x->text.data))
			continue;
		if (x->exists)
			x->exists[i] = true;
		else if (x->other[i] == NULL && type != x->types[i] &&
		         (x->other[i] = strdup(doc_id_type_name(type))) == NULL) {
			x->rc = RC_ERR_NOMEM;
			return 1;
		}
	}
	return 0;
}

bool
read_point_queries(const struct run *r, const bson_t *values)
{
	return r->kind == RUN_IDS && bson_count_keys(values) <= POINT_QUERIES_MAX;
}

/* One $in of typed values (projection _id only) through on_exists: under
 * the mirror's filter, or past it with unfiltered. */
static RC_MUST_CHECK rcode
ask_mongo(struct run *r, bson_t *values, struct exists_ctx *x, bool unfiltered, struct rerror *err)
{
	bson_t proj = BSON_INITIALIZER;
	rcode rc;

	BSON_APPEND_INT32(&proj, "_id", 1);
	rc = unfiltered ? mongo_fetch_unfiltered(r->mongo, values, &proj, on_exists,
	                                         on_exists_refused, x, err)
	                : mongo_fetch(r->mongo, values, &proj, read_point_queries(r, values),
	                              on_exists, on_exists_refused, x, err);
	if (rc == RC_OK && x->rc)
		rc = rerror_set(err, x->rc, "out of memory");
	bson_destroy(&proj);
	buf_free(&x->text);
	return rc;
}

/* The owner array: owner[value] = text, for values appended so far. */
static RC_MUST_CHECK rcode
own(size_t **owner, size_t *cap, uint32_t from, uint32_t to, size_t text)
{
	if (to > *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		while (c < to)
			c *= 2;
		size_t *o = realloc(*owner, c * sizeof(*o));
		if (o == NULL)
			return RC_ERR_NOMEM;
		*owner = o;
		*cap = c;
	}
	for (uint32_t v = from; v < to; v++)
		(*owner)[v] = text;
	return RC_OK;
}

/* exists: under RECONCILE_FILTER (a document that matches it is never an
 * orphan); outside: of those that do not, which exist past it (one more
 * $in, asked only with a filter, and orphans are few). */
rcode
read_mongo_exists(void *ctx, const char *const *texts, size_t n, bool *exists, bool *outside,
                  struct rerror *err)
{
	struct run *r = ctx;
	struct exists_ctx x = {.texts = texts, .n = n, .exists = exists};
	bson_t arr = BSON_INITIALIZER;
	size_t cap = 0;
	uint32_t k = 0;
	rcode rc = RC_OK;

	/* every typed value each text could stand for, in one $in */
	for (size_t i = 0; rc == RC_OK && i < n; i++) {
		uint32_t from = k;
		exists[i] = false;
		rc = doc_id_append_candidates(&arr, &k, texts[i]);
		if (rc == RC_OK)
			rc = own(&x.owner, &cap, from, k, i);
		if (doc_id_unaskable(texts[i]))
			exists[i] = true; /* not proven absent: never an orphan */
	}
	if (rc)
		rc = rerror_set(err, rc, "out of memory");
	else
		rc = ask_mongo(r, &arr, &x, false, err);
	for (size_t i = 0; outside && i < n; i++)
		outside[i] = false;
	if (rc == RC_OK && outside && mongo_filtered(r->mongo)) {
		/* the same values past the filter: whatever exists at all */
		x.exists = outside;
		x.rc = RC_OK;
		rc = ask_mongo(r, &arr, &x, true, err);
		for (size_t i = 0; rc == RC_OK && i < n; i++)
			outside[i] = outside[i] && !exists[i];
	}
	free(x.owner);
	bson_destroy(&arr);
	return rc;
}

rcode
read_mongo_other(void *ctx, const char *const *texts, const enum id_type *types, size_t n,
                 char **other, struct rerror *err)
{
	struct run *r = ctx;
	struct exists_ctx x = {.texts = texts, .types = types, .n = n, .other = other};
	bson_t arr = BSON_INITIALIZER;
	size_t cap = 0;
	uint32_t count = 0;
	rcode rc = RC_OK;

	for (size_t i = 0; rc == RC_OK && i < n; i++) {
		int mask = doc_id_types_sharing(texts[i], types[i]);
		for (int t = 0; t <= ID_JSON && rc == RC_OK; t++) {
			char key[16];
			const char *kp;
			if (!(mask & (1 << t)))
				continue;
			bson_uint32_to_string(count, &kp, key, sizeof(key));
			rc = doc_id_append(&arr, kp, texts[i], (enum id_type)t);
			if (rc == RC_OK)
				rc = own(&x.owner, &cap, count, count + 1, i);
			count++;
		}
	}
	if (rc)
		rc = rerror_set(err, rc, "id %s cannot be rebuilt", texts[0]);
	else if (count)
		rc = ask_mongo(r, &arr, &x, false, err);
	free(x.owner);
	bson_destroy(&arr);
	return rc;
}

rcode
read_mongo_has_type(void *ctx, enum id_type type, bool *has, struct rerror *err)
{
	struct run *r = ctx;

	return mongo_has_type(r->mongo, type, has, err);
}

struct lookup_ctx {
	struct run *r;
	struct idlist *out;
	rcode rc;
	struct rerror *err;
	const size_t *owner; /* owner[value]: the text a candidate value stands for */
	bool *answered;
};

static int
on_looked_up(void *ctx, const bson_t *doc)
{
	struct lookup_ctx *x = ctx;
	int cls;
	bool unsafe;
	size_t before = x->out->n;

	x->rc = mongo_doc_id_entry(doc, x->out, &cls, &unsafe, x->r->cfg->version_field, x->err);
	if (x->rc == RC_OK && unsafe)
		x->out->n = before; /* a NUL in the _id: never compared or written */
	return x->rc != RC_OK;
}

/* A value MongoDB refused to be asked about: its documents are not found,
 * and its text is not answered (the orphan check, refused too, never calls
 * its copies orphans). */
static void
on_lookup_refused(void *ctx, size_t index, const char *reason)
{
	struct lookup_ctx *x = ctx;

	x->answered[x->owner[index]] = false;
	log_warn("mongodb refused to be asked for a requested id (value %zu: %s)", index, reason);
}

rcode
read_mongo_lookup(void *ctx, const char *const *texts, size_t n, struct idlist *out, bool *answered,
                  struct rerror *err)
{
	struct run *r = ctx;
	struct lookup_ctx x = {.r = r, .out = out, .err = err, .answered = answered};
	bson_t arr = BSON_INITIALIZER, proj = BSON_INITIALIZER;
	size_t *owner = NULL, cap = 0;
	uint32_t k = 0;
	rcode rc = RC_OK;

	for (size_t i = 0; rc == RC_OK && i < n; i++) {
		uint32_t from = k;
		/* under a filter, a text's documents outside it were not asked;
		 * a text that cannot be asked about is asked as what it can be
		 * (all that a conflict could be: never a NaN or infinity, whose
		 * texts are "nan" and "inf"), and the pass never calls its copy
		 * an orphan */
		answered[i] = !mongo_filtered(r->mongo);
		if (!doc_id_unaskable(texts[i])) {
			rc = doc_id_append_candidates(&arr, &k, texts[i]);
			if (rc == RC_OK)
				rc = own(&owner, &cap, from, k, i);
			continue;
		}
		/* a text that also reads as a value not every server can be asked
		 * about ("659208e3...": an ObjectId's hex, and a double overflowing
		 * to infinity): asked as the string and the ObjectId it is */
		for (int t = 0; rc == RC_OK && t < 2; t++) {
			char key[16];
			const char *kp;
			if (t == 1 && !doc_is_oid_hex(texts[i]))
				break;
			bson_uint32_to_string(k++, &kp, key, sizeof(key));
			rc = doc_id_append(&arr, kp, texts[i], t ? ID_OID : ID_STRING);
		}
		if (rc == RC_OK)
			rc = own(&owner, &cap, from, k, i);
	}
	x.owner = owner;
	BSON_APPEND_INT32(&proj, "_id", 1);
	if (*r->cfg->version_field)
		BSON_APPEND_INT32(&proj, r->cfg->version_field, 1);
	if (rc)
		rc = rerror_set(err, rc, "out of memory");
	else if (k)
		rc = mongo_fetch(r->mongo, &arr, &proj, read_point_queries(r, &arr), on_looked_up,
		                 on_lookup_refused, &x, err);
	if (rc == RC_OK && x.rc)
		rc = x.rc;
	free(owner);
	bson_destroy(&arr);
	bson_destroy(&proj);
	return rc;
}
