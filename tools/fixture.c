/*
 * reconciler-fixture: test and benchmark data, through the same libraries
 * the reconciler uses (libmongoc for MongoDB, the project's doc and
 * opensearch modules for the index).
 *
 *   load --count N [--start K] [--ids oid|string|int|mixed] [--size BYTES]
 *        [--shuffle]
 *        insert N realistic ad documents (nested, ~1 KB; --size 0: a title,
 *        a status and updatedAt, ~100 bytes) with ids K..K+N-1;
 *        --shuffle inserts them in a random-looking id order (number
 *        K + (i * P mod N), P a prime N is not a multiple of), so an index
 *        written in insertion order holds them scattered, as a production
 *        index written by a live syncer does
 *   sync [--skip-every K] [--natural]   index every MongoDB document
 *        (leaving out every K-th one, to inject missing documents), then
 *        refresh; in _id order, or with --natural in the collection's
 *        natural (insertion) order
 *   command JSON            run a database command (extended JSON), print the reply
 *   nested ID DEPTH         insert a document nested DEPTH levels deep (deeper than
 *                           extended JSON can say)
 *   ids [--range LO HI]     print "canonical-id<TAB>type<TAB>version" in _id order
 *   idof N [oid|string|int] print the canonical id the loader gives number N
 *   os-ids [--range LO HI]  stream the index's ids in key order (raw cost of the index side)
 *        --range: only the ObjectIds in [LO, HI) ("-": open on that side),
 *        as a partition reads them (tools/bench-partitions)
 *   os-dump                 every copy's whole _source in key order, to stdout (raw cost)
 *   dump                    the collection as _bulk NDJSON on stdout (for bulk-file)
 *   bulk-file FILE [--batch N]  send FILE's actions with _bulk, N per request
 *                           (the raw cost of indexing, without MongoDB)
 *   big KIND N --id K       insert one pathological document with the loader's
 *                           id K: KIND bytes (N bytes of BSON, 1 KB strings),
 *                           fields (N top-level fields), depth (objects N deep),
 *                           array (one array of N numbers)
 *
 * Settings are the reconciler's own (MONGODB_URI, OPENSEARCH_URL, ...).
 */
#include "config.h"
#include "diff.h"
#include "doc.h"
#include "mongo.h"
#include "opensearch.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include <mongoc/mongoc.h>

static const char *words[] = {"summer", "sale",  "running", "shoes",  "discount", "travel",
                              "hotel",  "city",  "coffee",  "bundle", "premium",  "fresh",
                              "garden", "tools", "kids",    "books",  "music",    "festival"};

static void
make_id(bson_t *doc, int64_t n, const char *kind)
{
	char text[32];
	bson_oid_t oid;
	const char *k = kind;

	if (strcmp(kind, "mixed") == 0)
		k = n % 3 == 0 ? "oid" : n % 3 == 1 ? "string" : "int";
	if (strcmp(k, "oid") == 0) {
		/* time 2024-01-01 plus n seconds, then a counter: sorted by n */
		snprintf(text, sizeof(text), "%08" PRIx64 "%016" PRIx64,
		         (uint64_t)1704067200 + (uint64_t)n / 1000, (uint64_t)n);
		bson_oid_init_from_string(&oid, text);
		BSON_APPEND_OID(doc, "_id", &oid);
	} else if (strcmp(k, "string") == 0) {
		snprintf(text, sizeof(text), "doc-%09" PRId64, n);
		BSON_APPEND_UTF8(doc, "_id", text);
	} else {
		BSON_APPEND_INT64(doc, "_id", n);
	}
}

