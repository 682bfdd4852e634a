/*
 * lease.c: one run per mirror wherever it was started.
 *
 * The journal lock (store.c) keeps two runs of a mirror apart only when
 * they share a journal file; two working directories (STATE_DB is relative
 * by default) or two hosts do not. What both always share is the mirror's
 * OpenSearch, so a run holds a lease there: a document in
 * RECONCILE_LEASE_INDEX whose _id is what the run writes (lease_id: the
 * concrete index, an alias resolved to its write index, and the MongoDB
 * database.collection), holding its owner, heartbeat and expiry.
 *
 * - Taking it: `_create` (op_type create: only one process can); on 409 the
 *   holder's document is read, and taken over with a conditional write
 *   (if_seq_no / if_primary_term of that read: of two contenders one wins)
 *   only when it expired, or when its holder is provably gone: the same
 *   host, boot and pid namespace, and the pid no longer exists (a kill -9
 *   on this host, then a restart, does not wait out the lease), or it is
 *   this very process's and no run of it holds it (a release that could
 *   not reach OpenSearch). A live holder: RC_ERR_BUSY naming it.
 * - Keeping it: a thread renews it every TTL/3, conditionally on its own
 *   last write; a 409 means another process took it over. One that could
 *   not renew for 2/3 TTL (OpenSearch unreachable from here) stops the run
 *   (interrupted), leaving the last third for the run's in-flight batch to
 *   end before anyone may take the lease over.
 * - Giving it back: a conditional delete when the run ends, however it
 *   ends (a kill -9 leaves it to expire, or to the "gone" rule above).
 *
 * Time is the wall clock of the hosts (epoch ms): the holder writes
 * expires_at with its clock, a contender compares it with its own. A
 * renewed lease has at least 2/3 TTL left, so clocks that differ by less
 * than that (NTP keeps them within milliseconds) never let a live lease be
 * taken; the holder's own deadline is measured on the monotonic clock.
 *
 * Every request goes through opensearch_request on a connection of the
 * lease's own (the heartbeat thread's), with a timeout of at most TTL/3.
 * None asks for a refresh: a GET by id and the seq_no conditions see the
 * latest write at once (realtime), and a refresh would delay the start of
 * every run for what only a _search of the lease index would see sooner.
 */
#include "lease.h"
#include "log.h"
#include "opensearch.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

/* OpenSearch's longest _id, in bytes. */
#define LEASE_ID_MAX 512
/* Takings of a lease that changes hands while we look, before giving up. */
#define LEASE_ATTEMPTS 5

struct lease {
	void (*on_lost)(void *ctx); /* the run stops itself (run.c) */
	void *on_lost_ctx;
	char *mirror, *index, *id;  /* index: RECONCILE_LEASE_INDEX */
	char *path_doc, *path_make; /* "/INDEX/_doc/ID", "/INDEX/_create/ID" */
	char *journal;
	const char *part; /* lease_acquire_part's "K/N" while naming it (NULL: whole) */
	int64_t ttl_ms;
	bool busy;             /* the last try met a busy cluster (429, 5xx): wait, try again */
	struct opensearch *os; /* the taker's, then the heartbeat thread's */
	struct lease_doc mine; /* what was last written; seq_no, primary_term */
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t wake;
	bool stopping, renew_now;
	int64_t run_id;
	int64_t deadline_mono; /* not renewed by then: lost */
	bool lost;
	rcode lost_rc;
	char lost_msg[512];
	struct lease *next; /* the registry: leases this process holds */
};

/* Leases this process holds (lease_judge's held_here), and one taking at a
 * time, so two runs of this process never both judge the other's lease
 * gone (the registry is up to date whenever a taking looks). */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t taking_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lease *registry;

/* ---- pure parts (tests/unit/test_lease.c) ---- */

rcode
lease_id(char **out, const char *index, const char *database, const char *collection,
         struct rerror *err)
{
	size_t n = strlen(index) + strlen(database) + strlen(collection) + 3;

