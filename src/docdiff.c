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
 * has; fields only the copy has (embeddings, ...) are not looked at.
 *
 * Nothing secret is in the answer: documents, the copy, names of indices.
 */
#include "docdiff.h"

#include "doc.h"
#include "jtree.h"
#include "log.h"
#include "mongo.h"
#include "opensearch.h"
#include "transform.h"

#include <stdlib.h>
#include <string.h>

static const char *const state_names[] = {
    [DOCDIFF_IN_SYNC] = "in_sync", [DOCDIFF_STALE] = "stale",       [DOCDIFF_MISSING] = "missing",
    [DOCDIFF_ORPHAN] = "orphan",   [DOCDIFF_CONFLICT] = "conflict", [DOCDIFF_EXCLUDED] = "excluded",
    [DOCDIFF_FAILED] = "failed",
};

const char *
docdiff_state_name(enum docdiff_state s)
{
	return s <= DOCDIFF_FAILED ? state_names[s] : "unknown";
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

rcode
docdiff_json(struct buf *out, enum docdiff_state *state, const struct config *cfg, const char *id,
             struct rerror *err)
{
	struct found f = {.id = id};
	struct transform *tf = NULL;
	struct mongo *m = NULL;
	struct opensearch *os = NULL;
	struct buf body = {0}, resp = {0};
	struct jt *btree = NULL, *rtree = NULL;
	const struct jt *copy = NULL, *src = NULL;
	char *routing = NULL, *failure = NULL;
	bool skip = false, have_body = false;
	size_t n_copies = 0;
	bson_t arr = BSON_INITIALIZER;
	uint32_t k = 0;
	const char *bad = docdiff_bad_id(id, strlen(id));
	rcode rc;

	if (bad)
		return rerror_set(err, RC_ERR_INVALID, "%s", bad);
	if (doc_id_unaskable(id))
		return rerror_set(
		    err, RC_ERR_INVALID,
		    "the id stands for a value MongoDB cannot be asked about (NaN, an "
		    "infinity, MinKey, MaxKey or a Decimal128)");
	rc = transform_new(&tf, cfg, err);
	if (rc == RC_OK)
		rc = mongo_open(&m, cfg->mongodb_uri, cfg->mongodb_database,
		                cfg->mongodb_collection, err);
	if (rc == RC_OK && (rc = doc_id_append_candidates(&arr, &k, id)))
		rerror_set(err, rc, "out of memory");
	if (rc == RC_OK)
		rc = mongo_fetch(m, &arr, NULL, true, on_doc, on_refused, &f, err);
	if (rc == RC_OK && f.rc)
		rc = rerror_set(err, f.rc, "MongoDB: a document _id that cannot be read");
	if (rc)
		goto out;
	/* what a repair would write */
	if (f.doc) {
		struct rerror te = {0};
		rcode trc = transform_active(tf)
		                ? transform_apply(tf, f.doc, cfg->opensearch_id_field, id, &body,
		                                  &routing, &skip, &te)
		                : doc_to_json(f.doc, cfg->opensearch_id_field, id, &body, &te);
		if (trc == RC_ERR_NOMEM) {
			rc = rerror_set(err, trc, "out of memory");
			goto out;
		}
		if (trc && (failure = strdup(te.message)) == NULL) {
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
			goto out;
		}
		have_body = trc == RC_OK && !skip;
		if (have_body && (rc = jt_parse(&btree, body.data, body.len, err)))
			goto out;
	}
	/* the index's copies */
	rc = opensearch_open(&os, cfg, err);
	if (rc == RC_OK) {
		rc = opensearch_copies(os, &resp, cfg->opensearch_id_field, id, err);
		if (rc == RC_ERR_NOTFOUND) {
			*err = (struct rerror){0};
			rc = RC_OK;
			buf_reset(&resp);
		}
	}
	if (rc)
		goto out;
	if (resp.len) {
		if ((rc = jt_parse(&rtree, resp.data, resp.len, err))) {
			rc = rerror_set(err, RC_ERR_OPENSEARCH, "opensearch _search: %s",
			                err->message);
			goto out;
		}
		copy = pick_copy(jt_get(jt_get(rtree, "hits"), "hits"), id, &n_copies);
		src = copy ? jt_get(copy, "_source") : NULL;
	}
	if (f.doc == NULL && copy == NULL) {
		rc =
		    rerror_set(err, RC_ERR_NOTFOUND,
		               "no document with the id %.600s in MongoDB (under any type its text "
		               "could stand for) or in the index",
		               id);
		goto out;
	}
	if (f.types & (f.types - 1))
		*state = DOCDIFF_CONFLICT;
	else if (f.doc == NULL)
		*state = DOCDIFF_ORPHAN;
	else if (failure)
		*state = DOCDIFF_FAILED;
	else if (!have_body)
		*state = copy ? DOCDIFF_ORPHAN : DOCDIFF_EXCLUDED;
	else if (copy == NULL)
		*state = DOCDIFF_MISSING;
	else
		*state = jt_same_fields(src, btree, cfg->write_mode == WRITE_UPSERT)
		             ? DOCDIFF_IN_SYNC
		             : DOCDIFF_STALE;

	/* the answer */
	rc = buf_printf(out, "{\"mirror\":");
	if (rc == RC_OK)
		rc = json_str(out, cfg->name ? cfg->name : "default");
	if (rc == RC_OK)
		rc = buf_puts(out, ",\"id\":");
	if (rc == RC_OK)
		rc = json_str(out, id);
	if (rc == RC_OK)
		rc = buf_printf(out, ",\"idType\":");
	if (rc == RC_OK)
		rc = json_str(out, f.doc ? doc_id_type_name(f.type) : NULL);
	if (rc == RC_OK)
		rc = buf_printf(out, ",\"state\":\"%s\",\"mongodb\":", docdiff_state_name(*state));
	if (rc == RC_OK)
		rc = have_body ? buf_append(out, body.data, body.len) : buf_puts(out, "null");
	if (rc == RC_OK)
		rc = buf_puts(out, ",\"routing\":");
	if (rc == RC_OK)
		rc = json_str(out, have_body ? routing : NULL);
	if (rc == RC_OK)
		rc = buf_puts(out, ",\"index\":");
	if (rc == RC_OK && copy) {
		rc = buf_puts(out, "{\"_index\":");
		if (rc == RC_OK)
			rc = json_str(out, str_of(copy, "_index"));
		if (rc == RC_OK)
			rc = buf_puts(out, ",\"_id\":");
		if (rc == RC_OK)
			rc = json_str(out, str_of(copy, "_id"));
		if (rc == RC_OK)
			rc = buf_puts(out, ",\"_routing\":");
		if (rc == RC_OK)
			rc = json_str(out, str_of(copy, "_routing"));
		if (rc == RC_OK)
			rc = buf_puts(out, ",\"_source\":");
		if (rc == RC_OK)
			rc = src ? buf_append(out, src->raw, src->raw_len) : buf_puts(out, "null");
		if (rc == RC_OK)
			rc = buf_puts(out, "}");
	} else if (rc == RC_OK) {
		rc = buf_puts(out, "null");
	}
	if (rc == RC_OK)
		rc = buf_printf(out, ",\"copies\":%zu,\"fields\":", n_copies);
	if (rc == RC_OK && have_body) {
		bool first = true;
		rc = buf_puts(out, "[");
		for (size_t i = 0; rc == RC_OK && i < btree->n; i++) {
			const struct jt *mb = &btree->kids[i];
			if (jt_field_same(src, mb, cfg->write_mode == WRITE_UPSERT))
				continue;
			rc = buf_puts(out, first ? "" : ",");
			first = false;
			if (rc == RC_OK)
				rc = doc_json_string(out, mb->key, mb->key_len);
		}
		if (rc == RC_OK)
			rc = buf_puts(out, "],\"patch\":");
		if (rc == RC_OK)
			rc = jt_patch(out, src, btree, cfg->write_mode == WRITE_UPSERT);
	} else if (rc == RC_OK) {
		rc = buf_puts(out, "null,\"patch\":null");
	}
	if (rc == RC_OK && failure) {
		rc = buf_puts(out, ",\"error\":");
		if (rc == RC_OK)
			rc = json_str(out, failure);
	}
	if (rc == RC_OK && *state == DOCDIFF_CONFLICT)
		rc = buf_puts(out,
		              ",\"error\":\"MongoDB has documents of several types whose id has "
		              "this text: the index can hold only one of them\"");
	if (rc == RC_OK)
		rc = buf_puts(out, "}");
	if (rc)
		rc = rerror_set(err, rc, "out of memory");
out:
	bson_destroy(&arr);
	bson_destroy(f.doc);
	buf_free(&f.text);
	buf_free(&body);
	buf_free(&resp);
	jt_free(btree);
	jt_free(rtree);
	free(routing);
	free(failure);
	opensearch_free(os);
	mongo_free(m);
	transform_free(tf);
	return rc;
}
