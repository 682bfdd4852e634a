/* error.c: names and detail for rcode; see error.h. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

const char *
rcode_name(rcode rc)
{
	switch (rc) {
	case RC_OK:
		return "ok";
	case RC_ERR_NOMEM:
		return "out of memory";
	case RC_ERR_INVALID:
		return "invalid input";
	case RC_ERR_CONFIG:
		return "bad configuration";
	case RC_ERR_IO:
		return "i/o error";
	case RC_ERR_MONGO:
		return "mongodb error";
	case RC_ERR_OPENSEARCH:
		return "opensearch error";
	case RC_ERR_STORE:
		return "journal error";
	case RC_ERR_BUSY:
		return "busy";
	case RC_ERR_CANCELLED:
		return "cancelled";
	case RC_ERR_NOTFOUND:
		return "not found";
	case RC_ERR_TOOLARGE:
		return "too large";
	case RC_ERR_RETRY:
		return "temporarily unavailable";
	case RC_ERR_INTERNAL:
		return "internal error";
	}
	return "unknown error";
}

static const char *const sources[] = {
    [RC_ERR_MONGO] = "mongo",
    [RC_ERR_OPENSEARCH] = "opensearch",
    [RC_ERR_STORE] = "store",
    [RC_ERR_RETRY] = "opensearch",
};

const char *
rcode_source(rcode rc)
{
	if ((size_t)rc < sizeof(sources) / sizeof(*sources) && sources[rc])
		return sources[rc];
	return "engine";
}

rcode
rerror_set(struct rerror *e, rcode rc, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return rc;
	e->code = rc;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return rc;
}
