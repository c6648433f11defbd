/* Bundle container: pack/read round trips, byte-stable output, the spec's test vector, pack
 * refusals, and hostile bundles built here with libarchive + libzstd and a correctly signed
 * manifest. Every failure asserts the exact ota_err code and that nothing exists outside
 * dest_dir. Keys come from fixed seeds through libsodium directly. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <zstd.h>

#include "ota/bundle.h"
#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/hash.h"
#include "ota/keys.h"

/* ---- fixture: a temp root T with src/, out/dest/ and the bundle T/b.ota ---- */

static char T[256];

static const char *
P(const char *fmt, ...)
{
    static char ring[8][PATH_MAX];
    static int  k;
    char       *b = ring[k++ % 8];
    char        rel[2048];
    va_list     ap;

    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    snprintf(b, PATH_MAX, "%s/%s", T, rel);
    return b;
}

static int
setup(void **state)
{
    const char *tmp = getenv("TMPDIR");

    (void)state;
    snprintf(T, sizeof T, "%s/ota-bundle-XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(T) == NULL)
        return -1;
    if (mkdir(P("src"), 0755) != 0 || mkdir(P("out"), 0755) != 0 ||
        mkdir(P("out/dest"), 0755) != 0)
        return -1;
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    return ota_rm_rf(T, NULL) == OTA_OK ? 0 : -1;
}

static void
put(const char *rel, const void *data, size_t len, mode_t mode)
{
    const char *p = P("%s", rel);
    int         fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(ota_write_all(fd, data, len, NULL), OTA_OK);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(close(fd), 0);
}

static void
mkd(const char *rel)
{
    assert_int_equal(mkdir(P("%s", rel), 0755), 0);
}

/* Sorted names in a directory joined with ',' ("" when empty). */
static const char *
names(const char *dir)
{
    static char    out[4096];
    char          *v[256];
    int            n = 0, i, j;
    DIR           *d = opendir(dir);
    struct dirent *e;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL && n < 256)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            v[n++] = strdup(e->d_name);
    closedir(d);
    for (i = 0; i < n; i++)
        for (j = i + 1; j < n; j++)
            if (strcmp(v[i], v[j]) > 0) {
                char *t = v[i];
                v[i] = v[j];
                v[j] = t;
            }
    out[0] = '\0';
    for (i = 0; i < n; i++) {
        strcat(out, i ? "," : "");
        strcat(out, v[i]);
        free(v[i]);
    }
    return out;
}

/* Nothing was created beside dest (an escape would land in out/ or above). */
static void
assert_contained(void)
{
    assert_string_equal(names(P("out")), "dest");
}

/* ---- keys and callbacks ---- */

struct key {
    unsigned char     sk[crypto_sign_SECRETKEYBYTES];
    struct ota_pubkey pub;
};

static struct key K1, K2;

/* Key from the seed seed_byte, seed_byte+1, ..., seed_byte+31. */
static int
make_key(struct key *k, unsigned char seed_byte)
{
    unsigned char seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES];
    size_t        i;

    for (i = 0; i < sizeof seed; i++)
        seed[i] = (unsigned char)(seed_byte + i);
    if (crypto_sign_seed_keypair(pk, k->sk, seed) != 0)
        return -1;
    return ota_pubkey_from_ed25519(pk, &k->pub, NULL) == OTA_OK ? 0 : -1;
}

static ota_err
t_sign(void *ctx, const void *msg, size_t len, json_t *sigs, struct ota_diag *d)
{
    struct key   *k = ctx;
    unsigned char sig[crypto_sign_BYTES];
    char          hex[2 * crypto_sign_BYTES + 1];

    crypto_sign_detached(sig, NULL, msg, len, k->sk);
    ota_hex_encode(sig, sizeof sig, hex);
    if (json_array_append_new(sigs, json_pack("{s:s, s:s}", "keyid", k->pub.keyid, "sig", hex)))
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    return OTA_OK;
}

static ota_err
t_verify(void *ctx, const void *msg, size_t len, const json_t *sigs, struct ota_diag *d)
{
    struct key                *k = ctx;
    const struct ota_role_keys role = { "targets", &k->pub, 1, 1 };

    return ota_threshold_verify(&role, sigs, msg, len, NULL, d);
}

static struct ota_release REL;

static int
make_release(void)
{
    static char models[1][OTA_ID_MAX + 1] = { "m1" };

    memset(&REL, 0, sizeof REL);
    strcpy(REL.app, "com.example.field");
    strcpy(REL.version, "1.4.0");
    if (ota_version_parse(REL.version, &REL.v) != OTA_OK)
        return -1;
    strcpy(REL.model, "m2");
    REL.reads_models = models;
    REL.n_reads_models = 1;
    strcpy(REL.runtime_min, "3.0");
    strcpy(REL.runtime_max, "3.9");
    strcpy(REL.min_agent, "0.1");
    REL.notes = (char *)"fixes";
    return 0;
}

static int
group_setup(void **state)
{
    (void)state;
    if (sodium_init() < 0 || make_key(&K1, 1) != 0 || make_key(&K2, 101) != 0)
        return -1;
    return make_release();
}

static ota_err
pack(const char *src, const char *out, int threads, struct ota_pack_result *res,
     struct ota_diag *d)
{
    struct ota_pack_opts o;

    memset(&o, 0, sizeof o);
    o.src_dir = src;
    o.out_path = out;
    o.release = &REL;
    o.sign = t_sign;
    o.sign_ctx = &K1;
    o.level = 3;
    o.threads = threads;
    return ota_bundle_pack(&o, res, d);
}

static void
read_opts(struct ota_bundle_read_opts *o, const char *dest)
{
    memset(o, 0, sizeof *o);
    o->verify = t_verify;
    o->verify_ctx = &K1;
    o->dest_dir = dest;
}

/* Read T/b.ota into out/dest (or verify only) with K1. */
static ota_err
read_b(const char *dest, struct ota_manifest **m, struct ota_diag *d)
{
    struct ota_bundle_read_opts o;

    read_opts(&o, dest);
    return ota_bundle_read_file(P("b.ota"), &o, m, d);
}

/* ---- tree comparison ---- */

static void
compare_file(const char *a, const char *b)
{
    unsigned char *x = NULL, *y = NULL;
    size_t         xl = 0, yl = 0;

    assert_int_equal(ota_read_file(a, 64u << 20, &x, &xl, NULL), OTA_OK);
    assert_int_equal(ota_read_file(b, 64u << 20, &y, &yl, NULL), OTA_OK);
    assert_int_equal(xl, yl);
    assert_memory_equal(x, y, xl);
    free(x);
    free(y);
}

