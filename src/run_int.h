/*
 * run_int.h: what the files of a run (run.c, run_*.c) share, private to
 * them: the engine, the state of one run in progress, and each file's
 * entry points, named by their file (run_read.c's read_*, run_sink.c's
 * sink_*, ...; run.c's run_*).
 */
#ifndef RECONCILER_RUN_INT_H
#define RECONCILER_RUN_INT_H

#include "diff.h"
#include "doc.h"
#include "mongo.h"
#include "opensearch.h"
#include "opensearch_summary.h"
#include "partition.h"
#include "pass.h"
#include "repair.h"
#include "run.h"
#include "store.h"
#include "transform.h"
#include "util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Most partitions one process runs (RECONCILE_PARTITIONS' bound). */
#define RUN_SPLIT_MAX 64

struct split;

struct engine {
	const struct config *cfg;
	volatile int stop;    /* 1: interrupt, 2: cancel */
	pthread_mutex_t lock; /* guards progress */
	struct engine_progress progress;
	bool progress_output;
	int64_t last_print_ms;
	void (*start_hook)(void *ctx, int64_t run_id);
	void *start_ctx;
	/* RECONCILE_PARTITIONS (run_split.c): this engine runs one partition
	 * of a split run (the coordinator holds the journal lock); NULL
	 * otherwise */
	struct split *split;
	/* the engines of this engine's partitions, kept until engine_free so
	 * that engine_stop (a signal handler) never writes freed memory */
	struct engine *sub[RUN_SPLIT_MAX];
	volatile int n_sub;
	volatile bool splitting; /* a split run is running: progress sums sub */
};

/* RECONCILE_COMPARE=content: the MongoDB documents of the chunk the pass
 * is on (read whole by the id stream itself: no second query), and what
 * comparing by content cost. */
struct stashed {
	char *id;
	int type;
	bson_t *doc;
};
struct content {
	bool on;
	struct stashed *v;
	size_t n, cap;
	int64_t pairs, differ, unconverted, unconverted_in_row, mget_requests, mget_bytes,
	    mongo_bytes, ms;
	int64_t left_out; /* copies of documents the transform leaves out */
	/* copies holding leftovers (fields the body does not write, the index
	 * does not own: owned.h); those kept as they are (a check without
	 * OPENSEARCH_INDEX_OWNED_FIELDS: reported, not written); and the
	 * leftovers' distinct names, comma-separated, for the warning */
	int64_t leftover, kept;
	char leftover_names[200];
	bool leftover_cut; /* some names did not fit */
	/* on for this run only: the transform changed since a run last compared
	 * every copy with it (RECONCILE_COMPARE=version, run.c) */
	bool for_transform;
};
/* content_differs' fields of a copy whose document the transform leaves
 * out: not stale, an orphan (run_sink.c) */
#define CONTENT_LEFT_OUT "(left out by the transform)"

/* The index stream read one page ahead (read_index_page): while the pass
 * merges a page with MongoDB's ids, the next page is asked for on a
 * connection of its own, so the two streams overlap instead of taking
 * turns (the pass waited for each page, then for MongoDB's ids). */
struct prefetch {
	struct opensearch *os; /* its own connection: a curl handle is one thread's */
	pthread_t thread;
	bool running;       /* a thread was started and not yet joined */
	char *after;        /* the page asked for: strictly after this key */
	struct idlist page; /* its answer */
	bool more;
	rcode rc;
	struct rerror err;
	/* the request's inputs, fixed while it runs */
	const struct os_keys *keys;
	int size;
};

/* State of one run in progress. */
struct run {
	struct engine *e;
	const struct config *cfg;
	struct store *store;
	struct lease *lease; /* lease.c: the mirror's lease across processes */
	struct mongo *mongo;
	struct opensearch *os;
	struct rerror *err;
	int64_t id;
	enum run_kind kind;
	bool dry_run, full;
	/* a check that found the index empty takes the full re-index's path
	 * (full is then set too); journaled, so a resume takes it again */
	bool full_write;
	bool resumed; /* an unfinished run taken up (run_begin.c) */
	struct os_keys keys;
	char *id_field;     /* effective id field for documents ("" or cfg's) */
	char *write_index;  /* the alias's write index (NULL: OPENSEARCH_INDEX) */
	bool index_missing; /* the index does not exist: the index side is empty */
	/* where the pass resumes */
	char *cursor;
	enum id_type cursor_type;
	int64_t seen, compared;
	bool pass_done;
	struct util_throttle progress_due; /* run_progress_sync */
	struct mongo_scan *scan;
	struct repair rp;
	struct transform *tf; /* body and routing of writes */
	/* the cursor that waits for queued drift to be committed */
	struct idlist queued_cursor; /* 0 or 1 entry: the last chunk's last id */
	int64_t queued_compared, queued_seen;
	struct pass_stats queued_stats; /* what the pass had counted at that cursor */
	int64_t os_count, mongo_count;
	const struct engine_opts *opts; /* never NULL */
	struct pass_stats stats;        /* what the pass read (the brake) */
	int64_t lacking;                /* index documents without the id field */
	enum delete_brake brake;
	bool held;
	int64_t n_held;
	char why[1400];
	/* setup_check_peers: a peer mirror whose cluster could not be asked which
	 * index it writes ("" = none); its orphan deletes are held */
	char peer_unknown[400];
	/* setup_check_peers: peers whose query differs but may share the index:
	 * their overlap with this mirror's query is counted before deletes
	 * (peers_overlap); one flag per mirror of the set, or NULL */
	bool *peers_count;
	bool not_resumed;       /* opts->resume_only: the run found was cancelled */
	struct content content; /* RECONCILE_COMPARE=content */
	int64_t left_out;       /* missing documents the script leaves out */
	char digest[17];        /* run_transform_digest: what the transform writes */
	struct prefetch pre;    /* the index stream's next page */
	/* RECONCILE_VERIFY (setup_verify): the pass verifies by range
	 * summaries; the version field's type in the index ("" unknown) */
	bool verify_summary;
	bool summary_failed_said; /* a range's search failed: logged once a run */
	char version_type[32];
	/* `check --partition K/N` (run_partition.c): part.n 0 for a whole run */
	struct partition part;
};

