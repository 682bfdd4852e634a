/*
 * store.c: the SQLite run journal.
 *
 * Design:
 * - WAL mode, a busy timeout, and no checkpoint on close, so a person's
 *   sqlite3 shell reading v_runs never blocks a run and a run never makes
 *   the shell say "database is locked" (not even as the run exits).
 * - Migrations are compiled in (migrations/NNNN_name.sql), applied in order,
 *   each in its own transaction, and recorded in schema_migrations.
 * - Every statement binds its values (sql_run's type string: i = int64,
 *   n = int64 or NULL when negative, t = text or NULL, d = double or NULL
 *   when NaN); no SQL is built from data.
 * - Counters in runs are recomputed from run_ids and batches
 *   (store_run_recount) rather than incremented, so a resumed run that sees
 *   the same drift twice still counts it once. A recount reads every row
 *   of the run, so while a run goes it is done at most every
 *   STORE_RECOUNT_MS and at most 1/STORE_RECOUNT_SHARE of the time
 *   (store_run_recount_due); a commit per batch recounting every time made
 *   a long run quadratic (a 1M-document full re-index spent more CPU in
 *   recounts than in everything else). The counters are exact when the
 *   run ends (store_run_finish) and lag a running run by at most that.
 * - Drift history (drift_history, migration 0007) is kept where run_ids is
 *   written, in the same transaction: a new drift row updates its id's
 *   history (seen: times, streak, returns, recurring), a row set done
 *   records the repair. O(drift): nothing scans a run's ids afterwards. A
 *   row seen again in a resumed run is not new, so it counts once.
 * - One run per mirror across processes: flock() on "<db>.lock" (the
 *   mirror "default", so journals and scripts from before mirrors keep
 *   their lock file) or "<db>.<mirror>.lock" (names are [a-z0-9_-], safe in
 *   a path), <db> being the journal's resolved path (realpath), so a
 *   symlink to the journal takes the same lock; hard links and bind mounts
 *   of one journal under two paths are not supported (docs/JOURNAL.md).
 *   The kernel drops the lock when its holder dies, so a crash never
 *   wedges it; runs of different mirrors hold different locks. The
 *   service asks before it starts runs whether another process holds one
 *   (store_lock_probe: 409 naming the holder's run, nothing started); this
 *   process's attempts go one at a time, so a probe never fails a run.
 * - Guards: a journal with a migration this binary does not know (written
 *   by a newer version) is refused for writing and only read
 *   (store_open_read). Opening for writing proves it can write (a small
 *   committed write), so a read-only file, a full disk or another
 *   process's lock is a clear error at start, not in the middle of a run.
 *   Every failed write says what a person can do about it; /api/health
 *   probes with the same small write.
 */
#include "store.h"
#include "store_sql.h"
#include "log.h"
#include "util.h"

#include <assert.h>
#include <inttypes.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

/* How long a statement waits for another connection's lock. */
#define BUSY_WAIT_MS 10000

/* Statements sql_run and sql_int keep prepared. A batch's commit runs a
 * few small statements, and preparing one cost more than running it (in a
 * full re-index sqlite3_prepare_v2 was a third of the journal's CPU). The
 * cache is keyed by the SQL text, not its address (a text built at run time
 * may reuse a buffer), holds the statements those two functions run (a few
 * dozen texts), and evicts the least recently used one beyond that. A
 * statement is taken out of its slot while it runs, so threads sharing a
 * connection (the API's) never step the same one; a second user of the
 * same text prepares its own. */
#define STMT_CACHE 48

struct store {
	sqlite3 *db;
	char *path;
	int lock_fd;
	/* drift history: the run whose mirror and previous pass are known */
	int64_t hist_run, hist_prev;
	char *hist_mirror;
	bool hist_off;                /* the run is a sample: its rows enter no history */
	struct util_throttle recount; /* store_run_recount_due */
	/* sql_run's and sql_int's prepared statements, for reuse */
	pthread_mutex_t stmt_mu;
	struct stmt_slot {
		char *sql;        /* the key: the statement's text */
		sqlite3_stmt *st; /* NULL while a caller uses it */
		uint64_t used;    /* stmt_clock when last given back */
	} stmts[STMT_CACHE];
	int stmt_slots; /* how many of them are used: STMT_CACHE but in tests */
	uint64_t stmt_clock;
};

/* While a run goes its counters are recounted at most this often, */
#define STORE_RECOUNT_MS 1000
/* and a recount may take at most 1/this of the time between two. */
#define STORE_RECOUNT_SHARE 20

#define DISK_FULL                                                                                  \
	"the disk is full: free space where the journal lives, then run again (committed work "    \
	"is kept and an interrupted run resumes)"
#define READ_ONLY                                                                                  \
	"it is read-only for this user: the file, its -wal and -shm files and their directory "    \
	"must be writable by the user the reconciler runs as"
#define NOT_A_DB                                                                                   \
	"this file is not a SQLite journal: move it aside (keep it for audit) and the next "       \
	"start creates a new journal; see Recovery in docs/JOURNAL.md"

/* What a person can do about a journal error (docs/JOURNAL.md, Recovery);
 * NULL when it is not about the file, the disk or a lock. */
static const char *
advice(sqlite3 *db, int code)
{
	int sys = db ? sqlite3_system_errno(db) : 0;

	if (sys == ENOSPC || sys == EDQUOT || code == SQLITE_IOERR_SHMSIZE)
		return DISK_FULL;
	if (sys == EROFS)
		return "the filesystem of the journal is mounted read-only";
	switch (code & 0xff) {
	case SQLITE_FULL:
		return DISK_FULL;
	case SQLITE_READONLY:
	case SQLITE_PERM:
		return READ_ONLY;
	case SQLITE_CANTOPEN:
		return "cannot open the file: its directory must exist and be writable by this "
		       "user";
	case SQLITE_NOTADB:
		return NOT_A_DB;
	case SQLITE_CORRUPT:
		return "the journal is damaged: move it aside and try `sqlite3 FILE .recover`; see "
		       "Recovery in docs/JOURNAL.md";
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_PROTOCOL:
		return "another process holds a lock on the journal (a sqlite3 shell inside a "
		       "transaction, or with PRAGMA locking_mode=EXCLUSIVE): end it, then run "
		       "again";
	case SQLITE_IOERR:
		return "the disk failed a read or a write: check it (df, dmesg)";
	}
	return NULL;
}

/* Logs the last error of s with its advice (what may be NULL). */
static void
log_db_error(struct store *s, const char *what)
{
	const char *adv = advice(s->db, sqlite3_extended_errcode(s->db));

	log_error("journal: %s%s%s%s%s", what ? what : "", what ? ": " : "", sqlite3_errmsg(s->db),
	          adv ? ": " : "", adv ? adv : "");
}

static RC_MUST_CHECK rcode
db_error(struct store *s, struct rerror *err, const char *what)
{
	int code = sqlite3_extended_errcode(s->db);
	const char *adv = advice(s->db, code);

	return rerror_set(err, RC_ERR_STORE, "journal %s: %s: %s%s%s", s->path, what,
	                  sqlite3_errmsg(s->db), adv ? ": " : "", adv ? adv : "");
}

static RC_MUST_CHECK rcode
bind_args(sqlite3_stmt *st, const char *types, va_list ap)
{
	for (int i = 0; types[i]; i++) {
		int rc = SQLITE_OK, col = i + 1;
		switch (types[i]) {
		case 'i':
			rc = sqlite3_bind_int64(st, col, va_arg(ap, int64_t));
			break;
		case 'n': {
			int64_t v = va_arg(ap, int64_t);
			rc = v < 0 ? sqlite3_bind_null(st, col) : sqlite3_bind_int64(st, col, v);
			break;
		}
		case 't': {
			const char *v = va_arg(ap, const char *);
			rc = v ? sqlite3_bind_text(st, col, v, -1, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(st, col);
			break;
		}
		case 'd': { /* a NaN is NULL: a rate not estimated */
			double v = va_arg(ap, double);
			rc = v == v ? sqlite3_bind_double(st, col, v) : sqlite3_bind_null(st, col);
			break;
		}
		default:
			return RC_ERR_INTERNAL;
		}
		if (rc != SQLITE_OK)
			return RC_ERR_STORE;
	}
	return RC_OK;
}

/* Prepares sql and binds the arguments; the caller steps and finalizes. */
rcode
store_sql_prepare(struct store *s, sqlite3_stmt **out, const char *sql, const char *types, ...)
{
	va_list ap;
	rcode rc;

	*out = NULL;
	if (sqlite3_prepare_v2(s->db, sql, -1, out, NULL) != SQLITE_OK) {
		log_error("journal: prepare failed: %s", sqlite3_errmsg(s->db));
		return RC_ERR_STORE;
	}
	va_start(ap, types);
	rc = bind_args(*out, types, ap);
	va_end(ap);
	if (rc) {
		sqlite3_finalize(*out);
		*out = NULL;
	}
	return rc;
}

/* *out: sql prepared, from the cache or new; the caller gives it back with
 * stmt_give. Fails when SQLite cannot prepare it (not logged: the
 * connection's error says why). */
static RC_MUST_CHECK rcode
stmt_take(struct store *s, sqlite3_stmt **out, const char *sql)
{
	*out = NULL;
	pthread_mutex_lock(&s->stmt_mu);
	for (int i = 0; i < s->stmt_slots; i++) {
		struct stmt_slot *e = &s->stmts[i];
		if (e->st && strcmp(e->sql, sql) == 0) {
			*out = e->st;
			e->st = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&s->stmt_mu);
	if (*out)
		return RC_OK;
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) != SQLITE_OK) {
		*out = NULL; /* the caller says so, or not (a failure it expects) */
		return RC_ERR_STORE;
	}
	return RC_OK;
}

/* Puts st (sql's, from stmt_take) back, reset and unbound: into its own
 * slot, a free one or the least recently used one's place; finalized when
 * every slot is in use or the text cannot be copied. */
