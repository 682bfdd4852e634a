/*
 * run_split.c: RECONCILE_PARTITIONS=P, one check (or dry run) of a mirror
 * over P key ranges at once in this process (docs/ENGINE.md#partitions).
 *
 * The coordinator holds the mirror's journal lock, computes the plan once
 * (run_partition.c's split points, as `check --partition K/N` computes
 * them) and runs P partition runs on P threads, each on an engine of its
 * own: its own MongoDB cursor, index stream or summaries, connections,
 * repair senders, lease (ID#partition-K/P) and journaled run, with its own
 * cursor, tied to the others by runs.split_of (migration 0019: partition
 * 0's run id). The journal serializes their commits (SQLite's own lock,
 * one connection per partition).
 *
 * Resume: a killed split run resumes each of its unfinished partitions
 * after its last committed batch, with the split's journaled plan, and
 * leaves its finished partitions as they are (their counts join the
 * result). Unfinished runs of the same kind that are not of that split (a
 * whole run, or a split into another P) are cancelled, saying why, as
 * changed settings cancel one.
 *
 * The brake decides over the whole run: each partition, at the end of its
 * pass, waits for the others (split_brake) and one verdict, on the totals
 * against the whole limits, holds or sends them all. A partition that ends
 * before the decision (an error, a stop) holds the others: the whole
 * run's orphans are not known.
 *
 * Collections whose ids cannot be cut into key ranges (several id
 * classes) run whole, with a warning: exact, only not parallel.
 */
#include "run_int.h"

#include "lease.h"
#include "log.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The state the partitions of one split run share. */
struct split {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const struct config *cfg;
	int n;        /* partitions (P) */
	int expected; /* of them running in this process */
	int arrived;  /* at the brake's decision, or ended before it */
	bool at[RUN_SPLIT_MAX];
	bool limits;              /* some partition's brake is on (not released) */
	int64_t held, size, kept; /* their totals (finished partitions' too) */
	char checks[900];         /* the partitions' own reasons (brake_checks) */
	char early[200];          /* the partitions that ended before the decision */
	bool decided;
	char verdict[1400]; /* "": send */
	int64_t first_id;   /* partition 0's run id, once it has begun */
};

/* One partition's thread. */
struct part {
	struct split *sp;
	struct engine *e;
	struct engine_opts opts;
	enum run_kind kind;
	const char *trigger;
	int64_t resume_id; /* its unfinished run, or -1: a new one */
	bool finished;     /* done in an earlier process: not run */
	pthread_t thread;
	bool started;
	rcode rc;
	struct rerror err;
	struct engine_result res;
	struct engine *top; /* whose start hook hears the split's id */
};

/* A given run (resume_id > 0) too: split_run finds whether it is a split's. */
bool
split_wanted(const struct engine *e, enum run_kind kind, const struct engine_opts *o)
{
	return e->split == NULL && e->cfg->partitions > 1 &&
	       (kind == RUN_CHECK || kind == RUN_DRY_RUN) && o->partition_n == 0 && !o->sample &&
	       o->n_ids == 0 && !o->since;
}

/* Every partition is at the decision or has ended: one verdict. Called
 * with sp->mu held. */
static void
decide(struct split *sp)
{
	sp->verdict[0] = '\0';
	if (sp->limits)
		brake_limits(sp->cfg, sp->held, sp->size, sp->kept, 0, sp->verdict,
		             sizeof(sp->verdict));
	if (sp->checks[0])
		why_add(sp->verdict, sizeof(sp->verdict), "%s", sp->checks);
	if (sp->early[0]) {
		char msg[400];
		snprintf(msg, sizeof(msg),
		         "partition %s of this split run ended before the decision, so the whole "
		         "run's orphans are not known",
		         sp->early);
		why_add(sp->verdict, sizeof(sp->verdict), "%s", msg);
	}
	sp->decided = true;
	pthread_cond_broadcast(&sp->cv);
}

