/* SPDX-License-Identifier: MIT */
#include "tests/client-lib/fake-daemon.h"

#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/envelope.h"
#include "proto/macro.h"

_Noreturn void fake_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "fake daemon: %s:%d: %s: ", file, line, cond);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        _exit(1);
}

static _Noreturn void run_script(int sock, fake_script_fn script, void *userdata)
{
        script(sock, userdata);
        (void)close(sock);
        _exit(0);
}

int fake_start(struct fake *f, fake_script_fn script, void *userdata)
{
        int sv[2];

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        f->pid = fork();
        ck_assert_int_ge(f->pid, 0);
        if (f->pid == 0) {
                (void)close(sv[0]);
                run_script(sv[1], script, userdata);
        }
        (void)close(sv[1]);
        return sv[0];
}

void fake_start_listen(struct fake *f, const char *path, fake_script_fn script, void *userdata)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int l;

        ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
        strcpy(sa.sun_path, path);
        l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(l, 0);
        ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(l, 4), 0);
        f->pid = fork();
        ck_assert_int_ge(f->pid, 0);
        if (f->pid == 0) {
                int sock = accept4(l, NULL, NULL, SOCK_CLOEXEC);

                fake_check(sock >= 0, "accept: %s", strerror(errno));
                (void)close(l);
                run_script(sock, script, userdata);
        }
        (void)close(l);
}

void fake_finish(struct fake *f)
{
        int status;

        ck_assert_int_eq(waitpid(f->pid, &status, 0), f->pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "fake daemon failed (status 0x%x), see its stderr", status);
}

struct vfiod_msg *fake_recv(int sock, Vfiod__Envelope__BodyCase expect)
{
        struct vfiod_msg *msg = NULL;
        const char *reason = "";
        int r;

        do
                r = vfiod_msg_recv(sock, 0, &msg, &reason);
        while (r == -EINTR);
        fake_check(r > 0, "expected '%d', got r=%d (%s)", (int)expect, r, r < 0 ? reason : "EOF");
        fake_check(msg->env->body_case == expect, "expected body %d, got '%s'", (int)expect,
                   vfiod_envelope_body_name(msg->env));
        fake_check(msg->env->id != 0, "request with id 0");
        return msg;
}

void fake_expect_eof(int sock)
{
        struct vfiod_msg *msg = NULL;
        const char *reason = "";
        int r;

        do
                r = vfiod_msg_recv(sock, 0, &msg, &reason);
        while (r == -EINTR);
        fake_check(r == 0, "expected EOF, got r=%d (%s)", r,
                   r > 0 ? vfiod_envelope_body_name(msg->env) : reason);
}

void fake_send(int sock, Vfiod__Envelope *env, const int *fds, size_t n_fds)
{
        int r = vfiod_msg_send(sock, env, fds, n_fds);

        fake_check(r == 0, "send: %s", strerror(-r));
}

void fake_answer(int sock, struct vfiod_msg *request, Vfiod__Envelope *env, const int *fds,
                 size_t n_fds)
{
        env->id = request->env->id;
        fake_send(sock, env, fds, n_fds);
        vfiod_msg_free(request);
}

void fake_reply_ok(int sock, uint64_t id)
{
        Vfiod__Ok ok = VFIOD__OK__INIT;
        Vfiod__Envelope env = ENVELOPE(ok, &ok);

        env.id = id;
        fake_send(sock, &env, NULL, 0);
}

void fake_reply_error(int sock, uint64_t id, int errnum, const char *reason)
{
        Vfiod__Error e = VFIOD__ERROR__INIT;
        Vfiod__Envelope env = ENVELOPE(error, &e);

        e.errnum = errnum;
        e.reason = (char *)reason;
        env.id = id;
        fake_send(sock, &env, NULL, 0);
}

void fake_hello(int sock, uint32_t major, uint64_t capabilities)
{
        fake_hello_version(sock, major, 3, capabilities);
}

void fake_hello_version(int sock, uint32_t major, uint32_t minor, uint64_t capabilities)
{
        struct vfiod_msg *msg = fake_recv(sock, VFIOD__ENVELOPE__BODY_HELLO);
        Vfiod__Limits limits = VFIOD__LIMITS__INIT;
        Vfiod__HelloReply hr = VFIOD__HELLO_REPLY__INIT;
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;

        fake_check(msg->env->hello->major == 1, "hello major %u", msg->env->hello->major);
        fake_check(msg->env->hello->capabilities & VFIOD__CAPABILITY__CAPABILITY_EVENTS,
                   "capabilities 0x%llx", (unsigned long long)msg->env->hello->capabilities);
        limits.max_domains = 4;
        limits.max_pinned_bytes = UINT64_C(1) << 30;
        hr.major = major;
        hr.minor = minor;
        hr.capabilities = capabilities;
        hr.max_datagram = 4096;
        hr.max_fds = 8;
        hr.limits = &limits;
        hr.server_version = "fake 1.0";
        env = ENVELOPE(hello_reply, &hr);
        env.id = msg->env->id;
        vfiod_msg_free(msg);
        fake_send(sock, &env, NULL, 0);
}

void fake_send_release_requested(int sock, uint64_t lease_id, const char *device, uint32_t grace_ms,
                                 const char *detail)
{
        Vfiod__ReleaseRequested rr = VFIOD__RELEASE_REQUESTED__INIT;
        Vfiod__Envelope env = ENVELOPE(release_requested, &rr);

        rr.lease_id = lease_id;
        rr.device = (char *)device;
        rr.reason = VFIOD__RELEASE_REASON__RELEASE_REASON_ADMIN_REVOKE;
        rr.grace_ms = grace_ms;
        rr.detail = (char *)detail;
        fake_send(sock, &env, NULL, 0);
}

void fake_send_device_error(int sock, uint64_t lease_id, const char *device)
{
        Vfiod__DeviceError de = VFIOD__DEVICE_ERROR__INIT;
        Vfiod__Envelope env = ENVELOPE(device_error, &de);

        de.lease_id = lease_id;
        de.device = (char *)device;
        fake_send(sock, &env, NULL, 0);
}

void fake_send_lease_revoked(int sock, uint64_t lease_id, const char *device, const char *detail)
{
        Vfiod__LeaseRevoked lr = VFIOD__LEASE_REVOKED__INIT;
        Vfiod__Envelope env = ENVELOPE(lease_revoked, &lr);

        lr.lease_id = lease_id;
        lr.device = (char *)device;
        lr.reason = VFIOD__RELEASE_REASON__RELEASE_REASON_POLICY_CHANGE;
        lr.detail = (char *)detail;
        fake_send(sock, &env, NULL, 0);
}

uint64_t fake_inode(int fd)
{
        struct stat st;

        if (fstat(fd, &st) < 0)
                return 0;
        return (uint64_t)st.st_ino;
}
