/*
 * run.h: one reconciliation run, end to end, with resume.
 *
 * An engine owns its own MongoDB and OpenSearch connections and journal
 * handle; one engine runs one run at a time (the journal lock makes that
 * true across processes too). Any thread may read progress or cancel.
 *
 * The file is run.c's (and run_*.c's); its public names keep the engine_
 * prefix because `struct run` is already taken by the one run in progress
 * that an engine holds (run_int.h).
 */
#ifndef RECONCILER_RUN_H
#define RECONCILER_RUN_H

#include "config.h"
#include "error.h"
#include "store.h" /* enum run_kind, enum run_status */

#include <stdbool.h>
#include <stdint.h>

struct engine;

/* Where a run is. Its word (run_phase_name) is what the journal's
 * runs.phase and errors.phase hold and the API says; the journal writes
 * "done" itself when a run ends (store_run_finish). */
enum run_phase {
	RUN_PHASE_STARTING,
	RUN_PHASE_COUNTING,
	RUN_PHASE_DIFFING,
	RUN_PHASE_REPAIRING,
	RUN_PHASE_INDEXING,
	RUN_PHASE_FINISHING,
	RUN_PHASE_DONE,
};
const char *run_phase_name(enum run_phase p);

/* A copy of the live counters, for progress lines and the API. */
struct engine_progress {
	bool active;
	int64_t run_id;
	enum run_kind kind;
	enum run_phase phase;
	int64_t mongo_count, opensearch_count;
	int64_t compared, missing, orphans, stale, skipped, repaired, deleted, failed;
	int64_t reindexed;  /* written by a full re-index (not drift) */
	int64_t started_ms; /* wall clock */
	int64_t elapsed_ms;
};

/* What a finished run found, for the CLI's exit code and the API. run_id is
 * 0 when no run was begun (then status and kind say nothing). */
struct engine_result {
	int64_t run_id;
	enum run_status status;
	enum run_kind kind;
	int64_t mongo_count, opensearch_count;
	int64_t missing, orphans, stale, skipped, repaired, deleted, failed;
	int64_t duplicates, conflicts;
	int64_t skipped_newer; /* writes refused: the index holds a newer version */
	int64_t kept;          /* orphans OPENSEARCH_KEEP_QUERY kept: not deleted, not reported */
	int64_t held;          /* orphans the brake kept (status held): none deleted */
	/* a full re-index: it wrote every document, reindexed of them (not
	 * drift, not repaired) */
	bool full_write;
	int64_t reindexed;
	int64_t orphans_kept; /* orphans found and kept: RECONCILE_ORPHANS=report */
	/* a check that found the index empty took the full re-index's path */
	bool empty_index;
	char why[1400]; /* held: why, in numbers, and how to release it */
	/* run_id was not resumed: settings that bind a run changed since it
	 * began (why says which); it is cancelled and nothing ran (only with
	 * engine_opts.resume_only; otherwise a new run ran in its place) */
	bool not_resumed;
};

/* What a finished run says of the mirror's sync: 1 it found no drift, 0
 * it found some (or did not complete), -1 not known: a full re-index
 * writes every document and does not look for drift (orphans and copies
 * it does not overwrite stay as they were), so it never says "in sync". */
int engine_result_in_sync(const struct engine_result *res, rcode rc);
/* What the counts alone do not say, for the summary line and the API's
 * `note` ("" when nothing): a re-index not verified, a check that took
 * the full re-index path, orphans kept by RECONCILE_ORPHANS=report. */
void engine_result_note(const struct engine_result *res, char *out, size_t len);

/* Most ids one targeted run takes (`check --ids`, {"ids": [...]}). */
#define ENGINE_IDS_MAX 10000

/* What a run is asked beyond its kind. ids / since: what a targeted run
 * (RUN_IDS) checks; allow_deletes releases the brake on orphan deletes for
 * this run (docs/ENGINE.md#the-brake-on-deletes). */
