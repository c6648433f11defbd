/* The reference sync server's request checks (formats/sync-protocol.md), apart from
 * its HTTP and storage code so that they can be tested and fuzzed on their own. */
#ifndef OTA_SYNCD_PROTOCOL_H
#define OTA_SYNCD_PROTOCOL_H

#include <jansson.h>
#include <stddef.h>

#include "ota/err.h"

#define SYNCD_BODY_MAX (8u << 20) /* largest request body */
#define SYNCD_CHANGES_MAX 10000   /* most changes in one request */
#define SYNCD_ID_MAX 128          /* longest change id */
#define SYNCD_NAME_MAX 128        /* longest model or entity name */

/** 1 if model (the {model} of the URL) names a model: 1..SYNCD_NAME_MAX bytes, no '/'. */
int syncd_model_valid(const char *model);

/** Parse and check the body buf[0..len) of POST /sync/{model}, all of it before anything is
 * stored: a JSON object (real numbers allowed in payloads) with exactly "model", equal to
 * url_model, and "changes", an array of at most SYNCD_CHANGES_MAX changes, each an object with
 * exactly "id" (1..SYNCD_ID_MAX bytes), "seq" (>= 1), "entity" (1..SYNCD_NAME_MAX bytes), "op"
 * (insert, update or delete), "payload" (any value) and "created_at" (integer).
 * On success *body is a new reference owned by the caller and *changes borrows from it.
 * OTA_E_FORMAT or OTA_E_TOO_BIG otherwise, with the message the server answers in d. */
ota_err syncd_request_parse(const char *url_model, const void *buf, size_t len, json_t **body,
                            json_t **changes, struct ota_diag *d) OTA_MUST_CHECK;

#endif
