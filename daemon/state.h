/* SPDX-License-Identifier: MIT */
/*
 * Restart without loss: vfiod's leases, domains, mappings, interrupt
 * bindings and client connections kept in systemd's fd store, and rebuilt
 * by the next vfiod.
 *
 * Concepts: with --fd-store (vfiod.service sets it, with
 * FileDescriptorStoreMax=), before the loop blocks vfiod makes the fd store
 * match what it holds (vfiod_state_sync): every fd below is stored once with
 * FDSTORE=1, FDPOLL=0 and its name, and removed with FDSTOREREMOVE=1 once
 * the object is gone (a release, an unmap, a disconnect):
 *
 *   client-C                 the connection of client C
 *   container-D              the VFIO container of domain D
 *   memfd-D-V                the client memfd of view V of domain D (one per
 *                            daemon mmap; mappings of one memfd share it)
 *   group-L                  the group fd of lease L
 *   device-L-K               the daemon's fd of device K of lease L
 *   irq-L-K-I-N-INO          the client eventfd of vector N of interrupt index
 *                            I of that device (INO: its inode, so a
 *                            replaced eventfd gets a new name)
 *   unmask-L-K-I-INO         the client's UNMASK eventfd of index I
 *   state-G                  a memfd holding the serialized state, G its
 *                            generation ("state": a vfiod before generations)
 *
 * The daemon's own REQ/ERR eventfds are not kept: the next vfiod assigns new
 * ones. A save never changes what is stored: the fds new objects need are
 * stored first, then the whole state in a new sealed memfd as state-G+1,
 * then state-G is removed, and only then the fds of objects that are gone.
 * A crash at any instant leaves a complete state whose fds are all there
 * (fds it does not name are torn down at restore); between storing
 * state-G+1 and removing state-G, both are there, and the next vfiod takes
 * the newest complete one. A save therefore needs one fd-store slot more
 * than what it holds. VFIOD_CRASH_AT_SAVE_STEP=N (tests only) makes vfiod
 * SIGKILL itself at the Nth step of its saves (each fd stored or removed,
 * each half of the state written, the state stored, the old one removed).
 * The state is text, one object per line:
 *
 *   vfiod-state 1
 *   next C D L
 *   client C STATE CAPS ADMIN MAX_DATAGRAM MAX_FDS UNIT SLICE
 *                                    (UNIT, SLICE: read at connect, '-' when
 *                                    none; a state without them: none)
 *   domain C D MODEL MODEL_SET MODE
 *   view D V WRITABLE OFFSET SIZE INO
 *   map D IOVA SIZE V DELTA
 *   lease C L D GROUP MODE STATUS REASON DEVICE N_DEVS
 *                                    (STATUS 2: asked back; asked again, with a
 *                                    new grace period, once restored)
 *   dev L K BDF
 *   bound GROUP BDF PREV_DRIVER      (Managed=yes: given back at release)
 *   irq L K I N INO / unmask L K I INO
 *   end HASH                         (FNV-1a 64 of everything before)
 *
 * This file owns only that framing and the fd store. Each line is written
 * and read by the object it describes (logind's session_save/session_load):
 * "next" by the server, "client" and "domain" by client.c, "view" and "map"
 * by domain.c, the others by lease.c, each with a keyword table (below);
 * each fd named in a line is handed by that name to the object the line
 * builds. A field of a lease is added in lease.c alone.
 *
 * Nothing in it depends on the old process's addresses: a view is mmapped
 * again at a new address and each mapping gets it with VFIO_DMA_UNMAP_FLAG_VADDR
 * + VFIO_DMA_MAP_FLAG_VADDR (VFIO_UPDATE_VADDR, Linux 5.12+; Debian's 6.1 has
 * it). The IOMMU mapping itself never goes away: the kept container holds it
 * and the pages stay pinned, even when the process that mapped them was
 * killed (checked on the real kernel: tests/vm-systemd, sd-probe). A planned
 * stop invalidates the addresses first; after a SIGKILL the next vfiod does.
 *
 * Restore (vfiod_state_restore, before the first client is served): the
 * state must parse, its hash match, and every fd it names be there and of
 * the right kind (the newest complete state is used; the others are
 * removed). Then clients (uid, gid, pid and groups read again with
 * SO_PEERCRED and SO_PEERGROUPS, the unit and slice the state's), domains,
 * views, leases (device info and interrupts read again, REQ/ERR armed,
 * groups marked LEASED, the policy in force checked: a lease it no longer
 * allows is revoked) and mappings are rebuilt. A state that cannot be
 * restored is never half-used: what was rebuilt is released with the full
 * release sequence, and every other stored fd is torn down (device: every
 * interrupt off and reset; container: VFIO_UNMAP_ALL) and closed; clients
 * see their connection close.
 *
 * Stop: SIGTERM with the fd store leaves every lease in place (the next
 * vfiod takes them over); stopping the unit for good makes systemd close
 * the stored fds, and the kernel cleans up at the last close (vfio-pci
 * disables and resets a device when its last fd goes, the container's
 * mappings go with the container).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vfiod_client;
struct vfiod_domain;
struct vfiod_lease;
struct vfiod_server;

/* An fd systemd passed, with its name (FileDescriptorName= or FDNAME=). */
struct vfiod_passed_fd {
        char *name;
        int fd; /* owned; -1 once taken */
};

