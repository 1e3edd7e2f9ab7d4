/* SPDX-License-Identifier: MIT */
/*
 * The broker end to end, in the test VM (run-vm.sh): vfiod runs as root
 * (started by broker-setup.sh, which also wrote its policy: alice and bob may
 * have edu 0 and 1, only alice edu 2 and only brokered, eve nothing), real
 * VFIO with an emulated IOMMU, three edu devices.
 *
 * Two modes, one suite ($VFIOD_TESTDEV): "edu" (the default; make check-vm:
 * vfio-pci behind QEMU's VT-d) and "mdma" (make check-vm-mdev: a guest with
 * no IOMMU, kernel/module's mediated devices with an emulated IOMMU, named by
 * UUID, from /run/vfiod-mdevs; broker-setup.sh wrote the same policy for
 * them). The clients drive the device through tests/vm/testdev.h. A test
 * that needs vfio-pci (the unbind for REQ) is left out in mdma mode.
 *
 * Two interfaces ($VFIOD_INTERFACE): "legacy" (the default: container and
 * group) and "iommufd" (make check-vm-iommufd, on a kernel built with it:
 * the domain's iommufd and the device cdev; a DIRECT client binds the cdev,
 * makes its own IOAS and maps there, as QEMU does). The tests of the group
 * fd and of vfioctl's legacy children are left out on iommufd.
 *
 * Concepts: this suite runs as root, but every client is a child process
 * that dropped to alice, bob or eve (no supplementary groups, no
 * capabilities) before it connects. A child talks to its test over two
 * pipes: it reports lines ("leased 3", or "FAIL file:line: why", after which
 * it exits) and waits for a byte before each later step, so a test can look
 * at the daemon between a client's steps. Root itself only uses the admin
 * requests (Stats, ListLeases), sysfs (the unbind for REQ) and the daemon's
 * log (/tmp/vfiod.log, --debug) and /proc/<vfiod>/.
 *
 * Every test starts from an idle daemon and ends by waiting until it is idle
 * again: no lease, domain, mapping, pinned byte or quarantined group, only
 * the test's own admin connection, as many fds as at the start, and no memfd
 * left mapped in its address space. Every test counts its own fds
 * (testutil_tcase_fd_checked) and every child checks that it closed what it
 * opened.
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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "client-lib/vfiod.h"
#include "kernel/iommufd.h"
#include "kernel/sysfs.h"
#include "proto/envelope.h"
#include "proto/transport.h"
#include "tests/testutil.h"
#include "tests/vm/child.h"
#include "tests/vm/edu.h"
#include "tests/vm/testdev.h"

#define N_EDU       3
#define PAGE        4096
#define IOVA        UINT64_C(0x100000) /* below edu's 28-bit DMA mask */
#define WAIT_MS     3000               /* an MSI after a DMA */
#define IDLE_MS     5000               /* the daemon back to idle */
#define VFIOD_LOG   "/tmp/vfiod.log"
#define VFIOD_PID   "/run/vfiod.pid"
#define VFIO_UNBIND "/sys/bus/pci/drivers/vfio-pci/unbind"

/* ---- the test's view: devices, the daemon, its log ------------------------ */

struct ctx {
        char bdf[N_EDU][KVFIO_NAME_MAX];
        int group[N_EDU];
        pid_t daemon;
        struct vfiod *admin;
        int daemon_fds; /* /proc/<vfiod>/fd entries at the start */
        long log_start; /* size of the log at the start */
};

static struct ctx T; /* one per test: check forks each test */

/* The device kind ($VFIOD_TESTDEV): edu (check-vm) or mdma's mdevs (check-vm-mdev). */
static enum testdev_kind K;
/* The interface of every lease ($VFIOD_INTERFACE): legacy or iommufd. */
static enum vfiod_interface I = VFIOD_INTERFACE_LEGACY;

/* What vfiod logs for a step, through the legacy interface or through iommufd. */
static const char *by_iface(const char *legacy, const char *iommufd)
{
        return I == VFIOD_INTERFACE_IOMMUFD ? iommufd : legacy;
}

/* vfiod_acquire() through the suite's interface. */
static int acquire(struct vfiod *c, const char *bdf, uint64_t domain, enum vfiod_mode mode,
                   struct vfiod_lease *l)
{
        return vfiod_acquire_iface(c, bdf, domain, mode, I, l);
}

static void find_edus(void)
{
        struct kvfio_pci_list *list = NULL;
        int n = 0, r;

        if (K == TESTDEV_MDMA) {
                /* The harness's mdma instances, in order (run-vm.sh --mdevs). */
                FILE *f = fopen("/run/vfiod-mdevs", "re");
                char line[128];

                ck_assert_msg(f, "/run/vfiod-mdevs: %s", strerror(errno));
                while (n < N_EDU && fgets(line, sizeof(line), f)) {
                        struct kvfio_pci_dev d;

                        line[strcspn(line, "\n")] = '\0';
                        r = kvfio_dev_read("/", line, &d);
                        ck_assert_msg(r == 0, "mdev '%s': %s", line, strerror(-r));
                        memcpy(T.bdf[n], d.bdf, KVFIO_NAME_MAX);
                        T.group[n] = d.iommu_group;
                        n++;
                }
                fclose(f);
                ck_assert_msg(n == N_EDU, "%d mdma devices, want %d", n, N_EDU);
                return;
        }
        r = kvfio_pci_discover("/", &list);
        ck_assert_msg(r == 0, "kvfio_pci_discover: %s", strerror(-r));
        for (size_t i = 0; i < list->n; i++) {
                const struct kvfio_pci_dev *d = &list->devs[i];

                if (d->vendor != EDU_VENDOR || d->device != EDU_DEVICE)
                        continue;
                ck_assert_int_lt(n, N_EDU);
                memcpy(T.bdf[n], d->bdf, KVFIO_NAME_MAX);
                T.group[n] = d->iommu_group;
                n++;
        }
        kvfio_pci_list_free(list);
        ck_assert_msg(n == N_EDU, "%d edu devices, want %d", n, N_EDU);
}

static int count_dir(const char *path)
{
        char cmd[128];
        int n = 0;
        FILE *f;

        /* /proc/PID/fd of another process: opendir would do, ls is shorter to read. */
        snprintf(cmd, sizeof(cmd), "ls -1 %s 2>/dev/null | wc -l", path);
        f = popen(cmd, "re");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fscanf(f, "%d", &n), 1);
        pclose(f);
        return n;
}

static int daemon_fds(void)
{
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)T.daemon);
        return count_dir(path);
}

/* Lines of /proc/<vfiod>/maps that map a memfd (the daemon's brokered DMA mappings). */
static int daemon_memfd_maps(void)
{
        char path[64], line[512];
        int n = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int)T.daemon);
        f = fopen(path, "re");
        ck_assert_msg(f, "%s: %s", path, strerror(errno));
        while (fgets(line, sizeof(line), f))
                n += strstr(line, "/memfd:") != NULL;
        fclose(f);
        return n;
}

/* What vfiod logged since the test began (malloc'd). */
static char *log_since(void)
{
        FILE *f = fopen(VFIOD_LOG, "re");
        char *buf;
        long size;
        size_t n;

        ck_assert_msg(f, "%s: %s", VFIOD_LOG, strerror(errno));
        ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
        size = ftell(f);
        ck_assert_int_ge(size, T.log_start);
        ck_assert_int_eq(fseek(f, T.log_start, SEEK_SET), 0);
        buf = malloc((size_t)(size - T.log_start) + 1);
        ck_assert_ptr_nonnull(buf);
        n = fread(buf, 1, (size_t)(size - T.log_start), f);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

static void sleep_ms(int ms)
{
        const struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

        nanosleep(&ts, NULL);
}

/* Waits until vfiod has logged a line containing every given string (NULL-terminated). */
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
                char *log = log_since(), *save = NULL;
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
                ck_assert_msg(
                    waited<IDLE_MS, "vfiod never logged a line with '%s'%s%s%s%s", what, n> 1
                        ? " and '"
                        : "",
                    n > 1 ? parts[1] : "", n > 1 ? "'" : "", n > 2 ? " ..." : "");
                sleep_ms(50);
        }
}

static void get_stats(struct vfiod_stats *st)
{
        int r = vfiod_stats(T.admin, st);

        ck_assert_msg(r == 0, "Stats: %s (%s)", strerror(-r), vfiod_last_error(T.admin));
}

static bool stats_idle(const struct vfiod_stats *st)
{
        return st->clients == 1 && st->leases == 0 && st->domains == 0 && st->mappings == 0 &&
               st->pinned_bytes == 0 && st->quarantined_groups == 0;
}

/*
 * Waits until the daemon holds nothing for anyone: Stats all zero but our own
 * connection, and (check_fds) its fd count back to the baseline and no memfd
 * mapped.
 */
static void wait_idle(bool check_fds)
{
        struct vfiod_stats st;
        int fds = 0, maps = 0;

        for (int waited = 0;; waited += 50) {
                get_stats(&st);
                if (check_fds) {
                        fds = daemon_fds();
                        maps = daemon_memfd_maps();
                }
                if (stats_idle(&st) && (!check_fds || (fds == T.daemon_fds && maps == 0)))
                        return;
                ck_assert_msg(waited < IDLE_MS,
                              "vfiod is not idle: %u clients, %u leases, %u domains, %u "
                              "mappings, %llu bytes pinned, %u quarantined; %d fds (at the start "
                              "%d), %d memfd mappings",
                              st.clients, st.leases, st.domains, st.mappings,
                              (unsigned long long)st.pinned_bytes, st.quarantined_groups, fds,
                              T.daemon_fds, maps);
                sleep_ms(50);
        }
}

static void begin(void)
{
        struct vfiod_server_info info;
        FILE *f;
        int pid = 0, r;

        memset(&T, 0, sizeof(T));
        find_edus();
        f = fopen(VFIOD_PID, "re");
        ck_assert_msg(f, "%s: %s (is vfiod running? see broker-setup.sh)", VFIOD_PID,
                      strerror(errno));
        ck_assert_int_eq(fscanf(f, "%d", &pid), 1);
        fclose(f);
        T.daemon = pid;
        ck_assert_msg(kill(T.daemon, 0) == 0, "vfiod (pid %d) is not running", pid);
        r = vfiod_connect(NULL, &T.admin);
        ck_assert_msg(r == 0, "root's connection: %s", strerror(-r));
        ck_assert_int_eq(vfiod_get_server_info(T.admin, &info), 0);
        ck_assert_msg(info.capabilities & VFIOD_CAP_ADMIN, "root is not an admin");
        wait_idle(false);
        T.daemon_fds = daemon_fds();
        f = fopen(VFIOD_LOG, "re");
        ck_assert_ptr_nonnull(f);
        fseek(f, 0, SEEK_END);
        T.log_start = ftell(f);
        fclose(f);
}

/* The daemon leaked nothing; closes the admin connection. */
static void end(void)
{
        wait_idle(true);
        vfiod_close(T.admin);
        T.admin = NULL;
}

static struct vfiod_lease_info *find_lease_info(struct vfiod_lease_info *l, size_t n, uint64_t id)
{
        for (size_t i = 0; i < n; i++)
                if (l[i].lease_id == id)
                        return &l[i];
        return NULL;
}

/* ---- what clients do (unprivileged children: tests/vm/child.h) ----------- */

static struct vfiod *p_connect(struct peer *p)
{
        struct vfiod *c = NULL;
        int r = vfiod_connect(NULL, &c);

        P_CHECK(p, r == 0, "connect: %s", strerror(-r));
        return c;
}

static void p_acquire(struct peer *p, struct vfiod *c, const char *bdf, enum vfiod_mode mode,
                      struct vfiod_lease *l)
{
        int r = acquire(c, bdf, 0, mode, l);

        P_CHECK(p, r == 0, "acquire %s %s: %s (%s)", bdf, vfiod_mode_name(mode), strerror(-r),
                vfiod_last_error(c));
        P_CHECK(p, l->device_fd >= 0 && l->lease_id > 0 && l->domain_id > 0, "bad lease");
        P_CHECK(p, l->interface == I, "lease through interface %d, not %d", (int)l->interface,
                (int)I);
        if (mode == VFIOD_MODE_BROKERED)
                P_CHECK(p, l->container_fd == -1 && l->group_fd == -1 && l->iommufd_fd == -1,
                        "brokered lease with container fd %d, group fd %d, iommufd %d",
                        l->container_fd, l->group_fd, l->iommufd_fd);
        else if (I == VFIOD_INTERFACE_IOMMUFD)
                P_CHECK(p, l->iommufd_fd >= 0 && l->container_fd == -1 && l->group_fd == -1,
                        "iommufd direct lease: iommufd %d, container %d, group %d", l->iommufd_fd,
                        l->container_fd, l->group_fd);
        else
                P_CHECK(p, l->container_fd >= 0 && l->group_fd >= 0,
                        "direct lease without container/group fd");
}

/* The state of bdf as c sees it. */
static enum vfiod_lease_state p_state(struct peer *p, struct vfiod *c, const char *bdf)
{
        struct vfiod_device_info *d = NULL;
        enum vfiod_lease_state s;
        size_t n = 0;
        int r = vfiod_list_devices(c, bdf, &d, &n);

        P_CHECK(p, r == 0 && n == 1, "ListDevices %s: %s (%s), %zu devices", bdf, strerror(-r),
                vfiod_last_error(c), n);
        s = d[0].state;
        vfiod_devices_free(d, n);
        return s;
}

/* A brokered lease with a 2-page sealed memfd mapped at IOVA and BAR0 mapped. */
struct bsess {
        struct vfiod *c;
        struct vfiod_lease l;
        int memfd, efd;
        uint8_t *mem;
        struct testdev dev;
        bool mapped;
};

/*
 * Connects and acquires bdf (retrying while it is EBUSY, when retry_busy:
 * the group may stay quarantined for a moment after its last holder died),
 * reads the PCI status register into *ret_status (when not NULL) before
 * touching the device, maps a sealed memfd at IOVA and BAR0, enables bus
 * mastering and, when msi, MSI on an eventfd through the daemon.
 */
