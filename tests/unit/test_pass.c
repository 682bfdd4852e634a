/* test_pass.c: the comparison pass from sorted id lists, no server: missing,
 * orphan, stale, duplicate, conflicts, class changes, trailing orphans,
 * chunk and page edges, resume. The fakes behind struct pass_io only look
 * things up in arrays; the pass's own logic is what is under test. */
#include "check.h"
#include "pass.h"

#include <stdlib.h>
#include <string.h>

struct mdoc {
	const char *text;
	enum id_type type;
	const char *version;
};
struct odoc {
	const char *text;
	const char *version;
	const char *index;
	const char *routing;
	const char *docid; /* the copy's _id where it is not its key */
};

struct world {
	const struct mdoc *m;
	size_t nm, mi;
	const struct odoc *o; /* sorted by (text, index) */
	size_t no;
	/* what the pass reported, as "kind:text[@index]" lines */
	char out[8192];
	int chunks;
	int64_t last_compared;
	char last_id[64];
	int exists_calls;
	/* RECONCILE_FILTER: ids MongoDB has outside the filter (m holds those
	 * it matches, the only ones its stream gives) */
	const char *const *outside;
	size_t n_outside;
	struct pass_stats stats;
};

/* The filter of the next run() (test_filter sets it) */
static struct {
	bool on;
	const char *const *outside;
	size_t n_outside;
} filter;

/* The routing rule of the next run(): id, routing pairs (test_rule) */
static struct {
	const char *const *pairs;
	size_t n; /* pairs */
} rule;

/* OPENSEARCH_KEEP_QUERY of the next run(): the ids whose copies match it */
static struct {
	const char *const *ids;
	size_t n;
} keep;

static void
say(struct world *w, const char *kind, const char *text, const char *index)
{
	size_t n = strlen(w->out);
	snprintf(w->out + n, sizeof(w->out) - n, "%s:%s%s%s ", kind, text, index ? "@" : "",
	         index ? index : "");
}

static int
cmp_o(const struct odoc *a, const char *text, const char *index)
{
	int c = diff_compare(a->text, strlen(a->text), text, strlen(text));
	if (c || index == NULL)
		return c;
	return strcmp(a->index ? a->index : "", index);
}

static rcode
f_on_unsafe(void *ctx, const char *text, enum id_type type, struct rerror *err)
{
	(void)type, (void)err;
	say(ctx, "unsafe", text, NULL);
	return RC_OK;
}

static rcode
f_mongo_next(void *ctx, struct idlist *out, int *cls, bool *end, bool *unsafe, struct rerror *err)
{
	struct world *w = ctx;
	(void)err;
	*unsafe = false;
	*end = w->mi == w->nm;
	if (*end)
		return RC_OK;
	const struct mdoc *d = &w->m[w->mi++];
	*cls = (int)doc_id_class_of(d->text, d->type);
	return idlist_push(out, d->text, strlen(d->text), (int)d->type, d->version, -1);
}

/* The contract of opensearch_scan: pages in key order, and copies of one
 * key never straddle two pages (a full page gives its trailing run back). */
static rcode
f_index_page(void *ctx, struct idlist *out, bool *more, const char *after, int size,
             struct rerror *err)
{
	struct world *w = ctx;
	size_t first = w->no, end;
	(void)err;
	for (size_t i = 0; i < w->no; i++)
		if (after == NULL || cmp_o(&w->o[i], after, NULL) > 0) {
			first = i;
			break;
		}
	end = first + (size_t)size < w->no ? first + (size_t)size : w->no;
	*more = end < w->no;
	if (*more) {
		size_t cut = end;
		while (cut > first && strcmp(w->o[cut - 1].text, w->o[end].text) == 0)
			cut--;
		if (cut > first)
			end = cut; /* give the run back */
		else
			while (end < w->no && strcmp(w->o[end].text, w->o[first].text) == 0)
				end++; /* one run only: all of it */
	}
	for (size_t i = first; i < end; i++) {
		struct hit_where hw = {
		    .index = w->o[i].index, .routing = w->o[i].routing, .docid = w->o[i].docid};
		CHECK(idlist_push_hit(out, w->o[i].text, strlen(w->o[i].text), -1, w->o[i].version,
		                      -1, &hw) == RC_OK);
	}
	if (getenv("DEBUG_PASS")) {
		fprintf(stderr, "  page after %s size %d ->", after ? after : "-", size);
		for (size_t i = first; i < end; i++)
			fprintf(stderr, " %s", w->o[i].text);
		fprintf(stderr, "\n");
	}
	return RC_OK;
}

static rcode
f_index_lookup(void *ctx, struct idlist *out, const char *const *ids, size_t n, struct rerror *err)
{
	struct world *w = ctx;
	(void)err;
	for (size_t i = 0; i < w->no; i++)
		for (size_t k = 0; k < n; k++)
			if (strcmp(w->o[i].text, ids[k]) == 0) {
				struct hit_where hw = {.index = w->o[i].index,
				                       .routing = w->o[i].routing,
				                       .docid = w->o[i].docid};
				CHECK(idlist_push_hit(out, w->o[i].text, strlen(w->o[i].text), -1,
				                      w->o[i].version, -1, &hw) == RC_OK);
				break;
			}
	return RC_OK;
}

