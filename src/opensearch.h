/*
 * opensearch.h: the OpenSearch side over its REST API: info, _count, the
 * id stream of an index in key order, lookups by id, and _bulk with
 * per-item results. One struct opensearch per thread (it owns a curl
 * handle and its keep-alive connection).
 */
#ifndef RECONCILER_OPENSEARCH_H
#define RECONCILER_OPENSEARCH_H

#include "config.h"
#include "diff.h"
#include "error.h"
#include "util.h"

#include <stdbool.h>
#include <stdint.h>

struct opensearch;

/* The longest _id OpenSearch accepts, in UTF-8 bytes (a longer one fails
 * the whole _bulk request: "Validation Failed: id [...] is too long"). */
#define OPENSEARCH_ID_MAX_BYTES 512

void opensearch_global_init(void);
void opensearch_global_cleanup(void);

RC_MUST_CHECK rcode opensearch_open(struct opensearch **out, const struct config *cfg,
                                    struct rerror *err);
void opensearch_free(struct opensearch *os);

/* One request; *status is the HTTP status (0 if none came back). A body may
 * be NULL. resp receives the response body. Fails only on transport errors. */
RC_MUST_CHECK rcode opensearch_request(struct opensearch *os, long *status, struct buf *resp,
                                       const char *method, const char *path, const char *body,
                                       size_t body_len, struct rerror *err);

RC_MUST_CHECK rcode opensearch_info(struct opensearch *os, char **version, struct rerror *err);
/* _count of the index (primaries only, unlike _stats totals). */
RC_MUST_CHECK rcode opensearch_count(struct opensearch *os, int64_t *count, struct rerror *err);
/* How many documents of the concrete index `index` both this mirror's
 * OPENSEARCH_QUERY and other_query (query DSL text, another mirror's)
 * select: two mirrors on one index whose queries overlap on documents call
 * each other's copies orphans. 0 when the index is missing. */
RC_MUST_CHECK rcode opensearch_count_shared(struct opensearch *os, int64_t *count,
                                            const char *index, const char *other_query,
                                            struct rerror *err);
/* How many documents of the index lack field (0 when the index is missing). */
RC_MUST_CHECK rcode opensearch_count_missing(struct opensearch *os, int64_t *count,
                                             const char *field, struct rerror *err);
/* The mirror's copies (under OPENSEARCH_QUERY) that do not match
 * keep_query (OPENSEARCH_KEEP_QUERY; NULL or "": opensearch_count): kept
 * copies have no MongoDB document on purpose, so a count compared with
 * MongoDB's leaves them out. */
RC_MUST_CHECK rcode opensearch_count_unkept(struct opensearch *os, int64_t *count,
                                            const char *keep_query, struct rerror *err);
/* Whether the copy `docid` of the concrete index `index` (NULL:
 * OPENSEARCH_INDEX) matches clause (query DSL JSON) under the mirror's
 * query: one _count. */
RC_MUST_CHECK rcode opensearch_copy_matches(struct opensearch *os, bool *match, const char *index,
                                            const char *docid, const char *clause,
                                            struct rerror *err);
/* Whether OpenSearch takes cfg's OPENSEARCH_QUERY and OPENSEARCH_KEEP_QUERY
 * on this index (a _count with each; a missing index takes anything):
 * RC_ERR_CONFIG naming the setting (and the mirror, of several) with
 * OpenSearch's reason when it refuses one, before a run writes anything. */
RC_MUST_CHECK rcode opensearch_check_queries(struct opensearch *os, const struct config *cfg,
                                             struct rerror *err);
/* The mapping type of a field of the index (caller frees), or NULL when the
 * field is not mapped; *inexact (may be NULL; caller frees) says why the
 * field's doc values do not hold every value exactly (a normalizer,
 * ignore_above), else NULL. RC_ERR_NOTFOUND when the index does not exist. */
RC_MUST_CHECK rcode opensearch_field_type(struct opensearch *os, char **type, char **inexact,
                                          const char *field, struct rerror *err);
/* What OPENSEARCH_INDEX names: for an alias, how many indices it spans and
 * which one takes writes (its is_write_index, or its only index; NULL when
 * it has none); for an index (or a name that does not exist yet), 1 and
 * NULL. The caller owns *write_index. */
RC_MUST_CHECK rcode opensearch_targets(struct opensearch *os, char **write_index, int *n_indices,
                                       struct rerror *err);
