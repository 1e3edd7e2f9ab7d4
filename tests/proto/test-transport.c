/* SPDX-License-Identifier: MIT */
/*
 * proto/transport: every message type round-trips over a SEQPACKET
 * socketpair with its fds; every malformed datagram is rejected with its own
 * errno and all of its fds closed; EOF, EPIPE and EAGAIN are reported.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "proto/envelope.h"
#include "proto/macro.h"
#include "proto/transport.h"
#include "tests/rawclient.h"
#include "tests/testutil.h"

/* ------------------------------------------------------------------------- */
/* helpers */

/*
 * sendmsg() is wrapped (-Wl,--wrap=sendmsg, see tests/proto/local.mk) to see
 * the flags the transport passes: on some kernels a SEQPACKET send to a
 * closed peer raises no SIGPIPE even without MSG_NOSIGNAL, so the outcome
 * alone cannot show the flag is there.
 */
ssize_t __real_sendmsg(int sock, const struct msghdr *mh, int flags);
ssize_t __wrap_sendmsg(int sock, const struct msghdr *mh, int flags);
static int last_sendmsg_flags = -1;

ssize_t __wrap_sendmsg(int sock, const struct msghdr *mh, int flags)
{
        last_sendmsg_flags = flags;
        return __real_sendmsg(sock, mh, flags);
}

static void make_pair(int sv[2])
{
        ck_assert_msg(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0,
                      "socketpair: %s", strerror(errno));
}

static void close_pair(int sv[2])
{
        sv[0] = safe_close(sv[0]);
        sv[1] = safe_close(sv[1]);
}

static int make_memfd(const char *name, size_t size)
{
        int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

        ck_assert_msg(fd >= 0, "memfd_create: %s", strerror(errno));
        ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
        return fd;
}

static int make_eventfd(void)
{
        int fd = eventfd(0, EFD_CLOEXEC);

        ck_assert_msg(fd >= 0, "eventfd: %s", strerror(errno));
        return fd;
}

static bool fd_is_open(int fd)
{
        return fcntl(fd, F_GETFD) >= 0;
}

/* a and b are the same open file (as fds passed over a socket are). */
static void assert_same_file(int a, int b)
{
        struct stat sa, sb;

        ck_assert_int_ne(a, b);
        ck_assert_int_eq(fstat(a, &sa), 0);
        ck_assert_int_eq(fstat(b, &sb), 0);
        ck_assert_uint_eq(sa.st_dev, sb.st_dev);
        ck_assert_uint_eq(sa.st_ino, sb.st_ino);
}

/* Received fds are CLOEXEC from birth. */
static void assert_cloexec(int fd)
{
        int flags = fcntl(fd, F_GETFD);

        ck_assert_int_ge(flags, 0);
        ck_assert_msg(flags & FD_CLOEXEC, "received fd %d is not CLOEXEC", fd);
}

/* A datagram built by hand, for the cases vfiod_msg_send() refuses to make: 0 or -errno. */
static int raw_send(int sock, const void *data, size_t len, const int *fds, size_t n_fds)
{
        ssize_t n = rawclient_send_bytes(sock, data, len, fds, n_fds);

        return n < 0 ? (int)n : 0;
}

/* Packs env by hand (no fd checks) and sends it with fds. */
static int raw_send_env(int sock, const Vfiod__Envelope *env, const int *fds, size_t n_fds)
{
        size_t len = vfiod__envelope__get_packed_size(env);
        uint8_t *buf = malloc(len ? len : 1);
        int r;

        ck_assert_ptr_nonnull(buf);
        ck_assert_uint_eq(vfiod__envelope__pack(env, buf), len);
        r = raw_send(sock, buf, len, fds, n_fds);
        free(buf);
        return r;
}

/* Makes sure this process may hold `want` fds (253 received at once need room). */
static void ensure_nofile(rlim_t want)
{
        struct rlimit rl;

        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_cur >= want)
                return;
        ck_assert_msg(rl.rlim_max >= want, "RLIMIT_NOFILE hard limit %lu < %lu",
                      (unsigned long)rl.rlim_max, (unsigned long)want);
        rl.rlim_cur = want;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/*
 * Receives on sock and expects a rejection with error `expect`: checks the
 * reason is set, *ret untouched, and the process holds exactly as many fds as
 * before the call (every fd of the datagram was closed).
 */
static void expect_reject(int sock, int expect)
{
        struct vfiod_msg *sentinel = (struct vfiod_msg *)&expect, *msg = sentinel;
        const char *reason = NULL;
        int before = testutil_count_fds();
        int r;

        r = vfiod_msg_recv(sock, MSG_DONTWAIT, &msg, &reason);
        ck_assert_msg(r == expect, "vfiod_msg_recv: got %d (%s), expected %d (%s)", r,
                      r < 0 ? strerror(-r) : "ok", expect, strerror(-expect));
        ck_assert_ptr_eq(msg, sentinel);
        ck_assert_ptr_nonnull(reason);
        ck_assert_uint_gt(strlen(reason), 0);
        ck_assert_int_eq(testutil_count_fds(), before);
}

static void assert_same_fields(const ProtobufCMessage *want, const ProtobufCMessage *got,
                               const char *path);

/*
 * Sends env with fds over a fresh socketpair and returns what arrived, which
 * has every field of env.
 */
static struct vfiod_msg *roundtrip(const Vfiod__Envelope *env, const int *fds, size_t n_fds)
{
        struct vfiod_msg *msg = NULL;
        const char *reason = NULL;
        uint8_t *a, *b;
        size_t la, lb;
        int sv[2], r;

        make_pair(sv);
        r = vfiod_msg_send(sv[0], env, fds, n_fds);
        ck_assert_msg(r == 0, "vfiod_msg_send(%s): %s", vfiod_envelope_body_name(env),
                      strerror(-r));
        r = vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, &reason);
        ck_assert_msg(r == 1, "vfiod_msg_recv(%s): %d %s", vfiod_envelope_body_name(env), r,
                      reason ? reason : "");
        close_pair(sv);

        ck_assert_ptr_nonnull(msg);
        ck_assert_ptr_nonnull(msg->env);
        ck_assert_uint_eq(msg->n_fds, n_fds);
        ck_assert_int_eq(msg->env->body_case, env->body_case);
        ck_assert_uint_eq(msg->env->id, env->id);
        assert_same_fields(&env->base, &msg->env->base, "Envelope");
        for (size_t i = 0; i < n_fds; i++) {
                assert_same_file(fds[i], msg->fds[i]);
                assert_cloexec(msg->fds[i]);
        }

        /* What arrived packs to the same bytes as what was sent. */
        la = vfiod__envelope__get_packed_size(env);
        lb = vfiod__envelope__get_packed_size(msg->env);
        ck_assert_uint_eq(la, lb);
        a = malloc(la + 1);
        b = malloc(lb + 1);
        ck_assert(a && b);
        vfiod__envelope__pack(env, a);
        vfiod__envelope__pack(msg->env, b);
        ck_assert(memcmp(a, b, la) == 0);
        /* The transport's own encoder wrote protobuf-c's bytes. */
        ck_assert_int_eq(vfiod_envelope_encode(env, b, la + 1), (long)la);
        ck_assert(memcmp(a, b, la) == 0);
        free(a);
        free(b);
        return msg;
}

/* Round-trips env and checks every fd came back and is closed by the free. */
static struct vfiod_msg *roundtrip_nofd(const Vfiod__Envelope *env)
{
        return roundtrip(env, NULL, 0);
}

static void free_expect_closed(struct vfiod_msg *msg, size_t expect_closed)
{
        ck_assert_uint_eq(vfiod_msg_free(msg), expect_closed);
}

/* ------------------------------------------------------------------------- */
/* round trip: a table of one message per body, compared field by field */

/* The bytes a field's value takes in its message (one element of a repeated field). */
static size_t value_size(const ProtobufCFieldDescriptor *f)
{
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
        case PROTOBUF_C_TYPE_DOUBLE:
                return 8;
        case PROTOBUF_C_TYPE_BOOL:
                return sizeof(protobuf_c_boolean);
        case PROTOBUF_C_TYPE_STRING:
                return sizeof(char *);
        case PROTOBUF_C_TYPE_BYTES:
                return sizeof(ProtobufCBinaryData);
        case PROTOBUF_C_TYPE_MESSAGE:
                return sizeof(ProtobufCMessage *);
        default:
                return 4;
        }
}

/* One value of field f: got (what arrived) is want (what was sent). */
static void assert_same_value(const ProtobufCFieldDescriptor *f, const void *want, const void *got,
                              const char *at)
{
        switch (f->type) {
        case PROTOBUF_C_TYPE_STRING: {
                const char *w = *(char *const *)want, *g = *(char *const *)got;

                ck_assert_str_eq(g ? g : "", w ? w : ""); /* proto3: unset is "" */
                break;
        }
        case PROTOBUF_C_TYPE_BYTES: {
                const ProtobufCBinaryData *w = want, *g = got;

                ck_assert_uint_eq(g->len, w->len);
                ck_assert(w->len == 0 || memcmp(g->data, w->data, w->len) == 0);
                break;
        }
        case PROTOBUF_C_TYPE_MESSAGE: {
                const ProtobufCMessage *w = *(ProtobufCMessage *const *)want,
                                       *g = *(ProtobufCMessage *const *)got;

                ck_assert_msg((w == NULL) == (g == NULL), "%s: %s, sent %s", at,
                              g ? "present" : "absent", w ? "present" : "absent");
                if (w)
                        assert_same_fields(w, g, at);
                break;
        }
        case PROTOBUF_C_TYPE_BOOL:
                ck_assert_msg(!*(const protobuf_c_boolean *)got ==
                                  !*(const protobuf_c_boolean *)want,
                              "%s differs", at);
                break;
        default:
                ck_assert_msg(memcmp(got, want, value_size(f)) == 0, "%s differs", at);
                break;
        }
}

/* Every field of got (what arrived) is that of want (what was sent); path names the message. */
static void assert_same_fields(const ProtobufCMessage *want, const ProtobufCMessage *got,
                               const char *path)
{
        const ProtobufCMessageDescriptor *d = want->descriptor;

        ck_assert_ptr_eq(got->descriptor, d);
        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &d->fields[i];
                const char *w = (const char *)want + f->offset, *g = (const char *)got + f->offset;
                const char *wq = (const char *)want + f->quantifier_offset;
                const char *gq = (const char *)got + f->quantifier_offset;
                size_t n = 1, size = value_size(f);
                char at[256];

                snprintf(at, sizeof(at), "%s.%s", path, f->name);
                if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                        ck_assert_msg(*(const uint32_t *)gq == *(const uint32_t *)wq,
                                      "%s: oneof case %u, sent %u", at, *(const uint32_t *)gq,
                                      *(const uint32_t *)wq);
                        if (*(const uint32_t *)wq != f->id)
                                continue;
                } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                        n = *(const size_t *)wq;
                        ck_assert_msg(*(const size_t *)gq == n, "%s: %zu elements, sent %zu", at,
                                      *(const size_t *)gq, n);
                        if (n == 0)
                                continue;
                        w = *(char *const *)w;
                        g = *(char *const *)g;
                }
                for (size_t k = 0; k < n; k++)
                        assert_same_value(f, w + k * size, g + k * size, at);
        }
}

