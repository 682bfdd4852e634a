/*
 * probe.c: see probe.h. A side that fails keeps its error and latency; a
 * cached connection that failed is dropped, so the next probe connects
 * afresh (a server restarted under a long-running service is found again).
 */
#include "probe.h"
#include "mongo.h"
#include "opensearch.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static void
probe_mongo(struct probe_side *side, const struct config *cfg, unsigned what, struct mongo **conn)
{
	int64_t t0 = util_mono_ms();
	struct mongo *m = *conn;
	rcode rc = RC_OK;

	if (m == NULL)
		rc = mongo_open(&m, cfg->mongodb_uri, cfg->mongodb_database,
		                cfg->mongodb_collection, &side->err);
	/* the mirror's own documents are counted: RECONCILE_FILTER (and
	 * OPENSEARCH_QUERY on the other side, in opensearch.c) */
	if (rc == RC_OK)
		rc = mongo_set_filter(m, cfg->filter, &side->err);
	if (rc == RC_OK && (what & PROBE_VERSION))
		rc = mongo_ping(m, &side->version, &side->err);
	side->auth_failed = rc == RC_ERR_CONFIG;
	side->reached = rc == RC_OK || side->auth_failed;
	if (rc == RC_OK && (what & PROBE_COUNT)) {
		bool exists;
		rc = mongo_collection_exists(m, &exists, &side->err);
		if (rc == RC_OK && !exists) {
			side->collection_missing = true;
			rc = rerror_set(&side->err, RC_ERR_INVALID,
			                "collection %s does not exist in database %s",
			                cfg->mongodb_collection, cfg->mongodb_database);
		}
	}
	if (rc == RC_OK && (what & PROBE_COUNT))
		rc = mongo_count(m, &side->count, &side->err);
	side->ok = rc == RC_OK;
	side->latency_ms = util_mono_ms() - t0;
	if (!side->ok) {
		mongo_free(m);
		m = NULL;
	}
	*conn = m;
}

static void
probe_opensearch(struct probe_side *side, const struct config *cfg, unsigned what,
                 struct opensearch **conn)
{
	int64_t t0 = util_mono_ms();
	struct opensearch *os = *conn;
	rcode rc = RC_OK;

	if (os == NULL)
		rc = opensearch_open(&os, cfg, &side->err);
	if (rc == RC_OK && (what & PROBE_VERSION))
		rc = opensearch_info(os, &side->version, &side->err);
	side->auth_failed = rc == RC_ERR_CONFIG;
	side->reached = rc == RC_OK || side->auth_failed;
	/* a clause OpenSearch refuses: said as what a run refuses (exit 78),
	 * not as a count that failed */
	if (rc == RC_OK && (what & PROBE_COUNT)) {
		rc = opensearch_check_queries(os, cfg, &side->err);
		side->query_refused = rc == RC_ERR_CONFIG;
	}
	/* copies OPENSEARCH_KEEP_QUERY keeps have no MongoDB document on
	 * purpose: counted out, or an index in sync never counts even (QA19 F6) */
	if (rc == RC_OK && (what & PROBE_COUNT)) {
		rc = opensearch_count_unkept(os, &side->count, cfg->opensearch_keep_query,
		                             &side->err);
		if (rc == RC_ERR_NOTFOUND) { /* reachable; the first run creates it */
			side->index_missing = true;
			side->count = 0;
			side->err = (struct rerror){0}; /* handled: not a cause for later */
			rc = RC_OK;
		}
	}
	side->ok = rc == RC_OK;
	side->latency_ms = util_mono_ms() - t0;
	if (!side->ok) {
		opensearch_free(os);
		os = NULL;
	}
	*conn = os;
}

rcode
probe_servers(struct probe *out, const struct config *cfg, unsigned what, struct probe_conns *conns)
{
	struct probe_conns local = {0};
	struct probe_conns *c = conns ? conns : &local;

	memset(out, 0, sizeof(*out));
	out->mongodb.count = out->opensearch.count = -1;
	probe_mongo(&out->mongodb, cfg, what, &c->mongo);
	probe_opensearch(&out->opensearch, cfg, what, &c->os);
	if (conns == NULL)
		probe_conns_close(&local);
	if (!out->mongodb.ok)
		return out->mongodb.err.code ? out->mongodb.err.code : RC_ERR_MONGO;
	if (!out->opensearch.ok)
		return out->opensearch.err.code ? out->opensearch.err.code : RC_ERR_OPENSEARCH;
	return RC_OK;
}

void
probe_clear(struct probe *p)
{
	if (p == NULL)
		return;
	free(p->mongodb.version);
	free(p->opensearch.version);
	p->mongodb.version = p->opensearch.version = NULL;
}

void
probe_conns_close(struct probe_conns *c)
{
	if (c == NULL)
		return;
	mongo_free(c->mongo);
	opensearch_free(c->os);
	c->mongo = NULL;
	c->os = NULL;
}
