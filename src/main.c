/*
 * main.c: the reconciler command line.
 *
 * A table of commands (name, handler, usage, help) drives dispatch and
 * --help. Exit codes: 0 in sync or repaired; 1 a dry run found drift, or a
 * doctor check failed; 2 an error (including "another run holds the
 * journal"); 3 the run completed but some documents could not be repaired
 * (journaled failed, or id conflicts), as rsync's 23/24 say "partial";
 * 78 bad configuration (EX_CONFIG).
 *
 * A command gets one mirror's settings: the only mirror there is, or the
 * global view for commands that only read the journal. `config` shows every
 * mirror of the file, so it reads the whole set (config_loaded).
 */
#include "config.h"
#include "engine.h"
#include "log.h"
#include "mongo.h"
#include "opensearch.h"
#include "store.h"
#include "util.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define EXIT_DRIFT   1
#define EXIT_ERROR   2
#define EXIT_PARTIAL 3
#define EXIT_CONFIG  78

int serve_main(const struct config_set *set); /* api.c */

struct command {
	const char *name;
	int (*fn)(struct config *cfg, int argc, char **argv);
	const char *usage;
	const char *help;
};

static const struct config_set *config_loaded;
static struct engine *signal_engine;
static volatile sig_atomic_t signal_count;

static void
on_signal(int sig)
{
	(void)sig;
	if (++signal_count > 1)
		_exit(130); /* a second signal: at once; the journal is transactional */
	if (signal_engine)
		engine_stop(signal_engine, false);
}

static void
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void
print_json(cJSON *j)
{
	char *s = cJSON_Print(j);

	if (s) {
		puts(s);
		free(s);
	}
}

static int
cmd_doctor(struct config *cfg, int argc, char **argv)
{
	struct rerror err = {0};
	struct mongo *m = NULL;
	struct opensearch *os = NULL;
	char *version = NULL, *masked;
	int64_t count = -1;
	const char *bad = NULL;
	char reason[600] = "";

	(void)argc;
	(void)argv;
	masked = util_mask_uri(cfg->mongodb_uri);
	if (mongo_open(&m, cfg->mongodb_uri, cfg->mongodb_database, cfg->mongodb_collection,
	               &err) == RC_OK &&
	    mongo_ping(m, &version, &err) == RC_OK && mongo_count(m, &count, &err) == RC_OK) {
		printf("mongodb     reachable    version %s  documents %" PRId64 "  (%s %s.%s)\n",
		       version, count, masked ? masked : "", cfg->mongodb_database,
		       cfg->mongodb_collection);
	} else {
		printf("mongodb     UNREACHABLE  %s\n", err.message);
		bad = "mongodb";
		snprintf(reason, sizeof(reason), "%s", err.message);
	}
	free(masked);
	free(version);
	version = NULL;
	mongo_free(m);

	masked = util_mask_uri(cfg->opensearch_url);
	err.message[0] = '\0';
	if (opensearch_open(&os, cfg, &err) == RC_OK &&
	    opensearch_info(os, &version, &err) == RC_OK) {
		rcode rc = opensearch_count(os, &count, &err);
		if (rc == RC_OK)
			printf("opensearch  reachable    version %s  documents %" PRId64
			       "  (%s index %s)\n",
			       version, count, masked ? masked : "", cfg->opensearch_index);
		else if (rc == RC_ERR_NOTFOUND)
			printf("opensearch  reachable    version %s  index %s does not exist yet "
			       "(%s)\n",
			       version, cfg->opensearch_index, masked ? masked : "");
		else {
			printf("opensearch  ERROR        %s\n", err.message);
			if (!bad) {
				bad = "opensearch";
				snprintf(reason, sizeof(reason), "%s", err.message);
			}
		}
	} else {
		printf("opensearch  UNREACHABLE  %s\n", err.message);
		if (!bad) {
			bad = "opensearch";
			snprintf(reason, sizeof(reason), "%s", err.message);
		}
	}
	free(masked);
	free(version);
	opensearch_free(os);
	if (bad) {
		fprintf(stderr, "doctor: %s unreachable: %s\n", bad, reason);
		return EXIT_DRIFT;
	}
	return 0;
}

