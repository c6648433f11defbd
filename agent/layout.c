/* The state directory on disk: the crash-safe switch of `current`, recovery after a crash,
 * staging, garbage collection and trial bookkeeping.
 *
 * A switch is three durable steps: (1) the database records "activating" {from, to}; (2) the
 * `current` symlink is replaced by rename(2) and the directory fsynced; (3) the database
 * records the result and drops "activating". A crash between (1) and (3) leaves the record,
 * and recovery looks at `current`: pointing at `to`, it finishes (3); otherwise it undoes (1).
 * Either way the device ends on one complete release. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_int.h"
#include "ota/cjson.h"
#include "ota/fsutil.h"

static int
vcmp(const char *x, const char *y)
{
    struct ota_version a, b;

    if (ota_version_parse(x, &a) != OTA_OK || ota_version_parse(y, &b) != OTA_OK)
        return strcmp(x, y);
    return ota_version_cmp(&a, &b);
}

static const char *const kind_names[] = {
    [CHANGE_ACTIVATE] = "activate",
    [CHANGE_ROLLBACK] = "rollback",
    [CHANGE_AUTO_ROLLBACK] = "auto-rollback",
    [CHANGE_INSTALL] = "install",
};

static int
simulated_crash(struct ota_agent *a, int step, struct ota_diag *d)
{
    if (a->crash_after_step == step) {
        ota_diag_set(d, OTA_E_IO, "simulated crash after step %d", step);
        return 1;
    }
    return 0;
}

ota_err
layout_swap_link(struct ota_agent *a, const char *version, struct ota_diag *d)
{
    char    target[AGENT_PATH_MAX], tmp[64], rnd[17];
    ota_err rc;

    rc = agent_random_hex(rnd, 8, d);
    if (rc != OTA_OK)
        return rc;
    snprintf(tmp, sizeof(tmp), "current.%s" OTA_TMP_SUFFIX, rnd);
    /* Relative, so the state directory can move (and a link never leaves it). */
    if (snprintf(target, sizeof(target), "bundles/%s", version) >= (int)sizeof(target))
        return ota_diag_set(d, OTA_E_TOO_BIG, "version too long");
    if (symlinkat(target, a->dir_fd, tmp) != 0)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot create link '%s/%s'", a->dir, tmp);
    if (simulated_crash(a, 2, d))
        return OTA_E_IO;
    if (renameat(a->dir_fd, tmp, a->dir_fd, "current") != 0) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot rename '%s' over '%s'", tmp, a->current);
        unlinkat(a->dir_fd, tmp, 0);
        return rc;
    }
    if (simulated_crash(a, 3, d))
        return OTA_E_IO;
    if (fsync(a->dir_fd) != 0)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot fsync '%s'", a->dir);
    return OTA_OK;
}

