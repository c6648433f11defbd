/* ota-syncd: the reference sync server (formats/sync-protocol.md).
 *
 * It is small on purpose: an app team that implements the protocol in its own backend can read
 * it top to bottom. The one rule that matters is in apply_batch(): every change is stored under
 * its id with INSERT OR IGNORE, all changes of a request in one transaction, and an id seen
 * before is answered "accepted" again. That makes a resent batch harmless, so a device that
 * crashed before recording our answer loses nothing and duplicates nothing.
 *
 *   ota-syncd --db FILE [--listen 127.0.0.1] [--port N|0] [--port-file F] [--pid-file F]
 *             [--token T] [--reject-entity NAME]... [--fail-rate PCT] [--offline]
 *
 * One thread serves every request (libmicrohttpd's internal polling thread), so the SQLite
 * connection and the counters need no locks. SIGTERM or SIGINT stops it cleanly. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>
#include <sqlite3.h>

#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "protocol.h"

#define REJECT_MAX 64
#define LIST_LIMIT_MAX 1000000

enum mode { MODE_OK, MODE_FAIL, MODE_OFFLINE };
static const char *const mode_names[] = { "ok", "fail", "offline" };

struct server {
    sqlite3     *db;
    const char  *token;                  /* NULL = no sign-in required */
    const char  *reject[REJECT_MAX];     /* entities this server refuses */
    size_t       nreject;
    unsigned     fail_rate;              /* percent of sync requests that fail on purpose */
    unsigned     rng;
    enum mode    mode;
    /* counters for /admin/stats */
    uint64_t requests, batches, applied, duplicates, rejected, unauthorized, failed, bad;
};

/* One request's body, gathered across libmicrohttpd's calls. */
struct req {
    char  *p;
    size_t len, cap;
    int    too_big;
};

/* Appends n bytes to a growing, NUL-terminated buffer. */
static int
append(struct req *q, const void *p, size_t n)
{
    if (q->len + n + 1 > q->cap) {
        size_t nc = q->cap ? q->cap : 64 * 1024;
        char  *np;
        while (nc < q->len + n + 1)
            nc *= 2;
        np = realloc(q->p, nc);
        if (np == NULL)
            return -1;
        q->p = np;
        q->cap = nc;
    }
    memcpy(q->p + q->len, p, n);
    q->len += n;
    q->p[q->len] = '\0';
    return 0;
}

/* ---- responses --------------------------------------------------------------------------- */

static enum MHD_Result
send_text(struct MHD_Connection *c, unsigned status, char *json)
{
    struct MHD_Response *r;
    enum MHD_Result      ret;

    if (json == NULL)
        return MHD_NO; /* out of memory: drop the connection */
    r = MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(json);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result
send_json(struct MHD_Connection *c, unsigned status, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

    json_decref(v);
    return send_text(c, status, s);
}

/* {"error":"..."}: every failure answer has this shape. */
static enum MHD_Result
send_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
    return send_json(c, status, json_pack("{s:s}", "error", msg));
}

/* ---- storage ----------------------------------------------------------------------------- */

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS changes("
    " id TEXT PRIMARY KEY,"             /* the idempotency key */
    " model TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " entity TEXT NOT NULL,"
    " op TEXT NOT NULL,"
    " payload TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " received_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS changes_model ON changes(model);";

static int
db_open(struct server *s, const char *path)
{
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        fprintf(stderr, "ota-syncd: cannot open '%s': %s\n", path,
                s->db ? sqlite3_errmsg(s->db) : "out of memory");
        return -1;
    }
    sqlite3_busy_timeout(s->db, 10000);
    /* A change we answered "accepted" must survive a power cut: synchronous=FULL. */
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
                     NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "ota-syncd: cannot set up '%s': %s\n", path, sqlite3_errmsg(s->db));
        return -1;
    }
    return 0;
}

/* Payload text as stored: compact JSON, with real numbers in the shortest of 15 or 17 digits
 * that gives the same number back (52.37 stays 52.37). */
static char *
payload_text(const json_t *v)
{
    char   *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    json_t *back;

    if (s == NULL)
        return NULL;
    back = json_loads(s, JSON_DECODE_ANY, NULL);
    if (back != NULL && json_equal(back, (json_t *)v)) {
        json_decref(back);
        return s;
    }
    json_decref(back);
    free(s);
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
}

