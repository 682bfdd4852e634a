/*
 * stream.c: live sync. Each mirror's collection is watched through a
 * change stream (fullDocument: updateLookup, startAfter the journaled
 * token) and every change is written to the index through the repairs'
 * write path: the transform (body, routing, leaving out), the write mode,
 * the pipeline, external versions, and opensearch_bulk_send's _bulk
 * protocol (retries, splitting, item results). Docs: docs/LIVE-SYNC.md.
 * This file is the loop, the journal's place, gaps and the catch-up; a
 * batch and its write are stream_write.c's (stream_int.h).
 *
 * Batches: events gather until SYNC_BATCH_SIZE documents,
 * SYNC_BATCH_SIZE_BYTES bytes or CHANGE_STREAM_BATCH_MS since the first.
 * A batch keeps one change per document (its last: updateLookup's document
 * is the newest anyway), so one _bulk holds one write or delete per id.
 *
 * Where copies are: before each _bulk the copies of the batch's ids are
 * looked up (one search). A delete removes every copy of the id where it
 * is (its index and routing: the copy's, not a guess); a write goes where
 * the routing rule says, and a copy elsewhere (another routing, another
 * backing index) is deleted first, in the same request before the write
 * (one shard runs its items in order, so a delete never removes the fresh
 * write when both routings lead to one shard).
 *
 * RECONCILE_FILTER: inserts it leaves out are dropped by the server (a
 * $match on fullDocument, where the filter can be moved there); with a
 * filter every changed document is fetched again under it (one $in per
 * batch, as repairs fetch): found, it is written; not found (deleted, or
 * it left the filter), its copies are deleted.
 *
 * The journal: the batch's last resume token and cluster time are written
 * after OpenSearch acknowledged the batch, in one transaction with its
 * counts (store_stream_commit). A kill -9 resumes from the last committed
 * token; the writes of the events after it are made again (idempotent:
 * the same documents written again), never skipped. A quiet stream
 * journals its post-batch token about once a second, so its place stays
 * inside the oplog.
 *
 * Gaps: when the stream cannot continue from its place (no token yet, 286
 * ChangeStreamHistoryLost or 136 CappedPositionLost, an invalidate after a
 * drop or rename) it is opened again from now (after the invalidate) and
 * the gap is journaled (stream_gaps: from which cluster time, why) and
 * logged as an error. With CHANGE_STREAM_CATCHUP a run of kind catchup (a
 * check of the mirror under its own name, journaling which gaps it closes,
 * their reason and cluster time) then closes it: it compares the whole mirror, so
 * missing, stale and deleted documents of the missed window are all found
 * (deletes under RECONCILE_ORPHANS and the brake, as any check). The new
 * stream is opened before the check starts, so together they cover every
 * change; a gap stays open until its check completes (busy mirror, held
 * deletes, a stop: tried again). Any other failure (a lost connection, the
 * index unreachable past SYNC_MAX_RETRIES) drops the batch not committed
 * and reopens the stream from the journaled place, with backoff.
 *
 * Two ways in, one loop (mirror_main): `reconciler sync` (stream_sync: a
 * thread per mirror, one stop flag for all, the first fatal error ends the
 * command) and the service's tailer (stream_tailer_*: serve's mirrors with
 * CHANGE_STREAM_ENABLED, started and stopped by the API; a thread and stop
 * flag of its own, a fatal error ends that mirror's stream only, as
 * "failed"). Either way the stream lock keeps one tailer per mirror. The
 * tailer also keeps what GET /api/mirrors/{m}/stream shows: the lag counts
 * from the cluster time of the oldest event read and not yet applied (the
 * last applied while events keep coming; 0 once the server has nothing
 * more), and the error the stream last reopened after.
 */
#include "stream_int.h"

#include "log.h"
#include "mongo.h"
#include "run.h"
#include "transform.h"
#include "util.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_AWAIT_MS         200 /* each wait for events: stop and time bounds are checked between */
#define STREAM_IDLE_COMMIT_MS   1000  /* a quiet stream journals its post-batch token this often */
#define STREAM_BACKOFF_MAX_MS   30000 /* reopening after failures, doubling from 1 s */
#define STREAM_CATCHUP_RETRY_MS 60000 /* a catch-up that could not run (busy) is tried again */
#define STREAM_GAPS_LOOK_MS                                                                        \
	10000                   /* without catch-ups: how often completed checks are looked for    \
	                         */
#define STREAM_GAPS_NAMED 8     /* a catch-up's journal names this many of its gaps */
#define STREAM_GAPS_READ  10000 /* and counts the others up to this many */
#define STREAM_REPORT_MS  60000 /* a line of what was applied, this often */

/* Server codes: the place fell off the oplog. */
#define CODE_HISTORY_LOST  286   /* ChangeStreamHistoryLost */
#define CODE_CAPPED_LOST   136   /* CappedPositionLost (Amazon DocumentDB) */
#define CODE_FATAL_CSTREAM 280   /* ChangeStreamFatalError: resume point not found */
#define CODE_TOO_LARGE     10334 /* BSONObjectTooLarge: an event over 16 MB */

/* ---- the $match stage (pure) -------------------------------------------- */

static bool rewrite_filter(const bson_t *src, bson_t *dst);

/* An array of filters ($and, $or, $nor), each rewritten. */
static bool
rewrite_array(bson_iter_t *it, bson_t *dst, const char *key)
{
	bson_iter_t sub;
	bson_t arr;
	bool ok = true;

	if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &sub))
		return false;
	bson_append_array_begin(dst, key, -1, &arr);
	while (ok && bson_iter_next(&sub)) {
		const uint8_t *data;
		uint32_t len;
		bson_t in, out;
		if (!BSON_ITER_HOLDS_DOCUMENT(&sub))
			ok = false;
		if (!ok)
			break;
		bson_iter_document(&sub, &len, &data);
		ok = bson_init_static(&in, data, len);
		bson_append_document_begin(&arr, bson_iter_key(&sub), -1, &out);
		ok = ok && rewrite_filter(&in, &out);
		bson_append_document_end(&arr, &out);
	}
	bson_append_array_end(dst, &arr);
	return ok;
}

/* src's conditions on the document as conditions on the event's
 * fullDocument; false when some operator cannot be moved there. */