static void
make_doc(bson_t *doc, int64_t n, const char *idkind, int size)
{
	bson_t sub, arr, item;
	char text[2048], key[16];
	const char *kp;
	int64_t base = 1704067200000LL + n * 1000;

	make_id(doc, n, idkind);
	snprintf(text, sizeof(text), "%s %s %s #%" PRId64, words[n % 18], words[(n / 18) % 18],
	         words[(n / 324) % 18], n);
	BSON_APPEND_UTF8(doc, "title", text);
	if (size == 0) { /* --size 0: small documents (about 100 bytes) */
		BSON_APPEND_UTF8(doc, "status", n % 5 ? "active" : "paused");
		BSON_APPEND_DATE_TIME(doc, "updatedAt", base);
		return;
	}
	size_t len = 0;
	for (int i = 0; len + 12 < (size_t)size / 2 && len + 12 < sizeof(text); i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s ",
		                        words[(n + i * 7) % 18]);
	BSON_APPEND_UTF8(doc, "description", text);
	BSON_APPEND_DOCUMENT_BEGIN(doc, "advertiser", &sub);
	BSON_APPEND_INT32(&sub, "id", (int32_t)(n % 1000));
	BSON_APPEND_UTF8(&sub, "name", words[n % 7]);
	BSON_APPEND_UTF8(&sub, "country", n % 2 ? "DE" : "FR");
	bson_append_document_end(doc, &sub);
	BSON_APPEND_DOCUMENT_BEGIN(doc, "campaign", &sub);
	BSON_APPEND_DOUBLE(&sub, "budget", (double)(n % 10000) / 7.0);
	BSON_APPEND_UTF8(&sub, "currency", "EUR");
	BSON_APPEND_DATE_TIME(&sub, "start", base);
	BSON_APPEND_DATE_TIME(&sub, "end", base + 86400000LL * 30);
	bson_append_document_end(doc, &sub);
	BSON_APPEND_DOCUMENT_BEGIN(doc, "targeting", &sub);
	BSON_APPEND_ARRAY_BEGIN(&sub, "interests", &arr);
	for (uint32_t i = 0; i < 4; i++) {
		bson_uint32_to_string(i, &kp, key, sizeof(key));
		BSON_APPEND_UTF8(&arr, kp, words[(n + i) % 18]);
	}
	bson_append_array_end(&sub, &arr);
	BSON_APPEND_ARRAY_BEGIN(&sub, "ages", &arr);
	BSON_APPEND_INT32(&arr, "0", 18 + (int32_t)(n % 10));
	BSON_APPEND_INT32(&arr, "1", 35 + (int32_t)(n % 20));
	bson_append_array_end(&sub, &arr);
	bson_append_document_end(doc, &sub);
	BSON_APPEND_ARRAY_BEGIN(doc, "creatives", &arr);
	for (uint32_t i = 0; i < 2; i++) {
		bson_uint32_to_string(i, &kp, key, sizeof(key));
		BSON_APPEND_DOCUMENT_BEGIN(&arr, kp, &item);
		BSON_APPEND_UTF8(&item, "type", i ? "video" : "banner");
		snprintf(text, sizeof(text), "https://cdn.example.com/c/%" PRId64 "/%u.png", n, i);
		BSON_APPEND_UTF8(&item, "url", text);
		BSON_APPEND_INT32(&item, "width", 300 + (int32_t)i * 428);
		BSON_APPEND_INT32(&item, "height", 250 + (int32_t)i * 340);
		bson_append_document_end(&arr, &item);
	}
	bson_append_array_end(doc, &arr);
	BSON_APPEND_DOCUMENT_BEGIN(doc, "stats", &sub);
	BSON_APPEND_INT64(&sub, "impressions", n * 37);
	BSON_APPEND_INT32(&sub, "clicks", (int32_t)(n % 5000));
	BSON_APPEND_DOUBLE(&sub, "ctr", (double)(n % 97) / 1000.0);
	bson_append_document_end(doc, &sub);
	BSON_APPEND_UTF8(doc, "status", n % 5 ? "active" : "paused");
	BSON_APPEND_DATE_TIME(doc, "createdAt", base);
	BSON_APPEND_DATE_TIME(doc, "updatedAt", base);
}

static int
die(const char *what, const char *msg)
{
	fprintf(stderr, "fixture: %s: %s\n", what, msg);
	return 1;
}

static mongoc_client_t *
client_for(const struct config *cfg)
{
	mongoc_client_t *c = mongoc_client_new(cfg->mongodb_uri);
	if (c)
		mongoc_client_set_appname(c, "reconciler-fixture");
	return c;
}

