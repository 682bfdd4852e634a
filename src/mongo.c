/*
 * mongo.c: MongoDB through libmongoc.
 *
 * A pass reads the collection through ONE cursor sorted by _id (getMore
 * batches), never a fresh sorted query per chunk: some MongoDB-compatible
 * servers (FerretDB 1.x) sort in memory, which would make a pass quadratic.
 * After an interruption the cursor reopens strictly after the last committed
 * id. Because MongoDB's $gt only matches values of the same type bracket,
 * the resume filter is {$or: [{_id: {$gt: v}}, {_id: {$type: [later types]}}]},
 * the later types being those MongoDB sorts after v's.
 *
 * A mirror's RECONCILE_FILTER (mongo_set_filter) is part of every count,
 * stream and fetch: combined with the resume or id condition as
 * {$and: [filter, condition]}. The stream then hints the _id index, so a
 * server with an index on the filter's fields still reads in _id order
 * (a scan that skips what the filter leaves out) instead of sorting the
 * matches in memory. Only mongo_fetch_unfiltered and mongo_has_type see
 * past it.
 */
#include "mongo.h"
#include "log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

struct mongo {
	mongoc_client_t *client;
	mongoc_collection_t *coll;
	char *database;
	char *collection;
	char *uri;
	bson_t *filter; /* RECONCILE_FILTER; NULL: every document */
	/* a partition's {_id: {$gte: lo, $lt: hi}} (mongo_set_range); NULL:
	 * the whole collection. Counts and streams only: a fetch or an
	 * existence check by id sees past it */
	bson_t *range;
};

/* Read-ahead: the stream's documents, copied into pages of raw BSON. */
#define PAGE_DOCS  1000
#define PAGE_BYTES (4 << 20)
#define PAGES      3

struct page {
	uint8_t *data;
	size_t len, cap;
};

struct mongo_scan {
	mongoc_cursor_t *cursor;
	/* with read-ahead: a client of its own (a client is one thread's) */
	struct mongo *own;
	bool ahead;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct page ring[PAGES];
	int head, count;
	/* consumed pages' buffers, reused by the reader: no malloc/free churn
	 * between two threads, so memory stays flat over any number of pages */
	struct page spare[PAGES + 1];
	int n_spare;
	bool done, stop;
	rcode rc;
	struct rerror err;
	struct page cur;
	size_t cur_off;
	bson_t cur_doc;
	const bson_t *last; /* the document mongo_scan_next_id read last */
	/* mongo_scan_open_since: the field and time documents are kept by */
	char *since_field;
	int64_t since_ms;
};

/* libmongoc logs through our log so its lines get timestamps, levels and
 * masking; its warnings (e.g. a server without endSessions) are debug. */
static void
on_mongoc_log(mongoc_log_level_t level, const char *domain, const char *message, void *ctx)
{
	(void)ctx;
	if (level <= MONGOC_LOG_LEVEL_ERROR)
		log_msg(LOG_ERROR, 0, "libmongoc %s: %s", domain, message);
	else if (level <= MONGOC_LOG_LEVEL_INFO)
		log_msg(LOG_DEBUG, 0, "libmongoc %s: %s", domain, message);
}

void
mongo_global_init(void)
{
	mongoc_init();
	mongoc_log_set_handler(on_mongoc_log, NULL);
}

void
mongo_global_cleanup(void)
{
	mongoc_cleanup();
}

static RC_MUST_CHECK rcode
mongo_err(struct rerror *err, const bson_error_t *e, const char *what)
{
	/* wrong credentials are no outage: a retry or a resume will not mend
	 * them, the setting must change (RC_ERR_CONFIG: exit 78, no resume) */
	if ((e->domain == MONGOC_ERROR_CLIENT && e->code == MONGOC_ERROR_CLIENT_AUTHENTICATE) ||
	    (e->domain == MONGOC_ERROR_SERVER && (e->code == 18 || e->code == 334)))
		return rerror_set(err, RC_ERR_CONFIG,
		                  "mongodb: authentication failed: check the user and password "
		                  "in MONGODB_URI (and its authSource, authMechanism): %s",
		                  e->message);
	return rerror_set(err, RC_ERR_MONGO, "mongodb: %s: %s", what, e->message);
}

rcode
mongo_open(struct mongo **out, const char *uri_text, const char *database, const char *collection,
           struct rerror *err)
{
	bson_error_t e;
	mongoc_uri_t *uri;
	struct mongo *m;

	*out = NULL;
	uri = mongoc_uri_new_with_error(uri_text, &e);
	if (uri == NULL) {
		char *masked = util_mask_uri(uri_text);
		rcode rc = rerror_set(err, RC_ERR_CONFIG, "MONGODB_URI \"%s\" is invalid: %s",
		                      masked ? masked : "***", e.message);
		free(masked);
		return rc;
	}
	/* fail fast when the server is away, rather than libmongoc's 30 s */
	if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
		mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
	if (!mongoc_uri_has_option(uri, MONGOC_URI_CONNECTTIMEOUTMS))
		mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 5000);
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		mongoc_uri_destroy(uri);
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	}
	m->client = mongoc_client_new_from_uri_with_error(uri, &e);
	mongoc_uri_destroy(uri);
	if (m->client == NULL) {
		free(m);
		return mongo_err(err, &e, "cannot create client");
	}
	mongoc_client_set_appname(m->client, "reconciler");
	m->database = strdup(database);
	m->collection = strdup(collection);
	m->uri = strdup(uri_text);
	m->coll = mongoc_client_get_collection(m->client, database, collection);
	if (m->database == NULL || m->collection == NULL || m->uri == NULL || m->coll == NULL) {
		mongo_free(m);
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	}
	*out = m;
	return RC_OK;
}

