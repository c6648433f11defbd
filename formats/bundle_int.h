/* Internal to formats/bundle_*.c: manifest encoding and the path rules shared by the packer
 * and the reader. Not installed, not part of the public API. */
#ifndef OTA_BUNDLE_INT_H
#define OTA_BUNDLE_INT_H

#include <locale.h>
#include <stddef.h>

#include "ota/bundle.h"

#define OTA_BUNDLE_TYPE "ota-bundle-manifest"
#define OTA_BUNDLE_SPEC_VERSION 1
#define OTA_BUNDLE_NAME_MAX 255 /* longest path component (NAME_MAX on Linux file systems) */

/** Check one manifest path (len bytes, need not be NUL-terminated at len): relative,
 * '/'-separated, every component non-empty, not "." or "..", no control characters, no
 * component over OTA_BUNDLE_NAME_MAX, whole path at most OTA_BUNDLE_PATH_MAX and valid
 * UTF-8. OTA_E_UNSAFE_PATH for anything that could name a place other than the one it
 * spells (absolute, "..", ".", empty component, control character), OTA_E_FORMAT for a
 * name that is merely malformed (too long, not UTF-8). */
ota_err ota_bundle_path_check(const char *path, size_t len, struct ota_diag *d) OTA_MUST_CHECK;

/** New JSON object for the "signed" member of m's manifest; NULL on out of memory. */
json_t *ota_manifest_signed_json(const struct ota_manifest *m);

/** Parse the "signed" member strictly into a new manifest (release, files, total_size;
 * signatures left NULL). OTA_E_FORMAT / OTA_E_UNSAFE_PATH / OTA_E_TOO_BIG naming what is
 * wrong. */
ota_err ota_manifest_parse_signed(const json_t *sig, struct ota_manifest **out,
                                  struct ota_diag *d) OTA_MUST_CHECK;

/** Switch this thread to a UTF-8 character locale, so libarchive stores and returns names
 * as the UTF-8 bytes they are whatever the process locale is. Returns the locale to pass to
 * ota_bundle_locale_leave (may be (locale_t)0 when C.UTF-8 is not available). */
locale_t ota_bundle_locale_enter(locale_t *old);
void     ota_bundle_locale_leave(locale_t ours, locale_t old);

#endif
