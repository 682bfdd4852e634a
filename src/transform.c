/*
 * transform.c: the body a mirror writes for one document, when it is not
 * the raw copy (see transform.h; users' reference: docs/TRANSFORM.md).
 *
 * Declarative steps work on BSON: without a script the kept and renamed
 * fields are copied into a new document and doc_to_json writes it, so the
 * type mapping stays the one of docs/MAPPING.md. With a script, the
 * document goes into Lua as a table (same mapping: what a JSON reader
 * would see), transform(doc) runs, and the returned table is written as
 * JSON by put_lua below.
 *
 * Lua tables have no key order, so every table made from a BSON document
 * carries a metatable {__order = {keys in document order}}; a script may
 * give its own tables one too. An object is written in __order's order,
 * then the remaining keys sorted bytewise: the same input always gives the
 * same bytes, and `return doc` gives exactly doc_to_json's output.
 *
 * Sandbox: only the base (less load, loadfile, dofile, collectgarbage,
 * print -> debug log), string (less dump), table, math, utf8 and coroutine
 * libraries; io, os, debug, package and require are stubs that raise a
 * clear error, binary chunks are never loaded from disk, and setmetatable
 * refuses __gc (Lua runs finalizers with hooks off: outside any budget).
 * Budgets: a count hook adds up instructions across every coroutine of the
 * call and raises past RECONCILE_TRANSFORM_MAX_INSTRUCTIONS (from then on
 * at every instruction, so a script's own pcall cannot swallow it); the
 * allocator refuses past RECONCILE_TRANSFORM_MAX_MEMORY. After either
 * overrun the state is closed and rebuilt from the bytecode compiled at
 * start (the script's globals start afresh); after an ordinary runtime
 * error it is kept. All Lua work runs inside lua_pcall, so an allocation failure
 * anywhere is an error value, never a panic.
 */
#include "transform.h"
#include "doc.h"
#include "log.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* Fixed stack slots while a document is written: the metatable that marks
 * arrays and the string "__order", pushed once per call. */
#define SLOT_ARRAY_MT  1
#define SLOT_ORDER_KEY 2

/* The count hook's period: budgets are exact to this many instructions. */
#define HOOK_EVERY 1000

/* reconciler.null (JSON's null): one address, compared by identity. */
static const char null_sentinel;
#define JSON_NULL ((void *)&null_sentinel)

struct rename {
	char *from;
	char *to;
};

/* A key of the object being written, kept on the Lua stack meanwhile (so
 * s stays valid); rank is its place in __order, else LUA_MAXINTEGER. */
struct key_slot {
	int stack;
	const char *s;
	size_t len;
	lua_Integer rank;
};

/* One level of the path to the value being converted, for messages. */
struct path_step {
	const char *key; /* NULL: an array item */
	size_t len;
	lua_Integer index;
};

struct transform {
	char **routes; /* OPENSEARCH_ROUTING_FIELD, in order; none = no routing rule */
	size_t n_routes;
	char **keep; /* sorted; none = every field */
	size_t n_keep;
	char **exclude; /* sorted */
	size_t n_exclude;
	struct rename *renames;
	size_t n_renames;

	char *path;      /* the script; NULL = none */
	char *chunkname; /* "@path": Lua's messages then start "path:LINE:" */
	struct buf bytecode;
	char digest[17]; /* transform_digest: of bytecode, once loaded */
	lua_State *L;
	int fn_ref;       /* the script's transform function */
	int array_mt_ref; /* the metatable that marks arrays */
	int pick_mts_ref; /* reconciler.pick's metatables, weakly by key list */

	int64_t max_instructions, used;
	int hook_every;
	bool in_call;
	bool over_instructions;
	size_t max_memory, mem_used;
	bool mem_refused;

	struct key_slot *keys; /* a stack of slots shared by nested objects */
	size_t n_keys, cap_keys;
	size_t *place; /* order_keys' scratch: slot by rank */
	size_t cap_place;
};

struct apply_ctx {
	struct transform *t;
	const bson_t *doc;
	const char *id_field, *id_canonical;
	struct buf *out;
	char *routing;
	bool skip;
	rcode rc; /* set before raising an error that is not the script's */
	int depth;
	struct path_step path[DOC_MAX_DEPTH + 2];
};

/* ---- settings --------------------------------------------------------- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The name at s[0..n) without blanks around it, malloc'd. */
static char *
trim_dup(const char *s, size_t n)
{
	char *r;

	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	r = malloc(n + 1);
	if (r) {
		memcpy(r, s, n);
		r[n] = '\0';
	}
	return r;
}

