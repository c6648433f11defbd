/* The agent's device state: the state database, the crash-safe switch of `current` (a crash
 * after each step, then recovery must end on one complete release), trial counting and the
 * automatic rollback, the data gate's rules, gc, recovery of leftovers, the process lock and
 * the configuration parser. No network and no bundle reader: releases are placed in
 * bundles/ directly, as staging would leave them. */
/* LDWRAP: -Wl,--wrap=renameat */
#include <errno.h>
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

#include "agent_int.h"
#include "ota/agent.h"
#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/hash.h"

/* renameat fails while fail_renameat is set (the switch of `current` uses it). */
static int fail_renameat;
int        __real_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
int        __wrap_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

int
__wrap_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    if (fail_renameat) {
        errno = EIO;
        return -1;
    }
    return __real_renameat(olddirfd, oldpath, newdirfd, newpath);
}

/* ---- fixture ------------------------------------------------------------------------- */

struct fake_outbox {
    struct ota_gate_pending rows[4];
    size_t                  n;
    int                     sync_drains; /* sync sets every count to 0 */
    ota_err                 sync_rc;     /* what sync returns when it does not drain */
    int                     syncs, exports;
    ota_err                 pending_rc;
    char                    export_path[4096];
};

struct fx {
    char                    dir[256];
    char                    state_dir[300];
    struct ota_agent_config cfg;
    struct fake_outbox      ob;
    struct ota_gate_ops     ops;
    struct ota_agent       *a;
    int64_t                 now;
};

static ota_err
fake_pending(void *ctx, struct ota_gate_pending *out, size_t cap, size_t *n, struct ota_diag *d)
{
    struct fake_outbox *ob = ctx;
    if (ob->pending_rc != OTA_OK)
        return ota_diag_set(d, ob->pending_rc, "outbox unreadable");
    assert_true(ob->n <= cap);
    memcpy(out, ob->rows, ob->n * sizeof(*out));
    *n = ob->n;
    return OTA_OK;
}

static ota_err
fake_sync(void *ctx, struct ota_diag *d)
{
    struct fake_outbox *ob = ctx;
    ob->syncs++;
    if (ob->sync_drains) {
        for (size_t i = 0; i < ob->n; i++)
            ob->rows[i].count = 0;
        return OTA_OK;
    }
    return ota_diag_set(d, ob->sync_rc ? ob->sync_rc : OTA_E_NETWORK, "server unreachable");
}

static ota_err
fake_export(void *ctx, const char *path, uint64_t *rows, struct ota_diag *d)
{
    struct fake_outbox *ob = ctx;
    uint64_t            total = 0;
    ob->exports++;
    snprintf(ob->export_path, sizeof(ob->export_path), "%s", path);
    for (size_t i = 0; i < ob->n; i++)
        total += ob->rows[i].count;
    *rows = total;
    return ota_write_file_atomic(path, "{}\n", 3, 0600, 1, d);
}

static void
fx_open(struct fx *f, int with_gate)
{
    struct ota_agent_opts o;
    struct ota_diag       d;

    memset(&o, 0, sizeof(o));
    o.config = &f->cfg;
    o.gate = with_gate ? &f->ops : NULL;
    o.now = f->now;
    assert_int_equal(ota_agent_open(&o, &f->a, &d), OTA_OK);
}

static void
fx_reopen(struct fx *f)
{
    ota_agent_close(f->a);
    f->a = NULL;
    fx_open(f, 1);
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/ota-agent-test.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->state_dir, sizeof(f->state_dir), "%s/state", f->dir);
    f->cfg.repository_url = (char *)"file:///nonexistent";
    f->cfg.state_dir = f->state_dir;
    f->cfg.app = (char *)"com.example.field";
    f->cfg.channel = (char *)"stable";
    f->cfg.runtime_version = (char *)"3.1";
    f->cfg.trusted_root = (char *)"/nonexistent/root.json";
    f->cfg.poll_interval_s = 3600;
    f->cfg.max_bundle_bytes = 1 << 30;
    f->cfg.connect_timeout_s = 10;
    f->cfg.low_speed_time_s = 30;
    f->cfg.check_timeout_s = 20;
    f->cfg.keep_releases = 2;
    f->cfg.trial_launches = 3;
    f->ops.pending = fake_pending;
    f->ops.sync = fake_sync;
    f->ops.export_rows = fake_export;
    f->ops.ctx = &f->ob;
    f->now = 1795000000;
    fx_open(f, 1);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    ota_agent_close(f->a);
    assert_int_equal(ota_rm_rf(f->dir, NULL), OTA_OK);
    free(f);
    return 0;
}