	*out = NULL;
	if (n - 1 > LEASE_ID_MAX)
		return rerror_set(
		    err, RC_ERR_INVALID,
		    "the lease id (index/database.collection) would be %zu bytes, past "
		    "OpenSearch's %d: %.100s/%.64s.%.100s",
		    n - 1, LEASE_ID_MAX, index, database, collection);
	if ((*out = malloc(n)) == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	snprintf(*out, n, "%s/%s.%s", index, database, collection);
	return RC_OK;
}

rcode
lease_escape(char **out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *p;

	*out = p = malloc(strlen(s) * 3 + 1);
	if (p == NULL)
		return RC_ERR_NOMEM;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return RC_OK;
}

static void
copy_text(char *dst, size_t len, const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	snprintf(dst, len, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static bool
get_i64(int64_t *out, const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(v))
		return false;
	*out = (int64_t)v->valuedouble;
	return true;
}

rcode
lease_doc_parse(struct lease_doc *d, const char *json)
{
	cJSON *j = cJSON_Parse(json);
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, "_source");
	rcode rc = RC_ERR_INVALID;

	memset(d, 0, sizeof(*d));
	if (!cJSON_IsObject(src) || !get_i64(&d->seq_no, j, "_seq_no") ||
	    !get_i64(&d->primary_term, j, "_primary_term") ||
	    !get_i64(&d->expires_at, src, "expires_at"))
		goto out;
	copy_text(d->owner, sizeof(d->owner), src, "owner");
	copy_text(d->host, sizeof(d->host), src, "host");
	copy_text(d->boot_id, sizeof(d->boot_id), src, "boot_id");
	copy_text(d->pid_ns, sizeof(d->pid_ns), src, "pid_ns");
	copy_text(d->mirror, sizeof(d->mirror), src, "mirror");
	copy_text(d->journal, sizeof(d->journal), src, "journal");
	(void)get_i64(&d->pid, src, "pid");
	(void)get_i64(&d->run_id, src, "run_id");
	(void)get_i64(&d->heartbeat_at, src, "heartbeat_at");
	(void)get_i64(&d->ttl_ms, src, "ttl_ms");
	rc = RC_OK;
out:
	cJSON_Delete(j);
	return rc;
}

enum lease_verdict
lease_judge(const struct lease_doc *d, int64_t now_ms, const struct lease_self *self,
            bool held_here, bool (*pid_alive)(int64_t pid))
{
	if (held_here)
		return LEASE_HELD; /* a run of this process holds it */
	if (d->expires_at <= now_ms)
		return LEASE_EXPIRED;
	/* a pid means a process only on one boot of one host, in one pid
	 * namespace; anywhere else the holder's fate is unknown: wait */
	if (self == NULL || d->pid <= 0 || !*self->boot_id || !*self->pid_ns ||
	    strcmp(d->host, self->host) || strcmp(d->boot_id, self->boot_id) ||
	    strcmp(d->pid_ns, self->pid_ns))
		return LEASE_HELD;
	if (d->pid == self->pid)
		return LEASE_GONE; /* this process's, and none of its runs holds it */
	return pid_alive(d->pid) ? LEASE_HELD : LEASE_GONE;
}

void
lease_held_message(char *out, size_t len, const char *mirror, const struct lease_doc *d,
                   int64_t now_ms, const char *lease_index, const char *id)
{
	char run[48] = "its run not begun yet";
	int64_t left = d->expires_at - now_ms;

	if (d->run_id > 0)
		snprintf(run, sizeof(run), "run %" PRId64, d->run_id);
	snprintf(out, len,
	         "mirror %s is running in another process: %s (journal %s), %s, lease expires in "
	         "%" PRId64 " s (lease %s/%s; docs/ENGINE.md#one-run-per-mirror-the-lease)",
	         mirror, *d->owner ? d->owner : "unknown", *d->journal ? d->journal : "unknown",
	         run, left > 0 ? (left + 999) / 1000 : 0, lease_index, id);
}

/* ---- who this process is ---- */

static struct lease_self self;
static char self_host[96], self_boot[48], self_ns[48];
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static void
self_init(void)
{
	FILE *f;
	ssize_t n;

	if (gethostname(self_host, sizeof(self_host) - 1))
		snprintf(self_host, sizeof(self_host), "unknown");
	if ((f = fopen("/proc/sys/kernel/random/boot_id", "r")) != NULL) {
		if (fgets(self_boot, sizeof(self_boot), f) == NULL)
			self_boot[0] = '\0';
		self_boot[strcspn(self_boot, "\n")] = '\0';
		fclose(f);
	}
	n = readlink("/proc/self/ns/pid", self_ns, sizeof(self_ns) - 1);
	self_ns[n > 0 ? n : 0] = '\0';
	self = (struct lease_self){self_host, self_boot, self_ns, 0};
}

static bool
pid_alive(int64_t pid)
{
	if (pid <= 0 || pid > INT_MAX)
		return true; /* not a pid of ours to judge */
	return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

static bool
held_here(const char *owner)
{
	bool found = false;

	pthread_mutex_lock(&registry_mu);
	for (struct lease *l = registry; l && !found; l = l->next)
		found = strcmp(l->mine.owner, owner) == 0;
	pthread_mutex_unlock(&registry_mu);
	return found;
}

static void
registry_remove(struct lease *l)
{
	pthread_mutex_lock(&registry_mu);
	for (struct lease **p = &registry; *p; p = &(*p)->next) {
		if (*p == l) {
			*p = l->next;
			break;
		}
	}
	pthread_mutex_unlock(&registry_mu);
}

/* ---- requests ---- */

/* OpenSearch's reason in an error answer, else its first bytes. */
static void
reason_of(const struct buf *resp, char *out, size_t len)
{
	cJSON *j = resp->data ? cJSON_Parse(resp->data) : NULL;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "type");
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "reason");

