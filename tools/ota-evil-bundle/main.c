/* ota-evil-bundle: a TEST TOOL. Writes hostile bundles: zstd-compressed tar streams whose
 * manifest is validly signed (with a key file, e.g. the repository's targets key, or a raw
 * seed), so that only the content is hostile and a reader must catch it by the bundle rules
 * (formats/bundle.md section 4), not by the signature. Never use its output anywhere but in
 * tests.
 *
 *   ota-evil-bundle --kind KIND --out FILE --release JSON (--key KEYFILE | --seed HEX64)
 *                   [--escape PATH] [--bomb-bytes N]
 *
 * --key loads a key file through keys/ota/signer.h (passphrase from $OTA_PASSPHRASE when the
 * file is encrypted). --release is the release object (formats/release.md). The bundle holds
 * a small app (assets/, assets/app.json, index.js) and, by KIND:
 *
 *   valid              nothing hostile (proves the generator writes bundles a device takes)
 *   dotdot             a member named --escape (default "../../../pwned"), listed in the
 *                      manifest under a harmless name
 *   dotdot-manifest    the same name in the manifest too
 *   absolute           a member named --escape (an absolute path), harmless in the manifest
 *   absolute-manifest  the absolute name in the manifest too
 *   symlink            "link" is a symbolic link to --escape, then "link/pwned" is a file
 *   hardlink           "hl" is a hard link to --escape (a file outside)
 *   device             "dev" is a character device (1, 3)
 *   setuid             "index.js" has mode 04755 in the tar (0755 in the manifest)
 *   duplicate          "index.js" (the last entry) twice in the tar
 *   duplicate-mid      "assets/app.json" (an entry in the middle) twice in the tar
 *   oversize           "index.js" has 4096 more bytes in the tar than the manifest declares
 *   bomb               --bomb-bytes (default 2 GiB) of zeros after the end of the tar, inside
 *                      the zstd stream: a few hundred KiB that inflate to gigabytes
 *   window             a valid tar compressed with a 2^27-byte zstd window
 *   truncated          a valid bundle cut at 60 % of its length
 *   manifest-changed   the manifest's release notes changed after signing
 *   payload-changed    one byte of "index.js" changed after its digest was taken
 *   extra-entry        a member the manifest does not list
 *   missing-entry      a manifest entry the tar does not hold */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "ota/bundle.h"
#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/hash.h"
#include "ota/keys.h"
#include "ota/signer.h"

#define ENTRIES_MAX 16

/* One manifest entry and what the tar member for it really is. */
struct entry {
    char     path[1100]; /* in the manifest */
    int      is_dir;
    unsigned mode; /* in the manifest */
    char    *data; /* in the manifest (digest and size) */
    size_t   size;
    int      listed; /* in the manifest */
    int      in_tar; /* a member is written for it */
    /* the tar member, where it differs */
    char        tar_name[1100];
    unsigned    tar_type; /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR; 0: as listed */
    unsigned    tar_mode; /* 0: as listed */
    const char *link;     /* symlink target, or hard link target when hardlink is set */
    int         hardlink;
    char       *tar_data; /* NULL: data */
    size_t      tar_size;
    int         twice; /* written twice */
};

struct out {
    FILE      *f;
    ZSTD_CCtx *z;
    char       err[256];
};

struct signer {
    struct ota_seckey *key; /* --key */
    unsigned char      sk[crypto_sign_SECRETKEYBYTES];
    struct ota_pubkey  pk; /* --seed */
};

static int die(const char *fmt, ...) OTA_PRINTF(1, 2);

static int
die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "ota-evil-bundle: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* ---- zstd output ------------------------------------------------------------------------- */

static int
z_feed(struct out *o, const void *buf, size_t len, ZSTD_EndDirective how)
{
    unsigned char obuf[1 << 16];
    ZSTD_inBuffer in = {buf, len, 0};
    size_t        left;

    do {
        ZSTD_outBuffer ob = {obuf, sizeof obuf, 0};
        left = ZSTD_compressStream2(o->z, &ob, &in, how);
        if (ZSTD_isError(left)) {
            snprintf(o->err, sizeof o->err, "zstd: %s", ZSTD_getErrorName(left));
            return -1;
        }
        if (ob.pos > 0 && fwrite(obuf, 1, ob.pos, o->f) != ob.pos) {
            snprintf(o->err, sizeof o->err, "write: %s", strerror(errno));
            return -1;
        }
    } while (how == ZSTD_e_end ? left != 0 : in.pos < in.size);
    return 0;
}

