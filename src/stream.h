/*
 * stream.h: live sync (`reconciler sync`, docs/LIVE-SYNC.md): each
 * mirror's change stream tailed and written to its index through the
 * repairs' write path, its place journaled with every acknowledged batch,
 * and every gap (a place lost) journaled and closed by a check run.
 */
#ifndef RECONCILER_STREAM_H
#define RECONCILER_STREAM_H

#include "config.h"
#include "error.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>

/* Tails the n mirrors' change streams (a thread each) until *stop is set
 * (a signal: each commits what OpenSearch acknowledged and stops), or one
 * fails for good: RC_ERR_CONFIG (exit 78: the server has no change
 * streams, a transform that does not compile, the journal refused), with
 * err naming the mirror. Lost connections and an unreachable index are
 * retried (the stream reopens from its journaled place), never fatal. */
RC_MUST_CHECK rcode stream_sync(const struct config *const *mirrors, size_t n, volatile int *stop,
                                struct rerror *err);

/* ---- the service's tailer (`reconciler serve`, CHANGE_STREAM_ENABLED) ---- */

/* What a mirror's tailer is doing, as GET /api/mirrors/{m}/stream spells
 * it (one name table, stream.c). */
enum stream_state {
	STREAM_DISABLED, /* CHANGE_STREAM_ENABLED=false and not started by the API */
	STREAM_RUNNING,  /* tailing (or reopening after an error: reconnecting) */
	STREAM_STOPPED,  /* stopped by the API: its place is journaled */
	STREAM_FAILED,   /* ended by a setting, the journal or another sync of the mirror */
};
const char *stream_state_name(enum stream_state s);

struct stream_tailer;

struct stream_status {
	enum stream_state state;
	bool catching_up;  /* a catch-up check runs: the stream waits for it */
	bool reconnecting; /* running, waiting to reopen after error */
	int64_t lag_s;     /* now - the oldest event read and not applied (the last applied
	                    * while more come; the pause's start while a catch-up runs or
	                    * the stream reopens); 0 caught up; -1 not running */
	char error[512];   /* the last failure ("": none) */
	rcode end_rc;      /* failed: why it ended (RC_ERR_BUSY: another sync tails the
	                    * mirror; RC_ERR_CONFIG: a setting or the server refused it) */
};

/* One mirror's tailer (cfg borrowed, outliving it), not started. */
RC_MUST_CHECK rcode stream_tailer_new(struct stream_tailer **out, const struct config *cfg,
                                      struct rerror *err);
/* Starts tailing in a thread of its own (the same loop as stream_sync);
 * RC_ERR_BUSY when it runs already. */
RC_MUST_CHECK rcode stream_tailer_start(struct stream_tailer *t, struct rerror *err);
/* Asks it to stop (the batch being read written and journaled, a catch-up
 * run interrupted) without waiting. */
void stream_tailer_signal(struct stream_tailer *t);
/* Asks it to stop and waits at most wait_ms; false when it did not stop
 * in time (it still stops). true when it was not running. */
bool stream_tailer_stop(struct stream_tailer *t, int64_t wait_ms);
void stream_tailer_status(struct stream_tailer *t, struct stream_status *out);
/* Stops it (waiting as long as it takes) and frees it; NULL is fine. */
void stream_tailer_free(struct stream_tailer *t);

/* The $match stage that narrows a mirror's change stream to its
 * RECONCILE_FILTER where the server can tell: inserts whose document the
 * filter leaves out are dropped; every other event passes (an update may
 * take a document out of the filter: its copy is then deleted, which only
 * a fetch under the filter can tell). filter: extended JSON ("" none).
 * *built false (out empty) when the filter cannot be moved onto
 * fullDocument (a top-level operator other than $and, $or, $nor, $comment:
 * $expr, $where, $text...) or there is none: no $match then. Pure. */
RC_MUST_CHECK rcode stream_match_stage(bson_t *out, bool *built, const char *filter,
                                       struct rerror *err);

#endif
