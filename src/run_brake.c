/*
 * run_brake.c: the brake on deletes. Orphans are journaled pending but not
 * queued (held); only once the pass has ended does the run decide, on the
 * totals, whether to send them (under RECONCILE_MAX_DELETE_RATIO and
 * RECONCILE_MAX_DELETES, both streams as long as their counts said, or
 * released) or to keep them (status held, nothing deleted). Held deletes
 * live in the journal, not in memory; a run killed while sending them
 * resumes and sends the rest (docs/ENGINE.md#the-brake-on-deletes).
 */
#include "run_int.h"

#include "log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int
on_held(void *ctx, const struct store_drift *d)
{
	struct repair *rp = ctx;
	enum id_type t;

	if (doc_id_type_parse(d->id_type, &t))
		t = ID_STRING;
	return repair_queue(rp, d, t) != RC_OK;
}

/* QA11 F1: a peer on this mirror's index (or maybe on it: its cluster
 * did not answer) whose query differs from this one's as text may still
 * select the same documents. Asked when deletes are decided, so copies a
 * peer wrote during the pass count too: the documents of this mirror's
 * index that match both queries. Any, or a count that fails, and why[]
 * says so (the deletes are held); the run goes on either way (one
 * mirror's problem never stops another's repairs). */
static RC_MUST_CHECK rcode
peers_overlap(struct run *r, char *why, size_t len)
{
	const struct config_set *set = r->cfg->set;
	struct os_concrete *mine = NULL;
	size_t n_mine = 0;
	struct rerror perr = {0};
	rcode rc = RC_OK;

	why[0] = '\0';
	for (size_t i = 0; r->peers_count && i < set->n_mirrors && !why[0] && !rc; i++) {
		const struct config *p = set->mirrors[i];
		if (!r->peers_count[i])
			continue;
		if (mine == NULL &&
		    (rc = opensearch_concrete(r->os, &mine, &n_mine, NULL, &perr))) {
			if (rc != RC_ERR_NOMEM) /* held too */
				snprintf(
				    why, len,
				    "this mirror's index could not be resolved to check mirror "
				    "%s's opensearch_query against it (%.160s)",
				    p->name, perr.message);
			break;
		}
		for (size_t a = 0; a < n_mine && !why[0] && !rc; a++) {
			int64_t both = 0;
			rc = opensearch_count_shared(r->os, &both, mine[a].name,
			                             p->opensearch_query, &perr);
			if (rc && rc != RC_ERR_NOMEM)
				snprintf(
				    why, len,
				    "the documents mirror %s's opensearch_query shares with this "
				    "one's in index %s could not be counted (%.160s), so these "
				    "copies may be its documents",
				    p->name, mine[a].name, perr.message);
			else if (both > 0)
				snprintf(
				    why, len,
				    "%" PRId64 " documents of index %s match both this mirror's "
				    "opensearch_query and mirror %s's, so these copies may be its "
				    "documents: give each mirror a query that selects only its own",
				    both, mine[a].name, p->name);
		}
	}
	opensearch_concrete_free(mine, n_mine);
	return rc == RC_ERR_NOMEM ? rerror_set(r->err, rc, "out of memory") : RC_OK;
}

void
why_add(char *why, size_t len, const char *fmt, ...)
{
	size_t at = strlen(why);
	va_list ap;

	if (at + 3 >= len)
		return;
	if (at)
		at += (size_t)snprintf(why + at, len - at, "; ");
	va_start(ap, fmt);
	vsnprintf(why + at, len - at, fmt, ap);
	va_end(ap);
}

