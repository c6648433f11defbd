/* Failures of the system under the agent's state: a failing disk named in database errors, a
 * database SQLite could only open read-only, and every file-system call of a switch of
 * `current` failed in turn ("fail the N-th call", with link-time wrapping). A switch that
 * fails must leave the release that was active, with no record or temp link behind; the
 * integration test tests/integration/fault_inject.sh does the same to the whole binary with
 * strace. */
/* LDWRAP: -Wl,--wrap=fsync -Wl,--wrap=renameat -Wl,--wrap=symlinkat -Wl,--wrap=unlinkat */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "agent_int.h"
#include "ota/agent.h"
#include "ota/fsutil.h"
#include "ota/outbox.h"

/* ---- fail the N-th call of one wrapped function -------------------------------------- */

enum { W_FSYNC, W_RENAMEAT, W_SYMLINKAT, W_UNLINKAT, W_COUNT };
static int fail_which = -1; /* W_* armed, -1 none */
static int fail_at;         /* fail its call number fail_at (1-based) */
static int calls[W_COUNT];
static int injected;

static int
fail_now(int which)
{
    if (which != fail_which || ++calls[which] != fail_at)
        return 0;
    injected++;
    errno = EIO;
    return 1;
}

int __real_fsync(int fd);
int __wrap_fsync(int fd);
int __real_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
int __wrap_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
int __real_symlinkat(const char *target, int newdirfd, const char *linkpath);
int __wrap_symlinkat(const char *target, int newdirfd, const char *linkpath);
int __real_unlinkat(int dirfd, const char *pathname, int flags);
int __wrap_unlinkat(int dirfd, const char *pathname, int flags);

int
__wrap_fsync(int fd)
{
    return fail_now(W_FSYNC) ? -1 : __real_fsync(fd);
}

int
__wrap_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    return fail_now(W_RENAMEAT) ? -1 : __real_renameat(olddirfd, oldpath, newdirfd, newpath);
}

int
__wrap_symlinkat(const char *target, int newdirfd, const char *linkpath)
{
    return fail_now(W_SYMLINKAT) ? -1 : __real_symlinkat(target, newdirfd, linkpath);
}

int
__wrap_unlinkat(int dirfd, const char *pathname, int flags)
{
    return fail_now(W_UNLINKAT) ? -1 : __real_unlinkat(dirfd, pathname, flags);
}

static void
arm(int which, int n)
{
    memset(calls, 0, sizeof(calls));
    injected = 0;
    fail_which = which;
    fail_at = n;
}

static void
disarm(void)
{
    fail_which = -1;
}

/* ---- fixture ------------------------------------------------------------------------- */

struct fx {
    char                    dir[256];
    char                    state_dir[300];
    struct ota_agent_config cfg;
    struct ota_agent       *a;
};

static void
fx_open(struct fx *f)
{
    struct ota_agent_opts o;
    struct ota_diag       d;

    memset(&o, 0, sizeof(o));
    o.config = &f->cfg;
    o.now = 1795000000;
    assert_int_equal(ota_agent_open(&o, &f->a, &d), OTA_OK);
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/ota-faults-test.XXXXXX");
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
    fx_open(f);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    disarm();
    ota_agent_close(f->a);
    assert_int_equal(ota_rm_rf(f->dir, NULL), OTA_OK);
    free(f);
    return 0;
}

/* A verified release as staging leaves it: bundles/<version>/ and a "staged" row. */
static void
place(struct fx *f, const char *version)
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
             "\"model\":\"m1\",\"reads_models\":[],\"runtime\":{\"max\":\"3.9\",\"min\":\"3.0\"},"
             "\"version\":\"%s\"}",
             version);
    memset(&r, 0, sizeof(r));
    snprintf(r.version, sizeof(r.version), "%s", version);
    snprintf(r.model, sizeof(r.model), "m1");
    snprintf(r.source, sizeof(r.source), "repository");
    r.release_json = json;
    r.state = REL_STAGED;
    r.present = 1;
    r.staged_at = 1795000000;
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
active_is(struct fx *f, const char *version)
{
    char act[OTA_VERSION_STR_MAX];
    assert_int_equal(agent_pointers(f->a, act, NULL, NULL), OTA_OK);
    assert_string_equal(act, version);
}

