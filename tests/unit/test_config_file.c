/* test_config_file.c: the YAML configuration file: mirrors, what overrides
 * what, and every class of bad file stopping with file, line and key. */
#include "check.h"
#include "config.h"

#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/reconciler-test-yaml-XXXXXX";
static char path[4096];

/* Writes text to DIR/name and returns its path (static buffer). */
static const char *
write_file(const char *name, const char *text)
{
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	return path;
}

static const char *const good_yaml = "# a comment\n"
                                     "mongodb_database: app\n"
                                     "opensearch_url: http://search:9200/\n"
                                     "state_db: /tmp/journal.db\n"
                                     "sync_batch_size: 250\n"
                                     "log_level: debug\n"
                                     "mirrors:\n"
                                     "  - name: ads\n"
                                     "    mongodb_collection: ads\n"
                                     "    opensearch_index: ads\n"
                                     "  - name: users\n"
                                     "    mongodb_collection: users\n"
                                     "    opensearch_index: users\n"
                                     "    sync_batch_size: 500\n"
                                     "    reconciliation_enabled: no\n"
                                     "  - name: ads-v2\n"
                                     "    mongodb_collection: \"ads\"\n"
                                     "    opensearch_index: 'ads-v2'\n"
                                     "    opensearch_id_field: \"\"\n"
                                     "    reconcile_orphans: delete\n"
                                     "    opensearch_password: ~\n";

static void
test_good_file(void)
{
	struct config_set *set = NULL;
	struct rerror e = {0};
	const struct config *ads, *users, *v2;

	CHECK(config_set_load(&set, write_file("good.yaml", good_yaml), NULL, &e) == RC_OK);
	if (set == NULL) {
		fprintf(stderr, "  message: %s\n", e.message);
		return;
	}
	CHECK_STR(set->file, path);
	CHECK(set->n_mirrors == 3);
	CHECK(set->global->name == NULL);
	/* the global view: the top level over the defaults */
	CHECK_STR(set->global->state_db, "/tmp/journal.db");
	CHECK(set->global->log_level == 3);
	CHECK(set->global->sync_batch_size == 250);
	CHECK_STR(set->global->mongodb_collection, "documents");
	ads = config_set_find(set, "ads");
	users = config_set_find(set, "users");
	v2 = config_set_find(set, "ads-v2");
	CHECK(ads == set->mirrors[0] && users == set->mirrors[1] && v2 == set->mirrors[2]);
	CHECK(config_set_find(set, "nope") == NULL);
	if (!ads || !users || !v2)
		goto out;
	/* each mirror: its own settings over the top level, globals copied */
	CHECK_STR(ads->name, "ads");
	CHECK_STR(ads->mongodb_collection, "ads");
	CHECK_STR(ads->opensearch_index, "ads");
	CHECK_STR(ads->mongodb_database, "app");
	CHECK_STR(ads->opensearch_url, "http://search:9200");
	CHECK(ads->sync_batch_size == 250);
	CHECK(ads->reconciliation_enabled);
	CHECK_STR(ads->state_db, "/tmp/journal.db");
	CHECK(ads->log_level == 3);
	CHECK_STR(ads->opensearch_id_field, "mongo_id");
	CHECK(users->sync_batch_size == 500);
	CHECK(!users->reconciliation_enabled);
	CHECK_STR(users->opensearch_index, "users");
	CHECK_STR(v2->mongodb_collection, "ads");
	CHECK_STR(v2->opensearch_index, "ads-v2");
	CHECK_STR(v2->opensearch_id_field, "");
	CHECK(v2->orphans == ORPHANS_DELETE && ads->orphans == ORPHANS_REPORT);
	CHECK_STR(v2->opensearch_password, "");
	/* copies, not shared strings: each mirror frees its own */
	CHECK(ads->state_db != users->state_db && ads->state_db != set->global->state_db);
out:
	config_set_free(set);
}

