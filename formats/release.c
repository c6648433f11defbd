/* Release (compatibility) metadata and version numbers. See ota/release.h and
 * formats/release.md. */
#include "ota/release.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ota/cjson.h"

ota_err
ota_version_parse(const char *s, struct ota_version *out)
{
    struct ota_version v;
    const char        *p = s;

    if (s == NULL || strlen(s) >= OTA_VERSION_STR_MAX)
        return OTA_E_FORMAT;
    memset(&v, 0, sizeof v);
    for (;;) {
        uint64_t x = 0;
        size_t   digits = 0;

        if (v.n == 4)
            return OTA_E_FORMAT; /* a fifth part */
        while (*p >= '0' && *p <= '9') {
            x = x * 10 + (uint64_t)(*p - '0');
            if (x > UINT32_MAX)
                return OTA_E_FORMAT;
            digits++;
            p++;
        }
        if (digits == 0)
            return OTA_E_FORMAT; /* empty part, sign, letter */
        if (digits > 1 && p[-(ptrdiff_t)digits] == '0')
            return OTA_E_FORMAT; /* leading zero: "01" would equal "1" as a different string */
        v.part[v.n++] = (uint32_t)x;
        if (*p == '\0')
            break;
        if (*p != '.')
            return OTA_E_FORMAT;
        p++;
    }
    *out = v;
    return OTA_OK;
}

