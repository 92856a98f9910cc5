/*
 * np_shim: the C side of numaplaced's spawner, plus thin wrappers for the GNU and Linux calls that
 * Swift's Glibc module does not import (sched_setaffinity and friends sit behind _GNU_SOURCE; prctl
 * and syscall are variadic; siginfo_t is a union; struct ucred is GNU-only).
 *
 * Conventions:
 * - Every wrapper behaves like the libc call it names: it returns -1 and sets errno on failure.
 * - None of them retries EINTR; the Swift side does that at one choke point.
 * - np_spawn's child runs raw system calls only: no malloc, no locks, no errno, no stdio
 *   (it shares the parent's memory until execve, see clone(2) CLONE_VM).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------
 * The spawn child
 * ---------------------------------------------------------------------------------------------- */

/* The steps of the child (DESIGN.md, "The spawn sequence"). The values cross the report pipe; Swift
 * mirrors them in SpawnStep. NP_STEP_PDEATHSIG runs after NP_STEP_SETUID: the kernel clears the
 * parent-death signal when the credentials change (prctl(2)), so set before them it never fired for
 * a worker of another user. */
enum np_step {
    NP_STEP_SIGNALS = 1,
    NP_STEP_SETSID = 2,
    NP_STEP_PDEATHSIG = 3,
    NP_STEP_RESTORE_AFFINITY = 4,
    NP_STEP_RESET_MEMPOLICY = 5,
    NP_STEP_SET_AFFINITY = 6,
    NP_STEP_SET_MEMPOLICY = 7,
    NP_STEP_SETGROUPS = 8,
    NP_STEP_SETGID = 9,
    NP_STEP_SETUID = 10,
    NP_STEP_CHDIR = 11,
    NP_STEP_STDIO = 12,
    NP_STEP_CLOSE_FDS = 13,
    NP_STEP_EXEC = 14,
    NP_STEP_RLIMITS = 15,
};

/* What the child writes to the report pipe, one record per event. Fixed size and far below
 * PIPE_BUF, so each write is atomic and a non-blocking pipe never fills (at most 4 records). */
struct np_report {
    int32_t step;   /* enum np_step */
    int32_t err;    /* the errno the kernel returned */
    int32_t fatal;  /* 1: the child exits 127 after writing it; 0: a best-effort degradation */
    int32_t mode;   /* NP_STEP_SET_MEMPOLICY: the MPOL_* mode that failed; NP_STEP_STDIO: the fd */
};

/* The most further descriptors a worker may be given (at 3 … 3 + NP_MAX_EXTRA_FDS - 1). */
#define NP_MAX_EXTRA_FDS 16

/* How one of the descriptors 0, 1, 2 is set up in the child. */
/* The child opens nothing: while it runs it shares the daemon's memory (CLONE_VM), so /proc/self is
 * the daemon's, and an open that blocks (a FIFO nobody opens, a hung NFS mount) would block the spawn
 * thread for every caller. Files are opened by the parent, as the caller (np_thread_fs_identity). */
enum np_stdio_kind {
    NP_STDIO_INHERIT = 0, /* leave the descriptor as the parent has it (open or closed) */
    NP_STDIO_FD = 1,      /* dup2(fd, target); the parent keeps ownership of fd */
};

struct np_stdio {
    int32_t kind;  /* enum np_stdio_kind */
    int32_t fd;    /* NP_STDIO_FD */
};

/* One resource limit for the worker (prlimit64(2) of the child itself, before the credentials). */
struct np_rlimit {
    int32_t resource;
    uint64_t soft;
    uint64_t hard;
};

/* Everything the child needs, prepared by the parent. The child only reads it. */
struct np_spawn_config {
    const char *path;          /* absolute or relative path given to execve; PATH is resolved before */
    char *const *argv;         /* NULL-terminated */
    char *const *envp;         /* NULL-terminated */
    const char *cwd;           /* NULL: keep the parent's working directory */
    struct np_stdio stdio[3];
    int32_t report_fd;         /* write end of an O_CLOEXEC|O_NONBLOCK pipe */
    int32_t strict;            /* 1: affinity and mempolicy failures are fatal; 0: best-effort */
    int32_t pdeathsig;         /* 0: none */