	if (cJSON_IsString(r))
		snprintf(out, len, "%s: %s", cJSON_IsString(t) ? t->valuestring : "error",
		         r->valuestring);
	else
		snprintf(out, len, "%.200s", resp->data ? resp->data : "(no body)");
	cJSON_Delete(j);
}

/* The lease body for now, with l->mine's identity. */
static RC_MUST_CHECK rcode
make_body(struct lease *l, char **out, int64_t run_id)
{
	cJSON *o = cJSON_CreateObject();
	int64_t now = util_now_ms();

	*out = NULL;
	if (o == NULL)
		return RC_ERR_NOMEM;
	cJSON_AddStringToObject(o, "owner", l->mine.owner);
	cJSON_AddStringToObject(o, "host", l->mine.host);
	cJSON_AddStringToObject(o, "boot_id", l->mine.boot_id);
	cJSON_AddStringToObject(o, "pid_ns", l->mine.pid_ns);
	cJSON_AddNumberToObject(o, "pid", (double)l->mine.pid);
	cJSON_AddStringToObject(o, "mirror", l->mirror);
	cJSON_AddStringToObject(o, "journal", l->journal);
	cJSON_AddNumberToObject(o, "run_id", (double)run_id);
	cJSON_AddNumberToObject(o, "heartbeat_at", (double)now);
	cJSON_AddNumberToObject(o, "expires_at", (double)(now + l->ttl_ms));
	cJSON_AddNumberToObject(o, "ttl_ms", (double)l->ttl_ms);
	*out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (*out == NULL)
		return RC_ERR_NOMEM;
	l->mine.heartbeat_at = now;
	l->mine.expires_at = now + l->ttl_ms;
	return RC_OK;
}

/* The _seq_no and _primary_term of a write's answer into l->mine. */
static bool
take_seq(struct lease *l, const struct buf *resp)
{
	cJSON *j = cJSON_Parse(resp->data ? resp->data : "");
	int64_t s, t;
	bool ok = get_i64(&s, j, "_seq_no") && get_i64(&t, j, "_primary_term");

	if (ok) {
		l->mine.seq_no = s;
		l->mine.primary_term = t;
	}
	cJSON_Delete(j);
	return ok;
}

/* PUT or DELETE of the lease conditional on l->mine's seq_no. */
static RC_MUST_CHECK rcode
conditional(struct lease *l, long *status, struct buf *resp, const char *method, const char *body,
            int64_t seq_no, int64_t primary_term, struct rerror *err)
{
	char path[2400];

	snprintf(path, sizeof(path), "%s?if_seq_no=%" PRId64 "&if_primary_term=%" PRId64,
	         l->path_doc, seq_no, primary_term);
	buf_reset(resp);
	return opensearch_request(l->os, status, resp, method, path, body, body ? strlen(body) : 0,
	                          err);
}

