/* test_lease.c: the lease's pure parts: its id, the path escape, reading a
 * lease document back, and who may take a lease over. */
#include "check.h"
#include "lease.h"

#include <stdlib.h>

static bool
alive(int64_t pid)
{
	return pid != 666;
}

static void
test_id(void)
{
	struct rerror err = {0};
	char *id = NULL, *esc = NULL, big[300];

	CHECK(lease_id(&id, "ads-v2", "shop", "ads", &err) == RC_OK);
	CHECK_STR(id, "ads-v2/shop.ads");
	free(id);
	/* a '/' never occurs in an index name: the first one splits */
	CHECK(lease_id(&id, "i", "db", "a/b.c", &err) == RC_OK);
	CHECK_STR(id, "i/db.a/b.c");
	free(id);
	/* past OpenSearch's 512 bytes: refused, not cut */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(lease_id(&id, big, "db", big, &err) == RC_ERR_INVALID && id == NULL);
	CHECK(strstr(err.message, "512") != NULL);

	CHECK(lease_escape(&esc, "i/db.a b?c%é") == RC_OK);
	CHECK_STR(esc, "i%2Fdb.a%20b%3Fc%25%C3%A9");
	free(esc);
	CHECK(lease_escape(&esc, "") == RC_OK);
	CHECK_STR(esc, "");
	free(esc);
}

static void
test_parse(void)
{
	struct lease_doc d;

	CHECK(lease_doc_parse(&d, "{\"_index\":\"reconciler-leases\",\"_id\":\"i/db.c\","
	                          "\"_seq_no\":7,\"_primary_term\":2,\"found\":true,"
	                          "\"_source\":{\"owner\":\"h:42:ab\",\"host\":\"h\","
	                          "\"boot_id\":\"b\",\"pid_ns\":\"pid:[1]\",\"pid\":42,"
	                          "\"mirror\":\"big\",\"journal\":\"/x/j.db\",\"run_id\":5,"
	                          "\"heartbeat_at\":1700000000000,"
	                          "\"expires_at\":1700000060000,\"ttl_ms\":60000}}") == RC_OK);
	CHECK(d.seq_no == 7 && d.primary_term == 2 && d.pid == 42 && d.run_id == 5);
	CHECK(d.expires_at == 1700000060000LL && d.heartbeat_at == 1700000000000LL);
	CHECK_STR(d.owner, "h:42:ab");
	CHECK_STR(d.journal, "/x/j.db");
	CHECK_STR(d.mirror, "big");
	/* not a lease document: no expiry, no seq_no, not JSON */
	CHECK(lease_doc_parse(&d, "{\"_seq_no\":1,\"_primary_term\":1,\"_source\":{}}") ==
	      RC_ERR_INVALID);
	CHECK(lease_doc_parse(&d, "{\"found\":false}") == RC_ERR_INVALID);
	CHECK(lease_doc_parse(&d, "nope") == RC_ERR_INVALID);
}

static void
test_judge(void)
{
	struct lease_self me = {"h", "boot1", "pid:[9]", 100};
	struct lease_doc d = {.owner = "h:200:aa",
	                      .host = "h",
	                      .boot_id = "boot1",
	                      .pid_ns = "pid:[9]",
	                      .pid = 200,
	                      .expires_at = 1000};

	/* a live holder until its expiry, and not at it */
	CHECK(lease_judge(&d, 999, &me, false, alive) == LEASE_HELD);
	CHECK(lease_judge(&d, 1000, &me, false, alive) == LEASE_EXPIRED);
	CHECK(lease_judge(&d, 5000, &me, false, alive) == LEASE_EXPIRED);
	/* a holder of this host and pid namespace whose pid is gone: at once */
	d.pid = 666;
	CHECK(lease_judge(&d, 10, &me, false, alive) == LEASE_GONE);
	/* anywhere else a pid says nothing: wait for the expiry */
	d.pid_ns[5] = '8';
	CHECK(lease_judge(&d, 10, &me, false, alive) == LEASE_HELD);
	snprintf(d.pid_ns, sizeof(d.pid_ns), "pid:[9]");
	snprintf(d.boot_id, sizeof(d.boot_id), "boot0");             /* the host rebooted... */
	CHECK(lease_judge(&d, 10, &me, false, alive) == LEASE_HELD); /* ...or is another */
	snprintf(d.boot_id, sizeof(d.boot_id), "boot1");
	snprintf(d.host, sizeof(d.host), "other");
	CHECK(lease_judge(&d, 10, &me, false, alive) == LEASE_HELD);
	snprintf(d.host, sizeof(d.host), "h");
	/* no boot id known here (no /proc): never judged gone */
	struct lease_self blind = {"h", "", "", 100};
	CHECK(lease_judge(&d, 10, &blind, false, alive) == LEASE_HELD);
	/* this process's: gone unless one of its runs holds it */
	d.pid = 100;
	CHECK(lease_judge(&d, 10, &me, false, alive) == LEASE_GONE);
	CHECK(lease_judge(&d, 10, &me, true, alive) == LEASE_HELD);
	CHECK(lease_judge(&d, 5000, &me, true, alive) == LEASE_HELD);
}

static void
test_message(void)
{
	struct lease_doc d = {
	    .owner = "h:42:ab", .journal = "/srv/r.db", .run_id = 7, .expires_at = 10001};
	char msg[600];

	lease_held_message(msg, sizeof(msg), "big", &d, 1000, "reconciler-leases", "i/db.c");
	CHECK(strstr(msg, "mirror big is running in another process: h:42:ab (journal /srv/r.db), "
	                  "run 7, lease expires in 10 s (lease reconciler-leases/i/db.c") == msg);
	d.run_id = 0;
	lease_held_message(msg, sizeof(msg), "big", &d, 20000, "l", "i");
	CHECK(strstr(msg, "its run not begun yet, lease expires in 0 s") != NULL);
}

int
main(void)
{
	test_id();
	test_parse();
	test_judge();
	test_message();
	return check_done("test_lease");
}
