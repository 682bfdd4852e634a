/*
 * config.c: the settings table, and the configuration file.
 *
 * One row per setting, written with its type's macro: environment name,
 * where it lands in struct config, flags (global or per mirror, binds a
 * run, secret), default, bounds or allowed words, help text. Each type has
 * one parse function (cfg_types). Parsing (environment,
 * .env, YAML file), validation, `reconciler config`, the journal's config
 * snapshot and docs/CONFIG.md are all driven by this table, so a setting
 * exists in exactly one place. Secrets (passwords, tokens, the password in
 * MONGODB_URI) are masked on every way out.
 *
 * The YAML file is loaded whole with libyaml's document API and walked
 * three levels deep (top mapping, mirrors sequence, mirror mappings), so
 * anchors, aliases and odd nesting cannot make the walk recurse; every node
 * keeps its line for the message when something is wrong.
 */
#include "config.h"
#include "aws.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <mongoc/mongoc.h>
#include <yaml.h>

/* CFG_FIELDS and CFG_RENAMES are text too: comma lists of top-level field
 * names ("a, b") and of renames ("from:to, ..."), checked for shape here;
 * CFG_OWNED is a field list for OPENSEARCH_INDEX_OWNED_FIELDS, or the word
 * none (src/owned.c);
 * src/transform.c gives them meaning. CFG_MONGO_QUERY (a MongoDB query in
 * extended JSON, parsed with libbson) and CFG_OS_QUERY (one query-DSL
 * clause, parsed with cJSON) are text as well; src/mongo.c and
 * src/opensearch.c apply them. Each type has its parse function and its
 * name in docs/CONFIG.md (cfg_types, below the table). */
enum cfg_type {
	CFG_STRING,
	CFG_INT,
	CFG_BOOL,
	CFG_ENUM,
	CFG_MONGO_URI,
	CFG_HTTP_URL,
	CFG_INDEX_NAME,
	CFG_FIELDS,
	CFG_RENAMES,
	CFG_OWNED,
	CFG_MONGO_QUERY,
	CFG_OS_QUERY,
	CFG_RATIO /* a decimal fraction; min and max in millionths */
};
/* The flags column. CFG_GLOBAL: one per process (the journal, the HTTP
 * API, the logs); without it a setting belongs to a mirror and may differ
 * between mirrors (CFG_MIRROR, no flag). CFG_RUN: the setting decides what
 * a run compares or where and how it writes; an interrupted run whose
 * snapshot holds another value of one is not resumed (config_run_changes).
 * The rest (batch sizes, delays, concurrency, timeouts, the schedule, the
 * brake's limits, credentials) may change between a run and its resume.
 * CFG_SECRET: masked on every way out. */
enum cfg_flags { CFG_MIRROR = 0, CFG_GLOBAL = 1, CFG_RUN = 2, CFG_SECRET = 4 };

/* One word of a CFG_ENUM setting and the enum value it stands for. */
struct cfg_word {
	const char *word;
	int value;
};

struct cfg_entry {
	const char *name;
	enum cfg_type type;
	unsigned flags; /* enum cfg_flags */
	const char *def;
	int64_t min, max;             /* CFG_INT, CFG_RATIO: bounds; CFG_INDEX_NAME: max bytes;
	                                 CFG_STRING: min 1 refuses "" */
	const struct cfg_word *words; /* CFG_ENUM: ends with a NULL word */
	size_t offset;
	const char *help;
};

#define OFF(f) offsetof(struct config, f)
#define DAY_MS (24LL * 3600 * 1000)

/* A row per type (as redis's createIntConfig and pgbouncer's CF_ABS): each
 * takes what its type needs and nothing more, in one order: the name, its
 * field in struct config, the flags, the default, the type's bounds or
 * words, the help. */
#define ROW(nm, ty, fld, fl, df, lo, hi, wd, hlp)                                                  \
	{                                                                                          \
		.name = nm, .type = ty, .flags = fl, .def = df, .min = lo, .max = hi, .words = wd, \
		.offset = OFF(fld), .help = hlp                                                    \
	}
#define STRING_SETTING(nm, fld, fl, df, hlp)      ROW(nm, CFG_STRING, fld, fl, df, 0, 0, NULL, hlp)
#define NONEMPTY_SETTING(nm, fld, fl, df, hlp)    ROW(nm, CFG_STRING, fld, fl, df, 1, 0, NULL, hlp)
#define INT_SETTING(nm, fld, fl, df, lo, hi, hlp) ROW(nm, CFG_INT, fld, fl, df, lo, hi, NULL, hlp)
#define BOOL_SETTING(nm, fld, fl, df, hlp)        ROW(nm, CFG_BOOL, fld, fl, df, 0, 0, NULL, hlp)
/* words: WORDS({"word", VALUE}, ...), matched in any case */
#define ENUM_SETTING(nm, fld, fl, df, wd, hlp) ROW(nm, CFG_ENUM, fld, fl, df, 0, 0, wd, hlp)
#define WORDS(...)                             ((const struct cfg_word[]){__VA_ARGS__, {NULL, 0}})
/* lo and hi in millionths */
#define RATIO_SETTING(nm, fld, fl, df, lo, hi, hlp)                                                \
	ROW(nm, CFG_RATIO, fld, fl, df, lo, hi, NULL, hlp)
#define MONGO_URI_SETTING(nm, fld, fl, df, hlp) ROW(nm, CFG_MONGO_URI, fld, fl, df, 0, 0, NULL, hlp)
#define HTTP_URL_SETTING(nm, fld, fl, df, hlp)  ROW(nm, CFG_HTTP_URL, fld, fl, df, 0, 0, NULL, hlp)
/* hi: the most bytes; an optional name may be empty (lo 0: off) */
#define INDEX_NAME_SETTING(nm, fld, fl, df, hi, hlp)                                               \
	ROW(nm, CFG_INDEX_NAME, fld, fl, df, 1, hi, NULL, hlp)
#define OPTIONAL_INDEX_NAME_SETTING(nm, fld, fl, df, hi, hlp)                                      \
	ROW(nm, CFG_INDEX_NAME, fld, fl, df, 0, hi, NULL, hlp)
#define FIELDS_SETTING(nm, fld, fl, df, hlp)  ROW(nm, CFG_FIELDS, fld, fl, df, 0, 0, NULL, hlp)
#define RENAMES_SETTING(nm, fld, fl, df, hlp) ROW(nm, CFG_RENAMES, fld, fl, df, 0, 0, NULL, hlp)
#define OWNED_SETTING(nm, fld, fl, df, hlp)   ROW(nm, CFG_OWNED, fld, fl, df, 0, 0, NULL, hlp)
#define MONGO_QUERY_SETTING(nm, fld, fl, df, hlp)                                                  \
	ROW(nm, CFG_MONGO_QUERY, fld, fl, df, 0, 0, NULL, hlp)
#define OS_QUERY_SETTING(nm, fld, fl, df, hlp) ROW(nm, CFG_OS_QUERY, fld, fl, df, 0, 0, NULL, hlp)

