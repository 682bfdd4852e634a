/* test_partition.c: the arithmetic of a partition plan: K/N parsed or
 * refused, ObjectId split points (exact over 96 bits, in order, by time
 * first, ids of one second still split) and bounds that tile the key
 * space, the first open below and the last open above; the journal keeps
 * a run's partition and plan (migration 0015) and report --merge reads
 * them back, saying when the partitions do not make up the plan. */
#include "check.h"
#include "partition.h"
#include "report_merge.h"
#include "store.h"

#include <stdlib.h>
#include <unistd.h>

static void
test_parse(void)
{
	struct rerror err = {0};
	int k, n;

	CHECK(partition_parse(&k, &n, "0/4", &err) == RC_OK && k == 0 && n == 4);
	CHECK(partition_parse(&k, &n, "3/4", &err) == RC_OK && k == 3 && n == 4);
	CHECK(partition_parse(&k, &n, "0/1", &err) == RC_OK && k == 0 && n == 1);
	CHECK(partition_parse(&k, &n, "1023/1024", &err) == RC_OK && n == PARTITION_MAX);
	const char *bad[] = {"4/4",  "1/0", "-1/4",   "x",    "1/",         "/4",   "1/4/",
	                     "1 /4", "",    "0/1025", "1/+4", "00000001/4", "1/4x", "0x1/4"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		err = (struct rerror){0};
		CHECK(partition_parse(&k, &n, bad[i], &err) == RC_ERR_CONFIG && k == 0 && n == 0 &&
		      err.message[0]);
	}
	CHECK(partition_parse(&k, &n, NULL, &err) == RC_ERR_CONFIG);
}

static void
test_oid_split(void)
{
	char out[25];

	/* halfway in time */
	partition_oid_split(out, "000000000000000000000000", "100000000000000000000000", 1, 2);
	CHECK_STR(out, "080000000000000000000000");
	/* one second: the low bytes split (a loader's counter) */
	partition_oid_split(out, "65920080000000000000000a", "659200800000000000000fa0", 1, 4);
	CHECK_STR(out, "6592008000000000000003ef");
	/* the whole 96 bits, and a large i (no overflow past 2^96 * 1024) */
	partition_oid_split(out, "000000000000000000000000", "ffffffffffffffffffffffff", 1023,
	                    1024);
	CHECK_STR(out, "ffbfffffffffffffffffffff");
	partition_oid_split(out, "000000000000000000000000", "ffffffffffffffffffffffff", 1, 3);
	CHECK_STR(out, "555555555555555555555555");
	/* borrows across bytes */
	partition_oid_split(out, "00000000000000000000ffff", "000000000000000000010001", 1, 2);
	CHECK_STR(out, "000000000000000000010000");
	/* equal ends: every split is that id */
	partition_oid_split(out, "6592008000000000000003ef", "6592008000000000000003ef", 2, 3);
	CHECK_STR(out, "6592008000000000000003ef");
	/* in order, between the ends */
	char prev[25] = "6592008000000000000003ef";
	for (int i = 1; i < 16; i++) {
		partition_oid_split(out, "6592008000000000000003ef", "66aa1b2c3d4e5f6071829304", i,
		                    16);
		CHECK(strcmp(out, prev) >= 0 && strcmp(out, "66aa1b2c3d4e5f6071829304") <= 0);
		memcpy(prev, out, sizeof(prev));
	}
}

static void
test_oid_ends(void)
{
	char lo[25], hi[25], a[25], b[25];

	/* a second apart (a test's ids): the ids themselves */
	partition_oid_ends(lo, hi, "65920080000000000000000a", "659200800000000000000fa0", 4);
	CHECK_STR(lo, "65920080000000000000000a");
	CHECK_STR(hi, "659200800000000000000fa0");
	/* under n hours apart: still the ids */
	partition_oid_ends(lo, hi, "659200800000000000000001", "659230bf0000000000000001", 4);
	CHECK_STR(hi, "659230bf0000000000000001");
	/* a year apart: whole hours, the smallest down, the largest up */
	partition_oid_ends(lo, hi, "659200a1aabbccddeeff0011", "67744d15aabbccddeeff0011", 4);
	CHECK_STR(lo, "659200800000000000000000");
	CHECK_STR(hi, "67744d400000000000000000");
	/* newer ids within the hour leave the plan as it was */
	partition_oid_split(a, lo, hi, 1, 4);
	partition_oid_ends(lo, hi, "659200a1aabbccddeeff0011", "67744d3f0000000000000099", 4);
	partition_oid_split(b, lo, hi, 1, 4);
	CHECK_STR(a, b);
	/* the end of time */
	partition_oid_ends(lo, hi, "000000000000000000000000", "fffffff00000000000000000", 2);
	CHECK_STR(hi, "ffffffffffffffffffffffff");
}

