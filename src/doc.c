/*
 * doc.c: BSON -> OpenSearch JSON, and the canonical form of ids and
 * versions.
 *
 * JSON is written straight into a byte buffer (no intermediate tree): the
 * full re-index converts every document of a collection, and this keeps it
 * one pass with no allocation per value. The type mapping is the contract
 * with the index mapping; docs/MAPPING.md lists it and tests/unit/test_doc.c
 * checks it type by type.
 */
#include "doc.h"

#include <assert.h>
#include <inttypes.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const id_type_names[] = {"int",  "double", "string", "oid",
                                            "bool", "date",   "json"};

const char *
doc_id_type_name(enum id_type t)
{
	return id_type_names[t];
}

int
doc_id_type_parse(const char *name, enum id_type *out)
{
	for (int i = 0; i <= ID_JSON; i++) {
		if (name && strcmp(name, id_type_names[i]) == 0) {
			*out = (enum id_type)i;
			return 0;
		}
	}
	return -1;
}

enum id_class
doc_id_class(enum id_type t, const bson_value_t *v)
{
	switch (t) {
	case ID_INT:
	case ID_DOUBLE:
		return CLASS_NUMBER;
	case ID_STRING:
		return CLASS_STRING;
	case ID_OID:
		return CLASS_OID;
	case ID_BOOL:
	case ID_DATE:
		return CLASS_OTHER;
	case ID_JSON:
		/* objects, arrays and binary sort between strings and ObjectIds */
		if (v && (v->value_type == BSON_TYPE_DOCUMENT || v->value_type == BSON_TYPE_ARRAY ||
		          v->value_type == BSON_TYPE_BINARY))
			return CLASS_OTHER_LOW;
		return CLASS_OTHER;
	}
	return CLASS_OTHER;
}

enum id_class
doc_id_class_of(const char *canonical, enum id_type type)
{
	bson_t probe = BSON_INITIALIZER;
	bson_iter_t it;
	enum id_class c = doc_id_class(type, NULL);

	if (type == ID_JSON && doc_id_append(&probe, "v", canonical, type) == RC_OK &&
	    bson_iter_init_find(&it, &probe, "v"))
		c = doc_id_class(type, bson_iter_value(&it));
	bson_destroy(&probe);
	return c;
}

