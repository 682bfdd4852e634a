/*
 * engine.h: one reconciliation run, end to end, with resume.
 *
 * An engine owns its own MongoDB and OpenSearch connections and journal
 * handle; one engine runs one run at a time (the journal lock makes that
 * true across processes too). Any thread may read progress or cancel.
 */
#ifndef RECONCILER_ENGINE_H
#define RECONCILER_ENGINE_H

#include "config.h"
#include "error.h"
#include "store.h" /* enum run_kind, enum run_status */

#include <stdbool.h>
#include <stdint.h>

struct engine;

/* A copy of the live counters, for progress lines and the API. */
struct engine_progress {
	bool active;
	int64_t run_id;
	enum run_kind kind;
	char phase[16];
	int64_t mongo_count, opensearch_count;
	int64_t compared, missing, orphans, stale, skipped, repaired, deleted, failed;
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
};

RC_MUST_CHECK rcode engine_new(struct engine **out, const struct config *cfg, struct rerror *err);
void engine_free(struct engine *e);

/* Runs one run of the given kind. resume_id: 0 = resume
 * the unfinished run if there is one, else start a new one; > 0 = resume
 * exactly that run; -1 = always start a new run. */
RC_MUST_CHECK rcode engine_run(struct engine *e, struct engine_result *res, enum run_kind kind,
                               const char *trigger, int64_t resume_id, struct rerror *err);

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

#endif
