/*
 * util.h: small helpers shared by every module: time, a growable byte
 * buffer, and secret masking.
 */
#ifndef RECONCILER_UTIL_H
#define RECONCILER_UTIL_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wall clock in epoch milliseconds, and as ISO-8601 UTC with milliseconds. */
int64_t util_now_ms(void);
void util_now_iso(char *out, size_t len);
void util_ms_to_iso(int64_t ms, char *out, size_t len);
/* util_ms_to_iso writes ISO 8601 UTC with milliseconds for every int64 ms
 * (a BSON Date's range): years 0000-9999 as YYYY, others in the expanded
 * form with a sign ("+10000-01-02T00:00:00.000Z", "-0001-..."), which
 * OpenSearch's default date format parses. out needs 40 bytes.
 * util_iso_to_ms parses "[+-]YYYY[YYYYY]-MM-DD[THH:MM:SS[.fff]][Z|+hh:mm]"
 * (a year of more than four digits needs its sign, as ISO 8601 says);
 * returns 0 on success, -1 on anything else or outside int64 ms. */
int util_iso_to_ms(const char *s, int64_t *out);
/* Monotonic milliseconds, for durations and deadlines. */
int64_t util_mono_ms(void);
/* Sleeps up to ms, returning early (true) when *stop becomes nonzero. */
bool util_sleep_ms(int64_t ms, volatile int *stop);

/* A throttle for work whose cost grows with a run (a recount of its
 * journal rows): due at most every min_ms and at most 1/share of the time,
 * measured from how long the last time took, but at least every max_ms
 * (0 = no such bound) unless that would take more than half the time.
 * Zeroed: due at once.
 * Usage: if (util_throttle_due(&t)) { t0 = util_mono_ms(); work();
 * util_throttle_done(&t, t0, MIN_MS, SHARE, MAX_MS); } */
struct util_throttle {
	int64_t next_ms; /* util_mono_ms() when due again */
};
bool util_throttle_due(const struct util_throttle *t);
void util_throttle_done(struct util_throttle *t, int64_t t0, int64_t min_ms, int64_t share,
                        int64_t max_ms);

/* Masks the password of every "scheme://user:password@" in s, in place. */
void util_mask_secrets(char *s, size_t cap);
/* Returns a malloc'd copy of uri with its password masked; NULL on OOM. */
char *util_mask_uri(const char *uri);
/* Whether text[0..len) is valid UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF). */
bool util_utf8_valid(const char *text, size_t len);

/* Replaces every byte that is not part of valid UTF-8 with '?', in place,
 * so text that came from a request (a path with %FF) keeps a JSON answer
 * and a log line valid. */
void util_utf8_clean(char *s);

/* A growable byte buffer; always NUL-terminated after any append. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};

RC_MUST_CHECK rcode buf_reserve(struct buf *b, size_t extra);
RC_MUST_CHECK rcode buf_append(struct buf *b, const void *data, size_t len);
RC_MUST_CHECK rcode buf_puts(struct buf *b, const char *s);
RC_MUST_CHECK rcode buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends v in base 10 (as "%" PRId64 writes it). */
RC_MUST_CHECK rcode buf_put_i64(struct buf *b, int64_t v);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

/* Parses a whole base-10 int64 (digits, a leading '-' at most: no blank,
 * no '+'); 0 on success, -1 on junk or overflow. */
int util_parse_i64(const char *s, int64_t *out);

#endif
