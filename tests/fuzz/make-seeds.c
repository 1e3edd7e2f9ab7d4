/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpora of the fuzz targets: `make-seeds DIR` fills
 * DIR/dispatch (one file per script, see fuzz.h: a valid envelope of every
 * request body, good and bad, with the fds it needs) and DIR/config (valid
 * and invalid configuration files). `make fuzz-seeds` runs it on
 * $(srcdir)/tests/fuzz/corpus; the output is checked in.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto/envelope.h"
#include "proto/transport.h"
#include "tests/fuzz/fuzz.h"

static const char *outdir;

struct script {
        uint8_t buf[8192];
        size_t len;
};

static void script_begin(struct script *s, unsigned flags)
{
        s->len = 0;
        s->buf[s->len++] = (uint8_t)flags;
}

/* One record: env packed, with n_fds fds of the given kinds. */
static void script_add(struct script *s, const Vfiod__Envelope *env, size_t n_fds,
                       const unsigned *kinds)
{
        size_t len = vfiod__envelope__get_packed_size(env);
        unsigned spec = (unsigned)n_fds;

        for (size_t i = 0; i < n_fds; i++)
                spec |= kinds[i] << (2 + 2 * i);
        if (s->len + 3 + len > sizeof(s->buf))
                abort();
        s->buf[s->len++] = (uint8_t)(len & 0xff);
        s->buf[s->len++] = (uint8_t)(len >> 8);
        s->buf[s->len++] = (uint8_t)spec;
        s->len += vfiod__envelope__pack(env, s->buf + s->len);
}

static void script_add_bytes(struct script *s, const void *bytes, size_t len)
{
        s->buf[s->len++] = (uint8_t)(len & 0xff);
        s->buf[s->len++] = (uint8_t)(len >> 8);
        s->buf[s->len++] = 0;
        memcpy(s->buf + s->len, bytes, len);
        s->len += len;
}

static void write_file(const char *sub, const char *name, const void *data, size_t len)
{
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", outdir, sub);
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                perror(path);
                exit(EXIT_FAILURE);
        }
        snprintf(path, sizeof(path), "%s/%s/%s", outdir, sub, name);
        f = fopen(path, "wb");
        if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
                perror(path);
                exit(EXIT_FAILURE);
        }
}

static void script_write(const struct script *s, const char *name)
{
        write_file("dispatch", name, s->buf, s->len);
}

#define ENV(var, field, msg)                        \
        Vfiod__Envelope var = ENVELOPE(field, msg); \
        var.id = 10

static void one(const char *name, unsigned flags, const Vfiod__Envelope *env, size_t n_fds,
                const unsigned *kinds)
{
        struct script s;

        script_begin(&s, flags);
        script_add(&s, env, n_fds, kinds);
        script_write(&s, name);
}