int
ota_version_cmp(const struct ota_version *a, const struct ota_version *b)
{
    unsigned i;

    for (i = 0; i < 4; i++) {
        uint32_t x = i < a->n ? a->part[i] : 0;
        uint32_t y = i < b->n ? b->part[i] : 0;
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

void
ota_version_format(const struct ota_version *v, char *out)
{
    size_t   off = 0;
    unsigned i, n = v->n > 4 ? 4 : v->n;

    out[0] = '\0';
    for (i = 0; i < n; i++) {
        /* 4 parts of at most 10 digits and 3 dots fit in OTA_VERSION_STR_MAX. */
        int w = snprintf(out + off, OTA_VERSION_STR_MAX - off, "%s%u", i ? "." : "",
                         (unsigned)v->part[i]);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

static int
is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int
ota_id_valid(const char *s)
{
    size_t i;

    if (s == NULL || !is_alnum((unsigned char)s[0]))
        return 0;
    for (i = 0; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= OTA_ID_MAX)
            return 0;
        if (!is_alnum(c) && c != '.' && c != '_' && c != '-')
            return 0;
    }
    return 1;
}

/* Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF), no NUL. */
static int
utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        unsigned char c = *p;
        size_t        n, i;
        uint32_t      cp;

        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        for (i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += n + 1;
    }
    return 1;
}

static int
version_str_ok(const char *field, const char *s, struct ota_version *v, struct ota_diag *d)
{
    if (memchr(s, '\0', OTA_VERSION_STR_MAX) == NULL || ota_version_parse(s, v) != OTA_OK) {
        ota_diag_set(d, OTA_E_FORMAT, "%s '%.*s' is not a version like 1.4.2", field,
                     OTA_VERSION_STR_MAX, s);
        return 0;
    }
    return 1;
}

static int
id_ok(const char *field, const char *s, struct ota_diag *d)
{
    if (memchr(s, '\0', OTA_ID_MAX + 1) == NULL || !ota_id_valid(s)) {
        ota_diag_set(d, OTA_E_FORMAT, "%s '%.*s' is not a valid id", field, OTA_ID_MAX, s);
        return 0;
    }
    return 1;
}

ota_err
ota_release_validate(const struct ota_release *r, struct ota_diag *d)
{
    struct ota_version v, rmin, rmax;
    size_t             i, j;

    if (!id_ok("app", r->app, d) || !version_str_ok("version", r->version, &v, d) ||
        !id_ok("model", r->model, d) || !version_str_ok("runtime min", r->runtime_min, &rmin, d) ||
        !version_str_ok("min_agent", r->min_agent, &v, d))
        return OTA_E_FORMAT;
    if (ota_version_parse(r->version, &v) != OTA_OK || v.n != r->v.n ||
        ota_version_cmp(&v, &r->v) != 0)
        return ota_diag_set(d, OTA_E_FORMAT, "version '%s' does not match its parsed form",
                            r->version);
    if (r->runtime_max[0] != '\0') {
        if (!version_str_ok("runtime max", r->runtime_max, &rmax, d))
            return OTA_E_FORMAT;
        if (ota_version_cmp(&rmin, &rmax) > 0)
            return ota_diag_set(d, OTA_E_FORMAT, "runtime min '%s' is above runtime max '%s'",
                                r->runtime_min, r->runtime_max);
    }
    if (r->n_reads_models > OTA_READS_MODELS_MAX)
        return ota_diag_set(d, OTA_E_FORMAT, "reads_models lists more than %d models",
                            OTA_READS_MODELS_MAX);
    if (r->n_reads_models > 0 && r->reads_models == NULL)
        return ota_diag_set(d, OTA_E_FORMAT, "reads_models is missing");
    for (i = 0; i < r->n_reads_models; i++) {
        if (!id_ok("reads_models entry", r->reads_models[i], d))
            return OTA_E_FORMAT;
        for (j = 0; j < i; j++)
            if (strcmp(r->reads_models[i], r->reads_models[j]) == 0)
                return ota_diag_set(d, OTA_E_FORMAT, "reads_models lists '%s' twice",
                                    r->reads_models[i]);
    }
    if (r->mandatory != 0 && r->mandatory != 1)
        return ota_diag_set(d, OTA_E_FORMAT, "mandatory must be 0 or 1");
    if (r->notes != NULL) {
        if (strlen(r->notes) > OTA_NOTES_MAX)
            return ota_diag_set(d, OTA_E_FORMAT, "notes are longer than %d bytes", OTA_NOTES_MAX);
        if (!utf8_valid(r->notes))
            return ota_diag_set(d, OTA_E_FORMAT, "notes are not valid UTF-8");
    }
    return OTA_OK;
}

static ota_err
copy_str(char *dst, size_t cap, const json_t *obj, const char *key, struct ota_diag *d)
{
    const char *s;
    ota_err     rc = ota_json_get_str(obj, key, cap - 1, 1, &s, d);

    if (rc != OTA_OK)
        return rc;
    memcpy(dst, s, strlen(s) + 1);
    return OTA_OK;
}

ota_err
ota_release_from_json(const json_t *obj, struct ota_release *out, struct ota_diag *d)
{
    static const char *const keys[] = { "app",       "version",   "model", "reads_models",
                                        "runtime",   "min_agent", "mandatory", "notes",
                                        NULL };
    static const char *const rt_keys[] = { "min", "max", NULL };
    struct ota_release r;
    json_t            *rt, *rm, *notes;
    size_t             i;
    ota_err            rc;

    memset(&r, 0, sizeof r);
    if (!json_is_object(obj))
        return ota_diag_set(d, OTA_E_FORMAT, "release must be an object");
    if ((rc = ota_json_only_keys(obj, keys, d)) != OTA_OK ||
        (rc = copy_str(r.app, sizeof r.app, obj, "app", d)) != OTA_OK ||
        (rc = copy_str(r.version, sizeof r.version, obj, "version", d)) != OTA_OK ||
        (rc = copy_str(r.model, sizeof r.model, obj, "model", d)) != OTA_OK ||
        (rc = copy_str(r.min_agent, sizeof r.min_agent, obj, "min_agent", d)) != OTA_OK ||
        (rc = ota_json_get_bool(obj, "mandatory", &r.mandatory, d)) != OTA_OK ||
        (rc = ota_json_get_obj(obj, "runtime", &rt, d)) != OTA_OK ||
        (rc = ota_json_only_keys(rt, rt_keys, d)) != OTA_OK ||
        (rc = copy_str(r.runtime_min, sizeof r.runtime_min, rt, "min", d)) != OTA_OK)
        goto fail;
    if (json_object_get(rt, "max") != NULL &&
        (rc = copy_str(r.runtime_max, sizeof r.runtime_max, rt, "max", d)) != OTA_OK)
        goto fail;
    if (ota_version_parse(r.version, &r.v) != OTA_OK) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "version '%s' is not a version like 1.4.2", r.version);
        goto fail;
    }
    /* ota_json_get_arr reports an over-long array as too big; for a release object that is a
     * malformed document like any other bad field. */
    if ((rc = ota_json_get_arr(obj, "reads_models", OTA_READS_MODELS_MAX, &rm, d)) != OTA_OK) {
        rc = OTA_E_FORMAT;
        goto fail;
    }
    if (json_array_size(rm) > 0) {
        r.reads_models = calloc(json_array_size(rm), sizeof *r.reads_models);
        if (r.reads_models == NULL) {
            rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
            goto fail;
        }
        for (i = 0; i < json_array_size(rm); i++) {
            const json_t *e = json_array_get(rm, i);
            if (!json_is_string(e) || json_string_length(e) > OTA_ID_MAX) {
                rc = ota_diag_set(d, OTA_E_FORMAT, "reads_models entry %zu is not a valid id", i);
                goto fail;
            }
            memcpy(r.reads_models[i], json_string_value(e), json_string_length(e) + 1);
            r.n_reads_models++;
        }
    }
    notes = json_object_get(obj, "notes");
    if (notes != NULL) {
        const char *s;
        if ((rc = ota_json_get_str(obj, "notes", OTA_NOTES_MAX, 0, &s, d)) != OTA_OK)
            goto fail;
        r.notes = strdup(s);
        if (r.notes == NULL) {
            rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
            goto fail;
        }
    }
    if ((rc = ota_release_validate(&r, d)) != OTA_OK)
        goto fail;
    *out = r;
    return OTA_OK;
fail:
    ota_release_clear(&r);
    return rc;
}