/* Place a verified release as staging leaves it: bundles/<version>/ plus a "staged" row. */
static void
place(struct fx *f, const char *version, const char *model, const char *reads, int breaking)
{
    char            path[4096], json[512];
    struct rel      r;
    struct ota_diag d;

    snprintf(path, sizeof(path), "%s/bundles/%s", f->state_dir, version);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/bundles/%s/index.js", f->state_dir, version);
    assert_int_equal(ota_write_file_atomic(path, version, strlen(version), 0644, 1, NULL), OTA_OK);
    snprintf(json, sizeof(json),
             "{\"app\":\"com.example.field\",\"mandatory\":false,\"min_agent\":\"0.1\","
             "\"model\":\"%s\",\"reads_models\":[%s],\"runtime\":{\"max\":\"3.9\",\"min\":\"3.0\"},"
             "\"version\":\"%s\"}",
             model, reads, version);
    memset(&r, 0, sizeof(r));
    snprintf(r.version, sizeof(r.version), "%s", version);
    snprintf(r.model, sizeof(r.model), "%s", model);
    snprintf(r.source, sizeof(r.source), "repository");
    r.release_json = json;
    r.state = REL_STAGED;
    r.breaking = breaking;
    r.present = 1;
    r.staged_at = f->now;
    assert_int_equal(state_rel_put(&f->a->st, &r, &d), OTA_OK);
}

static void
current_is(struct fx *f, const char *version)
{
    char cur[OTA_VERSION_STR_MAX];
    agent_current_target(f->a, cur);
    assert_string_equal(cur, version);
}

static void
active_is(struct fx *f, const char *version, const char *prev)
{
    char act[OTA_VERSION_STR_MAX], pr[OTA_VERSION_STR_MAX];
    assert_int_equal(agent_pointers(f->a, act, pr, NULL), OTA_OK);
    assert_string_equal(act, version);
    if (prev != NULL)
        assert_string_equal(pr, prev);
}

static enum rel_state
state_of(struct fx *f, const char *version)
{
    struct rel     r;
    enum rel_state s;
    assert_int_equal(state_rel_get(&f->a->st, version, &r, NULL), OTA_OK);
    s = r.state;
    rel_clear(&r);
    return s;
}

static int64_t
launches_of(struct fx *f, const char *version)
{
    struct rel r;
    int64_t    n;
    assert_int_equal(state_rel_get(&f->a->st, version, &r, NULL), OTA_OK);
    n = r.launches;
    rel_clear(&r);
    return n;
}

static char *
meta(struct fx *f, const char *key)
{
    char *v = NULL;
    assert_int_equal(state_meta_get(&f->a->st, key, &v, NULL), OTA_OK);
    return v;
}

static int
exists(struct fx *f, const char *rel)
{
    char        p[4096];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", f->state_dir, rel);
    return lstat(p, &st) == 0;
}

static void
install_v1_v2(struct fx *f)
{
    struct ota_agent_result res;
    struct ota_diag         d;

    place(f, "1.0", "m1", "", 0);
    assert_int_equal(ota_agent_activate(f->a, "1.0", 0, &res, &d), OTA_OK);
    assert_int_equal(ota_agent_confirm(f->a, &d), OTA_OK);
    place(f, "2.0", "m2", "\"m1\"", 0);
}

/* ---- tests --------------------------------------------------------------------------- */

static void
test_open_layout_device_id(void **state)
{
    struct fx *f = *state;
    char       id[33];

    assert_true(exists(f, "state.db"));
    assert_true(exists(f, "metadata"));
    assert_true(exists(f, "downloads"));
    assert_true(exists(f, "staging"));
    assert_true(exists(f, "bundles"));
    assert_int_equal(strlen(ota_agent_device_id(f->a)), 32);
    assert_int_equal(strspn(ota_agent_device_id(f->a), "0123456789abcdef"), 32);
    memcpy(id, ota_agent_device_id(f->a), 33);
    fx_reopen(f);
    assert_string_equal(ota_agent_device_id(f->a), id); /* generated once, kept */
}

