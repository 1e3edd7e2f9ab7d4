/* SPDX-License-Identifier: MIT */
/*
 * vfioctl: the command-line tool of vfiod, built on libvfiod.
 *
 *   vfioctl [--socket PATH] [--json] list [DEVICE]
 *   vfioctl acquire DEVICE... [--mode MODE | --brokered] [--interface NAME]
 *           [--preload[=LIB]] [--memlock BYTES] -- COMMAND [ARG...]
 *   vfioctl [--json] leases | revoke LEASE [--reason TEXT] | reload | stats
 *   vfioctl check-config [PATH]
 *
 * Exit status: 0 success, 1 failure (reported on stderr), 2 usage; acquire
 * exits with COMMAND's status (128 + N when a signal N killed it), 125 when
 * vfioctl failed before COMMAND ran, 126/127 when COMMAND could not be run.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client-lib/json.h"
#include "client-lib/vfiod.h"
#include "proto/macro.h"

#define EXIT_USAGE        2
#define EXIT_CANNOT_START 125 /* acquire: vfioctl failed before COMMAND ran */
#define EXIT_CANNOT_EXEC  126
#define EXIT_NOT_FOUND    127

/* acquire --preload: the installed libvfiod-preload.so (the build passes $(pkglibdir)'s). */
#ifndef VFIOD_PRELOAD_PATH
#define VFIOD_PRELOAD_PATH "/usr/lib/vfiod/libvfiod-preload.so"
#endif

struct options {
        const char *socket;
        bool json;
        enum vfiod_mode mode;       /* acquire: --mode, --brokered, --preload (0: not given) */
        const char *preload;        /* acquire: --preload's library, NULL without it */
        uint64_t memlock;           /* acquire: --memlock BYTES, 0 without it */
        enum vfiod_interface iface; /* acquire: --interface (0: not given, legacy) */
        const char *reason;
        bool dashdash;     /* "--" was given: the command's args end there... */
        size_t n_operands; /* ...after this many of them (all of them without "--") */
};

