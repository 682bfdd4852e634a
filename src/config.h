/*
 * config.h: every setting of the reconciler, from one table (config.c).
 *
 * Values come from the environment, then from an optional .env file in the
 * working directory for names the environment does not set. A bad value
 * stops the program with a message naming the variable, the value and what
 * is allowed (exit 78, EX_CONFIG).
 */
#ifndef RECONCILER_CONFIG_H
#define RECONCILER_CONFIG_H

#include "error.h"
#include "util.h"

#include <stdbool.h>
#include <stdint.h>

enum orphan_policy { ORPHANS_REPORT = 0, ORPHANS_DELETE = 1 };
enum mongo_count_mode { MONGO_COUNT_BEFORE = 0, MONGO_COUNT_PASS = 1 };

struct config {
	char *mongodb_uri;
	char *mongodb_database;
	char *mongodb_collection;
	char *opensearch_url;
	char *opensearch_username;
	char *opensearch_password;
	char *opensearch_index;
	char *opensearch_id_field;
	char *opensearch_ca_file;
	bool opensearch_tls_verify;
	int64_t opensearch_timeout_ms;
	int64_t sync_batch_size;
	int64_t sync_batch_size_bytes;
	int64_t sync_batch_delay_ms;
	int64_t sync_max_retries;
	char *state_db;
	char *version_field;
	int orphans;     /* enum orphan_policy */
	int mongo_count; /* enum mongo_count_mode */
	int64_t chunk_size;
	int64_t min_age_ms;
	char *http_bind;
	int64_t port;
	bool reconciliation_enabled;
	int64_t startup_delay_ms;
	int64_t interval_ms;
	bool count_monitor_enabled;
	int64_t count_monitor_interval_ms;
	int64_t count_monitor_threshold;
	char *api_token;
	bool api_token_read;
	int log_level; /* enum log_level */
	char *log_dir;
};

/* Loads defaults, then dotenv_path (may be NULL or missing), then the
 * environment. On RC_ERR_CONFIG, err->message names the variable. */
rcode config_load(struct config **out, const char *dotenv_path, struct rerror *err);
void config_free(struct config *cfg);

/* Effective configuration with secrets masked: "NAME=value\n" lines. */
rcode config_dump_env(const struct config *cfg, struct buf *out);
/* The same as one JSON object (for the journal's config snapshot). */
rcode config_dump_json(const struct config *cfg, struct buf *out);
/* The table as a Markdown reference (docs/CONFIG.md is generated from it). */
rcode config_dump_markdown(struct buf *out);

#endif
