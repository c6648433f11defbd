/* The outbox: offline changes the app records in its own SQLite database, read and marked by the
 * agent. The contract (tables, who writes what) is formats/outbox.md.
 *
 * The agent never deletes a row. It moves a row from 'pending' to 'acked' when the server has
 * acknowledged it, or to 'quarantined' (with a reason) when the server refused it; both keep the
 * row and its payload. Every statement is prepared; every input is bounded. */
#ifndef OTA_OUTBOX_H
#define OTA_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "ota/err.h"

/** Version of the outbox schema this agent writes and understands. */
#define OTA_OUTBOX_SCHEMA_VERSION 1
/** Longest change id, model and entity name, in bytes. */
#define OTA_OUTBOX_ID_MAX 128
#define OTA_OUTBOX_NAME_MAX 128
/** Largest payload (JSON text), in bytes. */
#define OTA_OUTBOX_PAYLOAD_MAX (1u << 20)
/** Longest quarantine reason kept, in bytes (longer reasons are cut). */
#define OTA_OUTBOX_REASON_MAX 1024
/** Most distinct models ota_outbox_pending reports. */
#define OTA_OUTBOX_MODELS_MAX 1024

/** An open outbox (one SQLite connection to the app's database). Opaque. */
struct ota_outbox;

/** One row of the outbox. Strings are owned by the row (or by the batch that holds it). */
struct ota_outbox_row {
    int64_t seq;
    char   *change_id;
    char   *model;
    char   *entity;
    char   *op;           /* "insert", "update" or "delete" */
    char   *payload;      /* JSON text; NULL when the stored payload is over the size cap */
    size_t  payload_len;  /* bytes of the stored payload, even when payload is NULL */
    int64_t created_at;
    char   *state;        /* "pending", "acked" or "quarantined" */
    char   *reason;       /* NULL unless quarantined */
    int64_t attempts;
    int64_t acked_at;     /* 0 if not acked */
};

/** Pending rows of one model, in seq order, read by ota_outbox_batch_next. */
struct ota_outbox_batch {
    struct ota_outbox_row *rows;
    size_t                 n;
    size_t                 bytes;    /* sum of the rows' sizes as counted against the byte cap */
    int64_t                last_seq; /* seq of the last row, 0 if n == 0 */
};

/** Counts of the rows of one model. */
struct ota_outbox_count {
    char     model[OTA_OUTBOX_NAME_MAX + 1];
    uint64_t pending;
    uint64_t quarantined;
    uint64_t acked;
};

/** Open the app's database at path (created if missing), set WAL, synchronous=FULL and a busy
 * timeout, and create the outbox tables if they are missing. The app's own tables are never
 * touched. OTA_E_INCOMPATIBLE if the database holds a newer outbox schema than
 * OTA_OUTBOX_SCHEMA_VERSION (nothing is changed then), OTA_E_FORMAT if the recorded version is
 * not a positive integer, OTA_E_DB for SQLite failures. *out is owned by the caller
 * (ota_outbox_close). */
ota_err ota_outbox_open(const char *path, struct ota_outbox **out,
                        struct ota_diag *d) OTA_MUST_CHECK;

/** Close an outbox; accepts NULL. */
void ota_outbox_close(struct ota_outbox *ob);

/** Path the outbox was opened with (borrowed from ob). */
const char *ota_outbox_path(const struct ota_outbox *ob);

/** Record one pending change, as an app would. change_id may be NULL: a random 128-bit id in
 * lowercase hex is generated. model and entity: 1..OTA_OUTBOX_NAME_MAX bytes without control
 * characters; op: insert, update or delete; payload: valid JSON of at most
 * OTA_OUTBOX_PAYLOAD_MAX bytes. id_out (may be NULL; OTA_OUTBOX_ID_MAX + 1 bytes) receives the
 * id. OTA_E_INVALID for a bad argument, OTA_E_TOO_BIG for a payload over the cap, OTA_E_FORMAT
 * for a payload that is not JSON, OTA_E_EXISTS if change_id is already in the outbox; nothing
 * is written in any of these cases. */
ota_err ota_outbox_add(struct ota_outbox *ob, const char *change_id, const char *model,
                       const char *entity, const char *op, const char *payload, char *id_out,
                       struct ota_diag *d) OTA_MUST_CHECK;

/** Per-model counts of the rows that are pending, quarantined or acked, ordered by model.
 * *out is malloc'd (free()), *n its length; *out is NULL when the outbox is empty.
 * OTA_E_TOO_BIG if more than OTA_OUTBOX_MODELS_MAX models hold rows. */
