/* The `outbox` and `sync` commands of ota-agent. agent/main.c parses the global options (the
 * configuration, --json) and calls these with the words from the command name on. */
#ifndef OTA_CLI_SYNC_H
#define OTA_CLI_SYNC_H

#include "ota/sync.h"

/** `outbox SUBCOMMAND ...`; argv[0] is "outbox", argv[1] the subcommand:
 *   add --model M --entity E --op OP --payload JSON [--id ID]   record a change, print its id
 *   list [--state S] [--model M]                               rows in seq order
 *   export FILE                                                pending + quarantined to JSON Lines
 *   import FILE                                                add an export's rows (idempotent)
 * Uses cfg->outbox_db. json = 1 prints JSON on stdout instead of text. Messages go to stderr.
 * Returns the exit status: 0 ok, 1 failed, 2 usage. */
int ota_agent_cli_outbox(int argc, char **argv, const struct ota_sync_config *cfg, int json);

/** `sync [--model M]`; argv[0] is "sync". Runs ota_sync_run and prints a summary per model
 * (JSON with json = 1). Returns 0 when drained, 1 otherwise (the reason is printed), 2 usage. */
int ota_agent_cli_sync(int argc, char **argv, const struct ota_sync_config *cfg, int json);

#endif
