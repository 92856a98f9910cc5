/*
 * The spawn child: what runs between clone(CLONE_VM|CLONE_VFORK) and execve.
 *
 * The child shares the parent's memory (and, without CLONE_SETTLS, the parent thread's TLS) until it
 * calls execve, so it must not allocate, take a lock, or touch errno: any of those could corrupt or
 * deadlock the parent, which other threads keep running. It therefore issues system calls through
 * np_sys6 below, which returns -errno instead of setting errno, and reads only the ready-made
 * np_spawn_config. This is the pattern of glibc's posix_spawn and swift-subprocess's process shims.
 */
#define _GNU_SOURCE
#include "np_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#define NP_CLONE_INTO_CGROUP 0x200000000ULL

/* struct clone_args of linux/sched.h up to `cgroup` (CLONE_ARGS_SIZE_VER2), spelt out so that older
   kernel headers build it. */
struct np_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

/* The kernel's sigset_t is 64 bits on every architecture numaplaced supports (x86_64, aarch64,
 * riscv64, ppc64le, s390x); rt_sigaction and rt_sigprocmask reject any other size. */
#define NP_KERNEL_SIGSET_BYTES 8
#define NP_KERNEL_NSIG 64
/* The child's stack. Its frames are small and bounded (no recursion, no arrays sized by input):
   np_child_main and np_fail use well under 1 KiB, the clone trampoline a few words. */
#define NP_CHILD_STACK_BYTES (16 * 1024)

/* A raw system call: returns the kernel's value, a negative errno on failure. Never touches errno. */
static inline long np_sys6(long n, long a1, long a2, long a3, long a4, long a5, long a6) {
#if defined(__x86_64__)
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    long ret;
    __asm__ __volatile__("syscall"
                         : "=a"(ret)
                         : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
    return ret;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a1;
    register long x1 __asm__("x1") = a2;
    register long x2 __asm__("x2") = a3;
    register long x3 __asm__("x3") = a4;
    register long x4 __asm__("x4") = a5;
    register long x5 __asm__("x5") = a6;
    __asm__ __volatile__("svc 0"
                         : "+r"(x0)
                         : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                         : "memory", "cc");
    return x0;
#else
    /* Elsewhere libc's syscall(2): lock-free, but it writes errno into the parent thread's TLS.
       Harmless, as the parent thread is suspended and np_spawn returns its own result. */
    long r = syscall(n, a1, a2, a3, a4, a5, a6);
    return r == -1 ? -errno : r;
#endif
}

static inline long np_sys0(long n) { return np_sys6(n, 0, 0, 0, 0, 0, 0); }
static inline long np_sys1(long n, long a) { return np_sys6(n, a, 0, 0, 0, 0, 0); }
static inline long np_sys2(long n, long a, long b) { return np_sys6(n, a, b, 0, 0, 0, 0); }
static inline long np_sys3(long n, long a, long b, long c) { return np_sys6(n, a, b, c, 0, 0, 0); }
static inline long np_sys4(long n, long a, long b, long c, long d) { return np_sys6(n, a, b, c, d, 0, 0); }

struct np_child_arg {
    const struct np_spawn_config *config;
    pid_t parent;
};

static void np_report(int fd, int step, long negerr, int fatal, int mode) {
    struct np_report r = { step, (int32_t)-negerr, fatal, mode };
    long n;
    do {
        n = np_sys3(SYS_write, fd, (long)&r, (long)sizeof r);
    } while (n == -EINTR);
    /* A failed or short write cannot be reported anywhere; the parent then sees the exit status 127
       with no record and names the step as unknown. */
}

static __attribute__((noreturn)) void np_fail(int fd, int step, long negerr, int mode) {
    np_report(fd, step, negerr, 1, mode);
    for (;;) np_sys1(SYS_exit_group, 127);
}

/* Closes every descriptor from `from` on except `keep`, without close_range (Linux < 5.9). */
static void np_close_loop(int from, int keep) {
    struct rlimit lim = { 0, 0 };
    long limit = 1024;
    if (np_sys4(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, (long)&lim) == 0) {
        /* 1 << 20 is the kernel's default fs.nr_open, the most descriptors a process can hold. */
        if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur > (1UL << 20)) limit = 1L << 20;
        else if ((long)lim.rlim_cur > limit) limit = (long)lim.rlim_cur;
    }
    for (long fd = from; fd < limit; fd++)
        if (fd != keep) np_sys1(SYS_close, fd);
}

