/* SPDX-License-Identifier: MIT */
/*
 * The policy as the daemon applies it (fake ioctl layer, fake sysfs tree,
 * fake peers): the reason a denial gives, group members, units and groups
 * of the peer, the per-rule quotas in MapDma (EDQUOT, ENOSPC, EPERM),
 * IrqTypes= in SetIrqs, a reload that narrows the quotas of a lease it
 * keeps, and Managed=yes when binding fails.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "proto/envelope.h"
#include "tests/daemon/harness.h"
#include "tests/fakesys.h"
#include "tests/rawclient.h"
#include "tests/testutil.h"

#define BROKERED VFIOD__MODE__MODE_BROKERED
#define DIRECT   VFIOD__MODE__MODE_DIRECT
#define DEV1     "0000:00:01.0"
#define DEV2     "0000:00:02.0"
#define DEV3     "0000:00:03.0"
#define PAGE     4096ull

/* A client whose peer has supplementary groups and a unit (as accept() would read them). */
static int connect_peer(uid_t uid, gid_t gid, gid_t *groups, size_t n_groups, const char *unit,
                        const char *slice)
{
        struct vfiod_peer peer = {.uid = uid,
                                  .gid = gid,
                                  .pid = getpid(),
                                  .groups = groups,
                                  .n_groups = n_groups,
                                  .unit = (char *)unit,
                                  .slice = (char *)slice};
        int sv[2];

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        /* sv[1] moves to the server. */
        ck_assert_int_eq(vfiod_server_add_client_take(H.server, sv[1], &peer), 0);
        h_hello(sv[0], 0);
        return sv[0];
}

/* Acquire; returns the lease id or 0 with the errnum and reason. Closes the fds it got. */
static uint64_t acquire(int fd, const char *bdf, int mode, uint64_t *ret_domain, int *ret_err,
                        char *reason, size_t size)
{
        struct rawclient_acquired got = {0};
        uint64_t id = rawclient_acquire(h_call, fd, bdf, 0, mode, &got);

        *ret_err = got.errnum;
        if (!id) {
                if (reason)
                        snprintf(reason, size, "%s", got.reason);
                return 0;
        }
        h_close_all(got.fds, got.n_fds);
        if (ret_domain)
                *ret_domain = got.domain;
        return id;
}

static int map1(int fd, uint64_t dom, int mfd, uint64_t off, uint64_t iova, uint64_t size,
                char *reason)
{
        Vfiod__MapDma md = VFIOD__MAP_DMA__INIT;
        Vfiod__Envelope env = ENVELOPE(map_dma, &md);
        Vfiod__DmaRange dr = VFIOD__DMA_RANGE__INIT, *p = &dr;
        struct vfiod_msg *m;

        dr.fd_index = 0;
        dr.offset = off;
        dr.iova = iova;
        dr.size = size;
        dr.readable = dr.writable = true;
        md.domain_id = dom;
        md.n_ranges = 1;
        md.ranges = &p;
        m = h_call(fd, &env, &mfd, 1);
        if (m->env->body_case == VFIOD__ENVELOPE__BODY_ERROR) {
                snprintf(reason, 256, "%s", m->env->error->reason);
                return h_error(m);
        }
        ck_assert_int_eq(m->env->body_case, VFIOD__ENVELOPE__BODY_MAP_DMA_REPLY);
        vfiod_msg_free(m);
        return 0;
}

START_TEST(denial_reasons)
{
        char why[256];
        int fd, other, e;

        h_start("[Device theirs]\nMatch=" DEV3 "\nUsers=1001\n"
                "[Device mine]\nMatch=" DEV1 " " DEV3 "\nUsers=1000\nModes=brokered\n");
        h_add_device(DEV1, 1, "vfio-pci");
        h_add_device(DEV2, 1, "vfio-pci"); /* same group as DEV1, in no rule */
        h_add_device(DEV3, 3, "vfio-pci");
        fd = connect_peer(1000, 1000, NULL, 0, NULL, NULL);
        other = connect_peer(1002, 1002, NULL, 0, NULL, NULL);

        /* A mode the rule does not allow: the rule says so. */
        ck_assert_uint_eq(acquire(fd, DEV3, DIRECT, NULL, &e, why, sizeof(why)), 0);
        ck_assert_int_eq(e, EPERM);
        ck_assert_str_eq(why, "the policy does not allow you device '" DEV3 "' in direct mode "
                              "(allowed: brokered): rule 'mine' allows only brokered");
        /* Nobody's rule: other users' rules are not told. */
        ck_assert_uint_eq(acquire(other, DEV3, BROKERED, NULL, &e, why, sizeof(why)), 0);
        ck_assert_int_eq(e, EPERM);
        ck_assert_str_eq(why, "the policy does not allow you device '" DEV3 "' in brokered mode "
                              "(allowed: none): no rule grants you device '" DEV3 "'");
        ck_assert_ptr_null(strstr(why, "theirs"));
        /* Every vfio-pci device of the group must be allowed. */
        ck_assert_uint_eq(acquire(fd, DEV1, BROKERED, NULL, &e, why, sizeof(why)), 0);
        ck_assert_int_eq(e, EPERM);
        ck_assert_str_eq(why, "device '" DEV1 "' shares IOMMU group 1 with '" DEV2 "', which the "
                              "policy does not allow you in brokered mode: no rule grants you "
                              "device '" DEV2 "'");
        ck_assert_uint_ne(acquire(fd, DEV3, BROKERED, NULL, &e, why, sizeof(why)), 0);
        close(fd);
        close(other);
        h_spin();
        h_stop();
}
END_TEST

