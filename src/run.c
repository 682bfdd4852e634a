/*
 * run.c: one run, end to end: begin or resume (journal lock, runs row),
 * count, the index's keys, re-send pending batches, the pass (pass.c) or the
 * full re-index (repair.c), finish. Any thread may read progress or cancel.
 *
 * This file also backs the pass's pass_io with the real servers and the
 * journal: MongoDB's id stream, the index's pages and lookups, existence
 * checks, and the sink that journals a chunk's drift and queues its repair.
 *
 * Commit protocol of a check run (per chunk):
 *   1. drift ids are written (store_drift_record, one transaction);
 *   2. queued drift (at most REPAIR_QUEUE_MAX) is repaired in batches, each
 *      journaled pending, sent, committed with its outcome (repair.c);
 *   3. the cursor advances past a chunk only once all drift up to it is
 *      committed.
 * A resumed run first re-sends pending batches, then continues the pass
 * from the cursor. Committed batches are never sent again.
 *
 * The brake on deletes: orphans are journaled pending but not queued (held);
 * only once the pass has ended does the run decide, on the totals, whether
 * to send them (under RECONCILE_MAX_DELETE_RATIO and RECONCILE_MAX_DELETES,
 * both streams as long as their counts said, or released) or to keep them
 * (status held, nothing deleted). Held deletes live in the journal, not in
 * memory; a run killed while sending them resumes and sends the rest.
 *
 * Targeted runs (kind ids): given ids looked up on both sides, or the
 * documents changed since a time looked up in the index; the same sink,
 * the same brake; never resumed, so a mirror's interrupted check is left as
 * it is.
 */
#include "engine.h"
#include "diff.h"
#include "doc.h"
#include "jtree.h"
#include "log.h"
#include "mongo.h"
#include "opensearch.h"
#include "pass.h"
#include "repair.h"
#include "store.h"
#include "transform.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct engine {
	const struct config *cfg;
	volatile int stop;    /* 1: interrupt, 2: cancel */
	pthread_mutex_t lock; /* guards progress */
	struct engine_progress progress;
	bool progress_output;
	int64_t last_print_ms;
	void (*start_hook)(void *ctx, int64_t run_id);
	void *start_ctx;
};

/* RECONCILE_COMPARE=content: the MongoDB documents of the chunk the pass
 * is on (read whole by the id stream itself: no second query), and what
 * comparing by content cost. */
struct stashed {
	char *id;
	int type;
	bson_t *doc;
};
struct content {
	bool on;
	struct stashed *v;
	size_t n, cap;
	int64_t pairs, differ, unconverted, mget_requests, mget_bytes, mongo_bytes, ms;
};

/* The index stream read one page ahead (io_index_page): while the pass
 * merges a page with MongoDB's ids, the next page is asked for on a
 * connection of its own, so the two streams overlap instead of taking
 * turns (the pass waited for each page, then for MongoDB's ids). */
struct prefetch {
	struct opensearch *os; /* its own connection: a curl handle is one thread's */
	pthread_t thread;
	bool running;       /* a thread was started and not yet joined */
	char *after;        /* the page asked for: strictly after this key */
	struct idlist page; /* its answer */
	bool more;
	rcode rc;
	struct rerror err;
	/* the request's inputs, fixed while it runs */
	const struct os_keys *keys;
	int size;
};

/* State of one run in progress. */
struct run {
	struct engine *e;
	const struct config *cfg;
	struct store *store;
	struct mongo *mongo;
	struct opensearch *os;
	struct rerror *err;
	int64_t id;
	enum run_kind kind;
	bool dry_run, full;
	struct os_keys keys;
	char *id_field;     /* effective id field for documents ("" or cfg's) */
	char *write_index;  /* the alias's write index (NULL: OPENSEARCH_INDEX) */
	bool index_missing; /* the index does not exist: the index side is empty */
	/* where the pass resumes */
	char *cursor;
	enum id_type cursor_type;
	int64_t seen, compared;
	bool pass_done;
	struct util_throttle progress_due; /* progress_sync */
	struct mongo_scan *scan;
	struct repair rp;
	struct transform *tf; /* body and routing of writes */
	/* the cursor that waits for queued drift to be committed */
	struct idlist queued_cursor; /* 0 or 1 entry: the last chunk's last id */
	int64_t queued_compared, queued_seen, queued_index_read;
	int64_t os_count, mongo_count;
	const struct engine_opts *opts; /* never NULL */
	struct pass_stats stats;        /* what the pass read (the brake) */
	int64_t lacking;                /* index documents without the id field */
	enum delete_brake brake;
	bool held;
	int64_t n_held;
	char why[1400];
	/* check_peers: a peer mirror whose cluster could not be asked which
	 * index it writes ("" = none); its orphan deletes are held */
	char peer_unknown[400];
	/* check_peers: peers whose query differs but may share the index:
	 * their overlap with this mirror's query is counted before deletes
	 * (peers_overlap); one flag per mirror of the set, or NULL */
	bool *peers_count;
	bool not_resumed;       /* opts->resume_only: the run found was cancelled */
	struct content content; /* RECONCILE_COMPARE=content */
	int64_t left_out;       /* missing documents the script leaves out */
	struct prefetch pre;    /* the index stream's next page */
};

rcode
engine_new(struct engine **out, const struct config *cfg, struct rerror *err)
{
	struct engine *e;

	*out = NULL;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	e->cfg = cfg;
	pthread_mutex_init(&e->lock, NULL);
	*out = e;
	return RC_OK;
}

void
engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	pthread_mutex_destroy(&e->lock);
	free(e);
}

void
engine_stop(struct engine *e, bool cancel)
{
	e->stop = cancel ? 2 : 1;
}

void
engine_clear_stop(struct engine *e)
{
	e->stop = 0;
}

void
engine_set_start_hook(struct engine *e, void (*fn)(void *ctx, int64_t run_id), void *ctx)
{
	e->start_hook = fn;
	e->start_ctx = ctx;
}

void
engine_set_progress_output(struct engine *e, bool on)
{
	e->progress_output = on;
}

void
engine_progress(struct engine *e, struct engine_progress *out)
{
	pthread_mutex_lock(&e->lock);
	*out = e->progress;
	if (out->active)
		out->elapsed_ms = util_now_ms() - out->started_ms;
	pthread_mutex_unlock(&e->lock);
}

static void
progress_print(struct engine *e, bool final)
{
	struct engine_progress p;
	int64_t now = util_mono_ms();
	double secs, rate;

	if (!e->progress_output || (!final && now - e->last_print_ms < 1000))
		return;
	e->last_print_ms = now;
	engine_progress(e, &p);
	secs = p.elapsed_ms / 1000.0;
	rate = secs > 0 ? (double)p.compared / secs : 0;
	char eta[32] = "-";
	if (rate > 0 && p.mongo_count > p.compared && strcmp(p.phase, "diffing") == 0)
		snprintf(eta, sizeof(eta), "%.0fs", (double)(p.mongo_count - p.compared) / rate);
	fprintf(stderr,
	        "\r\033[Krun %" PRId64 " %-9s compared %" PRId64 "/%" PRId64 " missing %" PRId64
	        " orphans %" PRId64 " stale %" PRId64 " repaired %" PRId64 " deleted %" PRId64
	        " failed %" PRId64 " %.0f ids/s ETA %s%s",
	        p.run_id, p.phase, p.compared, p.mongo_count < 0 ? 0 : p.mongo_count, p.missing,
	        p.orphans, p.stale, p.repaired, p.deleted, p.failed, rate, eta, final ? "\n" : "");
	fflush(stderr);
}

/* The journal computes a running run's counters from its rows, so reading
 * them costs O(run): progress reads them at most every PROGRESS_SYNC_MS and
 * at most 1/PROGRESS_SYNC_SHARE of the time (a read per committed batch made
 * a 1M-document full re-index spend a third of its CPU here). */
#define PROGRESS_SYNC_MS    500
#define PROGRESS_SYNC_SHARE 20
/* but never more than this apart: a run's counts may lag this much */
#define PROGRESS_SYNC_MAX_MS 2000

/* Copies the journal's counters into the live progress: the position at
 * once, the counters when due or `final` (the run's end). */
static void
progress_sync(struct run *r, bool final)
{
	struct store_run *sr = NULL;

	pthread_mutex_lock(&r->e->lock);
	r->e->progress.compared = r->compared;
	pthread_mutex_unlock(&r->e->lock);
	if (!final && !util_throttle_due(&r->progress_due))
		return;
	int64_t t0 = util_mono_ms();
	rcode rc = store_run_get(r->store, &sr, r->id);
	util_throttle_done(&r->progress_due, t0, PROGRESS_SYNC_MS, PROGRESS_SYNC_SHARE,
	                   PROGRESS_SYNC_MAX_MS);
	if (rc)
		return;
	pthread_mutex_lock(&r->e->lock);
	struct engine_progress *p = &r->e->progress;
	p->mongo_count = sr->mongo_count;
	p->opensearch_count = sr->opensearch_count;
	p->missing = sr->missing;
	p->orphans = sr->orphans;
	p->stale = sr->stale;
	p->skipped = sr->skipped;
	p->repaired = sr->repaired;
	p->deleted = sr->deleted;
	p->failed = sr->failed;
	p->compared = r->compared;
	snprintf(p->phase, sizeof(p->phase), "%s", sr->phase);
	pthread_mutex_unlock(&r->e->lock);
	store_run_free(sr);
	progress_print(r->e, false);
}

static RC_MUST_CHECK rcode
set_phase(struct run *r, const char *phase)
{
	rcode rc = store_run_phase(r->store, r->id, phase);

	pthread_mutex_lock(&r->e->lock);
	snprintf(r->e->progress.phase, sizeof(r->e->progress.phase), "%s", phase);
	pthread_mutex_unlock(&r->e->lock);
	if (rc)
		rerror_set(r->err, rc, "journal: cannot record phase %s", phase);
	return rc;
}

/* Journals an error row and logs it; returns rc unchanged (a pass-through
 * for `return journal_error(...)`, so its result may be dropped). */