struct engine_opts {
	bool allow_deletes;
	char **ids; /* n_ids canonical id texts (docs/MAPPING.md), or extended JSON */
	size_t n_ids;
	bool since; /* the documents whose version field is newer than since_ms */
	int64_t since_ms;
	/* a resume and nothing else (`reconciler resume`): a run whose binding
	 * settings changed since it began is cancelled and no new run starts
	 * (engine_result.not_resumed); without it a new run starts instead */
	bool resume_only;
	/* the ids are a random sample (sample.c, `check --sample N`): a RUN_IDS
	 * run journaled as kind sample, and a dry run: it writes nothing */
	bool sample;
	/* `check --partition K/N`: only partition K (0-based) of N of the key
	 * space (partition_n 0: the whole; docs/ENGINE.md, "Partitions"); a
	 * check or a dry run only */
	int partition_k, partition_n;
	/* RECONCILE_PARTITIONS (run_split.c sets these for each partition it
	 * runs): the partition is one of a split run of this process, whose
	 * partition 0's run is split_of (0: this is partition 0, its own id),
	 * and a new run of it takes the split's plan, split_points[i - 1]
	 * being the i-th of partition_n - 1 split points (canonical texts of
	 * id type split_type, enum id_type), not one of its own; not copied
	 * by engine_opts_copy (the coordinator owns them) */
	bool split;
	int64_t split_of;
	const char *const *split_points;
	int split_type;
	/* a RUN_CATCHUP run: the live sync's gaps it closes, with their reason
	 * and cluster time (stream.c), journaled as its event "gaps" */
	char catchup_gaps[600];
};

/* Whether a targeted run may start: ids given (1 to ENGINE_IDS_MAX, each
 * 1 to 512 bytes, no NUL) or since (needs RECONCILE_VERSION_FIELD), not
 * both. RC_ERR_CONFIG with what is wrong in err (HTTP 400, exit 78). */
RC_MUST_CHECK rcode engine_opts_check(const struct config *cfg, const struct engine_opts *o,
                                      struct rerror *err);
/* A deep copy (the scheduler keeps a request's), and its release. */
RC_MUST_CHECK rcode engine_opts_copy(struct engine_opts *dst, const struct engine_opts *src);
void engine_opts_release(struct engine_opts *o);

RC_MUST_CHECK rcode engine_new(struct engine **out, const struct config *cfg, struct rerror *err);
void engine_free(struct engine *e);

/* Runs one run of the given kind. resume_id: 0 = resume
 * the unfinished run if there is one, else start a new one; > 0 = resume
 * exactly that run (as its own kind); -1 = always start a new run. A run
 * is resumed only while the settings that bind a run (config.c's CFG_RUN
 * rows) equal its snapshot; otherwise it is cancelled (its error says what
 * changed) and a new run of its kind starts with the current settings. */
RC_MUST_CHECK rcode engine_run(struct engine *e, struct engine_result *res, enum run_kind kind,
                               const char *trigger, int64_t resume_id, struct rerror *err);
/* The same with options (NULL: none). A RUN_IDS run is always new (never
 * resumed) and leaves the mirror's interrupted runs as they are. */
RC_MUST_CHECK rcode engine_run_opts(struct engine *e, struct engine_result *res, enum run_kind kind,
                                    const char *trigger, int64_t resume_id,
                                    const struct engine_opts *opts, struct rerror *err);

/* Asks the current run to stop after its in-flight batch; it ends
 * interrupted (signal) or cancelled (API). Safe from any thread and from a
 * signal handler (it only stores to a flag). */
void engine_stop(struct engine *e, bool cancel);
/* Forgets a stop request before the next run (the caller serializes runs). */
void engine_clear_stop(struct engine *e);
void engine_progress(struct engine *e, struct engine_progress *out);
/* Called (from the run's thread) once the run has its id: a new run's or
 * the resumed one's. */
void engine_set_start_hook(struct engine *e, void (*fn)(void *ctx, int64_t run_id), void *ctx);
/* Prints a progress line to stderr about once a second during a run. */
void engine_set_progress_output(struct engine *e, bool on);

/* Warns (one log line each) about unfinished runs of mirrors that set does
 * not define (removed or renamed): nothing resumes or closes them; the line
 * says how (docs/JOURNAL.md). s: the journal, open. Returns how many. */
size_t engine_warn_unknown_runs(struct store *s, const struct config_set *set);

#endif
