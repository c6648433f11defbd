/* Downloads: file:// and http (a real nginx started by this test on 127.0.0.1), caps enforced
 * while the body arrives, status mapping, resume with Range, a server that ignores Range or
 * never stops sending (an in-process libmicrohttpd server), timeouts, progress and the byte
 * counter. Every case asserts the exact ota_err. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "ota/fetch.h"
#include "ota/fsutil.h"

#define BIG_LEN (1u << 20)

struct env {
    char               dir[64];
    char               www[128];
    unsigned char     *big; /* BIG_LEN deterministic bytes, served as big.bin */
    pid_t              nginx;
    int                nginx_port;
    int                tls_port; /* same files over https, certificate tls.pem */
    struct MHD_Daemon *mhd;
    int                mhd_port;
};

static struct env E;

/* ---- helpers -------------------------------------------------------------------------- */

static void
write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static char *
url_of(const char *fmt, ...)
{
    static char u[4][512];
    static int  i;
    va_list     ap;
    char       *p = u[i++ % 4];

    va_start(ap, fmt);
    vsnprintf(p, sizeof u[0], fmt, ap);
    va_end(ap);
    return p;
}

struct collect {
    unsigned char *buf;
    size_t         len, cap;
    int            fail_after; /* refuse the chunk reaching this many bytes; 0 = never */
};

static ota_err
collect_sink(void *ctx, const void *buf, size_t len, struct ota_diag *d)
{
    struct collect *c = ctx;

    /* A failing sink takes nothing of the chunk it refuses. */
    if (c->fail_after > 0 && c->len + len >= (size_t)c->fail_after)
        return ota_diag_set(d, OTA_E_IO, "disk full");
    if (c->len + len > c->cap) {
        c->cap = (c->len + len) * 2;
        c->buf = realloc(c->buf, c->cap);
        assert_non_null(c->buf);
    }
    memcpy(c->buf + c->len, buf, len);
    c->len += len;
    return OTA_OK;
}

/* A port nothing listens on now (bound to 0, read back, closed). */
static int
free_port(void)
{
    struct sockaddr_in a;
    socklen_t          al = sizeof a;
    int                s = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_true(s >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    port = ntohs(a.sin_port);
    close(s);
    return port;
}

static int
port_open(int port)
{
    struct sockaddr_in a;
    int                s = socket(AF_INET, SOCK_STREAM, 0), ok;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

/* ---- nginx ---------------------------------------------------------------------------- */

static int
start_nginx(void)
{
    char conf[256], text[2048];
    int  i;

    E.nginx_port = free_port();
    do
        E.tls_port = free_port();
    while (E.tls_port == E.nginx_port);
    snprintf(conf, sizeof conf, "%s/nginx.conf", E.dir);
    snprintf(text, sizeof text,
             "daemon off;\nmaster_process off;\nworker_processes 1;\npid %s/nginx.pid;\n"
             "error_log %s/nginx-error.log;\nevents { worker_connections 64; }\n"
             "http {\n access_log off;\n client_body_temp_path %s/t1;\n proxy_temp_path %s/t2;\n"
             " fastcgi_temp_path %s/t3;\n uwsgi_temp_path %s/t4;\n scgi_temp_path %s/t5;\n"
             " server {\n  listen 127.0.0.1:%d;\n  listen 127.0.0.1:%d ssl;\n"
             "  ssl_certificate %s/tls.pem;\n  ssl_certificate_key %s/tls.key;\n  root %s;\n"
             "  location = /moved { return 301 /small.txt; }\n"
             "  location = /unavailable { return 503; }\n"
             "  location = /gone { return 410; }\n"
             " }\n}\n",
             E.dir, E.dir, E.dir, E.dir, E.dir, E.dir, E.dir, E.nginx_port, E.tls_port, E.dir,
             E.dir, E.www);
    write_file(conf, text, strlen(text));
    E.nginx = fork();
    if (E.nginx < 0)
        return -1;
    if (E.nginx == 0) {
        char errlog[256];
        snprintf(errlog, sizeof errlog, "%s/nginx-error.log", E.dir);
        execlp("nginx", "nginx", "-p", E.dir, "-e", errlog, "-c", conf, (char *)NULL);
        execl("/usr/sbin/nginx", "nginx", "-p", E.dir, "-e", errlog, "-c", conf, (char *)NULL);
        _exit(127);
    }
    for (i = 0; i < 100; i++) {
        if (port_open(E.nginx_port) && port_open(E.tls_port))
            return 0;
        usleep(50 * 1000);
    }
    fprintf(stderr, "nginx did not start on port %d\n", E.nginx_port);
    return -1;
}

/* A self-signed certificate for 127.0.0.1 (and another one nobody should trust). */
static int
make_cert(const char *name)
{
    char cmd[1024];

    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 -keyout %s/%s.key -out %s/%s.pem "
             ">%s/openssl.log 2>&1",
             E.dir, name, E.dir, name, E.dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- libmicrohttpd: the misbehaving servers ------------------------------------------- */

static ssize_t
endless_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    memset(buf, 'x', max);
    return (ssize_t)max;
}

static ssize_t
slow_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)max;
    if (pos >= 100)
        return MHD_CONTENT_READER_END_OF_STREAM;
    usleep(300 * 1000);
    buf[0] = 's';
    return 1;
}

