/*
 * jtree.c: JSON values parsed into a tree that keeps their text, compared
 * by meaning, and diffed as a JSON Patch. See jtree.h for the rules.
 *
 * The parser is a plain recursive descent over RFC 8259 (no extensions),
 * bounded by JT_MAX_DEPTH. Strings are decoded to UTF-8 (escapes, surrogate
 * pairs); a lone surrogate escape becomes U+FFFD, as doc_json_string writes
 * invalid text, so both sides of a comparison decode alike.
 */
#include "jtree.h"

#include "doc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct parser {
	const char *s, *end, *start;
	struct rerror *err;
};

static rcode
fail(struct parser *p, const char *why)
{
	return rerror_set(p->err, RC_ERR_INVALID, "JSON: %s at offset %zu", why,
	                  (size_t)(p->s - p->start));
}

static void
skip_ws(struct parser *p)
{
	while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
		p->s++;
}

static int
hex4(const char *s)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

static RC_MUST_CHECK rcode
put_utf8(struct buf *b, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return buf_append(b, u, n);
}

/* A string at p->s (the opening quote), decoded into *out (malloc'd). */
static RC_MUST_CHECK rcode
parse_string(struct parser *p, char **out, size_t *out_len)
{
	struct buf b = {0};
	rcode rc = RC_OK;

	p->s++; /* the quote */
	for (;;) {
		const char *run = p->s;
		while (p->s < p->end && *p->s != '"' && *p->s != '\\' &&
		       (unsigned char)*p->s >= 0x20)
			p->s++;
		if (p->s > run && (rc = buf_append(&b, run, (size_t)(p->s - run))))
			goto out;
		if (p->s >= p->end) {
			rc = fail(p, "unterminated string");
			goto out;
		}
		if (*p->s == '"') {
			p->s++;
			break;
		}
		if (*p->s != '\\') {
			rc = fail(p, "control character in a string");
			goto out;
		}
		if (p->end - p->s < 2) {
			rc = fail(p, "unterminated string");
			goto out;
		}
		char c = p->s[1];
		const char *simple = strchr("\"\\/bfnrt", c);
		if (c && simple) {
			static const char to[] = "\"\\/\b\f\n\r\t";
			char ch = to[simple - "\"\\/bfnrt"];
			p->s += 2;
			if ((rc = buf_append(&b, &ch, 1)))
				goto out;
			continue;
		}
		if (c != 'u' || p->end - p->s < 6 || hex4(p->s + 2) < 0) {
			rc = fail(p, "bad escape in a string");
			goto out;
		}
		uint32_t cp = (uint32_t)hex4(p->s + 2);
		p->s += 6;
		if (cp >= 0xD800 && cp < 0xDC00) {
			int lo = p->end - p->s >= 6 && p->s[0] == '\\' && p->s[1] == 'u'
			             ? hex4(p->s + 2)
			             : -1;
			if (lo >= 0xDC00 && lo < 0xE000) {
				cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
				p->s += 6;
			} else {
				cp = 0xFFFD;
			}
		} else if (cp >= 0xDC00 && cp < 0xE000) {
			cp = 0xFFFD;
		}
		if ((rc = put_utf8(&b, cp)))
			goto out;
	}
	if (b.data == NULL && (rc = buf_reserve(&b, 1)))
		goto out;
	*out = b.data;
	*out_len = b.len;
	return RC_OK;
out:
	buf_free(&b);
	return rc;
}

static RC_MUST_CHECK rcode
parse_number(struct parser *p)
{
	const char *s = p->s;

	if (s < p->end && *s == '-')
		s++;
	if (s >= p->end || *s < '0' || *s > '9')
		return fail(p, "bad number");
	if (*s == '0')
		s++;
	else
		while (s < p->end && *s >= '0' && *s <= '9')
			s++;
	if (s < p->end && *s == '.') {
		s++;
		if (s >= p->end || *s < '0' || *s > '9')
			return fail(p, "bad number");
		while (s < p->end && *s >= '0' && *s <= '9')
			s++;
	}
	if (s < p->end && (*s == 'e' || *s == 'E')) {
		s++;
		if (s < p->end && (*s == '+' || *s == '-'))
			s++;
		if (s >= p->end || *s < '0' || *s > '9')
			return fail(p, "bad number");
		while (s < p->end && *s >= '0' && *s <= '9')
			s++;
	}
	p->s = s;
	return RC_OK;
}

