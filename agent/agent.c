/* The agent handle and the commands that need neither the network nor a bundle reader: open,
 * lock, confirm, activate, rollback, gc, status, history. See ota/agent.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent_int.h"
#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/hash.h"

int64_t
agent_now(const struct ota_agent *a)
{
    return a->fixed_now ? a->fixed_now : ota_now();
}

ota_err
agent_path(const struct ota_agent *a, char *buf, const char *fmt, ...)
{
    char    rel[AGENT_PATH_MAX];
    va_list ap;
    int     n;

    va_start(ap, fmt);
    n = vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(rel))
        return OTA_E_TOO_BIG;
    n = snprintf(buf, AGENT_PATH_MAX, "%s/%s", a->dir, rel);
    if (n < 0 || n >= AGENT_PATH_MAX)
        return OTA_E_TOO_BIG;
    return OTA_OK;
}

ota_err
agent_random_hex(char *out, size_t nbytes, struct ota_diag *d)
{
    unsigned char b[64];

    if (nbytes > sizeof(b))
        return ota_diag_set(d, OTA_E_INVALID, "too many random bytes");
    if (getrandom(b, nbytes, 0) != (ssize_t)nbytes)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot get random bytes");
    ota_hex_encode(b, nbytes, out);
    return OTA_OK;
}

ota_err
agent_lock(struct ota_agent *a, unsigned wait_ms, struct ota_diag *d)
{
    char     path[AGENT_PATH_MAX];
    unsigned waited = 0;
    int      fd;

    if (a->lock_fd >= 0)
        return OTA_OK;
    if (agent_path(a, path, "lock") != OTA_OK)
        return ota_diag_set(d, OTA_E_TOO_BIG, "state_dir path too long");
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot open '%s'", path);
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e != EWOULDBLOCK && e != EINTR) {
            close(fd);
            return ota_diag_sys(d, OTA_E_IO, e, "cannot lock '%s'", path);
        }
        if (waited >= wait_ms) {
            close(fd);
            return ota_diag_set(d, OTA_E_LOCKED, "another ota-agent holds '%s'", path);
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        waited += 50;
    }
    a->lock_fd = fd;
    return OTA_OK;
}

void
agent_unlock(struct ota_agent *a)
{
    if (a->lock_fd >= 0) {
        flock(a->lock_fd, LOCK_UN);
        close(a->lock_fd);
    }
    a->lock_fd = -1;
}

void
agent_current_target(struct ota_agent *a, char out[OTA_VERSION_STR_MAX])
{
    char    link[AGENT_PATH_MAX];
    ssize_t n;

    out[0] = '\0';
    n = readlinkat(a->dir_fd, "current", link, sizeof(link) - 1);
    if (n <= 0)
        return;
    link[n] = '\0';
    if (strncmp(link, "bundles/", 8) != 0 || strchr(link + 8, '/') != NULL ||
        strlen(link + 8) >= OTA_VERSION_STR_MAX || link[8] == '\0')
        return;
    snprintf(out, OTA_VERSION_STR_MAX, "%s", link + 8);
}

ota_err
agent_pointers(struct ota_agent *a, char active[OTA_VERSION_STR_MAX],
               char prev[OTA_VERSION_STR_MAX], struct ota_diag *d)
{
    char   *v = NULL, *p = NULL;
    ota_err rc;

    rc = state_meta_get(&a->st, "active", &v, d);
    if (rc == OTA_OK)
        rc = state_meta_get(&a->st, "previous", &p, d);
    if (rc == OTA_OK) {
        snprintf(active, OTA_VERSION_STR_MAX, "%s", v ? v : "");
        if (prev != NULL)
            snprintf(prev, OTA_VERSION_STR_MAX, "%s", p ? p : "");
    }
    free(v);
    free(p);
    return rc;
}

static ota_err
make_layout(struct ota_agent *a, struct ota_diag *d)
{
    static const char *const sub[] = {"metadata", "downloads", "staging", "bundles"};
    char                     p[AGENT_PATH_MAX];
    ota_err                  rc;

    rc = ota_mkdir_p(a->dir, 0700, d);
    if (rc != OTA_OK)
        return rc;
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        if (agent_path(a, p, "%s", sub[i]) != OTA_OK)
            return ota_diag_set(d, OTA_E_TOO_BIG, "state_dir path too long");
        rc = ota_mkdir_p(p, 0700, d);
        if (rc != OTA_OK)
            return rc;
    }
    return OTA_OK;
}

static ota_err
device_id(struct ota_agent *a, struct ota_diag *d)
{
    char   *v = NULL;
    ota_err rc;

    rc = state_meta_get(&a->st, "device_id", &v, d);
    if (rc != OTA_OK)
        return rc;
    if (v != NULL && strlen(v) == 32) {
        memcpy(a->device_id, v, 33);
        free(v);
        return OTA_OK;
    }
    free(v);
    rc = agent_random_hex(a->device_id, 16, d);
    if (rc == OTA_OK)
        rc = state_meta_set(&a->st, "device_id", a->device_id, d);
    return rc;
}

ota_err
ota_agent_open(const struct ota_agent_opts *o, struct ota_agent **out, struct ota_diag *d)
{
    struct ota_agent *a = NULL;
    char              db[AGENT_PATH_MAX];
    ota_err           rc;

    if (o == NULL || o->config == NULL || o->config->state_dir == NULL)
        return ota_diag_set(d, OTA_E_INVALID, "no configuration");
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    a->lock_fd = -1;
    a->dir_fd = -1;
    a->cfg = o->config;
    a->gate = o->gate;
    a->progress = o->progress;
    a->progress_ctx = o->progress_ctx;
    a->fixed_now = o->now;
    a->lock_wait_ms = o->lock_wait_ms;
    if (snprintf(a->dir, sizeof(a->dir), "%s", o->config->state_dir) >= (int)sizeof(a->dir) ||
        agent_path(a, a->current, "current") != OTA_OK) {
        rc = ota_diag_set(d, OTA_E_TOO_BIG, "state_dir path too long");
        goto out;
    }
    rc = make_layout(a, d);
    if (rc != OTA_OK)
        goto out;
    a->dir_fd = open(a->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (a->dir_fd < 0) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot open '%s'", a->dir);
        goto out;
    }
    if (!o->read_only) {
        rc = agent_lock(a, o->lock_wait_ms, d);
        if (rc != OTA_OK)
            goto out;
    }
    if (agent_path(a, db, "state.db") != OTA_OK) {
        rc = ota_diag_set(d, OTA_E_TOO_BIG, "state_dir path too long");
        goto out;
    }
    rc = state_open(&a->st, db, d);
    if (rc != OTA_OK)
        goto out;
    rc = device_id(a, d);
    if (rc != OTA_OK)
        goto out;
    *out = a;
    a = NULL;
out:
    ota_agent_close(a);
    return rc;
}

void
ota_agent_close(struct ota_agent *a)
{
    if (a == NULL)
        return;
    state_close(&a->st);
    agent_unlock(a);
    if (a->dir_fd >= 0)
        close(a->dir_fd);
    free(a);
}

const char *
ota_agent_current_path(const struct ota_agent *a)
{
    return a->current;
}

const char *
ota_agent_device_id(const struct ota_agent *a)
{
    return a->device_id;
}

ota_err
ota_agent_recover(struct ota_agent *a, struct ota_diag *d)
{
    int repaired = 0;
    return layout_recover(a, &repaired, d);
}

static ota_err
startup_local_steps(struct ota_agent *a, struct ota_agent_startup *s, struct ota_diag *d)
{
    struct ota_agent_result ar;
    struct ota_diag         gd;
    char                    active[OTA_VERSION_STR_MAX];
    ota_err                 rc, x;

    memset(&gd, 0, sizeof(gd));
    rc = layout_recover(a, &s->recovered, d);
    if (rc != OTA_OK)
        return rc;
    rc = layout_trial_launch(a, &s->rolled_back, &x, &gd, d);
    if (rc != OTA_OK)
        return rc;
    if (x != OTA_OK) {
        s->gate_rc = x;
        snprintf(s->gate_msg, sizeof(s->gate_msg), "%s", gd.msg);
    }
    rc = agent_pointers(a, active, NULL, d);
    if (rc != OTA_OK)
        return rc;
    if (active[0] != '\0') {
        memset(&gd, 0, sizeof(gd));
        x = agent_change(a, NULL, CHANGE_ACTIVATE, 0, &ar, &gd);
        if (x == OTA_OK) {
            s->activated = 1;
        } else if (x != OTA_E_NOT_FOUND) {
            /* Gated or failed: the app runs its current release; status says why. */
            s->gate_rc = x;
            snprintf(s->gate_msg, sizeof(s->gate_msg), "%s", gd.msg);
        }
    }
    rc = layout_count_launch(a, d);
    if (rc == OTA_OK)
        rc = agent_pointers(a, s->active, NULL, d);
    return rc;
}