static void
free_names(char **names, size_t n)
{
	for (size_t i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
}

/* The items of a comma list, blanks around them trimmed (none for ""). */
static RC_MUST_CHECK rcode
split_list(char ***out, size_t *n_out, const char *list)
{
	char **items = NULL;
	size_t n = 0;
	const char *p = list;

	*out = NULL;
	*n_out = 0;
	if (list == NULL || *list == '\0')
		return RC_OK;
	for (;;) {
		size_t len = strcspn(p, ",");
		char **grown = realloc(items, (n + 1) * sizeof(*items));
		if (grown == NULL || (grown[n] = trim_dup(p, len)) == NULL) {
			free_names(grown ? grown : items, n);
			return RC_ERR_NOMEM;
		}
		items = grown;
		n++;
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
	*out = items;
	*n_out = n;
	return RC_OK;
}

static bool
name_ok(const char *name)
{
	return *name && !strpbrk(name, ".:");
}

/* A RECONCILE_FIELDS or RECONCILE_EXCLUDE list as sorted names (config.c
 * checked its shape; checked again for configs built by hand). */
static RC_MUST_CHECK rcode
parse_names(char ***out, size_t *n_out, const char *list, const char *setting, struct rerror *err)
{
	if (split_list(out, n_out, list))
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < *n_out; i++) {
		if (!name_ok((*out)[i])) {
			free_names(*out, *n_out);
			*out = NULL;
			*n_out = 0;
			return rerror_set(err, RC_ERR_CONFIG,
			                  "%s=\"%s\" is invalid: expected field names separated by "
			                  "commas (top level: no '.')",
			                  setting, list);
		}
	}
	if (*n_out > 1)
		qsort(*out, *n_out, sizeof(**out), cmp_str);
	return RC_OK;
}

static bool
has_name(char *const *names, size_t n, const char *key)
{
	return n && bsearch(&key, names, n, sizeof(*names), cmp_str) != NULL;
}

/* RECONCILE_RENAME into t->renames: from:to pairs, each source and each
 * target once, never _id nor onto the id field. */
static RC_MUST_CHECK rcode
parse_renames(struct transform *t, const char *list, const char *id_field, struct rerror *err)
{
	char **items = NULL;
	size_t n = 0;
	bool shape_ok = true;
	rcode rc = RC_OK;

	if (split_list(&items, &n, list))
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	t->renames = calloc(n ? n : 1, sizeof(*t->renames));
	if (t->renames == NULL) {
		free_names(items, n);
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; rc == RC_OK && shape_ok && i < n; i++) {
		char *colon = strchr(items[i], ':');
		struct rename *r = &t->renames[t->n_renames];
		if (colon == NULL) {
			shape_ok = false;
			break;
		}
		r->from = trim_dup(items[i], (size_t)(colon - items[i]));
		r->to = trim_dup(colon + 1, strlen(colon + 1));
		t->n_renames++;
		if (r->from == NULL || r->to == NULL) {
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
			break;
		}
		shape_ok = name_ok(r->from) && name_ok(r->to);
		for (size_t j = 0; j + 1 < t->n_renames; j++)
			if (!strcmp(t->renames[j].from, r->from) ||
			    !strcmp(t->renames[j].to, r->to))
				shape_ok = false;
		if (shape_ok && (!strcmp(r->from, "_id") || !strcmp(r->to, "_id")))
			rc = rerror_set(err, RC_ERR_CONFIG,
			                "RECONCILE_RENAME=\"%s\" is invalid: _id is the document's "
			                "id, not a field to rename",
			                list);
		else if (shape_ok && id_field && *id_field && !strcmp(r->to, id_field))
			rc = rerror_set(err, RC_ERR_CONFIG,
			                "RECONCILE_RENAME=\"%s\" is invalid: %s is "
			                "OPENSEARCH_ID_FIELD, always the MongoDB id",
			                list, r->to);
	}
	free_names(items, n);
	if (rc == RC_OK && !shape_ok)
		rc = rerror_set(
		    err, RC_ERR_CONFIG,
		    "RECONCILE_RENAME=\"%s\" is invalid: expected from:to pairs of field "
		    "names separated by commas (top level: no '.'; each name renamed "
		    "once, each new name used once)",
		    list);
	return rc;
}

/* Whether a top-level field passes RECONCILE_FIELDS and RECONCILE_EXCLUDE
 * (named as in MongoDB). */
static bool
kept(const struct transform *t, const char *key)
{
	if (t->n_keep && !has_name(t->keep, t->n_keep, key))
		return false;
	return !has_name(t->exclude, t->n_exclude, key);
}

/* The name a top-level field of doc is written under, or NULL when it is
 * left out. A renamed field wins over a field already called its new name. */
static const char *
field_name(const struct transform *t, const bson_t *doc, const char *key)
{
	bson_iter_t probe;

	if (!kept(t, key))
		return NULL;
	for (size_t i = 0; i < t->n_renames; i++)
		if (!strcmp(t->renames[i].from, key))
			return t->renames[i].to;
	for (size_t i = 0; i < t->n_renames; i++)
		if (!strcmp(t->renames[i].to, key) && kept(t, t->renames[i].from) &&
		    bson_iter_init_find(&probe, doc, t->renames[i].from))
			return NULL;
	return key;
}

/* ---- the Lua state ---------------------------------------------------- */

/* The allocator: counts every byte of the state and refuses growth past
 * the budget (shrinking never fails, as Lua requires). */
static void *
budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct transform *t = ud;
	size_t old = ptr ? osize : 0;
	void *p;

	if (nsize == 0) {
		free(ptr);
		t->mem_used -= old;
		return NULL;
	}
	if (nsize > old && t->mem_used + (nsize - old) > t->max_memory) {
		t->mem_refused = true;
		return NULL;
	}
	p = realloc(ptr, nsize);
	if (p == NULL)
		return nsize <= old ? ptr : NULL;
	t->mem_used = t->mem_used - old + nsize;
	return p;
}

static struct transform *
owner(lua_State *L)
{
	return *(struct transform **)lua_getextraspace(L);
}

/* Counts instructions; past the budget (or outside a call: finalizers at
 * lua_close) raises, and keeps raising at every instruction of every
 * thread so that no pcall in the script can go on. */
static void
count_hook(lua_State *L, lua_Debug *ar)
{
	struct transform *t = owner(L);

	(void)ar;
	if (t->in_call) {
		t->used += t->hook_every;
		if (t->used <= t->max_instructions)
			return;
	}
	t->over_instructions = true;
	lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
	if (L != t->L)
		lua_sethook(t->L, count_hook, LUA_MASKCOUNT, 1);
	luaL_error(L,
	           "instruction budget exceeded: more than %I Lua instructions in one call "
	           "(RECONCILE_TRANSFORM_MAX_INSTRUCTIONS)",
	           (lua_Integer)t->max_instructions);
}

static int
panic(lua_State *L)
{
	/* never reached: every Lua call runs under lua_pcall */
	log_error("transform: Lua panic: %s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
	abort();
}

/* A refused function: raises "FILE:LINE: NAME is not available ...", the
 * line being the script's that called it. */
static int
refuse_fn(lua_State *L)
{
	luaL_where(L, 1);
	lua_pushfstring(L, "%s is not available in the transform sandbox",
	                lua_tostring(L, lua_upvalueindex(1)));
	lua_concat(L, 2);
	return lua_error(L);
}

/* __index of a refused library: raises "FILE:LINE: LIB.KEY is not
 * available ...". */
static int
refuse_lib(lua_State *L)
{
	const char *lib = lua_tostring(L, lua_upvalueindex(1));
	const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";

	luaL_where(L, 1);
	lua_pushfstring(L, "%s.%s is not available: the transform sandbox has no %s library", lib,
	                key, lib);
	lua_concat(L, 2);
	return lua_error(L);
}

static void
set_refused_fn(lua_State *L, int table, const char *field, const char *shown)
{
	lua_pushstring(L, shown);
	lua_pushcclosure(L, refuse_fn, 1);
	lua_setfield(L, table, field);
}

/* setmetatable without finalizers: Lua runs __gc with hooks off, so a
 * finalizer would run outside the instruction budget (an endless one would
 * hang the process, at lua_close at the latest). Lua marks an object for
 * finalization only when its metatable has __gc as it is set, so refusing
 * such a metatable here is enough. */
static int
l_setmetatable(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL) {
			luaL_where(L, 1);
			lua_pushliteral(L, "__gc metamethods are not available in the transform "
			                   "sandbox (finalizers would run outside the budgets)");
			lua_concat(L, 2);
			return lua_error(L);
		}
		lua_pop(L, 1);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

static int
l_print(lua_State *L)
{
	int n = lua_gettop(L);
	luaL_Buffer b;

	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, '\t');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	log_debug("transform: %s", lua_tostring(L, -1));
	return 0;
}

static int
l_array(lua_State *L)
{
	struct transform *t = owner(L);

	if (lua_isnoneornil(L, 1)) {
		lua_settop(L, 0);
		lua_newtable(L);
	} else {
		luaL_checktype(L, 1, LUA_TTABLE);
		lua_settop(L, 1);
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, t->array_mt_ref);
	lua_setmetatable(L, 1);
	return 1;
}

static bool
is_array_mt(lua_State *L, struct transform *t, int idx)
{
	bool yes;

	if (!lua_getmetatable(L, idx))
		return false;
	lua_rawgeti(L, LUA_REGISTRYINDEX, t->array_mt_ref);
	yes = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	return yes;
}

static int
l_is_array(lua_State *L)
{
	lua_pushboolean(L, lua_type(L, 1) == LUA_TTABLE && is_array_mt(L, owner(L), 1));
	return 1;
}

/* reconciler.pick(t, keys): a new table holding t's values for the keys
 * listed (absent ones stay absent), written in the list's order. Sized
 * once and filled in C: far cheaper than a loop in Lua. */
