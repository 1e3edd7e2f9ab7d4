/* SPDX-License-Identifier: MIT */
#include "client-lib/json.h"

#include <inttypes.h>

void json_init(struct json *j, FILE *f)
{
        *j = (struct json){.f = f};
}

/* Separates this value from the previous one of the same container. */
static void json_value_prefix(struct json *j)
{
        if (j->after_key) {
                j->after_key = false;
                return;
        }
        if (j->depth > 0) {
                if (!j->first[j->depth - 1])
                        fputc(',', j->f);
                j->first[j->depth - 1] = false;
        }
}

static void json_open(struct json *j, char c)
{
        json_value_prefix(j);
        fputc(c, j->f);
        if (j->depth < JSON_MAX_DEPTH)
                j->first[j->depth] = true;
        j->depth++;
}

static void json_close(struct json *j, char c)
{
        if (j->depth > 0)
                j->depth--;
        fputc(c, j->f);
}

void json_begin_object(struct json *j)
{
        json_open(j, '{');
}

void json_end_object(struct json *j)
{
        json_close(j, '}');
}

void json_begin_array(struct json *j)
{
        json_open(j, '[');
}

void json_end_array(struct json *j)
{
        json_close(j, ']');
}

void json_write_string(FILE *f, const char *s)
{
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\b':
                        fputs("\\b", f);
                        break;
                case '\f':
                        fputs("\\f", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                default:
                        if (*p < 0x20 || *p == 0x7f)
                                fprintf(f, "\\u%04x", *p);
                        else
                                fputc(*p, f);
                }
        }
        fputc('"', f);
}

void json_key(struct json *j, const char *key)
{
        json_value_prefix(j);
        json_write_string(j->f, key);
        fputc(':', j->f);
        j->after_key = true;
}

void json_string(struct json *j, const char *s)
{
        if (!s) {
                json_null(j);
                return;
        }
        json_value_prefix(j);
        json_write_string(j->f, s);
}

void json_uint(struct json *j, uint64_t v)
{
        json_value_prefix(j);
        fprintf(j->f, "%" PRIu64, v);
}

void json_bool(struct json *j, bool v)
{
        json_value_prefix(j);
        fputs(v ? "true" : "false", j->f);
}

void json_null(struct json *j)
{
        json_value_prefix(j);
        fputs("null", j->f);
}

void json_field_string(struct json *j, const char *key, const char *s)
{
        json_key(j, key);
        json_string(j, s);
}

void json_field_uint(struct json *j, const char *key, uint64_t v)
{
        json_key(j, key);
        json_uint(j, v);
}

void json_field_bool(struct json *j, const char *key, bool v)
{
        json_key(j, key);
        json_bool(j, v);
}
