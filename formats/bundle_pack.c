/* Bundle writer: walk, hash, sign, then stream a pax tar through zstd into a temp file.
 * See ota/bundle.h and formats/bundle.md.
 *
 * Two passes over the tree. The first walks it in a fixed order, hashes every file (on as many
 * threads as zstd will use) and builds the manifest (the only thing whose size grows with the
 * tree), because the signed manifest must be the first tar member. The second writes the tar:
 * each file is opened again and must be the same inode with the same size and mtime as in the
 * first pass, so what is written is what was hashed. Tar bytes go straight from libarchive
 * into zstd's streaming compressor and from there to the temp file, hashed as they are
 * written. */
#include "bundle_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "ota/cjson.h"
#include "ota/fsutil.h"

#define IO_BUF (1u << 20)          /* file reads, both passes */
#define ZOUT_BUF (1u << 20)        /* compressed bytes gathered before a write(2) */
#define WRITEBACK_STEP (8u << 20) /* start writing the output to disk every 8 MiB */
#define ZSTD_JOB_SIZE (4u << 20)   /* per-worker job: smaller than zstd's 8 MiB default at
                                    * level 3, to keep peak memory low at no cost in speed */
#define WALK_DEPTH_MAX 256
#define LEVEL_DEFAULT 3
#define LEVEL_MAX 19               /* levels 20..22 need windows over OTA_BUNDLE_WINDOW_LOG_MAX */

/* What the first pass saw of a file, checked again in the second. */
struct seen {
    dev_t           dev;
    ino_t           ino;
    off_t           size;
    struct timespec mtime;
};

struct item {
    struct ota_manifest_file f;
    struct seen              st;
};

struct walk {
    char          *root;       /* realpath of src_dir, for symlink containment */
    size_t         root_len;
    struct item   *items;
    size_t         n, cap;
    unsigned char *buf;        /* IO_BUF */
};

struct writer {
    ZSTD_CCtx        *z;
    int               fd;
    unsigned char    *zout;
    size_t            zout_pos;
    struct ota_sha256 h;
    uint64_t          length;
    uint64_t          queued;  /* bytes handed to the disk early (sync_file_range) */
    ota_err           rc;      /* first failure inside a libarchive callback */
    struct ota_diag  *d;
};

static void
item_free_all(struct walk *w)
{
    size_t i;

    for (i = 0; i < w->n; i++)
        free(w->items[i].f.path);
    free(w->items);
    w->items = NULL;
    w->n = w->cap = 0;
}

static ota_err
add_item(struct walk *w, char *path, int is_dir, uint32_t mode, const struct stat *st,
         struct ota_diag *d)
{
    struct item *it;

    if (w->n == w->cap) {
        size_t       nc = w->cap ? w->cap * 2 : 256;
        struct item *ni;
        if (w->n >= OTA_BUNDLE_MAX_FILES) {
            free(path);
            return ota_diag_set(d, OTA_E_TOO_BIG, "tree has more than %d entries",
                                OTA_BUNDLE_MAX_FILES);
        }
        ni = realloc(w->items, nc * sizeof *ni);
        if (ni == NULL) {
            free(path);
            return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        }
        w->items = ni;
        w->cap = nc;
    }
    it = &w->items[w->n++];
    memset(it, 0, sizeof *it);
    it->f.path = path;
    it->f.is_dir = is_dir;
    it->f.mode = mode;
    if (!is_dir) {
        it->f.size = (uint64_t)st->st_size;
        it->st.dev = st->st_dev;
        it->st.ino = st->st_ino;
        it->st.size = st->st_size;
        it->st.mtime = st->st_mtim;
    }
    return OTA_OK;
}

static int
same_file(const struct seen *a, const struct stat *b)
{
    return a->dev == b->st_dev && a->ino == b->st_ino && a->size == b->st_size &&
           a->mtime.tv_sec == b->st_mtim.tv_sec && a->mtime.tv_nsec == b->st_mtim.tv_nsec;
}

static uint32_t
file_mode(const struct stat *st)
{
    /* Only the executable bit survives: a bundle has no owners to grant permissions to. */
    return (st->st_mode & 0111) ? 0755 : 0644;
}

/* A symlink is stored as a copy of its target, which must be a regular file inside the tree.
 * The target's identity is recorded; both later opens follow the link and must find it. */
