/*
 * config.c: the settings table.
 *
 * One row per setting: environment name, type, default, bounds or allowed
 * words, whether it is a secret, help text, and where it lands in struct
 * config. Parsing, validation, `reconciler config`, the journal's config
 * snapshot and docs/CONFIG.md are all driven by this table, so a setting
 * exists in exactly one place. Secrets (passwords, tokens, the password in
 * MONGODB_URI) are masked on every way out.
 */
#include "config.h"
#include "log.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

enum cfg_type { CFG_STRING, CFG_INT, CFG_BOOL, CFG_ENUM, CFG_MONGO_URI, CFG_HTTP_URL };

struct cfg_entry {
	const char *name;
	enum cfg_type type;
	const char *def;
	int64_t min, max;
	const char *const *words; /* CFG_ENUM: NULL-terminated */
	bool secret;
	size_t offset;
	const char *help;
};

static const char *const orphan_words[] = {"report", "delete", NULL};
static const char *const count_words[] = {"before", "pass", NULL};
static const char *const level_words[] = {"error", "warn", "info", "debug", NULL};

#define OFF(f) offsetof(struct config, f)
#define DAY_MS (24LL * 3600 * 1000)

static const struct cfg_entry cfg_table[] = {
    {"MONGODB_URI", CFG_MONGO_URI, "mongodb://127.0.0.1:27017", 0, 0, NULL, true, OFF(mongodb_uri),
     "MongoDB connection string (its password is masked everywhere)"},
    {"MONGODB_DATABASE", CFG_STRING, "test", 1, 0, NULL, false, OFF(mongodb_database),
     "database of the mirrored collection"},
    {"MONGODB_COLLECTION", CFG_STRING, "documents", 1, 0, NULL, false, OFF(mongodb_collection),
     "the mirrored collection"},
    {"OPENSEARCH_URL", CFG_HTTP_URL, "http://127.0.0.1:9200", 0, 0, NULL, true, OFF(opensearch_url),
     "OpenSearch base URL (http or https)"},
    {"OPENSEARCH_USERNAME", CFG_STRING, "", 0, 0, NULL, false, OFF(opensearch_username),
     "basic-auth user for OpenSearch; empty = no auth"},
    {"OPENSEARCH_PASSWORD", CFG_STRING, "", 0, 0, NULL, true, OFF(opensearch_password),
     "basic-auth password for OpenSearch"},
    {"OPENSEARCH_INDEX", CFG_STRING, "documents", 1, 0, NULL, false, OFF(opensearch_index),
     "the index that mirrors the collection"},
    {"OPENSEARCH_ID_FIELD", CFG_STRING, "mongo_id", 0, 0, NULL, false, OFF(opensearch_id_field),
     "keyword field holding the MongoDB id in each indexed document; empty = sort on _id"},
    {"OPENSEARCH_TLS_VERIFY", CFG_BOOL, "true", 0, 0, NULL, false, OFF(opensearch_tls_verify),
     "verify OpenSearch's TLS certificate"},
    {"OPENSEARCH_CA_FILE", CFG_STRING, "", 0, 0, NULL, false, OFF(opensearch_ca_file),
     "CA bundle for OpenSearch's certificate; empty = system store"},
    {"OPENSEARCH_TIMEOUT_MS", CFG_INT, "60000", 1000, DAY_MS, NULL, false,
     OFF(opensearch_timeout_ms), "timeout of one OpenSearch request"},
    {"SYNC_BATCH_SIZE", CFG_INT, "100", 1, 10000, NULL, false, OFF(sync_batch_size),
     "most documents in one _bulk request"},
    {"SYNC_BATCH_SIZE_BYTES", CFG_INT, "5242880", 1024, 1073741824, NULL, false,
     OFF(sync_batch_size_bytes), "most bytes in one _bulk request"},
    {"SYNC_BATCH_DELAY_MS", CFG_INT, "0", 0, 600000, NULL, false, OFF(sync_batch_delay_ms),
     "pause between _bulk requests (0 = as fast as the index allows)"},
    {"SYNC_MAX_RETRIES", CFG_INT, "6", 0, 100, NULL, false, OFF(sync_max_retries),
     "retries of a _bulk answered 429/503 or lost, with exponential backoff and jitter"},
    {"STATE_DB", CFG_STRING, "data/reconciler.db", 1, 0, NULL, false, OFF(state_db),
     "path of the SQLite journal"},
    {"RECONCILE_VERSION_FIELD", CFG_STRING, "", 0, 0, NULL, false, OFF(version_field),
     "field compared to find stale copies (e.g. updatedAt); empty = no stale detection"},
    {"RECONCILE_ORPHANS", CFG_ENUM, "report", 0, 0, orphan_words, false, OFF(orphans),
     "what to do with documents only in the index: report or delete"},
    {"RECONCILE_MONGO_COUNT", CFG_ENUM, "before", 0, 0, count_words, false, OFF(mongo_count),
     "MongoDB count of a run: before (countDocuments first) or pass (the ids the pass read: "
     "exact, and no extra scan on servers where counting scans the collection)"},
    {"RECONCILE_CHUNK_SIZE", CFG_INT, "5000", 10, 100000, NULL, false, OFF(chunk_size),
     "ids compared per chunk (memory is proportional to this)"},
    {"RECONCILE_MIN_AGE_MS", CFG_INT, "0", 0, 30 * DAY_MS, NULL, false, OFF(min_age_ms),
     "leave documents changed more recently than this alone (0 = off)"},
    {"HTTP_BIND", CFG_STRING, "127.0.0.1", 1, 0, NULL, false, OFF(http_bind),
     "IPv4 or IPv6 address the HTTP API listens on (0.0.0.0: every interface)"},
    {"PORT", CFG_INT, "3000", 0, 65535, NULL, false, OFF(port),
     "port the HTTP API listens on (0 = any free port)"},
    {"RECONCILIATION_ENABLED", CFG_BOOL, "true", 0, 0, NULL, false, OFF(reconciliation_enabled),
     "start the schedule when the service starts"},
    {"RECONCILIATION_STARTUP_DELAY_MS", CFG_INT, "120000", 0, DAY_MS, NULL, false,
     OFF(startup_delay_ms), "wait before the first scheduled run"},
    {"RECONCILIATION_INTERVAL_MS", CFG_INT, "1800000", 1000, 30 * DAY_MS, NULL, false,
     OFF(interval_ms), "time between scheduled runs"},
    {"COUNT_MONITOR_ENABLED", CFG_BOOL, "true", 0, 0, NULL, false, OFF(count_monitor_enabled),
     "compare counts periodically and start a run past the threshold"},
    {"COUNT_MONITOR_INTERVAL_MS", CFG_INT, "18000000", 1000, 30 * DAY_MS, NULL, false,
     OFF(count_monitor_interval_ms), "time between count comparisons"},
    {"COUNT_MONITOR_THRESHOLD", CFG_INT, "100", 0, 1000000000, NULL, false,
     OFF(count_monitor_threshold), "count difference that starts a run"},
    {"API_TOKEN", CFG_STRING, "", 0, 0, NULL, true, OFF(api_token),
     "when set, POST routes require Authorization: Bearer <token>"},
    {"API_TOKEN_READ", CFG_BOOL, "false", 0, 0, NULL, false, OFF(api_token_read),
     "require the token on GET routes too (health probes stay open)"},
    {"LOG_LEVEL", CFG_ENUM, "info", 0, 0, level_words, false, OFF(log_level),
     "error, warn, info or debug"},
    {"LOG_DIR", CFG_STRING, "logs", 0, 0, NULL, false, OFF(log_dir),
     "directory of combined.log and error.log; empty = stderr only"},
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
		snprintf(out, len, "true or false");
		break;
	case CFG_ENUM:
		out[0] = '\0';
		for (int i = 0; e->words[i]; i++)
			n += (size_t)snprintf(out + n, len - n, "%s%s", i ? ", " : "one of ",
			                      e->words[i]);
		break;
	case CFG_MONGO_URI:
		snprintf(out, len, "a mongodb:// or mongodb+srv:// URI");
		break;
	case CFG_HTTP_URL:
		snprintf(out, len, "an http:// or https:// URL");
		break;
	case CFG_STRING:
		snprintf(out, len, e->min ? "a non-empty string" : "any string");
		break;
	}
}