void
mongo_free(struct mongo *m)
{
	if (m == NULL)
		return;
	if (m->coll)
		mongoc_collection_destroy(m->coll);
	if (m->client)
		mongoc_client_destroy(m->client);
	free(m->database);
	free(m->collection);
	free(m->uri);
	if (m->filter)
		bson_destroy(m->filter);
	if (m->range)
		bson_destroy(m->range);
	free(m);
}

rcode
mongo_set_filter(struct mongo *m, const char *json, struct rerror *err)
{
	bson_error_t e;
	bson_t *f = NULL;

	if (json && *json) {
		f = bson_new_from_json((const uint8_t *)json, -1, &e);
		if (f == NULL)
			return rerror_set(err, RC_ERR_CONFIG, "RECONCILE_FILTER is invalid: %s",
			                  e.message);
		if (bson_empty(f)) {
			bson_destroy(f);
			f = NULL; /* {}: every document */
		}
	}
	if (m->filter)
		bson_destroy(m->filter);
	m->filter = f;
	return RC_OK;
}

bool
mongo_filtered(const struct mongo *m)
{
	return m->filter != NULL;
}

rcode
mongo_set_range(struct mongo *m, const char *lo, const char *hi, enum id_type type,
                struct rerror *err)
{
	bson_t *r = NULL, child;

	if (lo || hi) {
		r = bson_new();
		BSON_APPEND_DOCUMENT_BEGIN(r, "_id", &child);
		if ((lo && doc_id_append(&child, "$gte", lo, type)) ||
		    (hi && doc_id_append(&child, "$lt", hi, type))) {
			bson_destroy(r);
			return rerror_set(err, RC_ERR_INVALID, "a partition bound is not a %s",
			                  doc_id_type_name(type));
		}
		bson_append_document_end(r, &child);
	}
	if (m->range)
		bson_destroy(m->range);
	m->range = r;
	return RC_OK;
}

/* *out (initialized here) = cond within m's range (cond itself without
 * one), before with_filter puts it under the filter. */
static void
with_range(bson_t *out, const struct mongo *m, const bson_t *cond)
{
	bson_t arr;

	bson_init(out);
	if (m->range == NULL) {
		if (cond)
			bson_concat(out, cond);
		return;
	}
	if (cond == NULL || bson_empty(cond)) {
		bson_concat(out, m->range);
		return;
	}
	BSON_APPEND_ARRAY_BEGIN(out, "$and", &arr);
	BSON_APPEND_DOCUMENT(&arr, "0", m->range);
	BSON_APPEND_DOCUMENT(&arr, "1", cond);
	bson_append_array_end(out, &arr);
}

/* *out (initialized here) = cond under m's filter: cond itself without a
 * filter, the filter itself without cond (NULL or empty), else
 * {$and: [filter, cond]}. */
static void
with_filter(bson_t *out, const struct mongo *m, const bson_t *cond)
{
	bson_t arr;

	bson_init(out);
	if (m->filter == NULL || bson_empty(m->filter)) {
		if (cond)
			bson_concat(out, cond);
		return;
	}
	if (cond == NULL || bson_empty(cond)) {
		bson_concat(out, m->filter);
		return;
	}
	BSON_APPEND_ARRAY_BEGIN(out, "$and", &arr);
	BSON_APPEND_DOCUMENT(&arr, "0", m->filter);
	BSON_APPEND_DOCUMENT(&arr, "1", cond);
	bson_append_array_end(out, &arr);
}

rcode
mongo_ping(struct mongo *m, char **version, struct rerror *err)
{
	bson_t cmd = BSON_INITIALIZER, reply;
	bson_error_t e;
	bson_iter_t it;
	rcode rc = RC_OK;

	*version = NULL;
	BSON_APPEND_INT32(&cmd, "buildInfo", 1);
	if (!mongoc_client_command_simple(m->client, "admin", &cmd, NULL, &reply, &e)) {
		rc = mongo_err(err, &e, "unreachable");
	} else if (bson_iter_init_find(&it, &reply, "version") && BSON_ITER_HOLDS_UTF8(&it)) {
		*version = strdup(bson_iter_utf8(&it, NULL));
		if (bson_iter_init_find(&it, &reply, "ferretdbVersion") &&
		    BSON_ITER_HOLDS_UTF8(&it)) {
			char *both = NULL;
			size_t n = strlen(*version) + strlen(bson_iter_utf8(&it, NULL)) + 16;
			if ((both = malloc(n)) != NULL) {
				snprintf(both, n, "%s (FerretDB %s)", *version,
				         bson_iter_utf8(&it, NULL));
				free(*version);
				*version = both;
			}
		}
	} else {
		*version = strdup("unknown");
	}
	bson_destroy(&cmd);
	bson_destroy(&reply);
	return rc;
}

rcode
mongo_count(struct mongo *m, int64_t *count, struct rerror *err)
{
	bson_t filter;
	bson_error_t e;
	int64_t n;

	bson_t ranged;

	*count = -1;
	with_range(&ranged, m, NULL);
	with_filter(&filter, m, &ranged);
	n = mongoc_collection_count_documents(m->coll, &filter, NULL, NULL, NULL, &e);
	bson_destroy(&filter);
	bson_destroy(&ranged);
	if (n < 0)
		return mongo_err(err, &e, "countDocuments failed");
	*count = n;
	return RC_OK;
}

