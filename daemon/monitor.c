/* SPDX-License-Identifier: MIT */
#include "daemon/monitor.h"

#include <errno.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/log.h"
#include "proto/macro.h"

/* The kernel's uevent multicast group (udevd re-broadcasts on group 2). */
#define UEVENT_GROUP_KERNEL 1u
/* Receive buffer asked for: a burst of SR-IOV VFs coming or going is thousands of uevents. */
#define UEVENT_RCVBUF (8u << 20)
/* The kernel's uevent buffer (UEVENT_BUFFER_SIZE) is 2 KiB; room to spare. */
#define UEVENT_DATAGRAM_MAX 8192

struct vfiod_monitor {
        struct ev_loop *loop;
        struct vfiod_registry *devices;
        int fd; /* owned */
        ev_io io;
};

int vfiod_uevent_parse(char *buf, size_t len, struct vfiod_uevent *ret)
{
        struct vfiod_uevent ev = {0};
        const char *slash;
        size_t off;

        if (!buf || len == 0)
                return -EBADMSG;
        buf[len - 1] = '\0';
        /* The header "ACTION@DEVPATH"; udevd's datagrams start "libudev". */
        if (strcmp(buf, "libudev") == 0 || !strchr(buf, '@'))
                return -EBADMSG;
        for (off = strlen(buf) + 1; off < len; off += strlen(buf + off) + 1) {
                const char *kv = buf + off;

                if (strncmp(kv, "ACTION=", 7) == 0)
                        ev.action = kv + 7;
                else if (strncmp(kv, "SUBSYSTEM=", 10) == 0)
                        ev.subsystem = kv + 10;
                else if (strncmp(kv, "DEVPATH=", 8) == 0)
                        ev.devpath = kv + 8;
        }
        if (!ev.action || !ev.subsystem || !ev.devpath)
                return -EBADMSG;
        slash = strrchr(ev.devpath, '/');
        ev.name = slash ? slash + 1 : ev.devpath;
        if (!*ev.action || !*ev.name)
                return -EBADMSG;
        *ret = ev;
        return 0;
}

int vfiod_monitor_datagram(struct vfiod_monitor *m, char *buf, size_t len, unsigned sender_port)
{
        struct vfiod_uevent ev;
        int r;

        if (sender_port != 0) /* not the kernel */
                return 0;
        if (vfiod_uevent_parse(buf, len, &ev) < 0)
                return 0;
        if (strcmp(ev.subsystem, "pci") != 0 && strcmp(ev.subsystem, "mdev") != 0)
                return 0;
        log_debug("uevent '%s' for %s device '%s'", ev.action, ev.subsystem, ev.name);
        r = vfiod_registry_uevent(m->devices, ev.action, ev.subsystem, ev.name);
        if (r < 0)
                log_warning("uevent '%s' for device '%s' not applied: %s", ev.action, ev.name,
                            strerror(-r));
        return r;
}

static void rescan(struct vfiod_monitor *m)
{
        int r;

        log_warning("Device uevents were lost (the socket overflowed): reading every device again");
        r = vfiod_registry_scan(m->devices);
        if (r < 0)
                log_error("Reading the devices under '%s' again failed: %s; the inventory may be "
                          "stale until the next uevent",
                          m->devices->sysfs_root, strerror(-r));
}

static void monitor_cb(struct ev_loop *loop, ev_io *w, int revents)
{
        struct vfiod_monitor *m = w->data;
        char buf[UEVENT_DATAGRAM_MAX];

        /* A bounded batch per wake-up, so that clients are served between bursts. */
        for (int i = 0; i < 256; i++) {
                struct sockaddr_nl sa = {0};
                struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
                struct msghdr mh = {
                    .msg_name = &sa, .msg_namelen = sizeof(sa), .msg_iov = &iov, .msg_iovlen = 1};
                ssize_t n = recvmsg(m->fd, &mh, MSG_DONTWAIT);

                if (n < 0 && errno == ENOBUFS) {
                        rescan(m);
                        continue;
                }
                if (n < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                log_warning("Reading a device uevent failed: %m");
                        return;
                }
                if (mh.msg_flags & MSG_TRUNC || mh.msg_namelen != sizeof(sa) || n == 0)
                        continue;
                (void)vfiod_monitor_datagram(m, buf, (size_t)n, sa.nl_pid);
        }
}

int vfiod_monitor_new(struct ev_loop *loop, struct vfiod_registry *devices,
                      struct vfiod_monitor **ret)
{
        struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = UEVENT_GROUP_KERNEL};
        int size = UEVENT_RCVBUF;
        _cleanup_close_ int fd = -EBADF;
        struct vfiod_monitor *m;

        fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
        if (fd < 0)
                return -errno;
        /* Past rmem_max needs CAP_NET_ADMIN: fall back to what the limit allows. */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
                (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->loop = loop;
        m->devices = devices;
        m->fd = TAKE_FD(fd); /* owned by the monitor */
        ev_io_init(&m->io, monitor_cb, m->fd, EV_READ);
        m->io.data = m;
        ev_io_start(loop, &m->io);
        *ret = m;
        return 0;
}

void vfiod_monitor_free(struct vfiod_monitor *m)
{
        if (!m)
                return;
        if (m->fd >= 0) {
                ev_io_stop(m->loop, &m->io);
                safe_close(m->fd);
        }
        free(m);
}
