/*
 * run_content.c: stale by content (RECONCILE_COMPARE=content). The id
 * stream reads whole documents and the chunk the pass is on is kept here
 * (the stash), so its pairs are compared without a second query: what a
 * repair would write (the transform's body, or the raw copy) against the
 * copy's _source, one _mget per CONTENT_BATCH pairs, on the fields the
 * body has (jtree.h), and on the fields the copy has that the body does not
 * write (leftovers, owned.h: a renamed field's old name). The whole _source
 * is read, less the fields OPENSEARCH_INDEX_OWNED_FIELDS names: its
 * top-level names are what leftovers are found among. A copy
 * whose only difference is leftovers is kept, reported, by a check without
 * OPENSEARCH_INDEX_OWNED_FIELDS: nothing says they are not an enrichment
 * job's, and a guess would lose them. In RECONCILE_WRITE_MODE=index so is
 * every copy holding leftovers, whatever else differs: its repair would
 * replace it whole and drop them (QA20 F4: an enrichment's embedding was
 * lost while the warning said the fields stay). What it cost is said once, at the end
 * of the pass, with a warning naming the leftovers.
 */
#include "run_int.h"

#include "jtree.h"
#include "log.h"
#include "owned.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keeps the document whose id the stream gave last (content compare). */
rcode
content_stash_push(struct content *c, const char *id, int type, const bson_t *doc)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 1024;
		struct stashed *v = realloc(c->v, cap * sizeof(*v));
		if (v == NULL)
			return RC_ERR_NOMEM;
		c->v = v;
		c->cap = cap;
	}
	struct stashed *e = &c->v[c->n];
	e->id = strdup(id);
	e->doc = doc ? bson_copy(doc) : NULL;
	e->type = type;
	if (e->id == NULL || e->doc == NULL) {
		free(e->id);
		bson_destroy(e->doc);
		return RC_ERR_NOMEM;
	}
	c->mongo_bytes += doc->len;
	c->n++;
	return RC_OK;
}

/* Drops the documents up to the one of (id, type), a chunk's last: the
 * pass is past them. What was read ahead (the next chunk's first) stays. */
void
content_stash_drop_through(struct content *c, const char *id, int type)
{
	size_t k = c->n;

	while (k > 0 && !(c->v[k - 1].type == type && strcmp(c->v[k - 1].id, id) == 0))
		k--;
	for (size_t i = 0; i < k; i++) {
		free(c->v[i].id);
		bson_destroy(c->v[i].doc);
	}
	memmove(c->v, c->v + k, (c->n - k) * sizeof(*c->v));
	c->n -= k;
}

void
content_stash_free(struct content *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].id);
		bson_destroy(c->v[i].doc);
	}
	free(c->v);
	c->v = NULL;
	c->n = c->cap = 0;
}

/* Pairs compared per _mget. */
#define CONTENT_BATCH 500
/* Bytes of a stale row's field list (then ",..."). */
#define CONTENT_FIELDS_MAX 200

static int
cmp_stashed(const void *a, const void *b)
{
	const struct stashed *x = *(const struct stashed *const *)a;
	const struct stashed *y = *(const struct stashed *const *)b;
	int c = strcmp(x->id, y->id);

	return c ? c : (x->type > y->type) - (x->type < y->type);
}

/* The stashed document of (id, type), by binary search over order. */
static const bson_t *
stash_find(const struct content *c, const struct stashed *const *order, const char *id, int type)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct stashed *e = order[mid];
		int cmp = strcmp(e->id, id);
		if (cmp == 0)
			cmp = (e->type > type) - (e->type < type);
		if (cmp == 0)
			return e->doc;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* What a repair would write for doc: the transform's body (or the raw
 * copy), parsed, and its routing rule's routing (*routing, malloc'd; NULL
 * without one). NULL in *out when the document is left out of the index
 * or cannot be converted (its repair would fail the same way). */
