/* trap: writes a line to stderr, then executes `unreachable`. */
#include <stdio.h>

int main(void) {
    fputs("about to trap\n", stderr);
    fflush(stderr);
    __builtin_trap();
}
