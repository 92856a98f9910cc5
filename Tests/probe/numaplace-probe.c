/*
 * numaplace-probe: reports, from inside a process, where the kernel placed it.
 *
 * Tests spawn it as a worker and compare what it prints with what the daemon says it applied.
 * It prints one JSON object on stdout:
 *   {"pid":123,"cpus":"2-3","policy":"bind","policyNodes":"1","pageNode":1,"cpu":3,
 *    "env":{"NUMAPLACE_DEVICE":"0000:81:00.0","NUMAPLACE_NODE":"1","NUMAPLACE_CPUS":"2-3"},"fds":[0,1,2]}
 * - cpus: sched_getaffinity(0)
 * - policy/policyNodes: get_mempolicy(&mode, mask, ..., NULL, 0), the task policy
 * - pageNode: a page touched after start, get_mempolicy(MPOL_F_NODE|MPOL_F_ADDR) on it
 * - fds: the open descriptors, read from /proc/self/fd
 * Arguments: `sleep SECONDS` keeps it running after printing; `exit CODE` exits with CODE.
 * Raw syscalls for the memory policy so the probe needs no libnuma (it runs in a bare VM initramfs).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PROBE_MPOL_F_NODE (1 << 0)
#define PROBE_MPOL_F_ADDR (1 << 1)
#define PROBE_MAX_NODES 1024

static const char *mode_name(int mode) {
    switch (mode & 0xffff) {   /* strip MPOL_F_STATIC_NODES and friends */
    case 0: return "default";
    case 1: return "preferred";
    case 2: return "bind";
    case 3: return "interleave";
    case 4: return "local";
    case 5: return "preferred-many";
    case 6: return "weighted-interleave";
    default: return "unknown";
    }
}

/* Prints the set bits of `bits` (nbits long) as a cpulist ("0-3,8"). */
static void print_list(const unsigned long *bits, int nbits) {
    int first = 1, start = -1;
    const int w = (int)(8 * sizeof(unsigned long));
    for (int i = 0; i <= nbits; i++) {
        int set = i < nbits && (bits[i / w] >> (i % w)) & 1UL;
        if (set && start < 0) start = i;
        if (!set && start >= 0) {
            printf("%s%d", first ? "" : ",", start);
            if (i - 1 > start) printf("-%d", i - 1);
            first = 0; start = -1;
        }
    }
}

static void print_env(const char *name, int *first) {
    const char *v = getenv(name);
    if (!v) return;
    printf("%s\"%s\":\"%s\"", *first ? "" : ",", name, v);
    *first = 0;
}

int main(int argc, char **argv) {
    cpu_set_t set;
    CPU_ZERO(&set);
    unsigned long cpubits[CPU_SETSIZE / (8 * sizeof(unsigned long))] = {0};
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int i = 0; i < CPU_SETSIZE; i++)
            if (CPU_ISSET(i, &set)) cpubits[i / (8 * sizeof(unsigned long))] |= 1UL << (i % (8 * sizeof(unsigned long)));
    }
    int mode = -1;
    unsigned long nodes[PROBE_MAX_NODES / (8 * sizeof(unsigned long))] = {0};
    if (syscall(SYS_get_mempolicy, &mode, nodes, (unsigned long)PROBE_MAX_NODES, NULL, 0UL) != 0) mode = -1;

    long page = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int page_node = -1;
    if (p != MAP_FAILED) {
        p[0] = 1;   /* fault the page in so it has a node */
        if (syscall(SYS_get_mempolicy, &page_node, NULL, 0UL, p, (unsigned long)(PROBE_MPOL_F_NODE | PROBE_MPOL_F_ADDR)) != 0)
            page_node = -1;
    }

    printf("{\"pid\":%d,\"cpus\":\"", (int)getpid());
    print_list(cpubits, CPU_SETSIZE);
    printf("\",\"policy\":\"%s\",\"policyNodes\":\"", mode < 0 ? "error" : mode_name(mode));
    if (mode > 0) print_list(nodes, PROBE_MAX_NODES);
    printf("\",\"pageNode\":%d,\"cpu\":%d,\"env\":{", page_node, sched_getcpu());
    int first = 1;
    print_env("NUMAPLACE_DEVICE", &first);
    print_env("NUMAPLACE_DEVICES", &first);
    print_env("NUMAPLACE_NODE", &first);
    print_env("NUMAPLACE_CPUS", &first);
    printf("},\"fds\":[");
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int dfd = dirfd(d), firstfd = 1;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            int fd = atoi(e->d_name);
            if (fd == dfd) continue;
            printf("%s%d", firstfd ? "" : ",", fd);
            firstfd = 0;
        }
        closedir(d);
    }
    printf("]}\n");
    fflush(stdout);

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "sleep") == 0) sleep((unsigned)atoi(argv[i + 1]));
        else if (strcmp(argv[i], "exit") == 0) return atoi(argv[i + 1]);
    }
    return 0;
}
