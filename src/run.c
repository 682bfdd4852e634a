/*
 * run.c: one run, end to end: begin or resume (journal lock, runs row),
 * count, the index's keys, re-send pending batches, the pass (pass.c) or the
 * full re-index (repair.c), finish. Any thread may read progress or cancel.
 *
 * A run's jobs live in files of their own, sharing struct run (run_int.h):
 *   run_begin.c    begins a run, or resumes one whose settings still hold
 *   run_setup.c    before the pass: peers on the index, counts, the keys
 *   run_read.c     the pass's reads: MongoDB's ids, the index's pages (one
 *                  ahead), lookups, existence checks
 *   run_content.c  stale by content (RECONCILE_COMPARE=content)
 *   run_sink.c     the pass's results: drift journaled, repairs queued, the
 *                  cursor moved (the commit protocol)
 *   run_brake.c    the brake on deletes, decided once the pass has ended
 *
 * Targeted runs (kind ids): given ids looked up on both sides, or the
 * documents changed since a time looked up in the index; the same sink,
 * the same brake; never resumed, so a mirror's interrupted check is left as
 * it is.
 */
#include "run_int.h"

#include "lease.h"
#include "log.h"
#include "report.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const phase_names[] = {
    [RUN_PHASE_STARTING] = "starting", [RUN_PHASE_COUNTING] = "counting",
    [RUN_PHASE_DIFFING] = "diffing",   [RUN_PHASE_REPAIRING] = "repairing",
    [RUN_PHASE_INDEXING] = "indexing", [RUN_PHASE_FINISHING] = "finishing",
    [RUN_PHASE_DONE] = "done",
};

const char *
run_phase_name(enum run_phase p)
{
	return p <= RUN_PHASE_DONE ? phase_names[p] : "unknown";
}

/* The phase a journal word names; false (out unchanged) when none does. */
static bool
phase_parse(const char *word, enum run_phase *out)
{
	for (size_t i = 0; word && i < sizeof(phase_names) / sizeof(*phase_names); i++)
		if (strcmp(word, phase_names[i]) == 0) {
			*out = (enum run_phase)i;
			return true;
		}
	return false;
}

rcode
engine_new(struct engine **out, const struct config *cfg, struct rerror *err)
{
	struct engine *e;

	*out = NULL;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	e->cfg = cfg;
	pthread_mutex_init(&e->lock, NULL);
	*out = e;
	return RC_OK;
}

void
engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	for (int i = 0; i < RUN_SPLIT_MAX; i++)
		engine_free(e->sub[i]);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

void
engine_stop(struct engine *e, bool cancel)
{
	e->stop = cancel ? 2 : 1;
	for (int i = 0; i < e->n_sub; i++) /* a split run's partitions */
		e->sub[i]->stop = cancel ? 2 : 1;
}

void
engine_clear_stop(struct engine *e)
{
	e->stop = 0;
	for (int i = 0; i < e->n_sub; i++)
		e->sub[i]->stop = 0;
}

void
engine_set_start_hook(struct engine *e, void (*fn)(void *ctx, int64_t run_id), void *ctx)
{
	e->start_hook = fn;
	e->start_ctx = ctx;
}

void
engine_set_progress_output(struct engine *e, bool on)
{
	e->progress_output = on;
}

/* A split run's progress: its partitions' counts summed, the first one
 * running's id and kind, the earliest phase, the earliest start. */
static void
progress_sum(struct engine *e, struct engine_progress *out)
{
	struct engine_progress p;

	memset(out, 0, sizeof(*out));
	for (int i = 0; i < e->n_sub; i++) {
		engine_progress(e->sub[i], &p);
		if (!p.active)
			continue;
		if (!out->active) {
			*out = p;
			continue;
		}
		out->mongo_count = out->mongo_count < 0 || p.mongo_count < 0
		                       ? -1
		                       : out->mongo_count + p.mongo_count;
		out->opensearch_count = out->opensearch_count < 0 || p.opensearch_count < 0
		                            ? -1
		                            : out->opensearch_count + p.opensearch_count;
		out->compared += p.compared;
		out->missing += p.missing;
		out->orphans += p.orphans;
		out->stale += p.stale;
		out->skipped += p.skipped;
		out->repaired += p.repaired;
		out->deleted += p.deleted;
		out->failed += p.failed;
		out->reindexed += p.reindexed;
		out->phase = p.phase < out->phase ? p.phase : out->phase;
		if (p.started_ms < out->started_ms) {
			out->started_ms = p.started_ms;
			out->elapsed_ms = p.elapsed_ms;
		}
	}
}

void
engine_progress(struct engine *e, struct engine_progress *out)
{
	if (e->splitting) {
		progress_sum(e, out);
		return;
	}
	pthread_mutex_lock(&e->lock);
	*out = e->progress;
	if (out->active)
		out->elapsed_ms = util_now_ms() - out->started_ms;
	pthread_mutex_unlock(&e->lock);
}

static void
progress_print(struct engine *e, bool final)
{
	struct engine_progress p;
	int64_t now = util_mono_ms();
	double secs, rate;

	if (!e->progress_output || (!final && now - e->last_print_ms < 1000))
		return;
	e->last_print_ms = now;
	engine_progress(e, &p);
	secs = p.elapsed_ms / 1000.0;
	rate = secs > 0 ? (double)p.compared / secs : 0;
	char eta[32] = "-";
	if (rate > 0 && p.mongo_count > p.compared && p.phase == RUN_PHASE_DIFFING)
		snprintf(eta, sizeof(eta), "%.0fs", (double)(p.mongo_count - p.compared) / rate);
	/* a full re-index writes documents, it repairs no drift: said so */
	fprintf(stderr,
	        "\r\033[Krun %" PRId64 " %-9s compared %" PRId64 "/%" PRId64 " missing %" PRId64
	        " orphans %" PRId64 " stale %" PRId64 " %s %" PRId64 " deleted %" PRId64
	        " failed %" PRId64 " %.0f ids/s ETA %s%s",
	        p.run_id, run_phase_name(p.phase), p.compared,
	        p.mongo_count < 0 ? 0 : p.mongo_count, p.missing, p.orphans, p.stale,
	        p.reindexed ? "reindexed" : "repaired", p.reindexed ? p.reindexed : p.repaired,
	        p.deleted, p.failed, rate, eta, final ? "\n" : "");
	fflush(stderr);
}

