/* ota-evil-server: a TEST TOOL. An HTTP server that serves a directory the way a static web
 * server would (GET, single byte ranges) and misbehaves on command, so the integration tests
 * can play a malicious repository or mirror (the attacks of the TUF specification). Never run
 * it to serve real devices.
 *
 *   ota-evil-server --root DIR [--rules FILE] [--port N] [--port-file F] [--pid-file F]
 *                   [--log FILE]
 *
 * It listens on 127.0.0.1 only. With --port 0 (the default) the kernel picks the port, which
 * is written to --port-file once the server accepts connections. SIGTERM or SIGINT stops it.
 *
 * Rules: --rules FILE holds one JSON object {"rules": [RULE, ...]}. The file is read again
 * whenever it changes (inode, size or mtime), so a test switches behaviour by writing a new
 * file and renaming it over the old one; a missing file means no rules. A request takes the
 * first rule whose "path" (a glob over the URL path, fnmatch(3) without FNM_PATHNAME, so '*'
 * also matches '/') matches. A RULE is an object with "path" and any of:
 *
 *   "substitute": FILE    serve FILE's bytes (absolute, or relative to --root) instead
 *   "status": N           answer with HTTP status N (100..599) and a short text body
 *   "delay_headers": MS   sleep MS milliseconds before answering anything
 *   "drip": N             send the body at N bytes per second (slow retrieval)
 *   "truncate": N         send N bytes of the body, then close the connection
 *   "endless": "after"    after the body, keep sending zero bytes forever
 *   "endless": "zeros"    ignore the file, send zero bytes forever
 *   "ignore_range": true  answer a Range request with 200 and the whole body
 *   "lie_length": N       announce Content-Length N, send the real body, close
 *
 * An invalid rules file makes every request fail with status 500 (and says why on stderr),
 * so that a test with a broken rules file cannot pass by accident.
 *
 * --log FILE appends one line per request: "METHOD URL RANGE STATUS RULE", RULE being the
 * index of the rule applied or "-". */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ota/fsutil.h"

#define RULES_MAX 64
#define RULES_FILE_MAX (64u << 10)
#define BLOCK 32768

enum endless { ENDLESS_NO, ENDLESS_AFTER, ENDLESS_ZEROS };

struct rule {
    char        *path;
    char        *substitute;
    int          status;   /* 0: none */
    long long    delay_ms; /* 0: none */
    long long    drip;     /* bytes per second, 0: full speed */
    long long    truncate; /* -1: none */
    enum endless endless;
    int          ignore_range;
    long long    lie_length; /* -1: none */
};

struct server {
    const char     *root;
    const char     *rules_path;
    FILE           *log;
    pthread_mutex_t lock; /* rules, log */
    struct rule     rules[RULES_MAX];
    size_t          nrules;
    char            rules_error[256]; /* non-empty: the rules file is invalid */
    struct stat     rules_st;         /* of the file the rules came from */
    int             rules_loaded;
};

static atomic_int stopping;

/* ---- rules ------------------------------------------------------------------------------- */

static void
rules_clear(struct server *s)
{
    for (size_t i = 0; i < s->nrules; i++) {
        free(s->rules[i].path);
        free(s->rules[i].substitute);
    }
    memset(s->rules, 0, sizeof s->rules);
    s->nrules = 0;
    s->rules_error[0] = '\0';
}

static int
get_int(json_t *o, const char *key, long long min, long long max, long long *out, char *err,
        size_t errlen, size_t idx)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(err, errlen, "rule %zu: '%s' must be an integer %lld..%lld", idx, key, min, max);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/* Parse text into s->rules; on error, s->rules_error says why and no rule is kept. */