/*
 * A member bound to a vendor variant of vfio-pci (mlx5_vfio_pci...) is a VFIO device the group
 * fd opens: the policy must allow it, the lease holds it, and the release sanitizes it.
 */
START_TEST(variant_driver_members)
{
        char why[256];
        uint64_t lease;
        int fd, e;

        h_start("[Device mine]\nMatch=" DEV1 " " DEV3 " 0000:00:03.1\nUsers=1000\n");
        h_add_device(DEV1, 1, "vfio-pci");
        h_add_device(DEV2, 1, "foo_vfio_pci"); /* same group as DEV1, in no rule */
        h_add_device(DEV3, 3, "vfio-pci");
        h_add_device("0000:00:03.1", 3, "mlx5_vfio_pci");
        fd = connect_peer(1000, 1000, NULL, 0, NULL, NULL);

        for (int mode = DIRECT; mode <= BROKERED; mode++) {
                char want[256];

                ck_assert_uint_eq(acquire(fd, DEV1, mode, NULL, &e, why, sizeof(why)), 0);
                ck_assert_int_eq(e, EPERM);
                snprintf(want, sizeof(want),
                         "device '" DEV1 "' shares IOMMU group 1 with '" DEV2 "', which the "
                         "policy does not allow you in %s mode: no rule grants you device '" DEV2
                         "'",
                         mode == DIRECT ? "direct" : "brokered");
                ck_assert_str_eq(why, want);
        }
        ck_assert_int_eq(h_state(fd, DEV1), VFIOD__LEASE_STATE__LEASE_STATE_FREE);

        /* Allowed: both devices are opened, held and sanitized at release. */
        fake_kernel_trace_clear();
        lease = acquire(fd, DEV3, DIRECT, NULL, &e, why, sizeof(why));
        ck_assert_msg(lease != 0, "%s", why);
        ck_assert_msg(
            fake_kernel_trace_has("get_device_fd " DEV3, "get_device_fd 0000:00:03.1", NULL),
            "trace: %s", fake_kernel_trace());
        ck_assert_int_eq(h_release(fd, lease), 0);
        ck_assert_msg(fake_kernel_trace_has("unset 3;", "group_open 3;", "container_open",
                                            "set_container 3", "get_device_fd 0000:00:03.1",
                                            "reset 0000:00:03.1", "unset 3;", NULL),
                      "trace: %s", fake_kernel_trace());
        ck_assert_uint_eq(fake_kernel_resets("0000:00:03.1"), 1);
        /* It can be acquired itself, as any VFIO device. */
        ck_assert_int_eq(h_state(fd, "0000:00:03.1"), VFIOD__LEASE_STATE__LEASE_STATE_FREE);
        lease = acquire(fd, "0000:00:03.1", BROKERED, NULL, &e, why, sizeof(why));
        ck_assert_msg(lease != 0, "%s", why);
        ck_assert_int_eq(h_release(fd, lease), 0);
        close(fd);
        h_spin();
        h_stop();
}
END_TEST

