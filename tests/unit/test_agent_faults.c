/* Failures of the system under the agent's state: a failing disk named in database errors, and
 * a database SQLite could only open read-only. The integration test
 * tests/integration/fault_inject.sh fails the calls of the whole binary with strace. */
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
    ota_agent_close(f->a);
    assert_int_equal(ota_rm_rf(f->dir, NULL), OTA_OK);
    free(f);
    return 0;
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_db_errors_name_the_system_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_never_opens_read_only, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
