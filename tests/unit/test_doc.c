/* test_doc.c: BSON -> JSON mapping type by type, ids, versions. */
#include "check.h"
#include "doc.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *
to_json(const bson_t *d, const char *idf)
{
	struct buf b = {0};
	bson_iter_t it;
	struct buf id = {0};
	enum id_type t;

	if (bson_iter_init_find(&it, d, "_id"))
		CHECK(doc_id_canonical(bson_iter_value(&it), &id, &t) == RC_OK);
	if (doc_to_json(d, idf, id.data ? id.data : "", &b, NULL)) {
		buf_free(&b);
		buf_free(&id);
		return NULL;
	}
	buf_free(&id);
	return b.data;
}

static void
one(const char *want, void (*fill)(bson_t *))
{
	bson_t d = BSON_INITIALIZER;
	char *got;

	fill(&d);
	got = to_json(&d, "");
	CHECK_STR(got, want);
	free(got);
	bson_destroy(&d);
}

static void
f_double(bson_t *d)
{
	BSON_APPEND_DOUBLE(d, "v", 1.5);
	BSON_APPEND_DOUBLE(d, "w", 3.0);
}
static void
f_nan(bson_t *d)
{
	BSON_APPEND_DOUBLE(d, "n", NAN);
	BSON_APPEND_DOUBLE(d, "i", INFINITY);
	BSON_APPEND_DOUBLE(d, "m", -INFINITY);
}
static void
f_str(bson_t *d)
{
	BSON_APPEND_UTF8(d, "s", "a\"b\\c\n\x01 é");
}
static void
f_bad_utf8(bson_t *d)
{
	bson_append_utf8(d, "s", 1, "ok\xff", 3);
}
static void
f_nul(bson_t *d)
{
	bson_append_utf8(d, "s", 1, "a\0b", 3);
}
static void
f_ints(bson_t *d)
{
	BSON_APPEND_INT32(d, "a", -7);
	BSON_APPEND_INT64(d, "b", 9007199254740993LL);
}
static void
f_bool_null(bson_t *d)
{
	BSON_APPEND_BOOL(d, "t", true);
	BSON_APPEND_NULL(d, "n");
	BSON_APPEND_UNDEFINED(d, "u");
}
static void
f_date(bson_t *d)
{
	BSON_APPEND_DATE_TIME(d, "d", 1700000000123LL);
	BSON_APPEND_DATE_TIME(d, "old", -1);
}
static void
f_oid(bson_t *d)
{
	bson_oid_t o;
	bson_oid_init_from_string(&o, "65920080000000000000002a");
	BSON_APPEND_OID(d, "o", &o);
}
static void
f_bin(bson_t *d)
{
	BSON_APPEND_BINARY(d, "b", BSON_SUBTYPE_BINARY, (const uint8_t *)"hello", 5);
}
static void
f_regex(bson_t *d)
{
	BSON_APPEND_REGEX(d, "r", "^a.*", "i");
}
static void
f_ts(bson_t *d)
{
	BSON_APPEND_TIMESTAMP(d, "t", 1700000000, 3);
}
static void
f_dec(bson_t *d)
{
	bson_decimal128_t v;
	bson_decimal128_from_string("12.345", &v);
	BSON_APPEND_DECIMAL128(d, "x", &v);
}
static void
f_minmax(bson_t *d)
{
	BSON_APPEND_MINKEY(d, "lo");
	BSON_APPEND_MAXKEY(d, "hi");
}
static void
f_code(bson_t *d)
{
	BSON_APPEND_CODE(d, "c", "f()");
	BSON_APPEND_SYMBOL(d, "s", "sym");
}
static void
f_nested(bson_t *d)
{
	bson_t sub, arr;
	BSON_APPEND_DOCUMENT_BEGIN(d, "a", &sub);
	BSON_APPEND_ARRAY_BEGIN(&sub, "l", &arr);
	BSON_APPEND_INT32(&arr, "0", 1);
	BSON_APPEND_UTF8(&arr, "1", "x");
	bson_append_array_end(&sub, &arr);
	bson_append_document_end(d, &sub);
	BSON_APPEND_ARRAY_BEGIN(d, "e", &arr);
	bson_append_array_end(d, &arr);
}

