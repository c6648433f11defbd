/* The data gate's view of the app's outbox and of the sync (ota/outbox.h, ota/sync.h), kept
 * apart from gate.c so the gate's rules can be tested with any outbox. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ota/agent.h"
#include "ota/outbox.h"
#include "ota/sync.h"

struct gate_sync {
    struct ota_sync_config sc;
};

static ota_err
gs_pending(void *ctx, struct ota_gate_pending *out, size_t cap, size_t *n, struct ota_diag *d)
{
    struct gate_sync        *g = ctx;
    struct ota_outbox       *ob = NULL;
    struct ota_outbox_count *c = NULL;
    size_t                   nc = 0, k = 0;
    ota_err                  rc;

    /* The app has not created its database yet: nothing can be pending. Opening it would
     * create it, which is the app's business. */
    if (access(g->sc.outbox_db, F_OK) != 0 && errno == ENOENT) {
        *n = 0;
        return OTA_OK;
    }
    rc = ota_outbox_open(g->sc.outbox_db, &ob, d);
    if (rc == OTA_OK)
        rc = ota_outbox_pending(ob, &c, &nc, d);
    if (rc != OTA_OK)
        goto out;
    for (size_t i = 0; i < nc; i++) {
        uint64_t unsynced = c[i].pending + c[i].quarantined;
        if (unsynced == 0)
            continue;
        if (k == cap) {
            rc = ota_diag_set(d, OTA_E_TOO_BIG, "more than %zu models hold pending changes", cap);
            goto out;
        }
        snprintf(out[k].model, sizeof(out[k].model), "%s", c[i].model);
        out[k].count = unsynced;
        k++;
    }
    *n = k;
out:
    free(c);
    ota_outbox_close(ob);
    return rc;
}

static ota_err
gs_sync(void *ctx, struct ota_diag *d)
{
    struct gate_sync       *g = ctx;
    struct ota_sync_report *r;
    ota_err                 rc;

    if (g->sc.url_template == NULL && g->sc.command == NULL)
        return ota_diag_set(d, OTA_E_INVALID, "neither sync_url nor sync_command is configured");
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    rc = ota_sync_run(&g->sc, NULL, r, d);
    free(r);
    return rc;
}

static ota_err
gs_export(void *ctx, const char *path, uint64_t *rows, struct ota_diag *d)
{
    struct gate_sync  *g = ctx;
    struct ota_outbox *ob = NULL;
    ota_err            rc;

    rc = ota_outbox_open(g->sc.outbox_db, &ob, d);
    if (rc == OTA_OK)
        rc = ota_outbox_export(ob, path, rows, d);
    ota_outbox_close(ob);
    return rc;
}

void
ota_agent_sync_config(const struct ota_agent_config *cfg, struct ota_sync_config *out)
{
    memset(out, 0, sizeof(*out));
    out->outbox_db = cfg->outbox_db;
    out->url_template = cfg->sync_url;
    out->token = cfg->sync_token;
    out->token_file = cfg->sync_token_file;
    out->command = cfg->sync_command;
    out->ca_file = cfg->ca_file;
}

ota_err
ota_agent_gate_sync_new(const struct ota_agent_config *cfg, struct ota_gate_ops *ops,
                        struct ota_diag *d)
{
    struct gate_sync *g;

    memset(ops, 0, sizeof(*ops));
    if (cfg->outbox_db == NULL)
        return OTA_OK;
    g = calloc(1, sizeof(*g));
    if (g == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    ota_agent_sync_config(cfg, &g->sc);
    ops->pending = gs_pending;
    ops->sync = gs_sync;
    ops->export_rows = gs_export;
    ops->ctx = g;
    return OTA_OK;
}

void
ota_agent_gate_sync_free(struct ota_gate_ops *ops)
{
    if (ops == NULL)
        return;
    free(ops->ctx);
    memset(ops, 0, sizeof(*ops));
}