static RC_MUST_CHECK rcode
content_body(struct run *r, struct jt **out, bool *left, char **routing, struct buf *body,
             const bson_t *doc, const char *id)
{
	struct rerror e = {0};
	bool skip = false;
	rcode rc;

	*out = NULL;
	*left = false;
	*routing = NULL;
	buf_reset(body);
	/* doc_to_json's body without a transform; the routing field's routing */
	rc = transform_apply(r->tf, doc, r->id_field, id, body, routing, &skip, &e);
	if (rc || skip) {
		free(*routing);
		*routing = NULL;
	}
	if (rc == RC_ERR_NOMEM)
		return rc;
	*left = rc == RC_OK && skip;
	if (rc == RC_OK)
		r->content.unconverted_in_row = 0;
	if (rc || skip) {
		int64_t max = r->cfg->transform_max_consecutive_errors;
		if (rc == RC_OK)
			return RC_OK;
		r->content.unconverted++;
		log_msg(LOG_DEBUG, r->id, "content compare: document %s: %s", id, e.message);
		/* as repairs do (repair.c, fail_transform): a script that fails on
		 * every document stops the run once, naming its line */
		if (max > 0 && ++r->content.unconverted_in_row >= max)
			return rerror_set(
			    r->err, RC_ERR_INVALID,
			    "the transform failed on %" PRId64
			    " documents in a row (RECONCILE_TRANSFORM_MAX_CONSECUTIVE_"
			    "ERRORS): the run stops; the last, %.200s: %.600s",
			    r->content.unconverted_in_row, id, e.message);
		return RC_OK;
	}
	rc = jt_parse(out, body->data ? body->data : "{}", body->data ? body->len : 2, &e);
	if (rc == RC_ERR_INVALID) { /* cannot happen: our own JSON */
		log_msg(LOG_WARN, r->id, "content compare: document %s: %s", id, e.message);
		rc = RC_OK;
	}
	return rc;
}

/* Adds the leftovers of one copy (names: "-a,-b", maybe ending ",...",
 * after the fields that differ) to the distinct names the warning gives,
 * while they fit. */
static void
note_leftovers(struct content *c, const char *names)
{
	const char *at = names;

	c->leftover++;
	while (*at) {
		size_t n = strcspn(at, ","), have = strlen(c->leftover_names);
		const char *item = at, *hay = c->leftover_names;
		bool known = false;
		at += at[n] ? n + 1 : n;
		if (n == 3 && memcmp(item, "...", 3) == 0)
			c->leftover_cut = true;
		if (*item != '-' || n < 2)
			continue; /* a field that differs, or the cut */
		while (*hay && !known) {
			size_t hn = strcspn(hay, ",");
			known = hn == n - 1 && memcmp(hay, item + 1, n - 1) == 0;
			hay += hay[hn] ? hn + 1 : hn;
		}
		if (!known && have + n + 1 >= sizeof(c->leftover_names))
			c->leftover_cut = true;
		else if (!known)
			snprintf(c->leftover_names + have, sizeof(c->leftover_names) - have,
			         "%s%.*s", have ? "," : "", (int)(n - 1), item + 1);
	}
}

/* A copy holding leftovers that a check without
 * OPENSEARCH_INDEX_OWNED_FIELDS keeps (its only difference, or any copy in
 * index mode): journaled stale and reported (kept), not written, and not
 * given to the pass, which would queue its repair. */
static RC_MUST_CHECK rcode
keep_leftovers(struct run *r, const struct idlist *m, size_t mk, const struct idlist *osl,
               size_t ok, const char *names, struct rerror *err)
{
	bool whole = r->cfg->write_mode == WRITE_INDEX;
	struct store_drift_row row = {
	    .d = {.doc_id = idlist_id(m, mk),
	          .id_type = doc_id_type_name((enum id_type)m->v[mk].type),
	          .kind = DRIFT_STALE,
	          .os_index = idlist_index(osl, ok),
	          .routing = idlist_routing(osl, ok)},
	    .state = DRIFT_REPORTED,
	    .error = whole ? "kept: the copy holds fields the transform does not write (-name), "
	                     "which RECONCILE_WRITE_MODE=index would drop by replacing it whole, "
	                     "and OPENSEARCH_INDEX_OWNED_FIELDS does not say which fields are "
	                     "the index's own"
	                   : "kept: the copy holds fields the transform does not write (-name), "
	                     "and OPENSEARCH_INDEX_OWNED_FIELDS does not say which fields are "
	                     "the index's own",
	    .fields = names};

	if (store_drift_record(r->store, r->id, &row, 1))
		return rerror_set(err, RC_ERR_STORE, "journal: cannot record drift");
	return RC_OK;
}

