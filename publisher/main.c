/* ota-publish: the release engineer's command line. Parses arguments, calls the library in
 * publisher/ and maps errors to messages and exit codes (0 ok, 1 failed, 2 usage). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ota/bundle.h"
#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/publish.h"
#include "ota/release.h"
#include "ota/signer.h"

#define OTA_PUBLISH_VERSION "0.1.0"

struct cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *args;
    const char *help;
    const char *details;
};

static struct ota_passphrase_src pass = { -1, "OTA_PASSPHRASE", 1 };
static int json_out;
static const struct cmd *current;

static int
fail(ota_err rc, const struct ota_diag *d)
{
    fprintf(stderr, "ota-publish %s: error: %s\n", current ? current->name : "",
            d->msg[0] ? d->msg : ota_err_str(rc));
    return 1;
}

static int
usage_error(const char *fmt, ...) OTA_PRINTF(1, 2);

static int
usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "ota-publish %s: ", current ? current->name : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: ota-publish %s %s\n(see ota-publish %s --help)\n",
            current ? current->name : "COMMAND", current ? current->args : "",
            current ? current->name : "");
    return 2;
}

static void
print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);

    if (s != NULL)
        puts(s);
    free(s);
}

static int
parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    long  v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Options every command takes. Returns 1 if handled. */
enum { OPT_PASSFD = 1000, OPT_JSON, OPT_HELP };
#define COMMON_OPTS                                                                        \
    { "passphrase-fd", required_argument, NULL, OPT_PASSFD },                              \
        { "json", no_argument, NULL, OPT_JSON }, { "help", no_argument, NULL, 'h' }

static int
common_opt(int c, const char *arg, int *ret)
{
    long fd;

    switch (c) {
    case OPT_PASSFD:
        if (parse_int(arg, 0, INT_MAX, &fd) != 0) {
            *ret = usage_error("bad --passphrase-fd '%s'", arg);
            return 1;
        }
        pass.fd = (int)fd;
        return 1;
    case OPT_JSON:
        json_out = 1;
        return 1;
    case 'h':
        printf("usage: ota-publish %s %s\n\n%s\n%s", current->name, current->args, current->help,
               current->details);
        printf("\ncommon options:\n  --passphrase-fd N   read the key passphrase from file "
               "descriptor N (else $OTA_PASSPHRASE, else the terminal)\n  --json              "
               "machine-readable output\n  -h, --help          this help\n");
        *ret = 0;
        return 1;
    default:
        return 0;
    }
}

#define GETOPT_LOOP(longopts, shortopts)                                                  \
    int c, ret = -1;                                                                      \
    optind = 1;                                                                           \
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {              \
        if (common_opt(c, optarg, &ret))                                                  \
            if (ret >= 0)                                                                 \
                return ret;                                                               \
        switch (c)

#define GETOPT_END                                                                        \
    }

/* ------------------------------------------------------------------ init, keygen */

static int
cmd_init(int argc, char **argv)
{
    static const struct option lo[] = { { "root-keys", required_argument, NULL, 'n' },
                                        { "root-threshold", required_argument, NULL, 't' },
                                        { "expires", required_argument, NULL, 'e' },
                                        { "unencrypted-online", no_argument, NULL, 'u' },
                                        COMMON_OPTS,
                                        { NULL, 0, NULL, 0 } };
    struct ota_repo_init_opts o;
    struct ota_diag           d;
    ota_err                   rc;
    long                      v;

    memset(&o, 0, sizeof o);
    GETOPT_LOOP(lo, "h")
        {
        case OPT_PASSFD: case OPT_JSON: case 'h': break;
        case 'n':
            if (parse_int(optarg, 1, 16, &v) != 0)
                return usage_error("--root-keys must be 1..16, not '%s'", optarg);
            o.root_keys = (unsigned)v;
            break;
        case 't':
            if (parse_int(optarg, 1, 16, &v) != 0)
                return usage_error("--root-threshold must be 1..16, not '%s'", optarg);
            o.root_threshold = (unsigned)v;
            break;
        case 'e': {
            char *eq = strchr(optarg, '=');
            int   role;
            if (eq == NULL)
                return usage_error("--expires takes ROLE=DAYS, not '%s'", optarg);
            *eq = '\0';
            role = ota_role_from_name(optarg);
            if (role < 0 || parse_int(eq + 1, 1, 36500, &v) != 0)
                return usage_error("--expires takes ROLE=DAYS with ROLE one of root, targets, "
                                   "snapshot, timestamp and DAYS 1..36500");
            o.expires_days[role] = (unsigned)v;
            break;
        }
        case 'u':
            o.unencrypted_online = 1;
            break;
        default:
            return usage_error("unknown option");
        }
    GETOPT_END
    if (optind != argc - 1)
        return usage_error("expected one REPO directory");
    rc = ota_repo_init(argv[optind], &o, &pass, &d);
    if (rc != OTA_OK)
        return fail(rc, &d);
    printf("initialised repository '%s'\n  keys:   %s/keys (keep root keys offline)\n  serve:  "
           "%s/public\n  device trust anchor: %s/public/metadata/1.root.json\n",
           argv[optind], argv[optind], argv[optind], argv[optind]);
    return 0;
}

