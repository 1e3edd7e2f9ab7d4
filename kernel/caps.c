/* SPDX-License-Identifier: MIT */
/* Capability chain walker shared by container.c and device.c. */
#include "kernel/caps.h"

#include <errno.h>
#include <string.h>

#include <linux/vfio.h>

int kvfio_caps_walk(const void *buf, size_t len, size_t min_off, uint32_t first, kvfio_cap_fn fn,
                    void *userdata)
{
        const uint8_t *p = buf;
        size_t off = first, prev = 0;
        int r;

        for (int count = 0; off != 0; count++) {
                struct vfio_info_cap_header hdr;

                if (count >= KVFIO_CAPS_MAX_COUNT || off < min_off || off <= prev || off > len ||
                    len - off < sizeof(hdr))
                        return -EBADMSG;
                memcpy(&hdr, p + off, sizeof(hdr));
                r = fn(hdr.id, p, len, off, userdata);
                if (r < 0)
                        return r;
                prev = off;
                off = hdr.next;
        }
        return 0;
}

int kvfio_cap_read(const uint8_t *buf, size_t len, size_t off, void *ret_cap, size_t size)
{
        if (off > len || len - off < size)
                return -EBADMSG;
        memcpy(ret_cap, buf + off, size);
        return 0;
}

int kvfio_cap_items_fit(size_t len, size_t off, size_t header_size, size_t n, size_t item_size)
{
        if (off > len || len - off < header_size || (len - off - header_size) / item_size < n)
                return -EBADMSG;
        return 0;
}

void kvfio_cap_item(const uint8_t *buf, size_t off, size_t header_size, size_t i, void *ret_item,
                    size_t item_size)
{
        memcpy(ret_item, buf + off + header_size + i * item_size, item_size);
}
