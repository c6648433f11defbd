/* The outbox in the app's SQLite database. See ota/outbox.h and formats/outbox.md. */
#include "ota/outbox.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "dbutil.h"
#include "ota/cjson.h"
#include "ota/fsutil.h"

/* Waits this long for the app's write transaction before SQLITE_BUSY. */
#define BUSY_TIMEOUT_MS 10000
/* An export line holds a payload plus its names and numbers; escaping can grow a payload, so
 * the cap leaves room for that and nothing more. */
#define LINE_MAX_BYTES (4u * OTA_OUTBOX_PAYLOAD_MAX + 64u * 1024u)

struct ota_outbox {
    sqlite3 *db;
    char    *path;
};

/* The schema of version 1, exactly as formats/outbox.md gives it. */
static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS ota_outbox_meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE IF NOT EXISTS ota_outbox("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " change_id TEXT UNIQUE NOT NULL CHECK(length(change_id) BETWEEN 1 AND 128),"
    " model TEXT NOT NULL CHECK(length(CAST(model AS BLOB)) BETWEEN 1 AND 128),"
    " entity TEXT NOT NULL CHECK(length(CAST(entity AS BLOB)) BETWEEN 1 AND 128),"
    " op TEXT NOT NULL CHECK(op IN ('insert','update','delete')),"
    " payload TEXT NOT NULL CHECK(length(CAST(payload AS BLOB)) <= 1048576),"
    " created_at INTEGER NOT NULL,"
    " state TEXT NOT NULL DEFAULT 'pending' CHECK(state IN ('pending','acked','quarantined')),"
    " reason TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " acked_at INTEGER);"
    "CREATE INDEX IF NOT EXISTS ota_outbox_state_model_seq ON ota_outbox(state, model, seq);"
    "INSERT OR IGNORE INTO ota_outbox_meta(key, value) VALUES('schema_version', '1');";

/* "<what>: <SQLite's message>[: <strerror>]", so a full disk is named as such. */
static ota_err
db_fail(struct ota_diag *d, sqlite3 *db, const char *what)
{
    return ota_diag_sys(d, OTA_E_DB, db_sys_errno(db), "%s: %s", what,
                        db ? sqlite3_errmsg(db) : "no database");
}

static ota_err
exec_sql(sqlite3 *db, const char *sql, const char *what, struct ota_diag *d)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(d, db, what);
    return OTA_OK;
}

static ota_err
prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct ota_diag *d)
{
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return db_fail(d, db, "cannot prepare an outbox query");
    }
    return OTA_OK;
}

static void
rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* Reads the recorded schema version: 0 when the meta table or its row is missing. */
static ota_err
read_version(sqlite3 *db, long long *out, struct ota_diag *d)
{
    sqlite3_stmt *st = NULL;
    ota_err       rc = OTA_OK;
    int           s;

    rc = prepare(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND "
                     "name='ota_outbox_meta'", &st, d);
    if (rc != OTA_OK)
        return rc;
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = db_fail(d, db, "cannot read the outbox schema");
        goto out;
    }
    if (sqlite3_column_int(st, 0) == 0) {
        *out = 0;
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    rc = prepare(db, "SELECT value FROM ota_outbox_meta WHERE key='schema_version'", &st, d);
    if (rc != OTA_OK)
        goto out;
    s = sqlite3_step(st);
    if (s == SQLITE_DONE) {
        *out = 0;
        goto out;
    }
    if (s != SQLITE_ROW) {
        rc = db_fail(d, db, "cannot read the outbox schema version");
        goto out;
    }
    {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        char       *end = NULL;
        long long   x;
        errno = 0;
        x = v ? strtoll(v, &end, 10) : 0;
        if (v == NULL || *v == '\0' || *end != '\0' || errno != 0 || x < 1) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "outbox schema version '%.32s' is not a positive "
                                               "integer", v ? v : "NULL");
            goto out;
        }
        *out = x;
    }
out:
    sqlite3_finalize(st);
    return rc;
}