static int
cmd_keygen(int argc, char **argv)
{
    static const struct option lo[] = { { "force", no_argument, NULL, 'f' },
                                        { "unencrypted", no_argument, NULL, 'u' },
                                        COMMON_OPTS,
                                        { NULL, 0, NULL, 0 } };
    struct ota_seckey *k = NULL;
    char              *pw = NULL;
    struct ota_diag    d;
    int                force = 0, unenc = 0;
    ota_err            rc;

    GETOPT_LOOP(lo, "fh")
        {
        case OPT_PASSFD: case OPT_JSON: case 'h': break;
        case 'f': force = 1; break;
        case 'u': unenc = 1; break;
        default: return usage_error("unknown option");
        }
    GETOPT_END
    if (optind != argc - 1)
        return usage_error("expected one key FILE");
    if (!unenc && (rc = ota_passphrase_get(&pass, "passphrase for the new key", 1, &pw, &d)))
        return fail(rc, &d);
    rc = ota_seckey_generate(&k, &d);
    if (rc == OTA_OK)
        rc = ota_seckey_save(k, argv[optind], pw, force, &d);
    if (rc == OTA_OK) {
        if (json_out)
            printf("{\"path\":\"%s\",\"keyid\":\"%s\"}\n", argv[optind],
                   ota_seckey_public(k)->keyid);
        else
            printf("wrote %s\nkeyid %s\n", argv[optind], ota_seckey_public(k)->keyid);
    }
    ota_seckey_free(k);
    ota_passphrase_free(pw);
    return rc == OTA_OK ? 0 : fail(rc, &d);
}

/* ------------------------------------------------------------------ pack */

struct keyset {
    struct ota_seckey *k[16];
    size_t             n;
};

static ota_err
keyset_sign(void *ctx, const void *msg, size_t len, json_t *sigs, struct ota_diag *d)
{
    struct keyset *ks = ctx;
    size_t         i;
    ota_err        rc;

    for (i = 0; i < ks->n; i++)
        if ((rc = ota_seckey_sign(ks->k[i], msg, len, sigs, d)) != OTA_OK)
            return rc;
    return OTA_OK;
}

static void
progress_bar(void *ctx, uint64_t done, uint64_t total)
{
    static int last = -1;
    int        pct;

    (void)ctx;
    if (total == 0)
        return;
    pct = (int)(done * 100 / total);
    if (pct == last)
        return;
    last = pct;
    if (isatty(STDERR_FILENO)) {
        int bars = pct / 4;
        fprintf(stderr, "\r  packing [%.*s%*s] %3d%%", bars, "#########################",
                25 - bars, "", pct);
        if (pct == 100)
            fputc('\n', stderr);
    } else if (pct % 10 == 0) {
        fprintf(stderr, "{\"event\":\"progress\",\"done\":%llu,\"total\":%llu}\n",
                (unsigned long long)done, (unsigned long long)total);
    }
}

static int
set_field(char *dst, size_t cap, const char *v, const char *what)
{
    if (strlen(v) >= cap)
        return usage_error("%s '%.64s' is too long", what, v);
    memcpy(dst, v, strlen(v) + 1);
    return -1;
}

