/* util.c: time, buffers and masking; see util.h. */
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

void
util_ms_to_iso(int64_t ms, char *out, size_t len)
{
	time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int millis = (int)(ms - (int64_t)secs * 1000);
	struct tm tm;

	if (gmtime_r(&secs, &tm) == NULL) {
		snprintf(out, len, "invalid-date");
		return;
	}
	snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

void
util_now_iso(char *out, size_t len)
{
	util_ms_to_iso(util_now_ms(), out, len);
}

int
util_iso_to_ms(const char *s, int64_t *out)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
	int64_t frac = 0, scale = 1000, offset_min = 0;
	struct tm tm;
	const char *p;

	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
		return -1;
	p = s + n;
	if (*p == 'T' || *p == ' ') {
		if (sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3)
			return -1;
		p += 1 + n;
		if (*p == '.') {
			p++;
			while (*p >= '0' && *p <= '9') {
				if (scale > 1) {
					scale /= 10;
					frac += (*p - '0') * scale;
				}
				p++;
			}
		}
	}
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2)
			return -1;
		offset_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
		p += 6;
	}
	if (*p != '\0')
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*out = ((int64_t)timegm(&tm) - offset_min * 60) * 1000 + frac;
	return 0;
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
	char *p = s;

	(void)cap;
	while ((p = strstr(p, "://")) != NULL) {
		char *start = p + 3, *at, *colon, *end;

		/* userinfo ends at the first '@' before any '/', ' ', '"' */
		end = start + strcspn(start, "/ \"'\n?#");
		at = memchr(start, '@', (size_t)(end - start));
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

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, (size_t)n))
		return RC_ERR_NOMEM;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return RC_OK;
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

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end != '\0')
		return -1;
	*out = v;
	return 0;
}
