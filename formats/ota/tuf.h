/* TUF metadata (specification 1.0.x): strict, bounded parsing of root, timestamp, snapshot and
 * targets documents; signature thresholds over the canonical bytes of "signed"; expiry; the
 * metafile checks that bind one document to the next; delegation path patterns; and the naming
 * rules that keep role names and target paths safe where they become file names.
 *
 * Shared by the publisher (which writes and checks its repository) and the agent's client
 * (agent/ota/tufclient.h). Parsing never trusts: a parsed document is only a well-formed
 * candidate until ota_tuf_md_verify() has checked it against the keys of its role. The format,
 * its limits and a test vector are in formats/tuf.md. */
#ifndef OTA_TUF_H
#define OTA_TUF_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ota/err.h"
#include "ota/hash.h"
#include "ota/keys.h"

#define OTA_TUF_SPEC_VERSION "1.0.31" /* what we write; we read any 1.x */

/* Bounds on everything a document may contain (OTA_E_TOO_BIG beyond). */
#define OTA_TUF_MAX_KEYS 256       /* keys in root or in one delegations object */
#define OTA_TUF_MAX_ROLES 256      /* delegated roles in one delegations object */
#define OTA_TUF_MAX_KEYIDS 256     /* key ids of one role */
#define OTA_TUF_MAX_PATHS 256      /* paths or path_hash_prefixes of one delegated role */
#define OTA_TUF_MAX_TARGETS 100000 /* targets of one targets document */
#define OTA_TUF_MAX_META 100000    /* entries of a snapshot's meta */
#define OTA_TUF_MAX_SIGNATURES 256
#define OTA_TUF_PATH_MAX 1024    /* bytes of a target path or path pattern */
#define OTA_TUF_FILENAME_MAX 256 /* buffer for a role's file name, NUL included */

/** Top-level roles; also the index of a role in a root document. */
enum ota_tuf_type {
    OTA_TUF_ROOT = 0,
    OTA_TUF_TIMESTAMP = 1,
    OTA_TUF_SNAPSHOT = 2,
    OTA_TUF_TARGETS = 3,
};
#define OTA_TUF_NTYPES 4

/** One entry of METAFILES (timestamp's "snapshot.json", snapshot's "<role>.json"). */
struct ota_tuf_metafile {
    const char   *name;       /* "targets.json", ...: borrowed from the document */
    long long     version;    /* >= 1 */
    long long     length;     /* bytes, or -1 when the document gives none */
    int           has_sha256; /* 0 when the document gives no hashes */
    unsigned char sha256[OTA_SHA256_LEN];
};

/** One target of a targets document. */
struct ota_tuf_targetinfo {
    const char   *path; /* borrowed; passed ota_tuf_target_path_check */
    uint64_t      length;
    unsigned char sha256[OTA_SHA256_LEN];
    const json_t *custom; /* borrowed; NULL if absent */
};

/** One delegated role of a targets document, in the document's order. */
struct ota_tuf_delegation {
    const char          *name; /* borrowed; passed ota_tuf_role_name_check */
    struct ota_role_keys keys; /* role = name; keys borrowed from the document */
    int                  terminating;
    const json_t        *paths;         /* array of PATHPATTERN strings, or NULL */
    const json_t        *hash_prefixes; /* array of hex prefixes, or NULL (exactly one is set) */
};

struct ota_tuf_md; /* a parsed document; opaque */

/** Parse buf[0..len) (at most max bytes) as a TUF document of the given type and validate its
 * whole structure: envelope {"signed", "signatures"}, "_type", "spec_version" of major 1,
 * "version" >= 1, "expires", and the members of the type (see formats/tuf.md). The canonical
 * bytes of "signed" are computed for ota_tuf_md_verify. Signatures are NOT checked.
 * *out is owned by the caller (ota_tuf_md_free).
 * Returns OTA_E_TOO_BIG (input or a count over its bound), OTA_E_FORMAT (malformed, wrong
 * type or spec version), OTA_E_KEY_UNKNOWN (a key listed under an id that is not its own),
 * OTA_E_UNSAFE_PATH (a target path or delegated role name that is not safe), OTA_E_NOMEM. */
ota_err ota_tuf_parse(const void *buf, size_t len, size_t max, enum ota_tuf_type type,
                      struct ota_tuf_md **out, struct ota_diag *d) OTA_MUST_CHECK;

/** Free a parsed document and everything borrowed from it; accepts NULL. */
void ota_tuf_md_free(struct ota_tuf_md *md);

/** Check that a threshold of role's keys signed md. OTA_E_THRESHOLD, OTA_E_FORMAT. */
ota_err ota_tuf_md_verify(const struct ota_tuf_md *md, const struct ota_role_keys *role,
                          struct ota_diag *d) OTA_MUST_CHECK;

/** OTA_E_EXPIRED when now is at or past md's expiry ("'timestamp' expired at ..."). */
ota_err ota_tuf_md_check_expiry(const struct ota_tuf_md *md, int64_t now,
                                struct ota_diag *d) OTA_MUST_CHECK;

/** Type, "version" and "expires" (seconds since the epoch) of a parsed document. */
enum ota_tuf_type ota_tuf_md_type(const struct ota_tuf_md *md);
long long         ota_tuf_md_version(const struct ota_tuf_md *md);
int64_t           ota_tuf_md_expires(const struct ota_tuf_md *md);
/** The "signed" object (borrowed), for readers of members this module does not interpret. */
const json_t *ota_tuf_md_signed(const struct ota_tuf_md *md);

