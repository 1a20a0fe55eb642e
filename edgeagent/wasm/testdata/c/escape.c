/* escape: tries to reach the host: files by absolute and relative path, folders, the
 * preopened-descriptor range, and a socket accept on the first descriptors. Prints one JSON
 * object: each attempt's errno name ("ok" if it worked). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

static int first = 1;

static void report(const char *what, int ok, int err) {
    printf("%s\"%s\":\"%s\"", first ? "{" : ",", what, ok ? "ok" : strerror(err));
    first = 0;
}

int main(void) {
    FILE *f = fopen("/etc/passwd", "r");
    report("fopen /etc/passwd", f != NULL, errno);
    f = fopen("passwd", "w");
    report("fopen ./passwd for writing", f != NULL, errno);
    int fd = open("/tmp/x", O_CREAT | O_WRONLY, 0600);
    report("open /tmp/x", fd >= 0, errno);
    DIR *d = opendir("/");
    report("opendir /", d != NULL, errno);
    d = opendir(".");
    report("opendir .", d != NULL, errno);
    for (int i = 3; i < 6; i++) {
        __wasi_prestat_t ps;
        __wasi_errno_t e = __wasi_fd_prestat_get(i, &ps);
        char name[32];
        snprintf(name, sizeof name, "prestat fd %d", i);
        report(name, e == 0, e);
        __wasi_fd_t conn;
        e = __wasi_sock_accept(i, 0, &conn);
        snprintf(name, sizeof name, "sock_accept fd %d", i);
        report(name, e == 0, e);
    }
    printf("}\n");
    return 0;
}
