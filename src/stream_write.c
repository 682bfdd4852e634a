/*
 * stream_write.c: live sync's batch (stream_int.h): the changes gathered
 * from the change stream, one per document (its last), and their write to
 * the index through the repairs' write path. Design: stream.c's comment;
 * the journal's commit of a written batch is stream.c's (commit_place).
 *
 * A batch is written in one _bulk request: with RECONCILE_FILTER its
 * documents are fetched again under the filter (one $in, as repairs
 * fetch; not found: deleted or out of the filter, so deleted here), the
 * transform gives each body and routing (nil: deleted), the copies of its
 * ids are looked up (one search), and the request deletes every copy not
 * where its document's write lands (a delete's, a moved routing's, another
 * backing index's) before that write.
 *
 * Every action is conditional on the copy looked up (docs/ENGINE.md,
 * "Concurrent writers"): a write over a copy and a delete carry its
 * if_seq_no and if_primary_term, a write where there is none is a create.
 * A run (or any writer) that changed the copy since makes OpenSearch
 * refuse it (409): the document is then read again from MongoDB, its
 * copies looked up again and written again, conditionally, up to
 * STREAM_REREADS times. The stream's document is MongoDB's newest at its
 * read, so what MongoDB holds at the re-read wins, whichever wrote first.
 * A search sees a write only after the next refresh: where the stream
 * wrote a document lately, and at a re-read, the copy where the write
 * lands is read by a real-time _mget instead.
 */
#include "stream_int.h"

#include "diff.h"
#include "log.h"
#include "mongo.h"
#include "opensearch.h"
#include "repair.h"
#include "transform.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the recent writes ------------------------------------------------- */

static size_t
recent_hash(const char *id)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (const unsigned char *c = (const unsigned char *)id; *c; c++)
		h = (h ^ *c) * 1099511628211ULL;
	return (size_t)h;
}

/* The slot of id in g (its entry, or the empty slot where it goes). */
static size_t
recent_slot(const struct recent_gen *g, const char *id)
{
	size_t i = recent_hash(id) & (g->cap - 1);

	while (g->id[i] && strcmp(g->id[i], id) != 0)
		i = (i + 1) & (g->cap - 1);
	return i;
}

static void
recent_gen_free(struct recent_gen *g)
{
	for (size_t i = 0; i < g->cap; i++) {
		free(g->id[i]);
		free(g->routing[i]);
	}
	free(g->id);
	free(g->routing);
	*g = (struct recent_gen){0};
}

void
stream_recent_free(struct stream *st)
{
	recent_gen_free(&st->recent.cur);
	recent_gen_free(&st->recent.old);
}

/* Whether id was written lately; *routing then its routing (NULL: by _id). */
static bool
recent_get(const struct stream *st, const char *id, const char **routing)
{
	const struct recent_gen *gens[2] = {&st->recent.cur, &st->recent.old};

	for (int k = 0; k < 2; k++) {
		const struct recent_gen *g = gens[k];
		if (g->cap == 0)
			continue;
		size_t i = recent_slot(g, id);
		if (g->id[i]) {
			*routing = g->routing[i];
			return true;
		}
	}
	return false;
}

/* Remembers id written under routing (NULL: by _id). */
static RC_MUST_CHECK rcode
recent_put(struct stream *st, const char *id, const char *routing)
{
	struct recent_gen *g = &st->recent.cur;
	char *r = NULL;

	if (g->cap == 0 || g->n >= RECENT_MAX) {
		recent_gen_free(&st->recent.old);
		st->recent.old = *g;
		*g = (struct recent_gen){0};
		g->cap = RECENT_MAX * 2; /* at most half full */
		g->id = calloc(g->cap, sizeof(*g->id));
		g->routing = calloc(g->cap, sizeof(*g->routing));
		if (g->id == NULL || g->routing == NULL) {
			recent_gen_free(g);
			return rerror_set(&st->err, RC_ERR_NOMEM, "out of memory");
		}
	}
	size_t i = recent_slot(g, id);
	if (routing && (r = strdup(routing)) == NULL)
		return rerror_set(&st->err, RC_ERR_NOMEM, "out of memory");
	if (g->id[i] == NULL) {
		if ((g->id[i] = strdup(id)) == NULL) {
			free(r);
			return rerror_set(&st->err, RC_ERR_NOMEM, "out of memory");
		}
		g->n++;
	}
	free(g->routing[i]);
	g->routing[i] = r;
	return RC_OK;
}