static void usage(FILE *f)
{
        fputs(
            "Usage: vfioctl [OPTIONS] COMMAND [ARGS...]\n"
            "\n"
            "Commands:\n"
            "  list [DEVICE]                   devices you may see: ids, group, driver,\n"
            "                                  state, allowed modes, lease holder\n"
            "  acquire DEVICE... [--mode MODE] [--interface NAME] [--preload] -- COMMAND [ARG...]\n"
            "                                  lease the DEVICEs, run COMMAND with their\n"
            "                                  fds, release them when COMMAND exits\n"
            "                                  ({device-fd}, {iommufd-fd}, {group-fd},\n"
            "                                  {container-fd} in ARGs become their\n"
            "                                  numbers: one DEVICE)\n"
            "  leases                          every lease (admin)\n"
            "  revoke LEASE [--reason TEXT]    take a lease away (admin)\n"
            "  reload                          re-read the daemon's policy (admin)\n"
            "  check-config [PATH]             check a policy and show what each rule\n"
            "                                  matches here (runs vfiod --check-config)\n"
            "  stats                           the daemon's counters (admin)\n"
            "\n"
            "Options:\n"
            "  -s, --socket PATH   daemon socket (default: $VFIOD_SOCKET, "
            "else " VFIOD_SOCKET_DEFAULT ")\n"
            "  -j, --json          print JSON instead of tables\n"
            "  -m, --mode MODE     acquire: direct (default), brokered or group\n"
            "  -b, --brokered      acquire: --mode brokered (device fd + connection)\n"
            "      --preload[=LIB] acquire: --mode group, and COMMAND opens /dev/vfio/N\n"
            "                      through libvfiod-preload.so (QEMU, DPDK)\n"
            "      --memlock BYTES acquire: what COMMAND will pin, for the RLIMIT_MEMLOCK\n"
            "                      warning (default: the policy's allowance)\n"
            "  -i, --interface NAME  acquire: legacy (default), iommufd or any\n"
            "  -r, --reason TEXT   revoke: reason passed to the holder\n"
            "  -h, --help          show this help\n"
            "  -V, --version       show the version\n"
            "\n"
            "See vfioctl(1).\n",
            f);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
        va_list ap;

        fputs("vfioctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs("\nTry 'vfioctl --help'.\n", stderr);
        return EXIT_USAGE;
}

/*
 * "vfioctl: <what>: <strerror>[: <daemon's reason>]" on stderr; returns
 * EXIT_FAILURE.
 */
static int report(struct vfiod *c, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int report(struct vfiod *c, int r, const char *fmt, ...)
{
        const char *reason = vfiod_last_error(c);
        va_list ap;

        fputs("vfioctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, ": %s", strerror(-r));
        if (reason[0])
                fprintf(stderr, ": %s", reason);
        fputc('\n', stderr);
        return EXIT_FAILURE;
}

static int connect_daemon(const struct options *o, struct vfiod **ret)
{
        const char *path = o->socket;
        int r;

        r = vfiod_connect(path, ret);
        if (r < 0) {
                if (!path) {
                        path = getenv(VFIOD_SOCKET_ENV);
                        if (!path || !path[0])
                                path = VFIOD_SOCKET_DEFAULT;
                }
                return report(NULL, r, "connect '%s'", path);
        }
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct vfiod *, vfiod_close);

/* ------------------------------------------------------------------------- */
/* Tables */

#define TABLE_MAX_COLS 10

struct table {
        size_t n_cols;
        char **cells; /* n_rows * n_cols, row 0 = header */
        size_t n_rows;
};

static void table_free(struct table *t)
{
        for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
                free(t->cells[i]);
        free(t->cells);
}

/* Adds a row of n_cols printf-made cells, each given as a format and one string. */
static int table_add(struct table *t, const char *const *cells)
{
        char **grown = realloc(t->cells, (t->n_rows + 1) * t->n_cols * sizeof(*grown));

        if (!grown)
                return -ENOMEM;
        t->cells = grown;
        for (size_t i = 0; i < t->n_cols; i++) {
                grown[t->n_rows * t->n_cols + i] = strdup(cells[i] ? cells[i] : "-");
                if (!grown[t->n_rows * t->n_cols + i]) {
                        for (size_t k = 0; k < i; k++)
                                free(grown[t->n_rows * t->n_cols + k]);
                        return -ENOMEM;
                }
        }
        t->n_rows++;
        return 0;
}

static void table_print(const struct table *t, FILE *f)
{
        size_t width[TABLE_MAX_COLS] = {0};

        for (size_t r = 0; r < t->n_rows; r++)
                for (size_t c = 0; c < t->n_cols; c++) {
                        size_t len = strlen(t->cells[r * t->n_cols + c]);

                        if (len > width[c])
                                width[c] = len;
                }
        for (size_t r = 0; r < t->n_rows; r++) {
                for (size_t c = 0; c < t->n_cols; c++) {
                        const char *cell = t->cells[r * t->n_cols + c];

                        if (c + 1 == t->n_cols)
                                fprintf(f, "%s\n", cell);
                        else
                                fprintf(f, "%-*s  ", (int)width[c], cell);
                }
        }
}

/* ------------------------------------------------------------------------- */
/* list */

/* The admin listing's lease holding `device`, or NULL. */
static const struct vfiod_lease_info *find_holder(const struct vfiod_lease_info *leases, size_t n,
                                                  const char *device)
{
        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < leases[i].n_devices; k++)
                        if (strcmp(leases[i].devices[k], device) == 0)
                                return &leases[i];
        return NULL;
}

/* The modes a device allows, in the protocol's order. */
static const enum vfiod_mode listed_modes[] = {VFIOD_MODE_DIRECT, VFIOD_MODE_BROKERED,
                                               VFIOD_MODE_GROUP};

static void modes_text(unsigned modes, char *buf, size_t size)
{
        size_t len = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(listed_modes); i++) {
                int n;

                if (!(modes & VFIOD_MODE_BIT(listed_modes[i])) || len >= size)
                        continue;
                n = snprintf(buf + len, size - len, "%s%s", len ? "," : "",
                             vfiod_mode_name(listed_modes[i]));
                if (n > 0)
                        len += (size_t)n;
        }
        if (!buf[0])
                (void)snprintf(buf, size, "-");
}

/* "legacy,iommufd", "legacy", "iommufd" or "-": the interfaces of a device. */
static const char *interfaces_text(unsigned ifaces)
{
        bool legacy = ifaces & (1u << VFIOD_INTERFACE_LEGACY),
             iommufd = ifaces & (1u << VFIOD_INTERFACE_IOMMUFD);

        return legacy && iommufd ? "legacy,iommufd" : legacy ? "legacy" : iommufd ? "iommufd" : "-";
}

static void json_holder(struct json *j, const struct vfiod_lease_info *h)
{
        json_begin_object(j);
        json_field_uint(j, "lease_id", h->lease_id);
        json_field_uint(j, "uid", h->uid);
        json_field_uint(j, "gid", h->gid);
        json_field_uint(j, "pid", h->pid);
        json_field_string(j, "unit", h->unit);
        json_end_object(j);
}

static void json_device(struct json *j, const struct vfiod_device_info *d,
                        const struct vfiod_lease_info *h)
{
        json_begin_object(j);
        json_field_string(j, "device", d->device);
        json_field_uint(j, "vendor_id", d->vendor_id);
        json_field_uint(j, "device_id", d->device_id);
        json_field_uint(j, "class_code", d->class_code);
        json_field_uint(j, "iommu_group", d->iommu_group);
        json_field_string(j, "driver", d->driver);
        json_key(j, "mdev_type");
        if (d->mdev_type[0])
                json_string(j, d->mdev_type);
        else
                json_null(j);
        json_field_string(j, "state", vfiod_lease_state_name(d->state));
        json_key(j, "allowed_modes");
        json_begin_array(j);
        for (size_t i = 0; i < ELEMENTSOF(listed_modes); i++)
                if (d->allowed_modes & VFIOD_MODE_BIT(listed_modes[i]))
                        json_string(j, vfiod_mode_name(listed_modes[i]));
        json_end_array(j);
        json_key(j, "interfaces");
        json_begin_array(j);
        if (d->interfaces & (1u << VFIOD_INTERFACE_LEGACY))
                json_string(j, "legacy");
        if (d->interfaces & (1u << VFIOD_INTERFACE_IOMMUFD))
                json_string(j, "iommufd");
        json_end_array(j);
        json_key(j, "cdev");
        if (d->cdev[0])
                json_string(j, d->cdev);
        else
                json_null(j);
        json_key(j, "lease_id");
        if (d->lease_id)
                json_uint(j, d->lease_id);
        else
                json_null(j);
        json_key(j, "holder");
        if (h)
                json_holder(j, h);
        else
                json_null(j);
        json_end_object(j);
}

static void print_devices_json(const struct vfiod_device_info *d, size_t n,
                               const struct vfiod_lease_info *leases, size_t n_leases)
{
        struct json j;

        json_init(&j, stdout);
        json_begin_array(&j);
        for (size_t i = 0; i < n; i++)
                json_device(&j, &d[i], find_holder(leases, n_leases, d[i].device));
        json_end_array(&j);
        fputc('\n', stdout);
}

/* One row of `vfioctl list`: its cells point into the row or into the device. */
struct device_row {
        char id[VFIOD_DRIVER_NAME_MAX], class[16], group[16], modes[32],
            holder[VFIOD_UNIT_NAME_MAX + 64];
        const char *cells[9];
};

static void device_row(struct device_row *row, const struct vfiod_device_info *d,
                       const struct vfiod_lease_info *h)
{
        /* An mdev's ids are in its config space: its type instead. */
        if (d->mdev_type[0])
                (void)snprintf(row->id, sizeof(row->id), "%s", d->mdev_type);
        else
                (void)snprintf(row->id, sizeof(row->id), "%04" PRIx32 ":%04" PRIx32, d->vendor_id,
                               d->device_id);
        (void)snprintf(row->class, sizeof(row->class), "%06" PRIx32, d->class_code);
        (void)snprintf(row->group, sizeof(row->group), "%" PRIu32, d->iommu_group);
        modes_text(d->allowed_modes, row->modes, sizeof(row->modes));
        if (d->state == VFIOD_LEASE_STATE_LEASED_BY_YOU)
                (void)snprintf(row->holder, sizeof(row->holder), "you (lease %" PRIu64 ")",
                               d->lease_id);
        else if (h)
                (void)snprintf(row->holder, sizeof(row->holder),
                               "uid %" PRIu32 " pid %" PRIu32 "%s%s (lease %" PRIu64 ")", h->uid,
                               h->pid, h->unit[0] ? " " : "", h->unit, h->lease_id);
        else
                (void)snprintf(row->holder, sizeof(row->holder), "-");
        row->cells[0] = d->device;
        row->cells[1] = row->id;
        row->cells[2] = row->class;
        row->cells[3] = row->group;
        row->cells[4] = d->driver[0] ? d->driver : "-";
        row->cells[5] = vfiod_lease_state_name(d->state);
        row->cells[6] = row->modes;
        row->cells[7] = interfaces_text(d->interfaces);
        row->cells[8] = row->holder;
}

static int print_devices_table(const struct vfiod_device_info *d, size_t n,
                               const struct vfiod_lease_info *leases, size_t n_leases)
{
        _cleanup_(table_free) struct table t = {.n_cols = 9};
        const char *header[] = {"DEVICE", "ID",    "CLASS",      "GROUP", "DRIVER",
                                "STATE",  "MODES", "INTERFACES", "HOLDER"};

        if (table_add(&t, header) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                struct device_row row;

                device_row(&row, &d[i], find_holder(leases, n_leases, d[i].device));
                if (table_add(&t, row.cells) < 0)
                        return -ENOMEM;
        }
        table_print(&t, stdout);
        return 0;
}

static int print_devices(const struct vfiod_device_info *d, size_t n,
                         const struct vfiod_lease_info *leases, size_t n_leases, bool json)
{
        if (json) {
                print_devices_json(d, n, leases, n_leases);
                return 0;
        }
        return print_devices_table(d, n, leases, n_leases);
}

static int cmd_list(const struct options *o, char **args, size_t n_args)
{
        _cleanup_(vfiod_closep) struct vfiod *c = NULL;
        struct vfiod_device_info *devices = NULL;
        struct vfiod_lease_info *leases = NULL;
        struct vfiod_server_info info;
        size_t n = 0, n_leases = 0;
        const char *device = n_args > 0 ? args[0] : NULL;
        int r;

        if (n_args > 1)
                return usage_error("list takes at most one DEVICE");
        r = connect_daemon(o, &c);
        if (r != 0)
                return r;
        r = vfiod_list_devices(c, device, &devices, &n);
        if (r < 0) {
                if (device)
                        return report(c, r, "list '%s'", device);
                return report(c, r, "list");
        }
        /* An admin also sees who holds the devices leased by others. */
        if (vfiod_get_server_info(c, &info) == 0 && (info.capabilities & VFIOD_CAP_ADMIN) &&
            vfiod_list_leases(c, &leases, &n_leases) < 0) {
                leases = NULL;
                n_leases = 0;
        }
        r = print_devices(devices, n, leases, n_leases, o->json);
        vfiod_devices_free(devices, n);
        vfiod_leases_free(leases, n_leases);
        if (r < 0)
                return report(NULL, r, "list");
        return EXIT_SUCCESS;
}

/* ------------------------------------------------------------------------- */
/* admin commands */

static void json_lease(struct json *j, const struct vfiod_lease_info *l)
{
        json_begin_object(j);
        json_field_uint(j, "lease_id", l->lease_id);
        json_key(j, "devices");
        json_begin_array(j);
        for (size_t k = 0; k < l->n_devices; k++)
                json_string(j, l->devices[k]);
        json_end_array(j);
        json_field_uint(j, "iommu_group", l->iommu_group);
        json_field_uint(j, "uid", l->uid);
        json_field_uint(j, "gid", l->gid);
        json_field_uint(j, "pid", l->pid);
        json_field_string(j, "unit", l->unit);
        json_field_string(j, "mode", vfiod_mode_name(l->mode));
        json_field_uint(j, "domain_id", l->domain_id);
        json_field_uint(j, "pinned_bytes", l->pinned_bytes);
        json_field_uint(j, "mappings", l->mappings);
        json_field_string(j, "status", vfiod_lease_status_name(l->status));
        json_end_object(j);
}

static void print_leases_json(const struct vfiod_lease_info *l, size_t n)
{
        struct json j;

        json_init(&j, stdout);
        json_begin_array(&j);
        for (size_t i = 0; i < n; i++)
                json_lease(&j, &l[i]);
        json_end_array(&j);
        fputc('\n', stdout);
}

/* One row of `vfioctl leases`: its cells point into the row or are static. */
struct lease_row {
        char id[24], group[16], domain[24], uid[16], pid[16], pinned[24], maps[16];
        char devices[512];
        const char *cells[10];
};

static void lease_row(struct lease_row *row, const struct vfiod_lease_info *l)
{
        row->devices[0] = '\0';
        (void)snprintf(row->id, sizeof(row->id), "%" PRIu64, l->lease_id);
        for (size_t k = 0; k < l->n_devices; k++) {
                size_t len = strlen(row->devices);

                (void)snprintf(row->devices + len, sizeof(row->devices) - len, "%s%s", k ? "," : "",
                               l->devices[k]);
        }
        (void)snprintf(row->group, sizeof(row->group), "%" PRIu32, l->iommu_group);
        (void)snprintf(row->domain, sizeof(row->domain), "%" PRIu64, l->domain_id);
        (void)snprintf(row->uid, sizeof(row->uid), "%" PRIu32, l->uid);
        (void)snprintf(row->pid, sizeof(row->pid), "%" PRIu32, l->pid);
        (void)snprintf(row->pinned, sizeof(row->pinned), "%" PRIu64, l->pinned_bytes);
        (void)snprintf(row->maps, sizeof(row->maps), "%" PRIu32, l->mappings);
        row->cells[0] = row->id;
        row->cells[1] = row->devices[0] ? row->devices : "-";
        row->cells[2] = row->group;
        row->cells[3] = vfiod_mode_name(l->mode);
        row->cells[4] = row->domain;
        row->cells[5] = row->uid;
        row->cells[6] = row->pid;
        row->cells[7] = row->pinned;
        row->cells[8] = row->maps;
        row->cells[9] = vfiod_lease_status_name(l->status);
}

static int print_leases_table(const struct vfiod_lease_info *l, size_t n)
{
        _cleanup_(table_free) struct table t = {.n_cols = 10};
        const char *header[] = {"LEASE", "DEVICES", "GROUP",  "MODE",     "DOMAIN",
                                "UID",   "PID",     "PINNED", "MAPPINGS", "STATUS"};
        int r;

        r = table_add(&t, header);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                struct lease_row row;

                lease_row(&row, &l[i]);
                r = table_add(&t, row.cells);
        }
        if (r >= 0)
                table_print(&t, stdout);
        return r;
}

