/* ota-agent: the device's command line, a thin shell over the agent library (ota/agent.h).
 * Exit status: 0 ok, 1 failed, 2 usage. Progress goes to stderr: a bar on a terminal, JSON
 * events otherwise. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ota/agent.h"
#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/sync.h"

#include "cli_sync.h"
#include "cli_tuf.h"

#define EXIT_USAGE 2

enum {
    O_JSON = 1 << 0,
    O_FORCE = 1 << 1,
    O_TO = 1 << 2,
};

struct args {
    int         json, force;
    const char *to;
    const char *pos[4];
    int         npos;
};

struct ctx {
    const char             *prog;
    const char             *cmd;
    struct ota_agent_config cfg;
    struct ota_gate_ops     gate;
    struct ota_agent       *agent;
    struct args             a;
    int                     argc; /* the command's own arguments (for delegated commands) */
    char                  **argv;
};

struct agent_cmd {
    const char *name;
    int (*fn)(struct ctx *c);
    const char *args;
    const char *help;
    unsigned    opts; /* O_* accepted */
    int         min_pos, max_pos;
    int         raw; /* arguments passed through: 1 = without --config/--json, 2 = all */
};

static int cmd_startup(struct ctx *c);
static int cmd_check(struct ctx *c);
static int cmd_activate(struct ctx *c);
static int cmd_confirm(struct ctx *c);
static int cmd_rollback(struct ctx *c);
static int cmd_status(struct ctx *c);
static int cmd_history(struct ctx *c);
static int cmd_explain(struct ctx *c);
static int cmd_install(struct ctx *c);
static int cmd_gc(struct ctx *c);
static int cmd_run(struct ctx *c);
static int cmd_outbox(struct ctx *c);
static int cmd_sync(struct ctx *c);
static int cmd_tuf(struct ctx *c);

static const struct agent_cmd commands[] = {
    {"startup", cmd_startup, "",
     "recover, apply a staged release if allowed, check; print what to run", 0, 0, 0, 0},
    {"check", cmd_check, "[--json]", "look for a newer release and stage it", O_JSON, 0, 0, 0},
    {"activate", cmd_activate, "[VERSION] [--force]",
     "switch to a staged release (obeys the data gate)", O_FORCE, 0, 1, 0},
    {"confirm", cmd_confirm, "", "mark the running release healthy", 0, 0, 0, 0},
    {"rollback", cmd_rollback, "[--to VERSION] [--force]",
     "go back to an earlier release (obeys the data gate)", O_FORCE | O_TO, 0, 0, 0},
    {"status", cmd_status, "[--json]", "what is active, staged, gated and why", O_JSON, 0, 0, 0},
    {"history", cmd_history, "[--json]", "what happened, oldest first", O_JSON, 0, 0, 0},
    {"explain", cmd_explain, "[--json]", "why the newest release is or is not running", O_JSON, 0,
     0, 0},
    {"install", cmd_install, "FILE [--force]", "install a bundle file offline (sideload)", O_FORCE,
     1, 1, 0},
    {"gc", cmd_gc, "", "remove old releases and stale downloads", 0, 0, 0, 0},
    {"run", cmd_run, "", "stay running and check every poll_interval_s", 0, 0, 0, 0},
    {"outbox", cmd_outbox, "SUBCOMMAND ...", "add, list, export or import outbox changes", O_JSON,
     0, 0, 1},
    {"sync", cmd_sync, "[--model M] [--json]", "sync the outbox's pending changes now", O_JSON, 0,
     0, 1},
    {"tuf", cmd_tuf, "ARGS...", "TUF client on the conformance suite's command line", 0, 0, 0, 2},
};
#define NCMDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *f, const char *prog)
{
    int width = 0;

    for (size_t i = 0; i < NCMDS; i++) {
        int w = (int)(strlen(commands[i].name) + 1 + strlen(commands[i].args));
        width = w > width ? w : width;
    }
    fprintf(f, "usage: %s [--config PATH] COMMAND [ARGS]\n\ncommands:\n", prog);
    for (size_t i = 0; i < NCMDS; i++) {
        char left[128];
        snprintf(left, sizeof(left), "%s %s", commands[i].name, commands[i].args);
        fprintf(f, "  %-*s  %s\n", width, left, commands[i].help);
    }
    fprintf(f,
            "\nThe configuration is --config PATH, else $OTA_AGENT_CONFIG, else %s.\n"
            "Exit status: 0 ok, 1 failed, 2 usage.\n",
            OTA_AGENT_CONFIG_DEFAULT);
}

