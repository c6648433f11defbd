/* `ota-agent outbox ...` and `ota-agent sync`. See cli_sync.h. Thin: parse words, call the
 * library, print, map the error to an exit status. */
#include "cli_sync.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ota/outbox.h"
#include "ota/sync.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* Options of the form --name VALUE, looked up by name after a first pass checks that every
 * word is a known option with a value. */
struct opt {
    const char *name;
    const char *value;
};

static int
parse_opts(int argc, char **argv, int first, struct opt *opts, const char *what)
{
    int i;

    for (i = first; i < argc; i++) {
        struct opt *o;
        for (o = opts; o->name != NULL; o++)
            if (strcmp(argv[i], o->name) == 0)
                break;
        if (o->name == NULL || i + 1 >= argc) {
            fprintf(stderr, "ota-agent: %s: %s '%s'\n", what,
                    o->name == NULL ? "unknown option" : "missing value for", argv[i]);
            return -1;
        }
        o->value = argv[++i];
    }
    return 0;
}

static int
fail(const char *what, ota_err rc, const struct ota_diag *d, int json)
{
    if (json) {
        json_t *o = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", ota_err_name(rc), "message",
                              d->msg);
        char   *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (s != NULL)
            puts(s);
        free(s);
        json_decref(o);
    }
    fprintf(stderr, "ota-agent: %s: %s (%s)\n", what, d->msg, ota_err_name(rc));
    return EXIT_FAILED;
}

static void
print_json(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

    if (s != NULL)
        puts(s);
    free(s);
    json_decref(o);
}

/* ---- outbox ------------------------------------------------------------------------------ */

static const char outbox_usage[] =
    "usage: ota-agent outbox add --model M --entity E --op insert|update|delete --payload JSON "
    "[--id ID]\n"
    "       ota-agent outbox list [--state pending|acked|quarantined] [--model M]\n"
    "       ota-agent outbox export FILE\n"
    "       ota-agent outbox import FILE\n";

struct list_ctx {
    int      json;
    uint64_t n;
};

static ota_err
list_row(void *ctx, const struct ota_outbox_row *r, struct ota_diag *d)
{
    struct list_ctx *x = ctx;

    (void)d;
    if (x->json) {
        json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "seq",
                              (json_int_t)r->seq, "id", r->change_id, "model", r->model, "entity",
                              r->entity, "op", r->op, "state", r->state, "attempts",
                              (json_int_t)r->attempts, "created_at", (json_int_t)r->created_at);
        char   *s;
        if (o == NULL)
            return ota_diag_set(d, OTA_E_FORMAT, "change '%.128s' is not valid UTF-8",
                                r->change_id);
        if (r->reason != NULL)
            json_object_set_new(o, "reason", json_string(r->reason));
        if (r->payload != NULL)
            json_object_set_new(o, "payload", json_stringn(r->payload, r->payload_len));
        if (r->acked_at != 0)
            json_object_set_new(o, "acked_at", json_integer(r->acked_at));
        s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (s == NULL)
            return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        printf("%s%s\n", x->n ? "," : "", s);
        free(s);
    } else {
        printf("%" PRId64 "\t%s\t%s\t%s\t%s\t%s\t%" PRId64 "\t%s\n", r->seq, r->state,
               r->model, r->entity, r->op, r->change_id, r->attempts,
               r->reason ? r->reason : "");
    }
    x->n++;
    return OTA_OK;
}

static int
outbox_add(struct ota_outbox *ob, int argc, char **argv, int json)
{
    struct opt opts[] = { { "--model", NULL },   { "--entity", NULL }, { "--op", NULL },
                          { "--payload", NULL }, { "--id", NULL },     { NULL, NULL } };
    char            id[OTA_OUTBOX_ID_MAX + 1];
    struct ota_diag d;
    ota_err         rc;

    if (parse_opts(argc, argv, 2, opts, "outbox add") != 0 || opts[0].value == NULL ||
        opts[1].value == NULL || opts[2].value == NULL || opts[3].value == NULL) {
        fputs(outbox_usage, stderr);
        return EXIT_USAGE;
    }
    rc = ota_outbox_add(ob, opts[4].value, opts[0].value, opts[1].value, opts[2].value,
                        opts[3].value, id, &d);
    if (rc != OTA_OK)
        return fail("outbox add", rc, &d, json);
    if (json)
        print_json(json_pack("{s:b, s:s}", "ok", 1, "id", id));
    else
        printf("%s\n", id);
    return EXIT_OK;
}