static void
test_env_overrides(void)
{
	struct config_set *set = NULL;
	struct rerror e = {0};

	/* the environment beats the top level, a mirror's entry beats both */
	setenv("STATE_DB", "/tmp/from-env.db", 1);
	setenv("SYNC_BATCH_SIZE", "42", 1);
	setenv("MONGODB_DATABASE", "envdb", 1);
	setenv("OPENSEARCH_INDEX", "env-index", 1);
	CHECK(config_set_load(&set, write_file("good.yaml", good_yaml), NULL, &e) == RC_OK);
	if (set) {
		CHECK_STR(set->global->state_db, "/tmp/from-env.db");
		CHECK_STR(set->mirrors[0]->state_db, "/tmp/from-env.db");
		CHECK(set->mirrors[0]->sync_batch_size == 42);  /* top level 250, env 42 */
		CHECK(set->mirrors[1]->sync_batch_size == 500); /* its own entry */
		CHECK_STR(set->mirrors[2]->mongodb_database, "envdb");
		CHECK_STR(set->mirrors[1]->opensearch_index, "users");
	}
	config_set_free(set);
	set = NULL;
	/* a bad environment value still names the variable */
	setenv("SYNC_BATCH_SIZE", "lots", 1);
	CHECK(config_set_load(&set, path, NULL, &e) == RC_ERR_CONFIG && set == NULL);
	CHECK(strstr(e.message, "SYNC_BATCH_SIZE=\"lots\"") != NULL);
	unsetenv("STATE_DB");
	unsetenv("SYNC_BATCH_SIZE");
	unsetenv("MONGODB_DATABASE");
	unsetenv("OPENSEARCH_INDEX");

	/* .env stands for the environment: it also beats the top level */
	const char *env = write_file("dotenv", "SYNC_BATCH_SIZE=77\n");
	char envpath[4096];
	snprintf(envpath, sizeof(envpath), "%s", env);
	CHECK(config_set_load(&set, write_file("good.yaml", good_yaml), envpath, &e) == RC_OK);
	CHECK(set && set->mirrors[0]->sync_batch_size == 77 &&
	      set->mirrors[1]->sync_batch_size == 500);
	/* and is warned of like it, naming .env (QA8c F2) */
	CHECK(set && set->n_warnings == 1 &&
	      strstr(set->warnings[0], ":5: sync_batch_size is "
	                               "overridden by ") &&
	      strstr(set->warnings[0], "dotenv's SYNC_BATCH_SIZE: every mirror"));
	config_set_free(set);
	set = NULL;
	/* a global key's warning does not talk of mirrors (QA8c F6) */
	setenv("STATE_DB", "/tmp/from-env.db", 1);
	CHECK(config_set_load(&set, write_file("good.yaml", good_yaml), NULL, &e) == RC_OK);
	CHECK(
	    set && set->n_warnings == 1 &&
	    strstr(set->warnings[0], ":4: state_db is overridden by the environment's STATE_DB") &&
	    strstr(set->warnings[0], "mirror") == NULL);
	config_set_free(set);
	unsetenv("STATE_DB");
}

static void
test_no_file(void)
{
	struct config_set *set = NULL;
	struct config *one = NULL;
	struct rerror e = {0};
	struct buf a = {0}, b = {0};

	/* no file: the environment defines one mirror "default", as config_load */
	setenv("MONGODB_COLLECTION", "ads", 1);
	CHECK(config_set_load(&set, NULL, NULL, &e) == RC_OK);
	CHECK(config_load(&one, NULL, &e) == RC_OK);
	if (set && one) {
		CHECK(set->file == NULL && set->n_mirrors == 1);
		CHECK_STR(set->mirrors[0]->name, "default");
		CHECK_STR(one->name, "default");
		CHECK_STR(set->mirrors[0]->mongodb_collection, "ads");
		CHECK(config_dump_env(set->mirrors[0], &a) == RC_OK);
		CHECK(config_dump_env(one, &b) == RC_OK);
		CHECK(a.data && b.data && strcmp(a.data, b.data) == 0);
	}
	config_set_free(set);
	config_free(one);
	buf_free(&a);
	buf_free(&b);
	unsetenv("MONGODB_COLLECTION");

	/* a file without mirrors: its top level is the one mirror "default" */
	set = NULL;
	CHECK(config_set_load(&set, write_file("flat.yaml", "mongodb_collection: flat\n"), NULL,
	                      &e) == RC_OK);
	CHECK(set && set->n_mirrors == 1 && strcmp(set->mirrors[0]->name, "default") == 0 &&
	      strcmp(set->mirrors[0]->mongodb_collection, "flat") == 0);
	config_set_free(set);
	/* an empty file (comments only): the defaults */
	set = NULL;
	CHECK(config_set_load(&set, write_file("empty.yaml", "# nothing yet\n"), NULL, &e) ==
	      RC_OK);
	CHECK(set && set->n_mirrors == 1 && set->mirrors[0]->sync_batch_size == 100);
	config_set_free(set);

	config_set_free(NULL);
	config_free(NULL);
}

