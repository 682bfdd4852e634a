/* test_config.c: the settings table: defaults, validation, masking, docs. */
#include "check.h"
#include "config.h"

#include <stdlib.h>
#include <unistd.h>

static void
test_defaults(void)
{
	struct config *c = NULL;
	struct rerror e = {0};

	CHECK(config_load(&c, NULL, &e) == RC_OK);
	CHECK(c->sync_batch_size == 100);
	CHECK(c->sync_batch_size_bytes == 5242880);
	CHECK(c->orphans == ORPHANS_REPORT);
	CHECK(c->opensearch_tls_verify);
	CHECK(c->reconciliation_enabled);
	CHECK_STR(c->http_bind, "127.0.0.1");
	CHECK_STR(c->opensearch_id_field, "mongo_id");
	CHECK_STR(c->state_db, "data/reconciler.db");
	config_free(c);
}

static void
bad(const char *name, const char *value, const char *expect_in_message)
{
	struct config *c = NULL;
	struct rerror e = {0};

	setenv(name, value, 1);
	CHECK(config_load(&c, NULL, &e) == RC_ERR_CONFIG);
	CHECK(c == NULL);
	CHECK(strstr(e.message, name) != NULL);
	CHECK(strstr(e.message, expect_in_message) != NULL);
	if (!strstr(e.message, expect_in_message))
		fprintf(stderr, "  message: %s\n", e.message);
	unsetenv(name);
}

static void
test_validation(void)
{
	bad("SYNC_BATCH_SIZE", "abc", "integer from 1 to 10000");
	bad("SYNC_BATCH_SIZE", "0", "integer from 1 to 10000");
	bad("SYNC_BATCH_SIZE", "99999999999999999999", "integer");
	bad("RECONCILE_ORPHANS", "purge", "one of report, delete");
	bad("OPENSEARCH_TLS_VERIFY", "maybe", "true or false");
	bad("MONGODB_URI", "postgres://x", "mongodb://");
	bad("OPENSEARCH_URL", "localhost:9200", "http://");
	bad("PORT", "70000", "0 to 65535");
	/* parsed by the libraries that use them, at start-up */
	bad("MONGODB_URI", "mongodb://u:p@@@", "libmongoc: Invalid username or password");
	bad("MONGODB_URI", "mongodb://db:99999", "Port could not be parsed");
	bad("MONGODB_URI", "mongodb://db/?replicaSet=", "replicaset");
	bad("MONGODB_URI", "mongodb+srv://one-label", "libmongoc");
	bad("OPENSEARCH_URL", "http://[::1", "libcurl");
	bad("OPENSEARCH_URL", "http://search:99999", "libcurl: Port number");
	bad("OPENSEARCH_URL", "http://u:p@@search:9200", "libcurl");
	bad("OPENSEARCH_URL", "http://search:9200/?pretty", "no query or fragment");
	bad("OPENSEARCH_URL", "http://search:9200/myindex", "a base URL has no path (/myindex)");
	bad("RECONCILIATION_INTERVAL_MS", "-5", "integer");
	/* what the allowed column says, no more: no blank, no '+', no hex or
	 * inf in a decimal, booleans and enum words as listed */
	bad("SYNC_BATCH_SIZE", " 5", "integer from 1 to 10000");
	bad("SYNC_BATCH_SIZE", "\n5", "integer from 1 to 10000");
	bad("SYNC_BATCH_SIZE", "+5", "integer from 1 to 10000");
	bad("RECONCILE_MAX_DELETE_RATIO", "0x0.1p0", "a decimal number");
	bad("RECONCILE_MAX_DELETE_RATIO", " 0.1", "a decimal number");
	bad("RECONCILE_MAX_DELETE_RATIO", "inf", "a decimal number");
	bad("OPENSEARCH_TLS_VERIFY", "t", "also yes/no, on/off, 1/0");
	bad("RECONCILE_ORPHANS", "purge", "(any case)");
	{
		static const char *const yes[] = {"on", "ON", "yes", "1", "True"};
		static const char *const no[] = {"off", "Off", "no", "0", "FALSE"};
		for (size_t i = 0; i < 5; i++) {
			struct config *ok = NULL;
			struct rerror oe = {0};
			setenv("RECONCILIATION_ENABLED", yes[i], 1);
			CHECK(config_load(&ok, NULL, &oe) == RC_OK && ok->reconciliation_enabled);
			config_free(ok);
			ok = NULL;
			setenv("RECONCILIATION_ENABLED", no[i], 1);
			CHECK(config_load(&ok, NULL, &oe) == RC_OK && !ok->reconciliation_enabled);
			config_free(ok);
		}
		unsetenv("RECONCILIATION_ENABLED");
	}
	/* one index by name: a wildcard or a list would read (and delete from)
	 * other indexes */
	static const char *const bad_index[] = {"zz*", "a,b", "ADS", "../x", "a b", "_x",  "-x",
	                                        "+x",  ".",   "..",  "a#b",  "a:b", "a|b", "a\"b"};
	for (size_t i = 0; i < sizeof(bad_index) / sizeof(bad_index[0]); i++)
		bad("OPENSEARCH_INDEX", bad_index[i], "naming one index or alias");
	char long_name[300];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	bad("OPENSEARCH_INDEX", long_name, "OPENSEARCH_INDEX");
	{
		struct config *ok = NULL;
		struct rerror oe = {0};
		setenv("OPENSEARCH_INDEX", "facebook-ads-read.v2_1", 1);
		CHECK(config_load(&ok, NULL, &oe) == RC_OK);
		config_free(ok);
		unsetenv("OPENSEARCH_INDEX");
	}

	/* RECONCILIATION_ENABLED=false really disables (the old service could not) */
	struct config *c = NULL;
	struct rerror e = {0};
	setenv("RECONCILIATION_ENABLED", "false", 1);
	CHECK(config_load(&c, NULL, &e) == RC_OK && !c->reconciliation_enabled);
	config_free(c);
	unsetenv("RECONCILIATION_ENABLED");
}

