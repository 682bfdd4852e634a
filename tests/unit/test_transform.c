/* test_transform.c: declarative steps, the Lua type mapping both ways,
 * script results, errors, the sandbox, the budgets and the shipped example
 * script, all with real Lua.
 *
 *   test_transform --bench N [K]   documents/second of doc_to_json (K=0),
 *       examples/ads-pipeline.lua (K=1; BENCH_SCRIPT=FILE for another
 *       script) and the script behind a RECONCILE_FIELDS keep list (K=2) on
 *       N seed-like ads of ~3 KB; without K, the best of three rounds of
 *       each and their ratio; with K, one round of one (for a profiler).
 *       Speed is reported, never asserted (docs/CODE_STYLE.md).
 */
#include "check.h"
#include "config.h"
#include "doc.h"
#include "transform.h"

#include <inttypes.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static char dir[64];

static void
set_str(char **slot, const char *v)
{
	free(*slot);
	*slot = strdup(v);
}

/* Writes a script into the test's directory; returns its path (static). */
static const char *
script(const char *name, const char *text)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	return path;
}

static struct config *
cfg_with(const char *fields, const char *exclude, const char *rename, const char *path)
{
	struct config *c = NULL;
	struct rerror e = {0};

	if (config_load(&c, NULL, &e))
		return NULL;
	set_str(&c->fields, fields ? fields : "");
	set_str(&c->exclude, exclude ? exclude : "");
	set_str(&c->rename, rename ? rename : "");
	set_str(&c->transform, path ? path : "");
	return c;
}

/* A transform from settings; NULL (and *rc, msg) when transform_new fails. */
static struct transform *
make(struct config *c, rcode *rc, char *msg, size_t len)
{
	struct transform *t = NULL;
	struct rerror e = {0};
	rcode r = transform_new(&t, c, &e);

	if (rc)
		*rc = r;
	if (msg)
		snprintf(msg, len, "%s", e.message);
	if (r && !rc)
		fprintf(stderr, "  transform_new: %s\n", e.message);
	return t;
}

struct result {
	rcode rc;
	char *body;
	char *routing;
	bool skip;
	char msg[512];
};

static bson_t *
from_json(const char *json)
{
	bson_error_t error;
	bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &error);

	if (b == NULL)
		fprintf(stderr, "  bad test JSON: %s\n  %s\n", error.message, json);
	return b;
}

static struct result
apply_bson(struct transform *t, const bson_t *d)
{
	struct result r = {0};
	struct buf out = {0}, id = {0};
	struct rerror e = {0};
	enum id_type type;
	bson_iter_t it;

	if (bson_iter_init_find(&it, d, "_id"))
		CHECK(doc_id_canonical(bson_iter_value(&it), &id, &type) == RC_OK);
	r.rc = transform_apply(t, d, "mongo_id", id.data ? id.data : "", &out, &r.routing, &r.skip,
	                       &e);
	r.body = out.data ? out.data : strdup("");
	snprintf(r.msg, sizeof(r.msg), "%s", e.message);
	buf_free(&id);
	return r;
}

static struct result
apply(struct transform *t, const char *json)
{
	bson_t *d = from_json(json);
	struct result r = {.rc = RC_ERR_INTERNAL};

	if (d) {
		r = apply_bson(t, d);
		bson_destroy(d);
	}
	if (r.body == NULL)
		r.body = strdup("");
	return r;
}

static void
result_free(struct result *r)
{
	free(r->body);
	free(r->routing);
}

/* Checks that json gives body want (routing NULL, not skipped). */
static void
expect_body(struct transform *t, const char *json, const char *want)
{
	struct result r = apply(t, json);

	CHECK(r.rc == RC_OK);
	if (r.rc)
		fprintf(stderr, "  error: %s\n", r.msg);
	CHECK_STR(r.body, want);
	CHECK(!r.skip);
	result_free(&r);
}

/* Checks that json fails with rc and a message holding want. */
static void
expect_error(struct transform *t, const char *json, rcode rc, const char *want)
{
	struct result r = apply(t, json);

	CHECK(r.rc == rc);
	CHECK(strstr(r.msg, want) != NULL);
	if (r.rc != rc || !strstr(r.msg, want))
		fprintf(stderr, "  rc %d, message: %s\n  want: %s\n", r.rc, r.msg, want);
	result_free(&r);
}

static char *
raw_json(const bson_t *d)
{
	struct buf b = {0}, id = {0};
	enum id_type type;
	bson_iter_t it;

	if (bson_iter_init_find(&it, d, "_id"))
		CHECK(doc_id_canonical(bson_iter_value(&it), &id, &type) == RC_OK);
	if (doc_to_json(d, "mongo_id", id.data ? id.data : "", &b, NULL))
		buf_free(&b);
	buf_free(&id);
	return b.data;
}

/* ---- no settings, declarative steps ----------------------------------- */

static const char *const plain_doc =
    "{\"_id\": {\"$oid\": \"65a1b2c3d4e5f60718293a4b\"}, \"a\": 1, \"b\": 2, \"c\": 3, "
    "\"mongo_id\": \"stale\", \"d\": {\"x\": [1, {}]}, \"e\": []}";
#define PLAIN_ID "\"mongo_id\":\"65a1b2c3d4e5f60718293a4b\""

static void
declarative(const char *fields, const char *exclude, const char *rename, const char *want)
{
	struct config *c = cfg_with(fields, exclude, rename, NULL);
	struct transform *t = make(c, NULL, NULL, 0);

	CHECK(t != NULL && transform_active(t) && !transform_scripted(t));
	if (t)
		expect_body(t, plain_doc, want);
	transform_free(t);
	config_free(c);
}

static void
test_declarative(void)
{
	struct config *c = cfg_with(NULL, NULL, NULL, NULL);
	struct transform *t = make(c, NULL, NULL, 0);
	bson_t *d = from_json(plain_doc);
	char *raw = raw_json(d);

	/* no setting: inactive, and exactly doc_to_json */
	CHECK(t != NULL && !transform_active(t) && !transform_active(NULL));
	if (t)
		expect_body(t, plain_doc, raw);
	free(raw);
	bson_destroy(d);
	transform_free(t);
	transform_free(NULL);
	config_free(c);

	declarative("a, c,d,missing", NULL, NULL,
	            "{" PLAIN_ID ",\"a\":1,\"c\":3,\"d\":{\"x\":[1,{}]}}");
	declarative(NULL, "b,mongo_id", NULL,
	            "{" PLAIN_ID ",\"a\":1,\"c\":3,\"d\":{\"x\":[1,{}]},\"e\":[]}");
	/* a renamed field takes its new name at its own place, and wins over a
	 * field of that name */
	declarative(NULL, NULL, "a:b",
	            "{" PLAIN_ID ",\"b\":1,\"c\":3,\"d\":{\"x\":[1,{}]},\"e\":[]}");
	declarative(NULL, NULL, "a:b, b:a",
	            "{" PLAIN_ID ",\"b\":1,\"a\":2,\"c\":3,\"d\":{\"x\":[1,{}]},\"e\":[]}");
	/* the lists name MongoDB's fields; renames come after them */
	declarative("a,b", "b", "a:z,b:y", "{" PLAIN_ID ",\"z\":1}");
	declarative(NULL, "b", "c:b",
	            "{" PLAIN_ID ",\"a\":1,\"b\":3,\"d\":{\"x\":[1,{}]},\"e\":[]}");
	/* a field left out does not push its rename's target out */
	declarative(NULL, "a", "a:b",
	            "{" PLAIN_ID ",\"b\":2,\"c\":3,\"d\":{\"x\":[1,{}]},\"e\":[]}");
	declarative("_id,e", NULL, NULL, "{" PLAIN_ID ",\"e\":[]}");
}

static void
bad_env(const char *name, const char *value)
{
	struct config *c = NULL;
	struct rerror e = {0};

	setenv(name, value, 1);
	CHECK(config_load(&c, NULL, &e) == RC_ERR_CONFIG);
	CHECK(strstr(e.message, name) != NULL);
	if (c)
		fprintf(stderr, "  %s=%s was accepted\n", name, value);
	config_free(c);
	unsetenv(name);
}

static void
bad_setting(const char *fields, const char *exclude, const char *rename, const char *want)
{
	struct config *c = cfg_with(fields, exclude, rename, NULL);
	char msg[512];
	rcode rc;
	struct transform *t = make(c, &rc, msg, sizeof(msg));

	CHECK(t == NULL && rc == RC_ERR_CONFIG);
	CHECK(strstr(msg, want) != NULL);
	if (!strstr(msg, want))
		fprintf(stderr, "  message: %s\n  want: %s\n", msg, want);
	transform_free(t);
	config_free(c);
}