/* A bad file: RC_ERR_CONFIG, nothing returned, and each wanted piece (file
 * name and line, key, what is allowed) in the message. */
static void
bad(const char *text, const char *line, const char *key, const char *allowed)
{
	struct config_set *set = NULL;
	struct rerror e = {0};
	char where[4200];
	bool ok;

	write_file("bad.yaml", text);
	snprintf(where, sizeof(where), "%s:%s: ", path, line);
	CHECK(config_set_load(&set, path, NULL, &e) == RC_ERR_CONFIG);
	CHECK(set == NULL);
	ok = strstr(e.message, where) == e.message && strstr(e.message, key) &&
	     strstr(e.message, allowed);
	CHECK(ok);
	if (!ok)
		fprintf(stderr, "  want %s ... %s ... %s\n  message: %s\n", where, key, allowed,
		        e.message);
	config_set_free(set);
}

/* Two mirrors into one index: each must select its own documents
 * (OPENSEARCH_QUERY), or each deletes the other's copies as orphans. */
static void
test_shared_index(void)
{
	struct config_set *set = NULL;
	struct rerror e = {0};

	write_file("shared.yaml", "mirrors:\n  - name: a\n    mongodb_collection: ads\n"
	                          "    opensearch_index: shared\n  - name: b\n"
	                          "    mongodb_collection: users\n    opensearch_index: shared\n");
	CHECK(config_set_load(&set, path, NULL, &e) == RC_ERR_CONFIG && set == NULL);
	CHECK(strstr(e.message, path) && strstr(e.message, "mirrors a (line 2) and b") &&
	      strstr(e.message, "opensearch_query"));
	write_file("shared.yaml",
	           "mirrors:\n  - name: a\n    opensearch_index: shared\n"
	           "    opensearch_query: '{\"term\": {\"source\": \"a\"}}'\n  - name: b\n"
	           "    opensearch_index: shared\n"
	           "    opensearch_query: '{\"term\": {\"source\": \"a\"}}'\n");
	CHECK(config_set_load(&set, path, NULL, &e) == RC_ERR_CONFIG && set == NULL);
	CHECK(strstr(e.message, "the same opensearch_query") != NULL);
	write_file("shared.yaml",
	           "mirrors:\n  - name: a\n    opensearch_index: shared\n"
	           "    opensearch_query: '{\"term\": {\"source\": \"a\"}}'\n  - name: b\n"
	           "    opensearch_index: shared\n"
	           "    opensearch_query: '{\"term\": {\"source\": \"b\"}}'\n"
	           "  - name: c\n    opensearch_index: other\n");
	CHECK(config_set_load(&set, path, NULL, &e) == RC_OK && set && set->n_mirrors == 3);
	config_set_free(set);
}

/* QA F1: one cluster or one query spelled two ways is still one: the check
 * compares URLs and queries as what they mean, and names file, line, key. */