/** "root", "timestamp", "snapshot" or "targets". */
const char *ota_tuf_type_name(enum ota_tuf_type t);

/* Root. */

/** Keys and threshold of a top-level role in a root document (borrowed from root). Key types
 * other than ed25519 are kept with their id so that they are recognised, but they never
 * verify. NULL if root is not a root document. */
const struct ota_role_keys *ota_tuf_root_role(const struct ota_tuf_md *root,
                                              enum ota_tuf_type        role);

/** consistent_snapshot of a root document (absent = 0). */
int ota_tuf_root_consistent_snapshot(const struct ota_tuf_md *root);

/** Non-zero when the two roots give role a different key set or threshold (a rotation). */
int ota_tuf_root_role_changed(const struct ota_tuf_md *a, const struct ota_tuf_md *b,
                              enum ota_tuf_type role);

/* Timestamp and snapshot. */

/** The "snapshot.json" entry of a timestamp document (borrowed); NULL for other types. */
const struct ota_tuf_metafile *ota_tuf_timestamp_snapshot(const struct ota_tuf_md *ts);

/** Entry name ("targets.json", "<role>.json") of a snapshot document (borrowed); NULL when the
 * snapshot does not list it or md is not a snapshot. */
const struct ota_tuf_metafile *ota_tuf_snapshot_meta(const struct ota_tuf_md *snap,
                                                     const char              *name);

/** Snapshot rollback rule (spec 5.5.5): every entry of old must be listed in new with a
 * version not lower. OTA_E_ROLLBACK naming the first entry that breaks it. */
ota_err ota_tuf_snapshot_check_rollback(const struct ota_tuf_md *old_snap,
                                        const struct ota_tuf_md *new_snap,
                                        struct ota_diag         *d) OTA_MUST_CHECK;

/** Check fetched bytes against the metafile that describes them: OTA_E_LENGTH when the length
 * differs, OTA_E_DIGEST when the SHA-256 differs (unchecked parts are those not given). */
ota_err ota_tuf_metafile_check(const struct ota_tuf_metafile *mf, const void *buf, size_t len,
                               struct ota_diag *d) OTA_MUST_CHECK;

/* Targets. */

/** Look a target path up in a targets document. OTA_E_NOT_FOUND if not listed. out borrows
 * from md. */
ota_err ota_tuf_targets_get(const struct ota_tuf_md *md, const char *path,
                            struct ota_tuf_targetinfo *out, struct ota_diag *d) OTA_MUST_CHECK;

/** Call cb for each target (document order); cb returns non-zero to stop. Returns the number
 * of targets visited. */
size_t ota_tuf_targets_foreach(const struct ota_tuf_md *md,
                               int (*cb)(void *ctx, const struct ota_tuf_targetinfo *t), void *ctx);

/** Delegated roles of a targets document in order (borrowed); *n receives the count (0 when
 * there are no delegations). */
const struct ota_tuf_delegation *ota_tuf_targets_delegations(const struct ota_tuf_md *md,
                                                             size_t                  *n);

/** Non-zero when the delegation is trusted for path: one of its paths patterns matches
 * (ota_tuf_path_match) or the hex SHA-256 of path starts with one of its hash prefixes. */
int ota_tuf_delegation_matches(const struct ota_tuf_delegation *dl, const char *path);

/** TUF PATHPATTERN match: shell wildcards per '/'-separated part ('*' any run, '?' one
 * character, [set], [!set], ranges), a separator never matched by a wildcard, so pattern and
 * path must have the same number of parts (Python fnmatch applied part by part, as the
 * reference client does). Returns non-zero on a match. */
int ota_tuf_path_match(const char *pattern, const char *path);

/* Names. */

/** A target path is safe: 1..OTA_TUF_PATH_MAX bytes of '/'-separated parts, none empty, "." or
 * "..", no leading '/', no backslash, no control character. OTA_E_UNSAFE_PATH otherwise. */
ota_err ota_tuf_target_path_check(const char *path, struct ota_diag *d) OTA_MUST_CHECK;

/** A delegated role name is usable: non-empty, no control character, not a top-level role
 * name (its file would replace trusted top-level metadata), and short enough that its file
 * name (ota_tuf_role_filename) fits in 255 bytes. Any other character is allowed: the file
 * name is percent-encoded, so "/" or ".." cannot leave the directory. OTA_E_UNSAFE_PATH. */
ota_err ota_tuf_role_name_check(const char *name, struct ota_diag *d) OTA_MUST_CHECK;

/** Percent-encode s as Python's urllib.parse.quote(s, safe) does: ASCII letters, digits and
 * "_.-~" and the characters of safe are kept, every other byte becomes %XX (upper case).
 * OTA_E_TOO_BIG when the result and its NUL do not fit in cap. */
ota_err ota_tuf_quote(const char *s, const char *safe, char *out, size_t cap,
                      struct ota_diag *d) OTA_MUST_CHECK;

/** File name of a role's metadata: quote(role, "") + ".json" ("a/b" -> "a%2Fb.json").
 * out has OTA_TUF_FILENAME_MAX bytes. OTA_E_UNSAFE_PATH if role fails
 * ota_tuf_role_name_check (top-level names are allowed here). */
ota_err ota_tuf_role_filename(const char *role, char out[OTA_TUF_FILENAME_MAX],
                              struct ota_diag *d) OTA_MUST_CHECK;

#endif
