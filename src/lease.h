/*
 * lease.h: one run per mirror wherever it was started. A run holds a
 * lease, a small document in RECONCILE_LEASE_INDEX on the mirror's own
 * OpenSearch, named after what it writes (the concrete index and the
 * MongoDB collection), renewed while the run runs and deleted when it ends
 * (docs/ENGINE.md#one-run-per-mirror-the-lease). The journal lock stays the
 * first line; the lease is what two journals (two working directories, two
 * hosts) share.
 */
#ifndef RECONCILER_LEASE_H
#define RECONCILER_LEASE_H

#include "config.h"
#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lease;

/* A lease document as read back ({"_seq_no", "_primary_term", "_source"}
 * of a GET). Texts are truncated to their buffers. */
struct lease_doc {
	char owner[160];   /* host:pid:random, one per taking */
	char host[96];     /* gethostname */
	char boot_id[48];  /* /proc/sys/kernel/random/boot_id: the host's current boot */
	char pid_ns[48];   /* /proc/self/ns/pid: which pids the pid means */
	int64_t pid;       /* the holder's process */
	char mirror[64];   /* the holder's mirror name */
	char journal[512]; /* the holder's STATE_DB, resolved */
	int64_t run_id;    /* 0 until its run has its id */
	int64_t heartbeat_at, expires_at, ttl_ms; /* epoch ms, the holder's clock */
	int64_t seq_no, primary_term;             /* for conditional writes */
};

/* The lease's _id: "INDEX/DATABASE.COLLECTION" (the concrete index the
 * mirror writes: a '/' never occurs in an index name, so the two parts
 * cannot be confused). RC_ERR_INVALID when it would pass OpenSearch's 512
 * bytes (never for names MongoDB and OpenSearch accept). */
RC_MUST_CHECK rcode lease_id(char **out, const char *index, const char *database,
                             const char *collection, struct rerror *err);
/* s percent-encoded for a URL path segment (RFC 3986 unreserved kept). */
RC_MUST_CHECK rcode lease_escape(char **out, const char *s);
/* Parses a GET answer of a lease document into d; RC_ERR_INVALID when it
 * is not one (no _seq_no, _primary_term or _source.expires_at). */
RC_MUST_CHECK rcode lease_doc_parse(struct lease_doc *d, const char *json);

/* Whether another process may take the lease d over at now_ms (the
 * contender's wall clock), and why. self: the contender's host, boot,
 * pid namespace and pid; held_here: whether d's owner is a lease this
 * process holds right now. */
enum lease_verdict {
	LEASE_HELD = 0,    /* a live holder: refuse */
	LEASE_EXPIRED = 1, /* not renewed in time: take it over */
	LEASE_GONE = 2,    /* its process is gone (same host and pid namespace), or it is
	                    * this process's and none of its runs holds it: take it over */
};
struct lease_self {
	const char *host, *boot_id, *pid_ns;
	int64_t pid;
};
enum lease_verdict lease_judge(const struct lease_doc *d, int64_t now_ms,
                               const struct lease_self *self, bool held_here,
                               bool (*pid_alive)(int64_t pid));
/* The refusal: "mirror M is running in another process: OWNER (journal
 * J), run N, lease expires in S s (lease INDEX/ID)". */
void lease_held_message(char *out, size_t len, const char *mirror, const struct lease_doc *d,
                        int64_t now_ms, const char *lease_index, const char *id);

/* Takes the lease of cfg's mirror (*out NULL when RECONCILE_LEASE_INDEX
 * is empty: off) and starts its heartbeat; on_lost(ctx) is called once,
 * from the heartbeat thread, when the lease is lost (the run stops itself
 * there: a callback, so lease.c never calls back into run.c). RC_ERR_BUSY naming the holder when a
 * live process holds it; RC_ERR_OPENSEARCH (unreachable, refused) and RC_ERR_CONFIG (the lease
 * index is the mirror's own) with what to do. */
RC_MUST_CHECK rcode lease_acquire(struct lease **out, const struct config *cfg,
                                  void (*on_lost)(void *ctx), void *ctx, struct rerror *err);
/* The same for partition part ("K/N") of a split run: a lease of its own
 * (ID#partition-K/N), so the N partitions run at once (NULL: lease_acquire). */
RC_MUST_CHECK rcode lease_acquire_part(struct lease **out, const struct config *cfg,
                                       const char *part, void (*on_lost)(void *ctx), void *ctx,
                                       struct rerror *err);
/* The run's id, written into the lease at once (the holder is named by it). */
void lease_set_run(struct lease *l, int64_t run_id);
/* Whether the lease was lost (taken over, or not renewed in time); then,
 * when *rc is RC_OK or RC_ERR_CANCELLED (the run stopped for it), *rc and
 * err say why. NULL: false. */
bool lease_lost(struct lease *l, rcode *rc, struct rerror *err);
/* Stops the heartbeat, deletes the lease (conditionally: only while it is
 * still this one) and frees l. NULL: nothing. */
void lease_release(struct lease *l);

#endif
