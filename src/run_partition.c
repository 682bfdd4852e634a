/*
 * run_partition.c: a run of one partition of a split run (`check
 * --partition K/N`; docs/ENGINE.md, "Partitions"). Before the counts, the
 * plan: the key range [lo, hi) of partition K, computed from the
 * collection (its smallest and largest ObjectId, or its string ids' split
 * points at every N-th place) and journaled with the run, or read back
 * from the journal when the run resumes; then both sides are narrowed to
 * it: MongoDB's count and stream (mongo_set_range) and every search, count
 * and summary of the index (opensearch_set_range). Everything else (the
 * pass, its lookups, the orphans' proof of absence from the whole
 * collection) is the whole run's, so N partitions find what one pass
 * finds, each id in exactly one of them.
 */
#include "run_int.h"

#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Split points of string ids: the id at every N-th place of the sorted
 * collection (one sorted find with skip each), never decreasing. */
static RC_MUST_CHECK rcode
string_splits(struct run *r, char **splits, const char *max)
{
	int n = r->part.n;
	int64_t count = 0;
	enum id_type t;
	rcode rc = mongo_count(r->mongo, &count, r->err);

	for (int i = 1; rc == RC_OK && i < n; i++) {
		char *id = NULL;
		rc = mongo_id_at(r->mongo, &id, &t, count * i / n, false, r->err);
		if (rc == RC_OK && (id == NULL || t != ID_STRING || strcmp(id, max) > 0)) {
			free(id); /* the collection changed meanwhile: the end */
			id = strdup(max);
		}
		if (rc == RC_OK && id && i > 1 && strcmp(id, splits[i - 2]) < 0) {
			free(id);
			id = strdup(splits[i - 2]);
		}
		if (rc == RC_OK && id == NULL)
			rc = rerror_set(r->err, RC_ERR_NOMEM, "out of memory");
		splits[i - 1] = id;
	}
	return rc;
}

rcode
partition_plan(struct run *r, char **splits, enum id_type *type)
{
	int n = r->part.n;
	char *min = NULL, *max = NULL;
	enum id_type tmin = ID_JSON, tmax = ID_JSON;
	rcode rc = mongo_id_at(r->mongo, &min, &tmin, 0, false, r->err);

	*type = ID_STRING;
	if (rc == RC_OK)
		rc = mongo_id_at(r->mongo, &max, &tmax, 0, true, r->err);
	if (rc)
		goto out;
	if (min == NULL || max == NULL) {
		/* an empty collection: the last partition takes every key (its
		 * index copies are orphans to find once), the others none */
		for (int i = 1; rc == RC_OK && i < n; i++)
			if ((splits[i - 1] = strdup("")) == NULL)
				rc = rerror_set(r->err, RC_ERR_NOMEM, "out of memory");
	} else if (tmin == ID_OID && tmax == ID_OID) {
		char lo[25], hi[25];
		*type = ID_OID;
		partition_oid_ends(lo, hi, min, max, n);
		for (int i = 1; rc == RC_OK && i < n; i++)
			if ((splits[i - 1] = malloc(25)) == NULL)
				rc = rerror_set(r->err, RC_ERR_NOMEM, "out of memory");
			else
				partition_oid_split(splits[i - 1], lo, hi, i, n);
	} else if (tmin == ID_STRING && tmax == ID_STRING) {
		rc = string_splits(r, splits, max);
	} else {
		/* MongoDB sorts ids by type first: with the smallest and the
		 * largest of one type, every id between is of it */
		rc = rerror_set(r->err, RC_ERR_CONFIG,
		                "partitions (--partition, RECONCILE_PARTITIONS) need a collection "
		                "whose ids are "
		                "all ObjectIds or all strings (its smallest id is of type %s, its "
		                "largest of type "
		                "%s): ids of other types, or of several, do not sort the same in "
		                "MongoDB and in "
		                "the index, so key ranges cannot split them; check it whole",
		                doc_id_type_name(tmin), doc_id_type_name(tmax));
	}
out:
	free(min);
	free(max);
	return rc;
}

/* The plan: partition k's bounds from the collection as it is now, or
 * the split run's (RECONCILE_PARTITIONS: one plan for its partitions). */
