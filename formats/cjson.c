/* Canonical JSON encoder and strict parser. See ota/cjson.h and formats/canonical-json.md. */
#include "ota/cjson.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sbuf {
    char  *p;
    size_t len, cap, max;
    ota_err rc;
};

static void
sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->rc != OTA_OK)
        return;
    if (n > b->max - b->len) {
        b->rc = OTA_E_TOO_BIG;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        char  *np;
        while (nc < b->len + n + 1)
            nc *= 2;
        np = realloc(b->p, nc);
        if (np == NULL) {
            b->rc = OTA_E_NOMEM;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s, size_t n)
{
    size_t i, start = 0;

    sb_put(b, "\"", 1);
    for (i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            sb_put(b, s + start, i - start);
            sb_put(b, "\\", 1);
            start = i; /* the quote or backslash itself follows */
        }
    }
    sb_put(b, s + start, n - start);
    sb_put(b, "\"", 1);
}

static int
key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
encode(struct sbuf *b, const json_t *v, int depth)
{
    if (b->rc != OTA_OK)
        return;
    if (depth > 64) {
        b->rc = OTA_E_TOO_BIG;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t       n = json_object_size(v), i = 0;
        const char **keys;
        const char  *k;
        json_t      *val;
        if (n == 0) {
            sb_put(b, "{}", 2);
            return;
        }
        keys = malloc(n * sizeof *keys);
        if (keys == NULL) {
            b->rc = OTA_E_NOMEM;
            return;
        }
        json_object_foreach((json_t *)v, k, val) keys[i++] = k;
        /* strcmp compares as unsigned char: the byte order TUF's encoders use. */
        qsort(keys, n, sizeof *keys, key_cmp);
        sb_put(b, "{", 1);
        for (i = 0; i < n; i++) {
            if (i > 0)
                sb_put(b, ",", 1);
            sb_str(b, keys[i], strlen(keys[i]));
            sb_put(b, ":", 1);
            encode(b, json_object_get(v, keys[i]), depth + 1);
        }
        sb_put(b, "}", 1);
        free(keys);
        return;
    }
    case JSON_ARRAY: {
        size_t i;
        sb_put(b, "[", 1);
        for (i = 0; i < json_array_size(v); i++) {
            if (i > 0)
                sb_put(b, ",", 1);
            encode(b, json_array_get(v, i), depth + 1);
        }
        sb_put(b, "]", 1);
        return;
    }
    case JSON_STRING:
        sb_str(b, json_string_value(v), json_string_length(v));
        return;
    case JSON_INTEGER: {
        char num[32];
        int  n = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        sb_put(b, num, (size_t)n);
        return;
    }
    case JSON_TRUE:
        sb_put(b, "true", 4);
        return;
    case JSON_FALSE:
        sb_put(b, "false", 5);
        return;
    case JSON_NULL:
        sb_put(b, "null", 4);
        return;
    case JSON_REAL:
    default:
        b->rc = OTA_E_FORMAT;
        return;
    }
}

ota_err
ota_cjson_encode(const json_t *v, size_t max, char **out, size_t *len, struct ota_diag *d)
{
    struct sbuf b = { NULL, 0, 0, max, OTA_OK };

    encode(&b, v, 0);
    if (b.rc == OTA_OK && b.p == NULL)
        b.rc = OTA_E_NOMEM;
    if (b.rc != OTA_OK) {
        free(b.p);
        if (b.rc == OTA_E_FORMAT)
            return ota_diag_set(d, b.rc, "canonical JSON allows no real numbers");
        if (b.rc == OTA_E_TOO_BIG)
            return ota_diag_set(d, b.rc, "canonical JSON larger than %zu bytes or too deep", max);
        return ota_diag_set(d, b.rc, "out of memory encoding JSON");
    }
    *out = b.p;
    *len = b.len;
    return OTA_OK;
}

static int
has_real(const json_t *v)
{
    size_t      i;
    const char *k;
    json_t     *m;

    switch (json_typeof(v)) {
    case JSON_REAL:
        return 1;
    case JSON_ARRAY:
        for (i = 0; i < json_array_size(v); i++)
            if (has_real(json_array_get(v, i)))
                return 1;
        return 0;
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, k, m) if (has_real(m)) return 1;
        return 0;
    default:
        return 0;
    }
}

