/*
 * aws.h: AWS Signature Version 4 for Amazon OpenSearch Service (es) and
 * OpenSearch Serverless (aoss), and the AWS credential chain (environment,
 * web identity, shared files, ECS, EC2 instance metadata) whose temporary
 * credentials are refreshed before they expire. docs/AWS.md.
 */
#ifndef RECONCILER_AWS_H
#define RECONCILER_AWS_H

#include "error.h"
#include "util.h"

#include <stddef.h>

#include <curl/curl.h>

/* OPENSEARCH_AWS_SERVICE: the signing name of the service. */
enum aws_service { AWS_SERVICE_ES = 0, AWS_SERVICE_AOSS = 1 };

const char *aws_service_name(int service);

/* One set of credentials; token "" when the keys are long-lived. */
struct aws_creds {
	char akid[128];
	char secret[128];
	char *token;        /* malloc'd, may be "" */
	int64_t expires_ms; /* 0: never (static keys) */
};

/* The pure signing step: the Authorization header's value (caller frees)
 * of one request. url: as sent (its query is canonicalized again here,
 * harmlessly when aws_sign already did); canon_headers: the signed headers
 * as "name:value\n" lines, lowercase names, sorted; signed_headers: their
 * names joined by ';'; payload_hash: hex SHA-256 of the body; amz_date:
 * "YYYYMMDDTHHMMSSZ". The path is encoded once more, as every service but
 * S3 signs it. */
RC_MUST_CHECK rcode aws_sigv4_authorization(char **auth, const char *method, const char *url,
                                            const char *canon_headers, const char *signed_headers,
                                            const char *payload_hash, const char *amz_date,
                                            const char *region, const char *service,
                                            const char *akid, const char *secret,
                                            struct rerror *err);

/* The query of a URL rewritten as SigV4 canonicalizes it: each name and
 * value percent-decoded and encoded again (unreserved characters only),
 * the pairs sorted. *out is malloc'd ("" for no query). */
RC_MUST_CHECK rcode aws_canonical_query(char **out, const char *query, struct rerror *err);

/* Hex SHA-256 of data into out[65]. */
void aws_sha256_hex(char out[65], const void *data, size_t len);

/* Signs one request: rewrites *url's query into canonical form (what is
 * signed is then exactly what is sent) and appends the x-amz-* and
 * Authorization headers to *headers. Credentials come from the chain,
 * cached process-wide and refreshed ahead of expiry under a lock (any
 * thread may sign). */
RC_MUST_CHECK rcode aws_sign(struct curl_slist **headers, struct buf *url, const char *method,
                             const char *body, size_t body_len, const char *region, int service,
                             struct rerror *err);

/* A 403 of a signed request as AWS answers it ({"message": ...}, no
 * OpenSearch "error" object: a bad signature, an unknown, expired or
 * unauthorized key): RC_ERR_CONFIG naming OpenSearch and AWS's reason, so
 * no caller takes it for a refusal of what it asked. RC_OK otherwise. */
RC_MUST_CHECK rcode aws_refusal(long status, const struct buf *resp, struct rerror *err);

/* The chain's current credentials (fetched or refreshed as needed); the
 * caller frees with aws_creds_clear. source: which link gave them. */
RC_MUST_CHECK rcode aws_credentials(struct aws_creds *out, const char **source, const char *region,
                                    struct rerror *err);
void aws_creds_clear(struct aws_creds *c);

/* Drops the cached credentials (tests; at exit). */
void aws_global_cleanup(void);

#endif
