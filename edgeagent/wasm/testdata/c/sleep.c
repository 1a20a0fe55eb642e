/* sleep: sleeps 30 seconds in the host (poll_oneoff); only the deadline stops it sooner. */
#include <unistd.h>

int main(void) {
    sleep(30);
    return 0;
}
