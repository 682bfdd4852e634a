/*
 * run_sink.c: the pass's results: journals a chunk's drift in one
 * transaction, queues what is to be repaired, repairs when the queue is
 * full, and moves the cursor past the chunk.
 *
 * Commit protocol of a check run (per chunk):
 *   1. drift ids are written (store_drift_record, one transaction);
 *   2. queued drift (at most REPAIR_QUEUE_MAX) is repaired in batches, each
 *      journaled pending, sent, committed with its outcome (repair.c);
 *   3. the cursor advances past a chunk only once all drift up to it is
 *      committed.
 * Orphans are journaled pending but not queued (held): the brake decides
 * on them once the pass has ended (run_brake.c).
 */
#include "run_int.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rcode
sink_on_unsafe(void *ctx, const char *text, enum id_type type, struct rerror *err)
{
	struct run *r = ctx;
	const char *why = "the _id holds a NUL character, which this reconciler cannot carry: "
	                  "it is neither compared nor written";
	struct store_drift d = {
	    .doc_id = text, .id_type = doc_id_type_name(type), .kind = DRIFT_MISSING};
	bool added = false;
	rcode rc = store_drift_add(r->store, r->id, &d, -1, DRIFT_FAILED, why, &added);

	if (rc == RC_OK && added) {
		log_msg(LOG_WARN, r->id, "document %s: %s", text, why);
		rc = store_error(r->store, r->id, -1, text, run_phase_name(RUN_PHASE_DIFFING),
		                 "engine", "id_nul", why);
	}
	if (rc == RC_OK)
		rc = store_run_recount_due(r->store, r->id);
	return rc ? rerror_set(err, rc, "journal: cannot record a failure") : RC_OK;
}

static bool
too_young(struct run *r, int64_t t)
{
	return r->cfg->min_age_ms > 0 && t >= 0 && util_now_ms() - t < r->cfg->min_age_ms;
}

static RC_MUST_CHECK rcode
commit_cursor(struct run *r, const char *id, enum id_type type, int64_t compared, int64_t seen,
              const struct pass_stats *st)
{
	struct store_tally t = {st->index_read, st->kept, st->ranges_summarized,
	                        st->ranges_descended};
	rcode rc =
	    store_run_cursor(r->store, r->id, doc_id_type_name(type), id, seen, compared, &t);
	char *c;

	if (rc)
		return rerror_set(r->err, rc, "journal: cannot advance the cursor");
	if ((c = strdup(id)) == NULL)
		return rerror_set(r->err, RC_ERR_NOMEM, "out of memory");
	free(r->cursor);
	r->cursor = c;
	r->cursor_type = type;
	return RC_OK;
}

/* Repairs the queued drift, then commits the cursor that waited for it. */
rcode
sink_flush(struct run *r)
{
	rcode rc = RC_OK;

	if (repair_queued(&r->rp) > 0) {
		rc = run_set_phase(r, RUN_PHASE_REPAIRING);
		if (rc == RC_OK)
			rc = repair_flush(&r->rp);
		if (rc == RC_OK)
			rc = run_set_phase(r,
			                   r->pass_done ? RUN_PHASE_FINISHING : RUN_PHASE_DIFFING);
	}
	if (rc == RC_OK && r->queued_cursor.n) {
		rc = commit_cursor(r, idlist_id(&r->queued_cursor, 0),
		                   (enum id_type)r->queued_cursor.v[0].type, r->queued_compared,
		                   r->queued_seen, &r->queued_stats);
		idlist_clear(&r->queued_cursor);
	}
	run_progress_sync(r, false);
	return rc;
}

