/* Stand-alone TUF client for tests and the TUF conformance suite: the `tuf` command of
 * ota-agent (agent/cli_tuf.h) as its own program. */
#include "cli_tuf.h"

int
main(int argc, char **argv)
{
    char name[] = "tuf";

    if (argc > 0)
        argv[0] = name;
    return ota_agent_cli_tuf(argc, argv);
}
