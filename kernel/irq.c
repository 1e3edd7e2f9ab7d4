/* SPDX-License-Identifier: MIT */
/* VFIO_DEVICE_SET_IRQS and its convenience wrappers. */
#include "kernel/irq.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

static bool one_bit(uint32_t v)
{
        return v != 0 && (v & (v - 1)) == 0;
}

int kvfio_irq_set(int device_fd, uint32_t index, uint32_t flags, uint32_t start, uint32_t count,
                  const void *data)
{
        uint32_t action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
        uint32_t type = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
        struct vfio_irq_set *set;
        size_t elem = 0, size;
        int r;

        if (device_fd < 0)
                return -EBADF;
        if (!one_bit(action) || !one_bit(type) || (flags & ~(action | type)))
                return -EINVAL;
        if (count > KVFIO_IRQ_MAX_COUNT || start + count < start)
                return -EINVAL;
        if (type == VFIO_IRQ_SET_DATA_BOOL)
                elem = sizeof(uint8_t);
        else if (type == VFIO_IRQ_SET_DATA_EVENTFD)
                elem = sizeof(int32_t);
        if (elem && count > 0 && !data)
                return -EINVAL;
        if (type == VFIO_IRQ_SET_DATA_EVENTFD)
                for (uint32_t i = 0; i < count; i++)
                        if (((const int32_t *)data)[i] < -1)
                                return -EINVAL;

        size = sizeof(*set) + elem * count;
        set = calloc(1, size);
        if (!set)
                return -ENOMEM;
        set->argsz = (uint32_t)size;
        set->flags = flags;
        set->index = index;
        set->start = start;
        set->count = count;
        if (elem && count > 0)
                memcpy(set->data, data, elem * count);
        /* The kernel takes its own references on the eventfds; ours stay ours. */
        r = ioctl(device_fd, VFIO_DEVICE_SET_IRQS, set) < 0 ? -errno : 0;
        free(set);
        return r;
}

int kvfio_irq_set_eventfds(int device_fd, uint32_t index, uint32_t start, uint32_t count,
                           const int *fds)
{
        int32_t buf[KVFIO_IRQ_MAX_COUNT];

        if (device_fd < 0)
                return -EBADF;
        if (count == 0 || !fds || count > KVFIO_IRQ_MAX_COUNT)
                return -EINVAL;
        for (uint32_t i = 0; i < count; i++) {
                if (fds[i] < -1)
                        return -EINVAL;
                buf[i] = fds[i];
        }
        return kvfio_irq_set(device_fd, index,
                             VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD, start, count,
                             buf);
}

int kvfio_irq_disable(int device_fd, uint32_t index)
{
        return kvfio_irq_set(device_fd, index, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE,
                             0, 0, NULL);
}

static int none_action(int device_fd, uint32_t index, uint32_t action, uint32_t start,
                       uint32_t count)
{
        if (device_fd < 0)
                return -EBADF;
        if (count == 0)
                return -EINVAL;
        return kvfio_irq_set(device_fd, index, action | VFIO_IRQ_SET_DATA_NONE, start, count, NULL);
}

int kvfio_irq_mask(int device_fd, uint32_t index, uint32_t start, uint32_t count)
{
        return none_action(device_fd, index, VFIO_IRQ_SET_ACTION_MASK, start, count);
}

int kvfio_irq_unmask(int device_fd, uint32_t index, uint32_t start, uint32_t count)
{
        return none_action(device_fd, index, VFIO_IRQ_SET_ACTION_UNMASK, start, count);
}

int kvfio_irq_trigger(int device_fd, uint32_t index, uint32_t start, uint32_t count)
{
        return none_action(device_fd, index, VFIO_IRQ_SET_ACTION_TRIGGER, start, count);
}

int kvfio_irq_unmask_eventfd(int device_fd, uint32_t index, uint32_t vector, int fd)
{
        int32_t v = fd;

        if (device_fd < 0)
                return -EBADF;
        if (fd < -1)
                return -EINVAL;
        return kvfio_irq_set(device_fd, index,
                             VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_EVENTFD, vector, 1, &v);
}

int kvfio_irq_set_bools(int device_fd, uint32_t index, uint32_t action, uint32_t start,
                        uint32_t count, const uint8_t *bools)
{
        if (device_fd < 0)
                return -EBADF;
        if (count == 0 || !bools || !one_bit(action) || (action & ~VFIO_IRQ_SET_ACTION_TYPE_MASK))
                return -EINVAL;
        return kvfio_irq_set(device_fd, index, action | VFIO_IRQ_SET_DATA_BOOL, start, count,
                             bools);
}

const char *kvfio_irq_index_name(uint32_t index)
{
        switch (index) {
        case VFIO_PCI_INTX_IRQ_INDEX:
                return "INTx";
        case VFIO_PCI_MSI_IRQ_INDEX:
                return "MSI";
        case VFIO_PCI_MSIX_IRQ_INDEX:
                return "MSI-X";
        case VFIO_PCI_ERR_IRQ_INDEX:
                return "ERR";
        case VFIO_PCI_REQ_IRQ_INDEX:
                return "REQ";
        default:
                return "unknown";
        }
}