static bool
rewrite_filter(const bson_t *src, bson_t *dst)
{
	bson_iter_t it;
	char key[1100];
	bool ok = bson_iter_init(&it, src);

	while (ok && bson_iter_next(&it)) {
		const char *k = bson_iter_key(&it);
		if (k[0] != '$') {
			int w = snprintf(key, sizeof(key), "fullDocument.%s", k);
			ok =
			    w > 0 && (size_t)w < sizeof(key) && bson_append_iter(dst, key, -1, &it);
		} else if (!strcmp(k, "$and") || !strcmp(k, "$or") || !strcmp(k, "$nor")) {
			ok = rewrite_array(&it, dst, k);
		} else if (!strcmp(k, "$comment")) {
			ok = bson_append_iter(dst, k, -1, &it);
		} else {
			ok = false; /* $expr, $where, $text, $jsonSchema...: not on fullDocument */
		}
	}
	return ok;
}

rcode
stream_match_stage(bson_t *out, bool *built, const char *filter, struct rerror *err)
{
	bson_error_t e;
	bson_t *f = NULL, match, ors, ne, cond, op;
	bool ok;

	bson_init(out);
	*built = false;
	if (filter == NULL || *filter == '\0')
		return RC_OK;
	if ((f = bson_new_from_json((const uint8_t *)filter, -1, &e)) == NULL)
		return rerror_set(err, RC_ERR_CONFIG, "RECONCILE_FILTER is not valid JSON: %s",
		                  e.message);
	if (bson_empty(f)) {
		bson_destroy(f);
		return RC_OK;
	}
	/* {$match: {$or: [{operationType: {$ne: "insert"}}, filter on fullDocument]}} */
	bson_append_document_begin(out, "$match", -1, &match);
	bson_append_array_begin(&match, "$or", -1, &ors);
	bson_append_document_begin(&ors, "0", -1, &op);
	bson_append_document_begin(&op, "operationType", -1, &ne);
	BSON_APPEND_UTF8(&ne, "$ne", "insert");
	bson_append_document_end(&op, &ne);
	bson_append_document_end(&ors, &op);
	bson_append_document_begin(&ors, "1", -1, &cond);
	ok = rewrite_filter(f, &cond);
	bson_append_document_end(&ors, &cond);
	bson_append_array_end(&match, &ors);
	bson_append_document_end(out, &match);
	bson_destroy(f);
	if (!ok) {
		bson_reinit(out);
		return RC_OK;
	}
	*built = true;
	return RC_OK;
}

/* Where the lag counts from now (the service's status): a cluster time in
 * seconds, 0 when the stream is caught up. */
static void
lag_mark(struct stream *st, int64_t from)
{
	pthread_mutex_lock(&st->mu);
	st->lag_from = from;
	pthread_mutex_unlock(&st->mu);
}

/* The stream stops reading for a while (a catch-up runs, it reopens after
 * an error): caught up so far, it is behind from now on, as far as it can
 * tell. */
static void
lag_pause(struct stream *st)
{
	pthread_mutex_lock(&st->mu);
	if (st->lag_from == 0)
		st->lag_from = util_now_ms() / 1000;
	pthread_mutex_unlock(&st->mu);
}

/* Journals the stream's place now (the token the server gave last), with
 * the counts of what was acknowledged. */
static RC_MUST_CHECK rcode
commit_place(struct stream *st, int64_t applied, int64_t failed, const char *last_error)
{
	const bson_t *token = st->w ? mongo_watch_token(st->w) : NULL;
	char *json = token ? bson_as_canonical_extended_json(token, NULL) : NULL;
	char when[40] = "";
	int64_t ts = ((int64_t)st->ct_t << 32) | st->ct_i;
	rcode rc;

	if (token && json == NULL)
		return rerror_set(&st->err, RC_ERR_NOMEM, "out of memory");
	if (st->ct_t)
		util_ms_to_iso((int64_t)st->ct_t * 1000, when, sizeof(when));
	rc = store_stream_commit(st->store, st->cfg->name, json, st->ct_t ? when : NULL,
	                         st->ct_t ? ts : 0, applied, failed, last_error);
	bson_free(json);
	if (rc)
		return rerror_set(&st->err, RC_ERR_STORE,
		                  "journal: cannot commit the stream's place");
	if (token) {
		if (st->committed)
			bson_destroy(st->committed);
		st->committed = bson_copy(token);
	}
	st->last_commit_ms = util_mono_ms();
	if (applied || failed)
		st->batches_committed++;
	return RC_OK;
}
/* Writes the batch and journals its place after OpenSearch acknowledged
 * it; on an error nothing is journaled (the stream reopens from the last
 * place, and the events are written again). */
static RC_MUST_CHECK rcode
flush(struct stream *st)
{
	int64_t applied = 0, failed = 0;
	const char *last_error = NULL;
	rcode rc;

	if (st->n == 0)
		return RC_OK;
	rc = stream_batch_write(st, &applied, &failed, &last_error);
	if (rc == RC_OK)
		rc = commit_place(st, applied, failed, last_error);
	if (rc == RC_OK) {
		st->applied += applied;
		st->failed += failed;
		lag_mark(st, st->ct_t); /* applied; more may be waiting */
		log_msg(LOG_DEBUG, 0,
		        "mirror %s: live sync: %" PRId64 " events applied, %" PRId64 " failed",
		        st->cfg->name, applied, failed);
	}
	stream_batch_clear(st);
	return rc;
}

static RC_MUST_CHECK rcode ensure_index(struct stream *st);

/* ---- gaps and the catch-up ------------------------------------------------- */

/* Journals a gap (the place is cleared) and logs it as an error. */
static RC_MUST_CHECK rcode
journal_gap(struct stream *st, enum stream_gap_reason reason, const char *detail)
{
	struct store_stream js = {0};
	int64_t gap = 0;
	rcode rc = store_stream_get(st->store, &js, st->cfg->name);

	if (rc == RC_OK)
		rc = store_stream_gap(st->store, &gap, st->cfg->name, reason, detail);
	if (rc) {
		store_stream_clear(&js);
		return rerror_set(&st->err, RC_ERR_STORE, "journal: cannot record a gap");
	}
	log_msg(
	    reason == GAP_FIRST_START ? LOG_WARN : LOG_ERROR, 0,
	    "mirror %s: live sync: gap %" PRId64 " (%s): changes after %s reached no index "
	    "by the stream: %s; the stream goes on from now%s",
	    st->cfg->name, gap, store_gap_reason_name(reason),
	    js.cluster_time && reason != GAP_INDEX_LOST ? js.cluster_time : "the beginning", detail,
	    st->cfg->change_stream_catchup ? ", and a catchup run closes the gap"
	                                   : " (CHANGE_STREAM_CATCHUP=false: a check closes it)");
	store_stream_clear(&js);
	st->catchup_due = st->cfg->change_stream_catchup;
	st->catchup_at = 0;
	return RC_OK;
}