/* The owned fields the _mget leaves out of every copy's _source (they are
 * neither leftovers nor compared, and an embedding is most of a copy's
 * bytes): those no body of the batch writes, and none that _source
 * filtering would read as a pattern. */
static RC_MUST_CHECK rcode
content_excludes(char ***out, size_t *n, struct jt *const *bodies, size_t nb, const char *list)
{
	size_t keep = 0;
	rcode rc = owned_names(out, n, list);

	for (size_t i = 0; rc == RC_OK && i < *n; i++) {
		char *name = (*out)[i];
		bool written = strchr(name, '*') != NULL;
		for (size_t k = 0; !written && k < nb; k++)
			written = bodies[k] && jt_get(bodies[k], name) != NULL;
		if (written)
			free(name);
		else
			(*out)[keep++] = name;
	}
	if (rc == RC_OK)
		*n = keep;
	return rc;
}

/* One copy found (src: its _source) against the body a repair writes:
 * *field gets the fields that differ and its leftovers ("name,-title"),
 * or stays NULL when it is in sync, or kept (keep_leftovers). names: a
 * scratch buffer. */
static RC_MUST_CHECK rcode
judge_copy(struct run *r, const struct idlist *m, size_t mk, const struct idlist *osl, size_t ok,
           const struct jt *src, const struct jt *body, char **field, struct buf *names,
           struct rerror *err)
{
	bool said = owned_said(r->cfg->owned_fields);
	size_t count = 0, left = 0;
	rcode rc;

	buf_reset(names);
	rc = jt_diff_fields(names, CONTENT_FIELDS_MAX, &count, src, body,
	                    r->cfg->write_mode == WRITE_UPSERT);
	if (rc == RC_OK)
		rc = owned_leftovers(names, CONTENT_FIELDS_MAX, &left, src, body,
		                     r->cfg->owned_fields);
	if (rc)
		return rerror_set(err, rc, "out of memory");
	if (count == 0 && left == 0)
		return RC_OK;
	r->content.differ++;
	if (left) {
		note_leftovers(&r->content, names->data);
		/* without the setting, a check leaves them where they are */
		r->content.kept += !said;
	}
	/* an update keeps leftovers, a whole replacement (index mode) would not */
	if (left && !said && !r->dry_run && (count == 0 || r->cfg->write_mode == WRITE_INDEX)) {
		if (r->cfg->write_mode == WRITE_INDEX && r->content.kept == 1)
			log_msg(
			    LOG_WARN, r->id,
			    "a copy holds fields the transform does not write (%.200s): "
			    "RECONCILE_WRITE_MODE=index would replace it whole and drop them, so "
			    "copies holding such fields are kept as they are (reported, not "
			    "written) until OPENSEARCH_INDEX_OWNED_FIELDS names the fields only "
			    "the index writes (or none); the names are said at the end of the pass",
			    names->data ? names->data : "");
		return keep_leftovers(r, m, mk, osl, ok, names->data, err);
	}
	if ((*field = strdup(names->data ? names->data : "")) == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	return RC_OK;
}

/* One batch of pairs: bodies, one _mget of the copies, compared. */
static RC_MUST_CHECK rcode
content_batch(struct run *r, const struct idlist *m, const struct idlist *osl, const size_t *mi,
              const size_t *oi, size_t n, char **fields, const struct stashed *const *order,
              struct rerror *err)
{
	struct jt **bodies = calloc(n, sizeof(*bodies)), *resp_tree = NULL;
	struct os_get *gets = calloc(n, sizeof(*gets));
	size_t *at = calloc(n, sizeof(*at)), ng = 0, n_exc = 0;
	char **exc = NULL;
	/* each body's text outlives its tree: the tree points into it */
	struct buf *texts = calloc(n, sizeof(*texts)), resp = {0}, names = {0};
	rcode rc = bodies && gets && at && texts ? RC_OK : RC_ERR_NOMEM;

