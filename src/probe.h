/*
 * probe.h: one look at a mirror's two servers, shared by `reconciler
 * doctor`, GET /api/health and the count monitor, so the three say the same
 * thing about the same servers.
 *
 * A probe opens (or reuses) a connection to each side, asks its version
 * and, when asked, its document count: MongoDB's for the collection,
 * OpenSearch's for the index (an index that does not exist yet counts 0
 * and is reported as such, not as an error), without the copies
 * OPENSEARCH_KEEP_QUERY keeps (they have no MongoDB document on purpose). Each side carries its own
 * latency and error, so one side down never hides the other's answer.
 */
#ifndef RECONCILER_PROBE_H
#define RECONCILER_PROBE_H

#include "config.h"
#include "error.h"

#include <stdbool.h>
#include <stdint.h>

struct mongo;
struct opensearch;

#define PROBE_VERSION 1u /* ask each side's version */
#define PROBE_COUNT   2u /* count the collection and the index */

/* One server's answer. */
struct probe_side {
	bool ok;                 /* reachable, and counted when PROBE_COUNT was asked */
	bool reached;            /* it answered (its version, when asked): a failed count is not
	                            "unreachable" */
	bool auth_failed;        /* it answered, refusing the credentials (RC_ERR_CONFIG from
	                            mongo.c or opensearch.c): reached, not ok */
	bool index_missing;      /* OpenSearch only: the index does not exist yet (count 0) */
	bool query_refused;      /* OpenSearch only, with PROBE_COUNT: it refuses
	                            OPENSEARCH_QUERY or OPENSEARCH_KEEP_QUERY (err says which) */
	bool collection_missing; /* MongoDB only, with PROBE_COUNT: no such collection (not ok:
	                            a run refuses it) */
	int64_t latency_ms;      /* the whole side: connect, version, count */
	char *version;           /* owned; NULL unless PROBE_VERSION was asked and answered */
	int64_t count;           /* -1: not taken */
	struct rerror err;       /* why not ok (secrets masked by the caller's output) */
};

struct probe {
	struct probe_side mongodb, opensearch;
};

/* Connections a caller keeps between probes (the health route does; one-shot
 * callers pass NULL). The caller owns them: probe_conns_close. */
struct probe_conns {
	struct mongo *mongo;
	struct opensearch *os;
};

/* Probes both servers of cfg. *out is reset on entry; probe_clear frees it.
 * Returns RC_OK when both sides are ok, else the first failing side's code
 * (MongoDB before OpenSearch); each side's detail is in *out either way. */
RC_MUST_CHECK rcode probe_servers(struct probe *out, const struct config *cfg, unsigned what,
                                  struct probe_conns *conns);
void probe_clear(struct probe *p);
void probe_conns_close(struct probe_conns *c);

#endif
