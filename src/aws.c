/*
 * aws.c: AWS Signature Version 4 and the AWS credential chain.
 *
 * - Signing is done here, not by libcurl's CURLOPT_AWS_SIGV4: the libcurl
 *   Debian bookworm ships (7.88.1) hashes a POSTFIELDS body right, but it
 *   signs the query as it is written (not sorted: b=1&a=2 is refused; not
 *   encoded again: a ',' is signed raw where SigV4 asks for %2C) and sends
 *   no x-amz-content-sha256, which OpenSearch Serverless requires (tried
 *   against the test's botocore proxy; docs/AWS.md).
 * - What is signed is what is sent: aws_sign rewrites the URL's query into
 *   its canonical form first (decoded, encoded again, sorted), so the
 *   server, botocore and this file all see one query.
 * - Signed headers: host, x-amz-content-sha256 (the body's hash, always
 *   sent: aoss needs it, es accepts it), x-amz-date and, for temporary
 *   credentials, x-amz-security-token.
 * - Credentials: the chain in the order of the AWS SDKs: environment, web
 *   identity (STS AssumeRoleWithWebIdentity), the shared credentials and
 *   config files, ECS container credentials, EC2 instance metadata
 *   (IMDSv2). A source that is configured but fails is an error naming it
 *   (the chain does not fall through to another identity). The result is
 *   cached process-wide under a mutex: every sender thread signs with it,
 *   and temporary credentials are fetched again 5 minutes before they
 *   expire (halfway through their life when they live less than 10). A
 *   failed refresh keeps the old credentials while they are still valid.
 *   Keys are never logged: only the source and the key id's last 4.
 */
#include "aws.h"
#include "log.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#define REFRESH_AHEAD_MS (5 * 60 * 1000)

static const char *const service_names[] = {[AWS_SERVICE_ES] = "es", [AWS_SERVICE_AOSS] = "aoss"};

const char *
aws_service_name(int service)
{
	return service == AWS_SERVICE_AOSS ? service_names[AWS_SERVICE_AOSS]
	                                   : service_names[AWS_SERVICE_ES];
}

/* ---- SigV4 -------------------------------------------------------------- */

static void
hex(char *out, const unsigned char *b, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

void
aws_sha256_hex(char out[65], const void *data, size_t len)
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256(data, len, md);
	hex(out, md, sizeof(md));
}

static void
hmac(unsigned char out[32], const void *key, size_t klen, const char *msg)
{
	unsigned int n = 32;

	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &n);
}

static bool
unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* Percent-encodes n bytes of s (keep_slash: '/' stays, for a path). */
static rcode
encode(struct buf *out, const char *s, size_t n, bool keep_slash)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		rcode rc = unreserved(c) || (keep_slash && c == '/') ? buf_append(out, &s[i], 1)
		                                                     : buf_printf(out, "%%%02X", c);
		if (rc)
			return rc;
	}
	return RC_OK;
}

static int
hexval(char c)
{
	return isdigit((unsigned char)c)    ? c - '0'
	       : isxdigit((unsigned char)c) ? tolower((unsigned char)c) - 'a' + 10
	                                    : -1;
}

/* n bytes of s percent-decoded and encoded again (unreserved only). */
static rcode
reencode(struct buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		}
		if (encode(out, &c, 1, false))
			return RC_ERR_NOMEM;
	}
	return RC_OK;
}

/* "name=value" pairs by name, then value (an encoded name holds no '=') */
static int
cmp_pair(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	size_t nx = strcspn(x, "="), ny = strcspn(y, "=");
	int c = memcmp(x, y, nx < ny ? nx : ny);

	if (c || nx != ny)
		return c ? c : nx < ny ? -1 : 1;
	return strcmp(x + nx, y + ny);
}