static int
l_pick(lua_State *L)
{
	struct transform *t = owner(L);
	lua_Integer n;

	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	n = (lua_Integer)lua_rawlen(L, 2);
	lua_createtable(L, 0, n < 1 << 20 ? (int)n : 0);
	for (lua_Integer i = 1; i <= n; i++) {
		if (lua_rawgeti(L, 2, i) != LUA_TSTRING)
			return luaL_error(L, "reconciler.pick: keys[%I] is a %s, not a string", i,
			                  luaL_typename(L, -1));
		lua_pushvalue(L, -1);
		if (lua_rawget(L, 1) == LUA_TNIL)
			lua_pop(L, 2);
		else
			lua_rawset(L, 3);
	}
	/* the metatable {__order = keys}: one per list, kept while the list lives */
	lua_rawgeti(L, LUA_REGISTRYINDEX, t->pick_mts_ref);
	lua_pushvalue(L, 2);
	if (lua_rawget(L, 4) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_createtable(L, 0, 1);
		lua_pushvalue(L, 2);
		lua_setfield(L, -2, "__order");
		lua_pushvalue(L, 2);
		lua_pushvalue(L, -2);
		lua_rawset(L, 4);
	}
	lua_setmetatable(L, 3);
	lua_settop(L, 3);
	return 1;
}

/* The libraries, the refusals, and the reconciler table. */
/* xpcall(f, handler, ...) under the budgets. Lua's own runs the handler
 * where the error was raised, and an instruction-budget error is raised in
 * the count hook, where hooks are off: the handler would run unbounded (an
 * endless handler hung the run). Here f runs under pcall and the handler
 * afterwards, as ordinary code the hook still counts (an exhausted budget
 * fails it at once); what the handler returns is xpcall's answer, as in Lua.
 * Unlike Lua's, the handler sees the stack already unwound (no traceback of
 * the error's place: the sandbox offers no debug library anyway). */
static int
l_xpcall(lua_State *L)
{
	int n = lua_gettop(L);

	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_pushvalue(L, 1);
	for (int i = 3; i <= n; i++)
		lua_pushvalue(L, i);
	if (lua_pcall(L, n - 2, LUA_MULTRET, 0) == LUA_OK) {
		lua_pushboolean(L, 1);
		lua_insert(L, n + 1);
		return lua_gettop(L) - n;
	}
	lua_pushvalue(L, 2);
	lua_insert(L, -2);
	lua_call(L, 1, 1); /* its one result, as Lua's; its own errors go on up */
	lua_pushboolean(L, 0);
	lua_insert(L, -2);
	return 2;
}

static int
setup_sandbox(lua_State *L)
{
	static const struct {
		const char *name;
		lua_CFunction open;
	} libs[] = {{LUA_GNAME, luaopen_base},        {LUA_TABLIBNAME, luaopen_table},
	            {LUA_STRLIBNAME, luaopen_string}, {LUA_MATHLIBNAME, luaopen_math},
	            {LUA_UTF8LIBNAME, luaopen_utf8},  {LUA_COLIBNAME, luaopen_coroutine}};
	static const char *const refused_globals[] = {"load",           "loadfile", "dofile",
	                                              "collectgarbage", "require",  NULL};
	static const char *const refused_libs[] = {"io", "os", "debug", "package", NULL};
	struct transform *t = owner(L);

	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		luaL_requiref(L, libs[i].name, libs[i].open, 1);
		lua_pop(L, 1);
	}
	lua_pushglobaltable(L);
	for (int i = 0; refused_globals[i]; i++)
		set_refused_fn(L, lua_gettop(L), refused_globals[i], refused_globals[i]);
	for (int i = 0; refused_libs[i]; i++) {
		lua_newtable(L);
		lua_newtable(L);
		lua_pushstring(L, refused_libs[i]);
		lua_pushcclosure(L, refuse_lib, 1);
		lua_setfield(L, -2, "__index");
		lua_pushstring(L, refused_libs[i]);
		lua_setfield(L, -2, "__metatable");
		lua_setmetatable(L, -2);
		lua_setfield(L, -2, refused_libs[i]);
	}
	lua_pushnil(L);
	lua_setfield(L, -2, "warn");
	lua_pushcfunction(L, l_print);
	lua_setfield(L, -2, "print");
	lua_getfield(L, -1, "setmetatable");
	lua_pushcclosure(L, l_setmetatable, 1);
	lua_setfield(L, -2, "setmetatable");
	lua_pushcfunction(L, l_xpcall);
	lua_setfield(L, -2, "xpcall");
	lua_getfield(L, -1, LUA_STRLIBNAME);
	set_refused_fn(L, lua_gettop(L), "dump", "string.dump");
	lua_pop(L, 1);

	/* the metatable that marks arrays, protected so it stays one */
	lua_createtable(L, 0, 2);
	lua_pushliteral(L, "reconciler.array");
	lua_setfield(L, -2, "__name");
	lua_pushliteral(L, "reconciler.array");
	lua_setfield(L, -2, "__metatable");
	t->array_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);

	/* pick's metatables, by list, weakly */
	lua_createtable(L, 0, 4);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "k");
	lua_setfield(L, -2, "__mode");
	lua_setmetatable(L, -2);
	t->pick_mts_ref = luaL_ref(L, LUA_REGISTRYINDEX);

	lua_createtable(L, 0, 4);
	lua_pushcfunction(L, l_pick);
	lua_setfield(L, -2, "pick");
	lua_pushlightuserdata(L, JSON_NULL);
	lua_setfield(L, -2, "null");
	lua_pushcfunction(L, l_array);
	lua_setfield(L, -2, "array");
	lua_pushcfunction(L, l_is_array);
	lua_setfield(L, -2, "is_array");
	lua_setfield(L, -2, "reconciler");
	lua_pop(L, 1);
	return 0;
}

static int
dump_writer(lua_State *L, const void *p, size_t sz, void *ud)
{
	(void)L;
	return buf_append(ud, p, sz) ? 1 : 0;
}

/* Loads the script (text from the file the first time, then the bytecode
 * made of it), runs its top level and keeps its transform function. */
