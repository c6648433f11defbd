/* Bundle manifest: path rules, JSON form of the "signed" member, strict parsing.
 * See ota/bundle.h and formats/bundle.md. */
#include "bundle_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ota/cjson.h"
#include "ota/fsutil.h"

static int
utf8_valid(const unsigned char *p, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = p[i];
        size_t        n, k;
        uint32_t      cp;

        if (c < 0x80) {
            i++;
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
        if (len - i <= n)
            return 0;
        for (k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

ota_err
ota_bundle_path_check(const char *path, size_t len, struct ota_diag *d)
{
    size_t i, start = 0;

    if (len == 0)
        return ota_diag_set(d, OTA_E_UNSAFE_PATH, "empty path");
    if (len > OTA_BUNDLE_PATH_MAX)
        return ota_diag_set(d, OTA_E_FORMAT, "path '%.64s...' is longer than %d bytes", path,
                            OTA_BUNDLE_PATH_MAX);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c < 0x20 || c == 0x7f)
            return ota_diag_set(d, OTA_E_UNSAFE_PATH,
                                "path '%.*s' contains a control character", (int)i, path);
    }
    if (path[0] == '/')
        return ota_diag_set(d, OTA_E_UNSAFE_PATH, "path '%.*s' is absolute", (int)len, path);
    for (i = 0; i <= len; i++) {
        size_t n;
        if (i < len && path[i] != '/')
            continue;
        n = i - start;
        if (n == 0 || (n == 1 && path[start] == '.') ||
            (n == 2 && path[start] == '.' && path[start + 1] == '.'))
            return ota_diag_set(d, OTA_E_UNSAFE_PATH,
                                "path '%.*s' has an empty, '.' or '..' component", (int)len, path);
        if (n > OTA_BUNDLE_NAME_MAX)
            return ota_diag_set(d, OTA_E_FORMAT, "path '%.64s...' has a name over %d bytes", path,
                                OTA_BUNDLE_NAME_MAX);
        start = i + 1;
    }
    if (!utf8_valid((const unsigned char *)path, len))
        return ota_diag_set(d, OTA_E_FORMAT, "path '%.*s' is not valid UTF-8", (int)len, path);
    return OTA_OK;
}

void
ota_manifest_free(struct ota_manifest *m)
{
    size_t i;

    if (m == NULL)
        return;
    for (i = 0; i < m->nfiles; i++)
        free(m->files[i].path);
    free(m->files);
    ota_release_clear(&m->release);
    json_decref(m->signatures);
    free(m);
}

static json_t *
file_json(const struct ota_manifest_file *f)
{
    char hex[OTA_SHA256_HEX];

    if (f->is_dir)
        return json_pack("{s:s, s:s, s:I}", "path", f->path, "type", "dir", "mode",
                         (json_int_t)f->mode);
    ota_hex_encode(f->sha256, OTA_SHA256_LEN, hex);
    return json_pack("{s:s, s:s, s:I, s:I, s:s}", "path", f->path, "type", "file", "mode",
                     (json_int_t)f->mode, "size", (json_int_t)f->size, "sha256", hex);
}

json_t *
ota_manifest_signed_json(const struct ota_manifest *m)
{
    json_t *files = json_array(), *rel = ota_release_to_json(&m->release), *o = NULL;
    size_t  i;

    if (files == NULL || rel == NULL)
        goto out;
    for (i = 0; i < m->nfiles; i++)
        if (json_array_append_new(files, file_json(&m->files[i])) != 0)
            goto out;
    o = json_pack("{s:s, s:i, s:O, s:O}", "_type", OTA_BUNDLE_TYPE, "spec_version",
                  OTA_BUNDLE_SPEC_VERSION, "release", rel, "files", files);
out:
    json_decref(files);
    json_decref(rel);
    return o;
}

json_t *
ota_manifest_to_json(const struct ota_manifest *m)
{
    json_t *sig = ota_manifest_signed_json(m), *sigs, *o = NULL;

    if (sig == NULL)
        return NULL;
    sigs = m->signatures != NULL ? json_incref(m->signatures) : json_array();
    if (sigs != NULL)
        o = json_pack("{s:O, s:O}", "signed", sig, "signatures", sigs);
    json_decref(sig);
    json_decref(sigs);
    return o;
}

/* The entry whose path is exactly [p, p+len) among the first n (sorted) entries, or NULL. */
static const struct ota_manifest_file *
find_sorted(const struct ota_manifest_file *files, size_t n, const char *p, size_t len)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int    c = strncmp(files[mid].path, p, len);
        if (c == 0 && files[mid].path[len] != '\0')
            c = 1; /* longer than the key: sorts after it */
        if (c == 0)
            return &files[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static ota_err
parse_file(const json_t *e, size_t idx, struct ota_manifest_file *f, struct ota_diag *d)
{
    static const char *const file_keys[] = { "path", "type", "mode", "size", "sha256", NULL };
    static const char *const dir_keys[] = { "path", "type", "mode", NULL };
    const char *path, *type, *hex;
    long long   mode, size;
    ota_err     rc;

    memset(f, 0, sizeof *f);
    if (!json_is_object(e))
        return ota_diag_set(d, OTA_E_FORMAT, "files[%zu] must be an object", idx);
    if ((rc = ota_json_get_str(e, "path", OTA_BUNDLE_PATH_MAX, 1, &path, d)) != OTA_OK ||
        (rc = ota_json_get_str(e, "type", 8, 1, &type, d)) != OTA_OK)
        goto bad;
    if ((rc = ota_bundle_path_check(path, strlen(path), d)) != OTA_OK)
        return rc;
    if (strcmp(path, OTA_BUNDLE_MANIFEST_NAME) == 0)
        return ota_diag_set(d, OTA_E_FORMAT, "'%s' is a reserved name", path);
    if (strcmp(type, "dir") == 0) {
        f->is_dir = 1;
        rc = ota_json_only_keys(e, dir_keys, d);
    } else if (strcmp(type, "file") == 0) {
        rc = ota_json_only_keys(e, file_keys, d);
    } else {
        rc = ota_diag_set(d, OTA_E_FORMAT, "type '%s' is neither 'file' nor 'dir'", type);
    }
    if (rc != OTA_OK || (rc = ota_json_get_int(e, "mode", 0, 07777, &mode, d)) != OTA_OK)
        goto bad;
    if (mode & 07000)
        return ota_diag_set(d, OTA_E_UNSAFE_PATH, "'%s' has mode %04llo (setuid, setgid or sticky)",
                            path, mode);
    if (mode != 0755 && (f->is_dir || mode != 0644)) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "'%s' has mode %04llo, not %s", path, mode,
                          f->is_dir ? "0755" : "0644 or 0755");
        goto bad;
    }
    f->mode = (uint32_t)mode;
    if (!f->is_dir) {
        if ((rc = ota_json_get_int(e, "size", 0, INT64_MAX, &size, d)) != OTA_OK ||
            (rc = ota_json_get_str(e, "sha256", 64, 1, &hex, d)) != OTA_OK)
            goto bad;
        if (strspn(hex, "0123456789abcdef") != 64 ||
            ota_hex_decode(hex, f->sha256, OTA_SHA256_LEN) != OTA_OK) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "'%s': sha256 must be 64 lowercase hex digits",
                              path);
            goto bad;
        }
        f->size = (uint64_t)size;
    }
    f->path = strdup(path);
    if (f->path == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    return OTA_OK;
bad:
    ota_diag_prefix(d, "files[%zu]", idx);
    return rc;
}