static void
test_bounds(void)
{
	const char *splits[] = {"b", "d", "f"};
	struct partition p[4];
	char text[200];

	for (int k = 0; k < 4; k++) {
		p[k] = (struct partition){.k = k, .n = 4};
		CHECK(partition_set_bounds(&p[k], ID_STRING, splits) == RC_OK && p[k].planned);
	}
	CHECK(p[0].lo == NULL && p[3].hi == NULL);
	for (int k = 0; k < 3; k++)
		CHECK_STR(p[k].hi, p[k + 1].lo);
	/* every key in exactly one partition, orphans' keys too */
	const char *keys[] = {"", "0", "a", "b", "c", "d", "e", "f", "zzz", "\xff"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
		int in = 0;
		for (int k = 0; k < 4; k++)
			in += partition_holds(&p[k], keys[i]);
		CHECK(in == 1);
	}
	CHECK(partition_holds(&p[1], "b") && !partition_holds(&p[1], "d"));
	partition_describe(&p[0], text, sizeof(text));
	CHECK_STR(text, "partition 0/4 [-inf, b)");
	partition_describe(&p[3], text, sizeof(text));
	CHECK_STR(text, "partition 3/4 [f, +inf)");
	for (int k = 0; k < 4; k++)
		partition_clear(&p[k]);
	struct partition whole = {0};
	CHECK(partition_holds(&whole, "anything"));
	/* one partition: both ends open */
	struct partition one = {.k = 0, .n = 1};
	CHECK(partition_set_bounds(&one, ID_OID, NULL) == RC_OK && one.lo == NULL &&
	      one.hi == NULL);
	partition_clear(&one);
}

/* A journal with one partition run k of n, range [lo, hi). */
static void
journal_with(char *path, int k, int n, const char *lo, const char *hi)
{
	int fd = mkstemp(path);
	struct store *s = NULL;
	struct store_run *r = NULL;
	struct rerror err = {0};
	int64_t id = 0;

	CHECK(fd >= 0);
	close(fd);
	unlink(path);
	CHECK(store_open(&s, path, &err) == RC_OK);
	CHECK(store_run_begin(s, &id, "default", RUN_DRY_RUN, "cli", "{}") == RC_OK);
	CHECK(store_run_partition(s, id, k, n, NULL, NULL, NULL) == RC_OK);
	CHECK(store_run_get(s, &r, id) == RC_OK && r->partition_k == k && r->partition_n == n &&
	      r->partition_type == NULL);
	store_run_free(r);
	CHECK(store_run_partition(s, id, k, n, "oid", lo, hi) == RC_OK);
	CHECK(store_run_get(s, &r, id) == RC_OK && r->partition_type &&
	      strcmp(r->partition_type, "oid") == 0);
	CHECK(r && (lo ? r->partition_lo && strcmp(r->partition_lo, lo) == 0 : !r->partition_lo));
	CHECK(r && (hi ? r->partition_hi && strcmp(r->partition_hi, hi) == 0 : !r->partition_hi));
	store_run_free(r);
	CHECK(store_run_finish(s, id, RUN_COMPLETED, NULL) == RC_OK);
	store_free(s);
}

static void
test_journal_merge(void)
{
	char a[] = "/tmp/test_partition_XXXXXX", b[] = "/tmp/test_partition_XXXXXX",
	     c[] = "/tmp/test_partition_XXXXXX";
	const char *two[] = {a, b}, *gap[] = {a, c}, *one[] = {a};
	struct rerror err = {0};
	cJSON *m = NULL;
	bool complete = true;

	journal_with(a, 0, 2, NULL, "65920080000000000000000a");
	journal_with(b, 1, 2, "65920080000000000000000a", NULL);
	journal_with(c, 1, 2, "65920080000000000000000b", NULL);
	CHECK(report_merge(&m, &complete, two, 2, 3600, NULL, &err) == RC_OK && complete);
	CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(m, "partitions")) == 2);
	CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(m, "problems")) == 0);
	cJSON_Delete(m);
	/* plans that do not meet (computed from different collections) */
	CHECK(report_merge(&m, &complete, gap, 2, 3600, NULL, &err) == RC_OK && !complete);
	CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(m, "problems")) == 1);
	cJSON_Delete(m);
	/* a partition missing, or given twice */
	CHECK(report_merge(&m, &complete, one, 1, 3600, NULL, &err) == RC_OK && !complete);
	cJSON_Delete(m);
	const char *twice[] = {a, a};
	CHECK(report_merge(&m, &complete, twice, 2, 3600, NULL, &err) == RC_OK && !complete);
	cJSON_Delete(m);
	unlink(a);
	unlink(b);
	unlink(c);
	/* a journal that is not there */
	CHECK(report_merge(&m, &complete, two, 1, 3600, NULL, &err) == RC_ERR_NOTFOUND &&
	      m == NULL);
}

int
main(void)
{
	test_parse();
	test_oid_split();
	test_oid_ends();
	test_bounds();
	test_journal_merge();
	return check_done("test_partition");
}
