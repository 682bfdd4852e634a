/*
 * pass.h: the comparison pass of a check or dry run: both id streams in key
 * order, cut into chunks, merged or looked up, into drift. No I/O of its
 * own: it reads and reports through a struct pass_io, which run.c backs
 * with MongoDB, OpenSearch and the journal, and tests with sorted lists.
 */
#ifndef RECONCILER_PASS_H
#define RECONCILER_PASS_H

#include "diff.h"
#include "doc.h"
#include "error.h"
#include "summary.h"

#include <stdbool.h>
#include <stdint.h>

/* A chunk's drift, as the pass hands it over. Everything is borrowed for
 * the call. */
struct pass_drift {
	const struct idlist *m;   /* the chunk's MongoDB ids, in key order */
	const struct idlist *osl; /* index copies, in key order (copies of an id together) */
	const struct drift *d;    /* missing, stale (+ stale_os), duplicate; d->orphan unused */
	const size_t *orphans;    /* copies proven absent from MongoDB (or from its
	                             filter): indices into osl */
	size_t n_orphans;
	const bool *left_filter; /* per orphan: MongoDB has the document, but outside
	                            RECONCILE_FILTER; NULL: none is */
	char *const *conflict;   /* per entry of m: the type of another MongoDB document
	                            with the same id text (one index _id for both), or NULL */
	/* per entry of d->stale: the top-level fields whose content differs
	 * (RECONCILE_COMPARE=content; comma-separated, bounded), or NULL when
	 * the versions told (or no list) */
	char *const *stale_fields;
	/* per entry of m (NULL: none is): the document has several copies and
	 * none where its routing rule places it (pass_opts.routing_rule); its
	 * kept copy is in d's stale list, to be moved there */
	const bool *misplaced;
};

/* What the pass reads and where it reports. Each returns an rcode and, on
 * error, fills err; the pass stops at the first error. */
struct pass_io {
	void *ctx;
	/* The next MongoDB id in _id order, appended to out as one entry
	 * (text, type, version, change time), and its enum id_class; *end at
	 * the end of the collection; *unsafe as mongo_scan_next_id says. */
	rcode (*mongo_next)(void *ctx, struct idlist *out, int *cls, bool *end, bool *unsafe,
	                    struct rerror *err);
	/* A MongoDB id the pass cannot carry (its text holds a NUL; text has
	 * '?' in its place): journal it failed, never compare or write it. */
	rcode (*on_unsafe)(void *ctx, const char *text, enum id_type type, struct rerror *err);
	/* The next page (about `size`) of index copies in key order strictly
	 * after `after` (NULL: from the start), appended to out with their
	 * index, routing and _id; copies of one key never straddle two pages;
	 * *more false at the end. RC_ERR_NOTFOUND: the index is gone. */
	rcode (*index_page)(void *ctx, struct idlist *out, bool *more, const char *after, int size,
	                    struct rerror *err);
	/* The index copies of ids (n texts), appended to out in any order. */
	rcode (*index_lookup)(void *ctx, struct idlist *out, const char *const *ids, size_t n,
	                      struct rerror *err);
	/* exists[i]: MongoDB has a document under some typed value texts[i]
	 * could stand for (doc_id_append_candidates) that matches
	 * RECONCILE_FILTER (every document without one). With outside (may be
	 * NULL), outside[i]: no such document matches, but one exists outside
	 * the filter. */
	rcode (*mongo_exists)(void *ctx, const char *const *texts, size_t n, bool *exists,
	                      bool *outside, struct rerror *err);
	/* other[i]: a strdup'd type name of a MongoDB document whose id has
	 * the text texts[i] but not the type types[i], else NULL. */
	rcode (*mongo_other)(void *ctx, const char *const *texts, const enum id_type *types,
	                     size_t n, char **other, struct rerror *err);
	/* Targeted runs (pass_opts.ids): the MongoDB documents whose _id is
	 * any typed value one of texts could stand for
	 * (doc_id_append_candidates), appended to out as mongo_next does.
	 * answered[i]: every such value of texts[i] was asked, under no
	 * filter, and answered (false for a value the server refused, or in a
	 * run with RECONCILE_FILTER): what the lookup did not find under that
	 * text does not exist, so the pass asks no more about it (orphans,
	 * conflicts). A text that cannot be asked about (doc_id_unaskable)
	 * is answered for conflicts; its copy is still never an orphan. */
	rcode (*mongo_lookup)(void *ctx, const char *const *texts, size_t n, struct idlist *out,
	                      bool *answered, struct rerror *err);
	/* *has: MongoDB holds some id of this type (one $type probe). */
	rcode (*mongo_has_type)(void *ctx, enum id_type type, bool *has, struct rerror *err);
	/* RECONCILE_COMPARE=content: n pairs of a MongoDB id (mi[k] into m)
	 * and its index copy (oi[k] into osl) that the versions do not call
	 * stale; fields[k] gets a malloc'd list of the top-level fields whose
	 * content differs (comma-separated, bounded), or stays NULL when the
	 * copy holds what a repair would write. */
	rcode (*content_differs)(void *ctx, const struct idlist *m, const struct idlist *osl,
	                         const size_t *mi, const size_t *oi, size_t n, char **fields,
	                         struct rerror *err);
	/* With a routing rule (pass_opts.routing_rule): routing[k] gets a
	 * malloc'd copy of the routing the rule gives the MongoDB document of
	 * m's entry mi[k] (its OPENSEARCH_ROUTING_FIELD, or its transform's),
	 * or stays NULL (no such document, no routing, the script leaves it
	 * out or fails on it). Asked for ids with several copies only. */
	rcode (*rule_routing)(void *ctx, const struct idlist *m, const size_t *mi, size_t n,
	                      char **routing, struct rerror *err);
	/* OPENSEARCH_KEEP_QUERY (pass_opts.keep_orphans): kept[i] for the
	 * copy osl[idx[i]] (an orphan: no MongoDB document): it matches the
	 * keep clause, so the index keeps it on purpose. */
	rcode (*kept_orphans)(void *ctx, const struct idlist *osl, const size_t *idx, size_t n,
	                      bool *kept, struct rerror *err);
	/* Range summaries (pass_opts.summaries): the index's side of the n
	 * ranges (os_ok, os_count, os_sum); a range it could not answer keeps
	 * os_ok false and is streamed. RC_ERR_NOTFOUND: the index is gone. */
	rcode (*index_summaries)(void *ctx, struct summary_range *r, size_t n, struct rerror *err);
	/* index_page bounded above: only copies whose key is at most hi (a
	 * range whose summaries differ). keys_only: without stored fields
	 * (the cost of a page in a randomly written index): each copy is
	 * taken to be under its key, its routing unknown (where_unknown); the
	 * pass checks that assumption against the range's summary and reads
	 * again, with stored fields, every copy that can become drift. */
	rcode (*index_range)(void *ctx, struct idlist *out, bool *more, const char *after,
	                     const char *hi, bool keys_only, int size, struct rerror *err);
	/* The pass stops summarizing and merges the rest (too many ranges
	 * differ, a second id class): why, said once. May be NULL. */
	rcode (*on_verify_merge)(void *ctx, const char *why, struct rerror *err);
	/* A chunk's drift: journal it, queue its repair. */
	rcode (*on_drift)(void *ctx, const struct pass_drift *d, struct rerror *err);
	/* The pass is past a chunk ending at (id, type): compared MongoDB ids
	 * so far, seen the bit set of id classes met. */
	rcode (*on_chunk)(void *ctx, const char *id, enum id_type type, int64_t compared,
	                  int64_t seen, struct rerror *err);
};

