/* test_jtree.c: the canonical comparison of JSON documents (stale by
 * content) and the JSON Patch of one document's diff. */
#include "check.h"
#include "jtree.h"

#include <stdlib.h>

static struct jt *
parse(const char *s)
{
	struct jt *t = NULL;
	struct rerror err = {0};

	CHECK(jt_parse(&t, s, strlen(s), &err) == RC_OK);
	if (t == NULL)
		fprintf(stderr, "  parse %s: %s\n", s, err.message);
	return t;
}

static bool
eq(const char *a, const char *b)
{
	struct jt *x = parse(a), *y = parse(b);
	bool r = x && y && jt_equal(x, y) && jt_equal(y, x);

	jt_free(x);
	jt_free(y);
	return r;
}

static void
test_parse(void)
{
	struct jt *t = NULL;
	struct rerror err = {0};
	const char *bad[] = {"",      "{",   "[1,]",       "{\"a\" 1}", "01",    "1.",  "-",
	                     "\"abc", "tru", "{\"a\":1}x", "\"\\x\"",   "[1 2]", "nul", "\"a\tb\""};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(jt_parse(&t, bad[i], strlen(bad[i]), &err) == RC_ERR_INVALID);
		CHECK(t == NULL);
	}
	t = parse(" {\"a\" : [1, -2.5e3, \"x\\u00e9\\ud83d\\ude00\"], \"b\":{}, \"c\":null} ");
	if (t) {
		const struct jt *a = jt_get(t, "a");
		CHECK(a && a->type == JT_ARRAY && a->n == 3);
		CHECK(a && a->kids[1].raw_len == 6 && memcmp(a->kids[1].raw, "-2.5e3", 6) == 0);
		CHECK_STR(a ? a->kids[2].str : NULL, "x\xc3\xa9\xf0\x9f\x98\x80");
		CHECK(jt_get(t, "c") && jt_get(t, "c")->type == JT_NULL);
		CHECK(jt_get(t, "d") == NULL);
	}
	jt_free(t);
	/* too deep */
	char deep[1000];
	memset(deep, '[', 300);
	memset(deep + 300, ']', 300);
	deep[600] = '\0';
	CHECK(jt_parse(&t, deep, 600, &err) == RC_ERR_INVALID);
}