static RC_MUST_CHECK rcode
plan(struct run *r)
{
	int n = r->part.n;
	enum id_type type = (enum id_type)r->opts->split_type;
	char **splits = calloc((size_t)n, sizeof(*splits));
	rcode rc = splits ? RC_OK : rerror_set(r->err, RC_ERR_NOMEM, "out of memory");

	if (rc == RC_OK && r->opts->split_points)
		for (int i = 1; rc == RC_OK && i < n; i++)
			if ((splits[i - 1] = strdup(r->opts->split_points[i - 1])) == NULL)
				rc = rerror_set(r->err, RC_ERR_NOMEM, "out of memory");
	if (rc == RC_OK && r->opts->split_points == NULL)
		rc = partition_plan(r, splits, &type);
	if (rc == RC_OK && partition_set_bounds(&r->part, type, (const char *const *)splits))
		rc = rerror_set(r->err, RC_ERR_NOMEM, "out of memory");
	if (rc == RC_OK &&
	    (rc = store_run_partition(r->store, r->id, r->part.k, n, doc_id_type_name(type),
	                              r->part.lo, r->part.hi)))
		rc = rerror_set(r->err, rc, "journal: cannot record the partition plan");
	for (int i = 0; splits && i < n; i++)
		free(splits[i]);
	free(splits);
	return rc;
}

rcode
partition_setup(struct run *r)
{
	const char *idf = r->cfg->opensearch_id_field;
	char what[1200];
	rcode rc = RC_OK;

	if (r->part.n == 0)
		return RC_OK;
	if (*idf == '\0')
		return rerror_set(
		    r->err, RC_ERR_CONFIG,
		    "partitions (--partition, RECONCILE_PARTITIONS) need OPENSEARCH_ID_FIELD (a "
		    "keyword field holding the id): a key range of _id cannot be searched");
	if (!r->part.planned && (rc = plan(r)))
		return rc;
	partition_describe(&r->part, what, sizeof(what));
	log_msg(LOG_INFO, r->id, "%s of the %s ids%s", what, doc_id_type_name(r->part.type),
	        r->resumed ? " (journaled plan)" : "");
	if ((rc = store_event(r->store, r->id, "partition", what)))
		return rerror_set(r->err, rc, "journal: cannot record an event");
	if ((rc = mongo_set_range(r->mongo, r->part.lo, r->part.hi, r->part.type, r->err)))
		return rc;
	if (opensearch_set_range(r->os, idf, r->part.lo, r->part.hi))
		return rerror_set(r->err, RC_ERR_NOMEM, "out of memory");
	return RC_OK;
}

rcode
partition_check_keys(struct run *r)
{
	if (r->part.n == 0 || r->index_missing || strcmp(r->keys.sort_field, "_id") != 0)
		return RC_OK;
	return rerror_set(
	    r->err, RC_ERR_CONFIG,
	    "partitions (--partition, RECONCILE_PARTITIONS) need OPENSEARCH_ID_FIELD %s "
	    "to be an exact keyword in the "
	    "index (the run reads ids from _id, whose key ranges cannot be searched)",
	    r->cfg->opensearch_id_field);
}

rcode
partition_from_journal(struct run *r, const struct store_run *sr)
{
	r->part.k = sr->partition_k;
	r->part.n = sr->partition_n;
	if (sr->partition_n <= 0 || sr->partition_type == NULL)
		return RC_OK;
	if (doc_id_type_parse(sr->partition_type, &r->part.type) ||
	    (sr->partition_lo && (r->part.lo = strdup(sr->partition_lo)) == NULL) ||
	    (sr->partition_hi && (r->part.hi = strdup(sr->partition_hi)) == NULL))
		return rerror_set(r->err, RC_ERR_STORE, "run %" PRId64 " has a bad partition plan",
		                  sr->id);
	r->part.planned = true;
	return RC_OK;
}

rcode
partition_of_lease(struct run *r, enum run_kind kind, int64_t resume_id, char *part, size_t len)
{
	struct store_run *sr = NULL;
	int64_t id = resume_id;
	rcode rc = RC_OK;

	part[0] = '\0';
	if (r->opts->partition_n > 0) {
		snprintf(part, len, "%d/%d", r->opts->partition_k, r->opts->partition_n);
		return RC_OK;
	}
	/* a resume asked without --partition resumes the partition the run is */
	if (resume_id == 0 && kind != RUN_IDS &&
	    (rc = store_run_unfinished_of_kind(r->store, kind, &id, r->cfg->name)))
		return rerror_set(r->err, rc, "journal: cannot look for unfinished runs");
	if (id <= 0)
		return RC_OK;
	if (store_run_get(r->store, &sr, id) == RC_OK && sr->partition_n > 0)
		snprintf(part, len, "%d/%d", sr->partition_k, sr->partition_n);
	store_run_free(sr); /* not found: begin_run says so */
	return RC_OK;
}
