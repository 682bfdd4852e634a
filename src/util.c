/* util.c: time, buffers and masking; see util.h. */
#include "util.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int64_t
util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
util_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Civil dates from day numbers and back (H. Hinnant's algorithms, proleptic
 * Gregorian, year 0 = 1 BC as ISO 8601 counts). Exact over the whole range
 * of a BSON Date (int64 milliseconds, about +-292 million years), unlike
 * gmtime/timegm, whose range depends on the platform's time_t and tm.
 */
static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;

	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int64_t
days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

void
util_ms_to_iso(int64_t ms, char *out, size_t len)
{
	/* floor division: -1 ms is 1969-12-31T23:59:59.999Z */
	int64_t days = ms / 86400000, rem = ms % 86400000, y;
	int m, d;

	if (rem < 0) {
		rem += 86400000;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	int h = (int)(rem / 3600000), mi = (int)(rem / 60000 % 60), s = (int)(rem / 1000 % 60);
	int millis = (int)(rem % 1000);
	/* ISO 8601 expanded years outside 0000-9999 (sign and at least four
	 * digits): OpenSearch's strict_date_optional_time refuses "10000-..."
	 * but parses "+10000-..." and "-0001-..." */
	if (y >= 0 && y <= 9999) {
		/* by hand: snprintf cost more than the rest of a date's conversion */
		const int parts[] = {(int)y / 100, (int)y % 100, m, d, h, mi, s};
		static const char before[] = {0, 0, '-', '-', 'T', ':', ':'};
		char *p = out;
		if (len < 25) {
			if (len)
				*out = '\0';
			return;
		}
		for (int i = 0; i < 7; i++) {
			if (before[i])
				*p++ = before[i];
			*p++ = (char)('0' + parts[i] / 10);
			*p++ = (char)('0' + parts[i] % 10);
		}
		*p++ = '.';
		*p++ = (char)('0' + millis / 100);
		*p++ = (char)('0' + millis / 10 % 10);
		*p++ = (char)('0' + millis % 10);
		*p++ = 'Z';
		*p = '\0';
	} else
		snprintf(out, len, "%c%04" PRId64 "-%02d-%02dT%02d:%02d:%02d.%03dZ",
		         y < 0 ? '-' : '+', y < 0 ? -y : y, m, d, h, mi, s, millis);
}

void
util_now_iso(char *out, size_t len)
{
	util_ms_to_iso(util_now_ms(), out, len);
}

/* Reads exactly n digits (n > 0) at *p; -1 when they are not there. */
static int
digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/* "[+-]YYYY[YYYYY]-" at *pp: four digits, or a sign and four to nine (ISO
 * 8601 expanded years). */
static int
parse_year(const char **pp, int64_t *year)
{
	const char *s = *pp, *p = s;
	int64_t y = 0;
	int sign = 1, ndig = 0;

	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	while (*p >= '0' && *p <= '9' && ndig < 9) {
		y = y * 10 + (*p++ - '0');
		ndig++;
	}
	if (ndig < 4 || (ndig > 4 && p - s == ndig) || *p++ != '-')
		return -1;
	*year = y * sign;
	*pp = p;
	return 0;
}

/* "THH:MM:SS[.f...]" at *pp, when there (RFC 3339 allows t, and a space);
 * digits past the milliseconds are read and dropped. */
static int
parse_time(const char **pp, int *h, int *mi, int *sec, int64_t *frac)
{
	const char *p = *pp;
	int64_t scale = 1000;

	if (*p != 'T' && *p != 't' && *p != ' ')
		return 0;
	p++;
	if (digits(&p, 2, h) || *p++ != ':' || digits(&p, 2, mi) || *p++ != ':' ||
	    digits(&p, 2, sec))
		return -1;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9') {
			if (scale > 1) {
				scale /= 10;
				*frac += (*p - '0') * scale;
			}
			p++;
		}
	}
	*pp = p;
	return 0;
}

/* "Z", or +hh:mm, +hhmm or +hh as ISO 8601 allows, at *pp, when there:
 * the offset from UTC in minutes. */
