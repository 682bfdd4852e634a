/*
 * owned.h: the fields only the index owns (OPENSEARCH_INDEX_OWNED_FIELDS:
 * an enrichment job's embeddings) and the leftovers: top-level fields a
 * copy holds that the body a repair writes does not, and that the index
 * does not own (a field the transform renamed or stopped writing, a field
 * removed from the MongoDB document). docs/TRANSFORM.md says what is done
 * with them. Pure: no I/O.
 *
 * The setting is a comma list of top-level names (config.c checks it: no
 * '.', nothing between commas); blanks around a name are ignored; the word
 * `none` alone names no field but says the setting is given.
 */
#ifndef RECONCILER_OWNED_H
#define RECONCILER_OWNED_H

#include "error.h"
#include "jtree.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>

/* Whether list says which fields the index owns ("none" included): only
 * then are leftovers removed. */
bool owned_said(const char *list);

/* Whether list names the top-level field name (len bytes). */
bool owned_has(const char *list, const char *name, size_t len);

/* The names of list, each malloc'd, in *out (n of them; NULL for none).
 * owned_names_free frees them. */
RC_MUST_CHECK rcode owned_names(char ***out, size_t *n, const char *list);
void owned_names_free(char **names, size_t n);

/* The leftovers of copy (a _source object) against body (the body a repair
 * writes, an object): its top-level members body does not have and list
 * does not name, appended to names each as "-name", comma-separated after
 * what names holds, at most max bytes of names (then ",..." ends the list).
 * *count: how many there are (all of them). */
RC_MUST_CHECK rcode owned_leftovers(struct buf *names, size_t max, size_t *count,
                                    const struct jt *copy, const struct jt *body, const char *list);

/* What replaces a copy whose leftovers go: body (JSON object text, len
 * bytes) with each field list names that copy (its _source, an object, or
 * NULL) holds and body does not write, appended with copy's value as it is
 * (its text: numbers exact). A line break inside the copy's text (only ever
 * blank space in JSON) becomes a space: a _bulk source is one line.
 * *carried: how many fields were added. */
RC_MUST_CHECK rcode owned_carry(struct buf *out, size_t *carried, const char *body, size_t len,
                                const struct jt *copy, const char *list);

#endif