static int
run_engine(struct config *cfg, const char *kind, const char *trigger, int64_t resume_id)
{
	struct engine *e = NULL;
	struct engine_result res;
	struct rerror err = {0};
	rcode rc;

	if (engine_new(&e, cfg, &err))
		return EXIT_ERROR;
	engine_set_progress_output(e, isatty(STDERR_FILENO));
	signal_engine = e;
	install_signals();
	rc = engine_run(e, &res, kind, trigger, resume_id, &err);
	signal_engine = NULL;
	engine_free(e);
	if (rc == RC_ERR_BUSY) {
		fprintf(stderr, "reconciler: %s\n", err.message);
		return EXIT_ERROR;
	}
	if (res.run_id) {
		printf("run %" PRId64 " (%s) %s: mongodb %" PRId64 ", opensearch %" PRId64
		       ", missing %" PRId64 ", orphans %" PRId64 ", stale %" PRId64
		       ", duplicates %" PRId64 ", conflicts %" PRId64 ", skipped %" PRId64
		       ", repaired %" PRId64 ", deleted %" PRId64 ", failed %" PRId64 "\n",
		       res.run_id, res.kind, res.status, res.mongo_count, res.opensearch_count,
		       res.missing, res.orphans, res.stale, res.duplicates, res.conflicts,
		       res.skipped, res.repaired, res.deleted, res.failed);
	}
	if (rc) {
		fprintf(stderr, "reconciler: %s\n", err.message[0] ? err.message : rcode_name(rc));
		return EXIT_ERROR;
	}
	if (strcmp(res.kind, "dry_run") == 0 &&
	    res.missing + res.orphans + res.stale + res.duplicates + res.conflicts > 0)
		return EXIT_DRIFT;
	if (strcmp(res.kind, "dry_run") != 0 && res.failed + res.conflicts > 0) {
		/* "&&" after check must not read as "the index equals MongoDB" */
		fprintf(stderr,
		        "reconciler: run %" PRId64 " completed, but %" PRId64
		        " documents could not be repaired (%" PRId64 " failed, %" PRId64
		        " id conflicts): reconciler show %" PRId64 "\n",
		        res.run_id, res.failed + res.conflicts, res.failed, res.conflicts,
		        res.run_id);
		return EXIT_PARTIAL;
	}
	return 0;
}

static int
cmd_check(struct config *cfg, int argc, char **argv)
{
	const char *kind = "check";

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0)
			kind = "dry_run";
		else if (strcmp(argv[i], "--full") == 0)
			kind = "full";
		else {
			fprintf(stderr, "check: unknown option %s\n", argv[i]);
			return EXIT_ERROR;
		}
	}
	return run_engine(cfg, kind, "cli", 0);
}

static int
cmd_resume(struct config *cfg, int argc, char **argv)
{
	int64_t id = 0;
	struct store *s = NULL;
	struct rerror err = {0};

	if (argc > 2 || (argc == 2 && (util_parse_i64(argv[1], &id) || id <= 0))) {
		fprintf(stderr, "usage: reconciler resume [RUN_ID]\n");
		return EXIT_ERROR;
	}
	if (id == 0) {
		if (store_open(&s, cfg->state_db, &err)) {
			fprintf(stderr, "reconciler: %s\n", err.message);
			return EXIT_ERROR;
		}
		store_run_unfinished(s, &id, cfg->name);
		store_free(s);
		if (id == 0) {
			printf("no interrupted run to resume\n");
			return 0;
		}
	}
	return run_engine(cfg, "check", "resume", id);
}

static int
with_store(struct config *cfg, struct store **s)
{
	struct rerror err = {0};

	if (store_open(s, cfg->state_db, &err)) {
		fprintf(stderr, "reconciler: %s\n", err.message);
		return EXIT_ERROR;
	}
	return 0;
}

