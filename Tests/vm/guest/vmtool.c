/*
 * vmtool: small static helper for the numaplaced QEMU test bed (runs inside the guest).
 *
 *   vmtool uevents        print every kernel uevent (NETLINK_KOBJECT_UEVENT, group 1) as one line:
 *                         "<realtime_us> <ACTION> <DEVPATH> <SUBSYSTEM> <PCI_SLOT_NAME or ->", until killed.
 *                         Prints "READY <realtime_us>" first, once the socket is bound.
 *   vmtool stamp          copy stdin to stdout line by line, each line prefixed with "<realtime_us> ".
 *   vmtool now            print CLOCK_REALTIME in microseconds.
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

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "uevents")) return uevents();
    if (argc >= 2 && !strcmp(argv[1], "stamp")) return stamp();
    if (argc >= 2 && !strcmp(argv[1], "now")) {
        printf("%lld\n", now_us());
        return 0;
    }
    fprintf(stderr, "usage: vmtool uevents|stamp|now\n");
    return 2;
}