static void
test_masking(void)
{
	struct config *c = NULL;
	struct rerror e = {0};
	struct buf b = {0};

	setenv("MONGODB_URI", "mongodb://app:s3cret-pw@db.example:27017/?authSource=admin", 1);
	setenv("OPENSEARCH_PASSWORD", "os-pass-123", 1);
	setenv("API_TOKEN", "tok-abcdef", 1);
	CHECK(config_load(&c, NULL, &e) == RC_OK);
	CHECK(config_dump_env(c, &b) == RC_OK);
	CHECK(strstr(b.data, "s3cret-pw") == NULL);
	CHECK(strstr(b.data, "os-pass-123") == NULL);
	CHECK(strstr(b.data, "tok-abcdef") == NULL);
	CHECK(strstr(b.data, "MONGODB_URI=mongodb://app:***@db.example:27017/") != NULL);
	buf_reset(&b);
	CHECK(config_dump_json(c, &b) == RC_OK);
	CHECK(strstr(b.data, "s3cret-pw") == NULL && strstr(b.data, "os-pass-123") == NULL);
	buf_free(&b);
	config_free(c);
	/* a query of blanks only is refused at load, not by every run (QA11 F2) */
	setenv("OPENSEARCH_QUERY", "  \n ", 1);
	CHECK(config_load(&c, NULL, &e) == RC_ERR_CONFIG && strstr(e.message, "only blanks"));
	unsetenv("OPENSEARCH_QUERY");
	setenv("RECONCILE_FILTER", "\t", 1);
	CHECK(config_load(&c, NULL, &e) == RC_ERR_CONFIG && strstr(e.message, "only blanks"));
	unsetenv("RECONCILE_FILTER");
	/* URL schemes in any case (RFC 3986), as libcurl takes them (QA8c F5) */
	setenv("OPENSEARCH_URL", "HTTPS://search:9200", 1);
	CHECK(config_load(&c, NULL, &e) == RC_OK);
	config_free(c);
	c = NULL;
	setenv("OPENSEARCH_URL", "Http://search:9200", 1);
	CHECK(config_load(&c, NULL, &e) == RC_OK);
	config_free(c);
	c = NULL;
	setenv("OPENSEARCH_URL", "HTTP://", 1);
	CHECK(config_load(&c, NULL, &e) == RC_ERR_CONFIG);
	unsetenv("OPENSEARCH_URL");
	/* a bad URI's message does not show the password either */
	setenv("MONGODB_URI", "mongo://u:hunter22@h", 1);
	CHECK(config_load(&c, NULL, &e) == RC_ERR_CONFIG);
	CHECK(strstr(e.message, "hunter22") == NULL);
	/* nor when an unencoded '@' or '/' makes the password hard to find */
	const char *hidden[][2] = {{"MONGODB_URI", "mongodb://app:hunter@22@@db:port/"},
	                           {"MONGODB_URI", "mongodb://app:hun/ter22@db:port/"},
	                           {"OPENSEARCH_URL", "https://admin:hunter@22@@search:9200"},
	                           {"OPENSEARCH_URL", "https://admin:hunter22@search:99999"}};
	for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++) {
		setenv(hidden[i][0], hidden[i][1], 1);
		CHECK(config_load(&c, NULL, &e) == RC_ERR_CONFIG);
		CHECK(strstr(e.message, "hunter") == NULL && strstr(e.message, "ter22") == NULL);
		CHECK(strstr(e.message, hidden[i][0]) != NULL && strstr(e.message, "***") != NULL);
		if (strstr(e.message, "hunter") || strstr(e.message, "ter22"))
			fprintf(stderr, "  leaked: %s\n", e.message);
		unsetenv(hidden[i][0]);
	}
	unsetenv("MONGODB_URI");
	unsetenv("OPENSEARCH_PASSWORD");
	unsetenv("API_TOKEN");

	/* libmongoc would take the part of a password after a raw '@' for a
	 * host name (and show it in DNS errors): refused, masked */
	setenv("MONGODB_URI", "mongodb://app:hunter@22@db:27017/", 1);
	CHECK(config_load(&c, NULL, &e) == RC_ERR_CONFIG);
	CHECK(strstr(e.message, "%40") != NULL && strstr(e.message, "hunter") == NULL &&
	      strstr(e.message, "22@") == NULL);
	unsetenv("MONGODB_URI");
	/* masking takes the last '@' of the authority */
	char m[128] = "GET http://u:a@b@host/x and mongodb://h:1/?x=a@b";
	util_mask_secrets(m, sizeof(m));
	CHECK_STR(m, "GET http://u:***@host/x and mongodb://h:1/?x=a@b");

	char s[128] = "connect mongodb://u:pw@h and http://a:bcdef@x/ and mongodb://h/";
	util_mask_secrets(s, sizeof(s));
	CHECK_STR(s, "connect mongodb://u:**@h and http://a:***@x/ and mongodb://h/");
}