/* ---- the protocol ------------------------------------------------------------------------ */

static int
entity_refused(const struct server *s, const char *entity)
{
    size_t i;

    for (i = 0; i < s->nreject; i++)
        if (strcmp(s->reject[i], entity) == 0)
            return 1;
    return 0;
}

/* Stores the changes of one request, each id at most once, in one transaction; fills the
 * accepted and rejected lists of the answer. Returns 0, or -1 on a database error (then
 * nothing was stored). */
static int
apply_batch(struct server *s, const char *model, json_t *changes, json_t *accepted,
            json_t *rejected)
{
    sqlite3_stmt *st = NULL;
    uint64_t      applied = 0, dup = 0, rej = 0;
    size_t        i;
    json_t       *ch;
    int           rc = -1;

    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR IGNORE INTO changes(id, model, seq, entity, op, payload, "
                           "created_at, received_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto out;
    json_array_foreach(changes, i, ch) {
        const char *id = json_string_value(json_object_get(ch, "id"));
        const char *entity = json_string_value(json_object_get(ch, "entity"));
        char       *payload;
        int         step;

        if (entity_refused(s, entity)) {
            char why[200];
            snprintf(why, sizeof why, "entity '%.128s' is not accepted by this server", entity);
            json_array_append_new(rejected, json_pack("{s:s, s:s}", "id", id, "reason", why));
            rej++;
            continue;
        }
        payload = payload_text(json_object_get(ch, "payload"));
        if (payload == NULL)
            goto out;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, model, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, json_integer_value(json_object_get(ch, "seq")));
        sqlite3_bind_text(st, 4, entity, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, json_string_value(json_object_get(ch, "op")), -1,
                          SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 6, payload, -1, free);
        sqlite3_bind_int64(st, 7, json_integer_value(json_object_get(ch, "created_at")));
        sqlite3_bind_int64(st, 8, (sqlite3_int64)time(NULL));
        step = sqlite3_step(st);
        sqlite3_reset(st);
        if (step != SQLITE_DONE)
            goto out;
        /* No row inserted means the id was stored before: a resent change. It is accepted
         * again, so the device can mark it, but it is not applied twice. */
        if (sqlite3_changes(s->db) > 0)
            applied++;
        else
            dup++;
        json_array_append_new(accepted, json_string(id));
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto out;
    s->applied += applied;
    s->duplicates += dup;
    s->rejected += rej;
    s->batches++;
    rc = 0;
out:
    if (rc != 0 && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_finalize(st);
    return rc;
}

static int
authorized(const struct server *s, struct MHD_Connection *c)
{
    const char *h;
    size_t      n;

    if (s->token == NULL)
        return 1;
    h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    n = strlen(s->token);
    return strlen(h) == n && sodium_memcmp(h, s->token, n) == 0;
}

/* POST /sync/{model}: the whole protocol. */
static enum MHD_Result
handle_sync(struct server *s, struct MHD_Connection *c, const char *model, struct req *q)
{
    json_t         *body = NULL, *changes = NULL, *accepted, *rejected;
    struct ota_diag d;
    int             fail_after = 0;

    if (s->mode == MODE_OFFLINE)
        return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "server is offline");
    if (!authorized(s, c)) {
        s->unauthorized++;
        return send_error(c, MHD_HTTP_UNAUTHORIZED, "sign-in needed");
    }
    if (s->mode == MODE_FAIL) {
        s->failed++;
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "failing on purpose (mode fail)");
    }
    if (s->fail_rate > 0 && (unsigned)rand_r(&s->rng) % 100 < s->fail_rate) {
        /* Half of the injected failures come after the batch is stored: the answer is lost,
         * exactly what a device sees when the network drops mid-request. */
        s->failed++;
        if (rand_r(&s->rng) % 2 == 0)
            return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "failing on purpose");
        fail_after = 1;
    }
    if (q->too_big)
        return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body is over 8 MiB");
    if (!syncd_model_valid(model)) {
        s->bad++;
        return send_error(c, MHD_HTTP_NOT_FOUND, "no such model");
    }
    /* The whole request is checked before anything is stored. */
    if (syncd_request_parse(model, q->p, q->len, &body, &changes, &d) != OTA_OK) {
        s->bad++;
        return send_error(c, MHD_HTTP_BAD_REQUEST, d.msg);
    }
    accepted = json_array();
    rejected = json_array();
    if (apply_batch(s, model, changes, accepted, rejected) != 0) {
        fprintf(stderr, "ota-syncd: storing a batch failed: %s\n", sqlite3_errmsg(s->db));
        json_decref(accepted);
        json_decref(rejected);
        json_decref(body);
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot store the changes");
    }
    json_decref(body);
    if (fail_after) {
        json_decref(accepted);
        json_decref(rejected);
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "failing on purpose after storing");
    }
    return send_json(c, MHD_HTTP_OK, json_pack("{s:o, s:o}", "accepted", accepted, "rejected",
                                               rejected));
}