START_TEST(units_groups_slices)
{
        gid_t supp[] = {4000, 5000};
        char why[256];
        int a, b, c, d, e;

        h_start("[Device by-unit]\nMatch=" DEV1 "\nUnits=vm@*.service\n"
                "[Device by-group]\nMatch=" DEV2 "\nGroups=5000\n"
                "[Device by-slice]\nMatch=" DEV3 "\nSlices=machine.slice\n");
        h_add_device(DEV1, 1, "vfio-pci");
        h_add_device(DEV2, 2, "vfio-pci");
        h_add_device(DEV3, 3, "vfio-pci");
        a = connect_peer(2000, 2000, NULL, 0, "vm@web.service", "system.slice");
        b = connect_peer(2001, 2001, supp, 2, "session-1.scope", "user-2001.slice");
        c = connect_peer(2002, 2002, NULL, 0, NULL, NULL);
        d = connect_peer(2003, 2003, NULL, 0, "qemu-1.scope", "machine.slice");
        ck_assert_uint_ne(acquire(a, DEV1, DIRECT, NULL, &e, why, sizeof(why)), 0);
        ck_assert_uint_eq(acquire(b, DEV1, DIRECT, NULL, &e, why, sizeof(why)), 0);
        ck_assert_int_eq(e, EPERM);
        ck_assert_uint_ne(acquire(b, DEV2, DIRECT, NULL, &e, why, sizeof(why)), 0);
        ck_assert_uint_eq(acquire(c, DEV3, DIRECT, NULL, &e, why, sizeof(why)), 0);
        ck_assert_int_eq(e, EPERM);
        ck_assert_uint_eq(acquire(a, DEV3, DIRECT, NULL, &e, why, sizeof(why)), 0);
        ck_assert_int_eq(e, EPERM);
        ck_assert_uint_ne(acquire(d, DEV3, DIRECT, NULL, &e, why, sizeof(why)), 0);
        close(a);
        close(b);
        close(c);
        close(d);
        h_spin();
        h_stop();
}
END_TEST

START_TEST(quotas_in_map_dma)
{
        int fd, mfd = h_memfd(4 * PAGE, F_SEAL_SHRINK), e;
        uint64_t dom = 0;
        char why[256];

        h_start("[Device q]\nMatch=" DEV1 "\nUsers=1000\nMaxPinnedBytes=8K\nMaxMappings=2\n"
                "IovaWindows=0x100000-0x1fffff 0x400000-0x400fff\n");
        h_add_device(DEV1, 1, "vfio-pci");
        fd = connect_peer(1000, 1000, NULL, 0, NULL, NULL);
        ck_assert_uint_ne(acquire(fd, DEV1, BROKERED, &dom, &e, why, sizeof(why)), 0);
        ck_assert_int_eq(map1(fd, dom, mfd, 0, 0x100000, PAGE, why), 0);
        /* 4 KiB mapped, 8 KiB more asked: over 8 KiB. */
        ck_assert_int_eq(map1(fd, dom, mfd, 0, 0x200000 - 2 * PAGE, 2 * PAGE, why), EDQUOT);
        ck_assert_str_eq(why, "MaxPinnedBytes=8192 of rule 'q' reached: the domain has 4096 "
                              "bytes mapped, 8192 more asked");
        /* Outside the windows, and across the end of one. */
        ck_assert_int_eq(map1(fd, dom, mfd, 0, 0x300000, PAGE, why), EPERM);
        ck_assert_str_eq(why, "range 0 (IOVA 0x300000, 0x1000 bytes) is outside the "
                              "IovaWindows= of rule 'q': 0x100000-0x1fffff 0x400000-0x400fff");
        ck_assert_int_eq(map1(fd, dom, mfd, 0, 0x1ff000, 2 * PAGE, why), EPERM);
        ck_assert_int_eq(map1(fd, dom, mfd, 0, 0x400000, PAGE, why), 0);
        /* Two mappings: a third is refused whatever its size. */
        ck_assert_int_eq(map1(fd, dom, mfd, 0, 0x101000, PAGE, why), ENOSPC);
        ck_assert_str_eq(why, "MaxMappings=2 of rule 'q' reached: the domain has 2 mapping(s), 1 "
                              "more asked");
        ck_assert_uint_eq(fake_kernel_mappings(), 2);
        close(mfd);
        close(fd);
        h_spin();
        h_stop();
}
END_TEST

START_TEST(irq_types)
{
        int fd, efd = eventfd(0, EFD_CLOEXEC), e;
        uint64_t lease;
        char why[256];

        h_start("[Device i]\nMatch=" DEV1 "\nUsers=1000\nIrqTypes=msi\n");
        h_add_device(DEV1, 1, "vfio-pci");
        fd = connect_peer(1000, 1000, NULL, 0, NULL, NULL);
        lease = acquire(fd, DEV1, BROKERED, NULL, &e, why, sizeof(why));
        ck_assert_uint_ne(lease, 0);
        ck_assert_int_eq(h_set_irqs(fd, lease, VFIO_PCI_MSIX_IRQ_INDEX, 1, efd, why), EPERM);
        ck_assert_str_eq(why, "the policy (rule 'i') allows you only these interrupts: msi; not "
                              "MSI-X");
        ck_assert_uint_eq(fake_kernel_irq_assigned(DEV1, VFIO_PCI_MSIX_IRQ_INDEX), 0);
        ck_assert_int_eq(h_set_irqs(fd, lease, VFIO_PCI_INTX_IRQ_INDEX, 1, efd, why), EPERM);
        ck_assert_int_eq(h_set_irqs(fd, lease, VFIO_PCI_MSI_IRQ_INDEX, 1, efd, why), 0);
        ck_assert_uint_eq(fake_kernel_irq_assigned(DEV1, VFIO_PCI_MSI_IRQ_INDEX), 1);
        /* Turning an index off is always allowed. */
        ck_assert_int_eq(h_set_irqs(fd, lease, VFIO_PCI_MSIX_IRQ_INDEX, 0, -1, why), 0);
        close(efd);
        close(fd);
        h_spin();
        h_stop();
}
END_TEST

