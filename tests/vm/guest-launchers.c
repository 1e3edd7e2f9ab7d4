/* SPDX-License-Identifier: MIT */
/*
 * Programs users run, unmodified, through vfiod, in the test VM (make
 * check-vm-launchers, see tests/vm/README.md): Debian 12's own QEMU 7.2 and
 * DPDK 22.11 (dpdk-testpmd), extracted from Debian's packages by
 * fetch-debs.sh, and KVM's VFIO device. launchers-setup.sh starts vfiod for
 * two edu devices (edu 0: alice and bob; edu 1: bob only) and QEMU's e1000
 * NIC (alice and bob), each rule with MaxPinnedBytes=256M (the holder's
 * RLIMIT_MEMLOCK), and puts alice and bob in the group kvm of /dev/kvm.
 *
 * - kvm: KVM_CREATE_DEVICE(KVM_DEV_TYPE_VFIO) and KVM_DEV_VFIO_GROUP_ADD/DEL
 *   with a group fd vfiod sent, in the DIRECT and the GROUP shape.
 * - qemu: `vfioctl acquire EDU --preload -- qemu-system-x86_64 -device
 *   vfio-pci,host=EDU ...` as alice, with TCG and with accel=kvm: `info pci`
 *   shows 1234:11e8, VmLck covers the guest's RAM, with KVM a kvm-vfio fd;
 *   then QEMU is SIGKILLed, bob leases the device and a DMA from an IOVA of
 *   QEMU's RAM faults in the IOMMU. Refused without --preload and for edu 1.
 * - dpdk: dpdk-testpmd as alice through --preload drives the e1000 (txonly;
 *   the outer QEMU's UDP socket netdev loops the frames back), counts the
 *   packets, is SIGKILLed mid-run; bob leases the NIC and its descriptor
 *   fetch from testpmd's IOVA faults.
 */
#include "client-lib/vfiod.h"
#include "tests/testutil.h"
#include "tests/vm/child.h"
#include "tests/vm/edu.h"
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/kvm.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
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
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define QEMU     "/usr/bin/qemu-system-x86_64"
#define TESTPMD  "/usr/bin/dpdk-testpmd"
#define GUEST_MB 64
/* An IOVA inside the nested guest's RAM (QEMU maps guest-physical = IOVA). */
#define QEMU_RAM_IOVA UINT64_C(0x1000000)
/* Bob's own page, for the DMA that must work. */
#define OWN_IOVA UINT64_C(0x8000000)

static struct {
        char edu[2][32]; /* edu 0: alice and bob; edu 1: bob only */
        char nic[32];    /* the e1000 */
} T;

/* A line for the host's terminal (run-vm.sh prints $VFIOD_SAY's lines). */
__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
        const char *path = getenv("VFIOD_SAY");
        FILE *f = path ? fopen(path, "ae") : NULL;
        va_list ap;

        va_start(ap, fmt);
        vfprintf(f ? f : stderr, fmt, ap);
        va_end(ap);
        fputc('\n', f ? f : stderr);
        if (f)
                fclose(f);
}

/* The lines of text holding `needle`, for say(). */
static void say_lines(const char *text, const char *needle)
{
        for (const char *l = text; l && *l;) {
                const char *nl = strchr(l, '\n');
                int len = nl ? (int)(nl - l) : (int)strlen(l);

                if (memmem(l, (size_t)len, needle, strlen(needle)))
                        say("  | %.*s", len, l);
                l = nl ? nl + 1 : NULL;
        }
}

/* --- the devices ---------------------------------------------------------- */

