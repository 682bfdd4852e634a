/*
 * engine.c: one run, end to end.
 *
 * The pass (check and dry_run):
 *   MongoDB ids come from ONE _id-sorted cursor. They are cut into chunks of
 *   RECONCILE_CHUNK_SIZE, a chunk never spanning two id classes (MongoDB
 *   sorts numbers < strings < ... < ObjectIds < ...). For a chunk of strings
 *   or ObjectIds, whose canonical text sorts like MongoDB's order, the index
 *   is streamed in the same key order (search_after on the keyword id
 *   field) up to the chunk's last id, and the two sorted lists are merged:
 *   only-in-MongoDB = missing, only-in-index = orphan, version differs =
 *   stale. Each such "merge segment" sweeps the whole key space of the
 *   index, its first chunk from the start and its end to the last key.
 *   Numbers and rarer types are looked up by id in the index instead.
 *
 *   An orphan is certain when the collection has only ObjectIds and the key
 *   is an ObjectId's hex. Anything else (mixed id types, integers, strings
 *   that look like hex) is checked against MongoDB before it is called an
 *   orphan, so no document is lost because of its id's type.
 *
 * Commit protocol (per chunk):
 *   1. drift ids are written (one transaction);
 *   2. each batch is written pending with its ids, sent with _bulk, and
 *      committed with its per-document outcome (one transaction each);
 *   3. the cursor advances past the chunk (one transaction).
 *   A resumed run first re-sends pending batches, then continues the pass
 *   from the cursor. Committed batches are never sent again.
 *
 * The full run streams whole documents the same way and journals batches
 * by id range; the cursor advances with each committed batch.
 */
#include "engine.h"
#include "diff.h"
#include "doc.h"
#include "log.h"
#include "mongo.h"
#include "opensearch.h"
#include "store.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Most ids fetched with one $in, and most drift ids queued before they are
 * repaired (10,000 ids: about 400 KB, whatever the collection's size). */
#define FETCH_MAX 10000

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

/* One document to repair: its id, what drift it is (-1 in full runs, which
 * journal batches, not drift rows), and where its index copy lives (NULL:
 * OPENSEARCH_INDEX, no routing). */
struct qitem {
	char *id;
	enum id_type type;
	int kind; /* enum drift_kind, or -1 */
	char *index;
	char *routing;
};

struct idvec {
	struct qitem *v;
	size_t n, cap;
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
	char kind[16];
	bool dry_run, full;
	struct os_keys keys;
	char *id_field;       /* effective id field for documents ("" or cfg's) */
	char *version_format; /* "epoch_millis" for date version fields */
	/* the MongoDB stream */
	struct mongo_scan *scan;
	char *cursor;
	enum id_type cursor_type;
	int64_t seen; /* bit per enum id_class */
	int64_t compared;
	/* the index stream of the current merge segment */
	int cur_class; /* -1 none */
	struct idlist os_buf;
	char *os_after;
	bool os_more;
	bool os_started;
	/* held over: first id of the next chunk when a class changes */
	char *os_after_index; /* with keys.by_index: the copy os_after came from */
	char *write_index;    /* the alias's write index (NULL: OPENSEARCH_INDEX) */
	struct idlist held;
	int cur_held_class;
	bool mongo_done;
	bool index_missing; /* the index does not exist: the index side is empty */
	int64_t reuse_no;   /* full runs: the pending batch number to reuse */
	/* drift waiting to be repaired, and the cursor that commits with it */
	struct idvec queue_fix, queue_del;
	struct idlist queued_cursor; /* 0 or 1 entry: the last chunk's last id */
	int64_t os_count;
	int64_t queued_compared;
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

/* Copies the journal's counters into the live progress. */
static void
progress_sync(struct run *r)
{
	struct store_run *sr = NULL;

	if (store_run_get(r->store, &sr, r->id))
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

static rcode
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

/* Journals an error row and logs it; returns rc unchanged. */
static rcode
journal_error(struct run *r, rcode rc, int64_t batch_no, const char *doc_id, const char *phase,
              const char *source, const char *message)
{
	log_msg(LOG_ERROR, r->id, "%s: %s", phase, message);
	store_error(r->store, r->id, batch_no, doc_id, phase, source, rcode_name(rc), message);
	return rc;
}

/* ---- the repair queue ------------------------------------------------ */

static rcode
idvec_push(struct idvec *v, const char *id, enum id_type type, int kind, const char *index,
           const char *routing)
{
	struct qitem *it;

	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		struct qitem *a = realloc(v->v, cap * sizeof(*a));
		if (a == NULL)
			return RC_ERR_NOMEM;
		v->v = a;
		v->cap = cap;
	}
	it = &v->v[v->n];
	*it = (struct qitem){.type = type, .kind = kind};
	it->id = strdup(id);
	it->index = index ? strdup(index) : NULL;
	it->routing = routing ? strdup(routing) : NULL;
	if (it->id == NULL || (index && it->index == NULL) || (routing && it->routing == NULL)) {
		free(it->id);
		free(it->index);
		free(it->routing);
		return RC_ERR_NOMEM;
	}
	v->n++;
	return RC_OK;
}

static void
idvec_clear(struct idvec *v)
{
	for (size_t i = 0; i < v->n; i++) {
		free(v->v[i].id);
		free(v->v[i].index);
		free(v->v[i].routing);
	}
	v->n = 0;
}

static void
idvec_free(struct idvec *v)
{
	idvec_clear(v);
	free(v->v);
	v->v = NULL;
	v->cap = 0;
}

/* The journal's key of a queued item. */
static struct store_drift
qitem_drift(const struct qitem *q)
{
	return (struct store_drift){.doc_id = q->id,
	                            .id_type = doc_id_type_name(q->type),
	                            .kind = (enum drift_kind)q->kind,
	                            .os_index = q->index,
	                            .routing = q->routing};
}

/* Journals one drift document as failed, with the reason, and goes on: one
 * bad document never stops the others. */
static rcode
fail_item(struct run *r, const struct qitem *q, const char *code, const char *reason)
{
	struct store_drift d = qitem_drift(q);
	rcode rc;

	log_msg(LOG_WARN, r->id, "document %s failed: %s", q->id, reason);
	rc = store_error(r->store, r->id, -1, q->id, "repair", "engine", code, reason);
	if (rc == RC_OK && q->kind >= 0)
		rc = store_drift_set(r->store, r->id, &d, "failed", reason);
	if (rc)
		rerror_set(r->err, rc, "journal: cannot record the failure of %s", q->id);
	return rc;
}

/* ---- batches ---------------------------------------------------------- */

struct batch_item {
	struct qitem q;  /* owned */
	size_t off, len; /* this item's NDJSON lines within body */
	int status;
	char *reason;
};

struct batch {
	const char *action; /* "index" or "delete" */
	struct buf body;
	struct batch_item *items;
	size_t n, cap;
};

static void
batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->items[i].q.id);
		free(b->items[i].q.index);
		free(b->items[i].q.routing);
		free(b->items[i].reason);
	}
	b->n = 0;
	buf_reset(&b->body);
}

static void
batch_free(struct batch *b)
{
	batch_clear(b);
	free(b->items);
	buf_free(&b->body);
}

/* Appends an action naming the copy's concrete index and routing (and for
 * index, the document JSON already in json). */
static rcode
batch_add(struct batch *b, const struct qitem *q, const struct buf *json)
{
	struct batch_item *it;
	size_t start = b->body.len;
	rcode rc;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 128;
		struct batch_item *v = realloc(b->items, cap * sizeof(*v));
		if (v == NULL)
			return RC_ERR_NOMEM;
		b->items = v;
		b->cap = cap;
	}
	rc = buf_printf(&b->body, "{\"%s\":{\"_id\":", b->action);
	if (rc == RC_OK)
		rc = doc_json_string(&b->body, q->id, strlen(q->id));
	if (rc == RC_OK && q->index && (rc = buf_puts(&b->body, ",\"_index\":")) == RC_OK)
		rc = doc_json_string(&b->body, q->index, strlen(q->index));
	if (rc == RC_OK && q->routing && (rc = buf_puts(&b->body, ",\"routing\":")) == RC_OK)
		rc = doc_json_string(&b->body, q->routing, strlen(q->routing));
	if (rc == RC_OK)
		rc = buf_puts(&b->body, "}}\n");
	if (rc == RC_OK && json && (rc = buf_append(&b->body, json->data, json->len)) == RC_OK)
		rc = buf_puts(&b->body, "\n");
	if (rc)
		return rc;
	it = &b->items[b->n];
	memset(it, 0, sizeof(*it));
	it->q = (struct qitem){.type = q->type, .kind = q->kind};
	it->q.id = strdup(q->id);
	it->q.index = q->index ? strdup(q->index) : NULL;
	it->q.routing = q->routing ? strdup(q->routing) : NULL;
	if (it->q.id == NULL || (q->index && it->q.index == NULL) ||
	    (q->routing && it->q.routing == NULL)) {
		free(it->q.id);
		free(it->q.index);
		free(it->q.routing);
		return RC_ERR_NOMEM;
	}
	it->off = start;
	it->len = b->body.len - start;
	b->n++;
	return RC_OK;
}