/* A reload that still allows a lease gives it the new rules' quotas. */
START_TEST(reload_narrows_quotas)
{
        int fd, admin, mfd = h_memfd(4 * PAGE, F_SEAL_SHRINK), e;
        uint64_t dom = 0, lease;
        char why[256];

        h_start("[Device q]\nMatch=" DEV1 "\nUsers=1000\nMaxMappings=4\n");
        h_add_device(DEV1, 1, "vfio-pci");
        fd = connect_peer(1000, 1000, NULL, 0, NULL, NULL);
        admin = connect_peer(0, 0, NULL, 0, NULL, NULL);
        lease = acquire(fd, DEV1, BROKERED, &dom, &e, why, sizeof(why));
        ck_assert_uint_ne(lease, 0);
        ck_assert_int_eq(map1(fd, dom, mfd, 0, 0x100000, PAGE, why), 0);
        testutil_write_file(H.root, "vfiod.conf",
                            "[Device q2]\nMatch=" DEV1 "\nUsers=1000\nMaxMappings=1\n");
        h_reload(admin, 0);
        ck_assert_int_eq(map1(fd, dom, mfd, 0, 0x101000, PAGE, why), ENOSPC);
        ck_assert_ptr_nonnull(strstr(why, "MaxMappings=1 of rule 'q2'"));
        /* A drop-in takes the user out: the lease is revoked (no events: at once). */
        testutil_write_file(H.root, "vfiod.conf.d/90-off.conf", "[Device q2]\nUsers=\n");
        h_reload(admin, 1);
        ck_assert(!fake_kernel_group_attached(1));
        ck_assert_uint_eq(fake_kernel_mappings(), 0);
        close(mfd);
        close(fd);
        close(admin);
        h_spin();
        h_stop();
}
END_TEST

/* Managed=yes on a device vfio-pci does not hold: vfiod tries to bind it; the fake cannot. */
START_TEST(managed_bind_fails)
{
        char why[256];
        int fd, e;

        h_start("[Device m]\nMatch=" DEV1 "\nUsers=1000\nManaged=yes\n"
                "[Device u]\nMatch=" DEV2 "\nUsers=1000\n");
        h_add_device(DEV1, 1, "uio_pci_generic");
        h_add_device(DEV2, 2, NULL);
        testutil_write_file(H.root, "sys/bus/pci/drivers_probe", "");
        testutil_write_file(H.root, "sys/devices/pci0000:00/" DEV1 "/driver_override", "(null)\n");
        testutil_write_file(H.root, "sys/bus/pci/drivers/uio_pci_generic/unbind", "");
        fd = connect_peer(1000, 1000, NULL, 0, NULL, NULL);
        ck_assert_uint_eq(acquire(fd, DEV2, BROKERED, NULL, &e, why, sizeof(why)), 0);
        ck_assert_int_eq(e, ENXIO);
        ck_assert_str_eq(why, "device '" DEV2 "' is not bound to vfio-pci (no driver) and rule "
                              "'u' does not say Managed=yes");
        /* The fake sysfs tree does not move the driver link: the bind fails and is undone. */
        ck_assert_uint_eq(acquire(fd, DEV1, BROKERED, NULL, &e, why, sizeof(why)), 0);
        ck_assert_int_eq(e, ENXIO);
        ck_assert_str_eq(why, "binding '" DEV1 "' to vfio-pci failed: No such device or address");
        ck_assert_uint_eq(vfiod_registry_count(H.server->devices, VFIOD_GROUP_LEASED), 0);
        {
                /* The override it wrote is cleared again. */
                char p[4200], buf[64] = "";
                FILE *f;

                snprintf(p, sizeof(p), "%s/sys/devices/pci0000:00/" DEV1 "/driver_override",
                         H.root);
                f = fopen(p, "re");
                ck_assert_ptr_nonnull(f);
                ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
                fclose(f);
                ck_assert_str_eq(buf, "\n");
        }
        close(fd);
        h_spin();
        h_stop();
}
END_TEST

/* Runs vfiod --sysfs-root ROOT --check-config [PATH] (the daemon built on the fake ioctl
 * layer); output in out. */