static void find_devices(void)
{
        FILE *p = popen("for d in /sys/bus/pci/devices/*; do "
                        "echo \"$(cat $d/vendor):$(cat $d/device) ${d##*/}\"; done",
                        "re");
        char id[32], bdf[32];
        int n = 0;

        ck_assert_ptr_nonnull(p);
        while (fscanf(p, "%31s %31s", id, bdf) == 2) {
                if (strcmp(id, "0x1234:0x11e8") == 0 && n < 2)
                        snprintf(T.edu[n++], sizeof(T.edu[0]), "%s", bdf);
                else if (strcmp(id, "0x8086:0x100e") == 0)
                        snprintf(T.nic, sizeof(T.nic), "%s", bdf);
        }
        pclose(p);
        ck_assert_msg(n == 2 && T.nic[0], "want 2 edu and an e1000, found %d edu, nic '%s'", n,
                      T.nic);
}

/* --- a program run as a user, its stdin and output on pipes ---------------- */

struct run {
        pid_t pid;
        int in, out;
        char buf[1 << 17];
        size_t len;
};

/*
 * tty: stdin, stdout and stderr are a pseudo-terminal (raw, no echo), for a
 * program whose stdout is fully buffered on a pipe (testpmd); else pipes.
 */
static void run_start(struct run *r, const char *user, char *const argv[], bool tty)
{
        int in[2] = {-1, -1}, out[2] = {-1, -1};
        struct passwd *pw = getpwnam(user);

        ck_assert_ptr_nonnull(pw);
        if (tty) {
                struct termios t;
                int pty = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);

                ck_assert_int_ge(pty, 0);
                ck_assert_int_eq(grantpt(pty), 0);
                ck_assert_int_eq(unlockpt(pty), 0);
                in[0] = out[1] = open(ptsname(pty), O_RDWR | O_NOCTTY | O_CLOEXEC);
                ck_assert_int_ge(in[0], 0);
                ck_assert_int_eq(tcgetattr(in[0], &t), 0);
                cfmakeraw(&t);
                t.c_oflag |= OPOST | ONLCR;
                ck_assert_int_eq(tcsetattr(in[0], TCSANOW, &t), 0);
                in[1] = pty;
                out[0] = fcntl(pty, F_DUPFD_CLOEXEC, 3);
                ck_assert_int_ge(out[0], 0);
        } else {
                ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
                ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
        }
        memset(r, 0, sizeof(*r));
        r->pid = fork();
        ck_assert_int_ge(r->pid, 0);
        if (r->pid == 0) {
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0 ||
                    close_range(3, ~0U, 0) < 0 || initgroups(user, pw->pw_gid) < 0 ||
                    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
                    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0 || chdir(pw->pw_dir) < 0)
                        _exit(126);
                setenv("HOME", pw->pw_dir, 1);
                setenv("USER", user, 1);
                setenv("PATH", "/vfiod/bin:/usr/bin:/bin", 1);
                execvp(argv[0], argv);
                _exit(127);
        }
        close(in[0]);
        if (out[1] != in[0])
                close(out[1]);
        r->in = in[1];
        r->out = out[0];
}

static void run_send(struct run *r, const char *text)
{
        ck_assert_int_eq(write(r->in, text, strlen(text)), (ssize_t)strlen(text));
}

/* Reads output until it holds `needle` after byte `from` (true) or EOF / ms pass (false). */
static bool run_wait_for(struct run *r, size_t from, const char *needle, int ms)
{
        struct timespec t0, t;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
                struct pollfd pfd = {.fd = r->out, .events = POLLIN};
                ssize_t n;

                r->buf[r->len] = '\0';
                if (needle && strstr(r->buf + from, needle))
                        return true;
                clock_gettime(CLOCK_MONOTONIC, &t);
                if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
                        return false;
                if (poll(&pfd, 1, 100) <= 0)
                        continue;
                if (r->len >= sizeof(r->buf) - 1) /* keep the last half */
                        memmove(r->buf, r->buf + sizeof(r->buf) / 2, r->len -= sizeof(r->buf) / 2);
                n = read(r->out, r->buf + r->len, sizeof(r->buf) - 1 - r->len);
                if (n <= 0)
                        return false;
                r->len += (size_t)n;
        }
}