static void
shared(const char *url_a, const char *url_b, const char *q_a, const char *q_b, const char *want)
{
	struct config_set *set = NULL;
	struct rerror e = {0};
	char text[2000], where[4200];

	snprintf(text, sizeof(text),
	         "mirrors:\n  - name: a\n    opensearch_index: shared\n"
	         "    opensearch_url: '%s'\n    opensearch_query: '%s'\n"
	         "  - name: b\n    opensearch_index: shared\n"
	         "    opensearch_url: '%s'\n    opensearch_query: '%s'\n",
	         url_a, q_a, url_b, q_b);
	write_file("shared2.yaml", text);
	rcode rc = config_set_load(&set, path, NULL, &e);
	if (want == NULL) {
		CHECK(rc == RC_OK);
		if (rc)
			fprintf(stderr, "  %s / %s: %s\n", url_a, url_b, e.message);
		config_set_free(set);
		return;
	}
	snprintf(where, sizeof(where), "%s:6: mirror b: opensearch_query: mirrors a (line 2) and b",
	         path);
	CHECK(rc == RC_ERR_CONFIG && set == NULL && strstr(e.message, where) == e.message &&
	      strstr(e.message, want));
	if (rc != RC_ERR_CONFIG || strstr(e.message, want) == NULL ||
	    strstr(e.message, where) != e.message)
		fprintf(stderr, "  %s / %s: want %s\n  message: %s\n", url_a, url_b, want,
		        e.message);
	config_set_free(set);
}

static void
test_shared_index_spellings(void)
{
	const char *q = "{\"term\": {\"source\": \"ads\"}}";
	char *k;

	shared("http://127.0.0.1:9660", "http://localhost:9660", "", "", "are one cluster");
	shared("http://127.0.0.1:9660", "http://LocalHost:9660/", "", "", "each needs");
	shared("http://[::1]:9200", "http://localhost:9200", "", "", "each needs");
	shared("http://search", "http://SEARCH:80//", "", "", "each needs");
	shared("https://search", "https://search:443", "", "", "each needs");
	shared("http://u:secret@search:9200", "http://search:9200", "", "", "each needs");
	shared("http://search:9200", "http://search:9200", q, "{\"term\":{\"source\":\"ads\"}}",
	       "same opensearch_query (compared as JSON)");
	shared("http://search:9200", "http://search:9200",
	       "{\"bool\": {\"must\": [1], \"filter\": {\"a\": 1.0}}}",
	       "{\"bool\":{\"filter\":{\"a\":1},\"must\":[1]}}", "same opensearch_query");
	/* a query that matches everything is as none (QA8c F4) */
	shared("http://search:9200", "http://search:9200", "{\"match_all\": {}}", q, "each needs");
	shared("http://search:9200", "http://search:9200", q,
	       "{\"bool\": {\"filter\": [{\"match_all\": {\"boost\": 1}}], \"must_not\": []}}",
	       "each needs");
	shared("HTTP://search:9200", "http://search:9200", q,
	       "{\"constant_score\": {\"filter\": {\"match_all\": {}}}}", "each needs");
	/* told apart: other port, host, or query (a path is refused at load) */
	shared("http://search:9200", "http://search:9201", "", "", NULL);
	shared("http://search:9200", "http://other:9200", "", "", NULL);
	shared("http://proxy-a", "http://proxy-b", "", "", NULL);
	shared("http://search:9200", "http://search:9200", q, "{\"term\":{\"source\":\"b\"}}",
	       NULL);
	/* the password never shows in the message */
	{
		struct config_set *set = NULL;
		struct rerror e = {0};
		write_file("shared3.yaml", "mirrors:\n  - name: a\n    opensearch_index: s\n"
		                           "    opensearch_url: http://u:hunter2@127.0.0.1:9200\n"
		                           "  - name: b\n    opensearch_index: s\n"
		                           "    opensearch_url: http://localhost:9200\n");
		CHECK(config_set_load(&set, path, NULL, &e) == RC_ERR_CONFIG);
		CHECK(strstr(e.message, "hunter2") == NULL && strstr(e.message, "one cluster"));
		config_set_free(set);
	}
	/* equal queries need not be neighbours in the file */
	{
		struct config_set *set = NULL;
		struct rerror e = {0};
		write_file("shared4.yaml",
		           "mirrors:\n  - name: a\n    opensearch_index: s\n"
		           "    opensearch_query: '{\"term\": {\"x\": 1}}'\n"
		           "  - name: b\n    opensearch_index: s\n"
		           "    opensearch_query: '{\"term\": {\"x\": 2}}'\n"
		           "  - name: c\n    opensearch_index: s\n"
		           "    opensearch_query: '{ \"term\" : { \"x\" : 1 } }'\n");
		CHECK(config_set_load(&set, path, NULL, &e) == RC_ERR_CONFIG);
		CHECK(
		    strstr(e.message, ":8: mirror c: opensearch_query: mirrors a (line 2) and c"));
		config_set_free(set);
	}
	k = config_url_key("http://User:pw@127.0.0.1:9200/");
	CHECK(k && strcmp(k, "localhost:9200/") == 0);
	free(k);
	k = config_url_key("https://Search.Example/os/");
	CHECK(k && strcmp(k, "search.example:443/os") == 0);
	free(k);
	CHECK(!config_queries_distinct("", "{\"a\":1}"));
	CHECK(!config_queries_distinct("{\"a\": 1, \"b\": 2}", "{\"b\":2,\"a\":1}"));
	CHECK(config_queries_distinct("{\"a\": 1}", "{\"a\": 2}"));
	CHECK(!config_queries_distinct("{\"match_all\": {}}", "{\"a\": 2}"));
	CHECK(!config_queries_distinct("{\"a\": 1}", "{}"));
	CHECK(!config_queries_distinct("{\"a\": 1}", "{\"bool\": {\"should\": [{\"a\": 1}, "
	                                             "{\"match_all\": {}}]}}"));
	/* an empty must makes should required: a real query (review) */
	CHECK(config_queries_distinct("{\"a\": 1}", "{\"bool\": {\"must\": [], \"should\": "
	                                            "[{\"b\": 1}]}}"));
	/* a bool that excludes or requires something is a real query */
	CHECK(config_queries_distinct("{\"a\": 1}", "{\"bool\": {\"must_not\": [{\"a\": 1}]}}"));
	CHECK(config_queries_distinct("{\"a\": 1}", "{\"bool\": {\"must\": [{\"match_all\": "
	                                            "{}}, {\"b\": 1}]}}"));
	CHECK(config_queries_distinct("{\"a\": 1}", "{\"bool\": {\"filter\": {\"match_all\": "
	                                            "{}}, \"should\": [{\"b\": 1}], "
	                                            "\"minimum_should_match\": 1}}"));
}