static const struct cfg_entry cfg_table[] = {
    MONGO_URI_SETTING("MONGODB_URI", mongodb_uri, CFG_MIRROR | CFG_RUN | CFG_SECRET,
                      "mongodb://127.0.0.1:27017",
                      "MongoDB connection string (its password is masked everywhere)"),
    NONEMPTY_SETTING("MONGODB_DATABASE", mongodb_database, CFG_MIRROR | CFG_RUN, "test",
                     "database of the mirrored collection"),
    NONEMPTY_SETTING("MONGODB_COLLECTION", mongodb_collection, CFG_MIRROR | CFG_RUN, "documents",
                     "the mirrored collection"),
    HTTP_URL_SETTING("OPENSEARCH_URL", opensearch_url, CFG_MIRROR | CFG_RUN | CFG_SECRET,
                     "http://127.0.0.1:9200", "OpenSearch base URL (http or https)"),
    STRING_SETTING("OPENSEARCH_USERNAME", opensearch_username, CFG_MIRROR, "",
                   "basic-auth user for OpenSearch; empty = no auth"),
    STRING_SETTING("OPENSEARCH_PASSWORD", opensearch_password, CFG_MIRROR | CFG_SECRET, "",
                   "basic-auth password for OpenSearch"),
    INDEX_NAME_SETTING("OPENSEARCH_INDEX", opensearch_index, CFG_MIRROR | CFG_RUN, "documents", 255,
                       "the index that mirrors the collection"),
    STRING_SETTING(
        "OPENSEARCH_ID_FIELD", opensearch_id_field, CFG_MIRROR | CFG_RUN, "mongo_id",
        "keyword field holding the MongoDB id in each indexed document; empty = sort on _id"),
    BOOL_SETTING("OPENSEARCH_TLS_VERIFY", opensearch_tls_verify, CFG_MIRROR, "true",
                 "verify OpenSearch's TLS certificate"),
    STRING_SETTING("OPENSEARCH_CA_FILE", opensearch_ca_file, CFG_MIRROR, "",
                   "CA bundle for OpenSearch's certificate; empty = system store"),
    STRING_SETTING("OPENSEARCH_BEARER_TOKEN", opensearch_bearer_token, CFG_MIRROR | CFG_SECRET, "",
                   "bearer token sent as `Authorization: Bearer` to OpenSearch (JWT, OIDC); "
                   "not with OPENSEARCH_USERNAME or OPENSEARCH_BEARER_TOKEN_FILE"),
    STRING_SETTING("OPENSEARCH_BEARER_TOKEN_FILE", opensearch_bearer_token_file, CFG_MIRROR, "",
                   "file holding the bearer token (surrounding whitespace dropped); read again "
                   "before a request whenever the file changed, so the token can rotate"),
    STRING_SETTING("OPENSEARCH_CLIENT_CERT", opensearch_client_cert, CFG_MIRROR, "",
                   "PEM client certificate for mutual TLS with OpenSearch; empty = none"),
    STRING_SETTING("OPENSEARCH_CLIENT_KEY", opensearch_client_key, CFG_MIRROR, "",
                   "PEM private key of OPENSEARCH_CLIENT_CERT (unencrypted); empty = in the "
                   "certificate's file"),
    INT_SETTING("OPENSEARCH_SCAN_PAGE", opensearch_scan_page, CFG_MIRROR, "10000", 10, 10000,
                "ids per page of the index's id stream (search_after); larger pages stream faster, "
                "10000 is the default index.max_result_window (docs/PERFORMANCE.md)"),
    INT_SETTING("OPENSEARCH_TIMEOUT_MS", opensearch_timeout_ms, CFG_MIRROR, "60000", 1000, DAY_MS,
                "timeout of one OpenSearch request"),
    STRING_SETTING("OPENSEARCH_AWS_REGION", opensearch_aws_region, CFG_MIRROR, "",
                   "AWS region whose SigV4 signs every OpenSearch request (Amazon OpenSearch "
                   "Service or Serverless); empty = no signing; credentials from the AWS chain "
                   "(docs/AWS.md)"),
    ENUM_SETTING("OPENSEARCH_AWS_SERVICE", opensearch_aws_service, CFG_MIRROR, "es",
                 WORDS({"es", AWS_SERVICE_ES}, {"aoss", AWS_SERVICE_AOSS}),
                 "the signing service: es (Amazon OpenSearch Service) or aoss (OpenSearch "
                 "Serverless: no _refresh, docs/AWS.md)"),
    INT_SETTING("SYNC_BATCH_SIZE", sync_batch_size, CFG_MIRROR, "100", 1, 10000,
                "most documents in one _bulk request"),
    INT_SETTING("SYNC_BATCH_SIZE_BYTES", sync_batch_size_bytes, CFG_MIRROR, "5242880", 1024,
                1073741824, "most bytes in one _bulk request"),
    INT_SETTING("SYNC_BATCH_DELAY_MS", sync_batch_delay_ms, CFG_MIRROR, "0", 0, 600000,
                "pause between _bulk requests (0 = as fast as the index allows)"),
    INT_SETTING("SYNC_CONCURRENCY", sync_concurrency, CFG_MIRROR, "1", 1, 16,
                "_bulk requests in flight at once while the next batch is read and converted (each "
                "on its own connection); batches are still committed in order"),
    INT_SETTING("SYNC_MAX_RETRIES", sync_max_retries, CFG_MIRROR, "6", 0, 100,
                "retries of a _bulk answered 429/503 or lost, with exponential backoff and jitter"),
    NONEMPTY_SETTING("STATE_DB", state_db, CFG_GLOBAL, "data/reconciler.db",
                     "path of the SQLite journal"),
    STRING_SETTING(
        "RECONCILE_VERSION_FIELD", version_field, CFG_MIRROR | CFG_RUN, "",
        "field compared to find stale copies (e.g. updatedAt); empty = no stale detection"),
    ENUM_SETTING("RECONCILE_ORPHANS", orphans, CFG_MIRROR | CFG_RUN, "report",
                 WORDS({"report", ORPHANS_REPORT}, {"delete", ORPHANS_DELETE}),
                 "what to do with documents only in the index: report or delete"),
    ENUM_SETTING(
        "RECONCILE_COMPARE", compare, CFG_MIRROR | CFG_RUN, "version",
        WORDS({"version", COMPARE_VERSION}, {"content", COMPARE_CONTENT}),
        "how a copy is found stale: version (RECONCILE_VERSION_FIELD differs) or content (the "
        "transformed MongoDB document differs from the copy's _source on the fields the transform "
        "writes; with a version field set, also when the versions differ; docs/ENGINE.md)"),
    ENUM_SETTING(
        "RECONCILE_VERIFY", verify, CFG_MIRROR, "auto",
        WORDS({"auto", VERIFY_AUTO}, {"summary", VERIFY_SUMMARY}, {"merge", VERIFY_MERGE}),
        "how a check proves key ranges in sync: summary (per range, a count and a 64-bit hash "
        "sum of the ids and versions computed by the index, compared with MongoDB's; only "
        "differing ranges are streamed; needs Painless), merge (every index id streamed), or "
        "auto (summaries where the mirror qualifies and scripts run, else the merge; "
        "docs/ENGINE.md)"),
    ENUM_SETTING(
        "RECONCILE_MONGO_COUNT", mongo_count, CFG_MIRROR, "before",
        WORDS({"before", MONGO_COUNT_BEFORE}, {"pass", MONGO_COUNT_PASS}),
        "MongoDB count of a run: before (countDocuments first) or pass (the ids the pass read: "
        "exact, and no extra scan on servers where counting scans the collection)"),
    RATIO_SETTING(
        "RECONCILE_MAX_DELETE_RATIO", max_delete_ratio, CFG_MIRROR, "0.05", 0, 1000000,
        "the brake on orphan deletes: a run that finds more orphans than this fraction of the "
        "index count deletes none of them and ends held (docs/ENGINE.md#the-brake-on-deletes); "
        "--allow-deletes or {\"allowDeletes\": true} releases it for one run"),
    INT_SETTING(
        "RECONCILE_MAX_DELETES", max_deletes, CFG_MIRROR, "10000", 0, 1000000000,
        "the brake on orphan deletes: a run that finds more orphans than this deletes none of "
        "them and ends held"),
    INT_SETTING("RECONCILE_CHUNK_SIZE", chunk_size, CFG_MIRROR, "5000", 10, 100000,
                "ids compared per chunk (memory is proportional to this)"),
    INT_SETTING(
        "RECONCILE_PARTITIONS", partitions, CFG_MIRROR, "1", 1, 64,
        "key ranges a check or dry run splits into and runs at once in this process, each "
        "with its own cursors, connections and journaled run; the brake decides over them all "
        "(1 = one pass; needs OPENSEARCH_ID_FIELD; a full re-index, targeted runs and "
        "catch-ups run whole; docs/ENGINE.md#partitions)"),
    INT_SETTING("RECONCILE_MIN_AGE_MS", min_age_ms, CFG_MIRROR, "0", 0, 30 * DAY_MS,
                "leave documents changed more recently than this alone (0 = off)"),
    MONGO_QUERY_SETTING(
        "RECONCILE_FILTER", filter, CFG_MIRROR | CFG_RUN, "",
        "MongoDB query (extended JSON, e.g. {\"status\": \"active\"}) selecting the documents "
        "that belong in the index; documents outside it are not missing, and a copy whose "
        "document left it is an orphan; empty = every document (docs/ENGINE.md#filters)"),
    OS_QUERY_SETTING(
        "OPENSEARCH_QUERY", opensearch_query, CFG_MIRROR | CFG_RUN, "",
        "query-DSL clause (JSON, e.g. {\"term\": {\"source\": \"ads\"}}) selecting the index "
        "documents of this mirror in an index shared with others; documents outside it are "
        "never this mirror's orphans, and the transform must write what it selects; empty = "
        "the whole index (docs/ENGINE.md#filters)"),
    OS_QUERY_SETTING(
        "OPENSEARCH_KEEP_QUERY", opensearch_keep_query, CFG_MIRROR | CFG_RUN, "",
        "query-DSL clause (JSON, e.g. {\"range\": {\"expiresAt\": {\"lt\": \"now\"}}}) "
        "selecting index documents that may exist without a MongoDB document (an archive of "
        "documents MongoDB expires): such copies are never orphans, never deleted, counted "
        "as kept; a document MongoDB has is compared as any other; empty = none "
        "(docs/ENGINE.md#filters)"),
    FIELDS_SETTING(
        "RECONCILE_FIELDS", fields, CFG_MIRROR | CFG_RUN, "",
        "top-level fields written to the index (e.g. title,price); empty = all; the id field is "
        "always written (docs/TRANSFORM.md)"),
    FIELDS_SETTING("RECONCILE_EXCLUDE", exclude, CFG_MIRROR | CFG_RUN, "",
                   "top-level fields never written to the index (e.g. internal,audit)"),
    RENAMES_SETTING(
        "RECONCILE_RENAME", rename, CFG_MIRROR | CFG_RUN, "",
        "top-level fields written under another name (e.g. title:name,qty:quantity; names as in "
        "MongoDB, applied after RECONCILE_FIELDS and RECONCILE_EXCLUDE)"),
    STRING_SETTING(
        "RECONCILE_TRANSFORM", transform, CFG_MIRROR | CFG_RUN, "",
        "Lua 5.4 script whose transform(doc) returns the body to index, nil to leave the "
        "document out, or body, routing; runs after the three above; empty = none "
        "(docs/TRANSFORM.md)"),
    INT_SETTING(
        "RECONCILE_TRANSFORM_MAX_INSTRUCTIONS", transform_max_instructions, CFG_MIRROR, "10000000",
        1000, 100000000000LL,
        "most Lua instructions one transform(doc) call may run; past it that document fails"),
    INT_SETTING(
        "RECONCILE_TRANSFORM_MAX_MEMORY", transform_max_memory, CFG_MIRROR, "67108864", 1048576,
        17179869184LL,
        "most bytes the script's Lua state may hold (per thread); past it the document fails and "
        "the state is rebuilt"),
    INT_SETTING("RECONCILE_TRANSFORM_MAX_CONSECUTIVE_ERRORS", transform_max_consecutive_errors,
                CFG_MIRROR, "100", 0, 1000000000,
                "the run stops (failed, one error naming the script's message) once the "
                "transform fails on this many documents in a row; 0 = never"),
    FIELDS_SETTING(
        "OPENSEARCH_ROUTING_FIELD", routing_field, CFG_MIRROR | CFG_RUN, "",
        "top-level fields whose value routes a written document, tried in order (e.g. "
        "page_id,countrySearchedfor; empty, null or missing: the next), else the id; routing the "
        "transform script returns wins; empty = no routing (docs/ENGINE.md)"),
    ENUM_SETTING(
        "RECONCILE_WRITE_MODE", write_mode, CFG_MIRROR | CFG_RUN, "upsert",
        WORDS({"upsert", WRITE_UPSERT}, {"index", WRITE_INDEX}),
        "how a repair writes a document: upsert (a partial update with doc_as_upsert: fields only "
        "the index has survive) or index (the whole copy replaced: an exact mirror)"),
    OWNED_SETTING(
        "OPENSEARCH_INDEX_OWNED_FIELDS", owned_fields, CFG_MIRROR | CFG_RUN, "",
        "top-level fields only the index writes, kept by every repair (e.g. "
        "image_embedding,image_phash: an enrichment job's); any other field a copy holds and "
        "the transform does not write is a leftover, stale content a check removes; none = the "
        "index owns no field; empty = not said: leftovers are reported, never removed "
        "(docs/TRANSFORM.md)"),
    ENUM_SETTING(
        "OPENSEARCH_VERSION_TYPE", version_type, CFG_MIRROR | CFG_RUN, "internal",
        WORDS({"internal", VERSION_INTERNAL}, {"external_gte", VERSION_EXTERNAL_GTE}),
        "internal (no version sent) or external_gte (the version field's value in epoch ms is sent "
        "as the document's external version, so a newer copy is never overwritten: skipped_newer); "
        "external_gte needs RECONCILE_WRITE_MODE=index and RECONCILE_VERSION_FIELD"),
    STRING_SETTING(
        "OPENSEARCH_PIPELINE", pipeline, CFG_MIRROR | CFG_RUN, "",
        "ingest pipeline named on every index action (RECONCILE_WRITE_MODE=index); update actions "
        "run no named pipeline, only the index's index.default_pipeline (a warning says so); "
        "empty = none named (docs/ENGINE.md)"),
    NONEMPTY_SETTING(
        "HTTP_BIND",
        http_bind, CFG_GLOBAL, "127.0.0.1",
        "IPv4 or IPv6 address the HTTP API listens on (0.0.0.0: every interface; beyond "
        "loopback set API_TOKEN: the service warns at start without one)"),
    INT_SETTING("PORT", port, CFG_GLOBAL, "3000", 0, 65535,
                "port the HTTP API listens on (0 = any free port)"),
    BOOL_SETTING("RECONCILIATION_ENABLED", reconciliation_enabled, CFG_MIRROR, "true",
                 "start the schedule when the service starts"),
    INT_SETTING("RECONCILIATION_STARTUP_DELAY_MS", startup_delay_ms, CFG_MIRROR, "120000", 0,
                DAY_MS, "wait before the first scheduled run"),
    INT_SETTING("RECONCILIATION_INTERVAL_MS", interval_ms, CFG_MIRROR, "1800000", 1000, 30 * DAY_MS,
                "time between scheduled runs"),
    BOOL_SETTING("COUNT_MONITOR_ENABLED", count_monitor_enabled, CFG_MIRROR, "true",
                 "compare counts periodically and start a run past the threshold"),
    INT_SETTING("COUNT_MONITOR_INTERVAL_MS", count_monitor_interval_ms, CFG_MIRROR, "18000000",
                1000, 30 * DAY_MS, "time between count comparisons"),
    INT_SETTING("COUNT_MONITOR_THRESHOLD", count_monitor_threshold, CFG_MIRROR, "100", 0,
                1000000000, "count difference that starts a run"),
    BOOL_SETTING("CHANGE_STREAM_ENABLED", change_stream_enabled, CFG_MIRROR, "false",
                 "live sync in the service: reconciler serve tails the mirror's change stream "
                 "beside its schedule (as reconciler sync does); the API starts and stops it"),
    INT_SETTING("CHANGE_STREAM_BATCH_MS", change_stream_batch_ms, CFG_MIRROR, "500", 10, 60000,
                "live sync (reconciler sync): longest an event waits for its _bulk batch "
                "(batches are also cut by SYNC_BATCH_SIZE and SYNC_BATCH_SIZE_BYTES)"),
    BOOL_SETTING("CHANGE_STREAM_CATCHUP", change_stream_catchup, CFG_MIRROR, "true",
                 "live sync: close a gap in the change stream (its place lost) with a run "
                 "of kind catchup (a check of the whole mirror); false: the gap is only "
                 "journaled"),
    STRING_SETTING("API_TOKEN", api_token, CFG_GLOBAL | CFG_SECRET, "",
                   "when set, POST routes require Authorization: Bearer <token>"),
    BOOL_SETTING("API_TOKEN_READ", api_token_read, CFG_GLOBAL, "false",
                 "require the token on GET routes too (health probes stay open)"),
    ENUM_SETTING(
        "LOG_LEVEL", log_level, CFG_GLOBAL, "info",
        WORDS({"error", LOG_ERROR}, {"warn", LOG_WARN}, {"info", LOG_INFO}, {"debug", LOG_DEBUG}),
        "error, warn, info or debug"),
    STRING_SETTING("LOG_DIR", log_dir, CFG_GLOBAL, "logs",
                   "directory of combined.log and error.log; empty = stderr only"),
    INT_SETTING(
        "RECONCILE_CONCURRENCY", concurrency, CFG_GLOBAL, "1", 1, 64,
        "runs of different mirrors the service lets overlap (one mirror never runs two at once)"),
    /* lease.c: one run per mirror across processes and hosts */
    OPTIONAL_INDEX_NAME_SETTING(
        "RECONCILE_LEASE_INDEX", lease_index, CFG_MIRROR, "reconciler-leases", 255,
        "index on the mirror's OpenSearch holding each running mirror's lease, so two runs of "
        "one mirror (one collection into one index) never overlap, whatever journal or host "
        "they run from; empty = off: only the journal lock keeps runs apart "
        "(docs/ENGINE.md#one-run-per-mirror-the-lease)"),
    INT_SETTING("RECONCILE_LEASE_TTL_MS", lease_ttl_ms, CFG_MIRROR, "60000", 1000, 3600000,
                "how long a lease lasts unrenewed: renewed every third of it; a holder that could "
                "not renew it for two thirds stops its run; a process that died holding it blocks "
                "others this long (unless it ran on the same host: then at once)"),
};

#define CFG_COUNT (sizeof(cfg_table) / sizeof(cfg_table[0]))

static void *
field(struct config *cfg, const struct cfg_entry *e)
{
	return (char *)cfg + e->offset;
}

static const void *
cfield(const struct config *cfg, const struct cfg_entry *e)
{
	return (const char *)cfg + e->offset;
}

static void
allowed(const struct cfg_entry *e, char *out, size_t len)
{
	size_t n = 0;

	switch (e->type) {
	case CFG_INT:
		snprintf(out, len, "an integer from %lld to %lld", (long long)e->min,
		         (long long)e->max);
		break;
	case CFG_BOOL:
		snprintf(out, len, "true or false (also yes/no, on/off, 1/0; any case)");
		break;
	case CFG_ENUM:
		out[0] = '\0';
		for (int i = 0; e->words[i].word; i++)
			n += (size_t)snprintf(out + n, len - n, "%s%s", i ? ", " : "one of ",
			                      e->words[i].word);
		snprintf(out + n, len - n, " (any case)");
		break;
	case CFG_MONGO_URI:
		snprintf(out, len,
		         "a mongodb:// or mongodb+srv:// URI that libmongoc parses, "
		         "'@' in the password as %%40");
		break;
	case CFG_HTTP_URL:
		snprintf(out, len,
		         "an http:// or https:// URL that libcurl parses, without "
		         "path, query or fragment");
		break;
	case CFG_STRING:
		snprintf(out, len, e->min ? "a non-empty string" : "any string");
		break;
	case CFG_INDEX_NAME:
		snprintf(out, len,
		         "%s naming one index or alias as OpenSearch allows it: "
		         "at most %lld bytes, "
		         "lowercase, none of \\ / * ? \" < > | , # : or space, not starting "
		         "with - _ or +, not . or .. (a wildcard or a list would read, and "
		         "delete from, other indexes)",
		         e->min ? "a non-empty string" : "empty, or a string", (long long)e->max);
		break;
	case CFG_FIELDS:
		snprintf(out, len, "field names separated by commas (top level: no '.')");
		break;
	case CFG_RENAMES:
		snprintf(out, len,
		         "from:to pairs of field names separated by commas (top level: no "
		         "'.'; each name renamed once, each new name used once)");
		break;
	case CFG_OWNED:
		snprintf(out, len,
		         "empty (blanks alone too), the word none alone (lowercase), or field "
		         "names separated by commas (top level: no '.'; each once; none of "
		         "them none in any case, nor starting with _: metadata the index "
		         "keeps itself)");
		break;
	case CFG_MONGO_QUERY:
		snprintf(out, len,
		         "empty, or a JSON object: a MongoDB 4.4 query in canonical extended "
		         "JSON ({\"$oid\": ...}, {\"$date\": ...}; $type with a type name)");
		break;
	case CFG_OS_QUERY:
		snprintf(out, len,
		         "empty, or a JSON object holding one query-DSL clause such as "
		         "{\"term\": {\"source\": \"ads\"}}");
		break;
	case CFG_RATIO:
		snprintf(out, len, "a decimal number from %g to %g", (double)e->min / 1e6,
		         (double)e->max / 1e6);
		break;
	}
}

/* An index (or alias) name OpenSearch accepts, naming exactly one thing
 * (OpenSearch's index naming restrictions: lowercase, no \ / * ? " < > | ,
 * # : or space, no leading - _ +, not . or .., at most 255 bytes). A
 * wildcard or a comma list would make the pass read other indexes and
 * delete their documents as orphans. */
static bool
index_name_ok(const char *v, size_t max)
{
	size_t n = strlen(v);

	if (n == 0 || n > max || !strcmp(v, ".") || !strcmp(v, "..") || strchr("-_+", v[0]))
		return false;
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20 || (*p >= 'A' && *p <= 'Z') ||
		    strchr("\\/*?\"<>|,#: ", *p))
			return false;
	return true;
}

/* A rejected URI as shown in the message. It may hold an '@' or a '/' its
 * author forgot to percent-encode, so everything from the first ':' after
 * the scheme to the last '@' is masked: too much rather than a password. */
static char *
mask_bad_uri(const char *v)
{
	const char *auth = strstr(v, "://"), *colon, *at = strrchr(v, '@');
	char *out;

	if (auth == NULL || at == NULL || at < auth)
		return util_mask_uri(v);
	auth += 3;
	colon = memchr(auth, ':', (size_t)(at - auth));
	if (colon == NULL)
		return strdup(v);
	out = malloc(strlen(v) + 4);
	if (out)
		sprintf(out, "%.*s***%s", (int)(colon + 1 - v), v, at);
	return out;
}

/* libmongoc logs the precise reason (e.g. "Port could not be parsed")
 * before it returns a vaguer error: the first such line is kept. */