static int
cmd_load(const struct config *cfg, int argc, char **argv)
{
	int64_t count = 0, start = 0, size = 1000, prime = 1;
	const char *ids = "oid";
	mongoc_client_t *client;
	mongoc_collection_t *coll;
	bson_error_t e;
	int rc = 0;

	for (int i = 0; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : "";
		if (!strcmp(argv[i], "--shuffle"))
			prime = 1000003; /* a prime: i -> i * P mod N is a permutation */
		else if (!strcmp(argv[i], "--count") && ++i)
			count = atoll(v);
		else if (!strcmp(argv[i], "--start") && ++i)
			start = atoll(v);
		else if (!strcmp(argv[i], "--ids") && ++i)
			ids = v;
		else if (!strcmp(argv[i], "--size") && ++i)
			size = atoll(v);
		else
			return die("load", "usage: load --count N [--start K] [--ids KIND] "
			                   "[--size BYTES] [--shuffle]");
	}
	if (prime > 1 && count > 0 && count % prime == 0)
		return die("load", "--shuffle: N must not be a multiple of 1000003");
	client = client_for(cfg);
	if (client == NULL)
		return die("load", "bad MONGODB_URI");
	coll = mongoc_client_get_collection(client, cfg->mongodb_database, cfg->mongodb_collection);
	for (int64_t at = start; at < start + count && rc == 0; at += 1000) {
		int64_t n = start + count - at < 1000 ? start + count - at : 1000;
		bson_t **docs = calloc((size_t)n, sizeof(*docs));
		for (int64_t i = 0; i < n; i++) {
			docs[i] = bson_new();
			int64_t k = (at + i - start) % count;
			make_doc(docs[i], start + (int64_t)((__int128)k * prime % count), ids,
			         (int)size);
		}
		if (!mongoc_collection_insert_many(coll, (const bson_t **)docs, (size_t)n, NULL,
		                                   NULL, &e))
			rc = die("insert", e.message);
		for (int64_t i = 0; i < n; i++)
			bson_destroy(docs[i]);
		free(docs);
	}
	mongoc_collection_destroy(coll);
	mongoc_client_destroy(client);
	return rc;
}

/* Appends an index action and the document to body, as the reconciler
 * writes them; a document it cannot convert is left out, with a word on
 * stderr (the body is rolled back). */
static rcode
index_action(struct buf *body, const bson_t *doc, const bson_value_t *idv, const char *id_field,
             struct buf *idtext, enum id_type *type)
{
	struct rerror err = {0};
	size_t mark = body->len;
	rcode rc = doc_id_canonical(idv, idtext, type);

	if (rc == RC_OK)
		rc = buf_puts(body, "{\"index\":{\"_id\":");
	if (rc == RC_OK)
		rc = doc_json_string(body, idtext->data, idtext->len);
	if (rc == RC_OK)
		rc = buf_puts(body, "}}\n");
	if (rc == RC_OK)
		rc = doc_to_json(doc, id_field, idtext->data, body, &err);
	if (rc == RC_OK)
		rc = buf_puts(body, "\n");
	if (rc) {
		fprintf(stderr, "fixture: document %s left out: %s\n",
		        idtext->data ? idtext->data : "?",
		        *err.message ? err.message : rcode_name(rc));
		body->len = mark;
		if (body->data)
			body->data[mark] = '\0';
	}
	return rc;
}

/* Appends N levels of {"d": {"d": ... {"leaf": 1}}} under key. */
static bool
nest(bson_t *parent, const char *key, int64_t levels)
{
	bson_t child;
	bool ok;

	if (levels == 0)
		return BSON_APPEND_INT32(parent, key, 1);
	if (!BSON_APPEND_DOCUMENT_BEGIN(parent, key, &child))
		return false;
	ok = nest(&child, "d", levels - 1);
	return bson_append_document_end(parent, &child) && ok;
}