/* The plain tags are taken as their text says. */
static void
test_plain_tags(void)
{
	struct config_set *set = NULL;
	struct rerror e = {0};

	CHECK(config_set_load(&set,
	                      write_file("tags.yaml", "sync_batch_size: !!int 7\n"
	                                              "mongodb_database: !!str 123\n"),
	                      NULL, &e) == RC_OK);
	CHECK(set && set->mirrors[0]->sync_batch_size == 7 &&
	      strcmp(set->mirrors[0]->mongodb_database, "123") == 0);
	config_set_free(set);
	unlink(path);
}

static void
test_bad_files(void)
{
	/* YAML syntax */
	bad("mirrors:\n  - name: ads\n    opensearch_index: [ads\n", "4", "YAML syntax error",
	    "flow sequence at line 3");
	bad("mongodb_collection: ads\n  opensearch_index: ads\n", "2", "YAML syntax error",
	    "mapping values are not allowed");
	bad("port: \"3000\n", "2", "YAML syntax error", "quoted scalar");
	bad("opensearch_index: \"a\xff\"\n", "1", "not YAML text", "UTF-8");
	bad("a: 1\n---\nb: 2\n", "3", "second YAML document", "holds one");
	bad("- a\n- b\n", "1", "top level", "mirrors:");
	/* unknown keys, with the nearest allowed one */
	bad("mongodb_colection: ads\n", "1", "\"mongodb_colection\"",
	    "did you mean mongodb_collection");
	bad("MONGODB_URI: mongodb://h\n", "1", "\"MONGODB_URI\"", "lower case");
	bad("mirrors:\n  - name: a\n    opensearch_idx: x\n", "3", "\"opensearch_idx\"",
	    "did you mean opensearch_index");
	bad("mirrors:\n  - name: a\n    frobnicate: 1\n", "3", "\"frobnicate\"",
	    "per-mirror setting");
	/* a YAML tag that is not a plain one is refused, not dropped (QA8b F12) */
	bad("mongodb_database: !!binary cWE=\n", "1", "mongodb_database", "tag !!binary");
	bad("mirrors:\n  - name: a\n    opensearch_index: !mine x\n", "3",
	    "mirror a: opensearch_index", "tag !mine");
	/* keys given twice */
	bad("port: 1\nlog_dir: x\nport: 2\n", "3", "port", "first at line 1");
	bad("mirrors:\n  - name: a\n    sync_batch_size: 1\n    sync_batch_size: 2\n", "4",
	    "mirror a: sync_batch_size", "first at line 3");
	/* mirror names: duplicate, invalid, missing */
	bad("mirrors:\n  - name: ads\n    opensearch_index: a\n  - name: ads\n", "4", "name",
	    "\"ads\" is already defined at line 2");
	bad("mirrors:\n  - name: Ads!\n", "2", "name", "1 to 63 of a-z, 0-9, _ and -");
	bad("mirrors:\n  - name: -ads\n", "2", "name", "starting with a letter or digit");
	bad("mirrors:\n  - name: \"\"\n", "2", "name", "1 to 63");
	bad("mirrors:\n  - opensearch_index: x\n", "2", "name", "missing");
	bad("mirrors:\n  - name: [a]\n", "2", "name", "one value");
	/* a global setting inside a mirror */
	bad("mirrors:\n  - name: a\n    state_db: x.db\n", "3", "mirror a: state_db",
	    "global: state_db, http_bind, port, api_token, api_token_read, log_level, log_dir");
	bad("mirrors:\n  - name: a\n    api_token: x\n", "3", "api_token", "top level");
	/* bad values: the table's bounds and words */
	bad("sync_batch_size: 0\n", "1", "sync_batch_size: \"0\"", "an integer from 1 to 10000");
	bad("mirrors:\n  - name: a\n    sync_batch_size: lots\n", "3",
	    "mirror a: sync_batch_size: \"lots\"", "an integer from 1 to 10000");
	bad("mirrors:\n  - name: a\n\n    reconcile_orphans: purge\n", "4", "reconcile_orphans",
	    "one of report, delete");
	bad("log_level: loud\n", "1", "log_level", "one of error, warn, info, debug");
	bad("opensearch_tls_verify: maybe\n", "1", "opensearch_tls_verify", "true or false");
	bad("port: 70000\n", "1", "port", "0 to 65535");
	bad("opensearch_url: localhost:9200\n", "1", "opensearch_url", "http://");
	bad("mirrors:\n  - name: a\n    opensearch_index:\n", "3", "opensearch_index",
	    "a non-empty string");
	bad("mirrors:\n  - name: a\n    sync_batch_size: {n: 1}\n", "3", "sync_batch_size",
	    "one value, not a mapping");
	bad("opensearch_index: \"a\\0b\"\n", "1", "opensearch_index", "NUL");
	/* the shape of mirrors */
	bad("mirrors: []\n", "1", "mirrors", "at least one mirror");
	bad("mirrors:\n", "1", "mirrors", "a list of mirrors");
	bad("mirrors: {name: a}\n", "1", "mirrors", "a list of mirrors");
	bad("mirrors:\n  - ads\n", "2", "mirrors", "a mapping");
	bad("? [a, b]\n: 1\n", "1", "key", "plain word");

	/* a file that is not there */
	struct config_set *set = NULL;
	struct rerror e = {0};
	CHECK(config_set_load(&set, "/nonexistent/reconciler.yaml", NULL, &e) == RC_ERR_CONFIG);
	CHECK(set == NULL && strstr(e.message, "/nonexistent/reconciler.yaml: cannot read"));
}

