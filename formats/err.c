/* Error names and diagnostics. */
#include "ota/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    const char *text;
} table[OTA_ERR_MAX + 1] = {
    [OTA_OK] = { "OTA_OK", "success" },
    [OTA_E_NOMEM] = { "OTA_E_NOMEM", "out of memory" },
    [OTA_E_IO] = { "OTA_E_IO", "input/output error" },
    [OTA_E_FORMAT] = { "OTA_E_FORMAT", "malformed input" },
    [OTA_E_TOO_BIG] = { "OTA_E_TOO_BIG", "input too big" },
    [OTA_E_SIG] = { "OTA_E_SIG", "signature does not verify" },
    [OTA_E_KEY_UNKNOWN] = { "OTA_E_KEY_UNKNOWN", "key not trusted for this role" },
    [OTA_E_DIGEST] = { "OTA_E_DIGEST", "content does not match its signed digest" },
    [OTA_E_ROLLBACK] = { "OTA_E_ROLLBACK", "version not higher than the trusted one" },
    [OTA_E_UNSAFE_PATH] = { "OTA_E_UNSAFE_PATH", "unsafe path or file type" },
    [OTA_E_EXPIRED] = { "OTA_E_EXPIRED", "metadata expired" },
    [OTA_E_THRESHOLD] = { "OTA_E_THRESHOLD", "signature threshold not met" },
    [OTA_E_PASSPHRASE] = { "OTA_E_PASSPHRASE", "wrong or missing passphrase" },
    [OTA_E_EXISTS] = { "OTA_E_EXISTS", "already exists" },
    [OTA_E_NOT_FOUND] = { "OTA_E_NOT_FOUND", "not found" },
    [OTA_E_INVALID] = { "OTA_E_INVALID", "invalid argument" },
    [OTA_E_INCOMPATIBLE] = { "OTA_E_INCOMPATIBLE", "release not compatible" },
    [OTA_E_NETWORK] = { "OTA_E_NETWORK", "network error" },
    [OTA_E_CRYPTO] = { "OTA_E_CRYPTO", "cryptographic library failure" },
    [OTA_E_STATE] = { "OTA_E_STATE", "not allowed in the current state" },
    [OTA_E_GATED] = { "OTA_E_GATED", "waiting for offline changes to sync" },
    [OTA_E_AUTH] = { "OTA_E_AUTH", "sign-in needed" },
    [OTA_E_TIMEOUT] = { "OTA_E_TIMEOUT", "timed out" },
    [OTA_E_DB] = { "OTA_E_DB", "state database error" },
    [OTA_E_LENGTH] = { "OTA_E_LENGTH", "length does not match the declared length" },
    [OTA_E_BREAKING] = { "OTA_E_BREAKING", "data model change not declared" },
    [OTA_E_LOCKED] = { "OTA_E_LOCKED", "locked by another process" },
    [OTA_E_REJECTED] = { "OTA_E_REJECTED", "changes rejected by the server" },
};

const char *
ota_err_name(ota_err rc)
{
    if ((unsigned)rc > OTA_ERR_MAX || table[rc].name == NULL)
        return "OTA_E_UNKNOWN";
    return table[rc].name;
}

const char *
ota_err_str(ota_err rc)
{
    if ((unsigned)rc > OTA_ERR_MAX || table[rc].text == NULL)
        return "unknown error";
    return table[rc].text;
}

ota_err
ota_diag_set(struct ota_diag *d, ota_err rc, const char *fmt, ...)
{
    va_list ap;

    if (d == NULL)
        return rc;
    d->sys_errno = 0;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
    return rc;
}

ota_err
ota_diag_sys(struct ota_diag *d, ota_err rc, int err, const char *fmt, ...)
{
    va_list ap;
    size_t  n;

    if (d == NULL)
        return rc;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
    n = strlen(d->msg);
    if (err != 0 && n < sizeof d->msg)
        snprintf(d->msg + n, sizeof d->msg - n, ": %s", strerror(err));
    d->sys_errno = err;
    return rc;
}

void
ota_diag_prefix(struct ota_diag *d, const char *fmt, ...)
{
    char    pre[256];
    char    old[256];
    va_list ap;

    if (d == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    size_t  n;

    memcpy(old, d->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    n = strlen(pre);
    if (n > sizeof d->msg - 3)
        n = sizeof d->msg - 3;
    memcpy(d->msg, pre, n);
    memcpy(d->msg + n, ": ", 2);
    n += 2;
    memcpy(d->msg + n, old, strnlen(old, sizeof d->msg - n - 1));
    d->msg[n + strnlen(old, sizeof d->msg - n - 1)] = '\0';
}

void
ota_diag_clear(struct ota_diag *d)
{
    if (d == NULL)
        return;
    d->sys_errno = 0;
    d->msg[0] = '\0';
}
