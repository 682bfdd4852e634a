/*
 * pass.c: the comparison pass.
 *
 * MongoDB ids come in _id order (one cursor for the whole pass, behind
 * io->mongo_next) and are cut into chunks of chunk_size; a chunk never spans
 * two id classes (MongoDB sorts numbers < strings < objects, arrays, binary
 * < ObjectIds < booleans < dates < others).
 *
 * - A chunk of strings or ObjectIds, whose canonical text sorts like
 *   MongoDB's order, is merged with the index streamed in the same key order
 *   up to the chunk's last id: only-in-MongoDB = missing, only-in-index =
 *   orphan candidate, version differs = stale, further copies of one id (an
 *   alias's other indices) = duplicate. Each such "merge segment" sweeps the
 *   whole key space of the index: its first chunk from the start, its end to
 *   the last key.
 * - Numbers and rarer types are looked up by id in the index instead.
 * - A collection with neither strings nor ObjectIds gets one sweep of the
 *   index at the end, for orphans.
 * Orphans are judged in the first sweep only: with strings and ObjectIds,
 * the string segment has judged every index id before the ObjectIds come.
 *
 * An orphan candidate is certain when the collection has only ObjectIds and
 * its key is an ObjectId's text; anything else is asked of MongoDB under
 * every typed value its text could stand for, so no document is deleted
 * because of its id's type. With RECONCILE_FILTER the MongoDB stream holds
 * only the documents the filter matches, and existence means "exists and
 * matches": a document that matches is never an orphan, one that exists
 * outside the filter is an orphan that left the filter. Then every
 * candidate is asked, certain or not, for that reason. An id whose text is also another type's
 * ("42" and 42) is asked of MongoDB for that other type when such ids may exist: a conflict (one
 * index _id for two documents), never rewritten.
 *
 * Of several copies of one document the one kept (compared, the others
 * deleted as duplicates) is, with a routing rule, the one under the rule's
 * routing in the write index (the rule's routing is read from those
 * documents: io->rule_routing); a document with no copy there is stale
 * (misplaced), moved there by its repair. Without a rule: keep_rank.
 *
 * With range summaries (pass_opts.summaries) a merge segment's chunk is
 * cut into key ranges (summary.c) whose count and hash sum the index
 * computes too (io->index_summaries): a range whose summaries agree is in
 * sync and none of its index ids is read; a range that differs is streamed
 * (pages bounded to it, io->index_range) and judged exactly as above, with
 * the chunk's ids still in memory. The ranges of a segment tile its key
 * space: the first from its start, each next one from the previous one's
 * last id, and one more past its last id, so orphans before the first and
 * after the last id are summarized too (docs/ENGINE.md).
 *
 * A differing range is streamed keys-only (no stored fields: in an index
 * written in a random id order, reading the stored _id and _routing of
 * scattered documents is most of a page's cost), each copy taken to be
 * under its own key. The range's summary checks that: the copies' hash
 * sum with _id = key equals the index's sum only when it holds (up to the
 * summaries' 2^-64); a range where it does not is streamed again with
 * stored fields. Then every copy that can become drift (an orphan
 * candidate, another version, several copies of a key) is read again by
 * a lookup of its key, with its _id, routing and seq_no, before judge():
 * copies read keys-only reach judge() only in sync, and nothing is ever
 * written to them (where_unknown).
 *
 * Memory is O(chunk): one chunk of MongoDB ids, one page of index ids.
 */
#include "pass.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pass {
	const struct pass_opts *o;
	const struct pass_io *io;
	struct rerror *err;
	int64_t seen, compared;
	int cur_class; /* of the current segment; -1 none */
	/* the index stream of the current merge segment */
	struct idlist os_buf;
	char *os_after;
	bool os_more;
	bool index_gone;
	const char *os_hi; /* the stream stops after this key (a streamed range); NULL: none */
	bool os_keys_only; /* a streamed range's pages without stored fields */
	/* range summaries: on for the current segment; its last chunk's last
	 * id (NULL: the segment's start); ranges met, the MongoDB ids in them,
	 * and the copies read with stored fields (auto's fallback looks at the
	 * first ranges) */
	bool sum_on;
	char *sum_prev;
	int64_t sum_ranges, sum_ids, sum_stored;
	/* held over: the first id of the next chunk when a class changes */
	struct idlist held;
	int held_class;
	bool mongo_done;
	int8_t has_type[ID_JSON + 1]; /* does MongoDB hold ids of this type: -1 not asked */
	/* a targeted run's chunk: the texts its lookup answered for every
	 * typed value (mongo_lookup's answered), sorted by strcmp */
	const char **answered;
	size_t n_answered;
	const struct idlist *found; /* and the documents it found, in key order */
};