static int
parse_offset(const char **pp, int64_t *offset_min)
{
	const char *p = *pp;

	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om = 0, neg = *p++ == '-';
		if (digits(&p, 2, &oh))
			return -1;
		if (*p == ':')
			p++;
		if (*p && digits(&p, 2, &om))
			return -1;
		if (oh > 23 || om > 59)
			return -1;
		*offset_min = (oh * 60 + om) * (neg ? -1 : 1);
	}
	*pp = p;
	return 0;
}

static bool
civil_valid(int64_t y, int mo, int d, int h, int mi, int sec)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
		return false;
	/* February 29th only in a leap year (proleptic Gregorian, as BSON) */
	return !(mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)));
}

/* secs and frac ms as ms, within a BSON Date (int64 ms); near INT64_MIN,
 * secs * 1000 alone overflows though secs * 1000 + frac does not. */
static int
secs_to_ms(int64_t secs, int64_t frac, int64_t *out)
{
	int64_t v;

	if (secs < 0
	        ? __builtin_mul_overflow(secs + 1, 1000, &v) ||
	              __builtin_add_overflow(v, frac - 1000, &v)
	        : __builtin_mul_overflow(secs, 1000, &v) || __builtin_add_overflow(v, frac, &v))
		return -1;
	*out = v;
	return 0;
}

int
util_iso_to_ms(const char *s, int64_t *out)
{
	const char *p = s;
	int64_t y = 0, frac = 0, offset_min = 0;
	int mo, d, h = 0, mi = 0, sec = 0;

	if (parse_year(&p, &y) || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d) ||
	    parse_time(&p, &h, &mi, &sec, &frac) || parse_offset(&p, &offset_min) || *p != '\0' ||
	    !civil_valid(y, mo, d, h, mi, sec))
		return -1;
	int64_t secs =
	    days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
	return secs_to_ms(secs, frac, out);
}

bool
util_throttle_due(const struct util_throttle *t)
{
	return util_mono_ms() >= t->next_ms;
}

void
util_throttle_done(struct util_throttle *t, int64_t t0, int64_t min_ms, int64_t share,
                   int64_t max_ms)
{
	int64_t took = util_mono_ms() - t0, wait = took * share > min_ms ? took * share : min_ms;

	assert(min_ms > 0 && share > 0 && (max_ms == 0 || max_ms >= min_ms));
	/* the bound never lets the work take more than half the time */
	if (max_ms && wait > max_ms)
		wait = max_ms > 2 * took ? max_ms : 2 * took;
	t->next_ms = t0 + wait;
}

bool
util_sleep_ms(int64_t ms, volatile int *stop)
{
	int64_t end = util_mono_ms() + ms;

	while (!(stop && *stop)) {
		int64_t left = end - util_mono_ms();
		if (left <= 0)
			return false;
		if (left > 50)
			left = 50;
		struct timespec ts = {left / 1000, (left % 1000) * 1000000};
		nanosleep(&ts, NULL);
	}
	return true;
}

void
util_mask_secrets(char *s, size_t cap)
{
	static const char token_key[] = "AWS_SESSION_TOKEN:";
	char *p = s;

	(void)cap;
	/* MONGODB-AWS's session token in the URI's authMechanismProperties
	 * (docs/CONNECTING.md): "AWS_SESSION_TOKEN:value", up to the next
	 * option, property, blank or quote */
	for (char *q = s; *q; q++) {
		if (strncasecmp(q, token_key, sizeof(token_key) - 1) != 0)
			continue;
		char *v = q + sizeof(token_key) - 1;
		size_t vlen = strcspn(v, "&,; \"'\n");
		if (vlen >= 3) {
			memcpy(v, "***", 3);
			memmove(v + 3, v + vlen, strlen(v + vlen) + 1);
		} else {
			memset(v, '*', vlen);
		}
		q = v;
	}
	while ((p = strstr(p, "://")) != NULL) {
		char *start = p + 3, *at, *colon, *end;

		/* userinfo ends at the last '@' before any '/', ' ', '"': a host
		 * has none, and libmongoc takes a password with a raw '@' */
		end = start + strcspn(start, "/ \"'\n?#");
		at = NULL;
		for (char *q = start; q < end; q++)
			if (*q == '@')
				at = q;
		if (at) {
			/* the password starts after the first ':' of userinfo */
			colon = memchr(start, ':', (size_t)(at - start));
			if (colon) {
				size_t plen = (size_t)(at - colon - 1);
				if (plen >= 3) {
					/* shrink to "***": never grows, so cap holds */
					memcpy(colon + 1, "***", 3);
					memmove(colon + 4, at, strlen(at) + 1);
					at = colon + 4;
				} else {
					memset(colon + 1, '*', plen);
				}
			}
			p = at;
		} else {
			p = start;
		}
	}
}