/* The lease index with one shard and no replica beyond a second node: for
 * a cluster that does not create indices on the first write. */
static RC_MUST_CHECK rcode
create_index(struct lease *l, struct rerror *err)
{
	static const char body[] =
	    "{\"settings\":{\"number_of_shards\":1,\"auto_expand_replicas\":\"0-1\"},"
	    "\"mappings\":{\"properties\":{\"owner\":{\"type\":\"keyword\"},"
	    "\"mirror\":{\"type\":\"keyword\"},\"expires_at\":{\"type\":\"date\","
	    "\"format\":\"epoch_millis\"},\"heartbeat_at\":{\"type\":\"date\","
	    "\"format\":\"epoch_millis\"}}}}";
	struct buf resp = {0};
	char path[800], why[300];
	long status = 0;
	char *esc = NULL;
	rcode rc;

	if (lease_escape(&esc, l->index))
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	snprintf(path, sizeof(path), "/%s", esc);
	free(esc);
	rc = opensearch_request(l->os, &status, &resp, "PUT", path, body, sizeof(body) - 1, err);
	if (rc == RC_OK && status != 200 && !strstr(resp.data ? resp.data : "", "already_exists")) {
		reason_of(&resp, why, sizeof(why));
		rc = rerror_set(err, RC_ERR_OPENSEARCH,
		                "cannot create the lease index %s: HTTP %ld: %s", l->index, status,
		                why);
	}
	buf_free(&resp);
	return rc;
}

/* ---- the heartbeat ---- */

static void
lose(struct lease *l, rcode rc, const char *msg)
{
	l->lost = true;
	l->lost_rc = rc;
	snprintf(l->lost_msg, sizeof(l->lost_msg), "%s", msg);
	log_msg(LOG_ERROR, l->run_id, "%s", msg);
	l->on_lost(l->on_lost_ctx);
}

/* One renewal; called with l->mu not held (only this thread writes). */
static void
renew(struct lease *l)
{
	struct buf resp = {0};
	struct rerror err = {0};
	struct lease_doc before = l->mine;
	char *body = NULL, msg[512], why[400];
	long status = 0;
	int64_t sent = util_mono_ms();
	rcode rc;

	pthread_mutex_lock(&l->mu);
	int64_t run_id = l->run_id;
	pthread_mutex_unlock(&l->mu);
	if (make_body(l, &body, run_id)) {
		l->mine = before;
		rc = rerror_set(&err, RC_ERR_NOMEM, "out of memory");
	} else {
		rc = conditional(l, &status, &resp, "PUT", body, before.seq_no, before.primary_term,
		                 &err);
	}
	pthread_mutex_lock(&l->mu);
	if (rc == RC_OK && (status == 200 || status == 201) && take_seq(l, &resp)) {
		l->deadline_mono = sent + l->ttl_ms - l->ttl_ms / 3;
	} else if (rc == RC_OK && (status == 409 || status == 404)) {
		snprintf(
		    msg, sizeof(msg),
		    "the lease of mirror %s (%s/%s) was taken over by another process: this run "
		    "stopped (docs/ENGINE.md#one-run-per-mirror-the-lease)",
		    l->mirror, l->index, l->id);
		lose(l, RC_ERR_BUSY, msg);
	} else {
		l->mine = before; /* not written: the next try is conditional on the last */
		if (rc == RC_OK) {
			char reason[300];
			reason_of(&resp, reason, sizeof(reason));
			snprintf(why, sizeof(why), "HTTP %ld: %s", status, reason);
		} else {
			snprintf(why, sizeof(why), "%.390s", err.message);
		}
		if (util_mono_ms() >= l->deadline_mono) {
			snprintf(
			    msg, sizeof(msg),
			    "the lease of mirror %s (%s/%s) could not be renewed for %" PRId64
			    " ms (%.300s): this run stopped so that another process may take over "
			    "the mirror (docs/ENGINE.md#one-run-per-mirror-the-lease)",
			    l->mirror, l->index, l->id, l->ttl_ms - l->ttl_ms / 3, why);
			lose(l, RC_ERR_OPENSEARCH, msg);
		} else {
			log_msg(LOG_WARN, l->run_id,
			        "mirror %s: cannot renew its lease (%.300s): trying again",
			        l->mirror, why);
		}
	}
	pthread_mutex_unlock(&l->mu);
	free(body);
	buf_free(&resp);
}

