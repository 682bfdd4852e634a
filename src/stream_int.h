/*
 * stream_int.h: what stream.c (the loop, gaps, the catch-up) and
 * stream_write.c (a batch and its write) share: the state of one mirror's
 * live sync. Not for other modules: they call stream.h.
 */
#ifndef RECONCILER_STREAM_INT_H
#define RECONCILER_STREAM_INT_H

#include "stream.h"

#include "doc.h"
#include "opensearch.h"
#include "store.h"

#include <pthread.h>
#include <stdint.h>

struct engine;
struct mongo;
struct mongo_watch;
struct transform;

enum sev_op { SEV_WRITE, SEV_DELETE };

/* One document's latest change in the batch. */
struct sev {
	char *id;
	enum id_type type;
	enum sev_op op;
	bson_t *doc; /* the document to write (fullDocument, or fetched); NULL: none */
	size_t seq;  /* arrival order: the last change of an id wins */
	int64_t events;
	/* at flush */
	struct buf body;
	char *routing;
	int64_t version;
	bool failed;
	char *why;
	/* the write's round: 0, or the re-read after a conflict (1 to
	 * STREAM_REREADS): another writer changed the copy it was conditional on */
	int round;
};

/* The routings of the documents the stream wrote last, remembered because
 * a search (the copies' lookup) sees a write only after the index's next
 * refresh: a delete (or a move to another routing) of a document written a
 * moment before must still find its copy. Two generations of up to
 * RECENT_MAX each: an entry lives for at least RECENT_MAX writes after it. */
#define RECENT_MAX 65536
struct recent_gen {
	char **id, **routing; /* open addressing, cap slots; routing NULL: by _id */
	size_t cap, n;
};
struct recent {
	struct recent_gen cur, old;
};

struct stream {
	const struct config *cfg;
	volatile int *stop;
	bool in_service; /* serve's tailer: it logs its own end (sync's caller says it) */
	struct store *store;
	struct mongo *mongo;
	struct opensearch *os;
	struct transform *tf;
	char *write_index; /* an alias's write index; NULL: OPENSEARCH_INDEX */
	struct os_keys keys;
	struct mongo_watch *w;
	bson_t pipeline;
	bool has_pipeline, filtered;
	/* the batch */
	struct sev *ev;
	size_t n, cap, seq;
	size_t bytes;
	int64_t first_ms;
	uint32_t ct_t, ct_i;  /* the last event's cluster time */
	const char *drop_op;  /* a drop or rename seen before its invalidate */
	struct recent recent; /* stream_write.c */
	int round;            /* stream_write.c: the round being written (sev.round) */
	/* upsert mode with an index's default pipeline: updates stay plain
	 * (OpenSearch runs it on an update only with doc_as_upsert, refused on a
	 * conditional one); asked at the first batch after each setup */
	bool pipeline_asked, plain_updates;
	bool index_seen; /* a lookup found the index: a later 404 means it was deleted */
	/* the journal */
	bson_t *committed; /* the token last journaled */
	int64_t last_commit_ms;
	int64_t
	    batches_committed; /* with changes in them: the stream went on (its backoff resets) */
	/* what the once-a-minute line says */
	int64_t applied, failed, report_ms;
	int64_t newer; /* of applied: refused as older than the copy (external versions) */
	bool catchup_due;
	bool catchup_for_coll; /* the catch-up waits for the collection: its first change runs it */
	bool catchup_held;     /* the last catch-up held its deletes: a person decides */
	int64_t catchup_at;    /* mono ms: not before */
	int64_t gaps_look_at;  /* CHANGE_STREAM_CATCHUP=false: when to look for checks that closed
	                          gaps */
	/* stop reaches a catch-up run through its engine */
	pthread_mutex_t mu;
	struct engine *catchup;
	/* what the service shows (stream_tailer_status), under mu */
	int64_t lag_from; /* cluster time (s) the lag counts from; 0: caught up */
	bool reconnecting;
	char error[sizeof(((struct rerror *)0)->message)]; /* the last error reopened after */
	/* the thread's outcome */
	pthread_t thread;
	volatile int done;
	rcode rc;
	struct rerror err;
};

/* Adds one change (doc copied; NULL: none). */
RC_MUST_CHECK rcode stream_batch_add(struct stream *st, const char *id, enum id_type type,
                                     enum sev_op op, const bson_t *doc);
/* Writes the batch to the index (not journaled: the caller commits its
 * place); *applied and *failed count its events, *last_error (the batch's,
 * valid until stream_batch_clear) the last document's failure. An error:
 * the outcome is not known (the index unreachable past the retries). */
RC_MUST_CHECK rcode stream_batch_write(struct stream *st, int64_t *applied, int64_t *failed,
                                       const char **last_error);
void stream_batch_clear(struct stream *st);
/* The index was deleted while the stream ran (a copy lookup found it
 * gone after it had been there): a gap of reason index_lost is journaled
 * (its catch-up writes the mirror again) and the index made again as a
 * check makes it (stream.c). */
RC_MUST_CHECK rcode stream_index_lost(struct stream *st);
/* Forgets the recent writes (teardown). */
void stream_recent_free(struct stream *st);

#endif