/* Closes stdin, reads to EOF (30 s at most), reaps: the wait status. */
static int run_end(struct run *r)
{
        int status = 0;

        if (r->in >= 0)
                close(r->in);
        r->in = -1;
        (void)run_wait_for(r, 0, NULL, 30000);
        close(r->out);
        ck_assert_int_eq(waitpid(r->pid, &status, 0), r->pid);
        fprintf(stderr, "---- output of pid %d:\n%s\n----\n", (int)r->pid, r->buf);
        return status;
}

/* The pid of the child of `parent` (vfioctl's program): 0 if none within 10 s. */
static pid_t child_of(pid_t parent)
{
        for (int i = 0; i < 100; i++) {
                FILE *p;
                char cmd[160];
                int pid = 0;

                snprintf(cmd, sizeof(cmd),
                         "cat /proc/[0-9]*/stat 2>/dev/null | "
                         "awk '$4 == %d { print $1; exit }'",
                         (int)parent);
                p = popen(cmd, "re");
                ck_assert_ptr_nonnull(p);
                if (fscanf(p, "%d", &pid) != 1)
                        pid = 0;
                pclose(p);
                if (pid > 0)
                        return pid;
                usleep(100000);
        }
        return 0;
}

/* The value of a "Key:  N kB" line of /proc/PID/status, in KiB (-1: none). */
static long status_kb(pid_t pid, const char *key)
{
        char path[64], line[256];
        long v = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == ':')
                        v = strtol(line + strlen(key) + 1, NULL, 10);
        fclose(f);
        return v;
}

/* True when one of pid's fds is an anon inode named `name` (e.g. "kvm-vfio"). */
static bool has_anon_fd(pid_t pid, const char *name)
{
        char cmd[160];
        FILE *p;
        int n = 0;

        snprintf(cmd, sizeof(cmd), "ls -l /proc/%d/fd | grep -c 'anon_inode:%s'", (int)pid, name);
        p = popen(cmd, "re");
        ck_assert_ptr_nonnull(p);
        if (fscanf(p, "%d", &n) != 1)
                n = 0;
        pclose(p);
        return n > 0;
}

static void kill_and_reap_program(struct run *r, pid_t prog)
{
        int status;

        ck_assert_int_eq(kill(prog, SIGKILL), 0);
        status = run_end(r); /* vfioctl: its program died, it releases and exits */
        ck_assert_msg(WIFEXITED(status) || WIFSIGNALED(status), "vfioctl: status %#x", status);
}

/* --- the kernel log: a DMAR fault at an address --------------------------- */

static int kmsg_open_at_end(void)
{
        int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_ge(lseek(fd, 0, SEEK_END), 0);
        return fd;
}

/* Waits up to 5 s for the IOMMU driver's "fault addr 0x<iova>" line. */
static bool kmsg_fault_at(int fd, uint64_t iova)
{
        char want[64], rec[1024];

        snprintf(want, sizeof(want), "fault addr 0x%llx ", (unsigned long long)iova);
        for (int i = 0; i < 50; i++) {
                ssize_t n;

                while ((n = read(fd, rec, sizeof(rec) - 1)) > 0) {
                        rec[n] = '\0';
                        if (strstr(rec, "DMAR") && strstr(rec, want)) {
                                fprintf(stderr, "guest-launchers: kernel: %s",
                                        strchr(rec, ';') + 1);
                                return true;
                        }
                }
                usleep(100000);
        }
        return false;
}

/* --- bob's side: a lease of his own on the device the program had ---------- */

enum target { TARGET_EDU, TARGET_E1000 };

struct fault_arg {
        const char *bdf;
        enum target target;
        uint64_t iova; /* the first holder's */
};

static int bob_container(struct peer *p, struct vfiod_lease *l, int *ret_dev)
{
        int c = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC), dev;

        P_CHECK(p, c >= 0, "open /dev/vfio/vfio: %s", strerror(errno));
        /* The group must be attached to no container: the first holder's is gone. */
        P_CHECK(p, ioctl(l->group_fd, VFIO_GROUP_SET_CONTAINER, &c) == 0,
                "VFIO_GROUP_SET_CONTAINER: %s", strerror(errno));
        P_CHECK(p, ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) == 0, "VFIO_SET_IOMMU: %s",
                strerror(errno));
        dev = ioctl(l->group_fd, VFIO_GROUP_GET_DEVICE_FD, l->device);
        P_CHECK(p, dev >= 0, "VFIO_GROUP_GET_DEVICE_FD: %s", strerror(errno));
        *ret_dev = dev;
        return c;
}

