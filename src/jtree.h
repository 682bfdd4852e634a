/*
 * jtree.h: JSON documents compared by meaning, for stale-by-content
 * (RECONCILE_COMPARE=content) and one document's diff. Pure: no I/O.
 *
 * A parsed tree keeps each value's own text, so numbers stay exact (cJSON
 * reads every number as a double, which loses int64 past 2^53) and a value
 * can be written back byte for byte. Two values are equal when they mean the
 * same (docs/ENGINE.md, "Stale by content"):
 *  - objects: the same members whatever their order;
 *  - arrays: the same items in the same order;
 *  - numbers: by value (7 = 7.0 = 7e0); when both are integer texts that
 *    fit an int64, exactly (9223372036854775807 != 9223372036854775806,
 *    which a double cannot tell apart);
 *  - strings: the same code points, however escaped ("\u00e9" = "é"); two
 *    texts that both parse as ISO-8601 dates are equal when they name the
 *    same instant (offsets, precision: "2024-01-01T01:00:00+01:00" =
 *    "2024-01-01T00:00:00.000Z"), digits below the millisecond included;
 *  - true, false, null: themselves (null is not an absent field).
 */
#ifndef RECONCILER_JTREE_H
#define RECONCILER_JTREE_H

#include "error.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>

enum jt_type { JT_NULL, JT_FALSE, JT_TRUE, JT_NUMBER, JT_STRING, JT_ARRAY, JT_OBJECT };

/* One value. raw points into the parsed text (which must outlive the
 * tree); str is the decoded string (strings), key the decoded member name
 * (members of an object). */
struct jt {
	enum jt_type type;
	const char *raw;
	size_t raw_len;
	char *str;
	size_t str_len;
	char *key;
	size_t key_len;
	struct jt *kids; /* items of an array, members of an object */
	size_t n, cap;
};

/* Most levels of nesting parsed (documents are at most 100 deep). */
#define JT_MAX_DEPTH 200

/* Parses text (len bytes) into *out. RC_ERR_INVALID with the reason and
 * offset in err for anything that is not one JSON value. */
RC_MUST_CHECK rcode jt_parse(struct jt **out, const char *text, size_t len, struct rerror *err);
void jt_free(struct jt *t);

/* The member key of an object (the first of that name), else NULL. */
const struct jt *jt_get(const struct jt *obj, const char *key);
/* The value at a path of member names (obj.a.b): n names. */
const struct jt *jt_path(const struct jt *obj, const char *const *names, size_t n);

/* Whether a and b mean the same (above). */
bool jt_equal(const struct jt *a, const struct jt *b);
bool jt_number_equal(const char *a, size_t alen, const char *b, size_t blen);
bool jt_string_equal(const char *a, size_t alen, const char *b, size_t blen);

/* merge, below: the body is written as a partial update
 * (RECONCILE_WRITE_MODE=upsert), which OpenSearch merges into the copy
 * object by object, so members only the copy has survive at every depth
 * and are not a difference; without it (a whole-document write) they are,
 * below the top level. Arrays are replaced whole either way. */

/* Whether copy has every top-level member of body (an object), equal. */
bool jt_same_fields(const struct jt *copy, const struct jt *body, bool merge);

/* Whether copy's member named as member (one of a body's members) holds
 * what member writes. */
bool jt_field_same(const struct jt *copy, const struct jt *member, bool merge);

/* The top-level members of body (an object) whose value differs in copy
 * (absent there, or not jt_equal), appended to names comma-separated, at
 * most max bytes of names (then ",..." ends the list); members only copy
 * has are not looked at. *count gets how many differ (all of them). */
RC_MUST_CHECK rcode jt_diff_fields(struct buf *names, size_t max, size_t *count,
                                   const struct jt *copy, const struct jt *body, bool merge);

/* A JSON Patch (RFC 6902) that turns copy into body on the members body
 * has, appended to out as a JSON array: "add" for a member copy lacks,
 * "replace" for one that differs, recursing into objects on both sides
 * (where members copy has and body lacks get "remove": the body writes the
 * whole nested object; not under merge); arrays and other values are replaced whole. Paths
 * are JSON Pointers (RFC 6901: "~" as "~0", "/" as "~1"). Top-level
 * members only copy has are left out (fields only the index has). copy
 * NULL: every member of body is added. */
RC_MUST_CHECK rcode jt_patch(struct buf *out, const struct jt *copy, const struct jt *body,
                             bool merge);

/* Appends a JSON Pointer token (RFC 6901 escaping) of s to out, without
 * JSON string quoting. */
RC_MUST_CHECK rcode jt_pointer_token(struct buf *out, const char *s, size_t len);

#endif