/* A concrete index: its name and uuid (what two names of one index share). */
struct os_concrete {
	char *name, *uuid;
};
/* The concrete indices that index (NULL: OPENSEARCH_INDEX; an index or an
 * alias) stands for, with their uuids, from one GET /INDEX/_settings/
 * index.uuid; *n is 0 when nothing of that name exists. */
RC_MUST_CHECK rcode opensearch_concrete(struct opensearch *os, struct os_concrete **out, size_t *n,
                                        const char *index, struct rerror *err);
void opensearch_concrete_free(struct os_concrete *v, size_t n);
/* Creates the index with id_field mapped as keyword (the key order of the
 * pass); an index created meanwhile by someone else is fine too. */
RC_MUST_CHECK rcode opensearch_create_index(struct opensearch *os, const char *id_field,
                                            struct rerror *err);
/* Maps id_field as keyword in an index that has no mapping for it yet (an
 * index created with settings only, or by the first document). */
RC_MUST_CHECK rcode opensearch_map_id_field(struct opensearch *os, const char *id_field,
                                            struct rerror *err);
/* *name: the index.default_pipeline or index.final_pipeline (other than
 * _none) of some index OPENSEARCH_INDEX names (caller frees), else NULL.
 * They run on an update only with doc_as_upsert, which OpenSearch refuses
 * on a conditional update. */
RC_MUST_CHECK rcode opensearch_index_pipeline(struct opensearch *os, char **name,
                                              struct rerror *err);
RC_MUST_CHECK rcode opensearch_refresh(struct opensearch *os, struct rerror *err);

/* Where ids and versions come from. sort_field is the keyword id field, or
 * "_id". version_field may be NULL; version_format "epoch_millis" for date
 * fields, NULL otherwise. */
struct os_keys {
	const char *sort_field;
	const char *version_field;
	const char *version_format;
	int n_indices;       /* backing indices of the alias (1 for an index) */
	bool version_source; /* read the version from _source: it has no usable doc values */
};

/* The next page (about size ids) of the index in key order strictly after
 * `after` (NULL: from the start), appended to out, each copy with its
 * _index, _routing and (where it is not its key) _id. Copies of one id
 * never straddle two pages: a page ends before a run of equal keys that it
 * cannot hold whole. *more is false at the end. Copies whose id holds a NUL
 * are left out (with a warning). */
RC_MUST_CHECK rcode opensearch_scan(struct opensearch *os, struct idlist *out, bool *more,
                                    const struct os_keys *k, const char *after, int size,
                                    struct rerror *err);
/* opensearch_scan bounded above: only copies whose key is at most hi (a
 * range the summaries found different; docs/ENGINE.md). keys_only: no
 * stored fields are read (the cost of a page in a randomly written index):
 * each copy comes with its key, version, _index and _seq_no only, taken
 * to be under its key (no _id), its routing unknown (idrec.where_unknown).
 * A search by _id (k->sort_field "_id") or a version read from _source
 * reads the stored fields all the same. */
RC_MUST_CHECK rcode opensearch_scan_range(struct opensearch *os, struct idlist *out, bool *more,
                                          const struct os_keys *k, const char *after,
                                          const char *hi, bool keys_only, int size,
                                          struct rerror *err);
/* A partition's key range [lo, hi) on the keyword id field (NULL: open on
 * that side), joined to OPENSEARCH_QUERY: from then on every search, count
 * and summary of this connection sees only the copies in it. RC_ERR_NOMEM. */
RC_MUST_CHECK rcode opensearch_set_range(struct opensearch *os, const char *field, const char *lo,
                                         const char *hi);
/* Adds OPENSEARCH_QUERY's clause (a copy; nothing without one) to filter,
 * the array of a bool query (opensearch_summary.c's searches). */
struct cJSON;
RC_MUST_CHECK rcode opensearch_add_query(const struct opensearch *os, struct cJSON *filter);
/* Every copy of the n ids (canonical texts) the index has, with their
 * versions, appended to out in key order. */
RC_MUST_CHECK rcode opensearch_lookup(struct opensearch *os, struct idlist *out,
                                      const struct os_keys *k, const char *const *ids, size_t n,
                                      struct rerror *err);