static void *
heartbeat(void *arg)
{
	struct lease *l = arg;
	int64_t next = util_mono_ms() + l->ttl_ms / 3;

	pthread_mutex_lock(&l->mu);
	while (!l->stopping && !l->lost) {
		int64_t now = util_mono_ms();
		if (!l->renew_now && now < next) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t ns = ts.tv_nsec + (next - now) % 1000 * 1000000;
			ts.tv_sec += (next - now) / 1000 + ns / 1000000000;
			ts.tv_nsec = ns % 1000000000;
			pthread_cond_timedwait(&l->wake, &l->mu, &ts);
			continue;
		}
		l->renew_now = false;
		pthread_mutex_unlock(&l->mu);
		int64_t before = l->deadline_mono;
		renew(l);
		pthread_mutex_lock(&l->mu);
		/* renewed: a third of the TTL on; not: soon again, until the deadline */
		int64_t retry = l->ttl_ms / 10 < 1000 ? l->ttl_ms / 10 : 1000;
		next = util_mono_ms() + (l->deadline_mono != before ? l->ttl_ms / 3 : retry);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

/* ---- taking and giving back ---- */

static void
lease_free(struct lease *l)
{
	if (l == NULL)
		return;
	opensearch_free(l->os);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->wake);
	free(l->mirror);
	free(l->index);
	free(l->id);
	free(l->path_doc);
	free(l->path_make);
	free(l->journal);
	free(l);
}

/* Names what the lease stands for: l->id from the concrete index the mirror
 * writes, and the request paths. */
/* The lease index must not be, by any name (an alias, a wildcard's match),
 * an index the mirror reads: the lease would be a copy there, counted as an
 * orphan and maybe deleted by the run itself (QA round 7 F8). Compared by
 * the concrete indices' uuids both names resolve to. */
static RC_MUST_CHECK rcode
lease_shares_index(struct lease *l, const struct config *cfg, struct rerror *err)
{
	struct os_concrete *mine = NULL, *theirs = NULL;
	size_t n_mine = 0, n_theirs = 0;
	rcode rc = opensearch_concrete(l->os, &mine, &n_mine, cfg->opensearch_index, err);

	if (rc == RC_OK)
		rc = opensearch_concrete(l->os, &theirs, &n_theirs, l->index, err);
	for (size_t i = 0; rc == RC_OK && i < n_mine; i++)
		for (size_t k = 0; rc == RC_OK && k < n_theirs; k++)
			if (strcmp(mine[i].uuid, theirs[k].uuid) == 0)
				rc = rerror_set(
				    err, RC_ERR_CONFIG,
				    "RECONCILE_LEASE_INDEX=%s resolves to index %s, which "
				    "mirror %s reads (OPENSEARCH_INDEX=%s): leases would be "
				    "copies there; name an index of their own",
				    l->index, theirs[k].name, l->mirror, cfg->opensearch_index);
	opensearch_concrete_free(mine, n_mine);
	opensearch_concrete_free(theirs, n_theirs);
	return rc;
}

static RC_MUST_CHECK rcode
name_lease(struct lease *l, const struct config *cfg, struct rerror *err)
{
	char *write = NULL, *eidx = NULL, *eid = NULL;
	int n = 1;
	rcode rc;

	rc = opensearch_targets(l->os, &write, &n, err);
	if (rc)
		goto out;
	/* an alias is named by its write index (an alias without one by its
	 * own name): two names of one index take one lease */
	const char *target = write ? write : cfg->opensearch_index;
	if (strcmp(target, l->index) == 0 || strcmp(cfg->opensearch_index, l->index) == 0) {
		rc =
		    rerror_set(err, RC_ERR_CONFIG,
		               "RECONCILE_LEASE_INDEX=%s is mirror %s's own index: leases would be "
		               "copies there; name an index of their own",
		               l->index, l->mirror);
		goto out;
	}
	if ((rc = lease_shares_index(l, cfg, err)) ||
	    (rc = lease_id(&l->id, target, cfg->mongodb_database, cfg->mongodb_collection, err)))
		goto out;
	if (l->part) { /* one partition of a split run: a lease of its own */
		char *both = malloc(strlen(l->id) + strlen(l->part) + 12);
		if (both == NULL) {
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
			goto out;
		}
		sprintf(both, "%s#partition-%s", l->id, l->part);
		free(l->id);
		l->id = both;
	}
	if (lease_escape(&eidx, l->index) || lease_escape(&eid, l->id) ||
	    (l->path_doc = malloc(strlen(eidx) + strlen(eid) + 8)) == NULL ||
	    (l->path_make = malloc(strlen(eidx) + strlen(eid) + 11)) == NULL) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	sprintf(l->path_doc, "/%s/_doc/%s", eidx, eid);
	sprintf(l->path_make, "/%s/_create/%s", eidx, eid);
out:
	free(write);
	free(eidx);
	free(eid);
	return rc;
}

