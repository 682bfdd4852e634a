/*
 * main.c: the reconciler command line.
 *
 * A table of commands (name, handler, options, operands, usage, help)
 * drives dispatch and --help. The whole command line is parsed with
 * getopt_long (--opt value, --opt=value, `reconciler COMMAND --help`)
 * before the configuration loads: an unknown option, or options that ask
 * for opposite things (--dry-run with --full, --ids or --since; --sample
 * with --full, --ids, --since or --allow-deletes: a sample is a dry run, so
 * --dry-run with it is taken), is 78 before anything runs, whatever their
 * order. Exit codes: 0 in sync or repaired (a sample: its run found no
 * drift); 1 a dry run or a sample found drift, or a doctor check failed; 2 an error (including
 * "another run holds the journal"); 3 the run completed but some documents could not be repaired
 * (journaled failed, or id conflicts), as rsync's 23/24 say "partial"; 4 the run ended held: the
 * brake on deletes kept its orphans (nothing deleted; a person decides: --allow-deletes); 5
 * `resume` did not resume a run: settings that bind a run changed since it began, so it was
 * cancelled and nothing ran (`check` starts a new run); 78 bad
 * configuration (EX_CONFIG; also wrong credentials), a bad command line,
 * bad --ids / --since input, and --allow-deletes without --mirror when
 * there are several mirrors; 128 + the signal (130 for Ctrl-C) when a
 * signal stopped the run, with the `resume` hint.
 *
 * Mirrors: `--mirror NAME` picks one for check, resume, runs, show, doctor
 * and config (an unknown name exits 78 with the names there are). Without
 * it check and doctor go through every mirror in turn, resume continues
 * every mirror's interrupted run, runs and show read every mirror's
 * history. Several mirrors end with the worst of their exit codes: a
 * configuration refused (78) beats an error (2), which beats a run not
 * resumed (5), which beats a held run (4), which beats a partial repair
 * (3), which beats drift a dry run found (1), which beats 0: what failed
 * to run at all matters most, then what waits for a person's decision,
 * then what stays wrong in the index, then what a dry run only saw.
 */
#include "config.h"
#include "docdiff.h"
#include "run.h"
#include "log.h"
#include "mongo.h"
#include "opensearch.h"
#include "probe.h"
#include "report.h"
#include "partition.h"
#include "report_merge.h"
#include "sample.h"
#include "serve.h"
#include "store.h"
#include "stream.h"
#include "transform.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <cjson/cJSON.h>

#define EXIT_DRIFT       1
#define EXIT_ERROR       2
#define EXIT_PARTIAL     3
#define EXIT_HELD        4
#define EXIT_NOT_RESUMED 5
#define EXIT_CONFIG      78

/* What the command line said, all of it parsed (getopt_long) before the
 * configuration loads: a conflict or an unknown option is refused before
 * anything runs. Each command's option table says which members it can
 * set. */
struct args {
	bool dry_run, full, allow_deletes, ndjson, json, markdown, recurring, all;
	bool merge;         /* report --merge */
	int64_t max_spread; /* report --merge --max-spread; -1: not given */
	const char *ids, *since, *mirror, *file, *kind;
	const char *partition; /* check --partition K/N */
	int64_t limit;         /* 0: not given */
	int64_t sample;        /* check --sample N; 0: not given */
	int64_t seed;          /* --seed S; -1: not given */
	char *const *operand;  /* RUN_ID or ID */
	int n_operands;
};

/* What a command gets: every mirror, the one --mirror named (NULL when
 * it was not given), and its arguments. */
struct cli {
	const struct config_set *set;
	const struct config *mirror;
	const struct args *a;
};

struct command {
	const char *name;
	int (*fn)(const struct cli *cli);
	const struct option *options;
	int min_operands, max_operands;
	const char *usage;
	const char *help;
};

static struct engine *signal_engine;
static volatile sig_atomic_t signal_count, signal_number;

static void
on_signal(int sig)
{
	signal_number = sig;
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

/* The exit code of several mirrors: the worst (see the top of the file). */
static int
worst(int a, int b)
{
	static const int order[] = {0,         EXIT_DRIFT,       EXIT_PARTIAL,
	                            EXIT_HELD, EXIT_NOT_RESUMED, EXIT_ERROR};
	int ra = 6, rb = 6; /* anything else (78) is worse still */

	for (int i = 0; i < 6; i++) {
		if (a == order[i])
			ra = i;
		if (b == order[i])
			rb = i;
	}
	return ra >= rb ? a : b;
}

/* The mirrors a command goes through: the one named, else every one. */
static void
mirrors_of(const struct cli *cli, const struct config *const **first, size_t *n)
{
	if (cli->mirror) {
		*first = &cli->mirror;
		*n = 1;
	} else {
		*first = (const struct config *const *)cli->set->mirrors;
		*n = cli->set->n_mirrors;
	}
}

/* "a, b, c": the mirrors' names, for messages. */
static void
mirror_names(const struct config_set *set, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < set->n_mirrors && n < len; i++)
		n += (size_t)snprintf(out + n, len - n, "%s%s", i ? ", " : "",
		                      set->mirrors[i]->name);
}

/* A side's error without the words its line already says: "mongodb:
 * unreachable: X" under "mongodb  UNREACHABLE" is X; "opensearch URL
 * unreachable: X" is "URL: X". */
static const char *
side_detail(char *out, size_t len, const char *side, const char *msg)
{
	size_t n = strlen(side);
	const char *at;

	if (strncmp(msg, side, n) == 0 && (msg[n] == ':' || msg[n] == ' '))
		msg += n + (msg[n] == ':' ? 2 : 1);
	if (strncmp(msg, "unreachable: ", 13) == 0)
		msg += 13;
	if ((at = strstr(msg, " unreachable: ")) != NULL)
		snprintf(out, len, "%.*s: %s", (int)(at - msg), msg, at + 14);
	else
		snprintf(out, len, "%s", msg);
	return out;
}

/* One side's line: reachable (with what the run compares), or why not. */
static void
doctor_side(const struct probe_side *p, const char *side, const char *what)
{
	char detail[sizeof(p->err.message)];
	const char *state = p->auth_failed                   ? "AUTH FAILED"
	                    : !p->reached                    ? "UNREACHABLE"
	                    : p->ok || p->collection_missing ? "reachable"
	                                                     : "ERROR";

	printf("%-11s %-12s ", side, state);
	if (p->version)
		printf("version %s  ", p->version);
	printf("%s\n", p->ok || p->collection_missing
	                   ? what
	                   : side_detail(detail, sizeof(detail), side, p->err.message));
}

static int
doctor_one(const struct config *cfg, bool several)
{
	struct probe p;
	char *masked, what[1024] = "";
	const struct probe_side *bad;
	rcode rc;

	if (several)
		printf("mirror %s\n", cfg->name);
	rc = probe_servers(&p, cfg, PROBE_VERSION | PROBE_COUNT, NULL);
	masked = util_mask_uri(cfg->mongodb_uri);
	if (p.mongodb.collection_missing)
		snprintf(what, sizeof(what),
		         "collection %s does not exist in database %s (a run refuses it: check "
		         "MONGODB_DATABASE and MONGODB_COLLECTION)",
		         cfg->mongodb_collection, cfg->mongodb_database);
	else /* the counts a run compares: under RECONCILE_FILTER, OPENSEARCH_QUERY */
		snprintf(what, sizeof(what), "documents %" PRId64 "%s  (%s %s.%s)", p.mongodb.count,
		         *cfg->filter ? " matching RECONCILE_FILTER" : "", masked ? masked : "",
		         cfg->mongodb_database, cfg->mongodb_collection);
	doctor_side(&p.mongodb, "mongodb", what);
	free(masked);
	masked = util_mask_uri(cfg->opensearch_url);
	if (p.opensearch.index_missing)
		snprintf(what, sizeof(what), "index %s does not exist yet (%s)",
		         cfg->opensearch_index, masked ? masked : "");
	else
		snprintf(
		    what, sizeof(what), "documents %" PRId64 "%s%s  (%s index %s)",
		    p.opensearch.count, *cfg->opensearch_query ? " matching OPENSEARCH_QUERY" : "",
		    *cfg->opensearch_keep_query ? ", not counting those OPENSEARCH_KEEP_QUERY keeps"
		                                : "",
		    masked ? masked : "", cfg->opensearch_index);
	doctor_side(&p.opensearch, "opensearch", what);
	free(masked);
	/* a line for each side that is not ok: one side's trouble never hides
	 * the other's */
	for (int side = 0; side < 2; side++) {
		const char *name = side == 0 ? "mongodb" : "opensearch";
		bad = side == 0 ? &p.mongodb : &p.opensearch;
		if (bad->ok)
			continue;
		fprintf(stderr, "doctor: %s%s%s%s %s: %s\n", several ? "mirror " : "",
		        several ? cfg->name : "", several ? ": " : "", name,
		        bad->auth_failed ? "refuses the credentials"
		        : bad->reached   ? "answers, but"
		                         : "unreachable",
		        side_detail(what, sizeof(what), name, bad->err.message));
	}
	probe_clear(&p);
	return rc ? EXIT_DRIFT : 0;
}