static int cmd_leases(const struct options *o, char **args, size_t n_args)
{
        _cleanup_(vfiod_closep) struct vfiod *c = NULL;
        struct vfiod_lease_info *l = NULL;
        size_t n = 0;
        int r;

        if (n_args > 0)
                return usage_error("leases takes no argument");
        r = connect_daemon(o, &c);
        if (r != 0)
                return r;
        r = vfiod_list_leases(c, &l, &n);
        if (r < 0)
                return report(c, r, "leases");
        if (o->json)
                print_leases_json(l, n);
        else
                r = print_leases_table(l, n);
        vfiod_leases_free(l, n);
        if (r < 0)
                return report(NULL, r, "leases");
        return EXIT_SUCCESS;
}

static int parse_id(const char *s, uint64_t *ret)
{
        unsigned long long v;
        char *end;

        if (!s[0] || s[0] == '-' || s[0] == '+')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || *end != '\0' || v == 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int cmd_revoke(const struct options *o, char **args, size_t n_args)
{
        _cleanup_(vfiod_closep) struct vfiod *c = NULL;
        uint64_t id;
        int r;

        if (n_args != 1)
                return usage_error("revoke takes one LEASE id");
        if (parse_id(args[0], &id) < 0)
                return usage_error("invalid lease id '%s'", args[0]);
        r = connect_daemon(o, &c);
        if (r != 0)
                return r;
        r = vfiod_revoke(c, id, o->reason);
        if (r < 0)
                return report(c, r, "revoke lease %" PRIu64, id);
        return EXIT_SUCCESS;
}

static int cmd_reload(const struct options *o, char **args, size_t n_args)
{
        _cleanup_(vfiod_closep) struct vfiod *c = NULL;
        _cleanup_(vfiod_reload_result_clear) struct vfiod_reload_result res = {0};
        int r;

        if (n_args > 0)
                return usage_error("reload takes no argument");
        r = connect_daemon(o, &c);
        if (r != 0)
                return r;
        r = vfiod_reload_policy(c, &res);
        if (r < 0)
                return report(c, r, "reload");
        if (o->json) {
                struct json j;

                json_init(&j, stdout);
                json_begin_object(&j);
                json_field_bool(&j, "applied", res.applied);
                json_key(&j, "errors");
                json_begin_array(&j);
                for (size_t i = 0; i < res.n_errors; i++)
                        json_string(&j, res.errors[i]);
                json_end_array(&j);
                json_field_uint(&j, "leases_revoked", res.leases_revoked);
                json_end_object(&j);
                fputc('\n', stdout);
        } else if (res.applied) {
                printf("policy reloaded, %" PRIu32 " lease(s) revoked\n", res.leases_revoked);
        }
        if (!res.applied) {
                for (size_t i = 0; i < res.n_errors; i++)
                        fprintf(stderr, "vfioctl: reload: %s\n", res.errors[i]);
                fprintf(stderr, "vfioctl: reload: policy not applied, the old one stays\n");
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

/* Where vfiod is installed; the build sets it to $(sbindir)/vfiod. */
#ifndef VFIOD_PATH
#define VFIOD_PATH "/usr/sbin/vfiod"
#endif

/*
 * check-config: the parser is the daemon's, so this runs `vfiod --check-config
 * [PATH]` (from $PATH, else VFIOD_PATH) in place of vfioctl; its output and
 * exit status (0 valid, 1 not) are the answer. Nothing talks to the daemon.
 */
static int cmd_check_config(const struct options *o, char **args, size_t n_args)
{
        char *argv[] = {"vfiod", "--check-config", n_args ? args[0] : NULL, NULL};

        if (n_args > 1)
                return usage_error("check-config takes at most one PATH");
        if (o->json)
                return usage_error("check-config has no JSON output");
        (void)fflush(stdout);
        execvp("vfiod", argv);
        if (errno == ENOENT)
                execv(VFIOD_PATH, argv);
        fprintf(stderr, "vfioctl: check-config: cannot run vfiod (%s, %s): %s\n", "$PATH",
                VFIOD_PATH, strerror(errno));
        return errno == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
}

static int cmd_stats(const struct options *o, char **args, size_t n_args)
{
        _cleanup_(vfiod_closep) struct vfiod *c = NULL;
        struct vfiod_stats s;
        int r;

        if (n_args > 0)
                return usage_error("stats takes no argument");
        r = connect_daemon(o, &c);
        if (r != 0)
                return r;
        r = vfiod_stats(c, &s);
        if (r < 0)
                return report(c, r, "stats");
        {
                const struct {
                        const char *name;
                        uint64_t value;
                } rows[] = {
                    {"clients", s.clients},           {"leases", s.leases},
                    {"domains", s.domains},           {"mappings", s.mappings},
                    {"pinned_bytes", s.pinned_bytes}, {"quarantined_groups", s.quarantined_groups},
                    {"requests", s.requests},         {"errors", s.errors},
                    {"uptime_ms", s.uptime_ms},
                };
                struct json j;

                json_init(&j, stdout);
                if (o->json)
                        json_begin_object(&j);
                for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
                        if (o->json) {
                                json_key(&j, rows[i].name);
                                json_uint(&j, rows[i].value);
                        } else {
                                printf("%-19s %" PRIu64 "\n", rows[i].name, rows[i].value);
                        }
                }
                if (o->json) {
                        json_end_object(&j);
                        fputc('\n', stdout);
                }
        }
        return EXIT_SUCCESS;
}

/* ------------------------------------------------------------------------- */
/* acquire */

/* The variable libvfiod-preload.so reads: G:FD[,G:FD...] (libvfiod-preload(7)). */
#define GROUP_FDS_ENV "VFIOD_GROUP_FDS"

/* The leases of one `vfioctl acquire`, in the order of their DEVICEs. */
struct leases {
        struct vfiod_lease *l;
        bool *revoked; /* the daemon revoked l[i]: nothing to release */
        size_t n;
};

/* Closes the fds vfioctl still holds of every lease. */
static void leases_close_fds(struct leases *ls)
{
        for (size_t i = 0; i < ls->n; i++)
                vfiod_lease_close_fds(&ls->l[i]);
}

/* Closes the fds, releases every lease the daemon did not revoke, and frees the array. */
static void leases_release(struct vfiod *c, struct leases *ls)
{
        leases_close_fds(ls);
        for (size_t i = 0; i < ls->n; i++) {
                int r;

                if (ls->revoked[i])
                        continue;
                r = vfiod_release(c, ls->l[i].lease_id);
                /* ENOENT: the command released it, or it was revoked meanwhile. */
                if (r < 0 && r != -ENOENT)
                        report(c, r, "release lease %" PRIu64 " of '%s'", ls->l[i].lease_id,
                               ls->l[i].device);
        }
        free(ls->l);
        free(ls->revoked);
        *ls = (struct leases){0};
}

/* The index of lease_id among ls, or -1. */
static ssize_t leases_find(const struct leases *ls, uint64_t lease_id)
{
        for (size_t i = 0; i < ls->n; i++)
                if (ls->l[i].lease_id == lease_id)
                        return (ssize_t)i;
        return -1;
}

/*
 * True when device's IOMMU group is the group of one of ls: its group fd
 * reaches device already (the daemon would answer EBUSY). False when the
 * daemon does not say (the Acquire then gives the reason).
 */
static bool leases_hold_group_of(struct vfiod *c, const struct leases *ls, const char *device)
{
        struct vfiod_device_info *d = NULL;
        size_t n = 0;
        bool held = false;

        if (vfiod_list_devices(c, device, &d, &n) < 0)
                return false;
        for (size_t i = 0; n == 1 && i < ls->n; i++)
                if (ls->l[i].iommu_group == d[0].iommu_group)
                        held = true;
        vfiod_devices_free(d, n);
        return held;
}

/*
 * Acquires devices[0..n) in mode through interface iface into *ls, one lease per IOMMU group: a
 * device of a group an earlier one's lease holds is not acquired again.
 * On failure says why, releases what it acquired and returns -errno.
 */
static int leases_acquire(struct vfiod *c, char **devices, size_t n, enum vfiod_mode mode,
                          enum vfiod_interface iface, struct leases *ls)
{
        *ls = (struct leases){.l = calloc(n, sizeof(*ls->l)), .revoked = calloc(n, sizeof(bool))};
        if (!ls->l || !ls->revoked) {
                leases_release(c, ls);
                return report(NULL, -ENOMEM, "acquire"), -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                int r;

                if (i > 0 && leases_hold_group_of(c, ls, devices[i]))
                        continue;
                r = vfiod_acquire_iface(c, devices[i], 0, mode, iface, &ls->l[ls->n]);
                if (r < 0) {
                        report(c, r, "acquire '%s'", devices[i]);
                        leases_release(c, ls);
                        return r;
                }
                ls->n++;
        }
        return 0;
}

/* "8 MiB" for 8388608: bytes in the largest binary unit that divides them, for people. */
static void bytes_text(uint64_t bytes, char *buf, size_t size)
{
        static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
        size_t u = 0;

        while (u + 1 < ELEMENTSOF(units) && bytes >= 1024 && bytes % 1024 == 0) {
                bytes /= 1024;
                u++;
        }
        (void)snprintf(buf, size, "%" PRIu64 " %s", bytes, units[u]);
}

/*
 * Before COMMAND starts (DIRECT and GROUP: it pins its memory itself, against
 * RLIMIT_MEMLOCK): says on stderr why vfiod did not raise the limit when it
 * says so, and warns when the soft limit COMMAND inherits (vfioctl's own,
 * after vfiod raised it) is below what it will pin: `need` (--memlock), or
 * else the policy's allowance: the largest RLIMIT_MEMLOCK vfiod says it set
 * (grant.memlock_bytes, from the rules' MaxPinnedBytes=). A lease no rule
 * gives an allowance has none: its max_pinned_bytes is a quota of brokered
 * MapDma, not what COMMAND may pin.
 */
static void check_memlock(const struct leases *ls, uint64_t need)
{
        const char *what = "--memlock";
        char have_text[32], need_text[32];
        struct rlimit rl;

        for (size_t i = 0; i < ls->n; i++)
                if (ls->l[i].grant.memlock_error[0])
                        fprintf(stderr,
                                "vfioctl: warning: vfiod did not raise RLIMIT_MEMLOCK for lease "
                                "%" PRIu64 " ('%s'): %s\n",
                                ls->l[i].lease_id, ls->l[i].device, ls->l[i].grant.memlock_error);
        if (need == 0) {
                what = "the policy's allowance";
                for (size_t i = 0; i < ls->n; i++)
                        if (ls->l[i].grant.known && ls->l[i].grant.memlock_bytes > need)
                                need = ls->l[i].grant.memlock_bytes;
        }
        if (need == 0 || getrlimit(RLIMIT_MEMLOCK, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
            rl.rlim_cur >= need)
                return;
        bytes_text(rl.rlim_cur, have_text, sizeof(have_text));
        bytes_text(need, need_text, sizeof(need_text));
        fprintf(stderr,
                "vfioctl: warning: the command's RLIMIT_MEMLOCK (%s) is below the %s it may pin "
                "(%s): mapping its memory for DMA will fail with ENOMEM beyond it\n",
                have_text, need_text, what);
}

/* In the child: makes fd inheritable (clears FD_CLOEXEC). */
static int child_inherit_fd(int fd)
{
        int flags = fcntl(fd, F_GETFD);

        if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0)
                return -errno;
        return 0;
}

/* In the child: makes fd inheritable and names it in the environment. */
static int child_pass_fd(const char *name, int fd)
{
        char num[16];
        int r;

        if (fd < 0)
                return unsetenv(name) < 0 ? -errno : 0;
        r = child_inherit_fd(fd);
        if (r < 0)
                return r;
        (void)snprintf(num, sizeof(num), "%d", fd);
        return setenv(name, num, 1) < 0 ? -errno : 0;
}

static int child_setenv_u64(const char *name, uint64_t v)
{
        char num[24];

        (void)snprintf(num, sizeof(num), "%" PRIu64, v);
        return setenv(name, num, 1) < 0 ? -errno : 0;
}

/* word with every {NAME} of the lease's fds replaced by its number; NULL when out of memory. */
static char *substitute_fds(const char *word, const struct vfiod_lease *lease)
{
        const struct {
                const char *name;
                int fd;
        } names[] = {
            {"{device-fd}", lease->device_fd},
            {"{iommufd-fd}", lease->iommufd_fd},
            {"{group-fd}", lease->group_fd},
            {"{container-fd}", lease->container_fd},
        };
        size_t len = strlen(word), cap = len * 2 + 64, n = 0;
        char *out = malloc(cap);

        for (const char *p = word; out && *p;) {
                size_t k;

                for (k = 0; k < ELEMENTSOF(names); k++)
                        if (strncmp(p, names[k].name, strlen(names[k].name)) == 0)
                                break;
                if (n + 16 >= cap) {
                        char *bigger = realloc(out, cap *= 2);

                        if (!bigger) {
                                free(out);
                                return NULL;
                        }
                        out = bigger;
                }
                if (k < ELEMENTSOF(names)) {
                        n += (size_t)snprintf(out + n, cap - n, "%d", names[k].fd);
                        p += strlen(names[k].name);
                } else
                        out[n++] = *p++;
        }
        if (out)
                out[n] = '\0';
        return out;
}

/* For IOMMUFD DIRECT: the arguments that hand the lease to QEMU, on stderr. */
static void print_qemu_args(const struct vfiod_lease *lease)
{
        if (lease->interface != VFIOD_INTERFACE_IOMMUFD || lease->iommufd_fd < 0)
                return;
        fprintf(stderr,
                "vfioctl: for QEMU: -object iommufd,id=vfiod%" PRIu64 ",fd=%d "
                "-device vfio-pci,iommufd=vfiod%" PRIu64 ",fd=%d\n",
                lease->lease_id, lease->iommufd_fd, lease->lease_id, lease->device_fd);
}

/* In the child: the single-lease variables of lease, or (NULL) none of them. */
static int child_lease_env(const struct vfiod_lease *lease, int conn_fd)
{
        static const char *const names[] = {
            VFIOD_DEVICE_FD_ENV,  VFIOD_GROUP_FD_ENV,  VFIOD_CONTAINER_FD_ENV,
            VFIOD_LEASE_ID_ENV,   VFIOD_DOMAIN_ID_ENV, VFIOD_IOMMU_GROUP_ENV,
            VFIOD_DEVICE_ENV,     VFIOD_MODE_ENV,      VFIOD_CONNECTION_FD_ENV,
            VFIOD_IOMMUFD_FD_ENV, VFIOD_CDEV_ENV,
        };
        int r;

        if (!lease) {
                for (size_t i = 0; i < ELEMENTSOF(names); i++)
                        if (unsetenv(names[i]) < 0)
                                return -errno;
                return 0;
        }
        r = child_pass_fd(VFIOD_DEVICE_FD_ENV, lease->device_fd);
        if (r >= 0)
                r = child_pass_fd(VFIOD_GROUP_FD_ENV, lease->group_fd);
        if (r >= 0)
                r = child_pass_fd(VFIOD_CONTAINER_FD_ENV, lease->container_fd);
        if (r >= 0)
                r = child_pass_fd(VFIOD_IOMMUFD_FD_ENV, lease->iommufd_fd);
        if (r >= 0)
                r = lease->cdev[0] ? (setenv(VFIOD_CDEV_ENV, lease->cdev, 1) < 0 ? -errno : 0)
                                   : (unsetenv(VFIOD_CDEV_ENV) < 0 ? -errno : 0);
        if (r >= 0)
                r = child_pass_fd(VFIOD_CONNECTION_FD_ENV, conn_fd);
        if (r >= 0)
                r = child_setenv_u64(VFIOD_LEASE_ID_ENV, lease->lease_id);
        if (r >= 0)
                r = child_setenv_u64(VFIOD_DOMAIN_ID_ENV, lease->domain_id);
        if (r >= 0)
                r = child_setenv_u64(VFIOD_IOMMU_GROUP_ENV, lease->iommu_group);
        if (r >= 0)
                r = setenv(VFIOD_DEVICE_ENV, lease->device, 1) < 0 ? -errno : 0;
        if (r >= 0)
                r = setenv(VFIOD_MODE_ENV, vfiod_mode_name(lease->mode), 1) < 0 ? -errno : 0;
        return r;
}

/* What COMMAND gets besides the leases' fds, made before fork(). */
struct child_setup {
        const sigset_t *old_mask;
        pid_t parent;
        int conn_fd;      /* BROKERED: the connection COMMAND inherits, else -1 */
        char *group_fds;  /* GROUP: VFIOD_GROUP_FDS, else NULL */
        char *ld_preload; /* --preload: LD_PRELOAD, else NULL */
};

/* The child between fork() and exec(): never returns. */
static _Noreturn void run_child(const struct leases *ls, const struct child_setup *cs, char **argv)
{
        int r = 0;

        /* COMMAND gets the signal mask vfioctl was started with. */
        if (sigprocmask(SIG_SETMASK, cs->old_mask, NULL) < 0)
                r = -errno;
        /* COMMAND is told to stop when vfioctl dies (the daemon then ends its leases). */
        if (r >= 0 && prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
                r = -errno;
        if (r >= 0 && getppid() != cs->parent)
                _exit(EXIT_CANNOT_START);
        /* Exactly these fds lose CLOEXEC; every other fd of vfioctl is CLOEXEC. */
        if (r >= 0)
                r = child_lease_env(ls->n == 1 ? &ls->l[0] : NULL, cs->conn_fd);
        for (size_t i = 0; r >= 0 && cs->group_fds && i < ls->n; i++)
                r = child_inherit_fd(ls->l[i].group_fd);
        if (r >= 0 && cs->group_fds)
                r = setenv(GROUP_FDS_ENV, cs->group_fds, 1) < 0 ? -errno : 0;
        else if (r >= 0)
                r = unsetenv(GROUP_FDS_ENV) < 0 ? -errno : 0;
        if (r >= 0 && cs->ld_preload)
                r = setenv("LD_PRELOAD", cs->ld_preload, 1) < 0 ? -errno : 0;
        /* One lease: argv is this process's copy, its words may be replaced. */
        for (size_t i = 0; r >= 0 && ls->n == 1 && argv[i]; i++)
                if (strchr(argv[i], '{') && !(argv[i] = substitute_fds(argv[i], &ls->l[0])))
                        r = -ENOMEM;
        if (r < 0) {
                fprintf(stderr, "vfioctl: preparing '%s': %s\n", argv[0] ? argv[0] : "COMMAND",
                        strerror(-r));
                _exit(EXIT_CANNOT_START);
        }
        execvp(argv[0], argv);
        r = errno;
        fprintf(stderr, "vfioctl: run '%s': %s\n", argv[0], strerror(r));
        _exit(r == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC);
}

/* Handles the daemon's events about our leases while COMMAND runs (not BROKERED). */
static void handle_events(struct vfiod *c, struct leases *ls, pid_t child, bool *watch)
{
        struct vfiod_event ev;
        ssize_t i;
        int r;

        while ((r = vfiod_next_event(c, &ev)) == 0) {
                if (ev.type == VFIOD_EVENT_DROPPED || (i = leases_find(ls, ev.lease_id)) < 0)
                        continue;
                switch (ev.type) {
                case VFIOD_EVENT_RELEASE_REQUESTED:
                        fprintf(stderr,
                                "vfioctl: the daemon wants lease %" PRIu64
                                " ('%s') back within %" PRIu32
                                " ms (%s%s%s); stopping the command\n",
                                ev.lease_id, ev.device, ev.grace_ms,
                                vfiod_release_reason_name(ev.reason), ev.detail[0] ? ": " : "",
                                ev.detail);
                        (void)kill(child, SIGTERM);
                        break;
                case VFIOD_EVENT_LEASE_REVOKED:
                        fprintf(stderr, "vfioctl: lease %" PRIu64 " ('%s') revoked (%s%s%s)\n",
                                ev.lease_id, ev.device, vfiod_release_reason_name(ev.reason),
                                ev.detail[0] ? ": " : "", ev.detail);
                        ls->revoked[i] = true;
                        (void)kill(child, SIGTERM);
                        break;
                case VFIOD_EVENT_DEVICE_ERROR:
                        fprintf(stderr,
                                "vfioctl: device '%s' of lease %" PRIu64 " reported an error\n",
                                ev.device, ev.lease_id);
                        break;
                case VFIOD_EVENT_DROPPED:
                        break;
                }
        }
        if (r != -EAGAIN) {
                /* The connection is gone: stop watching it; the command keeps running. */
                report(c, r, "connection to the daemon");
                *watch = false;
        }
}

static int exit_status_of(int status)
{
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return EXIT_FAILURE;
}

/* The signals vfioctl passes on to COMMAND (SIGCHLD is waited for, not passed). */
static const int forwarded_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

/*
 * Blocks the signals vfioctl forwards or waits for and returns a signalfd
 * for them; *ret_old_mask gets the mask to restore. On failure says why on
 * stderr and returns -errno, the mask as it was.
 */
static int signals_block(sigset_t *ret_old_mask)
{
        sigset_t mask;
        int sfd, r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        for (size_t i = 0; i < ELEMENTSOF(forwarded_signals); i++)
                sigaddset(&mask, forwarded_signals[i]);
        if (sigprocmask(SIG_BLOCK, &mask, ret_old_mask) < 0) {
                r = -errno;
                report(NULL, r, "sigprocmask");
                return r;
        }
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
                r = -errno;
                (void)sigprocmask(SIG_SETMASK, ret_old_mask, NULL);
                report(NULL, r, "signalfd");
                return r;
        }
        return sfd;
}

/*
 * Until the child pid exits: forwards signals from sfd to it and, while
 * watch, handles the daemon's events. Returns its wait status (0 when
 * waiting failed).
 */
static int wait_child(struct vfiod *c, struct leases *ls, pid_t pid, int sfd, bool watch)
{
        int status = 0;

        for (;;) {
                struct pollfd p[2] = {
                    {.fd = sfd, .events = POLLIN},
                    {.fd = watch ? vfiod_get_fd(c) : -1, .events = POLLIN},
                };
                struct signalfd_siginfo si;
                pid_t w;

                if (watch)
                        handle_events(c, ls, pid, &watch);
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        report(NULL, -errno, "poll");
                        break;
                }
                while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                        if (si.ssi_signo == SIGCHLD)
                                continue;
                        /* A signal from the terminal reached the child too; forward the others. */
                        if (si.ssi_code != SI_KERNEL)
                                (void)kill(pid, (int)si.ssi_signo);
                }
                w = waitpid(pid, &status, WNOHANG);
                if (w == pid)
                        break;
                if (w < 0 && errno != EINTR) {
                        report(NULL, -errno, "waitpid");
                        status = 0;
                        break;
                }
        }
        return status;
}