/* A cluster too busy to answer now (429 rejected, 502/503/504): the same
 * request is worth sending again after a pause, as _bulk's are. */
static bool
busy_status(long status)
{
	return status == 429 || status == 502 || status == 503 || status == 504;
}

/* One try at the lease: *got true when it is this process's now; *again
 * when it changed hands while we looked, or the cluster was too busy to
 * answer (l->busy): try again. */
static RC_MUST_CHECK rcode
try_take(struct lease *l, bool *got, bool *again, bool *no_index, struct rerror *err)
{
	struct buf resp = {0};
	struct lease_doc held;
	char *body = NULL, why[300];
	long status = 0;
	rcode rc;

	*got = *again = *no_index = false;
	if ((rc = make_body(l, &body, 0)))
		return rerror_set(err, rc, "out of memory");
	rc =
	    opensearch_request(l->os, &status, &resp, "PUT", l->path_make, body, strlen(body), err);
	if (rc)
		goto out;
	if (busy_status(status)) {
		*again = l->busy = true;
		goto out;
	}
	if (status == 201 || status == 200) {
		*got = take_seq(l, &resp);
		if (!*got)
			rc =
			    rerror_set(err, RC_ERR_OPENSEARCH, "the lease's answer has no _seq_no");
		goto out;
	}
	if (status == 404) {
		*no_index = true; /* the cluster creates no index on a first write */
		goto out;
	}
	if (status != 409) {
		reason_of(&resp, why, sizeof(why));
		rc = rerror_set(err, RC_ERR_OPENSEARCH, "HTTP %ld: %s", status, why);
		goto out;
	}
	/* held: by whom, and may it be taken over? */
	buf_reset(&resp);
	rc = opensearch_request(l->os, &status, &resp, "GET", l->path_doc, NULL, 0, err);
	if (rc)
		goto out;
	if (status == 404 || busy_status(status)) { /* given back since, or busy */
		*again = true;
		l->busy = busy_status(status);
		goto out;
	}
	if (status != 200 || lease_doc_parse(&held, resp.data)) {
		reason_of(&resp, why, sizeof(why));
		rc = rerror_set(err, RC_ERR_OPENSEARCH, "reading the lease: HTTP %ld: %s", status,
		                why);
		goto out;
	}
	int64_t now = util_now_ms();
	enum lease_verdict v = lease_judge(&held, now, &self, held_here(held.owner), pid_alive);
	if (v == LEASE_HELD) {
		char msg[900];
		lease_held_message(msg, sizeof(msg), l->mirror, &held, now, l->index, l->id);
		rc = rerror_set(err, RC_ERR_BUSY, "%s", msg);
		goto out;
	}
	rc = conditional(l, &status, &resp, "PUT", body, held.seq_no, held.primary_term, err);
	if (rc)
		goto out;
	if (status == 409 || busy_status(status)) { /* another contender won, or busy */
		*again = true;
		l->busy = busy_status(status);
		goto out;
	}
	if (status != 200 && status != 201) {
		reason_of(&resp, why, sizeof(why));
		rc = rerror_set(err, RC_ERR_OPENSEARCH, "HTTP %ld: %s", status, why);
		goto out;
	}
	if (!(*got = take_seq(l, &resp))) {
		rc = rerror_set(err, RC_ERR_OPENSEARCH, "the lease's answer has no _seq_no");
		goto out;
	}
	if (v == LEASE_EXPIRED)
		log_warn("mirror %s: took over the lease of %s (run %" PRId64 ", journal %s): it "
		         "expired %" PRId64 " s ago unrenewed",
		         l->mirror, held.owner, held.run_id, held.journal,
		         (now - held.expires_at) / 1000);
	else
		log_warn("mirror %s: took over the lease of %s (run %" PRId64 ", journal %s): its "
		         "process is gone",
		         l->mirror, held.owner, held.run_id, held.journal);
out:
	free(body);
	buf_free(&resp);
	return rc;
}