static int
cmd_doctor(const struct cli *cli)
{
	const struct config *const *m;
	size_t n;
	int code = 0;

	mirrors_of(cli, &m, &n);
	for (size_t i = 0; i < n; i++)
		code = worst(code, doctor_one(m[i], cli->set->n_mirrors > 1));
	/* runs of mirrors the configuration no longer defines (QA F2): a
	 * journal that is not there yet has none */
	struct store *s = NULL;
	struct rerror err = {0};
	if (access(cli->set->global->state_db, F_OK) == 0 &&
	    store_open_read(&s, cli->set->global->state_db, &err) == RC_OK &&
	    engine_warn_unknown_runs(s, cli->set) > 0)
		printf("journal     unfinished runs of mirrors the configuration does not define "
		       "(warnings above)\n");
	store_free(s);
	return code;
}

/* The summary line of a run: its counts, what it did, and what the counts
 * do not say (engine_result_note: re-indexed, not verified; orphans not
 * deleted: RECONCILE_ORPHANS=report). */
static void
run_summary(const struct engine_result *r, const char *who)
{
	char newer[96] = ""; /* said only where writes were left to newer copies */
	if (r->skipped_newer > 0)
		snprintf(newer, sizeof(newer), ", skipped_newer %" PRId64, r->skipped_newer);
	if (r->kept > 0) /* and where OPENSEARCH_KEEP_QUERY kept orphans */
		snprintf(newer + strlen(newer), sizeof(newer) - strlen(newer),
		         ", kept by OPENSEARCH_KEEP_QUERY %" PRId64, r->kept);
	char mcount[32] = "not counted"; /* targeted runs skip countDocuments */
	char ocount[32] = "not counted"; /* nor is an index the run never reached */
	if (r->mongo_count >= 0)
		snprintf(mcount, sizeof(mcount), "%" PRId64, r->mongo_count);
	if (r->opensearch_count >= 0)
		snprintf(ocount, sizeof(ocount), "%" PRId64, r->opensearch_count);
	char note[600], reindexed[48] = ""; /* a full re-index's writes, apart */
	engine_result_note(r, note, sizeof(note));
	if (r->full_write)
		snprintf(reindexed, sizeof(reindexed), ", reindexed %" PRId64, r->reindexed);
	printf("%srun %" PRId64 " (%s) %s: mongodb %s, opensearch %s"
	       ", missing %" PRId64 ", orphans %" PRId64 ", stale %" PRId64 ", duplicates %" PRId64
	       ", conflicts %" PRId64 ", skipped %" PRId64 ", repaired %" PRId64
	       "%s, deleted %" PRId64 ", failed %" PRId64 "%s%s%s\n",
	       who, r->run_id, store_run_kind_name(r->kind), store_run_status_name(r->status),
	       mcount, ocount, r->missing, r->orphans, r->stale, r->duplicates, r->conflicts,
	       r->skipped, r->repaired, reindexed, r->deleted, r->failed, newer, *note ? "; " : "",
	       note);
	fflush(stdout);
}

/* One run of one mirror in the foreground; several says to name the
 * mirror on the summary line. */
static int
run_engine(const struct config *cfg, enum run_kind kind, const char *trigger, int64_t resume_id,
           bool several, const struct engine_opts *opts)
{
	struct engine *e = NULL;
	struct engine_result res;
	struct rerror err = {0};
	char who[96] = "";
	rcode rc;

	if (several)
		snprintf(who, sizeof(who), "mirror %s: ", cfg->name);
	if (engine_new(&e, cfg, &err)) {
		fprintf(stderr, "reconciler: %s%s\n", who, err.message);
		return EXIT_ERROR;
	}
	engine_set_progress_output(e, isatty(STDERR_FILENO));
	signal_engine = e;
	install_signals();
	rc = engine_run_opts(e, &res, kind, trigger, resume_id, opts, &err);
	signal_engine = NULL;
	engine_free(e);
	if (rc == RC_ERR_BUSY) {
		fprintf(stderr, "reconciler: %s%s\n", who, err.message);
		return EXIT_ERROR;
	}
	if (signal_number && res.run_id && res.status == RUN_INTERRUPTED) {
		/* a person stopped it: no server error (2), the shell's 128 + signal */
		run_summary(&res, who);
		fprintf(stderr,
		        "reconciler: %srun %" PRId64 " interrupted by %s; `reconciler resume%s%s` "
		        "continues it where it stopped\n",
		        who, res.run_id, signal_number == SIGINT ? "Ctrl-C (SIGINT)" : "SIGTERM",
		        several ? " --mirror " : "", several ? cfg->name : "");
		return 128 + signal_number;
	}
	if (signal_number && res.run_id == 0) /* stopped before a run began */
		return 128 + signal_number;
	if (rc == RC_ERR_CONFIG) { /* e.g. a transform script that does not compile */
		fprintf(stderr, "reconciler: %s%s\n", who, err.message);
		return EXIT_CONFIG;
	}
	if (rc == RC_OK && res.not_resumed) {
		fprintf(stderr, "reconciler: %srun %" PRId64 " %s\n", who, res.run_id, res.why);
		return EXIT_NOT_RESUMED;
	}
	if (res.run_id)
		run_summary(&res, who);
	if (rc) {
		fprintf(stderr, "reconciler: %s%s\n", who,
		        err.message[0] ? err.message : rcode_name(rc));
		return EXIT_ERROR;
	}
	if (res.kind == RUN_DRY_RUN &&
	    res.missing + res.orphans + res.stale + res.duplicates + res.conflicts > 0)
		return EXIT_DRIFT;
	if (res.status == RUN_HELD) {
		fprintf(stderr, "reconciler: %srun %" PRId64 " %s\n", who, res.run_id, res.why);
		return EXIT_HELD;
	}
	if (res.kind != RUN_DRY_RUN && res.failed + res.conflicts > 0) {
		/* "&&" after check must not read as "the index equals MongoDB" */
		fprintf(stderr,
		        "reconciler: %srun %" PRId64 " completed, but %" PRId64
		        " document%s could not be repaired (%" PRId64 " failed, %" PRId64
		        " id conflicts): reconciler show %" PRId64 "\n",
		        who, res.run_id, res.failed + res.conflicts,
		        res.failed + res.conflicts == 1 ? "" : "s", res.failed, res.conflicts,
		        res.run_id);
		return EXIT_PARTIAL;
	}
	return 0;
}

/* Reads the ids of `check --ids FILE|-`: one a line (a trailing "\r" is
 * dropped, as is the newline of the last line), each its canonical text.
 * It stops after ENGINE_IDS_MAX + 1, so engine_opts_check can say there
 * are too many without reading a huge file into memory. */
static int
read_ids(const char *path, struct engine_opts *o)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	ssize_t len;
	int code = 0;

	if (f == NULL) {
		fprintf(stderr, "check: cannot read %s: %s\n", path, strerror(errno));
		return EXIT_CONFIG;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		/* a UTF-8 byte order mark (Notepad's) is no part of the first id */
		if (o->n_ids == 0 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
			memmove(line, line + 3, (size_t)len - 2);
			len -= 3;
		}
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if ((size_t)len != strlen(line)) {
			fprintf(stderr, "check: line %zu of %s holds a NUL character\n",
			        o->n_ids + 1, path);
			code = EXIT_CONFIG;
			break;
		}
		if (o->n_ids == alloc) {
			size_t c = alloc ? alloc * 2 : 64;
			char **v = realloc(o->ids, c * sizeof(*v));
			if (v == NULL) {
				code = EXIT_ERROR;
				break;
			}
			o->ids = v;
			alloc = c;
		}
		if ((o->ids[o->n_ids] = strdup(line)) == NULL) {
			code = EXIT_ERROR;
			break;
		}
		if (++o->n_ids > ENGINE_IDS_MAX)
			break; /* one too many is enough to say so */
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return code;
}

/* --allow-deletes releases one mirror's brake: with several mirrors it
 * must name which (an operator answering one mirror's held run must not
 * release another's, whose hold they never saw). */
static int
release_names_mirror(const struct cli *cli, const char *cmd)
{
	char names[400];

	if (cli->mirror || cli->set->n_mirrors <= 1)
		return 0;
	mirror_names(cli->set, names, sizeof(names));
	fprintf(stderr,
	        "%s: --allow-deletes releases the brake on deletes of one mirror: name it with "
	        "--mirror NAME (mirrors: %s)\n",
	        cmd, names);
	return EXIT_CONFIG;
}

/* A share as a person reads it: 10.2%, 0.31%. */
static void
percent(char *out, size_t len, double share)
{
	snprintf(out, len, share * 100 >= 1 || share == 0 ? "%.1f%%" : "%.2f%%", share * 100);
}

