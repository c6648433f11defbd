/* The outbox: schema and its version, add and its checks, per-model counts, bounded batches in
 * seq order, ack, quarantine, export/import (byte-exact round trip against the vector in
 * formats/outbox.md). Negative tests check the exact code and that nothing changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "ota/fsutil.h"
#include "ota/outbox.h"

struct fx {
    char dir[64];
    char db[128];
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);

    snprintf(f->dir, sizeof f->dir, "/tmp/ota-outbox-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/app.db", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    assert_int_equal(ota_rm_rf(f->dir, NULL), OTA_OK);
    free(f);
    return 0;
}

/* Runs one SQL statement on its own connection (as the app would) and returns the first column
 * of the first row as an integer, or -1 when there is no row. */
static long long
sql_int(const char *db, const char *sql)
{
    sqlite3      *h = NULL;
    sqlite3_stmt *st = NULL;
    long long     v = -1;

    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static void
sql_exec(const char *db, const char *sql)
{
    sqlite3 *h = NULL;

    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

static struct ota_outbox *
open_ok(const char *db)
{
    struct ota_outbox *ob = NULL;
    struct ota_diag    d;

    assert_int_equal(ota_outbox_open(db, &ob, &d), OTA_OK);
    assert_non_null(ob);
    return ob;
}

static void
add_ok(struct ota_outbox *ob, const char *id, const char *model, const char *entity,
       const char *payload)
{
    struct ota_diag d;

    assert_int_equal(ota_outbox_add(ob, id, model, entity, "insert", payload, NULL, &d), OTA_OK);
}

static void
test_schema(void **state)
{
    struct fx         *f = *state;
    struct ota_outbox *ob;

    /* The app's own table and its user_version stay as they are. */
    sql_exec(f->db, "PRAGMA user_version=7; CREATE TABLE site(id INTEGER PRIMARY KEY, name TEXT);"
                    "INSERT INTO site VALUES(1, 'x');");
    ob = open_ok(f->db);
    ota_outbox_close(ob);
    assert_int_equal(sql_int(f->db, "SELECT value FROM ota_outbox_meta WHERE key='schema_version'"),
                     1);
    assert_int_equal(sql_int(f->db, "PRAGMA user_version"), 7);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM site"), 1);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM sqlite_master WHERE "
                                    "name='ota_outbox_state_model_seq'"), 1);
    {
        /* WAL is a property of the file: a fresh connection sees it. */
        sqlite3      *h = NULL;
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        sqlite3_close(h);
    }
    /* Opening again is idempotent. */
    ob = open_ok(f->db);
    ota_outbox_close(ob);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM ota_outbox_meta"), 1);
}

static void
test_newer_schema_refused(void **state)
{
    struct fx         *f = *state;
    struct ota_outbox *ob = NULL;
    struct ota_diag    d;

    sql_exec(f->db, "CREATE TABLE ota_outbox_meta(key TEXT PRIMARY KEY, value TEXT);"
                    "INSERT INTO ota_outbox_meta VALUES('schema_version', '2');");
    assert_int_equal(ota_outbox_open(f->db, &ob, &d), OTA_E_INCOMPATIBLE);
    assert_null(ob);
    assert_non_null(strstr(d.msg, "newer"));
    /* Nothing was created. */
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name='ota_outbox'"),
                     0);
    sql_exec(f->db, "UPDATE ota_outbox_meta SET value='two'");
    assert_int_equal(ota_outbox_open(f->db, &ob, &d), OTA_E_FORMAT);
    assert_null(ob);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name='ota_outbox'"),
                     0);
}