    const unsigned long *saved_mask; /* the saved original CPUs; NULL: skip the restore step */
    size_t saved_mask_bytes;
    const unsigned long *target_mask; /* the target CPUs; NULL: stay on the saved original */
    size_t target_mask_bytes;

    int32_t mpol_mode;                 /* MPOL_DEFAULT (0) skips the target step */
    const unsigned long *nodemask;     /* the target nodes */
    unsigned long maxnode;             /* as set_mempolicy(2) takes it: bits in nodemask + 1 */
    const unsigned long *preferred_nodemask; /* best-effort fallback: the first target node alone */

    int32_t set_groups;
    int32_t set_gid;
    int32_t set_uid;
    uint32_t gid;
    uint32_t uid;
    size_t ngroups;
    const uint32_t *groups;

    size_t nrlimits;                   /* the caller's limits (never wider than the daemon's) */
    const struct np_rlimit *rlimits;

    int32_t into_cgroup;               /* 0: the child starts in the daemon's cgroup; 1: in cgroup_fd's */
    int32_t cgroup_fd;                 /* an O_PATH directory of a cgroup v2 group (clone3 CLONE_INTO_CGROUP) */
    int32_t clone_method;              /* enum np_clone_method */
    size_t nextra;                     /* further descriptors: extra_fds[i] becomes the worker's 3 + i */
    const int32_t *extra_fds;          /* the parent keeps ownership of each */
};

/* How np_spawn makes the child. NP_CLONE_AUTO: clone(2) without a cgroup, clone3 sharing memory with
 * one (where this file has a trampoline for the architecture, else clone3 copying memory). The other
 * two force a clone3 variant (for measurements, and for the tests of both). */
enum np_clone_method {
    NP_CLONE_AUTO = 0,
    NP_CLONE3_SHARED_VM = 1,  /* clone3(CLONE_VM|CLONE_VFORK) on a stack of our own, via np_clone3_vm */
    NP_CLONE3_COPIED_VM = 2,  /* clone3(CLONE_VFORK) without CLONE_VM: fork semantics, page tables copied */
};

/* Whether clone3 with CLONE_VM has a trampoline on this architecture (x86_64, aarch64). */
int np_clone3_shares_vm(void);

/* Starts the child with clone(CLONE_VM|CLONE_VFORK|CLONE_PIDFD|SIGCHLD) (clone3 with CLONE_INTO_CGROUP
 * when into_cgroup is set, Linux 5.7: the child is never outside its group; see clone_method) on a 16 KiB stack carved
 * from the caller's own stack frame; the calling thread is suspended until the child has called
 * execve or exited (clone(2)), so the caller's stack needs that much room.
 * Every signal is blocked in the calling thread around the clone so that no handler of the parent
 * runs on the child's stack before the child has reset its dispositions.
 * On success stores the pid and a pidfd (O_CLOEXEC) and returns 0. The child's failures arrive on
 * the report pipe, not here: -1 and errno mean the clone itself failed. */
int np_spawn(const struct np_spawn_config *config, pid_t *pid, int *pidfd);

/* ------------------------------------------------------------------------------------------------
 * Thin wrappers (each names the call it makes)
 * ---------------------------------------------------------------------------------------------- */

/* sched_getaffinity(2) of `pid` (0: the calling thread). Returns the number of bytes the kernel
 * wrote into `mask` (a multiple of sizeof(unsigned long)), or -1; EINVAL when `bytes` is smaller
 * than the kernel's CPU mask. */