void
brake_limits(const struct config *cfg, int64_t n, int64_t size, int64_t kept, int share_of,
             char *why, size_t len)
{
	char kept_text[120] = "";

	if (kept > 0)
		snprintf(kept_text, sizeof(kept_text),
		         " (not counting %" PRId64 " OPENSEARCH_KEEP_QUERY kept)", kept);
	if ((double)n > cfg->max_delete_ratio * (double)size)
		why_add(why, len,
		        "%" PRId64 " orphans are %.1f%% of the index's %" PRId64
		        " documents%s, over RECONCILE_MAX_DELETE_RATIO=%g",
		        n, size > 0 ? 100.0 * (double)n / (double)size : 100.0, size, kept_text,
		        cfg->max_delete_ratio);
	/* a partition's share of the limit (its ratio is its own index count's) */
	int64_t max = share_of ? cfg->max_deletes / share_of : cfg->max_deletes;
	if (n > max && share_of)
		why_add(why, len,
		        "%" PRId64 " orphans, over this partition's share: %" PRId64
		        " = RECONCILE_MAX_DELETES %" PRId64 " / %d partitions",
		        n, max, cfg->max_deletes, share_of);
	else if (n > max)
		why_add(why, len, "%" PRId64 " orphans, over RECONCILE_MAX_DELETES=%" PRId64, n,
		        cfg->max_deletes);
}

/* What holds the run's deletes whatever the limits say (appended to why):
 * whether each side's stream read what its count said and whether the
 * collection is still there. Those are not a number a person judged when
 * releasing the limits: a collection renamed away during a released run
 * made every copy an orphan (QA), so they hold even then. */
static RC_MUST_CHECK rcode
brake_checks(struct run *r, char *why, size_t len)
{
	int64_t unsafe = 0;
	bool exists = true;

	/* asked again now: every orphan was proven absent from this collection */
	if (mongo_collection_exists(r->mongo, &exists, r->err))
		return r->err->code;
	if (!exists)
		why_add(why, len,
		        "the collection %s.%s does not exist any more (renamed or dropped during "
		        "the run?)",
		        r->cfg->mongodb_database, r->cfg->mongodb_collection);
	if (r->peer_unknown[0])
		why_add(why, len, "%s", r->peer_unknown);
	char overlap[400];
	if (peers_overlap(r, overlap, sizeof(overlap)))
		return r->err->code;
	if (overlap[0])
		why_add(why, len, "%s", overlap);
	if (r->kind == RUN_IDS)
		return RC_OK; /* looked up one by one: no stream to be short */
	if (store_run_unsafe_ids(r->store, r->id, &unsafe))
		return rerror_set(r->err, RC_ERR_STORE, "journal: cannot count unsafe ids");
	if (r->mongo_count >= 0 && r->compared + unsafe < r->mongo_count)
		why_add(why, len,
		        "the MongoDB id stream read %" PRId64
		        " ids, fewer than its count said (%" PRId64 ")",
		        r->compared + unsafe, r->mongo_count);
	if (!r->index_missing && r->stats.index_read + r->lacking < r->os_count)
		why_add(why, len,
		        "the index id stream read %" PRId64 " copies (+%" PRId64
		        " without the id field), fewer than its count said (%" PRId64 ")",
		        r->stats.index_read, r->lacking, r->os_count);
	return RC_OK;
}

/* The index's size without the copies OPENSEARCH_KEEP_QUERY kept: an
 * archive of 3000 made 60 deletes of 100 live copies look like 2% (QA19
 * F5). */
int64_t
brake_size(const struct run *r)
{
	return r->os_count - r->stats.kept > 0 ? r->os_count - r->stats.kept : 0;
}

/* Why the brake holds this run's n held orphan deletes ("" when it does
 * not): the limits (unless limits is false: released for the run), and,
 * always, brake_checks'. A partition of a split run of this process
 * (RECONCILE_PARTITIONS) waits for the others and takes the verdict on
 * the whole run's totals (run_split.c). */
static RC_MUST_CHECK rcode
brake_reasons(struct run *r, int64_t n, bool limits, char *why, size_t len)
{
	char own[700] = "";
	rcode rc;

	why[0] = '\0';
	if (r->e->split) {
		if (n > 0 && (rc = brake_checks(r, own, sizeof(own))))
			return rc;
		return split_brake(r, n, limits, own, why, len);
	}
	if (limits)
		brake_limits(r->cfg, n, brake_size(r), r->stats.kept, r->part.n, why, len);
	return brake_checks(r, why, len);
}

