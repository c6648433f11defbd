/* A bundle download that feeds the bundle reader while it arrives, so that installing is one
 * pass over the data: download, hashing, decompression and writing overlap.
 *
 * A thread runs the transfer (libcurl) and puts the received bytes, in order, into a bounded
 * ring. The reader (ota_bundle_read, on the calling thread) takes them with stream_read, which
 * first returns the prefix that downloads/<sha256>.part held when the stream was opened (a
 * resumed download), then the ring's bytes, each appended to the part file as it is taken (a
 * plain sequential write, never synced block by block: the file is only there so that an
 * interrupted download resumes with Range from its size). The reader sees one continuous
 * stream, whose SHA-256 and length it checks against the signed target at its end. Memory is
 * the ring's, whatever the size of the bundle.
 *
 * Threads: the transfer thread only receives and copies into the ring; the part file is
 * written by the reading thread, which already holds the bytes, so that the three threads of an
 * install (transfer; the reader's decompression worker; the reader, which hashes and writes the
 * files) carry similar loads on two cores. The ring has one producer and one consumer; each
 * copies outside the lock, into the part of the ring only it may touch (free space for the
 * producer, filled space for the consumer), and takes the lock only to move the boundaries. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_int.h"
#include "ota/fetch.h"
#include "ota/fsutil.h"

/* Enough for the transfer to run ahead of the reader through a burst of small files (whose
 * creation is slower than the network; the socket's buffer adds to it), small enough for a
 * device. 1, 2 and 4 MiB install the benchmark corpus in the same time. */
#define RING_SIZE (2u << 20)

struct stream {
    struct ota_fetch_opts fetch; /* the caller's, with cancelled set */
    const char           *url;
    const char           *part;
    int                   fd;       /* the part file: pread of the prefix, then appends */
    uint64_t              length;   /* the signed length */
    uint64_t              prefix;   /* bytes the part file held when opened, read from disk */
    uint64_t              rpos;     /* bytes given to the reader */
    uint64_t              reported; /* arrived at the last progress call */
    stream_progress_fn    progress;
    void                 *progress_ctx;
    unsigned char        *ring; /* RING_SIZE bytes; NULL when nothing is to be fetched */

    /* The transfer thread's own, read by the reader once it is joined. */
    pthread_t thread;
    uint64_t  skip;     /* bytes to drop: a server that ignored Range resends the prefix */
    uint64_t  received; /* bytes off the network */

    int             started; /* the thread exists and is not joined yet */
    int             failed;  /* stream_read returned an error */
    atomic_int      cancel;  /* the reader is gone: stop the transfer */
    pthread_mutex_t mu;
    pthread_cond_t  more, room;
    /* Under mu: */
    size_t          head, count;
    uint64_t        arrived; /* bytes put into the ring */
    int             done;    /* the transfer has ended: rc and diag are final */
    ota_err         rc;
    struct ota_diag diag;
};

static int
cancelled(void *ctx)
{
    struct stream *s = ctx;
    return atomic_load(&s->cancel);
}

/* Transfer thread: copy into the ring, waiting for room. */
static ota_err
ring_put(struct stream *s, const unsigned char *b, size_t len, struct ota_diag *d)
{
    pthread_mutex_lock(&s->mu);
    while (len > 0) {
        size_t tail, n;

        while (s->count == RING_SIZE && !atomic_load(&s->cancel))
            pthread_cond_wait(&s->room, &s->mu);
        if (atomic_load(&s->cancel)) {
            pthread_mutex_unlock(&s->mu);
            return ota_diag_set(d, OTA_E_NETWORK, "transfer of '%s' cancelled", s->url);
        }
        tail = (s->head + s->count) % RING_SIZE;
        n = RING_SIZE - s->count;
        if (n > RING_SIZE - tail)
            n = RING_SIZE - tail;
        if (n > len)
            n = len;
        pthread_mutex_unlock(&s->mu);
        memcpy(s->ring + tail, b, n);
        pthread_mutex_lock(&s->mu);
        s->count += n;
        s->arrived += n;
        pthread_cond_signal(&s->more);
        b += n;
        len -= n;
    }
    pthread_mutex_unlock(&s->mu);
    return OTA_OK;
}