/* A targeted run of a few ids asks one {_id: v} query per value; more
 * values, and a pass's chunks, go in one $in. On MongoDB both are _id index
 * lookups and the choice costs nothing. On FerretDB 1.x (SQLite) a $in is
 * a scan in FerretDB (~15 s per 100k documents here) and even {_id: v} is
 * a scan in SQLite (~1.3 s: its index is on ->"_id", its query on
 * ->'$._id'), so point queries win up to about a dozen values, and a
 * bounded number of them keeps a 100-id request from taking minutes. */
#define POINT_QUERIES_MAX 16

/* run.c */
/* The journaled run sr's counts and status into res (the rest as it was). */
void result_from_run(struct engine_result *res, const struct store_run *sr);
/* engine_run_opts without the split: one run (a whole one, or the one
 * partition opts names). */
RC_MUST_CHECK rcode engine_run_one(struct engine *e, struct engine_result *res, enum run_kind kind,
                                   const char *trigger, int64_t resume_id,
                                   const struct engine_opts *opts, struct rerror *err);
RC_MUST_CHECK rcode run_set_phase(struct run *r, enum run_phase phase);
void run_progress_sync(struct run *r, bool final);

/* run_begin.c */
RC_MUST_CHECK rcode begin_run(struct run *r, enum run_kind kind, const char *trigger,
                              int64_t resume_id);

/* run_setup.c */
RC_MUST_CHECK rcode setup_check_peers(struct run *r);
RC_MUST_CHECK rcode setup_count(struct run *r);
RC_MUST_CHECK rcode setup_keys(struct run *r);
/* RECONCILE_VERIFY: whether the pass verifies by range summaries (the
 * mirror qualifies and the cluster runs the script), journaled with why
 * not; RC_ERR_CONFIG when summary is required and cannot be had. */
RC_MUST_CHECK rcode setup_verify(struct run *r);
void setup_refresh(struct run *r);

/* run_read.c: pass_io's reads (ctx: the run) */
RC_MUST_CHECK rcode read_mongo_next(void *ctx, struct idlist *out, int *cls, bool *end,
                                    bool *unsafe, struct rerror *err);
RC_MUST_CHECK rcode read_index_page(void *ctx, struct idlist *out, bool *more, const char *after,
                                    int size, struct rerror *err);
/* pass_io.index_range and index_summaries (RECONCILE_VERIFY) */
RC_MUST_CHECK rcode read_index_range(void *ctx, struct idlist *out, bool *more, const char *after,
                                     const char *hi, bool keys_only, int size, struct rerror *err);
RC_MUST_CHECK rcode read_index_summaries(void *ctx, struct summary_range *r, size_t n,
                                         struct rerror *err);
/* What the summaries' script reads for this run. */
void read_summary_keys(const struct run *r, struct os_summary_keys *k);
/* pass_io.on_verify_merge: said once, journaled in verify_note */
RC_MUST_CHECK rcode read_verify_merge(void *ctx, const char *why, struct rerror *err);
RC_MUST_CHECK rcode read_index_lookup(void *ctx, struct idlist *out, const char *const *ids,
                                      size_t n, struct rerror *err);
/* pass_io.kept_orphans: the orphans' copies that match OPENSEARCH_KEEP_QUERY. */
RC_MUST_CHECK rcode read_kept_orphans(void *ctx, const struct idlist *osl, const size_t *idx,
                                      size_t n, bool *kept, struct rerror *err);
RC_MUST_CHECK rcode read_mongo_exists(void *ctx, const char *const *texts, size_t n, bool *exists,
                                      bool *outside, struct rerror *err);
RC_MUST_CHECK rcode read_mongo_other(void *ctx, const char *const *texts, const enum id_type *types,
                                     size_t n, char **other, struct rerror *err);
RC_MUST_CHECK rcode read_mongo_has_type(void *ctx, enum id_type type, bool *has,
                                        struct rerror *err);