/* Step (3): record the finished switch described by rec (the "activating" record). */
static ota_err
finish_switch(struct ota_agent *a, json_t *rec, struct ota_diag *d)
{
    const char *to = json_string_value(json_object_get(rec, "to"));
    const char *from = json_string_value(json_object_get(rec, "from"));
    const char *prev = json_string_value(json_object_get(rec, "prev"));
    const char *kind = json_string_value(json_object_get(rec, "kind"));
    const char *reason = json_string_value(json_object_get(rec, "reason"));
    json_int_t  new_state = json_integer_value(json_object_get(rec, "new_state"));
    json_int_t  old_state = json_integer_value(json_object_get(rec, "old_state"));
    struct rel  r;
    ota_err     rc;

    memset(&r, 0, sizeof(r));
    if (to == NULL || from == NULL || prev == NULL || kind == NULL || reason == NULL ||
        new_state < REL_STAGED || new_state > REL_FAILED || old_state < -1 ||
        old_state > REL_FAILED)
        return ota_diag_set(d, OTA_E_DB, "state database: malformed activation record");
    rc = state_begin(&a->st, d);
    if (rc != OTA_OK)
        return rc;
    rc = state_rel_get(&a->st, to, &r, d);
    if (rc != OTA_OK)
        goto out;
    r.state = (enum rel_state)new_state;
    r.activated_at = agent_now(a);
    r.launches = 0;
    r.reason[0] = '\0';
    rc = state_rel_put(&a->st, &r, d);
    if (rc != OTA_OK)
        goto out;
    if (from[0] != '\0' && old_state >= 0) {
        rel_clear(&r);
        rc = state_rel_get(&a->st, from, &r, d);
        if (rc == OTA_E_NOT_FOUND) {
            rc = OTA_OK;
        } else if (rc == OTA_OK) {
            r.state = (enum rel_state)old_state;
            snprintf(r.reason, sizeof(r.reason), "%s", reason);
            rc = state_rel_put(&a->st, &r, d);
        }
        if (rc != OTA_OK)
            goto out;
    }
    rc = state_meta_set(&a->st, "active", to, d);
    if (rc == OTA_OK)
        rc = state_meta_set(&a->st, "previous", prev[0] ? prev : NULL, d);
    if (rc == OTA_OK)
        rc = state_meta_set(&a->st, "activating", NULL, d);
    if (rc == OTA_OK) {
        const char *ev = strcmp(kind, "auto-rollback") == 0 ? "rolled_back"
                         : strcmp(kind, "rollback") == 0    ? "rolled_back"
                         : strcmp(kind, "install") == 0     ? "installed"
                                                            : "activated";
        char        detail[AGENT_REASON_MAX + 64];
        snprintf(detail, sizeof(detail), "from %s%s%s", from[0] ? from : "nothing",
                 reason[0] ? ": " : "", reason);
        rc = state_history_add(&a->st, agent_now(a), ev, to, detail, d);
    }
    if (rc == OTA_OK && old_state == REL_FAILED)
        rc = state_history_add(&a->st, agent_now(a), "failed", from, reason, d);
    if (rc == OTA_OK)
        rc = state_commit(&a->st, d);
out:
    if (rc != OTA_OK)
        state_rollback(&a->st);
    rel_clear(&r);
    return rc;
}

static ota_err recover_activation(struct ota_agent *a, const char *txt, int *repaired,
                                  struct ota_diag *d);

/* A switch that failed (an error, not a crash) is undone, so that a command that reports the
 * failure leaves the release it found active: `current` goes back to `from` (or away, when
 * nothing was active), then recovery drops the record. Recovery alone would finish a switch
 * whose rename had happened: right after a crash, wrong after an error the caller reports. If
 * the undo fails too, the record stays and the next recovery settles it. */
static void
undo_switch(struct ota_agent *a, const char *version, const char *from, const char *txt)
{
    char cur[OTA_VERSION_STR_MAX];
    int  repaired = 0;

    agent_current_target(a, cur);
    if (strcmp(cur, version) == 0) {
        if (from[0] != '\0') {
            if (layout_swap_link(a, from, NULL) != OTA_OK)
                return;
        } else if (unlinkat(a->dir_fd, "current", 0) != 0 || fsync(a->dir_fd) != 0) {
            return;
        }
    }
    best_effort(recover_activation(a, txt, &repaired, NULL));
}

ota_err
layout_switch(struct ota_agent *a, const char *version, enum change_kind kind,
              enum rel_state new_state, int old_state, const char *prev, const char *reason,
              struct ota_diag *d)
{
    char    active[OTA_VERSION_STR_MAX];
    char   *txt = NULL;
    size_t  len = 0;
    json_t *rec = NULL;
    ota_err rc;

    rc = agent_pointers(a, active, NULL, d);
    if (rc != OTA_OK)
        return rc;
    rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i}", "to", version, "from", active, "prev",
                    prev ? prev : "", "kind", kind_names[kind], "reason", reason ? reason : "",
                    "new_state", (int)new_state, "old_state", old_state);
    if (rec == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    rc = ota_cjson_encode(rec, 8192, &txt, &len, d);
    if (rc != OTA_OK)
        goto out;

    /* (1) durable intent */
    rc = state_begin(&a->st, d);
    if (rc != OTA_OK)
        goto out;
    rc = state_meta_set(&a->st, "activating", txt, d);
    if (rc == OTA_OK)
        rc = state_history_add(&a->st, agent_now(a), "activating", version, kind_names[kind], d);
    if (rc == OTA_OK)
        rc = state_commit(&a->st, d);
    if (rc != OTA_OK) {
        state_rollback(&a->st);
        goto out;
    }
    if (simulated_crash(a, 1, d)) {
        rc = OTA_E_IO;
        goto out;
    }
    /* (2) the swap */
    rc = layout_swap_link(a, version, d);
    if (rc != OTA_OK) {
        if (a->crash_after_step == 0)
            undo_switch(a, version, active, txt);
        goto out;
    }
    if (simulated_crash(a, 4, d)) {
        rc = OTA_E_IO;
        goto out;
    }
    /* (3) the result */
    rc = finish_switch(a, rec, d);
    if (rc != OTA_OK)
        undo_switch(a, version, active, txt);
out:
    free(txt);
    json_decref(rec);
    return rc;
}