static int run_check_at(const char *root, const char *path, char *out, size_t size)
{
        char cmd[8192];
        FILE *f;
        size_t n;
        int status;

        snprintf(cmd, sizeof(cmd), "'%s' --sysfs-root '%s' --check-config %s%s%s 2>&1",
                 VFIOD_FAKE_PATH, root, path ? "'" : "", path ? path : "", path ? "'" : "");
        f = popen(cmd, "re");
        ck_assert_ptr_nonnull(f);
        n = fread(out, 1, size - 1, f);
        out[n] = '\0';
        status = pclose(f);
        ck_assert(WIFEXITED(status));
        return WEXITSTATUS(status);
}

static int run_check(const char *path, char *out, size_t size)
{
        return run_check_at(H.root, path, out, size);
}

/* vfiod --check-config: the rules, the devices each matches under --sysfs-root; file:line. */
START_TEST(check_config_cli)
{
        char out[16384], want[16384];

        h_start(NULL);
        h_add_device(DEV1, 1, "vfio-pci");
        h_add_device(DEV2, 2, NULL);
        testutil_write_file(H.root, "vfiod.conf",
                            "[Device edus]\nMatchVendor=1234:11e8\nUsers=1000\n"
                            "[Device none]\nMatchClass=0x0c03\nUsers=1000\n");
        testutil_write_file(H.root, "vfiod.conf.d/10-more.conf", "[Device edus]\nMaxMappings=5\n");
        ck_assert_int_eq(run_check(H.conf, out, sizeof(out)), 0);
        snprintf(want, sizeof(want), "%s: valid, 2 device rule(s)\n", H.conf);
        ck_assert_msg(strncmp(out, want, strlen(want)) == 0, "%s", out);
        snprintf(want, sizeof(want), "[Device edus] (%s:1)\n", H.conf);
        ck_assert_msg(strstr(out, want), "%s", out);
        ck_assert_msg(strstr(out, "10-more.conf\n"), "%s", out);
        /* the key the drop-in overrides, with the drop-in's file:line */
        snprintf(want, sizeof(want), "  MaxMappings=5 (%s/vfiod.conf.d/10-more.conf:2)\n", H.root);
        ck_assert_msg(strstr(out, want), "%s", out);
        ck_assert_msg(strstr(out, "  matches " DEV1 " (1234:11e8, class 0x00ff00, IOMMU group 1, "
                                  "driver vfio-pci)\n"),
                      "%s", out);
        ck_assert_msg(strstr(out, "  matches " DEV2 " (1234:11e8, class 0x00ff00, IOMMU group 2, "
                                  "no driver): not leasable until bound to vfio-pci\n"),
                      "%s", out);
        ck_assert_msg(strstr(out, "[Device none]") &&
                          strstr(out, "  matches no device on this machine\n"),
                      "%s", out);
        /* Invalid: every error with its file and line, exit 1. */
        testutil_write_file(H.root, "vfiod.conf.d/10-more.conf",
                            "[Device edus]\nMaxMappings=0\nSpeed=fast\n");
        ck_assert_int_eq(run_check(H.conf, out, sizeof(out)), 1);
        snprintf(want, sizeof(want),
                 "%s/vfiod.conf.d/10-more.conf:2: MaxMappings=: bad value '0' (a number from 1, or "
                 "infinity)\n%s/vfiod.conf.d/10-more.conf:3: unknown key 'Speed' in [Device edus]\n"
                 "%s: invalid\n",
                 H.root, H.root, H.conf);
        ck_assert_str_eq(out, want);
        h_stop();
}
END_TEST

/* Users= and Units= in one rule: alice's VMs, not alice's shell. */
START_TEST(who_and_where_enforced)
{
        char why[256];
        int shell, vm, e;

        h_start("[Device vms]\nMatch=" DEV1 "\nUsers=1000\nUnits=vm@*.service\n");
        h_add_device(DEV1, 1, "vfio-pci");
        shell = connect_peer(1000, 1000, NULL, 0, "session-2.scope", "user-1000.slice");
        vm = connect_peer(1000, 1000, NULL, 0, "vm@web.service", "system.slice");
        ck_assert_uint_eq(acquire(shell, DEV1, DIRECT, NULL, &e, why, sizeof(why)), 0);
        ck_assert_int_eq(e, EPERM);
        ck_assert_msg(strstr(why, "no rule grants you device '" DEV1 "'"), "%s", why);
        ck_assert_uint_ne(acquire(vm, DEV1, DIRECT, NULL, &e, why, sizeof(why)), 0);
        close(shell);
        close(vm);
        h_spin();
        h_stop();
}
END_TEST

