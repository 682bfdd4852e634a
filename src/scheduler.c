/*
 * scheduler.c: one worker thread per mirror runs every run of that mirror.
 *
 * The worker sleeps on a condition variable until the next scheduled run,
 * the next count check, a run request or shutdown. A request is accepted
 * only when no run of the mirror is active or queued (the API answers 409
 * otherwise), so "one run per mirror at a time" holds by construction; the
 * mirror's journal lock keeps it true against other processes too. Waiters
 * (a check route with wait) sleep on a second condition variable keyed by
 * a sequence number of runs.
 *
 * Runs of different mirrors overlap up to RECONCILE_CONCURRENCY: a worker
 * takes a slot before its run and gives it back after. Slots go first come,
 * first served (a queue of waiters), so a mirror with a short interval
 * cannot starve the others; a worker waiting for a slot still stops at
 * shutdown.
 *
 * The schedule starts from configuration at every start
 * (RECONCILIATION_ENABLED, _STARTUP_DELAY_MS, _INTERVAL_MS); the API's
 * start/stop change it until the next restart.
 */
#include "scheduler.h"
#include "probe.h"
#include "log.h"
#include "mongo.h"
#include "opensearch.h"
#include "store.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

struct slot_waiter {
	struct slot_waiter *next;
};

struct scheduler_slots {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int64_t max, used;
	struct slot_waiter *head; /* the queue, first come first */
};

struct scheduler {
	const struct config *cfg;
	struct scheduler_slots *slots;
	struct engine *engine;
	pthread_t thread;
	bool started, exited, stopping;
	atomic_bool stop_flag; /* stopping, readable without mu (the slot wait) */
	atomic_bool leave;     /* the run waiting for a slot was cancelled */
	bool waiting;          /* the worker waits for a slot */
	int64_t waiting_run;   /* the run a resume waiting for a slot continues, or 0 */
	pthread_mutex_t mu;
	pthread_cond_t wake; /* the worker */
	pthread_cond_t done; /* waiters */
	bool enabled;
	int64_t interval_ms, next_at_ms, next_count_ms;
	/* the queued request */
	bool req;
	enum run_kind req_kind;
	char req_trigger[24];
	int64_t req_resume;
	struct engine_opts req_opts; /* owned: ids, since, allowDeletes */
	/* the run in progress and the last one */
	bool running;
	int64_t run_id;
	uint64_t seq_started, seq_with_id, seq_done;
	/* the last runs' ends by sequence number, so a waiter woken late
	 * still finds its own */
	struct {
		uint64_t seq;
		struct engine_result res;
		rcode rc;
		struct rerror err;
	} results[8];
	int64_t last_count_ms, last_mc, last_oc;
};

rcode
scheduler_slots_new(struct scheduler_slots **out, int64_t max, struct rerror *err)
{
	struct scheduler_slots *p;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->max = max < 1 ? 1 : max;
	*out = p;
	return RC_OK;
}

void
scheduler_slots_free(struct scheduler_slots *p)
{
	if (p == NULL)
		return;
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cond);
	free(p);
}

/* Takes a slot if one is free and nobody waits for one. */
static bool
slots_try(struct scheduler_slots *p)
{
	bool got;

	pthread_mutex_lock(&p->mu);
	got = p->head == NULL && p->used < p->max;
	if (got)
		p->used++;
	pthread_mutex_unlock(&p->mu);
	return got;
}

/* Waits in line for a slot; false (no slot taken) once *stop or *leave is
 * set. */
static bool
slots_take(struct scheduler_slots *p, atomic_bool *stop, atomic_bool *leave)
{
	struct slot_waiter me = {0}, **pp;
	bool got = false;

	pthread_mutex_lock(&p->mu);
	for (pp = &p->head; *pp; pp = &(*pp)->next)
		;
	*pp = &me;
	while (!atomic_load(stop) && !atomic_load(leave)) {
		if (p->head == &me && p->used < p->max) {
			p->used++;
			got = true;
			break;
		}
		pthread_cond_wait(&p->cond, &p->mu);
	}
	for (pp = &p->head; *pp != &me; pp = &(*pp)->next)
		;
	*pp = me.next;
	pthread_cond_broadcast(&p->cond); /* the next in line may go, or leave */
	pthread_mutex_unlock(&p->mu);
	return got;
}