/* A Vfiod__<Type> (descriptor vfiod__<type>__descriptor) with the fields given, for the table. */
#define MSG(Type, type, ...)                                                             \
        (&(Vfiod__##Type){.base = PROTOBUF_C_MESSAGE_INIT(&vfiod__##type##__descriptor), \
                          __VA_ARGS__})

/* An Envelope of id with a body made by MSG(). */
#define CASE(id_, field, Type, type, ...)                                                   \
        {                                                                                   \
                .base = PROTOBUF_C_MESSAGE_INIT(&vfiod__envelope__descriptor), .id = (id_), \
                .body_case = VFIOD_ENVELOPE_BODY_CASE((Vfiod__##Type *)0),                  \
                .field = MSG(Type, type, __VA_ARGS__)                                       \
        }

/* Every body without fds, sent as it is here: what arrives must have every field. */
static const Vfiod__Envelope roundtrip_cases[] = {
    CASE(1, hello, Hello, hello, .major = VFIOD_PROTO_VERSION_MAJOR,
         .minor = VFIOD_PROTO_VERSION_MINOR,
         .capabilities = VFIOD__CAPABILITY__CAPABILITY_DIRECT |
                         VFIOD__CAPABILITY__CAPABILITY_BROKERED |
                         VFIOD__CAPABILITY__CAPABILITY_EVENTS,
         .max_datagram = 32768, .max_fds = 16),
    CASE(1, hello_reply, HelloReply, hello_reply, .major = 1, .minor = 3, .capabilities = 0x1f,
         .max_datagram = VFIOD_PROTO_MAX_DATAGRAM, .max_fds = VFIOD_PROTO_MAX_FDS,
         .limits = MSG(Limits, limits, .max_domains = 4, .max_leases = 8, .max_mappings = 1024,
                       .max_pinned_bytes = 1ull << 34, .max_ranges_per_request = 64,
                       .max_requests_in_flight = 16),
         .server_version = "vfiod 0.1.0"),
    CASE(0xfffffffffffffff0ull, error, Error, error, .errnum = EBUSY,
         .reason = "device '0000:00:03.0' is leased by another client"),
    CASE(8, ok, Ok, ok),
    CASE(9, list_devices, ListDevices, list_devices, .device = "0000:00:03.0"),
    CASE(9, list_devices_reply, ListDevicesReply, list_devices_reply, .n_devices = 2,
         .devices =
             (Vfiod__DeviceInfo *[]){
                 MSG(DeviceInfo, device_info, .device = "0000:00:03.0", .vendor_id = 0x1234,
                     .device_id = 0x11e8, .class_code = 0x00ff00, .iommu_group = 7,
                     .driver = "vfio-pci", .state = VFIOD__LEASE_STATE__LEASE_STATE_LEASED_BY_YOU,
                     .n_allowed_modes = 2,
                     .allowed_modes =
                         (Vfiod__Mode[]){VFIOD__MODE__MODE_DIRECT, VFIOD__MODE__MODE_BROKERED},
                     .lease_id = 77),
                 MSG(DeviceInfo, device_info, .device = "0000:00:04.0", .vendor_id = 0x8086,
                     .device_id = 0x10d3, .class_code = 0x020000, .iommu_group = 8, .driver = "",
                     .state = VFIOD__LEASE_STATE__LEASE_STATE_QUARANTINED, .n_allowed_modes = 1,
                     .allowed_modes = (Vfiod__Mode[]){VFIOD__MODE__MODE_BROKERED}),
             }),
    CASE(10, create_domain, CreateDomain, create_domain,
         .iommu_type = VFIOD__IOMMU_TYPE__IOMMU_TYPE_TYPE1V2),
    CASE(10, create_domain_reply, CreateDomainReply, create_domain_reply,
         .domain_id = 0x1234567890ull, .iommu_type = VFIOD__IOMMU_TYPE__IOMMU_TYPE_TYPE1),
    CASE(11, destroy_domain, DestroyDomain, destroy_domain, .domain_id = 42),
    CASE(12, acquire, Acquire, acquire, .device = "0000:00:05.0", .domain_id = 3,
         .mode = VFIOD__MODE__MODE_BROKERED),
    CASE(14, release, Release, release, .lease_id = 501),
    CASE(15, reset, Reset, reset, .lease_id = 501, .device = "0000:00:05.1"),
    CASE(16, map_dma_reply, MapDmaReply, map_dma_reply, .mapped = 3, .bytes = (2 << 20) + 8192),
    CASE(17, unmap_dma, UnmapDma, unmap_dma, .domain_id = 3, .n_ranges = 2,
         .ranges =
             (Vfiod__IovaRange *[]){
                 MSG(IovaRange, iova_range, .iova = 0x1000, .size = 8192),
                 MSG(IovaRange, iova_range, .iova = 0x100000000ull, .size = 1 << 20),
             }),
    CASE(17, unmap_dma_reply, UnmapDmaReply, unmap_dma_reply, .unmapped = 2,
         .unmapped_bytes = (1 << 20) + 8192),
    /* BOOL data. */
    CASE(19, set_irqs, SetIrqs, set_irqs, .lease_id = 9, .index = VFIOD__IRQ_INDEX__IRQ_INDEX_MSI,
         .start = 0, .count = 3, .action = VFIOD__IRQ_ACTION__IRQ_ACTION_MASK,
         .data = VFIOD__IRQ_DATA__IRQ_DATA_BOOL, .n_bools = 3,
         .bools = (protobuf_c_boolean[]){true, false, true}),
    /* The disable form (count 0, TRIGGER, NONE). */
    CASE(19, set_irqs, SetIrqs, set_irqs, .lease_id = 9, .index = VFIOD__IRQ_INDEX__IRQ_INDEX_INTX,
         .count = 0, .action = VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER,
         .data = VFIOD__IRQ_DATA__IRQ_DATA_NONE),
    CASE(20, list_leases, ListLeases, list_leases),
    CASE(20, list_leases_reply, ListLeasesReply, list_leases_reply, .n_leases = 2,
         .leases =
             (Vfiod__LeaseInfo *[]){
                 MSG(LeaseInfo, lease_info, .lease_id = 501, .n_devices = 2,
                     .devices = (char *[]){"0000:00:05.0", "0000:00:05.1"}, .iommu_group = 12,
                     .uid = 1000, .gid = 1001, .pid = 4242, .unit = "qemu-vm1.service",
                     .mode = VFIOD__MODE__MODE_DIRECT, .domain_id = 3, .pinned_bytes = 0,
                     .mappings = 0, .status = VFIOD__LEASE_STATUS__LEASE_STATUS_ACTIVE),
                 MSG(LeaseInfo, lease_info, .lease_id = 502, .n_devices = 1,
                     .devices = (char *[]){"0000:00:06.0"}, .iommu_group = 13, .uid = 2000,
                     .gid = 2001, .pid = 99, .unit = "", .mode = VFIOD__MODE__MODE_BROKERED,
                     .domain_id = 4, .pinned_bytes = 3ull << 30, .mappings = 17,
                     .status = VFIOD__LEASE_STATUS__LEASE_STATUS_RELEASE_REQUESTED),
             }),
    CASE(21, revoke, Revoke, revoke, .lease_id = 502, .reason = "maintenance window"),
    CASE(22, reload_policy, ReloadPolicy, reload_policy),
    CASE(22, reload_policy_reply, ReloadPolicyReply, reload_policy_reply, .n_errors = 2,
         .errors = (char *[]){"/etc/vfiod/vfiod.conf:3: unknown key 'Foo'",
                              "/etc/vfiod/vfiod.conf.d/gpu.conf:7: bad PCI address '0000:zz'"},
         .leases_revoked = 2),
    CASE(23, stats, Stats, stats),
    CASE(23, stats_reply, StatsReply, stats_reply, .clients = 10000, .leases = 12, .domains = 9,
         .mappings = 300, .pinned_bytes = 5ull << 30, .requests = 123456789012ull, .errors = 77,
         .quarantined_groups = 1, .uptime_ms = 86400000ull * 3),
    /* Events carry id 0. */
    CASE(0, release_requested, ReleaseRequested, release_requested, .lease_id = 501,
         .device = "0000:00:05.0", .reason = VFIOD__RELEASE_REASON__RELEASE_REASON_KERNEL_REQUEST,
         .grace_ms = 5000, .detail = "driver unbind requested"),
    CASE(0, device_error, DeviceError, device_error, .lease_id = 501, .device = "0000:00:05.0"),
    CASE(0, lease_revoked, LeaseRevoked, lease_revoked, .lease_id = 502, .device = "0000:00:06.0",
         .reason = VFIOD__RELEASE_REASON__RELEASE_REASON_POLICY_CHANGE,
         .detail = "no longer allowed for uid 2000"),
};

START_TEST(test_roundtrip)
{
        struct vfiod_msg *m = roundtrip_nofd(&roundtrip_cases[_i]);

        free_expect_closed(m, 0);
}
END_TEST

/* The numbers the table above relies on are the wire's. */
START_TEST(test_wire_numbers)
{
        ck_assert_uint_eq(VFIOD_PROTO_VERSION_MAJOR, 1);
        ck_assert_uint_eq(VFIOD__CAPABILITY__CAPABILITY_DIRECT |
                              VFIOD__CAPABILITY__CAPABILITY_BROKERED |
                              VFIOD__CAPABILITY__CAPABILITY_EVENTS,
                          1 | 2 | 8);
        ck_assert_uint_eq(VFIOD_PROTO_MAX_DATAGRAM, 65536);
        ck_assert_uint_eq(VFIOD_PROTO_MAX_FDS, 253);
        ck_assert_int_eq(VFIOD__IRQ_INDEX__IRQ_INDEX_MSIX, 2); /* VFIO_PCI_MSIX_IRQ_INDEX */
}
END_TEST

/* The bodies that carry fds: the fds arrive, and the indices lead to them. */

/* DIRECT: container, group and device fds, named out of order. */
static void rt_acquire_reply(void)
{
        Vfiod__AcquireReply a = VFIOD__ACQUIRE_REPLY__INIT;
        Vfiod__Envelope env = ENVELOPE(acquire_reply, &a);
        const Vfiod__AcquireReply *g;
        struct vfiod_msg *m;
        int fds[3], container, group, device;

        fds[0] = make_memfd("group", 4096);
        fds[1] = make_eventfd(); /* "device" */
        fds[2] = make_memfd("container", 8192);
        a.lease_id = 501;
        a.domain_id = 3;
        a.iommu_group = 12;
        a.device = "0000:00:05.0";
        a.mode = VFIOD__MODE__MODE_DIRECT;
        a.has_container_fd_case = VFIOD__ACQUIRE_REPLY__HAS_CONTAINER_FD_CONTAINER_FD;
        a.container_fd = 2;
        a.has_group_fd_case = VFIOD__ACQUIRE_REPLY__HAS_GROUP_FD_GROUP_FD;
        a.group_fd = 0;
        a.has_device_fd_case = VFIOD__ACQUIRE_REPLY__HAS_DEVICE_FD_DEVICE_FD;
        a.device_fd = 1;
        a.num_regions = 9;
        a.num_irqs = 5;
        a.device_flags = 0x3;
        env.id = 12;

        m = roundtrip(&env, fds, 3);
        g = m->env->acquire_reply;
        ck_assert_uint_eq(g->lease_id, 501);
        ck_assert_uint_eq(g->domain_id, 3);
        ck_assert_uint_eq(g->iommu_group, 12);
        ck_assert_str_eq(g->device, "0000:00:05.0");
        ck_assert_int_eq(g->mode, VFIOD__MODE__MODE_DIRECT);
        ck_assert_int_eq(g->has_container_fd_case,
                         VFIOD__ACQUIRE_REPLY__HAS_CONTAINER_FD_CONTAINER_FD);
        ck_assert_int_eq(g->has_group_fd_case, VFIOD__ACQUIRE_REPLY__HAS_GROUP_FD_GROUP_FD);
        ck_assert_int_eq(g->has_device_fd_case, VFIOD__ACQUIRE_REPLY__HAS_DEVICE_FD_DEVICE_FD);
        ck_assert_uint_eq(g->num_regions, 9);
        ck_assert_uint_eq(g->num_irqs, 5);
        ck_assert_uint_eq(g->device_flags, 3);

        /* The indices lead to the right files; take them as a handler would. */
        container = vfiod_msg_take_fd(m, g->container_fd);
        group = vfiod_msg_take_fd(m, g->group_fd);
        device = vfiod_msg_take_fd(m, g->device_fd);
        ck_assert_int_ge(container, 0);
        ck_assert_int_ge(group, 0);
        ck_assert_int_ge(device, 0);
        assert_same_file(container, fds[2]);
        assert_same_file(group, fds[0]);
        assert_same_file(device, fds[1]);
        free_expect_closed(m, 0); /* all taken: nothing left to close */
        ck_assert(fd_is_open(container));
        safe_close(container);
        safe_close(group);
        safe_close(device);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                safe_close(fds[i]);
}

/* BROKERED: the device fd only, at index 0; container and group are absent. */
static void rt_acquire_reply_brokered(void)
{
        Vfiod__AcquireReply a = VFIOD__ACQUIRE_REPLY__INIT;
        Vfiod__Envelope env = ENVELOPE(acquire_reply, &a);
        const Vfiod__AcquireReply *g;
        struct vfiod_msg *m;
        int fd = make_eventfd();

        a.lease_id = 502;
        a.domain_id = 4;
        a.iommu_group = 13;
        a.device = "0000:00:06.0";
        a.mode = VFIOD__MODE__MODE_BROKERED;
        a.has_device_fd_case = VFIOD__ACQUIRE_REPLY__HAS_DEVICE_FD_DEVICE_FD;
        a.device_fd = 0;
        a.num_regions = 9;
        a.num_irqs = 5;
        env.id = 13;

        m = roundtrip(&env, &fd, 1);
        g = m->env->acquire_reply;
        ck_assert_int_eq(g->has_container_fd_case, VFIOD__ACQUIRE_REPLY__HAS_CONTAINER_FD__NOT_SET);
        ck_assert_int_eq(g->has_group_fd_case, VFIOD__ACQUIRE_REPLY__HAS_GROUP_FD__NOT_SET);
        ck_assert_int_eq(g->has_device_fd_case, VFIOD__ACQUIRE_REPLY__HAS_DEVICE_FD_DEVICE_FD);
        ck_assert_uint_eq(g->device_fd, 0);
        ck_assert_int_eq(g->mode, VFIOD__MODE__MODE_BROKERED);
        ck_assert_uint_eq(g->lease_id, 502);
        ck_assert_str_eq(g->device, "0000:00:06.0");
        free_expect_closed(m, 1); /* not taken: the free closes it */
        safe_close(fd);
}

/* Three ranges over two memfds, one memfd named twice. */
static void rt_map_dma(void)
{
        Vfiod__MapDma md = VFIOD__MAP_DMA__INIT;
        Vfiod__Envelope env = ENVELOPE(map_dma, &md);
        Vfiod__DmaRange r0 = VFIOD__DMA_RANGE__INIT, r1 = VFIOD__DMA_RANGE__INIT,
                        r2 = VFIOD__DMA_RANGE__INIT;
        Vfiod__DmaRange *ranges[] = {&r0, &r1, &r2};
        const Vfiod__MapDma *g;
        struct vfiod_msg *m;
        int fds[2], f0, f1;

        fds[0] = make_memfd("ram-low", 1 << 20);
        fds[1] = make_memfd("ram-high", 2 << 20);
        r0.fd_index = 1;
        r0.offset = 0;
        r0.iova = 0x100000000ull;
        r0.size = 1 << 20;
        r0.readable = true;
        r0.writable = true;
        r1.fd_index = 0;
        r1.offset = 4096;
        r1.iova = 0x1000;
        r1.size = 8192;
        r1.readable = true;
        r1.writable = false;
        r2.fd_index = 1;
        r2.offset = 1 << 20;
        r2.iova = 0x200000000ull;
        r2.size = 1 << 20;
        r2.readable = false;
        r2.writable = true;
        md.domain_id = 3;
        md.n_ranges = ELEMENTSOF(ranges);
        md.ranges = ranges;
        env.id = 16;

        m = roundtrip(&env, fds, 2);
        g = m->env->map_dma;
        ck_assert_uint_eq(g->domain_id, 3);
        ck_assert_uint_eq(g->n_ranges, 3);
        ck_assert_uint_eq(g->ranges[0]->fd_index, 1);
        ck_assert_uint_eq(g->ranges[0]->offset, 0);
        ck_assert_uint_eq(g->ranges[0]->iova, 0x100000000ull);
        ck_assert_uint_eq(g->ranges[0]->size, 1 << 20);
        ck_assert(g->ranges[0]->readable && g->ranges[0]->writable);
        ck_assert_uint_eq(g->ranges[1]->fd_index, 0);
        ck_assert_uint_eq(g->ranges[1]->offset, 4096);
        ck_assert_uint_eq(g->ranges[1]->iova, 0x1000);
        ck_assert_uint_eq(g->ranges[1]->size, 8192);
        ck_assert(g->ranges[1]->readable && !g->ranges[1]->writable);
        ck_assert_uint_eq(g->ranges[2]->fd_index, 1);
        ck_assert_uint_eq(g->ranges[2]->offset, 1 << 20);
        ck_assert_uint_eq(g->ranges[2]->iova, 0x200000000ull);
        ck_assert_uint_eq(g->ranges[2]->size, 1 << 20);
        ck_assert(!g->ranges[2]->readable && g->ranges[2]->writable);

        /* Ranges 0 and 2 lead to the same memfd. */
        f1 = vfiod_msg_take_fd(m, g->ranges[0]->fd_index);
        ck_assert_int_ge(f1, 0);
        assert_same_file(f1, fds[1]);
        ck_assert_int_eq(vfiod_msg_take_fd(m, g->ranges[2]->fd_index), -EBADF); /* taken */
        f0 = vfiod_msg_take_fd(m, g->ranges[1]->fd_index);
        assert_same_file(f0, fds[0]);
        free_expect_closed(m, 0);
        safe_close(f0);
        safe_close(f1);
        safe_close(fds[0]);
        safe_close(fds[1]);
}

/* EVENTFD data with a hole (-1) and indices out of order. */
static void rt_set_irqs(void)
{
        Vfiod__SetIrqs s = VFIOD__SET_IRQS__INIT;
        Vfiod__Envelope env = ENVELOPE(set_irqs, &s);
        int32_t idx[] = {2, -1, 0, 1};
        const Vfiod__SetIrqs *g;
        struct vfiod_msg *m;
        int fds[3];

        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = make_eventfd();
        s.lease_id = 501;
        s.device = "0000:00:05.0";
        s.index = VFIOD__IRQ_INDEX__IRQ_INDEX_MSIX;
        s.start = 2;
        s.count = 4;
        s.action = VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER;
        s.data = VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD;
        s.n_eventfds = ELEMENTSOF(idx);
        s.eventfds = idx;
        env.id = 18;

        m = roundtrip(&env, fds, 3);
        g = m->env->set_irqs;
        ck_assert_uint_eq(g->lease_id, 501);
        ck_assert_str_eq(g->device, "0000:00:05.0");
        ck_assert_int_eq(g->index, VFIOD__IRQ_INDEX__IRQ_INDEX_MSIX);
        ck_assert_int_eq(g->index, 2); /* VFIO_PCI_MSIX_IRQ_INDEX */
        ck_assert_uint_eq(g->start, 2);
        ck_assert_uint_eq(g->count, 4);
        ck_assert_int_eq(g->action, VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER);
        ck_assert_int_eq(g->data, VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD);
        ck_assert_uint_eq(g->n_bools, 0);
        ck_assert_uint_eq(g->n_eventfds, 4);
        ck_assert_int_eq(g->eventfds[0], 2);
        ck_assert_int_eq(g->eventfds[1], -1);
        ck_assert_int_eq(g->eventfds[2], 0);
        ck_assert_int_eq(g->eventfds[3], 1);
        assert_same_file(m->fds[g->eventfds[0]], fds[2]);
        assert_same_file(m->fds[g->eventfds[3]], fds[1]);
        free_expect_closed(m, 3);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                safe_close(fds[i]);
}

static const struct {
        Vfiod__Envelope__BodyCase body;
        void (*run)(void);
} roundtrips_with_fds[] = {
    {VFIOD__ENVELOPE__BODY_ACQUIRE_REPLY, rt_acquire_reply},
    {VFIOD__ENVELOPE__BODY_ACQUIRE_REPLY, rt_acquire_reply_brokered},
    {VFIOD__ENVELOPE__BODY_MAP_DMA, rt_map_dma},
    {VFIOD__ENVELOPE__BODY_SET_IRQS, rt_set_irqs},
};

START_TEST(test_roundtrip_with_fds)
{
        roundtrips_with_fds[_i].run();
}
END_TEST

/* Every body of the schema's oneof has a round-trip above. */
START_TEST(test_roundtrip_covers_schema)
{
        const ProtobufCMessageDescriptor *d = &vfiod__envelope__descriptor;
        unsigned bodies = 0;

        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &d->fields[i];
                bool found = false;

                if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
                        continue;
                bodies++;
                for (size_t j = 0; j < ELEMENTSOF(roundtrip_cases); j++)
                        found = found || (uint32_t)roundtrip_cases[j].body_case == f->id;
                for (size_t j = 0; j < ELEMENTSOF(roundtrips_with_fds); j++)
                        found = found || (uint32_t)roundtrips_with_fds[j].body == f->id;
                ck_assert_msg(found, "body '%s' has no round-trip test", f->name);
        }
        ck_assert_uint_eq(bodies, 28);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* receive: rejections */

/* An Envelope with a MapDma body naming the given fd indices. */
struct map_dma_env {
        Vfiod__Envelope env;
        Vfiod__MapDma md;
        Vfiod__DmaRange r[VFIOD_PROTO_MAX_FDS];
        Vfiod__DmaRange *rp[VFIOD_PROTO_MAX_FDS];
};

static void map_dma_env_init(struct map_dma_env *e, const uint32_t *idx, size_t n)
{
        e->md = (Vfiod__MapDma)VFIOD__MAP_DMA__INIT;
        for (size_t i = 0; i < n; i++) {
                e->r[i] = (Vfiod__DmaRange)VFIOD__DMA_RANGE__INIT;
                e->r[i].fd_index = idx[i];
                e->r[i].iova = 0x1000 * (i + 1);
                e->r[i].size = 0x1000;
                e->r[i].readable = true;
                e->rp[i] = &e->r[i];
        }
        e->md.domain_id = 1;
        e->md.n_ranges = n;
        e->md.ranges = e->rp;
        e->env = ENVELOPE(map_dma, &e->md);
        e->env.id = 99;
}

/* The socket still works after a rejection: the next datagram is read whole. */
static void expect_next_ok(int tx, int rx)
{
        Vfiod__Ok ok = VFIOD__OK__INIT;
        Vfiod__Envelope env = ENVELOPE(ok, &ok);
        struct vfiod_msg *msg = NULL;

        env.id = 4711;
        ck_assert_int_eq(vfiod_msg_send(tx, &env, NULL, 0), 0);
        ck_assert_int_eq(vfiod_msg_recv(rx, MSG_DONTWAIT, &msg, NULL), 1);
        ck_assert_uint_eq(msg->env->id, 4711);
        ck_assert_int_eq(msg->env->body_case, VFIOD__ENVELOPE__BODY_OK);
        vfiod_msg_free(msg);
}

START_TEST(test_reject_oversized)
{
        size_t len = VFIOD_PROTO_MAX_DATAGRAM + 1;
        uint8_t *big = calloc(1, len);
        int sv[2], fds[2];

        ck_assert_ptr_nonnull(big);
        make_pair(sv);
        fds[0] = make_memfd("a", 4096);
        fds[1] = make_eventfd();
        ck_assert_int_eq(raw_send(sv[0], big, len, fds, 2), 0);
        expect_reject(sv[1], -EMSGSIZE);
        /* Much larger still, without fds. */
        ck_assert_int_eq(raw_send(sv[0], big, len, NULL, 0), 0);
        expect_reject(sv[1], -EMSGSIZE);
        expect_next_ok(sv[0], sv[1]);
        free(big);
        safe_close(fds[0]);
        safe_close(fds[1]);
        close_pair(sv);
}
END_TEST

/* An Error body whose packed size is exactly `size` bytes. */
static void error_env_of_size(Vfiod__Envelope *env, Vfiod__Error *e, char *text, size_t size)
{
        *e = (Vfiod__Error)VFIOD__ERROR__INIT;
        *env = ENVELOPE(error, e);
        env->id = 1;
        e->errnum = EIO;
        e->reason = text;
        for (size_t l = size - 32; l <= size; l++) {
                memset(text, 'x', l);
                text[l] = '\0';
                if (vfiod__envelope__get_packed_size(env) == size)
                        return;
        }
        ck_abort_msg("no string length packs to %zu bytes", size);
}

START_TEST(test_max_datagram_boundary)
{
        char *text = malloc(VFIOD_PROTO_MAX_DATAGRAM + 2);
        Vfiod__Envelope env;
        Vfiod__Error e;
        struct vfiod_msg *msg = NULL;
        int sv[2];

        ck_assert_ptr_nonnull(text);
        make_pair(sv);
        error_env_of_size(&env, &e, text, VFIOD_PROTO_MAX_DATAGRAM);
        ck_assert_int_eq(vfiod_msg_send(sv[0], &env, NULL, 0), 0);
        ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, NULL), 1);
        ck_assert_str_eq(msg->env->error->reason, text);
        vfiod_msg_free(msg);

        /* One byte more: the sender refuses, and nothing is sent. */
        error_env_of_size(&env, &e, text, VFIOD_PROTO_MAX_DATAGRAM + 1);
        ck_assert_int_eq(vfiod_msg_send(sv[0], &env, NULL, 0), -EMSGSIZE);
        ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, NULL), -EAGAIN);
        /* Sent anyway by hand: the receiver rejects it. */
        ck_assert_int_eq(raw_send_env(sv[0], &env, NULL, 0), 0);
        expect_reject(sv[1], -EMSGSIZE);
        close_pair(sv);
        free(text);
}
END_TEST

