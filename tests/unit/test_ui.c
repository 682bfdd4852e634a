/* test_ui.c: content negotiation on GET /, and the embedded files. */
#include "check.h"
#include "ui.h"

static void
test_wants_html(void)
{
	/* Chromium's and Firefox's navigation Accept headers */
	CHECK(ui_wants_html(
	    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
	    "image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"));
	CHECK(ui_wants_html("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
	CHECK(ui_wants_html("text/*"));
	CHECK(ui_wants_html("application/json;q=0.5, text/html"));
	CHECK(ui_wants_html(" TEXT/HTML ; Q=1 , application/json ; q=0.999"));
	/* API clients: JSON, as before the page */
	CHECK(!ui_wants_html(NULL));
	CHECK(!ui_wants_html(""));
	CHECK(!ui_wants_html("*/*"));
	CHECK(!ui_wants_html("application/json"));
	CHECK(!ui_wants_html("application/json, text/html"));
	CHECK(!ui_wants_html("text/html;q=0.5, application/json"));
	CHECK(!ui_wants_html("text/html;q=0, */*"));
	CHECK(!ui_wants_html("application/*, text/html;q=0.9"));
	/* malformed: never a crash, a bad q counts as 0 */
	CHECK(!ui_wants_html("text/html;q=2"));
	CHECK(!ui_wants_html("text/html;q=abc"));
	CHECK(!ui_wants_html("text/html;q=0.5x"));
	CHECK(!ui_wants_html(",,,;;;//q="));
	CHECK(!ui_wants_html("text"));
	CHECK(ui_wants_html("text/html;;q=1;"));
	/* which requests need no token */
	CHECK(ui_is_page("/ui", NULL) && ui_is_page("/ui/{id}", "*/*"));
	CHECK(ui_is_page("/", "text/html") && !ui_is_page("/", "*/*") && !ui_is_page("/", NULL));
	CHECK(!ui_is_page("/api/mirrors", "text/html") && !ui_is_page("/uix", NULL));
}

static void
test_files(void)
{
	const struct ui_file *f;

	CHECK(ui_file_find(&f, "/ui") == RC_OK && strstr(f->content_type, "text/html") &&
	      f->len > 0 && strstr((const char *)f->data, "/ui/app.js"));
	CHECK(ui_file_find(&f, "/") == RC_OK && strcmp(f->path, "/ui") == 0);
	CHECK(ui_file_find(&f, "/ui/app.js") == RC_OK &&
	      strstr(f->content_type, "text/javascript") && f->data[f->len] == '\0');
	CHECK(ui_file_find(&f, "/ui/app.css") == RC_OK && strstr(f->content_type, "text/css"));
	CHECK(ui_file_find(&f, "/ui/nope.js") == RC_ERR_NOTFOUND && f == NULL);
	CHECK(ui_file_find(&f, "/ui/") == RC_ERR_NOTFOUND);
	CHECK(ui_file_find(&f, "/ui/../ui") == RC_ERR_NOTFOUND);
	for (size_t i = 0; ui_headers[i][0]; i++)
		if (strcmp(ui_headers[i][0], "Content-Security-Policy") == 0)
			CHECK(strstr(ui_headers[i][1], "default-src 'self'") &&
			      !strstr(ui_headers[i][1], "unsafe"));
}

int
main(void)
{
	test_wants_html();
	test_files();
	return check_done("test_ui");
}