rcode
aws_canonical_query(char **out, const char *query, struct rerror *err)
{
	struct buf b = {0}, pair = {0};
	char **pairs = NULL;
	size_t n = 0, cap = 0;
	rcode rc = RC_OK;

	*out = NULL;
	for (const char *p = query; p && *p;) {
		const char *end = p + strcspn(p, "&"), *eq = memchr(p, '=', (size_t)(end - p));
		buf_reset(&pair);
		if (end > p &&
		    (reencode(&pair, p, (size_t)((eq ? eq : end) - p)) || buf_puts(&pair, "=") ||
		     (eq && reencode(&pair, eq + 1, (size_t)(end - eq - 1))))) {
			rc = RC_ERR_NOMEM;
			goto out;
		}
		if (end > p && n == cap) {
			char **v = realloc(pairs, (cap = cap ? 2 * cap : 8) * sizeof(*v));
			if (v == NULL) {
				rc = RC_ERR_NOMEM;
				goto out;
			}
			pairs = v;
		}
		if (end > p && (pairs[n++] = strdup(pair.data)) == NULL) {
			rc = RC_ERR_NOMEM;
			goto out;
		}
		p = *end ? end + 1 : end;
	}
	if (n)
		qsort(pairs, n, sizeof(*pairs), cmp_pair);
	for (size_t i = 0; i < n && rc == RC_OK; i++)
		rc = buf_printf(&b, "%s%s", i ? "&" : "", pairs[i]);
	if (rc == RC_OK && (*out = strdup(b.data ? b.data : "")) == NULL)
		rc = RC_ERR_NOMEM;
out:
	for (size_t i = 0; i < n; i++)
		free(pairs[i]);
	free(pairs);
	buf_free(&b);
	buf_free(&pair);
	return rc ? rerror_set(err, rc, "out of memory") : RC_OK;
}

/* The path and query of url (after scheme://authority). */
static void
url_parts(const char *url, const char **path, size_t *path_len, const char **query)
{
	const char *p = strstr(url, "://");

	p = p ? p + 3 : url;
	p += strcspn(p, "/?");
	*path = p;
	*path_len = strcspn(p, "?");
	*query = p[*path_len] == '?' ? p + *path_len + 1 : "";
}

rcode
aws_sigv4_authorization(char **auth, const char *method, const char *url, const char *canon_headers,
                        const char *signed_headers, const char *payload_hash, const char *amz_date,
                        const char *region, const char *service, const char *akid,
                        const char *secret, struct rerror *err)
{
	struct buf creq = {0}, sts = {0}, key = {0}, out = {0};
	const char *path, *query;
	char *cquery = NULL, date[9], creq_hash[65], sig[65];
	unsigned char k[32];
	size_t plen;
	rcode rc;

	*auth = NULL;
	url_parts(url, &path, &plen, &query);
	snprintf(date, sizeof(date), "%.8s", amz_date);
	if ((rc = aws_canonical_query(&cquery, query, err)))
		return rc;
	if (buf_printf(&creq, "%s\n", method) ||
	    (plen ? encode(&creq, path, plen, true) : buf_puts(&creq, "/")) ||
	    buf_printf(&creq, "\n%s\n%s\n%s\n%s", cquery, canon_headers, signed_headers,
	               payload_hash))
		goto nomem;
	aws_sha256_hex(creq_hash, creq.data, creq.len);
	if (buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", amz_date, date,
	               region, service, creq_hash) ||
	    buf_printf(&key, "AWS4%s", secret))
		goto nomem;
	hmac(k, key.data, key.len, date);
	hmac(k, k, 32, region);
	hmac(k, k, 32, service);
	hmac(k, k, 32, "aws4_request");
	hmac(k, k, 32, sts.data);
	hex(sig, k, 32);
	if (buf_printf(&out,
	               "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
	               "Signature=%s",
	               akid, date, region, service, signed_headers, sig))
		goto nomem;
	*auth = out.data;
	out.data = NULL;
	goto out;
nomem:
	rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