/* Runs argv with the leases' fds and waits for it; returns its exit status. */
static int run_and_wait(struct vfiod *c, struct leases *ls, struct child_setup *cs, char **argv)
{
        _cleanup_close_ int sfd = -EBADF;
        enum vfiod_mode mode = ls->l[0].mode;
        sigset_t old_mask;
        pid_t pid;
        int status;

        sfd = signals_block(&old_mask);
        if (sfd < 0)
                return EXIT_CANNOT_START;
        cs->old_mask = &old_mask;
        cs->parent = getpid();
        cs->conn_fd = mode == VFIOD_MODE_BROKERED ? vfiod_get_fd(c) : -1;
        (void)fflush(NULL);
        pid = fork();
        if (pid < 0) {
                int r = -errno;

                (void)sigprocmask(SIG_SETMASK, &old_mask, NULL);
                return report(NULL, r, "fork"), EXIT_CANNOT_START;
        }
        if (pid == 0)
                run_child(ls, cs, argv);

        /* The child has its copies; ours would keep the groups quarantined after release. */
        leases_close_fds(ls);
        status = wait_child(c, ls, pid, sfd, mode != VFIOD_MODE_BROKERED);
        (void)sigprocmask(SIG_SETMASK, &old_mask, NULL);
        return exit_status_of(status);
}

