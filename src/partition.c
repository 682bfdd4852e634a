/*
 * partition.c: the arithmetic of a partition plan (partition.h). Kept
 * apart from the run so that every process of a split run computes the
 * same bounds from the same two ids, and the unit tests can say so.
 *
 * ObjectIds split by their value between the collection's smallest and
 * largest id: 12 bytes whose first 4 are the creation time, so equal
 * shares of the value are equal shares of the time; the other 8 bytes keep
 * ids made within one second apart. The sum is done on bytes (a 96-bit
 * number times i, over n), exact on every platform.
 */
#include "partition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rcode
partition_parse(int *k, int *n, const char *text, struct rerror *err)
{
	const char *slash = text ? strchr(text, '/') : NULL;
	char *end = NULL;
	long kk, nn;

	*k = *n = 0;
	if (slash == NULL || slash == text || slash[1] == '\0')
		return rerror_set(err, RC_ERR_CONFIG, "--partition %s: expected K/N (0 <= K < N)",
		                  text ? text : "");
	for (const char *c = text; *c; c++)
		if (c != slash && (*c < '0' || *c > '9'))
			return rerror_set(err, RC_ERR_CONFIG,
			                  "--partition %s: expected K/N, two decimal numbers",
			                  text);
	kk = strtol(text, &end, 10);
	nn = strtol(slash + 1, &end, 10);
	if (slash - text > 5 || strlen(slash + 1) > 5 || nn < 1 || nn > PARTITION_MAX)
		return rerror_set(err, RC_ERR_CONFIG, "--partition %s: N must be 1 to %d", text,
		                  PARTITION_MAX);
	if (kk >= nn)
		return rerror_set(err, RC_ERR_CONFIG,
		                  "--partition %s: K is 0-based and must be below N (0 to %ld)",
		                  text, nn - 1);
	*k = (int)kk;
	*n = (int)nn;
	return RC_OK;
}

static int
hexval(char c)
{
	return c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0';
}

void
partition_oid_split(char out[25], const char *min, const char *max, int i, int n)
{
	unsigned char a[12], b[12], d[14], q[14]; /* 96 bits times i < 2^11 */
	unsigned borrow = 0, carry = 0;
	unsigned long rem = 0;

	for (int j = 0; j < 12; j++) {
		a[j] = (unsigned char)(hexval(min[2 * j]) << 4 | hexval(min[2 * j + 1]));
		b[j] = (unsigned char)(hexval(max[2 * j]) << 4 | hexval(max[2 * j + 1]));
	}
	/* d = (b - a), 14 bytes big-endian */
	for (int j = 11; j >= 0; j--) {
		int v = (int)b[j] - (int)a[j] - (int)borrow;
		borrow = v < 0;
		d[j + 2] = (unsigned char)(v < 0 ? v + 256 : v);
	}
	d[0] = d[1] = 0;
	/* d *= i */
	for (int j = 13; j >= 0; j--) {
		unsigned long v = (unsigned long)d[j] * (unsigned long)i + carry;
		d[j] = (unsigned char)(v & 0xff);
		carry = (unsigned)(v >> 8);
	}
	/* q = d / n */
	for (int j = 0; j < 14; j++) {
		unsigned long v = rem << 8 | d[j];
		q[j] = (unsigned char)(v / (unsigned long)n);
		rem = v % (unsigned long)n;
	}
	/* out = a + q (q < b - a + 1 fits 12 bytes) */
	carry = 0;
	for (int j = 11; j >= 0; j--) {
		unsigned v = (unsigned)a[j] + q[j + 2] + carry;
		a[j] = (unsigned char)(v & 0xff);
		carry = v >> 8;
	}
	for (int j = 0; j < 12; j++)
		snprintf(out + 2 * j, 3, "%02x", a[j]);
}

/* An ObjectId text's time (its first 4 bytes). */
static unsigned long
oid_time(const char *hex)
{
	unsigned long t = 0;
	for (int j = 0; j < 8; j++)
		t = t << 4 | (unsigned long)hexval(hex[j]);
	return t;
}

void
partition_oid_ends(char lo[25], char hi[25], const char *min, const char *max, int n)
{
	unsigned long t0 = oid_time(min), t1 = oid_time(max);

	if (t1 < t0 || t1 - t0 < 3600UL * (unsigned long)n) {
		memcpy(lo, min, 24);
		memcpy(hi, max, 24);
		lo[24] = hi[24] = '\0';
		return;
	}
	t0 -= t0 % 3600;
	t1 = t1 - t1 % 3600 + 3600;
	if (t1 > 0xffffffffUL)
		snprintf(hi, 25, "ffffffffffffffffffffffff");
	else
		snprintf(hi, 25, "%08lx0000000000000000", t1);
	snprintf(lo, 25, "%08lx0000000000000000", t0);
}

void
partition_clear(struct partition *p)
{
	free(p->lo);
	free(p->hi);
	p->lo = p->hi = NULL;
	p->planned = false;
}

rcode
partition_set_bounds(struct partition *p, enum id_type type, const char *const *splits)
{
	partition_clear(p);
	p->type = type;
	if (p->k > 0 && (p->lo = strdup(splits[p->k - 1])) == NULL)
		return RC_ERR_NOMEM;
	if (p->k < p->n - 1 && (p->hi = strdup(splits[p->k])) == NULL) {
		partition_clear(p);
		return RC_ERR_NOMEM;
	}
	p->planned = true;
	return RC_OK;
}

void
partition_describe(const struct partition *p, char *out, size_t len)
{
	snprintf(out, len, "partition %d/%d [%s, %s)", p->k, p->n, p->lo ? p->lo : "-inf",
	         p->hi ? p->hi : "+inf");
}

bool
partition_holds(const struct partition *p, const char *key)
{
	if (p->n == 0)
		return true;
	return (p->lo == NULL || strcmp(key, p->lo) >= 0) &&
	       (p->hi == NULL || strcmp(key, p->hi) < 0);
}