/* b must hold exactly what a holds: same names, types and contents; modes normalised to
 * 0755 (dirs, executables) or 0644. Symlinks in a are files in b. */
static void
compare_trees(const char *a, const char *b)
{
    char  la[4096], lb[4096], *save = NULL, *tok;
    char  pa[PATH_MAX], pb[PATH_MAX];

    snprintf(la, sizeof la, "%s", names(a));
    snprintf(lb, sizeof lb, "%s", names(b));
    assert_string_equal(la, lb);
    for (tok = strtok_r(la, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        struct stat sa, sb;
        snprintf(pa, sizeof pa, "%s/%s", a, tok);
        snprintf(pb, sizeof pb, "%s/%s", b, tok);
        assert_int_equal(stat(pa, &sa), 0);
        assert_int_equal(lstat(pb, &sb), 0);
        if (S_ISDIR(sa.st_mode)) {
            assert_true(S_ISDIR(sb.st_mode));
            assert_int_equal(sb.st_mode & 07777, 0755);
            compare_trees(pa, pb);
        } else {
            assert_true(S_ISREG(sb.st_mode));
            assert_int_equal(sb.st_mode & 07777, (sa.st_mode & 0111) ? 0755 : 0644);
            compare_file(pa, pb);
        }
    }
}

static void
fill_tree(void)
{
    static const char sh[] = "#!/bin/sh\necho ok\n";
    unsigned char    *big = malloc(1u << 20);
    uint32_t          x = 12345;
    size_t            i;

    assert_non_null(big);
    for (i = 0; i < (1u << 20); i++) {
        x = x * 1103515245u + 12345u;
        big[i] = (i & 4096) ? (unsigned char)(x >> 24) : (unsigned char)('a' + i % 26);
    }
    mkd("src/a");
    mkd("src/a/b");
    mkd("src/a/b/c");
    mkd("src/a-b"); /* sorts between "a" and "a/..." by bytes */
    mkd("src/emptydir");
    put("src/a/b/c/deep.txt", "deep\n", 5, 0644);
    put("src/a/x.json", "{\"k\":1}\n", 8, 0600);
    put("src/a-b/y", "y", 1, 0644);
    put("src/empty", "", 0, 0644);
    put("src/run.sh", sh, sizeof sh - 1, 0700);
    put("src/big.bin", big, 1u << 20, 0644);
    put("src/caf\xc3\xa9.txt", "utf-8 name\n", 11, 0644);
    free(big);
}

/* ---- round trips ---- */

static void
test_roundtrip(void **state)
{
    struct ota_pack_result res;
    struct ota_manifest   *m = NULL;
    struct ota_diag        d;
    unsigned char          md[OTA_SHA256_LEN];
    unsigned long long     len = 0;
    size_t                 i;

    (void)state;
    fill_tree();
    assert_int_equal(pack(P("src"), P("b.ota"), 2, &res, &d), OTA_OK);
    assert_int_equal(res.nfiles, 7);
    assert_int_equal(res.payload_bytes, 5 + 8 + 1 + 0 + 18 + (1u << 20) + 11);
    assert_int_equal(ota_sha256_file(P("b.ota"), md, &len, NULL), OTA_OK);
    assert_memory_equal(md, res.sha256, sizeof md);
    assert_int_equal(len, res.length);
    assert_string_equal(names(T), "b.ota,out,src"); /* no temp file left */

    {
        struct ota_bundle_read_opts o;
        read_opts(&o, P("out/dest"));
        o.expect_sha256 = res.sha256;
        o.expect_length = res.length;
        o.sync = 1;
        assert_int_equal(ota_bundle_read_file(P("b.ota"), &o, &m, &d), OTA_OK);
    }
    compare_trees(P("src"), P("out/dest"));
    assert_string_equal(m->release.version, "1.4.0");
    assert_string_equal(m->release.notes, "fixes");
    assert_int_equal(m->nfiles, 12);
    for (i = 1; i < m->nfiles; i++)
        assert_true(strcmp(m->files[i - 1].path, m->files[i].path) < 0);
    assert_string_equal(m->files[0].path, "a");
    assert_string_equal(m->files[1].path, "a-b");
    assert_string_equal(m->files[3].path, "a/b");
    assert_int_equal(m->total_size, res.payload_bytes);
    assert_int_equal(json_array_size(m->signatures), 1);
    {
        json_t *j = ota_manifest_to_json(m);
        assert_non_null(j);
        assert_int_equal(json_array_size(json_object_get(json_object_get(j, "signed"), "files")),
                         12);
        json_decref(j);
    }
    ota_manifest_free(m);
}

static void
test_deterministic(void **state)
{
    struct ota_pack_result r1, r2, r3;
    struct ota_diag        d;

    (void)state;
    fill_tree();
    assert_int_equal(pack(P("src"), P("one.ota"), 2, &r1, &d), OTA_OK);
    /* a later mtime and a different worker count change nothing */
    assert_int_equal(utimensat(AT_FDCWD, P("src/a/x.json"), NULL, 0), 0);
    assert_int_equal(pack(P("src"), P("two.ota"), 1, &r2, &d), OTA_OK);
    assert_int_equal(pack(P("src"), P("three.ota"), 3, &r3, &d), OTA_OK);
    compare_file(P("one.ota"), P("two.ota"));
    compare_file(P("one.ota"), P("three.ota"));
    assert_memory_equal(r1.sha256, r2.sha256, OTA_SHA256_LEN);
    assert_memory_equal(r1.sha256, r3.sha256, OTA_SHA256_LEN);
}

static void
test_verify_only(void **state)
{
    struct ota_pack_result res;
    struct ota_manifest   *m = NULL;
    struct ota_diag        d;

    (void)state;
    fill_tree();
    assert_int_equal(pack(P("src"), P("b.ota"), 2, &res, &d), OTA_OK);
    assert_int_equal(read_b(NULL, &m, &d), OTA_OK);
    assert_int_equal(m->nfiles, 12);
    ota_manifest_free(m);
    assert_string_equal(names(P("out/dest")), "");
    assert_contained();
}

static void
test_symlink_inside_is_copied(void **state)
{
    struct ota_pack_result res;
    struct ota_diag        d;
    struct stat            st;

    (void)state;
    mkd("src/lib");
    put("src/lib/real.js", "x=1\n", 4, 0755);
    assert_int_equal(symlink("lib/real.js", P("src/alias.js")), 0);
    assert_int_equal(symlink("../alias.js", P("src/lib/chain.js")), 0);
    assert_int_equal(pack(P("src"), P("b.ota"), 1, &res, &d), OTA_OK);
    assert_int_equal(res.nfiles, 3);
    assert_int_equal(read_b(P("out/dest"), NULL, &d), OTA_OK);
    assert_int_equal(lstat(P("out/dest/alias.js"), &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0755);
    compare_file(P("src/lib/real.js"), P("out/dest/alias.js"));
    compare_file(P("src/lib/real.js"), P("out/dest/lib/chain.js"));
}

static void
test_dest_not_empty(void **state)
{
    struct ota_pack_result res;
    struct ota_diag        d;

    (void)state;
    put("src/f", "f", 1, 0644);
    assert_int_equal(pack(P("src"), P("b.ota"), 1, &res, &d), OTA_OK);
    put("out/dest/old", "o", 1, 0644);
    assert_int_equal(read_b(P("out/dest"), NULL, &d), OTA_E_EXISTS);
    assert_string_equal(names(P("out/dest")), "old");
}

/* ---- pack refusals ---- */

static void
expect_pack_refused(ota_err want, const char *needle)
{
    struct ota_pack_result res;
    struct ota_diag        d;

    memset(&res, 0x5a, sizeof res);
    d.msg[0] = '\0';
    assert_int_equal(pack(P("src"), P("b.ota"), 2, &res, &d), want);
    if (needle != NULL && strstr(d.msg, needle) == NULL)
        fail_msg("message '%s' does not name '%s'", d.msg, needle);
    assert_string_equal(names(T), "out,src"); /* no output, no temp file */
    assert_int_equal(res.length, 0x5a5a5a5a5a5a5a5aull);
}

static void
test_pack_refuses_symlink_outside(void **state)
{
    (void)state;
    put("src/ok", "ok", 2, 0644);
    assert_int_equal(symlink("/etc/passwd", P("src/passwd")), 0);
    expect_pack_refused(OTA_E_UNSAFE_PATH, "passwd");
}

static void
test_pack_refuses_relative_escape(void **state)
{
    (void)state;
    put("out/secret", "s", 1, 0644);
    assert_int_equal(symlink("../out/secret", P("src/s")), 0);
    expect_pack_refused(OTA_E_UNSAFE_PATH, "'s'");
    assert_int_equal(unlink(P("out/secret")), 0);
}

static void
test_pack_refuses_symlink_dir(void **state)
{
    (void)state;
    mkd("src/d");
    put("src/d/f", "f", 1, 0644);
    assert_int_equal(symlink("d", P("src/dl")), 0);
    expect_pack_refused(OTA_E_UNSAFE_PATH, "dl");
}

static void
test_pack_refuses_dangling(void **state)
{
    (void)state;
    assert_int_equal(symlink("nowhere", P("src/dangling")), 0);
    expect_pack_refused(OTA_E_UNSAFE_PATH, "dangling");
}

static void
test_pack_refuses_fifo(void **state)
{
    (void)state;
    mkd("src/d");
    assert_int_equal(mkfifo(P("src/d/pipe"), 0644), 0);
    expect_pack_refused(OTA_E_UNSAFE_PATH, "d/pipe");
}

static void
test_pack_refuses_reserved_and_bad_names(void **state)
{
    (void)state;
    put("src/.ota-manifest.json", "{}", 2, 0644);
    expect_pack_refused(OTA_E_FORMAT, ".ota-manifest.json");
    assert_int_equal(unlink(P("src/.ota-manifest.json")), 0);
    put("src/bad\nname", "x", 1, 0644);
    expect_pack_refused(OTA_E_UNSAFE_PATH, NULL);
    assert_int_equal(unlink(P("src/bad\nname")), 0);
    put("src/bad\xff", "x", 1, 0644);
    expect_pack_refused(OTA_E_FORMAT, NULL);
}

static void
test_pack_no_overwrite(void **state)
{
    struct ota_pack_result res;
    struct ota_diag        d;
    struct ota_pack_opts   o;

    (void)state;
    put("src/f", "f", 1, 0644);
    put("b.ota", "old", 3, 0644);
    assert_int_equal(pack(P("src"), P("b.ota"), 1, &res, &d), OTA_E_EXISTS);
    {
        unsigned char *b = NULL;
        size_t         n = 0;
        assert_int_equal(ota_read_file(P("b.ota"), 16, &b, &n, NULL), OTA_OK);
        assert_int_equal(n, 3);
        free(b);
    }
    memset(&o, 0, sizeof o);
    o.src_dir = P("src");
    o.out_path = P("b.ota");
    o.release = &REL;
    o.sign = t_sign;
    o.sign_ctx = &K1;
    o.force = 1;
    assert_int_equal(ota_bundle_pack(&o, &res, &d), OTA_OK);
    assert_int_equal(read_b(P("out/dest"), NULL, &d), OTA_OK);
    o.level = 20; /* would need a window over the reader's cap */
    assert_int_equal(ota_bundle_pack(&o, &res, &d), OTA_E_INVALID);
}

/* Between the passes: the progress callback runs in pass 2 after each file; the test grows
 * the next file, which pass 2 must notice. */
static void
grow_next(void *ctx, uint64_t done, uint64_t total)
{
    int *calls = ctx;

    (void)done;
    (void)total;
    if ((*calls)++ == 0)
        put("src/b", "bigger now", 10, 0644);
}

static void
test_pack_file_changed(void **state)
{
    struct ota_pack_result res;
    struct ota_diag        d;
    struct ota_pack_opts   o;
    int                    calls = 0;

    (void)state;
    put("src/a", "a", 1, 0644);
    put("src/b", "b", 1, 0644);
    memset(&o, 0, sizeof o);
    o.src_dir = P("src");
    o.out_path = P("b.ota");
    o.release = &REL;
    o.sign = t_sign;
    o.sign_ctx = &K1;
    o.progress = grow_next;
    o.progress_ctx = &calls;
    assert_int_equal(ota_bundle_pack(&o, &res, &d), OTA_E_IO);
    assert_non_null(strstr(d.msg, "'b' changed"));
    assert_string_equal(names(T), "out,src");
}

/* ---- the spec's test vector (formats/bundle.md) ---- */

static const char VECTOR_MANIFEST[] =
    "{\"signatures\":[{\"keyid\":\"748a031656dcf38688f8cf7c6ff1fd44beb20ff14a4885cc904f25c1e0"
    "8f56c4\",\"sig\":\"1ab9671b6fd29e1464e9ea0c4a276c7230fff2e036d0dd76badbc6310d175261964b2"
    "55e917d1cf074a4ee638bca34addf43466d58c3118d186ece2eb2b6be00\"}],\"signed\":{\"_type\":\""
    "ota-bundle-manifest\",\"files\":[{\"mode\":493,\"path\":\"bin\",\"type\":\"dir\"},{\"mod"
    "e\":493,\"path\":\"bin/run\",\"sha256\":\"b4d644d4279594903f1a9911956432d9473041f2984fc6"
    "014c14d7402c7d126c\",\"size\":18,\"type\":\"file\"},{\"mode\":420,\"path\":\"empty\",\"s"
    "ha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\",\"size\":0,"
    "\"type\":\"file\"},{\"mode\":420,\"path\":\"hello.txt\",\"sha256\":\"853ff93762a06ddbf72"
    "2c4ebe9ddd66d8f63ddaea97f521c3ecc20da7c976020\",\"size\":13,\"type\":\"file\"}],\"releas"
    "e\":{\"app\":\"com.example.field\",\"mandatory\":false,\"min_agent\":\"0.1\",\"model\":"
    "\"m2\",\"notes\":\"fixes\",\"reads_models\":[\"m1\"],\"runtime\":{\"max\":\"3.9\",\"min"
    "\":\"3.0\"},\"version\":\"1.4.0\"},\"spec_version\":1}}";

/* Bytes of the first tar member of a bundle file. */
static char *
manifest_member(const char *path, size_t *len)
{
    unsigned char        *z = NULL, *tar;
    size_t                zl = 0;
    unsigned long long    cap;
    struct archive       *a = archive_read_new();
    struct archive_entry *e;
    char                 *out;

    assert_int_equal(ota_read_file(path, 64u << 20, &z, &zl, NULL), OTA_OK);
    cap = ZSTD_getFrameContentSize(z, zl);
    if (cap == ZSTD_CONTENTSIZE_UNKNOWN || cap == ZSTD_CONTENTSIZE_ERROR)
        cap = 64u << 20;
    tar = malloc(cap);
    {
        ZSTD_DCtx     *dc = ZSTD_createDCtx();
        ZSTD_inBuffer  in = { z, zl, 0 };
        ZSTD_outBuffer ob = { tar, cap, 0 };
        size_t         r;
        do
            r = ZSTD_decompressStream(dc, &ob, &in);
        while (!ZSTD_isError(r) && r != 0 && ob.pos < ob.size);
        assert_false(ZSTD_isError(r));
        ZSTD_freeDCtx(dc);
        cap = ob.pos;
    }
    assert_int_equal(archive_read_support_format_tar(a), ARCHIVE_OK);
    assert_int_equal(archive_read_open_memory(a, tar, cap), ARCHIVE_OK);
    assert_int_equal(archive_read_next_header(a, &e), ARCHIVE_OK);
    assert_string_equal(archive_entry_pathname(e), ".ota-manifest.json");
    *len = (size_t)archive_entry_size(e);
    out = malloc(*len + 1);
    assert_int_equal(archive_read_data(a, out, *len), (la_ssize_t)*len);
    out[*len] = '\0';
    archive_read_free(a);
    free(tar);
    free(z);
    return out;
}

static void
test_vector(void **state)
{
    static const char      sh[] = "#!/bin/sh\necho ok\n";
    struct ota_pack_result res;
    struct ota_diag        d;
    size_t                 len = 0;
    char                  *m;

    (void)state;
    put("src/hello.txt", "hello, world\n", 13, 0644);
    mkd("src/bin");
    put("src/bin/run", sh, sizeof sh - 1, 0755);
    put("src/empty", "", 0, 0644);
    assert_int_equal(pack(P("src"), P("b.ota"), 1, &res, &d), OTA_OK);
    m = manifest_member(P("b.ota"), &len);
    if (len != strlen(VECTOR_MANIFEST) || memcmp(m, VECTOR_MANIFEST, len) != 0) {
        print_message("manifest is:\n%s\n", m);
        fail_msg("manifest differs from the vector in formats/bundle.md");
    }
    free(m);
    assert_int_equal(read_b(P("out/dest"), NULL, &d), OTA_OK);
}

/* ---- hostile bundles ---- */

struct mf { /* a manifest entry */
    const char *path;
    int         dir;
    unsigned    mode;
    const char *data;
};

struct ent { /* a tar entry */
    const char *name;
    char        type;     /* 'f' file, 'd' dir, 'l' symlink, 'h' hard link, 'c' char device */
    unsigned    mode;
    const char *data;
    long long   tar_size; /* size in the tar header; -1: strlen(data) */
    const char *link;     /* symlink or hard link target */
    size_t      pax_pad;  /* bytes of an extra pax attribute (oversized headers) */
};

struct bopts {
    int         manifest_at;  /* index of the tar entry before which the manifest goes; -1 none */
    int         window_log;   /* zstd windowLog, 0 = default */
    size_t      zero_pad;     /* zero bytes appended to the tar (after its end marker) */
    size_t      cut;          /* bytes removed from the end of the compressed stream */
    const char *trailer;      /* bytes appended after the compressed stream */
};

static char *
make_manifest(const struct mf *mf, size_t n, struct key *k, size_t *len)
{
    json_t         *files = json_array(), *sig, *sigs = json_array(), *doc;
    char           *canon = NULL, *out = NULL;
    size_t          clen = 0, i;
    struct ota_diag d;

    for (i = 0; i < n; i++) {
        json_t *f;
        if (mf[i].dir) {
            f = json_pack("{s:s, s:s, s:i}", "path", mf[i].path, "type", "dir", "mode",
                          (int)mf[i].mode);
        } else {
            char hex[OTA_SHA256_HEX];
            assert_int_equal(ota_sha256_hex(mf[i].data, strlen(mf[i].data), hex), OTA_OK);
            f = json_pack("{s:s, s:s, s:i, s:I, s:s}", "path", mf[i].path, "type", "file", "mode",
                          (int)mf[i].mode, "size", (json_int_t)strlen(mf[i].data), "sha256",
                          hex);
        }
        assert_int_equal(json_array_append_new(files, f), 0);
    }
    sig = json_pack("{s:s, s:i, s:o, s:o}", "_type", "ota-bundle-manifest", "spec_version", 1,
                    "release", ota_release_to_json(&REL), "files", files);
    assert_non_null(sig);
    assert_int_equal(ota_cjson_encode(sig, OTA_BUNDLE_MANIFEST_MAX, &canon, &clen, &d), OTA_OK);
    assert_int_equal(t_sign(k, canon, clen, sigs, &d), OTA_OK);
    doc = json_pack("{s:o, s:o}", "signed", sig, "signatures", sigs);
    assert_int_equal(ota_cjson_encode(doc, OTA_BUNDLE_MANIFEST_MAX, &out, len, &d), OTA_OK);
    json_decref(doc);
    free(canon);
    return out;
}

struct membuf {
    unsigned char *p;
    size_t         len, cap;
};

static void
mb_put(struct membuf *b, const void *data, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static la_ssize_t
mb_write(struct archive *a, void *ctx, const void *buf, size_t n)
{
    (void)a;
    mb_put(ctx, buf, n);
    return (la_ssize_t)n;
}

static void
tar_entry(struct archive *a, const char *name, char type, unsigned mode, const void *data,
          size_t len, long long tar_size, const char *link, size_t pax_pad)
{
    struct archive_entry *e = archive_entry_new();

    archive_entry_copy_pathname(e, name);
    archive_entry_set_mode(e, mode);
    archive_entry_set_size(e, 0);
    switch (type) {
    case 'f':
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, tar_size >= 0 ? tar_size : (la_int64_t)len);
        break;
    case 'd':
        archive_entry_set_filetype(e, AE_IFDIR);
        break;
    case 'l':
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_copy_symlink(e, link);
        break;
    case 'h':
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_copy_hardlink(e, link);
        break;
    case 'c':
        archive_entry_set_filetype(e, AE_IFCHR);
        archive_entry_set_rdev(e, makedev(1, 3));
        break;
    }
    archive_entry_set_perm(e, mode);
    if (pax_pad > 0) {
        char *v = malloc(pax_pad);
        memset(v, 'p', pax_pad);
        archive_entry_xattr_add_entry(e, "user.pad", v, pax_pad);
        free(v);
    }
    assert_true(archive_write_header(a, e) >= ARCHIVE_WARN);
    if (type == 'f' && len > 0)
        assert_true(archive_write_data(a, data, len) >= 0);
    archive_entry_free(e);
}

/* Write T/b.ota: a tar of the manifest (placed per bo) and the entries, through zstd. */
static void
build(const char *manifest, size_t mlen, const struct ent *e, size_t n, const struct bopts *bo)
{
    struct membuf   tar = { NULL, 0, 0 }, z = { NULL, 0, 0 };
    struct archive *a = archive_write_new();
    size_t          i;
    int             fd;

    assert_int_equal(archive_write_set_format_pax(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open(a, &tar, NULL, mb_write, NULL), ARCHIVE_OK);
    for (i = 0; i <= n; i++) {
        if (manifest != NULL && bo->manifest_at == (int)i)
            tar_entry(a, ".ota-manifest.json", 'f', 0644, manifest, mlen, -1, NULL, 0);
        if (i < n)
            tar_entry(a, e[i].name, e[i].type, e[i].mode, e[i].data,
                      e[i].data ? strlen(e[i].data) : 0, e[i].tar_size, e[i].link, e[i].pax_pad);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    if (bo->zero_pad > 0) {
        unsigned char *zeros = calloc(1, bo->zero_pad);
        mb_put(&tar, zeros, bo->zero_pad);
        free(zeros);
    }
    {
        ZSTD_CCtx     *c = ZSTD_createCCtx();
        unsigned char  buf[1 << 16];
        ZSTD_inBuffer  in = { tar.p, tar.len, 0 };
        size_t         r;
        assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3)));
        assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)));
        if (bo->window_log)
            assert_false(
                ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, bo->window_log)));
        /* continue first, then end: the frame does not pledge its size, so zstd keeps the
         * window that was asked for */
        do {
            ZSTD_outBuffer ob = { buf, sizeof buf, 0 };
            r = ZSTD_compressStream2(c, &ob, &in, ZSTD_e_continue);
            assert_false(ZSTD_isError(r));
            mb_put(&z, buf, ob.pos);
        } while (in.pos < in.size);
        do {
            ZSTD_outBuffer ob = { buf, sizeof buf, 0 };
            r = ZSTD_compressStream2(c, &ob, &in, ZSTD_e_end);
            assert_false(ZSTD_isError(r));
            mb_put(&z, buf, ob.pos);
        } while (r != 0);
        ZSTD_freeCCtx(c);
    }
    assert_true(bo->cut < z.len);
    z.len -= bo->cut;
    if (bo->trailer)
        mb_put(&z, bo->trailer, strlen(bo->trailer));
    fd = open(P("b.ota"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ota_write_all(fd, z.p, z.len, NULL), OTA_OK);
    close(fd);
    free(tar.p);
    free(z.p);
}

