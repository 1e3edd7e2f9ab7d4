/* SPDX-License-Identifier: MIT */
#include "proto/envelope.h"

#include <errno.h>
#include <stdbool.h>

enum { WIRE_VARINT = 0, WIRE_64BIT = 1, WIRE_LEN = 2, WIRE_32BIT = 5 };

static size_t varint_size(uint64_t v)
{
        size_t n = 1;

        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}

static size_t varint_put(uint8_t *p, uint64_t v)
{
        size_t n = 0;

        while (v >= 0x80) {
                p[n++] = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        p[n++] = (uint8_t)v;
        return n;
}

/* Reads a varint at *p (below end); false when truncated or over 10 bytes. */
static bool varint_get(const uint8_t **p, const uint8_t *end, uint64_t *ret)
{
        uint64_t v = 0;

        for (unsigned shift = 0; shift < 70 && *p < end; shift += 7) {
                uint8_t b = *(*p)++;

                if (shift == 63 && b > 1)
                        return false; /* more than 64 bits */
                v |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *ret = v;
                        return true;
                }
        }
        return false;
}

/* The body field and message of env, or NULL (no body, or body_case unknown). */
static const ProtobufCFieldDescriptor *body_field(const Vfiod__Envelope *env,
                                                  const ProtobufCMessage **ret_body)
{
        const ProtobufCFieldDescriptor *f;

        if (env->body_case == VFIOD__ENVELOPE__BODY__NOT_SET)
                return NULL;
        f = protobuf_c_message_descriptor_get_field(&vfiod__envelope__descriptor,
                                                    (unsigned)env->body_case);
        if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
                return NULL;
        *ret_body = *(const ProtobufCMessage *const *)((const char *)env + f->offset);
        return f;
}

long vfiod_envelope_encode(const Vfiod__Envelope *env, uint8_t *buf, size_t size)
{
        const ProtobufCMessage *body = NULL;
        const ProtobufCFieldDescriptor *f = body_field(env, &body);
        size_t n = 0, body_size = 0, total = 0;

        if (env->body_case != VFIOD__ENVELOPE__BODY__NOT_SET && !f)
                return -EINVAL;
        /* proto3: a zero id is not written. */
        if (env->id != 0)
                total += 1 + varint_size(env->id);
        if (f) {
                body_size = body ? protobuf_c_message_get_packed_size(body) : 0;
                total += varint_size(((uint64_t)f->id << 3) | WIRE_LEN) + varint_size(body_size) +
                         body_size;
        }
        if (total > size)
                return -EMSGSIZE;
        if (env->id != 0) {
                buf[n++] = (1u << 3) | WIRE_VARINT;
                n += varint_put(buf + n, env->id);
        }
        if (f) {
                n += varint_put(buf + n, ((uint64_t)f->id << 3) | WIRE_LEN);
                n += varint_put(buf + n, body_size);
                if (body)
                        n += protobuf_c_message_pack(body, buf + n);
        }
        return (long)n;
}

Vfiod__Envelope *vfiod_envelope_decode(ProtobufCAllocator *allocator, const uint8_t *data,
                                       size_t len)
{
        const uint8_t *p = data, *end = data + len;
        Vfiod__Envelope *env = allocator->alloc(allocator->allocator_data, sizeof(*env));
        ProtobufCMessage **body = NULL;

        if (!env)
                return NULL;
        vfiod__envelope__init(env);
        while (p < end) {
                const ProtobufCFieldDescriptor *f;
                uint64_t tag, v;
                uint32_t field;
                unsigned wire;

                if (!varint_get(&p, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX)
                        goto fail;
                field = (uint32_t)(tag >> 3);
                wire = (unsigned)(tag & 7);
                f = protobuf_c_message_descriptor_get_field(&vfiod__envelope__descriptor, field);
                if (f && field == 1) {
                        if (wire != WIRE_VARINT || !varint_get(&p, end, &env->id))
                                goto fail;
                        continue;
                }
                if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                        ProtobufCMessage *m;

                        if (wire != WIRE_LEN || !varint_get(&p, end, &v) || v > (uint64_t)(end - p))
                                goto fail;
                        m = protobuf_c_message_unpack(f->descriptor, allocator, (size_t)v, p);
                        if (!m)
                                goto fail;
                        p += v;
                        if (body && *body)
                                protobuf_c_message_free_unpacked(*body, allocator);
                        body = (ProtobufCMessage **)((char *)env + f->offset);
                        *body = m;
                        *(uint32_t *)((char *)env + f->quantifier_offset) = field;
                        continue;
                }
                /* Unknown (or, impossibly, another kind of known field): skipped. */
                switch (wire) {
                case WIRE_VARINT:
                        if (!varint_get(&p, end, &v))
                                goto fail;
                        break;
                case WIRE_64BIT:
                        if (end - p < 8)
                                goto fail;
                        p += 8;
                        break;
                case WIRE_LEN:
                        if (!varint_get(&p, end, &v) || v > (uint64_t)(end - p))
                                goto fail;
                        p += v;
                        break;
                case WIRE_32BIT:
                        if (end - p < 4)
                                goto fail;
                        p += 4;
                        break;
                default: /* groups, and wire types that do not exist */
                        goto fail;
                }
        }
        return env;

fail:
        if (body && *body)
                protobuf_c_message_free_unpacked(*body, allocator);
        allocator->free(allocator->allocator_data, env);
        return NULL;
}
