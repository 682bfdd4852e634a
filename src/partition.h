/*
 * partition.h: one partition of a split run (`check --partition K/N`):
 * its place K of N and its key range [lo, hi), the first open below and
 * the last open above, so the N ranges tile every key either side could
 * hold (orphans included). Pure: the plan's arithmetic; the run asks the
 * servers for the collection's smallest and largest id (ObjectIds) or its
 * split points (strings) and journals the plan (docs/ENGINE.md,
 * "Partitions").
 */
#ifndef RECONCILER_PARTITION_H
#define RECONCILER_PARTITION_H

#include "doc.h"
#include "error.h"

#include <stdbool.h>

/* Most partitions of a split run. */
#define PARTITION_MAX 1024

struct partition {
	int k, n;          /* n == 0: no partition (the whole key space) */
	bool planned;      /* the bounds are known (computed, or read from the journal) */
	enum id_type type; /* the bounds' id type: ID_OID or ID_STRING */
	char *lo, *hi;     /* canonical texts; NULL: open on that side */
};

/* "K/N" (0 <= K < N <= PARTITION_MAX, decimal, nothing else) into *k, *n;
 * RC_ERR_CONFIG with why otherwise. */
RC_MUST_CHECK rcode partition_parse(int *k, int *n, const char *text, struct rerror *err);

/* The i-th of the n-1 split points (1 <= i < n) between two ObjectIds'
 * texts min <= max: min + (max - min) * i / n over their 96 bits (time
 * first, so by time; ids made within one second still split), as 24 hex
 * digits into out. */
void partition_oid_split(char out[25], const char *min, const char *max, int i, int n);

/* The ends the ObjectId split points are taken between, from the
 * collection's smallest and largest id: the ids themselves, or, when they
 * are at least n hours apart, their times rounded out to whole hours (the
 * smallest's down, the largest's up) with the other 8 bytes zero. Rounded,
 * the plan stays the same while a live collection gains newer ids, so the
 * n processes of a split run, started seconds apart, compute the same one
 * (unless an hour begins between their starts: report --merge says so). */
void partition_oid_ends(char lo[25], char hi[25], const char *min, const char *max, int n);

/* Sets p's bounds: lo = split k (NULL for k == 0), hi = split k + 1 (NULL
 * for k == n - 1), splits[i - 1] being the i-th split point (n - 1 of
 * them, in order; equal neighbours give an empty range). RC_ERR_NOMEM. */
RC_MUST_CHECK rcode partition_set_bounds(struct partition *p, enum id_type type,
                                         const char *const *splits);

/* "partition K/N [lo, hi)" with "-inf"/"+inf" for open ends, for logs and
 * the journal's events. */
void partition_describe(const struct partition *p, char *out, size_t len);

/* Whether a canonical key (byte order) is in p's range; no partition: true. */
bool partition_holds(const struct partition *p, const char *key);

/* Frees p's bounds (not p). */
void partition_clear(struct partition *p);

#endif
