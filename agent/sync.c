/* The sync client: outbox -> sync server (or the app's hook). See ota/sync.h and
 * formats/sync-protocol.md. */
#include "ota/sync.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/outbox.h"

#define URL_MAX 4096
#define HOOK_TIMEOUT_S 600L
#define BACKOFF_FIRST_MS 500L
#define BACKOFF_MAX_MS 8000L

extern char **environ;

/* ---- small buffers ---------------------------------------------------------------------- */

struct buf {
    char  *p;
    size_t len, cap, max;
    int    over; /* a write went past max */
};

static int
buf_put(struct buf *b, const void *s, size_t n)
{
    if (b->over || n > b->max - b->len) {
        b->over = 1;
        return -1;
    }
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        char  *np;
        while (nc < b->len + n + 1)
            nc *= 2;
        np = realloc(b->p, nc);
        if (np == NULL)
            return -1;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int
buf_str(struct buf *b, const char *s)
{
    return buf_put(b, s, strlen(s));
}

/* A JSON string. Our names are checked UTF-8 already; only quote, backslash and control
 * characters need escapes. */
static int
buf_json_str(struct buf *b, const char *s)
{
    const char *start = s;
    int         rc = buf_put(b, "\"", 1);

    for (; rc == 0 && *s; s++) {
        unsigned char c = (unsigned char)*s;
        char          esc[8];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rc |= buf_put(b, start, (size_t)(s - start));
        snprintf(esc, sizeof esc, c < 0x20 ? "\\u%04x" : "\\%c", c);
        rc |= buf_str(b, esc);
        start = s + 1;
    }
    rc |= buf_put(b, start, (size_t)(s - start));
    rc |= buf_put(b, "\"", 1);
    return rc;
}

static int
buf_int(struct buf *b, int64_t v)
{
    char num[32];

    snprintf(num, sizeof num, "%" PRId64, v);
    return buf_str(b, num);
}

/* ---- the run ----------------------------------------------------------------------------- */

struct run {
    const struct ota_sync_config *c;
    struct ota_outbox            *ob;
    struct ota_sync_report       *r;
    CURL                         *h;
    struct curl_slist            *hdrs;
    char                         *auth;       /* "Authorization: Bearer ...", guarded memory */
    unsigned                      rows;
    size_t                        bytes;
    long                          timeout_s;
    unsigned                      attempts;
    struct buf                    reply;
    char                          errbuf[CURL_ERROR_SIZE]; /* libcurl's detail of a failure */
};

static struct ota_sync_model_report *
model_entry_find(struct ota_sync_report *r, const char *model)
{
    size_t i;

    for (i = 0; i < r->n_models; i++)
        if (strncmp(r->models[i].model, model, OTA_OUTBOX_NAME_MAX) == 0)
            return &r->models[i];
    return NULL;
}

/* The report's entry for model, added if missing; NULL when the report is full. */
static struct ota_sync_model_report *
model_entry(struct ota_sync_report *r, const char *model)
{
    struct ota_sync_model_report *m = model_entry_find(r, model);

    if (m != NULL)
        return m;
    if (r->n_models == OTA_SYNC_REPORT_MODELS) {
        r->models_cut = 1;
        return NULL;
    }
    memset(&r->models[r->n_models], 0, sizeof r->models[0]);
    snprintf(r->models[r->n_models].model, sizeof r->models[0].model, "%s", model);
    return &r->models[r->n_models++];
}

static void
note_quarantined(struct run *x, const char *model, const char *id, const char *reason)
{
    struct ota_sync_model_report *m = model_entry(x->r, model);
    struct ota_sync_rejection    *j;
    size_t                        i;

    x->r->quarantined++;
    if (m != NULL)
        m->quarantined++;
    if (x->r->n_rejections == OTA_SYNC_REPORT_REJECTIONS)
        return;
    j = &x->r->rejections[x->r->n_rejections++];
    snprintf(j->id, sizeof j->id, "%s", id);
    snprintf(j->model, sizeof j->model, "%s", model);
    snprintf(j->reason, sizeof j->reason, "%s", reason);
    for (i = 0; j->reason[i]; i++)
        if ((unsigned char)j->reason[i] < 0x20)
            j->reason[i] = ' ';
}

ota_err
ota_sync_url(const char *tmpl, const char *model, char *out, size_t cap, struct ota_diag *d)
{
    static const char hx[] = "0123456789ABCDEF";
    struct buf        b = { NULL, 0, 0, cap > 0 ? cap - 1 : 0, 0 };
    const char       *p = tmpl, *hit;
    ota_err           rc = OTA_OK;

    if (tmpl == NULL || strstr(tmpl, "{model}") == NULL)
        return ota_diag_set(d, OTA_E_INVALID, "sync URL '%.200s' has no {model}",
                            tmpl ? tmpl : "");
    while ((hit = strstr(p, "{model}")) != NULL) {
        const unsigned char *m;
        buf_put(&b, p, (size_t)(hit - p));
        for (m = (const unsigned char *)model; *m; m++) {
            char e[4] = { '%', hx[*m >> 4], hx[*m & 15], 0 };
            if ((*m >= 'A' && *m <= 'Z') || (*m >= 'a' && *m <= 'z') ||
                (*m >= '0' && *m <= '9') || *m == '-' || *m == '.' || *m == '_' || *m == '~')
                buf_put(&b, m, 1);
            else
                buf_str(&b, e);
        }
        p = hit + 7;
    }
    buf_str(&b, p);
    if (b.over || b.p == NULL) {
        rc = b.over ? ota_diag_set(d, OTA_E_TOO_BIG, "sync URL for model '%.128s' is longer "
                                   "than %zu bytes", model, cap ? cap - 1 : 0)
                    : ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    memcpy(out, b.p, b.len + 1);
out:
    free(b.p);
    return rc;
}

/* The token: from the configuration, else the first line of token_file. Kept in guarded memory
 * and wiped; it never appears in a message. */
static ota_err
load_auth(struct run *x, struct ota_diag *d)
{
    const struct ota_sync_config *c = x->c;
    unsigned char                *file = NULL;
    const char                   *tok = c->token;
    size_t                        len = 0, n, i;
    ota_err                       rc = OTA_OK;
    static const char             pre[] = "Authorization: Bearer ";

    if (tok == NULL && c->token_file == NULL)
        return OTA_OK;
    if (tok == NULL) {
        rc = ota_read_file(c->token_file, OTA_SYNC_TOKEN_MAX + 2, &file, &len, d);
        if (rc != OTA_OK) {
            ota_diag_prefix(d, "reading the sync token");
            return rc;
        }
        file[strcspn((char *)file, "\r\n")] = '\0';
        tok = (const char *)file;
    }
    n = strlen(tok);
    if (n == 0 || n > OTA_SYNC_TOKEN_MAX) {
        rc = ota_diag_set(d, OTA_E_INVALID, "sync token must be 1..%u bytes", OTA_SYNC_TOKEN_MAX);
        goto out;
    }
    for (i = 0; i < n; i++) {
        if ((unsigned char)tok[i] < 0x21 || (unsigned char)tok[i] > 0x7e) {
            rc = ota_diag_set(d, OTA_E_INVALID, "sync token has a character that cannot go in "
                                                "an HTTP header");
            goto out;
        }
    }
    if (sodium_init() < 0) {
        rc = ota_diag_set(d, OTA_E_CRYPTO, "cannot initialise libsodium");
        goto out;
    }
    x->auth = sodium_malloc(sizeof pre + n);
    if (x->auth == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    memcpy(x->auth, pre, sizeof pre - 1);
    memcpy(x->auth + sizeof pre - 1, tok, n + 1);
out:
    if (file != NULL) {
        sodium_memzero(file, len);
        free(file);
    }
    return rc;
}

static size_t
on_reply(char *p, size_t size, size_t nmemb, void *ctx)
{
    struct buf *b = ctx;
    size_t      n = size * nmemb;

    /* Returning less than n aborts the transfer: the reply cap holds while bytes arrive. */
    if (buf_put(b, p, n) != 0)
        return 0;
    return n;
}

#define SETOPT(h, opt, val)                                                                       \
    do {                                                                                          \
        if (curl_easy_setopt((h), (opt), (val)) != CURLE_OK) {                                    \
            rc = ota_diag_set(d, OTA_E_NETWORK, "cannot set HTTP option %s", #opt);               \
            goto out;                                                                             \
        }                                                                                         \
    } while (0)

static ota_err
http_init(struct run *x, struct ota_diag *d)
{
    static int         inited;
    struct curl_slist *l;
    ota_err            rc = OTA_OK;

    if (!inited) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return ota_diag_set(d, OTA_E_NETWORK, "cannot initialise libcurl");
        inited = 1;
    }
    x->h = curl_easy_init();
    if (x->h == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "cannot create an HTTP handle");
    l = curl_slist_append(NULL, "Content-Type: application/json");
    /* No "Expect: 100-continue" round trip before each body. */
    if (l != NULL)
        x->hdrs = curl_slist_append(l, "Expect:");
    if (l == NULL || x->hdrs == NULL) {
        curl_slist_free_all(l);
        x->hdrs = NULL;
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    }
    if (x->auth != NULL) {
        l = curl_slist_append(x->hdrs, x->auth);
        if (l == NULL)
            return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        x->hdrs = l;
    }
    SETOPT(x->h, CURLOPT_HTTPHEADER, x->hdrs);
    SETOPT(x->h, CURLOPT_POST, 1L);
    SETOPT(x->h, CURLOPT_NOSIGNAL, 1L);
    SETOPT(x->h, CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(x->h, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(x->h, CURLOPT_CONNECTTIMEOUT, x->timeout_s < 10 ? x->timeout_s : 10L);
    SETOPT(x->h, CURLOPT_TIMEOUT, x->timeout_s);
    SETOPT(x->h, CURLOPT_USERAGENT, "ota-agent");
    SETOPT(x->h, CURLOPT_WRITEFUNCTION, on_reply);
    SETOPT(x->h, CURLOPT_WRITEDATA, &x->reply);
    SETOPT(x->h, CURLOPT_ERRORBUFFER, x->errbuf);
    SETOPT(x->h, CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(x->h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (x->c->ca_file != NULL)
        SETOPT(x->h, CURLOPT_CAINFO, x->c->ca_file);
out:
    return rc;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A short, printable excerpt of the server's error reply for a message. */
static void
excerpt(const struct buf *b, char *out, size_t cap)
{
    size_t i, n = 0;

    for (i = 0; b->p != NULL && i < b->len && n + 1 < cap; i++)
        out[n++] = (b->p[i] >= 0x20 && b->p[i] < 0x7f) ? b->p[i] : ' ';
    out[n] = '\0';
}

/* POSTs body to url, retrying transport errors and 5xx with backoff. On OTA_OK the reply is in
 * x->reply and the status was 200. */
static ota_err
post(struct run *x, const char *url, const char *model, const struct buf *body,
     struct ota_diag *d)
{
    long    backoff = BACKOFF_FIRST_MS, status = 0;
    unsigned att;
    ota_err rc = OTA_OK;
    char    ex[121];

    SETOPT(x->h, CURLOPT_URL, url);
    SETOPT(x->h, CURLOPT_POSTFIELDS, body->p);
    SETOPT(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    for (att = 1;; att++) {
        char    *errbuf = x->errbuf;
        CURLcode cc;
        int      retry = 0;

        x->reply.len = 0;
        x->reply.over = 0;
        errbuf[0] = '\0';
        x->r->requests++;
        cc = curl_easy_perform(x->h);
        status = 0;
        if (cc == CURLE_OK)
            curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
        x->r->http_status = status;
        if (cc == CURLE_WRITE_ERROR && x->reply.over) {
            rc = ota_diag_set(d, OTA_E_TOO_BIG, "sync reply for model '%s' is larger than %u "
                              "bytes", model, OTA_SYNC_BODY_MAX);
            goto out;
        }
        if (cc != CURLE_OK) {
            rc = ota_diag_set(d, OTA_E_NETWORK, "cannot reach the sync server for model '%s': "
                              "%s", model, errbuf[0] ? errbuf : curl_easy_strerror(cc));
            retry = cc != CURLE_PEER_FAILED_VERIFICATION && cc != CURLE_SSL_CACERT_BADFILE &&
                    cc != CURLE_UNSUPPORTED_PROTOCOL && cc != CURLE_URL_MALFORMAT;
        } else if (status == 200) {
            rc = OTA_OK;
            goto out;
        } else if (status == 401 || status == 403) {
            /* A person has to sign in: retrying cannot help, and must not hammer the server. */
            rc = ota_diag_set(d, OTA_E_AUTH, "sign-in needed: the sync server answered %ld for "
                              "model '%s'", status, model);
            goto out;
        } else {
            excerpt(&x->reply, ex, sizeof ex);
            rc = ota_diag_set(d, OTA_E_NETWORK, "sync server answered %ld for model '%s'%s%s",
                              status, model, ex[0] ? ": " : "", ex);
            retry = status >= 500 || status == 429 || status == 408;
        }
        if (!retry || att >= x->attempts)
            break;
        sleep_ms(backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    if (att > 1)
        ota_diag_prefix(d, "after %u attempts", att);
out:
    return rc;
}

/* ---- one batch --------------------------------------------------------------------------- */

struct sent {
    const char *id;
    size_t      row;
};

static int
sent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sent *)a)->id, ((const struct sent *)b)->id);
}

enum { ANS_NONE = 0, ANS_ACCEPTED, ANS_REJECTED };

/* Finds id among the sent rows; -1 if we did not send it. */
static long
find_sent(const struct sent *s, size_t n, const char *id)
{
    struct sent key = { id, 0 }, *hit;

    hit = bsearch(&key, s, n, sizeof *s, sent_cmp);
    return hit ? (long)hit->row : -1;
}

/* Checks the whole reply before anything is recorded: a reply that names an id we did not send,
 * or one id as both accepted and rejected, is a broken server, and changes nothing. */
static ota_err
read_reply(struct run *x, const char *model, const struct sent *s, size_t ns, unsigned char *ans,
           json_t **out, struct ota_diag *d)
{
    json_t *v = NULL, *acc, *rej, *e;
    size_t  i;
    ota_err rc;

    rc = ota_cjson_parse(x->reply.p ? x->reply.p : "", x->reply.len, OTA_SYNC_BODY_MAX, &v, d);
    if (rc != OTA_OK)
        goto fail;
    if (!json_is_object(v)) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "not a JSON object");
        goto fail;
    }
    if ((rc = ota_json_get_arr(v, "accepted", 2 * OTA_SYNC_BATCH_ROWS_MAX, &acc, d)) != OTA_OK ||
        (rc = ota_json_get_arr(v, "rejected", 2 * OTA_SYNC_BATCH_ROWS_MAX, &rej, d)) != OTA_OK)
        goto fail;
    json_array_foreach(acc, i, e) {
        long row;
        if (!json_is_string(e)) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "'accepted' holds a value that is not a string");
            goto fail;
        }
        row = find_sent(s, ns, json_string_value(e));
        if (row < 0) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "accepted id '%.128s' was not sent",
                              json_string_value(e));
            goto fail;
        }
        ans[row] = ANS_ACCEPTED;
    }
    json_array_foreach(rej, i, e) {
        static const char *const keys[] = { "id", "reason", NULL };
        const char              *id, *reason;
        long                     row;
        if (!json_is_object(e)) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "'rejected' holds a value that is not an object");
            goto fail;
        }
        if ((rc = ota_json_only_keys(e, keys, d)) != OTA_OK ||
            (rc = ota_json_get_str(e, "id", OTA_OUTBOX_ID_MAX, 1, &id, d)) != OTA_OK ||
            (rc = ota_json_get_str(e, "reason", 4096, 0, &reason, d)) != OTA_OK)
            goto fail;
        row = find_sent(s, ns, id);
        if (row < 0) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "rejected id '%.128s' was not sent", id);
            goto fail;
        }
        if (ans[row] == ANS_ACCEPTED) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "id '%.128s' is both accepted and rejected", id);
            goto fail;
        }
        ans[row] = ANS_REJECTED;
    }
    *out = v;
    return OTA_OK;
