/* bigout: writes 10 MiB to stdout. */
#include <stdio.h>
#include <string.h>

int main(void) {
    static char block[64 << 10];
    memset(block, 'x', sizeof block);
    for (int i = 0; i < 160; i++) {
        fwrite(block, 1, sizeof block, stdout);
    }
    return 0;
}
