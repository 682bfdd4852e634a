/*
 * run_setup.c: what a run asks the servers before its pass: whether a
 * peer mirror writes the same index (refused, or its overlap counted when
 * deletes are decided), both counts (reported, never trusted), and the
 * keys the pass reads the index by (the id field when it is an exact
 * keyword, else _id; the version field's doc values, else _source); the
 * index is created when it does not exist and the run may write.
 */
#include "run_int.h"

#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An alias over several indices: said once, in the log and the journal. */
static RC_MUST_CHECK rcode
journal_alias(struct run *r)
{
	char msg[300];
	rcode rc;

	snprintf(msg, sizeof(msg),
	         "%s is an alias over %d indices (write index: %s): copies are compared, "
	         "overwritten and deleted in the index they are in",
	         r->cfg->opensearch_index, r->keys.n_indices,
	         r->write_index ? r->write_index
	                        : "none, so missing documents cannot be "
	                          "indexed through it");
	log_msg(LOG_INFO, r->id, "%s", msg);
	if ((rc = store_event(r->store, r->id, "alias", msg)))
		return rerror_set(r->err, rc, "journal: cannot record an event");
	return RC_OK;
}

/* The id field's mapping: its type (NULL: not mapped) and why its doc
 * values are not the ids exactly (NULL: they are). A missing index is
 * created, and an unmapped field mapped, when the run may write; an index
 * that is still missing sets index_missing. */
static RC_MUST_CHECK rcode
id_field_type(struct run *r, char **type, char **inexact)
{
	const char *idf = r->cfg->opensearch_id_field;
	rcode rc = opensearch_field_type(r->os, type, inexact, idf, r->err);

	if (rc == RC_ERR_NOTFOUND && !r->dry_run) {
		*r->err = (struct rerror){0};
		rc = opensearch_create_index(r->os, idf, r->err);
		if (rc == RC_OK) {
			log_msg(LOG_INFO, r->id, "created the index with %s as keyword", idf);
			rc = opensearch_field_type(r->os, type, inexact, idf, r->err);
		}
	}
	if (rc == RC_OK && *type == NULL && !r->dry_run) {
		/* an index made with settings only: give it the key order */
		rc = opensearch_map_id_field(r->os, idf, r->err);
		if (rc == RC_OK) {
			log_msg(LOG_INFO, r->id, "mapped %s as keyword in the index", idf);
			rc = opensearch_field_type(r->os, type, inexact, idf, r->err);
		}
	}
	if (rc == RC_ERR_NOTFOUND) {
		*r->err = (struct rerror){0};
		r->index_missing = true;
		log_msg(LOG_WARN, r->id, "the index does not exist: every document is missing");
		rc = RC_OK;
	}
	return rc;
}

/* The key the pass reads the index by: OPENSEARCH_ID_FIELD when it is a
 * keyword whose doc values are the ids exactly, else _id (said why). */
static RC_MUST_CHECK rcode
id_field_keys(struct run *r)
{
	const char *idf = r->cfg->opensearch_id_field;
	char *type = NULL, *inexact = NULL;
	rcode rc = id_field_type(r, &type, &inexact);

	if (rc)
		goto out;
	if (type && strcmp(type, "keyword") == 0 && inexact) {
		/* its doc values are not the ids (lowercased, or missing for long
		 * ones): the key order would mismatch, and lie */
		char msg[400];
		snprintf(msg, sizeof(msg),
		         "OPENSEARCH_ID_FIELD %s %s, so its values are not the ids exactly: "
		         "ids are read from _id instead",
		         idf, inexact);
		log_msg(LOG_WARN, r->id, "%s", msg);
		rc = store_event(r->store, r->id, "warning", msg);
	} else if (type && strcmp(type, "keyword") == 0) {
		int64_t lacking = 0;
		r->keys.sort_field = r->id_field;
		/* such documents cannot be placed in key order: say so */
		rc = opensearch_count_missing(r->os, &lacking, idf, r->err);
		r->lacking = lacking;
		if (rc == RC_OK && lacking > 0) {
			char msg[300];
			snprintf(msg, sizeof(msg),
			         "%" PRId64 " documents of the index lack %s: the pass cannot see "
			         "them, so orphans among them are not found "
			         "(OPENSEARCH_ID_FIELD= "
			         "reads ids from _id instead)",
			         lacking, idf);
			log_msg(LOG_WARN, r->id, "%s", msg);
			rc = store_event(r->store, r->id, "warning", msg);
		}
	} else if (!r->index_missing) {
		log_msg(LOG_WARN, r->id,
		        "OPENSEARCH_ID_FIELD %s is %s in the index mapping, not keyword: "
		        "ids are read from _id instead",
		        idf, type ? type : "not mapped");
		rc = store_event(r->store, r->id, "warning", "id field not a keyword; using _id");
	}
out:
	free(type);
	free(inexact);
	return rc;
}