static int
cmd_big(const struct config *cfg, int argc, char **argv)
{
	int64_t n, id = 0;
	mongoc_client_t *client;
	mongoc_collection_t *coll;
	bson_t doc = BSON_INITIALIZER, arr;
	bson_error_t e;
	char key[32], text[1024];
	const char *kp;
	bool ok = true;
	int rc = 0;

	if (argc < 2 || (n = atoll(argv[1])) <= 0)
		return die("big", "usage: big bytes|fields|depth|array N [--id K]");
	if (argc == 4 && !strcmp(argv[2], "--id"))
		id = atoll(argv[3]);
	make_id(&doc, id, "oid");
	BSON_APPEND_DATE_TIME(&doc, "updatedAt", 1704067200000LL + id * 1000);
	BSON_APPEND_UTF8(&doc, "kind", argv[0]);
	if (!strcmp(argv[0], "bytes")) {
		memset(text, 'a' + (int)(id % 26), sizeof(text));
		BSON_APPEND_ARRAY_BEGIN(&doc, "text", &arr);
		/* N is the size of the whole BSON document */
		for (uint32_t i = 0; ok && (int64_t)(doc.len + arr.len) + 1100 < n; i++) {
			bson_uint32_to_string(i, &kp, key, sizeof(key));
			ok = bson_append_utf8(&arr, kp, -1, text, (int)sizeof(text));
		}
		ok = bson_append_array_end(&doc, &arr) && ok;
	} else if (!strcmp(argv[0], "fields")) {
		for (int64_t i = 0; ok && i < n; i++) {
			snprintf(key, sizeof(key), "f%" PRId64, i);
			ok = BSON_APPEND_INT64(&doc, key, i);
		}
	} else if (!strcmp(argv[0], "depth")) {
		ok = nest(&doc, "d", n);
	} else if (!strcmp(argv[0], "array")) {
		BSON_APPEND_ARRAY_BEGIN(&doc, "numbers", &arr);
		for (uint32_t i = 0; ok && i < (uint32_t)n; i++) {
			bson_uint32_to_string(i, &kp, key, sizeof(key));
			ok = bson_append_int32(&arr, kp, -1, (int32_t)i);
		}
		ok = bson_append_array_end(&doc, &arr) && ok;
	} else {
		bson_destroy(&doc);
		return die("big", "KIND is bytes, fields, depth or array");
	}
	if (!ok) {
		bson_destroy(&doc);
		return die("big", "the document does not fit in BSON");
	}
	client = client_for(cfg);
	if (client == NULL) {
		bson_destroy(&doc);
		return die("big", "bad MONGODB_URI");
	}
	coll = mongoc_client_get_collection(client, cfg->mongodb_database, cfg->mongodb_collection);
	if (!mongoc_collection_insert_one(coll, &doc, NULL, NULL, &e))
		rc = die("insert", e.message);
	else
		printf("%u\n", doc.len);
	mongoc_collection_destroy(coll);
	mongoc_client_destroy(client);
	bson_destroy(&doc);
	return rc;
}