static void
test_mapping(void)
{
	one("{\"v\":1.5,\"w\":3}", f_double);
	one("{\"n\":null,\"i\":null,\"m\":null}", f_nan);
	one("{\"s\":\"a\\\"b\\\\c\\n\\u0001 é\"}", f_str);
	one("{\"s\":\"ok\xEF\xBF\xBD\"}", f_bad_utf8);
	one("{\"s\":\"a\\u0000b\"}", f_nul);
	one("{\"a\":-7,\"b\":9007199254740993}", f_ints);
	one("{\"t\":true,\"n\":null,\"u\":null}", f_bool_null);
	one("{\"d\":\"2023-11-14T22:13:20.123Z\",\"old\":\"1969-12-31T23:59:59.999Z\"}", f_date);
	one("{\"o\":\"65920080000000000000002a\"}", f_oid);
	one("{\"b\":\"aGVsbG8=\"}", f_bin);
	one("{\"r\":\"/^a.*/i\"}", f_regex);
	one("{\"t\":{\"t\":1700000000,\"i\":3}}", f_ts);
	one("{\"x\":\"12.345\"}", f_dec);
	one("{\"lo\":\"MinKey\",\"hi\":\"MaxKey\"}", f_minmax);
	one("{\"c\":\"f()\",\"s\":\"sym\"}", f_code);
	one("{\"a\":{\"l\":[1,\"x\"]},\"e\":[]}", f_nested);
}

static void
test_id_field(void)
{
	bson_t d = BSON_INITIALIZER;
	bson_oid_t o;
	char *got;

	bson_oid_init_from_string(&o, "65920080000000000000002a");
	BSON_APPEND_OID(&d, "_id", &o);
	BSON_APPEND_UTF8(&d, "mongo_id", "stale copy");
	BSON_APPEND_INT32(&d, "n", 1);
	got = to_json(&d, "mongo_id");
	/* _id removed, the id field set to the canonical id, a stored copy dropped */
	CHECK_STR(got, "{\"mongo_id\":\"65920080000000000000002a\",\"n\":1}");
	free(got);
	bson_destroy(&d);
}

static void
canon(const char *want, enum id_type want_type, void (*fill)(bson_t *))
{
	bson_t d = BSON_INITIALIZER, back = BSON_INITIALIZER;
	bson_iter_t it, it2;
	struct buf b = {0};
	enum id_type t;

	fill(&d);
	bson_iter_init_find(&it, &d, "_id");
	CHECK(doc_id_canonical(bson_iter_value(&it), &b, &t) == RC_OK);
	CHECK_STR(b.data, want);
	CHECK(t == want_type);
	/* and back to the same typed value (numbers compare by value) */
	CHECK(doc_id_append(&back, "_id", b.data, t) == RC_OK);
	CHECK(bson_iter_init_find(&it2, &back, "_id"));
	struct buf b2 = {0};
	enum id_type t2;
	CHECK(doc_id_canonical(bson_iter_value(&it2), &b2, &t2) == RC_OK);
	CHECK_STR(b2.data, want);
	buf_free(&b);
	buf_free(&b2);
	bson_destroy(&d);
	bson_destroy(&back);
}

static void
i_oid(bson_t *d)
{
	bson_oid_t o;
	bson_oid_init_from_string(&o, "65920080000000000000002A");
	BSON_APPEND_OID(d, "_id", &o);
}
static void
i_str(bson_t *d)
{
	BSON_APPEND_UTF8(d, "_id", "doc-1");
}
static void
i_int(bson_t *d)
{
	BSON_APPEND_INT32(d, "_id", 42);
}
static void
i_long(bson_t *d)
{
	BSON_APPEND_INT64(d, "_id", -5000000000LL);
}
static void
i_dbl_int(bson_t *d)
{
	BSON_APPEND_DOUBLE(d, "_id", 42.0);
}
static void
i_dbl(bson_t *d)
{
	BSON_APPEND_DOUBLE(d, "_id", 0.1);
}
static void
i_bool(bson_t *d)
{
	BSON_APPEND_BOOL(d, "_id", true);
}
static void
i_date(bson_t *d)
{
	BSON_APPEND_DATE_TIME(d, "_id", 1700000000123LL);
}
static void
i_obj(bson_t *d)
{
	bson_t sub;
	BSON_APPEND_DOCUMENT_BEGIN(d, "_id", &sub);
	BSON_APPEND_INT32(&sub, "a", 1);
	bson_append_document_end(d, &sub);
}