bool
doc_is_oid_hex(const char *s)
{
	size_t i = 0;

	for (; i < 24 && s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == 24 && s[i] == '\0';
}

int64_t
doc_oid_time_ms(const char *s)
{
	int64_t t = 0;

	if (!doc_is_oid_hex(s))
		return -1;
	for (int i = 0; i < 8; i++)
		t = t * 16 + (s[i] <= '9' ? s[i] - '0' : s[i] - 'a' + 10);
	return t * 1000;
}

bool
doc_class_merges(enum id_class c)
{
	return c == CLASS_STRING || c == CLASS_OID;
}

#ifdef __SIZEOF_INT128__
/* GCC's and Clang's 128-bit integer (on 64-bit targets; elsewhere every
 * double takes the snprintf search). */
__extension__ typedef unsigned __int128 u128;

/* The shortest text that reads back as d, for a d that is not an integer
 * and 1e-4 <= |d| < 1e15 (most doubles in documents: prices, ratios), in
 * the fixed notation %g uses there; false for any other d. The same digits
 * as the snprintf/strtod search below, without it (which cost a seventh of
 * a full re-index's CPU), by exact integer arithmetic: d = m * 2^-s (m <
 * 2^53, 3 <= s <= 66). For k = 1, 2, ... fraction digits, r is the integer
 * nearest d * 10^k = X / 2^s (X = m * 10^k < 2^123); the decimal r / 10^k
 * reads back as d when it lies in d's rounding interval, whose half-width
 * is 2^-s / 2 (below a power of two, where the lower neighbour is closer,
 * 2^-s / 4; at the edge itself it reads back as d when m is even, as
 * strtod rounds ties to even): |r * 2^s - X| < 10^k / 2 (/ 4). The first k
 * that fits has the fewest digits and r is the nearest decimal of that
 * length: what %.Pg with the smallest P that round-trips prints. At most
 * 17 significant digits always fit (k <= 21 here). tests/unit/test_doc.c
 * checks it against that search. */
static bool
shortest_fixed(double d, char *tmp, size_t len)
{
#define E19 ((u128)10000000000000000000u)
	static const u128 p10[22] = {1,
	                             10,
	                             100,
	                             1000,
	                             10000,
	                             100000,
	                             1000000,
	                             10000000,
	                             100000000,
	                             1000000000,
	                             10000000000,
	                             100000000000,
	                             1000000000000,
	                             10000000000000,
	                             100000000000000,
	                             1000000000000000,
	                             10000000000000000,
	                             100000000000000000,
	                             1000000000000000000,
	                             E19,
	                             E19 * 10,
	                             E19 * 100};
#undef E19
	double a = fabs(d);
	int e;

	if (!(a >= 1e-4 && a < 1e15) || a == floor(a))
		return false;
	double f = frexp(a, &e); /* a = f * 2^e, 0.5 <= f < 1 */
	uint64_t m = (uint64_t)ldexp(f, 53);
	int s = 53 - e;
	bool even = (m & 1) == 0, pow2 = m == (uint64_t)1 << 52;

	assert(s >= 3 && s <= 66);
	for (int k = 1; k < 22; k++) {
		u128 x = (u128)m * p10[k];
		u128 r = x >> s, rem = x & (((u128)1 << s) - 1), half = (u128)1 << (s - 1);
		if (rem > half || (rem == half && (r & 1)))
			r++;
		if (r >= p10[17]) /* past 17 significant digits: cannot happen */
			return false;
		u128 rs = r << s;
		bool above = rs >= x;
		u128 diff = above ? rs - x : x - rs;
		u128 lim = p10[k], twice = diff * (above || !pow2 ? 2 : 4);
		if (twice > lim || (twice == lim && !even))
			continue;
		/* written from the end: the k fraction digits, the point, the
		 * integer part (at least "0"), the sign */
		char *w = tmp + len;
		uint64_t v = (uint64_t)r;
		assert(len >= 32); /* sign, "0.", 21 digits, NUL */
		*--w = '\0';
		for (int i = 0; i < k; i++, v /= 10)
			*--w = (char)('0' + v % 10);
		*--w = '.';
		do
			*--w = (char)('0' + v % 10);
		while ((v /= 10) > 0);
		if (d < 0)
			*--w = '-';
		memmove(tmp, w, (size_t)(tmp + len - w));
		return true;
	}
	return false;
}
#else
static bool
shortest_fixed(double d, char *tmp, size_t len)
{
	(void)d, (void)tmp, (void)len;
	return false;
}
#endif

static RC_MUST_CHECK rcode
put_double(struct buf *out, double d)
{
	char tmp[48];

	if (d == floor(d) && fabs(d) < 9007199254740992.0)
		return buf_put_i64(out, (int64_t)d);
	if (shortest_fixed(d, tmp, sizeof(tmp)))
		return buf_puts(out, tmp);
	/* the shortest text that round-trips. A double is within half an ulp
	 * (< 1.2e-16 relative) of the shortest decimal d that reads back as it,
	 * so rounding it to 15 digits gives d padded with zeros, which %g
	 * drops: when 15 digits round-trip they are the shortest; else 16 or
	 * 17 (always enough). Two or three conversions, not one per length.
	 * Subnormals hold fewer digits: every length is tried. */
	for (int p = fabs(d) < DBL_MIN ? 1 : 15; p <= 17; p++) {
		snprintf(tmp, sizeof(tmp), "%.*g", p, d);
		if (p == 17 || strtod(tmp, NULL) == d)
			break;
	}
	return buf_puts(out, tmp);
}

rcode
doc_id_canonical(const bson_value_t *v, struct buf *out, enum id_type *type)
{
	char tmp[64];

	switch (v->value_type) {
	case BSON_TYPE_OID:
		bson_oid_to_string(&v->value.v_oid, tmp);
		*type = ID_OID;
		return buf_puts(out, tmp);
	case BSON_TYPE_UTF8:
		*type = ID_STRING;
		return buf_append(out, v->value.v_utf8.str, v->value.v_utf8.len);
	case BSON_TYPE_INT32:
		*type = ID_INT;
		return buf_printf(out, "%" PRId32, v->value.v_int32);
	case BSON_TYPE_INT64:
		*type = ID_INT;
		return buf_printf(out, "%" PRId64, v->value.v_int64);
	case BSON_TYPE_DOUBLE:
		if (isfinite(v->value.v_double) && v->value.v_double == floor(v->value.v_double) &&
		    fabs(v->value.v_double) < 9007199254740992.0) {
			*type = ID_INT;
			return buf_printf(out, "%" PRId64, (int64_t)v->value.v_double);
		}
		*type = ID_DOUBLE;
		return put_double(out, v->value.v_double);
	case BSON_TYPE_BOOL:
		*type = ID_BOOL;
		return buf_puts(out, v->value.v_bool ? "true" : "false");
	case BSON_TYPE_DATE_TIME:
		*type = ID_DATE;
		util_ms_to_iso(v->value.v_datetime, tmp, sizeof(tmp));
		return buf_puts(out, tmp);
	default: {
		bson_t wrap = BSON_INITIALIZER;
		char *json;
		size_t len;
		rcode rc;
		*type = ID_JSON;
		if (!bson_append_value(&wrap, "v", 1, v)) {
			bson_destroy(&wrap);
			return RC_ERR_INVALID;
		}
		json = bson_as_canonical_extended_json(&wrap, &len);
		bson_destroy(&wrap);
		if (json == NULL)
			return RC_ERR_INVALID;
		/* strip the wrapper: { "v" : X } -> X */
		char *start = strchr(json, ':');
		char *end = strrchr(json, '}');
		if (start == NULL || end == NULL || end <= start) {
			bson_free(json);
			return RC_ERR_INVALID;
		}
		start++;
		while (*start == ' ')
			start++;
		while (end > start && end[-1] == ' ')
			end--;
		rc = buf_append(out, start, (size_t)(end - start));
		bson_free(json);
		return rc;
	}
	}
}

rcode
doc_id_append(bson_t *dst, const char *key, const char *canonical, enum id_type type)
{
	int64_t i;
	bson_oid_t oid;
	bool ok = false;

	switch (type) {
	case ID_OID:
		if (!bson_oid_is_valid(canonical, strlen(canonical)) || strlen(canonical) != 24)
			return RC_ERR_INVALID;
		bson_oid_init_from_string(&oid, canonical);
		ok = BSON_APPEND_OID(dst, key, &oid);
		break;
	case ID_STRING:
		ok = BSON_APPEND_UTF8(dst, key, canonical);
		break;
	case ID_INT:
		if (util_parse_i64(canonical, &i))
			return RC_ERR_INVALID;
		ok = (i >= INT32_MIN && i <= INT32_MAX) ? BSON_APPEND_INT32(dst, key, (int32_t)i)
		                                        : BSON_APPEND_INT64(dst, key, i);
		break;
	case ID_DOUBLE: {
		char *end;
		double d = strtod(canonical, &end);
		if (*end)
			return RC_ERR_INVALID;
		ok = BSON_APPEND_DOUBLE(dst, key, d);
		break;
	}
	case ID_BOOL:
		ok = BSON_APPEND_BOOL(dst, key, strcmp(canonical, "true") == 0);
		break;
	case ID_DATE:
		if (util_iso_to_ms(canonical, &i))
			return RC_ERR_INVALID;
		ok = BSON_APPEND_DATE_TIME(dst, key, i);
		break;
	case ID_JSON: {
		struct buf b = {0};
		bson_t *w;
		bson_iter_t it;
		if (buf_printf(&b, "{\"v\": %s}", canonical)) {
			buf_free(&b);
			return RC_ERR_NOMEM;
		}
		w = bson_new_from_json((const uint8_t *)b.data, (ssize_t)b.len, NULL);
		buf_free(&b);
		if (w == NULL)
			return RC_ERR_INVALID;
		if (bson_iter_init_find(&it, w, "v"))
			ok = bson_append_iter(dst, key, -1, &it);
		bson_destroy(w);
		break;
	}
	}
	return ok ? RC_OK : RC_ERR_TOOLARGE;
}

/* Whether (canonical, type) is a typed value at all: "abc" is no int. */
static bool
id_fits(const char *canonical, enum id_type type)
{
	bson_t probe = BSON_INITIALIZER;
	bool fits;

	if (type == ID_BOOL && strcmp(canonical, "true") && strcmp(canonical, "false"))
		return false;
	/* canonical extended JSON of the types that map to json: documents,
	 * binary (UUIDs), decimals, timestamps, MinKey/MaxKey, null */
	if (type == ID_JSON && canonical[0] != '{' && strcmp(canonical, "null"))
		return false;
	fits = doc_id_append(&probe, "x", canonical, type) == RC_OK;
	if (fits && (type == ID_DOUBLE || type == ID_JSON)) {
		bson_iter_t it;
		fits = bson_iter_init_find(&it, &probe, "x");
		/* never a value a server chokes on or cannot hold: NaN and
		 * infinities (FerretDB drops the connection; asked for separately
		 * is never needed: such a text is never called an orphan), and
		 * documents with $-prefixed keys (operators to a query, refused in
		 * an _id by MongoDB) */
		if (fits && bson_iter_type(&it) == BSON_TYPE_DOUBLE)
			fits = isfinite(bson_iter_double(&it));
		/* FerretDB drops the connection when asked for these */
		if (fits && (bson_iter_type(&it) == BSON_TYPE_MINKEY ||
		             bson_iter_type(&it) == BSON_TYPE_MAXKEY ||
		             bson_iter_type(&it) == BSON_TYPE_DECIMAL128))
			fits = false;
		if (fits && bson_iter_type(&it) == BSON_TYPE_DOCUMENT) {
			uint32_t len;
			const uint8_t *data;
			bson_t sub;
			bson_iter_document(&it, &len, &data);
			fits = bson_init_static(&sub, data, len) &&
			       bson_validate(&sub, BSON_VALIDATE_DOLLAR_KEYS, NULL);
		}
	}
	bson_destroy(&probe);
	return fits;
}

rcode
doc_id_append_candidates(bson_t *array, uint32_t *index, const char *canonical)
{
	static const enum id_type order[] = {ID_STRING, ID_OID,  ID_INT, ID_DOUBLE,
	                                     ID_DATE,   ID_BOOL, ID_JSON};
	char key[16];
	const char *k;

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (!id_fits(canonical, order[i]))
			continue;
		bson_uint32_to_string(*index, &k, key, sizeof(key));
		if (doc_id_append(array, k, canonical, order[i]))
			return RC_ERR_NOMEM;
		(*index)++;
	}
	return RC_OK;
}