/* A broad rule beside a narrow one for the same device and peer: the narrow one governs. */
START_TEST(most_specific_enforced)
{
        int fd, mfd = h_memfd(4 * PAGE, F_SEAL_SHRINK), e;
        char why[256], out[16384], want[10000];
        uint64_t dom = 0;

        h_start("[Device all]\nMatchClass=0x00\nUsers=64001\n"
                "[Device vf]\nMatch=" DEV1 "\nUsers=64001\nModes=brokered\n"
                "IovaWindows=0x100000-0x1fffff\n");
        h_add_device(DEV1, 1, "vfio-pci");
        h_add_device(DEV2, 2, "vfio-pci");
        fd = connect_peer(64001, 64001, NULL, 0, NULL, NULL);
        ck_assert_uint_eq(acquire(fd, DEV1, DIRECT, NULL, &e, why, sizeof(why)), 0);
        ck_assert_int_eq(e, EPERM);
        ck_assert_str_eq(why, "the policy does not allow you device '" DEV1 "' in direct mode "
                              "(allowed: brokered): rule 'vf' allows only brokered; less specific "
                              "rules do not count here: 'all'");
        ck_assert_uint_ne(acquire(fd, DEV1, BROKERED, &dom, &e, why, sizeof(why)), 0);
        ck_assert_int_eq(map1(fd, dom, mfd, 0, 0, PAGE, why), EPERM);
        ck_assert_msg(strstr(why, "outside the IovaWindows= of rule 'vf'"), "%s", why);
        /* the broad rule still gives what nothing narrower speaks of */
        ck_assert_uint_ne(acquire(fd, DEV2, DIRECT, NULL, &e, why, sizeof(why)), 0);
        /* and the checker says the broad rule would have widened the narrow one */
        ck_assert_int_eq(run_check(H.conf, out, sizeof(out)), 0);
        snprintf(
            want, sizeof(want),
            "warning: %s:1: [Device all] would give user 64001 on " DEV1 " more than [Device "
            "vf] (%s:4) allows (direct group mode, no IovaWindows=): [Device vf] is more specific "
            "(Match=) and governs there\n",
            H.conf, H.conf);
        ck_assert_msg(strstr(out, want), "%s", out);
        close(mfd);
        close(fd);
        h_spin();
        h_stop();
}
END_TEST

/* MaxPinnedBytesPerUser= of a rule: every connection of the uid, every domain under the rule. */
START_TEST(per_user_quota_enforced)
{
        int a, b, mfd = h_memfd(4 * PAGE, F_SEAL_SHRINK), e;
        uint64_t da = 0, db = 0, dc = 0;
        char why[256];

        h_start("[Device vfs]\nMatch=" DEV1 " " DEV2 "\nUsers=1000\n"
                "MaxPinnedBytesPerUser=8K\n"
                "[Device other]\nMatch=" DEV3 "\nUsers=1000\n");
        h_add_device(DEV1, 1, "vfio-pci");
        h_add_device(DEV2, 2, "vfio-pci");
        h_add_device(DEV3, 3, "vfio-pci");
        a = connect_peer(1000, 1000, NULL, 0, NULL, NULL);
        b = connect_peer(1000, 1000, NULL, 0, NULL, NULL);
        ck_assert_uint_ne(acquire(a, DEV1, BROKERED, &da, &e, why, sizeof(why)), 0);
        ck_assert_uint_ne(acquire(b, DEV2, BROKERED, &db, &e, why, sizeof(why)), 0);
        ck_assert_int_eq(map1(a, da, mfd, 0, 0x100000, PAGE, why), 0);
        /* 4 KiB mapped by uid 1000 under 'vfs' on another connection: 8 KiB more is over */
        ck_assert_int_eq(map1(b, db, mfd, 0, 0x100000, 2 * PAGE, why), EDQUOT);
        ck_assert_str_eq(why, "MaxPinnedBytesPerUser=8192 of rule 'vfs' reached: uid 1000 has "
                              "4096 bytes mapped under it, 8192 more asked");
        ck_assert_int_eq(map1(b, db, mfd, 0, 0x100000, PAGE, why), 0);
        /* another rule's device is not counted */
        ck_assert_uint_ne(acquire(b, DEV3, BROKERED, &dc, &e, why, sizeof(why)), 0);
        ck_assert_int_eq(map1(b, dc, mfd, 0, 0x100000, 4 * PAGE, why), 0);
        close(mfd);
        close(a);
        close(b);
        h_spin();
        h_stop();
}
END_TEST

