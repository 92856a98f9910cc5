/*
 * vmtool: small static helper for the numaplaced QEMU test bed (runs inside the guest).
 *
 *   vmtool uevents        print every kernel uevent (NETLINK_KOBJECT_UEVENT, group 1) as one line:
 *                         "<realtime_us> <ACTION> <DEVPATH> <SUBSYSTEM> <PCI_SLOT_NAME or ->", until killed.
 *                         Prints "READY <realtime_us>" first, once the socket is bound.
 *   vmtool stamp          copy stdin to stdout line by line, each line prefixed with "<realtime_us> ".
 *   vmtool now            print CLOCK_REALTIME in microseconds.
 *   vmtool varlink SOCKET JSON
 *                         send one Varlink message (JSON + NUL) to the unix socket SOCKET and print each reply
 *                         on its own line, until a reply without "continues": true (or EOF). Talks to the
 *                         daemon without numaplacectl, to tell a client bug from a daemon bug.
 *
 * Timestamps are CLOCK_REALTIME microseconds so they compare directly with the daemon's event timestamps
 * (microseconds since the epoch, see io.numaplaced.Manager.varlink) taken on the same guest clock.
 */
#define _GNU_SOURCE
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static int uevents(void) {
    int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
    struct sockaddr_nl a = {.nl_family = AF_NETLINK, .nl_pid = 0, .nl_groups = 1};
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("vmtool: netlink");
        return 1;
    }
    int rcv = 4 << 20;   /* a burst of hotplug events must not overflow the socket */
    setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv);
    printf("READY %lld\n", now_us());
    fflush(stdout);
    char buf[16384];
    for (;;) {
        ssize_t n = recv(s, buf, sizeof buf - 1, 0);
        if (n <= 0) continue;
        long long t = now_us();
        buf[n] = 0;
        const char *action = "-", *devpath = "-", *subsys = "-", *slot = "-";
        for (char *q = buf; q < buf + n; q += strlen(q) + 1) {
            if (!strncmp(q, "ACTION=", 7)) action = q + 7;
            else if (!strncmp(q, "DEVPATH=", 8)) devpath = q + 8;
            else if (!strncmp(q, "SUBSYSTEM=", 10)) subsys = q + 10;
            else if (!strncmp(q, "PCI_SLOT_NAME=", 14)) slot = q + 14;
        }
        printf("%lld %s %s %s %s\n", t, action, devpath, subsys, slot);
        fflush(stdout);
    }
}

static int stamp(void) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        printf("%lld %s", now_us(), line);
        if (line[n - 1] != '\n') putchar('\n');
        fflush(stdout);
    }
    return 0;
}

static int varlink(const char *path, const char *json) {
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) return 2;
    strcpy(a.sun_path, path);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("vmtool: connect");
        return 1;
    }
    size_t n = strlen(json) + 1;   /* the NUL terminates the message */
    for (size_t off = 0; off < n;) {
        ssize_t w = write(s, json + off, n - off);
        if (w <= 0) { perror("vmtool: write"); return 1; }
        off += (size_t)w;
    }
    static char msg[1 << 22];
    size_t len = 0;
    for (;;) {
        ssize_t r = read(s, msg + len, sizeof msg - 1 - len);
        if (r <= 0) return len ? 1 : 0;
        len += (size_t)r;
        char *nul;
        while ((nul = memchr(msg, 0, len)) != NULL) {
            size_t m = (size_t)(nul - msg);
            fwrite(msg, 1, m, stdout);
            putchar('\n');
            fflush(stdout);
            int more = 0;
            char *c = memmem(msg, m, "\"continues\"", 11);
            if (c) {
                c += 11;
                while (c < msg + m && (*c == ' ' || *c == ':')) c++;
                more = c < msg + m && *c == 't';
            }
            memmove(msg, nul + 1, len - m - 1);
            len -= m + 1;
            if (!more) return 0;
        }
        if (len == sizeof msg - 1) return 1;
    }
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "varlink")) return varlink(argv[2], argv[3]);
    if (argc >= 2 && !strcmp(argv[1], "uevents")) return uevents();
    if (argc >= 2 && !strcmp(argv[1], "stamp")) return stamp();
    if (argc >= 2 && !strcmp(argv[1], "now")) {
        printf("%lld\n", now_us());
        return 0;
    }
    fprintf(stderr, "usage: vmtool uevents|stamp|now|varlink SOCKET JSON\n");
    return 2;
}