/* 253 fds (SCM_MAX_FD) in one datagram are accepted; 254 cannot be sent. */
START_TEST(test_max_fds)
{
        static uint32_t idx[VFIOD_PROTO_MAX_FDS];
        static int fds[VFIOD_PROTO_MAX_FDS + 1];
        static struct map_dma_env e;
        struct vfiod_msg *msg = NULL;
        const char *reason = NULL;
        int sv[2], mfd, before;

        ensure_nofile(1024);
        make_pair(sv);
        mfd = make_memfd("ram", 1 << 20);
        /* The same fd 253 times: the receiver gets 253 distinct fds. */
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = mfd;
        for (size_t i = 0; i < VFIOD_PROTO_MAX_FDS; i++)
                idx[i] = (uint32_t)(VFIOD_PROTO_MAX_FDS - 1 - i);
        map_dma_env_init(&e, idx, VFIOD_PROTO_MAX_FDS);

        before = testutil_count_fds();
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, fds, VFIOD_PROTO_MAX_FDS), 0);
        ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, &reason), 1);
        ck_assert_uint_eq(msg->n_fds, VFIOD_PROTO_MAX_FDS);
        ck_assert_int_eq(testutil_count_fds(), before + VFIOD_PROTO_MAX_FDS);
        for (size_t i = 0; i < msg->n_fds; i++)
                assert_same_file(msg->fds[i], mfd);
        ck_assert_uint_eq(vfiod_msg_free(msg), VFIOD_PROTO_MAX_FDS);
        ck_assert_int_eq(testutil_count_fds(), before);

        /* 254: the transport refuses, and so would the kernel (SCM_MAX_FD). */
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, fds, VFIOD_PROTO_MAX_FDS + 1), -EMSGSIZE);
        ck_assert_int_eq(raw_send_env(sv[0], &e.env, fds, VFIOD_PROTO_MAX_FDS + 1), -EINVAL);
        ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, NULL), -EAGAIN);
        safe_close(mfd);
        close_pair(sv);
}
END_TEST

