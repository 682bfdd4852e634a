/* test_util.c: util.c's pure functions: ISO 8601 times and back, secret
 * masking, UTF-8 checks, whole-number parsing, the byte buffer and the
 * throttle. (test_doc.c has further time cases, from the documents' side.) */
#include "check.h"
#include "util.h"

#include <inttypes.h>
#include <stdlib.h>

/* util_iso_to_ms of s is want (ms) */
static bool
iso_is(const char *s, int64_t want)
{
	int64_t ms = -42;

	if (util_iso_to_ms(s, &ms) != 0) {
		fprintf(stderr, "  %s: refused\n", s);
		return false;
	}
	if (ms != want)
		fprintf(stderr, "  %s: %" PRId64 ", want %" PRId64 "\n", s, ms, want);
	return ms == want;
}

static bool
iso_bad(const char *s)
{
	int64_t ms = 7;

	/* refused, and the out-param is left as it was */
	return util_iso_to_ms(s, &ms) == -1 && ms == 7;
}

static void
test_iso_to_ms(void)
{
	const int64_t jan1 = 1704067200000LL; /* 2024-01-01T00:00:00Z */

	CHECK(iso_is("1970-01-01T00:00:00Z", 0));
	CHECK(iso_is("1970-01-01T00:00:00.001Z", 1));
	CHECK(iso_is("2024-01-01T00:00:00.000Z", jan1));
	CHECK(iso_is("2024-01-01", jan1));
	CHECK(iso_is("2024-01-01T00:00:00", jan1));   /* no zone: UTC */
	CHECK(iso_is("2024-01-01 00:00:00Z", jan1));  /* RFC 3339's space */
	CHECK(iso_is("2024-01-01t00:00:00z", jan1));  /* and lower case */
	CHECK(iso_is("+2024-01-01T00:00:00Z", jan1)); /* a sign on four digits */
	/* fractions: one to three digits are milliseconds, more are cut */
	CHECK(iso_is("2024-01-01T00:00:00.5Z", jan1 + 500));
	CHECK(iso_is("2024-01-01T00:00:00.05Z", jan1 + 50));
	CHECK(iso_is("2024-01-01T00:00:00.123Z", jan1 + 123));
	CHECK(iso_is("2024-01-01T00:00:00.1239999Z", jan1 + 123));
	/* offsets: +hh:mm, +hhmm, +hh, and west of UTC */
	CHECK(iso_is("2024-01-01T01:00:00+01:00", jan1));
	CHECK(iso_is("2024-01-01T05:30:00+0530", jan1));
	CHECK(iso_is("2024-01-01T05:00:00+05", jan1));
	CHECK(iso_is("2023-12-31T19:00:00-05:00", jan1));
	CHECK(iso_is("2023-12-31T23:15:00.250-00:45", jan1 + 250));
	CHECK(iso_is("2024-01-01T23:59:00+23:59", jan1));
	/* a leap second is the next minute's first */
	CHECK(iso_is("2016-12-31T23:59:60Z", 1483228800000LL));
	/* before 1970, year 0 and before, expanded years */
	CHECK(iso_is("1969-12-31T23:59:59.999Z", -1));
	CHECK(iso_is("0000-01-01T00:00:00Z", -62167219200000LL));
	CHECK(iso_is("-0001-12-31T23:59:59.999Z", -62167219200001LL));
	CHECK(iso_is("+10000-01-01T00:00:00Z", 253402300800000LL));
	CHECK(iso_is("2000-02-29", 951782400000LL)); /* 400 years: leap */

	const char *bad[] = {
	    "",
	    "42",
	    "2024",
	    "2024-01",
	    "2024-1-01",
	    "2024-01-1",
	    "24-01-01",
	    "10000-01-01",       /* five digits need a sign */
	    "+1234567890-01-01", /* ten */
	    "2024/01/01",
	    "2024-00-01",
	    "2024-13-01",
	    "2024-01-00",
	    "2024-01-32",
	    "2024-04-31",
	    "2023-02-29",
	    "1900-02-29",
	    "2024-01-01T",
	    "2024-01-01T00",
	    "2024-01-01T00:00",
	    "2024-01-01T0:00:00",
	    "2024-01-01T24:00:00Z",
	    "2024-01-01T23:60:00Z",
	    "2024-01-01T23:59:61Z",
	    "2024-01-01T00:00:00.",
	    "2024-01-01T00:00:00.Z",
	    "2024-01-01T00:00:00.x",
	    "2024-01-01T00:00:00ZZ",
	    "2024-01-01T00:00:00Zjunk",
	    "2024-01-01T00:00:00 ",
	    "2024-01-01T00:00:00+1",
	    "2024-01-01T00:00:00+01:3",
	    "2024-01-01T00:00:00+24:00",
	    "2024-01-01T00:00:00+01:60",
	    "2024-01-01T00:00:00+01:00:00",
	    "2024-01-01T00:00:00UTC",
	    " 2024-01-01",
	    "+292278994-08-17T07:12:55.808Z", /* one past INT64_MAX ms */
	    "-292275055-05-16T16:47:04.191Z", /* one before INT64_MIN ms */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (!iso_bad(bad[i]))
			fprintf(stderr, "  accepted: \"%s\"\n", bad[i]);
		CHECK(iso_bad(bad[i]));
	}
}

