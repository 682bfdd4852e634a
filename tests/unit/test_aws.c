/* test_aws.c: SigV4's pure pieces against AWS's published test vectors
 * (aws-sig-v4-test-suite: get-vanilla, get-vanilla-query-order-key-case,
 * post-vanilla; the same values botocore computes) and the canonical
 * query the reconciler's URLs are rewritten into. */
#include "aws.h"
#include "check.h"

#include <stdlib.h>

#define AKID   "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define DATE   "20150830T123600Z"
#define EMPTY  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HDRS   "host:example.amazonaws.com\nx-amz-date:" DATE "\n"
#define PREFIX                                                                                     \
	"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "        \
	"SignedHeaders=host;x-amz-date, Signature="

static void
vector(const char *method, const char *url, const char *sig)
{
	struct rerror err = {0};
	char *auth = NULL, want[512];

	CHECK(aws_sigv4_authorization(&auth, method, url, HDRS, "host;x-amz-date", EMPTY, DATE,
	                              "us-east-1", "service", AKID, SECRET, &err) == RC_OK);
	snprintf(want, sizeof(want), "%s%s", PREFIX, sig);
	CHECK_STR(auth, want);
	free(auth);
}

static void
query(const char *in, const char *want)
{
	struct rerror err = {0};
	char *out = NULL;

	CHECK(aws_canonical_query(&out, in, &err) == RC_OK);
	CHECK_STR(out, want);
	free(out);
}

int
main(void)
{
	char h[65];

	aws_sha256_hex(h, "", 0);
	CHECK_STR(h, EMPTY);
	vector("GET", "https://example.amazonaws.com/",
	       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
	vector("GET", "https://example.amazonaws.com",
	       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
	vector("GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1",
	       "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
	vector("POST", "https://example.amazonaws.com/",
	       "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
	query("", "");
	query("b=2&a=1", "a=1&b=2");
	query("filter_path=hits.hits._id,items.*.status",
	      "filter_path=hits.hits._id%2Citems.%2A.status");
	query("routing=a%2fb&x", "routing=a%2Fb&x=");
	query("a=%7E%20", "a=~%20");
	query("ab=1&a=2", "a=2&ab=1");
	query("a-=1&a=2&a=1", "a=1&a=2&a-=1");
	aws_global_cleanup();
	return check_done("test_aws");
}