static void
capture_mongoc_log(mongoc_log_level_t level, const char *domain, const char *message, void *ctx)
{
	char *first = ctx;

	(void)domain;
	if (level <= MONGOC_LOG_LEVEL_ERROR && first[0] == '\0')
		snprintf(first, 200, "%s", message);
}

/* Parses v with the library that will use it, so a URI it would refuse at
 * the first connection is refused now, before anything is journaled. On
 * failure, why says what the library said (the password masked). */
static bool
mongo_uri_parses(const char *v, char *why, size_t len)
{
	bson_error_t be = {0};
	char logged[200] = "";
	bool ok, at;

	why[0] = '\0';
	/* config is read before mongo_global_init installs the project's
	 * handler (main, fixture), so the default is what comes back */
	mongoc_log_set_handler(capture_mongoc_log, logged);
	mongoc_uri_t *uri = mongoc_uri_new_with_error(v, &be);
	mongoc_log_set_handler(mongoc_log_default_handler, NULL);
	ok = uri != NULL;
	if (!ok)
		snprintf(why, len, "libmongoc: %.150s%s%.100s", be.message, *logged ? ": " : "",
		         logged);
	/* libmongoc splits at the first '@' and takes the rest as host
	 * names, so part of a password with a raw '@' would end up in
	 * DNS errors: no host name has one */
	const char *srv = ok ? mongoc_uri_get_srv_hostname(uri) : NULL;
	at = srv && strchr(srv, '@');
	for (const mongoc_host_list_t *h = ok ? mongoc_uri_get_hosts(uri) : NULL; h; h = h->next)
		at |= strchr(h->host, '@') != NULL;
	if (at) {
		ok = false;
		snprintf(why, len,
		         "a host name holds '@': percent-encode an '@' of the "
		         "user name or password as %%40");
	}
	mongoc_uri_destroy(uri);
	/* whatever the library echoed, the password does not leave */
	util_mask_secrets(why, len);
	return ok;
}

/* The same for OPENSEARCH_URL, with libcurl. */
static bool
http_url_parses(const char *v, char *why, size_t len)
{
	CURLU *u = curl_url();
	char *part = NULL;
	CURLUcode c = u ? curl_url_set(u, CURLUPART_URL, v, 0) : CURLUE_OUT_OF_MEMORY;
	bool ok = false;

	why[0] = '\0';
	if (c)
		snprintf(why, len, "libcurl: %s", curl_url_strerror(c));
	else if (curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK ||
	         curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK)
		/* paths are appended to it: a query or fragment would break them */
		snprintf(why, len, "a base URL has no query or fragment");
	else if (curl_url_get(u, CURLUPART_PATH, &part, 0) == CURLUE_OK &&
	         part[strspn(part, "/")] != '\0')
		/* every request's path is appended to it: http://h:9200/myindex
		 * would send /myindex/myindex/_search, "no handler found" */
		snprintf(why, len,
		         "a base URL has no path (%.64s): name the index in OPENSEARCH_INDEX, "
		         "and give the cluster's URL, e.g. http://host:9200",
		         part);
	else
		ok = true;
	curl_free(part);
	curl_url_cleanup(u);
	util_mask_secrets(why, len);
	return ok;
}

/* The file's key of a setting: its environment name in lower case. */
static void
file_key(const struct cfg_entry *e, char *out, size_t len)
{
	size_t i;

	for (i = 0; e->name[i] && i + 1 < len; i++)
		out[i] = (char)tolower((unsigned char)e->name[i]);
	out[i] = '\0';
}

/* The length of the name at s[0..n) without surrounding blanks; *start
 * gets where it begins. */
static size_t
trimmed(const char *s, size_t n, const char **start)
{
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	*start = s;
	return n;
}

/* Whether two names of a list, given as (start, length), are equal. */
static bool
same_name(const char *a, size_t an, const char *b, size_t bn)
{
	return an == bn && memcmp(a, b, an) == 0;
}

/* Whether v is a CFG_FIELDS list ("a, b": names without '.', ':' or
 * nothing between commas) or, with pairs, a CFG_RENAMES list ("a:b, c:d",
 * no source or target given twice). Empty is an empty list. */
static bool
list_ok(const char *v, bool pairs)
{
	const char *item = v;
	size_t count = 0;

	if (*v == '\0')
		return true;
	for (;;) {
		size_t n = strcspn(item, ","), ln, rn = 0;
		const char *l, *r = NULL, *colon = memchr(item, ':', n);

		ln = trimmed(item, colon && pairs ? (size_t)(colon - item) : n, &l);
		if (pairs) {
			if (colon == NULL)
				return false;
			rn = trimmed(colon + 1, n - (size_t)(colon + 1 - item), &r);
		}
		if (ln == 0 || memchr(l, '.', ln) || memchr(l, ':', ln))
			return false;
		if (pairs && (rn == 0 || memchr(r, '.', rn) || memchr(r, ':', rn)))
			return false;
		if (pairs) {
			/* each source renamed once, each target written once */
			const char *prev = v;
			for (size_t i = 0; i < count; i++) {
				size_t pn = strcspn(prev, ","), pln, prn;
				const char *pl, *pr, *pc = memchr(prev, ':', pn);
				pln = trimmed(prev, (size_t)(pc - prev), &pl);
				prn = trimmed(pc + 1, pn - (size_t)(pc + 1 - prev), &pr);
				if (same_name(pl, pln, l, ln) || same_name(pr, prn, r, rn))
					return false;
				prev += pn + 1;
			}
		}
		count++;
		if (item[n] == '\0')
			return true;
		item += n + 1;
	}
}

/* ---- RECONCILE_FILTER and OPENSEARCH_QUERY ------------------------------ */

/* MongoDB 4.4's query operators: those of a query's top level (or an
 * $elemMatch), and those of a field's condition ({field: {$op: ...}}).
 * Operators whose values are not queries ($expr, $jsonSchema, $where and
 * geometry) are not looked into: the server judges them. */
static const char *const query_top_ops[] = {"$and",        "$or",    "$nor",     "$expr",
                                            "$jsonSchema", "$where", "$comment", NULL};
static const char *const query_field_ops[] = {"$eq",
                                              "$ne",
                                              "$gt",
                                              "$gte",
                                              "$lt",
                                              "$lte",
                                              "$in",
                                              "$nin",
                                              "$exists",
                                              "$type",
                                              "$mod",
                                              "$regex",
                                              "$options",
                                              "$all",
                                              "$size",
                                              "$elemMatch",
                                              "$not",
                                              "$bitsAllClear",
                                              "$bitsAllSet",
                                              "$bitsAnyClear",
                                              "$bitsAnySet",
                                              "$geoWithin",
                                              "$geoIntersects",
                                              NULL};

static bool
word_in(const char *w, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(w, list[i]) == 0)
			return true;
	return false;
}

static bool query_doc_ok(bson_iter_t *it, bool elem_match, int depth, char *why, size_t len);

/* Operators the id stream cannot take: its query is read in _id order. */
static bool
query_op_refused(const char *key, char *why, size_t len)
{
	if (strcmp(key, "$text") == 0)
		snprintf(why, len,
		         "$text needs a text index and scores documents: the id stream reads "
		         "in _id order; select with a plain field condition instead");
	else if (strcmp(key, "$near") == 0 || strcmp(key, "$nearSphere") == 0)
		snprintf(why, len,
		         "%s sorts by distance: the id stream reads in _id order; use "
		         "$geoWithin",
		         key);
	else
		return false;
	return true;
}

/* Whether v is a document whose first key is an operator ($...). */
static bool
holds_operator(const bson_iter_t *v, const char **op)
{
	bson_iter_t first;

	if (!BSON_ITER_HOLDS_DOCUMENT(v) || !bson_iter_recurse(v, &first) ||
	    !bson_iter_next(&first) || bson_iter_key(&first)[0] != '$')
		return false;
	*op = bson_iter_key(&first);
	return true;
}

/* The values of $eq, $ne, $in, $nin and $all: values, never operators,
 * except $all's {$elemMatch: query} items (looked into). MongoDB refuses
 * an operator object there (or, for $eq, no stored document can match it:
 * field names cannot start with $), while FerretDB quietly matches
 * nothing, which would make every copy one that "left the filter". */
static bool
values_ok(const char *field, const char *op, const bson_iter_t *v, int depth, char *why, size_t len)
{
	bson_iter_t items;
	const char *inner;

	if (strcmp(op, "$eq") && strcmp(op, "$ne") && strcmp(op, "$in") && strcmp(op, "$nin") &&
	    strcmp(op, "$all"))
		return true;
	if (!BSON_ITER_HOLDS_ARRAY(v)) {
		if (!holds_operator(v, &inner))
			return true;
		snprintf(why, len, "%s: %s takes a value, not an operator object ({%.60s: ...})",
		         field, op, inner);
		return false;
	}
	bson_iter_recurse(v, &items);
	while (bson_iter_next(&items)) {
		if (!holds_operator(&items, &inner))
			continue;
		if (strcmp(op, "$all") == 0 && strcmp(inner, "$elemMatch") == 0) {
			bson_iter_t item, em;
			bson_iter_recurse(&items, &item);
			if (!bson_iter_next(&item) || !BSON_ITER_HOLDS_DOCUMENT(&item) ||
			    !bson_iter_recurse(&item, &em) || bson_iter_next(&item)) {
				snprintf(why, len, "%s: $all's {$elemMatch: ...} needs one object",
				         field);
				return false;
			}
			if (!query_doc_ok(&em, true, depth + 1, why, len))
				return false;
			continue;
		}
		snprintf(why, len, "%s: %s takes values%s, not an operator object ({%.60s: ...})",
		         field, op, strcmp(op, "$all") == 0 ? " or {$elemMatch: query}" : "",
		         inner);
		return false;
	}
	return true;
}

/* A field's condition: {$op: value, ...} (all keys operators) or a value
 * compared for equality (not looked into). */
static bool
condition_ok(const char *field, bson_iter_t *it, int depth, char *why, size_t len)
{
	bson_iter_t sub, probe;

	if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &probe) ||
	    !bson_iter_next(&probe) || bson_iter_key(&probe)[0] != '$')
		return true; /* equality with a value */
	bson_iter_recurse(it, &sub);
	while (bson_iter_next(&sub)) {
		const char *op = bson_iter_key(&sub);
		if (query_op_refused(op, why, len))
			return false;
		if (!word_in(op, query_field_ops)) {
			snprintf(why, len,
			         "%s: unknown operator %.60s (MongoDB 4.4 refuses it in a query%s)",
			         field, op,
			         op[0] == '$' ? "" : ": a condition's keys are all operators");
			return false;
		}
		if (!values_ok(field, op, &sub, depth, why, len))
			return false;
		if (strcmp(op, "$elemMatch") == 0) {
			bson_iter_t em;
			if (!BSON_ITER_HOLDS_DOCUMENT(&sub) || !bson_iter_recurse(&sub, &em)) {
				snprintf(why, len, "%s: $elemMatch needs an object", field);
				return false;
			}
			if (!query_doc_ok(&em, true, depth + 1, why, len))
				return false;
		} else if (strcmp(op, "$not") == 0 && BSON_ITER_HOLDS_DOCUMENT(&sub)) {
			bson_iter_t first;
			if (!bson_iter_recurse(&sub, &first) || !bson_iter_next(&first) ||
			    bson_iter_key(&first)[0] != '$') {
				snprintf(why, len, "%s: $not needs an operator object or a regex",
				         field);
				return false;
			}
			if (!condition_ok(field, &sub, depth + 1, why, len))
				return false;
		}
	}
	return true;
}

/* A query document: field conditions and top-level operators ($and, $or,
 * $nor hold non-empty arrays of queries). In an $elemMatch, a field's
 * operators may stand at the top. */
static bool
query_doc_ok(bson_iter_t *it, bool elem_match, int depth, char *why, size_t len)
{
	if (depth > 64) {
		snprintf(why, len, "nested deeper than 64 levels");
		return false;
	}
	while (bson_iter_next(it)) {
		const char *key = bson_iter_key(it);
		if (key[0] != '$') {
			if (!condition_ok(key, it, depth, why, len))
				return false;
			continue;
		}
		if (query_op_refused(key, why, len))
			return false;
		if (elem_match && word_in(key, query_field_ops))
			continue;
		if (!word_in(key, query_top_ops)) {
			snprintf(why, len,
			         "unknown top-level operator %.60s (MongoDB 4.4 refuses it%s)", key,
			         word_in(key, query_field_ops)
			             ? ": it belongs in a field's condition, "
			               "{field: {op: value}}"
			             : "");
			return false;
		}
		if (strcmp(key, "$and") == 0 || strcmp(key, "$or") == 0 ||
		    strcmp(key, "$nor") == 0) {
			bson_iter_t arr, q;
			size_t n = 0;
			if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &arr))
				goto bad_list;
			while (bson_iter_next(&arr)) {
				n++;
				if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &q))
					goto bad_list;
				if (!query_doc_ok(&q, false, depth + 1, why, len))
					return false;
			}
			if (n == 0)
				goto bad_list;
		}
		continue;
	bad_list:
		snprintf(why, len, "%s needs a non-empty array of query objects", key);
		return false;
	}
	return true;
}

/* Whether v is one JSON value and nothing after it: libbson reads the
 * first of two objects ({"a":1}{"b":2}) and ignores the second, which the
 * user meant to apply too. Extended JSON is JSON ({"$numberDouble":
 * "NaN"}, not a bare NaN). */
static bool
one_json_value(const char *v, const char *several, char *why, size_t len)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithOpts(v, &end, false);

	if (j == NULL) {
		snprintf(why, len, "not JSON (near \"%.40s\")%s", end ? end : "",
		         end && (strncmp(end, "NaN", 3) == 0 || strncmp(end, "Infinity", 8) == 0 ||
		                 strncmp(end, "-Infinity", 9) == 0)
		             ? "; extended JSON writes it {\"$numberDouble\": \"NaN\"}"
		             : "");
		return false;
	}
	cJSON_Delete(j);
	while (end && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (end && *end) {
		snprintf(why, len,
		         "text after the JSON object (near \"%.40s\"): give one object%s%s%s", end,
		         *end == '{' ? " (several conditions go in one: " : "",
		         *end == '{' ? several : "", *end == '{' ? ")" : "");
		return false;
	}
	return true;
}

/* Whether v is a MongoDB query (RECONCILE_FILTER): empty, or a JSON object
 * libbson parses (canonical or relaxed extended JSON) whose operators
 * MongoDB 4.4 takes in a find that reads in _id order. */
static bool
mongo_query_ok(const char *v, char *why, size_t len)
{
	const char *p = v;
	bson_error_t be = {0};
	bson_t b;
	bson_iter_t it;
	bool ok;

	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p == '\0' && p != v) { /* a run would take it for a query (QA11 F2) */
		snprintf(why, len, "only blanks: leave it empty for none");
		return false;
	}
	if (*p == '\0')
		return true;
	if (*p != '{') {
		snprintf(why, len, "not a JSON object");
		return false;
	}
	if (!one_json_value(v, "{\"a\": 1, \"b\": 2}", why, len))
		return false;
	if (!bson_init_from_json(&b, v, -1, &be)) {
		/* {"$type": 2} reads as a legacy binary's subtype in extended JSON */
		bool type_hint = strstr(be.message, "binary") || strstr(be.message, "BSON_TYPE");
		snprintf(why, len, "libbson cannot parse it: %.200s%s", be.message,
		         type_hint ? " ($type takes a type name here, e.g. {\"$type\": \"string\"})"
		                   : "");
		return false;
	}
	ok = bson_iter_init(&it, &b) && query_doc_ok(&it, false, 0, why, len);
	bson_destroy(&b);
	return ok;
}