static void
stmt_give(struct store *s, const char *sql, sqlite3_stmt *st)
{
	struct stmt_slot *to = NULL;

	sqlite3_reset(st); /* its error, if any, was the step's: reported */
	sqlite3_clear_bindings(st);
	pthread_mutex_lock(&s->stmt_mu);
	for (int i = 0; i < s->stmt_slots && !to; i++)
		if (s->stmts[i].sql && !s->stmts[i].st && strcmp(s->stmts[i].sql, sql) == 0)
			to = &s->stmts[i]; /* its own slot, emptied by stmt_take */
	for (int i = 0; i < s->stmt_slots && !to; i++)
		if (!s->stmts[i].sql)
			to = &s->stmts[i];
	if (!to) /* the least recently used statement not in use */
		for (int i = 0; i < s->stmt_slots; i++)
			if (s->stmts[i].st && (!to || s->stmts[i].used < to->used))
				to = &s->stmts[i];
	/* finalized after unlocking: finalize waits for the connection,
	 * which another thread may hold while it waits for a lock */
	sqlite3_stmt *evicted = NULL;
	if (to && to->st) { /* evicted (another copy of the same text too) */
		evicted = to->st;
		to->st = NULL;
	}
	if (to && (!to->sql || strcmp(to->sql, sql) != 0)) {
		free(to->sql);
		to->sql = strdup(sql);
		if (to->sql == NULL) /* the slot stays free */
			to = NULL;
	}
	if (to) {
		to->st = st;
		to->used = ++s->stmt_clock;
	}
	pthread_mutex_unlock(&s->stmt_mu);
	sqlite3_finalize(evicted);
	if (!to)
		sqlite3_finalize(st);
}

/* Finalizes every cached statement (before the connection closes). */
static void
stmt_cache_clear(struct store *s)
{
	pthread_mutex_lock(&s->stmt_mu);
	for (int i = 0; i < STMT_CACHE; i++) {
		/* a statement in use now would be finalized by its user later,
		 * against a closed connection: every user has given it back */
		assert(s->stmts[i].st || !s->stmts[i].sql);
		sqlite3_finalize(s->stmts[i].st);
		free(s->stmts[i].sql);
		s->stmts[i] = (struct stmt_slot){0};
	}
	pthread_mutex_unlock(&s->stmt_mu);
}

/* Runs one statement that returns no rows. */
static RC_MUST_CHECK rcode
sql_run(struct store *s, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	rcode rc;
	int step;

	if ((rc = stmt_take(s, &st, sql))) {
		log_db_error(s, "cannot prepare a statement");
		return rc;
	}
	va_start(ap, types);
	rc = bind_args(st, types, ap);
	va_end(ap);
	if (rc == RC_OK) {
		step = sqlite3_step(st);
		if (step != SQLITE_DONE && step != SQLITE_ROW) {
			log_db_error(s, NULL);
			rc = RC_ERR_STORE;
		}
	}
	stmt_give(s, sql, st);
	return rc;
}

/* Runs a query whose first row's first column is an integer. */
static RC_MUST_CHECK rcode
sql_int(struct store *s, int64_t *out, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	rcode rc;

	*out = 0;
	if ((rc = stmt_take(s, &st, sql)))
		return rc;
	va_start(ap, types);
	rc = bind_args(st, types, ap);
	va_end(ap);
	if (rc == RC_OK) {
		int step = sqlite3_step(st);
		if (step == SQLITE_ROW)
			*out = sqlite3_column_int64(st, 0);
		else if (step != SQLITE_DONE)
			rc = RC_ERR_STORE;
	}
	stmt_give(s, sql, st);
	return rc;
}

static void
now(char *ts)
{
	util_now_iso(ts, 32);
}

static RC_MUST_CHECK rcode
mkdir_parent(const char *path)
{
	char *copy = strdup(path), *dir;
	rcode rc = RC_OK;

	if (copy == NULL)
		return RC_ERR_NOMEM;
	dir = dirname(copy);
	if (strcmp(dir, ".") && strcmp(dir, "/") && mkdir(dir, 0755) && errno != EEXIST)
		rc = RC_ERR_IO;
	free(copy);
	return rc;
}

static RC_MUST_CHECK rcode refuse_newer(struct store *s, struct rerror *err);

/* A store not open yet, or NULL without memory. */
static struct store *
store_new(const char *path)
{
	struct store *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->path = strdup(path)) == NULL ||
	    pthread_mutex_init(&s->stmt_mu, NULL) != 0) {
		if (s)
			free(s->path);
		free(s);
		return NULL;
	}
	s->lock_fd = -1;
	s->stmt_slots = STMT_CACHE;
	return s;
}

void
store_test_stmt_cache(struct store *s, int slots)
{
	assert(slots >= 1 && slots <= STMT_CACHE);
	stmt_cache_clear(s);
	s->stmt_slots = slots;
}