/* Where a write is to land, to make it conditional on the copy there now
 * (the full re-index and a resumed run's batches, whose reads are not the
 * pass's: docs/ENGINE.md, "Concurrent writers"). In: key (the id text the
 * stream keys it by), id (the _id written), index (the copy's concrete
 * index; NULL: where OPENSEARCH_INDEX writes) and routing (NULL: by _id).
 * Out: found, own (the copy is keyed by key: the document's own, not a
 * foreign writer's under its _id), the copy's _seq_no and _primary_term,
 * and its normalized version ("" none). */
struct os_cond {
	const char *key, *id, *index, *routing;
	bool found, own;
	int64_t seq_no, primary_term;
	char version[64];
};
/* Looks up the copies of the n keys (one search: ids or terms on the key
 * field, _seq_no and _primary_term, the version from doc values, no
 * _source) and fills each c[i]'s outcome; by_docid: the copies under the
 * n _ids instead, whatever their key (an ids query). write_index: the
 * concrete index OPENSEARCH_INDEX writes to (NULL: any the copy is in). */
RC_MUST_CHECK rcode opensearch_conditions(struct opensearch *os, struct os_cond *c, size_t n,
                                          const struct os_keys *k, const char *write_index,
                                          bool by_docid, struct rerror *err);

/* opensearch_conditions read now: each c[i]'s copy (its id, index and
 * routing) by a real-time _mget, which sees a write at once where a
 * search sees it only after the index's next refresh (live sync writes a
 * document again a moment after it wrote it). Fills found, own (= found:
 * whatever is under that _id) and _seq_no and _primary_term; no version.
 * An index that does not exist holds none. */
RC_MUST_CHECK rcode opensearch_conditions_now(struct opensearch *os, struct os_cond *c, size_t n,
                                              struct rerror *err);

/* opensearch_lookup of the copies that also match keep_query (one query-DSL
 * clause, JSON: OPENSEARCH_KEEP_QUERY). RC_ERR_CONFIG when it is not a JSON
 * object. */
RC_MUST_CHECK rcode opensearch_lookup_kept(struct opensearch *os, struct idlist *out,
                                           const struct os_keys *k, const char *keep_query,
                                           const char *const *ids, size_t n, struct rerror *err);
/* The _source of one copy, byte for byte as the index holds it (numbers
 * untouched), into out; *found false when there is no such copy. index
 * NULL: OPENSEARCH_INDEX; routing NULL: none. */
rcode opensearch_get_source(struct opensearch *os, struct buf *out, bool *found, const char *index,
                            const char *id, const char *routing, struct rerror *err);
/* One copy to read: its concrete index (NULL: OPENSEARCH_INDEX), _id and
 * routing (NULL: none). */
struct os_get {
	const char *index, *id, *routing;
};
/* The copies' _source in one _mget, only the top-level fields named in
 * includes (n_inc of them; 0: the whole _source). resp gets the answer as
 * it came ({"docs": [...]} in the order asked, each with "found" and
 * "_source"): callers parse it with jtree, whose numbers stay exact. */
RC_MUST_CHECK rcode opensearch_mget(struct opensearch *os, struct buf *resp,
                                    const struct os_get *docs, size_t n,
                                    const char *const *includes, size_t n_inc, struct rerror *err);
/* As opensearch_mget, each copy's whole _source less the top-level fields
 * named in excludes (n_exc of them; 0: the whole _source): the content
 * compare reads every top-level name but the index's own fields (an
 * embedding's floats). A name is an exact field name here, never a
 * pattern: the caller leaves out names with '*'. */
RC_MUST_CHECK rcode opensearch_mget_excluding(struct opensearch *os, struct buf *resp,
                                              const struct os_get *docs, size_t n,
                                              const char *const *excludes, size_t n_exc,
                                              struct rerror *err);
/* Every copy of one id whatever its routing or backing index (an ids
 * query on _id, or a term on id_field when it is not empty), at most 100,
 * with _source, _index and _routing: the raw search answer in resp.
 * RC_ERR_NOTFOUND when the index does not exist. */
RC_MUST_CHECK rcode opensearch_copies(struct opensearch *os, struct buf *resp, const char *id_field,
                                      const char *id, struct rerror *err);

/* Per-item outcome of a _bulk. */
struct bulk_item {
	int status; /* HTTP status of the item: 200/201 ok, 404 for a delete of nothing */
	bool version_conflict; /* 409 version_conflict_engine_exception */
	bool blocked;          /* 403 cluster_block_exception: the index refuses writes */
	char *reason;          /* OpenSearch's reason when the item failed (owned) */
};
struct bulk_result {
	long http_status;
	struct bulk_item *items;
	size_t n;
};
void bulk_result_free(struct bulk_result *r);