static void
test_add(void **state)
{
    struct fx         *f = *state;
    struct ota_outbox *ob = open_ok(f->db);
    struct ota_diag    d;
    char               id[OTA_OUTBOX_ID_MAX + 1];
    char              *big;
    size_t             i;

    assert_int_equal(ota_outbox_add(ob, NULL, "m1", "site", "update", "{\"lat\":52.37}", id, &d),
                     OTA_OK);
    assert_int_equal(strlen(id), 32);
    for (i = 0; i < 32; i++)
        assert_non_null(strchr("0123456789abcdef", id[i]));
    assert_int_equal(ota_outbox_add(ob, "c1", "m1", "site", "delete", "[1,2]", id, &d), OTA_OK);
    assert_string_equal(id, "c1");
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM ota_outbox WHERE state='pending' AND "
                                    "attempts=0 AND reason IS NULL AND acked_at IS NULL"), 2);

    /* Every refusal names the problem and writes nothing. */
    assert_int_equal(ota_outbox_add(ob, "c1", "m1", "site", "insert", "{}", NULL, &d),
                     OTA_E_EXISTS);
    assert_int_equal(ota_outbox_add(ob, "c2", "m1", "site", "upsert", "{}", NULL, &d),
                     OTA_E_INVALID);
    assert_int_equal(ota_outbox_add(ob, "c2", "", "site", "insert", "{}", NULL, &d),
                     OTA_E_INVALID);
    assert_int_equal(ota_outbox_add(ob, "c2", "m1", "a\nb", "insert", "{}", NULL, &d),
                     OTA_E_INVALID);
    assert_int_equal(ota_outbox_add(ob, "c2", "m\xff", "site", "insert", "{}", NULL, &d),
                     OTA_E_INVALID);
    assert_int_equal(ota_outbox_add(ob, "has space", "m1", "site", "insert", "{}", NULL, &d),
                     OTA_E_INVALID);
    assert_int_equal(ota_outbox_add(ob, "c2", "m1", "site", "insert", "{\"a\":", NULL, &d),
                     OTA_E_FORMAT);
    assert_int_equal(ota_outbox_add(ob, "c2", "m1", "site", "insert", "{\"a\":1,\"a\":2}", NULL,
                                    &d), OTA_E_FORMAT);
    {
        char longid[OTA_OUTBOX_ID_MAX + 2];
        memset(longid, 'x', sizeof longid - 1);
        longid[sizeof longid - 1] = '\0';
        assert_int_equal(ota_outbox_add(ob, longid, "m1", "site", "insert", "{}", NULL, &d),
                         OTA_E_INVALID);
        longid[OTA_OUTBOX_ID_MAX] = '\0';
        assert_int_equal(ota_outbox_add(ob, longid, "m1", "site", "insert", "{}", NULL, &d),
                         OTA_OK);
    }
    /* Payload cap: 1 MiB is fine, one byte more is not. */
    big = malloc(OTA_OUTBOX_PAYLOAD_MAX + 2);
    assert_non_null(big);
    memset(big, ' ', OTA_OUTBOX_PAYLOAD_MAX + 1);
    big[0] = '"';
    big[OTA_OUTBOX_PAYLOAD_MAX - 1] = '"';
    big[OTA_OUTBOX_PAYLOAD_MAX] = '\0';
    assert_int_equal(ota_outbox_add(ob, "big1", "m1", "site", "insert", big, NULL, &d), OTA_OK);
    big[OTA_OUTBOX_PAYLOAD_MAX] = ' ';
    big[OTA_OUTBOX_PAYLOAD_MAX + 1] = '\0';
    assert_int_equal(ota_outbox_add(ob, "big2", "m1", "site", "insert", big, NULL, &d),
                     OTA_E_TOO_BIG);
    free(big);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM ota_outbox"), 4);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM ota_outbox WHERE change_id IN "
                                    "('c2','big2')"), 0);
    ota_outbox_close(ob);
}