/* Whether v is a query-DSL clause (OPENSEARCH_QUERY): empty, or a JSON
 * object with one member, the clause's type, whose value is an object. */
static bool
os_query_ok(const char *v, char *why, size_t len)
{
	const char *p = v;
	cJSON *j;
	bool ok = false;

	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p == '\0' && p != v) { /* a run would take it for a query (QA11 F2) */
		snprintf(why, len, "only blanks: leave it empty for none");
		return false;
	}
	if (*p == '\0')
		return true;
	if (!one_json_value(v, "{\"bool\": {\"filter\": [clause, clause]}}", why, len))
		return false;
	j = cJSON_Parse(v);
	if (j == NULL)
		snprintf(why, len, "not JSON (near \"%.40s\")",
		         cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
	else if (!cJSON_IsObject(j))
		snprintf(why, len, "not a JSON object");
	else if (cJSON_GetArraySize(j) != 1)
		snprintf(why, len,
		         "an object with %d members: a clause has one, its type (term, "
		         "terms, bool, range, ...)",
		         cJSON_GetArraySize(j));
	else if (strcmp(j->child->string, "query") == 0)
		snprintf(why, len, "give the clause itself, without the \"query\" around it");
	else if (!cJSON_IsObject(j->child))
		snprintf(why, len, "%.60s: a clause's value is an object", j->child->string);
	else
		ok = true;
	cJSON_Delete(j);
	return ok;
}

/* ---- one parse function per type ---------------------------------------
 *
 * Each checks v against its row and stores it: RC_OK, RC_ERR_CONFIG when v
 * is not allowed (why may say more; set_value writes the message) or
 * RC_ERR_NOMEM. */

/* Stores a copy of v in a text setting. */
static RC_MUST_CHECK rcode
set_text(struct config *cfg, const struct cfg_entry *e, const char *v)
{
	char **slot = field(cfg, e);
	char *copy = strdup(v);

	if (copy == NULL)
		return RC_ERR_NOMEM;
	free(*slot);
	*slot = copy;
	return RC_OK;
}

static RC_MUST_CHECK rcode
parse_string(struct config *cfg, const struct cfg_entry *e, const char *v, char *why, size_t len)
{
	if (e->min && *v == '\0')
		return RC_ERR_CONFIG;
	return set_text(cfg, e, v);
}

static RC_MUST_CHECK rcode
parse_int(struct config *cfg, const struct cfg_entry *e, const char *v, char *why, size_t len)
{
	int64_t n;

	if (util_parse_i64(v, &n) || n < e->min || n > e->max)
		return RC_ERR_CONFIG;
	*(int64_t *)field(cfg, e) = n;
	return RC_OK;
}

static RC_MUST_CHECK rcode
parse_bool(struct config *cfg, const struct cfg_entry *e, const char *v, char *why, size_t len)
{
	if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") ||
	    !strcasecmp(v, "on"))
		*(bool *)field(cfg, e) = true;
	else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") ||
	         !strcasecmp(v, "off"))
		*(bool *)field(cfg, e) = false;
	else
		return RC_ERR_CONFIG;
	return RC_OK;
}

static RC_MUST_CHECK rcode
parse_enum(struct config *cfg, const struct cfg_entry *e, const char *v, char *why, size_t len)
{
	for (int i = 0; e->words[i].word; i++) {
		if (!strcasecmp(v, e->words[i].word)) {
			*(int *)field(cfg, e) = e->words[i].value;
			return RC_OK;
		}
	}
	return RC_ERR_CONFIG;
}

static RC_MUST_CHECK rcode
parse_mongo_uri(struct config *cfg, const struct cfg_entry *e, const char *v, char *why, size_t len)
{
	if (strncmp(v, "mongodb://", 10) && strncmp(v, "mongodb+srv://", 14))
		return RC_ERR_CONFIG;
	if (strlen(v) <= (v[7] == '+' ? 14u : 10u) || !mongo_uri_parses(v, why, len))
		return RC_ERR_CONFIG;
	return set_text(cfg, e, v);
}

static RC_MUST_CHECK rcode
parse_http_url(struct config *cfg, const struct cfg_entry *e, const char *v, char *why, size_t len)
{
	char *url;

	/* schemes are case-insensitive (RFC 3986 3.1), as libcurl takes them */
	if (strncasecmp(v, "http://", 7) && strncasecmp(v, "https://", 8))
		return RC_ERR_CONFIG;
	if (strlen(v) <= (tolower((unsigned char)v[4]) == 's' ? 8u : 7u) || strpbrk(v, " \t\r\n") ||
	    !http_url_parses(v, why, len))
		return RC_ERR_CONFIG;
	if (set_text(cfg, e, v))
		return RC_ERR_NOMEM;
	/* a URL's trailing slash would double in every path we build */
	url = *(char **)field(cfg, e);
	while (strlen(url) > 8 && url[strlen(url) - 1] == '/')
		url[strlen(url) - 1] = '\0';
	return RC_OK;
}

static RC_MUST_CHECK rcode
parse_index_name(struct config *cfg, const struct cfg_entry *e, const char *v, char *why,
                 size_t len)
{
	/* min 0: an optional name, empty = off (RECONCILE_LEASE_INDEX) */
	if (e->min == 0 && *v == '\0')
		return set_text(cfg, e, v);
	return index_name_ok(v, (size_t)e->max) ? set_text(cfg, e, v) : RC_ERR_CONFIG;
}

static RC_MUST_CHECK rcode
parse_fields(struct config *cfg, const struct cfg_entry *e, const char *v, char *why, size_t len)
{
	return list_ok(v, false) ? set_text(cfg, e, v) : RC_ERR_CONFIG;
}

static RC_MUST_CHECK rcode
parse_renames(struct config *cfg, const struct cfg_entry *e, const char *v, char *why, size_t len)
{
	return list_ok(v, true) ? set_text(cfg, e, v) : RC_ERR_CONFIG;
}

/* OPENSEARCH_INDEX_OWNED_FIELDS (QA20 F9): what src/owned.c reads must
 * have one meaning. Blanks alone are empty (not said); none is the keyword
 * only alone and lowercase; a name is given once, is not none in another
 * case (a field named None would read as the keyword to a person) and
 * does not start with '_' (_id, _routing, _source ...: the index's
 * metadata, never a copy's field). */
static RC_MUST_CHECK rcode
parse_owned(struct config *cfg, const struct cfg_entry *e, const char *v, char *why, size_t len)
{
	const char *all, *item;
	size_t n = trimmed(v, strlen(v), &all);

	if (n == 0)
		return set_text(cfg, e, "");
	if (n == 4 && memcmp(all, "none", 4) == 0)
		return set_text(cfg, e, "none");
	if (!list_ok(v, false)) {
		snprintf(why, len, "a name is empty or holds '.' or ':'");
		return RC_ERR_CONFIG;
	}
	for (item = v;; item += strcspn(item, ",") + 1) {
		const char *name, *prev = v;
		size_t nn = trimmed(item, strcspn(item, ","), &name);
		if (nn == 4 && strncasecmp(name, "none", 4) == 0) {
			snprintf(why, len,
			         "%.4s is a field name here: the word none (the index owns no "
			         "field) is lowercase and stands alone",
			         name);
			return RC_ERR_CONFIG;
		}
		if (*name == '_') {
			snprintf(why, len,
			         "%.*s is metadata (a name starting with _), kept by the index "
			         "itself, not a field of the copies",
			         (int)(nn > 100 ? 100 : nn), name);
			return RC_ERR_CONFIG;
		}
		while (prev < item) {
			const char *pn;
			size_t pl = trimmed(prev, strcspn(prev, ","), &pn);
			if (same_name(pn, pl, name, nn)) {
				snprintf(why, len, "%.*s is given twice",
				         (int)(nn > 100 ? 100 : nn), name);
				return RC_ERR_CONFIG;
			}
			prev += strcspn(prev, ",") + 1;
		}
		if (item[strcspn(item, ",")] == '\0')
			break;
	}
	return set_text(cfg, e, v);
}

static RC_MUST_CHECK rcode
parse_mongo_query(struct config *cfg, const struct cfg_entry *e, const char *v, char *why,
                  size_t len)
{
	return mongo_query_ok(v, why, len) ? set_text(cfg, e, v) : RC_ERR_CONFIG;
}

static RC_MUST_CHECK rcode
parse_os_query(struct config *cfg, const struct cfg_entry *e, const char *v, char *why, size_t len)
{
	return os_query_ok(v, why, len) ? set_text(cfg, e, v) : RC_ERR_CONFIG;
}

static RC_MUST_CHECK rcode
parse_ratio(struct config *cfg, const struct cfg_entry *e, const char *v, char *why, size_t len)
{
	char *end = NULL;
	double d;

	errno = 0;
	d = *v ? strtod(v, &end) : 0;
	/* decimal only: strtod also reads blanks, hex, inf and nan */
	if (*v == '\0' || strspn(v, "0123456789.eE-") != strlen(v) || errno || end == NULL ||
	    *end != '\0' || !(d >= (double)e->min / 1e6) || !(d <= (double)e->max / 1e6))
		return RC_ERR_CONFIG;
	*(double *)field(cfg, e) = d;
	return RC_OK;
}

/* What each type is: its name in docs/CONFIG.md, whether its value is text
 * (an owned char * in struct config), and its parse function. */
static const struct cfg_type_info {
	const char *name;
	bool text;
	rcode (*parse)(struct config *cfg, const struct cfg_entry *e, const char *v, char *why,
	               size_t len);
} cfg_types[] = {
    [CFG_STRING] = {"string", true, parse_string},
    [CFG_INT] = {"integer", false, parse_int},
    [CFG_BOOL] = {"boolean", false, parse_bool},
    [CFG_ENUM] = {"enum", false, parse_enum},
    [CFG_MONGO_URI] = {"URI", true, parse_mongo_uri},
    [CFG_HTTP_URL] = {"URL", true, parse_http_url},
    [CFG_INDEX_NAME] = {"index name", true, parse_index_name},
    [CFG_FIELDS] = {"field list", true, parse_fields},
    [CFG_RENAMES] = {"rename list", true, parse_renames},
    [CFG_OWNED] = {"owned field list", true, parse_owned},
    [CFG_MONGO_QUERY] = {"MongoDB query", true, parse_mongo_query},
    [CFG_OS_QUERY] = {"query DSL", true, parse_os_query},
    [CFG_RATIO] = {"ratio", false, parse_ratio},
};

/* The message for a value v of e that is not allowed; a URI is shown with
 * its password masked, a secret not at all. */
static RC_MUST_CHECK rcode
invalid(const struct cfg_entry *e, const char *v, const char *where, const char *why,
        struct rerror *err)
{
	char what[400], key[64], cut[160];
	bool uri = e->type == CFG_MONGO_URI || e->type == CFG_HTTP_URL;
	char *shown = uri ? mask_bad_uri(v) : NULL;
	const char *value = shown ? shown : ((e->flags & CFG_SECRET) ? "***" : v);
	size_t n = strlen(value);

	/* a long value is shown in part, so the reason after it always fits
	 * the message (QA19 F8: a 9 KB clause left no room for why) */
	if (n > 120) {
		int k = 100;
		while (k > 0 && ((unsigned char)value[k] & 0xC0) == 0x80)
			k--; /* not inside a UTF-8 sequence */
		snprintf(cut, sizeof(cut), "%.*s... (%zu bytes)", k, value, n);
		value = cut;
	}
	allowed(e, what, sizeof(what));
	if (where) {
		file_key(e, key, sizeof(key));
		rerror_set(err, RC_ERR_CONFIG, "%s%s: \"%s\" is invalid: %s%sexpected %s", where,
		           key, value, why, *why ? "; " : "", what);
	} else {
		rerror_set(err, RC_ERR_CONFIG, "%s=\"%s\" is invalid: %s%sexpected %s", e->name,
		           value, why, *why ? "; " : "", what);
	}
	free(shown);
	return RC_ERR_CONFIG;
}

/* Sets one setting from text. where is NULL for the environment and .env
 * (the message names the variable) or "FILE:LINE: " for the file (the
 * message names the key). */
static RC_MUST_CHECK rcode
set_value(struct config *cfg, const struct cfg_entry *e, const char *v, const char *where,
          struct rerror *err)
{
	char why[300] = "";
	rcode rc = cfg_types[e->type].parse(cfg, e, v, why, sizeof(why));

	if (rc == RC_ERR_NOMEM)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	return rc ? invalid(e, v, where, why, err) : RC_OK;
}

/* Reads KEY=VALUE lines; '#' comments, optional `export `, optional quotes.
 * Values are only used for names the environment does not set; set_by
 * (CFG_COUNT flags, or NULL) marks each setting the file gave. */
struct unknown_names; /* below, with config_set_load */
static RC_MUST_CHECK rcode unknown_name(struct unknown_names *u, const char *name,
                                        const char *where, int line);

static RC_MUST_CHECK rcode
load_dotenv(struct config *cfg, const char *path, bool *set_by, struct unknown_names *unknown,
            struct rerror *err)
{
	/* a line of any length (a long OPENSEARCH_KEEP_QUERY, a certificate
	 * path list): a fixed buffer cut them silently (QA19 F8) */
	char *line = NULL;
	size_t cap = 0;
	FILE *f = fopen(path, "r");
	rcode rc = RC_OK;
	int lineno = 0;

	if (f == NULL)
		return RC_OK;
	while (rc == RC_OK && getline(&line, &cap, f) >= 0) {
		char *k = line, *v, *end;
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		while (isspace((unsigned char)*k))
			k++;
		if (*k == '#' || *k == '\0')
			continue;
		if (!strncmp(k, "export ", 7))
			k += 7;
		v = strchr(k, '=');
		if (v == NULL) {
			log_warn(".env line %d has no '=': ignored", lineno);
			continue;
		}
		*v++ = '\0';
		for (end = v - 2; end >= k && isspace((unsigned char)*end); end--)
			*end = '\0';
		while (isspace((unsigned char)*v))
			v++;
		size_t vl = strlen(v);
		if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
			v[vl - 1] = '\0';
			v++;
		}
		if (unknown && unknown_name(unknown, k, path, lineno))
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		if (rc || getenv(k) != NULL)
			continue;
		for (size_t i = 0; i < CFG_COUNT; i++) {
			if (strcmp(cfg_table[i].name, k))
				continue;
			rc = set_value(cfg, &cfg_table[i], v, NULL, err);
			if (set_by)
				set_by[i] = true;
		}
	}
	if (rc == RC_OK && ferror(f))
		rc = rerror_set(err, RC_ERR_CONFIG, "%s: cannot read line %d: %s", path, lineno + 1,
		                strerror(errno));
	free(line);
	fclose(f);
	return rc;
}

static bool
is_text(const struct cfg_entry *e)
{
	return cfg_types[e->type].text;
}

