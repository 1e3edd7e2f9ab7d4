/* SPDX-License-Identifier: MIT */
/* The fake VFIO ioctl layer; see fake-kernel.h. */
#include "tests/daemon/fake-kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/container.h"
#include "kernel/device.h"
#include "kernel/dma.h"
#include "kernel/group.h"
#include "kernel/iommufd.h"
#include "kernel/irq.h"
#include "kernel/sysfs.h"

#define N_IDX 5

enum kind { K_CONTAINER, K_GROUP, K_DEVICE, K_IOMMUFD };

struct fmap {
        uint64_t iova, size;
        void *vaddr;
};

struct fgroup;
struct fdev;

struct fobj {
        enum kind kind;
        int probe; /* read end of the pipe; -1 once every write end is closed */
        dev_t dev;
        ino_t ino;
        /* container */
        int model;
        int n_groups;
        struct fmap *maps;
        size_t n_maps;
        /* group file */
        struct fgroup *group;
        /* device file */
        struct fdev *fdev;
        /* a device cdev file: bound to ictx (an iommufd object), attached to IOAS pt (0: none) */
        bool cdev;
        struct fobj *ictx;
        uint32_t pt;
        /* iommufd: its IOAS ids are 1 .. n_ioas (one map list for all), its rlimit mode */
        uint32_t n_ioas;
        int rlimit_mode;
};

struct fgroup {
        int id;
        struct fobj *file;      /* the open group file, NULL when closed */
        struct fobj *container; /* attached to */
};

struct fdev {
        char bdf[KVFIO_NAME_MAX]; /* a PCI address or an mdev's UUID */
        int group;
        uint32_t count[N_IDX];
        int *efd[N_IDX]; /* the "kernel's" references on assigned eventfds */
        int unmask_efd[N_IDX];
        unsigned resets;
        bool no_reset; /* vfio-pci's reset_works false: no FLAGS_RESET, DEVICE_RESET EINVAL */
        int cdev;      /* N of /dev/vfio/devices/vfioN; -1: none */
};

static struct fobj **objs;
static size_t n_objs;
static struct fgroup **groups; /* pointers: objects point at them */
static size_t n_groups;
static struct fdev **devs;
static size_t n_devs;
static bool unmap_all_supported = true;
/* A hot reset touches the device's own group, and this one when >= 0. */
static int hot_reset_other_group = -1;
static char trace[1 << 16];
static size_t trace_len;

static struct {
        char func[64];
        int err;
        unsigned skip;
        bool armed;
} fails[8];

/* ---- bookkeeping ------------------------------------------------------------------ */

