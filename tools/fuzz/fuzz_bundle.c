/* Fuzz the bundle reader: decompression, tar parsing, manifest parsing, path checks and the
 * streaming extraction with its size and digest checks.
 *
 * An input that starts with the zstd frame magic is read as a bundle file as it is; any other
 * input is taken as the tar stream itself, its ustar header checksums are recomputed, and it is
 * compressed, so mutations reach the tar and manifest code instead of dying in the zstd decoder
 * or in a header checksum the fuzzer cannot see into. The manifest's signature is accepted
 * whatever it is: the point is the code behind it, which a signed manifest reaches too.
 *
 * Properties: nothing is written outside the destination directory (a scratch tree around it
 * holds canary files that must stay as they are, and nothing else may appear there); the
 * manifest handed to check_manifest is sane (relative paths without "..", allowed modes,
 * valid release); on success every extracted entry is in the manifest with its size and no
 * entry is a link or special file. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "fuzz.h"
#include "ota/bundle.h"
#include "ota/fsutil.h"

#define CANARY "the bundle reader must not touch this file\n"

static char scratch[256]; /* scratch/canary, scratch/w/canary, scratch/w/dest */
static char inner[300];
static char dest[320];

struct mem {
    const unsigned char *p;
    size_t               len, off;
};

static ota_err
mem_read(void *ctx, void *buf, size_t cap, size_t *got, struct ota_diag *d)
{
    struct mem *m = ctx;
    size_t      n = m->len - m->off;

    (void)d;
    /* Short reads of varying size: a reader must not assume a full buffer. */
    if (n > 4096 + m->off % 977)
        n = 4096 + m->off % 977;
    if (n > cap)
        n = cap;
    memcpy(buf, m->p + m->off, n);
    m->off += n;
    *got = n;
    return OTA_OK;
}

static ota_err
accept_any(void *ctx, const void *msg, size_t len, const json_t *sigs, struct ota_diag *d)
{
    (void)ctx, (void)msg, (void)len, (void)sigs, (void)d;
    return OTA_OK;
}

static int
path_sane(const char *p)
{
    size_t n = strlen(p);

    if (n == 0 || n > OTA_BUNDLE_PATH_MAX || p[0] == '/')
        return 0;
    for (const char *s = p; s != NULL; s = strchr(s, '/') ? strchr(s, '/') + 1 : NULL) {
        size_t seg = strcspn(s, "/");
        if (seg == 0 || (seg == 1 && s[0] == '.') || (seg == 2 && s[0] == '.' && s[1] == '.'))
            return 0;
    }
    return 1;
}

static ota_err
check_manifest(void *ctx, const struct ota_manifest *m, struct ota_diag *d)
{
    uint64_t total = 0;

    (void)ctx;
    FUZZ_CHECK(m->nfiles <= OTA_BUNDLE_MAX_FILES);
    for (size_t i = 0; i < m->nfiles; i++) {
        const struct ota_manifest_file *f = &m->files[i];
        FUZZ_CHECK(f->path != NULL && path_sane(f->path));
        if (f->is_dir)
            FUZZ_CHECK(f->mode == 0755 && f->size == 0);
        else
            FUZZ_CHECK(f->mode == 0755 || f->mode == 0644);
        total += f->size;
    }
    FUZZ_CHECK(total == m->total_size);
    memset(d, 0, sizeof(*d));
    FUZZ_CHECK(ota_release_validate(&m->release, d) == OTA_OK);
    return OTA_OK;
}

static void
remove_scratch(void)
{
    if (ota_rm_rf(scratch, NULL) != OTA_OK)
        fprintf(stderr, "cannot remove '%s'\n", scratch);
}