/* What the catch-up closes, for its journal (event "gaps"): each gap open
 * up to gap, its reason and the cluster time its changes were lost from
 * (oldest first; a few, then how many more). */
static RC_MUST_CHECK rcode
gaps_note(struct stream *st, char *out, size_t len, int64_t gap)
{
	struct store_gap *v = NULL;
	size_t n = 0, at = 0, shown = 0, open = 0;
	rcode rc;

	*out = '\0';
	if ((rc = store_stream_gaps_list(st->store, &v, &n, st->cfg->name, STREAM_GAPS_READ)))
		return rc;
	for (size_t i = n; i-- > 0;) { /* newest first: read from the end */
		const struct store_gap *g = &v[i];
		if (g->closed_at || g->id > gap)
			continue;
		open++;
		if (shown == STREAM_GAPS_NAMED || at >= len)
			continue;
		shown++;
		at += (size_t)snprintf(out + at, len - at,
		                       "%sgap %" PRId64 " (%s): ", at ? "; " : "closes ", g->id,
		                       g->reason);
		if (at < len && g->lost_from)
			at += (size_t)snprintf(out + at, len - at,
			                       "changes after %s reached no index", g->lost_from);
		else if (at < len)
			at += (size_t)snprintf(out + at, len - at,
			                       "no place was journaled: every change before %s",
			                       g->reopened_at);
	}
	if (open > shown && at < len)
		snprintf(out + at, len - at, "; and %zu more", open - shown);
	store_stream_gaps_free(v, n);
	return RC_OK;
}

/* Closes the open gaps a check or catchup run completed since they
 * opened covers (store_stream_gaps_checked), logging how many: *closed. */
static RC_MUST_CHECK rcode
gaps_checked(struct stream *st, int64_t *closed)
{
	if (store_stream_gaps_checked(st->store, closed, st->cfg->name))
		return rerror_set(&st->err, RC_ERR_STORE, "journal: cannot close the gaps checked");
	if (*closed)
		log_msg(LOG_INFO, 0,
		        "mirror %s: live sync: %" PRId64 " gap(s) closed by a check run completed "
		        "since they opened",
		        st->cfg->name, *closed);
	return RC_OK;
}

/* A catchup run of the mirror (a check of the whole mirror under its own
 * kind) over the gaps open now; closes them when it completes. The stream
 * is open (its start fixed) before it begins. */
static RC_MUST_CHECK rcode
catch_up(struct stream *st)
{
	struct engine *e = NULL;
	struct engine_result res = {0};
	struct engine_opts eo = {0};
	struct rerror rerr = {0};
	int64_t gap = 0;
	rcode rc;

	if ((rc = flush(st)))
		return rc;
	int64_t checked = 0;
	if ((rc = gaps_checked(st, &checked)))
		return rc;
	if ((rc = store_stream_gap_open(st->store, &gap, st->cfg->name)))
		return rerror_set(&st->err, RC_ERR_STORE, "journal: cannot read the open gaps");
	st->catchup_due = false;
	lag_pause(st);
	if (gap == 0) {
		st->catchup_held = false;
		return RC_OK;
	}
	if (st->catchup_held) {
		/* a person decides the held deletes (a check with
		 * --allow-deletes): looked for again in a minute, not run again */
		st->catchup_due = true;
		st->catchup_at = util_mono_ms() + STREAM_CATCHUP_RETRY_MS;
		return RC_OK;
	}
	bool exists = false;
	if ((rc = mongo_collection_exists(st->mongo, &exists, &st->err)))
		return rc;
	if (!exists) {
		/* nothing in MongoDB was missed yet; a check would refuse the
		 * mirror (a typo guard): it runs once the collection has a
		 * change (take_event), or in a minute */
		log_msg(LOG_INFO, 0,
		        "mirror %s: live sync: the collection %s.%s does not exist (yet): the "
		        "catch-up of gap %" PRId64 " waits for it",
		        st->cfg->name, st->cfg->mongodb_database, st->cfg->mongodb_collection, gap);
		st->catchup_due = st->catchup_for_coll = true;
		st->catchup_at = util_mono_ms() + STREAM_CATCHUP_RETRY_MS;
		return RC_OK;
	}
	st->catchup_for_coll = false;
	log_msg(LOG_INFO, 0, "mirror %s: live sync: catch-up: a catchup run closes gap %" PRId64,
	        st->cfg->name, gap);
	if (gaps_note(st, eo.catchup_gaps, sizeof(eo.catchup_gaps), gap))
		return rerror_set(&st->err, RC_ERR_STORE, "journal: cannot read the open gaps");
	if ((rc = engine_new(&e, st->cfg, &rerr)))
		return rerror_set(&st->err, rc, "catch-up: %s", rerr.message);
	pthread_mutex_lock(&st->mu);
	st->catchup = e;
	pthread_mutex_unlock(&st->mu);
	if (!*st->stop)
		rc = engine_run_opts(e, &res, RUN_CATCHUP, "catchup", -1, &eo, &rerr);
	pthread_mutex_lock(&st->mu);
	st->catchup = NULL;
	pthread_mutex_unlock(&st->mu);
	engine_free(e);
	if (*st->stop)
		return RC_OK; /* the gap stays open: the next start runs it */
	bool closed = rc == RC_OK && res.status == RUN_COMPLETED;
	if (res.run_id &&
	    store_stream_gaps_caught(st->store, st->cfg->name, gap, res.run_id, closed))
		return rerror_set(&st->err, RC_ERR_STORE, "journal: cannot record a catch-up");
	if (closed) {
		log_msg(LOG_INFO, 0, "mirror %s: live sync: gap closed by run %" PRId64,
		        st->cfg->name, res.run_id);
		/* the run wrote the index (or found it): seen from here on */
		if ((rc = ensure_index(st)))
			return rc;
	} else if (rc == RC_OK && res.status == RUN_HELD) {
		log_msg(LOG_ERROR, 0,
		        "mirror %s: live sync: the catch-up run %" PRId64 " held its deletes (the "
		        "brake): the gap stays open until a check of the mirror completes (to "
		        "delete them: reconciler check --allow-deletes --mirror %s; the stream "
		        "sees that check and closes the gap)",
		        st->cfg->name, res.run_id, st->cfg->name);
		st->catchup_held = true;
		st->catchup_due = true;
		st->catchup_at = util_mono_ms() + STREAM_CATCHUP_RETRY_MS;
	} else {
		log_msg(LOG_ERROR, 0,
		        "mirror %s: live sync: the catch-up did not complete (%s): tried again in "
		        "%d s",
		        st->cfg->name, rc ? rerr.message : store_run_status_name(res.status),
		        STREAM_CATCHUP_RETRY_MS / 1000);
		st->catchup_due = true;
		st->catchup_at = util_mono_ms() + STREAM_CATCHUP_RETRY_MS;
	}
	return RC_OK;
}

