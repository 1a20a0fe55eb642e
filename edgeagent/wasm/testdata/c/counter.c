/* counter: a global incremented once per run. A fresh instance per invocation prints 1. */
#include <stdio.h>

static int counter;

int main(void) {
    counter++;
    printf("{\"counter\":%d}\n", counter);
    return 0;
}