/* How the pass reads RECONCILE_VERSION_FIELD in the index: doc values
 * where they are usable and alike in every index, else _source (slower,
 * but a text or doc_values:false mapping must not fail every run). */
static RC_MUST_CHECK rcode
version_keys(struct run *r)
{
	char *type = NULL, *inexact = NULL;
	rcode rc = opensearch_field_type(r->os, &type, &inexact, r->cfg->version_field, r->err);

	if (rc == RC_ERR_NOTFOUND) {
		*r->err = (struct rerror){0};
		rc = RC_OK;
	}
	bool docvalues = type && !inexact &&
	                 (strncmp(type, "date", 4) == 0 || strcmp(type, "keyword") == 0 ||
	                  strcmp(type, "long") == 0 || strcmp(type, "integer") == 0 ||
	                  strcmp(type, "double") == 0 || strcmp(type, "float") == 0 ||
	                  strcmp(type, "unsigned_long") == 0 || strcmp(type, "short") == 0);
	if (docvalues && strncmp(type, "date", 4) == 0)
		r->keys.version_format = "epoch_millis";
	snprintf(r->version_type, sizeof(r->version_type), "%s", type ? type : "");
	r->keys.version_source = type && !docvalues;
	if (r->keys.version_source)
		log_msg(LOG_INFO, r->id, "versions are read from _source: %s %s",
		        r->cfg->version_field, inexact ? inexact : type);
	free(type);
	free(inexact);
	r->keys.version_field = r->cfg->version_field;
	return rc;
}

/* Picks the id field and version format from the index mapping; creates
 * the index (id field as keyword) when it does not exist and we may write. */
rcode
setup_keys(struct run *r)
{
	rcode rc;

	r->id_field = strdup(r->cfg->opensearch_id_field);
	r->keys.sort_field = "_id";
	if (r->id_field == NULL)
		return RC_ERR_NOMEM;
	/* an alias may span several indices: hits say which one each copy is
	 * in, and deletes and overwrites go there, not to the write index */
	rc = opensearch_targets(r->os, &r->write_index, &r->keys.n_indices, r->err);
	if (rc == RC_OK && r->keys.n_indices > 1)
		rc = journal_alias(r);
	if (rc == RC_OK && *r->cfg->opensearch_id_field)
		rc = id_field_keys(r);
	if (rc == RC_OK && *r->cfg->version_field && !r->index_missing)
		rc = version_keys(r);
	return rc;
}

/* Why this mirror's ranges cannot be verified by summaries (NULL: they
 * can): what the script cannot read, or reproduce as the merge judges it
 * (docs/ENGINE.md, "Verifying by range summaries"). */
static const char *
verify_unqualified(const struct run *r, char *buf, size_t len)
{
	const struct config *c = r->cfg;
	const char *t = r->version_type;

	if (r->index_missing)
		return "the index does not exist";
	if (strcmp(r->keys.sort_field, "_id") == 0)
		return "ids are read from _id (OPENSEARCH_ID_FIELD is empty or not an exact "
		       "keyword), and a range of _id cannot be searched";
	if (*c->routing_field)
		return "OPENSEARCH_ROUTING_FIELD is set, and a script cannot read a copy's routing";
	if (transform_scripted(r->tf))
		return "a transform script routes and leaves out documents";
	if (r->content.on)
		return "RECONCILE_COMPARE=content compares each copy's content";
	if (*c->opensearch_keep_query)
		return "OPENSEARCH_KEEP_QUERY is set";
	if (*c->version_field &&
	    (r->keys.version_source ||
	     !(strcmp(t, "date") == 0 || strcmp(t, "long") == 0 || strcmp(t, "integer") == 0 ||
	       strcmp(t, "short") == 0 || strcmp(t, "byte") == 0))) {
		snprintf(buf, len,
		         "RECONCILE_VERSION_FIELD %s is %s in the index, and the script reads "
		         "only a date or an integer from doc values",
		         c->version_field,
		         r->keys.version_source ? "read from _source"
		         : *t                   ? t
		                                : "not mapped");
		return buf;
	}
	return NULL;
}

