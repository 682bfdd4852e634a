/*
 * sample.h: `reconciler check --sample N`, a quick estimate of a mirror's
 * drift rate from N random MongoDB documents and N random index copies
 * looked up on both sides by a targeted run (journaled as kind sample, a
 * dry run), with a 95% Wilson score interval for each rate.
 */
#ifndef RECONCILER_SAMPLE_H
#define RECONCILER_SAMPLE_H

#include "config.h"
#include "error.h"
#include "run.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* The most ids one side's sample takes: both sides' together stay within
 * what one targeted run looks up (ENGINE_IDS_MAX). */
#define SAMPLE_MAX (ENGINE_IDS_MAX / 2)

/* z of a two-sided 95% interval. */
#define SAMPLE_Z95 1.959963984540054

/* The 95% (z) Wilson score interval of k successes in n trials: the
 * interval of p whose normal test does not reject k/n, never outside
 * [0, 1] and not empty at k = 0 or k = n, as the plain k/n +- z*se is.
 * n = 0: [0, 1] (nothing is known). */
void sample_wilson(int64_t k, int64_t n, double z, double *low, double *high);

/* Algorithm R over a stream of texts: keeps a uniform random k of those
 * offered, in O(k) memory, drawing from a seeded splitmix64, so one seed
 * and one stream keep the same k. */
struct sample_reservoir {
	char **v;
	int64_t n, k; /* held, wanted */
	int64_t seen; /* offered so far */
	uint64_t state;
};
RC_MUST_CHECK rcode sample_reservoir_init(struct sample_reservoir *r, int64_t k, uint64_t seed);
RC_MUST_CHECK rcode sample_reservoir_offer(struct sample_reservoir *r, const char *text);
void sample_reservoir_free(struct sample_reservoir *r);
/* The next number of a splitmix64 sequence (a seed's stream). */
uint64_t sample_next(uint64_t *state);

struct sample_opts {
	int64_t n;     /* ids of each side, 1 to SAMPLE_MAX */
	uint64_t seed; /* the draw's seed (below 2^31: JSON and the journal keep it exactly) */
	/* a signal was caught: the draw stops, the run is not begun */
	volatile sig_atomic_t *stop;
};

/* What a sample found: the run (its result), and each side's estimate. */
struct sample_result {
	struct engine_result run; /* run.run_id 0: no run was begun */
	int64_t asked;            /* N */
	uint64_t seed;
	const char *method; /* how the MongoDB side was drawn: "$sample", "id stream" */
	int64_t population; /* documents the id stream read; -1: not counted */
	int64_t mongo_n, missing, stale;
	double rate, low, high;
	/* every document (copy) of the side was looked up: its rate is exact for
	 * that moment, and its interval that rate alone */
	bool mongo_all, index_all;
	bool orphans_estimated; /* the index answered the draw */
	int64_t index_n, orphans;
	double orphan_rate, orphan_low, orphan_high;
	double seconds;
	char note[400]; /* what the numbers do not say; "" when nothing */
};

/* Draws each side's sample, looks the ids up (a RUN_IDS run with
 * engine_opts.sample, through e), reads back from the journal which of
 * each side's ids the run judged drifted, computes the intervals and
 * journals them (run_samples). A run's own error comes back as its rcode
 * with res->run filled as far as it got. */
RC_MUST_CHECK rcode sample_run(struct sample_result *res, struct engine *e,
                               const struct config *cfg, const struct sample_opts *o,
                               struct rerror *err);

#endif