static void tracef(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void tracef(const char *fmt, ...)
{
        va_list ap;
        int n;

        if (trace_len >= sizeof(trace) - 256)
                return;
        va_start(ap, fmt);
        n = vsnprintf(trace + trace_len, sizeof(trace) - trace_len, fmt, ap);
        va_end(ap);
        if (n > 0)
                trace_len += (size_t)n;
        trace[trace_len++] = ';';
        trace[trace_len] = '\0';
}

static int failpoint(const char *func)
{
        for (size_t i = 0; i < sizeof(fails) / sizeof(fails[0]); i++) {
                if (!fails[i].armed || strcmp(fails[i].func, func) != 0)
                        continue;
                if (fails[i].skip > 0) {
                        fails[i].skip--;
                        return 0;
                }
                fails[i].armed = false;
                tracef("%s=FAIL(%d)", func, fails[i].err);
                return -fails[i].err;
        }
        return 0;
}

#define FAILPOINT()                           \
        do {                                  \
                int _f = failpoint(__func__); \
                if (_f < 0)                   \
                        return _f;            \
        } while (0)

void fake_kernel_fail(const char *func, int err, unsigned skip)
{
        for (size_t i = 0; i < sizeof(fails) / sizeof(fails[0]); i++)
                if (!fails[i].armed) {
                        snprintf(fails[i].func, sizeof(fails[i].func), "%s", func);
                        fails[i].err = err < 0 ? -err : err;
                        fails[i].skip = skip;
                        fails[i].armed = true;
                        return;
                }
        abort();
}

static struct fdev *dev_by_bdf(const char *bdf)
{
        for (size_t i = 0; i < n_devs; i++)
                if (strcmp(devs[i]->bdf, bdf) == 0)
                        return devs[i];
        return NULL;
}

static struct fgroup *group_by_id(int id)
{
        for (size_t i = 0; i < n_groups; i++)
                if (groups[i]->id == id)
                        return groups[i];
        return NULL;
}

static void close_irq_refs(struct fdev *d, uint32_t index)
{
        if (d->efd[index])
                for (uint32_t v = 0; v < d->count[index]; v++)
                        if (d->efd[index][v] >= 0) {
                                close(d->efd[index][v]);
                                d->efd[index][v] = -1;
                        }
        if (d->unmask_efd[index] >= 0) {
                close(d->unmask_efd[index]);
                d->unmask_efd[index] = -1;
        }
}

static void container_drop_maps(struct fobj *c)
{
        free(c->maps);
        c->maps = NULL;
        c->n_maps = 0;
        c->model = 0;
}

static void group_detach(struct fgroup *g)
{
        struct fobj *c = g->container;

        if (!c)
                return;
        g->container = NULL;
        if (--c->n_groups == 0)
                container_drop_maps(c);
}

static bool dev_has_live_file(const struct fdev *d, const struct fobj *except)
{
        for (size_t i = 0; i < n_objs; i++)
                if (objs[i] != except && objs[i]->kind == K_DEVICE && objs[i]->fdev == d &&
                    objs[i]->probe >= 0)
                        return true;
        return false;
}

/* A bound cdev file holds the kernel's reference on its iommufd. */
static bool ictx_in_use(const struct fobj *o)
{
        for (size_t i = 0; o->kind == K_IOMMUFD && i < n_objs; i++)
                if (objs[i]->probe >= 0 && objs[i]->ictx == o)
                        return true;
        return false;
}

/* Notices closed files and applies what the kernel does on the last close. */
static void gc(void)
{
        /* One poll() for every probe: with hundreds of objects (load-vfiod) one each costs more
         * than the daemon's work. poll() ignores the entries of closed probes (fd -1). */
        static struct pollfd *ps;
        static size_t n_ps;
        int n_hup;

        if (n_objs > n_ps) {
                struct pollfd *a = realloc(ps, n_objs * 2 * sizeof(*ps));

                if (!a)
                        abort();
                ps = a;
                n_ps = n_objs * 2;
        }
        for (size_t i = 0; i < n_objs; i++)
                ps[i] = (struct pollfd){.fd = objs[i]->probe, .events = POLLIN};
        n_hup = n_objs > 0 ? poll(ps, n_objs, 0) : 0;
        for (size_t i = 0; n_hup > 0 && i < n_objs; i++) {
                struct fobj *o = objs[i];

                if (o->probe < 0)
                        continue;
                if (!(ps[i].revents & POLLHUP))
                        continue;
                close(o->probe);
                o->probe = -1;
                if (o->kind == K_GROUP) {
                        if (o->group->file == o)
                                o->group->file = NULL;
                        group_detach(o->group);
                } else if (o->kind == K_DEVICE && !dev_has_live_file(o->fdev, o)) {
                        for (uint32_t k = 0; k < N_IDX; k++)
                                close_irq_refs(o->fdev, k);
                }
        }
        for (size_t i = 0; i < n_objs;) {
                struct fobj *o = objs[i];

                if (o->probe < 0 && !(o->kind == K_CONTAINER && o->n_groups > 0) &&
                    !ictx_in_use(o)) {
                        free(o->maps);
                        free(o);
                        objs[i] = objs[--n_objs];
                        continue;
                }
                i++;
        }
}

static int obj_new(enum kind kind, struct fobj **ret)
{
        struct fobj *o, **a;
        int p[2];
        struct stat st;

        gc();
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        o = calloc(1, sizeof(*o));
        a = realloc(objs, (n_objs + 1) * sizeof(*a));
        if (!o || !a || fstat(p[1], &st) < 0) {
                free(o);
                if (a)
                        objs = a;
                close(p[0]);
                close(p[1]);
                return -ENOMEM;
        }
        objs = a;
        o->kind = kind;
        o->probe = p[0];
        o->dev = st.st_dev;
        o->ino = st.st_ino;
        objs[n_objs++] = o;
        *ret = o;
        /* The write end is the "VFIO fd", owned by the caller. */
        return p[1];
}

static int obj_get(int fd, enum kind kind, struct fobj **ret)
{
        struct stat st;

        if (fd < 0)
                return -EBADF;
        if (fstat(fd, &st) < 0)
                return -EBADF;
        for (size_t i = 0; i < n_objs; i++)
                if (objs[i]->probe >= 0 && objs[i]->dev == st.st_dev && objs[i]->ino == st.st_ino) {
                        if (objs[i]->kind != kind)
                                return -ENOTTY;
                        /* An unbound cdev takes nothing but VFIO_DEVICE_BIND_IOMMUFD. */
                        if (objs[i]->cdev && !objs[i]->ictx)
                                return -EINVAL;
                        *ret = objs[i];
                        return 0;
                }
        return -ENOTTY;
}

/* ---- test controls ---------------------------------------------------------------- */

void fake_kernel_reset(void)
{
        for (size_t i = 0; i < n_objs; i++) {
                if (objs[i]->probe >= 0)
                        close(objs[i]->probe);
                free(objs[i]->maps);
                free(objs[i]);
        }
        free(objs);
        objs = NULL;
        n_objs = 0;
        for (size_t i = 0; i < n_devs; i++) {
                for (uint32_t k = 0; k < N_IDX; k++) {
                        close_irq_refs(devs[i], k);
                        free(devs[i]->efd[k]);
                }
                free(devs[i]);
        }
        free(devs);
        devs = NULL;
        n_devs = 0;
        for (size_t i = 0; i < n_groups; i++)
                free(groups[i]);
        free(groups);
        groups = NULL;
        n_groups = 0;
        unmap_all_supported = true;
        hot_reset_other_group = -1;
        memset(fails, 0, sizeof(fails));
        fake_kernel_trace_clear();
}

void fake_kernel_add_device(int group, const char *bdf)
{
        struct fdev *d;

        if (!group_by_id(group)) {
                groups = realloc(groups, (n_groups + 1) * sizeof(*groups));
                groups[n_groups] = calloc(1, sizeof(struct fgroup));
                if (!groups[n_groups])
                        abort();
                groups[n_groups++]->id = group;
        }
        devs = realloc(devs, (n_devs + 1) * sizeof(*devs));
        d = devs[n_devs++] = calloc(1, sizeof(struct fdev));
        if (!d)
                abort();
        *d = (struct fdev){.group = group, .count = {1, 1, 8, 1, 1}, .cdev = -1};
        snprintf(d->bdf, sizeof(d->bdf), "%s", bdf);
        for (uint32_t k = 0; k < N_IDX; k++)
                d->unmask_efd[k] = -1;
}

void fake_kernel_set_irq_count(const char *bdf, uint32_t index, uint32_t count)
{
        struct fdev *d = dev_by_bdf(bdf);

        if (!d || index >= N_IDX || d->efd[index])
                abort();
        d->count[index] = count;
}

void fake_kernel_set_unmap_all(bool supported)
{
        unmap_all_supported = supported;
}

size_t fake_kernel_live(void)
{
        size_t n = 0;

        gc();
        for (size_t i = 0; i < n_objs; i++)
                n += objs[i]->probe >= 0;
        return n;
}

size_t fake_kernel_own_fds(void)
{
        size_t n = 0;

        for (size_t i = 0; i < n_objs; i++)
                n += objs[i]->probe >= 0;
        for (size_t i = 0; i < n_devs; i++)
                for (uint32_t k = 0; k < N_IDX; k++) {
                        n += devs[i]->unmask_efd[k] >= 0;
                        for (uint32_t v = 0; devs[i]->efd[k] && v < devs[i]->count[k]; v++)
                                n += devs[i]->efd[k][v] >= 0;
                }
        return n;
}

const char *fake_kernel_trace(void)
{
        return trace;
}

void fake_kernel_trace_clear(void)
{
        trace_len = 0;
        trace[0] = '\0';
}

bool fake_kernel_trace_has(const char *first, ...)
{
        const char *pos = trace;
        va_list ap;
        bool ok = true;

        va_start(ap, first);
        for (const char *n = first; n; n = va_arg(ap, const char *)) {
                const char *hit = strstr(pos, n);
                if (!hit) {
                        ok = false;
                        break;
                }
                pos = hit + strlen(n);
        }
        va_end(ap);
        return ok;
}

int fake_kernel_fire(const char *bdf, uint32_t index)
{
        struct fdev *d = dev_by_bdf(bdf);
        uint64_t one = 1;

        if (!d || index >= N_IDX || !d->efd[index] || d->efd[index][0] < 0)
                return -ENOENT;
        return write(d->efd[index][0], &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
}

size_t fake_kernel_irq_assigned(const char *bdf, uint32_t index)
{
        struct fdev *d = dev_by_bdf(bdf);
        size_t n = 0;

        for (uint32_t v = 0; d && index < N_IDX && d->efd[index] && v < d->count[index]; v++)
                n += d->efd[index][v] >= 0;
        return n;
}

unsigned fake_kernel_resets(const char *bdf)
{
        struct fdev *d = dev_by_bdf(bdf);

        return d ? d->resets : 0;
}

size_t fake_kernel_mappings(void)
{
        size_t n = 0;

        gc();
        for (size_t i = 0; i < n_objs; i++)
                if (objs[i]->kind == K_CONTAINER || objs[i]->kind == K_IOMMUFD)
                        n += objs[i]->n_maps;
        return n;
}

int fake_kernel_dma_read(uint64_t iova, void *buf, size_t len)
{
        for (size_t i = 0; i < n_objs; i++)
                for (size_t j = 0; j < objs[i]->n_maps; j++) {
                        struct fmap *m = &objs[i]->maps[j];
                        if (iova >= m->iova && iova + len <= m->iova + m->size) {
                                memcpy(buf, (char *)m->vaddr + (iova - m->iova), len);
                                return 0;
                        }
                }
        return -ENOENT;
}

bool fake_kernel_group_attached(int group)
{
        struct fgroup *g = group_by_id(group);

        gc();
        return g && g->container;
}

/*
 * The inherited fd (the write end of a pipe another process holds the other
 * end of) as an object of kind: what a previous vfiod's "kernel" made, handed
 * on through the fd store. Its probe is a read end of the same pipe.
 */
static struct fobj *adopt(int fd, enum kind kind)
{
        char path[64];
        struct fobj *o, **a;
        struct stat st;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        o = calloc(1, sizeof(*o));
        a = realloc(objs, (n_objs + 1) * sizeof(*a));
        if (!o || !a || fstat(fd, &st) < 0)
                abort();
        objs = a;
        o->kind = kind;
        o->probe = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (o->probe < 0)
                abort();
        o->dev = st.st_dev;
        o->ino = st.st_ino;
        objs[n_objs++] = o;
        return o;
}

static struct fobj *adopted(int fd)
{
        struct stat st;

        if (fstat(fd, &st) < 0)
                return NULL;
        for (size_t i = 0; i < n_objs; i++)
                if (objs[i]->dev == st.st_dev && objs[i]->ino == st.st_ino)
                        return objs[i];
        return NULL;
}

/*
 * VFIOD_FAKE_ADOPT="3=iommufd,1 4=cdev,0000:00:01.0,3,1": fd 3 is an iommufd
 * with IOAS 1, fd 4 the cdev of 0000:00:01.0 bound to it and attached to IOAS
 * 1 ("cdev,BDF" alone: unbound; ",FD,0": bound, attached to none).
 */
static void adopt_from_env(void)
{
        const char *e = getenv("VFIOD_FAKE_ADOPT");
        char *copy, *save = NULL;

        if (!e || !(copy = strdup(e)))
                return;
        for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
                char *what = strchr(tok, '='), bdf[KVFIO_NAME_MAX];
                int ictx = -1;
                unsigned n = 0, pt = 0;
                struct fobj *o;

                if (!what)
                        abort();
                if (sscanf(what + 1, "iommufd,%u", &n) == 1) {
                        adopt(atoi(tok), K_IOMMUFD)->n_ioas = n;
                } else if (sscanf(what + 1, "cdev,%39[^,],%d,%u", bdf, &ictx, &pt) >= 1) {
                        o = adopt(atoi(tok), K_DEVICE);
                        o->cdev = true;
                        o->fdev = dev_by_bdf(bdf);
                        o->ictx = ictx >= 0 ? adopted(ictx) : NULL;
                        o->pt = pt;
                        if (!o->fdev || (ictx >= 0 && !o->ictx))
                                abort();
                } else
                        abort();
        }
        free(copy);
}

/*
 * For a process that runs vfiod on the fake (tests/daemon/vfiod-fake):
 * VFIOD_FAKE_DEVICES="1=0000:00:01.0 2=0000:00:02.0" registers the devices;
 * "1=0000:00:01.0@0" gives one the cdev vfio0 too. Then VFIOD_FAKE_ADOPT
 * (adopt_from_env()).
 */
__attribute__((constructor)) static void devices_from_env(void)
{
        const char *e = getenv("VFIOD_FAKE_DEVICES");
        char *copy, *save = NULL;

        if (!e || !(copy = strdup(e)))
                return;
        for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
                char *eq = strchr(tok, '=');

                if (eq) {
                        char *at = strchr(eq, '@');

                        *eq = '\0';
                        if (at)
                                *at = '\0';
                        fake_kernel_add_device(atoi(tok), eq + 1);
                        if (at)
                                fake_kernel_set_cdev(eq + 1, atoi(at + 1));
                }
        }
        free(copy);
        adopt_from_env();
}

