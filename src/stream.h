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