/* ---- the stream ------------------------------------------------------------- */

static bool
history_lost(int code)
{
	return code == CODE_HISTORY_LOST || code == CODE_CAPPED_LOST || code == CODE_FATAL_CSTREAM;
}

/* A server that refuses a change stream outright: a setting to change,
 * not an outage. */
static RC_MUST_CHECK rcode
unsupported(struct stream *st, int code)
{
	char msg[sizeof(st->err.message)];

	snprintf(msg, sizeof(msg), "%s", st->err.message);
	return rerror_set(&st->err, RC_ERR_CONFIG,
	                  "mirror %s: MONGODB_URI's server refuses a change stream on %s.%s (code "
	                  "%d: %s): live sync needs change streams (a replica set or a sharded "
	                  "cluster; FerretDB has none)",
	                  st->cfg->name, st->cfg->mongodb_database, st->cfg->mongodb_collection,
	                  code, msg);
}

/* Opens the stream after start_after (NULL: from now). */
static RC_MUST_CHECK rcode
watch(struct stream *st, const bson_t *start_after, int *code)
{
	mongo_watch_free(st->w);
	st->w = NULL;
	return mongo_watch_open(&st->w, st->mongo, &st->pipeline, start_after, STREAM_AWAIT_MS,
	                        code, &st->err);
}

/* Opens the stream at its journaled place; where there is none (or it
 * fell off the oplog) from now, with the gap journaled. */
/* Gaps still open at a start (a stop or a held catch-up left them): those
 * a completed check has covered since are closed; the others are caught up
 * now. */
static RC_MUST_CHECK rcode
open_gaps_due(struct stream *st, int64_t open)
{
	int64_t closed = 0;
	rcode rc;

	if (open == 0)
		return RC_OK;
	if ((rc = gaps_checked(st, &closed)))
		return rc;
	if (open - closed <= 0)
		return RC_OK;
	log_msg(LOG_WARN, 0, "mirror %s: live sync: %" PRId64 " gap(s) still open: %s",
	        st->cfg->name, open - closed,
	        st->cfg->change_stream_catchup
	            ? "a catchup run closes them now"
	            : "CHANGE_STREAM_CATCHUP=false: a completed check of the mirror closes them");
	st->catchup_due = st->cfg->change_stream_catchup;
	st->catchup_at = 0;
	return RC_OK;
}

static RC_MUST_CHECK rcode
open_stream(struct stream *st)
{
	struct store_stream js = {0};
	char target[800];
	bson_error_t e;
	bson_t *token = NULL;
	int code = 0;
	rcode rc = store_stream_get(st->store, &js, st->cfg->name);

	if (rc) {
		rc = rerror_set(&st->err, RC_ERR_STORE, "journal: cannot read the stream's place");
		goto out;
	}
	snprintf(target, sizeof(target), "%s.%s -> %s", st->cfg->mongodb_database,
	         st->cfg->mongodb_collection, st->cfg->opensearch_index);
	if (js.token && js.target && strcmp(js.target, target) != 0) {
		/* another collection's place, or one whose writes went to another
		 * index: resuming would skip what the new pair never saw */
		char detail[sizeof(target) * 2 + 120];
		snprintf(detail, sizeof(detail),
		         "the journaled place belongs to %s, the mirror is now %s: started afresh",
		         js.target, target);
		if ((rc = journal_gap(st, GAP_FIRST_START, detail)))
			goto out;
		free(js.token);
		js.token = NULL;
		js.open_gaps++;
	} else if (js.token &&
	           (token = bson_new_from_json((const uint8_t *)js.token, -1, &e)) == NULL) {
		log_msg(LOG_ERROR, 0, "mirror %s: live sync: the journaled token is not JSON: %s",
		        st->cfg->name, e.message);
	}
	if ((rc = store_stream_set_target(st->store, st->cfg->name, target))) {
		rc = rerror_set(&st->err, RC_ERR_STORE,
		                "journal: cannot record the stream's target");
		goto out;
	}
	if (token) {
		rc = watch(st, token, &code);
		if (rc == RC_OK) {
			log_msg(LOG_INFO, 0, "mirror %s: live sync: resumed after %s",
			        st->cfg->name,
			        js.cluster_time ? js.cluster_time : "the journaled token");
			/* gaps a stop left open (their catch-up stopped, or held):
			 * tried again now, as on a start from now */
			rc = open_gaps_due(st, js.open_gaps);
			goto out;
		}
		if (code == 0) /* no answer from the server: an outage, retried */
			goto out;
		/* the server answered but will not resume there (the place fell
		 * off the oplog, or another refusal, e.g. a token of another
		 * collection): the place is lost either way; opened from now
		 * below, where a server without change streams is told apart */
		char why[sizeof(st->err.message) + 64];
		snprintf(why, sizeof(why), "%s%s",
		         history_lost(code) ? "" : "the server refused to resume from the place: ",
		         st->err.message);
		st->err = (struct rerror){0};
		if ((rc = journal_gap(st, GAP_HISTORY_LOST, why)))
			goto out;
	}
	/* from now: opened before a first gap is journaled, so a server without
	 * change streams journals none */
	if ((rc = watch(st, NULL, &code))) {
		rc = code ? unsupported(st, code) : rc;
		goto out;
	}
	if (token == NULL && js.open_gaps == 0) {
		rc = journal_gap(st, GAP_FIRST_START,
		                 js.token ? "the journaled token could not be read"
		                          : "no place journaled yet (a first start)");
	} else if (token == NULL) {
		rc = open_gaps_due(st, js.open_gaps);
	}
	if (rc == RC_OK) /* its start is the place now: a kill from here loses nothing */
		rc = commit_place(st, 0, 0, NULL);
out:
	if (token)
		bson_destroy(token);
	store_stream_clear(&js);
	return rc;
}