static int
is_dir_at(int dfd, const char *name)
{
    struct stat st;
    return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static int
bundle_present(struct ota_agent *a, const char *version)
{
    char p[AGENT_PATH_MAX];
    if (snprintf(p, sizeof(p), "bundles/%s", version) >= (int)sizeof(p))
        return 0;
    return is_dir_at(a->dir_fd, p);
}

/* Remove every entry of dir (relative to the state dir) that match() accepts. */
static ota_err
sweep(struct ota_agent *a, const char *sub, int (*match)(const char *name), unsigned *n,
      struct ota_diag *d)
{
    char           path[AGENT_PATH_MAX], p[AGENT_PATH_MAX];
    DIR           *dir;
    struct dirent *e;
    ota_err        rc = OTA_OK;

    if (agent_path(a, path, "%s", sub) != OTA_OK)
        return ota_diag_set(d, OTA_E_TOO_BIG, "path too long");
    dir = opendir(path);
    if (dir == NULL)
        return errno == ENOENT ? OTA_OK
                               : ota_diag_sys(d, OTA_E_IO, errno, "cannot open '%s'", path);
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || !match(e->d_name))
            continue;
        if (snprintf(p, sizeof(p), "%s/%s", path, e->d_name) >= (int)sizeof(p))
            continue;
        rc = ota_rm_rf(p, d);
        if (rc != OTA_OK)
            break;
        (*n)++;
    }
    closedir(dir);
    return rc;
}

static int
match_all(const char *name)
{
    (void)name;
    return 1;
}

static int
match_tmp(const char *name)
{
    size_t n = strlen(name), s = strlen(OTA_TMP_SUFFIX);
    return n > s && strcmp(name + n - s, OTA_TMP_SUFFIX) == 0;
}

/* A half-done switch: finish it if `current` already points at the target, else undo it. */
static ota_err
recover_activation(struct ota_agent *a, const char *txt, int *repaired, struct ota_diag *d)
{
    char        cur[OTA_VERSION_STR_MAX];
    json_t     *rec = NULL;
    const char *to, *from;
    ota_err     rc;

    rc = ota_cjson_parse(txt, strlen(txt), 8192, &rec, d);
    if (rc != OTA_OK)
        return ota_diag_set(d, OTA_E_DB, "state database: malformed activation record");
    to = json_string_value(json_object_get(rec, "to"));
    from = json_string_value(json_object_get(rec, "from"));
    if (to == NULL || from == NULL) {
        rc = ota_diag_set(d, OTA_E_DB, "state database: malformed activation record");
        goto out;
    }
    agent_current_target(a, cur);
    *repaired = 1;
    if (strcmp(cur, to) == 0 && bundle_present(a, to)) {
        /* The rename happened; make it durable before recording it. */
        if (fsync(a->dir_fd) != 0) {
            rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot fsync '%s'", a->dir);
            goto out;
        }
        rc = finish_switch(a, rec, d);
        goto out;
    }
    if (from[0] != '\0' && strcmp(cur, from) != 0 && bundle_present(a, from)) {
        rc = layout_swap_link(a, from, d);
        if (rc != OTA_OK)
            goto out;
    }
    rc = state_begin(&a->st, d);
    if (rc != OTA_OK)
        goto out;
    rc = state_meta_set(&a->st, "activating", NULL, d);
    if (rc == OTA_OK)
        rc = state_history_add(&a->st, agent_now(a), "activation_undone", to,
                               "interrupted before the switch", d);
    if (rc == OTA_OK)
        rc = state_commit(&a->st, d);
    else
        state_rollback(&a->st);
out:
    json_decref(rec);
    return rc;
}

/* Make the database and the bundles/ directory agree: rows whose tree is gone lose it,
 * trees without a row (a crash between rename and insert, or during gc) are removed. */