bool
doc_id_unaskable(const char *canonical)
{
	char *end;
	double d = strtod(canonical, &end);
	bson_t *w;
	struct buf b = {0};
	bool unaskable = false;

	/* a text that names NaN or an infinity ("nan", "-inf", "Infinity": an
	 * infinite double's own text is "inf"), not a decimal literal that
	 * merely overflows ("6592008e0000000000003700", an ObjectId's hex, or
	 * "1e999"): that text is no double's, so only its other readings
	 * (string, ObjectId) are asked, and a copy under it can be proven an
	 * orphan (QA: such ObjectId copies were never judged) */
	if (*canonical && *end == '\0' && !isfinite(d) && strpbrk(canonical, "iInN"))
		return true;
	if (canonical[0] != '{' || buf_printf(&b, "{\"v\": %s}", canonical)) {
		buf_free(&b);
		return false;
	}
	w = bson_new_from_json((const uint8_t *)b.data, (ssize_t)b.len, NULL);
	buf_free(&b);
	if (w) {
		bson_iter_t it;
		if (bson_iter_init_find(&it, w, "v"))
			unaskable = bson_iter_type(&it) == BSON_TYPE_MINKEY ||
			            bson_iter_type(&it) == BSON_TYPE_MAXKEY ||
			            bson_iter_type(&it) == BSON_TYPE_DECIMAL128;
		bson_destroy(w);
	}
	return unaskable;
}