static void e1000_write(struct peer *p, int dev, uint64_t bar_off, uint32_t reg, uint32_t val)
{
        P_CHECK(p, pwrite(dev, &val, 4, (off_t)(bar_off + reg)) == 4, "e1000 %#x: %s", reg,
                strerror(errno));
}

/*
 * Bob leases the device (GROUP; EBUSY while vfiod still releases it), attaches
 * his own container, maps one page of his own, then has the device read from
 * the first holder's IOVA, which nothing maps any more.
 */
static void client_bob_fault(struct peer *p, const void *varg)
{
        const struct fault_arg *a = varg;
        struct vfiod_lease l;
        struct vfiod *c;
        int r = -EBUSY, con, dev;
        void *page;
        struct vfio_iommu_type1_dma_map map = {.argsz = sizeof(map),
                                               .flags =
                                                   VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
                                               .iova = OWN_IOVA,
                                               .size = 4096};

        P_CHECK(p, vfiod_connect(NULL, &c) == 0, "connect");
        for (int i = 0; i < 100 && r == -EBUSY; i++) {
                r = vfiod_acquire(c, a->bdf, 0, VFIOD_MODE_GROUP, &l);
                if (r == -EBUSY)
                        usleep(100000);
        }
        P_CHECK(p, r == 0, "acquire %s (group): %s (%s)", a->bdf, strerror(-r),
                vfiod_last_error(c));
        con = bob_container(p, &l, &dev);
        page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        P_CHECK(p, page != MAP_FAILED, "mmap");
        memset(page, 0x5a, 4096);
        map.vaddr = (uintptr_t)page;
        P_CHECK(p, ioctl(con, VFIO_IOMMU_MAP_DMA, &map) == 0, "VFIO_IOMMU_MAP_DMA: %s",
                strerror(errno));
        P_CHECK(p, edu_enable_bus_master(dev) == 0, "bus master");
        if (a->target == TARGET_EDU) {
                volatile void *bar0;
                unsigned char *b = page;

                P_CHECK(p, edu_map_bar0(dev, &bar0) == 0, "edu BAR0");
                /* His own mapping works: page -> buffer -> page + 2048. */
                P_CHECK(p, edu_dma(bar0, OWN_IOVA, 0, 1024, false) == 0, "DMA to edu");
                memset(b + 2048, 0, 1024);
                P_CHECK(p, edu_dma(bar0, OWN_IOVA + 2048, 0, 1024, true) == 0, "DMA from edu");
                P_CHECK(p, b[2048] == 0x5a && b[3071] == 0x5a, "own DMA did not arrive");
                p_say(p, "own dma ok");
                p_wait(p);
                P_CHECK(p, edu_dma(bar0, a->iova, 0, 1024, false) == 0, "DMA from %#llx",
                        (unsigned long long)a->iova);
                edu_unmap_bar0(bar0);
        } else {
                struct vfio_region_info ri = {.argsz = sizeof(ri), .index = 0};

                P_CHECK(p, ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &ri) == 0, "BAR0 info");
                p_say(p, "own dma ok");
                p_wait(p);
                /* A transmit ring at the old IOVA: TDBAL, TDBAH, TDLEN, TDH, TCTL.EN, TDT. */
                e1000_write(p, dev, ri.offset, 0x3800, (uint32_t)a->iova);
                e1000_write(p, dev, ri.offset, 0x3804, (uint32_t)(a->iova >> 32));
                e1000_write(p, dev, ri.offset, 0x3808, 4096);
                e1000_write(p, dev, ri.offset, 0x3810, 0);
                e1000_write(p, dev, ri.offset, 0x400, 0x2);
                e1000_write(p, dev, ri.offset, 0x3818, 1);
                usleep(200000);
        }
        p_say(p, "dma done");
        munmap(page, 4096);
        close(dev);
        close(con);
        vfiod_lease_close_fds(&l);
        P_CHECK(p, vfiod_release(c, l.lease_id) == 0, "release");
        vfiod_close(c);
}