static void
cmd_usage(FILE *f, const char *prog, const struct agent_cmd *k)
{
    fprintf(f, "usage: %s [--config PATH] %s %s\n  %s\n", prog, k->name, k->args, k->help);
}

static int
fail(struct ctx *c, ota_err rc, const struct ota_diag *d)
{
    fprintf(stderr, "%s: %s: %s (%s)\n", c->prog, c->cmd, d->msg[0] ? d->msg : ota_err_str(rc),
            ota_err_name(rc));
    return 1;
}

/* ---- progress ------------------------------------------------------------------------ */

struct progress {
    int             tty;
    struct timespec last;
    int             active;
};

static void
on_progress(void *ctx, const char *phase, const char *version, uint64_t done, uint64_t total)
{
    struct progress *p = ctx;
    struct timespec  now;
    long long        ms;
    int              end = total > 0 && done >= total;

    clock_gettime(CLOCK_MONOTONIC, &now);
    ms = (now.tv_sec - p->last.tv_sec) * 1000LL + (now.tv_nsec - p->last.tv_nsec) / 1000000;
    if (!end && p->active && ms < (p->tty ? 100 : 1000))
        return;
    p->last = now;
    p->active = 1;
    if (p->tty) {
        int  pct = total ? (int)(done * 100 / total) : 0;
        char bar[31];
        int  fill = pct * 30 / 100;
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, ' ', (size_t)(30 - fill));
        bar[30] = '\0';
        fprintf(stderr, "\r%-8s %-12s [%s] %3d%% %.1f/%.1f MB", phase, version, bar, pct,
                (double)done / 1e6, (double)total / 1e6);
        if (end)
            fputc('\n', stderr);
    } else {
        fprintf(stderr,
                "{\"event\":\"progress\",\"phase\":\"%s\",\"version\":\"%s\",\"done\":%llu,"
                "\"total\":%llu}\n",
                phase, version, (unsigned long long)done, (unsigned long long)total);
    }
    fflush(stderr);
}

static struct progress progress_state;

/* ---- plumbing ------------------------------------------------------------------------ */

static int
open_agent(struct ctx *c, int read_only, unsigned lock_wait_ms, struct ota_diag *d)
{
    struct ota_agent_opts o;
    ota_err               rc;

    rc = ota_agent_gate_sync_new(&c->cfg, &c->gate, d);
    if (rc != OTA_OK)
        return rc;
    memset(&o, 0, sizeof(o));
    o.config = &c->cfg;
    o.gate = c->cfg.outbox_db ? &c->gate : NULL;
    o.read_only = read_only;
    o.lock_wait_ms = lock_wait_ms;
    o.progress = on_progress;
    o.progress_ctx = &progress_state;
    progress_state.tty = isatty(2);
    return ota_agent_open(&o, &c->agent, d);
}

/* A command that changes state: the lock (waiting up to 5 s), then crash recovery first. */
static int
open_writer(struct ctx *c, struct ota_diag *d)
{
    int rc = open_agent(c, 0, 5000, d);

    if (rc == OTA_OK)
        rc = ota_agent_recover(c->agent, d);
    return rc;
}

static int
print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (s == NULL)
        return 1;
    puts(s);
    free(s);
    return 0;
}

static const char *
jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void
print_result(const struct ota_agent_result *r, const char *verb)
{
    if (r->export_path[0] != '\0')
        printf("exported %llu pending change%s to %s\n", (unsigned long long)r->exported,
               r->exported == 1 ? "" : "s", r->export_path);
    printf("%s %s (was %s)\n", verb, r->version, r->from[0] ? r->from : "nothing");
}

/* ---- commands ------------------------------------------------------------------------ */

static int
current_is_usable(const char *current)
{
    struct stat st;
    return stat(current, &st) == 0 && S_ISDIR(st.st_mode);
}