/* A field of an event as text ("" when absent). */
static const char *
event_str(const bson_t *ev, const char *path)
{
	bson_iter_t it;

	if (bson_iter_init(&it, ev) && bson_iter_find_descendant(&it, path, &it) &&
	    BSON_ITER_HOLDS_UTF8(&it))
		return bson_iter_utf8(&it, NULL);
	return "";
}

/* An invalidate: the batch before it is written, the gap journaled, and
 * the stream opened again right after it (startAfter its token). */
static RC_MUST_CHECK rcode
on_invalidate(struct stream *st, const bson_t *ev)
{
	bson_iter_t it;
	bson_t tok;
	const uint8_t *data;
	uint32_t len;
	char detail[300];
	int code = 0;
	rcode rc = flush(st);

	if (rc)
		return rc;
	snprintf(detail, sizeof(detail),
	         "the change stream was invalidated (%s of %s.%s): what the collection held "
	         "then is not known to the stream",
	         st->drop_op ? st->drop_op : "a drop or rename", st->cfg->mongodb_database,
	         st->cfg->mongodb_collection);
	st->drop_op = NULL;
	if ((rc = journal_gap(st, GAP_INVALIDATE, detail)))
		return rc;
	if (!bson_iter_init_find(&it, ev, "_id") || !BSON_ITER_HOLDS_DOCUMENT(&it))
		return rerror_set(&st->err, RC_ERR_MONGO, "mongodb: an invalidate without a token");
	bson_iter_document(&it, &len, &data);
	if (!bson_init_static(&tok, data, len))
		return rerror_set(&st->err, RC_ERR_MONGO,
		                  "mongodb: an invalidate's token is corrupt");
	bson_t *copy = bson_copy(&tok); /* ev dies with the old stream */
	rc = copy ? watch(st, copy, &code) : rerror_set(&st->err, RC_ERR_NOMEM, "out of memory");
	if (copy)
		bson_destroy(copy);
	return rc ? rc : commit_place(st, 0, 0, NULL);
}

/* An event over 16 MB (a large document with its update description,
 * updateLookup's whole document): the server cannot return it, so the
 * stream can never pass it from its place. What was read is written, the
 * gap journaled, and the stream goes on from now: the catch-up writes that
 * document as it is (a document itself is at most 16 MB). */
static RC_MUST_CHECK rcode
pass_too_large(struct stream *st)
{
	char detail[sizeof(st->err.message)];
	int code = 0;
	rcode rc;

	snprintf(detail, sizeof(detail), "%s", st->err.message);
	st->err = (struct rerror){0};
	if ((rc = flush(st)) || (rc = journal_gap(st, GAP_TOO_LARGE, detail)))
		return rc;
	if ((rc = watch(st, NULL, &code)))
		return rc;
	return commit_place(st, 0, 0, NULL);
}

/* One event into the batch (written when the batch is full). */
static RC_MUST_CHECK rcode
take_event(struct stream *st, const bson_t *ev)
{
	const char *op = event_str(ev, "operationType");
	bson_iter_t it;
	struct buf id = {0};
	enum id_type type;
	rcode rc;

	if (!strcmp(op, "invalidate"))
		return on_invalidate(st, ev);
	if (!strcmp(op, "drop") || !strcmp(op, "rename") || !strcmp(op, "dropDatabase")) {
		st->drop_op = !strcmp(op, "drop")     ? "a drop"
		              : !strcmp(op, "rename") ? "a rename"
		                                      : "a dropDatabase";
		log_msg(LOG_ERROR, 0, "mirror %s: live sync: %s.%s: %s", st->cfg->name,
		        st->cfg->mongodb_database, st->cfg->mongodb_collection, op);
		return RC_OK;
	}
	bool del = !strcmp(op, "delete");
	if (!del && strcmp(op, "insert") && strcmp(op, "update") && strcmp(op, "replace"))
		return RC_OK;       /* other events (DDL) change no document */
	if (st->catchup_for_coll) { /* a catch-up waiting for the collection runs now */
		st->catchup_for_coll = false;
		st->catchup_at = 0;
	}
	if (bson_iter_init(&it, ev) && bson_iter_find_descendant(&it, "clusterTime", &it) &&
	    BSON_ITER_HOLDS_TIMESTAMP(&it))
		bson_iter_timestamp(&it, &st->ct_t, &st->ct_i);
	if (st->n == 0) /* the oldest event not applied */
		lag_mark(st, st->ct_t);
	if (!bson_iter_init(&it, ev) || !bson_iter_find_descendant(&it, "documentKey._id", &it))
		return RC_OK;
	if ((rc = doc_id_canonical(bson_iter_value(&it), &id, &type))) {
		buf_free(&id);
		return rerror_set(&st->err, rc, "mongodb: an event's _id cannot be read");
	}
	const bson_t *doc = NULL;
	bson_t full;
	bson_iter_t f;
	if (!del && bson_iter_init_find(&f, ev, "fullDocument") && BSON_ITER_HOLDS_DOCUMENT(&f)) {
		const uint8_t *data;
		uint32_t len;
		bson_iter_document(&f, &len, &data);
		if (bson_init_static(&full, data, len))
			doc = &full;
	}
	if (memchr(id.data, '\0', id.len))
		log_msg(LOG_WARN, 0, "mirror %s: live sync: an _id holding a NUL is not written",
		        st->cfg->name);
	else
		rc = stream_batch_add(st, id.data, type, del ? SEV_DELETE : SEV_WRITE,
		                      st->filtered ? NULL : doc);
	buf_free(&id);
	if (rc == RC_OK && (st->n >= (size_t)st->cfg->sync_batch_size ||
	                    st->bytes >= (size_t)st->cfg->sync_batch_size_bytes))
		rc = flush(st);
	return rc;
}

/* Whether the token now is past the one journaled (a quiet stream's
 * post-batch token). */
static bool
token_moved(struct stream *st)
{
	const bson_t *t = mongo_watch_token(st->w);

	return t && (st->committed == NULL || !bson_equal(t, st->committed));
}