static int
cmd_sync(const struct config *cfg, int argc, char **argv)
{
	int64_t skip_every = 0, n = 0;
	struct mongo *m = NULL;
	struct mongo_scan *scan = NULL;
	struct opensearch *os = NULL;
	struct rerror err = {0};
	struct buf body = {0}, idtext = {0};
	size_t items = 0;
	int rc = 0;
	bool natural = false;
	/* --natural: a plain find without sort (insertion order) */
	mongoc_client_t *client = NULL;
	mongoc_collection_t *coll = NULL;
	mongoc_cursor_t *cur = NULL;
	bson_t none = BSON_INITIALIZER;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--natural"))
			natural = true;
		else if (!strcmp(argv[i], "--skip-every") && i + 1 < argc)
			skip_every = atoll(argv[++i]);
		else
			return die("sync", "usage: sync [--skip-every K] [--natural]");
	}
	if (mongo_open(&m, cfg->mongodb_uri, cfg->mongodb_database, cfg->mongodb_collection,
	               &err) ||
	    opensearch_open(&os, cfg, &err) ||
	    (!natural && mongo_scan_open(&scan, m, NULL, ID_OID, NULL, true, 1000, false, &err))) {
		rc = die("sync", err.message);
		goto out;
	}
	if (natural) {
		client = client_for(cfg);
		if (client == NULL) {
			rc = die("sync", "bad MONGODB_URI");
			goto out;
		}
		coll = mongoc_client_get_collection(client, cfg->mongodb_database,
		                                    cfg->mongodb_collection);
		/* a batch size: mongo-java-server otherwise answers with one
		 * reply of every document (over the wire protocol's 48 MB) */
		bson_t *opts = BCON_NEW("batchSize", BCON_INT32(1000));
		cur = mongoc_collection_find_with_opts(coll, &none, opts, NULL);
		bson_destroy(opts);
	}
	for (;;) {
		const bson_t *doc;
		bson_iter_t it;
		enum id_type type;
		bson_error_t be;
		if (natural) {
			if (!mongoc_cursor_next(cur, &doc)) {
				doc = NULL;
				if (mongoc_cursor_error(cur, &be)) {
					rc = die("sync", be.message);
					goto out;
				}
			}
		} else if (mongo_scan_next(scan, &doc, &err)) {
			rc = die("sync", err.message);
			goto out;
		}
		if (doc && bson_iter_init_find(&it, doc, "_id")) {
			n++;
			if (skip_every && n % skip_every == 0)
				continue;
			buf_reset(&idtext);
			if (index_action(&body, doc, bson_iter_value(&it), cfg->opensearch_id_field,
			                 &idtext, &type) == RC_OK)
				items++;
		}
		if ((doc == NULL && items) || items == 1000) {
			struct bulk_result res;
			int attempts;
			if (opensearch_bulk(os, &res, &attempts, body.data, body.len, items, NULL,
			                    &err)) {
				rc = die("bulk", err.message);
				goto out;
			}
			for (size_t i = 0; i < res.n; i++)
				if (res.items[i].status >= 300)
					fprintf(stderr, "fixture: item rejected: %s\n",
					        res.items[i].reason ? res.items[i].reason : "?");
			bulk_result_free(&res);
			buf_reset(&body);
			items = 0;
		}
		if (doc == NULL)
			break;
	}
	if (opensearch_refresh(os, &err))
		rc = die("refresh", err.message);
out:
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	mongoc_client_destroy(client);
	bson_destroy(&none);
	buf_free(&body);
	buf_free(&idtext);
	mongo_scan_free(scan);
	mongo_free(m);
	opensearch_free(os);
	return rc;
}

/* {a: {a: ... {x: 1}}} depth levels deep, appended under key. */
static void
append_nested(bson_t *parent, const char *key, int depth)
{
	bson_t child;

	BSON_APPEND_DOCUMENT_BEGIN(parent, key, &child);
	if (depth > 1)
		append_nested(&child, "a", depth - 1);
	else
		BSON_APPEND_INT32(&child, "x", 1);
	bson_append_document_end(parent, &child);
}

/* Inserts {_id: ID, updatedAt: now, d: <DEPTH levels>}: deeper than
 * extended JSON's parser (and so `command`) can build. */
static int
cmd_nested(const struct config *cfg, int argc, char **argv)
{
	mongoc_client_t *client;
	mongoc_collection_t *coll;
	bson_error_t e;
	bson_t doc = BSON_INITIALIZER;
	int rc = 0;

	if (argc != 2 || atoi(argv[1]) < 1)
		return die("nested", "usage: nested ID DEPTH");
	BSON_APPEND_UTF8(&doc, "_id", argv[0]);
	BSON_APPEND_DATE_TIME(&doc, "updatedAt", util_now_ms());
	append_nested(&doc, "d", atoi(argv[1]));
	client = client_for(cfg);
	coll = mongoc_client_get_collection(client, cfg->mongodb_database, cfg->mongodb_collection);
	if (!mongoc_collection_insert_one(coll, &doc, NULL, NULL, &e))
		rc = die("nested", e.message);
	mongoc_collection_destroy(coll);
	mongoc_client_destroy(client);
	bson_destroy(&doc);
	return rc;
}

