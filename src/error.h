/*
 * error.h: the one error enum of the reconciler.
 *
 * Every function that can fail returns an rcode; RC_OK is 0 so `if (rc)`
 * reads naturally. The numeric values are stable: they appear in the
 * journal's errors.code column and in logs, so never renumber, only append.
 * Detail (a server's message, a file name) travels separately, in a
 * caller-provided `struct rerror` where a function has one to give.
 */
#ifndef RECONCILER_ERROR_H
#define RECONCILER_ERROR_H

#include <stddef.h>

typedef enum {
	RC_OK = 0,
	RC_ERR_NOMEM = 1,      /* allocation failed */
	RC_ERR_INVALID = 2,    /* bad argument or input (config, API body, id) */
	RC_ERR_CONFIG = 3,     /* configuration value rejected */
	RC_ERR_IO = 4,         /* local file or socket error */
	RC_ERR_MONGO = 5,      /* MongoDB answered with an error or is unreachable */
	RC_ERR_OPENSEARCH = 6, /* OpenSearch answered with an error or is unreachable */
	RC_ERR_STORE = 7,      /* SQLite journal error */
	RC_ERR_BUSY = 8,       /* another run holds the journal */
	RC_ERR_CANCELLED = 9,  /* stopped by a signal or an API cancel */
	RC_ERR_NOTFOUND = 10,  /* no such run, id or route */
	RC_ERR_TOOLARGE = 11,  /* a document or request exceeds a limit */
	RC_ERR_RETRY = 12,     /* transient: 429/503, worth trying again */
	RC_ERR_INTERNAL = 13,  /* a bug: an invariant did not hold */
} rcode;

/* Detail of the last failure, filled by functions that take one. */
struct rerror {
	rcode code;
	char message[512];
};

/* Every function returning an rcode is declared RC_MUST_CHECK, so the
 * compiler (with -Werror) refuses a call whose result is dropped: curl's
 * "every caller checks it", enforced rather than reviewed. */
#define RC_MUST_CHECK __attribute__((warn_unused_result))

const char *rcode_name(rcode rc);
/* Where an error came from, as the journal's errors.source says it:
 * "mongo", "opensearch" (RC_ERR_RETRY too: a 429/503 is OpenSearch's) or
 * "store"; "engine" for every other. */
const char *rcode_source(rcode rc);

/* Sets e (may be NULL) and returns rc, so `return rerror_set(e, ...)` works. */
rcode rerror_set(struct rerror *e, rcode rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