/* ---- the batch ------------------------------------------------------------ */

static void
sev_free(struct sev *e)
{
	free(e->id);
	if (e->doc)
		bson_destroy(e->doc);
	buf_free(&e->body);
	free(e->routing);
	free(e->why);
	*e = (struct sev){0};
}

void
stream_batch_clear(struct stream *st)
{
	for (size_t i = 0; i < st->n; i++)
		sev_free(&st->ev[i]);
	st->n = 0;
	st->bytes = 0;
	st->first_ms = 0;
}

/* Adds one change (doc copied; NULL: none). */
rcode
stream_batch_add(struct stream *st, const char *id, enum id_type type, enum sev_op op,
                 const bson_t *doc)
{
	struct sev *e;

	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 128;
		struct sev *v = realloc(st->ev, cap * sizeof(*v));
		if (v == NULL)
			return rerror_set(&st->err, RC_ERR_NOMEM, "out of memory");
		st->ev = v;
		st->cap = cap;
	}
	e = &st->ev[st->n];
	*e = (struct sev){.type = type, .op = op, .seq = st->seq++, .events = 1, .version = -1};
	e->id = strdup(id);
	e->doc = doc ? bson_copy(doc) : NULL;
	if (e->id == NULL || (doc && e->doc == NULL)) {
		sev_free(e);
		return rerror_set(&st->err, RC_ERR_NOMEM, "out of memory");
	}
	if (st->n == 0)
		st->first_ms = util_mono_ms();
	st->n++;
	st->bytes += strlen(id) + (doc ? doc->len : 0) + 64;
	return RC_OK;
}

static int
cmp_sev(const void *a, const void *b)
{
	const struct sev *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	if (c == 0)
		c = (int)x->type - (int)y->type;
	if (c == 0)
		c = x->seq < y->seq ? -1 : x->seq > y->seq;
	return c;
}

/* Sorts the batch by id and keeps each document's last change (its
 * events counted on it). */
static void
batch_dedupe(struct stream *st)
{
	size_t k = 0;

	qsort(st->ev, st->n, sizeof(*st->ev), cmp_sev);
	for (size_t i = 0; i < st->n; i++) {
		if (k > 0 && strcmp(st->ev[k - 1].id, st->ev[i].id) == 0 &&
		    st->ev[k - 1].type == st->ev[i].type) {
			int64_t events = st->ev[k - 1].events + st->ev[i].events;
			sev_free(&st->ev[k - 1]);
			st->ev[k - 1] = st->ev[i];
			st->ev[k - 1].events = events;
			continue;
		}
		st->ev[k++] = st->ev[i];
	}
	st->n = k;
}

/* The batch's change of (id, type); -1 when none (it is sorted). */
static long
batch_find(const struct stream *st, const char *id, enum id_type type)
{
	size_t lo = 0, hi = st->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(st->ev[mid].id, id);
		if (c == 0)
			c = (int)st->ev[mid].type - (int)type;
		if (c < 0)
			lo = mid + 1;
		else if (c > 0)
			hi = mid;
		else
			return (long)mid;
	}
	return -1;
}

/* ---- writing a batch -------------------------------------------------------- */

/* Re-reads of a document whose conditional write met a newer copy, before
 * it fails (another writer writes it at the same moment, again and again). */
#define STREAM_REREADS 3