static rcode
journal_error(struct run *r, rcode rc, int64_t batch_no, const char *doc_id, const char *phase,
              const char *source, const char *message)
{
	log_msg(LOG_ERROR, r->id, "%s: %s", phase, message);
	if (store_error(r->store, r->id, batch_no, doc_id, phase, source, rcode_name(rc), message))
		log_msg(LOG_WARN, r->id, "journal: cannot record the error above");
	return rc;
}

/* ---- the pass's reads: MongoDB and the index --------------------------- */

/* Keeps the document whose id the stream gave last (content compare). */
static RC_MUST_CHECK rcode
stash_push(struct content *c, const char *id, int type, const bson_t *doc)
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
static void
stash_drop_through(struct content *c, const char *id, int type)
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

static void
stash_free(struct content *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].id);
		bson_destroy(c->v[i].doc);
	}
	free(c->v);
	c->v = NULL;
	c->n = c->cap = 0;
}

static RC_MUST_CHECK rcode
io_mongo_next(void *ctx, struct idlist *out, int *cls, bool *end, bool *unsafe, struct rerror *err)
{
	struct run *r = ctx;
	rcode rc = mongo_scan_next_id(r->scan, out, cls, end, unsafe, r->cfg->version_field, err);

	if (rc == RC_OK && !*end && r->content.on &&
	    stash_push(&r->content, idlist_id(out, out->n - 1), out->v[out->n - 1].type,
	               mongo_scan_last_doc(r->scan)))
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	return rc;
}

static RC_MUST_CHECK rcode
io_on_unsafe(void *ctx, const char *text, enum id_type type, struct rerror *err)
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
		rc = store_error(r->store, r->id, -1, text, "diffing", "engine", "id_nul", why);
	}
	if (rc == RC_OK)
		rc = store_run_recount_due(r->store, r->id);
	return rc ? rerror_set(err, rc, "journal: cannot record a failure") : RC_OK;
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

static void
prefetch_free(struct prefetch *p)
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
	if (p->after == NULL || (p->os == NULL && opensearch_open(&p->os, r->cfg, &e)))
		return; /* e dropped: the page is read in turn instead */
	p->running = pthread_create(&p->thread, NULL, prefetch_main, p) == 0;
}

