/* The sync client against the real reference server (build/bin/ota-syncd, started here on
 * 127.0.0.1 with port 0 and stopped by its pid), and against a small in-process server for the
 * replies ota-syncd never gives (broken or partial). Every failure case checks the exact code
 * and that no outbox row changed. */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>
#include <sqlite3.h>

#include "ota/fsutil.h"
#include "ota/outbox.h"
#include "ota/sync.h"

struct fx {
    char  dir[64];
    char  app[128];    /* the outbox database */
    char  srv[128];    /* ota-syncd's database */
    char  url[160];
    pid_t pid;         /* ota-syncd, 0 if not running */
    struct MHD_Daemon *fake;
};

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

/* A fingerprint of every outbox row and column, to prove that a failed sync changed nothing. */
static long long
outbox_digest(const char *db)
{
    return sql_int(db, "SELECT sum(seq * 7 + length(change_id) * 13 + length(state) * 101 + "
                       "attempts * 1009 + coalesce(acked_at, 0) + length(coalesce(reason, '')) "
                       "* 10007) + count(*) * 1000003 FROM ota_outbox");
}

static void
start_server(struct fx *f, const char *const *extra)
{
    const char *build = getenv("BUILD");
    char        bin[512], portfile[160];
    const char *argv[32];
    int         n = 0, i;
    long        port = 0;

    assert_non_null(build);
    snprintf(bin, sizeof bin, "%s/bin/ota-syncd", build);
    snprintf(portfile, sizeof portfile, "%s/port", f->dir);
    unlink(portfile);
    argv[n++] = bin;
    argv[n++] = "--db";
    argv[n++] = f->srv;
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--port-file";
    argv[n++] = portfile;
    for (i = 0; extra != NULL && extra[i] != NULL; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    f->pid = fork();
    assert_true(f->pid >= 0);
    if (f->pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 1);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    /* The port file appears once the server listens. */
    for (i = 0; i < 1000; i++) {
        unsigned char *buf = NULL;
        size_t         len;
        if (ota_read_file(portfile, 64, &buf, &len, NULL) == OTA_OK) {
            port = strtol((char *)buf, NULL, 10);
            free(buf);
            if (port > 0)
                break;
        }
        usleep(10000);
    }
    assert_true(port > 0);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%ld/sync/{model}", port);
}

static void
stop_server(struct fx *f)
{
    int status;

    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        waitpid(f->pid, &status, 0);
        f->pid = 0;
    }
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);

    snprintf(f->dir, sizeof f->dir, "/tmp/ota-sync-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->app, sizeof f->app, "%s/app.db", f->dir);
    snprintf(f->srv, sizeof f->srv, "%s/server.db", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    stop_server(f);
    if (f->fake != NULL)
        MHD_stop_daemon(f->fake);
    assert_int_equal(ota_rm_rf(f->dir, NULL), OTA_OK);
    free(f);
    return 0;
}

/* n changes of model, entity "site" except every k-th one (k > 0) which is entity "pole". */
static void
fill(struct fx *f, const char *model, int n, int k)
{
    struct ota_outbox *ob = NULL;
    struct ota_diag    d;
    int                i;

    assert_int_equal(ota_outbox_open(f->app, &ob, &d), OTA_OK);
    for (i = 1; i <= n; i++) {
        char id[64], payload[64];
        snprintf(id, sizeof id, "%s-%05d", model, i);
        snprintf(payload, sizeof payload, "{\"n\":%d,\"lat\":52.37}", i);
        assert_int_equal(ota_outbox_add(ob, id, model, k > 0 && i % k == 0 ? "pole" : "site",
                                        "insert", payload, NULL, &d), OTA_OK);
    }
    ota_outbox_close(ob);
}

static void
config(struct fx *f, struct ota_sync_config *c)
{
    memset(c, 0, sizeof *c);
    c->outbox_db = f->app;
    c->url_template = f->url;
    c->batch_rows = 100;
    c->max_attempts = 1;
    c->timeout_s = 10;
}

static long long
server_count(struct fx *f)
{
    return sql_int(f->srv, "SELECT count(*) FROM changes");
}

static void
test_batches_acked(void **state)
{
    struct fx             *f = *state;
    struct ota_sync_config c;
    struct ota_sync_report r;
    struct ota_diag        d;

    start_server(f, NULL);
    fill(f, "m1", 1050, 0);
    fill(f, "m2", 30, 0);
    config(f, &c);
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_OK);
    assert_true(r.drained);
    assert_int_equal(r.acked, 1050);
    assert_int_equal(r.requests, 11); /* 100 rows a batch */
    assert_int_equal(r.pending, 0);
    assert_int_equal(server_count(f), 1050);
    assert_int_equal(sql_int(f->app, "SELECT count(*) FROM ota_outbox WHERE state='acked' AND "
                                     "model='m1' AND attempts=1"), 1050);
    /* m2 was not asked for: untouched. */
    assert_int_equal(sql_int(f->app, "SELECT count(*) FROM ota_outbox WHERE model='m2' AND "
                                     "state='pending'"), 30);
    /* The payload arrived as a JSON value, numbers as written. */
    assert_int_equal(sql_int(f->srv, "SELECT count(*) FROM changes WHERE id='m1-00007' AND "
                                     "payload='{\"n\":7,\"lat\":52.37}' AND model='m1'"), 1);
    /* All models. */
    assert_int_equal(ota_sync_run(&c, NULL, &r, &d), OTA_OK);
    assert_int_equal(r.acked, 30);
    assert_int_equal(server_count(f), 1080);
    /* Nothing left: no request at all. */
    assert_int_equal(ota_sync_run(&c, NULL, &r, &d), OTA_OK);
    assert_int_equal(r.requests, 0);
}

