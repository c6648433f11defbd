/* Bounded, resumable downloads with libcurl. See ota/fetch.h.
 *
 * Every byte passes through on_data(), which enforces the caller's cap while the body arrives
 * (a server cannot make us buffer or write more than we asked for) and checks the HTTP status
 * before the first byte is accepted, so an error page or a redirect body never reaches a sink. */
#include "ota/fetch.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef OTA_AGENT_VERSION
#define OTA_AGENT_VERSION "0.1"
#endif

static pthread_once_t   g_once = PTHREAD_ONCE_INIT;
static CURLcode         g_init_rc = CURLE_FAILED_INIT;
static _Atomic uint64_t g_bytes;

static void
global_init(void)
{
    g_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

uint64_t
ota_fetch_bytes_total(void)
{
    return atomic_load(&g_bytes);
}

struct xfer {
    CURL                        *curl;
    const struct ota_fetch_opts *o;
    const char                  *url;
    uint64_t                     offset;   /* resume point (stream) */
    uint64_t                     limit;    /* most bytes this call may deliver */
    ota_err                      limit_rc; /* OTA_E_TOO_BIG (memory) or OTA_E_LENGTH (stream) */
    uint64_t                     got;      /* bytes delivered */
    int                          status_checked;
    ota_err                      rc; /* set by a callback that aborted the transfer */
    struct ota_diag             *d;
    /* fetch_mem */
    unsigned char *buf;
    size_t         cap;
    /* fetch_stream */
    ota_sink_fn sink;
    void       *sink_ctx;
};

/* 0 for schemes without a status (file://). */
static long
http_status(CURL *c)
{
    long code = 0;

    if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
        return 0;
    return code;
}

static ota_err
status_error(struct xfer *x, long code)
{
    if (code == 404 || code == 410)
        return ota_diag_set(x->d, OTA_E_NOT_FOUND, "server answered %ld for '%s'", code, x->url);
    if (code >= 300 && code < 400)
        return ota_diag_set(x->d, OTA_E_NETWORK,
                            "server answered %ld (redirect, not followed) for '%s'", code, x->url);
    return ota_diag_set(x->d, OTA_E_NETWORK, "server answered %ld for '%s'", code, x->url);
}

/* The body we accept: 200, or 206 for a range request. A 200 to a range request means the
 * server ignored Range and is sending the file from byte 0: refuse it so the caller restarts
 * from 0 instead of appending the start of the file to its end. */
static ota_err
check_status(struct xfer *x)
{
    long code = http_status(x->curl);

    if (code == 0)
        return OTA_OK;
    if (x->offset > 0) {
        if (code == 206)
            return OTA_OK;
        if (code == 200)
            return ota_diag_set(x->d, OTA_E_NETWORK,
                                "server ignored the range request (from byte %llu) for '%s'",
                                (unsigned long long)x->offset, x->url);
        return status_error(x, code);
    }
    if (code == 200)
        return OTA_OK;
    return status_error(x, code);
}

static size_t
on_data(char *p, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t       n = size * nmemb;
    ota_err      rc;

    if (!x->status_checked) {
        x->status_checked = 1;
        rc = check_status(x);
        if (rc != OTA_OK) {
            x->rc = rc;
            return 0;
        }
    }
    if (n > x->limit - x->got) {
        if (x->limit_rc == OTA_E_TOO_BIG)
            x->rc = ota_diag_set(x->d, OTA_E_TOO_BIG, "'%s' is larger than %llu bytes", x->url,
                                 (unsigned long long)x->limit);
        else
            x->rc = ota_diag_set(x->d, OTA_E_LENGTH, "'%s' is longer than %llu bytes", x->url,
                                 (unsigned long long)(x->offset + x->limit));
        return 0;
    }
    atomic_fetch_add(&g_bytes, (uint64_t)n);
    if (x->sink != NULL) {
        rc = x->sink(x->sink_ctx, p, n, x->d);
        if (rc != OTA_OK) {
            x->rc = rc;
            return 0;
        }
    } else {
        if (x->got + n + 1 > x->cap) {
            /* Grow geometrically, never past limit + 1 (the NUL). */
            size_t         nc = x->cap ? x->cap : 4096;
            unsigned char *nb;
            while (nc < x->got + n + 1)
                nc *= 2;
            if (nc > x->limit + 1)
                nc = (size_t)x->limit + 1;
            nb = realloc(x->buf, nc);
            if (nb == NULL) {
                x->rc = ota_diag_set(x->d, OTA_E_NOMEM, "out of memory fetching '%s'", x->url);
                return 0;
            }
            x->buf = nb;
            x->cap = nc;
        }
        memcpy(x->buf + x->got, p, n);
    }
    x->got += n;
    return n;
}

static int
on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    struct xfer *x = ud;

    (void)ultotal;
    (void)ulnow;
    if (x->o != NULL && x->o->cancelled != NULL && x->o->cancelled(x->o->cancel_ctx)) {
        x->rc = ota_diag_set(x->d, OTA_E_NETWORK, "transfer of '%s' cancelled", x->url);
        return 1;
    }
    if (x->o != NULL && x->o->progress != NULL)
        x->o->progress(x->o->progress_ctx, x->offset + (uint64_t)dlnow,
                       dltotal > 0 ? x->offset + (uint64_t)dltotal : 0);
    return 0;
}

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        CURLcode c_ = curl_easy_setopt(x->curl, opt, val);                                         \
        if (c_ != CURLE_OK) {                                                                      \
            rc = ota_diag_set(x->d, c_ == CURLE_OUT_OF_MEMORY ? OTA_E_NOMEM : OTA_E_INVALID,       \
                              "cannot set " #opt ": %s", curl_easy_strerror(c_));                  \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* Run one transfer described by x; maps every outcome to an ota_err. */
static ota_err
perform(struct xfer *x)
{
    static const struct ota_fetch_opts defaults;
    const struct ota_fetch_opts       *o = x->o ? x->o : &defaults;
    char                               errbuf[CURL_ERROR_SIZE];
    CURLcode                           cc;
    long                               code;
    ota_err                            rc = OTA_OK;

    pthread_once(&g_once, global_init);
    if (g_init_rc != CURLE_OK)
        return ota_diag_set(x->d, OTA_E_NETWORK, "cannot initialise libcurl: %s",
                            curl_easy_strerror(g_init_rc));
    x->curl = curl_easy_init();
    if (x->curl == NULL)
        return ota_diag_set(x->d, OTA_E_NOMEM, "cannot create a transfer handle");
    errbuf[0] = '\0';
    SETOPT(CURLOPT_ERRORBUFFER, errbuf);
    SETOPT(CURLOPT_URL, x->url);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https,file");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_MAXREDIRS, 0L);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_file != NULL)
        SETOPT(CURLOPT_CAINFO, o->ca_file);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    /* Error statuses end the transfer before their body; on_data checks the rest. */
    SETOPT(CURLOPT_FAILONERROR, 1L);
    SETOPT(CURLOPT_USERAGENT, o->user_agent ? o->user_agent : "ota-agent/" OTA_AGENT_VERSION);
    SETOPT(CURLOPT_CONNECTTIMEOUT, o->connect_timeout_s > 0 ? o->connect_timeout_s : 10L);
    SETOPT(CURLOPT_LOW_SPEED_TIME, o->low_speed_time_s > 0 ? o->low_speed_time_s : 30L);
    SETOPT(CURLOPT_LOW_SPEED_LIMIT, o->low_speed_bytes > 0 ? o->low_speed_bytes : 1L);
    SETOPT(CURLOPT_TIMEOUT, o->total_timeout_s > 0 ? o->total_timeout_s : 0L);
    /* A declared Content-Length over the cap fails before any byte is read. */
    if (x->limit > 0 && x->limit < (uint64_t)INT64_MAX)
        SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->limit);
    if (x->offset > 0)
        SETOPT(CURLOPT_RESUME_FROM_LARGE, (curl_off_t)x->offset);
    SETOPT(CURLOPT_WRITEFUNCTION, on_data);
    SETOPT(CURLOPT_WRITEDATA, x);
    /* Bigger reads for a stream: fewer callbacks, fewer writes by the sink. */
    if (x->sink != NULL)
        SETOPT(CURLOPT_BUFFERSIZE, 256L * 1024);
    if (o->progress != NULL || o->cancelled != NULL) {
        SETOPT(CURLOPT_XFERINFOFUNCTION, on_progress);
        SETOPT(CURLOPT_XFERINFODATA, x);
        SETOPT(CURLOPT_NOPROGRESS, 0L);
    }

    cc = curl_easy_perform(x->curl);
    if (x->rc != OTA_OK) {
        rc = x->rc; /* a callback stopped it and said why */
        goto out;
    }
    code = http_status(x->curl);
    /* The status wins over what it caused: a 404 page longer than the cap is a 404, and a
     * whole file sent to a range request is a server that ignores Range, not a long file. */
    if (code >= 300 && !(x->offset > 0 && code == 416)) {
        rc = status_error(x, code);
        goto out;
    }
    if (code == 200 && x->offset > 0) {
        rc = check_status(x);
        goto out;
    }
    switch (cc) {
    case CURLE_OK:
        /* An empty body never reached on_data: check its status here. 416 to a range request
         * from the end of the file means there is nothing more to get. */
        if (!x->status_checked && !(x->offset > 0 && code == 416))
            rc = check_status(x);
        break;
    case CURLE_HTTP_RETURNED_ERROR:
        rc = status_error(x, code);
        break;
    case CURLE_FILE_COULDNT_READ_FILE:
        rc = ota_diag_set(x->d, OTA_E_NOT_FOUND, "cannot read '%s'", x->url);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        rc = ota_diag_set(x->d, OTA_E_TIMEOUT, "timed out fetching '%s': %s", x->url, errbuf);
        break;
    case CURLE_FILESIZE_EXCEEDED:
        rc = ota_diag_set(x->d, x->limit_rc, "'%s' is larger than %llu bytes", x->url,
                          (unsigned long long)(x->offset + x->limit));
        break;
    case CURLE_RANGE_ERROR:
    case CURLE_BAD_DOWNLOAD_RESUME:
        rc = ota_diag_set(x->d, OTA_E_NETWORK, "cannot resume '%s' from byte %llu: %s", x->url,
                          (unsigned long long)x->offset, errbuf);
        break;
    case CURLE_OUT_OF_MEMORY:
        rc = ota_diag_set(x->d, OTA_E_NOMEM, "out of memory fetching '%s'", x->url);
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        rc = ota_diag_set(x->d, OTA_E_INVALID, "cannot fetch '%s': %s", x->url,
                          errbuf[0] ? errbuf : curl_easy_strerror(cc));
        break;
    default:
        rc = ota_diag_set(x->d, OTA_E_NETWORK, "cannot fetch '%s': %s", x->url,
                          errbuf[0] ? errbuf : curl_easy_strerror(cc));
        break;
    }
out:
    curl_easy_cleanup(x->curl);
    x->curl = NULL;
    return rc;
}

ota_err
ota_fetch_mem(const struct ota_fetch_opts *o, const char *url, size_t max, unsigned char **buf,
              size_t *len, struct ota_diag *d)
{
    struct xfer x;
    ota_err     rc;

    memset(&x, 0, sizeof x);
    x.o = o;
    x.url = url;
    x.limit = max < SIZE_MAX ? max : SIZE_MAX - 1; /* room for the NUL */
    x.limit_rc = OTA_E_TOO_BIG;
    x.d = d;
    rc = perform(&x);
    if (rc == OTA_OK && x.buf == NULL) {
        x.buf = malloc(1);
        if (x.buf == NULL)
            rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    }
    if (rc != OTA_OK) {
        free(x.buf);
        return rc;
    }
    x.buf[x.got] = '\0';
    *buf = x.buf;
    *len = (size_t)x.got;
    return OTA_OK;
}

ota_err
ota_fetch_stream(const struct ota_fetch_opts *o, const char *url, uint64_t offset,
                 uint64_t max_total, ota_sink_fn sink, void *sink_ctx, uint64_t *received,
                 struct ota_diag *d)
{
    struct xfer x;
    ota_err     rc;

    if (received != NULL)
        *received = 0;
    if (offset > max_total)
        return ota_diag_set(d, OTA_E_INVALID, "resume offset %llu is past the %llu-byte limit",
                            (unsigned long long)offset, (unsigned long long)max_total);
    memset(&x, 0, sizeof x);
    x.o = o;
    x.url = url;
    x.offset = offset;
    x.limit = max_total - offset;
    x.limit_rc = OTA_E_LENGTH;
    x.sink = sink;
    x.sink_ctx = sink_ctx;
    x.d = d;
    if (x.limit == 0) {
        /* Nothing more may come; a range request from the end would only fetch an error. */
        return OTA_OK;
    }
    rc = perform(&x);
    if (received != NULL)
        *received = x.got;
    return rc;
}
