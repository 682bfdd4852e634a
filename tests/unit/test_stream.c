/* test_stream.c: live sync's pure parts: RECONCILE_FILTER moved onto the
 * change stream's fullDocument as a $match. */
#include "check.h"
#include "stream.h"

#include <stdlib.h>

/* The stage as relaxed extended JSON ("" when none was built). */
static char *
stage(const char *filter, bool *built, rcode *rc)
{
	struct rerror err = {0};
	bson_t out;
	char *json;

	*rc = stream_match_stage(&out, built, filter, &err);
	json = *built ? bson_as_relaxed_extended_json(&out, NULL) : strdup("");
	bson_destroy(&out);
	return json;
}

static void
test_match(void)
{
	bool built;
	rcode rc;
	char *j;

	j = stage("", &built, &rc);
	CHECK(rc == RC_OK && !built);
	free(j);
	j = stage("{}", &built, &rc);
	CHECK(rc == RC_OK && !built);
	free(j);
	/* fields move under fullDocument; inserts it leaves out are dropped,
	 * every other event passes (an update may take a document out) */
	j = stage("{\"status\": \"active\", \"n\": {\"$gt\": 3}}", &built, &rc);
	CHECK(rc == RC_OK && built);
	CHECK_STR(j,
	          "{ \"$match\" : { \"$or\" : [ { \"operationType\" : { \"$ne\" : \"insert\" } }, "
	          "{ \"fullDocument.status\" : \"active\", \"fullDocument.n\" : { \"$gt\" : 3 } "
	          "} ] } }");
	bson_free(j);
	/* $and, $or, $nor are followed down; dotted paths stay paths */
	j = stage("{\"$or\": [{\"a.b\": 1}, {\"$and\": [{\"c\": 2}]}], \"$comment\": \"x\"}",
	          &built, &rc);
	CHECK(rc == RC_OK && built);
	CHECK_STR(j,
	          "{ \"$match\" : { \"$or\" : [ { \"operationType\" : { \"$ne\" : \"insert\" } }, "
	          "{ \"$or\" : [ { \"fullDocument.a.b\" : 1 }, { \"$and\" : [ { "
	          "\"fullDocument.c\" : 2 } ] } ], \"$comment\" : \"x\" } ] } }");
	bson_free(j);
	/* what cannot be moved onto fullDocument: no $match at all */
	j = stage("{\"$expr\": {\"$gt\": [\"$a\", 1]}}", &built, &rc);
	CHECK(rc == RC_OK && !built);
	free(j);
	j = stage("{\"a\": 1, \"$or\": [{\"$where\": \"true\"}]}", &built, &rc);
	CHECK(rc == RC_OK && !built);
	free(j);
	j = stage("{\"$or\": 5}", &built, &rc);
	CHECK(rc == RC_OK && !built);
	free(j);
	j = stage("{not json", &built, &rc);
	CHECK(rc == RC_ERR_CONFIG && !built);
	free(j);
}

/* The service's tailer before any start: disabled, no lag, stops and
 * frees at once; the states' one name table. */
static void
test_tailer(void)
{
	struct config cfg = {.name = "ads"};
	struct stream_tailer *t = NULL;
	struct stream_status ss;
	struct rerror err = {0};

	CHECK(stream_tailer_new(&t, &cfg, &err) == RC_OK && t != NULL);
	stream_tailer_status(t, &ss);
	CHECK(ss.state == STREAM_DISABLED && ss.lag_s == -1 && !ss.catching_up && !ss.error[0]);
	CHECK(stream_tailer_stop(t, 0)); /* not running: stopped at once */
	stream_tailer_signal(t);
	stream_tailer_free(t);
	stream_tailer_free(NULL);
	stream_tailer_status(NULL, &ss);
	CHECK(ss.state == STREAM_DISABLED && ss.lag_s == -1);
	CHECK_STR(stream_state_name(STREAM_DISABLED), "disabled");
	CHECK_STR(stream_state_name(STREAM_RUNNING), "running");
	CHECK_STR(stream_state_name(STREAM_STOPPED), "stopped");
	CHECK_STR(stream_state_name(STREAM_FAILED), "failed");
	CHECK_STR(stream_state_name((enum stream_state)9), "unknown");
}

int
main(void)
{
	test_match();
	test_tailer();
	return check_done("test_stream");
}