static void
test_ids(void)
{
	canon("65920080000000000000002a", ID_OID, i_oid);
	canon("doc-1", ID_STRING, i_str);
	canon("42", ID_INT, i_int);
	canon("-5000000000", ID_INT, i_long);
	canon("42", ID_INT, i_dbl_int);
	canon("0.1", ID_DOUBLE, i_dbl);
	canon("true", ID_BOOL, i_bool);
	canon("2023-11-14T22:13:20.123Z", ID_DATE, i_date);
	canon("{ \"a\" : { \"$numberInt\" : \"1\" } }", ID_JSON, i_obj);
	CHECK(doc_class_merges(CLASS_STRING) && doc_class_merges(CLASS_OID));
	CHECK(!doc_class_merges(CLASS_NUMBER) && !doc_class_merges(CLASS_OTHER));
	CHECK(doc_id_append(&(bson_t)BSON_INITIALIZER, "x", "zz", ID_OID) == RC_ERR_INVALID);

	/* a text that could be several types asks for each */
	bson_t arr = BSON_INITIALIZER;
	uint32_t n = 0;
	CHECK(doc_id_append_candidates(&arr, &n, "42") == RC_OK);
	CHECK(n == 3); /* string, int, double */
	n = 0;
	bson_reinit(&arr);
	CHECK(doc_id_append_candidates(&arr, &n, "65920080000000000000002a") == RC_OK);
	CHECK(n == 2); /* string, ObjectId */
	bson_destroy(&arr);
}

/* Every id type of docs/MAPPING.md: value -> (canonical text, type) ->
 * typed value gives the same value back, and the candidates a text stands
 * for (used before anything is called an orphan) include it. */
