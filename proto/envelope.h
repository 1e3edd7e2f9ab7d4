/* SPDX-License-Identifier: MIT */
/*
 * The Envelope's own codec: an id and one body. protobuf-c's generic code
 * walks every member of the envelope's 30-way oneof to pack and to unpack
 * (about 1,000 instructions each way, more than a small body costs); these
 * read and write the two fields directly and hand the body to protobuf-c.
 * The bytes are protobuf-c's: vfiod__envelope__pack() of the same envelope
 * writes the same, and vfiod__envelope__unpack() reads what these write.
 * Library code: nothing here prints.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "proto/vfiod.pb-c.h"

/*
 * Packs env into buf[0..size). Returns the length, or -EMSGSIZE when it does
 * not fit, -EINVAL when body_case names no body field.
 */
long vfiod_envelope_encode(const Vfiod__Envelope *env, uint8_t *buf, size_t size);

/*
 * Unpacks data[0..len) with the allocator (not NULL): everything it returns,
 * envelope and body, comes from it; NULL when the bytes are not an Envelope
 * (what was allocated is given back). Unknown fields are skipped. As protobuf
 * specifies: of several members of the body oneof the last one counts, and a
 * member that occurs more than once (with no other member after its first
 * occurrence) is merged: the fields of every occurrence, a later scalar over
 * an earlier one, repeated fields appended. Every occurrence must decode.
 */
Vfiod__Envelope *vfiod_envelope_decode(ProtobufCAllocator *allocator, const uint8_t *data,
                                       size_t len);

/*
 * An Envelope with id 0 and one body, body_case and the body pointer set
 * together: `Vfiod__Envelope env = ENVELOPE(hello, &h);`. The case follows
 * from the body's type (VFIOD_ENVELOPE_BODY_CASE), so the two cannot
 * disagree; a field whose type is not the body's does not compile.
 */
#define ENVELOPE(field, body)                                                             \
        ((Vfiod__Envelope){.base = PROTOBUF_C_MESSAGE_INIT(&vfiod__envelope__descriptor), \
                           .body_case = VFIOD_ENVELOPE_BODY_CASE(body),                   \
                           .field = (body)})

/* The body_case of a pointer to a body message (one line per member of the oneof). */
// clang-format off
#define VFIOD_ENVELOPE_BODY_CASE(body)                                                           \
        _Generic((body),                                                                         \
                 Vfiod__Hello *:             VFIOD__ENVELOPE__BODY_HELLO,                        \
                 Vfiod__HelloReply *:        VFIOD__ENVELOPE__BODY_HELLO_REPLY,                  \
                 Vfiod__Error *:             VFIOD__ENVELOPE__BODY_ERROR,                        \
                 Vfiod__Ok *:                VFIOD__ENVELOPE__BODY_OK,                           \
                 Vfiod__ListDevices *:       VFIOD__ENVELOPE__BODY_LIST_DEVICES,                 \
                 Vfiod__ListDevicesReply *:  VFIOD__ENVELOPE__BODY_LIST_DEVICES_REPLY,           \
                 Vfiod__CreateDomain *:      VFIOD__ENVELOPE__BODY_CREATE_DOMAIN,                \
                 Vfiod__CreateDomainReply *: VFIOD__ENVELOPE__BODY_CREATE_DOMAIN_REPLY,          \
                 Vfiod__DestroyDomain *:     VFIOD__ENVELOPE__BODY_DESTROY_DOMAIN,               \
                 Vfiod__Acquire *:           VFIOD__ENVELOPE__BODY_ACQUIRE,                      \
                 Vfiod__AcquireReply *:      VFIOD__ENVELOPE__BODY_ACQUIRE_REPLY,                \
                 Vfiod__Release *:           VFIOD__ENVELOPE__BODY_RELEASE,                      \
                 Vfiod__Reset *:             VFIOD__ENVELOPE__BODY_RESET,                        \
                 Vfiod__MapDma *:            VFIOD__ENVELOPE__BODY_MAP_DMA,                      \
                 Vfiod__MapDmaReply *:       VFIOD__ENVELOPE__BODY_MAP_DMA_REPLY,                \
                 Vfiod__UnmapDma *:          VFIOD__ENVELOPE__BODY_UNMAP_DMA,                    \
                 Vfiod__UnmapDmaReply *:     VFIOD__ENVELOPE__BODY_UNMAP_DMA_REPLY,              \
                 Vfiod__SetIrqs *:           VFIOD__ENVELOPE__BODY_SET_IRQS,                     \
                 Vfiod__ListLeases *:        VFIOD__ENVELOPE__BODY_LIST_LEASES,                  \
                 Vfiod__ListLeasesReply *:   VFIOD__ENVELOPE__BODY_LIST_LEASES_REPLY,            \
                 Vfiod__Revoke *:            VFIOD__ENVELOPE__BODY_REVOKE,                       \
                 Vfiod__ReloadPolicy *:      VFIOD__ENVELOPE__BODY_RELOAD_POLICY,                \
                 Vfiod__ReloadPolicyReply *: VFIOD__ENVELOPE__BODY_RELOAD_POLICY_REPLY,          \
                 Vfiod__Stats *:             VFIOD__ENVELOPE__BODY_STATS,                        \
                 Vfiod__StatsReply *:        VFIOD__ENVELOPE__BODY_STATS_REPLY,                  \
                 Vfiod__ReleaseRequested *:  VFIOD__ENVELOPE__BODY_RELEASE_REQUESTED,            \
                 Vfiod__DeviceError *:       VFIOD__ENVELOPE__BODY_DEVICE_ERROR,                 \
                 Vfiod__LeaseRevoked *:      VFIOD__ENVELOPE__BODY_LEASE_REVOKED)
// clang-format on