static int
cmp_text(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether a targeted run's lookup asked MongoDB about every typed value of
 * text and heard back: then whatever it did not find does not exist. */
static bool
answered(const struct pass *p, const char *text)
{
	return p->n_answered &&
	       bsearch(&text, p->answered, p->n_answered, sizeof(*p->answered), cmp_text) != NULL;
}

/* ---- the MongoDB side --------------------------------------------------- */

/* Reads the next chunk of MongoDB ids, all of one class. */
static RC_MUST_CHECK rcode
read_chunk(struct pass *p, struct idlist *chunk, int *cls)
{
	rcode rc = RC_OK;

	idlist_clear(chunk);
	*cls = -1;
	if (p->held.n) {
		rc = idlist_push_from(chunk, &p->held, 0);
		*cls = p->held_class;
		idlist_clear(&p->held);
	}
	while (rc == RC_OK && !p->mongo_done && chunk->n < (size_t)p->o->chunk_size) {
		int c;
		bool end, unsafe;
		rc = p->io->mongo_next(p->io->ctx, &p->held, &c, &end, &unsafe, p->err);
		if (rc)
			break;
		if (end) {
			p->mongo_done = true;
			break;
		}
		if (unsafe) {
			rc = p->io->on_unsafe(p->io->ctx, idlist_id(&p->held, 0),
			                      (enum id_type)p->held.v[0].type, p->err);
			idlist_clear(&p->held);
			continue;
		}
		if (*cls >= 0 && c != *cls) {
			/* a new class starts a new chunk: keep the id held */
			p->held_class = c;
			break;
		}
		*cls = c;
		rc = idlist_push_from(chunk, &p->held, 0);
		idlist_clear(&p->held);
	}
	return rc;
}

/* ---- the index side ------------------------------------------------------ */

static RC_MUST_CHECK rcode
os_restart(struct pass *p, const char *after)
{
	idlist_clear(&p->os_buf);
	free(p->os_after);
	p->os_after = after ? strdup(after) : NULL;
	p->os_more = !p->o->index_missing && !p->index_gone;
	return after && p->os_after == NULL ? RC_ERR_NOMEM : RC_OK;
}

/* Appends the next page of the index (after the last copy received). */
static RC_MUST_CHECK rcode
os_fetch_page(struct pass *p)
{
	size_t before = p->os_buf.n;
	rcode rc;

	rc = p->os_hi ? p->io->index_range(p->io->ctx, &p->os_buf, &p->os_more, p->os_after,
	                                   p->os_hi, p->os_keys_only, (int)p->o->chunk_size, p->err)
	              : p->io->index_page(p->io->ctx, &p->os_buf, &p->os_more, p->os_after,
	                                  (int)p->o->chunk_size, p->err);
	if (rc == RC_ERR_NOTFOUND) {
		/* the index went away mid-run: nothing more on its side */
		*p->err = (struct rerror){0};
		p->os_more = false;
		p->index_gone = true;
		return RC_OK;
	}
	if (rc)
		return rc;
	if (p->os_buf.n > before) {
		char *id = strdup(idlist_id(&p->os_buf, p->os_buf.n - 1));
		if (id == NULL)
			return RC_ERR_NOMEM;
		free(p->os_after);
		p->os_after = id;
	}
	return RC_OK;
}

/* Which of several copies of one id is kept (lower first): a copy under
 * its own _id, then one routed by _id, then one in the write index. */
static int
keep_rank(const struct pass *p, const struct idlist *l, size_t i)
{
	const char *idx = idlist_index(l, i);
	bool in_write =
	    p->o->write_index == NULL || idx == NULL || strcmp(idx, p->o->write_index) == 0;

	return (idlist_docid(l, i) ? 4 : 0) + (idlist_routing(l, i) ? 2 : 0) + (in_write ? 0 : 1);
}

/* Whether the sweep now under way judges orphans: the first merge segment's
 * (strings judge the whole index before ObjectIds come) or the final one. */
static bool
sweep_judges(const struct pass *p)
{
	return !(p->cur_class == CLASS_OID && (p->seen & (1 << CLASS_STRING)));
}

/* Moves the first k ids of os_buf into part, keeping part in key order
 * whatever the index returns. Copies of one id stay together, the copy in
 * the write index first: it is the one kept. */
static RC_MUST_CHECK rcode
os_move(struct pass *p, struct idlist *part, size_t k)
{
	/* the brake compares what the judging sweep read with the index's count */
	if (p->o->stats && sweep_judges(p))
		p->o->stats->index_read += (int64_t)k;
	for (size_t i = 0; i < k; i++) {
		const char *id = idlist_id(&p->os_buf, i);
		size_t len = p->os_buf.v[i].id_len;
		int c = part->n ? diff_compare(idlist_id(part, part->n - 1),
		                               part->v[part->n - 1].id_len, id, len)
		                : -1;
		if (c > 0)
			continue;
		if (idlist_push_from(part, &p->os_buf, i))
			return RC_ERR_NOMEM;
		/* copies of one id together, the one to keep first */
		size_t at = part->n - 1;
		while (c == 0 && at > 0 &&
		       diff_compare(idlist_id(part, at - 1), part->v[at - 1].id_len, id, len) ==
		           0 &&
		       keep_rank(p, part, at) < keep_rank(p, part, at - 1)) {
			struct idrec tmp = part->v[at];
			part->v[at] = part->v[at - 1];
			part->v[at - 1] = tmp;
			at--;
		}
	}
	return idlist_shift(&p->os_buf, k);
}

/* Moves the index's ids up to hi (inclusive) into part. */
static RC_MUST_CHECK rcode
os_take(struct pass *p, struct idlist *part, const char *hi, size_t hilen)
{
	rcode rc;

	idlist_clear(part);
	for (;;) {
		size_t k = 0;
		while (k < p->os_buf.n && diff_compare(idlist_id(&p->os_buf, k),
		                                       p->os_buf.v[k].id_len, hi, hilen) <= 0)
			k++;
		bool stopped_inside = k < p->os_buf.n;
		if ((rc = os_move(p, part, k)))
			return rc;
		if (stopped_inside || !p->os_more)
			return RC_OK;
		if ((rc = os_fetch_page(p)))
			return rc;
	}
}

/* Moves at most one page of the index's remaining ids into part. */
static RC_MUST_CHECK rcode
os_take_page(struct pass *p, struct idlist *part)
{
	rcode rc;

	idlist_clear(part);
	if (p->os_buf.n == 0 && p->os_more && (rc = os_fetch_page(p)))
		return rc;
	return os_move(p, part, p->os_buf.n);
}

struct sorted_ref {
	const char *id;
	size_t len, idx;
	int rank; /* among equal ids: keep_rank */
};

static int
cmp_ref(const void *a, const void *b)
{
	const struct sorted_ref *x = a, *y = b;
	int c = diff_compare(x->id, x->len, y->id, y->len);

	if (c == 0)
		c = (x->rank > y->rank) - (x->rank < y->rank);
	return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* A copy of src in key order; copies of one id together, the write index's
 * first. */
static RC_MUST_CHECK rcode
idlist_sorted(const struct pass *p, struct idlist *dst, const struct idlist *src)
{
	struct sorted_ref *refs = malloc((src->n ? src->n : 1) * sizeof(*refs));
	rcode rc = RC_OK;

	if (refs == NULL)
		return RC_ERR_NOMEM;
	for (size_t i = 0; i < src->n; i++)
		refs[i] = (struct sorted_ref){idlist_id(src, i), src->v[i].id_len, i,
		                              keep_rank(p, src, i)};
	qsort(refs, src->n, sizeof(*refs), cmp_ref);
	idlist_clear(dst);
	for (size_t i = 0; i < src->n && rc == RC_OK; i++)
		rc = idlist_push_from(dst, src, refs[i].idx);
	free(refs);
	return rc;
}

/* ---- judging candidates -------------------------------------------------- */

/* Which orphan candidates (indices into osl) are really orphans: certain
 * ones directly, the rest by asking MongoDB. real[i] for idx[i]; left[i]:
 * an orphan because its document is outside RECONCILE_FILTER. */
static RC_MUST_CHECK rcode
verify_orphans(struct pass *p, const struct idlist *osl, const size_t *idx, size_t n, bool *real,
               bool *left)
{
	bool oid_only = p->seen == (1 << CLASS_OID) && p->cur_class == CLASS_OID;
	const char **ask = malloc((n ? n : 1) * sizeof(*ask));
	size_t *pos = malloc((n ? n : 1) * sizeof(*pos));
	bool *exists = malloc((n ? n : 1) * sizeof(*exists));
	bool *outside = malloc((n ? n : 1) * sizeof(*outside));
	size_t n_ask = 0;
	rcode rc = RC_OK;

	if (ask == NULL || pos == NULL || exists == NULL || outside == NULL) {
		rc = RC_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *id = idlist_id(osl, idx[i]);
		real[i] = true;
		left[i] = false;
		/* MongoDB sorts strings, documents and binary before ObjectIds:
		 * with only ObjectIds seen, an ObjectId's text has no other owner.
		 * Under a filter the orphan is as certain, but its reason is not */
		if (!p->o->filtered && (p->seen == 0 || (oid_only && doc_is_oid_hex(id))))
			continue;
		/* a targeted run's lookup asked every typed value of this text
		 * moments ago and found none: asking again would say the same */
		if (answered(p, id) && !doc_id_unaskable(id))
			continue;
		ask[n_ask] = id;
		pos[n_ask++] = i;
	}
	for (size_t at = 0; rc == RC_OK && at < n_ask; at += 1000) {
		size_t m = n_ask - at < 1000 ? n_ask - at : 1000;
		rc = p->io->mongo_exists(p->io->ctx, ask + at, m, exists,
		                         p->o->filtered ? outside : NULL, p->err);
		for (size_t i = 0; rc == RC_OK && i < m; i++) {
			real[pos[at + i]] = !exists[i];
			left[pos[at + i]] = !exists[i] && p->o->filtered && outside[i];
		}
	}
out:
	free(ask);
	free(pos);
	free(exists);
	free(outside);
	return rc;
}

/* The other types whose ids could share this id's text and may exist:
 * classes the pass has passed are known from `seen`; later ones are asked
 * of MongoDB once per run (a $type probe), and only when some text needs
 * it, so a pure ObjectId or integer collection asks nothing per chunk. */
static RC_MUST_CHECK rcode
possible_others(struct pass *p, const char *text, enum id_type type, int *mask)
{
	rcode rc = RC_OK;

	*mask = 0;
	/* the common cases cheaply, before any typed value is built: an
	 * ObjectId's text can only be a string's (strings come first: seen
	 * says), and a string only another type's if it looks like one */
	if (type != ID_STRING) {
		/* any other type's text is also a string's, and only a string's:
		 * strings come after numbers, before everything else */
		if (type == ID_INT || type == ID_DOUBLE) {
			if (p->has_type[ID_STRING] < 0) {
				bool has = false;
				rc = p->io->mongo_has_type(p->io->ctx, ID_STRING, &has, p->err);
				p->has_type[ID_STRING] = has;
			}
			if (rc == RC_OK && p->has_type[ID_STRING])
				*mask = 1 << ID_STRING;
		} else if (p->seen & (1 << CLASS_STRING)) {
			*mask = 1 << ID_STRING;
		}
		return rc;
	}
	if (!(doc_is_oid_hex(text) || strchr("0123456789+-.{tfnNiI", text[0])))
		return RC_OK;
	int share = doc_id_types_sharing(text, type);
	int own = (int)doc_id_class_of(text, type);

	for (int t = 0; share && t <= ID_JSON && rc == RC_OK; t++) {
		if (!(share & (1 << t)))
			continue;
		int c = (int)doc_id_class_of(text, (enum id_type)t);
		if (c < own) {
			if (p->seen & (1 << c))
				*mask |= 1 << t;
			continue;
		}
		if (p->has_type[t] < 0) {
			bool has = false;
			rc = p->io->mongo_has_type(p->io->ctx, (enum id_type)t, &has, p->err);
			p->has_type[t] = has;
		}
		if (rc == RC_OK && p->has_type[t])
			*mask |= 1 << t;
	}
	return rc;
}

/* Whether a targeted run's lookup found another document (its type *t)
 * with the text of m's entry k: one of the chunk's documents (p->found, in
 * key order) next to the first of that text. */
static bool
other_found(const struct pass *p, const struct idlist *m, size_t k, enum id_type *t)
{
	const struct idlist *f = p->found;
	const char *id = idlist_id(m, k);
	size_t lo = 0, hi = f ? f->n : 0, len = m->v[k].id_len;

	while (lo < hi) { /* the first entry not before id */
		size_t mid = lo + (hi - lo) / 2;
		if (diff_compare(idlist_id(f, mid), f->v[mid].id_len, id, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t j = lo; f && j < f->n && strcmp(idlist_id(f, j), id) == 0; j++)
		if (f->v[j].type != m->v[k].type) {
			*t = (enum id_type)f->v[j].type;
			return true;
		}
	return false;
}

/* conflict[k] for m's entry k: the type of another MongoDB document whose
 * id has the same text (so the same index _id), else NULL. */
static RC_MUST_CHECK rcode
find_conflicts(struct pass *p, const struct idlist *m, char **conflict)
{
	size_t cap = m->n ? m->n : 1, n = 0;
	const char **texts = malloc(cap * sizeof(*texts));
	enum id_type *types = malloc(cap * sizeof(*types));
	size_t *pos = malloc(cap * sizeof(*pos));
	char **other = calloc(cap, sizeof(*other));
	rcode rc = texts && types && pos && other ? RC_OK : RC_ERR_NOMEM;

	for (size_t k = 0; rc == RC_OK && k < m->n; k++) {
		int mask = 0;
		if (answered(p, idlist_id(m, k))) {
			/* the lookup found every document of this text */
			enum id_type t;
			if (other_found(p, m, k, &t) &&
			    (conflict[k] = strdup(doc_id_type_name(t))) == NULL)
				rc = RC_ERR_NOMEM;
			continue;
		}
		rc = possible_others(p, idlist_id(m, k), (enum id_type)m->v[k].type, &mask);
		if (rc || mask == 0)
			continue;
		texts[n] = idlist_id(m, k);
		types[n] = (enum id_type)m->v[k].type;
		pos[n++] = k;
	}
	if (rc == RC_OK && n)
		rc = p->io->mongo_other(p->io->ctx, texts, types, n, other, p->err);
	for (size_t i = 0; i < n; i++) {
		conflict[pos[i]] = rc == RC_OK ? other[i] : NULL;
		if (rc)
			free(other[i]);
	}
	free(texts);
	free(types);
	free(pos);
	free(other);
	return rc;
}

/* Whether a copy under a foreign _id sits where that _id's own document
 * is written (no routing, the write index): then writing that document
 * overwrites it, and deleting it would delete that document's copy. */
static bool
at_home(const struct pass *p, const struct idlist *osl, size_t k)
{
	const char *idx = idlist_index(osl, k);

	return idlist_docid(osl, k) && idlist_routing(osl, k) == NULL &&
	       (idx == NULL || p->o->write_index == NULL || strcmp(idx, p->o->write_index) == 0);
}

/* Drops from the duplicates and orphans every copy under a foreign _id (its
 * _id not its key) that sits at home (at_home) for a document MongoDB has:
 * that document's own place in the pass repairs it. Anywhere else (another
 * shard, another backing index) it is an extra copy, deleted where it is. */
static RC_MUST_CHECK rcode
spare_foreign(struct pass *p, const struct idlist *osl, struct drift *d, size_t *orph,
              bool *orph_left, size_t *n_orph)
{
	size_t n = 0, cap = d->n_duplicate + *n_orph;
	const char **ask = malloc((cap ? cap : 1) * sizeof(*ask));
	bool *exists = malloc((cap ? cap : 1) * sizeof(*exists));
	rcode rc = ask && exists ? RC_OK : RC_ERR_NOMEM;

	for (size_t i = 0; rc == RC_OK && i < d->n_duplicate; i++)
		if (at_home(p, osl, d->duplicate[i]))
			ask[n++] = idlist_docid(osl, d->duplicate[i]);
	for (size_t i = 0; rc == RC_OK && i < *n_orph; i++)
		if (at_home(p, osl, orph[i]))
			ask[n++] = idlist_docid(osl, orph[i]);
	if (rc == RC_OK && n)
		rc = p->io->mongo_exists(p->io->ctx, ask, n, exists, NULL, p->err);
	if (rc == RC_OK && n) {
		size_t k = 0, kept = 0;
		for (size_t i = 0; i < d->n_duplicate; i++)
			if (!at_home(p, osl, d->duplicate[i]) || !exists[k++])
				d->duplicate[kept++] = d->duplicate[i];
		d->n_duplicate = kept;
		kept = 0;
		for (size_t i = 0; i < *n_orph; i++)
			if (!at_home(p, osl, orph[i]) || !exists[k++]) {
				orph_left[kept] = orph_left[i];
				orph[kept++] = orph[i];
			}
		*n_orph = kept;
	}
	free(ask);
	free(exists);
	return rc;
}

/* Whether copy i of l is where a routing rule puts its document: under
 * its own _id, with that routing (none: routed by _id), in the write index. */
static bool
placed(const struct pass *p, const struct idlist *l, size_t i, const char *routing)
{
	const char *idx = idlist_index(l, i);
	const char *at = idlist_routing(l, i) ? idlist_routing(l, i) : idlist_id(l, i);

	return idlist_docid(l, i) == NULL && strcmp(at, routing) == 0 &&
	       (idx == NULL || p->o->write_index == NULL || strcmp(idx, p->o->write_index) == 0);
}

/* Puts first the copy at its place (placed) in the run of copies at..at+n. */
static bool
place_first(const struct pass *p, struct idlist *osl, size_t at, size_t n, const char *routing)
{
	for (size_t c = at; c < at + n; c++)
		if (placed(p, osl, c, routing)) {
			struct idrec keep = osl->v[c];
			memmove(&osl->v[at + 1], &osl->v[at], (c - at) * sizeof(keep));
			osl->v[at] = keep;
			return true;
		}
	return false;
}

/* With a routing rule, of several copies of a MongoDB document the one its
 * rule places is kept, whatever keep_rank says: the pass has only ids, so
 * the rule's routing is asked of the documents (io->rule_routing; several
 * copies are rare). That copy goes first in its run (diff_merge compares
 * the first); *misplaced (per entry of m, NULL when no document has
 * several copies) marks the documents with no copy there. */
static RC_MUST_CHECK rcode
place_copies(struct pass *p, const struct idlist *m, struct idlist *osl, bool **misplaced)
{
	size_t cap = m->n ? m->n : 1, n = 0;
	size_t *mi = NULL, *at = NULL, *len = NULL;
	char **routing = NULL;
	rcode rc = RC_OK;

	*misplaced = NULL;
	if (!p->o->routing_rule || p->io->rule_routing == NULL || m->n == 0 || osl->n < 2)
		return RC_OK;
	mi = malloc(cap * sizeof(*mi));
	at = malloc(cap * sizeof(*at));
	len = malloc(cap * sizeof(*len));
	routing = calloc(cap, sizeof(*routing));
	if (mi == NULL || at == NULL || len == NULL || routing == NULL) {
		rc = RC_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0, j = 0; i < m->n && j < osl->n;) {
		int c = diff_compare(idlist_id(m, i), m->v[i].id_len, idlist_id(osl, j),
		                     osl->v[j].id_len);
		size_t k = j + 1;
		if (c) {
			i += c < 0;
			j += c > 0;
			continue;
		}
		while (k < osl->n && diff_compare(idlist_id(osl, j), osl->v[j].id_len,
		                                  idlist_id(osl, k), osl->v[k].id_len) == 0)
			k++;
		if (k - j > 1) {
			mi[n] = i;
			at[n] = j;
			len[n++] = k - j;
		}
		i++;
		j = k;
	}
	if (n == 0)
		goto out;
	rc = p->io->rule_routing(p->io->ctx, m, mi, n, routing, p->err);
	if (rc == RC_OK && (*misplaced = calloc(m->n, sizeof(**misplaced))) == NULL)
		rc = RC_ERR_NOMEM;
	for (size_t t = 0; rc == RC_OK && t < n; t++)
		if (routing[t] && !place_first(p, osl, at[t], len[t], routing[t]))
			(*misplaced)[mi[t]] = true;
out:
	for (size_t t = 0; routing && t < n; t++)
		free(routing[t]);
	free(routing);
	free(mi);
	free(at);
	free(len);
	return rc;
}

/* A misplaced document's kept copy, in sync by version, is stale all the
 * same: its repair writes the document where the rule places it and
 * deletes that copy (repair.c, move_copy). */
static RC_MUST_CHECK rcode
misplaced_stale(struct drift *d, const bool *misplaced)
{
	size_t cap = d->n_stale + d->n_same, kept = 0;
	size_t *st = realloc(d->stale, (cap ? cap : 1) * sizeof(*st));

	if (st)
		d->stale = st;
	st = st ? realloc(d->stale_os, (cap ? cap : 1) * sizeof(*st)) : NULL;
	if (st == NULL)
		return RC_ERR_NOMEM;
	d->stale_os = st;
	for (size_t k = 0; k < d->n_same; k++) {
		if (!misplaced[d->same[k]]) {
			d->same[kept] = d->same[k];
			d->same_os[kept++] = d->same_os[k];
			continue;
		}
		d->stale[d->n_stale] = d->same[k];
		d->stale_os[d->n_stale++] = d->same_os[k];
	}
	d->n_same = kept;
	return RC_OK;
}

/* RECONCILE_COMPARE=content: the pairs the versions left in sync (but
 * conflicts, never rewritten) are compared by content; those that differ
 * join d's stale list. *fields: per entry of d->stale, the differing
 * fields (NULL for the version's). */
static RC_MUST_CHECK rcode
content_stale(struct pass *p, const struct idlist *m, const struct idlist *osl, struct drift *d,
              char **conflict, char ***fields)
{
	size_t n = 0, cap = d->n_stale + d->n_same;
	size_t *mi = malloc(d->n_same * sizeof(*mi)), *oi = malloc(d->n_same * sizeof(*oi));
	char **diff = calloc(d->n_same, sizeof(*diff));
	size_t *st = realloc(d->stale, cap * sizeof(*st));
	rcode rc = RC_OK;

	if (st)
		d->stale = st;
	st = st ? realloc(d->stale_os, cap * sizeof(*st)) : NULL;
	if (st)
		d->stale_os = st;
	*fields = calloc(cap, sizeof(**fields));
	if (mi == NULL || oi == NULL || diff == NULL || st == NULL || *fields == NULL) {
		rc = RC_ERR_NOMEM;
		goto out;
	}
	for (size_t k = 0; k < d->n_same; k++) {
		if (conflict && conflict[d->same[k]])
			continue;
		mi[n] = d->same[k];
		oi[n++] = d->same_os[k];
	}
	if (n)
		rc = p->io->content_differs(p->io->ctx, m, osl, mi, oi, n, diff, p->err);
	for (size_t k = 0; rc == RC_OK && k < n; k++) {
		if (diff[k] == NULL)
			continue;
		d->stale[d->n_stale] = mi[k];
		d->stale_os[d->n_stale] = oi[k];
		(*fields)[d->n_stale++] = diff[k];
		diff[k] = NULL;
	}
out:
	for (size_t k = 0; diff && k < n; k++)
		free(diff[k]);
	free(diff);
	free(mi);
	free(oi);
	return rc;
}

/* Drops from the orphans those the index keeps on purpose (they match
 * OPENSEARCH_KEEP_QUERY): never deleted, never reported, counted. */
static RC_MUST_CHECK rcode
keep_orphans(struct pass *p, const struct idlist *osl, size_t *orph, bool *orph_left,
             size_t *n_orph)
{
	bool *kept = malloc(*n_orph * sizeof(*kept));
	size_t n = 0;
	rcode rc =
	    kept ? p->io->kept_orphans(p->io->ctx, osl, orph, *n_orph, kept, p->err) : RC_ERR_NOMEM;

	for (size_t i = 0; rc == RC_OK && i < *n_orph; i++) {
		if (kept[i]) {
			if (p->o->stats)
				p->o->stats->kept++;
			continue;
		}
		orph_left[n] = orph_left[i];
		orph[n++] = orph[i];
	}
	if (rc == RC_OK)
		*n_orph = n;
	free(kept);
	return rc;
}

/* Whether the drift d would act on a copy of osl read keys-only (its _id
 * assumed, its routing unknown): a write there could land on another
 * document. sum_reread reads every such copy again first. */
static bool
acts_on_unknown(const struct idlist *osl, const struct drift *d)
{
	for (size_t i = 0; i < d->n_stale; i++)
		if (osl->v[d->stale_os[i]].where_unknown)
			return true;
	for (size_t i = 0; i < d->n_orphan; i++)
		if (osl->v[d->orphan[i]].where_unknown)
			return true;
	for (size_t i = 0; i < d->n_duplicate; i++)
		if (osl->v[d->duplicate[i]].where_unknown)
			return true;
	return false;
}

/* Merges MongoDB ids m with index copies osl (both sorted), judges the
 * candidates and hands the drift over. `lookup`: osl holds only what a
 * lookup of m found, so copies of no id of m belong to other types. */
static RC_MUST_CHECK rcode
judge(struct pass *p, const struct idlist *m, struct idlist *osl, bool lookup)
{
	struct drift d = {0};
	bool *real = NULL, *left = NULL, *orph_left = NULL, *misplaced = NULL;
	size_t *orph = NULL, n_orph = 0;
	char **conflict = NULL, **fields = NULL;
	rcode rc;

	rc = place_copies(p, m, osl, &misplaced);
	if (rc == RC_OK)
		rc = diff_merge(&d, m, osl, p->o->compare_versions);
	if (rc) {
		free(misplaced);
		return rc;
	}
	if (misplaced)
		rc = misplaced_stale(&d, misplaced);
	if (rc == RC_OK && acts_on_unknown(osl, &d))
		rc = rerror_set(p->err, RC_ERR_INTERNAL,
		                "pass: drift on an index copy read without its _id and routing");
	/* the first merge segment (strings) swept and judged the whole index:
	 * the ObjectId segment's candidates were all judged already */
	bool judged = p->cur_class == CLASS_OID && (p->seen & (1 << CLASS_STRING));
	if (rc == RC_OK && d.n_orphan && !lookup && !judged) {
		real = malloc(d.n_orphan * sizeof(bool));
		left = malloc(d.n_orphan * sizeof(bool));
		orph = malloc(d.n_orphan * sizeof(size_t));
		orph_left = malloc(d.n_orphan * sizeof(bool));
		rc = real && left && orph && orph_left
		         ? verify_orphans(p, osl, d.orphan, d.n_orphan, real, left)
		         : RC_ERR_NOMEM;
		for (size_t i = 0; rc == RC_OK && i < d.n_orphan; i++)
			if (real[i]) {
				orph_left[n_orph] = left[i];
				orph[n_orph++] = d.orphan[i];
			}
	}
	if (rc == RC_OK)
		rc = spare_foreign(p, osl, &d, orph, orph_left, &n_orph);
	if (rc == RC_OK && n_orph && p->o->keep_orphans)
		rc = keep_orphans(p, osl, orph, orph_left, &n_orph);
	if (rc == RC_OK && m->n) {
		conflict = calloc(m->n, sizeof(*conflict));
		rc = conflict ? find_conflicts(p, m, conflict) : RC_ERR_NOMEM;
	}
	if (rc == RC_OK && p->o->compare_content && d.n_same)
		rc = content_stale(p, m, osl, &d, conflict, &fields);
	if (rc == RC_OK) {
		struct pass_drift pd = {.m = m,
		                        .osl = osl,
		                        .d = &d,
		                        .orphans = orph,
		                        .n_orphans = n_orph,
		                        .left_filter = orph_left,
		                        .conflict = conflict,
		                        .stale_fields = fields,
		                        .misplaced = misplaced};
		rc = p->io->on_drift(p->io->ctx, &pd, p->err);
	}
	for (size_t i = 0; fields && i < d.n_stale; i++)
		free(fields[i]);
	free(fields);
	for (size_t i = 0; conflict && i < m->n; i++)
		free(conflict[i]);
	free(conflict);
	free(real);
	free(left);
	free(orph);
	free(orph_left);
	free(misplaced);
	drift_free(&d);
	return rc;
}

/* A chunk of numbers or rarer types: look its ids up in the index. */
static RC_MUST_CHECK rcode
lookup(struct pass *p, const struct idlist *chunk)
{
	struct idlist found = {0}, ms = {0}, fs = {0};
	const char **ids = malloc((chunk->n ? chunk->n : 1) * sizeof(*ids));
	rcode rc = RC_OK;

	if (ids == NULL)
		return RC_ERR_NOMEM;
	for (size_t i = 0; i < chunk->n; i++)
		ids[i] = idlist_id(chunk, i);
	for (size_t at = 0; rc == RC_OK && at < chunk->n && !p->o->index_missing && !p->index_gone;
	     at += 1000) {
		rc = p->io->index_lookup(p->io->ctx, &found, ids + at,
		                         chunk->n - at < 1000 ? chunk->n - at : 1000, p->err);
		if (rc == RC_ERR_NOTFOUND) {
			*p->err = (struct rerror){0};
			p->index_gone = true;
			rc = RC_OK;
		}
	}
	free(ids);
	if (rc == RC_OK)
		rc = idlist_sorted(p, &ms, chunk);
	if (rc == RC_OK)
		rc = idlist_sorted(p, &fs, &found);
	if (rc == RC_OK)
		rc = judge(p, &ms, &fs, true);
	idlist_free(&found);
	idlist_free(&ms);
	idlist_free(&fs);
	return rc;
}

/* The end of a merge segment: everything left in the index is past the
 * segment's last MongoDB id. In pages, so memory stays O(chunk). */
static RC_MUST_CHECK rcode
drain_segment(struct pass *p)
{
	struct idlist part = {0}, empty = {0};
	rcode rc;

	do {
		rc = os_take_page(p, &part);
		if (rc == RC_OK && part.n)
			rc = judge(p, &empty, &part, false);
	} while (rc == RC_OK && part.n && !*p->o->stop);
	idlist_free(&part);
	idlist_free(&empty);
	return rc;
}

/* ---- range summaries ------------------------------------------------------ */

/* auto (summaries_fallback): when the first ranges' copies read with
 * stored fields (a descent's lookups and the ranges streamed with them)
 * outnumber a fifth of their MongoDB ids, summaries cost more than they
 * save: the rest of the pass merges. Not the share of ranges that differ:
 * a differing range read keys-only costs a sixth of a merged one or less,
 * and 1% of drift spread evenly makes every range differ (docs/ENGINE.md,
 * "Verifying by range summaries"). */
#define SUM_FIRST_RANGES 50

/* Summaries stop for the rest of the pass: within a merge segment, the
 * index stream takes up after the last key judged (sum_prev). */
static RC_MUST_CHECK rcode
sum_stop(struct pass *p, const char *why)
{
	rcode rc = RC_OK;

	if (!p->sum_on)
		return RC_OK;
	p->sum_on = false;
	p->os_hi = NULL;
	if (p->io->on_verify_merge)
		rc = p->io->on_verify_merge(p->io->ctx, why, p->err);
	if (rc == RC_OK && p->cur_class >= 0 && doc_class_merges(p->cur_class))
		rc = os_restart(p, p->sum_prev);
	return rc;
}

/* Why a pass whose first ids are of class c (one that is looked up by id,
 * not merged: doc_class_merges) summarizes no range. Numbers and the rarer
 * classes sort by value in MongoDB but as text in the index, so they have
 * no key ranges the two sides share (QA20 F8: an int-only collection was
 * said to hold "several classes"). */
static const char *
sum_class_why(int c)
{
	switch (c) {
	case CLASS_NUMBER:
		return "the collection's first ids are numbers, which MongoDB sorts by value and "
		       "the index as text: they are looked up by id, not summarized in key "
		       "ranges: verifying by merge";
	case CLASS_OTHER_LOW:
		return "the collection's first ids are objects, arrays or binary values, which "
		       "MongoDB sorts by value and the index as text: they are looked up by id, "
		       "not summarized in key ranges: verifying by merge";
	default:
		return "the collection's first ids are booleans, dates or other values, which "
		       "MongoDB sorts by value and the index as text: they are looked up by id, "
		       "not summarized in key ranges: verifying by merge";
	}
}

/* The index's copies in (lo, hi] into part, pages bounded to the range;
 * keys_only: without stored fields (os_keys_only). */
static RC_MUST_CHECK rcode
sum_stream(struct pass *p, struct idlist *part, const char *lo, const char *hi, bool keys_only)
{
	rcode rc;

	p->os_hi = hi;
	p->os_keys_only = keys_only;
	rc = os_restart(p, lo);
	if (rc == RC_OK)
		rc = os_take(p, part, hi, strlen(hi));
	if (rc == RC_OK && !keys_only)
		p->sum_stored += (int64_t)part->n;
	p->os_hi = NULL;
	p->os_keys_only = false;
	return rc;
}

/* Whether the keys-only copies part[from, to) of a range are all under
 * their own key: their summary with _id = key is the index's (os_count,
 * os_sum, over (key, _id, version)); a copy under a foreign _id changes
 * its term. False too where it cannot be told (no answer, a version the
 * script does not read as an integer, a copy read with stored fields). */
static bool
sum_vouches(const struct pass *p, const struct summary_range *r, const struct idlist *part,
            size_t from, size_t to)
{
	uint64_t sum = 0;

	if (!r->os_ok || r->os_count != (int64_t)(to - from))
		return false;
	for (size_t i = from; i < to; i++) {
		const char *ver = p->o->compare_versions ? idlist_version(part, i) : NULL;
		int64_t num = 0;
		if (!part->v[i].where_unknown || (ver && !summary_version(ver, &num)))
			return false;
		sum += summary_hash(idlist_id(part, i), part->v[i].id_len, idlist_id(part, i),
		                    part->v[i].id_len, ver != NULL, num);
	}
	return sum == r->os_sum;
}

/* The keys-only copies of the run of ranges r[0, nr) (part) checked range
 * by range (sum_vouches) into out; a range that fails is streamed again
 * with stored fields, as the merge streams it. */
static RC_MUST_CHECK rcode
sum_check(struct pass *p, const struct summary_range *r, size_t nr, const struct idlist *part,
          struct idlist *out)
{
	struct idlist again = {0};
	size_t at = 0;
	rcode rc = RC_OK;

	idlist_clear(out);
	for (size_t k = 0; rc == RC_OK && k < nr; k++) {
		size_t from = at, hilen = strlen(r[k].hi);
		while (at < part->n &&
		       diff_compare(idlist_id(part, at), part->v[at].id_len, r[k].hi, hilen) <= 0)
			at++;
		if (sum_vouches(p, &r[k], part, from, at)) {
			for (size_t i = from; rc == RC_OK && i < at; i++)
				rc = idlist_push_from(out, part, i);
			continue;
		}
		rc = sum_stream(p, &again, r[k].lo, r[k].hi, false);
		for (size_t i = 0; rc == RC_OK && i < again.n; i++)
			rc = idlist_push_from(out, &again, i);
	}
	idlist_free(&again);
	return rc;
}

/* Whether the copies l[a, b) of one key (read keys-only) can become
 * drift: not one copy of an id of m (sub, from *j on) with its version. */
static bool
sum_may_drift(const struct pass *p, const struct idlist *sub, size_t *j, const struct idlist *l,
              size_t a, size_t b)
{
	const char *key = idlist_id(l, a);
	size_t len = l->v[a].id_len;
	int c = -1;

	while (*j < sub->n &&
	       (c = diff_compare(idlist_id(sub, *j), sub->v[*j].id_len, key, len)) < 0)
		(*j)++;
	if (*j == sub->n || c != 0 || b - a > 1)
		return true; /* an orphan candidate, or duplicates */
	if (!p->o->compare_versions)
		return false;
	const char *x = idlist_version(sub, *j), *y = idlist_version(l, a);
	return (x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0);
}

/* Asks the index again, with stored fields, for every copy of the keys
 * (n) into found; a vanished index has none. */
static RC_MUST_CHECK rcode
sum_lookup(struct pass *p, const char **keys, size_t n, struct idlist *found)
{
	rcode rc = RC_OK;

	p->sum_stored += (int64_t)n;
	for (size_t at = 0; rc == RC_OK && at < n && !p->index_gone; at += 1000) {
		rc = p->io->index_lookup(p->io->ctx, found, keys + at,
		                         n - at < 1000 ? n - at : 1000, p->err);
		if (rc == RC_ERR_NOTFOUND) {
			*p->err = (struct rerror){0};
			p->index_gone = true;
			idlist_clear(found);
			rc = RC_OK;
		}
	}
	return rc;
}

/* Replaces in l every keys-only copy that can become drift (sum_may_drift)
 * by what a lookup of its key reads now, with its _id, _routing, _index
 * and seq_no: judge() then sees what the stored-fields stream would have
 * given for every copy it can act on. */
static RC_MUST_CHECK rcode
sum_reread(struct pass *p, const struct idlist *sub, struct idlist *l)
{
	struct idlist found = {0}, fs = {0}, out = {0};
	const char **keys = malloc((l->n ? l->n : 1) * sizeof(*keys));
	bool *again = calloc(l->n ? l->n : 1, sizeof(*again));
	size_t n = 0, j = 0;
	rcode rc = keys && again ? RC_OK : RC_ERR_NOMEM;

	for (size_t a = 0, b; rc == RC_OK && a < l->n; a = b) {
		bool unknown = false;
		for (b = a; b < l->n && diff_compare(idlist_id(l, a), l->v[a].id_len,
		                                     idlist_id(l, b), l->v[b].id_len) == 0;
		     b++)
			unknown |= l->v[b].where_unknown;
		if (unknown && sum_may_drift(p, sub, &j, l, a, b)) {
			again[a] = true;
			keys[n++] = idlist_id(l, a);
		}
	}
	if (rc == RC_OK && n)
		rc = sum_lookup(p, keys, n, &found);
	if (rc == RC_OK && n)
		rc = idlist_sorted(p, &fs, &found);
	for (size_t a = 0, b, f = 0; rc == RC_OK && n && a < l->n; a = b) {
		for (b = a + 1; b < l->n && diff_compare(idlist_id(l, a), l->v[a].id_len,
		                                         idlist_id(l, b), l->v[b].id_len) == 0;
		     b++)
			;
		if (!again[a]) {
			for (size_t i = a; rc == RC_OK && i < b; i++)
				rc = idlist_push_from(&out, l, i);
			continue;
		}
		/* the key's copies as read now (none: gone since) */
		int c = -1;
		while (f < fs.n && (c = diff_compare(idlist_id(&fs, f), fs.v[f].id_len,
		                                     idlist_id(l, a), l->v[a].id_len)) < 0)
			f++;
		for (; rc == RC_OK && f < fs.n && c == 0 &&
		       diff_compare(idlist_id(&fs, f), fs.v[f].id_len, idlist_id(l, a),
		                    l->v[a].id_len) == 0;
		     f++)
			rc = idlist_push_from(&out, &fs, f);
	}
	if (rc == RC_OK && n) {
		struct idlist t = *l;
		*l = out;
		out = t;
	}
	free(keys);
	free(again);
	idlist_free(&found);
	idlist_free(&fs);
	idlist_free(&out);
	return rc;
}

/* Streams the index's copies of the run of differing ranges r[0, nr) and
 * judges them with m's entries in those ranges. Keys-only first (pages
 * without stored fields), checked by each range's summary, and the copies
 * that can become drift read again (sum_check, sum_reread); with a
 * routing rule, a content compare or a keep clause (which look at every
 * copy's place) with stored fields throughout. */
static RC_MUST_CHECK rcode
sum_descend(struct pass *p, const struct idlist *m, const struct summary_range *r, size_t nr)
{
	struct idlist sub = {0}, part = {0}, checked = {0}, *judged;
	bool keys = !p->o->routing_rule && !p->o->compare_content && !p->o->keep_orphans;
	bool answered = false;
	int64_t read0 = p->o->stats ? p->o->stats->index_read : 0;
	rcode rc = RC_OK;

	/* a run no range of which the index summarized cannot check a
	 * keys-only read: stored fields at once */
	for (size_t k = 0; k < nr; k++)
		answered |= r[k].os_ok;
	keys = keys && answered;
	judged = keys ? &checked : &part;
	for (size_t i = r[0].from; rc == RC_OK && i < r[nr - 1].to; i++)
		rc = idlist_push_from(&sub, m, i);
	if (rc == RC_OK)
		rc = sum_stream(p, &part, r[0].lo, r[nr - 1].hi, keys);
	if (rc == RC_OK && keys)
		rc = sum_check(p, r, nr, &part, &checked);
	if (rc == RC_OK && keys)
		rc = sum_reread(p, &sub, &checked);
	/* the brake compares what the judging sweep read with the index's
	 * count: the copies judged, however often they were read */
	if (rc == RC_OK && keys && p->o->stats)
		p->o->stats->index_read = read0 + (sweep_judges(p) ? (int64_t)checked.n : 0);
	if (rc == RC_OK)
		rc = judge(p, &sub, judged, false);
	idlist_free(&sub);
	idlist_free(&part);
	idlist_free(&checked);
	return rc;
}

static void
sum_count(struct pass *p, int64_t summarized, int64_t descended, int64_t read)
{
	if (p->o->stats == NULL)
		return;
	p->o->stats->ranges_summarized += summarized;
	p->o->stats->ranges_descended += descended;
	/* the brake compares what the judging sweep saw with the index's count */
	if (sweep_judges(p))
		p->o->stats->index_read += read;
}

/* The index side of n ranges; a vanished index answers nothing (every
 * range is then streamed, and finds nothing). */
static RC_MUST_CHECK rcode
sum_ask(struct pass *p, struct summary_range *r, size_t n)
{
	rcode rc;

	if (p->index_gone)
		return RC_OK;
	rc = p->io->index_summaries(p->io->ctx, r, n, p->err);
	if (rc == RC_ERR_NOTFOUND) {
		*p->err = (struct rerror){0};
		p->index_gone = true;
		rc = RC_OK;
	}
	return rc;
}

/* auto: whether the first ranges, this chunk's the last of them, read
 * more than a fifth of their ids' copies with stored fields; then the rest
 * of the pass merges, from after this chunk. */
static RC_MUST_CHECK rcode
sum_fallback(struct pass *p, size_t n)
{
	char why[200];

	if (!p->o->summaries_fallback || p->sum_ranges - (int64_t)n >= SUM_FIRST_RANGES ||
	    p->sum_ranges < SUM_FIRST_RANGES || p->sum_stored * 5 <= p->sum_ids)
		return RC_OK;
	snprintf(why, sizeof(why),
	         "the first %" PRId64 " key ranges read %" PRId64 " copies whole for %" PRId64
	         " ids (more than a fifth): verifying by merge",
	         p->sum_ranges, p->sum_stored, p->sum_ids);
	return sum_stop(p, why);
}

/* A merge segment's chunk by summaries: its ranges whose summaries agree
 * are in sync; runs of differing ranges are streamed and judged. */
static RC_MUST_CHECK rcode
sum_chunk(struct pass *p, const struct idlist *m)
{
	struct summary_range *r = NULL;
	size_t n = 0;
	char *last;
	rcode rc = summary_plan(&r, &n, m, p->sum_prev, p->o->range_size, p->o->compare_versions);

	if (rc == RC_OK)
		rc = sum_ask(p, r, n);
	p->sum_ranges += (int64_t)n;
	p->sum_ids += (int64_t)m->n;
	for (size_t i = 0; rc == RC_OK && i < n;) {
		size_t j = i + 1;
		if (summary_equal(&r[i])) {
			sum_count(p, 1, 0, r[i].os_count);
			i++;
			continue;
		}
		while (j < n && !summary_equal(&r[j]))
			j++;
		sum_count(p, 0, (int64_t)(j - i), 0);
		rc = sum_descend(p, m, r + i, j - i);
		i = j;
	}
	free(r);
	if (rc == RC_OK && (last = strdup(idlist_id(m, m->n - 1))) == NULL)
		rc = RC_ERR_NOMEM;
	if (rc == RC_OK) {
		free(p->sum_prev);
		p->sum_prev = last;
	}
	if (rc == RC_OK)
		rc = sum_fallback(p, n);
	return rc;
}

/* The end of a summarized segment: the range past its last id holds
 * nothing MongoDB has; anything there is streamed and judged. */
static RC_MUST_CHECK rcode
sum_tail(struct pass *p)
{
	struct summary_range r = {.lo = p->sum_prev, .summarizable = true};
	rcode rc = sum_ask(p, &r, 1);

	if (rc == RC_OK && summary_equal(&r)) {
		sum_count(p, 1, 0, 0);
	} else if (rc == RC_OK) {
		sum_count(p, 0, 1, 0);
		p->os_hi = NULL;
		rc = os_restart(p, p->sum_prev);
		if (rc == RC_OK)
			rc = drain_segment(p);
	}
	free(p->sum_prev);
	p->sum_prev = NULL;
	return rc;
}

/* Judges a targeted run's chunk: ms the documents found (sorted, each
 * once), fs the copies found. Two documents of one text (a string "42"
 * and an int 42: an id conflict) are judged as a pass meets them, in two
 * segments: the first of each text merged with every copy, the others
 * as a lookup of their own texts' copies, so the second is never taken
 * for a missing document and its copy never rewritten. xm, xf: scratch. */
static RC_MUST_CHECK rcode
judge_ids(struct pass *p, const struct idlist *ms, struct idlist *fs, struct idlist *xm,
          struct idlist *xf)
{
	struct idlist first = {0};
	rcode rc = RC_OK;

	p->found = ms;
	idlist_clear(xm);
	idlist_clear(xf);
	for (size_t i = 0; rc == RC_OK && i < ms->n; i++)
		rc = i && strcmp(idlist_id(ms, i - 1), idlist_id(ms, i)) == 0
		         ? idlist_push_from(xm, ms, i)
		         : idlist_push_from(&first, ms, i);
	/* the copies of the second documents' texts (both lists in key order) */
	for (size_t i = 0, j = 0; rc == RC_OK && i < xm->n && j < fs->n;) {
		int c = diff_compare(idlist_id(xm, i), xm->v[i].id_len, idlist_id(fs, j),
		                     fs->v[j].id_len);
		if (c > 0)
			j++;
		else if (c < 0 ||
		         (i + 1 < xm->n && strcmp(idlist_id(xm, i + 1), idlist_id(xm, i)) == 0))
			i++;
		else
			rc = idlist_push_from(xf, fs, j++);
	}
	if (rc == RC_OK)
		rc = judge(p, &first, fs, false);
	if (rc == RC_OK && xm->n)
		rc = judge(p, xm, xf, true);
	idlist_free(&first);
	p->found = NULL;
	return rc;
}

/* Every class: a targeted run has not seen the collection, so every text
 * is asked of MongoDB (orphans, conflicts) as if any type could own it. */
#define ALL_CLASSES                                                                                \
	((1 << CLASS_NUMBER) | (1 << CLASS_STRING) | (1 << CLASS_OTHER_LOW) | (1 << CLASS_OID) |   \
	 (1 << CLASS_OTHER))

/* A targeted run of given ids: both sides looked up, in chunks, and judged
 * as a merge (so an index copy MongoDB has under no typed value the text
 * could stand for is an orphan, asked as the pass asks). */
static RC_MUST_CHECK rcode
pass_ids(struct pass *p)
{
	const struct pass_opts *o = p->o;
	struct idlist m = {0}, found = {0}, ms = {0}, fs = {0};
	size_t most = o->n_ids < (size_t)o->chunk_size ? o->n_ids : (size_t)o->chunk_size;
	bool *answered_at = malloc((most ? most : 1) * sizeof(*answered_at));
	rcode rc = RC_OK;

	p->answered = malloc((most ? most : 1) * sizeof(*p->answered));
	if (answered_at == NULL || p->answered == NULL)
		rc = RC_ERR_NOMEM;
	for (size_t at = 0; rc == RC_OK && at < o->n_ids && !*o->stop;
	     at += (size_t)o->chunk_size) {
		size_t n =
		    o->n_ids - at < (size_t)o->chunk_size ? o->n_ids - at : (size_t)o->chunk_size;
		idlist_clear(&m);
		idlist_clear(&found);
		p->n_answered = 0;
		rc = p->io->mongo_lookup(p->io->ctx, o->ids + at, n, &m, answered_at, p->err);
		for (size_t i = 0; rc == RC_OK && i < n; i++)
			if (answered_at[i])
				p->answered[p->n_answered++] = o->ids[at + i];
		qsort(p->answered, p->n_answered, sizeof(*p->answered), cmp_text);
		for (size_t k = 0; rc == RC_OK && k < n && !o->index_missing && !p->index_gone;
		     k += 1000) {
			rc = p->io->index_lookup(p->io->ctx, &found, o->ids + at + k,
			                         n - k < 1000 ? n - k : 1000, p->err);
			if (rc == RC_ERR_NOTFOUND) {
				*p->err = (struct rerror){0};
				p->index_gone = true;
				rc = RC_OK;
			}
		}
		if (rc == RC_OK)
			rc = idlist_sorted(p, &fs, &m);
		/* a document found twice (a split $in, two texts of one value) once */
		idlist_clear(&ms);
		for (size_t i = 0; rc == RC_OK && i < fs.n; i++)
			if (ms.n == 0 || strcmp(idlist_id(&ms, ms.n - 1), idlist_id(&fs, i)) ||
			    ms.v[ms.n - 1].type != fs.v[i].type)
				rc = idlist_push_from(&ms, &fs, i);
		if (rc == RC_OK)
			rc = idlist_sorted(p, &fs, &found);
		if (rc == RC_OK)
			rc = judge_ids(p, &ms, &fs, &m, &found);
		if (rc == RC_OK && ms.n && !*o->stop) {
			p->compared += (int64_t)ms.n;
			rc = p->io->on_chunk(p->io->ctx, idlist_id(&ms, ms.n - 1),
			                     (enum id_type)ms.v[ms.n - 1].type, p->compared,
			                     p->seen, p->err);
		}
	}
	idlist_free(&m);
	idlist_free(&found);
	idlist_free(&ms);
	idlist_free(&fs);
	free(answered_at);
	free(p->answered);
	p->answered = NULL;
	p->n_answered = 0;
	return rc;
}

rcode
pass_run(const struct pass_opts *o, const struct pass_io *io, struct rerror *err)
{
	struct pass p = {.o = o,
	                 .io = io,
	                 .err = err,
	                 .cur_class = -1,
	                 .seen = o->seen,
	                 .compared = o->compared};
	struct idlist chunk = {0}, part = {0};
	int cls;
	rcode rc = RC_OK;

	assert(o->chunk_size > 0 && o->stop);
	memset(p.has_type, -1, sizeof(p.has_type)); /* not asked yet */
	if (o->ids || o->targeted)
		p.seen = ALL_CLASSES;
	if (o->ids) {
		rc = pass_ids(&p);
		goto out;
	}
	p.sum_on = o->summaries && !o->targeted && !o->index_missing;
	if (o->cursor && !o->targeted) {
		/* resume inside the segment the cursor is in (its next range
		 * starts after the cursor) */
		p.cur_class = (int)doc_id_class_of(o->cursor, o->cursor_type);
		if (doc_class_merges(p.cur_class))
			rc = os_restart(&p, o->cursor);
		if (rc == RC_OK && p.sum_on && (p.sum_prev = strdup(o->cursor)) == NULL)
			rc = RC_ERR_NOMEM;
	}
	while (rc == RC_OK && !*o->stop) {
		rc = read_chunk(&p, &chunk, &cls);
		if (rc || chunk.n == 0)
			break;
		if (o->targeted) {
			/* documents changed since a time: looked up, no sweep */
			rc = lookup(&p, &chunk);
			goto chunk_done;
		}
		if (cls != p.cur_class) {
			if (p.cur_class >= 0 && doc_class_merges(p.cur_class))
				rc = p.sum_on ? sum_tail(&p) : drain_segment(&p);
			/* another class's keys sit among this one's in the index:
			 * every range would differ */
			if (rc == RC_OK && p.sum_on && p.cur_class >= 0)
				rc = sum_stop(&p, "the collection holds ids of several classes: "
				                  "verifying by merge");
			else if (rc == RC_OK && p.sum_on && !doc_class_merges(cls))
				rc = sum_stop(&p, sum_class_why(cls));
			p.cur_class = cls;
			if (rc == RC_OK && doc_class_merges(cls))
				rc = os_restart(&p, NULL);
		}
		p.seen |= 1 << cls;
		if (rc)
			break;
		if (doc_class_merges(cls) && p.sum_on) {
			rc = sum_chunk(&p, &chunk);
		} else if (doc_class_merges(cls)) {
			rc = os_take(&p, &part, idlist_id(&chunk, chunk.n - 1),
			             chunk.v[chunk.n - 1].id_len);
			if (rc == RC_OK)
				rc = judge(&p, &chunk, &part, false);
		} else {
			rc = lookup(&p, &chunk);
		}
	chunk_done:
		if (rc == RC_OK && !*o->stop) {
			size_t last = chunk.n - 1;
			p.compared += (int64_t)chunk.n;
			rc =
			    io->on_chunk(io->ctx, idlist_id(&chunk, last),
			                 (enum id_type)chunk.v[last].type, p.compared, p.seen, err);
		}
	}
	if (rc == RC_OK && !*o->stop && !o->targeted) {
		if (p.cur_class >= 0 && doc_class_merges(p.cur_class)) {
			rc = p.sum_on ? sum_tail(&p) : drain_segment(&p);
		} else if (!(p.seen & ((1 << CLASS_STRING) | (1 << CLASS_OID)))) {
			/* no merge segment swept the index: sweep it now for orphans */
			p.cur_class = -1;
			rc = os_restart(&p, NULL);
			if (rc == RC_OK)
				rc = drain_segment(&p);
		}
	}
out:
	if (rc == RC_ERR_NOMEM && err->code == RC_OK)
		rerror_set(err, rc, "out of memory");
	idlist_free(&chunk);
	idlist_free(&part);
	idlist_free(&p.os_buf);
	idlist_free(&p.held);
	free(p.os_after);
	free(p.sum_prev);
	return rc;
}