static void
test_settings(void)
{
	struct config *c = NULL;
	struct rerror e = {0};

	CHECK(config_load(&c, NULL, &e) == RC_OK);
	CHECK(c && c->transform_max_instructions == 10000000);
	CHECK(c && c->transform_max_memory == 64 << 20);
	CHECK(c && *c->fields == '\0' && *c->transform == '\0');
	config_free(c);
	setenv("RECONCILE_RENAME", " a : b ,c:d", 1);
	setenv("RECONCILE_FIELDS", "a, b ,c", 1);
	CHECK(config_load(&c, NULL, &e) == RC_OK);
	config_free(c);
	unsetenv("RECONCILE_RENAME");
	unsetenv("RECONCILE_FIELDS");

	bad_env("RECONCILE_FIELDS", "a,,b");
	bad_env("RECONCILE_FIELDS", "a.b");
	bad_env("RECONCILE_FIELDS", "a,");
	bad_env("RECONCILE_EXCLUDE", "x:y");
	bad_env("RECONCILE_RENAME", "a");
	bad_env("RECONCILE_RENAME", "a:");
	bad_env("RECONCILE_RENAME", "a:b,a:c");
	bad_env("RECONCILE_RENAME", "a:b,c:b");
	bad_env("RECONCILE_RENAME", "a.b:c");
	bad_env("RECONCILE_RENAME", "a:b:c");
	bad_env("RECONCILE_TRANSFORM_MAX_INSTRUCTIONS", "10");
	bad_env("RECONCILE_TRANSFORM_MAX_MEMORY", "1000");

	bad_setting(NULL, NULL, "a:_id", "_id is the document's id");
	bad_setting(NULL, NULL, "_id:a", "_id is the document's id");
	bad_setting(NULL, NULL, "a:mongo_id", "OPENSEARCH_ID_FIELD");
	bad_setting(NULL, "_id", NULL, "_id is the document's id");
	/* configs built by hand are checked too */
	bad_setting("a,,b", NULL, NULL, "RECONCILE_FIELDS");
	bad_setting(NULL, NULL, "a:b,c:b", "RECONCILE_RENAME");
	bad_setting(NULL, NULL, "a", "RECONCILE_RENAME");
}

/* ---- BSON -> Lua -> JSON ---------------------------------------------- */

/* Every type of docs/MAPPING.md; mongo_id is a stored field the id field
 * replaces. */
static const char *const all_types =
    "{\"_id\": {\"$oid\": \"5f1a2b3c4d5e6f7081920a1b\"},"
    " \"double\": {\"$numberDouble\": \"1.5\"},"
    " \"double_int\": {\"$numberDouble\": \"3.0\"},"
    " \"double_big\": {\"$numberDouble\": \"1e300\"},"
    " \"double_small\": {\"$numberDouble\": \"0.1\"},"
    " \"double_neg0\": {\"$numberDouble\": \"-0.0\"},"
    " \"nan\": {\"$numberDouble\": \"NaN\"},"
    " \"inf\": {\"$numberDouble\": \"Infinity\"},"
    " \"ninf\": {\"$numberDouble\": \"-Infinity\"},"
    " \"str\": \"a\\\"b\\\\c\\n\\u0001 \\u00e9 \\u2713 \\ud834\\udd1e\","
    " \"empty_str\": \"\","
    " \"\\u043a\\u043b\\u044e\\u0447\": \"unicode key\","
    " \"doc\": {\"z\": 1, \"a\": {\"deep\": [1, 2]}, \"m\": null},"
    " \"empty_doc\": {},"
    " \"arr\": [1, \"two\", {\"three\": 3}, [], {}, null],"
    " \"empty_arr\": [],"
    " \"nested_empty\": [[[]], [{}], {\"a\": []}],"
    " \"bin\": {\"$binary\": {\"base64\": \"AQIDBA==\", \"subType\": \"00\"}},"
    " \"bin_empty\": {\"$binary\": {\"base64\": \"\", \"subType\": \"00\"}},"
    " \"uuid\": {\"$binary\": {\"base64\": \"c//SZESzTGmQ6OfR38A11A==\", \"subType\": \"04\"}},"
    " \"undef\": {\"$undefined\": true},"
    " \"oid\": {\"$oid\": \"000000000000000000000001\"},"
    " \"t\": true, \"f\": false,"
    " \"date\": {\"$date\": {\"$numberLong\": \"1700000000123\"}},"
    " \"date_pre1970\": {\"$date\": {\"$numberLong\": \"-1\"}},"
    " \"date_year1\": {\"$date\": {\"$numberLong\": \"-62135596800000\"}},"
    " \"date_neg\": {\"$date\": {\"$numberLong\": \"-62198755200000\"}},"
    " \"date_10000\": {\"$date\": {\"$numberLong\": \"253402300800000\"}},"
    " \"date_max\": {\"$date\": {\"$numberLong\": \"9223372036854775807\"}},"
    " \"date_min\": {\"$date\": {\"$numberLong\": \"-9223372036854775808\"}},"
    " \"null\": null,"
    " \"regex\": {\"$regularExpression\": {\"pattern\": \"^a.*b$\", \"options\": \"im\"}},"
    " \"dbp\": {\"$dbPointer\": {\"$ref\": \"coll\", \"$id\": {\"$oid\": "
    "\"5f1a2b3c4d5e6f7081920a1c\"}}},"
    " \"code\": {\"$code\": \"function() {}\"},"
    " \"sym\": {\"$symbol\": \"sym\"},"
    " \"cws\": {\"$code\": \"x\", \"$scope\": {\"y\": 1}},"
    " \"i32\": {\"$numberInt\": \"-2147483648\"},"
    " \"i64max\": {\"$numberLong\": \"9223372036854775807\"},"
    " \"i64min\": {\"$numberLong\": \"-9223372036854775808\"},"
    " \"big_double_int\": {\"$numberDouble\": \"9007199254740993\"},"
    " \"ts\": {\"$timestamp\": {\"t\": 1700000000, \"i\": 7}},"
    " \"dec\": {\"$numberDecimal\": \"12.345\"},"
    " \"dec_nan\": {\"$numberDecimal\": \"NaN\"},"
    " \"minkey\": {\"$minKey\": 1},"
    " \"maxkey\": {\"$maxKey\": 1},"
    " \"mongo_id\": \"stale copy\"}";