/* --check-config without a path and no default file: the daemon's answer, the empty policy. */
START_TEST(check_config_default_missing)
{
        char out[16384];

        if (access(VFIOD_DEFAULT_CONFIG, F_OK) == 0) {
                fprintf(stderr, "%s exists: check_config_default_missing skipped\n",
                        VFIOD_DEFAULT_CONFIG);
                return;
        }
        h_start(NULL);
        ck_assert_int_eq(run_check(NULL, out, sizeof(out)), 0);
        ck_assert_msg(strstr(out, "notice: " VFIOD_DEFAULT_CONFIG " does not exist: the empty "
                                  "policy, nobody may lease any device (as vfiod would run)\n"),
                      "%s", out);
        ck_assert_msg(strstr(out, VFIOD_DEFAULT_CONFIG ": valid, 0 device rule(s)\n"), "%s", out);
        ck_assert_msg(!strstr(out, "invalid"), "%s", out);
        /* an explicit path that does not exist is still an error */
        ck_assert_int_eq(run_check("/nonexistent/vfiod.conf", out, sizeof(out)), 1);
        h_stop();
}
END_TEST

/* The checker on a policy with an overlap, part of a group and a quota that does not apply. */
START_TEST(check_config_warnings_cli)
{
        char out[16384], want[10000];

        h_start(NULL);
        h_add_device(DEV1, 1, "vfio-pci");
        h_add_device(DEV2, 1, "vfio-pci");
        h_add_device(DEV3, 3, "vfio-pci");
        testutil_write_file(H.root, "vfiod.conf",
                            "[Device half]\nMatch=" DEV1 "\nUsers=64001\nModes=brokered\n"
                            "[Device direct]\nMatch=" DEV3 "\nUsers=64001\nModes=direct\n"
                            "MaxPinnedBytes=1G\n"
                            "[Device broad]\nMatchVendor=1234:*\nUsers=64001\nModes=direct\n");
        ck_assert_int_eq(run_check(H.conf, out, sizeof(out)), 0);
        snprintf(want, sizeof(want),
                 "warning: %s:1: [Device half] covers part of IOMMU group 1: it matches " DEV1
                 " but not " DEV2 " (driver vfio-pci), which every Acquire of the group needs and "
                 "no rule gives the same peers\n",
                 H.conf);
        ck_assert_msg(strstr(out, want), "%s", out);
        /* MaxPinnedBytes= on a direct rule is its holder's RLIMIT_MEMLOCK: no warning. */
        ck_assert_msg(!strstr(out, "[Device direct] MaxPinnedBytes="), "%s", out);
        snprintf(want, sizeof(want),
                 "warning: %s:10: [Device broad] would give user 64001 on " DEV1 " more than "
                 "[Device half] (%s:1) allows (direct mode)",
                 H.conf, H.conf);
        ck_assert_msg(strstr(out, want), "%s", out);
        h_stop();
}
END_TEST

/*
 * The machine of vfiod.conf(5) CHECKS: a GPU with its audio function (group
 * 13), a NIC on its own driver (group 20), two of its VFs on vfio-pci (group
 * 21). Made at run time: a source tree (or its dist tarball, whose tar
 * follows links) cannot carry sysfs's links.
 */
static char *check_config_machine(void)
{
        static const struct {
                const char *bdf, *vendor, *device, *class, *driver;
                int group;
        } devs[] = {
            {"0000:01:00.0", "0x10de", "0x1eb8", "0x030000", "vfio-pci", 13},
            {"0000:01:00.1", "0x10de", "0x10f8", "0x040300", "vfio-pci", 13},
            {"0000:03:00.0", "0x8086", "0x10fb", "0x020000", "ixgbe", 20},
            {"0000:03:10.1", "0x8086", "0x10ed", "0x020000", "vfio-pci", 21},
            {"0000:03:10.3", "0x8086", "0x10ed", "0x020000", "vfio-pci", 21},
        };
        char *root = testutil_mkdtemp("check-config-example");

        for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
                const char *attrs[][2] = {{"vendor", devs[i].vendor},
                                          {"device", devs[i].device},
                                          {"class", devs[i].class}};

                ck_assert_int_eq(fakesys_add_pci(root, devs[i].bdf, devs[i].group, devs[i].driver),
                                 0);
                for (size_t k = 0; k < 3; k++) {
                        char rel[128], text[16];

                        snprintf(rel, sizeof(rel), "sys/devices/pci0000:00/%s/%s", devs[i].bdf,
                                 attrs[k][0]);
                        snprintf(text, sizeof(text), "%s\n", attrs[k][1]);
                        ck_assert_int_eq(fakesys_write(root, rel, text), 0);
                }
        }
        return root;
}