/* Once a minute: what was applied since, and how far behind the last
 * event is (its cluster time against this clock). */
static void
report(struct stream *st, int64_t now)
{
	char lag[64] = "";

	if (now - st->report_ms < STREAM_REPORT_MS)
		return;
	if (st->report_ms && st->ct_t)
		snprintf(lag, sizeof(lag), "; the last event applied was written %" PRId64 " s ago",
		         util_now_ms() / 1000 - (int64_t)st->ct_t);
	if (st->report_ms)
		log_msg(LOG_INFO, 0,
		        "mirror %s: live sync: %" PRId64 " events applied (%" PRId64
		        " of them left to a newer copy the index holds), %" PRId64
		        " failed in the last minute%s",
		        st->cfg->name, st->applied, st->newer, st->failed,
		        st->applied + st->failed ? lag : "");
	st->applied = st->failed = st->newer = 0;
	st->report_ms = now;
}

/* CHANGE_STREAM_CATCHUP=false: the gaps a check completed since they
 * opened are closed while the stream runs (not only at its next start),
 * looked for every STREAM_GAPS_LOOK_MS (one query of the journal). */
static RC_MUST_CHECK rcode
close_checked_gaps(struct stream *st, int64_t now)
{
	int64_t closed = 0;

	if (st->cfg->change_stream_catchup || now < st->gaps_look_at)
		return RC_OK;
	st->gaps_look_at = now + STREAM_GAPS_LOOK_MS;
	return gaps_checked(st, &closed);
}

/* Reads events until stop (the batch written and journaled) or an error. */
static RC_MUST_CHECK rcode
tail(struct stream *st)
{
	rcode rc = RC_OK;

	while (rc == RC_OK) {
		const bson_t *ev = NULL;
		int code = 0;
		int64_t now = util_mono_ms();
		if (*st->stop)
			return flush(st);
		if (st->catchup_due && now >= st->catchup_at && (rc = catch_up(st)))
			break;
		if ((rc = close_checked_gaps(st, now)))
			break;
		if ((rc = mongo_watch_next(st->w, &ev, &code, &st->err)) && code == CODE_TOO_LARGE)
			rc = pass_too_large(st);
		if (rc)
			break;
		if (ev && (rc = take_event(st, ev)))
			break;
		if (ev == NULL && st->n == 0) /* the server had nothing more: caught up */
			lag_mark(st, 0);
		now = util_mono_ms();
		report(st, now);
		if (st->n && now - st->first_ms >= st->cfg->change_stream_batch_ms)
			rc = flush(st);
		else if (st->n == 0 && now - st->last_commit_ms >= STREAM_IDLE_COMMIT_MS &&
		         token_moved(st))
			rc = commit_place(st, 0, 0, NULL);
	}
	return rc;
}

/* ---- one mirror --------------------------------------------------------------- */

/* The index as a check makes it: created (the id field a keyword) when it
 * does not exist, so the first writes do not map the id field as text.
 * Without OPENSEARCH_ID_FIELD a check creates none either: the first write
 * does. */
static RC_MUST_CHECK rcode
ensure_index(struct stream *st)
{
	struct os_concrete *v = NULL;
	size_t n = 0;
	rcode rc = opensearch_concrete(st->os, &v, &n, NULL, &st->err);

	opensearch_concrete_free(v, n);
	/* an index there now that a batch's lookup later finds gone was
	 * deleted (stream_index_lost) */
	st->index_seen = rc == RC_OK && n > 0;
	if (rc == RC_OK && n == 0 && *st->cfg->opensearch_id_field) {
		rc = opensearch_create_index(st->os, st->cfg->opensearch_id_field, &st->err);
		if (rc == RC_OK)
			log_msg(LOG_INFO, 0, "mirror %s: live sync: created the index %s",
			        st->cfg->name, st->cfg->opensearch_index);
		st->index_seen = rc == RC_OK;
	}
	return rc;
}

rcode
stream_index_lost(struct stream *st)
{
	char detail[700];
	rcode rc;

	st->index_seen = false;
	snprintf(detail, sizeof(detail),
	         "the index %.500s was deleted while the stream ran: the copies written before "
	         "are gone (a write alone would make OpenSearch create it with default settings)",
	         st->cfg->opensearch_index);
	if ((rc = journal_gap(st, GAP_INDEX_LOST, detail)))
		return rc;
	return ensure_index(st);
}

/* One sync per mirror: a lock of its own (the journal's
 * "<db>.<mirror>.stream.lock"; mirror names hold no dot, so it is no
 * mirror's run lock: checks and the catch-up run beside it). */
static RC_MUST_CHECK rcode
lock_stream(struct stream *st)
{
	char name[128];
	int64_t holder = 0;
	struct rerror e = {0};

	snprintf(name, sizeof(name), "%s.stream", st->cfg->name);
	if (store_lock(st->store, &holder, name, &e) == RC_OK)
		return RC_OK;
	/* e names the lock's internal name; said here in the user's terms */
	return rerror_set(&st->err, RC_ERR_BUSY,
	                  "mirror %s: another reconciler sync (or serve) tails this mirror's "
	                  "change stream with the journal %s (one stream per mirror; stop it "
	                  "first)",
	                  st->cfg->name, st->cfg->state_db);
}

/* One change stream opened and closed: RC_ERR_CONFIG when the server
 * refuses them (FerretDB). */
static RC_MUST_CHECK rcode
probe_watch(struct stream *st)
{
	int code = 0;
	rcode rc = watch(st, NULL, &code);

	mongo_watch_free(st->w);
	st->w = NULL;
	return rc && code ? unsupported(st, code) : rc;
}