static void
test_id_roundtrip(void)
{
	static const char *const values[] = {
	    "{\"$oid\": \"65920080000000000000002a\"}",
	    "\"doc-1\"",
	    "\"\"",
	    "\"caf\u00e9 \\u0000-free\"",
	    "{\"$numberInt\": \"-7\"}",
	    "{\"$numberLong\": \"9223372036854775807\"}",
	    "{\"$numberDouble\": \"42.0\"}",
	    "{\"$numberDouble\": \"2.5\"}",
	    "{\"$numberDouble\": \"1e+300\"}",
	    "true",
	    "false",
	    "{\"$date\": {\"$numberLong\": \"1700000000123\"}}",
	    "{\"$date\": {\"$numberLong\": \"253402387200000\"}}", /* 10000-01-02 */
	    "{\"$date\": {\"$numberLong\": \"-62198755200000\"}}", /* -0001-01-01 */
	    "{\"$date\": {\"$numberLong\": \"9223372036854775807\"}}",
	    "{\"$date\": {\"$numberLong\": \"-9223372036854775808\"}}",
	    "{\"cat\": \"books\", \"title\": \"t-17\"}",
	    "{\"title\": \"t-17\", \"cat\": \"books\"}",
	    "{\"$binary\": {\"base64\": \"AAEC\", \"subType\": \"00\"}}",
	    "{\"$binary\": {\"base64\": \"AAECAwQFBgcICQoLDA0ODw==\", \"subType\": \"04\"}}",
	    "null",
	    "{\"$minKey\": 1}",
	    "{\"$numberDecimal\": \"1.50\"}",
	};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char json[256];
		bson_t *w, back = BSON_INITIALIZER, cands = BSON_INITIALIZER;
		bson_iter_t it, bit, cit;
		struct buf text = {0}, again = {0};
		enum id_type type, type2;
		uint32_t n = 0;
		bool among = false;

		snprintf(json, sizeof(json), "{\"v\": %s}", values[i]);
		w = bson_new_from_json((const uint8_t *)json, -1, NULL);
		CHECK(w != NULL);
		if (w == NULL)
			continue;
		bson_iter_init_find(&it, w, "v");
		CHECK(doc_id_canonical(bson_iter_value(&it), &text, &type) == RC_OK);
		CHECK(doc_id_append(&back, "v", text.data, type) == RC_OK);
		CHECK(bson_iter_init_find(&bit, &back, "v"));
		CHECK(doc_id_canonical(bson_iter_value(&bit), &again, &type2) == RC_OK);
		if (!(type == type2 && strcmp(text.data, again.data) == 0))
			fprintf(stderr, "round trip of %s: %s (%s) -> %s (%s)\n", values[i],
			        text.data, doc_id_type_name(type), again.data,
			        doc_id_type_name(type2));
		CHECK(type == type2 && strcmp(text.data, again.data) == 0);
		/* MongoDB compares 42 and 42.0 equal: the int stands for both */
		CHECK(bson_iter_type(&bit) == bson_iter_type(&it) ||
		      (type == ID_INT && bson_iter_type(&it) == BSON_TYPE_DOUBLE));
		CHECK(doc_id_append_candidates(&cands, &n, text.data) == RC_OK && n >= 1);
		bson_iter_init(&cit, &cands);
		while (bson_iter_next(&cit)) {
			struct buf c = {0};
			enum id_type ct;
			if (doc_id_canonical(bson_iter_value(&cit), &c, &ct) == RC_OK &&
			    ct == type && strcmp(c.data, text.data) == 0)
				among = true;
			buf_free(&c);
		}
		/* a value not every server can be asked about is never asked:
		 * its text is never proven absent instead */
		if (!among && !doc_id_unaskable(text.data))
			fprintf(stderr, "candidates of %s lack its own value\n", text.data);
		CHECK(among || doc_id_unaskable(text.data));
		/* a non-string id's text is at most also some string's */
		CHECK(type == ID_STRING ||
		      (doc_id_types_sharing(text.data, type) & ~(1 << ID_STRING)) == 0);
		buf_free(&text);
		buf_free(&again);
		bson_destroy(&back);
		bson_destroy(&cands);
		bson_destroy(w);
	}

	/* texts several types share: the collisions the pass reports */
	CHECK(doc_id_types_sharing("42", ID_INT) == 1 << ID_STRING);
	CHECK(doc_id_types_sharing("42", ID_STRING) == 1 << ID_INT);
	CHECK(doc_id_types_sharing("2.5", ID_STRING) == 1 << ID_DOUBLE);
	CHECK(doc_id_types_sharing("true", ID_STRING) == 1 << ID_BOOL);
	CHECK(doc_id_types_sharing("65920080000000000000002a", ID_OID) == 1 << ID_STRING);
	CHECK(doc_id_types_sharing("042", ID_STRING) == 0); /* 42's text is "42" */
	CHECK(doc_id_types_sharing("2024-01-01", ID_STRING) == 0);
	CHECK(doc_id_types_sharing("doc-1", ID_STRING) == 0);
	CHECK(doc_id_guess_type("65920080000000000000002a") == ID_OID);
	CHECK(doc_id_guess_type("42") == ID_INT);
	CHECK(doc_id_guess_type("{ \"a\" : 1 }") == ID_JSON);
	CHECK(doc_id_guess_type("zz-not-an-oid") == ID_STRING);
	CHECK(doc_id_unaskable("nan") && doc_id_unaskable("-inf") && doc_id_unaskable("NaN"));
	CHECK(doc_id_unaskable("{ \"$minKey\" : 1 }"));
	CHECK(!doc_id_unaskable("42") && !doc_id_unaskable("{ \"a\" : 1 }") &&
	      !doc_id_unaskable("infant"));
	CHECK(doc_id_unaskable("Infinity") && doc_id_unaskable("-INF"));
	/* a literal that overflows is no double's text: an ObjectId's hex can
	 * read so, and its other readings are asked */
	CHECK(!doc_id_unaskable("6592008e0000000000003700") && !doc_id_unaskable("1e999"));
	{
		bson_t c = BSON_INITIALIZER;
		uint32_t k = 0;
		CHECK(doc_id_append_candidates(&c, &k, "6592008e0000000000003700") == RC_OK &&
		      k == 2); /* the string and the ObjectId, no infinity */
		bson_destroy(&c);
	}
}