static void
test_lock(void **state)
{
    struct fx            *f = *state;
    struct ota_agent     *b = NULL;
    struct ota_agent_opts o;
    struct ota_diag       d;

    memset(&o, 0, sizeof(o));
    o.config = &f->cfg;
    assert_int_equal(ota_agent_open(&o, &b, &d), OTA_E_LOCKED);
    assert_null(b);
    assert_non_null(strstr(d.msg, "lock"));
    o.lock_wait_ms = 120; /* waiting does not help while the holder keeps it */
    assert_int_equal(ota_agent_open(&o, &b, &d), OTA_E_LOCKED);
    o.read_only = 1; /* readers (status) need no lock */
    assert_int_equal(ota_agent_open(&o, &b, &d), OTA_OK);
    ota_agent_close(b);
    b = NULL;
    ota_agent_close(f->a);
    f->a = NULL;
    o.read_only = 0;
    assert_int_equal(ota_agent_open(&o, &b, &d), OTA_OK);
    ota_agent_close(b);
    fx_open(f, 1);
}

static void
test_activate_confirm_rollback(void **state)
{
    struct fx              *f = *state;
    struct ota_agent_result res;
    struct ota_diag         d;
    json_t                 *h = NULL;

    /* nothing installed */
    assert_int_equal(ota_agent_confirm(f->a, &d), OTA_E_NOT_FOUND);
    assert_int_equal(ota_agent_rollback(f->a, NULL, 0, &res, &d), OTA_E_NOT_FOUND);
    install_v1_v2(f);
    current_is(f, "1.0");
    active_is(f, "1.0", "");
    assert_int_equal(state_of(f, "1.0"), REL_CONFIRMED);

    /* activate without a version takes the newest staged release */
    memset(&res, 0, sizeof(res));
    assert_int_equal(ota_agent_activate(f->a, NULL, 0, &res, &d), OTA_OK);
    assert_true(res.changed);
    assert_string_equal(res.version, "2.0");
    assert_string_equal(res.from, "1.0");
    current_is(f, "2.0");
    active_is(f, "2.0", "1.0");
    assert_int_equal(state_of(f, "2.0"), REL_TRIAL);
    assert_int_equal(ota_agent_activate(f->a, "2.0", 0, &res, &d), OTA_E_STATE);
    assert_int_equal(ota_agent_activate(f->a, "1.0", 0, &res, &d), OTA_E_ROLLBACK);
    assert_int_equal(ota_agent_activate(f->a, NULL, 0, &res, &d), OTA_E_NOT_FOUND);
    assert_int_equal(ota_agent_activate(f->a, "7.0", 0, &res, &d), OTA_E_NOT_FOUND);
    assert_int_equal(ota_agent_activate(f->a, "x.y", 0, &res, &d), OTA_E_INVALID);

    assert_int_equal(ota_agent_confirm(f->a, &d), OTA_OK);
    assert_int_equal(state_of(f, "2.0"), REL_CONFIRMED);

    /* rollback: to the previous release; the one left is not offered again */
    assert_int_equal(ota_agent_rollback(f->a, "2.0", 0, &res, &d), OTA_E_STATE);
    assert_int_equal(ota_agent_rollback(f->a, NULL, 0, &res, &d), OTA_OK);
    assert_string_equal(res.version, "1.0");
    current_is(f, "1.0");
    active_is(f, "1.0", "");
    assert_int_equal(state_of(f, "2.0"), REL_ROLLED_BACK);
    assert_int_equal(state_of(f, "1.0"), REL_CONFIRMED);
    /* but an explicit activate may go forward to it again */
    assert_int_equal(ota_agent_rollback(f->a, "2.0", 0, &res, &d), OTA_E_INVALID);
    assert_int_equal(ota_agent_activate(f->a, "2.0", 0, &res, &d), OTA_OK);
    current_is(f, "2.0");

    assert_int_equal(ota_agent_history(f->a, 0, &h, &d), OTA_OK);
    assert_true(json_array_size(h) >= 6);
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "event")),
                        "activating");
    json_decref(h);
    assert_int_equal(ota_agent_history(f->a, 2, &h, &d), OTA_OK);
    assert_int_equal(json_array_size(h), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 1), "event")),
                        "activated");
    json_decref(h);
}