static void
test_counts(void **state)
{
    struct fx               *f = *state;
    struct ota_outbox       *ob = open_ok(f->db);
    struct ota_outbox_count *c = NULL, one;
    struct ota_diag          d;
    size_t                   n = 0;
    const char              *ids[] = { "b1" };

    assert_int_equal(ota_outbox_pending(ob, &c, &n, &d), OTA_OK);
    assert_int_equal(n, 0);
    assert_null(c);
    add_ok(ob, "b1", "m2", "site", "{}");
    add_ok(ob, "a1", "m1", "site", "{}");
    add_ok(ob, "a2", "m1", "site", "{}");
    add_ok(ob, "b2", "m2", "site", "{}");
    add_ok(ob, "b3", "m2", "pole", "{}");
    assert_int_equal(ota_outbox_ack(ob, ids, 1, NULL, &d), OTA_OK);
    assert_int_equal(ota_outbox_quarantine(ob, "b3", "refused", &d), OTA_OK);
    assert_int_equal(ota_outbox_pending(ob, &c, &n, &d), OTA_OK);
    assert_int_equal(n, 2);
    assert_string_equal(c[0].model, "m1");
    assert_int_equal(c[0].pending, 2);
    assert_int_equal(c[0].acked + c[0].quarantined, 0);
    assert_string_equal(c[1].model, "m2");
    assert_int_equal(c[1].pending, 1);
    assert_int_equal(c[1].acked, 1);
    assert_int_equal(c[1].quarantined, 1);
    free(c);
    assert_int_equal(ota_outbox_count_model(ob, "m2", &one, &d), OTA_OK);
    assert_int_equal(one.pending, 1);
    assert_int_equal(one.quarantined, 1);
    assert_int_equal(ota_outbox_count_model(ob, "nope", &one, &d), OTA_OK);
    assert_int_equal(one.pending + one.acked + one.quarantined, 0);
    ota_outbox_close(ob);
}

static void
test_batches(void **state)
{
    struct fx               *f = *state;
    struct ota_outbox       *ob = open_ok(f->db);
    struct ota_outbox_batch *b = NULL;
    struct ota_diag          d;
    char                     id[16], payload[1100];
    int                      i;

    /* 10 rows of m1 with 1000-byte payloads, interleaved with m2 rows. */
    memset(payload, 'p', sizeof payload);
    payload[0] = '"';
    payload[999] = '"';
    payload[1000] = '\0';
    for (i = 0; i < 10; i++) {
        snprintf(id, sizeof id, "m1-%d", i);
        add_ok(ob, id, "m1", "site", payload);
        snprintf(id, sizeof id, "m2-%d", i);
        add_ok(ob, id, "m2", "site", "{}");
    }
    assert_int_equal(ota_outbox_batch_next(ob, "m1", 0, 3, 1 << 20, &b, &d), OTA_OK);
    assert_int_equal(b->n, 3);
    assert_string_equal(b->rows[0].change_id, "m1-0");
    assert_string_equal(b->rows[2].change_id, "m1-2");
    assert_true(b->rows[0].seq < b->rows[1].seq && b->rows[1].seq < b->rows[2].seq);
    assert_int_equal(b->rows[0].payload_len, 1000);
    assert_string_equal(b->rows[0].state, "pending");
    assert_int_equal(b->last_seq, b->rows[2].seq);
    {
        int64_t after = b->last_seq;
        ota_outbox_batch_free(b);
        assert_int_equal(ota_outbox_batch_next(ob, "m1", after, 100, 1 << 20, &b, &d), OTA_OK);
        assert_int_equal(b->n, 7);
        assert_string_equal(b->rows[0].change_id, "m1-3");
        ota_outbox_batch_free(b);
    }
    /* Byte cap: two rows fit in 2500 bytes, not three. */
    assert_int_equal(ota_outbox_batch_next(ob, "m1", 0, 100, 2500, &b, &d), OTA_OK);
    assert_int_equal(b->n, 2);
    assert_true(b->bytes <= 2500);
    ota_outbox_batch_free(b);
    /* A row larger than the cap still goes alone, so a sync always makes progress. */
    assert_int_equal(ota_outbox_batch_next(ob, "m1", 0, 100, 10, &b, &d), OTA_OK);
    assert_int_equal(b->n, 1);
    ota_outbox_batch_free(b);
    /* Only pending rows. */
    {
        const char *ids[] = { "m1-0", "m1-1" };
        assert_int_equal(ota_outbox_ack(ob, ids, 2, NULL, &d), OTA_OK);
        assert_int_equal(ota_outbox_quarantine(ob, "m1-2", "no", &d), OTA_OK);
    }
    assert_int_equal(ota_outbox_batch_next(ob, "m1", 0, 100, 1 << 20, &b, &d), OTA_OK);
    assert_int_equal(b->n, 7);
    assert_string_equal(b->rows[0].change_id, "m1-3");
    ota_outbox_batch_free(b);
    assert_int_equal(ota_outbox_batch_next(ob, "m3", 0, 100, 1 << 20, &b, &d), OTA_OK);
    assert_int_equal(b->n, 0);
    ota_outbox_batch_free(b);
    b = NULL;
    assert_int_equal(ota_outbox_batch_next(ob, "m1", 0, 0, 1 << 20, &b, &d), OTA_E_INVALID);
    assert_null(b);
    ota_outbox_close(ob);
}