/* The script sees each type as docs/MAPPING.md says. */
static const char *const type_checks =
    "local null = reconciler.null\n"
    "local function check(ok, what) if not ok then error('type check: ' .. what, 2) end end\n"
    "function transform(doc)\n"
    "  check(doc._id == '5f1a2b3c4d5e6f7081920a1b', '_id is the canonical text')\n"
    "  check(math.type(doc.double) == 'float' and doc.double == 1.5, 'double')\n"
    "  check(math.type(doc.double_int) == 'float' and doc.double_int == 3, 'integral double')\n"
    "  check(doc.nan ~= doc.nan and doc.inf == math.huge and doc.ninf == -math.huge, 'nan')\n"
    "  check(doc.str == 'a\"b\\\\c\\n\\1 \\u{e9} \\u{2713} \\u{1d11e}', 'string')\n"
    "  check(doc['\\u{43a}\\u{43b}\\u{44e}\\u{447}'] == 'unicode key', 'unicode key')\n"
    "  check(not reconciler.is_array(doc.doc) and doc.doc.z == 1, 'document')\n"
    "  check(doc.doc.m == null, 'null in a document')\n"
    "  check(reconciler.is_array(doc.doc.a.deep) and doc.doc.a.deep[2] == 2, 'nested')\n"
    "  check(reconciler.is_array(doc.arr) and #doc.arr == 6 and doc.arr[6] == null, 'array')\n"
    "  check(reconciler.is_array(doc.arr[4]) and not reconciler.is_array(doc.arr[5]), 'arr')\n"
    "  check(reconciler.is_array(doc.empty_arr) and #doc.empty_arr == 0, 'empty array')\n"
    "  check(not reconciler.is_array(doc.empty_doc) and next(doc.empty_doc) == nil, '{}')\n"
    "  check(doc.bin == 'AQIDBA==' and doc.bin_empty == '', 'binary')\n"
    "  check(doc.uuid == 'c//SZESzTGmQ6OfR38A11A==', 'uuid')\n"
    "  check(doc.undef == null and doc.null == null, 'null')\n"
    "  check(doc.oid == '000000000000000000000001', 'oid')\n"
    "  check(doc.t == true and doc.f == false, 'bool')\n"
    "  check(doc.date == '2023-11-14T22:13:20.123Z', 'date')\n"
    "  check(doc.date_pre1970 == '1969-12-31T23:59:59.999Z', 'date before 1970')\n"
    "  check(doc.date_year1 == '0001-01-01T00:00:00.000Z', 'year 1')\n"
    "  check(doc.date_neg == '-0001-01-01T00:00:00.000Z', 'year -1')\n"
    "  check(doc.date_10000 == '+10000-01-01T00:00:00.000Z', 'year 10000')\n"
    "  check(doc.date_max:sub(1, 1) == '+' and doc.date_min:sub(1, 1) == '-', 'date range')\n"
    "  check(doc.regex == '/^a.*b$/im', 'regex')\n"
    "  check(doc.dbp == '5f1a2b3c4d5e6f7081920a1c', 'dbpointer')\n"
    "  check(doc.code == 'function() {}' and doc.sym == 'sym' and doc.cws == 'x', 'code')\n"
    "  check(math.type(doc.i32) == 'integer' and doc.i32 == -2147483648, 'int32')\n"
    "  check(doc.i64max == math.maxinteger and doc.i64min == math.mininteger, 'int64')\n"
    "  check(math.type(doc.i64max) == 'integer', 'int64 is an integer')\n"
    "  check(doc.ts.t == 1700000000 and doc.ts.i == 7, 'timestamp')\n"
    "  check(doc.dec == '12.345' and doc.dec_nan == 'NaN', 'decimal128')\n"
    "  check(doc.minkey == 'MinKey' and doc.maxkey == 'MaxKey', 'min/max key')\n"
    "  check(doc.mongo_id == 'stale copy', 'stored id field')\n"
    "  local order = getmetatable(doc).__order\n"
    "  check(order[1] == '_id' and order[2] == 'double' and order[3] == 'double_int', "
    "'order')\n"
    "  return {ok = true}\n"
    "end\n";

static void
append_nested(bson_t *parent, const char *key, int levels)
{
	bson_t child;

	if (levels == 0) {
		BSON_APPEND_INT32(parent, key, 1);
		return;
	}
	bson_append_document_begin(parent, key, -1, &child);
	append_nested(&child, "n", levels - 1);
	bson_append_document_end(parent, &child);
}

static void
test_types(void)
{
	struct config *c = cfg_with(
	    NULL, NULL, NULL, script("identity.lua", "function transform(doc) return doc end\n"));
	struct transform *t = make(c, NULL, NULL, 0);
	bson_t *d = from_json(all_types);
	char *raw;
	struct result r;

	CHECK(t != NULL && d != NULL);
	if (t == NULL || d == NULL)
		goto out;
	CHECK(transform_active(t) && transform_scripted(t));
	/* Lua holds every type as JSON would, in the document's key order:
	 * returning the document gives exactly doc_to_json's bytes */
	BSON_APPEND_UTF8(d, "bad_utf8",
	                 "ab\xff\xfe"
	                 "c");
	raw = raw_json(d);
	r = apply_bson(t, d);
	CHECK(r.rc == RC_OK);
	CHECK_STR(r.body, raw);
	CHECK(r.routing == NULL && !r.skip);
	result_free(&r);
	/* the same input gives the same bytes */
	r = apply_bson(t, d);
	CHECK_STR(r.body, raw);
	result_free(&r);
	free(raw);

	/* nesting: 100 levels as doc_to_json, 101 refused the same way */
	for (int levels = 99; levels <= 100; levels++) {
		bson_t deep = BSON_INITIALIZER;
		BSON_APPEND_UTF8(&deep, "_id", "deep");
		append_nested(&deep, "n", levels);
		raw = raw_json(&deep);
		r = apply_bson(t, &deep);
		CHECK(raw != NULL && r.rc == RC_OK);
		CHECK_STR(r.body, raw);
		result_free(&r);
		free(raw);
		bson_destroy(&deep);
	}
	{
		bson_t deep = BSON_INITIALIZER;
		struct buf b = {0};
		struct rerror e = {0};
		BSON_APPEND_UTF8(&deep, "_id", "deeper");
		append_nested(&deep, "n", 101);
		CHECK(doc_to_json(&deep, "mongo_id", "deeper", &b, NULL) == RC_ERR_TOOLARGE);
		r = apply_bson(t, &deep);
		CHECK(r.rc == RC_ERR_TOOLARGE && strstr(r.msg, "nested deeper than 100"));
		CHECK_STR(r.body, ""); /* nothing left behind in out */
		result_free(&r);
		buf_free(&b);
		bson_destroy(&deep);
		(void)e;
	}
	transform_free(t);
	config_free(c);

	c = cfg_with(NULL, NULL, NULL, script("types.lua", type_checks));
	t = make(c, NULL, NULL, 0);
	CHECK(t != NULL);
	if (t) {
		r = apply_bson(t, d);
		CHECK(r.rc == RC_OK);
		if (r.rc)
			fprintf(stderr, "  %s\n", r.msg);
		CHECK_STR(r.body, "{\"mongo_id\":\"5f1a2b3c4d5e6f7081920a1b\",\"ok\":true}");
		result_free(&r);
	}
out:
	if (d)
		bson_destroy(d);
	transform_free(t);
	config_free(c);
}

/* ---- what a script returns -------------------------------------------- */

static const char *const returns_lua =
    "local null = reconciler.null\n"
    "local cases = {}\n"
    "cases.values = function() return setmetatable({\n"
    "    int = 42, float = 2.5, integral = 3.0, big = 1e300, nan = 0/0, inf = math.huge,\n"
    "    str = 'caf\\u{e9}\\0x', t = true, empty_obj = {}, empty_arr = reconciler.array(),\n"
    "    seq = {1, 2, 3}, null = null, nested = {b = 1, a = {c = reconciler.array({1})}},\n"
    "    zkey = 1, akey = 2, _id = 'dropped', mongo_id = 'overridden',\n"
    "  }, {__order = {'zkey', 'missing', 'int', 'zkey', 7}})\n"
    "end\n"
    "cases.skip = function() return nil, 'ignored' end\n"
    "cases.routing = function(doc) return {}, doc.r end\n"
    "cases.func = function() return {a = {b = {print}}} end\n"
    "cases.mixed = function() return {x = {1, 2, y = 1}} end\n"
    "cases.hole = function() return {x = {[1] = 1, [3] = 3}} end\n"
    "cases.marked_hole = function() return {x = reconciler.array({[1] = 1, [3] = 3})} end\n"
    "cases.float_key = function() return {x = {[1.5] = 1}} end\n"
    "cases.cycle = function() local t = {} t.self = t return t end\n"
    "cases.array_body = function() return {1, 2} end\n"
    "cases.marked_body = function() return reconciler.array() end\n"
    "cases.string = function() return 'x' end\n"
    "cases.boolean = function() return false end\n"
    "cases.thread = function() return {co = coroutine.create(print)} end\n"
    "cases.pick = function(doc) return reconciler.pick(doc, {'z', 'missing', 'a', 'n'}) end\n"
    "cases.pick_bad = function(doc) return reconciler.pick(doc, {'a', 2}) end\n"
    "cases.array_nil = function() return {a = reconciler.array(nil), b = reconciler.array()} "
    "end\n"
    "function transform(doc) return cases[doc.case](doc) end\n";

static void
routing_case(struct transform *t, const char *value_json, const char *want)
{
	char json[256];
	struct result r;

	snprintf(json, sizeof(json), "{\"_id\": \"r\", \"case\": \"routing\", \"r\": %s}",
	         value_json);
	r = apply(t, json);
	if (want) {
		CHECK(r.rc == RC_OK);
		CHECK_STR(r.routing, want);
		CHECK_STR(r.body, "{\"mongo_id\":\"r\"}");
	} else {
		CHECK(r.rc == RC_ERR_INVALID && r.routing == NULL);
		CHECK(strstr(r.msg, "routing") != NULL);
	}
	result_free(&r);
}

/* The routing of one document under OPENSEARCH_ROUTING_FIELD (NULL: none). */
static void
route_case(struct transform *t, const char *json, const char *want)
{
	struct result r = apply(t, json);

	CHECK(r.rc == RC_OK);
	if (want)
		CHECK_STR(r.routing, want);
	else
		CHECK(r.routing == NULL);
	result_free(&r);
}

