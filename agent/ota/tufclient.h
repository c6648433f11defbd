/* TUF client (specification 1.0.x, section 5 "detailed client workflow"): root chain with
 * threshold checks, timestamp, snapshot, targets and delegated targets; expiry against one
 * start time; rollback, freeze and fast-forward protection; every length bounded; trusted
 * metadata persisted atomically in metadata_dir as root.json, timestamp.json, snapshot.json,
 * targets.json and <ROLE>.json for delegated roles. */
#ifndef OTA_TUFCLIENT_H
#define OTA_TUFCLIENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ota/err.h"
#include "ota/fetch.h"
#include "ota/hash.h"
#include "ota/keys.h"

struct ota_tuf_client; /* opaque */

struct ota_tuf_client_opts {
    const char                  *metadata_dir;  /* trusted metadata, must hold root.json */
    const char                  *metadata_url;  /* base: <url>/<N>.root.json, <url>/timestamp.json */
    const struct ota_fetch_opts *fetch;         /* may be NULL for defaults */
    int64_t                      now;           /* 0 = ota_now() once at open */
    unsigned                     max_root_rotations; /* 0 = 32 */
    unsigned                     max_delegations;    /* roles visited per lookup; 0 = 32 */
    size_t                       max_root_len;       /* 0 = 512 KiB */
    size_t                       max_timestamp_len;  /* 0 = 16 KiB */
    size_t                       max_meta_len;       /* snapshot/targets without a length; 0 = 16 MiB */
};

struct ota_tuf_target {
    const char   *path;     /* target path as in targets metadata (borrowed) */
    uint64_t      length;
    unsigned char sha256[OTA_SHA256_LEN];
    const json_t *custom;   /* borrowed; NULL if absent */
};

/** Copy trusted_root (a root metadata file) to metadata_dir/root.json after checking it is a
 * well-formed root signed by its own threshold. No network. */
ota_err ota_tuf_client_init(const char *metadata_dir, const char *trusted_root,
                            struct ota_diag *d) OTA_MUST_CHECK;

/** Load trusted metadata from metadata_dir (root.json required, the rest used if valid). */
ota_err ota_tuf_client_open(const struct ota_tuf_client_opts *o, struct ota_tuf_client **out,
                            struct ota_diag *d) OTA_MUST_CHECK;

/** Top-level update: root chain, timestamp, snapshot, targets (spec 5.3-5.6). */
ota_err ota_tuf_client_refresh(struct ota_tuf_client *c, struct ota_diag *d) OTA_MUST_CHECK;

/** Find a target by path, searching delegations in order (pre-order DFS, terminating
 * delegations honoured, bounded), fetching delegated metadata as needed. OTA_E_NOT_FOUND if
 * no role lists it. out borrows from c. */
ota_err ota_tuf_client_find_target(struct ota_tuf_client *c, const char *path,
                                   struct ota_tuf_target *out, struct ota_diag *d) OTA_MUST_CHECK;

/** Call cb for each target of the top-level targets role; cb returns non-zero to stop. */
ota_err ota_tuf_client_foreach_target(struct ota_tuf_client *c,
                                      int (*cb)(void *ctx, const struct ota_tuf_target *t),
                                      void *ctx, struct ota_diag *d) OTA_MUST_CHECK;

/** URL of a target: <base>/<dir>/<sha256>.<name> with consistent snapshots, else
 * <base>/<path>. malloc'd; NULL on out of memory. */
char *ota_tuf_client_target_url(const struct ota_tuf_client *c, const char *base,
                                const struct ota_tuf_target *t);

/** Keys and threshold of the targets role in the trusted root (borrowed from c), used to
 * authenticate bundle manifests. */
const struct ota_role_keys *ota_tuf_client_targets_keys(const struct ota_tuf_client *c);

/** Version of trusted top-level metadata (0 if none): role is "root", "timestamp",
 * "snapshot" or "targets". */
long long ota_tuf_client_version(const struct ota_tuf_client *c, const char *role);

void ota_tuf_client_free(struct ota_tuf_client *c); /* accepts NULL */

#endif