enum id_type
doc_id_guess_type(const char *canonical)
{
	static const enum id_type order[] = {ID_OID, ID_INT, ID_DOUBLE, ID_DATE, ID_BOOL, ID_JSON};

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (id_fits(canonical, order[i]))
			return order[i];
	return ID_STRING;
}

/* Whether the typed value of (canonical, type) has exactly this canonical
 * text: "042" stands for the int 42 only loosely (its text is "42"). */
static bool
id_roundtrips(const char *canonical, enum id_type type)
{
	bson_t probe = BSON_INITIALIZER;
	struct buf text = {0};
	bson_iter_t it;
	enum id_type back;
	bool same = false;

	if (id_fits(canonical, type) && doc_id_append(&probe, "x", canonical, type) == RC_OK &&
	    bson_iter_init_find(&it, &probe, "x") &&
	    doc_id_canonical(bson_iter_value(&it), &text, &back) == RC_OK)
		same = back == type && text.data && strcmp(text.data, canonical) == 0;
	buf_free(&text);
	bson_destroy(&probe);
	return same;
}

int
doc_id_types_sharing(const char *canonical, enum id_type type)
{
	static const enum id_type all[] = {ID_STRING, ID_OID,  ID_INT, ID_DOUBLE,
	                                   ID_DATE,   ID_BOOL, ID_JSON};
	int mask = 0;

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (all[i] != type && id_roundtrips(canonical, all[i]))
			mask |= 1 << all[i];
	return mask;
}

