/* Bundle reader: one pass over the compressed stream, which is counted as it is read, hashed
 * and decompressed with a capped window (in a worker thread), and handed to libarchive's tar
 * reader. The manifest (first member) is authenticated before it is parsed; every later entry
 * must be the next one the manifest lists and is checked against it while it streams.
 * See ota/bundle.h and formats/bundle.md. */
#include "bundle_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
#define WRITEBACK_STEP (8u << 20) /* start writing a large file to disk every 8 MiB */

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* The compressed side runs in a worker thread: it hashes each chunk of compressed bytes and
 * decompresses it into a small ring of blocks, while the calling thread parses the tar,
 * hashes and writes files. Every callback of the caller (read, progress, verify, check) still
 * runs on the calling thread: it reads the chunks and hands them over. Both rings are small,
 * so the worker runs at most NOUT blocks ahead of what the reader has accepted, and the
 * unpacked-bytes budget is enforced where blocks are handed to libarchive. */
#define NIN 4
#define NOUT 4
#define TRUNCATED_RC (-1) /* worker's private code: the stream ended inside a frame */

struct pipe {
    pthread_mutex_t    mu;
    pthread_cond_t     wake_worker, wake_main;
    pthread_t          thread;
    int                started;
    int                stop;       /* main -> worker: give up now */
    unsigned char     *in[NIN];    /* compressed chunks: main fills, worker drains, in order */
    size_t             inlen[NIN];
    unsigned           in_head, in_count;
    int                in_eof;     /* the source has ended */
    unsigned char     *out[NOUT];  /* decompressed blocks: worker fills, main drains */
    size_t             outlen[NOUT];
    unsigned           out_head, out_count; /* ready blocks */
    unsigned           free_slots; /* blocks neither ready, nor filled, nor lent */
    int                held;       /* block lent to libarchive until the next call, or -1 */
    int                done;       /* worker finished; rc and diag are final */
    int                rc;         /* OTA_OK, an ota_err, or TRUNCATED_RC */
    struct ota_diag    diag;
    ZSTD_DCtx         *z;          /* worker only */
    struct ota_sha256 *h;          /* worker only while it runs */
};

struct reader {
    const struct ota_bundle_read_opts *o;
    struct ota_diag                   *d;
    ota_err                            rc;       /* failure inside the libarchive callback */
    struct pipe                        p;
    const unsigned char               *block;    /* decompressed block lent to libarchive */
    struct ota_sha256                  h;        /* of the compressed bytes */
    uint64_t                           nread;    /* compressed bytes */
    uint64_t                           produced; /* decompressed bytes given to libarchive */
    uint64_t                           budget;   /* cap on produced, raised entry by entry */
    /* extraction */
    int                                rootfd;   /* dest_dir, -1 in verify-only mode */
    int                                curfd;    /* cached parent directory of the last entry */
    char                               cur[OTA_BUNDLE_PATH_MAX + 1];
    size_t                             curlen;
};

static ota_err
zstd_error(size_t ret, struct ota_diag *d)
{
    ZSTD_ErrorCode c = ZSTD_getErrorCode(ret);

    if (c == ZSTD_error_frameParameter_windowTooLarge)
        return ota_diag_set(d, OTA_E_TOO_BIG, "zstd frame needs a window over %u bytes",
                            1u << OTA_BUNDLE_WINDOW_LOG_MAX);
    if (c == ZSTD_error_checksum_wrong)
        return ota_diag_set(d, OTA_E_DIGEST, "zstd content checksum does not match");
    return ota_diag_set(d, OTA_E_FORMAT, "bad zstd stream: %s", ZSTD_getErrorName(ret));
}

/* Worker: wait for a free output block (in ring order); -1 if told to stop. */
static int
take_slot(struct pipe *p, unsigned *wslot)
{
    int s;

    pthread_mutex_lock(&p->mu);
    while (p->free_slots == 0 && !p->stop)
        pthread_cond_wait(&p->wake_worker, &p->mu);
    if (p->stop) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    p->free_slots--;
    s = (int)*wslot;
    *wslot = (*wslot + 1) % NOUT;
    pthread_mutex_unlock(&p->mu);
    return s;
}

