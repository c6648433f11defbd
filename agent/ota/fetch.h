/* Downloads with libcurl: bounded, resumable, verified while they arrive.
 * Schemes: https:// (TLS verification always on; optional pinned CA), http://, file://. */
#ifndef OTA_FETCH_H
#define OTA_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "ota/err.h"

struct ota_fetch_opts {
    long        connect_timeout_s; /* 0 = 10 */
    long        low_speed_time_s;  /* abort when slower than low_speed_bytes/s this long; 0 = 30 */
    long        low_speed_bytes;   /* 0 = 1 */
    long        total_timeout_s;   /* whole transfer; 0 = none */
    const char *ca_file;           /* pinned CA bundle (PEM); NULL = system store */
    const char *user_agent;        /* NULL = "ota-agent/<version>" */
    /* Progress of the current transfer (bytes so far, expected total or 0). May be NULL. */
    void      (*progress)(void *ctx, uint64_t done, uint64_t total);
    void       *progress_ctx;
    /* Polled during a transfer (from the thread running it, at least once a second while it
     * waits for the network): non-zero stops the transfer with OTA_E_NETWORK ("cancelled").
     * Lets another thread end a transfer that no byte arrives for. May be NULL. */
    int       (*cancelled)(void *ctx);
    void       *cancel_ctx;
};

/** Fetch url into memory, at most max bytes: a longer body is cut off while it arrives and
 * fails with OTA_E_TOO_BIG. HTTP 404 (or a missing file://) gives OTA_E_NOT_FOUND, other
 * HTTP errors and transport failures OTA_E_NETWORK, timeouts OTA_E_TIMEOUT. *buf is malloc'd
 * and NUL-terminated (NUL not counted), owned by the caller. */
ota_err ota_fetch_mem(const struct ota_fetch_opts *o, const char *url, size_t max,
                      unsigned char **buf, size_t *len, struct ota_diag *d) OTA_MUST_CHECK;

/** Receives downloaded bytes in order. A non-OK return aborts the transfer with that code. */
typedef ota_err (*ota_sink_fn)(void *ctx, const void *buf, size_t len, struct ota_diag *d);

/** Stream url to sink starting at byte offset (HTTP Range when offset > 0; a server that
 * ignores Range is detected and fails with OTA_E_NETWORK so the caller restarts from 0).
 * Never delivers more than max_total - offset bytes (OTA_E_LENGTH beyond). *received gets the
 * bytes delivered by this call even on failure, so a caller can resume. */
ota_err ota_fetch_stream(const struct ota_fetch_opts *o, const char *url, uint64_t offset,
                         uint64_t max_total, ota_sink_fn sink, void *sink_ctx,
                         uint64_t *received, struct ota_diag *d) OTA_MUST_CHECK;

/** Bytes received over the network by this process so far (for "a check that finds nothing
 * new transfers little more than the timestamp" figures). */
uint64_t ota_fetch_bytes_total(void);

#endif