static int
cmd_command(const struct config *cfg, int argc, char **argv)
{
	mongoc_client_t *client;
	bson_error_t e;
	bson_t *cmd, reply;
	int rc = 0;

	if (argc != 1)
		return die("command", "usage: command JSON");
	cmd = bson_new_from_json((const uint8_t *)argv[0], -1, &e);
	if (cmd == NULL)
		return die("command", e.message);
	client = client_for(cfg);
	if (!mongoc_client_command_simple(client, cfg->mongodb_database, cmd, NULL, &reply, &e))
		rc = die("command", e.message);
	else {
		char *s = bson_as_relaxed_extended_json(&reply, NULL);
		puts(s);
		bson_free(s);
	}
	bson_destroy(&reply);
	bson_destroy(cmd);
	mongoc_client_destroy(client);
	return rc;
}

/* --range LO HI ("-": open on that side) into *lo, *hi (NULL: none given). */
static int
range_arg(const char **lo, const char **hi, int argc, char **argv)
{
	*lo = *hi = NULL;
	if (argc == 0)
		return 0;
	if (argc != 3 || strcmp(argv[0], "--range"))
		return die("range", "usage: ids|os-ids [--range LO HI]");
	*lo = strcmp(argv[1], "-") ? argv[1] : NULL;
	*hi = strcmp(argv[2], "-") ? argv[2] : NULL;
	return 0;
}

static int
cmd_ids(const struct config *cfg, int argc, char **argv)
{
	struct mongo *m = NULL;
	struct mongo_scan *scan = NULL;
	struct rerror err = {0};
	struct buf idtext = {0};
	const char *lo, *hi;
	int rc = range_arg(&lo, &hi, argc, argv);

	if (rc)
		return rc;
	if (mongo_open(&m, cfg->mongodb_uri, cfg->mongodb_database, cfg->mongodb_collection,
	               &err) ||
	    ((lo || hi) && mongo_set_range(m, lo, hi, ID_OID, &err)) ||
	    mongo_scan_open(&scan, m, NULL, ID_OID, cfg->version_field, false, 1000, false, &err)) {
		rc = die("ids", err.message);
		goto out;
	}
	for (;;) {
		const bson_t *doc;
		bson_iter_t it;
		enum id_type type;
		char version[64] = "";
		int64_t ms;
		if (mongo_scan_next(scan, &doc, &err)) {
			rc = die("ids", err.message);
			break;
		}
		if (doc == NULL)
			break;
		if (!bson_iter_init_find(&it, doc, "_id"))
			continue;
		buf_reset(&idtext);
		if (doc_id_canonical(bson_iter_value(&it), &idtext, &type) != RC_OK) {
			fprintf(stderr, "fixture: cannot render a document id\n");
			exit(2);
		}
		if (*cfg->version_field && bson_iter_init(&it, doc) &&
		    bson_iter_find_descendant(&it, cfg->version_field, &it))
			doc_version_from_bson(bson_iter_value(&it), version, sizeof(version), &ms);
		printf("%s\t%s\t%s\n", idtext.data, doc_id_type_name(type), version);
	}
out:
	buf_free(&idtext);
	mongo_scan_free(scan);
	mongo_free(m);
	return rc;
}

static int
cmd_idof(int argc, char **argv)
{
	bson_t doc = BSON_INITIALIZER;
	bson_iter_t it;
	struct buf b = {0};
	enum id_type t;

	if (argc < 1)
		return die("idof", "usage: idof N [oid|string|int|mixed]");
	make_id(&doc, atoll(argv[0]), argc > 1 ? argv[1] : "oid");
	bson_iter_init_find(&it, &doc, "_id");
	if (doc_id_canonical(bson_iter_value(&it), &b, &t) != RC_OK) {
		fprintf(stderr, "fixture: cannot render a document id\n");
		exit(2);
	}
	printf("%s\t%s\n", b.data, doc_id_type_name(t));
	buf_free(&b);
	bson_destroy(&doc);
	return 0;
}