rcode
store_open(struct store **out, const char *path, struct rerror *err)
{
	struct store *s;
	rcode rc;

	*out = NULL;
	if ((s = store_new(path)) == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	if (mkdir_parent(path)) {
		rc =
		    rerror_set(err, RC_ERR_STORE, "journal %s: cannot create its directory: %s%s",
		               path, strerror(errno),
		               errno == EACCES ? " (its parent is not writable by this user)" : "");
		goto fail;
	}
	if (sqlite3_open_v2(path, &s->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
	                    NULL) != SQLITE_OK) {
		rc = db_error(s, err, "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(s->db, BUSY_WAIT_MS);
	/* The last connection to close would take an exclusive lock to
	 * checkpoint and delete the WAL; a person's sqlite3 shell opening at
	 * that moment would say "database is locked". Checkpoints still run
	 * automatically while we write. */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	sqlite3_extended_result_codes(s->db, 1);
	/* SQLite quietly opens a file it may not write for reading only */
	if (sqlite3_db_readonly(s->db, "main") == 1) {
		rc = rerror_set(err, RC_ERR_STORE, "journal %s: cannot be written (uid %d): %s",
		                path, (int)getuid(), READ_ONLY);
		goto fail;
	}
	if (sqlite3_exec(s->db,
	                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
	                 "PRAGMA foreign_keys=ON;",
	                 NULL, NULL, NULL) != SQLITE_OK) {
		rc = db_error(s, err, "cannot open");
		goto fail;
	}
	rc = refuse_newer(s, err);
	if (rc == RC_OK)
		rc = store_migrate(s, NULL, err);
	if (rc == RC_OK)
		rc = store_probe_write(s, BUSY_WAIT_MS, err);
	if (rc)
		goto fail;
	*out = s;
	return RC_OK;
fail:
	store_free(s);
	return rc;
}

/* Counts this binary's migrations the journal lacks, and names the last
 * migration it has that this binary does not know ("" when none). */
static RC_MUST_CHECK rcode
migration_state(struct store *s, int *pending, char *unknown, size_t len, struct rerror *err)
{
	sqlite3_stmt *st = NULL;
	int64_t exists = 0;
	int step, known = 0, total = 0;

	*pending = 0;
	unknown[0] = '\0';
	for (const struct store_migration *m = store_migrations; m->name; m++)
		total++;
	if (sql_int(s, &exists,
	            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND"
	            " name = 'schema_migrations'",
	            ""))
		return db_error(s, err, "cannot read");
	if (!exists) {
		*pending = total;
		return RC_OK;
	}
	if (sqlite3_prepare_v2(s->db, "SELECT name FROM schema_migrations ORDER BY name", -1, &st,
	                       NULL) != SQLITE_OK)
		return db_error(s, err, "cannot read schema_migrations");
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		bool ours = false;
		for (const struct store_migration *m = store_migrations; m->name && !ours; m++)
			ours = name && strcmp(name, m->name) == 0;
		if (ours)
			known++;
		else if (name)
			snprintf(unknown, len, "%s", name);
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		return db_error(s, err, "cannot read schema_migrations");
	*pending = total - known;
	return RC_OK;
}

static const char *
latest_migration(void)
{
	const char *last = "(none)";

	for (const struct store_migration *m = store_migrations; m->name; m++)
		last = m->name;
	return last;
}

/* A newer reconciler's journal may hold tables and rules this binary does
 * not know, so writing to it could damage it: refused. */
static RC_MUST_CHECK rcode
refuse_newer(struct store *s, struct rerror *err)
{
	char unknown[128];
	int pending;
	rcode rc = migration_state(s, &pending, unknown, sizeof(unknown), err);

	if (rc || !*unknown)
		return rc;
	return rerror_set(err, RC_ERR_STORE,
	                  "journal %s was written by a newer reconciler: it has migration %s, "
	                  "this reconciler (%s) knows migrations up to %s. Run the newer "
	                  "version; `reconciler runs` and `reconciler show` can still read it",
	                  s->path, unknown, RECONCILER_VERSION, latest_migration());
}

rcode
store_probe_write(struct store *s, int wait_ms, struct rerror *err)
{
	int64_t v = 0;
	char sql[96];
	rcode rc = RC_OK;

	/* the same value again: a committed write that changes nothing */
	if (sql_int(s, &v, "PRAGMA user_version", ""))
		return db_error(s, err, "cannot read");
	snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE; PRAGMA user_version = %lld; COMMIT",
	         (long long)v);
	sqlite3_busy_timeout(s->db, wait_ms);
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		rc = db_error(s, err, "cannot be written");
		if (!sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	sqlite3_busy_timeout(s->db, BUSY_WAIT_MS);
	return rc;
}

rcode
store_open_read_as_is(struct store **out, int *pending, const char *path, struct rerror *err)
{
	struct store *s;
	struct stat sb;
	char unknown[128], uri[4200];
	int code;
	rcode rc;

	*out = NULL;
	*pending = 0;
	if (stat(path, &sb) != 0)
		return rerror_set(
		    err, errno == ENOENT ? RC_ERR_NOTFOUND : RC_ERR_STORE, "journal %s: %s", path,
		    errno == ENOENT ? "no such file (no run recorded yet)" : strerror(errno));
	if ((s = store_new(path)) == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, NULL) !=
	    SQLITE_OK) {
		rc = db_error(s, err, "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(s->db, BUSY_WAIT_MS);
	sqlite3_extended_result_codes(s->db, 1);
	rc = migration_state(s, pending, unknown, sizeof(unknown), err);
	snprintf(uri, sizeof(uri), "%s-wal", path);
	code = sqlite3_errcode(s->db) & 0xff;
	if (rc && (code == SQLITE_READONLY || code == SQLITE_CANTOPEN) && stat(uri, &sb) != 0 &&
	    !strpbrk(path, "?#%")) {
		/* WAL needs a -shm file this user cannot create; with no -wal
		 * file there is nothing it would add: read the file as it is */
		stmt_cache_clear(s);
		sqlite3_close_v2(s->db);
		s->db = NULL;
		snprintf(uri, sizeof(uri), "file:%s?immutable=1", path);
		if (sqlite3_open_v2(uri, &s->db,
		                    SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_FULLMUTEX,
		                    NULL) != SQLITE_OK) {
			rc = db_error(s, err, "cannot open");
			goto fail;
		}
		rc = migration_state(s, pending, unknown, sizeof(unknown), err);
	}
	if (rc)
		goto fail;
	if (*unknown) {
		*pending = 0;
		log_warn("journal %s was written by a newer reconciler (migration %s; this one "
		         "knows up to %s): reading only",
		         path, unknown, latest_migration());
	}
	*out = s;
	return RC_OK;
fail:
	store_free(s);
	return rc;
}

rcode
store_open_read(struct store **out, const char *path, struct rerror *err)
{
	int pending = 0;
	rcode rc = store_open_read_as_is(out, &pending, path, err);

	if (rc || pending == 0)
		return rc;
	/* an older journal: bring it up to date, which writes */
	store_free(*out);
	*out = NULL;
	return store_open(out, path, err);
}

void
store_free(struct store *s)
{
	if (s == NULL)
		return;
	store_unlock(s);
	stmt_cache_clear(s);
	if (s->db)
		sqlite3_close_v2(s->db);
	pthread_mutex_destroy(&s->stmt_mu);
	free(s->hist_mirror);
	free(s->path);
	free(s);
}

rcode
store_migrate(struct store *s, int *applied, struct rerror *err)
{
	int count = 0;

	if (applied)
		*applied = 0;
	if (sqlite3_exec(s->db,
	                 "CREATE TABLE IF NOT EXISTS schema_migrations ("
	                 " name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
	                 NULL, NULL, NULL) != SQLITE_OK)
		return db_error(s, err, "cannot create schema_migrations");
	for (const struct store_migration *m = store_migrations; m->name; m++) {
		int64_t done;
		char ts[32];
		if (sql_int(s, &done, "SELECT count(*) FROM schema_migrations WHERE name = ?", "t",
		            m->name))
			return db_error(s, err, "cannot read schema_migrations");
		if (done)
			continue;
		/* a migration may rebuild a table others reference (SQLite's
		 * procedure for changing a CHECK): foreign keys are not enforced
		 * while it runs (the pragma is a no-op inside a transaction), and
		 * every key is checked before it commits */
		if (sqlite3_exec(s->db, "PRAGMA foreign_keys=OFF", NULL, NULL, NULL) != SQLITE_OK)
			return db_error(s, err, "cannot begin migration");
		if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
			rcode rc = db_error(s, err, "cannot begin migration");
			sqlite3_exec(s->db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
			return rc;
		}
		now(ts);
		int64_t broken = 0;
		if (sqlite3_exec(s->db, m->sql, NULL, NULL, NULL) != SQLITE_OK ||
		    sql_int(s, &broken, "SELECT count(*) FROM pragma_foreign_key_check", "") ||
		    broken > 0 ||
		    sql_run(s, "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
		            "tt", m->name, ts)) {
			int code = sqlite3_extended_errcode(s->db);
			const char *adv = advice(s->db, code);
			rcode rc =
			    broken > 0
			        ? rerror_set(err, RC_ERR_STORE,
			                     "journal %s: migration %s failed: it would leave "
			                     "%lld rows whose run does not exist",
			                     s->path, m->name, (long long)broken)
			        : rerror_set(err, RC_ERR_STORE,
			                     "journal %s: migration %s failed: %s%s%s", s->path,
			                     m->name, sqlite3_errmsg(s->db), adv ? ": " : "",
			                     adv ? adv : "");
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			sqlite3_exec(s->db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
			return rc;
		}
		if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			rcode rc = db_error(s, err, "cannot commit migration");
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			sqlite3_exec(s->db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
			return rc;
		}
		if (sqlite3_exec(s->db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL) != SQLITE_OK)
			return db_error(s, err, "cannot re-enable foreign keys");
		log_info("journal: applied migration %s", m->name);
		count++;
	}
	if (applied)
		*applied = count;
	return RC_OK;
}

/* Lock attempts of this process go one at a time: a probe (the API asking
 * whether another process holds a mirror) takes the lock for a moment, and a
 * run of this process trying for it then must wait, not fail. */
static pthread_mutex_t lock_attempt_mu = PTHREAD_MUTEX_INITIALIZER;

static RC_MUST_CHECK rcode
lock_take(struct store *s, int64_t *holder_run, const char *mirror, struct rerror *err)
{
	char path[4200];

	*holder_run = 0;
	if (mirror == NULL)
		mirror = "default";
	if (s->lock_fd >= 0)
		return RC_OK;
	/* named after the journal's resolved path, not STATE_DB's text, so
	 * that a symlink to the journal takes the same lock (QA F8) */
	char *real = realpath(s->path, NULL);
	const char *base = real ? real : s->path;
	if (strcmp(mirror, "default") == 0)
		snprintf(path, sizeof(path), "%s.lock", base);
	else
		snprintf(path, sizeof(path), "%s.%s.lock", base, mirror);
	free(real);
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (s->lock_fd < 0)
		return rerror_set(err, RC_ERR_IO, "cannot open lock file %s: %s", path,
		                  strerror(errno));
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0)
		return RC_OK;
	close(s->lock_fd);
	s->lock_fd = -1;
	/* only to name the holder: when the journal cannot say, the message says less */
	if (sql_int(s, holder_run,
	            /* a split run by its partition 0's run, as the service names it */
	            "SELECT COALESCE(split_of, id) FROM runs WHERE status = 'running' AND "
	            "mirror = ? ORDER BY id DESC",
	            "t", mirror))
		*holder_run = 0;
	if (*holder_run)
		return rerror_set(err, RC_ERR_BUSY,
		                  "run %lld of mirror %s holds the journal %s for that mirror (one "
		                  "run per mirror at a time; other mirrors may run)",
		                  (long long)*holder_run, mirror, s->path);
	return rerror_set(err, RC_ERR_BUSY,
	                  "another process holds the journal %s for mirror %s (one run per "
	                  "mirror at a time; other mirrors may run)",
	                  s->path, mirror);
}

rcode
store_lock(struct store *s, int64_t *holder_run, const char *mirror, struct rerror *err)
{
	pthread_mutex_lock(&lock_attempt_mu);
	rcode rc = lock_take(s, holder_run, mirror, err);
	pthread_mutex_unlock(&lock_attempt_mu);
	return rc;
}

rcode
store_lock_probe(struct store *s, int64_t *holder_run, const char *mirror, struct rerror *err)
{
	rcode rc;

	*holder_run = 0;
	if (s->lock_fd >= 0)
		return rerror_set(err, RC_ERR_INTERNAL, "this handle holds a lock already");
	pthread_mutex_lock(&lock_attempt_mu);
	rc = lock_take(s, holder_run, mirror, err);
	if (rc == RC_OK)
		store_unlock(s);
	pthread_mutex_unlock(&lock_attempt_mu);
	return rc;
}

void
store_unlock(struct store *s)
{
	if (s->lock_fd >= 0) {
		flock(s->lock_fd, LOCK_UN);
		close(s->lock_fd);
		s->lock_fd = -1;
	}
}

rcode
store_tx_begin(struct store *s)
{
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK)
		return RC_OK;
	log_db_error(s, "cannot begin a transaction");
	return RC_ERR_STORE;
}

rcode
store_tx_commit(struct store *s)
{
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return RC_OK;
	log_db_error(s, "commit failed");
	store_tx_rollback(s);
	return RC_ERR_STORE;
}

void
store_tx_rollback(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

void
store_run_free(struct store_run *r)
{
	if (r == NULL)
		return;
	free(r->mirror);
	free(r->trigger);
	free(r->phase);
	free(r->started_at);
	free(r->finished_at);
	free(r->heartbeat_at);
	free(r->cursor_type);
	free(r->cursor);
	free(r->verify);
	free(r->verify_note);
	free(r->partition_type);
	free(r->partition_lo);
	free(r->partition_hi);
	free(r->config);
	free(r->error);
	free(r);
}

rcode
store_run_begin(struct store *s, int64_t *run_id, const char *mirror, enum run_kind kind,
                const char *trigger, const char *config_json)
{
	char ts[32];
	rcode rc;

	*run_id = 0;
	now(ts);
	rc = sql_run(
	    s,
	    "INSERT INTO runs (mirror, kind, trigger, started_at, heartbeat_at, config, pid, "
	    "full_write) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
	    "ttttttii", mirror ? mirror : "default", store_run_kind_name(kind), trigger, ts, ts,
	    config_json, (int64_t)getpid(), (int64_t)(kind == RUN_FULL));
	if (rc)
		return rc;
	*run_id = sqlite3_last_insert_rowid(s->db);
	return store_event(s, *run_id, "started", trigger);
}

static char *
col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? strdup((const char *)t) : NULL;
}

static const char *const brake_names[] = {"on", "released", "passed", "held"};

static int64_t
col_int_or(sqlite3_stmt *st, int i, int64_t dflt)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? dflt : sqlite3_column_int64(st, i);
}

/* A run's row as store_run_get reads it, in the order of its columns; the
 * counters live while the run has not ended (STORE_LIVE). One clause per
 * line, kept out of clang-format, which would flow it across 400 columns. */
/* clang-format off */
static const char run_get_sql[] =
	"SELECT id, kind, trigger, status, phase, "
	"started_at, finished_at, heartbeat_at, "
	"mongo_count, opensearch_count, compared, "
	STORE_LIVE(STORE_CNT_KIND("runs.id", "missing"), "missing_count") ", "
	STORE_LIVE(STORE_CNT_KIND("runs.id", "orphan"), "orphan_count") ", "
	STORE_LIVE(STORE_CNT_KIND("runs.id", "stale"), "stale_count") ", "
	STORE_LIVE(STORE_CNT_SKIPPED("runs.id"), "skipped_count") ", "
	STORE_LIVE(STORE_CNT_REPAIRED("runs.id"), "repaired_count") ", "
	STORE_LIVE(STORE_CNT_DELETED("runs.id"), "deleted_count") ", "
	STORE_LIVE(STORE_CNT_FAILED("runs.id"), "failed_count") ", "
	"cursor_type, cursor, seen_types, resume_count, config, error, "
	STORE_LIVE(STORE_CNT_KIND("runs.id", "duplicate"), "duplicate_count") ", "
	STORE_LIVE(STORE_CNT_KIND("runs.id", "conflict"), "conflict_count") ", "
	"mirror, "
	STORE_LIVE(STORE_CNT_NEWER("runs.id"), "skipped_newer_count") ", "
	"index_read, delete_brake, full_write, "
	STORE_LIVE(STORE_CNT_REINDEXED("runs.id"), "reindexed_count") ", "
	STORE_LIVE(STORE_CNT_ORPHANS_KEPT("runs.id"), "orphans_kept_count") ", kept_count, "
	"verify, verify_note, ranges_summarized, ranges_descended, "
	"partition_k, partition_n, partition_type, partition_lo, partition_hi, split_of "
	"FROM runs "
	"WHERE id = ?";
/* clang-format on */

/* Fills r from a row of run_get_sql; false when its kind or status is not
 * one this version knows. */
static bool
run_from_row(struct store_run *r, sqlite3_stmt *st)
{
	const char *brake = (const char *)sqlite3_column_text(st, 29);
	bool known;

	r->id = sqlite3_column_int64(st, 0);
	known = !store_run_kind_parse((const char *)sqlite3_column_text(st, 1), &r->kind) &&
	        !store_run_status_parse((const char *)sqlite3_column_text(st, 3), &r->status);
	r->trigger = col_text(st, 2);
	r->phase = col_text(st, 4);
	r->started_at = col_text(st, 5);
	r->finished_at = col_text(st, 6);
	r->heartbeat_at = col_text(st, 7);
	r->mongo_count = col_int_or(st, 8, -1);
	r->opensearch_count = col_int_or(st, 9, -1);
	r->compared = sqlite3_column_int64(st, 10);
	r->missing = sqlite3_column_int64(st, 11);
	r->orphans = sqlite3_column_int64(st, 12);
	r->stale = sqlite3_column_int64(st, 13);
	r->skipped = sqlite3_column_int64(st, 14);
	r->repaired = sqlite3_column_int64(st, 15);
	r->deleted = sqlite3_column_int64(st, 16);
	r->failed = sqlite3_column_int64(st, 17);
	r->cursor_type = col_text(st, 18);
	r->cursor = col_text(st, 19);
	r->seen_types = sqlite3_column_int64(st, 20);
	r->resume_count = sqlite3_column_int64(st, 21);
	r->config = col_text(st, 22);
	r->error = col_text(st, 23);
	r->duplicates = sqlite3_column_int64(st, 24);
	r->conflicts = sqlite3_column_int64(st, 25);
	r->mirror = col_text(st, 26);
	r->skipped_newer = sqlite3_column_int64(st, 27);
	r->index_read = sqlite3_column_int64(st, 28);
	r->kept = sqlite3_column_int64(st, 33);
	r->brake = BRAKE_ON;
	for (int b = 0; b <= BRAKE_HELD; b++)
		if (brake && strcmp(brake, brake_names[b]) == 0)
			r->brake = (enum delete_brake)b;
	r->full_write = sqlite3_column_int64(st, 30) != 0;
	r->reindexed = sqlite3_column_int64(st, 31);
	r->orphans_kept = sqlite3_column_int64(st, 32);
	r->verify = col_text(st, 34);
	r->verify_note = col_text(st, 35);
	r->ranges_summarized = sqlite3_column_int64(st, 36);
	r->ranges_descended = sqlite3_column_int64(st, 37);
	r->partition_k = (int)sqlite3_column_int64(st, 38);
	r->partition_n = (int)sqlite3_column_int64(st, 39);
	r->partition_type = col_text(st, 40);
	r->partition_lo = col_text(st, 41);
	r->partition_hi = col_text(st, 42);
	r->split_of = sqlite3_column_int64(st, 43);
	return known;
}

rcode
store_run_get(struct store *s, struct store_run **out, int64_t run_id)
{
	sqlite3_stmt *st;
	struct store_run *r;
	rcode rc;
	int step;
	bool known;

	*out = NULL;
	rc = store_sql_prepare(s, &st, run_get_sql, "i", run_id);
	if (rc)
		return rc;
	step = sqlite3_step(st);
	if (step != SQLITE_ROW) {
		sqlite3_finalize(st);
		return step == SQLITE_DONE ? RC_ERR_NOTFOUND : RC_ERR_STORE;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		sqlite3_finalize(st);
		return RC_ERR_NOMEM;
	}
	known = run_from_row(r, st);
	sqlite3_finalize(st);
	if (!known) { /* the CHECK constraints make this a journal we do not know */
		store_run_free(r);
		return RC_ERR_STORE;
	}
	if (!r->mirror || !r->phase || !r->trigger || !r->started_at) {
		store_run_free(r);
		return RC_ERR_NOMEM;
	}
	*out = r;
	return RC_OK;
}

rcode
store_run_unfinished(struct store *s, int64_t *run_id, const char *mirror)
{
	return sql_int(s, run_id,
	               "SELECT id FROM runs WHERE status IN ('running', 'interrupted') "
	               "AND kind NOT IN ('ids', 'sample', 'catchup') AND (?1 IS NULL OR mirror = "
	               "?1) ORDER BY id "
	               "DESC LIMIT 1",
	               "t", mirror);
}

rcode
store_run_unfinished_of_kind(struct store *s, enum run_kind kind, int64_t *run_id,
                             const char *mirror)
{
	return sql_int(
	    s, run_id,
	    "SELECT id FROM runs WHERE status IN ('running', 'interrupted') AND kind = ?1"
	    " AND (?2 IS NULL OR mirror = ?2) ORDER BY id DESC LIMIT 1",
	    "tt", store_run_kind_name(kind), mirror);
}

rcode
store_runs_unfinished(struct store *s, struct store_unfinished **out, size_t *n, size_t max)
{
	sqlite3_stmt *st;
	rcode rc;
	int step = SQLITE_DONE;

	*out = NULL;
	*n = 0;
	if (max == 0)
		return RC_OK;
	*out = calloc(max, sizeof(**out));
	if (*out == NULL)
		return RC_ERR_NOMEM;
	rc = store_sql_prepare(s, &st,
	                       "SELECT id, mirror, status, kind FROM runs WHERE status IN "
	                       "('running', 'interrupted') ORDER BY id LIMIT ?",
	                       "i", (int64_t)max);
	if (rc) {
		free(*out);
		*out = NULL;
		return rc;
	}
	while (*n < max && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_unfinished *u = &(*out)[(*n)++];
		u->id = sqlite3_column_int64(st, 0);
		snprintf(u->mirror, sizeof(u->mirror), "%s",
		         (const char *)sqlite3_column_text(st, 1));
		snprintf(u->status, sizeof(u->status), "%s",
		         (const char *)sqlite3_column_text(st, 2));
		snprintf(u->kind, sizeof(u->kind), "%s", (const char *)sqlite3_column_text(st, 3));
	}
	if (*n < max && step != SQLITE_DONE)
		rc = RC_ERR_STORE;
	sqlite3_finalize(st);
	if (rc) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

rcode
store_run_resumed(struct store *s, int64_t run_id)
{
	char ts[32];
	rcode rc;

	now(ts);
	rc = sql_run(s,
	             "UPDATE runs SET status = 'running', resume_count = resume_count + 1, "
	             "heartbeat_at = ?, pid = ?, finished_at = NULL, error = NULL WHERE id = ?",
	             "tii", ts, (int64_t)getpid(), run_id);
	return rc ? rc : store_event(s, run_id, "resumed", NULL);
}

rcode
store_run_phase(struct store *s, int64_t run_id, const char *phase)
{
	char ts[32];
	rcode rc;

	now(ts);
	rc = sql_run(s, "UPDATE runs SET phase = ?, heartbeat_at = ? WHERE id = ?", "tti", phase,
	             ts, run_id);
	return rc ? rc : store_event(s, run_id, "phase", phase);
}

rcode
store_run_counts(struct store *s, int64_t run_id, int64_t mongo_count, int64_t opensearch_count)
{
	return sql_run(s, "UPDATE runs SET mongo_count = ?, opensearch_count = ? WHERE id = ?",
	               "nni", mongo_count, opensearch_count, run_id);
}

rcode
store_run_cursor(struct store *s, int64_t run_id, const char *cursor_type, const char *cursor,
                 int64_t seen_types, int64_t compared, const struct store_tally *t)
{
	static const struct store_tally none = {0};
	char ts[32];

	if (t == NULL)
		t = &none;
	now(ts);
	return sql_run(s,
	               "UPDATE runs SET cursor_type = ?, cursor = ?, seen_types = ?, compared = ?, "
	               "index_read = ?, kept_count = ?, ranges_summarized = ?, "
	               "ranges_descended = ?, heartbeat_at = ? WHERE id = ?",
	               "ttiiiiiiti", cursor_type, cursor, seen_types, compared, t->index_read,
	               t->kept, t->ranges_summarized, t->ranges_descended, ts, run_id);
}

rcode
store_run_ranges(struct store *s, int64_t run_id, int64_t summarized, int64_t descended)
{
	return sql_run(s,
	               "UPDATE runs SET ranges_summarized = ?, ranges_descended = ? WHERE id = ?",
	               "iii", summarized, descended, run_id);
}

rcode
store_run_verify(struct store *s, int64_t run_id, const char *verify, const char *note)
{
	return sql_run(s, "UPDATE runs SET verify = ?, verify_note = ? WHERE id = ?", "tti", verify,
	               note, run_id);
}

rcode
store_run_partition(struct store *s, int64_t run_id, int k, int n, const char *type, const char *lo,
                    const char *hi)
{
	if (type == NULL)
		return sql_run(s, "UPDATE runs SET partition_k = ?, partition_n = ? WHERE id = ?",
		               "iii", (int64_t)k, (int64_t)n, run_id);
	return sql_run(s,
	               "UPDATE runs SET partition_k = ?, partition_n = ?, partition_type = ?, "
	               "partition_lo = ?, partition_hi = ? WHERE id = ?",
	               "iittti", (int64_t)k, (int64_t)n, type, lo, hi, run_id);
}

rcode
store_run_split(struct store *s, int64_t run_id, int64_t split_of)
{
	assert(split_of > 0);
	return sql_run(s, "UPDATE runs SET split_of = ? WHERE id = ?", "ii", split_of, run_id);
}

rcode
store_split_unfinished(struct store *s, int64_t *split_of, const char *mirror, enum run_kind kind,
                       int n)
{
	return sql_int(s, split_of,
	               "SELECT split_of FROM runs WHERE status IN ('running', 'interrupted') AND "
	               "split_of IS NOT NULL AND mirror = ? AND kind = ? AND partition_n = ? "
	               "ORDER BY id DESC LIMIT 1",
	               "tti", mirror, store_run_kind_name(kind), (int64_t)n);
}

rcode
store_split_partition(struct store *s, int64_t *run_id, int64_t split_of, int k)
{
	return sql_int(s, run_id,
	               "SELECT id FROM runs WHERE split_of = ? AND partition_k = ? "
	               "ORDER BY id DESC LIMIT 1",
	               "ii", split_of, (int64_t)k);
}

rcode
store_run_kept(struct store *s, int64_t run_id, int64_t kept)
{
	return sql_run(s, "UPDATE runs SET kept_count = ? WHERE id = ?", "ii", kept, run_id);
}

rcode
store_sample_record(struct store *s, int64_t run_id, const struct store_sample *e)
{
	return sql_run(s,
	               "INSERT OR REPLACE INTO run_samples (run_id, asked, seed, method, "
	               "population, mongo_n, missing, stale, rate, rate_low, rate_high, index_n, "
	               "orphans, orphan_rate, orphan_low, orphan_high, seconds, note) VALUES (?, "
	               "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	               "iiitniiidddnnddddt", run_id, e->asked, (int64_t)e->seed, e->method,
	               e->population, e->mongo_n, e->missing, e->stale, e->rate, e->rate_low,
	               e->rate_high, e->index_n, e->orphans, e->orphan_rate, e->orphan_low,
	               e->orphan_high, e->seconds, e->note);
}

const char *
store_brake_name(enum delete_brake b)
{
	assert(b >= 0 && b <= BRAKE_HELD);
	return brake_names[b];
}

rcode
store_run_brake(struct store *s, int64_t run_id, enum delete_brake b)
{
	return sql_run(s, "UPDATE runs SET delete_brake = ? WHERE id = ?", "ti",
	               store_brake_name(b), run_id);
}

rcode
store_run_transform_digest(struct store *s, int64_t run_id, const char *digest)
{
	return sql_run(s, "UPDATE runs SET transform_digest = ? WHERE id = ?", "ti", digest,
	               run_id);
}

rcode
store_transform_digest_last(struct store *s, char **out, const char *mirror)
{
	sqlite3_stmt *st;
	rcode rc;
	int step;

	*out = NULL;
	rc = store_sql_prepare(s, &st,
	                       "SELECT transform_digest FROM runs WHERE mirror = ? AND"
	                       " transform_digest IS NOT NULL ORDER BY id DESC LIMIT 1",
	                       "t", mirror ? mirror : "default");
	if (rc)
		return rc;
	step = sqlite3_step(st);
	if (step == SQLITE_ROW && (*out = col_text(st, 0)) == NULL)
		rc = RC_ERR_NOMEM;
	else if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = RC_ERR_STORE;
	sqlite3_finalize(st);
	return rc;
}

/* Held orphan deletes: orphan rows journaled pending, in no batch yet. */
#define HELD_WHERE "run_id = ?1 AND kind = 'orphan' AND status = 'pending' AND batch_no IS NULL"

rcode
store_held_count(struct store *s, int64_t run_id, int64_t *n)
{
	return sql_int(s, n, "SELECT count(*) FROM run_ids WHERE " HELD_WHERE, "i", run_id);
}

rcode
store_held_next(struct store *s, int64_t run_id, int64_t limit,
                int (*fn)(void *ctx, const struct store_drift *d), void *ctx)
{
	sqlite3_stmt *st;
	rcode rc;
	int step;

	rc = store_sql_prepare(
	    s, &st,
	    "SELECT doc_id, id_type, os_index, os_id, routing, reason FROM run_ids"
	    " WHERE " HELD_WHERE " ORDER BY doc_id LIMIT ?2",
	    "ii", run_id, limit);
	if (rc)
		return rc;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *idx = (const char *)sqlite3_column_text(st, 2);
		const char *osid = (const char *)sqlite3_column_text(st, 3);
		const char *rt = (const char *)sqlite3_column_text(st, 4);
		struct store_drift d = {.doc_id = (const char *)sqlite3_column_text(st, 0),
		                        .id_type = (const char *)sqlite3_column_text(st, 1),
		                        .kind = DRIFT_ORPHAN,
		                        .os_index = idx && *idx ? idx : NULL,
		                        .os_id = osid && *osid ? osid : NULL,
		                        .routing = rt && *rt ? rt : NULL,
		                        .reason = (const char *)sqlite3_column_text(st, 5)};
		if (d.doc_id == NULL || d.id_type == NULL) {
			rc = RC_ERR_NOMEM;
			break;
		}
		if (fn(ctx, &d)) {
			rc = RC_ERR_NOMEM;
			break;
		}
	}
	if (rc == RC_OK && step != SQLITE_DONE)
		rc = RC_ERR_STORE;
	sqlite3_finalize(st);
	return rc;
}

rcode
store_held_keep(struct store *s, int64_t run_id, const char *why)
{
	rcode rc = store_tx_begin(s);

	if (rc == RC_OK)
		rc = sql_run(s,
		             "UPDATE run_ids SET status = 'reported', error = ?2 WHERE " HELD_WHERE,
		             "it", run_id, why);
	if (rc == RC_OK)
		rc = store_run_brake(s, run_id, BRAKE_HELD);
	if (rc == RC_OK)
		rc = store_run_recount(s, run_id);
	if (rc == RC_OK)
		return store_tx_commit(s);
	store_tx_rollback(s);
	return rc;
}

rcode
store_run_unsafe_ids(struct store *s, int64_t run_id, int64_t *n)
{
	return sql_int(s, n, "SELECT count(*) FROM errors WHERE run_id = ? AND code = 'id_nul'",
	               "i", run_id);
}

static const char *const run_kind_names[] = {"check", "dry_run", "full",
                                             "ids",   "sample",  "catchup"};
static const char *const run_status_names[] = {"running",     "completed", "failed",
                                               "interrupted", "cancelled", "held"};

static const char *const drift_state_names[] = {"pending", "done", "failed", "reported", "skipped"};
static const char *const batch_state_names[] = {"pending", "committed", "failed"};
static const char *const batch_action_names[] = {
    [BATCH_INDEX] = "index", [BATCH_DELETE] = "delete"};

/* The index of name in a name table of n words; -1 when it is none. */
static int
word_index(const char *const *words, int n, const char *name)
{
	for (int i = 0; name && i < n; i++)
		if (strcmp(name, words[i]) == 0)
			return i;
	return -1;
}

const char *
store_run_kind_name(enum run_kind k)
{
	assert(k >= 0 && (int)k < RUN_KIND_COUNT);
	return run_kind_names[k];
}

bool
store_run_kind_checks(enum run_kind k)
{
	return k == RUN_CHECK || k == RUN_CATCHUP;
}

int
store_run_kind_parse(const char *name, enum run_kind *out)
{
	int i = word_index(run_kind_names, RUN_KIND_COUNT, name);

	if (i < 0)
		return -1;
	*out = (enum run_kind)i;
	return 0;
}

const char *
store_run_status_name(enum run_status st)
{
	assert(st >= 0 && (int)st < RUN_STATUS_COUNT);
	return run_status_names[st];
}

int
store_run_status_parse(const char *name, enum run_status *out)
{
	int i = word_index(run_status_names, RUN_STATUS_COUNT, name);

	if (i < 0)
		return -1;
	*out = (enum run_status)i;
	return 0;
}

bool
store_run_status_unfinished(enum run_status st)
{
	return st == RUN_RUNNING || st == RUN_INTERRUPTED;
}

const char *
store_drift_state_name(enum drift_state st)
{
	assert(st >= 0 && st <= DRIFT_SKIPPED);
	return drift_state_names[st];
}

static const char *
batch_state_name(enum batch_state st)
{
	assert(st >= 0 && st <= BATCH_FAILED);
	return batch_state_names[st];
}

static const char *const drift_kind_names[] = {"missing", "stale", "orphan", "duplicate",
                                               "conflict"};

const char *
store_drift_kind_name(enum drift_kind k)
{
	assert(k >= 0 && k <= DRIFT_CONFLICT);
	return drift_kind_names[k];
}

int
store_drift_kind_parse(const char *name, enum drift_kind *out)
{
	int i = word_index(drift_kind_names, DRIFT_CONFLICT + 1, name);

	if (i < 0)
		return -1;
	*out = (enum drift_kind)i;
	return 0;
}

rcode
store_run_recount(struct store *s, int64_t run_id)
{
	return sql_run(s, "UPDATE runs SET " STORE_RUN_COUNTS_SET("?1") " WHERE id = ?1", "i",
	               run_id);
}

rcode
store_run_recount_due(struct store *s, int64_t run_id)
{
	if (!util_throttle_due(&s->recount))
		return RC_OK;
	int64_t t0 = util_mono_ms();
	rcode rc = store_run_recount(s, run_id);
	util_throttle_done(&s->recount, t0, STORE_RECOUNT_MS, STORE_RECOUNT_SHARE, 0);
	return rc;
}

/* A completed run closes the older unfinished runs of its mirror and kind
 * (a CLI run killed while the service ran others): its pass saw everything
 * they would have, and resuming one later would re-send its old pending
 * batches, deletes included, against a world that has moved on. The caller
 * holds the mirror's lock, so none of them is running anywhere. Only a
 * whole run does: a partition's pass saw its own key range, and the other
 * partitions of its split run are still running (QA25 F2). */
static RC_MUST_CHECK rcode
supersede(struct store *s, int64_t run_id, const char *ts)
{
	char why[64];

	snprintf(why, sizeof(why), "superseded by run %" PRId64, run_id);
	rcode rc = sql_run(s,
	                   "INSERT INTO run_events (run_id, at, event, detail)"
	                   " SELECT id, ?, 'superseded', ? FROM runs WHERE id < ?3"
	                   " AND status IN ('running', 'interrupted')"
	                   " AND mirror = (SELECT mirror FROM runs WHERE id = ?3)"
	                   " AND kind = (SELECT kind FROM runs WHERE id = ?3)"
	                   " AND (SELECT partition_n FROM runs WHERE id = ?3) IS NULL",
	                   "tti", ts, why, run_id);
	if (rc == RC_OK)
		rc = sql_run(
		    s,
		    /* counted now: a run that died was last counted up to a second
		     * before (store_run_recount_due) */
		    "UPDATE runs SET status = 'cancelled', phase = 'done', finished_at = ?1,"
		    " heartbeat_at = ?1, error = ?2, " STORE_RUN_COUNTS_SET(
		        "runs.id") " WHERE id < ?3"
		                   " AND status IN ('running', 'interrupted')"
		                   " AND mirror = (SELECT mirror FROM runs WHERE id = ?3)"
		                   " AND kind = (SELECT kind FROM runs WHERE id = ?3)"
		                   " AND (SELECT partition_n FROM runs WHERE id = ?3) IS NULL",
		    "tti", ts, why, run_id);
	return rc;
}

rcode
store_run_finish(struct store *s, int64_t run_id, enum run_status status, const char *error)
{
	char ts[32], masked[2048];
	rcode rc;
	bool done = !store_run_status_unfinished(status);
	const char *name = store_run_status_name(status);

	now(ts);
	if (error) {
		/* whatever a server said, no password reaches the journal */
		snprintf(masked, sizeof(masked), "%s", error);
		util_mask_secrets(masked, sizeof(masked));
		error = masked;
	}
	rc = store_run_recount(s, run_id);
	if (rc == RC_OK)
		rc = sql_run(s,
		             "UPDATE runs SET status = ?, phase = CASE WHEN ? THEN 'done' ELSE "
		             "phase END, finished_at = ?, heartbeat_at = ?, error = ? WHERE id = ?",
		             "tittti", name, (int64_t)done, done ? ts : NULL, ts, error, run_id);
	if (rc == RC_OK)
		rc = store_event(s, run_id, done ? "finished" : name, error ? error : name);
	if (rc == RC_OK && (status == RUN_COMPLETED || status == RUN_HELD)) /* a whole pass */
		rc = supersede(s, run_id, ts);
	return rc;
}

rcode
store_run_cancel(struct store *s, int64_t run_id, const char *mirror, const char *why,
                 struct rerror *err)
{
	int64_t holder = 0;
	rcode rc;

	if (store_lock(s, &holder, mirror, err) != RC_OK)
		return RC_ERR_BUSY; /* err says who holds it, or why it could not be taken */
	rc = store_run_finish(s, run_id, RUN_CANCELLED, why);
	store_unlock(s);
	return rc;
}

rcode
store_event(struct store *s, int64_t run_id, const char *event, const char *detail)
{
	char ts[32];

	now(ts);
	return sql_run(s, "INSERT INTO run_events (run_id, at, event, detail) VALUES (?, ?, ?, ?)",
	               "ntt"
	               "t",
	               run_id > 0 ? run_id : -1, ts, event, detail);
}

rcode
store_error(struct store *s, int64_t run_id, int64_t batch_no, const char *doc_id,
            const char *phase, const char *source, const char *code, const char *message)
{
	char ts[32], masked[2048];

	now(ts);
	/* whatever a server said, no password reaches the journal */
	snprintf(masked, sizeof(masked), "%s", message ? message : "(no message)");
	util_mask_secrets(masked, sizeof(masked));
	return sql_run(s,
	               "INSERT INTO errors (run_id, batch_no, doc_id, phase, source, code, message,"
	               " at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
	               "nntttttt", run_id > 0 ? run_id : -1, batch_no, doc_id, phase, source, code,
	               masked, ts);
}

/* The mirror of run_id and the newest pass (a completed check or dry run)
 * of that mirror before it, read once per run: one run per mirror at a
 * time, so neither changes while it runs. */
static RC_MUST_CHECK rcode
hist_run(struct store *s, int64_t run_id)
{
	sqlite3_stmt *st = NULL;
	rcode rc;
	int step;

	if (s->hist_run == run_id && s->hist_mirror)
		return RC_OK;
	free(s->hist_mirror);
	s->hist_mirror = NULL;
	s->hist_run = 0;
	rc = store_sql_prepare(
	    s, &st, "SELECT mirror, NOT (" STORE_VERIFYING ") FROM runs WHERE id = ?", "i", run_id);
	if (rc)
		return rc;
	step = sqlite3_step(st);
	if (step == SQLITE_ROW && sqlite3_column_text(st, 0)) {
		s->hist_mirror = strdup((const char *)sqlite3_column_text(st, 0));
		s->hist_off = sqlite3_column_int(st, 1) != 0;
	}
	sqlite3_finalize(st);
	if (step != SQLITE_ROW)
		return step == SQLITE_DONE ? RC_ERR_NOTFOUND : RC_ERR_STORE;
	if (s->hist_mirror == NULL)
		return RC_ERR_NOMEM;
	/* a pass is a run, or the runs of one split run (RECONCILE_PARTITIONS),
	 * named by their first run's id: the previous pass's first run id,
	 * so that a key its partition K saw counts as seen by it (QA25 F12) */
	rc = sql_int(s, &s->hist_prev,
	             "SELECT COALESCE(max(COALESCE(split_of, id)), 0) FROM runs WHERE mirror = ?1"
	             " AND COALESCE(split_of, id) < (SELECT COALESCE(split_of, id) FROM runs"
	             " WHERE id = ?2) AND kind IN " STORE_PASS_KINDS
	             " AND status IN " STORE_PASS_STATUSES,
	             "ti", s->hist_mirror, run_id);
	if (rc == RC_OK)
		s->hist_run = run_id;
	return rc;
}

/* A new drift row: its id's history says it was seen (see the top of
 * migrations/0007_drift_history.sql for streak, return and recurring). */
static RC_MUST_CHECK rcode
hist_seen(struct store *s, int64_t run_id, const struct store_drift *d)
{
	char ts[32];
	rcode rc = hist_run(s, run_id);

	if (rc || s->hist_off)
		return rc;
	now(ts);
	return sql_run(
	    s,
	    "INSERT INTO drift_history (mirror, kind, doc_id, id_type, os_index, os_id, routing,"
	    " first_run, first_seen_at, last_run, last_seen_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8, ?9)"
	    " ON CONFLICT (mirror, kind, doc_id, id_type, os_index, os_id, routing) DO UPDATE SET"
	    " times_seen = times_seen + 1,"
	    " streak = CASE WHEN last_run >= ?10 THEN streak + 1 ELSE 1 END,"
	    " returns = returns + (repaired_run IS NOT NULL AND repaired_run >= last_run),"
	    " recurring_run = COALESCE(recurring_run, CASE WHEN (last_run >= ?10 AND"
	    "  streak + 1 >= ?11) OR (repaired_run IS NOT NULL AND repaired_run >= last_run)"
	    "  THEN ?8 END),"
	    " last_run = ?8, last_seen_at = ?9"
	    " WHERE last_run < ?8",
	    "tttttttitii", s->hist_mirror, store_drift_kind_name(d->kind), d->doc_id, d->id_type,
	    d->os_index ? d->os_index : "", d->os_id ? d->os_id : "", d->routing ? d->routing : "",
	    run_id, ts, s->hist_prev, (int64_t)STORE_RECURRING_STREAK);
}

/* A drift row repaired: its id's history names the run (once per run). */
static RC_MUST_CHECK rcode
hist_repaired(struct store *s, int64_t run_id, const struct store_drift *d)
{
	char ts[32];
	rcode rc = hist_run(s, run_id);

	if (rc || s->hist_off)
		return rc;
	now(ts);
	return sql_run(
	    s,
	    "UPDATE drift_history SET repairs = repairs + (repaired_run IS NOT ?1),"
	    " repaired_at = CASE WHEN repaired_run IS ?1 THEN repaired_at ELSE ?2 END,"
	    " repaired_run = ?1"
	    " WHERE mirror = ?3 AND kind = ?4 AND doc_id = ?5 AND id_type = ?6 AND os_index = ?7"
	    " AND os_id = ?8 AND routing = ?9",
	    "itttttttt", run_id, ts, s->hist_mirror, store_drift_kind_name(d->kind), d->doc_id,
	    d->id_type, d->os_index ? d->os_index : "", d->os_id ? d->os_id : "",
	    d->routing ? d->routing : "");
}

/* A transaction around a few writes, unless the caller holds one. */
static RC_MUST_CHECK rcode
tx_maybe_begin(struct store *s, bool *began)
{
	*began = sqlite3_get_autocommit(s->db) != 0;
	return *began ? store_tx_begin(s) : RC_OK;
}

static RC_MUST_CHECK rcode
tx_maybe_end(struct store *s, bool began, rcode rc)
{
	if (!began)
		return rc;
	if (rc == RC_OK)
		return store_tx_commit(s);
	store_tx_rollback(s);
	return rc;
}

rcode
store_drift_add(struct store *s, int64_t run_id, const struct store_drift *d, int64_t batch_no,
                enum drift_state state, const char *error, bool *added)
{
	bool began, is_new = false;
	rcode rc = tx_maybe_begin(s, &began);

	if (rc == RC_OK)
		rc = sql_run(
		    s,
		    "INSERT OR IGNORE INTO run_ids (run_id, doc_id, id_type, kind, os_index,"
		    " os_id, routing, batch_no, status, error, reason)"
		    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		    "ittttttnttt", run_id, d->doc_id, d->id_type, store_drift_kind_name(d->kind),
		    d->os_index ? d->os_index : "", d->os_id ? d->os_id : "",
		    d->routing ? d->routing : "", batch_no, store_drift_state_name(state), error,
		    d->reason);
	is_new = rc == RC_OK && sqlite3_changes(s->db) > 0;
	if (is_new)
		rc = hist_seen(s, run_id, d);
	rc = tx_maybe_end(s, began, rc);
	if (added)
		*added = rc == RC_OK && is_new;
	return rc;
}

rcode
store_drift_set(struct store *s, int64_t run_id, const struct store_drift *d,
                enum drift_state state, const char *error)
{
	bool began;
	rcode rc = tx_maybe_begin(s, &began);

	if (rc == RC_OK)
		rc = sql_run(
		    s,
		    "UPDATE run_ids SET status = ?, error = ? WHERE run_id = ? AND kind = ? AND"
		    " doc_id = ? AND id_type = ? AND os_index = ? AND os_id = ? AND routing = ?",
		    "ttitttttt", store_drift_state_name(state), error, run_id,
		    store_drift_kind_name(d->kind), d->doc_id, d->id_type,
		    d->os_index ? d->os_index : "", d->os_id ? d->os_id : "",
		    d->routing ? d->routing : "");
	if (rc == RC_OK && state == DRIFT_DONE && sqlite3_changes(s->db) > 0)
		rc = hist_repaired(s, run_id, d);
	return tx_maybe_end(s, began, rc);
}

rcode
store_drift_assign(struct store *s, int64_t run_id, const struct store_drift *d, int64_t batch_no)
{
	return sql_run(s,
	               "UPDATE run_ids SET batch_no = ?, status = 'pending', error = NULL WHERE"
	               " run_id = ? AND kind = ? AND doc_id = ? AND id_type = ? AND os_index = ?"
	               " AND os_id = ? AND routing = ?",
	               "iitttttt", batch_no, run_id, store_drift_kind_name(d->kind), d->doc_id,
	               d->id_type, d->os_index ? d->os_index : "", d->os_id ? d->os_id : "",
	               d->routing ? d->routing : "");
}

/* Ends a commit transaction: the run's counters recounted, then commit,
 * or everything rolled back when any step failed. */
static RC_MUST_CHECK rcode
tx_end(struct store *s, int64_t run_id, rcode rc)
{
	if (rc == RC_OK)
		rc = store_run_recount_due(s, run_id);
	if (rc == RC_OK)
		rc = store_tx_commit(s);
	if (rc)
		store_tx_rollback(s);
	return rc;
}

rcode
store_drift_record(struct store *s, int64_t run_id, const struct store_drift_row *rows, size_t n)
{
	rcode rc = store_tx_begin(s);

	for (size_t i = 0; rc == RC_OK && i < n; i++) {
		const struct store_drift *d = &rows[i].d;
		bool added = false;
		rc = store_drift_add(s, run_id, d, -1, rows[i].state, rows[i].error, &added);
		if (rc == RC_OK && added && rows[i].fields)
			rc = sql_run(
			    s,
			    "UPDATE run_ids SET fields = ? WHERE run_id = ? AND kind = ? AND"
			    " doc_id = ? AND id_type = ? AND os_index = ? AND os_id = ? AND"
			    " routing = ?",
			    "titttttt", rows[i].fields, run_id, store_drift_kind_name(d->kind),
			    d->doc_id, d->id_type, d->os_index ? d->os_index : "",
			    d->os_id ? d->os_id : "", d->routing ? d->routing : "");
	}
	return tx_end(s, run_id, rc);
}

rcode
store_batch_open(struct store *s, int64_t run_id, int64_t *batch_no, enum batch_action action,
                 int64_t docs, int64_t bytes, const char *first_id, const char *last_id,
                 const struct store_drift *rows, size_t n)
{
	rcode rc = store_tx_begin(s);

	if (rc == RC_OK && *batch_no <= 0)
		rc = store_batch_next_no(s, run_id, batch_no);
	if (rc == RC_OK)
		rc = store_batch_add(s, run_id, *batch_no, action, docs, bytes, first_id, last_id);
	for (size_t i = 0; rc == RC_OK && i < n; i++)
		rc = store_drift_assign(s, run_id, &rows[i], *batch_no);
	if (rc == RC_OK)
		rc = store_tx_commit(s);
	if (rc)
		store_tx_rollback(s);
	return rc;
}

rcode
store_batch_close(struct store *s, int64_t run_id, int64_t batch_no, const struct store_outcome *o,
                  size_t n, int64_t attempts, int64_t took_ms, const struct store_cursor *cursor)
{
	int64_t ok = 0, failed = 0, newer = 0;
	rcode rc = store_tx_begin(s);

	for (size_t i = 0; rc == RC_OK && i < n; i++) {
		char why[1100];
		if (o[i].ok) {
			ok++;
		} else if (o[i].newer) {
			/* not repaired, not failed: the index holds a newer version */
			newer++;
			snprintf(why, sizeof(why),
			         "skipped_newer: the index holds a newer version (%s)",
			         o[i].reason ? o[i].reason : "version conflict");
			if (o[i].d)
				rc = store_drift_set(s, run_id, o[i].d, DRIFT_SKIPPED, why);
			continue;
		} else {
			failed++;
		}
		if (o[i].d)
			rc = store_drift_set(s, run_id, o[i].d, o[i].ok ? DRIFT_DONE : DRIFT_FAILED,
			                     o[i].ok ? NULL : o[i].reason);
		if (rc == RC_OK && !o[i].ok) {
			char msg[1100];
			snprintf(msg, sizeof(msg), "HTTP %d: %s", o[i].status,
			         o[i].reason ? o[i].reason : "rejected");
			rc = store_error(s, run_id, batch_no, o[i].doc_id, "repair", "opensearch",
			                 "rejected", msg);
		}
	}
	if (rc == RC_OK)
		rc = store_batch_commit(s, run_id, batch_no, BATCH_COMMITTED, ok, failed, attempts,
		                        took_ms);
	if (rc == RC_OK)
		rc = sql_run(
		    s, "UPDATE batches SET skipped_newer = ? WHERE run_id = ? AND batch_no = ?",
		    "iii", newer, run_id, batch_no);
	if (rc == RC_OK && cursor)
		rc = store_run_cursor(s, run_id, cursor->type, cursor->id, cursor->seen_types,
		                      cursor->compared, NULL);
	return tx_end(s, run_id, rc);
}

rcode
store_batch_next_no(struct store *s, int64_t run_id, int64_t *batch_no)
{
	rcode rc =
	    sql_int(s, batch_no, "SELECT COALESCE(MAX(batch_no), 0) FROM batches WHERE run_id = ?",
	            "i", run_id);
	*batch_no += 1;
	return rc;
}

rcode
store_batch_add(struct store *s, int64_t run_id, int64_t batch_no, enum batch_action action,
                int64_t docs, int64_t bytes, const char *first_id, const char *last_id)
{
	char ts[32];

	now(ts);
	return sql_run(s,
	               "INSERT INTO batches (run_id, batch_no, action, docs, bytes, first_id,"
	               " last_id, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
	               " ON CONFLICT (run_id, batch_no) DO UPDATE SET docs = excluded.docs,"
	               " bytes = excluded.bytes, first_id = excluded.first_id,"
	               " last_id = excluded.last_id, status = 'pending'",
	               "iitiittt", run_id, batch_no, batch_action_names[action], docs, bytes,
	               first_id, last_id, ts);
}

rcode
store_batch_commit(struct store *s, int64_t run_id, int64_t batch_no, enum batch_state state,
                   int64_t ok, int64_t failed, int64_t attempts, int64_t took_ms)
{
	char ts[32];

	now(ts);
	return sql_run(s,
	               "UPDATE batches SET status = ?, ok = ?, failed = ?, attempts = attempts + ?,"
	               " took_ms = ?, committed_at = ? WHERE run_id = ? AND batch_no = ?",
	               "tiiiitii", batch_state_name(state), ok, failed, attempts, took_ms, ts,
	               run_id, batch_no);
}

rcode
store_batches_pending(struct store *s, int64_t run_id, struct store_pending **out, size_t *n)
{
	sqlite3_stmt *st;
	struct store_pending *v = NULL;
	size_t count = 0, cap = 0;
	rcode rc;
	int step;

	*out = NULL;
	*n = 0;
	rc = store_sql_prepare(s, &st,
	                       "SELECT batch_no, action FROM batches WHERE run_id = ? AND status ="
	                       " 'pending' ORDER BY batch_no",
	                       "i", run_id);
	if (rc)
		return rc;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			struct store_pending *nv = realloc(v, cap * sizeof(*v));
			if (nv == NULL) {
				rc = RC_ERR_NOMEM;
				break;
			}
			v = nv;
		}
		int action = word_index(batch_action_names, (int)BATCH_DELETE + 1,
		                        (const char *)sqlite3_column_text(st, 1));
		if (action < 0) { /* the CHECK constraint makes this a journal we do not know */
			rc = RC_ERR_STORE;
			break;
		}
		v[count].batch_no = sqlite3_column_int64(st, 0);
		v[count].action = (enum batch_action)action;
		count++;
	}
	if (rc == RC_OK && step != SQLITE_DONE)
		rc = RC_ERR_STORE;
	sqlite3_finalize(st);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n = count;
	return RC_OK;
}