static void
test_ack_and_quarantine(void **state)
{
    struct fx         *f = *state;
    struct ota_outbox *ob = open_ok(f->db);
    struct ota_diag    d;
    const char        *ids[] = { "a", "b", "nope" };
    size_t             changed = 99;

    add_ok(ob, "a", "m1", "site", "{}");
    add_ok(ob, "b", "m1", "site", "{}");
    add_ok(ob, "c", "m1", "site", "{}");
    assert_int_equal(ota_outbox_ack(ob, ids, 3, &changed, &d), OTA_OK);
    assert_int_equal(changed, 2);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM ota_outbox WHERE state='acked' AND "
                                    "attempts=1 AND acked_at > 0"), 2);
    /* Acking again changes nothing. */
    assert_int_equal(ota_outbox_ack(ob, ids, 3, &changed, &d), OTA_OK);
    assert_int_equal(changed, 0);
    assert_int_equal(sql_int(f->db, "SELECT sum(attempts) FROM ota_outbox"), 2);
    /* Only a pending row can be quarantined; the row and its payload stay. */
    assert_int_equal(ota_outbox_quarantine(ob, "a", "late", &d), OTA_E_NOT_FOUND);
    assert_int_equal(ota_outbox_quarantine(ob, "c", "bad\nthing", &d), OTA_OK);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM ota_outbox WHERE change_id='c' AND "
                                    "state='quarantined' AND reason='bad thing' AND "
                                    "payload='{}'"), 1);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM ota_outbox"), 3);
    {
        const char *t[] = { "c" };
        assert_int_equal(ota_outbox_touch(ob, t, 1, &d), OTA_OK); /* not pending: no change */
        assert_int_equal(sql_int(f->db, "SELECT attempts FROM ota_outbox WHERE change_id='c'"), 1);
    }
    ota_outbox_close(ob);
}

/* The two lines of formats/outbox.md. */
static const char vector[] =
    "{\"attempts\":0,\"created_at\":1700000000,\"entity\":\"site\",\"id\":\"c1\",\"model\":"
    "\"m1\",\"op\":\"insert\",\"payload\":\"{\\\"id\\\":1,\\\"lat\\\":52.37}\",\"seq\":1,"
    "\"state\":\"pending\"}\n"
    "{\"attempts\":1,\"created_at\":1700000060,\"entity\":\"pole\",\"id\":\"c2\",\"model\":"
    "\"m1\",\"op\":\"delete\",\"payload\":\"{\\\"id\\\":7}\",\"reason\":\"entity 'pole' is not "
    "accepted by this server\",\"seq\":2,\"state\":\"quarantined\"}\n";

