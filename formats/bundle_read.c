/* Bundle reader: one pass over the compressed stream, which is hashed and counted as it is
 * read, decompressed with a capped window, and handed to libarchive's tar reader. The
 * manifest (first member) is authenticated before it is parsed; every later entry must be
 * the next one the manifest lists and is checked against it while it streams.
 * See ota/bundle.h and formats/bundle.md. */
#include "bundle_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "ota/cjson.h"
#include "ota/fsutil.h"

#define IN_BUF (256u << 10)  /* compressed bytes per read callback */
#define OUT_BUF (256u << 10) /* decompressed bytes handed to libarchive per callback */
/* Tar bytes allowed per entry besides its data: the ustar header, a pax header with its
 * records (a 1 KiB path fits several times) and the data's padding to 512 bytes. */
#define HDR_ALLOW 8192u
/* After the last entry: the two zero blocks that end a tar, padding to a 10240-byte record
 * that other tar writers add, and one more block of slack. */
#define END_ALLOW (10240u + 1024u)
#define UNPACKED_DEFAULT (16ull << 30)

struct reader {
    const struct ota_bundle_read_opts *o;
    struct ota_diag                   *d;
    ota_err                            rc;       /* failure inside the libarchive callback */
    ZSTD_DCtx                         *z;
    unsigned char                     *in, *out;
    ZSTD_inBuffer                      zin;
    size_t                             zlast;    /* last zstd result: 0 at a frame end */
    int                                src_eof;
    struct ota_sha256                  h;
    uint64_t                           nread;    /* compressed bytes */
    uint64_t                           produced; /* decompressed bytes given to libarchive */
    uint64_t                           budget;   /* cap on produced, raised entry by entry */
    /* extraction */
    int                                rootfd;   /* dest_dir, -1 in verify-only mode */
    int                                curfd;    /* cached parent directory of the last entry */
    char                               cur[OTA_BUNDLE_PATH_MAX + 1];
    size_t                             curlen;
};

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static ota_err
pull(struct reader *r)
{
    const struct ota_bundle_read_opts *o = r->o;
    size_t                             got = 0;
    ota_err                            rc;

    rc = o->read(o->read_ctx, r->in, IN_BUF, &got, r->d);
    if (rc != OTA_OK)
        return rc;
    if (got > IN_BUF)
        return ota_diag_set(r->d, OTA_E_INVALID, "read callback returned more than asked");
    if (got == 0) {
        r->src_eof = 1;
        return OTA_OK;
    }
    r->nread += got;
    if (o->max_length != 0 && r->nread > o->max_length)
        return ota_diag_set(r->d, OTA_E_LENGTH, "bundle is longer than %llu bytes",
                            (unsigned long long)o->max_length);
    if (o->expect_length != 0 && r->nread > o->expect_length)
        return ota_diag_set(r->d, OTA_E_LENGTH, "bundle is longer than the expected %llu bytes",
                            (unsigned long long)o->expect_length);
    ota_sha256_update(&r->h, r->in, got);
    r->zin.src = r->in;
    r->zin.size = got;
    r->zin.pos = 0;
    if (o->progress != NULL)
        o->progress(o->progress_ctx, r->nread, o->expect_length);
    return OTA_OK;
}

static ota_err
truncated(struct reader *r)
{
    if (r->o->expect_length != 0 && r->nread != r->o->expect_length)
        return ota_diag_set(r->d, OTA_E_LENGTH, "bundle is %llu bytes, expected %llu",
                            (unsigned long long)r->nread,
                            (unsigned long long)r->o->expect_length);
    return ota_diag_set(r->d, OTA_E_FORMAT, "bundle is truncated (zstd frame incomplete)");
}

/* Decompress up to OUT_BUF bytes into r->out; *n = 0 only at the clean end of the stream
 * (source exhausted exactly at the end of a zstd frame). */
