/*
 * config.h: every setting of the reconciler, from one table (config.c).
 *
 * A mirror is one MongoDB collection and the OpenSearch index that mirrors
 * it; each setting is either global (journal, HTTP API, logs) or per mirror.
 * Without a file, values come from the environment, then from an optional
 * .env file for names the environment does not set, and define one mirror
 * named "default". A YAML file (RECONCILER_CONFIG, or ./reconciler.yaml)
 * adds a top level (global settings and defaults for every mirror) under
 * the environment, and a list of named mirrors over it. A bad value or file
 * stops the program with a message naming the variable (or file, line and
 * key), the value and what is allowed (exit 78, EX_CONFIG).
 */
#ifndef RECONCILER_CONFIG_H
#define RECONCILER_CONFIG_H

#include "error.h"
#include "util.h"

#include <stdbool.h>
#include <stdint.h>

enum orphan_policy { ORPHANS_REPORT = 0, ORPHANS_DELETE = 1 };
enum mongo_count_mode { MONGO_COUNT_BEFORE = 0, MONGO_COUNT_PASS = 1 };
/* RECONCILE_WRITE_MODE: a partial update that keeps fields only the index
 * has, or the whole copy replaced. */
enum write_mode { WRITE_UPSERT = 0, WRITE_INDEX = 1 };
/* OPENSEARCH_VERSION_TYPE: no version sent, or the version field's epoch ms
 * as an external_gte version (index mode only). */
enum version_type { VERSION_INTERNAL = 0, VERSION_EXTERNAL_GTE = 1 };
enum compare_mode { COMPARE_VERSION = 0, COMPARE_CONTENT = 1 };
/* RECONCILE_VERIFY: how a check proves key ranges in sync (docs/ENGINE.md,
 * "Verifying by range summaries"). */
enum verify_mode { VERIFY_AUTO = 0, VERIFY_SUMMARY = 1, VERIFY_MERGE = 2 };

struct config_set;

/* One mirror's effective settings, the global ones included, so everything
 * that runs a mirror takes one `const struct config *`. */
struct config {
	char *name; /* the mirror's name; "default" without a file; NULL in a set's global view */
	/* the set the mirror is one of (its peers, for the run-time check that
	 * two mirrors do not write one index); NULL when loaded alone */
	const struct config_set *set;
	size_t line; /* the line of its `name:` in the file; 0: not from a file */
	char *mongodb_uri;
	char *mongodb_database;
	char *mongodb_collection;
	char *opensearch_url;
	char *opensearch_username;
	char *opensearch_password;
	char *opensearch_index;
	char *opensearch_id_field;
	char *opensearch_ca_file;
	char *opensearch_bearer_token;      /* secret */
	char *opensearch_bearer_token_file; /* re-read when it changes (opensearch.c) */
	char *opensearch_client_cert;
	char *opensearch_client_key;
	bool opensearch_tls_verify;
	int64_t opensearch_timeout_ms;
	char *opensearch_aws_region; /* "": no AWS signing */
	int opensearch_aws_service;  /* enum aws_service */
	int64_t sync_batch_size;
	int64_t sync_batch_size_bytes;
	int64_t sync_batch_delay_ms;
	int64_t sync_concurrency;
	int64_t opensearch_scan_page;
	int64_t sync_max_retries;
	char *state_db;
	char *version_field;
	int orphans;             /* enum orphan_policy */
	int mongo_count;         /* enum mongo_count_mode */
	int compare;             /* enum compare_mode */
	int verify;              /* enum verify_mode */
	double max_delete_ratio; /* the brake: most orphans deleted per run, of the index count */
	int64_t max_deletes;     /* the brake: most orphans deleted per run */
	int64_t chunk_size;
	int64_t partitions; /* RECONCILE_PARTITIONS: key ranges run at once (1: one pass) */
	int64_t min_age_ms;
	char *filter;                /* RECONCILE_FILTER: MongoDB query, extended JSON; "" = none */
	char *opensearch_query;      /* OPENSEARCH_QUERY: query-DSL clause, JSON; "" = none */
	char *opensearch_keep_query; /* OPENSEARCH_KEEP_QUERY: query-DSL clause; "" = none */
	char *fields;                /* RECONCILE_FIELDS: comma list; "" = all */
	char *exclude;               /* RECONCILE_EXCLUDE: comma list */
	char *rename;                /* RECONCILE_RENAME: comma list of from:to */
	char *transform;             /* RECONCILE_TRANSFORM: Lua script path; "" = none */
	int64_t transform_max_instructions;       /* per transform(doc) call */
	int64_t transform_max_memory;             /* bytes per Lua state */
	int64_t transform_max_consecutive_errors; /* the run stops after so many; 0 never */
	char *routing_field; /* OPENSEARCH_ROUTING_FIELD: comma list; "" = none */
	int write_mode;      /* enum write_mode */
	/* OPENSEARCH_INDEX_OWNED_FIELDS: comma list of the top-level fields only
	 * the index writes; "" = not said (leftovers kept), "none" = no field */
	char *owned_fields;
	int version_type;    /* enum version_type */
	char *pipeline;      /* OPENSEARCH_PIPELINE: ingest pipeline; "" = none */
	int64_t concurrency; /* global: runs of different mirrors the service runs at once */
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
	char *lease_index;    /* RECONCILE_LEASE_INDEX: lease.c; "" = off */
	int64_t lease_ttl_ms; /* RECONCILE_LEASE_TTL_MS */
	int log_level;        /* enum log_level */
	char *log_dir;
	bool change_stream_enabled;     /* live sync: serve tails the change stream */
	int64_t change_stream_batch_ms; /* live sync: the time bound of a batch */
	bool change_stream_catchup;     /* live sync: a gap runs a check */
};