/* The estimate of a sample run, on stdout. */
static void
sample_print(const struct sample_result *r, const char *who)
{
	char rate[16], lo[16], hi[16];

	/* the seed where it is used (QA20 F10): the reservoir over the id
	 * stream and the index's draw; $sample takes none */
	if (strcmp(r->method, "id stream") == 0)
		printf("%srun %" PRId64 " (sample) %s in %.1f s: %" PRId64
		       " MongoDB documents looked up (id stream, seed %" PRIu64
		       ", the index's draw's too)\n",
		       who, r->run.run_id, store_run_status_name(r->run.status), r->seconds,
		       r->mongo_n, r->seed);
	else
		printf("%srun %" PRId64 " (sample) %s in %.1f s: %" PRId64
		       " MongoDB documents looked up (%s, which takes no seed)\n",
		       who, r->run.run_id, store_run_status_name(r->run.status), r->seconds,
		       r->mongo_n, r->method);
	percent(rate, sizeof(rate), r->rate);
	percent(lo, sizeof(lo), r->low);
	percent(hi, sizeof(hi), r->high);
	printf("%sdrift rate %s (%" PRId64 " of %" PRId64 ": missing %" PRId64 ", stale %" PRId64
	       "), 95%% interval %s to %s (Wilson score)\n",
	       who, rate, r->missing + r->stale, r->mongo_n, r->missing, r->stale, lo, hi);
	if (r->orphans_estimated) {
		percent(rate, sizeof(rate), r->orphan_rate);
		percent(lo, sizeof(lo), r->orphan_low);
		percent(hi, sizeof(hi), r->orphan_high);
		char seed[64] = ""; /* else said above */
		if (strcmp(r->method, "id stream"))
			snprintf(seed, sizeof(seed), "; the index's draw's seed %" PRIu64, r->seed);
		printf("%sorphan rate %s (%" PRId64 " of %" PRId64
		       " index copies), 95%% interval %s to %s (Wilson score)%s\n",
		       who, rate, r->orphans, r->index_n, lo, hi, seed);
	}
	if (*r->note)
		printf("%snote: %s\n", who, r->note);
	fflush(stdout);
}

/* `check --sample N` of one mirror: an estimate, a dry run of its own
 * kind. Exit codes as a dry run's: 1 when the run found drift (any id of
 * either sample), 0 when none. */
static int
sample_one(const struct config *cfg, const struct args *a, uint64_t seed, bool several)
{
	struct engine *e = NULL;
	struct sample_result res;
	struct rerror err = {0};
	struct sample_opts o = {.n = a->sample, .seed = seed, .stop = &signal_count};
	char who[96] = "";
	rcode rc;

	if (several)
		snprintf(who, sizeof(who), "mirror %s: ", cfg->name);
	if (engine_new(&e, cfg, &err)) {
		fprintf(stderr, "reconciler: %s%s\n", who, err.message);
		return EXIT_ERROR;
	}
	engine_set_progress_output(e, isatty(STDERR_FILENO));
	signal_engine = e;
	install_signals();
	rc = sample_run(&res, e, cfg, &o, &err);
	signal_engine = NULL;
	engine_free(e);
	if (signal_number) {
		fprintf(stderr, "reconciler: %ssample stopped by %s: nothing to resume\n", who,
		        signal_number == SIGINT ? "Ctrl-C (SIGINT)" : "SIGTERM");
		return 128 + signal_number;
	}
	if (rc == RC_ERR_INVALID && res.run.run_id == 0) { /* nothing to sample */
		printf("%s%s\n", who, err.message);
		return 0;
	}
	if (rc) {
		if (res.run.run_id)
			fprintf(stderr, "reconciler: %srun %" PRId64 " (sample) %s\n", who,
			        res.run.run_id, store_run_status_name(res.run.status));
		fprintf(stderr, "reconciler: %s%s\n", who,
		        err.message[0] ? err.message : rcode_name(rc));
		return rc == RC_ERR_CONFIG ? EXIT_CONFIG : EXIT_ERROR;
	}
	if (res.run.status != RUN_COMPLETED) { /* no estimate without every lookup */
		fprintf(stderr, "reconciler: %srun %" PRId64 " (sample) %s: no estimate\n", who,
		        res.run.run_id, store_run_status_name(res.run.status));
		return EXIT_ERROR;
	}
	sample_print(&res, who);
	return res.run.missing + res.run.orphans + res.run.stale + res.run.duplicates +
	                   res.run.conflicts >
	               0
	           ? EXIT_DRIFT
	           : 0;
}

/* `check --sample N [--seed S]`: each mirror in turn, one seed for all
 * (said on each line, so a draw can be made again). */
static int
cmd_sample(const struct cli *cli)
{
	const struct config *const *m;
	size_t n;
	int code = 0;
	/* below 2^31: the journal and JSON keep it exactly */
	uint64_t seed = cli->a->seed >= 0
	                    ? (uint64_t)cli->a->seed
	                    : ((uint64_t)util_now_ms() ^ ((uint64_t)getpid() << 16)) % INT32_MAX;

	mirrors_of(cli, &m, &n);
	for (size_t i = 0; i < n && signal_count == 0; i++)
		code = worst(code, sample_one(m[i], cli->a, seed, cli->set->n_mirrors > 1));
	return code;
}

static int
cmd_check(const struct cli *cli)
{
	enum run_kind kind = cli->a->dry_run ? RUN_DRY_RUN : cli->a->full ? RUN_FULL : RUN_CHECK;
	const struct config *const *m;
	struct engine_opts opts = {.allow_deletes = cli->a->allow_deletes};
	const char *ids = cli->a->ids, *since = cli->a->since;
	size_t n;
	int code = 0;

	if (cli->a->sample)
		return cmd_sample(cli);
	if (cli->a->partition) {
		struct rerror err = {0};
		if (partition_parse(&opts.partition_k, &opts.partition_n, cli->a->partition,
		                    &err)) {
			fprintf(stderr, "check: %s\n", err.message);
			return EXIT_CONFIG;
		}
	}
	if (opts.allow_deletes && (code = release_names_mirror(cli, "check")) != 0)
		return code;
	if (ids || since) /* args_conflict refused them with --dry-run or --full */
		kind = RUN_IDS;
	if (since) {
		opts.since = true;
		if (util_iso_to_ms(since, &opts.since_ms)) {
			fprintf(stderr,
			        "check: --since %s is not an ISO 8601 time (e.g. "
			        "2026-11-29T10:00:00Z)\n",
			        since);
			return EXIT_CONFIG;
		}
	}
	if (ids && (code = read_ids(ids, &opts)) != 0) {
		engine_opts_release(&opts);
		return code;
	}
	mirrors_of(cli, &m, &n);
	for (size_t i = 0; kind == RUN_IDS && i < n; i++) {
		struct rerror err = {0};
		if (engine_opts_check(m[i], &opts, &err)) {
			fprintf(stderr, "check: %s\n", err.message);
			engine_opts_release(&opts);
			return EXIT_CONFIG;
		}
	}
	if (kind == RUN_IDS && opts.since)
		fprintf(stderr,
		        "check: --since finds missing and stale documents changed since %s; "
		        "orphans (deleted in MongoDB) need a full check\n",
		        since);
	/* in turn: one mirror's run never competes with another's for the servers */
	for (size_t i = 0; i < n && signal_count == 0; i++)
		code =
		    worst(code, run_engine(m[i], kind, "cli", 0, cli->set->n_mirrors > 1, &opts));
	engine_opts_release(&opts);
	return code;
}

static int
with_store(const struct cli *cli, struct store **s)
{
	struct rerror err = {0};

	if (store_open(s, cli->set->global->state_db, &err)) {
		fprintf(stderr, "reconciler: %s\n", err.message);
		return EXIT_ERROR;
	}
	return 0;
}

/* runs and show only read: they work on a journal written by a newer
 * reconciler or one this user may not write, and never create one. */
static int
read_store(const struct cli *cli, struct store **s, bool *none)
{
	struct rerror err = {0};
	rcode rc = store_open_read(s, cli->set->global->state_db, &err);

	*none = rc == RC_ERR_NOTFOUND;
	if (rc && !*none)
		fprintf(stderr, "reconciler: %s\n", err.message);
	return rc ? EXIT_ERROR : 0;
}

/* RUN_ID of show and resume: a number from 1. */
static int
run_id_operand(const char *text, int64_t *id)
{
	if (util_parse_i64(text, id) || *id <= 0) {
		fprintf(stderr,
		        "reconciler: %s is not a run's id (a number from 1: reconciler runs)\n",
		        text);
		return EXIT_CONFIG;
	}
	return 0;
}

/* `resume RUN_ID`: that run, with its own mirror's settings. Frees s
 * before the run (the engine opens the journal itself). */