static void
test_dotenv(void)
{
	char path[] = "/tmp/reconciler-test-env-XXXXXX";
	int fd = mkstemp(path);
	struct config *c = NULL;
	struct rerror e = {0};
	FILE *f = fdopen(fd, "w");

	fputs("# comment\nexport SYNC_BATCH_SIZE=250\nOPENSEARCH_INDEX=\"ads\"\n"
	      "RECONCILE_CHUNK_SIZE = 777\nnot a line\n",
	      f);
	fclose(f);
	setenv("RECONCILE_CHUNK_SIZE", "1000", 1); /* the environment wins */
	CHECK(config_load(&c, path, &e) == RC_OK);
	CHECK(c && c->sync_batch_size == 250);
	CHECK(c && strcmp(c->opensearch_index, "ads") == 0);
	CHECK(c && c->chunk_size == 1000);
	config_free(c);
	unsetenv("RECONCILE_CHUNK_SIZE");
	unlink(path);
}

static void
test_docs_match(void)
{
	/* docs/CONFIG.md is generated from the table; keep them equal */
	const char *src = getenv("RECONCILER_SOURCE_DIR");
	char path[4096];
	struct buf want = {0}, have = {0};
	char chunk[4096];
	size_t n;
	FILE *f;

	if (src == NULL)
		src = ".";
	snprintf(path, sizeof(path), "%s/docs/CONFIG.md", src);
	f = fopen(path, "r");
	CHECK(f != NULL);
	if (f == NULL)
		return;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		CHECK(buf_append(&have, chunk, n) == RC_OK);
	fclose(f);
	CHECK(config_dump_markdown(&want) == RC_OK);
	/* equal, not a prefix: nothing hand-written may hide after the table */
	CHECK(have.data && want.data && strcmp(have.data, want.data) == 0);
	if (!(have.data && want.data && strcmp(have.data, want.data) == 0))
		fprintf(stderr, "  docs/CONFIG.md is out of date: run "
		                "`reconciler config --markdown > docs/CONFIG.md`\n");
	buf_free(&want);
	buf_free(&have);
}

