/* ota-sync-driver: runs one ota_sync_run with its configuration from flags. For the kill test
 * (tests/integration/sync_kill.sh) and the benchmark (tools/bench/bench-sync.sh), which need the
 * sync library without the rest of the agent.
 *
 *   ota-sync-driver --db FILE [--init] [--url TEMPLATE] [--token T] [--token-file F]
 *                   [--command CMD] [--model M] [--batch-rows N] [--batch-bytes N]
 *                   [--timeout S] [--max-attempts N] [--ca-file F]
 *
 * --init only creates the outbox tables (so a script can then INSERT rows as an app would).
 * Exit status: 0 drained, 1 not drained or failed, 2 usage. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ota/outbox.h"
#include "ota/sync.h"

static void
usage(void)
{
    fputs("usage: ota-sync-driver --db FILE [--init] [--url TEMPLATE] [--token T]\n"
          "         [--token-file F] [--command CMD] [--model M] [--batch-rows N]\n"
          "         [--batch-bytes N] [--timeout S] [--max-attempts N] [--ca-file F]\n",
          stderr);
}

static int
number(const char *s, unsigned long long max, unsigned long long *out)
{
    char              *end;
    unsigned long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    v = strtoull(s, &end, 10);
    if (*end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

int
main(int argc, char **argv)
{
    struct ota_sync_config c;
    struct ota_sync_report r;
    struct ota_diag        d;
    const char            *model = NULL;
    int                    i, init = 0;
    ota_err                rc;

    memset(&c, 0, sizeof c);
    for (i = 1; i < argc; i++) {
        const char        *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long n;
        if (strcmp(a, "--init") == 0) {
            init = 1;
            continue;
        }
        if (v == NULL) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(a, "--db") == 0)
            c.outbox_db = v;
        else if (strcmp(a, "--url") == 0)
            c.url_template = v;
        else if (strcmp(a, "--token") == 0)
            c.token = v;
        else if (strcmp(a, "--token-file") == 0)
            c.token_file = v;
        else if (strcmp(a, "--command") == 0)
            c.command = v;
        else if (strcmp(a, "--model") == 0)
            model = v;
        else if (strcmp(a, "--ca-file") == 0)
            c.ca_file = v;
        else if (strcmp(a, "--batch-rows") == 0 && number(v, 100000, &n) == 0)
            c.batch_rows = (unsigned)n;
        else if (strcmp(a, "--batch-bytes") == 0 && number(v, 1ull << 30, &n) == 0)
            c.batch_bytes = (size_t)n;
        else if (strcmp(a, "--timeout") == 0 && number(v, 86400, &n) == 0)
            c.timeout_s = (long)n;
        else if (strcmp(a, "--max-attempts") == 0 && number(v, 100, &n) == 0)
            c.max_attempts = (unsigned)n;
        else {
            usage();
            return 2;
        }
    }
    if (c.outbox_db == NULL) {
        usage();
        return 2;
    }
    if (init) {
        struct ota_outbox *ob = NULL;
        rc = ota_outbox_open(c.outbox_db, &ob, &d);
        ota_outbox_close(ob);
        if (rc != OTA_OK) {
            fprintf(stderr, "ota-sync-driver: %s (%s)\n", d.msg, ota_err_name(rc));
            return 1;
        }
        return 0;
    }
    rc = ota_sync_run(&c, model, &r, &d);
    printf("acked %" PRIu64 " quarantined %" PRIu64 " pending %" PRIu64 " held %" PRIu64
           " requests %" PRIu64 ": %s\n",
           r.acked, r.quarantined, r.pending, r.held, r.requests,
           rc == OTA_OK ? "drained" : ota_err_name(rc));
    if (rc != OTA_OK) {
        fprintf(stderr, "ota-sync-driver: %s (%s)\n", d.msg, ota_err_name(rc));
        return 1;
    }
    return 0;
}