static RC_MUST_CHECK rcode
kid_new(struct jt *t, struct jt **out)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		struct jt *k = realloc(t->kids, cap * sizeof(*k));
		if (k == NULL)
			return RC_ERR_NOMEM;
		t->kids = k;
		t->cap = cap;
	}
	*out = &t->kids[t->n++];
	memset(*out, 0, sizeof(**out));
	return RC_OK;
}

static RC_MUST_CHECK rcode parse_value(struct parser *p, struct jt *t, int depth);

static RC_MUST_CHECK rcode
parse_container(struct parser *p, struct jt *t, int depth)
{
	bool object = *p->s == '{';
	char close = object ? '}' : ']';
	rcode rc;

	t->type = object ? JT_OBJECT : JT_ARRAY;
	p->s++;
	skip_ws(p);
	if (p->s < p->end && *p->s == close) {
		p->s++;
		return RC_OK;
	}
	for (;;) {
		struct jt *k;
		char *key = NULL;
		size_t key_len = 0;
		skip_ws(p);
		if (object) {
			if (p->s >= p->end || *p->s != '"')
				return fail(p, "expected a member name");
			if ((rc = parse_string(p, &key, &key_len)))
				return rc;
			skip_ws(p);
			if (p->s >= p->end || *p->s != ':') {
				free(key);
				return fail(p, "expected ':'");
			}
			p->s++;
		}
		if ((rc = kid_new(t, &k))) {
			free(key);
			return rerror_set(p->err, rc, "out of memory");
		}
		k->key = key;
		k->key_len = key_len;
		if ((rc = parse_value(p, k, depth + 1)))
			return rc;
		skip_ws(p);
		if (p->s < p->end && *p->s == ',') {
			p->s++;
			continue;
		}
		if (p->s < p->end && *p->s == close) {
			p->s++;
			return RC_OK;
		}
		return fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static rcode
parse_value(struct parser *p, struct jt *t, int depth)
{
	rcode rc = RC_OK;

	if (depth > JT_MAX_DEPTH)
		return fail(p, "nested too deep");
	skip_ws(p);
	if (p->s >= p->end)
		return fail(p, "expected a value");
	t->raw = p->s;
	switch (*p->s) {
	case '{':
	case '[':
		rc = parse_container(p, t, depth);
		break;
	case '"':
		t->type = JT_STRING;
		rc = parse_string(p, &t->str, &t->str_len);
		if (rc == RC_ERR_NOMEM)
			rc = rerror_set(p->err, rc, "out of memory");
		break;
	case 't':
	case 'f':
	case 'n': {
		const char *word = *p->s == 't' ? "true" : *p->s == 'f' ? "false" : "null";
		size_t wl = strlen(word);
		if ((size_t)(p->end - p->s) < wl || memcmp(p->s, word, wl))
			return fail(p, "unexpected text");
		t->type = *p->s == 't' ? JT_TRUE : *p->s == 'f' ? JT_FALSE : JT_NULL;
		p->s += wl;
		break;
	}
	default:
		t->type = JT_NUMBER;
		rc = parse_number(p);
	}
	t->raw_len = (size_t)(p->s - t->raw);
	return rc;
}

static void
jt_clear(struct jt *t)
{
	for (size_t i = 0; i < t->n; i++)
		jt_clear(&t->kids[i]);
	free(t->kids);
	free(t->str);
	free(t->key);
}

void
jt_free(struct jt *t)
{
	if (t == NULL)
		return;
	jt_clear(t);
	free(t);
}

rcode
jt_parse(struct jt **out, const char *text, size_t len, struct rerror *err)
{
	struct parser p = {.s = text, .end = text + len, .start = text, .err = err};
	struct jt *t = calloc(1, sizeof(*t));
	rcode rc;

	*out = NULL;
	if (t == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	rc = parse_value(&p, t, 0);
	if (rc == RC_OK) {
		skip_ws(&p);
		if (p.s != p.end)
			rc = fail(&p, "text after the value");
	}
	if (rc) {
		jt_free(t);
		return rc;
	}
	*out = t;
	return RC_OK;
}

const struct jt *
jt_get(const struct jt *obj, const char *key)
{
	size_t kl = strlen(key);

	if (obj == NULL || obj->type != JT_OBJECT)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (obj->kids[i].key_len == kl && memcmp(obj->kids[i].key, key, kl) == 0)
			return &obj->kids[i];
	return NULL;
}

const struct jt *
jt_path(const struct jt *obj, const char *const *names, size_t n)
{
	for (size_t i = 0; obj && i < n; i++)
		obj = jt_get(obj, names[i]);
	return obj;
}

/* ---- equality ------------------------------------------------------------ */

static bool
plain_integer(const char *s, size_t len)
{
	size_t i = s[0] == '-' ? 1 : 0;

	if (i >= len)
		return false;
	for (; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool
to_i64(const char *s, size_t len, int64_t *v)
{
	char tmp[32];

	if (len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return util_parse_i64(tmp, v) == 0;
}

static bool
to_double(const char *s, size_t len, double *v)
{
	char tmp[64], *end, *heap = NULL;
	const char *use = tmp;

	if (len < sizeof(tmp)) {
		memcpy(tmp, s, len);
		tmp[len] = '\0';
	} else {
		if ((heap = malloc(len + 1)) == NULL)
			return false;
		memcpy(heap, s, len);
		heap[len] = '\0';
		use = heap;
	}
	errno = 0;
	*v = strtod(use, &end);
	bool ok = *end == '\0';
	free(heap);
	return ok;
}

bool
jt_number_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	int64_t ia, ib;
	double da, db;

	if (alen == blen && memcmp(a, b, alen) == 0)
		return true;
	/* integers exactly while both fit an int64: a double would take
	 * 2^63-1 and 2^63-2 for one value */
	if (plain_integer(a, alen) && plain_integer(b, blen) && to_i64(a, alen, &ia) &&
	    to_i64(b, blen, &ib))
		return ia == ib;
	return to_double(a, alen, &da) && to_double(b, blen, &db) && da == db;
}

/* The fraction digits of an ISO-8601 text below the millisecond, trailing
 * zeros dropped (util_iso_to_ms reads milliseconds only). */
static void
sub_ms(const char *s, size_t len, const char **digits, size_t *n)
{
	const char *t = memchr(s, 'T', len), *end = s + len;

	*digits = "";
	*n = 0;
	if (t == NULL)
		t = memchr(s, ' ', len);
	if (t == NULL)
		return;
	const char *dot = memchr(t, '.', (size_t)(end - t));
	if (dot == NULL)
		return;
	const char *d = dot + 1, *e = d;
	while (e < end && *e >= '0' && *e <= '9')
		e++;
	if (e - d <= 3)
		return;
	d += 3;
	while (e > d && e[-1] == '0')
		e--;
	*digits = d;
	*n = (size_t)(e - d);
}

static bool
date_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	char ta[64], tb[64];
	int64_t ma, mb;
	const char *da, *db;
	size_t na, nb;

	/* dates are short and start with a digit or a sign */
	if (alen < 10 || blen < 10 || alen >= sizeof(ta) || blen >= sizeof(tb))
		return false;
	memcpy(ta, a, alen);
	ta[alen] = '\0';
	memcpy(tb, b, blen);
	tb[blen] = '\0';
	if (util_iso_to_ms(ta, &ma) || util_iso_to_ms(tb, &mb) || ma != mb)
		return false;
	sub_ms(a, alen, &da, &na);
	sub_ms(b, blen, &db, &nb);
	return na == nb && memcmp(da, db, na) == 0;
}

bool
jt_string_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen == blen && memcmp(a, b, alen) == 0)
		return true;
	return date_equal(a, alen, b, blen);
}

static int
cmp_member(const void *x, const void *y)
{
	const struct jt *a = *(const struct jt *const *)x, *b = *(const struct jt *const *)y;
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = memcmp(a->key, b->key, n);

	return c ? c : (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

static bool objects_equal(const struct jt *a, const struct jt *b);

bool
jt_equal(const struct jt *a, const struct jt *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case JT_NUMBER:
		return jt_number_equal(a->raw, a->raw_len, b->raw, b->raw_len);
	case JT_STRING:
		return jt_string_equal(a->str, a->str_len, b->str, b->str_len);
	case JT_ARRAY:
		if (a->n != b->n)
			return false;
		for (size_t i = 0; i < a->n; i++)
			if (!jt_equal(&a->kids[i], &b->kids[i]))
				return false;
		return true;
	case JT_OBJECT:
		return objects_equal(a, b);
	default:
		return true;
	}
}

/* The same members, whatever their order: small objects member by member,
 * larger ones by sorting both sides' names. */
static bool
objects_equal(const struct jt *a, const struct jt *b)
{
	if (a->n != b->n)
		return false;
	if (a->n <= 16) {
		for (size_t i = 0; i < a->n; i++) {
			const struct jt *m = NULL;
			/* the same place first: key order is usually the same */
			if (b->kids[i].key_len == a->kids[i].key_len &&
			    memcmp(b->kids[i].key, a->kids[i].key, a->kids[i].key_len) == 0)
				m = &b->kids[i];
			else
				m = jt_get(b, a->kids[i].key);
			if (m == NULL || !jt_equal(&a->kids[i], m))
				return false;
		}
		return true;
	}
	const struct jt **sa = malloc(a->n * sizeof(*sa)), **sb = malloc(b->n * sizeof(*sb));
	bool eq = sa && sb;
	for (size_t i = 0; eq && i < a->n; i++) {
		sa[i] = &a->kids[i];
		sb[i] = &b->kids[i];
	}
	if (eq) {
		qsort(sa, a->n, sizeof(*sa), cmp_member);
		qsort(sb, b->n, sizeof(*sb), cmp_member);
	}
	for (size_t i = 0; eq && i < a->n; i++)
		eq = cmp_member(&sa[i], &sb[i]) == 0 && jt_equal(sa[i], sb[i]);
	free(sa);
	free(sb);
	return eq;
}

/* ---- differences ----------------------------------------------------------- */

/* Whether the value a writes is what copy holds: jt_equal, except that
 * under merge (a partial update) an object in both is covered member by
 * member and members only copy has are left alone, at every depth, as
 * OpenSearch merges a partial update's objects into the copy's. Arrays are
 * replaced whole by either write. */
static bool
covers(const struct jt *copy, const struct jt *body, bool merge)
{
	if (!merge || copy == NULL || body == NULL || copy->type != JT_OBJECT ||
	    body->type != JT_OBJECT)
		return jt_equal(copy, body);
	for (size_t i = 0; i < body->n; i++)
		if (!covers(jt_get(copy, body->kids[i].key), &body->kids[i], true))
			return false;
	return true;
}

bool
jt_same_fields(const struct jt *copy, const struct jt *body, bool merge)
{
	for (size_t i = 0; body && body->type == JT_OBJECT && i < body->n; i++)
		if (!covers(jt_get(copy, body->kids[i].key), &body->kids[i], merge))
			return false;
	return true;
}

bool
jt_field_same(const struct jt *copy, const struct jt *member, bool merge)
{
	return covers(jt_get(copy, member->key), member, merge);
}

rcode
jt_diff_fields(struct buf *names, size_t max, size_t *count, const struct jt *copy,
               const struct jt *body, bool merge)
{
	size_t start = names->len;
	bool cut = false;
	rcode rc = RC_OK;

	*count = 0;
	if (body == NULL || body->type != JT_OBJECT)
		return RC_OK;
	for (size_t i = 0; rc == RC_OK && i < body->n; i++) {
		const struct jt *m = &body->kids[i];
		if (covers(jt_get(copy, m->key), m, merge))
			continue;
		(*count)++;
		if (cut)
			continue;
		size_t sep = names->len > start ? 1 : 0;
		if (names->len - start + sep + m->key_len > max) {
			cut = true;
			rc = buf_puts(names, names->len > start ? ",..." : "...");
			continue;
		}
		if (sep)
			rc = buf_puts(names, ",");
		if (rc == RC_OK)
			rc = buf_append(names, m->key, m->key_len);
	}
	return rc;
}

rcode
jt_pointer_token(struct buf *out, const char *s, size_t len)
{
	rcode rc = RC_OK;

	for (size_t i = 0; rc == RC_OK && i < len; i++) {
		if (s[i] == '~')
			rc = buf_puts(out, "~0");
		else if (s[i] == '/')
			rc = buf_puts(out, "~1");
		else
			rc = buf_append(out, &s[i], 1);
	}
	return rc;
}

static RC_MUST_CHECK rcode
op(struct buf *out, bool *first, const char *name, const struct buf *path, const struct jt *value)
{
	rcode rc = buf_printf(out, "%s{\"op\":\"%s\",\"path\":", *first ? "" : ",", name);

	*first = false;
	if (rc == RC_OK)
		rc = doc_json_string(out, path->data ? path->data : "", path->len);
	if (rc == RC_OK && value) {
		rc = buf_puts(out, ",\"value\":");
		if (rc == RC_OK)
			rc = buf_append(out, value->raw, value->raw_len);
	}
	if (rc == RC_OK)
		rc = buf_puts(out, "}");
	return rc;
}

/* Ops turning copy (an object) into body (an object) at path; keep: leave
 * members only copy has alone (the top level, and every level of a merge). */
static RC_MUST_CHECK rcode
patch_object(struct buf *out, bool *first, struct buf *path, const struct jt *copy,
             const struct jt *body, bool keep, bool merge)
{
	size_t at = path->len;
	rcode rc = RC_OK;

	for (size_t i = 0; rc == RC_OK && i < body->n; i++) {
		const struct jt *m = &body->kids[i];
		const struct jt *c = jt_get(copy, m->key);
		path->len = at;
		rc = buf_puts(path, "/");
		if (rc == RC_OK)
			rc = jt_pointer_token(path, m->key, m->key_len);
		if (rc || covers(c, m, merge))
			continue;
		if (c == NULL)
			rc = op(out, first, "add", path, m);
		else if (c->type == JT_OBJECT && m->type == JT_OBJECT)
			rc = patch_object(out, first, path, c, m, merge, merge);
		else
			rc = op(out, first, "replace", path, m);
	}
	for (size_t i = 0; rc == RC_OK && !keep && copy && i < copy->n; i++) {
		const struct jt *c = &copy->kids[i];
		if (jt_get(body, c->key) || jt_get(copy, c->key) != c)
			continue;
		path->len = at;
		rc = buf_puts(path, "/");
		if (rc == RC_OK)
			rc = jt_pointer_token(path, c->key, c->key_len);
		if (rc == RC_OK)
			rc = op(out, first, "remove", path, NULL);
	}
	path->len = at;
	if (path->data)
		path->data[at] = '\0';
	return rc;
}

rcode
jt_patch(struct buf *out, const struct jt *copy, const struct jt *body, bool merge)
{
	struct buf path = {0};
	bool first = true;
	rcode rc = buf_puts(out, "[");

	if (rc == RC_OK && body && body->type == JT_OBJECT)
		rc = patch_object(out, &first, &path, copy && copy->type == JT_OBJECT ? copy : NULL,
		                  body, true, merge);
	if (rc == RC_OK)
		rc = buf_puts(out, "]");
	buf_free(&path);
	return rc;
}
