/* ota error codes and diagnostics, shared by every module.
 *
 * Every fallible function returns an ota_err (0 = OK) and takes an optional struct ota_diag *
 * that receives a one-line message ("cannot open 'x'": lowercase, no final period) and the
 * errno at the failure. Codes are append-only: never renumber, never reuse. */
#ifndef OTA_ERR_H
#define OTA_ERR_H

#include <stdarg.h>

#define OTA_MUST_CHECK __attribute__((warn_unused_result))
#define OTA_PRINTF(a, b) __attribute__((format(printf, a, b)))

typedef enum ota_err {
    OTA_OK = 0,
    OTA_E_NOMEM = 1,
    OTA_E_IO = 2,            /* diag->sys_errno is set */
    OTA_E_FORMAT = 3,        /* malformed input */
    OTA_E_TOO_BIG = 4,       /* input over its size cap */
    OTA_E_SIG = 5,           /* a signature does not verify */
    OTA_E_KEY_UNKNOWN = 6,   /* key not trusted for this role */
    OTA_E_DIGEST = 7,        /* content does not match its signed digest */
    OTA_E_ROLLBACK = 8,      /* version not higher than the trusted one */
    OTA_E_UNSAFE_PATH = 9,   /* path escapes its directory, or special file */
    OTA_E_EXPIRED = 10,      /* metadata past its expiry */
    OTA_E_THRESHOLD = 11,    /* fewer valid signatures than the role's threshold */
    OTA_E_PASSPHRASE = 12,   /* wrong or missing passphrase */
    OTA_E_EXISTS = 13,       /* would overwrite an existing file */
    OTA_E_NOT_FOUND = 14,
    OTA_E_INVALID = 15,      /* invalid argument or option value */
    OTA_E_INCOMPATIBLE = 16, /* release does not fit this device or channel */
    OTA_E_NETWORK = 17,
    OTA_E_CRYPTO = 18,       /* crypto library failure (not a bad signature) */
    OTA_E_STATE = 19,        /* operation not allowed in the current state */
    OTA_E_GATED = 20,        /* data gate closed: offline changes not yet synced */
    OTA_E_AUTH = 21,         /* server says sign-in needed (401/403) */
    OTA_E_TIMEOUT = 22,
    OTA_E_DB = 23,           /* SQLite error */
    OTA_E_LENGTH = 24,       /* more (or fewer) bytes than declared */
    OTA_E_BREAKING = 25,     /* model change without --breaking or reads_models */
    OTA_E_LOCKED = 26,       /* another process holds the lock */
    OTA_E_REJECTED = 27,     /* server rejected some changes */
} ota_err;

#define OTA_ERR_MAX 27

struct ota_diag {
    int  sys_errno;          /* errno at the failure, 0 if none */
    char msg[256];           /* "cannot open 'x'": lowercase, no final period */
};

/** Stable short name of a code ("OTA_E_SIG"); never NULL. */
const char *ota_err_name(ota_err rc);

/** Human description of a code ("signature does not verify"); never NULL. */
const char *ota_err_str(ota_err rc);

/** Set diag (if not NULL) to a formatted message, clear sys_errno; returns rc. */
ota_err ota_diag_set(struct ota_diag *d, ota_err rc, const char *fmt, ...) OTA_PRINTF(3, 4);

/** Like ota_diag_set, records errno err and appends ": strerror(err)"; returns rc. */
ota_err ota_diag_sys(struct ota_diag *d, ota_err rc, int err, const char *fmt, ...)
    OTA_PRINTF(4, 5);

/** Prefix an existing message with more context ("loading 'x': <old msg>"). */
void ota_diag_prefix(struct ota_diag *d, const char *fmt, ...) OTA_PRINTF(2, 3);

/** Clear a diag (if not NULL). */
void ota_diag_clear(struct ota_diag *d);

#endif