static ota_err
produce(struct reader *r, size_t *n)
{
    ZSTD_outBuffer out = { r->out, OUT_BUF, 0 };
    ota_err        rc;

    while (out.pos == 0) {
        size_t ret;

        if (r->zin.pos == r->zin.size && !r->src_eof) {
            if ((rc = pull(r)) != OTA_OK)
                return rc;
            continue;
        }
        if (r->zin.pos == r->zin.size && r->zlast == 0)
            break;
        ret = ZSTD_decompressStream(r->z, &out, &r->zin);
        if (ZSTD_isError(ret)) {
            ZSTD_ErrorCode c = ZSTD_getErrorCode(ret);
            if (c == ZSTD_error_frameParameter_windowTooLarge)
                return ota_diag_set(r->d, OTA_E_TOO_BIG,
                                    "zstd frame needs a window over %u bytes",
                                    1u << OTA_BUNDLE_WINDOW_LOG_MAX);
            if (c == ZSTD_error_checksum_wrong)
                return ota_diag_set(r->d, OTA_E_DIGEST, "zstd content checksum does not match");
            return ota_diag_set(r->d, OTA_E_FORMAT, "bad zstd stream: %s",
                                ZSTD_getErrorName(ret));
        }
        r->zlast = ret;
        if (out.pos == 0 && r->zin.pos == r->zin.size && r->src_eof) {
            if (ret != 0)
                return truncated(r);
            break;
        }
    }
    r->produced += out.pos;
    if (r->produced > r->budget)
        return ota_diag_set(r->d, OTA_E_TOO_BIG,
                            "tar stream is larger than the manifest's entries allow");
    *n = out.pos;
    return OTA_OK;
}

static la_ssize_t
tar_read_cb(struct archive *a, void *ctx, const void **buf)
{
    struct reader *r = ctx;
    size_t         n = 0;

    if (r->rc == OTA_OK)
        r->rc = produce(r, &n);
    if (r->rc != OTA_OK) {
        archive_set_error(a, EINVAL, "%s", r->d->msg);
        return ARCHIVE_FATAL;
    }
    *buf = r->out;
    return (la_ssize_t)n;
}

/* Error of a failed libarchive call: ours if it came from the callback, else the tar's. */
static ota_err
ar_err(struct reader *r, struct archive *a, const char *what)
{
    if (r->rc != OTA_OK)
        return r->rc;
    return ota_diag_set(r->d, OTA_E_FORMAT, "bad tar stream %s: %s", what,
                        archive_error_string(a) ? archive_error_string(a) : "unknown error");
}