static void
make_scratch(void)
{
    const char *tmp = getenv("TMPDIR");
    char        p[400];

    snprintf(scratch, sizeof(scratch), "%s/fuzz_bundle.XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(scratch) == NULL)
        abort();
    atexit(remove_scratch);
    snprintf(inner, sizeof(inner), "%s/w", scratch);
    snprintf(dest, sizeof(dest), "%s/dest", inner);
    if (mkdir(inner, 0700) != 0)
        abort();
    snprintf(p, sizeof(p), "%s/canary", scratch);
    if (ota_write_file_atomic(p, CANARY, strlen(CANARY), 0644, 1, NULL) != OTA_OK)
        abort();
    snprintf(p, sizeof(p), "%s/canary", inner);
    if (ota_write_file_atomic(p, CANARY, strlen(CANARY), 0644, 1, NULL) != OTA_OK)
        abort();
}

/* dir holds exactly canary (unchanged) and, if sub is set, the directory sub. */
static void
check_level(const char *dir, const char *sub)
{
    DIR           *dh = opendir(dir);
    struct dirent *e;
    unsigned char *buf = NULL;
    size_t         len = 0, n = 0;
    char           p[400];

    FUZZ_CHECK(dh != NULL);
    while ((e = readdir(dh)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (strcmp(e->d_name, "canary") != 0 && (sub == NULL || strcmp(e->d_name, sub) != 0)) {
            fprintf(stderr, "written outside the destination: %s/%s\n", dir, e->d_name);
            abort();
        }
        n++;
    }
    closedir(dh);
    FUZZ_CHECK(n == (sub != NULL ? 2u : 1u));
    snprintf(p, sizeof(p), "%s/canary", dir);
    FUZZ_CHECK(ota_read_file(p, 4096, &buf, &len, NULL) == OTA_OK);
    FUZZ_CHECK(len == strlen(CANARY) && memcmp(buf, CANARY, len) == 0);
    free(buf);
}

static const struct ota_manifest_file *
find_file(const struct ota_manifest *m, const char *path)
{
    for (size_t i = 0; i < m->nfiles; i++)
        if (strcmp(m->files[i].path, path) == 0)
            return &m->files[i];
    return NULL;
}

/* Every entry under dest/rel is a directory or regular file the manifest lists. */
static void
check_tree(const struct ota_manifest *m, const char *rel)
{
    char           p[OTA_BUNDLE_PATH_MAX + 400], r[OTA_BUNDLE_PATH_MAX + 2];
    DIR           *dh;
    struct dirent *e;

    snprintf(p, sizeof(p), "%s/%s", dest, rel);
    dh = opendir(p);
    FUZZ_CHECK(dh != NULL);
    while ((e = readdir(dh)) != NULL) {
        const struct ota_manifest_file *f;
        struct stat                     st;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(r, sizeof(r), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        snprintf(p, sizeof(p), "%s/%s", dest, r);
        FUZZ_CHECK(lstat(p, &st) == 0);
        f = find_file(m, r);
        if (f == NULL)
            fprintf(stderr, "extracted entry not in the manifest: %s\n", r);
        FUZZ_CHECK(f != NULL);
        if (S_ISDIR(st.st_mode)) {
            FUZZ_CHECK(f->is_dir);
            check_tree(m, r);
        } else {
            FUZZ_CHECK(S_ISREG(st.st_mode) && !f->is_dir && (uint64_t)st.st_size == f->size);
            FUZZ_CHECK((st.st_mode & (S_ISUID | S_ISGID)) == 0);
        }
    }
    closedir(dh);
}

static uint64_t
octal(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n && p[i] >= '0' && p[i] <= '7'; i++)
        v = v << 3 | (uint64_t)(p[i] - '0');
    return v;
}

/* Recompute the checksum of every ustar header, walking from header to header by the sizes
 * they declare, until a block that is not a header. */
static void
fix_tar_checksums(unsigned char *t, size_t len)
{
    size_t off = 0;

    while (len >= 512 && off <= len - 512) {
        unsigned char *h = t + off;
        unsigned       sum = 0;
        uint64_t       size;

        if (memcmp(h + 257, "ustar", 5) != 0)
            return;
        memset(h + 148, ' ', 8);
        for (size_t i = 0; i < 512; i++)
            sum += h[i];
        snprintf((char *)h + 148, 8, "%06o", sum & 0777777);
        size = octal(h + 124, 12);
        if (size > len)
            return;
        off += 512 + (size_t)((size + 511) / 512 * 512);
    }
}

/* A bundle that verifies holds every file its manifest lists. */
static void
check_all_there(const struct ota_manifest *m)
{
    char        p[OTA_BUNDLE_PATH_MAX + 400];
    struct stat st;

    for (size_t i = 0; i < m->nfiles; i++) {
        snprintf(p, sizeof(p), "%s/%s", dest, m->files[i].path);
        if (lstat(p, &st) != 0)
            fprintf(stderr, "manifest entry not extracted: %s\n", m->files[i].path);
        FUZZ_CHECK(lstat(p, &st) == 0);
        FUZZ_CHECK(m->files[i].is_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char  magic[4] = {0x28, 0xb5, 0x2f, 0xfd};
    struct ota_bundle_read_opts o;
    struct ota_manifest        *m = NULL;
    struct ota_diag             d;
    unsigned char              *z = NULL, *tar = NULL;
    struct mem                  in = {data, size, 0};
    ota_err                     rc;

    if (scratch[0] == '\0')
        make_scratch();
    if (size < 4 || memcmp(data, magic, 4) != 0) {
        size_t cap = ZSTD_compressBound(size), n;
        z = malloc(cap);
        tar = malloc(size + 1);
        if (z == NULL || tar == NULL)
            abort();
        memcpy(tar, data, size);
        fix_tar_checksums(tar, size);
        n = ZSTD_compress(z, cap, tar, size, 1);
        FUZZ_CHECK(!ZSTD_isError(n));
        in.p = z;
        in.len = n;
    }
    if (mkdir(dest, 0755) != 0)
        abort();

    memset(&o, 0, sizeof(o));
    o.read = mem_read;
    o.read_ctx = &in;
    o.verify = accept_any;
    o.check_manifest = check_manifest;
    o.dest_dir = dest;
    o.max_unpacked = 4u << 20; /* keep each run's disk use small */
    memset(&d, 0, sizeof(d));
    rc = ota_bundle_read(&o, &m, &d);
    fuzz_check_diag(rc, &d);
    if (rc == OTA_OK) {
        FUZZ_CHECK(m != NULL);
        check_tree(m, "");
        check_all_there(m);
    } else {
        FUZZ_CHECK(m == NULL);
    }

    check_level(scratch, "w");
    check_level(inner, "dest");
    FUZZ_CHECK(ota_rm_rf(dest, NULL) == OTA_OK);
    ota_manifest_free(m);
    free(tar);
    free(z);
    return 0;
}
