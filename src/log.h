/*
 * log.h: leveled log lines to stderr, LOG_DIR/combined.log and
 * LOG_DIR/error.log (errors only), as the service this replaces did.
 * Every line is masked for credentials before it is written.
 */
#ifndef RECONCILER_LOG_H
#define RECONCILER_LOG_H

#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* dir may be NULL or "" for stderr only. Safe to call again (reopens).
 * With a dir, SIGHUP makes the next line reopen the files (logrotate). */
void log_open(const char *dir, enum log_level level);
void log_close(void);
/* Reopens the files now (after logrotate renamed them). */
void log_reopen(void);

/* run_id 0 means "no run". */
void log_msg(enum log_level level, int64_t run_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_ERROR, 0, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, 0, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, 0, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, 0, __VA_ARGS__)

#endif