static int
resume_run(const struct cli *cli, struct store *s, int64_t id, const struct engine_opts *opts)
{
	struct store_run *run = NULL;
	const struct config *cfg;
	char names[400];
	int code = EXIT_ERROR;
	rcode rc = store_run_get(s, &run, id);

	store_free(s);
	if (rc == RC_ERR_NOTFOUND) {
		fprintf(stderr, "resume: no run %" PRId64 "\n", id);
		goto out;
	}
	if (rc) {
		fprintf(stderr, "resume: cannot read the journal\n");
		goto out;
	}
	if (cli->mirror && strcmp(cli->mirror->name, run->mirror) != 0) {
		fprintf(stderr, "resume: run %" PRId64 " belongs to mirror %s, not %s\n", id,
		        run->mirror, cli->mirror->name);
		goto out;
	}
	cfg = config_set_find(cli->set, run->mirror);
	if (cfg == NULL) {
		mirror_names(cli->set, names, sizeof(names));
		fprintf(stderr,
		        "resume: run %" PRId64 " belongs to mirror %s, which the configuration "
		        "does not have (mirrors: %s)\n",
		        id, run->mirror, names);
		code = EXIT_CONFIG;
		goto out;
	}
	store_run_free(run);
	run = NULL;
	code = run_engine(cfg, RUN_CHECK, "resume", id, cli->set->n_mirrors > 1, opts);
out:
	store_run_free(run);
	return code;
}

/* `resume`: the unfinished run of each mirror (of --mirror's), whatever
 * another's ended with. Frees s before the runs. */
static int
resume_all(const struct cli *cli, struct store *s, const struct engine_opts *opts)
{
	const struct config *const *m;
	int64_t *unfinished = NULL;
	size_t n, found = 0;
	int code = 0;

	if (cli->mirror == NULL) /* runs no mirror of this configuration resumes */
		(void)engine_warn_unknown_runs(s, cli->set);
	mirrors_of(cli, &m, &n);
	unfinished = calloc(n, sizeof(*unfinished));
	for (size_t i = 0; unfinished && i < n; i++) {
		if (store_run_unfinished(s, &unfinished[i], m[i]->name)) {
			fprintf(stderr, "resume: cannot read the journal\n");
			code = EXIT_ERROR;
			break;
		}
		found += unfinished[i] > 0;
	}
	store_free(s);
	if (unfinished == NULL) {
		fprintf(stderr, "resume: out of memory\n");
		code = EXIT_ERROR;
		goto out;
	}
	if (code)
		goto out;
	if (found == 0)
		printf("no interrupted run to resume\n");
	for (size_t i = 0; i < n && signal_count == 0; i++)
		if (unfinished[i] > 0)
			code = worst(code, run_engine(m[i], RUN_CHECK, "resume", unfinished[i],
			                              cli->set->n_mirrors > 1, opts));
out:
	free(unfinished);
	return code;
}

static int
cmd_resume(const struct cli *cli)
{
	struct store *s = NULL;
	int64_t id = 0;
	int code = 0;
	/* --allow-deletes: a resume re-arms the brake of a released run */
	struct engine_opts opts = {.allow_deletes = cli->a->allow_deletes};

	if (cli->a->n_operands && (code = run_id_operand(cli->a->operand[0], &id)) != 0)
		return code;
	/* a RUN_ID names its mirror: the release is that run's */
	if (opts.allow_deletes && id == 0 && (code = release_names_mirror(cli, "resume")) != 0)
		return code;
	opts.resume_only = true;
	if (with_store(cli, &s))
		return EXIT_ERROR;
	return id > 0 ? resume_run(cli, s, id, &opts) : resume_all(cli, s, &opts);
}

/* A count of the journal, or "-" where it was not taken (NULL). */
static void
count_text(char *out, size_t len, const cJSON *v)
{
	if (cJSON_IsNumber(v))
		snprintf(out, len, "%.0f", v->valuedouble);
	else
		snprintf(out, len, "-");
}

static int
cmd_runs(const struct cli *cli)
{
	struct store *s;
	cJSON *runs = NULL, *r;
	int64_t limit = cli->a->limit ? cli->a->limit : 20;
	bool none;

	if (read_store(cli, &s, &none)) {
		if (!none)
			return EXIT_ERROR;
		printf("no runs yet: there is no journal at %s\n", cli->set->global->state_db);
		return 0;
	}
	if (report_runs(s, &runs, cli->mirror ? cli->mirror->name : NULL, limit, 0, NULL)) {
		store_free(s);
		fprintf(stderr, "runs: cannot read the journal\n");
		return EXIT_ERROR;
	}
	printf("%-6s %-16s %-8s %-13s %-11s %-24s %9s %9s %8s %8s %8s %8s %8s %s\n", "id", "mirror",
	       "kind", "trigger", "status", "started", "mongodb", "index", "missing", "orphans",
	       "stale", "repaired", "failed", "partition");
	cJSON_ArrayForEach(r, runs)
	{
		char mc[24], oc[24], part[64] = "-";
		const cJSON *k = cJSON_GetObjectItem(r, "partitionK"),
		            *n = cJSON_GetObjectItem(r, "partitionN"),
		            *of = cJSON_GetObjectItem(r, "splitOf");
		count_text(mc, sizeof(mc), cJSON_GetObjectItem(r, "mongoCount"));
		count_text(oc, sizeof(oc), cJSON_GetObjectItem(r, "opensearchCount"));
		/* a partition's place, and the split run it is of (QA25 F9) */
		if (cJSON_IsNumber(k) && cJSON_IsNumber(n) && cJSON_IsNumber(of))
			snprintf(part, sizeof(part), "%d/%d of split %.0f", k->valueint,
			         n->valueint, of->valuedouble);
		else if (cJSON_IsNumber(k) && cJSON_IsNumber(n))
			snprintf(part, sizeof(part), "%d/%d", k->valueint, n->valueint);
		printf("%-6d %-16s %-8s %-13s %-11s %-24s %9s %9s %8.0f %8.0f %8.0f %8.0f "
		       "%8.0f %s\n",
		       cJSON_GetObjectItem(r, "id")->valueint,
		       cJSON_GetStringValue(cJSON_GetObjectItem(r, "mirror")),
		       cJSON_GetStringValue(cJSON_GetObjectItem(r, "kind")),
		       cJSON_GetStringValue(cJSON_GetObjectItem(r, "trigger")),
		       cJSON_GetStringValue(cJSON_GetObjectItem(r, "status")),
		       cJSON_GetStringValue(cJSON_GetObjectItem(r, "startedAt")), mc, oc,
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "missingCount")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "orphanCount")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "staleCount")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "repairedCount")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "failedCount")), part);
	}
	cJSON_Delete(runs);
	store_free(s);
	return 0;
}

/* Every drift row of a run, one JSON object a line (the keys of GET
 * .../runs/{id}/ids), read page by page so memory stays bounded. */
static rcode
print_ndjson(struct store *s, int64_t id)
{
	cJSON *rows = NULL, *last = NULL, *r;
	rcode rc = RC_OK;
	int count;

	do {
		struct store_drift after = {0};
		if (last) {
			after.doc_id = cJSON_GetStringValue(cJSON_GetObjectItem(last, "id"));
			after.id_type = cJSON_GetStringValue(cJSON_GetObjectItem(last, "idType"));
			after.os_index = cJSON_GetStringValue(cJSON_GetObjectItem(last, "index"));
			after.os_id = cJSON_GetStringValue(cJSON_GetObjectItem(last, "copyId"));
			after.routing = cJSON_GetStringValue(cJSON_GetObjectItem(last, "routing"));
			if (store_drift_kind_parse(
			        cJSON_GetStringValue(cJSON_GetObjectItem(last, "kind")),
			        &after.kind))
				rc = RC_ERR_STORE;
		}
		if (rc == RC_OK)
			rc = report_ids_page(s, &rows, id, NULL, last ? &after : NULL, 1000);
		if (rc)
			break;
		cJSON_ArrayForEach(r, rows)
		{
			char *line = cJSON_PrintUnformatted(r);
			if (line == NULL) {
				rc = RC_ERR_NOMEM;
				break;
			}
			puts(line);
			free(line);
		}
		count = cJSON_GetArraySize(rows);
		if (count > 0) {
			cJSON_Delete(last);
			last = cJSON_DetachItemFromArray(rows, count - 1);
		}
		cJSON_Delete(rows);
		rows = NULL;
	} while (rc == RC_OK && count == 1000);
	cJSON_Delete(last);
	return rc;
}