static void
rules_parse(struct server *s, const char *text, size_t len)
{
    static const char *const known[] = {"path",          "substitute",   "status",
                                        "delay_headers", "drip",         "truncate",
                                        "endless",       "ignore_range", "lie_length"};
    json_error_t             je;
    json_t                  *doc, *arr, *r;
    size_t                   i;
    char                    *err = s->rules_error;
    const size_t             errlen = sizeof s->rules_error;
    char                     keep[sizeof s->rules_error];

    rules_clear(s);
    doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL) {
        snprintf(err, errlen, "not JSON: %s (line %d)", je.text, je.line);
        return;
    }
    arr = json_object_get(doc, "rules");
    if (!json_is_object(doc) || json_object_size(doc) != 1 || !json_is_array(arr)) {
        snprintf(err, errlen, "expected {\"rules\": [...]}");
        goto out;
    }
    if (json_array_size(arr) > RULES_MAX) {
        snprintf(err, errlen, "more than %d rules", RULES_MAX);
        goto out;
    }
    json_array_foreach(arr, i, r)
    {
        struct rule *ru = &s->rules[i];
        const char  *k;
        json_t      *v;
        long long    status = 0;

        if (!json_is_object(r) || !json_is_string(json_object_get(r, "path"))) {
            snprintf(err, errlen, "rule %zu: an object with a string 'path' expected", i);
            goto bad;
        }
        json_object_foreach(r, k, v)
        {
            size_t j;
            for (j = 0; j < sizeof known / sizeof known[0]; j++)
                if (strcmp(k, known[j]) == 0)
                    break;
            if (j == sizeof known / sizeof known[0]) {
                snprintf(err, errlen, "rule %zu: unknown key '%s'", i, k);
                goto bad;
            }
        }
        s->nrules = i + 1;
        ru->truncate = -1;
        ru->lie_length = -1;
        ru->path = strdup(json_string_value(json_object_get(r, "path")));
        v = json_object_get(r, "substitute");
        if (v != NULL && !json_is_string(v)) {
            snprintf(err, errlen, "rule %zu: 'substitute' must be a file name", i);
            goto bad;
        }
        if (v != NULL)
            ru->substitute = strdup(json_string_value(v));
        if (ru->path == NULL || (v != NULL && ru->substitute == NULL)) {
            snprintf(err, errlen, "out of memory");
            goto bad;
        }
        if (get_int(r, "status", 100, 599, &status, err, errlen, i) != 0 ||
            get_int(r, "delay_headers", 0, 3600000, &ru->delay_ms, err, errlen, i) != 0 ||
            get_int(r, "drip", 1, 1LL << 40, &ru->drip, err, errlen, i) != 0 ||
            get_int(r, "truncate", 0, INT64_MAX, &ru->truncate, err, errlen, i) != 0 ||
            get_int(r, "lie_length", 0, INT64_MAX, &ru->lie_length, err, errlen, i) != 0)
            goto bad;
        ru->status = (int)status;
        v = json_object_get(r, "endless");
        if (v != NULL) {
            if (json_is_string(v) && strcmp(json_string_value(v), "after") == 0)
                ru->endless = ENDLESS_AFTER;
            else if (json_is_string(v) && strcmp(json_string_value(v), "zeros") == 0)
                ru->endless = ENDLESS_ZEROS;
            else {
                snprintf(err, errlen, "rule %zu: 'endless' is \"after\" or \"zeros\"", i);
                goto bad;
            }
        }
        v = json_object_get(r, "ignore_range");
        if (v != NULL && !json_is_boolean(v)) {
            snprintf(err, errlen, "rule %zu: 'ignore_range' must be a boolean", i);
            goto bad;
        }
        ru->ignore_range = json_is_true(v);
    }
    goto out;
bad:
    /* No rule of a bad file applies: keep the message, drop the rules parsed so far. */
    snprintf(keep, sizeof keep, "%s", err);
    rules_clear(s);
    snprintf(err, errlen, "%s", keep);
out:
    json_decref(doc);
}

/* Re-read the rules file if it changed since the last read. Called with s->lock held. */
static void
rules_refresh(struct server *s)
{
    struct stat     st;
    unsigned char  *buf = NULL;
    size_t          len = 0;
    struct ota_diag d;
    ota_err         rc;

    if (s->rules_path == NULL)
        return;
    if (stat(s->rules_path, &st) != 0) {
        if (s->rules_loaded || s->nrules > 0 || s->rules_error[0] != '\0')
            rules_clear(s);
        s->rules_loaded = 0;
        return;
    }
    if (s->rules_loaded && st.st_ino == s->rules_st.st_ino && st.st_size == s->rules_st.st_size &&
        st.st_mtim.tv_sec == s->rules_st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == s->rules_st.st_mtim.tv_nsec)
        return;
    rc = ota_read_file(s->rules_path, RULES_FILE_MAX, &buf, &len, &d);
    if (rc != OTA_OK) {
        rules_clear(s);
        snprintf(s->rules_error, sizeof s->rules_error, "cannot read rules: %.200s", d.msg);
    } else {
        rules_parse(s, (const char *)buf, len);
    }
    if (s->rules_error[0] != '\0')
        fprintf(stderr, "ota-evil-server: '%s': %s\n", s->rules_path, s->rules_error);
    s->rules_st = st;
    s->rules_loaded = 1;
    free(buf);
}