RC_MUST_CHECK rcode read_mongo_lookup(void *ctx, const char *const *texts, size_t n,
                                      struct idlist *out, bool *answered, struct rerror *err);
bool read_point_queries(const struct run *r, const bson_t *values);
void read_prefetch_free(struct prefetch *p);

/* run_content.c */
RC_MUST_CHECK rcode content_stash_push(struct content *c, const char *id, int type,
                                       const bson_t *doc);
void content_stash_drop_through(struct content *c, const char *id, int type);
void content_stash_free(struct content *c);
RC_MUST_CHECK rcode content_differs(void *ctx, const struct idlist *m, const struct idlist *osl,
                                    const size_t *mi, const size_t *oi, size_t n, char **fields,
                                    struct rerror *err);
void content_report(struct run *r);

/* run_sink.c: pass_io's results (ctx: the run) */
RC_MUST_CHECK rcode sink_on_unsafe(void *ctx, const char *text, enum id_type type,
                                   struct rerror *err);
RC_MUST_CHECK rcode sink_on_drift(void *ctx, const struct pass_drift *pd, struct rerror *err);
/* pass_io.rule_routing: the documents read from MongoDB, their routing as
 * a repair writes them (the transform, OPENSEARCH_ROUTING_FIELD). */
RC_MUST_CHECK rcode sink_rule_routing(void *ctx, const struct idlist *m, const size_t *mi, size_t n,
                                      char **routing, struct rerror *err);
RC_MUST_CHECK rcode sink_on_chunk(void *ctx, const char *id, enum id_type type, int64_t compared,
                                  int64_t seen, struct rerror *err);
/* Repairs the queued drift, then commits the cursor that waited for it. */
RC_MUST_CHECK rcode sink_flush(struct run *r);

/* run_brake.c */
/* Appends one reason to why ("; " between them), cut at len. */
void why_add(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The limits' reasons (appended to why) to hold n orphan deletes of an
 * index of size documents, kept of them not counted (said): over
 * RECONCILE_MAX_DELETE_RATIO of size, over RECONCILE_MAX_DELETES, or,
 * share_of > 0 (`check --partition K/N`), over its N-th share. */
void brake_limits(const struct config *cfg, int64_t n, int64_t size, int64_t kept, int share_of,
                  char *why, size_t len);
/* The index count the ratio is taken of: without the kept copies. */
int64_t brake_size(const struct run *r);

/* run_split.c */
/* RECONCILE_PARTITIONS: whether this run is split into partitions of this
 * process (a check or dry run of the whole key space, P > 1, and not a
 * resume of one given run). */
bool split_wanted(const struct engine *e, enum run_kind kind, const struct engine_opts *opts);
/* The split run: P partition runs at once, their results combined into
 * res (run_id: partition 0's, the split's id). */
RC_MUST_CHECK rcode split_run(struct engine *e, struct engine_result *res, enum run_kind kind,
                              const char *trigger, int64_t resume_id,
                              const struct engine_opts *opts, struct rerror *err);
/* Cancels the unfinished runs of split run split_of (its n partitions),
 * each with why. */
RC_MUST_CHECK rcode split_cancel(struct store *s, int64_t split_of, int n, const char *why);
/* At the brake's decision: partition r arrives with n held deletes (0
 * when it does not judge them), limits (its brake is on) and its own
 * brake_checks' reasons, waits for every partition of the split (or its
 * end), and gets the one verdict on the whole run's totals into why (""
 * = send). RC_ERR_CANCELLED when the run is stopped while it waits. */
RC_MUST_CHECK rcode split_brake(struct run *r, int64_t n, bool limits, const char *own, char *why,
                                size_t len);

/* run_partition.c */
/* The n - 1 split points (r->part.n = n) of the collection as it is now,
 * into splits[0..n-2] (each the caller's to free, even on error), and
 * their id type; RC_ERR_CONFIG for a collection of several id classes.
 * Reads r->mongo, r->cfg, r->err. */
RC_MUST_CHECK rcode partition_plan(struct run *r, char **splits, enum id_type *type);
/* The partition's plan (computed and journaled, or the journal's) and
 * both sides narrowed to its key range; nothing without a partition. */
RC_MUST_CHECK rcode partition_setup(struct run *r);
/* After setup_keys: RC_ERR_CONFIG when the index is read by _id. */
RC_MUST_CHECK rcode partition_check_keys(struct run *r);
/* Which partition's lease the run takes ("K/N", "" for the whole
 * mirror's): the one asked for, else the one the run to be resumed is. */
RC_MUST_CHECK rcode partition_of_lease(struct run *r, enum run_kind kind, int64_t resume_id,
                                       char *part, size_t len);
/* A resumed run's partition and plan, as journaled. */
RC_MUST_CHECK rcode partition_from_journal(struct run *r, const struct store_run *sr);

/* run_brake.c */
/* The end of a pass: sends the held orphan deletes, or keeps them all. */
RC_MUST_CHECK rcode brake_decide(struct run *r);

#endif
