/* SPDX-License-Identifier: MIT */
/*
 * The policy on the real kernel, in the test VM (run-vm.sh): each test
 * writes a configuration, starts its own vfiod (socket /run/vfiod-policy/
 * vfiod.sock, log /tmp/vfiod-policy.log; `vfioctl check-config` first, which
 * runs `vfiod --check-config`) and
 * stops it with SIGTERM at the end. The broker suite's vfiod keeps running
 * idle meanwhile: it holds nothing, so the two do not meet.
 *
 * Concepts: clients are children that become alice, bob, carol or eve
 * (run-vm.sh --user) with initgroups(), so their supplementary groups come
 * from /etc/group: the suite adds the group vfio-users (gid 2000) with carol
 * in it. A child reports lines to its test over a pipe and waits for a byte
 * before each later step (as in guest-broker.c); it never calls check.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client-lib/vfiod.h"
#include "kernel/sysfs.h"
#include "tests/testutil.h"
#include "tests/vm/child.h"
#include "tests/vm/edu.h"

#define N_EDU    3
#define PAGE     4096
#define SOCK     "/run/vfiod-policy/vfiod.sock"
#define CONF     "/tmp/vfiod-policy/vfiod.conf"
#define CONF_D   "/tmp/vfiod-policy/vfiod.conf.d"
#define LOG      "/tmp/vfiod-policy.log"
#define GROUP_ID 2000
#define RW       (VFIOD_DMA_READ | VFIOD_DMA_WRITE)

struct ctx {
        char bdf[N_EDU][KVFIO_BDF_MAX];
        int group[N_EDU];
        pid_t daemon;
        struct vfiod *admin;
};

static struct ctx T;

static void sleep_ms(int ms)
{
        const struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

        nanosleep(&ts, NULL);
}

static long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void write_text(const char *path, const char *text)
{
        FILE *f = fopen(path, "we");

        ck_assert_msg(f, "%s: %s", path, strerror(errno));
        ck_assert_int_eq(fputs(text, f) >= 0, 1);
        ck_assert_int_eq(fclose(f), 0);
}

static char *read_text(const char *path)
{
        FILE *f = fopen(path, "re");
        char *buf = calloc(1, 1 << 20);
        size_t n;

        ck_assert_msg(f && buf, "%s: %s", path, strerror(errno));
        n = fread(buf, 1, (1 << 20) - 1, f);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

static void find_edus(void)
{
        struct kvfio_pci_list *list = NULL;
        int n = 0;

        ck_assert_int_eq(kvfio_pci_discover("/", &list), 0);
        for (size_t i = 0; i < list->n; i++) {
                const struct kvfio_pci_dev *d = &list->devs[i];

                if (d->vendor != EDU_VENDOR || d->device != EDU_DEVICE)
                        continue;
                ck_assert_int_lt(n, N_EDU);
                memcpy(T.bdf[n], d->bdf, KVFIO_BDF_MAX);
                T.group[n] = d->iommu_group;
                n++;
        }
        kvfio_pci_list_free(list);
        ck_assert_msg(n == N_EDU, "%d edu devices, want %d", n, N_EDU);
}

/* The driver of edu i now ("" for none). */
static void driver_of(int i, char drv[static KVFIO_DRIVER_MAX])
{
        ck_assert_int_eq(kvfio_pci_driver_get("/", T.bdf[i], drv), 0);
}

/* Waits until edu i is bound to drv (5 s at most). */
static void wait_driver(int i, const char *drv)
{
        char cur[KVFIO_DRIVER_MAX];

        for (int waited = 0;; waited += 50) {
                driver_of(i, cur);
                if (strcmp(cur, drv) == 0)
                        return;
                ck_assert_msg(waited < 5000, "edu %d (%s) is on '%s', want '%s'", i, T.bdf[i], cur,
                              drv);
                sleep_ms(50);
        }
}