static int np_child_main(void *raw) {
    const struct np_child_arg *arg = raw;
    const struct np_spawn_config *c = arg->config;
    int report = c->report_fd;
    long r;

    /* 1. Signals. Dispositions first, while np_spawn still has every signal blocked: a daemon that
       ignores SIGPIPE (SwiftNIO does) must not hand SIG_IGN to its workers through execve, and
       handlers are the parent's code, which must never run on this stack. */
    unsigned long dfl[8] = { 0 }; /* struct sigaction of the kernel: SIG_DFL, no flags, empty mask */
    for (int sig = 1; sig <= NP_KERNEL_NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        r = np_sys4(SYS_rt_sigaction, sig, (long)dfl, 0, NP_KERNEL_SIGSET_BYTES);
        if (r < 0) np_fail(report, NP_STEP_SIGNALS, r, sig);
    }
    unsigned long empty = 0;
    r = np_sys4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&empty, 0, NP_KERNEL_SIGSET_BYTES);
    if (r < 0) np_fail(report, NP_STEP_SIGNALS, r, 0);

    /* New session: the worker must not get the daemon's terminal signals or its process group's. */
    r = np_sys0(SYS_setsid);
    if (r < 0) np_fail(report, NP_STEP_SETSID, r, 0);

    /* 2. The saved original affinity: undoes whatever pinning the daemon or this thread carries. */
    if (c->saved_mask) {
        r = np_sys3(SYS_sched_setaffinity, 0, (long)c->saved_mask_bytes, (long)c->saved_mask);
        if (r < 0) {
            if (c->strict) np_fail(report, NP_STEP_RESTORE_AFFINITY, r, 0);
            np_report(report, NP_STEP_RESTORE_AFFINITY, r, 0, 0);
        }
    }

    /* 3. Drop any inherited memory policy: it survives execve (set_mempolicy(2)). */
    r = np_sys3(SYS_set_mempolicy, NP_MPOL_DEFAULT, 0, 0);
    if (r < 0) {
        if (c->strict) np_fail(report, NP_STEP_RESET_MEMPOLICY, r, NP_MPOL_DEFAULT);
        np_report(report, NP_STEP_RESET_MEMPOLICY, r, 0, NP_MPOL_DEFAULT);
    }

    /* 4. The target CPUs. On failure (EINVAL: a cpuset that shrank since the daemon started) the
       affinity stays on the saved original set by step 2. */
    if (c->target_mask) {
        r = np_sys3(SYS_sched_setaffinity, 0, (long)c->target_mask_bytes, (long)c->target_mask);
        if (r < 0) {
            if (c->strict) np_fail(report, NP_STEP_SET_AFFINITY, r, 0);
            np_report(report, NP_STEP_SET_AFFINITY, r, 0, 0);
        }
    }

    /* 5. The target memory policy; best-effort degrades bind/interleave → preferred → default. */
    if (c->mpol_mode != NP_MPOL_DEFAULT) {
        r = np_sys3(SYS_set_mempolicy, c->mpol_mode, (long)c->nodemask, (long)c->maxnode);
        if (r < 0) {
            if (c->strict) np_fail(report, NP_STEP_SET_MEMPOLICY, r, c->mpol_mode);
            np_report(report, NP_STEP_SET_MEMPOLICY, r, 0, c->mpol_mode);
            if (c->mpol_mode != NP_MPOL_PREFERRED && c->preferred_nodemask) {
                r = np_sys3(SYS_set_mempolicy, NP_MPOL_PREFERRED, (long)c->preferred_nodemask, (long)c->maxnode);
                if (r < 0) np_report(report, NP_STEP_SET_MEMPOLICY, r, 0, NP_MPOL_PREFERRED);
            }
        }
    }

    /* The caller's resource limits, while the child may still set any (before setuid). The parent
       narrowed each to the daemon's, so this only lowers. */
    for (size_t i = 0; i < c->nrlimits; i++) {
        uint64_t lim[2] = { c->rlimits[i].soft, c->rlimits[i].hard }; /* struct rlimit64 */
        r = np_sys4(SYS_prlimit64, 0, c->rlimits[i].resource, (long)lim, 0);
        if (r < 0) np_fail(report, NP_STEP_RLIMITS, r, c->rlimits[i].resource);
    }

    /* 6. Credentials, groups first: after setuid the process may no longer change them. Raw calls
       on purpose: glibc's setuid would broadcast SIGSETXID to the parent's threads. */
    if (c->set_groups) {
        r = np_sys2(SYS_setgroups, (long)c->ngroups, (long)c->groups);
        if (r < 0) np_fail(report, NP_STEP_SETGROUPS, r, 0);
    }
    if (c->set_gid) {
        r = np_sys1(SYS_setgid, (long)c->gid);
        if (r < 0) np_fail(report, NP_STEP_SETGID, r, 0);
    }
    if (c->set_uid) {
        r = np_sys1(SYS_setuid, (long)c->uid);
        if (r < 0) np_fail(report, NP_STEP_SETUID, r, 0);
    }

    /* After the credentials: a change of credentials clears the parent-death signal (prctl(2)). */
    if (c->pdeathsig > 0) {
        r = np_sys2(SYS_prctl, PR_SET_PDEATHSIG, c->pdeathsig);
        if (r < 0) np_fail(report, NP_STEP_PDEATHSIG, r, 0);
        /* The parent may have died before the prctl took effect; then no signal would ever come. */
        if (np_sys0(SYS_getppid) != arg->parent) np_fail(report, NP_STEP_PDEATHSIG, -ESRCH, 0);
    }

    /* After the credentials, so that the worker's identity must be able to enter its directory. */
    if (c->cwd) {
        r = np_sys1(SYS_chdir, (long)c->cwd);
        if (r < 0) np_fail(report, NP_STEP_CHDIR, r, 0);
    }

    /* Stdio and the extra descriptors: target t (0, 1, 2, then 3 + i) gets src[t]. */
    enum { NP_MAX_TARGETS = 3 + NP_MAX_EXTRA_FDS };
    int src[NP_MAX_TARGETS];
    size_t nextra = c->nextra <= NP_MAX_EXTRA_FDS ? c->nextra : NP_MAX_EXTRA_FDS;
    int ntargets = 3 + (int)nextra;
    for (int i = 0; i < 3; i++)
        src[i] = c->stdio[i].kind == NP_STDIO_FD ? c->stdio[i].fd : -1;
    for (size_t i = 0; i < nextra; i++)
        src[3 + i] = c->extra_fds[i];
    /* A dup onto a target must not overwrite the report pipe or another target's source: first move
       every such descriptor at or above ntargets (F_DUPFD_CLOEXEC picks the lowest free one from
       there, clobbering nothing). A source already at its own target stays: no other dup writes it. */
    if (report < ntargets) {
        r = np_sys3(SYS_fcntl, report, F_DUPFD_CLOEXEC, ntargets);
        if (r < 0) np_fail(report, NP_STEP_STDIO, r, -1);
        report = (int)r;
    }
    for (int t = 0; t < ntargets; t++) {
        if (src[t] >= 0 && src[t] < ntargets && src[t] != t) {
            r = np_sys3(SYS_fcntl, src[t], F_DUPFD_CLOEXEC, ntargets);
            if (r < 0) np_fail(report, NP_STEP_STDIO, r, t);
            /* Every other target reading the same descriptor reads the moved copy too. */
            for (int u = ntargets - 1; u > t; u--)
                if (src[u] == src[t]) src[u] = (int)r;
            src[t] = (int)r;
        }
    }
    for (int t = 0; t < ntargets; t++) {
        if (src[t] < 0) continue;
        if (src[t] == t)
            r = np_sys3(SYS_fcntl, t, F_SETFD, 0); /* dup2 onto itself would keep FD_CLOEXEC */
        else
            r = np_sys3(SYS_dup3, src[t], t, 0);
        if (r < 0) np_fail(report, NP_STEP_STDIO, r, t);
    }

    /* Every other descriptor, except the report pipe, which is O_CLOEXEC and closes at execve. */
    r = 0;
    if (report > ntargets) r = np_sys3(SYS_close_range, ntargets, report - 1, 0);
    if (r == 0) r = np_sys3(SYS_close_range, report + 1, ~0U, 0);
    if (r == -ENOSYS || r == -EINVAL) {
        np_close_loop(ntargets, report);
    } else if (r < 0) {
        np_fail(report, NP_STEP_CLOSE_FDS, r, 0);
    }

    /* 7. execve; it returns only on failure. */
    r = np_sys3(SYS_execve, (long)c->path, (long)c->argv, (long)c->envp);
    np_fail(report, NP_STEP_EXEC, r, 0);
}