static int
cmd_pack(int argc, char **argv)
{
    static const struct option lo[] = {
        { "output", required_argument, NULL, 'o' }, { "repo", required_argument, NULL, 'r' },
        { "key", required_argument, NULL, 'k' },    { "metadata", required_argument, NULL, 'M' },
        { "app", required_argument, NULL, 'a' },    { "version", required_argument, NULL, 'v' },
        { "model", required_argument, NULL, 'm' },  { "reads-model", required_argument, NULL, 'R' },
        { "runtime", required_argument, NULL, 't' }, { "min-agent", required_argument, NULL, 'g' },
        { "mandatory", no_argument, NULL, 'y' },    { "notes", required_argument, NULL, 'N' },
        { "notes-file", required_argument, NULL, 'F' }, { "level", required_argument, NULL, 'l' },
        { "threads", required_argument, NULL, 'T' }, { "force", no_argument, NULL, 'f' },
        COMMON_OPTS, { NULL, 0, NULL, 0 }
    };
    struct ota_release     rel;
    struct ota_pack_opts   po;
    struct ota_pack_result res;
    struct ota_repo       *repo = NULL;
    struct keyset          ks;
    struct ota_diag        d;
    const char            *out = NULL, *repodir = NULL, *keyfiles[16], *metafile = NULL;
    size_t                 nkeyfiles = 0, i;
    char                  *pw = NULL;
    long                   v;
    int                    r = 1;
    ota_err                rc = OTA_OK;

    memset(&rel, 0, sizeof rel);
    memset(&po, 0, sizeof po);
    memset(&ks, 0, sizeof ks);
    snprintf(rel.runtime_min, sizeof rel.runtime_min, "0");
    snprintf(rel.min_agent, sizeof rel.min_agent, "0.1");
    /* A metadata file gives defaults; options override it. */
    for (i = 1; i < (size_t)argc; i++)
        if (strcmp(argv[i], "--metadata") == 0 && i + 1 < (size_t)argc)
            metafile = argv[i + 1];
    if (metafile != NULL) {
        unsigned char *buf = NULL;
        size_t         len = 0;
        json_t        *j = NULL;
        rc = ota_read_file(metafile, 1 << 20, &buf, &len, &d);
        if (rc == OTA_OK)
            rc = ota_cjson_parse(buf, len, 1 << 20, &j, &d);
        free(buf);
        if (rc == OTA_OK)
            rc = ota_release_from_json(j, &rel, &d);
        json_decref(j);
        if (rc != OTA_OK) {
            ota_diag_prefix(&d, "metadata file '%s'", metafile);
            return fail(rc, &d);
        }
    }
    {
        GETOPT_LOOP(lo, "o:fh")
            {
            case OPT_PASSFD: case OPT_JSON: case 'h': case 'M': break;
            case 'o': out = optarg; break;
            case 'r': repodir = optarg; break;
            case 'k':
                if (nkeyfiles == 16)
                    return usage_error("at most 16 --key options");
                keyfiles[nkeyfiles++] = optarg;
                break;
            case 'a': if ((ret = set_field(rel.app, sizeof rel.app, optarg, "app")) >= 0) goto done; break;
            case 'v': if ((ret = set_field(rel.version, sizeof rel.version, optarg, "version")) >= 0) goto done; break;
            case 'm': if ((ret = set_field(rel.model, sizeof rel.model, optarg, "model")) >= 0) goto done; break;
            case 'g': if ((ret = set_field(rel.min_agent, sizeof rel.min_agent, optarg, "min-agent")) >= 0) goto done; break;
            case 'R': {
                char (*nr)[OTA_ID_MAX + 1];
                if (rel.n_reads_models >= OTA_READS_MODELS_MAX) {
                    ret = usage_error("at most %d --reads-model", OTA_READS_MODELS_MAX);
                    goto done;
                }
                nr = realloc(rel.reads_models, (rel.n_reads_models + 1) * sizeof *nr);
                if (nr == NULL) {
                    ret = 1;
                    goto done;
                }
                rel.reads_models = nr;
                if ((ret = set_field(nr[rel.n_reads_models], sizeof *nr, optarg, "model")) >= 0)
                    goto done;
                rel.n_reads_models++;
                break;
            }
            case 't': {
                /* MIN or MIN..MAX or MIN-MAX */
                char *sep = strstr(optarg, "..");
                size_t skip = 2;
                if (sep == NULL) {
                    sep = strchr(optarg, '-');
                    skip = 1;
                }
                if (sep != NULL) {
                    *sep = '\0';
                    if ((ret = set_field(rel.runtime_max, sizeof rel.runtime_max, sep + skip,
                                         "runtime")) >= 0)
                        goto done;
                } else {
                    rel.runtime_max[0] = '\0';
                }
                if ((ret = set_field(rel.runtime_min, sizeof rel.runtime_min, optarg,
                                     "runtime")) >= 0)
                    goto done;
                break;
            }
            case 'y': rel.mandatory = 1; break;
            case 'N':
                free(rel.notes);
                rel.notes = strdup(optarg);
                break;
            case 'F': {
                unsigned char *buf = NULL;
                size_t         len = 0;
                if ((rc = ota_read_file(optarg, OTA_NOTES_MAX, &buf, &len, &d)) != OTA_OK) {
                    ret = fail(rc, &d);
                    goto done;
                }
                free(rel.notes);
                rel.notes = (char *)buf;
                break;
            }
            case 'l':
                if (parse_int(optarg, 1, 19, &v) != 0) {
                    ret = usage_error("--level must be 1..19");
                    goto done;
                }
                po.level = (int)v;
                break;
            case 'T':
                if (parse_int(optarg, 0, 64, &v) != 0) {
                    ret = usage_error("--threads must be 0..64");
                    goto done;
                }
                po.threads = (int)v;
                break;
            case 'f': po.force = 1; break;
            default: ret = usage_error("unknown option"); goto done;
            }
        GETOPT_END
        if (optind != argc - 1) {
            ret = usage_error("expected one bundle DIR");
            goto done;
        }
        if (out == NULL) {
            ret = usage_error("missing -o FILE");
            goto done;
        }
        if ((repodir == NULL) == (nkeyfiles == 0)) {
            ret = usage_error("sign with the targets key of --repo REPO, or with --key FILE");
            goto done;
        }
        if (rel.app[0] == '\0' || rel.version[0] == '\0' || rel.model[0] == '\0') {
            ret = usage_error("--app, --version and --model are required (or --metadata FILE)");
            goto done;
        }
        if (ota_version_parse(rel.version, &rel.v) != OTA_OK) {
            ret = usage_error("bad --version '%s': use dotted numbers like 1.4.2", rel.version);
            goto done;
        }
        if ((rc = ota_release_validate(&rel, &d)) != OTA_OK) {
            ret = fail(rc, &d);
            goto done;
        }
        if (repodir != NULL) {
            if ((rc = ota_repo_open(repodir, &pass, &repo, &d)) != OTA_OK) {
                ret = fail(rc, &d);
                goto done;
            }
            po.sign = ota_repo_bundle_signer;
            po.sign_ctx = repo;
        } else {
            for (i = 0; i < nkeyfiles; i++) {
                if (ota_seckey_file_encrypted(keyfiles[i]) == 1 && pw == NULL &&
                    (rc = ota_passphrase_get(&pass, "key passphrase", 0, &pw, &d)) != OTA_OK)
                    break;
                if ((rc = ota_seckey_load(keyfiles[i], pw, &ks.k[ks.n], &d)) != OTA_OK)
                    break;
                ks.n++;
            }
            if (rc != OTA_OK) {
                ret = fail(rc, &d);
                goto done;
            }
            po.sign = keyset_sign;
            po.sign_ctx = &ks;
        }
        po.src_dir = argv[optind];
        po.out_path = out;
        po.release = &rel;
        po.progress = progress_bar;
        rc = ota_bundle_pack(&po, &res, &d);
        if (rc != OTA_OK) {
            ret = fail(rc, &d);
            goto done;
        }
        {
            char hex[OTA_SHA256_HEX];
            ota_hex_encode(res.sha256, sizeof res.sha256, hex);
            if (json_out)
                printf("{\"bundle\":\"%s\",\"app\":\"%s\",\"version\":\"%s\",\"files\":%llu,"
                       "\"payload_bytes\":%llu,\"length\":%llu,\"sha256\":\"%s\"}\n",
                       out, rel.app, rel.version, (unsigned long long)res.nfiles,
                       (unsigned long long)res.payload_bytes, (unsigned long long)res.length, hex);
            else
                printf("packed %s %s (model %s): %llu files, %llu bytes -> %s (%llu bytes)\n"
                       "sha256 %s\n", rel.app, rel.version, rel.model,
                       (unsigned long long)res.nfiles, (unsigned long long)res.payload_bytes, out,
                       (unsigned long long)res.length, hex);
        }
        ret = 0;
    done:
        r = ret;
    }
    for (i = 0; i < ks.n; i++)
        ota_seckey_free(ks.k[i]);
    ota_passphrase_free(pw);
    ota_repo_close(repo);
    ota_release_clear(&rel);
    return r;
}

