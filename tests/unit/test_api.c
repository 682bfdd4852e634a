/* test_api.c: api.c's argument parsing (query parameters, the {id} of a
 * path, body members, the mirror a path names) with calls of the test's
 * own: no server, no journal. Each parser answers 400 naming what is
 * allowed, the words from the name tables. */
#include "api.h"
#include "check.h"
#include "run.h"

#include <stdlib.h>

/* A call with the query q (name, value, ..., NULL) and the body (JSON text
 * or NULL); rep gets its reply. */
static struct call
call_of(struct reply *rep, const char *const *q, const char *body)
{
	struct call c = {.reply = rep, .args = q, .method = "GET"};

	memset(rep, 0, sizeof(*rep));
	rep->status = 500;
	if (body)
		c.body = cJSON_Parse(body);
	return c;
}

/* The 400's error text (NULL when there was none), and the reply cleared. */
static const char *
error_of(struct reply *rep)
{
	static char msg[600];
	const char *e = cJSON_GetStringValue(cJSON_GetObjectItem(rep->json, "error"));

	snprintf(msg, sizeof(msg), "%s", e ? e : "");
	cJSON_Delete(rep->json);
	rep->json = NULL;
	return e ? msg : NULL;
}

static void
test_query_int(void)
{
	struct reply rep;
	const char *const q[] = {"limit", "5", "before", "x", "big", "1001", "neg", "-1", NULL};
	struct call c = call_of(&rep, q, NULL);
	int64_t v;

	CHECK(api_query_int(&c, "limit", 1, 1000, 20, &v) && v == 5);
	CHECK(api_query_int(&c, "absent", 1, 1000, 20, &v) && v == 20);
	CHECK(!api_query_int(&c, "before", 1, 1000, 20, &v) && rep.status == 400);
	CHECK_STR(error_of(&rep), "before must be an integer from 1 to 1000");
	CHECK(!api_query_int(&c, "big", 1, 1000, 20, &v));
	CHECK_STR(error_of(&rep), "big must be an integer from 1 to 1000");
	CHECK(!api_query_int(&c, "neg", 1, 1000, 20, &v));
	CHECK(error_of(&rep) != NULL);
	CHECK(api_query_int(&c, "neg", -5, 5, 0, &v) && v == -1);
}

static void
test_run_id(void)
{
	struct reply rep;
	struct call c = call_of(&rep, NULL, NULL);
	int64_t id;

	c.id_segment = "42";
	CHECK(api_run_id(&c, &id) && id == 42);
	c.id_segment = "0";
	CHECK(!api_run_id(&c, &id) && rep.status == 400);
	CHECK_STR(error_of(&rep), "run id must be a positive integer");
	c.id_segment = "-";
	CHECK(!api_run_id(&c, &id));
	CHECK(error_of(&rep) != NULL);
	c.id_segment = "12abc";
	CHECK(!api_run_id(&c, &id));
	CHECK(error_of(&rep) != NULL);
}

static void
test_query_words(void)
{
	struct reply rep;
	const char *const good[] = {"kind", "stale", "status", "held", "state", "recurring", NULL};
	const char *const bad[] = {"kind", "Stale", "status", "done", "state", "closed", NULL};
	struct call c = call_of(&rep, good, NULL);
	const enum drift_kind *kind;
	const enum run_status *status;
	enum drift_kind k;
	enum run_status st;
	enum drift_history_state hs;

	CHECK(api_query_kind(&c, &kind, &k) && kind == &k && k == DRIFT_STALE);
	CHECK(api_query_status(&c, &status, &st) && status == &st && st == RUN_HELD);
	CHECK(api_query_state(&c, &hs) && hs == DRIFT_HISTORY_RECURRING);
	c.args = NULL; /* none given: no filter, the drift history's open rows */
	CHECK(api_query_kind(&c, &kind, &k) && kind == NULL);
	CHECK(api_query_status(&c, &status, &st) && status == NULL);
	CHECK(api_query_state(&c, &hs) && hs == DRIFT_HISTORY_OPEN);
	c.args = bad;
	CHECK(!api_query_kind(&c, &kind, &k) && kind == NULL && rep.status == 400);
	CHECK_STR(error_of(&rep),
	          "kind must be one of missing, stale, orphan, duplicate, conflict");
	CHECK(!api_query_status(&c, &status, &st) && status == NULL);
	CHECK_STR(error_of(&rep), "status must be one of running, completed, failed, interrupted, "
	                          "cancelled, held");
	CHECK(!api_query_state(&c, &hs));
	CHECK_STR(error_of(&rep), "state must be one of open, recurring, all");
}

