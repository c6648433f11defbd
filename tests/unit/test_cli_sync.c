/* The `outbox` and `sync` commands: exit codes (0 ok, 1 failed, 2 usage), text and JSON output,
 * and that a refused command changes nothing. Sync runs through a hook here; the HTTP path is
 * covered by test_sync. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "cli_sync.h"
#include "ota/fsutil.h"

struct fx {
    char                   dir[64];
    char                   db[128];
    char                   out[128];
    struct ota_sync_config cfg;
    char                  *text; /* what the last command printed on stdout */
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);

    snprintf(f->dir, sizeof f->dir, "/tmp/ota-cli-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/app.db", f->dir);
    snprintf(f->out, sizeof f->out, "%s/stdout", f->dir);
    f->cfg.outbox_db = f->db;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    free(f->text);
    assert_int_equal(ota_rm_rf(f->dir, NULL), OTA_OK);
    free(f);
    return 0;
}

/* Runs a command with stdout captured in f->text; stderr is left alone. */
static int
run(struct fx *f, int is_sync, int json, ...)
{
    char   *argv[16];
    int     argc = 0, saved, fd, status;
    size_t  len;
    va_list ap;

    va_start(ap, json);
    while ((argv[argc] = va_arg(ap, char *)) != NULL)
        argc++;
    va_end(ap);
    fflush(stdout);
    saved = dup(1);
    fd = open(f->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);
    status = is_sync ? ota_agent_cli_sync(argc, argv, &f->cfg, json)
                     : ota_agent_cli_outbox(argc, argv, &f->cfg, json);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    free(f->text);
    f->text = NULL;
    assert_int_equal(ota_read_file(f->out, 1 << 20, (unsigned char **)&f->text, &len, NULL),
                     OTA_OK);
    return status;
}

static long long
count(const char *db, const char *sql)
{
    sqlite3      *h = NULL;
    sqlite3_stmt *st = NULL;
    long long     v = -1;

    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static void
test_usage(void **state)
{
    struct fx *f = *state;

    assert_int_equal(run(f, 0, 0, "outbox", NULL), 2);
    assert_int_equal(run(f, 0, 0, "outbox", "frobnicate", NULL), 2);
    assert_int_equal(run(f, 0, 0, "outbox", "add", "--model", "m1", "--entity", "e", "--op",
                         "insert", NULL), 2); /* no payload */
    assert_int_equal(run(f, 0, 0, "outbox", "add", "--model", NULL), 2);
    assert_int_equal(run(f, 0, 0, "outbox", "list", "--state", "done", NULL), 2);
    assert_int_equal(run(f, 0, 0, "outbox", "export", NULL), 2);
    assert_int_equal(run(f, 1, 0, "sync", "--everything", NULL), 2);
}

static void
test_add_list_export_import(void **state)
{
    struct fx *f = *state;
    char       file[160], other[160];
    json_t    *v;

    assert_int_equal(run(f, 0, 0, "outbox", "add", "--model", "m1", "--entity", "site", "--op",
                         "insert", "--payload", "{\"id\":1}", "--id", "c1", NULL), 0);
    assert_string_equal(f->text, "c1\n");
    assert_int_equal(run(f, 0, 1, "outbox", "add", "--model", "m2", "--entity", "site", "--op",
                         "update", "--payload", "{\"id\":2}", NULL), 0);
    v = json_loads(f->text, 0, NULL);
    assert_non_null(v);
    assert_int_equal(strlen(json_string_value(json_object_get(v, "id"))), 32);
    json_decref(v);
    /* Refused: duplicate id, bad payload. Nothing added. */
    assert_int_equal(run(f, 0, 0, "outbox", "add", "--model", "m1", "--entity", "site", "--op",
                         "insert", "--payload", "{}", "--id", "c1", NULL), 1);
    assert_int_equal(run(f, 0, 0, "outbox", "add", "--model", "m1", "--entity", "site", "--op",
                         "insert", "--payload", "{", NULL), 1);
    assert_int_equal(count(f->db, "SELECT count(*) FROM ota_outbox"), 2);

    assert_int_equal(run(f, 0, 0, "outbox", "list", "--model", "m1", NULL), 0);
    assert_non_null(strstr(f->text, "\tpending\tm1\tsite\tinsert\tc1\t0\t"));
    assert_null(strstr(f->text, "m2"));
    assert_int_equal(run(f, 0, 1, "outbox", "list", "--state", "pending", NULL), 0);
    v = json_loads(f->text, 0, NULL);
    assert_non_null(v);
    assert_int_equal(json_array_size(v), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "payload")),
                        "{\"id\":1}");
    json_decref(v);

    snprintf(file, sizeof file, "%s/keep.jsonl", f->dir);
    assert_int_equal(run(f, 0, 0, "outbox", "export", file, NULL), 0);
    assert_non_null(strstr(f->text, "exported 2 changes"));
    assert_int_equal(run(f, 0, 0, "outbox", "export", file, NULL), 1); /* never overwrites */
    snprintf(other, sizeof other, "%s/other.db", f->dir);
    f->cfg.outbox_db = other;
    assert_int_equal(run(f, 0, 0, "outbox", "import", file, NULL), 0);
    assert_non_null(strstr(f->text, "imported 2 changes"));
    assert_int_equal(run(f, 0, 1, "outbox", "import", file, NULL), 0);
    v = json_loads(f->text, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(v, "imported")), 0);
    assert_int_equal(json_integer_value(json_object_get(v, "skipped")), 2);
    json_decref(v);
    assert_int_equal(count(other, "SELECT count(*) FROM ota_outbox"), 2);
}

static void
test_sync_summary(void **state)
{
    struct fx *f = *state;
    json_t    *v;

    assert_int_equal(run(f, 0, 0, "outbox", "add", "--model", "m1", "--entity", "site", "--op",
                         "insert", "--payload", "{}", "--id", "a", NULL), 0);
    f->cfg.command = "exit 4";
    assert_int_equal(run(f, 1, 0, "sync", NULL), 1);
    assert_non_null(strstr(f->text, "model 'm1': 0 synced, 0 quarantined now, 1 pending"));
    assert_non_null(strstr(f->text, "not drained"));
    assert_int_equal(run(f, 1, 1, "sync", "--model", "m1", NULL), 1);
    v = json_loads(f->text, 0, NULL);
    assert_non_null(v);
    assert_true(json_is_false(json_object_get(v, "drained")));
    assert_string_equal(json_string_value(json_object_get(v, "error")), "OTA_E_NETWORK");
    assert_int_equal(json_integer_value(json_object_get(v, "hook_status")), 4);
    json_decref(v);
    assert_int_equal(count(f->db, "SELECT count(*) FROM ota_outbox WHERE state='pending'"), 1);

    f->cfg.command = "sqlite3 \"$OTA_OUTBOX_DB\" \"UPDATE ota_outbox SET state='acked', "
                     "acked_at=1 WHERE model='$OTA_SYNC_MODEL' AND state='pending'\"";
    assert_int_equal(run(f, 1, 1, "sync", NULL), 0);
    v = json_loads(f->text, 0, NULL);
    assert_non_null(v);
    assert_true(json_is_true(json_object_get(v, "drained")));
    assert_int_equal(json_integer_value(json_object_get(v, "pending")), 0);
    json_decref(v);
    assert_int_equal(run(f, 1, 0, "sync", NULL), 0);
    assert_non_null(strstr(f->text, "sync: drained"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_list_export_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_summary, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
