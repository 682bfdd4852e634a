/*
 * repair.h: the repair side of a run: a queue of drifted documents, fetched
 * from MongoDB and written to OpenSearch in journaled batches; re-sending a
 * resumed run's pending batches; the full re-index.
 *
 * Every batch follows the journal's commit protocol (store.h): written
 * pending with its ids before it is sent (store_batch_open), committed with
 * every document's outcome after OpenSearch answers (store_batch_close). A
 * batch whose outcome is unknown (the index unreachable) stays pending and a
 * resumed run sends it again. One document that cannot be written (refused,
 * id too long, not convertible) fails alone, journaled with its reason.
 */
#ifndef RECONCILER_REPAIR_H
#define RECONCILER_REPAIR_H

#include "config.h"
#include "doc.h"
#include "error.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

struct mongo;
struct opensearch;
struct os_keys;
struct transform;

/* Most drifted documents queued before they are repaired, and most ids in
 * one $in (10,000 ids: about 400 KB, whatever the collection's size). */
#define REPAIR_QUEUE_MAX 10000

/* One document to repair: its id, what drift it is (-1 in full runs, which
 * journal batches, not drift rows), and where its index copy lives (NULL:
 * OPENSEARCH_INDEX, no routing). Strings owned by the queue. */
struct qitem {
	char *id;
	enum id_type type;
	int kind; /* enum drift_kind, or -1 */
	char *index;
	char *routing;
	char *docid; /* the copy's _id where it is not id (deletes act on it) */
	/* where a write goes when it is not where the copy was found (the
	 * routing rule's routing; a moved copy's write goes to OPENSEARCH_INDEX).
	 * index and routing above stay the drift row's key in the journal. */
	char *write_routing; /* NULL: routing */
	bool write_default_index;
	int64_t version; /* OPENSEARCH_VERSION_TYPE=external_gte: the version written; -1 none */
	/* the copy as the pass judged it (term 0: not known): the write or
	 * delete is conditional on it (docs/ENGINE.md, "Concurrent writers") */
	int64_t seq_no, primary_term;
	/* no judged copy (a full run, a resumed batch): the copy is looked up
	 * right before the write, which is conditional on what is found */
	bool guard;
	bool gone;          /* a delete whose copy the lookup did not find: not sent */
	char *read_version; /* guard: the version read from MongoDB (normalized), or NULL */
	/* an orphan because the transform leaves its document out: MongoDB
	 * holds it on purpose, so it is never asked again (recheck) */
	bool left_by_transform;
	/* stale, with several copies and none where the routing rule places it
	 * (DRIFT_REASON_MISPLACED): the copy moves there even when its routing
	 * is the rule's (it is in another backing index than the write index) */
	bool misplaced;
	/* a stale copy replaced whole (an index action, conditional on the copy
	 * judged) carrying the fields OPENSEARCH_INDEX_OWNED_FIELDS names, read
	 * from the copy: its leftovers go (docs/TRANSFORM.md). Set at the send,
	 * or by a move (then carried: the owned fields are in its body already) */
	bool replace, carried;
};

struct idvec {
	struct qitem *v;
	size_t n, cap;
};

struct repair {
	/* set by the run before use; borrowed */
	const struct config *cfg;
	struct store *store;
	struct mongo *mongo;
	struct opensearch *os;
	struct rerror *err;
	volatile int *stop;
	int64_t run_id;
	const char *id_field;       /* the keyword id field written into documents ("" none) */
	const struct os_keys *keys; /* how the index stream reads keys and versions */
	const char *write_index;    /* where OPENSEARCH_INDEX writes (an alias's); NULL: itself */
	/* upsert mode: the index has a default or final pipeline, which runs on
	 * an update only with doc_as_upsert (refused on conditional updates):
	 * updates stay unconditional. Asked at the first write. */
	bool pipeline_asked, plain_updates;
	struct transform *tf; /* the body and routing to write (transform.h); may be inactive */
	bool full;
	/* with full: a check that found the index empty writes every document
	 * from the stream, each journaled as the missing drift it is (a drift
	 * row per document, done or failed), not by id range alone */
	bool as_missing;
	int64_t left_out; /* documents the transform left out (not written) */
	int64_t *kept;    /* the run's count of copies OPENSEARCH_KEEP_QUERY kept (NULL: none) */
	int64_t tf_failed_in_row; /* the transform's failures since its last success */
	size_t point_max; /* fetch at most this many ids with one {_id: v} query each, not a $in */
	void (*on_commit)(void *ctx); /* after every committed batch (progress) */
	/* exists[i]: MongoDB holds a document under some typed value of texts[i]
	 * (that would be written to the index): asked again before a resumed
	 * run re-sends a pending orphan delete, which may be hours old */
	rcode (*mongo_exists)(void *ctx, const char *const *texts, size_t n, bool *exists,
	                      struct rerror *err);
	void *on_commit_ctx;
	/* full runs: the batch numbers in flight when interrupted, in order
	 * (owned; reused by the first batches), and the cursor that moves with
	 * every committed batch */
	int64_t *reuse;
	size_t n_reuse, reuse_at;
	int64_t compared, seen;
	char *cursor; /* owned */
	enum id_type cursor_type;
	/* the queue: to index (missing, stale), to delete (orphan, duplicate) */
	struct idvec fix, del;
	/* copies moved under the routing rule's routing: deleted once their
	 * document's write there was answered (repair.c, move_copy) */
	struct idvec moved;
	struct sender *sender; /* _bulk requests in flight (repair.c); owned */
};

/* Queues one drifted document, where its copy is (d's os_index, routing,
 * os_id may be NULL). */
RC_MUST_CHECK rcode repair_queue(struct repair *rp, const struct store_drift *d, enum id_type type);
size_t repair_queued(const struct repair *rp);
/* Repairs what is queued (stopping between batches on *stop) and empties
 * the queue. RC_ERR_CANCELLED when stopped. */
RC_MUST_CHECK rcode repair_flush(struct repair *rp);
/* Asks MongoDB again about every orphan waiting in the delete queue; one it
 * holds again (it came back since the pass judged it: during a long pass,
 * or while an interrupted run was down) is journaled skipped and dropped.
 * Held deletes are sent only after this (run.c, decide_deletes). */
RC_MUST_CHECK rcode repair_recheck_deletes(struct repair *rp);

/* Sends a resumed run's pending batches again, under their numbers. */
RC_MUST_CHECK rcode repair_resend_pending(struct repair *rp);
/* The full re-index: every document, from the cursor on, in batches. */
RC_MUST_CHECK rcode repair_full(struct repair *rp);
/* The external version a repair writes doc with
 * (OPENSEARCH_VERSION_TYPE=external_gte): field's value as epoch ms (a
 * date, ISO-8601 text) or a whole number >= 0; false, with why, when doc
 * has none usable. Live sync (stream.c) writes through it too. */
bool repair_external_version(const bson_t *doc, const char *field, int64_t *out, char *why,
                             size_t len);
/* Frees the queue and cursor (the struct itself is the caller's). */
void repair_release(struct repair *rp);

#endif
