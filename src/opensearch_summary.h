/*
 * opensearch_summary.h: the index side of the range summaries (summary.h):
 * many key ranges per _msearch, each a size-0 search whose scripted_metric
 * gives the range's count and hash sum; and the probe that tells whether
 * the cluster runs Painless at all.
 */
#ifndef RECONCILER_OPENSEARCH_SUMMARY_H
#define RECONCILER_OPENSEARCH_SUMMARY_H

#include "opensearch.h"
#include "summary.h"

/* What the script reads: the keyword id field, the version field (NULL:
 * none) and whether it is a date (read as epoch ms). */
struct os_summary_keys {
	const char *id_field;
	const char *version_field;
	bool version_date;
};

/* Fills os_ok, os_count and os_sum of the n ranges (at most
 * OS_SUMMARY_PER_REQUEST per _msearch), under OPENSEARCH_QUERY. A range
 * whose search failed keeps os_ok false (it is streamed instead); the
 * first such failure's reason goes to *failed (caller frees; may be NULL).
 * RC_ERR_NOTFOUND: the index is gone. */
#define OS_SUMMARY_PER_REQUEST 200
RC_MUST_CHECK rcode opensearch_summaries(struct opensearch *os, struct summary_range *r, size_t n,
                                         const struct os_summary_keys *k, char **failed,
                                         struct rerror *err);
/* One search of an empty range with the script: *refused gets the reason
 * (caller frees) when the cluster does not run it (Painless disabled or
 * missing, scripts off, doc['_id'] unreadable), else stays NULL. */
RC_MUST_CHECK rcode opensearch_summary_probe(struct opensearch *os, char **refused,
                                             const struct os_summary_keys *k, struct rerror *err);
/* Whether the probe's reason says the cluster does not run such scripts
 * (no Painless, scripts or their context disabled, no dynamic compiles,
 * doc['_id'] disallowed); false: the script ran and failed (QA20 F3: not
 * the cluster's refusal, the reason is reported as such). */
bool opensearch_summary_refused(const char *reason);

#endif