static void
test_masking(void)
{
	struct config_set *set = NULL;
	struct rerror e = {0};
	struct buf b = {0};

	CHECK(config_set_load(&set,
	                      write_file("secret.yaml",
	                                 "mongodb_uri: mongodb://app:s3cret-pw@db:27017/\n"
	                                 "api_token: tok-abcdef\n"
	                                 "mirrors:\n  - name: a\n"
	                                 "    opensearch_password: os-pass-123\n"),
	                      NULL, &e) == RC_OK);
	if (set) {
		CHECK(config_set_dump_yaml(set, &b) == RC_OK);
		CHECK(b.data && !strstr(b.data, "s3cret-pw") && !strstr(b.data, "tok-abcdef") &&
		      !strstr(b.data, "os-pass-123"));
		CHECK(b.data && strstr(b.data, "mongodb_uri: \"mongodb://app:***@db:27017/\""));
		buf_reset(&b);
		CHECK(config_set_dump_json(set, &b) == RC_OK);
		CHECK(b.data && !strstr(b.data, "s3cret-pw") && !strstr(b.data, "tok-abcdef") &&
		      !strstr(b.data, "os-pass-123") && strstr(b.data, "\"name\":\"a\""));
	}
	config_set_free(set);
	buf_free(&b);
	/* a bad URI in a file does not show its password either */
	set = NULL;
	CHECK(config_set_load(&set,
	                      write_file("secret.yaml", "mirrors:\n  - name: a\n"
	                                                "    mongodb_uri: mongo://u:hunter22@h\n"),
	                      NULL, &e) == RC_ERR_CONFIG);
	CHECK(strstr(e.message, "hunter22") == NULL &&
	      strstr(e.message, ":3: mirror a: mongodb_uri"));
	CHECK(config_set_load(&set, write_file("secret.yaml", "opensearch_password: [hunter22]\n"),
	                      NULL, &e) == RC_ERR_CONFIG);
	CHECK(strstr(e.message, "hunter22") == NULL);
}