/* A conflict, once per pair and run (a warning when first seen). */
static RC_MUST_CHECK rcode
record_conflict(struct run *r, const char *id, enum id_type type, const char *other)
{
	char types[32], msg[700];
	const char *a = doc_id_type_name(type);
	bool added = false;
	rcode rc;

	snprintf(types, sizeof(types), "%s+%s", strcmp(a, other) < 0 ? a : other,
	         strcmp(a, other) < 0 ? other : a);
	snprintf(msg, sizeof(msg),
	         "MongoDB has a %s and a %s _id that both have the text \"%.400s\": they map to "
	         "one index _id, so the index can hold only one of them; left as it is, not "
	         "rewritten",
	         a, other, id);
	struct store_drift d = {.doc_id = id, .id_type = types, .kind = DRIFT_CONFLICT};
	rc = store_drift_add(r->store, r->id, &d, -1, DRIFT_REPORTED, msg, &added);
	if (rc == RC_OK && added)
		log_msg(LOG_WARN, r->id, "id conflict: %s", msg);
	return rc ? rerror_set(r->err, rc, "journal: cannot record a conflict") : RC_OK;
}

/* Appends a drift row; queues the document when it is to be repaired now
 * (a held one waits in the journal, pending, for the end of the pass). */
static RC_MUST_CHECK rcode
add_row(struct run *r, struct store_drift_row *rows, size_t *n, const struct store_drift *d,
        enum id_type type, bool repair, bool young, bool hold)
{
	rows[*n] = (struct store_drift_row){.d = *d,
	                                    .state = young    ? DRIFT_SKIPPED
	                                             : repair ? DRIFT_PENDING
	                                                      : DRIFT_REPORTED};
	(*n)++;
	if (!repair || young || hold)
		return RC_OK;
	if (repair_queue(&r->rp, d, type))
		return rerror_set(r->err, RC_ERR_NOMEM, "out of memory");
	return RC_OK;
}

/* A document asked about: its id and type, and its index in the answers. */
struct place_ref {
	const char *id;
	int type;
	size_t i;
};

static int
cmp_place_ref(const void *a, const void *b)
{
	const struct place_ref *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	return c ? c : (x->type > y->type) - (x->type < y->type);
}

struct place_ctx {
	struct run *r;
	struct place_ref *refs; /* the documents asked about, sorted (cmp_place_ref) */
	size_t n;
	bool *seen;     /* per document: answered */
	bool *skip;     /* per document: the script leaves it out; may be NULL */
	char **routing; /* per document: its routing rule's routing; may be NULL */
	struct buf body;
	rcode rc;
};

static int
on_place_doc(void *ctx, const bson_t *doc)
{
	struct place_ctx *x = ctx;
	struct rerror e = {0};
	struct buf id = {0};
	enum id_type type;
	bson_iter_t it;
	char *routing = NULL;
	bool skip = false;

	if (!bson_iter_init_find(&it, doc, "_id") ||
	    doc_id_canonical(bson_iter_value(&it), &id, &type))
		goto out; /* its repair says what is wrong with it */
	struct place_ref key = {.id = id.data, .type = (int)type};
	const struct place_ref *hit = bsearch(&key, x->refs, x->n, sizeof(*x->refs), cmp_place_ref);
	if (hit == NULL || x->seen[hit->i])
		goto out;
	x->seen[hit->i] = true;
	buf_reset(&x->body);
	rcode rc =
	    transform_apply(x->r->tf, doc, x->r->id_field, id.data, &x->body, &routing, &skip, &e);
	if (rc == RC_ERR_NOMEM)
		x->rc = rc;
	/* a script error is the repair's to journal: no answer here */
	if (x->skip)
		x->skip[hit->i] = rc == RC_OK && skip;
	if (x->routing && rc == RC_OK && !skip) {
		x->routing[hit->i] = routing;
		routing = NULL;
	}
out:
	free(routing);
	buf_free(&id);
	return x->rc != RC_OK;
}

static void
on_place_refused(void *ctx, size_t index, const char *reason)
{
	(void)ctx, (void)index, (void)reason; /* no answer; its repair fails it */
}

/* Where the documents of m's entries idx[0..n) go, as a repair writes them
 * (transform_apply, with the script): skip[i] (may be NULL), the script
 * leaves it out of the index; routing[i] (may be NULL; each set to a
 * malloc'd text or NULL), its routing rule's routing. One $in. */
