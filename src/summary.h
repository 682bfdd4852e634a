/*
 * summary.h: range summaries (RECONCILE_VERIFY, docs/ENGINE.md "Verifying by
 * range summaries"): the 64-bit hash of one (key, _id, version), the same
 * function as the Painless script the index runs (summary_script), and the
 * cutting of a chunk of MongoDB ids into key ranges with their MongoDB-side
 * summaries. Pure: no I/O.
 */
#ifndef RECONCILER_SUMMARY_H
#define RECONCILER_SUMMARY_H

#include "diff.h"
#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One key range (lo, hi] of a merge segment (lo NULL: from the segment's
 * start; hi NULL: to the end of the key space), both sides' summaries: the
 * number of copies and the wrapping sum of summary_hash over them. */
struct summary_range {
	const char *lo, *hi; /* borrowed */
	size_t from, to;     /* the chunk's entries in the range: [from, to) */
	/* every version of those entries is one the script reproduces (an
	 * integer, or none): else the range is streamed, never summarized */
	bool summarizable;
	int64_t count; /* MongoDB side */
	uint64_t sum;
	bool os_ok; /* the index answered for the range */
	int64_t os_count;
	uint64_t os_sum;
};

/* The hash of one copy: FNV-1a-64 over the UTF-16 code units of key, a
 * unit 0, the units of docid, then a unit 1 and the version's four 16-bit
 * units (low first) or a unit 2 for no version, finished by splitmix64's
 * mixer. UTF-16 units because Painless reads strings as Java does; bad
 * UTF-8 decodes as U+FFFD (such a range only differs, and is streamed). */
uint64_t summary_hash(const char *key, size_t key_len, const char *docid, size_t docid_len,
                      bool has_version, int64_t version);
/* The integer the script reads for a normalized version (doc_version_from_*:
 * epoch ms for dates, integers, integral doubles below 2^53). False for any
 * other (text, a fraction): no script can reproduce it. */
bool summary_version(const char *normalized, int64_t *v);
/* Cuts m (one chunk of one class, in key order) into ranges of at most
 * size ids each, the first from prev (the key before the chunk; NULL: the
 * segment's start), each ending at an id of m, with m's summaries. The
 * ranges borrow m's keys and prev. */
RC_MUST_CHECK rcode summary_plan(struct summary_range **out, size_t *n, const struct idlist *m,
                                 const char *prev, size_t size, bool versions);
/* Whether both sides of a summarizable range agree. */
bool summary_equal(const struct summary_range *r);

/* The Painless scripted_metric (init, map, combine, reduce) whose reduce
 * gives "count:sum" (the sum as a signed 64-bit decimal: JSON numbers
 * pass through doubles). Params: f (the id field), v (the version field or
 * null), d (true: v is a date, read as epoch ms). */
extern const char summary_script_init[], summary_script_map[], summary_script_combine[],
    summary_script_reduce[];
/* Parses a reduce answer "count:sum"; false when it is not one. */
bool summary_parse(const char *text, int64_t *count, uint64_t *sum);

#endif