/* ------------------------------------------------------------------ repository commands */

struct repo_args {
    const char *keys[16];
    size_t      nkeys;
    const char *app;
    const char *version;
    const char *channel;
    const char *from;
    const char *to;
    const char *as;
    const char *role;
    long        rollout;
    long        threshold;
    int         breaking;
    int         mandatory;
    int         snapshot;
    const char *pos[2];
    int         npos;
};

enum { O_KEY = 2000, O_APP, O_VERSION, O_CHANNEL, O_FROM, O_TO, O_AS, O_ROLE, O_ROLLOUT,
       O_THRESHOLD, O_BREAKING, O_MANDATORY, O_SNAPSHOT };

static const struct option repo_lo[] = {
    { "key", required_argument, NULL, O_KEY },       { "app", required_argument, NULL, O_APP },
    { "version", required_argument, NULL, O_VERSION }, { "channel", required_argument, NULL, O_CHANNEL },
    { "from", required_argument, NULL, O_FROM },     { "to", required_argument, NULL, O_TO },
    { "as", required_argument, NULL, O_AS },         { "role", required_argument, NULL, O_ROLE },
    { "rollout", required_argument, NULL, O_ROLLOUT }, { "percent", required_argument, NULL, O_ROLLOUT },
    { "threshold", required_argument, NULL, O_THRESHOLD },
    { "breaking", no_argument, NULL, O_BREAKING },   { "mandatory", no_argument, NULL, O_MANDATORY },
    { "snapshot", no_argument, NULL, O_SNAPSHOT },   COMMON_OPTS,
    { NULL, 0, NULL, 0 }
};

/* Parse the options shared by repository commands; returns -1 to go on, else an exit code. */
static int
parse_repo_args(int argc, char **argv, struct repo_args *a, int npos)
{
    memset(a, 0, sizeof *a);
    a->rollout = -1;
    a->threshold = 0;
    {
        GETOPT_LOOP(repo_lo, "h")
            {
            case OPT_PASSFD: case OPT_JSON: case 'h': break;
            case O_KEY:
                if (a->nkeys == 16)
                    return usage_error("at most 16 --key options");
                a->keys[a->nkeys++] = optarg;
                break;
            case O_APP: a->app = optarg; break;
            case O_VERSION: a->version = optarg; break;
            case O_CHANNEL: a->channel = optarg; break;
            case O_FROM: a->from = optarg; break;
            case O_TO: a->to = optarg; break;
            case O_AS: a->as = optarg; break;
            case O_ROLE: a->role = optarg; break;
            case O_ROLLOUT:
                if (parse_int(optarg, 0, 100, &a->rollout) != 0)
                    return usage_error("rollout must be a percentage 0..100, not '%s'", optarg);
                break;
            case O_THRESHOLD:
                if (parse_int(optarg, 1, 16, &a->threshold) != 0)
                    return usage_error("--threshold must be 1..16, not '%s'", optarg);
                break;
            case O_BREAKING: a->breaking = 1; break;
            case O_MANDATORY: a->mandatory = 1; break;
            case O_SNAPSHOT: a->snapshot = 1; break;
            default: return usage_error("unknown option");
            }
        GETOPT_END
    }
    if (argc - optind != npos)
        return usage_error("expected %s", npos == 2 ? "REPO and FILE" : "REPO");
    a->npos = npos;
    a->pos[0] = argv[optind];
    a->pos[1] = npos > 1 ? argv[optind + 1] : NULL;
    return -1;
}