out:
	if (key.data)
		memset(key.data, 0, key.len);
	free(cquery);
	buf_free(&creq);
	buf_free(&sts);
	buf_free(&key);
	buf_free(&out);
	return rc;
}

/* The Host header curl sends for url: its authority without userinfo, a
 * default port dropped. */
static void
url_host(char *out, size_t len, const char *url)
{
	const char *p = strstr(url, "://"), *at;
	bool https = strncasecmp(url, "https://", 8) == 0;
	size_t n;

	p = p ? p + 3 : url;
	n = strcspn(p, "/?#");
	at = memchr(p, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	if (n >= len)
		n = len - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)p[i]);
	out[n] = '\0';
	n = strlen(out);
	if (!https && n > 3 && strcmp(out + n - 3, ":80") == 0)
		out[n - 3] = '\0';
	if (https && n > 4 && strcmp(out + n - 4, ":443") == 0)
		out[n - 4] = '\0';
}

/* ---- the credential chain ---------------------------------------------- */

static struct {
	pthread_mutex_t lock;
	bool have;
	struct aws_creds c;
	const char *source;
	int64_t refresh_ms;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

void
aws_creds_clear(struct aws_creds *c)
{
	if (c == NULL)
		return;
	if (c->token)
		memset(c->token, 0, strlen(c->token));
	free(c->token);
	memset(c, 0, sizeof(*c));
}

static rcode
creds_set(struct aws_creds *c, const char *akid, const char *secret, const char *token,
          struct rerror *err)
{
	if (strlen(akid) >= sizeof(c->akid) || strlen(secret) >= sizeof(c->secret))
		return rerror_set(err, RC_ERR_CONFIG, "AWS credentials: key id or secret too long");
	snprintf(c->akid, sizeof(c->akid), "%s", akid);
	snprintf(c->secret, sizeof(c->secret), "%s", secret);
	free(c->token);
	c->token = strdup(token ? token : "");
	return c->token ? RC_OK : rerror_set(err, RC_ERR_NOMEM, "out of memory");
}

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static size_t
on_body(char *data, size_t size, size_t n, void *ctx)
{
	return buf_append(ctx, data, size * n) ? 0 : size * n;
}

/* One HTTP exchange of the chain (STS, ECS, IMDS): short timeouts, the
 * body into resp, *status the HTTP status. Fails on transport errors. */
static rcode
http_fetch(struct buf *resp, long *status, const char *method, const char *url,
           struct curl_slist *hdr, const char *body, long connect_ms, struct rerror *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *c = curl_easy_init();
	CURLcode cc;

	*status = 0;
	buf_reset(resp);
	if (c == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
	cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	if (cc != CURLE_OK)
		return rerror_set(err, RC_ERR_IO, "%s unreachable: %s", url,
		                  *errbuf ? errbuf : curl_easy_strerror(cc));
	return RC_OK;
}

/* Static keys from the environment. */
static rcode
from_env(struct aws_creds *c, bool *found, struct rerror *err)
{
	const char *akid = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");

	*found = akid && secret;
	return *found ? creds_set(c, akid, secret, env("AWS_SESSION_TOKEN"), err) : RC_OK;
}

/* The text of <tag>...</tag> in xml, into out (empty when missing). */
static void
xml_text(char *out, size_t len, const char *xml, const char *tag)
{
	char open[64], close[64];
	const char *a, *b;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	out[0] = '\0';
	if ((a = strstr(xml, open)) && (b = strstr(a, close)))
		snprintf(out, len, "%.*s", (int)(b - a - (ptrdiff_t)strlen(open)),
		         a + strlen(open));
}

static rcode
read_file_trim(char **out, const char *path, struct rerror *err)
{
	struct buf b = {0};
	char chunk[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	*out = NULL;
	if (f == NULL)
		return rerror_set(err, RC_ERR_CONFIG, "cannot read %s", path);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_append(&b, chunk, n)) {
			fclose(f);
			buf_free(&b);
			return rerror_set(err, RC_ERR_NOMEM, "out of memory");
		}
	fclose(f);
	while (b.len && isspace((unsigned char)b.data[b.len - 1]))
		b.data[--b.len] = '\0';
	*out = b.data ? b.data : strdup("");
	return *out ? RC_OK : rerror_set(err, RC_ERR_NOMEM, "out of memory");
}

/* Temporary credentials of an answer's fields (STS XML or a JSON object). */
static rcode
temporary(struct aws_creds *c, const char *what, const char *akid, const char *secret,
          const char *token, const char *expires, struct rerror *err)
{
	rcode rc;

	if (!*akid || !*secret)
		return rerror_set(err, RC_ERR_CONFIG, "AWS credentials: %s: no keys in the answer",
		                  what);
	if ((rc = creds_set(c, akid, secret, token, err)))
		return rc;
	if (expires && *expires && util_iso_to_ms(expires, &c->expires_ms))
		return rerror_set(err, RC_ERR_CONFIG,
		                  "AWS credentials: %s: unreadable expiration \"%.40s\"", what,
		                  expires);
	return RC_OK;
}

/* AssumeRoleWithWebIdentity (EKS service accounts: IRSA). */
static rcode
from_web_identity(struct aws_creds *c, bool *found, const char *region, struct rerror *err)
{
	const char *file = env("AWS_WEB_IDENTITY_TOKEN_FILE"), *role = env("AWS_ROLE_ARN");
	const char *session = env("AWS_ROLE_SESSION_NAME"), *ep = env("AWS_ENDPOINT_URL_STS");
	char *tok = NULL, *e_tok = NULL, *e_role = NULL, *e_sess = NULL;
	char akid[128], secret[128], exp[64], *token = NULL;
	struct buf url = {0}, body = {0}, resp = {0};
	long status;
	rcode rc;

	*found = file && role;
	if (!*found)
		return RC_OK;
	if ((rc = read_file_trim(&tok, file, err)))
		goto out;
	e_tok = curl_easy_escape(NULL, tok, 0);
	e_role = curl_easy_escape(NULL, role, 0);
	e_sess = curl_easy_escape(NULL, session ? session : "reconciler", 0);
	ep = ep ? ep : env("AWS_ENDPOINT_URL");
	region = env("AWS_REGION") ? env("AWS_REGION") : region;
	if (!e_tok || !e_role || !e_sess ||
	    (ep ? buf_puts(&url, ep) : buf_printf(&url, "https://sts.%s.amazonaws.com", region)) ||
	    buf_printf(&body,
	               "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=%s&"
	               "RoleSessionName=%s&WebIdentityToken=%s",
	               e_role, e_sess, e_tok)) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = http_fetch(&resp, &status, "POST", url.data, NULL, body.data, 5000, err)))
		goto out;
	if (status != 200) {
		xml_text(exp, sizeof(exp), resp.data ? resp.data : "", "Message");
		rc = rerror_set(err, RC_ERR_CONFIG, "STS answered %ld: %s", status, exp);
		goto out;
	}
	if ((token = malloc(resp.len + 1)) == NULL) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	xml_text(akid, sizeof(akid), resp.data, "AccessKeyId");
	xml_text(secret, sizeof(secret), resp.data, "SecretAccessKey");
	xml_text(token, resp.len + 1, resp.data, "SessionToken");
	xml_text(exp, sizeof(exp), resp.data, "Expiration");
	rc = temporary(c, "web identity", akid, secret, token, exp, err);
out:
	if (tok)
		memset(tok, 0, strlen(tok));
	free(tok);
	curl_free(e_tok);
	curl_free(e_role);
	curl_free(e_sess);
	free(token);
	buf_free(&url);
	buf_free(&body);
	buf_free(&resp);
	return rc;
}

