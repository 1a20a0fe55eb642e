/* loop: never ends; only the deadline stops it. */
int main(void) {
    volatile unsigned n = 0;
    for (;;) {
        n++;
    }
}