static void
write_text(const char *path, const char *text)
{
    assert_int_equal(ota_write_file_atomic(path, text, strlen(text), 0600, 0, NULL), OTA_OK);
}

static void
test_export_import(void **state)
{
    struct fx         *f = *state;
    struct ota_outbox *ob = open_ok(f->db), *ob2;
    struct ota_diag    d;
    char               in[160], out[160], out2[160], db2[160];
    unsigned char     *buf = NULL;
    size_t             len = 0;
    uint64_t           n = 0, a = 0, s = 0;

    snprintf(in, sizeof in, "%s/vector.jsonl", f->dir);
    snprintf(out, sizeof out, "%s/export.jsonl", f->dir);
    snprintf(out2, sizeof out2, "%s/export2.jsonl", f->dir);
    snprintf(db2, sizeof db2, "%s/other.db", f->dir);
    write_text(in, vector);
    assert_int_equal(ota_outbox_import(ob, in, &a, &s, &d), OTA_OK);
    assert_int_equal(a, 2);
    assert_int_equal(s, 0);
    /* Importing twice adds nothing. */
    assert_int_equal(ota_outbox_import(ob, in, &a, &s, &d), OTA_OK);
    assert_int_equal(a, 0);
    assert_int_equal(s, 2);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM ota_outbox"), 2);
    /* Exported again, byte for byte the vector. */
    assert_int_equal(ota_outbox_export(ob, out, &n, &d), OTA_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ota_read_file(out, 1 << 20, &buf, &len, &d), OTA_OK);
    assert_int_equal(len, strlen(vector));
    assert_memory_equal(buf, vector, len);
    free(buf);
    /* Never overwrites, never changes the database. */
    assert_int_equal(ota_outbox_export(ob, out, &n, &d), OTA_E_EXISTS);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM ota_outbox WHERE state='pending'"), 1);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM ota_outbox WHERE state='quarantined'"),
                     1);

    /* Acked rows are not exported; pending ones with their exact payload text are. */
    add_ok(ob, "c3", "m2", "site", "{ \"lat\" : 1.10 }");
    {
        const char *ids[] = { "c1" };
        assert_int_equal(ota_outbox_ack(ob, ids, 1, NULL, &d), OTA_OK);
    }
    assert_int_equal(ota_outbox_export(ob, out2, &n, &d), OTA_OK);
    assert_int_equal(n, 2);
    ob2 = open_ok(db2);
    assert_int_equal(ota_outbox_import(ob2, out2, &a, &s, &d), OTA_OK);
    assert_int_equal(a, 2);
    assert_int_equal(sql_int(db2, "SELECT count(*) FROM ota_outbox WHERE change_id='c3' AND "
                                  "payload='{ \"lat\" : 1.10 }' AND state='pending'"), 1);
    assert_int_equal(sql_int(db2, "SELECT count(*) FROM ota_outbox WHERE change_id='c2' AND "
                                  "state='quarantined' AND reason LIKE '%pole%'"), 1);
    ota_outbox_close(ob2);
    ota_outbox_close(ob);
}