ota_err
agent_startup_local(struct ota_agent *a, struct ota_agent_startup *s, struct ota_diag *d)
{
    ota_err rc;

    /* The app waits for startup: a sync the gate runs here is bounded like the check. */
    a->sync_bound_ms = a->cfg->check_timeout_s * 1000;
    rc = startup_local_steps(a, s, d);
    a->sync_bound_ms = 0;
    return rc;
}

ota_err
check_bucket(const char *device_id, const char *app, const char *version, unsigned *out)
{
    char          buf[256];
    unsigned char h[OTA_SHA256_LEN];
    int           n;

    n = snprintf(buf, sizeof(buf), "%s:%s:%s", device_id, app, version);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return OTA_E_TOO_BIG;
    if (ota_sha256_buf(buf, (size_t)n, h) != OTA_OK)
        return OTA_E_CRYPTO;
    *out = (unsigned)((((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) |
                       (uint32_t)h[3]) %
                      100u);
    return OTA_OK;
}

ota_err
ota_agent_confirm(struct ota_agent *a, struct ota_diag *d)
{
    char       active[OTA_VERSION_STR_MAX];
    struct rel r;
    ota_err    rc;

    memset(&r, 0, sizeof(r));
    rc = agent_pointers(a, active, NULL, d);
    if (rc != OTA_OK)
        return rc;
    if (active[0] == '\0')
        return ota_diag_set(d, OTA_E_NOT_FOUND, "no release is active");
    rc = state_begin(&a->st, d);
    if (rc != OTA_OK)
        return rc;
    rc = state_rel_get(&a->st, active, &r, d);
    if (rc != OTA_OK)
        goto out;
    if (r.state != REL_CONFIRMED) {
        r.state = REL_CONFIRMED;
        r.reason[0] = '\0';
        rc = state_rel_put(&a->st, &r, d);
        if (rc == OTA_OK)
            rc = state_history_add(&a->st, agent_now(a), "confirmed", active, "", d);
    }
    if (rc == OTA_OK)
        rc = state_commit(&a->st, d);
out:
    if (rc != OTA_OK)
        state_rollback(&a->st);
    rel_clear(&r);
    return rc;
}

static int
vcmp(const char *x, const char *y)
{
    struct ota_version a, b;

    if (ota_version_parse(x, &a) != OTA_OK || ota_version_parse(y, &b) != OTA_OK)
        return strcmp(x, y); /* never happens for versions the database accepted */
    return ota_version_cmp(&a, &b);
}

/* The newest present staged release above the active one ("" if none). */
ota_err
agent_newest_staged(struct ota_agent *a, const char *active, char out[OTA_VERSION_STR_MAX],
                    struct ota_diag *d)
{
    struct rel *list = NULL;
    size_t      n = 0;
    ota_err     rc;

    out[0] = '\0';
    rc = state_rel_list(&a->st, &list, &n, d);
    if (rc != OTA_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (list[i].state == REL_STAGED && list[i].present &&
            (active[0] == '\0' || vcmp(list[i].version, active) > 0)) {
            snprintf(out, OTA_VERSION_STR_MAX, "%s", list[i].version);
            break;
        }
    }
    rel_list_free(list, n);
    return OTA_OK;
}

ota_err
agent_change(struct ota_agent *a, const char *version, enum change_kind kind, int force,
             struct ota_agent_result *res, struct ota_diag *d)
{
    char                    active[OTA_VERSION_STR_MAX], prev[OTA_VERSION_STR_MAX];
    char                    target[OTA_VERSION_STR_MAX], fallback[OTA_VERSION_STR_MAX];
    char                    reason[AGENT_REASON_MAX];
    struct rel              r;
    struct ota_release      rel;
    struct ota_agent_result tmp;
    enum rel_state          new_state;
    int                     old_state = -1;
    const char             *new_prev = NULL;
    ota_err                 rc;

    memset(&r, 0, sizeof(r));
    memset(&rel, 0, sizeof(rel));
    memset(&tmp, 0, sizeof(tmp));
    reason[0] = '\0';
    rc = agent_pointers(a, active, prev, d);
    if (rc != OTA_OK)
        goto out;

    if (kind == CHANGE_ACTIVATE && version == NULL) {
        rc = agent_newest_staged(a, active, target, d);
        if (rc != OTA_OK)
            goto out;
        if (target[0] == '\0') {
            rc = ota_diag_set(d, OTA_E_NOT_FOUND, "no staged release newer than %s",
                              active[0] ? active : "nothing");
            goto out;
        }
    } else if ((kind == CHANGE_ROLLBACK || kind == CHANGE_AUTO_ROLLBACK) && version == NULL) {
        if (prev[0] == '\0') {
            rc = ota_diag_set(d, OTA_E_NOT_FOUND, "no previous release to roll back to");
            goto out;
        }
        snprintf(target, sizeof(target), "%s", prev);
    } else {
        if (ota_version_parse(version, &rel.v) != OTA_OK) {
            rc = ota_diag_set(d, OTA_E_INVALID, "'%s' is not a version", version);
            goto out;
        }
        snprintf(target, sizeof(target), "%s", version);
    }

    rc = state_rel_get(&a->st, target, &r, d);
    if (rc != OTA_OK)
        goto out;
    if (!r.present) {
        rc = ota_diag_set(d, OTA_E_NOT_FOUND, "release '%s' is no longer on this device", target);
        goto out;
    }
    if (active[0] != '\0' && strcmp(active, target) == 0) {
        rc = ota_diag_set(d, OTA_E_STATE, "release '%s' is already active", target);
        goto out;
    }
    if (kind == CHANGE_ROLLBACK || kind == CHANGE_AUTO_ROLLBACK) {
        if (active[0] == '\0') {
            rc = ota_diag_set(d, OTA_E_STATE, "no release is active");
            goto out;
        }
        if (vcmp(target, active) > 0) {
            rc = ota_diag_set(d, OTA_E_INVALID,
                              "'%s' is newer than the active release '%s': use activate", target,
                              active);
            goto out;
        }
    } else if (active[0] != '\0' && vcmp(target, active) < 0) {
        rc = ota_diag_set(d, OTA_E_ROLLBACK,
                          "'%s' is older than the active release '%s': use rollback --to", target,
                          active);
        goto out;
    }

    rc = rel_release(&r, &rel, d);
    if (rc != OTA_OK)
        goto out;
    rc = gate_check(a, &rel, r.breaking, force, &tmp, d);
    if (rc != OTA_OK)
        goto out;

    switch (kind) {
    case CHANGE_ACTIVATE:
    case CHANGE_INSTALL:
        new_state = active[0] ? REL_TRIAL : REL_ACTIVE;
        new_prev = active[0] ? active : NULL;
        if (active[0] != '\0') {
            /* A release that ran without a trial (first install, rollback target) until this
             * update is the known-good one to come back to. */
            struct rel old;
            memset(&old, 0, sizeof(old));
            if (state_rel_get(&a->st, active, &old, NULL) == OTA_OK && old.state == REL_ACTIVE)
                old_state = REL_CONFIRMED;
            rel_clear(&old);
        }
        break;
    case CHANGE_ROLLBACK:
    case CHANGE_AUTO_ROLLBACK:
    default:
        new_state = r.state == REL_CONFIRMED ? REL_CONFIRMED : REL_ACTIVE;
        old_state = kind == CHANGE_ROLLBACK ? REL_ROLLED_BACK : REL_FAILED;
        rc = layout_fallback(a, target, fallback, d);
        if (rc != OTA_OK)
            goto out;
        new_prev = fallback[0] ? fallback : NULL;
        if (kind == CHANGE_AUTO_ROLLBACK)
            snprintf(reason, sizeof(reason), "not confirmed after %lld launches",
                     a->cfg->trial_launches);
        else
            snprintf(reason, sizeof(reason), "rolled back to %s", target);
        break;
    }
    rc = layout_switch(a, target, kind, new_state, old_state, new_prev, reason, d);
    if (rc != OTA_OK)
        goto out;
    if (res != NULL) {
        *res = tmp;
        res->changed = 1;
        snprintf(res->version, sizeof(res->version), "%s", target);
        snprintf(res->from, sizeof(res->from), "%s", active);
    }
out:
    ota_release_clear(&rel);
    rel_clear(&r);
    return rc;
}

ota_err
ota_agent_activate(struct ota_agent *a, const char *version, int force,
                   struct ota_agent_result *res, struct ota_diag *d)
{
    return agent_change(a, version, CHANGE_ACTIVATE, force, res, d);
}

ota_err
ota_agent_rollback(struct ota_agent *a, const char *to, int force, struct ota_agent_result *res,
                   struct ota_diag *d)
{
    return agent_change(a, to, CHANGE_ROLLBACK, force, res, d);
}

ota_err
ota_agent_gc(struct ota_agent *a, unsigned *removed, struct ota_diag *d)
{
    return layout_gc(a, removed, d);
}

static json_t *
rel_json(const struct rel *r)
{
    char st[21], at[21];

    ota_time_format(r->staged_at, st);
    ota_time_format(r->activated_at, at);
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:I, s:s, s:s?, s:s?}", "version", r->version,
                     "state", rel_state_name(r->state), "model", r->model, "source", r->source,
                     "present", r->present, "breaking", r->breaking, "launches",
                     (json_int_t)r->launches, "staged_at", st, "activated_at",
                     r->activated_at ? at : NULL, "reason", r->reason[0] ? r->reason : NULL);
}