static RC_MUST_CHECK rcode
setup(struct stream *st)
{
	struct rerror *err = &st->err;
	bool built = false;
	bson_t stage;
	int n_indices = 1;
	rcode rc;

	bson_init(&st->pipeline);
	st->has_pipeline = true;
	if ((rc = store_open(&st->store, st->cfg->state_db, err)) || (rc = lock_stream(st)) ||
	    (rc = transform_new(&st->tf, st->cfg, err)) ||
	    (rc = mongo_open(&st->mongo, st->cfg->mongodb_uri, st->cfg->mongodb_database,
	                     st->cfg->mongodb_collection, err)) ||
	    (rc = mongo_set_filter(st->mongo, st->cfg->filter, err)) ||
	    (rc = opensearch_open(&st->os, st->cfg, err)))
		return rc;
	st->filtered = mongo_filtered(st->mongo);
	if ((rc = stream_match_stage(&stage, &built, st->cfg->filter, err)))
		return rc;
	if (built)
		BSON_APPEND_DOCUMENT(&st->pipeline, "0", &stage);
	else if (st->filtered)
		log_msg(LOG_INFO, 0,
		        "mirror %s: live sync: RECONCILE_FILTER cannot be moved onto the change "
		        "stream: every event is read, and documents are fetched under the filter",
		        st->cfg->name);
	bson_destroy(&stage);
	/* an alias writes to its write index: a copy in another backing index
	 * is a duplicate, deleted when its document is written */
	rc = opensearch_targets(st->os, &st->write_index, &n_indices, err);
	st->keys = (struct os_keys){.sort_field = "_id", .n_indices = n_indices};
	if (rc == RC_OK) /* a server without change streams: said before anything is made */
		rc = probe_watch(st);
	return rc ? rc : ensure_index(st);
}

/* Frees what setup made (also a part of it); the stream can be set up again. */
static void
teardown(struct stream *st)
{
	mongo_watch_free(st->w);
	stream_batch_clear(st);
	stream_recent_free(st);
	free(st->ev);
	if (st->committed)
		bson_destroy(st->committed);
	if (st->has_pipeline)
		bson_destroy(&st->pipeline);
	transform_free(st->tf);
	mongo_free(st->mongo);
	opensearch_free(st->os);
	store_free(st->store);
	free(st->write_index);
	st->w = NULL;
	st->ev = NULL;
	st->n = st->cap = 0;
	st->committed = NULL;
	st->has_pipeline = false;
	st->tf = NULL;
	st->mongo = NULL;
	st->os = NULL;
	st->store = NULL;
	st->write_index = NULL;
	st->pipeline_asked = false;
}

/* Whether an error ends the mirror's sync (a setting, the journal,
 * another sync of the mirror) rather than reopening the stream. */
static bool
fatal(rcode rc)
{
	return rc == RC_ERR_CONFIG || rc == RC_ERR_STORE || rc == RC_ERR_NOMEM || rc == RC_ERR_BUSY;
}