rcode
mongo_collection_exists(struct mongo *m, bool *exists, struct rerror *err)
{
	mongoc_database_t *db = mongoc_client_get_database(m->client, m->database);
	bson_t opts = BSON_INITIALIZER, filter;
	mongoc_cursor_t *cur;
	const bson_t *doc;
	bson_error_t e;
	rcode rc = RC_OK;

	*exists = false;
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "filter", &filter);
	BSON_APPEND_UTF8(&filter, "name", m->collection);
	bson_append_document_end(&opts, &filter);
	BSON_APPEND_BOOL(&opts, "nameOnly", true);
	cur = mongoc_database_find_collections_with_opts(db, &opts);
	while (mongoc_cursor_next(cur, &doc))
		*exists = true;
	if (mongoc_cursor_error(cur, &e))
		rc = mongo_err(err, &e, "listCollections failed");
	mongoc_cursor_destroy(cur);
	if (rc == RC_OK && !*exists) {
		/* listCollections has been seen to answer empty under load on
		 * FerretDB: a collection that holds a document exists whatever it
		 * says (only an empty one can be refused wrongly, and a refusal
		 * changes nothing) */
		bson_t none = BSON_INITIALIZER, one = BSON_INITIALIZER;
		BSON_APPEND_INT32(&one, "limit", 1);
		cur = mongoc_collection_find_with_opts(m->coll, &none, &one, NULL);
		if (mongoc_cursor_next(cur, &doc))
			*exists = true;
		else if (mongoc_cursor_error(cur, &e))
			rc = mongo_err(err, &e, "find failed");
		mongoc_cursor_destroy(cur);
		bson_destroy(&none);
		bson_destroy(&one);
	}
	bson_destroy(&opts);
	mongoc_database_destroy(db);
	return rc;
}

/* BSON type numbers MongoDB sorts after values of type t, in order. */
static void
later_types(bson_t *arr, enum id_type t, const bson_t *after_doc)
{
	/* string, object, array, binary, ObjectId, bool, date, timestamp,
	 * regex. Not Symbol (14): deprecated, sorted with strings, and a $type
	 * FerretDB refuses ("Invalid numerical type code"), which would leave
	 * a run interrupted in the number class unable ever to resume */
	static const int32_t order[] = {2, 3, 4, 5, 7, 8, 9, 17, 11};
	size_t start = 0;
	uint32_t k = 0;

	switch (t) {
	case ID_INT:
	case ID_DOUBLE:
		start = 0;
		break;
	case ID_STRING:
		start = 1;
		break;
	case ID_OID:
		start = 5;
		break;
	case ID_BOOL:
		start = 6;
		break;
	case ID_DATE:
		start = 7;
		break;
	case ID_JSON: {
		bson_iter_t it;
		bson_type_t bt = BSON_TYPE_EOD;
		if (bson_iter_init_find(&it, after_doc, "v"))
			bt = bson_iter_type(&it);
		start = sizeof(order) / sizeof(order[0]);
		for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
			if (order[i] == (int32_t)bt)
				start = i + 1;
		break;
	}
	}
	for (size_t i = start; i < sizeof(order) / sizeof(order[0]); i++) {
		char key[16];
		const char *kp;
		bson_uint32_to_string(k++, &kp, key, sizeof(key));
		bson_append_int32(arr, kp, -1, order[i]);
	}
}

rcode
mongo_has_type(struct mongo *m, enum id_type type, bool *has, struct rerror *err)
{
	/* the BSON types behind each id type (json: documents, binary, null) */
	static const int32_t codes[][4] = {
	    [ID_INT] = {16, 18, 1, 0}, [ID_DOUBLE] = {1, 16, 18, 0}, [ID_STRING] = {2, 0},
	    [ID_OID] = {7, 0},         [ID_BOOL] = {8, 0},           [ID_DATE] = {9, 0},
	    [ID_JSON] = {3, 5, 10, 0}};
	bson_t filter = BSON_INITIALIZER, child, arr, opts = BSON_INITIALIZER, proj;
	mongoc_cursor_t *cur;
	const bson_t *doc;
	bson_error_t e;
	rcode rc = RC_OK;

	*has = false;
	BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &child);
	BSON_APPEND_ARRAY_BEGIN(&child, "$type", &arr);
	for (uint32_t i = 0; i < 4 && codes[type][i]; i++) {
		char key[16];
		const char *kp;
		bson_uint32_to_string(i, &kp, key, sizeof(key));
		bson_append_int32(&arr, kp, -1, codes[type][i]);
	}
	bson_append_array_end(&child, &arr);
	bson_append_document_end(&filter, &child);
	BSON_APPEND_INT32(&opts, "limit", 1);
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
	BSON_APPEND_INT32(&proj, "_id", 1);
	bson_append_document_end(&opts, &proj);
	cur = mongoc_collection_find_with_opts(m->coll, &filter, &opts, NULL);
	*has = mongoc_cursor_next(cur, &doc);
	if (mongoc_cursor_error(cur, &e))
		rc = mongo_err(err, &e, "asking for ids of a type failed");
	mongoc_cursor_destroy(cur);
	bson_destroy(&filter);
	bson_destroy(&opts);
	return rc;
}

rcode
mongo_id_at(struct mongo *m, char **id, enum id_type *type, int64_t skip, bool descending,
            struct rerror *err)
{
	bson_t filter, opts = BSON_INITIALIZER, child;
	mongoc_cursor_t *cur;
	const bson_t *doc;
	bson_error_t e;
	bson_iter_t it;
	struct buf text = {0};
	rcode rc = RC_OK;

	*id = NULL;
	*type = ID_JSON;
	with_filter(&filter, m, NULL); /* the mirror's documents, whole collection */
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &child);
	BSON_APPEND_INT32(&child, "_id", descending ? -1 : 1);
	bson_append_document_end(&opts, &child);
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &child);
	BSON_APPEND_INT32(&child, "_id", 1);
	bson_append_document_end(&opts, &child);
	if (skip > 0)
		BSON_APPEND_INT64(&opts, "skip", skip);
	BSON_APPEND_INT64(&opts, "limit", 1);
	cur = mongoc_collection_find_with_opts(m->coll, &filter, &opts, NULL);
	if (mongoc_cursor_next(cur, &doc) && bson_iter_init_find(&it, doc, "_id")) {
		if (doc_id_canonical(bson_iter_value(&it), &text, type) ||
		    (*id = strdup(text.data ? text.data : "")) == NULL)
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	}
	if (rc == RC_OK && mongoc_cursor_error(cur, &e))
		rc = mongo_err(err, &e, "reading an id in _id order failed");
	mongoc_cursor_destroy(cur);
	buf_free(&text);
	bson_destroy(&filter);
	bson_destroy(&opts);
	return rc;
}