/* A config holding every default, with no name. */
static RC_MUST_CHECK rcode
config_defaults(struct config **out, struct rerror *err)
{
	struct config *cfg;
	rcode rc = RC_OK;

	*out = NULL;
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < CFG_COUNT && rc == RC_OK; i++)
		rc = set_value(cfg, &cfg_table[i], cfg_table[i].def, NULL, err);
	if (rc) {
		config_free(cfg);
		return rc;
	}
	*out = cfg;
	return RC_OK;
}

static RC_MUST_CHECK rcode
load_env(struct config *cfg, struct rerror *err)
{
	rcode rc = RC_OK;

	for (size_t i = 0; i < CFG_COUNT && rc == RC_OK; i++) {
		const char *v = getenv(cfg_table[i].name);
		if (v != NULL)
			rc = set_value(cfg, &cfg_table[i], v, NULL, err);
	}
	return rc;
}

/* A deep copy of src called name. */
static RC_MUST_CHECK rcode
config_copy(struct config **out, const struct config *src, const char *name, struct rerror *err)
{
	struct config *cfg;
	bool ok;

	*out = NULL;
	cfg = malloc(sizeof(*cfg));
	if (cfg == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	memcpy(cfg, src, sizeof(*cfg));
	/* first let go of src's strings, so a failure half-way frees only ours */
	for (size_t i = 0; i < CFG_COUNT; i++)
		if (is_text(&cfg_table[i]))
			*(char **)field(cfg, &cfg_table[i]) = NULL;
	cfg->name = strdup(name);
	ok = cfg->name != NULL;
	for (size_t i = 0; i < CFG_COUNT && ok; i++) {
		const struct cfg_entry *e = &cfg_table[i];
		if (is_text(e)) {
			char **slot = field(cfg, e);
			*slot = strdup(*(char *const *)cfield(src, e));
			ok = *slot != NULL;
		}
	}
	if (!ok) {
		config_free(cfg);
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	}
	*out = cfg;
	return RC_OK;
}

char *
config_url_key(const char *url)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *path = NULL, *key = NULL;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
		const char *h = host;
		size_t n = strlen(path);
		for (char *c = host; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (!strcmp(h, "localhost") || !strcmp(h, "localhost.") ||
		    !strcmp(h, "127.0.0.1") || !strcmp(h, "[::1]") || !strcmp(h, "::1") ||
		    !strcmp(h, "[0:0:0:0:0:0:0:1]"))
			h = "localhost";
		const char *p = path;
		while (n && p[n - 1] == '/')
			n--;
		if (n && *p == '/')
			p++, n--;
		key = malloc(strlen(h) + strlen(port) + n + 3);
		if (key)
			sprintf(key, "%s:%s/%.*s", h, port, (int)n, p);
	}
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	return key;
}

/* Sorts an object's members by key (stable), all the way down, so that
 * JSON cJSON_Compare calls equal prints the same text. */
static void
json_sort(cJSON *j)
{
	cJSON *done = NULL, *next, *prev = NULL;

	for (cJSON *c = j->child; c; c = c->next)
		json_sort(c);
	if (!cJSON_IsObject(j))
		return;
	for (cJSON *c = j->child; c; c = next) {
		cJSON **at = &done;
		next = c->next;
		while (*at && strcmp((*at)->string, c->string) <= 0)
			at = &(*at)->next;
		c->next = *at;
		*at = c;
	}
	for (cJSON *c = done; c; c = c->next) {
		c->prev = prev;
		prev = c;
	}
	if (done)
		done->prev = prev; /* cJSON: the first member's prev is the last */
	j->child = done;
}

static bool query_selects_all(const cJSON *q);

/* Every clause of a bool query's must or filter (an array or one). */
static bool
clauses_select_all(const cJSON *c)
{
	if (!cJSON_IsArray(c))
		return query_selects_all(c);
	for (const cJSON *e = c->child; e; e = e->next)
		if (!query_selects_all(e))
			return false;
	return true;
}

/* Whether query DSL q matches every document whatever it holds, as no
 * query does: match_all, and bool/constant_score queries made only of
 * such (two mirrors on one index with match_all and a real clause select
 * overlapping documents, like one with no query). Anything else may
 * select fewer; whether two real queries overlap is not decided here. */
static bool
query_selects_all(const cJSON *q)
{
	const cJSON *c = q ? q->child : NULL;

	if (!cJSON_IsObject(q))
		return false;
	if (c == NULL)
		return true; /* {} */
	if (c->next != NULL || !cJSON_IsObject(c))
		return false;
	if (!strcmp(c->string, "match_all"))
		return true;
	if (!strcmp(c->string, "constant_score"))
		return query_selects_all(cJSON_GetObjectItemCaseSensitive(c, "filter"));
	if (strcmp(c->string, "bool"))
		return false;
	const cJSON *must = NULL, *filter = NULL, *should = NULL;
	for (const cJSON *m = c->child; m; m = m->next) {
		if (!strcmp(m->string, "must"))
			must = m;
		else if (!strcmp(m->string, "filter"))
			filter = m;
		else if (!strcmp(m->string, "should"))
			should = m;
		else if (!strcmp(m->string, "must_not")) {
			if (!cJSON_IsArray(m) || m->child) /* excludes something */
				return false;
		} else if (strcmp(m->string, "boost") && strcmp(m->string, "_name"))
			return false; /* minimum_should_match and the like: not judged */
	}
	/* an empty list is no clause (then a should clause is required) */
	if (cJSON_IsArray(must) && !must->child)
		must = NULL;
	if (cJSON_IsArray(filter) && !filter->child)
		filter = NULL;
	if ((must && !clauses_select_all(must)) || (filter && !clauses_select_all(filter)))
		return false;
	if (must || filter || !should || (cJSON_IsArray(should) && !should->child))
		return true; /* should only scores then */
	if (!cJSON_IsArray(should))
		return query_selects_all(should);
	for (const cJSON *e = should->child; e; e = e->next)
		if (query_selects_all(e))
			return true; /* one of them is enough */
	return false;
}

/* OPENSEARCH_QUERY as comparable text (caller frees): parsed, keys sorted,
 * printed without spacing; "" stays "", and so does a query that selects
 * every document (query_selects_all). */
static char *
query_key(const char *q)
{
	cJSON *j = *q ? cJSON_Parse(q) : NULL;
	char *s;

	if (j == NULL)
		return strdup(q);
	if (query_selects_all(j)) { /* as no query at all */
		cJSON_Delete(j);
		return strdup("");
	}
	json_sort(j);
	s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

bool
config_queries_distinct(const char *a, const char *b)
{
	cJSON *ja, *jb;
	bool distinct;

	if (!*a || !*b)
		return false;
	ja = cJSON_Parse(a);
	jb = cJSON_Parse(b);
	distinct = ja && jb ? !cJSON_Compare(ja, jb, true) && !query_selects_all(ja) &&
	                          !query_selects_all(jb)
	                    : strcmp(a, b) != 0;
	cJSON_Delete(ja);
	cJSON_Delete(jb);
	return distinct;
}

bool
config_same_opensearch(const struct config *a, const struct config *b)
{
	return !strcmp(a->opensearch_url, b->opensearch_url) &&
	       !strcmp(a->opensearch_username, b->opensearch_username) &&
	       !strcmp(a->opensearch_password, b->opensearch_password) &&
	       !strcmp(a->opensearch_ca_file, b->opensearch_ca_file) &&
	       !strcmp(a->opensearch_bearer_token, b->opensearch_bearer_token) &&
	       !strcmp(a->opensearch_bearer_token_file, b->opensearch_bearer_token_file) &&
	       !strcmp(a->opensearch_client_cert, b->opensearch_client_cert) &&
	       !strcmp(a->opensearch_client_key, b->opensearch_client_key) &&
	       a->opensearch_tls_verify == b->opensearch_tls_verify &&
	       a->opensearch_timeout_ms == b->opensearch_timeout_ms &&
	       !strcmp(a->opensearch_aws_region, b->opensearch_aws_region) &&
	       a->opensearch_aws_service == b->opensearch_aws_service;
}

bool
config_same_mongodb(const struct config *a, const struct config *b)
{
	return !strcmp(a->mongodb_uri, b->mongodb_uri);
}

/* A mirror's target as the shared-index check compares it. */
struct target {
	const struct config *cfg;
	char *url, *query; /* config_url_key, query_key */
};

static int
by_target(const void *a, const void *b)
{
	const struct target *x = a, *y = b;
	int c = strcmp(x->url, y->url);

	if (c == 0)
		c = strcmp(x->cfg->opensearch_index, y->cfg->opensearch_index);
	return c ? c : strcmp(x->query, y->query);
}

/* Mirrors that share one index must each say which of its documents are
 * theirs (OPENSEARCH_QUERY), and not the same thing: otherwise each pass
 * calls the other mirror's copies orphans and RECONCILE_ORPHANS=delete
 * removes documents that exist in MongoDB. URLs and queries are compared
 * as what they mean (config_url_key, JSON with sorted keys), not as text:
 * http://127.0.0.1:9200 and http://localhost:9200/ are one cluster. Names
 * that only the cluster or DNS can tell apart (aliases, host names) are
 * caught when a run starts (run.c). Sorted on (URL, index, query), so
 * equal targets are neighbours and 20,000 mirrors cost no more than
 * sorting them. */
static RC_MUST_CHECK rcode
check_shared_indexes(const struct config_set *set, const char *file, struct rerror *err)
{
	struct target *v;
	rcode rc = RC_OK;
	size_t n = 0;

	if (set->n_mirrors < 2)
		return RC_OK;
	v = calloc(set->n_mirrors, sizeof(*v));
	if (v == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	for (; n < set->n_mirrors; n++) {
		const struct config *c = set->mirrors[n];
		v[n].cfg = c;
		v[n].url = config_url_key(c->opensearch_url);
		if (v[n].url == NULL) /* validated: only out of memory */
			v[n].url = strdup(c->opensearch_url);
		v[n].query = query_key(c->opensearch_query);
		if (v[n].url == NULL || v[n].query == NULL) {
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
			n++;
			goto out;
		}
	}
	qsort(v, n, sizeof(*v), by_target);
	for (size_t i = 1; i < n; i++) {
		const struct target *x = &v[i - 1], *y = &v[i];
		char where[600], also[100] = "", same[700] = "", *ux, *uy;
		bool empty = !*x->query || !*y->query;
		if (strcmp(x->url, y->url) ||
		    strcmp(x->cfg->opensearch_index, y->cfg->opensearch_index) ||
		    (!empty && strcmp(x->query, y->query)))
			continue;
		if (x->cfg->line > y->cfg->line) { /* name the later one's line */
			const struct target *t = x;
			x = y;
			y = t;
		}
		if (file && y->cfg->line)
			snprintf(where, sizeof(where),
			         "%s:%zu: mirror %s: opensearch_query: ", file, y->cfg->line,
			         y->cfg->name);
		else
			snprintf(where, sizeof(where), "%s: mirror %s: opensearch_query: ",
			         file ? file : "the environment", y->cfg->name);
		if (x->cfg->line)
			snprintf(also, sizeof(also), " (line %zu)", x->cfg->line);
		ux = util_mask_uri(x->cfg->opensearch_url);
		uy = util_mask_uri(y->cfg->opensearch_url);
		if (ux && uy && strcmp(ux, uy))
			snprintf(same, sizeof(same), " (opensearch_url %s and %s are one cluster)",
			         ux, uy);
		free(ux);
		free(uy);
		if (empty)
			rc = rerror_set(
			    err, RC_ERR_CONFIG,
			    "%smirrors %s%s and %s both mirror into index %s%s: each needs "
			    "opensearch_query selecting its own documents (otherwise each "
			    "calls the other's copies orphans, and deletes them with "
			    "reconcile_orphans: delete)",
			    where, x->cfg->name, also, y->cfg->name, y->cfg->opensearch_index,
			    same);
		else
			rc = rerror_set(
			    err, RC_ERR_CONFIG,
			    "%smirrors %s%s and %s both mirror into index %s%s with the "
			    "same opensearch_query (compared as JSON): each needs its own",
			    where, x->cfg->name, also, y->cfg->name, y->cfg->opensearch_index,
			    same);
		break;
	}
out:
	for (size_t i = 0; i < n; i++) {
		free(v[i].url);
		free(v[i].query);
	}
	free(v);
	return rc;
}

/* A file setting that must be readable now: a missing key or token file
 * is a configuration error at load, not a TLS failure at the first
 * request. */
static rcode
readable(const char *who, const char *name, const char *path, struct rerror *err)
{
	if (*path == '\0' || access(path, R_OK) == 0)
		return RC_OK;
	return rerror_set(err, RC_ERR_CONFIG, "%s%s=%s: cannot read: %s", who, name, path,
	                  strerror(errno));
}

/* OpenSearch's credentials: one way to authenticate (basic, a token, a
 * token file), a key only beside its certificate, their files readable. */
static rcode
check_auth(const struct config *cfg, const char *who, struct rerror *err)
{
	bool token = *cfg->opensearch_bearer_token, token_file = *cfg->opensearch_bearer_token_file;
	rcode rc;

	if (token && token_file)
		return rerror_set(
		    err, RC_ERR_CONFIG,
		    "%sOPENSEARCH_BEARER_TOKEN and OPENSEARCH_BEARER_TOKEN_FILE are both "
		    "set: give one",
		    who);
	/* a header value: a line break would end it and start another header */
	for (const char *c = cfg->opensearch_bearer_token; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return rerror_set(err, RC_ERR_CONFIG,
			                  "%sOPENSEARCH_BEARER_TOKEN holds a control character "
			                  "(a line break?): a token is one line of printable text",
			                  who);
	if ((token || token_file) && *cfg->opensearch_username)
		return rerror_set(
		    err, RC_ERR_CONFIG,
		    "%s%s and OPENSEARCH_USERNAME (basic auth) are both set: "
		    "OpenSearch takes one Authorization header, give one",
		    who, token ? "OPENSEARCH_BEARER_TOKEN" : "OPENSEARCH_BEARER_TOKEN_FILE");
	if ((token || token_file) && *cfg->opensearch_aws_region)
		return rerror_set(
		    err, RC_ERR_CONFIG,
		    "%s%s and OPENSEARCH_AWS_REGION (AWS SigV4 signing) are both set: "
		    "OpenSearch takes one Authorization header, give one",
		    who, token ? "OPENSEARCH_BEARER_TOKEN" : "OPENSEARCH_BEARER_TOKEN_FILE");
	if (*cfg->opensearch_client_key && !*cfg->opensearch_client_cert)
		return rerror_set(err, RC_ERR_CONFIG,
		                  "%sOPENSEARCH_CLIENT_KEY is set without OPENSEARCH_CLIENT_CERT",
		                  who);
	rc = readable(who, "OPENSEARCH_BEARER_TOKEN_FILE", cfg->opensearch_bearer_token_file, err);
	if (rc == RC_OK)
		rc = readable(who, "OPENSEARCH_CLIENT_CERT", cfg->opensearch_client_cert, err);
	if (rc == RC_OK)
		rc = readable(who, "OPENSEARCH_CLIENT_KEY", cfg->opensearch_client_key, err);
	return rc;
}

/* Rules between settings of one mirror, which no single row can say. */
static rcode
check_combinations(const struct config *cfg, bool named, struct rerror *err)
{
	char who[96] = "";
	rcode rc;

	if (named)
		snprintf(who, sizeof(who), "mirror %s: ", cfg->name);
	rc = check_auth(cfg, who, err);
	if (rc)
		return rc;
	if (cfg->version_type == VERSION_EXTERNAL_GTE && cfg->write_mode != WRITE_INDEX)
		return rerror_set(err, RC_ERR_CONFIG,
		                  "%sOPENSEARCH_VERSION_TYPE=external_gte needs "
		                  "RECONCILE_WRITE_MODE=index: OpenSearch's update action (upsert) "
		                  "accepts no external version",
		                  who);
	if (cfg->version_type == VERSION_EXTERNAL_GTE && *cfg->version_field == '\0')
		return rerror_set(err, RC_ERR_CONFIG,
		                  "%sOPENSEARCH_VERSION_TYPE=external_gte needs "
		                  "RECONCILE_VERSION_FIELD: the external version is that field's "
		                  "value in epoch ms",
		                  who);
	if (strspn(cfg->opensearch_aws_region, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
	    strlen(cfg->opensearch_aws_region))
		return rerror_set(err, RC_ERR_CONFIG,
		                  "%sOPENSEARCH_AWS_REGION \"%.40s\" is not an AWS region name "
		                  "(like eu-west-1)",
		                  who, cfg->opensearch_aws_region);
	if (*cfg->opensearch_aws_region && *cfg->opensearch_username)
		return rerror_set(
		    err, RC_ERR_CONFIG,
		    "%sOPENSEARCH_AWS_REGION (AWS SigV4 signing) and OPENSEARCH_USERNAME "
		    "(basic auth) exclude each other: both use the Authorization header",
		    who);
	if (cfg->partitions > 1 && *cfg->opensearch_id_field == '\0')
		return rerror_set(err, RC_ERR_CONFIG,
		                  "%sRECONCILE_PARTITIONS=%" PRId64
		                  " needs OPENSEARCH_ID_FIELD (a keyword field holding the id): a "
		                  "key range of _id cannot be searched; set it, or "
		                  "RECONCILE_PARTITIONS=1",
		                  who, cfg->partitions);
	return RC_OK;
}

rcode
config_load(struct config **out, const char *dotenv_path, struct rerror *err)
{
	struct config *cfg = NULL;
	rcode rc;

	*out = NULL;
	rc = config_defaults(&cfg, err);
	if (rc == RC_OK && (cfg->name = strdup("default")) == NULL)
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	if (rc == RC_OK && dotenv_path)
		rc = load_dotenv(cfg, dotenv_path, NULL, NULL, err);
	if (rc == RC_OK)
		rc = load_env(cfg, err);
	if (rc == RC_OK)
		rc = check_combinations(cfg, false, err);
	if (rc) {
		config_free(cfg);
		return rc;
	}
	*out = cfg;
	return RC_OK;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < CFG_COUNT; i++)
		if (is_text(&cfg_table[i]))
			free(*(char **)field(cfg, &cfg_table[i]));
	free(cfg->name);
	free(cfg);
}

bool
config_mirror_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		          (i > 0 && (c == '_' || c == '-'));
		if (!ok)
			return false;
	}
	return true;
}

#define NAME_RULE "1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit"

const char *
config_file_default(void)
{
	const char *v = getenv("RECONCILER_CONFIG");

	if (v != NULL)
		return *v ? v
		          : NULL; /* set but empty: no file, even when ./reconciler.yaml exists */
	return access("reconciler.yaml", F_OK) == 0 ? "reconciler.yaml" : NULL;
}

/* ---- the YAML file ---------------------------------------------------- */

/* Bigger than any sensible configuration; keeps a wrong path (a log, a
 * disk image) from being read whole. */
#define CONFIG_FILE_MAX (4u << 20)

static size_t
line_of(const yaml_node_t *n)
{
	return n->start_mark.line + 1;
}

/* A key as shown in a message: printable, not too long. */
static void
shown_key(const char *key, char *out, size_t len)
{
	size_t i;

	for (i = 0; key[i] && i + 1 < len && i < 64; i++)
		out[i] = isprint((unsigned char)key[i]) ? key[i] : '?';
	out[i] = '\0';
}

static const struct cfg_entry *
find_key(const char *key)
{
	char k[64];

	for (size_t i = 0; i < CFG_COUNT; i++) {
		file_key(&cfg_table[i], k, sizeof(k));
		if (strcmp(k, key) == 0)
			return &cfg_table[i];
	}
	return NULL;
}

/* Edit distance, ignoring case (so MONGODB_URI suggests mongodb_uri). */
static size_t
distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[65], cur[65];

	if (la > 64 || lb > 64)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t best = prev[j - 1] + (tolower((unsigned char)a[i - 1]) !=
			                             tolower((unsigned char)b[j - 1]));
			if (prev[j] + 1 < best)
				best = prev[j] + 1;
			if (cur[j - 1] + 1 < best)
				best = cur[j - 1] + 1;
			cur[j] = best;
		}
		memcpy(prev, cur, (lb + 1) * sizeof(prev[0]));
	}
	return prev[lb];
}