fail:
    json_decref(v);
    ota_diag_prefix(d, "bad sync reply for model '%s'", model);
    return rc;
}

static ota_err
send_batch(struct run *x, const char *model, const char *url, struct ota_outbox_batch *b,
           struct ota_diag *d)
{
    struct buf     body = { NULL, 0, 0, OTA_SYNC_BODY_MAX, 0 };
    struct sent   *s = NULL;
    unsigned char *ans = NULL, *skip = NULL;
    const char   **ids = NULL;
    json_t        *reply = NULL, *rej, *e;
    size_t         i, ns = 0, nids = 0, changed = 0;
    ota_err        rc = OTA_OK;
    struct ota_sync_model_report *m = model_entry(x->r, model);

    s = calloc(b->n, sizeof *s);
    ans = calloc(b->n, 1);
    skip = calloc(b->n, 1);
    ids = calloc(b->n, sizeof *ids);
    if (s == NULL || ans == NULL || skip == NULL || ids == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    /* Rows an app wrote directly may break the contract; they cannot be sent as they are, so
     * they are quarantined (kept, and visible to the operator) rather than blocking the rest. */
    for (i = 0; i < b->n; i++) {
        struct ota_diag why;
        char            reason[300];
        if (ota_outbox_row_check(&b->rows[i], &why) == OTA_OK)
            continue;
        snprintf(reason, sizeof reason, "not sent: %s", why.msg);
        rc = ota_outbox_quarantine(x->ob, b->rows[i].change_id, reason, d);
        if (rc != OTA_OK)
            goto out;
        note_quarantined(x, model, b->rows[i].change_id, reason);
        skip[i] = 1;
    }
    buf_str(&body, "{\"model\":");
    buf_json_str(&body, model);
    buf_str(&body, ",\"changes\":[");
    for (i = 0; i < b->n; i++) {
        const struct ota_outbox_row *row = &b->rows[i];
        if (skip[i])
            continue;
        buf_str(&body, ns ? ",{\"id\":" : "{\"id\":");
        buf_json_str(&body, row->change_id);
        buf_str(&body, ",\"seq\":");
        buf_int(&body, row->seq);
        buf_str(&body, ",\"entity\":");
        buf_json_str(&body, row->entity);
        buf_str(&body, ",\"op\":");
        buf_json_str(&body, row->op);
        /* The payload was checked to be one JSON value: it goes in as it is. */
        buf_str(&body, ",\"payload\":");
        buf_put(&body, row->payload, row->payload_len);
        buf_str(&body, ",\"created_at\":");
        buf_int(&body, row->created_at);
        buf_str(&body, "}");
        s[ns].id = row->change_id;
        s[ns].row = i;
        ns++;
    }
    buf_str(&body, "]}");
    if (ns == 0)
        goto out;
    if (body.over || body.p == NULL) {
        rc = body.over ? ota_diag_set(d, OTA_E_TOO_BIG, "sync request for model '%s' is larger "
                                      "than %u bytes", model, OTA_SYNC_BODY_MAX)
                       : ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    qsort(s, ns, sizeof *s, sent_cmp);
    for (i = 1; i < ns; i++) {
        if (strcmp(s[i - 1].id, s[i].id) == 0) {
            /* UNIQUE in the schema makes this impossible unless the table was made by hand. */
            rc = ota_diag_set(d, OTA_E_DB, "change id '%s' appears twice in the outbox", s[i].id);
            goto out;
        }
    }
    rc = post(x, url, model, &body, d);
    if (rc != OTA_OK)
        goto out;
    rc = read_reply(x, model, s, ns, ans, &reply, d);
    if (rc != OTA_OK)
        goto out;
    /* Acknowledgements first, in one transaction: a crash after this point resends at most
     * the rejected and unanswered rows, which the server takes once anyway. */
    for (i = 0; i < b->n; i++)
        if (!skip[i] && ans[i] == ANS_ACCEPTED)
            ids[nids++] = b->rows[i].change_id;
    rc = ota_outbox_ack(x->ob, ids, nids, &changed, d);
    if (rc != OTA_OK)
        goto out;
    x->r->acked += changed;
    if (m != NULL)
        m->acked += changed;
    rej = json_object_get(reply, "rejected");
    json_array_foreach(rej, i, e) {
        const char *id = json_string_value(json_object_get(e, "id"));
        const char *reason = json_string_value(json_object_get(e, "reason"));
        ota_err     q = ota_outbox_quarantine(x->ob, id, reason, d);
        if (q == OTA_E_NOT_FOUND)
            continue; /* listed twice, or no longer pending */
        if (q != OTA_OK) {
            rc = q;
            goto out;
        }
        note_quarantined(x, model, id, reason && *reason ? reason : "no reason given");
    }
    nids = 0;
    for (i = 0; i < b->n; i++)
        if (!skip[i] && ans[i] == ANS_NONE)
            ids[nids++] = b->rows[i].change_id;
    rc = ota_outbox_touch(x->ob, ids, nids, d);
out:
    json_decref(reply);
    free(body.p);
    free(s);
    free(ans);
    free(skip);
    free(ids);
    return rc;
}

static ota_err
sync_model_http(struct run *x, const char *model, struct ota_diag *d)
{
    struct ota_outbox_batch *b = NULL;
    char                     url[URL_MAX];
    int64_t                  after = 0;
    ota_err                  rc;

    rc = ota_sync_url(x->c->url_template, model, url, sizeof url, d);
    if (rc != OTA_OK)
        return rc;
    /* Walking forward by seq visits each pending row once per run, so rows the server leaves
     * unanswered cannot make this loop spin. */
    for (;;) {
        rc = ota_outbox_batch_next(x->ob, model, after, x->rows, x->bytes, &b, d);
        if (rc != OTA_OK)
            break;
        if (b->n == 0)
            break;
        after = b->last_seq;
        rc = send_batch(x, model, url, b, d);
        ota_outbox_batch_free(b);
        b = NULL;
        if (rc != OTA_OK)
            break;
    }
    ota_outbox_batch_free(b);
    return rc;
}

/* ---- hook -------------------------------------------------------------------------------- */

static char *
env_pair(const char *k, const char *v)
{
    size_t n = strlen(k) + strlen(v) + 2;
    char  *p = malloc(n);

    if (p != NULL)
        snprintf(p, n, "%s=%s", k, v);
    return p;
}

static ota_err
sync_model_hook(struct run *x, const char *model, struct ota_diag *d)
{
    char          **envp = NULL;
    size_t          ne = 0, i, k = 0;
    pid_t           pid;
    int             status = 0;
    struct timespec t0, now;
    ota_err         rc = OTA_OK;
    long            limit = x->c->timeout_s > 0 ? x->c->timeout_s : HOOK_TIMEOUT_S;

    /* The environment is built before fork: the child only calls async-signal-safe functions. */
    while (environ != NULL && environ[ne] != NULL)
        ne++;
    envp = calloc(ne + 3, sizeof *envp);
    if (envp == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    for (i = 0; i < ne; i++)
        if (strncmp(environ[i], "OTA_OUTBOX_DB=", 14) != 0 &&
            strncmp(environ[i], "OTA_SYNC_MODEL=", 15) != 0)
            envp[k++] = environ[i];
    envp[k] = env_pair("OTA_OUTBOX_DB", x->c->outbox_db);
    envp[k + 1] = env_pair("OTA_SYNC_MODEL", model);
    if (envp[k] == NULL || envp[k + 1] == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot start the sync hook");
        goto out;
    }
    if (pid == 0) {
        /* Own process group, so a timeout kills the hook's children too; its output goes to
         * stderr so it cannot mix with ours (which may be JSON). */
        setpgid(0, 0);
        dup2(2, 1);
        execve("/bin/sh", (char *const[]){ "sh", "-c", (char *)x->c->command, NULL }, envp);
        _exit(127);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot wait for the sync hook");
            goto out;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec >= limit) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            x->r->hook_status = -1;
            rc = ota_diag_set(d, OTA_E_TIMEOUT, "sync hook for model '%s' ran longer than %ld s",
                              model, limit);
            goto out;
        }
        sleep_ms(20);
    }
    if (WIFEXITED(status)) {
        x->r->hook_status = WEXITSTATUS(status);
        if (WEXITSTATUS(status) != 0)
            rc = ota_diag_set(d, OTA_E_NETWORK, "sync hook for model '%s' exited with status %d",
                              model, WEXITSTATUS(status));
    } else {
        x->r->hook_status = -1;
        rc = ota_diag_set(d, OTA_E_NETWORK, "sync hook for model '%s' was killed by signal %d",
                          model, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
out:
    if (envp != NULL) {
        free(envp[k]);
        free(envp[k + 1]);
    }
    free(envp);
    return rc;
}

/* ---- entry ------------------------------------------------------------------------------- */

static ota_err
check_config(const struct ota_sync_config *c, struct run *x, struct ota_diag *d)
{
    if (c == NULL || c->outbox_db == NULL || *c->outbox_db == '\0')
        return ota_diag_set(d, OTA_E_INVALID, "no outbox database configured");
    if (c->command == NULL && (c->url_template == NULL || strstr(c->url_template, "{model}") ==
                                                               NULL))
        return ota_diag_set(d, OTA_E_INVALID, "sync needs a URL with {model} or a hook command");
    if (c->command != NULL && *c->command == '\0')
        return ota_diag_set(d, OTA_E_INVALID, "sync hook command is empty");
    x->rows = c->batch_rows ? c->batch_rows : OTA_SYNC_BATCH_ROWS;
    x->bytes = c->batch_bytes ? c->batch_bytes : OTA_SYNC_BATCH_BYTES;
    x->timeout_s = c->timeout_s > 0 ? c->timeout_s : OTA_SYNC_TIMEOUT_S;
    x->attempts = c->max_attempts ? c->max_attempts : OTA_SYNC_MAX_ATTEMPTS;
    if (x->rows > OTA_SYNC_BATCH_ROWS_MAX)
        return ota_diag_set(d, OTA_E_INVALID, "batch of %u rows is over the %u-row cap", x->rows,
                            OTA_SYNC_BATCH_ROWS_MAX);
    if (x->bytes > OTA_SYNC_BATCH_BYTES_MAX || x->bytes < 1024)
        return ota_diag_set(d, OTA_E_INVALID, "batch of %zu bytes is outside 1024..%u", x->bytes,
                            OTA_SYNC_BATCH_BYTES_MAX);
    if (x->attempts > 10)
        return ota_diag_set(d, OTA_E_INVALID, "%u attempts is over the cap of 10", x->attempts);
    return OTA_OK;
}

/* Counts every requested model after the run: the report, and the drained verdict. */
static ota_err
final_counts(struct run *x, const char *only_model, struct ota_diag *d)
{
    struct ota_outbox_count *cnt = NULL, one;
    size_t                   n = 0, i;
    ota_err                  rc;

    if (only_model != NULL) {
        rc = ota_outbox_count_model(x->ob, only_model, &one, d);
        cnt = &one;
        n = 1;
    } else {
        rc = ota_outbox_pending(x->ob, &cnt, &n, d);
    }
    if (rc != OTA_OK)
        return rc;
    for (i = 0; i < n; i++) {
        struct ota_sync_model_report *m;
        x->r->pending += cnt[i].pending;
        x->r->held += cnt[i].quarantined;
        if (cnt[i].pending == 0 && cnt[i].quarantined == 0 && only_model == NULL &&
            model_entry_find(x->r, cnt[i].model) == NULL)
            continue; /* an all-acked model that this run did not touch */
        m = model_entry(x->r, cnt[i].model);
        if (m != NULL) {
            m->pending = cnt[i].pending;
            m->held = cnt[i].quarantined;
        }
    }
    if (cnt != &one)
        free(cnt);
    return OTA_OK;
}

ota_err
ota_sync_run(const struct ota_sync_config *c, const char *only_model, struct ota_sync_report *r,
             struct ota_diag *d)
{
    struct ota_sync_report   local;
    struct run               x;
    struct ota_outbox_count *cnt = NULL;
    size_t                   n = 0, i;
    ota_err                  rc;

    memset(&x, 0, sizeof x);
    if (r == NULL)
        r = &local;
    memset(r, 0, sizeof *r);
    r->hook_status = -1;
    x.c = c;
    x.r = r;
    x.reply.max = OTA_SYNC_BODY_MAX;
    rc = check_config(c, &x, d);
    if (rc != OTA_OK)
        goto out;
    if (only_model != NULL && *only_model == '\0') {
        rc = ota_diag_set(d, OTA_E_INVALID, "empty model name");
        goto out;
    }
    rc = ota_outbox_open(c->outbox_db, &x.ob, d);
    if (rc != OTA_OK)
        goto out;
    r->used_hook = c->command != NULL;
    if (c->command == NULL) {
        rc = load_auth(&x, d);
        if (rc == OTA_OK)
            rc = http_init(&x, d);
        if (rc != OTA_OK)
            goto out;
    }
    if (only_model != NULL) {
        struct ota_outbox_count one;
        rc = ota_outbox_count_model(x.ob, only_model, &one, d);
        if (rc != OTA_OK)
            goto out;
        cnt = malloc(sizeof *cnt);
        if (cnt == NULL) {
            rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
            goto out;
        }
        cnt[0] = one;
        n = 1;
    } else {
        rc = ota_outbox_pending(x.ob, &cnt, &n, d);
        if (rc != OTA_OK)
            goto out;
    }
    for (i = 0; i < n && rc == OTA_OK; i++) {
        if (cnt[i].pending == 0)
            continue;
        model_entry(r, cnt[i].model);
        rc = c->command ? sync_model_hook(&x, cnt[i].model, d)
                        : sync_model_http(&x, cnt[i].model, d);
    }
    if (rc == OTA_OK) {
        rc = final_counts(&x, only_model, d);
        if (rc != OTA_OK)
            goto out;
        if (r->held > 0)
            rc = ota_diag_set(d, OTA_E_REJECTED, "%" PRIu64 " change%s quarantined (refused by "
                              "the server or malformed); list them with 'outbox list --state "
                              "quarantined'", r->held, r->held == 1 ? " is" : "s are");
        else if (r->pending > 0)
            rc = ota_diag_set(d, OTA_E_NETWORK, "%" PRIu64 " change%s still pending: the %s "
                              "did not take %s", r->pending, r->pending == 1 ? " is" : "s are",
                              c->command ? "sync hook" : "sync server",
                              r->pending == 1 ? "it" : "them");
    } else if (x.ob != NULL) {
        /* The run failed; still report what is left, without hiding the failure. */
        struct ota_diag ignore;
        (void)final_counts(&x, only_model, &ignore);
    }
out:
    free(cnt);
    if (x.h != NULL)
        curl_easy_cleanup(x.h);
    curl_slist_free_all(x.hdrs);
    if (x.auth != NULL)
        sodium_free(x.auth); /* wipes the token */
    free(x.reply.p);
    ota_outbox_close(x.ob);
    r->drained = rc == OTA_OK;
    r->last_err = rc;
    if (rc != OTA_OK && d != NULL)
        snprintf(r->last_error, sizeof r->last_error, "%s", d->msg);
    else if (rc != OTA_OK)
        snprintf(r->last_error, sizeof r->last_error, "%s", ota_err_str(rc));
    return rc;
}