static enum MHD_Result
mhd_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
            const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct MHD_Response *r;
    enum MHD_Result      ret;
    unsigned             status = MHD_HTTP_OK;

    (void)cls;
    (void)method;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(url, "/norange") == 0) {
        /* Ignores any Range header: always the whole file with 200. */
        r = MHD_create_response_from_buffer(BIG_LEN, E.big, MHD_RESPMEM_PERSISTENT);
    } else if (strcmp(url, "/endless") == 0) {
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, endless_reader, NULL, NULL);
    } else if (strcmp(url, "/slow") == 0) {
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, slow_reader, NULL, NULL);
    } else if (strcmp(url, "/empty-error") == 0) {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    } else {
        r = MHD_create_response_from_buffer(9, (void *)"not found", MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_NOT_FOUND;
    }
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static int
start_mhd(void)
{
    struct sockaddr_in          a;
    const union MHD_DaemonInfo *info;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    E.mhd =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                         NULL, mhd_handler, NULL, MHD_OPTION_SOCK_ADDR, &a, MHD_OPTION_END);
    if (E.mhd == NULL)
        return -1;
    info = MHD_get_daemon_info(E.mhd, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0)
        return -1;
    E.mhd_port = info->port;
    return 0;
}

/* ---- setup ---------------------------------------------------------------------------- */