static void
test_import_rejects(void **state)
{
    struct fx         *f = *state;
    struct ota_outbox *ob = open_ok(f->db);
    struct ota_diag    d;
    char               in[160];
    uint64_t           a = 77, s = 77;
    static const char *const bad[] = {
        /* unknown key */
        "{\"created_at\":1,\"entity\":\"e\",\"id\":\"x2\",\"model\":\"m\",\"op\":\"insert\","
        "\"payload\":\"{}\",\"state\":\"pending\",\"extra\":1}\n",
        /* acked rows are not for import */
        "{\"created_at\":1,\"entity\":\"e\",\"id\":\"x2\",\"model\":\"m\",\"op\":\"insert\","
        "\"payload\":\"{}\",\"state\":\"acked\"}\n",
        /* missing payload */
        "{\"created_at\":1,\"entity\":\"e\",\"id\":\"x2\",\"model\":\"m\",\"op\":\"insert\","
        "\"state\":\"pending\"}\n",
        /* bad op */
        "{\"created_at\":1,\"entity\":\"e\",\"id\":\"x2\",\"model\":\"m\",\"op\":\"merge\","
        "\"payload\":\"{}\",\"state\":\"pending\"}\n",
        /* not JSON */
        "{\"created_at\":1,\n",
        NULL,
    };
    static const char good[] =
        "{\"created_at\":1,\"entity\":\"e\",\"id\":\"x1\",\"model\":\"m\",\"op\":\"insert\","
        "\"payload\":\"{}\",\"state\":\"pending\"}\n";
    size_t i;

    snprintf(in, sizeof in, "%s/bad.jsonl", f->dir);
    for (i = 0; bad[i] != NULL; i++) {
        char text[1024];
        snprintf(text, sizeof text, "%s%s", good, bad[i]);
        write_text(in, text);
        assert_int_equal(ota_outbox_import(ob, in, &a, &s, &d), OTA_E_FORMAT);
        assert_non_null(strstr(d.msg, "line 2"));
        /* The good first line was not kept either. */
        assert_int_equal(sql_int(f->db, "SELECT count(*) FROM ota_outbox"), 0);
    }
    assert_int_equal(a, 77);
    assert_int_equal(s, 77);
    {
        char missing[160];
        snprintf(missing, sizeof missing, "%s/none.jsonl", f->dir);
        assert_int_equal(ota_outbox_import(ob, missing, &a, &s, &d), OTA_E_NOT_FOUND);
    }
    ota_outbox_close(ob);
}

/* Rows an app wrote with plain SQL (as formats/outbox.md shows) are read like any other; a row
 * that breaks the contract is caught by ota_outbox_row_check. */
static void
test_app_writes_directly(void **state)
{
    struct fx               *f = *state;
    struct ota_outbox       *ob = open_ok(f->db);
    struct ota_outbox_batch *b = NULL;
    struct ota_diag          d;

    sql_exec(f->db, "BEGIN; CREATE TABLE site(id INTEGER PRIMARY KEY, name TEXT);"
                    "INSERT INTO site VALUES(42, 'North gate');"
                    "INSERT INTO ota_outbox(change_id, model, entity, op, payload, created_at) "
                    "VALUES('9f1c', 'm3', 'site', 'update', '{\"id\":42,\"lat\":52.37}', 1);"
                    "INSERT INTO ota_outbox(change_id, model, entity, op, payload, created_at) "
                    "VALUES('9f1d', 'm3', 'site', 'update', '{not json', 2);"
                    "COMMIT;");
    /* The schema itself refuses the worst rows. */
    {
        sqlite3 *h = NULL;
        sqlite3_open(f->db, &h);
        assert_int_not_equal(sqlite3_exec(h, "INSERT INTO ota_outbox(change_id, model, entity, "
                                             "op, payload, created_at) VALUES('', 'm3', 'site', "
                                             "'update', '{}', 1)", NULL, NULL, NULL), SQLITE_OK);
        assert_int_not_equal(sqlite3_exec(h, "INSERT INTO ota_outbox(change_id, model, entity, "
                                             "op, payload, created_at) VALUES('z', 'm3', 'site', "
                                             "'upsert', '{}', 1)", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(h);
    }
    assert_int_equal(ota_outbox_batch_next(ob, "m3", 0, 10, 1 << 20, &b, &d), OTA_OK);
    assert_int_equal(b->n, 2);
    assert_int_equal(ota_outbox_row_check(&b->rows[0], &d), OTA_OK);
    assert_int_equal(ota_outbox_row_check(&b->rows[1], &d), OTA_E_FORMAT);
    assert_non_null(strstr(d.msg, "payload is not valid JSON"));
    ota_outbox_batch_free(b);
    ota_outbox_close(ob);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_and_quarantine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_app_writes_directly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