static const struct bopts FIRST = { 0, 0, 0, 0, NULL };

/* Build a bundle whose manifest (signed by K1) lists mf and whose tar holds e, then read it
 * into out/dest and expect want, with nothing outside dest. */
static void
hostile(const struct mf *mf, size_t nmf, const struct ent *e, size_t n, const struct bopts *bo,
        ota_err want)
{
    size_t          mlen = 0;
    char           *man = make_manifest(mf, nmf, &K1, &mlen);
    struct ota_diag d;
    ota_err         rc;

    build(man, mlen, e, n, bo);
    free(man);
    assert_int_equal(ota_rm_rf(P("out/dest"), NULL), OTA_OK); /* fresh dest per bundle */
    assert_int_equal(mkdir(P("out/dest"), 0755), 0);
    d.msg[0] = '\0';
    rc = read_b(P("out/dest"), NULL, &d);
    if (rc != want)
        fail_msg("got %s (%s), want %s", ota_err_name(rc), d.msg, ota_err_name(want));
    if (want != OTA_OK)
        assert_true(strlen(d.msg) > 0);
    assert_contained();
}

#define N(x) (sizeof(x) / sizeof *(x))

static void
test_sane_hostile_baseline(void **state)
{
    /* the builder itself makes valid bundles: the tests below each change one thing */
    static const struct mf mf[] = { { "d", 1, 0755, NULL }, { "d/f", 0, 0644, "data" } };
    static const struct ent e[] = { { "d", 'd', 0755, NULL, -1, NULL, 0 },
                                    { "d/f", 'f', 0644, "data", -1, NULL, 0 } };

    (void)state;
    hostile(mf, N(mf), e, N(e), &FIRST, OTA_OK);
    compare_file(P("out/dest/d/f"), P("out/dest/d/f"));
    assert_string_equal(names(P("out/dest/d")), "f");
}

