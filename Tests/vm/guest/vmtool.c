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
 *   vmtool spawnbench N NODE SOCKET...
 *                         N rounds, interleaved: posix_spawn of /bin/true + waitpid (bare), then for each SOCKET
 *                         a Spawn of /bin/true on NODE (reply timed) and its Wait (to the reaped exit). Prints
 *                         one line per method: "<name> median_reply_us median_total_us". For the cost of a
 *                         worker's cgroup: one daemon gives groups, one runs with --no-worker-cgroups.
 *
 * Timestamps are CLOCK_REALTIME microseconds so they compare directly with the daemon's event timestamps
 * (microseconds since the epoch, see io.numaplaced.Manager.varlink) taken on the same guest clock.
 */
#define _GNU_SOURCE
#include <linux/netlink.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
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

static long long mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* One call on connection s; the reply (without its NUL) into buf. 0 on success. */
static int call(int s, const char *json, char *buf, size_t cap) {
    size_t n = strlen(json) + 1;
    for (size_t off = 0; off < n;) {
        ssize_t w = write(s, json + off, n - off);
        if (w <= 0) return -1;
        off += (size_t)w;
    }
    size_t len = 0;
    for (;;) {
        ssize_t r = read(s, buf + len, cap - 1 - len);
        if (r <= 0) return -1;
        len += (size_t)r;
        if (memchr(buf, 0, len)) return strstr(buf, "\"error\"") ? -1 : 0;
        if (len == cap - 1) return -1;
    }
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static long long median(long long *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_ll);
    return v[n / 2];
}

static int spawnbench(int rounds, int node, int nsock, char **paths) {
    extern char **environ;
    if (rounds < 1 || nsock < 1 || nsock > 4) return 2;
    int socks[4];
    for (int i = 0; i < nsock; i++) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        if (strlen(paths[i]) >= sizeof a.sun_path) return 2;
        strcpy(a.sun_path, paths[i]);
        socks[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (socks[i] < 0 || connect(socks[i], (struct sockaddr *)&a, sizeof a) < 0) { perror(paths[i]); return 1; }
    }
    long long *bare = calloc((size_t)rounds, sizeof *bare);
    long long *reply[4], *total[4];
    for (int i = 0; i < nsock; i++) {
        reply[i] = calloc((size_t)rounds, sizeof(long long));
        total[i] = calloc((size_t)rounds, sizeof(long long));
    }
    static char buf[1 << 16];
    char *argv_true[] = {"/bin/true", NULL};
    for (int r = 0; r < rounds; r++) {
        long long t0 = mono_us();
        pid_t pid;
        if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv_true, environ) != 0) return 1;
        waitpid(pid, NULL, 0);
        bare[r] = mono_us() - t0;
        for (int i = 0; i < nsock; i++) {
            t0 = mono_us();
            char spawn[256];
            snprintf(spawn, sizeof spawn,
                     "{\"method\":\"io.numaplaced.Manager.Spawn\",\"parameters\":{\"argv\":[\"/bin/true\"],\"node\":%d}}", node);
            if (call(socks[i], spawn, buf, sizeof buf) != 0) { fprintf(stderr, "Spawn on %s: %s\n", paths[i], buf); return 1; }
            long long t1 = mono_us();
            char *id = strstr(buf, "\"id\":\"");
            if (!id) return 1;
            id += 6;
            char *end = strchr(id, '"');
            if (!end) return 1;
            char wait[256];
            snprintf(wait, sizeof wait, "{\"method\":\"io.numaplaced.Manager.Wait\",\"parameters\":{\"id\":\"%.*s\"}}",
                     (int)(end - id), id);
            if (call(socks[i], wait, buf, sizeof buf) != 0) { fprintf(stderr, "Wait on %s: %s\n", paths[i], buf); return 1; }
            reply[i][r] = t1 - t0;
            total[i][r] = mono_us() - t0;
        }
    }
    printf("bare 0 %lld\n", median(bare, rounds));
    for (int i = 0; i < nsock; i++) printf("%s %lld %lld\n", paths[i], median(reply[i], rounds), median(total[i], rounds));
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 5 && !strcmp(argv[1], "spawnbench")) return spawnbench(atoi(argv[2]), atoi(argv[3]), argc - 4, argv + 4);
    if (argc == 4 && !strcmp(argv[1], "varlink")) return varlink(argv[2], argv[3]);
    if (argc >= 2 && !strcmp(argv[1], "uevents")) return uevents();
    if (argc >= 2 && !strcmp(argv[1], "stamp")) return stamp();
    if (argc >= 2 && !strcmp(argv[1], "now")) {
        printf("%lld\n", now_us());
        return 0;
    }
    fprintf(stderr, "usage: vmtool uevents|stamp|now|varlink SOCKET JSON|spawnbench N NODE SOCKET...\n");
    return 2;
}