static int
cmd_os_ids(const struct config *cfg, int argc, char **argv)
{
	struct opensearch *os = NULL;
	struct rerror err = {0};
	struct idlist page = {0};
	struct os_keys k = {.sort_field =
	                        *cfg->opensearch_id_field ? cfg->opensearch_id_field : "_id",
	                    .version_field = cfg->version_field,
	                    .version_format = *cfg->version_field ? "epoch_millis" : NULL};
	char *after = NULL;
	bool more = true;
	int64_t n = 0;
	const char *lo, *hi;
	int rc = range_arg(&lo, &hi, argc, argv);

	if (rc)
		return rc;
	if (opensearch_open(&os, cfg, &err))
		return die("os-ids", err.message);
	if ((lo || hi) && opensearch_set_range(os, k.sort_field, lo, hi)) {
		opensearch_free(os);
		return die("os-ids", "out of memory");
	}
	while (more) {
		idlist_clear(&page);
		if (opensearch_scan(os, &page, &more, &k, after, (int)cfg->opensearch_scan_page,
		                    &err)) {
			rc = die("os-ids", err.message);
			break;
		}
		n += (int64_t)page.n;
		if (page.n) {
			free(after);
			after = strdup(idlist_id(&page, page.n - 1));
		}
	}
	printf("%" PRId64 "\n", n);
	free(after);
	idlist_free(&page);
	opensearch_free(os);
	return rc;
}

/* Every copy's whole _source, in key order, pages of RECONCILE_CHUNK_SIZE
 * (search_after on the id field), written to stdout as OpenSearch answers:
 * the index's own cost of reading its documents (tools/bench --content). */
static int
cmd_os_dump(const struct config *cfg)
{
	struct opensearch *os = NULL;
	struct rerror err = {0};
	struct buf body = {0}, resp = {0};
	char path[600], *after = NULL;
	int64_t n = 0;
	int rc = 0;

	if (opensearch_open(&os, cfg, &err))
		return die("os-dump", err.message);
	snprintf(path, sizeof(path), "%s/_search", opensearch_index(os));
	for (;;) {
		long status = 0;
		buf_reset(&body);
		if (buf_printf(&body, "{\"size\":%lld,\"sort\":[{\"%s\":\"asc\"}]",
		               (long long)cfg->chunk_size, cfg->opensearch_id_field) ||
		    (after &&
		     (buf_puts(&body, ",\"search_after\":[") ||
		      doc_json_string(&body, after, strlen(after)) || buf_puts(&body, "]"))) ||
		    buf_puts(&body, "}")) {
			rc = die("os-dump", "out of memory");
			break;
		}
		buf_reset(&resp);
		if (opensearch_request(os, &status, &resp, "POST", path, body.data, body.len,
		                       &err) ||
		    status != 200) {
			rc = die("os-dump", status ? resp.data : err.message);
			break;
		}
		fwrite(resp.data, 1, resp.len, stdout);
		cJSON *j = cJSON_ParseWithLength(resp.data, resp.len);
		cJSON *hits = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "hits"), "hits");
		int k = cJSON_GetArraySize(hits);
		cJSON *last =
		    k ? cJSON_GetArrayItem(
		            cJSON_GetObjectItem(cJSON_GetArrayItem(hits, k - 1), "sort"), 0)
		      : NULL;
		free(after);
		after = cJSON_IsString(last) ? strdup(last->valuestring) : NULL;
		cJSON_Delete(j);
		n += k;
		if (k < cfg->chunk_size || after == NULL)
			break;
	}
	fprintf(stderr, "%lld\n", (long long)n);
	free(after);
	buf_free(&body);
	buf_free(&resp);
	opensearch_free(os);
	return rc;
}

static int
cmd_dump(const struct config *cfg)
{
	struct mongo *m = NULL;
	struct mongo_scan *scan = NULL;
	struct rerror err = {0};
	struct buf out = {0}, idtext = {0};
	int rc = 0;

	if (mongo_open(&m, cfg->mongodb_uri, cfg->mongodb_database, cfg->mongodb_collection,
	               &err) ||
	    mongo_scan_open(&scan, m, NULL, ID_OID, NULL, true, 1000, false, &err)) {
		rc = die("dump", err.message);
		goto out;
	}
	for (;;) {
		const bson_t *doc;
		bson_iter_t it;
		enum id_type type;
		if (mongo_scan_next(scan, &doc, &err)) {
			rc = die("dump", err.message);
			break;
		}
		if (doc == NULL)
			break;
		if (!bson_iter_init_find(&it, doc, "_id"))
			continue;
		buf_reset(&out);
		buf_reset(&idtext);
		if (index_action(&out, doc, bson_iter_value(&it), cfg->opensearch_id_field, &idtext,
		                 &type) == RC_OK)
			fwrite(out.data, 1, out.len, stdout);
	}
out:
	buf_free(&out);
	buf_free(&idtext);
	mongo_scan_free(scan);
	mongo_free(m);
	return rc;
}