rcode
store_batch_ids(struct store *s, int64_t run_id, int64_t batch_no,
                int (*fn)(void *ctx, const struct store_drift *d), void *ctx)
{
	sqlite3_stmt *st;
	rcode rc;
	int step;

	rc = store_sql_prepare(
	    s, &st,
	    "SELECT doc_id, id_type, kind, os_index, routing, os_id, reason FROM run_ids WHERE"
	    " run_id = ? AND batch_no = ? ORDER BY doc_id",
	    "ii", run_id, batch_no);
	if (rc)
		return rc;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *os_index = (const char *)sqlite3_column_text(st, 3);
		const char *os_id = (const char *)sqlite3_column_text(st, 5);
		const char *routing = (const char *)sqlite3_column_text(st, 4);
		struct store_drift d = {
		    .doc_id = (const char *)sqlite3_column_text(st, 0),
		    .id_type = (const char *)sqlite3_column_text(st, 1),
		    .os_index = os_index && *os_index ? os_index : NULL,
		    .routing = routing && *routing ? routing : NULL,
		    .os_id = os_id && *os_id ? os_id : NULL,
		    .reason = (const char *)sqlite3_column_text(st, 6),
		};
		if (store_drift_kind_parse((const char *)sqlite3_column_text(st, 2), &d.kind)) {
			rc = RC_ERR_STORE; /* a CHECK constraint makes this unreachable */
			break;
		}
		if (fn(ctx, &d))
			break;
	}
	if (rc == RC_OK && step != SQLITE_DONE && step != SQLITE_ROW)
		rc = RC_ERR_STORE;
	sqlite3_finalize(st);
	return rc;
}