bool
doc_version_from_number(double d, char *out, size_t len)
{
	struct buf b = {0};

	if (!isfinite(d) || put_double(&b, d)) {
		buf_free(&b);
		return false;
	}
	snprintf(out, len, "%s", b.data);
	buf_free(&b);
	return true;
}

bool
doc_version_from_text(const char *s, char *out, size_t len, int64_t *ms)
{
	char *end;
	double d;
	int64_t t;

	*ms = -1;
	if (*s == '\0')
		return false;
	/* integers exactly: epoch_millis of a far date passes 2^53 */
	if (util_parse_i64(s, &t) == 0) {
		snprintf(out, len, "%" PRId64, t);
		return true;
	}
	d = strtod(s, &end);
	if (*end == '\0' && end != s)
		return doc_version_from_number(d, out, len);
	if (util_iso_to_ms(s, &t) == 0) {
		*ms = t;
		snprintf(out, len, "%" PRId64, t);
		return true;
	}
	snprintf(out, len, "%s", s);
	return true;
}

bool
doc_version_from_bson(const bson_value_t *v, char *out, size_t len, int64_t *ms)
{
	*ms = -1;
	switch (v->value_type) {
	case BSON_TYPE_DATE_TIME:
		*ms = v->value.v_datetime;
		snprintf(out, len, "%" PRId64, v->value.v_datetime);
		return true;
	case BSON_TYPE_INT32:
		snprintf(out, len, "%" PRId32, v->value.v_int32);
		return true;
	case BSON_TYPE_INT64:
		snprintf(out, len, "%" PRId64, v->value.v_int64);
		return true;
	case BSON_TYPE_DOUBLE:
		return doc_version_from_number(v->value.v_double, out, len);
	case BSON_TYPE_UTF8:
		return doc_version_from_text(v->value.v_utf8.str, out, len, ms);
	case BSON_TYPE_TIMESTAMP:
		*ms = (int64_t)v->value.v_timestamp.timestamp * 1000;
		snprintf(out, len, "%" PRId64, *ms);
		return true;
	default:
		return false;
	}
}

