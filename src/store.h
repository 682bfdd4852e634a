/*
 * store.h: the SQLite run journal.
 *
 * Everything the reconciler does is written here, so a person can audit it
 * with the sqlite3 shell and a killed run can resume. See docs/JOURNAL.md.
 */
#ifndef RECONCILER_STORE_H
#define RECONCILER_STORE_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct store;

struct store_migration {
	const char *name;
	const char *sql;
};
extern const struct store_migration store_migrations[]; /* generated, {0,0}-terminated */

/* Opens (creating the directory and file if needed), sets WAL and a busy
 * timeout, and applies pending migrations. Refuses a journal written by a
 * newer reconciler (a migration this binary does not know) and one it
 * cannot write (read-only, disk full, locked), with what to do about it. */
RC_MUST_CHECK rcode store_open(struct store **out, const char *path, struct rerror *err);
/* Opens for reading only (`runs`, `show`): never creates the file
 * (RC_ERR_NOTFOUND when there is none) and reads a newer reconciler's
 * journal. An older journal is brought up to date as store_open does. */
RC_MUST_CHECK rcode store_open_read(struct store **out, const char *path, struct rerror *err);
/* The same, never writing: an older journal is read as it is, with
 * *pending its migrations this binary would apply (report --merge reads
 * other pods' journals, which it must not change). */
RC_MUST_CHECK rcode store_open_read_as_is(struct store **out, int *pending, const char *path,
                                          struct rerror *err);
/* A small committed write that changes nothing: can the journal be written
 * now? (disk full, read-only, another process's lock, waited for at most
 * wait_ms) */
RC_MUST_CHECK rcode store_probe_write(struct store *s, int wait_ms, struct rerror *err);
/* For tests: keep at most `slots` (1..48) prepared statements, so the
 * statement cache's eviction runs; clears the cache. */
void store_test_stmt_cache(struct store *s, int slots);
void store_free(struct store *s);
/* Number of migrations applied by this call through *applied (may be NULL). */
RC_MUST_CHECK rcode store_migrate(struct store *s, int *applied, struct rerror *err);

/* Cross-process run lock of one mirror (flock on PATH.lock for "default"
 * and NULL, PATH.<mirror>.lock for the others; released if the holder
 * dies), so one mirror runs one run at a time and different mirrors may
 * overlap. One lock per handle. RC_ERR_BUSY if another handle or process
 * holds it; *holder_run is then the mirror's running run from the journal
 * (0 if unknown). */
RC_MUST_CHECK rcode store_lock(struct store *s, int64_t *holder_run, const char *mirror,
                               struct rerror *err);
/* Whether a mirror's run lock is free, without keeping it: RC_OK when it
 * is, RC_ERR_BUSY (and *holder_run as store_lock says) when another handle
 * or process holds it. The handle must hold no lock. A run of this process
 * that tries for the lock meanwhile waits for the probe, never fails on it. */
RC_MUST_CHECK rcode store_lock_probe(struct store *s, int64_t *holder_run, const char *mirror,
                                     struct rerror *err);
void store_unlock(struct store *s);

RC_MUST_CHECK rcode store_tx_begin(struct store *s);
RC_MUST_CHECK rcode store_tx_commit(struct store *s);
void store_tx_rollback(struct store *s);

/* A run's kind and status, as runs.kind and runs.status spell them (one
 * name table each, store.c; the journal's CHECK constraints list the same
 * words). Running and interrupted runs are unfinished: they may resume. */
enum run_kind {
	RUN_CHECK,   /* detect and repair */
	RUN_DRY_RUN, /* detect and journal only */
	RUN_FULL,    /* re-index every document */
	RUN_IDS,     /* detect and repair given ids, or those changed since a time; never resumed */
	RUN_SAMPLE,  /* random ids looked up on both sides: an estimate; a dry run, never resumed */
	RUN_CATCHUP, /* live sync's check of the mirror closing its gaps (stream.c); never resumed
	              */
};
enum run_status {
	RUN_RUNNING,
	RUN_COMPLETED,
	RUN_FAILED,
	RUN_INTERRUPTED,
	RUN_CANCELLED,
	RUN_HELD, /* finished; the brake held its orphan deletes (none sent) */
};
#define RUN_KIND_COUNT   ((int)RUN_CATCHUP + 1)
#define RUN_STATUS_COUNT ((int)RUN_HELD + 1)