/* The journal computes a running run's counters from its rows, so reading
 * them costs O(run): progress reads them at most every PROGRESS_SYNC_MS and
 * at most 1/PROGRESS_SYNC_SHARE of the time (a read per committed batch made
 * a 1M-document full re-index spend a third of its CPU here). */
#define PROGRESS_SYNC_MS    500
#define PROGRESS_SYNC_SHARE 20
/* but never more than this apart: a run's counts may lag this much */
#define PROGRESS_SYNC_MAX_MS 2000

/* Copies the journal's counters into the live progress: the position at
 * once, the counters when due or `final` (the run's end). */
void
run_progress_sync(struct run *r, bool final)
{
	struct store_run *sr = NULL;

	pthread_mutex_lock(&r->e->lock);
	r->e->progress.compared = r->compared;
	pthread_mutex_unlock(&r->e->lock);
	if (!final && !util_throttle_due(&r->progress_due))
		return;
	int64_t t0 = util_mono_ms();
	rcode rc = store_run_get(r->store, &sr, r->id);
	util_throttle_done(&r->progress_due, t0, PROGRESS_SYNC_MS, PROGRESS_SYNC_SHARE,
	                   PROGRESS_SYNC_MAX_MS);
	if (rc)
		return;
	pthread_mutex_lock(&r->e->lock);
	struct engine_progress *p = &r->e->progress;
	p->mongo_count = sr->mongo_count;
	p->opensearch_count = sr->opensearch_count;
	p->missing = sr->missing;
	p->orphans = sr->orphans;
	p->stale = sr->stale;
	p->skipped = sr->skipped;
	p->repaired = sr->repaired;
	p->reindexed = sr->reindexed;
	p->deleted = sr->deleted;
	p->failed = sr->failed;
	p->compared = r->compared;
	(void)phase_parse(sr->phase, &p->phase); /* every word is the table's */
	pthread_mutex_unlock(&r->e->lock);
	store_run_free(sr);
	progress_print(r->e, false);
}

rcode
run_set_phase(struct run *r, enum run_phase phase)
{
	rcode rc = store_run_phase(r->store, r->id, run_phase_name(phase));

	pthread_mutex_lock(&r->e->lock);
	r->e->progress.phase = phase;
	pthread_mutex_unlock(&r->e->lock);
	if (rc)
		rerror_set(r->err, rc, "journal: cannot record phase %s", run_phase_name(phase));
	return rc;
}

/* Journals an error row and logs it; returns rc unchanged (a pass-through
 * for `return journal_error(...)`, so its result may be dropped). */
static rcode
journal_error(struct run *r, rcode rc, int64_t batch_no, const char *doc_id, enum run_phase phase,
              const char *source, const char *message)
{
	log_msg(LOG_ERROR, r->id, "%s: %s", run_phase_name(phase), message);
	if (store_error(r->store, r->id, batch_no, doc_id, run_phase_name(phase), source,
	                rcode_name(rc), message))
		log_msg(LOG_WARN, r->id, "journal: cannot record the error above");
	return rc;
}

static void
on_repair_commit(void *ctx)
{
	struct run *r = ctx;

	if (r->full)
		r->compared = r->rp.compared;
	run_progress_sync(r, false);
}

/* Ids per range of the summaries (docs/ENGINE.md, "Verifying by range
 * summaries"): at most a chunk. */
#define RANGE_IDS 1024

static RC_MUST_CHECK rcode
pass_diff(struct run *r)
{
	struct pass_opts o = {.chunk_size = r->cfg->chunk_size,
	                      .compare_versions = *r->cfg->version_field != '\0',
	                      .compare_content = r->content.on,
	                      .index_missing = r->index_missing,
	                      .write_index = r->write_index,
	                      .routing_rule = *r->cfg->routing_field || transform_scripted(r->tf),
	                      .keep_orphans = *r->cfg->opensearch_keep_query != '\0',
	                      .filtered = mongo_filtered(r->mongo),
	                      .summaries_fallback = r->cfg->verify == VERIFY_AUTO,
	                      .range_size = RANGE_IDS,
	                      .cursor = r->cursor,
	                      .cursor_type = r->cursor_type,
	                      .seen = r->seen,
	                      .compared = r->compared,
	                      .stop = &r->e->stop,
	                      .stats = &r->stats,
	                      .ids = (const char *const *)r->opts->ids,
	                      .n_ids = r->kind == RUN_IDS ? r->opts->n_ids : 0,
	                      .targeted = r->kind == RUN_IDS && r->opts->since};
	struct pass_io io = {.ctx = r,
	                     .mongo_next = read_mongo_next,
	                     .on_unsafe = sink_on_unsafe,
	                     .index_page = read_index_page,
	                     .index_lookup = read_index_lookup,
	                     .mongo_exists = read_mongo_exists,
	                     .mongo_other = read_mongo_other,
	                     .mongo_has_type = read_mongo_has_type,
	                     .mongo_lookup = read_mongo_lookup,
	                     .rule_routing = sink_rule_routing,
	                     .kept_orphans = read_kept_orphans,
	                     .on_drift = sink_on_drift,
	                     .on_chunk = sink_on_chunk,
	                     .content_differs = content_differs,
	                     .index_summaries = read_index_summaries,
	                     .index_range = read_index_range,
	                     .on_verify_merge = read_verify_merge};
	/* RECONCILE_VERIFY: summaries where the mirror qualifies (a targeted
	 * run looks its ids up) */
	rcode rc = r->kind == RUN_IDS ? RC_OK : setup_verify(r);

	o.summaries = r->verify_summary;
	/* by content, the stream reads whole documents: the chunk's are at
	 * hand when its copies are compared, and no second query is needed */
	if (rc == RC_OK && r->kind == RUN_IDS && r->opts->since)
		rc = mongo_scan_open_since(&r->scan, r->mongo, r->cfg->version_field,
		                           r->opts->since_ms, (int)r->cfg->chunk_size, r->err);
	else if (rc == RC_OK && r->kind != RUN_IDS)
		rc = mongo_scan_open(&r->scan, r->mongo, r->cursor, r->cursor_type,
		                     r->cfg->version_field, r->content.on, (int)r->cfg->chunk_size,
		                     true, r->err);
	if (rc == RC_OK)
		rc = pass_run(&o, &io, r->err);
	content_report(r);
	content_stash_free(&r->content);
	read_prefetch_free(&r->pre); /* a page asked ahead and not needed: dropped */
	if (rc == RC_OK && !r->e->stop) {
		r->pass_done = true;
		rc = sink_flush(r);
	}
	if (rc == RC_OK && !r->e->stop && !r->dry_run)
		rc = brake_decide(r);
	return rc;
}