rcode
store_ping(struct store *s)
{
	int64_t v;

	return sql_int(s, &v, "SELECT count(*) FROM schema_migrations", "");
}

/* ---- live sync: the streams' places and their gaps (migration 0014) ---- */

static const char *const gap_reason_names[] = {"first_start", "history_lost", "invalidate",
                                               "event_too_large", "index_lost"};

const char *
store_gap_reason_name(enum stream_gap_reason r)
{
	return (unsigned)r < sizeof(gap_reason_names) / sizeof(gap_reason_names[0])
	           ? gap_reason_names[r]
	           : "?";
}

void
store_stream_clear(struct store_stream *st)
{
	if (st == NULL)
		return;
	free(st->token);
	free(st->cluster_time);
	free(st->target);
	*st = (struct store_stream){0};
}

rcode
store_stream_get(struct store *s, struct store_stream *out, const char *mirror)
{
	static const char sql[] =
	    "SELECT token, cluster_time, cluster_ts, events_applied, events_failed, batches, gaps, "
	    "(SELECT count(*) FROM stream_gaps g WHERE g.mirror = ?1 AND g.closed_at IS NULL), "
	    "target FROM streams WHERE mirror = ?1";
	sqlite3_stmt *st;
	rcode rc;
	int step;

	*out = (struct store_stream){0};
	if ((rc = stmt_take(s, &st, sql)))
		return rc;
	if (sqlite3_bind_text(st, 1, mirror, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		stmt_give(s, sql, st);
		return RC_ERR_STORE;
	}
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		out->token = col_text(st, 0);
		out->cluster_time = col_text(st, 1);
		out->cluster_ts = sqlite3_column_int64(st, 2);
		out->events_applied = sqlite3_column_int64(st, 3);
		out->events_failed = sqlite3_column_int64(st, 4);
		out->batches = sqlite3_column_int64(st, 5);
		out->gaps = sqlite3_column_int64(st, 6);
		out->open_gaps = sqlite3_column_int64(st, 7);
		out->target = col_text(st, 8);
		if ((sqlite3_column_type(st, 0) != SQLITE_NULL && out->token == NULL) ||
		    (sqlite3_column_type(st, 1) != SQLITE_NULL && out->cluster_time == NULL) ||
		    (sqlite3_column_type(st, 8) != SQLITE_NULL && out->target == NULL))
			rc = RC_ERR_NOMEM;
	} else if (step != SQLITE_DONE) {
		log_db_error(s, "cannot read a stream's place");
		rc = RC_ERR_STORE;
	}
	stmt_give(s, sql, st);
	if (rc)
		store_stream_clear(out);
	return rc;
}