static void
no_record_no_temp(struct fx *f)
{
    char  cmd[600];
    char *v = NULL;

    assert_int_equal(state_meta_get(&f->a->st, "activating", &v, NULL), OTA_OK);
    assert_null(v);
    snprintf(cmd, sizeof(cmd), "ls -a '%s' | grep -q ota-tmp", f->state_dir);
    assert_int_not_equal(system(cmd), 0);
}

/* ---- database errors ----------------------------------------------------------------- */

/* Writes fail with EFBIG while the file size limit is 0 (SIGXFSZ ignored); the message must
 * name the system error, not only SQLite's "disk I/O error". */
static void
test_db_errors_name_the_system_error(void **state)
{
    struct fx         *f = *state;
    struct ota_outbox *ob = NULL;
    struct ota_diag    d, d2;
    struct rlimit      old, zero;
    char               path[400];
    ota_err            rc, rc2;

    snprintf(path, sizeof(path), "%s/app.db", f->dir);
    assert_int_equal(ota_outbox_open(path, &ob, &d), OTA_OK);
    assert_int_equal(signal(SIGXFSZ, SIG_IGN) == SIG_ERR, 0);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    zero = old;
    zero.rlim_cur = 0;
    memset(&d, 0, sizeof(d));
    memset(&d2, 0, sizeof(d2));
    /* Nothing may print while the limit holds: the test log is a regular file too. */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &zero), 0);
    rc = state_meta_set(&f->a->st, "probe", "x", &d);
    rc2 = ota_outbox_add(ob, "c1", "m1", "site", "insert", "{}", NULL, &d2);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);

    assert_int_equal(rc, OTA_E_DB);
    assert_int_equal(d.sys_errno, EFBIG);
    assert_non_null(strstr(d.msg, "state database: "));
    assert_non_null(strstr(d.msg, strerror(EFBIG)));
    assert_int_equal(rc2, OTA_E_DB);
    assert_int_equal(d2.sys_errno, EFBIG);
    assert_non_null(strstr(d2.msg, "cannot add a change to the outbox"));
    assert_non_null(strstr(d2.msg, strerror(EFBIG)));
    /* and nothing was written */
    assert_int_equal(ota_outbox_add(ob, "c1", "m1", "site", "insert", "{}", NULL, &d), OTA_OK);
    ota_outbox_close(ob);
}

/* SQLite opens a database it cannot open for writing read-only, where every later write fails
 * ("attempt to write a readonly database") after the agent has done its work. The agent's
 * database must open writable or not at all. SQLite's own open(2) is replaced through its VFS
 * (xSetSystemCall): it fails read-write opens of state.db while fail_db_opens > 0. */
static sqlite3_syscall_ptr real_sqlite_open;
static int                 fail_db_opens;

static int
sqlite_open(const char *path, int flags, int mode)
{
    size_t n = strlen(path);
    if (fail_db_opens > 0 && (flags & O_ACCMODE) == O_RDWR && n >= 9 &&
        strcmp(path + n - 9, "/state.db") == 0) {
        fail_db_opens--;
        errno = ENOSPC;
        return -1;
    }
    return ((int (*)(const char *, int, int))real_sqlite_open)(path, flags, mode);
}

