/* SPDX-License-Identifier: MIT */
/*
 * A fake of the pid -> systemd unit lookup, for the identity tests.
 *
 * libsystemd's sd_peer_get_unit()/sd_peer_get_slice() read /proc/PID/cgroup
 * of the peer's SO_PEERCRED pid, and sd_pid_get_unit()/sd_pid_get_slice()
 * that of PID: whatever process has that number NOW. The tests cannot move
 * processes between cgroups, so with VFIOD_FAKE_UNITS=FILE these four
 * functions answer from FILE instead, read again at every call, one line per
 * pid: "PID UNIT SLICE" ('-' for none). A pid not in it has no unit
 * (-ENXIO), as a process outside any unit. A fourth word "exit" makes the
 * lookup of that pid SIGKILL it and wait until it has exited before it
 * answers: the process is gone by the time the caller checks it again.
 * Without VFIOD_FAKE_UNITS the calls go to libsystemd.
 */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <systemd/sd-login.h>

/* The unit (which = 0) or slice (1) FILE gives pid; 1 when the fake answered, 0 when off. */
static int lookup(pid_t pid, int which, char **ret, int *ret_r)
{
        const char *path = getenv("VFIOD_FAKE_UNITS");
        char line[512], unit[256], slice[256], act[16];
        FILE *f;
        int r = -ENXIO;

        if (!path)
                return 0;
        if (pid <= 0) {
                *ret_r = -ENODATA;
                return 1;
        }
        f = fopen(path, "re");
        while (f && fgets(line, sizeof(line), f)) {
                int p, n = sscanf(line, "%d %255s %255s %15s", &p, unit, slice, act);
                const char *v = which ? slice : unit;

                if (n < 3 || p != pid)
                        continue;
                if (n == 4 && strcmp(act, "exit") == 0) {
                        int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
                        struct pollfd pf = {.fd = pfd, .events = POLLIN};

                        (void)kill(pid, SIGKILL);
                        if (pfd >= 0) {
                                (void)poll(&pf, 1, 5000);
                                close(pfd);
                        }
                }
                if (strcmp(v, "-") == 0)
                        break;
                *ret = strdup(v);
                r = *ret ? 0 : -ENOMEM;
                break;
        }
        if (f)
                fclose(f);
        *ret_r = r;
        return 1;
}

static pid_t peer_pid(int fd)
{
        struct ucred cred;
        socklen_t len = sizeof(cred);

        return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ? -1 : cred.pid;
}

/* libsystemd's own function called name, for when the fake is off. */
static void *real(const char *name)
{
        return dlsym(RTLD_NEXT, name);
}

int sd_pid_get_unit(pid_t pid, char **ret)
{
        int (*f)(pid_t, char **) = (int (*)(pid_t, char **))real("sd_pid_get_unit");
        int r;

        return lookup(pid, 0, ret, &r) ? r : f ? f(pid, ret) : -ENOSYS;
}

int sd_pid_get_slice(pid_t pid, char **ret)
{
        int (*f)(pid_t, char **) = (int (*)(pid_t, char **))real("sd_pid_get_slice");
        int r;

        return lookup(pid, 1, ret, &r) ? r : f ? f(pid, ret) : -ENOSYS;
}

int sd_peer_get_unit(int fd, char **ret)
{
        int (*f)(int, char **) = (int (*)(int, char **))real("sd_peer_get_unit");
        int r;

        return lookup(peer_pid(fd), 0, ret, &r) ? r : f ? f(fd, ret) : -ENOSYS;
}

int sd_peer_get_slice(int fd, char **ret)
{
        int (*f)(int, char **) = (int (*)(int, char **))real("sd_peer_get_slice");
        int r;

        return lookup(peer_pid(fd), 1, ret, &r) ? r : f ? f(fd, ret) : -ENOSYS;
}