/* The brake on a run's orphan deletes, as runs.delete_brake spells it: on
 * (deletes wait, journaled, for the end of the pass), released (allowDeletes
 * for this run), passed (under the limits: being sent, also after a resume),
 * held (none sent). */
enum delete_brake { BRAKE_ON, BRAKE_RELEASED, BRAKE_PASSED, BRAKE_HELD };
const char *store_brake_name(enum delete_brake b);
const char *store_run_kind_name(enum run_kind k);
int store_run_kind_parse(const char *name, enum run_kind *out); /* 0 or -1 */
/* A check of the whole mirror that detects and repairs: a check, or a
 * catch-up (which is one under its own name). */
bool store_run_kind_checks(enum run_kind k);
const char *store_run_status_name(enum run_status st);
int store_run_status_parse(const char *name, enum run_status *out); /* 0 or -1 */
bool store_run_status_unfinished(enum run_status st);

/* A run as stored. Strings are owned by the struct; free with store_run_free. */
struct store_run {
	int64_t id;
	char *mirror; /* 'default' for runs from before mirrors */
	enum run_kind kind;
	enum run_status status;
	char *trigger, *phase, *started_at, *finished_at, *heartbeat_at;
	int64_t mongo_count, opensearch_count; /* -1: not counted */
	int64_t compared, missing, orphans, stale, skipped, repaired, deleted, failed;
	int64_t duplicates, conflicts;
	int64_t skipped_newer;      /* writes refused: the index holds a newer version */
	char *cursor_type, *cursor; /* NULL before the first commit */
	int64_t seen_types;
	int64_t resume_count;
	char *config, *error;
	int64_t index_read; /* index copies the judging sweep read up to the cursor */
	enum delete_brake brake;
	/* the run writes every document by id range (a full re-index):
	 * reindexed counts what it wrote, apart from repaired (drift) */
	bool full_write;
	int64_t reindexed;
	int64_t orphans_kept; /* orphans found and kept (RECONCILE_ORPHANS=report) */
	int64_t kept;         /* orphans OPENSEARCH_KEEP_QUERY kept, up to the cursor */
	/* RECONCILE_VERIFY: 'summary' or 'merge' (NULL: no pass, or before
	 * 0012), why it merged (NULL: no note), and the key ranges proven by
	 * their summaries and streamed, up to the cursor */
	char *verify, *verify_note;
	int64_t ranges_summarized, ranges_descended;
	/* one partition of a split run (migration 0015): K of N (n 0: a whole
	 * run), the bounds' id type (NULL: not planned yet) and [lo, hi) (NULL:
	 * open) */
	int partition_k, partition_n;
	char *partition_type, *partition_lo, *partition_hi;
	/* one of the P partitions of a split run of one process
	 * (RECONCILE_PARTITIONS, migration 0019): its partition 0's run id
	 * (0: not a split run) */
	int64_t split_of;
};
void store_run_free(struct store_run *r);

RC_MUST_CHECK rcode store_run_begin(struct store *s, int64_t *run_id, const char *mirror,
                                    enum run_kind kind, const char *trigger,
                                    const char *config_json);
RC_MUST_CHECK rcode store_run_get(struct store *s, struct store_run **out, int64_t run_id);
/* Newest run of mirror (NULL: of any) left running or interrupted, of a
 * kind that resumes (not ids, sample or catchup); *run_id = 0 when none. */
RC_MUST_CHECK rcode store_run_unfinished(struct store *s, int64_t *run_id, const char *mirror);
/* The same among runs of one kind: a dry run never continues a check (it
 * would write), nor a check a dry run (it would repair nothing). */
RC_MUST_CHECK rcode store_run_unfinished_of_kind(struct store *s, enum run_kind kind,
                                                 int64_t *run_id, const char *mirror);
/* Every unfinished run (running or interrupted) of any mirror, oldest
 * first, at most max of them: what a configuration that no longer defines
 * a mirror leaves behind. */
struct store_unfinished {
	int64_t id;
	char mirror[64], status[16], kind[16];
};
RC_MUST_CHECK rcode store_runs_unfinished(struct store *s, struct store_unfinished **out, size_t *n,
                                          size_t max);