static int
load_script(lua_State *L)
{
	struct transform *t = owner(L);
	int status;

	if (t->bytecode.len == 0) {
		status = luaL_loadfilex(L, t->path, "t");
		if (status == LUA_OK) {
			if (lua_dump(L, dump_writer, &t->bytecode, 0) != 0) {
				buf_free(&t->bytecode);
				return luaL_error(L, "out of memory");
			}
		}
	} else {
		status = luaL_loadbufferx(L, t->bytecode.data, t->bytecode.len, t->chunkname, "b");
	}
	if (status != LUA_OK)
		return lua_error(L);
	lua_call(L, 0, 0);
	if (lua_getglobal(L, "transform") != LUA_TFUNCTION)
		return luaL_error(L, "%s defines no function transform(doc)", t->path);
	t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

static void
state_close(struct transform *t)
{
	if (t->L == NULL)
		return;
	t->in_call = false; /* any Lua code that ran now would stop at the first hook */
	lua_close(t->L);
	t->L = NULL;
}

/* The message of the error value on top of L's stack. */
static void
error_message(lua_State *L, rcode rc, struct rerror *err)
{
	if (lua_isstring(L, -1))
		rerror_set(err, rc, "%s", lua_tostring(L, -1));
	else
		rerror_set(err, rc, "(error object is a %s value)", luaL_typename(L, -1));
}

/* A fresh state holding the script. On failure the state is closed and
 * err says why: RC_ERR_CONFIG with Lua's "FILE:LINE: message" (or the
 * memory budget), RC_ERR_NOMEM. */
static RC_MUST_CHECK rcode
state_build(struct transform *t, struct rerror *err)
{
	lua_State *L;
	int status;

	t->mem_used = 0;
	t->mem_refused = false;
	L = lua_newstate(budget_alloc, t);
	if (L == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory (a new Lua state)");
	t->L = L;
	*(struct transform **)lua_getextraspace(L) = t;
	lua_atpanic(L, panic);
	t->in_call = true;
	t->used = 0;
	t->over_instructions = false;
	lua_sethook(L, count_hook, LUA_MASKCOUNT, t->hook_every);
	lua_pushcfunction(L, setup_sandbox);
	status = lua_pcall(L, 0, 0, 0);
	if (status == LUA_OK) {
		lua_pushcfunction(L, load_script);
		status = lua_pcall(L, 0, 0, 0);
	}
	t->in_call = false;
	if (status != LUA_OK) {
		rcode rc = RC_ERR_CONFIG;
		if (status == LUA_ERRMEM && t->mem_refused)
			rerror_set(err, rc,
			           "%s: memory budget exceeded while loading: more than %zu bytes "
			           "(RECONCILE_TRANSFORM_MAX_MEMORY)",
			           t->path, t->max_memory);
		else if (status == LUA_ERRMEM)
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory (loading %s)", t->path);
		else
			error_message(L, rc, err);
		/* every message names the script (a mirror each may have its own):
		 * Lua's syntax and runtime errors do ("FILE:LINE: ..."), a
		 * budget, a binary chunk or a non-string error object do not */
		if (rc == RC_ERR_CONFIG && strstr(err->message, t->path) == NULL) {
			char msg[sizeof(err->message)];
			snprintf(msg, sizeof(msg), "%s", err->message);
			rerror_set(err, rc, "%s: while loading the script: %s", t->path, msg);
		}
		state_close(t);
		return rc;
	}
	lua_gc(L, LUA_GCGEN, 0, 0); /* most of a call's tables die young */
	return RC_OK;
}

/* ---- construction ----------------------------------------------------- */

rcode
transform_new(struct transform **out, const struct config *cfg, struct rerror *err)
{
	struct transform *t;
	rcode rc;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return rerror_set(err, RC_ERR_NOMEM, "out of memory");
	t->fn_ref = LUA_NOREF;
	t->array_mt_ref = LUA_NOREF;
	t->max_instructions = cfg->transform_max_instructions;
	t->max_memory = (size_t)cfg->transform_max_memory;
	t->hook_every = t->max_instructions < HOOK_EVERY ? (int)t->max_instructions : HOOK_EVERY;
	if (t->hook_every < 1)
		t->hook_every = 1;
	rc = parse_names(&t->keep, &t->n_keep, cfg->fields, "RECONCILE_FIELDS", err);
	if (rc == RC_OK && split_list(&t->routes, &t->n_routes, cfg->routing_field))
		rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == RC_OK && i < t->n_routes; i++)
		if (!name_ok(t->routes[i]))
			rc =
			    rerror_set(err, RC_ERR_CONFIG,
			               "OPENSEARCH_ROUTING_FIELD=\"%s\" is invalid: expected field "
			               "names separated by commas (top level: no '.')",
			               cfg->routing_field);
	if (rc == RC_OK)
		rc =
		    parse_names(&t->exclude, &t->n_exclude, cfg->exclude, "RECONCILE_EXCLUDE", err);
	if (rc == RC_OK && has_name(t->exclude, t->n_exclude, "_id"))
		rc = rerror_set(err, RC_ERR_CONFIG,
		                "RECONCILE_EXCLUDE=\"%s\" is invalid: _id is the document's id (it "
		                "is never in the body; OPENSEARCH_ID_FIELD holds it)",
		                cfg->exclude);
	if (rc == RC_OK && cfg->rename && *cfg->rename)
		rc = parse_renames(t, cfg->rename, cfg->opensearch_id_field, err);
	if (rc == RC_OK && cfg->transform && *cfg->transform) {
		size_t n = strlen(cfg->transform);
		t->path = strdup(cfg->transform);
		t->chunkname = malloc(n + 2);
		if (t->path == NULL || t->chunkname == NULL) {
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		} else {
			t->chunkname[0] = '@';
			memcpy(t->chunkname + 1, t->path, n + 1);
			rc = state_build(t, err);
		}
		if (rc == RC_OK) {
			uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */
			for (size_t i = 0; i < t->bytecode.len; i++)
				h = (h ^ (unsigned char)t->bytecode.data[i]) * 0x100000001b3ULL;
			snprintf(t->digest, sizeof(t->digest), "%016" PRIx64, h);
		}
	}
	if (rc) {
		transform_free(t);
		return rc;
	}
	*out = t;
	return RC_OK;
}

void
transform_free(struct transform *t)
{
	if (t == NULL)
		return;
	state_close(t);
	free_names(t->routes, t->n_routes);
	free_names(t->keep, t->n_keep);
	free_names(t->exclude, t->n_exclude);
	for (size_t i = 0; i < t->n_renames; i++) {
		free(t->renames[i].from);
		free(t->renames[i].to);
	}
	free(t->renames);
	free(t->path);
	free(t->chunkname);
	buf_free(&t->bytecode);
	free(t->keys);
	free(t->place);
	free(t);
}

bool
transform_active(const struct transform *t)
{
	return t && (t->n_keep || t->n_exclude || t->n_renames || t->path);
}

bool
transform_scripted(const struct transform *t)
{
	return t && t->path;
}

const char *
transform_digest(const struct transform *t)
{
	return t && t->path ? t->digest : NULL;
}

/* ---- BSON -> Lua ------------------------------------------------------ */

/* Raises an error that is not the script's (rc other than INVALID). */
static int
raise_rc(lua_State *L, struct apply_ctx *c, rcode rc, const char *msg)
{
	c->rc = rc;
	lua_pushstring(L, msg);
	return lua_error(L);
}

static void push_value(lua_State *L, struct apply_ctx *c, const bson_iter_t *it, int depth);

static void
push_base64(lua_State *L, const uint8_t *d, uint32_t n)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	luaL_Buffer b;
	char *p = luaL_buffinitsize(L, &b, (size_t)(n + 2) / 3 * 4 + 1);
	size_t k = 0;

	for (uint32_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)d[i + 1] << 8;
		if (i + 2 < n)
			v |= d[i + 2];
		p[k++] = b64[(v >> 18) & 63];
		p[k++] = b64[(v >> 12) & 63];
		p[k++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		p[k++] = i + 2 < n ? b64[v & 63] : '=';
	}
	luaL_pushresultsize(&b, k);
}

/* Gives the table at -1 the metatable {__order = order}, order being the
 * table at -2, which is popped. */
static void
set_order(lua_State *L)
{
	lua_createtable(L, 0, 1);
	lua_rotate(L, -3, -1); /* order, table, mt -> table, mt, order */
	lua_pushvalue(L, SLOT_ORDER_KEY);
	lua_insert(L, -2);
	lua_rawset(L, -3);
	lua_setmetatable(L, -2);
}

/* A sub-document or array as a table. */
static void
push_container(lua_State *L, struct apply_ctx *c, const bson_iter_t *it, bool array, int depth)
{
	bson_iter_t child, count;
	int n = 0, i = 0;

	if (depth > DOC_MAX_DEPTH)
		raise_rc(L, c, RC_ERR_TOOLARGE, "nested deeper than 100 levels (MongoDB's limit)");
	if (!bson_iter_recurse(it, &child))
		raise_rc(L, c, RC_ERR_INVALID, "corrupt BSON: a sub-document cannot be read");
	luaL_checkstack(L, 8, "nested too deep");
	count = child;
	while (bson_iter_next(&count))
		n++;
	if (array) {
		lua_createtable(L, n, 0);
		while (bson_iter_next(&child)) {
			push_value(L, c, &child, depth + 1);
			lua_rawseti(L, -2, ++i);
		}
		lua_rawgeti(L, LUA_REGISTRYINDEX, c->t->array_mt_ref);
		lua_setmetatable(L, -2);
		return;
	}
	lua_createtable(L, n, 0); /* the order */
	lua_createtable(L, 0, n);
	while (bson_iter_next(&child)) {
		lua_pushlstring(L, bson_iter_key(&child), bson_iter_key_len(&child));
		lua_pushvalue(L, -1);
		lua_rawseti(L, -4, ++i);
		push_value(L, c, &child, depth + 1);
		lua_rawset(L, -3);
	}
	set_order(L);
}