static int
cmd_startup(struct ctx *c)
{
    struct ota_agent_startup s;
    struct ota_diag          d;
    char                     current[4096];
    ota_err                  rc;

    memset(&d, 0, sizeof(d));
    snprintf(current, sizeof(current), "%s/current", c->cfg.state_dir);
    rc = open_agent(c, 0, (unsigned)c->cfg.check_timeout_s * 1000u, &d);
    if (rc != OTA_OK) {
        /* Another agent is busy (or the state cannot be opened): the app still runs what
         * `current` points at, which is always a complete release. */
        fprintf(stderr, "%s: startup: %s\n", c->prog, d.msg);
        if (current_is_usable(current)) {
            puts(current);
            return 0;
        }
        fprintf(stderr, "%s: startup: no release installed: nothing to run\n", c->prog);
        return 1;
    }
    rc = ota_agent_startup(c->agent, &s, &d);
    if (s.recovered)
        fprintf(stderr, "%s: startup: recovered from an interrupted operation\n", c->prog);
    if (s.rolled_back)
        fprintf(stderr,
                "%s: startup: release was not confirmed after %lld launches: rolled back"
                " to %s\n",
                c->prog, c->cfg.trial_launches, s.active);
    if (s.installed)
        fprintf(stderr, "%s: startup: installed %s\n", c->prog, s.active);
    if (s.activated)
        fprintf(stderr, "%s: startup: activated %s (on trial: run 'confirm' when healthy)\n",
                c->prog, s.active);
    if (s.gate_rc != OTA_OK)
        fprintf(stderr, "%s: startup: %s\n", c->prog, s.gate_msg);
    if (s.check_rc != OTA_OK)
        fprintf(stderr, "%s: startup: check failed: %s\n", c->prog, s.check_msg);
    else if (s.staged[0] != '\0')
        fprintf(stderr, "%s: startup: %s is staged for the next start\n", c->prog, s.staged);
    if (rc != OTA_OK) {
        if (rc != OTA_E_NOT_FOUND && current_is_usable(current)) {
            fprintf(stderr, "%s: startup: %s\n", c->prog, d.msg);
            puts(current);
            return 0;
        }
        if (rc == OTA_E_NOT_FOUND)
            fprintf(stderr, "%s: startup: %s\n", c->prog, d.msg);
        else
            fail(c, rc, &d);
        return 1;
    }
    puts(ota_agent_current_path(c->agent));
    return 0;
}

static int
cmd_check(struct ctx *c)
{
    struct ota_agent_check r;
    struct ota_diag        d;
    ota_err                rc;

    memset(&d, 0, sizeof(d));
    rc = open_agent(c, 0, 5000, &d);
    if (rc != OTA_OK)
        return fail(c, rc, &d);
    rc = ota_agent_recover(c->agent, &d);
    if (rc != OTA_OK)
        return fail(c, rc, &d);
    rc = ota_agent_check(c->agent, &r, &d);
    if (c->a.json) {
        json_t *j = json_pack(
            "{s:s, s:s?, s:b, s:s?, s:b, s:I}", "result", rc == OTA_OK ? "ok" : ota_err_name(rc),
            "error", rc == OTA_OK ? NULL : d.msg, "found", r.found, "version",
            r.found ? r.version : NULL, "staged", r.staged, "bytes", (json_int_t)r.bytes);
        if (j == NULL || print_json(j) != 0) {
            json_decref(j);
            return 1;
        }
        json_decref(j);
        return rc == OTA_OK ? 0 : 1;
    }
    if (rc != OTA_OK)
        return fail(c, rc, &d);
    if (!r.found)
        printf("up to date\n");
    else
        printf("%s is staged: it becomes active at the next startup (or run 'activate')\n",
               r.version);
    return 0;
}

static int
cmd_activate(struct ctx *c)
{
    struct ota_agent_result r;
    struct ota_diag         d;
    ota_err                 rc;

    memset(&d, 0, sizeof(d));
    memset(&r, 0, sizeof(r));
    rc = open_writer(c, &d);
    if (rc == OTA_OK)
        rc = ota_agent_activate(c->agent, c->a.npos ? c->a.pos[0] : NULL, c->a.force, &r, &d);
    if (rc != OTA_OK)
        return fail(c, rc, &d);
    print_result(&r, "activated");
    return 0;
}

static int
cmd_confirm(struct ctx *c)
{
    struct ota_diag d;
    ota_err         rc;

    memset(&d, 0, sizeof(d));
    rc = open_writer(c, &d);
    if (rc == OTA_OK)
        rc = ota_agent_confirm(c->agent, &d);
    if (rc != OTA_OK)
        return fail(c, rc, &d);
    printf("confirmed\n");
    return 0;
}

