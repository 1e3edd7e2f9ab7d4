/* SPDX-License-Identifier: MIT */
#include "proto/envelope.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

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

/* Most bytes flat_pack() writes: per field a tag (5) and a varint (10). */
#define FLAT_FIELDS_MAX 16
#define FLAT_MAX        (FLAT_FIELDS_MAX * 15)

/*
 * Packs m into out[FLAT_MAX] as protobuf_c_message_pack() would, in one
 * pass, when every field is a proto3 scalar written as a varint (integers,
 * bools, enums; no presence, no oneof, not repeated): the replies that
 * carry counts. Returns the size, or -1 for any other message (the caller
 * then packs it as usual).
 */
static long flat_pack(const ProtobufCMessage *m, uint8_t *out)
{
        const ProtobufCMessageDescriptor *d = m->descriptor;
        size_t n = 0;

        if (d->n_fields > FLAT_FIELDS_MAX || m->n_unknown_fields > 0)
                return -1;
        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &d->fields[i];
                const void *at = (const char *)m + f->offset;
                uint64_t v;

                if (f->label != PROTOBUF_C_LABEL_NONE || (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
                        return -1;
                switch (f->type) {
                case PROTOBUF_C_TYPE_UINT32:
                        v = *(const uint32_t *)at;
                        break;
                case PROTOBUF_C_TYPE_INT32:
                case PROTOBUF_C_TYPE_ENUM:
                        /* Negative: sign-extended to ten bytes, as protobuf says. */
                        v = (uint64_t)(int64_t) * (const int32_t *)at;
                        break;
                case PROTOBUF_C_TYPE_UINT64:
                case PROTOBUF_C_TYPE_INT64:
                        v = *(const uint64_t *)at;
                        break;
                case PROTOBUF_C_TYPE_BOOL:
                        v = *(const protobuf_c_boolean *)at ? 1 : 0;
                        break;
                default:
                        return -1;
                }
                if (v == 0)
                        continue; /* proto3: a zero scalar is not written */
                n += varint_put(out + n, ((uint64_t)f->id << 3) | WIRE_VARINT);
                n += varint_put(out + n, v);
        }
        return (long)n;
}

long vfiod_envelope_encode(const Vfiod__Envelope *env, uint8_t *buf, size_t size)
{
        const ProtobufCMessage *body = NULL;
        const ProtobufCFieldDescriptor *f = body_field(env, &body);
        size_t n = 0, body_size = 0, total = 0;
        uint8_t flat[FLAT_MAX];
        long flat_size = -1;

        if (env->body_case != VFIOD__ENVELOPE__BODY__NOT_SET && !f)
                return -EINVAL;
        /* proto3: a zero id is not written. */
        if (env->id != 0)
                total += 1 + varint_size(env->id);
        if (f) {
                if (body)
                        flat_size = flat_pack(body, flat);
                body_size = flat_size >= 0 ? (size_t)flat_size
                            : body         ? protobuf_c_message_get_packed_size(body)
                                           : 0;
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
                if (flat_size >= 0) {
                        memcpy(buf + n, flat, (size_t)flat_size);
                        n += (size_t)flat_size;
                } else if (body)
                        n += protobuf_c_message_pack(body, buf + n);
        }
        return (long)n;
}

/*
 * Reads one field at *p (below end): its number, its wire type and, for a
 * varint, the value in *ret_value, for a length-delimited field, its bytes
 * (*ret_data, length in *ret_value). False when the bytes are not a field.
 */
static bool field_get(const uint8_t **p, const uint8_t *end, uint32_t *ret_field,
                      unsigned *ret_wire, const uint8_t **ret_data, uint64_t *ret_value)
{
        uint64_t tag, v = 0;

        if (!varint_get(p, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX)
                return false;
        *ret_field = (uint32_t)(tag >> 3);
        *ret_wire = (unsigned)(tag & 7);
        *ret_data = NULL;
        switch (*ret_wire) {
        case WIRE_VARINT:
                if (!varint_get(p, end, &v))
                        return false;
                break;
        case WIRE_64BIT:
                if (end - *p < 8)
                        return false;
                *p += 8;
                break;
        case WIRE_LEN:
                if (!varint_get(p, end, &v) || v > (uint64_t)(end - *p))
                        return false;
                *ret_data = *p;
                *p += v;
                break;
        case WIRE_32BIT:
                if (end - *p < 4)
                        return false;
                *p += 4;
                break;
        default: /* groups, and wire types that do not exist */
                return false;
        }
        *ret_value = v;
        return true;
}

/*
 * The body field f occurred more than once from `from` on (with no other
 * body after it), size bytes in all: as protobuf says, the occurrences
 * merge, which is what unpacking their bytes one after the other gives.
 */
static ProtobufCMessage *body_merge(ProtobufCAllocator *allocator,
                                    const ProtobufCFieldDescriptor *f, const uint8_t *from,
                                    const uint8_t *end, size_t size)
{
        uint8_t *buf = allocator->alloc(allocator->allocator_data, size ? size : 1);
        ProtobufCMessage *m;
        size_t n = 0;

        if (!buf)
                return NULL;
        while (from < end) {
                const uint8_t *data;
                uint32_t field;
                unsigned wire;
                uint64_t v;

                /* Read once already: every field is whole. */
                if (!field_get(&from, end, &field, &wire, &data, &v))
                        break;
                if (field == f->id && wire == WIRE_LEN && n + v <= size) {
                        memcpy(buf + n, data, (size_t)v);
                        n += (size_t)v;
                }
        }
        m = n == size ? protobuf_c_message_unpack(f->descriptor, allocator, size, buf) : NULL;
        allocator->free(allocator->allocator_data, buf);
        return m;
}

Vfiod__Envelope *vfiod_envelope_decode(ProtobufCAllocator *allocator, const uint8_t *data,
                                       size_t len)
{
        const uint8_t *p = data, *end = data + len;
        Vfiod__Envelope *env = allocator->alloc(allocator->allocator_data, sizeof(*env));
        ProtobufCMessage **body = NULL;
        /* The body's run: since the last other body, where it began, how many, how long. */
        const ProtobufCFieldDescriptor *run = NULL;
        const uint8_t *run_from = NULL;
        size_t run_count = 0, run_size = 0;

        if (!env)
                return NULL;
        vfiod__envelope__init(env);
        while (p < end) {
                const ProtobufCFieldDescriptor *f;
                const uint8_t *at = p, *bytes;
                uint32_t field;
                unsigned wire;
                uint64_t v;
                ProtobufCMessage *m;

                if (!field_get(&p, end, &field, &wire, &bytes, &v))
                        goto fail;
                f = protobuf_c_message_descriptor_get_field(&vfiod__envelope__descriptor, field);
                if (f && field == 1) {
                        if (wire != WIRE_VARINT)
                                goto fail;
                        env->id = v;
                        continue;
                }
                if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
                        continue; /* unknown (or, impossibly, another kind of known field) */
                if (wire != WIRE_LEN)
                        goto fail;
                /* Each occurrence must decode on its own too. */
                m = protobuf_c_message_unpack(f->descriptor, allocator, (size_t)v, bytes);
                if (!m)
                        goto fail;
                if (body && *body)
                        protobuf_c_message_free_unpacked(*body, allocator);
                if (f != run) {
                        /* Another member of the oneof: the last one counts. */
                        run = f;
                        run_from = at;
                        run_count = 0;
                        run_size = 0;
                }
                run_count++;
                run_size += (size_t)v;
                body = (ProtobufCMessage **)((char *)env + f->offset);
                *body = m;
                *(uint32_t *)((char *)env + f->quantifier_offset) = field;
        }
        if (run_count > 1) {
                ProtobufCMessage *m = body_merge(allocator, run, run_from, end, run_size);

                if (!m)
                        goto fail;
                protobuf_c_message_free_unpacked(*body, allocator);
                *body = m;
        }
        return env;

fail:
        if (body && *body)
                protobuf_c_message_free_unpacked(*body, allocator);
        allocator->free(allocator->allocator_data, env);
        return NULL;
}