static int
setup(void **state)
{
    char     p[256];
    uint32_t x = 2463534242u;
    size_t   i;

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    snprintf(E.dir, sizeof E.dir, "/tmp/ota-test-fetch.XXXXXX");
    if (mkdtemp(E.dir) == NULL)
        return -1;
    snprintf(E.www, sizeof E.www, "%s/www", E.dir);
    if (mkdir(E.www, 0755) != 0)
        return -1;
    E.big = malloc(BIG_LEN);
    if (E.big == NULL)
        return -1;
    for (i = 0; i < BIG_LEN; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        E.big[i] = (unsigned char)x;
    }
    snprintf(p, sizeof p, "%s/big.bin", E.www);
    write_file(p, E.big, BIG_LEN);
    snprintf(p, sizeof p, "%s/small.txt", E.www);
    write_file(p, "hello, ota\n", 11);
    snprintf(p, sizeof p, "%s/empty.txt", E.www);
    write_file(p, "", 0);
    if (make_cert("tls") != 0 || make_cert("other") != 0 || start_nginx() != 0 || start_mhd() != 0)
        return -1;
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    if (E.nginx > 0) {
        kill(E.nginx, SIGTERM);
        waitpid(E.nginx, NULL, 0);
    }
    if (E.mhd != NULL)
        MHD_stop_daemon(E.mhd);
    free(E.big);
    if (ota_rm_rf(E.dir, NULL) != OTA_OK)
        fprintf(stderr, "cannot remove %s\n", E.dir);
    return 0;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void
expect_mem(const char *url, size_t max, ota_err want)
{
    unsigned char  *buf = NULL;
    size_t          len = 0;
    struct ota_diag d;

    memset(&d, 0, sizeof d);
    assert_int_equal(ota_fetch_mem(NULL, url, max, &buf, &len, &d), want);
    assert_null(buf); /* out-parameters untouched on failure */
    assert_true(strlen(d.msg) > 0);
}

static void
test_file_mem(void **state)
{
    unsigned char  *buf = NULL;
    size_t          len = 0;
    struct ota_diag d;
    uint64_t        before = ota_fetch_bytes_total();

    (void)state;
    assert_int_equal(ota_fetch_mem(NULL, url_of("file://%s/small.txt", E.www), 11, &buf, &len, &d),
                     OTA_OK);
    assert_int_equal(len, 11);
    assert_memory_equal(buf, "hello, ota\n", 11);
    assert_int_equal(buf[11], '\0');
    free(buf);
    assert_true(ota_fetch_bytes_total() >= before + 11);
    assert_int_equal(ota_fetch_mem(NULL, url_of("file://%s/empty.txt", E.www), 10, &buf, &len, &d),
                     OTA_OK);
    assert_int_equal(len, 0);
    assert_int_equal(buf[0], '\0');
    free(buf);
    expect_mem(url_of("file://%s/small.txt", E.www), 10, OTA_E_TOO_BIG);
    expect_mem(url_of("file://%s/big.bin", E.www), BIG_LEN - 1, OTA_E_TOO_BIG);
    expect_mem(url_of("file://%s/missing.txt", E.www), 100, OTA_E_NOT_FOUND);
    /* schemes outside http, https and file are refused */
    expect_mem("ftp://127.0.0.1/x", 100, OTA_E_INVALID);
    expect_mem("dict://127.0.0.1/x", 100, OTA_E_INVALID);
}

static void
test_file_stream_resume_and_limit(void **state)
{
    struct collect  c = {0};
    struct ota_diag d;
    uint64_t        got = 99;

    (void)state;
    /* the rest from an offset */
    assert_int_equal(ota_fetch_stream(NULL, url_of("file://%s/big.bin", E.www), 1000, BIG_LEN,
                                      collect_sink, &c, &got, &d),
                     OTA_OK);
    assert_int_equal(got, BIG_LEN - 1000);
    assert_int_equal(c.len, BIG_LEN - 1000);
    assert_memory_equal(c.buf, E.big + 1000, c.len);
    c.len = 0;
    /* more than max_total: stopped at the limit */
    assert_int_equal(ota_fetch_stream(NULL, url_of("file://%s/big.bin", E.www), 0, BIG_LEN - 1,
                                      collect_sink, &c, &got, &d),
                     OTA_E_LENGTH);
    assert_true(got <= BIG_LEN - 1);
    assert_int_equal(got, c.len);
    c.len = 0;
    /* a sink error aborts with its code; received tells how far it got */
    c.fail_after = 100000;
    assert_int_equal(ota_fetch_stream(NULL, url_of("file://%s/big.bin", E.www), 0, BIG_LEN,
                                      collect_sink, &c, &got, &d),
                     OTA_E_IO);
    assert_string_equal(d.msg, "disk full");
    assert_true(got < BIG_LEN);
    c.fail_after = 0;
    c.len = 0;
    /* offset past the limit is a caller error */
    assert_int_equal(ota_fetch_stream(NULL, url_of("file://%s/big.bin", E.www), 10, 5, collect_sink,
                                      &c, &got, &d),
                     OTA_E_INVALID);
    /* offset past the end of the file */
    assert_int_equal(ota_fetch_stream(NULL, url_of("file://%s/small.txt", E.www), 50, 100,
                                      collect_sink, &c, &got, &d),
                     OTA_E_NETWORK);
    assert_int_equal(got, 0);
    free(c.buf);
}

static void
test_http_mem(void **state)
{
    unsigned char  *buf = NULL;
    size_t          len = 0;
    struct ota_diag d;
    int             p = E.nginx_port;

    (void)state;
    assert_int_equal(
        ota_fetch_mem(NULL, url_of("http://127.0.0.1:%d/big.bin", p), BIG_LEN, &buf, &len, &d),
        OTA_OK);
    assert_int_equal(len, BIG_LEN);
    assert_memory_equal(buf, E.big, BIG_LEN);
    free(buf);
    expect_mem(url_of("http://127.0.0.1:%d/big.bin", p), BIG_LEN - 1, OTA_E_TOO_BIG);
    expect_mem(url_of("http://127.0.0.1:%d/missing", p), 100, OTA_E_NOT_FOUND);
    expect_mem(url_of("http://127.0.0.1:%d/gone", p), 100, OTA_E_NOT_FOUND);
    memset(&d, 0, sizeof d);
    assert_int_equal(
        ota_fetch_mem(NULL, url_of("http://127.0.0.1:%d/unavailable", p), 100, &buf, &len, &d),
        OTA_E_NETWORK);
    assert_non_null(strstr(d.msg, "server answered 503 for 'http://127.0.0.1:"));
    /* redirects are not followed, and their body is not taken for the file */
    expect_mem(url_of("http://127.0.0.1:%d/moved", p), 100, OTA_E_NETWORK);
    /* nothing listening */
    expect_mem(url_of("http://127.0.0.1:%d/x", free_port()), 100, OTA_E_NETWORK);
    /* an error status with an empty body */
    expect_mem(url_of("http://127.0.0.1:%d/empty-error", E.mhd_port), 100, OTA_E_NETWORK);
}

static void
test_http_resume(void **state)
{
    struct collect  c = {0};
    struct ota_diag d;
    uint64_t        got = 0, off;

    (void)state;
    /* An interrupted download (the sink stops it after ~300 KiB) resumes with Range where it
     * stopped and ends with the exact file. */
    c.fail_after = 300000;
    assert_int_equal(ota_fetch_stream(NULL, url_of("http://127.0.0.1:%d/big.bin", E.nginx_port), 0,
                                      BIG_LEN, collect_sink, &c, &got, &d),
                     OTA_E_IO);
    assert_true(got > 0 && got < BIG_LEN);
    assert_int_equal(got, c.len);
    off = got;
    c.fail_after = 0;
    assert_int_equal(ota_fetch_stream(NULL, url_of("http://127.0.0.1:%d/big.bin", E.nginx_port),
                                      off, BIG_LEN, collect_sink, &c, &got, &d),
                     OTA_OK);
    assert_int_equal(got, BIG_LEN - off);
    assert_int_equal(c.len, BIG_LEN);
    assert_memory_equal(c.buf, E.big, BIG_LEN);
    /* resuming a complete file fetches nothing more */
    assert_int_equal(ota_fetch_stream(NULL, url_of("http://127.0.0.1:%d/big.bin", E.nginx_port),
                                      BIG_LEN, BIG_LEN, collect_sink, &c, &got, &d),
                     OTA_OK);
    assert_int_equal(got, 0);
    /* max_total enforced over http too */
    c.len = 0;
    assert_int_equal(ota_fetch_stream(NULL, url_of("http://127.0.0.1:%d/big.bin", E.nginx_port), 10,
                                      BIG_LEN / 2, collect_sink, &c, &got, &d),
                     OTA_E_LENGTH);
    assert_true(got <= BIG_LEN / 2 - 10);
    /* a server that ignores Range answers 200 with the whole file: refused, nothing delivered */
    c.len = 0;
    memset(&d, 0, sizeof d);
    assert_int_equal(ota_fetch_stream(NULL, url_of("http://127.0.0.1:%d/norange", E.mhd_port), 5000,
                                      BIG_LEN, collect_sink, &c, &got, &d),
                     OTA_E_NETWORK);
    assert_int_equal(got, 0);
    assert_int_equal(c.len, 0);
    assert_true(strlen(d.msg) > 0);
    /* ... and from 0 the same server is fine */
    assert_int_equal(ota_fetch_stream(NULL, url_of("http://127.0.0.1:%d/norange", E.mhd_port), 0,
                                      BIG_LEN, collect_sink, &c, &got, &d),
                     OTA_OK);
    assert_int_equal(c.len, BIG_LEN);
    assert_memory_equal(c.buf, E.big, BIG_LEN);
    free(c.buf);
}

static void
test_endless_and_slow(void **state)
{
    struct collect        c = {0};
    struct ota_diag       d;
    uint64_t              got = 0;
    struct ota_fetch_opts o;
    unsigned char        *buf = NULL;
    size_t                len = 0;

    (void)state;
    /* no Content-Length, never ends: cut at the cap */
    expect_mem(url_of("http://127.0.0.1:%d/endless", E.mhd_port), 64 << 10, OTA_E_TOO_BIG);
    assert_int_equal(ota_fetch_stream(NULL, url_of("http://127.0.0.1:%d/endless", E.mhd_port), 0,
                                      100000, collect_sink, &c, &got, &d),
                     OTA_E_LENGTH);
    assert_true(got <= 100000);
    free(c.buf);
    /* slower than low_speed_bytes/s for low_speed_time_s */
    memset(&o, 0, sizeof o);
    o.low_speed_time_s = 1;
    o.low_speed_bytes = 1000;
    assert_int_equal(
        ota_fetch_mem(&o, url_of("http://127.0.0.1:%d/slow", E.mhd_port), 1000, &buf, &len, &d),
        OTA_E_TIMEOUT);
    assert_null(buf);
    /* the whole transfer bounded */
    memset(&o, 0, sizeof o);
    o.total_timeout_s = 1;
    assert_int_equal(
        ota_fetch_mem(&o, url_of("http://127.0.0.1:%d/slow", E.mhd_port), 1000, &buf, &len, &d),
        OTA_E_TIMEOUT);
}

struct prog {
    uint64_t last_done, last_total;
    int      calls;
};

static void
on_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct prog *p = ctx;

    p->calls++;
    p->last_done = done;
    p->last_total = total;
}

