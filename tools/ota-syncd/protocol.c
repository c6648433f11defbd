/* Request checks of the reference sync server. See protocol.h. */
#include "protocol.h"

#include <limits.h>
#include <string.h>

#include "ota/cjson.h"

int
syncd_model_valid(const char *model)
{
    return *model != '\0' && strlen(model) <= SYNCD_NAME_MAX && strchr(model, '/') == NULL;
}

static int
op_ok(const char *op)
{
    return strcmp(op, "insert") == 0 || strcmp(op, "update") == 0 || strcmp(op, "delete") == 0;
}

/* Checks change number i of a request. */
static ota_err
check_change(const json_t *ch, size_t i, struct ota_diag *d)
{
    static const char *const keys[] = {"id", "seq", "entity", "op", "payload", "created_at", NULL};
    struct ota_diag          why;
    const char              *id, *entity, *op;
    long long                seq, created;
    ota_err                  rc;

    if (!json_is_object(ch))
        return ota_diag_set(d, OTA_E_FORMAT, "change %zu: not an object", i);
    if ((rc = ota_json_only_keys(ch, keys, &why)) != OTA_OK ||
        (rc = ota_json_get_str(ch, "id", SYNCD_ID_MAX, 1, &id, &why)) != OTA_OK ||
        (rc = ota_json_get_int(ch, "seq", 1, LLONG_MAX, &seq, &why)) != OTA_OK ||
        (rc = ota_json_get_str(ch, "entity", SYNCD_NAME_MAX, 1, &entity, &why)) != OTA_OK ||
        (rc = ota_json_get_str(ch, "op", 16, 1, &op, &why)) != OTA_OK ||
        (rc = ota_json_get_int(ch, "created_at", LLONG_MIN, LLONG_MAX, &created, &why)) != OTA_OK)
        return ota_diag_set(d, rc, "change %zu: %s", i, why.msg);
    if (!op_ok(op))
        return ota_diag_set(d, OTA_E_FORMAT, "change %zu: 'op' must be insert, update or delete",
                            i);
    if (json_object_get(ch, "payload") == NULL)
        return ota_diag_set(d, OTA_E_FORMAT, "change %zu: 'payload' is missing", i);
    return OTA_OK;
}

ota_err
syncd_request_parse(const char *url_model, const void *buf, size_t len, json_t **body,
                    json_t **changes, struct ota_diag *d)
{
    static const char *const keys[] = {"model", "changes", NULL};
    json_t                  *v = NULL, *chs = NULL, *ch;
    const char              *model;
    size_t                   i;
    ota_err                  rc;

    rc = ota_json_parse_data(buf != NULL ? buf : "", len, SYNCD_BODY_MAX, &v, d);
    if (rc != OTA_OK)
        goto out;
    if (!json_is_object(v)) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "body is not a JSON object");
        goto out;
    }
    if ((rc = ota_json_only_keys(v, keys, d)) != OTA_OK ||
        (rc = ota_json_get_str(v, "model", SYNCD_NAME_MAX, 1, &model, d)) != OTA_OK ||
        (rc = ota_json_get_arr(v, "changes", SYNCD_CHANGES_MAX, &chs, d)) != OTA_OK)
        goto out;
    if (strcmp(model, url_model) != 0) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "'model' does not match the URL");
        goto out;
    }
    json_array_foreach(chs, i, ch)
    {
        rc = check_change(ch, i, d);
        if (rc != OTA_OK)
            goto out;
    }
    *body = v;
    *changes = chs;
    v = NULL;
out:
    json_decref(v);
    return rc;
}
