/* dirty: counts the non-zero bytes of its heap — from __heap_base to the end of the initial
 * memory, and 4 MiB it grows (memory.grow) — before touching them; with the argument "dirty"
 * it then fills them with 0xab. A fresh instance, whatever ran before, counts the same: 0 in
 * the grown pages, and in the heap only what the start code wrote (args, environment). */
#include <stdio.h>
#include <string.h>

extern unsigned char __heap_base;

static size_t nonzero(const unsigned char *p, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        c += p[i] != 0;
    }
    return c;
}

int main(int argc, char **argv) {
    unsigned char *heap = &__heap_base;
    size_t initial = __builtin_wasm_memory_size(0) * 65536 - (size_t)heap;
    size_t old = __builtin_wasm_memory_grow(0, 64);
    if (old == (size_t)-1) {
        fputs("dirty: memory.grow failed\n", stderr);
        return 1;
    }
    unsigned char *grown = (unsigned char *)(old * 65536);
    size_t a = nonzero(heap, initial), b = nonzero(grown, 64 * 65536);
    if (argc > 1 && strcmp(argv[1], "dirty") == 0) {
        memset(heap, 0xab, initial);
        memset(grown, 0xab, 64 * 65536);
    }
    printf("{\"heap_nonzero\":%zu,\"grown_nonzero\":%zu,\"heap_bytes\":%zu}\n", a, b, initial);
    return 0;
}