ota_err
ota_outbox_open(const char *path, struct ota_outbox **out, struct ota_diag *d)
{
    struct ota_outbox *ob = NULL;
    sqlite3           *db = NULL;
    long long          ver = 0;
    ota_err            rc = OTA_OK;
    int                src, e;

    if (path == NULL || *path == '\0')
        return ota_diag_set(d, OTA_E_INVALID, "no outbox database given");
    src =
        db_open_rw(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, &db, &e);
    if (src != SQLITE_OK) {
        rc = ota_diag_sys(d, OTA_E_DB, e, "cannot open outbox database '%s': %s", path,
                          db ? sqlite3_errmsg(db) : sqlite3_errstr(src));
        goto out;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    /* WAL lets the app write while the agent reads; FULL makes every commit durable, so an
     * acknowledgement we recorded survives power loss. */
    rc = exec_sql(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON",
                  "cannot configure the outbox database", d);
    if (rc != OTA_OK)
        goto out;
    rc = exec_sql(db, "BEGIN IMMEDIATE", "cannot lock the outbox database", d);
    if (rc != OTA_OK)
        goto out;
    rc = read_version(db, &ver, d);
    if (rc != OTA_OK)
        goto out;
    if (ver > OTA_OUTBOX_SCHEMA_VERSION) {
        rc = ota_diag_set(d, OTA_E_INCOMPATIBLE, "outbox schema version %lld in '%s' is newer "
                          "than this agent understands (%d)", ver, path, OTA_OUTBOX_SCHEMA_VERSION);
        goto out;
    }
    rc = exec_sql(db, schema_v1, "cannot create the outbox tables", d);
    if (rc != OTA_OK)
        goto out;
    rc = exec_sql(db, "COMMIT", "cannot create the outbox tables", d);
    if (rc != OTA_OK)
        goto out;
    ob = calloc(1, sizeof *ob);
    if (ob == NULL || (ob->path = strdup(path)) == NULL) {
        free(ob);
        ob = NULL;
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    ob->db = db;
    db = NULL;
    *out = ob;
out:
    if (db != NULL) {
        rollback(db);
        sqlite3_close(db);
    }
    return rc;
}

void
ota_outbox_close(struct ota_outbox *ob)
{
    if (ob == NULL)
        return;
    sqlite3_close(ob->db);
    free(ob->path);
    free(ob);
}

const char *
ota_outbox_path(const struct ota_outbox *ob)
{
    return ob->path;
}

/* ---- checks ---------------------------------------------------------------------------- */

/* Well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF) without control
 * characters: what the server's strict JSON parser accepts in a name. */
static int
name_ok(const char *str, size_t max)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t               n;

    if (s == NULL)
        return 0;
    n = strlen(str);
    if (n == 0 || n > max)
        return 0;
    while (*s) {
        unsigned c = *s, need, cp, min;
        if (c < 0x20 || c == 0x7f)
            return 0;
        if (c < 0x80) {
            s++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            need = 1, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3, cp = c & 0x07, min = 0x10000;
        else
            return 0;
        for (s++; need > 0; need--, s++) {
            if ((*s & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (*s & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
    }
    return 1;
}

static int
id_ok(const char *s)
{
    size_t n;

    if (s == NULL)
        return 0;
    n = strlen(s);
    if (n == 0 || n > OTA_OUTBOX_ID_MAX)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

static int
op_ok(const char *op)
{
    return op != NULL &&
           (strcmp(op, "insert") == 0 || strcmp(op, "update") == 0 || strcmp(op, "delete") == 0);
}

static ota_err
payload_check(const char *payload, size_t len, struct ota_diag *d)
{
    json_t *v = NULL;
    ota_err rc;

    if (payload == NULL || len > OTA_OUTBOX_PAYLOAD_MAX)
        return ota_diag_set(d, OTA_E_TOO_BIG, "payload of %zu bytes is over the %u-byte cap", len,
                            OTA_OUTBOX_PAYLOAD_MAX);
    rc = ota_json_parse_data(payload, len, OTA_OUTBOX_PAYLOAD_MAX, &v, d);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "payload is not valid JSON");
        return rc;
    }
    json_decref(v);
    return OTA_OK;
}

ota_err
ota_outbox_row_check(const struct ota_outbox_row *row, struct ota_diag *d)
{
    if (!id_ok(row->change_id))
        return ota_diag_set(d, OTA_E_FORMAT, "change id must be 1..%d printable ASCII bytes",
                            OTA_OUTBOX_ID_MAX);
    if (!name_ok(row->model, OTA_OUTBOX_NAME_MAX))
        return ota_diag_set(d, OTA_E_FORMAT, "model must be 1..%d bytes of UTF-8 without "
                                             "control characters", OTA_OUTBOX_NAME_MAX);
    if (!name_ok(row->entity, OTA_OUTBOX_NAME_MAX))
        return ota_diag_set(d, OTA_E_FORMAT, "entity must be 1..%d bytes of UTF-8 without "
                                             "control characters", OTA_OUTBOX_NAME_MAX);
    if (!op_ok(row->op))
        return ota_diag_set(d, OTA_E_FORMAT, "op '%.16s' is not insert, update or delete",
                            row->op ? row->op : "");
    return payload_check(row->payload, row->payload_len, d);
}

/* ---- add ------------------------------------------------------------------------------- */

static ota_err
random_id(char out[33], struct ota_diag *d)
{
    unsigned char r[16];
    size_t        got = 0;

    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ota_diag_sys(d, OTA_E_IO, errno, "cannot get random bytes for a change id");
        got += (size_t)n;
    }
    ota_hex_encode(r, sizeof r, out);
    return OTA_OK;
}

ota_err
ota_outbox_add(struct ota_outbox *ob, const char *change_id, const char *model,
               const char *entity, const char *op, const char *payload, char *id_out,
               struct ota_diag *d)
{
    sqlite3_stmt *st = NULL;
    char          gen[33];
    ota_err       rc;
    int           s;

    if (change_id != NULL && !id_ok(change_id))
        return ota_diag_set(d, OTA_E_INVALID, "change id must be 1..%d printable ASCII bytes",
                            OTA_OUTBOX_ID_MAX);
    if (!name_ok(model, OTA_OUTBOX_NAME_MAX))
        return ota_diag_set(d, OTA_E_INVALID, "model must be 1..%d bytes of UTF-8 without "
                                              "control characters", OTA_OUTBOX_NAME_MAX);
    if (!name_ok(entity, OTA_OUTBOX_NAME_MAX))
        return ota_diag_set(d, OTA_E_INVALID, "entity must be 1..%d bytes of UTF-8 without "
                                              "control characters", OTA_OUTBOX_NAME_MAX);
    if (!op_ok(op))
        return ota_diag_set(d, OTA_E_INVALID, "op '%.16s' is not insert, update or delete",
                            op ? op : "");
    if (payload == NULL)
        return ota_diag_set(d, OTA_E_INVALID, "no payload given");
    rc = payload_check(payload, strlen(payload), d);
    if (rc != OTA_OK)
        return rc;
    if (change_id == NULL) {
        rc = random_id(gen, d);
        if (rc != OTA_OK)
            return rc;
        change_id = gen;
    }
    rc = prepare(ob->db, "INSERT INTO ota_outbox(change_id, model, entity, op, payload, "
                         "created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)", &st, d);
    if (rc != OTA_OK)
        return rc;
    sqlite3_bind_text(st, 1, change_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, entity, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, op, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, payload, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, ota_now());
    s = sqlite3_step(st);
    if (s == SQLITE_CONSTRAINT_UNIQUE || s == SQLITE_CONSTRAINT_PRIMARYKEY)
        rc = ota_diag_set(d, OTA_E_EXISTS, "change id '%s' is already in the outbox", change_id);
    else if (s != SQLITE_DONE)
        rc = db_fail(d, ob->db, "cannot add a change to the outbox");
    sqlite3_finalize(st);
    if (rc == OTA_OK && id_out != NULL)
        snprintf(id_out, OTA_OUTBOX_ID_MAX + 1, "%s", change_id);
    return rc;
}

/* ---- counts ---------------------------------------------------------------------------- */

static void
count_add(struct ota_outbox_count *c, const char *state, uint64_t n)
{
    if (strcmp(state, "pending") == 0)
        c->pending += n;
    else if (strcmp(state, "quarantined") == 0)
        c->quarantined += n;
    else if (strcmp(state, "acked") == 0)
        c->acked += n;
}

ota_err
ota_outbox_pending(struct ota_outbox *ob, struct ota_outbox_count **out, size_t *n,
                   struct ota_diag *d)
{
    sqlite3_stmt            *st = NULL;
    struct ota_outbox_count *v = NULL;
    size_t                   nv = 0;
    ota_err                  rc;
    int                      s;

    /* The index on (state, model, seq) serves this grouping without a table scan per model. */
    rc = prepare(ob->db, "SELECT model, state, count(*) FROM ota_outbox GROUP BY model, state "
                         "ORDER BY model", &st, d);
    if (rc != OTA_OK)
        return rc;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        const char *model = (const char *)sqlite3_column_text(st, 0);
        const char *state = (const char *)sqlite3_column_text(st, 1);
        uint64_t    cnt = (uint64_t)sqlite3_column_int64(st, 2);
        if (model == NULL || state == NULL)
            continue;
        if (nv == 0 || strncmp(v[nv - 1].model, model, OTA_OUTBOX_NAME_MAX) != 0) {
            struct ota_outbox_count *nvp;
            if (nv == OTA_OUTBOX_MODELS_MAX) {
                rc = ota_diag_set(d, OTA_E_TOO_BIG, "outbox holds more than %d models",
                                  OTA_OUTBOX_MODELS_MAX);
                goto out;
            }
            nvp = realloc(v, (nv + 1) * sizeof *v);
            if (nvp == NULL) {
                rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
                goto out;
            }
            v = nvp;
            memset(&v[nv], 0, sizeof v[nv]);
            /* A longer model name is cut here; the sync treats such rows as bad rows. */
            snprintf(v[nv].model, sizeof v[nv].model, "%s", model);
            nv++;
        }
        count_add(&v[nv - 1], state, cnt);
    }
    if (s != SQLITE_DONE) {
        rc = db_fail(d, ob->db, "cannot count outbox rows");
        goto out;
    }
    *out = v;
    *n = nv;
    v = NULL;
out:
    sqlite3_finalize(st);
    free(v);
    return rc;
}

ota_err
ota_outbox_count_model(struct ota_outbox *ob, const char *model, struct ota_outbox_count *out,
                       struct ota_diag *d)
{
    sqlite3_stmt           *st = NULL;
    struct ota_outbox_count c;
    ota_err                 rc;
    int                     s;

    memset(&c, 0, sizeof c);
    snprintf(c.model, sizeof c.model, "%s", model);
    rc = prepare(ob->db, "SELECT state, count(*) FROM ota_outbox WHERE model=?1 GROUP BY state",
                 &st, d);
    if (rc != OTA_OK)
        return rc;
    sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(st, 0);
        if (state != NULL)
            count_add(&c, state, (uint64_t)sqlite3_column_int64(st, 1));
    }
    if (s != SQLITE_DONE)
        rc = db_fail(d, ob->db, "cannot count outbox rows");
    else
        *out = c;
    sqlite3_finalize(st);
    return rc;
}

/* ---- rows ------------------------------------------------------------------------------ */

static void
row_clear(struct ota_outbox_row *r)
{
    free(r->change_id);
    free(r->model);
    free(r->entity);
    free(r->op);
    free(r->payload);
    free(r->state);
    free(r->reason);
    memset(r, 0, sizeof *r);
}

static char *
col_dup(sqlite3_stmt *st, int i, int *oom)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    int                  n = sqlite3_column_bytes(st, i);
    char                *p;

    if (t == NULL)
        return NULL;
    p = malloc((size_t)n + 1);
    if (p == NULL) {
        *oom = 1;
        return NULL;
    }
    memcpy(p, t, (size_t)n);
    p[n] = '\0';
    return p;
}

/* The columns every row query selects, in this order. The payload is only read when it is
 * within the cap, so a huge row written directly by an app cannot blow up our memory. */
#define ROW_COLUMNS                                                                               \
    "seq, change_id, model, entity, op, "                                                         \
    "CASE WHEN length(CAST(payload AS BLOB)) <= 1048576 THEN payload END, "                       \
    "length(CAST(payload AS BLOB)), created_at, state, reason, attempts, coalesce(acked_at, 0)"

static ota_err
row_read(sqlite3_stmt *st, struct ota_outbox_row *r, struct ota_diag *d)
{
    int oom = 0;

    memset(r, 0, sizeof *r);
    r->seq = sqlite3_column_int64(st, 0);
    r->change_id = col_dup(st, 1, &oom);
    r->model = col_dup(st, 2, &oom);
    r->entity = col_dup(st, 3, &oom);
    r->op = col_dup(st, 4, &oom);
    r->payload = col_dup(st, 5, &oom);
    r->payload_len = (size_t)sqlite3_column_int64(st, 6);
    r->created_at = sqlite3_column_int64(st, 7);
    r->state = col_dup(st, 8, &oom);
    r->reason = col_dup(st, 9, &oom);
    r->attempts = sqlite3_column_int64(st, 10);
    r->acked_at = sqlite3_column_int64(st, 11);
    /* NOT NULL columns can still be NULL in a table an app created by hand; an empty string
     * lets the checks reject the row instead of crashing on it. */
    if (!oom && (r->change_id == NULL || r->model == NULL || r->entity == NULL ||
                 r->op == NULL || r->state == NULL)) {
        if (r->change_id == NULL && (r->change_id = strdup("")) == NULL)
            oom = 1;
        if (r->model == NULL && (r->model = strdup("")) == NULL)
            oom = 1;
        if (r->entity == NULL && (r->entity = strdup("")) == NULL)
            oom = 1;
        if (r->op == NULL && (r->op = strdup("")) == NULL)
            oom = 1;
        if (r->state == NULL && (r->state = strdup("")) == NULL)
            oom = 1;
    }
    if (oom) {
        row_clear(r);
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory reading the outbox");
    }
    return OTA_OK;
}

void
ota_outbox_batch_free(struct ota_outbox_batch *b)
{
    size_t i;

    if (b == NULL)
        return;
    for (i = 0; i < b->n; i++)
        row_clear(&b->rows[i]);
    free(b->rows);
    free(b);
}

ota_err
ota_outbox_batch_next(struct ota_outbox *ob, const char *model, int64_t after_seq,
                      size_t max_rows, size_t max_bytes, struct ota_outbox_batch **out,
                      struct ota_diag *d)
{
    struct ota_outbox_batch *b = NULL;
    sqlite3_stmt            *st = NULL;
    ota_err                  rc;
    int                      s;

    if (max_rows == 0 || max_rows > 100000)
        return ota_diag_set(d, OTA_E_INVALID, "batch row cap %zu is outside 1..100000", max_rows);
    b = calloc(1, sizeof *b);
    if (b == NULL || (b->rows = calloc(max_rows, sizeof *b->rows)) == NULL) {
        free(b);
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    }
    rc = prepare(ob->db, "SELECT " ROW_COLUMNS " FROM ota_outbox WHERE state='pending' AND "
                         "model=?1 AND seq>?2 ORDER BY seq LIMIT ?3", &st, d);
    if (rc != OTA_OK)
        goto out;
    sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, after_seq);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max_rows);
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        /* Size the row before reading its payload into memory. */
        size_t cost = (size_t)sqlite3_column_int64(st, 6) + (size_t)sqlite3_column_bytes(st, 1) +
                      (size_t)sqlite3_column_bytes(st, 3) + 96;
        if (b->n > 0 && cost > max_bytes - b->bytes)
            break;
        rc = row_read(st, &b->rows[b->n], d);
        if (rc != OTA_OK)
            goto out;
        b->last_seq = b->rows[b->n].seq;
        b->bytes += cost;
        b->n++;
        if (b->bytes >= max_bytes)
            break;
    }
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        rc = db_fail(d, ob->db, "cannot read pending changes");
        goto out;
    }
    *out = b;
    b = NULL;
