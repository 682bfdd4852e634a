/* test_http.c: http.c's pure parts: path matching, percent-decoding, the
 * bearer token, a body's doubtful members, a query name given twice, and
 * the reply helpers. No server. */
#include "check.h"
#include "http.h"

#include <stdlib.h>

static bool
seg_is(struct http_segment s, const char *want)
{
	return s.len == strlen(want) && memcmp(s.at, want, s.len) == 0;
}

static void
test_path_matches(void)
{
	struct http_segment seg[3] = {{"", 0}, {"", 0}, {"", 0}};

	CHECK(http_path_matches("/", "/", seg));
	CHECK(http_path_matches("/api/health", "/api/health", seg));
	CHECK(!http_path_matches("/api/health", "/api/health/live", seg));
	CHECK(!http_path_matches("/api/health/live", "/api/health", seg));
	CHECK(!http_path_matches("/api/health", "/api/healtH", seg));
	CHECK(
	    http_path_matches("/api/reconciliation/runs/{id}", "/api/reconciliation/runs/42", seg));
	CHECK(seg_is(seg[1], "42"));
	/* a segment never spans a "/", and is never empty */
	CHECK(!http_path_matches("/api/reconciliation/runs/{id}", "/api/reconciliation/runs/4/2",
	                         seg));
	CHECK(
	    !http_path_matches("/api/reconciliation/runs/{id}", "/api/reconciliation/runs/", seg));
	CHECK(http_path_matches("/api/mirrors/{m}/runs/{id}/ids", "/api/mirrors/ads/runs/7/ids",
	                        seg));
	CHECK(seg_is(seg[0], "ads") && seg_is(seg[1], "7"));
	CHECK(http_path_matches("/api/mirrors/{m}/docs/{doc}/diff",
	                        "/api/mirrors/m/docs/a%2Fb/diff", seg));
	CHECK(seg_is(seg[0], "m") && seg_is(seg[2], "a%2Fb"));
	CHECK(!http_path_matches("/ui/{id}", "/ui", seg));
}

static void
test_percent_decode(void)
{
	char *out = NULL;
	size_t len = 99;

	CHECK(http_percent_decode("a%2Fb", 5, &out, &len) && len == 3 &&
	      memcmp(out, "a/b", 4) == 0);
	free(out);
	/* a NUL stays in, counted by the length */
	CHECK(http_percent_decode("a%00b", 5, &out, &len) && len == 3 && out[1] == '\0' &&
	      out[2] == 'b');
	free(out);
	/* only len bytes are read: an escape cut by the length is a bad one */
	CHECK(http_percent_decode("ab%41", 2, &out, &len) && len == 2 && strcmp(out, "ab") == 0);
	free(out);
	CHECK(!http_percent_decode("ab%41", 4, &out, &len));
	free(out);
	CHECK(http_percent_decode("%e2%82%AC", 9, &out, &len) && strcmp(out, "\xe2\x82\xac") == 0);
	free(out);
	/* a bad escape: false, *out still set (the caller frees it) */
	CHECK(!http_percent_decode("a%zz", 4, &out, &len) && out != NULL && len == 0);
	free(out);
	CHECK(!http_percent_decode("a%4", 3, &out, &len) && out != NULL);
	free(out);
	CHECK(http_percent_decode("", 0, &out, &len) && len == 0 && *out == '\0');
	free(out);
}

static void
test_unescape(void)
{
	char a[] = "/api/mirrors/a%2Fb%41", b[] = "ads%00", c[] = "100%", d[] = "%4g%4";

	CHECK(http_unescape(NULL, NULL, a) == strlen("/api/mirrors/a/bA"));
	CHECK_STR(a, "/api/mirrors/a/bA");
	/* "%00" stays as it is: a NUL never cuts a value short */
	CHECK(http_unescape(NULL, NULL, b) == 6);
	CHECK_STR(b, "ads%00");
	CHECK(http_unescape(NULL, NULL, c) == 4);
	CHECK_STR(c, "100%");
	CHECK(http_unescape(NULL, NULL, d) == 5);
	CHECK_STR(d, "%4g%4");
}