static la_ssize_t
tar_write(struct archive *a, void *ctx, const void *buf, size_t len)
{
    (void)a;
    return z_feed(ctx, buf, len, ZSTD_e_continue) == 0 ? (la_ssize_t)len : -1;
}

/* ---- manifest ---------------------------------------------------------------------------- */

static int
cmp_entry(const void *x, const void *y)
{
    return strcmp(((const struct entry *)x)->path, ((const struct entry *)y)->path);
}

static ota_err
sign(struct signer *s, const char *msg, size_t len, json_t *sigs, struct ota_diag *d)
{
    unsigned char sig[crypto_sign_BYTES];
    char          hex[2 * crypto_sign_BYTES + 1];

    if (s->key != NULL)
        return ota_seckey_sign(s->key, msg, len, sigs, d);
    crypto_sign_detached(sig, NULL, (const unsigned char *)msg, len, s->sk);
    ota_hex_encode(sig, sizeof sig, hex);
    if (json_array_append_new(sigs, json_pack("{s:s, s:s}", "keyid", s->pk.keyid, "sig", hex)))
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    return OTA_OK;
}

/* The signed manifest document of the listed entries, canonical JSON in *out. */
static ota_err
manifest(struct entry *e, size_t n, json_t *release, struct signer *s, int change_after, char **out,
         size_t *out_len, struct ota_diag *d)
{
    json_t *files = json_array(), *signed_ = NULL, *doc = NULL, *sigs = json_array();
    char   *canon = NULL, hex[OTA_SHA256_HEX];
    size_t  len;
    ota_err rc;

    for (size_t i = 0; i < n; i++) {
        if (!e[i].listed)
            continue;
        if (e[i].is_dir) {
            json_array_append_new(files, json_pack("{s:i, s:s, s:s}", "mode", e[i].mode, "path",
                                                   e[i].path, "type", "dir"));
            continue;
        }
        if (ota_sha256_hex(e[i].data, e[i].size, hex) != OTA_OK) {
            rc = ota_diag_set(d, OTA_E_CRYPTO, "cannot hash");
            goto out;
        }
        json_array_append_new(files, json_pack("{s:i, s:s, s:s, s:I, s:s}", "mode", e[i].mode,
                                               "path", e[i].path, "sha256", hex, "size",
                                               (json_int_t)e[i].size, "type", "file"));
    }
    signed_ = json_pack("{s:s, s:o, s:O, s:i}", "_type", "ota-bundle-manifest", "files", files,
                        "release", release, "spec_version", 1);
    files = NULL;
    if (signed_ == NULL || sigs == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    rc = ota_cjson_encode(signed_, OTA_BUNDLE_MANIFEST_MAX, &canon, &len, d);
    if (rc == OTA_OK)
        rc = sign(s, canon, len, sigs, d);
    if (rc != OTA_OK)
        goto out;
    if (change_after) /* the signature no longer covers what is shipped */
        json_object_set_new(json_object_get(signed_, "release"), "notes",
                            json_string("changed after signing"));
    doc = json_pack("{s:O, s:O}", "signatures", sigs, "signed", signed_);
    if (doc == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    rc = ota_cjson_encode(doc, OTA_BUNDLE_MANIFEST_MAX, out, out_len, d);
out:
    free(canon);
    json_decref(files);
    json_decref(signed_);
    json_decref(sigs);
    json_decref(doc);
    return rc;
}

/* ---- tar --------------------------------------------------------------------------------- */

static int
tar_member(struct archive *a, const char *name, unsigned type, unsigned mode, const char *data,
           size_t size, const char *link, int hardlink)
{
    struct archive_entry *ae = archive_entry_new();
    int                   ok;

    if (ae == NULL)
        return -1;
    archive_entry_set_pathname(ae, name);
    archive_entry_set_filetype(ae, type);
    archive_entry_set_perm(ae, mode & 07777);
    archive_entry_set_uid(ae, 0);
    archive_entry_set_gid(ae, 0);
    archive_entry_set_mtime(ae, 0, 0);
    if (type == AE_IFREG && !hardlink)
        archive_entry_set_size(ae, (la_int64_t)size);
    else
        archive_entry_set_size(ae, 0);
    if (type == AE_IFLNK)
        archive_entry_set_symlink(ae, link);
    if (hardlink)
        archive_entry_set_hardlink(ae, link);
    if (type == AE_IFCHR) {
        archive_entry_set_rdevmajor(ae, 1);
        archive_entry_set_rdevminor(ae, 3);
    }
    ok = archive_write_header(a, ae) == ARCHIVE_OK;
    if (ok && type == AE_IFREG && !hardlink && size > 0)
        ok = archive_write_data(a, data, size) == (la_ssize_t)size;
    archive_entry_free(ae);
    return ok ? 0 : -1;
}

static int
write_tar(struct out *o, const char *man, size_t man_len, struct entry *e, size_t n)
{
    struct archive *a = archive_write_new();
    int             rc = -1;

    if (a == NULL || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_add_filter_none(a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open(a, o, NULL, tar_write, NULL) != ARCHIVE_OK)
        goto out;
    if (tar_member(a, OTA_BUNDLE_MANIFEST_NAME, AE_IFREG, 0644, man, man_len, NULL, 0) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const struct entry *x = &e[i];
        unsigned            type = x->tar_type ? x->tar_type : x->is_dir ? AE_IFDIR : AE_IFREG;
        unsigned            mode = x->tar_mode ? x->tar_mode : x->mode;
        const char         *name = x->tar_name[0] ? x->tar_name : x->path;
        const char         *data = x->tar_data ? x->tar_data : x->data;
        size_t              size = x->tar_data ? x->tar_size : x->size;

        if (!x->in_tar)
            continue;
        for (int k = 0; k < (x->twice ? 2 : 1); k++)
            if (tar_member(a, name, type, mode, data, size, x->link, x->hardlink) != 0)
                goto out;
    }
    if (archive_write_close(a) != ARCHIVE_OK)
        goto out;
    rc = 0;
out:
    if (rc != 0 && a != NULL && o->err[0] == '\0')
        snprintf(o->err, sizeof o->err, "tar: %s",
                 archive_error_string(a) ? archive_error_string(a) : "cannot write");
    archive_write_free(a);
    return rc;
}

/* ---- main -------------------------------------------------------------------------------- */

static struct entry *
add(struct entry *e, size_t *n, const char *path, int is_dir, unsigned mode, const char *text)
{
    struct entry *x = &e[(*n)++];

    memset(x, 0, sizeof *x);
    snprintf(x->path, sizeof x->path, "%s", path);
    x->is_dir = is_dir;
    x->mode = mode;
    x->data = strdup(text ? text : "");
    x->size = strlen(x->data);
    x->listed = 1;
    x->in_tar = 1;
    return x;
}

static int
load_signer(const char *key_file, const char *seed_hex, struct signer *s)
{
    struct ota_diag d;
    unsigned char   seed[32], pk[crypto_sign_PUBLICKEYBYTES];
    char           *pw = NULL;
    int             enc;

    memset(&d, 0, sizeof d);
    if (key_file != NULL) {
        struct ota_passphrase_src src = {-1, "OTA_PASSPHRASE", 0};
        ota_err                   rc = OTA_OK;
        enc = ota_seckey_file_encrypted(key_file);
        if (enc < 0)
            return die("cannot read key file '%s'", key_file);
        if (enc)
            rc = ota_passphrase_get(&src, "passphrase", 0, &pw, &d);
        if (rc == OTA_OK)
            rc = ota_seckey_load(key_file, pw, &s->key, &d);
        ota_passphrase_free(pw);
        return rc == OTA_OK ? 0 : die("%s", d.msg);
    }
    if (ota_hex_decode(seed_hex, seed, sizeof seed) != OTA_OK)
        return die("--seed wants 64 hex digits, not '%s'", seed_hex);
    crypto_sign_seed_keypair(pk, s->sk, seed);
    sodium_memzero(seed, sizeof seed);
    if (ota_pubkey_from_ed25519(pk, &s->pk, &d) != OTA_OK)
        return die("%s", d.msg);
    return 0;
}

int
main(int argc, char **argv)
{
    const char *kind = NULL, *out_path = NULL, *rel_text = NULL, *key_file = NULL, *seed_hex = NULL,
               *escape = NULL;
    unsigned long long bomb = 2ULL << 30;
    struct entry       e[ENTRIES_MAX];
    size_t             n = 0, man_len = 0;
    struct signer      s;
    struct out         o;
    struct ota_diag    d;
    json_t            *rel = NULL;
    const char        *version;
    char              *man = NULL, text[256];
    struct entry      *x;
    int                status = 1;

    memset(&s, 0, sizeof s);
    memset(&o, 0, sizeof o);
    memset(&d, 0, sizeof d);
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (strcmp(a, "--kind") == 0)
            kind = v;
        else if (strcmp(a, "--out") == 0)
            out_path = v;
        else if (strcmp(a, "--release") == 0)
            rel_text = v;
        else if (strcmp(a, "--key") == 0)
            key_file = v;
        else if (strcmp(a, "--seed") == 0)
            seed_hex = v;
        else if (strcmp(a, "--escape") == 0)
            escape = v;
        else if (strcmp(a, "--bomb-bytes") == 0)
            bomb = strtoull(v, NULL, 10);
        else
            return die("unknown option '%s'", a), 2;
    }
    if (argc % 2 == 0 || kind == NULL || out_path == NULL || rel_text == NULL ||
        (key_file == NULL) == (seed_hex == NULL)) {
        fputs("usage: ota-evil-bundle --kind KIND --out FILE --release JSON"
              " (--key KEYFILE | --seed HEX64)\n"
              "                       [--escape PATH] [--bomb-bytes N]\n"
              "A test tool: writes hostile bundles (see its source for the kinds).\n",
              stderr);
        return 2;
    }
    if (sodium_init() < 0)
        return die("%s", "cannot initialise libsodium");
    if (ota_cjson_parse(rel_text, strlen(rel_text), OTA_JSON_MAX, &rel, &d) != OTA_OK)
        return die("--release: %s", d.msg);
    version = json_string_value(json_object_get(rel, "version"));
    if (load_signer(key_file, seed_hex, &s) != 0)
        goto out;

    snprintf(text, sizeof text, "{\"version\":\"%s\",\"kind\":\"%s\"}\n", version ? version : "",
             kind);
    add(e, &n, "assets", 1, 0755, NULL);
    add(e, &n, "assets/app.json", 0, 0644, text);
    snprintf(text, sizeof text, "console.log('%s');\n", kind);
    x = add(e, &n, "index.js", 0, 0644, text);

    if (strcmp(kind, "dotdot") == 0 || strcmp(kind, "dotdot-manifest") == 0 ||
        strcmp(kind, "absolute") == 0 || strcmp(kind, "absolute-manifest") == 0) {
        const char *name = escape ? escape : "../../../pwned";
        if (strncmp(kind, "absolute", 8) == 0 && name[0] != '/')
            return die("%s wants an absolute --escape", kind), 2;
        x = add(e, &n, strstr(kind, "-manifest") ? name : "zz-escape", 0, 0644, "pwned\n");
        snprintf(x->tar_name, sizeof x->tar_name, "%s", name);
    } else if (strcmp(kind, "symlink") == 0) {
        x = add(e, &n, "link", 1, 0755, NULL);
        x->tar_type = AE_IFLNK;
        x->tar_mode = 0777;
        x->link = escape ? escape : "../../..";
        add(e, &n, "link/pwned", 0, 0644, "pwned\n");
    } else if (strcmp(kind, "hardlink") == 0) {
        x = add(e, &n, "hl", 0, 0644, NULL);
        x->hardlink = 1;
        x->link = escape ? escape : "../../../victim";
    } else if (strcmp(kind, "device") == 0) {
        x = add(e, &n, "dev", 0, 0644, NULL);
        x->tar_type = AE_IFCHR;
    } else if (strcmp(kind, "setuid") == 0) {
        x->mode = 0755;
        x->tar_mode = 04755;
    } else if (strcmp(kind, "duplicate") == 0) {
        x->twice = 1;
    } else if (strcmp(kind, "duplicate-mid") == 0) {
        e[1].twice = 1; /* assets/app.json, between assets/ and index.js */
    } else if (strcmp(kind, "oversize") == 0) {
        x->tar_size = x->size + 4096;
        x->tar_data = calloc(1, x->tar_size);
        if (x->tar_data == NULL)
            goto out;
        memcpy(x->tar_data, x->data, x->size);
    } else if (strcmp(kind, "payload-changed") == 0) {
        x->tar_size = x->size;
        x->tar_data = strdup(x->data);
        if (x->tar_data == NULL)
            goto out;
        x->tar_data[0] ^= 0x20;
    } else if (strcmp(kind, "extra-entry") == 0) {
        x = add(e, &n, "zz-extra", 0, 0644, "not in the manifest\n");
        x->listed = 0;
    } else if (strcmp(kind, "missing-entry") == 0) {
        x = add(e, &n, "zz-missing", 0, 0644, "listed, never sent\n");
        x->in_tar = 0;
    } else if (strcmp(kind, "valid") != 0 && strcmp(kind, "bomb") != 0 &&
               strcmp(kind, "window") != 0 && strcmp(kind, "truncated") != 0 &&
               strcmp(kind, "manifest-changed") != 0) {
        die("unknown kind '%s'", kind);
        status = 2;
        goto out;
    }
    qsort(e, n, sizeof e[0], cmp_entry);
    if (manifest(e, n, rel, &s, strcmp(kind, "manifest-changed") == 0, &man, &man_len, &d) !=
        OTA_OK) {
        die("manifest: %s", d.msg);
        goto out;
    }

    o.f = fopen(out_path, "wbe");
    o.z = ZSTD_createCCtx();
    if (o.f == NULL || o.z == NULL) {
        die("cannot create '%s'", out_path);
        goto out;
    }
    ZSTD_CCtx_setParameter(o.z, ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setParameter(o.z, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(o.z, ZSTD_c_contentSizeFlag, 0);
    if (strcmp(kind, "window") == 0)
        ZSTD_CCtx_setParameter(o.z, ZSTD_c_windowLog, 27);
    if (write_tar(&o, man, man_len, e, n) != 0)
        goto fail;
    if (strcmp(kind, "bomb") == 0) {
        static const unsigned char zeros[1 << 20];
        for (unsigned long long done = 0; done < bomb; done += sizeof zeros) {
            size_t k = bomb - done < sizeof zeros ? (size_t)(bomb - done) : sizeof zeros;
            if (z_feed(&o, zeros, k, ZSTD_e_continue) != 0)
                goto fail;
        }
    }
    if (z_feed(&o, NULL, 0, ZSTD_e_end) != 0)
        goto fail;
    if (fflush(o.f) != 0 || fsync(fileno(o.f)) != 0) {
        snprintf(o.err, sizeof o.err, "write: %s", strerror(errno));
        goto fail;
    }
    if (strcmp(kind, "truncated") == 0) {
        long size = ftell(o.f);
        if (size <= 0 || ftruncate(fileno(o.f), size * 6 / 10) != 0) {
            snprintf(o.err, sizeof o.err, "truncate: %s", strerror(errno));
            goto fail;
        }
    }
    status = 0;
    goto out;
fail:
    die("%s", o.err);
out:
    if (o.f != NULL) {
        if (fclose(o.f) != 0 && status == 0)
            status = die("cannot write '%s'", out_path);
        if (status != 0)
            unlink(out_path); /* never leave half a bundle that a test might take */
    }
    ZSTD_freeCCtx(o.z);
    for (size_t i = 0; i < n; i++) {
        free(e[i].data);
        free(e[i].tar_data);
    }
    free(man);
    json_decref(rel);
    ota_seckey_free(s.key);
    sodium_memzero(&s, sizeof s);
    return status;
}