/* Rules between settings: external versions need index writes and a
 * version field; the write words are the table's. */
static void
test_write_settings(void)
{
	struct config *c = NULL;
	struct rerror e = {0};

	CHECK(config_load(&c, NULL, &e) == RC_OK);
	CHECK(c && c->write_mode == WRITE_UPSERT && c->version_type == VERSION_INTERNAL &&
	      *c->pipeline == '\0' && *c->routing_field == '\0');
	config_free(c);
	bad("RECONCILE_WRITE_MODE", "replace", "one of upsert, index");
	bad("OPENSEARCH_VERSION_TYPE", "external", "one of internal, external_gte");
	bad("OPENSEARCH_ROUTING_FIELD", "page.id", "top level");
	setenv("OPENSEARCH_VERSION_TYPE", "external_gte", 1);
	setenv("RECONCILE_VERSION_FIELD", "updatedAt", 1);
	CHECK(config_load(&c, NULL, &e) == RC_ERR_CONFIG && c == NULL);
	CHECK(strstr(e.message, "RECONCILE_WRITE_MODE=index") != NULL);
	setenv("RECONCILE_WRITE_MODE", "index", 1);
	CHECK(config_load(&c, NULL, &e) == RC_OK && c->version_type == VERSION_EXTERNAL_GTE);
	config_free(c);
	c = NULL;
	unsetenv("RECONCILE_VERSION_FIELD");
	CHECK(config_load(&c, NULL, &e) == RC_ERR_CONFIG && c == NULL);
	CHECK(strstr(e.message, "needs RECONCILE_VERSION_FIELD") != NULL);
	unsetenv("OPENSEARCH_VERSION_TYPE");
	unsetenv("RECONCILE_WRITE_MODE");
}

/* What a run's snapshot says differently from the settings now: only the
 * settings that bind a run, compared masked; the URI by its hosts. */
