/* The agent's state database: state_dir/state.db in SQLite (WAL, synchronous=FULL), every
 * query a prepared statement with bound parameters. See agent_int.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_int.h"
#include "dbutil.h"
#include "ota/cjson.h"
#include "ota/fsutil.h"

#define SCHEMA_VERSION "1"

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta("
    "  key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS releases("
    "  version TEXT PRIMARY KEY, v0 INTEGER NOT NULL, v1 INTEGER NOT NULL,"
    "  v2 INTEGER NOT NULL, v3 INTEGER NOT NULL,"
    "  state TEXT NOT NULL, model TEXT NOT NULL, release TEXT NOT NULL,"
    "  breaking INTEGER NOT NULL, sha256 TEXT NOT NULL, length INTEGER NOT NULL,"
    "  source TEXT NOT NULL, staged_at INTEGER NOT NULL, activated_at INTEGER NOT NULL,"
    "  launches INTEGER NOT NULL, present INTEGER NOT NULL, reason TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS history("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, event TEXT NOT NULL,"
    "  version TEXT NOT NULL, detail TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tuf("
    "  role TEXT PRIMARY KEY, version INTEGER NOT NULL);";

enum {
    Q_META_GET,
    Q_META_SET,
    Q_META_DEL,
    Q_REL_GET,
    Q_REL_PUT,
    Q_REL_DEL,
    Q_REL_LIST,
    Q_HIST_ADD,
    Q_HIST_LIST,
    Q_TUF_SET,
    Q_TUF_LIST,
    Q_COUNT
};

#define REL_COLS                                                                                   \
    "version, state, model, release, breaking, sha256, length, source, staged_at,"                 \
    " activated_at, launches, present, reason"

static const char *const queries[Q_COUNT] = {
    [Q_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [Q_META_SET] = "INSERT INTO meta(key, value) VALUES(?1, ?2)"
                   " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [Q_META_DEL] = "DELETE FROM meta WHERE key = ?1",
    [Q_REL_GET] = "SELECT " REL_COLS " FROM releases WHERE version = ?1",
    [Q_REL_PUT] = "INSERT OR REPLACE INTO releases(" REL_COLS ", v0, v1, v2, v3)"
                  " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
                  " ?14, ?15, ?16, ?17)",
    [Q_REL_DEL] = "DELETE FROM releases WHERE version = ?1",
    [Q_REL_LIST] = "SELECT " REL_COLS " FROM releases ORDER BY v0 DESC, v1 DESC, v2 DESC,"
                   " v3 DESC",
    [Q_HIST_ADD] = "INSERT INTO history(time, event, version, detail) VALUES(?1, ?2, ?3, ?4)",
    [Q_HIST_LIST] = "SELECT time, event, version, detail FROM"
                    " (SELECT id, time, event, version, detail FROM history"
                    "  ORDER BY id DESC LIMIT ?1) ORDER BY id",
    [Q_TUF_SET] = "INSERT INTO tuf(role, version) VALUES(?1, ?2)"
                  " ON CONFLICT(role) DO UPDATE SET version = excluded.version",
    [Q_TUF_LIST] = "SELECT role, version FROM tuf ORDER BY role",
};

static const char *const state_names[] = {
    [REL_STAGED] = "staged",       [REL_ACTIVE] = "active",           [REL_TRIAL] = "trial",
    [REL_CONFIRMED] = "confirmed", [REL_ROLLED_BACK] = "rolled_back", [REL_FAILED] = "failed",
};

const char *
rel_state_name(enum rel_state s)
{
    if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
        return "unknown";
    return state_names[s];
}

int
rel_state_parse(const char *s, enum rel_state *out)
{
    for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
        if (strcmp(s, state_names[i]) == 0) {
            *out = (enum rel_state)i;
            return 1;
        }
    }
    return 0;
}

void
rel_clear(struct rel *r)
{
    if (r == NULL)
        return;
    free(r->release_json);
    memset(r, 0, sizeof(*r));
}

void
rel_list_free(struct rel *list, size_t n)
{
    for (size_t i = 0; list != NULL && i < n; i++)
        rel_clear(&list[i]);
    free(list);
}

ota_err
rel_release(const struct rel *r, struct ota_release *out, struct ota_diag *d)
{
    json_t *j = NULL;
    ota_err rc;

    rc = ota_cjson_parse(r->release_json, strlen(r->release_json), OTA_JSON_MAX, &j, d);
    if (rc == OTA_OK)
        rc = ota_release_from_json(j, out, d);
    if (rc != OTA_OK)
        ota_diag_prefix(d, "release %s in the state database", r->version);
    json_decref(j);
    return rc;
}

/* "state database: <what>: <SQLite's message>[: <strerror>]": a full disk or a failing device
 * is named as such, not only as SQLite's "disk I/O error". */
