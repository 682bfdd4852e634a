/*
 * repair.c: drifted documents from MongoDB into OpenSearch, in journaled
 * batches; see repair.h for the protocol.
 *
 * Fetches: the queue (at most REPAIR_QUEUE_MAX ids) is fetched with one $in,
 * because a server that cannot serve $in from an index (FerretDB 1.x) pays a
 * full scan per query however few ids it names; MongoDB serves it from the
 * _id index either way. Documents arrive in no particular order and are
 * matched to the queue by id text (and type, where texts repeat).
 *
 * Batches are cut by SYNC_BATCH_SIZE documents and SYNC_BATCH_SIZE_BYTES
 * bytes (a larger single document goes alone); opensearch_bulk_send owns
 * the _bulk protocol (retries, splitting, item results).
 *
 * The sender overlaps reading and converting with _bulk: SYNC_CONCURRENCY
 * worker threads (each with its own connection) send batches while this
 * thread reads and converts the next one. Only this thread touches the
 * journal, and it commits batches strictly in the order they were opened:
 * a batch is written pending before it is handed over, and committed only
 * after its _bulk answered and every earlier batch was committed. After a
 * failed batch nothing later is committed (what was sent stays pending and
 * is sent again on resume, its copies looked up again first), so a full
 * run's cursor never passes an unsent batch. Every repair entry point
 * drains the sender before it returns, so the pass never runs ahead of
 * its repairs, and a delete that must precede a write (a moved copy) is
 * answered before the write is sent.
 */
#include "repair.h"
#include "diff.h"
#include "jtree.h"
#include "log.h"
#include "mongo.h"
#include "opensearch.h"
#include "owned.h"
#include "transform.h"
#include "util.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sender;
static void sender_free(struct sender *s);

/* ---- the queue -------------------------------------------------------- */

static RC_MUST_CHECK rcode
qitem_copy(struct qitem *dst, const struct qitem *src)
{
	*dst = (struct qitem){.type = src->type,
	                      .kind = src->kind,
	                      .version = src->version,
	                      .seq_no = src->seq_no,
	                      .primary_term = src->primary_term,
	                      .guard = src->guard,
	                      .gone = src->gone,
	                      .write_default_index = src->write_default_index,
	                      .left_by_transform = src->left_by_transform,
	                      .misplaced = src->misplaced,
	                      .replace = src->replace,
	                      .carried = src->carried};
	dst->id = strdup(src->id);
	dst->read_version = src->read_version ? strdup(src->read_version) : NULL;
	dst->index = src->index ? strdup(src->index) : NULL;
	dst->routing = src->routing ? strdup(src->routing) : NULL;
	dst->docid = src->docid ? strdup(src->docid) : NULL;
	dst->write_routing = src->write_routing ? strdup(src->write_routing) : NULL;
	if (dst->id == NULL || (src->index && dst->index == NULL) ||
	    (src->routing && dst->routing == NULL) || (src->docid && dst->docid == NULL) ||
	    (src->write_routing && dst->write_routing == NULL) ||
	    (src->read_version && dst->read_version == NULL)) {
		free(dst->id);
		free(dst->read_version);
		free(dst->index);
		free(dst->routing);
		free(dst->docid);
		free(dst->write_routing);
		return RC_ERR_NOMEM;
	}
	return RC_OK;
}

static void
qitem_free(struct qitem *q)
{
	free(q->id);
	free(q->index);
	free(q->routing);
	free(q->docid);
	free(q->write_routing);
	free(q->read_version);
}

/* Appends a copy of q (its strings borrowed). */
static RC_MUST_CHECK rcode
idvec_push(struct idvec *v, const struct qitem *q)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		struct qitem *a = realloc(v->v, cap * sizeof(*a));
		if (a == NULL)
			return RC_ERR_NOMEM;
		v->v = a;
		v->cap = cap;
	}
	rcode rc = qitem_copy(&v->v[v->n], q);
	if (rc == RC_OK)
		v->n++;
	return rc;
}

static void
idvec_clear(struct idvec *v)
{
	for (size_t i = 0; i < v->n; i++)
		qitem_free(&v->v[i]);
	v->n = 0;
}

static void
idvec_free(struct idvec *v)
{
	idvec_clear(v);
	free(v->v);
	*v = (struct idvec){0};
}

/* The journal's key of a queued item. */
static struct store_drift
qitem_drift(const struct qitem *q)
{
	return (struct store_drift){.doc_id = q->id,
	                            .id_type = doc_id_type_name(q->type),
	                            .kind = (enum drift_kind)q->kind,
	                            .os_index = q->index,
	                            .routing = q->routing,
	                            .os_id = q->docid};
}

rcode
repair_queue(struct repair *rp, const struct store_drift *d, enum id_type type)
{
	bool del = d->kind == DRIFT_ORPHAN || d->kind == DRIFT_DUPLICATE;
	struct qitem q = {.id = (char *)d->doc_id,
	                  .type = type,
	                  .kind = (int)d->kind,
	                  .index = (char *)d->os_index,
	                  .routing = (char *)d->routing,
	                  .docid = (char *)d->os_id,
	                  .version = -1,
	                  .seq_no = d->seq_no,
	                  .primary_term = d->primary_term,
	                  .left_by_transform =
	                      d->reason && (strcmp(d->reason, DRIFT_REASON_TRANSFORM_NIL) == 0 ||
	                                    strcmp(d->reason, DRIFT_REASON_TRANSFORM_NIL_OLD) == 0),
	                  .misplaced = d->reason && strcmp(d->reason, DRIFT_REASON_MISPLACED) == 0};

	assert(d->kind != DRIFT_CONFLICT); /* conflicts are never written */
	return idvec_push(del ? &rp->del : &rp->fix, &q);
}

size_t
repair_queued(const struct repair *rp)
{
	return rp->fix.n + rp->del.n;
}

void
repair_release(struct repair *rp)
{
	if (rp == NULL)
		return;
	/* every entry point drained it; what might still be queued stays
	 * pending in the journal */
	sender_free(rp->sender);
	rp->sender = NULL;
	idvec_free(&rp->fix);
	idvec_free(&rp->del);
	idvec_free(&rp->moved);
	free(rp->cursor);
	rp->cursor = NULL;
	free(rp->reuse);
	rp->reuse = NULL;
	rp->n_reuse = rp->reuse_at = 0;
}

/* Journals one document as failed, with the reason, and goes on: one bad
 * document never stops the others. level: how loud its log line is. */
static RC_MUST_CHECK rcode
fail_item_at(struct repair *rp, const struct qitem *q, const char *code, const char *reason,
             enum log_level level)
{
	struct store_drift d = qitem_drift(q);
	rcode rc;

	log_msg(level, rp->run_id, "document %s failed: %s", q->id, reason);
	rc = store_error(rp->store, rp->run_id, -1, q->id, "repair", "engine", code, reason);
	if (rc == RC_OK && q->kind >= 0 && rp->as_missing) /* no row yet: it is added */
		rc = store_drift_add(rp->store, rp->run_id, &d, -1, DRIFT_FAILED, reason, NULL);
	else if (rc == RC_OK && q->kind >= 0)
		rc = store_drift_set(rp->store, rp->run_id, &d, DRIFT_FAILED, reason);
	if (rc)
		rerror_set(rp->err, rc, "journal: cannot record the failure of %s", q->id);
	return rc;
}

static RC_MUST_CHECK rcode
fail_item(struct repair *rp, const struct qitem *q, const char *code, const char *reason)
{
	return fail_item_at(rp, q, code, reason, LOG_WARN);
}

/* A document the transform failed on: an error (error.log), journaled,
 * and the run goes on, unless it failed on the last
 * RECONCILE_TRANSFORM_MAX_CONSECUTIVE_ERRORS documents in a row: a script
 * that fails on every document would write thousands of identical lines and
 * nothing else, so the run stops there, failed, with the script's message
 * (its file and line) once. */
static RC_MUST_CHECK rcode
fail_transform(struct repair *rp, const struct qitem *q, const char *code, const char *reason)
{
	int64_t max = rp->cfg->transform_max_consecutive_errors;
	rcode rc = fail_item_at(rp, q, code, reason, LOG_ERROR);

	if (rc == RC_OK && max > 0 && ++rp->tf_failed_in_row >= max)
		rc = rerror_set(rp->err, RC_ERR_INVALID,
		                "the transform failed on %" PRId64
		                " documents in a row (RECONCILE_TRANSFORM_MAX_CONSECUTIVE_ERRORS): "
		                "the run stops; the last, %.200s: %.600s",
		                rp->tf_failed_in_row, q->id, reason);
	return rc;
}

/* ---- batches ---------------------------------------------------------- */

struct batch {
	enum batch_action action; /* a write (index or update on the wire) or deletes */
	struct qitem *items;
	size_t *off, *len; /* each document's JSON within src */
	size_t n, cap;
	struct buf src;
	size_t bytes; /* about what the request will weigh */
};

static void
batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		qitem_free(&b->items[i]);
	b->n = 0;
	b->bytes = 0;
	buf_reset(&b->src);
}

static void
batch_free(struct batch *b)
{
	batch_clear(b);
	free(b->items);
	free(b->off);
	free(b->len);
	buf_free(&b->src);
}

/* Appends a document (json NULL for a delete). */
static RC_MUST_CHECK rcode
batch_add(struct batch *b, const struct qitem *q, const struct buf *json)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 128;
		struct qitem *v = realloc(b->items, cap * sizeof(*v));
		if (v == NULL)
			return RC_ERR_NOMEM;
		b->items = v;
		size_t *o = realloc(b->off, cap * sizeof(*o));
		if (o == NULL)
			return RC_ERR_NOMEM;
		b->off = o;
		size_t *l = realloc(b->len, cap * sizeof(*l));
		if (l == NULL)
			return RC_ERR_NOMEM;
		b->len = l;
		b->cap = cap;
	}
	b->off[b->n] = b->src.len;
	b->len[b->n] = json ? json->len : 0;
	if (json && buf_append(&b->src, json->data, json->len))
		return RC_ERR_NOMEM;
	rcode rc = qitem_copy(&b->items[b->n], q);
	if (rc)
		return rc;
	/* the action line: _id, _index and routing, quoted; version, pipeline,
	 * the update's wrapper */
	b->bytes += b->len[b->n] + strlen(q->id) + (q->index ? strlen(q->index) : 0) +
	            (q->routing ? strlen(q->routing) : 0) +
	            (q->write_routing ? strlen(q->write_routing) : 0) + 128;
	b->n++;
	return RC_OK;
}

/* ---- the sender: batches in flight ------------------------------------ */

enum flight_state { FL_FREE, FL_QUEUED, FL_SENDING, FL_DONE };

struct flight {
	struct batch b; /* owned while in flight; recycled */
	struct bulk_doc *docs;
	struct store_drift *rows;
	struct store_outcome *out;
	size_t cap; /* of docs, rows, out */
	int64_t batch_no;
	int attempts;
	int64_t t0, took_ms;
	rcode rc;
	struct rerror err;
	enum flight_state state;
	bool guard;         /* some writes are conditioned on a lookup right before the send */
	bool guarded;       /* that lookup is done (guard_writes, maybe with an earlier batch) */
	bool guarding;      /* a worker is looking it up with its own batch: not to be taken */
	bool plain_updates; /* rp->plain_updates when it was queued */
};

