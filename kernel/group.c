/* SPDX-License-Identifier: MIT */
/* VFIO group: open, status, container attach/detach, device fds. */
#include "kernel/group.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/vfio.h>

int kvfio_group_open(int group, const char *dir)
{
        char path[PATH_MAX];
        int n, fd;

        if (group < 0)
                return -EINVAL;
        n = snprintf(path, sizeof(path), "%s/%d", dir ? dir : KVFIO_GROUP_DIR, group);
        if (n < 0 || (size_t)n >= sizeof(path))
                return -ENAMETOOLONG;
        fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        /* On success the fd is owned by the caller. */
        return fd;
}

int kvfio_group_get_status(int group_fd, struct kvfio_group_status *ret_status)
{
        struct vfio_group_status st = {.argsz = sizeof(st)};

        if (group_fd < 0)
                return -EBADF;
        if (!ret_status)
                return -EINVAL;
        if (ioctl(group_fd, VFIO_GROUP_GET_STATUS, &st) < 0)
                return -errno;
        ret_status->viable = !!(st.flags & VFIO_GROUP_FLAGS_VIABLE);
        ret_status->container_set = !!(st.flags & VFIO_GROUP_FLAGS_CONTAINER_SET);
        return 0;
}

int kvfio_group_set_container(int group_fd, int container_fd)
{
        if (group_fd < 0 || container_fd < 0)
                return -EBADF;
        /* The kernel takes its own reference on the container; no fd moves. */
        if (ioctl(group_fd, VFIO_GROUP_SET_CONTAINER, &container_fd) < 0)
                return -errno;
        return 0;
}

int kvfio_group_unset_container(int group_fd)
{
        if (group_fd < 0)
                return -EBADF;
        if (ioctl(group_fd, VFIO_GROUP_UNSET_CONTAINER) < 0)
                return -errno;
        return 0;
}

int kvfio_group_get_device_fd(int group_fd, const char *name)
{
        int fd, flags;

        if (group_fd < 0)
                return -EBADF;
        if (!name || !*name)
                return -EINVAL;
        fd = ioctl(group_fd, VFIO_GROUP_GET_DEVICE_FD, name);
        if (fd < 0)
                return -errno;
        /* The kernel makes it O_CLOEXEC; make sure, should that ever change. */
        flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC))
                (void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        /* On success the fd is owned by the caller. */
        return fd;
}