static int
cmd_rollback(struct ctx *c)
{
    struct ota_agent_result r;
    struct ota_diag         d;
    ota_err                 rc;

    memset(&d, 0, sizeof(d));
    memset(&r, 0, sizeof(r));
    rc = open_writer(c, &d);
    if (rc == OTA_OK)
        rc = ota_agent_rollback(c->agent, c->a.to, c->a.force, &r, &d);
    if (rc != OTA_OK)
        return fail(c, rc, &d);
    print_result(&r, "rolled back to");
    return 0;
}

static int
cmd_status(struct ctx *c)
{
    struct ota_diag d;
    json_t         *s = NULL, *act, *g, *lc, *rels, *e;
    size_t          i;
    ota_err         rc;

    memset(&d, 0, sizeof(d));
    rc = open_agent(c, 1, 0, &d);
    if (rc == OTA_OK)
        rc = ota_agent_status(c->agent, &s, &d);
    if (rc != OTA_OK)
        return fail(c, rc, &d);
    if (c->a.json) {
        rc = print_json(s) ? OTA_E_NOMEM : OTA_OK;
        json_decref(s);
        return rc == OTA_OK ? 0 : 1;
    }
    act = json_object_get(s, "active");
    printf("device    %s\napp       %s (channel %s, runtime %s, agent %s)\n", jstr(s, "device_id"),
           jstr(s, "app"), jstr(s, "channel"), jstr(s, "runtime_version"),
           jstr(s, "agent_version"));
    if (json_is_object(act)) {
        printf("active    %s (%s", jstr(act, "version"), jstr(act, "state"));
        if (json_is_true(json_object_get(act, "on_trial")))
            printf(", launch %lld of %lld without confirm",
                   (long long)json_integer_value(json_object_get(act, "launches")),
                   (long long)json_integer_value(json_object_get(act, "trial_launches")));
        printf(")\n");
    } else {
        printf("active    none: no release installed\n");
    }
    printf("previous  %s\n", jstr(s, "previous")[0] ? jstr(s, "previous") : "none");
    printf("current   %s\n", jstr(s, "current"));
    rels = json_object_get(s, "releases");
    json_array_foreach(rels, i, e)
    {
        printf("release   %-12s %-12s model %s%s%s%s\n", jstr(e, "version"), jstr(e, "state"),
               jstr(e, "model"), json_is_true(json_object_get(e, "present")) ? "" : " (removed)",
               jstr(e, "reason")[0] ? ": " : "", jstr(e, "reason"));
    }
    g = json_object_get(s, "gate");
    if (json_is_object(g)) {
        printf("gate      closed for %s: waiting for sync: %lld change%s under model %s",
               jstr(g, "target"), (long long)json_integer_value(json_object_get(g, "count")),
               json_integer_value(json_object_get(g, "count")) == 1 ? "" : "s", jstr(g, "model"));
        if (jstr(g, "sync_error")[0])
            printf(" (last sync: %s)", jstr(g, "sync_error"));
        printf("\n");
    } else {
        printf("gate      open\n");
    }
    lc = json_object_get(s, "last_check");
    if (json_is_object(lc))
        printf("checked   %s: %s%s%s\n", jstr(lc, "time"), jstr(lc, "result"),
               jstr(lc, "message")[0] ? ": " : "", jstr(lc, "message"));
    else
        printf("checked   never\n");
    if (json_is_object(json_object_get(s, "activating")))
        printf("note      an activation was interrupted: the next startup completes or undoes"
               " it\n");
    json_decref(s);
    return 0;
}

static int
cmd_history(struct ctx *c)
{
    struct ota_diag d;
    json_t         *h = NULL, *e;
    size_t          i;
    ota_err         rc;

    memset(&d, 0, sizeof(d));
    rc = open_agent(c, 1, 0, &d);
    if (rc == OTA_OK)
        rc = ota_agent_history(c->agent, 0, &h, &d);
    if (rc != OTA_OK)
        return fail(c, rc, &d);
    if (c->a.json) {
        rc = print_json(h) ? OTA_E_NOMEM : OTA_OK;
    } else {
        json_array_foreach(h, i, e)
        {
            printf("%s  %-18s %-12s %s\n", jstr(e, "time"), jstr(e, "event"), jstr(e, "version"),
                   jstr(e, "detail"));
        }
    }
    json_decref(h);
    return rc == OTA_OK ? 0 : 1;
}