/* After the first holder died: bob's DMA from its IOVA faults. */
static void check_no_mapping_survives(const char *bdf, enum target target, uint64_t iova)
{
        struct fault_arg a = {.bdf = bdf, .target = target, .iova = iova};
        struct child b;
        int kmsg;

        child_start(&b, "bob", client_bob_fault, &a, CHILD_CHECK_FDS);
        child_expect_exact(&b, "own dma ok");
        kmsg = kmsg_open_at_end();
        child_go(&b);
        child_expect_exact(&b, "dma done");
        ck_assert_msg(
            kmsg_fault_at(kmsg, iova & ~UINT64_C(0xfff)) &&
                (say("  SIGKILL; bob leases %s (group): his own container attached%s, "
                     "a DMA from IOVA %#llx faults (kernel: DMAR ... fault addr %#llx)",
                     bdf, target == TARGET_EDU ? ", his own DMA works" : "",
                     (unsigned long long)iova, (unsigned long long)(iova & ~UINT64_C(0xfff))),
                 true),
            "no DMAR fault at %#llx in the kernel log: a mapping survived?",
            (unsigned long long)iova);
        close(kmsg);
        child_end(&b);
}

/* --- kvm: the KVM VFIO device and vfiod's group fds ----------------------- */

static void client_kvm_vfio(struct peer *p, const void *arg)
{
        enum vfiod_mode mode = *(const enum vfiod_mode *)arg;
        struct kvm_create_device cd = {.type = KVM_DEV_TYPE_VFIO};
        struct kvm_device_attr at = {.group = KVM_DEV_VFIO_GROUP};
        struct vfiod_lease l;
        struct vfiod *c;
        int kvm, vm, efd, fd, r;

        P_CHECK(p, vfiod_connect(NULL, &c) == 0, "connect");
        r = vfiod_acquire(c, T.edu[0], 0, mode, &l);
        P_CHECK(p, r == 0, "acquire: %s (%s)", strerror(-r), vfiod_last_error(c));
        P_CHECK(p, l.group_fd >= 0, "no group fd");
        P_CHECK(p, (mode == VFIOD_MODE_GROUP) == (l.container_fd < 0), "container fd %d",
                l.container_fd);
        kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        P_CHECK(p, kvm >= 0, "/dev/kvm: %s", strerror(errno));
        vm = ioctl(kvm, KVM_CREATE_VM, 0);
        P_CHECK(p, vm >= 0, "KVM_CREATE_VM: %s", strerror(errno));
        P_CHECK(p, ioctl(vm, KVM_CREATE_DEVICE, &cd) == 0, "KVM_CREATE_DEVICE: %s",
                strerror(errno));
        at.attr = KVM_DEV_VFIO_GROUP_ADD;
        fd = l.group_fd;
        at.addr = (uintptr_t)&fd;
        P_CHECK(p, ioctl(cd.fd, KVM_SET_DEVICE_ATTR, &at) == 0, "GROUP_ADD: %s", strerror(errno));
        P_CHECK(p, ioctl(cd.fd, KVM_SET_DEVICE_ATTR, &at) < 0 && errno == EEXIST,
                "second GROUP_ADD: %s", strerror(errno));
        efd = eventfd(0, EFD_CLOEXEC);
        fd = efd;
        P_CHECK(p, ioctl(cd.fd, KVM_SET_DEVICE_ATTR, &at) < 0 && errno == EINVAL,
                "GROUP_ADD of an eventfd: %s", strerror(errno));
        close(efd);
        fd = l.group_fd;
        at.attr = KVM_DEV_VFIO_GROUP_DEL;
        P_CHECK(p, ioctl(cd.fd, KVM_SET_DEVICE_ATTR, &at) == 0, "GROUP_DEL: %s", strerror(errno));
        P_CHECK(p, ioctl(cd.fd, KVM_SET_DEVICE_ATTR, &at) < 0 && errno == ENOENT,
                "second GROUP_DEL: %s", strerror(errno));
        /* Added again and left so: the release must not care. */
        at.attr = KVM_DEV_VFIO_GROUP_ADD;
        P_CHECK(p, ioctl(cd.fd, KVM_SET_DEVICE_ATTR, &at) == 0, "GROUP_ADD again: %s",
                strerror(errno));
        p_say(p, "kvm-vfio ok (%s)", vfiod_mode_name(mode));
        close(cd.fd);
        close(vm);
        close(kvm);
        vfiod_lease_close_fds(&l);
        P_CHECK(p, vfiod_release(c, l.lease_id) == 0, "release");
        vfiod_close(c);
}