static void
test_hostile_dotdot(void **state)
{
    static const struct mf  mf[] = { { "x", 0, 0644, "evil" } };
    static const struct ent e[] = { { "../x", 'f', 0644, "evil", -1, NULL, 0 } };
    static const struct mf  mf2[] = { { "../x", 0, 0644, "evil" } };
    static const struct mf  mf3[] = { { "a", 1, 0755, NULL }, { "a/../../x", 0, 0644, "evil" } };

    (void)state;
    hostile(mf, N(mf), e, N(e), &FIRST, OTA_E_UNSAFE_PATH);
    hostile(mf2, N(mf2), e, N(e), &FIRST, OTA_E_UNSAFE_PATH); /* signed, still refused */
    hostile(mf3, N(mf3), e, N(e), &FIRST, OTA_E_UNSAFE_PATH);
    assert_int_equal(access(P("out/x"), F_OK), -1);
    assert_int_equal(access(P("x"), F_OK), -1);
}

static void
test_hostile_absolute(void **state)
{
    char       abs[PATH_MAX];
    struct mf  mf[] = { { "abs", 0, 0644, "evil" } };
    struct ent e[] = { { abs, 'f', 0644, "evil", -1, NULL, 0 } };
    struct mf  mf2[] = { { abs, 0, 0644, "evil" } };

    (void)state;
    snprintf(abs, sizeof abs, "%s/abs", T);
    hostile(mf, N(mf), e, N(e), &FIRST, OTA_E_UNSAFE_PATH);
    hostile(mf2, N(mf2), e, N(e), &FIRST, OTA_E_UNSAFE_PATH);
    assert_int_equal(access(abs, F_OK), -1);
}