/* Sends one ready _bulk body (NDJSON) with n_items actions, retried whole
 * while the index is busy (429/502/503/504) or unreachable, with backoff
 * (SYNC_MAX_RETRIES); *attempts says how many sends it took.
 * RC_ERR_TOOLARGE on 413 and RC_ERR_INVALID on 400 (refused as a whole for
 * what it holds), with the reason in err. stop (may be NULL) cuts backoff
 * sleeps short. For tools; the reconciler sends with opensearch_bulk_send. */
RC_MUST_CHECK rcode opensearch_bulk(struct opensearch *os, struct bulk_result *res, int *attempts,
                                    const char *body, size_t len, size_t n_items,
                                    volatile int *stop, struct rerror *err);

/* A _bulk action. BULK_UPDATE is the live syncers' partial write: the
 * source goes as {"doc": source, "doc_as_upsert": true} with
 * retry_on_conflict 3, so fields only the index has survive. BULK_CREATE
 * writes a document judged missing: one that appeared meanwhile is not
 * replaced. */
enum bulk_action { BULK_INDEX, BULK_CREATE, BULK_UPDATE, BULK_DELETE };
/* The action as the _bulk API spells it ("index", "create", "update",
 * "delete"). */
const char *bulk_action_name(enum bulk_action a);

/* One document of a _bulk, and its outcome. Inputs are borrowed.
 * A conditional write (if_primary_term > 0) carries if_seq_no and
 * if_primary_term of the copy it judged; a conditional update is
 * {"doc": source} alone (OpenSearch 2.19 refuses them with doc_as_upsert or
 * retry_on_conflict: "compare and write operations can not be used with
 * upsert", "... can not be retried"), and no external version goes with
 * them ("... can not use versioning"). A conditional write or create
 * refused as a conflict (409; 404 for an update of a copy deleted since) is
 * `newer`: left to the newer write, not failed. */
struct bulk_doc {
	enum bulk_action action;
	const char *id;      /* the _id (at most OPENSEARCH_ID_MAX_BYTES) */
	const char *index;   /* the concrete index of the copy; NULL: OPENSEARCH_INDEX */
	const char *routing; /* the copy's routing; NULL: none */
	const char *source;  /* index, update: the document's JSON; NULL for delete */
	size_t source_len;
	int64_t version;      /* index: >= 0 sent as an external_gte version; -1 none */
	const char *pipeline; /* index: the ingest pipeline; NULL: none (updates run none) */
	int64_t if_seq_no, if_primary_term; /* the judged copy's; term 0: unconditional */
	bool decided; /* in: the outcome (status, newer, reason) is known: not sent */
	int status;   /* out: the item's HTTP status (413/400 when refused alone) */
	bool newer;   /* out: refused as a conflict: the index holds a newer version (an
	                 external one, or a copy written since it was judged) */
	bool blocked; /* out: refused by a block on the whole index (403
	                 cluster_block_exception: index.blocks.write, the disk's flood
	                 stage), not for anything in this document */
	char *reason; /* out: why it failed (owned; bulk_docs_reset frees) */
};

/* The whole _bulk protocol for a batch: builds the requests (each action
 * names the copy's index and routing), retries whole requests that meet a
 * busy or unreachable index and documents rejected with 429 or by a
 * concurrent dynamic-mapping update, with one
 * backoff policy (SYNC_MAX_RETRIES), and splits a request refused as a
 * whole for what it holds (413, 400) until the document at fault stands
 * alone and fails alone, with OpenSearch's reason. On RC_OK every document
 * has its status (2xx ok; 404 on a delete: nothing there); an error means
 * the outcome is not known (the index unreachable or busy past the
 * retries, or stop): the caller keeps the batch pending. Documents marked
 * decided are not sent and keep their outcome. */
RC_MUST_CHECK rcode opensearch_bulk_send(struct opensearch *os, struct bulk_doc *docs, size_t n,
                                         int *attempts, volatile int *stop, struct rerror *err);
/* Frees the outcomes of docs (reason) and clears their status. */
void bulk_docs_reset(struct bulk_doc *docs, size_t n);

/* The index path prefix ("/<escaped index>") for building bulk bodies. */
const char *opensearch_index(const struct opensearch *os);

#endif
