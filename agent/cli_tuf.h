/* `ota-agent tuf ...`: a TUF client speaking the command line protocol of the TUF conformance
 * suite (CLIENT-CLI.md of theupdateframework/tuf-conformance), so that the client can be
 * checked against it and against other TUF repositories:
 *
 *   tuf --metadata-dir DIR init TRUSTED_ROOT
 *   tuf --metadata-dir DIR --metadata-url URL refresh
 *   tuf --metadata-dir DIR --metadata-url URL --target-name PATH [--target-name PATH2 ...]
 *       --target-dir TDIR --target-base-url TURL download
 *
 * Options may come in any order. A downloaded target is stored in TDIR under its target path
 * percent-encoded as one file name (Python's quote(path, safe="")), so "a/b.txt" becomes
 * "a%2Fb.txt". */
#ifndef OTA_AGENT_CLI_TUF_H
#define OTA_AGENT_CLI_TUF_H

/** Run the command; argv[0] is the command's own name ("tuf"). Returns the exit status the
 * protocol asks for: 0 on success, 1 on any failure (usage errors included), with a one-line
 * message on stderr. */
int ota_agent_cli_tuf(int argc, char **argv);

#endif