static void
test_token(void)
{
	CHECK(http_token_ok("Bearer s3cret", "s3cret"));
	CHECK(http_token_ok("bearer s3cret", "s3cret")); /* the scheme is case-insensitive */
	CHECK(http_token_ok("BEARER s3cret", "s3cret"));
	CHECK(!http_token_ok("Bearer S3cret", "s3cret")); /* the token is not */
	CHECK(!http_token_ok("Bearer s3cre", "s3cret"));
	CHECK(!http_token_ok("Bearer s3crett", "s3cret"));
	CHECK(!http_token_ok("Bearer ", "s3cret"));
	CHECK(!http_token_ok("Basic s3cret", "s3cret"));
	CHECK(!http_token_ok("Bearers3cret", "s3cret"));
	CHECK(!http_token_ok("s3cret", "s3cret"));
	CHECK(!http_token_ok(NULL, "s3cret"));
}

static void
test_body_doubtful(void)
{
	static const char *const members[] = {"wait", "ids", NULL};
#define DOUBT(s) http_body_doubtful(s, sizeof(s) - 1, members)

	CHECK(DOUBT("{}") == NULL);
	CHECK(DOUBT("{\"wait\": true, \"ids\": [\"a\", \"b\"]}") == NULL);
	CHECK_STR(DOUBT("{\"wait\": true, \"wait\": false}"), "a member is given twice");
	CHECK_STR(DOUBT("{\"ids\": [\"a\\u0000b\"]}"), "a string holds a NUL character (\\u0000)");
	CHECK_STR(DOUBT("{\"ids\\u0000x\": []}"),
	          "a member's name holds a NUL character (\\u0000)");
	/* members no route reads are not judged */
	CHECK(DOUBT("{\"other\": 1, \"other\": 2}") == NULL);
	CHECK(DOUBT("{\"other\": \"a\\u0000b\"}") == NULL);
	/* what jtree refuses is not its to judge (cJSON took it) */
	CHECK(DOUBT("{\"wait\": tru") == NULL);
	CHECK(DOUBT("[1, 2]") == NULL);
#undef DOUBT
}

static void
test_body_unknown(void)
{
	static const char *const members[] = {"wait", "allowDeletes", NULL};
	cJSON *b = cJSON_Parse("{\"wait\": true, \"allowDelete\": true}");

	CHECK_STR(http_body_unknown(b, members), "allowDelete");
	CHECK_STR(http_body_unknown(b, NULL), "wait"); /* a route that takes none */
	cJSON_Delete(b);
	b = cJSON_Parse("{\"wait\": true, \"allowDeletes\": false}");
	CHECK(http_body_unknown(b, members) == NULL);
	cJSON_Delete(b);
	b = cJSON_Parse("{}");
	CHECK(http_body_unknown(b, NULL) == NULL);
	cJSON_Delete(b);
}

static void
test_name_twice(void)
{
	const char *none[] = {"limit", "kind", "after"};
	const char *twice[] = {"mirror", "limit", "mirror"};
	const char *one[] = {"x"};

	CHECK(http_name_twice(none, 3) == NULL);
	CHECK_STR(http_name_twice(twice, 3), "mirror");
	CHECK(http_name_twice(one, 1) == NULL);
	CHECK(http_name_twice(NULL, 0) == NULL);
}

static void
test_replies(void)
{
	struct reply rep = {.status = 500};
	struct call c = {.reply = &rep};
	const char *const args[] = {"limit", "5", "kind", "", NULL};

	reply_error(&c, 400, "%s must be %d", "limit", 7);
	CHECK(rep.status == 400);
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(rep.json, "success")));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(rep.json, "error")), "limit must be 7");
	/* a password in an error never leaves the process */
	reply_error(&c, 502, "cannot reach mongodb://user:pw@host:27017");
	CHECK(rep.status == 502);
	CHECK(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(rep.json, "error")), "pw@") == NULL);
	reply_json(&c, 200, ok_object());
	CHECK(rep.status == 200 && cJSON_IsTrue(cJSON_GetObjectItem(rep.json, "success")));
	cJSON_Delete(rep.json);
	/* without a connection, the query is the call's own */
	CHECK(http_query(&c, "limit") == NULL);
	c.args = args;
	CHECK_STR(http_query(&c, "limit"), "5");
	CHECK_STR(http_query(&c, "kind"), "");
	CHECK(http_query(&c, "after") == NULL);
}

int
main(void)
{
	test_path_matches();
	test_percent_decode();
	test_unescape();
	test_token();
	test_body_doubtful();
	test_body_unknown();
	test_name_twice();
	test_replies();
	return check_done("test_http");
}