static void b_open(struct peer *p, struct bsess *s, const char *bdf, bool msi, bool retry_busy,
                   uint32_t *ret_status)
{
        uint64_t bytes = 0, dom = 0;
        int r;

        memset(s, 0, sizeof(*s));
        s->memfd = s->efd = -1;
        s->c = p_connect(p);
        /* An explicit domain: the tests use it after its lease is gone. */
        r = vfiod_create_domain_iface(s->c, VFIOD_IOMMU_TYPE_UNSPECIFIED, I, &dom, NULL);
        P_CHECK(p, r == 0, "CreateDomain: %s (%s)", strerror(-r), vfiod_last_error(s->c));
        for (int i = 0; i < 100; i++) {
                r = acquire(s->c, bdf, dom, VFIOD_MODE_BROKERED, &s->l);
                if (r != -EBUSY || !retry_busy)
                        break;
                usleep(50 * 1000);
        }
        P_CHECK(p, r == 0, "acquire %s: %s (%s)", bdf, strerror(-r), vfiod_last_error(s->c));
        if (ret_status) {
                r = edu_config_read(s->l.device_fd, PCI_STATUS, 2, ret_status);
                P_CHECK(p, r == 0, "config read: %s", strerror(-r));
        }
        r = vfiod_memfd_create("guest-broker", 2 * PAGE, &s->memfd);
        P_CHECK(p, r == 0, "memfd: %s", strerror(-r));
        s->mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, s->memfd, 0);
        P_CHECK(p, s->mem != MAP_FAILED, "mmap memfd: %s", strerror(errno));
        r = vfiod_map_dma(s->c, s->l.domain_id,
                          &(struct vfiod_dma_range){.fd = s->memfd,
                                                    .iova = IOVA,
                                                    .size = 2 * PAGE,
                                                    .flags = VFIOD_DMA_READ | VFIOD_DMA_WRITE},
                          1, &bytes);
        P_CHECK(p, r == 1 && bytes == 2 * PAGE, "MapDma: %d %s (%s)", r, strerror(-r),
                vfiod_last_error(s->c));
        s->mapped = true;
        r = testdev_open(&s->dev, K, s->l.device_fd);
        P_CHECK(p, r == 0, "BAR0: %s", strerror(-r));
        r = edu_enable_bus_master(s->l.device_fd);
        P_CHECK(p, r == 0, "bus master: %s", strerror(-r));
        testdev_ack(&s->dev, ~UINT32_C(0));
        if (msi) {
                r = vfiod_setup_msi(s->c, s->l.lease_id, VFIOD_IRQ_INDEX_MSI, 1, &s->efd);
                P_CHECK(p, r == 0, "SetIrqs MSI: %s (%s)", strerror(-r), vfiod_last_error(s->c));
        }
}

/* One DMA between the device and iova, waiting for the MSI on efd (or polling when efd < 0). */
static void p_dma(struct peer *p, struct testdev *d, int efd, uint64_t iova, uint32_t count,
                  bool to_ram, unsigned *irqs)
{
        uint64_t n = 0;
        int r;

        r = testdev_dma_start(d, iova, count, to_ram, efd >= 0);
        P_CHECK(p, r == 0, "DMA start: %s", strerror(-r));
        if (efd >= 0) {
                r = edu_eventfd_wait(efd, WAIT_MS, &n);
                P_CHECK(p, r == 1, "no MSI after the DMA %s (%d)", to_ram ? "to RAM" : "from RAM",
                        r);
                *irqs += (unsigned)n;
                P_CHECK(p, testdev_dma_irq_pending(d),
                        "MSI without the device's DMA interrupt bit");
                testdev_ack(d, EDU_IRQ_DMA);
        }
        r = testdev_dma_wait(d, 5000);
        P_CHECK(p, r == 0, "DMA wait: %s", strerror(-r));
}

/*
 * Page 0 -> the device -> page 1 of mem (mapped at iova), checked byte for
 * byte: two DMAs, each with its interrupt (see testdev.h for mdma).
 */
static void p_roundtrip(struct peer *p, struct testdev *d, int efd, uint8_t *mem, uint64_t iova,
                        unsigned seed, unsigned *irqs)
{
        edu_pattern(mem, PAGE, seed);
        memset(mem + PAGE, 0, PAGE);
        p_dma(p, d, efd, iova, TESTDEV_DMA_MAX, false, irqs);
        p_dma(p, d, efd, iova + PAGE, TESTDEV_DMA_MAX, true, irqs);
        for (size_t i = 0; i < TESTDEV_DMA_MAX; i++)
                P_CHECK(p, mem[PAGE + i] == mem[i], "byte %zu came back as %#x, sent %#x", i,
                        mem[PAGE + i], mem[i]);
        P_CHECK(p, mem[PAGE + TESTDEV_DMA_MAX] == 0, "the byte after the transfer changed");
}

/*
 * A DMA through a mapping that is gone: edu's completes and the IOMMU stops
 * its writes (QEMU logs a VT-d fault); mdma refuses it itself (-EIO).
 */
static bool reached_nothing(int dma_result)
{
        return dma_result == 0 || (K == TESTDEV_MDMA && dma_result == -EIO);
}

/* Unmaps, closes the lease's fds, releases, closes the connection. */
static void b_close(struct peer *p, struct bsess *s)
{
        uint64_t bytes = 0;
        int r;

        if (s->efd >= 0) {
                r = vfiod_disable_irqs(s->c, s->l.lease_id, VFIOD_IRQ_INDEX_MSI);
                P_CHECK(p, r == 0, "disable MSI: %s", strerror(-r));
                close(s->efd);
        }
        if (s->mapped) {
                r = vfiod_unmap_dma(s->c, s->l.domain_id,
                                    &(struct vfiod_iova_range){.iova = IOVA, .size = 2 * PAGE}, 1,
                                    &bytes);
                P_CHECK(p, r == 1 && bytes == 2 * PAGE, "UnmapDma: %d %s (%s)", r, strerror(-r),
                        vfiod_last_error(s->c));
        }
        testdev_close(&s->dev);
        munmap(s->mem, 2 * PAGE);
        close(s->memfd);
        vfiod_lease_close_fds(&s->l);
        r = vfiod_release(s->c, s->l.lease_id);
        P_CHECK(p, r == 0, "Release: %s (%s)", strerror(-r), vfiod_last_error(s->c));
        vfiod_close(s->c);
}

/* Closes what a session whose lease was revoked still holds (no Release: it is gone). */
static void b_close_revoked(struct peer *p, struct bsess *s)
{
        close(s->efd);
        testdev_close(&s->dev);
        munmap(s->mem, 2 * PAGE);
        close(s->memfd);
        vfiod_lease_close_fds(&s->l);
        P_CHECK(p, vfiod_destroy_domain(s->c, s->l.domain_id) == 0, "DestroyDomain: %s",
                vfiod_last_error(s->c));
        vfiod_close(s->c);
}

/* One MapDma range of fd at iova; returns what the library returned. */
static int map1(struct vfiod *c, uint64_t domain, int fd, uint64_t off, uint64_t iova,
                uint64_t size)
{
        return vfiod_map_dma(c, domain,
                             &(struct vfiod_dma_range){.fd = fd,
                                                       .offset = off,
                                                       .iova = iova,
                                                       .size = size,
                                                       .flags = VFIOD_DMA_READ | VFIOD_DMA_WRITE},
                             1, NULL);
}

/* ---- modes ---------------------------------------------------------------- */

/*
 * BROKERED: the device fd only; a sealed memfd mapped by the daemon; MSI on
 * an eventfd assigned through the daemon; DMA both ways through the daemon's
 * mapping of the client's pages.
 */
static void client_brokered(struct peer *p, const void *arg)
{
        const char *bdf = arg;
        unsigned irqs = 0;
        struct bsess s;

        b_open(p, &s, bdf, true, false, NULL);
        P_CHECK(p, p_state(p, s.c, bdf) == VFIOD_LEASE_STATE_LEASED_BY_YOU, "not leased by me");
        p_say(p, "leased %llu", (unsigned long long)s.l.lease_id);
        p_wait(p);
        p_roundtrip(p, &s.dev, s.efd, s.mem, IOVA, 1, &irqs);
        p_roundtrip(p, &s.dev, s.efd, s.mem, IOVA, 2, &irqs);
        P_CHECK(p, irqs == 4, "%u MSIs for 4 DMAs", irqs);
        /* The daemon turned the eventfd off: a raised interrupt reaches nobody. */
        P_CHECK(p, vfiod_disable_irqs(s.c, s.l.lease_id, VFIOD_IRQ_INDEX_MSI) == 0, "disable");
        testdev_raise(&s.dev, 0x1);
        P_CHECK(p, edu_eventfd_wait(s.efd, 300, NULL) == 0, "MSI after disable");
        testdev_ack(&s.dev, 0x1);
        close(s.efd);
        s.efd = -1; /* off already: b_close() must not disable it again (EINVAL) */
        p_say(p, "dma %u irqs", irqs);
        b_close(p, &s);
}

START_TEST(test_brokered_dma_msi)
{
        struct vfiod_lease_info *li = NULL, *mine;
        struct vfiod_stats st;
        unsigned long long lease = 0;
        struct child a;
        char line[256];
        size_t n = 0;

        begin();
        child_start(&a, "alice", client_brokered, T.bdf[0], CHILD_CHECK_FDS);
        child_expect(&a, "leased ", line, sizeof(line));
        ck_assert_int_eq(sscanf(line, "leased %llu", &lease), 1);
        /* The daemon's view of the lease. */
        ck_assert_int_eq(vfiod_list_leases(T.admin, &li, &n), 0);
        ck_assert_uint_eq(n, 1);
        mine = find_lease_info(li, n, lease);
        ck_assert_ptr_nonnull(mine);
        ck_assert_uint_eq(mine->uid, getpwnam("alice")->pw_uid);
        ck_assert_uint_eq(mine->pid, (uint32_t)a.pid);
        ck_assert_int_eq(mine->mode, VFIOD_MODE_BROKERED);
        ck_assert_uint_eq(mine->iommu_group, (uint32_t)T.group[0]);
        ck_assert_uint_eq(mine->pinned_bytes, 2 * PAGE);
        ck_assert_uint_eq(mine->mappings, 1);
        ck_assert_str_eq(mine->devices[0], T.bdf[0]);
        vfiod_leases_free(li, n);
        get_stats(&st);
        ck_assert_uint_eq(st.leases, 1);
        ck_assert_uint_eq(st.mappings, 1);
        ck_assert_uint_eq(st.pinned_bytes, 2 * PAGE);
        ck_assert_int_eq(daemon_memfd_maps(), 1); /* the daemon's own mapping of the memfd */
        child_go(&a);
        child_expect(&a, "dma 4 irqs", NULL, 0);
        child_end(&a);
        log_wait_for("leased device '", T.bdf[0], "in brokered mode", NULL);
        log_wait_for("lease ", "released; group ", "is free", NULL);
        end();
}
END_TEST

/* Plain VFIO ioctls on the fds a DIRECT lease gave (what an unmodified launcher does). */
static int vfio_map(int container, void *vaddr, uint64_t iova, uint64_t size)
{
        struct vfio_iommu_type1_dma_map m = {
            .argsz = sizeof(m),
            .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
            .vaddr = (uintptr_t)vaddr,
            .iova = iova,
            .size = size,
        };

        return ioctl(container, VFIO_IOMMU_MAP_DMA, &m) < 0 ? -errno : 0;
}

static int vfio_msi(int device, int efd)
{
        char buf[sizeof(struct vfio_irq_set) + sizeof(int)];
        struct vfio_irq_set *set = (struct vfio_irq_set *)buf;

        *set = (struct vfio_irq_set){
            .argsz = sizeof(buf),
            .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
            .index = VFIO_PCI_MSI_IRQ_INDEX,
            .start = 0,
            .count = 1,
        };
        memcpy(set->data, &efd, sizeof(int));
        return ioctl(device, VFIO_DEVICE_SET_IRQS, set) < 0 ? -errno : 0;
}

/*
 * iommufd DIRECT, what QEMU does with fd=: the cdev arrives unbound (nothing
 * but the bind works on it); bind it to the domain's iommufd, make an IOAS,
 * attach, map [mem, mem + size) at IOVA. The client's RLIMIT_MEMLOCK counts
 * it (per-process accounting, set by vfiod).
 */
static void direct_iommufd_map(struct peer *p, const struct vfiod_lease *l, void *mem,
                               uint64_t size)
{
        struct vfio_device_info info = {.argsz = sizeof(info)};
        uint32_t ioas = 0;
        int r;

        P_CHECK(p, l->cdev[0] && strncmp(l->cdev, "vfio", 4) == 0, "cdev '%s'", l->cdev);
        P_CHECK(p, ioctl(l->device_fd, VFIO_DEVICE_GET_INFO, &info) < 0 && errno == EINVAL,
                "the cdev arrived bound");
        r = kvfio_iommufd_get_rlimit_mode(l->iommufd_fd);
        P_CHECK(p, r == KVFIO_IOMMUFD_RLIMIT_PROCESS, "rlimit mode %d", r);
        r = kvfio_device_bind_iommufd(l->device_fd, l->iommufd_fd, NULL);
        P_CHECK(p, r == 0, "VFIO_DEVICE_BIND_IOMMUFD as uid %u: %s", (unsigned)getuid(),
                strerror(-r));
        r = kvfio_ioas_alloc(l->iommufd_fd, &ioas);
        P_CHECK(p, r == 0, "IOMMU_IOAS_ALLOC: %s", strerror(-r));
        r = kvfio_device_attach_ioas(l->device_fd, ioas, NULL);
        P_CHECK(p, r == 0, "VFIO_DEVICE_ATTACH_IOMMUFD_PT: %s", strerror(-r));
        r = kvfio_ioas_map(l->iommufd_fd, ioas, mem, IOVA, size, KVFIO_DMA_READ | KVFIO_DMA_WRITE);
        P_CHECK(p, r == 0, "IOMMU_IOAS_MAP as uid %u: %s", (unsigned)getuid(), strerror(-r));
}

/*
 * What a client that maps DMA itself does (DIRECT, GROUP): 2 pages of its
 * own at IOVA in its container (in an IOAS of its own through by_iommufd's
 * iommufd when not NULL), the device's BAR0 open with bus mastering on, MSI
 * on an eventfd (*ret_efd). Returns the pages.
 */
static uint8_t *p_own_dma_msi(struct peer *p, const struct vfiod_lease *by_iommufd, int container,
                              int device, struct testdev *dev, int *ret_efd)
{
        uint8_t *mem;
        int r;

        mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        P_CHECK(p, mem != MAP_FAILED, "mmap: %s", strerror(errno));
        if (by_iommufd)
                direct_iommufd_map(p, by_iommufd, mem, 2 * PAGE);
        else {
                r = vfio_map(container, mem, IOVA, 2 * PAGE);
                P_CHECK(p, r == 0, "VFIO_IOMMU_MAP_DMA as uid %u: %s", (unsigned)getuid(),
                        strerror(-r));
        }
        r = testdev_open(dev, K, device);
        P_CHECK(p, r == 0, "BAR0: %s", strerror(-r));
        P_CHECK(p, edu_enable_bus_master(device) == 0, "bus master");
        testdev_ack(dev, ~UINT32_C(0));
        *ret_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        P_CHECK(p, *ret_efd >= 0, "eventfd");
        r = vfio_msi(device, *ret_efd);
        P_CHECK(p, r == 0, "VFIO_DEVICE_SET_IRQS MSI: %s", strerror(-r));
        return mem;
}