static rcode
set_value(struct config *cfg, const struct cfg_entry *e, const char *v, struct rerror *err)
{
	char what[160];
	int64_t n;

	switch (e->type) {
	case CFG_INT:
		if (util_parse_i64(v, &n) || n < e->min || n > e->max)
			goto bad;
		*(int64_t *)field(cfg, e) = n;
		return RC_OK;
	case CFG_BOOL:
		if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"))
			*(bool *)field(cfg, e) = true;
		else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no"))
			*(bool *)field(cfg, e) = false;
		else
			goto bad;
		return RC_OK;
	case CFG_ENUM:
		for (int i = 0; e->words[i]; i++) {
			if (!strcasecmp(v, e->words[i])) {
				*(int *)field(cfg, e) = i;
				return RC_OK;
			}
		}
		goto bad;
	case CFG_MONGO_URI:
		if (strncmp(v, "mongodb://", 10) && strncmp(v, "mongodb+srv://", 14))
			goto bad;
		if (strlen(v) <= (v[7] == '+' ? 14u : 10u))
			goto bad;
		break;
	case CFG_HTTP_URL:
		if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
			goto bad;
		if (strlen(v) <= (v[4] == 's' ? 8u : 7u) || strpbrk(v, " \t\r\n"))
			goto bad;
		break;
	case CFG_STRING:
		if (e->min && *v == '\0')
			goto bad;
		break;
	}
	{
		char **slot = field(cfg, e);
		char *copy = strdup(v);
		if (copy == NULL)
			return rerror_set(err, RC_ERR_NOMEM, "out of memory");
		/* a URL's trailing slash would double in every path we build */
		if (e->type == CFG_HTTP_URL)
			while (strlen(copy) > 8 && copy[strlen(copy) - 1] == '/')
				copy[strlen(copy) - 1] = '\0';
		free(*slot);
		*slot = copy;
	}
	return RC_OK;
bad:
	allowed(e, what, sizeof(what));
	{
		bool uri = e->type == CFG_MONGO_URI || e->type == CFG_HTTP_URL;
		char *shown = uri ? util_mask_uri(v) : NULL;
		rerror_set(err, RC_ERR_CONFIG, "%s=\"%s\" is invalid: expected %s", e->name,
		           shown ? shown : (e->secret ? "***" : v), what);
		free(shown);
	}
	return RC_ERR_CONFIG;
}