/* The fd number below which exactly `n_free` fd numbers are free. */
static int limit_with_free_slots(int n_free)
{
        int fd = 0;

        for (;; fd++) {
                ck_assert_int_lt(fd, 1 << 20);
                if (!fd_is_open(fd) && n_free-- == 1)
                        return fd + 1;
        }
}

/* The soft RLIMIT_NOFILE the kernel enforces (valgrind only pretends to set it). */
static long kernel_nofile_limit(void)
{
        char line[256];
        long soft = -1;
        FILE *f = fopen("/proc/self/limits", "re");

        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "Max open files", 14) == 0)
                        soft = strtol(line + 14, NULL, 10);
        fclose(f);
        ck_assert_int_gt(soft, 0);
        return soft;
}

/* A MapDma naming 253 fds, all duplicates of one memfd, sent on sock. */
static void send_253_fds(int sock, int mfd)
{
        static uint32_t idx[VFIOD_PROTO_MAX_FDS];
        static int fds[VFIOD_PROTO_MAX_FDS];
        static struct map_dma_env e;

        for (size_t i = 0; i < VFIOD_PROTO_MAX_FDS; i++) {
                fds[i] = mfd;
                idx[i] = (uint32_t)i;
        }
        map_dma_env_init(&e, idx, VFIOD_PROTO_MAX_FDS);
        ck_assert_int_eq(vfiod_msg_send(sock, &e.env, fds, VFIOD_PROTO_MAX_FDS), 0);
}

/*
 * The kernel never delivers more than SCM_MAX_FD (253) fds per datagram (a
 * sender gets EINVAL for 254, see test_max_fds), and our control buffer has
 * room for exactly 253, so MSG_CTRUNC means the fds did not fit at the
 * receiver. Two ways to make that happen; the fds that did get installed must
 * be closed, the ones that did not are dropped by the kernel.
 */
START_TEST(test_reject_fds_truncated)
{
        struct rlimit saved, low;
        int sv[2], mfd, one = 1;

        ensure_nofile(1024);
        make_pair(sv);
        mfd = make_memfd("ram", 4096);

        /*
         * 1. Control buffer space: with SO_PASSCRED the credentials come first
         * and take the room of three fds, so 250 of 253 fit.
         */
        ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
        send_253_fds(sv[0], mfd);
        expect_reject(sv[1], -ETOOMANYREFS);
        one = 0;
        ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
        expect_next_ok(sv[0], sv[1]);

        /*
         * 2. Out of fd numbers: new fds take the lowest free numbers, so lower
         * RLIMIT_NOFILE to leave room for the fd count's opendir() and a few of
         * the 253, not for all of them. Skipped where the limit is not really
         * applied (under valgrind).
         */
        send_253_fds(sv[0], mfd);
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
        low = saved;
        low.rlim_cur = (rlim_t)limit_with_free_slots(16);
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
        if (kernel_nofile_limit() == (long)low.rlim_cur) {
                expect_reject(sv[1], -ETOOMANYREFS);
                ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
        } else {
                struct vfiod_msg *msg = NULL;

                ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
                ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, NULL), 1);
                ck_assert_uint_eq(vfiod_msg_free(msg), VFIOD_PROTO_MAX_FDS);
        }

        expect_next_ok(sv[0], sv[1]);
        safe_close(mfd);
        close_pair(sv);
}
END_TEST

START_TEST(test_reject_garbage)
{
        static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        Vfiod__Revoke rv = VFIOD__REVOKE__INIT;
        Vfiod__Envelope env = ENVELOPE(revoke, &rv);
        uint8_t buf[128];
        size_t len;
        int sv[2], fd;

        make_pair(sv);
        fd = make_eventfd();
        ck_assert_int_eq(raw_send(sv[0], garbage, sizeof(garbage), &fd, 1), 0);
        expect_reject(sv[1], -EBADMSG);

        /* A valid message cut short by one byte. */
        rv.lease_id = 5;
        rv.reason = "cut";
        env.id = 3;
        len = vfiod__envelope__pack(&env, buf);
        ck_assert_uint_gt(len, 2);
        ck_assert_int_eq(raw_send(sv[0], buf, len - 1, &fd, 1), 0);
        expect_reject(sv[1], -EBADMSG);
        expect_next_ok(sv[0], sv[1]);
        safe_close(fd);
        close_pair(sv);
}
END_TEST