/* Transfer thread: what libcurl received, in order. */
static ota_err
sink(void *ctx, const void *buf, size_t len, struct ota_diag *d)
{
    struct stream       *s = ctx;
    const unsigned char *b = buf;

    if (s->skip > 0) {
        size_t n = s->skip < len ? (size_t)s->skip : len;
        s->skip -= n;
        b += n;
        len -= n;
    }
    if (len == 0)
        return OTA_OK;
    return ring_put(s, b, len, d);
}

static void *
transfer(void *arg)
{
    struct stream  *s = arg;
    struct ota_diag d;
    uint64_t        got = 0;
    ota_err         rc;

    memset(&d, 0, sizeof(d));
    rc = ota_fetch_stream(&s->fetch, s->url, s->prefix, s->length, sink, s, &got, &d);
    s->received += got;
    if (rc == OTA_E_NETWORK && s->prefix > 0 && got == 0 && !atomic_load(&s->cancel)) {
        /* Maybe the server ignores Range: fetch from 0 and drop what we already have. A
         * server that is down fails here too, and the part file is kept for later. */
        struct ota_diag d2;
        memset(&d2, 0, sizeof(d2));
        s->skip = s->prefix;
        got = 0;
        rc = ota_fetch_stream(&s->fetch, s->url, 0, s->length, sink, s, &got, &d2);
        s->received += got;
        if (rc != OTA_OK)
            d = d2;
    }
    pthread_mutex_lock(&s->mu);
    if (rc == OTA_OK && s->prefix + s->arrived != s->length)
        rc = ota_diag_set(&d, OTA_E_LENGTH, "'%s' ended after %llu of its %llu bytes", s->url,
                          (unsigned long long)(s->prefix + s->arrived),
                          (unsigned long long)s->length);
    s->rc = rc;
    s->diag = d;
    s->done = 1;
    pthread_cond_signal(&s->more);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static ota_err
fail(struct stream *s, ota_err rc)
{
    s->failed = 1;
    return rc;
}

ota_err
stream_read(void *ctx, void *buf, size_t cap, size_t *got, struct ota_diag *d)
{
    struct stream *s = ctx;
    uint64_t       arrived;
    size_t         n;
    ota_err        rc;

    *got = 0;
    if (s->rpos < s->prefix) {
        ssize_t r;

        n = s->prefix - s->rpos < cap ? (size_t)(s->prefix - s->rpos) : cap;
        do
            r = pread(s->fd, buf, n, (off_t)s->rpos);
        while (r < 0 && errno == EINTR);
        if (r < 0)
            return fail(s, ota_diag_sys(d, OTA_E_IO, errno, "cannot read '%s'", s->part));
        if (r == 0)
            return fail(s, ota_diag_set(d, OTA_E_IO, "'%s' shrank while it was read", s->part));
        s->rpos += (uint64_t)r;
        *got = (size_t)r;
        return OTA_OK;
    }
    if (s->ring == NULL)
        return OTA_OK; /* the part file was complete: nothing to fetch */
    pthread_mutex_lock(&s->mu);
    while (s->count == 0 && !s->done)
        pthread_cond_wait(&s->more, &s->mu);
    if (s->count == 0) {
        rc = s->rc;
        if (rc != OTA_OK && d != NULL)
            *d = s->diag;
        pthread_mutex_unlock(&s->mu);
        return rc != OTA_OK ? fail(s, rc) : OTA_OK;
    }
    n = s->count < cap ? s->count : cap;
    if (n > RING_SIZE - s->head)
        n = RING_SIZE - s->head;
    pthread_mutex_unlock(&s->mu);
    memcpy(buf, s->ring + s->head, n);
    pthread_mutex_lock(&s->mu);
    s->head = (s->head + n) % RING_SIZE;
    s->count -= n;
    arrived = s->arrived;
    pthread_cond_signal(&s->room);
    pthread_mutex_unlock(&s->mu);
    /* Kept for a resume: what the reader has taken is on disk (in the page cache) before it
     * uses it. */
    rc = ota_write_all(s->fd, buf, n, d);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "'%s'", s->part);
        return fail(s, rc);
    }
    if (s->progress != NULL && arrived != s->reported) {
        s->reported = arrived;
        s->progress(s->progress_ctx, s->prefix + arrived, s->length);
    }
    s->rpos += n;
    *got = n;
    return OTA_OK;
}