/* Dates over the whole range of a BSON Date, in a form OpenSearch parses. */
static void
test_dates(void)
{
	static const struct {
		int64_t ms;
		const char *iso;
	} cases[] = {
	    {0, "1970-01-01T00:00:00.000Z"},
	    {-1, "1969-12-31T23:59:59.999Z"},
	    {1700000000123LL, "2023-11-14T22:13:20.123Z"},
	    {253402300799999LL, "9999-12-31T23:59:59.999Z"},
	    {253402387200000LL, "+10000-01-02T00:00:00.000Z"},
	    {-62167219200000LL, "0000-01-01T00:00:00.000Z"},
	    {-62198755200000LL, "-0001-01-01T00:00:00.000Z"},
	    {-377736739200000LL, "-10000-01-01T00:00:00.000Z"},
	    {INT64_MAX, "+292278994-08-17T07:12:55.807Z"},
	    {INT64_MIN, "-292275055-05-16T16:47:04.192Z"},
	};
	char out[64];
	int64_t ms;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		util_ms_to_iso(cases[i].ms, out, sizeof(out));
		CHECK_STR(out, cases[i].iso);
		CHECK(util_iso_to_ms(cases[i].iso, &ms) == 0 && ms == cases[i].ms);
	}
	CHECK(util_iso_to_ms("2024-01-01T01:00:00+01:00", &ms) == 0 && ms == 1704067200000LL);
	CHECK(util_iso_to_ms("2024-01-01T05:30:00+0530", &ms) == 0 && ms == 1704067200000LL);
	CHECK(util_iso_to_ms("2023-12-31T19:00:00-05", &ms) == 0 && ms == 1704067200000LL);
	CHECK(util_iso_to_ms("2024-01-01", &ms) == 0 && ms == 1704067200000LL);
	CHECK(util_iso_to_ms("10000-01-02T00:00:00.000Z", &ms) == -1);      /* needs its sign */
	CHECK(util_iso_to_ms("+292278994-08-17T07:12:55.808Z", &ms) == -1); /* past int64 */
	CHECK(util_iso_to_ms("2024-13-01T00:00:00Z", &ms) == -1);
	/* days a month does not have (QA: February 30th was taken) */
	CHECK(util_iso_to_ms("2026-02-30T00:00:00Z", &ms) == -1);
	CHECK(util_iso_to_ms("2026-04-31", &ms) == -1);
	CHECK(util_iso_to_ms("2023-02-29", &ms) == -1 && util_iso_to_ms("1900-02-29", &ms) == -1);
	CHECK(util_iso_to_ms("2024-02-29", &ms) == 0 && util_iso_to_ms("2000-02-29", &ms) == 0);
	/* RFC 3339's lower-case t and z; no zone is UTC */
	CHECK(util_iso_to_ms("2024-01-01t00:00:00z", &ms) == 0 && ms == 1704067200000LL);
	CHECK(util_iso_to_ms("2024-01-01T00:00:00", &ms) == 0 && ms == 1704067200000LL);
	CHECK(util_iso_to_ms("2024-01-01T00:00:00Zjunk", &ms) == -1);
	CHECK(util_iso_to_ms("42", &ms) == -1);
	CHECK(util_iso_to_ms("", &ms) == -1);
}