/* The mirror's row, made if it has none (inside a transaction). */
static RC_MUST_CHECK rcode
stream_row(struct store *s, const char *mirror, const char *ts)
{
	return sql_run(s,
	               "INSERT INTO streams (mirror, started_at, updated_at) VALUES (?, ?, ?) "
	               "ON CONFLICT (mirror) DO NOTHING",
	               "ttt", mirror, ts, ts);
}

rcode
store_stream_commit(struct store *s, const char *mirror, const char *token,
                    const char *cluster_time, int64_t cluster_ts, int64_t applied, int64_t failed,
                    const char *last_error)
{
	char ts[32];
	rcode rc;

	now(ts);
	if ((rc = store_tx_begin(s)))
		return rc;
	rc = stream_row(s, mirror, ts);
	if (rc == RC_OK)
		rc = sql_run(
		    s,
		    "UPDATE streams SET token = COALESCE(?, token), "
		    "cluster_time = COALESCE(?, cluster_time), "
		    "cluster_ts = CASE WHEN ? > 0 THEN ? ELSE cluster_ts END, "
		    "events_applied = events_applied + ?, events_failed = events_failed + ?, "
		    "batches = batches + CASE WHEN ? + ? > 0 THEN 1 ELSE 0 END, "
		    "last_error = COALESCE(?, last_error), updated_at = ? WHERE mirror = ?",
		    "ttiiiiiittt", token, cluster_time, cluster_ts, cluster_ts, applied, failed,
		    applied, failed, last_error, ts, mirror);
	if (rc) {
		store_tx_rollback(s);
		return rc;
	}
	return store_tx_commit(s);
}