bool
util_utf8_valid(const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;

	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n = c < 0x80         ? 1
		           : (c >> 5) == 6  ? 2
		           : (c >> 4) == 14 ? 3
		           : (c >> 3) == 30 ? 4
		                            : 0;
		if (n == 0 || i + n > len)
			return false;
		for (size_t k = 1; k < n; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
		uint32_t cp = n == 1   ? c
		              : n == 2 ? (uint32_t)(c & 0x1F) << 6 | (s[i + 1] & 0x3F)
		              : n == 3
		                  ? (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[i + 1] & 0x3F) << 6 |
		                        (s[i + 2] & 0x3F)
		                  : (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[i + 1] & 0x3F) << 12 |
		                        (uint32_t)(s[i + 2] & 0x3F) << 6 | (s[i + 3] & 0x3F);
		/* overlong forms, surrogates, past U+10FFFF */
		if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
		    (cp >= 0xD800 && cp < 0xE000) || cp > 0x10FFFF)
			return false;
		i += n;
	}
	return true;
}

void
util_utf8_clean(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = *p < 0x80             ? 1
		           : (*p & 0xe0) == 0xc0 ? 2
		           : (*p & 0xf0) == 0xe0 ? 3
		           : (*p & 0xf8) == 0xf0 ? 4
		                                 : 0;
		bool ok = n > 0 && !(n == 2 && *p < 0xc2) && !(n == 4 && *p > 0xf4);
		for (size_t i = 1; ok && i < n; i++)
			ok = (p[i] & 0xc0) == 0x80;
		/* no overlong three-byte forms, no UTF-16 surrogates */
		if (ok && n == 3)
			ok = !(p[0] == 0xe0 && p[1] < 0xa0) && !(p[0] == 0xed && p[1] >= 0xa0);
		if (ok && n == 4)
			ok = !(p[0] == 0xf0 && p[1] < 0x90) && !(p[0] == 0xf4 && p[1] >= 0x90);
		if (!ok) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

char *
util_mask_uri(const char *uri)
{
	size_t n = strlen(uri) + 4;
	char *out = malloc(n);

	if (out == NULL)
		return NULL;
	memcpy(out, uri, strlen(uri) + 1);
	util_mask_secrets(out, n);
	return out;
}

rcode
buf_reserve(struct buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	char *p;

	if (need <= b->cap)
		return RC_OK;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (p == NULL)
		return RC_ERR_NOMEM;
	b->data = p;
	b->cap = cap;
	return RC_OK;
}

rcode
buf_append(struct buf *b, const void *data, size_t len)
{
	if (buf_reserve(b, len))
		return RC_ERR_NOMEM;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return RC_OK;
}

rcode
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

rcode
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	/* one formatting pass when the text fits the room left (the usual
	 * case), a second after growing the buffer when it does not */
	if (buf_reserve(b, 64))
		return RC_ERR_NOMEM;
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->data[b->len] = '\0';
		return RC_ERR_NOMEM;
	}
	if ((size_t)n >= b->cap - b->len) {
		if (buf_reserve(b, (size_t)n))
			return RC_ERR_NOMEM;
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
	return RC_OK;
}

rcode
buf_put_i64(struct buf *b, int64_t v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	/* by hand: printf cost more than the rest of a number's conversion;
	 * the magnitude as unsigned, so INT64_MIN has one too */
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void
buf_free(struct buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int
util_parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	/* digits, with a leading '-' at most: strtoll also skips blanks and
	 * takes a '+' */
	if (s == NULL || *s == '\0' || !(isdigit((unsigned char)*s) || *s == '-'))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end != '\0')
		return -1;
	*out = v;
	return 0;
}