/* A crash after the server stored a batch but before we marked it: the batch goes again, and
 * the server applies each id once. */
static void
test_resent_batch_applied_once(void **state)
{
    struct fx             *f = *state;
    struct ota_sync_config c;
    struct ota_sync_report r;
    struct ota_diag        d;

    start_server(f, NULL);
    fill(f, "m1", 250, 0);
    config(f, &c);
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_OK);
    assert_int_equal(server_count(f), 250);
    sql_exec(f->app, "UPDATE ota_outbox SET state='pending', acked_at=NULL");
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_OK);
    assert_int_equal(r.acked, 250);
    assert_int_equal(server_count(f), 250);
    assert_int_equal(sql_int(f->srv, "SELECT count(DISTINCT id) FROM changes"), 250);
    assert_int_equal(sql_int(f->app, "SELECT count(*) FROM ota_outbox WHERE state='acked'"), 250);
}

static void
test_rejected_entity_quarantined(void **state)
{
    struct fx             *f = *state;
    struct ota_sync_config c;
    struct ota_sync_report r;
    struct ota_diag        d;
    const char *const      extra[] = { "--reject-entity", "pole", NULL };

    start_server(f, extra);
    fill(f, "m1", 300, 100); /* ids 100, 200, 300 are poles */
    config(f, &c);
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_E_REJECTED);
    assert_false(r.drained);
    assert_int_equal(r.acked, 297);
    assert_int_equal(r.quarantined, 3);
    assert_int_equal(r.held, 3);
    assert_int_equal(r.pending, 0);
    assert_int_equal(r.n_rejections, 3);
    assert_string_equal(r.rejections[0].id, "m1-00100");
    assert_non_null(strstr(r.rejections[0].reason, "pole"));
    assert_int_equal(r.n_models, 1);
    assert_int_equal(r.models[0].held, 3);
    assert_int_equal(server_count(f), 297);
    /* Kept, with the server's reason; never deleted. */
    assert_int_equal(sql_int(f->app, "SELECT count(*) FROM ota_outbox WHERE state='quarantined' "
                                     "AND entity='pole' AND reason LIKE '%not accepted%'"), 3);
    assert_int_equal(sql_int(f->app, "SELECT count(*) FROM ota_outbox"), 300);
    /* Still not drained on the next run, which sends nothing. */
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_E_REJECTED);
    assert_int_equal(r.requests, 0);
    assert_int_equal(r.held, 3);
}

static void
test_auth(void **state)
{
    struct fx             *f = *state;
    struct ota_sync_config c;
    struct ota_sync_report r;
    struct ota_diag        d;
    const char *const      extra[] = { "--token", "s3cret", NULL };
    char                   tokfile[160];
    long long              before;

    start_server(f, extra);
    fill(f, "m1", 120, 0);
    before = outbox_digest(f->app);
    config(f, &c);
    c.max_attempts = 3; /* a 401 is never retried */
    c.token = "wrong";
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_E_AUTH);
    assert_non_null(strstr(d.msg, "sign-in needed"));
    assert_null(strstr(d.msg, "wrong"));
    assert_int_equal(r.requests, 1);
    assert_int_equal(r.http_status, 401);
    assert_int_equal(r.pending, 120);
    assert_int_equal(outbox_digest(f->app), before);
    assert_int_equal(server_count(f), 0);
    c.token = NULL;
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_E_AUTH);
    assert_int_equal(outbox_digest(f->app), before);
    /* The token from the first line of a file. */
    snprintf(tokfile, sizeof tokfile, "%s/token", f->dir);
    assert_int_equal(ota_write_file_atomic(tokfile, "s3cret\nignored\n", 15, 0600, 0, NULL),
                     OTA_OK);
    c.token_file = tokfile;
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_OK);
    assert_int_equal(server_count(f), 120);
}