static void *read_ahead(void *arg);

rcode
mongo_scan_open(struct mongo_scan **out, struct mongo *m, const char *after,
                enum id_type after_type, const char *version_field, bool full_docs, int batch_size,
                bool ahead, struct rerror *err)
{
	bson_t resume = BSON_INITIALIZER, opts = BSON_INITIALIZER, child, or, c1, c2, gt, tp, types;
	bson_t after_doc = BSON_INITIALIZER, filter = BSON_INITIALIZER;
	struct mongo_scan *s;
	rcode rc = RC_OK;

	*out = NULL;
	if (after) {
		if (doc_id_append(&after_doc, "v", after, after_type)) {
			rc = rerror_set(err, RC_ERR_INVALID, "cannot resume after id %s (type %s)",
			                after, doc_id_type_name(after_type));
			goto out;
		}
		bson_iter_t it;
		bson_iter_init_find(&it, &after_doc, "v");
		BSON_APPEND_ARRAY_BEGIN(&resume, "$or", & or);
		BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &c1);
		BSON_APPEND_DOCUMENT_BEGIN(&c1, "_id", &gt);
		bson_append_iter(&gt, "$gt", 3, &it);
		bson_append_document_end(&c1, &gt);
		bson_append_document_end(& or, &c1);
		BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &c2);
		BSON_APPEND_DOCUMENT_BEGIN(&c2, "_id", &tp);
		BSON_APPEND_ARRAY_BEGIN(&tp, "$type", &types);
		later_types(&types, after_type, &after_doc);
		bson_append_array_end(&tp, &types);
		bson_append_document_end(&c2, &tp);
		bson_append_document_end(& or, &c2);
		bson_append_array_end(&resume, & or);
	}
	/* the resume condition, within the partition, under the mirror's
	 * filter */
	bson_t ranged;
	with_range(&ranged, m, &resume);
	with_filter(&filter, m, &ranged);
	bson_destroy(&ranged);
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &child);
	BSON_APPEND_INT32(&child, "_id", 1);
	bson_append_document_end(&opts, &child);
	if (m->filter) {
		/* read in _id order, whatever index the filter's fields have */
		BSON_APPEND_DOCUMENT_BEGIN(&opts, "hint", &child);
		BSON_APPEND_INT32(&child, "_id", 1);
		bson_append_document_end(&opts, &child);
	}
	if (!full_docs) {
		BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &child);
		BSON_APPEND_INT32(&child, "_id", 1);
		if (version_field && *version_field)
			BSON_APPEND_INT32(&child, version_field, 1);
		bson_append_document_end(&opts, &child);
	}
	BSON_APPEND_INT32(&opts, "batchSize", batch_size);
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (ahead) {
		rc = mongo_open(&s->own, m->uri, m->database, m->collection, err);
		if (rc) {
			free(s);
			goto out;
		}
		m = s->own;
	}
	s->cursor = mongoc_collection_find_with_opts(m->coll, &filter, &opts, NULL);
	if (ahead) {
		pthread_mutex_init(&s->mu, NULL);
		pthread_cond_init(&s->cv, NULL);
		if (pthread_create(&s->thread, NULL, read_ahead, s)) {
			mongoc_cursor_destroy(s->cursor);
			mongo_free(s->own);
			free(s);
			rc = rerror_set(err, RC_ERR_INTERNAL, "cannot start the read-ahead thread");
			goto out;
		}
		s->ahead = true;
	}
	*out = s;
out:
	bson_destroy(&filter);
	bson_destroy(&resume);
	bson_destroy(&opts);
	bson_destroy(&after_doc);
	return rc;
}

/* The widest gap between an ISO text's local time and its instant that
 * util_iso_to_ms reads (offsets up to +-23:59): ISO 8601 allows more than
 * the +-14 h real zones use, so a text may be this far off as a string. */
#define ISO_OFFSET_MAX_MS (24 * 3600 * 1000LL)

/* Appends {field: {op: value}} as the next item of an $or array. */
static void
or_item(bson_t * or, uint32_t *n, const char *field, const bson_t *cmp)
{
	char key[16];
	const char *kp;
	bson_t c;

	bson_uint32_to_string((*n)++, &kp, key, sizeof(key));
	BSON_APPEND_DOCUMENT_BEGIN(or, kp, &c);
	BSON_APPEND_DOCUMENT(&c, field, cmp);
	bson_append_document_end(or, &c);
}