static void
slots_give(struct scheduler_slots *p)
{
	pthread_mutex_lock(&p->mu);
	p->used--;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->mu);
}

/* Wakes the waiters so that one told to stop sees it. */
static void
slots_wake(struct scheduler_slots *p)
{
	pthread_mutex_lock(&p->mu);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->mu);
}

rcode
scheduler_new(struct scheduler **out, const struct config *cfg, struct scheduler_slots *slots,
              struct rerror *err)
{
	struct scheduler *s;
	rcode rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	s->cfg = cfg;
	s->slots = slots;
	atomic_init(&s->stop_flag, false);
	atomic_init(&s->leave, false);
	rc = engine_new(&s->engine, cfg, err);
	if (rc) {
		free(s);
		return rc;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->done, NULL);
	s->enabled = cfg->reconciliation_enabled;
	s->interval_ms = cfg->interval_ms;
	s->next_at_ms = s->enabled ? util_now_ms() + cfg->startup_delay_ms : 0;
	s->next_count_ms = util_now_ms() + cfg->count_monitor_interval_ms;
	s->last_mc = s->last_oc = -1;
	*out = s;
	return RC_OK;
}

void
scheduler_free(struct scheduler *s)
{
	if (s == NULL)
		return;
	engine_free(s->engine);
	engine_opts_release(&s->req_opts); /* a request the worker never took */
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->done);
	free(s);
}

static void
on_run_started(void *ctx, int64_t run_id)
{
	struct scheduler *s = ctx;

	pthread_mutex_lock(&s->mu);
	s->run_id = run_id;
	s->seq_with_id = s->seq_started;
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->mu);
}

/* The count monitor: a cheap comparison, journaled; past the threshold it
 * asks for a run. Called without the lock. */
static bool
count_check(struct scheduler *s)
{
	struct store *st = NULL;
	struct rerror err = {0};
	struct probe p;
	bool trigger = false;
	cJSON *detail = cJSON_CreateObject();
	char *text = NULL;

	/* one side's failure is the message; an index not there yet counts 0.
	 * The counts are the mirror's own: RECONCILE_FILTER, OPENSEARCH_QUERY */
	if (probe_servers(&p, s->cfg, PROBE_COUNT, NULL))
		err = p.mongodb.ok ? p.opensearch.err : p.mongodb.err;
	int64_t mc = p.mongodb.ok ? p.mongodb.count : -1;
	int64_t oc = p.mongodb.ok && p.opensearch.ok ? p.opensearch.count : -1;
	probe_clear(&p);
	/* which mirror: its rows have no run to say it */
	cJSON_AddStringToObject(detail, "mirror", s->cfg->name);
	if (mc >= 0 && oc >= 0) {
		int64_t diff = mc > oc ? mc - oc : oc - mc;
		trigger = diff > s->cfg->count_monitor_threshold;
		cJSON_AddNumberToObject(detail, "mongoCount", (double)mc);
		cJSON_AddNumberToObject(detail, "opensearchCount", (double)oc);
		cJSON_AddNumberToObject(detail, "difference", (double)(mc - oc));
		cJSON_AddNumberToObject(detail, "threshold",
		                        (double)s->cfg->count_monitor_threshold);
		cJSON_AddBoolToObject(detail, "triggered", trigger);
		log_info("count monitor (mirror %s): MongoDB %" PRId64 ", OpenSearch %" PRId64 "%s",
		         s->cfg->name, mc, oc,
		         trigger ? ": past the threshold, starting a run" : "");
	} else {
		char msg[sizeof(err.message)];
		snprintf(msg, sizeof(msg), "%s", err.message);
		util_mask_secrets(msg, sizeof(msg));
		cJSON_AddStringToObject(detail, "error", msg);
		log_warn("count monitor (mirror %s): %s", s->cfg->name, err.message);
	}
	text = detail ? cJSON_PrintUnformatted(detail) : NULL;
	if (text == NULL || store_open(&st, s->cfg->state_db, &err) != RC_OK ||
	    store_event(st, 0, "count_check", text) != RC_OK)
		log_warn("count monitor (mirror %s): cannot journal the comparison", s->cfg->name);
	store_free(st);
	cJSON_Delete(detail);
	free(text);
	pthread_mutex_lock(&s->mu);
	s->last_count_ms = util_now_ms();
	s->last_mc = mc;
	s->last_oc = oc;
	pthread_mutex_unlock(&s->mu);
	return trigger;
}

