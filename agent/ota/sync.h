/* Sync: send the outbox's pending changes to the sync server (formats/sync-protocol.md), or run
 * the app's own sync hook, and record what the server took.
 *
 * The rule the gate builds on: ota_sync_run returns OTA_OK exactly when no pending and no
 * quarantined row remains for the requested model(s) ("drained"). Failed requests change no
 * row; a crash at any point loses nothing, because a row changes state only after the server's
 * answer, and the server applies each change id once however often it is sent. */
#ifndef OTA_SYNC_H
#define OTA_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "ota/err.h"
#include "ota/outbox.h"

/* Defaults and limits of the configuration. */
#define OTA_SYNC_BATCH_ROWS 500u
#define OTA_SYNC_BATCH_ROWS_MAX 10000u
#define OTA_SYNC_BATCH_BYTES (4u << 20)
#define OTA_SYNC_BATCH_BYTES_MAX (6u << 20)
#define OTA_SYNC_TIMEOUT_S 60L
#define OTA_SYNC_MAX_ATTEMPTS 3u
/** Largest request body and largest reply, in bytes. */
#define OTA_SYNC_BODY_MAX (8u << 20)
/** Longest token, in bytes. */
#define OTA_SYNC_TOKEN_MAX 4096u

struct ota_sync_config {
    const char *outbox_db;    /* the app's database holding the outbox */
    const char *url_template; /* contains {model}, e.g. https://sync.example/sync/{model} */
    const char *token;        /* bearer token; NULL = read token_file */
    const char *token_file;   /* first line is the token; NULL = no token */
    const char *command;      /* sync hook run with /bin/sh -c instead of HTTP; NULL = HTTP */
    unsigned    batch_rows;   /* rows per request; 0 = OTA_SYNC_BATCH_ROWS */
    size_t      batch_bytes;  /* bytes per request, about; 0 = OTA_SYNC_BATCH_BYTES */
    long        timeout_s;    /* per request (and for the hook); 0 = OTA_SYNC_TIMEOUT_S (hook:
                                 600) */
    const char *ca_file;      /* pinned CA bundle (PEM) for https; NULL = system store */
    unsigned    max_attempts; /* tries per request on network errors and 5xx; 0 = 3 */
};

/** What happened to one model in a run. */
struct ota_sync_model_report {
    char     model[OTA_OUTBOX_NAME_MAX + 1];
    uint64_t acked;       /* rows acknowledged by this run */
    uint64_t quarantined; /* rows quarantined by this run */
    uint64_t pending;     /* rows still pending after the run */
    uint64_t held;        /* rows quarantined after the run (this run's and earlier ones) */
};

/** One change the server (or our own checks) refused in this run. */
struct ota_sync_rejection {
    char id[OTA_OUTBOX_ID_MAX + 1];
    char model[OTA_OUTBOX_NAME_MAX + 1];
    char reason[256];
};

#define OTA_SYNC_REPORT_MODELS 32
#define OTA_SYNC_REPORT_REJECTIONS 16

/** The outcome of ota_sync_run, filled in every case (it is how a failure is explained). */
struct ota_sync_report {
    struct ota_sync_model_report models[OTA_SYNC_REPORT_MODELS];
    size_t                       n_models;       /* entries used in models */
    int                          models_cut;     /* more models than OTA_SYNC_REPORT_MODELS */
    uint64_t                     acked;          /* totals over every model */
    uint64_t                     quarantined;
    uint64_t                     pending;
    uint64_t                     held;
    struct ota_sync_rejection    rejections[OTA_SYNC_REPORT_REJECTIONS]; /* the first ones */
    size_t                       n_rejections;
    int                          drained;        /* 1 iff the run returned OTA_OK */
    int                          used_hook;      /* the run ran the hook instead of HTTP */
    long                         http_status;    /* last HTTP status seen, 0 if none */
    int                          hook_status;    /* exit status of the last hook run, -1 if
                                                    none or killed */
    uint64_t                     requests;       /* HTTP requests made, retries included */
    ota_err                      last_err;       /* the run's return code */
    char                         last_error[256];/* its message, "" if none */
};

/** Sync the pending changes of only_model (NULL = every model with pending rows).
 *
 * HTTP (command NULL): for each model, batches of pending rows in seq order are POSTed to
 * url_template with {model} replaced; accepted ids become acked, rejected ids quarantined with
 * the server's reason; ids the server left out stay pending. Rows that break the outbox rules
 * are quarantined here without being sent. Network errors and 5xx are retried max_attempts
 * times within the call (0.5 s, 1 s, 2 s ... apart).
 * Hook (command set): runs command with /bin/sh -c for each model, with OTA_OUTBOX_DB and
 * OTA_SYNC_MODEL in its environment; then counts again.
 *
 * Returns OTA_OK when no pending or quarantined row remains for the model(s);
 * OTA_E_AUTH (401/403: sign-in needed; stops at once, nothing changed by that request);
 * OTA_E_NETWORK (unreachable, 5xx after retries, other HTTP errors, rows the server left
 * pending, hook failed or left rows pending); OTA_E_TIMEOUT (hook ran too long);
 * OTA_E_REJECTED (quarantined rows remain: the operator must look at them);
 * OTA_E_FORMAT (the server's reply breaks the protocol; nothing changed by it);
 * OTA_E_INVALID (bad configuration); OTA_E_DB, OTA_E_INCOMPATIBLE (outbox).
 * r (may be NULL) is filled in every case. d gets the message of the returned error. */
ota_err ota_sync_run(const struct ota_sync_config *c, const char *only_model,
                     struct ota_sync_report *r, struct ota_diag *d) OTA_MUST_CHECK;

/** Replace every "{model}" in tmpl with model, percent-escaped (RFC 3986 unreserved characters
 * kept). out (cap bytes) receives the URL. OTA_E_INVALID if tmpl lacks {model}, OTA_E_TOO_BIG
 * if the URL does not fit. */
ota_err ota_sync_url(const char *tmpl, const char *model, char *out, size_t cap,
                     struct ota_diag *d) OTA_MUST_CHECK;

#endif