/* Errors of a server, the network or the journal (a full disk, a lock held
 * too long) leave the run resumable: its committed batches are whole, so
 * it ends interrupted and continues from them once the cause is gone,
 * whether or not its end could be written. */
static bool
resumable(rcode rc)
{
	return rc == RC_ERR_MONGO || rc == RC_ERR_OPENSEARCH || rc == RC_ERR_RETRY ||
	       rc == RC_ERR_CANCELLED || rc == RC_ERR_STORE;
}

/* A warning that does not stop the run: logged, and journaled as a
 * `warning` event (a journal that refuses it is only logged). */
static void
warn_journaled(struct run *r, const char *msg)
{
	log_msg(LOG_WARN, r->id, "%s", msg);
	if (store_event(r->store, r->id, "warning", msg))
		log_msg(LOG_ERROR, r->id, "journal: cannot record a warning");
}

/* With OPENSEARCH_QUERY the body written must match it, or the mirror
 * cannot see its own repair and finds the document missing again next run.
 * After a check that wrote: one lookup (under the query) of up to 100 of
 * the documents it indexed, and a warning when some are not found. Not
 * fatal, and not exhaustive: a sample says a transform forgets the field. */
static void
check_query_match(struct run *r)
{
	static const enum drift_kind kinds[] = {DRIFT_MISSING, DRIFT_STALE};
	const char *ids[100];
	cJSON *rows[2] = {NULL, NULL}, *row;
	struct idlist found = {0};
	struct rerror e = {0};
	size_t n = 0, seen = 0;

	if (!*r->cfg->opensearch_query || r->dry_run || r->full)
		return;
	for (int k = 0; k < 2; k++) {
		if (report_ids(r->store, &rows[k], r->id, &kinds[k], NULL, 100))
			continue;
		cJSON_ArrayForEach(row, rows[k])
		{
			cJSON *id = cJSON_GetObjectItem(row, "id");
			cJSON *st = cJSON_GetObjectItem(row, "status");
			if (n < 100 && cJSON_IsString(id) && cJSON_IsString(st) &&
			    strcmp(st->valuestring, "done") == 0)
				ids[n++] = id->valuestring;
		}
	}
	if (n && opensearch_lookup(r->os, &found, &r->keys, ids, n, &e) == RC_OK) {
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < found.n; j++)
				if (strcmp(ids[i], idlist_id(&found, j)) == 0) {
					seen++;
					break;
				}
		if (seen < n) {
			char msg[600];
			snprintf(
			    msg, sizeof(msg),
			    "%zu of %zu documents this run indexed (a sample) do not match "
			    "OPENSEARCH_QUERY: the body written must hold what the query selects "
			    "(the transform writes it, docs/TRANSFORM.md), or the next run finds "
			    "them missing again",
			    n - seen, n);
			warn_journaled(r, msg);
		}
	}
	idlist_free(&found);
	cJSON_Delete(rows[0]);
	cJSON_Delete(rows[1]);
}

/* For the repair side: exists[i] when a document matching the filter holds
 * texts[i] (one outside the filter has left it: still an orphan). */
static RC_MUST_CHECK rcode
repair_exists(void *ctx, const char *const *texts, size_t n, bool *exists, struct rerror *err)
{
	return read_mongo_exists(ctx, texts, n, exists, NULL, err);
}

/* The run's repair side, once the servers are open. */
static void
repair_setup(struct run *r)
{
	struct repair *rp = &r->rp;

	rp->cfg = r->cfg;
	rp->store = r->store;
	rp->mongo = r->mongo;
	rp->os = r->os;
	rp->err = r->err;
	rp->stop = &r->e->stop;
	rp->run_id = r->id;
	rp->id_field = r->id_field;
	rp->keys = &r->keys;
	rp->write_index = r->write_index;
	rp->full = r->full;
	rp->as_missing = r->full_write && store_run_kind_checks(r->kind);
	rp->tf = r->tf;
	rp->kept = &r->stats.kept;
	rp->point_max = r->kind == RUN_IDS ? POINT_QUERIES_MAX : 0;
	rp->on_commit = on_repair_commit;
	rp->on_commit_ctx = r; /* also mongo_exists' */
	rp->mongo_exists = repair_exists;
	/* a full run's cursor moves with its batches, in the repair side */
	rp->compared = r->compared;
	rp->seen = r->seen;
	rp->cursor = r->full ? r->cursor : NULL;
	rp->cursor_type = r->cursor_type;
	if (r->full)
		r->cursor = NULL;
}

rcode
engine_run(struct engine *e, struct engine_result *res, enum run_kind kind, const char *trigger,
           int64_t resume_id, struct rerror *err)
{
	return engine_run_opts(e, res, kind, trigger, resume_id, NULL, err);
}

