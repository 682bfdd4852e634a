/*
 * store_sql.h: the journal's statement helper, shared by store.c (writes)
 * and report.c (reads). Not for other modules: they call store.h.
 */
#ifndef RECONCILER_STORE_SQL_H
#define RECONCILER_STORE_SQL_H

#include "error.h"
#include "store.h"

#include <sqlite3.h>

/* Prepares sql on s's connection and binds its parameters: types is one
 * letter per "?" (i int64, t text or NULL, n int64 where < 0 means NULL),
 * the values follow. *out is NULL on failure; the caller
 * finalizes it. Errors are logged with what a person can do about them. */
RC_MUST_CHECK rcode store_sql_prepare(struct store *s, sqlite3_stmt **out, const char *sql,
                                      const char *types, ...);

/* A pass, for drift history: a check or dry run of the mirror that
 * completed (SQL lists, for "kind IN" and "status IN"). */
#define STORE_PASS_KINDS    "('check', 'dry_run')"
#define STORE_PASS_STATUSES "('completed', 'held')" /* held: a whole pass, its deletes kept */

#endif
