/* Canonical JSON (as TUF's reference implementations produce it) over jansson's tree, and a
 * strict, bounded parser.
 *
 * Canonical form: object keys sorted by their UTF-8 bytes, no whitespace, strings with only
 * '"' and '\' escaped (control characters and non-ASCII are written raw), integers only,
 * true/false/null. jansson's own json_dumps() is not canonical (it escapes control characters),
 * so signatures are always computed over ota_cjson_encode()'s output. See formats/canonical-json.md. */
#ifndef OTA_CJSON_H
#define OTA_CJSON_H

#include <jansson.h>
#include <stddef.h>

#include "ota/err.h"

/** Largest document ota parses unless a caller gives a smaller cap. */
#define OTA_JSON_MAX (16u << 20)

/** Encode v canonically. *out is malloc'd and NUL-terminated (NUL not counted in *len);
 * owned by the caller. OTA_E_FORMAT for a real number (TUF allows integers only),
 * OTA_E_TOO_BIG if the output would exceed max bytes. */
ota_err ota_cjson_encode(const json_t *v, size_t max, char **out, size_t *len,
                         struct ota_diag *d) OTA_MUST_CHECK;

/** Parse buf[0..len) strictly: at most max bytes, duplicate object keys rejected, no NUL in
 * strings, invalid UTF-8 rejected, real numbers rejected, one value with nothing after it.
 * *out is a new reference owned by the caller. OTA_E_TOO_BIG over max, else OTA_E_FORMAT with
 * jansson's line/column in the message. */
ota_err ota_cjson_parse(const void *buf, size_t len, size_t max, json_t **out,
                        struct ota_diag *d) OTA_MUST_CHECK;

/** Parse application data (not signed, so not canonical) as strictly as ota_cjson_parse but
 * allowing real numbers: at most max bytes, duplicate object keys rejected, no NUL in strings,
 * invalid UTF-8 rejected, integers beyond 64 bits rejected, one value with nothing after it.
 * Used for offline changes, whose payloads carry coordinates and measurements. *out is a new
 * reference owned by the caller. OTA_E_TOO_BIG over max, else OTA_E_FORMAT. */
ota_err ota_json_parse_data(const void *buf, size_t len, size_t max, json_t **out,
                            struct ota_diag *d) OTA_MUST_CHECK;

/* Typed accessors for parsed documents. Each names the missing or mistyped key in diag and
 * returns OTA_E_FORMAT; on success the out-parameter borrows from obj. */

/** Required string member of at most maxlen bytes (and at least 1 if nonempty is set). */
ota_err ota_json_get_str(const json_t *obj, const char *key, size_t maxlen, int nonempty,
                         const char **out, struct ota_diag *d) OTA_MUST_CHECK;
/** Required integer member in [min, max]. */
ota_err ota_json_get_int(const json_t *obj, const char *key, long long min, long long max,
                         long long *out, struct ota_diag *d) OTA_MUST_CHECK;
/** Required boolean member. */
ota_err ota_json_get_bool(const json_t *obj, const char *key, int *out,
                          struct ota_diag *d) OTA_MUST_CHECK;
/** Required object member. */
ota_err ota_json_get_obj(const json_t *obj, const char *key, json_t **out,
                         struct ota_diag *d) OTA_MUST_CHECK;
/** Required array member with at most maxn elements. */
ota_err ota_json_get_arr(const json_t *obj, const char *key, size_t maxn, json_t **out,
                         struct ota_diag *d) OTA_MUST_CHECK;
/** Fail with OTA_E_FORMAT naming the first member of obj whose key is not in the
 * NULL-terminated list allowed (for our own strict formats; TUF allows extra members). */
ota_err ota_json_only_keys(const json_t *obj, const char *const *allowed,
                           struct ota_diag *d) OTA_MUST_CHECK;

#endif
