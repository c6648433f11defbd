/* Device configuration (agent.json), parsed strictly: every key is known, typed and bounded.
 *
 *   {"repository_url": "https://updates.example.com/field", "state_dir": "/var/lib/ota",
 *    "app": "com.example.field", "channel": "stable", "runtime_version": "3.2",
 *    "trusted_root": "/usr/share/field/root.json", "poll_interval_s": 3600, ...}
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ota/agent.h"
#include "ota/cjson.h"
#include "ota/fsutil.h"
#include "ota/release.h"

#define STR_MAX 4096 /* URLs, paths, commands, tokens */

enum kind { K_STR, K_INT };

struct key {
    const char *name;
    enum kind   kind;
    int         required;
    size_t      off;
    long long   min, max, def; /* K_INT */
};

#define S(field, req)                                                                              \
    {                                                                                              \
#field, K_STR, req, offsetof(struct ota_agent_config, field), 0, 0, 0                      \
    }
#define I(field, lo, hi, d)                                                                        \
    {                                                                                              \
#field, K_INT, 0, offsetof(struct ota_agent_config, field), lo, hi, d                      \
    }

static const struct key keys[] = {
    S(repository_url, 1),
    S(state_dir, 1),
    S(app, 1),
    S(channel, 0),
    S(runtime_version, 1),
    S(trusted_root, 1),
    I(poll_interval_s, 10, 7 * 86400, 3600),
    I(max_bundle_bytes, 1024, 1LL << 40, 1LL << 30),
    I(connect_timeout_s, 1, 600, 10),
    I(low_speed_time_s, 1, 3600, 30),
    I(check_timeout_s, 1, 3600, 20),
    S(ca_file, 0),
    I(keep_releases, 2, 100, 2),
    I(trial_launches, 1, 1000, 3),
    S(factory_bundle, 0),
    S(sync_url, 0),
    S(sync_token, 0),
    S(sync_token_file, 0),
    S(sync_command, 0),
    S(outbox_db, 0),
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static char **
str_field(struct ota_agent_config *c, const struct key *k)
{
    return (char **)(void *)((char *)c + k->off);
}

static long long *
int_field(struct ota_agent_config *c, const struct key *k)
{
    return (long long *)(void *)((char *)c + k->off);
}

static int
url_scheme_ok(const char *u)
{
    return strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0 ||
           strncmp(u, "file://", 7) == 0;
}

static ota_err
validate(const struct ota_agent_config *c, const char *name, struct ota_diag *d)
{
    struct ota_version v;
    size_t             n;

    if (!url_scheme_ok(c->repository_url))
        return ota_diag_set(d, OTA_E_FORMAT,
                            "%s: 'repository_url' must start with https://, http:// or file://",
                            name);
    n = strlen(c->repository_url);
    if (c->repository_url[n - 1] == '/')
        return ota_diag_set(d, OTA_E_FORMAT, "%s: 'repository_url' must not end with '/'", name);
    if (c->state_dir[0] != '/')
        return ota_diag_set(d, OTA_E_FORMAT, "%s: 'state_dir' must be an absolute path", name);
    if (!ota_id_valid(c->app))
        return ota_diag_set(d, OTA_E_FORMAT, "%s: 'app' is not a valid id", name);
    if (!ota_id_valid(c->channel))
        return ota_diag_set(d, OTA_E_FORMAT, "%s: 'channel' is not a valid id", name);
    if (ota_version_parse(c->runtime_version, &v) != OTA_OK)
        return ota_diag_set(d, OTA_E_FORMAT, "%s: 'runtime_version' is not a version", name);
    if (c->sync_token != NULL && c->sync_token_file != NULL)
        return ota_diag_set(d, OTA_E_FORMAT, "%s: 'sync_token' and 'sync_token_file' are exclusive",
                            name);
    return OTA_OK;
}

ota_err
ota_agent_config_parse(const void *buf, size_t len, const char *name, struct ota_agent_config *out,
                       struct ota_diag *d)
{
    struct ota_agent_config c;
    const char             *allowed[NKEYS + 1];
    json_t                 *root = NULL;
    ota_err                 rc;

    memset(&c, 0, sizeof(c));
    rc = ota_cjson_parse(buf, len, OTA_AGENT_CONFIG_MAX, &root, d);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "%s", name);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = ota_diag_set(d, OTA_E_FORMAT, "%s: not a JSON object", name);
        goto out;
    }
    for (size_t i = 0; i < NKEYS; i++)
        allowed[i] = keys[i].name;
    allowed[NKEYS] = NULL;
    rc = ota_json_only_keys(root, allowed, d);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "%s", name);
        goto out;
    }
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        json_t           *v = json_object_get(root, k->name);

        if (k->kind == K_INT) {
            long long x = k->def;
            if (v != NULL) {
                rc = ota_json_get_int(root, k->name, k->min, k->max, &x, d);
                if (rc != OTA_OK) {
                    ota_diag_prefix(d, "%s", name);
                    goto out;
                }
            }
            *int_field(&c, k) = x;
        } else if (v == NULL && k->required) {
            rc = ota_diag_set(d, OTA_E_FORMAT, "%s: missing '%s'", name, k->name);
            goto out;
        } else if (v != NULL) {
            const char *s = NULL;
            rc = ota_json_get_str(root, k->name, STR_MAX, 1, &s, d);
            if (rc != OTA_OK) {
                ota_diag_prefix(d, "%s", name);
                goto out;
            }
            *str_field(&c, k) = strdup(s);
            if (*str_field(&c, k) == NULL) {
                rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
                goto out;
            }
        }
    }
    if (c.channel == NULL && (c.channel = strdup("stable")) == NULL) {
        rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory");
        goto out;
    }
    rc = validate(&c, name, d);
    if (rc != OTA_OK)
        goto out;
    *out = c;
    memset(&c, 0, sizeof(c));
out:
    ota_agent_config_clear(&c);
    json_decref(root);
    return rc;
}

ota_err
ota_agent_config_load(const char *path, struct ota_agent_config *out, struct ota_diag *d)
{
    unsigned char *buf = NULL;
    size_t         len = 0;
    ota_err        rc;

    rc = ota_read_file(path, OTA_AGENT_CONFIG_MAX, &buf, &len, d);
    if (rc == OTA_OK)
        rc = ota_agent_config_parse(buf, len, path, out, d);
    free(buf);
    return rc;
}

void
ota_agent_config_clear(struct ota_agent_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].kind == K_STR) {
            char **s = str_field(c, &keys[i]);
            if (keys[i].off == offsetof(struct ota_agent_config, sync_token) && *s != NULL)
                memset(*s, 0, strlen(*s)); /* a credential: do not leave it in freed memory */
            free(*s);
        }
    }
    memset(c, 0, sizeof(*c));
}