int np_sched_getaffinity(pid_t pid, size_t bytes, unsigned long *mask);
/* sched_setaffinity(2) of `pid` (0: the calling thread). */
int np_sched_setaffinity(pid_t pid, size_t bytes, const unsigned long *mask);
/* get_mempolicy(2), raw system call (no libnuma). */
int np_get_mempolicy(int *mode, unsigned long *nodemask, unsigned long maxnode, void *addr, unsigned long flags);
/* set_mempolicy(2) of the calling thread, raw system call (no libnuma). */
int np_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
/* prlimit(2) of `pid` (0: the calling process), reading only. */
int np_prlimit(pid_t pid, int resource, struct rlimit *old_limit);
/* pidfd_open(2). */
int np_pidfd_open(pid_t pid, unsigned int flags);
/* pidfd_send_signal(2) with no siginfo. */
int np_pidfd_send_signal(int pidfd, int sig, unsigned int flags);
/* waitid(P_PIDFD, pidfd, &info, options) (waitid(2), Linux 5.4). siginfo_t is flattened:
 * *pid is 0 when WNOHANG found no state change; *code is CLD_EXITED, CLD_KILLED, CLD_DUMPED,
 * CLD_STOPPED, CLD_TRAPPED or CLD_CONTINUED; *status the exit code or the signal. */
int np_waitid_pidfd(int pidfd, int options, pid_t *pid, int *code, int *status);
/* statfs(2)'s f_type of `path` (CGROUP2_SUPER_MAGIC for the unified cgroup hierarchy), or -1. */
long np_fs_type(const char *path);
/* getxattr(2). */
long np_getxattr(const char *path, const char *name, void *value, size_t size);
/* pipe2(2). */
int np_pipe2(int fds[2], int flags);
/* getsockopt(fd, SOL_SOCKET, SO_PEERCRED) (unix(7)): the credentials of a Unix socket's peer
 * as they were at connect(2). */
int np_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid);
/* getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD) (Linux 6.5): a pidfd (O_CLOEXEC) of the peer that
 * connected; -1 with errno ENOPROTOOPT on older kernels. */
int np_peer_pidfd(int fd);
/* accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC (a GNU extension Swift's Glibc does not import). */
int np_accept_nonblocking(int fd);
/* Sets the calling thread's filesystem identity: its supplementary groups, then setfsgid(2) and
 * setfsuid(2), each with the raw system call, which changes this thread only (glibc's setgroups
 * would broadcast to every thread of the daemon). Path lookups and permission checks of this thread
 * then use these ids, so files are opened "with the caller's hands" while the daemon stays root.
 * `as_caller` 1 also lowers the thread's effective capabilities to CAP_SETUID and CAP_SETGID (a
 * capability such as CAP_SYS_PTRACE would otherwise open /proc/<pid>/cwd of another user); 0 raises
 * them back to the permitted set first, for the return to the daemon's identity.
 * Returns 0, or -1 with errno (EPERM when the kernel kept another fsuid or fsgid). */
int np_thread_fs_identity(uid_t uid, gid_t gid, size_t ngroups, const gid_t *groups, int as_caller);
/* What an open descriptor is, for deciding whether a worker may get it from a path (fstat(2),
 * fstatfs(2); makedev and the filesystem magic are macros Swift cannot see). */
enum np_fd_kind {
    NP_FD_REGULAR = 0,  /* a regular file outside procfs */
    NP_FD_DEV_NULL = 1, /* the null device, 1:3 */
    NP_FD_FIFO = 2,
    NP_FD_SOCKET = 3,
    NP_FD_DEVICE = 4,   /* any other character or block device (a terminal, a disk) */
    NP_FD_PROC = 5,     /* anything on procfs */
    NP_FD_OTHER = 6,    /* a directory, … */
};
/* Returns an enum np_fd_kind, or -1 with errno. */
int np_fd_kind(int fd);
/* prctl(2), which Swift cannot call because it is variadic (PR_SET_CHILD_SUBREAPER, PR_SET_NAME, …). */
int np_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5);
/* The process environment, `environ` (Swift's Glibc does not export the variable). */
char **np_environ(void);

/* Constants Swift's Glibc module does not carry. */
enum {
    NP_MPOL_DEFAULT = 0,
    NP_MPOL_PREFERRED = 1,
    NP_MPOL_BIND = 2,
    NP_MPOL_INTERLEAVE = 3,
    NP_MPOL_LOCAL = 4,
};

#ifdef __cplusplus
}
#endif
