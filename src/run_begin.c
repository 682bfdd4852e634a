/*
 * run_begin.c: begins a run, or takes up the unfinished one. A run resumes
 * only while the settings that bind it (config.c's CFG_RUN rows, and the
 * script's digest) equal its snapshot; otherwise it is cancelled, saying
 * what changed, and a new run of its kind begins. A resumed run first
 * re-sends its pending batches, then continues the pass from its cursor;
 * committed batches are never sent again.
 */
#include "run_int.h"

#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The snapshot a run keeps of its settings (config_dump_json's object),
 * with the script's digest when a script runs; NULL without memory. */
static char *
with_digest(const char *snapshot, const char *digest)
{
	cJSON *j;
	char *out;

	if (digest == NULL)
		return strdup(snapshot);
	if ((j = cJSON_Parse(snapshot)) == NULL)
		return NULL; /* config_dump_json writes an object: only memory */
	out = cJSON_AddStringToObject(j, "RECONCILE_TRANSFORM_DIGEST", digest)
	          ? cJSON_PrintUnformatted(j)
	          : NULL;
	cJSON_Delete(j);
	return out;
}

/* Appends to changed when the script the run began with differs from the
 * one loaded now under the same RECONCILE_TRANSFORM (a changed path is
 * config_run_changes'). Runs from before the digest was kept: no change. */
static RC_MUST_CHECK rcode
digest_change(const char *snapshot, const char *path, const char *now, struct buf *changed)
{
	cJSON *j = snapshot ? cJSON_Parse(snapshot) : NULL;
	const cJSON *was = cJSON_GetObjectItemCaseSensitive(j, "RECONCILE_TRANSFORM_DIGEST");
	const cJSON *was_path = cJSON_GetObjectItemCaseSensitive(j, "RECONCILE_TRANSFORM");
	rcode rc = RC_OK;

	/* another path is config_run_changes' to say */
	if (cJSON_IsString(was) && now && cJSON_IsString(was_path) &&
	    strcmp(was_path->valuestring, path) == 0 && strcmp(was->valuestring, now) != 0)
		rc = buf_printf(
		    changed, "%sthe script RECONCILE_TRANSFORM names was edited (digest %s -> %s)",
		    changed->len ? "; " : "", was->valuestring, now);
	cJSON_Delete(j);
	return rc;
}

/* Whether the unfinished run sr may resume: not when a setting that binds a
 * run (what it compares, where and how it writes) differs from its
 * snapshot, since its cursor and pending rows belong to the old settings (a
 * pass continued over another collection from this one's cursor, deletes
 * checked against the wrong collection). Such a run is cancelled, its
 * error (and finished event) saying what changed; r->why keeps the text.
 * With opts->resume_only r->not_resumed is set: nothing else runs. */
static RC_MUST_CHECK rcode
not_resumable(struct run *r, const struct store_run *sr)
{
	struct buf changed = {0};
	rcode rc = config_run_changes(r->cfg, sr->config, &changed);

	if (rc == RC_OK)
		rc =
		    digest_change(sr->config, r->cfg->transform, transform_digest(r->tf), &changed);
	/* another partition asked for (a run asked without one resumes as
	 * the partition it is) */
	if (rc == RC_OK && r->opts->partition_n > 0 &&
	    (sr->partition_n != r->opts->partition_n || sr->partition_k != r->opts->partition_k))
		rc = sr->partition_n > 0
		         ? buf_printf(&changed, "%sthe partition (%d/%d -> %d/%d)",
		                      changed.len ? "; " : "", sr->partition_k, sr->partition_n,
		                      r->opts->partition_k, r->opts->partition_n)
		         : buf_printf(&changed, "%sthe partition (a whole run -> %d/%d)",
		                      changed.len ? "; " : "", r->opts->partition_k,
		                      r->opts->partition_n);

	/* a partition of a split run of one process, asked outside a split of
	 * its own shape (RECONCILE_PARTITIONS changed): resumed alone it
	 * would leave the other partitions' key ranges unread (QA25 F2) */
	if ((rc == RC_OK || rc == RC_ERR_INVALID) && sr->split_of > 0 && !r->opts->split) {
		rc = buf_printf(&changed,
		                "%sRECONCILE_PARTITIONS (the run is partition %d/%d of split run "
		                "%" PRId64 ", whose other partitions are cancelled with it)",
		                changed.len ? "; " : "", sr->partition_k, sr->partition_n,
		                sr->split_of);
	}

	r->why[0] = '\0';
	if (rc == RC_ERR_INVALID) { /* no snapshot to hold it to */
		log_msg(LOG_WARN, sr->id,
		        "the run has no settings snapshot: resumed with the current settings");
		return RC_OK;
	}
	if (rc) {
		buf_free(&changed);
		return rerror_set(r->err, rc, "out of memory");
	}
	if (changed.len == 0) {
		buf_free(&changed);
		return RC_OK;
	}
	snprintf(r->why, sizeof(r->why),
	         "not resumed: settings that decide what the run compares or where it writes "
	         "changed since it began (%s); its cursor and pending batches belong to the old "
	         "ones, so it is cancelled and %s",
	         changed.data,
	         r->opts->resume_only ? "nothing was sent; `reconciler check` starts a new run"
	                              : "a new run starts with the current settings");
	buf_free(&changed);
	log_msg(LOG_WARN, sr->id, "%s", r->why);
	if ((rc = store_run_finish(r->store, sr->id, RUN_CANCELLED, r->why)))
		return rerror_set(r->err, rc, "journal: cannot cancel run %" PRId64, sr->id);
	if (sr->split_of > 0 && !r->opts->split &&
	    (rc = split_cancel(r->store, sr->split_of, sr->partition_n, r->why)))
		return rerror_set(r->err, rc, "journal: cannot cancel split run %" PRId64,
		                  sr->split_of);
	r->not_resumed = r->opts->resume_only;
	return RC_OK;
}