static void
test_hostile_symlink(void **state)
{
    static const struct mf  mf[] = { { "lnk", 0, 0644, "" } };
    static const struct ent e[] = { { "lnk", 'l', 0777, NULL, -1, "/etc/passwd", 0 } };

    (void)state;
    hostile(mf, N(mf), e, N(e), &FIRST, OTA_E_UNSAFE_PATH);
    assert_string_equal(names(P("out/dest")), "");
}

static void
test_hostile_hardlink(void **state)
{
    static const struct mf  mf[] = { { "a", 0, 0644, "data" }, { "h", 0, 0644, "" } };
    static const struct ent e[] = { { "a", 'f', 0644, "data", -1, NULL, 0 },
                                    { "h", 'h', 0644, NULL, -1, "a", 0 } };

    (void)state;
    hostile(mf, N(mf), e, N(e), &FIRST, OTA_E_UNSAFE_PATH);
    assert_string_equal(names(P("out/dest")), "a");
}

static void
test_hostile_device(void **state)
{
    static const struct mf  mf[] = { { "null", 0, 0644, "" } };
    static const struct ent e[] = { { "null", 'c', 0644, NULL, -1, NULL, 0 } };

    (void)state;
    hostile(mf, N(mf), e, N(e), &FIRST, OTA_E_UNSAFE_PATH);
    assert_string_equal(names(P("out/dest")), "");
}