/*
 * DIRECT: container, group and device fds; the client maps its own memory
 * and sets its own MSI with VFIO ioctls. It leaves its mapping in place: the
 * daemon's release must unmap it (VFIO_UNMAP_ALL).
 */
static void client_direct(struct peer *p, const void *arg)
{
        const char *bdf = arg;
        struct vfio_group_status gs = {.argsz = sizeof(gs)};
        struct vfiod_lease l;
        struct testdev dev = {.fd = -1};
        unsigned irqs = 0;
        struct vfiod *c = p_connect(p);
        uint8_t *mem;
        int efd, r;

        p_acquire(p, c, bdf, VFIOD_MODE_DIRECT, &l);
        if (I != VFIOD_INTERFACE_IOMMUFD) {
                P_CHECK(p, ioctl(l.group_fd, VFIO_GROUP_GET_STATUS, &gs) == 0, "group status: %s",
                        strerror(errno));
                P_CHECK(p,
                        (gs.flags & VFIO_GROUP_FLAGS_VIABLE) &&
                            (gs.flags & VFIO_GROUP_FLAGS_CONTAINER_SET),
                        "group flags %#x", gs.flags);
                P_CHECK(p, ioctl(l.container_fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) == 1,
                        "no Type1v2");
        }
        /* A direct domain is not the daemon's to map. */
        {
                int memfd = -1;

                P_CHECK(p, vfiod_memfd_create("x", PAGE, &memfd) == 0, "memfd");
                r = vfiod_map_memfd(c, l.domain_id, memfd, 0, IOVA + 16 * PAGE, PAGE,
                                    VFIOD_DMA_READ);
                P_CHECK(p, r == -EINVAL && strstr(vfiod_last_error(c), "not a brokered domain"),
                        "MapDma on a direct domain: %d (%s)", r, vfiod_last_error(c));
                close(memfd);
        }
        mem = p_own_dma_msi(p, I == VFIOD_INTERFACE_IOMMUFD ? &l : NULL, l.container_fd,
                            l.device_fd, &dev, &efd);
        p_say(p, "leased %llu", (unsigned long long)l.lease_id);
        p_wait(p);
        p_roundtrip(p, &dev, efd, mem, IOVA, 3, &irqs);
        P_CHECK(p, irqs == 2, "%u MSIs for 2 DMAs", irqs);
        p_say(p, "dma %u irqs", irqs);
        /* Mapping left in place on purpose; MSI left on too: the release turns it off. */
        testdev_close(&dev);
        vfiod_lease_close_fds(&l);
        r = vfiod_release(c, l.lease_id);
        P_CHECK(p, r == 0, "Release: %s (%s)", strerror(-r), vfiod_last_error(c));
        close(efd);
        munmap(mem, 2 * PAGE);
        vfiod_close(c);
}