static void kvm_vfio(enum vfiod_mode mode)
{
        struct child a;
        char want[64];

        find_devices();
        child_start(&a, "alice", client_kvm_vfio, &mode, CHILD_CHECK_FDS | CHILD_INITGROUPS);
        snprintf(want, sizeof(want), "kvm-vfio ok (%s)", vfiod_mode_name(mode));
        child_expect_exact(&a, want);
        child_end(&a);
}

/* The group attached to the container vfiod made (DIRECT). */
START_TEST(test_kvm_vfio_direct)
{
        kvm_vfio(VFIOD_MODE_DIRECT);
}
END_TEST

/* The group attached to no container (GROUP). */
START_TEST(test_kvm_vfio_group)
{
        kvm_vfio(VFIOD_MODE_GROUP);
}
END_TEST

/* --- qemu ------------------------------------------------------------------ */

static void qemu_start(struct run *r, const char *bdf, const char *accel, bool preload)
{
        char machine[64], dev[64], mem[16];
        char *argv[32];
        int n = 0;

        snprintf(machine, sizeof(machine), "q35,accel=%s", accel);
        snprintf(dev, sizeof(dev), "vfio-pci,host=%s", bdf);
        snprintf(mem, sizeof(mem), "%d", GUEST_MB);
        argv[n++] = "vfioctl";
        argv[n++] = "acquire";
        argv[n++] = (char *)bdf;
        if (preload)
                argv[n++] = "--preload";
        argv[n++] = "--";
        argv[n++] = QEMU;
        argv[n++] = "-nodefaults";
        argv[n++] = "-nographic";
        argv[n++] = "-serial";
        argv[n++] = "none";
        argv[n++] = "-S";
        argv[n++] = "-machine";
        argv[n++] = machine;
        argv[n++] = "-m";
        argv[n++] = mem;
        argv[n++] = "-device";
        argv[n++] = dev;
        argv[n++] = "-monitor";
        argv[n++] = "stdio";
        argv[n] = NULL;
        run_start(r, "alice", argv, false);
}