static void
timed_wait(struct scheduler *s, int64_t until_ms)
{
	struct timespec ts;
	int64_t now = util_now_ms();

	if (until_ms <= now)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t ns = ts.tv_nsec + (until_ms - now) % 1000 * 1000000;
	ts.tv_sec += (until_ms - now) / 1000 + ns / 1000000000;
	ts.tv_nsec = ns % 1000000000;
	pthread_cond_timedwait(&s->wake, &s->mu, &ts);
}

/* The count monitor's turn: counts compared (without the lock, held on
 * entry and on return), and a check requested past the threshold. */
static void
count_tick(struct scheduler *s, int64_t now)
{
	s->next_count_ms = now + s->cfg->count_monitor_interval_ms;
	pthread_mutex_unlock(&s->mu);
	bool trigger_run = count_check(s);
	pthread_mutex_lock(&s->mu);
	if (trigger_run && !s->req && !s->stopping) {
		s->req = true;
		s->req_kind = RUN_CHECK;
		snprintf(s->req_trigger, sizeof(s->req_trigger), "count_monitor");
		s->req_resume = 0;
	}
}

/* Nothing due: sleep until the next scheduled run or count (a minute at
 * most), or a request. */
static void
idle_wait(struct scheduler *s, int64_t now)
{
	int64_t until = now + 60000;

	if (s->enabled && s->next_at_ms && s->next_at_ms < until)
		until = s->next_at_ms;
	if (s->cfg->count_monitor_enabled && s->next_count_ms < until)
		until = s->next_count_ms;
	timed_wait(s, until);
}

/* A slot of RECONCILE_CONCURRENCY, waited for in the queue when every one
 * is taken (without s->mu); false when none came: the service stops, or
 * *cancelled, scheduler_unqueue took the run out of the queue. */
static bool
slot_wait(struct scheduler *s, enum run_kind kind, const char *trigger, int64_t resume,
          bool *cancelled)
{
	bool slot = slots_try(s->slots);

	*cancelled = false;
	if (slot)
		return true;
	pthread_mutex_lock(&s->mu);
	s->waiting = true;
	s->waiting_run = resume > 0 ? resume : 0;
	atomic_store(&s->leave, false);
	pthread_cond_broadcast(&s->done); /* a waiter may answer "queued" */
	pthread_mutex_unlock(&s->mu);
	log_info("mirror %s: %s run (%s) waits for a slot (RECONCILE_CONCURRENCY=%lld)",
	         s->cfg->name, store_run_kind_name(kind), trigger, (long long)s->cfg->concurrency);
	slot = slots_take(s->slots, &s->stop_flag, &s->leave);
	pthread_mutex_lock(&s->mu);
	s->waiting = false;
	s->waiting_run = 0;
	/* cancelled in the queue (scheduler_unqueue): never run it, even when
	 * a slot came at the same moment */
	*cancelled = atomic_exchange(&s->leave, false);
	pthread_mutex_unlock(&s->mu);
	if (*cancelled && slot) {
		slots_give(s->slots);
		slot = false;
	}
	return slot;
}

/* One run (s->mu held on entry and on return, not while it runs): a slot,
 * the engine, and its result kept for the waiters. opts is released. */