rcode
store_stream_gap(struct store *s, int64_t *gap_id, const char *mirror,
                 enum stream_gap_reason reason, const char *detail)
{
	char ts[32];
	rcode rc;

	*gap_id = 0;
	now(ts);
	if ((rc = store_tx_begin(s)))
		return rc;
	rc = stream_row(s, mirror, ts);
	if (rc == RC_OK)
		rc = sql_run(
		    s,
		    "INSERT INTO stream_gaps (mirror, reason, detail, lost_from, lost_from_ts, "
		    "reopened_at) SELECT mirror, ?1, ?2, "
		    /* a lost index lost every change before: from the beginning */
		    "CASE WHEN ?1 = 'index_lost' THEN NULL ELSE cluster_time END, "
		    "CASE WHEN ?1 = 'index_lost' THEN NULL ELSE cluster_ts END, ?3 FROM "
		    "streams WHERE mirror = ?4",
		    "tttt", store_gap_reason_name(reason), detail, ts, mirror);
	if (rc == RC_OK)
		*gap_id = sqlite3_last_insert_rowid(s->db);
	if (rc == RC_OK)
		rc = sql_run(s,
		             "UPDATE streams SET token = NULL, gaps = gaps + 1, updated_at = ? "
		             "WHERE mirror = ?",
		             "tt", ts, mirror);
	if (rc) {
		*gap_id = 0;
		store_tx_rollback(s);
		return rc;
	}
	return store_tx_commit(s);
}