/* Sends the listed items of b as one _bulk and records each item's outcome.
 * A request refused as a whole for what it holds (413 too large, 400
 * validation failed) is split in halves until the document at fault stands
 * alone; it then fails alone, with OpenSearch's reason. */
static rcode
send_list(struct run *r, struct batch *b, const size_t *idx, size_t n, int *attempts)
{
	struct buf body = {0};
	struct bulk_result res;
	int tries = 0;
	rcode rc;

	for (size_t i = 0; i < n; i++)
		if (buf_append(&body, b->body.data + b->items[idx[i]].off, b->items[idx[i]].len)) {
			buf_free(&body);
			return RC_ERR_NOMEM;
		}
	rc = opensearch_bulk(r->os, &res, &tries, body.data, body.len, n, &r->e->stop, r->err);
	*attempts += tries;
	buf_free(&body);
	if (rc == RC_ERR_TOOLARGE || rc == RC_ERR_INVALID) {
		bulk_result_free(&res);
		if (n == 1) {
			struct batch_item *it = &b->items[idx[0]];
			it->status = rc == RC_ERR_TOOLARGE ? 413 : 400;
			free(it->reason);
			it->reason = strdup(rc == RC_ERR_TOOLARGE
			                        ? "document too large for the index (HTTP 413)"
			                        : r->err->message);
			/* handled: this document's failure, not the run's */
			*r->err = (struct rerror){0};
			return it->reason ? RC_OK : RC_ERR_NOMEM;
		}
		*r->err = (struct rerror){0};
		rc = send_list(r, b, idx, n / 2, attempts);
		return rc ? rc : send_list(r, b, idx + n / 2, n - n / 2, attempts);
	}
	if (rc == RC_OK) {
		for (size_t i = 0; i < res.n && i < n; i++) {
			struct batch_item *it = &b->items[idx[i]];
			it->status = res.items[i].status;
			free(it->reason);
			it->reason = res.items[i].reason;
			res.items[i].reason = NULL;
		}
	}
	bulk_result_free(&res);
	return rc;
}

/* Sends a whole batch; documents the index rejected with 429 are sent
 * again, alone, with backoff. */
static rcode
send_batch(struct run *r, struct batch *b, int *attempts)
{
	size_t *idx = malloc((b->n ? b->n : 1) * sizeof(*idx)), n = b->n;
	rcode rc;

	if (idx == NULL)
		return RC_ERR_NOMEM;
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	rc = send_list(r, b, idx, n, attempts);
	for (int round = 0; rc == RC_OK && round < r->cfg->sync_max_retries; round++) {
		n = 0;
		for (size_t i = 0; i < b->n; i++)
			if (b->items[i].status == 429)
				idx[n++] = i;
		if (n == 0)
			break;
		log_msg(LOG_WARN, r->id, "%zu documents rejected with 429; retrying", n);
		if (util_sleep_ms(200LL << (round < 7 ? round : 7), &r->e->stop))
			break;
		rc = send_list(r, b, idx, n, attempts);
	}
	free(idx);
	return rc;
}

static bool
item_ok(const struct batch_item *it, bool delete)
{
	/* a delete answered 404 found nothing at the copy's own index and
	 * routing: it is gone, which is what the delete was for */
	return (it->status >= 200 && it->status < 300) || (delete &&it->status == 404);
}

/* Journals b as pending (with its ids), sends it, commits the outcome.
 * batch_no > 0 re-sends that journaled batch (resume). */
static rcode
flush_batch(struct run *r, struct batch *b, int64_t batch_no)
{
	bool del = strcmp(b->action, "delete") == 0, resend = batch_no > 0;
	int64_t ok = 0, failed = 0, t0;
	int attempts = 0;
	rcode rc, send_rc;

	if (b->n == 0)
		return RC_OK;
	/* 1. written as pending, with its ids, before anything is sent */
	rc = store_tx_begin(r->store);
	if (rc == RC_OK && !resend)
		rc = store_batch_next_no(r->store, r->id, &batch_no);
	if (rc == RC_OK && (!resend || r->full))
		rc = store_batch_add(r->store, r->id, batch_no, b->action, (int64_t)b->n,
		                     (int64_t)b->body.len, r->full ? b->items[0].q.id : NULL,
		                     r->full ? b->items[b->n - 1].q.id : NULL);
	for (size_t i = 0; rc == RC_OK && !r->full && !resend && i < b->n; i++) {
		struct store_drift d = qitem_drift(&b->items[i].q);
		rc = store_drift_assign(r->store, r->id, &d, batch_no);
	}
	if (rc == RC_OK)
		rc = store_tx_commit(r->store);
	if (rc) {
		store_tx_rollback(r->store);
		return rerror_set(r->err, RC_ERR_STORE, "journal: cannot write batch as pending");
	}

	/* 2. sent */
	t0 = util_mono_ms();
	send_rc = send_batch(r, b, &attempts);
	if (send_rc) {
		/* the batch stays pending: a resumed run sends it again */
		journal_error(r, send_rc, batch_no, NULL, "repair", "opensearch", r->err->message);
		store_batch_commit(r->store, r->id, batch_no, "pending", 0, 0, attempts,
		                   util_mono_ms() - t0);
		return send_rc;
	}

	/* 3. committed with every document's outcome */
	rc = store_tx_begin(r->store);
	for (size_t i = 0; rc == RC_OK && i < b->n; i++) {
		struct batch_item *it = &b->items[i];
		struct store_drift d = qitem_drift(&it->q);
		bool good = item_ok(it, del);
		if (good)
			ok++;
		else
			failed++;
		if (!r->full)
			rc = store_drift_set(r->store, r->id, &d, good ? "done" : "failed",
			                     good ? NULL : it->reason);
		if (rc == RC_OK && !good) {
			char msg[1100];
			snprintf(msg, sizeof(msg), "HTTP %d: %s", it->status,
			         it->reason ? it->reason : "rejected");
			log_msg(LOG_WARN, r->id, "document %s rejected: %s", it->q.id, msg);
			rc = store_error(r->store, r->id, batch_no, it->q.id, "repair",
			                 "opensearch", "rejected", msg);
		}
	}
	if (rc == RC_OK)
		rc = store_batch_commit(r->store, r->id, batch_no, "committed", ok, failed,
		                        attempts, util_mono_ms() - t0);
	if (rc == RC_OK && r->full) {
		const struct batch_item *last = &b->items[b->n - 1];
		r->compared += (int64_t)b->n;
		rc = store_run_cursor(r->store, r->id, doc_id_type_name(last->q.type), last->q.id,
		                      r->seen, r->compared);
	}
	if (rc == RC_OK)
		rc = store_run_recount(r->store, r->id);
	if (rc == RC_OK)
		rc = store_tx_commit(r->store);
	if (rc) {
		store_tx_rollback(r->store);
		return rerror_set(r->err, RC_ERR_STORE, "journal: cannot commit batch %" PRId64,
		                  batch_no);
	}
	if (r->full) {
		free(r->cursor);
		r->cursor = strdup(b->items[b->n - 1].q.id);
		r->cursor_type = b->items[b->n - 1].q.type;
		if (r->cursor == NULL)
			return RC_ERR_NOMEM;
	}
	progress_sync(r);
	if (r->cfg->sync_batch_delay_ms > 0)
		util_sleep_ms(r->cfg->sync_batch_delay_ms, &r->e->stop);
	return RC_OK;
}

/* ---- repair of a list of ids ---------------------------------------- */

