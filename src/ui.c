/*
 * ui.c: the dashboard page, served by the binary itself.
 *
 * - The page is static: ui/index.html, ui/app.js (plain JavaScript, no
 *   build step, no library), ui/app.css and an icon, compiled into
 *   ui_gen.c by tools/embed-ui.cmake. It reads the API from the browser
 *   like any client, so it shows nothing the API does not (secrets are
 *   masked there), and holds no data itself: it is served without the
 *   token, which the user types into the page for the API calls.
 * - Every answer carries a strict Content-Security-Policy: the service's
 *   own origin only, no inline script or style, no framing. An id or an
 *   error message that slips past the page's escaping (it renders every
 *   value as text) still cannot run.
 * - Content negotiation on GET /: a browser (text/html ranked above
 *   application/json in its Accept) gets the page, every other client the
 *   JSON list of endpoints, as before.
 */
#include "ui.h"

#include <string.h>
#include <strings.h>

const char *const ui_headers[][2] = {
    {"Content-Security-Policy",
     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
     "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
     "frame-ancestors 'none'"},
    {"X-Frame-Options", "DENY"},
    {"Referrer-Policy", "no-referrer"},
    {NULL, NULL},
};

rcode
ui_file_find(const struct ui_file **out, const char *path)
{
	*out = NULL;
	if (strcmp(path, "/") == 0)
		path = "/ui";
	for (const struct ui_file *f = ui_files; f->path; f++)
		if (strcmp(f->path, path) == 0) {
			*out = f;
			return RC_OK;
		}
	return RC_ERR_NOTFOUND;
}

/* The q of a media range's parameters ("; q=0.8; level=1"), in thousandths;
 * 1000 when absent, 0 when malformed (RFC 9110: at most three decimals). */
static int
quality(const char *p, const char *end)
{
	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *stop = semi ? semi : end;
		while (p < stop && (*p == ' ' || *p == '\t'))
			p++;
		if (stop - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
			int q = 0, digits = 0;
			p += 2;
			if (p < stop && (*p == '0' || *p == '1'))
				q = (*p++ - '0') * 1000;
			else
				return 0;
			if (p < stop && *p == '.')
				for (p++; p < stop && *p >= '0' && *p <= '9' && digits < 3; p++)
					q += (*p - '0') * (digits == 0   ? 100
					                   : digits == 1 ? 10
					                                 : 1),
					    digits++;
			while (p < stop && (*p == ' ' || *p == '\t'))
				p++;
			return p == stop && q <= 1000 ? q : 0;
		}
		p = semi ? semi + 1 : end;
	}
	return 1000;
}

/* The quality accept gives type/subtype: that of its most specific range
 * that matches (type/subtype, then type/star, then star/star), 0 if none. */
static int
accept_quality(const char *accept, const char *type, const char *subtype)
{
	int best_rank = -1, best_q = 0;
	size_t tl = strlen(type), sl = strlen(subtype);

	for (const char *p = accept; *p;) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		const char *params = memchr(p, ';', (size_t)(end - p));
		const char *rend = params ? params : end;
		const char *slash;
		int rank = -1;

		while (p < rend && (*p == ' ' || *p == '\t'))
			p++;
		while (rend > p && (rend[-1] == ' ' || rend[-1] == '\t'))
			rend--;
		slash = memchr(p, '/', (size_t)(rend - p));
		if (slash) {
			size_t a = (size_t)(slash - p), b = (size_t)(rend - slash - 1);
			bool any_type = a == 1 && *p == '*', any_sub = b == 1 && slash[1] == '*';
			if (any_type && any_sub)
				rank = 0;
			else if (a == tl && strncasecmp(p, type, tl) == 0 && any_sub)
				rank = 1;
			else if (a == tl && strncasecmp(p, type, tl) == 0 && b == sl &&
			         strncasecmp(slash + 1, subtype, sl) == 0)
				rank = 2;
		}
		if (rank > best_rank) {
			best_rank = rank;
			best_q = quality(params ? params + 1 : end, end);
		}
		p = comma ? comma + 1 : end;
	}
	return best_q;
}

bool
ui_wants_html(const char *accept)
{
	if (accept == NULL)
		return false;
	return accept_quality(accept, "text", "html") >
	       accept_quality(accept, "application", "json");
}

bool
ui_is_page(const char *pattern, const char *accept)
{
	return strcmp(pattern, "/ui") == 0 || strncmp(pattern, "/ui/", 4) == 0 ||
	       (strcmp(pattern, "/") == 0 && ui_wants_html(accept));
}
