/* test_sample.c: the sample's maths: the Wilson score interval (known
 * values, the ends, its coverage over seeded binomial draws) and the
 * reservoir (size, the same seed the same ids, each id as likely); the
 * journal's side: a run of kind sample, never resumed, and its estimate
 * as the run report shows it. */
#include "check.h"
#include "report.h"
#include "sample.h"
#include "store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cjson/cJSON.h>

static bool
near(double a, double b)
{
	return fabs(a - b) < 1e-9;
}

static void
test_wilson_values(void)
{
	double lo, hi;

	/* reference values (the formula in Python, and Wilson 1927's tables) */
	sample_wilson(10, 100, SAMPLE_Z95, &lo, &hi);
	CHECK(near(lo, 0.0552291370606751) && near(hi, 0.17436566150491345));
	sample_wilson(50, 500, SAMPLE_Z95, &lo, &hi);
	CHECK(near(lo, 0.07667756273730172) && near(hi, 0.1294219096319401));
	sample_wilson(1, 1000, SAMPLE_Z95, &lo, &hi);
	CHECK(near(lo, 0.00017654637062607852) && near(hi, 0.0056425585979579355));
	/* the ends: exactly 0 and 1, and not empty (k/n +- z*se would be [0, 0]) */
	sample_wilson(0, 500, SAMPLE_Z95, &lo, &hi);
	CHECK(lo == 0 && near(hi, 0.007624340461552241));
	sample_wilson(20, 20, SAMPLE_Z95, &lo, &hi);
	CHECK(near(lo, 0.8388748419471806) && hi == 1);
	/* nothing looked up: nothing known */
	sample_wilson(0, 0, SAMPLE_Z95, &lo, &hi);
	CHECK(lo == 0 && hi == 1);
	/* symmetric: k of n failing is n - k of n passing */
	double lo2, hi2;
	sample_wilson(7, 40, SAMPLE_Z95, &lo, &hi);
	sample_wilson(33, 40, SAMPLE_Z95, &lo2, &hi2);
	CHECK(near(lo, 1 - hi2) && near(hi, 1 - lo2));
	/* it always holds k/n */
	for (int64_t k = 0; k <= 60; k++) {
		sample_wilson(k, 60, SAMPLE_Z95, &lo, &hi);
		CHECK(lo <= (double)k / 60 + 1e-12 && (double)k / 60 <= hi + 1e-12 && lo >= 0 &&
		      hi <= 1);
	}
}

/* Over 4,000 seeded draws of 500 from a 10% (and a 1%) drift rate, the 95%
 * interval holds the true rate about 95% of the time (the draws are fixed
 * by the seed: the test is not flaky). */
static void
test_wilson_coverage(void)
{
	static const double rates[] = {0.10, 0.01};
	uint64_t state = 20;

	for (size_t r = 0; r < 2; r++) {
		int covered = 0, trials = 4000;
		for (int t = 0; t < trials; t++) {
			int64_t k = 0;
			for (int i = 0; i < 500; i++)
				k += (double)(sample_next(&state) >> 11) * 0x1.0p-53 < rates[r];
			double lo, hi;
			sample_wilson(k, 500, SAMPLE_Z95, &lo, &hi);
			covered += lo <= rates[r] && rates[r] <= hi;
		}
		printf("coverage at %.2f: %.4f\n", rates[r], (double)covered / trials);
		CHECK(covered >= trials * 93 / 100 && covered <= trials * 98 / 100);
	}
}

static void
offer_all(struct sample_reservoir *r, int n)
{
	char id[16];

	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "id%03d", i);
		CHECK(sample_reservoir_offer(r, id) == RC_OK);
	}
}