struct fetch_ctx {
	struct run *r;
	struct batch *b;
	struct buf json;
	struct buf idtext;
	rcode rc;
	/* the requested items, and an index of them sorted by id for lookups */
	const struct qitem *items;
	bool *found;
	size_t *order;
	size_t n;
	bool flush_when_full;
};

struct sorted_ref {
	const char *id;
	size_t len;
	size_t idx;
	int rank; /* ties: lower first */
};

static int
cmp_rec(const void *a, const void *b)
{
	const struct sorted_ref *x = a, *y = b;
	int c = diff_compare(x->id, x->len, y->id, y->len);

	if (c == 0)
		c = (x->rank > y->rank) - (x->rank < y->rank);
	return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* The requested item with this id (and, where ids repeat, this type). */
static int
find_requested(struct fetch_ctx *c, const char *id, enum id_type type)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (strcmp(c->items[c->order[mid]].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* integral doubles come back as ints and vice versa: prefer the same type */
	int any = -1;
	for (size_t i = lo; i < c->n && strcmp(c->items[c->order[i]].id, id) == 0; i++) {
		size_t k = c->order[i];
		if (c->found[k])
			continue;
		if (c->items[k].type == type)
			return (int)k;
		if (any < 0)
			any = (int)k;
	}
	return any;
}

/* Converts doc and adds it to b, flushing b first when the document would
 * pass the byte cap and after when it reaches the count cap. A document
 * that cannot be sent (its id is over the _id limit, it cannot be
 * converted) fails alone, with the reason, before anything is sent. */
static rcode
batch_add_doc(struct run *r, struct batch *b, struct buf *json, const bson_t *doc,
              const struct qitem *q, bool flush_when_full)
{
	struct rerror cerr = {0};
	size_t idlen = strlen(q->id);
	rcode rc;

	if (idlen > OPENSEARCH_ID_MAX_BYTES) {
		char msg[200];
		snprintf(msg, sizeof(msg),
		         "the id is %zu bytes; OpenSearch's _id limit is %d bytes, so this "
		         "document cannot be indexed under its MongoDB id",
		         idlen, OPENSEARCH_ID_MAX_BYTES);
		return fail_item(r, q, "id_too_long", msg);
	}
	buf_reset(json);
	rc = doc_to_json(doc, r->id_field, q->id, json, &cerr);
	if (rc == RC_ERR_NOMEM)
		return rerror_set(r->err, rc, "out of memory converting %s", q->id);
	if (rc) {
		char msg[600];
		snprintf(msg, sizeof(msg), "cannot convert the document to JSON: %s", cerr.message);
		return fail_item(r, q, rcode_name(rc), msg);
	}
	if (flush_when_full && b->n > 0 &&
	    b->body.len + json->len + 64 > (size_t)r->cfg->sync_batch_size_bytes) {
		if ((rc = flush_batch(r, b, r->reuse_no)))
			return rc;
		r->reuse_no = 0;
		batch_clear(b);
	}
	rc = batch_add(b, q, json);
	if (rc == RC_OK && flush_when_full && b->n >= (size_t)r->cfg->sync_batch_size) {
		if ((rc = flush_batch(r, b, r->reuse_no)))
			return rc;
		r->reuse_no = 0;
		batch_clear(b);
	}
	return rc;
}

static int
on_fetched(void *ctx, const bson_t *doc)
{
	struct fetch_ctx *c = ctx;
	bson_iter_t it;
	enum id_type type;
	int k;

	if (c->r->e->stop) {
		/* stop between batches; what is not sent stays pending drift */
		c->rc = rerror_set(c->r->err, RC_ERR_CANCELLED, "stopped");
		return 1;
	}
	if (!bson_iter_init_find(&it, doc, "_id"))
		return 0;
	buf_reset(&c->idtext);
	if ((c->rc = doc_id_canonical(bson_iter_value(&it), &c->idtext, &type)))
		return 1;
	k = find_requested(c, c->idtext.data, type);
	if (k < 0)
		return 0;
	c->found[k] = true;
	c->rc = batch_add_doc(c->r, c->b, &c->json, doc, &c->items[k], c->flush_when_full);
	return c->rc != RC_OK;
}

/* Fetches the documents of items from MongoDB and indexes them in batches.
 * With resend_no > 0 all of them form that one journaled batch. Ids no
 * longer in MongoDB are marked skipped. */
static rcode
repair_index(struct run *r, const struct qitem *items, size_t n, int64_t resend_no)
{
	struct batch b = {.action = "index"};
	struct fetch_ctx c = {.r = r, .b = &b, .flush_when_full = resend_no <= 0};
	size_t step = FETCH_MAX;
	rcode rc = RC_OK;

	bool *found = calloc(n ? n : 1, sizeof(bool));
	size_t *order = malloc((n ? n : 1) * sizeof(size_t));
	struct sorted_ref *refs = malloc((n < step ? (n ? n : 1) : step) * sizeof(*refs));
	if (found == NULL || order == NULL || refs == NULL) {
		free(found);
		free(order);
		free(refs);
		return RC_ERR_NOMEM;
	}
	/* one $in for up to FETCH_MAX ids: a server that cannot serve $in from
	 * an index pays one scan per query, however few ids it names */
	for (size_t at = 0; rc == RC_OK && at < n && !r->e->stop; at += step) {
		size_t m = n - at < step ? n - at : step;
		bson_t arr = BSON_INITIALIZER;
		char key[16];
		const char *kp;
		for (size_t i = 0; i < m && rc == RC_OK; i++) {
			bson_uint32_to_string((uint32_t)i, &kp, key, sizeof(key));
			rc = doc_id_append(&arr, kp, items[at + i].id, items[at + i].type);
			refs[i] =
			    (struct sorted_ref){items[at + i].id, strlen(items[at + i].id), i, 0};
		}
		qsort(refs, m, sizeof(*refs), cmp_rec);
		for (size_t i = 0; i < m; i++)
			order[i] = refs[i].idx;
		c.items = items + at;
		c.found = found + at;
		c.order = order;
		c.n = m;
		if (rc == RC_OK)
			rc = mongo_fetch(r->mongo, &arr, NULL, false, on_fetched, &c, r->err);
		bson_destroy(&arr);
		if (rc == RC_OK)
			rc = c.rc;
	}
	free(order);
	free(refs);
	if (rc == RC_OK && !r->e->stop)
		rc = flush_batch(r, &b, resend_no);
	if (rc == RC_OK && !r->e->stop && resend_no > 0 && b.n == 0)
		rc = store_batch_commit(r->store, r->id, resend_no, "committed", 0, 0, 0, 0);
	/* what MongoDB no longer has cannot be indexed: left alone */
	for (size_t i = 0; rc == RC_OK && !r->e->stop && i < n; i++) {
		struct store_drift d = qitem_drift(&items[i]);
		if (!found[i] && items[i].kind >= 0)
			rc =
			    store_drift_set(r->store, r->id, &d, "skipped", "no longer in MongoDB");
	}
	free(found);
	buf_free(&c.json);
	buf_free(&c.idtext);
	batch_free(&b);
	return rc;
}

static rcode
repair_delete(struct run *r, const struct qitem *items, size_t n, int64_t resend_no)
{
	struct batch b = {.action = "delete"};
	rcode rc = RC_OK;

	for (size_t i = 0; rc == RC_OK && i < n && !r->e->stop; i++) {
		rc = batch_add(&b, &items[i], NULL);
		if (rc == RC_OK && resend_no <= 0 && b.n >= (size_t)r->cfg->sync_batch_size) {
			rc = flush_batch(r, &b, 0);
			batch_clear(&b);
		}
	}
	if (rc == RC_OK && !r->e->stop)
		rc = flush_batch(r, &b, resend_no);
	batch_free(&b);
	return rc;
}

/* ---- resume: re-send pending batches --------------------------------- */

static int
on_batch_id(void *ctx, const struct store_drift *d)
{
	enum id_type t;

	if (doc_id_type_parse(d->id_type, &t))
		return 0;
	return idvec_push(ctx, d->doc_id, t, (int)d->kind, d->os_index, d->routing) != RC_OK;
}

static rcode
resend_pending(struct run *r)
{
	struct store_pending *p = NULL;
	size_t n = 0;
	struct idvec v = {0};
	rcode rc;

	rc = store_batches_pending(r->store, r->id, &p, &n);
	if (rc)
		return rerror_set(r->err, rc, "journal: cannot read pending batches");
	for (size_t i = 0; rc == RC_OK && i < n && !r->e->stop; i++) {
		char detail[64];
		if (r->full)
			continue; /* a full run re-reads its pending range from the cursor */
		idvec_clear(&v);
		rc = store_batch_ids(r->store, r->id, p[i].batch_no, on_batch_id, &v);
		if (rc)
			break;
		snprintf(detail, sizeof(detail), "batch %" PRId64 " (%zu ids)", p[i].batch_no, v.n);
		rc = store_event(r->store, r->id, "resend", detail);
		if (rc)
			break;
		log_msg(LOG_INFO, r->id, "re-sending pending %s", detail);
		if (strcmp(p[i].action, "delete") == 0)
			rc = repair_delete(r, v.v, v.n, p[i].batch_no);
		else
			rc = repair_index(r, v.v, v.n, p[i].batch_no);
	}
	idvec_free(&v);
	free(p);
	return rc;
}

/* ---- the pass: chunks, merge, lookups ------------------------------- */

static bool
is_hex24(const char *s, size_t len)
{
	if (len != 24)
		return false;
	for (size_t i = 0; i < 24; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Creation time of an ObjectId from its hex text, else -1. */
static int64_t
oid_time_ms(const char *s, size_t len)
{
	char head[9];

	if (!is_hex24(s, len))
		return -1;
	memcpy(head, s, 8);
	head[8] = '\0';
	return (int64_t)strtoul(head, NULL, 16) * 1000;
}

/* Reads the next chunk of MongoDB ids, all of one class. */
static rcode
read_chunk(struct run *r, struct idlist *chunk, int *cls)
{
	struct buf idtext = {0};
	rcode rc = RC_OK;

	idlist_clear(chunk);
	*cls = -1;
	if (r->held.n) {
		rc = idlist_push(chunk, idlist_id(&r->held, 0), r->held.v[0].id_len,
		                 r->held.v[0].type, idlist_version(&r->held, 0),
		                 r->held.v[0].time_ms);
		*cls = r->cur_held_class;
		idlist_clear(&r->held);
	}
	while (rc == RC_OK && !r->mongo_done && chunk->n < (size_t)r->cfg->chunk_size) {
		const bson_t *doc;
		bson_iter_t it, vit;
		enum id_type type;
		char version[64];
		int64_t ms = -1;
		bool has_version = false;

		rc = mongo_scan_next(r->scan, &doc, r->err);
		if (rc)
			break;
		if (doc == NULL) {
			r->mongo_done = true;
			break;
		}
		if (!bson_iter_init_find(&it, doc, "_id"))
			continue;
		buf_reset(&idtext);
		if ((rc = doc_id_canonical(bson_iter_value(&it), &idtext, &type)))
			break;
		int c = (int)doc_id_class(type, bson_iter_value(&it));
		if (*r->cfg->version_field && bson_iter_init(&vit, doc) &&
		    bson_iter_find_descendant(&vit, r->cfg->version_field, &vit))
			has_version = doc_version_from_bson(bson_iter_value(&vit), version,
			                                    sizeof(version), &ms);
		if (ms < 0 && type == ID_OID)
			ms = oid_time_ms(idtext.data, idtext.len);
		if (*cls >= 0 && c != *cls) {
			/* a new class starts a new chunk */
			rc = idlist_push(&r->held, idtext.data, idtext.len, type,
			                 has_version ? version : NULL, ms);
			r->cur_held_class = c;
			break;
		}
		*cls = c;
		rc = idlist_push(chunk, idtext.data, idtext.len, type, has_version ? version : NULL,
		                 ms);
	}
	buf_free(&idtext);
	return rc;
}

static rcode
os_restart(struct run *r, const char *after)
{
	idlist_clear(&r->os_buf);
	free(r->os_after);
	free(r->os_after_index);
	r->os_after_index = NULL; /* past every copy of `after` */
	r->os_after = after ? strdup(after) : NULL;
	r->os_more = !r->index_missing;
	return after && r->os_after == NULL ? RC_ERR_NOMEM : RC_OK;
}

/* Appends the next page of the index (after the last copy received) to
 * os_buf. */
static rcode
os_fetch_page(struct run *r)
{
	size_t before = r->os_buf.n;
	rcode rc;

	rc = opensearch_scan(r->os, &r->os_buf, &r->os_more, &r->keys, r->os_after,
	                     r->os_after_index, (int)r->cfg->chunk_size, r->err);
	if (rc == RC_ERR_NOTFOUND) {
		/* the index went away mid-run: nothing more on its side */
		*r->err = (struct rerror){0};
		r->os_more = false;
		return RC_OK;
	}
	if (rc)
		return rc;
	if (r->os_buf.n > before) {
		size_t last = r->os_buf.n - 1;
		const char *li = idlist_index(&r->os_buf, last);
		char *id = strdup(idlist_id(&r->os_buf, last));
		char *index = li ? strdup(li) : NULL;
		if (id == NULL || (li && index == NULL)) {
			free(id);
			free(index);
			return RC_ERR_NOMEM;
		}
		free(r->os_after);
		free(r->os_after_index);
		r->os_after = id;
		r->os_after_index = index;
	}
	return RC_OK;
}

/* Whether entry i of l is a copy in the index that takes writes. */
static bool
in_write_index(const struct run *r, const struct idlist *l, size_t i)
{
	const char *idx = idlist_index(l, i);

	return r->write_index == NULL || idx == NULL || strcmp(idx, r->write_index) == 0;
}

/* Moves the first k ids of os_buf into part, keeping part in key order
 * whatever the index returns. Copies of one id (several backing indices)
 * stay together, the copy in the write index first: it is the one kept. */
static rcode
os_move(struct run *r, struct idlist *part, size_t k)
{
	for (size_t i = 0; i < k; i++) {
		const char *id = idlist_id(&r->os_buf, i);
		size_t len = r->os_buf.v[i].id_len;
		int c = part->n ? diff_compare(idlist_id(part, part->n - 1),
		                               part->v[part->n - 1].id_len, id, len)
		                : -1;
		if (c > 0)
			continue;
		if (idlist_push_from(part, &r->os_buf, i))
			return RC_ERR_NOMEM;
		if (c == 0 && in_write_index(r, part, part->n - 1)) {
			size_t first = part->n - 1;
			while (first > 0 && diff_compare(idlist_id(part, first - 1),
			                                 part->v[first - 1].id_len, id, len) == 0)
				first--;
			struct idrec tmp = part->v[first];
			part->v[first] = part->v[part->n - 1];
			part->v[part->n - 1] = tmp;
		}
	}
	return idlist_shift(&r->os_buf, k);
}

/* Moves the index's ids up to hi (inclusive) into part. */
static rcode
os_take(struct run *r, struct idlist *part, const char *hi, size_t hilen)
{
	rcode rc;

	idlist_clear(part);
	for (;;) {
		size_t k = 0;
		while (k < r->os_buf.n && diff_compare(idlist_id(&r->os_buf, k),
		                                       r->os_buf.v[k].id_len, hi, hilen) <= 0)
			k++;
		bool stopped_inside = k < r->os_buf.n;
		if ((rc = os_move(r, part, k)))
			return rc;
		if (stopped_inside || !r->os_more)
			return RC_OK;
		if ((rc = os_fetch_page(r)))
			return rc;
	}
}

/* Moves at most one page of the index's remaining ids into part. */
static rcode
os_take_page(struct run *r, struct idlist *part)
{
	rcode rc;

	idlist_clear(part);
	if (r->os_buf.n == 0 && r->os_more && (rc = os_fetch_page(r)))
		return rc;
	return os_move(r, part, r->os_buf.n);
}

/* A copy of src in byte order of the ids; copies of one id together, the
 * copy in the write index first. */
static rcode
idlist_sorted(struct run *r, struct idlist *dst, const struct idlist *src)
{
	struct sorted_ref *refs = malloc((src->n ? src->n : 1) * sizeof(*refs));
	rcode rc = RC_OK;

	if (refs == NULL)
		return RC_ERR_NOMEM;
	for (size_t i = 0; i < src->n; i++) {
		refs[i].id = idlist_id(src, i);
		refs[i].len = src->v[i].id_len;
		refs[i].idx = i;
		refs[i].rank = in_write_index(r, src, i) ? 0 : 1;
	}
	qsort(refs, src->n, sizeof(*refs), cmp_rec);
	idlist_clear(dst);
	for (size_t i = 0; i < src->n && rc == RC_OK; i++)
		rc = idlist_push_from(dst, src, refs[i].idx);
	free(refs);
	return rc;
}

struct verify_ctx {
	const struct idlist *osl;
	const size_t *idx;
	bool *real;
	size_t n;
	struct buf text;
};

static int
on_exists(void *ctx, const bson_t *doc)
{
	struct verify_ctx *v = ctx;
	bson_iter_t it;
	enum id_type type;

	if (!bson_iter_init_find(&it, doc, "_id"))
		return 0;
	buf_reset(&v->text);
	if (doc_id_canonical(bson_iter_value(&it), &v->text, &type))
		return 0;
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(idlist_id(v->osl, v->idx[i]), v->text.data) == 0)
			v->real[i] = false;
	return 0;
}

/* Decides which orphan candidates (indices into osl) are really orphans:
 * certain ones directly, the rest by asking MongoDB for every typed value
 * their text could stand for. */
static rcode
verify_orphans(struct run *r, const struct idlist *osl, const size_t *idx, size_t n, bool *real)
{
	bool oid_only = r->seen == (1 << CLASS_OID) && r->cur_class == CLASS_OID;
	size_t *ask = malloc((n ? n : 1) * sizeof(*ask));
	size_t *pos = malloc((n ? n : 1) * sizeof(*pos));
	size_t n_ask = 0;
	rcode rc = RC_OK;

	if (ask == NULL || pos == NULL) {
		free(ask);
		free(pos);
		return RC_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const char *id = idlist_id(osl, idx[i]);
		real[i] = true;
		if (r->seen == 0 || (oid_only && is_hex24(id, osl->v[idx[i]].id_len)))
			continue;
		ask[n_ask] = idx[i];
		pos[n_ask++] = i;
	}
	for (size_t at = 0; rc == RC_OK && at < n_ask; at += 1000) {
		size_t m = n_ask - at < 1000 ? n_ask - at : 1000;
		bson_t arr = BSON_INITIALIZER, proj = BSON_INITIALIZER;
		uint32_t k = 0;
		bool *flags = malloc(m * sizeof(bool));
		struct verify_ctx v = {.osl = osl, .idx = ask + at, .real = flags, .n = m};
		if (flags == NULL) {
			rc = RC_ERR_NOMEM;
			break;
		}
		for (size_t i = 0; i < m; i++) {
			flags[i] = true;
			doc_id_append_candidates(&arr, &k, idlist_id(osl, ask[at + i]));
		}
		BSON_APPEND_INT32(&proj, "_id", 1);
		rc = mongo_fetch(r->mongo, &arr, &proj, false, on_exists, &v, r->err);
		for (size_t i = 0; i < m; i++)
			real[pos[at + i]] = flags[i];
		free(flags);
		buf_free(&v.text);
		bson_destroy(&arr);
		bson_destroy(&proj);
	}
	free(ask);
	free(pos);
	return rc;
}

static bool
too_young(struct run *r, int64_t t)
{
	return r->cfg->min_age_ms > 0 && t >= 0 && util_now_ms() - t < r->cfg->min_age_ms;
}

static rcode flush_queue(struct run *r);

struct conflict_ctx {
	const struct idlist *m;
	const size_t *idx;
	size_t n;
	char **other; /* per stale id: the type name of the document it collides with */
	struct buf text;
	rcode rc;
};

static int
on_conflict(void *ctx, const bson_t *doc)
{
	struct conflict_ctx *c = ctx;
	bson_iter_t it;
	enum id_type type;

	if (!bson_iter_init_find(&it, doc, "_id"))
		return 0;
	buf_reset(&c->text);
	if ((c->rc = doc_id_canonical(bson_iter_value(&it), &c->text, &type)))
		return 1;
	for (size_t i = 0; i < c->n; i++) {
		size_t k = c->idx[i];
		if (c->other[i] == NULL && type != c->m->v[k].type &&
		    strcmp(idlist_id(c->m, k), c->text.data) == 0 &&
		    (c->other[i] = strdup(doc_id_type_name(type))) == NULL) {
			c->rc = RC_ERR_NOMEM;
			return 1;
		}
	}
	return 0;
}

/* Which stale ids (indices into m) share their index _id with another
 * MongoDB document ("42" and 42, "true" and true): other[i] is set to that
 * document's type, else left NULL. Such a pair can never both be in the
 * index, so rewriting the one copy on every run fixes nothing. Only ids
 * whose text is also some other type's are asked about, in one $in. */
static rcode
find_conflicts(struct run *r, const struct idlist *m, const size_t *stale, size_t n, char **other)
{
	struct conflict_ctx c = {.m = m, .idx = stale, .n = n, .other = other};
	bson_t arr = BSON_INITIALIZER, proj = BSON_INITIALIZER;
	uint32_t count = 0;
	rcode rc = RC_OK;

	for (size_t i = 0; i < n && rc == RC_OK; i++) {
		const char *id = idlist_id(m, stale[i]);
		int mask = doc_id_types_sharing(id, (enum id_type)m->v[stale[i]].type);
		for (int t = 0; mask && t <= ID_JSON && rc == RC_OK; t++) {
			char key[16];
			const char *kp;
			if (!(mask & (1 << t)))
				continue;
			bson_uint32_to_string(count++, &kp, key, sizeof(key));
			rc = doc_id_append(&arr, kp, id, (enum id_type)t);
		}
	}
	BSON_APPEND_INT32(&proj, "_id", 1);
	if (rc == RC_OK && count > 0) {
		rc = mongo_fetch(r->mongo, &arr, &proj, false, on_conflict, &c, r->err);
		if (rc == RC_OK)
			rc = c.rc;
	}
	buf_free(&c.text);
	bson_destroy(&arr);
	bson_destroy(&proj);
	return rc;
}

/* Journals a conflict once per run (a warning when first seen). */
static rcode
record_conflict(struct run *r, const char *id, enum id_type type, const char *other)
{
	char types[32], msg[700];
	const char *a = doc_id_type_name(type);
	bool added = false;
	rcode rc;

	/* one row per pair, whichever side of it found it */
	snprintf(types, sizeof(types), "%s+%s", strcmp(a, other) < 0 ? a : other,
	         strcmp(a, other) < 0 ? other : a);
	snprintf(msg, sizeof(msg),
	         "MongoDB has a %s and a %s _id that both have the text \"%.400s\": they map to "
	         "one index _id, so the index can hold only one of them; left as it is, not "
	         "rewritten",
	         a, other, id);
	struct store_drift d = {.doc_id = id, .id_type = types, .kind = DRIFT_CONFLICT};
	rc = store_drift_add(r->store, r->id, &d, -1, "reported", msg, &added);
	if (rc == RC_OK && added)
		log_msg(LOG_WARN, r->id, "id conflict: %s", msg);
	return rc;
}

/* Journals a chunk's drift and queues it for repair. m: the MongoDB ids
 * (sorted), osl: the index copies (sorted, copies of an id together);
 * orphans: the orphan copies proven absent from MongoDB. */
static rcode
record_and_repair(struct run *r, const struct idlist *m, const struct idlist *osl,
                  const struct drift *d, const size_t *orphans, size_t n_orphans)
{
	struct idvec fix = {0}, del = {0};
	bool act = !r->dry_run;
	bool delete_orphans = act && r->cfg->orphans == ORPHANS_DELETE;
	char **other = calloc(d->n_stale ? d->n_stale : 1, sizeof(*other));
	rcode rc = other ? RC_OK : RC_ERR_NOMEM;

	if (rc == RC_OK && d->n_stale)
		rc = find_conflicts(r, m, d->stale, d->n_stale, other);
	if (rc == RC_OK)
		rc = store_tx_begin(r->store);
	for (size_t i = 0; i < d->n_missing && rc == RC_OK; i++) {
		size_t k = d->missing[i];
		bool young = too_young(r, m->v[k].time_ms);
		struct store_drift sd = {.doc_id = idlist_id(m, k),
		                         .id_type = doc_id_type_name(m->v[k].type),
		                         .kind = DRIFT_MISSING};
		rc = store_drift_add(r->store, r->id, &sd, -1,
		                     young ? "skipped"
		                     : act ? "pending"
		                           : "reported",
		                     NULL, NULL);
		if (rc == RC_OK && act && !young)
			rc = idvec_push(&fix, sd.doc_id, m->v[k].type, DRIFT_MISSING, NULL, NULL);
	}
	for (size_t i = 0; i < d->n_stale && rc == RC_OK; i++) {
		size_t k = d->stale[i], o = d->stale_os[i];
		bool young = too_young(r, m->v[k].time_ms);
		if (other[i]) {
			rc = record_conflict(r, idlist_id(m, k), m->v[k].type, other[i]);
			continue;
		}
		/* the overwrite goes to the copy: its index and its routing */
		struct store_drift sd = {.doc_id = idlist_id(m, k),
		                         .id_type = doc_id_type_name(m->v[k].type),
		                         .kind = DRIFT_STALE,
		                         .os_index = idlist_index(osl, o),
		                         .routing = idlist_routing(osl, o)};
		rc = store_drift_add(r->store, r->id, &sd, -1,
		                     young ? "skipped"
		                     : act ? "pending"
		                           : "reported",
		                     NULL, NULL);
		if (rc == RC_OK && act && !young)
			rc = idvec_push(&fix, sd.doc_id, m->v[k].type, DRIFT_STALE, sd.os_index,
			                sd.routing);
	}
	for (int pass = 0; pass < 2 && rc == RC_OK; pass++) {
		/* orphans, then extra copies: both are deleted where they are */
		const size_t *list = pass ? d->duplicate : orphans;
		size_t n = pass ? d->n_duplicate : n_orphans;
		enum drift_kind kind = pass ? DRIFT_DUPLICATE : DRIFT_ORPHAN;
		/* an extra copy of a document MongoDB has: removing it leaves the
		 * document indexed, so it is repaired whatever RECONCILE_ORPHANS says */
		bool remove = pass ? act : delete_orphans;
		for (size_t i = 0; i < n && rc == RC_OK; i++) {
			size_t k = list[i];
			const char *id = idlist_id(osl, k);
			size_t len = osl->v[k].id_len;
			int64_t t =
			    osl->v[k].time_ms >= 0 ? osl->v[k].time_ms : oid_time_ms(id, len);
			bool young = too_young(r, t);
			enum id_type type = doc_id_guess_type(id);
			struct store_drift sd = {.doc_id = id,
			                         .id_type = doc_id_type_name(type),
			                         .kind = kind,
			                         .os_index = idlist_index(osl, k),
			                         .routing = idlist_routing(osl, k)};
			rc = store_drift_add(r->store, r->id, &sd, -1,
			                     young    ? "skipped"
			                     : remove ? "pending"
			                              : "reported",
			                     NULL, NULL);
			if (rc == RC_OK && remove && !young)
				rc = idvec_push(&del, id, type, kind, sd.os_index, sd.routing);
		}
	}
	if (rc == RC_OK)
		rc = store_run_recount(r->store, r->id);
	if (rc == RC_OK)
		rc = store_tx_commit(r->store);
	if (rc) {
		store_tx_rollback(r->store);
		if (rc == RC_ERR_STORE)
			rerror_set(r->err, rc, "journal: cannot record drift");
	}
	for (size_t i = 0; rc == RC_OK && i < fix.n; i++)
		rc = idvec_push(&r->queue_fix, fix.v[i].id, fix.v[i].type, fix.v[i].kind,
		                fix.v[i].index, fix.v[i].routing);
	for (size_t i = 0; rc == RC_OK && i < del.n; i++)
		rc = idvec_push(&r->queue_del, del.v[i].id, del.v[i].type, del.v[i].kind,
		                del.v[i].index, del.v[i].routing);
	for (size_t i = 0; i < d->n_stale; i++)
		free(other ? other[i] : NULL);
	free(other);
	idvec_free(&fix);
	idvec_free(&del);
	if (rc == RC_OK && r->queue_fix.n + r->queue_del.n >= FETCH_MAX)
		rc = flush_queue(r);
	return rc;
}

/* Diffs the index's ids in part against an (empty or given) MongoDB chunk
 * of a merge segment, verifying orphans, and repairs. */
static rcode
merge_and_repair(struct run *r, const struct idlist *m, const struct idlist *osl)
{
	struct drift d;
	bool *real = NULL;
	size_t *orph = NULL, n_orph = 0;
	rcode rc;

	rc = diff_merge(&d, m, osl, *r->cfg->version_field != '\0');
	if (rc)
		return rc;
	if (d.n_orphan) {
		real = malloc(d.n_orphan * sizeof(bool));
		orph = malloc(d.n_orphan * sizeof(size_t));
		rc = real && orph ? verify_orphans(r, osl, d.orphan, d.n_orphan, real)
		                  : RC_ERR_NOMEM;
		for (size_t i = 0; rc == RC_OK && i < d.n_orphan; i++)
			if (real[i])
				orph[n_orph++] = d.orphan[i];
	}
	if (rc == RC_OK)
		rc = record_and_repair(r, m, osl, &d, orph, n_orph);
	free(real);
	free(orph);
	drift_free(&d);
	return rc;
}

/* A chunk of numbers or rarer types: look its ids up in the index. */
static rcode
lookup_and_repair(struct run *r, const struct idlist *chunk)
{
	struct idlist found = {0}, ms = {0}, fs = {0};
	const char **ids = malloc((chunk->n ? chunk->n : 1) * sizeof(*ids));
	struct drift d;
	rcode rc = RC_OK;

	if (ids == NULL)
		return RC_ERR_NOMEM;
	for (size_t i = 0; i < chunk->n; i++)
		ids[i] = idlist_id(chunk, i);
	for (size_t at = 0; rc == RC_OK && at < chunk->n && !r->index_missing; at += 1000)
		rc = opensearch_lookup(r->os, &found, &r->keys, ids + at,
		                       chunk->n - at < 1000 ? chunk->n - at : 1000, r->err);
	free(ids);
	if (rc == RC_OK)
		rc = idlist_sorted(r, &ms, chunk);
	if (rc == RC_OK)
		rc = idlist_sorted(r, &fs, &found);
	if (rc == RC_OK)
		rc = diff_merge(&d, &ms, &fs, *r->cfg->version_field != '\0');
	if (rc == RC_OK) {
		/* index-only ids here are for other MongoDB types: not orphans */
		rc = record_and_repair(r, &ms, &fs, &d, NULL, 0);
		drift_free(&d);
	}
	idlist_free(&found);
	idlist_free(&ms);
	idlist_free(&fs);
	return rc;
}

static rcode
commit_cursor(struct run *r, const char *id, enum id_type type, int64_t compared)
{
	rcode rc = store_run_cursor(r->store, r->id, doc_id_type_name(type), id, r->seen, compared);

	if (rc)
		return rerror_set(r->err, rc, "journal: cannot advance the cursor");
	free(r->cursor);
	r->cursor = strdup(id);
	r->cursor_type = type;
	return r->cursor ? RC_OK : RC_ERR_NOMEM;
}

/* Repairs the queued drift, then commits the cursor that waited for it. */
static rcode
flush_queue(struct run *r)
{
	rcode rc = RC_OK;

	if (r->queue_fix.n + r->queue_del.n > 0) {
		set_phase(r, "repairing");
		if (r->queue_fix.n)
			rc = repair_index(r, r->queue_fix.v, r->queue_fix.n, 0);
		if (rc == RC_OK && r->queue_del.n)
			rc = repair_delete(r, r->queue_del.v, r->queue_del.n, 0);
		if (rc == RC_OK)
			set_phase(r, r->mongo_done ? "finishing" : "diffing");
	}
	if (rc == RC_OK && r->e->stop)
		rc = rerror_set(r->err, RC_ERR_CANCELLED, "stopped");
	idvec_clear(&r->queue_fix);
	idvec_clear(&r->queue_del);
	if (rc == RC_OK && r->queued_cursor.n) {
		rc = commit_cursor(r, idlist_id(&r->queued_cursor, 0), r->queued_cursor.v[0].type,
		                   r->queued_compared);
		idlist_clear(&r->queued_cursor);
	}
	progress_sync(r);
	return rc;
}

/* Moves the cursor past a chunk: now if nothing waits to be repaired, else
 * when the queue is flushed (the cursor never passes uncommitted work). */
static rcode
advance(struct run *r, const struct idlist *chunk)
{
	size_t last = chunk->n - 1;
	rcode rc = RC_OK;

	r->compared += (int64_t)chunk->n;
	if (r->queue_fix.n + r->queue_del.n == 0) {
		rc = commit_cursor(r, idlist_id(chunk, last), chunk->v[last].type, r->compared);
		progress_sync(r);
		return rc;
	}
	idlist_clear(&r->queued_cursor);
	r->queued_compared = r->compared;
	rc = idlist_push(&r->queued_cursor, idlist_id(chunk, last), chunk->v[last].id_len,
	                 chunk->v[last].type, NULL, -1);
	pthread_mutex_lock(&r->e->lock);
	r->e->progress.compared = r->compared;
	pthread_mutex_unlock(&r->e->lock);
	progress_print(r->e, false);
	return rc;
}

/* The end of a merge segment: everything left in the index is past the
 * segment's last MongoDB id. */
static rcode
drain_segment(struct run *r)
{
	struct idlist part = {0}, empty = {0};
	rcode rc = RC_OK;

	do {
		/* in pages, so memory stays O(chunk) */
		rc = os_take_page(r, &part);
		if (rc == RC_OK && part.n)
			rc = merge_and_repair(r, &empty, &part);
	} while (rc == RC_OK && part.n && !r->e->stop);
	idlist_free(&part);
	idlist_free(&empty);
	return rc;
}

static rcode
pass_diff(struct run *r)
{
	struct idlist chunk = {0}, part = {0};
	int cls;
	rcode rc;

	rc = mongo_scan_open(&r->scan, r->mongo, r->cursor, r->cursor_type, r->cfg->version_field,
	                     false, (int)r->cfg->chunk_size, true, r->err);
	if (rc)
		return rc;
	if (r->cursor) {
		/* resume inside the segment the cursor is in */
		bson_t tmp = BSON_INITIALIZER;
		bson_iter_t it;
		doc_id_append(&tmp, "v", r->cursor, r->cursor_type);
		bson_iter_init_find(&it, &tmp, "v");
		r->cur_class = (int)doc_id_class(r->cursor_type, bson_iter_value(&it));
		bson_destroy(&tmp);
		if (doc_class_merges(r->cur_class))
			rc = os_restart(r, r->cursor);
	}
	while (rc == RC_OK && !r->e->stop) {
		rc = read_chunk(r, &chunk, &cls);
		if (rc || chunk.n == 0)
			break;
		if (cls != r->cur_class) {
			if (r->cur_class >= 0 && doc_class_merges(r->cur_class))
				rc = drain_segment(r);
			r->cur_class = cls;
			if (rc == RC_OK && doc_class_merges(cls))
				rc = os_restart(r, NULL);
		}
		r->seen |= 1 << cls;
		if (rc)
			break;
		if (doc_class_merges(cls)) {
			rc = os_take(r, &part, idlist_id(&chunk, chunk.n - 1),
			             chunk.v[chunk.n - 1].id_len);
			if (rc == RC_OK)
				rc = merge_and_repair(r, &chunk, &part);
		} else {
			rc = lookup_and_repair(r, &chunk);
		}
		if (rc == RC_OK && !r->e->stop)
			rc = advance(r, &chunk);
	}
	if (rc == RC_OK && !r->e->stop) {
		r->mongo_done = true;
		if (r->cur_class >= 0 && doc_class_merges(r->cur_class)) {
			rc = drain_segment(r);
		} else if (!(r->seen & ((1 << CLASS_STRING) | (1 << CLASS_OID)))) {
			/* no merge segment swept the index: sweep it now for orphans */
			r->cur_class = -1;
			rc = os_restart(r, NULL);
			if (rc == RC_OK)
				rc = drain_segment(r);
		}
		if (rc == RC_OK)
			rc = flush_queue(r);
	}
	idlist_free(&chunk);
	idlist_free(&part);
	return rc;
}

static rcode
pass_full(struct run *r)
{
	struct batch b = {.action = "index"};
	struct buf json = {0}, idtext = {0};
	rcode rc;
	int bs = (int)(r->cfg->sync_batch_size > 100 ? r->cfg->sync_batch_size : 100);

	rc = mongo_scan_open(&r->scan, r->mongo, r->cursor, r->cursor_type, NULL, true, bs, true,
	                     r->err);
	while (rc == RC_OK && !r->e->stop) {
		const bson_t *doc;
		bson_iter_t it;
		enum id_type type;
		rc = mongo_scan_next(r->scan, &doc, r->err);
		if (rc || doc == NULL)
			break;
		if (!bson_iter_init_find(&it, doc, "_id"))
			continue;
		buf_reset(&idtext);
		if ((rc = doc_id_canonical(bson_iter_value(&it), &idtext, &type)))
			break;
		struct qitem q = {.id = idtext.data, .type = type, .kind = -1};
		rc = batch_add_doc(r, &b, &json, doc, &q, true);
	}
	if (rc == RC_OK && !r->e->stop)
		rc = flush_batch(r, &b, r->reuse_no);
	batch_free(&b);
	buf_free(&json);
	buf_free(&idtext);
	return rc;
}

/* ---- a run ------------------------------------------------------------ */

/* Errors of a server or the network leave the run resumable. */
static bool
resumable(rcode rc)
{
	return rc == RC_ERR_MONGO || rc == RC_ERR_OPENSEARCH || rc == RC_ERR_RETRY ||
	       rc == RC_ERR_CANCELLED;
}

/* Picks the id field and version format from the index mapping; creates
 * the index (id field as keyword) when it does not exist and we may write. */
static rcode
setup_keys(struct run *r)
{
	const char *idf = r->cfg->opensearch_id_field;
	char *type = NULL;
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
	r->keys.by_index = r->keys.n_indices > 1;
	if (r->keys.by_index) {
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
		rc = opensearch_field_type(r->os, &type, idf, r->err);
		if (rc == RC_ERR_NOTFOUND && !r->dry_run) {
			struct buf body = {0}, resp = {0};
			long status = 0;
			buf_printf(&body, "{\"mappings\":{\"properties\":{");
			doc_json_string(&body, idf, strlen(idf));
			buf_puts(&body, ":{\"type\":\"keyword\"}}}}");
			rc = opensearch_request(r->os, &status, &resp, "PUT",
			                        opensearch_index(r->os), body.data, body.len,
			                        r->err);
			if (rc == RC_OK && status != 200 && status != 400)
				rc = rerror_set(r->err, RC_ERR_OPENSEARCH,
				                "cannot create the index: HTTP %ld", status);
			buf_free(&body);
			buf_free(&resp);
			if (rc == RC_OK) {
				log_msg(LOG_INFO, r->id, "created the index with %s as keyword",
				        idf);
				rc = opensearch_field_type(r->os, &type, idf, r->err);
			}
		}
		if (rc == RC_ERR_NOTFOUND) {
			r->index_missing = true;
			log_msg(LOG_WARN, r->id,
			        "the index does not exist: every document is missing");
			rc = RC_OK;
		}
		if (rc)
			return rc;
		if (type && strcmp(type, "keyword") == 0) {
			int64_t lacking = 0;
			r->keys.sort_field = r->id_field;
			/* such documents cannot be placed in key order: say so */
			if (opensearch_count_missing(r->os, &lacking, idf, r->err) == RC_OK &&
			    lacking > 0) {
				char msg[300];
				snprintf(msg, sizeof(msg),
				         "%" PRId64
				         " documents of the index lack %s: the pass cannot see "
				         "them, so orphans among them are not found "
				         "(OPENSEARCH_ID_FIELD= "
				         "reads ids from _id instead)",
				         lacking, idf);
				log_msg(LOG_WARN, r->id, "%s", msg);
				store_event(r->store, r->id, "warning", msg);
			}
		} else if (!r->index_missing) {
			log_msg(LOG_WARN, r->id,
			        "OPENSEARCH_ID_FIELD %s is %s in the index mapping, not keyword: "
			        "ids are read from _id instead",
			        idf, type ? type : "not mapped");
			store_event(r->store, r->id, "warning",
			            "id field not a keyword; using _id");
		}
		free(type);
		type = NULL;
	}
	if (*r->cfg->version_field && !r->index_missing) {
		rc = opensearch_field_type(r->os, &type, r->cfg->version_field, r->err);
		if (rc == RC_ERR_NOTFOUND)
			rc = RC_OK;
		if (type && strncmp(type, "date", 4) == 0)
			r->keys.version_format = "epoch_millis";
		free(type);
		r->keys.version_field = r->cfg->version_field;
	}
	return rc;
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

static rcode
count_both(struct run *r)
{
	int64_t mc = -1, oc = -1;
	rcode rc;

	refresh(r);

	if (r->cfg->mongo_count == MONGO_COUNT_BEFORE)
		rc = mongo_count(r->mongo, &mc, r->err);
	else
		rc = RC_OK; /* counted by the pass itself */
	if (rc == RC_OK) {
		rc = opensearch_count(r->os, &oc, r->err);
		if (rc == RC_ERR_NOTFOUND) {
			oc = 0;
			rc = RC_OK;
		}
	}
	if (rc)
		return rc;
	r->os_count = oc;
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

static rcode
start_or_resume(struct run *r, const char *kind, const char *trigger, int64_t resume_id)
{
	struct store_run *sr = NULL;
	int64_t id = 0;
	rcode rc;

	if (resume_id == 0 && (rc = store_run_unfinished(r->store, &id)))
		return rerror_set(r->err, rc, "journal: cannot look for unfinished runs");
	if (resume_id > 0)
		id = resume_id;
	if (id > 0) {
		rc = store_run_get(r->store, &sr, id);
		if (rc == RC_ERR_NOTFOUND)
			return rerror_set(r->err, rc, "no run %" PRId64 " in the journal", id);
		if (rc)
			return rerror_set(r->err, rc, "journal: cannot read run %" PRId64, id);
		if (strcmp(sr->status, "running") && strcmp(sr->status, "interrupted")) {
			rc = rerror_set(r->err, RC_ERR_INVALID,
			                "run %" PRId64 " is %s: nothing to resume", id, sr->status);
			store_run_free(sr);
			return rc;
		}
		r->id = id;
		snprintf(r->kind, sizeof(r->kind), "%s", sr->kind);
		if (sr->cursor && sr->cursor_type) {
			r->cursor = strdup(sr->cursor);
			doc_id_type_parse(sr->cursor_type, &r->cursor_type);
		}
		r->seen = sr->seen_types;
		r->compared = sr->compared;
		store_run_free(sr);
		rc = store_run_resumed(r->store, id);
		log_msg(LOG_INFO, id, "resuming %s run from %s", r->kind,
		        r->cursor ? r->cursor : "the start");
		return rc;
	}
	struct buf cfg = {0};
	rc = config_dump_json(r->cfg, &cfg);
	if (rc == RC_OK)
		rc = store_run_begin(r->store, &r->id, kind, trigger, cfg.data);
	buf_free(&cfg);
	snprintf(r->kind, sizeof(r->kind), "%s", kind);
	if (rc == RC_OK)
		log_msg(LOG_INFO, r->id, "started %s run (trigger %s)", kind, trigger);
	return rc ? rerror_set(r->err, rc, "journal: cannot begin a run") : RC_OK;
}

rcode
engine_run(struct engine *e, struct engine_result *res, const char *kind, const char *trigger,
           int64_t resume_id, struct rerror *err)
{
	struct run r = {.e = e, .cfg = e->cfg, .err = err, .cur_class = -1};
	struct store_run *sr = NULL;
	int64_t holder = 0;
	rcode rc, frc;
	const char *status;

	memset(res, 0, sizeof(*res));
	rc = store_open(&r.store, e->cfg->state_db, err);
	if (rc)
		return rc;
	rc = store_lock(r.store, &holder, err);
	if (rc) {
		store_free(r.store);
		return rc;
	}
	rc = start_or_resume(&r, kind, trigger, resume_id);
	if (rc)
		goto out_unlocked;
	r.full = strcmp(r.kind, "full") == 0;
	r.dry_run = strcmp(r.kind, "dry_run") == 0;
	if (r.full) { /* resumed: reuse the number of the batch that was in flight */
		struct store_pending *p = NULL;
		size_t n = 0;
		if (store_batches_pending(r.store, r.id, &p, &n) == RC_OK && n)
			r.reuse_no = p[0].batch_no;
		free(p);
	}
	pthread_mutex_lock(&e->lock);
	memset(&e->progress, 0, sizeof(e->progress));
	e->progress.active = true;
	e->progress.run_id = r.id;
	e->progress.mongo_count = e->progress.opensearch_count = -1;
	e->progress.compared = r.compared;
	e->progress.started_ms = util_now_ms();
	snprintf(e->progress.kind, sizeof(e->progress.kind), "%s", r.kind);
	snprintf(e->progress.phase, sizeof(e->progress.phase), "starting");
	pthread_mutex_unlock(&e->lock);
	if (e->start_hook)
		e->start_hook(e->start_ctx, r.id);

	rc = mongo_open(&r.mongo, e->cfg->mongodb_uri, e->cfg->mongodb_database,
	                e->cfg->mongodb_collection, err);
	if (rc == RC_OK)
		rc = opensearch_open(&r.os, e->cfg, err);
	if (rc == RC_OK && (rc = set_phase(&r, "counting")) == RC_OK)
		rc = count_both(&r);
	if (rc == RC_OK)
		rc = setup_keys(&r);
	if (rc == RC_OK && !r.dry_run && (rc = set_phase(&r, "repairing")) == RC_OK)
		rc = resend_pending(&r);
	if (rc == RC_OK && !r.dry_run)
		refresh(&r); /* the pass must see what was re-sent, or it sends it again */
	if (rc == RC_OK && (rc = set_phase(&r, r.full ? "indexing" : "diffing")) == RC_OK)
		rc = r.full ? pass_full(&r) : pass_diff(&r);

	if (rc == RC_OK && !e->stop && e->cfg->mongo_count == MONGO_COUNT_PASS)
		store_run_counts(r.store, r.id, r.compared, r.os_count);
	if (r.os && !r.dry_run)
		refresh(&r);
	/* how it ended */
	if (e->stop == 2)
		status = "cancelled";
	else if (e->stop == 1)
		status = "interrupted";
	else if (rc == RC_OK)
		status = "completed";
	else
		status = resumable(rc) ? "interrupted" : "failed";
	if (rc && rc != RC_ERR_CANCELLED)
		journal_error(&r, rc, -1, NULL, e->progress.phase,
		              rc == RC_ERR_MONGO        ? "mongo"
		              : rc == RC_ERR_STORE      ? "store"
		              : rc == RC_ERR_OPENSEARCH ? "opensearch"
		              : rc == RC_ERR_RETRY      ? "opensearch"
		                                        : "engine",
		              err->message);
	frc = store_run_finish(r.store, r.id, status, rc ? err->message : NULL);
	if (frc)
		log_msg(LOG_ERROR, r.id, "journal: cannot record the end of the run");
	if (store_run_get(r.store, &sr, r.id) == RC_OK) {
		res->run_id = sr->id;
		snprintf(res->status, sizeof(res->status), "%s", sr->status);
		snprintf(res->kind, sizeof(res->kind), "%s", sr->kind);
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
		store_run_free(sr);
	}
	progress_sync(&r);
	progress_print(e, true);
	log_msg(rc ? LOG_WARN : LOG_INFO, r.id,
	        "%s run %s: missing %" PRId64 ", orphans %" PRId64 ", stale %" PRId64
	        ", repaired %" PRId64 ", deleted %" PRId64 ", failed %" PRId64,
	        r.kind, status, res->missing, res->orphans, res->stale, res->repaired, res->deleted,
	        res->failed);
	if (rc == RC_OK && e->stop)
		rc = RC_ERR_CANCELLED, rerror_set(err, rc, "run %" PRId64 " %s", r.id, status);
	if (rc == RC_OK && frc)
		rc = rerror_set(err, frc, "journal: cannot record the end of the run");
out_unlocked:
	pthread_mutex_lock(&e->lock);
	e->progress.active = false;
	pthread_mutex_unlock(&e->lock);
	mongo_scan_free(r.scan);
	mongo_free(r.mongo);
	opensearch_free(r.os);
	idlist_free(&r.os_buf);
	idlist_free(&r.held);
	idlist_free(&r.queued_cursor);
	idvec_free(&r.queue_fix);
	idvec_free(&r.queue_del);
	free(r.os_after);
	free(r.os_after_index);
	free(r.write_index);
	free(r.cursor);
	free(r.id_field);
	store_free(r.store);
	return rc;
}
