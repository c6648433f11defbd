/* Shared by the libFuzzer harnesses in tools/fuzz/: the entry point's prototype and checks
 * that turn a broken property into a crash libFuzzer records (abort() with a reason). */
#ifndef OTA_FUZZ_H
#define OTA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ota/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property every input must keep; a failure is a finding, not an error to handle. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Invariant 4 of DESIGN.md: a rejected input produces a message naming what was wrong. The
 * diag is zeroed before each call, so an empty or unterminated message means none was set. */
static inline void
fuzz_check_diag(ota_err rc, const struct ota_diag *d)
{
    /* OTA_FUZZ_DEBUG=1 prints every refusal: to see why a seed stops early. */
    static int debug = -1;

    if (debug < 0)
        debug = getenv("OTA_FUZZ_DEBUG") != NULL;
    if (debug && rc != OTA_OK)
        fprintf(stderr, "%s: %.*s\n", ota_err_name(rc), (int)sizeof(d->msg), d->msg);
    FUZZ_CHECK(rc >= 0 && rc <= OTA_ERR_MAX);
    if (rc == OTA_OK)
        return;
    FUZZ_CHECK(memchr(d->msg, '\0', sizeof(d->msg)) != NULL);
    FUZZ_CHECK(d->msg[0] != '\0');
}

/* The input as a NUL-terminated string (inputs with an inner NUL are cut there); malloc'd. */
static inline char *
fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (s == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