ota_err
ota_manifest_parse_signed(const json_t *sig, struct ota_manifest **out, struct ota_diag *d)
{
    static const char *const keys[] = { "_type", "spec_version", "release", "files", NULL };
    struct ota_manifest *m = NULL;
    const char          *type;
    long long            ver;
    json_t              *rel, *files;
    size_t               i, n;
    ota_err              rc;

    if (!json_is_object(sig))
        return ota_diag_set(d, OTA_E_FORMAT, "manifest 'signed' must be an object");
    if ((rc = ota_json_only_keys(sig, keys, d)) != OTA_OK ||
        (rc = ota_json_get_str(sig, "_type", 64, 1, &type, d)) != OTA_OK)
        return rc;
    if (strcmp(type, OTA_BUNDLE_TYPE) != 0)
        return ota_diag_set(d, OTA_E_FORMAT, "_type is '%s', not '" OTA_BUNDLE_TYPE "'", type);
    if ((rc = ota_json_get_int(sig, "spec_version", 1, 1, &ver, d)) != OTA_OK ||
        (rc = ota_json_get_obj(sig, "release", &rel, d)) != OTA_OK ||
        (rc = ota_json_get_arr(sig, "files", OTA_BUNDLE_MAX_FILES, &files, d)) != OTA_OK)
        return rc;
    m = calloc(1, sizeof *m);
    if (m == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    rc = ota_release_from_json(rel, &m->release, d);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "release");
        goto out;
    }
    n = json_array_size(files);
    if (n > 0) {
        m->files = calloc(n, sizeof *m->files);
        if (m->files == NULL) {
            rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
            goto out;
        }
    }
    for (i = 0; i < n; i++) {
        struct ota_manifest_file *f = &m->files[i];
        const char               *slash;

        rc = parse_file(json_array_get(files, i), i, f, d);
        if (rc != OTA_OK)
            goto out;
        m->nfiles++;
        /* Sorted by bytes, strictly: one order for every writer, no duplicates, and every
         * parent (a prefix) comes before its children. */
        if (i > 0 && strcmp(m->files[i - 1].path, f->path) >= 0) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "'%s' is %s", f->path,
                              strcmp(m->files[i - 1].path, f->path) == 0
                                  ? "listed twice"
                                  : "out of order (files are sorted by path bytes)");
            goto out;
        }
        slash = strrchr(f->path, '/');
        if (slash != NULL) {
            const struct ota_manifest_file *p =
                find_sorted(m->files, i, f->path, (size_t)(slash - f->path));
            if (p == NULL || !p->is_dir) {
                rc = ota_diag_set(d, OTA_E_FORMAT, "parent of '%s' is not a listed directory",
                                  f->path);
                goto out;
            }
        }
        if (!f->is_dir && f->size > UINT64_MAX - m->total_size) {
            rc = ota_diag_set(d, OTA_E_TOO_BIG, "declared sizes overflow");
            goto out;
        }
        m->total_size += f->size;
    }
    *out = m;
    m = NULL;
out:
    ota_manifest_free(m);
    return rc;
}

locale_t
ota_bundle_locale_enter(locale_t *old)
{
    locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);

    *old = (locale_t)0;
    if (l != (locale_t)0)
        *old = uselocale(l);
    return l;
}

void
ota_bundle_locale_leave(locale_t ours, locale_t old)
{
    if (ours == (locale_t)0)
        return;
    uselocale(old);
    freelocale(ours);
}