	for (size_t k = 0; rc == RC_OK && k < n; k++) {
		const char *id = idlist_id(m, mi[k]);
		const bson_t *doc = stash_find(&r->content, order, id, m->v[mi[k]].type);
		if (doc == NULL) {
			log_msg(LOG_WARN, r->id, "content compare: document %s was not read", id);
			continue;
		}
		bool left = false;
		char *routing = NULL;
		rc = content_body(r, &bodies[k], &left, &routing, &texts[k], doc, id);
		if (rc == RC_OK && left) {
			/* its copy has no place in the index: an orphan (run_sink.c),
			 * whatever it holds, so it is not read */
			r->content.left_out++;
			if ((fields[k] = strdup(CONTENT_LEFT_OUT)) == NULL)
				rc = RC_ERR_NOMEM;
		}
		/* a copy that is not where its routing rule places it (another
		 * shard) differs whatever it holds: its repair moves it there */
		const char *was = idlist_routing(osl, oi[k]) ? idlist_routing(osl, oi[k])
		                                             : idlist_target(osl, oi[k]);
		bool moved = rc == RC_OK && bodies[k] && routing && strcmp(routing, was) != 0;
		free(routing);
		if (moved && (fields[k] = strdup("_routing")) == NULL)
			rc = RC_ERR_NOMEM;
		if (moved) {
			r->content.pairs++;
			r->content.differ++;
		}
		if (rc || bodies[k] == NULL || moved)
			continue;
		gets[ng] = (struct os_get){.index = idlist_index(osl, oi[k]),
		                           .id = idlist_target(osl, oi[k]),
		                           .routing = idlist_routing(osl, oi[k])};
		at[ng++] = k;
	}
	if (rc == RC_OK && ng)
		rc = content_excludes(&exc, &n_exc, bodies, n, r->cfg->owned_fields);
	/* only memory is "out of memory": a script that failed too often in a
	 * row keeps content_body's message (QA25 F10) */
	if (rc == RC_ERR_NOMEM)
		rc = rerror_set(err, rc, "out of memory");
	else if (rc && err != r->err)
		*err = *r->err;
	if (rc)
		goto out;
	if (ng == 0)
		goto out;
	/* the whole _source but the index's own fields: leftovers are among
	 * its top-level names */
	rc =
	    opensearch_mget_excluding(r->os, &resp, gets, ng, (const char *const *)exc, n_exc, err);
	if (rc)
		goto out;
	r->content.mget_requests++;
	r->content.mget_bytes += (int64_t)resp.len;
	rc = jt_parse(&resp_tree, resp.data ? resp.data : "", resp.len, err);
	if (rc) {
		rc = rerror_set(err, RC_ERR_OPENSEARCH, "opensearch _mget: %s", err->message);
		goto out;
	}
	const struct jt *docs = jt_get(resp_tree, "docs");
	if (docs == NULL || docs->type != JT_ARRAY || docs->n != ng) {
		rc =
		    rerror_set(err, RC_ERR_OPENSEARCH,
		               "opensearch _mget: the answer does not have the %zu docs asked", ng);
		goto out;
	}
	for (size_t g = 0; rc == RC_OK && g < ng; g++) {
		const struct jt *d = &docs->kids[g], *src = jt_get(d, "_source");
		const struct jt *found = jt_get(d, "found");
		size_t k = at[g];
		/* gone since the scan: the next run sees it missing */
		if (found == NULL || found->type != JT_TRUE)
			continue;
		r->content.pairs++;
		rc = judge_copy(r, m, mi[k], osl, oi[k], src, bodies[k], &fields[k], &names, err);
	}
out:
	for (size_t k = 0; bodies && k < n; k++)
		jt_free(bodies[k]);
	for (size_t k = 0; texts && k < n; k++)
		buf_free(&texts[k]);
	free(texts);
	free(bodies);
	free(gets);
	free(at);
	jt_free(resp_tree);
	owned_names_free(exc, n_exc);
	buf_free(&resp);
	buf_free(&names);
	return rc;
}

rcode
content_differs(void *ctx, const struct idlist *m, const struct idlist *osl, const size_t *mi,
                const size_t *oi, size_t n, char **fields, struct rerror *err)
{
	struct run *r = ctx;
	struct content *c = &r->content;
	const struct stashed **order = malloc((c->n ? c->n : 1) * sizeof(*order));
	int64_t t0 = util_mono_ms();
	rcode rc = RC_OK;

	if (order == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < c->n; i++)
		order[i] = &c->v[i];
	qsort(order, c->n, sizeof(*order), cmp_stashed);
	for (size_t at = 0; rc == RC_OK && at < n; at += CONTENT_BATCH)
		rc = content_batch(r, m, osl, mi + at, oi + at,
		                   n - at < CONTENT_BATCH ? n - at : CONTENT_BATCH, fields + at,
		                   order, err);
	free(order);
	c->ms += util_mono_ms() - t0;
	return rc;
}

/* Copies holding leftovers, said once at the end of the pass: a warning
 * while nothing says which fields are the index's own (they are kept), else
 * what the repairs do with them. */
static void
leftovers_report(struct run *r)
{
	const struct content *c = &r->content;
	bool said = owned_said(r->cfg->owned_fields);
	char msg[900];

	if (c->leftover == 0)
		return;
	if (!said)
		snprintf(msg, sizeof(msg),
		         "%" PRId64 " cop%s hold%s fields the transform does not write (%s%s): "
		         "stale, and %s, because OPENSEARCH_INDEX_OWNED_FIELDS does not say which "
		         "fields only the index writes (an enrichment job's): name those there (or "
		         "none) and a check removes the others",
		         c->leftover, c->leftover == 1 ? "y" : "ies", c->leftover == 1 ? "s" : "",
		         c->leftover_names, c->leftover_cut ? ", ..." : "",
		         r->cfg->write_mode == WRITE_INDEX
		             ? (r->dry_run ? "a check keeps these copies as they are (reported, "
		                             "not written): RECONCILE_WRITE_MODE=index would "
		                             "replace them whole, dropping these fields"
		                           : "these copies are kept as they are (reported, not "
		                             "written): RECONCILE_WRITE_MODE=index would replace "
		                             "them whole, dropping these fields")
		         : r->dry_run ? "a check leaves these fields where they are"
		                      : "these fields stay (a copy that differs in nothing else is "
		                        "reported, not written)");
	else
		snprintf(msg, sizeof(msg),
		         "%" PRId64 " cop%s hold%s fields the transform does not write and "
		         "OPENSEARCH_INDEX_OWNED_FIELDS does not name (%s): %s",
		         c->leftover, c->leftover == 1 ? "y" : "ies", c->leftover == 1 ? "s" : "",
		         c->leftover_names,
		         r->dry_run ? "a check replaces them without those, keeping the fields it "
		                      "names"
		                    : "replaced without those, keeping the fields it names");
	log_msg(said ? LOG_INFO : LOG_WARN, r->id, "%s", msg);
	if (store_event(r->store, r->id, said ? "content" : "warning", msg))
		log_msg(LOG_WARN, r->id, "journal: cannot record an event");
}

/* What comparing by content cost, said once at the end of the pass. */
void
content_report(struct run *r)
{
	const struct content *c = &r->content;
	char msg[500];

	if (!c->on)
		return;
	snprintf(
	    msg, sizeof(msg),
	    "content compare%s: %" PRId64 " copies compared, %" PRId64 " differ, %" PRId64
	    " hold leftover fields (%" PRId64 " left as they are), %" PRId64
	    " of documents the transform leaves out, %" PRId64 " not convertible; read %" PRId64
	    " bytes of MongoDB documents and %" PRId64 " bytes of _source in %" PRId64
	    " _mget requests; %" PRId64 " ms transforming, reading copies and comparing",
	    c->for_transform ? " (the transform changed since a run last compared every copy)" : "",
	    c->pairs, c->differ, c->leftover, c->kept, c->left_out, c->unconverted, c->mongo_bytes,
	    c->mget_bytes, c->mget_requests, c->ms);
	log_msg(LOG_INFO, r->id, "%s", msg);
	if (store_event(r->store, r->id, "content", msg))
		log_msg(LOG_WARN, r->id, "journal: cannot record an event");
	leftovers_report(r);
}