out:
    sqlite3_finalize(st);
    ota_outbox_batch_free(b);
    return rc;
}

ota_err
ota_outbox_foreach(struct ota_outbox *ob, const char *state, const char *model,
                   ota_outbox_row_fn fn, void *ctx, struct ota_diag *d)
{
    sqlite3_stmt         *st = NULL;
    struct ota_outbox_row r;
    ota_err               rc;
    int                   s;

    rc = prepare(ob->db, "SELECT " ROW_COLUMNS " FROM ota_outbox WHERE (?1 IS NULL OR state=?1) "
                         "AND (?2 IS NULL OR model=?2) ORDER BY seq", &st, d);
    if (rc != OTA_OK)
        return rc;
    if (state != NULL)
        sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
    if (model != NULL)
        sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        rc = row_read(st, &r, d);
        if (rc != OTA_OK)
            goto out;
        rc = fn(ctx, &r, d);
        row_clear(&r);
        if (rc != OTA_OK)
            goto out;
    }
    if (s != SQLITE_DONE)
        rc = db_fail(d, ob->db, "cannot read the outbox");
out:
    sqlite3_finalize(st);
    return rc;
}

/* ---- state changes --------------------------------------------------------------------- */

/* Runs stmt once for each id inside one transaction; *changed counts the rows it changed. */
static ota_err
update_ids(struct ota_outbox *ob, const char *sql, const char *const *ids, size_t n,
           size_t *changed, const char *what, struct ota_diag *d)
{
    sqlite3_stmt *st = NULL;
    size_t        i, ch = 0;
    ota_err       rc;

    if (n == 0) {
        if (changed != NULL)
            *changed = 0;
        return OTA_OK;
    }
    rc = prepare(ob->db, sql, &st, d);
    if (rc != OTA_OK)
        return rc;
    rc = exec_sql(ob->db, "BEGIN IMMEDIATE", what, d);
    if (rc != OTA_OK)
        goto out;
    for (i = 0; i < n; i++) {
        sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
        /* ?2 is the time now, for the statements that use it (SQLITE_RANGE otherwise). */
        (void)sqlite3_bind_int64(st, 2, ota_now());
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = db_fail(d, ob->db, what);
            goto out;
        }
        ch += (size_t)sqlite3_changes(ob->db);
        sqlite3_reset(st);
    }
    rc = exec_sql(ob->db, "COMMIT", what, d);
    if (rc == OTA_OK && changed != NULL)
        *changed = ch;