/* check --since: every version form by its instant (issue 19 item 3) */
static void
test_version_after(void)
{
	const int64_t t = 1765533600000LL; /* 2025-12-12T10:00:00Z */
	static const struct {
		const char *text;
		bool after;
	} texts[] = {
	    {"2025-12-12T10:00:00.001Z", true},
	    {"2025-12-12T10:00:00.000Z", false},
	    {"2025-12-12T10:00:00Z", false},
	    {"2025-12-12T05:10:00.000-05:00", true}, /* 10:10Z, less as text */
	    {"2025-12-12T04:50:00-05:00", false},
	    {"2025-12-12T19:10:00+09:00", true},   /* 10:10Z */
	    {"2025-12-12T18:50:00.5+0900", false}, /* 09:50:00.5Z, more as text */
	    {"2025-12-12T10:10:00", true},         /* no zone: UTC */
	    {"2025-12-12", false},
	    {"2025-12-13", true},
	    {"+2025-12-12T10:10:00Z", true},
	    {"1765533600001", false}, /* digits as text: no instant */
	    {"not a date", false},
	};
	bson_value_t v;

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		v.value_type = BSON_TYPE_UTF8;
		v.value.v_utf8.str = (char *)texts[i].text;
		v.value.v_utf8.len = (uint32_t)strlen(texts[i].text);
		CHECK(doc_version_after(&v, t) == texts[i].after);
	}
	v.value_type = BSON_TYPE_DATE_TIME;
	v.value.v_datetime = t + 1;
	CHECK(doc_version_after(&v, t));
	v.value.v_datetime = t;
	CHECK(!doc_version_after(&v, t));
	v.value.v_datetime = -5;
	CHECK(doc_version_after(&v, -10) && !doc_version_after(&v, 0));
	v.value_type = BSON_TYPE_INT64;
	v.value.v_int64 = t + 1;
	CHECK(doc_version_after(&v, t));
	v.value.v_int64 = t;
	CHECK(!doc_version_after(&v, t));
	v.value.v_int64 = INT64_MAX; /* exactly, not as a double */
	CHECK(doc_version_after(&v, INT64_MAX - 1) && !doc_version_after(&v, INT64_MAX));
	v.value_type = BSON_TYPE_DOUBLE;
	v.value.v_double = (double)t + 0.5;
	CHECK(doc_version_after(&v, t));
	v.value.v_double = (double)t - 0.5;
	CHECK(!doc_version_after(&v, t));
	v.value_type = BSON_TYPE_INT32;
	v.value.v_int32 = 7; /* a counter: long before any T of interest */
	CHECK(!doc_version_after(&v, t) && doc_version_after(&v, 6));
	v.value_type = BSON_TYPE_TIMESTAMP;
	v.value.v_timestamp.timestamp = (uint32_t)(t / 1000) + 1;
	v.value.v_timestamp.increment = 0;
	CHECK(doc_version_after(&v, t));
	v.value.v_timestamp.timestamp = (uint32_t)(t / 1000);
	v.value.v_timestamp.increment = 9;
	CHECK(!doc_version_after(&v, t));
	v.value_type = BSON_TYPE_NULL;
	CHECK(!doc_version_after(&v, t));
}

static void
test_versions(void)
{
	char a[64], b[64];
	int64_t ms;
	bson_value_t v;

	v.value_type = BSON_TYPE_DATE_TIME;
	v.value.v_datetime = 1700000000123LL;
	CHECK(doc_version_from_bson(&v, a, sizeof(a), &ms) && ms == 1700000000123LL);
	/* OpenSearch returns a date field as epoch_millis text */
	CHECK(doc_version_from_text("1700000000123", b, sizeof(b), &ms));
	CHECK_STR(a, b);
	/* and ISO text compares equal too */
	CHECK(doc_version_from_text("2023-11-14T22:13:20.123Z", b, sizeof(b), &ms));
	CHECK_STR(a, b);
	CHECK(doc_version_from_number(1700000000123.0, b, sizeof(b)));
	CHECK_STR(a, b);
	v.value_type = BSON_TYPE_INT32;
	v.value.v_int32 = 7;
	CHECK(doc_version_from_bson(&v, a, sizeof(a), &ms));
	CHECK(doc_version_from_number(7.0, b, sizeof(b)));
	CHECK_STR(a, b);
	v.value_type = BSON_TYPE_NULL;
	CHECK(!doc_version_from_bson(&v, a, sizeof(a), &ms));
	test_version_after();
}

