/* The commands that reach the repository or read bundles: startup, check, install, explain
 * and run. A check inside startup (and each check of run) runs in a child process, so it can
 * be stopped at its bound whatever it is doing (DNS, a stalled server): killing the child is
 * a crash that the layout is built to survive. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent_int.h"
#include "ota/cjson.h"
#include "ota/fsutil.h"

void
agent_record_check(struct ota_agent *a, ota_err rc, const struct ota_agent_check *res,
                   const struct ota_diag *d)
{
    json_t *j;
    char   *txt = NULL;
    size_t  len;
    char    ts[21];

    ota_time_format(agent_now(a), ts);
    j = json_pack("{s:s, s:s, s:s, s:s, s:b, s:I}", "time", ts, "result",
                  rc == OTA_OK ? "ok" : ota_err_name(rc), "message",
                  rc == OTA_OK || d == NULL ? "" : d->msg, "offered",
                  res && res->found ? res->version : "", "staged", res && res->staged, "bytes",
                  (json_int_t)(res ? res->bytes : 0));
    if (j != NULL && ota_cjson_encode(j, 8192, &txt, &len, NULL) == OTA_OK)
        best_effort(state_meta_set(&a->st, "last_check", txt, NULL));
    free(txt);
    json_decref(j);
}

static ota_err
check_step(struct ota_agent *a, void *out, struct ota_diag *d)
{
    return check_run(a, out, d);
}

/* check_run in a child process, stopped after timeout_ms (0: no bound) or when *stop is set. */
static ota_err
bounded_check(struct ota_agent *a, int64_t timeout_ms, volatile sig_atomic_t *stop,
              struct ota_agent_check *res, struct ota_diag *d)
{
    ota_err rc;

    memset(res, 0, sizeof(*res));
    rc = agent_bounded(a, timeout_ms, stop, check_step, res, sizeof(*res), "check", d);
    if (rc == OTA_E_TIMEOUT) {
        /* The check was killed mid-stream: its staging tree is garbage now (the part file
         * stays, so the next check resumes). We hold the lock, so nobody else stages. */
        struct ota_diag d2;
        if (layout_clean_staging(a, &d2) != OTA_OK)
            fprintf(stderr, "ota-agent: warning: %s\n", d2.msg);
    }
    return rc;
}

ota_err
ota_agent_check(struct ota_agent *a, struct ota_agent_check *res, struct ota_diag *d)
{
    struct ota_agent_check r;
    ota_err                rc;

    memset(&r, 0, sizeof(r));
    rc = check_run(a, &r, d);
    agent_record_check(a, rc, &r, d);
    if (res != NULL)
        *res = r;
    return rc;
}

ota_err
ota_agent_install(struct ota_agent *a, const char *path, int force, struct ota_agent_result *res,
                  struct ota_diag *d)
{
    char    version[OTA_VERSION_STR_MAX];
    ota_err rc;

    rc = layout_recover(a, &(int){0}, d);
    if (rc == OTA_OK)
        rc = check_install_file(a, path, "sideload", version, d);
    if (rc == OTA_OK)
        rc = agent_change(a, version, CHANGE_INSTALL, force, res, d);
    return rc;
}

ota_err
ota_agent_explain(struct ota_agent *a, json_t **out, struct ota_diag *d)
{
    return check_explain(a, out, d);
}

/* First start: nothing active. Install the factory bundle, or the newest release. */
static ota_err
first_install(struct ota_agent *a, struct ota_agent_startup *s, struct ota_diag *d)
{
    char                    version[OTA_VERSION_STR_MAX];
    struct ota_agent_result res;
    struct ota_agent_check  chk;
    struct ota_diag         cd;
    ota_err                 rc;

    version[0] = '\0';
    rc = agent_newest_staged(a, "", version, d);
    if (rc != OTA_OK)
        return rc;
    if (version[0] == '\0' && a->cfg->factory_bundle != NULL) {
        rc = check_install_file(a, a->cfg->factory_bundle, "factory", version, d);
        if (rc != OTA_OK) {
            ota_diag_prefix(d, "factory bundle");
            return rc;
        }
    }
    if (version[0] == '\0') {
        /* Nothing to run yet, so no bound but the transfers' own timeouts. */
        memset(&cd, 0, sizeof(cd));
        rc = bounded_check(a, 0, NULL, &chk, &cd);
        agent_record_check(a, rc, &chk, &cd);
        s->check_rc = rc;
        snprintf(s->check_msg, sizeof(s->check_msg), "%s", cd.msg);
        rc = agent_newest_staged(a, "", version, d);
        if (rc != OTA_OK)
            return rc;
    }
    if (version[0] == '\0')
        return ota_diag_set(d, OTA_E_NOT_FOUND, "no release installed: nothing to run%s%s",
                            s->check_rc != OTA_OK ? ": " : "",
                            s->check_rc != OTA_OK ? s->check_msg : "");
    rc = agent_change(a, version, CHANGE_INSTALL, 0, &res, d);
    if (rc == OTA_E_GATED) {
        s->gate_rc = rc;
        snprintf(s->gate_msg, sizeof(s->gate_msg), "%s", d ? d->msg : "");
    }
    if (rc != OTA_OK)
        return rc;
    s->installed = 1;
    return OTA_OK;
}

