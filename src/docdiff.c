/*
 * docdiff.c: one document's diff, for the CLI and the API.
 *
 * The MongoDB side is asked, in one query per typed value (FerretDB serves
 * _id equality from its index), for every value the id's text could stand
 * for (doc_id_append_candidates, as the pass does before calling a copy an
 * orphan); a document counts when its canonical id is exactly the text. Its
 * body is what a repair writes: the mirror's transform, else doc_to_json.
 * The index side is every copy of the id whatever its routing or backing
 * index (opensearch_copies), read as text with jtree so numbers stay exact.
 * The comparison is the content compare's (jtree.h): on the fields the body
 * has, and on the copy's leftovers (owned.h): top-level fields the body does
 * not write that OPENSEARCH_INDEX_OWNED_FIELDS does not name (a field the
 * transform renamed), named "-name" in "fields" and removed by the patch.
 *
 * Nothing secret is in the answer: documents, the copy, names of indices.
 */
#include "docdiff.h"

#include "doc.h"
#include "jtree.h"
#include "log.h"
#include "mongo.h"
#include "opensearch.h"
#include "owned.h"
#include "transform.h"

#include <stdlib.h>
#include <string.h>

static const char *const state_names[] = {
    [DOCDIFF_IN_SYNC] = "in_sync", [DOCDIFF_STALE] = "stale",       [DOCDIFF_MISSING] = "missing",
    [DOCDIFF_ORPHAN] = "orphan",   [DOCDIFF_CONFLICT] = "conflict", [DOCDIFF_EXCLUDED] = "excluded",
    [DOCDIFF_FAILED] = "failed",   [DOCDIFF_KEPT] = "kept",
};

const char *
docdiff_state_name(enum docdiff_state s)
{
	return s <= DOCDIFF_KEPT ? state_names[s] : "unknown";
}

const char *
docdiff_bad_id(const char *id, size_t len)
{
	if (len == 0)
		return "the id is empty";
	if (memchr(id, '\0', len))
		return "the id holds a NUL character, which no document id this reconciler carries "
		       "has";
	if (len > OPENSEARCH_ID_MAX_BYTES)
		return "the id is over OpenSearch's _id limit of 512 bytes";
	if (!util_utf8_valid(id, len))
		return "the id is not valid UTF-8";
	return NULL;
}

/* What MongoDB has under the id's text. */
struct found {
	const char *id;
	int types;   /* bit 1 << enum id_type of each document found */
	bson_t *doc; /* the first one */
	enum id_type type;
	struct buf text;
	rcode rc;
};

static int
on_doc(void *ctx, const bson_t *doc)
{
	struct found *f = ctx;
	bson_iter_t it;
	enum id_type type;

	if (!bson_iter_init_find(&it, doc, "_id"))
		return 0;
	buf_reset(&f->text);
	if ((f->rc = doc_id_canonical(bson_iter_value(&it), &f->text, &type)))
		return 1;
	if (strcmp(f->text.data, f->id) != 0)
		return 0;
	f->types |= 1 << type;
	if (f->doc == NULL) {
		f->type = type;
		if ((f->doc = bson_copy(doc)) == NULL) {
			f->rc = RC_ERR_NOMEM;
			return 1;
		}
	}
	return 0;
}

static void
on_refused(void *ctx, size_t index, const char *reason)
{
	struct found *f = ctx;

	log_debug("diff: MongoDB refused to be asked for a value of the id %.200s (%s)", f->id,
	          reason);
	(void)index;
}

static RC_MUST_CHECK rcode
json_str(struct buf *out, const char *s)
{
	return s ? doc_json_string(out, s, strlen(s)) : buf_puts(out, "null");
}

/* The hit kept of several copies: one under the id's own _id first. */
static const struct jt *
pick_copy(const struct jt *hits, const char *id, size_t *n)
{
	const struct jt *best = NULL;

	*n = 0;
	if (hits == NULL || hits->type != JT_ARRAY)
		return NULL;
	*n = hits->n;
	for (size_t i = 0; i < hits->n; i++) {
		const struct jt *h = &hits->kids[i], *hid = jt_get(h, "_id");
		if (hid && hid->type == JT_STRING && strcmp(hid->str, id) == 0)
			return h;
		if (best == NULL)
			best = h;
	}
	return best;
}

static const char *
str_of(const struct jt *obj, const char *key)
{
	const struct jt *v = jt_get(obj, key);

	return v && v->type == JT_STRING ? v->str : NULL;
}