/* The deprecated types, as text: a DBPointer's id, a code's or symbol's
 * text (a code's scope is left out). */
static void
push_legacy(lua_State *L, const bson_iter_t *it)
{
	char tmp[64];
	uint32_t len, slen;
	const char *s = NULL, *coll;
	const bson_oid_t *oid;
	const uint8_t *scope;

	switch (bson_iter_type(it)) {
	case BSON_TYPE_DBPOINTER:
		bson_iter_dbpointer(it, &len, &coll, &oid);
		bson_oid_to_string(oid, tmp);
		lua_pushstring(L, tmp);
		return;
	case BSON_TYPE_CODE:
		s = bson_iter_code(it, &len);
		break;
	case BSON_TYPE_SYMBOL:
		s = bson_iter_symbol(it, &len);
		break;
	case BSON_TYPE_CODEWSCOPE:
		s = bson_iter_codewscope(it, &len, &slen, &scope);
		break;
	default:
		lua_pushlightuserdata(L, JSON_NULL);
		return;
	}
	lua_pushlstring(L, s, len);
}

/* A timestamp as the object {t, i}, in that order. */
static void
push_timestamp(lua_State *L, const bson_iter_t *it)
{
	uint32_t ts, inc;

	bson_iter_timestamp(it, &ts, &inc);
	lua_createtable(L, 2, 0);
	lua_pushliteral(L, "t");
	lua_rawseti(L, -2, 1);
	lua_pushliteral(L, "i");
	lua_rawseti(L, -2, 2);
	lua_createtable(L, 0, 2);
	lua_pushinteger(L, ts);
	lua_setfield(L, -2, "t");
	lua_pushinteger(L, inc);
	lua_setfield(L, -2, "i");
	set_order(L);
}

static void
push_value(lua_State *L, struct apply_ctx *c, const bson_iter_t *it, int depth)
{
	char tmp[64];

	switch (bson_iter_type(it)) {
	case BSON_TYPE_DOUBLE:
		lua_pushnumber(L, bson_iter_double(it));
		return;
	case BSON_TYPE_UTF8: {
		uint32_t len;
		const char *s = bson_iter_utf8(it, &len);
		lua_pushlstring(L, s, len);
		return;
	}
	case BSON_TYPE_DOCUMENT:
		push_container(L, c, it, false, depth);
		return;
	case BSON_TYPE_ARRAY:
		push_container(L, c, it, true, depth);
		return;
	case BSON_TYPE_BINARY: {
		bson_subtype_t sub;
		uint32_t len;
		const uint8_t *data;
		bson_iter_binary(it, &sub, &len, &data);
		push_base64(L, data, len);
		return;
	}
	case BSON_TYPE_OID:
		bson_oid_to_string(bson_iter_oid(it), tmp);
		lua_pushstring(L, tmp);
		return;
	case BSON_TYPE_BOOL:
		lua_pushboolean(L, bson_iter_bool(it));
		return;
	case BSON_TYPE_DATE_TIME:
		util_ms_to_iso(bson_iter_date_time(it), tmp, sizeof(tmp));
		lua_pushstring(L, tmp);
		return;
	case BSON_TYPE_REGEX: {
		const char *opts, *re = bson_iter_regex(it, &opts);
		lua_pushfstring(L, "/%s/%s", re, opts ? opts : "");
		return;
	}
	case BSON_TYPE_DBPOINTER:
	case BSON_TYPE_CODE:
	case BSON_TYPE_SYMBOL:
	case BSON_TYPE_CODEWSCOPE:
		push_legacy(L, it);
		return;
	case BSON_TYPE_INT32:
		lua_pushinteger(L, bson_iter_int32(it));
		return;
	case BSON_TYPE_INT64:
		lua_pushinteger(L, bson_iter_int64(it));
		return;
	case BSON_TYPE_TIMESTAMP:
		push_timestamp(L, it);
		return;
	case BSON_TYPE_DECIMAL128: {
		bson_decimal128_t dec;
		char s[BSON_DECIMAL128_STRING];
		bson_iter_decimal128(it, &dec);
		bson_decimal128_to_string(&dec, s);
		lua_pushstring(L, s);
		return;
	}
	case BSON_TYPE_MAXKEY:
		lua_pushliteral(L, "MaxKey");
		return;
	case BSON_TYPE_MINKEY:
		lua_pushliteral(L, "MinKey");
		return;
	case BSON_TYPE_NULL:
	case BSON_TYPE_UNDEFINED:
	case BSON_TYPE_EOD:
		break;
	}
	lua_pushlightuserdata(L, JSON_NULL);
}

/* The document as transform(doc) sees it: _id as its canonical text
 * first, then the fields the declarative steps keep, under their names. */
static void
push_document(lua_State *L, struct apply_ctx *c)
{
	bson_iter_t it, count;
	int n = 1, i = 0;

	if (!bson_iter_init(&it, c->doc))
		raise_rc(L, c, RC_ERR_INVALID, "corrupt BSON: the document cannot be read");
	count = it;
	while (bson_iter_next(&count))
		n++;
	lua_createtable(L, n, 0);
	lua_createtable(L, 0, n);
	lua_pushliteral(L, "_id");
	lua_pushvalue(L, -1);
	lua_rawseti(L, -4, ++i);
	lua_pushstring(L, c->id_canonical);
	lua_rawset(L, -3);
	while (bson_iter_next(&it)) {
		const char *key = bson_iter_key(&it), *name;
		if (strcmp(key, "_id") == 0)
			continue;
		name = field_name(c->t, c->doc, key);
		if (name == NULL)
			continue;
		if (name == key)
			lua_pushlstring(L, key, bson_iter_key_len(&it));
		else
			lua_pushstring(L, name);
		lua_pushvalue(L, -1);
		lua_rawseti(L, -4, ++i);
		push_value(L, c, &it, 1);
		lua_rawset(L, -3);
	}
	if (it.err_off)
		raise_rc(L, c, RC_ERR_INVALID, "corrupt BSON: the document cannot be read whole");
	set_order(L);
}

/* ---- Lua -> JSON ------------------------------------------------------ */

/* Raises "where: what", where being the path to the value being written
 * (body.a.b[3]). */
static int
raise_at(lua_State *L, struct apply_ctx *c, rcode rc, const char *what)
{
	luaL_Buffer b;

	c->rc = rc;
	luaL_buffinit(L, &b);
	luaL_addstring(&b, "transform returned a body that cannot be written as JSON: body");
	/* a deep path (a table that contains itself) shows its last steps */
	if (c->depth > 12)
		luaL_addstring(&b, "...");
	for (int i = c->depth > 12 ? c->depth - 7 : 1; i <= c->depth; i++) {
		char tmp[32];
		if (c->path[i].key) {
			luaL_addchar(&b, '.');
			luaL_addlstring(&b, c->path[i].key,
			                c->path[i].len > 80 ? 80 : c->path[i].len);
		} else {
			snprintf(tmp, sizeof(tmp), "[%lld]", (long long)c->path[i].index);
			luaL_addstring(&b, tmp);
		}
	}
	luaL_addstring(&b, ": ");
	luaL_addstring(&b, what);
	luaL_pushresult(&b);
	return lua_error(L);
}

