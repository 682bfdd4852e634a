/* test_summary.c: the range summaries' hash (fixed vectors: the values the
 * Painless script gives, tests/integration/test_summary.py checks the
 * script against the same function), versions, the plan of a chunk's
 * ranges and the parse of the script's answer. */
#include "check.h"
#include "opensearch_summary.h"
#include "summary.h"

#include <stdint.h>
#include <stdlib.h>

static void
test_vectors(void)
{
	static const struct {
		const char *key, *docid;
		bool has_version;
		int64_t version;
		uint64_t want;
	} v[] = {
	    {"abc", "abc", true, 1700000000000LL, 0x72723d3f1e58587fULL},
	    /* 2- and 4-byte UTF-8: UTF-16 units, a surrogate pair for the emoji */
	    {"é😀x", "é😀x", true, 1700000000123LL, 0x1e3bbdcf12dfac16ULL},
	    {"42", "42", false, 0, 0x19a476b017f3b1a6ULL},
	    {"507f1f77bcf86cd799439011", "507f1f77bcf86cd799439011", true, 5,
	     0x97e9c032e5d2399fULL},
	    {"日本語", "日本語", true, -1, 0x40de44e94e684909ULL},
	    /* a copy under a foreign _id */
	    {"k", "auto-1", true, 7, 0xb930a61c5cee7addULL},
	    {"", "", true, 0, 0x618e669a88981fa6ULL},
	    {"𐍈", "𐍈", true, 9007199254740991LL, 0x4e821e291c75fdf7ULL},
	    {"a", "a", true, INT64_MIN, 0x39169d788a4a3523ULL},
	    /* no version (RECONCILE_VERSION_FIELD empty, or the copy lacks it):
	     * unit 2, what the script gives with params.v "" (QA20 F3) */
	    {"é😀x", "é😀x", false, 0, 0x444b6181e573e11eULL},
	    {"507f1f77bcf86cd799439011", "507f1f77bcf86cd799439011", false, 0,
	     0x7b1854571072e00cULL},
	    {"k", "auto-1", false, 0, 0x5fcdf98a20c1e8b4ULL},
	    {"", "", false, 0, 0x88c8df212e94f520ULL},
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint64_t h = summary_hash(v[i].key, strlen(v[i].key), v[i].docid,
		                          strlen(v[i].docid), v[i].has_version, v[i].version);
		if (h != v[i].want)
			fprintf(stderr, "vector %zu: got %016llx\n", i, (unsigned long long)h);
		CHECK(h == v[i].want);
	}
	/* no version and version 0, key/_id split differently: all differ */
	CHECK(summary_hash("a", 1, "a", 1, false, 0) != summary_hash("a", 1, "a", 1, true, 0));
	CHECK(summary_hash("ab", 2, "c", 1, false, 0) != summary_hash("a", 1, "bc", 2, false, 0));
	/* one millisecond apart */
	CHECK(summary_hash("a", 1, "a", 1, true, 1000) != summary_hash("a", 1, "a", 1, true, 999));
}

static void
test_version(void)
{
	int64_t v;

	CHECK(summary_version("1700000000000", &v) && v == 1700000000000LL);
	CHECK(summary_version("-5", &v) && v == -5);
	CHECK(summary_version("42.0", &v) && v == 42);
	CHECK(!summary_version("42.5", &v));
	CHECK(!summary_version("v1", &v));
	CHECK(!summary_version("1e300", &v));
	CHECK(!summary_version("", &v));
}

static void
test_plan(void)
{
	struct idlist m = {0};
	struct summary_range *r = NULL;
	size_t n = 0;
	const char *ids[] = {"a", "b", "c", "d", "e"};
	const char *vers[] = {"1", "2", "x", "4", NULL};
	uint64_t sum = 0;

	for (size_t i = 0; i < 5; i++)
		CHECK(idlist_push(&m, ids[i], 1, 0, vers[i], -1) == RC_OK);
	CHECK(summary_plan(&r, &n, &m, "0", 2, true) == RC_OK);
	CHECK(n == 3);
	/* (0, b], (b, d], (d, e]: each from the last one's end */
	CHECK(n == 3 && strcmp(r[0].lo, "0") == 0 && strcmp(r[0].hi, "b") == 0 &&
	      strcmp(r[1].lo, "b") == 0 && strcmp(r[1].hi, "d") == 0 && strcmp(r[2].lo, "d") == 0 &&
	      strcmp(r[2].hi, "e") == 0);
	CHECK(n == 3 && r[0].count == 2 && r[1].count == 2 && r[2].count == 1);
	/* a text version cannot be reproduced by the script: streamed */
	CHECK(n == 3 && r[0].summarizable && !r[1].summarizable && r[2].summarizable);
	sum = summary_hash("a", 1, "a", 1, true, 1) + summary_hash("b", 1, "b", 1, true, 2);
	CHECK(n == 3 && r[0].sum == sum);
	r[0].os_ok = true;
	r[0].os_count = 2;
	r[0].os_sum = sum;
	CHECK(summary_equal(&r[0]));
	r[0].os_sum++;
	CHECK(!summary_equal(&r[0]));
	r[1].os_ok = true;
	r[1].os_count = r[1].count;
	r[1].os_sum = r[1].sum;
	CHECK(!summary_equal(&r[1]));
	free(r);
	/* no versions compared: every range can be summarized, each id
	 * hashed in the no-version form whatever its document holds */
	CHECK(summary_plan(&r, &n, &m, NULL, 10, false) == RC_OK);
	CHECK(n == 1 && r[0].lo == NULL && r[0].summarizable && r[0].count == 5);
	sum = 0;
	for (size_t i = 0; i < 5; i++)
		sum += summary_hash(ids[i], 1, ids[i], 1, false, 0);
	CHECK(n == 1 && r[0].sum == sum);
	free(r);
	idlist_free(&m);
}

/* Which probe answers are the cluster refusing scripts, and which a
 * script that ran and failed (QA20 F3: a null param was blamed on the
 * cluster). */
static void
test_refused(void)
{
	CHECK(opensearch_summary_refused(
	    "illegal_argument_exception: script_lang not supported [painless]"));
	CHECK(opensearch_summary_refused(
	    "illegal_argument_exception: cannot execute [inline] scripts"));
	CHECK(opensearch_summary_refused(
	    "illegal_argument_exception: cannot execute scripts using [aggs] context"));
	CHECK(!opensearch_summary_refused("null_pointer_exception: Cannot invoke "
	                                  "\"Object.getClass()\" because \"original\" is null"));
	CHECK(!opensearch_summary_refused("script_exception: runtime error"));
	CHECK(!opensearch_summary_refused(NULL));
}

static void
test_parse(void)
{
	int64_t c;
	uint64_t s;

	CHECK(summary_parse("3:-7500252379572192865", &c, &s) && c == 3 &&
	      s == 0x97e9c032e5d2399fULL);
	CHECK(summary_parse("0:0", &c, &s) && c == 0 && s == 0);
	CHECK(!summary_parse("3", &c, &s));
	CHECK(!summary_parse("3:", &c, &s));
	CHECK(!summary_parse("x:1", &c, &s));
	CHECK(!summary_parse("3:1 ", &c, &s));
}

int
main(void)
{
	test_vectors();
	test_version();
	test_plan();
	test_parse();
	test_refused();
	return check_done("test_summary");
}