static void
test_dump_round_trip(void)
{
	/* the YAML `reconciler config` prints is a configuration file itself */
	struct config_set *a = NULL, *b = NULL;
	struct rerror e = {0};
	struct buf one = {0}, two = {0};

	CHECK(config_set_load(&a, write_file("good.yaml", good_yaml), NULL, &e) == RC_OK);
	CHECK(a && config_set_dump_yaml(a, &one) == RC_OK);
	CHECK(config_set_load(&b, write_file("dumped.yaml", one.data ? one.data : ""), NULL, &e) ==
	      RC_OK);
	if (b == NULL)
		fprintf(stderr, "  message: %s\n", e.message);
	CHECK(b && b->n_mirrors == 3 && config_set_dump_yaml(b, &two) == RC_OK);
	/* equal but for the first line, which names the file */
	CHECK(one.data && two.data && strcmp(strchr(one.data, '\n'), strchr(two.data, '\n')) == 0);
	config_set_free(a);
	config_set_free(b);
	buf_free(&one);
	buf_free(&two);
}

static void
test_default_file(void)
{
	char cwd[4096];

	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	CHECK(chdir(dir) == 0);
	unsetenv("RECONCILER_CONFIG");
	CHECK(config_file_default() == NULL);
	write_file("reconciler.yaml", "mirrors:\n  - name: a\n");
	CHECK(config_file_default() && strcmp(config_file_default(), "reconciler.yaml") == 0);
	setenv("RECONCILER_CONFIG", "/etc/other.yaml", 1);
	CHECK(config_file_default() && strcmp(config_file_default(), "/etc/other.yaml") == 0);
	setenv("RECONCILER_CONFIG", "",
	       1); /* set but empty: no file, even with ./reconciler.yaml */
	CHECK(config_file_default() == NULL);
	unsetenv("RECONCILER_CONFIG");
	unlink("reconciler.yaml");
	CHECK(chdir(cwd) == 0);
}

static void
test_names(void)
{
	char long_name[80];

	CHECK(config_mirror_name_valid("default"));
	CHECK(config_mirror_name_valid("ads-v2_x"));
	CHECK(config_mirror_name_valid("0"));
	CHECK(!config_mirror_name_valid(""));
	CHECK(!config_mirror_name_valid(NULL));
	CHECK(!config_mirror_name_valid("Ads"));
	CHECK(!config_mirror_name_valid("_ads"));
	CHECK(!config_mirror_name_valid("a b"));
	CHECK(!config_mirror_name_valid("a/b"));
	memset(long_name, 'a', 63);
	long_name[63] = '\0';
	CHECK(config_mirror_name_valid(long_name));
	long_name[63] = 'a';
	long_name[64] = '\0';
	CHECK(!config_mirror_name_valid(long_name));
}