static int
outbox_list(struct ota_outbox *ob, int argc, char **argv, int json)
{
    struct opt      opts[] = { { "--state", NULL }, { "--model", NULL }, { NULL, NULL } };
    struct list_ctx x = { json, 0 };
    struct ota_diag d;
    ota_err         rc;
    const char     *st;

    if (parse_opts(argc, argv, 2, opts, "outbox list") != 0) {
        fputs(outbox_usage, stderr);
        return EXIT_USAGE;
    }
    st = opts[0].value;
    if (st != NULL && strcmp(st, "pending") != 0 && strcmp(st, "acked") != 0 &&
        strcmp(st, "quarantined") != 0) {
        fprintf(stderr, "ota-agent: outbox list: state '%s' is not pending, acked or "
                        "quarantined\n", st);
        return EXIT_USAGE;
    }
    if (json)
        puts("[");
    else
        puts("seq\tstate\tmodel\tentity\top\tid\tattempts\treason");
    rc = ota_outbox_foreach(ob, st, opts[1].value, list_row, &x, &d);
    if (json)
        puts("]");
    if (rc != OTA_OK) {
        fprintf(stderr, "ota-agent: outbox list: %s (%s)\n", d.msg, ota_err_name(rc));
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

static int
outbox_file(struct ota_outbox *ob, int argc, char **argv, int json, int do_export)
{
    struct ota_diag d;
    uint64_t        a = 0, s = 0;
    ota_err         rc;

    if (argc != 3) {
        fputs(outbox_usage, stderr);
        return EXIT_USAGE;
    }
    if (do_export)
        rc = ota_outbox_export(ob, argv[2], &a, &d);
    else
        rc = ota_outbox_import(ob, argv[2], &a, &s, &d);
    if (rc != OTA_OK)
        return fail(do_export ? "outbox export" : "outbox import", rc, &d, json);
    if (json && do_export)
        print_json(json_pack("{s:b, s:s, s:I}", "ok", 1, "file", argv[2], "exported",
                             (json_int_t)a));
    else if (json)
        print_json(json_pack("{s:b, s:s, s:I, s:I}", "ok", 1, "file", argv[2], "imported",
                             (json_int_t)a, "skipped", (json_int_t)s));
    else if (do_export)
        printf("exported %" PRIu64 " change%s (pending and quarantined) to '%s'\n", a,
               a == 1 ? "" : "s", argv[2]);
    else
        printf("imported %" PRIu64 " change%s from '%s' (%" PRIu64 " already present)\n", a,
               a == 1 ? "" : "s", argv[2], s);
    return EXIT_OK;
}

int
ota_agent_cli_outbox(int argc, char **argv, const struct ota_sync_config *cfg, int json)
{
    struct ota_outbox *ob = NULL;
    struct ota_diag    d;
    const char        *sub = argc > 1 ? argv[1] : NULL;
    ota_err            rc;
    int                status;

    if (sub == NULL || (strcmp(sub, "add") != 0 && strcmp(sub, "list") != 0 &&
                        strcmp(sub, "export") != 0 && strcmp(sub, "import") != 0)) {
        fputs(outbox_usage, stderr);
        return EXIT_USAGE;
    }
    if (cfg == NULL || cfg->outbox_db == NULL) {
        fputs("ota-agent: outbox: no outbox database configured\n", stderr);
        return EXIT_USAGE;
    }
    rc = ota_outbox_open(cfg->outbox_db, &ob, &d);
    if (rc != OTA_OK)
        return fail("outbox", rc, &d, json);
    if (strcmp(sub, "add") == 0)
        status = outbox_add(ob, argc, argv, json);
    else if (strcmp(sub, "list") == 0)
        status = outbox_list(ob, argc, argv, json);
    else
        status = outbox_file(ob, argc, argv, json, strcmp(sub, "export") == 0);
    ota_outbox_close(ob);
    return status;
}

/* ---- sync -------------------------------------------------------------------------------- */

static void
sync_print_json(const struct ota_sync_report *r, ota_err rc)
{
    json_t *o = json_object(), *models = json_array(), *rej = json_array();
    size_t  i;

    for (i = 0; i < r->n_models; i++)
        json_array_append_new(
            models, json_pack("{s:s, s:I, s:I, s:I, s:I}", "model", r->models[i].model, "acked",
                              (json_int_t)r->models[i].acked, "quarantined",
                              (json_int_t)r->models[i].quarantined, "pending",
                              (json_int_t)r->models[i].pending, "held",
                              (json_int_t)r->models[i].held));
    for (i = 0; i < r->n_rejections; i++)
        json_array_append_new(rej, json_pack("{s:s, s:s, s:s}", "id", r->rejections[i].id,
                                             "model", r->rejections[i].model, "reason",
                                             r->rejections[i].reason));
    json_object_set_new(o, "ok", json_boolean(rc == OTA_OK));
    json_object_set_new(o, "drained", json_boolean(r->drained));
    json_object_set_new(o, "acked", json_integer((json_int_t)r->acked));
    json_object_set_new(o, "quarantined", json_integer((json_int_t)r->quarantined));
    json_object_set_new(o, "pending", json_integer((json_int_t)r->pending));
    json_object_set_new(o, "held", json_integer((json_int_t)r->held));
    json_object_set_new(o, "models", models);
    json_object_set_new(o, "rejections", rej);
    json_object_set_new(o, "requests", json_integer((json_int_t)r->requests));
    if (r->http_status != 0)
        json_object_set_new(o, "http_status", json_integer(r->http_status));
    if (r->used_hook)
        json_object_set_new(o, "hook_status", json_integer(r->hook_status));
    if (rc != OTA_OK) {
        json_object_set_new(o, "error", json_string(ota_err_name(rc)));
        json_object_set_new(o, "message", json_string(r->last_error));
    }
    print_json(o);
}

static void
sync_print_text(const struct ota_sync_report *r, ota_err rc)
{
    size_t i;

    for (i = 0; i < r->n_models; i++) {
        const struct ota_sync_model_report *m = &r->models[i];
        printf("model '%s': %" PRIu64 " synced, %" PRIu64 " quarantined now, %" PRIu64
               " pending, %" PRIu64 " quarantined in all\n",
               m->model, m->acked, m->quarantined, m->pending, m->held);
    }
    if (r->models_cut)
        printf("(more models than shown)\n");
    for (i = 0; i < r->n_rejections; i++)
        printf("  quarantined '%s' (model '%s'): %s\n", r->rejections[i].id,
               r->rejections[i].model, r->rejections[i].reason);
    if (r->quarantined > r->n_rejections)
        printf("  ... and %" PRIu64 " more\n", r->quarantined - r->n_rejections);
    if (rc == OTA_OK)
        printf("sync: drained (%" PRIu64 " change%s synced)\n", r->acked,
               r->acked == 1 ? "" : "s");
    else
        printf("sync: not drained: %s\n", ota_err_str(rc));
}

int
ota_agent_cli_sync(int argc, char **argv, const struct ota_sync_config *cfg, int json)
{
    struct opt             opts[] = { { "--model", NULL }, { NULL, NULL } };
    struct ota_sync_report r;
    struct ota_diag        d;
    ota_err                rc;

    if (parse_opts(argc, argv, 1, opts, "sync") != 0) {
        fputs("usage: ota-agent sync [--model M]\n", stderr);
        return EXIT_USAGE;
    }
    if (cfg == NULL) {
        fputs("ota-agent: sync: no configuration\n", stderr);
        return EXIT_USAGE;
    }
    rc = ota_sync_run(cfg, opts[0].value, &r, &d);
    if (json)
        sync_print_json(&r, rc);
    else
        sync_print_text(&r, rc);
    if (rc != OTA_OK) {
        fprintf(stderr, "ota-agent: sync: %s (%s)\n", d.msg, ota_err_name(rc));
        return EXIT_FAILED;
    }
    return EXIT_OK;
}