static void
out_append(lua_State *L, struct apply_ctx *c, const char *s, size_t n)
{
	if (buf_append(c->out, s, n))
		raise_rc(L, c, RC_ERR_NOMEM, "out of memory");
}

/* A number as doc.c writes one: integers exactly, floats in their shortest
 * round-trip text (integral ones without ".0"); NaN and infinities are
 * null. */
static bool
number_text(lua_State *L, int idx, char *tmp, size_t len)
{
	if (lua_isinteger(L, idx)) {
		snprintf(tmp, len, "%lld", (long long)lua_tointeger(L, idx));
		return true;
	}
	return doc_version_from_number((double)lua_tonumber(L, idx), tmp, len);
}

static int
cmp_keys(const void *a, const void *b)
{
	const struct key_slot *x = a, *y = b;
	int d;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	d = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
	if (d)
		return d;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* Insertion sort for the usual few dozen keys (qsort's merge sort costs
 * more there); qsort past that. */
static void
sort_keys(struct key_slot *k, size_t n)
{
	if (n > 32) {
		qsort(k, n, sizeof(*k), cmp_keys);
		return;
	}
	for (size_t i = 1; i < n; i++) {
		struct key_slot x = k[i];
		size_t j = i;
		while (j > 0 && cmp_keys(&k[j - 1], &x) > 0) {
			k[j] = k[j - 1];
			j--;
		}
		k[j] = x;
	}
}

static struct key_slot *key_push(lua_State *L, struct apply_ctx *c);

/* Whether a key (which may hold NUL bytes) is exactly s. */
static bool
same_key(const struct key_slot *k, const char *s)
{
	return k->len == strlen(s) && memcmp(k->s, s, k->len) == 0;
}

/* Puts the n slots from base in writing order: those with a rank (their
 * place in an __order list of m keys; ranks are distinct) by rank, placed
 * rather than sorted, then the others bytewise. */
static void
order_keys(lua_State *L, struct apply_ctx *c, size_t base, size_t n, lua_Integer m)
{
	struct transform *t = c->t;
	struct key_slot *k, *out;
	size_t w = 0, ranked = 0;

	for (size_t i = base; i < base + n; i++)
		ranked += t->keys[i].rank != LUA_MAXINTEGER;
	if (ranked < 2) {
		sort_keys(t->keys + base, n);
		return;
	}
	if ((size_t)m + 1 > t->cap_place) {
		size_t *grown = realloc(t->place, ((size_t)m + 1) * sizeof(*grown));
		if (grown == NULL)
			raise_rc(L, c, RC_ERR_NOMEM, "out of memory");
		t->place = grown;
		t->cap_place = (size_t)m + 1;
	}
	for (lua_Integer j = 0; j <= m; j++)
		t->place[j] = SIZE_MAX;
	for (size_t i = 0; i < n; i++) /* scratch room for the result */
		key_push(L, c);
	k = t->keys + base;
	out = k + n;
	for (size_t i = 0; i < n; i++)
		if (k[i].rank != LUA_MAXINTEGER)
			t->place[k[i].rank] = i;
	for (lua_Integer j = 1; j <= m; j++)
		if (t->place[j] != SIZE_MAX)
			out[w++] = k[t->place[j]];
	for (size_t i = 0; i < n; i++)
		if (k[i].rank == LUA_MAXINTEGER)
			out[w++] = k[i];
	sort_keys(out + ranked, n - ranked);
	memcpy(k, out, n * sizeof(*k));
	t->n_keys -= n;
}

static struct key_slot *
key_push(lua_State *L, struct apply_ctx *c)
{
	struct transform *t = c->t;

	if (t->n_keys == t->cap_keys) {
		size_t cap = t->cap_keys ? t->cap_keys * 2 : 256;
		struct key_slot *grown = realloc(t->keys, cap * sizeof(*grown));
		if (grown == NULL)
			raise_rc(L, c, RC_ERR_NOMEM, "out of memory");
		t->keys = grown;
		t->cap_keys = cap;
	}
	return &t->keys[t->n_keys++];
}

static void put_lua(lua_State *L, struct apply_ctx *c, int idx, int depth);

/* Items 1..n of the array at idx, which must have no other keys (a key
 * past #t, or a string key, would be lost without a word). */
static void
put_array(lua_State *L, struct apply_ctx *c, int idx, int depth, lua_Integer n)
{
	lua_Integer keys = 0;

	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		keys++;
		if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n)
			keys = -1;
		if (keys < 0) {
			lua_pop(L, 1);
			break;
		}
	}
	if (keys != n)
		raise_at(
		    L, c, RC_ERR_INVALID,
		    "an array has holes or keys other than 1..#t (use reconciler.null for null "
		    "items)");
	out_append(L, c, "[", 1);
	for (lua_Integer i = 1; i <= n; i++) {
		if (i > 1)
			out_append(L, c, ",", 1);
		c->path[depth + 1] = (struct path_step){NULL, 0, i};
		c->depth = depth + 1;
		if (lua_rawgeti(L, idx, i) == LUA_TNIL)
			raise_at(L, c, RC_ERR_INVALID,
			         "nil in an array (a hole: use reconciler.null for null items)");
		put_lua(L, c, lua_gettop(L), depth + 1);
		c->depth = depth;
		lua_pop(L, 1);
	}
	out_append(L, c, "]", 1);
}

/* Every key of the table at idx onto the stack (keeps the strings alive)
 * and, the string ones, into key slots from t->n_keys on; *ints counts the
 * integer keys, *max_int is the largest. Any other key is an error. */
static void
collect_keys(lua_State *L, struct apply_ctx *c, int idx, size_t base, lua_Integer *ints,
             lua_Integer *max_int)
{
	struct transform *t = c->t;

	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		if (lua_type(L, -1) == LUA_TSTRING) {
			struct key_slot *k = key_push(L, c);
			luaL_checkstack(L, 4, "an object with too many keys");
			k->stack = lua_gettop(L);
			k->s = lua_tolstring(L, -1, &k->len);
			k->rank = LUA_MAXINTEGER;
			lua_pushvalue(L, -1); /* the copy lua_next goes on from */
		} else if (lua_isinteger(L, -1)) {
			(*ints)++;
			if (lua_tointeger(L, -1) > *max_int)
				*max_int = lua_tointeger(L, -1);
		} else {
			t->n_keys = base;
			raise_at(L, c, RC_ERR_INVALID,
			         lua_pushfstring(L,
			                         "a table key is a %s; keys are strings (an "
			                         "object) or 1..n (an array)",
			                         luaL_typename(L, -1)));
		}
	}
}

/* Ranks the key slots from base on by their place in the __order list at
 * stack index order; returns the list's length. */