ota_err
stream_open(const struct ota_fetch_opts *fetch, const char *url, const char *part, uint64_t length,
            stream_progress_fn progress, void *progress_ctx, struct stream **out,
            struct ota_diag *d)
{
    struct stream *s;
    struct stat    st;
    sigset_t       all, old;
    int            err;
    ota_err        rc;

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    s->fetch = *fetch;
    s->fetch.cancelled = cancelled;
    s->fetch.cancel_ctx = s;
    s->url = url;
    s->part = part;
    s->length = length;
    s->progress = progress;
    s->progress_ctx = progress_ctx;
    atomic_init(&s->cancel, 0);
    s->fd = open(part, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (s->fd < 0) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot open '%s'", part);
        free(s);
        return rc;
    }
    if (fstat(s->fd, &st) != 0) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot stat '%s'", part);
        goto fail;
    }
    if ((uint64_t)st.st_size > length) {
        /* Longer than the signed length: not ours to keep. */
        if (ftruncate(s->fd, 0) != 0) {
            rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot truncate '%s'", part);
            goto fail;
        }
        st.st_size = 0;
    }
    s->prefix = (uint64_t)st.st_size;
    if (s->prefix > 0)
        (void)posix_fadvise(s->fd, 0, (off_t)s->prefix, POSIX_FADV_SEQUENTIAL);
    if (s->prefix == length) {
        *out = s;
        return OTA_OK;
    }
    s->ring = malloc(RING_SIZE);
    if (s->ring == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto fail;
    }
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "cannot create a mutex");
        goto fail;
    }
    if (pthread_cond_init(&s->more, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        rc = ota_diag_set(d, OTA_E_NOMEM, "cannot create a condition variable");
        goto fail;
    }
    if (pthread_cond_init(&s->room, NULL) != 0) {
        pthread_cond_destroy(&s->more);
        pthread_mutex_destroy(&s->mu);
        rc = ota_diag_set(d, OTA_E_NOMEM, "cannot create a condition variable");
        goto fail;
    }
    /* Signals (SIGTERM for `run`) are for the calling thread, not the transfer. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(&s->thread, NULL, transfer, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        pthread_cond_destroy(&s->room);
        pthread_cond_destroy(&s->more);
        pthread_mutex_destroy(&s->mu);
        rc = ota_diag_sys(d, OTA_E_NOMEM, err, "cannot start the download thread");
        goto fail;
    }
    s->started = 1;
    *out = s;
    return OTA_OK;
fail:
    close(s->fd);
    free(s->ring);
    free(s);
    return rc;
}

void
stream_stop(struct stream *s, struct stream_info *info)
{
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        atomic_store(&s->cancel, 1);
        pthread_cond_signal(&s->room);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        pthread_cond_destroy(&s->room);
        pthread_cond_destroy(&s->more);
        pthread_mutex_destroy(&s->mu);
        s->started = 0;
    }
    if (info != NULL) {
        info->prefix = s->prefix;
        info->received = s->received;
        info->failed = s->failed;
    }
}

void
stream_close(struct stream *s, int keep)
{
    if (s == NULL)
        return;
    stream_stop(s, NULL);
    /* What arrived stays for the next attempt; one sync here, none per block. */
    if (keep)
        (void)fsync(s->fd);
    close(s->fd);
    free(s->ring);
    free(s);
}