/* Parse a JSON value kept in meta (NULL when unset or unreadable: status never fails on it). */
static json_t *
meta_json(struct ota_agent *a, const char *key)
{
    char   *v = NULL;
    json_t *j = NULL;

    if (state_meta_get(&a->st, key, &v, NULL) == OTA_OK && v != NULL &&
        ota_cjson_parse(v, strlen(v), OTA_JSON_MAX, &j, NULL) != OTA_OK)
        j = NULL;
    free(v);
    return j;
}

ota_err
ota_agent_status(struct ota_agent *a, json_t **out, struct ota_diag *d)
{
    char        active[OTA_VERSION_STR_MAX], prev[OTA_VERSION_STR_MAX];
    char        cur[OTA_VERSION_STR_MAX];
    struct rel *list = NULL;
    size_t      n = 0;
    json_t     *o = NULL, *rels = NULL, *act = json_null(), *tuf = NULL;
    json_t     *gate_j, *check_j, *actv_j;
    ota_err     rc;

    rc = agent_pointers(a, active, prev, d);
    if (rc == OTA_OK)
        rc = state_rel_list(&a->st, &list, &n, d);
    if (rc == OTA_OK)
        rc = state_tuf_json(&a->st, &tuf, d);
    if (rc != OTA_OK)
        goto out;
    agent_current_target(a, cur);
    rels = json_array();
    if (rels == NULL)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        json_t *e = rel_json(&list[i]);
        if (e == NULL || json_array_append_new(rels, e) != 0)
            goto nomem;
        if (strcmp(list[i].version, active) == 0) {
            act = json_pack("{s:s, s:s, s:I, s:I, s:b}", "version", active, "state",
                            rel_state_name(list[i].state), "launches", (json_int_t)list[i].launches,
                            "trial_launches", (json_int_t)a->cfg->trial_launches, "on_trial",
                            list[i].state == REL_TRIAL);
            if (act == NULL)
                goto nomem;
        }
    }
    gate_j = meta_json(a, "gate");
    check_j = meta_json(a, "last_check");
    actv_j = meta_json(a, "activating");
    /* "o" steals each reference, also when json_pack fails. */
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:o, s:s?, s:o, s:o, s:o, s:o, s:o}",
                  "device_id", a->device_id, "app", a->cfg->app, "channel", a->cfg->channel,
                  "runtime_version", a->cfg->runtime_version, "agent_version", OTA_AGENT_VERSION,
                  "current", a->current, "current_target", cur[0] ? cur : NULL, "active", act,
                  "previous", prev[0] ? prev : NULL, "releases", rels, "metadata", tuf, "gate",
                  gate_j ? gate_j : json_null(), "last_check", check_j ? check_j : json_null(),
                  "activating", actv_j ? actv_j : json_null());
    rels = tuf = act = NULL;
    if (o == NULL)
        goto nomem;
    *out = o;
    goto out;
nomem:
    rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
out:
    json_decref(rels);
    json_decref(tuf);
    json_decref(act);
    rel_list_free(list, n);
    return rc;
}

ota_err
ota_agent_history(struct ota_agent *a, size_t max, json_t **out, struct ota_diag *d)
{
    return state_history_json(&a->st, max, out, d);
}