RC_MUST_CHECK rcode store_run_resumed(struct store *s, int64_t run_id);
RC_MUST_CHECK rcode store_run_phase(struct store *s, int64_t run_id, const char *phase);
RC_MUST_CHECK rcode store_run_counts(struct store *s, int64_t run_id, int64_t mongo_count,
                                     int64_t opensearch_count);
/* What the pass counted up to a cursor, committed with it. */
struct store_tally {
	int64_t index_read;        /* index copies the judging sweep read */
	int64_t kept;              /* orphans OPENSEARCH_KEEP_QUERY kept */
	int64_t ranges_summarized; /* key ranges proven in sync by their summaries */
	int64_t ranges_descended;  /* key ranges streamed: their summaries differed */
};
/* Advances the cursor (t NULL: every count 0): only call inside the
 * transaction that commits the work before it. */
RC_MUST_CHECK rcode store_run_cursor(struct store *s, int64_t run_id, const char *cursor_type,
                                     const char *cursor, int64_t seen_types, int64_t compared,
                                     const struct store_tally *t);
/* The key ranges counted at the end of the pass (past the last cursor:
 * the range after the last id). */
RC_MUST_CHECK rcode store_run_ranges(struct store *s, int64_t run_id, int64_t summarized,
                                     int64_t descended);
/* How the run verifies its key ranges ('summary', 'merge') and why it
 * merged (NULL: nothing to say). */
RC_MUST_CHECK rcode store_run_verify(struct store *s, int64_t run_id, const char *verify,
                                     const char *note);
/* The run is partition k of n of a split run (written when it begins);
 * with type (not NULL) its plan too: [lo, hi), NULL for an open end. */
RC_MUST_CHECK rcode store_run_partition(struct store *s, int64_t run_id, int k, int n,
                                        const char *type, const char *lo, const char *hi);
/* The run is one partition of the split run split_of (> 0: the id of
 * its partition 0's run, which is its own for partition 0). */
RC_MUST_CHECK rcode store_run_split(struct store *s, int64_t run_id, int64_t split_of);
/* The newest split run (its split_of) of mirror in n partitions of the
 * given kind with an unfinished partition; *split_of = 0 when none. */
RC_MUST_CHECK rcode store_split_unfinished(struct store *s, int64_t *split_of, const char *mirror,
                                           enum run_kind kind, int n);
/* The newest run of partition k of the split run split_of; 0 when none. */
RC_MUST_CHECK rcode store_split_partition(struct store *s, int64_t *run_id, int64_t split_of,
                                          int k);
/* The orphans OPENSEARCH_KEEP_QUERY kept, at the end of the pass. */
RC_MUST_CHECK rcode store_run_kept(struct store *s, int64_t run_id, int64_t kept);
/* A sample run's estimate (run_samples, migration 0013): each side's
 * sample and the 95% Wilson score interval of its rate. index_n and
 * orphans < 0 and the orphan rates NaN: orphans not estimated; population
 * < 0: not counted. */
struct store_sample {
	int64_t asked;
	uint64_t seed;
	const char *method; /* "$sample" or "id stream" */
	int64_t population;
	int64_t mongo_n, missing, stale;
	double rate, rate_low, rate_high;
	int64_t index_n, orphans;
	double orphan_rate, orphan_low, orphan_high;
	double seconds;
	const char *note; /* NULL: none */
};
RC_MUST_CHECK rcode store_sample_record(struct store *s, int64_t run_id,
                                        const struct store_sample *e);
RC_MUST_CHECK rcode store_run_brake(struct store *s, int64_t run_id, enum delete_brake b);
/* The transform digest a run compared every copy against and left no copy
 * behind (runs.transform_digest); and the newest such of a mirror (*out
 * NULL when none; the caller frees it). */
RC_MUST_CHECK rcode store_run_transform_digest(struct store *s, int64_t run_id, const char *digest);
RC_MUST_CHECK rcode store_transform_digest_last(struct store *s, char **out, const char *mirror);
/* Ids of the run's MongoDB stream it could not carry (NUL in the _id). */
RC_MUST_CHECK rcode store_run_unsafe_ids(struct store *s, int64_t run_id, int64_t *n);
/* Recomputes the run's counters from run_ids and batches: O(the run's
 * rows). */