static void
test_body_bool(void)
{
	struct reply rep;
	struct call c =
	    call_of(&rep, NULL, "{\"wait\": false, \"dryRun\": null, \"allowDeletes\": 1}");
	bool v;

	CHECK(api_body_bool(&c, "wait", true, &v) && v == false);
	CHECK(api_body_bool(&c, "dryRun", true, &v) && v == true); /* null: the default */
	CHECK(api_body_bool(&c, "absent", false, &v) && v == false);
	CHECK(!api_body_bool(&c, "allowDeletes", false, &v) && rep.status == 400);
	CHECK_STR(error_of(&rep), "allowDeletes must be true or false");
	cJSON_Delete(c.body);
}

static void
test_body_interval(void)
{
	static const struct {
		const char *body;
		int64_t want; /* -1: refused */
	} cases[] = {
	    {"{}", 0},
	    {"{\"intervalMs\": null}", 0},
	    {"{\"intervalMs\": 1000}", 1000},
	    {"{\"intervalMs\": 2592000000}", 2592000000LL}, /* 30 days */
	    {"{\"intervalMs\": 999}", -1},
	    {"{\"intervalMs\": 2592000001}", -1},
	    {"{\"intervalMs\": 1500.5}", -1},
	    {"{\"intervalMs\": \"60000\"}", -1},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct reply rep;
		struct call c = call_of(&rep, NULL, cases[i].body);
		int64_t v = 7;
		bool ok = api_body_interval(&c, &v);
		CHECK(ok == (cases[i].want >= 0));
		if (ok) {
			CHECK(v == cases[i].want);
		} else {
			CHECK(rep.status == 400);
			CHECK_STR(error_of(&rep),
			          "intervalMs must be an integer from 1000 to 2592000000");
		}
		cJSON_Delete(c.body);
	}
}

/* api_body_target on body: whether it took it, the kind it left, the
 * error (or NULL); o's ids are freed. */
static bool
target(const char *body, enum run_kind *kind, struct engine_opts *o, const char **error)
{
	struct reply rep;
	struct call c = call_of(&rep, NULL, body);
	bool ok;

	memset(o, 0, sizeof(*o));
	*kind = RUN_CHECK;
	ok = api_body_target(&c, o, kind);
	*error = error_of(&rep);
	free(o->ids);
	o->ids = NULL;
	cJSON_Delete(c.body);
	return ok;
}

static void
test_body_target(void)
{
	struct engine_opts o;
	enum run_kind kind;
	const char *err;
	char big[2048] = "{\"ids\": [";

	CHECK(target("{}", &kind, &o, &err) && kind == RUN_CHECK && err == NULL);
	CHECK(target("{\"ids\": null, \"since\": null}", &kind, &o, &err) && kind == RUN_CHECK);
	CHECK(target("{\"ids\": [\"a\", \"b\"]}", &kind, &o, &err) && kind == RUN_IDS &&
	      o.n_ids == 2);
	CHECK(target("{\"ids\": []}", &kind, &o, &err) && kind == RUN_IDS && o.n_ids == 0);
	CHECK(target("{\"since\": \"2026-11-29T10:00:00Z\"}", &kind, &o, &err) && kind == RUN_IDS &&
	      o.since && o.since_ms > 0);
	CHECK(!target("{\"ids\": \"a\"}", &kind, &o, &err));
	CHECK_STR(err, "ids must be an array of id strings");
	CHECK(!target("{\"ids\": [\"a\", 2]}", &kind, &o, &err));
	CHECK_STR(err, "ids[1] must be a string (the id's canonical text, docs/MAPPING.md)");
	CHECK(!target("{\"since\": \"yesterday\"}", &kind, &o, &err));
	CHECK(err && strncmp(err, "since must be an ISO 8601 time", 30) == 0);
	CHECK(!target("{\"since\": 1700000000000}", &kind, &o, &err));
	/* one over the most a request takes: a 400 naming the limit */
	for (int i = 0; i < 101; i++)
		strcat(big, i ? ",\"x\"" : "\"x\"");
	strcat(big, "]}");
	CHECK(!target(big, &kind, &o, &err));
	CHECK(err && strncmp(err, "more than 100 ids given", 23) == 0);
}

static void
test_mirror_named(void)
{
	struct config ads = {.name = "ads"}, users = {.name = "users"};
	struct api_mirror mirrors[2] = {{.cfg = &ads}, {.cfg = &users}};
	struct api a = {.mirrors = mirrors, .n_mirrors = 2};
	struct reply rep;
	struct call c = call_of(&rep, NULL, NULL);

	c.api = &a;
	CHECK(api_mirror_named(&c, "users") && c.mirror == &mirrors[1]);
	c.mirror = NULL;
	CHECK(!api_mirror_named(&c, "ad") && c.mirror == NULL && rep.status == 404);
	CHECK_STR(error_of(&rep), "no mirror ad (mirrors: ads, users)");
}

int
main(void)
{
	test_query_int();
	test_run_id();
	test_query_words();
	test_body_bool();
	test_body_interval();
	test_body_target();
	test_mirror_named();
	return check_done("test_api");
}