static void
test_ms_to_iso(void)
{
	char out[40];
	const int64_t ms[] = {0,
	                      1,
	                      -1,
	                      1704067200123LL,
	                      951782400000LL,
	                      -62167219200000LL,
	                      -62167219200001LL,
	                      253402300799999LL,
	                      253402300800000LL,
	                      INT64_MAX,
	                      INT64_MIN};

	util_ms_to_iso(0, out, sizeof(out));
	CHECK_STR(out, "1970-01-01T00:00:00.000Z");
	util_ms_to_iso(-1, out, sizeof(out));
	CHECK_STR(out, "1969-12-31T23:59:59.999Z");
	util_ms_to_iso(1704067200123LL, out, sizeof(out));
	CHECK_STR(out, "2024-01-01T00:00:00.123Z");
	util_ms_to_iso(-62167219200001LL, out, sizeof(out));
	CHECK_STR(out, "-0001-12-31T23:59:59.999Z");
	util_ms_to_iso(253402300800000LL, out, sizeof(out));
	CHECK_STR(out, "+10000-01-01T00:00:00.000Z");
	util_ms_to_iso(INT64_MAX, out, sizeof(out));
	CHECK_STR(out, "+292278994-08-17T07:12:55.807Z");
	util_ms_to_iso(INT64_MIN, out, sizeof(out));
	CHECK_STR(out, "-292275055-05-16T16:47:04.192Z");
	/* every one reads back as itself */
	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		int64_t back = 0;
		util_ms_to_iso(ms[i], out, sizeof(out));
		CHECK(util_iso_to_ms(out, &back) == 0 && back == ms[i]);
	}
	/* too small a buffer: an empty string, never a cut date */
	char small[24];
	memset(small, 'x', sizeof(small));
	util_ms_to_iso(0, small, sizeof(small));
	CHECK_STR(small, "");
	/* util_now_iso is now, to the millisecond it can tell */
	int64_t before = util_now_ms(), now = 0;
	util_now_iso(out, sizeof(out));
	CHECK(util_iso_to_ms(out, &now) == 0 && now >= before && now <= util_now_ms());
}

/* util_mask_secrets of in is want */
static bool
masked(const char *in, const char *want)
{
	char s[256];
	char *m;
	bool ok;

	snprintf(s, sizeof(s), "%s", in);
	util_mask_secrets(s, sizeof(s));
	ok = strcmp(s, want) == 0;
	if (!ok)
		fprintf(stderr, "  mask %s: %s, want %s\n", in, s, want);
	/* util_mask_uri says the same in a copy */
	m = util_mask_uri(in);
	ok = ok && m && strcmp(m, want) == 0;
	free(m);
	return ok;
}