RC_MUST_CHECK rcode store_run_recount(struct store *s, int64_t run_id);
/* store_run_recount when due: while a run goes, at most once a second and
 * at most 5% of the time (store.c's design comment); the counters are
 * exact when store_run_finish has ended the run. */
RC_MUST_CHECK rcode store_run_recount_due(struct store *s, int64_t run_id);
RC_MUST_CHECK rcode store_run_finish(struct store *s, int64_t run_id, enum run_status status,
                                     const char *error);
/* Cancels a run no process runs (one left interrupted, or running after a
 * kill): takes its mirror's lock for the write, so a process running it
 * keeps it. RC_ERR_BUSY (err saying why) when the lock cannot be taken. */
RC_MUST_CHECK rcode store_run_cancel(struct store *s, int64_t run_id, const char *mirror,
                                     const char *why, struct rerror *err);

RC_MUST_CHECK rcode store_event(struct store *s, int64_t run_id, const char *event,
                                const char *detail);
RC_MUST_CHECK rcode store_error(struct store *s, int64_t run_id, int64_t batch_no,
                                const char *doc_id, const char *phase, const char *source,
                                const char *code, const char *message);

/* Kinds of drift, as run_ids.kind spells them (one name table, store.c). */
enum drift_kind {
	DRIFT_MISSING,   /* in MongoDB, not in the index */
	DRIFT_STALE,     /* in both, the index copy older */
	DRIFT_ORPHAN,    /* in the index, in MongoDB under no type its id could stand for */
	DRIFT_DUPLICATE, /* an extra copy of an id in another backing index */
	DRIFT_CONFLICT,  /* two MongoDB documents whose ids share one index _id */
};
const char *store_drift_kind_name(enum drift_kind k);
int store_drift_kind_parse(const char *name, enum drift_kind *out); /* 0 or -1 */

/* A drift row's state, as run_ids.status spells it (one name table). */
enum drift_state {
	DRIFT_PENDING,  /* queued for repair, maybe in a batch */
	DRIFT_DONE,     /* repaired */
	DRIFT_FAILED,   /* could not be repaired (error says why) */
	DRIFT_REPORTED, /* found, not repaired (dry run, RECONCILE_ORPHANS=report, conflicts) */
	DRIFT_SKIPPED,  /* left alone on purpose (too young, gone meanwhile) */
};
const char *store_drift_state_name(enum drift_state st);

/* The reasons of orphans whose MongoDB document exists (docs/ENGINE.md#filters). */
#define DRIFT_REASON_LEFT_FILTER   "left the filter"
#define DRIFT_REASON_TRANSFORM_NIL "left out by the transform"
/* the same reason as journals from before issue 24 spell it */
#define DRIFT_REASON_TRANSFORM_NIL_OLD "left the filter (transform returned nil)"
/* a stale document with several copies, none where its routing rule places it */
#define DRIFT_REASON_MISPLACED "no copy where its routing rule places it"

/* One drift row's key and where its copy lives. Borrowed strings. */
struct store_drift {
	const char *doc_id;  /* canonical id text = the index _id */
	const char *id_type; /* doc_id_type_name() */
	enum drift_kind kind;
	const char *os_index; /* concrete index of the copy; NULL: OPENSEARCH_INDEX */
	const char *routing;  /* the copy's _routing; NULL: none */
	const char *os_id;    /* the copy's _id where it is not doc_id; NULL: doc_id */
	const char *reason;   /* why it is drift where the kind does not say ("left the
	                         filter"); NULL: none. Not part of the row's key */
	/* the judged copy's _seq_no and _primary_term (term 0: not known): its
	 * repair's write is conditional on them. Not journaled */
	int64_t seq_no, primary_term;
};

/* Adds a drift row (error may be NULL); *added (may be NULL) says whether
 * it was new (a row with the same key is left as it is). */
RC_MUST_CHECK rcode store_drift_add(struct store *s, int64_t run_id, const struct store_drift *d,
                                    int64_t batch_no, enum drift_state state, const char *error,
                                    bool *added);
RC_MUST_CHECK rcode store_drift_set(struct store *s, int64_t run_id, const struct store_drift *d,
                                    enum drift_state state, const char *error);
/* Attaches a drift row to a batch (status pending). */
RC_MUST_CHECK rcode store_drift_assign(struct store *s, int64_t run_id, const struct store_drift *d,
                                       int64_t batch_no);