static RC_MUST_CHECK rcode
io_index_page(void *ctx, struct idlist *out, bool *more, const char *after, int size,
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

static RC_MUST_CHECK rcode
io_index_lookup(void *ctx, struct idlist *out, const char *const *ids, size_t n, struct rerror *err)
{
	struct run *r = ctx;

	return opensearch_lookup(r->os, out, &r->keys, ids, n, err);
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

/* A targeted run of a few ids asks one {_id: v} query per value; more
 * values, and a pass's chunks, go in one $in. On MongoDB both are _id index
 * lookups and the choice costs nothing. On FerretDB 1.x (SQLite) a $in is
 * a scan in FerretDB (~15 s per 100k documents here) and even {_id: v} is
 * a scan in SQLite (~1.3 s: its index is on ->"_id", its query on
 * ->'$._id'), so point queries win up to about a dozen values, and a
 * bounded number of them keeps a 100-id request from taking minutes. */
#define POINT_QUERIES_MAX 16

static bool
point_queries(const struct run *r, const bson_t *values)
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
	                : mongo_fetch(r->mongo, values, &proj, point_queries(r, values), on_exists,
	                              on_exists_refused, x, err);
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
static RC_MUST_CHECK rcode
io_mongo_exists(void *ctx, const char *const *texts, size_t n, bool *exists, bool *outside,
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

static RC_MUST_CHECK rcode
io_mongo_other(void *ctx, const char *const *texts, const enum id_type *types, size_t n,
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

static RC_MUST_CHECK rcode
io_mongo_has_type(void *ctx, enum id_type type, bool *has, struct rerror *err)
{
	struct run *r = ctx;

	return mongo_has_type(r->mongo, type, has, err);
}

/* ---- stale by content ------------------------------------------------------ */

/* Pairs compared per _mget. */
#define CONTENT_BATCH 500
/* Most distinct top-level names asked of _source; past it, the whole. */
#define CONTENT_MAX_INCLUDES 256
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
 * copy), parsed. NULL in *out when the document is left out of the index
 * or cannot be converted (its repair would fail the same way). */
static RC_MUST_CHECK rcode
content_body(struct run *r, struct jt **out, struct buf *body, const bson_t *doc, const char *id)
{
	struct rerror e = {0};
	char *routing = NULL;
	bool skip = false;
	rcode rc;

	*out = NULL;
	buf_reset(body);
	if (transform_active(r->tf))
		rc = transform_apply(r->tf, doc, r->id_field, id, body, &routing, &skip, &e);
	else
		rc = doc_to_json(doc, r->id_field, id, body, &e);
	free(routing);
	if (rc == RC_ERR_NOMEM)
		return rc;
	if (rc || skip) {
		if (rc) {
			r->content.unconverted++;
			log_msg(LOG_DEBUG, r->id, "content compare: document %s: %s", id,
			        e.message);
		}
		return RC_OK;
	}
	rc = jt_parse(out, body->data ? body->data : "{}", body->data ? body->len : 2, &e);
	if (rc == RC_ERR_INVALID) { /* cannot happen: our own JSON */
		log_msg(LOG_WARN, r->id, "content compare: document %s: %s", id, e.message);
		rc = RC_OK;
	}
	return rc;
}

/* The distinct top-level names of the bodies, for _source filtering; n
 * 0 (the whole _source) when there are too many or a name that source
 * filtering reads as a pattern or a path. */
static RC_MUST_CHECK rcode
content_includes(const char ***out, size_t *n, struct jt *const *bodies, size_t nb)
{
	const char **v = malloc(CONTENT_MAX_INCLUDES * sizeof(*v));

	*n = 0;
	*out = v;
	if (v == NULL)
		return RC_ERR_NOMEM;
	for (size_t i = 0; i < nb; i++) {
		for (size_t k = 0; bodies[i] && k < bodies[i]->n; k++) {
			const struct jt *m = &bodies[i]->kids[k];
			size_t j = 0;
			if (m->key_len == 0 || strlen(m->key) != m->key_len ||
			    strpbrk(m->key, "*.,") != NULL) {
				*n = 0;
				return RC_OK;
			}
			while (j < *n && strcmp(v[j], m->key))
				j++;
			if (j < *n)
				continue;
			if (*n == CONTENT_MAX_INCLUDES) {
				*n = 0;
				return RC_OK;
			}
			v[(*n)++] = m->key;
		}
	}
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
	size_t *at = calloc(n, sizeof(*at)), ng = 0, n_inc = 0;
	const char **inc = NULL;
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
		rc = content_body(r, &bodies[k], &texts[k], doc, id);
		if (rc || bodies[k] == NULL)
			continue;
		gets[ng] = (struct os_get){.index = idlist_index(osl, oi[k]),
		                           .id = idlist_target(osl, oi[k]),
		                           .routing = idlist_routing(osl, oi[k])};
		at[ng++] = k;
	}
	if (rc == RC_OK)
		rc = content_includes(&inc, &n_inc, bodies, n);
	if (rc) {
		rc = rerror_set(err, rc, "out of memory");
		goto out;
	}
	if (ng == 0)
		goto out;
	rc = opensearch_mget(r->os, &resp, gets, ng, inc, n_inc, err);
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
		size_t k = at[g], count = 0;
		/* gone since the scan: the next run sees it missing */
		if (found == NULL || found->type != JT_TRUE)
			continue;
		r->content.pairs++;
		buf_reset(&names);
		rc = jt_diff_fields(&names, CONTENT_FIELDS_MAX, &count, src ? src : NULL, bodies[k],
		                    r->cfg->write_mode == WRITE_UPSERT);
		if (rc == RC_OK && count) {
			r->content.differ++;
			if ((fields[k] = strdup(names.data ? names.data : "")) == NULL)
				rc = RC_ERR_NOMEM;
		}
		if (rc)
			rc = rerror_set(err, rc, "out of memory");
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
	free(inc);
	jt_free(resp_tree);
	buf_free(&resp);
	buf_free(&names);
	return rc;
}

static RC_MUST_CHECK rcode
io_content_differs(void *ctx, const struct idlist *m, const struct idlist *osl, const size_t *mi,
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

/* What comparing by content cost, said once at the end of the pass. */
static void
content_report(struct run *r)
{
	const struct content *c = &r->content;
	char msg[400];

	if (!c->on)
		return;
	snprintf(msg, sizeof(msg),
	         "content compare: %" PRId64 " copies compared, %" PRId64 " differ, %" PRId64
	         " not convertible; read %" PRId64 " bytes of MongoDB documents and %" PRId64
	         " bytes of _source in %" PRId64 " _mget requests; %" PRId64
	         " ms transforming, reading copies and comparing",
	         c->pairs, c->differ, c->unconverted, c->mongo_bytes, c->mget_bytes,
	         c->mget_requests, c->ms);
	log_msg(LOG_INFO, r->id, "%s", msg);
	if (store_event(r->store, r->id, "content", msg))
		log_msg(LOG_WARN, r->id, "journal: cannot record an event");
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

static RC_MUST_CHECK rcode
io_mongo_lookup(void *ctx, const char *const *texts, size_t n, struct idlist *out, bool *answered,
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
		rc = mongo_fetch(r->mongo, &arr, &proj, point_queries(r, &arr), on_looked_up,
		                 on_lookup_refused, &x, err);
	if (rc == RC_OK && x.rc)
		rc = x.rc;
	free(owner);
	bson_destroy(&arr);
	bson_destroy(&proj);
	return rc;
}

/* ---- the pass's results: journal and repair ------------------------------ */

static bool
too_young(struct run *r, int64_t t)
{
	return r->cfg->min_age_ms > 0 && t >= 0 && util_now_ms() - t < r->cfg->min_age_ms;
}

static RC_MUST_CHECK rcode
commit_cursor(struct run *r, const char *id, enum id_type type, int64_t compared, int64_t seen,
              int64_t index_read)
{
	rcode rc = store_run_cursor(r->store, r->id, doc_id_type_name(type), id, seen, compared,
	                            index_read);
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
static RC_MUST_CHECK rcode
flush_queue(struct run *r)
{
	rcode rc = RC_OK;

	if (repair_queued(&r->rp) > 0) {
		rc = set_phase(r, "repairing");
		if (rc == RC_OK)
			rc = repair_flush(&r->rp);
		if (rc == RC_OK)
			rc = set_phase(r, r->pass_done ? "finishing" : "diffing");
	}
	if (rc == RC_OK && r->queued_cursor.n) {
		rc = commit_cursor(r, idlist_id(&r->queued_cursor, 0),
		                   (enum id_type)r->queued_cursor.v[0].type, r->queued_compared,
		                   r->queued_seen, r->queued_index_read);
		idlist_clear(&r->queued_cursor);
	}
	progress_sync(r, false);
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

/* A missing document's place: its id and type, and its index in out. */
struct left_out_ref {
	const char *id;
	int type;
	size_t i;
};

static int
cmp_left_out(const void *a, const void *b)
{
	const struct left_out_ref *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	return c ? c : (x->type > y->type) - (x->type < y->type);
}

struct left_out_ctx {
	struct run *r;
	struct left_out_ref *refs; /* the missing documents, sorted (cmp_left_out) */
	size_t n;
	bool *out;
	struct buf body;
	rcode rc;
};

static int
on_left_out_doc(void *ctx, const bson_t *doc)
{
	struct left_out_ctx *x = ctx;
	struct rerror e = {0};
	struct buf id = {0};
	enum id_type type;
	bson_iter_t it;
	char *routing = NULL;
	bool skip = false;

	if (!bson_iter_init_find(&it, doc, "_id") ||
	    doc_id_canonical(bson_iter_value(&it), &id, &type))
		goto out; /* its repair says what is wrong with it */
	struct left_out_ref key = {.id = id.data, .type = (int)type};
	const struct left_out_ref *hit =
	    bsearch(&key, x->refs, x->n, sizeof(*x->refs), cmp_left_out);
	if (hit == NULL || x->out[hit->i])
		goto out;
	buf_reset(&x->body);
	rcode rc =
	    transform_apply(x->r->tf, doc, x->r->id_field, id.data, &x->body, &routing, &skip, &e);
	if (rc == RC_ERR_NOMEM)
		x->rc = rc;
	/* a script error is the repair's to journal: the document stays missing */
	x->out[hit->i] = rc == RC_OK && skip;
out:
	free(routing);
	buf_free(&id);
	return x->rc != RC_OK;
}

static void
on_left_out_refused(void *ctx, size_t index, const char *reason)
{
	(void)ctx, (void)index, (void)reason; /* stays missing; its repair fails it */
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
	struct left_out_ctx x = {.r = r, .n = d->n_missing, .out = out};
	bson_t arr = BSON_INITIALIZER;
	rcode rc = RC_OK;

	/* each fetched document found by a binary search, not a scan of the
	 * chunk's missing ones (a first check of an empty index: all of them) */
	x.refs = malloc(d->n_missing * sizeof(*x.refs));
	if (x.refs == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < d->n_missing; i++) {
		size_t k = d->missing[i];
		out[i] = false;
		x.refs[i] = (struct left_out_ref){idlist_id(m, k), m->v[k].type, i};
	}
	qsort(x.refs, d->n_missing, sizeof(*x.refs), cmp_left_out);
	for (size_t i = 0; rc == RC_OK && i < d->n_missing; i++) {
		char key[16];
		const char *kp;
		size_t k = d->missing[i];
		bson_uint32_to_string((uint32_t)i, &kp, key, sizeof(key));
		rc = doc_id_append(&arr, kp, idlist_id(m, k), (enum id_type)m->v[k].type);
	}
	if (rc)
		rc = rerror_set(err, rc, "id %s cannot be rebuilt", idlist_id(m, d->missing[0]));
	else
		rc = mongo_fetch(r->mongo, &arr, NULL, point_queries(r, &arr), on_left_out_doc,
		                 on_left_out_refused, &x, err);
	if (rc == RC_OK && x.rc)
		rc = rerror_set(err, x.rc, "out of memory");
	for (size_t i = 0; rc == RC_OK && i < d->n_missing; i++)
		r->left_out += out[i];
	free(x.refs);
	buf_free(&x.body);
	bson_destroy(&arr);
	return rc;
}

/* The sink: journals a chunk's drift in one transaction, queues what is
 * to be repaired, and repairs when the queue is full. */
static RC_MUST_CHECK rcode
io_on_drift(void *ctx, const struct pass_drift *pd, struct rerror *err)
{
	struct run *r = ctx;
	const struct drift *d = pd->d;
	const struct idlist *m = pd->m, *osl = pd->osl;
	bool act = !r->dry_run;
	bool delete_orphans = act && r->cfg->orphans == ORPHANS_DELETE;
	size_t cap = d->n_missing + d->n_stale + pd->n_orphans + d->n_duplicate, n = 0;
	struct store_drift_row *rows = malloc((cap ? cap : 1) * sizeof(*rows));
	bool *left_out = calloc(d->n_missing ? d->n_missing : 1, sizeof(*left_out));
	rcode rc = rows && left_out ? RC_OK : rerror_set(err, RC_ERR_NOMEM, "out of memory");

	if (rc == RC_OK && d->n_missing && transform_scripted(r->tf))
		rc = missing_left_out(r, m, d, left_out, err);

	/* two documents, one index _id: say so, whatever else the id is. A
	 * missing one is still indexed (one of the two is better than none);
	 * a stale one is not rewritten (it would undo the other, every run) */
	for (size_t k = 0; rc == RC_OK && k < m->n; k++)
		if (pd->conflict[k])
			rc = record_conflict(r, idlist_id(m, k), (enum id_type)m->v[k].type,
			                     pd->conflict[k]);

	for (size_t i = 0; rc == RC_OK && i < d->n_missing; i++) {
		size_t k = d->missing[i];
		if (left_out[i])
			continue;
		struct store_drift sd = {.doc_id = idlist_id(m, k),
		                         .id_type = doc_id_type_name(m->v[k].type),
		                         .kind = DRIFT_MISSING};
		rc = add_row(r, rows, &n, &sd, (enum id_type)m->v[k].type, act,
		             too_young(r, m->v[k].time_ms), false);
	}
	for (size_t i = 0; rc == RC_OK && i < d->n_stale; i++) {
		size_t k = d->stale[i], o = d->stale_os[i];
		if (pd->conflict[k])
			continue;
		/* the overwrite goes to the copy: its index and its routing */
		struct store_drift sd = {.doc_id = idlist_id(m, k),
		                         .id_type = doc_id_type_name(m->v[k].type),
		                         .kind = DRIFT_STALE,
		                         .os_index = idlist_index(osl, o),
		                         .routing = idlist_routing(osl, o),
		                         .seq_no = osl->v[o].seq_no,
		                         .primary_term = osl->v[o].primary_term};
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
	if (rc == RC_OK && repair_queued(&r->rp) >= REPAIR_QUEUE_MAX)
		rc = flush_queue(r);
	return rc;
}

/* Moves the cursor past a chunk: now if nothing waits to be repaired, else
 * when the queue is flushed (the cursor never passes uncommitted work). */
static RC_MUST_CHECK rcode
io_on_chunk(void *ctx, const char *id, enum id_type type, int64_t compared, int64_t seen,
            struct rerror *err)
{
	struct run *r = ctx;
	rcode rc = RC_OK;

	r->compared = compared;
	r->seen = seen;
	if (r->content.on)
		stash_drop_through(&r->content, id, (int)type);
	if (repair_queued(&r->rp) == 0) {
		rc = commit_cursor(r, id, type, compared, seen, r->stats.index_read);
		progress_sync(r, false);
		return rc;
	}
	idlist_clear(&r->queued_cursor);
	r->queued_compared = compared;
	r->queued_seen = seen;
	r->queued_index_read = r->stats.index_read;
	if (idlist_push(&r->queued_cursor, id, strlen(id), (int)type, NULL, -1))
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	/* the drift found so far is journaled even while its repairs wait:
	 * shown now, not at the queue's flush (QA11 F3) */
	progress_sync(r, false);
	return RC_OK;
}

static RC_MUST_CHECK rcode decide_deletes(struct run *r);

static RC_MUST_CHECK rcode
pass_diff(struct run *r)
{
	struct pass_opts o = {.chunk_size = r->cfg->chunk_size,
	                      .compare_versions = *r->cfg->version_field != '\0',
	                      .compare_content = r->content.on,
	                      .index_missing = r->index_missing,
	                      .write_index = r->write_index,
	                      .filtered = mongo_filtered(r->mongo),
	                      .cursor = r->cursor,
	                      .cursor_type = r->cursor_type,
	                      .seen = r->seen,
	                      .compared = r->compared,
	                      .stop = &r->e->stop,
	                      .stats = &r->stats,
	                      .ids = (const char *const *)r->opts->ids,
	                      .n_ids = r->kind == RUN_IDS ? r->opts->n_ids : 0,
	                      .targeted = r->kind == RUN_IDS && r->opts->since};
	struct pass_io io = {.ctx = r,
	                     .mongo_next = io_mongo_next,
	                     .on_unsafe = io_on_unsafe,
	                     .index_page = io_index_page,
	                     .index_lookup = io_index_lookup,
	                     .mongo_exists = io_mongo_exists,
	                     .mongo_other = io_mongo_other,
	                     .mongo_has_type = io_mongo_has_type,
	                     .mongo_lookup = io_mongo_lookup,
	                     .on_drift = io_on_drift,
	                     .on_chunk = io_on_chunk,
	                     .content_differs = io_content_differs};
	rcode rc = RC_OK;

	/* by content, the stream reads whole documents: the chunk's are at
	 * hand when its copies are compared, and no second query is needed */
	if (r->kind == RUN_IDS && r->opts->since)
		rc = mongo_scan_open_since(&r->scan, r->mongo, r->cfg->version_field,
		                           r->opts->since_ms, (int)r->cfg->chunk_size, r->err);
	else if (r->kind != RUN_IDS)
		rc = mongo_scan_open(&r->scan, r->mongo, r->cursor, r->cursor_type,
		                     r->cfg->version_field, r->content.on, (int)r->cfg->chunk_size,
		                     true, r->err);
	if (rc == RC_OK)
		rc = pass_run(&o, &io, r->err);
	content_report(r);
	stash_free(&r->content);
	prefetch_free(&r->pre); /* a page asked ahead and not needed: dropped */
	if (rc == RC_OK && !r->e->stop) {
		r->pass_done = true;
		rc = flush_queue(r);
	}
	if (rc == RC_OK && !r->e->stop && !r->dry_run)
		rc = decide_deletes(r);
	return rc;
}

/* ---- the brake on deletes --------------------------------------------- */

static int
on_held(void *ctx, const struct store_drift *d)
{
	struct repair *rp = ctx;
	enum id_type t;

	if (doc_id_type_parse(d->id_type, &t))
		t = ID_STRING;
	return repair_queue(rp, d, t) != RC_OK;
}

/* QA11 F1: a peer on this mirror's index (or maybe on it: its cluster
 * did not answer) whose query differs from this one's as text may still
 * select the same documents. Asked when deletes are decided, so copies a
 * peer wrote during the pass count too: the documents of this mirror's
 * index that match both queries. Any, or a count that fails, and why[]
 * says so (the deletes are held); the run goes on either way (one
 * mirror's problem never stops another's repairs). */
static RC_MUST_CHECK rcode
peers_overlap(struct run *r, char *why, size_t len)
{
	const struct config_set *set = r->cfg->set;
	struct os_concrete *mine = NULL;
	size_t n_mine = 0;
	struct rerror perr = {0};
	rcode rc = RC_OK;

	why[0] = '\0';
	for (size_t i = 0; r->peers_count && i < set->n_mirrors && !why[0] && !rc; i++) {
		const struct config *p = set->mirrors[i];
		if (!r->peers_count[i])
			continue;
		if (mine == NULL &&
		    (rc = opensearch_concrete(r->os, &mine, &n_mine, NULL, &perr))) {
			if (rc != RC_ERR_NOMEM) /* held too */
				snprintf(
				    why, len,
				    "this mirror's index could not be resolved to check mirror "
				    "%s's opensearch_query against it (%.160s)",
				    p->name, perr.message);
			break;
		}
		for (size_t a = 0; a < n_mine && !why[0] && !rc; a++) {
			int64_t both = 0;
			rc = opensearch_count_shared(r->os, &both, mine[a].name,
			                             p->opensearch_query, &perr);
			if (rc && rc != RC_ERR_NOMEM)
				snprintf(
				    why, len,
				    "the documents mirror %s's opensearch_query shares with this "
				    "one's in index %s could not be counted (%.160s), so these "
				    "copies may be its documents",
				    p->name, mine[a].name, perr.message);
			else if (both > 0)
				snprintf(
				    why, len,
				    "%" PRId64 " documents of index %s match both this mirror's "
				    "opensearch_query and mirror %s's, so these copies may be its "
				    "documents: give each mirror a query that selects only its own",
				    both, mine[a].name, p->name);
		}
	}
	opensearch_concrete_free(mine, n_mine);
	return rc == RC_ERR_NOMEM ? rerror_set(r->err, rc, "out of memory") : RC_OK;
}

/* Why the brake holds this run's n held orphan deletes ("" when it does
 * not): the limits (unless limits is false: released for the run), and,
 * always, whether each side's stream read what its count said and whether
 * the collection is still there. Those are not a number a person judged
 * when releasing the limits: a collection renamed away during a released
 * run made every copy an orphan (QA), so they hold even then. */
static RC_MUST_CHECK rcode
brake_reasons(struct run *r, int64_t n, bool limits, char *why, size_t len)
{
	size_t at = 0;
	int64_t unsafe = 0;
	bool exists = true;

#define WHY(...)                                                                                   \
	do {                                                                                       \
		if (at < len)                                                                      \
			at += (size_t)snprintf(why + at, len - at, "%s", at ? "; " : "");          \
		if (at < len)                                                                      \
			at += (size_t)snprintf(why + at, len - at, __VA_ARGS__);                   \
	} while (0)

	why[0] = '\0';
	if (limits && (double)n > r->cfg->max_delete_ratio * (double)r->os_count)
		WHY("%" PRId64 " orphans are %.1f%% of the index's %" PRId64
		    " documents, over RECONCILE_MAX_DELETE_RATIO=%g",
		    n, r->os_count > 0 ? 100.0 * (double)n / (double)r->os_count : 100.0,
		    r->os_count, r->cfg->max_delete_ratio);
	if (limits && n > r->cfg->max_deletes)
		WHY("%" PRId64 " orphans, over RECONCILE_MAX_DELETES=%" PRId64, n,
		    r->cfg->max_deletes);
	/* asked again now: every orphan was proven absent from this collection */
	if (mongo_collection_exists(r->mongo, &exists, r->err))
		return r->err->code;
	if (!exists)
		WHY("the collection %s.%s does not exist any more (renamed or dropped during "
		    "the run?)",
		    r->cfg->mongodb_database, r->cfg->mongodb_collection);
	if (r->peer_unknown[0])
		WHY("%s", r->peer_unknown);
	char overlap[400];
	if (peers_overlap(r, overlap, sizeof(overlap)))
		return r->err->code;
	if (overlap[0])
		WHY("%s", overlap);
	if (r->kind == RUN_IDS)
		return RC_OK; /* looked up one by one: no stream to be short */
	if (store_run_unsafe_ids(r->store, r->id, &unsafe))
		return rerror_set(r->err, RC_ERR_STORE, "journal: cannot count unsafe ids");
	if (r->mongo_count >= 0 && r->compared + unsafe < r->mongo_count)
		WHY("the MongoDB id stream read %" PRId64
		    " ids, fewer than its count said (%" PRId64 ")",
		    r->compared + unsafe, r->mongo_count);
	if (!r->index_missing && r->stats.index_read + r->lacking < r->os_count)
		WHY("the index id stream read %" PRId64 " copies (+%" PRId64
		    " without the id field), fewer than its count said (%" PRId64 ")",
		    r->stats.index_read, r->lacking, r->os_count);
#undef WHY
	return RC_OK;
}

/* The end of a pass: sends the held orphan deletes, or keeps them all. */
static RC_MUST_CHECK rcode
decide_deletes(struct run *r)
{
	int64_t n = 0, left;
	char reasons[700], release[300];
	rcode rc;

	if ((rc = store_held_count(r->store, r->id, &n)))
		return rerror_set(r->err, rc, "journal: cannot count held deletes");
	if (n == 0)
		return RC_OK;
	/* said once, before deciding changes it: decided now, or on resume */
	const char *how = r->brake == BRAKE_ON ? "passed" : store_brake_name(r->brake);
	if (r->brake == BRAKE_ON || r->brake == BRAKE_RELEASED) {
		if ((rc = brake_reasons(r, n, r->brake == BRAKE_ON, reasons, sizeof(reasons))))
			return rc;
		if (reasons[0]) {
			const char *mirror = r->cfg->name ? r->cfg->name : "default";
			if (r->brake == BRAKE_RELEASED)
				snprintf(
				    release, sizeof(release),
				    "Released for this run, but releasing lifts the limits, never "
				    "this: run the check again once the cause is gone");
			else
				snprintf(release, sizeof(release),
				         "To delete them: %s --allow-deletes --mirror %s, or POST "
				         "/api/mirrors/%s/check {%s\"allowDeletes\": true}",
				         r->kind == RUN_IDS
				             ? "the same ids with reconciler check --ids FILE"
				             : "reconciler check",
				         mirror, mirror,
				         r->kind == RUN_IDS ? "\"ids\": [...], " : "");
			snprintf(r->why, sizeof(r->why),
			         "held %" PRId64 " orphan deletes, nothing deleted: %s. %s", n,
			         reasons, release);
			if ((rc = store_held_keep(r->store, r->id, r->why)) ||
			    (rc = store_event(r->store, r->id, "held", r->why)))
				return rerror_set(r->err, rc,
				                  "journal: cannot record held deletes");
			log_msg(LOG_WARN, r->id, "%s", r->why);
			r->held = true;
			r->n_held = n;
			return RC_OK;
		}
		/* decided (limits judged, or released by a person): a resumed run
		 * sends the rest without deciding again */
		if ((rc = store_run_brake(r->store, r->id, BRAKE_PASSED)))
			return rerror_set(r->err, rc, "journal: cannot record the brake");
		r->brake = BRAKE_PASSED;
	}
	log_msg(LOG_INFO, r->id, "deleting %" PRId64 " orphans (brake %s)", n, how);
	while (rc == RC_OK && n > 0 && !r->e->stop) {
		rc = store_held_next(r->store, r->id, REPAIR_QUEUE_MAX, on_held, &r->rp);
		if (rc)
			return rerror_set(r->err, rc, "journal: cannot read held deletes");
		/* judged when the pass met them, maybe hours or an interruption
		 * ago: MongoDB is asked again right before they go (QA: a resumed
		 * run deleted copies of documents restored while it was down) */
		if ((rc = repair_recheck_deletes(&r->rp)) || (rc = flush_queue(r)))
			return rc;
		if ((rc = store_held_count(r->store, r->id, &left)))
			return rerror_set(r->err, rc, "journal: cannot count held deletes");
		if (left >= n && !r->e->stop) /* never loop on rows a batch did not take */
			return rerror_set(r->err, RC_ERR_INTERNAL,
			                  "%" PRId64 " held deletes were not sent", left);
		n = left;
	}
	return rc;
}

static void
on_repair_commit(void *ctx)
{
	struct run *r = ctx;

	if (r->full)
		r->compared = r->rp.compared;
	progress_sync(r, false);
}

/* ---- a run ------------------------------------------------------------ */

/* Errors of a server, the network or the journal (a full disk, a lock held
 * too long) leave the run resumable: its committed batches are whole, so
 * it ends interrupted and continues from them once the cause is gone,
 * whether or not its end could be written. */
static bool
resumable(rcode rc)
{
	return rc == RC_ERR_MONGO || rc == RC_ERR_OPENSEARCH || rc == RC_ERR_RETRY ||
	       rc == RC_ERR_CANCELLED || rc == RC_ERR_STORE;
}

/* Picks the id field and version format from the index mapping; creates
 * the index (id field as keyword) when it does not exist and we may write. */
static RC_MUST_CHECK rcode
setup_keys(struct run *r)
{
	const char *idf = r->cfg->opensearch_id_field;
	char *type = NULL, *inexact = NULL;
	rcode rc = RC_OK;

	r->id_field = strdup(idf);
	r->keys.sort_field = "_id";
	if (r->id_field == NULL)
		return RC_ERR_NOMEM;
	/* an alias may span several indices: hits say which one each copy is
	 * in, and deletes and overwrites go there, not to the write index */
	rc = opensearch_targets(r->os, &r->write_index, &r->keys.n_indices, r->err);
	if (rc)
		return rc;
	if (r->keys.n_indices > 1) {
		char msg[300];
		snprintf(msg, sizeof(msg),
		         "%s is an alias over %d indices (write index: %s): copies are compared, "
		         "overwritten and deleted in the index they are in",
		         r->cfg->opensearch_index, r->keys.n_indices,
		         r->write_index ? r->write_index
		                        : "none, so missing documents cannot be "
		                          "indexed through it");
		log_msg(LOG_INFO, r->id, "%s", msg);
		if ((rc = store_event(r->store, r->id, "alias", msg)))
			return rerror_set(r->err, rc, "journal: cannot record an event");
	}
	if (*idf) {
		rc = opensearch_field_type(r->os, &type, &inexact, idf, r->err);
		if (rc == RC_ERR_NOTFOUND && !r->dry_run) {
			*r->err = (struct rerror){0};
			rc = opensearch_create_index(r->os, idf, r->err);
			if (rc == RC_OK) {
				log_msg(LOG_INFO, r->id, "created the index with %s as keyword",
				        idf);
				rc = opensearch_field_type(r->os, &type, &inexact, idf, r->err);
			}
		}
		if (rc == RC_OK && type == NULL && !r->dry_run) {
			/* an index made with settings only: give it the key order */
			rc = opensearch_map_id_field(r->os, idf, r->err);
			if (rc == RC_OK) {
				log_msg(LOG_INFO, r->id, "mapped %s as keyword in the index", idf);
				rc = opensearch_field_type(r->os, &type, &inexact, idf, r->err);
			}
		}
		if (rc == RC_ERR_NOTFOUND) {
			*r->err = (struct rerror){0};
			r->index_missing = true;
			log_msg(LOG_WARN, r->id,
			        "the index does not exist: every document is missing");
			rc = RC_OK;
		}
		if (rc)
			return rc;
		if (type && strcmp(type, "keyword") == 0 && inexact) {
			/* its doc values are not the ids (lowercased, or missing for long
			 * ones): the key order would mismatch, and lie */
			char msg[400];
			snprintf(
			    msg, sizeof(msg),
			    "OPENSEARCH_ID_FIELD %s %s, so its values are not the ids exactly: "
			    "ids are read from _id instead",
			    idf, inexact);
			log_msg(LOG_WARN, r->id, "%s", msg);
			rc = store_event(r->store, r->id, "warning", msg);
		} else if (type && strcmp(type, "keyword") == 0) {
			int64_t lacking = 0;
			r->keys.sort_field = r->id_field;
			/* such documents cannot be placed in key order: say so */
			rc = opensearch_count_missing(r->os, &lacking, idf, r->err);
			r->lacking = lacking;
			if (rc == RC_OK && lacking > 0) {
				char msg[300];
				snprintf(msg, sizeof(msg),
				         "%" PRId64
				         " documents of the index lack %s: the pass cannot see "
				         "them, so orphans among them are not found "
				         "(OPENSEARCH_ID_FIELD= "
				         "reads ids from _id instead)",
				         lacking, idf);
				log_msg(LOG_WARN, r->id, "%s", msg);
				rc = store_event(r->store, r->id, "warning", msg);
			}
		} else if (!r->index_missing) {
			log_msg(LOG_WARN, r->id,
			        "OPENSEARCH_ID_FIELD %s is %s in the index mapping, not keyword: "
			        "ids are read from _id instead",
			        idf, type ? type : "not mapped");
			rc = store_event(r->store, r->id, "warning",
			                 "id field not a keyword; using _id");
		}
		free(type);
		free(inexact);
		type = NULL;
		if (rc)
			return rc;
	}
	if (*r->cfg->version_field && !r->index_missing) {
		rc = opensearch_field_type(r->os, &type, &inexact, r->cfg->version_field, r->err);
		if (rc == RC_ERR_NOTFOUND) {
			*r->err = (struct rerror){0};
			rc = RC_OK;
		}
		/* doc values where they are usable and alike in every index, else
		 * _source (slower, but a text or doc_values:false mapping must not
		 * fail every run) */
		bool docvalues = type && !inexact &&
		                 (strncmp(type, "date", 4) == 0 || strcmp(type, "keyword") == 0 ||
		                  strcmp(type, "long") == 0 || strcmp(type, "integer") == 0 ||
		                  strcmp(type, "double") == 0 || strcmp(type, "float") == 0 ||
		                  strcmp(type, "unsigned_long") == 0 || strcmp(type, "short") == 0);
		if (docvalues && strncmp(type, "date", 4) == 0)
			r->keys.version_format = "epoch_millis";
		r->keys.version_source = type && !docvalues;
		if (r->keys.version_source)
			log_msg(LOG_INFO, r->id, "versions are read from _source: %s %s",
			        r->cfg->version_field, inexact ? inexact : type);
		free(type);
		free(inexact);
		r->keys.version_field = r->cfg->version_field;
	}
	return rc;
}

/* A warning that does not stop the run: logged, and journaled as a
 * `warning` event (a journal that refuses it is only logged). */
static void
warn_journaled(struct run *r, const char *msg)
{
	log_msg(LOG_WARN, r->id, "%s", msg);
	if (store_event(r->store, r->id, "warning", msg))
		log_msg(LOG_ERROR, r->id, "journal: cannot record a warning");
}

/* Makes what was indexed so far visible to search, so the pass compares
 * against everything written before it (and the next run sees our
 * repairs). Not fatal: a cluster may forbid it, the pass still works. */
static void
refresh(struct run *r)
{
	struct rerror e = {0};

	if (!r->index_missing && opensearch_refresh(r->os, &e) && e.code != RC_ERR_NOTFOUND)
		log_msg(LOG_WARN, r->id, "cannot refresh the index: %s", e.message);
}

/* With OPENSEARCH_QUERY the body written must match it, or the mirror
 * cannot see its own repair and finds the document missing again next run.
 * After a check that wrote: one lookup (under the query) of up to 100 of
 * the documents it indexed, and a warning when some are not found. Not
 * fatal, and not exhaustive: a sample says a transform forgets the field. */
static void
check_query_match(struct run *r)
{
	static const char *const kinds[] = {"missing", "stale"};
	const char *ids[100];
	cJSON *rows[2] = {NULL, NULL}, *row;
	struct idlist found = {0};
	struct rerror e = {0};
	size_t n = 0, seen = 0;

	if (!*r->cfg->opensearch_query || r->dry_run || r->full)
		return;
	for (int k = 0; k < 2; k++) {
		if (store_report_ids(r->store, &rows[k], r->id, kinds[k], NULL, 100))
			continue;
		cJSON_ArrayForEach(row, rows[k])
		{
			cJSON *id = cJSON_GetObjectItem(row, "id");
			cJSON *st = cJSON_GetObjectItem(row, "status");
			if (n < 100 && cJSON_IsString(id) && cJSON_IsString(st) &&
			    strcmp(st->valuestring, "done") == 0)
				ids[n++] = id->valuestring;
		}
	}
	if (n && opensearch_lookup(r->os, &found, &r->keys, ids, n, &e) == RC_OK) {
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < found.n; j++)
				if (strcmp(ids[i], idlist_id(&found, j)) == 0) {
					seen++;
					break;
				}
		if (seen < n) {
			char msg[600];
			snprintf(
			    msg, sizeof(msg),
			    "%zu of %zu documents this run indexed (a sample) do not match "
			    "OPENSEARCH_QUERY: the body written must hold what the query selects "
			    "(the transform writes it, docs/TRANSFORM.md), or the next run finds "
			    "them missing again",
			    n - seen, n);
			warn_journaled(r, msg);
		}
	}
	idlist_free(&found);
	cJSON_Delete(rows[0]);
	cJSON_Delete(rows[1]);
}

/* QA F1: two mirrors that write one index without each selecting its own
 * documents (OPENSEARCH_QUERY) delete each other's copies as orphans.
 * config.c refuses what text can tell (one URL or query spelled two ways);
 * what only the cluster can tell (an alias of the other's index, two DNS
 * names of one host) is found here, before anything is counted or
 * written: the concrete indices this mirror's index stands for and those of
 * each peer, compared by uuid, one small request per mirror. A peer without
 * a distinct query on the same index is refused; one with a distinct query
 * on it (or whose cluster does not answer) is marked in peers_count, and
 * the documents both queries select are counted when the deletes are
 * decided (peers_overlap: no configuration check can tell every query that
 * selects everything, QA11 F1). A name that does not exist yet is no
 * conflict. A peer without a distinct query whose cluster does not answer
 * holds the run's orphan deletes (peer_unknown, brake_reasons): they may be
 * that mirror's copies (QA8c F3: it failed open). */
static RC_MUST_CHECK rcode
check_peers(struct run *r)
{
	const struct config_set *set = r->cfg->set;
	struct os_concrete *mine = NULL;
	size_t n_mine = 0;
	rcode rc;

	if (set == NULL || set->n_mirrors < 2)
		return RC_OK;
	rc = opensearch_concrete(r->os, &mine, &n_mine, NULL, r->err);
	if (rc == RC_OK && n_mine &&
	    (r->peers_count = calloc(set->n_mirrors, sizeof(*r->peers_count))) == NULL)
		rc = rerror_set(r->err, RC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == RC_OK && n_mine && i < set->n_mirrors; i++) {
		const struct config *p = set->mirrors[i];
		struct opensearch *pos = NULL;
		struct os_concrete *theirs = NULL;
		size_t n_theirs = 0;
		struct rerror perr = {0};
		rcode prc;

		if (p == r->cfg || !strcmp(p->name, r->cfg->name))
			continue;
		bool distinct =
		    config_queries_distinct(p->opensearch_query, r->cfg->opensearch_query);
		prc = config_same_opensearch(p, r->cfg) ? RC_OK : opensearch_open(&pos, p, &perr);
		if (prc == RC_OK)
			prc = opensearch_concrete(pos ? pos : r->os, &theirs, &n_theirs,
			                          p->opensearch_index, &perr);
		opensearch_free(pos);
		if (prc == RC_ERR_NOMEM) {
			rc = rerror_set(r->err, prc, "out of memory");
		} else if (prc && distinct) {
			/* it may share the index: its query is asked of ours (below) */
			log_msg(LOG_WARN, r->id,
			        "mirror %s: cannot tell which index its %s is: the documents its "
			        "opensearch_query selects in this mirror's index are counted "
			        "before any delete: %s",
			        p->name, p->opensearch_index, perr.message);
			r->peers_count[i] = true;
		} else if (prc) {
			log_msg(LOG_WARN, r->id,
			        "mirror %s: cannot tell which index its %s is, so not compared "
			        "with this mirror's (this run's orphan deletes are held): %s",
			        p->name, p->opensearch_index, perr.message);
			if (!r->peer_unknown[0])
				snprintf(
				    r->peer_unknown, sizeof(r->peer_unknown),
				    "mirror %s's OpenSearch could not be asked whether its %s is "
				    "this index (%.160s), so these copies may be its documents",
				    p->name, p->opensearch_index, perr.message);
		}
		for (size_t a = 0; rc == RC_OK && a < n_mine; a++)
			for (size_t b = 0; rc == RC_OK && b < n_theirs; b++) {
				if (strcmp(mine[a].uuid, theirs[b].uuid))
					continue;
				if (distinct) /* counted when deletes are decided */
					r->peers_count[i] = true;
				else
					rc = rerror_set(
					    r->err, RC_ERR_INVALID,
					    "mirrors %s and %s both write into index %s (uuid %s; "
					    "opensearch_index %s and %s) without each selecting "
					    "its own documents with opensearch_query: each would "
					    "call the other's copies orphans and delete them; "
					    "nothing was changed: give each mirror its own index, "
					    "or its own opensearch_query",
					    r->cfg->name, p->name, mine[a].name, mine[a].uuid,
					    r->cfg->opensearch_index, p->opensearch_index);
			}
		opensearch_concrete_free(theirs, n_theirs);
	}
	opensearch_concrete_free(mine, n_mine);
	return rc;
}

static RC_MUST_CHECK rcode
count_both(struct run *r)
{
	int64_t mc = -1, oc = -1;
	bool exists;
	rcode rc;

	refresh(r);

	/* a collection that is not there is a typo far more often than an
	 * emptied collection, and a pass against it calls every copy an orphan */
	rc = mongo_collection_exists(r->mongo, &exists, r->err);
	if (rc)
		return rc;
	if (!exists)
		return rerror_set(r->err, RC_ERR_INVALID,
		                  "collection %s does not exist in database %s: check "
		                  "MONGODB_DATABASE and MONGODB_COLLECTION (nothing was changed)",
		                  r->cfg->mongodb_collection, r->cfg->mongodb_database);

	/* a targeted run reads a few ids: a count (a scan on some servers) is
	 * not worth it; the index's is cheap and the brake needs it */
	if (r->cfg->mongo_count == MONGO_COUNT_BEFORE && r->kind != RUN_IDS)
		rc = mongo_count(r->mongo, &mc, r->err);
	else
		rc = RC_OK; /* counted by the pass itself */
	if (rc == RC_OK) {
		rc = opensearch_count(r->os, &oc, r->err);
		if (rc == RC_ERR_NOTFOUND) {
			*r->err = (struct rerror){0};
			oc = 0;
			rc = RC_OK;
		}
	}
	if (rc)
		return rc;
	r->os_count = oc;
	r->mongo_count = mc;
	pthread_mutex_lock(&r->e->lock);
	r->e->progress.mongo_count = mc;
	r->e->progress.opensearch_count = oc;
	pthread_mutex_unlock(&r->e->lock);
	log_msg(LOG_INFO, r->id,
	        "counts: MongoDB %" PRId64 ", OpenSearch %" PRId64
	        " (counts are reported, never trusted)",
	        mc, oc);
	return store_run_counts(r->store, r->id, mc, oc);
}

/* The snapshot a run keeps of its settings (config_dump_json's object),
 * with the script's digest when a script runs; NULL without memory. */
static char *
with_digest(const char *snapshot, const char *digest)
{
	cJSON *j;
	char *out;

	if (digest == NULL)
		return strdup(snapshot);
	if ((j = cJSON_Parse(snapshot)) == NULL)
		return NULL; /* config_dump_json writes an object: only memory */
	out = cJSON_AddStringToObject(j, "RECONCILE_TRANSFORM_DIGEST", digest)
	          ? cJSON_PrintUnformatted(j)
	          : NULL;
	cJSON_Delete(j);
	return out;
}

/* Appends to changed when the script the run began with differs from the
 * one loaded now under the same RECONCILE_TRANSFORM (a changed path is
 * config_run_changes'). Runs from before the digest was kept: no change. */
static RC_MUST_CHECK rcode
digest_change(const char *snapshot, const char *path, const char *now, struct buf *changed)
{
	cJSON *j = snapshot ? cJSON_Parse(snapshot) : NULL;
	const cJSON *was = cJSON_GetObjectItemCaseSensitive(j, "RECONCILE_TRANSFORM_DIGEST");
	const cJSON *was_path = cJSON_GetObjectItemCaseSensitive(j, "RECONCILE_TRANSFORM");
	rcode rc = RC_OK;

	/* another path is config_run_changes' to say */
	if (cJSON_IsString(was) && now && cJSON_IsString(was_path) &&
	    strcmp(was_path->valuestring, path) == 0 && strcmp(was->valuestring, now) != 0)
		rc = buf_printf(
		    changed, "%sthe script RECONCILE_TRANSFORM names was edited (digest %s -> %s)",
		    changed->len ? "; " : "", was->valuestring, now);
	cJSON_Delete(j);
	return rc;
}

/* Whether the unfinished run sr may resume: not when a setting that binds a
 * run (what it compares, where and how it writes) differs from its
 * snapshot, since its cursor and pending rows belong to the old settings (a
 * pass continued over another collection from this one's cursor, deletes
 * checked against the wrong collection). Such a run is cancelled, its
 * error (and finished event) saying what changed; r->why keeps the text.
 * With opts->resume_only r->not_resumed is set: nothing else runs. */
static RC_MUST_CHECK rcode
not_resumable(struct run *r, const struct store_run *sr)
{
	struct buf changed = {0};
	rcode rc = config_run_changes(r->cfg, sr->config, &changed);

	if (rc == RC_OK)
		rc =
		    digest_change(sr->config, r->cfg->transform, transform_digest(r->tf), &changed);

	r->why[0] = '\0';
	if (rc == RC_ERR_INVALID) { /* no snapshot to hold it to */
		log_msg(LOG_WARN, sr->id,
		        "the run has no settings snapshot: resumed with the current settings");
		return RC_OK;
	}
	if (rc) {
		buf_free(&changed);
		return rerror_set(r->err, rc, "out of memory");
	}
	if (changed.len == 0) {
		buf_free(&changed);
		return RC_OK;
	}
	snprintf(r->why, sizeof(r->why),
	         "not resumed: settings that decide what the run compares or where it writes "
	         "changed since it began (%s); its cursor and pending batches belong to the old "
	         "ones, so it is cancelled and %s",
	         changed.data,
	         r->opts->resume_only ? "nothing was sent; `reconciler check` starts a new run"
	                              : "a new run starts with the current settings");
	buf_free(&changed);
	log_msg(LOG_WARN, sr->id, "%s", r->why);
	if ((rc = store_run_finish(r->store, sr->id, RUN_CANCELLED, r->why)))
		return rerror_set(r->err, rc, "journal: cannot cancel run %" PRId64, sr->id);
	r->not_resumed = r->opts->resume_only;
	return RC_OK;
}

/* Takes up the unfinished run sr where it stopped (and frees sr). */
static RC_MUST_CHECK rcode
resume(struct run *r, struct store_run *sr)
{
	int64_t id = sr->id;
	rcode rc;

	r->id = id;
	r->kind = sr->kind;
	if (sr->cursor && sr->cursor_type &&
	    (doc_id_type_parse(sr->cursor_type, &r->cursor_type) ||
	     (r->cursor = strdup(sr->cursor)) == NULL)) {
		store_run_free(sr);
		return rerror_set(r->err, RC_ERR_STORE, "run %" PRId64 " has a bad cursor", id);
	}
	r->seen = sr->seen_types;
	r->compared = sr->compared;
	r->stats.index_read = sr->index_read;
	r->brake = sr->brake;
	store_run_free(sr);
	/* a release was for the run as it was started and looked at: an
	 * interruption may have changed what it reads (a MongoDB restored in
	 * part, QA: a resume at service start deleted half the index), so a
	 * resume re-arms the brake unless it is released again. A decided
	 * brake (passed) stays: the deletes were judged on whole totals */
	if (r->brake == BRAKE_RELEASED && !r->opts->allow_deletes) {
		if ((rc = store_run_brake(r->store, id, BRAKE_ON)) ||
		    (rc = store_event(r->store, id, "brake",
		                      "re-armed: the release was for the run before it "
		                      "was interrupted")))
			return rerror_set(r->err, rc, "journal: cannot record the brake");
		r->brake = BRAKE_ON;
	}
	if (r->opts->allow_deletes && r->brake == BRAKE_ON) {
		if ((rc = store_run_brake(r->store, id, BRAKE_RELEASED)))
			return rerror_set(r->err, rc, "journal: cannot record the brake");
		r->brake = BRAKE_RELEASED;
	}
	rc = store_run_resumed(r->store, id);
	/* the pass's place; its batches still pending are sent again
	 * whatever that place is */
	log_msg(LOG_INFO, id, "resuming %s run: the pass from %s", store_run_kind_name(r->kind),
	        r->cursor ? r->cursor : "its start (no chunk was committed)");
	return rc;
}

static RC_MUST_CHECK rcode
start_or_resume(struct run *r, enum run_kind kind, const char *trigger, int64_t resume_id)
{
	struct store_run *sr = NULL;
	int64_t id = 0, replaced = 0;
	rcode rc;

	if (resume_id == 0 &&
	    (rc = store_run_unfinished_of_kind(r->store, kind, &id, r->cfg->name)))
		return rerror_set(r->err, rc, "journal: cannot look for unfinished runs");
	if (resume_id > 0)
		id = resume_id;
	if (id > 0) {
		rc = store_run_get(r->store, &sr, id);
		if (rc == RC_ERR_NOTFOUND)
			return rerror_set(r->err, rc, "no run %" PRId64 " in the journal", id);
		if (rc)
			return rerror_set(r->err, rc, "journal: cannot read run %" PRId64, id);
		if (!store_run_status_unfinished(sr->status)) {
			rc = rerror_set(r->err, RC_ERR_INVALID,
			                "run %" PRId64 " is %s: nothing to resume", id,
			                store_run_status_name(sr->status));
			store_run_free(sr);
			return rc;
		}
		if (strcmp(sr->mirror, r->cfg->name ? r->cfg->name : "default")) {
			rc = rerror_set(r->err, RC_ERR_INVALID,
			                "run %" PRId64 " belongs to mirror %s", id, sr->mirror);
			store_run_free(sr);
			return rc;
		}
		if (sr->kind == RUN_IDS) {
			store_run_free(sr);
			return rerror_set(r->err, RC_ERR_INVALID,
			                  "run %" PRId64
			                  " checked given ids and is not resumed: run "
			                  "the targeted check again",
			                  id);
		}
		rc = not_resumable(r, sr);
		if (rc == RC_OK && r->why[0] == '\0')
			return resume(r, sr);
		/* cancelled: a new run of its kind below, with today's settings */
		kind = sr->kind;
		replaced = id;
		store_run_free(sr);
		if (r->not_resumed) {
			r->id = id;
			r->kind = kind;
		}
		if (rc || r->not_resumed)
			return rc;
	}
	struct buf cfg = {0};
	char *snapshot = NULL;
	rc = config_dump_json(r->cfg, &cfg);
	if (rc == RC_OK && (snapshot = with_digest(cfg.data, transform_digest(r->tf))) == NULL)
		rc = RC_ERR_NOMEM;
	if (rc == RC_OK)
		rc = store_run_begin(r->store, &r->id, r->cfg->name, kind, trigger, snapshot);
	free(snapshot);
	buf_free(&cfg);
	r->kind = kind;
	r->brake = BRAKE_ON;
	if (rc == RC_OK && r->opts->allow_deletes) {
		rc = store_run_brake(r->store, r->id, BRAKE_RELEASED);
		r->brake = BRAKE_RELEASED;
		if (rc == RC_OK)
			rc = store_event(r->store, r->id, "brake",
			                 "released for this run (allowDeletes / --allow-deletes)");
	}
	if (rc == RC_OK)
		log_msg(LOG_INFO, r->id, "started %s run (trigger %s)%s", store_run_kind_name(kind),
		        trigger, r->opts->allow_deletes ? ", brake on deletes released" : "");
	if (rc == RC_OK && replaced) {
		char what[64];
		snprintf(what, sizeof(what), "in place of run %" PRId64, replaced);
		log_msg(LOG_INFO, r->id, "%s, which was not resumed: its settings changed", what);
		rc = store_event(r->store, r->id, "replaces", what);
	}
	return rc ? rerror_set(r->err, rc, "journal: cannot begin a run") : RC_OK;
}

/* For the repair side: exists[i] when a document matching the filter holds
 * texts[i] (one outside the filter has left it: still an orphan). */
static RC_MUST_CHECK rcode
repair_exists(void *ctx, const char *const *texts, size_t n, bool *exists, struct rerror *err)
{
	return io_mongo_exists(ctx, texts, n, exists, NULL, err);
}

/* The run's repair side, once the servers are open. */
static void
repair_setup(struct run *r)
{
	struct repair *rp = &r->rp;

	rp->cfg = r->cfg;
	rp->store = r->store;
	rp->mongo = r->mongo;
	rp->os = r->os;
	rp->err = r->err;
	rp->stop = &r->e->stop;
	rp->run_id = r->id;
	rp->id_field = r->id_field;
	rp->keys = &r->keys;
	rp->write_index = r->write_index;
	rp->full = r->full;
	rp->tf = r->tf;
	rp->point_max = r->kind == RUN_IDS ? POINT_QUERIES_MAX : 0;
	rp->on_commit = on_repair_commit;
	rp->on_commit_ctx = r; /* also mongo_exists' */
	rp->mongo_exists = repair_exists;
	/* a full run's cursor moves with its batches, in the repair side */
	rp->compared = r->compared;
	rp->seen = r->seen;
	rp->cursor = r->full ? r->cursor : NULL;
	rp->cursor_type = r->cursor_type;
	if (r->full)
		r->cursor = NULL;
}

rcode
engine_run(struct engine *e, struct engine_result *res, enum run_kind kind, const char *trigger,
           int64_t resume_id, struct rerror *err)
{
	return engine_run_opts(e, res, kind, trigger, resume_id, NULL, err);
}

rcode
engine_opts_check(const struct config *cfg, const struct engine_opts *o, struct rerror *err)
{
	if (o->since && o->ids)
		return rerror_set(err, RC_ERR_CONFIG, "give ids or since, not both");
	if (o->since && !*cfg->version_field)
		return rerror_set(err, RC_ERR_CONFIG,
		                  "since needs RECONCILE_VERSION_FIELD (mirror %s has none): it "
		                  "selects documents by their version field",
		                  cfg->name ? cfg->name : "default");
	if (o->since)
		return RC_OK;
	if (o->n_ids == 0)
		return rerror_set(err, RC_ERR_CONFIG, "no ids given");
	if (o->n_ids > ENGINE_IDS_MAX)
		return rerror_set(err, RC_ERR_CONFIG,
		                  "more than %d ids given: that is the most one targeted run "
		                  "takes (a larger set is a job for a full check)",
		                  ENGINE_IDS_MAX);
	for (size_t i = 0; i < o->n_ids; i++) {
		size_t len = o->ids[i] ? strlen(o->ids[i]) : 0;
		if (len == 0)
			return rerror_set(err, RC_ERR_CONFIG, "id %zu is empty", i + 1);
		if (len > OPENSEARCH_ID_MAX_BYTES)
			return rerror_set(
			    err, RC_ERR_CONFIG,
			    "id %zu is %zu bytes, over OpenSearch's %d-byte _id limit", i + 1, len,
			    OPENSEARCH_ID_MAX_BYTES);
		/* no document id this reconciler carries is (ids are UTF-8 text
		 * in both servers), and the bytes would break the index query */
		if (!util_utf8_valid(o->ids[i], len))
			return rerror_set(err, RC_ERR_CONFIG, "id %zu is not valid UTF-8", i + 1);
	}
	return RC_OK;
}

rcode
engine_opts_copy(struct engine_opts *dst, const struct engine_opts *src)
{
	*dst = *src;
	dst->ids = NULL;
	if (src->n_ids == 0)
		return RC_OK;
	dst->ids = calloc(src->n_ids, sizeof(*dst->ids));
	if (dst->ids == NULL)
		return RC_ERR_NOMEM;
	for (size_t i = 0; i < src->n_ids; i++)
		if ((dst->ids[i] = strdup(src->ids[i])) == NULL) {
			engine_opts_release(dst);
			return RC_ERR_NOMEM;
		}
	return RC_OK;
}

void
engine_opts_release(struct engine_opts *o)
{
	for (size_t i = 0; o->ids && i < o->n_ids; i++)
		free(o->ids[i]);
	free(o->ids);
	*o = (struct engine_opts){0};
}

static int
cmp_text(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

rcode
engine_run_opts(struct engine *e, struct engine_result *res, enum run_kind kind,
                const char *trigger, int64_t resume_id, const struct engine_opts *opts,
                struct rerror *err)
{
	static const struct engine_opts none = {0};
	struct engine_opts uniq = {0};
	struct run r = {.e = e, .cfg = e->cfg, .err = err, .opts = opts ? opts : &none};

	/* a targeted run compares versions: its documents are looked up by id,
	 * not read whole from a stream */
	r.content.on = e->cfg->compare == COMPARE_CONTENT && kind != RUN_IDS;
	struct store_run *sr = NULL;
	int64_t holder = 0, *reuse = NULL;
	size_t n_reuse = 0;
	rcode rc, frc;
	enum run_status status;

	memset(res, 0, sizeof(*res));
	if (kind == RUN_IDS) {
		/* checked once more here: every way in gets the same answer */
		if ((rc = engine_opts_check(e->cfg, r.opts, err)))
			return rc;
		resume_id = -1; /* a new run: an interrupted check stays resumable */
		/* each id once, so the lookups hand each copy over once */
		uniq = *r.opts;
		if (r.opts->n_ids) {
			uniq.ids = malloc(r.opts->n_ids * sizeof(*uniq.ids));
			if (uniq.ids == NULL)
				return rerror_set(err, RC_ERR_NOMEM, "out of memory");
			memcpy(uniq.ids, r.opts->ids, r.opts->n_ids * sizeof(*uniq.ids));
			qsort(uniq.ids, uniq.n_ids, sizeof(*uniq.ids), cmp_text);
			size_t k = 0;
			for (size_t i = 0; i < uniq.n_ids; i++)
				if (k == 0 || strcmp(uniq.ids[k - 1], uniq.ids[i]))
					uniq.ids[k++] = uniq.ids[i];
			uniq.n_ids = k;
		}
		r.opts = &uniq;
	}
	/* a script that does not compile stops here, before any run is begun */
	rc = transform_new(&r.tf, e->cfg, err);
	if (rc) {
		free(uniq.ids);
		return rc;
	}
	rc = store_open(&r.store, e->cfg->state_db, err);
	if (rc) {
		transform_free(r.tf);
		free(uniq.ids);
		return rc;
	}
	rc = store_lock(r.store, &holder, e->cfg->name, err);
	if (rc) {
		store_free(r.store);
		transform_free(r.tf);
		free(uniq.ids);
		return rc;
	}
	rc = start_or_resume(&r, kind, trigger, resume_id);
	if (rc)
		goto out;
	if (r.not_resumed) {
		res->run_id = r.id;
		res->kind = r.kind;
		res->status = RUN_CANCELLED;
		res->not_resumed = true;
		snprintf(res->why, sizeof(res->why), "%s", r.why);
		goto out;
	}
	r.why[0] = '\0'; /* the held reason's, from here on */
	if (r.kind != RUN_DRY_RUN && e->cfg->write_mode == WRITE_UPSERT && *e->cfg->pipeline) {
		/* verified on OpenSearch 2.19: an update runs no named pipeline */
		char msg[600];
		snprintf(msg, sizeof(msg),
		         "OPENSEARCH_PIPELINE=%.200s is not run by RECONCILE_WRITE_MODE=upsert: "
		         "OpenSearch runs no named pipeline on update actions, only the index's "
		         "index.default_pipeline; set that on the index, or write with "
		         "RECONCILE_WRITE_MODE=index",
		         e->cfg->pipeline);
		warn_journaled(&r, msg);
	}
	if (r.kind == RUN_IDS) {
		/* what a targeted run was asked: the journal says it, not only
		 * the caller's terminal */
		char what[600], iso[40];
		size_t at = 0;
		if (r.opts->since) {
			util_ms_to_iso(r.opts->since_ms, iso, sizeof(iso));
			snprintf(what, sizeof(what), "since %s: the documents whose %s is newer",
			         iso, e->cfg->version_field);
		} else {
			at = (size_t)snprintf(what, sizeof(what), "%zu ids:", r.opts->n_ids);
			for (size_t i = 0; i < r.opts->n_ids && at < sizeof(what); i++) {
				if (at + strlen(r.opts->ids[i]) + 8 > 300) {
					snprintf(what + at, sizeof(what) - at, " ...");
					break;
				}
				at += (size_t)snprintf(what + at, sizeof(what) - at, " %s",
				                       r.opts->ids[i]);
			}
		}
		util_utf8_clean(what);
		if (store_event(r.store, r.id, "target", what))
			log_msg(LOG_WARN, r.id, "journal: cannot record an event");
	}
	if (r.kind != RUN_FULL && e->cfg->compare == COMPARE_CONTENT && *e->cfg->pipeline) {
		char msg[600];
		snprintf(
		    msg, sizeof(msg),
		    "RECONCILE_COMPARE=content compares the body before "
		    "OPENSEARCH_PIPELINE=%.200s: "
		    "if the pipeline changes or removes a field the body writes, every copy is "
		    "stale in every run (a pipeline that only adds fields is fine)",
		    e->cfg->pipeline);
		warn_journaled(&r, msg);
	}
	r.full = r.kind == RUN_FULL;
	r.dry_run = r.kind == RUN_DRY_RUN;
	if (r.full) { /* resumed: reuse the numbers of the batches that were in flight */
		struct store_pending *p = NULL;
		size_t n = 0;
		rc = store_batches_pending(r.store, r.id, &p, &n);
		if (rc == RC_OK && n && (reuse = malloc(n * sizeof(*reuse))) == NULL)
			rc = RC_ERR_NOMEM;
		for (size_t i = 0; rc == RC_OK && i < n; i++)
			reuse[n_reuse++] = p[i].batch_no;
		free(p);
		if (rc) {
			rerror_set(err, rc, "journal: cannot read pending batches");
			goto out;
		}
	}
	pthread_mutex_lock(&e->lock);
	memset(&e->progress, 0, sizeof(e->progress));
	e->progress.active = true;
	e->progress.run_id = r.id;
	e->progress.mongo_count = e->progress.opensearch_count = -1;
	e->progress.compared = r.compared;
	e->progress.started_ms = util_now_ms();
	e->progress.kind = r.kind;
	snprintf(e->progress.phase, sizeof(e->progress.phase), "starting");
	pthread_mutex_unlock(&e->lock);
	if (e->start_hook)
		e->start_hook(e->start_ctx, r.id);

	rc = mongo_open(&r.mongo, e->cfg->mongodb_uri, e->cfg->mongodb_database,
	                e->cfg->mongodb_collection, err);
	if (rc == RC_OK)
		rc = mongo_set_filter(r.mongo, e->cfg->filter, err);
	if (rc == RC_OK)
		rc = opensearch_open(&r.os, e->cfg, err);
	if (rc == RC_OK)
		rc = check_peers(&r);
	if (rc == RC_OK && (rc = set_phase(&r, "counting")) == RC_OK)
		rc = count_both(&r);
	if (rc == RC_OK)
		rc = setup_keys(&r);
	if (rc == RC_OK) {
		repair_setup(&r);
		r.rp.reuse = reuse; /* the repair side owns them now */
		r.rp.n_reuse = n_reuse;
		reuse = NULL;
	}
	if (rc == RC_OK && !r.dry_run && r.kind != RUN_IDS &&
	    (rc = set_phase(&r, "repairing")) == RC_OK)
		rc = repair_resend_pending(&r.rp);
	if (rc == RC_OK && !r.dry_run)
		refresh(&r); /* the pass must see what was re-sent, or it sends it again */
	if (rc == RC_OK && (rc = set_phase(&r, r.full ? "indexing" : "diffing")) == RC_OK)
		rc = r.full ? repair_full(&r.rp) : pass_diff(&r);

	if (rc == RC_OK && !e->stop && e->cfg->mongo_count == MONGO_COUNT_PASS &&
	    store_run_counts(r.store, r.id, r.compared, r.os_count))
		log_msg(LOG_WARN, r.id, "journal: cannot record the pass's count");
	if (r.os && !r.dry_run)
		refresh(&r);
	if (rc == RC_OK && !e->stop)
		check_query_match(&r);
	/* how it ended */
	if (e->stop == 2)
		status = RUN_CANCELLED;
	else if (e->stop == 1)
		status = RUN_INTERRUPTED;
	else if (rc == RC_OK)
		status = r.held ? RUN_HELD : RUN_COMPLETED;
	else
		status = resumable(rc) ? RUN_INTERRUPTED : RUN_FAILED;
	if (rc && rc != RC_ERR_CANCELLED)
		journal_error(&r, rc, -1, NULL, e->progress.phase,
		              rc == RC_ERR_MONGO        ? "mongo"
		              : rc == RC_ERR_STORE      ? "store"
		              : rc == RC_ERR_OPENSEARCH ? "opensearch"
		              : rc == RC_ERR_RETRY      ? "opensearch"
		                                        : "engine",
		              err->message);
	frc = store_run_finish(r.store, r.id, status,
	                       rc                   ? err->message
	                       : status == RUN_HELD ? r.why
	                                            : NULL);
	if (frc)
		log_msg(LOG_ERROR, r.id, "journal: cannot record the end of the run");
	if (store_run_get(r.store, &sr, r.id) == RC_OK) {
		res->run_id = sr->id;
		res->status = sr->status;
		res->kind = sr->kind;
		res->mongo_count = sr->mongo_count;
		res->opensearch_count = sr->opensearch_count;
		res->missing = sr->missing;
		res->orphans = sr->orphans;
		res->stale = sr->stale;
		res->skipped = sr->skipped;
		res->repaired = sr->repaired;
		res->deleted = sr->deleted;
		res->failed = sr->failed;
		res->duplicates = sr->duplicates;
		res->conflicts = sr->conflicts;
		res->skipped_newer = sr->skipped_newer;
		store_run_free(sr);
	}
	if (status == RUN_HELD) {
		res->held = r.n_held;
		snprintf(res->why, sizeof(res->why), "%s", r.why);
	}
	progress_sync(&r, true);
	progress_print(e, true);
	if (r.left_out) {
		char msg[200];
		snprintf(msg, sizeof(msg),
		         "%" PRId64
		         " documents the transform leaves out of the index (returns nil):"
		         " not missing, not written",
		         r.left_out);
		log_msg(LOG_INFO, r.id, "%s", msg);
		if (store_event(r.store, r.id, "transform", msg))
			log_msg(LOG_WARN, r.id, "journal: cannot record an event");
	}
	log_msg(rc ? LOG_WARN : LOG_INFO, r.id,
	        "%s run %s: missing %" PRId64 ", orphans %" PRId64 ", stale %" PRId64
	        ", duplicates %" PRId64 ", conflicts %" PRId64 ", repaired %" PRId64
	        ", deleted %" PRId64 ", failed %" PRId64 ", skipped_newer %" PRId64,
	        store_run_kind_name(r.kind), store_run_status_name(status), res->missing,
	        res->orphans, res->stale, res->duplicates, res->conflicts, res->repaired,
	        res->deleted, res->failed, res->skipped_newer);
	if (rc == RC_OK && e->stop)
		rc = RC_ERR_CANCELLED,
		rerror_set(err, rc, "run %" PRId64 " %s", r.id, store_run_status_name(status));
	if (rc == RC_OK && frc)
		rc = rerror_set(err, frc, "journal: cannot record the end of the run");
out:
	pthread_mutex_lock(&e->lock);
	e->progress.active = false;
	pthread_mutex_unlock(&e->lock);
	mongo_scan_free(r.scan);
	mongo_free(r.mongo);
	opensearch_free(r.os);
	idlist_free(&r.queued_cursor);
	repair_release(&r.rp);
	free(reuse);
	free(r.write_index);
	free(r.peers_count);
	free(r.cursor);
	free(r.id_field);
	store_free(r.store); /* releases the lock */
	transform_free(r.tf);
	free(uniq.ids);
	return rc;
}

size_t
engine_warn_unknown_runs(struct store *s, const struct config_set *set)
{
	struct store_unfinished *v = NULL;
	size_t n = 0, shown = 0;

	if (store_runs_unfinished(s, &v, &n, 1000)) {
		log_warn("journal %s: cannot look for unfinished runs", set->global->state_db);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (config_set_find(set, v[i].mirror))
			continue;
		shown++;
		log_warn(
		    "run %" PRId64 " (%s) of mirror %s is left %s, and the configuration "
		    "defines no mirror %s: nothing resumes or closes it. Put the mirror back "
		    "under that name and run `reconciler resume %" PRId64
		    "`, or close it (docs/JOURNAL.md): "
		    "sqlite3 %s \"UPDATE runs SET status = 'cancelled', finished_at = "
		    "strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now'), error = 'mirror removed' WHERE "
		    "id = %" PRId64 "\"",
		    v[i].id, v[i].kind, v[i].mirror, v[i].status, v[i].mirror, v[i].id,
		    set->global->state_db, v[i].id);
	}
	free(v);
	return shown;
}