/* key = value lines of [section] of an INI file. */
static void
ini_section(FILE *f, const char *section, char akid[128], char secret[128], struct buf *token)
{
	char line[8192];
	bool in = false;

	while (fgets(line, sizeof(line), f)) {
		char *p = line, *eq, *k_end, *v;
		size_t n;
		while (isspace((unsigned char)*p))
			p++;
		n = strlen(p);
		while (n && isspace((unsigned char)p[n - 1]))
			p[--n] = '\0';
		if (*p == '[') {
			in = n > 1 && p[n - 1] == ']' && strlen(section) == n - 2 &&
			     strncmp(p + 1, section, n - 2) == 0;
			continue;
		}
		if (!in || *p == '#' || *p == ';' || (eq = strchr(p, '=')) == NULL)
			continue;
		for (k_end = eq; k_end > p && isspace((unsigned char)k_end[-1]); k_end--)
			;
		*k_end = '\0';
		for (v = eq + 1; isspace((unsigned char)*v); v++)
			;
		if (strcmp(p, "aws_access_key_id") == 0)
			snprintf(akid, 128, "%s", v);
		else if (strcmp(p, "aws_secret_access_key") == 0)
			snprintf(secret, 128, "%s", v);
		else if (strcmp(p, "aws_session_token") == 0) {
			buf_reset(token);
			if (buf_puts(token, v))
				buf_reset(token);
		}
	}
}