static void dispatch_seeds(void)
{
        static const unsigned memfd[] = {FUZZ_FD_SEALED_MEMFD, FUZZ_FD_SEALED_MEMFD};
        static const unsigned efd[] = {FUZZ_FD_EVENTFD, FUZZ_FD_EVENTFD, FUZZ_FD_EVENTFD};
        static const unsigned wrong[] = {FUZZ_FD_PIPE};
        static const unsigned unsealed[] = {FUZZ_FD_MEMFD};
        Vfiod__Hello hello = VFIOD__HELLO__INIT;
        Vfiod__ListDevices ld = VFIOD__LIST_DEVICES__INIT, ld1 = VFIOD__LIST_DEVICES__INIT;
        Vfiod__CreateDomain cd = VFIOD__CREATE_DOMAIN__INIT;
        Vfiod__DestroyDomain dd = VFIOD__DESTROY_DOMAIN__INIT;
        Vfiod__Acquire acq = VFIOD__ACQUIRE__INIT, acq3 = VFIOD__ACQUIRE__INIT;
        Vfiod__Release rel = VFIOD__RELEASE__INIT;
        Vfiod__Reset rst = VFIOD__RESET__INIT;
        Vfiod__DmaRange r0 = VFIOD__DMA_RANGE__INIT, r1 = VFIOD__DMA_RANGE__INIT;
        Vfiod__DmaRange *ranges[] = {&r0, &r1};
        Vfiod__MapDma map = VFIOD__MAP_DMA__INIT;
        Vfiod__IovaRange u0 = VFIOD__IOVA_RANGE__INIT;
        Vfiod__IovaRange *uranges[] = {&u0};
        Vfiod__UnmapDma unmap = VFIOD__UNMAP_DMA__INIT;
        Vfiod__SetIrqs irq = VFIOD__SET_IRQS__INIT, irqb = VFIOD__SET_IRQS__INIT,
                       irqn = VFIOD__SET_IRQS__INIT, irqu = VFIOD__SET_IRQS__INIT;
        int32_t evs[] = {0, 1, -1, 2};
        int32_t ev_unmask[] = {0};
        protobuf_c_boolean bools[] = {1, 0};
        Vfiod__ListLeases ll = VFIOD__LIST_LEASES__INIT;
        Vfiod__Stats st = VFIOD__STATS__INIT;
        Vfiod__Revoke rv = VFIOD__REVOKE__INIT;
        Vfiod__ReloadPolicy rp = VFIOD__RELOAD_POLICY__INIT;
        Vfiod__Ok ok = VFIOD__OK__INIT;
        struct script s;

        hello.major = VFIOD_PROTO_VERSION_MAJOR;
        hello.capabilities = 0xf;
        {
                ENV(e, hello, &hello);
                one("hello", 0, &e, 0, NULL);
                hello.max_datagram = 64;
                hello.max_fds = 1;
                one("hello-small-limits", 0, &e, 0, NULL);
                hello.max_datagram = hello.max_fds = 0;
                hello.major = 2;
                one("hello-major-2", 0, &e, 0, NULL);
                hello.major = VFIOD_PROTO_VERSION_MAJOR;
        }
        {
                ENV(e, list_devices, &ld);
                one("list-devices", FUZZ_HELLO, &e, 0, NULL);
                one("list-devices-before-hello", 0, &e, 0, NULL);
                e.id = 0;
                one("list-devices-id-0", FUZZ_HELLO, &e, 0, NULL);
                ld1.device = (char *)"0000:00:03.0";
                e.list_devices = &ld1;
                e.id = 10;
                one("list-devices-one", FUZZ_HELLO, &e, 0, NULL);
        }
        {
                ENV(e, create_domain, &cd);
                one("create-domain", FUZZ_HELLO, &e, 0, NULL);
                cd.iommu_type = VFIOD__IOMMU_TYPE__IOMMU_TYPE_SPAPR_TCE;
                one("create-domain-spapr", FUZZ_HELLO, &e, 0, NULL);
        }
        {
                ENV(e, destroy_domain, &dd);
                dd.domain_id = 1;
                one("destroy-domain-busy", FUZZ_ACQUIRE, &e, 0, NULL);
        }
        {
                ENV(e, acquire, &acq);
                acq.device = (char *)"0000:00:02.0";
                acq.mode = VFIOD__MODE__MODE_DIRECT;
                one("acquire-direct", FUZZ_HELLO, &e, 0, NULL);
                acq.mode = VFIOD__MODE__MODE_BROKERED;
                acq.domain_id = 1;
                one("acquire-into-domain", FUZZ_ACQUIRE, &e, 0, NULL);
                acq3.device = (char *)"0000:00:04.0";
                acq3.mode = VFIOD__MODE__MODE_BROKERED;
                e.acquire = &acq3;
                one("acquire-group-of-two", FUZZ_HELLO, &e, 0, NULL);
                acq3.device = (char *)"0000:00:05.0";
                one("acquire-not-vfio", FUZZ_HELLO, &e, 0, NULL);
        }
        {
                ENV(e, release, &rel);
                rel.lease_id = 1;
                one("release", FUZZ_ACQUIRE, &e, 0, NULL);
        }
        {
                ENV(e, reset, &rst);
                rst.lease_id = 1;
                one("reset", FUZZ_ACQUIRE, &e, 0, NULL);
        }
        {
                ENV(e, map_dma, &map);
                map.domain_id = 1;
                map.n_ranges = 2;
                map.ranges = ranges;
                r0.fd_index = 0;
                r0.iova = 0x100000;
                r0.size = 0x2000;
                r0.readable = r0.writable = 1;
                r1.fd_index = 1;
                r1.offset = 0x1000;
                r1.iova = 0x200000;
                r1.size = 0x1000;
                r1.readable = 1;
                one("map-dma", FUZZ_ACQUIRE, &e, 2, memfd);
                map.n_ranges = 1;
                one("map-dma-pipe", FUZZ_ACQUIRE, &e, 1, wrong);
                one("map-dma-unsealed", FUZZ_ACQUIRE, &e, 1, unsealed);

                /* Map, unmap, release, in one connection. */
                script_begin(&s, FUZZ_ACQUIRE);
                script_add(&s, &e, 1, memfd);
                {
                        ENV(u, unmap_dma, &unmap);
                        unmap.domain_id = 1;
                        unmap.n_ranges = 1;
                        unmap.ranges = uranges;
                        u0.iova = 0x100000;
                        u0.size = 0x2000;
                        u.id = 11;
                        script_add(&s, &u, 0, NULL);
                        one("unmap-dma-nothing", FUZZ_ACQUIRE, &u, 0, NULL);
                }
                {
                        ENV(r, release, &rel);
                        r.id = 12;
                        script_add(&s, &r, 0, NULL);
                }
                script_write(&s, "map-unmap-release");
        }
        {
                ENV(e, set_irqs, &irq);
                irq.lease_id = 1;
                irq.index = VFIOD__IRQ_INDEX__IRQ_INDEX_MSIX;
                irq.start = 1;
                irq.count = 4;
                irq.action = VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER;
                irq.data = VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD;
                irq.n_eventfds = 4;
                irq.eventfds = evs;
                one("set-irqs-eventfds", FUZZ_ACQUIRE, &e, 3, efd);
                one("set-irqs-pipe", FUZZ_ACQUIRE, &e, 1, wrong);

                irqb.lease_id = 1;
                irqb.index = VFIOD__IRQ_INDEX__IRQ_INDEX_MSIX;
                irqb.count = 2;
                irqb.action = VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER;
                irqb.data = VFIOD__IRQ_DATA__IRQ_DATA_BOOL;
                irqb.n_bools = 2;
                irqb.bools = bools;
                e.set_irqs = &irqb;
                one("set-irqs-bools", FUZZ_ACQUIRE, &e, 0, NULL);

                irqn.lease_id = 1;
                irqn.index = VFIOD__IRQ_INDEX__IRQ_INDEX_MSIX;
                irqn.action = VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER;
                e.set_irqs = &irqn;
                one("set-irqs-disable", FUZZ_ACQUIRE, &e, 0, NULL);
                irqn.index = VFIOD__IRQ_INDEX__IRQ_INDEX_REQ;
                one("set-irqs-req", FUZZ_ACQUIRE, &e, 0, NULL);

                irqu.lease_id = 1;
                irqu.index = VFIOD__IRQ_INDEX__IRQ_INDEX_INTX;
                irqu.count = 1;
                irqu.action = VFIOD__IRQ_ACTION__IRQ_ACTION_UNMASK;
                irqu.data = VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD;
                irqu.n_eventfds = 1;
                irqu.eventfds = ev_unmask;
                e.set_irqs = &irqu;
                one("set-irqs-intx-unmask", FUZZ_ACQUIRE, &e, 1, efd);
        }
        {
                ENV(e, list_leases, &ll);
                one("list-leases-admin", FUZZ_ACQUIRE | FUZZ_ADMIN, &e, 0, NULL);
                one("list-leases-not-admin", FUZZ_ACQUIRE, &e, 0, NULL);
        }
        {
                ENV(e, stats, &st);
                one("stats", FUZZ_ACQUIRE | FUZZ_ADMIN, &e, 0, NULL);
        }
        {
                ENV(e, revoke, &rv);
                rv.lease_id = 1;
                rv.reason = (char *)"fuzz";
                one("revoke-own", FUZZ_ACQUIRE | FUZZ_ADMIN, &e, 0, NULL);
        }
        {
                ENV(e, reload_policy, &rp);
                one("reload-policy", FUZZ_ACQUIRE | FUZZ_ADMIN, &e, 0, NULL);
        }
        {
                ENV(e, ok, &ok);
                one("client-sends-ok", FUZZ_HELLO, &e, 0, NULL);
        }
        {
                static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x08, 0x01};
                static const uint8_t unknown_field[] = {0x08, 0x05, 0xf8, 0x06, 0x00};

                script_begin(&s, FUZZ_HELLO);
                script_add_bytes(&s, garbage, sizeof(garbage));
                script_write(&s, "garbage");
                script_begin(&s, FUZZ_HELLO);
                script_add_bytes(&s, unknown_field, sizeof(unknown_field));
                script_write(&s, "unknown-body");
        }
}

