/*
 * transform.h: what a mirror writes for one MongoDB document, when it is not
 * the raw copy doc_to_json makes.
 *
 * Declarative steps (RECONCILE_FIELDS, RECONCILE_EXCLUDE, RECONCILE_RENAME)
 * pick and rename top-level fields; a Lua 5.4 script (RECONCILE_TRANSFORM)
 * may then reshape the document, leave it out of the index, or give its
 * routing. The script runs sandboxed (no io, os, require, load, debug),
 * within an instruction budget per call and a memory budget per Lua state.
 * docs/TRANSFORM.md is the user's reference; docs/MAPPING.md says how BSON
 * types look in Lua.
 *
 * A struct transform holds one Lua state, which is single-threaded: make one
 * per thread that converts documents.
 */
#ifndef RECONCILER_TRANSFORM_H
#define RECONCILER_TRANSFORM_H

#include "config.h"
#include "error.h"
#include "util.h"

#include <bson/bson.h>
#include <stdbool.h>

struct transform;

/* Reads cfg's RECONCILE_FIELDS, RECONCILE_EXCLUDE, RECONCILE_RENAME,
 * RECONCILE_TRANSFORM, the two budgets and OPENSEARCH_ROUTING_FIELD; loads, compiles and runs the
 * script's top level (which must define a global function transform).
 * *out is the caller's, also when no setting asks for anything
 * (transform_active is then false). Errors: RC_ERR_CONFIG, err->message
 * being Lua's "FILE:LINE: message" for a syntax or load-time error, or
 * naming the setting (unreadable file, no transform function, a rename
 * onto _id or OPENSEARCH_ID_FIELD, a malformed list); the caller exits 78.
 * RC_ERR_NOMEM. */
RC_MUST_CHECK rcode transform_new(struct transform **out, const struct config *cfg,
                                  struct rerror *err);
void transform_free(struct transform *t);

/* False when no setting asks for anything (also for NULL): the caller may
 * keep doc_to_json, which transform_apply would call anyway. */
bool transform_active(const struct transform *t);
/* Whether a script runs (it may then skip documents and give routing). */
bool transform_scripted(const struct transform *t);
/* The loaded script's digest: FNV-1a 64 of its compiled form (line
 * numbers included), 16 hex digits; NULL without a script. A
 * run keeps it in its settings snapshot (RECONCILE_TRANSFORM_DIGEST), and a
 * resume whose script changed under the same path starts over, as for a
 * changed setting. t owns the text. */
const char *transform_digest(const struct transform *t);

/*
 * One document. out gets the body JSON to index (appended): the declarative
 * steps, then the script; id_field (if non-empty) always first and always
 * id_canonical, _id never in the body, as doc_to_json does. *routing gets a
 * malloc'd routing value: the script's (its second return value; numbers
 * as JSON writes them), else that of the first OPENSEARCH_ROUTING_FIELD
 * field of doc that can route (a non-empty string as is; a number,
 * ObjectId, bool or date as its id text; anything else is passed over),
 * else id_canonical when OPENSEARCH_ROUTING_FIELD is set; NULL without any
 * routing rule (the copy's own routing then applies).
 * *skip is true when the script returned nil: the document does not belong
 * in the index (like a filter); out is then unchanged.
 *
 * Errors, with the reason in err; out is left as it was: RC_ERR_INVALID
 * for one document the script cannot convert: a Lua runtime error
 * ("FILE:LINE: message"), a sandboxed function called, a budget exceeded,
 * a return value that is not a table (an object), nil or body, routing, or
 * a value JSON cannot hold ("body.a.b[2]: a function value ..."); the state
 * stays usable for the next document (closed and rebuilt from the script
 * compiled at start after a budget overrun). RC_ERR_TOOLARGE for nesting
 * deeper than DOC_MAX_DEPTH (either way); RC_ERR_INVALID for corrupt BSON;
 * RC_ERR_NOMEM.
 */
RC_MUST_CHECK rcode transform_apply(struct transform *t, const bson_t *doc, const char *id_field,
                                    const char *id_canonical, struct buf *out, char **routing,
                                    bool *skip, struct rerror *err);

#endif