static rcode
f_mongo_exists(void *ctx, const char *const *texts, size_t n, bool *exists, bool *outside,
               struct rerror *err)
{
	struct world *w = ctx;
	(void)err;
	w->exists_calls++;
	for (size_t k = 0; k < n; k++) {
		exists[k] = false;
		for (size_t i = 0; i < w->nm; i++)
			if (strcmp(w->m[i].text, texts[k]) == 0)
				exists[k] = true;
		if (outside)
			outside[k] = false;
		for (size_t i = 0; outside && !exists[k] && i < w->n_outside; i++)
			if (strcmp(w->outside[i], texts[k]) == 0)
				outside[k] = true;
	}
	return RC_OK;
}

static rcode
f_mongo_other(void *ctx, const char *const *texts, const enum id_type *types, size_t n,
              char **other, struct rerror *err)
{
	struct world *w = ctx;
	(void)err;
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < w->nm && !other[k]; i++)
			if (strcmp(w->m[i].text, texts[k]) == 0 && w->m[i].type != types[k])
				other[k] = strdup(doc_id_type_name(w->m[i].type));
	return RC_OK;
}

static rcode
f_mongo_has_type(void *ctx, enum id_type type, bool *has, struct rerror *err)
{
	struct world *w = ctx;
	(void)err;
	*has = false;
	for (size_t i = 0; i < w->nm; i++)
		if (w->m[i].type == type)
			*has = true;
	return RC_OK;
}

static rcode
f_rule_routing(void *ctx, const struct idlist *m, const size_t *mi, size_t n, char **routing,
               struct rerror *err)
{
	(void)ctx, (void)err;
	for (size_t i = 0; i < n; i++) {
		routing[i] = NULL;
		for (size_t k = 0; k < rule.n; k++)
			if (strcmp(rule.pairs[2 * k], idlist_id(m, mi[i])) == 0)
				routing[i] = strdup(rule.pairs[2 * k + 1]);
	}
	return RC_OK;
}

static rcode
f_kept_orphans(void *ctx, const struct idlist *osl, const size_t *idx, size_t n, bool *kept,
               struct rerror *err)
{
	(void)ctx, (void)err;
	for (size_t i = 0; i < n; i++) {
		kept[i] = false;
		for (size_t k = 0; k < keep.n; k++)
			kept[i] |= strcmp(keep.ids[k], idlist_id(osl, idx[i])) == 0;
	}
	return RC_OK;
}

/* the routing of the last stale copy reported under one */
static char stale_routing[32];

static rcode
f_on_drift(void *ctx, const struct pass_drift *pd, struct rerror *err)
{
	struct world *w = ctx;
	const struct drift *d = pd->d;
	(void)err;
	if (getenv("DEBUG_PASS")) {
		fprintf(stderr, "  drift m=[");
		for (size_t i = 0; i < pd->m->n; i++)
			fprintf(stderr, "%s ", idlist_id(pd->m, i));
		fprintf(stderr, "] osl=[");
		for (size_t i = 0; i < pd->osl->n; i++)
			fprintf(stderr, "%s ", idlist_id(pd->osl, i));
		fprintf(stderr, "]\n");
	}
	for (size_t i = 0; i < d->n_missing; i++)
		say(w, "missing", idlist_id(pd->m, d->missing[i]), NULL);
	for (size_t i = 0; pd->misplaced && i < pd->m->n; i++)
		if (pd->misplaced[i])
			say(w, "misplaced", idlist_id(pd->m, i), NULL);
	for (size_t i = 0; i < pd->m->n; i++)
		if (pd->conflict[i])
			say(w, "conflict", idlist_id(pd->m, i), NULL);
	for (size_t i = 0; i < d->n_stale; i++)
		if (idlist_routing(pd->osl, d->stale_os[i]))
			snprintf(stale_routing, sizeof(stale_routing), "%s",
			         idlist_routing(pd->osl, d->stale_os[i]));
	for (size_t i = 0; i < d->n_stale; i++)
		if (!pd->conflict[d->stale[i]])
			say(w, "stale", idlist_id(pd->m, d->stale[i]),
			    idlist_index(pd->osl, d->stale_os[i]));
	for (size_t i = 0; i < pd->n_orphans; i++)
		say(w, pd->left_filter && pd->left_filter[i] ? "left" : "orphan",
		    idlist_target(pd->osl, pd->orphans[i]), idlist_index(pd->osl, pd->orphans[i]));
	for (size_t i = 0; i < d->n_duplicate; i++)
		say(w, "duplicate", idlist_target(pd->osl, d->duplicate[i]),
		    idlist_index(pd->osl, d->duplicate[i])
		        ? idlist_index(pd->osl, d->duplicate[i])
		        : idlist_routing(pd->osl, d->duplicate[i]));
	return RC_OK;
}

static rcode
f_on_chunk(void *ctx, const char *id, enum id_type type, int64_t compared, int64_t seen,
           struct rerror *err)
{
	struct world *w = ctx;
	(void)type, (void)seen, (void)err;
	w->chunks++;
	w->last_compared = compared;
	snprintf(w->last_id, sizeof(w->last_id), "%s", id);
	return RC_OK;
}

/* Range summaries (RECONCILE_VERIFY) of the next run(): the index's side
 * computed here from the array, as the script computes it. */
static struct {
	bool on, fallback;
	size_t range;
	int asked;  /* ranges asked of the fake */
	int merged; /* on_verify_merge calls */
	/* pages of a streamed range read keys-only and with stored fields,
	 * and ids looked up */
	int keys_pages, stored_pages, looked_up;
	bool unanswered; /* the index answers no range */
	char why[200];   /* the last one's */
} sums;

static rcode
f_verify_merge(void *ctx, const char *why, struct rerror *err)
{
	(void)ctx, (void)err;
	sums.merged++;
	snprintf(sums.why, sizeof(sums.why), "%s", why);
	return RC_OK;
}