static lua_Integer
rank_by_order(lua_State *L, struct apply_ctx *c, int order, size_t base)
{
	struct transform *t = c->t;
	lua_Integer m = (lua_Integer)lua_rawlen(L, order);

	for (lua_Integer j = 1; j <= m; j++) {
		struct key_slot *hit = NULL;
		size_t len;
		const char *s;
		if (lua_rawgeti(L, order, j) != LUA_TSTRING) {
			lua_pop(L, 1);
			continue;
		}
		s = lua_tolstring(L, -1, &len);
		/* equal short strings are one object in Lua: try the pointer first */
		for (size_t i = base; i < t->n_keys && !hit; i++)
			if (t->keys[i].s == s)
				hit = &t->keys[i];
		for (size_t i = base; i < t->n_keys && !hit; i++)
			if (t->keys[i].len == len && memcmp(t->keys[i].s, s, len) == 0)
				hit = &t->keys[i];
		if (hit && hit->rank == LUA_MAXINTEGER)
			hit->rank = j;
		lua_pop(L, 1);
	}
	return m;
}

/* The object of the table at idx, its n keys in the (ordered) slots from
 * base on. top: the body, id_field first and _id left out. */
static void
put_members(lua_State *L, struct apply_ctx *c, int idx, int depth, bool top, size_t base, size_t n)
{
	struct transform *t = c->t;
	bool first = true;

	out_append(L, c, "{", 1);
	if (top && c->id_field && *c->id_field) {
		if (doc_json_string(c->out, c->id_field, strlen(c->id_field)) ||
		    buf_append(c->out, ":", 1) ||
		    doc_json_string(c->out, c->id_canonical, strlen(c->id_canonical)))
			raise_rc(L, c, RC_ERR_NOMEM, "out of memory");
		first = false;
	}
	for (size_t i = 0; i < n; i++) {
		struct key_slot k = t->keys[base + i]; /* a copy: nested objects may move keys */
		if (top && (same_key(&k, "_id") ||
		            (c->id_field && *c->id_field && same_key(&k, c->id_field))))
			continue;
		if (!first)
			out_append(L, c, ",", 1);
		first = false;
		if (doc_json_string(c->out, k.s, k.len) || buf_append(c->out, ":", 1))
			raise_rc(L, c, RC_ERR_NOMEM, "out of memory");
		lua_pushvalue(L, k.stack);
		lua_rawget(L, idx);
		c->path[depth + 1] = (struct path_step){k.s, k.len, 0};
		c->depth = depth + 1;
		put_lua(L, c, lua_gettop(L), depth + 1);
		c->depth = depth;
		lua_pop(L, 1);
	}
	out_append(L, c, "}", 1);
}

/* The table at idx: an array when marked (items 1..#t) or when its keys
 * are exactly 1..n (n > 0), else an object with string keys. top: the
 * body, where id_field comes first and _id is left out. */
static void
put_table(lua_State *L, struct apply_ctx *c, int idx, int depth, bool top)
{
	struct transform *t = c->t;
	size_t base = t->n_keys, n;
	lua_Integer ints = 0, max_int = 0, m = 0;
	int order = 0, top0 = lua_gettop(L);

	if (depth > DOC_MAX_DEPTH)
		raise_at(L, c, RC_ERR_TOOLARGE,
		         "nested deeper than 100 levels (MongoDB's limit; does a table contain "
		         "itself?)");
	luaL_checkstack(L, 8, "nested too deep");
	if (lua_getmetatable(L, idx)) {
		if (lua_rawequal(L, -1, SLOT_ARRAY_MT)) {
			if (top)
				raise_at(L, c, RC_ERR_INVALID,
				         "it is an array; the body is an object");
			put_array(L, c, idx, depth, (lua_Integer)lua_rawlen(L, idx));
			lua_settop(L, top0);
			return;
		}
		lua_pushvalue(L, SLOT_ORDER_KEY);
		if (lua_rawget(L, -2) == LUA_TTABLE)
			order = lua_gettop(L);
	}
	collect_keys(L, c, idx, base, &ints, &max_int);
	n = t->n_keys - base;
	if (ints && n == 0 && ints == max_int) {
		if (top)
			raise_at(L, c, RC_ERR_INVALID, "it is an array; the body is an object");
		put_array(L, c, idx, depth, ints);
		lua_settop(L, top0);
		return;
	}
	if (ints) {
		t->n_keys = base;
		raise_at(L, c, RC_ERR_INVALID,
		         n ? "a table mixes string keys and number keys"
		           : "a table's number keys are not 1..n (a hole? use reconciler.null for "
		             "null items)");
	}
	/* __order first, then the other keys bytewise */
	if (order)
		m = rank_by_order(L, c, order, base);
	order_keys(L, c, base, n, m);
	put_members(L, c, idx, depth, top, base, n);
	t->n_keys = base;
	lua_settop(L, top0); /* drop the keys and the order */
}

static void
put_lua(lua_State *L, struct apply_ctx *c, int idx, int depth)
{
	char tmp[64];

	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		out_append(L, c, "null", 4);
		return;
	case LUA_TBOOLEAN:
		if (lua_toboolean(L, idx))
			out_append(L, c, "true", 4);
		else
			out_append(L, c, "false", 5);
		return;
	case LUA_TNUMBER:
		if (!number_text(L, idx, tmp, sizeof(tmp)))
			snprintf(tmp, sizeof(tmp), "null"); /* JSON has no NaN or Infinity */
		out_append(L, c, tmp, strlen(tmp));
		return;
	case LUA_TSTRING: {
		size_t len;
		const char *s = lua_tolstring(L, idx, &len);
		if (doc_json_string(c->out, s, len))
			raise_rc(L, c, RC_ERR_NOMEM, "out of memory");
		return;
	}
	case LUA_TTABLE:
		put_table(L, c, idx, depth, false);
		return;
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) == JSON_NULL) {
			out_append(L, c, "null", 4);
			return;
		}
		break;
	default:
		break;
	}
	raise_at(L, c, RC_ERR_INVALID,
	         lua_pushfstring(L,
	                         "a %s value (JSON holds strings, numbers, booleans, "
	                         "tables and reconciler.null)",
	                         luaL_typename(L, idx)));
}

/* ---- one document ----------------------------------------------------- */

/* The routing value at idx as text (numbers as JSON writes them), or NULL
 * for nil and reconciler.null. */
static void
take_routing(lua_State *L, struct apply_ctx *c, int idx)
{
	char tmp[64];
	const char *s = NULL;
	size_t len = 0;

	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		return;
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) == JSON_NULL)
			return;
		break;
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		break;
	case LUA_TNUMBER:
		if (number_text(L, idx, tmp, sizeof(tmp)))
			s = tmp, len = strlen(tmp);
		break;
	case LUA_TBOOLEAN:
		s = lua_toboolean(L, idx) ? "true" : "false";
		len = strlen(s);
		break;
	default:
		break;
	}
	if (s == NULL && lua_type(L, idx) == LUA_TNUMBER)
		luaL_error(L, "transform returned a routing that is not a finite number (NaN or an "
		              "infinity): expected a string, a finite number or a boolean");
	if (s == NULL)
		luaL_error(L,
		           "transform returned a routing that is a %s: expected a string, a number "
		           "or a boolean",
		           luaL_typename(L, idx));
	if (len == 0 || memchr(s, '\0', len))
		luaL_error(L, "transform returned an empty routing, or one holding a NUL byte");
	c->routing = malloc(len + 1);
	if (c->routing == NULL)
		raise_rc(L, c, RC_ERR_NOMEM, "out of memory");
	memcpy(c->routing, s, len + 1);
}