static ota_err
read_manifest(struct reader *r, struct archive *a, struct ota_manifest **out)
{
    static const char *const top_keys[] = { "signed", "signatures", NULL };
    struct archive_entry    *e;
    const char              *name;
    unsigned char           *buf = NULL;
    char                    *canon = NULL;
    size_t                   clen = 0, got = 0;
    la_int64_t               size;
    json_t                  *doc = NULL, *sig, *sigs;
    struct ota_manifest     *m = NULL;
    int                      ret;
    ota_err                  rc;

    ret = archive_read_next_header(a, &e);
    if (ret == ARCHIVE_EOF) {
        rc = ota_diag_set(r->d, OTA_E_FORMAT, "bundle holds no manifest");
        goto out;
    }
    if (ret != ARCHIVE_OK && ret != ARCHIVE_WARN) {
        rc = ar_err(r, a, "at the manifest");
        goto out;
    }
    name = archive_entry_pathname_utf8(e);
    if (name == NULL || strcmp(name, OTA_BUNDLE_MANIFEST_NAME) != 0 ||
        archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) != NULL) {
        rc = ota_diag_set(r->d, OTA_E_FORMAT, "first member is '%.64s', not '%s'",
                          name ? name : "?", OTA_BUNDLE_MANIFEST_NAME);
        goto out;
    }
    size = archive_entry_size(e);
    if (!archive_entry_size_is_set(e) || size < 0) {
        rc = ota_diag_set(r->d, OTA_E_FORMAT, "manifest has no size");
        goto out;
    }
    if ((uint64_t)size > OTA_BUNDLE_MANIFEST_MAX) {
        rc = ota_diag_set(r->d, OTA_E_TOO_BIG, "manifest of %lld bytes is over %u bytes",
                          (long long)size, OTA_BUNDLE_MANIFEST_MAX);
        goto out;
    }
    buf = malloc((size_t)size + 1);
    if (buf == NULL) {
        rc = ota_diag_set(r->d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    while (got < (size_t)size) {
        la_ssize_t n = archive_read_data(a, buf + got, (size_t)size - got);
        if (n < 0) {
            rc = ar_err(r, a, "in the manifest");
            goto out;
        }
        if (n == 0) {
            rc = ota_diag_set(r->d, OTA_E_FORMAT, "manifest is truncated");
            goto out;
        }
        got += (size_t)n;
    }

    /* Authenticate the canonical bytes of "signed" before looking inside it. */
    rc = ota_cjson_parse(buf, got, OTA_BUNDLE_MANIFEST_MAX, &doc, r->d);
    if (rc != OTA_OK) {
        ota_diag_prefix(r->d, "manifest");
        goto out;
    }
    if (!json_is_object(doc) || (rc = ota_json_only_keys(doc, top_keys, r->d)) != OTA_OK ||
        !json_is_object(sig = json_object_get(doc, "signed")) ||
        !json_is_array(sigs = json_object_get(doc, "signatures"))) {
        rc = ota_diag_set(r->d, OTA_E_FORMAT,
                          "manifest must be {\"signed\":{...},\"signatures\":[...]}");
        goto out;
    }
    rc = ota_cjson_encode(sig, OTA_BUNDLE_MANIFEST_MAX, &canon, &clen, r->d);
    if (rc != OTA_OK)
        goto out;
    rc = r->o->verify(r->o->verify_ctx, canon, clen, sigs, r->d);
    if (rc != OTA_OK)
        goto out;
    rc = ota_manifest_parse_signed(sig, &m, r->d);
    if (rc != OTA_OK) {
        ota_diag_prefix(r->d, "manifest");
        goto out;
    }
    m->signatures = json_incref(sigs);
    *out = m;
out:
    json_decref(doc);
    free(canon);
    free(buf);
    return rc;
}

/* Check a tar entry against the manifest entry it must be. */
static ota_err
check_entry(struct reader *r, struct archive_entry *e, const struct ota_manifest *m, size_t i)
{
    const struct ota_manifest_file *f = &m->files[i];
    const char                     *name = archive_entry_pathname_utf8(e);
    unsigned                        type = archive_entry_filetype(e);
    unsigned                        perm = archive_entry_mode(e) & 07777;
    size_t                          len;
    ota_err                         rc;

    if (name == NULL)
        return ota_diag_set(r->d, OTA_E_FORMAT, "entry %zu has a name that is not UTF-8", i + 1);
    if (archive_entry_hardlink(e) != NULL)
        return ota_diag_set(r->d, OTA_E_UNSAFE_PATH, "'%.200s' is a hard link", name);
    if (type == AE_IFLNK)
        return ota_diag_set(r->d, OTA_E_UNSAFE_PATH, "'%.200s' is a symbolic link", name);
    if (type != AE_IFREG && type != AE_IFDIR)
        return ota_diag_set(r->d, OTA_E_UNSAFE_PATH, "'%.200s' is a device, fifo or socket",
                            name);
    len = strlen(name);
    if (type == AE_IFDIR && len > 1 && name[len - 1] == '/')
        len--; /* tar writers mark directories with one trailing slash */
    if ((rc = ota_bundle_path_check(name, len, r->d)) != OTA_OK)
        return rc;
    if (perm & 07000)
        return ota_diag_set(r->d, OTA_E_UNSAFE_PATH, "'%.*s' has mode %04o (setuid or setgid)",
                            (int)len, name, perm);
    if (len != strlen(f->path) || memcmp(name, f->path, len) != 0) {
        const char *prev = i > 0 ? m->files[i - 1].path : OTA_BUNDLE_MANIFEST_NAME;
        if (strlen(prev) == len && memcmp(prev, name, len) == 0)
            return ota_diag_set(r->d, OTA_E_FORMAT, "'%.*s' appears twice", (int)len, name);
        return ota_diag_set(r->d, OTA_E_FORMAT, "entry '%.*s' is not the next one the manifest "
                                                "lists ('%s')",
                            (int)len, name, f->path);
    }
    if ((type == AE_IFDIR) != (f->is_dir != 0))
        return ota_diag_set(r->d, OTA_E_FORMAT, "'%s' is a %s in the manifest", f->path,
                            f->is_dir ? "directory" : "file");
    if (perm != f->mode)
        return ota_diag_set(r->d, OTA_E_FORMAT, "'%s' has mode %04o, the manifest says %04o",
                            f->path, perm, (unsigned)f->mode);
    if (archive_entry_sparse_count(e) > 0)
        return ota_diag_set(r->d, OTA_E_FORMAT, "'%s' is a sparse file", f->path);
    if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0 ||
        (uint64_t)archive_entry_size(e) != f->size)
        return ota_diag_set(r->d, OTA_E_LENGTH, "'%s' has %lld bytes in the tar, %llu in the "
                                                "manifest",
                            f->path, (long long)archive_entry_size(e),
                            (unsigned long long)f->size);
    return OTA_OK;
}