/* Every mirror of a configuration: those of a file, or the one "default"
 * mirror the environment defines. */
struct config_set {
	char *file;              /* the YAML file read; NULL when none */
	struct config *global;   /* defaults, the file's top level, .env, the environment */
	struct config **mirrors; /* in the file's order, each a full copy; at least one */
	size_t n_mirrors;
	/* things a person should know, though not errors: an environment
	 * variable overriding a value the file's top level sets (every
	 * mirror that does not set it takes the environment's). Owned. */
	char **warnings;
	size_t n_warnings;
};

/* Loads defaults, then dotenv_path (may be NULL or missing), then the
 * environment: the "default" mirror. On RC_ERR_CONFIG, err->message names
 * the variable. */
RC_MUST_CHECK rcode config_load(struct config **out, const char *dotenv_path, struct rerror *err);
void config_free(struct config *cfg);

/* The configuration file to read: RECONCILER_CONFIG when set (set but empty:
 * none), else "reconciler.yaml" when the working directory has one, else
 * NULL. */
const char *config_file_default(void);

/* Loads defaults, the top level of file (NULL: no file), dotenv_path, the
 * environment, then each mirror of the file over that (no `mirrors:` or no
 * file: one mirror "default"). On RC_ERR_CONFIG, err->message names the
 * variable, or the file, line and key, and what is allowed. */
RC_MUST_CHECK rcode config_set_load(struct config_set **out, const char *file,
                                    const char *dotenv_path, struct rerror *err);
void config_set_free(struct config_set *set);
/* The mirror called name, or NULL. */
const struct config *config_set_find(const struct config_set *set, const char *name);
/* Whether name is a valid mirror name: 1 to 63 of a-z, 0-9, '_' and '-',
 * starting with a letter or digit. */
bool config_mirror_name_valid(const char *name);

/* Whether two OPENSEARCH_QUERY values select different documents as far as
 * a configuration can tell: both set and not the same JSON (compared
 * parsed, so spacing and key order do not matter). An empty one selects
 * everything: never distinct; nor is one that matches every document
 * (match_all, or bool/constant_score made only of it). Whether two real
 * queries overlap is not decided (docs/CONFIG.md). */
bool config_queries_distinct(const char *a, const char *b);

/* Whether two mirrors reach their OpenSearch the same way (URL,
 * credentials, TLS, timeout: one connection serves both), and their
 * MongoDB (the same URI text). */
bool config_same_opensearch(const struct config *a, const struct config *b);
bool config_same_mongodb(const struct config *a, const struct config *b);
/* OPENSEARCH_URL as a comparable key (caller frees; NULL when it does not
 * parse or out of memory): host in lower case, localhost, 127.0.0.1 and
 * ::1 as one loopback host, the scheme's default port made explicit, no
 * user, trailing slashes of the path dropped. The scheme is left out: one
 * host and port serves one of them. */
char *config_url_key(const char *url);

/* Effective configuration with secrets masked: "NAME=value\n" lines. */
RC_MUST_CHECK rcode config_dump_env(const struct config *cfg, struct buf *out);
/* The same as one JSON object (for the journal's config snapshot). */
RC_MUST_CHECK rcode config_dump_json(const struct config *cfg, struct buf *out);
/* What an interrupted run's snapshot (config_dump_json's text, as its runs
 * row keeps it) says differently from cfg, for the settings that decide
 * what a run compares or where it writes (the table's CFG_RUN rows):
 * appends `KEY "old" -> "new"` for each, separated by "; ", both shown as
 * the snapshot shows them (secrets masked); nothing when none differs. A
 * key the snapshot lacks (a run begun by an older version) is compared
 * with the default. MONGODB_URI is compared by its hosts only (its user,
 * password and options change no document read). RC_ERR_INVALID: the
 * snapshot is not a JSON object (nothing to compare). */
RC_MUST_CHECK rcode config_run_changes(const struct config *cfg, const char *snapshot,
                                       struct buf *out);
/* Every mirror's effective settings, secrets masked, as YAML in the file's
 * shape: global settings at the top, each mirror's own under mirrors:. */
RC_MUST_CHECK rcode config_set_dump_yaml(const struct config_set *set, struct buf *out);
/* The same as JSON: {"file", "mirrors": [{"name", "config": snapshot}]}. */
RC_MUST_CHECK rcode config_set_dump_json(const struct config_set *set, struct buf *out);
/* The table as a Markdown reference (docs/CONFIG.md is generated from it). */
RC_MUST_CHECK rcode config_dump_markdown(struct buf *out);
/* The bounds of an integer setting (its env name, "RECONCILIATION_INTERVAL_MS")
 * into *min and *max; false when the table has no such setting. */
bool config_key_bounds(const char *name, int64_t *min, int64_t *max);

#endif