static void qemu_preload(bool kvm)
{
        const char *accel = kvm ? "kvm" : "tcg";
        static struct run r;
        pid_t qemu;
        long lck;

        find_devices();
        say("alice$ vfioctl acquire %s --preload -- " QEMU " -nodefaults -nographic -serial none "
            "-S -machine q35,accel=%s -m %d -device vfio-pci,host=%s -monitor stdio",
            T.edu[0], accel, GUEST_MB, T.edu[0]);
        qemu_start(&r, T.edu[0], accel, true);
        ck_assert_msg(run_wait_for(&r, 0, "(qemu)", 30000), "no monitor prompt:\n%s", r.buf);
        r.buf[r.len] = '\0';
        say_lines(r.buf, "QEMU 7.2");
        r.len = 0; /* the prompt: info pci's answer follows */
        run_send(&r, "info pci\n");
        ck_assert_msg(run_wait_for(&r, 0, "(qemu) ", 10000) &&
                          run_wait_for(&r, 0, "PCI device 1234:11e8", 10000),
                      "info pci shows no 1234:11e8:\n%s", r.buf);
        qemu = child_of(r.pid);
        ck_assert_int_gt(qemu, 0);
        lck = status_kb(qemu, "VmLck");
        fprintf(stderr, "guest-launchers: QEMU (%s) pid %d VmLck %ld kB\n", accel, (int)qemu, lck);
        say_lines(r.buf, "1234:11e8");
        say("  QEMU pid %d: VmLck %ld kB%s", (int)qemu, lck,
            kvm ? (has_anon_fd(qemu, "kvm-vfio") ? ", fd anon_inode:kvm-vfio" : ", no kvm-vfio fd")
                : "");
        /* All of the guest's RAM but the ISA hole (0xa0000-0xfffff: VGA, ROMs), which
         * QEMU does not map for DMA. */
        ck_assert_msg(lck >= GUEST_MB * 1024 - 384, "VmLck %ld kB < the guest's %d MiB", lck,
                      GUEST_MB);
        if (kvm)
                ck_assert_msg(has_anon_fd(qemu, "kvm-vfio"), "QEMU has no kvm-vfio device");
        ck_assert_msg(!strstr(r.buf, "Failed to add group"), "%s", r.buf);
        /* Mid-run: SIGKILL; vfioctl releases. */
        kill_and_reap_program(&r, qemu);
        check_no_mapping_survives(T.edu[0], TARGET_EDU, QEMU_RAM_IOVA);
}

START_TEST(test_qemu_tcg)
{
        qemu_preload(false);
}
END_TEST

START_TEST(test_qemu_kvm)
{
        qemu_preload(true);
}
END_TEST

/* policy 0: edu 0 without --preload (QEMU opens /dev/vfio/N itself); 1: edu 1, bob's only. */
static void qemu_refused(int policy)
{
        static struct run r;
        int status;

        find_devices();
        qemu_start(&r, T.edu[policy], "tcg", policy == 1);
        (void)run_wait_for(&r, 0, "(qemu)", 20000);
        status = run_end(&r);
        ck_assert_msg(!(WIFEXITED(status) && WEXITSTATUS(status) == 0), "status %#x:\n%s", status,
                      r.buf);
        say("alice$ vfioctl acquire %s%s -- " QEMU " ... -device vfio-pci,host=%s ...  (%s)",
            T.edu[policy], policy ? " --preload" : "", T.edu[policy],
            policy ? "a device the policy gives bob only" : "no --preload");
        say_lines(r.buf, policy ? "vfioctl" : "qemu-system");
        ck_assert_msg(!strstr(r.buf, "1234:11e8"), "QEMU has the device:\n%s", r.buf);
        if (policy == 0)
                ck_assert_msg(strstr(r.buf, "failed to open /dev/vfio/") &&
                                  strstr(r.buf, "Permission denied"),
                              "%s", r.buf);
        else /* vfioctl refuses; QEMU never starts */
                ck_assert_msg(strstr(r.buf, "Operation not permitted") && !strstr(r.buf, "QEMU"),
                              "%s", r.buf);
}

START_TEST(test_qemu_refused_without_preload)
{
        qemu_refused(0);
}
END_TEST

START_TEST(test_qemu_refused_by_policy)
{
        qemu_refused(1);
}
END_TEST

/* --- dpdk ------------------------------------------------------------------ */

/* The start of testpmd's DMA memory (--no-huge: the memfd "nohuge", IOVA = VA). */
static uint64_t dpdk_memory(pid_t pid)
{
        char path[64], line[512];
        unsigned long long lo, hi, found = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        /* The one read-write mapping of -m 64 MiB: anonymous or the memfd "nohuge". */
        while (fgets(line, sizeof(line), f)) {
                char perms[8] = "", name[256] = "";

                if (sscanf(line, "%llx-%llx %7s %*s %*s %*s %255[^\n]", &lo, &hi, perms, name) < 3)
                        continue;
                if (hi - lo < (unsigned long long)GUEST_MB << 20 || strncmp(perms, "rw", 2) != 0)
                        continue;
                fprintf(stderr, "guest-launchers: testpmd: %s", line);
                if (!found && (!name[0] || strstr(name, "memfd:nohuge")))
                        found = lo;
        }
        fclose(f);
        return found;
}

