/* Public keys, key ids, signature and threshold verification: the verify half of keys/, the
 * only part a device carries. The signing half (private keys) is keys/ota/signer.h.
 *
 * Keys use TUF's key object form: {"keytype":"ed25519","scheme":"ed25519",
 * "keyval":{"public":"<64 hex>"}}; a key id is the lowercase hex SHA-256 of that object in
 * canonical JSON. Signatures are {"keyid":"<hex>","sig":"<hex>"} over the canonical bytes of
 * the "signed" member of a document. */
#ifndef OTA_KEYS_H
#define OTA_KEYS_H

#include <jansson.h>
#include <stddef.h>

#include "ota/err.h"

#define OTA_KEYID_HEX 65   /* 64 hex digits + NUL */
#define OTA_ED25519_PK 32
#define OTA_ED25519_SIG 64
#define OTA_SIG_HEX_MAX 1024 /* longest accepted hex signature (RSA-4096 = 1024 hex) */

enum ota_keytype {
    OTA_KEY_ED25519 = 1,
};

struct ota_pubkey {
    enum ota_keytype type;
    char             keyid[OTA_KEYID_HEX];
    unsigned char    ed25519[OTA_ED25519_PK];
};

/** Parse a TUF key object. The key id is computed from obj; if expect_keyid is not NULL the
 * computed id must equal it (TUF: a key listed under the wrong id is not trusted).
 * OTA_E_FORMAT for a malformed object or an unsupported keytype/scheme, OTA_E_KEY_UNKNOWN
 * when the id does not match. */
ota_err ota_pubkey_from_json(const json_t *obj, const char *expect_keyid,
                             struct ota_pubkey *out, struct ota_diag *d) OTA_MUST_CHECK;

/** New reference to the TUF key object of k; NULL on out of memory. */
json_t *ota_pubkey_to_json(const struct ota_pubkey *k);

/** Build a key from raw ed25519 public bytes, computing its key id. */
ota_err ota_pubkey_from_ed25519(const unsigned char pk[OTA_ED25519_PK], struct ota_pubkey *out,
                                struct ota_diag *d) OTA_MUST_CHECK;

/** Key id (hex SHA-256 of the canonical key object). */
ota_err ota_keyid_of(const json_t *keyobj, char out[OTA_KEYID_HEX],
                     struct ota_diag *d) OTA_MUST_CHECK;

/** Verify one hex signature over msg. OTA_E_SIG if it does not verify, OTA_E_FORMAT if
 * sig_hex is not a well-formed signature for this key type. */
ota_err ota_sig_verify(const struct ota_pubkey *k, const void *msg, size_t len,
                       const char *sig_hex, struct ota_diag *d) OTA_MUST_CHECK;

/** The keys a role trusts and how many must sign. keys[] is borrowed. */
struct ota_role_keys {
    const char              *role;      /* for messages: "root", "targets", ... */
    const struct ota_pubkey *keys;
    size_t                   nkeys;
    unsigned                 threshold; /* >= 1 */
};

/** Count the distinct keys of role whose signature in the TUF signatures array verifies
 * over msg. Signatures by keys outside the role are ignored; a key that signs twice counts
 * once. *valid (if not NULL) receives the count. OTA_OK when count >= threshold, else
 * OTA_E_THRESHOLD ("targets: 1 of 2 required signatures"); OTA_E_FORMAT for a malformed
 * signatures array (not an array, over 256 entries, entries not {keyid, sig} strings). */
ota_err ota_threshold_verify(const struct ota_role_keys *role, const json_t *signatures,
                             const void *msg, size_t len, unsigned *valid,
                             struct ota_diag *d) OTA_MUST_CHECK;

#endif
