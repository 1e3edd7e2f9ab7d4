/* SPDX-License-Identifier: MIT */
/*
 * Internal to kernel/: walks the capability chain of a VFIO info buffer
 * (struct vfio_info_cap_header entries linked by offsets from the start of
 * the buffer). Not for use outside kernel/.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Largest info buffer (struct + capabilities) accepted from the kernel. */
#define KVFIO_CAPS_MAX_SIZE (1u << 20)

/* Largest number of capabilities walked in one chain. */
#define KVFIO_CAPS_MAX_COUNT 256

/*
 * Called for each capability: id from its header, off its offset in buf
 * (len bytes in all; at least a header's worth of bytes from off on).
 * Returns 0 to go on or a negative errno to stop the walk with it.
 */
typedef int (*kvfio_cap_fn)(uint16_t id, const uint8_t *buf, size_t len, size_t off,
                            void *userdata);

/*
 * Walks the chain that starts at offset first (0: no chain) and calls fn on
 * every capability. Offsets must be >= min_off, leave room for a header
 * inside len, and strictly increase (so a loop cannot happen).
 * -EBADMSG: the chain breaks one of those rules or is longer than
 * KVFIO_CAPS_MAX_COUNT; otherwise what fn returned, or 0.
 */
int kvfio_caps_walk(const void *buf, size_t len, size_t min_off, uint32_t first, kvfio_cap_fn fn,
                    void *userdata);

/*
 * Copies the size bytes of the capability at buf[off] (len bytes in all)
 * into *ret_cap. -EBADMSG, *ret_cap untouched, when buf ends before it does.
 */
int kvfio_cap_read(const uint8_t *buf, size_t len, size_t off, void *ret_cap, size_t size);

/*
 * For a capability at off whose header of header_size is followed by n items
 * of item_size: -EBADMSG when buf (len bytes) ends before the last item, else 0.
 */
int kvfio_cap_items_fit(size_t len, size_t off, size_t header_size, size_t n, size_t item_size);

/* Copies item i of such a capability (one kvfio_cap_items_fit() accepted) into *ret_item. */
void kvfio_cap_item(const uint8_t *buf, size_t off, size_t header_size, size_t i, void *ret_item,
                    size_t item_size);
