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