static RC_MUST_CHECK rcode
read_placement(struct run *r, const struct idlist *m, const size_t *idx, size_t n, bool *skip,
               char **routing, struct rerror *err)
{
	struct place_ctx x = {.r = r, .n = n, .skip = skip, .routing = routing};
	bson_t arr = BSON_INITIALIZER;
	rcode rc = RC_OK;

	/* each fetched document found by a binary search, not a scan of the
	 * ones asked about (a first check of an empty index: all of them) */
	x.refs = malloc((n ? n : 1) * sizeof(*x.refs));
	x.seen = calloc(n ? n : 1, sizeof(*x.seen));
	if (x.refs == NULL || x.seen == NULL) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		size_t k = idx[i];
		if (skip)
			skip[i] = false;
		if (routing)
			routing[i] = NULL;
		x.refs[i] = (struct place_ref){idlist_id(m, k), m->v[k].type, i};
	}
	qsort(x.refs, n, sizeof(*x.refs), cmp_place_ref);
	for (size_t i = 0; rc == RC_OK && i < n; i++) {
		char key[16];
		const char *kp;
		bson_uint32_to_string((uint32_t)i, &kp, key, sizeof(key));
		rc = doc_id_append(&arr, kp, idlist_id(m, idx[i]), (enum id_type)m->v[idx[i]].type);
	}
	if (rc)
		rc = rerror_set(err, rc, "id %s cannot be rebuilt", idlist_id(m, idx[0]));
	else if (n)
		rc = mongo_fetch(r->mongo, &arr, NULL, read_point_queries(r, &arr), on_place_doc,
		                 on_place_refused, &x, err);
	if (rc == RC_OK && x.rc)
		rc = rerror_set(err, x.rc, "out of memory");
out:
	free(x.refs);
	free(x.seen);
	buf_free(&x.body);
	bson_destroy(&arr);
	return rc;
}

/* Which of a chunk's missing documents the script leaves out of the index
 * (transform returns nil): like documents outside RECONCILE_FILTER, they
 * are not missing. Only a script can say so, and only about the document
 * itself, so they are read and transformed here, in a dry run too (one
 * $in per chunk with missing documents). out[i] for d->missing[i]. */
static RC_MUST_CHECK rcode
missing_left_out(struct run *r, const struct idlist *m, const struct drift *d, bool *out,
                 struct rerror *err)
{
	rcode rc = read_placement(r, m, d->missing, d->n_missing, out, NULL, err);

	for (size_t i = 0; rc == RC_OK && i < d->n_missing; i++)
		r->left_out += out[i];
	return rc;
}

rcode
sink_rule_routing(void *ctx, const struct idlist *m, const size_t *mi, size_t n, char **routing,
                  struct rerror *err)
{
	return read_placement(ctx, m, mi, n, NULL, routing, err);
}

/* Which copies of documents the transform leaves out match
 * OPENSEARCH_KEEP_QUERY (QA19 F4): kept like any orphan the clause keeps,
 * whatever the reason the copy has no document. kept[i] for d->stale[i];
 * all false without the clause or such copies. */
static RC_MUST_CHECK rcode
left_out_kept(struct run *r, const struct pass_drift *pd, bool *kept, struct rerror *err)
{
	const struct drift *d = pd->d;
	size_t *idx = NULL, *at = NULL, n = 0;
	bool *found = NULL;
	rcode rc = RC_OK;

	if (!*r->cfg->opensearch_keep_query || pd->stale_fields == NULL || d->n_stale == 0)
		return RC_OK;
	idx = malloc(d->n_stale * sizeof(*idx));
	at = malloc(d->n_stale * sizeof(*at));
	found = malloc(d->n_stale * sizeof(*found));
	if (idx == NULL || at == NULL || found == NULL)
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == RC_OK && i < d->n_stale; i++)
		if (pd->stale_fields[i] && strcmp(pd->stale_fields[i], CONTENT_LEFT_OUT) == 0 &&
		    !pd->conflict[d->stale[i]]) {
			at[n] = i;
			idx[n++] = d->stale_os[i];
		}
	if (rc == RC_OK && n)
		rc = read_kept_orphans(r, pd->osl, idx, n, found, err);
	for (size_t k = 0; rc == RC_OK && k < n; k++)
		kept[at[k]] = found[k];
	free(idx);
	free(at);
	free(found);
	return rc;
}