/* Doubles are written as the shortest text that reads back as them: the
 * same text a search over every length (1 to 17 digits) finds, for
 * decimal-looking values and for random bit patterns. */
static void
test_shortest_doubles(void)
{
	static const double some[] = {0.1,
	                              0.3,
	                              1.5,
	                              2.675,
	                              1e-300,
	                              5e-324,
	                              1e300,
	                              1.7976931348623157e308,
	                              0.1 + 0.2,
	                              123.456,
	                              -0.001,
	                              3.14159265358979,
	                              9007199254740993.0};
	unsigned long long x = 0x9E3779B97F4A7C15ULL;

	/* random bit patterns (every magnitude), then the fixed-notation
	 * range doc.c computes without snprintf (1e-4 <= |d| < 1e15): random
	 * mantissas at every binary exponent, decimals with few digits,
	 * powers of two and their neighbours (an asymmetric interval), and
	 * the range's edges */
	for (int i = 0; i < 220000; i++) {
		double d;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		if (i < (int)(sizeof(some) / sizeof(some[0]))) {
			d = some[i];
		} else if (i < 20000) {
			memcpy(&d, &x, sizeof(d));
			if (!isfinite(d))
				continue;
		} else if (i < 100000) {
			d = ldexp(1.0 + (double)(x >> 12) / 4503599627370496.0, (int)(x % 64) - 14);
		} else if (i < 160000) {
			static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
			d = (double)(x % 100000000) / p10[(x >> 40) % 9];
		} else if (i < 200000) {
			d = ldexp(1.0, (int)(x % 64) - 14);
			d = (x >> 32) % 3 == 0   ? nextafter(d, 0)
			    : (x >> 32) % 3 == 1 ? nextafter(d, 1e300)
			                         : d;
		} else {
			static const double edge[] = {1e-4, 1e15};
			d = edge[i % 2];
			for (int k = 0; k < (int)(x % 40); k++)
				d = nextafter(d, (x >> 20) & 1 ? 0 : 1e300);
		}
		if (x & (1ULL << 63))
			d = -d;
		char want[40] = "";
		for (int p = 1; p <= 17; p++) {
			snprintf(want, sizeof(want), "%.*g", p, d);
			if (strtod(want, NULL) == d)
				break;
		}
		if (d == floor(d) && fabs(d) < 9007199254740992.0)
			snprintf(want, sizeof(want), "%lld", (long long)d);
		bson_t *b = bson_new();
		struct buf got = {0};
		bson_iter_t it;
		enum id_type t;
		BSON_APPEND_DOUBLE(b, "v", d);
		CHECK(bson_iter_init_find(&it, b, "v"));
		CHECK(doc_id_canonical(bson_iter_value(&it), &got, &t) == RC_OK);
		if (got.data == NULL || strcmp(got.data, want) != 0) {
			CHECK_STR(got.data, want);
			i = 1 << 30; /* one report is enough */
		}
		buf_free(&got);
		bson_destroy(b);
	}
}

/* The escaping as the JSON spec (RFC 8259, section 7) says it, a byte at a
 * time: what doc_json_string's word-at-a-time scan must equal. Invalid
 * UTF-8 bytes become U+FFFD each. */
