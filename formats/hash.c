/* SHA-256 via OpenSSL EVP. See ota/hash.h. */
#include "ota/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <unistd.h>

#include "ota/fsutil.h"

ota_err
ota_sha256_init(struct ota_sha256 *h)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();

    h->ctx = NULL;
    if (c == NULL)
        return OTA_E_NOMEM;
    if (EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c);
        return OTA_E_CRYPTO;
    }
    h->ctx = c;
    return OTA_OK;
}

void
ota_sha256_update(struct ota_sha256 *h, const void *buf, size_t len)
{
    if (len > 0)
        EVP_DigestUpdate(h->ctx, buf, len);
}

void
ota_sha256_final(struct ota_sha256 *h, unsigned char out[OTA_SHA256_LEN])
{
    unsigned int n = OTA_SHA256_LEN;

    EVP_DigestFinal_ex(h->ctx, out, &n);
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

void
ota_sha256_free(struct ota_sha256 *h)
{
    if (h != NULL && h->ctx != NULL) {
        EVP_MD_CTX_free(h->ctx);
        h->ctx = NULL;
    }
}

ota_err
ota_sha256_buf(const void *buf, size_t len, unsigned char out[OTA_SHA256_LEN])
{
    unsigned int n = OTA_SHA256_LEN;

    if (EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) != 1)
        return OTA_E_CRYPTO;
    return OTA_OK;
}

ota_err
ota_sha256_hex(const void *buf, size_t len, char out[OTA_SHA256_HEX])
{
    unsigned char md[OTA_SHA256_LEN];
    ota_err       rc = ota_sha256_buf(buf, len, md);

    if (rc == OTA_OK)
        ota_hex_encode(md, sizeof md, out);
    return rc;
}

ota_err
ota_sha256_file(const char *path, unsigned char out[OTA_SHA256_LEN], unsigned long long *len,
                struct ota_diag *d)
{
    struct ota_sha256  h;
    unsigned char     *buf;
    unsigned long long total = 0;
    ota_err            rc;
    int                fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ota_diag_sys(d, errno == ENOENT ? OTA_E_NOT_FOUND : OTA_E_IO, errno,
                            "cannot open '%s'", path);
    buf = malloc(1 << 17);
    if (buf == NULL) {
        close(fd);
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    }
    rc = ota_sha256_init(&h);
    if (rc != OTA_OK) {
        ota_diag_set(d, rc, "cannot start sha256");
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf, 1 << 17);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot read '%s'", path);
            ota_sha256_free(&h);
            goto out;
        }
        if (r == 0)
            break;
        ota_sha256_update(&h, buf, (size_t)r);
        total += (unsigned long long)r;
    }
    ota_sha256_final(&h, out);
    if (len != NULL)
        *len = total;
out:
    free(buf);
    close(fd);
    return rc;
}