static int
cmd_runs(struct config *cfg, int argc, char **argv)
{
	struct store *s;
	cJSON *runs = NULL, *r;
	int64_t limit = 20;

	if (argc == 3 && strcmp(argv[1], "--limit") == 0) {
		if (util_parse_i64(argv[2], &limit) || limit <= 0 || limit > 100000) {
			fprintf(stderr, "runs: --limit takes a number from 1 to 100000\n");
			return EXIT_ERROR;
		}
	} else if (argc != 1) {
		fprintf(stderr, "usage: reconciler runs [--limit N]\n");
		return EXIT_ERROR;
	}
	if (with_store(cfg, &s))
		return EXIT_ERROR;
	if (store_report_runs(s, &runs, NULL, limit, 0, NULL)) {
		store_free(s);
		fprintf(stderr, "runs: cannot read the journal\n");
		return EXIT_ERROR;
	}
	printf("%-6s %-8s %-13s %-11s %-24s %9s %9s %8s %8s %8s %8s %8s\n", "id", "kind", "trigger",
	       "status", "started", "mongodb", "index", "missing", "orphans", "stale", "repaired",
	       "failed");
	cJSON_ArrayForEach(r, runs)
	{
		printf("%-6d %-8s %-13s %-11s %-24s %9.0f %9.0f %8.0f %8.0f %8.0f %8.0f %8.0f\n",
		       cJSON_GetObjectItem(r, "id")->valueint,
		       cJSON_GetStringValue(cJSON_GetObjectItem(r, "kind")),
		       cJSON_GetStringValue(cJSON_GetObjectItem(r, "trigger")),
		       cJSON_GetStringValue(cJSON_GetObjectItem(r, "status")),
		       cJSON_GetStringValue(cJSON_GetObjectItem(r, "startedAt")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "mongoCount")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "opensearchCount")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "missingCount")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "orphanCount")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "staleCount")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "repairedCount")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "failedCount")));
	}
	cJSON_Delete(runs);
	store_free(s);
	return 0;
}

static int
cmd_show(struct config *cfg, int argc, char **argv)
{
	struct store *s;
	cJSON *report = NULL;
	int64_t id;
	rcode rc;

	if (argc != 2 || util_parse_i64(argv[1], &id) || id <= 0) {
		fprintf(stderr, "usage: reconciler show RUN_ID\n");
		return EXIT_ERROR;
	}
	if (with_store(cfg, &s))
		return EXIT_ERROR;
	rc = store_report_run(s, &report, id);
	store_free(s);
	if (rc == RC_ERR_NOTFOUND) {
		fprintf(stderr, "show: no run %" PRId64 "\n", id);
		return EXIT_ERROR;
	}
	if (rc) {
		fprintf(stderr, "show: cannot read the journal\n");
		return EXIT_ERROR;
	}
	print_json(report);
	cJSON_Delete(report);
	return 0;
}

static int
cmd_migrate(struct config *cfg, int argc, char **argv)
{
	struct store *s;

	(void)argc;
	(void)argv;
	if (with_store(cfg, &s))
		return EXIT_ERROR;
	store_free(s); /* opening applies what is pending */
	printf("journal %s is up to date\n", cfg->state_db);
	return 0;
}

static int
cmd_config(struct config *cfg, int argc, char **argv)
{
	const struct config_set *set = config_loaded;
	const struct config *one = cfg;
	const char *mirror = NULL;
	bool json = false, markdown = false;
	struct buf b = {0};
	rcode rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--markdown") == 0)
			markdown = true;
		else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc)
			i++; /* main read it */
		else if (strcmp(argv[i], "--mirror") == 0 && i + 1 < argc)
			mirror = argv[++i];
		else {
			fprintf(stderr, "usage: reconciler config [--file FILE] [--mirror NAME] "
			                "[--json|--markdown]\n");
			return EXIT_ERROR;
		}
	}
	if (mirror && (one = config_set_find(set, mirror)) == NULL) {
		fprintf(stderr, "config: no mirror named %s in %s\n", mirror,
		        set->file ? set->file : "the environment (its one mirror is default)");
		return EXIT_ERROR;
	}
	if (markdown)
		rc = config_dump_markdown(&b);
	else if (set->file && !mirror) /* every mirror, in the file's shape */
		rc = json ? config_set_dump_json(set, &b) : config_set_dump_yaml(set, &b);
	else
		rc = json ? config_dump_json(one, &b) : config_dump_env(one, &b);
	if (rc == RC_OK && b.data)
		fputs(b.data, stdout);
	if (json && !markdown)
		putchar('\n');
	buf_free(&b);
	return rc ? EXIT_ERROR : 0;
}

static int
cmd_serve(struct config *cfg, int argc, char **argv)
{
	(void)cfg;
	(void)argc;
	(void)argv;
	return serve_main(config_loaded);
}

static int cmd_help(struct config *cfg, int argc, char **argv);

