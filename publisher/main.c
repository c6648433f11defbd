/* ota-publish command line (being built). */
#include <stdio.h>

int
main(void)
{
    fputs("not yet implemented\n", stderr);
    return 1;
}