/* What the pass read, for the brake on deletes (run.c). */
struct pass_stats {
	/* index copies read by the sweep that judges orphans (the first merge
	 * segment's, or the final one); in: what a resumed run had read up to
	 * its cursor */
	int64_t index_read;
	/* orphans the keep clause kept (pass_opts.keep_orphans), by the same
	 * sweep; in: up to the cursor */
	int64_t kept;
	/* key ranges proven in sync by their summaries, and ranges streamed
	 * (their summaries differed, or could not be had); in: up to the
	 * cursor */
	int64_t ranges_summarized, ranges_descended;
};

struct pass_opts {
	int64_t chunk_size;      /* MongoDB ids per chunk, and index ids per page */
	bool compare_versions;   /* RECONCILE_VERSION_FIELD is set */
	bool compare_content;    /* RECONCILE_COMPARE=content: io->content_differs */
	bool index_missing;      /* the index does not exist: its side is empty */
	const char *write_index; /* of several copies the one here is kept; NULL: the first */
	/* a routing rule exists (OPENSEARCH_ROUTING_FIELD, a transform script):
	 * of several copies of a document the one under the rule's routing (in
	 * the write index) is kept (io->rule_routing) */
	bool routing_rule;
	/* OPENSEARCH_KEEP_QUERY is set: orphans matching it are kept
	 * (io->kept_orphans), counted in stats->kept, never handed over */
	bool keep_orphans;
	bool filtered; /* RECONCILE_FILTER is set: every orphan candidate is asked
	                  of MongoDB, for the reason (absent, or left the filter) */
	/* RECONCILE_VERIFY: merge segments are verified by range summaries of
	 * range_size ids (io->index_summaries), and only ranges that differ are
	 * streamed; with summaries_fallback (auto), a pass whose first ranges
	 * mostly differ merges the rest. The caller decided the mirror
	 * qualifies (docs/ENGINE.md, "Verifying by range summaries"). */
	bool summaries, summaries_fallback;
	size_t range_size;
	/* resume: the last committed id (NULL: from the start) and what the
	 * pass had seen and compared up to it */
	const char *cursor;
	enum id_type cursor_type;
	int64_t seen, compared;
	volatile int *stop;       /* nonzero: stop between chunks */
	struct pass_stats *stats; /* may be NULL */
	/* targeted runs: with ids (n_ids texts), just those ids are checked
	 * (missing, stale, orphan, duplicate, conflict), looked up on both
	 * sides; with `targeted`, every chunk of mongo_next's stream (the
	 * documents changed since a time) is looked up in the index (missing,
	 * stale: no sweep, so no orphans) */
	const char *const *ids;
	size_t n_ids;
	bool targeted;
};

/* Runs the pass to the end of both streams (or to *stop: RC_OK, the caller
 * looks at stop); a targeted run, its ids or its stream. */
RC_MUST_CHECK rcode pass_run(const struct pass_opts *o, const struct pass_io *io,
                             struct rerror *err);

#endif