static int
open_repo(const struct repo_args *a, struct ota_repo **r)
{
    struct ota_diag d;
    ota_err         rc;
    size_t          i;

    rc = ota_repo_open(a->pos[0], &pass, r, &d);
    for (i = 0; rc == OTA_OK && i < a->nkeys; i++)
        rc = ota_repo_add_key_file(*r, a->keys[i], &d);
    if (rc != OTA_OK) {
        ota_repo_close(*r);
        *r = NULL;
        return fail(rc, &d);
    }
    return -1;
}

/* --app is optional when the repository holds one app only. */
static const char *
pick_app(struct ota_repo *r, const char *app, int *ret)
{
    const json_t *targets = ota_repo_targets(r);
    const char   *path, *found = NULL;
    json_t       *t;

    if (app != NULL)
        return app;
    json_object_foreach((json_t *)targets, path, t) {
        const char *a = json_string_value(json_object_get(
            json_object_get(json_object_get(json_object_get(t, "custom"), "ota"), "release"),
            "app"));
        if (a == NULL)
            continue;
        if (found != NULL && strcmp(found, a) != 0) {
            *ret = usage_error("the repository holds several apps: pass --app");
            return NULL;
        }
        found = a;
    }
    if (found == NULL)
        *ret = usage_error("the repository has no releases yet");
    return found;
}

/* open_repo, then the app the command is about; -1 to go on, else an exit code. */
static int
open_repo_app(const struct repo_args *a, struct ota_repo **r, const char **app)
{
    int ret = open_repo(a, r);

    if (ret >= 0)
        return ret;
    if ((*app = pick_app(*r, a->app, &ret)) == NULL) {
        ota_repo_close(*r);
        *r = NULL;
        return ret;
    }
    return -1;
}

static int
done(ota_err rc, struct ota_diag *d, struct ota_repo *r, const char *what)
{
    int ret = 0;

    if (rc != OTA_OK)
        ret = fail(rc, d);
    else if (json_out) {
        json_t *s = ota_repo_summary(r);
        print_json(s);
        json_decref(s);
    } else if (what != NULL)
        printf("%s\n", what);
    ota_repo_close(r);
    return ret;
}

static int
cmd_release(int argc, char **argv)
{
    struct repo_args        a;
    struct ota_repo        *r = NULL;
    struct ota_release_opts o;
    struct ota_diag         d;
    char                    msg[256];
    int                     ret;
    ota_err                 rc;

    if ((ret = parse_repo_args(argc, argv, &a, 2)) >= 0)
        return ret;
    o.channel = a.channel ? a.channel : "stable";
    o.rollout = a.rollout < 0 ? 100 : (int)a.rollout;
    o.breaking = a.breaking;
    o.mandatory = a.mandatory;
    if ((ret = open_repo(&a, &r)) >= 0)
        return ret;
    rc = ota_repo_release(r, a.pos[1], &o, &d);
    snprintf(msg, sizeof msg, "released '%s' on channel '%s' to %d%% of devices%s", a.pos[1],
             o.channel, o.rollout, o.breaking ? " (breaking: devices sync offline data first)" : "");
    return done(rc, &d, r, msg);
}

static int
cmd_promote(int argc, char **argv)
{
    struct repo_args a;
    struct ota_repo *r = NULL;
    struct ota_diag  d;
    const char      *app;
    char             msg[256];
    int              ret = -1;

    if ((ret = parse_repo_args(argc, argv, &a, 1)) >= 0)
        return ret;
    if (a.to == NULL || (a.from == NULL && a.version == NULL))
        return usage_error("pass --to CHANNEL and --from CHANNEL (or --version V)");
    if ((ret = open_repo_app(&a, &r, &app)) >= 0)
        return ret;
    snprintf(msg, sizeof msg, "promoted %s %s to '%s' (%ld%%)", app,
             a.version ? a.version : a.from, a.to, a.rollout < 0 ? 100 : a.rollout);
    return done(ota_repo_promote(r, app, a.from, a.to, a.version,
                                 a.rollout < 0 ? 100 : (int)a.rollout, a.breaking, &d),
                &d, r, msg);
}