static int
cmd_show(const struct cli *cli)
{
	struct store *s;
	cJSON *report = NULL;
	int64_t id;
	bool none, ndjson = cli->a->ndjson;
	rcode rc;
	int code = run_id_operand(cli->a->operand[0], &id);

	if (code)
		return code;
	if (read_store(cli, &s, &none)) {
		if (none)
			fprintf(stderr, "show: no run %" PRId64 " (there is no journal at %s)\n",
			        id, cli->set->global->state_db);
		return EXIT_ERROR;
	}
	rc = report_run(s, &report, id);
	const char *owner = rc ? NULL : cJSON_GetStringValue(cJSON_GetObjectItem(report, "mirror"));
	if (rc == RC_ERR_NOTFOUND)
		fprintf(stderr, "show: no run %" PRId64 "\n", id);
	else if (rc)
		fprintf(stderr, "show: cannot read the journal\n");
	else if (cli->mirror && strcmp(owner ? owner : "", cli->mirror->name) != 0) {
		fprintf(stderr, "show: no run %" PRId64 " in mirror %s (it is mirror %s's)\n", id,
		        cli->mirror->name, owner ? owner : "?");
		rc = RC_ERR_NOTFOUND;
	} else if (ndjson || !cli->a->json) {
		/* a person's report, or every drift row: both read the journal again */
		rc = ndjson ? print_ndjson(s, id) : report_run_text(s, stdout, id);
		if (rc)
			fprintf(stderr, "show: cannot read the journal\n");
	} else
		print_json(report);
	cJSON_Delete(report);
	store_free(s);
	return rc ? EXIT_ERROR : 0;
}

/* `report --merge JOURNAL...`: a split run's journals, read only. */
static int
cmd_report(const struct cli *cli)
{
	struct rerror err = {0};
	cJSON *m = NULL;
	bool complete = false;
	rcode rc;

	if (!cli->a->merge) {
		fprintf(stderr,
		        "report: give --merge JOURNAL... (the journals of one split run)\n");
		return EXIT_CONFIG;
	}
	rc = report_merge(&m, &complete, (const char *const *)cli->a->operand,
	                  (size_t)cli->a->n_operands,
	                  cli->a->max_spread >= 0 ? cli->a->max_spread : REPORT_MERGE_MAX_SPREAD,
	                  cli->a->mirror, &err);
	if (rc == RC_OK && cli->a->ndjson)
		rc = report_merge_ndjson(stdout, m, &err);
	else if (rc == RC_OK && cli->a->json)
		print_json(m);
	else if (rc == RC_OK && report_merge_text(stdout, m))
		rc = rerror_set(&err, RC_ERR_INTERNAL, "cannot write the report");
	if (rc == RC_OK && !complete && (cli->a->json || cli->a->ndjson)) {
		cJSON *p;
		cJSON_ArrayForEach(p, cJSON_GetObjectItem(m, "problems"))
		    fprintf(stderr, "report: %s\n", cJSON_GetStringValue(p));
	}
	cJSON_Delete(m);
	if (rc) {
		fprintf(stderr, "report: %s\n", err.message[0] ? err.message : rcode_name(rc));
		return EXIT_ERROR;
	}
	return complete ? 0 : EXIT_DRIFT;
}

/* One document's diff: exit 0 in sync (or left out of the index on
 * purpose, with no copy), 1 when it differs, 2 on an error or an id
 * neither side has, 78 when the transform does not load. */
static int
cmd_diff(const struct cli *cli)
{
	const struct config *cfg = cli->mirror;
	struct buf out = {0};
	struct rerror err = {0};
	enum docdiff_state state = DOCDIFF_IN_SYNC;
	char names[400];
	rcode rc;

	if (cfg == NULL && cli->set->n_mirrors == 1)
		cfg = cli->set->mirrors[0];
	if (cfg == NULL) {
		mirror_names(cli->set, names, sizeof(names));
		fprintf(stderr, "diff: name the mirror with --mirror NAME (one of: %s)\n", names);
		return EXIT_CONFIG;
	}
	rc = docdiff_json(&out, &state, cfg, cli->a->operand[0], &err);
	if (rc) {
		util_mask_secrets(err.message, sizeof(err.message));
		fprintf(stderr, "diff: %s\n", err.message);
		return rc == RC_ERR_CONFIG ? EXIT_CONFIG : EXIT_ERROR;
	}
	/* as it is, not through cJSON: numbers past a double's precision stay */
	puts(out.data);
	buf_free(&out);
	return state == DOCDIFF_IN_SYNC || state == DOCDIFF_EXCLUDED || state == DOCDIFF_KEPT
	           ? 0
	           : EXIT_DRIFT;
}

/* "-" for a JSON null, else the number or the text. */
static void
cell(char *out, size_t len, const cJSON *v)
{
	if (cJSON_IsNumber(v))
		snprintf(out, len, "%.0f", v->valuedouble);
	else if (cJSON_IsString(v))
		snprintf(out, len, "%s", v->valuestring);
	else if (cJSON_IsBool(v))
		snprintf(out, len, "%s", cJSON_IsTrue(v) ? "yes" : "no");
	else
		snprintf(out, len, "-");
}

static int
cmd_drift(const struct cli *cli)
{
	static const char *const cols[] = {"mirror",  "kind",      "id",     "firstRun",
	                                   "lastRun", "timesSeen", "streak", "repairedRun",
	                                   "returns", "recurring", "open",   "lastStatus"};
	static const int widths[] = {-16, -9, -26, 6, 6, 5, 6, 8, 7, -9, -4, -9};
	enum drift_history_state state = cli->a->recurring ? DRIFT_HISTORY_RECURRING
	                                 : cli->a->all     ? DRIFT_HISTORY_ALL
	                                                   : DRIFT_HISTORY_OPEN;
	const enum drift_kind *kind = NULL;
	int64_t limit = cli->a->limit ? cli->a->limit : INT64_MAX, shown = 0;
	bool ndjson = cli->a->ndjson, none;
	char *after = NULL;
	struct store *s;
	cJSON *rows = NULL, *r;
	enum drift_kind dk;
	rcode rc = RC_OK;

	if (cli->a->kind) {
		if (store_drift_kind_parse(cli->a->kind, &dk)) {
			fprintf(stderr,
			        "drift: --kind %s: one of missing, stale, orphan, duplicate, "
			        "conflict\n",
			        cli->a->kind);
			return EXIT_CONFIG;
		}
		kind = &dk;
	}
	if (read_store(cli, &s, &none)) {
		if (!none)
			return EXIT_ERROR;
		printf("no drift yet: there is no journal at %s\n", cli->set->global->state_db);
		return 0;
	}
	for (size_t c = 0; !ndjson && c < sizeof(cols) / sizeof(cols[0]); c++)
		printf("%*s%s", widths[c], cols[c],
		       c + 1 < sizeof(cols) / sizeof(cols[0]) ? " " : "\n");
	/* page by page: the history of a large drift never sits in memory at once */
	do {
		int64_t page = limit - shown < 1000 ? limit - shown : 1000;
		rc = report_drift(s, &rows, cli->mirror ? cli->mirror->name : NULL, state, kind,
		                  after, page);
		if (rc)
			break;
		cJSON_ArrayForEach(r, rows)
		{
			if (ndjson) {
				char *line = cJSON_PrintUnformatted(r);
				if (line)
					puts(line);
				free(line);
				continue;
			}
			for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++) {
				char v[512];
				cell(v, sizeof(v), cJSON_GetObjectItem(r, cols[c]));
				printf("%*s%s", widths[c], v,
				       c + 1 < sizeof(cols) / sizeof(cols[0]) ? " " : "\n");
			}
		}
		shown += cJSON_GetArraySize(rows);
		free(after);
		after = NULL;
		r = cJSON_GetArrayItem(rows, cJSON_GetArraySize(rows) - 1);
		if (cJSON_GetArraySize(rows) >= page && r && shown < limit)
			after = strdup(cJSON_GetStringValue(cJSON_GetObjectItem(r, "id")));
		cJSON_Delete(rows);
		rows = NULL;
	} while (after);
	store_free(s);
	if (rc) {
		fprintf(stderr, "drift: cannot read the journal\n");
		return EXIT_ERROR;
	}
	return 0;
}

