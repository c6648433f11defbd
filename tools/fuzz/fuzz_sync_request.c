/* Fuzz the reference sync server's request checks (tools/ota-syncd/protocol.c).
 *
 * Input: the {model} of the URL, a newline, then the request body. Properties: the checks never
 * crash; a refusal is OTA_E_FORMAT or OTA_E_TOO_BIG with a message and returns nothing; an
 * accepted body keeps every rule of the protocol, re-checked here independently (so a change
 * that loosened a check would show), and *changes is the body's own "changes" array. */
#include <jansson.h>

#include "fuzz.h"
#include "ota-syncd/protocol.h"

static int
str_ok(const json_t *v, size_t max)
{
    size_t n;

    if (!json_is_string(v))
        return 0;
    n = json_string_length(v);
    return n >= 1 && n <= max && strlen(json_string_value(v)) == n;
}

static void
check_change(const json_t *ch)
{
    const char *op, *k;
    json_t     *v;

    FUZZ_CHECK(json_is_object(ch) && json_object_size(ch) == 6);
    json_object_foreach((json_t *)ch, k, v)
    {
        FUZZ_CHECK(strcmp(k, "id") == 0 || strcmp(k, "seq") == 0 || strcmp(k, "entity") == 0 ||
                   strcmp(k, "op") == 0 || strcmp(k, "payload") == 0 ||
                   strcmp(k, "created_at") == 0);
    }
    FUZZ_CHECK(str_ok(json_object_get(ch, "id"), SYNCD_ID_MAX));
    FUZZ_CHECK(json_is_integer(json_object_get(ch, "seq")) &&
               json_integer_value(json_object_get(ch, "seq")) >= 1);
    FUZZ_CHECK(str_ok(json_object_get(ch, "entity"), SYNCD_NAME_MAX));
    FUZZ_CHECK(str_ok(json_object_get(ch, "op"), 16));
    op = json_string_value(json_object_get(ch, "op"));
    FUZZ_CHECK(strcmp(op, "insert") == 0 || strcmp(op, "update") == 0 || strcmp(op, "delete") == 0);
    FUZZ_CHECK(json_object_get(ch, "payload") != NULL);
    FUZZ_CHECK(json_is_integer(json_object_get(ch, "created_at")));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t  *nl = memchr(data, '\n', size);
    char           *model;
    const uint8_t  *body;
    size_t          blen, i;
    json_t         *v = NULL, *changes = NULL, *ch;
    struct ota_diag d;
    ota_err         rc;

    if (nl == NULL)
        return 0;
    model = fuzz_strndup(data, (size_t)(nl - data));
    body = nl + 1;
    blen = size - (size_t)(nl - data) - 1;

    FUZZ_CHECK(syncd_model_valid(model) ==
               (model[0] != '\0' && strlen(model) <= SYNCD_NAME_MAX && !strchr(model, '/')));
    memset(&d, 0, sizeof(d));
    rc = syncd_request_parse(model, body, blen, &v, &changes, &d);
    fuzz_check_diag(rc, &d);
    if (rc != OTA_OK) {
        FUZZ_CHECK(rc == OTA_E_FORMAT || rc == OTA_E_TOO_BIG);
        FUZZ_CHECK(v == NULL && changes == NULL);
        goto out;
    }
    FUZZ_CHECK(json_is_object(v) && json_object_size(v) == 2);
    FUZZ_CHECK(str_ok(json_object_get(v, "model"), SYNCD_NAME_MAX));
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(v, "model")), model) == 0);
    FUZZ_CHECK(changes == json_object_get(v, "changes") && json_is_array(changes));
    FUZZ_CHECK(json_array_size(changes) <= SYNCD_CHANGES_MAX);
    json_array_foreach(changes, i, ch) check_change(ch);
out:
    json_decref(v);
    free(model);
    return 0;
}