static void
test_hostile_setuid(void **state)
{
    static const struct mf  mf[] = { { "su", 0, 0755, "#!/bin/sh\n" } };
    static const struct ent e[] = { { "su", 'f', 04755, "#!/bin/sh\n", -1, NULL, 0 } };
    static const struct mf  mf2[] = { { "su", 0, 04755, "#!/bin/sh\n" } };

    (void)state;
    hostile(mf, N(mf), e, N(e), &FIRST, OTA_E_UNSAFE_PATH);
    hostile(mf2, N(mf2), e, N(e), &FIRST, OTA_E_UNSAFE_PATH); /* signed setuid: refused */
    assert_string_equal(names(P("out/dest")), "");
}

static void
test_hostile_duplicate(void **state)
{
    static const struct mf  mf[] = { { "a", 0, 0644, "one" }, { "b", 0, 0644, "two" } };
    static const struct ent e[] = { { "a", 'f', 0644, "one", -1, NULL, 0 },
                                    { "a", 'f', 0644, "one", -1, NULL, 0 },
                                    { "b", 'f', 0644, "two", -1, NULL, 0 } };
    static const struct mf  mf2[] = { { "a", 0, 0644, "one" }, { "a", 0, 0644, "one" } };

    (void)state;
    hostile(mf, N(mf), e, N(e), &FIRST, OTA_E_FORMAT);
    hostile(mf2, N(mf2), e, 2, &FIRST, OTA_E_FORMAT); /* listed twice in the manifest */
}

/* The last entry sent again is named as a duplicate, not as a stranger to the manifest. */
static void
test_hostile_duplicate_last(void **state)
{
    static const struct mf  mf[] = { { "a", 0, 0644, "one" }, { "b", 0, 0644, "two" } };
    static const struct ent e[] = { { "a", 'f', 0644, "one", -1, NULL, 0 },
                                    { "b", 'f', 0644, "two", -1, NULL, 0 },
                                    { "b", 'f', 0644, "TWO", -1, NULL, 0 } };
    size_t          mlen = 0;
    char           *man = make_manifest(mf, N(mf), &K1, &mlen);
    struct ota_diag d;

    (void)state;
    build(man, mlen, e, N(e), &FIRST);
    free(man);
    assert_int_equal(ota_rm_rf(P("out/dest"), NULL), OTA_OK);
    assert_int_equal(mkdir(P("out/dest"), 0755), 0);
    assert_int_equal(read_b(P("out/dest"), NULL, &d), OTA_E_FORMAT);
    assert_string_equal(d.msg, "'b' appears twice");
    assert_contained();
}

