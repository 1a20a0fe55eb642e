/* grow: allocates (and touches) 1 MiB blocks until malloc fails, i.e. until memory.grow is
 * refused. Then it exits 3 — or, with the argument "graceful", prints how far it got and
 * exits 0 (a module that copes with a refused grow is not out of memory). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kept, so that the compiler cannot drop the allocations. */
static char *blocks[4096];

int main(int argc, char **argv) {
    int mib = 0;
    while (mib < 4096) {
        char *p = malloc(1 << 20);
        if (!p) {
            break;
        }
        memset(p, mib, 1 << 20);
        blocks[mib++] = p;
    }
    unsigned sum = 0;
    for (int i = 0; i < mib; i++) {
        sum += (unsigned char)blocks[i][i];
    }
    if (argc > 1 && strcmp(argv[1], "graceful") == 0) {
        printf("{\"allocated_mib\":%d,\"sum\":%u}\n", mib, sum);
        return 0;
    }
    fprintf(stderr, "grow: malloc failed after %d MiB\n", mib);
    return 3;
}