rcode
split_brake(struct run *r, int64_t n, bool limits, const char *own, char *why, size_t len)
{
	struct split *sp = r->e->split;
	int k = r->part.k;

	assert(sp && k >= 0 && k < sp->n);
	pthread_mutex_lock(&sp->mu);
	if (!sp->at[k]) {
		sp->at[k] = true;
		sp->held += n;
		sp->size += brake_size(r);
		sp->kept += r->stats.kept;
		sp->limits = sp->limits || limits;
		if (own[0]) {
			char msg[800];
			snprintf(msg, sizeof(msg), "partition %d/%d: %s", k, sp->n, own);
			why_add(sp->checks, sizeof(sp->checks), "%s", msg);
		}
		if (++sp->arrived == sp->expected)
			decide(sp);
	}
	while (!sp->decided && !r->e->stop) {
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += 200 * 1000000L;
		if (t.tv_nsec >= 1000000000L) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&sp->cv, &sp->mu, &t);
	}
	snprintf(why, len, "%s", sp->decided ? sp->verdict : "");
	bool decided = sp->decided;
	pthread_mutex_unlock(&sp->mu);
	if (!decided)
		return rerror_set(r->err, RC_ERR_CANCELLED,
		                  "stopped while waiting for the other partitions' brake decision");
	return RC_OK;
}

/* A partition's run has ended: if it never reached the decision, it is
 * counted there as ended early (the others hold). */
static void
split_leave(struct split *sp, int k, enum run_status status)
{
	pthread_mutex_lock(&sp->mu);
	if (!sp->at[k]) {
		char msg[48];
		sp->at[k] = true;
		/* a dry run or a run without deletes decides nothing: not early */
		if (status != RUN_COMPLETED && status != RUN_HELD) {
			snprintf(msg, sizeof(msg), "%d/%d (%s)", k, sp->n,
			         store_run_status_name(status));
			why_add(sp->early, sizeof(sp->early), "%s", msg);
		}
		if (++sp->arrived == sp->expected)
			decide(sp);
	}
	pthread_mutex_unlock(&sp->mu);
}

