/* c-fan is the smallest useful Deviceless function: a closed loop's compute step in C,
 * compiled to WebAssembly (WASI preview 1) with clang and wasi-libc
 * (scripts/wasm-examples.sh):
 *
 *   clang --target=wasm32-wasi -O2 -Wl,--strip-all -o c-fan.wasm examples/wasm/c-fan/fan.c
 *
 * It reads the invocation JSON on stdin and sets the line "fan" to the invocation's
 * args.value (1 when the invocation has "value":1, else 0), with no revert: the rule's next
 * event decides again. Its result is the value. No JSON library: the rule passes
 * args {value: ...} and the engine encodes it as "value":N without spaces. */
#include <stdio.h>
#include <string.h>

int main(void) {
    static char in[64 * 1024];
    size_t len = fread(in, 1, sizeof in - 1, stdin);
    in[len] = '\0';
    int value = strstr(in, "\"value\":1") != NULL;
    printf("{\"actuate\":[{\"line\":\"fan\",\"value\":%d}],\"result\":%d}\n", value, value);
    return 0;
}