rcode
mongo_scan_open_since(struct mongo_scan **out, struct mongo *m, const char *version_field,
                      int64_t since_ms, int batch_size, struct rerror *err)
{
	bson_t cond = BSON_INITIALIZER, filter, opts = BSON_INITIALIZER, or, cmp, proj;
	char day[40];
	uint32_t n = 0;
	int64_t secs = since_ms < 0 ? 0 : since_ms / 1000;
	struct mongo_scan *s;

	*out = NULL;
	/* The server narrows, our side decides (mongo_scan_next keeps only the
	 * versions doc_version_after puts after since_ms). A version may be a
	 * Date, a Timestamp, a number (epoch ms; int32, int64 and double
	 * compare by value) or ISO-8601 text, each compared within its own
	 * type. Text compares as a string, so it is taken from the UTC day
	 * before since_ms on: its local time may lie up to ISO_OFFSET_MAX_MS
	 * from its instant ("2025-12-12T05:10:00-05:00" is 10:10Z), and a
	 * later instant's local day is never earlier than that day. Expanded
	 * years ("+2025-...") sort before digits, so they are asked apart. */
	util_ms_to_iso(since_ms < INT64_MIN + ISO_OFFSET_MAX_MS ? INT64_MIN
	                                                        : since_ms - ISO_OFFSET_MAX_MS,
	               day, sizeof(day));
	BSON_APPEND_ARRAY_BEGIN(&cond, "$or", & or);
	bson_init(&cmp);
	BSON_APPEND_DATE_TIME(&cmp, "$gt", since_ms);
	or_item(& or, &n, version_field, &cmp);
	bson_reinit(&cmp);
	BSON_APPEND_INT64(&cmp, "$gt", since_ms);
	or_item(& or, &n, version_field, &cmp);
	bson_reinit(&cmp);
	BSON_APPEND_TIMESTAMP(&cmp, "$gte", (uint32_t)(secs > UINT32_MAX ? UINT32_MAX : secs), 0);
	or_item(& or, &n, version_field, &cmp);
	bson_reinit(&cmp);
	if (day[0] >= '0' && day[0] <= '9' && day[4] == '-') {
		day[10] = '\0'; /* YYYY-MM-DD */
		BSON_APPEND_UTF8(&cmp, "$gte", day);
		or_item(& or, &n, version_field, &cmp);
		bson_reinit(&cmp);
		BSON_APPEND_UTF8(&cmp, "$gte", "+");
		BSON_APPEND_UTF8(&cmp, "$lt", ",");
	} else {
		/* a day outside 0000-9999 does not sort as text: every text */
		BSON_APPEND_UTF8(&cmp, "$type", "string");
	}
	or_item(& or, &n, version_field, &cmp);
	bson_destroy(&cmp);
	bson_append_array_end(&cond, & or);
	with_filter(&filter, m, &cond); /* the mirror's documents only */
	bson_destroy(&cond);
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
	BSON_APPEND_INT32(&proj, "_id", 1);
	BSON_APPEND_INT32(&proj, version_field, 1);
	bson_append_document_end(&opts, &proj);
	BSON_APPEND_INT32(&opts, "batchSize", batch_size);
	s = calloc(1, sizeof(*s));
	if (s == NULL || (s->since_field = strdup(version_field)) == NULL) {
		free(s);
		bson_destroy(&filter);
		bson_destroy(&opts);
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	}
	s->since_ms = since_ms;
	s->cursor = mongoc_collection_find_with_opts(m->coll, &filter, &opts, NULL);
	bson_destroy(&filter);
	bson_destroy(&opts);
	*out = s;
	return RC_OK;
}

/* A since stream's verdict on a document the server matched: its version
 * after since_ms as an instant (the server's match is wider for text). */
static bool
since_keeps(const struct mongo_scan *s, const bson_t *doc)
{
	bson_iter_t it;

	return bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, s->since_field, &it) &&
	       doc_version_after(bson_iter_value(&it), s->since_ms);
}

/* The read-ahead thread: fills pages from the cursor while the caller
 * works on the previous ones. At most PAGES pages wait, so memory is
 * bounded whatever the collection's size. */
static void *
read_ahead(void *arg)
{
	struct mongo_scan *s = arg;
	const bson_t *doc;
	bson_error_t e;
	bool end = false;

	while (!end) {
		struct page p = {0};
		size_t n = 0;

		pthread_mutex_lock(&s->mu);
		if (s->n_spare)
			p = s->spare[--s->n_spare];
		pthread_mutex_unlock(&s->mu);
		p.len = 0;
		while (n < PAGE_DOCS && p.len < PAGE_BYTES) {
			if (!mongoc_cursor_next(s->cursor, &doc)) {
				end = true;
				break;
			}
			if (p.len + doc->len > p.cap) {
				size_t cap = p.cap ? p.cap * 2 : 256 * 1024;
				while (cap < p.len + doc->len)
					cap *= 2;
				uint8_t *d = realloc(p.data, cap);
				if (d == NULL) {
					free(p.data);
					pthread_mutex_lock(&s->mu);
					s->rc = rerror_set(&s->err, RC_ERR_NOMEM, "out of memory");
					s->done = true;
					pthread_cond_broadcast(&s->cv);
					pthread_mutex_unlock(&s->mu);
					return NULL;
				}
				p.data = d;
				p.cap = cap;
			}
			memcpy(p.data + p.len, bson_get_data(doc), doc->len);
			p.len += doc->len;
			n++;
		}
		pthread_mutex_lock(&s->mu);
		if (end && mongoc_cursor_error(s->cursor, &e))
			s->rc = mongo_err(&s->err, &e, "reading the _id stream failed");
		while (s->count == PAGES && !s->stop)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->stop) {
			pthread_mutex_unlock(&s->mu);
			free(p.data);
			return NULL;
		}
		if (p.len) {
			s->ring[(s->head + s->count) % PAGES] = p;
			s->count++;
		} else if (s->n_spare < PAGES + 1) {
			s->spare[s->n_spare++] = p;
		} else {
			free(p.data);
		}
		s->done = end;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

static RC_MUST_CHECK rcode
next_ahead(struct mongo_scan *s, const bson_t **doc, struct rerror *err)
{
	rcode rc = RC_OK;

	if (s->cur_off >= s->cur.len) {
		pthread_mutex_lock(&s->mu);
		if (s->cur.data && s->n_spare < PAGES + 1)
			s->spare[s->n_spare++] = s->cur;
		else
			free(s->cur.data);
		memset(&s->cur, 0, sizeof(s->cur));
		s->cur_off = 0;
		while (s->count == 0 && !s->done)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->count) {
			s->cur = s->ring[s->head];
			s->head = (s->head + 1) % PAGES;
			s->count--;
			pthread_cond_broadcast(&s->cv);
		} else if (s->rc) {
			rc = s->rc;
			if (err)
				*err = s->err;
		}
		pthread_mutex_unlock(&s->mu);
		if (rc || s->cur.len == 0)
			return rc; /* *doc stays NULL at the end */
	}
	uint32_t len;
	memcpy(&len, s->cur.data + s->cur_off, 4);
	len = BSON_UINT32_FROM_LE(len);
	if (!bson_init_static(&s->cur_doc, s->cur.data + s->cur_off, len))
		return rerror_set(err, RC_ERR_MONGO, "mongodb: a malformed document in the stream");
	s->cur_off += len;
	*doc = &s->cur_doc;
	return RC_OK;
}

