/*
 * serve.h: `reconciler serve` (serve.c): the journal, one scheduler per
 * mirror, the HTTP daemon with the API's routes, signals and shutdown.
 */
#ifndef RECONCILER_SERVE_H
#define RECONCILER_SERVE_H

#include "config.h"

/* Runs the service until SIGTERM or SIGINT; the process's exit code. */
int serve_main(const struct config_set *set);

#endif