static void
test_hostile_longer_than_declared(void **state)
{
    static const struct mf  mf[] = { { "a", 0, 0644, "short" } };
    static const struct ent e[] = { { "a", 'f', 0644, "short plus more bytes", -1, NULL, 0 } };
    /* a tar header claiming 1 GiB: refused at the header, before any of it is read */
    static const struct ent e2[] = { { "a", 'f', 0644, "short", 1ll << 30, NULL, 0 } };

    (void)state;
    hostile(mf, N(mf), e, N(e), &FIRST, OTA_E_LENGTH);
    hostile(mf, N(mf), e2, N(e2), &FIRST, OTA_E_LENGTH);
    assert_string_equal(names(P("out/dest")), "");
}

static void
test_hostile_not_in_manifest(void **state)
{
    static const struct mf  mf[] = { { "a", 0, 0644, "one" }, { "c", 0, 0644, "three" } };
    static const struct ent e_mid[] = { { "a", 'f', 0644, "one", -1, NULL, 0 },
                                        { "b", 'f', 0644, "two", -1, NULL, 0 },
                                        { "c", 'f', 0644, "three", -1, NULL, 0 } };
    static const struct ent e_end[] = { { "a", 'f', 0644, "one", -1, NULL, 0 },
                                        { "c", 'f', 0644, "three", -1, NULL, 0 },
                                        { "z", 'f', 0644, "extra", -1, NULL, 0 } };
    static const struct ent e_short[] = { { "a", 'f', 0644, "one", -1, NULL, 0 } };

    (void)state;
    hostile(mf, N(mf), e_mid, N(e_mid), &FIRST, OTA_E_FORMAT);
    hostile(mf, N(mf), e_end, N(e_end), &FIRST, OTA_E_FORMAT);
    hostile(mf, N(mf), e_short, N(e_short), &FIRST, OTA_E_FORMAT); /* a listed file missing */
}

static void
test_hostile_manifest_not_first(void **state)
{
    static const struct mf  mf[] = { { "a", 0, 0644, "one" } };
    static const struct ent e[] = { { "a", 'f', 0644, "one", -1, NULL, 0 } };
    static const struct bopts second = { 1, 0, 0, 0, NULL };
    static const struct bopts none = { -1, 0, 0, 0, NULL };

    (void)state;
    hostile(mf, N(mf), e, N(e), &second, OTA_E_FORMAT);
    hostile(mf, N(mf), e, N(e), &none, OTA_E_FORMAT);
    assert_string_equal(names(P("out/dest")), "");
}

static void
test_hostile_truncated(void **state)
{
    static const struct mf  mf[] = { { "a", 0, 0644, "one" } };
    static const struct ent e[] = { { "a", 'f', 0644, "one", -1, NULL, 0 } };
    static const struct bopts cut = { 0, 0, 0, 5, NULL };
    struct ota_bundle_read_opts o;
    struct ota_diag             d;
    struct stat                 st;

    (void)state;
    hostile(mf, N(mf), e, N(e), &cut, OTA_E_FORMAT);
    /* with the expected length known, the short stream is a length error */
    assert_int_equal(stat(P("b.ota"), &st), 0);
    read_opts(&o, NULL);
    o.expect_length = (uint64_t)st.st_size + 5;
    assert_int_equal(ota_bundle_read_file(P("b.ota"), &o, NULL, &d), OTA_E_LENGTH);
    /* and an empty file is not a bundle */
    put("b.ota", "", 0, 0644);
    read_opts(&o, NULL);
    assert_int_equal(ota_bundle_read_file(P("b.ota"), &o, NULL, &d), OTA_E_FORMAT);
}

static void
test_hostile_flipped_payload(void **state)
{
    static const struct mf  mf[] = { { "a", 0, 0644, "payload" } };
    static const struct ent e[] = { { "a", 'f', 0644, "paYload", -1, NULL, 0 } };

    (void)state;
    hostile(mf, N(mf), e, N(e), &FIRST, OTA_E_DIGEST);
}

static void
test_hostile_big_window(void **state)
{
    static const struct mf  mf[] = { { "a", 0, 0644, "one" } };
    static const struct ent e[] = { { "a", 'f', 0644, "one", -1, NULL, 0 } };
    static const struct bopts wide = { 0, 27, 0, 0, NULL };
    unsigned char            *z = NULL;
    size_t                    zl = 0;

    (void)state;
    hostile(mf, N(mf), e, N(e), &wide, OTA_E_TOO_BIG);
    /* the test is only meaningful if the frame really asks for 2^27 */
    assert_int_equal(ota_read_file(P("b.ota"), 1u << 20, &z, &zl, NULL), OTA_OK);
    /* frame header: magic, descriptor without the single-segment flag, then the window
     * descriptor: exponent 27 - 10, mantissa 0 */
    assert_true(zl > 6);
    assert_int_equal(z[0] | z[1] << 8 | z[2] << 16 | (unsigned)z[3] << 24, 0xFD2FB528u);
    assert_int_equal(z[4] & 0x20, 0);
    assert_int_equal(z[5], (27 - 10) << 3);
    free(z);
    assert_string_equal(names(P("out/dest")), "");
}

static void
test_hostile_trailing_garbage(void **state)
{
    static const struct mf  mf[] = { { "a", 0, 0644, "one" } };
    static const struct ent e[] = { { "a", 'f', 0644, "one", -1, NULL, 0 } };
    static const struct bopts junk = { 0, 0, 0, 0, "trailing garbage" };
    static const struct bopts one = { 0, 0, 0, 0, "x" };

    (void)state;
    hostile(mf, N(mf), e, N(e), &junk, OTA_E_FORMAT);
    hostile(mf, N(mf), e, N(e), &one, OTA_E_FORMAT);
}

static void
test_hostile_zero_bomb(void **state)
{
    /* 64 MiB of zeros after the tar's end marker: tiny compressed, refused long before the
     * end because the manifest declares 3 bytes */
    static const struct mf  mf[] = { { "a", 0, 0644, "one" } };
    static const struct ent e[] = { { "a", 'f', 0644, "one", -1, NULL, 0 } };
    static const struct bopts bomb = { 0, 0, 64u << 20, 0, NULL };
    static const struct bopts pad = { 0, 0, 2048, 0, NULL }; /* a little padding is fine */

    (void)state;
    hostile(mf, N(mf), e, N(e), &bomb, OTA_E_TOO_BIG);
    hostile(mf, N(mf), e, N(e), &pad, OTA_OK);
}

