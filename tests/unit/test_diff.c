/* test_diff.c: the merge of sorted id lists. */
#include "check.h"
#include "diff.h"

#include <stdlib.h>

static void
fill(struct idlist *l, const char *const *ids, const char *const *versions, size_t n)
{
	for (size_t i = 0; i < n; i++)
		CHECK(idlist_push(l, ids[i], strlen(ids[i]), 0, versions ? versions[i] : NULL,
		                  -1) == RC_OK);
}

static void
test_merge(void)
{
	const char *m[] = {"a", "b", "d", "e", "g"};
	const char *mv[] = {"1", "2", "3", "4", "5"};
	const char *o[] = {"b", "c", "d", "e", "f"};
	const char *ov[] = {"2", "9", "3", "0", "1"};
	struct idlist lm = {0}, lo = {0};
	struct drift d;

	fill(&lm, m, mv, 5);
	fill(&lo, o, ov, 5);
	CHECK(diff_is_sorted(&lm) && diff_is_sorted(&lo));
	CHECK(diff_merge(&d, &lm, &lo, true) == RC_OK);
	CHECK(d.n_missing == 2 && d.missing[0] == 0 && d.missing[1] == 4); /* a, g */
	CHECK(d.n_orphan == 2 && d.orphan[0] == 1 && d.orphan[1] == 4);    /* c, f */
	CHECK(d.n_stale == 1 && d.stale[0] == 3);                          /* e */
	drift_free(&d);
	CHECK(diff_merge(&d, &lm, &lo, false) == RC_OK);
	CHECK(d.n_stale == 0);
	drift_free(&d);
	idlist_free(&lm);
	idlist_free(&lo);
}

static void
test_equal_counts(void)
{
	/* k missing + k orphans: equal counts, still drift */
	const char *m[] = {"1", "2", "3"}, *o[] = {"1", "2", "4"};
	struct idlist lm = {0}, lo = {0};
	struct drift d;

	fill(&lm, m, NULL, 3);
	fill(&lo, o, NULL, 3);
	CHECK(diff_merge(&d, &lm, &lo, false) == RC_OK);
	CHECK(d.n_missing == 1 && d.n_orphan == 1);
	drift_free(&d);
	idlist_free(&lm);
	idlist_free(&lo);
}

static void
test_empty_and_order(void)
{
	const char *m[] = {"x"};
	struct idlist lm = {0}, lo = {0};
	struct drift d;

	CHECK(diff_merge(&d, &lm, &lo, true) == RC_OK);
	CHECK(d.n_missing + d.n_orphan + d.n_stale == 0);
	drift_free(&d);
	fill(&lm, m, NULL, 1);
	CHECK(diff_merge(&d, &lm, &lo, true) == RC_OK && d.n_missing == 1);
	drift_free(&d);
	CHECK(diff_merge(&d, &lo, &lm, true) == RC_OK && d.n_orphan == 1);
	drift_free(&d);
	/* byte order: shorter first on a tie, bytes compare unsigned */
	CHECK(diff_compare("ab", 2, "abc", 3) < 0);
	CHECK(diff_compare("\xc3\xa9", 2, "z", 1) > 0);
	/* a version missing on the index side is stale; missing in MongoDB is not */
	idlist_clear(&lm);
	CHECK(idlist_push(&lm, "k", 1, 0, "5", -1) == RC_OK);
	CHECK(idlist_push(&lo, "k", 1, 0, NULL, -1) == RC_OK);
	CHECK(diff_merge(&d, &lm, &lo, true) == RC_OK && d.n_stale == 1);
	drift_free(&d);
	CHECK(diff_merge(&d, &lo, &lm, true) == RC_OK && d.n_stale == 0);
	drift_free(&d);
	idlist_free(&lm);
	idlist_free(&lo);
}

static void
test_shift(void)
{
	struct idlist l = {0};
	char id[16];

	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "%05d", i);
		CHECK(idlist_push(&l, id, 5, 0, i % 2 ? "v" : NULL, i) == RC_OK);
	}
	CHECK(idlist_shift(&l, 998) == RC_OK);
	CHECK(l.n == 2);
	CHECK_STR(idlist_id(&l, 0), "00998");
	CHECK(idlist_version(&l, 0) == NULL);
	CHECK_STR(idlist_version(&l, 1), "v");
	CHECK(l.v[1].time_ms == 999);
	idlist_free(&l);
}

/* A copy's version against the one read: only numbers compare newer, and
 * integers exactly (epoch ms; counters past 2^53). The _seq_no of a hit is
 * carried by push_from and shift. */
static void
test_version_newer(void)
{
	struct idlist a = {0}, b = {0};
	struct hit_where w = {.seq_no = 17, .primary_term = 3};

	CHECK(diff_version_newer("1704067200001", "1704067200000"));
	CHECK(!diff_version_newer("1704067200000", "1704067200000"));
	CHECK(!diff_version_newer("1704067200000", "1704067200001"));
	CHECK(diff_version_newer("9007199254740993", "9007199254740992"));
	CHECK(diff_version_newer("2.5", "2"));
	CHECK(!diff_version_newer("-1", "0"));
	CHECK(!diff_version_newer("b", "a")); /* text: never newer */
	CHECK(!diff_version_newer("5", ""));
	CHECK(!diff_version_newer(NULL, "1"));
	CHECK(idlist_push_hit(&a, "x", 1, 0, "1", -1, &w) == RC_OK);
	CHECK(idlist_push(&a, "y", 1, 0, NULL, -1) == RC_OK);
	CHECK(idlist_push_from(&b, &a, 0) == RC_OK);
	CHECK(b.v[0].seq_no == 17 && b.v[0].primary_term == 3);
	CHECK(a.v[1].primary_term == 0);
	CHECK(idlist_shift(&a, 1) == RC_OK && a.v[0].primary_term == 0);
	idlist_free(&a);
	idlist_free(&b);
}

int
main(void)
{
	test_merge();
	test_equal_counts();
	test_empty_and_order();
	test_shift();
	test_version_newer();
	return check_done("test_diff");
}