static void
test_reservoir(void)
{
	struct sample_reservoir a, b;
	int counts[100] = {0};

	/* fewer offered than wanted: every one kept */
	CHECK(sample_reservoir_init(&a, 50, 1) == RC_OK);
	offer_all(&a, 30);
	CHECK(a.n == 30 && a.seen == 30);
	sample_reservoir_free(&a);
	sample_reservoir_free(&a); /* twice: a no-op */

	/* the same seed, the same ids; k distinct */
	CHECK(sample_reservoir_init(&a, 5, 42) == RC_OK);
	CHECK(sample_reservoir_init(&b, 5, 42) == RC_OK);
	offer_all(&a, 100);
	offer_all(&b, 100);
	CHECK(a.n == 5 && a.seen == 100);
	bool same = true, distinct = true;
	for (int i = 0; i < 5; i++) {
		same = same && strcmp(a.v[i], b.v[i]) == 0;
		for (int j = 0; j < i; j++)
			distinct = distinct && strcmp(a.v[i], a.v[j]) != 0;
	}
	CHECK(same && distinct);
	sample_reservoir_free(&a);
	sample_reservoir_free(&b);

	/* uniform: over 20,000 seeds each of 100 ids is kept about 5% of the
	 * time (1,000 of 20,000; fixed seeds, so the counts are fixed too) */
	for (uint64_t seed = 0; seed < 20000; seed++) {
		CHECK(sample_reservoir_init(&a, 5, seed) == RC_OK);
		offer_all(&a, 100);
		for (int i = 0; i < a.n; i++)
			counts[atoi(a.v[i] + 2)]++;
		sample_reservoir_free(&a);
	}
	int lo = counts[0], hi = counts[0];
	for (int i = 1; i < 100; i++) {
		lo = counts[i] < lo ? counts[i] : lo;
		hi = counts[i] > hi ? counts[i] : hi;
	}
	printf("reservoir: each id kept %d to %d times of 1000 expected\n", lo, hi);
	CHECK(lo > 880 && hi < 1120); /* about 4 standard deviations */
}

static void
test_journal(void)
{
	char path[] = "/tmp/test_sample_XXXXXX";
	int fd = mkstemp(path);
	struct store *s = NULL;
	struct store_run *r = NULL;
	struct rerror err = {0};
	int64_t id = 0, unfinished = -1;
	cJSON *rep = NULL;

	CHECK(fd >= 0);
	close(fd);
	unlink(path);
	CHECK(store_open(&s, path, &err) == RC_OK);
	CHECK(store_run_begin(s, &id, "default", RUN_SAMPLE, "cli", "{}") == RC_OK);
	CHECK(store_run_get(s, &r, id) == RC_OK && r->kind == RUN_SAMPLE);
	CHECK(strcmp(store_run_kind_name(RUN_SAMPLE), "sample") == 0);
	store_run_free(r);
	/* running, yet nothing `resume` or the service would take up */
	CHECK(store_run_unfinished(s, &unfinished, NULL) == RC_OK && unfinished == 0);
	struct store_sample e = {.asked = 500,
	                         .seed = 11,
	                         .method = "id stream",
	                         .population = 2000,
	                         .mongo_n = 500,
	                         .missing = 30,
	                         .stale = 20,
	                         .rate = 0.1,
	                         .rate_low = 0.07667756273730172,
	                         .rate_high = 0.1294219096319401,
	                         .index_n = -1,
	                         .orphans = -1,
	                         .orphan_rate = NAN,
	                         .orphan_low = NAN,
	                         .orphan_high = NAN,
	                         .seconds = 2.5};
	CHECK(store_sample_record(s, id, &e) == RC_OK);
	CHECK(report_run(s, &rep, id) == RC_OK);
	const cJSON *j = cJSON_GetObjectItem(rep, "sample");
	CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "rate")) == 0.1 &&
	      cJSON_GetNumberValue(cJSON_GetObjectItem(j, "missing")) == 30 &&
	      cJSON_IsNull(cJSON_GetObjectItem(j, "orphanRate")) &&
	      cJSON_IsNull(cJSON_GetObjectItem(j, "indexN")) &&
	      cJSON_IsNull(cJSON_GetObjectItem(j, "note")));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "interval")), "wilson95");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(rep, "kind")), "sample");
	cJSON_Delete(rep);
	store_free(s);
	unlink(path);
	for (const char *ext = "-wal\0-shm\0"; *ext; ext += 5) {
		char side[64];
		snprintf(side, sizeof(side), "%s%s", path, ext);
		unlink(side);
	}
}

int
main(void)
{
	test_journal();
	test_wilson_values();
	test_wilson_coverage();
	test_reservoir();
	return check_done("test_sample");
}