/* Runs under lua_pcall: the document in, transform(doc), the body out. */
static int
apply_protected(lua_State *L)
{
	struct apply_ctx *c = lua_touserdata(L, 1);
	int body;

	lua_settop(L, 0);
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->t->array_mt_ref); /* SLOT_ARRAY_MT */
	lua_pushliteral(L, "__order");                         /* SLOT_ORDER_KEY */
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->t->fn_ref);
	push_document(L, c);
	lua_call(L, 1, 2);
	body = SLOT_ORDER_KEY + 1;
	if (lua_isnil(L, body)) {
		c->skip = true;
		return 0;
	}
	if (lua_type(L, body) != LUA_TTABLE)
		return luaL_error(
		    L,
		    "transform returned a %s: expected a table (the body), nil (leave "
		    "the document out of the index) or body, routing",
		    luaL_typename(L, body));
	c->depth = 0;
	put_table(L, c, body, 0, true);
	take_routing(L, c, body + 1); /* last: nothing raises after its malloc */
	return 0;
}

/* Drops what an attempt appended to out. */
static void
truncate_to(struct buf *out, size_t len)
{
	if (out->data && out->len > len) {
		out->len = len;
		out->data[len] = '\0';
	}
}

/* Without a script: the kept fields under their names, then doc_to_json. */
static RC_MUST_CHECK rcode
apply_declarative(struct transform *t, const bson_t *doc, const char *id_field,
                  const char *id_canonical, struct buf *out, struct rerror *err)
{
	bson_t copy = BSON_INITIALIZER;
	size_t out_len = out->len;
	bson_iter_t it;
	rcode rc;

	if (!bson_iter_init(&it, doc))
		return rerror_set(err, RC_ERR_INVALID, "corrupt BSON: the document cannot be read");
	while (bson_iter_next(&it)) {
		const char *key = bson_iter_key(&it);
		const char *name = strcmp(key, "_id") ? field_name(t, doc, key) : key;
		if (name && !bson_append_iter(&copy, name, -1, &it)) {
			bson_destroy(&copy);
			return rerror_set(err, RC_ERR_TOOLARGE, "the document is too large");
		}
	}
	if (it.err_off) {
		bson_destroy(&copy);
		return rerror_set(err, RC_ERR_INVALID,
		                  "corrupt BSON at byte %u: the document cannot be read whole",
		                  (unsigned)it.err_off);
	}
	rc = doc_to_json(&copy, id_field, id_canonical, out, err);
	bson_destroy(&copy);
	if (rc)
		truncate_to(out, out_len);
	return rc;
}

/* The body, and the script's routing. */
static rcode
apply_body(struct transform *t, const bson_t *doc, const char *id_field, const char *id_canonical,
           struct buf *out, char **routing, bool *skip, struct rerror *err)
{
	struct apply_ctx c;
	size_t out_len = out->len;
	int status;
	rcode rc;

	*routing = NULL;
	*skip = false;
	if (!transform_active(t))
		return doc_to_json(doc, id_field, id_canonical, out, err);
	if (t->path == NULL)
		return apply_declarative(t, doc, id_field, id_canonical, out, err);
	if (t->L == NULL) {
		/* the last rebuild failed: try again, the document fails if it cannot */
		struct rerror why = {0};
		if (state_build(t, &why))
			return rerror_set(err, RC_ERR_INVALID,
			                  "the script could not be reloaded: %s", why.message);
	}
	memset(&c, 0, sizeof(c));
	c.t = t;
	c.doc = doc;
	c.id_field = id_field;
	c.id_canonical = id_canonical ? id_canonical : "";
	c.out = out;
	t->n_keys = 0;
	t->used = 0;
	t->over_instructions = false;
	t->mem_refused = false;
	t->in_call = true;
	lua_sethook(t->L, count_hook, LUA_MASKCOUNT, t->hook_every);
	lua_settop(t->L, 0);
	lua_pushcfunction(t->L, apply_protected);
	lua_pushlightuserdata(t->L, &c);
	status = lua_pcall(t->L, 1, 0, 0);
	t->in_call = false;
	if (status == LUA_OK) {
		lua_settop(t->L, 0);
		*routing = c.routing;
		*skip = c.skip;
		return RC_OK;
	}
	free(c.routing);
	truncate_to(out, out_len);
	rc = c.rc ? c.rc : RC_ERR_INVALID;
	if (t->over_instructions) {
		error_message(t->L, RC_ERR_INVALID, err);
		rc = RC_ERR_INVALID;
	} else if (status == LUA_ERRMEM) {
		if (t->mem_refused) {
			rc = rerror_set(err, RC_ERR_INVALID,
			                "memory budget exceeded: the script's Lua state would hold "
			                "more than %zu bytes (RECONCILE_TRANSFORM_MAX_MEMORY)",
			                t->max_memory);
		} else {
			rc = rerror_set(err, RC_ERR_NOMEM, "out of memory");
		}
	} else {
		error_message(t->L, rc, err);
	}
	if (t->over_instructions || status == LUA_ERRMEM) {
		/* the script may have left the state full or mid-way: start afresh */
		struct rerror why = {0};
		state_close(t);
		if (state_build(t, &why))
			log_warn("transform: %s could not be reloaded: %s", t->path, why.message);
	} else {
		lua_settop(t->L, 0);
	}
	return rc;
}

/* A top-level value as routing text, as the index would show it (string
 * as is, numbers, ObjectId, bool, date as their id text: docs/MAPPING.md),
 * or NULL when it cannot route (missing, null, empty, a document, an
 * array, a string with a NUL, NaN...): the next field is tried. */
static rcode
route_value(const bson_t *doc, const char *name, char **out)
{
	bson_iter_t it;
	struct buf text = {0};
	enum id_type type;

	*out = NULL;
	if (!bson_iter_init_find(&it, doc, name))
		return RC_OK;
	switch (bson_iter_type(&it)) {
	case BSON_TYPE_UTF8: {
		uint32_t len;
		const char *v = bson_iter_utf8(&it, &len);
		if (len == 0 || memchr(v, '\0', len))
			return RC_OK;
		break;
	}
	case BSON_TYPE_DOUBLE:
		if (!isfinite(bson_iter_double(&it)))
			return RC_OK;
		break;
	case BSON_TYPE_INT32:
	case BSON_TYPE_INT64:
	case BSON_TYPE_OID:
	case BSON_TYPE_BOOL:
	case BSON_TYPE_DATE_TIME:
		break;
	default:
		return RC_OK;
	}
	rcode rc = doc_id_canonical(bson_iter_value(&it), &text, &type);
	if (rc == RC_OK && text.len)
		*out = text.data;
	else
		buf_free(&text);
	return rc == RC_ERR_NOMEM ? rc : RC_OK;
}

rcode
transform_apply(struct transform *t, const bson_t *doc, const char *id_field,
                const char *id_canonical, struct buf *out, char **routing, bool *skip,
                struct rerror *err)
{
	rcode rc = apply_body(t, doc, id_field, id_canonical, out, routing, skip, err);

	/* the script's routing wins; else the first field that can route; else
	 * the id, as the live syncer's rule falls back to it */
	for (size_t i = 0; rc == RC_OK && !*skip && *routing == NULL && t && i < t->n_routes; i++)
		rc = route_value(doc, t->routes[i], routing);
	if (rc == RC_OK && !*skip && *routing == NULL && t && t->n_routes && id_canonical &&
	    (*routing = strdup(id_canonical)) == NULL)
		rc = RC_ERR_NOMEM;
	if (rc == RC_ERR_NOMEM) {
		free(*routing);
		*routing = NULL;
		rerror_set(err, rc, "out of memory");
	}
	return rc;
}