static rcode
f_index_summaries(void *ctx, struct summary_range *r, size_t n, struct rerror *err)
{
	struct world *w = ctx;
	(void)err;
	for (size_t k = 0; k < n; k++, sums.asked++) {
		r[k].os_ok = !sums.unanswered;
		r[k].os_count = 0;
		r[k].os_sum = 0;
		for (size_t i = 0; i < w->no; i++) {
			const struct odoc *d = &w->o[i];
			const char *docid = d->docid ? d->docid : d->text;
			int64_t v = 0;
			bool has = d->version && summary_version(d->version, &v);
			if ((r[k].lo && cmp_o(d, r[k].lo, NULL) <= 0) ||
			    (r[k].hi && cmp_o(d, r[k].hi, NULL) > 0))
				continue;
			r[k].os_count++;
			r[k].os_sum +=
			    summary_hash(d->text, strlen(d->text), docid, strlen(docid), has, v);
		}
	}
	return RC_OK;
}

/* f_index_page over the copies up to hi only; keys_only as
 * opensearch_scan_range gives them: no _id (taken to be the key), no
 * routing, the place unknown. */
static rcode
f_index_range(void *ctx, struct idlist *out, bool *more, const char *after, const char *hi,
              bool keys_only, int size, struct rerror *err)
{
	struct world *w = ctx;
	size_t all = w->no, upto = 0, before = out->n;
	rcode rc;

	while (upto < all && cmp_o(&w->o[upto], hi, NULL) <= 0)
		upto++;
	w->no = upto;
	rc = f_index_page(ctx, out, more, after, size, err);
	w->no = all;
	*(keys_only ? &sums.keys_pages : &sums.stored_pages) += 1;
	for (size_t i = before; keys_only && i < out->n; i++) {
		out->v[i].docid_off = out->v[i].routing_off = SIZE_MAX;
		out->v[i].where_unknown = true;
	}
	return rc;
}

/* f_index_lookup, counted. */
static rcode
f_index_lookup_counted(void *ctx, struct idlist *out, const char *const *ids, size_t n,
                       struct rerror *err)
{
	sums.looked_up += (int)n;
	return f_index_lookup(ctx, out, ids, n, err);
}

static const struct pass_io fake_io = {
    .mongo_next = f_mongo_next,
    .on_unsafe = f_on_unsafe,
    .index_page = f_index_page,
    .index_lookup = f_index_lookup,
    .mongo_exists = f_mongo_exists,
    .mongo_other = f_mongo_other,
    .mongo_has_type = f_mongo_has_type,
    .rule_routing = f_rule_routing,
    .kept_orphans = f_kept_orphans,
    .on_drift = f_on_drift,
    .on_chunk = f_on_chunk,
};

static volatile int no_stop;

