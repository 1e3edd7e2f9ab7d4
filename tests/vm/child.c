/* SPDX-License-Identifier: MIT */
#include "tests/vm/child.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long the test waits for a child's next line. */
#define LINE_MS 30000

static void p_vsay(struct peer *p, const char *fmt, va_list ap)
{
        char line[1024];
        int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);

        if (n < 0)
                n = 0;
        if ((size_t)n > sizeof(line) - 2)
                n = sizeof(line) - 2;
        line[n++] = '\n';
        /* One write below PIPE_BUF: lines never mix. */
        (void)!write(p->rep, line, (size_t)n);
}

void p_say(struct peer *p, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        p_vsay(p, fmt, ap);
        va_end(ap);
}

_Noreturn void p_fail(struct peer *p, const char *file, int line, const char *fmt, ...)
{
        char msg[900];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        fprintf(stderr, "%s: client %s: FAIL %s:%d: %s\n", program_invocation_short_name, p->user,
                file, line, msg);
        p_say(p, "FAIL %s:%d: %s", file, line, msg);
        _exit(1);
}

/* Waits for the test's go-ahead; the test closing its end means "stop here". */
void p_wait(struct peer *p)
{
        char c;
        ssize_t n;

        do
                n = read(p->cmd, &c, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1)
                _exit(3);
}

/*
 * The child's open fds. Not testutil_count_fds(): a child must not call check
 * at all (even a passing ck_assert writes a record to check's message fd).
 */
int p_count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;

        if (!d)
                return -1;
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n - 1; /* the directory's own fd */
}

void child_start(struct child *ch, const char *user, client_fn fn, const void *arg, unsigned flags)
{
        int to_child[2], from_child[2];
        struct passwd *pw = getpwnam(user);
        uid_t uid;
        gid_t gid;

        ck_assert_msg(pw, "no user '%s' in the VM (run-vm.sh --user)", user);
        uid = pw->pw_uid;
        gid = pw->pw_gid;
        ck_assert_int_ne(uid, 0);
        ck_assert_int_eq(pipe2(to_child, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(from_child, O_CLOEXEC), 0);
        memset(ch, 0, sizeof(*ch));
        ch->user = user;
        ch->pid = fork();
        ck_assert_int_ge(ch->pid, 0);
        if (ch->pid == 0) {
                struct peer p = {.user = user, .cmd = 3, .rep = 4};
                int a, b, before, after;

                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                /* Only the two pipes (as 3 and 4) and stdio survive; check's fds go. */
                a = fcntl(to_child[0], F_DUPFD, 100);
                b = fcntl(from_child[1], F_DUPFD, 100);
                if (a < 0 || b < 0 || dup2(a, 3) != 3 || dup2(b, 4) != 4 ||
                    close_range(5, ~0U, 0) < 0)
                        _exit(4);
                /* Drop root for good: no capabilities; no groups, or those of /etc/group. */
                P_CHECK(&p,
                        ((flags & CHILD_INITGROUPS) ? initgroups(user, gid) : setgroups(0, NULL)) ==
                                0 &&
                            setresgid(gid, gid, gid) == 0 && setresuid(uid, uid, uid) == 0,
                        "dropping to %s: %s", user, strerror(errno));
                P_CHECK(&p, geteuid() == uid && setuid(0) < 0, "still privileged");
                before = p_count_fds();
                fn(&p, arg);
                after = p_count_fds();
                P_CHECK(&p, !(flags & CHILD_CHECK_FDS) || after == before,
                        "%d fds open at the end, %d at the start", after, before);
                p_say(&p, "exit");
                _exit(0);
        }
        close(to_child[0]);
        close(from_child[1]);
        ch->cmd = to_child[1];
        ch->rep = from_child[0];
}

void child_line(struct child *ch, char *line, size_t size)
{
        for (int waited = 0;;) {
                char *nl = memchr(ch->buf, '\n', ch->len);
                struct pollfd pfd = {.fd = ch->rep, .events = POLLIN};
                ssize_t n;
                int r;

                if (nl) {
                        size_t l = (size_t)(nl - ch->buf);

                        snprintf(line, size, "%.*s", (int)l, ch->buf);
                        memmove(ch->buf, nl + 1, ch->len - l - 1);
                        ch->len -= l + 1;
                        ck_assert_msg(strncmp(line, "FAIL ", 5) != 0, "client %s: %s", ch->user,
                                      line + 5);
                        return;
                }
                ck_assert_msg(waited < LINE_MS, "client %s said nothing for %d ms", ch->user,
                              LINE_MS);
                r = poll(&pfd, 1, 100);
                waited += 100;
                if (r <= 0)
                        continue;
                ck_assert_msg(ch->len < sizeof(ch->buf) - 1, "client %s: line too long", ch->user);
                n = read(ch->rep, ch->buf + ch->len, sizeof(ch->buf) - 1 - ch->len);
                ck_assert_msg(n > 0, "client %s ended without a word (%s)", ch->user,
                              n < 0 ? strerror(errno) : "EOF");
                ch->len += (size_t)n;
        }
}

void child_expect(struct child *ch, const char *prefix, char *line, size_t size)
{
        char buf[1024];

        if (!line) {
                line = buf;
                size = sizeof(buf);
        }
        child_line(ch, line, size);
        ck_assert_msg(strncmp(line, prefix, strlen(prefix)) == 0,
                      "client %s said '%s', expected '%s...'", ch->user, line, prefix);
}

void child_expect_exact(struct child *ch, const char *want)
{
        char line[1024];

        child_line(ch, line, sizeof(line));
        ck_assert_msg(strcmp(line, want) == 0, "client %s said '%s', expected '%s'", ch->user, line,
                      want);
}

void child_go(struct child *ch)
{
        ck_assert_int_eq(write(ch->cmd, "g", 1), 1);
}

void child_end(struct child *ch)
{
        int status = 0;

        child_expect_exact(ch, "exit");
        close(ch->cmd);
        ck_assert_int_eq(waitpid(ch->pid, &status, 0), ch->pid);
        close(ch->rep);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client %s: status %#x",
                      ch->user, status);
}

void child_kill(struct child *ch)
{
        int status = 0;

        ck_assert_int_eq(kill(ch->pid, SIGKILL), 0);
        ck_assert_int_eq(waitpid(ch->pid, &status, 0), ch->pid);
        ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        close(ch->cmd);
        close(ch->rep);
}