START_TEST(test_direct_dma_msi)
{
        struct vfiod_lease_info *li = NULL;
        struct child b;
        size_t n = 0;

        begin();
        child_start(&b, "bob", client_direct, T.bdf[1], CHILD_CHECK_FDS);
        child_expect(&b, "leased ", NULL, 0);
        ck_assert_int_eq(vfiod_list_leases(T.admin, &li, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_int_eq(li[0].mode, VFIOD_MODE_DIRECT);
        ck_assert_uint_eq(li[0].uid, getpwnam("bob")->pw_uid);
        ck_assert_uint_eq(li[0].pinned_bytes, 0); /* the client's own mappings are its own */
        vfiod_leases_free(li, n);
        child_go(&b);
        child_expect(&b, "dma 2 irqs", NULL, 0);
        child_end(&b);
        /* The release unmapped what the client had left (its 2 pages), or detached the device. */
        log_wait_for(by_iface("unmapped all client DMA (8192 bytes)",
                              "release 3/5: device detached and closed"),
                     NULL);
        log_wait_for("lease ", "released; group ", "is free", NULL);
        end();
}
END_TEST

/* ---- two clients, two devices ---------------------------------------------- */

struct pair_arg {
        const char *mine, *other;
};

static void client_pair(struct peer *p, const void *arg)
{
        const struct pair_arg *a = arg;
        struct vfiod_lease l2;
        unsigned irqs = 0;
        struct bsess s;
        int r;

        b_open(p, &s, a->mine, true, false, NULL);
        p_say(p, "leased %llu", (unsigned long long)s.l.lease_id);
        p_wait(p);
        /* The other client's device: leased, not mine, not acquirable. */
        P_CHECK(p, p_state(p, s.c, a->other) == VFIOD_LEASE_STATE_LEASED, "other not LEASED");
        r = acquire(s.c, a->other, 0, VFIOD_MODE_BROKERED, &l2);
        P_CHECK(p, r == -EBUSY && strstr(vfiod_last_error(s.c), "is leased"),
                "acquire of the other's device: %d (%s)", r, vfiod_last_error(s.c));
        p_say(p, "ready");
        p_wait(p);
        /* Both clients run these at the same time. */
        for (unsigned i = 0; i < 3; i++)
                p_roundtrip(p, &s.dev, s.efd, s.mem, IOVA, 10 + i + (unsigned)getuid(), &irqs);
        P_CHECK(p, irqs == 6, "%u MSIs for 6 DMAs", irqs);
        p_say(p, "dma %u irqs", irqs);
        b_close(p, &s);
}

START_TEST(test_two_clients_two_devices)
{
        struct vfiod_lease_info *li = NULL;
        struct pair_arg aarg, barg;
        struct vfiod_stats st;
        struct child a, b;
        size_t n = 0;

        begin();
        /* T is filled by begin(): take the addresses now. */
        aarg = (struct pair_arg){T.bdf[0], T.bdf[1]};
        barg = (struct pair_arg){T.bdf[1], T.bdf[0]};
        child_start(&a, "alice", client_pair, &aarg, CHILD_CHECK_FDS);
        child_start(&b, "bob", client_pair, &barg, CHILD_CHECK_FDS);
        child_expect(&a, "leased ", NULL, 0);
        child_expect(&b, "leased ", NULL, 0);
        ck_assert_int_eq(vfiod_list_leases(T.admin, &li, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_uint_ne(li[0].uid, li[1].uid);
        ck_assert_uint_ne(li[0].domain_id, li[1].domain_id);
        ck_assert_str_ne(li[0].devices[0], li[1].devices[0]);
        vfiod_leases_free(li, n);
        get_stats(&st);
        ck_assert_uint_eq(st.clients, 3);
        ck_assert_uint_eq(st.leases, 2);
        ck_assert_uint_eq(st.domains, 2);
        ck_assert_uint_eq(st.pinned_bytes, 4 * PAGE);
        ck_assert_int_eq(daemon_memfd_maps(), 2);
        child_go(&a);
        child_go(&b);
        child_expect(&a, "ready", NULL, 0);
        child_expect(&b, "ready", NULL, 0);
        child_go(&a);
        child_go(&b);
        child_expect(&a, "dma 6 irqs", NULL, 0);
        child_expect(&b, "dma 6 irqs", NULL, 0);
        child_end(&a);
        child_end(&b);
        end();
}
END_TEST

/* ---- policy ---------------------------------------------------------------- */

struct deny_arg {
        const char *bdf;
        enum vfiod_mode mode;
        const char *reason; /* expected in the EPERM reason */
        bool sees_none;     /* ListDevices shows this user nothing */
};

static void client_denied(struct peer *p, const void *arg)
{
        const struct deny_arg *a = arg;
        struct vfiod *c = p_connect(p);
        struct vfiod_device_info *d = NULL;
        struct vfiod_stats st;
        struct vfiod_lease l;
        size_t n = 0;
        int r;

        r = vfiod_list_devices(c, NULL, &d, &n);
        P_CHECK(p, r == 0, "ListDevices: %s", strerror(-r));
        if (a->sees_none)
                P_CHECK(p, n == 0, "sees %zu devices", n);
        vfiod_devices_free(d, n);
        r = acquire(c, a->bdf, 0, a->mode, &l);
        P_CHECK(p, r == -EPERM, "acquire %s %s: %d (%s), want EPERM", a->bdf,
                vfiod_mode_name(a->mode), r, vfiod_last_error(c));
        P_CHECK(p, strstr(vfiod_last_error(c), a->reason), "reason '%s', want '%s'",
                vfiod_last_error(c), a->reason);
        p_say(p, "denied: %s", vfiod_last_error(c));
        /* Not an admin either; the connection stays. */
        r = vfiod_stats(c, &st);
        P_CHECK(p, r == -EPERM && strstr(vfiod_last_error(c), "for administrators"),
                "Stats as %s: %d (%s)", p->user, r, vfiod_last_error(c));
        r = vfiod_list_devices(c, NULL, &d, &n);
        P_CHECK(p, r == 0, "ListDevices after the refusals: %s", strerror(-r));
        vfiod_devices_free(d, n);
        vfiod_close(c);
}

START_TEST(test_denied)
{
        struct deny_arg eve, bob, alice;
        struct child ch;
        char line[600];
        unsigned uid;

        begin();
        eve = (struct deny_arg){T.bdf[0], VFIOD_MODE_BROKERED, "does not allow you device", true};
        bob = (struct deny_arg){T.bdf[2], VFIOD_MODE_BROKERED, "in brokered mode (allowed: none)",
                                false};
        alice = (struct deny_arg){T.bdf[2], VFIOD_MODE_DIRECT, "in direct mode (allowed: brokered)",
                                  false};
        child_start(&ch, "eve", client_denied, &eve, CHILD_CHECK_FDS);
        child_expect(&ch, "denied: ", line, sizeof(line));
        child_end(&ch);
        child_start(&ch, "bob", client_denied, &bob, CHILD_CHECK_FDS);
        child_expect(&ch, "denied: ", line, sizeof(line));
        child_end(&ch);
        child_start(&ch, "alice", client_denied, &alice, CHILD_CHECK_FDS);
        child_expect(&ch, "denied: ", line, sizeof(line));
        child_end(&ch);
        /* Each refusal is logged with who asked. */
        uid = getpwnam("bob")->pw_uid;
        snprintf(line, sizeof(line), "peer_uid=%u ", uid);
        log_wait_for("refused device '", T.bdf[2], "in brokered mode (allowed: none)", line, NULL);
        snprintf(line, sizeof(line), "peer_uid=%u ", getpwnam("eve")->pw_uid);
        log_wait_for("refused device '", T.bdf[0], line, NULL);
        end();
}
END_TEST

/* ---- release paths ---------------------------------------------------------- */

/* Maps, raises an interrupt (the PCI status bit a reset clears), then waits to be killed. */
static void client_killed(struct peer *p, const void *arg)
{
        uint32_t status = 0;
        unsigned irqs = 0;
        struct bsess s;

        b_open(p, &s, arg, false, false, NULL);
        p_roundtrip(p, &s.dev, -1, s.mem, IOVA, 5, &irqs);
        testdev_raise(&s.dev, 0x8);
        P_CHECK(p, edu_config_read(s.l.device_fd, PCI_STATUS, 2, &status) == 0, "config read");
        P_CHECK(p, status & PCI_STATUS_INTERRUPT, "PCI status %#x without the interrupt bit",
                status);
        /* A DMA in flight when the end comes (reading: edu keeps going after a reset). */
        P_CHECK(p, testdev_dma_start(&s.dev, IOVA, TESTDEV_DMA_MAX, false, false) == 0, "dma");
        p_say(p, "leased %llu", (unsigned long long)s.l.lease_id);
        p_wait(p);
        p_fail(p, __FILE__, __LINE__, "not killed");
}

/* Acquires a device someone else had; checks it was reset, works, releases. */
static void client_next(struct peer *p, const void *arg)
{
        uint32_t status = 0;
        unsigned irqs = 0;
        struct bsess s;

        b_open(p, &s, arg, true, true, &status);
        P_CHECK(p, !(status & PCI_STATUS_INTERRUPT), "PCI status %#x: not reset", status);
        P_CHECK(p, testdev_dma_wait(&s.dev, 5000) == 0, "the device is still busy");
        testdev_ack(&s.dev, ~UINT32_C(0)); /* edu keeps its own register */
        p_roundtrip(p, &s.dev, s.efd, s.mem, IOVA, 6, &irqs);
        P_CHECK(p, irqs == 2, "%u MSIs", irqs);
        p_say(p, "works, status %#x", status);
        b_close(p, &s);
}

/*
 * Waits until the group of T.bdf[i] is free again. On vfio-pci (edu) that is
 * as soon as nobody holds it: its next open resets the device. An mdev is
 * sanitized first (its open is mdma's, not known to reset it).
 */
static void wait_free(int i)
{
        char group[32];

        snprintf(group, sizeof(group), "group %d ", T.group[i]);
        log_wait_for(group,
                     K == TESTDEV_MDMA ? "sanitized; it is free" : "is free: nobody else holds it",
                     NULL);
}

/* Waits for the line of the reset that readied T.bdf[i] for its next holder. */
static void wait_reset_logged(int i)
{
        char line[128];

        if (K == TESTDEV_MDMA)
                snprintf(line, sizeof(line), "sanitize: reset '%s'", T.bdf[i]);
        else
                snprintf(line, sizeof(line), "'%s' was reset as it opened", T.bdf[i]);
        log_wait_for(line, NULL);
}

/*
 * GROUP: the group fd alone, attached to no container. The client sets it up
 * as QEMU does (its own /dev/vfio/vfio, Type1v2, its device fd), maps its
 * memory, DMAs with MSI; it releases with its device fd open (quarantined:
 * the unset through vfiod's duplicate is refused), then closes it.
 */
static void client_group(struct peer *p, const void *arg)
{
        const char *bdf = arg;
        struct vfio_group_status gs = {.argsz = sizeof(gs)};
        struct vfiod_lease l;
        struct testdev dev = {.fd = -1};
        struct vfiod *c = p_connect(p);
        unsigned irqs = 0;
        uint8_t *mem;
        int container, device, efd, r;

        r = vfiod_acquire(c, bdf, 0, VFIOD_MODE_GROUP, &l);
        P_CHECK(p, r == 0, "acquire %s group: %s (%s)", bdf, strerror(-r), vfiod_last_error(c));
        P_CHECK(p, l.group_fd >= 0 && l.container_fd < 0 && l.device_fd < 0 && l.domain_id == 0,
                "not the group fd alone");
        P_CHECK(p, ioctl(l.group_fd, VFIO_GROUP_GET_STATUS, &gs) == 0, "group status: %s",
                strerror(errno));
        P_CHECK(
            p, (gs.flags & VFIO_GROUP_FLAGS_VIABLE) && !(gs.flags & VFIO_GROUP_FLAGS_CONTAINER_SET),
            "group flags %#x", gs.flags);
        container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
        P_CHECK(p, container >= 0, "/dev/vfio/vfio as uid %u: %s", (unsigned)getuid(),
                strerror(errno));
        P_CHECK(p, ioctl(l.group_fd, VFIO_GROUP_SET_CONTAINER, &container) == 0,
                "VFIO_GROUP_SET_CONTAINER: %s", strerror(errno));
        P_CHECK(p, ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) == 0, "VFIO_SET_IOMMU: %s",
                strerror(errno));
        device = ioctl(l.group_fd, VFIO_GROUP_GET_DEVICE_FD, bdf);
        P_CHECK(p, device >= 0, "VFIO_GROUP_GET_DEVICE_FD: %s", strerror(errno));
        mem = p_own_dma_msi(p, NULL, container, device, &dev, &efd);
        p_roundtrip(p, &dev, efd, mem, IOVA, 3, &irqs);
        P_CHECK(p, irqs == 2, "%u MSIs for 2 DMAs", irqs);
        p_say(p, "leased %llu, dma %u irqs", (unsigned long long)l.lease_id, irqs);
        p_wait(p);
        close(container);
        vfiod_lease_close_fds(&l);
        r = vfiod_release(c, l.lease_id);
        P_CHECK(p, r == 0, "Release: %s (%s)", strerror(-r), vfiod_last_error(c));
        P_CHECK(p, p_state(p, c, bdf) == VFIOD_LEASE_STATE_QUARANTINED, "not QUARANTINED");
        p_say(p, "released, device fd kept");
        p_wait(p);
        testdev_close(&dev);
        close(device);
        close(efd);
        munmap(mem, 2 * PAGE);
        vfiod_close(c);
}

START_TEST(test_group_lease)
{
        struct vfiod_lease_info *li = NULL;
        struct child b;
        size_t n = 0;

        begin();
        child_start(&b, "bob", client_group, T.bdf[1], CHILD_CHECK_FDS);
        child_expect(&b, "leased ", NULL, 0);
        ck_assert_int_eq(vfiod_list_leases(T.admin, &li, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_int_eq(li[0].mode, VFIOD_MODE_GROUP);
        ck_assert_uint_eq(li[0].domain_id, 0);
        vfiod_leases_free(li, n);
        child_go(&b);
        child_expect(&b, "released, device fd kept", NULL, 0);
        log_wait_for("quarantined: a device fd is still open", NULL);
        child_go(&b);
        child_end(&b);
        wait_free(1);
        end();
}
END_TEST

START_TEST(test_sigkill_mid_lease)
{
        unsigned long long lease = 0;
        char line[256], id[64];
        struct child a, b;

        begin();
        child_start(&a, "alice", client_killed, T.bdf[0], CHILD_CHECK_FDS);
        child_expect(&a, "leased ", line, sizeof(line));
        ck_assert_int_eq(sscanf(line, "leased %llu", &lease), 1);
        child_kill(&a);
        snprintf(id, sizeof(id), "releasing lease %llu of '%s'", lease, T.bdf[0]);
        log_wait_for(id, "its holder disconnected", NULL);
        log_wait_for("unmapped iova 0x100000+0x2000", NULL);
        wait_free(0);
        child_start(&b, "bob", client_next, T.bdf[0], CHILD_CHECK_FDS);
        child_expect(&b, "works", NULL, 0);
        child_end(&b);
        wait_reset_logged(0);
        end();
}
END_TEST

/*
 * Keeps the device fd after Release: the group is quarantined (and the
 * device can no longer reach the pages it had); another client sees
 * QUARANTINED and gets EBUSY; once the fd is closed the group is leased again.
 */
static void client_keeps_fd(struct peer *p, const void *arg)
{
        uint8_t before[64];
        struct bsess s;
        int r;

        b_open(p, &s, arg, false, false, NULL);
        edu_pattern(s.mem + PAGE, PAGE, 77);
        memcpy(before, s.mem + PAGE, sizeof(before));
        P_CHECK(p, testdev_dma(&s.dev, IOVA, 256, false) == 0, "dma");
        vfiod_disable_irqs(s.c, s.l.lease_id, VFIOD_IRQ_INDEX_MSI);
        r = vfiod_release(s.c, s.l.lease_id);
        P_CHECK(p, r == 0, "Release with the fd open: %s (%s)", strerror(-r),
                vfiod_last_error(s.c));
        /* The lease is gone, so are its mappings: the device writes nowhere now. */
        P_CHECK(p, reached_nothing(testdev_dma(&s.dev, IOVA + PAGE, 64, true)),
                "dma after release");
        P_CHECK(p, memcmp(s.mem + PAGE, before, sizeof(before)) == 0,
                "the device wrote the client's page after the release");
        /* Nor can the domain, which still holds the group, map anything for it again. */
        r = map1(s.c, s.l.domain_id, s.memfd, 0, IOVA, 2 * PAGE);
        P_CHECK(p, r == -EBUSY, "MapDma into a domain with a quarantined group: %d (%s)", r,
                vfiod_last_error(s.c));
        P_CHECK(p, reached_nothing(testdev_dma(&s.dev, IOVA + PAGE, 64, true)),
                "dma after the refused map");
        P_CHECK(p, memcmp(s.mem + PAGE, before, sizeof(before)) == 0,
                "the device wrote the client's page through a mapping made after the release");
        p_say(p, "released, fd %d kept", s.l.device_fd);
        p_wait(p);
        testdev_close(&s.dev);
        vfiod_lease_close_fds(&s.l);
        munmap(s.mem, 2 * PAGE);
        close(s.memfd);
        vfiod_close(s.c);
        p_say(p, "closed");
}

static void client_waits_quarantine(struct peer *p, const void *arg)
{
        struct vfiod *c = p_connect(p);
        enum vfiod_lease_state st = VFIOD_LEASE_STATE_UNSPECIFIED;
        struct vfiod_lease l;
        unsigned irqs = 0;
        struct bsess s;
        int r;

        P_CHECK(p, p_state(p, c, arg) == VFIOD_LEASE_STATE_QUARANTINED, "not QUARANTINED");
        r = acquire(c, arg, 0, VFIOD_MODE_BROKERED, &l);
        P_CHECK(p, r == -EBUSY && strstr(vfiod_last_error(c), "quarantined"),
                "acquire of a quarantined device: %d (%s)", r, vfiod_last_error(c));
        p_say(p, "busy: %s", vfiod_last_error(c));
        p_wait(p);
        for (int i = 0; i < 100; i++) {
                st = p_state(p, c, arg);
                if (st == VFIOD_LEASE_STATE_FREE)
                        break;
                usleep(50 * 1000);
        }
        P_CHECK(p, st == VFIOD_LEASE_STATE_FREE, "state %s, never free",
                vfiod_lease_state_name(st));
        vfiod_close(c);
        b_open(p, &s, arg, true, false, NULL);
        p_roundtrip(p, &s.dev, s.efd, s.mem, IOVA, 8, &irqs);
        p_say(p, "re-leased");
        b_close(p, &s);
}

START_TEST(test_quarantine_fd_kept)
{
        struct vfiod_stats st;
        struct child a, b;

        begin();
        child_start(&a, "alice", client_keeps_fd, T.bdf[0], CHILD_CHECK_FDS);
        child_expect(&a, "released, fd", NULL, 0);
        get_stats(&st);
        ck_assert_uint_eq(st.leases, 0);
        ck_assert_uint_eq(st.mappings, 0);
        ck_assert_uint_eq(st.quarantined_groups, 1);
        ck_assert_int_eq(daemon_memfd_maps(), 0);
        log_wait_for(by_iface("quarantined: a device fd is still open", "is quarantined"), NULL);
        child_start(&b, "bob", client_waits_quarantine, T.bdf[0], CHILD_CHECK_FDS);
        child_expect(&b, "busy: ", NULL, 0);
        child_go(&a);
        child_expect(&a, "closed", NULL, 0);
        child_end(&a);
        child_go(&b);
        child_expect(&b, "re-leased", NULL, 0);
        child_end(&b);
        log_wait_for(by_iface("every device fd is closed, group detached",
                              "no device cdev of it is bound any more, it left its domain"),
                     NULL);
        wait_free(0);
        end();
}
END_TEST

/* Holds a lease until the daemon asks for it back (the kernel's REQ), then releases. */
static void client_req(struct peer *p, const void *arg)
{
        struct vfiod_event ev;
        unsigned irqs = 0;
        struct bsess s;
        int r = -EAGAIN;

        b_open(p, &s, arg, true, false, NULL);
        p_roundtrip(p, &s.dev, s.efd, s.mem, IOVA, 9, &irqs);
        p_say(p, "leased %llu", (unsigned long long)s.l.lease_id);
        for (int waited = 0; waited < 10000 && r == -EAGAIN; waited += 100) {
                struct pollfd pfd = {.fd = vfiod_get_fd(s.c), .events = POLLIN};

                (void)poll(&pfd, 1, 100);
                r = vfiod_next_event(s.c, &ev);
        }
        P_CHECK(p, r == 0, "no event: %s", strerror(-r));
        P_CHECK(p, ev.type == VFIOD_EVENT_RELEASE_REQUESTED, "event %s",
                vfiod_event_type_name(ev.type));
        P_CHECK(p, ev.lease_id == s.l.lease_id, "event for lease %llu",
                (unsigned long long)ev.lease_id);
        P_CHECK(p, ev.reason == VFIOD_RELEASE_REASON_KERNEL_REQUEST, "reason %s",
                vfiod_release_reason_name(ev.reason));
        P_CHECK(p, strcmp(ev.device, arg) == 0, "device %s", ev.device);
        p_say(p, "event %s %s grace %u ms", vfiod_event_type_name(ev.type),
              vfiod_release_reason_name(ev.reason), ev.grace_ms);
        b_close(p, &s);
}

/*
 * Writes text to the sysfs file path in a child process: an unbind or a
 * removal of a device someone holds blocks until every fd of it is closed.
 */
static pid_t write_in_child(const char *path, const char *text)
{
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fd;

                vfiod_close(T.admin);
                fd = open(path, O_WRONLY | O_CLOEXEC);
                _exit(fd >= 0 && write(fd, text, strlen(text)) > 0 ? 0 : 1);
        }
        return pid;
}

/* True when write_in_child()'s child exited 0 within ms; killed otherwise. */
static bool write_done(pid_t pid, int ms)
{
        int status = -1;

        for (int waited = 0; waited < ms; waited += 50) {
                if (waitpid(pid, &status, WNOHANG) == pid)
                        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
                sleep_ms(50);
        }
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return false;
}

START_TEST(test_req_unbind)
{
        char prev[KVFIO_DRIVER_MAX] = "?", drv[KVFIO_DRIVER_MAX] = "?", line[256];
        int r_bind, r_drv;
        bool unbound;
        struct child a;
        pid_t pid;

        begin();
        child_start(&a, "alice", client_req, T.bdf[1], CHILD_CHECK_FDS);
        child_expect(&a, "leased ", NULL, 0);
        /* Blocks until every fd of the device is closed: the client's and the daemon's. */
        pid = write_in_child(VFIO_UNBIND, T.bdf[1]);
        child_line(&a, line, sizeof(line));
        unbound = write_done(pid, 10000);
        r_drv = kvfio_pci_driver_get("/", T.bdf[1], drv);
        r_bind = kvfio_pci_bind_vfio("/", T.bdf[1], prev);
        ck_assert_msg(strncmp(line, "event release-requested kernel-request", 38) == 0,
                      "client said '%s'", line);
        child_end(&a);
        ck_assert_msg(unbound, "the unbind did not complete");
        ck_assert_msg(r_drv == 0 && drv[0] == '\0', "driver after the unbind: '%s' (%d)", drv,
                      r_drv);
        ck_assert_msg(r_bind == 0, "rebinding to vfio-pci: %s", strerror(-r_bind));
        log_wait_for("the kernel asks for device '", T.bdf[1], "(REQ)", NULL);
        log_wait_for("asking for lease ", "back within 5000 ms", NULL);
        log_wait_for("released by its holder", NULL);
        end();
}
END_TEST

/* ---- bad MapDma inputs ------------------------------------------------------- */

/* The connection still answers, and still has its lease. */
static void p_still_works(struct peer *p, struct bsess *s, const char *bdf, const char *after)
{
        P_CHECK(p, p_state(p, s->c, bdf) == VFIOD_LEASE_STATE_LEASED_BY_YOU,
                "after %s: the lease is gone", after);
}

/*
 * A MapDma that names an eventfd where a memfd belongs, sent by hand on the
 * library's connection (libvfiod refuses to send it): the daemon answers
 * with an Error and keeps the connection. The library is idle meanwhile and
 * never sees this request or its reply.
 */
static void p_raw_map_not_memfd(struct peer *p, uint64_t domain)
{
        Vfiod__DmaRange range = VFIOD__DMA_RANGE__INIT, *rp = &range;
        Vfiod__MapDma m = VFIOD__MAP_DMA__INIT;
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        uint8_t buf[512];
        union {
                struct cmsghdr align;
                char b[CMSG_SPACE(sizeof(int))];
        } ctl;
        struct iovec iov = {.iov_base = buf};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = ctl.b,
                            .msg_controllen = sizeof(ctl.b)};
        struct vfiod_msg *reply = NULL;
        const char *why = NULL;
        struct cmsghdr *cm;
        struct vfiod *c = NULL;
        int efd = eventfd(0, EFD_CLOEXEC), sock, r;

        P_CHECK(p, efd >= 0, "eventfd");
        /* A connection of its own: the daemon drops it. */
        r = vfiod_connect(NULL, &c);
        P_CHECK(p, r == 0, "connect: %s", strerror(-r));
        sock = vfiod_get_fd(c);
        range.fd_index = 0;
        range.iova = IOVA + 32 * PAGE;
        range.size = PAGE;
        range.readable = true;
        m.domain_id = domain;
        m.n_ranges = 1;
        m.ranges = &rp;
        env = ENVELOPE(map_dma, &m);
        env.id = UINT64_C(1) << 40; /* far from the library's ids */
        iov.iov_len = vfiod__envelope__pack(&env, buf);
        memset(&ctl, 0, sizeof(ctl));
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &efd, sizeof(int));
        P_CHECK(p, sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)iov.iov_len, "sendmsg: %s",
                strerror(errno));
        close(efd);
        r = vfiod_msg_recv(sock, 0, &reply, &why);
        P_CHECK(p, r == 0 || r == -ECONNRESET, "an eventfd as a memfd was answered: %d (%s)", r,
                why ? why : "");
        vfiod_msg_free(reply);
        vfiod_close(c);
}

/* Expects r to be -errnum with a reason containing `why`, then the connection to still work. */
#define P_REFUSED(p, s, bdf, r, errnum, why, what)                                        \
        do {                                                                              \
                P_CHECK((p), (r) == -(errnum) && strstr(vfiod_last_error((s)->c), (why)), \
                        "%s: %d %s (%s), want -%s '%s'", (what), (r), strerror(-(r)),     \
                        vfiod_last_error((s)->c), #errnum, (why));                        \
                p_say((p), "%s: %s: %s", (what), #errnum, vfiod_last_error((s)->c));      \
                p_still_works((p), (s), (bdf), (what));                                   \
        } while (0)

static void client_bad_maps(struct peer *p, const void *arg)
{
        const char *bdf = arg;
        unsigned irqs = 0;
        struct bsess s;
        int fd, r;

        /* s maps its 2 pages at IOVA: that mapping is the "existing" one below. */
        b_open(p, &s, bdf, true, false, NULL);

        /* An unsealed memfd. */
        fd = memfd_create("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        P_CHECK(p, fd >= 0 && ftruncate(fd, 2 * PAGE) == 0, "memfd");
        r = map1(s.c, s.l.domain_id, fd, 0, IOVA + 8 * PAGE, 2 * PAGE);
        P_REFUSED(p, &s, bdf, r, EINVAL, "not sealed against shrinking", "unsealed memfd");
        close(fd);

        /* A sealed memfd too small for the range. */
        P_CHECK(p, vfiod_memfd_create("small", PAGE, &fd) == 0, "memfd");
        r = map1(s.c, s.l.domain_id, fd, 0, IOVA + 8 * PAGE, 2 * PAGE);
        P_REFUSED(p, &s, bdf, r, EINVAL, "is too small", "memfd too small");
        r = map1(s.c, s.l.domain_id, fd, PAGE, IOVA + 8 * PAGE, PAGE);
        P_REFUSED(p, &s, bdf, r, EINVAL, "is too small", "offset past the end");

        /* Not page-aligned. */
        r = map1(s.c, s.l.domain_id, fd, 0, IOVA + 8 * PAGE + 1, PAGE);
        P_REFUSED(p, &s, bdf, r, EINVAL, "must be aligned", "unaligned iova");

        /* Overlapping IOVA: the existing mapping, and within one batch. */
        r = map1(s.c, s.l.domain_id, fd, 0, IOVA + PAGE, PAGE);
        P_REFUSED(p, &s, bdf, r, EINVAL, "overlaps the mapping at 0x100000+0x2000",
                  "overlapping iova");
        {
                const struct vfiod_dma_range two[2] = {
                    {.fd = fd, .iova = IOVA + 8 * PAGE, .size = PAGE, .flags = VFIOD_DMA_READ},
                    {.fd = fd, .iova = IOVA + 8 * PAGE, .size = PAGE, .flags = VFIOD_DMA_READ},
                };

                r = vfiod_map_dma(s.c, s.l.domain_id, two, 2, NULL);
                P_REFUSED(p, &s, bdf, r, EINVAL, "range 1 overlaps range 0", "overlap in a batch");
        }

        /* Over MaxPinnedBytesPerClient (1 MiB in broker-setup.sh). */
        {
                int big = -1;

                P_CHECK(p, vfiod_memfd_create("big", 1024 * 1024, &big) == 0, "memfd");
                r = map1(s.c, s.l.domain_id, big, 0, IOVA + 64 * PAGE, 1024 * 1024);
                P_REFUSED(p, &s, bdf, r, EDQUOT, "MaxPinnedBytesPerClient", "over the quota");
                close(big);
        }

        /* Not a memfd: libvfiod does not even send it ... */
        {
                int efd = eventfd(0, EFD_CLOEXEC);

                P_CHECK(p, efd >= 0, "eventfd");
                r = map1(s.c, s.l.domain_id, efd, 0, IOVA + 8 * PAGE, PAGE);
                P_CHECK(p, r == -EBADFD && vfiod_last_error(s.c)[0],
                        "libvfiod sent an eventfd as a memfd: %d (%s)", r, vfiod_last_error(s.c));
                p_say(p, "not a memfd (libvfiod): EBADFD: %s", vfiod_last_error(s.c));
                p_still_works(p, &s, bdf, "not a memfd (libvfiod)");
                close(efd);
        }
        /* ... and the daemon drops a connection that sends it anyway (a transport rule). */
        p_raw_map_not_memfd(p, s.l.domain_id);
        p_say(p, "not a memfd (daemon): connection dropped");
        p_still_works(p, &s, bdf, "not a memfd (daemon)");

        /* Partial unmap, and an unmap of nothing. */
        r = vfiod_unmap_dma(s.c, s.l.domain_id,
                            &(struct vfiod_iova_range){.iova = IOVA, .size = PAGE}, 1, NULL);
        P_REFUSED(p, &s, bdf, r, EINVAL, "would split the mapping", "partial unmap");
        r = vfiod_unmap_dma(s.c, s.l.domain_id,
                            &(struct vfiod_iova_range){.iova = IOVA + 8 * PAGE, .size = PAGE}, 1,
                            NULL);
        P_REFUSED(p, &s, bdf, r, ENOENT, "nothing is mapped", "unmap of nothing");

        /* Nothing above changed anything: the first mapping still carries DMA. */
        p_roundtrip(p, &s.dev, s.efd, s.mem, IOVA, 12, &irqs);
        r = map1(s.c, s.l.domain_id, fd, 0, IOVA + 8 * PAGE, PAGE);
        P_CHECK(p, r == 1, "a good MapDma after the bad ones: %d (%s)", r, vfiod_last_error(s.c));
        r = vfiod_unmap_dma(s.c, s.l.domain_id,
                            &(struct vfiod_iova_range){.iova = IOVA + 8 * PAGE, .size = PAGE}, 1,
                            NULL);
        P_CHECK(p, r == 1, "unmap: %d", r);
        close(fd);
        p_say(p, "still works");
        p_wait(p);
        b_close(p, &s);
}

/* The second client: holds its own lease and mapping through it all. */
static void client_bystander(struct peer *p, const void *arg)
{
        unsigned irqs = 0;
        struct bsess s;

        b_open(p, &s, arg, true, false, NULL);
        p_say(p, "leased %llu", (unsigned long long)s.l.lease_id);
        p_wait(p);
        p_roundtrip(p, &s.dev, s.efd, s.mem, IOVA, 13, &irqs);
        P_CHECK(p, irqs == 2, "%u MSIs", irqs);
        p_say(p, "still works");
        b_close(p, &s);
}

START_TEST(test_bad_map_dma)
{
        struct vfiod_stats before, after;
        char line[600];
        struct child a, b;
        int refusals = 0;

        begin();
        child_start(&b, "bob", client_bystander, T.bdf[1], CHILD_CHECK_FDS);
        child_expect(&b, "leased ", NULL, 0);
        get_stats(&before);
        child_start(&a, "alice", client_bad_maps, T.bdf[0], CHILD_CHECK_FDS);
        for (;;) {
                child_line(&a, line, sizeof(line));
                if (strcmp(line, "still works") == 0)
                        break;
                refusals++;
        }
        ck_assert_int_eq(refusals, 11);
        get_stats(&after);
        ck_assert_uint_eq(after.mappings, before.mappings + 1); /* alice's one good mapping */
        ck_assert_uint_eq(after.pinned_bytes, before.pinned_bytes + 2 * PAGE);
        /* 11 refusals: one never left libvfiod, one dropped its connection (no reply). */
        ck_assert_uint_ge(after.errors, before.errors + 9);
        child_go(&a);
        child_end(&a);
        child_go(&b);
        child_expect(&b, "still works", NULL, 0);
        child_end(&b);
        end();
}
END_TEST

/* ---- one domain, two devices; revoke ---------------------------------------- */

struct shared_arg {
        const char *a, *b;
};

/*
 * Two devices in one brokered domain: one MapDma serves both; releasing one
 * keeps the mapping for the other; releasing the last drops it; the empty
 * domain takes a lease again; then it is destroyed.
 */
static void client_shared_domain(struct peer *p, const void *arg)
{
        const struct shared_arg *a = arg;
        struct testdev dev1 = {.fd = -1};
        struct vfiod_lease l1, l2;
        unsigned irqs = 0;
        struct bsess s;
        uint64_t dom;
        int r;

        b_open(p, &s, a->a, false, false, NULL);
        dom = s.l.domain_id;
        r = acquire(s.c, a->b, dom, VFIOD_MODE_BROKERED, &l1);
        P_CHECK(p, r == 0 && l1.domain_id == dom, "acquire %s into domain %llu: %s (%s)", a->b,
                (unsigned long long)dom, strerror(-r), vfiod_last_error(s.c));
        P_CHECK(p, testdev_open(&dev1, K, l1.device_fd) == 0, "BAR0");
        P_CHECK(p, edu_enable_bus_master(l1.device_fd) == 0, "bus master");
        testdev_ack(&dev1, ~UINT32_C(0));
        r = acquire(s.c, a->a, dom, VFIOD_MODE_DIRECT, &l2);
        P_CHECK(p, r == -EBUSY, "acquire of my own device again: %d (%s)", r,
                vfiod_last_error(s.c));
        p_roundtrip(p, &s.dev, -1, s.mem, IOVA, 20, &irqs);
        p_roundtrip(p, &dev1, -1, s.mem, IOVA, 21, &irqs);
        p_say(p, "two devices, one mapping");
        p_wait(p);

        testdev_close(&s.dev);
        vfiod_lease_close_fds(&s.l);
        r = vfiod_release(s.c, s.l.lease_id);
        P_CHECK(p, r == 0, "release of the first: %s", strerror(-r));
        p_roundtrip(p, &dev1, -1, s.mem, IOVA, 22, &irqs);
        p_say(p, "first released, second still maps");
        p_wait(p);

        testdev_close(&dev1);
        vfiod_lease_close_fds(&l1);
        r = vfiod_release(s.c, l1.lease_id);
        P_CHECK(p, r == 0, "release of the second: %s", strerror(-r));
        /* The last lease took the mapping with it. */
        r = vfiod_unmap_dma(s.c, dom, &(struct vfiod_iova_range){.iova = IOVA, .size = 2 * PAGE}, 1,
                            NULL);
        P_CHECK(p, r == -ENOENT, "unmap after the last release: %d (%s)", r, vfiod_last_error(s.c));
        /* The empty domain takes a lease again, in either mode, and maps again. */
        p_acquire(p, s.c, a->b, VFIOD_MODE_DIRECT, &l2);
        P_CHECK(p, l2.domain_id != dom, "a new domain was asked for");
        vfiod_lease_close_fds(&l2);
        P_CHECK(p, vfiod_release(s.c, l2.lease_id) == 0, "release");
        r = acquire(s.c, a->b, dom, VFIOD_MODE_BROKERED, &l1);
        P_CHECK(p, r == 0, "acquire into the emptied domain: %s (%s)", strerror(-r),
                vfiod_last_error(s.c));
        r = map1(s.c, dom, s.memfd, 0, IOVA, 2 * PAGE);
        P_CHECK(p, r == 1, "MapDma again: %d (%s)", r, vfiod_last_error(s.c));
        P_CHECK(p, testdev_open(&dev1, K, l1.device_fd) == 0, "BAR0");
        P_CHECK(p, edu_enable_bus_master(l1.device_fd) == 0, "bus master");
        p_roundtrip(p, &dev1, -1, s.mem, IOVA, 23, &irqs);
        testdev_close(&dev1);
        vfiod_lease_close_fds(&l1);
        P_CHECK(p, vfiod_release(s.c, l1.lease_id) == 0, "release");
        r = vfiod_destroy_domain(s.c, dom);
        P_CHECK(p, r == 0, "DestroyDomain: %s (%s)", strerror(-r), vfiod_last_error(s.c));
        p_say(p, "domain reused and destroyed");
        munmap(s.mem, 2 * PAGE);
        close(s.memfd);
        vfiod_close(s.c);
}

START_TEST(test_shared_domain)
{
        struct vfiod_lease_info *li = NULL;
        struct vfiod_stats st;
        struct shared_arg arg;
        struct child a;
        size_t n = 0;

        begin();
        arg = (struct shared_arg){T.bdf[0], T.bdf[1]};
        child_start(&a, "alice", client_shared_domain, &arg, CHILD_CHECK_FDS);
        child_expect(&a, "two devices, one mapping", NULL, 0);
        ck_assert_int_eq(vfiod_list_leases(T.admin, &li, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_uint_eq(li[0].domain_id, li[1].domain_id);
        vfiod_leases_free(li, n);
        get_stats(&st);
        ck_assert_uint_eq(st.domains, 1);
        ck_assert_uint_eq(st.mappings, 1);
        ck_assert_uint_eq(st.pinned_bytes, 2 * PAGE);
        child_go(&a);
        child_expect(&a, "first released, second still maps", NULL, 0);
        get_stats(&st);
        ck_assert_uint_eq(st.leases, 1);
        ck_assert_uint_eq(st.mappings, 1);
        log_wait_for("release 2/5: DMA unmapped (skipped: other groups share the domain)", NULL);
        child_go(&a);
        child_expect(&a, "domain reused and destroyed", NULL, 0);
        child_end(&a);
        end();
}
END_TEST

/* A DIRECT client that keeps its container and group fds after Release. */
static void client_direct_keeps(struct peer *p, const void *arg)
{
        struct vfiod *c = p_connect(p);
        struct vfiod_lease l;
        int r;

        p_acquire(p, c, arg, VFIOD_MODE_DIRECT, &l);
        close(l.device_fd);
        r = vfiod_release(c, l.lease_id);
        P_CHECK(p, r == 0, "Release: %s (%s)", strerror(-r), vfiod_last_error(c));
        P_CHECK(p, p_state(p, c, arg) == VFIOD_LEASE_STATE_QUARANTINED, "not QUARANTINED");
        p_say(p, "released, group fd kept");
        p_wait(p);
        close(l.group_fd);
        close(l.container_fd);
        vfiod_close(c);
}

START_TEST(test_direct_group_fd_kept)
{
        struct vfiod_stats st;
        struct child b;

        begin();
        child_start(&b, "bob", client_direct_keeps, T.bdf[1], CHILD_CHECK_FDS);
        child_expect(&b, "released, group fd kept", NULL, 0);
        get_stats(&st);
        ck_assert_uint_eq(st.quarantined_groups, 1);
        ck_assert_uint_eq(st.leases, 0);
        log_wait_for("is still open elsewhere (a client holds its fd)", NULL);
        child_go(&b);
        child_end(&b);
        wait_free(1);
        end();
}
END_TEST

/* Waits up to ms for the next event on c. */
static int p_next_event(struct peer *p, struct vfiod *c, int ms, struct vfiod_event *ev)
{
        int r = vfiod_next_event(c, ev);

        for (int waited = 0; waited < ms && r == -EAGAIN; waited += 100) {
                struct pollfd pfd = {.fd = vfiod_get_fd(c), .events = POLLIN};

                (void)poll(&pfd, 1, 100);
                r = vfiod_next_event(c, ev);
        }
        return r;
}

/* Ignores ReleaseRequested; gets LeaseRevoked after the grace period; keeps its fd a while. */
static void client_ignores_revoke(struct peer *p, const void *arg)
{
        struct vfiod_event ev;
        struct bsess s;
        int r;

        b_open(p, &s, arg, true, false, NULL);
        p_say(p, "leased %llu", (unsigned long long)s.l.lease_id);
        r = p_next_event(p, s.c, 10000, &ev);
        P_CHECK(p, r == 0 && ev.type == VFIOD_EVENT_RELEASE_REQUESTED, "first event: %d %s", r,
                r == 0 ? vfiod_event_type_name(ev.type) : strerror(-r));
        P_CHECK(p, ev.reason == VFIOD_RELEASE_REASON_ADMIN_REVOKE && ev.lease_id == s.l.lease_id,
                "reason %s, lease %llu", vfiod_release_reason_name(ev.reason),
                (unsigned long long)ev.lease_id);
        p_say(p, "asked: %s, '%s', grace %u ms", vfiod_release_reason_name(ev.reason), ev.detail,
              ev.grace_ms);
        r = p_next_event(p, s.c, 15000, &ev);
        P_CHECK(p, r == 0 && ev.type == VFIOD_EVENT_LEASE_REVOKED, "second event: %d %s", r,
                r == 0 ? vfiod_event_type_name(ev.type) : strerror(-r));
        P_CHECK(p, ev.lease_id == s.l.lease_id && strcmp(ev.detail, "maintenance") == 0,
                "revoked lease %llu, '%s'", (unsigned long long)ev.lease_id, ev.detail);
        /* It is gone: no release, no mapping, no interrupt setup, no new mapping. */
        r = vfiod_release(s.c, s.l.lease_id);
        P_CHECK(p, r == -ENOENT, "Release of a revoked lease: %d (%s)", r, vfiod_last_error(s.c));
        r = vfiod_disable_irqs(s.c, s.l.lease_id, VFIOD_IRQ_INDEX_MSI);
        P_CHECK(p, r == -ENOENT, "SetIrqs on a revoked lease: %d (%s)", r, vfiod_last_error(s.c));
        r = map1(s.c, s.l.domain_id, s.memfd, 0, IOVA + 16 * PAGE, PAGE);
        P_CHECK(p, r == -EBUSY, "MapDma into the revoked lease's domain: %d (%s)", r,
                vfiod_last_error(s.c));
        p_say(p, "revoked");
        p_wait(p);
        b_close_revoked(p, &s);
}

START_TEST(test_revoke_ignored)
{
        unsigned long long lease = 0;
        struct vfiod_lease_info *li = NULL;
        struct vfiod_stats st;
        char line[256];
        struct child a;
        size_t n = 0;
        int r;

        begin();
        child_start(&a, "alice", client_ignores_revoke, T.bdf[2], CHILD_CHECK_FDS);
        child_expect(&a, "leased ", line, sizeof(line));
        ck_assert_int_eq(sscanf(line, "leased %llu", &lease), 1);
        r = vfiod_revoke(T.admin, lease, "maintenance");
        ck_assert_msg(r == 0, "Revoke: %s (%s)", strerror(-r), vfiod_last_error(T.admin));
        ck_assert_int_eq(vfiod_list_leases(T.admin, &li, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_int_eq(li[0].status, VFIOD_LEASE_STATUS_RELEASE_REQUESTED);
        vfiod_leases_free(li, n);
        child_expect(&a, "asked: admin-revoke, 'maintenance', grace 5000 ms", NULL, 0);
        child_expect(&a, "revoked", NULL, 0);
        get_stats(&st);
        ck_assert_uint_eq(st.leases, 0);
        ck_assert_uint_eq(st.mappings, 0);
        ck_assert_uint_eq(st.quarantined_groups, 1); /* she still holds the device fd */
        log_wait_for("grace period over", NULL);
        log_wait_for("revoked (admin: 'maintenance')", NULL);
        child_go(&a);
        child_end(&a);
        end();
}
END_TEST

/* ---- INTx through the daemon; DIRECT killed; policy reload ------------------ */

/* INTx on an eventfd through SetIrqs, its UNMASK through SetIrqs; ERR and REQ are the daemon's. */
static void client_intx(struct peer *p, const void *arg)
{
        const int no_fds[1] = {-1};
        struct vfiod_irq_set set = {.count = 1, .action = VFIOD_IRQ_ACTION_TRIGGER};
        struct bsess s;
        int efd, r;

        b_open(p, &s, arg, false, false, NULL);
        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        P_CHECK(p, efd >= 0, "eventfd");
        set.index = VFIOD_IRQ_INDEX_REQ;
        set.eventfds = &efd;
        r = vfiod_set_irqs(s.c, s.l.lease_id, &set);
        P_CHECK(p, r == -EPERM && strstr(vfiod_last_error(s.c), "belongs to the daemon"),
                "SetIrqs REQ: %d (%s)", r, vfiod_last_error(s.c));
        set.index = VFIOD_IRQ_INDEX_INTX;
        r = vfiod_set_irqs(s.c, s.l.lease_id, &set);
        P_CHECK(p, r == 0, "SetIrqs INTx: %s (%s)", strerror(-r), vfiod_last_error(s.c));
        testdev_raise(&s.dev, 0x2);
        P_CHECK(p, edu_eventfd_wait(efd, WAIT_MS, NULL) == 1, "no INTx");
        testdev_ack(&s.dev, 0x2);
        /* Masked by VFIO until unmasked: through the daemon. */
        testdev_raise(&s.dev, 0x4);
        P_CHECK(p, edu_eventfd_wait(efd, 500, NULL) == 0, "INTx while masked");
        r = vfiod_set_irqs(s.c, s.l.lease_id,
                           &(struct vfiod_irq_set){.index = VFIOD_IRQ_INDEX_INTX,
                                                   .count = 1,
                                                   .action = VFIOD_IRQ_ACTION_UNMASK});
        P_CHECK(p, r == 0, "SetIrqs UNMASK: %s (%s)", strerror(-r), vfiod_last_error(s.c));
        P_CHECK(p, edu_eventfd_wait(efd, WAIT_MS, NULL) == 1, "no INTx after the unmask");
        testdev_ack(&s.dev, 0x4);
        /* De-assign the vector's eventfd (-1), then disable the index. */
        set.eventfds = no_fds;
        r = vfiod_set_irqs(s.c, s.l.lease_id, &set);
        P_CHECK(p, r == 0, "SetIrqs INTx -1: %s (%s)", strerror(-r), vfiod_last_error(s.c));
        P_CHECK(p, vfiod_disable_irqs(s.c, s.l.lease_id, VFIOD_IRQ_INDEX_INTX) == 0, "disable");
        close(efd);
        p_say(p, "intx ok");
        b_close(p, &s);
}

START_TEST(test_brokered_intx)
{
        struct child a;

        begin();
        child_start(&a, "alice", client_intx, T.bdf[0], CHILD_CHECK_FDS);
        child_expect(&a, "intx ok", NULL, 0);
        child_end(&a);
        end();
}
END_TEST

/* A DIRECT client with its own mapping and MSI, killed: the daemon unmaps and resets. */
static void client_direct_killed(struct peer *p, const void *arg)
{
        struct vfiod *c = p_connect(p);
        struct testdev dev = {.fd = -1};
        struct vfiod_lease l;
        unsigned irqs = 0;
        uint8_t *mem;
        int efd, r;

        p_acquire(p, c, arg, VFIOD_MODE_DIRECT, &l);
        mem = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        P_CHECK(p, mem != MAP_FAILED, "mmap");
        if (I == VFIOD_INTERFACE_IOMMUFD)
                direct_iommufd_map(p, &l, mem, 4 * PAGE);
        else {
                r = vfio_map(l.container_fd, mem, IOVA, 4 * PAGE);
                P_CHECK(p, r == 0, "VFIO_IOMMU_MAP_DMA: %s", strerror(-r));
        }
        P_CHECK(p, testdev_open(&dev, K, l.device_fd) == 0, "BAR0");
        P_CHECK(p, edu_enable_bus_master(l.device_fd) == 0, "bus master");
        testdev_ack(&dev, ~UINT32_C(0));
        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        P_CHECK(p, efd >= 0 && vfio_msi(l.device_fd, efd) == 0, "MSI");
        p_roundtrip(p, &dev, efd, mem, IOVA, 30, &irqs);
        p_say(p, "leased %llu", (unsigned long long)l.lease_id);
        p_wait(p);
        p_fail(p, __FILE__, __LINE__, "not killed");
}

START_TEST(test_direct_sigkill)
{
        unsigned long long lease = 0;
        char line[256];
        struct child b, a;

        begin();
        child_start(&b, "bob", client_direct_killed, T.bdf[1], CHILD_CHECK_FDS);
        child_expect(&b, "leased ", line, sizeof(line));
        ck_assert_int_eq(sscanf(line, "leased %llu", &lease), 1);
        child_kill(&b);
        snprintf(line, sizeof(line), "releasing lease %llu of '%s'", lease, T.bdf[1]);
        log_wait_for(line, "its holder disconnected", NULL);
        log_wait_for(by_iface("unmapped all client DMA (16384 bytes)",
                              "release 3/5: device detached and closed"),
                     NULL);
        wait_free(1);
        child_start(&a, "alice", client_next, T.bdf[1], CHILD_CHECK_FDS);
        child_expect(&a, "works", NULL, 0);
        child_end(&a);
        wait_reset_logged(1);
        end();
}
END_TEST

#define VFIOD_CONF "/etc/vfiod/vfiod.conf"

static char *read_text(const char *path)
{
        FILE *f = fopen(path, "re");
        char *buf = calloc(1, 65536);
        size_t n;

        ck_assert_msg(f && buf, "%s: %s", path, strerror(errno));
        n = fread(buf, 1, 65535, f);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

static void write_text(const char *path, const char *text)
{
        FILE *f = fopen(path, "we");

        ck_assert_msg(f, "%s: %s", path, strerror(errno));
        ck_assert_int_eq(fputs(text, f) >= 0, 1);
        ck_assert_int_eq(fclose(f), 0);
}

/* orig (the broker's policy) with edu i's rule, "Users=alice bob", given to `users` only. */
static char *policy_users(const char *orig, int i, const char *users)
{
        char want[64], *changed, *at;
        size_t size;

        snprintf(want, sizeof(want), "Match=%s\nUsers=alice bob\n", T.bdf[i]);
        at = strstr(orig, want);
        ck_assert_msg(at, "%s has no rule '%s' (see broker-setup.sh)", VFIOD_CONF, want);
        size = strlen(orig) + strlen(users) + 1;
        changed = calloc(1, size);
        ck_assert_ptr_nonnull(changed);
        memcpy(changed, orig, (size_t)(at - orig));
        snprintf(changed + (at - orig), size - (size_t)(at - orig), "Match=%s\nUsers=%s\n%s",
                 T.bdf[i], users, at + strlen(want));
        return changed;
}

/* Holds a lease until the daemon asks for it back for the given reason; then releases. */
static void client_until_asked(struct peer *p, const void *arg)
{
        struct vfiod_event ev;
        struct bsess s;
        int r;

        b_open(p, &s, arg, true, false, NULL);
        p_say(p, "leased %llu", (unsigned long long)s.l.lease_id);
        r = p_next_event(p, s.c, 15000, &ev);
        P_CHECK(p, r == 0, "no event: %s", strerror(-r));
        p_say(p, "event %s %s '%s'", vfiod_event_type_name(ev.type),
              vfiod_release_reason_name(ev.reason), ev.detail);
        b_close(p, &s);
}

/* The policy no longer names bob for edu 1: the reload asks his lease back. */
START_TEST(test_policy_reload_revokes)
{
        struct vfiod_reload_result res = {0}, back = {0};
        char *orig, *changed, line[256];
        int r_reload, r_back;
        struct child b;

        begin();
        orig = read_text(VFIOD_CONF);
        changed = policy_users(orig, 1, "alice");

        child_start(&b, "bob", client_until_asked, T.bdf[1], CHILD_CHECK_FDS);
        child_expect(&b, "leased ", NULL, 0);
        write_text(VFIOD_CONF, changed);
        r_reload = vfiod_reload_policy(T.admin, &res);
        /* Put the policy back before anything can fail. */
        write_text(VFIOD_CONF, orig);
        child_line(&b, line, sizeof(line));
        r_back = vfiod_reload_policy(T.admin, &back);
        ck_assert_msg(r_reload == 0 && res.applied, "reload: %d, applied %d, %zu errors", r_reload,
                      res.applied, res.n_errors);
        ck_assert_uint_eq(res.leases_revoked, 1);
        ck_assert_msg(r_back == 0 && back.applied && back.leases_revoked == 0,
                      "reload back: %d, applied %d", r_back, back.applied);
        ck_assert_str_eq(line, "event release-requested policy-change 'the policy no longer "
                               "allows it'");
        child_end(&b);
        log_wait_for("reloaded", NULL);
        vfiod_reload_result_clear(&res);
        vfiod_reload_result_clear(&back);
        free(changed);
        free(orig);
        end();
}
END_TEST

/*
 * Alice's brokered lease of a is revoked (an admin's Revoke, or a policy
 * reload that no longer allows it) while she keeps its device fd: the
 * group stays attached to her domain (quarantined). Type1 would map whatever
 * the domain maps next for that device too, so the domain takes no other
 * device (Acquire of b into it) and no new memory (MapDma): both EBUSY, and
 * the device she kept writes nowhere. Once she closes the fd the domain
 * takes both again.
 */
static void client_revoked_keeps_fd(struct peer *p, const void *arg)
{
        const struct shared_arg *a = arg;
        const uint64_t iova2 = IOVA + 16 * PAGE;
        struct vfiod_lease l1 = {.device_fd = -1, .container_fd = -1, .group_fd = -1};
        struct vfiod_event ev;
        unsigned irqs = 0;
        int memfd2 = -1, r_acq, r_map, r_dma, r = 0;
        struct bsess s;
        uint8_t *mem2;
        uint64_t dom;

        b_open(p, &s, a->a, false, false, NULL);
        dom = s.l.domain_id;
        /* The device's buffer holds page 0's pattern: a DMA to RAM would copy it. */
        edu_pattern(s.mem, PAGE, 55);
        p_dma(p, &s.dev, -1, IOVA, TESTDEV_DMA_MAX, false, &irqs);
        p_say(p, "leased %llu", (unsigned long long)s.l.lease_id);
        for (int i = 0; i < 2; i++) {
                r = p_next_event(p, s.c, 15000, &ev);
                P_CHECK(p, r == 0, "no event: %s", strerror(-r));
        }
        P_CHECK(p, ev.type == VFIOD_EVENT_LEASE_REVOKED && ev.lease_id == s.l.lease_id,
                "second event: %s", vfiod_event_type_name(ev.type));

        r = vfiod_memfd_create("guest-broker-2", 2 * PAGE, &memfd2);
        P_CHECK(p, r == 0, "memfd: %s", strerror(-r));
        mem2 = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd2, 0);
        P_CHECK(p, mem2 != MAP_FAILED, "mmap memfd: %s", strerror(errno));
        memset(mem2, 0xaa, 2 * PAGE);
        r_acq = acquire(s.c, a->b, dom, VFIOD_MODE_BROKERED, &l1);
        p_say(p, "acquire %s into domain %llu: %d (%s)", a->b, (unsigned long long)dom, r_acq,
              vfiod_last_error(s.c));
        r_map = map1(s.c, dom, memfd2, 0, iova2, 2 * PAGE);
        p_say(p, "MapDma: %d (%s)", r_map, vfiod_last_error(s.c));
        /* The revoked device, through the fd she kept, writes to what was just mapped. */
        r_dma = testdev_dma(&s.dev, iova2, TESTDEV_DMA_MAX, true);
        for (size_t i = 0; i < 2 * PAGE; i++)
                P_CHECK(p, mem2[i] == 0xaa,
                        "the revoked device wrote byte %zu of memory mapped after the revoke "
                        "(%#x; acquire %d, MapDma %d)",
                        i, mem2[i], r_acq, r_map);
        P_CHECK(p, reached_nothing(r_dma), "DMA: %s", strerror(-r_dma));
        P_CHECK(p, r_acq == -EBUSY && strstr(vfiod_last_error(s.c), "still attached"),
                "acquire into the domain: %d", r_acq);
        P_CHECK(p, r_map == -EBUSY, "MapDma into the domain: %d", r_map);
        p_say(p, "refused");
        p_wait(p);

        /* She closes the fd: the group leaves the domain, which is whole again. */
        testdev_close(&s.dev);
        vfiod_lease_close_fds(&s.l);
        for (int i = 0; i < 100; i++) {
                r = acquire(s.c, a->b, dom, VFIOD_MODE_BROKERED, &l1);
                if (r != -EBUSY)
                        break;
                usleep(50 * 1000);
        }
        P_CHECK(p, r == 0, "acquire into the domain after the fd closed: %s (%s)", strerror(-r),
                vfiod_last_error(s.c));
        r = map1(s.c, dom, memfd2, 0, iova2, 2 * PAGE);
        P_CHECK(p, r == 1, "MapDma after the fd closed: %d (%s)", r, vfiod_last_error(s.c));
        vfiod_lease_close_fds(&l1);
        P_CHECK(p, vfiod_release(s.c, l1.lease_id) == 0, "release");
        P_CHECK(p, vfiod_destroy_domain(s.c, dom) == 0, "DestroyDomain: %s", vfiod_last_error(s.c));
        p_say(p, "domain whole again");
        munmap(mem2, 2 * PAGE);
        close(memfd2);
        munmap(s.mem, 2 * PAGE);
        close(s.memfd);
        vfiod_close(s.c);
}

START_TEST(test_revoked_fd_kept_taints_domain)
{
        unsigned long long lease = 0;
        struct vfiod_reload_result res = {0}, back = {0};
        struct vfiod_stats st;
        struct shared_arg arg;
        char line[256], *orig = NULL, *changed;
        struct child a;
        int r, r_back;

        begin();
        arg = (struct shared_arg){T.bdf[0], T.bdf[1]};
        child_start(&a, "alice", client_revoked_keeps_fd, &arg, CHILD_CHECK_FDS);
        child_expect(&a, "leased ", line, sizeof(line));
        ck_assert_int_eq(sscanf(line, "leased %llu", &lease), 1);
        if (_i == 0) {
                r = vfiod_revoke(T.admin, lease, "maintenance");
                ck_assert_msg(r == 0, "Revoke: %s (%s)", strerror(-r), vfiod_last_error(T.admin));
        } else {
                /* The policy takes edu 0 from alice: the reload revokes her lease. */
                orig = read_text(VFIOD_CONF);
                changed = policy_users(orig, 0, "bob");
                write_text(VFIOD_CONF, changed);
                r = vfiod_reload_policy(T.admin, &res);
                /* Put the policy back before anything can fail; the revoke goes on. */
                write_text(VFIOD_CONF, orig);
                r_back = vfiod_reload_policy(T.admin, &back);
                ck_assert_msg(r == 0 && res.applied && res.leases_revoked == 1,
                              "reload: %d, applied %d, %u revoked", r, res.applied,
                              res.leases_revoked);
                ck_assert_msg(r_back == 0 && back.applied && back.leases_revoked == 0,
                              "reload back: %d, applied %d", r_back, back.applied);
                vfiod_reload_result_clear(&res);
                vfiod_reload_result_clear(&back);
                free(changed);
                free(orig);
        }
        child_expect(&a, "acquire ", NULL, 0);
        child_expect(&a, "MapDma: ", NULL, 0);
        child_expect(&a, "refused", NULL, 0);
        get_stats(&st);
        ck_assert_uint_eq(st.leases, 0);
        ck_assert_uint_eq(st.mappings, 0);
        ck_assert_uint_eq(st.quarantined_groups, 1);
        log_wait_for("refused MapDma in domain", NULL);
        child_go(&a);
        child_expect(&a, "domain whole again", NULL, 0);
        child_end(&a);
        wait_free(0);
        end();
}
END_TEST

/* ---- malformed input; the daemon stopping --------------------------------- */

/* A raw connection to vfiod; returns the socket. */
static int p_raw_connect(struct peer *p, const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        P_CHECK(p, fd >= 0, "socket: %s", strerror(errno));
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        P_CHECK(p, connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s: %s", path,
                strerror(errno));
        return fd;
}

/* Waits up to 3 s for the daemon to close fd (EOF). */
static bool p_closed_by_peer(int fd)
{
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char b[256];

        if (poll(&pfd, 1, 3000) <= 0)
                return false;
        return recv(fd, b, sizeof(b), MSG_DONTWAIT) == 0;
}

/* A datagram that is no Envelope, and a request before Hello: each drops only its connection. */
static void client_malformed(struct peer *p, const void *arg)
{
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT;
        Vfiod__Envelope env = ENVELOPE(list_devices, &ld);
        unsigned irqs = 0;
        struct bsess s;
        int fd;

        b_open(p, &s, arg, true, false, NULL);
        fd = p_raw_connect(p, VFIOD_SOCKET_DEFAULT);
        P_CHECK(p, send(fd, "\xff\xff\xff\xff", 4, MSG_NOSIGNAL) == 4, "send");
        P_CHECK(p, p_closed_by_peer(fd), "vfiod kept a connection that sent garbage");
        close(fd);
        fd = p_raw_connect(p, VFIOD_SOCKET_DEFAULT);
        env.id = 1;
        P_CHECK(p, vfiod_msg_send(fd, &env, NULL, 0) == 0, "send ListDevices");
        P_CHECK(p, p_closed_by_peer(fd), "vfiod answered a request before Hello");
        close(fd);
        /* The lease on the other connection is untouched. */
        P_CHECK(p, p_state(p, s.c, arg) == VFIOD_LEASE_STATE_LEASED_BY_YOU, "lease gone");
        p_roundtrip(p, &s.dev, s.efd, s.mem, IOVA, 40, &irqs);
        p_say(p, "dropped, lease unaffected");
        b_close(p, &s);
}

START_TEST(test_malformed_dropped)
{
        struct child a;

        begin();
        child_start(&a, "alice", client_malformed, T.bdf[0], CHILD_CHECK_FDS);
        child_expect(&a, "dropped, lease unaffected", NULL, 0);
        child_end(&a);
        log_wait_for("closing the connection: bad datagram", NULL);
        log_wait_for("closing the connection: it sent 'list_devices' before Hello", NULL);
        end();
}
END_TEST

#define TERM_DIR  "/run/vfiod-term"
#define TERM_SOCK TERM_DIR "/vfiod.sock"
#define TERM_LOG  "/tmp/vfiod-term.log"

/*
 * Leases from a second vfiod (on TERM_SOCK), leaves the device raising
 * INTx, closes its device fds but not the lease; after that daemon's
 * SIGTERM, finds the connection gone and leases the device from the main
 * vfiod: reset, working.
 */
static void client_daemon_stops(struct peer *p, const void *arg)
{
        struct vfiod_device_info *d = NULL;
        uint32_t status = 0;
        unsigned irqs = 0;
        struct bsess s;
        size_t n = 0;
        int r;

        P_CHECK(p, setenv(VFIOD_SOCKET_ENV, TERM_SOCK, 1) == 0, "setenv");
        b_open(p, &s, arg, false, false, NULL);
        p_roundtrip(p, &s.dev, -1, s.mem, IOVA, 50, &irqs);
        testdev_raise(&s.dev, 0x8);
        testdev_close(&s.dev);
        munmap(s.mem, 2 * PAGE);
        close(s.memfd);
        vfiod_lease_close_fds(&s.l);
        p_say(p, "leased %llu", (unsigned long long)s.l.lease_id);
        p_wait(p);
        r = vfiod_list_devices(s.c, NULL, &d, &n);
        P_CHECK(p, r == -ECONNRESET || r == -EPIPE || r == -ENOTCONN,
                "the stopped daemon's connection: %d %s", r, strerror(-r));
        vfiod_close(s.c);
        P_CHECK(p, unsetenv(VFIOD_SOCKET_ENV) == 0, "unsetenv");
        b_open(p, &s, arg, true, false, &status);
        P_CHECK(p, !(status & PCI_STATUS_INTERRUPT), "PCI status %#x: not reset", status);
        testdev_ack(&s.dev, ~UINT32_C(0));
        p_roundtrip(p, &s.dev, s.efd, s.mem, IOVA, 51, &irqs);
        p_say(p, "connection gone (%s), device leased again", strerror(-r));
        b_close(p, &s);
}

START_TEST(test_daemon_sigterm)
{
        int status = -1, log_fd, waited;
        char line[256], *log;
        struct child a;
        pid_t pid;

        begin();
        log_fd = open(TERM_LOG, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(log_fd, 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                if (dup2(log_fd, 2) < 0)
                        _exit(127);
                execl("/vfiod/bin/vfiod", "vfiod", "--config", "/etc/vfiod/vfiod.conf", "--socket",
                      TERM_SOCK, "--debug", (char *)NULL);
                _exit(127);
        }
        close(log_fd);
        for (waited = 0; access(TERM_SOCK, F_OK) != 0 && waited < 5000; waited += 50)
                sleep_ms(50);
        ck_assert_msg(waited < 5000, "the second vfiod did not come up");
        child_start(&a, "alice", client_daemon_stops, T.bdf[2], CHILD_CHECK_FDS);
        child_expect(&a, "leased ", NULL, 0);
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "vfiod status %#x", status);
        ck_assert_msg(access(TERM_SOCK, F_OK) != 0, "the socket was left behind");
        child_go(&a);
        child_expect(&a, "connection gone", NULL, 0);
        child_end(&a);
        {
                FILE *f = fopen(TERM_LOG, "re");
                long size;

                ck_assert_ptr_nonnull(f);
                fseek(f, 0, SEEK_END);
                size = ftell(f);
                rewind(f);
                log = calloc(1, (size_t)size + 1);
                ck_assert_ptr_nonnull(log);
                ck_assert_int_eq(fread(log, 1, (size_t)size, f), (size_t)size);
                fclose(f);
        }
        snprintf(
            line, sizeof(line), "%s",
            by_iface("release 3/5: group detached", "release 3/5: device detached and closed"));
        ck_assert_msg(strstr(log, "releasing every lease and stopping"), "%s: no stop line",
                      TERM_LOG);
        ck_assert_msg(strstr(log, line), "%s: no '%s'", TERM_LOG, line);
        ck_assert_msg(strstr(log, "is free"), "%s: the group was not freed", TERM_LOG);
        ck_assert_msg(strstr(log, "Stopped"), "%s: no 'Stopped'", TERM_LOG);
        free(log);
        end();
}
END_TEST

/* ---- vfioctl acquire: a program with the lease's fds inherited -------------- */

static int env_int(struct peer *p, const char *name)
{
        const char *v = getenv(name);

        P_CHECK(p, v && *v, "$%s is not set", name);
        return atoi(v);
}

/*
 * `guest-broker --inherited`, run by `vfioctl acquire` as alice: uses what it
 * inherited (DIRECT: container, group and device fds; BROKERED: the device
 * fd and the connection, adopted with vfiod_connect_env()) for a DMA round
 * trip with MSI. Reports on stderr; exit status 0 when it all worked.
 */
static int inherited_client(void)
{
        struct peer pp = {.user = "inherited", .cmd = -1, .rep = 2}, *p = &pp;
        const char *mode = getenv("VFIOD_MODE");
        int devfd = env_int(p, "VFIOD_DEVICE_FD"), efd = -1, memfd = -1, r;
        struct testdev dev = {.fd = -1};
        struct vfiod *c = NULL;
        unsigned irqs = 0;
        uint8_t *mem;

        P_CHECK(p, getuid() != 0, "running as root");
        P_CHECK(p, mode, "$VFIOD_MODE is not set");
        P_CHECK(p, testdev_open(&dev, K, devfd) == 0, "BAR0 of the inherited device fd %d", devfd);
        P_CHECK(p, edu_enable_bus_master(devfd) == 0, "bus master");
        testdev_ack(&dev, ~UINT32_C(0));
        if (strcmp(mode, "direct") == 0) {
                int container = env_int(p, "VFIOD_CONTAINER_FD");

                P_CHECK(p, getenv("VFIOD_CONNECTION_FD") == NULL, "a connection in DIRECT mode");
                (void)env_int(p, "VFIOD_GROUP_FD");
                mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                           0);
                P_CHECK(p, mem != MAP_FAILED, "mmap");
                r = vfio_map(container, mem, IOVA, 2 * PAGE);
                P_CHECK(p, r == 0, "VFIO_IOMMU_MAP_DMA on the inherited container: %s",
                        strerror(-r));
                efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                P_CHECK(p, efd >= 0 && vfio_msi(devfd, efd) == 0, "MSI");
        } else {
                uint64_t domain = (uint64_t)env_int(p, "VFIOD_DOMAIN_ID");
                uint64_t lease = (uint64_t)env_int(p, "VFIOD_LEASE_ID");

                P_CHECK(p, getenv("VFIOD_CONTAINER_FD") == NULL, "a container in BROKERED mode");
                r = vfiod_connect_env(&c);
                P_CHECK(p, r == 0, "vfiod_connect_env: %s", strerror(-r));
                P_CHECK(p, vfiod_memfd_create("inherited", 2 * PAGE, &memfd) == 0, "memfd");
                mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
                P_CHECK(p, mem != MAP_FAILED, "mmap");
                r = map1(c, domain, memfd, 0, IOVA, 2 * PAGE);
                P_CHECK(p, r == 1, "MapDma on the adopted connection: %d (%s)", r,
                        vfiod_last_error(c));
                r = vfiod_setup_msi(c, lease, VFIOD_IRQ_INDEX_MSI, 1, &efd);
                P_CHECK(p, r == 0, "SetIrqs: %s (%s)", strerror(-r), vfiod_last_error(c));
        }
        p_roundtrip(p, &dev, efd, mem, IOVA, 60, &irqs);
        P_CHECK(p, irqs == 2, "%u MSIs", irqs);
        fprintf(stderr, "guest-broker --inherited: %s lease: DMA both ways, %u MSIs\n", mode, irqs);
        /* What is left (mappings, MSI) is the release's to undo when vfioctl gives it back. */
        return EXIT_SUCCESS;
}

struct vfioctl_arg {
        const char *bdf;
        bool brokered;
};

static void client_vfioctl(struct peer *p, const void *arg)
{
        const struct vfioctl_arg *a = arg;
        const bool brokered = a->brokered;
        int status = -1;
        pid_t pid;

        pid = fork();
        P_CHECK(p, pid >= 0, "fork");
        if (pid == 0) {
                /* vfioctl and the program get none of the pipes to the test. */
                (void)fcntl(3, F_SETFD, FD_CLOEXEC);
                (void)fcntl(4, F_SETFD, FD_CLOEXEC);
                if (brokered)
                        execl("/vfiod/bin/vfioctl", "vfioctl", "acquire", a->bdf, "--brokered",
                              "--", "/vfiod/bin/guest-broker", "--inherited", (char *)NULL);
                else
                        execl("/vfiod/bin/vfioctl", "vfioctl", "acquire", a->bdf, "--",
                              "/vfiod/bin/guest-broker", "--inherited", (char *)NULL);
                _exit(127);
        }
        P_CHECK(p, waitpid(pid, &status, 0) == pid, "waitpid");
        P_CHECK(p, WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "vfioctl acquire%s: status %#x (see the console)", brokered ? " --brokered" : "",
                status);
        p_say(p, "vfioctl ok");
}

START_TEST(test_vfioctl_acquire)
{
        struct vfioctl_arg arg[2];
        struct child a;

        begin();
        arg[0] = (struct vfioctl_arg){T.bdf[0], false};
        arg[1] = (struct vfioctl_arg){T.bdf[0], true};
        for (int i = 0; i < 2; i++) {
                child_start(&a, "alice", client_vfioctl, &arg[i], CHILD_CHECK_FDS);
                child_expect(&a, "vfioctl ok", NULL, 0);
                child_end(&a);
                wait_idle(true);
        }
        log_wait_for("in direct mode", NULL);
        log_wait_for("unmapped all client DMA (8192 bytes)", NULL);
        log_wait_for("in brokered mode", NULL);
        log_wait_for("unmapped iova 0x100000+0x2000", NULL);
        end();
}
END_TEST

/* ---- hotplug: the inventory follows the kernel's uevents ----------------------- */

/*
 * Waits for a command byte from the test: 'l' lists what alice sees ("list
 * NAME=DRIVER ..."), 'a' leases arg (brokered, a DMA round trip), then
 * ignores the kernel's ReleaseRequested, says how the lease ended (LeaseRevoked)
 * and closes everything; EOF ends the client.
 */
static void client_hotplug(struct peer *p, const void *arg)
{
        struct vfiod *c = p_connect(p);
        char cmd;

        while (read(p->cmd, &cmd, 1) == 1) {
                struct vfiod_device_info *d = NULL;
                struct vfiod_event ev;
                unsigned irqs = 0;
                char line[1024];
                struct bsess s;
                size_t n = 0, len;
                int r;

                if (cmd == 'l') {
                        r = vfiod_list_devices(c, NULL, &d, &n);
                        P_CHECK(p, r == 0, "ListDevices: %s (%s)", strerror(-r),
                                vfiod_last_error(c));
                        len = (size_t)snprintf(line, sizeof(line), "list");
                        for (size_t i = 0; i < n && len < sizeof(line); i++)
                                len += (size_t)snprintf(line + len, sizeof(line) - len, " %s=%s",
                                                        d[i].device, d[i].driver);
                        vfiod_devices_free(d, n);
                        p_say(p, "%s", line);
                        continue;
                }
                b_open(p, &s, arg, true, true, NULL);
                p_roundtrip(p, &s.dev, s.efd, s.mem, IOVA, 5, &irqs);
                p_say(p, "leased %llu", (unsigned long long)s.l.lease_id);
                r = p_next_event(p, s.c, 20000, &ev);
                P_CHECK(p, r == 0 && ev.type == VFIOD_EVENT_RELEASE_REQUESTED, "first event: %d %s",
                        r, r == 0 ? vfiod_event_type_name(ev.type) : strerror(-r));
                r = p_next_event(p, s.c, 20000, &ev);
                P_CHECK(p, r == 0 && ev.type == VFIOD_EVENT_LEASE_REVOKED, "second event: %d %s", r,
                        r == 0 ? vfiod_event_type_name(ev.type) : strerror(-r));
                P_CHECK(p, ev.lease_id == s.l.lease_id, "revoked lease %llu",
                        (unsigned long long)ev.lease_id);
                p_say(p, "revoked %s", vfiod_release_reason_name(ev.reason));
                /* The removal waits for these. */
                b_close_revoked(p, &s);
        }
        vfiod_close(c);
}

/* The client's list after a command 'l'. */
static void hotplug_list(struct child *a, char *line, size_t size)
{
        ck_assert_int_eq(write(a->cmd, "l", 1), 1);
        child_expect(a, "list", line, size);
}

/* Waits (IDLE_MS) until alice's list shows `want` ("BDF=vfio-pci") or, want_absent, no BDF. */
static void hotplug_wait_list(struct child *a, const char *bdf, const char *want)
{
        char line[1024], needle[128];

        snprintf(needle, sizeof(needle), " %s=%s", bdf, want ? want : "");
        for (int waited = 0;; waited += 100) {
                bool has;

                const char *at;

                hotplug_list(a, line, sizeof(line));
                at = strstr(line, needle);
                /* The whole entry: " BDF=" is also the start of " BDF=vfio-pci". */
                has = want ? at && (at[strlen(needle)] == ' ' || at[strlen(needle)] == '\0')
                           : strstr(line, bdf) == NULL;
                if (has)
                        return;
                ck_assert_msg(waited < IDLE_MS, "alice's list never showed '%s' %s: '%s'", bdf,
                              want ? want : "gone", line);
                sleep_ms(100);
        }
}

static void write_sysfs(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CLOEXEC);

        ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
        ck_assert_msg(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "%s: %s", path,
                      strerror(errno));
        close(fd);
}

/* Rescans the bus and binds bdf back to vfio-pci (it comes back bound to no driver). */
static void hotplug_readd(struct child *a, const char *bdf)
{
        char prev[KVFIO_DRIVER_MAX], path[128];
        int r = -ENODEV;

        write_sysfs("/sys/bus/pci/rescan", "1");
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", bdf);
        for (int waited = 0; waited < IDLE_MS && access(path, F_OK) < 0; waited += 50)
                sleep_ms(50);
        log_wait_for("device '", bdf, "' appeared (", NULL);
        r = kvfio_pci_bind_vfio("/", bdf, prev);
        ck_assert_msg(r == 0, "binding '%s' to vfio-pci: %s", bdf, strerror(-r));
        hotplug_wait_list(a, bdf, "vfio-pci");
}

START_TEST(test_hotplug)
{
        char line[1024], path[128];
        const char *bdf;
        struct child a;
        pid_t pid;

        begin();
        bdf = T.bdf[2];
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", bdf);
        child_start(&a, "alice", client_hotplug, bdf, CHILD_CHECK_FDS);
        hotplug_wait_list(&a, bdf, "vfio-pci");

        /*
         * Free: removed, listed no more; back with a rescan, rebound, leasable. The
         * removal's uevents are "unbind" then "remove"; when vfiod reads the first the
         * device may be gone already, so the log says "is gone (unbind)".
         */
        write_sysfs(path, "1");
        log_wait_for("device '", bdf, "' is gone (", NULL);
        hotplug_wait_list(&a, bdf, NULL);
        hotplug_readd(&a, bdf);

        /* Unbound and rebound while vfiod runs: the list follows. */
        write_sysfs(VFIO_UNBIND, bdf);
        log_wait_for("device '", bdf, "' changed (unbind)", NULL);
        hotplug_wait_list(&a, bdf, "");
        {
                char prev[KVFIO_DRIVER_MAX];
                int r = kvfio_pci_bind_vfio("/", bdf, prev);

                ck_assert_msg(r == 0, "binding '%s' back: %s", bdf, strerror(-r));
        }
        log_wait_for("device '", bdf, "' changed (bind)", NULL);
        hotplug_wait_list(&a, bdf, "vfio-pci");

        /* Leased (it came back without a restart) and removed: the lease ends, alice is told. */
        ck_assert_int_eq(write(a.cmd, "a", 1), 1);
        child_expect(&a, "leased ", line, sizeof(line));
        /* Blocks until every fd of the device is closed: alice's and vfiod's. */
        pid = write_in_child(path, "1");
        child_expect(&a, "revoked ", line, sizeof(line));
        ck_assert_msg(write_done(pid, 20000), "the removal did not complete");
        ck_assert_msg(strcmp(line, "revoked kernel-request") == 0 ||
                          strcmp(line, "revoked device-gone") == 0,
                      "alice said '%s'", line);
        log_wait_for("device '", bdf, "' is gone (", NULL);
        hotplug_wait_list(&a, bdf, NULL);
        /* Back for the other tests. */
        hotplug_readd(&a, bdf);
        close(a.cmd);
        a.cmd = -1;
        {
                int st = 0;

                ck_assert_int_eq(waitpid(a.pid, &st, 0), a.pid);
                close(a.rep);
                ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "alice: status %#x", st);
        }
        end();
}
END_TEST

static Suite *guest_broker_suite(void)
{
        Suite *s = suite_create("guest-broker");
        TCase *tc;

        tc = tcase_create("modes");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_brokered_dma_msi);
        tcase_add_test(tc, test_direct_dma_msi);
        tcase_add_test(tc, test_group_lease);
        tcase_add_test(tc, test_brokered_intx);
        tcase_add_test(tc, test_two_clients_two_devices);
        /* vfioctl's children and the group fd and container are the legacy interface's. */
        if (I == VFIOD_INTERFACE_LEGACY)
                tcase_add_test(tc, test_vfioctl_acquire);
        suite_add_tcase(s, tc);

        tc = tcase_create("policy");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_denied);
        tcase_add_test(tc, test_bad_map_dma);
        tcase_add_test(tc, test_malformed_dropped);
        suite_add_tcase(s, tc);

        tc = tcase_create("release");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_sigkill_mid_lease);
        tcase_add_test(tc, test_quarantine_fd_kept);
        /* mdma's REQ on removal is checked by mdma-test; an mdev has no vfio-pci to unbind. */
        if (K == TESTDEV_EDU)
                tcase_add_test(tc, test_req_unbind);
        if (I == VFIOD_INTERFACE_LEGACY)
                tcase_add_test(tc, test_direct_group_fd_kept);
        tcase_add_test(tc, test_direct_sigkill);
        tcase_add_test(tc, test_revoke_ignored);
        tcase_add_test(tc, test_policy_reload_revokes);
        tcase_add_test(tc, test_daemon_sigterm);
        suite_add_tcase(s, tc);

        tc = tcase_create("domains");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_shared_domain);
        tcase_add_loop_test(tc, test_revoked_fd_kept_taints_domain, 0, 2);
        suite_add_tcase(s, tc);

        /* Remove, rescan, unbind and bind vfio-pci devices; mdevs are mdma-test's. */
        if (K == TESTDEV_EDU) {
                tc = tcase_create("hotplug");
                testutil_tcase_fd_checked(tc);
                tcase_set_timeout(tc, 120);
                tcase_add_test(tc, test_hotplug);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(int argc, char **argv)
{
        SRunner *sr;
        int failed;
        FILE *f;
        char line[1024];

        if (testdev_kind_from_env(&K) < 0) {
                fprintf(stderr, "guest-broker: $VFIOD_TESTDEV must be edu or mdma\n");
                return EXIT_FAILURE;
        }
        {
                const char *iface = getenv("VFIOD_INTERFACE");

                if (iface && strcmp(iface, "iommufd") == 0)
                        I = VFIOD_INTERFACE_IOMMUFD;
                else if (iface && *iface && strcmp(iface, "legacy") != 0) {
                        fprintf(stderr, "guest-broker: $VFIOD_INTERFACE must be legacy or "
                                        "iommufd\n");
                        return EXIT_FAILURE;
                }
        }
        if (argc > 1 && strcmp(argv[1], "--inherited") == 0)
                return inherited_client();
        if (I == VFIOD_INTERFACE_IOMMUFD)
                fprintf(stderr, "guest-broker: through iommufd; modes/test_vfioctl_acquire and "
                                "release/test_direct_group_fd_kept left out (the legacy "
                                "interface's group fd and container)\n");
        if (K == TESTDEV_MDMA)
                fprintf(stderr, "guest-broker: on mdma's mdevs; release/test_req_unbind left "
                                "out (an mdev has no vfio-pci to unbind; mdma-test checks REQ)\n");
        sr = srunner_create(guest_broker_suite());
        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        /* The daemon's log, for the console. */
        f = fopen(VFIOD_LOG, "re");
        if (f) {
                fprintf(stderr, "guest-broker: vfiod's log (%s):\n", VFIOD_LOG);
                while (fgets(line, sizeof(line), f))
                        fprintf(stderr, "  %s", line);
                fclose(f);
        }
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