static int
cmd_explain(struct ctx *c)
{
    struct ota_diag d;
    json_t         *x = NULL, *e;
    size_t          i;
    ota_err         rc;

    memset(&d, 0, sizeof(d));
    rc = open_agent(c, 1, 0, &d);
    if (rc == OTA_OK)
        rc = ota_agent_explain(c->agent, &x, &d);
    if (rc != OTA_OK) {
        if (c->a.json) {
            json_t *j = json_pack("{s:s, s:s}", "result", ota_err_name(rc), "error", d.msg);
            if (j != NULL)
                print_json(j);
            json_decref(j);
            return 1;
        }
        return fail(c, rc, &d);
    }
    if (c->a.json) {
        rc = print_json(x) ? OTA_E_NOMEM : OTA_OK;
    } else {
        printf("release %s on channel %s (%s)\n", jstr(x, "version"), jstr(x, "channel"),
               jstr(x, "target"));
        json_array_foreach(json_object_get(x, "rules"), i, e)
        {
            printf("  %-11s %s\n", jstr(e, "rule"), jstr(e, "detail"));
        }
    }
    json_decref(x);
    return rc == OTA_OK ? 0 : 1;
}

static int
cmd_install(struct ctx *c)
{
    struct ota_agent_result r;
    struct ota_diag         d;
    ota_err                 rc;

    memset(&d, 0, sizeof(d));
    memset(&r, 0, sizeof(r));
    rc = open_agent(c, 0, 5000, &d);
    if (rc == OTA_OK)
        rc = ota_agent_install(c->agent, c->a.pos[0], c->a.force, &r, &d);
    if (rc != OTA_OK)
        return fail(c, rc, &d);
    print_result(&r, "installed");
    return 0;
}

static int
cmd_gc(struct ctx *c)
{
    struct ota_diag d;
    unsigned        n = 0;
    ota_err         rc;

    memset(&d, 0, sizeof(d));
    rc = open_writer(c, &d);
    if (rc == OTA_OK)
        rc = ota_agent_gc(c->agent, &n, &d);
    if (rc != OTA_OK)
        return fail(c, rc, &d);
    printf("removed %u item%s\n", n, n == 1 ? "" : "s");
    return 0;
}

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void
on_check(void *ctx, ota_err rc, const struct ota_agent_check *r, const struct ota_diag *d)
{
    struct ctx *c = ctx;
    char        ts[21];

    ota_time_format(ota_now(), ts);
    if (rc != OTA_OK)
        fprintf(stderr, "%s: run: %s check failed: %s\n", c->prog, ts, d->msg);
    else if (r->found)
        fprintf(stderr, "%s: run: %s %s is staged\n", c->prog, ts, r->version);
}

static int
cmd_run(struct ctx *c)
{
    struct sigaction sa;
    struct ota_diag  d;
    ota_err          rc;

    memset(&d, 0, sizeof(d));
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* No lock held between checks: ota_agent_run takes it around each one. */
    rc = open_agent(c, 1, 0, &d);
    if (rc == OTA_OK)
        rc = ota_agent_run(c->agent, &stop_flag, on_check, c, &d);
    if (rc != OTA_OK)
        return fail(c, rc, &d);
    return 0;
}

static int
cmd_outbox(struct ctx *c)
{
    struct ota_sync_config sc;

    ota_agent_sync_config(&c->cfg, &sc);
    return ota_agent_cli_outbox(c->argc, c->argv, &sc, c->a.json);
}

static int
cmd_tuf(struct ctx *c)
{
    return ota_agent_cli_tuf(c->argc, c->argv);
}

static int
cmd_sync(struct ctx *c)
{
    struct ota_sync_config sc;

    ota_agent_sync_config(&c->cfg, &sc);
    return ota_agent_cli_sync(c->argc, c->argv, &sc, c->a.json);
}

/* ---- arguments ----------------------------------------------------------------------- */