/* One diff in progress: both sides, and what they hold. */
struct sides {
	const struct config *cfg;
	const char *id;
	bool upsert; /* RECONCILE_WRITE_MODE=upsert: fields compared as an update */
	struct transform *tf;
	struct mongo *m;
	struct opensearch *os;
	struct found f;              /* MongoDB's documents under the text */
	struct buf body;             /* what a repair would write */
	char *routing;               /* its routing */
	char *failure;               /* why the document cannot be converted */
	bool have_body;              /* converted, and not left out by the script */
	struct jt *btree;            /* body, parsed */
	struct buf resp;             /* the index's copies: the _search answer */
	struct jt *rtree;            /* resp, parsed */
	const struct jt *copy, *src; /* the copy kept, and its _source */
	size_t n_copies;
};

static void
sides_release(struct sides *s)
{
	bson_destroy(s->f.doc);
	buf_free(&s->f.text);
	buf_free(&s->body);
	buf_free(&s->resp);
	jt_free(s->btree);
	jt_free(s->rtree);
	free(s->routing);
	free(s->failure);
	opensearch_free(s->os);
	mongo_free(s->m);
	transform_free(s->tf);
}

/* MongoDB's side: every typed value the text could stand for, asked. */
static RC_MUST_CHECK rcode
mongo_side(struct sides *s, struct rerror *err)
{
	const struct config *cfg = s->cfg;
	bson_t arr = BSON_INITIALIZER;
	uint32_t k = 0;
	rcode rc = transform_new(&s->tf, cfg, err);

	if (rc == RC_OK)
		rc = mongo_open(&s->m, cfg->mongodb_uri, cfg->mongodb_database,
		                cfg->mongodb_collection, err);
	if (rc == RC_OK && (rc = doc_id_append_candidates(&arr, &k, s->id)))
		rerror_set(err, rc, "out of memory");
	if (rc == RC_OK)
		rc = mongo_fetch(s->m, &arr, NULL, true, on_doc, on_refused, &s->f, err);
	if (rc == RC_OK && s->f.rc)
		rc = rerror_set(err, s->f.rc, "MongoDB: a document _id that cannot be read");
	bson_destroy(&arr);
	return rc;
}

/* What a repair would write for the document found: the body (parsed),
 * or why it cannot be written (failure), or nothing (left out). */
