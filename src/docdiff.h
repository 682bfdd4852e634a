/*
 * docdiff.h: one document's diff (`reconciler diff ID`, GET
 * /api/mirrors/{m}/docs/{id}/diff): what a repair would write for the
 * MongoDB document (after the mirror's transform), the index copy, and the
 * difference as a JSON Patch (RFC 6902) on the fields the transform writes
 * and the leftover fields it no longer writes.
 * docs/API.md has the answer's shape.
 */
#ifndef RECONCILER_DOCDIFF_H
#define RECONCILER_DOCDIFF_H

#include "config.h"
#include "error.h"
#include "util.h"

/* States of one document, as the answer's "state" spells them (one name
 * table, docdiff.c). */
enum docdiff_state {
	DOCDIFF_IN_SYNC,  /* the copy holds what a repair would write */
	DOCDIFF_STALE,    /* the copy differs on fields the transform writes, or holds
	                     leftovers (owned.h) */
	DOCDIFF_MISSING,  /* in MongoDB (and in the index's share), no copy */
	DOCDIFF_ORPHAN,   /* a copy, and no MongoDB document it belongs to */
	DOCDIFF_CONFLICT, /* two MongoDB documents whose ids have this text */
	DOCDIFF_EXCLUDED, /* the transform leaves it out, and there is no copy */
	DOCDIFF_FAILED,   /* the transform cannot convert it (error says why) */
	DOCDIFF_KEPT,     /* an orphan's copy that matches OPENSEARCH_KEEP_QUERY: kept on
	                     purpose, never deleted ("why" says so) */
};
const char *docdiff_state_name(enum docdiff_state s);

/* Whether id can be a document's canonical id at all: not empty, valid
 * UTF-8, no NUL (len bytes), at most OpenSearch's 512 bytes. NULL when it
 * can, else why not. */
const char *docdiff_bad_id(const char *id, size_t len);

/* The diff of the document whose canonical id text is id, in mirror cfg,
 * appended to out as JSON; *state says which. RC_ERR_NOTFOUND: neither
 * MongoDB (under any type the text could stand for) nor the index has it;
 * RC_ERR_INVALID: docdiff_bad_id; RC_ERR_CONFIG: the transform does not
 * load; RC_ERR_MONGO, RC_ERR_OPENSEARCH: a server failed. */
RC_MUST_CHECK rcode docdiff_json(struct buf *out, enum docdiff_state *state,
                                 const struct config *cfg, const char *id, struct rerror *err);

#endif