/* A crash after each step of an activation; recovery must end on one complete release whose
 * tree `current` points at and the database agrees with. */
static void
test_crash_during_activation(void **state)
{
    struct fx *f = *state;
    /* after step: 1 intent recorded, 2 temp link made, 3 renamed, 4 dir fsynced */
    static const char *const expect[] = {NULL, "1.0", "1.0", "2.0", "2.0"};

    for (int step = 1; step <= 4; step++) {
        struct ota_agent_result  res;
        struct ota_agent_startup s;
        struct ota_diag          d;
        char                    *act;

        teardown(state);
        setup(state);
        f = *state;
        install_v1_v2(f);
        f->a->crash_after_step = step;
        assert_int_equal(ota_agent_activate(f->a, "2.0", 0, &res, &d), OTA_E_IO);
        assert_non_null(strstr(d.msg, "simulated crash"));
        act = meta(f, "activating");
        assert_non_null(act); /* the intent is on disk */
        free(act);
        fx_reopen(f); /* the process died */

        memset(&s, 0, sizeof(s));
        assert_int_equal(ota_agent_recover(f->a, &d), OTA_OK);
        act = meta(f, "activating");
        assert_null(act);
        current_is(f, expect[step]);
        active_is(f, expect[step], NULL);
        assert_false(exists(f, "staging/x"));
        {
            /* no temp link left */
            char cmd[600];
            snprintf(cmd, sizeof(cmd), "ls -a '%s' | grep -q ota-tmp", f->state_dir);
            assert_int_not_equal(system(cmd), 0);
        }
        if (strcmp(expect[step], "2.0") == 0) {
            assert_int_equal(state_of(f, "2.0"), REL_TRIAL);
            active_is(f, "2.0", "1.0");
        } else {
            /* undone: still staged, and a later activation works */
            assert_int_equal(state_of(f, "2.0"), REL_STAGED);
            assert_int_equal(ota_agent_activate(f->a, "2.0", 0, &res, &d), OTA_OK);
            current_is(f, "2.0");
        }
        /* the tree is complete */
        assert_true(exists(f, "current/index.js"));
    }
}

/* The swap fails (not a crash): the error is returned, nothing changed, no record left. */
static void
test_swap_fails(void **state)
{
    struct fx              *f = *state;
    struct ota_agent_result res;
    struct ota_diag         d;
    char                   *act;
    char                    cmd[600];

    install_v1_v2(f);
    fail_renameat = 1;
    memset(&res, 0, sizeof(res));
    assert_int_equal(ota_agent_activate(f->a, "2.0", 0, &res, &d), OTA_E_IO);
    fail_renameat = 0;
    assert_false(res.changed);
    assert_non_null(strstr(d.msg, "cannot rename"));
    act = meta(f, "activating");
    assert_null(act);
    current_is(f, "1.0");
    active_is(f, "1.0", "");
    assert_int_equal(state_of(f, "2.0"), REL_STAGED);
    snprintf(cmd, sizeof(cmd), "ls -a '%s' | grep -q ota-tmp", f->state_dir);
    assert_int_not_equal(system(cmd), 0);
    assert_int_equal(ota_agent_activate(f->a, "2.0", 0, &res, &d), OTA_OK);
    current_is(f, "2.0");
}