struct sender {
	int n;              /* workers: at most n batches are sent at once */
	pthread_t *threads; /* n */
	struct opensearch **os;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	/* n + GUARD_GROUP_MAX slots; from head, count batches in order:
	 * answered ones waiting to be committed, sending ones, queued ones. A
	 * slot more than workers lets the next batch be queued before the
	 * oldest is committed, so a worker starts it while the journal
	 * commits: the index never waits for the journal (nor for the next
	 * batch's reading and converting, which run while a batch is sent);
	 * the others let one lookup guard several queued batches */
	struct flight *ring;
	size_t slots, head, count;
	volatile int *stop;
	const struct config *cfg;
	const struct os_keys *keys; /* the lookups of guarded batches */
	const char *write_index;
	bool quit;
	bool failed; /* a batch failed: nothing after it is committed */
};

struct worker_arg {
	struct sender *s;
	int i;
};

/* A guarded batch's writes (a full run's, a resumed batch's: their
 * MongoDB reads are not the pass's, so no copy was judged): the copies
 * where they land are looked up now, after MongoDB was read, in one
 * search. A copy holding a newer version than the one read is left to
 * that newer write (decided, not sent); the others are written
 * conditionally on the copy found (if_seq_no), or created where there is
 * none. Runs on the sender's thread before the _bulk, for the batch about
 * to be sent and the guarded batches queued behind it (fl[0..nf), at most
 * GUARD_GROUP_IDS writes in all): one search of up to 1,000 ids costs
 * about a third of ten searches of 100 (docs/PERFORMANCE.md), and a write
 * that lands between the lookup and a later batch's send is still refused
 * by its if_seq_no (counted skipped_newer, as any newer write). Errors go
 * to fl[0]'s err; fl[1..] are marked guarded only on success. */
#define GUARD_GROUP_IDS 1000
#define GUARD_GROUP_MAX 10 /* batches */
static RC_MUST_CHECK rcode
guard_writes(struct sender *s, struct opensearch *os, struct flight *const *fl, size_t nf)
{
	size_t total = 0, m = 0;
	struct os_cond *c;
	struct bulk_doc **at;
	const struct qitem **qs;
	bool *plain; /* per write: its batch sends plain updates (no condition) */
	rcode rc = RC_OK;

	for (size_t g = 0; g < nf; g++)
		total += fl[g]->b.n;
	c = calloc(total ? total : 1, sizeof(*c));
	at = calloc(total ? total : 1, sizeof(*at));
	qs = calloc(total ? total : 1, sizeof(*qs));
	plain = calloc(total ? total : 1, sizeof(*plain));
	if (c == NULL || at == NULL || qs == NULL || plain == NULL)
		rc = rerror_set(&fl[0]->err, RC_ERR_NOMEM, "out of memory");
	for (size_t g = 0; rc == RC_OK && g < nf; g++)
		for (size_t i = 0; i < fl[g]->b.n; i++) {
			struct bulk_doc *d = &fl[g]->docs[i];
			if (!fl[g]->b.items[i].guard || d->decided || d->action == BULK_DELETE)
				continue;
			c[m] = (struct os_cond){.key = fl[g]->b.items[i].id,
			                        .id = d->id,
			                        .index = d->index,
			                        .routing = d->routing};
			qs[m] = &fl[g]->b.items[i];
			plain[m] = fl[g]->plain_updates;
			at[m++] = d;
		}
	if (rc == RC_OK && m)
		rc = opensearch_conditions(os, c, m, s->keys, s->write_index, false, &fl[0]->err);
	for (size_t k = 0; rc == RC_OK && k < m; k++) {
		struct bulk_doc *d = at[k];
		const char *read = qs[k]->read_version;
		if (!c[k].found) {
			d->action = BULK_CREATE; /* one that appears meanwhile is not replaced */
			continue;
		}
		if (read && diff_version_newer(c[k].version, read)) {
			char why[300];
			snprintf(why, sizeof(why),
			         "the index copy holds a newer version (%s) than the one read from "
			         "MongoDB (%s): left to the newer write",
			         c[k].version, read);
			d->decided = d->newer = true;
			d->status = 409;
			if ((d->reason = strdup(why)) == NULL)
				rc = rerror_set(&fl[0]->err, RC_ERR_NOMEM, "out of memory");
			continue;
		}
		if (!(plain[k] && d->action == BULK_UPDATE)) {
			d->if_seq_no = c[k].seq_no;
			d->if_primary_term = c[k].primary_term;
		}
	}
	for (size_t g = 0; rc == RC_OK && g < nf; g++)
		fl[g]->guarded = true;
	free(c);
	free(at);
	free(qs);
	free(plain);
	return rc;
}

/* A create refused because a document exists under its _id: a copy of
 * this document created since (left to it: newer), or a foreign writer's
 * copy under another key (the pass saw it under that key; a copy keyed by
 * a gone id under a live document's _id is that document's place:
 * docs/ENGINE.md, "Aliases and where copies live"). Asked by _id, a
 * foreign copy is overwritten, conditionally on what was found. Only
 * refused creates cost this search. */