static ota_err
db_err(struct state *s, struct ota_diag *d, const char *what)
{
    return ota_diag_sys(d, OTA_E_DB, db_sys_errno(s->db), "state database: %s: %s", what,
                        s->db ? sqlite3_errmsg(s->db) : "not open");
}

static sqlite3_stmt *
q(struct state *s, int which)
{
    sqlite3_stmt *st = s->st[which];
    /* A closed state (reopen failed) yields NULL, on which SQLite's calls return MISUSE. */
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    return st;
}

ota_err
state_open(struct state *s, const char *path, struct ota_diag *d)
{
    static const char pragmas[] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                  " PRAGMA foreign_keys=ON;";
    ota_err           rc = OTA_OK;
    char             *val = NULL;
    int               src, e;

    memset(s, 0, sizeof(*s));
    src = db_open_rw(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW,
                     &s->db, &e);
    if (src != SQLITE_OK) {
        rc = ota_diag_sys(d, OTA_E_DB, e, "cannot open state database '%s': %s", path,
                          s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(src));
        goto out;
    }
    sqlite3_busy_timeout(s->db, 5000);
    sqlite3_extended_result_codes(s->db, 1);
    /* Constant SQL without parameters: the only statements not bound through prepare. */
    if (sqlite3_exec(s->db, pragmas, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_err(s, d, "cannot create schema");
        goto out;
    }
    for (int i = 0; i < Q_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, queries[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
            SQLITE_OK) {
            rc = db_err(s, d, "cannot prepare a statement");
            goto out;
        }
    }
    rc = state_meta_get(s, "schema", &val, d);
    if (rc != OTA_OK)
        goto out;
    if (val == NULL) {
        rc = state_meta_set(s, "schema", SCHEMA_VERSION, d);
    } else if (strcmp(val, SCHEMA_VERSION) != 0) {
        rc = ota_diag_set(d, OTA_E_STATE, "state database '%s' has schema '%s', expected '%s'",
                          path, val, SCHEMA_VERSION);
    }
out:
    free(val);
    if (rc != OTA_OK)
        state_close(s);
    return rc;
}

void
state_close(struct state *s)
{
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    if (s->db != NULL)
        sqlite3_close(s->db);
    memset(s, 0, sizeof(*s));
}

ota_err
state_begin(struct state *s, struct ota_diag *d)
{
    /* IMMEDIATE: take the write lock now, so a transaction never fails half-way on BUSY. */
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_err(s, d, "cannot begin a transaction");
    s->in_tx = 1;
    return OTA_OK;
}

ota_err
state_commit(struct state *s, struct ota_diag *d)
{
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        ota_err rc = db_err(s, d, "cannot commit");
        state_rollback(s);
        return rc;
    }
    s->in_tx = 0;
    return OTA_OK;
}