/* Reads KEY=VALUE lines; '#' comments, optional `export `, optional quotes.
 * Values are only used for names the environment does not set. */
static rcode
load_dotenv(struct config *cfg, const char *path, struct rerror *err)
{
	char line[8192];
	FILE *f = fopen(path, "r");
	rcode rc = RC_OK;
	int lineno = 0;

	if (f == NULL)
		return RC_OK;
	while (rc == RC_OK && fgets(line, sizeof(line), f)) {
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
		if (getenv(k) != NULL)
			continue;
		for (size_t i = 0; i < CFG_COUNT; i++)
			if (!strcmp(cfg_table[i].name, k))
				rc = set_value(cfg, &cfg_table[i], v, err);
	}
	fclose(f);
	return rc;
}

rcode
config_load(struct config **out, const char *dotenv_path, struct rerror *err)
{
	struct config *cfg;
	rcode rc = RC_OK;

	*out = NULL;
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < CFG_COUNT && rc == RC_OK; i++)
		rc = set_value(cfg, &cfg_table[i], cfg_table[i].def, err);
	if (rc == RC_OK && dotenv_path)
		rc = load_dotenv(cfg, dotenv_path, err);
	for (size_t i = 0; i < CFG_COUNT && rc == RC_OK; i++) {
		const char *v = getenv(cfg_table[i].name);
		if (v != NULL)
			rc = set_value(cfg, &cfg_table[i], v, err);
	}
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
	for (size_t i = 0; i < CFG_COUNT; i++) {
		const struct cfg_entry *e = &cfg_table[i];
		if (e->type == CFG_STRING || e->type == CFG_MONGO_URI || e->type == CFG_HTTP_URL)
			free(*(char **)field(cfg, e));
	}
	free(cfg);
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
		return strdup(e->words[*(const int *)cfield(cfg, e)]);
	case CFG_MONGO_URI:
	case CFG_HTTP_URL:
		return util_mask_uri(*(char *const *)cfield(cfg, e));
	case CFG_STRING: {
		const char *s = *(char *const *)cfield(cfg, e);
		if (e->secret && *s)
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

rcode
config_dump_json(const struct config *cfg, struct buf *out)
{
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;
	rcode rc = RC_ERR_NOMEM;

	if (o == NULL)
		return RC_ERR_NOMEM;
	for (size_t i = 0; i < CFG_COUNT; i++) {
		char *v = shown_value(cfg, &cfg_table[i]);
		if (v == NULL || cJSON_AddStringToObject(o, cfg_table[i].name, v) == NULL) {
			free(v);
			goto out;
		}
		free(v);
	}
	s = cJSON_PrintUnformatted(o);
	if (s)
		rc = buf_puts(out, s);
out:
	free(s);
	cJSON_Delete(o);
	return rc;
}

rcode
config_dump_markdown(struct buf *out)
{
	static const char *const type_names[] = {"string", "integer", "boolean",
	                                         "enum",   "URI",     "URL"};
	char what[160];
	rcode rc =
	    buf_puts(out, "# Configuration\n\n"
	                  "Generated by `reconciler config --markdown` from the table in "
	                  "`src/config.c`; a test keeps this file equal to it.\n\n"
	                  "Values come from the environment, then from `.env` in the working "
	                  "directory for names the environment does not set. A bad value stops "
	                  "the program with a message naming the variable (exit 78).\n\n"
	                  "| name | type | default | allowed | help |\n"
	                  "|---|---|---|---|---|\n");
	for (size_t i = 0; i < CFG_COUNT && rc == RC_OK; i++) {
		const struct cfg_entry *e = &cfg_table[i];
		allowed(e, what, sizeof(what));
		rc = buf_printf(out, "| `%s` | %s | `%s` | %s | %s%s |\n", e->name,
		                type_names[e->type], e->def, what, e->help,
		                e->secret ? " (secret: masked in all output)" : "");
	}
	return rc;
}