static void
test_mask(void)
{
	CHECK(masked("mongodb://user:s3cret@db.example.com:27017/ads",
	             "mongodb://user:***@db.example.com:27017/ads"));
	CHECK(masked("https://admin:hunter2@os:9200", "https://admin:***@os:9200"));
	/* two characters or fewer keep their length, three and more shrink */
	CHECK(masked("http://u:ab@h", "http://u:**@h"));
	CHECK(masked("http://u:abc@h", "http://u:***@h"));
	CHECK(masked("http://u:@h", "http://u:@h"));
	/* a raw '@' in the password: the host begins after the last one */
	CHECK(masked("mongodb://u:p@ss@h/db", "mongodb://u:***@h/db"));
	/* a ':' in the password: it begins after the first */
	CHECK(masked("mongodb://u:a:b:c@h", "mongodb://u:***@h"));
	/* no password, no userinfo: unchanged */
	CHECK(masked("mongodb://user@h/db", "mongodb://user@h/db"));
	CHECK(masked("http://127.0.0.1:9250/x@y", "http://127.0.0.1:9250/x@y"));
	CHECK(masked("no uri here", "no uri here"));
	CHECK(masked("", ""));
	/* every URI of a text: a log line, a JSON error */
	CHECK(masked("from mongodb://a:xxxx@h1 to http://b:yyyy@h2/i failed",
	             "from mongodb://a:***@h1 to http://b:***@h2/i failed"));
	CHECK(masked("{\"uri\":\"mongodb://a:xxxx@h\"}", "{\"uri\":\"mongodb://a:***@h\"}"));
	CHECK(masked("mongodb+srv://a:xxxx@cluster0.example.com/?x=1",
	             "mongodb+srv://a:***@cluster0.example.com/?x=1"));
}

