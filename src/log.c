/*
 * log.c: one page of logging.
 *
 * A line is "2026-11-28T20:31:02.123Z info  [run 7] message". It goes to
 * stderr and to combined.log; errors also to error.log. Lines are
 * assembled whole and written with one fputs under a mutex, so the
 * scheduler, API and engine threads never interleave. Before writing, any
 * "scheme://user:password@" is masked (util_mask_secrets), so a URI that
 * slips into a message never leaves the process with its password.
 */
#include "log.h"
#include "util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum log_level log_min = LOG_INFO;
static FILE *log_combined;
static FILE *log_errors;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
log_close(void)
{
	pthread_mutex_lock(&log_lock);
	if (log_combined)
		fclose(log_combined);
	if (log_errors)
		fclose(log_errors);
	log_combined = log_errors = NULL;
	pthread_mutex_unlock(&log_lock);
}

void
log_open(const char *dir, enum log_level level)
{
	char path[4096];

	log_close();
	pthread_mutex_lock(&log_lock);
	log_min = level;
	if (dir && *dir) {
		mkdir(dir, 0755);
		snprintf(path, sizeof(path), "%s/combined.log", dir);
		log_combined = fopen(path, "a");
		snprintf(path, sizeof(path), "%s/error.log", dir);
		log_errors = fopen(path, "a");
		if (!log_combined || !log_errors)
			fprintf(stderr,
			        "log: cannot open log files in %s; logging to stderr only\n", dir);
	}
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
	util_now_iso(ts, sizeof(ts));
	if (run_id > 0)
		snprintf(line, sizeof(line), "%s %-5s [run %lld] %s\n", ts, level_names[level],
		         (long long)run_id, msg);
	else
		snprintf(line, sizeof(line), "%s %-5s %s\n", ts, level_names[level], msg);

	pthread_mutex_lock(&log_lock);
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