/* OPENSEARCH_ROUTING_FIELD: fields tried in order, values as their id
 * text, unusable ones passed over, else the id; the script's routing wins. */
static void
test_routing_fields(void)
{
	struct config *c = cfg_with(NULL, NULL, NULL, NULL);
	struct transform *t;
	rcode rc;
	char msg[512];

	if (c == NULL) {
		CHECK(c != NULL);
		return;
	}
	set_str(&c->routing_field, "page_id, countrySearchedfor");
	t = make(c, NULL, NULL, 0);
	CHECK(t != NULL && !transform_active(t)); /* routing alone leaves the body raw */
	route_case(t, "{\"_id\": \"a\", \"page_id\": \"p1\", \"countrySearchedfor\": \"US\"}",
	           "p1");
	route_case(t, "{\"_id\": \"b\", \"page_id\": null, \"countrySearchedfor\": \"US\"}", "US");
	route_case(t, "{\"_id\": \"c\", \"page_id\": \"\"}", "c");
	route_case(t, "{\"_id\": \"d\", \"page_id\": 777}", "777");
	route_case(t, "{\"_id\": \"d\", \"page_id\": {\"$numberDouble\": \"12.0\"}}", "12");
	route_case(t, "{\"_id\": \"e\", \"page_id\": {\"$oid\": \"65a1b2c3d4e5f60718293a4b\"}}",
	           "65a1b2c3d4e5f60718293a4b");
	route_case(t, "{\"_id\": \"f\", \"page_id\": {\"x\": 1}, \"countrySearchedfor\": [\"US\"]}",
	           "f");
	route_case(t, "{\"_id\": \"g\", \"page_id\": {\"$numberDouble\": \"NaN\"}}", "g");
	route_case(t, "{\"_id\": \"h\", \"page_id\": false}", "false");
	route_case(t, "{\"_id\": {\"$numberLong\": \"42\"}}", "42");
	transform_free(t);

	/* the script's routing wins; without one the fields apply */
	set_str(&c->transform, script("routes.lua", "function transform(doc)\n"
	                                            "  return {}, doc.r\nend\n"));
	t = make(c, NULL, NULL, 0);
	CHECK(t != NULL);
	route_case(t, "{\"_id\": \"a\", \"r\": \"S\", \"page_id\": \"p1\"}", "S");
	route_case(t, "{\"_id\": \"a\", \"page_id\": \"p1\"}", "p1");
	route_case(t, "{\"_id\": \"a\"}", "a");
	transform_free(t);

	/* no rule: no routing */
	set_str(&c->routing_field, "");
	t = make(c, NULL, NULL, 0);
	route_case(t, "{\"_id\": \"a\", \"page_id\": \"p1\"}", NULL);
	transform_free(t);

	set_str(&c->transform, "");
	set_str(&c->routing_field, "page.id");
	t = make(c, &rc, msg, sizeof(msg));
	CHECK(t == NULL && rc == RC_ERR_CONFIG && strstr(msg, "OPENSEARCH_ROUTING_FIELD") != NULL);
	config_free(c);
}

static void
test_returns(void)
{
	struct config *c = cfg_with(NULL, NULL, NULL, script("returns.lua", returns_lua));
	struct transform *t = make(c, NULL, NULL, 0);
	struct buf out = {0};
	struct rerror e = {0};
	char *routing = (char *)"x";
	bool skip = false;
	bson_t *d;

	CHECK(t != NULL);
	if (t == NULL)
		goto out;
	/* __order first (missing and repeated keys ignored), then bytewise;
	 * the id field first and always the id; _id never in the body */
	expect_body(t, "{\"_id\": \"v\", \"case\": \"values\"}",
	            "{\"mongo_id\":\"v\",\"zkey\":1,\"int\":42,\"akey\":2,\"big\":1e+300,"
	            "\"empty_arr\":[],\"empty_obj\":{},\"float\":2.5,\"inf\":null,\"integral\":3,"
	            "\"nan\":null,\"nested\":{\"a\":{\"c\":[1]},\"b\":1},\"null\":null,"
	            "\"seq\":[1,2,3],\"str\":\"caf\xc3\xa9\\u0000x\",\"t\":true}");

	/* nil: left out, out untouched, no routing */
	d = from_json("{\"_id\": \"s\", \"case\": \"skip\"}");
	CHECK(buf_puts(&out, "kept") == RC_OK);
	CHECK(transform_apply(t, d, "mongo_id", "s", &out, &routing, &skip, &e) == RC_OK);
	CHECK(skip && routing == NULL);
	CHECK_STR(out.data, "kept");
	bson_destroy(d);
	buf_free(&out);

	routing_case(t, "\"page-1\"", "page-1");
	routing_case(t, "{\"$numberLong\": \"1234567890123\"}", "1234567890123");
	routing_case(t, "{\"$numberDouble\": \"123.0\"}", "123");
	routing_case(t, "1.5", "1.5");
	routing_case(t, "true", "true");
	routing_case(t, "\"\"", NULL);
	routing_case(t, "{\"a\": 1}", NULL);
	routing_case(t, "{\"$numberDouble\": \"NaN\"}", NULL);
	{
		struct result r = apply(t, "{\"_id\": \"r\", \"case\": \"routing\", \"r\": null}");
		CHECK(r.rc == RC_OK && r.routing == NULL);
		result_free(&r);
		r = apply(t, "{\"_id\": \"r\", \"case\": \"routing\"}");
		CHECK(r.rc == RC_OK && r.routing == NULL);
		result_free(&r);
	}

	expect_error(t, "{\"_id\": 1, \"case\": \"func\"}", RC_ERR_INVALID,
	             "body.a.b[1]: a function value");
	expect_error(t, "{\"_id\": 1, \"case\": \"mixed\"}", RC_ERR_INVALID,
	             "body.x: a table mixes string keys and number keys");
	expect_error(t, "{\"_id\": 1, \"case\": \"hole\"}", RC_ERR_INVALID, "body.x: ");
	expect_error(t, "{\"_id\": 1, \"case\": \"marked_hole\"}", RC_ERR_INVALID, "body.x: ");
	expect_error(t, "{\"_id\": 1, \"case\": \"float_key\"}", RC_ERR_INVALID,
	             "a table key is a number");
	expect_error(t, "{\"_id\": 1, \"case\": \"cycle\"}", RC_ERR_TOOLARGE, "contain itself");
	expect_error(t, "{\"_id\": 1, \"case\": \"array_body\"}", RC_ERR_INVALID,
	             "the body is an object");
	expect_error(t, "{\"_id\": 1, \"case\": \"marked_body\"}", RC_ERR_INVALID,
	             "the body is an object");
	expect_error(t, "{\"_id\": 1, \"case\": \"string\"}", RC_ERR_INVALID,
	             "transform returned a string: expected a table");
	expect_error(t, "{\"_id\": 1, \"case\": \"boolean\"}", RC_ERR_INVALID,
	             "transform returned a boolean");
	expect_error(t, "{\"_id\": 1, \"case\": \"thread\"}", RC_ERR_INVALID,
	             "body.co: a thread value");
	/* pick: the listed keys the table has, in the list's order; null kept */
	expect_body(t,
	            "{\"_id\": 1, \"case\": \"pick\", \"a\": 1, \"n\": null, \"z\": [], \"q\": 2}",
	            "{\"mongo_id\":\"1\",\"z\":[],\"a\":1,\"n\":null}");
	expect_error(t, "{\"_id\": 1, \"case\": \"pick_bad\"}", RC_ERR_INVALID,
	             "reconciler.pick: keys[2] is a number, not a string");
	expect_body(t, "{\"_id\": 1, \"case\": \"array_nil\"}",
	            "{\"mongo_id\":\"1\",\"a\":[],\"b\":[]}");
	/* and the state still works */
	expect_body(t, "{\"_id\": \"r\", \"case\": \"routing\"}", "{\"mongo_id\":\"r\"}");
out:
	transform_free(t);
	config_free(c);
}

/* ---- loading ---------------------------------------------------------- */

static void
load_error(const char *name, const char *text, const char *want1, const char *want2)
{
	const char *path = text ? script(name, text) : name;
	struct config *c = cfg_with(NULL, NULL, NULL, path);
	char msg[512];
	rcode rc;
	struct transform *t;

	c->transform_max_instructions = 100000;
	t = make(c, &rc, msg, sizeof(msg));
	CHECK(t == NULL && rc == RC_ERR_CONFIG);
	CHECK(strstr(msg, want1) != NULL);
	CHECK(want2 == NULL || strstr(msg, want2) != NULL);
	if (!strstr(msg, want1) || (want2 && !strstr(msg, want2)))
		fprintf(stderr, "  message: %s\n  want: %s / %s\n", msg, want1, want2 ? want2 : "");
	transform_free(t);
	config_free(c);
}