static ota_err
add_symlink(struct walk *w, char *path, struct ota_diag *d)
{
    char        full[PATH_MAX], *real = NULL;
    struct stat st;
    ota_err     rc;

    rc = ota_path_fmt(full, sizeof full, d, "%s/%s", w->root, path);
    if (rc != OTA_OK)
        goto out;
    real = realpath(full, NULL);
    if (real == NULL) {
        rc = ota_diag_sys(d, OTA_E_UNSAFE_PATH, errno, "symlink '%s' does not resolve", path);
        goto out;
    }
    if (strncmp(real, w->root, w->root_len) != 0 || real[w->root_len] != '/') {
        rc = ota_diag_set(d, OTA_E_UNSAFE_PATH, "symlink '%s' points outside the tree", path);
        goto out;
    }
    if (stat(real, &st) != 0) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot stat the target of symlink '%s'", path);
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = ota_diag_set(d, OTA_E_UNSAFE_PATH, "symlink '%s' points to a directory", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = ota_diag_set(d, OTA_E_UNSAFE_PATH, "symlink '%s' points to a special file", path);
        goto out;
    }
    rc = add_item(w, path, 0, file_mode(&st), &st, d);
    path = NULL;
out:
    free(real);
    free(path);
    return rc;
}

static ota_err walk_dir(struct walk *w, int dfd, const char *rel, int depth, struct ota_diag *d);

static ota_err
walk_entry(struct walk *w, int dfd, const char *rel, const char *name, int depth,
           struct ota_diag *d)
{
    struct stat st;
    size_t      rl = rel ? strlen(rel) : 0, nl = strlen(name);
    char       *path;
    ota_err     rc;

    path = malloc(rl + nl + 2);
    if (path == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    if (rel) {
        memcpy(path, rel, rl);
        path[rl] = '/';
        memcpy(path + rl + 1, name, nl + 1);
    } else {
        memcpy(path, name, nl + 1);
    }
    rc = ota_bundle_path_check(path, strlen(path), d);
    if (rc == OTA_OK && rel == NULL && strcmp(name, OTA_BUNDLE_MANIFEST_NAME) == 0)
        rc = ota_diag_set(d, OTA_E_FORMAT, "'%s' is a reserved name", name);
    if (rc != OTA_OK)
        goto fail;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot stat '%s'", path);
        goto fail;
    }
    if (S_ISLNK(st.st_mode))
        return add_symlink(w, path, d);
    if (S_ISDIR(st.st_mode)) {
        rc = add_item(w, path, 1, 0755, &st, d);
        if (rc != OTA_OK)
            return rc;
        return walk_dir(w, dfd, w->items[w->n - 1].f.path, depth + 1, d);
    }
    if (!S_ISREG(st.st_mode)) {
        rc = ota_diag_set(d, OTA_E_UNSAFE_PATH, "'%s' is a %s, not a file or directory", path,
                          S_ISFIFO(st.st_mode)   ? "fifo"
                          : S_ISSOCK(st.st_mode) ? "socket"
                                                 : "device");
        goto fail;
    }
    return add_item(w, path, 0, file_mode(&st), &st, d);
fail:
    free(path);
    return rc;
}

/* Open a file of the tree again (following a stored symlink) and check that it is still the
 * inode the walk saw, unchanged. O_NONBLOCK: a file swapped for a fifo must not hang us. */