static RC_MUST_CHECK rcode
journal_verify(struct run *r, const char *verify, const char *note)
{
	rcode rc = store_run_verify(r->store, r->id, verify, note);

	if (rc == RC_OK && note)
		rc = store_event(r->store, r->id, "verify", note);
	return rc ? rerror_set(r->err, rc, "journal: cannot record how the run verifies") : RC_OK;
}

rcode
setup_verify(struct run *r)
{
	char buf[700], note[900];
	const char *why;
	char *refused = NULL;
	rcode rc = RC_OK;

	r->verify_summary = false;
	if (r->cfg->verify == VERIFY_MERGE)
		return journal_verify(r, "merge", NULL);
	why = verify_unqualified(r, buf, sizeof(buf));
	if (why == NULL) {
		struct os_summary_keys k;
		read_summary_keys(r, &k);
		if ((rc = opensearch_summary_probe(r->os, &refused, &k, r->err)))
			return rc;
		if (refused) {
			snprintf(buf, sizeof(buf),
			         opensearch_summary_refused(refused)
			             ? "the cluster refuses the summaries' script (%.500s)"
			             : "the summaries' script failed on the index (%.500s)",
			         refused);
			why = buf;
		}
	}
	if (why && r->cfg->verify == VERIFY_SUMMARY) {
		rc = rerror_set(r->err, RC_ERR_CONFIG,
		                "RECONCILE_VERIFY=summary: %s (RECONCILE_VERIFY=auto or merge "
		                "verifies by streaming every id)",
		                why);
	} else if (why) {
		snprintf(note, sizeof(note), "%s: verifying by merge", why);
		log_msg(refused ? LOG_WARN : LOG_INFO, r->id, "%s", note);
		rc = journal_verify(r, "merge", note);
	} else {
		r->verify_summary = true;
		rc = journal_verify(r, "summary", NULL);
	}
	free(refused);
	return rc;
}

/* Makes what was indexed so far visible to search, so the pass compares
 * against everything written before it (and the next run sees our
 * repairs). Not fatal: a cluster may forbid it, the pass still works. */
void
setup_refresh(struct run *r)
{
	struct rerror e = {0};

	if (!r->index_missing && opensearch_refresh(r->os, &e) && e.code != RC_ERR_NOTFOUND)
		log_msg(LOG_WARN, r->id, "cannot refresh the index: %s", e.message);
}

/* QA F1: two mirrors that write one index without each selecting its own
 * documents (OPENSEARCH_QUERY) delete each other's copies as orphans.
 * config.c refuses what text can tell (one URL or query spelled two ways);
 * what only the cluster can tell (an alias of the other's index, two DNS
 * names of one host) is found here, before anything is counted or
 * written: the concrete indices this mirror's index stands for and those of
 * each peer, compared by uuid, one small request per mirror. A peer without
 * a distinct query on the same index is refused; one with a distinct query
 * on it (or whose cluster does not answer) is marked in peers_count, and
 * the documents both queries select are counted when the deletes are
 * decided (peers_overlap: no configuration check can tell every query that
 * selects everything, QA11 F1). A name that does not exist yet is no
 * conflict. A peer without a distinct query whose cluster does not answer
 * holds the run's orphan deletes (peer_unknown, brake_reasons): they may be
 * that mirror's copies (QA8c F3: it failed open). */