static void
run_now(struct scheduler *s, enum run_kind kind, const char *trigger, int64_t resume,
        struct engine_opts *opts)
{
	struct engine_result res;
	struct rerror err = {0};
	rcode rc;
	bool cancelled;

	s->running = true;
	s->run_id = 0;
	s->seq_started++;
	engine_clear_stop(s->engine); /* under the lock: a shutdown after this still stops it */
	pthread_mutex_unlock(&s->mu);
	if (slot_wait(s, kind, trigger, resume, &cancelled)) {
		rc = engine_run_opts(s->engine, &res, kind, trigger, resume, opts, &err);
		slots_give(s->slots);
	} else {
		memset(&res, 0, sizeof(res));
		rc = rerror_set(&err, RC_ERR_CANCELLED,
		                cancelled ? "cancelled while waiting for a slot"
		                          : "the service is shutting down");
		if (cancelled)
			log_info("mirror %s: %s run (%s) cancelled while waiting for a slot: "
			         "it left the queue",
			         s->cfg->name, store_run_kind_name(kind), trigger);
	}
	engine_opts_release(opts);
	if (rc && rc != RC_ERR_CANCELLED)
		log_warn("mirror %s: %s run (%s) ended: %s", s->cfg->name,
		         store_run_kind_name(kind), trigger, err.message);
	pthread_mutex_lock(&s->mu);
	s->running = false;
	s->results[s->seq_started % 8].seq = s->seq_started;
	s->results[s->seq_started % 8].res = res;
	s->results[s->seq_started % 8].rc = rc;
	s->results[s->seq_started % 8].err = err;
	s->seq_done = s->seq_started;
	pthread_cond_broadcast(&s->done);
}

static void *
worker(void *arg)
{
	struct scheduler *s = arg;

	pthread_mutex_lock(&s->mu);
	while (!s->stopping) {
		int64_t now = util_now_ms();
		enum run_kind kind;
		char trigger[24];
		int64_t resume = 0;
		struct engine_opts opts = {0};

		if (s->req) {
			kind = s->req_kind;
			snprintf(trigger, sizeof(trigger), "%s", s->req_trigger);
			resume = s->req_resume;
			opts = s->req_opts; /* taken over: freed after the run */
			s->req_opts = (struct engine_opts){0};
			s->req = false;
		} else if (s->enabled && s->next_at_ms && now >= s->next_at_ms) {
			kind = RUN_CHECK;
			snprintf(trigger, sizeof(trigger), "schedule");
			s->next_at_ms = now + s->interval_ms;
		} else if (s->cfg->count_monitor_enabled && now >= s->next_count_ms) {
			count_tick(s, now);
			continue;
		} else {
			idle_wait(s, now);
			continue;
		}
		run_now(s, kind, trigger, resume, &opts);
	}
	s->exited = true;
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

rcode
scheduler_start(struct scheduler *s, int64_t resume_id, struct rerror *err)
{
	engine_set_start_hook(s->engine, on_run_started, s);
	if (resume_id > 0) {
		/* exactly that run, as its own kind (a dry run stays a dry run:
		 * "the unfinished check" would start a new, writing check when the
		 * interrupted run was a dry run) */
		s->req = true;
		s->req_kind = RUN_CHECK; /* the engine takes the run's own kind */
		snprintf(s->req_trigger, sizeof(s->req_trigger), "resume");
		s->req_resume = resume_id;
	}
	if (pthread_create(&s->thread, NULL, worker, s))
		return rerror_set(err, RC_ERR_INTERNAL, "cannot start the scheduler thread");
	s->started = true;
	return RC_OK;
}

void
scheduler_stop(struct scheduler *s)
{
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	s->req = false;
	atomic_store(&s->stop_flag, true);
	pthread_cond_broadcast(&s->wake);
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->mu);
	engine_stop(s->engine, false);
	slots_wake(s->slots);
}