static int
cmd_rollout(int argc, char **argv)
{
    struct repo_args a;
    struct ota_repo *r = NULL;
    struct ota_diag  d;
    const char      *app;
    char             msg[256];
    int              ret;

    if ((ret = parse_repo_args(argc, argv, &a, 1)) >= 0)
        return ret;
    if (a.channel == NULL || a.rollout < 0)
        return usage_error("pass --channel C and --percent P");
    if ((ret = open_repo_app(&a, &r, &app)) >= 0)
        return ret;
    snprintf(msg, sizeof msg, "rollout of %s on '%s' is now %ld%%", app, a.channel, a.rollout);
    return done(ota_repo_rollout(r, app, a.channel, a.version, (int)a.rollout, &d), &d, r, msg);
}

static int
cmd_yank(int argc, char **argv)
{
    struct repo_args a;
    struct ota_repo *r = NULL;
    struct ota_diag  d;
    const char      *app;
    char             msg[256];
    int              ret;

    if ((ret = parse_repo_args(argc, argv, &a, 1)) >= 0)
        return ret;
    if (a.version == NULL)
        return usage_error("pass --version V");
    if ((ret = open_repo_app(&a, &r, &app)) >= 0)
        return ret;
    snprintf(msg, sizeof msg, "yanked %s %s: devices will not install it", app, a.version);
    return done(ota_repo_yank(r, app, a.version, &d), &d, r, msg);
}

static int
cmd_republish(int argc, char **argv)
{
    struct repo_args a;
    struct ota_repo *r = NULL;
    struct ota_diag  d;
    const char      *app;
    char             msg[256];
    int              ret;

    if ((ret = parse_repo_args(argc, argv, &a, 1)) >= 0)
        return ret;
    if (a.version == NULL || a.as == NULL)
        return usage_error("pass --version OLD --as NEW");
    if ((ret = open_repo_app(&a, &r, &app)) >= 0)
        return ret;
    snprintf(msg, sizeof msg, "republished %s %s as %s on '%s'", app, a.version, a.as,
             a.channel ? a.channel : "stable");
    return done(ota_repo_republish(r, app, a.version, a.as, a.channel ? a.channel : "stable",
                                   a.rollout < 0 ? 100 : (int)a.rollout, &d),
                &d, r, msg);
}

static int
cmd_refresh(int argc, char **argv)
{
    struct repo_args a;
    struct ota_repo *r = NULL;
    struct ota_diag  d;
    int              ret;

    if ((ret = parse_repo_args(argc, argv, &a, 1)) >= 0)
        return ret;
    if ((ret = open_repo(&a, &r)) >= 0)
        return ret;
    return done(ota_repo_refresh(r, a.snapshot, &d), &d, r,
                a.snapshot ? "re-signed snapshot and timestamp" : "re-signed timestamp");
}

static int
cmd_rotate(int argc, char **argv)
{
    struct repo_args   a;
    struct ota_repo   *r = NULL;
    struct ota_diag    d;
    char               genpath[PATH_MAX];
    const char        *files[16];
    size_t             n = 0, i;
    int                role, ret;
    ota_err            rc = OTA_OK;

    if ((ret = parse_repo_args(argc, argv, &a, 1)) >= 0)
        return ret;
    if (a.role == NULL || (role = ota_role_from_name(a.role)) < 0)
        return usage_error("pass --role root|targets|snapshot|timestamp");
    if ((ret = open_repo(&a, &r)) >= 0)
        return ret;
    /* --key files are both signing keys (old root keys kept offline) and, for a role other
     * than root, the role's new keys. Without one, a new key is generated in REPO/keys. */
    for (i = 0; i < a.nkeys; i++) {
        struct ota_pubkey pk;
        if (ota_seckey_load_public(a.keys[i], &pk, &d) != OTA_OK)
            continue;
        files[n++] = a.keys[i];
    }
    if (n == 0 && strcmp(a.role, "root") != 0) {
        struct ota_seckey *k = NULL;
        char              *pw = NULL;
        rc = ota_path_fmt(genpath, sizeof genpath, &d, "%s/keys/%s-%lld.key", a.pos[0], a.role,
                          (long long)ota_repo_now(r));
        if (rc == OTA_OK && role != OTA_ROLE_TIMESTAMP)
            rc = ota_passphrase_get(&pass, "passphrase for the new key", 0, &pw, &d);
        if (rc == OTA_OK)
            rc = ota_seckey_generate(&k, &d);
        if (rc == OTA_OK)
            rc = ota_seckey_save(k, genpath, pw, 0, &d);
        ota_seckey_free(k);
        ota_passphrase_free(pw);
        if (rc != OTA_OK) {
            ota_repo_close(r);
            return fail(rc, &d);
        }
        files[n++] = genpath;
    }
    if (strcmp(a.role, "root") == 0 && a.nkeys > 0 && a.threshold == 0)
        a.threshold = 1;
    rc = ota_repo_rotate(r, role, files, n, a.threshold ? (unsigned)a.threshold : 1, &d);
    return done(rc, &d, r, "wrote a new root version; devices follow it on their next check");
}