static int
parse_args(const struct agent_cmd *k, int argc, char **argv, struct args *a, const char **config,
           int *help)
{
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            *help = 1;
        } else if (strcmp(s, "--config") == 0 && i + 1 < argc) {
            *config = argv[++i];
        } else if (strncmp(s, "--config=", 9) == 0) {
            *config = s + 9;
        } else if (strcmp(s, "--json") == 0 && (k->opts & O_JSON)) {
            a->json = 1;
        } else if (strcmp(s, "--force") == 0 && (k->opts & O_FORCE)) {
            a->force = 1;
        } else if (strcmp(s, "--to") == 0 && (k->opts & O_TO) && i + 1 < argc) {
            a->to = argv[++i];
        } else if (strncmp(s, "--to=", 5) == 0 && (k->opts & O_TO)) {
            a->to = s + 5;
        } else if (s[0] == '-' && s[1] != '\0') {
            fprintf(stderr, "unknown option '%s' for '%s'\n", s, k->name);
            return -1;
        } else if (a->npos < k->max_pos) {
            a->pos[a->npos++] = s;
        } else {
            fprintf(stderr, "unexpected argument '%s' for '%s'\n", s, k->name);
            return -1;
        }
    }
    if (!*help && a->npos < k->min_pos) {
        fprintf(stderr, "missing argument for '%s'\n", k->name);
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct ctx              c;
    const struct agent_cmd *k = NULL;
    const char             *config = NULL;
    struct ota_diag         d;
    int                     i = 1, help = 0, ret;
    ota_err                 rc;

    memset(&c, 0, sizeof(c));
    memset(&d, 0, sizeof(d));
    c.prog = "ota-agent";
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout, c.prog);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("ota-agent %s\n", OTA_AGENT_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[i + 1];
            i += 2;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config = argv[i] + 9;
            i++;
        } else {
            fprintf(stderr, "%s: unknown option '%s'\n", c.prog, argv[i]);
            usage(stderr, c.prog);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr, c.prog);
        return EXIT_USAGE;
    }
    for (size_t j = 0; j < NCMDS; j++)
        if (strcmp(argv[i], commands[j].name) == 0)
            k = &commands[j];
    if (k == NULL) {
        fprintf(stderr, "%s: unknown command '%s'\n", c.prog, argv[i]);
        usage(stderr, c.prog);
        return EXIT_USAGE;
    }
    c.cmd = k->name;
    c.argc = argc - i;
    c.argv = argv + i;
    if (k->raw == 2) /* its own protocol, its own arguments, no configuration */
        return k->fn(&c);
    if (k->raw) {
        /* Delegated commands parse their own arguments; --config and --json are ours. */
        int n = 1;
        for (int j = 1; j < c.argc; j++) {
            if (strcmp(c.argv[j], "--help") == 0 || strcmp(c.argv[j], "-h") == 0) {
                help = 1;
            } else if (strcmp(c.argv[j], "--json") == 0) {
                c.a.json = 1;
                continue;
            } else if (strcmp(c.argv[j], "--config") == 0 && j + 1 < c.argc) {
                config = c.argv[++j];
                continue;
            } else if (strncmp(c.argv[j], "--config=", 9) == 0) {
                config = c.argv[j] + 9;
                continue;
            }
            c.argv[n++] = c.argv[j];
        }
        c.argc = n;
        c.argv[n] = NULL;
        if (help) {
            /* Without a configuration, both print their own usage and touch nothing. */
            char *h[] = {c.argv[0], (char *)"--help", NULL};
            cmd_usage(stdout, c.prog, k);
            fflush(stdout);
            if (k->fn == cmd_sync)
                (void)ota_agent_cli_sync(2, h, NULL, 0);
            else
                (void)ota_agent_cli_outbox(2, h, NULL, 0);
            return 0;
        }
    } else if (parse_args(k, argc - i - 1, argv + i + 1, &c.a, &config, &help) != 0) {
        cmd_usage(stderr, c.prog, k);
        return EXIT_USAGE;
    }
    if (help && !k->raw) {
        cmd_usage(stdout, c.prog, k);
        return 0;
    }
    if (config == NULL)
        config = getenv("OTA_AGENT_CONFIG");
    if (config == NULL || config[0] == '\0')
        config = OTA_AGENT_CONFIG_DEFAULT;
    rc = ota_agent_config_load(config, &c.cfg, &d);
    if (rc != OTA_OK) {
        fprintf(stderr, "%s: %s: %s\n", c.prog, c.cmd, d.msg);
        return 1;
    }
    ret = k->fn(&c);
    ota_agent_close(c.agent);
    ota_agent_gate_sync_free(&c.gate);
    ota_agent_config_clear(&c.cfg);
    return ret;
}