bool
scheduler_shutdown(struct scheduler *s, int64_t wait_ms)
{
	int64_t deadline = util_now_ms() + wait_ms;
	bool exited;

	if (!s->started)
		return true;
	scheduler_stop(s);
	pthread_mutex_lock(&s->mu);
	while (!s->exited && util_now_ms() < deadline) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->done, &s->mu, &ts);
	}
	exited = s->exited;
	pthread_mutex_unlock(&s->mu);
	if (exited) {
		pthread_join(s->thread, NULL);
		s->started = false;
	}
	return exited;
}

void
scheduler_enable(struct scheduler *s, int64_t interval_ms)
{
	pthread_mutex_lock(&s->mu);
	s->enabled = true;
	s->interval_ms = interval_ms;
	s->next_at_ms = util_now_ms() + interval_ms;
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->mu);
}

void
scheduler_disable(struct scheduler *s)
{
	pthread_mutex_lock(&s->mu);
	s->enabled = false;
	s->next_at_ms = 0;
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->mu);
}

void
scheduler_status(struct scheduler *s, struct scheduler_status *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->mu);
	out->enabled = s->enabled;
	out->interval_ms = s->interval_ms;
	out->next_at_ms = s->enabled ? s->next_at_ms : 0;
	out->active = s->running || s->req;
	out->queued = s->running && s->waiting;
	out->queued_run = out->queued ? s->waiting_run : 0;
	out->last_count_check_ms = s->last_count_ms;
	out->last_mongo_count = s->last_mc;
	out->last_opensearch_count = s->last_oc;
	pthread_mutex_unlock(&s->mu);
	engine_progress(s->engine, &out->progress);
}

/* Sleeps on done for at most 20 ms (callers loop on their condition). */
static void
wait_done_briefly(struct scheduler *s)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 20000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&s->done, &s->mu, &ts);
}

/* Whether the mirror has a run (active, starting, queued, or the service
 * stopping), *run_id that run (0 when it has none yet). A run that is
 * starting has no id yet and an answer should name it: a start takes the
 * journal lock and the lease (a few OpenSearch requests: lease.c), slower on
 * a loaded cluster, so this waits up to 10 s, ending as soon as the id is
 * known. Called with s->mu held. */
static bool
busy_locked(struct scheduler *s, int64_t *run_id)
{
	*run_id = 0;
	if (s->running || s->req || s->stopping) {
		int64_t deadline = util_now_ms() + 10000;
		while (!s->stopping &&
		       (s->req || (s->running && !s->waiting && s->seq_with_id < s->seq_started) ||
		        (s->running && atomic_load(&s->leave))) &&
		       util_now_ms() < deadline)
			wait_done_briefly(s);
	}
	if (!(s->running || s->req || s->stopping))
		return false; /* a run that just ended frees it */
	*run_id = s->running && s->seq_with_id >= s->seq_started ? s->run_id : 0;
	if (s->running && s->waiting && *run_id == 0)
		*run_id = s->waiting_run; /* a resume knows its run */
	return true;
}

bool
scheduler_busy_run(struct scheduler *s, int64_t *run_id)
{
	bool busy;

	pthread_mutex_lock(&s->mu);
	busy = busy_locked(s, run_id);
	pthread_mutex_unlock(&s->mu);
	return busy;
}

rcode
scheduler_request(struct scheduler *s, uint64_t *ticket, int64_t *run_id, enum run_kind kind,
                  const char *trigger, struct rerror *err)
{
	return scheduler_request_opts(s, ticket, run_id, kind, trigger, NULL, err);
}

