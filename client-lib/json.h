/* SPDX-License-Identifier: MIT */
/*
 * A minimal JSON writer for vfioctl's --json output (no dependency).
 *
 * Concepts: the caller writes one document by nesting json_begin_*() /
 * json_end_*() and json_key() + a value; the writer keeps the commas in
 * place (a small stack of "first item" flags). Strings are escaped per RFC
 * 8259: quote, backslash and every control character; other bytes pass
 * through unchanged.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 16

struct json {
        FILE *f;
        int depth;
        bool first[JSON_MAX_DEPTH];
        bool after_key;
};

void json_init(struct json *j, FILE *f);

void json_begin_object(struct json *j);
void json_end_object(struct json *j);
void json_begin_array(struct json *j);
void json_end_array(struct json *j);

/* The key of the next value in an object. */
void json_key(struct json *j, const char *key);

void json_string(struct json *j, const char *s); /* NULL writes null */
void json_uint(struct json *j, uint64_t v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);

/* json_key() and its value in one call. */
void json_field_string(struct json *j, const char *key, const char *s);
void json_field_uint(struct json *j, const char *key, uint64_t v);
void json_field_bool(struct json *j, const char *key, bool v);

/* Writes s as a quoted, escaped JSON string to f. */
void json_write_string(FILE *f, const char *s);
