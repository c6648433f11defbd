/* Release (compatibility) metadata and version numbers. See formats/release.md.
 *
 * JSON form (strict: unknown keys are rejected):
 *   {"app":"com.example.field","version":"1.4.0","model":"m2","reads_models":["m1"],
 *    "runtime":{"min":"3.0","max":"3.9"},"min_agent":"0.1","mandatory":false,"notes":"..."}
 * Channel, rollout, breaking and yanked are repository decisions, not part of a bundle: they
 * live beside this object in the TUF target's custom metadata (formats/tuf.md). */
#ifndef OTA_RELEASE_H
#define OTA_RELEASE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ota/err.h"

#define OTA_ID_MAX 64          /* app ids, model ids, channel names */
#define OTA_VERSION_STR_MAX 48
#define OTA_READS_MODELS_MAX 32
#define OTA_NOTES_MAX 4096

/** Dotted numeric version "1", "1.4", "1.4.2" or "1.4.2.7": up to 4 parts, each 0..4294967295,
 * no leading zeros, no signs, no suffixes. Missing parts compare as 0 ("1.0" == "1"). */
struct ota_version {
    uint32_t part[4];
    unsigned n;
};

ota_err ota_version_parse(const char *s, struct ota_version *out) OTA_MUST_CHECK;
int     ota_version_cmp(const struct ota_version *a, const struct ota_version *b);
/** Format as written (n parts) into out (OTA_VERSION_STR_MAX bytes). */
void    ota_version_format(const struct ota_version *v, char *out);

/** Ids (app, model, channel): 1..64 of [A-Za-z0-9._-], first one alphanumeric. */
int ota_id_valid(const char *s);

struct ota_release {
    char               app[OTA_ID_MAX + 1];
    char               version[OTA_VERSION_STR_MAX];
    struct ota_version v;                      /* parsed version */
    char               model[OTA_ID_MAX + 1];
    char             (*reads_models)[OTA_ID_MAX + 1]; /* malloc'd array, may be NULL */
    size_t             n_reads_models;         /* <= OTA_READS_MODELS_MAX */
    char               runtime_min[OTA_VERSION_STR_MAX]; /* inclusive */
    char               runtime_max[OTA_VERSION_STR_MAX]; /* inclusive; "" = no upper bound */
    char               min_agent[OTA_VERSION_STR_MAX];
    int                mandatory;
    char              *notes;                  /* malloc'd UTF-8, <= OTA_NOTES_MAX, may be NULL */
};

/** Parse and validate the JSON form. On success *out owns its allocations (free with
 * ota_release_clear). OTA_E_FORMAT naming the bad field. */
ota_err ota_release_from_json(const json_t *obj, struct ota_release *out,
                              struct ota_diag *d) OTA_MUST_CHECK;

/** New JSON object for r; NULL on out of memory. */
json_t *ota_release_to_json(const struct ota_release *r);

/** Check every field (ids, versions, runtime_min <= runtime_max, sizes). */
ota_err ota_release_validate(const struct ota_release *r, struct ota_diag *d) OTA_MUST_CHECK;

/** Deep copy. */
ota_err ota_release_copy(struct ota_release *dst, const struct ota_release *src,
                         struct ota_diag *d) OTA_MUST_CHECK;

/** Free what r owns and zero it; accepts a zeroed struct. */
void ota_release_clear(struct ota_release *r);

/** 1 if pending offline data written under model can be carried by r: model is r's own
 * model or listed in r's reads_models. */
int ota_release_reads_model(const struct ota_release *r, const char *model);

/** 1 if a device with this native runtime version can run r. */
int ota_release_runtime_admits(const struct ota_release *r, const struct ota_version *runtime);

#endif