rcode
store_stream_gaps_caught(struct store *s, const char *mirror, int64_t gap_max, int64_t run_id,
                         bool closed)
{
	char ts[32];

	now(ts);
	return sql_run(s,
	               "UPDATE stream_gaps SET catchup_run_id = ?, closed_at = ? "
	               "WHERE mirror = ? AND id <= ? AND closed_at IS NULL",
	               "ntti", run_id > 0 ? run_id : -1, closed ? ts : NULL, mirror, gap_max);
}

void
store_stream_gaps_free(struct store_gap *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].reason);
		free(v[i].detail);
		free(v[i].lost_from);
		free(v[i].reopened_at);
		free(v[i].closed_at);
	}
	free(v);
}

rcode
store_stream_gaps_list(struct store *s, struct store_gap **out, size_t *n, const char *mirror,
                       int64_t limit)
{
	/* open gaps first (they matter), newest first */
	static const char sql[] =
	    "SELECT id, reason, detail, lost_from, reopened_at, catchup_run_id, closed_at "
	    "FROM stream_gaps WHERE mirror = ?1 "
	    "ORDER BY closed_at IS NOT NULL, id DESC LIMIT ?2";
	struct store_gap *v = NULL;
	size_t cap = 0;
	sqlite3_stmt *st;
	rcode rc;
	int step = SQLITE_DONE;

	*out = NULL;
	*n = 0;
	if ((rc = stmt_take(s, &st, sql)))
		return rc;
	if (sqlite3_bind_text(st, 1, mirror, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, limit) != SQLITE_OK) {
		stmt_give(s, sql, st);
		return RC_ERR_STORE;
	}
	while (rc == RC_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			size_t c = cap ? cap * 2 : 8;
			struct store_gap *p = realloc(v, c * sizeof(*v));
			if (p == NULL) {
				rc = RC_ERR_NOMEM;
				break;
			}
			v = p;
			cap = c;
		}
		struct store_gap *g = &v[(*n)++];
		*g = (struct store_gap){.id = sqlite3_column_int64(st, 0),
		                        .reason = col_text(st, 1),
		                        .detail = col_text(st, 2),
		                        .lost_from = col_text(st, 3),
		                        .reopened_at = col_text(st, 4),
		                        .catchup_run_id = sqlite3_column_int64(st, 5),
		                        .closed_at = col_text(st, 6)};
		if (g->reason == NULL || g->reopened_at == NULL)
			rc = RC_ERR_NOMEM;
	}
	if (rc == RC_OK && step != SQLITE_DONE) {
		log_db_error(s, "cannot read a stream's gaps");
		rc = RC_ERR_STORE;
	}
	stmt_give(s, sql, st);
	if (rc) {
		store_stream_gaps_free(v, *n);
		*n = 0;
		return rc;
	}
	*out = v;
	return RC_OK;
}

rcode
store_stream_set_target(struct store *s, const char *mirror, const char *target)
{
	char ts[32];
	rcode rc;

	now(ts);
	if ((rc = store_tx_begin(s)))
		return rc;
	rc = stream_row(s, mirror, ts);
	if (rc == RC_OK)
		rc = sql_run(s, "UPDATE streams SET target = ? WHERE mirror = ?", "tt", target,
		             mirror);
	if (rc) {
		store_tx_rollback(s);
		return rc;
	}
	return store_tx_commit(s);
}

rcode
store_stream_gaps_checked(struct store *s, int64_t *closed, const char *mirror)
{
	/* the first such run closes the gap: the earliest proof (a whole
	 * check or a catch-up: both compare the whole mirror; or a split run
	 * of one process, by its partition 0's run, once every partition of
	 * it completed; a partition alone covers its key range only: QA25
	 * F13) */
#define COVERING                                                                                   \
	"FROM runs r WHERE r.mirror = stream_gaps.mirror AND r.kind IN ('check', 'catchup') AND "  \
	"r.status = 'completed' AND r.started_at >= stream_gaps.reopened_at AND "                  \
	"(r.partition_n IS NULL OR (r.split_of = r.id AND (SELECT count(DISTINCT x.partition_k) "  \
	"FROM runs x WHERE x.split_of = r.id AND x.status = 'completed') = r.partition_n))"
	static const char sql[] =
	    "UPDATE stream_gaps SET catchup_run_id = (SELECT min(r.id) " COVERING
	    "), closed_at = ? WHERE mirror = ? AND closed_at IS NULL AND "
	    "EXISTS (SELECT 1 " COVERING ")";
#undef COVERING
	char ts[32];
	rcode rc;

	*closed = 0;
	now(ts);
	if ((rc = sql_run(s, sql, "tt", ts, mirror)))
		return rc;
	*closed = sqlite3_changes(s->db);
	return RC_OK;
}

rcode
store_stream_gap_open(struct store *s, int64_t *gap_id, const char *mirror)
{
	return sql_int(s, gap_id,
	               "SELECT COALESCE(MAX(id), 0) FROM stream_gaps WHERE mirror = ? AND "
	               "closed_at IS NULL",
	               "t", mirror);
}
