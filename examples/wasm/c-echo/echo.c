/* c-echo is a Deviceless function in C, compiled to WebAssembly (WASI preview 1) with
 * clang and wasi-libc (scripts/wasm-examples.sh):
 *
 *   clang --target=wasm32-wasi -O2 -Wl,--strip-all -o c-echo.wasm examples/wasm/c-echo/echo.c
 *
 * It reads the invocation JSON on stdin (one JSON value) and writes one JSON value on
 * stdout, as every function does (docs/design.md, "Function contract"): it asks the agent to
 * switch the line "fan" on for 30 seconds and returns the invocation it got, unchanged, with
 * the function's name. No JSON library: the invocation is copied through as it is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* put_json_string writes s as a JSON string. */
static void put_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            putchar('\\');
            putchar(c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

int main(void) {
    size_t len = 0, cap = 4096;
    char *in = malloc(cap);
    size_t n;
    while (in && (n = fread(in + len, 1, cap - len, stdin)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            in = realloc(in, cap);
        }
    }
    if (!in) {
        fputs("c-echo: out of memory\n", stderr);
        return 1;
    }
    while (len > 0 && (in[len - 1] == '\n' || in[len - 1] == '\r' || in[len - 1] == ' ')) {
        len--;
    }
    if (len == 0) {
        fputs("c-echo: no invocation on stdin\n", stderr);
        return 1;
    }
    const char *fn = getenv("DEVICELESS_FUNCTION");
    printf("{\"actuate\":[{\"line\":\"fan\",\"value\":1,\"for\":\"30s\"}],\"result\":{\"function\":");
    put_json_string(fn ? fn : "");
    printf(",\"echo\":%.*s}}\n", (int)len, in);
    return 0;
}