/* The profile (AWS_PROFILE, else default) of the shared credentials file,
 * then of the config file ([profile NAME], [default]). */
static rcode
from_shared_files(struct aws_creds *c, bool *found, struct rerror *err)
{
	const char *profile = env("AWS_PROFILE") ? env("AWS_PROFILE") : "default";
	const char *home = env("HOME") ? env("HOME") : "/";
	const char *files[2] = {env("AWS_SHARED_CREDENTIALS_FILE"), env("AWS_CONFIG_FILE")};
	char paths[2][4096], section[300], akid[128] = "", secret[128] = "";
	struct buf token = {0};
	rcode rc = RC_OK;

	*found = false;
	snprintf(paths[0], sizeof(paths[0]), "%s", files[0] ? files[0] : "");
	snprintf(paths[1], sizeof(paths[1]), "%s", files[1] ? files[1] : "");
	if (!files[0])
		snprintf(paths[0], sizeof(paths[0]), "%s/.aws/credentials", home);
	if (!files[1])
		snprintf(paths[1], sizeof(paths[1]), "%s/.aws/config", home);
	for (int i = 0; i < 2 && !*found; i++) {
		FILE *f = fopen(paths[i], "r");
		if (f == NULL)
			continue;
		if (i == 1 && strcmp(profile, "default") != 0)
			snprintf(section, sizeof(section), "profile %s", profile);
		else
			snprintf(section, sizeof(section), "%s", profile);
		ini_section(f, section, akid, secret, &token);
		fclose(f);
		*found = *akid && *secret;
	}
	if (*found)
		rc = creds_set(c, akid, secret, token.data, err);
	memset(secret, 0, sizeof(secret));
	if (token.data)
		memset(token.data, 0, token.len);
	buf_free(&token);
	return rc;
}

/* {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}: ECS's and
 * IMDS's answer. */
