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

int
main(void)
{
	test_match();
	return check_done("test_stream");
}