static void
test_db_never_opens_read_only(void **state)
{
    struct fx            *f = *state;
    sqlite3_vfs          *vfs = sqlite3_vfs_find(NULL);
    struct ota_agent_opts o;
    struct ota_diag       d;
    ota_err               rc;

    ota_agent_close(f->a);
    f->a = NULL;
    real_sqlite_open = vfs->xGetSystemCall(vfs, "open");
    assert_non_null(real_sqlite_open);
    assert_int_equal(vfs->xSetSystemCall(vfs, "open", (sqlite3_syscall_ptr)sqlite_open), SQLITE_OK);

    /* The cause is gone when the agent looks: one more try, and the database is writable. */
    fail_db_opens = 1;
    fx_open(f);
    assert_int_equal(fail_db_opens, 0);
    assert_int_equal(state_meta_set(&f->a->st, "probe", "x", &d), OTA_OK);
    ota_agent_close(f->a);
    f->a = NULL;

    /* It stays: the open fails, saying so, instead of failing the first write later. */
    fail_db_opens = 1000;
    memset(&o, 0, sizeof(o));
    o.config = &f->cfg;
    rc = ota_agent_open(&o, &f->a, &d);
    fail_db_opens = 0;
    assert_int_equal(vfs->xSetSystemCall(vfs, "open", NULL), SQLITE_OK);
    assert_int_equal(rc, OTA_E_DB);
    assert_null(f->a);
    assert_non_null(strstr(d.msg, "cannot open state database"));
    assert_non_null(strstr(d.msg, "readonly"));
    fx_open(f);
}

/* ---- a switch of `current` failing at each call ---------------------------------------- */

/* Activate 2.0 (or roll back to 1.0 from 2.0) with call n of one function failing, for every
 * n until a run makes fewer calls. A failed switch leaves the release that was active, also
 * after recovery, and the same switch then succeeds. */
static void
switch_faults(void **state, int rollback)
{
    struct fx *f = *state;
    int        total[W_COUNT] = {0};

    for (int w = 0; w < W_COUNT; w++) {
        for (int n = 1;; n++) {
            struct ota_agent_result res;
            struct ota_diag         d;
            const char             *from = rollback ? "2.0" : "1.0";
            const char             *to = rollback ? "1.0" : "2.0";
            ota_err                 rc;

            teardown(state);
            setup(state);
            f = *state;
            place(f, "1.0");
            assert_int_equal(ota_agent_activate(f->a, "1.0", 0, &res, &d), OTA_OK);
            place(f, "2.0");
            if (rollback)
                assert_int_equal(ota_agent_activate(f->a, "2.0", 0, &res, &d), OTA_OK);

            arm(w, n);
            memset(&d, 0, sizeof(d));
            rc = rollback ? ota_agent_rollback(f->a, NULL, 0, &res, &d)
                          : ota_agent_activate(f->a, "2.0", 0, &res, &d);
            disarm();
            if (!injected) {
                assert_int_equal(rc, OTA_OK); /* past the last call: nothing failed */
                current_is(f, to);
                break;
            }
            total[w]++;
            if (rc == OTA_OK) {
                /* Only a failure nothing depends on may be absorbed: the switch is complete. */
                current_is(f, to);
                active_is(f, to);
            } else {
                assert_int_equal(rc, OTA_E_IO);
                assert_non_null(strstr(d.msg, strerror(EIO)));
                current_is(f, from);
                active_is(f, from);
            }
            no_record_no_temp(f);
            assert_int_equal(ota_agent_recover(f->a, &d), OTA_OK);
            current_is(f, rc == OTA_OK ? to : from);
            active_is(f, rc == OTA_OK ? to : from);
            no_record_no_temp(f);
            if (rc != OTA_OK) {
                rc = rollback ? ota_agent_rollback(f->a, NULL, 0, &res, &d)
                              : ota_agent_activate(f->a, "2.0", 0, &res, &d);
                assert_int_equal(rc, OTA_OK);
                current_is(f, to);
            }
        }
    }
    /* The switch makes each of these calls at least once. */
    assert_true(total[W_SYMLINKAT] >= 1);
    assert_true(total[W_RENAMEAT] >= 1);
    assert_true(total[W_FSYNC] >= 1);
}

static void
test_activate_faults(void **state)
{
    switch_faults(state, 0);
}

static void
test_rollback_faults(void **state)
{
    switch_faults(state, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_db_errors_name_the_system_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_never_opens_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activate_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_faults, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