/* The example of vfiod.conf(5) CHECKS: an overlap, part of a group, a quota that does not apply. */
START_TEST(check_config_example)
{
        char *root = check_config_machine();
        char out[16384];

        ck_assert_int_eq(run_check_at(root,
                                      VFIOD_SRCDIR "/tests/daemon/check-config-example/vfiod.conf",
                                      out, sizeof(out)),
                         0);
        testutil_rmtree(root);
        free(root);
        ck_assert_msg(strstr(out, "/vfiod.conf: valid, 4 device rule(s)\n"), "%s", out);
        ck_assert_msg(strstr(out, "  Condition: user 64001 and unit dpdk@*.service\n"), "%s", out);
        ck_assert_msg(strstr(out,
                             "  MaxPinnedBytes=268435456 (" VFIOD_SRCDIR
                             "/tests/daemon/check-config-example/vfiod.conf.d/50-lab.conf:3)\n"),
                      "%s", out);
        ck_assert_msg(strstr(out,
                             "/vfiod.conf:19: [Device nics] widens [Device vf] (" VFIOD_SRCDIR
                             "/tests/daemon/check-config-example/vfiod.conf:10) on "
                             "0000:03:10.1 for user 64001 (direct group mode, no MaxPinnedBytes=, "
                             "no IovaWindows=): [Device vf], more specific (Match=), governs "
                             "only where its condition holds (user 64001 and unit "
                             "dpdk@*.service); elsewhere [Device nics] does\n"),
                      "%s", out);
        ck_assert_msg(strstr(out, "/vfiod.conf:26: [Device gpu] covers part of IOMMU group 13: it "
                                  "matches 0000:01:00.0 but not 0000:01:00.1 (driver vfio-pci)"),
                      "%s", out);
        ck_assert_msg(strstr(out, "/vfiod.conf:30: [Device gpu] MaxMappings= applies to brokered "
                                  "mode only"),
                      "%s", out);
        ck_assert_msg(strstr(out, "/vfiod.conf:33: [Device old-fpga] matches no device on this "
                                  "machine\n"),
                      "%s", out);
}
END_TEST

/* The whole file at path (free it). */
static char *read_text(const char *path)
{
        FILE *f = fopen(path, "re");
        char *text;
        long size;

        ck_assert_msg(f != NULL, "%s", path);
        ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
        size = ftell(f);
        rewind(f);
        text = calloc(1, (size_t)size + 1);
        ck_assert_ptr_nonnull(text);
        ck_assert_int_eq(fread(text, 1, (size_t)size, f), size);
        fclose(f);
        return text;
}

/* Who may connect: the socket unit, vfiod(8) and vfiod.conf(5) tell one story. */
START_TEST(socket_access_documented)
{
        char *unit = read_text(VFIOD_SRCDIR "/systemd/vfiod.socket");
        char *conf5 = read_text(VFIOD_SRCDIR "/man/vfiod.conf.5");
        char *man8 = read_text(VFIOD_SRCDIR "/man/vfiod.8");
        char *access, *end;

        ck_assert_ptr_nonnull(strstr(unit, "SocketMode=0660\n"));
        ck_assert_ptr_nonnull(strstr(unit, "SocketGroup=vfiod-users\n"));
        access = strstr(conf5, "\n.SH ACCESS\n");
        ck_assert_ptr_nonnull(access);
        end = strstr(access + 1, "\n.SH ");
        ck_assert_ptr_nonnull(end);
        *end = '\0';
        /* vfiod.conf(5) says who can connect at all, as the unit does */
        ck_assert_ptr_nonnull(strstr(access, "vfiod\\-users"));
        ck_assert_ptr_nonnull(strstr(access, "0660"));
        ck_assert_ptr_nonnull(strstr(access, "0666"));
        /* vfiod(8) says the same of its own socket, and no longer that modes do not matter */
        ck_assert_ptr_nonnull(strstr(man8, "vfiod\\-users"));
        ck_assert_ptr_null(strstr(man8, "not by file modes"));
        ck_assert_ptr_nonnull(strstr(man8, ".BR vfiod.conf (5)\nACCESS"));
        free(unit);
        free(conf5);
        free(man8);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("daemon-policy-enforced");
        TCase *tc = tcase_create("enforced");

        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, denial_reasons);
        tcase_add_test(tc, variant_driver_members);
        tcase_add_test(tc, units_groups_slices);
        tcase_add_test(tc, quotas_in_map_dma);
        tcase_add_test(tc, irq_types);
        tcase_add_test(tc, reload_narrows_quotas);
        tcase_add_test(tc, managed_bind_fails);
        tcase_add_test(tc, check_config_cli);
        tcase_add_test(tc, who_and_where_enforced);
        tcase_add_test(tc, most_specific_enforced);
        tcase_add_test(tc, per_user_quota_enforced);
        tcase_add_test(tc, check_config_default_missing);
        tcase_add_test(tc, check_config_warnings_cli);
        tcase_add_test(tc, check_config_example);
        tcase_add_test(tc, socket_access_documented);
        suite_add_tcase(s, tc);
        return testutil_run_suite(s);
}