ota_err
ota_cjson_parse(const void *buf, size_t len, size_t max, json_t **out, struct ota_diag *d)
{
    json_error_t err;
    json_t      *v;

    if (len > max)
        return ota_diag_set(d, OTA_E_TOO_BIG, "JSON document of %zu bytes is over the %zu-byte cap",
                            len, max);
    v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (v == NULL)
        return ota_diag_set(d, OTA_E_FORMAT, "bad JSON at line %d column %d: %s", err.line,
                            err.column, err.text);
    if (has_real(v)) {
        json_decref(v);
        return ota_diag_set(d, OTA_E_FORMAT, "bad JSON: real numbers are not allowed");
    }
    *out = v;
    return OTA_OK;
}

ota_err
ota_json_parse_data(const void *buf, size_t len, size_t max, json_t **out, struct ota_diag *d)
{
    json_error_t err;
    json_t      *v;

    if (len > max)
        return ota_diag_set(d, OTA_E_TOO_BIG, "JSON document of %zu bytes is over the %zu-byte cap",
                            len, max);
    v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (v == NULL)
        return ota_diag_set(d, OTA_E_FORMAT, "bad JSON at line %d column %d: %s", err.line,
                            err.column, err.text);
    *out = v;
    return OTA_OK;
}

ota_err
ota_json_get_str(const json_t *obj, const char *key, size_t maxlen, int nonempty,
                 const char **out, struct ota_diag *d)
{
    json_t *v = json_object_get(obj, key);

    if (!json_is_string(v))
        return ota_diag_set(d, OTA_E_FORMAT, "'%s' must be a string", key);
    if (json_string_length(v) > maxlen)
        return ota_diag_set(d, OTA_E_FORMAT, "'%s' is longer than %zu bytes", key, maxlen);
    if (nonempty && json_string_length(v) == 0)
        return ota_diag_set(d, OTA_E_FORMAT, "'%s' must not be empty", key);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return ota_diag_set(d, OTA_E_FORMAT, "'%s' contains a NUL character", key);
    *out = json_string_value(v);
    return OTA_OK;
}

ota_err
ota_json_get_int(const json_t *obj, const char *key, long long min, long long max,
                 long long *out, struct ota_diag *d)
{
    json_t   *v = json_object_get(obj, key);
    long long x;

    if (!json_is_integer(v))
        return ota_diag_set(d, OTA_E_FORMAT, "'%s' must be an integer", key);
    x = (long long)json_integer_value(v);
    if (x < min || x > max)
        return ota_diag_set(d, OTA_E_FORMAT, "'%s' is %lld, outside %lld..%lld", key, x, min, max);
    *out = x;
    return OTA_OK;
}

ota_err
ota_json_get_bool(const json_t *obj, const char *key, int *out, struct ota_diag *d)
{
    json_t *v = json_object_get(obj, key);

    if (!json_is_boolean(v))
        return ota_diag_set(d, OTA_E_FORMAT, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return OTA_OK;
}

ota_err
ota_json_get_obj(const json_t *obj, const char *key, json_t **out, struct ota_diag *d)
{
    json_t *v = json_object_get(obj, key);

    if (!json_is_object(v))
        return ota_diag_set(d, OTA_E_FORMAT, "'%s' must be an object", key);
    *out = v;
    return OTA_OK;
}

ota_err
ota_json_get_arr(const json_t *obj, const char *key, size_t maxn, json_t **out,
                 struct ota_diag *d)
{
    json_t *v = json_object_get(obj, key);

    if (!json_is_array(v))
        return ota_diag_set(d, OTA_E_FORMAT, "'%s' must be an array", key);
    if (json_array_size(v) > maxn)
        return ota_diag_set(d, OTA_E_TOO_BIG, "'%s' has more than %zu elements", key, maxn);
    *out = v;
    return OTA_OK;
}

ota_err
ota_json_only_keys(const json_t *obj, const char *const *allowed, struct ota_diag *d)
{
    const char *k;
    json_t     *v;

    json_object_foreach((json_t *)obj, k, v) {
        const char *const *a;
        for (a = allowed; *a != NULL; a++)
            if (strcmp(*a, k) == 0)
                break;
        if (*a == NULL)
            return ota_diag_set(d, OTA_E_FORMAT, "unknown key '%.64s'", k);
    }
    return OTA_OK;
}