static ota_err
reconcile_bundles(struct ota_agent *a, const char *keep, int *repaired, struct ota_diag *d)
{
    char           path[AGENT_PATH_MAX], p[AGENT_PATH_MAX];
    struct rel    *list = NULL;
    size_t         n = 0;
    DIR           *dir = NULL;
    struct dirent *e;
    ota_err        rc;

    rc = state_rel_list(&a->st, &list, &n, d);
    if (rc != OTA_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        int here = bundle_present(a, list[i].version);
        if (here == list[i].present)
            continue;
        *repaired = 1;
        if (!here && list[i].state == REL_STAGED) {
            rc = state_rel_delete(&a->st, list[i].version, d);
        } else if (!here) {
            list[i].present = 0;
            rc = state_rel_put(&a->st, &list[i], d);
        } else if (strcmp(list[i].version, keep) != 0) {
            /* On disk but recorded as removed: gc was interrupted. */
            if (snprintf(p, sizeof(p), "%s/bundles/%s", a->dir, list[i].version) < (int)sizeof(p))
                rc = ota_rm_rf(p, d);
        }
        if (rc != OTA_OK)
            goto out;
    }
    if (agent_path(a, path, "bundles") != OTA_OK) {
        rc = ota_diag_set(d, OTA_E_TOO_BIG, "path too long");
        goto out;
    }
    dir = opendir(path);
    if (dir == NULL) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot open '%s'", path);
        goto out;
    }
    while ((e = readdir(dir)) != NULL) {
        int known = 0;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            strcmp(e->d_name, keep) == 0)
            continue;
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(list[i].version, e->d_name) == 0;
        if (known)
            continue;
        if (snprintf(p, sizeof(p), "%s/%s", path, e->d_name) >= (int)sizeof(p))
            continue;
        *repaired = 1;
        rc = ota_rm_rf(p, d);
        if (rc != OTA_OK)
            goto out;
    }
out:
    if (dir != NULL)
        closedir(dir);
    rel_list_free(list, n);
    return rc;
}

ota_err
layout_clean_staging(struct ota_agent *a, struct ota_diag *d)
{
    unsigned n = 0;

    return sweep(a, "staging", match_all, &n, d);
}

ota_err
layout_recover(struct ota_agent *a, int *repaired, struct ota_diag *d)
{
    char     active[OTA_VERSION_STR_MAX], cur[OTA_VERSION_STR_MAX];
    char    *act = NULL;
    unsigned n = 0;
    ota_err  rc;

    *repaired = 0;
    rc = sweep(a, "staging", match_all, &n, d);
    if (rc == OTA_OK)
        rc = sweep(a, ".", match_tmp, &n, d);
    if (rc == OTA_OK)
        rc = sweep(a, "metadata", match_tmp, &n, d);
    if (rc == OTA_OK)
        rc = sweep(a, "downloads", match_tmp, &n, d);
    if (rc != OTA_OK)
        return rc;
    if (n > 0)
        *repaired = 1;

    rc = state_meta_get(&a->st, "activating", &act, d);
    if (rc != OTA_OK)
        return rc;
    if (act != NULL) {
        rc = recover_activation(a, act, repaired, d);
        free(act);
        if (rc != OTA_OK)
            return rc;
    }

    rc = agent_pointers(a, active, NULL, d);
    if (rc != OTA_OK)
        return rc;
    agent_current_target(a, cur);
    rc = reconcile_bundles(a, active[0] ? active : cur, repaired, d);
    if (rc != OTA_OK)
        return rc;
    if (active[0] != '\0' && bundle_present(a, active)) {
        if (strcmp(cur, active) != 0) {
            /* The database is the record of what was activated; `current` follows it. */
            *repaired = 1;
            rc = layout_swap_link(a, active, d);
            if (rc == OTA_OK)
                rc = state_history_add(&a->st, agent_now(a), "reconciled", active,
                                       "'current' pointed elsewhere", d);
        }
    } else if (active[0] != '\0') {
        /* The active tree vanished (not by us): fall back to the newest usable release. */
        char fb[OTA_VERSION_STR_MAX];
        *repaired = 1;
        rc = layout_fallback(a, "", fb, d);
        if (rc == OTA_OK && fb[0] != '\0') {
            rc = layout_swap_link(a, fb, d);
            if (rc == OTA_OK)
                rc = state_meta_set(&a->st, "active", fb, d);
            if (rc == OTA_OK)
                rc = state_meta_set(&a->st, "previous", NULL, d);
            if (rc == OTA_OK)
                rc = state_history_add(&a->st, agent_now(a), "reconciled", fb,
                                       "the active release's files were missing", d);
        } else if (rc == OTA_OK) {
            if (unlinkat(a->dir_fd, "current", 0) != 0 && errno != ENOENT)
                rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot remove '%s'", a->current);
            if (rc == OTA_OK)
                rc = state_meta_set(&a->st, "active", NULL, d);
            if (rc == OTA_OK)
                rc = state_history_add(&a->st, agent_now(a), "reconciled", active,
                                       "the active release's files were missing", d);
        }
    }
    return rc;
}