out:
    sqlite3_finalize(st);
    if (rc != OTA_OK)
        rollback(ob->db);
    return rc;
}

ota_err
ota_outbox_ack(struct ota_outbox *ob, const char *const *ids, size_t n, size_t *changed,
               struct ota_diag *d)
{
    return update_ids(ob, "UPDATE ota_outbox SET state='acked', acked_at=?2, "
                          "attempts=attempts+1 WHERE change_id=?1 AND state='pending'",
                      ids, n, changed, "cannot mark changes acknowledged", d);
}

ota_err
ota_outbox_touch(struct ota_outbox *ob, const char *const *ids, size_t n, struct ota_diag *d)
{
    return update_ids(ob, "UPDATE ota_outbox SET attempts=attempts+1 WHERE change_id=?1 AND "
                          "state='pending'",
                      ids, n, NULL, "cannot count delivery attempts", d);
}

ota_err
ota_outbox_quarantine(struct ota_outbox *ob, const char *change_id, const char *reason,
                      struct ota_diag *d)
{
    sqlite3_stmt *st = NULL;
    char          why[OTA_OUTBOX_REASON_MAX + 1];
    size_t        i;
    ota_err       rc;

    snprintf(why, sizeof why, "%s", reason && *reason ? reason : "no reason given");
    for (i = 0; why[i]; i++)
        if ((unsigned char)why[i] < 0x20 || why[i] == 0x7f)
            why[i] = ' ';
    rc = prepare(ob->db, "UPDATE ota_outbox SET state='quarantined', reason=?2, "
                         "attempts=attempts+1 WHERE change_id=?1 AND state='pending'", &st, d);
    if (rc != OTA_OK)
        return rc;
    sqlite3_bind_text(st, 1, change_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, why, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(d, ob->db, "cannot quarantine a change");
    else if (sqlite3_changes(ob->db) == 0)
        rc = ota_diag_set(d, OTA_E_NOT_FOUND, "no pending change '%.128s'", change_id);
    sqlite3_finalize(st);
    return rc;
}

/* ---- export and import ----------------------------------------------------------------- */

struct export_ctx {
    int      fd;
    char    *buf;
    size_t   len, cap;
    uint64_t n;
};

static ota_err
export_flush(struct export_ctx *x, struct ota_diag *d)
{
    ota_err rc = ota_write_all(x->fd, x->buf, x->len, d);

    x->len = 0;
    return rc;
}

/* One line per row. The payload goes in as a JSON string holding its exact text, so an import
 * gives back the very bytes the app wrote (re-encoding a value would rewrite its numbers). A
 * payload that is not UTF-8 (an app wrote it directly) goes in as hex under "payload_hex". */
static ota_err
export_row(void *ctx, const struct ota_outbox_row *r, struct ota_diag *d)
{
    struct export_ctx *x = ctx;
    json_t            *o = NULL, *pv;
    char              *line = NULL;
    size_t             n;
    ota_err            rc = OTA_OK;

    if (r->payload == NULL)
        return ota_diag_set(d, OTA_E_TOO_BIG, "change '%.128s' has a payload over the cap and "
                            "cannot be exported", r->change_id);
    o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:I, s:s, s:I}", "id", r->change_id, "seq",
                  (json_int_t)r->seq, "model", r->model, "entity", r->entity, "op", r->op,
                  "created_at", (json_int_t)r->created_at, "state", r->state, "attempts",
                  (json_int_t)r->attempts);
    if (o == NULL) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "change '%.128s' has fields that are not valid UTF-8",
                          r->change_id);
        goto out;
    }
    if (r->reason != NULL && json_object_set_new(o, "reason", json_string(r->reason)) != 0) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "change '%.128s' has a reason that is not valid UTF-8",
                          r->change_id);
        goto out;
    }
    pv = json_stringn(r->payload, r->payload_len);
    if (pv != NULL) {
        json_object_set_new(o, "payload", pv);
    } else {
        char *hex = malloc(2 * r->payload_len + 1);
        if (hex == NULL) {
            rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
            goto out;
        }
        ota_hex_encode((const unsigned char *)r->payload, r->payload_len, hex);
        json_object_set_new(o, "payload_hex", json_string(hex));
        free(hex);
    }
    line = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    if (line == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory exporting '%.128s'", r->change_id);
        goto out;
    }
    n = strlen(line);
    if (n + 1 > x->cap - x->len) {
        rc = export_flush(x, d);
        if (rc != OTA_OK)
            goto out;
    }
    if (n + 1 > x->cap - x->len) {
        rc = ota_write_all(x->fd, line, n, d);
        if (rc == OTA_OK)
            rc = ota_write_all(x->fd, "\n", 1, d);
    } else {
        memcpy(x->buf + x->len, line, n);
        x->buf[x->len + n] = '\n';
        x->len += n + 1;
    }
    x->n++;