rcode
setup_check_peers(struct run *r)
{
	const struct config_set *set = r->cfg->set;
	struct os_concrete *mine = NULL;
	size_t n_mine = 0;
	rcode rc;

	if (set == NULL || set->n_mirrors < 2)
		return RC_OK;
	rc = opensearch_concrete(r->os, &mine, &n_mine, NULL, r->err);
	if (rc == RC_OK && n_mine &&
	    (r->peers_count = calloc(set->n_mirrors, sizeof(*r->peers_count))) == NULL)
		rc = rerror_set(r->err, RC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == RC_OK && n_mine && i < set->n_mirrors; i++) {
		const struct config *p = set->mirrors[i];
		struct opensearch *pos = NULL;
		struct os_concrete *theirs = NULL;
		size_t n_theirs = 0;
		struct rerror perr = {0};
		rcode prc;

		if (p == r->cfg || !strcmp(p->name, r->cfg->name))
			continue;
		bool distinct =
		    config_queries_distinct(p->opensearch_query, r->cfg->opensearch_query);
		prc = config_same_opensearch(p, r->cfg) ? RC_OK : opensearch_open(&pos, p, &perr);
		if (prc == RC_OK)
			prc = opensearch_concrete(pos ? pos : r->os, &theirs, &n_theirs,
			                          p->opensearch_index, &perr);
		opensearch_free(pos);
		if (prc == RC_ERR_NOMEM) {
			rc = rerror_set(r->err, prc, "out of memory");
		} else if (prc && distinct) {
			/* it may share the index: its query is asked of ours (below) */
			log_msg(LOG_WARN, r->id,
			        "mirror %s: cannot tell which index its %s is: the documents its "
			        "opensearch_query selects in this mirror's index are counted "
			        "before any delete: %s",
			        p->name, p->opensearch_index, perr.message);
			r->peers_count[i] = true;
		} else if (prc) {
			log_msg(LOG_WARN, r->id,
			        "mirror %s: cannot tell which index its %s is, so not compared "
			        "with this mirror's (this run's orphan deletes are held): %s",
			        p->name, p->opensearch_index, perr.message);
			if (!r->peer_unknown[0])
				snprintf(
				    r->peer_unknown, sizeof(r->peer_unknown),
				    "mirror %s's OpenSearch could not be asked whether its %s is "
				    "this index (%.160s), so these copies may be its documents",
				    p->name, p->opensearch_index, perr.message);
		}
		for (size_t a = 0; rc == RC_OK && a < n_mine; a++)
			for (size_t b = 0; rc == RC_OK && b < n_theirs; b++) {
				if (strcmp(mine[a].uuid, theirs[b].uuid))
					continue;
				if (distinct) /* counted when deletes are decided */
					r->peers_count[i] = true;
				else
					rc = rerror_set(
					    r->err, RC_ERR_INVALID,
					    "mirrors %s and %s both write into index %s (uuid %s; "
					    "opensearch_index %s and %s) without each selecting "
					    "its own documents with opensearch_query: each would "
					    "call the other's copies orphans and delete them; "
					    "nothing was changed: give each mirror its own index, "
					    "or its own opensearch_query",
					    r->cfg->name, p->name, mine[a].name, mine[a].uuid,
					    r->cfg->opensearch_index, p->opensearch_index);
			}
		opensearch_concrete_free(theirs, n_theirs);
	}
	opensearch_concrete_free(mine, n_mine);
	return rc;
}

rcode
setup_count(struct run *r)
{
	int64_t mc = -1, oc = -1;
	bool exists;
	rcode rc;

	setup_refresh(r);

	/* a collection that is not there is a typo far more often than an
	 * emptied collection, and a pass against it calls every copy an orphan */
	rc = mongo_collection_exists(r->mongo, &exists, r->err);
	if (rc)
		return rc;
	if (!exists)
		return rerror_set(r->err, RC_ERR_INVALID,
		                  "collection %s does not exist in database %s: check "
		                  "MONGODB_DATABASE and MONGODB_COLLECTION (nothing was changed)",
		                  r->cfg->mongodb_collection, r->cfg->mongodb_database);

	/* a targeted run reads a few ids: a count (a scan on some servers) is
	 * not worth it; the index's is cheap and the brake needs it */
	if (r->cfg->mongo_count == MONGO_COUNT_BEFORE && r->kind != RUN_IDS)
		rc = mongo_count(r->mongo, &mc, r->err);
	else
		rc = RC_OK; /* counted by the pass itself */
	if (rc == RC_OK) {
		rc = opensearch_count(r->os, &oc, r->err);
		if (rc == RC_ERR_NOTFOUND) {
			*r->err = (struct rerror){0};
			oc = 0;
			rc = RC_OK;
		}
	}
	if (rc)
		return rc;
	r->os_count = oc;
	r->mongo_count = mc;
	pthread_mutex_lock(&r->e->lock);
	r->e->progress.mongo_count = mc;
	r->e->progress.opensearch_count = oc;
	pthread_mutex_unlock(&r->e->lock);
	char mtext[32] = "not counted"; /* a targeted run, or RECONCILE_MONGO_COUNT=pass */
	if (mc >= 0)
		snprintf(mtext, sizeof(mtext), "%" PRId64, mc);
	log_msg(LOG_INFO, r->id,
	        "counts: MongoDB %s, OpenSearch %" PRId64 " (counts are reported, never trusted)",
	        mtext, oc);
	return store_run_counts(r->store, r->id, mc, oc);
}
