/* The `tuf` command: TUF conformance suite client protocol. See cli_tuf.h. */
#include "cli_tuf.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ota/fetch.h"
#include "ota/fsutil.h"
#include "ota/hash.h"
#include "ota/tuf.h"
#include "ota/tufclient.h"

#define MAX_TARGET_NAMES 256
/* A target's file name in TARGET_DIR, short enough for the temp file name beside it. */
#define TARGET_FILE_MAX (255 - 16)

struct args {
    const char *metadata_dir;
    const char *metadata_url;
    const char *target_dir;
    const char *target_base_url;
    const char *names[MAX_TARGET_NAMES];
    size_t      nnames;
    const char *command;
    const char *trusted_root;
};

static const char usage_text[] =
    "usage: tuf --metadata-dir DIR init TRUSTED_ROOT\n"
    "       tuf --metadata-dir DIR --metadata-url URL refresh\n"
    "       tuf --metadata-dir DIR --metadata-url URL --target-name PATH [--target-name PATH...]\n"
    "           --target-dir DIR --target-base-url URL download\n";

static int usage(const char *fmt, ...) OTA_PRINTF(1, 2);

static int
usage(const char *fmt, ...)
{
    va_list ap;

    fputs("tuf: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fputs(usage_text, stderr);
    return 1;
}

static int
fail(const char *what, ota_err rc, const struct ota_diag *d)
{
    fprintf(stderr, "tuf: %s failed: %s (%s)\n", what, d->msg[0] ? d->msg : ota_err_str(rc),
            ota_err_name(rc));
    return 1;
}

/* Options in any order, "--name value" or "--name=value". Returns 0 or an exit status. */
static int
parse_args(int argc, char **argv, struct args *a)
{
    int i;

    memset(a, 0, sizeof *a);
    for (i = 1; i < argc; i++) {
        const char  *arg = argv[i], *val, *eq;
        const char **slot = NULL;
        size_t       nlen;

        if (strncmp(arg, "--", 2) != 0) {
            if (a->command == NULL)
                a->command = arg;
            else if (strcmp(a->command, "init") == 0 && a->trusted_root == NULL)
                a->trusted_root = arg;
            else
                return usage("unexpected argument '%s'", arg);
            continue;
        }
        eq = strchr(arg, '=');
        nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (eq != NULL)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else
            return usage("option '%s' needs a value", arg);
#define IS(opt) (nlen == sizeof(opt) - 1 && strncmp(arg, opt, nlen) == 0)
        if (IS("--metadata-dir"))
            slot = &a->metadata_dir;
        else if (IS("--metadata-url"))
            slot = &a->metadata_url;
        else if (IS("--target-dir"))
            slot = &a->target_dir;
        else if (IS("--target-base-url"))
            slot = &a->target_base_url;
        else if (IS("--target-name")) {
            if (a->nnames == MAX_TARGET_NAMES)
                return usage("more than %d target names", MAX_TARGET_NAMES);
            a->names[a->nnames++] = val;
            continue;
        } else
            return usage("unknown option '%s'", arg);
#undef IS
        if (*slot != NULL)
            return usage("option '%s' given twice", arg);
        *slot = val;
    }
    if (a->command == NULL)
        return usage("no command given");
    if (a->metadata_dir == NULL)
        return usage("--metadata-dir is required");
    return 0;
}

static ota_err
open_refreshed(const struct args *a, struct ota_tuf_client **out, struct ota_diag *d)
{
    struct ota_tuf_client_opts o;
    struct ota_tuf_client     *c = NULL;
    ota_err                    rc;

    memset(&o, 0, sizeof o);
    o.metadata_dir = a->metadata_dir;
    o.metadata_url = a->metadata_url;
    rc = ota_tuf_client_open(&o, &c, d);
    if (rc == OTA_OK)
        rc = ota_tuf_client_refresh(c, d);
    if (rc != OTA_OK) {
        ota_tuf_client_free(c);
        return rc;
    }
    *out = c;
    return OTA_OK;
}

/* A copy already in place with the signed length and digest is not fetched again. */
static int
is_cached(const char *path, const struct ota_tuf_target *t)
{
    struct stat        st;
    unsigned char      h[OTA_SHA256_LEN];
    unsigned long long len = 0;

    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != t->length)
        return 0;
    if (ota_sha256_file(path, h, &len, NULL) != OTA_OK)
        return 0;
    return len == t->length && memcmp(h, t->sha256, sizeof h) == 0;
}

struct sink {
    int               fd;
    struct ota_sha256 sha;
};

static ota_err
sink_write(void *ctx, const void *buf, size_t len, struct ota_diag *d)
{
    struct sink *s = ctx;

    ota_sha256_update(&s->sha, buf, len);
    return ota_write_all(s->fd, buf, len, d);
}

/* Fetch into a temp file beside dest, verifying length and digest as the bytes arrive (the
 * fetch never delivers more than the signed length); rename only a verified file. */