/* Runs the pass over (m, o) and returns what it reported. */
static const char *
run(struct world *w, const struct mdoc *m, size_t nm, const struct odoc *o, size_t no,
    int64_t chunk, const char *write_index)
{
	struct pass_io io = fake_io;
	struct pass_opts opts = {.chunk_size = chunk,
	                         .compare_versions = true,
	                         .write_index = write_index,
	                         .filtered = filter.on,
	                         .routing_rule = rule.n > 0,
	                         .keep_orphans = keep.n > 0,
	                         .stats = &w->stats,
	                         .stop = &no_stop};
	struct rerror err = {0};

	if (sums.on) {
		opts.summaries = true;
		opts.range_size = sums.range;
		opts.summaries_fallback = sums.fallback;
		io.on_verify_merge = f_verify_merge;
		io.index_summaries = f_index_summaries;
		io.index_range = f_index_range;
		io.index_lookup = f_index_lookup_counted;
	}
	memset(w, 0, sizeof(*w));
	w->outside = filter.outside;
	w->n_outside = filter.n_outside;
	w->m = m;
	w->nm = nm;
	w->o = o;
	w->no = no;
	io.ctx = w;
	CHECK(pass_run(&opts, &io, &err) == RC_OK);
	return w->out;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define OID(n) "65920080000000000000000" #n

static void
test_basic(void)
{
	struct world w;
	static const struct mdoc m[] = {
	    {OID(1), ID_OID, "1"}, {OID(2), ID_OID, "1"}, {OID(3), ID_OID, "2"},
	    {OID(5), ID_OID, "1"}, {OID(6), ID_OID, "1"},
	};
	static const struct odoc o[] = {
	    {OID(1), "1", NULL, NULL, NULL}, {OID(3), "1", NULL, NULL, NULL},
	    {OID(4), "1", NULL, NULL, NULL}, {OID(5), "1", NULL, NULL, NULL},
	    {OID(6), "1", NULL, NULL, NULL}, {OID(9), "1", NULL, NULL, NULL},
	};
	/* every chunk size gives the same answer, whatever the edges */
	for (int64_t chunk = 1; chunk <= 7; chunk++) {
		const char *out = run(&w, m, N(m), o, N(o), chunk, NULL);
		CHECK(strstr(out, "missing:" OID(2) " ") != NULL);
		CHECK(strstr(out, "stale:" OID(3) " ") != NULL);
		CHECK(strstr(out, "orphan:" OID(4) " ") != NULL);
		CHECK(strstr(out, "orphan:" OID(9) " ") != NULL); /* trailing */
		CHECK(strlen(out) == strlen("missing:" OID(2) " stale:" OID(3) " orphan:" OID(
		                         4) " orphan:" OID(9) " "));
		CHECK(w.last_compared == 5 && strcmp(w.last_id, OID(6)) == 0);
		CHECK(w.chunks == (int)((5 + chunk - 1) / chunk));
		/* only ObjectIds: orphans are certain, MongoDB is not asked */
		CHECK(w.exists_calls == 0);
	}
}

static void
test_classes(void)
{
	struct world w;
	/* MongoDB's order: numbers, strings, documents, ObjectIds, bools, dates */
	static const struct mdoc m[] = {
	    {"7", ID_INT, "1"},
	    {"8", ID_INT, "1"},
	    {"a", ID_STRING, "1"},
	    {"b", ID_STRING, "1"},
	    {"{ \"k\" : 1 }", ID_JSON, "1"},
	    {OID(1), ID_OID, "1"},
	    {"true", ID_BOOL, "1"},
	};
	static const struct odoc o[] = {
	    /* in the index's key order: bytes ("6..." < "7" < "a" < "{") */
	    {OID(1), "1", NULL, NULL, NULL},
	    {OID(2), "1", NULL, NULL, NULL},
	    {"7", "1", NULL, NULL, NULL},
	    {"9", "1", NULL, NULL, NULL},
	    {"a", "2", NULL, NULL, NULL},
	    {"c", "1", NULL, NULL, NULL},
	    {"true", "1", NULL, NULL, NULL},
	    {"zz", "1", NULL, NULL, NULL},
	    {"{ \"k\" : 1 }", "1", NULL, NULL, NULL},
	};
	for (int64_t chunk = 1; chunk <= 4; chunk++) {
		const char *out = run(&w, m, N(m), o, N(o), chunk, NULL);
		if (getenv("DEBUG_PASS"))
			fprintf(stderr, "chunk %d: %s\n", (int)chunk, out);
		CHECK(strstr(out, "missing:8 ") != NULL);
		CHECK(strstr(out, "missing:b ") != NULL);
		CHECK(strstr(out, "stale:a ") != NULL);
		/* copies of other classes' ids are asked about, never orphans */
		CHECK(strstr(out, "orphan:7 ") == NULL && strstr(out, "orphan:true") == NULL);
		CHECK(strstr(out, "orphan:{") == NULL && strstr(out, "orphan:" OID(1)) == NULL);
		CHECK(strstr(out, "orphan:9 ") != NULL);
		CHECK(strstr(out, "orphan:c ") != NULL);
		CHECK(strstr(out, "orphan:" OID(2) " ") != NULL);
		CHECK(strstr(out, "orphan:zz ") != NULL);
		CHECK(w.last_compared == 7);
		/* each orphan reported once, though two segments sweep the index */
		CHECK(strstr(strstr(out, "orphan:zz ") + 1, "orphan:zz ") == NULL);
	}
}

static void
test_numbers_only(void)
{
	struct world w;
	/* no strings or ObjectIds: one sweep at the end finds the orphans */
	static const struct mdoc m[] = {{"1", ID_INT, "1"}, {"2", ID_INT, "1"}, {"3", ID_INT, "1"}};
	static const struct odoc o[] = {{"1", "1", NULL, NULL, NULL},
	                                {"3", "1", NULL, NULL, NULL},
	                                {"4", "1", NULL, NULL, NULL}};
	const char *out = run(&w, m, N(m), o, N(o), 2, NULL);
	CHECK(strcmp(out, "missing:2 orphan:4 ") == 0);
}

static void
test_empty_sides(void)
{
	struct world w;
	static const struct mdoc m[] = {{"a", ID_STRING, "1"}, {"b", ID_STRING, "1"}};
	static const struct odoc o[] = {{"a", "1", NULL, NULL, NULL}, {"b", "1", NULL, NULL, NULL}};
	CHECK(strcmp(run(&w, m, N(m), NULL, 0, 3, NULL), "missing:a missing:b ") == 0);
	CHECK(strcmp(run(&w, NULL, 0, o, N(o), 3, NULL), "orphan:a orphan:b ") == 0);
	CHECK(strcmp(run(&w, m, N(m), o, N(o), 3, NULL), "") == 0);
}

static void
test_duplicates(void)
{
	struct world w;
	/* an alias over v1 and v2 (v2 takes writes): copies of one id together,
	 * the write index's kept; a page may end between two copies */
	static const struct mdoc m[] = {
	    {"a", ID_STRING, "1"}, {"b", ID_STRING, "1"}, {"c", ID_STRING, "1"}};
	static const struct odoc o[] = {
	    {"a", "1", "v1", NULL, NULL}, {"a", "1", "v2", NULL, NULL},
	    {"b", "0", "v1", NULL, NULL}, {"d", "1", "v1", NULL, NULL},
	    {"d", "1", "v2", NULL, NULL},
	};
	for (int64_t chunk = 1; chunk <= 4; chunk++) {
		const char *out = run(&w, m, N(m), o, N(o), chunk, "v2");
		CHECK(strstr(out, "duplicate:a@v1 ") != NULL);
		CHECK(strstr(out, "stale:b@v1 ") != NULL); /* overwritten where it is */
		CHECK(strstr(out, "missing:c ") != NULL);
		/* an id MongoDB lacks: every copy is an orphan */
		CHECK(strstr(out, "orphan:d@v1 ") != NULL && strstr(out, "orphan:d@v2 ") != NULL);
		CHECK(strstr(out, "a@v2") == NULL);
	}
}

static void
test_routing_copies(void)
{
	struct world w;
	/* one index, copies of "d" on three shards (custom routing) around a
	 * page boundary: every extra copy is found, the one routed by _id kept */
	static const struct mdoc m[] = {{"a", ID_STRING, "1"},
	                                {"b", ID_STRING, "1"},
	                                {"c", ID_STRING, "1"},
	                                {"d", ID_STRING, "1"},
	                                {"e", ID_STRING, "1"}};
	static const struct odoc o[] = {
	    {"a", "1", NULL, NULL, NULL}, {"b", "1", NULL, NULL, NULL},
	    {"c", "1", NULL, NULL, NULL}, {"d", "0", NULL, "r1", NULL},
	    {"d", "1", NULL, NULL, NULL}, {"d", "0", NULL, "r2", NULL},
	    {"e", "1", NULL, NULL, NULL},
	};
	for (int64_t chunk = 1; chunk <= 6; chunk++) {
		const char *out = run(&w, m, N(m), o, N(o), chunk, NULL);
		if (getenv("DEBUG_PASS"))
			fprintf(stderr, "routing chunk %d: %s\n", (int)chunk, out);
		CHECK(strcmp(out, "duplicate:d@r1 duplicate:d@r2 ") == 0);
	}
}

static void
test_rule(void)
{
	struct world w;
	/* custom routing with a rule: the copy it places is kept, whichever
	 * the index gives first; with none placed the document is stale
	 * (misplaced) and its other copies duplicates */
	static const char *const pairs[] = {"a", "r1", "b", "rb", "c", "c"};
	static const struct mdoc m[] = {
	    {"a", ID_STRING, "1"}, {"b", ID_STRING, "1"}, {"c", ID_STRING, "1"}};
	static const struct odoc o[] = {
	    {"a", "1", NULL, "r0", NULL}, {"a", "0", NULL, "r1", NULL},
	    {"b", "1", NULL, "x", NULL},  {"b", "1", NULL, "y", NULL},
	    {"c", "1", NULL, "z", NULL},  {"c", "1", NULL, NULL, NULL},
	};
	/* without the rule the first copy of a is kept, the routed one deleted */
	CHECK(strstr(run(&w, m, N(m), o, N(o), 3, NULL), "duplicate:a@r1 ") != NULL);
	rule.pairs = pairs;
	rule.n = N(pairs) / 2;
	for (int64_t chunk = 1; chunk <= 4; chunk++) {
		const char *out = run(&w, m, N(m), o, N(o), chunk, NULL);
		CHECK(strstr(out, "stale:a ") != NULL && strstr(out, "duplicate:a@r0 ") != NULL);
		CHECK(strstr(out, "a@r1") == NULL && strstr(out, "misplaced:a") == NULL);
		CHECK(strstr(out, "misplaced:b ") != NULL && strstr(out, "stale:b ") != NULL);
		CHECK(strstr(out, "duplicate:b@y ") != NULL);
		CHECK(strstr(out, "duplicate:c@z ") != NULL && strstr(out, "stale:c") == NULL);
	}
	rule.n = 0;
}

static void
test_kept(void)
{
	struct world w;
	/* orphans matching OPENSEARCH_KEEP_QUERY: counted, not handed over */
	static const char *const ids[] = {"k1", "k2", "a"};
	static const struct mdoc m[] = {{"a", ID_STRING, "1"}, {"b", ID_STRING, "1"}};
	static const struct odoc o[] = {
	    {"a", "0", NULL, NULL, NULL},
	    {"k1", "1", NULL, NULL, NULL},
	    {"k2", "1", NULL, NULL, NULL},
	    {"o1", "1", NULL, NULL, NULL},
	};
	keep.ids = ids;
	keep.n = N(ids);
	for (int64_t chunk = 1; chunk <= 3; chunk++) {
		const char *out = run(&w, m, N(m), o, N(o), chunk, NULL);
		CHECK(strcmp(out, "missing:b stale:a orphan:o1 ") == 0 ||
		      strcmp(out, "stale:a missing:b orphan:o1 ") == 0 ||
		      strcmp(out, "stale:a orphan:o1 missing:b ") == 0);
		CHECK(w.stats.kept == 2);
	}
	keep.n = 0;
}

static void
test_misnamed(void)
{
	struct world w;
	/* copies whose _id is not their key (a normalizer, a foreign writer):
	 * never taken for the document's copy, removed by their own _id */
	static const struct mdoc m[] = {{"abc", ID_STRING, "1"}, {"s1", ID_STRING, "1"}};
	static const struct odoc o[] = {
	    {"abc", "1", NULL, NULL, "ABC"},   /* lowercase normalizer: ABC's copy */
	    {"s1", "1", NULL, NULL, NULL},     /* the real copy */
	    {"s1", "1", NULL, NULL, "s1-old"}, /* a foreign copy keyed s1 */
	    {"zz", "1", NULL, NULL, "ZZ"},     /* an orphan, by its _id */
	};
	const char *out = run(&w, m, N(m), o, N(o), 10, NULL);
	CHECK(strcmp(out, "missing:abc duplicate:ABC duplicate:s1-old orphan:ZZ ") == 0);
	if (strcmp(out, "missing:abc duplicate:ABC duplicate:s1-old orphan:ZZ ") != 0)
		fprintf(stderr, "misnamed: %s\n", out);
}

static void
test_conflicts(void)
{
	struct world w;
	/* 42 and "42" share the index id "42"; its copy is the int's */
	static const struct mdoc m[] = {
	    {"42", ID_INT, "1"}, {"42", ID_STRING, "2"}, {"x", ID_STRING, "1"}};
	static const struct odoc o[] = {{"42", "1", NULL, NULL, NULL},
	                                {"x", "0", NULL, NULL, NULL}};
	const char *out = run(&w, m, N(m), o, N(o), 10, NULL);
	if (getenv("DEBUG_PASS"))
		fprintf(stderr, "conflicts: %s\n", out);
	/* found from both sides; the journal keeps one row per pair */
	CHECK(strcmp(out, "conflict:42 conflict:42 stale:x ") == 0);
}

static void
test_resume(void)
{
	struct world w;
	static const struct mdoc m[] = {{"c", ID_STRING, "1"}, {"e", ID_STRING, "1"}};
	static const struct odoc o[] = {{"a", "1", NULL, NULL, NULL},
	                                {"b", "1", NULL, NULL, NULL},
	                                {"d", "1", NULL, NULL, NULL},
	                                {"e", "1", NULL, NULL, NULL}};
	struct pass_io io = fake_io;
	struct rerror err = {0};
	/* resumed after "b": what is before the cursor was judged already */
	struct pass_opts opts = {.chunk_size = 10,
	                         .compare_versions = true,
	                         .cursor = "b",
	                         .cursor_type = ID_STRING,
	                         .seen = 1 << CLASS_STRING,
	                         .compared = 2,
	                         .stop = &no_stop};
	memset(&w, 0, sizeof(w));
	w.m = m;
	w.nm = N(m);
	w.o = o;
	w.no = N(o);
	io.ctx = &w;
	CHECK(pass_run(&opts, &io, &err) == RC_OK);
	CHECK(strcmp(w.out, "missing:c orphan:d ") == 0);
	CHECK(w.last_compared == 4);
}

/* RECONCILE_FILTER: the stream holds only the documents the filter
 * matches. A copy whose document exists outside it is an orphan that left
 * the filter, one whose document is gone an orphan as ever, and MongoDB is
 * asked about every candidate (even certain ObjectId orphans) for that
 * reason; a document that matches is never an orphan. */
static void
test_filter(void)
{
	struct world w;
	static const struct mdoc m[] = {{OID(1), ID_OID, "1"}, {OID(3), ID_OID, "1"}};
	static const struct odoc o[] = {
	    {OID(1), "1", NULL, NULL, NULL}, {OID(2), "1", NULL, NULL, NULL},
	    {OID(3), "1", NULL, NULL, NULL}, {OID(4), "1", NULL, NULL, NULL},
	    {OID(5), "1", NULL, NULL, NULL},
	};
	static const char *const outside[] = {OID(2), OID(5)};

	filter.on = true;
	filter.outside = outside;
	filter.n_outside = N(outside);
	for (int64_t chunk = 1; chunk <= 3; chunk++) {
		const char *out = run(&w, m, N(m), o, N(o), chunk, NULL);
		CHECK(strcmp(out, "left:" OID(2) " orphan:" OID(4) " left:" OID(5) " ") == 0);
		CHECK(w.exists_calls > 0);
	}
	/* without a filter the same index: every extra copy an orphan, none asked */
	filter.on = false;
	const char *out = run(&w, m, N(m), o, N(o), 2, NULL);
	CHECK(strcmp(out, "orphan:" OID(2) " orphan:" OID(4) " orphan:" OID(5) " ") == 0);
	CHECK(w.exists_calls == 0);
	/* a filter that matches nothing: every copy is asked about */
	filter.on = true;
	out = run(&w, m, 0, o, N(o), 2, NULL);
	CHECK(strcmp(out, "orphan:" OID(1) " left:" OID(2) " orphan:" OID(3) " orphan:" OID(
	                      4) " left:" OID(5) " ") == 0);
	filter.on = false;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The report as a sorted list of its words, in buf. */
static void
sorted_words(char *buf, size_t len, const char *out)
{
	char copy[8192], *words[512], *save = NULL;
	size_t n = 0, at = 0;

	snprintf(copy, sizeof(copy), "%s", out);
	for (char *t = strtok_r(copy, " ", &save); t && n < 512; t = strtok_r(NULL, " ", &save))
		words[n++] = t;
	qsort(words, n, sizeof(*words), cmp_str);
	buf[0] = '\0';
	for (size_t i = 0; i < n && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s ", words[i]);
}

/* The pass finds the same drift by range summaries as by merge, whatever
 * the chunk and range sizes (docs/ENGINE.md "Verifying by range
 * summaries"); *asked: whether some range was asked at all. */
static bool
same_by_summaries(const struct mdoc *m, size_t nm, const struct odoc *o, size_t no,
                  const char *write_index)
{
	struct world w;
	char want[8192], got[8192];
	bool same = true;

	for (int64_t chunk = 1; chunk <= 5; chunk++) {
		sums.on = false;
		sorted_words(want, sizeof(want), run(&w, m, nm, o, no, chunk, write_index));
		for (size_t range = 1; range <= 3; range++) {
			sums.on = true;
			sums.range = range;
			sorted_words(got, sizeof(got), run(&w, m, nm, o, no, chunk, write_index));
			if (strcmp(want, got) != 0) {
				fprintf(stderr,
				        "chunk %d range %zu:\n  merge:   %s\n  summary: %s\n",
				        (int)chunk, range, want, got);
				same = false;
			}
		}
	}
	sums.on = false;
	return same;
}

static void
test_summaries(void)
{
	static const struct mdoc m[] = {
	    {OID(1), ID_OID, "1"}, {OID(2), ID_OID, "1"}, {OID(3), ID_OID, "2"},
	    {OID(5), ID_OID, "1"}, {OID(6), ID_OID, "1"}, {OID(7), ID_OID, "5"},
	};
	static const struct odoc o[] = {
	    {OID(0), "1", NULL, NULL, NULL}, /* before the first id */
	    {OID(1), "1", NULL, NULL, NULL}, {OID(3), "1", NULL, NULL, NULL},
	    {OID(4), "1", NULL, NULL, NULL}, {OID(5), "1", NULL, NULL, NULL},
	    {OID(6), "1", NULL, NULL, NULL}, {OID(6), "1", NULL, NULL, "x6"}, /* foreign _id */
	    {OID(7), "4", NULL, NULL, NULL},                                  /* 1 ms old */
	    {OID(9), "1", NULL, NULL, NULL},                                  /* after the last */
	};
	/* compensating: one missing and one orphan, equal versions, one range */
	static const struct mdoc mc[] = {
	    {"a", ID_STRING, "7"}, {"b", ID_STRING, "7"}, {"d", ID_STRING, "7"}};
	static const struct odoc oc[] = {{"a", "7", NULL, NULL, NULL},
	                                 {"c", "7", NULL, NULL, NULL},
	                                 {"d", "7", NULL, NULL, NULL}};
	/* copies in two backing indices, a text version (never summarized) */
	static const struct mdoc md[] = {
	    {"a", ID_STRING, "1"}, {"b", ID_STRING, "v1"}, {"c", ID_STRING, "1"}};
	static const struct odoc od[] = {{"a", "1", "v1", NULL, NULL},
	                                 {"a", "1", "v2", NULL, NULL},
	                                 {"b", "v0", "v1", NULL, NULL},
	                                 {"c", "1", "v2", NULL, NULL}};
	/* in sync: nothing reported, and nothing streamed */
	static const struct mdoc ms[] = {{"a", ID_STRING, "1"}, {"b", ID_STRING, "2"}};
	static const struct odoc os[] = {{"a", "1", NULL, NULL, NULL},
	                                 {"b", "2", NULL, NULL, NULL}};
	struct world w;

	CHECK(same_by_summaries(m, N(m), o, N(o), NULL));
	CHECK(same_by_summaries(mc, N(mc), oc, N(oc), NULL));
	CHECK(same_by_summaries(md, N(md), od, N(od), "v2"));
	CHECK(same_by_summaries(ms, N(ms), os, N(os), NULL));
	CHECK(same_by_summaries(m, N(m), NULL, 0, NULL));
	CHECK(same_by_summaries(NULL, 0, o, N(o), NULL));
	sums.on = true;
	sums.range = 1;
	CHECK(strcmp(run(&w, ms, N(ms), os, N(os), 2, NULL), "") == 0);
	/* (, a], (a, b] and the one past b */
	CHECK(w.stats.ranges_summarized == 3 && w.stats.ranges_descended == 0 &&
	      w.stats.index_read == 2);
	/* one range (, d] whose counts agree and whose sums do not */
	sums.range = 3;
	run(&w, mc, N(mc), oc, N(oc), 3, NULL);
	CHECK(w.stats.ranges_descended == 1 && w.stats.ranges_summarized == 1);
	sums.on = false;
}

/* Random drift over random ids (fixed seeds): summaries find what the merge
 * finds. */
static void
test_summaries_random(void)
{
	static char text[64][32], ver[64][8], over[64][8], fid[64][16];
	struct mdoc m[64];
	struct odoc o[80];

	for (unsigned seed = 1; seed <= 20; seed++) {
		size_t nm = 0, no = 0;
		srand(seed);
		for (int i = 0; i < 40; i++) {
			int r = rand() % 100;
			snprintf(text[i], sizeof(text[i]), "k%03d", i * 3 + 1);
			snprintf(ver[i], sizeof(ver[i]), "%d", 100 + rand() % 3);
			snprintf(over[i], sizeof(over[i]), "%d", atoi(ver[i]) - (r < 10));
			snprintf(fid[i], sizeof(fid[i]), "auto%d", i);
			if (r >= 10 && r < 15) /* an orphan: MongoDB has none */
				;
			else
				m[nm++] = (struct mdoc){text[i], ID_STRING, ver[i]};
			if (r >= 15 && r < 20)
				continue; /* missing */
			o[no++] = (struct odoc){text[i], over[i], NULL, NULL, NULL};
			if (r >= 20 && r < 23) /* a copy under a foreign _id */
				o[no++] = (struct odoc){text[i], ver[i], NULL, NULL, fid[i]};
		}
		if (!same_by_summaries(m, nm, o, no, NULL))
			fprintf(stderr, "seed %u differs\n", seed);
		CHECK(same_by_summaries(m, nm, o, no, NULL));
	}
}

/* A differing range is streamed keys-only: copies under their own key
 * need no stored fields; a copy under a foreign _id fails the range's
 * check (streamed again with stored fields); stale, orphan and duplicate
 * copies are looked up again, so their routing and _id are the index's. */
static void
test_summaries_keys_only(void)
{
	/* a stale copy under a custom routing, an orphan, one key under two
	 * routings, and copies in sync (never looked up) */
	static const struct mdoc m[] = {{"a", ID_STRING, "1"},
	                                {"b", ID_STRING, "2"},
	                                {"c", ID_STRING, "1"},
	                                {"e", ID_STRING, "1"},
	                                {"f", ID_STRING, "1"}};
	static const struct odoc o[] = {
	    {"a", "1", NULL, NULL, NULL}, {"b", "1", NULL, "rb", NULL},
	    {"c", "1", NULL, "r1", NULL}, {"c", "1", NULL, "r2", NULL},
	    {"d", "1", NULL, "rd", NULL}, {"e", "1", NULL, "re", NULL},
	    {"f", "1", NULL, NULL, NULL},
	};
	/* a copy under a foreign _id next to in-sync ones */
	static const struct mdoc mf[] = {
	    {"a", ID_STRING, "1"}, {"b", ID_STRING, "1"}, {"c", ID_STRING, "1"}};
	static const struct odoc of[] = {{"a", "1", NULL, NULL, NULL},
	                                 {"b", "1", NULL, NULL, "auto-b"},
	                                 {"c", "1", NULL, NULL, NULL}};
	struct world w;
	const char *out;

	CHECK(same_by_summaries(m, N(m), o, N(o), NULL));
	CHECK(same_by_summaries(mf, N(mf), of, N(of), NULL));
	sums.on = true;
	sums.range = 10;
	sums.keys_pages = sums.stored_pages = sums.looked_up = 0;
	stale_routing[0] = '\0';
	out = run(&w, m, N(m), o, N(o), 10, NULL);
	/* one range, read keys-only once; b, c, d looked up (not a, e, f) */
	CHECK(sums.keys_pages == 1 && sums.stored_pages == 0 && sums.looked_up == 3);
	CHECK(strstr(out, "stale:b ") != NULL && strcmp(stale_routing, "rb") == 0);
	CHECK(strstr(out, "orphan:d ") != NULL && strstr(out, "duplicate:c@r") != NULL);
	CHECK(w.stats.index_read == 7 && w.stats.ranges_descended == 1);
	/* the foreign _id: the range fails its check and is read again */
	sums.keys_pages = sums.stored_pages = sums.looked_up = 0;
	out = run(&w, mf, N(mf), of, N(of), 10, NULL);
	CHECK(sums.keys_pages == 1 && sums.stored_pages == 1);
	CHECK(strstr(out, "missing:b ") != NULL && strstr(out, "duplicate:auto-b ") != NULL);
	CHECK(w.stats.index_read == 3);
	/* no range answered: nothing to check a keys-only read by */
	sums.keys_pages = sums.stored_pages = 0;
	sums.unanswered = true;
	out = run(&w, mf, N(mf), of, N(of), 10, NULL);
	CHECK(sums.keys_pages == 0 && sums.stored_pages == 1);
	CHECK(strstr(out, "missing:b ") != NULL && strstr(out, "duplicate:auto-b ") != NULL);
	sums.unanswered = false;
	sums.on = false;
}

/* How fallback_drift verifies: by merge, by summaries, by auto. */
enum fb_mode { FB_MERGE, FB_SUMMARY, FB_AUTO };

/* The drift (sorted words, into got) of one pass over 120 ids, every
 * stale-th copy stale, verified as mode says. */
static void
fallback_drift(struct world *w, int stale, enum fb_mode mode, char *got, size_t len)
{
	static char text[120][8];
	struct mdoc m[120];
	struct odoc o[120];

	for (int i = 0; i < 120; i++) {
		snprintf(text[i], sizeof(text[i]), "k%03d", i);
		m[i] = (struct mdoc){text[i], ID_STRING, "2"};
		o[i] = (struct odoc){text[i], i % stale ? "2" : "1", NULL, NULL, NULL};
	}
	sums.on = mode != FB_MERGE;
	sums.fallback = mode == FB_AUTO;
	sums.range = 2;
	sums.merged = 0;
	sorted_words(got, len, run(w, m, 120, o, 120, 10, NULL));
	sums.on = false;
}

/* auto: when the first 50 ranges read more than a fifth of their ids'
 * copies with stored fields, the rest of the pass merges (said once), and
 * finds the same drift; drift that makes every range differ but is read
 * keys-only (a tenth of the copies stale) keeps the summaries. */
static void
test_summaries_fallback(void)
{
	struct world w;
	char want[8192], got[8192];

	/* every third copy stale: its lookups read a third of the copies */
	fallback_drift(&w, 3, FB_MERGE, want, sizeof(want));
	fallback_drift(&w, 3, FB_AUTO, got, sizeof(got));
	CHECK(strcmp(want, got) == 0);
	CHECK(sums.merged == 1 && strstr(sums.why, "the first 50 key ranges read 34 copies whole "
	                                           "for 100 ids") != NULL);
	/* chunks of 5 ranges: the 10th reaches 50, and the rest merges: 10
	 * chunks' ranges counted */
	CHECK(w.stats.ranges_summarized + w.stats.ranges_descended == 50);
	/* summary (no fallback): every range summarized or streamed */
	fallback_drift(&w, 3, FB_SUMMARY, got, sizeof(got));
	CHECK(strcmp(want, got) == 0);
	CHECK(sums.merged == 0 && w.stats.ranges_summarized + w.stats.ranges_descended == 61);
	/* every tenth copy stale: every chunk differs, a tenth is read again */
	fallback_drift(&w, 10, FB_MERGE, want, sizeof(want));
	fallback_drift(&w, 10, FB_AUTO, got, sizeof(got));
	CHECK(strcmp(want, got) == 0);
	CHECK(sums.merged == 0 && w.stats.ranges_summarized + w.stats.ranges_descended == 61);
}

int
main(void)
{
	test_basic();
	test_classes();
	test_numbers_only();
	test_empty_sides();
	test_duplicates();
	test_routing_copies();
	test_rule();
	test_kept();
	test_misnamed();
	test_conflicts();
	test_resume();
	test_filter();
	test_summaries();
	test_summaries_random();
	test_summaries_keys_only();
	test_summaries_fallback();
	return check_done("test_pass");
}