/* ---- container.h -------------------------------------------------------------------- */

int kvfio_container_open(const char *path)
{
        struct fobj *o;

        FAILPOINT();
        tracef("container_open");
        return obj_new(K_CONTAINER, &o);
}

int kvfio_container_check_extension(int container_fd, unsigned long ext)
{
        struct fobj *c;
        int r = obj_get(container_fd, K_CONTAINER, &c);

        if (r < 0)
                return r;
        FAILPOINT();
        if (ext == VFIO_TYPE1v2_IOMMU || ext == VFIO_TYPE1_IOMMU)
                return 1;
        if (ext == VFIO_UNMAP_ALL)
                return unmap_all_supported;
        return 0;
}

int kvfio_container_pick_iommu(int container_fd, int wanted)
{
        struct fobj *c;
        int r = obj_get(container_fd, K_CONTAINER, &c);

        if (r < 0)
                return r;
        FAILPOINT();
        switch (wanted) {
        case KVFIO_IOMMU_AUTO:
        case KVFIO_IOMMU_TYPE1v2:
                return KVFIO_IOMMU_TYPE1v2;
        case KVFIO_IOMMU_TYPE1:
                return KVFIO_IOMMU_TYPE1;
        case KVFIO_IOMMU_SPAPR_TCE:
        case KVFIO_IOMMU_SPAPR_TCE_v2:
                return -EOPNOTSUPP;
        default:
                return -EINVAL;
        }
}