static void
test_equal(void)
{
	/* key order */
	CHECK(eq("{\"a\":1,\"b\":{\"x\":1,\"y\":2}}", "{\"b\":{\"y\":2,\"x\":1},\"a\":1}"));
	CHECK(!eq("{\"a\":1}", "{\"a\":1,\"b\":2}"));
	CHECK(!eq("{\"a\":1}", "{\"b\":1}"));
	/* numbers by value */
	CHECK(eq("7", "7.0"));
	CHECK(eq("7", "7e0"));
	CHECK(eq("700", "7E2"));
	CHECK(eq("0.1", "0.10"));
	CHECK(eq("0.1", "1e-1"));
	CHECK(eq("-0", "0"));
	CHECK(!eq("0.1", "0.2"));
	CHECK(!eq("7", "\"7\""));
	/* int64 near 2^63: exact while both are integers */
	CHECK(eq("9223372036854775807", "9223372036854775807"));
	CHECK(!eq("9223372036854775807", "9223372036854775806"));
	CHECK(!eq("-9223372036854775808", "-9223372036854775807"));
	CHECK(!eq("9007199254740993", "9007199254740992"));
	/* a double text of 2^63 is not the int64 2^63-1 */
	CHECK(!eq("9223372036854775807", "9.223372036854775807e18") ||
	      eq("9223372036854775807", "9223372036854775808"));
	/* beyond int64 they can only have been doubles: by value */
	CHECK(eq("9223372036854775808", "9.223372036854775808e18"));
	CHECK(eq("18446744073709551616", "1.8446744073709552e19"));
	/* the same instant in other texts */
	CHECK(eq("\"2024-01-01T00:00:00.000Z\"", "\"2024-01-01T01:00:00+01:00\""));
	CHECK(eq("\"2024-01-01T00:00:00Z\"", "\"2024-01-01T00:00:00.000Z\""));
	CHECK(eq("\"2024-01-01T00:00:00.5Z\"", "\"2024-01-01T00:00:00.500000Z\""));
	CHECK(eq("\"2024-01-01\"", "\"2024-01-01T00:00:00Z\""));
	CHECK(eq("\"+10000-01-02T00:00:00.000Z\"", "\"+10000-01-02T00:00:00Z\""));
	CHECK(!eq("\"2024-01-01T00:00:00Z\"", "\"2024-01-01T00:00:01Z\""));
	CHECK(!eq("\"2024-01-01T00:00:00.1234Z\"", "\"2024-01-01T00:00:00.1235Z\""));
	CHECK(eq("\"2024-01-01T00:00:00.1234Z\"", "\"2024-01-01T00:00:00.123400Z\""));
	CHECK(!eq("\"2024-01-01\"", "\"2024-01-02\""));
	CHECK(!eq("\"abc\"", "\"abd\""));
	/* unicode as code points */
	CHECK(eq("\"\\u00e9t\\u00e9\"", "\"\xc3\xa9t\xc3\xa9\""));
	CHECK(eq("\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""));
	CHECK(eq("\"a\\/b\"", "\"a/b\""));
	CHECK(!eq("\"e\\u0301\"", "\"\xc3\xa9\"")); /* no normalization: other code points */
	/* arrays in order */
	CHECK(eq("[1,[2,{\"a\":[]}]]", "[1.0,[2,{\"a\":[]}]]"));
	CHECK(!eq("[1,2]", "[2,1]"));
	CHECK(!eq("[1]", "[1,1]"));
	CHECK(!eq("[]", "{}"));
	/* null is not absent, not false */
	CHECK(!eq("{\"a\":null}", "{}"));
	CHECK(!eq("null", "false"));
	CHECK(eq("true", "true"));
	/* large objects compare by sorted names */
	char a[2000] = "{", b[2000] = "{";
	for (int i = 0; i < 40; i++) {
		char m[32];
		snprintf(m, sizeof(m), "%s\"k%02d\":%d", i ? "," : "", i, i);
		strcat(a, m);
		snprintf(m, sizeof(m), "%s\"k%02d\":%d.0", i ? "," : "", 39 - i, 39 - i);
		strcat(b, m);
	}
	strcat(a, "}");
	strcat(b, "}");
	CHECK(eq(a, b));
	b[strlen(b) - 4] = '9'; /* k00: 9.0 */
	CHECK(!eq(a, b));
}

static void
check_patch(const char *copy, const char *body, const char *want_patch, const char *want_fields,
            size_t want_count)
{
	struct jt *c = copy ? parse(copy) : NULL, *b = parse(body);
	struct buf p = {0}, f = {0};
	size_t count = 99;

	CHECK(jt_patch(&p, c, b, false) == RC_OK);
	CHECK_STR(p.data, want_patch);
	CHECK(jt_diff_fields(&f, 30, &count, c, b, false) == RC_OK);
	CHECK_STR(f.data ? f.data : "", want_fields);
	CHECK(count == want_count);
	buf_free(&p);
	buf_free(&f);
	jt_free(c);
	jt_free(b);
}

static void
test_patch(void)
{
	/* in sync: fields only the index has are ignored */
	check_patch("{\"a\":1,\"emb\":[0.1,0.2],\"b\":\"2024-01-01T00:00:00Z\"}",
	            "{\"b\":\"2024-01-01T00:00:00.000Z\",\"a\":1.0}", "[]", "", 0);
	check_patch("{\"a\":1,\"b\":[1,2],\"c\":{\"x\":1,\"y\":2,\"z\":3},\"emb\":1}",
	            "{\"a\":2,\"b\":[2,1],\"c\":{\"x\":1,\"y\":5,\"w\":{\"q\":1}},\"d\":null}",
	            "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2},"
	            "{\"op\":\"replace\",\"path\":\"/b\",\"value\":[2,1]},"
	            "{\"op\":\"replace\",\"path\":\"/c/y\",\"value\":5},"
	            "{\"op\":\"add\",\"path\":\"/c/w\",\"value\":{\"q\":1}},"
	            "{\"op\":\"remove\",\"path\":\"/c/z\"},"
	            "{\"op\":\"add\",\"path\":\"/d\",\"value\":null}]",
	            "a,b,c,d", 4);
	/* RFC 6901 escaping, and a name that needs JSON escaping */
	check_patch("{\"a/b\":1,\"m~n\":1}", "{\"a/b\":2,\"m~n\":2,\"q\\\"\":3}",
	            "[{\"op\":\"replace\",\"path\":\"/a~1b\",\"value\":2},"
	            "{\"op\":\"replace\",\"path\":\"/m~0n\",\"value\":2},"
	            "{\"op\":\"add\",\"path\":\"/q\\\"\",\"value\":3}]",
	            "a/b,m~n,q\"", 3);
	/* a missing copy: everything is added */
	check_patch(NULL, "{\"a\":1,\"b\":\"x\"}",
	            "[{\"op\":\"add\",\"path\":\"/a\",\"value\":1},"
	            "{\"op\":\"add\",\"path\":\"/b\",\"value\":\"x\"}]",
	            "a,b", 2);
	/* a type change is a replace, not a recursion */
	check_patch("{\"a\":{\"x\":1}}", "{\"a\":[1]}",
	            "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":[1]}]", "a", 1);
	/* the names are bounded: 30 bytes, then ",..." */
	check_patch("{}", "{\"aaaaaaaaaa\":1,\"bbbbbbbbbb\":1,\"cccccccccc\":1,\"dddddddddd\":1}",
	            "[{\"op\":\"add\",\"path\":\"/aaaaaaaaaa\",\"value\":1},"
	            "{\"op\":\"add\",\"path\":\"/bbbbbbbbbb\",\"value\":1},"
	            "{\"op\":\"add\",\"path\":\"/cccccccccc\",\"value\":1},"
	            "{\"op\":\"add\",\"path\":\"/dddddddddd\",\"value\":1}]",
	            "aaaaaaaaaa,bbbbbbbbbb,...", 4);
}

/* RECONCILE_WRITE_MODE=upsert: a partial update merges objects, so members
 * only the copy has are kept at every depth and are no difference (QA: a
 * sub-field removed in MongoDB was "stale" and "repaired" in every run by an
 * update that could not remove it); arrays are still replaced whole. */
static void
test_merge(void)
{
	struct jt *c = parse("{\"a\":{\"x\":1,\"y\":2,\"z\":3},\"l\":[{\"p\":1,\"q\":2}],"
	                     "\"emb\":1}");
	struct jt *same = parse("{\"a\":{\"x\":1,\"y\":2},\"l\":[{\"p\":1,\"q\":2}]}");
	struct jt *arr = parse("{\"a\":{\"x\":1},\"l\":[{\"p\":1}]}");
	struct jt *deep = parse("{\"a\":{\"x\":5}}");
	struct buf p = {0}, f = {0};
	size_t count = 99;

	CHECK(jt_same_fields(c, same, true));
	CHECK(!jt_same_fields(c, same, false));
	CHECK(!jt_same_fields(c, arr, true)); /* the array is written whole */
	CHECK(jt_diff_fields(&f, 30, &count, c, arr, true) == RC_OK);
	CHECK_STR(f.data ? f.data : "", "l");
	CHECK(count == 1);
	CHECK(jt_patch(&p, c, same, true) == RC_OK);
	CHECK_STR(p.data, "[]");
	buf_reset(&p);
	CHECK(jt_patch(&p, c, deep, true) == RC_OK);
	CHECK_STR(p.data, "[{\"op\":\"replace\",\"path\":\"/a/x\",\"value\":5}]");
	buf_free(&p);
	buf_free(&f);
	jt_free(c);
	jt_free(same);
	jt_free(arr);
	jt_free(deep);
}

int
main(void)
{
	test_parse();
	test_equal();
	test_patch();
	test_merge();
	return check_done("test_jtree");
}