static unsigned long long stat_after(const char *buf, const char *key)
{
        const char *at = strstr(buf, key);

        return at ? strtoull(at + strlen(key), NULL, 10) : 0;
}

START_TEST(test_testpmd_preload)
{
        static struct run r;
        char *argv[] = {"vfioctl",
                        "acquire",
                        T.nic,
                        "--preload",
                        "--",
                        TESTPMD,
                        "--lcores",
                        "0@0,1@0",
                        "--no-huge",
                        "-m",
                        "64",
                        "--no-shconf",
                        "--iova-mode=va",
                        "-a",
                        T.nic,
                        "--",
                        "-i",
                        "--total-num-mbufs=2048",
                        NULL};
        unsigned long long tx, rx;
        uint64_t iova;
        size_t from;
        pid_t pmd;

        find_devices();
        argv[2] = argv[14] = T.nic;
        run_start(&r, "alice", argv, true);
        ck_assert_msg(run_wait_for(&r, 0, "testpmd> ", 60000), "no testpmd prompt:\n%s", r.buf);
        pmd = child_of(r.pid);
        ck_assert_int_gt(pmd, 0);
        iova = dpdk_memory(pmd);
        ck_assert_msg(iova != 0, "no 64 MiB mapping in testpmd's /proc/%d/maps", (int)pmd);
        run_send(&r, "set fwd txonly\nstart\n");
        usleep(2000000);
        from = r.len;
        run_send(&r, "show port stats all\n");
        ck_assert_msg(run_wait_for(&r, from, "TX-bytes", 10000), "no stats:\n%s", r.buf);
        tx = stat_after(r.buf + from, "TX-packets:");
        rx = stat_after(r.buf + from, "RX-packets:");
        fprintf(stderr,
                "guest-launchers: testpmd: TX-packets %llu RX-packets %llu, memory at %#llx\n", tx,
                rx, (unsigned long long)iova);
        say("alice$ vfioctl acquire %s --preload -- " TESTPMD " --lcores 0@0,1@0 --no-huge -m 64 "
            "--no-shconf --iova-mode=va -a %s -- -i --total-num-mbufs=2048",
            T.nic, T.nic);
        say_lines(r.buf, "EAL: ");
        say_lines(r.buf, "Port 0: ");
        say("testpmd> set fwd txonly / start / (2 s) / show port stats all");
        say_lines(r.buf + from, "-packets:");
        say("  testpmd pid %d: VmLck %ld kB, DPDK memory (IOVA = VA) at %#llx", (int)pmd,
            status_kb(pmd, "VmLck"), (unsigned long long)iova);
        ck_assert_msg(tx > 0, "no packet sent:\n%s", r.buf + from);
        /* Still forwarding: SIGKILL. */
        kill_and_reap_program(&r, pmd);
        check_no_mapping_survives(T.nic, TARGET_E1000, iova);
}
END_TEST

static Suite *launchers_suite(void)
{
        Suite *s = suite_create("guest-launchers");
        TCase *tc;

        tc = tcase_create("kvm");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_kvm_vfio_direct);
        tcase_add_test(tc, test_kvm_vfio_group);
        suite_add_tcase(s, tc);

        tc = tcase_create("qemu");
        testutil_tcase_fd_checked(tc);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_qemu_refused_without_preload);
        tcase_add_test(tc, test_qemu_refused_by_policy);
        tcase_add_test(tc, test_qemu_tcg);
        tcase_add_test(tc, test_qemu_kvm);
        suite_add_tcase(s, tc);

        tc = tcase_create("dpdk");
        testutil_tcase_fd_checked(tc);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_testpmd_preload);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(launchers_suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