/* Whether the batch's change e is written in the round being written. */
static bool
in_round(const struct stream *st, const struct sev *e)
{
	return !e->failed && e->round == st->round;
}

struct fetched {
	struct stream *st;
	bool *found;
	struct buf idtext;
	rcode rc;
};

static int
on_fetched(void *ctx, const bson_t *doc)
{
	struct fetched *f = ctx;
	bson_iter_t it;
	enum id_type type;
	long k;

	if (!bson_iter_init_find(&it, doc, "_id"))
		return 0;
	buf_reset(&f->idtext);
	if ((f->rc = doc_id_canonical(bson_iter_value(&it), &f->idtext, &type)))
		return 1;
	if ((k = batch_find(f->st, f->idtext.data, type)) < 0)
		return 0;
	struct sev *e = &f->st->ev[k];
	if (e->doc)
		bson_destroy(e->doc);
	if ((e->doc = bson_copy(doc)) == NULL) {
		f->rc = RC_ERR_NOMEM;
		return 1;
	}
	f->found[k] = true;
	return 0;
}

/* With RECONCILE_FILTER, and at a re-read: every changed document of the
 * round fetched again under the filter; one not found (deleted, or no
 * longer matching) is deleted. */
static RC_MUST_CHECK rcode
fetch_filtered(struct stream *st)
{
	bson_t arr = BSON_INITIALIZER;
	struct fetched f = {.st = st, .found = calloc(st->n ? st->n : 1, sizeof(bool))};
	uint32_t m = 0;
	rcode rc = f.found ? RC_OK : rerror_set(&st->err, RC_ERR_NOMEM, "out of memory");

	for (size_t i = 0; rc == RC_OK && i < st->n; i++) {
		char key[16];
		const char *kp;
		if (st->ev[i].op != SEV_WRITE || !in_round(st, &st->ev[i]))
			continue;
		bson_uint32_to_string(m++, &kp, key, sizeof(key));
		if (doc_id_append(&arr, kp, st->ev[i].id, st->ev[i].type))
			rc = rerror_set(&st->err, RC_ERR_INVALID, "id %s cannot be rebuilt",
			                st->ev[i].id);
	}
	if (rc == RC_OK && m)
		rc = mongo_fetch(st->mongo, &arr, NULL, false, on_fetched, NULL, &f, &st->err);
	if (rc == RC_OK && f.rc)
		rc = rerror_set(&st->err, f.rc, "mongodb: a fetched _id cannot be read");
	for (size_t i = 0; rc == RC_OK && i < st->n; i++)
		if (st->ev[i].op == SEV_WRITE && in_round(st, &st->ev[i]) && !f.found[i])
			st->ev[i].op = SEV_DELETE;
	bson_destroy(&arr);
	buf_free(&f.idtext);
	free(f.found);
	return rc;
}

/* The body, routing and version of each write (the transform, as a repair
 * writes it); a document the transform leaves out is deleted, one it
 * cannot convert fails alone. */
static RC_MUST_CHECK rcode
convert_writes(struct stream *st)
{
	for (size_t i = 0; i < st->n; i++) {
		struct sev *e = &st->ev[i];
		struct rerror cerr = {0};
		char why[700];
		bool skip = false;
		if (e->op != SEV_WRITE || !in_round(st, e))
			continue;
		if (e->doc == NULL) { /* updateLookup found nothing: deleted since */
			e->op = SEV_DELETE;
			continue;
		}
		rcode rc = transform_apply(st->tf, e->doc, st->cfg->opensearch_id_field, e->id,
		                           &e->body, &e->routing, &skip, &cerr);
		if (rc == RC_ERR_NOMEM)
			return rerror_set(&st->err, rc, "out of memory converting %s", e->id);
		if (rc) {
			snprintf(why, sizeof(why), "%s: %s",
			         transform_active(st->tf) ? "the transform failed"
			                                  : "cannot convert the document to JSON",
			         cerr.message);
		} else if (skip) {
			e->op = SEV_DELETE; /* left out of the index, like RECONCILE_FILTER */
			continue;
		} else if (strlen(e->id) > OPENSEARCH_ID_MAX_BYTES) {
			snprintf(why, sizeof(why),
			         "the id is over OpenSearch's _id limit of %d bytes",
			         OPENSEARCH_ID_MAX_BYTES);
			rc = RC_ERR_INVALID;
		} else if (st->cfg->version_type == VERSION_EXTERNAL_GTE &&
		           !repair_external_version(e->doc, st->cfg->version_field, &e->version,
		                                    why, sizeof(why))) {
			rc = RC_ERR_INVALID;
		}
		if (rc) {
			e->failed = true;
			if ((e->why = strdup(why)) == NULL)
				return rerror_set(&st->err, RC_ERR_NOMEM, "out of memory");
		}
	}
	return RC_OK;
}

