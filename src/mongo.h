/*
 * mongo.h: the MongoDB side: ping, count, one _id-sorted stream per pass,
 * and fetches by id. Uses only what MongoDB 4.4+ and FerretDB both accept.
 */
#ifndef RECONCILER_MONGO_H
#define RECONCILER_MONGO_H

#include "diff.h"
#include "doc.h"
#include "error.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

struct mongo;
struct mongo_scan;

/* Process-wide libmongoc setup; call once from main. */
void mongo_global_init(void);
void mongo_global_cleanup(void);

RC_MUST_CHECK rcode mongo_open(struct mongo **out, const char *uri, const char *database,
                               const char *collection, struct rerror *err);
void mongo_free(struct mongo *m);

/* The mirror's RECONCILE_FILTER (extended JSON; NULL, "" or "{}": every
 * document). From then on mongo_count, the streams of mongo_scan_open and
 * mongo_fetch see only the documents it matches; mongo_fetch_unfiltered and
 * mongo_has_type see every document. RC_ERR_CONFIG when libbson cannot
 * parse it (config.c has checked it already). */
RC_MUST_CHECK rcode mongo_set_filter(struct mongo *m, const char *json, struct rerror *err);
/* Whether a filter is set. */
bool mongo_filtered(const struct mongo *m);
/* A partition's key range (partition.h): from then on mongo_count and the
 * streams of mongo_scan_open see only the ids in [lo, hi) of that type
 * (NULL: open on that side); fetches and existence checks by id do not, so
 * an orphan is still proven absent from the whole collection. */
RC_MUST_CHECK rcode mongo_set_range(struct mongo *m, const char *lo, const char *hi,
                                    enum id_type type, struct rerror *err);
/* The collection's (under its filter) id at place skip (0-based) in _id
 * order, ascending or descending: its canonical text (*id NULL past the
 * end; the caller frees) and type. One find with sort, skip and limit 1,
 * which MongoDB 4.4+ and FerretDB both take (a partition plan's bounds and
 * split points). */
RC_MUST_CHECK rcode mongo_id_at(struct mongo *m, char **id, enum id_type *type, int64_t skip,
                                bool descending, struct rerror *err);

/* Server version (caller frees) after a ping. */
RC_MUST_CHECK rcode mongo_ping(struct mongo *m, char **version, struct rerror *err);
RC_MUST_CHECK rcode mongo_count(struct mongo *m, int64_t *count, struct rerror *err);

/* *exists: the database has a collection of this name (listCollections
 * with a name filter, which MongoDB 4.4+ and FerretDB both answer). A
 * mirror whose collection does not exist is almost always a typo, and a
 * pass against it would call every index copy an orphan. */
RC_MUST_CHECK rcode mongo_collection_exists(struct mongo *m, bool *exists, struct rerror *err);

/* *has: the collection holds an _id of this type (json: a document,
 * binary or null). One find with limit 1: on MongoDB an _id index range,
 * on FerretDB a scan until the first match. */
RC_MUST_CHECK rcode mongo_has_type(struct mongo *m, enum id_type type, bool *has,
                                   struct rerror *err);

/* Whole documents a read asks per reply (a fetch's find and each getMore,
 * a full re-index's stream): bounds what one reply holds, whatever the
 * server's default (up to 16 MiB). */
#define MONGO_FETCH_BATCH_DOCS 1000

/* A stream of the collection (under its filter) in _id order. after/after_type: resume strictly
 * after that id (NULL: from the start). With full_docs false only _id and
 * version_field (may be NULL or "") are read. With ahead, a thread with a
 * client of its own reads ahead (at most 3 pages of 1000 documents or
 * 4 MiB), so reading overlaps the caller's work; m stays usable meanwhile. */
RC_MUST_CHECK rcode mongo_scan_open(struct mongo_scan **out, struct mongo *m, const char *after,
                                    enum id_type after_type, const char *version_field,
                                    bool full_docs, int batch_size, bool ahead, struct rerror *err);
/* *doc is NULL at the end of the stream; it stays valid until the next call. */
RC_MUST_CHECK rcode mongo_scan_next(struct mongo_scan *s, const bson_t **doc, struct rerror *err);
/* The stream shaped like the index's: appends the next document's id to
 * out as one entry (canonical text, type, version of version_field
 * normalized, change time: the version's, else an ObjectId's), and says its
 * class (enum id_class); *end at the end of the stream. *unsafe: the id's
 * text holds a NUL, which C strings cannot carry (the entry has '?' in its
 * place; it must not be compared or written). */