static const struct command commands[] = {
    {"serve", cmd_serve, "serve", "run the service: HTTP API, schedule, resume on start"},
    {"check", cmd_check, "check [--dry-run] [--full]",
     "one run in the foreground: detect and repair (--dry-run: detect only; --full: re-index "
     "everything)"},
    {"resume", cmd_resume, "resume [RUN_ID]", "continue an interrupted run"},
    {"runs", cmd_runs, "runs [--limit N]", "list recent runs from the journal"},
    {"show", cmd_show, "show RUN_ID", "a run's report: counts, batches, errors, drift sample"},
    {"doctor", cmd_doctor, "doctor", "can both servers be reached? versions and counts"},
    {"migrate", cmd_migrate, "migrate", "apply pending journal migrations"},
    {"config", cmd_config, "config [--file FILE] [--mirror NAME] [--json|--markdown]",
     "the effective configuration, secrets masked (--file: check a configuration file)"},
    {"help", cmd_help, "help", "this text"},
};

static int
cmd_help(struct config *cfg, int argc, char **argv)
{
	(void)cfg;
	(void)argc;
	(void)argv;
	printf("reconciler %s: keeps an OpenSearch index equal to the MongoDB collection it "
	       "mirrors\n\nusage: reconciler COMMAND [ARGS]\n\n",
	       RECONCILER_VERSION);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		printf("  %-28s %s\n", commands[i].usage, commands[i].help);
	printf("\nSettings come from the environment, ./.env and a YAML file (RECONCILER_CONFIG, "
	       "else ./reconciler.yaml):\nsee `reconciler config` and docs/CONFIG.md.\nExit codes: "
	       "0 ok (the index equals MongoDB, but for what the settings leave alone), 1 drift "
	       "found by a dry run (or doctor failed), 2 error, 3 completed but some documents "
	       "could not be repaired, 78 bad configuration.\n");
	return 0;
}

/* Commands that run one mirror: with several, which one is not theirs to
 * guess (and one journal without a mirror column must not mix them). */
static bool
runs_one_mirror(const struct command *cmd)
{
	return cmd->fn == cmd_check || cmd->fn == cmd_resume || cmd->fn == cmd_doctor;
}

int
main(int argc, char **argv)
{
	struct config_set *set = NULL;
	struct config *cfg = NULL;
	const char *file;
	struct rerror err = {0};
	const struct command *cmd = NULL;
	enum log_level level = LOG_INFO;
	int rc;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cmd_help(NULL, 0, NULL);
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("reconciler %s\n", RECONCILER_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			cmd = &commands[i];
	if (cmd == NULL) {
		fprintf(stderr, "reconciler: unknown command %s (try --help)\n", argv[1]);
		return EXIT_ERROR;
	}
	file = config_file_default();
	for (int i = 2; cmd->fn == cmd_config && i + 1 < argc; i++)
		if (strcmp(argv[i], "--file") == 0)
			file = argv[i + 1];
	if (config_set_load(&set, file, ".env", &err)) {
		fprintf(stderr, "reconciler: %s\n", err.message);
		return EXIT_CONFIG;
	}
	if (set->n_mirrors > 1 && runs_one_mirror(cmd)) {
		fprintf(stderr,
		        "reconciler: %s holds %zu mirrors; %s runs one mirror for now (use a "
		        "file with one mirror)\n",
		        set->file, set->n_mirrors, cmd->name);
		config_set_free(set);
		return EXIT_ERROR;
	}
	config_loaded = set;
	cfg = set->n_mirrors == 1 ? set->mirrors[0] : set->global;
	level = (enum log_level)set->global->log_level;
	/* one-shot commands log to stderr; the service and runs also to files */
	log_open(strcmp(cmd->name, "serve") == 0 || strcmp(cmd->name, "check") == 0 ||
	                 strcmp(cmd->name, "resume") == 0
	             ? set->global->log_dir
	             : NULL,
	         strcmp(cmd->name, "doctor") == 0 && level > LOG_WARN ? LOG_WARN : level);
	mongo_global_init();
	opensearch_global_init();
	rc = cmd->fn(cfg, argc - 1, argv + 1);
	mongo_global_cleanup();
	opensearch_global_cleanup();
	log_close();
	config_loaded = NULL;
	config_set_free(set);
	return rc;
}