/* ---- admin (tests and the demo; loopback peers only) ------------------------------------- */

static int
peer_is_loopback(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    if (sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return 0;
}

static long long
query_int(struct MHD_Connection *c, const char *key, long long dflt, long long min, long long max)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    char       *end;
    long long   x;

    if (v == NULL || *v == '\0')
        return dflt;
    errno = 0;
    x = strtoll(v, &end, 10);
    if (*end != '\0' || errno != 0 || x < min || x > max)
        return min - 1;
    return x;
}

/* GET /admin/changes[?model=M][&after=ROWID][&limit=N]: stored changes in arrival order, as
 * a JSON array. Payloads go out as stored, so numbers keep the digits they were stored with. */
static enum MHD_Result
handle_changes(struct server *s, struct MHD_Connection *c)
{
    const char   *model = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "model");
    long long     after = query_int(c, "after", 0, 0, LLONG_MAX);
    long long     limit = query_int(c, "limit", 100000, 1, LIST_LIMIT_MAX);
    sqlite3_stmt *st = NULL;
    struct req    out = { NULL, 0, 0, 0 };
    int           step, first = 1;

    if (after < 0 || limit < 1)
        return send_error(c, MHD_HTTP_BAD_REQUEST, "bad 'after' or 'limit'");
    if (sqlite3_prepare_v2(s->db,
                           "SELECT rowid, id, model, seq, entity, op, payload, created_at FROM "
                           "changes WHERE (?1 IS NULL OR model=?1) AND rowid>?2 ORDER BY rowid "
                           "LIMIT ?3", -1, &st, NULL) != SQLITE_OK)
        goto fail;
    if (model != NULL)
        sqlite3_bind_text(st, 1, model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int64(st, 3, limit);
    if (append(&out, "[", 1) != 0)
        goto fail;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        json_t     *o;
        char       *head;
        const char *payload = (const char *)sqlite3_column_text(st, 6);
        int         bad;

        o = json_pack("{s:I, s:s, s:s, s:I, s:s, s:s, s:I}", "rowid",
                      (json_int_t)sqlite3_column_int64(st, 0), "id",
                      (const char *)sqlite3_column_text(st, 1), "model",
                      (const char *)sqlite3_column_text(st, 2), "seq",
                      (json_int_t)sqlite3_column_int64(st, 3), "entity",
                      (const char *)sqlite3_column_text(st, 4), "op",
                      (const char *)sqlite3_column_text(st, 5), "created_at",
                      (json_int_t)sqlite3_column_int64(st, 7));
        head = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (head == NULL || payload == NULL) {
            free(head);
            goto fail;
        }
        /* {"rowid":..,"created_at":N} -> {"rowid":..,"created_at":N,"payload":<stored>} */
        bad = append(&out, first ? "" : ",", first ? 0 : 1) != 0 ||
              append(&out, head, strlen(head) - 1) != 0 ||
              append(&out, ",\"payload\":", 11) != 0 ||
              append(&out, payload, strlen(payload)) != 0 || append(&out, "}", 1) != 0;
        free(head);
        if (bad)
            goto fail;
        first = 0;
    }
    if (step != SQLITE_DONE || append(&out, "]", 1) != 0)
        goto fail;
    sqlite3_finalize(st);
    return send_text(c, MHD_HTTP_OK, out.p);
fail:
    sqlite3_finalize(st);
    free(out.p);
    return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot list the changes");
}

