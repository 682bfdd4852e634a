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
	size_t index_off;   /* index side: the concrete index of the copy, or SIZE_MAX */
	size_t routing_off; /* index side: the copy's _routing, or SIZE_MAX (by _id) */
	size_t docid_off;   /* index side: the copy's _id where it is not its key, or SIZE_MAX */
	uint32_t id_len;
	uint8_t type;    /* enum id_type */
	int64_t time_ms; /* change time for RECONCILE_MIN_AGE_MS, -1 unknown */
	/* index side: the copy's _seq_no and _primary_term as the read that
	 * judged it saw them (term 0: not known); a repair's write is
	 * conditional on them, so it never lands on a copy written since */
	int64_t seq_no, primary_term;
	/* index side: read keys-only (no stored fields): the _id is assumed to
	 * be the key and the routing is unknown; nothing is written to such a
	 * copy without a fresh read (docs/ENGINE.md, "Verifying by range
	 * summaries") */
	bool where_unknown;
};

struct idlist {
	struct idrec *v;
	size_t n, cap;
	char *arena;
	size_t arena_len, arena_cap;
};

RC_MUST_CHECK rcode idlist_push(struct idlist *l, const char *id, size_t id_len, int type,
                                const char *version, int64_t time_ms);
/* idlist_push for a search hit, which says where the copy lives: its
 * concrete index (an alias may span several), its _routing, and its _id
 * when that is not its key (a foreign writer, a normalizer on the id
 * field); each may be NULL. Writes to that copy must name all three, or
 * they land on another document (or on nothing). */
struct hit_where {
	const char *index, *routing, *docid;
	int64_t seq_no, primary_term; /* term 0: not known */
	bool where_unknown;           /* no _id, no _routing read (idrec) */
};
RC_MUST_CHECK rcode idlist_push_hit(struct idlist *l, const char *id, size_t id_len, int type,
                                    const char *version, int64_t time_ms,
                                    const struct hit_where *w);
/* Appends entry i of src (with everything it carries) to dst. */
RC_MUST_CHECK rcode idlist_push_from(struct idlist *dst, const struct idlist *src, size_t i);
void idlist_clear(struct idlist *l);
void idlist_free(struct idlist *l);
const char *idlist_id(const struct idlist *l, size_t i);
const char *idlist_version(const struct idlist *l, size_t i); /* NULL if none */
const char *idlist_index(const struct idlist *l, size_t i);   /* NULL if not known */
const char *idlist_routing(const struct idlist *l, size_t i); /* NULL if none */
const char *idlist_docid(const struct idlist *l, size_t i);   /* NULL: the key is the _id */
/* The _id to act on: the copy's own where it is not its key. */
const char *idlist_target(const struct idlist *l, size_t i);
/* Drops the first k entries (the arena is compacted). */
RC_MUST_CHECK rcode idlist_shift(struct idlist *l, size_t k);

/* True when both normalized versions (doc_version_from_*) are numbers
 * (epoch ms, integers, decimals) and a is greater than b: a copy that holds
 * a newer version than the one read. Text versions never compare newer. */
bool diff_version_newer(const char *a, const char *b);

/* Byte order of canonical ids: memcmp, shorter first on a tie. */
int diff_compare(const char *a, size_t alen, const char *b, size_t blen);
/* True when every id is strictly greater than the one before. */
bool diff_is_sorted(const struct idlist *l);

/* Indices of drift, into mongo (missing, stale) or opensearch (orphan,
 * stale_os, duplicate). stale_os[k] is the index copy of stale[k]. */
struct drift {
	size_t *missing, n_missing;
	size_t *stale, *stale_os, n_stale;
	size_t *orphan, n_orphan;
	size_t *duplicate, n_duplicate;
	/* in both and not stale by version: same[k] into mongo, same_os[k]
	 * its kept copy (what a content compare looks at) */
	size_t *same, *same_os, n_same;
};

/* Merges two sorted lists. Stale needs a version on both sides that
 * differs; with compare_versions false nothing is stale. os may hold one id
 * several times in a row (copies in several backing indices of an alias):
 * the first copy of a run is the one compared, the others are duplicates
 * (an id only the index has is an orphan in each of its copies). A copy
 * whose _id is not its key (idlist_docid) is never the document's copy:
 * callers order such copies last, and when the first copy is one, the
 * document is missing and every copy a duplicate. */
RC_MUST_CHECK rcode diff_merge(struct drift *out, const struct idlist *mongo,
                               const struct idlist *os, bool compare_versions);
void drift_free(struct drift *d);

#endif