out:
    free(line);
    json_decref(o);
    return rc;
}

ota_err
ota_outbox_export(struct ota_outbox *ob, const char *path, uint64_t *n, struct ota_diag *d)
{
    struct export_ctx x = { -1, NULL, 0, 64 * 1024, 0 };
    char              tmp[PATH_MAX];
    ota_err           rc = OTA_OK;

    if (access(path, F_OK) == 0)
        return ota_diag_set(d, OTA_E_EXISTS, "'%s' already exists", path);
    x.buf = malloc(x.cap);
    if (x.buf == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    x.fd = ota_tmpfile_beside(path, 0600, tmp, sizeof tmp, d);
    if (x.fd < 0) {
        rc = d && d->sys_errno ? OTA_E_IO : OTA_E_TOO_BIG;
        goto out;
    }
    /* A read transaction, so the file is one consistent picture of the outbox. */
    rc = exec_sql(ob->db, "BEGIN", "cannot read the outbox", d);
    if (rc == OTA_OK)
        rc = ota_outbox_foreach(ob, "pending", NULL, export_row, &x, d);
    if (rc == OTA_OK)
        rc = ota_outbox_foreach(ob, "quarantined", NULL, export_row, &x, d);
    rollback(ob->db);
    if (rc == OTA_OK)
        rc = export_flush(&x, d);
    if (rc != OTA_OK) {
        close(x.fd);
        unlink(tmp);
        ota_diag_prefix(d, "exporting to '%s'", path);
        goto out;
    }
    /* Keep the no-overwrite promise even if path appeared while we wrote. */
    if (access(path, F_OK) == 0) {
        close(x.fd);
        unlink(tmp);
        rc = ota_diag_set(d, OTA_E_EXISTS, "'%s' already exists", path);
        goto out;
    }
    rc = ota_commit_tmpfile(x.fd, tmp, path, d);
    if (rc == OTA_OK && n != NULL)
        *n = x.n;
out:
    free(x.buf);
    return rc;
}

/* Reads one line of at most max bytes (without the newline) into *buf. *got is 1 with a line,
 * 0 at end of file. */
static ota_err
read_line(FILE *f, char **buf, size_t *cap, size_t max, size_t *len, int *got,
          unsigned long lineno, struct ota_diag *d)
{
    size_t n = 0;
    int    c;

    while ((c = getc(f)) != EOF && c != '\n') {
        if (n == max)
            return ota_diag_set(d, OTA_E_TOO_BIG, "line %lu is longer than %zu bytes", lineno,
                                max);
        if (n + 1 >= *cap) {
            size_t nc = *cap ? *cap * 2 : 4096;
            char  *nb = realloc(*buf, nc);
            if (nb == NULL)
                return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
            *buf = nb;
            *cap = nc;
        }
        (*buf)[n++] = (char)c;
    }
    if (ferror(f))
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot read line %lu", lineno);
    *got = !(c == EOF && n == 0);
    if (*got) {
        if (*buf == NULL && (*buf = malloc(1)) == NULL)
            return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        (*buf)[n] = '\0';
        *len = n;
    }
    return OTA_OK;
}

static ota_err
import_line(sqlite3_stmt *st, const char *line, size_t len, int *added, struct ota_diag *d)
{
    static const char *const keys[] = { "id",    "seq",    "model",    "entity",  "op",
                                        "payload", "payload_hex", "created_at", "state",
                                        "reason", "attempts", NULL };
    json_t     *o = NULL, *pv;
    const char *id, *model, *entity, *op, *state, *reason = NULL;
    char       *ptext = NULL;
    const char *payload;
    long long   created, attempts = 0;
    ota_err     rc;
    int         s;

    rc = ota_json_parse_data(line, len, LINE_MAX_BYTES, &o, d);
    if (rc != OTA_OK)
        return rc;
    if (!json_is_object(o)) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "not a JSON object");
        goto out;
    }
    if ((rc = ota_json_only_keys(o, keys, d)) != OTA_OK ||
        (rc = ota_json_get_str(o, "id", OTA_OUTBOX_ID_MAX, 1, &id, d)) != OTA_OK ||
        (rc = ota_json_get_str(o, "model", OTA_OUTBOX_NAME_MAX, 1, &model, d)) != OTA_OK ||
        (rc = ota_json_get_str(o, "entity", OTA_OUTBOX_NAME_MAX, 1, &entity, d)) != OTA_OK ||
        (rc = ota_json_get_str(o, "op", 16, 1, &op, d)) != OTA_OK ||
        (rc = ota_json_get_str(o, "state", 16, 1, &state, d)) != OTA_OK ||
        (rc = ota_json_get_int(o, "created_at", LLONG_MIN, LLONG_MAX, &created, d)) != OTA_OK)
        goto out;
    if (json_object_get(o, "attempts") != NULL &&
        (rc = ota_json_get_int(o, "attempts", 0, LLONG_MAX, &attempts, d)) != OTA_OK)
        goto out;
    if (json_object_get(o, "reason") != NULL &&
        (rc = ota_json_get_str(o, "reason", OTA_OUTBOX_REASON_MAX, 0, &reason, d)) != OTA_OK)
        goto out;
    if (!id_ok(id) || !name_ok(model, OTA_OUTBOX_NAME_MAX) ||
        !name_ok(entity, OTA_OUTBOX_NAME_MAX) || !op_ok(op)) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "change '%.128s' has a bad id, model, entity or op",
                          id);
        goto out;
    }
    if (strcmp(state, "pending") != 0 && strcmp(state, "quarantined") != 0) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "state '%s' is not pending or quarantined", state);
        goto out;
    }
    pv = json_object_get(o, "payload");
    if (pv != NULL) {
        if ((rc = ota_json_get_str(o, "payload", OTA_OUTBOX_PAYLOAD_MAX, 0, &payload, d)) !=
            OTA_OK)
            goto out;
    } else {
        const char *hex;
        size_t      plen;
        if ((rc = ota_json_get_str(o, "payload_hex", 2 * OTA_OUTBOX_PAYLOAD_MAX, 0, &hex, d)) !=
            OTA_OK) {
            ota_diag_prefix(d, "no payload");
            goto out;
        }
        plen = strlen(hex) / 2;
        ptext = malloc(plen + 1);
        if (ptext == NULL) {
            rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
            goto out;
        }
        if (ota_hex_decode(hex, (unsigned char *)ptext, plen) != OTA_OK ||
            memchr(ptext, '\0', plen) != NULL) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "'payload_hex' is not hex of a text");
            goto out;
        }
        ptext[plen] = '\0';
        payload = ptext;
    }
    if (strlen(payload) > OTA_OUTBOX_PAYLOAD_MAX) {
        rc = ota_diag_set(d, OTA_E_TOO_BIG, "payload of '%.128s' is over the %u-byte cap", id,
                          OTA_OUTBOX_PAYLOAD_MAX);
        goto out;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, entity, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, op, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, payload, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, created);
    sqlite3_bind_text(st, 7, state, -1, SQLITE_STATIC);
    if (reason != NULL)
        sqlite3_bind_text(st, 8, reason, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 8);
    sqlite3_bind_int64(st, 9, attempts);
    s = sqlite3_step(st);
    if (s != SQLITE_DONE) {
        rc = db_fail(d, sqlite3_db_handle(st), "cannot import a change");
        goto out;
    }
    *added = sqlite3_changes(sqlite3_db_handle(st)) > 0;
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    free(ptext);
    json_decref(o);
    return rc;
}