int kvfio_container_set_iommu(int container_fd, int wanted)
{
        struct fobj *c;
        int r = obj_get(container_fd, K_CONTAINER, &c);

        if (r < 0)
                return r;
        FAILPOINT();
        if (c->n_groups == 0 || c->model)
                return -EINVAL;
        r = kvfio_container_pick_iommu(container_fd, wanted);
        if (r < 0)
                return r;
        c->model = r;
        tracef("set_iommu");
        return r;
}

const char *kvfio_iommu_model_name(int model)
{
        switch (model) {
        case KVFIO_IOMMU_TYPE1v2:
                return "Type1v2";
        case KVFIO_IOMMU_TYPE1:
                return "Type1";
        case KVFIO_IOMMU_SPAPR_TCE_v2:
                return "sPAPR-TCE-v2";
        case KVFIO_IOMMU_SPAPR_TCE:
                return "sPAPR-TCE";
        case KVFIO_IOMMU_AUTO:
                return "auto";
        default:
                return "unknown";
        }
}

/* The valid IOVA: everything below the x86 MSI window, and above it up to 2^39. */
static const struct kvfio_iova_range fake_iova[] = {
    {0, 0xfedfffffull},
    {0xfef00000ull, (1ull << 39) - 1},
};

int kvfio_iommu_get_info(int container_fd, struct kvfio_iommu_info **ret_info)
{
        struct kvfio_iommu_info *info;
        struct fobj *c;
        int r = obj_get(container_fd, K_CONTAINER, &c);

        if (r < 0)
                return r;
        FAILPOINT();
        if (!c->model)
                return -EINVAL;
        info = calloc(1, sizeof(*info));
        if (!info)
                return -ENOMEM;
        info->pgsize_bitmap = 4096 | (2u << 20) | (1u << 30);
        info->has_iova_ranges = true;
        info->n_iova_ranges = 2;
        info->iova_ranges = malloc(sizeof(fake_iova));
        if (!info->iova_ranges) {
                free(info);
                return -ENOMEM;
        }
        memcpy(info->iova_ranges, fake_iova, sizeof(fake_iova));
        *ret_info = info;
        return 0;
}

int kvfio_iommu_info_parse(const void *buf, size_t len, struct kvfio_iommu_info **ret_info)
{
        return -EOPNOTSUPP; /* not used by the daemon */
}

void kvfio_iommu_info_free(struct kvfio_iommu_info *info)
{
        if (!info)
                return;
        free(info->iova_ranges);
        free(info);
}

/* ---- group.h ---------------------------------------------------------------------------- */

/* A live cdev file of a device of the group is bound (the kernel's cdev_device_open_cnt). */
static bool group_cdev_bound(int group)
{
        for (size_t i = 0; i < n_objs; i++)
                if (objs[i]->cdev && objs[i]->probe >= 0 && objs[i]->ictx &&
                    objs[i]->fdev->group == group)
                        return true;
        return false;
}

int kvfio_group_open(int group, const char *dir)
{
        struct fgroup *g;
        struct fobj *o;
        int fd;

        FAILPOINT();
        if (group < 0)
                return -EINVAL;
        gc();
        g = group_by_id(group);
        if (!g) {
                tracef("group_open %d=ENOENT", group);
                return -ENOENT;
        }
        if (g->file || group_cdev_bound(group)) {
                tracef("group_open %d=EBUSY", group);
                return -EBUSY;
        }
        fd = obj_new(K_GROUP, &o);
        if (fd < 0)
                return fd;
        o->group = g;
        g->file = o;
        tracef("group_open %d", group);
        return fd;
}

