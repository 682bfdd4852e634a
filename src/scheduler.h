/*
 * scheduler.h: when runs happen in the service. One worker thread owns the
 * engine and runs one run at a time: on the schedule (startup delay, then
 * every interval), on request (API), on the count monitor's word, and at
 * start to resume an interrupted run.
 */
#ifndef RECONCILER_SCHEDULER_H
#define RECONCILER_SCHEDULER_H

#include "config.h"
#include "engine.h"
#include "error.h"

#include <stdbool.h>
#include <stdint.h>

struct scheduler;

struct scheduler_status {
	bool enabled; /* the schedule is on */
	int64_t interval_ms;
	int64_t next_at_ms; /* wall clock of the next scheduled run, 0 if none */
	bool active;        /* a run is in progress (or about to start) */
	struct engine_progress progress;
	int64_t last_count_check_ms;
	int64_t last_mongo_count, last_opensearch_count;
};

rcode scheduler_new(struct scheduler **out, const struct config *cfg, struct rerror *err);
/* Starts the worker; resume_first runs an interrupted run at once. */
rcode scheduler_start(struct scheduler *s, bool resume_first, struct rerror *err);
/* Stops the worker: the current run is interrupted after its in-flight
 * batch. Waits at most wait_ms; returns false if the run did not stop. */
bool scheduler_shutdown(struct scheduler *s, int64_t wait_ms);
void scheduler_free(struct scheduler *s);

/* The schedule, as the seed's start/stop routes set it (until restart). */
void scheduler_enable(struct scheduler *s, int64_t interval_ms);
void scheduler_disable(struct scheduler *s);
void scheduler_status(struct scheduler *s, struct scheduler_status *out);

/* Runs now. RC_ERR_BUSY (with *run_id the active run) when one is active.
 * With wait, blocks until it ends and fills *res; else returns once the
 * run has its id. */
rcode scheduler_run_now(struct scheduler *s, int64_t *run_id, struct engine_result *res,
                        const char *kind, const char *trigger, bool wait, struct rerror *err);
/* Cancels the active run if it is run_id; false if it is not active. */
bool scheduler_cancel(struct scheduler *s, int64_t run_id);

#endif
