/* Fuzz the agent configuration parser (ota_agent_config_parse, formats/agent.md).
 *
 * Properties: a refusal is OTA_E_FORMAT or OTA_E_TOO_BIG with a message naming the file and
 * leaves the output untouched; an accepted configuration keeps every documented rule (required
 * keys present, URL scheme and no final '/', absolute state_dir, valid ids, a version, integer
 * ranges, exclusive token settings), and clearing it leaves a zeroed struct. */
#include "fuzz.h"
#include "ota/agent.h"
#include "ota/release.h"

static void
check_config(const struct ota_agent_config *c)
{
    struct ota_version v;
    size_t             n;

    FUZZ_CHECK(c->repository_url && c->state_dir && c->app && c->channel);
    FUZZ_CHECK(c->runtime_version && c->trusted_root);
    FUZZ_CHECK(strncmp(c->repository_url, "https://", 8) == 0 ||
               strncmp(c->repository_url, "http://", 7) == 0 ||
               strncmp(c->repository_url, "file://", 7) == 0);
    n = strlen(c->repository_url);
    FUZZ_CHECK(n > 0 && c->repository_url[n - 1] != '/');
    FUZZ_CHECK(c->state_dir[0] == '/');
    FUZZ_CHECK(ota_id_valid(c->app) && ota_id_valid(c->channel));
    FUZZ_CHECK(ota_version_parse(c->runtime_version, &v) == OTA_OK);
    FUZZ_CHECK(c->poll_interval_s >= 10 && c->poll_interval_s <= 7 * 86400);
    FUZZ_CHECK(c->max_bundle_bytes >= 1024 && c->max_bundle_bytes <= (1LL << 40));
    FUZZ_CHECK(c->connect_timeout_s >= 1 && c->connect_timeout_s <= 600);
    FUZZ_CHECK(c->low_speed_time_s >= 1 && c->low_speed_time_s <= 3600);
    FUZZ_CHECK(c->check_timeout_s >= 1 && c->check_timeout_s <= 3600);
    FUZZ_CHECK(c->keep_releases >= 2 && c->keep_releases <= 100);
    FUZZ_CHECK(c->trial_launches >= 1 && c->trial_launches <= 1000);
    FUZZ_CHECK(c->sync_token == NULL || c->sync_token_file == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char zero[sizeof(struct ota_agent_config)];
    struct ota_agent_config    c;
    struct ota_diag            d;
    ota_err                    rc;

    memset(&c, 0, sizeof(c));
    memset(&d, 0, sizeof(d));
    rc = ota_agent_config_parse(data, size, "agent.json", &c, &d);
    fuzz_check_diag(rc, &d);
    if (rc != OTA_OK) {
        FUZZ_CHECK(rc == OTA_E_FORMAT || rc == OTA_E_TOO_BIG);
        FUZZ_CHECK(memcmp(&c, zero, sizeof(c)) == 0);
        FUZZ_CHECK(strstr(d.msg, "agent.json") != NULL);
        return 0;
    }
    check_config(&c);
    ota_agent_config_clear(&c);
    FUZZ_CHECK(memcmp(&c, zero, sizeof(c)) == 0);
    return 0;
}