void
state_rollback(struct state *s)
{
    if (s->in_tx)
        (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->in_tx = 0;
}

static ota_err
dup_col(sqlite3_stmt *st, int col, char **out, struct ota_diag *d)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    *out = strdup(t ? (const char *)t : "");
    if (*out == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    return OTA_OK;
}

static void
copy_col(sqlite3_stmt *st, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

ota_err
state_meta_get(struct state *s, const char *key, char **val, struct ota_diag *d)
{
    sqlite3_stmt *st = q(s, Q_META_GET);
    ota_err       rc = OTA_OK;
    int           r;

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        rc = dup_col(st, 0, val, d);
    else if (r == SQLITE_DONE)
        *val = NULL;
    else
        rc = db_err(s, d, "cannot read meta");
    sqlite3_reset(st);
    return rc;
}

ota_err
state_meta_set(struct state *s, const char *key, const char *val, struct ota_diag *d)
{
    sqlite3_stmt *st = q(s, val ? Q_META_SET : Q_META_DEL);
    ota_err       rc = OTA_OK;

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (val != NULL)
        sqlite3_bind_text(st, 2, val, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_err(s, d, "cannot write meta");
    sqlite3_reset(st);
    return rc;
}

static ota_err
row_to_rel(struct state *s, sqlite3_stmt *st, struct rel *r, struct ota_diag *d)
{
    char state[32];

    memset(r, 0, sizeof(*r));
    copy_col(st, 0, r->version, sizeof(r->version));
    copy_col(st, 1, state, sizeof(state));
    if (!rel_state_parse(state, &r->state))
        return ota_diag_set(d, OTA_E_DB, "state database: release '%s' has unknown state '%s'",
                            r->version, state);
    copy_col(st, 2, r->model, sizeof(r->model));
    if (dup_col(st, 3, &r->release_json, d) != OTA_OK)
        return OTA_E_NOMEM;
    r->breaking = sqlite3_column_int(st, 4);
    copy_col(st, 5, r->sha256, sizeof(r->sha256));
    r->length = sqlite3_column_int64(st, 6);
    copy_col(st, 7, r->source, sizeof(r->source));
    r->staged_at = sqlite3_column_int64(st, 8);
    r->activated_at = sqlite3_column_int64(st, 9);
    r->launches = sqlite3_column_int64(st, 10);
    r->present = sqlite3_column_int(st, 11);
    copy_col(st, 12, r->reason, sizeof(r->reason));
    (void)s;
    return OTA_OK;
}

ota_err
state_rel_get(struct state *s, const char *version, struct rel *out, struct ota_diag *d)
{
    sqlite3_stmt *st = q(s, Q_REL_GET);
    struct rel    r;
    ota_err       rc;
    int           x;

    sqlite3_bind_text(st, 1, version, -1, SQLITE_STATIC);
    x = sqlite3_step(st);
    if (x == SQLITE_DONE) {
        rc = ota_diag_set(d, OTA_E_NOT_FOUND, "release '%s' is not installed", version);
    } else if (x != SQLITE_ROW) {
        rc = db_err(s, d, "cannot read a release");
    } else {
        rc = row_to_rel(s, st, &r, d);
        if (rc == OTA_OK)
            *out = r;
        else
            rel_clear(&r);
    }
    sqlite3_reset(st);
    return rc;
}

ota_err
state_rel_put(struct state *s, const struct rel *r, struct ota_diag *d)
{
    sqlite3_stmt      *st = q(s, Q_REL_PUT);
    struct ota_version v;
    ota_err            rc = OTA_OK;

    if (ota_version_parse(r->version, &v) != OTA_OK)
        return ota_diag_set(d, OTA_E_FORMAT, "bad version '%s'", r->version);
    sqlite3_bind_text(st, 1, r->version, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, rel_state_name(r->state), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->release_json ? r->release_json : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, r->breaking ? 1 : 0);
    sqlite3_bind_text(st, 6, r->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, r->length);
    sqlite3_bind_text(st, 8, r->source[0] ? r->source : "repository", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, r->staged_at);
    sqlite3_bind_int64(st, 10, r->activated_at);
    sqlite3_bind_int64(st, 11, r->launches);
    sqlite3_bind_int(st, 12, r->present ? 1 : 0);
    sqlite3_bind_text(st, 13, r->reason, -1, SQLITE_STATIC);
    for (unsigned i = 0; i < 4; i++)
        sqlite3_bind_int64(st, 14 + (int)i, i < v.n ? (sqlite3_int64)v.part[i] : 0);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_err(s, d, "cannot write a release");
    sqlite3_reset(st);
    return rc;
}

ota_err
state_rel_delete(struct state *s, const char *version, struct ota_diag *d)
{
    sqlite3_stmt *st = q(s, Q_REL_DEL);
    ota_err       rc = OTA_OK;

    sqlite3_bind_text(st, 1, version, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_err(s, d, "cannot delete a release");
    sqlite3_reset(st);
    return rc;
}

ota_err
state_rel_list(struct state *s, struct rel **out, size_t *n, struct ota_diag *d)
{
    sqlite3_stmt *st = q(s, Q_REL_LIST);
    struct rel   *list = NULL;
    size_t        cnt = 0, cap = 0;
    ota_err       rc = OTA_OK;
    int           x;

    while ((x = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            size_t      ncap = cap ? cap * 2 : 8;
            struct rel *nl = realloc(list, ncap * sizeof(*nl));
            if (nl == NULL) {
                rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
                goto out;
            }
            list = nl;
            cap = ncap;
        }
        rc = row_to_rel(s, st, &list[cnt], d);
        if (rc != OTA_OK)
            goto out;
        cnt++;
    }
    if (x != SQLITE_DONE) {
        rc = db_err(s, d, "cannot list releases");
        goto out;
    }
    *out = list;
    *n = cnt;
    list = NULL;
out:
    sqlite3_reset(st);
    rel_list_free(list, cnt);
    return rc;
}

ota_err
state_history_add(struct state *s, int64_t t, const char *event, const char *version,
                  const char *detail, struct ota_diag *d)
{
    sqlite3_stmt *st = q(s, Q_HIST_ADD);
    ota_err       rc = OTA_OK;

    sqlite3_bind_int64(st, 1, t);
    sqlite3_bind_text(st, 2, event, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, version ? version : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, detail ? detail : "", -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_err(s, d, "cannot write history");
    sqlite3_reset(st);
    return rc;
}

ota_err
state_history_json(struct state *s, size_t max, json_t **out, struct ota_diag *d)
{
    sqlite3_stmt *st = q(s, Q_HIST_LIST);
    json_t       *arr = json_array();
    ota_err       rc = OTA_OK;
    int           x;

    if (arr == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    sqlite3_bind_int64(st, 1, max == 0 ? -1 : (sqlite3_int64)max);
    while ((x = sqlite3_step(st)) == SQLITE_ROW) {
        char    ts[21];
        json_t *e;
        ota_time_format(sqlite3_column_int64(st, 0), ts);
        e = json_pack("{s:s, s:I, s:s, s:s, s:s}", "time", ts, "unix",
                      (json_int_t)sqlite3_column_int64(st, 0), "event",
                      (const char *)sqlite3_column_text(st, 1), "version",
                      (const char *)sqlite3_column_text(st, 2), "detail",
                      (const char *)sqlite3_column_text(st, 3));
        if (e == NULL || json_array_append_new(arr, e) != 0) {
            rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
            goto out;
        }
    }
    if (x != SQLITE_DONE) {
        rc = db_err(s, d, "cannot read history");
        goto out;
    }
    *out = arr;
    arr = NULL;
out:
    sqlite3_reset(st);
    json_decref(arr);
    return rc;
}

ota_err
state_tuf_set(struct state *s, const char *role, long long version, struct ota_diag *d)
{
    sqlite3_stmt *st = q(s, Q_TUF_SET);
    ota_err       rc = OTA_OK;

    sqlite3_bind_text(st, 1, role, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, version);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_err(s, d, "cannot write metadata versions");
    sqlite3_reset(st);
    return rc;
}

ota_err
state_tuf_json(struct state *s, json_t **out, struct ota_diag *d)
{
    sqlite3_stmt *st = q(s, Q_TUF_LIST);
    json_t       *obj = json_object();
    ota_err       rc = OTA_OK;
    int           x;

    if (obj == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    while ((x = sqlite3_step(st)) == SQLITE_ROW) {
        if (json_object_set_new(obj, (const char *)sqlite3_column_text(st, 0),
                                json_integer(sqlite3_column_int64(st, 1))) != 0) {
            rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
            goto out;
        }
    }
    if (x != SQLITE_DONE) {
        rc = db_err(s, d, "cannot read metadata versions");
        goto out;
    }
    *out = obj;
    obj = NULL;
out:
    sqlite3_reset(st);
    json_decref(obj);
    return rc;
}