/* A partition's engine heard its run's id: partition 0's is the split's. */
static void
on_part_start(void *ctx, int64_t run_id)
{
	struct part *p = ctx;
	struct split *sp = p->sp;

	if (p->opts.partition_k != 0)
		return;
	pthread_mutex_lock(&sp->mu);
	sp->first_id = run_id;
	pthread_cond_broadcast(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
	if (p->top->start_hook)
		p->top->start_hook(p->top->start_ctx, run_id);
}

static void *
part_main(void *arg)
{
	struct part *p = arg;

	p->rc =
	    engine_run_opts(p->e, &p->res, p->kind, p->trigger, p->resume_id, &p->opts, &p->err);
	split_leave(p->sp, p->opts.partition_k, p->res.run_id ? p->res.status : RUN_FAILED);
	if (p->opts.partition_k == 0) { /* it never began: nothing waits for it */
		pthread_mutex_lock(&p->sp->mu);
		if (p->sp->first_id == 0)
			p->sp->first_id = -1;
		pthread_cond_broadcast(&p->sp->cv);
		pthread_mutex_unlock(&p->sp->mu);
	}
	return NULL;
}

/* How bad a partition's end is, for the split's status: the worst wins
 * (report --merge's order). */
static int
status_rank(enum run_status s)
{
	switch (s) {
	case RUN_FAILED:
		return 5;
	case RUN_INTERRUPTED:
		return 4;
	case RUN_RUNNING:
		return 3;
	case RUN_CANCELLED:
		return 2;
	case RUN_HELD:
		return 1;
	default:
		return 0;
	}
}

/* Adds partition p's result into res. */
static void
result_add(struct engine_result *res, const struct engine_result *p, bool first)
{
	if (first || status_rank(p->status) > status_rank(res->status))
		res->status = p->status;
	res->kind = p->kind;
	res->mongo_count = first ? p->mongo_count
	                   : res->mongo_count < 0 || p->mongo_count < 0
	                       ? -1
	                       : res->mongo_count + p->mongo_count;
	res->opensearch_count = first ? p->opensearch_count
	                        : res->opensearch_count < 0 || p->opensearch_count < 0
	                            ? -1
	                            : res->opensearch_count + p->opensearch_count;
	res->missing += p->missing;
	res->orphans += p->orphans;
	res->stale += p->stale;
	res->skipped += p->skipped;
	res->repaired += p->repaired;
	res->deleted += p->deleted;
	res->failed += p->failed;
	res->duplicates += p->duplicates;
	res->conflicts += p->conflicts;
	res->skipped_newer += p->skipped_newer;
	res->kept += p->kept;
	res->held += p->held;
	res->reindexed += p->reindexed;
	res->orphans_kept += p->orphans_kept;
	res->full_write = res->full_write || p->full_write;
	/* the whole index was empty only when every partition's range was
	 * (one empty range is not an empty index: QA25 F6) */
	res->empty_index = first ? p->empty_index : res->empty_index && p->empty_index;
	res->not_resumed = res->not_resumed || p->not_resumed;
	if (!res->why[0] && p->why[0])
		snprintf(res->why, sizeof(res->why), "%s", p->why);
}

/* A finished partition's result, as journaled. */
static void
result_from_row(struct engine_result *res, const struct store_run *sr)
{
	memset(res, 0, sizeof(*res));
	result_from_run(res, sr);
	if (sr->status == RUN_HELD && sr->error)
		snprintf(res->why, sizeof(res->why), "%s", sr->error);
}

/* What the coordinator holds; released by coord_free. */
struct coord {
	struct engine *e;
	const struct config *cfg;
	struct rerror *err;
	struct store *store;
	struct lease *lease; /* the mirror's own lease: one run of it anywhere */
	enum run_kind kind;
	int n;
	int64_t split_of; /* the split resumed (0: a new one) */
	char **splits;    /* n - 1 split points */
	enum id_type type;
	struct part parts[RUN_SPLIT_MAX];
	struct split sp;
	bool whole; /* the ids cannot be cut: run whole */
};

static const char *
mirror_name(const struct config *cfg)
{
	return cfg->name ? cfg->name : "default";
}

rcode
split_cancel(struct store *s, int64_t split_of, int n, const char *why)
{
	rcode rc = RC_OK;

	for (int k = 0; rc == RC_OK && k < n && k < RUN_SPLIT_MAX; k++) {
		struct store_run *sr = NULL;
		int64_t id = 0;
		if ((rc = store_split_partition(s, &id, split_of, k)) || id == 0 ||
		    (rc = store_run_get(s, &sr, id)))
			continue;
		if (store_run_status_unfinished(sr->status)) {
			log_msg(LOG_WARN, id, "%s", why);
			rc = store_run_finish(s, id, RUN_CANCELLED, why);
		}
		store_run_free(sr);
	}
	return rc;
}

/* Cancels the mirror's unfinished runs of this kind that are not of split
 * keep (0: none), saying why: their cursors belong to another shape. */
static RC_MUST_CHECK rcode
cancel_others(struct coord *c, int64_t keep)
{
	struct store_unfinished *v = NULL;
	size_t n = 0;
	rcode rc = store_runs_unfinished(c->store, &v, &n, 1000);

	for (size_t i = 0; rc == RC_OK && i < n; i++) {
		struct store_run *sr = NULL;
		char why[400], was[64];
		if (strcmp(v[i].mirror, mirror_name(c->cfg)) ||
		    strcmp(v[i].kind, store_run_kind_name(c->kind)))
			continue;
		if ((rc = store_run_get(c->store, &sr, v[i].id)))
			break;
		if ((keep == 0 || sr->split_of != keep) && sr->split_of > 0 &&
		    sr->partition_n == c->n) {
			snprintf(why, sizeof(why),
			         "not resumed: its split run %" PRId64
			         " cannot be taken up (a partition of it failed, was cancelled, or "
			         "never began before it stopped); it is cancelled and a new split "
			         "run starts",
			         sr->split_of);
			log_msg(LOG_WARN, sr->id, "%s", why);
			rc = store_run_finish(c->store, sr->id, RUN_CANCELLED, why);
		} else if (keep == 0 || sr->split_of != keep) {
			if (sr->partition_n > 0)
				snprintf(was, sizeof(was), "partition %d/%d", sr->partition_k,
				         sr->partition_n);
			else
				snprintf(was, sizeof(was), "a whole run");
			snprintf(
			    why, sizeof(why),
			    "not resumed: RECONCILE_PARTITIONS=%d splits this mirror's runs into "
			    "%d partitions now, and this run was %s; it is cancelled and a new "
			    "split run starts",
			    c->n, c->n, was);
			log_msg(LOG_WARN, sr->id, "%s", why);
			rc = store_run_finish(c->store, sr->id, RUN_CANCELLED, why);
		}
		store_run_free(sr);
	}
	free(v);
	return rc ? rerror_set(c->err, rc, "journal: cannot look for unfinished runs") : RC_OK;
}

/* The split to resume, c->split_of: its partitions (unfinished: resumed,
 * finished: counted) and its journaled plan. A split with a partition
 * failed or cancelled, or without its whole plan, is not resumed (0). */
static RC_MUST_CHECK rcode
find_split(struct coord *c, int64_t split_of)
{
	struct store_run *sr[RUN_SPLIT_MAX] = {0};
	bool ok = true;
	rcode rc = RC_OK;

	for (int k = 0; rc == RC_OK && ok && k < c->n; k++) {
		int64_t id = 0;
		if ((rc = store_split_partition(c->store, &id, split_of, k)) ||
		    (id && (rc = store_run_get(c->store, &sr[k], id))))
			break;
		ok = sr[k] && sr[k]->partition_n == c->n && sr[k]->partition_type &&
		     sr[k]->status != RUN_FAILED && sr[k]->status != RUN_CANCELLED &&
		     (k == 0 || sr[k]->partition_lo) &&
		     !doc_id_type_parse(sr[k]->partition_type, &c->type);
	}
	for (int k = 1; rc == RC_OK && ok && k < c->n; k++)
		if ((c->splits[k - 1] = strdup(sr[k]->partition_lo)) == NULL)
			rc = RC_ERR_NOMEM;
	for (int k = 0; rc == RC_OK && ok && k < c->n; k++) {
		struct part *p = &c->parts[k];
		p->finished = !store_run_status_unfinished(sr[k]->status);
		p->resume_id = p->finished ? 0 : sr[k]->id;
		if (p->finished) {
			result_from_row(&p->res, sr[k]);
			/* its deletes were decided: they count in the whole run's */
			c->sp.held += sr[k]->deleted;
			c->sp.size += sr[k]->opensearch_count - sr[k]->kept > 0
			                  ? sr[k]->opensearch_count - sr[k]->kept
			                  : 0;
			c->sp.kept += sr[k]->kept;
		}
	}
	for (int k = 0; k < c->n; k++)
		store_run_free(sr[k]);
	if (rc)
		return rerror_set(c->err, rc, "journal: cannot read split run %" PRId64, split_of);
	if (ok) {
		c->split_of = split_of;
		log_info("split run %" PRId64 " of mirror %s: resuming its unfinished partitions",
		         split_of, mirror_name(c->cfg));
		return RC_OK;
	}
	for (int k = 0; k < c->n; k++) { /* not that one: a new split */
		free(c->splits[k]);
		c->splits[k] = NULL;
		c->parts[k].finished = false;
		c->parts[k].resume_id = -1;
		memset(&c->parts[k].res, 0, sizeof(c->parts[k].res));
	}
	c->sp.held = c->sp.size = c->sp.kept = 0;
	return RC_OK;
}

/* A new split's plan, from the collection as it is now. Several id
 * classes: c->whole (the error cleared: it is handled). */
static RC_MUST_CHECK rcode
new_plan(struct coord *c)
{
	struct run tmp = {.e = c->e, .cfg = c->cfg, .err = c->err};
	rcode rc = mongo_open(&tmp.mongo, c->cfg->mongodb_uri, c->cfg->mongodb_database,
	                      c->cfg->mongodb_collection, c->err);

	tmp.part.n = c->n;
	if (rc == RC_OK)
		rc = mongo_set_filter(tmp.mongo, c->cfg->filter, c->err);
	if (rc == RC_OK)
		rc = partition_plan(&tmp, c->splits, &c->type);
	if (rc == RC_ERR_CONFIG) {
		log_warn(
		    "mirror %s: RECONCILE_PARTITIONS=%d, but the run is not split: %s; it runs "
		    "whole",
		    mirror_name(c->cfg), c->n, c->err->message);
		*c->err = (struct rerror){0}; /* handled: never the cause of a later one */
		c->whole = true;
		rc = RC_OK;
	}
	mongo_free(tmp.mongo);
	return rc;
}

/* Starts partition k's thread. */
static RC_MUST_CHECK rcode
start_part(struct coord *c, int k, const struct engine_opts *opts, const char *trigger)
{
	struct part *p = &c->parts[k];
	rcode rc = RC_OK;

	if (c->e->sub[k] == NULL && (rc = engine_new(&c->e->sub[k], c->cfg, c->err)))
		return rc;
	p->e = c->e->sub[k];
	p->e->split = &c->sp;
	p->e->stop = c->e->stop;
	engine_set_start_hook(p->e, on_part_start, p);
	p->sp = &c->sp;
	p->top = c->e;
	p->kind = c->kind;
	p->trigger = trigger;
	p->opts = *opts;
	p->opts.partition_k = k;
	p->opts.partition_n = c->n;
	p->opts.split = true;
	p->opts.split_of = c->split_of > 0 ? c->split_of : (k == 0 ? 0 : c->sp.first_id);
	p->opts.split_points = (const char *const *)c->splits;
	p->opts.split_type = (int)c->type;
	if (pthread_create(&p->thread, NULL, part_main, p))
		return rerror_set(c->err, RC_ERR_INTERNAL, "cannot start partition %d's thread", k);
	p->started = true;
	return RC_OK;
}

/* Runs the partitions: a new split's partition 0 first (its run id is the
 * split's), then the rest at once. */
static RC_MUST_CHECK rcode
run_parts(struct coord *c, const struct engine_opts *opts, const char *trigger)
{
	rcode rc = RC_OK;

	for (int k = 0; k < c->n; k++)
		c->sp.expected += !c->parts[k].finished;
	c->e->n_sub = c->n > c->e->n_sub ? c->n : c->e->n_sub;
	c->e->splitting = true;
	if (c->parts[0].finished && c->e->start_hook) /* the split's id all the same */
		c->e->start_hook(c->e->start_ctx, c->split_of);
	if (c->split_of)
		lease_set_run(c->lease, c->split_of);
	for (int k = 0; rc == RC_OK && k < c->n; k++) {
		if (c->parts[k].finished)
			continue;
		if (k > 0 && c->split_of == 0) {
			pthread_mutex_lock(&c->sp.mu);
			while (c->sp.first_id == 0)
				pthread_cond_wait(&c->sp.cv, &c->sp.mu);
			pthread_mutex_unlock(&c->sp.mu);
			if (c->sp.first_id < 0)
				break; /* partition 0 never began: its error is the run's */
			if (k == 1)
				lease_set_run(c->lease, c->sp.first_id);
		}
		rc = start_part(c, k, opts, trigger);
	}
	if (rc) { /* the partitions that run stop, and are waited for */
		for (int k = 0; k < c->n; k++)
			if (c->parts[k].started)
				engine_stop(c->parts[k].e, false);
		pthread_mutex_lock(&c->sp.mu);
		c->sp.expected = 0;
		pthread_mutex_unlock(&c->sp.mu);
	}
	for (int k = 0; k < c->n; k++)
		if (c->parts[k].started)
			pthread_join(c->parts[k].thread, NULL);
	c->e->splitting = false;
	return rc;
}

/* A held split's why speaks for the whole run: a partition's text begins
 * "held N orphan deletes, nothing deleted: " with its own N (QA25 F7). */
static void
held_why(struct engine_result *res)
{
	static const char head[] = "nothing deleted: ";
	const char *rest = strstr(res->why, head);
	char why[sizeof(res->why)];

	if (res->status != RUN_HELD || rest == NULL || strncmp(res->why, "held ", 5) != 0)
		return;
	snprintf(why, sizeof(why), "held %" PRId64 " orphan deletes (all partitions), %s",
	         res->held, rest);
	snprintf(res->why, sizeof(res->why), "%s", why);
}

/* The partitions' results into res, and the first error (one of a server
 * or the journal before a stop) into err. */
static rcode
combine(struct coord *c, struct engine_result *res, rcode rc)
{
	bool first = true;
	int bad = -1;

	memset(res, 0, sizeof(*res));
	for (int k = 0; k < c->n; k++) {
		struct part *p = &c->parts[k];
		if (!p->started && !p->finished)
			continue;
		if (p->res.run_id || p->finished) {
			result_add(res, &p->res, first);
			first = false;
		}
		if (p->started && p->rc &&
		    (bad < 0 ||
		     (c->parts[bad].rc == RC_ERR_CANCELLED && p->rc != RC_ERR_CANCELLED)))
			bad = k;
	}
	res->run_id = c->parts[0].res.run_id ? c->parts[0].res.run_id : c->split_of;
	held_why(res);
	if (rc)
		return rc;
	if (bad < 0)
		return RC_OK;
	char run[40] = "";
	if (c->parts[bad].res.run_id)
		snprintf(run, sizeof(run), " (run %" PRId64 ")", c->parts[bad].res.run_id);
	return rerror_set(c->err, c->parts[bad].rc, "partition %d/%d%s: %s", bad, c->n, run,
	                  c->parts[bad].err.message[0] ? c->parts[bad].err.message
	                                               : rcode_name(c->parts[bad].rc));
}

/* Hands the lease and the journal lock back (a run that goes on whole
 * takes its own). */
static void
coord_release(struct coord *c)
{
	lease_release(c->lease); /* given back before the journal lock */
	c->lease = NULL;
	store_free(c->store); /* releases the journal lock */
	c->store = NULL;
}

/* The mirror's lease was lost (lease.c's heartbeat thread): every
 * partition stops as interrupted. */
static void
split_lease_lost(void *ctx)
{
	engine_stop(ctx, false);
}

static void
coord_free(struct coord *c)
{
	for (int k = 0; c->splits && k < c->n; k++)
		free(c->splits[k]);
	free(c->splits);
	coord_release(c);
	pthread_cond_destroy(&c->sp.cv);
	pthread_mutex_destroy(&c->sp.mu);
}

/* The given run is a partition of a split run into another number of
 * partitions: that split's unfinished runs are cancelled, saying why; with
 * resume_only nothing else runs (res->not_resumed), else a new split. */
static RC_MUST_CHECK rcode
not_resumed_split(struct coord *c, struct engine_result *res, const struct store_run *given,
                  const struct engine_opts *opts)
{
	char why[600];
	rcode rc;

	snprintf(why, sizeof(why),
	         "not resumed: run %" PRId64 " is partition %d/%d of split run %" PRId64
	         ", and RECONCILE_PARTITIONS is %d now; its split is cancelled and %s",
	         given->id, given->partition_k, given->partition_n, given->split_of, c->n,
	         opts->resume_only ? "nothing was sent; `reconciler check` starts a new run"
	                           : "a new split run starts");
	if ((rc = split_cancel(c->store, given->split_of, given->partition_n, why)))
		return rerror_set(c->err, rc, "journal: cannot cancel split run %" PRId64,
		                  given->split_of);
	if (opts->resume_only) {
		res->not_resumed = true;
		res->run_id = given->id;
		res->kind = given->kind;
		snprintf(res->why, sizeof(res->why), "%s", why);
	}
	return RC_OK;
}

rcode
split_run(struct engine *e, struct engine_result *res, enum run_kind kind, const char *trigger,
          int64_t resume_id, const struct engine_opts *opts, struct rerror *err)
{
	struct coord c = {
	    .e = e, .cfg = e->cfg, .err = err, .kind = kind, .n = (int)e->cfg->partitions};
	int64_t holder = 0, split_of = 0;
	struct store_run *given = NULL;
	rcode rc;

	memset(res, 0, sizeof(*res)); /* every way out says what ran: nothing yet */
	pthread_mutex_init(&c.sp.mu, NULL);
	pthread_cond_init(&c.sp.cv, NULL);
	c.sp.cfg = c.cfg;
	c.sp.n = c.n;
	for (int k = 0; k < c.n; k++)
		c.parts[k].resume_id = -1;
	if (!*c.cfg->opensearch_id_field) {
		rc =
		    rerror_set(err, RC_ERR_CONFIG,
		               "RECONCILE_PARTITIONS=%d needs OPENSEARCH_ID_FIELD (a keyword field "
		               "holding the id): a key range of _id cannot be searched; set it, or "
		               "RECONCILE_PARTITIONS=1",
		               c.n);
		goto out;
	}
	if ((c.splits = calloc((size_t)c.n, sizeof(*c.splits))) == NULL) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* the journal lock keeps this journal's other runs of the mirror out,
	 * the mirror's lease those of other journals and hosts (QA25 F3): a
	 * whole run, or a split into another P, anywhere */
	if ((rc = store_open(&c.store, c.cfg->state_db, err)) ||
	    (rc = store_lock(c.store, &holder, c.cfg->name, err)) ||
	    (rc = lease_acquire(&c.lease, c.cfg, split_lease_lost, e, err)))
		goto out;
	/* a given run: its split, or itself alone (a whole run, a partition
	 * of another shape: resumed as the run it is) */
	if (resume_id > 0) {
		if ((rc = store_run_get(c.store, &given, resume_id)) == RC_OK && given->split_of &&
		    given->partition_n == c.n) {
			split_of = given->split_of;
			c.kind = kind = given->kind;
		} else if (rc == RC_OK && given->split_of) {
			/* a partition of a split into another P: the whole split is
			 * cancelled (one partition resumed alone would leave the
			 * others' key ranges unread: QA25 F2) */
			c.kind = kind = given->kind;
			if ((rc = not_resumed_split(&c, res, given, opts)) || res->not_resumed)
				goto out;
			resume_id = 0;
		} else if (rc == RC_OK || rc == RC_ERR_NOTFOUND) {
			coord_release(&c); /* the run takes the lock and lease itself */
			rc = engine_run_one(e, res, kind, trigger, resume_id, opts, err);
			goto out;
		} else {
			rc = rerror_set(err, rc, "journal: cannot read run %" PRId64, resume_id);
			goto out;
		}
	} else if (resume_id == 0 && (rc = store_split_unfinished(c.store, &split_of,
	                                                          mirror_name(c.cfg), kind, c.n))) {
		rc = rerror_set(err, rc, "journal: cannot look for unfinished runs");
		goto out;
	}
	if (split_of > 0 && (rc = find_split(&c, split_of)))
		goto out;
	if (resume_id == 0 && (rc = cancel_others(&c, c.split_of)))
		goto out;
	if (c.split_of == 0 && (rc = new_plan(&c)))
		goto out;
	if (c.whole) {
		coord_release(&c);
		rc = engine_run_one(e, res, kind, trigger, resume_id, opts, err);
		goto out;
	}
	rc = combine(&c, res, run_parts(&c, opts, trigger));
	(void)lease_lost(c.lease, &rc, err); /* a lost lease stopped it: say why */
	if (res->run_id)
		log_info("split run %" PRId64
		         " of mirror %s (%d partitions) %s: `reconciler report "
		         "--merge%s%s %s` shows its partitions",
		         res->run_id, mirror_name(c.cfg), c.n, store_run_status_name(res->status),
		         c.cfg->name ? " --mirror " : "", c.cfg->name ? c.cfg->name : "",
		         c.cfg->state_db);
out:
	store_run_free(given);
	coord_free(&c);
	return rc;
}
