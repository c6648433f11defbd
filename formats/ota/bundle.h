/* The bundle container: one zstd-compressed tar stream whose first member is a signed
 * manifest (release metadata + path, size, mode and SHA-256 of every file), so a reader
 * authenticates the manifest before it reads any payload, and checks every payload byte
 * against it while streaming. A bundle verifies on its own (offline installs).
 * See formats/bundle.md for the byte-level format and test vectors.
 *
 * Signing and verifying are callbacks, so formats/ does not depend on keys/: the publisher
 * passes its signer, the agent a check against the targets keys of its trusted root. */
#ifndef OTA_BUNDLE_H
#define OTA_BUNDLE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ota/err.h"
#include "ota/hash.h"
#include "ota/release.h"

#define OTA_BUNDLE_MANIFEST_NAME ".ota-manifest.json" /* first tar member */
#define OTA_BUNDLE_MANIFEST_MAX  (16u << 20)
#define OTA_BUNDLE_MAX_FILES     200000
#define OTA_BUNDLE_PATH_MAX      1024
#define OTA_BUNDLE_WINDOW_LOG_MAX 23 /* decoder memory cap: 8 MiB window */

struct ota_manifest_file {
    char         *path;     /* relative, '/'-separated, no "..", no leading '/' */
    int           is_dir;
    uint32_t      mode;     /* 0755 or 0644 for files, 0755 for dirs: nothing else */
    uint64_t      size;     /* 0 for dirs */
    unsigned char sha256[OTA_SHA256_LEN];
};

struct ota_manifest {
    struct ota_release        release;
    struct ota_manifest_file *files;
    size_t                    nfiles;
    uint64_t                  total_size;   /* sum of file sizes */
    json_t                   *signatures;   /* TUF-style signatures array (owned reference) */
};

void ota_manifest_free(struct ota_manifest *m); /* accepts NULL */

/** Sign msg (canonical bytes of the manifest's "signed" member) and append one or more
 * {"keyid","sig"} objects to sigs. */
typedef ota_err (*ota_sign_fn)(void *ctx, const void *msg, size_t len, json_t *sigs,
                               struct ota_diag *d);

/** Authenticate msg against sigs (e.g. ota_threshold_verify with the targets role). */
typedef ota_err (*ota_verify_fn)(void *ctx, const void *msg, size_t len, const json_t *sigs,
                                 struct ota_diag *d);

/** Pull up to cap compressed bytes into buf; *got = 0 means end of stream. */
typedef ota_err (*ota_read_fn)(void *ctx, void *buf, size_t cap, size_t *got,
                               struct ota_diag *d);

/** Progress: done and total in bytes (total 0 if unknown). */
typedef void (*ota_progress_fn)(void *ctx, uint64_t done, uint64_t total);

struct ota_pack_opts {
    const char               *src_dir;   /* tree to pack */
    const char               *out_path;  /* written atomically (temp + rename) */
    const struct ota_release *release;
    ota_sign_fn               sign;
    void                     *sign_ctx;
    int                       level;     /* zstd level 1..19, 0 = 3 */
    int                       threads;   /* zstd workers, 0 = online CPUs */
    int                       force;     /* replace an existing out_path */
    ota_progress_fn           progress;
    void                     *progress_ctx;
};

struct ota_pack_result {
    unsigned char sha256[OTA_SHA256_LEN]; /* of the bundle file */
    uint64_t      length;                 /* bundle file bytes */
    uint64_t      nfiles;                 /* regular files */
    uint64_t      payload_bytes;          /* sum of file sizes */
};

/** Pack src_dir into a bundle. Streams: memory does not depend on the tree's size. Refuses
 * special files, symlinks that leave src_dir or point to directories (a symlink to a file
 * inside is stored as a copy), and names that are not valid UTF-8 or over
 * OTA_BUNDLE_PATH_MAX (OTA_E_UNSAFE_PATH / OTA_E_FORMAT naming the path). A file that changes
 * while being packed fails the pack (OTA_E_IO). On failure out_path is untouched. */
ota_err ota_bundle_pack(const struct ota_pack_opts *o, struct ota_pack_result *res,
                        struct ota_diag *d) OTA_MUST_CHECK;

struct ota_bundle_read_opts {
    ota_read_fn     read;
    void           *read_ctx;
    ota_verify_fn   verify;        /* required: a reader never trusts an unsigned manifest */
    void           *verify_ctx;
    /* Called after the manifest is authenticated, before any payload is read (e.g. the agent
     * compares the release with the TUF target's custom metadata). May be NULL. */
    ota_err       (*check_manifest)(void *ctx, const struct ota_manifest *m, struct ota_diag *d);
    void           *check_ctx;
    const char     *dest_dir;      /* existing empty directory to extract into; NULL: verify only */
    int             sync;          /* 1: make extracted data durable (fsync/syncfs) before OK */
    uint64_t        max_length;    /* cap on compressed bytes read; 0 = no cap */
    const unsigned char *expect_sha256; /* if set, SHA-256 of the compressed stream must match */
    uint64_t        expect_length; /* if non-zero, compressed length must equal it */
    uint64_t        max_unpacked;  /* cap on total file bytes; 0 = 16 GiB */
    ota_progress_fn progress;      /* compressed bytes read */
    void           *progress_ctx;
    /* Set on success only (each may be NULL): SHA-256 (OTA_SHA256_LEN bytes) and length of
     * the compressed stream, so that a caller recording them does not read the bundle twice. */
    unsigned char  *got_sha256;
    uint64_t       *got_length;
};

/** Read, authenticate and (optionally) extract a bundle in one pass. Error codes:
 * OTA_E_FORMAT (not a bundle, manifest not first, entry not in the manifest, duplicate entry),
 * the verify callback's code (OTA_E_SIG/OTA_E_THRESHOLD/OTA_E_KEY_UNKNOWN), OTA_E_UNSAFE_PATH
 * (absolute path, "..", link, device, fifo, setuid/setgid bits), OTA_E_LENGTH (entry size
 * differs from the manifest, stream longer/shorter than expect_length or max_length),
 * OTA_E_DIGEST (file or stream digest), OTA_E_TOO_BIG (zstd window or unpacked size over the
 * caps). Nothing is written outside dest_dir; on failure dest_dir holds partial output which
 * the caller removes. *out (may be NULL) receives the manifest on success only. */
ota_err ota_bundle_read(const struct ota_bundle_read_opts *o, struct ota_manifest **out,
                        struct ota_diag *d) OTA_MUST_CHECK;

/** ota_bundle_read over a file: fills o->read/read_ctx with a reader of path. */
ota_err ota_bundle_read_file(const char *path, struct ota_bundle_read_opts *o,
                             struct ota_manifest **out, struct ota_diag *d) OTA_MUST_CHECK;

/** Manifest as JSON (for inspect --json): new reference, NULL on out of memory. */
json_t *ota_manifest_to_json(const struct ota_manifest *m);

#endif
