/* The data gate: every change of the active release (activate, rollback, and their automatic
 * forms in startup) passes gate_check() first.
 *
 * Offline changes sit in the app's outbox tagged with the model of the bundle that wrote
 * them. A release may become active only if it can carry every pending change: the change's
 * model is the release's own model or one it lists in reads_models, and the release was not
 * published as breaking. Otherwise the agent syncs first; while the sync cannot drain those
 * changes the gate stays closed (OTA_E_GATED) and the device stays on its current release,
 * with the staged release kept for later. --force exports the pending rows to a file before
 * letting the change through; no row is ever deleted. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent_int.h"
#include "ota/cjson.h"
#include "ota/fsutil.h"

ota_err
gate_evaluate(struct ota_agent *a, const struct ota_release *target, int breaking,
              struct gate_verdict *v, struct ota_diag *d)
{
    struct ota_gate_pending p[OTA_GATE_MODELS_MAX];
    size_t                  n = 0;
    ota_err                 rc;

    memset(v, 0, sizeof(*v));
    v->open = 1;
    if (a->cfg->outbox_db == NULL)
        return OTA_OK;
    if (a->gate == NULL || a->gate->pending == NULL)
        return ota_diag_set(d, OTA_E_GATED,
                            "outbox '%s' is configured but cannot be read by this agent",
                            a->cfg->outbox_db);
    rc = a->gate->pending(a->gate->ctx, p, OTA_GATE_MODELS_MAX, &n, d);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "cannot count pending changes in '%s'", a->cfg->outbox_db);
        return rc;
    }
    if (n > OTA_GATE_MODELS_MAX)
        n = OTA_GATE_MODELS_MAX;
    for (size_t i = 0; i < n; i++) {
        if (p[i].count == 0)
            continue;
        if (!breaking && ota_release_reads_model(target, p[i].model))
            continue;
        if (v->open) {
            snprintf(v->model, sizeof(v->model), "%.128s", p[i].model);
            v->count = p[i].count;
        }
        v->open = 0;
        v->total += p[i].count;
    }
    return OTA_OK;
}

/* Remember why the gate is closed (or forget it), for status and explain. */
static void
record(struct ota_agent *a, const struct ota_release *target, const struct gate_verdict *v,
       const char *sync_error)
{
    json_t *j = NULL;
    char   *txt = NULL;
    size_t  len;
    char    ts[21];

    if (v == NULL) {
        best_effort(state_meta_set(&a->st, "gate", NULL, NULL));
        return;
    }
    ota_time_format(agent_now(a), ts);
    j = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s}", "target", target->version, "model", v->model,
                  "count", (json_int_t)v->count, "total", (json_int_t)v->total, "sync_error",
                  sync_error ? sync_error : "", "time", ts);
    if (j != NULL && ota_cjson_encode(j, 8192, &txt, &len, NULL) == OTA_OK)
        best_effort(state_meta_set(&a->st, "gate", txt, NULL));
    free(txt);
    json_decref(j);
}

static ota_err
export_pending(struct ota_agent *a, const struct ota_release *target, struct ota_agent_result *res,
               struct ota_diag *d)
{
    char     dir[AGENT_PATH_MAX], path[AGENT_PATH_MAX], ts[21];
    uint64_t rows = 0;
    ota_err  rc;

    if (a->gate == NULL || a->gate->export_rows == NULL)
        return ota_diag_set(d, OTA_E_GATED, "cannot export the outbox '%s'", a->cfg->outbox_db);
    if (agent_path(a, dir, "exports") != OTA_OK)
        return ota_diag_set(d, OTA_E_TOO_BIG, "path too long");
    rc = ota_mkdir_p(dir, 0700, d);
    if (rc != OTA_OK)
        return rc;
    ota_time_format(agent_now(a), ts);
    for (char *c = ts; *c; c++)
        if (*c == ':')
            *c = '-';
    if (snprintf(path, sizeof(path), "%s/outbox-%s-before-%s.json", dir, ts, target->version) >=
        (int)sizeof(path))
        return ota_diag_set(d, OTA_E_TOO_BIG, "path too long");
    rc = a->gate->export_rows(a->gate->ctx, path, &rows, d);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "exporting pending changes to '%s'", path);
        return rc;
    }
    snprintf(res->export_path, sizeof(res->export_path), "%s", path);
    res->exported = rows;
    return OTA_OK;
}