static void
publish(struct pipe *p, int slot, size_t len)
{
    pthread_mutex_lock(&p->mu);
    p->outlen[slot] = len;
    p->out_count++;
    pthread_cond_signal(&p->wake_main);
    pthread_mutex_unlock(&p->mu);
}

static void *
inflate_worker(void *arg)
{
    struct pipe    *p = arg;
    struct ota_diag d;
    unsigned        wslot = 0;
    size_t          zlast = 1, pos = 0; /* zlast 0: at a frame boundary; none seen yet */
    int             slot = -1, rc = OTA_OK;

    d.sys_errno = 0;
    d.msg[0] = '\0';
    for (;;) {
        ZSTD_inBuffer in;

        pthread_mutex_lock(&p->mu);
        while (p->in_count == 0 && !p->in_eof && !p->stop)
            pthread_cond_wait(&p->wake_worker, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        if (p->in_count == 0) { /* end of the source */
            pthread_mutex_unlock(&p->mu);
            break;
        }
        in.src = p->in[p->in_head];
        in.size = p->inlen[p->in_head];
        in.pos = 0;
        pthread_mutex_unlock(&p->mu);

        ota_sha256_update(p->h, in.src, in.size);
        for (;;) {
            ZSTD_outBuffer out;
            size_t         ret;

            if (slot < 0 && (slot = take_slot(p, &wslot)) < 0)
                return NULL;
            out.dst = p->out[slot];
            out.size = OUT_BUF;
            out.pos = pos;
            ret = ZSTD_decompressStream(p->z, &out, &in);
            pos = out.pos;
            if (ZSTD_isError(ret)) {
                rc = zstd_error(ret, &d);
                goto finish;
            }
            zlast = ret;
            if (pos == OUT_BUF) {
                publish(p, slot, pos);
                slot = -1;
                pos = 0;
                continue;
            }
            /* Room left in the block and the chunk consumed: zstd has given all it can. */
            if (in.pos == in.size)
                break;
        }
        pthread_mutex_lock(&p->mu);
        p->in_head = (p->in_head + 1) % NIN;
        p->in_count--;
        pthread_cond_signal(&p->wake_main);
        pthread_mutex_unlock(&p->mu);
    }
    if (zlast != 0)
        rc = TRUNCATED_RC;
finish:
    /* What decoded before an error is handed over first, so errors keep their place. */
    if (slot >= 0 && pos > 0)
        publish(p, slot, pos);
    pthread_mutex_lock(&p->mu);
    if (slot >= 0 && pos == 0)
        p->free_slots++;
    p->rc = rc;
    p->diag = d;
    p->done = 1;
    pthread_cond_signal(&p->wake_main);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static ota_err
pipe_start(struct reader *r)
{
    struct pipe *p = &r->p;
    size_t       zr;
    int          i;

    p->held = -1;
    p->free_slots = NOUT;
    for (i = 0; i < NIN; i++)
        if ((p->in[i] = malloc(IN_BUF)) == NULL)
            return ota_diag_set(r->d, OTA_E_NOMEM, "out of memory");
    for (i = 0; i < NOUT; i++)
        if ((p->out[i] = malloc(OUT_BUF)) == NULL)
            return ota_diag_set(r->d, OTA_E_NOMEM, "out of memory");
    p->z = ZSTD_createDCtx();
    if (p->z == NULL)
        return ota_diag_set(r->d, OTA_E_NOMEM, "out of memory");
    zr = ZSTD_DCtx_setParameter(p->z, ZSTD_d_windowLogMax, OTA_BUNDLE_WINDOW_LOG_MAX);
    if (ZSTD_isError(zr))
        return ota_diag_set(r->d, OTA_E_IO, "cannot configure zstd: %s", ZSTD_getErrorName(zr));
    p->h = &r->h;
    if (pthread_mutex_init(&p->mu, NULL) != 0)
        return ota_diag_set(r->d, OTA_E_NOMEM, "cannot create a mutex");
    if (pthread_cond_init(&p->wake_worker, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        return ota_diag_set(r->d, OTA_E_NOMEM, "cannot create a condition variable");
    }
    if (pthread_cond_init(&p->wake_main, NULL) != 0) {
        pthread_cond_destroy(&p->wake_worker);
        pthread_mutex_destroy(&p->mu);
        return ota_diag_set(r->d, OTA_E_NOMEM, "cannot create a condition variable");
    }
    p->started = 1; /* synchronisation objects exist */
    if (pthread_create(&p->thread, NULL, inflate_worker, p) != 0) {
        p->started = 2; /* ... but no thread */
        return ota_diag_set(r->d, OTA_E_NOMEM, "cannot start the decompression thread");
    }
    return OTA_OK;
}

/* Stop (if still running) and join the worker, then free the pipe. */
static void
pipe_end(struct pipe *p)
{
    int i;

    if (p->started) {
        if (p->started == 1) {
            pthread_mutex_lock(&p->mu);
            p->stop = 1;
            pthread_cond_signal(&p->wake_worker);
            pthread_mutex_unlock(&p->mu);
            pthread_join(p->thread, NULL);
        }
        pthread_cond_destroy(&p->wake_main);
        pthread_cond_destroy(&p->wake_worker);
        pthread_mutex_destroy(&p->mu);
        p->started = 0;
    }
    ZSTD_freeDCtx(p->z);
    p->z = NULL;
    for (i = 0; i < NIN; i++)
        free(p->in[i]);
    for (i = 0; i < NOUT; i++)
        free(p->out[i]);
    memset(p->in, 0, sizeof p->in);
    memset(p->out, 0, sizeof p->out);
}

/* Read one chunk from the caller's source into buf (calling thread). */
static ota_err
pull(struct reader *r, unsigned char *buf, size_t *got)
{
    const struct ota_bundle_read_opts *o = r->o;
    ota_err                            rc;

    *got = 0;
    rc = o->read(o->read_ctx, buf, IN_BUF, got, r->d);
    if (rc != OTA_OK)
        return rc;
    if (*got > IN_BUF)
        return ota_diag_set(r->d, OTA_E_INVALID, "read callback returned more than asked");
    if (*got == 0)
        return OTA_OK;
    r->nread += *got;
    if (o->max_length != 0 && r->nread > o->max_length)
        return ota_diag_set(r->d, OTA_E_LENGTH, "bundle is longer than %llu bytes",
                            (unsigned long long)o->max_length);
    if (o->expect_length != 0 && r->nread > o->expect_length)
        return ota_diag_set(r->d, OTA_E_LENGTH, "bundle is longer than the expected %llu bytes",
                            (unsigned long long)o->expect_length);
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

/* Next decompressed block into r->block (up to OUT_BUF bytes); *n = 0 only at the clean end
 * of the stream (source exhausted exactly at the end of a zstd frame). The previous block is
 * given back to the worker. */
static ota_err
produce(struct reader *r, size_t *n)
{
    struct pipe *p = &r->p;
    ota_err      rc;

    pthread_mutex_lock(&p->mu);
    if (p->held >= 0) {
        p->held = -1;
        p->free_slots++;
        pthread_cond_signal(&p->wake_worker);
    }
    for (;;) {
        /* Keep the worker fed first, so it decompresses while we parse and write. */
        if (!p->in_eof && p->in_count < NIN) {
            unsigned s = (p->in_head + p->in_count) % NIN;
            size_t   got = 0;
            pthread_mutex_unlock(&p->mu);
            rc = pull(r, p->in[s], &got);
            if (rc != OTA_OK)
                return rc;
            pthread_mutex_lock(&p->mu);
            if (got == 0)
                p->in_eof = 1;
            else {
                p->inlen[s] = got;
                p->in_count++;
            }
            pthread_cond_signal(&p->wake_worker);
            continue;
        }
        if (p->out_count > 0) {
            unsigned s = p->out_head;
            p->out_head = (s + 1) % NOUT;
            p->out_count--;
            p->held = (int)s;
            *n = p->outlen[s];
            r->block = p->out[s];
            pthread_mutex_unlock(&p->mu);
            r->produced += *n;
            if (r->produced > r->budget)
                return ota_diag_set(r->d, OTA_E_TOO_BIG,
                                    "tar stream is larger than the manifest's entries allow");
            return OTA_OK;
        }
        if (p->done) {
            int wrc = p->rc;
            pthread_mutex_unlock(&p->mu);
            if (wrc == TRUNCATED_RC)
                return truncated(r);
            if (wrc != OTA_OK) {
                if (r->d != NULL)
                    *r->d = p->diag;
                return (ota_err)wrc;
            }
            *n = 0;
            return OTA_OK;
        }
        pthread_cond_wait(&p->wake_main, &p->mu);
    }
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
    *buf = r->block;
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
    uint64_t          done = 0, queued = 0; /* queued: bytes handed to the disk early */
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
        /* Start writeback of a large file while the stream goes on, so that the caller's
         * final sync waits for its tail only. A hint: failures surface at that sync. Small
         * files are left to that sync, which writes them in one batch. */
        if (fd >= 0 && done - queued >= WRITEBACK_STEP) {
            (void)sync_file_range(fd, (off_t)queued, (off_t)(done - queued),
                                  SYNC_FILE_RANGE_WRITE);
            queued = done;
        }
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
        if (queued > 0 && done > queued)
            (void)sync_file_range(fd, (off_t)queued, (off_t)(done - queued),
                                  SYNC_FILE_RANGE_WRITE);
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
            if (r->block[i] != 0)
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
        size_t      len = name ? strlen(name) : 0;
        if (len > 1 && name[len - 1] == '/')
            len--;
        /* The last entry sent again says more than "not in the manifest": it is. */
        if (m->nfiles > 0 && len == strlen(m->files[m->nfiles - 1].path) &&
            memcmp(name, m->files[m->nfiles - 1].path, len) == 0)
            return ota_diag_set(r->d, OTA_E_FORMAT, "'%.*s' appears twice", (int)len, name);
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
    ota_err              rc;

    if (d == NULL)
        d = &dlocal;
    memset(&r, 0, sizeof r);
    r.o = o;
    r.d = d;
    r.rootfd = r.curfd = -1;
    loc = ota_bundle_locale_enter(&oldloc);
    if (o == NULL || o->read == NULL || o->verify == NULL) {
        rc = ota_diag_set(d, OTA_E_INVALID, "bundle read needs a reader and a verifier");
        goto out;
    }
    max_unpacked = o->max_unpacked ? o->max_unpacked : UNPACKED_DEFAULT;
    if (o->dest_dir != NULL && (rc = open_dest(&r, o->dest_dir)) != OTA_OK)
        goto out;
    if ((rc = ota_sha256_init(&r.h)) != OTA_OK) {
        ota_diag_set(d, rc, "cannot start sha256");
        goto out;
    }
    if ((rc = pipe_start(&r)) != OTA_OK)
        goto out;
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
    pipe_end(&r.p); /* the worker is done with the stream's hash */
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
    if (o->got_sha256 != NULL)
        memcpy(o->got_sha256, md, OTA_SHA256_LEN);
    if (o->got_length != NULL)
        *o->got_length = r.nread;
    if (out != NULL) {
        *out = m;
        m = NULL;
    }
out:
    if (a != NULL)
        archive_read_free(a);
    pipe_end(&r.p);
    ota_sha256_free(&r.h);
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