/* ---- bodies ------------------------------------------------------------------------------ */

struct body {
    int             fd;       /* -1: no file (endless zeros, status pages) */
    uint64_t        off, len; /* the slice of the file to send */
    long long       drip, truncate;
    enum endless    endless;
    struct timespec start;
};

static double
elapsed_s(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static void
nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* MHD calls this from the connection's own thread (one thread per connection), so it may
 * sleep to pace a drip. */
static ssize_t
body_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct body *b = cls;
    ssize_t      n;

    if (b->truncate >= 0) {
        if (pos >= (uint64_t)b->truncate)
            return MHD_CONTENT_READER_END_WITH_ERROR; /* close without finishing */
        if (max > (uint64_t)b->truncate - pos)
            max = (size_t)((uint64_t)b->truncate - pos);
    }
    if (b->drip > 0) {
        double allowed;
        for (;;) {
            if (atomic_load(&stopping))
                return MHD_CONTENT_READER_END_WITH_ERROR;
            allowed = elapsed_s(&b->start) * (double)b->drip - (double)pos;
            if (allowed >= 1.0)
                break;
            nap_ms(20);
        }
        if ((double)max > allowed)
            max = (size_t)allowed;
    }
    if (atomic_load(&stopping))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (b->fd >= 0 && b->endless != ENDLESS_ZEROS && pos < b->len) {
        if (max > b->len - pos)
            max = (size_t)(b->len - pos);
        do
            n = pread(b->fd, buf, max, (off_t)(b->off + pos));
        while (n < 0 && errno == EINTR);
        if (n <= 0) /* the file shrank under us */
            return MHD_CONTENT_READER_END_WITH_ERROR;
        return n;
    }
    if (b->endless != ENDLESS_NO) {
        memset(buf, 0, max);
        return (ssize_t)max;
    }
    return MHD_CONTENT_READER_END_OF_STREAM;
}

static void
body_free(void *cls)
{
    struct body *b = cls;

    if (b->fd >= 0)
        close(b->fd);
    free(b);
}

/* ---- requests ---------------------------------------------------------------------------- */