static void config_seed(const char *name, const char *text)
{
        write_file("config", name, text, strlen(text));
}

static void config_seeds(void)
{
        config_seed("empty", "");
        config_seed("full", "[Daemon]\n"
                            "AdminUsers=root 0\n"
                            "AdminGroups=root\n"
                            "MaxConnections=1024\n"
                            "MaxDomainsPerClient=8\n"
                            "MaxLeasesPerClient=16\n"
                            "MaxMappingsPerClient=1024\n"
                            "MaxPinnedBytesPerClient=16G\n"
                            "MaxRangesPerRequest=256\n"
                            "MaxFdsPerMessage=64\n"
                            "MaxQueuedBytesPerClient=1048576\n"
                            "MaxQueuedMessagesPerClient=128\n"
                            "MaxRequestsInFlight=16\n"
                            "ReleaseGraceMs=5000\n"
                            "\n"
                            "[Device gpu]\n"
                            "Match=0000:01:00.0 01:00.1\n"
                            "Users=1000 root\n"
                            "Groups=0\n"
                            "Modes=direct brokered\n"
                            "\n"
                            "; a comment\n"
                            "# another\n"
                            "[Device nic]\n"
                            "Match=0000:02:00.0\n"
                            "Groups=root\n"
                            "Modes=brokered\n");
        config_seed("errors", "Key=outside\n"
                              "[Daemon]\n"
                              "MaxConnections=0\n"
                              "MaxPinnedBytesPerClient=99999999999999999999T\n"
                              "Bogus=1\n"
                              "[Device]\n"
                              "[Device a]\n"
                              "[Device a]\n"
                              "Match=zz:zz.z\n"
                              "Users=nosuchuser\n"
                              "Modes=sideways\n"
                              "[Elsewhere]\n"
                              "x=y\n"
                              "[broken\n");
        config_seed("overlap", "[Device nics]\n"
                               "MatchClass=0x02\n"
                               "Groups=0\n"
                               "[Device vf]\n"
                               "Match=0000:00:01.0\n"
                               "Users=0\n"
                               "Units=vm@*.service\n"
                               "Modes=brokered\n"
                               "MaxPinnedBytesPerUser=4G\n"
                               "IovaWindows=0x0-0xffffffff 0x100000000-0x1ffffffff\n"
                               "[Device direct]\n"
                               "MatchGroup=3\n"
                               "Users=1000\n"
                               "Modes=direct\n"
                               "MaxPinnedBytes=1G\n");
        config_seed("continuation", "[Device x]\n"
                                    "Match=0000:00:01.0\n"
                                    "Users=1000\n"
                                    "  1001\n"
                                    "Modes=direct\n");
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: %s DIR\n", argv[0]);
                return EXIT_FAILURE;
        }
        outdir = argv[1];
        dispatch_seeds();
        config_seeds();
        return EXIT_SUCCESS;
}