int np_clone3_shares_vm(void) {
#if defined(__x86_64__) || defined(__aarch64__)
    return 1;
#else
    return 0;
#endif
}

/* clone3 with CLONE_VM: the child resumes right after the system call on the new stack, with the
   parent's registers but not its frame, so no compiled C may run there: the few instructions below
   call fn(arg) on that stack at once and exit with its result should it ever return (as musl's
   __clone does). The kernel keeps every register but the result (and rcx, r11 on x86_64) across the
   call, in the child too. Returns the child's pid or -errno in the parent. */
static long np_clone3_vm(struct np_clone_args *args, int (*fn)(void *), void *arg) {
#if defined(__x86_64__)
    register long r12 __asm__("r12") = (long)fn;
    register long r13 __asm__("r13") = (long)arg;
    long ret;
    __asm__ __volatile__("syscall\n\t"
                         "test %%rax, %%rax\n\t"
                         "jnz 1f\n\t"
                         "xor %%ebp, %%ebp\n\t"
                         "mov %%r13, %%rdi\n\t"
                         "call *%%r12\n\t"
                         "mov %%eax, %%edi\n\t"
                         "mov $231, %%eax\n\t" /* exit_group */
                         "syscall\n\t"
                         "hlt\n"
                         "1:"
                         : "=a"(ret)
                         : "a"((long)SYS_clone3), "D"(args), "S"(sizeof *args), "r"(r12), "r"(r13)
                         : "rcx", "r11", "memory", "cc");
    return ret;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = SYS_clone3;
    register long x0 __asm__("x0") = (long)args;
    register long x1 __asm__("x1") = sizeof *args;
    register long x9 __asm__("x9") = (long)fn;
    register long x10 __asm__("x10") = (long)arg;
    __asm__ __volatile__("svc 0\n\t"
                         "cbnz x0, 1f\n\t"
                         "mov x29, xzr\n\t"
                         "mov x0, x10\n\t"
                         "blr x9\n\t"
                         "mov x8, #94\n\t" /* exit_group */
                         "svc 0\n"
                         "1:"
                         : "+r"(x0)
                         : "r"(x8), "r"(x1), "r"(x9), "r"(x10)
                         : "memory", "cc");
    return x0;
#else
    (void)args; (void)fn; (void)arg;
    return -ENOSYS;
#endif
}