static void
test_load(void)
{
	char want[160];

	snprintf(want, sizeof(want), "%s/syntax.lua:3:", dir);
	load_error("syntax.lua", "function transform(doc)\n  return {\nend\n", want, "near 'end'");
	snprintf(want, sizeof(want), "%s/boom.lua:2: boom", dir);
	load_error("boom.lua", "local x = 1\nerror('boom')\n", want, NULL);
	load_error("none.lua", "function transfrom(doc) return doc end\n",
	           "defines no function transform(doc)", NULL);
	load_error("/nonexistent/script.lua", NULL, "cannot open /nonexistent/script.lua", NULL);
	/* bytecode is never loaded from a file (it can crash the VM) */
	load_error("binary.lua", "\x1bLua\x54", "attempt to load a binary chunk", NULL);
	load_error("spin.lua", "while true do end\nfunction transform(doc) return doc end\n",
	           "instruction budget exceeded", NULL);
	load_error("sandboxed.lua", "os.exit(1)\n", "os.exit is not available", NULL);
}

/* ---- runtime errors and the sandbox ----------------------------------- */

static const char *const runtime_lua = "function transform(doc)\n"
                                       "  if doc.bad then\n"
                                       "    error('bad document ' .. doc._id)\n"
                                       "  elseif doc.nilindex then\n"
                                       "    return doc.missing.field\n"
                                       "  elseif doc.table_error then\n"
                                       "    error({code = 1})\n"
                                       "  end\n"
                                       "  return {n = doc.n}\n"
                                       "end\n";

static void
test_runtime(void)
{
	const char *path = script("runtime.lua", runtime_lua);
	struct config *c = cfg_with(NULL, NULL, NULL, path);
	struct transform *t = make(c, NULL, NULL, 0);
	char want[200];

	CHECK(t != NULL);
	if (t == NULL)
		goto out;
	snprintf(want, sizeof(want), "%s:3: bad document x1", path);
	expect_error(t, "{\"_id\": \"x1\", \"bad\": true}", RC_ERR_INVALID, want);
	expect_body(t, "{\"_id\": \"x2\", \"n\": 2}", "{\"mongo_id\":\"x2\",\"n\":2}");
	snprintf(want, sizeof(want), "%s:5: attempt to index a nil value (field 'missing')", path);
	expect_error(t, "{\"_id\": \"x3\", \"nilindex\": true}", RC_ERR_INVALID, want);
	expect_error(t, "{\"_id\": \"x4\", \"table_error\": true}", RC_ERR_INVALID,
	             "(error object is a table value)");
	expect_body(t, "{\"_id\": \"x5\", \"n\": 5}", "{\"mongo_id\":\"x5\",\"n\":5}");
out:
	transform_free(t);
	config_free(c);
}

static const char *const sandbox_lua =
    "function transform(doc)\n"
    "  local w = doc.what\n"
    "  if w == 'os' then os.execute('touch ' .. doc.file)\n"
    "  elseif w == 'io' then io.open(doc.file, 'w')\n"
    "  elseif w == 'require' then require('os')\n"
    "  elseif w == 'load' then load('return 1')\n"
    "  elseif w == 'loadfile' then loadfile('/etc/passwd')\n"
    "  elseif w == 'dofile' then dofile('/etc/passwd')\n"
    "  elseif w == 'dump' then string.dump(transform)\n"
    "  elseif w == 'dump_method' then ('').dump(transform)\n"
    "  elseif w == 'debug' then debug.getinfo(1)\n"
    "  elseif w == 'package' then package.loadlib('libc.so.6', 'system')\n"
    "  elseif w == 'gc' then collectgarbage()\n"
    "  elseif w == 'print' then print('from the script', 1, nil)\n"
    "  elseif w == 'globals' then\n"
    "    return {n = (io == nil) and 0 or 1, warn = warn == nil}\n"
    "  end\n"
    "  return {ok = true}\n"
    "end\n";

static void
refused(struct transform *t, const char *path, const char *what, int line, const char *want)
{
	char json[256], full[300];

	snprintf(json, sizeof(json), "{\"_id\": \"s\", \"what\": \"%s\", \"file\": \"%s/pwned\"}",
	         what, dir);
	snprintf(full, sizeof(full), "%s:%d: %s", path, line, want);
	expect_error(t, json, RC_ERR_INVALID, full);
	/* the next document is fine */
	expect_body(t, "{\"_id\": \"ok\", \"what\": \"none\"}",
	            "{\"mongo_id\":\"ok\",\"ok\":true}");
}

static void
test_sandbox(void)
{
	const char *path = script("sandbox.lua", sandbox_lua);
	char pathc[128], pwned[128];
	struct config *c;
	struct transform *t;

	snprintf(pathc, sizeof(pathc), "%s", path);
	c = cfg_with(NULL, NULL, NULL, pathc);
	t = make(c, NULL, NULL, 0);
	CHECK(t != NULL);
	if (t == NULL)
		goto out;
	refused(t, pathc, "os", 3, "os.execute is not available: the transform sandbox has no os");
	refused(t, pathc, "io", 4, "io.open is not available: the transform sandbox has no io");
	refused(t, pathc, "require", 5, "require is not available in the transform sandbox");
	refused(t, pathc, "load", 6, "load is not available");
	refused(t, pathc, "loadfile", 7, "loadfile is not available");
	refused(t, pathc, "dofile", 8, "dofile is not available");
	refused(t, pathc, "dump", 9, "string.dump is not available");
	refused(t, pathc, "dump_method", 10, "string.dump is not available");
	refused(t, pathc, "debug", 11, "debug.getinfo is not available");
	refused(t, pathc, "package", 12, "package.loadlib is not available");
	refused(t, pathc, "gc", 13, "collectgarbage is not available");
	snprintf(pwned, sizeof(pwned), "%s/pwned", dir);
	CHECK(access(pwned, F_OK) != 0); /* neither os.execute nor io.open ran */
	/* print goes to the debug log, not to stdout */
	expect_body(t, "{\"_id\": \"p\", \"what\": \"print\"}", "{\"mongo_id\":\"p\",\"ok\":true}");
	expect_body(t, "{\"_id\": \"g\", \"what\": \"globals\"}",
	            "{\"mongo_id\":\"g\",\"n\":1,\"warn\":true}");
out:
	transform_free(t);
	config_free(c);
}

/* ---- budgets ---------------------------------------------------------- */

static const char *const budget_lua =
    "calls = 0\n"
    "function transform(doc)\n"
    "  calls = calls + 1\n"
    "  local w = doc.what\n"
    "  if w == 'loop' then while true do end\n"
    "  elseif w == 'pcall_loop' then\n"
    "    while true do pcall(function() while true do end end) end\n"
    "  elseif w == 'co_loop' then\n"
    "    while true do coroutine.resume(coroutine.create(function() while true do end end)) "
    "end\n"
    "  elseif w == 'gc_loop' then\n"
    "    setmetatable({}, {__gc = function() while true do end end})\n"
    "  elseif w == 'work' then\n"
    "    local s = 0 for i = 1, 10000 do s = s + i end return {s = s}\n"
    "  elseif w == 'rep' then return {s = string.rep('x', 512 * 1024 * 1024)}\n"
    "  elseif w == 'grow' then\n"
    "    local t = {} while true do t[#t + 1] = string.rep('y', 1000) .. #t end\n"
    "  elseif w == 'hoard' then\n"
    "    hoard = hoard or {}\n"
    "    hoard[#hoard + 1] = string.rep('z', 1024 * 1024) .. calls\n"
    "  end\n"
    "  return {calls = calls}\n"
    "end\n";

static void
expect_calls(struct transform *t, int calls)
{
	char want[64];

	snprintf(want, sizeof(want), "{\"mongo_id\":\"c\",\"calls\":%d}", calls);
	expect_body(t, "{\"_id\": \"c\", \"what\": \"count\"}", want);
}