/* Takes up the unfinished run sr where it stopped (and frees sr). */
static RC_MUST_CHECK rcode
resume(struct run *r, struct store_run *sr)
{
	int64_t id = sr->id;
	rcode rc;

	r->id = id;
	r->kind = sr->kind;
	if (sr->cursor && sr->cursor_type &&
	    (doc_id_type_parse(sr->cursor_type, &r->cursor_type) ||
	     (r->cursor = strdup(sr->cursor)) == NULL)) {
		store_run_free(sr);
		return rerror_set(r->err, RC_ERR_STORE, "run %" PRId64 " has a bad cursor", id);
	}
	r->seen = sr->seen_types;
	r->compared = sr->compared;
	r->stats.index_read = sr->index_read;
	r->stats.kept = sr->kept;
	r->stats.ranges_summarized = sr->ranges_summarized;
	r->stats.ranges_descended = sr->ranges_descended;
	r->brake = sr->brake;
	r->full_write = sr->full_write;
	r->resumed = true;
	rc = partition_from_journal(r, sr);
	store_run_free(sr);
	if (rc)
		return rc;
	/* a release was for the run as it was started and looked at: an
	 * interruption may have changed what it reads (a MongoDB restored in
	 * part, QA: a resume at service start deleted half the index), so a
	 * resume re-arms the brake unless it is released again. A decided
	 * brake (passed) stays: the deletes were judged on whole totals */
	if (r->brake == BRAKE_RELEASED && !r->opts->allow_deletes) {
		if ((rc = store_run_brake(r->store, id, BRAKE_ON)) ||
		    (rc = store_event(r->store, id, "brake",
		                      "re-armed: the release was for the run before it "
		                      "was interrupted")))
			return rerror_set(r->err, rc, "journal: cannot record the brake");
		r->brake = BRAKE_ON;
	}
	if (r->opts->allow_deletes && r->brake == BRAKE_ON) {
		if ((rc = store_run_brake(r->store, id, BRAKE_RELEASED)))
			return rerror_set(r->err, rc, "journal: cannot record the brake");
		r->brake = BRAKE_RELEASED;
	}
	rc = store_run_resumed(r->store, id);
	/* the pass's place; its batches still pending are sent again
	 * whatever that place is */
	log_msg(LOG_INFO, id, "resuming %s run: the pass from %s", store_run_kind_name(r->kind),
	        r->cursor ? r->cursor : "its start (no chunk was committed)");
	return rc;
}

/* The kinds never resumed: a targeted run or a sample (run it again), and
 * a catch-up, whose pass began before gaps that may have opened since (the
 * stream runs a new one, which compares them all). */
static RC_MUST_CHECK rcode
kind_resumes(struct run *r, enum run_kind kind, int64_t id)
{
	if (kind == RUN_IDS || kind == RUN_SAMPLE)
		return rerror_set(r->err, RC_ERR_INVALID,
		                  "run %" PRId64 " checked given ids and is not resumed: run "
		                  "the targeted check again",
		                  id);
	if (kind == RUN_CATCHUP)
		return rerror_set(r->err, RC_ERR_INVALID,
		                  "run %" PRId64 " was a live sync's catch-up and is not resumed: "
		                  "the stream runs a new one for the gaps still open",
		                  id);
	return RC_OK;
}