START_TEST(test_reject_no_body)
{
        /* id 5, then field 99 (not in this schema) length-delimited and empty:
         * tag 99 << 3 | 2 = 794 = varint 0x9a 0x06. */
        static const uint8_t unknown_body[] = {0x08, 0x05, 0x9a, 0x06, 0x00};
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        int sv[2], fds[2];

        make_pair(sv);
        fds[0] = make_eventfd();
        fds[1] = make_memfd("m", 4096);

        /* An envelope with an id and no body, with fds. */
        env.id = 5;
        ck_assert_int_eq(raw_send_env(sv[0], &env, fds, 2), 0);
        expect_reject(sv[1], -ENOMSG);
        /* A body case set, but no body message: packs to no body. */
        env.body_case = VFIOD__ENVELOPE__BODY_RELEASE;
        env.release = NULL;
        ck_assert_int_eq(raw_send_env(sv[0], &env, fds, 1), 0);
        expect_reject(sv[1], -ENOMSG);
        /* A zero-byte datagram with fds, and without (the peer is still there). */
        ck_assert_int_eq(raw_send(sv[0], "", 0, fds, 2), 0);
        expect_reject(sv[1], -ENOMSG);
        ck_assert_int_eq(raw_send(sv[0], "", 0, NULL, 0), 0);
        expect_reject(sv[1], -ENOMSG);
        /* A body from a newer schema. */
        ck_assert_int_eq(raw_send(sv[0], unknown_body, sizeof(unknown_body), fds, 1), 0);
        expect_reject(sv[1], -ENOMSG);

        expect_next_ok(sv[0], sv[1]);
        safe_close(fds[0]);
        safe_close(fds[1]);
        close_pair(sv);
}
END_TEST

START_TEST(test_reject_unnamed_fds)
{
        Vfiod__Release rel = VFIOD__RELEASE__INIT;
        Vfiod__Envelope env = ENVELOPE(release, &rel);
        Vfiod__AcquireReply a = VFIOD__ACQUIRE_REPLY__INIT;
        static struct map_dma_env e;
        uint32_t idx[] = {0, 0, 2};
        int sv[2], fds[3];

        make_pair(sv);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = make_eventfd();

        /* A body that names no fds, with one. */
        rel.lease_id = 1;
        env.id = 1;
        ck_assert_int_eq(raw_send_env(sv[0], &env, fds, 1), 0);
        expect_reject(sv[1], -EPROTO);

        /* MapDma names 0 (twice) and 2; fd 1 is not named. */
        map_dma_env_init(&e, idx, ELEMENTSOF(idx));
        ck_assert_int_eq(raw_send_env(sv[0], &e.env, fds, 3), 0);
        expect_reject(sv[1], -EPROTO);

        /* BROKERED AcquireReply names the device fd only, but three came. */
        a.lease_id = 1;
        a.has_device_fd_case = VFIOD__ACQUIRE_REPLY__HAS_DEVICE_FD_DEVICE_FD;
        a.device_fd = 0;
        env.body_case = VFIOD__ENVELOPE__BODY_ACQUIRE_REPLY;
        env.acquire_reply = &a;
        ck_assert_int_eq(raw_send_env(sv[0], &env, fds, 3), 0);
        expect_reject(sv[1], -EPROTO);

        expect_next_ok(sv[0], sv[1]);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                safe_close(fds[i]);
        close_pair(sv);
}
END_TEST

START_TEST(test_reject_missing_fds)
{
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__AcquireReply a = VFIOD__ACQUIRE_REPLY__INIT;
        Vfiod__SetIrqs s = VFIOD__SET_IRQS__INIT;
        static struct map_dma_env e;
        uint32_t idx[] = {0, 1};
        int32_t ev_below[] = {0, -2};
        int32_t ev_above[] = {0, 300};
        int sv[2], fd;

        make_pair(sv);
        fd = make_memfd("m", 4096);

        /* MapDma names 0 and 1; only one fd came. */
        map_dma_env_init(&e, idx, ELEMENTSOF(idx));
        ck_assert_int_eq(raw_send_env(sv[0], &e.env, &fd, 1), 0);
        expect_reject(sv[1], -EBADR);

        /* AcquireReply names device fd 0; no fd came. Index 0 is not "absent". */
        a.lease_id = 1;
        a.has_device_fd_case = VFIOD__ACQUIRE_REPLY__HAS_DEVICE_FD_DEVICE_FD;
        a.device_fd = 0;
        env = ENVELOPE(acquire_reply, &a);
        env.id = 1;
        ck_assert_int_eq(raw_send_env(sv[0], &env, NULL, 0), 0);
        expect_reject(sv[1], -EBADR);

        /* SetIrqs: -1 means "none", -2 is not an index; nor is 300. */
        s.lease_id = 1;
        s.count = 2;
        s.action = VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER;
        s.data = VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD;
        s.n_eventfds = 2;
        s.eventfds = ev_below;
        env.body_case = VFIOD__ENVELOPE__BODY_SET_IRQS;
        env.set_irqs = &s;
        ck_assert_int_eq(raw_send_env(sv[0], &env, &fd, 1), 0);
        expect_reject(sv[1], -EBADR);
        s.eventfds = ev_above;
        ck_assert_int_eq(raw_send_env(sv[0], &env, &fd, 1), 0);
        expect_reject(sv[1], -EBADR);

        expect_next_ok(sv[0], sv[1]);
        safe_close(fd);
        close_pair(sv);
}
END_TEST

/*
 * A sender cannot make us receive anything but SCM_RIGHTS unless the receiving
 * socket asked for it: turn on SO_PASSCRED, so SCM_CREDENTIALS arrive too.
 */
START_TEST(test_reject_foreign_cmsg)
{
        static struct map_dma_env e;
        uint32_t idx[] = {0};
        int sv[2], fd, one = 1;

        make_pair(sv);
        fd = make_memfd("m", 4096);
        ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);

        map_dma_env_init(&e, idx, 1);
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, &fd, 1), 0);
        expect_reject(sv[1], -EPROTOTYPE);
        /* Credentials alone. */
        map_dma_env_init(&e, idx, 0);
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, NULL, 0), 0);
        expect_reject(sv[1], -EPROTOTYPE);

        one = 0;
        ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
        expect_next_ok(sv[0], sv[1]);
        safe_close(fd);
        close_pair(sv);
}
END_TEST

/*
 * MapDma takes memfds, SetIrqs eventfds. A wrong kind breaks a transport
 * rule, as on send: recv rejects the datagram (-EBADFD, the receiver drops
 * the connection) and closes every fd in it. The sender refuses to send it
 * at all.
 */
static void expect_wrong_kind(int sock)
{
        struct vfiod_msg *msg = NULL;
        const char *reason = NULL;
        int before = testutil_count_fds();

        ck_assert_int_eq(vfiod_msg_recv(sock, MSG_DONTWAIT, &msg, &reason), -EBADFD);
        ck_assert_ptr_null(msg);
        ck_assert_ptr_nonnull(strstr(reason, "kind"));
        ck_assert_int_eq(testutil_count_fds(), before);
}

START_TEST(test_reject_wrong_kind)
{
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__SetIrqs s = VFIOD__SET_IRQS__INIT;
        static struct map_dma_env e;
        uint32_t idx[] = {0, 1};
        int32_t ev[] = {0, 1};
        struct vfiod_msg *msg = NULL;
        int sv[2], evfd, mfd, pipefd[2], unsealable, mixed[2];

        make_pair(sv);
        evfd = make_eventfd();
        mfd = make_memfd("m", 4096);
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);

        /* MapDma: an eventfd, or a pipe, among memfds. */
        map_dma_env_init(&e, idx, 2);
        mixed[0] = mfd;
        mixed[1] = evfd;
        ck_assert_int_eq(raw_send_env(sv[0], &e.env, mixed, 2), 0);
        expect_wrong_kind(sv[1]);
        mixed[1] = pipefd[0];
        ck_assert_int_eq(raw_send_env(sv[0], &e.env, mixed, 2), 0);
        expect_wrong_kind(sv[1]);
        /* The sender refuses the same, and sends nothing. */
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, mixed, 2), -EBADFD);
        ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, NULL), -EAGAIN);

        /* SetIrqs: a memfd where an eventfd belongs. */
        s.lease_id = 1;
        s.count = 2;
        s.action = VFIOD__IRQ_ACTION__IRQ_ACTION_TRIGGER;
        s.data = VFIOD__IRQ_DATA__IRQ_DATA_EVENTFD;
        s.n_eventfds = ELEMENTSOF(ev);
        s.eventfds = ev;
        env = ENVELOPE(set_irqs, &s);
        env.id = 1;
        mixed[0] = evfd;
        mixed[1] = mfd;
        ck_assert_int_eq(raw_send_env(sv[0], &env, mixed, 2), 0);
        expect_wrong_kind(sv[1]);

        /* A memfd made without MFD_ALLOW_SEALING is still a memfd. */
        unsealable = memfd_create("plain", MFD_CLOEXEC);
        ck_assert_int_ge(unsealable, 0);
        mixed[0] = unsealable;
        mixed[1] = mfd;
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, mixed, 2), 0);
        ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, NULL), 1);
        ck_assert_uint_eq(vfiod_msg_free(msg), 2);

        expect_next_ok(sv[0], sv[1]);
        safe_close(unsealable);
        safe_close(pipefd[0]);
        safe_close(pipefd[1]);
        safe_close(evfd);
        safe_close(mfd);
        close_pair(sv);
}
END_TEST

/* The filter's side: what it took, for the test to close. */
struct taken {
        int fds[4];
        size_t n;
};

static void take_unwanted(int fd, void *userdata)
{
        struct taken *t = userdata;

        ck_assert_uint_lt(t->n, ELEMENTSOF(t->fds));
        t->fds[t->n++] = fd;
}

/*
 * With a filter, every fd that is neither a memfd nor an eventfd goes to it
 * right after recvmsg(), whatever the message (here one that names no fd),
 * and the datagram is rejected; memfds and eventfds never do.
 */