/* " (did you mean KEY?)" when a key allowed here is within two edits. */
static void
suggest(const char *key, bool in_mirror, char *out, size_t len)
{
	char k[64], best[64] = "";
	size_t best_d = 3, d;

	for (size_t i = 0; i <= CFG_COUNT; i++) {
		if (i == CFG_COUNT)
			snprintf(k, sizeof(k), "%s", in_mirror ? "name" : "mirrors");
		else if (in_mirror && (cfg_table[i].flags & CFG_GLOBAL))
			continue;
		else
			file_key(&cfg_table[i], k, sizeof(k));
		d = distance(key, k);
		if (d < best_d) {
			best_d = d;
			memcpy(best, k, sizeof(best));
		}
	}
	snprintf(out, len, *best ? " (did you mean %s?)" : "", best);
}

/* The global settings' keys, for the message that sends one to the top. */
static void
global_keys(char *out, size_t len)
{
	char k[64];
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < CFG_COUNT && n < len; i++) {
		if (!(cfg_table[i].flags & CFG_GLOBAL))
			continue;
		file_key(&cfg_table[i], k, sizeof(k));
		n += (size_t)snprintf(out + n, len - n, "%s%s", n ? ", " : "", k);
	}
}

static RC_MUST_CHECK rcode
syntax_error(const yaml_parser_t *p, const char *path, const struct buf *text, struct rerror *err)
{
	const char *problem = p->problem ? p->problem : "unreadable";
	size_t line = 1;

	if (p->error == YAML_MEMORY_ERROR)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	if (p->error == YAML_READER_ERROR) {
		/* the reader reports a byte offset, not a line */
		for (size_t i = 0; i < p->problem_offset && i < text->len; i++)
			line += text->data[i] == '\n';
		return rerror_set(err, RC_ERR_CONFIG, "%s:%zu: not YAML text: %s", path, line,
		                  problem);
	}
	line = p->problem_mark.line + 1;
	if (p->context)
		return rerror_set(err, RC_ERR_CONFIG,
		                  "%s:%zu: YAML syntax error: %s (%s at line %zu)", path, line,
		                  problem, p->context, (size_t)p->context_mark.line + 1);
	return rerror_set(err, RC_ERR_CONFIG, "%s:%zu: YAML syntax error: %s", path, line, problem);
}

/* Reads and parses path into *doc (which the caller deletes, also on
 * failure). One document only: a second would be silently ignored. */
static RC_MUST_CHECK rcode
yaml_load_file(yaml_document_t *doc, const char *path, struct rerror *err)
{
	struct buf text = {0};
	yaml_parser_t parser;
	yaml_document_t extra;
	bool parser_ready = false;
	char chunk[4096];
	size_t n;
	FILE *f;
	rcode rc = RC_OK;

	memset(doc, 0, sizeof(*doc));
	memset(&extra, 0, sizeof(extra));
	f = fopen(path, "r");
	if (f == NULL)
		return rerror_set(err, RC_ERR_CONFIG, "%s: cannot read the configuration file: %s",
		                  path, strerror(errno));
	while (rc == RC_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (text.len + n > CONFIG_FILE_MAX)
			rc = rerror_set(err, RC_ERR_CONFIG,
			                "%s: larger than %u bytes: not a configuration file", path,
			                CONFIG_FILE_MAX);
		else if (buf_append(&text, chunk, n))
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	}
	if (rc == RC_OK && ferror(f))
		rc = rerror_set(err, RC_ERR_CONFIG, "%s: cannot read the configuration file", path);
	fclose(f);
	if (rc)
		goto out;
	if (!yaml_parser_initialize(&parser)) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	parser_ready = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)(text.data ? text.data : ""),
	                             text.len);
	if (!yaml_parser_load(&parser, doc) || !yaml_parser_load(&parser, &extra)) {
		rc = syntax_error(&parser, path, &text, err);
		goto out;
	}
	if (yaml_document_get_root_node(&extra) != NULL)
		rc = rerror_set(err, RC_ERR_CONFIG,
		                "%s:%zu: a second YAML document: the file holds one (drop the ---)",
		                path, line_of(yaml_document_get_root_node(&extra)));
out:
	yaml_document_delete(&extra);
	if (parser_ready)
		yaml_parser_delete(&parser);
	buf_free(&text);
	return rc;
}

/* The key of a mapping's pair i, checked: a scalar, not given twice. where
 * is "FILE:LINE: " or "FILE:LINE: mirror NAME: " of the mapping. */
static RC_MUST_CHECK rcode
pair_key(const char **out, yaml_document_t *doc, const yaml_node_t *map, const yaml_node_pair_t *p,
         const char *path, const char *mirror, struct rerror *err)
{
	const yaml_node_t *k = yaml_document_get_node(doc, p->key);
	char shown[80], in[80] = "";

	*out = NULL;
	if (mirror)
		snprintf(in, sizeof(in), "mirror %s: ", mirror);
	if (k == NULL || k->type != YAML_SCALAR_NODE ||
	    strlen((const char *)k->data.scalar.value) != k->data.scalar.length)
		return rerror_set(err, RC_ERR_CONFIG, "%s:%zu: %sa key must be a plain word", path,
		                  k ? line_of(k) : line_of(map), in);
	for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
		const yaml_node_t *qk = yaml_document_get_node(doc, q->key);
		if (qk && qk->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)qk->data.scalar.value,
		           (const char *)k->data.scalar.value) == 0) {
			shown_key((const char *)k->data.scalar.value, shown, sizeof(shown));
			return rerror_set(err, RC_ERR_CONFIG,
			                  "%s:%zu: %s%s: given twice (first at line %zu): a key "
			                  "appears once",
			                  path, line_of(k), in, shown, line_of(qk));
		}
	}
	*out = (const char *)k->data.scalar.value;
	return RC_OK;
}

/* A setting's value: one scalar. An unquoted empty value, ~ or null is the
 * empty string (what "unset" means for every setting that allows it). */
static RC_MUST_CHECK rcode
pair_value(const char **out, const yaml_node_t *v, const char *where, const char *key,
           struct rerror *err)
{
	const char *s;

