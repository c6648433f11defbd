/* ota-publish library: a static TUF repository of signed bundles.
 *
 * A workspace REPO holds keys/ (private keys, never served), repo.json (expiry settings) and
 * public/ (what a web server or CDN serves: metadata/ and targets/). Every change computes
 * and signs all new metadata in memory first, re-verifies it, then writes targets, the new
 * targets metadata, snapshot and the timestamp last, each file atomically, so a reader of the
 * served tree always sees one consistent repository and a failed command changes nothing
 * that a client can see. See formats/repository.md. */
#ifndef OTA_PUBLISH_H
#define OTA_PUBLISH_H

#include <jansson.h>
#include <stdint.h>

#include "ota/bundle.h"
#include "ota/err.h"
#include "ota/release.h"
#include "ota/signer.h"

struct ota_repo; /* opaque: an open, locked workspace */

struct ota_repo_init_opts {
    unsigned root_keys;        /* number of root keys, 0 = 1 */
    unsigned root_threshold;   /* 0 = 1 */
    unsigned expires_days[4];  /* root, targets, snapshot, timestamp; 0 = 365, 90, 7, 1 */
    int      unencrypted_online; /* timestamp and snapshot keys stored without passphrase */
};

/** Roles, in the order used by arrays in this API. */
enum ota_role { OTA_ROLE_ROOT, OTA_ROLE_TARGETS, OTA_ROLE_SNAPSHOT, OTA_ROLE_TIMESTAMP };
extern const char *const ota_role_names[4];
int ota_role_from_name(const char *name); /* -1 if unknown */

/** Create a new workspace at dir (must not hold a repository yet). */
ota_err ota_repo_init(const char *dir, const struct ota_repo_init_opts *o,
                      const struct ota_passphrase_src *pass, struct ota_diag *d) OTA_MUST_CHECK;

/** Open and lock a workspace; all its metadata is loaded and its signatures checked against
 * its own root (expiry is not checked here: refresh must work on expired metadata). */
ota_err ota_repo_open(const char *dir, const struct ota_passphrase_src *pass,
                      struct ota_repo **out, struct ota_diag *d) OTA_MUST_CHECK;
void    ota_repo_close(struct ota_repo *r); /* accepts NULL */

/** Extra key files to search for signing keys (e.g. root keys kept offline). */
ota_err ota_repo_add_key_file(struct ota_repo *r, const char *path,
                              struct ota_diag *d) OTA_MUST_CHECK;

/** Signer callback for ota_bundle_pack using the repository's targets keys. */
ota_err ota_repo_bundle_signer(void *repo, const void *msg, size_t len, json_t *sigs,
                               struct ota_diag *d);
/** Verifier callback for bundle manifests using the repository's targets role. */
ota_err ota_repo_bundle_verifier(void *repo, const void *msg, size_t len, const json_t *sigs,
                                 struct ota_diag *d);

struct ota_release_opts {
    const char *channel;   /* required */
    int         rollout;   /* 0..100 */
    int         breaking;  /* model change accepted without reads_models */
    int         mandatory; /* offered as mandatory whatever the bundle says */
};

/** Publish a bundle file on a channel (see ota_repo_bridge_check). */
ota_err ota_repo_release(struct ota_repo *r, const char *bundle, const struct ota_release_opts *o,
                         struct ota_diag *d) OTA_MUST_CHECK;
/** Offer app's version (NULL = newest on from) on channel to, with a rollout percent. */
ota_err ota_repo_promote(struct ota_repo *r, const char *app, const char *from, const char *to,
                         const char *version, int rollout, int breaking,
                         struct ota_diag *d) OTA_MUST_CHECK;
/** Change the rollout percent of app's version (NULL = newest on channel) on channel. */
ota_err ota_repo_rollout(struct ota_repo *r, const char *app, const char *channel,
                         const char *version, int rollout, struct ota_diag *d) OTA_MUST_CHECK;
/** Withdraw a release: devices never install it again. */
ota_err ota_repo_yank(struct ota_repo *r, const char *app, const char *version,
                      struct ota_diag *d) OTA_MUST_CHECK;
/** Server-side rollback: publish the content of version old_version again as new_version on
 * channel, so no device ever sees a version go down. */
ota_err ota_repo_republish(struct ota_repo *r, const char *app, const char *old_version,
                           const char *new_version, const char *channel, int rollout,
                           struct ota_diag *d) OTA_MUST_CHECK;
/** Re-sign timestamp (and snapshot when with_snapshot) with fresh expiries. */
ota_err ota_repo_refresh(struct ota_repo *r, int with_snapshot, struct ota_diag *d) OTA_MUST_CHECK;
/** Replace role's keys with new_keys (public halves of key files) and threshold through a new
 * root version signed by the old and the new root thresholds. nnew = 0 renews root only. */
ota_err ota_repo_rotate(struct ota_repo *r, int role, const char *const *new_key_files,
                        size_t nnew, unsigned threshold, struct ota_diag *d) OTA_MUST_CHECK;

/** Verify the whole served tree as a device would, from 1.root.json: the root chain (each
 * version signed by the previous threshold and its own), every role's signatures and
 * expiry, snapshot/timestamp hashes and versions, and every bundle (file length and
 * SHA-256, manifest signature, release equal to the target's metadata). report receives one
 * JSON object per check {"check","ok","detail"}; returns the first failure's code. */
ota_err ota_repo_verify(const char *dir, json_t *report, struct ota_diag *d) OTA_MUST_CHECK;

/** The served tree, for verify and messages. */
const char *ota_repo_public_dir(const struct ota_repo *r);

/** JSON summary: {"root":{version,expires},...,"releases":[...],"channels":{...}}. */
json_t *ota_repo_summary(const struct ota_repo *r);

/** The targets metadata "targets" object (borrowed). */
const json_t *ota_repo_targets(const struct ota_repo *r);

/** Time the command started (one clock for every expiry computed in it). */
int64_t ota_repo_now(const struct ota_repo *r);

#endif