START_TEST(test_filter_takes_unwanted_fds)
{
        static struct map_dma_env e;
        uint32_t idx[] = {0, 1};
        struct taken t = {.n = 0};
        const struct vfiod_recv_filter filter = {.unwanted_take = take_unwanted, .userdata = &t};
        struct vfiod_msg *msg = NULL;
        const char *reason = NULL;
        int sv[2], mfd, evfd, pipefd[2], two[2], before;
        uint8_t junk[] = {0x08, 0x01};

        make_pair(sv);
        mfd = make_memfd("m", 4096);
        evfd = make_eventfd();
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        before = testutil_count_fds();

        /* A pipe and a memfd with bytes that are not even an Envelope. */
        two[0] = mfd;
        two[1] = pipefd[0];
        ck_assert_int_eq(vfiod_datagram_send(sv[0], junk, sizeof(junk), two, 2, 0), 0);
        ck_assert_int_eq(vfiod_msg_recv_filtered(sv[1], MSG_DONTWAIT, &filter, &msg, &reason),
                         -EBADFD);
        ck_assert_ptr_null(msg);
        ck_assert_ptr_nonnull(strstr(reason, "neither a memfd nor an eventfd"));
        ck_assert_uint_eq(t.n, 1);
        /* The filter owns the pipe's copy; the memfd's copy is closed. */
        ck_assert_int_eq(testutil_count_fds(), before + 1);
        safe_close(t.fds[0]);

        /* A memfd and an eventfd where they belong pass. */
        map_dma_env_init(&e, idx, 2);
        two[0] = mfd;
        two[1] = make_memfd("n", 4096);
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, two, 2), 0);
        safe_close(two[1]);
        ck_assert_int_eq(vfiod_msg_recv_filtered(sv[1], MSG_DONTWAIT, &filter, &msg, &reason), 1);
        ck_assert_uint_eq(vfiod_msg_free(msg), 2);
        ck_assert_uint_eq(t.n, 1);
        ck_assert_int_eq(testutil_count_fds(), before);

        safe_close(pipefd[0]);
        safe_close(pipefd[1]);
        safe_close(evfd);
        safe_close(mfd);
        close_pair(sv);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* send: refusals */

START_TEST(test_send_refuses)
{
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__Release rel = VFIOD__RELEASE__INIT;
        static struct map_dma_env e;
        struct vfiod_msg *msg = NULL;
        uint32_t idx[] = {0, 1};
        int sv[2], fds[2], before;

        make_pair(sv);
        fds[0] = make_memfd("a", 4096);
        fds[1] = make_memfd("b", 4096);
        before = testutil_count_fds();

        /* No body. */
        env.id = 1;
        ck_assert_int_eq(vfiod_msg_send(sv[0], &env, NULL, 0), -EINVAL);
        env.body_case = VFIOD__ENVELOPE__BODY_RELEASE;
        ck_assert_int_eq(vfiod_msg_send(sv[0], &env, NULL, 0), -EINVAL); /* NULL release */
        ck_assert_int_eq(vfiod_msg_send(sv[0], NULL, NULL, 0), -EINVAL);
        /* An fd the message does not name. */
        env.release = &rel;
        ck_assert_int_eq(vfiod_msg_send(sv[0], &env, fds, 1), -EINVAL);
        /* An index with no fd behind it. */
        map_dma_env_init(&e, idx, 2);
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, fds, 1), -EINVAL);
        /* fds missing altogether, or not fds. */
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, NULL, 2), -EINVAL);
        fds[1] = -fds[1];
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, fds, 2), -EBADF);
        fds[1] = -fds[1];
        /* A NULL range. */
        e.rp[1] = NULL;
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, fds, 2), -EINVAL);

        /* Nothing went out, and the caller's fds are all still its own. */
        ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, NULL), -EAGAIN);
        ck_assert_int_eq(testutil_count_fds(), before);
        ck_assert(fd_is_open(fds[0]) && fd_is_open(fds[1]));
        safe_close(fds[0]);
        safe_close(fds[1]);
        close_pair(sv);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* EOF, EPIPE, EAGAIN */

static void send_release(int sock, uint64_t id)
{
        Vfiod__Release rel = VFIOD__RELEASE__INIT;
        Vfiod__Envelope env = ENVELOPE(release, &rel);

        rel.lease_id = id;
        env.id = id;
        ck_assert_int_eq(vfiod_msg_send(sock, &env, NULL, 0), 0);
}

START_TEST(test_eof)
{
        struct vfiod_msg *msg = (struct vfiod_msg *)&msg;
        int sv[2];

        make_pair(sv);
        sv[0] = safe_close(sv[0]);
        ck_assert_int_eq(vfiod_msg_recv(sv[1], 0, &msg, NULL), 0);
        ck_assert_ptr_null(msg);
        /* And again: EOF stays EOF. */
        ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, NULL), 0);
        close_pair(sv);
}
END_TEST

/* The peer sends two messages (one with fds) and closes: both arrive, then EOF. */
START_TEST(test_peer_closes_mid_conversation)
{
        static struct map_dma_env e;
        struct vfiod_msg *msg = NULL;
        uint32_t idx[] = {0, 1};
        int sv[2], fds[2];

        make_pair(sv);
        fds[0] = make_memfd("a", 4096);
        fds[1] = make_memfd("b", 4096);
        map_dma_env_init(&e, idx, 2);
        send_release(sv[0], 1);
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, fds, 2), 0);
        sv[0] = safe_close(sv[0]);
        safe_close(fds[0]);
        safe_close(fds[1]);

        ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, NULL), 1);
        ck_assert_int_eq(msg->env->body_case, VFIOD__ENVELOPE__BODY_RELEASE);
        ck_assert_uint_eq(msg->env->release->lease_id, 1);
        vfiod_msg_free(msg);
        ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, NULL), 1);
        ck_assert_int_eq(msg->env->body_case, VFIOD__ENVELOPE__BODY_MAP_DMA);
        ck_assert_uint_eq(msg->n_fds, 2);
        ck_assert_uint_eq(vfiod_msg_free(msg), 2);
        ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, NULL), 0);
        ck_assert_ptr_null(msg);
        close_pair(sv);
}
END_TEST

/* We close with fds still queued to us: the kernel drops them, we leak nothing. */
START_TEST(test_close_with_fds_queued)
{
        static struct map_dma_env e;
        uint32_t idx[] = {0};
        int sv[2], fd, before;

        before = testutil_count_fds();
        make_pair(sv);
        fd = make_memfd("a", 4096);
        map_dma_env_init(&e, idx, 1);
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, &fd, 1), 0);
        ck_assert_int_eq(vfiod_msg_send(sv[1], &e.env, &fd, 1), 0);
        close_pair(sv);
        safe_close(fd);
        ck_assert_int_eq(testutil_count_fds(), before);
}
END_TEST

START_TEST(test_send_to_closed_peer)
{
        static struct map_dma_env e;
        uint32_t idx[] = {0};
        int sv[2], fd, before;

        /* SIGPIPE would kill this (forked) test: MSG_NOSIGNAL must prevent it. */
        signal(SIGPIPE, SIG_DFL);
        make_pair(sv);
        fd = make_memfd("a", 4096);
        map_dma_env_init(&e, idx, 1);
        sv[1] = safe_close(sv[1]);
        before = testutil_count_fds();
        last_sendmsg_flags = -1;
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, &fd, 1), -EPIPE);
        ck_assert_int_ne(last_sendmsg_flags, -1);
        ck_assert_msg(last_sendmsg_flags & MSG_NOSIGNAL, "sendmsg() without MSG_NOSIGNAL");
        map_dma_env_init(&e, idx, 0);
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, NULL, 0), -EPIPE);
        ck_assert_int_eq(testutil_count_fds(), before);
        ck_assert(fd_is_open(fd)); /* borrowed: still ours */
        safe_close(fd);
        close_pair(sv);
}
END_TEST

START_TEST(test_nonblocking)
{
        struct vfiod_msg *msg = (struct vfiod_msg *)&msg;
        const char *reason = NULL;
        int sv[2], r, sent = 0, small = 4096;

        make_pair(sv);
        /* Nothing queued: -EAGAIN, *ret untouched. */
        ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, &reason), -EAGAIN);
        ck_assert_ptr_eq(msg, (struct vfiod_msg *)&msg);
        ck_assert_ptr_nonnull(reason);

        /* Fill a non-blocking socket until the kernel says -EAGAIN. */
        ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
        ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
        for (;;) {
                Vfiod__Ok ok = VFIOD__OK__INIT;
                Vfiod__Envelope env = ENVELOPE(ok, &ok);

                env.id = (uint64_t)sent + 1;
                r = vfiod_msg_send(sv[0], &env, NULL, 0);
                if (r < 0)
                        break;
                ck_assert_int_lt(++sent, 100000);
        }
        ck_assert_int_eq(r, -EAGAIN);
        ck_assert_int_gt(sent, 0);
        /* Everything that was sent arrives, in order. */
        for (int i = 1; i <= sent; i++) {
                ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, NULL), 1);
                ck_assert_uint_eq(msg->env->id, (uint64_t)i);
                vfiod_msg_free(msg);
        }
        ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, NULL), -EAGAIN);
        close_pair(sv);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* message ownership and helpers */

START_TEST(test_take_fd_and_free)
{
        static struct map_dma_env e;
        struct vfiod_msg *msg = NULL;
        uint32_t idx[] = {2, 1, 0};
        int sv[2], fds[3], got, before;

        make_pair(sv);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = make_memfd("ram", 4096);
        map_dma_env_init(&e, idx, 3);
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, fds, 3), 0);
        ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, NULL), 1);
        before = testutil_count_fds();

        got = vfiod_msg_take_fd(msg, 1);
        ck_assert_int_ge(got, 0);
        assert_same_file(got, fds[1]);
        ck_assert_int_eq(msg->fds[1], -1);
        ck_assert_int_eq(vfiod_msg_take_fd(msg, 1), -EBADF);
        ck_assert_int_eq(vfiod_msg_take_fd(msg, 3), -ERANGE);
        ck_assert_int_eq(vfiod_msg_take_fd(msg, (size_t)-1), -ERANGE);
        ck_assert_int_eq(vfiod_msg_take_fd(NULL, 0), -ERANGE);

        /* Closing the rest counts them and leaves the message usable. */
        ck_assert_uint_eq(vfiod_msg_close_fds(msg), 2);
        ck_assert_int_eq(testutil_count_fds(), before - 2);
        ck_assert_uint_eq(vfiod_msg_close_fds(msg), 0);
        ck_assert_int_eq(vfiod_msg_take_fd(msg, 0), -EBADF);
        ck_assert_uint_eq(vfiod_msg_free(msg), 0);
        ck_assert_uint_eq(vfiod_msg_free(NULL), 0);
        ck_assert(fd_is_open(got));
        safe_close(got);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                safe_close(fds[i]);
        close_pair(sv);
}
END_TEST

START_TEST(test_cleanup_msg)
{
        static struct map_dma_env e;
        uint32_t idx[] = {0};
        int sv[2], fd, before;

        make_pair(sv);
        fd = make_memfd("a", 4096);
        map_dma_env_init(&e, idx, 1);
        ck_assert_int_eq(vfiod_msg_send(sv[0], &e.env, &fd, 1), 0);
        before = testutil_count_fds();
        {
                _cleanup_(vfiod_msg_freep) struct vfiod_msg *msg = NULL;

                ck_assert_int_eq(vfiod_msg_recv(sv[1], MSG_DONTWAIT, &msg, NULL), 1);
                ck_assert_int_eq(testutil_count_fds(), before + 1);
        }
        ck_assert_int_eq(testutil_count_fds(), before);
        safe_close(fd);
        close_pair(sv);
}
END_TEST

struct visited {
        int64_t idx[16];
        enum vfiod_fd_kind kind[16];
        size_t n;
};