/* Drift history (drift_history, docs/JOURNAL.md "Drift across runs"): an
 * id seen in this many runs in a row is recurring (as is one seen again
 * after a repair). */
#define STORE_RECURRING_STREAK 3

/* Held orphan deletes (the brake, docs/ENGINE.md): orphan rows journaled
 * pending in no batch, sent only once the pass has ended under the limits.
 * store_held_next calls fn for at most limit of them (borrowed for the
 * call); a row leaves the set when a batch takes it. store_held_keep marks
 * every one reported with why and the run's brake held (one transaction). */
RC_MUST_CHECK rcode store_held_count(struct store *s, int64_t run_id, int64_t *n);
RC_MUST_CHECK rcode store_held_next(struct store *s, int64_t run_id, int64_t limit,
                                    int (*fn)(void *ctx, const struct store_drift *d), void *ctx);
RC_MUST_CHECK rcode store_held_keep(struct store *s, int64_t run_id, const char *why);

/* ---- commit transactions: each call is one transaction, all or nothing */

/* A drift row and the status it is recorded with (error may be NULL). */
struct store_drift_row {
	struct store_drift d;
	enum drift_state state; /* pending, reported or skipped */
	const char *error;
	const char *fields; /* stale by content: the fields that differed, or NULL */
};
/* Records a chunk's drift (a row already there is left as it is, so a
 * resumed pass counts it once) and recounts the run. */
RC_MUST_CHECK rcode store_drift_record(struct store *s, int64_t run_id,
                                       const struct store_drift_row *rows, size_t n);

/* What a batch does, as batches.action spells it: writes (an index or an
 * update action on the wire, RECONCILE_WRITE_MODE) or deletes. */
enum batch_action { BATCH_INDEX, BATCH_DELETE };

/* Writes batch *batch_no (0: the next number, set on return) as pending,
 * with its drift rows attached, before anything is sent. Full runs pass no
 * rows: their batches are journaled by id range (first_id..last_id). */
RC_MUST_CHECK rcode store_batch_open(struct store *s, int64_t run_id, int64_t *batch_no,
                                     enum batch_action action, int64_t docs, int64_t bytes,
                                     const char *first_id, const char *last_id,
                                     const struct store_drift *rows, size_t n);

/* The outcome of one document of a batch. */
struct store_outcome {
	const struct store_drift *d; /* its drift row; NULL in full runs */
	const char *doc_id;
	bool ok;
	bool newer;         /* not ok, not failed: the index holds a newer version */
	int status;         /* the item's HTTP status */
	const char *reason; /* why it failed */
};
/* Where a full run's cursor moves with a committed batch. */
struct store_cursor {
	const char *type, *id;
	int64_t seen_types, compared;
};
/* Commits batch batch_no with every document's outcome (a failed one also
 * gets an errors row), moves the cursor (may be NULL) and recounts. */
RC_MUST_CHECK rcode store_batch_close(struct store *s, int64_t run_id, int64_t batch_no,
                                      const struct store_outcome *o, size_t n, int64_t attempts,
                                      int64_t took_ms, const struct store_cursor *cursor);

RC_MUST_CHECK rcode store_batch_next_no(struct store *s, int64_t run_id, int64_t *batch_no);
RC_MUST_CHECK rcode store_batch_add(struct store *s, int64_t run_id, int64_t batch_no,
                                    enum batch_action action, int64_t docs, int64_t bytes,
                                    const char *first_id, const char *last_id);
/* A batch's state, as batches.status spells it. */
enum batch_state { BATCH_PENDING, BATCH_COMMITTED, BATCH_FAILED };
RC_MUST_CHECK rcode store_batch_commit(struct store *s, int64_t run_id, int64_t batch_no,
                                       enum batch_state state, int64_t ok, int64_t failed,
                                       int64_t attempts, int64_t took_ms);

/* Pending work of a run, for resume. */
struct store_pending {
	int64_t batch_no;
	enum batch_action action;
};
RC_MUST_CHECK rcode store_batches_pending(struct store *s, int64_t run_id,
                                          struct store_pending **out, size_t *n);
/* Drift rows of a batch: calls fn for each (borrowed for the call); fn
 * returns nonzero to stop. */