static int
cmd_mirrors(const struct cli *cli)
{
	const struct config_set *set = cli->set;
	struct store *s;
	cJSON *list = NULL, *item;
	bool json = cli->a->json;
	rcode rc = RC_OK;

	if (with_store(cli, &s))
		return EXIT_ERROR;
	list = cJSON_CreateArray();
	for (size_t i = 0; list && rc == RC_OK && i < set->n_mirrors; i++) {
		const struct config *m = set->mirrors[i];
		cJSON *runs = NULL;
		rc = report_last_run(s, &runs, m->name);
		if (rc)
			break;
		item = cJSON_CreateObject();
		cJSON_AddStringToObject(item, "name", m->name);
		cJSON_AddStringToObject(item, "mongodbDatabase", m->mongodb_database);
		cJSON_AddStringToObject(item, "mongodbCollection", m->mongodb_collection);
		cJSON_AddStringToObject(item, "opensearchIndex", m->opensearch_index);
		if (cJSON_GetArraySize(runs) > 0)
			cJSON_AddItemToObject(item, "lastRun", cJSON_DetachItemFromArray(runs, 0));
		else
			cJSON_AddNullToObject(item, "lastRun");
		cJSON_Delete(runs);
		cJSON_AddItemToArray(list, item);
	}
	store_free(s);
	if (list == NULL || rc) {
		cJSON_Delete(list);
		fprintf(stderr, "mirrors: cannot read the journal\n");
		return EXIT_ERROR;
	}
	if (json) {
		print_json(list);
		cJSON_Delete(list);
		return 0;
	}
	printf("%-20s %-32s %-24s %-6s %-11s %-24s %8s %8s %8s %8s %8s\n", "mirror", "collection",
	       "index", "run", "status", "started", "missing", "orphans", "stale", "repaired",
	       "failed");
	cJSON_ArrayForEach(item, list)
	{
		cJSON *r = cJSON_GetObjectItem(item, "lastRun");
		char coll[300];
		snprintf(coll, sizeof(coll), "%s.%s",
		         cJSON_GetStringValue(cJSON_GetObjectItem(item, "mongodbDatabase")),
		         cJSON_GetStringValue(cJSON_GetObjectItem(item, "mongodbCollection")));
		printf("%-20s %-32s %-24s ",
		       cJSON_GetStringValue(cJSON_GetObjectItem(item, "name")), coll,
		       cJSON_GetStringValue(cJSON_GetObjectItem(item, "opensearchIndex")));
		if (!cJSON_IsObject(r)) {
			printf("%-6s (no run yet)\n", "-");
			continue;
		}
		printf("%-6d %-11s %-24s %8.0f %8.0f %8.0f %8.0f %8.0f\n",
		       cJSON_GetObjectItem(r, "id")->valueint,
		       cJSON_GetStringValue(cJSON_GetObjectItem(r, "status")),
		       cJSON_GetStringValue(cJSON_GetObjectItem(r, "startedAt")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "missingCount")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "orphanCount")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "staleCount")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "repairedCount")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(r, "failedCount")));
	}
	cJSON_Delete(list);
	return 0;
}

static int
cmd_migrate(const struct cli *cli)
{
	struct store *s;

	if (with_store(cli, &s))
		return EXIT_ERROR;
	store_free(s); /* opening applies what is pending */
	printf("journal %s is up to date\n", cli->set->global->state_db);
	return 0;
}

/* What a run checks before it begins, checked without one: each mirror's
 * transform settings and script (compiled and its top level run, as a run
 * does). 0, or EXIT_CONFIG with the reason on stderr. */
static int
check_transforms(const struct config_set *set, const struct config *only)
{
	for (size_t i = 0; i < set->n_mirrors; i++) {
		const struct config *c = set->mirrors[i];
		struct transform *tf = NULL;
		struct rerror err = {0};
		if (only && c != only)
			continue;
		rcode rc = transform_new(&tf, c, &err);
		transform_free(tf);
		if (rc) {
			/* where the setting came from, and where a relative path
			 * is read from (the working directory, not the file's) */
			char cwd[PATH_MAX], where[PATH_MAX + 64] = "";
			if (*c->transform && c->transform[0] != '/' && getcwd(cwd, sizeof(cwd)))
				snprintf(where, sizeof(where),
				         " (a relative path is read from the working directory %s)",
				         cwd);
			/* the script's own errors name the script; say the key too */
			const char *key =
			    *c->transform && strstr(err.message, c->transform) &&
			            strncmp(err.message, "RECONCILE_", 10) != 0
			        ? (set->file ? "reconcile_transform: " : "RECONCILE_TRANSFORM: ")
			        : "";
			fprintf(stderr, "reconciler: %s%s%s%s%s%s%s%s\n",
			        set->file ? set->file : "", set->file ? ": " : "",
			        set->n_mirrors > 1 ? "mirror " : "",
			        set->n_mirrors > 1 ? c->name : "", set->n_mirrors > 1 ? ": " : "",
			        key, err.message, where);
			return rc == RC_ERR_CONFIG ? EXIT_CONFIG : EXIT_ERROR;
		}
	}
	return 0;
}

static int
cmd_config(const struct cli *cli)
{
	const struct config_set *set = cli->set;
	const struct config *one = cli->mirror ? cli->mirror : set->mirrors[0];
	bool json = cli->a->json, markdown = cli->a->markdown;
	struct buf b = {0};
	rcode rc;

	if (!markdown) {
		int code = check_transforms(set, cli->mirror);
		if (code)
			return code;
	}
	if (markdown)
		rc = config_dump_markdown(&b);
	else if (set->file && !cli->mirror) /* every mirror, in the file's shape */
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
cmd_serve(const struct cli *cli)
{
	int code = check_transforms(cli->set, NULL);
	return code ? code : serve_main(cli->set);
}

/* `sync`: the stop flag the signal handler sets; the mirrors' threads
 * commit what OpenSearch acknowledged and end. */
static volatile int sync_stop;

static void
on_sync_signal(int sig)
{
	signal_number = sig;
	if (++signal_count > 1)
		_exit(128 + sig); /* a second signal: at once; the journal is transactional */
	sync_stop = 1;
}

/* Live sync in the foreground (docs/LIVE-SYNC.md): the named mirror, else
 * every mirror, until SIGINT or SIGTERM (exit 0: every acknowledged batch
 * journaled). 78: a setting (no change streams on the server, a transform
 * that does not compile); 2: the journal failed. */
static int
cmd_sync(const struct cli *cli)
{
	const struct config *const *m;
	struct rerror err = {0};
	struct sigaction sa;
	size_t n;
	int code = check_transforms(cli->set, cli->mirror);

	if (code)
		return code;
	mirrors_of(cli, &m, &n);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sync_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rcode rc = stream_sync(m, n, &sync_stop, &err);
	if (rc) {
		fprintf(stderr, "reconciler: %s\n", err.message[0] ? err.message : rcode_name(rc));
		return rc == RC_ERR_CONFIG ? EXIT_CONFIG : EXIT_ERROR;
	}
	fprintf(stderr,
	        "reconciler: sync stopped%s; every batch OpenSearch acknowledged is journaled\n",
	        signal_number == SIGINT ? " by Ctrl-C (SIGINT)"
	        : signal_number         ? " by SIGTERM"
	                                : "");
	return 0;
}

static int cmd_help(const struct cli *cli);

/* getopt_long's codes of the long options (past any character). */
enum opt {
	OPT_DRY_RUN = 256,
	OPT_FULL,
	OPT_IDS,
	OPT_SINCE,
	OPT_ALLOW_DELETES,
	OPT_MIRROR,
	OPT_LIMIT,
	OPT_NDJSON,
	OPT_JSON,
	OPT_MARKDOWN,
	OPT_FILE,
	OPT_RECURRING,
	OPT_ALL,
	OPT_KIND,
	OPT_SAMPLE,
	OPT_SEED,
	OPT_PARTITION,
	OPT_MERGE,
	OPT_MAX_SPREAD,
};

#define O_MIRROR                                                                                   \
	{                                                                                          \
		"mirror", required_argument, NULL, OPT_MIRROR                                      \
	}
#define O_HELP                                                                                     \
	{                                                                                          \
		"help", no_argument, NULL, 'h'                                                     \
	}
#define O_END                                                                                      \
	{                                                                                          \
		NULL, 0, NULL, 0                                                                   \
	}

static const struct option o_none[] = {O_HELP, O_END};
static const struct option o_mirror[] = {O_MIRROR, O_HELP, O_END};
static const struct option o_check[] = {{"dry-run", no_argument, NULL, OPT_DRY_RUN},
                                        {"full", no_argument, NULL, OPT_FULL},
                                        {"ids", required_argument, NULL, OPT_IDS},
                                        {"since", required_argument, NULL, OPT_SINCE},
                                        {"allow-deletes", no_argument, NULL, OPT_ALLOW_DELETES},
                                        {"sample", required_argument, NULL, OPT_SAMPLE},
                                        {"seed", required_argument, NULL, OPT_SEED},
                                        {"partition", required_argument, NULL, OPT_PARTITION},
                                        O_MIRROR,
                                        O_HELP,
                                        O_END};
static const struct option o_resume[] = {
    {"allow-deletes", no_argument, NULL, OPT_ALLOW_DELETES}, O_MIRROR, O_HELP, O_END};
static const struct option o_runs[] = {
    {"limit", required_argument, NULL, OPT_LIMIT}, O_MIRROR, O_HELP, O_END};
static const struct option o_show[] = {{"ndjson", no_argument, NULL, OPT_NDJSON},
                                       {"json", no_argument, NULL, OPT_JSON},
                                       O_MIRROR,
                                       O_HELP,
                                       O_END};
static const struct option o_report[] = {{"merge", no_argument, NULL, OPT_MERGE},
                                         {"max-spread", required_argument, NULL, OPT_MAX_SPREAD},
                                         O_MIRROR,
                                         {"ndjson", no_argument, NULL, OPT_NDJSON},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         O_HELP,
                                         O_END};
static const struct option o_drift[] = {{"recurring", no_argument, NULL, OPT_RECURRING},
                                        {"all", no_argument, NULL, OPT_ALL},
                                        {"kind", required_argument, NULL, OPT_KIND},
                                        {"limit", required_argument, NULL, OPT_LIMIT},
                                        {"ndjson", no_argument, NULL, OPT_NDJSON},
                                        O_MIRROR,
                                        O_HELP,
                                        O_END};
static const struct option o_mirrors[] = {{"json", no_argument, NULL, OPT_JSON}, O_HELP, O_END};
static const struct option o_config[] = {{"file", required_argument, NULL, OPT_FILE},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"markdown", no_argument, NULL, OPT_MARKDOWN},
                                         O_MIRROR,
                                         O_HELP,
                                         O_END};