/* Whether copy i of l is where a write of id with routing lands: its own
 * _id, the write index, and the same shard key (none: the _id). */
static bool
copy_is_target(const struct stream *st, const struct idlist *l, size_t i, const char *id,
               const char *routing)
{
	const char *index = idlist_index(l, i), *r = idlist_routing(l, i);

	if (idlist_docid(l, i) != NULL)
		return false;
	if (st->write_index && index && strcmp(index, st->write_index) != 0)
		return false;
	return strcmp(r ? r : id, routing ? routing : id) == 0;
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

struct plan {
	struct bulk_doc *docs;
	size_t *owner; /* the batch entry each action is for */
	size_t n;
};

static void
plan_add(struct plan *p, size_t owner, struct bulk_doc d)
{
	p->owner[p->n] = owner;
	p->docs[p->n++] = d;
}

/* What is where, for the round's documents: the copies the search found,
 * and two spots of entry i read now (real-time; key NULL: not read): now[2i]
 * where its write lands, now[2i+1] where the stream wrote it lately. */
struct where {
	struct idlist copies;
	struct os_cond *now;
};

static void
where_free(struct where *w)
{
	idlist_free(&w->copies);
	free(w->now);
	*w = (struct where){0};
}

/* A delete of copy j of the search's, on the _seq_no it was found with. */
static struct bulk_doc
delete_found(const struct idlist *l, size_t j)
{
	return (struct bulk_doc){.action = BULK_DELETE,
	                         .id = idlist_target(l, j),
	                         .index = idlist_index(l, j),
	                         .routing = idlist_routing(l, j),
	                         .version = -1,
	                         .if_seq_no = l->v[j].seq_no,
	                         .if_primary_term = l->v[j].primary_term};
}

/* The write of e made conditional on the copy where it lands (found: its
 * _seq_no; none: a create). External versions are the condition where
 * set (OpenSearch takes one or the other), and plain updates stay plain. */
static void
condition_write(const struct stream *st, const struct sev *e, struct bulk_doc *d, bool found,
                int64_t seq_no, int64_t primary_term)
{
	if (e->version >= 0)
		return;
	if (!found)
		d->action = BULK_CREATE; /* one created meanwhile is not replaced */
	else if (!(st->plain_updates && d->action == BULK_UPDATE)) {
		d->if_seq_no = seq_no;
		d->if_primary_term = primary_term;
	}
}

/* The _bulk actions of the round: deletes of copies where they are, then
 * the writes, each conditional on the copy it acts on. */
static RC_MUST_CHECK rcode
plan_batch(struct stream *st, const struct where *w, struct plan *p)
{
	const struct idlist *copies = &w->copies;
	enum bulk_action wop = st->cfg->write_mode == WRITE_UPSERT ? BULK_UPDATE : BULK_INDEX;
	const char *pipeline =
	    *st->cfg->pipeline && st->cfg->write_mode == WRITE_INDEX ? st->cfg->pipeline : NULL;
	/* a delete per copy found, one per document written lately, and its write */
	size_t most = copies->n + 2 * st->n;

	p->docs = calloc(most ? most : 1, sizeof(*p->docs));
	p->owner = calloc(most ? most : 1, sizeof(*p->owner));
	if (p->docs == NULL || p->owner == NULL)
		return rerror_set(&st->err, RC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < st->n; i++) {
		const struct sev *e = &st->ev[i];
		const struct os_cond *at = &w->now[2 * i], *was = &w->now[2 * i + 1];
		size_t mine = SIZE_MAX; /* the search's copy where the write lands */
		if (!in_round(st, e))
			continue;
		for (size_t j = first_copy(copies, e->id);
		     j < copies->n && strcmp(idlist_id(copies, j), e->id) == 0; j++) {
			if (e->op == SEV_WRITE && copy_is_target(st, copies, j, e->id, e->routing))
				mine = j;
			else if (!(was->key && copy_is_target(st, copies, j, e->id, was->routing)))
				plan_add(p, i, delete_found(copies, j));
			/* else read now: below */
		}
		/* written lately, read now (the search may not see it yet) */
		if (was->key && was->found)
			plan_add(p, i,
			         (struct bulk_doc){.action = BULK_DELETE,
			                           .id = e->id,
			                           .index = st->write_index,
			                           .routing = was->routing,
			                           .version = -1,
			                           .if_seq_no = was->seq_no,
			                           .if_primary_term = was->primary_term});
		if (e->op != SEV_WRITE)
			continue;
		struct bulk_doc d = {.action = wop,
		                     .id = e->id,
		                     .routing = e->routing,
		                     .source = e->body.data,
		                     .source_len = e->body.len,
		                     .version = e->version,
		                     .pipeline = pipeline};
		if (at->key)
			condition_write(st, e, &d, at->found, at->seq_no, at->primary_term);
		else if (mine != SIZE_MAX)
			condition_write(st, e, &d, true, copies->v[mine].seq_no,
			                copies->v[mine].primary_term);
		else
			condition_write(st, e, &d, false, 0, 0);
		plan_add(p, i, d);
	}
	return RC_OK;
}

/* A document whose copy another writer changed since it was looked up:
 * read again in the next round, or failed after STREAM_REREADS. */
static RC_MUST_CHECK rcode
reread_or_fail(struct stream *st, struct sev *e)
{
	if (e->round > st->round)
		return RC_OK; /* another of its actions said so already */
	if (st->round < STREAM_REREADS) {
		e->round = st->round + 1;
		log_msg(
		    LOG_INFO, 0,
		    "mirror %s: live sync: document %.200s: the index copy changed after it was "
		    "looked up (another writer): read again from MongoDB and written again",
		    st->cfg->name, e->id);
		return RC_OK;
	}
	char why[700];
	snprintf(why, sizeof(why),
	         "the index copy changed after each lookup, %d times (another writer writes "
	         "this document at the same moment): left as the index holds it; `reconciler "
	         "check --mirror %.200s` compares it with MongoDB and repairs it",
	         STREAM_REREADS + 1, st->cfg->name);
	e->failed = true;
	if ((e->why = strdup(why)) == NULL)
		return rerror_set(&st->err, RC_ERR_NOMEM, "out of memory");
	return RC_OK;
}

/* Each action's outcome onto its document: a delete of nothing is done; a
 * write refused as older than the copy (external versions) too; an action
 * refused because the copy it was conditional on changed: read again. */
static RC_MUST_CHECK rcode
take_outcomes(struct stream *st, const struct plan *p)
{
	/* a block on the whole index (index.blocks.write, the disk's flood
	 * stage) is no document's fault: the batch is not journaled, and the
	 * stream writes it again from its place, with backoff, once the index
	 * takes writes (QA22b N2: each change was dropped as failed alone) */
	for (size_t k = 0; k < p->n; k++)
		if (p->docs[k].blocked)
			return rerror_set(
			    &st->err, RC_ERR_RETRY,
			    "the index refuses writes (HTTP 403: %.300s): the batch is "
			    "not journaled and is written again once the block is lifted",
			    p->docs[k].reason ? p->docs[k].reason : "a block");
	for (size_t k = 0; k < p->n; k++) {
		const struct bulk_doc *d = &p->docs[k];
		struct sev *e = &st->ev[p->owner[k]];
		bool cond = d->if_primary_term > 0 || d->action == BULK_CREATE;
		bool ok = (d->status >= 200 && d->status < 300) ||
		          (d->action == BULK_DELETE && d->status == 404) || d->newer;
		if (d->newer && cond && !e->failed) {
			rcode rc = reread_or_fail(st, e);
			if (rc)
				return rc;
			continue;
		}
		if (d->newer && !e->failed) {
			/* the index holds a newer version (external versions): not a
			 * failure, and not silent */
			st->newer += e->events;
			log_msg(LOG_INFO, 0,
			        "mirror %s: live sync: document %.200s: the index holds a newer "
			        "version than the change's: left as is",
			        st->cfg->name, e->id);
		}
		if (ok || e->failed)
			continue;
		e->failed = true;
		char why[700];
		snprintf(why, sizeof(why), "HTTP %d: %s", d->status,
		         d->reason ? d->reason : "rejected");
		if ((e->why = strdup(why)) == NULL)
			return rerror_set(&st->err, RC_ERR_NOMEM, "out of memory");
	}
	return RC_OK;
}

/* The copies of the round's ids: one search (no index yet: none), and the
 * spots a search may not see yet read now: where the stream wrote a
 * document lately, and at a re-read where its write lands. */
static RC_MUST_CHECK rcode
lookup_copies(struct stream *st, struct where *w)
{
	const char **ids = calloc(st->n ? st->n : 1, sizeof(*ids));
	struct os_cond *q = calloc(2 * st->n + 1, sizeof(*q));
	size_t *back = calloc(2 * st->n + 1, sizeof(*back));
	size_t m = 0, nq = 0;
	rcode rc = RC_OK;

	w->now = calloc(2 * st->n + 1, sizeof(*w->now));
	if (ids == NULL || q == NULL || back == NULL || w->now == NULL) {
		rc = rerror_set(&st->err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < st->n; i++) {
		const struct sev *e = &st->ev[i];
		const char *was = NULL;
		if (!in_round(st, e))
			continue;
		ids[m++] = e->id;
		bool lately = recent_get(st, e->id, &was);
		bool write = e->op == SEV_WRITE;
		if (write && (lately || st->round > 0))
			w->now[2 * i] = (struct os_cond){.key = e->id,
			                                 .id = e->id,
			                                 .index = st->write_index,
			                                 .routing = e->routing};
		if (lately &&
		    !(write && strcmp(was ? was : e->id, e->routing ? e->routing : e->id) == 0))
			w->now[2 * i + 1] = (struct os_cond){
			    .key = e->id, .id = e->id, .index = st->write_index, .routing = was};
	}
	rc = m ? opensearch_lookup(st->os, &w->copies, &st->keys, ids, m, &st->err) : RC_OK;
	if (rc == RC_ERR_NOTFOUND) { /* no index: no copies */
		st->err = (struct rerror){0};
		rc = st->index_seen ? stream_index_lost(st) : RC_OK;
	} else if (rc == RC_OK && m) {
		st->index_seen = true;
	}
	for (size_t k = 0; rc == RC_OK && k < 2 * st->n; k++)
		if (w->now[k].key) {
			back[nq] = k;
			q[nq++] = w->now[k];
		}
	if (rc == RC_OK && nq)
		rc = opensearch_conditions_now(st->os, q, nq, &st->err);
	for (size_t j = 0; rc == RC_OK && j < nq; j++)
		w->now[back[j]] = q[j];
out:
	free(ids);
	free(q);
	free(back);
	return rc;
}

/* Upsert mode: whether the index runs a default pipeline, which a
 * conditional update would skip (repair.c's ask_index_pipeline): then
 * updates stay plain, as the original live syncer sent them. */
static RC_MUST_CHECK rcode
ask_index_pipeline(struct stream *st)
{
	char *name = NULL;
	rcode rc;

	if (st->pipeline_asked || st->cfg->write_mode != WRITE_UPSERT)
		return RC_OK;
	if ((rc = opensearch_index_pipeline(st->os, &name, &st->err)))
		return rc;
	st->pipeline_asked = true;
	st->plain_updates = name != NULL;
	if (name)
		log_msg(LOG_WARN, 0,
		        "mirror %s: live sync: the index runs the pipeline %.200s by default, "
		        "which OpenSearch runs on an update only with doc_as_upsert, refused on "
		        "conditional updates: in upsert mode copies are updated unconditionally "
		        "(a run's newer write meanwhile may be overwritten; "
		        "RECONCILE_WRITE_MODE=index writes conditionally)",
		        st->cfg->name, name);
	free(name);
	return RC_OK;
}

/* One round: the round's documents (re-read from MongoDB after the first)
 * converted, their copies looked up, one _bulk, the outcomes taken. */
static RC_MUST_CHECK rcode
write_round(struct stream *st)
{
	struct where w = {0};
	struct plan p = {0};
	int attempts = 0;
	rcode rc = RC_OK;

	for (size_t i = 0; st->round > 0 && i < st->n; i++) {
		struct sev *e = &st->ev[i];
		if (!in_round(st, e))
			continue;
		/* what MongoDB holds now is written: the newer write either way */
		e->op = SEV_WRITE;
		buf_reset(&e->body);
		free(e->routing);
		e->routing = NULL;
		e->version = -1;
	}
	if (st->filtered || st->round > 0)
		rc = fetch_filtered(st);
	if (rc == RC_OK)
		rc = convert_writes(st);
	if (rc == RC_OK)
		rc = lookup_copies(st, &w);
	if (rc == RC_OK)
		rc = plan_batch(st, &w, &p);
	if (rc == RC_OK && p.n)
		rc = opensearch_bulk_send(st->os, p.docs, p.n, &attempts, st->stop, &st->err);
	if (rc == RC_OK)
		rc = take_outcomes(st, &p);
	if (p.docs)
		bulk_docs_reset(p.docs, p.n);
	free(p.docs);
	free(p.owner);
	where_free(&w);
	return rc;
}

/* Writes the batch (one change per document, its last): fetched under the
 * filter, converted, the copies looked up, one _bulk, then the documents
 * another writer changed meanwhile read again and written again; each
 * document's outcome counted by its events. */
rcode
stream_batch_write(struct stream *st, int64_t *applied, int64_t *failed, const char **last_error)
{
	rcode rc;

	*applied = *failed = 0;
	*last_error = NULL;
	batch_dedupe(st);
	rc = ask_index_pipeline(st);
	for (st->round = 0; rc == RC_OK && st->round <= STREAM_REREADS; st->round++) {
		bool any = false;
		for (size_t i = 0; !any && i < st->n; i++)
			any = in_round(st, &st->ev[i]);
		if (!any)
			break;
		rc = write_round(st);
	}
	for (size_t i = 0; rc == RC_OK && i < st->n; i++)
		if (!st->ev[i].failed && st->ev[i].op == SEV_WRITE)
			rc = recent_put(st, st->ev[i].id, st->ev[i].routing);
	for (size_t i = 0; rc == RC_OK && i < st->n; i++) {
		const struct sev *e = &st->ev[i];
		if (!e->failed) {
			*applied += e->events;
			continue;
		}
		*failed += e->events;
		*last_error = e->why;
		log_msg(LOG_WARN, 0, "mirror %s: live sync: document \"%.200s\" not written: %s",
		        st->cfg->name, e->id, e->why);
	}
	return rc;
}