/* The end of a pass: sends the held orphan deletes, or keeps them all. */
rcode
brake_decide(struct run *r)
{
	int64_t n = 0, left;
	char reasons[700], release[300];
	rcode rc;

	if ((rc = store_held_count(r->store, r->id, &n)))
		return rerror_set(r->err, rc, "journal: cannot count held deletes");
	/* each partition of a split run is counted in the whole run's decision,
	 * with its deletes or without: judged or not, it says it is there */
	bool judge = r->brake == BRAKE_ON || r->brake == BRAKE_RELEASED;
	if (r->e->split && (rc = brake_reasons(r, judge ? n : 0, judge && r->brake == BRAKE_ON,
	                                       reasons, sizeof(reasons))))
		return rc;
	if (n == 0)
		return RC_OK;
	/* said once, before deciding changes it: decided now, or on resume */
	const char *how = r->brake == BRAKE_ON ? "passed" : store_brake_name(r->brake);
	if (judge) {
		if (!r->e->split &&
		    (rc = brake_reasons(r, n, r->brake == BRAKE_ON, reasons, sizeof(reasons))))
			return rc;
		if (reasons[0]) {
			const char *mirror = r->cfg->name ? r->cfg->name : "default";
			if (r->brake == BRAKE_RELEASED)
				snprintf(
				    release, sizeof(release),
				    "Released for this run, but releasing lifts the limits, never "
				    "this: run the check again once the cause is gone");
			else if (r->part.n > 0 && !r->e->split) /* this partition alone */
				snprintf(release, sizeof(release),
				         "To delete them: reconciler check --partition %d/%d "
				         "--allow-deletes --mirror %s",
				         r->part.k, r->part.n, mirror);
			else
				snprintf(release, sizeof(release),
				         "To delete them: %s --allow-deletes --mirror %s, or POST "
				         "/api/mirrors/%s/check {%s\"allowDeletes\": true}",
				         r->kind == RUN_IDS
				             ? "the same ids with reconciler check --ids FILE"
				             : "reconciler check",
				         mirror, mirror,
				         r->kind == RUN_IDS ? "\"ids\": [...], " : "");
			snprintf(r->why, sizeof(r->why),
			         "held %" PRId64 " orphan deletes, nothing deleted: %s. %s", n,
			         reasons, release);
			if ((rc = store_held_keep(r->store, r->id, r->why)) ||
			    (rc = store_event(r->store, r->id, "held", r->why)))
				return rerror_set(r->err, rc,
				                  "journal: cannot record held deletes");
			log_msg(LOG_WARN, r->id, "%s", r->why);
			r->held = true;
			r->n_held = n;
			return RC_OK;
		}
		/* decided (limits judged, or released by a person): a resumed run
		 * sends the rest without deciding again */
		if ((rc = store_run_brake(r->store, r->id, BRAKE_PASSED)))
			return rerror_set(r->err, rc, "journal: cannot record the brake");
		r->brake = BRAKE_PASSED;
	}
	log_msg(LOG_INFO, r->id, "deleting %" PRId64 " orphans (brake %s)", n, how);
	while (rc == RC_OK && n > 0 && !r->e->stop) {
		rc = store_held_next(r->store, r->id, REPAIR_QUEUE_MAX, on_held, &r->rp);
		if (rc)
			return rerror_set(r->err, rc, "journal: cannot read held deletes");
		/* judged when the pass met them, maybe hours or an interruption
		 * ago: MongoDB is asked again right before they go (QA: a resumed
		 * run deleted copies of documents restored while it was down) */
		if ((rc = repair_recheck_deletes(&r->rp)) || (rc = sink_flush(r)))
			return rc;
		if ((rc = store_held_count(r->store, r->id, &left)))
			return rerror_set(r->err, rc, "journal: cannot count held deletes");
		if (left >= n && !r->e->stop) /* never loop on rows a batch did not take */
			return rerror_set(r->err, RC_ERR_INTERNAL,
			                  "%" PRId64 " held deletes were not sent", left);
		n = left;
	}
	return rc;
}
