/*
 * doc.h: MongoDB documents and ids as OpenSearch sees them. Pure: no I/O.
 *
 * An id has a type and a canonical text: the OpenSearch _id (and the value
 * of the id field) of the document. ObjectId -> 24 lowercase hex; string ->
 * itself; integers -> decimal; doubles -> shortest round-trip text (integral
 * doubles as integers, as MongoDB compares 42 and 42.0 equal); bool ->
 * true/false; Date -> ISO-8601 UTC with milliseconds; anything else ->
 * canonical extended JSON. The type travels with the text (journal column
 * id_type) so the typed value can be rebuilt for a MongoDB query.
 */
#ifndef RECONCILER_DOC_H
#define RECONCILER_DOC_H

#include "error.h"
#include "util.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

enum id_type { ID_INT, ID_DOUBLE, ID_STRING, ID_OID, ID_BOOL, ID_DATE, ID_JSON };

/* Where a type falls in MongoDB's _id sort order. STRING and OID sort like
 * their canonical text (bytes), so they merge with OpenSearch's keyword
 * order; NUMBER and OTHER are reconciled by lookups. */
enum id_class {
	CLASS_NUMBER = 0,
	CLASS_STRING = 1,
	CLASS_OTHER_LOW = 2,
	CLASS_OID = 3,
	CLASS_OTHER = 4
};

const char *doc_id_type_name(enum id_type t);
int doc_id_type_parse(const char *name, enum id_type *out);
enum id_class doc_id_class(enum id_type t, const bson_value_t *v);
bool doc_class_merges(enum id_class c);
/* The class of an id known by (canonical, type), e.g. a resumed cursor. */
enum id_class doc_id_class_of(const char *canonical, enum id_type type);
/* Whether s is an ObjectId's text: exactly 24 lowercase hex digits. */
bool doc_is_oid_hex(const char *s);
/* The creation time (epoch ms) in an ObjectId's text, else -1. */
int64_t doc_oid_time_ms(const char *s);

/* The canonical text and type of an _id value, appended to out. */
RC_MUST_CHECK rcode doc_id_canonical(const bson_value_t *v, struct buf *out, enum id_type *type);
/* Appends the typed value of (canonical, type) to dst under key. */
RC_MUST_CHECK rcode doc_id_append(bson_t *dst, const char *key, const char *canonical,
                                  enum id_type type);
/* Appends every typed value a canonical text could stand for to an array:
 * the string, and the ObjectId, number, date, bool or extended-JSON value
 * (documents, binary/UUID, null, ...) it parses as. Deliberately loose
 * ("042" also asks for 42): it is used to prove an index id absent from
 * MongoDB before its copy may be called an orphan, where asking too much
 * costs nothing and asking too little deletes live documents. */
RC_MUST_CHECK rcode doc_id_append_candidates(bson_t *array, uint32_t *index, const char *canonical);
/* Whether the text could stand for a value that not every server can be
 * asked about (NaN, infinities, MinKey, MaxKey, Decimal128: FerretDB drops
 * the connection): such a text is never proven absent, so its copy is never
 * called an orphan. */
bool doc_id_unaskable(const char *canonical);
/* The likeliest type of an index id known only by its text (for the
 * journal of orphans, which MongoDB has under no type): oid, int, double,
 * date, bool, json in that order, else string. */
enum id_type doc_id_guess_type(const char *canonical);
/* The other types whose values have exactly this canonical text (bit
 * 1 << enum id_type each): a string "42" and the int 42 share the index id
 * "42", so two MongoDB documents can collide in the index. 0: none. */
int doc_id_types_sharing(const char *canonical, enum id_type type);

/* A version value normalized for comparison: dates (BSON Date or ISO-8601
 * text) and epoch-millisecond numbers compare as integers, so a MongoDB Date
 * equals an OpenSearch date read as epoch_millis. Returns false when the
 * value has no version meaning (null, document, ...). *ms gets the time in
 * epoch ms when the value is a date, else -1. */
bool doc_version_from_bson(const bson_value_t *v, char *out, size_t len, int64_t *ms);
bool doc_version_from_text(const char *s, char *out, size_t len, int64_t *ms);
bool doc_version_from_number(double d, char *out, size_t len);

/* Whether a version is after since_ms as an instant (what `check --since`
 * selects): a Date, a Timestamp or ISO-8601 text (any offset or none, any
 * fraction) by its instant, an int32, int64 or double as epoch
 * milliseconds. Anything else, a number written as text included, is not:
 * no server-side query can select such text by its value. */
bool doc_version_after(const bson_value_t *v, int64_t since_ms);

/* Most levels of nesting doc_to_json follows (MongoDB's own limit is 100). */
#define DOC_MAX_DEPTH 100

/* The OpenSearch JSON of a document, appended to out: _id removed;
 * id_field (if non-empty) set to id_canonical; values mapped as
 * docs/MAPPING.md says. Errors, with the reason in err: RC_ERR_TOOLARGE for
 * nesting deeper than DOC_MAX_DEPTH, RC_ERR_INVALID for corrupt BSON,
 * RC_ERR_NOMEM. out may hold a partial document after an error. */
RC_MUST_CHECK rcode doc_to_json(const bson_t *doc, const char *id_field, const char *id_canonical,
                                struct buf *out, struct rerror *err);

/* Appends s (len bytes) as a JSON string; invalid UTF-8 becomes U+FFFD. */
RC_MUST_CHECK rcode doc_json_string(struct buf *out, const char *s, size_t len);

#endif