/* "G:FD,G:FD" of the leases' groups, for VFIOD_GROUP_FDS; NULL when out of memory. */
static char *group_fds_of(const struct leases *ls)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        for (size_t i = 0; i < ls->n; i++)
                fprintf(f, "%s%" PRIu32 ":%d", i ? "," : "", ls->l[i].iommu_group,
                        ls->l[i].group_fd);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* LD_PRELOAD with path appended (once), space separated as ld.so(8) allows; NULL: no memory. */
static char *ld_preload_with(const char *path)
{
        const char *old = getenv("LD_PRELOAD");
        char *value;

        if (!old || !old[0])
                return strdup(path);
        /* Already there as an item of the list (separated by spaces or colons). */
        for (const char *p = strstr(old, path); p; p = strstr(p + 1, path)) {
                char after = p[strlen(path)];

                if ((p == old || p[-1] == ' ' || p[-1] == ':') &&
                    (after == '\0' || after == ' ' || after == ':'))
                        return strdup(old);
        }
        return asprintf(&value, "%s %s", old, path) < 0 ? NULL : value;
}

static int cmd_acquire(const struct options *o, char **args, size_t n_args)
{
        _cleanup_(vfiod_closep) struct vfiod *c = NULL;
        struct child_setup cs = {.conn_fd = -1};
        struct leases ls;
        enum vfiod_mode mode = o->mode;
        int r, status;

        if (o->n_operands < 1)
                return usage_error("acquire needs a DEVICE");
        if (!o->dashdash || o->n_operands == n_args)
                return usage_error("acquire needs a COMMAND to run (after '--')");
        if (o->preload && mode != VFIOD_MODE_GROUP)
                return usage_error("--preload needs --mode group (its default)");
        if (o->n_operands > 1 && mode != VFIOD_MODE_GROUP)
                return usage_error("several DEVICEs need --mode group (or --preload)");
        if (o->memlock && mode == VFIOD_MODE_BROKERED)
                return usage_error("--memlock: a brokered lease pins nothing in the command");
        /* A library ld.so cannot load would leave the command to fail on /dev/vfio/N. */
        if (o->preload && access(o->preload, R_OK) < 0) {
                report(NULL, -errno, "--preload: '%s'", o->preload);
                return EXIT_CANNOT_START;
        }

        r = connect_daemon(o, &c);
        if (r != 0)
                return EXIT_CANNOT_START;
        r = leases_acquire(c, args, o->n_operands, mode,
                           o->iface ? o->iface : VFIOD_INTERFACE_LEGACY, &ls);
        if (r < 0)
                return EXIT_CANNOT_START;
        if (mode == VFIOD_MODE_GROUP) {
                cs.group_fds = group_fds_of(&ls);
                cs.ld_preload = o->preload ? ld_preload_with(o->preload) : NULL;
                if (!cs.group_fds || (o->preload && !cs.ld_preload)) {
                        report(NULL, -ENOMEM, "acquire");
                        status = EXIT_CANNOT_START;
                        goto out;
                }
        }
        if (mode != VFIOD_MODE_BROKERED)
                check_memlock(&ls, o->memlock);

        for (size_t i = 0; i < ls.n; i++)
                print_qemu_args(&ls.l[i]);
        status = run_and_wait(c, &ls, &cs, args + o->n_operands);
out:
        leases_release(c, &ls);
        free(cs.group_fds);
        free(cs.ld_preload);
        return status;
}

