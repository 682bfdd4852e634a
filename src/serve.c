/*
 * serve.c: `reconciler serve`: the journal, one scheduler (and engine) per
 * mirror sharing the slots of RECONCILE_CONCURRENCY, and the HTTP daemon.
 *
 * Calls go serve -> api -> http: serve.c hands http.c the route table, the
 * body members the routes read and the mirror resolver (api.c's), so http.c
 * never calls api.c.
 *
 * Live sync: a mirror with CHANGE_STREAM_ENABLED has its change stream
 * tailed beside its scheduler (stream.h's tailer: the loop of `reconciler
 * sync`, in a thread of its own); the API starts and stops it.
 *
 * Shutdown (SIGTERM/SIGINT): stop accepting, interrupt the runs after their
 * in-flight batch and stop the streams (the batch being read written and
 * journaled), exit 0 within 10 s; a second signal exits at once (a run
 * still running is marked interrupted first, so it resumes at the next
 * start; a stream resumes from its last journaled place).
 */
#include "serve.h"
#include "api.h"
#include "http.h"
#include "run.h"
#include "log.h"
#include "scheduler.h"
#include "store.h"
#include "stream.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#define SHUTDOWN_WAIT_MS 9000

/* ---- serve --------------------------------------------------------------- */

static sigset_t stop_signals, wait_signals;

static void *
second_signal(void *arg)
{
	int sig;

	(void)arg;
	sigwait(&stop_signals, &sig);
	log_warn("second signal: exiting at once (the journal is transactional)");
	_exit(130);
	return NULL;
}

/* Signals are taken by sigwait in serve_main's thread, never by a handler:
 * blocked here, before any other thread starts (they inherit the mask). */
static void
signals_take(void)
{
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	wait_signals = stop_signals;
	sigaddset(&wait_signals, SIGHUP); /* logrotate: reopen the log files */
	pthread_sigmask(SIG_BLOCK, &wait_signals, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* The address HTTP_BIND names, with PORT, into *sin or *sin6 (*addr points
 * to the one used; *flags gets MHD_USE_IPv6 for the second); false when it
 * is neither an IPv4 nor an IPv6 address. */
static bool
listen_addr(const struct config *cfg, struct sockaddr_in *sin, struct sockaddr_in6 *sin6,
            struct sockaddr **addr, unsigned *flags)
{
	memset(sin, 0, sizeof(*sin));
	memset(sin6, 0, sizeof(*sin6));
	if (inet_pton(AF_INET, cfg->http_bind, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)cfg->port);
		*addr = (struct sockaddr *)sin;
		return true;
	}
	if (inet_pton(AF_INET6, cfg->http_bind, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)cfg->port);
		*addr = (struct sockaddr *)sin6;
		*flags |= MHD_USE_IPv6;
		return true;
	}
	return false;
}

/* The listening socket, bound before anything else is done: a second
 * `serve` on a busy port fails here, before it resumes a run (QA: it
 * resumed one, then failed to bind). libmicrohttpd takes it over once the
 * mirrors are ready; connections wait in the backlog until then. -1 after
 * logging why. */
