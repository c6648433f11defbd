/* Fuzz the strict JSON parser and the canonical encoder.
 *
 * Properties: the parser never crashes and rejects with a message; an input over the cap is
 * OTA_E_TOO_BIG; whatever it accepts encodes canonically (or is refused only for nesting
 * depth); the canonical bytes hold no NUL; and canonical form is a fixed point: parsing the
 * canonical bytes gives an equal tree whose encoding is byte-identical. The canonical form of a
 * string with a control character is not JSON (formats/canonical-json.md), so the fixed point
 * is checked only for canonical bytes without control characters. */
#include <jansson.h>

#include "fuzz.h"
#include "ota/cjson.h"

#define CAP (256u << 10)

static int
has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20)
            return 1;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ota_diag d;
    json_t         *v = NULL, *v2 = NULL;
    char           *c1 = NULL, *c2 = NULL;
    size_t          n1 = 0, n2 = 0;
    ota_err         rc;

    if (size > 0) {
        memset(&d, 0, sizeof(d));
        rc = ota_cjson_parse(data, size, size - 1, &v, &d);
        FUZZ_CHECK(rc == OTA_E_TOO_BIG && v == NULL);
        fuzz_check_diag(rc, &d);
    }

    memset(&d, 0, sizeof(d));
    rc = ota_cjson_parse(data, size, CAP, &v, &d);
    fuzz_check_diag(rc, &d);
    if (rc != OTA_OK) {
        FUZZ_CHECK(v == NULL);
        return 0;
    }
    FUZZ_CHECK(v != NULL);

    memset(&d, 0, sizeof(d));
    rc = ota_cjson_encode(v, 4 * CAP, &c1, &n1, &d);
    fuzz_check_diag(rc, &d);
    if (rc != OTA_OK) {
        /* Deeper than the encoder's nesting limit: the only refusal of a parsed document. */
        FUZZ_CHECK(rc == OTA_E_TOO_BIG);
        goto out;
    }
    FUZZ_CHECK(c1 != NULL && c1[n1] == '\0' && strlen(c1) == n1);

    if (has_control(c1, n1))
        goto out;
    memset(&d, 0, sizeof(d));
    rc = ota_cjson_parse(c1, n1, 4 * CAP, &v2, &d);
    if (rc != OTA_OK)
        fprintf(stderr, "canonical bytes do not parse: %s\n", d.msg);
    FUZZ_CHECK(rc == OTA_OK);
    FUZZ_CHECK(json_equal(v, v2));
    rc = ota_cjson_encode(v2, 4 * CAP, &c2, &n2, &d);
    FUZZ_CHECK(rc == OTA_OK);
    FUZZ_CHECK(n2 == n1 && memcmp(c1, c2, n1) == 0);
out:
    free(c1);
    free(c2);
    json_decref(v);
    json_decref(v2);
    return 0;
}