bool
doc_version_after(const bson_value_t *v, int64_t since_ms)
{
	char text[64], *end;
	int64_t ms, n;
	double d;

	/* the pass's own normaliser, so that what --since selects is what the
	 * pass compares: an instant where it reads one, else a number */
	if (!doc_version_from_bson(v, text, sizeof(text), &ms))
		return false;
	switch (v->value_type) {
	case BSON_TYPE_DATE_TIME: /* ms as is, before 1970 too */
	case BSON_TYPE_TIMESTAMP:
		return ms > since_ms;
	case BSON_TYPE_UTF8:
		/* ISO text by its instant; other text (digits included) has none */
		return util_iso_to_ms(v->value.v_utf8.str, &ms) == 0 && ms > since_ms;
	case BSON_TYPE_INT32:
	case BSON_TYPE_INT64:
	case BSON_TYPE_DOUBLE:
		if (util_parse_i64(text, &n) == 0) /* exactly, past 2^53 too */
			return n > since_ms;
		d = strtod(text, &end);
		return *end == '\0' && end != text && d > (double)since_ms;
	default:
		return false;
	}
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return n;
}

/* Bytes from s that JSON carries as they are (ASCII, no control
 * character, no quote, no backslash): eight at a time where it can (SWAR:
 * a byte is flagged by a high bit in `bad`), then one at a time. */
static size_t
plain_span(const unsigned char *s, size_t len)
{
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t x;
		memcpy(&x, s + i, 8);
		uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
		/* (v - 0x01..) & ~v & 0x80.. flags a zero byte of v; x - 0x20..
		 * under ~x flags bytes below 0x20; x itself flags bytes >= 0x80 */
		uint64_t bad =
		    ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs) | x;
		if (bad & highs)
			break;
	}
	while (i < len && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\')
		i++;
	return i;
}

rcode
doc_json_string(struct buf *out, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0;

	/* the usual string, and every byte it can copy as is, in one append */
	if (buf_reserve(out, len + 2))
		return RC_ERR_NOMEM;
	out->data[out->len++] = '"';
	while (i < len) {
		size_t n = plain_span(s + i, len - i);
		i += n;
		run += n;
		if (i == len)
			break;
		unsigned char c = s[i];
		if (c >= 0x80 && (n = utf8_seq(s + i, len - i)) > 0) {
			i += n; /* valid UTF-8 goes as it is */
			run += n;
			continue;
		}
		if (run && buf_append(out, s + i - run, run))
			return RC_ERR_NOMEM;
		run = 0;
		if (c >= 0x80) {
			/* not UTF-8: the replacement character */
			if (buf_puts(out, "\xEF\xBF\xBD"))
				return RC_ERR_NOMEM;
			i++;
			continue;
		}
		/* RFC 8259's two-character escapes, else \u00XX */
		char two = c == '"'    ? '"'
		           : c == '\\' ? '\\'
		           : c == '\n' ? 'n'
		           : c == '\r' ? 'r'
		           : c == '\t' ? 't'
		                       : 0;
		char esc[8];
		if (two)
			snprintf(esc, sizeof(esc), "\\%c", two);
		else
			snprintf(esc, sizeof(esc), "\\u%04x", c);
		if (buf_puts(out, esc))
			return RC_ERR_NOMEM;
		i++;
	}
	if (run && buf_append(out, s + i - run, run))
		return RC_ERR_NOMEM;
	return buf_append(out, "\"", 1);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static RC_MUST_CHECK rcode
put_base64(struct buf *out, const uint8_t *d, uint32_t n)
{
	if (buf_reserve(out, (size_t)n / 3 * 4 + 8))
		return RC_ERR_NOMEM;
	char *p = out->data + out->len;
	*p++ = '"';
	for (uint32_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)d[i + 1] << 8;
		if (i + 2 < n)
			v |= d[i + 2];
		*p++ = b64[(v >> 18) & 63];
		*p++ = b64[(v >> 12) & 63];
		*p++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		*p++ = i + 2 < n ? b64[v & 63] : '=';
	}
	*p++ = '"';
	*p = '\0';
	out->len = (size_t)(p - out->data);
	return RC_OK;
}

