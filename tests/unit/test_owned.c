/* test_owned.c: the index's own fields (OPENSEARCH_INDEX_OWNED_FIELDS),
 * leftovers, and the body that replaces a copy with them gone. */
#include "check.h"
#include "owned.h"

#include <stdlib.h>

static struct jt *
parse(const char *s)
{
	struct jt *t = NULL;
	struct rerror err = {0};

	CHECK(jt_parse(&t, s, strlen(s), &err) == RC_OK);
	return t;
}

static void
test_list(void)
{
	char **v = NULL;
	size_t n = 9;

	CHECK(!owned_said(""));
	CHECK(!owned_said(NULL));
	CHECK(owned_said("none"));
	CHECK(owned_said("image_embedding"));
	CHECK(owned_has(" image_embedding , image_phash", "image_phash", 11));
	CHECK(owned_has(" image_embedding , image_phash", "image_embedding", 15));
	CHECK(!owned_has(" image_embedding , image_phash", "image", 5));
	CHECK(!owned_has("", "a", 1));
	CHECK(!owned_has("none", "none", 4));  /* the word: no field */
	CHECK(owned_has("none,x", "none", 4)); /* in a list: a name */
	CHECK(owned_names(&v, &n, " a, bb ,c") == RC_OK);
	CHECK(n == 3 && v && strcmp(v[0], "a") == 0 && strcmp(v[1], "bb") == 0 &&
	      strcmp(v[2], "c") == 0);
	owned_names_free(v, n);
	CHECK(owned_names(&v, &n, " none ") == RC_OK);
	CHECK(n == 0);
	owned_names_free(v, n);
}

static void
test_leftovers(void)
{
	struct jt *copy = parse("{\"mongo_id\":\"1\",\"title\":\"a\",\"name\":\"a\",\"emb\":[1],"
	                        "\"old\":null,\"title\":\"b\"}");
	struct jt *body = parse("{\"mongo_id\":\"1\",\"name\":\"a\"}");
	struct buf b = {0};
	size_t count = 0;

	CHECK(owned_leftovers(&b, 200, &count, copy, body, "emb") == RC_OK);
	CHECK(count == 2);
	CHECK_STR(b.data, "-title,-old");
	/* after the fields that differ */
	buf_reset(&b);
	CHECK(buf_puts(&b, "price") == RC_OK);
	CHECK(owned_leftovers(&b, 200, &count, copy, body, "") == RC_OK);
	CHECK(count == 3);
	CHECK_STR(b.data, "price,-title,-emb,-old");
	/* cut at max */
	buf_reset(&b);
	CHECK(owned_leftovers(&b, 10, &count, copy, body, "") == RC_OK);
	CHECK(count == 3);
	CHECK_STR(b.data, "-title,...");
	/* a list already cut stays cut */
	buf_reset(&b);
	CHECK(buf_puts(&b, "a,...") == RC_OK);
	CHECK(owned_leftovers(&b, 200, &count, copy, body, "") == RC_OK);
	CHECK(count == 3);
	CHECK_STR(b.data, "a,...");
	/* none: every field the body lacks */
	buf_reset(&b);
	CHECK(owned_leftovers(&b, 200, &count, copy, body, "none") == RC_OK);
	CHECK(count == 3);
	/* nothing extra */
	buf_reset(&b);
	CHECK(owned_leftovers(&b, 200, &count, body, body, "") == RC_OK);
	CHECK(count == 0 && b.len == 0);
	buf_free(&b);
	jt_free(copy);
	jt_free(body);
}

static void
test_carry(void)
{
	struct jt *copy =
	    parse("{\"mongo_id\":\"1\",\"title\":\"a\",\"emb\":[0.10000000000000001,\n"
	          "9007199254740993],\"name\":\"old\",\"x\":1}");
	struct buf out = {0};
	size_t n = 9;
	const char *body = "{\"mongo_id\":\"1\",\"name\":\"new\"}";

	CHECK(owned_carry(&out, &n, body, strlen(body), copy, "emb, name, gone") == RC_OK);
	CHECK(n == 1); /* name: the body's value wins; gone: the copy has none */
	CHECK_STR(out.data, "{\"mongo_id\":\"1\",\"name\":\"new\",\"emb\":[0.10000000000000001, "
	                    "9007199254740993]}");
	buf_reset(&out);
	CHECK(owned_carry(&out, &n, "{}", 2, copy, "x") == RC_OK);
	CHECK(n == 1);
	CHECK_STR(out.data, "{\"x\":1}");
	buf_reset(&out);
	CHECK(owned_carry(&out, &n, body, strlen(body), copy, "none") == RC_OK);
	CHECK(n == 0);
	CHECK_STR(out.data, body);
	buf_reset(&out);
	CHECK(owned_carry(&out, &n, body, strlen(body), NULL, "emb") == RC_OK);
	CHECK(n == 0);
	CHECK_STR(out.data, body);
	buf_free(&out);
	jt_free(copy);
}

int
main(void)
{
	test_list();
	test_leftovers();
	test_carry();
	return check_done("test_owned");
}
