/*
 * report_merge.h: `reconciler report --merge JOURNAL...`: the combined
 * report of one split run (`check --partition K/N` in N processes, each
 * with its own journal, or RECONCILE_PARTITIONS=P in one process, whose
 * one journal holds its P runs): the counts summed, each partition's run and key
 * range, whether the partitions make up the whole plan, their errors, and
 * every drift row (docs/ENGINE.md, "Partitions"). Reads only: each journal
 * is opened read-only and never migrated (store_open_read_as_is), every
 * query has bound parameters.
 */
#ifndef RECONCILER_REPORT_MERGE_H
#define RECONCILER_REPORT_MERGE_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

/* The default of report --merge --max-spread: the seconds the partitions'
 * runs may begin apart (a CronJob's previous run is a day older). */
#define REPORT_MERGE_MAX_SPREAD 3600
/* Most partitions of a split run of one process read from its one journal
 * (RECONCILE_PARTITIONS' bound). */
#define REPORT_MERGE_MAX 64

/* The combined report (JSON, the keys of show --json's where they are the
 * same counts): in each journal its newest partition run; one journal
 * whose newest partition run is of a split run of one process
 * (runs.split_of): that split's runs, the newest of each partition.
 * mirror (NULL: any): the newest partition run of that mirror only.
 * *complete: the
 * runs are partitions 0..N-1 of one N, each once (a file or partition
 * given twice is counted once), of one mirror and kind, of one MongoDB
 * database and collection and one index (their journaled configuration),
 * began within max_spread seconds of each other's middle, and their
 * ranges tile the key space (what is not, in "problems").
 * RC_ERR_NOTFOUND / RC_ERR_STORE / RC_ERR_INVALID with the journal in err
 * when one cannot be read (a directory, an empty file, an older
 * reconciler's journal) or holds no partition run. */
RC_MUST_CHECK rcode report_merge(cJSON **out, bool *complete, const char *const *journals, size_t n,
                                 int64_t max_spread, const char *mirror, struct rerror *err);
/* The same for a person: a line per partition, the total, problems and
 * errors. */
RC_MUST_CHECK rcode report_merge_text(FILE *out, const cJSON *merged);
/* Every drift row of every partition's run, one JSON object a line (show
 * --ndjson's keys and "partition"), journal by journal, page by page. */
RC_MUST_CHECK rcode report_merge_ndjson(FILE *out, const cJSON *merged, struct rerror *err);

#endif