static void
test_progress(void **state)
{
    struct ota_fetch_opts o;
    struct prog           p = {0};
    struct collect        c = {0};
    struct ota_diag       d;
    uint64_t              got = 0;

    (void)state;
    memset(&o, 0, sizeof o);
    o.progress = on_progress;
    o.progress_ctx = &p;
    o.user_agent = "ota-test/1";
    assert_int_equal(ota_fetch_stream(&o, url_of("http://127.0.0.1:%d/big.bin", E.nginx_port), 4096,
                                      BIG_LEN, collect_sink, &c, &got, &d),
                     OTA_OK);
    assert_true(p.calls > 0);
    assert_int_equal(p.last_done, BIG_LEN); /* offset included */
    assert_int_equal(p.last_total, BIG_LEN);
    free(c.buf);
}

static void
test_tls(void **state)
{
    struct ota_fetch_opts o;
    struct ota_diag       d;
    unsigned char        *buf = NULL;
    size_t                len = 0;
    char                  ca[256], other[256], missing[256];

    (void)state;
    snprintf(ca, sizeof ca, "%s/tls.pem", E.dir);
    snprintf(other, sizeof other, "%s/other.pem", E.dir);
    snprintf(missing, sizeof missing, "%s/no-such-ca.pem", E.dir);
    memset(&o, 0, sizeof o);
    o.connect_timeout_s = 5;
    /* the pinned CA that signed the server's certificate */
    o.ca_file = ca;
    assert_int_equal(ota_fetch_mem(&o, url_of("https://127.0.0.1:%d/small.txt", E.tls_port), 100,
                                   &buf, &len, &d),
                     OTA_OK);
    assert_int_equal(len, 11);
    free(buf);
    buf = NULL;
    /* verification is on: the system store does not know the server, nor does another CA */
    expect_mem(url_of("https://127.0.0.1:%d/small.txt", E.tls_port), 100, OTA_E_NETWORK);
    o.ca_file = other;
    assert_int_equal(ota_fetch_mem(&o, url_of("https://127.0.0.1:%d/small.txt", E.tls_port), 100,
                                   &buf, &len, &d),
                     OTA_E_NETWORK);
    assert_null(buf);
    o.ca_file = missing;
    assert_int_equal(ota_fetch_mem(&o, url_of("https://127.0.0.1:%d/small.txt", E.tls_port), 100,
                                   &buf, &len, &d),
                     OTA_E_NETWORK);
    /* the host name is checked: the certificate is for 127.0.0.1, not for localhost */
    o.ca_file = ca;
    assert_int_equal(ota_fetch_mem(&o, url_of("https://localhost:%d/small.txt", E.tls_port), 100,
                                   &buf, &len, &d),
                     OTA_E_NETWORK);
    assert_null(buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_mem),
        cmocka_unit_test(test_file_stream_resume_and_limit),
        cmocka_unit_test(test_http_mem),
        cmocka_unit_test(test_http_resume),
        cmocka_unit_test(test_endless_and_slow),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_tls),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
