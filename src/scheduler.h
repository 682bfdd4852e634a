/*
 * scheduler.h: when runs happen in the service. Each mirror has its own
 * scheduler: one worker thread that owns the mirror's engine and runs one
 * run at a time: on the schedule (startup delay, then every interval), on
 * request (API), on the count monitor's word, and at start to resume the
 * mirror's interrupted run. Before a run the worker takes a slot from the
 * slots every mirror shares (RECONCILE_CONCURRENCY), so runs of different
 * mirrors overlap up to that many.
 */
#ifndef RECONCILER_SCHEDULER_H
#define RECONCILER_SCHEDULER_H

#include "config.h"
#include "run.h"
#include "error.h"

#include <stdbool.h>
#include <stdint.h>

struct scheduler;
struct scheduler_slots;

/* max slots (>= 1), taken first come, first served. */
RC_MUST_CHECK rcode scheduler_slots_new(struct scheduler_slots **out, int64_t max,
                                        struct rerror *err);
void scheduler_slots_free(struct scheduler_slots *slots);

struct scheduler_status {
	bool enabled; /* the schedule is on */
	int64_t interval_ms;
	int64_t next_at_ms; /* wall clock of the next scheduled run, 0 if none */
	bool active;        /* a run is in progress (or about to start) */
	bool queued;        /* the run is waiting for a slot (no run id yet) */
	int64_t queued_run; /* the interrupted run a queued resume continues, or 0 */
	struct engine_progress progress;
	int64_t last_count_check_ms;
	int64_t last_mongo_count, last_opensearch_count;
};

/* cfg (one mirror's) and slots are borrowed and must outlive the scheduler. */
RC_MUST_CHECK rcode scheduler_new(struct scheduler **out, const struct config *cfg,
                                  struct scheduler_slots *slots, struct rerror *err);
/* Starts the worker; resume_id > 0 runs that interrupted run of the mirror
 * at once, as its own kind (0: nothing to resume). */
RC_MUST_CHECK rcode scheduler_start(struct scheduler *s, int64_t resume_id, struct rerror *err);
/* Asks the worker to stop without waiting: the current run is interrupted
 * after its in-flight batch, a queued one never starts. */
void scheduler_stop(struct scheduler *s);
/* Stops the worker (scheduler_stop) and waits at most wait_ms; returns
 * false if the run did not stop. */
bool scheduler_shutdown(struct scheduler *s, int64_t wait_ms);
void scheduler_free(struct scheduler *s);

/* The schedule, as the seed's start/stop routes set it (until restart). */
void scheduler_enable(struct scheduler *s, int64_t interval_ms);
void scheduler_disable(struct scheduler *s);
void scheduler_status(struct scheduler *s, struct scheduler_status *out);
/* Whether the mirror has a run (or the service is stopping): *run_id that
 * run, waiting up to 10 s for the id of one that is starting (0 when it has
 * none yet: it waits for a slot, or is still starting). */
bool scheduler_busy_run(struct scheduler *s, int64_t *run_id);

/* Queues a run now. RC_ERR_BUSY when the mirror has a run active or queued:
 * *run_id is then that run (0 while it has no id yet: it waits for a slot,
 * or is starting for longer than 10 s). *ticket names the request for
 * scheduler_wait. */
RC_MUST_CHECK rcode scheduler_request(struct scheduler *s, uint64_t *ticket, int64_t *run_id,
                                      enum run_kind kind, const char *trigger, struct rerror *err);
/* The same with options (NULL: none), copied for the run. */
RC_MUST_CHECK rcode scheduler_request_opts(struct scheduler *s, uint64_t *ticket, int64_t *run_id,
                                           enum run_kind kind, const char *trigger,
                                           const struct engine_opts *opts, struct rerror *err);
/* Waits for the run of ticket. until_done: until it ends (*res filled, the
 * run's rcode returned). Else until it has its id, or until it is known to
 * wait for a slot (*run_id 0, RC_OK), or it ended early (its rcode, *res). */
RC_MUST_CHECK rcode scheduler_wait(struct scheduler *s, int64_t *run_id, struct engine_result *res,
                                   uint64_t ticket, bool until_done, struct rerror *err);
/* scheduler_request, then scheduler_wait. */
RC_MUST_CHECK rcode scheduler_run_now(struct scheduler *s, int64_t *run_id,
                                      struct engine_result *res, enum run_kind kind,
                                      const char *trigger, bool wait, struct rerror *err);
RC_MUST_CHECK rcode scheduler_run_now_opts(struct scheduler *s, int64_t *run_id,
                                           struct engine_result *res, enum run_kind kind,
                                           const char *trigger, const struct engine_opts *opts,
                                           bool wait, struct rerror *err);
/* Cancels the active run if it is run_id; false if it is not active. */
bool scheduler_cancel(struct scheduler *s, int64_t run_id);
/* Takes a resume of run_id that waits for a slot out of the queue: it
 * never runs, and the mirror is free for a new request as soon as its
 * worker has left the queue (a request waits for that). false when no
 * resume of run_id waits. The caller marks the run in the journal. */
bool scheduler_unqueue(struct scheduler *s, int64_t run_id);

#endif