static rcode
from_json(struct aws_creds *c, const char *what, const struct buf *resp, struct rerror *err)
{
	cJSON *j = cJSON_Parse(resp->data ? resp->data : "");
	const char *f[4] = {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"};
	const char *v[4];
	rcode rc;

	for (int i = 0; i < 4; i++) {
		cJSON *x = cJSON_GetObjectItemCaseSensitive(j, f[i]);
		v[i] = cJSON_IsString(x) ? x->valuestring : "";
	}
	rc = temporary(c, what, v[0], v[1], v[2], v[3], err);
	cJSON_Delete(j);
	return rc;
}

static rcode
from_ecs(struct aws_creds *c, bool *found, struct rerror *err)
{
	const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *tfile = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	struct buf url = {0}, resp = {0}, auth = {0};
	struct curl_slist *hdr = NULL;
	char *tok = NULL;
	long status;
	rcode rc = RC_OK;

	*found = rel || full;
	if (!*found)
		return RC_OK;
	if (tfile && (rc = read_file_trim(&tok, tfile, err)))
		goto out;
	if ((tok || env("AWS_CONTAINER_AUTHORIZATION_TOKEN")) &&
	    (buf_printf(&auth, "Authorization: %s",
	                tok ? tok : env("AWS_CONTAINER_AUTHORIZATION_TOKEN")) ||
	     (hdr = curl_slist_append(NULL, auth.data)) == NULL))
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	if (rc == RC_OK &&
	    (rel ? buf_printf(&url, "http://169.254.170.2%s", rel) : buf_puts(&url, full)))
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	if (rc == RC_OK)
		rc = http_fetch(&resp, &status, "GET", url.data, hdr, NULL, 2000, err);
	if (rc == RC_OK && status != 200)
		rc = rerror_set(err, RC_ERR_CONFIG, "the endpoint answered %ld", status);
	if (rc == RC_OK)
		rc = from_json(c, "ECS container credentials", &resp, err);
out:
	curl_slist_free_all(hdr);
	free(tok);
	buf_free(&url);
	buf_free(&resp);
	buf_free(&auth);
	return rc;
}

/* EC2 instance metadata: a session token first (IMDSv2; an IMDSv1-only
 * endpoint answering it with an error is then asked without), the role's
 * name, its credentials. Not reachable: *found false. */
static rcode
from_imds(struct aws_creds *c, bool *found, struct rerror *err)
{
	const char *ep = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	const char *off = env("AWS_EC2_METADATA_DISABLED");
	char base[1024], role[256] = "";
	struct buf url = {0}, resp = {0}, th = {0};
	struct curl_slist *hdr = NULL;
	struct rerror e = {0};
	long status;
	rcode rc = RC_OK;

	*found = false;
	if (off && strcasecmp(off, "true") == 0)
		return RC_OK;
	snprintf(base, sizeof(base), "%s", ep ? ep : "http://169.254.169.254");
	if (strlen(base) && base[strlen(base) - 1] == '/')
		base[strlen(base) - 1] = '\0';
	hdr = curl_slist_append(NULL, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
	if (hdr == NULL || buf_printf(&url, "%s/latest/api/token", base)) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (http_fetch(&resp, &status, "PUT", url.data, hdr, NULL, 1000, &e))
		goto out; /* not on EC2 */
	*found = true;
	curl_slist_free_all(hdr);
	hdr = NULL;
	if (status == 200 &&
	    (buf_printf(&th, "X-aws-ec2-metadata-token: %s", resp.data ? resp.data : "") ||
	     (hdr = curl_slist_append(NULL, th.data)) == NULL)) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	buf_reset(&url);
	if (buf_printf(&url, "%s/latest/meta-data/iam/security-credentials/", base) ||
	    (rc = http_fetch(&resp, &status, "GET", url.data, hdr, NULL, 1000, err)))
		goto out_rc;
	if (status != 200 || resp.len == 0) {
		rc = rerror_set(err, RC_ERR_CONFIG, "no instance role (the endpoint answered %ld)",
		                status);
		goto out;
	}
	snprintf(role, sizeof(role), "%.*s", (int)strcspn(resp.data, "\r\n"), resp.data);
	if (buf_printf(&url, "%s", role) ||
	    (rc = http_fetch(&resp, &status, "GET", url.data, hdr, NULL, 1000, err)))
		goto out_rc;
	rc = status == 200 ? from_json(c, "EC2 instance metadata", &resp, err)
	                   : rerror_set(err, RC_ERR_CONFIG, "the endpoint answered %ld", status);
	goto out;
out_rc:
	if (rc == RC_OK)
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
out:
	curl_slist_free_all(hdr);
	buf_free(&url);
	buf_free(&resp);
	if (th.data)
		memset(th.data, 0, th.len);
	buf_free(&th);
	return rc;
}

/* The first source of the chain that has credentials. */
static rcode
fetch_chain(struct aws_creds *c, const char **source, const char *region, struct rerror *err)
{
	static const char *const names[] = {"environment", "web identity", "shared files",
	                                    "ECS container credentials", "EC2 instance metadata"};
	struct rerror e = {0};
	bool found = false;
	rcode rc = RC_OK;

	for (int i = 0; i < 5 && !found && rc == RC_OK; i++) {
		*source = names[i];
		switch (i) {
		case 0:
			rc = from_env(c, &found, &e);
			break;
		case 1:
			rc = from_web_identity(c, &found, region, &e);
			break;
		case 2:
			rc = from_shared_files(c, &found, &e);
			break;
		case 3:
			rc = from_ecs(c, &found, &e);
			break;
		default:
			rc = from_imds(c, &found, &e);
			break;
		}
	}
	if (rc)
		return rerror_set(err, RC_ERR_CONFIG, "AWS credentials (%s): %s", *source,
		                  e.message);
	if (!found)
		return rerror_set(
		    err, RC_ERR_CONFIG,
		    "no AWS credentials: none in the environment (AWS_ACCESS_KEY_ID), "
		    "no web identity (AWS_WEB_IDENTITY_TOKEN_FILE), none in the shared "
		    "files for profile %s, no ECS endpoint, no EC2 instance metadata "
		    "(docs/AWS.md)",
		    env("AWS_PROFILE") ? env("AWS_PROFILE") : "default");
	return RC_OK;
}

static int64_t
refresh_at(int64_t now, int64_t expires)
{
	int64_t ahead = (expires - now) / 2;

	return expires - (ahead < REFRESH_AHEAD_MS ? ahead : REFRESH_AHEAD_MS);
}

rcode
aws_credentials(struct aws_creds *out, const char **source, const char *region, struct rerror *err)
{
	struct aws_creds fresh = {0};
	const char *src = NULL;
	int64_t now = util_now_ms();
	rcode rc = RC_OK;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&cache.lock);
	if (!cache.have || (cache.c.expires_ms && now >= cache.refresh_ms)) {
		rc = fetch_chain(&fresh, &src, region, err);
		if (rc == RC_OK) {
			size_t n = strlen(fresh.akid);
			aws_creds_clear(&cache.c);
			cache.c = fresh;
			cache.have = true;
			cache.source = src;
			cache.refresh_ms = fresh.expires_ms ? refresh_at(now, fresh.expires_ms) : 0;
			log_info("aws: credentials from %s (key id ...%s)%s", src,
			         n > 4 ? fresh.akid + n - 4 : "",
			         fresh.expires_ms ? ", temporary" : "");
		} else if (cache.have && now < cache.c.expires_ms) {
			log_warn("aws: refreshing credentials failed, the current ones stay until "
			         "they expire: %s",
			         err->message);
			aws_creds_clear(&fresh);
			rc = RC_OK;
		} else {
			aws_creds_clear(&fresh);
		}
	}
	if (rc == RC_OK) {
		*out = cache.c;
		out->token = strdup(cache.c.token ? cache.c.token : "");
		if (out->token == NULL)
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		if (source)
			*source = cache.source;
	}
	pthread_mutex_unlock(&cache.lock);
	return rc;
}

void
aws_global_cleanup(void)
{
	pthread_mutex_lock(&cache.lock);
	aws_creds_clear(&cache.c);
	cache.have = false;
	pthread_mutex_unlock(&cache.lock);
}

rcode
aws_refusal(long status, const struct buf *resp, struct rerror *err)
{
	cJSON *j, *m;
	rcode rc = RC_OK;

	if (status != 403 || resp->data == NULL || (j = cJSON_Parse(resp->data)) == NULL)
		return RC_OK;
	m = cJSON_GetObjectItemCaseSensitive(j, "message");
	if (cJSON_IsString(m) && !cJSON_HasObjectItem(j, "error"))
		rc = rerror_set(
		    err, RC_ERR_CONFIG,
		    "OpenSearch: AWS authentication failed (HTTP 403): %.300s (check the "
		    "AWS credentials, OPENSEARCH_AWS_REGION and OPENSEARCH_AWS_SERVICE; "
		    "docs/AWS.md)",
		    m->valuestring);
	cJSON_Delete(j);
	return rc;
}

/* The signed headers' canonical lines and names. */
static rcode
signed_headers(struct buf *canon, struct buf *names, const char *host, const char *hash,
               const char *date, const char *token)
{
	if (buf_printf(canon, "host:%s\nx-amz-content-sha256:%s\nx-amz-date:%s\n", host, hash,
	               date) ||
	    buf_puts(names, "host;x-amz-content-sha256;x-amz-date"))
		return RC_ERR_NOMEM;
	if (*token && (buf_printf(canon, "x-amz-security-token:%s\n", token) ||
	               buf_puts(names, ";x-amz-security-token")))
		return RC_ERR_NOMEM;
	return RC_OK;
}

/* url's query replaced by its canonical form. */
static rcode
canonical_url(struct buf *url, struct rerror *err)
{
	const char *path, *query;
	char *cq = NULL;
	size_t plen;
	struct buf b = {0};
	rcode rc;

	url_parts(url->data, &path, &plen, &query);
	if (!*query)
		return RC_OK;
	if ((rc = aws_canonical_query(&cq, query, err)))
		return rc;
	if (buf_append(&b, url->data, (size_t)(path + plen - url->data)) ||
	    (*cq && buf_printf(&b, "?%s", cq)))
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	free(cq);
	if (rc == RC_OK) {
		buf_free(url);
		*url = b;
	} else {
		buf_free(&b);
	}
	return rc;
}

rcode
aws_sign(struct curl_slist **headers, struct buf *url, const char *method, const char *body,
         size_t body_len, const char *region, int service, struct rerror *err)
{
	struct aws_creds c = {0};
	struct buf canon = {0}, names = {0}, h = {0};
	char hash[65], date[32], host[512], *auth = NULL;
	time_t now = time(NULL);
	struct tm tm;
	rcode rc;

	if ((rc = aws_credentials(&c, NULL, region, err)) || (rc = canonical_url(url, err)))
		goto out;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
	aws_sha256_hex(hash, body ? body : "", body ? body_len : 0);
	url_host(host, sizeof(host), url->data);
	if (signed_headers(&canon, &names, host, hash, date, c.token)) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = aws_sigv4_authorization(&auth, method, url->data, canon.data, names.data, hash,
	                                  date, region, aws_service_name(service), c.akid, c.secret,
	                                  err)))
		goto out;
	const char *lines[4] = {"x-amz-content-sha256", "x-amz-date", "x-amz-security-token",
	                        "Authorization"};
	const char *vals[4] = {hash, date, c.token, auth};
	for (int i = 0; i < 4 && rc == RC_OK; i++) {
		struct curl_slist *l;
		if (i == 2 && !*c.token)
			continue;
		buf_reset(&h);
		if (buf_printf(&h, "%s: %s", lines[i], vals[i]) ||
		    (l = curl_slist_append(*headers, h.data)) == NULL)
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		else
			*headers = l;
	}
out:
	aws_creds_clear(&c);
	free(auth);
	buf_free(&canon);
	buf_free(&names);
	if (h.data)
		memset(h.data, 0, h.len);
	buf_free(&h);
	return rc;
}