/* Directory fd holding path's last component (cached for runs of siblings) and that
 * component. Each directory is opened O_NOFOLLOW from dest_dir down: the manifest lists every
 * parent before its children and we created each one, so no component can lead elsewhere. */
static ota_err
parent_of(struct reader *r, const char *path, int *pfd, const char **leaf)
{
    const char *slash = strrchr(path, '/');
    size_t      plen, i, start = 0;
    int         fd;

    if (slash == NULL) {
        *pfd = r->rootfd;
        *leaf = path;
        return OTA_OK;
    }
    plen = (size_t)(slash - path);
    *leaf = slash + 1;
    if (r->curfd >= 0 && r->curlen == plen && memcmp(r->cur, path, plen) == 0) {
        *pfd = r->curfd;
        return OTA_OK;
    }
    if (r->curfd >= 0)
        close(r->curfd);
    r->curfd = -1;
    memcpy(r->cur, path, plen);
    r->cur[plen] = '\0';
    fd = r->rootfd;
    for (i = 0; i <= plen; i++) {
        int nfd;
        if (i < plen && r->cur[i] != '/')
            continue;
        r->cur[i] = '\0';
        nfd = openat(fd, r->cur + start, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (i < plen)
            r->cur[i] = '/';
        if (fd != r->rootfd)
            close(fd);
        if (nfd < 0)
            return ota_diag_sys(r->d, OTA_E_IO, errno, "cannot open directory '%.*s'", (int)i,
                                path);
        fd = nfd;
        start = i + 1;
    }
    r->curfd = fd;
    r->curlen = plen;
    *pfd = fd;
    return OTA_OK;
}

static ota_err
make_dir(struct reader *r, const struct ota_manifest_file *f)
{
    const char *leaf;
    int         pfd, fd;
    ota_err     rc;

    if ((rc = parent_of(r, f->path, &pfd, &leaf)) != OTA_OK)
        return rc;
    if (mkdirat(pfd, leaf, 0700) != 0)
        return ota_diag_sys(r->d, errno == EEXIST ? OTA_E_FORMAT : OTA_E_IO, errno,
                            "cannot create directory '%s'", f->path);
    fd = openat(pfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ota_diag_sys(r->d, OTA_E_IO, errno, "cannot open directory '%s'", f->path);
    if (fchmod(fd, f->mode) != 0) {
        rc = ota_diag_sys(r->d, OTA_E_IO, errno, "cannot set the mode of '%s'", f->path);
        close(fd);
        return rc;
    }
    close(fd);
    return OTA_OK;
}

/* Stream one file's data: hashed always, written when extracting, never past its size. */
static ota_err
take_file(struct reader *r, struct archive *a, const struct ota_manifest_file *f)
{
    unsigned char     md[OTA_SHA256_LEN];
    struct ota_sha256 h;
    uint64_t          done = 0;
    const char       *leaf;
    int               pfd, fd = -1;
    ota_err           rc;

    if ((rc = ota_sha256_init(&h)) != OTA_OK)
        return ota_diag_set(r->d, rc, "cannot start sha256");
    if (r->rootfd >= 0) {
        if ((rc = parent_of(r, f->path, &pfd, &leaf)) != OTA_OK)
            goto out;
        fd = openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            rc = ota_diag_sys(r->d, errno == EEXIST ? OTA_E_FORMAT : OTA_E_IO, errno,
                              "cannot create '%s'", f->path);
            goto out;
        }
    }
    for (;;) {
        const void *buf;
        size_t      n;
        la_int64_t  off;
        int         ret = archive_read_data_block(a, &buf, &n, &off);

        if (ret == ARCHIVE_EOF)
            break;
        if (ret != ARCHIVE_OK && ret != ARCHIVE_WARN) {
            rc = ar_err(r, a, "in a file");
            ota_diag_prefix(r->d, "'%s'", f->path);
            goto out;
        }
        if (off < 0 || (uint64_t)off != done) {
            rc = ota_diag_set(r->d, OTA_E_FORMAT, "'%s' has a hole", f->path);
            goto out;
        }
        if (n > f->size - done) {
            rc = ota_diag_set(r->d, OTA_E_LENGTH, "'%s' has more than the %llu bytes declared",
                              f->path, (unsigned long long)f->size);
            goto out;
        }
        ota_sha256_update(&h, buf, n);
        if (fd >= 0 && (rc = ota_write_all(fd, buf, n, r->d)) != OTA_OK) {
            ota_diag_prefix(r->d, "'%s'", f->path);
            goto out;
        }
        done += n;
    }
    if (done != f->size) {
        rc = ota_diag_set(r->d, OTA_E_LENGTH, "'%s' has %llu of the %llu bytes declared",
                          f->path, (unsigned long long)done, (unsigned long long)f->size);
        goto out;
    }
    ota_sha256_final(&h, md);
    if (memcmp(md, f->sha256, OTA_SHA256_LEN) != 0) {
        rc = ota_diag_set(r->d, OTA_E_DIGEST, "'%s' does not match its sha256", f->path);
        goto out;
    }
    if (fd >= 0) {
        if (fchmod(fd, f->mode) != 0) {
            rc = ota_diag_sys(r->d, OTA_E_IO, errno, "cannot set the mode of '%s'", f->path);
            goto out;
        }
        if (close(fd) != 0) {
            fd = -1;
            rc = ota_diag_sys(r->d, OTA_E_IO, errno, "cannot write '%s'", f->path);
            goto out;
        }
        fd = -1;
    }
out:
    ota_sha256_free(&h);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* After the tar's end marker: only zero bytes, then the end of the last zstd frame, then the
 * end of the source. */
static ota_err
drain(struct reader *r)
{
    for (;;) {
        size_t  n = 0, i;
        ota_err rc = produce(r, &n);

        if (rc != OTA_OK)
            return rc;
        if (n == 0)
            return OTA_OK;
        for (i = 0; i < n; i++)
            if (r->out[i] != 0)
                return ota_diag_set(r->d, OTA_E_FORMAT, "data after the end of the tar stream");
    }
}

static ota_err
open_dest(struct reader *r, const char *dir_path)
{
    DIR           *dir;
    struct dirent *e;
    int            fd, empty = 1;

    r->rootfd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (r->rootfd < 0)
        return ota_diag_sys(r->d, errno == ENOENT ? OTA_E_NOT_FOUND : OTA_E_IO, errno,
                            "cannot open directory '%s'", dir_path);
    fd = dup(r->rootfd);
    if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
        if (fd >= 0)
            close(fd);
        return ota_diag_sys(r->d, OTA_E_IO, errno, "cannot read directory '%s'", dir_path);
    }
    while ((e = readdir(dir)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = 0;
    closedir(dir);
    if (!empty)
        return ota_diag_set(r->d, OTA_E_EXISTS, "'%s' is not empty", dir_path);
    return OTA_OK;
}

static ota_err
read_entries(struct reader *r, struct archive *a, const struct ota_manifest *m)
{
    struct archive_entry *e;
    uint64_t              allow = sat_add(r->produced, OUT_BUF);
    size_t                i;
    int                   ret;
    ota_err               rc;

    for (i = 0; i < m->nfiles; i++) {
        const struct ota_manifest_file *f = &m->files[i];

        /* Unpacked bytes may grow only by what this entry declares plus its headers: a bomb
         * (or an oversized pax record) stops here, not after filling the disk. */
        allow = sat_add(allow, sat_add(HDR_ALLOW, f->size));
        r->budget = allow;
        ret = archive_read_next_header(a, &e);
        if (ret == ARCHIVE_EOF)
            return ota_diag_set(r->d, OTA_E_FORMAT, "bundle ends before '%s'", f->path);
        if (ret != ARCHIVE_OK && ret != ARCHIVE_WARN)
            return ar_err(r, a, "at an entry header");
        if ((rc = check_entry(r, e, m, i)) != OTA_OK)
            return rc;
        if (f->is_dir)
            rc = r->rootfd >= 0 ? make_dir(r, f) : OTA_OK;
        else
            rc = take_file(r, a, f);
        if (rc != OTA_OK)
            return rc;
    }
    r->budget = sat_add(allow, END_ALLOW);
    ret = archive_read_next_header(a, &e);
    if (ret == ARCHIVE_OK || ret == ARCHIVE_WARN) {
        const char *name = archive_entry_pathname_utf8(e);
        return ota_diag_set(r->d, OTA_E_FORMAT, "entry '%.200s' is not in the manifest",
                            name ? name : "?");
    }
    if (ret != ARCHIVE_EOF)
        return ar_err(r, a, "after the last entry");
    return drain(r);
}

ota_err
ota_bundle_read(const struct ota_bundle_read_opts *o, struct ota_manifest **out,
                struct ota_diag *d)
{
    struct ota_diag      dlocal;
    struct reader        r;
    struct archive      *a = NULL;
    struct ota_manifest *m = NULL;
    unsigned char        md[OTA_SHA256_LEN];
    uint64_t             max_unpacked;
    locale_t             loc, oldloc;
    size_t               zr;
    ota_err              rc;

    if (d == NULL)
        d = &dlocal;
    memset(&r, 0, sizeof r);
    r.o = o;
    r.d = d;
    r.rootfd = r.curfd = -1;
    r.zlast = 1; /* no frame seen yet: an empty source is truncated */
    loc = ota_bundle_locale_enter(&oldloc);
    if (o == NULL || o->read == NULL || o->verify == NULL) {
        rc = ota_diag_set(d, OTA_E_INVALID, "bundle read needs a reader and a verifier");
        goto out;
    }
    max_unpacked = o->max_unpacked ? o->max_unpacked : UNPACKED_DEFAULT;
    if (o->dest_dir != NULL && (rc = open_dest(&r, o->dest_dir)) != OTA_OK)
        goto out;
    r.in = malloc(IN_BUF);
    r.out = malloc(OUT_BUF);
    r.z = ZSTD_createDCtx();
    if (r.in == NULL || r.out == NULL || r.z == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    zr = ZSTD_DCtx_setParameter(r.z, ZSTD_d_windowLogMax, OTA_BUNDLE_WINDOW_LOG_MAX);
    if (ZSTD_isError(zr)) {
        rc = ota_diag_set(d, OTA_E_IO, "cannot configure zstd: %s", ZSTD_getErrorName(zr));
        goto out;
    }
    if ((rc = ota_sha256_init(&r.h)) != OTA_OK) {
        ota_diag_set(d, rc, "cannot start sha256");
        goto out;
    }
    r.budget = (uint64_t)OTA_BUNDLE_MANIFEST_MAX + HDR_ALLOW + OUT_BUF;
    a = archive_read_new();
    if (a == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    /* tar only, and no libarchive filters: decompression is ours, with its window cap. */
    if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_open(a, &r, NULL, tar_read_cb, NULL) != ARCHIVE_OK) {
        rc = ar_err(&r, a, "at its start");
        goto out;
    }
    if ((rc = read_manifest(&r, a, &m)) != OTA_OK)
        goto out;
    if (m->total_size > max_unpacked) {
        rc = ota_diag_set(d, OTA_E_TOO_BIG, "bundle unpacks to %llu bytes, over the %llu cap",
                          (unsigned long long)m->total_size, (unsigned long long)max_unpacked);
        goto out;
    }
    if (o->check_manifest != NULL && (rc = o->check_manifest(o->check_ctx, m, d)) != OTA_OK)
        goto out;
    if ((rc = read_entries(&r, a, m)) != OTA_OK)
        goto out;
    if (o->expect_length != 0 && r.nread != o->expect_length) {
        rc = ota_diag_set(d, OTA_E_LENGTH, "bundle is %llu bytes, expected %llu",
                          (unsigned long long)r.nread, (unsigned long long)o->expect_length);
        goto out;
    }
    ota_sha256_final(&r.h, md);
    if (o->expect_sha256 != NULL && memcmp(md, o->expect_sha256, OTA_SHA256_LEN) != 0) {
        rc = ota_diag_set(d, OTA_E_DIGEST, "bundle does not match its expected sha256");
        goto out;
    }
    if (o->sync && r.rootfd >= 0 && syncfs(r.rootfd) != 0) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot sync '%s'", o->dest_dir);
        goto out;
    }
    if (out != NULL) {
        *out = m;
        m = NULL;
    }
out:
    if (a != NULL)
        archive_read_free(a);
    ZSTD_freeDCtx(r.z);
    ota_sha256_free(&r.h);
    free(r.in);
    free(r.out);
    if (r.curfd >= 0)
        close(r.curfd);
    if (r.rootfd >= 0)
        close(r.rootfd);
    ota_manifest_free(m);
    ota_bundle_locale_leave(loc, oldloc);
    return rc;
}

struct fd_source {
    int         fd;
    const char *path;
};

static ota_err
fd_read(void *ctx, void *buf, size_t cap, size_t *got, struct ota_diag *d)
{
    struct fd_source *s = ctx;

    for (;;) {
        ssize_t n = read(s->fd, buf, cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ota_diag_sys(d, OTA_E_IO, errno, "cannot read '%s'", s->path);
        *got = (size_t)n;
        return OTA_OK;
    }
}

ota_err
ota_bundle_read_file(const char *path, struct ota_bundle_read_opts *o,
                     struct ota_manifest **out, struct ota_diag *d)
{
    struct ota_bundle_read_opts lo;
    struct fd_source            src;
    struct stat                 st;
    ota_err                     rc;

    if (o == NULL)
        return ota_diag_set(d, OTA_E_INVALID, "bundle read needs options");
    src.path = path;
    src.fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (src.fd < 0)
        return ota_diag_sys(d, errno == ENOENT ? OTA_E_NOT_FOUND : OTA_E_IO, errno,
                            "cannot open '%s'", path);
    if (fstat(src.fd, &st) != 0) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot stat '%s'", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "'%s' is not a regular file", path);
        goto out;
    }
    /* A file's length is known up front: a wrong one fails before any work. */
    if ((o->expect_length != 0 && (uint64_t)st.st_size != o->expect_length) ||
        (o->max_length != 0 && (uint64_t)st.st_size > o->max_length)) {
        rc = ota_diag_set(d, OTA_E_LENGTH, "'%s' is %lld bytes, expected %s%llu", path,
                          (long long)st.st_size, o->expect_length ? "" : "at most ",
                          (unsigned long long)(o->expect_length ? o->expect_length
                                                                : o->max_length));
        goto out;
    }
    (void)posix_fadvise(src.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    /* The reader lives in this frame, so it goes into a copy of the options; the caller's
     * read/read_ctx are left as they were. */
    lo = *o;
    lo.read = fd_read;
    lo.read_ctx = &src;
    rc = ota_bundle_read(&lo, out, d);
out:
    close(src.fd);
    return rc;
}