static void
test_server_stopped(void **state)
{
    struct fx             *f = *state;
    struct ota_sync_config c;
    struct ota_sync_report r;
    struct ota_diag        d;
    long long              before;
    struct timespec        t0, t1;
    double                 secs;

    start_server(f, NULL);
    stop_server(f);
    fill(f, "m1", 50, 0);
    before = outbox_digest(f->app);
    config(f, &c);
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_E_NETWORK);
    assert_int_equal(r.requests, 1);
    assert_int_equal(r.http_status, 0);
    assert_int_equal(outbox_digest(f->app), before);
    /* Bounded retries with backoff: 3 tries, 0.5 s + 1 s apart. */
    c.max_attempts = 3;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_E_NETWORK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_int_equal(r.requests, 3);
    assert_true(secs >= 1.4 && secs < 5.0);
    assert_non_null(strstr(d.msg, "after 3 attempts"));
    assert_int_equal(r.pending, 50);
    assert_int_equal(outbox_digest(f->app), before);
}

static void
test_mode_fail(void **state)
{
    struct fx             *f = *state;
    struct ota_sync_config c;
    struct ota_sync_report r;
    struct ota_diag        d;
    long long              before;
    const char *const      extra[] = { "--offline", NULL };

    start_server(f, extra);
    fill(f, "m1", 50, 0);
    before = outbox_digest(f->app);
    config(f, &c);
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_E_NETWORK);
    assert_int_equal(r.http_status, 503);
    assert_int_equal(outbox_digest(f->app), before);
    /* Switch the server to "fail" through its admin API. */
    {
        char cmd[512];
        char *p = strstr(f->url, "/sync/");
        assert_non_null(p);
        snprintf(cmd, sizeof cmd, "curl -sf -X POST -d '{\"mode\":\"fail\"}' '%.*s/admin/mode' "
                                  ">/dev/null", (int)(p - f->url), f->url);
        assert_int_equal(system(cmd), 0);
    }
    c.max_attempts = 2;
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_E_NETWORK);
    assert_int_equal(r.http_status, 500);
    assert_int_equal(r.requests, 2);
    assert_non_null(strstr(d.msg, "500"));
    assert_int_equal(outbox_digest(f->app), before);
    assert_int_equal(server_count(f), 0);
}

/* A row an app wrote directly that breaks the contract is quarantined without being sent; the
 * rest still syncs. */
static void
test_bad_row_not_sent(void **state)
{
    struct fx             *f = *state;
    struct ota_sync_config c;
    struct ota_sync_report r;
    struct ota_diag        d;

    start_server(f, NULL);
    fill(f, "m1", 10, 0);
    sql_exec(f->app, "INSERT INTO ota_outbox(change_id, model, entity, op, payload, created_at) "
                     "VALUES('broken', 'm1', 'site', 'insert', '{oops', 1)");
    config(f, &c);
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_E_REJECTED);
    assert_int_equal(r.acked, 10);
    assert_int_equal(r.quarantined, 1);
    assert_string_equal(r.rejections[0].id, "broken");
    assert_int_equal(server_count(f), 10);
    assert_int_equal(sql_int(f->app, "SELECT count(*) FROM ota_outbox WHERE change_id='broken' "
                                     "AND state='quarantined' AND reason LIKE 'not sent:%' AND "
                                     "payload='{oops'"), 1);
}

static void
test_hook(void **state)
{
    struct fx             *f = *state;
    struct ota_sync_config c;
    struct ota_sync_report r;
    struct ota_diag        d;
    char                   cmd[512], seen[160];
    unsigned char         *buf = NULL;
    size_t                 len;
    long long              before;

    fill(f, "m1", 20, 0);
    fill(f, "m2", 5, 0);
    memset(&c, 0, sizeof c);
    c.outbox_db = f->app;
    before = outbox_digest(f->app);

    /* Failure: nothing changes, the status is reported. */
    c.command = "exit 3";
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_E_NETWORK);
    assert_int_equal(r.hook_status, 3);
    assert_non_null(strstr(d.msg, "status 3"));
    assert_int_equal(outbox_digest(f->app), before);

    /* Exit 0 without syncing anything: still not drained. */
    c.command = "true";
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_E_NETWORK);
    assert_int_equal(r.hook_status, 0);
    assert_int_equal(r.pending, 20);

    /* A hook that syncs its model and marks the rows as formats/sync-protocol.md says. */
    snprintf(seen, sizeof seen, "%s/seen", f->dir);
    snprintf(cmd, sizeof cmd,
             "echo \"$OTA_SYNC_MODEL\" >> '%s' && sqlite3 \"$OTA_OUTBOX_DB\" \"UPDATE ota_outbox "
             "SET state='acked', acked_at=strftime('%%s','now'), attempts=attempts+1 WHERE "
             "model='$OTA_SYNC_MODEL' AND state='pending'\"", seen);
    c.command = cmd;
    assert_int_equal(ota_sync_run(&c, NULL, &r, &d), OTA_OK);
    assert_true(r.drained);
    assert_true(r.used_hook);
    assert_int_equal(r.pending, 0);
    assert_int_equal(ota_read_file(seen, 1024, &buf, &len, &d), OTA_OK);
    assert_string_equal((char *)buf, "m1\nm2\n");
    free(buf);
    assert_int_equal(sql_int(f->app, "SELECT count(*) FROM ota_outbox WHERE state='acked'"), 25);

    /* A hook that runs too long is killed. */
    fill(f, "m3", 1, 0);
    c.command = "sleep 30";
    c.timeout_s = 1;
    assert_int_equal(ota_sync_run(&c, "m3", &r, &d), OTA_E_TIMEOUT);
    assert_int_equal(sql_int(f->app, "SELECT count(*) FROM ota_outbox WHERE model='m3' AND "
                                     "state='pending' AND attempts=0"), 1);
}

