/* Key file internals, private to keys/ and its tests (not installed). The public contract is
 * ota/signer.h; the file format is formats/keyfile.md.
 *
 * These functions take the salt and nonce explicitly so that the format has byte-exact test
 * vectors; ota_seckey_save() draws both from the system's random source. */
#ifndef OTA_KEYFILE_H
#define OTA_KEYFILE_H

#include <stddef.h>

#include "ota/err.h"
#include "ota/signer.h"

#define OTA_KEYFILE_MAX (64u << 10) /* largest key file read */
#define OTA_KEYFILE_TEXT_MAX 1024   /* longest key file written (about 560 bytes) */
#define OTA_PASSPHRASE_MAX 1023     /* bytes, without the NUL */

#define OTA_KEYFILE_SALT 16  /* crypto_pwhash_SALTBYTES */
#define OTA_KEYFILE_NONCE 24 /* crypto_aead_xchacha20poly1305_ietf_NPUBBYTES */
#define OTA_KEYFILE_SEED 32
#define OTA_KEYFILE_CT 48 /* seed + 16-byte Poly1305 tag */

/* Argon2id limits accepted when a file is read: the defaults written are opslimit 2 and
 * memlimit 64 MiB (libsodium's INTERACTIVE); a file may ask for more, up to these caps, so a
 * hostile file cannot make the publisher allocate gigabytes or spin for minutes. */
#define OTA_KEYFILE_OPS_MIN 1ull
#define OTA_KEYFILE_OPS_MAX 16ull
#define OTA_KEYFILE_MEM_MIN 8192ull
#define OTA_KEYFILE_MEM_MAX (256ull << 20)

/** Encrypt a 32-byte seed: key = Argon2id(passphrase, salt, opslimit, memlimit), then
 * XChaCha20-Poly1305-IETF(seed, nonce, associated data = the 32-byte public key). ct receives
 * 48 bytes. OTA_E_INVALID for limits outside the caps or an empty or over-long passphrase,
 * OTA_E_CRYPTO if the derivation fails (out of memory). */
ota_err ota_keyfile_seal(const unsigned char seed[OTA_KEYFILE_SEED], const unsigned char pk[32],
                         const char *passphrase, unsigned long long opslimit, size_t memlimit,
                         const unsigned char salt[OTA_KEYFILE_SALT],
                         const unsigned char nonce[OTA_KEYFILE_NONCE],
                         unsigned char ct[OTA_KEYFILE_CT], struct ota_diag *d) OTA_MUST_CHECK;

/** Write the key file text of k into buf (cap bytes, at least OTA_KEYFILE_TEXT_MAX; the
 * caller should give guarded memory since an unencrypted file holds the seed). passphrase
 * NULL or "" gives an unencrypted file and salt, nonce, opslimit and memlimit are ignored.
 * *len receives the length without the terminating NUL. */
ota_err ota_keyfile_format(const struct ota_seckey *k, const char *passphrase,
                           unsigned long long opslimit, size_t memlimit,
                           const unsigned char salt[OTA_KEYFILE_SALT],
                           const unsigned char nonce[OTA_KEYFILE_NONCE], char *buf, size_t cap,
                           size_t *len, struct ota_diag *d) OTA_MUST_CHECK;

/** Forget the passphrase remembered from a file descriptor (the next ota_passphrase_get with
 * an fd source reads it again). */
void ota_passphrase_forget(void);

#endif