static void
test_example(void)
{
	/* examples/reconciler.yaml: two collections into two indexes, and one
	 * collection into a second index with its own settings */
	const char *src = getenv("RECONCILER_SOURCE_DIR");
	char example[4096];
	struct config_set *set = NULL;
	struct rerror e = {0};

	snprintf(example, sizeof(example), "%s/examples/reconciler.yaml", src ? src : ".");
	CHECK(config_set_load(&set, example, NULL, &e) == RC_OK);
	if (set == NULL) {
		fprintf(stderr, "  message: %s\n", e.message);
		return;
	}
	CHECK(set->n_mirrors == 3);
	const struct config *ads = config_set_find(set, "ads"),
	                    *users = config_set_find(set, "users"),
	                    *second = config_set_find(set, "ads-search");
	CHECK(ads && users && second);
	if (ads && users && second) {
		CHECK(strcmp(ads->mongodb_collection, users->mongodb_collection) != 0);
		CHECK(strcmp(ads->opensearch_index, users->opensearch_index) != 0);
		CHECK_STR(second->mongodb_collection, ads->mongodb_collection);
		CHECK(strcmp(second->opensearch_index, ads->opensearch_index) != 0);
		CHECK(second->orphans != ads->orphans);
	}
	config_set_free(set);
}

/* Issue 24 item 8: a name with a settings' prefix that is no setting, in
 * the environment or in .env, is a warning with the nearest name (as a
 * YAML key's typo is); a name with another prefix is none of ours. */
static void
test_unknown_names(void)
{
	struct config_set *set = NULL;
	struct rerror e = {0};
	const char *env = write_file("dotenv", "# typos\nRECONCILE_ORPHAN=delete\nOTHER_TOOL=1\n");
	bool dotenv = false, environ_typo = false, other = false;

	setenv("SYNC_BATCH_SIZ", "10", 1);
	setenv("HTTP_PROXY", "http://proxy:3128", 1); /* curl's, not a typo of HTTP_BIND */
	CHECK(config_set_load(&set, NULL, env, &e) == RC_OK);
	for (size_t i = 0; set && i < set->n_warnings; i++) {
		const char *w = set->warnings[i];
		dotenv |= strstr(w, "dotenv:2: RECONCILE_ORPHAN is not a setting (did you mean "
		                    "RECONCILE_ORPHANS?)") != NULL;
		environ_typo |= strstr(w, "the environment: SYNC_BATCH_SIZ is not a setting (did "
		                          "you mean SYNC_BATCH_SIZE?)") != NULL;
		other |= strstr(w, "OTHER_TOOL") || strstr(w, "HTTP_PROXY");
	}
	CHECK(dotenv);
	CHECK(environ_typo);
	CHECK(!other);
	config_set_free(set);
	unsetenv("SYNC_BATCH_SIZ");
	unsetenv("HTTP_PROXY");
}

static void
test_markdown(void)
{
	struct buf b = {0};

	CHECK(config_dump_markdown(&b) == RC_OK);
	CHECK(b.data && strstr(b.data, "| `STATE_DB` | global |"));
	CHECK(b.data && strstr(b.data, "| `MONGODB_COLLECTION` | per mirror, binds a run |"));
	CHECK(b.data && strstr(b.data, "| `SYNC_BATCH_DELAY_MS` | per mirror |"));
	CHECK(b.data && strstr(b.data, "```yaml\n"));
	buf_free(&b);
}

int
main(void)
{
	CHECK(mkdtemp(dir) != NULL);
	test_good_file();
	test_env_overrides();
	test_plain_tags();
	test_no_file();
	test_bad_files();
	test_shared_index();
	test_shared_index_spellings();
	test_masking();
	test_dump_round_trip();
	test_default_file();
	test_names();
	test_example();
	test_markdown();
	test_unknown_names();
	unlink(write_file("good.yaml", ""));
	unlink(write_file("bad.yaml", ""));
	unlink(write_file("flat.yaml", ""));
	unlink(write_file("empty.yaml", ""));
	unlink(write_file("secret.yaml", ""));
	unlink(write_file("dumped.yaml", ""));
	unlink(write_file("dotenv", ""));
	unlink(write_file("shared.yaml", ""));
	unlink(write_file("shared2.yaml", ""));
	unlink(write_file("shared3.yaml", ""));
	unlink(write_file("shared4.yaml", ""));
	rmdir(dir);
	return check_done("test_config_file");
}