static void
log_request(struct server *s, const char *method, const char *url, const char *range,
            unsigned status, long rule)
{
    if (s->log == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    if (rule >= 0)
        fprintf(s->log, "%s %s %s %u %ld\n", method, url, range ? range : "-", status, rule);
    else
        fprintf(s->log, "%s %s %s %u -\n", method, url, range ? range : "-", status);
    fflush(s->log);
    pthread_mutex_unlock(&s->lock);
}

static enum MHD_Result
send_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    struct MHD_Response *r;
    enum MHD_Result      ret;

    r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain");
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* A URL path is served only if it stays below the root: no ".." component. */
static int
safe_url(const char *url)
{
    const char *p = url;

    if (url[0] != '/')
        return 0;
    while (*p != '\0') {
        const char *e;
        while (*p == '/')
            p++;
        e = strchr(p, '/');
        if (e == NULL)
            e = p + strlen(p);
        if (e - p == 2 && p[0] == '.' && p[1] == '.')
            return 0;
        p = e;
    }
    return 1;
}

/* "bytes=A-" or "bytes=A-B": 0 and the range, or -1 for anything else (served as 200). */
static int
parse_range(const char *h, uint64_t size, uint64_t *from, uint64_t *to)
{
    unsigned long long a, b;
    char              *end;

    if (h == NULL || strncmp(h, "bytes=", 6) != 0)
        return -1;
    errno = 0;
    a = strtoull(h + 6, &end, 10);
    if (errno != 0 || end == h + 6 || *end != '-')
        return -1;
    if (end[1] == '\0') {
        b = size > 0 ? size - 1 : 0;
    } else {
        char *end2;
        b = strtoull(end + 1, &end2, 10);
        if (errno != 0 || *end2 != '\0' || b < a)
            return -1;
        if (size > 0 && b > size - 1)
            b = size - 1;
    }
    *from = a;
    *to = b;
    return 0;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **ctx)
{
    struct server       *s = cls;
    struct rule          ru;
    struct body         *b = NULL;
    struct MHD_Response *r = NULL;
    struct stat          st;
    char                 path[4096], rules_error[sizeof s->rules_error], cr[96], len_text[32];
    const char          *range;
    uint64_t             from = 0, to = 0;
    long                 idx = -1;
    unsigned             status = MHD_HTTP_OK;
    int                  partial = 0, fd = -1;
    enum MHD_Result      ret;

    (void)version;
    (void)upload;
    if (*ctx == NULL) { /* first call: headers only */
        *ctx = (void *)1;
        return MHD_YES;
    }
    *upload_size = 0;
    range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);

    memset(&ru, 0, sizeof ru);
    ru.truncate = -1;
    ru.lie_length = -1;
    pthread_mutex_lock(&s->lock);
    rules_refresh(s);
    snprintf(rules_error, sizeof rules_error, "%s", s->rules_error);
    for (size_t i = 0; i < s->nrules && rules_error[0] == '\0'; i++) {
        if (fnmatch(s->rules[i].path, url, 0) == 0) {
            ru = s->rules[i];
            /* The strings stay valid only under the lock: copy what is used after it. */
            ru.path = NULL;
            ru.substitute = NULL;
            if (s->rules[i].substitute != NULL) {
                if (s->rules[i].substitute[0] == '/')
                    snprintf(path, sizeof path, "%s", s->rules[i].substitute);
                else
                    snprintf(path, sizeof path, "%s/%s", s->root, s->rules[i].substitute);
                ru.substitute = path;
            }
            idx = (long)i;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);

    if (rules_error[0] != '\0') {
        log_request(s, method, url, range, 500, -1);
        return send_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "invalid rules file\n");
    }
    for (long long waited = 0; waited < ru.delay_ms && !atomic_load(&stopping); waited += 20)
        nap_ms(ru.delay_ms - waited < 20 ? (long)(ru.delay_ms - waited) : 20);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        log_request(s, method, url, range, 405, idx);
        return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n");
    }
    if (ru.status != 0) {
        char text[64];
        snprintf(text, sizeof text, "ota-evil-server: status %d on purpose\n", ru.status);
        log_request(s, method, url, range, (unsigned)ru.status, idx);
        return send_text(c, (unsigned)ru.status, text);
    }
    if (ru.endless != ENDLESS_ZEROS) {
        if (ru.substitute == NULL) {
            if (!safe_url(url) ||
                snprintf(path, sizeof path, "%s%s", s->root, url) >= (int)sizeof path) {
                log_request(s, method, url, range, 404, idx);
                return send_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
            }
        }
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            if (fd >= 0)
                close(fd);
            log_request(s, method, url, range, 404, idx);
            return send_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
        }
    } else {
        st.st_size = 0;
    }

    b = calloc(1, sizeof *b);
    if (b == NULL) {
        if (fd >= 0)
            close(fd);
        return MHD_NO;
    }
    b->fd = fd;
    b->drip = ru.drip;
    b->truncate = ru.truncate;
    b->endless = ru.endless;
    b->len = (uint64_t)st.st_size;
    clock_gettime(CLOCK_MONOTONIC, &b->start);
    if (fd >= 0 && !ru.ignore_range && parse_range(range, (uint64_t)st.st_size, &from, &to) == 0) {
        if (from >= (uint64_t)st.st_size) {
            snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)st.st_size);
            body_free(b);
            r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
            if (r == NULL)
                return MHD_NO;
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
            log_request(s, method, url, range, 416, idx);
            ret = MHD_queue_response(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
            MHD_destroy_response(r);
            return ret;
        }
        b->off = from;
        b->len = to - from + 1;
        partial = 1;
        status = MHD_HTTP_PARTIAL_CONTENT;
        snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)from,
                 (unsigned long long)to, (unsigned long long)st.st_size);
    }
    /* An endless body or a lied length has no true size: HTTP/1.0 style (no chunking, the
     * end is the closed connection), so the announced length is the only one on the wire. */
    r = MHD_create_response_from_callback(
        ru.endless != ENDLESS_NO || ru.lie_length >= 0 ? MHD_SIZE_UNKNOWN : b->len, BLOCK,
        body_read, b, body_free);
    if (r == NULL) {
        body_free(b);
        return MHD_NO;
    }
    if (ru.lie_length >= 0) {
        snprintf(len_text, sizeof len_text, "%lld", ru.lie_length);
        if (MHD_set_response_options(
                r, MHD_RF_HTTP_1_0_COMPATIBLE_STRICT | MHD_RF_INSANITY_HEADER_CONTENT_LENGTH,
                MHD_RO_END) != MHD_YES ||
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH, len_text) != MHD_YES) {
            MHD_destroy_response(r);
            return MHD_NO;
        }
    } else if (ru.endless != ENDLESS_NO) {
        MHD_set_response_options(r, MHD_RF_HTTP_1_0_COMPATIBLE_STRICT, MHD_RO_END);
    }
    if (partial)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    log_request(s, method, url, range, status, idx);
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- main -------------------------------------------------------------------------------- */

