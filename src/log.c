/*
 * log.c: one page of logging.
 *
 * A line is "2026-11-28T20:31:02.123Z info  [run 7] message". It goes to
 * stderr and to combined.log; errors also to error.log. Lines are
 * assembled whole and written with one fputs under a mutex, so the
 * scheduler, API and engine threads never interleave. Before writing, any
 * "scheme://user:password@" is masked (util_mask_secrets), so a URI that
 * slips into a message never leaves the process with its password, and
 * control characters and invalid UTF-8 are replaced, so a request path
 * cannot forge a line or make the file unreadable to a log shipper.
 *
 * SIGHUP reopens the files (logrotate's convention: rename, then HUP). The
 * handler only sets a flag; the next line reopens, and `serve` takes the
 * signal with sigwait and calls log_reopen at once.
 */
#include "log.h"
#include "util.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum log_level log_min = LOG_INFO;
static FILE *log_combined;
static FILE *log_errors;
static char log_dir[4096];
static volatile sig_atomic_t reopen_wanted;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* Both under log_lock. */
static void
close_files(void)
{
	if (log_combined)
		fclose(log_combined);
	if (log_errors)
		fclose(log_errors);
	log_combined = log_errors = NULL;
}

static void
open_files(void)
{
	char path[4200];

	close_files();
	if (*log_dir == '\0')
		return;
	mkdir(log_dir, 0755);
	snprintf(path, sizeof(path), "%s/combined.log", log_dir);
	log_combined = fopen(path, "a");
	snprintf(path, sizeof(path), "%s/error.log", log_dir);
	log_errors = fopen(path, "a");
	if (!log_combined || !log_errors)
		fprintf(stderr, "log: cannot open log files in %s; logging to stderr only\n",
		        log_dir);
}

static void
on_sighup(int sig)
{
	(void)sig;
	reopen_wanted = 1; /* async-signal-safe: the next line reopens */
}

void
log_close(void)
{
	pthread_mutex_lock(&log_lock);
	close_files();
	log_dir[0] = '\0';
	pthread_mutex_unlock(&log_lock);
}

void
log_open(const char *dir, enum log_level level)
{
	pthread_mutex_lock(&log_lock);
	log_min = level;
	snprintf(log_dir, sizeof(log_dir), "%s", dir ? dir : "");
	open_files();
	pthread_mutex_unlock(&log_lock);
	if (dir && *dir) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_sighup;
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGHUP, &sa, NULL);
	}
}

void
log_reopen(void)
{
	pthread_mutex_lock(&log_lock);
	reopen_wanted = 0;
	open_files();
	pthread_mutex_unlock(&log_lock);
}

void
log_msg(enum log_level level, int64_t run_id, const char *fmt, ...)
{
	char msg[2048], line[2300], ts[32];
	va_list ap;

	if (level > log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	util_mask_secrets(msg, sizeof(msg));
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = *p == '\n' || *p == '\t' || *p == '\r' ? ' ' : '?';
	util_utf8_clean(msg);
	util_now_iso(ts, sizeof(ts));
	if (run_id > 0)
		snprintf(line, sizeof(line), "%s %-5s [run %lld] %s\n", ts, level_names[level],
		         (long long)run_id, msg);
	else
		snprintf(line, sizeof(line), "%s %-5s %s\n", ts, level_names[level], msg);

	pthread_mutex_lock(&log_lock);
	if (reopen_wanted) {
		reopen_wanted = 0;
		open_files();
	}
	fputs(line, stderr);
	if (log_combined) {
		fputs(line, log_combined);
		fflush(log_combined);
	}
	if (level == LOG_ERROR && log_errors) {
		fputs(line, log_errors);
		fflush(log_errors);
	}
	pthread_mutex_unlock(&log_lock);
}