ota_err
layout_fallback(struct ota_agent *a, const char *below, char out[OTA_VERSION_STR_MAX],
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
        const struct rel *r = &list[i];
        if (!r->present || (below[0] != '\0' && vcmp(r->version, below) >= 0))
            continue;
        if (r->state == REL_CONFIRMED || r->state == REL_ACTIVE || r->state == REL_TRIAL) {
            snprintf(out, OTA_VERSION_STR_MAX, "%s", r->version);
            break;
        }
    }
    rel_list_free(list, n);
    return OTA_OK;
}

ota_err
layout_new_staging(struct ota_agent *a, const char *version, char *out, struct ota_diag *d)
{
    char    rnd[17];
    ota_err rc;

    rc = agent_random_hex(rnd, 8, d);
    if (rc != OTA_OK)
        return rc;
    if (agent_path(a, out, "staging/%s.%s", version, rnd) != OTA_OK)
        return ota_diag_set(d, OTA_E_TOO_BIG, "path too long");
    if (mkdir(out, 0700) != 0)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot create '%s'", out);
    return OTA_OK;
}

ota_err
layout_commit_staging(struct ota_agent *a, const char *staging, const char *version,
                      struct ota_diag *d)
{
    char    dst[AGENT_PATH_MAX], bdir[AGENT_PATH_MAX];
    ota_err rc;

    if (agent_path(a, dst, "bundles/%s", version) != OTA_OK ||
        agent_path(a, bdir, "bundles") != OTA_OK)
        return ota_diag_set(d, OTA_E_TOO_BIG, "path too long");
    /* An unrecorded tree of the same version (an earlier crash) is replaced, never one in use. */
    if (is_dir_at(a->dir_fd, dst + strlen(a->dir) + 1)) {
        char cur[OTA_VERSION_STR_MAX];
        agent_current_target(a, cur);
        if (strcmp(cur, version) == 0)
            return ota_diag_set(d, OTA_E_EXISTS, "release '%s' is in use", version);
        rc = ota_rm_rf(dst, d);
        if (rc != OTA_OK)
            return rc;
    }
    if (rename(staging, dst) != 0)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot rename '%s' to '%s'", staging, dst);
    return ota_fsync_dir(bdir, d);
}

/* Partial downloads other than the one a check is working on ("download" in meta). */
static ota_err
layout_gc_downloads(struct ota_agent *a, unsigned *cnt, struct ota_diag *d)
{
    char           path[AGENT_PATH_MAX], p[AGENT_PATH_MAX];
    char          *keep = NULL;
    DIR           *dir;
    struct dirent *e;
    ota_err        rc;

    rc = state_meta_get(&a->st, "download", &keep, d);
    if (rc != OTA_OK)
        return rc;
    if (agent_path(a, path, "downloads") != OTA_OK) {
        free(keep);
        return ota_diag_set(d, OTA_E_TOO_BIG, "path too long");
    }
    dir = opendir(path);
    if (dir == NULL) {
        free(keep);
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot open '%s'", path);
    }
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (keep != NULL && strncmp(e->d_name, keep, strlen(keep)) == 0 &&
            strcmp(e->d_name + strlen(keep), ".part") == 0)
            continue;
        if (snprintf(p, sizeof(p), "%s/%s", path, e->d_name) >= (int)sizeof(p))
            continue;
        rc = ota_rm_rf(p, d);
        if (rc != OTA_OK)
            break;
        (*cnt)++;
    }
    closedir(dir);
    free(keep);
    return rc;
}