static RC_MUST_CHECK rcode put_value(struct buf *out, const bson_iter_t *it, int depth);

/* Writes the fields that child (freshly initialized) iterates over. */
static RC_MUST_CHECK rcode
put_fields(struct buf *out, bson_iter_t *child_it, bool array, int depth, const char *skip_key,
           const char *id_field, const char *id_canonical)
{
	bson_iter_t child = *child_it;
	bool first = true;
	rcode rc;

	if (depth > DOC_MAX_DEPTH)
		return RC_ERR_TOOLARGE; /* the caller names the limit */
	if (buf_append(out, array ? "[" : "{", 1))
		return RC_ERR_NOMEM;
	if (id_field && *id_field) {
		if (doc_json_string(out, id_field, strlen(id_field)) || buf_append(out, ":", 1) ||
		    doc_json_string(out, id_canonical, strlen(id_canonical)))
			return RC_ERR_NOMEM;
		first = false;
	}
	while (bson_iter_next(&child)) {
		const char *key = bson_iter_key(&child);
		if (skip_key && strcmp(key, skip_key) == 0)
			continue;
		if (id_field && *id_field && strcmp(key, id_field) == 0)
			continue; /* the id field is ours: always the MongoDB id */
		if (!first && buf_append(out, ",", 1))
			return RC_ERR_NOMEM;
		first = false;
		if (!array) {
			if (doc_json_string(out, key, bson_iter_key_len(&child)) ||
			    buf_append(out, ":", 1))
				return RC_ERR_NOMEM;
		}
		rc = put_value(out, &child, depth + 1);
		if (rc)
			return rc;
	}
	return buf_append(out, array ? "]" : "}", 1);
}

static RC_MUST_CHECK rcode
put_container(struct buf *out, const bson_iter_t *it, bool array, int depth)
{
	bson_iter_t child;

	if (!bson_iter_recurse(it, &child))
		return RC_ERR_INVALID;
	return put_fields(out, &child, array, depth, NULL, NULL, NULL);
}