/* ------------------------------------------------------------------------- */

/* BYTES of --memlock: a number with an optional K, M, G or T (powers of 1024). */
static int parse_bytes(const char *s, uint64_t *ret)
{
        static const char suffixes[] = "KMGT";
        unsigned long long v;
        const char *unit;
        char *end;

        if (!s[0] || s[0] < '0' || s[0] > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s)
                return -EINVAL;
        if (*end) {
                unit = strchr(suffixes, *end);
                if (!unit || end[1] != '\0')
                        return -EINVAL;
                for (size_t i = 0; i <= (size_t)(unit - suffixes); i++) {
                        if (v > UINT64_MAX / 1024)
                                return -ERANGE;
                        v *= 1024;
                }
        }
        if (v == 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* The mode named name ("direct", "brokered", "group"), or -EINVAL. */
static int mode_of(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(listed_modes); i++)
                if (strcmp(name, vfiod_mode_name(listed_modes[i])) == 0)
                        return (int)listed_modes[i];
        return -EINVAL;
}

/* Sets the acquire mode an option names; false when another option named another. */
static bool options_set_mode(struct options *o, enum vfiod_mode mode)
{
        if (o->mode && o->mode != mode)
                return false;
        o->mode = mode;
        return true;
}

enum { OPT_PRELOAD = 0x100, OPT_MEMLOCK };

/*
 * Parses the options (those before a "--") into *o and takes the "--" out
 * of argv. Returns the index of the command's name in argv, with *ret_argc
 * the count left, or an exit status as -1 - status (help, version, usage).
 */
static int parse_argv(int argc, char **argv, struct options *o, int *ret_argc)
{
        static const struct option longopts[] = {
            {"socket", required_argument, NULL, 's'},
            {"json", no_argument, NULL, 'j'},
            {"brokered", no_argument, NULL, 'b'},
            {"mode", required_argument, NULL, 'm'},
            {"preload", optional_argument, NULL, OPT_PRELOAD},
            {"memlock", required_argument, NULL, OPT_MEMLOCK},
            {"reason", required_argument, NULL, 'r'},
            {"interface", required_argument, NULL, 'i'},
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},
            {},
        };
        int dashdash = 1, opt, m;

        /* Options end at the first "--": what follows is acquire's COMMAND, untouched. */
        while (dashdash < argc && strcmp(argv[dashdash], "--") != 0)
                dashdash++;
        while ((opt = getopt_long(dashdash, argv, "s:jbm:r:i:hV", longopts, NULL)) != -1) {
                switch (opt) {
                case 's':
                        o->socket = optarg;
                        break;
                case 'j':
                        o->json = true;
                        break;
                case 'b':
                        if (!options_set_mode(o, VFIOD_MODE_BROKERED))
                                return -1 - usage_error("--brokered, --mode and --preload differ");
                        break;
                case 'm':
                        m = mode_of(optarg);
                        if (m < 0)
                                return -1 - usage_error("unknown mode '%s'", optarg);
                        if (!options_set_mode(o, (enum vfiod_mode)m))
                                return -1 - usage_error("--brokered, --mode and --preload differ");
                        break;
                case OPT_PRELOAD:
                        if (!options_set_mode(o, VFIOD_MODE_GROUP))
                                return -1 -
                                       usage_error("--preload needs --mode group (its default)");
                        o->preload = optarg ? optarg : VFIOD_PRELOAD_PATH;
                        break;
                case OPT_MEMLOCK:
                        if (parse_bytes(optarg, &o->memlock) < 0)
                                return -1 -
                                       usage_error("--memlock: '%s' is no size in bytes (K, M, "
                                                   "G, T: powers of 1024)",
                                                   optarg);
                        break;
                case 'r':
                        o->reason = optarg;
                        break;
                case 'i':
                        if (strcmp(optarg, "legacy") == 0)
                                o->iface = VFIOD_INTERFACE_LEGACY;
                        else if (strcmp(optarg, "iommufd") == 0)
                                o->iface = VFIOD_INTERFACE_IOMMUFD;
                        else if (strcmp(optarg, "any") == 0)
                                o->iface = VFIOD_INTERFACE_ANY;
                        else
                                return -1 - usage_error("unknown interface '%s' (legacy, iommufd, "
                                                        "any)",
                                                        optarg);
                        break;
                case 'h':
                        usage(stdout);
                        return -1 - EXIT_SUCCESS;
                case 'V':
                        puts("vfioctl (" PACKAGE_NAME ") " PACKAGE_VERSION);
                        return -1 - EXIT_SUCCESS;
                default:
                        fputs("Try 'vfioctl --help'.\n", stderr);
                        return -1 - EXIT_USAGE;
                }
        }
        if (optind >= dashdash)
                return -1 - usage_error("no command given");
        o->dashdash = dashdash < argc;
        o->n_operands = (size_t)(dashdash - optind - 1);
        if (o->dashdash) {
                memmove(&argv[dashdash], &argv[dashdash + 1],
                        (size_t)(argc - dashdash) * sizeof(*argv)); /* with argv[argc], NULL */
                argc--;
        }
        *ret_argc = argc;
        return optind;
}

