/*
 * diff.c: merge-join of two sorted id chunks.
 *
 * Why a merge works: both sides are in the byte order of the canonical id
 * text (MongoDB sorts strings by bytes and ObjectIds by their 12 bytes, which
 * lowercase hex preserves; Lucene sorts keywords by UTF-8 bytes). One pass
 * over both arrays finds what only one side has, and where both have an id,
 * whether its version differs. O(n + m), no hashing, no allocation but the
 * three result arrays.
 */
#include "diff.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static RC_MUST_CHECK rcode
arena_put(struct idlist *l, const char *s, size_t len, size_t *off)
{
	if (l->arena_len + len + 1 > l->arena_cap) {
		size_t cap = l->arena_cap ? l->arena_cap : 4096;
		while (cap < l->arena_len + len + 1)
			cap *= 2;
		char *p = realloc(l->arena, cap);
		if (p == NULL)
			return RC_ERR_NOMEM;
		l->arena = p;
		l->arena_cap = cap;
	}
	*off = l->arena_len;
	memcpy(l->arena + l->arena_len, s, len);
	l->arena[l->arena_len + len] = '\0';
	l->arena_len += len + 1;
	return RC_OK;
}

rcode
idlist_push_hit(struct idlist *l, const char *id, size_t id_len, int type, const char *version,
                int64_t time_ms, const struct hit_where *w)
{
	const char *index = w ? w->index : NULL, *routing = w ? w->routing : NULL;
	const char *docid = w ? w->docid : NULL;
	struct idrec *r;

	if (id_len > UINT32_MAX)
		return RC_ERR_TOOLARGE;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct idrec *v = realloc(l->v, cap * sizeof(*v));
		if (v == NULL)
			return RC_ERR_NOMEM;
		l->v = v;
		l->cap = cap;
	}
	r = &l->v[l->n];
	r->version_off = r->index_off = r->routing_off = r->docid_off = SIZE_MAX;
	if (arena_put(l, id, id_len, &r->id_off) ||
	    (version && arena_put(l, version, strlen(version), &r->version_off)) ||
	    (index && arena_put(l, index, strlen(index), &r->index_off)) ||
	    (routing && arena_put(l, routing, strlen(routing), &r->routing_off)) ||
	    (docid && arena_put(l, docid, strlen(docid), &r->docid_off)))
		return RC_ERR_NOMEM;
	r->id_len = (uint32_t)id_len;
	r->type = (uint8_t)type;
	r->time_ms = time_ms;
	r->seq_no = w ? w->seq_no : 0;
	r->primary_term = w ? w->primary_term : 0;
	r->where_unknown = w ? w->where_unknown : false;
	l->n++;
	return RC_OK;
}

rcode
idlist_push(struct idlist *l, const char *id, size_t id_len, int type, const char *version,
            int64_t time_ms)
{
	return idlist_push_hit(l, id, id_len, type, version, time_ms, NULL);
}

rcode
idlist_push_from(struct idlist *dst, const struct idlist *src, size_t i)
{
	struct hit_where w = {idlist_index(src, i),   idlist_routing(src, i),
	                      idlist_docid(src, i),   src->v[i].seq_no,
	                      src->v[i].primary_term, src->v[i].where_unknown};

	return idlist_push_hit(dst, idlist_id(src, i), src->v[i].id_len, src->v[i].type,
	                       idlist_version(src, i), src->v[i].time_ms, &w);
}

void
idlist_clear(struct idlist *l)
{
	l->n = 0;
	l->arena_len = 0;
}

void
idlist_free(struct idlist *l)
{
	if (l == NULL)
		return;
	free(l->v);
	free(l->arena);
	memset(l, 0, sizeof(*l));
}

const char *
idlist_id(const struct idlist *l, size_t i)
{
	return l->arena + l->v[i].id_off;
}

const char *
idlist_version(const struct idlist *l, size_t i)
{
	return l->v[i].version_off == SIZE_MAX ? NULL : l->arena + l->v[i].version_off;
}

const char *
idlist_index(const struct idlist *l, size_t i)
{
	return l->v[i].index_off == SIZE_MAX ? NULL : l->arena + l->v[i].index_off;
}

const char *
idlist_routing(const struct idlist *l, size_t i)
{
	return l->v[i].routing_off == SIZE_MAX ? NULL : l->arena + l->v[i].routing_off;
}

const char *
idlist_docid(const struct idlist *l, size_t i)
{
	return l->v[i].docid_off == SIZE_MAX ? NULL : l->arena + l->v[i].docid_off;
}

const char *
idlist_target(const struct idlist *l, size_t i)
{
	const char *d = idlist_docid(l, i);

	return d ? d : idlist_id(l, i);
}