ota_err ota_outbox_pending(struct ota_outbox *ob, struct ota_outbox_count **out, size_t *n,
                           struct ota_diag *d) OTA_MUST_CHECK;

/** Counts of one model's rows (all zero for an unknown model). */
ota_err ota_outbox_count_model(struct ota_outbox *ob, const char *model,
                               struct ota_outbox_count *out, struct ota_diag *d) OTA_MUST_CHECK;

/** Read the next pending rows of model with seq > after_seq, in seq order: at most max_rows
 * rows and, after the first row, at most max_bytes bytes (a row counts its payload and its
 * names). The first row is always taken so one large row still makes progress; a payload
 * over OTA_OUTBOX_PAYLOAD_MAX is not read (row->payload is NULL) so memory stays bounded.
 * *out is owned by the caller (ota_outbox_batch_free); an empty batch has n == 0. */
ota_err ota_outbox_batch_next(struct ota_outbox *ob, const char *model, int64_t after_seq,
                              size_t max_rows, size_t max_bytes, struct ota_outbox_batch **out,
                              struct ota_diag *d) OTA_MUST_CHECK;

/** Free a batch; accepts NULL. */
void ota_outbox_batch_free(struct ota_outbox_batch *b);

/** In one transaction, mark the pending rows whose change ids are ids[0..n) acked (acked_at =
 * now, attempts + 1). Ids that are unknown or not pending are left alone; *changed (may be
 * NULL) receives how many rows changed. */
ota_err ota_outbox_ack(struct ota_outbox *ob, const char *const *ids, size_t n, size_t *changed,
                       struct ota_diag *d) OTA_MUST_CHECK;

/** Count one more delivery attempt for the pending rows ids[0..n) (the server answered but
 * neither accepted nor rejected them). One transaction. */
ota_err ota_outbox_touch(struct ota_outbox *ob, const char *const *ids, size_t n,
                         struct ota_diag *d) OTA_MUST_CHECK;

/** Move the pending row change_id to 'quarantined' with reason (cut to OTA_OUTBOX_REASON_MAX
 * bytes, control characters replaced); the row and its payload stay. OTA_E_NOT_FOUND if no
 * pending row has that id. */
ota_err ota_outbox_quarantine(struct ota_outbox *ob, const char *change_id, const char *reason,
                              struct ota_diag *d) OTA_MUST_CHECK;

/** Called by ota_outbox_foreach for each row (borrowed for the call). A non-OK return stops the
 * iteration and is returned. */
typedef ota_err (*ota_outbox_row_fn)(void *ctx, const struct ota_outbox_row *row,
                                     struct ota_diag *d);

/** Call fn for every row in seq order whose state is state and whose model is model (each NULL
 * = any). Rows are read one at a time, so memory does not grow with the outbox. */
ota_err ota_outbox_foreach(struct ota_outbox *ob, const char *state, const char *model,
                           ota_outbox_row_fn fn, void *ctx, struct ota_diag *d) OTA_MUST_CHECK;

/** Write every pending and quarantined row to path as JSON Lines (formats/outbox.md), through a
 * temp file, fsync and rename, so path is either absent or complete. Rows are never deleted
 * or changed: this is the copy an operator keeps before forcing an activation. *n (may be
 * NULL) receives the number of rows written. OTA_E_EXISTS if path exists. */
ota_err ota_outbox_export(struct ota_outbox *ob, const char *path, uint64_t *n,
                          struct ota_diag *d) OTA_MUST_CHECK;

/** Add the rows of an export file, in file order, in one transaction. A row whose change id is
 * already in the outbox is skipped (importing twice adds nothing). Rows keep their model,
 * entity, op, payload, created_at, state (pending or quarantined) and reason; they get new seq
 * numbers. Every line is checked before anything is written: a bad line gives OTA_E_FORMAT
 * naming its line number and nothing is imported. *added and *skipped may be NULL. */
ota_err ota_outbox_import(struct ota_outbox *ob, const char *path, uint64_t *added,
                          uint64_t *skipped, struct ota_diag *d) OTA_MUST_CHECK;

/** Check the fields of a row read from the database (an app may have written it directly):
 * change id 1..OTA_OUTBOX_ID_MAX printable ASCII bytes, names 1..OTA_OUTBOX_NAME_MAX bytes
 * without control characters, a known op, and a payload that is JSON within the cap.
 * OTA_E_FORMAT (or OTA_E_TOO_BIG for the payload) with the reason in diag. */
ota_err ota_outbox_row_check(const struct ota_outbox_row *row, struct ota_diag *d) OTA_MUST_CHECK;

#endif