RC_MUST_CHECK rcode store_batch_ids(struct store *s, int64_t run_id, int64_t batch_no,
                                    int (*fn)(void *ctx, const struct store_drift *d), void *ctx);

/* Live sync (`reconciler sync`, docs/LIVE-SYNC.md): each mirror's change
 * stream's place (streams) and the gaps where it lost it (stream_gaps),
 * migration 0014. Why a gap was opened, as stream_gaps.reason spells it
 * (one name table, store.c). */
enum stream_gap_reason {
	GAP_FIRST_START,  /* no place journaled yet */
	GAP_HISTORY_LOST, /* the place fell off the oplog (286, 136) */
	GAP_INVALIDATE,   /* the stream was invalidated (drop, rename) */
	GAP_TOO_LARGE,    /* an event over 16 MB: the stream cannot pass it (10334) */
	GAP_INDEX_LOST,   /* the index was deleted while the stream ran (migration 0018) */
};
const char *store_gap_reason_name(enum stream_gap_reason r);

/* A mirror's stream as journaled; strings owned (store_stream_clear). */
struct store_stream {
	char *token;        /* the resume token as extended JSON; NULL: no place */
	char *cluster_time; /* the last committed event's (ISO 8601); NULL: none */
	int64_t cluster_ts; /* the same as a BSON timestamp (t << 32 | i); 0: none */
	int64_t events_applied, events_failed, batches, gaps;
	int64_t open_gaps; /* gaps no catch-up closed yet */
	char *target;      /* "db.collection -> index" the place belongs to; NULL: not known */
};
RC_MUST_CHECK rcode store_stream_get(struct store *s, struct store_stream *out, const char *mirror);
void store_stream_clear(struct store_stream *st);
/* One batch OpenSearch acknowledged: the token and cluster time of its last
 * event, and its counts, in one transaction (token NULL: the counts only;
 * cluster_time NULL: the one journaled stays). The commit of the stream's
 * journal: a place is never journaled before the writes it covers. */
RC_MUST_CHECK rcode store_stream_commit(struct store *s, const char *mirror, const char *token,
                                        const char *cluster_time, int64_t cluster_ts,
                                        int64_t applied, int64_t failed, const char *last_error);
/* The place is lost: a gap row (lost_from: the last committed cluster
 * time) and the token cleared, in one transaction; *gap_id its row. */
RC_MUST_CHECK rcode store_stream_gap(struct store *s, int64_t *gap_id, const char *mirror,
                                     enum stream_gap_reason reason, const char *detail);
/* The catch-up run_id ran for every open gap of mirror up to gap_max;
 * closed: it completed, and they are closed now. */
RC_MUST_CHECK rcode store_stream_gaps_caught(struct store *s, const char *mirror, int64_t gap_max,
                                             int64_t run_id, bool closed);
/* Sets what the mirror's place belongs to (migration 0016: streams.target). */
RC_MUST_CHECK rcode store_stream_set_target(struct store *s, const char *mirror,
                                            const char *target);
/* Closes the mirror's open gaps that a completed run of the mirror of kind
 * check or catchup begun at or after the gap's reopening covers: that run
 * compared the whole mirror after the stream was open again. *closed: how
 * many. */
RC_MUST_CHECK rcode store_stream_gaps_checked(struct store *s, int64_t *closed, const char *mirror);
/* One gap as journaled (stream_gaps); strings owned. */
struct store_gap {
	int64_t id;
	char *reason;                                       /* store_gap_reason_name's word */
	char *detail, *lost_from, *reopened_at, *closed_at; /* NULL: none */
	int64_t catchup_run_id;                             /* 0: none yet */
};
/* The mirror's gaps, newest first, at most limit: every open one, then
 * closed ones up to limit (*out NULL when none). */
RC_MUST_CHECK rcode store_stream_gaps_list(struct store *s, struct store_gap **out, size_t *n,
                                           const char *mirror, int64_t limit);
void store_stream_gaps_free(struct store_gap *v, size_t n);
/* The newest open gap's id (0: none). */
RC_MUST_CHECK rcode store_stream_gap_open(struct store *s, int64_t *gap_id, const char *mirror);

/* A cheap check that the journal answers (health). */
RC_MUST_CHECK rcode store_ping(struct store *s);

#endif
