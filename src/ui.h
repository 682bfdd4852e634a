/*
 * ui.h: the dashboard page and its files, compiled into the binary.
 */
#ifndef RECONCILER_UI_H
#define RECONCILER_UI_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>

/* One file of ui/, as tools/embed-ui.cmake wrote it into ui_gen.c. */
struct ui_file {
	const char *path;         /* the URL path: "/ui/app.js"; the page is "/ui" */
	const char *content_type; /* from the file's extension */
	const unsigned char *data;
	size_t len;
};

/* Every file, ended by {NULL}: generated at build time. */
extern const struct ui_file ui_files[];

/* The security headers of every dashboard answer, ended by {NULL, NULL}:
 * a strict Content-Security-Policy (only the service's own origin, no
 * inline script or style, no framing) and no referrer. (Every answer of
 * the API, these too, says X-Content-Type-Options: nosniff.) */
extern const char *const ui_headers[][2];

/* The file served at path ("/ui" or "/" is the page, "/ui/app.js" ...) into
 * *out; RC_ERR_NOTFOUND when there is none. */
RC_MUST_CHECK rcode ui_file_find(const struct ui_file **out, const char *path);

/* Whether an Accept header (may be NULL) ranks text/html above
 * application/json, as a browser's does; curl's and API clients' don't. */
bool ui_wants_html(const char *accept);

/* Whether a request for route pattern with this Accept header is for the
 * page or its files, which need no token: /ui, /ui/{id}, and / when
 * ui_wants_html. */
bool ui_is_page(const char *pattern, const char *accept);

#endif