static ota_err
sync_step(struct ota_agent *a, void *out, struct ota_diag *d)
{
    (void)out;
    return a->gate->sync(a->gate->ctx, d);
}

/* The sync, in a child process stopped at a->sync_bound_ms when set (startup must not hang on
 * a slow sync server; the sync code loses nothing when killed). */
static ota_err
gate_sync(struct ota_agent *a, struct ota_diag *d)
{
    if (a->sync_bound_ms <= 0)
        return a->gate->sync(a->gate->ctx, d);
    return agent_bounded(a, a->sync_bound_ms, NULL, sync_step, NULL, 0, "sync", d);
}

ota_err
gate_check(struct ota_agent *a, const struct ota_release *target, int breaking, int force,
           struct ota_agent_result *res, struct ota_diag *d)
{
    struct gate_verdict v;
    struct ota_diag     sd;
    char                detail[512];
    ota_err             rc, src = OTA_OK;

    memset(&sd, 0, sizeof(sd));
    rc = gate_evaluate(a, target, breaking, &v, d);
    if (rc != OTA_OK) {
        /* The outbox cannot be read: nothing can be risked, so the gate stays closed. */
        memset(&v, 0, sizeof(v));
        snprintf(v.model, sizeof(v.model), "?");
        record(a, target, &v, d ? d->msg : "cannot read the outbox");
        best_effort(state_history_add(&a->st, agent_now(a), "gated", target->version,
                                      d ? d->msg : "", NULL));
        return OTA_E_GATED;
    }
    if (v.open) {
        record(a, target, NULL, NULL);
        return OTA_OK;
    }
    /* Closed: sync what is pending under the old model(s), then look again. */
    if (a->gate->sync != NULL) {
        src = gate_sync(a, &sd);
        rc = gate_evaluate(a, target, breaking, &v, d);
        if (rc != OTA_OK)
            return OTA_E_GATED;
    } else {
        src = ota_diag_set(&sd, OTA_E_STATE, "no sync is configured");
    }
    if (v.open) {
        record(a, target, NULL, NULL);
        best_effort(state_history_add(&a->st, agent_now(a), "synced", target->version,
                                      "pending changes synced before the switch", NULL));
        return OTA_OK;
    }
    snprintf(detail, sizeof(detail), "waiting for sync: %llu change%s under model %s%s%s",
             (unsigned long long)v.count, v.count == 1 ? "" : "s", v.model,
             src != OTA_OK ? " (sync: " : "", src != OTA_OK ? sd.msg : "");
    if (src != OTA_OK)
        strncat(detail, ")", sizeof(detail) - strlen(detail) - 1);
    if (force) {
        rc = export_pending(a, target, res, d);
        if (rc != OTA_OK)
            return rc;
        record(a, target, NULL, NULL);
        snprintf(detail, sizeof(detail), "forced with %llu pending change%s exported to %.400s",
                 (unsigned long long)v.total, v.total == 1 ? "" : "s", res->export_path);
        best_effort(
            state_history_add(&a->st, agent_now(a), "gate_forced", target->version, detail, NULL));
        return OTA_OK;
    }
    record(a, target, &v, src != OTA_OK ? sd.msg : "");
    best_effort(state_history_add(&a->st, agent_now(a), "gated", target->version, detail, NULL));
    return ota_diag_set(d, OTA_E_GATED, "%s", detail);
}