/* Takes l's lease (*got), creating the lease index when the cluster
 * does not on a first write, waiting out a busy cluster, trying again when
 * it changed hands while we looked. Called under taking_mu. */
static RC_MUST_CHECK rcode
take_lease(struct lease *l, const struct config *cfg, bool *got, struct rerror *err)
{
	bool again = false, no_index = false, made = false;
	rcode rc = RC_OK;

	*got = false;
	for (int i = 0, busy = 0; i < LEASE_ATTEMPTS && !*got; i++) {
		l->busy = false;
		if ((rc = try_take(l, got, &again, &no_index, err)))
			break;
		/* a busy cluster is waited for as SYNC_MAX_RETRIES says for _bulk:
		 * 100 ms doubling up to 5 s; a busy answer is not a changed hand */
		if (l->busy && busy++ < cfg->sync_max_retries) {
			int64_t ms = 100LL << (busy < 6 ? busy : 6);
			usleep((useconds_t)((ms < 5000 ? ms : 5000) * 1000));
			i--;
			continue;
		}
		if (l->busy) {
			rc = rerror_set(
			    err, RC_ERR_OPENSEARCH,
			    "mirror %s: the cluster was too busy to take the lease (%s/%s) "
			    "after %d tries (HTTP 429/5xx): try again later, or raise "
			    "SYNC_MAX_RETRIES",
			    l->mirror, l->index, l->id, busy);
			break;
		}
		if (no_index && !made) {
			made = true;
			if ((rc = create_index(l, err)))
				break;
		} else if (no_index) {
			rc = rerror_set(err, RC_ERR_OPENSEARCH, "the lease index %s is missing",
			                l->index);
			break;
		}
	}
	if (rc == RC_OK && !*got)
		rc = rerror_set(err, RC_ERR_BUSY,
		                "mirror %s: its lease (%s/%s) changed hands %d times while this "
		                "process tried to take it",
		                l->mirror, l->index, l->id, LEASE_ATTEMPTS);
	if (*got) {
		pthread_mutex_lock(&registry_mu);
		l->next = registry;
		registry = l;
		pthread_mutex_unlock(&registry_mu);
	}
	return rc;
}

rcode
lease_acquire(struct lease **out, const struct config *cfg, void (*on_lost)(void *ctx), void *ctx,
              struct rerror *err)
{
	return lease_acquire_part(out, cfg, NULL, on_lost, ctx, err);
}