static int record_index(int64_t index, enum vfiod_fd_kind kind, void *userdata)
{
        struct visited *v = userdata;

        ck_assert_uint_lt(v->n, ELEMENTSOF(v->idx));
        v->kind[v->n] = kind;
        v->idx[v->n++] = index;
        return index == 42 ? -E2BIG : 0;
}

START_TEST(test_fd_indices)
{
        Vfiod__AcquireReply a = VFIOD__ACQUIRE_REPLY__INIT;
        Vfiod__Envelope env = ENVELOPE(acquire_reply, &a);
        Vfiod__SetIrqs s = VFIOD__SET_IRQS__INIT;
        Vfiod__Hello h = VFIOD__HELLO__INIT;
        int32_t ev[] = {-1, 3, -1, 42, 5};
        struct visited v = {.n = 0};

        /* DIRECT AcquireReply: container, group, device in field order. */
        a.has_container_fd_case = VFIOD__ACQUIRE_REPLY__HAS_CONTAINER_FD_CONTAINER_FD;
        a.container_fd = 7;
        a.has_group_fd_case = VFIOD__ACQUIRE_REPLY__HAS_GROUP_FD_GROUP_FD;
        a.group_fd = 0;
        a.has_device_fd_case = VFIOD__ACQUIRE_REPLY__HAS_DEVICE_FD_DEVICE_FD;
        a.device_fd = 1;
        ck_assert_int_eq(vfiod_envelope_fd_indices(&env, record_index, &v), 3);
        ck_assert_uint_eq(v.n, 3);
        ck_assert_int_eq(v.idx[0], 7);
        ck_assert_int_eq(v.idx[1], 0);
        ck_assert_int_eq(v.idx[2], 1);
        ck_assert_int_eq(v.kind[0], VFIOD_FD_KIND_VFIO_CONTAINER);
        ck_assert_int_eq(v.kind[1], VFIOD_FD_KIND_VFIO_GROUP);
        ck_assert_int_eq(v.kind[2], VFIOD_FD_KIND_VFIO_DEVICE);

        /* IOMMUFD DIRECT AcquireReply: the cdev (device) and the iommufd. */
        v.n = 0;
        a.has_container_fd_case = VFIOD__ACQUIRE_REPLY__HAS_CONTAINER_FD__NOT_SET;
        a.has_group_fd_case = VFIOD__ACQUIRE_REPLY__HAS_GROUP_FD__NOT_SET;
        a.device_fd = 0;
        a.has_iommufd_fd_case = VFIOD__ACQUIRE_REPLY__HAS_IOMMUFD_FD_IOMMUFD_FD;
        a.iommufd_fd = 1;
        ck_assert_int_eq(vfiod_envelope_fd_indices(&env, record_index, &v), 2);
        ck_assert_int_eq(v.idx[0], 0);
        ck_assert_int_eq(v.kind[0], VFIOD_FD_KIND_VFIO_DEVICE);
        ck_assert_int_eq(v.idx[1], 1);
        ck_assert_int_eq(v.kind[1], VFIOD_FD_KIND_IOMMUFD);

        /* SetIrqs: -1 skipped; a visitor error stops the walk. */
        v.n = 0;
        s.n_eventfds = ELEMENTSOF(ev);
        s.eventfds = ev;
        env = ENVELOPE(set_irqs, &s);
        ck_assert_int_eq(vfiod_envelope_fd_indices(&env, record_index, &v), -E2BIG);
        ck_assert_uint_eq(v.n, 2);
        ck_assert_int_eq(v.idx[0], 3);
        ck_assert_int_eq(v.idx[1], 42);
        ck_assert_int_eq(v.kind[0], VFIOD_FD_KIND_EVENTFD);

        /* A body without fds; a NULL body message. */
        v.n = 0;
        env = ENVELOPE(hello, &h);
        ck_assert_int_eq(vfiod_envelope_fd_indices(&env, record_index, &v), 0);
        ck_assert_uint_eq(v.n, 0);
        env = ENVELOPE(set_irqs, (Vfiod__SetIrqs *)NULL);
        ck_assert_int_eq(vfiod_envelope_fd_indices(&env, record_index, &v), -EINVAL);
}
END_TEST

START_TEST(test_check_fds)
{
        static struct map_dma_env e;
        uint32_t idx[] = {1, 1, 0};
        Vfiod__Envelope none = VFIOD__ENVELOPE__INIT;
        const char *reason = NULL;

        map_dma_env_init(&e, idx, 3);
        ck_assert_int_eq(vfiod_envelope_check_fds(&e.env, NULL, 2, &reason), 0);
        ck_assert_int_eq(vfiod_envelope_check_fds(&e.env, NULL, 1, &reason), -EBADR);
        ck_assert_ptr_nonnull(reason);
        reason = NULL;
        ck_assert_int_eq(vfiod_envelope_check_fds(&e.env, NULL, 3, &reason), -EPROTO);
        ck_assert_ptr_nonnull(reason);
        ck_assert_int_eq(vfiod_envelope_check_fds(&e.env, NULL, VFIOD_PROTO_MAX_FDS + 1, NULL),
                         -ETOOMANYREFS);
        ck_assert_int_eq(vfiod_envelope_check_fds(&none, NULL, 0, NULL), -ENOMSG);
        ck_assert_int_eq(vfiod_envelope_check_fds(NULL, NULL, 0, NULL), -ENOMSG);
}
END_TEST

/* An allocator that counts what is out, to see every decode failure give it all back. */
static long allocs_out;

static void *counting_alloc(void *data, size_t size)
{
        (void)data;
        allocs_out++;
        return malloc(size);
}

static void counting_free(void *data, void *p)
{
        (void)data;
        if (p)
                allocs_out--;
        free(p);
}

static ProtobufCAllocator counting = {.alloc = counting_alloc, .free = counting_free};

static Vfiod__Envelope *decode(const uint8_t *data, size_t len)
{
        return vfiod_envelope_decode(&counting, data, len);
}

START_TEST(test_envelope_codec)
{
        /* id 7; unknown fields 200 (varint), 201 (64-bit), 202 (bytes), 203 (32-bit); Stats. */
        static const uint8_t unknown[] = {
            0x08, 0x07, 0xc0, 0x0c, 0x96, 0x01, 0xc9, 0x0c, 1, 2, 3, 4, 5,    6,    7,
            8,    0xd2, 0x0c, 0x02, 0xaa, 0xbb, 0xdd, 0x0c, 1, 2, 3, 4, 0xea, 0x02, 0x00};
        /* Stats then Ok (field 13, an empty message): the last body counts. */
        static const uint8_t two[] = {0x08, 0x09, 0xea, 0x02, 0x00, 0x6a, 0x00};
        static const struct {
                const char *what;
                uint8_t bytes[16];
                size_t len;
        } bad[] = {
            {"truncated varint", {0x08, 0x80}, 2},
            {"varint over 64 bits",
             {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
             11},
            {"field 0", {0x00, 0x01}, 2},
            {"id not a varint", {0x0a, 0x00}, 2},
            {"body not length-prefixed", {0xe8, 0x02, 0x00}, 3},
            {"body longer than the datagram", {0xea, 0x02, 0x05, 0x00}, 4},
            {"body that does not decode", {0xea, 0x02, 0x02, 0x08, 0x80}, 5},
            {"a group", {0xc3, 0x0c}, 2},
            {"unknown bytes cut short", {0xd2, 0x0c, 0x09, 0x01}, 4},
            {"unknown 64-bit cut short", {0xc9, 0x0c, 0x01}, 3},
            {"second body that does not decode", {0xea, 0x02, 0x00, 0x6a, 0x02, 0x08}, 6},
        };
        Vfiod__Stats stats = VFIOD__STATS__INIT;
        Vfiod__Envelope env = ENVELOPE(stats, &stats), *e;
        uint8_t buf[64];

        e = decode(unknown, sizeof(unknown));
        ck_assert_ptr_nonnull(e);
        ck_assert_uint_eq(e->id, 7);
        ck_assert_int_eq(e->body_case, VFIOD__ENVELOPE__BODY_STATS);
        ck_assert_ptr_nonnull(e->stats);
        vfiod__envelope__free_unpacked(e, &counting);
        ck_assert_int_eq(allocs_out, 0);
        /* protobuf-c reads the same. */
        e = vfiod__envelope__unpack(NULL, sizeof(unknown), unknown);
        ck_assert(e && e->id == 7 && e->body_case == VFIOD__ENVELOPE__BODY_STATS);
        vfiod__envelope__free_unpacked(e, NULL);

        e = decode(two, sizeof(two));
        ck_assert_ptr_nonnull(e);
        ck_assert_int_eq(e->body_case, VFIOD__ENVELOPE__BODY_OK);
        ck_assert_ptr_nonnull(e->ok);
        vfiod__envelope__free_unpacked(e, &counting);
        ck_assert_int_eq(allocs_out, 0);

        /* Empty: id 0, no body (the transport then refuses it: no body). */
        e = decode(buf, 0);
        ck_assert(e && e->id == 0 && e->body_case == VFIOD__ENVELOPE__BODY__NOT_SET);
        vfiod__envelope__free_unpacked(e, &counting);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                ck_assert_msg(decode(bad[i].bytes, bad[i].len) == NULL, "%s: decoded", bad[i].what);
                ck_assert_msg(allocs_out == 0, "%s: %ld allocation(s) not given back", bad[i].what,
                              allocs_out);
        }

        /* Encoding: a zero id is left out; no room; a body_case that names nothing. */
        ck_assert_int_eq(vfiod_envelope_encode(&env, buf, sizeof(buf)), 3);
        ck_assert(memcmp(buf, "\xea\x02\x00", 3) == 0);
        env.id = UINT64_MAX;
        ck_assert_int_eq(vfiod_envelope_encode(&env, buf, 13), -EMSGSIZE);
        ck_assert_int_eq(vfiod_envelope_encode(&env, buf, 14), 14);
        ck_assert_int_eq(vfiod_envelope_encode(&env, buf, sizeof(buf)), 14);
        env.body_case = (Vfiod__Envelope__BodyCase)99;
        ck_assert_int_eq(vfiod_envelope_encode(&env, buf, sizeof(buf)), -EINVAL);
}
END_TEST

/* vfiod_envelope_encode() of env writes protobuf-c's bytes. */
static void assert_encodes_as_protobuf_c(const Vfiod__Envelope *env)
{
        uint8_t a[512], b[512];
        size_t la = vfiod__envelope__get_packed_size(env);

        ck_assert_uint_le(la, sizeof(a));
        ck_assert_uint_eq(vfiod__envelope__pack(env, a), la);
        ck_assert_int_eq(vfiod_envelope_encode(env, b, sizeof(b)), (long)la);
        ck_assert(memcmp(a, b, la) == 0);
        /* Exactly la bytes of room suffice, one less does not. */
        ck_assert_int_eq(vfiod_envelope_encode(env, b, la), (long)la);
        ck_assert_int_eq(vfiod_envelope_encode(env, b, la - 1), -EMSGSIZE);
}