static void
test_trial_rollback(void **state)
{
    struct fx               *f = *state;
    struct ota_agent_result  res;
    struct ota_agent_startup s;
    struct ota_diag          d;

    install_v1_v2(f);
    assert_int_equal(ota_agent_activate(f->a, "2.0", 0, &res, &d), OTA_OK);
    assert_int_equal(launches_of(f, "2.0"), 0);
    for (int i = 1; i <= 3; i++) {
        memset(&s, 0, sizeof(s));
        assert_int_equal(agent_startup_local(f->a, &s, &d), OTA_OK);
        assert_false(s.rolled_back);
        assert_string_equal(s.active, "2.0");
        assert_int_equal(launches_of(f, "2.0"), i);
        current_is(f, "2.0");
    }
    /* the fourth start after three unconfirmed launches rolls back */
    memset(&s, 0, sizeof(s));
    assert_int_equal(agent_startup_local(f->a, &s, &d), OTA_OK);
    assert_true(s.rolled_back);
    assert_string_equal(s.active, "1.0");
    current_is(f, "1.0");
    assert_int_equal(state_of(f, "2.0"), REL_FAILED);
    assert_int_equal(state_of(f, "1.0"), REL_CONFIRMED);
    /* and it is not activated again by the next start */
    memset(&s, 0, sizeof(s));
    assert_int_equal(agent_startup_local(f->a, &s, &d), OTA_OK);
    assert_false(s.activated);
    current_is(f, "1.0");

    /* a newer version is activated by startup and a confirm ends its trial */
    place(f, "3.0", "m2", "\"m1\"", 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(agent_startup_local(f->a, &s, &d), OTA_OK);
    assert_true(s.activated);
    assert_string_equal(s.active, "3.0");
    assert_int_equal(launches_of(f, "3.0"), 1); /* this launch runs it */
    assert_int_equal(ota_agent_confirm(f->a, &d), OTA_OK);
    for (int i = 0; i < 5; i++) {
        memset(&s, 0, sizeof(s));
        assert_int_equal(agent_startup_local(f->a, &s, &d), OTA_OK);
        assert_false(s.rolled_back);
    }
    current_is(f, "3.0");
}

static void
test_gate(void **state)
{
    struct fx              *f = *state;
    struct ota_agent_result res;
    struct ota_diag         d;
    char                   *g;

    f->cfg.outbox_db = (char *)"/data/app.db"; /* read through the fake ops */
    place(f, "1.0", "m1", "", 0);
    assert_int_equal(ota_agent_activate(f->a, "1.0", 0, &res, &d), OTA_OK);
    place(f, "2.0", "m2", "", 0); /* cannot read m1 */
    f->ob.n = 1;
    snprintf(f->ob.rows[0].model, sizeof(f->ob.rows[0].model), "m1");
    f->ob.rows[0].count = 4;

    /* closed, the sync fails: refused, nothing changed, the reason recorded */
    memset(&res, 0, sizeof(res));
    assert_int_equal(ota_agent_activate(f->a, "2.0", 0, &res, &d), OTA_E_GATED);
    assert_non_null(strstr(d.msg, "waiting for sync: 4 changes under model m1"));
    assert_non_null(strstr(d.msg, "server unreachable"));
    assert_int_equal(f->ob.syncs, 1);
    assert_false(res.changed);
    current_is(f, "1.0");
    active_is(f, "1.0", "");
    assert_int_equal(state_of(f, "2.0"), REL_STAGED);
    assert_true(exists(f, "bundles/2.0/index.js"));
    g = meta(f, "gate");
    assert_non_null(g);
    assert_non_null(strstr(g, "\"model\":\"m1\""));
    assert_non_null(strstr(g, "server unreachable"));
    free(g);

    /* startup's automatic activation obeys it too */
    {
        struct ota_agent_startup s;
        memset(&s, 0, sizeof(s));
        assert_int_equal(agent_startup_local(f->a, &s, &d), OTA_OK);
        assert_false(s.activated);
        assert_int_equal(s.gate_rc, OTA_E_GATED);
        current_is(f, "1.0");
    }

    /* an unreadable outbox keeps the gate closed */
    f->ob.pending_rc = OTA_E_DB;
    assert_int_equal(ota_agent_activate(f->a, "2.0", 0, &res, &d), OTA_E_GATED);
    current_is(f, "1.0");
    f->ob.pending_rc = OTA_OK;

    /* --force exports the pending rows first, then switches; the rows stay */
    memset(&res, 0, sizeof(res));
    assert_int_equal(ota_agent_activate(f->a, "2.0", 1, &res, &d), OTA_OK);
    assert_int_equal(f->ob.exports, 1);
    assert_string_equal(res.export_path, f->ob.export_path);
    assert_int_equal(res.exported, 4);
    assert_int_equal(access(res.export_path, F_OK), 0);
    current_is(f, "2.0");
    /* 1.0 ran without a trial until this update: it is the known-good release now */
    assert_int_equal(state_of(f, "1.0"), REL_CONFIRMED);
    assert_int_equal(f->ob.rows[0].count, 4);
    g = meta(f, "gate");
    assert_null(g);

    /* rollback in reverse: pending m2 changes, 1.0 cannot read m2; a draining sync opens it */
    snprintf(f->ob.rows[0].model, sizeof(f->ob.rows[0].model), "m2");
    f->ob.rows[0].count = 2;
    assert_int_equal(ota_agent_rollback(f->a, NULL, 0, &res, &d), OTA_E_GATED);
    current_is(f, "2.0");
    f->ob.sync_drains = 1;
    assert_int_equal(ota_agent_rollback(f->a, NULL, 0, &res, &d), OTA_OK);
    current_is(f, "1.0");

    /* without an outbox configured there is nothing to wait for */
    f->cfg.outbox_db = NULL;
    f->ob.sync_drains = 0;
    f->ob.rows[0].count = 9;
    f->ob.syncs = 0;
    assert_int_equal(ota_agent_activate(f->a, "2.0", 0, &res, &d), OTA_OK);
    assert_int_equal(f->ob.syncs, 0);
}

static void
test_gate_reads_models_and_breaking(void **state)
{
    struct fx              *f = *state;
    struct ota_agent_result res;
    struct ota_diag         d;

    f->cfg.outbox_db = (char *)"/data/app.db";
    place(f, "1.0", "m1", "", 0);
    assert_int_equal(ota_agent_activate(f->a, "1.0", 0, &res, &d), OTA_OK);
    f->ob.n = 1;
    snprintf(f->ob.rows[0].model, sizeof(f->ob.rows[0].model), "m1");
    f->ob.rows[0].count = 1;

    /* reads m1: no sync needed */
    place(f, "2.0", "m2", "\"m1\"", 0);
    assert_int_equal(ota_agent_activate(f->a, "2.0", 0, &res, &d), OTA_OK);
    assert_int_equal(f->ob.syncs, 0);

    /* published as breaking: the gate applies even to its own model */
    snprintf(f->ob.rows[0].model, sizeof(f->ob.rows[0].model), "m2");
    place(f, "3.0", "m2", "\"m1\"", 1);
    assert_int_equal(ota_agent_activate(f->a, "3.0", 0, &res, &d), OTA_E_GATED);
    assert_non_null(strstr(d.msg, "1 change under model m2"));
    current_is(f, "2.0");

    /* no outbox reader while outbox_db is configured: closed */
    f->cfg.outbox_db = (char *)"/nonexistent/app.db";
    ota_agent_close(f->a);
    fx_open(f, 0);
    f->ob.rows[0].count = 0;
    assert_int_equal(ota_agent_activate(f->a, "3.0", 0, &res, &d), OTA_E_GATED);
    current_is(f, "2.0");
    f->cfg.outbox_db = NULL;
}

static void
test_gc(void **state)
{
    struct fx               *f = *state;
    struct ota_agent_result  res;
    struct ota_diag          d;
    unsigned                 n = 0;
    static const char *const v[] = {"1.0", "2.0", "3.0", "4.0", "5.0"};

    place(f, "0.9", "m1", "", 0);
    for (size_t i = 0; i < 5; i++) {
        place(f, v[i], "m1", "", 0);
        assert_int_equal(ota_agent_activate(f->a, v[i], 0, &res, &d), OTA_OK);
        assert_int_equal(ota_agent_confirm(f->a, &d), OTA_OK);
    }
    place(f, "6.0", "m1", "", 0); /* staged, newer: kept */
    {
        char p[4096];
        snprintf(p, sizeof(p), "%s/downloads/%064d.part", f->state_dir, 0);
        assert_int_equal(ota_write_file_atomic(p, "x", 1, 0600, 1, NULL), OTA_OK);
    }
    assert_int_equal(ota_agent_gc(f->a, &n, &d), OTA_OK);
    assert_int_equal(n, 5); /* 0.9 (obsolete staged), 1.0, 2.0, 3.0, the stale download */
    assert_true(exists(f, "bundles/5.0"));
    assert_true(exists(f, "bundles/4.0"));
    assert_true(exists(f, "bundles/6.0"));
    assert_false(exists(f, "bundles/3.0"));
    assert_false(exists(f, "bundles/1.0"));
    assert_false(exists(f, "bundles/0.9"));
    current_is(f, "5.0");

    /* previous is kept even when older releases would rank before it */
    assert_int_equal(ota_agent_rollback(f->a, NULL, 0, &res, &d), OTA_OK); /* 5.0 -> 4.0 */
    place(f, "3.5", "m1", "", 0);
    active_is(f, "4.0", "");
    assert_int_equal(ota_agent_gc(f->a, &n, &d), OTA_OK);
    assert_true(exists(f, "bundles/4.0"));
    assert_true(exists(f, "bundles/6.0"));
    assert_false(exists(f, "bundles/3.5"));
}

static void
test_recover_leftovers(void **state)
{
    struct fx              *f = *state;
    struct ota_agent_result res;
    struct ota_diag         d;
    char                    p[4096], q[4096];
    int                     repaired = 0;

    install_v1_v2(f);
    /* leftovers of a crash: staging dir, temp link, temp metadata, an unrecorded tree */
    snprintf(p, sizeof(p), "%s/staging/2.1.abcd", f->state_dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/current.1234" OTA_TMP_SUFFIX, f->state_dir);
    assert_int_equal(symlink("bundles/2.0", p), 0);
    snprintf(p, sizeof(p), "%s/metadata/timestamp.json.x" OTA_TMP_SUFFIX, f->state_dir);
    assert_int_equal(ota_write_file_atomic(p, "{", 1, 0600, 1, NULL), OTA_OK);
    snprintf(p, sizeof(p), "%s/bundles/9.9", f->state_dir);
    assert_int_equal(mkdir(p, 0700), 0);
    /* and `current` moved behind the database's back */
    snprintf(p, sizeof(p), "%s/c" OTA_TMP_SUFFIX, f->state_dir);
    snprintf(q, sizeof(q), "%s/current", f->state_dir);
    assert_int_equal(symlink("bundles/2.0", p), 0);
    assert_int_equal(rename(p, q), 0);
    current_is(f, "2.0");

    assert_int_equal(layout_recover(f->a, &repaired, &d), OTA_OK);
    assert_true(repaired);
    assert_false(exists(f, "staging/2.1.abcd"));
    assert_false(exists(f, "current.1234" OTA_TMP_SUFFIX));
    assert_false(exists(f, "metadata/timestamp.json.x" OTA_TMP_SUFFIX));
    assert_false(exists(f, "bundles/9.9"));
    assert_true(exists(f, "bundles/2.0"));
    current_is(f, "1.0");
    active_is(f, "1.0", NULL);
    repaired = 0;
    assert_int_equal(layout_recover(f->a, &repaired, &d), OTA_OK);
    assert_false(repaired); /* idempotent */

    /* a staged tree that vanished loses its row; the active one keeps running */
    snprintf(p, sizeof(p), "%s/bundles/2.0", f->state_dir);
    assert_int_equal(ota_rm_rf(p, NULL), OTA_OK);
    assert_int_equal(layout_recover(f->a, &repaired, &d), OTA_OK);
    assert_int_equal(ota_agent_activate(f->a, "2.0", 0, &res, &d), OTA_E_NOT_FOUND);
    current_is(f, "1.0");
}

static void
test_status_json(void **state)
{
    struct fx              *f = *state;
    struct ota_agent_result res;
    struct ota_diag         d;
    json_t                 *s = NULL;

    assert_int_equal(ota_agent_status(f->a, &s, &d), OTA_OK);
    assert_true(json_is_null(json_object_get(s, "active")));
    json_decref(s);
    install_v1_v2(f);
    assert_int_equal(ota_agent_activate(f->a, "2.0", 0, &res, &d), OTA_OK);
    assert_int_equal(ota_agent_status(f->a, &s, &d), OTA_OK);
    assert_string_equal(json_string_value(json_object_get(json_object_get(s, "active"), "version")),
                        "2.0");
    assert_true(json_is_true(json_object_get(json_object_get(s, "active"), "on_trial")));
    assert_string_equal(json_string_value(json_object_get(s, "previous")), "1.0");
    assert_int_equal(json_array_size(json_object_get(s, "releases")), 2);
    assert_string_equal(json_string_value(json_object_get(s, "device_id")),
                        ota_agent_device_id(f->a));
    json_decref(s);
}

static void
test_bucket(void **state)
{
    unsigned b1 = 100, b2 = 100;
    (void)state;
    assert_int_equal(
        check_bucket("00112233445566778899aabbccddeeff", "com.example.field", "1.4.0", &b1),
        OTA_OK);
    assert_int_equal(
        check_bucket("00112233445566778899aabbccddeeff", "com.example.field", "1.4.0", &b2),
        OTA_OK);
    assert_int_equal(b1, b2);
    assert_int_equal(b1, 59); /* formats/agent.md test vectors */
    assert_int_equal(
        check_bucket("00112233445566778899aabbccddeeff", "com.example.field", "2.0.0", &b2),
        OTA_OK);
    assert_int_equal(b2, 34);
    {
        /* the rule from repo-layout.md, computed independently */
        unsigned char h[OTA_SHA256_LEN];
        const char   *s = "00112233445566778899aabbccddeeff:com.example.field:1.4.0";
        assert_int_equal(ota_sha256_buf(s, strlen(s), h), OTA_OK);
        assert_int_equal(
            b1,
            (((uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3]) % 100u));
    }
}

static void
test_config(void **state)
{
    struct ota_agent_config c;
    struct ota_diag         d;
    const char             *good = "{\"repository_url\":\"https://updates.example.com/field\","
                                   "\"state_dir\":\"/var/lib/ota\",\"app\":\"com.example.field\","
                                   "\"runtime_version\":\"3.2\",\"trusted_root\":\"/usr/share/root.json\","
                                   "\"outbox_db\":\"/data/app.db\",\"sync_url\":\"https://s/{model}\"}";
    (void)state;
    memset(&c, 0, sizeof(c));
    assert_int_equal(ota_agent_config_parse(good, strlen(good), "agent.json", &c, &d), OTA_OK);
    assert_string_equal(c.channel, "stable");
    assert_int_equal(c.keep_releases, 2);
    assert_int_equal(c.trial_launches, 3);
    assert_int_equal(c.check_timeout_s, 20);
    assert_string_equal(c.outbox_db, "/data/app.db");
    assert_null(c.factory_bundle);
    ota_agent_config_clear(&c);

#define BAD(json, code, needle)                                                                    \
    do {                                                                                           \
        const char *j_ = json;                                                                     \
        memset(&c, 0xa5, sizeof(c));                                                               \
        assert_int_equal(ota_agent_config_parse(j_, strlen(j_), "agent.json", &c, &d), code);      \
        assert_non_null(strstr(d.msg, needle));                                                    \
    } while (0)
    BAD("{\"repository_url\":\"https://x\",\"state_dir\":\"/s\",\"app\":\"a\","
        "\"runtime_version\":\"1\",\"trusted_root\":\"/r\",\"colour\":\"red\"}",
        OTA_E_FORMAT, "colour");
    BAD("{\"state_dir\":\"/s\",\"app\":\"a\",\"runtime_version\":\"1\",\"trusted_root\":\"/r\"}",
        OTA_E_FORMAT, "repository_url");
    BAD("{\"repository_url\":\"ftp://x\",\"state_dir\":\"/s\",\"app\":\"a\","
        "\"runtime_version\":\"1\",\"trusted_root\":\"/r\"}",
        OTA_E_FORMAT, "repository_url");
    BAD("{\"repository_url\":\"https://x\",\"state_dir\":\"s\",\"app\":\"a\","
        "\"runtime_version\":\"1\",\"trusted_root\":\"/r\"}",
        OTA_E_FORMAT, "state_dir");
    BAD("{\"repository_url\":\"https://x\",\"state_dir\":\"/s\",\"app\":\"a\","
        "\"runtime_version\":\"1\",\"trusted_root\":\"/r\",\"trial_launches\":0}",
        OTA_E_FORMAT, "trial_launches");
    BAD("{\"repository_url\":\"https://x\",\"state_dir\":\"/s\",\"app\":\"a\","
        "\"runtime_version\":\"1\",\"trusted_root\":\"/r\",\"keep_releases\":\"2\"}",
        OTA_E_FORMAT, "keep_releases");
    BAD("{\"repository_url\":\"https://x\",\"state_dir\":\"/s\",\"app\":\"a b\","
        "\"runtime_version\":\"1\",\"trusted_root\":\"/r\"}",
        OTA_E_FORMAT, "app");
    BAD("[1]", OTA_E_FORMAT, "object");
#undef BAD
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_layout_device_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activate_confirm_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_during_activation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swap_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trial_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gate_reads_models_and_breaking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_leftovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_json, setup, teardown),
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