int kvfio_group_get_status(int group_fd, struct kvfio_group_status *ret_status)
{
        struct fobj *o;
        int r = obj_get(group_fd, K_GROUP, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        ret_status->viable = true;
        ret_status->container_set = o->group->container != NULL;
        return 0;
}

int kvfio_group_set_container(int group_fd, int container_fd)
{
        struct fobj *o, *c;
        int r = obj_get(group_fd, K_GROUP, &o);

        if (r < 0)
                return r;
        r = obj_get(container_fd, K_CONTAINER, &c);
        if (r < 0)
                return r == -ENOTTY ? -EBADF : r;
        FAILPOINT();
        if (o->group->container)
                return -EINVAL;
        o->group->container = c;
        c->n_groups++;
        tracef("set_container %d", o->group->id);
        return 0;
}

int kvfio_group_unset_container(int group_fd)
{
        struct fobj *o;
        struct fgroup *g;
        int r = obj_get(group_fd, K_GROUP, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        gc();
        g = o->group;
        if (!g->container) {
                tracef("unset %d=EINVAL", g->id);
                return -EINVAL;
        }
        for (size_t i = 0; i < n_objs; i++)
                if (objs[i]->kind == K_DEVICE && objs[i]->probe >= 0 &&
                    objs[i]->fdev->group == g->id) {
                        tracef("unset %d=EBUSY", g->id);
                        return -EBUSY;
                }
        group_detach(g);
        tracef("unset %d", g->id);
        return 0;
}

int kvfio_group_get_device_fd(int group_fd, const char *bdf)
{
        struct fobj *o, *d;
        struct fdev *fd_dev;
        int r = obj_get(group_fd, K_GROUP, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        if (!bdf || !*bdf || !o->group->container || !o->group->container->model)
                return -EINVAL;
        fd_dev = dev_by_bdf(bdf);
        if (!fd_dev || fd_dev->group != o->group->id)
                return -ENODEV;
        r = obj_new(K_DEVICE, &d);
        if (r < 0)
                return r;
        d->fdev = fd_dev;
        tracef("get_device_fd %s", bdf);
        return r;
}

/* ---- device.h ---------------------------------------------------------------------------- */

int kvfio_device_get_info(int device_fd, struct kvfio_device_info *ret_info)
{
        struct fobj *o;
        int r = obj_get(device_fd, K_DEVICE, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        *ret_info = (struct kvfio_device_info){
            .flags = VFIO_DEVICE_FLAGS_PCI | (o->fdev->no_reset ? 0 : VFIO_DEVICE_FLAGS_RESET),
            .num_regions = VFIO_PCI_NUM_REGIONS,
            .num_irqs = VFIO_PCI_NUM_IRQS,
            .reset_supported = !o->fdev->no_reset,
            .is_pci = true,
        };
        return 0;
}

int kvfio_device_get_region_info(int device_fd, uint32_t index, struct kvfio_region_info **ret_info)
{
        struct kvfio_region_info *info;
        struct fobj *o;
        int r = obj_get(device_fd, K_DEVICE, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        if (index >= VFIO_PCI_NUM_REGIONS)
                return -EINVAL;
        info = calloc(1, sizeof(*info));
        if (!info)
                return -ENOMEM;
        info->index = index;
        if (index == VFIO_PCI_BAR0_REGION_INDEX || index == VFIO_PCI_CONFIG_REGION_INDEX) {
                info->size = 4096;
                info->offset = (uint64_t)index << 40;
                info->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
        }
        *ret_info = info;
        return 0;
}

int kvfio_region_info_parse(const void *buf, size_t len, struct kvfio_region_info **ret_info)
{
        return -EOPNOTSUPP; /* not used by the daemon */
}

void kvfio_region_info_free(struct kvfio_region_info *info)
{
        if (!info)
                return;
        free(info->sparse_areas);
        free(info);
}

int kvfio_region_read(int device_fd, const struct kvfio_region_info *region, uint64_t offset,
                      void *buf, size_t len)
{
        return -EOPNOTSUPP; /* the fake has no device memory */
}

int kvfio_region_write(int device_fd, const struct kvfio_region_info *region, uint64_t offset,
                       const void *buf, size_t len)
{
        return -EOPNOTSUPP;
}

int kvfio_region_mmap(int device_fd, const struct kvfio_region_info *region, uint64_t offset,
                      size_t len, int prot, void **ret_addr)
{
        return -EOPNOTSUPP;
}

int kvfio_device_get_irq_info(int device_fd, uint32_t index, struct kvfio_irq_info *ret_info)
{
        struct fobj *o;
        int r = obj_get(device_fd, K_DEVICE, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        if (index >= N_IDX)
                return -EINVAL;
        *ret_info = (struct kvfio_irq_info){
            .index = index,
            .count = o->fdev->count[index],
            .eventfd = true,
            .maskable = index == VFIO_PCI_INTX_IRQ_INDEX,
            .automasked = index == VFIO_PCI_INTX_IRQ_INDEX,
            .flags = VFIO_IRQ_INFO_EVENTFD,
        };
        return 0;
}

int kvfio_device_reset(int device_fd)
{
        struct fobj *o;
        int r = obj_get(device_fd, K_DEVICE, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        if (o->fdev->no_reset) {
                tracef("reset %s=EINVAL", o->fdev->bdf);
                return -EINVAL;
        }
        o->fdev->resets++;
        tracef("reset %s", o->fdev->bdf);
        return 0;
}

void kvfio_hot_reset_info_free(struct kvfio_hot_reset_info *info)
{
        if (!info)
                return;
        free(info->devs);
        free(info);
}

void fake_kernel_set_hot_reset(int other_group)
{
        hot_reset_other_group = other_group;
}

int fake_kernel_set_reset_works(const char *bdf, bool works)
{
        struct fdev *d = dev_by_bdf(bdf);

        if (!d)
                return -ENOENT;
        d->no_reset = !works;
        return 0;
}

int kvfio_device_get_hot_reset_info(int device_fd, struct kvfio_hot_reset_info **ret_info)
{
        struct kvfio_hot_reset_info *info;
        struct fobj *o;
        int r = obj_get(device_fd, K_DEVICE, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        info = calloc(1, sizeof(*info));
        if (!info)
                return -ENOMEM;
        info->devs = calloc(2, sizeof(*info->devs));
        if (!info->devs) {
                free(info);
                return -ENOMEM;
        }
        /* A bound cdev is told device ids (its own is 1, as the bind says) and who owns them. */
        info->dev_ids = o->cdev;
        info->owned = o->cdev && hot_reset_other_group < 0;
        info->devs[info->n++] = (struct kvfio_hot_reset_dep){
            .devfn = 1 << 3, .group_id = o->cdev ? 1 : (uint32_t)o->fdev->group};
        if (hot_reset_other_group >= 0)
                info->devs[info->n++] = (struct kvfio_hot_reset_dep){
                    .devfn = 2 << 3,
                    .group_id = o->cdev ? KVFIO_HOT_RESET_DEVID_NOT_OWNED
                                        : (uint32_t)hot_reset_other_group};
        *ret_info = info;
        return 0;
}

int kvfio_device_hot_reset(int device_fd, const int *group_fds, size_t n_group_fds)
{
        struct fobj *o, *g;
        int r = obj_get(device_fd, K_DEVICE, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        /* vfio-pci: group fds for a group's device fd, none for a cdev. */
        if (n_group_fds == 0 || !group_fds || o->cdev) {
                tracef("hot_reset %s=EINVAL", o->fdev->bdf);
                return -EINVAL;
        }
        for (size_t i = 0; i < n_group_fds; i++) {
                r = obj_get(group_fds[i], K_GROUP, &g);
                if (r < 0)
                        return r;
                if (g->group->id != o->fdev->group)
                        return -EINVAL;
        }
        o->fdev->resets++;
        tracef("hot_reset %s", o->fdev->bdf);
        return 0;
}

int kvfio_device_hot_reset_cdev(int device_fd)
{
        struct fobj *o;
        int r = obj_get(device_fd, K_DEVICE, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        if (!o->cdev) {
                tracef("hot_reset_cdev %s=EINVAL", o->fdev->bdf);
                return -EINVAL;
        }
        /* The other group's device is not this iommufd's. */
        if (hot_reset_other_group >= 0) {
                tracef("hot_reset_cdev %s=EPERM", o->fdev->bdf);
                return -EPERM;
        }
        o->fdev->resets++;
        tracef("hot_reset_cdev %s", o->fdev->bdf);
        return 0;
}

char *kvfio_hot_reset_dep_bdf(const struct kvfio_hot_reset_dep *dep, char buf[static 16])
{
        snprintf(buf, 16, "%04x:%02x:%02x.%x", dep->segment, dep->bus, dep->devfn >> 3,
                 dep->devfn & 7);
        return buf;
}

/* ---- irq.h ----------------------------------------------------------------------------------- */

const char *kvfio_irq_index_name(uint32_t index)
{
        static const char *const names[] = {"INTx", "MSI", "MSI-X", "ERR", "REQ"};

        return index < N_IDX ? names[index] : "unknown";
}

int kvfio_irq_set(int device_fd, uint32_t index, uint32_t flags, uint32_t start, uint32_t count,
                  const void *data)
{
        uint32_t action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
        uint32_t type = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
        struct fdev *d;
        struct fobj *o;
        int r = obj_get(device_fd, K_DEVICE, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        d = o->fdev;
        if (index >= N_IDX || __builtin_popcount(action) != 1 || __builtin_popcount(type) != 1 ||
            count > KVFIO_IRQ_MAX_COUNT || start + count < start)
                return -EINVAL;
        if (type != VFIO_IRQ_SET_DATA_NONE && count > 0 && !data)
                return -EINVAL;
        if (count == 0) {
                if (action != VFIO_IRQ_SET_ACTION_TRIGGER || type != VFIO_IRQ_SET_DATA_NONE)
                        return -EINVAL;
                close_irq_refs(d, index);
                tracef("irq_disable %s %u", d->bdf, index);
                return 0;
        }
        if (start + count > d->count[index])
                return -EINVAL;
        if (type == VFIO_IRQ_SET_DATA_EVENTFD) {
                const int32_t *fds = data;

                if (action == VFIO_IRQ_SET_ACTION_MASK)
                        return -EINVAL;
                for (uint32_t i = 0; i < count; i++)
                        if (fds[i] < -1 || (fds[i] >= 0 && fcntl(fds[i], F_GETFD) < 0))
                                return fds[i] < -1 ? -EINVAL : -EBADF;
                if (action == VFIO_IRQ_SET_ACTION_UNMASK) {
                        if (count != 1)
                                return -EINVAL;
                        if (d->unmask_efd[index] >= 0)
                                close(d->unmask_efd[index]);
                        d->unmask_efd[index] = fds[0] >= 0 ? fcntl(fds[0], F_DUPFD_CLOEXEC, 3) : -1;
                        tracef("irq_unmask_eventfd %s %u", d->bdf, index);
                        return 0;
                }
                if (!d->efd[index]) {
                        d->efd[index] = malloc(d->count[index] * sizeof(int));
                        for (uint32_t v = 0; v < d->count[index]; v++)
                                d->efd[index][v] = -1;
                }
                for (uint32_t i = 0; i < count; i++) {
                        int *slot = &d->efd[index][start + i];
                        if (*slot >= 0)
                                close(*slot);
                        /* The "kernel" takes its own reference on the eventfd. */
                        *slot = fds[i] >= 0 ? fcntl(fds[i], F_DUPFD_CLOEXEC, 3) : -1;
                }
                tracef("irq_eventfds %s %u %u+%u", d->bdf, index, start, count);
                return 0;
        }
        if (type == VFIO_IRQ_SET_DATA_NONE && action == VFIO_IRQ_SET_ACTION_TRIGGER) {
                uint64_t one = 1;
                for (uint32_t i = 0; d->efd[index] && i < count; i++)
                        if (d->efd[index][start + i] >= 0)
                                (void)!write(d->efd[index][start + i], &one, sizeof(one));
        }
        tracef("irq_set %s %u action %u data %u %u+%u", d->bdf, index, action, type, start, count);
        return 0;
}

int kvfio_irq_set_eventfds(int device_fd, uint32_t index, uint32_t start, uint32_t count,
                           const int *fds)
{
        FAILPOINT();
        if (count == 0 || !fds)
                return -EINVAL;
        return kvfio_irq_set(device_fd, index,
                             VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD, start, count,
                             fds);
}

int kvfio_irq_disable(int device_fd, uint32_t index)
{
        FAILPOINT();
        return kvfio_irq_set(device_fd, index, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE,
                             0, 0, NULL);
}

int kvfio_irq_mask(int device_fd, uint32_t index, uint32_t start, uint32_t count)
{
        if (count == 0)
                return -EINVAL;
        return kvfio_irq_set(device_fd, index, VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_DATA_NONE,
                             start, count, NULL);
}

int kvfio_irq_unmask(int device_fd, uint32_t index, uint32_t start, uint32_t count)
{
        if (count == 0)
                return -EINVAL;
        return kvfio_irq_set(device_fd, index, VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_NONE,
                             start, count, NULL);
}

int kvfio_irq_unmask_eventfd(int device_fd, uint32_t index, uint32_t vector, int fd)
{
        if (fd < -1)
                return -EINVAL;
        return kvfio_irq_set(device_fd, index,
                             VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_EVENTFD, vector, 1,
                             &fd);
}

int kvfio_irq_trigger(int device_fd, uint32_t index, uint32_t start, uint32_t count)
{
        if (count == 0)
                return -EINVAL;
        return kvfio_irq_set(device_fd, index, VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE,
                             start, count, NULL);
}

int kvfio_irq_set_bools(int device_fd, uint32_t index, uint32_t action, uint32_t start,
                        uint32_t count, const uint8_t *bools)
{
        if (count == 0 || !bools)
                return -EINVAL;
        return kvfio_irq_set(device_fd, index, action | VFIO_IRQ_SET_DATA_BOOL, start, count,
                             bools);
}

/* ---- dma.h --------------------------------------------------------------------------------------
 */

/* Type1's map on container (or iommufd) c. */
static int kvfio_dma_map_checked(struct fobj *c, void *vaddr, uint64_t iova, uint64_t size,
                                 uint32_t flags)
{
        struct fmap *maps;
        bool valid = false;

        if (!c->model)
                return -ENOTTY;
        if (size == 0 || !flags || (flags & ~(KVFIO_DMA_READ | KVFIO_DMA_WRITE)) || !vaddr ||
            iova + size - 1 < iova)
                return -EINVAL;
        if (((uintptr_t)vaddr | iova | size) & 4095)
                return -EINVAL;
        for (size_t i = 0; i < sizeof(fake_iova) / sizeof(fake_iova[0]); i++)
                valid |= iova >= fake_iova[i].start && iova + size - 1 <= fake_iova[i].end;
        if (!valid)
                return -EINVAL;
        for (size_t i = 0; i < c->n_maps; i++)
                if (iova <= c->maps[i].iova + c->maps[i].size - 1 &&
                    c->maps[i].iova <= iova + size - 1)
                        return -EEXIST;
        /* The pages must be mapped in the calling process: the kernel would pin them. */
        if (msync(vaddr, size, MS_ASYNC) < 0)
                return -EFAULT;
        maps = realloc(c->maps, (c->n_maps + 1) * sizeof(*maps));
        if (!maps)
                return -ENOMEM;
        c->maps = maps;
        maps[c->n_maps++] = (struct fmap){.iova = iova, .size = size, .vaddr = vaddr};
        tracef("dma_map 0x%llx+0x%llx", (unsigned long long)iova, (unsigned long long)size);
        return 0;
}

int kvfio_dma_map(int container_fd, void *vaddr, uint64_t iova, uint64_t size, uint32_t flags)
{
        struct fobj *c;
        int r = obj_get(container_fd, K_CONTAINER, &c);

        if (r < 0)
                return r;
        FAILPOINT();
        return kvfio_dma_map_checked(c, vaddr, iova, size, flags);
}

/* Type1's unmap on container (or iommufd) c. */
static int kvfio_dma_unmap_checked(struct fobj *c, uint64_t iova, uint64_t size,
                                   uint64_t *ret_unmapped)
{
        uint64_t total = 0;

        if (!c->model)
                return -ENOTTY;
        if (size == 0 || iova + size - 1 < iova)
                return -EINVAL;
        for (size_t i = 0; i < c->n_maps; i++) {
                struct fmap *m = &c->maps[i];
                bool overlap = iova <= m->iova + m->size - 1 && m->iova <= iova + size - 1;
                bool inside = m->iova >= iova && m->iova + m->size - 1 <= iova + size - 1;

                if (overlap && !inside)
                        return -EINVAL;
        }
        for (size_t i = 0; i < c->n_maps;) {
                struct fmap *m = &c->maps[i];

                if (m->iova >= iova && m->iova + m->size - 1 <= iova + size - 1) {
                        total += m->size;
                        c->maps[i] = c->maps[--c->n_maps];
                        continue;
                }
                i++;
        }
        tracef("dma_unmap 0x%llx+0x%llx", (unsigned long long)iova, (unsigned long long)size);
        if (ret_unmapped)
                *ret_unmapped = total;
        return 0;
}

int kvfio_dma_unmap(int container_fd, uint64_t iova, uint64_t size, uint64_t *ret_unmapped)
{
        struct fobj *c;
        int r = obj_get(container_fd, K_CONTAINER, &c);

        if (r < 0)
                return r;
        FAILPOINT();
        return kvfio_dma_unmap_checked(c, iova, size, ret_unmapped);
}

/* The fake keeps no process addresses: a live update is accepted for an existing mapping. */
static int fake_vaddr(int container_fd, uint64_t iova, uint64_t size)
{
        struct fobj *c;
        int r = obj_get(container_fd, K_CONTAINER, &c);

        if (r < 0)
                return r;
        if (!c->model)
                return -ENOTTY;
        for (size_t i = 0; i < c->n_maps; i++)
                if (c->maps[i].iova == iova && c->maps[i].size == size)
                        return 0;
        return -EINVAL;
}

int kvfio_dma_invalidate_vaddr(int container_fd, uint64_t iova, uint64_t size)
{
        return fake_vaddr(container_fd, iova, size);
}

int kvfio_dma_set_vaddr(int container_fd, void *vaddr, uint64_t iova, uint64_t size)
{
        return vaddr ? fake_vaddr(container_fd, iova, size) : -EINVAL;
}

int kvfio_dma_unmap_all(int container_fd, uint64_t *ret_unmapped)
{
        struct fobj *c;
        uint64_t total = 0;
        int r = obj_get(container_fd, K_CONTAINER, &c);

        if (r < 0)
                return r;
        FAILPOINT();
        if (!unmap_all_supported)
                return -EINVAL;
        if (!c->model)
                return -ENOTTY;
        for (size_t i = 0; i < c->n_maps; i++)
                total += c->maps[i].size;
        c->n_maps = 0;
        tracef("dma_unmap_all");
        if (ret_unmapped)
                *ret_unmapped = total;
        return 0;
}

/* ---- iommufd.h ------------------------------------------------------------------------------ */

static int devices_of_cdev_bound(const struct fdev *d)
{
        for (size_t i = 0; i < n_objs; i++)
                if (objs[i]->cdev && objs[i]->probe >= 0 && objs[i]->ictx && objs[i]->fdev == d)
                        return 1;
        return 0;
}

int kvfio_iommufd_open(const char *path)
{
        struct fobj *o;
        int fd;

        (void)path;
        FAILPOINT();
        fd = obj_new(K_IOMMUFD, &o);
        if (fd >= 0)
                tracef("iommufd_open");
        return fd;
}

int kvfio_iommufd_get_rlimit_mode(int iommufd)
{
        struct fobj *o;
        int r = obj_get(iommufd, K_IOMMUFD, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        return o->rlimit_mode;
}

int kvfio_iommufd_set_rlimit_mode(int iommufd, int mode)
{
        struct fobj *o;
        int r = obj_get(iommufd, K_IOMMUFD, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        if (mode != KVFIO_IOMMUFD_RLIMIT_USER && mode != KVFIO_IOMMUFD_RLIMIT_PROCESS)
                return -EINVAL;
        if (o->n_ioas > 0)
                return -EBUSY;
        for (size_t i = 0; i < n_objs; i++)
                if (objs[i]->probe >= 0 && objs[i]->ictx == o)
                        return -EBUSY;
        o->rlimit_mode = mode;
        tracef("rlimit_mode %d", mode);
        return 0;
}

int kvfio_ioas_alloc(int iommufd, uint32_t *ret_ioas_id)
{
        struct fobj *o;
        int r = obj_get(iommufd, K_IOMMUFD, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        if (!ret_ioas_id)
                return -EINVAL;
        *ret_ioas_id = ++o->n_ioas;
        tracef("ioas_alloc %u", o->n_ioas);
        return 0;
}

int kvfio_ioas_destroy(int iommufd, uint32_t ioas_id)
{
        struct fobj *o;
        int r = obj_get(iommufd, K_IOMMUFD, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        if (ioas_id == 0 || ioas_id > o->n_ioas)
                return -ENOENT;
        for (size_t i = 0; i < n_objs; i++)
                if (objs[i]->probe >= 0 && objs[i]->ictx == o && objs[i]->pt == ioas_id)
                        return -EBUSY;
        container_drop_maps(o);
        tracef("ioas_destroy %u", ioas_id);
        return 0;
}

int kvfio_ioas_get_info(int iommufd, uint32_t ioas_id, struct kvfio_ioas_info **ret_info)
{
        struct kvfio_ioas_info *info;
        struct fobj *o;
        int r = obj_get(iommufd, K_IOMMUFD, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        if (ioas_id == 0 || ioas_id > o->n_ioas)
                return -ENOENT;
        info = calloc(1, sizeof(*info));
        if (!info || !(info->iova_ranges = malloc(sizeof(fake_iova)))) {
                free(info);
                return -ENOMEM;
        }
        memcpy(info->iova_ranges, fake_iova, sizeof(fake_iova));
        info->n_iova_ranges = sizeof(fake_iova) / sizeof(fake_iova[0]);
        info->iova_alignment = 4096;
        *ret_info = info;
        return 0;
}

void kvfio_ioas_info_free(struct kvfio_ioas_info *info)
{
        if (!info)
                return;
        free(info->iova_ranges);
        free(info);
}

int kvfio_ioas_map(int iommufd, uint32_t ioas_id, void *vaddr, uint64_t iova, uint64_t size,
                   uint32_t flags)
{
        struct fobj *o;
        int r = obj_get(iommufd, K_IOMMUFD, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        if (ioas_id == 0 || ioas_id > o->n_ioas)
                return -ENOENT;
        /* Type1's checks, and -EEXIST for an overlap or outside the allowed ranges. */
        o->model = 1;
        r = kvfio_dma_map_checked(o, vaddr, iova, size, flags);
        if (r == -EINVAL && size && !(((uintptr_t)vaddr | iova | size) & 4095) && vaddr && flags &&
            !(flags & ~(KVFIO_DMA_READ | KVFIO_DMA_WRITE)))
                return -EEXIST;
        return r;
}

int kvfio_ioas_map_file(int iommufd, uint32_t ioas_id, int memfd, uint64_t offset, uint64_t iova,
                        uint64_t size, uint32_t flags)
{
        (void)iommufd, (void)ioas_id, (void)memfd, (void)offset, (void)iova, (void)size,
            (void)flags;
        return -EOPNOTSUPP; /* the guest kernel (6.12) has none */
}

int kvfio_iommufd_has_map_file(int iommufd)
{
        struct fobj *o;
        int r = obj_get(iommufd, K_IOMMUFD, &o);

        return r < 0 ? r : 0;
}

int kvfio_ioas_unmap(int iommufd, uint32_t ioas_id, uint64_t iova, uint64_t size,
                     uint64_t *ret_unmapped)
{
        uint64_t total = 0;
        struct fobj *o;
        int r = obj_get(iommufd, K_IOMMUFD, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        if (size == 0 || iova + size - 1 < iova)
                return -EINVAL;
        if (ioas_id == 0 || ioas_id > o->n_ioas)
                return -ENOENT;
        o->model = 1;
        r = kvfio_dma_unmap_checked(o, iova, size, &total);
        if (r == -EINVAL || (r == 0 && total == 0))
                return -ENOENT;
        if (r == 0 && ret_unmapped)
                *ret_unmapped = total;
        return r;
}

int kvfio_ioas_unmap_all(int iommufd, uint32_t ioas_id, uint64_t *ret_unmapped)
{
        uint64_t total = 0;
        struct fobj *o;
        int r = obj_get(iommufd, K_IOMMUFD, &o);

        if (r < 0)
                return r;
        FAILPOINT();
        if (ioas_id == 0 || ioas_id > o->n_ioas)
                return -ENOENT;
        for (size_t i = 0; i < o->n_maps; i++)
                total += o->maps[i].size;
        o->n_maps = 0;
        tracef("ioas_unmap_all");
        if (ret_unmapped)
                *ret_unmapped = total;
        return 0;
}

int kvfio_cdev_open(int index, const char *dir)
{
        struct fobj *o;
        int fd;

        (void)dir;
        FAILPOINT();
        if (index < 0)
                return -EINVAL;
        for (size_t i = 0; i < n_devs; i++) {
                if (devs[i]->cdev != index)
                        continue;
                fd = obj_new(K_DEVICE, &o);
                if (fd < 0)
                        return fd;
                o->cdev = true;
                o->fdev = devs[i];
                tracef("cdev_open %s", devs[i]->bdf);
                return fd;
        }
        return -ENOENT;
}

int kvfio_device_bind_iommufd(int device_fd, int iommufd, uint32_t *ret_dev_id)
{
        struct fobj *d = NULL, *ictx;
        struct stat st;
        int r;

        if (device_fd < 0 || fstat(device_fd, &st) < 0)
                return -EBADF;
        for (size_t i = 0; i < n_objs; i++)
                if (objs[i]->probe >= 0 && objs[i]->dev == st.st_dev && objs[i]->ino == st.st_ino)
                        d = objs[i];
        if (!d || d->kind != K_DEVICE)
                return -ENOTTY;
        r = obj_get(iommufd, K_IOMMUFD, &ictx);
        if (r < 0)
                return r == -ENOTTY ? -EBADF : r;
        FAILPOINT();
        gc();
        if (!d->cdev || d->ictx) {
                tracef("bind %s=EINVAL", d->fdev->bdf);
                return -EINVAL;
        }
        {
                struct fgroup *g = group_by_id(d->fdev->group);

                if ((g && g->file) || devices_of_cdev_bound(d->fdev)) {
                        tracef("bind %s=EBUSY", d->fdev->bdf);
                        return -EBUSY;
                }
        }
        d->ictx = ictx;
        /* The bind is the device's first open: vfio-pci resets it. */
        d->fdev->resets += !d->fdev->no_reset;
        tracef("bind %s", d->fdev->bdf);
        if (ret_dev_id)
                *ret_dev_id = 1;
        return 0;
}

int kvfio_device_attach_ioas(int device_fd, uint32_t pt_id, uint32_t *ret_pt_id)
{
        struct fobj *d;
        int r = obj_get(device_fd, K_DEVICE, &d);

        if (r < 0)
                return r;
        FAILPOINT();
        if (!d->cdev)
                return -EINVAL;
        if (pt_id == 0 || pt_id > d->ictx->n_ioas)
                return -ENOENT;
        d->pt = pt_id;
        tracef("attach_ioas %s %u", d->fdev->bdf, pt_id);
        if (ret_pt_id)
                *ret_pt_id = pt_id;
        return 0;
}

int kvfio_device_detach_ioas(int device_fd)
{
        struct fobj *d;
        int r = obj_get(device_fd, K_DEVICE, &d);

        if (r < 0)
                return r;
        FAILPOINT();
        if (!d->cdev || !d->pt)
                return -EINVAL;
        d->pt = 0;
        tracef("detach_ioas %s", d->fdev->bdf);
        return 0;
}

void fake_kernel_set_cdev(const char *bdf, int cdev)
{
        struct fdev *d = dev_by_bdf(bdf);

        if (!d)
                abort();
        d->cdev = cdev;
}

bool fake_kernel_cdev_bound(const char *bdf)
{
        struct fdev *d = dev_by_bdf(bdf);

        gc();
        return d && devices_of_cdev_bound(d);
}

int fake_kernel_rlimit_mode(int iommufd)
{
        return kvfio_iommufd_get_rlimit_mode(iommufd);
}