/* The rows of a chunk's missing documents, but those the script leaves out. */
static RC_MUST_CHECK rcode
missing_rows(struct run *r, struct store_drift_row *rows, size_t *n, const struct idlist *m,
             const struct drift *d, const bool *left_out)
{
	rcode rc = RC_OK;

	for (size_t i = 0; rc == RC_OK && i < d->n_missing; i++) {
		size_t k = d->missing[i];
		if (left_out[i])
			continue;
		struct store_drift sd = {.doc_id = idlist_id(m, k),
		                         .id_type = doc_id_type_name(m->v[k].type),
		                         .kind = DRIFT_MISSING};
		rc = add_row(r, rows, n, &sd, (enum id_type)m->v[k].type, !r->dry_run,
		             too_young(r, m->v[k].time_ms), false);
	}
	return rc;
}

/* The sink: journals a chunk's drift in one transaction, queues what is
 * to be repaired, and repairs when the queue is full. */
rcode
sink_on_drift(void *ctx, const struct pass_drift *pd, struct rerror *err)
{
	struct run *r = ctx;
	const struct drift *d = pd->d;
	const struct idlist *m = pd->m, *osl = pd->osl;
	bool act = !r->dry_run;
	bool delete_orphans = act && r->cfg->orphans == ORPHANS_DELETE;
	size_t cap = d->n_missing + d->n_stale + pd->n_orphans + d->n_duplicate, n = 0;
	struct store_drift_row *rows = malloc((cap ? cap : 1) * sizeof(*rows));
	bool *left_out = calloc(d->n_missing ? d->n_missing : 1, sizeof(*left_out));
	bool *kept = calloc(d->n_stale ? d->n_stale : 1, sizeof(*kept));
	rcode rc =
	    rows && left_out && kept ? RC_OK : rerror_set(err, RC_ERR_NOMEM, "out of memory");

	if (rc == RC_OK && d->n_missing && transform_scripted(r->tf))
		rc = missing_left_out(r, m, d, left_out, err);
	if (rc == RC_OK)
		rc = left_out_kept(r, pd, kept, err);

	/* two documents, one index _id: say so, whatever else the id is. A
	 * missing one is still indexed (one of the two is better than none);
	 * a stale one is not rewritten (it would undo the other, every run) */
	for (size_t k = 0; rc == RC_OK && k < m->n; k++)
		if (pd->conflict[k])
			rc = record_conflict(r, idlist_id(m, k), (enum id_type)m->v[k].type,
			                     pd->conflict[k]);

	if (rc == RC_OK)
		rc = missing_rows(r, rows, &n, m, d, left_out);
	for (size_t i = 0; rc == RC_OK && i < d->n_stale; i++) {
		size_t k = d->stale[i], o = d->stale_os[i];
		if (pd->conflict[k])
			continue;
		if (kept[i]) { /* OPENSEARCH_KEEP_QUERY: neither drift nor deleted */
			r->stats.kept++;
			continue;
		}
		if (pd->stale_fields && pd->stale_fields[i] &&
		    strcmp(pd->stale_fields[i], CONTENT_LEFT_OUT) == 0) {
			/* the transform leaves its document out: the copy has no
			 * place in the index, an orphan held for the brake like
			 * the pass's others (never asked again: its document is
			 * there on purpose) */
			struct store_drift sd = {.doc_id = idlist_id(m, k),
			                         .id_type = doc_id_type_name(m->v[k].type),
			                         .kind = DRIFT_ORPHAN,
			                         .os_index = idlist_index(osl, o),
			                         .routing = idlist_routing(osl, o),
			                         .os_id = idlist_docid(osl, o),
			                         .reason = DRIFT_REASON_TRANSFORM_NIL};
			rc = add_row(r, rows, &n, &sd, (enum id_type)m->v[k].type, delete_orphans,
			             false, true);
			continue;
		}
		/* the overwrite goes to the copy: its index and its routing */
		struct store_drift sd = {
		    .doc_id = idlist_id(m, k),
		    .id_type = doc_id_type_name(m->v[k].type),
		    .kind = DRIFT_STALE,
		    .os_index = idlist_index(osl, o),
		    .routing = idlist_routing(osl, o),
		    .seq_no = osl->v[o].seq_no,
		    .primary_term = osl->v[o].primary_term,
		    .reason = pd->misplaced && pd->misplaced[k] ? DRIFT_REASON_MISPLACED : NULL};
		rc = add_row(r, rows, &n, &sd, (enum id_type)m->v[k].type, act,
		             too_young(r, m->v[k].time_ms), false);
		if (rc == RC_OK && pd->stale_fields)
			rows[n - 1].fields = pd->stale_fields[i];
	}
	for (int pass = 0; pass < 2 && rc == RC_OK; pass++) {
		/* orphans, then extra copies: both are deleted where they are. An
		 * extra copy of a document MongoDB has is removed whatever
		 * RECONCILE_ORPHANS says: the document stays indexed */
		const size_t *list = pass ? d->duplicate : pd->orphans;
		size_t nl = pass ? d->n_duplicate : pd->n_orphans;
		for (size_t i = 0; i < nl && rc == RC_OK; i++) {
			size_t k = list[i];
			const char *id = idlist_id(osl, k);
			int64_t t =
			    osl->v[k].time_ms >= 0 ? osl->v[k].time_ms : doc_oid_time_ms(id);
			enum id_type type = doc_id_guess_type(id);
			bool left = !pass && pd->left_filter && pd->left_filter[i];
			struct store_drift sd = {.doc_id = id,
			                         .id_type = doc_id_type_name(type),
			                         .kind = pass ? DRIFT_DUPLICATE : DRIFT_ORPHAN,
			                         .os_index = idlist_index(osl, k),
			                         .routing = idlist_routing(osl, k),
			                         .os_id = idlist_docid(osl, k),
			                         .reason = left ? DRIFT_REASON_LEFT_FILTER : NULL,
			                         .seq_no = osl->v[k].seq_no,
			                         .primary_term = osl->v[k].primary_term};
			/* orphans are held until the pass knows its totals (the brake) */
			rc = add_row(r, rows, &n, &sd, type, pass ? act : delete_orphans,
			             too_young(r, t), !pass);
		}
	}
	if (rc == RC_OK && n && (rc = store_drift_record(r->store, r->id, rows, n)))
		rc = rerror_set(err, rc, "journal: cannot record drift");
	free(rows);
	free(left_out);
	free(kept);
	if (rc == RC_OK && repair_queued(&r->rp) >= REPAIR_QUEUE_MAX)
		rc = sink_flush(r);
	return rc;
}

/* Moves the cursor past a chunk: now if nothing waits to be repaired, else
 * when the queue is flushed (the cursor never passes uncommitted work). */
rcode
sink_on_chunk(void *ctx, const char *id, enum id_type type, int64_t compared, int64_t seen,
              struct rerror *err)
{
	struct run *r = ctx;
	rcode rc = RC_OK;

	r->compared = compared;
	r->seen = seen;
	if (r->content.on)
		content_stash_drop_through(&r->content, id, (int)type);
	if (repair_queued(&r->rp) == 0) {
		rc = commit_cursor(r, id, type, compared, seen, &r->stats);
		run_progress_sync(r, false);
		return rc;
	}
	idlist_clear(&r->queued_cursor);
	r->queued_compared = compared;
	r->queued_seen = seen;
	r->queued_stats = r->stats;
	if (idlist_push(&r->queued_cursor, id, strlen(id), (int)type, NULL, -1))
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	/* the drift found so far is journaled even while its repairs wait:
	 * shown now, not at the queue's flush (QA11 F3) */
	run_progress_sync(r, false);
	return RC_OK;
}