static RC_MUST_CHECK rcode
repair_body(struct sides *s, struct rerror *err)
{
	const char *idf = s->cfg->opensearch_id_field;
	struct rerror te = {0};
	bool skip = false;
	/* transform_apply as a repair calls it, with or without steps: it also
	 * gives OPENSEARCH_ROUTING_FIELD's routing (QA19 F10: null before) */
	rcode trc = transform_apply(s->tf, s->f.doc, idf, s->id, &s->body, &s->routing, &skip, &te);

	if (trc == RC_ERR_NOMEM)
		return rerror_set(err, trc, "out of memory");
	if (trc && (s->failure = strdup(te.message)) == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	s->have_body = trc == RC_OK && !skip;
	if (s->have_body)
		return jt_parse(&s->btree, s->body.data, s->body.len, err);
	return RC_OK;
}

/* The index's side: every copy of the id, one of them kept. */
static RC_MUST_CHECK rcode
index_side(struct sides *s, struct rerror *err)
{
	rcode rc = opensearch_open(&s->os, s->cfg, err);

	if (rc == RC_OK) {
		rc = opensearch_copies(s->os, &s->resp, s->cfg->opensearch_id_field, s->id, err);
		if (rc == RC_ERR_NOTFOUND) {
			*err = (struct rerror){0};
			rc = RC_OK;
			buf_reset(&s->resp);
		}
	}
	if (rc || s->resp.len == 0)
		return rc;
	if ((rc = jt_parse(&s->rtree, s->resp.data, s->resp.len, err)))
		return rerror_set(err, RC_ERR_OPENSEARCH, "opensearch _search: %s", err->message);
	s->copy = pick_copy(jt_get(jt_get(s->rtree, "hits"), "hits"), s->id, &s->n_copies);
	s->src = s->copy ? jt_get(s->copy, "_source") : NULL;
	return RC_OK;
}

/* The i-th member of the copy's _source is a leftover: the body does not
 * write it, the index does not own it (and it is the first of its name). */
static bool
leftover_at(const struct sides *s, size_t i)
{
	const struct jt *c = &s->src->kids[i];

	if (jt_get(s->btree, c->key) || jt_get(s->src, c->key) != c ||
	    owned_has(s->cfg->owned_fields, c->key, c->key_len))
		return false;
	return true;
}

static bool
has_leftovers(const struct sides *s)
{
	for (size_t i = 0; s->src && s->src->type == JT_OBJECT && i < s->src->n; i++)
		if (leftover_at(s, i))
			return true;
	return false;
}

static enum docdiff_state
sides_state(const struct sides *s)
{
	if (s->f.types & (s->f.types - 1))
		return DOCDIFF_CONFLICT;
	if (s->f.doc == NULL)
		return DOCDIFF_ORPHAN;
	if (s->failure)
		return DOCDIFF_FAILED;
	if (!s->have_body)
		return s->copy ? DOCDIFF_ORPHAN : DOCDIFF_EXCLUDED;
	if (s->copy == NULL)
		return DOCDIFF_MISSING;
	return jt_same_fields(s->src, s->btree, s->upsert) && !has_leftovers(s) ? DOCDIFF_IN_SYNC
	                                                                        : DOCDIFF_STALE;
}

/* The answer's "index": the copy kept, or null. */
static RC_MUST_CHECK rcode
copy_json(struct buf *out, const struct sides *s)
{
	rcode rc;

	if (s->copy == NULL)
		return buf_puts(out, "null");
	rc = buf_puts(out, "{\"_index\":");
	if (rc == RC_OK)
		rc = json_str(out, str_of(s->copy, "_index"));
	if (rc == RC_OK)
		rc = buf_puts(out, ",\"_id\":");
	if (rc == RC_OK)
		rc = json_str(out, str_of(s->copy, "_id"));
	if (rc == RC_OK)
		rc = buf_puts(out, ",\"_routing\":");
	if (rc == RC_OK)
		rc = json_str(out, str_of(s->copy, "_routing"));
	if (rc == RC_OK)
		rc = buf_puts(out, ",\"_source\":");
	if (rc == RC_OK)
		rc = s->src ? buf_append(out, s->src->raw, s->src->raw_len) : buf_puts(out, "null");
	if (rc == RC_OK)
		rc = buf_puts(out, "}");
	return rc;
}

/* The answer's "fields" (the body's fields the copy does not hold alike,
 * then the copy's leftovers as "-name") and "patch", or nulls without a
 * body. */
static RC_MUST_CHECK rcode
fields_json(struct buf *out, const struct sides *s)
{
	struct buf name = {0};
	bool first = true;
	rcode rc;

	if (!s->have_body)
		return buf_puts(out, "null,\"patch\":null");
	rc = buf_puts(out, "[");
	for (size_t i = 0; rc == RC_OK && i < s->btree->n; i++) {
		const struct jt *mb = &s->btree->kids[i];
		if (jt_field_same(s->src, mb, s->upsert))
			continue;
		rc = buf_puts(out, first ? "" : ",");
		first = false;
		if (rc == RC_OK)
			rc = doc_json_string(out, mb->key, mb->key_len);
	}
	/* the leftovers, "-name" */
	for (size_t i = 0; rc == RC_OK && s->src && s->src->type == JT_OBJECT && i < s->src->n;
	     i++) {
		if (!leftover_at(s, i))
			continue;
		buf_reset(&name);
		rc = buf_puts(&name, "-");
		if (rc == RC_OK)
			rc = buf_append(&name, s->src->kids[i].key, s->src->kids[i].key_len);
		if (rc == RC_OK)
			rc = buf_puts(out, first ? "" : ",");
		first = false;
		if (rc == RC_OK)
			rc = doc_json_string(out, name.data, name.len);
	}
	if (rc == RC_OK)
		rc = buf_puts(out, "],\"patch\":");
	if (rc == RC_OK)
		rc = jt_patch(out, s->src, s->btree, s->upsert);
	/* and their removal, before the patch's closing bracket */
	for (size_t i = 0; rc == RC_OK && s->src && s->src->type == JT_OBJECT && i < s->src->n;
	     i++) {
		if (!leftover_at(s, i))
			continue;
		out->len--; /* the "]" */
		buf_reset(&name);
		rc = buf_puts(&name, "/");
		if (rc == RC_OK)
			rc = jt_pointer_token(&name, s->src->kids[i].key, s->src->kids[i].key_len);
		if (rc == RC_OK)
			rc = buf_puts(out, out->data[out->len - 1] == '['
			                       ? "{\"op\":\"remove\",\"path\":"
			                       : ",{\"op\":\"remove\",\"path\":");
		if (rc == RC_OK)
			rc = doc_json_string(out, name.data, name.len);
		if (rc == RC_OK)
			rc = buf_puts(out, "}]");
	}
	buf_free(&name);
	return rc;
}

/* The answer, appended to out. */
static RC_MUST_CHECK rcode
answer_json(struct buf *out, const struct sides *s, enum docdiff_state state)
{
	rcode rc = buf_printf(out, "{\"mirror\":");

	if (rc == RC_OK)
		rc = json_str(out, s->cfg->name ? s->cfg->name : "default");
	if (rc == RC_OK)
		rc = buf_puts(out, ",\"id\":");
	if (rc == RC_OK)
		rc = json_str(out, s->id);
	if (rc == RC_OK)
		rc = buf_printf(out, ",\"idType\":");
	if (rc == RC_OK)
		rc = json_str(out, s->f.doc ? doc_id_type_name(s->f.type) : NULL);
	if (rc == RC_OK)
		rc = buf_printf(out, ",\"state\":\"%s\",\"mongodb\":", docdiff_state_name(state));
	if (rc == RC_OK)
		rc = s->have_body ? buf_append(out, s->body.data, s->body.len)
		                  : buf_puts(out, "null");
	if (rc == RC_OK)
		rc = buf_puts(out, ",\"routing\":");
	if (rc == RC_OK)
		rc = json_str(out, s->have_body ? s->routing : NULL);
	if (rc == RC_OK)
		rc = buf_puts(out, ",\"index\":");
	if (rc == RC_OK)
		rc = copy_json(out, s);
	if (rc == RC_OK)
		rc = buf_printf(out, ",\"copies\":%zu,\"fields\":", s->n_copies);
	if (rc == RC_OK)
		rc = fields_json(out, s);
	if (rc == RC_OK && s->failure) {
		rc = buf_puts(out, ",\"error\":");
		if (rc == RC_OK)
			rc = json_str(out, s->failure);
	}
	if (rc == RC_OK && state == DOCDIFF_KEPT)
		rc = buf_printf(out, ",\"why\":\"%s\"",
		                s->f.doc ? "the transform leaves the document out, and its copy "
		                           "matches OPENSEARCH_KEEP_QUERY: kept on purpose, never "
		                           "deleted"
		                         : "no MongoDB document, and the copy matches "
		                           "OPENSEARCH_KEEP_QUERY: kept on purpose, never deleted");
	if (rc == RC_OK && state == DOCDIFF_CONFLICT)
		rc = buf_puts(out,
		              ",\"error\":\"MongoDB has documents of several types whose id has "
		              "this text: the index can hold only one of them\"");
	if (rc == RC_OK)
		rc = buf_puts(out, "}");
	return rc;
}

rcode
docdiff_json(struct buf *out, enum docdiff_state *state, const struct config *cfg, const char *id,
             struct rerror *err)
{
	struct sides s = {
	    .cfg = cfg, .id = id, .upsert = cfg->write_mode == WRITE_UPSERT, .f = {.id = id}};
	const char *bad = docdiff_bad_id(id, strlen(id));
	rcode rc;

	if (bad)
		return rerror_set(err, RC_ERR_INVALID, "%s", bad);
	if (doc_id_unaskable(id))
		return rerror_set(
		    err, RC_ERR_INVALID,
		    "the id stands for a value MongoDB cannot be asked about (NaN, an "
		    "infinity, MinKey, MaxKey or a Decimal128)");
	if ((rc = mongo_side(&s, err)) || (s.f.doc && (rc = repair_body(&s, err))) ||
	    (rc = index_side(&s, err)))
		goto out;
	if (s.f.doc == NULL && s.copy == NULL) {
		rc =
		    rerror_set(err, RC_ERR_NOTFOUND,
		               "no document with the id %.600s in MongoDB (under any type its text "
		               "could stand for) or in the index",
		               id);
		goto out;
	}
	*state = sides_state(&s);
	if (*state == DOCDIFF_ORPHAN && *cfg->opensearch_keep_query) {
		/* what a run does with it: kept when it matches the clause (QA19 F7) */
		bool kept = false;
		if ((rc = opensearch_copy_matches(s.os, &kept, str_of(s.copy, "_index"),
		                                  str_of(s.copy, "_id"), cfg->opensearch_keep_query,
		                                  err)))
			goto out;
		*state = kept ? DOCDIFF_KEPT : *state;
	}
	if ((rc = answer_json(out, &s, *state)))
		rc = rerror_set(err, rc, "out of memory");
out:
	sides_release(&s);
	return rc;
}