static void
test_budgets(void)
{
	const char *path = script("budget.lua", budget_lua);
	struct config *c = cfg_with(NULL, NULL, NULL, path);
	struct transform *t;
	struct result r;

	c->transform_max_instructions = 200000;
	c->transform_max_memory = 8 << 20;
	t = make(c, NULL, NULL, 0);
	CHECK(t != NULL);
	if (t == NULL)
		goto out;
	expect_calls(t, 1);
	expect_calls(t, 2);
	expect_body(t, "{\"_id\": \"c\", \"what\": \"work\"}",
	            "{\"mongo_id\":\"c\",\"s\":50005000}");
	/* an endless loop stops; the state is rebuilt (globals start afresh) */
	expect_error(t, "{\"_id\": \"l\", \"what\": \"loop\"}", RC_ERR_INVALID,
	             "instruction budget exceeded: more than 200000 Lua instructions");
	expect_calls(t, 1);
	/* the script's own pcall cannot swallow the budget */
	expect_error(t, "{\"_id\": \"l\", \"what\": \"pcall_loop\"}", RC_ERR_INVALID,
	             "instruction budget exceeded");
	expect_calls(t, 1);
	/* nor can coroutines, each with its own count */
	expect_error(t, "{\"_id\": \"l\", \"what\": \"co_loop\"}", RC_ERR_INVALID,
	             "instruction budget exceeded");
	expect_calls(t, 1);
	/* no finalizers: Lua runs them with hooks off, outside any budget */
	expect_error(t, "{\"_id\": \"g\", \"what\": \"gc_loop\"}", RC_ERR_INVALID,
	             "__gc metamethods are not available");
	expect_calls(t, 3); /* an ordinary error keeps the state */

	/* memory: one huge string, a table that grows, a global that hoards */
	expect_error(t, "{\"_id\": \"m\", \"what\": \"rep\"}", RC_ERR_INVALID,
	             "memory budget exceeded");
	expect_calls(t, 1);
	expect_error(t, "{\"_id\": \"m\", \"what\": \"grow\"}", RC_ERR_INVALID,
	             "memory budget exceeded");
	expect_calls(t, 1);
	for (int i = 0; i < 20; i++) {
		r = apply(t, "{\"_id\": \"h\", \"what\": \"hoard\"}");
		result_free(&r);
		if (r.rc) {
			CHECK(r.rc == RC_ERR_INVALID && strstr(r.msg, "memory budget exceeded"));
			break;
		}
		CHECK(i < 10); /* 8 MiB hold fewer than 10 of them */
	}
	expect_calls(t, 1);
out:
	transform_free(t);
	config_free(c);
}

/* ---- the shipped example ---------------------------------------------- */

static const char *
example_path(void)
{
	static char path[4096];
	const char *src = getenv("RECONCILER_SOURCE_DIR");

	snprintf(path, sizeof(path), "%s/examples/ads-pipeline.lua", src ? src : ".");
	return path;
}

/* The 45 fields the original writes, for RECONCILE_FIELDS. */
#define ADS_FIELDS                                                                                 \
	"ad_archive_id,library_id,page_id,page_name,advertiser_name,status,is_active,"             \
	"started_running_on,start_date,scraped_at,permalink_url,redirected_final_url,currency,"    \
	"keywords,countrySearchedfor,search_country,country,region,platforms,publisher_platform,"  \
	"creative,snapshot,search_query,search_media_type,search_type,categories,"                 \
	"page_categories,page_like_count,end_date,collation_id,collation_count,"                   \
	"contains_digital_created_media,contains_sensitive_content,is_profile_page,"               \
	"page_is_deleted,page_entity_type,entity_type,gated_type,hide_data_status,"                \
	"is_aaa_eligible,targeted_or_reached_countries,political_countries,"                       \
	"countrySearchedfor_all,url-filter,url-filter-updated-at"

static const struct {
	const char *doc, *body, *routing;
} ads_cases[] = {
    /* every rule at once: fields in the original's order, others dropped,
     * countrySearchedfor_all items of every kind, url-filter-id as hex */
    {"{\"_id\": {\"$oid\": \"65f1a2b3c4d5e6f708192a3b\"},"
     " \"internal_note\": \"not written\", \"image_embedding\": [0.1, 0.2],"
     " \"page_name\": \"Caf\\u00e9 \\u00dcn\\u00efc\\u00f8d\\u00e9\","
     " \"ad_archive_id\": \"1234567890\", \"library_id\": \"1234567890\","
     " \"page_id\": \"987654321\", \"advertiser_name\": \"ACME\","
     " \"status\": \"ACTIVE\", \"is_active\": true,"
     " \"started_running_on\": {\"$date\": \"2024-03-01T00:00:00Z\"},"
     " \"start_date\": {\"$numberLong\": \"1709251200\"},"
     " \"scraped_at\": {\"$date\": \"2024-03-13T10:20:30.456Z\"},"
     " \"permalink_url\": \"https://example.com/ads/1\", \"currency\": \"EUR\","
     " \"keywords\": [\"shoes\", \"running\"], \"countrySearchedfor\": \"FR\","
     " \"countrySearchedfor_all\": [\"FR\", {\"country\": \"DE\", \"is_active\": true},"
     "   {\"country\": \"\", \"is_active\": false}, {\"is_active\": null}, {\"country\": \"IT\"},"
     "   42, 1.5, null, true, [\"ES\"], {\"country\": 0, \"other\": 1}, \"BE\"],"
     " \"url-filter\": {\"name\": \"shoes\", \"url-filter-id\": {\"$oid\": "
     "\"65f1a2b3c4d5e6f708192a3c\"}, \"active\": true},"
     " \"url-filter-updated-at\": {\"$date\": \"2024-03-12T00:00:00Z\"},"
     " \"snapshot\": {\"title\": \"Run\", \"cards\": [{\"body\": \"x\", \"id\": {\"$oid\": "
     "\"65f1a2b3c4d5e6f708192a3d\"}}], \"images\": []},"
     " \"page_like_count\": 1200, \"collation_count\": {\"$numberDouble\": \"2.0\"},"
     " \"political_countries\": [], \"mongo_id\": \"stale\", \"updatedAt\": {\"$date\": "
     "\"2024-03-13T10:20:30Z\"}}",
     "{\"mongo_id\":\"65f1a2b3c4d5e6f708192a3b\",\"ad_archive_id\":\"1234567890\","
     "\"library_id\":\"1234567890\",\"page_id\":\"987654321\","
     "\"page_name\":\"Caf\xc3\xa9 \xc3\x9cn\xc3\xaf"
     "c\xc3\xb8"
     "d\xc3\xa9\","
     "\"advertiser_name\":\"ACME\",\"status\":\"ACTIVE\",\"is_active\":true,"
     "\"started_running_on\":\"2024-03-01T00:00:00.000Z\",\"start_date\":1709251200,"
     "\"scraped_at\":\"2024-03-13T10:20:30.456Z\","
     "\"permalink_url\":\"https://example.com/ads/1\",\"currency\":\"EUR\","
     "\"keywords\":[\"shoes\",\"running\"],\"countrySearchedfor\":\"FR\","
     "\"snapshot\":{\"title\":\"Run\",\"cards\":[{\"body\":\"x\","
     "\"id\":\"65f1a2b3c4d5e6f708192a3d\"}],\"images\":[]},"
     "\"page_like_count\":1200,\"collation_count\":2,\"political_countries\":[],"
     "\"countrySearchedfor_all\":[{\"country\":\"FR\",\"is_active\":null},"
     "{\"country\":\"DE\",\"is_active\":true},{\"country\":null,\"is_active\":false},"
     "{\"country\":null,\"is_active\":null},{\"country\":\"IT\",\"is_active\":null},"
     "{\"country\":null,\"is_active\":null},{\"country\":\"BE\",\"is_active\":null}],"
     "\"url-filter\":{\"name\":\"shoes\",\"url-filter-id\":\"65f1a2b3c4d5e6f708192a3c\","
     "\"active\":true},\"url-filter-updated-at\":\"2024-03-12T00:00:00.000Z\"}",
     "987654321"},
    /* page_id 0 is not set (JavaScript's truthiness): countrySearchedfor
     * routes; a countrySearchedfor_all that is no array is copied; no
     * url-filter and no url-filter-updated-at: null */
    {"{\"_id\": {\"$oid\": \"65f1a2b3c4d5e6f708192a3e\"}, \"page_id\": 0,"
     " \"countrySearchedfor\": \"US\", \"countrySearchedfor_all\": \"US\"}",
     "{\"mongo_id\":\"65f1a2b3c4d5e6f708192a3e\",\"page_id\":0,\"countrySearchedfor\":\"US\","
     "\"countrySearchedfor_all\":\"US\",\"url-filter\":null,\"url-filter-updated-at\":null}",
     "US"},
    /* nothing but the id: the id routes */
    {"{\"_id\": \"ad-42\"}",
     "{\"mongo_id\":\"ad-42\",\"url-filter\":null,\"url-filter-updated-at\":null}", "ad-42"},
    /* a number page_id routes as its decimal text */
    {"{\"_id\": 7, \"page_id\": {\"$numberLong\": \"1234567890123\"},"
     " \"countrySearchedfor\": \"DE\"}",
     "{\"mongo_id\":\"7\",\"page_id\":1234567890123,\"countrySearchedfor\":\"DE\","
     "\"url-filter\":null,\"url-filter-updated-at\":null}",
     "1234567890123"},
    /* empty and null values are written but do not route; an empty
     * countrySearchedfor_all stays an array; url-filter without an id and
     * a null updated-at are copied */
    {"{\"_id\": 77, \"page_id\": \"\", \"countrySearchedfor\": null,"
     " \"countrySearchedfor_all\": [], \"url-filter\": {\"url-filter-id\": null, \"x\": 1},"
     " \"url-filter-updated-at\": null}",
     "{\"mongo_id\":\"77\",\"page_id\":\"\",\"countrySearchedfor\":null,"
     "\"countrySearchedfor_all\":[],\"url-filter\":{\"url-filter-id\":null,\"x\":1},"
     "\"url-filter-updated-at\":null}",
     "77"},
    /* a url-filter of null is null; a string url-filter-id stays */
    {"{\"_id\": \"u\", \"url-filter\": null, \"page_id\": \"p\"}",
     "{\"mongo_id\":\"u\",\"page_id\":\"p\",\"url-filter\":null,"
     "\"url-filter-updated-at\":null}",
     "p"},
    {"{\"_id\": \"v\", \"url-filter\": {\"url-filter-id\": \"abc\"}}",
     "{\"mongo_id\":\"v\",\"url-filter\":{\"url-filter-id\":\"abc\"},"
     "\"url-filter-updated-at\":null}",
     "v"},
    /* an integral double page_id routes as JavaScript writes it */
    {"{\"_id\": \"w\", \"page_id\": {\"$numberDouble\": \"555.0\"}, \"url-filter\": "
     "{\"url-filter-id\": {\"$numberDouble\": \"12.0\"}}}",
     "{\"mongo_id\":\"w\",\"page_id\":555,\"url-filter\":{\"url-filter-id\":\"12\"},"
     "\"url-filter-updated-at\":null}",
     "555"},
};