rcode
engine_opts_check(const struct config *cfg, const struct engine_opts *o, struct rerror *err)
{
	if (o->since && o->ids)
		return rerror_set(err, RC_ERR_CONFIG, "give ids or since, not both");
	if (o->since && !*cfg->version_field)
		return rerror_set(err, RC_ERR_CONFIG,
		                  "since needs RECONCILE_VERSION_FIELD (mirror %s has none): it "
		                  "selects documents by their version field",
		                  cfg->name ? cfg->name : "default");
	if (o->since)
		return RC_OK;
	if (o->n_ids == 0)
		return rerror_set(err, RC_ERR_CONFIG, "no ids given");
	if (o->n_ids > ENGINE_IDS_MAX)
		return rerror_set(err, RC_ERR_CONFIG,
		                  "more than %d ids given: that is the most one targeted run "
		                  "takes (a larger set is a job for a full check)",
		                  ENGINE_IDS_MAX);
	for (size_t i = 0; i < o->n_ids; i++) {
		size_t len = o->ids[i] ? strlen(o->ids[i]) : 0;
		if (len == 0)
			return rerror_set(err, RC_ERR_CONFIG, "id %zu is empty", i + 1);
		if (len > OPENSEARCH_ID_MAX_BYTES)
			return rerror_set(
			    err, RC_ERR_CONFIG,
			    "id %zu is %zu bytes, over OpenSearch's %d-byte _id limit", i + 1, len,
			    OPENSEARCH_ID_MAX_BYTES);
		/* no document id this reconciler carries is (ids are UTF-8 text
		 * in both servers), and the bytes would break the index query */
		if (!util_utf8_valid(o->ids[i], len))
			return rerror_set(err, RC_ERR_CONFIG, "id %zu is not valid UTF-8", i + 1);
	}
	return RC_OK;
}

rcode
engine_opts_copy(struct engine_opts *dst, const struct engine_opts *src)
{
	*dst = *src;
	dst->ids = NULL;
	if (src->n_ids == 0)
		return RC_OK;
	dst->ids = calloc(src->n_ids, sizeof(*dst->ids));
	if (dst->ids == NULL)
		return RC_ERR_NOMEM;
	for (size_t i = 0; i < src->n_ids; i++)
		if ((dst->ids[i] = strdup(src->ids[i])) == NULL) {
			engine_opts_release(dst);
			return RC_ERR_NOMEM;
		}
	return RC_OK;
}

void
engine_opts_release(struct engine_opts *o)
{
	for (size_t i = 0; o->ids && i < o->n_ids; i++)
		free(o->ids[i]);
	free(o->ids);
	*o = (struct engine_opts){0};
}