/* ---- an in-process server with canned replies ------------------------------------------- */

static const char *fake_reply;

static enum MHD_Result
fake_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
             const char *version, const char *upload, size_t *upload_size, void **ctx)
{
    struct MHD_Response *resp;
    enum MHD_Result      ret;

    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    if (*ctx == NULL) {
        *ctx = (void *)1;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    resp = MHD_create_response_from_buffer(strlen(fake_reply), (void *)fake_reply,
                                           MHD_RESPMEM_PERSISTENT);
    ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void
start_fake(struct fx *f)
{
    const union MHD_DaemonInfo *info;

    f->fake = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, fake_handler,
                               NULL, MHD_OPTION_END);
    assert_non_null(f->fake);
    info = MHD_get_daemon_info(f->fake, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u/sync/{model}", info->port);
}

static void
test_broken_replies_change_nothing(void **state)
{
    struct fx             *f = *state;
    struct ota_sync_config c;
    struct ota_sync_report r;
    struct ota_diag        d;
    long long              before;
    size_t                 i;
    static const char *const broken[] = {
        "{\"accepted\":[\"m1-00001\",\"not-sent\"],\"rejected\":[]}",
        "{\"accepted\":[\"m1-00001\"],\"rejected\":[{\"id\":\"m1-00001\",\"reason\":\"x\"}]}",
        "{\"accepted\":[\"m1-00001\"]}",
        "{\"accepted\":[1],\"rejected\":[]}",
        "{\"accepted\":[],\"rejected\":[{\"id\":\"m1-00002\",\"reason\":\"x\",\"more\":1}]}",
        "not json",
        "",
        NULL,
    };

    start_fake(f);
    fill(f, "m1", 3, 0);
    before = outbox_digest(f->app);
    config(f, &c);
    for (i = 0; broken[i] != NULL; i++) {
        fake_reply = broken[i];
        assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_E_FORMAT);
        assert_non_null(strstr(d.msg, "bad sync reply"));
        assert_int_equal(outbox_digest(f->app), before);
    }
    /* Ids the server leaves out stay pending (one more attempt counted); not drained. */
    fake_reply = "{\"accepted\":[\"m1-00001\"],\"rejected\":[],\"note\":\"later\"}";
    assert_int_equal(ota_sync_run(&c, "m1", &r, &d), OTA_E_NETWORK);
    assert_int_equal(r.acked, 1);
    assert_int_equal(r.pending, 2);
    assert_int_equal(sql_int(f->app, "SELECT count(*) FROM ota_outbox WHERE state='pending' AND "
                                     "attempts=1"), 2);
}

static void
test_config_checked(void **state)
{
    struct fx             *f = *state;
    struct ota_sync_config c;
    struct ota_sync_report r;
    struct ota_diag        d;
    char                   url[64];

    config(f, &c);
    c.url_template = "http://127.0.0.1:1/sync";
    assert_int_equal(ota_sync_run(&c, NULL, &r, &d), OTA_E_INVALID);
    config(f, &c);
    c.batch_rows = OTA_SYNC_BATCH_ROWS_MAX + 1;
    assert_int_equal(ota_sync_run(&c, NULL, &r, &d), OTA_E_INVALID);
    config(f, &c);
    c.token = "has space";
    assert_int_equal(ota_sync_run(&c, NULL, &r, &d), OTA_E_INVALID);
    assert_int_equal(ota_sync_url("https://h/s/{model}/x", "a b/é", url, sizeof url, &d), OTA_OK);
    assert_string_equal(url, "https://h/s/a%20b%2F%C3%A9/x");
    assert_int_equal(ota_sync_url("https://h/s/{model}", "abcdefgh", url, 20, &d), OTA_E_TOO_BIG);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batches_acked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resent_batch_applied_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_entity_quarantined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_row_not_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_replies_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_checked, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