rcode
mongo_scan_next(struct mongo_scan *s, const bson_t **doc, struct rerror *err)
{
	bson_error_t e;

	*doc = NULL;
	if (s->ahead)
		return next_ahead(s, doc, err);
	while (mongoc_cursor_next(s->cursor, doc))
		if (s->since_field == NULL || since_keeps(s, *doc))
			return RC_OK;
	*doc = NULL;
	if (mongoc_cursor_error(s->cursor, &e))
		return mongo_err(err, &e, "reading the _id stream failed");
	return RC_OK;
}

rcode
mongo_scan_next_id(struct mongo_scan *s, struct idlist *out, int *cls, bool *end, bool *unsafe,
                   const char *version_field, struct rerror *err)
{
	const bson_t *doc = NULL;
	bson_iter_t it;
	rcode rc;

	*end = *unsafe = false;
	*cls = -1;
	do {
		rc = mongo_scan_next(s, &doc, err);
		if (rc)
			return rc;
		if (doc == NULL) {
			*end = true;
			return RC_OK;
		}
	} while (!bson_iter_init_find(&it, doc, "_id")); /* every document has one */
	s->last = doc;
	return mongo_doc_id_entry(doc, out, cls, unsafe, version_field, err);
}

/* A number version as the epoch milliseconds it stands for. */
static bool
number_ms(const bson_value_t *v, int64_t *ms)
{
	switch (v->value_type) {
	case BSON_TYPE_INT32:
		*ms = v->value.v_int32;
		return true;
	case BSON_TYPE_INT64:
		*ms = v->value.v_int64;
		return true;
	case BSON_TYPE_DOUBLE:
		/* within int64 (NaN fails both tests) */
		if (!(v->value.v_double >= -9.2e18 && v->value.v_double <= 9.2e18))
			return false;
		*ms = (int64_t)v->value.v_double;
		return true;
	default:
		return false;
	}
}

rcode
mongo_doc_id_entry(const bson_t *doc, struct idlist *out, int *cls, bool *unsafe,
                   const char *version_field, struct rerror *err)
{
	struct buf text = {0};
	bson_iter_t it, vit;
	enum id_type type;
	char version[64];
	int64_t ms = -1;
	bool has_version = false, number = false;
	rcode rc;

	*unsafe = false;
	*cls = -1;
	if (!bson_iter_init_find(&it, doc, "_id"))
		return rerror_set(err, RC_ERR_MONGO, "mongodb: a document without _id");
	rc = doc_id_canonical(bson_iter_value(&it), &text, &type);
	if (rc) {
		buf_free(&text);
		return rerror_set(err, rc, "mongodb: an _id that cannot be read");
	}
	if (memchr(text.data, '\0', text.len)) {
		/* C strings (and so this reconciler) cannot carry it: cut at the
		 * NUL it would stand in for another document's id */
		*unsafe = true;
		for (size_t i = 0; i < text.len; i++)
			if (text.data[i] == '\0')
				text.data[i] = '?';
	}
	*cls = (int)doc_id_class(type, bson_iter_value(&it));
	if (version_field && *version_field && bson_iter_init(&vit, doc) &&
	    bson_iter_find_descendant(&vit, version_field, &vit)) {
		has_version =
		    doc_version_from_bson(bson_iter_value(&vit), version, sizeof(version), &ms);
		number = has_version && number_ms(bson_iter_value(&vit), &ms);
	}
	/* a number is epoch ms (docs/MAPPING.md) or a counter: of it and an
	 * ObjectId's time the later, so RECONCILE_MIN_AGE_MS leaves a document
	 * changed a moment ago alone either way */
	if ((ms < 0 || number) && type == ID_OID) {
		int64_t created = doc_oid_time_ms(text.data);
		ms = created > ms ? created : ms;
	}
	rc = idlist_push(out, text.data, text.len, (int)type, has_version ? version : NULL, ms);
	buf_free(&text);
	return rc ? rerror_set(err, rc, "out of memory") : RC_OK;
}

const bson_t *
mongo_scan_last_doc(const struct mongo_scan *s)
{
	return s->last;
}

void
mongo_scan_free(struct mongo_scan *s)
{
	if (s == NULL)
		return;
	if (s->ahead) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
		for (int i = 0; i < s->count; i++)
			free(s->ring[(s->head + i) % PAGES].data);
		for (int i = 0; i < s->n_spare; i++)
			free(s->spare[i].data);
		free(s->cur.data);
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
	}
	if (s->cursor)
		mongoc_cursor_destroy(s->cursor);
	mongo_free(s->own);
	free(s->since_field);
	free(s);
}