static ota_err
reopen(int rootfd, const struct item *it, int *out, struct ota_diag *d)
{
    struct stat st;
    int         fd;

    fd = openat(rootfd, it->f.path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot open '%s'", it->f.path);
    if (fstat(fd, &st) != 0) {
        close(fd);
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot stat '%s'", it->f.path);
    }
    if (!same_file(&it->st, &st)) {
        close(fd);
        return ota_diag_set(d, OTA_E_IO, "'%s' changed while being packed", it->f.path);
    }
    *out = fd;
    return OTA_OK;
}

/* After reading total bytes of fd: the file must not have changed meanwhile. */
static ota_err
check_unchanged(int fd, const struct item *it, uint64_t total, struct ota_diag *d)
{
    struct stat st;

    if (fstat(fd, &st) != 0)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot stat '%s'", it->f.path);
    if (total != it->f.size || !same_file(&it->st, &st))
        return ota_diag_set(d, OTA_E_IO, "'%s' changed while being packed", it->f.path);
    return OTA_OK;
}

static ota_err
hash_item(int rootfd, struct item *it, unsigned char *buf, struct ota_diag *d)
{
    struct ota_sha256 h;
    uint64_t          total = 0;
    ota_err           rc;
    int               fd;

    if ((rc = reopen(rootfd, it, &fd, d)) != OTA_OK)
        return rc;
    if ((rc = ota_sha256_init(&h)) != OTA_OK) {
        close(fd);
        return ota_diag_set(d, rc, "cannot start sha256");
    }
    for (;;) {
        ssize_t r = read(fd, buf, IO_BUF);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot read '%s'", it->f.path);
            break;
        }
        if (r == 0)
            break;
        ota_sha256_update(&h, buf, (size_t)r);
        total += (uint64_t)r;
        if (total > it->f.size)
            break; /* grew: reported by check_unchanged */
    }
    if (rc == OTA_OK)
        rc = check_unchanged(fd, it, total, d);
    if (rc == OTA_OK)
        ota_sha256_final(&h, it->f.sha256);
    ota_sha256_free(&h);
    close(fd);
    return rc;
}

/* Pass 1 hashing, spread over as many threads as zstd gets in pass 2: nothing else can run
 * until the manifest is complete, so this is the one serial stretch of a pack. */
struct hasher {
    struct walk    *w;
    int             rootfd;
    atomic_size_t   next;
    atomic_int      stop;
    pthread_mutex_t mu;
    ota_err         rc;
    struct ota_diag d;
};

static void *
hash_worker(void *arg)
{
    struct hasher  *h = arg;
    struct ota_diag d;
    unsigned char  *buf = malloc(IO_BUF);
    ota_err         rc = OTA_OK;

    if (buf == NULL)
        rc = ota_diag_set(&d, OTA_E_NOMEM, "out of memory");
    while (rc == OTA_OK && !atomic_load(&h->stop)) {
        size_t i = atomic_fetch_add(&h->next, 1);
        if (i >= h->w->n)
            break;
        if (!h->w->items[i].f.is_dir)
            rc = hash_item(h->rootfd, &h->w->items[i], buf, &d);
    }
    if (rc != OTA_OK) {
        atomic_store(&h->stop, 1);
        pthread_mutex_lock(&h->mu);
        if (h->rc == OTA_OK) {
            h->rc = rc;
            h->d = d;
        }
        pthread_mutex_unlock(&h->mu);
    }
    free(buf);
    return NULL;
}