ota_err
layout_gc(struct ota_agent *a, unsigned *removed, struct ota_diag *d)
{
    char        active[OTA_VERSION_STR_MAX], prev[OTA_VERSION_STR_MAX];
    char        p[AGENT_PATH_MAX];
    struct rel *list = NULL;
    size_t      n = 0;
    long long   kept = 0;
    unsigned    cnt = 0;
    ota_err     rc;

    rc = agent_pointers(a, active, prev, d);
    if (rc == OTA_OK)
        rc = state_rel_list(&a->st, &list, &n, d);
    if (rc != OTA_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (list[i].present &&
            (strcmp(list[i].version, active) == 0 || strcmp(list[i].version, prev) == 0))
            kept++;
    }
    for (size_t i = 0; i < n; i++) {
        struct rel *r = &list[i];
        int         drop;

        if (!r->present || strcmp(r->version, active) == 0 || strcmp(r->version, prev) == 0)
            continue;
        if (r->state == REL_STAGED)
            drop = active[0] != '\0' && vcmp(r->version, active) <= 0; /* obsolete */
        else
            drop = kept >= a->cfg->keep_releases;
        if (!drop) {
            if (r->state != REL_STAGED)
                kept++;
            continue;
        }
        /* Record first, then delete: a crash in between leaves an unrecorded tree, which
         * recovery removes. */
        rc = state_begin(&a->st, d);
        if (rc != OTA_OK)
            goto out;
        if (r->state == REL_STAGED) {
            rc = state_rel_delete(&a->st, r->version, d);
        } else {
            r->present = 0;
            rc = state_rel_put(&a->st, r, d);
        }
        if (rc == OTA_OK)
            rc = state_history_add(&a->st, agent_now(a), "removed", r->version,
                                   rel_state_name(r->state), d);
        if (rc == OTA_OK)
            rc = state_commit(&a->st, d);
        if (rc != OTA_OK) {
            state_rollback(&a->st);
            goto out;
        }
        if (agent_path(a, p, "bundles/%s", r->version) != OTA_OK) {
            rc = ota_diag_set(d, OTA_E_TOO_BIG, "path too long");
            goto out;
        }
        rc = ota_rm_rf(p, d);
        if (rc != OTA_OK)
            goto out;
        cnt++;
    }
    rc = layout_gc_downloads(a, &cnt, d);
    if (rc == OTA_OK && removed != NULL)
        *removed = cnt;
out:
    rel_list_free(list, n);
    return rc;
}

ota_err
layout_trial_launch(struct ota_agent *a, int *rolled_back, ota_err *gate_rc,
                    struct ota_diag *gate_diag, struct ota_diag *d)
{
    char       active[OTA_VERSION_STR_MAX], prev[OTA_VERSION_STR_MAX];
    struct rel r;
    ota_err    rc, x;

    *rolled_back = 0;
    *gate_rc = OTA_OK;
    memset(&r, 0, sizeof(r));
    rc = agent_pointers(a, active, prev, d);
    if (rc != OTA_OK || active[0] == '\0')
        return rc;
    rc = state_rel_get(&a->st, active, &r, d);
    if (rc != OTA_OK)
        return rc;
    if (r.state != REL_TRIAL || r.launches < a->cfg->trial_launches)
        goto out;
    if (prev[0] != '\0') {
        struct ota_agent_result res;
        x = agent_change(a, prev, CHANGE_AUTO_ROLLBACK, 0, &res, gate_diag);
        if (x == OTA_OK) {
            *rolled_back = 1;
            goto out;
        }
        *gate_rc = x; /* held back (gate): keep running the release, say why */
    }
    rel_clear(&r);
    rc = state_rel_get(&a->st, active, &r, d);
    if (rc != OTA_OK)
        goto out;
    snprintf(r.reason, sizeof(r.reason), "not confirmed after %lld launches; %s",
             (long long)r.launches,
             prev[0] == '\0' ? "no release to roll back to" : "rollback held back");
    rc = state_rel_put(&a->st, &r, d);
out:
    rel_clear(&r);
    return rc;
}

ota_err
layout_count_launch(struct ota_agent *a, struct ota_diag *d)
{
    char       active[OTA_VERSION_STR_MAX];
    struct rel r;
    ota_err    rc;

    memset(&r, 0, sizeof(r));
    rc = agent_pointers(a, active, NULL, d);
    if (rc != OTA_OK || active[0] == '\0')
        return rc;
    rc = state_rel_get(&a->st, active, &r, d);
    if (rc == OTA_OK && r.state == REL_TRIAL) {
        r.launches++;
        rc = state_rel_put(&a->st, &r, d);
    }
    rel_clear(&r);
    return rc;
}