static void
run_ads(const char *fields)
{
	struct config *c = cfg_with(fields, NULL, NULL, example_path());
	struct transform *t = make(c, NULL, NULL, 0);

	CHECK(t != NULL);
	for (size_t i = 0; t && i < sizeof(ads_cases) / sizeof(ads_cases[0]); i++) {
		struct result r = apply(t, ads_cases[i].doc);
		CHECK(r.rc == RC_OK);
		if (r.rc)
			fprintf(stderr, "  case %zu: %s\n", i, r.msg);
		CHECK_STR(r.body, ads_cases[i].body);
		CHECK_STR(r.routing, ads_cases[i].routing);
		CHECK(!r.skip);
		result_free(&r);
	}
	transform_free(t);
	config_free(c);
}

/* The first example of docs/TRANSFORM.md does what the page says. */
static const char *const doc_example_lua =
    "local FIELDS = { \"title\", \"price\", \"tags\" }\n"
    "\n"
    "function transform(doc)\n"
    "  if doc.status == \"DRAFT\" then\n"
    "    return nil                       -- not in the index (like a filter)\n"
    "  end\n"
    "  local body = reconciler.pick(doc, FIELDS)\n"
    "  if math.type(doc.price) then       -- a number (not absent, not null)\n"
    "    body.price_cents = math.floor(doc.price * 100 + 0.5)\n"
    "  end\n"
    "  return body, doc.shop_id           -- routing: the shop's id (nil: none)\n"
    "end\n";

static void
test_doc_example(void)
{
	struct config *c = cfg_with(NULL, NULL, NULL, script("doc-example.lua", doc_example_lua));
	struct transform *t = make(c, NULL, NULL, 0);
	struct result r;

	CHECK(t != NULL);
	if (t == NULL)
		goto out;
	r = apply(t, "{\"_id\": {\"$oid\": \"65a1b2c3d4e5f60718293a4b\"}, \"title\": \"Mug\", "
	             "\"price\": 4.5, \"tags\": [], \"shop_id\": 17, \"status\": \"LIVE\"}");
	CHECK(r.rc == RC_OK);
	CHECK_STR(r.body, "{" PLAIN_ID ",\"title\":\"Mug\",\"price\":4.5,\"tags\":[],"
	                  "\"price_cents\":450}");
	CHECK_STR(r.routing, "17");
	result_free(&r);
	r = apply(t, "{\"_id\": 1, \"status\": \"DRAFT\", \"price\": null}");
	CHECK(r.rc == RC_OK && r.skip && r.routing == NULL);
	result_free(&r);
	expect_body(t, "{\"_id\": 2, \"price\": null}", "{\"mongo_id\":\"2\",\"price\":null}");
out:
	transform_free(t);
	config_free(c);
}

static void
test_example(void)
{
	run_ads(NULL);
	/* the keep list in front of the script changes nothing but the speed */
	run_ads(ADS_FIELDS);
}

/* ---- benchmark -------------------------------------------------------- */