	*out = NULL;
	/* an unquoted JSON clause (opensearch_query: {"term": ...}) is a YAML
	 * flow mapping: say how to write it (QA19 F10) */
	if (v->type != YAML_SCALAR_NODE)
		return rerror_set(err, RC_ERR_CONFIG,
		                  "%s%s: expected one value, not a %s (a JSON value is quoted in "
		                  "YAML: %s: '{\"term\": {\"source\": \"ads\"}}')",
		                  where, key, v->type == YAML_SEQUENCE_NODE ? "list" : "mapping",
		                  key);
	s = (const char *)v->data.scalar.value;
	if (strlen(s) != v->data.scalar.length)
		return rerror_set(err, RC_ERR_CONFIG, "%s%s: the value holds a NUL byte", where,
		                  key);
	/* libyaml tags an untagged scalar !!str; an explicit tag that is not one
	 * of YAML's plain ones (!!binary, !!timestamp, !custom) would otherwise
	 * be dropped and its text taken as is (QA8b F12) */
	static const char *const plain[] = {"str", "int", "float", "bool", "null"};
	const char *tag = (const char *)v->tag, *yaml = "tag:yaml.org,2002:";
	size_t n = strlen(yaml);
	bool std = tag && strncmp(tag, yaml, n) == 0, ok = tag == NULL;
	for (size_t i = 0; std && !ok && i < sizeof(plain) / sizeof(plain[0]); i++)
		ok = strcmp(tag + n, plain[i]) == 0;
	if (!ok) {
		char shown[80];
		shown_key(std ? tag + n : tag, shown, sizeof(shown));
		return rerror_set(err, RC_ERR_CONFIG,
		                  "%s%s: the YAML tag %s%s is not taken: write the value as plain "
		                  "text (!!str, !!int, !!float, !!bool and !!null are taken)",
		                  where, key, std ? "!!" : "", shown);
	}
	if (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (!strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL")))
		s = "";
	*out = s;
	return RC_OK;
}

/* One pair of a mapping onto cfg: the top level (mirror NULL) or a mirror. */
static RC_MUST_CHECK rcode
apply_pair(struct config *cfg, yaml_document_t *doc, const yaml_node_pair_t *p, const char *key,
           const char *path, const char *mirror, struct rerror *err)
{
	const yaml_node_t *k = yaml_document_get_node(doc, p->key);
	const yaml_node_t *v = yaml_document_get_node(doc, p->value);
	const struct cfg_entry *e = find_key(key);
	char where[600], shown[80], hint[100], globals[300];
	const char *text;
	rcode rc;

	if (mirror)
		snprintf(where, sizeof(where), "%s:%zu: mirror %s: ", path, line_of(k), mirror);
	else
		snprintf(where, sizeof(where), "%s:%zu: ", path, line_of(k));
	shown_key(key, shown, sizeof(shown));
	if (e == NULL) {
		suggest(key, mirror != NULL, hint, sizeof(hint));
		return rerror_set(err, RC_ERR_CONFIG,
		                  "%sunknown key \"%s\"%s: expected %s name in lower case "
		                  "(reconciler config --markdown lists them)",
		                  where, shown, hint,
		                  mirror ? "name or a per-mirror setting's"
		                         : "mirrors or a setting's");
	}
	if (mirror && (e->flags & CFG_GLOBAL)) {
		global_keys(globals, sizeof(globals));
		return rerror_set(
		    err, RC_ERR_CONFIG,
		    "%s%s is a global setting, not a mirror's: set it at the top level "
		    "(global: %s)",
		    where, shown, globals);
	}
	rc = pair_value(&text, v, where, shown, err);
	return rc ? rc : set_value(cfg, e, text, where, err);
}

/* The top level onto global; *mirrors is the `mirrors:` node, or NULL. */
static RC_MUST_CHECK rcode
load_top(struct config *global, const yaml_node_t **mirrors, yaml_document_t *doc, const char *path,
         struct rerror *err)
{
	const yaml_node_t *root = yaml_document_get_root_node(doc);
	rcode rc = RC_OK;

	*mirrors = NULL;
	if (root == NULL)
		return RC_OK; /* an empty file: the top level is the defaults */
	if (root->type != YAML_MAPPING_NODE)
		return rerror_set(err, RC_ERR_CONFIG,
		                  "%s:%zu: expected settings (key: value) and mirrors: at the top "
		                  "level",
		                  path, line_of(root));
	for (const yaml_node_pair_t *p = root->data.mapping.pairs.start;
	     rc == RC_OK && p < root->data.mapping.pairs.top; p++) {
		const char *key;
		rc = pair_key(&key, doc, root, p, path, NULL, err);
		if (rc == RC_OK && strcmp(key, "mirrors") == 0)
			*mirrors = yaml_document_get_node(doc, p->value);
		else if (rc == RC_OK)
			rc = apply_pair(global, doc, p, key, path, NULL, err);
	}
	return rc;
}

/* Warns of every environment variable or .env line that overrides a value
 * the file's top level sets: a leftover MONGODB_COLLECTION from a unit
 * file, a shell or the single-mirror .env silently re-points every mirror
 * that does not set its own (QA). */
static RC_MUST_CHECK rcode
env_override_warnings(struct config_set *set, yaml_document_t *doc, const char *path,
                      const char *dotenv_path, const bool *from_dotenv)
{
	const yaml_node_t *root = yaml_document_get_root_node(doc);

	if (root == NULL || root->type != YAML_MAPPING_NODE)
		return RC_OK;
	for (const yaml_node_pair_t *p = root->data.mapping.pairs.start;
	     p < root->data.mapping.pairs.top; p++) {
		const yaml_node_t *k = yaml_document_get_node(doc, p->key);
		const struct cfg_entry *e;
		if (k == NULL || k->type != YAML_SCALAR_NODE ||
		    (e = find_key((const char *)k->data.scalar.value)) == NULL)
			continue;
		bool env = getenv(e->name) != NULL;
		if (!env && !from_dotenv[e - cfg_table])
			continue;
		char **v = realloc(set->warnings, (set->n_warnings + 1) * sizeof(*v));
		if (v == NULL)
			return RC_ERR_NOMEM;
		set->warnings = v;
		const char *by = env ? "the environment" : dotenv_path;
		size_t len = strlen(path) + strlen(by) + 2 * strlen(e->name) + 160;
		if ((v[set->n_warnings] = malloc(len)) == NULL)
			return RC_ERR_NOMEM;
		snprintf(v[set->n_warnings], len, "%s:%zu: %s is overridden by %s's %s%s", path,
		         line_of(k), (const char *)k->data.scalar.value, by, e->name,
		         e->flags & CFG_GLOBAL
		             ? ""
		             : ": every mirror that does not set its own takes that value");
		set->n_warnings++;
	}
	return RC_OK;
}

/* The name of a mirror entry, validated; *line is its line. */
static RC_MUST_CHECK rcode
mirror_name(const char **out, size_t *line, yaml_document_t *doc, const yaml_node_t *entry,
            const char *path, struct rerror *err)
{
	char shown[80];

	*out = NULL;
	*line = line_of(entry);
	for (const yaml_node_pair_t *p = entry->data.mapping.pairs.start;
	     p < entry->data.mapping.pairs.top; p++) {
		const yaml_node_t *k = yaml_document_get_node(doc, p->key);
		const yaml_node_t *v = yaml_document_get_node(doc, p->value);
		const char *name;
		char where[600];
		rcode rc;

		if (k == NULL || k->type != YAML_SCALAR_NODE ||
		    strcmp((const char *)k->data.scalar.value, "name") != 0)
			continue;
		snprintf(where, sizeof(where), "%s:%zu: ", path, line_of(k));
		rc = pair_value(&name, v, where, "name", err);
		if (rc)
			return rc;
		if (!config_mirror_name_valid(name)) {
			shown_key(name, shown, sizeof(shown));
			return rerror_set(err, RC_ERR_CONFIG,
			                  "%sname: \"%s\" is invalid: expected " NAME_RULE, where,
			                  shown);
		}
		*out = name;
		*line = line_of(k);
		return RC_OK;
	}
	return rerror_set(err, RC_ERR_CONFIG,
	                  "%s:%zu: name: missing: every entry of mirrors needs a name (" NAME_RULE
	                  ")",
	                  path, line_of(entry));
}

/* Each entry of `mirrors:`: a copy of the global view with its own
 * settings over it. */
static RC_MUST_CHECK rcode
load_mirrors(struct config_set *set, yaml_document_t *doc, const yaml_node_t *list,
             const char *path, struct rerror *err)
{
	size_t n, *lines = NULL;
	rcode rc = RC_OK;

	if (list->type != YAML_SEQUENCE_NODE)
		return rerror_set(err, RC_ERR_CONFIG,
		                  "%s:%zu: mirrors: expected a list of mirrors (- name: ...)", path,
		                  line_of(list));
	n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
	if (n == 0)
		return rerror_set(
		    err, RC_ERR_CONFIG,
		    "%s:%zu: mirrors: the list is empty: expected at least one mirror "
		    "(- name: ...)",
		    path, line_of(list));
	set->mirrors = calloc(n, sizeof(set->mirrors[0]));
	lines = calloc(n, sizeof(lines[0]));
	if (set->mirrors == NULL || lines == NULL) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; rc == RC_OK && i < n; i++) {
		const yaml_node_t *entry =
		    yaml_document_get_node(doc, list->data.sequence.items.start[i]);
		const char *name;
		struct config *cfg;

		if (entry == NULL || entry->type != YAML_MAPPING_NODE) {
			rc = rerror_set(err, RC_ERR_CONFIG,
			                "%s:%zu: mirrors: each entry is a mapping: name: and the "
			                "mirror's settings",
			                path, entry ? line_of(entry) : line_of(list));
			goto out;
		}
		rc = mirror_name(&name, &lines[i], doc, entry, path, err);
		if (rc)
			goto out;
		for (size_t j = 0; j < i; j++)
			if (strcmp(set->mirrors[j]->name, name) == 0) {
				rc = rerror_set(
				    err, RC_ERR_CONFIG,
				    "%s:%zu: name: mirror \"%s\" is already defined at line "
				    "%zu: names are unique",
				    path, lines[i], name, lines[j]);
				goto out;
			}
		rc = config_copy(&cfg, set->global, name, err);
		if (rc)
			goto out;
		cfg->line = lines[i];
		set->mirrors[set->n_mirrors++] = cfg;
		for (const yaml_node_pair_t *p = entry->data.mapping.pairs.start;
		     rc == RC_OK && p < entry->data.mapping.pairs.top; p++) {
			const char *key;
			rc = pair_key(&key, doc, entry, p, path, name, err);
			if (rc == RC_OK && strcmp(key, "name") != 0)
				rc = apply_pair(cfg, doc, p, key, path, name, err);
		}
	}
out:
	free(lines);
	return rc;
}

static RC_MUST_CHECK rcode
add_default_mirror(struct config_set *set, struct rerror *err)
{
	set->mirrors = calloc(1, sizeof(set->mirrors[0]));
	if (set->mirrors == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	if (config_copy(&set->mirrors[0], set->global, "default", err))
		return RC_ERR_NOMEM;
	set->n_mirrors = 1;
	return RC_OK;
}

/* Where names no setting has are gathered: the set's warnings. */
struct unknown_names {
	struct config_set *set;
};

/* Whether a name begins with a word this program's settings use: the
 * first word of each setting's name that two or more settings share
 * (MONGODB_, OPENSEARCH_, RECONCILE_, SYNC_, ...), derived from the table.
 * A word only one setting has (HTTP_ of HTTP_BIND) is left out: HTTP_PROXY
 * is curl's, not a typo of ours. */
static bool
has_our_prefix(const char *name)
{
	for (size_t i = 0; i < CFG_COUNT; i++) {
		const char *u = strchr(cfg_table[i].name, '_');
		size_t n = u ? (size_t)(u - cfg_table[i].name) + 1 : 0;
		if (n == 0 || strncmp(name, cfg_table[i].name, n) != 0)
			continue;
		for (size_t j = 0; j < CFG_COUNT; j++)
			if (j != i && strncmp(cfg_table[j].name, cfg_table[i].name, n) == 0)
				return true;
	}
	return false;
}

/* A name of the environment or .env (where, line; line 0: the
 * environment) that looks like a setting and is none: a warning with the
 * nearest setting's name, as a YAML key's typo gets ("RECONCILE_ORPHAN=
 * delete" would otherwise change nothing, silently). */
static rcode
unknown_name(struct unknown_names *u, const char *name, const char *where, int line)
{
	const char *best = NULL;
	size_t best_d = 3, d;
	char **v;
	char hint[96] = "";

	for (size_t i = 0; i < CFG_COUNT; i++)
		if (strcmp(cfg_table[i].name, name) == 0)
			return RC_OK;
	if (!has_our_prefix(name))
		return RC_OK;
	for (size_t i = 0; i < CFG_COUNT; i++)
		if ((d = distance(name, cfg_table[i].name)) < best_d) {
			best_d = d;
			best = cfg_table[i].name;
		}
	if (best)
		snprintf(hint, sizeof(hint), " (did you mean %s?)", best);
	v = realloc(u->set->warnings, (u->set->n_warnings + 1) * sizeof(*v));
	if (v == NULL)
		return RC_ERR_NOMEM;
	u->set->warnings = v;
	size_t len = strlen(where) + strlen(name) + sizeof(hint) + 160;
	if ((v[u->set->n_warnings] = malloc(len)) == NULL)
		return RC_ERR_NOMEM;
	if (line)
		snprintf(v[u->set->n_warnings], len,
		         "%s:%d: %.100s is not a setting%s: ignored (the settings: reconciler "
		         "config, docs/CONFIG.md)",
		         where, line, name, hint);
	else
		snprintf(v[u->set->n_warnings], len,
		         "%s: %.100s is not a setting%s: ignored (the settings: reconciler config, "
		         "docs/CONFIG.md)",
		         where, name, hint);
	u->set->n_warnings++;
	return RC_OK;
}

/* The environment's names, as load_dotenv does .env's. */
static RC_MUST_CHECK rcode
env_unknown_names(struct unknown_names *u)
{
	extern char **environ;
	char name[128];

	for (char **e = environ; e && *e; e++) {
		size_t n = strcspn(*e, "=");
		if (n == 0 || n >= sizeof(name))
			continue;
		memcpy(name, *e, n);
		name[n] = '\0';
		if (unknown_name(u, name, "the environment", 0))
			return RC_ERR_NOMEM;
	}
	return RC_OK;
}

rcode
config_set_load(struct config_set **out, const char *file, const char *dotenv_path,
                struct rerror *err)
{
	struct config_set *set;
	yaml_document_t doc;
	const yaml_node_t *mirrors = NULL;
	bool from_dotenv[CFG_COUNT] = {false};
	struct unknown_names unknown;
	rcode rc;

	*out = NULL;
	memset(&doc, 0, sizeof(doc));
	set = calloc(1, sizeof(*set));
	if (set == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	unknown.set = set;
	rc = config_defaults(&set->global, err);
	if (rc == RC_OK && file) {
		set->file = strdup(file);
		if (set->file == NULL)
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		if (rc == RC_OK)
			rc = yaml_load_file(&doc, file, err);
		if (rc == RC_OK)
			rc = load_top(set->global, &mirrors, &doc, file, err);
	}
	/* the environment overrides the file's top level; mirrors override both */
	if (rc == RC_OK && dotenv_path)
		rc = load_dotenv(set->global, dotenv_path, from_dotenv, &unknown, err);
	if (rc == RC_OK && env_unknown_names(&unknown))
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	if (rc == RC_OK)
		rc = load_env(set->global, err);
	if (rc == RC_OK)
		rc = mirrors ? load_mirrors(set, &doc, mirrors, file, err)
		             : add_default_mirror(set, err);
	if (rc == RC_OK && file && env_override_warnings(set, &doc, file, dotenv_path, from_dotenv))
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == RC_OK && i < set->n_mirrors; i++)
		rc = check_combinations(set->mirrors[i], mirrors != NULL, err);
	if (rc == RC_OK)
		rc = check_shared_indexes(set, file, err);
	for (size_t i = 0; rc == RC_OK && i < set->n_mirrors; i++)
		set->mirrors[i]->set = set;
	yaml_document_delete(&doc);
	if (rc) {
		config_set_free(set);
		return rc;
	}
	*out = set;
	return RC_OK;
}

void
config_set_free(struct config_set *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->n_mirrors; i++)
		config_free(set->mirrors[i]);
	free(set->mirrors);
	config_free(set->global);
	for (size_t i = 0; i < set->n_warnings; i++)
		free(set->warnings[i]);
	free(set->warnings);
	free(set->file);
	free(set);
}

const struct config *
config_set_find(const struct config_set *set, const char *name)
{
	for (size_t i = 0; set && name && i < set->n_mirrors; i++)
		if (strcmp(set->mirrors[i]->name, name) == 0)
			return set->mirrors[i];
	return NULL;
}

/* The value as shown to people: secrets masked, URIs keep all but the
 * password. Returns a malloc'd string. */
static char *
shown_value(const struct config *cfg, const struct cfg_entry *e)
{
	char tmp[64];

	switch (e->type) {
	case CFG_INT:
		snprintf(tmp, sizeof(tmp), "%lld", (long long)*(const int64_t *)cfield(cfg, e));
		return strdup(tmp);
	case CFG_BOOL:
		return strdup(*(const bool *)cfield(cfg, e) ? "true" : "false");
	case CFG_ENUM:
		for (int i = 0; e->words[i].word; i++)
			if (e->words[i].value == *(const int *)cfield(cfg, e))
				return strdup(e->words[i].word);
		return NULL;
	case CFG_RATIO:
		snprintf(tmp, sizeof(tmp), "%g", *(const double *)cfield(cfg, e));
		return strdup(tmp);
	case CFG_MONGO_URI:
	case CFG_HTTP_URL:
		return util_mask_uri(*(char *const *)cfield(cfg, e));
	case CFG_STRING:
	case CFG_INDEX_NAME:
	case CFG_FIELDS:
	case CFG_RENAMES:
	case CFG_OWNED:
	case CFG_MONGO_QUERY:
	case CFG_OS_QUERY: {
		const char *s = *(char *const *)cfield(cfg, e);
		if ((e->flags & CFG_SECRET) && *s)
			return strdup("***");
		return strdup(s);
	}
	}
	return NULL;
}

rcode
config_dump_env(const struct config *cfg, struct buf *out)
{
	for (size_t i = 0; i < CFG_COUNT; i++) {
		char *v = shown_value(cfg, &cfg_table[i]);
		rcode rc = v ? buf_printf(out, "%s=%s\n", cfg_table[i].name, v) : RC_ERR_NOMEM;
		free(v);
		if (rc)
			return rc;
	}
	return RC_OK;
}

/* The journal's snapshot of one mirror's settings: {"NAME": "shown value"}. */
static cJSON *
snapshot(const struct config *cfg)
{
	cJSON *o = cJSON_CreateObject();

	for (size_t i = 0; o && i < CFG_COUNT; i++) {
		char *v = shown_value(cfg, &cfg_table[i]);
		if (v == NULL || cJSON_AddStringToObject(o, cfg_table[i].name, v) == NULL) {
			cJSON_Delete(o);
			o = NULL;
		}
		free(v);
	}
	return o;
}

/* A MongoDB URI's hosts ("srv:NAME" or "host:port,..."), lower case: what
 * decides which servers a run reads. The text itself when it does not
 * parse. Returns a malloc'd string. */
static char *
uri_hosts(const char *uri)
{
	mongoc_uri_t *u = mongoc_uri_new_with_error(uri, NULL);
	struct buf b = {0};
	rcode rc = RC_OK;

	if (u == NULL)
		return strdup(uri);
	const char *srv = mongoc_uri_get_srv_hostname(u);
	if (srv)
		rc = buf_printf(&b, "srv:%s", srv);
	for (const mongoc_host_list_t *h = srv ? NULL : mongoc_uri_get_hosts(u); h && !rc;
	     h = h->next)
		rc = buf_printf(&b, "%s%s", b.len ? "," : "", h->host_and_port);
	mongoc_uri_destroy(u);
	if (rc == RC_OK && b.data == NULL)
		rc = buf_puts(&b, "");
	if (rc) {
		buf_free(&b);
		return NULL;
	}
	for (char *p = b.data; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return b.data;
}

/* `KEY "value"` shortened for a message: a filter may be long. */
static RC_MUST_CHECK rcode
change_value(struct buf *out, const char *v)
{
	size_t n = strlen(v);

	return buf_printf(out, "\"%.*s%s\"", n > 120 ? 117 : (int)n, v, n > 120 ? "..." : "");
}

rcode
config_run_changes(const struct config *cfg, const char *snapshot, struct buf *out)
{
	cJSON *snap = snapshot ? cJSON_Parse(snapshot) : NULL;
	size_t first = out->len;
	rcode rc = RC_OK;

	if (!cJSON_IsObject(snap)) {
		cJSON_Delete(snap);
		return RC_ERR_INVALID;
	}
	for (size_t i = 0; rc == RC_OK && i < CFG_COUNT; i++) {
		const struct cfg_entry *e = &cfg_table[i];
		if (!(e->flags & CFG_RUN))
			continue;
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(snap, e->name);
		const char *was = cJSON_IsString(item) ? item->valuestring : e->def;
		char *now = shown_value(cfg, e), *a = NULL, *b = NULL;
		bool same;
		if (now == NULL) {
			rc = RC_ERR_NOMEM;
			break;
		}
		if (e->type == CFG_MONGO_URI) {
			a = uri_hosts(was);
			b = uri_hosts(now);
			same = a && b && strcmp(a, b) == 0;
			if (a == NULL || b == NULL)
				rc = RC_ERR_NOMEM;
		} else if (e->type == CFG_HTTP_URL) {
			/* what it reaches: HTTP:// or LOCALHOST is not another
			 * cluster (QA11 F5: a full re-index lost its progress) */
			a = config_url_key(was);
			b = config_url_key(now);
			same = a && b ? strcmp(a, b) == 0 : strcmp(was, now) == 0;
		} else {
			same = strcmp(was, now) == 0;
		}
		if (rc == RC_OK && !same) {
			rc = buf_printf(out, "%s%s ", out->len > first ? "; " : "", e->name);
			if (rc == RC_OK)
				rc = change_value(out, was);
			if (rc == RC_OK)
				rc = buf_puts(out, " -> ");
			if (rc == RC_OK)
				rc = change_value(out, now);
		}
		free(a);
		free(b);
		free(now);
	}
	cJSON_Delete(snap);
	return rc;
}

static RC_MUST_CHECK rcode
print_json(cJSON *o, struct buf *out)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	rcode rc = s ? buf_puts(out, s) : RC_ERR_NOMEM;

	free(s);
	cJSON_Delete(o);
	return rc;
}

rcode
config_dump_json(const struct config *cfg, struct buf *out)
{
	return print_json(snapshot(cfg), out);
}

rcode
config_set_dump_json(const struct config_set *set, struct buf *out)
{
	cJSON *o = cJSON_CreateObject(), *list = NULL;
	bool ok = o &&
	          (set->file ? cJSON_AddStringToObject(o, "file", set->file)
	                     : cJSON_AddNullToObject(o, "file")) &&
	          (list = cJSON_AddArrayToObject(o, "mirrors"));

	for (size_t i = 0; ok && i < set->n_mirrors; i++) {
		cJSON *snap = snapshot(set->mirrors[i]), *m = cJSON_CreateObject();
		ok = snap && m && cJSON_AddStringToObject(m, "name", set->mirrors[i]->name) &&
		     cJSON_AddItemToObject(m, "config", snap);
		if (!ok)
			cJSON_Delete(snap); /* not m's yet */
		if (!ok || !cJSON_AddItemToArray(list, m)) {
			cJSON_Delete(m);
			ok = false;
		}
	}
	if (!ok) {
		cJSON_Delete(o);
		return RC_ERR_NOMEM;
	}
	return print_json(o, out);
}

/* A YAML double-quoted scalar: safe for any text. */
static RC_MUST_CHECK rcode
yaml_quoted(struct buf *out, const char *s)
{
	rcode rc = buf_puts(out, "\"");

	for (; rc == RC_OK && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			rc = buf_printf(out, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			rc = buf_printf(out, "\\x%02x", c);
		else
			rc = buf_append(out, s, 1);
	}
	return rc ? rc : buf_puts(out, "\"");
}

static RC_MUST_CHECK rcode
yaml_setting(struct buf *out, const struct config *cfg, const struct cfg_entry *e,
             const char *indent)
{
	char key[64], *v = shown_value(cfg, e);
	rcode rc;

	if (v == NULL)
		return RC_ERR_NOMEM;
	file_key(e, key, sizeof(key));
	rc = buf_printf(out, "%s%s: ", indent, key);
	if (rc == RC_OK)
		rc = is_text(e) ? yaml_quoted(out, v) : buf_puts(out, v);
	if (rc == RC_OK)
		rc = buf_puts(out, "\n");
	free(v);
	return rc;
}

rcode
config_set_dump_yaml(const struct config_set *set, struct buf *out)
{
	rcode rc = buf_printf(out,
	                      "# effective configuration: %s with the environment over its top "
	                      "level; secrets masked\n",
	                      set->file ? set->file : "no file");

	for (size_t i = 0; rc == RC_OK && i < CFG_COUNT; i++)
		if ((cfg_table[i].flags & CFG_GLOBAL))
			rc = yaml_setting(out, set->global, &cfg_table[i], "");
	if (rc == RC_OK)
		rc = buf_puts(out, "mirrors:\n");
	for (size_t m = 0; rc == RC_OK && m < set->n_mirrors; m++) {
		rc = buf_printf(out, "  - name: %s\n", set->mirrors[m]->name);
		for (size_t i = 0; rc == RC_OK && i < CFG_COUNT; i++)
			if (!(cfg_table[i].flags & CFG_GLOBAL))
				rc = yaml_setting(out, set->mirrors[m], &cfg_table[i], "    ");
	}
	return rc;
}

/* docs/CONFIG.md above the table of settings. */
static const char markdown_intro[] =
    "# Configuration\n\n"
    "Generated by `reconciler config --markdown` from the table in "
    "`src/config.c`; a test keeps this file equal to it.\n\n"
    "A **mirror** is one MongoDB collection, the OpenSearch index that mirrors it, and how "
    "documents go from one to the other. Each setting is either **global** (the journal, "
    "the HTTP API, the logs: one per process) or **per mirror**.\n\n"
    "A setting marked **binds a run** decides what a run compares or where and how it "
    "writes. An interrupted run whose snapshot (`runs.config`) holds another value of one "
    "(`MONGODB_URI`: another host list; `OPENSEARCH_URL`: another cluster, not another "
    "spelling) is not resumed but cancelled, and a new run starts "
    "with the current settings (docs/JOURNAL.md#commit-protocol-and-resume); so is one "
    "whose `reconcile_transform` script was edited under the same path (the snapshot "
    "keeps the script's digest, `RECONCILE_TRANSFORM_DIGEST`); the other "
    "settings (batch sizes, delays, concurrency, timeouts, the schedule, the brake's "
    "limits, credentials) may change before a resume.\n\n"
    "## From the environment: one mirror\n\n"
    "Values come from the environment, then from `.env` in the working "
    "directory for names the environment does not set. They define one mirror named "
    "`default`. A bad value stops the program with a message naming the variable "
    "(exit 78). A name that begins as settings do (`MONGODB_`, `OPENSEARCH_`, "
    "`RECONCILE_`, `SYNC_`, ...: a first word two or more settings share) but is no "
    "setting is a warning naming the nearest one, from the environment or `.env` "
    "(`.env:1: RECONCILE_ORPHAN is not a setting (did you mean RECONCILE_ORPHANS?): "
    "ignored`). `OPENSEARCH_URL` is the cluster's base URL: a path in it "
    "(`http://host:9200/myindex`) is refused; the index goes in `OPENSEARCH_INDEX`. "
    "Wrong credentials (MongoDB's handshake, OpenSearch's 401) are a configuration "
    "error too: `authentication failed`, naming the setting, exit 78, and no run is "
    "left to resume.\n\n"
    "## From a file: several mirrors\n\n"
    "`RECONCILER_CONFIG` names a YAML file; without it, `reconciler.yaml` in the working "
    "directory is read when it exists (`RECONCILER_CONFIG` set but empty: no file). In the "
    "file a setting's key is its name in lower case. The top level holds the global "
    "settings and defaults for every mirror; `mirrors:` lists the mirrors, each with a "
    "`name:` (" NAME_RULE "; unique) and per-mirror settings of its own:\n\n"
    "```yaml\n"
    "mongodb_uri: mongodb://db.internal:27017\n"
    "mongodb_database: app\n"
    "opensearch_url: https://search.internal:9200\n"
    "reconcile_version_field: updatedAt\n"
    "state_db: /var/lib/reconciler/reconciler.db\n"
    "mirrors:\n"
    "  - name: ads\n"
    "    mongodb_collection: ads\n"
    "    opensearch_index: ads\n"
    "  - name: users\n"
    "    mongodb_collection: users\n"
    "    opensearch_index: users\n"
    "    reconciliation_interval_ms: 3600000\n"
    "  - name: ads-archive        # the same collection into a second index\n"
    "    mongodb_collection: ads\n"
    "    opensearch_index: ads-archive\n"
    "    reconcile_orphans: delete\n"
    "```\n\n"
    "A mirror's value comes from the first that has it: its entry in `mirrors:`, the "
    "environment, `.env`, the file's top level, the default. So secrets can stay out of "
    "the file (`MONGODB_URI`, `OPENSEARCH_PASSWORD` or `API_TOKEN` in the environment "
    "override the top level), and a file without `mirrors:` defines one mirror named "
    "`default`. An empty or `null` value is the empty string. The environment applies "
    "to every mirror that does not set the key itself: a leftover `MONGODB_COLLECTION` "
    "or `OPENSEARCH_INDEX` in a unit file or shell re-points all of them, so every "
    "command warns (`FILE:LINE: KEY is overridden by the environment's NAME`, or by "
    "`.env`'s) when an environment variable or a `.env` line overrides a value the "
    "file's top level sets. A relative path "
    "(`reconcile_transform`, `state_db`, `log_dir`, `opensearch_ca_file`, the client "
    "certificate, key and token files) is read from "
    "the working directory, not from the file's directory.\n\n"
    "A YAML syntax error, an unknown key, a key given twice, a global setting inside a "
    "mirror, a missing, bad or duplicate mirror name, a bad value or a YAML tag other "
    "than `!!str`, `!!int`, `!!float`, `!!bool` and `!!null` stops the program "
    "(exit 78) with a message naming the file, the line, the key and what is allowed. "
    "`reconciler config --file FILE` checks a file without starting anything (each "
    "mirror's transform settings and script too, compiled and loaded as a run loads them; "
    "`serve` checks them at start) and prints every mirror's effective settings, secrets "
    "masked; `examples/reconciler.yaml` is a complete example. What only the servers can "
    "judge (a filter FerretDB refuses, an index query OpenSearch refuses) is checked by "
    "`reconciler doctor`.\n\n"
    "Two mirrors that write one index must each select their own documents with "
    "`opensearch_query` (different clauses), or each calls the other's copies orphans "
    "and deletes them with `reconcile_orphans: delete`. The file is refused (exit 78, "
    "naming the file, the line and the key) when two mirrors name the same index on the "
    "same cluster without that: URLs are compared by what they reach (host in any case, "
    "`localhost`, `127.0.0.1` and `::1` as one host, the default port, a trailing `/`) and "
    "queries as parsed JSON (spacing and key order do not matter; a query that matches "
    "every document, `match_all` or a `bool` made only of it, counts as none). Whether "
    "two different queries select the same documents only the index can tell: see "
    "below. What only the cluster "
    "knows (an alias of another mirror's index, two DNS names of one host) is checked "
    "when a run starts: with more than one mirror, each run first asks each other "
    "mirror's OpenSearch which concrete index its `opensearch_index` is (one small "
    "`GET /INDEX/_settings/index.uuid` per mirror) and ends `failed`, nothing counted or "
    "written, when another mirror without a distinct `opensearch_query` resolves to the "
    "same index (uuid); an index that does not exist yet conflicts with nothing. One with "
    "a distinct query on the same index (or whose OpenSearch cannot be asked) is asked "
    "of the index before the run's deletes: any document matching both queries (one "
    "`_count`: queries unlike as text may select the same documents, e.g. `exists` on "
    "the id field), or a count that fails, holds the orphan deletes (status `held`, the "
    "repairs done); so does another mirror without a distinct query whose OpenSearch "
    "cannot be asked.\n\n"
    "A mirror's history (runs, drift, metrics) is kept under its name. Renaming a mirror "
    "starts a new history under the new name; removing or renaming one leaves its runs in "
    "the journal, and a run of it left unfinished (`running` after a kill, `interrupted`) "
    "is resumed by nothing: `serve` at start, `reconciler resume` and `reconciler doctor` "
    "name each such run and its mirror in a warning, with how to close it "
    "(docs/JOURNAL.md#runs-of-a-mirror-no-longer-configured).\n\n"
    "Amazon OpenSearch Service and OpenSearch Serverless (requests signed with AWS SigV4, "
    "`OPENSEARCH_AWS_REGION`, credentials from the AWS chain): [AWS.md](AWS.md).\n\n"
    "## Settings\n\n"
    "| name | scope | type | default | allowed | help |\n"
    "|---|---|---|---|---|---|\n";

rcode
config_dump_markdown(struct buf *out)
{
	char what[400];
	rcode rc = buf_puts(out, markdown_intro);

	for (size_t i = 0; i < CFG_COUNT && rc == RC_OK; i++) {
		const struct cfg_entry *e = &cfg_table[i];
		allowed(e, what, sizeof(what));
		rc = buf_printf(out, "| `%s` | %s | %s | `%s` | %s | %s%s |\n", e->name,
		                (e->flags & CFG_GLOBAL) ? "global"
		                : (e->flags & CFG_RUN)  ? "per mirror, binds a run"
		                                        : "per mirror",
		                cfg_types[e->type].name, e->def, what, e->help,
		                (e->flags & CFG_SECRET) ? " (secret: masked in all output)" : "");
	}
	return rc;
}

/* For a route that takes a setting's value (POST /api/reconciliation/start's
 * intervalMs): the same bounds as the table's. */
bool
config_key_bounds(const char *name, int64_t *min, int64_t *max)
{
	*min = *max = 0;
	for (size_t i = 0; i < CFG_COUNT; i++)
		if (strcmp(cfg_table[i].name, name) == 0) {
			*min = cfg_table[i].min;
			*max = cfg_table[i].max;
			return true;
		}
	return false;
}