rcode
scheduler_request_opts(struct scheduler *s, uint64_t *ticket, int64_t *run_id, enum run_kind kind,
                       const char *trigger, const struct engine_opts *opts, struct rerror *err)
{
	struct engine_opts copy = {0};

	if (opts && engine_opts_copy(&copy, opts))
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	*ticket = 0;
	*run_id = 0;
	pthread_mutex_lock(&s->mu);
	if (busy_locked(s, run_id)) {
		bool queued = s->running && s->waiting, stopping = s->stopping;
		pthread_mutex_unlock(&s->mu);
		engine_opts_release(&copy);
		if (stopping)
			return rerror_set(err, RC_ERR_BUSY, "the service is shutting down");
		if (queued && *run_id)
			return rerror_set(err, RC_ERR_BUSY,
			                  "run %" PRId64 " of mirror %s waits for a slot "
			                  "(RECONCILE_CONCURRENCY)",
			                  *run_id, s->cfg->name);
		if (*run_id)
			return rerror_set(err, RC_ERR_BUSY,
			                  "run %" PRId64 " of mirror %s is in progress", *run_id,
			                  s->cfg->name);
		return rerror_set(err, RC_ERR_BUSY, "mirror %s has a run %s", s->cfg->name,
		                  queued ? "waiting for a slot (RECONCILE_CONCURRENCY)"
		                         : "starting");
	}
	s->req = true;
	s->req_kind = kind;
	snprintf(s->req_trigger, sizeof(s->req_trigger), "%s", trigger);
	s->req_resume = -1; /* always a new run */
	engine_opts_release(&s->req_opts);
	s->req_opts = copy;
	*ticket = s->seq_started + 1;
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->mu);
	return RC_OK;
}

rcode
scheduler_wait(struct scheduler *s, int64_t *run_id, struct engine_result *res, uint64_t ticket,
               bool until_done, struct rerror *err)
{
	rcode rc = RC_OK;

	*run_id = 0;
	memset(res, 0, sizeof(*res));
	pthread_mutex_lock(&s->mu);
	while (
	    !s->exited && s->seq_done < ticket &&
	    (until_done || (s->seq_with_id < ticket && !(s->seq_started == ticket && s->waiting))))
		pthread_cond_wait(&s->done, &s->mu);
	if (s->seq_done >= ticket) {
		if (s->results[ticket % 8].seq == ticket) {
			*run_id = s->results[ticket % 8].res.run_id;
			*res = s->results[ticket % 8].res;
			rc = s->results[ticket % 8].rc;
			if (rc && err)
				*err = s->results[ticket % 8].err;
		} else {
			rc = rerror_set(err, RC_ERR_INTERNAL, "the run's result was overwritten");
		}
	} else if (s->seq_with_id >= ticket) {
		*run_id = s->run_id;
	} else if (!(s->seq_started == ticket && s->waiting)) {
		rc = rerror_set(err, RC_ERR_CANCELLED, "the service is shutting down");
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

rcode
scheduler_run_now(struct scheduler *s, int64_t *run_id, struct engine_result *res,
                  enum run_kind kind, const char *trigger, bool wait, struct rerror *err)
{
	return scheduler_run_now_opts(s, run_id, res, kind, trigger, NULL, wait, err);
}

rcode
scheduler_run_now_opts(struct scheduler *s, int64_t *run_id, struct engine_result *res,
                       enum run_kind kind, const char *trigger, const struct engine_opts *opts,
                       bool wait, struct rerror *err)
{
	uint64_t ticket;
	rcode rc;

	memset(res, 0, sizeof(*res));
	rc = scheduler_request_opts(s, &ticket, run_id, kind, trigger, opts, err);
	if (rc)
		return rc;
	return scheduler_wait(s, run_id, res, ticket, wait, err);
}

bool
scheduler_cancel(struct scheduler *s, int64_t run_id)
{
	bool hit;

	pthread_mutex_lock(&s->mu);
	hit = s->running && s->run_id == run_id;
	if (hit)
		engine_stop(s->engine, true);
	pthread_mutex_unlock(&s->mu);
	return hit;
}

bool
scheduler_unqueue(struct scheduler *s, int64_t run_id)
{
	bool hit;

	pthread_mutex_lock(&s->mu);
	hit = run_id > 0 && s->running && s->waiting && s->waiting_run == run_id;
	if (hit)
		atomic_store(&s->leave, true);
	pthread_mutex_unlock(&s->mu);
	if (hit)
		slots_wake(s->slots);
	return hit;
}
