/* SPDX-License-Identifier: MIT */
/* A minimal intrusive doubly-linked list (as in the Linux kernel and seatd). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct list {
        struct list *prev, *next;
};

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void list_init(struct list *l)
{
        l->prev = l->next = l;
}

static inline bool list_empty(const struct list *l)
{
        return l->next == l;
}

static inline void list_add_tail(struct list *head, struct list *item)
{
        item->prev = head->prev;
        item->next = head;
        head->prev->next = item;
        head->prev = item;
}

/* Unlinks item and leaves it pointing at itself, so a second removal is harmless. */
static inline void list_remove(struct list *item)
{
        item->prev->next = item->next;
        item->next->prev = item->prev;
        list_init(item);
}

static inline size_t list_length(const struct list *l)
{
        size_t n = 0;

        for (const struct list *i = l->next; i != l; i = i->next)
                n++;
        return n;
}

/*
 * Iterates over the entries of type `type` linked by `member`; `nx` names the
 * cursor (declared by the macro; pick distinct names when nesting). The body
 * may remove `pos`.
 */
#define list_for_each_safe(pos, nx, head, type, member) \
        for (struct list *nx = (head)->next;            \
             nx != (head) && ((pos) = container_of(nx, type, member), nx = nx->next, 1);)