static ota_err
download_one(struct ota_tuf_client *c, const struct args *a, const char *name, struct ota_diag *d)
{
    struct ota_tuf_target t;
    struct sink           s = {-1, {NULL}};
    char                  fname[TARGET_FILE_MAX + 1], dest[PATH_MAX], tmp[PATH_MAX];
    unsigned char         h[OTA_SHA256_LEN];
    uint64_t              got = 0;
    char                 *url = NULL;
    ota_err               rc;

    rc = ota_tuf_client_find_target(c, name, &t, d);
    if (rc != OTA_OK)
        return rc;
    if (ota_tuf_quote(name, "", fname, sizeof fname, NULL) != OTA_OK)
        return ota_diag_set(d, OTA_E_TOO_BIG, "target path '%.64s...' is too long for a file name",
                            name);
    rc = ota_path_fmt(dest, sizeof dest, d, "%s/%s", a->target_dir, fname);
    if (rc != OTA_OK || is_cached(dest, &t))
        return rc;
    url = ota_tuf_client_target_url(c, a->target_base_url, &t);
    if (url == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    rc = ota_sha256_init(&s.sha);
    if (rc != OTA_OK) {
        rc = ota_diag_set(d, rc, "cannot start a digest");
        goto out;
    }
    s.fd = ota_tmpfile_beside(dest, 0644, tmp, sizeof tmp, d);
    if (s.fd < 0) {
        rc = d->sys_errno ? OTA_E_IO : OTA_E_TOO_BIG;
        goto out;
    }
    rc = ota_fetch_stream(NULL, url, 0, t.length, sink_write, &s, &got, d);
    if (rc == OTA_OK && got != t.length)
        rc = ota_diag_set(d, OTA_E_LENGTH, "'%s' is %llu bytes, expected %llu", url,
                          (unsigned long long)got, (unsigned long long)t.length);
    if (rc == OTA_OK) {
        ota_sha256_final(&s.sha, h);
        if (memcmp(h, t.sha256, sizeof h) != 0)
            rc = ota_diag_set(d, OTA_E_DIGEST, "'%s' does not match its signed sha256", url);
    }
    if (rc == OTA_OK) {
        rc = ota_commit_tmpfile(s.fd, tmp, dest, d); /* closes fd, removes tmp on failure */
        s.fd = -1;
    }
out:
    if (s.fd >= 0) {
        close(s.fd);
        unlink(tmp);
    }
    ota_sha256_free(&s.sha);
    free(url);
    return rc;
}

static int
cmd_init(const struct args *a)
{
    struct ota_diag d = {0};
    ota_err         rc;

    if (a->trusted_root == NULL)
        return usage("init needs TRUSTED_ROOT");
    rc = ota_tuf_client_init(a->metadata_dir, a->trusted_root, &d);
    return rc == OTA_OK ? 0 : fail("init", rc, &d);
}

static int
cmd_refresh(const struct args *a)
{
    struct ota_tuf_client *c = NULL;
    struct ota_diag        d = {0};
    ota_err                rc;

    if (a->metadata_url == NULL)
        return usage("refresh needs --metadata-url");
    rc = open_refreshed(a, &c, &d);
    ota_tuf_client_free(c);
    return rc == OTA_OK ? 0 : fail("refresh", rc, &d);
}

static int
cmd_download(const struct args *a)
{
    struct ota_tuf_client *c = NULL;
    struct ota_diag        d = {0};
    size_t                 i;
    ota_err                rc;

    if (a->metadata_url == NULL || a->target_dir == NULL || a->target_base_url == NULL ||
        a->nnames == 0)
        return usage("download needs --metadata-url, --target-name, --target-dir and "
                     "--target-base-url");
    rc = open_refreshed(a, &c, &d);
    if (rc != OTA_OK)
        return fail("refresh", rc, &d);
    rc = ota_mkdir_p(a->target_dir, 0755, &d);
    for (i = 0; rc == OTA_OK && i < a->nnames; i++) {
        rc = download_one(c, a, a->names[i], &d);
        if (rc != OTA_OK)
            ota_diag_prefix(&d, "target '%.128s'", a->names[i]);
    }
    ota_tuf_client_free(c);
    return rc == OTA_OK ? 0 : fail("download", rc, &d);
}

int
ota_agent_cli_tuf(int argc, char **argv)
{
    struct args a;
    int         st;

    st = parse_args(argc, argv, &a);
    if (st != 0)
        return st;
    if (strcmp(a.command, "init") == 0)
        return cmd_init(&a);
    if (a.trusted_root != NULL)
        return usage("unexpected argument '%s'", a.trusted_root);
    if (strcmp(a.command, "refresh") == 0)
        return cmd_refresh(&a);
    if (strcmp(a.command, "download") == 0)
        return cmd_download(&a);
    return usage("unknown command '%s'", a.command);
}