/* A realistic ad, about 3 KB of BSON, shaped like the seed's documents. */
static void
ad_doc(bson_t *d, int n)
{
	static const char *const countries[] = {"US", "FR", "DE", "BR", "IN", "GB"};
	bson_t sub, arr, item, cards;
	char text[64], key[16];
	bson_oid_t oid;

	snprintf(text, sizeof(text), "65f1a2b3%016x", n);
	bson_oid_init_from_string(&oid, text);
	BSON_APPEND_OID(d, "_id", &oid);
	snprintf(text, sizeof(text), "%d", 100000000 + n);
	BSON_APPEND_UTF8(d, "ad_archive_id", text);
	BSON_APPEND_UTF8(d, "library_id", text);
	if (n % 5)
		BSON_APPEND_INT64(d, "page_id", 900000000 + n % 997);
	BSON_APPEND_UTF8(d, "page_name", "Caf\xc3\xa9 Runner \xe2\x9c\x93 Shop");
	BSON_APPEND_UTF8(d, "advertiser_name", "Runner Shop GmbH");
	BSON_APPEND_UTF8(d, "status", n % 3 ? "ACTIVE" : "INACTIVE");
	BSON_APPEND_BOOL(d, "is_active", n % 3 != 0);
	BSON_APPEND_DATE_TIME(d, "started_running_on", 1700000000000LL + n * 1000LL);
	BSON_APPEND_DATE_TIME(d, "start_date", 1700000000000LL + n * 1000LL);
	BSON_APPEND_DATE_TIME(d, "scraped_at", 1710000000000LL + n * 1000LL);
	BSON_APPEND_UTF8(d, "permalink_url", "https://www.example.com/ads/library/?id=123456789");
	BSON_APPEND_UTF8(d, "redirected_final_url", "https://shop.example.com/p/running-shoes");
	BSON_APPEND_UTF8(d, "currency", "EUR");
	BSON_APPEND_ARRAY_BEGIN(d, "keywords", &arr);
	BSON_APPEND_UTF8(&arr, "0", "running");
	BSON_APPEND_UTF8(&arr, "1", "shoes");
	BSON_APPEND_UTF8(&arr, "2", "sale");
	bson_append_array_end(d, &arr);
	BSON_APPEND_UTF8(d, "countrySearchedfor", countries[n % 6]);
	BSON_APPEND_ARRAY_BEGIN(d, "countrySearchedfor_all", &arr);
	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof(key), "%d", i);
		if (i == 0) {
			BSON_APPEND_UTF8(&arr, key, countries[(n + i) % 6]);
			continue;
		}
		BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &item);
		BSON_APPEND_UTF8(&item, "country", countries[(n + i) % 6]);
		BSON_APPEND_BOOL(&item, "is_active", i % 2);
		bson_append_document_end(&arr, &item);
	}
	bson_append_array_end(d, &arr);
	BSON_APPEND_UTF8(d, "search_country", countries[n % 6]);
	BSON_APPEND_UTF8(d, "region", "EU");
	BSON_APPEND_ARRAY_BEGIN(d, "publisher_platform", &arr);
	BSON_APPEND_UTF8(&arr, "0", "FACEBOOK");
	BSON_APPEND_UTF8(&arr, "1", "INSTAGRAM");
	bson_append_array_end(d, &arr);
	BSON_APPEND_DOCUMENT_BEGIN(d, "snapshot", &sub);
	BSON_APPEND_UTF8(&sub, "body",
	                 "Our best running shoes, now 30% off. Free delivery on "
	                 "orders over 50 EUR. Limited time only, while stocks last!");
	BSON_APPEND_UTF8(&sub, "caption", "shop.example.com");
	BSON_APPEND_UTF8(&sub, "cta_text", "Shop now");
	BSON_APPEND_UTF8(&sub, "cta_type", "SHOP_NOW");
	BSON_APPEND_UTF8(&sub, "display_format", "CAROUSEL");
	BSON_APPEND_UTF8(&sub, "link_url", "https://shop.example.com/p/running-shoes?utm=ad");
	BSON_APPEND_UTF8(&sub, "page_profile_picture_url",
	                 "https://cdn.example.com/images/profile/123456789_abcdef.jpg");
	BSON_APPEND_ARRAY_BEGIN(&sub, "cards", &cards);
	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "%d", i);
		BSON_APPEND_DOCUMENT_BEGIN(&cards, key, &item);
		BSON_APPEND_UTF8(&item, "body", "Lightweight trainers for every distance.");
		BSON_APPEND_UTF8(&item, "title", "Trail Runner 3");
		BSON_APPEND_UTF8(&item, "link_url", "https://shop.example.com/p/trail-runner-3");
		BSON_APPEND_UTF8(&item, "original_image_url",
		                 "https://cdn.example.com/images/cards/trail-runner-3-large.jpg");
		BSON_APPEND_UTF8(&item, "resized_image_url",
		                 "https://cdn.example.com/images/cards/trail-runner-3-small.jpg");
		BSON_APPEND_NULL(&item, "video_hd_url");
		bson_append_document_end(&cards, &item);
	}
	bson_append_array_end(&sub, &cards);
	BSON_APPEND_ARRAY_BEGIN(&sub, "images", &arr);
	bson_append_array_end(&sub, &arr);
	bson_append_document_end(d, &sub);
	BSON_APPEND_UTF8(d, "search_query", "running shoes");
	BSON_APPEND_UTF8(d, "search_media_type", "all");
	BSON_APPEND_UTF8(d, "search_type", "keyword_unordered");
	BSON_APPEND_ARRAY_BEGIN(d, "categories", &arr);
	BSON_APPEND_UTF8(&arr, "0", "UNKNOWN");
	bson_append_array_end(d, &arr);
	BSON_APPEND_INT32(d, "page_like_count", 12000 + n);
	BSON_APPEND_INT32(d, "collation_count", 1 + n % 4);
	BSON_APPEND_UTF8(d, "collation_id", text);
	BSON_APPEND_BOOL(d, "contains_digital_created_media", false);
	BSON_APPEND_BOOL(d, "contains_sensitive_content", false);
	BSON_APPEND_BOOL(d, "is_profile_page", false);
	BSON_APPEND_BOOL(d, "page_is_deleted", false);
	BSON_APPEND_UTF8(d, "page_entity_type", "PERSON_PROFILE");
	BSON_APPEND_UTF8(d, "gated_type", "ELIGIBLE");
	BSON_APPEND_BOOL(d, "is_aaa_eligible", true);
	BSON_APPEND_DOCUMENT_BEGIN(d, "url-filter", &sub);
	BSON_APPEND_UTF8(&sub, "url", "shop.example.com");
	snprintf(text, sizeof(text), "65f1a2b3c4d5e6f7%08x", n % 50);
	bson_oid_init_from_string(&oid, text);
	BSON_APPEND_OID(&sub, "url-filter-id", &oid);
	bson_append_document_end(d, &sub);
	BSON_APPEND_DATE_TIME(d, "url-filter-updated-at", 1710000000000LL);
	/* fields the original does not write */
	BSON_APPEND_DATE_TIME(d, "updatedAt", 1710000000000LL + n);
	BSON_APPEND_UTF8(d, "raw_html_excerpt", "<div class=\"ad\">Our best running shoes</div>");
	BSON_APPEND_INT32(d, "scrape_attempts", 3);
}

static double
seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds to convert every document once with t (NULL: doc_to_json). */
static double
bench_one(struct transform *t, bson_t **docs, char **ids, int n, size_t *bytes)
{
	struct buf out = {0};
	double start = seconds();

	*bytes = 0;
	for (int i = 0; i < n; i++) {
		struct rerror e = {0};
		char *routing = NULL;
		bool skip = false;
		rcode rc =
		    t ? transform_apply(t, docs[i], "mongo_id", ids[i], &out, &routing, &skip, &e)
		      : doc_to_json(docs[i], "mongo_id", ids[i], &out, &e);
		if (rc) {
			fprintf(stderr, "bench: %s\n", e.message);
			break;
		}
		*bytes += out.len;
		buf_reset(&out);
		free(routing);
	}
	buf_free(&out);
	return seconds() - start;
}

static int
bench(int n, int only)
{
	bson_t **docs = calloc((size_t)n, sizeof(*docs));
	char **ids = calloc((size_t)n, sizeof(*ids));
	const char *bs = getenv("BENCH_SCRIPT") ? getenv("BENCH_SCRIPT") : example_path();
	struct config *plain = cfg_with(NULL, NULL, NULL, bs);
	struct config *kept = cfg_with(ADS_FIELDS, NULL, NULL, bs);
	struct transform *ts = make(plain, NULL, NULL, 0), *tk = make(kept, NULL, NULL, 0);
	size_t bson_bytes = 0, bytes[3];
	double secs[3];
	const char *names[] = {"doc_to_json", "script", "RECONCILE_FIELDS + script"};

	for (int i = 0; i < n; i++) {
		struct buf id = {0};
		enum id_type type;
		bson_iter_t it;
		docs[i] = bson_new();
		ad_doc(docs[i], i);
		bson_bytes += docs[i]->len;
		bson_iter_init_find(&it, docs[i], "_id");
		CHECK(doc_id_canonical(bson_iter_value(&it), &id, &type) == RC_OK);
		ids[i] = id.data;
	}
	if (only >= 0) { /* one round of one kind, for a profiler */
		secs[only] = bench_one(only == 0   ? NULL
		                       : only == 1 ? ts
		                                   : tk,
		                       docs, ids, n, &bytes[only]);
		printf("%s: %.1f us/doc\n", names[only], secs[only] * 1e6 / n);
		goto out;
	}
	/* a warm-up round, then the best of three */
	for (int k = 0; k < 3; k++)
		secs[k] = bench_one(k == 0 ? NULL : k == 1 ? ts : tk, docs, ids, n, &bytes[k]);
	for (int round = 0; round < 3; round++)
		for (int k = 0; k < 3; k++) {
			double s = bench_one(k == 0   ? NULL
			                     : k == 1 ? ts
			                              : tk,
			                     docs, ids, n, &bytes[k]);
			if (s < secs[k])
				secs[k] = s;
		}
	printf("%d documents, %.0f bytes of BSON each\n", n, (double)bson_bytes / n);
	for (int k = 0; k < 3; k++)
		printf("%-26s %9.0f docs/s  %6.1f us/doc  %5.0f bytes of JSON/doc  x%.1f\n",
		       names[k], n / secs[k], secs[k] * 1e6 / n, (double)bytes[k] / n,
		       secs[k] / secs[0]);
out:
	for (int i = 0; i < n; i++) {
		bson_destroy(docs[i]);
		free(ids[i]);
	}
	free(docs);
	free(ids);
	transform_free(ts);
	transform_free(tk);
	config_free(plain);
	config_free(kept);
	return 0;
}

int
main(int argc, char **argv)
{
	int rc;

	snprintf(dir, sizeof(dir), "/tmp/reconciler-transform-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	if (argc >= 3 && strcmp(argv[1], "--bench") == 0) {
		rc =
		    bench(atoi(argv[2]) > 0 ? atoi(argv[2]) : 10000, argc > 3 ? atoi(argv[3]) : -1);
	} else {
		test_declarative();
		test_settings();
		test_types();
		test_returns();
		test_routing_fields();
		test_load();
		test_runtime();
		test_sandbox();
		test_budgets();
		test_example();
		test_doc_example();
		rc = check_done("test_transform");
	}
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return rc;
}