static void
test_utf8(void)
{
	struct {
		const char *s;
		size_t len;
		bool valid;
	} cases[] = {
	    {"", 0, true},
	    {"plain ascii", 11, true},
	    {"caf\xc3\xa9", 5, true},
	    {"\xe2\x82\xac", 3, true},     /* U+20AC */
	    {"\xf0\x9f\x98\x80", 4, true}, /* U+1F600 */
	    {"\xf4\x8f\xbf\xbf", 4, true}, /* U+10FFFF */
	    {"a\0b", 3, true},             /* a NUL is valid UTF-8 */
	    {"\xff", 1, false},
	    {"\x80", 1, false},             /* a lone continuation */
	    {"\xc3", 1, false},             /* cut short */
	    {"\xe2\x82", 2, false},         /* cut short */
	    {"\xc0\x80", 2, false},         /* overlong NUL */
	    {"\xe0\x80\xaf", 3, false},     /* overlong '/' */
	    {"\xf0\x80\x80\xaf", 4, false}, /* overlong '/' */
	    {"\xed\xa0\x80", 3, false},     /* U+D800, a surrogate */
	    {"\xf4\x90\x80\x80", 4, false}, /* past U+10FFFF */
	    {"\xc3\x28", 2, false},         /* no continuation */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK(util_utf8_valid(cases[i].s, cases[i].len) == cases[i].valid);

	struct {
		const char *in, *out;
	} clean[] = {
	    {"plain", "plain"},
	    {"caf\xc3\xa9 \xf0\x9f\x98\x80", "caf\xc3\xa9 \xf0\x9f\x98\x80"},
	    {"a\xff"
	     "b",
	     "a?b"},
	    {"%\xfe\xff", "%??"},
	    {"end\xc3", "end?"},
	    {"\xc0\x80", "??"},
	    {"\xed\xa0\x80", "???"},
	    {"\xf4\x90\x80\x80", "????"},
	};
	for (size_t i = 0; i < sizeof(clean) / sizeof(clean[0]); i++) {
		char s[64];
		snprintf(s, sizeof(s), "%s", clean[i].in);
		util_utf8_clean(s);
		CHECK_STR(s, clean[i].out);
		CHECK(util_utf8_valid(s, strlen(s)));
	}
}

static void
test_parse_i64(void)
{
	int64_t v = 0;

	CHECK(util_parse_i64("0", &v) == 0 && v == 0);
	CHECK(util_parse_i64("42", &v) == 0 && v == 42);
	CHECK(util_parse_i64("-7", &v) == 0 && v == -7);
	CHECK(util_parse_i64("007", &v) == 0 && v == 7);
	CHECK(util_parse_i64("9223372036854775807", &v) == 0 && v == INT64_MAX);
	CHECK(util_parse_i64("-9223372036854775808", &v) == 0 && v == INT64_MIN);
	v = 5;
	const char *bad[] = {"",
	                     "-",
	                     "+1",
	                     " 1",
	                     "1 ",
	                     "1x",
	                     "0x10",
	                     "1e3",
	                     "1.0",
	                     "--1",
	                     "9223372036854775808",
	                     "-9223372036854775809"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(util_parse_i64(bad[i], &v) == -1);
	CHECK(util_parse_i64(NULL, &v) == -1);
	CHECK(v == 5); /* untouched on refusal */
}

static void
test_buf(void)
{
	struct buf b = {0};
	char want[40];

	buf_reset(&b); /* on an empty buffer: nothing to do */
	CHECK(b.len == 0);
	CHECK(buf_puts(&b, "ab") == RC_OK && b.len == 2 && strcmp(b.data, "ab") == 0);
	CHECK(buf_append(&b, "c\0d", 3) == RC_OK && b.len == 5 && b.data[5] == '\0');
	buf_reset(&b);
	CHECK(b.len == 0 && b.data[0] == '\0' && b.cap > 0);
	const int64_t v[] = {0, 1, -1, 1234567890123LL, INT64_MAX, INT64_MIN};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		buf_reset(&b);
		CHECK(buf_put_i64(&b, v[i]) == RC_OK);
		snprintf(want, sizeof(want), "%" PRId64, v[i]);
		CHECK_STR(b.data, want);
	}
	/* growth far past the first reservation, in one printf */
	char big[5000];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	buf_reset(&b);
	CHECK(buf_printf(&b, "<%s>%d", big, 7) == RC_OK);
	CHECK(b.len == sizeof(big) - 1 + 3 && b.cap > b.len && b.data[b.len] == '\0');
	CHECK(b.data[0] == '<' && b.data[b.len - 2] == '>' && b.data[b.len - 1] == '7');
	CHECK(buf_reserve(&b, 1 << 20) == RC_OK && b.cap > (1 << 20));
	buf_free(&b);
	CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
	buf_free(&b); /* twice, and NULL: harmless */
	buf_free(NULL);
}

static void
test_throttle(void)
{
	struct util_throttle t = {0};
	volatile int stop = 1;

	CHECK(util_throttle_due(&t)); /* zeroed: due at once */
	util_throttle_done(&t, util_mono_ms(), 60000, 10, 0);
	CHECK(!util_throttle_due(&t)); /* not again within min_ms */
	/* the work took 10 s: 1/10 of the time is 100 s, max_ms bounds it to
	 * 20 s (twice what it took: never more than half the time) */
	int64_t t0 = util_mono_ms() - 10000;
	util_throttle_done(&t, t0, 1000, 10, 15000);
	CHECK(t.next_ms >= t0 + 20000 && t.next_ms <= t0 + 20100);
	/* a stop flag already set: no sleep at all */
	int64_t m0 = util_mono_ms();
	CHECK(util_sleep_ms(60000, &stop) == true);
	CHECK(util_mono_ms() - m0 < 1000);
	CHECK(util_sleep_ms(1, NULL) == false);
}

int
main(void)
{
	test_iso_to_ms();
	test_ms_to_iso();
	test_mask();
	test_utf8();
	test_parse_i64();
	test_buf();
	test_throttle();
	return check_done("test_util");
}