static int
cmp_text(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* o with each id once, so the lookups hand each copy over once: uniq's ids
 * are o's texts, sorted and distinct, in an array of its own. */
static RC_MUST_CHECK rcode
ids_distinct(struct engine_opts *uniq, const struct engine_opts *o, struct rerror *err)
{
	size_t k = 0;

	*uniq = *o;
	uniq->ids = NULL;
	if (o->n_ids == 0)
		return RC_OK;
	uniq->ids = malloc(o->n_ids * sizeof(*uniq->ids));
	if (uniq->ids == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	memcpy(uniq->ids, o->ids, o->n_ids * sizeof(*uniq->ids));
	qsort(uniq->ids, uniq->n_ids, sizeof(*uniq->ids), cmp_text);
	for (size_t i = 0; i < uniq->n_ids; i++)
		if (k == 0 || strcmp(uniq->ids[k - 1], uniq->ids[i]))
			uniq->ids[k++] = uniq->ids[i];
	uniq->n_ids = k;
	return RC_OK;
}

/* The lease was lost (lease.c's heartbeat thread): the run stops as
 * interrupted, and finish says why (lease_lost). */
static void
lease_lost_stop(void *ctx)
{
	engine_stop(ctx, false);
}

/* What a run holds before it begins: the script (one that does not
 * compile stops here, before any run is begun), the journal and its lock.
 * Released by release_run, whatever of it was taken. */
static RC_MUST_CHECK rcode
open_run(struct run *r, enum run_kind kind, int64_t resume_id)
{
	int64_t holder = 0;
	char part[32] = "";
	rcode rc = transform_new(&r->tf, r->cfg, r->err);

	if (rc == RC_OK)
		rc = store_open(&r->store, r->cfg->state_db, r->err);
	/* a partition of a split run: its coordinator holds the lock */
	if (rc == RC_OK && r->e->split == NULL)
		rc = store_lock(r->store, &holder, r->cfg->name, r->err);
	if (rc == RC_OK)
		rc = partition_of_lease(r, kind, resume_id, part, sizeof(part));
	/* one run per mirror across journals and hosts (lease.c); the journal
	 * lock stays the first line, and nothing is begun without both */
	if (rc == RC_OK)
		rc = lease_acquire_part(&r->lease, r->cfg, *part ? part : NULL, lease_lost_stop,
		                        r->e, r->err);
	return rc;
}

/* What a targeted run was asked: the journal says it, not only the
 * caller's terminal. */
static void
journal_target(struct run *r)
{
	char what[600], iso[40];
	size_t at = 0;

	if (r->opts->since) {
		util_ms_to_iso(r->opts->since_ms, iso, sizeof(iso));
		snprintf(what, sizeof(what), "since %s: the documents whose %s is newer", iso,
		         r->cfg->version_field);
	} else {
		at = (size_t)snprintf(what, sizeof(what), "%zu ids:", r->opts->n_ids);
		for (size_t i = 0; i < r->opts->n_ids && at < sizeof(what); i++) {
			if (at + strlen(r->opts->ids[i]) + 8 > 300) {
				snprintf(what + at, sizeof(what) - at, " ...");
				break;
			}
			at +=
			    (size_t)snprintf(what + at, sizeof(what) - at, " %s", r->opts->ids[i]);
		}
	}
	util_utf8_clean(what);
	if (store_event(r->store, r->id, "target", what))
		log_msg(LOG_WARN, r->id, "journal: cannot record an event");
}

/* Settings that work, but not as one may expect: said in the run's
 * journal before it starts. */
static void
warn_settings(struct run *r)
{
	const struct config *cfg = r->cfg;
	char msg[600];

	if (r->kind != RUN_DRY_RUN && cfg->write_mode == WRITE_UPSERT && *cfg->pipeline) {
		/* verified on OpenSearch 2.19: an update runs no named pipeline */
		snprintf(msg, sizeof(msg),
		         "OPENSEARCH_PIPELINE=%.200s is not run by RECONCILE_WRITE_MODE=upsert: "
		         "OpenSearch runs no named pipeline on update actions, only the index's "
		         "index.default_pipeline; set that on the index, or write with "
		         "RECONCILE_WRITE_MODE=index",
		         cfg->pipeline);
		warn_journaled(r, msg);
	}
	if (r->kind == RUN_IDS)
		journal_target(r);
	if (r->kind == RUN_CATCHUP && *r->opts->catchup_gaps &&
	    store_event(r->store, r->id, "gaps", r->opts->catchup_gaps))
		log_msg(LOG_WARN, r->id, "journal: cannot record an event");
	if (r->kind != RUN_FULL && cfg->compare == COMPARE_CONTENT && *cfg->pipeline) {
		snprintf(
		    msg, sizeof(msg),
		    "RECONCILE_COMPARE=content compares the body before "
		    "OPENSEARCH_PIPELINE=%.200s: "
		    "if the pipeline changes or removes a field the body writes, every copy is "
		    "stale in every run (a pipeline that only adds fields is fine)",
		    cfg->pipeline);
		warn_journaled(r, msg);
	}
}

/* Before the servers: a resumed full run's batch numbers (those of the
 * batches that were in flight are reused), the live progress, the hook. */
static RC_MUST_CHECK rcode
prepare(struct run *r)
{
	struct engine *e = r->e;

	r->full = r->kind == RUN_FULL || r->full_write;
	r->dry_run = r->kind == RUN_DRY_RUN || r->opts->sample;
	if (r->full) {
		struct store_pending *p = NULL;
		size_t n = 0;
		rcode rc = store_batches_pending(r->store, r->id, &p, &n);
		/* the repair side owns them (repair_setup leaves them) */
		if (rc == RC_OK && n && (r->rp.reuse = malloc(n * sizeof(*r->rp.reuse))) == NULL)
			rc = RC_ERR_NOMEM;
		for (size_t i = 0; rc == RC_OK && i < n; i++)
			r->rp.reuse[r->rp.n_reuse++] = p[i].batch_no;
		free(p);
		if (rc)
			return rerror_set(r->err, rc, "journal: cannot read pending batches");
	}
	pthread_mutex_lock(&e->lock);
	memset(&e->progress, 0, sizeof(e->progress));
	e->progress.active = true;
	e->progress.run_id = r->id;
	e->progress.mongo_count = e->progress.opensearch_count = -1;
	e->progress.compared = r->compared;
	e->progress.started_ms = util_now_ms();
	e->progress.kind = r->opts->sample ? RUN_SAMPLE : r->kind; /* as journaled */
	e->progress.phase = RUN_PHASE_STARTING;
	pthread_mutex_unlock(&e->lock);
	if (e->start_hook)
		e->start_hook(e->start_ctx, r->id);
	return RC_OK;
}

/* Whether two MongoDB ids may share one index _id (42 and "42", an
 * ObjectId and its hex as a string): only with string ids and ids of
 * another type. The pass finds such conflicts; a stream written whole
 * would write both to one copy and say nothing. */
static RC_MUST_CHECK rcode
ids_may_conflict(struct run *r, bool *may)
{
	static const enum id_type others[] = {ID_OID, ID_INT, ID_DOUBLE, ID_DATE, ID_BOOL};
	bool has = false;
	rcode rc = mongo_has_type(r->mongo, ID_STRING, &has, r->err);

	*may = false;
	for (size_t i = 0; rc == RC_OK && has && !*may && i < sizeof(others) / sizeof(*others); i++)
		rc = mongo_has_type(r->mongo, others[i], may, r->err);
	return rc;
}

/* A check whose index holds no documents has nothing to compare: every
 * document is missing, and the pass would find each one, look it up and
 * fetch it again by id ($in: a scan per chunk on FerretDB; 1 m 46 s for
 * 60,000 documents where the full re-index took 5 s). It takes the full
 * re-index's path instead (repair.c as_missing), said in its log and
 * journal (a full_write event), and stays a check: each document is
 * journaled the missing drift it is, and it verified what a check
 * verifies, since an empty index has no orphan and no stale copy (string
 * ids beside ids of another type take the pass: it finds two that share
 * an index _id, ids_may_conflict). Only a new check: one resumed goes on as a pass from its cursor
 * (its batches carry their drift rows, so its pending ones are sent again as a check's are). */
static RC_MUST_CHECK rcode
empty_index_full(struct run *r)
{
	/* a partition's count is its key range's (QA25 F6) */
	const char *why =
	    r->part.n > 0 ? "this partition's key range of the index holds no documents: the "
	                    "check writes every document of the range straight from MongoDB's "
	                    "stream, as a full re-index does (no lookups, no fetch by id), each "
	                    "journaled missing"
	                  : "the index holds no documents: the check writes every document "
	                    "straight from MongoDB's stream, as a full re-index does (no lookups, "
	                    "no fetch by id), each journaled missing";

	bool may = false;
	rcode rc;

	/* RECONCILE_MIN_AGE_MS leaves documents that changed a moment ago to
	 * the live syncer: the pass judges their age, the stream would not */
	if (!store_run_kind_checks(r->kind) || r->full || r->resumed || r->os_count != 0 ||
	    r->cfg->min_age_ms > 0)
		return RC_OK;
	if ((rc = ids_may_conflict(r, &may)) || may)
		return rc; /* the pass, which finds them */
	r->full = r->full_write = true;
	r->content.on = false; /* no copy to compare */
	log_msg(LOG_INFO, r->id, "%s", why);
	if ((rc = store_event(r->store, r->id, "full_write", why)))
		return rerror_set(r->err, rc, "journal: cannot record the full re-index path");
	return RC_OK;
}

/* A resumed run whose index now holds nothing (deleted, or a cluster
 * restored empty while the run was down) goes on from its cursor: what it
 * wrote before the cursor is gone and this run will not see it. Said, with
 * what to do, where the user looks (log and journal). */
static RC_MUST_CHECK rcode
warn_index_emptied(struct run *r)
{
	const char *why = "the index holds no documents although this run wrote some before it "
	                  "was interrupted (the index was deleted or the cluster replaced "
	                  "meanwhile): the pass goes on from its cursor, so what it wrote before "
	                  "is not written again; run `reconciler check` after it";

	if (!r->resumed || r->cursor == NULL || r->os_count != 0 || r->dry_run)
		return RC_OK;
	log_msg(LOG_WARN, r->id, "%s", why);
	if (store_event(r->store, r->id, "warning", why))
		return rerror_set(r->err, RC_ERR_STORE, "journal: cannot record an event");
	return RC_OK;
}

/* The servers, what the run asks them first, the pending batches sent
 * again, and the pass (or the full re-index). */
static RC_MUST_CHECK rcode
run_steps(struct run *r)
{
	const struct config *cfg = r->cfg;
	rcode rc;

	if ((rc = mongo_open(&r->mongo, cfg->mongodb_uri, cfg->mongodb_database,
	                     cfg->mongodb_collection, r->err)) ||
	    (rc = mongo_set_filter(r->mongo, cfg->filter, r->err)) ||
	    (rc = opensearch_open(&r->os, cfg, r->err)) ||
	    /* a clause OpenSearch refuses fails the first lookup mid-pass
	     * (QA19 F3): refused here, before anything is written */
	    (rc = opensearch_check_queries(r->os, cfg, r->err)) || (rc = partition_setup(r)) ||
	    (rc = setup_check_peers(r)) || (rc = run_set_phase(r, RUN_PHASE_COUNTING)) ||
	    (rc = setup_count(r)) || (rc = setup_keys(r)) || (rc = partition_check_keys(r)) ||
	    (rc = warn_index_emptied(r)) || (rc = empty_index_full(r)))
		return rc;
	repair_setup(r);
	if (!r->dry_run && r->kind != RUN_IDS &&
	    ((rc = run_set_phase(r, RUN_PHASE_REPAIRING)) || (rc = repair_resend_pending(&r->rp))))
		return rc;
	if (!r->dry_run)
		setup_refresh(r); /* the pass must see what was re-sent, or it sends it again */
	if ((rc = run_set_phase(r, r->full ? RUN_PHASE_INDEXING : RUN_PHASE_DIFFING)))
		return rc;
	return r->full ? repair_full(&r->rp) : pass_diff(r);
}

/* How the run ended: stopped (interrupted or cancelled), completed or
 * held, or by its error: resumable, or failed. */
static enum run_status
end_status(const struct run *r, rcode rc)
{
	if (r->e->stop == 2)
		return RUN_CANCELLED;
	if (r->e->stop == 1)
		return RUN_INTERRUPTED;
	if (rc == RC_OK)
		return r->held ? RUN_HELD : RUN_COMPLETED;
	return resumable(rc) ? RUN_INTERRUPTED : RUN_FAILED;
}

void
result_from_run(struct engine_result *res, const struct store_run *sr)
{
	res->run_id = sr->id;
	res->status = sr->status;
	res->kind = sr->kind;
	res->mongo_count = sr->mongo_count;
	res->opensearch_count = sr->opensearch_count;
	res->missing = sr->missing;
	res->orphans = sr->orphans;
	res->stale = sr->stale;
	res->skipped = sr->skipped;
	res->repaired = sr->repaired;
	res->deleted = sr->deleted;
	res->failed = sr->failed;
	res->duplicates = sr->duplicates;
	res->conflicts = sr->conflicts;
	res->skipped_newer = sr->skipped_newer;
	res->full_write = sr->full_write;
	res->reindexed = sr->reindexed;
	res->orphans_kept = sr->orphans_kept;
	res->kept = sr->kept;
}

/* What the run found, as the journal has it now that it has ended. */
static void
result_copy(struct run *r, struct engine_result *res, enum run_status status)
{
	struct store_run *sr = NULL;

	if (store_run_get(r->store, &sr, r->id) == RC_OK) {
		result_from_run(res, sr);
		store_run_free(sr);
	}
	if (status == RUN_HELD) {
		res->held = r->n_held;
		snprintf(res->why, sizeof(res->why), "%s", r->why);
	}
}

int
engine_result_in_sync(const struct engine_result *res, rcode rc)
{
	if (rc != RC_OK || res->run_id == 0)
		return 0;
	if (res->kind == RUN_FULL)
		return -1; /* re-indexed, not verified */
	return res->missing + res->orphans + res->stale + res->duplicates + res->conflicts == 0;
}

void
engine_result_note(const struct engine_result *res, char *out, size_t len)
{
	size_t at = 0;

	*out = '\0';
	if (res->run_id == 0)
		return;
	if (res->kind == RUN_FULL)
		at += (size_t)snprintf(out + at, len - at,
		                       "re-indexed, not verified: a full re-index writes every "
		                       "document and does not look for drift (orphans and extra "
		                       "fields stay); a check verifies");
	else if (res->empty_index)
		at +=
		    (size_t)snprintf(out + at, len - at,
		                     "the index held no documents: the check wrote every document "
		                     "as a full re-index does");
	if (res->orphans_kept > 0 && at < len)
		snprintf(out + at, len - at,
		         "%s%" PRId64 " orphan%s not deleted: RECONCILE_ORPHANS=report (=delete "
		         "deletes them)",
		         at ? "; " : "", res->orphans_kept, res->orphans_kept == 1 ? "" : "s");
}

/* A run found and cancelled, not resumed (engine_opts.resume_only). */
static void
result_not_resumed(const struct run *r, struct engine_result *res)
{
	res->run_id = r->id;
	res->kind = r->kind;
	res->status = RUN_CANCELLED;
	res->not_resumed = true;
	snprintf(res->why, sizeof(res->why), "%s", r->why);
}

/* Said once at the end: how many documents the script left out. */
static void
journal_left_out(struct run *r)
{
	char msg[200];

	r->left_out += r->rp.left_out;
	r->rp.left_out = 0;
	if (r->left_out == 0)
		return;
	snprintf(msg, sizeof(msg),
	         "%" PRId64 " documents the transform leaves out of the index (returns nil):"
	         " not missing, not written",
	         r->left_out);
	log_msg(LOG_INFO, r->id, "%s", msg);
	if (store_event(r->store, r->id, "transform", msg))
		log_msg(LOG_WARN, r->id, "journal: cannot record an event");
}

/* What the transform writes, as a digest: the script's (its bytecode),
 * the field lists and renames. A copy judged in sync by version was
 * written by some transform; while this digest is the one a run last
 * compared every copy with, it is this one. */
static void
digest_transform(struct run *r)
{
	const char *parts[] = {transform_digest(r->tf), r->cfg->fields, r->cfg->exclude,
	                       r->cfg->rename};
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (size_t i = 0; i < sizeof(parts) / sizeof(*parts); i++) {
		for (const char *c = parts[i] ? parts[i] : ""; *c; c++)
			h = (h ^ (unsigned char)*c) * 1099511628211ULL;
		h = (h ^ 0xff) * 1099511628211ULL;
	}
	snprintf(r->digest, sizeof(r->digest), "%016" PRIx64, h);
}

/* RECONCILE_COMPARE=version reads no copy whose version is current, so a
 * transform that changed (a document now left out, a field renamed) is
 * not seen in copies written before. When the transform's digest is not
 * the one a run last compared every copy with (or none did), this pass
 * compares by content, once (docs/TRANSFORM.md). */
static RC_MUST_CHECK rcode
content_for_transform(struct run *r)
{
	char *last = NULL;
	rcode rc;

	digest_transform(r);
	if (r->content.on || !transform_active(r->tf) ||
	    (!store_run_kind_checks(r->kind) && r->kind != RUN_DRY_RUN))
		return RC_OK;
	if ((rc = store_transform_digest_last(r->store, &last, r->cfg->name)))
		return rerror_set(r->err, rc, "journal: cannot read the transform's digest");
	if (last == NULL || strcmp(last, r->digest) != 0) {
		const char *why = "the transform is not the one a run last compared every copy "
		                  "with: this pass compares each copy's content with what the "
		                  "transform writes (once; RECONCILE_COMPARE=version again after)";
		r->content.on = r->content.for_transform = true;
		log_msg(LOG_INFO, r->id, "%s", why);
		if (store_event(r->store, r->id, "transform", why))
			log_msg(LOG_WARN, r->id, "journal: cannot record an event");
	}
	free(last);
	return RC_OK;
}

/* A catch-up closes a gap in which documents may have been updated: with
 * no version field (RECONCILE_COMPARE=version then sees no stale copy) it
 * compares by content, or updates made during the gap would stay unseen
 * while the gap is said closed (QA22 F1). */
static void
content_for_catchup(struct run *r)
{
	const char *why = "a catch-up must find the documents updated during the gap, and the "
	                  "mirror has no RECONCILE_VERSION_FIELD to see them by: this run "
	                  "compares each copy's content (set RECONCILE_VERSION_FIELD for a "
	                  "cheaper catch-up)";

	if (r->kind != RUN_CATCHUP || r->content.on || *r->cfg->version_field)
		return;
	r->content.on = true;
	log_msg(LOG_INFO, r->id, "%s", why);
	if (store_event(r->store, r->id, "catchup", why))
		log_msg(LOG_WARN, r->id, "journal: cannot record an event");
}

/* After a completed run: the digest of the transform every copy now
 * matches, when the run compared them all (a content pass) or wrote them
 * all into an empty index, and left none behind (nothing kept or failed,
 * no leftover fields left, no copy left to a newer write, which was not
 * compared; a dry run: nothing found). */
static void
record_digest(struct run *r, const struct engine_result *res, enum run_status status)
{
	bool all =
	    (r->content.on && r->pass_done) || (r->full_write && store_run_kind_checks(r->kind));
	bool clean = res->failed == 0 && res->orphans_kept == 0 && r->content.kept == 0 &&
	             res->skipped_newer == 0 &&
	             (!r->dry_run || res->missing + res->stale + res->orphans == 0);

	if (status != RUN_COMPLETED || !all || !clean)
		return;
	if (store_run_transform_digest(r->store, r->id, r->digest))
		log_msg(LOG_WARN, r->id, "journal: cannot record the transform's digest");
}

/* The run's note for its log line: a partition that found its key range
 * of the index empty says so, not that the index was (QA25 F6). */
static void
partition_note(const struct run *r, const struct engine_result *res, char *out, size_t len)
{
	struct engine_result rest = *res;
	char more[600];

	if (r->part.n == 0 || !res->empty_index) {
		engine_result_note(res, out, len);
		return;
	}
	rest.empty_index = false;
	engine_result_note(&rest, more, sizeof(more));
	snprintf(out, len,
	         "this partition's key range of the index held no documents: it wrote "
	         "every document of the range as a full re-index does%s%s",
	         *more ? "; " : "", more);
}

/* The end of a run whose steps returned rc: its last checks, its status
 * and error journaled, res filled, the last progress. Returns the run's
 * rcode: rc, or why it did not complete (stopped, or its end unrecorded). */
static RC_MUST_CHECK rcode
finish(struct run *r, struct engine_result *res, rcode rc)
{
	struct engine *e = r->e;
	enum run_status status;
	char note[600];
	rcode frc;

	if (rc == RC_OK && !e->stop && r->cfg->mongo_count == MONGO_COUNT_PASS &&
	    store_run_counts(r->store, r->id, r->compared, r->os_count))
		log_msg(LOG_WARN, r->id, "journal: cannot record the pass's count");
	/* the orphans judged past the last chunk's cursor (the index's end) too */
	if (rc == RC_OK && !e->stop && r->stats.kept &&
	    store_run_kept(r->store, r->id, r->stats.kept))
		log_msg(LOG_WARN, r->id, "journal: cannot record the kept count");
	if (rc == RC_OK && !e->stop && r->stats.ranges_summarized + r->stats.ranges_descended &&
	    store_run_ranges(r->store, r->id, r->stats.ranges_summarized,
	                     r->stats.ranges_descended))
		log_msg(LOG_WARN, r->id, "journal: cannot record the ranges verified");
	if (r->os && !r->dry_run)
		setup_refresh(r);
	if (rc == RC_OK && !e->stop)
		check_query_match(r);
	/* a lost lease stopped the run (interrupted): say why */
	(void)lease_lost(r->lease, &rc, r->err);
	status = end_status(r, rc);
	if (rc && rc != RC_ERR_CANCELLED)
		journal_error(r, rc, -1, NULL, e->progress.phase, rcode_source(rc),
		              r->err->message);
	frc = store_run_finish(r->store, r->id, status,
	                       rc                   ? r->err->message
	                       : status == RUN_HELD ? r->why
	                                            : NULL);
	if (frc)
		log_msg(LOG_ERROR, r->id, "journal: cannot record the end of the run");
	result_copy(r, res, status);
	res->empty_index = r->full_write && store_run_kind_checks(r->kind);
	record_digest(r, res, status);
	run_progress_sync(r, true);
	progress_print(e, true);
	journal_left_out(r);
	partition_note(r, res, note, sizeof(note));
	log_msg(rc ? LOG_WARN : LOG_INFO, r->id,
	        "%s run %s: missing %" PRId64 ", orphans %" PRId64 ", stale %" PRId64
	        ", duplicates %" PRId64 ", conflicts %" PRId64 ", repaired %" PRId64
	        ", reindexed %" PRId64 ", deleted %" PRId64 ", failed %" PRId64
	        ", skipped_newer %" PRId64 ", kept by OPENSEARCH_KEEP_QUERY %" PRId64 "%s%s",
	        store_run_kind_name(r->opts->sample ? RUN_SAMPLE : r->kind),
	        store_run_status_name(status), res->missing, res->orphans, res->stale,
	        res->duplicates, res->conflicts, res->repaired, res->reindexed, res->deleted,
	        res->failed, res->skipped_newer, res->kept, *note ? "; " : "", note);
	if (rc == RC_OK && e->stop)
		return rerror_set(r->err, RC_ERR_CANCELLED, "run %" PRId64 " %s", r->id,
		                  store_run_status_name(status));
	if (rc == RC_OK && frc)
		return rerror_set(r->err, frc, "journal: cannot record the end of the run");
	return rc;
}

/* Everything a run held, whatever it got to (store_free releases the
 * lock); the progress says no run. */
static void
release_run(struct run *r)
{
	pthread_mutex_lock(&r->e->lock);
	r->e->progress.active = false;
	pthread_mutex_unlock(&r->e->lock);
	mongo_scan_free(r->scan);
	mongo_free(r->mongo);
	opensearch_free(r->os);
	idlist_free(&r->queued_cursor);
	repair_release(&r->rp);
	free(r->write_index);
	free(r->peers_count);
	free(r->cursor);
	free(r->id_field);
	partition_clear(&r->part);
	lease_release(r->lease); /* given back before the journal lock */
	store_free(r->store);    /* releases the journal lock */
	transform_free(r->tf);
}

rcode
engine_run_opts(struct engine *e, struct engine_result *res, enum run_kind kind,
                const char *trigger, int64_t resume_id, const struct engine_opts *opts,
                struct rerror *err)
{
	static const struct engine_opts none = {0};

	if (split_wanted(e, kind, opts ? opts : &none))
		return split_run(e, res, kind, trigger, resume_id, opts ? opts : &none, err);
	return engine_run_one(e, res, kind, trigger, resume_id, opts, err);
}

rcode
engine_run_one(struct engine *e, struct engine_result *res, enum run_kind kind, const char *trigger,
               int64_t resume_id, const struct engine_opts *opts, struct rerror *err)
{
	static const struct engine_opts none = {0};
	struct engine_opts uniq = {0};
	struct run r = {.e = e, .cfg = e->cfg, .err = err, .opts = opts ? opts : &none};
	rcode rc;

	/* a targeted run compares versions: its documents are looked up by id,
	 * not read whole from a stream */
	r.content.on = e->cfg->compare == COMPARE_CONTENT && kind != RUN_IDS;
	memset(res, 0, sizeof(*res));
	if (r.opts->partition_n > 0 && (kind == RUN_IDS || kind == RUN_FULL || r.opts->sample))
		return rerror_set(err, RC_ERR_CONFIG,
		                  "a partition is a check's or a dry run's, not a full re-index's "
		                  "nor a targeted run's");
	if (kind == RUN_IDS) {
		/* checked once more here: every way in gets the same answer */
		if ((rc = engine_opts_check(e->cfg, r.opts, err)) ||
		    (rc = ids_distinct(&uniq, r.opts, err)))
			return rc; /* nothing held yet */
		resume_id = -1;    /* a new run: an interrupted check stays resumable */
		r.opts = &uniq;
	}
	if ((rc = open_run(&r, kind, resume_id)) || (rc = begin_run(&r, kind, trigger, resume_id)))
		goto out;
	lease_set_run(r.lease, r.id); /* the lease names its holder's run */
	if (r.not_resumed) {
		result_not_resumed(&r, res);
		goto out;
	}
	r.why[0] = '\0'; /* the held reason's, from here on */
	warn_settings(&r);
	content_for_catchup(&r);
	if ((rc = content_for_transform(&r)) || (rc = prepare(&r)))
		goto out;
	rc = finish(&r, res, run_steps(&r));
out:
	release_run(&r);
	free(uniq.ids);
	return rc;
}

size_t
engine_warn_unknown_runs(struct store *s, const struct config_set *set)
{
	struct store_unfinished *v = NULL;
	size_t n = 0, shown = 0;

	if (store_runs_unfinished(s, &v, &n, 1000)) {
		log_warn("journal %s: cannot look for unfinished runs", set->global->state_db);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (config_set_find(set, v[i].mirror))
			continue;
		shown++;
		log_warn(
		    "run %" PRId64 " (%s) of mirror %s is left %s, and the configuration "
		    "defines no mirror %s: nothing resumes or closes it. Put the mirror back "
		    "under that name and run `reconciler resume %" PRId64
		    "`, or close it (docs/JOURNAL.md): "
		    "sqlite3 %s \"UPDATE runs SET status = 'cancelled', finished_at = "
		    "strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now'), error = 'mirror removed' WHERE "
		    "id = %" PRId64 "\"",
		    v[i].id, v[i].kind, v[i].mirror, v[i].status, v[i].mirror, v[i].id,
		    set->global->state_db, v[i].id);
	}
	free(v);
	return shown;
}