static void
usage(void)
{
    fputs("usage: ota-evil-server --root DIR [--rules FILE] [--port N] [--port-file F]\n"
          "                       [--pid-file F] [--log FILE]\n"
          "A test tool: serves DIR on 127.0.0.1 and misbehaves as FILE says (see its source).\n",
          stderr);
}

static int
write_number(const char *path, long v)
{
    char            text[32];
    struct ota_diag d;

    snprintf(text, sizeof text, "%ld\n", v);
    if (ota_write_file_atomic(path, text, strlen(text), 0644, 0, &d) != OTA_OK) {
        fprintf(stderr, "ota-evil-server: cannot write '%s': %s\n", path, d.msg);
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct server               s;
    struct sockaddr_in          sa;
    struct MHD_Daemon          *daemon = NULL;
    const union MHD_DaemonInfo *info;
    const char                 *port_file = NULL, *pid_file = NULL, *log_path = NULL;
    struct stat                 st;
    sigset_t                    sigs;
    long                        port = 0;
    int                         sig, status = 1;

    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.lock, NULL);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        char       *end = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage();
            return 0;
        }
        if (val == NULL) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(a, "--root") == 0) {
            s.root = val;
        } else if (strcmp(a, "--rules") == 0) {
            s.rules_path = val;
        } else if (strcmp(a, "--port") == 0) {
            port = strtol(val, &end, 10);
            if (*end != '\0' || port < 0 || port > 65535) {
                fprintf(stderr, "ota-evil-server: bad port '%s'\n", val);
                return 2;
            }
        } else if (strcmp(a, "--port-file") == 0) {
            port_file = val;
        } else if (strcmp(a, "--pid-file") == 0) {
            pid_file = val;
        } else if (strcmp(a, "--log") == 0) {
            log_path = val;
        } else {
            usage();
            return 2;
        }
    }
    if (s.root == NULL) {
        usage();
        return 2;
    }
    if (stat(s.root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "ota-evil-server: '%s' is not a directory\n", s.root);
        return 2;
    }
    if (log_path != NULL && (s.log = fopen(log_path, "ae")) == NULL) {
        fprintf(stderr, "ota-evil-server: cannot open '%s': %s\n", log_path, strerror(errno));
        return 1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Stop signals are taken by sigwait() below only: block them before any thread starts. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0,
        NULL, NULL, on_request, &s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
    if (daemon == NULL) {
        fprintf(stderr, "ota-evil-server: cannot listen on 127.0.0.1:%ld\n", port);
        goto out;
    }
    info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0) {
        fputs("ota-evil-server: cannot learn the bound port\n", stderr);
        goto out;
    }
    port = info->port;
    if (pid_file != NULL && write_number(pid_file, (long)getpid()) != 0)
        goto out;
    if (port_file != NULL && write_number(port_file, port) != 0)
        goto out;
    do {
        sig = 0;
    } while (sigwait(&sigs, &sig) != 0);
    status = 0;
out:
    atomic_store(&stopping, 1); /* ends drips, delays and endless bodies */
    if (daemon != NULL)
        MHD_stop_daemon(daemon);
    pthread_mutex_lock(&s.lock);
    rules_clear(&s);
    pthread_mutex_unlock(&s.lock);
    if (s.log != NULL)
        fclose(s.log);
    if (status == 0 && port_file != NULL)
        unlink(port_file);
    if (status == 0 && pid_file != NULL)
        unlink(pid_file);
    return status;
}