rcode
mongo_sample_ids(struct mongo *m, struct idlist *out, int64_t n, bool *refused, struct rerror *err)
{
	bson_t pipeline = BSON_INITIALIZER, stages, stage, inner, match;
	mongoc_cursor_t *cur;
	const bson_t *doc;
	bson_error_t e;
	rcode rc = RC_OK;
	size_t n0 = out->n;
	int cls;
	bool unsafe;

	*refused = false;
	with_filter(&match, m, NULL);
	BSON_APPEND_ARRAY_BEGIN(&pipeline, "pipeline", &stages);
	BSON_APPEND_DOCUMENT_BEGIN(&stages, "0", &stage);
	BSON_APPEND_DOCUMENT(&stage, "$match", &match);
	bson_append_document_end(&stages, &stage);
	BSON_APPEND_DOCUMENT_BEGIN(&stages, "1", &stage);
	BSON_APPEND_DOCUMENT_BEGIN(&stage, "$sample", &inner);
	BSON_APPEND_INT64(&inner, "size", n);
	bson_append_document_end(&stage, &inner);
	bson_append_document_end(&stages, &stage);
	BSON_APPEND_DOCUMENT_BEGIN(&stages, "2", &stage);
	BSON_APPEND_DOCUMENT_BEGIN(&stage, "$project", &inner);
	BSON_APPEND_INT32(&inner, "_id", 1);
	bson_append_document_end(&stage, &inner);
	bson_append_document_end(&stages, &stage);
	bson_append_array_end(&pipeline, &stages);
	cur = mongoc_collection_aggregate(m->coll, MONGOC_QUERY_NONE, &pipeline, NULL, NULL);
	while (rc == RC_OK && mongoc_cursor_next(cur, &doc))
		if ((rc = mongo_doc_id_entry(doc, out, &cls, &unsafe, NULL, err)) == RC_OK &&
		    unsafe)
			out->n--; /* its text stands for no id a lookup could find */
	if (rc == RC_OK && mongoc_cursor_error(cur, &e)) {
		/* the server answered, and said no to the stage: not an outage */
		*refused = e.domain == MONGOC_ERROR_SERVER || e.domain == MONGOC_ERROR_QUERY ||
		           e.domain == MONGOC_ERROR_COMMAND;
		rc = mongo_err(err, &e, "$sample failed");
		*refused = *refused && rc != RC_ERR_CONFIG; /* wrong credentials stay errors */
		if (*refused) {
			out->n = n0;
			rc = RC_OK;
		}
	}
	mongoc_cursor_destroy(cur);
	bson_destroy(&pipeline);
	bson_destroy(&match);
	return rc;
}

/* Runs one find (cond under m's filter when filtered); *refused says
 * whether an error was the query itself being refused (a value that cannot
 * be matched, e.g. a document _id with an empty key) rather than the
 * connection or the server being down. */
static RC_MUST_CHECK rcode
fetch_with(struct mongo *m, const bson_t *cond, bool filtered, const bson_t *projection, int limit,
           int (*fn)(void *ctx, const bson_t *doc), void *ctx, int *stop, bool *refused,
           bson_error_t *e, struct rerror *err)
{
	bson_t opts = BSON_INITIALIZER, filter = BSON_INITIALIZER;
	mongoc_cursor_t *cur;
	const bson_t *doc;
	rcode rc = RC_OK;

	*refused = false;
	if (projection)
		BSON_APPEND_DOCUMENT(&opts, "projection", projection);
	if (limit)
		BSON_APPEND_INT32(&opts, "limit", limit);
	else
		/* a server may answer a getMore with up to 16 MiB of documents:
		 * a repair's $in of 10,000 ids would be held at once */
		BSON_APPEND_INT32(&opts, "batchSize", MONGO_FETCH_BATCH_DOCS);
	if (filtered)
		with_filter(&filter, m, cond);
	else
		bson_concat(&filter, cond);
	cur = mongoc_collection_find_with_opts(m->coll, &filter, &opts, NULL);
	while (!*stop && mongoc_cursor_next(cur, &doc))
		*stop = fn(ctx, doc);
	if (mongoc_cursor_error(cur, e)) {
		/* the query itself refused, by the server or by libmongoc before
		 * sending ("Invalid filter: empty key"); not a lost connection
		 * (stream, server selection), which must interrupt the run */
		*refused = e->domain == MONGOC_ERROR_QUERY || e->domain == MONGOC_ERROR_SERVER ||
		           e->domain == MONGOC_ERROR_COMMAND || e->domain == MONGOC_ERROR_CURSOR ||
		           e->domain == MONGOC_ERROR_BSON;
		rc = mongo_err(err, e, "fetch by id failed");
	}
	mongoc_cursor_destroy(cur);
	bson_destroy(&opts);
	bson_destroy(&filter);
	return rc;
}

struct fetch {
	struct mongo *m;
	const bson_t *projection;
	int (*fn)(void *ctx, const bson_t *doc);
	void (*refused)(void *ctx, size_t index, const char *reason);
	void *ctx;
	int stop;
	struct rerror *err;
	const bson_value_t *base; /* vals[0]: a refused value's index is its offset */
	bool filtered;            /* under RECONCILE_FILTER */
};

/* One $in of vals[0..n-1]; a query the server refuses is split until the
 * value at fault stands alone, and that value is reported refused. */
static RC_MUST_CHECK rcode
fetch_in(struct fetch *f, const bson_value_t *vals, size_t n)
{
	bson_t filter = BSON_INITIALIZER, child, arr;
	bson_error_t e;
	bool refused;
	rcode rc;

	BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &child);
	BSON_APPEND_ARRAY_BEGIN(&child, "$in", &arr);
	for (size_t i = 0; i < n; i++) {
		char key[16];
		const char *kp;
		bson_uint32_to_string((uint32_t)i, &kp, key, sizeof(key));
		bson_append_value(&arr, kp, -1, &vals[i]);
	}
	bson_append_array_end(&child, &arr);
	bson_append_document_end(&filter, &child);
	rc = fetch_with(f->m, &filter, f->filtered, f->projection, 0, f->fn, f->ctx, &f->stop,
	                &refused, &e, f->err);
	bson_destroy(&filter);
	if (rc == RC_OK || !refused || f->refused == NULL || f->stop)
		return rc;
	*f->err = (struct rerror){0}; /* handled: split, or this value's */
	if (n == 1) {
		f->refused(f->ctx, (size_t)(vals - f->base), e.message);
		return RC_OK;
	}
	rc = fetch_in(f, vals, n / 2);
	return rc ? rc : fetch_in(f, vals + n / 2, n - n / 2);
}