/*
 * Bodies of scalars only (counts, ids, enums, bools) are packed in one pass
 * by the transport itself: the same bytes as protobuf-c's, with zeros left
 * out, the largest values, a negative enum (ten bytes) and unknown fields
 * (then protobuf-c packs).
 */
START_TEST(test_flat_bodies_encode_as_protobuf_c)
{
        Vfiod__StatsReply st = VFIOD__STATS_REPLY__INIT;
        Vfiod__CreateDomainReply cd = VFIOD__CREATE_DOMAIN_REPLY__INIT;
        Vfiod__MapDmaReply md = VFIOD__MAP_DMA_REPLY__INIT;
        Vfiod__DmaRange dr = VFIOD__DMA_RANGE__INIT;
        Vfiod__Envelope env = ENVELOPE(stats_reply, &st);
        ProtobufCMessageUnknownField unknown = {.tag = 300,
                                                .wire_type = PROTOBUF_C_WIRE_TYPE_VARINT,
                                                .len = 1,
                                                .data = (uint8_t[]){0x05}};

        env.id = 1;
        assert_encodes_as_protobuf_c(&env);
        st.clients = UINT32_MAX;
        st.domains = 1;
        st.pinned_bytes = UINT64_MAX;
        st.requests = 0x80;
        st.uptime_ms = 1ull << 63;
        assert_encodes_as_protobuf_c(&env);
        st.base.n_unknown_fields = 1;
        st.base.unknown_fields = &unknown;
        assert_encodes_as_protobuf_c(&env);

        env = (Vfiod__Envelope)ENVELOPE(create_domain_reply, &cd);
        env.id = UINT64_MAX;
        cd.domain_id = 42;
        cd.iommu_type = (Vfiod__IommuType)-1;
        assert_encodes_as_protobuf_c(&env);

        env = (Vfiod__Envelope)ENVELOPE(map_dma_reply, &md);
        md.mapped = 3;
        md.bytes = 3 * 4096;
        assert_encodes_as_protobuf_c(&env);

        /* Not a body, but flat too: a DmaRange with its bools. */
        dr.fd_index = 2;
        dr.iova = 0x100000;
        dr.readable = 1;
        dr.writable = 0;
        {
                Vfiod__MapDma m = VFIOD__MAP_DMA__INIT;
                Vfiod__DmaRange *rs[] = {&dr};

                m.n_ranges = 1;
                m.ranges = rs;
                env = (Vfiod__Envelope)ENVELOPE(map_dma, &m);
                assert_encodes_as_protobuf_c(&env);
        }
}
END_TEST

/* Appends field `field` (length-delimited) holding msg, packed by protobuf-c, at *p. */
static size_t put_body(uint8_t *p, uint32_t field, const ProtobufCMessage *msg)
{
        size_t n = 0, len = protobuf_c_message_get_packed_size(msg);

        for (uint32_t tag = field << 3 | 2; tag; tag >>= 7)
                p[n++] = (uint8_t)(tag >= 0x80 ? (tag & 0x7f) | 0x80 : tag);
        ck_assert_uint_lt(len, 0x80);
        p[n++] = (uint8_t)len;
        return n + protobuf_c_message_pack(msg, p + n);
}

/*
 * A body that occurs twice merges as protobuf says (the fields of both, a
 * later scalar over an earlier one, repeated fields appended): exactly what
 * protobuf-c makes of the two bodies' bytes one after the other. Another
 * member of the oneof in between starts over (the last member counts).
 */
START_TEST(test_envelope_body_twice_merges)
{
        Vfiod__Hello h1 = VFIOD__HELLO__INIT, h2 = VFIOD__HELLO__INIT, *want;
        Vfiod__MapDma m1 = VFIOD__MAP_DMA__INIT, m2 = VFIOD__MAP_DMA__INIT;
        Vfiod__DmaRange r1 = VFIOD__DMA_RANGE__INIT, r2 = VFIOD__DMA_RANGE__INIT;
        Vfiod__DmaRange *rs1[] = {&r1}, *rs2[] = {&r2};
        Vfiod__Stats st = VFIOD__STATS__INIT;
        uint8_t buf[256], bodies[256];
        size_t n, nb;
        Vfiod__Envelope *e;

        h1.major = 1;
        h1.max_fds = 7;
        h2.capabilities = 8;
        h2.max_datagram = 4096;
        h2.max_fds = 9;
        buf[0] = 0x08; /* id 5 */
        buf[1] = 0x05;
        n = 2;
        n += put_body(buf + n, VFIOD__ENVELOPE__BODY_HELLO, &h1.base);
        n += put_body(buf + n, VFIOD__ENVELOPE__BODY_HELLO, &h2.base);
        nb = protobuf_c_message_pack(&h1.base, bodies);
        nb += protobuf_c_message_pack(&h2.base, bodies + nb);
        want = vfiod__hello__unpack(NULL, nb, bodies);
        ck_assert_ptr_nonnull(want);
        e = decode(buf, n);
        ck_assert_ptr_nonnull(e);
        ck_assert_uint_eq(e->id, 5);
        ck_assert_int_eq(e->body_case, VFIOD__ENVELOPE__BODY_HELLO);
        ck_assert_uint_eq(e->hello->major, 1);
        ck_assert_uint_eq(e->hello->major, want->major);
        ck_assert_uint_eq(e->hello->capabilities, want->capabilities);
        ck_assert_uint_eq(e->hello->max_datagram, want->max_datagram);
        ck_assert_uint_eq(e->hello->max_fds, want->max_fds);
        ck_assert_uint_eq(e->hello->max_fds, 9);
        vfiod__envelope__free_unpacked(e, &counting);
        vfiod__hello__free_unpacked(want, NULL);
        ck_assert_int_eq(allocs_out, 0);

        /* Repeated fields of the two bodies add up. */
        m1.domain_id = 3;
        m1.n_ranges = 1;
        m1.ranges = rs1;
        r1.iova = 0x1000;
        m2.n_ranges = 1;
        m2.ranges = rs2;
        r2.iova = 0x2000;
        n = put_body(buf, VFIOD__ENVELOPE__BODY_MAP_DMA, &m1.base);
        n += put_body(buf + n, VFIOD__ENVELOPE__BODY_MAP_DMA, &m2.base);
        e = decode(buf, n);
        ck_assert_ptr_nonnull(e);
        ck_assert_int_eq(e->body_case, VFIOD__ENVELOPE__BODY_MAP_DMA);
        ck_assert_uint_eq(e->map_dma->domain_id, 3);
        ck_assert_uint_eq(e->map_dma->n_ranges, 2);
        ck_assert_uint_eq(e->map_dma->ranges[0]->iova, 0x1000);
        ck_assert_uint_eq(e->map_dma->ranges[1]->iova, 0x2000);
        vfiod__envelope__free_unpacked(e, &counting);
        ck_assert_int_eq(allocs_out, 0);

        /* Hello, Stats, Hello: the Stats ends the first Hello; only the second counts. */
        n = put_body(buf, VFIOD__ENVELOPE__BODY_HELLO, &h1.base);
        n += put_body(buf + n, VFIOD__ENVELOPE__BODY_STATS, &st.base);
        n += put_body(buf + n, VFIOD__ENVELOPE__BODY_HELLO, &h2.base);
        e = decode(buf, n);
        ck_assert_ptr_nonnull(e);
        ck_assert_int_eq(e->body_case, VFIOD__ENVELOPE__BODY_HELLO);
        ck_assert_uint_eq(e->hello->major, 0);
        ck_assert_uint_eq(e->hello->max_datagram, 4096);
        vfiod__envelope__free_unpacked(e, &counting);
        ck_assert_int_eq(allocs_out, 0);

        /* A second body that does not decode fails the whole envelope. */
        n = put_body(buf, VFIOD__ENVELOPE__BODY_HELLO, &h1.base);
        buf[n++] = 0x52;
        buf[n++] = 0x02;
        buf[n++] = 0x08;
        buf[n++] = 0x80;
        ck_assert_ptr_null(decode(buf, n));
        ck_assert_int_eq(allocs_out, 0);
}
END_TEST

START_TEST(test_body_name)
{
        Vfiod__Envelope env = VFIOD__ENVELOPE__INIT;
        Vfiod__MapDma md = VFIOD__MAP_DMA__INIT;

        ck_assert_str_eq(vfiod_envelope_body_name(&env), "none");
        ck_assert_str_eq(vfiod_envelope_body_name(NULL), "none");
        env = ENVELOPE(map_dma, &md);
        ck_assert_str_eq(vfiod_envelope_body_name(&env), "map_dma");
        env.body_case = VFIOD__ENVELOPE__BODY_LEASE_REVOKED;
        ck_assert_str_eq(vfiod_envelope_body_name(&env), "lease_revoked");
}
END_TEST

/* ------------------------------------------------------------------------- */

static Suite *transport_suite(void)
{
        Suite *s = suite_create("transport");
        TCase *tc;

        tc = tcase_create("roundtrip");
        testutil_tcase_fd_checked(tc);
        tcase_add_loop_test(tc, test_roundtrip, 0, (int)ELEMENTSOF(roundtrip_cases));
        tcase_add_loop_test(tc, test_roundtrip_with_fds, 0, (int)ELEMENTSOF(roundtrips_with_fds));
        tcase_add_test(tc, test_wire_numbers);
        tcase_add_test(tc, test_roundtrip_covers_schema);
        tcase_add_test(tc, test_flat_bodies_encode_as_protobuf_c);
        tcase_add_test(tc, test_max_datagram_boundary);
        tcase_add_test(tc, test_max_fds);
        suite_add_tcase(s, tc);

        tc = tcase_create("reject");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_reject_oversized);
        tcase_add_test(tc, test_reject_fds_truncated);
        tcase_add_test(tc, test_reject_garbage);
        tcase_add_test(tc, test_reject_no_body);
        tcase_add_test(tc, test_reject_unnamed_fds);
        tcase_add_test(tc, test_reject_missing_fds);
        tcase_add_test(tc, test_reject_foreign_cmsg);
        tcase_add_test(tc, test_reject_wrong_kind);
        tcase_add_test(tc, test_filter_takes_unwanted_fds);
        tcase_add_test(tc, test_send_refuses);
        suite_add_tcase(s, tc);

        tc = tcase_create("connection");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_eof);
        tcase_add_test(tc, test_peer_closes_mid_conversation);
        tcase_add_test(tc, test_close_with_fds_queued);
        tcase_add_test(tc, test_send_to_closed_peer);
        tcase_add_test(tc, test_nonblocking);
        suite_add_tcase(s, tc);

        tc = tcase_create("message");
        testutil_tcase_fd_checked(tc);
        tcase_add_test(tc, test_take_fd_and_free);
        tcase_add_test(tc, test_cleanup_msg);
        tcase_add_test(tc, test_fd_indices);
        tcase_add_test(tc, test_check_fds);
        tcase_add_test(tc, test_body_name);
        tcase_add_test(tc, test_envelope_codec);
        tcase_add_test(tc, test_envelope_body_twice_merges);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return testutil_run_suite(transport_suite());
}