/* clone3 into the config's cgroup. With a shared address space (the trampoline above) the child runs
   on `stack`; with a copied one (fork semantics, CLONE_VFORK still holding the parent) it returns
   here on its copy of this thread's stack and runs np_child_main directly. */
static long np_clone3(const struct np_spawn_config *c, struct np_child_arg *arg, char *stack, size_t stack_bytes,
                      int *pidfd) {
    int shared = c->clone_method == NP_CLONE3_SHARED_VM
        || (c->clone_method == NP_CLONE_AUTO && np_clone3_shares_vm());
    struct np_clone_args args = { 0 };
    args.flags = CLONE_VFORK | CLONE_PIDFD | (shared ? CLONE_VM : 0);
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    args.exit_signal = SIGCHLD;
    if (c->into_cgroup) {
        args.flags |= NP_CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)c->cgroup_fd;
    }
    if (shared) {
        args.stack = (uint64_t)(uintptr_t)stack;
        args.stack_size = stack_bytes;
        return np_clone3_vm(&args, np_child_main, arg);
    }
    long r = np_sys2(SYS_clone3, (long)&args, sizeof args);
    if (r == 0) np_child_main(arg); /* never returns: execve or exit_group */
    return r;
}

int np_spawn(const struct np_spawn_config *config, pid_t *pid_out, int *pidfd_out) {
    /* The child's stack lives in this frame, as in musl's posix_spawn: the calling thread is
       suspended until the child has called execve or exited (CLONE_VFORK), so nothing else touches
       this memory meanwhile, and no mmap/munmap (with its TLB shootdown) is paid per spawn. */
    char stack[NP_CHILD_STACK_BYTES] __attribute__((aligned(64)));
    struct np_child_arg arg = { config, getpid() };

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);

    int pidfd = -1;
    if (config->into_cgroup || config->clone_method != NP_CLONE_AUTO) {
        long r = np_clone3(config, &arg, stack, sizeof stack, &pidfd);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
            errno = (int)-r;
            return -1;
        }
        *pid_out = (pid_t)r;
        *pidfd_out = pidfd;
        return 0;
    }
    char *top = stack + sizeof stack;
    pid_t pid = clone(np_child_main, top, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &arg, &pidfd);
    int saved = errno;
    if (pid < 0 && saved == EINVAL) {
        /* Linux < 5.2 has no CLONE_PIDFD. Our unreaped child's pid cannot be reused, so a pidfd
           opened afterwards (Linux 5.3) still names it. */
        pidfd = -1;
        pid = clone(np_child_main, top, CLONE_VM | CLONE_VFORK | SIGCHLD, &arg);
        saved = errno;
        if (pid > 0) pidfd = np_pidfd_open(pid, 0);
    }

    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        errno = saved;
        return -1;
    }
    *pid_out = pid;
    *pidfd_out = pidfd < 0 ? -1 : pidfd;
    return 0;
}