static RC_MUST_CHECK rcode
overwrite_foreign(struct sender *s, struct opensearch *os, struct flight *f)
{
	struct os_cond *c = NULL;
	struct bulk_doc *again = NULL;
	size_t *at = NULL, m = 0, k = 0;
	rcode rc = RC_OK;

	for (size_t i = 0; i < f->b.n; i++)
		m += f->docs[i].newer && f->docs[i].action == BULK_CREATE && f->docs[i].reason &&
		     strstr(f->docs[i].reason, "document already exists");
	if (m == 0)
		return RC_OK;
	c = calloc(m, sizeof(*c));
	at = calloc(m, sizeof(*at));
	again = calloc(m, sizeof(*again));
	if (c == NULL || at == NULL || again == NULL) {
		rc = rerror_set(&f->err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	m = 0;
	for (size_t i = 0; i < f->b.n; i++) {
		struct bulk_doc *d = &f->docs[i];
		if (!(d->newer && d->action == BULK_CREATE && d->reason &&
		      strstr(d->reason, "document already exists")))
			continue;
		c[m] = (struct os_cond){
		    .key = f->b.items[i].id, .id = d->id, .index = d->index, .routing = d->routing};
		at[m++] = i;
	}
	rc = opensearch_conditions(os, c, m, s->keys, s->write_index, true, &f->err);
	for (size_t j = 0; rc == RC_OK && j < m; j++) {
		if (!c[j].found || c[j].own)
			continue; /* its own copy, created since: left to it */
		bool update = s->cfg->write_mode == WRITE_UPSERT;
		again[k] = f->docs[at[j]];
		again[k].action = update ? BULK_UPDATE : BULK_INDEX;
		again[k].reason = NULL;
		again[k].decided = again[k].newer = false;
		if (!(update && f->plain_updates)) {
			again[k].if_seq_no = c[j].seq_no;
			again[k].if_primary_term = c[j].primary_term;
		}
		at[k++] = at[j];
	}
	if (rc == RC_OK && k) {
		int attempts = 0;
		rc = opensearch_bulk_send(os, again, k, &attempts, s->stop, &f->err);
		f->attempts += attempts;
	}
	for (size_t j = 0; rc == RC_OK && j < k; j++) {
		struct bulk_doc *d = &f->docs[at[j]];
		free(d->reason);
		d->action = again[j].action;
		d->status = again[j].status;
		d->newer = again[j].newer;
		d->reason = again[j].reason;
		again[j].reason = NULL;
	}
	if (again)
		bulk_docs_reset(again, k);
out:
	free(c);
	free(at);
	free(again);
	return rc;
}

/* One copy as a real-time _mget read it (pointers into the parsed answer). */
struct got_copy {
	bool found;
	const char *index, *routing; /* routing NULL: none */
	int64_t seq_no, primary_term;
	const char *src; /* its _source, bytes as the index holds them */
	size_t src_len;
};

static bool
same_text(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static int64_t
jt_int(const struct jt *v)
{
	char text[32];
	int64_t n = 0;

	if (v == NULL || v->type != JT_NUMBER || v->raw_len >= sizeof(text))
		return 0;
	memcpy(text, v->raw, v->raw_len);
	text[v->raw_len] = '\0';
	return util_parse_i64(text, &n) == 0 ? n : 0;
}

static struct got_copy
got_copy_of(const struct jt *d)
{
	const struct jt *found = jt_get(d, "found"), *index = jt_get(d, "_index");
	const struct jt *routing = jt_get(d, "_routing"), *src = jt_get(d, "_source");
	struct got_copy c = {.found = found && found->type == JT_TRUE};

	if (!c.found)
		return c;
	c.index = index && index->type == JT_STRING ? index->str : NULL;
	c.routing = routing && routing->type == JT_STRING ? routing->str : NULL;
	c.seq_no = jt_int(jt_get(d, "_seq_no"));
	c.primary_term = jt_int(jt_get(d, "_primary_term"));
	if (src && src->type == JT_OBJECT) {
		c.src = src->raw;
		c.src_len = src->raw_len;
	}
	return c;
}

/* Whether a copy's _source (as _mget answered it) has field, a name or a
 * dotted path of object members. */
static bool
has_field(const struct jt *src, const char *field)
{
	const char *names[16];
	char buf[256];
	size_t n = 0;

	if (src == NULL || jt_get(src, field))
		return src != NULL;
	if (strlen(field) >= sizeof(buf))
		return true; /* not asked of this copy: as if it had it (left alone) */
	strcpy(buf, field);
	for (char *p = buf, *dot; n < 16; p = dot + 1) {
		names[n++] = p;
		if ((dot = strchr(p, '.')) == NULL)
			break;
		*dot = '\0';
	}
	return n == 16 || jt_path(src, names, n) != NULL;
}

/* A create still refused because a document exists under its _id that no
 * lookup found (overwrite_foreign): an index document with that _id but no
 * id field (OPENSEARCH_ID_FIELD; written by another writer or mapping, or
 * before the field was), which the pass cannot see, so the document would
 * be reported missing, and refused as "newer", on every run. The copies
 * under those _ids are read (one real-time _mget of the id field alone):
 * one without the id field is its document's place, overwritten
 * conditionally on what was read (as a foreign copy is), unless the mirror
 * has OPENSEARCH_QUERY (the copy may be outside it: another mirror's): then
 * it fails, saying what is there. A copy with the id field stays left to
 * it (its own copy, created since). */
static RC_MUST_CHECK rcode
keyless_copies(struct sender *s, struct opensearch *os, struct flight *f)
{
	const char *field = s->cfg->opensearch_id_field;
	struct os_get *gets = NULL;
	struct bulk_doc *again = NULL;
	struct buf resp = {0};
	struct jt *tree = NULL;
	size_t *at = NULL, m = 0, k = 0;
	rcode rc = RC_OK;

	for (size_t i = 0; *field && i < f->b.n; i++)
		m += f->docs[i].newer && f->docs[i].action == BULK_CREATE && f->docs[i].reason &&
		     strstr(f->docs[i].reason, "document already exists");
	if (m == 0)
		return RC_OK;
	gets = calloc(m, sizeof(*gets));
	at = calloc(m, sizeof(*at));
	again = calloc(m, sizeof(*again));
	if (gets == NULL || at == NULL || again == NULL) {
		rc = rerror_set(&f->err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	m = 0;
	for (size_t i = 0; i < f->b.n; i++) {
		struct bulk_doc *d = &f->docs[i];
		if (!(d->newer && d->action == BULK_CREATE && d->reason &&
		      strstr(d->reason, "document already exists")))
			continue;
		gets[m] = (struct os_get){.index = d->index, .id = d->id, .routing = d->routing};
		at[m++] = i;
	}
	rc = opensearch_mget(os, &resp, gets, m, &field, 1, &f->err);
	if (rc == RC_OK && jt_parse(&tree, resp.data ? resp.data : "", resp.len, &f->err))
		rc = rerror_set(&f->err, RC_ERR_OPENSEARCH, "opensearch _mget: an answer not JSON");
	const struct jt *docs = rc == RC_OK ? jt_get(tree, "docs") : NULL;
	if (rc == RC_OK && (docs == NULL || docs->type != JT_ARRAY || docs->n != m))
		rc = rerror_set(&f->err, RC_ERR_OPENSEARCH,
		                "opensearch _mget: the answer does not have the %zu docs asked", m);
	for (size_t j = 0; rc == RC_OK && j < m; j++) {
		struct got_copy c = got_copy_of(&docs->kids[j]);
		const struct jt *src = jt_get(&docs->kids[j], "_source");
		struct bulk_doc *d = &f->docs[at[j]];
		if (!c.found || has_field(src, field))
			continue;
		if (*s->cfg->opensearch_query) {
			char why[600];
			snprintf(
			    why, sizeof(why),
			    "an index document has this _id but no %.200s, so no lookup sees it "
			    "(nor OPENSEARCH_QUERY's bounds): left as it is; set "
			    "OPENSEARCH_ID_FIELD= to read ids from _id, or re-index it",
			    field);
			free(d->reason);
			d->newer = false;
			if ((d->reason = strdup(why)) == NULL)
				rc = rerror_set(&f->err, RC_ERR_NOMEM, "out of memory");
			continue;
		}
		bool update = s->cfg->write_mode == WRITE_UPSERT;
		again[k] = *d;
		again[k].action = update ? BULK_UPDATE : BULK_INDEX;
		again[k].reason = NULL;
		again[k].decided = again[k].newer = false;
		again[k].if_seq_no = again[k].if_primary_term = 0;
		if (!(update && f->plain_updates)) {
			again[k].if_seq_no = c.seq_no;
			again[k].if_primary_term = c.primary_term;
		}
		log_info(
		    "document %.200s: an index document held its _id without %.200s (no lookup "
		    "sees it): written over, as its document's place",
		    d->id, field);
		at[k++] = at[j];
	}
	if (rc == RC_OK && k) {
		int attempts = 0;
		rc = opensearch_bulk_send(os, again, k, &attempts, s->stop, &f->err);
		f->attempts += attempts;
	}
	for (size_t j = 0; rc == RC_OK && j < k; j++) {
		struct bulk_doc *d = &f->docs[at[j]];
		free(d->reason);
		d->action = again[j].action;
		d->status = again[j].status;
		d->newer = again[j].newer;
		d->reason = again[j].reason;
		again[j].reason = NULL;
	}
	if (again)
		bulk_docs_reset(again, k);
out:
	jt_free(tree);
	buf_free(&resp);
	free(gets);
	free(at);
	free(again);
	return rc;
}

static void *
sender_worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct sender *s = wa->s;
	struct opensearch *os = s->os[wa->i];

	free(wa);
	pthread_mutex_lock(&s->mu);
	while (!s->quit) {
		struct flight *f = NULL;
		for (size_t k = 0; k < s->count && f == NULL; k++) {
			struct flight *c = &s->ring[(s->head + k) % s->slots];
			if (c->state == FL_QUEUED && !c->guarding)
				f = c;
		}
		if (f == NULL) {
			pthread_cond_wait(&s->work, &s->mu);
			continue;
		}
		f->state = FL_SENDING;
		/* the guarded batches queued behind it are looked up with it */
		struct flight *grp[GUARD_GROUP_MAX];
		size_t ng = 0, ids = f->b.n;
		grp[ng++] = f;
		for (size_t k = 0; f->guard && !f->guarded && k < s->count && ng < GUARD_GROUP_MAX;
		     k++) {
			struct flight *c = &s->ring[(s->head + k) % s->slots];
			if (c->state != FL_QUEUED || c->guarding || !c->guard || c->guarded ||
			    ids + c->b.n > GUARD_GROUP_IDS)
				continue;
			c->guarding = true;
			ids += c->b.n;
			grp[ng++] = c;
		}
		pthread_mutex_unlock(&s->mu);
		f->t0 = util_mono_ms();
		f->err = (struct rerror){0};
		f->attempts = 0;
		f->rc = f->guard && !f->guarded ? guard_writes(s, os, grp, ng) : RC_OK;
		if (ng > 1) {
			pthread_mutex_lock(&s->mu);
			for (size_t k = 1; k < ng; k++)
				grp[k]->guarding = false;
			pthread_cond_broadcast(&s->work);
			pthread_mutex_unlock(&s->mu);
		}
		if (f->rc == RC_OK)
			f->rc = opensearch_bulk_send(os, f->docs, f->b.n, &f->attempts, s->stop,
			                             &f->err);
		if (f->rc == RC_OK)
			f->rc = overwrite_foreign(s, os, f);
		if (f->rc == RC_OK)
			f->rc = keyless_copies(s, os, f);
		f->took_ms = util_mono_ms() - f->t0;
		pthread_mutex_lock(&s->mu);
		f->state = FL_DONE;
		pthread_cond_broadcast(&s->done);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void
sender_free(struct sender *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->quit = true;
	pthread_cond_broadcast(&s->work);
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < s->started; i++)
		pthread_join(s->threads[i], NULL);
	for (int i = 0; s->os && i < s->n; i++)
		opensearch_free(s->os[i]);
	for (size_t i = 0; s->ring && i < s->slots; i++) {
		struct flight *f = &s->ring[i];
		if (f->docs)
			bulk_docs_reset(f->docs, f->b.n);
		batch_free(&f->b);
		free(f->docs);
		free(f->rows);
		free(f->out);
	}
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->done);
	free(s->threads);
	free(s->os);
	free(s->ring);
	free(s);
}

/* The run's sender, started at its first batch: SYNC_CONCURRENCY workers,
 * each with its own connection to the index. */
static RC_MUST_CHECK rcode
sender_get(struct repair *rp, struct sender **out)
{
	struct sender *s = rp->sender;
	int n = rp->cfg->sync_concurrency > 0 ? (int)rp->cfg->sync_concurrency : 1;
	rcode rc = RC_OK;

	*out = s;
	if (s)
		return RC_OK;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return rerror_set(rp->err, RC_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->done, NULL);
	s->n = n;
	/* n + 1, and room for the guarded batches one lookup covers */
	s->slots = (size_t)n + GUARD_GROUP_MAX;
	s->stop = rp->stop;
	s->cfg = rp->cfg;
	s->keys = rp->keys;
	s->write_index = rp->write_index;
	s->threads = calloc((size_t)n, sizeof(*s->threads));
	s->os = calloc((size_t)n, sizeof(*s->os));
	s->ring = calloc(s->slots, sizeof(*s->ring));
	if (s->threads == NULL || s->os == NULL || s->ring == NULL)
		rc = rerror_set(rp->err, RC_ERR_NOMEM, "out of memory");
	for (int i = 0; rc == RC_OK && i < n; i++)
		rc = opensearch_open(&s->os[i], rp->cfg, rp->err);
	for (int i = 0; rc == RC_OK && i < n; i++) {
		struct worker_arg *wa = malloc(sizeof(*wa));
		if (wa == NULL) {
			rc = rerror_set(rp->err, RC_ERR_NOMEM, "out of memory");
			break;
		}
		*wa = (struct worker_arg){s, i};
		if (pthread_create(&s->threads[i], NULL, sender_worker, wa)) {
			free(wa);
			rc =
			    rerror_set(rp->err, RC_ERR_NOMEM, "cannot start a _bulk sender thread");
			break;
		}
		s->started++;
	}
	if (rc) {
		sender_free(s);
		return rc;
	}
	rp->sender = s;
	*out = s;
	return RC_OK;
}

/* Commits the oldest batch in flight once it is answered: every
 * document's outcome, and (full runs) the cursor past it. After a failure
 * nothing more is committed. Errors go to err. */
static RC_MUST_CHECK rcode
finish_oldest(struct repair *rp, struct sender *s, struct rerror *err)
{
	struct flight *f = &s->ring[s->head];
	struct batch *b = &f->b;
	bool del = b->action == BATCH_DELETE;
	rcode rc = RC_OK;

	pthread_mutex_lock(&s->mu);
	while (f->state != FL_DONE)
		pthread_cond_wait(&s->done, &s->mu);
	pthread_mutex_unlock(&s->mu);

	if (s->failed) {
		/* after a failed batch: left pending, sent again on resume */
		rc = RC_OK;
	} else if (f->rc) {
		/* the batch stays pending: a resumed run sends it again */
		rc = f->rc;
		s->failed = true;
		*err = f->err;
		log_msg(LOG_ERROR, rp->run_id, "repair: %s", err->message);
		if (store_error(rp->store, rp->run_id, f->batch_no, NULL, "repair", "opensearch",
		                rcode_name(rc), err->message) ||
		    store_batch_commit(rp->store, rp->run_id, f->batch_no, BATCH_PENDING, 0, 0,
		                       f->attempts, f->took_ms))
			log_msg(LOG_ERROR, rp->run_id, "journal: cannot record the failed send");
	} else {
		/* committed with every document's outcome */
		for (size_t i = 0; i < b->n; i++) {
			int st = f->docs[i].status;
			f->out[i] = (struct store_outcome){
			    .d = rp->full && !rp->as_missing ? NULL : &f->rows[i],
			    .doc_id = b->items[i].id,
			    .ok = (st >= 200 && st < 300) || (del && st == 404),
			    .newer = f->docs[i].newer,
			    .status = st,
			    .reason = f->docs[i].reason};
			if (f->out[i].newer && b->items[i].version >= 0)
				log_msg(LOG_INFO, rp->run_id,
				        "document %s: the index holds a newer version (%" PRId64
				        "): left alone",
				        b->items[i].id, b->items[i].version);
			else if (f->out[i].newer)
				log_msg(LOG_INFO, rp->run_id, "document %s: %s", b->items[i].id,
				        f->docs[i].reason ? f->docs[i].reason
				                          : "left to a newer write");
			else if (!f->out[i].ok)
				log_msg(LOG_WARN, rp->run_id, "document %s rejected: HTTP %d: %s",
				        b->items[i].id, st,
				        f->docs[i].reason ? f->docs[i].reason : "rejected");
		}
		const struct qitem *last = &b->items[b->n - 1];
		struct store_cursor cur = {.type = doc_id_type_name(last->type),
		                           .id = last->id,
		                           .seen_types = rp->seen,
		                           .compared = rp->compared + (int64_t)b->n};
		rc = store_batch_close(rp->store, rp->run_id, f->batch_no, f->out, b->n,
		                       f->attempts, f->took_ms, rp->full ? &cur : NULL);
		if (rc) {
			rerror_set(err, RC_ERR_STORE, "journal: cannot commit batch %" PRId64,
			           f->batch_no);
			s->failed = true;
		}
		if (rc == RC_OK && rp->full) {
			char *c = strdup(last->id);
			if (c == NULL) {
				rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
				s->failed = true;
			} else {
				free(rp->cursor);
				rp->cursor = c;
				rp->cursor_type = last->type;
				rp->compared += (int64_t)b->n;
			}
		}
		if (rc == RC_OK && rp->on_commit)
			rp->on_commit(rp->on_commit_ctx);
		if (rc == RC_OK && rp->cfg->sync_batch_delay_ms > 0)
			util_sleep_ms(rp->cfg->sync_batch_delay_ms, rp->stop);
	}
	bulk_docs_reset(f->docs, b->n);
	batch_clear(b);
	f->state = FL_FREE;
	s->head = (s->head + 1) % s->slots;
	s->count--;
	return rc;
}

/* Waits for every batch in flight and commits them in order. With rc
 * already an error, that error and its message are kept. */
static RC_MUST_CHECK rcode
sender_drain(struct repair *rp, rcode rc)
{
	struct sender *s = rp->sender;
	struct rerror scratch = {0};

	while (s && s->count) {
		rcode r = finish_oldest(rp, s, rc ? &scratch : rp->err);
		if (rc == RC_OK)
			rc = r;
	}
	if (s)
		s->failed = false; /* the next entry point starts afresh */
	return rc;
}

/* The _bulk action a batch's documents go with. A write follows
 * RECONCILE_WRITE_MODE: a partial update that keeps what only the index
 * has, or the whole copy replaced. */
static enum bulk_action
bulk_action_of(const struct repair *rp, enum batch_action action)
{
	switch (action) {
	case BATCH_INDEX:
		return rp->cfg->write_mode == WRITE_UPSERT ? BULK_UPDATE : BULK_INDEX;
	case BATCH_DELETE:
		return BULK_DELETE;
	}
	return BULK_DELETE;
}

/* Makes a write conditional on the copy it judged (docs/ENGINE.md,
 * "Concurrent writers"): a delete and an overwrite on the judged copy's
 * _seq_no and _primary_term, a missing document a create. External
 * versions (OPENSEARCH_VERSION_TYPE) are the condition where set: OpenSearch
 * takes one or the other. A guarded item (no copy judged) is conditioned in
 * guard_writes, right before its send; a delete whose copy is gone is not
 * sent (a delete of nothing). */
static void
condition_write(const struct repair *rp, const struct qitem *q, struct bulk_doc *d)
{
	bool del = d->action == BULK_DELETE;

	if (del && q->gone) {
		d->decided = true;
		d->status = 404;
		return;
	}
	if (q->version >= 0 || (q->guard && !del))
		return;
	if (!del && q->kind == DRIFT_MISSING) {
		d->action = BULK_CREATE;
	} else if (q->primary_term > 0 && !(rp->plain_updates && d->action == BULK_UPDATE)) {
		/* the write lands on the copy judged, or (a moved copy) on the
		 * one move_copy read where the rule places the document */
		d->if_seq_no = q->seq_no;
		d->if_primary_term = q->primary_term;
	} else if (!del && q->write_default_index &&
	           (rp->cfg->write_mode == WRITE_INDEX || q->replace)) {
		/* a moved copy with nothing where the rule places it (move_copy
		 * read it): a copy found there now is a newer write's */
		d->action = BULK_CREATE;
	}
}

/* Upsert mode, at the first write: an index.default_pipeline (or final)
 * runs on an update only with doc_as_upsert, which OpenSearch refuses on a
 * conditional update ("compare and write operations can not be used with
 * upsert"). With one, updates stay as the live syncer sends them
 * (unconditional: the pipeline must run), and the run says so; creates,
 * deletes and the full re-index's version check stay. */
static RC_MUST_CHECK rcode
ask_index_pipeline(struct repair *rp)
{
	char *name = NULL, msg[600];
	rcode rc = opensearch_index_pipeline(rp->os, &name, rp->err);

	if (rc)
		return rc;
	rp->pipeline_asked = true;
	rp->plain_updates = name != NULL;
	if (name) {
		snprintf(
		    msg, sizeof(msg),
		    "the index runs the pipeline %.200s by default, which OpenSearch runs on an "
		    "update only with doc_as_upsert, refused on conditional updates: in upsert "
		    "mode stale copies are updated unconditionally (a copy the live syncer "
		    "writes meanwhile may be overwritten; RECONCILE_WRITE_MODE=index writes "
		    "conditionally)",
		    name);
		log_msg(LOG_WARN, rp->run_id, "%s", msg);
		if (store_event(rp->store, rp->run_id, "warning", msg))
			rc = rerror_set(rp->err, RC_ERR_STORE, "journal: cannot record an event");
	}
	free(name);
	return rc;
}

/* as_missing: the batch's documents are journaled as missing drift rows,
 * pending, in one transaction (what the pass would have written). */
static RC_MUST_CHECK rcode
journal_missing(struct repair *rp, const struct store_drift *d, size_t n)
{
	struct store_drift_row *rows = calloc(n ? n : 1, sizeof(*rows));
	rcode rc;

	if (rows == NULL)
		return RC_ERR_NOMEM;
	for (size_t i = 0; i < n; i++)
		rows[i] = (struct store_drift_row){.d = d[i], .state = DRIFT_PENDING};
	rc = store_drift_record(rp->store, rp->run_id, rows, n);
	free(rows);
	return rc;
}

/* Whether q's write replaces the copy judged (owned.h): a stale copy the
 * pass read, written where it was found, not from a resumed batch (those
 * are looked up at the send, guard_writes, and updated as before). */
static bool
replaces(const struct qitem *q)
{
	return q->kind == DRIFT_STALE && q->primary_term > 0 && !q->guard &&
	       !q->write_default_index;
}

/* With OPENSEARCH_INDEX_OWNED_FIELDS: a stale copy is replaced whole, so
 * the fields the transform no longer writes go, and its body carries the
 * owned fields' values as the copy holds them, read now in one _mget (a
 * copy written since it was judged fails the write's condition: left to
 * that write). An update could not drop a field; a script could, but
 * clusters without Painless exist. */
static RC_MUST_CHECK rcode
carry_owned(struct repair *rp, struct batch *b)
{
	struct os_get *gets = calloc(b->n ? b->n : 1, sizeof(*gets));
	size_t *at = calloc(b->n ? b->n : 1, sizeof(*at)), ng = 0, nn = 0, carried = 0;
	char **names = NULL;
	struct buf resp = {0}, src = {0};
	struct jt *tree = NULL;
	const struct jt *docs = NULL;
	rcode rc = gets && at ? owned_names(&names, &nn, rp->cfg->owned_fields) : RC_ERR_NOMEM;

	for (size_t i = 0; rc == RC_OK && i < b->n; i++) {
		struct qitem *q = &b->items[i];
		if (q->carried)
			continue; /* a moved copy: its owned fields joined it at the move */
		if (!(q->replace = replaces(q)) || nn == 0)
			continue;
		gets[ng] = (struct os_get){
		    .index = q->index, .id = q->docid ? q->docid : q->id, .routing = q->routing};
		at[ng++] = i;
	}
	if (rc) {
		rc = rerror_set(rp->err, rc, "out of memory");
		goto out;
	}
	if (ng == 0)
		goto out;
	rc = opensearch_mget(rp->os, &resp, gets, ng, (const char *const *)names, nn, rp->err);
	if (rc == RC_OK && jt_parse(&tree, resp.data ? resp.data : "", resp.len, rp->err))
		rc = rerror_set(rp->err, RC_ERR_OPENSEARCH, "opensearch _mget: %s",
		                rp->err->message);
	docs = rc == RC_OK ? jt_get(tree, "docs") : NULL;
	if (rc == RC_OK && (docs == NULL || docs->type != JT_ARRAY || docs->n != ng))
		rc =
		    rerror_set(rp->err, RC_ERR_OPENSEARCH,
		               "opensearch _mget: the answer does not have the %zu docs asked", ng);
	/* the bodies again, each asked copy's owned fields added */
	for (size_t i = 0, g = 0; rc == RC_OK && i < b->n; i++) {
		const struct jt *copy = NULL;
		size_t off = src.len, n = 0;
		if (g < ng && at[g] == i) {
			const struct jt *d = &docs->kids[g++], *found = jt_get(d, "found");
			if (found && found->type == JT_TRUE)
				copy = jt_get(d, "_source");
		}
		rc = copy ? owned_carry(&src, &n, b->src.data + b->off[i], b->len[i], copy,
		                        rp->cfg->owned_fields)
		          : buf_append(&src, b->src.data + b->off[i], b->len[i]);
		carried += n;
		b->off[i] = off;
		b->len[i] = src.len - off;
		if (rc)
			rc = rerror_set(rp->err, rc, "out of memory");
	}
	if (rc == RC_OK) {
		b->bytes += src.len - b->src.len;
		buf_free(&b->src);
		b->src = src;
		src = (struct buf){0};
		log_msg(
		    LOG_DEBUG, rp->run_id,
		    "%zu stale copies replaced with %zu fields of OPENSEARCH_INDEX_OWNED_FIELDS "
		    "carried",
		    ng, carried);
	}
out:
	free(gets);
	free(at);
	owned_names_free(names, nn);
	buf_free(&resp);
	buf_free(&src);
	jt_free(tree);
	return rc;
}

/* Journals b as pending (with its ids) and hands it to the sender; b comes
 * back empty (a recycled batch). When every slot is taken, the oldest
 * batch is committed first. batch_no > 0 re-sends that journaled batch
 * (resume). */
static RC_MUST_CHECK rcode
flush_batch(struct repair *rp, struct batch *b, int64_t batch_no)
{
	struct sender *s;
	struct flight *f;
	enum batch_action action = b->action;
	rcode rc;

	if (b->n == 0)
		return RC_OK;
	if (!rp->pipeline_asked && rp->cfg->write_mode == WRITE_UPSERT && action != BATCH_DELETE &&
	    (rc = ask_index_pipeline(rp)))
		return rc;
	if (action == BATCH_INDEX && owned_said(rp->cfg->owned_fields) && (rc = carry_owned(rp, b)))
		return rc;
	if ((rc = sender_get(rp, &s)))
		return rc;
	if (s->count == s->slots && (rc = finish_oldest(rp, s, rp->err)))
		return rc;
	if (s->failed) /* keeps the failure's own message */
		return rp->err->code
		           ? rp->err->code
		           : rerror_set(rp->err, RC_ERR_OPENSEARCH, "an earlier batch failed");
	f = &s->ring[(s->head + s->count) % s->slots];
	{ /* the slot takes the batch; b takes the slot's empty one */
		struct batch tmp = f->b;
		f->b = *b;
		*b = tmp;
		b->action = action;
	}
	if (f->cap < f->b.n) {
		size_t cap = f->b.n;
		free(f->docs);
		free(f->rows);
		free(f->out);
		f->docs = calloc(cap, sizeof(*f->docs));
		f->rows = calloc(cap, sizeof(*f->rows));
		f->out = calloc(cap, sizeof(*f->out));
		f->cap = f->docs && f->rows && f->out ? cap : 0;
		if (f->cap == 0) {
			batch_clear(&f->b);
			return rerror_set(rp->err, RC_ERR_NOMEM, "out of memory");
		}
	}
	bool del = f->b.action == BATCH_DELETE;
	enum bulk_action op = bulk_action_of(rp, f->b.action);
	/* an update runs no named pipeline: nor does a create in upsert mode,
	 * as the update it stands for would not (docs/ENGINE.md) */
	const char *pipeline =
	    *rp->cfg->pipeline && rp->cfg->write_mode == WRITE_INDEX ? rp->cfg->pipeline : NULL;
	f->guard = f->guarded = f->guarding = false;
	f->plain_updates = rp->plain_updates;
	for (size_t i = 0; i < f->b.n; i++) {
		const struct qitem *q = &f->b.items[i];
		f->rows[i] = qitem_drift(q);
		/* a copy is acted on by its own _id where that is not its key */
		f->docs[i] =
		    (struct bulk_doc){.action = q->replace ? BULK_INDEX : op,
		                      .id = q->docid ? q->docid : q->id,
		                      .index = q->write_default_index ? NULL : q->index,
		                      .routing = q->write_routing ? q->write_routing : q->routing,
		                      .source = del ? NULL : f->b.src.data + f->b.off[i],
		                      .source_len = f->b.len[i],
		                      .version = del ? -1 : q->version,
		                      .pipeline = pipeline};
		condition_write(rp, q, &f->docs[i]);
		f->guard = f->guard || (q->guard && !del && q->version < 0);
	}
	/* written as pending, with its ids, before anything is sent */
	f->batch_no = batch_no;
	bool rows = !rp->full || rp->as_missing;
	rc = rp->as_missing ? journal_missing(rp, f->rows, f->b.n) : RC_OK;
	if (rc == RC_OK)
		rc = store_batch_open(rp->store, rp->run_id, &f->batch_no, f->b.action,
		                      (int64_t)f->b.n, (int64_t)f->b.bytes,
		                      rp->full ? f->b.items[0].id : NULL,
		                      rp->full ? f->b.items[f->b.n - 1].id : NULL,
		                      rows ? f->rows : NULL, rows ? f->b.n : 0);
	if (rc) {
		batch_clear(&f->b);
		return rerror_set(rp->err, RC_ERR_STORE, "journal: cannot write batch as pending");
	}
	pthread_mutex_lock(&s->mu);
	f->state = FL_QUEUED;
	s->count++;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->mu);
	return RC_OK;
}

/* The number of the next batch: a resumed full run's pending ones first,
 * in order, then new ones (0). */
static int64_t
next_batch_no(struct repair *rp)
{
	return rp->reuse_at < rp->n_reuse ? rp->reuse[rp->reuse_at++] : 0;
}

/* Sends b when one more document of `more` bytes would pass the byte cap. */
static RC_MUST_CHECK rcode
flush_if_full(struct repair *rp, struct batch *b, size_t more)
{
	rcode rc;

	if (b->n == 0 || b->bytes + more <= (size_t)rp->cfg->sync_batch_size_bytes)
		return RC_OK;
	if ((rc = flush_batch(rp, b, next_batch_no(rp))))
		return rc;
	batch_clear(b);
	return RC_OK;
}

static RC_MUST_CHECK rcode repair_delete(struct repair *rp, const struct qitem *items, size_t n,
                                         int64_t resend_no);

/* ---- a copy moved under the routing rule's routing -------------------- */

/* Reads, in one real-time _mget, the copy where a moved document's write
 * lands (its _id under the rule's routing in the write index: an _id is
 * unique per shard, so the shard answers with whatever copy of that _id it
 * holds, under any _routing) and the copy judged, as they are now. */
static RC_MUST_CHECK rcode
move_look(struct repair *rp, const struct qitem *q, const char *routing, struct buf *resp,
          struct jt **tree, struct got_copy *there, struct got_copy *judged)
{
	const char *id = q->docid ? q->docid : q->id;
	struct os_get gets[2] = {{.index = rp->write_index, .id = id, .routing = routing},
	                         {.index = q->index, .id = id, .routing = q->routing}};
	const struct jt *docs = NULL;
	char why[600];
	rcode rc;

	*tree = NULL;
	*there = *judged = (struct got_copy){0};
	rc = opensearch_mget(rp->os, resp, gets, 2, NULL, 0, rp->err);
	if (rc == RC_OK && jt_parse(tree, resp->data ? resp->data : "", resp->len, rp->err)) {
		snprintf(why, sizeof(why), "%s", rp->err->message);
		return rerror_set(rp->err, RC_ERR_OPENSEARCH, "opensearch _mget: %s", why);
	}
	if (rc == RC_OK)
		docs = jt_get(*tree, "docs");
	if (rc == RC_OK && (docs == NULL || docs->type != JT_ARRAY || docs->n != 2))
		rc = rerror_set(rp->err, RC_ERR_OPENSEARCH,
		                "opensearch _mget: the answer does not have the 2 docs asked");
	for (size_t i = 0; rc == RC_OK && i < 2; i++)
		if (jt_get(&docs->kids[i], "error"))
			rc = rerror_set(rp->err, RC_ERR_OPENSEARCH,
			                "opensearch _mget: cannot read the copy of %.200s %s", id,
			                i ? "being moved" : "where the routing rule places it");
	if (rc == RC_OK) {
		*there = got_copy_of(&docs->kids[0]);
		*judged = got_copy_of(&docs->kids[1]);
	}
	return rc;
}

/* The copy where a moved document's write lands is another copy of it
 * under another routing than the rule's (a duplicate on that shard): the
 * write goes over it, so the pass's delete of it as a duplicate is
 * dropped, journaled. One written since the pass judged it is left to
 * that newer write (*newer says why). */
static RC_MUST_CHECK rcode
absorb_duplicate(struct repair *rp, const struct qitem *q, const struct got_copy *there,
                 const char *routing, const char **newer)
{
	const char *id = q->docid ? q->docid : q->id;
	size_t at = rp->del.n;
	char why[400];

	*newer = NULL;
	for (size_t i = 0; i < rp->del.n && at == rp->del.n; i++) {
		const struct qitem *d = &rp->del.v[i];
		if (d->kind == DRIFT_DUPLICATE && strcmp(d->id, q->id) == 0 &&
		    strcmp(d->docid ? d->docid : d->id, id) == 0 &&
		    (d->index == NULL || there->index == NULL ||
		     strcmp(d->index, there->index) == 0) &&
		    same_text(d->routing, there->routing))
			at = i;
	}
	if (at == rp->del.n)
		return RC_OK; /* not seen by the pass: written over, conditionally */
	struct qitem *d = &rp->del.v[at];
	if (d->primary_term > 0 &&
	    (d->seq_no != there->seq_no || d->primary_term != there->primary_term)) {
		*newer = "the copy where the routing rule places the document changed after it was "
		         "judged: left to the newer write";
		return RC_OK;
	}
	struct store_drift sd = qitem_drift(d);
	snprintf(why, sizeof(why),
	         "on the shard where the routing rule places its document: the document's write "
	         "under routing %.200s goes over it, not deleted",
	         routing);
	log_msg(LOG_INFO, rp->run_id, "document %s: its copy under routing %s %s", q->id,
	        d->routing ? d->routing : "(none)",
	        "is on the shard of the rule's routing: written over, not deleted");
	if (store_drift_set(rp->store, rp->run_id, &sd, DRIFT_SKIPPED, why))
		return rerror_set(rp->err, RC_ERR_STORE, "journal: cannot record a duplicate kept");
	qitem_free(d);
	memmove(d, d + 1, (rp->del.n - at - 1) * sizeof(*d));
	rp->del.n--;
	return RC_OK;
}

/* The copy judged, moved: journaled as a duplicate of its document and
 * deleted once the document's write where the rule places it was answered
 * (repair_index), conditionally on what was judged (or read just now). */
static RC_MUST_CHECK rcode
defer_delete(struct repair *rp, const struct qitem *q, const struct got_copy *judged)
{
	struct qitem old = {.id = q->id,
	                    .type = q->type,
	                    .kind = DRIFT_DUPLICATE,
	                    .index = q->index,
	                    .routing = q->routing,
	                    .docid = q->docid,
	                    .version = -1,
	                    .seq_no = q->seq_no,
	                    .primary_term = q->primary_term};
	struct store_drift d = qitem_drift(&old);

	if (old.primary_term == 0) {
		old.seq_no = judged->seq_no;
		old.primary_term = judged->primary_term;
	}
	if (store_drift_add(rp->store, rp->run_id, &d, -1, DRIFT_PENDING,
	                    "its routing is not the routing rule's: moved", NULL))
		return rerror_set(rp->err, RC_ERR_STORE, "journal: cannot record a move");
	if (idvec_push(&rp->moved, &old))
		return rerror_set(rp->err, RC_ERR_NOMEM, "out of memory");
	return RC_OK;
}

/* Upsert mode: a partial update keeps the _routing of the copy it lands
 * on, so the copy's _source (bytes as stored) is first put where the write
 * lands, under the rule's routing (conditionally on the copy there, or
 * created), and the update that follows merges into it as it would have
 * into the old copy: fields only the index has (an enrichment job's) move
 * with the document. *newer: refused as a conflict (written meanwhile). */
static RC_MUST_CHECK rcode
put_source(struct repair *rp, const struct qitem *q, const char *routing,
           const struct got_copy *there, const struct got_copy *from, const char **newer)
{
	char *src = strndup(from->src, from->src_len);
	int attempts = 0;
	rcode rc;

	*newer = NULL;
	if (src == NULL)
		return rerror_set(rp->err, RC_ERR_NOMEM, "out of memory");
	/* one NDJSON line: a raw line break is only ever blank space in JSON */
	for (char *c = src; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	struct bulk_doc put = {.action = there->found ? BULK_INDEX : BULK_CREATE,
	                       .id = q->docid ? q->docid : q->id,
	                       .routing = routing,
	                       .source = src,
	                       .source_len = from->src_len,
	                       .version = -1,
	                       .if_seq_no = there->found ? there->seq_no : 0,
	                       .if_primary_term = there->found ? there->primary_term : 0};
	rc = opensearch_bulk_send(rp->os, &put, 1, &attempts, rp->stop, rp->err);
	if (rc == RC_OK && put.newer)
		*newer = "the copy where the routing rule places the document changed after it was "
		         "read: left to the newer write";
	else if (rc == RC_OK && (put.status < 200 || put.status >= 300))
		log_msg(LOG_WARN, rp->run_id,
		        "document %s: its copy could not be carried to routing %s (HTTP %d: %s): "
		        "fields only the index had are not kept",
		        q->id, routing, put.status, put.reason ? put.reason : "rejected");
	bulk_docs_reset(&put, 1);
	free(src);
	return rc;
}

/* A moved copy's owned fields (its _source as stored: src_len bytes at src) added to body, the
 * write that takes its place. */
static RC_MUST_CHECK rcode
carry_moved(struct repair *rp, struct buf *body, const char *src, size_t src_len)
{
	struct jt *tree = NULL;
	struct buf out = {0};
	struct rerror perr = {0};
	size_t n = 0;
	rcode rc = jt_parse(&tree, src, src_len, &perr);

	if (rc == RC_ERR_INVALID) { /* not JSON: nothing to carry */
		log_msg(LOG_WARN, rp->run_id, "a moved copy's _source: %s", perr.message);
		return RC_OK;
	}
	if (rc == RC_OK)
		rc = owned_carry(&out, &n, body->data, body->len, tree, rp->cfg->owned_fields);
	if (rc == RC_OK) {
		buf_free(body);
		*body = out;
		out = (struct buf){0};
	}
	jt_free(tree);
	buf_free(&out);
	return rc ? rerror_set(rp->err, rc, "out of memory") : RC_OK;
}

/* A stale copy under another routing than the rule's (another shard), or
 * in an index other than the write index while its document has no copy
 * where the rule places it: the document is written where the rule places
 * it (routed: the batch's write, its condition set here) and the copy is
 * deleted after that write was answered, never before (rp->moved): the
 * document keeps a copy throughout (docs/ENGINE.md, "The routing rule").
 * The shard where the write lands may already hold a copy of this _id (an
 * _id is unique per shard, whatever its _routing), read right now:
 *  - the copy judged itself (both routings lead to its shard): written
 *    over, conditionally on what was judged; nothing deleted;
 *  - a copy under another wrong routing (one of the document's own
 *    duplicates, or one the pass did not see): written over, conditionally
 *    on that copy, and no longer deleted as a duplicate;
 *  - a copy under the rule's routing that the pass did not see: written
 *    since, left to that newer write (a resumed run's guarded write
 *    compares versions with it instead);
 *  - none: created (one that appears meanwhile is kept).
 * The copy judged changed since it was judged: the whole move is left to
 * that newer write (*left). */
static RC_MUST_CHECK rcode
move_copy(struct repair *rp, const struct qitem *q, const char *routing, struct qitem *routed,
          struct buf *body, bool *left)
{
	struct buf resp = {0};
	struct jt *tree = NULL;
	struct got_copy there, judged;
	const char *newer = NULL;
	bool same, placed, drop_old = true;
	rcode rc;

	*left = false;
	rc = move_look(rp, q, routing, &resp, &tree, &there, &judged);
	if (rc)
		goto out;
	same = there.found && judged.found && same_text(there.index, judged.index) &&
	       same_text(there.routing, judged.routing) && there.seq_no == judged.seq_no &&
	       there.primary_term == judged.primary_term;
	placed = there.found && !same && same_text(there.routing, routing);
	if (q->primary_term > 0 && judged.found &&
	    (judged.seq_no != q->seq_no || judged.primary_term != q->primary_term)) {
		newer = "the index copy changed after it was judged: left to the newer write";
		drop_old = false;
	} else if (placed && !q->guard) {
		newer = "a copy where the routing rule places the document was written after the "
		        "pass read the index: left to that newer write";
	} else if (there.found && !same && !placed) {
		rc = absorb_duplicate(rp, q, &there, routing, &newer);
		drop_old = newer == NULL;
	}
	const struct got_copy *from = judged.found ? &judged : &there;
	bool carry = owned_said(rp->cfg->owned_fields);
	if (rc == RC_OK && newer == NULL && carry) {
		/* OPENSEARCH_INDEX_OWNED_FIELDS (either mode): nothing is put
		 * back; the owned fields of the copy moved join the write that
		 * follows, which replaces whatever is there whole (an update
		 * would keep the leftovers, and the _routing, of a copy on the
		 * same shard), so its leftovers do not move with it */
		if (from->src)
			rc = carry_moved(rp, body, from->src, from->src_len);
		routed->replace = routed->carried = true;
	} else if (rc == RC_OK && newer == NULL && rp->cfg->write_mode == WRITE_UPSERT && !placed) {
		if (from->src)
			rc = put_source(rp, q, routing, &there, from, &newer);
	}
	/* the write: on the copy there (read just now), created where none is;
	 * in upsert mode the update after the put is unconditional, as before */
	bool whole = rp->cfg->write_mode == WRITE_INDEX || carry;
	routed->seq_no = there.found && whole ? there.seq_no : 0;
	routed->primary_term = there.found && whole ? there.primary_term : 0;
	routed->guard = q->guard && placed;
	if (rc == RC_OK && newer) {
		struct store_drift sd = qitem_drift(q);
		char why[300];
		*left = true;
		snprintf(why, sizeof(why), "skipped_newer: %s", newer);
		log_msg(LOG_INFO, rp->run_id, "document %s: not moved: %s", q->id, newer);
		if (store_drift_set(rp->store, rp->run_id, &sd, DRIFT_SKIPPED, why))
			rc = rerror_set(rp->err, RC_ERR_STORE, "journal: cannot record a skip");
	}
	if (rc == RC_OK && !same && drop_old && judged.found)
		rc = defer_delete(rp, q, &judged);
out:
	jt_free(tree);
	buf_free(&resp);
	return rc;
}

/* The external version of doc (OPENSEARCH_VERSION_TYPE=external_gte): its
 * version field in epoch ms (a date, or an ISO-8601 text), or the field's
 * own value when it is a whole number >= 0. Anything else is not guessed:
 * false, with why. */
static bool
external_version(const bson_t *doc, const char *field, int64_t *out, char *why, size_t len)
{
	bson_iter_t it;
	char text[64];
	int64_t ms;

	if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, field, &it)) {
		snprintf(why, len,
		         "no %s: OPENSEARCH_VERSION_TYPE=external_gte writes that field's value "
		         "as the document's version, so it is not written without one",
		         field);
		return false;
	}
	if (doc_version_from_bson(bson_iter_value(&it), text, sizeof(text), &ms) && ms >= 0) {
		*out = ms;
		return true;
	}
	if (ms < 0 && bson_iter_type(&it) != BSON_TYPE_UTF8 &&
	    doc_version_from_bson(bson_iter_value(&it), text, sizeof(text), &ms) &&
	    util_parse_i64(text, out) == 0 && *out >= 0)
		return true;
	bson_type_t bt = bson_iter_type(&it);
	bool number = bt == BSON_TYPE_INT32 || bt == BSON_TYPE_INT64 || bt == BSON_TYPE_DOUBLE ||
	              bt == BSON_TYPE_DECIMAL128;
	snprintf(why, len,
	         "%s is not a date nor a whole number >= 0 (%s): OPENSEARCH_VERSION_TYPE="
	         "external_gte cannot turn it into a version",
	         field,
	         bt == BSON_TYPE_DATE_TIME ? "a date before 1970: OpenSearch versions are >= 0"
	         : number ? "a negative or fractional number: OpenSearch versions are whole "
	                    "numbers >= 0"
	         : bt == BSON_TYPE_UTF8 ? "text that is not an ISO-8601 date or a whole number"
	                                : "a value of another type");
	return false;
}

bool
repair_external_version(const bson_t *doc, const char *field, int64_t *out, char *why, size_t len)
{
	return external_version(doc, field, out, why, len);
}

/* a and b, NULL and "" alike (a journal row says "" where the pass said NULL) */
static bool
same_or_none(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Whether q's copy matches OPENSEARCH_KEEP_QUERY: one lookup of its id
 * under the mirror's query and the clause (QA19 F4). */
static RC_MUST_CHECK rcode
copy_kept(struct repair *rp, const struct qitem *q, bool *kept)
{
	struct idlist found = {0};
	const char *ids[1] = {q->id};
	rcode rc;

	*kept = false;
	if (!*rp->cfg->opensearch_keep_query)
		return RC_OK;
	rc = opensearch_lookup_kept(rp->os, &found, rp->keys, rp->cfg->opensearch_keep_query, ids,
	                            1, rp->err);
	for (size_t j = 0; rc == RC_OK && j < found.n && !*kept; j++)
		*kept = strcmp(idlist_id(&found, j), q->id) == 0 &&
		        same_or_none(idlist_index(&found, j), q->index) &&
		        same_or_none(idlist_routing(&found, j), q->routing) &&
		        same_or_none(idlist_docid(&found, j), q->docid);
	idlist_free(&found);
	return rc;
}

/* A stale copy whose document the script now leaves out (transform
 * returned nil): the document exists, but no longer belongs in the index,
 * as if it had left RECONCILE_FILTER. Its copy is an orphan with that
 * reason, journaled, and under RECONCILE_ORPHANS=delete held pending (in
 * no batch) like the pass's other orphans: the brake decides on all of
 * them when the pass ends (run.c), and they are deleted where they are
 * (their index and routing). Only documents the pass sent here run the
 * script: a copy in sync by version is not looked at (docs/TRANSFORM.md).
 * A copy matching OPENSEARCH_KEEP_QUERY is kept and counted instead. */
static rcode
orphan_left_transform(struct repair *rp, const struct qitem *q)
{
	bool del = rp->cfg->orphans == ORPHANS_DELETE, kept;
	struct qitem o = *q;
	struct store_drift d;
	rcode rc = copy_kept(rp, q, &kept);

	if (rc || kept) { /* kept by the clause, whatever the reason it has no document */
		if (kept && rp->kept)
			(*rp->kept)++;
		return rc;
	}
	o.kind = DRIFT_ORPHAN;
	d = qitem_drift(&o);
	d.reason = DRIFT_REASON_TRANSFORM_NIL;
	log_msg(LOG_INFO, rp->run_id,
	        "document %s: the transform returned nil: its copy is an "
	        "orphan (%s)",
	        q->id, del ? "held for the brake, decided when the pass ends" : "reported");
	/* pending and in no batch: held like every orphan of the pass, and
	 * deleted (or kept) by the brake's decision at its end (QA: a script
	 * returning nil by mistake emptied the index past the brake) */
	if (store_drift_add(rp->store, rp->run_id, &d, -1, del ? DRIFT_PENDING : DRIFT_REPORTED,
	                    NULL, NULL) ||
	    store_run_recount_due(rp->store, rp->run_id))
		return rerror_set(rp->err, RC_ERR_STORE, "journal: cannot record an orphan");
	return RC_OK;
}

/* Converts doc and adds it to b, flushing b first when the document would
 * pass the byte cap and after when it reaches the count cap (unless
 * `whole`: a resent batch goes as one). A document that cannot be sent
 * (its id over the _id limit, not convertible) fails alone, before
 * anything is sent. */
static RC_MUST_CHECK rcode
batch_add_doc(struct repair *rp, struct batch *b, struct buf *json, const bson_t *doc,
              const struct qitem *q, bool whole)
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
		return fail_item(rp, q, "id_too_long", msg);
	}
	char *routing = NULL;
	bool skip = false;
	buf_reset(json);
	/* the body the live pipeline writes: RECONCILE_FIELDS/EXCLUDE/RENAME
	 * and RECONCILE_TRANSFORM, or the document as MAPPING.md says */
	rc = transform_apply(rp->tf, doc, rp->id_field, q->id, json, &routing, &skip, &cerr);
	if (rc == RC_ERR_NOMEM)
		return rerror_set(rp->err, rc, "out of memory converting %s", q->id);
	if (rc) {
		char msg[700];
		snprintf(msg, sizeof(msg), "%s: %s",
		         transform_active(rp->tf) ? "the transform failed"
		                                  : "cannot convert the document to JSON",
		         cerr.message);
		return transform_scripted(rp->tf) ? fail_transform(rp, q, rcode_name(rc), msg)
		                                  : fail_item(rp, q, rcode_name(rc), msg);
	}
	rp->tf_failed_in_row = 0;
	if (skip) {
		/* the script leaves it out of the index, like RECONCILE_FILTER:
		 * nothing to write, and a copy it has is an orphan */
		struct store_drift d = qitem_drift(q);
		rp->left_out++;
		if (q->kind >= 0 && store_drift_set(rp->store, rp->run_id, &d, DRIFT_SKIPPED,
		                                    "the transform leaves it out of the index"))
			return rerror_set(rp->err, RC_ERR_STORE, "journal: cannot record a skip");
		return q->kind == DRIFT_STALE ? orphan_left_transform(rp, q) : RC_OK;
	}
	struct qitem routed = *q;
	char read[64];
	routed.version = -1;
	if (q->guard && *rp->cfg->version_field) {
		/* the version read, for the lookup right before the write */
		bson_iter_t it;
		int64_t ms;
		if (bson_iter_init(&it, doc) &&
		    bson_iter_find_descendant(&it, rp->cfg->version_field, &it) &&
		    doc_version_from_bson(bson_iter_value(&it), read, sizeof(read), &ms))
			routed.read_version = read;
	}
	if (rp->cfg->version_type == VERSION_EXTERNAL_GTE) {
		char why[300];
		if (!external_version(doc, rp->cfg->version_field, &routed.version, why,
		                      sizeof(why))) {
			free(routing);
			return fail_item(rp, q, "no_version", why);
		}
	}
	/* a copy without _routing lives where its _id routes it */
	const char *was = q->routing ? q->routing : q->docid ? q->docid : q->id;
	if (routing && q->kind == DRIFT_STALE && (strcmp(was, routing) != 0 || q->misplaced)) {
		/* the copy lives under another routing (another shard), or in an
		 * index other than the write index while the document has no copy
		 * where the rule places it: remove it first, journaled, then write
		 * the document where the routing rule says (the other order would
		 * delete the fresh write in a one-shard index) */
		bool left = false;
		rc = move_copy(rp, q, routing, &routed, json, &left);
		if (rc || left) {
			free(routing);
			return rc;
		}
		routed.write_default_index = true;
	}
	if (routing)
		routed.write_routing = routing; /* the journal keeps the copy's key */
	if (!whole && (rc = flush_if_full(rp, b, json->len + idlen + 64))) {
		free(routing);
		return rc;
	}
	rc = batch_add(b, &routed, json);
	free(routing);
	if (rc)
		return rerror_set(rp->err, rc, "out of memory");
	if (!whole && b->n >= (size_t)rp->cfg->sync_batch_size) {
		if ((rc = flush_batch(rp, b, next_batch_no(rp))))
			return rc;
		batch_clear(b);
	}
	return RC_OK;
}

/* ---- repair of a list of ids ---------------------------------------- */

struct fetch_ctx {
	struct repair *rp;
	struct batch *b;
	struct buf json;
	struct buf idtext;
	rcode rc;
	/* the requested items, and an index of them sorted by id for lookups */
	const struct qitem *items;
	bool *found;
	size_t *order;
	size_t n;
	bool whole;
};

/* An item's id and place, sorted by id: the context qsort cannot pass (a
 * static would be shared by the runs of mirrors that overlap). */
struct id_ref {
	const char *id;
	size_t idx;
};

static int
cmp_refs(const void *a, const void *b)
{
	const char *x = ((const struct id_ref *)a)->id, *y = ((const struct id_ref *)b)->id;

	return diff_compare(x, strlen(x), y, strlen(y));
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

static int
on_fetched(void *ctx, const bson_t *doc)
{
	struct fetch_ctx *c = ctx;
	bson_iter_t it;
	enum id_type type;
	int k;

	if (*c->rp->stop) {
		/* stop between batches; what is not sent stays pending drift */
		c->rc = rerror_set(c->rp->err, RC_ERR_CANCELLED, "stopped");
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
	c->rc = batch_add_doc(c->rp, c->b, &c->json, doc, &c->items[k], c->whole);
	return c->rc != RC_OK;
}

/* A document MongoDB will not even be asked for (its _id refused in a
 * query): it fails alone, the others are fetched. */
static void
on_refused(void *ctx, size_t index, const char *reason)
{
	struct fetch_ctx *c = ctx;
	char msg[700];

	if (c->rc || index >= c->n)
		return;
	c->found[index] = true; /* not "no longer in MongoDB": it could not be asked */
	snprintf(msg, sizeof(msg), "MongoDB refused a query for this _id: %s", reason);
	c->rc = fail_item(c->rp, &c->items[index], "query_refused", msg);
}

/* Fetches the documents of items from MongoDB and indexes them in batches.
 * With resend_no > 0 all of them form that one journaled batch. Ids no
 * longer in MongoDB are marked skipped. */
static RC_MUST_CHECK rcode
repair_index(struct repair *rp, const struct qitem *items, size_t n, int64_t resend_no)
{
	struct batch b = {.action = BATCH_INDEX};
	struct fetch_ctx c = {.rp = rp, .b = &b, .whole = resend_no > 0};
	size_t step = REPAIR_QUEUE_MAX;
	bool *found = calloc(n ? n : 1, sizeof(bool));
	size_t *order = malloc((n < step ? (n ? n : 1) : step) * sizeof(size_t));
	struct id_ref *refs = malloc((n < step ? (n ? n : 1) : step) * sizeof(*refs));
	rcode rc = RC_OK;

	if (found == NULL || order == NULL || refs == NULL) {
		rc = rerror_set(rp->err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t at = 0; rc == RC_OK && at < n && !*rp->stop; at += step) {
		size_t m = n - at < step ? n - at : step;
		bson_t arr = BSON_INITIALIZER;
		char key[16];
		const char *kp;
		for (size_t i = 0; i < m && rc == RC_OK; i++) {
			bson_uint32_to_string((uint32_t)i, &kp, key, sizeof(key));
			rc = doc_id_append(&arr, kp, items[at + i].id, items[at + i].type);
			refs[i] = (struct id_ref){items[at + i].id, i};
		}
		if (rc)
			rc = rerror_set(rp->err, rc, "id %s cannot be rebuilt", items[at].id);
		qsort(refs, m, sizeof(*refs), cmp_refs);
		for (size_t i = 0; i < m; i++)
			order[i] = refs[i].idx;
		c.items = items + at;
		c.found = found + at;
		c.order = order;
		c.n = m;
		if (rc == RC_OK)
			rc = mongo_fetch(rp->mongo, &arr, NULL, m <= rp->point_max, on_fetched,
			                 on_refused, &c, rp->err);
		bson_destroy(&arr);
		if (rc == RC_OK)
			rc = c.rc;
	}
	bool empty = b.n == 0;
	if (rc == RC_OK && !*rp->stop)
		rc = flush_batch(rp, &b, resend_no);
	rc = sender_drain(rp, rc);
	if (rc == RC_OK && !*rp->stop && resend_no > 0 && empty &&
	    store_batch_commit(rp->store, rp->run_id, resend_no, BATCH_COMMITTED, 0, 0, 0, 0))
		rc = rerror_set(rp->err, RC_ERR_STORE, "journal: cannot commit batch %" PRId64,
		                resend_no);
	/* what MongoDB no longer has cannot be indexed: left alone */
	for (size_t i = 0; rc == RC_OK && !*rp->stop && i < n; i++) {
		struct store_drift d = qitem_drift(&items[i]);
		if (!found[i] && items[i].kind >= 0 &&
		    store_drift_set(
		        rp->store, rp->run_id, &d, DRIFT_SKIPPED,
		        mongo_filtered(rp->mongo)
		            ? "no longer in MongoDB, or no longer matches RECONCILE_FILTER"
		            : "no longer in MongoDB"))
			rc = rerror_set(rp->err, RC_ERR_STORE, "journal: cannot record a skip");
	}
	/* the copies moved, now that their documents' writes were answered
	 * (what stays pending here is found again by the next run) */
	if (rc == RC_OK && !*rp->stop && rp->moved.n)
		rc = repair_delete(rp, rp->moved.v, rp->moved.n, 0);
	idvec_clear(&rp->moved);
out:
	free(found);
	free(order);
	free(refs);
	buf_free(&c.json);
	buf_free(&c.idtext);
	batch_free(&b);
	return rc;
}

/* Whether copy j of l is the one item q deletes. */
static bool
is_copy(const struct idlist *l, size_t j, const struct qitem *q)
{
	const char *index = idlist_index(l, j);

	return strcmp(idlist_target(l, j), q->docid ? q->docid : q->id) == 0 &&
	       (q->index == NULL || index == NULL || strcmp(index, q->index) == 0) &&
	       same_text(idlist_routing(l, j), q->routing);
}

/* The first copy of key in l (in key order), or l->n. */
static size_t
first_of(const struct idlist *l, const char *key)
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

/* The safety net of duplicate deletes (the first rule: a document MongoDB
 * holds is never deleted from the index), whatever order the repairs came
 * in and whatever failed before: an extra copy is deleted only while
 * another copy of its document is known to exist. The copies of the
 * duplicates' ids are looked up now, after a refresh (a search sees the
 * writes this run just made only then); of a document whose every copy
 * would go, one is kept (*spare[i]), journaled skipped with why, not
 * failed. *spare stays NULL when nothing is spared. */
static RC_MUST_CHECK rcode
spare_last_copies(struct repair *rp, const struct qitem *items, size_t n, bool **spare)
{
	const char **keys = calloc(n ? n : 1, sizeof(*keys));
	size_t *at = calloc(n ? n : 1, sizeof(*at)), nk = 0, kept = 0;
	bool *going = NULL, *sp = calloc(n ? n : 1, sizeof(*sp));
	struct idlist l = {0};
	rcode rc = keys && at && sp ? RC_OK : rerror_set(rp->err, RC_ERR_NOMEM, "out of memory");

	*spare = NULL;
	for (size_t i = 0; rc == RC_OK && i < n; i++)
		if (items[i].kind == DRIFT_DUPLICATE)
			keys[nk++] = items[i].id;
	if (rc || nk == 0 || rp->keys == NULL)
		goto out;
	rc = opensearch_refresh(rp->os, rp->err);
	if (rc == RC_OK)
		rc = opensearch_lookup(rp->os, &l, rp->keys, keys, nk, rp->err);
	if (rc == RC_ERR_NOTFOUND) { /* no index: nothing to delete */
		*rp->err = (struct rerror){0};
		rc = RC_OK;
		goto out;
	}
	if (rc == RC_OK && (going = calloc(l.n ? l.n : 1, sizeof(*going))) == NULL)
		rc = rerror_set(rp->err, RC_ERR_NOMEM, "out of memory");
	/* the copies the deletes would remove */
	for (size_t i = 0; rc == RC_OK && i < n; i++) {
		at[i] = l.n;
		if (items[i].kind != DRIFT_DUPLICATE)
			continue;
		size_t len = strlen(items[i].id);
		for (size_t j = first_of(&l, items[i].id);
		     j < l.n &&
		     diff_compare(idlist_id(&l, j), l.v[j].id_len, items[i].id, len) == 0;
		     j++)
			if (!going[j] && is_copy(&l, j, &items[i])) {
				going[j] = true;
				at[i] = j;
				break;
			}
	}
	/* a document left with none: the first of its copies asked for stays */
	for (size_t i = 0; rc == RC_OK && i < n; i++) {
		if (at[i] == l.n)
			continue; /* not a duplicate, or its copy is gone already */
		bool stays = false;
		size_t len = strlen(items[i].id);
		for (size_t j = first_of(&l, items[i].id);
		     !stays && j < l.n &&
		     diff_compare(idlist_id(&l, j), l.v[j].id_len, items[i].id, len) == 0;
		     j++)
			stays = !going[j];
		if (stays)
			continue;
		struct store_drift d = qitem_drift(&items[i]);
		sp[i] = true;
		going[at[i]] = false;
		kept++;
		log_msg(LOG_WARN, rp->run_id,
		        "document %s: its copy under routing %s is the only one left in the index: "
		        "kept, not deleted",
		        items[i].id, items[i].routing ? items[i].routing : "(none)");
		if (store_drift_set(rp->store, rp->run_id, &d, DRIFT_SKIPPED,
		                    "the only copy of its document left in the index: kept, not "
		                    "deleted"))
			rc =
			    rerror_set(rp->err, RC_ERR_STORE, "journal: cannot record a copy kept");
	}
out:
	if (rc == RC_OK && kept) {
		*spare = sp;
		sp = NULL;
	}
	idlist_free(&l);
	free(keys);
	free(at);
	free(going);
	free(sp);
	return rc;
}

static RC_MUST_CHECK rcode
repair_delete(struct repair *rp, const struct qitem *items, size_t n, int64_t resend_no)
{
	struct batch b = {.action = BATCH_DELETE};
	bool *spare = NULL, empty;
	rcode rc = spare_last_copies(rp, items, n, &spare);

	for (size_t i = 0; rc == RC_OK && i < n && !*rp->stop; i++) {
		if (spare && spare[i])
			continue;
		if ((rc = batch_add(&b, &items[i], NULL))) {
			rc = rerror_set(rp->err, rc, "out of memory");
			break;
		}
		if (resend_no <= 0 && b.n >= (size_t)rp->cfg->sync_batch_size) {
			rc = flush_batch(rp, &b, 0);
			batch_clear(&b);
		}
	}
	empty = b.n == 0;
	if (rc == RC_OK && !*rp->stop)
		rc = flush_batch(rp, &b, resend_no);
	rc = sender_drain(rp, rc);
	/* a resumed batch whose every copy was kept: done as it is */
	if (rc == RC_OK && !*rp->stop && resend_no > 0 && empty &&
	    store_batch_commit(rp->store, rp->run_id, resend_no, BATCH_COMMITTED, 0, 0, 0, 0))
		rc = rerror_set(rp->err, RC_ERR_STORE, "journal: cannot commit batch %" PRId64,
		                resend_no);
	free(spare);
	batch_free(&b);
	return rc;
}

rcode
repair_flush(struct repair *rp)
{
	rcode rc = RC_OK;

	if (rp->fix.n)
		rc = repair_index(rp, rp->fix.v, rp->fix.n, 0);
	if (rc == RC_OK && rp->del.n)
		rc = repair_delete(rp, rp->del.v, rp->del.n, 0);
	if (rc == RC_OK && *rp->stop)
		rc = rerror_set(rp->err, RC_ERR_CANCELLED, "stopped");
	idvec_clear(&rp->fix);
	idvec_clear(&rp->del);
	return rc;
}

/* ---- resume: re-send pending batches --------------------------------- */

static int
on_batch_id(void *ctx, const struct store_drift *d)
{
	enum id_type t;

	if (doc_id_type_parse(d->id_type, &t))
		return 0; /* a conflict row's "int+string": never in a batch */
	struct qitem q = {.id = (char *)d->doc_id,
	                  .type = t,
	                  .kind = (int)d->kind,
	                  .index = (char *)d->os_index,
	                  .routing = (char *)d->routing,
	                  .docid = (char *)d->os_id,
	                  .guard = true}; /* the copy judged is not journaled */
	return idvec_push(ctx, &q) != RC_OK;
}

/* An orphan whose judgement MongoDB can take back: not one the transform
 * leaves out (its document is there on purpose). */
static bool
asked_again(const struct qitem *q)
{
	return q->kind == DRIFT_ORPHAN && !q->left_by_transform;
}

/* A delete judged a while ago (a resumed run's pending batch, or held
 * orphans sent when the pass ends) may be old: an orphan of then may have a
 * document now (the live syncer wrote it back, a restore). Asks MongoDB
 * again and keeps in v only the copies still to delete; the others are
 * journaled skipped, never deleted (the first rule). Duplicates (extra
 * copies of a document) stay: deleting them never removes the document's
 * own copy. */
static RC_MUST_CHECK rcode
recheck_orphans(struct repair *rp, struct idvec *v)
{
	const char **texts = calloc(v->n ? v->n : 1, sizeof(*texts));
	bool *exists = calloc(v->n ? v->n : 1, sizeof(*exists));
	size_t n = 0, kept = 0;
	rcode rc = texts && exists ? RC_OK : rerror_set(rp->err, RC_ERR_NOMEM, "out of memory");

	for (size_t i = 0; rc == RC_OK && i < v->n; i++)
		if (asked_again(&v->v[i]))
			texts[n++] = v->v[i].id;
	if (rc == RC_OK && n && rp->mongo_exists)
		rc = rp->mongo_exists(rp->on_commit_ctx, texts, n, exists, rp->err);
	if (rc) {
		free(texts);
		free(exists);
		return rc;
	}
	/* compacts v whatever happens below, so each item is freed once */
	for (size_t i = 0, k = 0; i < v->n; i++) {
		bool back = asked_again(&v->v[i]) && exists[k++];
		if (back) {
			struct store_drift d = qitem_drift(&v->v[i]);
			log_msg(LOG_INFO, rp->run_id,
			        "%s is in MongoDB again: its delete is not sent", v->v[i].id);
			if (rc == RC_OK &&
			    (rc = store_drift_set(rp->store, rp->run_id, &d, DRIFT_SKIPPED,
			                          "in MongoDB again before its delete was sent: "
			                          "not deleted")))
				rc = rerror_set(rp->err, rc,
				                "journal: cannot record a skipped delete");
			qitem_free(&v->v[i]);
			continue;
		}
		v->v[kept++] = v->v[i];
	}
	v->n = kept;
	free(texts);
	free(exists);
	return rc;
}

/* Deletes whose copy's _seq_no the journal does not keep (held orphans, a
 * resumed batch's): the copies are looked up (one search) BEFORE MongoDB is
 * asked again (recheck_orphans), so a copy a live insert writes back after
 * that question has another _seq_no and its conditional delete is refused.
 * A copy not found is gone: its delete is not sent. */
static RC_MUST_CHECK rcode
condition_deletes(struct repair *rp, struct idvec *v)
{
	struct os_cond *c = calloc(v->n ? v->n : 1, sizeof(*c));
	size_t *at = calloc(v->n ? v->n : 1, sizeof(*at)), m = 0;
	rcode rc = c && at ? RC_OK : rerror_set(rp->err, RC_ERR_NOMEM, "out of memory");

	for (size_t i = 0; rc == RC_OK && rp->keys && i < v->n; i++) {
		const struct qitem *q = &v->v[i];
		if (q->primary_term > 0)
			continue; /* judged by this run's pass */
		c[m] = (struct os_cond){.key = q->id,
		                        .id = q->docid ? q->docid : q->id,
		                        .index = q->index,
		                        .routing = q->routing};
		at[m++] = i;
	}
	if (rc == RC_OK && m)
		rc = opensearch_conditions(rp->os, c, m, rp->keys, rp->write_index, false, rp->err);
	for (size_t k = 0; rc == RC_OK && k < m; k++) {
		struct qitem *q = &v->v[at[k]];
		q->gone = !c[k].found;
		q->seq_no = c[k].seq_no;
		q->primary_term = c[k].primary_term;
	}
	free(c);
	free(at);
	return rc;
}

rcode
repair_recheck_deletes(struct repair *rp)
{
	rcode rc = condition_deletes(rp, &rp->del);

	return rc ? rc : recheck_orphans(rp, &rp->del);
}

rcode
repair_resend_pending(struct repair *rp)
{
	struct store_pending *p = NULL;
	size_t n = 0;
	struct idvec v = {0};
	rcode rc;

	if (rp->full)
		return RC_OK; /* a full run re-reads its pending range from the cursor */
	rc = store_batches_pending(rp->store, rp->run_id, &p, &n);
	if (rc)
		return rerror_set(rp->err, rc, "journal: cannot read pending batches");
	for (size_t i = 0; rc == RC_OK && i < n && !*rp->stop; i++) {
		char detail[64];
		idvec_clear(&v);
		rc = store_batch_ids(rp->store, rp->run_id, p[i].batch_no, on_batch_id, &v);
		if (rc == RC_OK) {
			snprintf(detail, sizeof(detail), "batch %" PRId64 " (%zu ids)",
			         p[i].batch_no, v.n);
			rc = store_event(rp->store, rp->run_id, "resend", detail);
		}
		if (rc) {
			rc = rerror_set(rp->err, rc, "journal: cannot read pending batch %" PRId64,
			                p[i].batch_no);
			break;
		}
		log_msg(LOG_INFO, rp->run_id, "re-sending pending %s", detail);
		if (p[i].action != BATCH_DELETE) {
			rc = repair_index(rp, v.v, v.n, p[i].batch_no);
			continue;
		}
		rc = condition_deletes(rp, &v);
		if (rc == RC_OK)
			rc = recheck_orphans(rp, &v);
		if (rc == RC_OK && v.n == 0) {
			/* nothing left to delete: the batch is done as it is */
			if ((rc = store_batch_commit(rp->store, rp->run_id, p[i].batch_no,
			                             BATCH_COMMITTED, 0, 0, 0, 0)))
				rc = rerror_set(rp->err, rc,
				                "journal: cannot close an emptied batch");
		} else if (rc == RC_OK) {
			rc = repair_delete(rp, v.v, v.n, p[i].batch_no);
		}
	}
	idvec_free(&v);
	free(p);
	return rc;
}

/* ---- the full re-index ------------------------------------------------ */

rcode
repair_full(struct repair *rp)
{
	struct batch b = {.action = BATCH_INDEX};
	struct buf json = {0}, idtext = {0};
	struct mongo_scan *scan = NULL;
	rcode rc;

	rc = mongo_scan_open(&scan, rp->mongo, rp->cursor, rp->cursor_type, NULL, true,
	                     MONGO_FETCH_BATCH_DOCS, true, rp->err);
	while (rc == RC_OK && !*rp->stop) {
		const bson_t *doc;
		bson_iter_t it;
		enum id_type type;
		rc = mongo_scan_next(scan, &doc, rp->err);
		if (rc || doc == NULL)
			break;
		if (!bson_iter_init_find(&it, doc, "_id"))
			continue;
		buf_reset(&idtext);
		if ((rc = doc_id_canonical(bson_iter_value(&it), &idtext, &type))) {
			rc = rerror_set(rp->err, rc, "mongodb: an _id that cannot be read");
			break;
		}
		/* written conditionally on the copy found right before the send */
		struct qitem q = {.id = idtext.data,
		                  .type = type,
		                  .kind = rp->as_missing ? DRIFT_MISSING : -1,
		                  .guard = true};
		if (memchr(idtext.data, '\0', idtext.len)) {
			/* cut at the NUL it would overwrite another document's copy */
			for (size_t i = 0; i < idtext.len; i++)
				if (idtext.data[i] == '\0')
					idtext.data[i] = '?';
			rc =
			    fail_item(rp, &q, "id_nul",
			              "the _id holds a NUL character, which this reconciler cannot "
			              "carry: it is not written");
			continue;
		}
		rc = batch_add_doc(rp, &b, &json, doc, &q, false);
	}
	if (rc == RC_OK && !*rp->stop && b.n)
		rc = flush_batch(rp, &b, next_batch_no(rp));
	rc = sender_drain(rp, rc);
	/* a resumed run's pending numbers that this run did not need (documents
	 * deleted from MongoDB meanwhile): nothing was left to send in them */
	for (int64_t no; rc == RC_OK && !*rp->stop && (no = next_batch_no(rp)) > 0;)
		if (store_batch_commit(rp->store, rp->run_id, no, BATCH_COMMITTED, 0, 0, 0, 0))
			rc = rerror_set(rp->err, RC_ERR_STORE,
			                "journal: cannot commit batch %" PRId64, no);
	mongo_scan_free(scan);
	batch_free(&b);
	buf_free(&json);
	buf_free(&idtext);
	return rc;
}