static void *
mirror_main(void *arg)
{
	struct stream *st = arg;
	int64_t backoff = 1000;
	bool ready = false;
	rcode rc = RC_OK;

	while (!fatal(rc) && !*st->stop) {
		if (!ready) { /* the servers are set up again after a failed setup */
			teardown(st);
			if ((rc = setup(st)) == RC_OK)
				log_msg(LOG_INFO, 0, "mirror %s: live sync of %s.%s into %s",
				        st->cfg->name, st->cfg->mongodb_database,
				        st->cfg->mongodb_collection, st->cfg->opensearch_index);
			ready = rc == RC_OK;
		}
		if (rc == RC_OK && (rc = open_stream(st)) == RC_OK) {
			int64_t before = st->batches_committed;
			pthread_mutex_lock(&st->mu);
			st->reconnecting = false;
			pthread_mutex_unlock(&st->mu);
			rc = tail(st);
			/* the backoff starts again only once a batch went through: a
			 * batch that fails each time (the stream reopens fine) waits
			 * longer each time, as an unreachable server does */
			if (st->batches_committed != before)
				backoff = 1000;
		}
		if (rc == RC_OK || fatal(rc) || *st->stop)
			break;
		/* what was read and not journaled is read again from the place */
		log_msg(LOG_WARN, 0,
		        "mirror %s: live sync: %s; the stream reopens from its journaled place in "
		        "%" PRId64 " ms",
		        st->cfg->name, st->err.message, backoff);
		stream_batch_clear(st);
		st->ct_t = st->ct_i = 0; /* the dropped events' time is not the place's */
		lag_pause(st);
		pthread_mutex_lock(&st->mu);
		st->reconnecting = true;
		snprintf(st->error, sizeof(st->error), "%s", st->err.message);
		st->err = (struct rerror){0};
		pthread_mutex_unlock(&st->mu);
		util_sleep_ms(backoff, st->stop);
		backoff = backoff * 2 > STREAM_BACKOFF_MAX_MS ? STREAM_BACKOFF_MAX_MS : backoff * 2;
		rc = RC_OK;
	}
	if (rc && !fatal(rc) && *st->stop)
		rc = RC_OK; /* stopped while reopening */
	if (rc == RC_OK)
		log_msg(LOG_INFO, 0, "mirror %s: live sync stopped; its place is journaled",
		        st->cfg->name);
	else if (st->in_service)
		log_msg(LOG_ERROR, 0,
		        "mirror %s: live sync ended: %s (the service goes on; POST "
		        "/api/mirrors/%s/stream/start tries again)",
		        st->cfg->name, st->err.message, st->cfg->name);
	st->rc = rc;
	if (fatal(rc))
		*st->stop = 1; /* one mirror's setting ends the command: the others stop too */
	teardown(st);
	pthread_mutex_lock(&st->mu); /* rc, err and done seen together */
	st->done = 1;
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

/* A stop reaches a catch-up run through its engine: interrupted after
 * its in-flight batch (the gap stays open). */
static void
stop_catchup(struct stream *st)
{
	pthread_mutex_lock(&st->mu);
	if (st->catchup)
		engine_stop(st->catchup, false);
	pthread_mutex_unlock(&st->mu);
}

rcode
stream_sync(const struct config *const *mirrors, size_t n, volatile int *stop, struct rerror *err)
{
	struct stream *v = calloc(n ? n : 1, sizeof(*v));
	size_t started = 0;
	rcode rc = RC_OK;

	if (v == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	if (n) { /* migrated once, here: the threads' own handles then find nothing to apply */
		struct store *s = NULL;
		rc = store_open(&s, mirrors[0]->state_db, err);
		store_free(s);
		if (rc) {
			free(v);
			return rc;
		}
	}
	for (size_t i = 0; i < n; i++) {
		v[i] = (struct stream){.cfg = mirrors[i], .stop = stop};
		pthread_mutex_init(&v[i].mu, NULL);
		if (pthread_create(&v[i].thread, NULL, mirror_main, &v[i])) {
			rc = rerror_set(err, RC_ERR_NOMEM, "cannot start a thread");
			*stop = 1;
			break;
		}
		started++;
	}
	/* a stop reaches a catch-up run through its engine (the signal
	 * handler only sets the flag) */
	for (bool all = false; !all;) {
		all = true;
		for (size_t i = 0; i < started; i++) {
			all = all && v[i].done;
			if (*stop)
				stop_catchup(&v[i]);
		}
		if (!all)
			util_sleep_ms(100, NULL);
	}
	for (size_t i = 0; i < started; i++) {
		pthread_join(v[i].thread, NULL);
		if (v[i].rc && (rc == RC_OK || (v[i].rc == RC_ERR_CONFIG && rc != RC_ERR_CONFIG))) {
			rc = v[i].rc;
			*err = v[i].err;
		}
	}
	for (size_t i = 0; i < n; i++)
		pthread_mutex_destroy(&v[i].mu);
	free(v);
	return rc;
}

/* ---- the service's tailer ------------------------------------------------- */

static const char *const state_names[] = {
    [STREAM_DISABLED] = "disabled",
    [STREAM_RUNNING] = "running",
    [STREAM_STOPPED] = "stopped",
    [STREAM_FAILED] = "failed",
};

const char *
stream_state_name(enum stream_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s]
	                                                                  : "unknown";
}

/* One mirror's tailer in the service: a struct stream per start (a fresh
 * one each time, so no state of a previous start leaks into the next),
 * kept after its thread ended until the next start, stop or free, so the
 * status can say why it ended. */
struct stream_tailer {
	const struct config *cfg;
	pthread_mutex_t mu; /* st and state: the API's threads against start/stop */
	struct stream *st;  /* NULL: never started, or joined */
	volatile int stop;
	enum stream_state state; /* when st is NULL */
	char error[sizeof(((struct rerror *)0)->message)];
};

rcode
stream_tailer_new(struct stream_tailer **out, const struct config *cfg, struct rerror *err)
{
	struct stream_tailer *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (t == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	t->cfg = cfg;
	t->state = STREAM_DISABLED;
	pthread_mutex_init(&t->mu, NULL);
	*out = t;
	return RC_OK;
}

/* The state of an ended thread. */
static enum stream_state
ended_state(const struct stream *st)
{
	return fatal(st->rc) ? STREAM_FAILED : STREAM_STOPPED;
}

/* Whether st's thread ended (its rc and err are final then). */
static bool
ended(struct stream *st)
{
	pthread_mutex_lock(&st->mu);
	bool done = st->done;
	pthread_mutex_unlock(&st->mu);
	return done;
}

/* Joins an ended thread and keeps what it said (under t->mu). */
static void
reap(struct stream_tailer *t)
{
	if (t->st == NULL || !ended(t->st))
		return;
	pthread_join(t->st->thread, NULL);
	t->state = ended_state(t->st);
	snprintf(t->error, sizeof(t->error), "%s", t->st->rc ? t->st->err.message : "");
	pthread_mutex_destroy(&t->st->mu);
	free(t->st);
	t->st = NULL;
}

rcode
stream_tailer_start(struct stream_tailer *t, struct rerror *err)
{
	struct stream *st;
	rcode rc = RC_OK;

	pthread_mutex_lock(&t->mu);
	reap(t);
	if (t->st) {
		rc = rerror_set(err, RC_ERR_BUSY, "mirror %s: the stream runs already",
		                t->cfg->name);
		goto out;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	t->stop = 0;
	*st = (struct stream){.cfg = t->cfg, .stop = &t->stop, .in_service = true};
	pthread_mutex_init(&st->mu, NULL);
	if (pthread_create(&st->thread, NULL, mirror_main, st)) {
		pthread_mutex_destroy(&st->mu);
		free(st);
		rc = rerror_set(err, RC_ERR_NOMEM, "cannot start a thread");
		goto out;
	}
	t->st = st;
	t->state = STREAM_RUNNING;
	t->error[0] = '\0';
out:
	pthread_mutex_unlock(&t->mu);
	return rc;
}

void
stream_tailer_signal(struct stream_tailer *t)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&t->mu);
	if (t->st) {
		t->stop = 1;
		stop_catchup(t->st);
	}
	pthread_mutex_unlock(&t->mu);
}

bool
stream_tailer_stop(struct stream_tailer *t, int64_t wait_ms)
{
	int64_t end = util_mono_ms() + wait_ms;
	bool stopped = false;

	if (t == NULL)
		return true;
	for (;;) {
		stream_tailer_signal(t); /* again: a catch-up may have begun since */
		pthread_mutex_lock(&t->mu);
		reap(t);
		stopped = t->st == NULL;
		pthread_mutex_unlock(&t->mu);
		if (stopped || util_mono_ms() >= end)
			return stopped;
		util_sleep_ms(50, NULL);
	}
}

/* NULL: disabled (a unit test's mirror without a tailer). */
void
stream_tailer_status(struct stream_tailer *t, struct stream_status *out)
{
	*out = (struct stream_status){.state = STREAM_DISABLED, .lag_s = -1};
	if (t == NULL)
		return;
	pthread_mutex_lock(&t->mu);
	out->state = t->state;
	snprintf(out->error, sizeof(out->error), "%s", t->error);
	if (t->st && ended(t->st)) {
		out->state = ended_state(t->st);
		out->end_rc = t->st->rc;
		snprintf(out->error, sizeof(out->error), "%s", t->st->rc ? t->st->err.message : "");
	} else if (t->st) {
		struct stream *st = t->st;
		pthread_mutex_lock(&st->mu);
		out->state = STREAM_RUNNING;
		out->catching_up = st->catchup != NULL;
		out->reconnecting = st->reconnecting;
		snprintf(out->error, sizeof(out->error), "%s", st->error);
		if (st->lag_from > 0) {
			int64_t lag = util_now_ms() / 1000 - st->lag_from;
			out->lag_s = lag > 0 ? lag : 0;
		} else {
			out->lag_s = 0;
		}
		pthread_mutex_unlock(&st->mu);
	}
	pthread_mutex_unlock(&t->mu);
}

void
stream_tailer_free(struct stream_tailer *t)
{
	if (t == NULL)
		return;
	while (!stream_tailer_stop(t, 60000))
		log_msg(LOG_WARN, 0, "mirror %s: live sync: still stopping", t->cfg->name);
	pthread_mutex_destroy(&t->mu);
	free(t);
}
