/*
 * diff.h: the merge of two sorted id lists into drift. Pure: no I/O.
 *
 * An idlist holds one chunk of ids (canonical text, type, normalized
 * version) from one side, in byte order of the text. All strings live in
 * one arena, so a chunk is two allocations however many ids it has.
 */
#ifndef RECONCILER_DIFF_H
#define RECONCILER_DIFF_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct idrec {
	size_t id_off;      /* offset of the NUL-terminated id in the arena */
	size_t version_off; /* offset of the version, or SIZE_MAX for none */
	uint32_t id_len;
	uint8_t type;    /* enum id_type */
	int64_t time_ms; /* change time for RECONCILE_MIN_AGE_MS, -1 unknown */
};

struct idlist {
	struct idrec *v;
	size_t n, cap;
	char *arena;
	size_t arena_len, arena_cap;
};

rcode idlist_push(struct idlist *l, const char *id, size_t id_len, int type, const char *version,
                  int64_t time_ms);
void idlist_clear(struct idlist *l);
void idlist_free(struct idlist *l);
const char *idlist_id(const struct idlist *l, size_t i);
const char *idlist_version(const struct idlist *l, size_t i); /* NULL if none */
/* Drops the first k entries (the arena is compacted). */
rcode idlist_shift(struct idlist *l, size_t k);

/* Byte order of canonical ids: memcmp, shorter first on a tie. */
int diff_compare(const char *a, size_t alen, const char *b, size_t blen);
/* True when every id is strictly greater than the one before. */
bool diff_is_sorted(const struct idlist *l);

/* Indices of drift, into mongo (missing, stale) or opensearch (orphan). */
struct drift {
	size_t *missing, n_missing;
	size_t *stale, n_stale;
	size_t *orphan, n_orphan;
};

/* Merges two sorted lists. Stale needs a version on both sides that
 * differs; with compare_versions false nothing is stale. */
rcode diff_merge(struct drift *out, const struct idlist *mongo, const struct idlist *os,
                 bool compare_versions);
void drift_free(struct drift *d);

#endif