/* GET /admin/stats: counters since start, and rows stored per model. */
static enum MHD_Result
handle_stats(struct server *s, struct MHD_Connection *c)
{
    sqlite3_stmt *st = NULL;
    json_t       *models = json_object();
    json_int_t    total = 0;

    if (sqlite3_prepare_v2(s->db, "SELECT model, count(*) FROM changes GROUP BY model", -1, &st,
                           NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_int_t n = (json_int_t)sqlite3_column_int64(st, 1);
            json_object_set_new(models, (const char *)sqlite3_column_text(st, 0),
                                json_integer(n));
            total += n;
        }
    }
    sqlite3_finalize(st);
    return send_json(c, MHD_HTTP_OK,
                     json_pack("{s:s, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "mode",
                               mode_names[s->mode], "stored", total, "models", models, "requests",
                               (json_int_t)s->requests, "batches", (json_int_t)s->batches,
                               "applied", (json_int_t)s->applied, "duplicates",
                               (json_int_t)s->duplicates, "rejected", (json_int_t)s->rejected,
                               "unauthorized", (json_int_t)s->unauthorized, "failed",
                               (json_int_t)s->failed, "bad_requests", (json_int_t)s->bad));
}

/* POST /admin/mode {"mode":"ok"|"fail"|"offline"}. "offline" answers 503 to sync requests;
 * tests that need a server that is truly unreachable stop the process instead. */
static enum MHD_Result
handle_mode(struct server *s, struct MHD_Connection *c, struct req *q)
{
    json_t         *v = NULL;
    const char     *m;
    struct ota_diag d;
    int             i;

    if (q->too_big || ota_cjson_parse(q->p ? q->p : "", q->len, 1024, &v, &d) != OTA_OK ||
        !json_is_object(v) || ota_json_get_str(v, "mode", 16, 1, &m, &d) != OTA_OK) {
        json_decref(v);
        return send_error(c, MHD_HTTP_BAD_REQUEST, "body must be {\"mode\":\"ok|fail|offline\"}");
    }
    for (i = 0; i < 3; i++) {
        if (strcmp(m, mode_names[i]) == 0) {
            s->mode = (enum mode)i;
            json_decref(v);
            return send_json(c, MHD_HTTP_OK, json_pack("{s:s}", "mode", mode_names[i]));
        }
    }
    json_decref(v);
    return send_error(c, MHD_HTTP_BAD_REQUEST, "mode must be ok, fail or offline");
}

/* ---- libmicrohttpd glue ------------------------------------------------------------------ */

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **ctx)
{
    struct server *s = cls;
    struct req    *q = *ctx;

    (void)version;
    if (q == NULL) {
        /* First call: only the headers are known. Refuse a declared oversize body at once. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        q = calloc(1, sizeof *q);
        if (q == NULL)
            return MHD_NO;
        *ctx = q;
        s->requests++;
        if (cl != NULL && strtoull(cl, NULL, 10) > SYNCD_BODY_MAX)
            q->too_big = 1;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        /* Gather the body up to the cap; past it, keep reading but drop the bytes. */
        if (!q->too_big && *upload_size <= SYNCD_BODY_MAX - q->len) {
            if (append(q, upload, *upload_size) != 0)
                return MHD_NO;
        } else {
            q->too_big = 1;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "POST") == 0 && strncmp(url, "/sync/", 6) == 0)
        return handle_sync(s, c, url + 6, q);
    if (strncmp(url, "/admin/", 7) == 0) {
        if (!peer_is_loopback(c))
            return send_error(c, MHD_HTTP_FORBIDDEN, "admin is for 127.0.0.1 only");
        if (strcmp(method, "GET") == 0 && strcmp(url, "/admin/changes") == 0)
            return handle_changes(s, c);
        if (strcmp(method, "GET") == 0 && strcmp(url, "/admin/stats") == 0)
            return handle_stats(s, c);
        if (strcmp(method, "POST") == 0 && strcmp(url, "/admin/mode") == 0)
            return handle_mode(s, c, q);
    }
    return send_error(c, MHD_HTTP_NOT_FOUND, "not found");
}

static void
on_done(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_RequestTerminationCode toe)
{
    struct req *q = *ctx;

    (void)cls;
    (void)c;
    (void)toe;
    if (q != NULL) {
        free(q->p);
        free(q);
        *ctx = NULL;
    }
}