static void
test_hostile_oversized_pax(void **state)
{
    /* pax records in the header of a 3-byte file: over libarchive's 1 MiB limit for an
     * extended header, it refuses the header before reading it; under that limit but far
     * over what one entry's headers may take, the unpacked-size budget stops it */
    static const struct mf  mf[] = { { "a", 0, 0644, "one" } };
    static const struct ent huge[] = { { "a", 'f', 0644, "one", -1, NULL, 4u << 20 } };
    static const struct ent big[] = { { "a", 'f', 0644, "one", -1, NULL, 300u << 10 } };

    (void)state;
    hostile(mf, N(mf), huge, N(huge), &FIRST, OTA_E_FORMAT);
    hostile(mf, N(mf), big, N(big), &FIRST, OTA_E_TOO_BIG);
    assert_string_equal(names(P("out/dest")), "");
}

static void
test_expect_sha256_and_caps(void **state)
{
    struct ota_pack_result      res;
    struct ota_bundle_read_opts o;
    struct ota_diag             d;
    unsigned char               bad[OTA_SHA256_LEN];

    (void)state;
    fill_tree();
    assert_int_equal(pack(P("src"), P("b.ota"), 2, &res, &d), OTA_OK);
    memcpy(bad, res.sha256, sizeof bad);
    bad[7] ^= 1;
    read_opts(&o, P("out/dest"));
    o.expect_sha256 = bad;
    assert_int_equal(ota_bundle_read_file(P("b.ota"), &o, NULL, &d), OTA_E_DIGEST);
    assert_contained();
    assert_int_equal(ota_rm_rf(P("out/dest"), NULL), OTA_OK);
    assert_int_equal(mkdir(P("out/dest"), 0755), 0);

    read_opts(&o, NULL);
    o.expect_length = res.length - 1;
    assert_int_equal(ota_bundle_read_file(P("b.ota"), &o, NULL, &d), OTA_E_LENGTH);
    read_opts(&o, NULL);
    o.max_length = res.length - 1;
    assert_int_equal(ota_bundle_read_file(P("b.ota"), &o, NULL, &d), OTA_E_LENGTH);
    read_opts(&o, NULL);
    o.max_unpacked = res.payload_bytes - 1;
    assert_int_equal(ota_bundle_read_file(P("b.ota"), &o, NULL, &d), OTA_E_TOO_BIG);
    read_opts(&o, NULL);
    o.max_length = res.length;
    o.expect_length = res.length;
    o.expect_sha256 = res.sha256;
    o.max_unpacked = res.payload_bytes;
    assert_int_equal(ota_bundle_read_file(P("b.ota"), &o, NULL, &d), OTA_OK);
}

static void
test_wrong_key(void **state)
{
    struct ota_pack_result      res;
    struct ota_bundle_read_opts o;
    struct ota_manifest        *m = (struct ota_manifest *)&o;
    struct ota_diag             d;

    (void)state;
    fill_tree();
    assert_int_equal(pack(P("src"), P("b.ota"), 2, &res, &d), OTA_OK);
    read_opts(&o, P("out/dest"));
    o.verify_ctx = &K2;
    assert_int_equal(ota_bundle_read_file(P("b.ota"), &o, &m, &d), OTA_E_THRESHOLD);
    assert_ptr_equal(m, (struct ota_manifest *)&o); /* untouched */
    assert_string_equal(names(P("out/dest")), "");
    assert_contained();
}

static ota_err
refuse_release(void *ctx, const struct ota_manifest *m, struct ota_diag *d)
{
    int *seen = ctx;

    *seen = (int)m->nfiles;
    return ota_diag_set(d, OTA_E_INCOMPATIBLE, "release '%s' is not the one offered",
                        m->release.version);
}

static void
test_check_manifest_callback(void **state)
{
    struct ota_pack_result      res;
    struct ota_bundle_read_opts o;
    struct ota_diag             d;
    int                         seen = 0;

    (void)state;
    fill_tree();
    assert_int_equal(pack(P("src"), P("b.ota"), 2, &res, &d), OTA_OK);
    read_opts(&o, P("out/dest"));
    o.check_manifest = refuse_release;
    o.check_ctx = &seen;
    assert_int_equal(ota_bundle_read_file(P("b.ota"), &o, NULL, &d), OTA_E_INCOMPATIBLE);
    assert_int_equal(seen, 12);
    assert_string_equal(names(P("out/dest")), ""); /* called before any payload */
}

/* A reader over memory, to exercise ota_bundle_read with a caller's callback. */
struct memsrc {
    const unsigned char *p;
    size_t               len, pos, chunk;
};

static ota_err
mem_read(void *ctx, void *buf, size_t cap, size_t *got, struct ota_diag *d)
{
    struct memsrc *s = ctx;
    size_t         n = s->len - s->pos;

    (void)d;
    if (n > cap)
        n = cap;
    if (n > s->chunk)
        n = s->chunk;
    memcpy(buf, s->p + s->pos, n);
    s->pos += n;
    *got = n;
    return OTA_OK;
}

static void
test_read_callback_small_chunks(void **state)
{
    struct ota_pack_result      res;
    struct ota_bundle_read_opts o;
    struct ota_diag             d;
    unsigned char              *z = NULL;
    size_t                      zl = 0;
    struct memsrc               src;

    (void)state;
    fill_tree();
    assert_int_equal(pack(P("src"), P("b.ota"), 2, &res, &d), OTA_OK);
    assert_int_equal(ota_read_file(P("b.ota"), 64u << 20, &z, &zl, NULL), OTA_OK);
    src.p = z;
    src.len = zl;
    src.pos = 0;
    src.chunk = 777; /* odd sizes: frames and tar blocks straddle reads */
    read_opts(&o, P("out/dest"));
    o.read = mem_read;
    o.read_ctx = &src;
    o.expect_sha256 = res.sha256;
    o.expect_length = res.length;
    assert_int_equal(ota_bundle_read(&o, NULL, &d), OTA_OK);
    compare_trees(P("src"), P("out/dest"));
    free(z);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deterministic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_inside_is_copied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dest_not_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_refuses_symlink_outside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_refuses_relative_escape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_refuses_symlink_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_refuses_dangling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_refuses_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_refuses_reserved_and_bad_names, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pack_no_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_file_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sane_hostile_baseline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_dotdot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_absolute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_hardlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_setuid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_duplicate_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_longer_than_declared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_not_in_manifest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_manifest_not_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_flipped_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_big_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_trailing_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_zero_bomb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_oversized_pax, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expect_sha256_and_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_manifest_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_callback_small_chunks, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, NULL);
}