static RC_MUST_CHECK rcode
put_value(struct buf *out, const bson_iter_t *it, int depth)
{
	char tmp[64];

	switch (bson_iter_type(it)) {
	case BSON_TYPE_DOUBLE: {
		double d = bson_iter_double(it);
		if (!isfinite(d))
			return buf_puts(out, "null"); /* JSON has no NaN or Infinity */
		return put_double(out, d);
	}
	case BSON_TYPE_UTF8: {
		uint32_t len;
		const char *s = bson_iter_utf8(it, &len);
		return doc_json_string(out, s, len);
	}
	case BSON_TYPE_DOCUMENT:
		return put_container(out, it, false, depth);
	case BSON_TYPE_ARRAY:
		return put_container(out, it, true, depth);
	case BSON_TYPE_BINARY: {
		bson_subtype_t sub;
		uint32_t len;
		const uint8_t *data;
		bson_iter_binary(it, &sub, &len, &data);
		return put_base64(out, data, len);
	}
	case BSON_TYPE_OID:
		tmp[0] = '"';
		bson_oid_to_string(bson_iter_oid(it), tmp + 1);
		tmp[25] = '"';
		return buf_append(out, tmp, 26);
	case BSON_TYPE_BOOL:
		return buf_puts(out, bson_iter_bool(it) ? "true" : "false");
	case BSON_TYPE_DATE_TIME: {
		tmp[0] = '"';
		util_ms_to_iso(bson_iter_date_time(it), tmp + 1, sizeof(tmp) - 2);
		size_t n = strlen(tmp);
		tmp[n] = '"';
		return buf_append(out, tmp, n + 1);
	}
	case BSON_TYPE_NULL:
	case BSON_TYPE_UNDEFINED:
		return buf_puts(out, "null");
	case BSON_TYPE_REGEX: {
		const char *opts, *re = bson_iter_regex(it, &opts);
		struct buf b = {0};
		rcode rc = buf_printf(&b, "/%s/%s", re, opts ? opts : "");
		if (rc == RC_OK)
			rc = doc_json_string(out, b.data, b.len);
		buf_free(&b);
		return rc;
	}
	case BSON_TYPE_DBPOINTER: {
		uint32_t len;
		const char *coll;
		const bson_oid_t *oid;
		bson_iter_dbpointer(it, &len, &coll, &oid);
		bson_oid_to_string(oid, tmp);
		return buf_printf(out, "\"%s\"", tmp);
	}
	case BSON_TYPE_CODE: {
		uint32_t len;
		const char *s = bson_iter_code(it, &len);
		return doc_json_string(out, s, len);
	}
	case BSON_TYPE_SYMBOL: {
		uint32_t len;
		const char *s = bson_iter_symbol(it, &len);
		return doc_json_string(out, s, len);
	}
	case BSON_TYPE_CODEWSCOPE: {
		uint32_t len, slen;
		const uint8_t *scope;
		const char *s = bson_iter_codewscope(it, &len, &slen, &scope);
		return doc_json_string(out, s, len);
	}
	case BSON_TYPE_INT32:
		return buf_put_i64(out, bson_iter_int32(it));
	case BSON_TYPE_INT64:
		return buf_put_i64(out, bson_iter_int64(it));
	case BSON_TYPE_TIMESTAMP: {
		uint32_t t, inc;
		bson_iter_timestamp(it, &t, &inc);
		return buf_printf(out, "{\"t\":%" PRIu32 ",\"i\":%" PRIu32 "}", t, inc);
	}
	case BSON_TYPE_DECIMAL128: {
		bson_decimal128_t dec;
		char s[BSON_DECIMAL128_STRING];
		bson_iter_decimal128(it, &dec);
		bson_decimal128_to_string(&dec, s);
		return buf_printf(out, "\"%s\"", s);
	}
	case BSON_TYPE_MAXKEY:
		return buf_puts(out, "\"MaxKey\"");
	case BSON_TYPE_MINKEY:
		return buf_puts(out, "\"MinKey\"");
	case BSON_TYPE_EOD:
		break;
	}
	return buf_puts(out, "null");
}

rcode
doc_to_json(const bson_t *doc, const char *id_field, const char *id_canonical, struct buf *out,
            struct rerror *err)
{
	bson_iter_t it;
	size_t offset = 0;
	rcode rc;

	if (!bson_iter_init(&it, doc))
		return rerror_set(err, RC_ERR_INVALID, "corrupt BSON: the document cannot be read");
	rc = put_fields(out, &it, false, 0, "_id", id_field, id_canonical);
	if (rc == RC_ERR_TOOLARGE)
		return rerror_set(err, rc, "nested deeper than %d levels (MongoDB's limit)",
		                  DOC_MAX_DEPTH);
	if (rc == RC_ERR_INVALID && !bson_validate(doc, BSON_VALIDATE_NONE, &offset))
		return rerror_set(err, rc, "corrupt BSON at byte %zu", offset);
	if (rc)
		return rerror_set(err, rc, "cannot convert to JSON: %s", rcode_name(rc));
	return RC_OK;
}