json_t *
ota_release_to_json(const struct ota_release *r)
{
    json_t *o = NULL, *rm = NULL, *rt = NULL;
    size_t  i;

    o = json_object();
    rm = json_array();
    rt = json_object();
    if (o == NULL || rm == NULL || rt == NULL)
        goto fail;
    for (i = 0; i < r->n_reads_models; i++)
        if (json_array_append_new(rm, json_string(r->reads_models[i])) != 0)
            goto fail;
    if (json_object_set_new(rt, "min", json_string(r->runtime_min)) != 0 ||
        (r->runtime_max[0] != '\0' &&
         json_object_set_new(rt, "max", json_string(r->runtime_max)) != 0))
        goto fail;
    if (json_object_set_new(o, "app", json_string(r->app)) != 0 ||
        json_object_set_new(o, "version", json_string(r->version)) != 0 ||
        json_object_set_new(o, "model", json_string(r->model)) != 0 ||
        json_object_set(o, "reads_models", rm) != 0 || json_object_set(o, "runtime", rt) != 0 ||
        json_object_set_new(o, "min_agent", json_string(r->min_agent)) != 0 ||
        json_object_set_new(o, "mandatory", json_boolean(r->mandatory)) != 0 ||
        (r->notes != NULL && json_object_set_new(o, "notes", json_string(r->notes)) != 0))
        goto fail;
    json_decref(rm);
    json_decref(rt);
    return o;
fail:
    json_decref(o);
    json_decref(rm);
    json_decref(rt);
    return NULL;
}

ota_err
ota_release_copy(struct ota_release *dst, const struct ota_release *src, struct ota_diag *d)
{
    struct ota_release r = *src;

    r.reads_models = NULL;
    r.notes = NULL;
    if (src->n_reads_models > 0 && src->reads_models != NULL) {
        r.reads_models = calloc(src->n_reads_models, sizeof *r.reads_models);
        if (r.reads_models == NULL)
            goto nomem;
        memcpy(r.reads_models, src->reads_models, src->n_reads_models * sizeof *r.reads_models);
    } else {
        r.n_reads_models = 0;
    }
    if (src->notes != NULL) {
        r.notes = strdup(src->notes);
        if (r.notes == NULL)
            goto nomem;
    }
    *dst = r;
    return OTA_OK;
nomem:
    free(r.reads_models);
    return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
}

void
ota_release_clear(struct ota_release *r)
{
    if (r == NULL)
        return;
    free(r->reads_models);
    free(r->notes);
    memset(r, 0, sizeof *r);
}

int
ota_release_reads_model(const struct ota_release *r, const char *model)
{
    size_t i;

    if (model == NULL)
        return 0;
    if (strcmp(r->model, model) == 0)
        return 1;
    for (i = 0; i < r->n_reads_models; i++)
        if (strcmp(r->reads_models[i], model) == 0)
            return 1;
    return 0;
}

int
ota_release_runtime_admits(const struct ota_release *r, const struct ota_version *runtime)
{
    struct ota_version lo, hi;

    /* An unparsable bound admits nothing: a release that cannot say where it runs is not
     * offered anywhere. */
    if (ota_version_parse(r->runtime_min, &lo) != OTA_OK || ota_version_cmp(runtime, &lo) < 0)
        return 0;
    if (r->runtime_max[0] == '\0')
        return 1;
    if (ota_version_parse(r->runtime_max, &hi) != OTA_OK)
        return 0;
    return ota_version_cmp(runtime, &hi) <= 0;
}
