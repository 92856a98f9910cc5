/*
 * Thin wrappers for calls Swift's Glibc module does not import. Each behaves like the libc call it
 * names (-1 and errno on failure) and does nothing else: no retries, no allocation.
 */
#define _GNU_SOURCE
#include "np_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <linux/capability.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

/* The calling thread's effective capabilities: all of its permitted set (`keep` 0), or only
   CAP_SETUID and CAP_SETGID (`keep` 1), which change ids but open nothing. capget/capset act on the
   calling thread alone. */
static int np_thread_effective_caps(int only_setid) {
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    if (syscall(SYS_capget, &header, data) < 0) return -1;
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
        if (only_setid)
            data[i].effective &= i == 0 ? ((1u << CAP_SETUID) | (1u << CAP_SETGID)) : 0;
        else
            data[i].effective = data[i].permitted;
    }
    return (int)syscall(SYS_capset, &header, data);
}

int np_thread_fs_identity(uid_t uid, gid_t gid, size_t ngroups, const gid_t *groups, int as_caller) {
    /* Back to the daemon: capabilities first (setgroups needs CAP_SETGID, kept either way). */
    if (!as_caller && np_thread_effective_caps(0) < 0) return -1;
    if (syscall(SYS_setgroups, ngroups, groups) < 0) return -1;
    syscall(SYS_setfsgid, gid);
    syscall(SYS_setfsuid, uid);
    /* setfsuid and setfsgid report no error: read the ids back (an invalid id changes nothing and
       returns the current one). */
    if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != uid || (gid_t)syscall(SYS_setfsgid, (gid_t)-1) != gid) {
        errno = EPERM;
        return -1;
    }
    /* As the caller: setfsuid drops only the file capabilities; CAP_SYS_PTRACE would still let
       /proc/<pid>/cwd and /proc/<pid>/root lead into another user's directories. */
    if (as_caller && np_thread_effective_caps(1) < 0) return -1;
    return 0;
}

int np_fd_kind(int fd) {
    struct stat st;
    struct statfs fs;
    if (fstat(fd, &st) < 0 || fstatfs(fd, &fs) < 0) return -1;
    if (fs.f_type == 0x9fa0) return NP_FD_PROC; /* PROC_SUPER_MAGIC, linux/magic.h */
    switch (st.st_mode & S_IFMT) {
    case S_IFREG: return NP_FD_REGULAR;
    case S_IFIFO: return NP_FD_FIFO;
    case S_IFSOCK: return NP_FD_SOCKET;
    case S_IFCHR: return st.st_rdev == makedev(1, 3) ? NP_FD_DEV_NULL : NP_FD_DEVICE;
    case S_IFBLK: return NP_FD_DEVICE;
    default: return NP_FD_OTHER;
    }
}

int np_prlimit(pid_t pid, int resource, struct rlimit *old_limit) {
    return prlimit(pid, (__rlimit_resource_t)resource, NULL, old_limit);
}

int np_sched_getaffinity(pid_t pid, size_t bytes, unsigned long *mask) {
    /* The raw call, not glibc's sched_getaffinity: the raw one returns how many bytes the kernel
       wrote, which tells the caller the size of the kernel's mask. */
    long r = syscall(SYS_sched_getaffinity, pid, bytes, mask);
    return r < 0 ? -1 : (int)r;
}

int np_sched_setaffinity(pid_t pid, size_t bytes, const unsigned long *mask) {
    return (int)syscall(SYS_sched_setaffinity, pid, bytes, mask);
}

int np_get_mempolicy(int *mode, unsigned long *nodemask, unsigned long maxnode, void *addr, unsigned long flags) {
    return (int)syscall(SYS_get_mempolicy, mode, nodemask, maxnode, addr, flags);
}

int np_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode) {
    return (int)syscall(SYS_set_mempolicy, mode, nodemask, maxnode);
}

int np_pidfd_open(pid_t pid, unsigned int flags) {
    return (int)syscall(SYS_pidfd_open, pid, flags);
}

int np_pidfd_send_signal(int pidfd, int sig, unsigned int flags) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, flags);
}

int np_waitid_pidfd(int pidfd, int options, pid_t *pid, int *code, int *status) {
    siginfo_t info;
    /* waitid(2): with WNOHANG and no state change si_pid stays 0, but only if it was 0 before. */
    memset(&info, 0, sizeof info);
    if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, options) < 0) return -1;
    *pid = info.si_pid;
    *code = info.si_code;
    *status = info.si_status;
    return 0;
}

int np_pipe2(int fds[2], int flags) {
    return pipe2(fds, flags);
}

int np_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -1;
    if (len != sizeof cred) {
        errno = EPROTO;
        return -1;
    }

    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

int np_peer_pidfd(int fd) {
    int pidfd = -1;
    socklen_t len = sizeof pidfd;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) return -1;
    return pidfd;
}

int np_accept_nonblocking(int fd) { return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }

int np_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5) {
    return prctl(option, arg2, arg3, arg4, arg5);
}

char **np_environ(void) {
    return environ;
}

long np_fs_type(const char *path) {
    struct statfs fs;
    if (statfs(path, &fs) != 0) return -1;
    return (long)fs.f_type;
}

long np_getxattr(const char *path, const char *name, void *value, size_t size) {
    return (long)getxattr(path, name, value, size);
}