static int
listen_first(const struct config *cfg, const struct sockaddr *addr)
{
	int one = 1;
	socklen_t len = addr->sa_family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6)
	                                            : (socklen_t)sizeof(struct sockaddr_in);
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, addr, len) || listen(fd, 128)) {
		log_error("cannot listen on %s:%lld: %s (another service on the port, or not an "
		          "address of this host); nothing was started",
		          cfg->http_bind, (long long)cfg->port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Each mirror's scheduler, started (resuming its interrupted run); counts
 * those resuming and those with the schedule on. false after logging. */
static bool
mirrors_start(struct api *a, const struct config_set *set, size_t *resuming, size_t *enabled)
{
	struct rerror err = {0};

	for (size_t i = 0; i < set->n_mirrors; i++) {
		struct api_mirror *m = &a->mirrors[i];
		int64_t unfinished = 0;
		m->cfg = set->mirrors[i];
		if (store_run_unfinished(a->store, &unfinished, m->cfg->name)) {
			log_error("journal %s: cannot look for unfinished runs", a->cfg->state_db);
			return false;
		}
		if (scheduler_new(&m->sched, m->cfg, a->slots, &err)) {
			log_error("%s", err.message);
			return false;
		}
		a->n_mirrors = i + 1; /* started or not, freed at out */
		if (scheduler_start(m->sched, unfinished, &err) ||
		    stream_tailer_new(&m->stream, m->cfg, &err) ||
		    (m->cfg->change_stream_enabled && stream_tailer_start(m->stream, &err))) {
			log_error("%s", err.message);
			return false;
		}
		*resuming += unfinished > 0;
		*enabled += m->cfg->reconciliation_enabled;
		if (unfinished)
			log_info("mirror %s: resuming its interrupted run %lld", m->cfg->name,
			         (long long)unfinished);
	}
	return true;
}

/* Says where the service listens and what it runs; warns of a bind beyond
 * this host without a token. */
static void
log_listening(const struct config_set *set, struct MHD_Daemon *d, size_t resuming, size_t enabled)
{
	const struct config *cfg = set->global;
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);

	if (set->n_mirrors == 1)
		log_info("reconciler %s listening on %s:%u; schedule %s%s", RECONCILER_VERSION,
		         cfg->http_bind, info ? info->port : (unsigned)cfg->port,
		         set->mirrors[0]->reconciliation_enabled ? "on" : "off",
		         resuming ? "; resuming the interrupted run" : "");
	else
		log_info("reconciler %s listening on %s:%u; %zu mirrors, schedule on for %zu, %zu "
		         "resuming, at most %lld runs at once",
		         RECONCILER_VERSION, cfg->http_bind,
		         info ? info->port : (unsigned)cfg->port, set->n_mirrors, enabled, resuming,
		         (long long)cfg->concurrency);
	/* loopback only by default; reaching further without a token opens
	 * every write (runs, full re-index, released deletes) to the network */
	if ((cfg->api_token == NULL || *cfg->api_token == '\0') &&
	    strncmp(cfg->http_bind, "127.", 4) != 0 && strcmp(cfg->http_bind, "::1") != 0 &&
	    strcmp(cfg->http_bind, "localhost") != 0)
		log_warn(
		    "HTTP_BIND=%s reaches beyond this host and API_TOKEN is not set: whoever "
		    "reaches the port can start runs, full re-indexes and release the brake on "
		    "deletes; set API_TOKEN",
		    cfg->http_bind);
}

/* After the first stop signal: no new connections, every mirror told to
 * stop, and the runs waited for together. Returns only when every run
 * stopped in time; otherwise marks the runs still going interrupted and
 * exits at once. */
static void
shutdown_runs(struct api *a, struct MHD_Daemon *d)
{
	pthread_t t2;
	bool all_stopped = true;

	pthread_create(&t2, NULL, second_signal, NULL);
	pthread_detach(t2);
	MHD_socket ls = MHD_quiesce_daemon(d); /* no new connections */
	if (ls != MHD_INVALID_SOCKET)
		close(ls);
	/* every mirror told first, so they stop together within the one wait */
	for (size_t i = 0; i < a->n_mirrors; i++) {
		scheduler_stop(a->mirrors[i].sched);
		stream_tailer_signal(a->mirrors[i].stream);
	}
	int64_t deadline = util_now_ms() + SHUTDOWN_WAIT_MS;
	for (size_t i = 0; i < a->n_mirrors; i++) {
		int64_t left = deadline - util_now_ms();
		all_stopped &= scheduler_shutdown(a->mirrors[i].sched, left > 0 ? left : 0);
		left = deadline - util_now_ms();
		/* a stream not stopped in time loses nothing: it resumes from its
		 * last journaled place */
		all_stopped &= stream_tailer_stop(a->mirrors[i].stream, left > 0 ? left : 0);
	}
	if (all_stopped)
		return;
	for (size_t i = 0; i < a->n_mirrors; i++) {
		struct scheduler_status st;
		scheduler_status(a->mirrors[i].sched, &st);
		if (!st.progress.active || st.progress.run_id <= 0)
			continue;
		log_warn("mirror %s: run %lld did not stop in time: marking it interrupted",
		         a->mirrors[i].cfg->name, (long long)st.progress.run_id);
		if (store_run_finish(a->store, st.progress.run_id, RUN_INTERRUPTED,
		                     "service stopped before the in-flight batch finished"))
			log_error("journal: cannot mark run %lld interrupted (it stays running "
			          "and resumes all the same)",
			          (long long)st.progress.run_id);
	}
	log_warn("exiting without waiting for the runs");
	log_close();
	_exit(0);
}

int
serve_main(const struct config_set *set)
{
	const struct config *cfg = set->global;
	struct api a = {.cfg = cfg};
	struct http_server srv = {.routes = api_routes,
	                          .n_routes = api_n_routes,
	                          .token = cfg->api_token ? cfg->api_token : "",
	                          .token_read = cfg->api_token_read,
	                          .body_members = api_body_members,
	                          .api = &a,
	                          .mirror_named = api_mirror_named};
	struct rerror err = {0};
	struct MHD_Daemon *d = NULL;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr *addr;
	unsigned flags =
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
	size_t resuming = 0, enabled = 0;
	int sig = 0, rc = 0, sock = -1;

	pthread_mutex_init(&a.store_mu, NULL);
	pthread_mutex_init(&a.health_mu, NULL);
	if (!listen_addr(cfg, &sin, &sin6, &addr, &flags)) {
		fprintf(stderr,
		        "reconciler: HTTP_BIND=\"%s\" is invalid: expected an IPv4 or IPv6 "
		        "address\n",
		        cfg->http_bind);
		rc = 78;
		goto out;
	}
	signals_take();
	if ((sock = listen_first(cfg, addr)) < 0) {
		rc = 2;
		goto out;
	}
	if (store_open(&a.store, cfg->state_db, &err)) {
		log_error("%s", err.message);
		rc = 2;
		goto out;
	}
	(void)engine_warn_unknown_runs(a.store, set); /* QA F2: said once, at start */
	a.mirrors = calloc(set->n_mirrors, sizeof(*a.mirrors));
	if (a.mirrors == NULL || scheduler_slots_new(&a.slots, cfg->concurrency, &err)) {
		log_error("out of memory");
		rc = 2;
		goto out;
	}
	/* the one mirror default (no file, or a file without mirrors:) keeps the
	 * unlabelled series it had before mirrors: default's runs only */
	a.labelled = !(set->n_mirrors == 1 && strcmp(set->mirrors[0]->name, "default") == 0);
	if (!mirrors_start(&a, set, &resuming, &enabled)) {
		rc = 2;
		goto out;
	}
	d = MHD_start_daemon(
	    flags, (uint16_t)cfg->port, NULL, NULL, http_on_request, &srv, MHD_OPTION_LISTEN_SOCKET,
	    (MHD_socket)sock, MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, NULL,
	    MHD_OPTION_URI_LOG_CALLBACK, http_on_uri, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)30, MHD_OPTION_CONNECTION_LIMIT, (unsigned)128, MHD_OPTION_UNESCAPE_CALLBACK,
	    http_unescape, NULL, MHD_OPTION_END);
	if (d == NULL) {
		log_error("cannot serve on %s:%lld", cfg->http_bind, (long long)cfg->port);
		rc = 2;
		goto out;
	}
	sock = -1; /* the daemon's now */
	log_listening(set, d, resuming, enabled);
	while (sigwait(&wait_signals, &sig) == 0 && sig == SIGHUP) {
		log_reopen();
		log_info("SIGHUP: log files reopened");
	}
	log_info("signal %d: shutting down (in-flight batch first)", sig);
	shutdown_runs(&a, d);
	MHD_stop_daemon(d);
	d = NULL;
	log_info("stopped");
out:
	if (d)
		MHD_stop_daemon(d);
	if (sock >= 0)
		close(sock);
	for (size_t i = 0; i < a.n_mirrors; i++) {
		scheduler_stop(a.mirrors[i].sched);
		stream_tailer_signal(a.mirrors[i].stream);
	}
	for (size_t i = 0; i < a.n_mirrors; i++) {
		scheduler_shutdown(a.mirrors[i].sched, SHUTDOWN_WAIT_MS);
		scheduler_free(a.mirrors[i].sched);
		stream_tailer_free(a.mirrors[i].stream);
	}
	for (size_t i = 0; a.mirrors && i < set->n_mirrors; i++)
		probe_conns_close(&a.mirrors[i].health_conns);
	free(a.mirrors);
	scheduler_slots_free(a.slots);
	store_free(a.store);
	pthread_mutex_destroy(&a.store_mu);
	pthread_mutex_destroy(&a.health_mu);
	return rc;
}