ota_err
ota_agent_startup(struct ota_agent *a, struct ota_agent_startup *res, struct ota_diag *d)
{
    struct ota_agent_startup s;
    struct ota_agent_check   chk;
    struct ota_diag          cd;
    char                     active[OTA_VERSION_STR_MAX];
    ota_err                  rc, x;

    memset(&s, 0, sizeof(s));
    memset(&cd, 0, sizeof(cd));
    rc = agent_startup_local(a, &s, d);
    if (rc != OTA_OK)
        goto out;
    if (s.active[0] == '\0') {
        rc = first_install(a, &s, d);
        if (rc != OTA_OK)
            goto out;
    } else {
        x = bounded_check(a, a->cfg->check_timeout_s * 1000, NULL, &chk, &cd);
        agent_record_check(a, x, &chk, &cd);
        s.check_rc = x;
        snprintf(s.check_msg, sizeof(s.check_msg), "%s", cd.msg);
        if (x == OTA_OK && chk.staged)
            snprintf(s.staged, sizeof(s.staged), "%s", chk.version);
    }
    rc = agent_pointers(a, active, NULL, d);
    if (rc != OTA_OK)
        goto out;
    snprintf(s.active, sizeof(s.active), "%s", active);
    if (active[0] == '\0') {
        rc = ota_diag_set(d, OTA_E_NOT_FOUND, "no release installed: nothing to run");
    } else {
        /* Devices that only ever run `startup` must not fill up with old releases. */
        unsigned removed = 0;
        best_effort(layout_gc(a, &removed, NULL));
    }
out:
    if (res != NULL)
        *res = s;
    return rc;
}

static void
sleep_until(int64_t ms, volatile sig_atomic_t *stop)
{
    int64_t end = agent_mono_ms() + ms;
    while (!*stop && agent_mono_ms() < end) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int64_t
jitter(int64_t ms)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = (uint32_t)agent_mono_ms();
    /* +-10% */
    return ms - ms / 10 + (int64_t)(((uint64_t)r * (uint64_t)(ms / 5 + 1)) >> 32);
}

ota_err
ota_agent_run(struct ota_agent *a, volatile sig_atomic_t *stop,
              void (*on_check)(void *ctx, ota_err rc, const struct ota_agent_check *res,
                               const struct ota_diag *d),
              void *ctx, struct ota_diag *d)
{
    unsigned failures = 0;

    while (!*stop) {
        struct ota_agent_check res;
        struct ota_diag        cd;
        int64_t                delay;
        ota_err                rc;

        memset(&res, 0, sizeof(res));
        memset(&cd, 0, sizeof(cd));
        /* The lock only around a check, so the app's startup waits at most for one. */
        rc = agent_lock(a, 1000, &cd);
        if (rc == OTA_OK) {
            int repaired = 0;
            rc = layout_recover(a, &repaired, &cd);
            if (rc == OTA_OK)
                rc = bounded_check(a, 0, stop, &res, &cd);
            if (!*stop)
                agent_record_check(a, rc, &res, &cd);
            if (rc == OTA_OK) {
                unsigned removed = 0;
                best_effort(layout_gc(a, &removed, NULL));
            }
            agent_unlock(a);
        }
        if (*stop)
            break;
        if (on_check != NULL)
            on_check(ctx, rc, &res, &cd);
        if (rc == OTA_OK) {
            failures = 0;
            delay = a->cfg->poll_interval_s * 1000;
        } else if (rc == OTA_E_LOCKED) {
            delay = 10 * 1000; /* the app's startup or a command: try again soon */
        } else {
            failures++;
            delay = 60 * 1000;
            for (unsigned i = 1; i < failures && delay < 3600 * 1000; i++)
                delay *= 2;
            if (delay > 3600 * 1000)
                delay = 3600 * 1000;
        }
        sleep_until(jitter(delay), stop);
    }
    (void)d;
    return OTA_OK;
}
