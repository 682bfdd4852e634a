/*
 * owned.c: owned fields and leftovers (owned.h).
 *
 * The list is scanned where it is asked about rather than parsed once into
 * the run: it holds a few short names, a copy a few dozen top-level
 * members, and no run, repair or diff then carries a parsed form's
 * lifetime. Values carried into a replacing body are the copy's own text
 * (jtree keeps it), so an embedding's floats go back byte for byte.
 */
#include "owned.h"

#include "doc.h"

#include <stdlib.h>
#include <string.h>

/* The next name of a list from *at: its start and length, blanks around
 * it dropped; false at the end. */
static bool
next_name(const char **at, const char **name, size_t *len)
{
	const char *s = *at;

	if (*s == '\0')
		return false;
	size_t n = strcspn(s, ",");
	*at = s[n] ? s + n + 1 : s + n;
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	*name = s;
	*len = n;
	return true;
}

/* Whether list is the word none alone (blanks around it ignored). */
static bool
is_none(const char *list)
{
	const char *at = list, *name;
	size_t len;

	return next_name(&at, &name, &len) && len == 4 && memcmp(name, "none", 4) == 0 &&
	       *at == '\0' && strchr(list, ',') == NULL;
}

bool
owned_said(const char *list)
{
	return list && *list;
}

bool
owned_has(const char *list, const char *name, size_t len)
{
	const char *at = list, *n;
	size_t nl;

	if (list == NULL || is_none(list))
		return false;
	while (next_name(&at, &n, &nl))
		if (nl == len && nl && memcmp(n, name, len) == 0)
			return true;
	return false;
}

void
owned_names_free(char **names, size_t n)
{
	for (size_t i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
}

rcode
owned_names(char ***out, size_t *n, const char *list)
{
	const char *at = list, *name;
	size_t len, cap = 0;
	char **v = NULL;

	*out = NULL;
	*n = 0;
	if (list == NULL || is_none(list))
		return RC_OK;
	for (const char *c = list; *c; c++)
		cap += *c == ',';
	if ((v = calloc(cap + 1, sizeof(*v))) == NULL)
		return RC_ERR_NOMEM;
	while (next_name(&at, &name, &len)) {
		if (len == 0)
			continue;
		if ((v[*n] = strndup(name, len)) == NULL) {
			owned_names_free(v, *n);
			*n = 0;
			return RC_ERR_NOMEM;
		}
		(*n)++;
	}
	*out = v;
	return RC_OK;
}

/* Whether obj (an object) has a member of this name. */
static bool
has_member(const struct jt *obj, const char *key, size_t len)
{
	for (size_t i = 0; obj && obj->type == JT_OBJECT && i < obj->n; i++)
		if (obj->kids[i].key_len == len && memcmp(obj->kids[i].key, key, len) == 0)
			return true;
	return false;
}

rcode
owned_leftovers(struct buf *names, size_t max, size_t *count, const struct jt *copy,
                const struct jt *body, const char *list)
{
	size_t start = 0;
	bool cut = false;
	rcode rc = RC_OK;

	*count = 0;
	if (copy == NULL || copy->type != JT_OBJECT)
		return RC_OK;
	/* a list cut short by the fields that differ stays cut */
	if (names->len >= 3 && memcmp(names->data + names->len - 3, "...", 3) == 0)
		cut = true;
	for (size_t i = 0; rc == RC_OK && i < copy->n; i++) {
		const struct jt *m = &copy->kids[i];
		if (has_member(body, m->key, m->key_len) || owned_has(list, m->key, m->key_len))
			continue;
		/* a name given twice in the copy's text is one field */
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = copy->kids[j].key_len == m->key_len &&
			       memcmp(copy->kids[j].key, m->key, m->key_len) == 0;
		if (seen)
			continue;
		(*count)++;
		if (cut)
			continue;
		size_t sep = names->len > start ? 1 : 0;
		if (names->len + sep + 1 + m->key_len > max) {
			cut = true;
			rc = buf_puts(names, names->len > start ? ",..." : "...");
			continue;
		}
		rc = buf_puts(names, sep ? ",-" : "-");
		if (rc == RC_OK)
			rc = buf_append(names, m->key, m->key_len);
	}
	return rc;
}

/* Appends text (len bytes) with line breaks as spaces. */
static RC_MUST_CHECK rcode
append_one_line(struct buf *out, const char *text, size_t len)
{
	size_t at = out->len;
	rcode rc = buf_append(out, text, len);

	for (size_t i = at; rc == RC_OK && i < out->len; i++)
		if (out->data[i] == '\n' || out->data[i] == '\r')
			out->data[i] = ' ';
	return rc;
}

rcode
owned_carry(struct buf *out, size_t *carried, const char *body, size_t len, const struct jt *copy,
            const char *list)
{
	struct jt *bt = NULL;
	struct rerror err = {0};
	size_t close = len, added = 0;
	rcode rc;

	*carried = 0;
	while (close > 0 && body[close - 1] != '}')
		close--;
	if (close == 0 || (rc = jt_parse(&bt, body, len, &err)) == RC_ERR_INVALID ||
	    bt->type != JT_OBJECT) {
		/* not an object (cannot happen: the transform's own body): as it is */
		jt_free(bt);
		return buf_append(out, body, len);
	}
	if (rc)
		return rc;
	close--; /* the closing brace */
	rc = buf_append(out, body, close);
	for (size_t i = 0; rc == RC_OK && copy && copy->type == JT_OBJECT && i < copy->n; i++) {
		const struct jt *m = &copy->kids[i];
		if (!owned_has(list, m->key, m->key_len) || has_member(bt, m->key, m->key_len))
			continue;
		/* the first of a name given twice */
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = copy->kids[j].key_len == m->key_len &&
			       memcmp(copy->kids[j].key, m->key, m->key_len) == 0;
		if (seen)
			continue;
		rc = buf_puts(out, bt->n || added ? "," : "");
		if (rc == RC_OK)
			rc = doc_json_string(out, m->key, m->key_len);
		if (rc == RC_OK)
			rc = buf_puts(out, ":");
		if (rc == RC_OK)
			rc = append_one_line(out, m->raw, m->raw_len);
		added++;
	}
	if (rc == RC_OK)
		rc = buf_append(out, body + close, len - close);
	if (rc == RC_OK)
		*carried = added;
	jt_free(bt);
	return rc;
}