/* Root: binds edu i to `drv` the way an administrator would (override + probe). */
static void bind_to(int i, const char *drv)
{
        char path[256], cur[KVFIO_DRIVER_MAX];

        driver_of(i, cur);
        if (strcmp(cur, drv) == 0)
                return;
        if (cur[0]) {
                snprintf(path, sizeof(path), "/sys/bus/pci/drivers/%s/unbind", cur);
                write_text(path, T.bdf[i]);
        }
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", T.bdf[i]);
        write_text(path, drv);
        write_text("/sys/bus/pci/drivers_probe", T.bdf[i]);
        write_text(path, "\n");
        wait_driver(i, drv);
}

/* The group vfio-users with carol in it, once. */
static void ensure_group(void)
{
        char *text = read_text("/etc/group");
        FILE *f;

        if (!strstr(text, "\nvfio-users:") && strncmp(text, "vfio-users:", 11) != 0) {
                f = fopen("/etc/group", "ae");
                ck_assert_ptr_nonnull(f);
                fprintf(f, "vfio-users:x:%d:carol\n", GROUP_ID);
                fclose(f);
        }
        free(text);
}

/* Writes the configuration (the drop-in folder emptied), checks it, starts vfiod. */
static void daemon_start(const char *conf)
{
        char cmd[512];
        int r, log;

        memset(&T, 0, sizeof(T));
        find_edus();
        ensure_group();
        (void)mkdir("/tmp/vfiod-policy", 0755);
        (void)system("rm -rf " CONF_D);
        write_text(CONF, conf);
        snprintf(cmd, sizeof(cmd), "vfioctl check-config %s >/tmp/vfiod-policy/check.txt 2>&1",
                 CONF);
        r = system(cmd);
        ck_assert_msg(r == 0, "vfioctl check-config: %d:\n%s", r,
                      read_text("/tmp/vfiod-policy/check.txt"));
        log = open(LOG, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(log, 0);
        T.daemon = fork();
        ck_assert_int_ge(T.daemon, 0);
        if (T.daemon == 0) {
                (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (dup2(log, STDERR_FILENO) < 0)
                        _exit(126);
                execlp("vfiod", "vfiod", "--config", CONF, "--socket", SOCK, "--debug",
                       (char *)NULL);
                _exit(127);
        }
        close(log);
        for (int waited = 0;; waited += 50) {
                if (vfiod_connect(SOCK, &T.admin) == 0)
                        break;
                ck_assert_msg(waited < 5000 && kill(T.daemon, 0) == 0, "vfiod did not come up:\n%s",
                              read_text(LOG));
                sleep_ms(50);
        }
}

static void daemon_stop(void)
{
        int status = 0;

        vfiod_close(T.admin);
        T.admin = NULL;
        ck_assert_int_eq(kill(T.daemon, SIGTERM), 0);
        for (int waited = 0; waitpid(T.daemon, &status, WNOHANG) == 0; waited += 50) {
                ck_assert_msg(waited < 10000, "vfiod did not stop");
                sleep_ms(50);
        }
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "vfiod: status %#x", status);
}

/* Waits until the log has a line with every given string (NULL-terminated). */
static void log_wait_for(const char *what, ...)
{
        const char *parts[8];
        size_t n = 0;
        va_list ap;

        va_start(ap, what);
        for (const char *p = what; p && n < 8; p = va_arg(ap, const char *))
                parts[n++] = p;
        va_end(ap);
        for (int waited = 0;; waited += 50) {
                char *log = read_text(LOG), *save = NULL;
                bool found = false;

                for (char *line = strtok_r(log, "\n", &save); line && !found;
                     line = strtok_r(NULL, "\n", &save)) {
                        found = true;
                        for (size_t i = 0; i < n && found; i++)
                                found = strstr(line, parts[i]) != NULL;
                }
                free(log);
                if (found)
                        return;
                ck_assert_msg(waited<5000, "vfiod never logged a line with '%s'%s%s", what, n> 1
                                  ? " and '"
                                  : "",
                              n > 1 ? parts[1] : "");
                sleep_ms(50);
        }
}

/* ---- clients ------------------------------------------------------------------ */

static struct vfiod *p_connect(struct peer *p)
{
        struct vfiod *c = NULL;
        int r = vfiod_connect(SOCK, &c);

        P_CHECK(p, r == 0, "connect: %s", strerror(-r));
        return c;
}

/* Says "sees A B ..." (the devices listed, with modes and state). */
static void p_say_list(struct peer *p, struct vfiod *c)
{
        struct vfiod_device_info *d = NULL;
        char line[512] = "sees";
        size_t n = 0, len = 4;
        int r = vfiod_list_devices(c, NULL, &d, &n);

        P_CHECK(p, r == 0, "ListDevices: %s", strerror(-r));
        for (size_t i = 0; i < n; i++)
                len += (size_t)snprintf(
                    line + len, sizeof(line) - len, " %s:%s%s:%s", d[i].device,
                    d[i].allowed_modes & VFIOD_MODE_BIT(VFIOD_MODE_DIRECT) ? "d" : "",
                    d[i].allowed_modes & VFIOD_MODE_BIT(VFIOD_MODE_BROKERED) ? "b" : "",
                    vfiod_lease_state_name(d[i].state));
        vfiod_devices_free(d, n);
        p_say(p, "%s", line);
}

/* Tries to acquire; says "got MODE" (and releases at once) or "refused ERRNO: REASON". */
static void p_try(struct peer *p, struct vfiod *c, const char *bdf, enum vfiod_mode mode)
{
        struct vfiod_lease l;
        int r = vfiod_acquire(c, bdf, 0, mode, &l);

        if (r < 0) {
                p_say(p, "refused %s: %s", strerrorname_np(-r), vfiod_last_error(c));
                return;
        }
        vfiod_lease_close_fds(&l);
        P_CHECK(p, vfiod_release(c, l.lease_id) == 0, "release: %s", vfiod_last_error(c));
        /* The domain, which Acquire made, went with the lease. */
        P_CHECK(p, vfiod_destroy_domain(c, l.domain_id) == -ENOENT, "destroy: %s",
                vfiod_last_error(c));
        p_say(p, "got %s", vfiod_mode_name(mode));
}

/* ---- who sees and gets what -------------------------------------------------- */

/* arg: "BDF MODE BDF MODE ..." of acquires to try after listing. */
static void client_tries(struct peer *p, const void *arg)
{
        struct vfiod *c = p_connect(p);
        char *copy = strdup(arg), *save = NULL;

        p_say_list(p, c);
        for (char *bdf = strtok_r(copy, " ", &save); bdf; bdf = strtok_r(NULL, " ", &save)) {
                char *mode = strtok_r(NULL, " ", &save);

                p_try(p, c, bdf,
                      strcmp(mode, "direct") == 0 ? VFIOD_MODE_DIRECT : VFIOD_MODE_BROKERED);
        }
        free(copy);
        vfiod_close(c);
}

START_TEST(test_who_gets_what)
{
        char conf[2048], args[256], want[512];
        struct child ch;

        /* edu 0: alice by name; edu 1: the group vfio-users, brokered only, by vendor and
         * IOMMU group; edu 2: bob by uid. */
        find_edus();
        snprintf(conf, sizeof(conf),
                 "[Daemon]\nReleaseGraceMs=1000\n\n"
                 "[Device edu-0]\nMatch=%s\nUsers=alice\n\n"
                 "[Device edu-1]\nMatchVendor=1234:11e8\nMatchGroup=%d\nGroups=vfio-users\n"
                 "Modes=brokered\n\n"
                 "[Device edu-2]\nMatch=%s\nUsers=1002\n",
                 T.bdf[0], T.group[1], T.bdf[2]);
        daemon_start(conf);
        ck_assert_ptr_nonnull(strstr(read_text("/tmp/vfiod-policy/check.txt"), "matches "));

        snprintf(args, sizeof(args), "%s brokered %s brokered", T.bdf[0], T.bdf[1]);
        child_start(&ch, "alice", client_tries, args, CHILD_INITGROUPS);
        snprintf(want, sizeof(want), "sees %s:db:free", T.bdf[0]);
        child_expect_exact(&ch, want);
        child_expect_exact(&ch, "got brokered");
        snprintf(want, sizeof(want),
                 "refused EPERM: the policy does not allow you device '%s' in brokered mode "
                 "(allowed: none): no rule grants you device '%s'",
                 T.bdf[1], T.bdf[1]);
        child_expect_exact(&ch, want);
        child_end(&ch);

        snprintf(args, sizeof(args), "%s direct %s brokered %s brokered", T.bdf[1], T.bdf[1],
                 T.bdf[2]);
        child_start(&ch, "carol", client_tries, args, CHILD_INITGROUPS);
        snprintf(want, sizeof(want), "sees %s:b:free", T.bdf[1]);
        child_expect_exact(&ch, want);
        snprintf(want, sizeof(want),
                 "refused EPERM: the policy does not allow you device '%s' in direct mode "
                 "(allowed: brokered): rule 'edu-1' allows only brokered",
                 T.bdf[1]);
        child_expect_exact(&ch, want);
        child_expect_exact(&ch, "got brokered");
        snprintf(want, sizeof(want),
                 "refused EPERM: the policy does not allow you device '%s' in brokered mode "
                 "(allowed: none): no rule grants you device '%s'",
                 T.bdf[2], T.bdf[2]);
        child_expect_exact(&ch, want);
        child_end(&ch);

        snprintf(args, sizeof(args), "%s direct", T.bdf[2]);
        child_start(&ch, "bob", client_tries, args, CHILD_INITGROUPS);
        snprintf(want, sizeof(want), "sees %s:db:free", T.bdf[2]);
        child_expect_exact(&ch, want);
        child_expect_exact(&ch, "got direct");
        child_end(&ch);

        snprintf(args, sizeof(args), "%s direct", T.bdf[0]);
        child_start(&ch, "eve", client_tries, args, CHILD_INITGROUPS);
        child_expect_exact(&ch, "sees");
        snprintf(want, sizeof(want),
                 "refused EPERM: the policy does not allow you device '%s' in direct mode "
                 "(allowed: none): no rule grants you device '%s'",
                 T.bdf[0], T.bdf[0]);
        child_expect_exact(&ch, want);
        child_end(&ch);

        /* Audit: grants and denials with the peer's identity. */
        log_wait_for("granted by rule 'edu-1'", "peer_uid=1004", "peer_gid=1004", NULL);
        log_wait_for("refused device", "peer_uid=1003", "no rule grants you", NULL);
        log_wait_for("granted by rule 'edu-2'", "peer_uid=1002", NULL);
        daemon_stop();
}
END_TEST

/* ---- quotas and interrupt types ----------------------------------------------- */

static void client_quota(struct peer *p, const void *arg)
{
        struct vfiod *c = p_connect(p);
        struct vfiod_lease l;
        int memfd, r, efd = -1;

        P_CHECK(p, vfiod_acquire(c, arg, 0, VFIOD_MODE_BROKERED, &l) == 0, "acquire: %s",
                vfiod_last_error(c));
        P_CHECK(p, vfiod_memfd_create("quota", 4 * PAGE, &memfd) == 0, "memfd");
        r = vfiod_map_memfd(c, l.domain_id, memfd, 0, 0x100000, PAGE, RW);
        p_say(p, "map 1 page: %d", r);
        r = vfiod_map_memfd(c, l.domain_id, memfd, PAGE, 0x101000, 2 * PAGE, RW);
        p_say(p, "map 2 more pages: %s %s", strerrorname_np(-r), vfiod_last_error(c));
        r = vfiod_map_memfd(c, l.domain_id, memfd, PAGE, 0x400000, PAGE, RW);
        p_say(p, "map outside: %s %s", strerrorname_np(-r), vfiod_last_error(c));
        r = vfiod_map_memfd(c, l.domain_id, memfd, PAGE, 0x101000, PAGE, RW);
        p_say(p, "map 2nd page: %d", r);
        r = vfiod_map_memfd(c, l.domain_id, memfd, 2 * PAGE, 0x102000, PAGE, RW);
        p_say(p, "map 3rd mapping: %s %s", strerrorname_np(-r), vfiod_last_error(c));
        r = vfiod_setup_msi(c, l.lease_id, VFIOD_IRQ_INDEX_MSI, 1, &efd);
        p_say(p, "msi: %d", r);
        {
                /* What the quotas let through works: page 0 -> edu -> page 1, MSI each. */
                volatile void *bar0 = NULL;
                uint8_t *mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
                uint64_t n = 0;
                int msis = 0;

                P_CHECK(p, mem != MAP_FAILED, "mmap: %s", strerror(errno));
                P_CHECK(p, edu_map_bar0(l.device_fd, &bar0) == 0, "BAR0");
                P_CHECK(p, edu_enable_bus_master(l.device_fd) == 0, "bus master");
                edu_write32(bar0, EDU_REG_IRQ_ACK, ~UINT32_C(0));
                for (size_t i = 0; i < PAGE; i++)
                        mem[i] = (uint8_t)(i * 7 + 3);
                memset(mem + PAGE, 0, PAGE);
                for (int k = 0; k < 2; k++) {
                        r = edu_dma_start(bar0, 0x100000 + (uint64_t)k * PAGE, 0, EDU_DMA_MAX,
                                          k == 1, true);
                        P_CHECK(p, r == 0, "DMA start: %s", strerror(-r));
                        msis += edu_eventfd_wait(efd, 3000, &n) == 1;
                        edu_write32(bar0, EDU_REG_IRQ_ACK, EDU_IRQ_DMA);
                        P_CHECK(p, edu_dma_wait(bar0, 5000) == 0, "DMA wait");
                }
                p_say(p, "dma: %s, %d MSIs",
                      memcmp(mem, mem + PAGE, EDU_DMA_MAX) == 0 ? "bytes back" : "bytes differ",
                      msis);
                edu_unmap_bar0(bar0);
                munmap(mem, 2 * PAGE);
        }
        {
                int e2 = eventfd(0, EFD_CLOEXEC);
                struct vfiod_irq_set set = {.index = VFIOD_IRQ_INDEX_INTX,
                                            .count = 1,
                                            .action = VFIOD_IRQ_ACTION_TRIGGER,
                                            .eventfds = &e2};

                r = vfiod_set_irqs(c, l.lease_id, &set);
                p_say(p, "intx: %s %s", strerrorname_np(-r), vfiod_last_error(c));
                close(e2);
        }
        p_wait(p);
        close(efd);
        close(memfd);
        vfiod_lease_close_fds(&l);
        P_CHECK(p, vfiod_release(c, l.lease_id) == 0, "release: %s", vfiod_last_error(c));
        vfiod_close(c);
}

START_TEST(test_quotas)
{
        char conf[1024];
        struct vfiod_stats st;
        struct child ch;

        find_edus();
        snprintf(conf, sizeof(conf),
                 "[Device q]\nMatch=%s\nGroups=vfio-users\nMaxPinnedBytes=8K\nMaxMappings=2\n"
                 "IovaWindows=0x100000-0x1fffff\nIrqTypes=msi\n",
                 T.bdf[0]);
        daemon_start(conf);
        child_start(&ch, "carol", client_quota, T.bdf[0], CHILD_INITGROUPS);
        child_expect_exact(&ch, "map 1 page: 0");
        child_expect_exact(&ch,
                           "map 2 more pages: EDQUOT MaxPinnedBytes=8192 of rule 'q' reached: the "
                           "domain has 4096 bytes mapped, 8192 more asked");
        child_expect_exact(&ch,
                           "map outside: EPERM range 0 (IOVA 0x400000, 0x1000 bytes) is outside "
                           "the IovaWindows= of rule 'q': 0x100000-0x1fffff");
        child_expect_exact(&ch, "map 2nd page: 0");
        child_expect_exact(&ch,
                           "map 3rd mapping: ENOSPC MaxMappings=2 of rule 'q' reached: the domain "
                           "has 2 mapping(s), 1 more asked");
        child_expect_exact(&ch, "msi: 0");
        child_expect_exact(&ch, "dma: bytes back, 2 MSIs");
        child_expect_exact(&ch,
                           "intx: EPERM the policy (rule 'q') allows you only these interrupts: "
                           "msi; not INTx");
        ck_assert_int_eq(vfiod_stats(T.admin, &st), 0);
        ck_assert_uint_eq(st.mappings, 2);
        ck_assert_uint_eq(st.pinned_bytes, 2 * PAGE);
        log_wait_for("quota: refused MapDma", "peer_uid=1004", T.bdf[0], "MaxPinnedBytes=8192",
                     NULL);
        child_go(&ch);
        child_end(&ch);
        daemon_stop();
}
END_TEST

/* ---- reload: refused when invalid; revocation after the grace period ----------- */

/* Holds a lease; ignores ReleaseRequested; reports the events with their times. */
static void client_ignores(struct peer *p, const void *arg)
{
        struct vfiod *c = p_connect(p);
        struct vfiod_event ev;
        struct vfiod_lease l;
        long t0 = 0;
        int r;

        P_CHECK(p, vfiod_acquire(c, arg, 0, VFIOD_MODE_BROKERED, &l) == 0, "acquire: %s",
                vfiod_last_error(c));
        p_say(p, "leased");
        for (int n = 0; n < 2; n++) {
                r = -EAGAIN;
                for (int waited = 0; waited < 20000 && r == -EAGAIN; waited += 50) {
                        struct pollfd pfd = {.fd = vfiod_get_fd(c), .events = POLLIN};

                        (void)poll(&pfd, 1, 50);
                        r = vfiod_next_event(c, &ev);
                }
                P_CHECK(p, r == 0, "no event: %s", strerror(-r));
                if (n == 0)
                        t0 = now_ms();
                p_say(p, "event %s %s grace %u '%s'%s", vfiod_event_type_name(ev.type),
                      vfiod_release_reason_name(ev.reason), ev.grace_ms, ev.detail,
                      n == 1 && now_ms() - t0 >= 1900 ? " after the grace" : "");
        }
        /* It is gone, but its device fd is still open here: quarantined until it closes. */
        p_wait(p);
        vfiod_lease_close_fds(&l);
        P_CHECK(p, vfiod_release(c, l.lease_id) == -ENOENT, "release after revoke");
        vfiod_close(c);
}

static void client_gets(struct peer *p, const void *arg)
{
        struct vfiod *c = p_connect(p);

        p_try(p, c, arg, VFIOD_MODE_BROKERED);
        vfiod_close(c);
}

START_TEST(test_reload_revokes_after_grace)
{
        struct vfiod_reload_result res = {0};
        char conf[1024], conf2[1024], want[256];
        struct vfiod_stats st;
        struct child ch;
        char *log;

        find_edus();
        snprintf(conf, sizeof(conf),
                 "[Daemon]\nReleaseGraceMs=2000\n[Device e2]\nMatch=%s\nUsers=bob\n", T.bdf[2]);
        daemon_start(conf);
        child_start(&ch, "bob", client_ignores, T.bdf[2], CHILD_INITGROUPS);
        child_expect_exact(&ch, "leased");

        /* An invalid drop-in: refused with its file:line, the running policy stays. */
        (void)mkdir(CONF_D, 0755);
        write_text(CONF_D "/50-bad.conf", "[Device e2]\nUsers=bob\nMaxMappings=lots\n");
        ck_assert_int_eq(vfiod_reload_policy(T.admin, &res), 0);
        ck_assert(!res.applied);
        ck_assert_uint_eq(res.n_errors, 1);
        ck_assert_str_eq(res.errors[0],
                         CONF_D "/50-bad.conf:3: MaxMappings=: bad value 'lots' (a number from 1, "
                                "or infinity)");
        ck_assert_uint_eq(res.leases_revoked, 0);
        vfiod_reload_result_clear(&res);
        log_wait_for("50-bad.conf:3: MaxMappings=", NULL);
        /* The same through vfioctl: check-config (no daemon) and reload, both exit 1. */
        {
                char *out;
                int r = system("vfioctl check-config " CONF " >/tmp/vfiod-policy/out.txt 2>&1");

                out = read_text("/tmp/vfiod-policy/out.txt");
                ck_assert_msg(WIFEXITED(r) && WEXITSTATUS(r) == 1, "check-config: %#x\n%s", r, out);
                ck_assert_msg(
                    strstr(out, CONF_D "/50-bad.conf:3: MaxMappings=: bad value 'lots'") &&
                        strstr(out, CONF ": invalid"),
                    "%s", out);
                free(out);
                r = system("vfioctl -s " SOCK " reload >/tmp/vfiod-policy/out.txt 2>&1");
                out = read_text("/tmp/vfiod-policy/out.txt");
                ck_assert_msg(WIFEXITED(r) && WEXITSTATUS(r) == 1, "reload: %#x\n%s", r, out);
                ck_assert_msg(strstr(out, "vfioctl: reload: " CONF_D "/50-bad.conf:3:") &&
                                  strstr(out, "policy not applied, the old one stays"),
                              "%s", out);
                free(out);
        }

        /* A drop-in gives edu 2 to alice instead: SIGHUP. */
        write_text(CONF_D "/50-bad.conf", "[Device e2]\nUsers=alice\n");
        ck_assert_int_eq(kill(T.daemon, SIGHUP), 0);
        child_expect_exact(&ch, "event release-requested policy-change grace 2000 'the policy no "
                                "longer allows it'");
        child_expect_exact(&ch,
                           "event lease-revoked policy-change grace 0 'the policy no longer allows "
                           "it' after the grace");
        ck_assert_int_eq(vfiod_stats(T.admin, &st), 0);
        ck_assert_msg(st.leases == 0 && st.quarantined_groups == 1,
                      "after the revoke: %u leases, %u quarantined", st.leases,
                      st.quarantined_groups);
        child_go(&ch);
        child_end(&ch);
        log_wait_for("reloaded", NULL);
        log_wait_for("grace period over", "peer_uid=1002", NULL);
        /* Released and free again (the next open resets it), and alice gets it. */
        for (int waited = 0;; waited += 50) {
                ck_assert_int_eq(vfiod_stats(T.admin, &st), 0);
                if (st.leases == 0 && st.quarantined_groups == 0)
                        break;
                ck_assert_msg(waited < 5000, "edu 2 not free: %u leases, %u quarantined", st.leases,
                              st.quarantined_groups);
                sleep_ms(50);
        }
        log = read_text(LOG);
        ck_assert_ptr_nonnull(strstr(log, "is free: nobody else holds it"));
        free(log);
        child_start(&ch, "alice", client_gets, T.bdf[2], CHILD_INITGROUPS);
        child_expect_exact(&ch, "got brokered");
        child_end(&ch);
        child_start(&ch, "bob", client_gets, T.bdf[2], CHILD_INITGROUPS);
        snprintf(want, sizeof(want),
                 "refused EPERM: the policy does not allow you device '%s' in brokered mode "
                 "(allowed: none): no rule grants you device '%s'",
                 T.bdf[2], T.bdf[2]);
        child_expect_exact(&ch, want);
        child_end(&ch);
        {
                int r = system("vfioctl -s " SOCK " reload >/tmp/vfiod-policy/out.txt 2>&1");
                char *out = read_text("/tmp/vfiod-policy/out.txt");

                ck_assert_msg(r == 0 && strcmp(out, "policy reloaded, 0 lease(s) revoked\n") == 0,
                              "vfioctl reload: %#x: %s", r, out);
                free(out);
        }
        (void)conf2;
        daemon_stop();
}
END_TEST

/* ---- managed binding ------------------------------------------------------------- */

/* Acquires (state and driver said first), says "leased", waits; then closes its fds and waits. */
static void client_managed(struct peer *p, const void *arg)
{
        struct vfiod *c = p_connect(p);
        struct vfiod_lease l;

        p_say_list(p, c);
        P_CHECK(p, vfiod_acquire(c, arg, 0, VFIOD_MODE_BROKERED, &l) == 0, "acquire: %s",
                vfiod_last_error(c));
        p_say(p, "leased");
        p_wait(p);
        vfiod_lease_close_fds(&l);
        P_CHECK(p, vfiod_release(c, l.lease_id) == 0, "release: %s", vfiod_last_error(c));
        p_say(p, "released");
        P_CHECK(p, vfiod_acquire(c, arg, 0, VFIOD_MODE_BROKERED, &l) == 0, "acquire 2: %s",
                vfiod_last_error(c));
        /* Holds the lease, but not the device fd, while the daemon stops. */
        vfiod_lease_close_fds(&l);
        p_say(p, "leased again");
        p_wait(p);
        vfiod_close(c);
}

START_TEST(test_managed_binding)
{
        char conf[1024], want[256], drv[KVFIO_DRIVER_MAX];
        struct child ch;

        find_edus();
        /* edu 2 starts on uio_pci_generic (loaded with run-vm.sh --module). */
        bind_to(2, "uio_pci_generic");
        snprintf(conf, sizeof(conf), "[Device m]\nMatch=%s\nUsers=carol\nManaged=yes\n", T.bdf[2]);
        daemon_start(conf);
        child_start(&ch, "carol", client_managed, T.bdf[2], CHILD_INITGROUPS);
        snprintf(want, sizeof(want), "sees %s:db:free", T.bdf[2]);
        child_expect_exact(&ch, want);
        child_expect_exact(&ch, "leased");
        driver_of(2, drv);
        ck_assert_str_eq(drv, "vfio-pci");
        log_wait_for("managed: bound", T.bdf[2], "uio_pci_generic", NULL);
        /* Released: reset, sanitized, given back to its driver. */
        child_go(&ch);
        child_expect_exact(&ch, "released");
        wait_driver(2, "uio_pci_generic");
        log_wait_for("managed: gave", T.bdf[2], "back to driver 'uio_pci_generic'", NULL);
        child_expect_exact(&ch, "leased again");
        wait_driver(2, "vfio-pci");
        /* vfiod stops while the lease is held: it releases and gives the device back. */
        daemon_stop();
        driver_of(2, drv);
        ck_assert_str_eq(drv, "uio_pci_generic");
        child_go(&ch);
        child_end(&ch);
        /* As the other suites expect it. */
        bind_to(2, "vfio-pci");
}
END_TEST

static Suite *guest_policy_suite(void)
{
        Suite *s = suite_create("guest-policy");
        TCase *tc = tcase_create("policy");

        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_who_gets_what);
        tcase_add_test(tc, test_quotas);
        tcase_add_test(tc, test_reload_revokes_after_grace);
        tcase_add_test(tc, test_managed_binding);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(guest_policy_suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        /* The last test's vfiod log, for the console. */
        {
                FILE *f = fopen(LOG, "re");
                char line[1024];

                if (f) {
                        fprintf(stderr, "guest-policy: the last vfiod's log (%s):\n", LOG);
                        while (fgets(line, sizeof(line), f))
                                fprintf(stderr, "  %s", line);
                        fclose(f);
                }
        }
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