static const struct command commands[] = {
    {"serve", cmd_serve, o_none, 0, 0, "serve",
     "run the service: HTTP API, each mirror's schedule, resume on start"},
    {"check", cmd_check, o_check, 0, 0,
     "check [--dry-run | --full | --ids FILE|- | --since TIME | --sample N [--seed S]] "
     "[--partition K/N] [--allow-deletes] [--mirror NAME]",
     "runs in the foreground, one mirror after the other: detect and repair (--dry-run: "
     "detect only, never writes; --full: re-index everything; --ids: just the ids in FILE, "
     "one a line, or - for stdin; --since: documents whose version field is newer than "
     "TIME, ISO 8601 (orphans need a full check); --sample N: an estimate of the drift "
     "rate from N (1 to 5000) random documents and N random index copies looked up on "
     "both sides, with a 95% Wilson score interval, a dry run of kind sample (--seed S: "
     "the same draw again); one of them at most; --partition K/N: only key range K "
     "(0-based) of N of a check or dry run, journaled as such, for a split run over N "
     "processes (reconciler report --merge); --allow-deletes: release the brake on "
     "orphan deletes for this run). Exit 0 in sync or repaired (a sample: none of its "
     "documents drifted), 1 drift (dry run, sample), 2 error, 3 some documents not "
     "repaired, 4 held (the brake kept the orphan deletes), 78 bad configuration or input, "
     "130 interrupted"},
    {"resume", cmd_resume, o_resume, 0, 1, "resume [RUN_ID] [--allow-deletes] [--mirror NAME]",
     "continue interrupted runs (each mirror's, or that one) with the settings they began "
     "with (changed: cancelled, exit 5); the brake on deletes is re-armed, --allow-deletes "
     "releases it again (several mirrors: with --mirror or RUN_ID)"},
    {"runs", cmd_runs, o_runs, 0, 0, "runs [--limit N] [--mirror NAME]",
     "list recent runs from the journal"},
    {"show", cmd_show, o_show, 1, 1, "show RUN_ID [--json | --ndjson] [--mirror NAME]",
     "a run's report: counts, time, batches, errors, a drift sample by kind (--json: the "
     "report as JSON, GET .../runs/{id}'s; --ndjson: every drift row, one JSON object a "
     "line)"},
    {"report", cmd_report, o_report, 1, PARTITION_MAX,
     "report --merge [--max-spread SECONDS] [--mirror NAME] JOURNAL... [--json | --ndjson]",
     "the combined report of a split run (check --partition K/N in N processes, or one "
     "journal of a run split by RECONCILE_PARTITIONS): each journal's newest partition run "
     "(of --mirror's, when given), the counts summed, whether the partitions make up "
     "the whole plan, their errors (--json: as JSON; --ndjson: every drift row, with its "
     "partition). Reads only, never migrates. --max-spread: the seconds the runs may begin "
     "apart (default 3600; an older run is a problem). Exit 0 a complete plan, 1 a "
     "partition missing or given twice, runs of other collections or indexes or too far "
     "apart, plans that do not meet, 2 a journal that cannot be read or holds no "
     "partition run"},
    {"diff", cmd_diff, o_mirror, 1, 1, "diff ID [--mirror NAME]",
     "one document: what a repair would write, the index copy, and a JSON Patch between them "
     "(an ID that begins with - after --)"},
    {"drift", cmd_drift, o_drift, 0, 0,
     "drift [--recurring | --all] [--kind KIND] [--limit N] [--ndjson] [--mirror NAME]",
     "drift across runs: each open (or recurring, or every) id's history"},
    {"mirrors", cmd_mirrors, o_mirrors, 0, 0, "mirrors [--json]",
     "the mirrors: collection, index and newest run of each"},
    {"sync", cmd_sync, o_mirror, 0, 0, "sync [--mirror NAME]",
     "live sync in the foreground: tail each mirror's change stream (or that one's) into its "
     "index until SIGINT/SIGTERM; gaps are journaled and closed by a check run "
     "(docs/LIVE-SYNC.md). Exit 0 stopped, 2 error, 78 bad configuration (no change streams)"},
    {"doctor", cmd_doctor, o_mirror, 0, 0, "doctor [--mirror NAME]",
     "can both servers be reached? versions and counts, for each mirror"},
    {"migrate", cmd_migrate, o_none, 0, 0, "migrate", "apply pending journal migrations"},
    {"config", cmd_config, o_config, 0, 0,
     "config [--file FILE] [--mirror NAME] [--json | --markdown]",
     "the effective configuration, secrets masked (--file: check a configuration file)"},
    {"help", cmd_help, o_none, 0, 0, "help", "this text"},
};

static int
cmd_help(const struct cli *cli)
{
	(void)cli;
	printf("reconciler %s: keeps an OpenSearch index equal to the MongoDB collection it "
	       "mirrors\n\nusage: reconciler COMMAND [OPTIONS] (reconciler COMMAND --help: "
	       "one command's)\n\n",
	       RECONCILER_VERSION);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		printf("  %-42s %s\n", commands[i].usage, commands[i].help);
	printf("\nSettings come from the environment, ./.env and a YAML file (RECONCILER_CONFIG, "
	       "else ./reconciler.yaml):\nsee `reconciler config` and docs/CONFIG.md.\nExit codes: "
	       "0 ok (the index equals MongoDB, but for what the settings leave alone), 1 drift "
	       "found by a dry run (or doctor failed), 2 error (also an unknown command), 3 "
	       "completed but some documents could not be repaired, 4 held (the brake kept the "
	       "orphan deletes), 5 resume did not resume (settings changed), 78 bad "
	       "configuration or input (an unknown option, options that conflict, an unknown "
	       "--mirror, one without a name or given twice, bad --ids / --since), 130 "
	       "interrupted (Ctrl-C; 143 SIGTERM): `reconciler resume` continues. Several "
	       "mirrors: the worst, 78 before 2 before 5 before 4 before 3 before 1 before 0.\n");
	return 0;
}

/* A bad command line: what is wrong and the command's usage, exit 78. */
__attribute__((format(printf, 2, 3))) static int
usage_error(const struct command *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "reconciler %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (usage: reconciler %s; reconciler %s --help)\n", cmd->usage, cmd->name);
	return EXIT_CONFIG;
}

/* An option with a value given twice: which one was meant? (QA8b F12: the
 * last won.) */
static int
take_once(const struct command *cmd, const char **slot, const char *name)
{
	if (*slot)
		return usage_error(cmd, "%s is given twice: give it once", name);
	*slot = optarg;
	return 0;
}