static int
cmd_list(int argc, char **argv)
{
    struct repo_args a;
    struct ota_repo *r = NULL;
    json_t          *s, *rel;
    size_t           i;
    int              ret;

    if ((ret = parse_repo_args(argc, argv, &a, 1)) >= 0)
        return ret;
    if ((ret = open_repo(&a, &r)) >= 0)
        return ret;
    s = ota_repo_summary(r);
    if (json_out) {
        print_json(s);
    } else {
        static const char *const roles[] = { "root", "targets", "snapshot", "timestamp" };
        for (i = 0; i < 4; i++)
            printf("%-10s version %-4lld expires %s\n", roles[i],
                   (long long)json_integer_value(json_object_get(json_object_get(s, roles[i]),
                                                                 "version")),
                   json_string_value(json_object_get(json_object_get(s, roles[i]), "expires")));
        printf("\n%-24s %-10s %-8s %-8s %s\n", "APP", "VERSION", "MODEL", "STATE", "CHANNELS");
        json_array_foreach(json_object_get(s, "releases"), i, rel) {
            char        ch[256] = "";
            const char *k;
            json_t     *v;
            size_t      off = 0;
            json_object_foreach(json_object_get(rel, "channels"), k, v) {
                int n = snprintf(ch + off, sizeof ch - off, "%s%s:%lld%%", off ? " " : "", k,
                                 (long long)json_integer_value(v));
                if (n < 0 || (size_t)n >= sizeof ch - off)
                    break;
                off += (size_t)n;
            }
            printf("%-24s %-10s %-8s %-8s %s%s\n", json_string_value(json_object_get(rel, "app")),
                   json_string_value(json_object_get(rel, "version")),
                   json_string_value(json_object_get(rel, "model")),
                   json_is_true(json_object_get(rel, "yanked")) ? "yanked" : "live", ch,
                   json_is_true(json_object_get(rel, "breaking")) ? " (breaking)" : "");
        }
    }
    json_decref(s);
    ota_repo_close(r);
    return 0;
}

static int
cmd_verify(int argc, char **argv)
{
    struct repo_args a;
    struct ota_diag  d;
    json_t          *report = json_array(), *e;
    size_t           i;
    int              ret;
    ota_err          rc;

    if ((ret = parse_repo_args(argc, argv, &a, 1)) >= 0) {
        json_decref(report);
        return ret;
    }
    rc = ota_repo_verify(a.pos[0], report, &d);
    if (json_out) {
        json_t *o = json_pack("{s:b, s:O}", "ok", rc == OTA_OK, "checks", report);
        print_json(o);
        json_decref(o);
    } else {
        json_array_foreach(report, i, e) printf(
            "%-4s %-40s %s\n", json_is_true(json_object_get(e, "ok")) ? "ok" : "FAIL",
            json_string_value(json_object_get(e, "check")),
            json_string_value(json_object_get(e, "detail")));
        if (rc == OTA_OK)
            printf("repository '%s' verifies\n", a.pos[0]);
    }
    json_decref(report);
    return rc == OTA_OK ? 0 : fail(rc, &d);
}

/* inspect: show a bundle and check every file in it; the manifest signature is checked
 * against a repository's targets keys when --repo is given. */
static ota_err
accept_unchecked(void *ctx, const void *msg, size_t len, const json_t *sigs, struct ota_diag *d)
{
    (void)msg;
    (void)len;
    (void)d;
    *(size_t *)ctx = json_array_size(sigs);
    return OTA_OK;
}

static int
cmd_inspect(int argc, char **argv)
{
    static const struct option lo[] = { { "repo", required_argument, NULL, 'r' }, COMMON_OPTS,
                                        { NULL, 0, NULL, 0 } };
    struct ota_bundle_read_opts o;
    struct ota_manifest        *m = NULL;
    struct ota_repo            *repo = NULL;
    struct ota_diag             d;
    const char                 *repodir = NULL;
    size_t                      nsigs = 0;
    ota_err                     rc;

    {
        GETOPT_LOOP(lo, "h")
            {
            case OPT_PASSFD: case OPT_JSON: case 'h': break;
            case 'r': repodir = optarg; break;
            default: return usage_error("unknown option");
            }
        GETOPT_END
    }
    if (optind != argc - 1)
        return usage_error("expected one bundle FILE");
    memset(&o, 0, sizeof o);
    if (repodir != NULL) {
        if ((rc = ota_repo_open(repodir, &pass, &repo, &d)) != OTA_OK)
            return fail(rc, &d);
        o.verify = ota_repo_bundle_verifier;
        o.verify_ctx = repo;
    } else {
        o.verify = accept_unchecked;
        o.verify_ctx = &nsigs;
    }
    rc = ota_bundle_read_file(argv[optind], &o, &m, &d);
    ota_repo_close(repo);
    if (rc != OTA_OK)
        return fail(rc, &d);
    if (json_out) {
        json_t *j = ota_manifest_to_json(m);
        json_object_set_new(j, "signature_checked", json_boolean(repodir != NULL));
        json_object_set_new(j, "files_verified", json_true());
        print_json(j);
        json_decref(j);
    } else {
        const struct ota_release *r = &m->release;
        size_t                    i;
        printf("app          %s\nversion      %s\nmodel        %s\n", r->app, r->version, r->model);
        printf("reads_models");
        for (i = 0; i < r->n_reads_models; i++)
            printf(" %s", r->reads_models[i]);
        printf("%s\nruntime      %s..%s\nmin_agent    %s\nmandatory    %s\nnotes        %s\n",
               r->n_reads_models ? "" : " (none)", r->runtime_min,
               r->runtime_max[0] ? r->runtime_max : "", r->min_agent, r->mandatory ? "yes" : "no",
               r->notes ? r->notes : "");
        printf("files        %zu (%llu bytes), every digest verified\n", m->nfiles,
               (unsigned long long)m->total_size);
        printf("signatures   %zu, %s\n", json_array_size(m->signatures),
               repodir ? "verified with the repository's targets keys"
                       : "NOT checked (pass --repo REPO to check them)");
    }
    ota_manifest_free(m);
    return 0;
}