int main(int argc, char **argv)
{
        static const struct {
                const char *name;
                int (*run)(const struct options *o, char **args, size_t n_args);
        } commands[] = {
            {"list", cmd_list},
            {"acquire", cmd_acquire},
            {"leases", cmd_leases},
            {"revoke", cmd_revoke},
            {"reload", cmd_reload},
            {"stats", cmd_stats},
            {"check-config", cmd_check_config},
        };
        struct options o = {0};
        const char *cmd;
        int i;

        i = parse_argv(argc, argv, &o, &argc);
        if (i < 0)
                return -1 - i;
        cmd = argv[i];
        if (strcmp(cmd, "acquire") != 0) {
                if (o.mode)
                        return usage_error(
                            "--brokered, --mode and --preload are options of acquire");
                if (o.memlock)
                        return usage_error("--memlock is an option of acquire");
                if (o.iface)
                        return usage_error("--interface is an option of acquire");
        }
        if (!o.mode)
                o.mode = VFIOD_MODE_DIRECT;
        if (o.reason && strcmp(cmd, "revoke") != 0)
                return usage_error("--reason is an option of revoke");
        for (size_t k = 0; k < ELEMENTSOF(commands); k++)
                if (strcmp(cmd, commands[k].name) == 0)
                        return commands[k].run(&o, argv + i + 1, (size_t)(argc - i - 1));
        return usage_error("unknown command '%s'", cmd);
}