/* ---- main -------------------------------------------------------------------------------- */

static void
usage(void)
{
    fputs("usage: ota-syncd --db FILE [--listen 127.0.0.1] [--port N|0] [--port-file F]\n"
          "                 [--pid-file F] [--token T] [--reject-entity NAME]...\n"
          "                 [--fail-rate PCT] [--offline]\n",
          stderr);
}

/* Writes "<v>\n" to path atomically, so a reader never sees half a number. */
static int
write_number(const char *path, long v)
{
    char            text[32];
    struct ota_diag d;

    snprintf(text, sizeof text, "%ld\n", v);
    if (ota_write_file_atomic(path, text, strlen(text), 0644, 0, &d) != OTA_OK) {
        fprintf(stderr, "ota-syncd: cannot write '%s': %s\n", path, d.msg);
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct server       s;
    struct sockaddr_in  sa;
    struct MHD_Daemon  *daemon = NULL;
    const char         *db = NULL, *listen_addr = "127.0.0.1", *port_file = NULL,
                       *pid_file = NULL;
    const union MHD_DaemonInfo *info;
    sigset_t            sigs;
    long                port = 0;
    int                 i, sig, status = 1;

    memset(&s, 0, sizeof s);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        char       *end = NULL;
        if (strcmp(a, "--offline") == 0) {
            s.mode = MODE_OFFLINE;
            continue;
        }
        if (val == NULL) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(a, "--db") == 0) {
            db = val;
        } else if (strcmp(a, "--listen") == 0) {
            listen_addr = val;
        } else if (strcmp(a, "--port") == 0) {
            port = strtol(val, &end, 10);
            if (*end != '\0' || port < 0 || port > 65535) {
                fprintf(stderr, "ota-syncd: bad port '%s'\n", val);
                return 2;
            }
        } else if (strcmp(a, "--port-file") == 0) {
            port_file = val;
        } else if (strcmp(a, "--pid-file") == 0) {
            pid_file = val;
        } else if (strcmp(a, "--token") == 0) {
            s.token = val;
        } else if (strcmp(a, "--reject-entity") == 0) {
            if (s.nreject == REJECT_MAX) {
                fprintf(stderr, "ota-syncd: at most %d --reject-entity\n", REJECT_MAX);
                return 2;
            }
            s.reject[s.nreject++] = val;
        } else if (strcmp(a, "--fail-rate") == 0) {
            long pct = strtol(val, &end, 10);
            if (*end != '\0' || pct < 0 || pct > 100) {
                fprintf(stderr, "ota-syncd: bad fail rate '%s'\n", val);
                return 2;
            }
            s.fail_rate = (unsigned)pct;
        } else {
            usage();
            return 2;
        }
    }
    if (db == NULL) {
        usage();
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, listen_addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "ota-syncd: bad listen address '%s' (IPv4 expected)\n", listen_addr);
        return 2;
    }
    if (sodium_init() < 0) {
        fputs("ota-syncd: cannot initialise libsodium\n", stderr);
        return 1;
    }
    s.rng = (unsigned)time(NULL) ^ (unsigned)getpid();
    if (db_open(&s, db) != 0)
        goto out;
    /* Block the stop signals before the server thread starts, so it inherits the mask and
     * only sigwait() below receives them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                              on_request, &s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                              MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (daemon == NULL) {
        fprintf(stderr, "ota-syncd: cannot listen on %s:%ld\n", listen_addr, port);
        goto out;
    }
    info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0) {
        fputs("ota-syncd: cannot learn the bound port\n", stderr);
        goto out;
    }
    port = info->port;
    if (pid_file != NULL && write_number(pid_file, (long)getpid()) != 0)
        goto out;
    if (port_file != NULL && write_number(port_file, port) != 0)
        goto out;
    printf("listening on %s:%ld\n", listen_addr, port);
    fflush(stdout);
    do {
        sig = 0;
    } while (sigwait(&sigs, &sig) != 0);
    status = 0;
out:
    if (daemon != NULL)
        MHD_stop_daemon(daemon); /* finishes the request in progress, then returns */
    if (s.db != NULL)
        sqlite3_close(s.db);
    if (status == 0 && port_file != NULL)
        unlink(port_file);
    if (status == 0 && pid_file != NULL)
        unlink(pid_file);
    return status;
}