static RC_MUST_CHECK rcode
fetch_ids(struct mongo *m, const bson_t *ids, const bson_t *projection, bool point, bool filtered,
          int (*fn)(void *ctx, const bson_t *doc),
          void (*refused)(void *ctx, size_t index, const char *reason), void *ctx,
          struct rerror *err)
{
	struct fetch f = {m, projection, fn, refused, ctx, 0, err, NULL, filtered};
	bson_value_t *vals = NULL;
	size_t n = 0, cap = 0;
	bson_iter_t it;
	rcode rc = RC_OK;

	if (!bson_iter_init(&it, ids))
		return rerror_set(err, RC_ERR_INVALID, "bad id array");
	if (point) {
		for (size_t i = 0; rc == RC_OK && !f.stop && bson_iter_next(&it); i++) {
			bson_t filter = BSON_INITIALIZER;
			bson_error_t e;
			bool refused_here;
			bson_append_iter(&filter, "_id", 3, &it);
			rc = fetch_with(m, &filter, filtered, projection, 1, fn, ctx, &f.stop,
			                &refused_here, &e, err);
			bson_destroy(&filter);
			/* as fetch_in: a value the server refuses is that value's
			 * fault, reported, and the others are still asked */
			if (rc && refused_here && refused && !f.stop) {
				*err = (struct rerror){0}; /* handled */
				refused(ctx, i, e.message);
				rc = RC_OK;
			}
		}
		return rc;
	}
	/* borrowed values (they point into ids), for splitting */
	while (bson_iter_next(&it)) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			bson_value_t *v = realloc(vals, cap * sizeof(*v));
			if (v == NULL) {
				free(vals);
				return rerror_set(err, RC_ERR_NOMEM, "out of memory");
			}
			vals = v;
		}
		vals[n++] = *bson_iter_value(&it);
	}
	f.base = vals;
	if (n)
		rc = fetch_in(&f, vals, n);
	free(vals);
	return rc;
}

rcode
mongo_fetch(struct mongo *m, const bson_t *ids, const bson_t *projection, bool point,
            int (*fn)(void *ctx, const bson_t *doc),
            void (*refused)(void *ctx, size_t index, const char *reason), void *ctx,
            struct rerror *err)
{
	return fetch_ids(m, ids, projection, point, true, fn, refused, ctx, err);
}

rcode
mongo_fetch_unfiltered(struct mongo *m, const bson_t *ids, const bson_t *projection,
                       int (*fn)(void *ctx, const bson_t *doc),
                       void (*refused)(void *ctx, size_t index, const char *reason), void *ctx,
                       struct rerror *err)
{
	return fetch_ids(m, ids, projection, false, false, fn, refused, ctx, err);
}

/* ---- change streams (live sync) ---------------------------------------- */

struct mongo_watch {
	mongoc_change_stream_t *cs;
};

/* The stream's error, if any: the server's code apart (0 when the error
 * is not the server's), the message through mongo_err. */
static RC_MUST_CHECK rcode
watch_error(struct mongo_watch *w, int *server_code, struct rerror *err, const char *what)
{
	bson_error_t e;
	const bson_t *reply = NULL;

	if (!mongoc_change_stream_error_document(w->cs, &e, &reply))
		return RC_OK;
	*server_code =
	    e.domain == MONGOC_ERROR_SERVER || e.domain == MONGOC_ERROR_QUERY ? (int)e.code : 0;
	return mongo_err(err, &e, what);
}

rcode
mongo_watch_open(struct mongo_watch **out, struct mongo *m, const bson_t *pipeline,
                 const bson_t *start_after, int32_t max_await_ms, int *server_code,
                 struct rerror *err)
{
	bson_t opts = BSON_INITIALIZER, empty = BSON_INITIALIZER;
	struct mongo_watch *w;
	rcode rc;

	*out = NULL;
	*server_code = 0;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	BSON_APPEND_UTF8(&opts, "fullDocument", "updateLookup");
	BSON_APPEND_INT32(&opts, "maxAwaitTimeMS", max_await_ms);
	if (start_after)
		BSON_APPEND_DOCUMENT(&opts, "startAfter", start_after);
	w->cs = mongoc_collection_watch(m->coll, pipeline ? pipeline : &empty, &opts);
	bson_destroy(&opts);
	bson_destroy(&empty);
	if (w->cs == NULL) {
		free(w);
		return rerror_set(err, RC_ERR_MONGO, "mongodb: cannot open a change stream");
	}
	/* the aggregate is sent now: a refused start is known at once */
	if ((rc = watch_error(w, server_code, err, "cannot open a change stream"))) {
		mongo_watch_free(w);
		return rc;
	}
	*out = w;
	return RC_OK;
}

rcode
mongo_watch_next(struct mongo_watch *w, const bson_t **event, int *server_code, struct rerror *err)
{
	*event = NULL;
	*server_code = 0;
	if (mongoc_change_stream_next(w->cs, event))
		return RC_OK;
	*event = NULL;
	return watch_error(w, server_code, err, "the change stream failed");
}

const bson_t *
mongo_watch_token(struct mongo_watch *w)
{
	return mongoc_change_stream_get_resume_token(w->cs);
}

void
mongo_watch_free(struct mongo_watch *w)
{
	if (w == NULL)
		return;
	mongoc_change_stream_destroy(w->cs);
	free(w);
}