rcode
begin_run(struct run *r, enum run_kind kind, const char *trigger, int64_t resume_id)
{
	struct store_run *sr = NULL;
	int64_t id = 0, replaced = 0;
	rcode rc;

	if (resume_id == 0 &&
	    (rc = store_run_unfinished_of_kind(r->store, kind, &id, r->cfg->name)))
		return rerror_set(r->err, rc, "journal: cannot look for unfinished runs");
	if (resume_id > 0)
		id = resume_id;
	if (id > 0) {
		rc = store_run_get(r->store, &sr, id);
		if (rc == RC_ERR_NOTFOUND)
			return rerror_set(r->err, rc, "no run %" PRId64 " in the journal", id);
		if (rc)
			return rerror_set(r->err, rc, "journal: cannot read run %" PRId64, id);
		if (!store_run_status_unfinished(sr->status)) {
			rc = rerror_set(r->err, RC_ERR_INVALID,
			                "run %" PRId64 " is %s: nothing to resume", id,
			                store_run_status_name(sr->status));
			store_run_free(sr);
			return rc;
		}
		if (strcmp(sr->mirror, r->cfg->name ? r->cfg->name : "default")) {
			rc = rerror_set(r->err, RC_ERR_INVALID,
			                "run %" PRId64 " belongs to mirror %s", id, sr->mirror);
			store_run_free(sr);
			return rc;
		}
		if ((rc = kind_resumes(r, sr->kind, id))) {
			store_run_free(sr);
			return rc;
		}
		rc = not_resumable(r, sr);
		if (rc == RC_OK && r->why[0] == '\0')
			return resume(r, sr);
		/* cancelled: a new run of its kind below, with today's settings */
		kind = sr->kind;
		replaced = id;
		store_run_free(sr);
		if (r->not_resumed) {
			r->id = id;
			r->kind = kind;
		}
		if (rc || r->not_resumed)
			return rc;
	}
	struct buf cfg = {0};
	char *snapshot = NULL;
	rc = config_dump_json(r->cfg, &cfg);
	if (rc == RC_OK && (snapshot = with_digest(cfg.data, transform_digest(r->tf))) == NULL)
		rc = RC_ERR_NOMEM;
	if (rc == RC_OK)
		rc = store_run_begin(r->store, &r->id, r->cfg->name,
		                     r->opts->sample ? RUN_SAMPLE : kind, trigger, snapshot);
	free(snapshot);
	buf_free(&cfg);
	r->kind = kind;
	r->brake = BRAKE_ON;
	r->part.k = r->opts->partition_k;
	r->part.n = r->opts->partition_n;
	if (rc == RC_OK && r->part.n > 0)
		rc = store_run_partition(r->store, r->id, r->part.k, r->part.n, NULL, NULL, NULL);
	if (rc == RC_OK && r->opts->split)
		rc =
		    store_run_split(r->store, r->id, r->opts->split_of ? r->opts->split_of : r->id);
	if (rc == RC_OK && r->opts->allow_deletes) {
		rc = store_run_brake(r->store, r->id, BRAKE_RELEASED);
		r->brake = BRAKE_RELEASED;
		if (rc == RC_OK)
			rc = store_event(r->store, r->id, "brake",
			                 "released for this run (allowDeletes / --allow-deletes)");
	}
	if (rc == RC_OK)
		log_msg(LOG_INFO, r->id, "started %s run (trigger %s)%s",
		        store_run_kind_name(r->opts->sample ? RUN_SAMPLE : kind), trigger,
		        r->opts->allow_deletes ? ", brake on deletes released" : "");
	/* the share rounds down: said now, not first when the brake holds */
	if (rc == RC_OK && r->part.n > 0 && !r->opts->split && r->cfg->orphans == ORPHANS_DELETE &&
	    !r->opts->allow_deletes && r->cfg->max_deletes / r->part.n == 0)
		log_msg(LOG_WARN, r->id,
		        "this partition's share of the brake is 0 = RECONCILE_MAX_DELETES %" PRId64
		        " / %d partitions: every orphan delete will be held (raise "
		        "RECONCILE_MAX_DELETES to at least %d, or release with --allow-deletes)",
		        r->cfg->max_deletes, r->part.n, r->part.n);
	if (rc == RC_OK && replaced) {
		char what[64];
		snprintf(what, sizeof(what), "in place of run %" PRId64, replaced);
		log_msg(LOG_INFO, r->id, "%s, which was not resumed: its settings changed", what);
		rc = store_event(r->store, r->id, "replaces", what);
	}
	return rc ? rerror_set(r->err, rc, "journal: cannot begin a run") : RC_OK;
}