struct vfiod_passed {
        struct vfiod_passed_fd *fds; /* the fd store's entries */
        size_t n;
};

/*
 * sd_listen_fds_with_names(): *ret_listen is the socket named "vfiod"
 * (FileDescriptorName= of vfiod.socket; an unnamed one too), or 0 when
 * none; it must be the only one and a listening AF_UNIX SOCK_SEQPACKET
 * socket (-EINVAL otherwise). Every other fd is an fd-store entry and goes
 * to ret. Returns 0 or a negative errno (logged).
 */
int vfiod_passed_from_systemd(int *ret_listen, struct vfiod_passed *ret);
/* Closes what was not taken. */
void vfiod_passed_done(struct vfiod_passed *passed);

struct vfiod_state;

/* The fd store of server s; off until vfiod_state_enable(). */
int vfiod_state_new(struct vfiod_server *s, struct vfiod_state **ret);
/* --fd-store: keeps the leases in the fd store when NOTIFY_SOCKET is set (logs when not). */
void vfiod_state_enable(struct vfiod_state *st);
void vfiod_state_free(struct vfiod_state *st);

/*
 * Rebuilds the server's clients, domains and leases from the fd store (fds
 * taken from passed). Returns the number of leases restored, 0 when there
 * was nothing to restore, or a negative errno when the state was torn down.
 */
int vfiod_state_restore(struct vfiod_state *st, struct vfiod_passed *passed);

/* Makes the fd store match what the server holds (cheap when nothing changed). */
void vfiod_state_sync(struct vfiod_state *st);

/* A planned stop that keeps the leases: a last sync, the mappings' addresses invalidated. */
void vfiod_state_stop(struct vfiod_state *st);

/*
 * After vfiod_state_stop(): frees the leases and domains and closes their fds
 * without the release sequence (no ioctl, no driver given back), so that
 * vfiod_server_free() then only closes connections. The fd store keeps it all.
 */
void vfiod_state_abandon(struct vfiod_state *st);

/*
 * ---- how each object saves and loads itself ------------------------------------
 *
 * state.c keeps the framing (the magic line, the hash, the memfd swap in the
 * fd store) and dispatches; the server, each client, domain and lease write
 * their own lines and the fds they name (vfiod_server_save() and the
 * *_save() it calls), and load their own lines, through the keyword tables
 * below, taking their fds by name.
 */

/* A save in progress: the state's text and the fds it names, in order. */
struct vfiod_save;

/* Appends one line to the state (fmt without its newline). */
void vfiod_save_line(struct vfiod_save *sv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Names fd (borrowed; nothing when it is < 0) in the fd store. */
void vfiod_save_fd(struct vfiod_save *sv, int fd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A restore in progress. */
struct vfiod_load;

/* A loader's answer for a line whose fields do not parse ("a line it does not know"). */
#define VFIOD_LOAD_UNKNOWN 1

/*
 * One keyword of the state and the function that builds what its line says
 * (args: what follows the keyword). The lines are read twice: first only to
 * check that every fd they name is there (vfiod_load_checking(): the loader
 * names its fds with vfiod_load_fd() and returns 0), then to build.
 * Returns 0, VFIOD_LOAD_UNKNOWN, or a negative errno (vfiod_load_fail() says why).
 * A table ends with a NULL keyword.
 */
struct vfiod_load_keyword {
        const char *keyword;
        int (*load)(struct vfiod_load *ld, const char *args);
};

/*
 * The tables, each in the file of the object it builds: "next" (server.c),
 * "client" and "domain" (client.c: a domain joins its client), "view" and
 * "map" (domain.c), "lease", "bound", "dev", "irq" and "unmask" (lease.c).
 */
extern const struct vfiod_load_keyword vfiod_server_keywords[];
extern const struct vfiod_load_keyword vfiod_client_keywords[];
extern const struct vfiod_load_keyword vfiod_domain_keywords[];
extern const struct vfiod_load_keyword vfiod_lease_keywords[];

struct vfiod_server *vfiod_load_server(struct vfiod_load *ld);
bool vfiod_load_checking(const struct vfiod_load *ld);
/* The domain of that id among every client's, or NULL. */
struct vfiod_domain *vfiod_load_domain(struct vfiod_load *ld, uint64_t id);
/*
 * The stored fd named by fmt, handed to the object the line builds (it owns
 * it from here on), or -ENOENT. While checking: -EBADF when it is there; when
 * it is not, the check fails.
 */
int vfiod_load_fd(struct vfiod_load *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Says why the restore fails; returns r. */
int vfiod_load_fail(struct vfiod_load *ld, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