static void
json_string_ref(struct buf *out, const unsigned char *s, size_t len)
{
	CHECK(buf_append(out, "\"", 1) == RC_OK);
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		char esc[8];
		if (c == '"' || c == '\\') {
			snprintf(esc, sizeof(esc), "\\%c", c);
		} else if (c == '\n' || c == '\r' || c == '\t') {
			snprintf(esc, sizeof(esc), "\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
		} else if (c < 0x80) {
			snprintf(esc, sizeof(esc), "%c", c);
		} else {
			/* a whole valid sequence, or one replaced byte */
			size_t n = c >= 0xC2 && c <= 0xDF   ? 2
			           : c >= 0xE0 && c <= 0xEF ? 3
			           : c >= 0xF0 && c <= 0xF4 ? 4
			                                    : 0;
			uint32_t cp = n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
			bool ok = n > 0 && i + n <= len;
			for (size_t k = 1; ok && k < n; k++) {
				ok = (s[i + k] & 0xC0) == 0x80;
				cp = cp << 6 | (s[i + k] & 0x3F);
			}
			if (ok && ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
			           (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))))
				ok = false;
			if (ok) {
				CHECK(buf_append(out, s + i, n) == RC_OK);
				i += n;
				continue;
			}
			snprintf(esc, sizeof(esc), "\xEF\xBF\xBD");
		}
		CHECK(buf_puts(out, esc) == RC_OK);
		i++;
	}
	CHECK(buf_append(out, "\"", 1) == RC_OK);
}

/* doc_json_string scans eight bytes at a time: every byte class at every
 * offset of a word and at the ends, against the byte-at-a-time rules. */
static void
test_json_string(void)
{
	static const unsigned char pool[] = {'a',  'Z',  ' ',  '~',  0x7f, '"',  '\\', '\n',
	                                     0x01, 0x1f, 0x00, 0x80, 0xbf, 0xc2, 0xa9, 0xe2,
	                                     0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0xff, 0xed,
	                                     0xa0, 0xc0, 0xf5, '\t', '/'};
	unsigned char s[40];
	int mismatches = 0;

	srand(11);
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(rand() % 40);
		/* mostly plain bytes, so long runs meet one odd byte anywhere */
		for (size_t i = 0; i < len; i++)
			s[i] = rand() % 4 ? (unsigned char)('a' + rand() % 26)
			                  : pool[rand() % (int)sizeof(pool)];
		struct buf got = {0}, want = {0};
		CHECK(buf_puts(&got, "x") == RC_OK); /* appends after what is there */
		CHECK(buf_puts(&want, "x") == RC_OK);
		CHECK(doc_json_string(&got, (const char *)s, len) == RC_OK);
		json_string_ref(&want, s, len);
		if (got.len != want.len || memcmp(got.data, want.data, got.len) != 0) {
			if (mismatches++ < 5)
				fprintf(stderr, "json string: got %s want %s\n", got.data,
				        want.data);
		}
		buf_free(&got);
		buf_free(&want);
	}
	CHECK(mismatches == 0);
}

/* buf_put_i64 writes what printf's PRId64 writes; buf_printf grows the
 * buffer when the text does not fit the room left. */
static void
test_numbers_text(void)
{
	const int64_t v[] = {0,
	                     1,
	                     -1,
	                     9,
	                     10,
	                     -10,
	                     123456789,
	                     INT64_MAX,
	                     INT64_MIN,
	                     INT64_MIN + 1,
	                     INT32_MIN,
	                     INT32_MAX,
	                     9007199254740993};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct buf b = {0};
		char want[32];
		snprintf(want, sizeof(want), "%" PRId64, v[i]);
		CHECK(buf_put_i64(&b, v[i]) == RC_OK);
		CHECK_STR(b.data, want);
		buf_free(&b);
	}
	struct buf b = {0};
	char big[600];
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(buf_printf(&b, "%s", "short") == RC_OK);
	CHECK(buf_printf(&b, "[%s]", big) == RC_OK);
	CHECK(b.len == 5 + 2 + sizeof(big) - 1 && b.data[b.len] == '\0');
	CHECK(strncmp(b.data, "short[yyy", 9) == 0 && b.data[b.len - 1] == ']');
	buf_free(&b);
}

int
main(void)
{
	test_json_string();
	test_numbers_text();
	test_shortest_doubles();
	test_mapping();
	test_id_field();
	test_ids();
	test_id_roundtrip();
	test_dates();
	test_versions();
	return check_done("test_doc");
}
