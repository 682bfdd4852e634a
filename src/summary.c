/*
 * summary.c: the hash of the range summaries and the cutting of a chunk
 * into ranges (summary.h; docs/ENGINE.md "Verifying by range summaries").
 *
 * Why a sum of hashes: a range's summary must change with any drift the
 * merge finds (a missing id, an orphan, another version, a second copy,
 * a copy under another _id), including drift that cancels in counts and
 * version statistics (k missing and k orphans with equal versions). The
 * wrapping sum of a 64-bit hash of (key, _id, version) over a range is
 * order-free (shards and backing indices add up in any order, so the
 * index computes it in one scripted_metric), and two different multisets
 * of copies share it with a probability of about 2^-64 per range.
 *
 * The function is computed twice, here and by the Painless script below, so
 * it uses what both read alike: strings as UTF-16 code units (Painless
 * cannot take a string's UTF-8 bytes), versions as signed 64-bit integers
 * (a date as epoch milliseconds), arithmetic modulo 2^64 (Java's long
 * wraps as C's uint64_t). The constants are FNV-1a-64's and splitmix64's,
 * written in the script as signed decimals.
 */
#include "summary.h"

#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME  0x100000001b3ULL

static uint64_t
fnv_unit(uint64_t h, uint32_t unit)
{
	return (h ^ unit) * FNV_PRIME;
}

/* The next code point of s (len bytes left), *used bytes; bad UTF-8 is
 * U+FFFD over one byte, as a decoder that replaces would read it. */
static uint32_t
next_code_point(const unsigned char *s, size_t len, size_t *used)
{
	uint32_t c = s[0];
	size_t n = c < 0x80             ? 1
	           : (c & 0xE0) == 0xC0 ? 2
	           : (c & 0xF0) == 0xE0 ? 3
	           : (c & 0xF8) == 0xF0 ? 4
	                                : 0;

	*used = 1;
	if (n == 1)
		return c;
	if (n == 0 || n > len)
		return 0xFFFD;
	c &= 0x7F >> n;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0xFFFD;
		c = (c << 6) | (s[i] & 0x3F);
	}
	*used = n;
	return c;
}

/* FNV-1a-64 over the UTF-16 code units of s. */
static uint64_t
fnv_utf16(uint64_t h, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	while (len) {
		size_t used;
		uint32_t c = next_code_point(p, len, &used);
		if (c >= 0x10000) { /* a surrogate pair */
			c -= 0x10000;
			h = fnv_unit(h, 0xD800 | (c >> 10));
			h = fnv_unit(h, 0xDC00 | (c & 0x3FF));
		} else {
			h = fnv_unit(h, c);
		}
		p += used;
		len -= used;
	}
	return h;
}

uint64_t
summary_hash(const char *key, size_t key_len, const char *docid, size_t docid_len, bool has_version,
             int64_t version)
{
	uint64_t h = fnv_utf16(FNV_OFFSET, key, key_len);

	h = fnv_unit(h, 0);
	h = fnv_utf16(h, docid, docid_len);
	if (has_version) {
		uint64_t v = (uint64_t)version;
		h = fnv_unit(h, 1);
		for (int j = 0; j < 4; j++)
			h = fnv_unit(h, (uint32_t)((v >> (16 * j)) & 0xFFFF));
	} else {
		h = fnv_unit(h, 2);
	}
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

bool
summary_version(const char *normalized, int64_t *v)
{
	char *end;
	double d;

	*v = 0;
	if (util_parse_i64(normalized, v) == 0)
		return true;
	errno = 0;
	d = strtod(normalized, &end);
	/* an integral double the index holds as a long (a version written
	 * 42.0): exact below 2^53 */
	if (end == normalized || *end || errno || !isfinite(d) || d != floor(d) ||
	    fabs(d) >= 9007199254740992.0)
		return false;
	*v = (int64_t)d;
	return true;
}

rcode
summary_plan(struct summary_range **out, size_t *n, const struct idlist *m, const char *prev,
             size_t size, bool versions)
{
	size_t cap = m->n / (size ? size : 1) + 1, k = 0;
	struct summary_range *v;

	*out = NULL;
	*n = 0;
	if (m->n == 0)
		return RC_OK;
	if ((v = calloc(cap, sizeof(*v))) == NULL)
		return RC_ERR_NOMEM;
	for (size_t at = 0; at < m->n; at += size, k++) {
		struct summary_range *r = &v[k];
		r->from = at;
		r->to = m->n - at < size ? m->n : at + size;
		r->lo = at ? idlist_id(m, at - 1) : prev;
		r->hi = idlist_id(m, r->to - 1);
		r->summarizable = true;
		for (size_t i = r->from; i < r->to; i++) {
			const char *ver = versions ? idlist_version(m, i) : NULL;
			int64_t num = 0;
			if (ver && !summary_version(ver, &num))
				r->summarizable = false;
			/* MongoDB's copy is under its own _id: docid = key */
			r->sum += summary_hash(idlist_id(m, i), m->v[i].id_len, idlist_id(m, i),
			                       m->v[i].id_len, ver != NULL, num);
			r->count++;
		}
	}
	*out = v;
	*n = k;
	return RC_OK;
}

bool
summary_equal(const struct summary_range *r)
{
	return r->summarizable && r->os_ok && r->os_count == r->count && r->os_sum == r->sum;
}

bool
summary_parse(const char *text, int64_t *count, uint64_t *sum)
{
	char *end;
	long long c, s;

	errno = 0;
	c = strtoll(text, &end, 10);
	if (end == text || *end != ':' || errno || c < 0)
		return false;
	text = end + 1;
	s = strtoll(text, &end, 10);
	if (end == text || *end || errno)
		return false;
	*count = (int64_t)c;
	*sum = (uint64_t)s;
	return true;
}

/* The script: the same function as summary_hash, over each copy the
 * range's search matches. state holds longs only (they travel between
 * nodes as such); the reduce adds the shards' and indices' states. */
const char summary_script_init[] = "state.n = 0L; state.s = 0L;";
const char summary_script_map[] =
    "String k = doc[params.f].value; String i = doc['_id'].value;"
    " long p = 1099511628211L; long h = -3750763034362895579L;"
    " for (int j = 0; j < k.length(); ++j) { h = (h ^ (long) k.charAt(j)) * p; }"
    " h = h * p;"
    " for (int j = 0; j < i.length(); ++j) { h = (h ^ (long) i.charAt(j)) * p; }"
    " if (params.v.length() > 0 && doc.containsKey(params.v) && doc[params.v].size() > 0) {"
    " long v; if (params.d) { v = doc[params.v].value.toInstant().toEpochMilli(); }"
    " else { v = doc[params.v].value; }"
    " h = (h ^ 1L) * p;"
    " for (int j = 0; j < 4; ++j) { h = (h ^ ((v >>> (16 * j)) & 65535L)) * p; }"
    " } else { h = (h ^ 2L) * p; }"
    " h = (h ^ (h >>> 30)) * -4658895280553007687L;"
    " h = (h ^ (h >>> 27)) * -7723592293110705685L;"
    " h = h ^ (h >>> 31);"
    " state.n += 1L; state.s += h;";
const char summary_script_combine[] = "return state;";
const char summary_script_reduce[] =
    "long n = 0L; long s = 0L;"
    " for (def x : states) { if (x != null) { n += x.n; s += x.s; } }"
    " return Long.toString(n) + ':' + Long.toString(s);";
