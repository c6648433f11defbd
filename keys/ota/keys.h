/* Public keys, key ids, signature and threshold verification: the verify half of keys/, the
 * only part a device carries. The signing half (private keys) is keys/ota/signer.h.
 *
 * Keys use TUF's key object form: {"keytype":"ed25519","scheme":"ed25519",
 * "keyval":{"public":"<64 hex>"}}; a key id is the lowercase hex SHA-256 of that object in
 * canonical JSON. Signatures are {"keyid":"<hex>","sig":"<hex>"} over the canonical bytes of
 * the "signed" member of a document.
 *
 * ota signs with ed25519 only, but verifies the other key types that TUF tooling writes, so a
 * device can follow a repository made elsewhere: ecdsa-sha2-nistp256 and rsassa-pss-sha256,
 * whose public keys are PEM SubjectPublicKeyInfo text. formats/keys.md lists exactly what is
 * accepted. */
#ifndef OTA_KEYS_H
#define OTA_KEYS_H

#include <jansson.h>
#include <stddef.h>

#include "ota/err.h"

#define OTA_KEYID_HEX 65   /* 64 hex digits + NUL */
#define OTA_ED25519_PK 32
#define OTA_ED25519_SIG 64
#define OTA_SIG_HEX_MAX 1024    /* longest accepted hex signature (RSA-4096 = 1024 hex) */
#define OTA_PUBKEY_DER_MAX 1024 /* longest DER public key held (RSA-4096 SPKI: 550 bytes) */
#define OTA_PUBKEY_PEM_MAX 2048 /* longest accepted keyval.public PEM text, in bytes */

enum ota_keytype {
    OTA_KEY_ED25519 = 1,    /* keytype "ed25519", scheme "ed25519" (libsodium) */
    OTA_KEY_ECDSA_P256 = 2, /* keytype "ecdsa" or "ecdsa-sha2-nistp256", same scheme (libcrypto) */
    OTA_KEY_RSA_PSS = 3,    /* keytype "rsa", scheme "rsassa-pss-sha256", 2048..4096 bits */
};

/* A public key is a plain value: copy it by assignment, nothing to free. The PEM types keep
 * the DER key (to verify with) and the keyval.public text exactly as listed, so that
 * ota_pubkey_to_json gives back an object with the same key id. */
struct ota_pubkey {
    enum ota_keytype type;
    char             keyid[OTA_KEYID_HEX];
    unsigned char    ed25519[OTA_ED25519_PK]; /* OTA_KEY_ED25519 */
    unsigned char    ecdsa_legacy;            /* keytype was "ecdsa-sha2-nistp256", not "ecdsa" */
    unsigned short   der_len;                 /* PEM types: SubjectPublicKeyInfo, DER */
    unsigned char    der[OTA_PUBKEY_DER_MAX];
    char             pem[OTA_PUBKEY_PEM_MAX + 1]; /* PEM types: keyval.public, NUL-terminated */
};

/** Parse a TUF key object (ed25519, ecdsa-sha2-nistp256 or rsassa-pss-sha256; see
 * formats/keys.md). The key id is computed from obj as given (every member, in canonical
 * JSON); if expect_keyid is not NULL the computed id must equal it (TUF: a key listed under
 * the wrong id is not trusted). OTA_E_FORMAT for a malformed object, an unsupported
 * keytype/scheme, a PEM that is not one strict "PUBLIC KEY" block, a key of another type than
 * keytype says, an EC curve other than P-256 or an RSA modulus outside 2048..4096 bits;
 * OTA_E_KEY_UNKNOWN when the id does not match; OTA_E_NOMEM. *out is set only on success. */
ota_err ota_pubkey_from_json(const json_t *obj, const char *expect_keyid, struct ota_pubkey *out,
                             struct ota_diag *d) OTA_MUST_CHECK;

/** New reference to the TUF key object of k: keytype, scheme and keyval.public as they were
 * parsed (other members of the source object are not kept). NULL on out of memory. */
json_t *ota_pubkey_to_json(const struct ota_pubkey *k);

/** Build a key from raw ed25519 public bytes, computing its key id. */
ota_err ota_pubkey_from_ed25519(const unsigned char pk[OTA_ED25519_PK], struct ota_pubkey *out,
                                struct ota_diag *d) OTA_MUST_CHECK;

/** Key id (hex SHA-256 of the canonical key object). */
ota_err ota_keyid_of(const json_t *keyobj, char out[OTA_KEYID_HEX],
                     struct ota_diag *d) OTA_MUST_CHECK;

/** Verify one hex signature over msg with k (ed25519; ECDSA P-256 over SHA-256, DER
 * signature; RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt). OTA_E_SIG if it does not
 * verify; OTA_E_FORMAT if sig_hex is not a well-formed signature for this key type (not
 * hex, over OTA_SIG_HEX_MAX digits, an ed25519 signature not 64 bytes, an ECDSA signature not
 * one DER SEQUENCE of two INTEGERs, an RSA signature not as long as the modulus) or k has an
 * unknown type; OTA_E_CRYPTO/OTA_E_NOMEM if libcrypto fails. */
ota_err ota_sig_verify(const struct ota_pubkey *k, const void *msg, size_t len, const char *sig_hex,
                       struct ota_diag *d) OTA_MUST_CHECK;

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

/** Initialise libsodium once; 1 when it is usable. */
int ota_sodium_ready(void);

#endif