RC_MUST_CHECK rcode mongo_scan_next_id(struct mongo_scan *s, struct idlist *out, int *cls,
                                       bool *end, bool *unsafe, const char *version_field,
                                       struct rerror *err);
/* The document whose id mongo_scan_next_id appended last (whole when the
 * stream was opened with full_docs), valid until the next call. */
const bson_t *mongo_scan_last_doc(const struct mongo_scan *s);
/* One document's entry as mongo_scan_next_id appends it (doc holds _id
 * and, where there is one, version_field). */
RC_MUST_CHECK rcode mongo_doc_id_entry(const bson_t *doc, struct idlist *out, int *cls,
                                       bool *unsafe, const char *version_field, struct rerror *err);
/* A stream (no order) of the documents whose version_field is after
 * since_ms as an instant (doc_version_after: a Date, a Timestamp or
 * ISO-8601 text with any offset, a number as epoch milliseconds). The
 * server is asked for a wider set (text from the day before on) and the
 * rest is dropped here, so the caller sees only those; only _id and
 * version_field are read. */
RC_MUST_CHECK rcode mongo_scan_open_since(struct mongo_scan **out, struct mongo *m,
                                          const char *version_field, int64_t since_ms,
                                          int batch_size, struct rerror *err);
void mongo_scan_free(struct mongo_scan *s);

/* Up to n random documents of the collection (under its filter) through
 * the aggregation stage $sample, their ids appended to out as
 * mongo_scan_next_id appends them (unsafe ids, holding a NUL, left out).
 * $sample may hand one document twice; out is as the server answered.
 * *refused: the server does not take $sample (FerretDB 1.x: "not
 * implemented"), why in err's message, RC_OK and out untouched: the caller
 * draws from the id stream instead. A lost connection is an error. */
RC_MUST_CHECK rcode mongo_sample_ids(struct mongo *m, struct idlist *out, int64_t n, bool *refused,
                                     struct rerror *err);

/* Calls fn for every document whose _id is in ids (a BSON array of typed
 * values). projection may be NULL for whole documents. With point true,
 * one {_id: v} query per id instead of one $in (FerretDB only pushes _id
 * equality down to its storage). fn returns nonzero to stop.
 * When the server refuses the $in itself (not a lost connection: a value it
 * cannot match, such as FerretDB and a document _id with an empty key), it
 * is split until the value at fault stands alone, and refused (may be NULL:
 * then the refusal is an error) is told that value's index in ids and why;
 * documents may then reach fn twice. */
RC_MUST_CHECK rcode mongo_fetch(struct mongo *m, const bson_t *ids, const bson_t *projection,
                                bool point, int (*fn)(void *ctx, const bson_t *doc),
                                void (*refused)(void *ctx, size_t index, const char *reason),
                                void *ctx, struct rerror *err);
/* mongo_fetch ($in, never point queries) past the filter: every document
 * of ids that exists, whether the filter matches it or not. */
RC_MUST_CHECK rcode mongo_fetch_unfiltered(
    struct mongo *m, const bson_t *ids, const bson_t *projection,
    int (*fn)(void *ctx, const bson_t *doc),
    void (*refused)(void *ctx, size_t index, const char *reason), void *ctx, struct rerror *err);

/* A change stream on the collection (live sync, stream.c): an aggregate
 * with $changeStream, fullDocument updateLookup, then the stages of
 * pipeline (a BSON array; NULL: none), opened after start_after (a resume
 * token document; NULL: from now). Every wait for events lasts at most
 * max_await_ms. Errors: RC_ERR_MONGO with the server's code in
 * *server_code (0 when the error was not the server's: a lost
 * connection); 286 ChangeStreamHistoryLost and 136 CappedPositionLost mean
 * the token fell off the oplog. */
struct mongo_watch;
RC_MUST_CHECK rcode mongo_watch_open(struct mongo_watch **out, struct mongo *m,
                                     const bson_t *pipeline, const bson_t *start_after,
                                     int32_t max_await_ms, int *server_code, struct rerror *err);
/* The next event (NULL when none came within max_await_ms), valid until
 * the next call. */
RC_MUST_CHECK rcode mongo_watch_next(struct mongo_watch *w, const bson_t **event, int *server_code,
                                     struct rerror *err);
/* The stream's resume token now: the last event's, or past the events the
 * server left out (the post-batch token); NULL when none. Valid until the
 * next call. */
const bson_t *mongo_watch_token(struct mongo_watch *w);
void mongo_watch_free(struct mongo_watch *w);

#endif