rcode
idlist_shift(struct idlist *l, size_t k)
{
	struct idlist rest = {0};
	rcode rc = RC_OK;

	if (k == 0)
		return RC_OK;
	for (size_t i = k; i < l->n && rc == RC_OK; i++)
		rc = idlist_push_from(&rest, l, i);
	if (rc) {
		idlist_free(&rest);
		return rc;
	}
	idlist_free(l);
	*l = rest;
	return RC_OK;
}

int
diff_compare(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

bool
diff_is_sorted(const struct idlist *l)
{
	for (size_t i = 1; i < l->n; i++)
		if (diff_compare(idlist_id(l, i - 1), l->v[i - 1].id_len, idlist_id(l, i),
		                 l->v[i].id_len) >= 0)
			return false;
	return true;
}

static RC_MUST_CHECK rcode
push_index(size_t **arr, size_t *n, size_t *cap, size_t v)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		size_t *p = realloc(*arr, c * sizeof(*p));
		if (p == NULL)
			return RC_ERR_NOMEM;
		*arr = p;
		*cap = c;
	}
	(*arr)[(*n)++] = v;
	return RC_OK;
}

rcode
diff_merge(struct drift *out, const struct idlist *mongo, const struct idlist *os,
           bool compare_versions)
{
	size_t i = 0, j = 0, cm = 0, cs = 0, cso = 0, nso = 0, co = 0, cd = 0, csa = 0, csb = 0,
	       nsb = 0;
	rcode rc = RC_OK;

	memset(out, 0, sizeof(*out));
	while (rc == RC_OK && (i < mongo->n || j < os->n)) {
		int c;
		if (i == mongo->n)
			c = 1;
		else if (j == os->n)
			c = -1;
		else
			c = diff_compare(idlist_id(mongo, i), mongo->v[i].id_len, idlist_id(os, j),
			                 os->v[j].id_len);
		if (c < 0) {
			rc = push_index(&out->missing, &out->n_missing, &cm, i++);
		} else if (c > 0) {
			rc = push_index(&out->orphan, &out->n_orphan, &co, j++);
		} else if (idlist_docid(os, j)) {
			/* no copy under the id's own _id (copies under their own _id
			 * come first): the document is missing, the copies extra */
			rc = push_index(&out->missing, &out->n_missing, &cm, i++);
			for (; rc == RC_OK && j < os->n &&
			       diff_compare(idlist_id(mongo, i - 1), mongo->v[i - 1].id_len,
			                    idlist_id(os, j), os->v[j].id_len) == 0;
			     j++)
				rc = push_index(&out->duplicate, &out->n_duplicate, &cd, j);
		} else {
			const char *a = idlist_version(mongo, i), *b = idlist_version(os, j);
			if (compare_versions && a && (b == NULL || strcmp(a, b) != 0)) {
				rc = push_index(&out->stale, &out->n_stale, &cs, i);
				if (rc == RC_OK)
					rc = push_index(&out->stale_os, &nso, &cso, j);
			} else {
				rc = push_index(&out->same, &out->n_same, &csa, i);
				if (rc == RC_OK)
					rc = push_index(&out->same_os, &nsb, &csb, j);
			}
			/* further copies of the same id (other backing indices) */
			for (size_t k = j + 1; rc == RC_OK && k < os->n &&
			                       diff_compare(idlist_id(os, j), os->v[j].id_len,
			                                    idlist_id(os, k), os->v[k].id_len) == 0;
			     k++, j++)
				rc = push_index(&out->duplicate, &out->n_duplicate, &cd, k);
			i++;
			j++;
		}
	}
	if (rc)
		drift_free(out);
	return rc;
}

void
drift_free(struct drift *d)
{
	if (d == NULL)
		return;
	free(d->missing);
	free(d->stale);
	free(d->stale_os);
	free(d->orphan);
	free(d->duplicate);
	free(d->same);
	free(d->same_os);
	memset(d, 0, sizeof(*d));
}

/* A version as a number: integers exactly (epoch ms pass 2^53 only in far
 * dates, but ids of counters may), else a finite decimal. */
static bool
version_number(const char *s, long long *i, double *d, bool *is_int)
{
	char *end;

	if (s == NULL || *s == '\0')
		return false;
	errno = 0;
	*i = strtoll(s, &end, 10);
	if (*end == '\0' && errno == 0) {
		*is_int = true;
		*d = (double)*i;
		return true;
	}
	*is_int = false;
	*d = strtod(s, &end);
	return *end == '\0' && isfinite(*d);
}

bool
diff_version_newer(const char *a, const char *b)
{
	long long ia, ib;
	double da, db;
	bool inta, intb;

	if (!version_number(a, &ia, &da, &inta) || !version_number(b, &ib, &db, &intb))
		return false;
	return inta && intb ? ia > ib : da > db;
}