static ota_err
hash_all(struct walk *w, int rootfd, int threads, struct ota_diag *d)
{
    struct hasher h;
    pthread_t     tid[64];
    int           i, started = 0;

    memset(&h, 0, sizeof h);
    h.w = w;
    h.rootfd = rootfd;
    atomic_init(&h.next, 0);
    atomic_init(&h.stop, 0);
    if (pthread_mutex_init(&h.mu, NULL) != 0)
        return ota_diag_set(d, OTA_E_NOMEM, "cannot create a mutex");
    /* The calling thread is one of the hashers; a thread that cannot start is just missing. */
    for (i = 1; i < threads && i < 64; i++)
        if (pthread_create(&tid[started], NULL, hash_worker, &h) == 0)
            started++;
    hash_worker(&h);
    for (i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    pthread_mutex_destroy(&h.mu);
    if (h.rc != OTA_OK && d != NULL)
        *d = h.d;
    return h.rc;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Walk one directory. rel is its path in the tree (NULL for the root); the entries of the
 * whole tree are sorted once at the end, so the order here only needs to be deterministic. */
static ota_err
walk_dir(struct walk *w, int pfd, const char *rel, int depth, struct ota_diag *d)
{
    DIR           *dir = NULL;
    struct dirent *e;
    char         **names = NULL;
    size_t         n = 0, cap = 0, i;
    int            fd;
    ota_err        rc = OTA_OK;

    if (depth > WALK_DEPTH_MAX)
        return ota_diag_set(d, OTA_E_TOO_BIG, "'%s' is nested too deeply", rel);
    fd = rel ? openat(pfd, strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel,
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
             : dup(pfd);
    if (fd < 0)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot open directory '%s'", rel ? rel : ".");
    dir = fdopendir(fd);
    if (dir == NULL) {
        close(fd);
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot read directory '%s'", rel ? rel : ".");
    }
    /* Names are read first, so that only one directory stream per level stays open while
     * the walk descends. */
    for (;;) {
        errno = 0;
        e = readdir(dir);
        if (e == NULL) {
            if (errno != 0)
                rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot read directory '%s'",
                                  rel ? rel : ".");
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nn = realloc(names, nc * sizeof *nn);
            if (nn == NULL) {
                rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
                break;
            }
            names = nn;
            cap = nc;
        }
        names[n] = strdup(e->d_name);
        if (names[n] == NULL) {
            rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
            break;
        }
        n++;
        if (w->n + n > OTA_BUNDLE_MAX_FILES) {
            rc = ota_diag_set(d, OTA_E_TOO_BIG, "tree has more than %d entries",
                              OTA_BUNDLE_MAX_FILES);
            break;
        }
    }
    if (rc == OTA_OK && n > 0) {
        qsort(names, n, sizeof *names, name_cmp);
        for (i = 0; i < n && rc == OTA_OK; i++)
            rc = walk_entry(w, dirfd(dir), rel, names[i], depth, d);
    }
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(dir);
    return rc;
}

static int
item_cmp(const void *a, const void *b)
{
    return strcmp(((const struct item *)a)->f.path, ((const struct item *)b)->f.path);
}

/* ---- output: zstd into the temp file ---- */

static ota_err
flush_out(struct writer *wr)
{
    ota_err rc;

    if (wr->zout_pos == 0)
        return OTA_OK;
    rc = ota_write_all(wr->fd, wr->zout, wr->zout_pos, wr->d);
    if (rc != OTA_OK)
        return rc;
    ota_sha256_update(&wr->h, wr->zout, wr->zout_pos);
    wr->length += wr->zout_pos;
    wr->zout_pos = 0;
    /* Start writeback while compression goes on, so the final fsync waits for the tail only.
     * A hint: failures surface at that fsync. */
    if (wr->length - wr->queued >= WRITEBACK_STEP) {
        (void)sync_file_range(wr->fd, (off_t)wr->queued, (off_t)(wr->length - wr->queued),
                              SYNC_FILE_RANGE_WRITE);
        wr->queued = wr->length;
    }
    return OTA_OK;
}

static ota_err
compress(struct writer *wr, const void *buf, size_t len, ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = { buf, len, 0 };

    for (;;) {
        ZSTD_outBuffer out = { wr->zout + wr->zout_pos, ZOUT_BUF - wr->zout_pos, 0 };
        size_t         ret = ZSTD_compressStream2(wr->z, &out, &in, mode);
        ota_err        rc;

        if (ZSTD_isError(ret))
            return ota_diag_set(wr->d, OTA_E_IO, "zstd compression failed: %s",
                                ZSTD_getErrorName(ret));
        wr->zout_pos += out.pos;
        if (wr->zout_pos == ZOUT_BUF && (rc = flush_out(wr)) != OTA_OK)
            return rc;
        if (mode == ZSTD_e_end ? ret == 0 : in.pos == in.size)
            return OTA_OK;
    }
}

static la_ssize_t
tar_write_cb(struct archive *a, void *ctx, const void *buf, size_t len)
{
    struct writer *wr = ctx;

    (void)a;
    if (wr->rc != OTA_OK)
        return -1;
    wr->rc = compress(wr, buf, len, ZSTD_e_continue);
    return wr->rc == OTA_OK ? (la_ssize_t)len : -1;
}

static ota_err
ar_fail(struct archive *a, struct writer *wr, const char *what, const char *path,
        struct ota_diag *d)
{
    if (wr->rc != OTA_OK)
        return wr->rc; /* the real cause, already in diag */
    return ota_diag_set(d, OTA_E_IO, "cannot %s '%s': %s", what, path,
                        archive_error_string(a) ? archive_error_string(a) : "libarchive error");
}

/* Tar header with nothing in it that depends on who packed the tree, or when. */
static ota_err
put_header(struct archive *a, struct archive_entry *e, struct writer *wr, const char *path,
           int is_dir, uint32_t mode, uint64_t size, struct ota_diag *d)
{
    int r;

    archive_entry_clear(e);
    archive_entry_copy_pathname(e, path);
    archive_entry_set_filetype(e, is_dir ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(e, mode);
    archive_entry_set_size(e, (la_int64_t)size);
    archive_entry_set_mtime(e, 0, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_uname(e, "");
    archive_entry_set_gname(e, "");
    r = archive_write_header(a, e);
    if (r != ARCHIVE_OK) /* a warning means a name libarchive could not store as given */
        return ar_fail(a, wr, "write the tar header of", path, d);
    return OTA_OK;
}

static ota_err
put_file(struct archive *a, struct archive_entry *e, struct writer *wr, int rootfd,
         const struct item *it, unsigned char *buf, struct ota_diag *d)
{
    uint64_t total = 0;
    ota_err  rc;
    int      fd;

    if ((rc = reopen(rootfd, it, &fd, d)) != OTA_OK)
        return rc;
    rc = put_header(a, e, wr, it->f.path, 0, it->f.mode, it->f.size, d);
    if (rc != OTA_OK)
        goto out;
    for (;;) {
        ssize_t r = read(fd, buf, IO_BUF);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot read '%s'", it->f.path);
            goto out;
        }
        if (r == 0)
            break;
        total += (uint64_t)r;
        if (total > it->f.size)
            break; /* grew: reported by check_unchanged */
        if (archive_write_data(a, buf, (size_t)r) != r) {
            rc = ar_fail(a, wr, "write", it->f.path, d);
            goto out;
        }
    }
    rc = check_unchanged(fd, it, total, d);
out:
    close(fd);
    return rc;
}

static ota_err
setup_zstd(ZSTD_CCtx **out, int level, int threads, struct ota_diag *d)
{
    ZSTD_CCtx *z = ZSTD_createCCtx();
    size_t     r;

    if (z == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "cannot create a zstd context");
    r = ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, level);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 1);
    /* At least one worker always: zstd's output is the same for every nbWorkers >= 1, and
     * differs with 0, so the bundle bytes do not depend on the machine's CPU count. */
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(z, ZSTD_c_nbWorkers, threads);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(z, ZSTD_c_jobSize, (int)ZSTD_JOB_SIZE);
    if (ZSTD_isError(r)) {
        ZSTD_freeCCtx(z);
        return ota_diag_set(d, OTA_E_IO, "cannot configure zstd: %s", ZSTD_getErrorName(r));
    }
    *out = z;
    return OTA_OK;
}

static ota_err
check_opts(const struct ota_pack_opts *o, int *level, int *threads, struct ota_diag *d)
{
    long ncpu;

    if (o == NULL || o->src_dir == NULL || o->out_path == NULL || o->release == NULL ||
        o->sign == NULL)
        return ota_diag_set(d, OTA_E_INVALID, "pack needs a source, an output, a release and a "
                                              "signer");
    if (o->level < 0 || o->level > LEVEL_MAX)
        return ota_diag_set(d, OTA_E_INVALID, "compression level %d is outside 1..%d", o->level,
                            LEVEL_MAX);
    if (o->threads < 0 || o->threads > 64)
        return ota_diag_set(d, OTA_E_INVALID, "thread count %d is outside 0..64", o->threads);
    *level = o->level ? o->level : LEVEL_DEFAULT;
    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    *threads = o->threads ? o->threads : (ncpu > 0 ? (ncpu > 64 ? 64 : (int)ncpu) : 1);
    return OTA_OK;
}

/* Sign the manifest and return the bytes of the whole document, the first tar member. */
static ota_err
manifest_bytes(const struct ota_pack_opts *o, struct ota_manifest *m, char **out, size_t *len,
               struct ota_diag *d)
{
    json_t *sig = NULL, *sigs = NULL, *doc = NULL;
    char   *canon = NULL;
    size_t  clen = 0;
    ota_err rc;

    sig = ota_manifest_signed_json(m);
    sigs = json_array();
    if (sig == NULL || sigs == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    rc = ota_cjson_encode(sig, OTA_BUNDLE_MANIFEST_MAX, &canon, &clen, d);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "manifest");
        goto out;
    }
    rc = o->sign(o->sign_ctx, canon, clen, sigs, d);
    if (rc != OTA_OK)
        goto out;
    if (json_array_size(sigs) == 0) {
        rc = ota_diag_set(d, OTA_E_INVALID, "the signer added no signature");
        goto out;
    }
    doc = json_pack("{s:O, s:O}", "signed", sig, "signatures", sigs);
    if (doc == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    rc = ota_cjson_encode(doc, OTA_BUNDLE_MANIFEST_MAX, out, len, d);
    if (rc != OTA_OK)
        ota_diag_prefix(d, "manifest");
out:
    free(canon);
    json_decref(doc);
    json_decref(sig);
    json_decref(sigs);
    return rc;
}

/* Move the walk's items into a sorted manifest; the stat records stay in w->items. */
static ota_err
build_manifest(const struct ota_pack_opts *o, struct walk *w, struct ota_manifest **out,
               struct ota_diag *d)
{
    struct ota_manifest *m;
    size_t               i;
    ota_err              rc;

    if (w->n > 0)
        qsort(w->items, w->n, sizeof *w->items, item_cmp);
    m = calloc(1, sizeof *m);
    if (m == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    rc = ota_release_copy(&m->release, o->release, d);
    if (rc != OTA_OK)
        goto fail;
    if (w->n > 0) {
        m->files = calloc(w->n, sizeof *m->files);
        if (m->files == NULL) {
            rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
            goto fail;
        }
    }
    for (i = 0; i < w->n; i++) {
        m->files[i] = w->items[i].f;
        m->total_size += w->items[i].f.size;
    }
    /* The manifest owns the paths now; w->items keeps borrowed copies of the pointers. */
    m->nfiles = w->n;
    *out = m;
    return OTA_OK;
fail:
    ota_manifest_free(m);
    return rc;
}

ota_err
ota_bundle_pack(const struct ota_pack_opts *o, struct ota_pack_result *res, struct ota_diag *d)
{
    struct walk           w;
    struct writer         wr;
    struct ota_manifest  *m = NULL;
    struct archive       *a = NULL;
    struct archive_entry *e = NULL;
    struct stat           st;
    char                  tmp[PATH_MAX];
    char                 *mbytes = NULL;
    size_t                mlen = 0, i;
    uint64_t              done = 0, nreg = 0;
    int                   level = 0, threads = 0, rootfd = -1, have_tmp = 0;
    locale_t              loc, oldloc;
    ota_err               rc;

    memset(&w, 0, sizeof w);
    memset(&wr, 0, sizeof wr);
    wr.fd = -1;
    wr.d = d;
    loc = ota_bundle_locale_enter(&oldloc);
    if ((rc = check_opts(o, &level, &threads, d)) != OTA_OK)
        goto out;
    if ((rc = ota_release_validate(o->release, d)) != OTA_OK) {
        ota_diag_prefix(d, "release");
        goto out;
    }
    if (!o->force && lstat(o->out_path, &st) == 0) {
        rc = ota_diag_set(d, OTA_E_EXISTS, "'%s' already exists", o->out_path);
        goto out;
    }
    w.root = realpath(o->src_dir, NULL);
    if (w.root == NULL) {
        rc = ota_diag_sys(d, errno == ENOENT ? OTA_E_NOT_FOUND : OTA_E_IO, errno,
                          "cannot resolve '%s'", o->src_dir);
        goto out;
    }
    w.root_len = strlen(w.root);
    w.buf = malloc(IO_BUF);
    wr.zout = malloc(ZOUT_BUF);
    if (w.buf == NULL || wr.zout == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    rootfd = open(w.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot open directory '%s'", o->src_dir);
        goto out;
    }

    /* Pass 1: walk and hash. */
    rc = walk_dir(&w, rootfd, NULL, 0, d);
    if (rc != OTA_OK)
        goto out;
    rc = hash_all(&w, rootfd, threads, d);
    if (rc != OTA_OK)
        goto out;
    rc = build_manifest(o, &w, &m, d);
    if (rc != OTA_OK)
        goto out;
    rc = manifest_bytes(o, m, &mbytes, &mlen, d);
    if (rc != OTA_OK)
        goto out;

    /* Pass 2: the tar stream, compressed into a temp file beside the output. */
    if ((rc = setup_zstd(&wr.z, level, threads, d)) != OTA_OK)
        goto out;
    if ((rc = ota_sha256_init(&wr.h)) != OTA_OK) {
        ota_diag_set(d, rc, "cannot start sha256");
        goto out;
    }
    wr.fd = ota_tmpfile_beside(o->out_path, 0644, tmp, sizeof tmp, d);
    if (wr.fd < 0) {
        rc = d && d->sys_errno == 0 ? OTA_E_TOO_BIG : OTA_E_IO;
        goto out;
    }
    have_tmp = 1;
    a = archive_write_new();
    e = archive_entry_new();
    if (a == NULL || e == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    /* bytes_per_block 0: no 10 KiB record padding, and libarchive hands our buffers to the
     * callback as they are instead of copying them into blocks. */
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_add_filter_none(a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(a, 0) != ARCHIVE_OK ||
        archive_write_open(a, &wr, NULL, tar_write_cb, NULL) != ARCHIVE_OK) {
        rc = ar_fail(a, &wr, "start the tar stream of", o->out_path, d);
        goto out;
    }
    rc = put_header(a, e, &wr, OTA_BUNDLE_MANIFEST_NAME, 0, 0644, mlen, d);
    if (rc != OTA_OK)
        goto out;
    if (archive_write_data(a, mbytes, mlen) != (la_ssize_t)mlen) {
        rc = ar_fail(a, &wr, "write", OTA_BUNDLE_MANIFEST_NAME, d);
        goto out;
    }
    for (i = 0; i < m->nfiles; i++) {
        const struct item *it = &w.items[i];
        if (it->f.is_dir) {
            rc = put_header(a, e, &wr, it->f.path, 1, 0755, 0, d);
        } else {
            rc = put_file(a, e, &wr, rootfd, it, w.buf, d);
            done += it->f.size;
            nreg++;
        }
        if (rc != OTA_OK)
            goto out;
        if (o->progress != NULL && !it->f.is_dir)
            o->progress(o->progress_ctx, done, m->total_size);
    }
    if (archive_write_close(a) != ARCHIVE_OK) {
        rc = ar_fail(a, &wr, "finish the tar stream of", o->out_path, d);
        goto out;
    }
    if ((rc = compress(&wr, NULL, 0, ZSTD_e_end)) != OTA_OK || (rc = flush_out(&wr)) != OTA_OK)
        goto out;

    /* Commit: rename over the output (force), or link so an output that appeared meanwhile
     * is never replaced. */
    if (o->force) {
        rc = ota_commit_tmpfile(wr.fd, tmp, o->out_path, d);
        wr.fd = -1;
        have_tmp = 0; /* removed by ota_commit_tmpfile on failure */
        if (rc != OTA_OK)
            goto out;
    } else {
        int fd = wr.fd;
        wr.fd = -1;
        if (fsync(fd) != 0) {
            rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot fsync '%s'", tmp);
            close(fd);
            goto out;
        }
        if (close(fd) != 0) {
            rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot close '%s'", tmp);
            goto out;
        }
        if (link(tmp, o->out_path) != 0) {
            rc = errno == EEXIST
                     ? ota_diag_set(d, OTA_E_EXISTS, "'%s' already exists", o->out_path)
                     : ota_diag_sys(d, OTA_E_IO, errno, "cannot create '%s'", o->out_path);
            goto out;
        }
        unlink(tmp);
        have_tmp = 0;
        if ((rc = ota_fsync_parent(o->out_path, d)) != OTA_OK)
            goto out;
    }
    if (res != NULL) {
        ota_sha256_final(&wr.h, res->sha256);
        res->length = wr.length;
        res->nfiles = nreg;
        res->payload_bytes = m->total_size;
    }
out:
    if (a != NULL) {
        /* After a failure, free still finishes the tar; the callback then refuses the bytes.
         * (archive_write_fail would skip that, but also leak libarchive's output state.) */
        if (rc != OTA_OK && wr.rc == OTA_OK)
            wr.rc = rc;
        archive_write_free(a);
    }
    archive_entry_free(e);
    if (wr.fd >= 0)
        close(wr.fd);
    if (have_tmp)
        unlink(tmp);
    ota_sha256_free(&wr.h);
    ZSTD_freeCCtx(wr.z);
    free(wr.zout);
    if (rootfd >= 0)
        close(rootfd);
    if (m != NULL) {
        ota_manifest_free(m); /* frees the paths w.items borrows */
        free(w.items);
    } else {
        item_free_all(&w);
    }
    free(w.buf);
    free(w.root);
    free(mbytes);
    ota_bundle_locale_leave(loc, oldloc);
    return rc;
}