ota_err
ota_outbox_import(struct ota_outbox *ob, const char *path, uint64_t *added, uint64_t *skipped,
                  struct ota_diag *d)
{
    sqlite3_stmt *st = NULL;
    FILE         *f = NULL;
    char         *line = NULL;
    size_t        cap = 0, len = 0;
    unsigned long lineno = 0;
    uint64_t      na = 0, ns = 0;
    ota_err       rc = OTA_OK;

    f = fopen(path, "re");
    if (f == NULL)
        return ota_diag_sys(d, errno == ENOENT ? OTA_E_NOT_FOUND : OTA_E_IO, errno,
                            "cannot open '%s'", path);
    rc = prepare(ob->db, "INSERT OR IGNORE INTO ota_outbox(change_id, model, entity, op, payload, "
                         "created_at, state, reason, attempts) "
                         "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", &st, d);
    if (rc != OTA_OK)
        goto out;
    rc = exec_sql(ob->db, "BEGIN IMMEDIATE", "cannot import changes", d);
    if (rc != OTA_OK)
        goto out;
    for (;;) {
        int one = 0, got = 0;
        rc = read_line(f, &line, &cap, LINE_MAX_BYTES, &len, &got, lineno + 1, d);
        if (rc != OTA_OK) {
            ota_diag_prefix(d, "'%s'", path);
            goto out;
        }
        if (!got)
            break;
        lineno++;
        if (len == 0)
            continue;
        rc = import_line(st, line, len, &one, d);
        if (rc != OTA_OK) {
            ota_diag_prefix(d, "'%s' line %lu", path, lineno);
            goto out;
        }
        if (one)
            na++;
        else
            ns++;
    }
    rc = exec_sql(ob->db, "COMMIT", "cannot import changes", d);
    if (rc != OTA_OK)
        goto out;
    if (added != NULL)
        *added = na;
    if (skipped != NULL)
        *skipped = ns;
out:
    if (rc != OTA_OK)
        rollback(ob->db);
    sqlite3_finalize(st);
    free(line);
    fclose(f);
    return rc;
}