static void
test_run_changes(void)
{
	struct config *was = NULL, *now = NULL;
	struct rerror e = {0};
	struct buf snap = {0}, out = {0};

	setenv("MONGODB_URI", "mongodb://app:old-pw@db.example:27017/?authSource=admin", 1);
	CHECK(config_load(&was, NULL, &e) == RC_OK);
	CHECK(config_dump_json(was, &snap) == RC_OK);

	/* tuning and credentials: nothing */
	setenv("MONGODB_URI", "mongodb://other:new-pw@DB.example:27017/?connectTimeoutMS=500", 1);
	setenv("SYNC_BATCH_DELAY_MS", "500", 1);
	setenv("SYNC_BATCH_SIZE", "7", 1);
	setenv("RECONCILE_MAX_DELETES", "3", 1);
	CHECK(config_load(&now, NULL, &e) == RC_OK);
	CHECK(config_run_changes(now, snap.data, &out) == RC_OK && out.len == 0);
	config_free(now);

	/* the index, the host, the orphans policy: each said, old -> new, masked */
	setenv("MONGODB_URI", "mongodb://app:old-pw@db2.example:27017/", 1);
	setenv("OPENSEARCH_INDEX", "moved", 1);
	setenv("RECONCILE_ORPHANS", "delete", 1);
	CHECK(config_load(&now, NULL, &e) == RC_OK);
	CHECK(config_run_changes(now, snap.data, &out) == RC_OK);
	CHECK(out.data && strstr(out.data, "OPENSEARCH_INDEX \"documents\" -> \"moved\"") != NULL);
	CHECK(strstr(out.data, "RECONCILE_ORPHANS \"report\" -> \"delete\"") != NULL);
	CHECK(strstr(out.data, "MONGODB_URI") != NULL && strstr(out.data, "db2.example") != NULL);
	CHECK(strstr(out.data, "old-pw") == NULL && strstr(out.data, "SYNC_") == NULL);
	buf_free(&out);

	/* a key the snapshot lacks is its default; no snapshot: nothing to compare */
	CHECK(config_run_changes(now, "{}", &out) == RC_OK && out.data &&
	      strstr(out.data, "OPENSEARCH_INDEX \"documents\" -> \"moved\"") != NULL);
	buf_free(&out);
	CHECK(config_run_changes(now, NULL, &out) == RC_ERR_INVALID);
	CHECK(config_run_changes(now, "[1]", &out) == RC_ERR_INVALID && out.len == 0);
	config_free(now);
	config_free(was);
	buf_free(&snap);
	buf_free(&out);
	unsetenv("MONGODB_URI");
	unsetenv("SYNC_BATCH_DELAY_MS");
	unsetenv("SYNC_BATCH_SIZE");
	unsetenv("RECONCILE_MAX_DELETES");
	unsetenv("OPENSEARCH_INDEX");
	unsetenv("RECONCILE_ORPHANS");
}

/* OPENSEARCH_INDEX_OWNED_FIELDS has one meaning or is refused (QA20 F9). */
static void
test_owned_fields(void)
{
	static const struct {
		const char *value, *stored;
	} ok[] = {{"", ""},           {" ", ""},
	          {" \t ", ""},       {"none", "none"},
	          {" none ", "none"}, {"embedding", "embedding"},
	          {"a, b", "a, b"},   {"nonexistent", "nonexistent"}};
	const char *name = "OPENSEARCH_INDEX_OWNED_FIELDS";

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct config *c = NULL;
		struct rerror e = {0};
		setenv(name, ok[i].value, 1);
		CHECK(config_load(&c, NULL, &e) == RC_OK &&
		      strcmp(c->owned_fields, ok[i].stored) == 0);
		if (c == NULL)
			fprintf(stderr, "  \"%s\": %s\n", ok[i].value, e.message);
		config_free(c);
	}
	unsetenv(name);
	bad(name, "none,embedding", "stands alone");
	bad(name, "embedding, none", "stands alone");
	bad(name, "NONE", "lowercase");
	bad(name, "None", "lowercase");
	bad(name, "embedding,embedding", "embedding is given twice");
	bad(name, "a, b ,a", "a is given twice");
	bad(name, "_id", "_id is metadata");
	bad(name, "embedding,_routing", "_routing is metadata");
	bad(name, "a,,b", "expected");
	bad(name, "a.b", "expected");
}

int
main(void)
{
	test_defaults();
	test_validation();
	test_masking();
	test_dotenv();
	test_docs_match();
	test_write_settings();
	test_run_changes();
	test_owned_fields();
	return check_done("test_config");
}