rcode
lease_acquire_part(struct lease **out, const struct config *cfg, const char *part,
                   void (*on_lost)(void *ctx), void *ctx, struct rerror *err)
{
	struct lease *l = NULL;
	struct config quick;
	unsigned char rnd[4] = {0};
	bool got = false;
	rcode rc = RC_OK;

	*out = NULL;
	if (cfg->lease_index == NULL || *cfg->lease_index == '\0')
		return RC_OK;
	pthread_once(&self_once, self_init);
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->wake, &ca);
	pthread_condattr_destroy(&ca);
	l->on_lost = on_lost;
	l->on_lost_ctx = ctx;
	l->part = part;
	l->ttl_ms = cfg->lease_ttl_ms;
	l->mirror = strdup(cfg->name ? cfg->name : "default");
	l->index = strdup(cfg->lease_index);
	l->journal = realpath(cfg->state_db, NULL);
	if (l->journal == NULL)
		l->journal = strdup(cfg->state_db);
	if (l->mirror == NULL || l->index == NULL || l->journal == NULL) {
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* who takes it: host:pid:random, fresh for every taking */
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		memcpy(rnd, &(int64_t){util_mono_ms() ^ getpid()}, sizeof(rnd));
	snprintf(l->mine.host, sizeof(l->mine.host), "%s", self.host);
	snprintf(l->mine.boot_id, sizeof(l->mine.boot_id), "%s", self.boot_id);
	snprintf(l->mine.pid_ns, sizeof(l->mine.pid_ns), "%s", self.pid_ns);
	l->mine.pid = getpid();
	snprintf(l->mine.owner, sizeof(l->mine.owner), "%s:%ld:%02x%02x%02x%02x", self.host,
	         (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3]);
	/* no request of the lease outlasts a third of it */
	quick = *cfg;
	if (quick.opensearch_timeout_ms > l->ttl_ms / 3)
		quick.opensearch_timeout_ms = l->ttl_ms / 3 > 1000 ? l->ttl_ms / 3 : 1000;
	rc = opensearch_open(&l->os, &quick, err);
	if (rc == RC_OK)
		rc = name_lease(l, cfg, err);
	l->part = NULL; /* the caller's: named by now */
	if (rc)
		goto out;

	pthread_mutex_lock(&taking_mu);
	self.pid = getpid();
	rc = take_lease(l, cfg, &got, err);
	pthread_mutex_unlock(&taking_mu);
	if (rc)
		goto out;
	l->deadline_mono = util_mono_ms() + l->ttl_ms - l->ttl_ms / 3;
	if (pthread_create(&l->thread, NULL, heartbeat, l)) {
		rc = rerror_set(err, RC_ERR_INTERNAL, "cannot start the lease's heartbeat");
		goto out;
	}
	l->started = true;
	log_debug("mirror %s: lease %s/%s taken by %s", l->mirror, l->index, l->id, l->mine.owner);
	*out = l;
	l = NULL;
out:
	if (rc && rc != RC_ERR_BUSY && rc != RC_ERR_CONFIG && rc != RC_ERR_NOMEM) {
		char msg[sizeof(err->message)];
		snprintf(msg, sizeof(msg), "%s", err->message);
		/* no answer: nothing to grant; an answer: a refusal to act on */
		bool answered = strstr(msg, " unreachable: ") == NULL;
		rerror_set(
		    err, rc,
		    "cannot take the lease of mirror %s in RECONCILE_LEASE_INDEX=%s (%.300s)%s",
		    cfg->name ? cfg->name : "default", cfg->lease_index, msg,
		    answered ? ": let this user write that index, or set "
		               "RECONCILE_LEASE_INDEX= (empty) to run without the lease"
		             : "");
	}
	if (l && got) /* taken, but no heartbeat: give it back */
		lease_release(l);
	else
		lease_free(l);
	return rc;
}

void
lease_set_run(struct lease *l, int64_t run_id)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	l->run_id = run_id;
	l->renew_now = true;
	pthread_cond_signal(&l->wake);
	pthread_mutex_unlock(&l->mu);
}

bool
lease_lost(struct lease *l, rcode *rc, struct rerror *err)
{
	bool lost;

	if (l == NULL)
		return false;
	pthread_mutex_lock(&l->mu);
	lost = l->lost;
	if (lost && (*rc == RC_OK || *rc == RC_ERR_CANCELLED))
		*rc = rerror_set(err, l->lost_rc, "%s", l->lost_msg);
	pthread_mutex_unlock(&l->mu);
	return lost;
}

void
lease_release(struct lease *l)
{
	struct buf resp = {0};
	struct rerror err = {0};
	long status = 0;
	rcode rc;

	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	l->stopping = true;
	pthread_cond_signal(&l->wake);
	pthread_mutex_unlock(&l->mu);
	if (l->started)
		pthread_join(l->thread, NULL);
	if (!l->lost) {
		rc = conditional(l, &status, &resp, "DELETE", NULL, l->mine.seq_no,
		                 l->mine.primary_term, &err);
		if (rc)
			log_warn(
			    "mirror %s: cannot give its lease back (%s): it expires in %" PRId64
			    " s",
			    l->mirror, err.message, (l->mine.expires_at - util_now_ms()) / 1000);
		else if (status == 409 || status == 404)
			log_warn("mirror %s: its lease was no longer this run's at the end",
			         l->mirror);
		else if (status != 200)
			log_warn("mirror %s: cannot give its lease back: HTTP %ld", l->mirror,
			         status);
	}
	registry_remove(l);
	buf_free(&resp);
	lease_free(l);
}