/* ------------------------------------------------------------------ dispatch */

static const struct cmd commands[] = {
    { "init", cmd_init, "REPO [--root-keys N] [--root-threshold T] [--expires ROLE=DAYS]...",
      "create a repository workspace with new keys",
      "  Creates REPO/keys (private keys, 0600, encrypted with the passphrase), REPO/public\n"
      "  (serve it) and signed metadata version 1. --unencrypted-online stores the snapshot and\n"
      "  timestamp keys without passphrase, for a cron job running 'refresh'.\n" },
    { "keygen", cmd_keygen, "FILE [--force] [--unencrypted]", "generate an ed25519 key file",
      "  Writes FILE (mode 0600, never over an existing file without --force) and prints its\n"
      "  TUF key id.\n" },
    { "pack", cmd_pack,
      "DIR -o FILE (--repo REPO | --key KEYFILE) --app ID --version V --model M [options]",
      "pack an app bundle into a signed, zstd-compressed release",
      "  --metadata FILE      release metadata as JSON (formats/release.md); options override\n"
      "  --reads-model M      older data model this release can still sync (repeatable)\n"
      "  --runtime MIN[..MAX] native runtime versions that can run it\n"
      "  --min-agent V        oldest ota-agent that understands it\n"
      "  --mandatory, --notes TEXT, --notes-file F\n"
      "  --level N (zstd, default 3), --threads N (default: all CPUs), --force\n" },
    { "release", cmd_release, "REPO FILE [--channel C] [--rollout PERCENT] [--mandatory] "
                              "[--breaking]",
      "publish a bundle on a channel",
      "  Refuses a version not higher than every earlier release of the app, and a data model\n"
      "  change against the channel's current release unless the bundle lists the old model in\n"
      "  reads_models or --breaking is given (devices then sync offline data before switching).\n"
      "  Defaults: --channel stable --rollout 100.\n" },
    { "promote", cmd_promote, "REPO --from C1 --to C2 [--app A] [--version V] [--rollout P]",
      "offer a channel's release on another channel", "" },
    { "rollout", cmd_rollout, "REPO --channel C --percent P [--app A] [--version V]",
      "change the share of devices a release is offered to", "" },
    { "yank", cmd_yank, "REPO --version V [--app A]", "withdraw a release", "" },
    { "republish", cmd_republish, "REPO --version OLD --as NEW [--channel C] [--app A]",
      "server-side rollback: publish an old release's content under a new, higher version", "" },
    { "refresh", cmd_refresh, "REPO [--snapshot]",
      "re-sign the timestamp (and snapshot) before they expire; needs only the online keys", "" },
    { "rotate", cmd_rotate, "REPO --role ROLE [--key FILE]... [--threshold T]",
      "replace a role's keys through a new root version",
      "  The new root is signed by the old root threshold and the new one. For targets,\n"
      "  snapshot and timestamp, --key gives the new key files (else one is generated in\n"
      "  REPO/keys). For root, --key files are the new root keys; with no --key, root is only\n"
      "  renewed (new version and expiry).\n" },
    { "list", cmd_list, "REPO [--json]", "show metadata versions, releases and channels", "" },
    { "verify", cmd_verify, "REPO [--json]",
      "verify the served repository as a device would, bundles included", "" },
    { "inspect", cmd_inspect, "FILE [--repo REPO] [--json]",
      "show a bundle's metadata and check every file in it", "" },
};

static void
usage(FILE *f)
{
    size_t i;

    fprintf(f, "usage: ota-publish COMMAND [options]\n\ncommands:\n");
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'ota-publish COMMAND --help' for details. Key passphrase: $OTA_PASSPHRASE, "
               "--passphrase-fd N, or the terminal.\n");
}

int
main(int argc, char **argv)
{
    size_t i;

    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("ota-publish %s\n", OTA_PUBLISH_VERSION);
        return 0;
    }
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            current = &commands[i];
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "ota-publish: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