/* One option into a; 0 or an exit code. */
static int
take_option(struct args *a, const struct command *cmd, int c)
{
	switch (c) {
	case OPT_DRY_RUN:
		a->dry_run = true;
		return 0;
	case OPT_FULL:
		a->full = true;
		return 0;
	case OPT_ALLOW_DELETES:
		a->allow_deletes = true;
		return 0;
	case OPT_NDJSON:
		a->ndjson = true;
		return 0;
	case OPT_JSON:
		a->json = true;
		return 0;
	case OPT_MARKDOWN:
		a->markdown = true;
		return 0;
	case OPT_RECURRING:
		a->recurring = true;
		return 0;
	case OPT_ALL:
		a->all = true;
		return 0;
	case OPT_IDS:
		return take_once(cmd, &a->ids, "--ids");
	case OPT_SINCE:
		return take_once(cmd, &a->since, "--since");
	case OPT_FILE:
		return take_once(cmd, &a->file, "--file");
	case OPT_KIND:
		return take_once(cmd, &a->kind, "--kind");
	case OPT_PARTITION:
		return take_once(cmd, &a->partition, "--partition");
	case OPT_MERGE:
		a->merge = true;
		return 0;
	case OPT_MAX_SPREAD:
		if (a->max_spread >= 0)
			return usage_error(
			    cmd, "--max-spread is given twice (%" PRId64 ", then %s): once",
			    a->max_spread, optarg);
		if (util_parse_i64(optarg, &a->max_spread) || a->max_spread < 0 ||
		    a->max_spread > INT32_MAX)
			return usage_error(cmd, "--max-spread %s: a number of seconds from 0 to %d",
			                   optarg, INT32_MAX);
		return 0;
	case OPT_MIRROR:
		/* running one of two named mirrors silently would surprise */
		return take_once(cmd, &a->mirror, "--mirror");
	case OPT_SAMPLE:
		if (a->sample) /* a valid second value must not read as a bad one */
			return usage_error(cmd,
			                   "--sample is given twice (%" PRId64 ", then %s): once",
			                   a->sample, optarg);
		if (util_parse_i64(optarg, &a->sample) || a->sample <= 0 || a->sample > SAMPLE_MAX)
			return usage_error(cmd, "--sample %s: a number of documents from 1 to %d",
			                   optarg, SAMPLE_MAX);
		return 0;
	case OPT_SEED:
		if (a->seed >= 0)
			return usage_error(cmd,
			                   "--seed is given twice (%" PRId64 ", then %s): once",
			                   a->seed, optarg);
		if (util_parse_i64(optarg, &a->seed) || a->seed < 0 || a->seed > INT32_MAX)
			return usage_error(cmd, "--seed %s: a number from 0 to %d", optarg,
			                   INT32_MAX);
		return 0;
	case OPT_LIMIT: {
		/* runs reads its page whole; drift pages through any number */
		int64_t max = strcmp(cmd->name, "runs") == 0 ? 100000 : INT64_MAX;
		if (a->limit || util_parse_i64(optarg, &a->limit) || a->limit <= 0 ||
		    a->limit > max)
			return usage_error(cmd, "--limit %s: a number from 1%s, once", optarg,
			                   max == 100000 ? " to 100000" : "");
		return 0;
	}
	default:
		return usage_error(cmd, "%s", "cannot take this option");
	}
}

/* Options that ask for opposite things are refused, whatever their order:
 * a dry run never writes, so --dry-run with a writing mode (--full,
 * --ids, --since) is not "the last one wins". */
static int
args_conflict(const struct args *a, const struct command *cmd)
{
	const char *modes[4];
	int n = 0;
	char both[64];

	/* a sample only looks: it is a dry run (--dry-run says nothing more) */
	if (a->sample && (a->full || a->ids || a->since || a->allow_deletes))
		return usage_error(cmd,
		                   "--sample and %s conflict: a sample looks N random documents up "
		                   "and writes nothing; give one",
		                   a->full    ? "--full"
		                   : a->ids   ? "--ids"
		                   : a->since ? "--since"
		                              : "--allow-deletes");
	if (a->seed >= 0 && !a->sample)
		return usage_error(cmd, "%s", "--seed goes with --sample N (the draw's seed)");
	/* a partition is a share of a pass: a check's or a dry run's */
	if (a->partition && (a->full || a->ids || a->since || a->sample))
		return usage_error(cmd,
		                   "--partition and %s conflict: a partition is one key range of a "
		                   "check's or a dry run's pass; give one",
		                   a->full    ? "--full"
		                   : a->ids   ? "--ids"
		                   : a->since ? "--since"
		                              : "--sample");
	if (a->dry_run)
		modes[n++] = "--dry-run";
	if (a->full)
		modes[n++] = "--full";
	if (a->ids)
		modes[n++] = "--ids";
	if (a->since && (n == 0 || !a->ids)) /* --ids with --since: engine_opts_check says */
		modes[n++] = "--since";
	if (n > 1) {
		snprintf(both, sizeof(both), "%s and %s", modes[0], modes[1]);
		return usage_error(cmd,
		                   "%s conflict: --dry-run detects only and never writes, --full "
		                   "re-indexes every document, --ids and --since check and repair "
		                   "given documents (not with --dry-run or --full); give one",
		                   both);
	}
	if (a->recurring && a->all)
		return usage_error(cmd, "%s conflict: give one", "--recurring and --all");
	if (a->json && a->markdown)
		return usage_error(cmd, "%s conflict: give one", "--json and --markdown");
	if (a->json && a->ndjson)
		return usage_error(cmd, "%s conflict: give one", "--json and --ndjson");
	return 0;
}

/* argv past the command's name into a: getopt_long over the command's
 * table (--opt value, --opt=value, options and operands in any order, --
 * ends the options). 0, -1 after --help (exit 0), or an exit code. */
static int
parse_args(struct args *a, const struct command *cmd, int argc, char **argv)
{
	int c, code;

	memset(a, 0, sizeof(*a));
	a->seed = -1;
	a->max_spread = -1;
	opterr = 0; /* the messages are ours, with the usage */
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", cmd->options, NULL)) != -1) {
		if (c == 'h') {
			printf("usage: reconciler %s\n\n%s\n", cmd->usage, cmd->help);
			return -1;
		}
		if (c == '?' && optopt >= OPT_DRY_RUN) /* --dry-run=yes */
			return usage_error(cmd, "%s takes no value", argv[optind - 1]);
		if (c == '?') {
			char shrt[3] = {'-', (char)optopt, '\0'};
			return usage_error(cmd, "unknown option %s",
			                   optopt > 0 && optopt < 256 ? shrt : argv[optind - 1]);
		}
		if (c == ':')
			return usage_error(
			    cmd, "%s needs %s", argv[optind - 1],
			    optopt == OPT_IDS      ? "a FILE of ids, one a line (or - for stdin)"
			    : optopt == OPT_SINCE  ? "a TIME, ISO 8601 (2026-11-29T10:00:00Z)"
			    : optopt == OPT_SAMPLE ? "a number of documents (1 to 5000)"
			                           : "a value");
		if ((code = take_option(a, cmd, c)) != 0)
			return code;
	}
	a->operand = argv + optind;
	a->n_operands = argc - optind;
	if (a->n_operands < cmd->min_operands || a->n_operands > cmd->max_operands)
		return usage_error(cmd, "%s",
		                   a->n_operands < cmd->min_operands ? "an operand is missing"
		                                                     : "too many operands");
	return args_conflict(a, cmd);
}

/* A pass allocates a chunk's worth of memory (pages of ids, parsed JSON
 * answers) and frees it again, chunk after chunk. glibc's defaults hand
 * what is freed at the heap's top back to the kernel at once, and the next
 * chunk faults it in again: 270,000 minor faults and 1.2 s of system time
 * in one 1M-document summary pass (docs/PERFORMANCE.md, session 12). Up to
 * 32 MiB freed stays mapped instead (glibc's largest mmap threshold on
 * 64-bit): memory is still O(chunk), and the peak RSS is the same. A hint
 * only: glibc refuses no value within its bounds, and under another
 * allocator (a sanitizer's) it changes nothing, so what mallopt answers
 * is not looked at. */
static void
malloc_policy(void)
{
#ifdef __GLIBC__
	(void)mallopt(M_TRIM_THRESHOLD, 32 << 20);
	(void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
#endif
}

int
main(int argc, char **argv)
{
	struct config_set *set = NULL;
	struct cli cli = {0};
	struct args a;
	struct rerror err = {0};
	const struct command *cmd = NULL;
	enum log_level level = LOG_INFO;
	int rc;

	malloc_policy();
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cmd_help(NULL);
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
	/* everything the line says is read before anything runs */
	if ((rc = parse_args(&a, cmd, argc - 1, argv + 1)) != 0)
		return rc < 0 ? 0 : rc;
	cli.a = &a;
	if (config_set_load(&set, a.file ? a.file : config_file_default(), ".env", &err)) {
		fprintf(stderr, "reconciler: %s\n", err.message);
		return EXIT_CONFIG;
	}
	cli.set = set;
	for (size_t i = 0; i < set->n_warnings; i++)
		fprintf(stderr, "reconciler: warning: %s\n", set->warnings[i]);
	if (a.mirror && (cli.mirror = config_set_find(set, a.mirror)) == NULL) {
		char names[400];
		mirror_names(set, names, sizeof(names));
		fprintf(stderr, "reconciler: no mirror named %s in %s (mirrors: %s)\n",
		        *a.mirror ? a.mirror : "\"\" (an empty name)",
		        set->file ? set->file : "the environment", names);
		config_set_free(set);
		return EXIT_CONFIG;
	}
	level = (enum log_level)set->global->log_level;
	/* one-shot commands log to stderr; the service and runs also to files */
	log_open(strcmp(cmd->name, "serve") == 0 || strcmp(cmd->name, "check") == 0 ||
	                 strcmp(cmd->name, "sync") == 0 || strcmp(cmd->name, "resume") == 0
	             ? set->global->log_dir
	             : NULL,
	         strcmp(cmd->name, "doctor") == 0 && level > LOG_WARN ? LOG_WARN : level);
	mongo_global_init();
	opensearch_global_init();
	rc = cmd->fn(&cli);
	mongo_global_cleanup();
	opensearch_global_cleanup();
	log_close();
	config_set_free(set);
	return rc;
}