static int
cmd_bulk_file(const struct config *cfg, int argc, char **argv)
{
	struct opensearch *os = NULL;
	struct rerror err = {0};
	struct buf body = {0};
	char *line = NULL;
	size_t cap = 0, items = 0;
	ssize_t len;
	int64_t batch = cfg->sync_batch_size, total = 0;
	int rc = 0;
	FILE *f;

	if (argc < 1)
		return die("bulk-file", "usage: bulk-file FILE [--batch N]");
	if (argc == 3 && !strcmp(argv[1], "--batch"))
		batch = atoll(argv[2]);
	f = fopen(argv[0], "r");
	if (f == NULL || opensearch_open(&os, cfg, &err))
		return die("bulk-file", f ? err.message : "cannot open the file");
	bool action = true;
	while ((len = getline(&line, &cap, f)) >= 0 || items) {
		if (len >= 0) {
			if (buf_append(&body, line, (size_t)len) != RC_OK) {
				fprintf(stderr, "fixture: out of memory\n");
				exit(2);
			}
			if (!action)
				items++;
			action = !action;
		}
		if (items == (size_t)batch || (len < 0 && items)) {
			struct bulk_result res;
			int attempts;
			if (opensearch_bulk(os, &res, &attempts, body.data, body.len, items, NULL,
			                    &err)) {
				rc = die("bulk-file", err.message);
				break;
			}
			bulk_result_free(&res);
			total += (int64_t)items;
			items = 0;
			buf_reset(&body);
		}
		if (len < 0)
			break;
	}
	printf("%" PRId64 "\n", total);
	free(line);
	fclose(f);
	buf_free(&body);
	opensearch_free(os);
	return rc;
}

int
main(int argc, char **argv)
{
	struct config *cfg = NULL;
	struct rerror err = {0};
	int rc;

	if (argc < 2) {
		fprintf(stderr, "usage: reconciler-fixture load|sync|command|ids|idof ...\n");
		return 2;
	}
	if (strcmp(argv[1], "idof") == 0)
		return cmd_idof(argc - 2, argv + 2);
	if (config_load(&cfg, NULL, &err)) {
		fprintf(stderr, "fixture: %s\n", err.message);
		return 78;
	}
	mongo_global_init();
	opensearch_global_init();
	if (!strcmp(argv[1], "load"))
		rc = cmd_load(cfg, argc - 2, argv + 2);
	else if (!strcmp(argv[1], "sync"))
		rc = cmd_sync(cfg, argc - 2, argv + 2);
	else if (!strcmp(argv[1], "command"))
		rc = cmd_command(cfg, argc - 2, argv + 2);
	else if (!strcmp(argv[1], "ids"))
		rc = cmd_ids(cfg, argc - 2, argv + 2);
	else if (!strcmp(argv[1], "nested"))
		rc = cmd_nested(cfg, argc - 2, argv + 2);
	else if (!strcmp(argv[1], "os-ids"))
		rc = cmd_os_ids(cfg, argc - 2, argv + 2);
	else if (!strcmp(argv[1], "os-dump"))
		rc = cmd_os_dump(cfg);
	else if (!strcmp(argv[1], "dump"))
		rc = cmd_dump(cfg);
	else if (!strcmp(argv[1], "bulk-file"))
		rc = cmd_bulk_file(cfg, argc - 2, argv + 2);
	else if (!strcmp(argv[1], "big"))
		rc = cmd_big(cfg, argc - 2, argv + 2);
	else
		rc = die(argv[1], "unknown command");
	opensearch_global_cleanup();
	mongoc_cleanup();
	config_free(cfg);
	return rc;
}
