/* SPDX-License-Identifier: MIT */
/*
 * vfiod: brokers VFIO device access to unprivileged programs.
 *
 * main() is parse_argv() (struct args), then --check-config or run(): set-up
 * (policy, event loop, server, fd store and listening socket), the loop with
 * its watchers (signals, STATUS=, idle exit, watchdog), teardown.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <systemd/sd-daemon.h>

#include "daemon/lease.h"
#include "daemon/log.h"
#include "daemon/monitor.h"
#include "daemon/policy.h"
#include "daemon/server.h"
#include "daemon/state.h"
#include "proto/macro.h"

static void help(void)
{
        printf("Usage: vfiod [OPTIONS]\n"
               "Hands VFIO devices to unprivileged programs, as its configuration allows.\n\n"
               "  --socket PATH         listen on PATH when not socket-activated\n"
               "                        (default " VFIOD_DEFAULT_SOCKET ")\n"
               "  --config PATH         configuration file (default " VFIOD_DEFAULT_CONFIG ")\n"
               "  --check-config [PATH] check the configuration (and PATH.d/*.conf), print\n"
               "                        each rule, the devices it matches and warnings;\n"
               "                        exit 0 valid (warnings too), 1 not\n"
               "  --sysfs-root DIR      find devices under DIR/sys (default /)\n"
               "  --vfio-dir DIR        VFIO nodes in DIR (default /dev/vfio)\n"
               "  --fd-store            keep leases, clients and their fds in the service\n"
               "                        manager's fd store across restarts\n"
               "  --exit-idle SEC       socket-activated: exit after SEC seconds without\n"
               "                        clients, leases or quarantined groups\n"
               "  --debug               log debug messages too\n"
               "  -h --help             show this help\n"
               "  --version             show the version\n");
}

/* missing_ok: the default file, which vfiod reads as empty when it does not exist. */
static int check_config(const char *path, bool missing_ok, const char *sysfs)
{
        struct vfiod_errors errors = {0};
        struct vfiod_policy *p = NULL;
        int r = vfiod_policy_load(path, missing_ok, &p, &errors);

        for (size_t i = 0; i < errors.n; i++)
                fprintf(stderr, "%s\n", errors.lines[i]);
        vfiod_errors_clear(&errors);
        if (r < 0) {
                fprintf(stderr, "%s: invalid\n", path);
                return EXIT_FAILURE;
        }
        if (missing_ok && access(path, F_OK) < 0 && errno == ENOENT)
                printf("notice: %s does not exist: the empty policy, nobody may lease any device "
                       "(as vfiod would run)\n",
                       path);
        printf("%s: valid, %zu device rule(s)\n", path, p->n_rules);
        vfiod_policy_print(p, sysfs, stdout);
        vfiod_policy_free(p);
        return EXIT_SUCCESS;
}

/* --fd-store: a stop leaves the leases to the next vfiod. */
static bool fd_store;

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
        if (fd_store)
                log_notice("Received %s; stopping (leases stay in the fd store)",
                           strsignal(w->signum));
        else
                log_notice("Received %s; releasing every lease and stopping", strsignal(w->signum));
        ev_break(loop, EVBREAK_ALL);
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
        (void)sd_notify(0, "WATCHDOG=1");
}

/* What main() watches besides the server: STATUS= and the idle exit. */
struct status_watch {
        struct vfiod_server *server;
        struct vfiod_state *state;
        size_t clients, leases; /* as last reported; SIZE_MAX = never */
        double idle_exit;       /* seconds; 0 = never */
        ev_tstamp busy_at;      /* last time anything was held */
        ev_prepare prepare;
        ev_timer idle;
};

static bool server_idle(struct vfiod_server *s)
{
        return s->n_clients == 0 && list_empty(&s->leases) &&
               vfiod_registry_count(s->devices, VFIOD_GROUP_QUARANTINED) == 0;
}

/* Before the loop blocks: STATUS= when the counts changed, and the idle clock. */
static void status_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
        struct status_watch *sw = w->data;
        struct vfiod_server *s = sw->server;
        size_t leases = list_length(&s->leases);

        /* The fd store follows what the server holds. */
        vfiod_state_sync(sw->state);
        if (!server_idle(s))
                sw->busy_at = ev_now(loop);
        if (s->n_clients == sw->clients && leases == sw->leases)
                return;
        sw->clients = s->n_clients;
        sw->leases = leases;
        (void)sd_notifyf(0, "STATUS=Serving: %zu lease(s), %zu client(s)", leases, sw->clients);
}

static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
        struct status_watch *sw = w->data;

        if (!server_idle(sw->server) || ev_now(loop) - sw->busy_at < sw->idle_exit)
                return;
        log_notice("Idle for %gs (no client, lease or quarantined group); exiting", sw->idle_exit);
        ev_break(loop, EVBREAK_ALL);
}

static void reload_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
        struct status_watch *sw = w->data;
        struct vfiod_errors errors = {0};

        struct timespec ts;

        /* MONOTONIC_USEC= with RELOADING=1, as Type=notify-reload wants it. */
        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        (void)sd_notifyf(0,
                         "RELOADING=1\nSTATUS=Reloading the configuration\nMONOTONIC_USEC=%" PRIu64,
                         (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
        (void)vfiod_server_reload(sw->server, &errors, NULL);
        vfiod_errors_clear(&errors);
        (void)sd_notify(0, "READY=1");
        sw->clients = SIZE_MAX; /* STATUS= again before the loop blocks */
}

/*
 * The soft RLIMIT_NOFILE up to the hard one (the unit's LimitNOFILE= sets
 * both): what the limits of vfiod.conf(5) let clients make vfiod hold must
 * fit, and vfiod keeps VFIOD_FD_HEADROOM of it free (daemon/client.c).
 */
static void raise_nofile(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_warning("Cannot raise the fd limit to %llu: %m",
                            (unsigned long long)rl.rlim_max);
}

/* What the command line asks for. */
struct args {
        const char *socket_path, *config, *sysfs, *vfio_dir;
        bool do_check;     /* --check-config */
        const char *check; /* its file, when named */
        double idle_exit;  /* --exit-idle seconds; 0 = never */
};

static const char *config_path(const struct args *a)
{
        return a->config ? a->config : VFIOD_DEFAULT_CONFIG;
}

/* The options of vfiod(8). */
enum {
        OPT_SOCKET = 0x100,
        OPT_CONFIG,
        OPT_CHECK,
        OPT_SYSFS,
        OPT_VFIO,
        OPT_VERSION,
        OPT_DEBUG,
        OPT_EXIT_IDLE,
        OPT_FD_STORE
};
static const struct option options[] = {
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"check-config", optional_argument, NULL, OPT_CHECK},
    {"sysfs-root", required_argument, NULL, OPT_SYSFS},
    {"vfio-dir", required_argument, NULL, OPT_VFIO},
    {"debug", no_argument, NULL, OPT_DEBUG},
    {"exit-idle", required_argument, NULL, OPT_EXIT_IDLE},
    {"fd-store", no_argument, NULL, OPT_FD_STORE},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {},
};

/*
 * Fills *a from the command line (and sets fd_store and the log level).
 * Returns 1 to go on, 0 when there is nothing more to do (--help, --version),
 * -EINVAL after saying on stderr what is wrong.
 */
static int parse_argv(int argc, char **argv, struct args *a)
{
        char *end;
        int c;

        *a = (struct args){
            .socket_path = VFIOD_DEFAULT_SOCKET,
            .sysfs = "/",
            .vfio_dir = "/dev/vfio",
        };
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case OPT_SOCKET:
                        a->socket_path = optarg;
                        break;
                case OPT_CONFIG:
                        a->config = optarg;
                        break;
                case OPT_CHECK:
                        a->do_check = true;
                        a->check = optarg;
                        break;
                case OPT_SYSFS:
                        a->sysfs = optarg;
                        break;
                case OPT_VFIO:
                        a->vfio_dir = optarg;
                        break;
                case OPT_FD_STORE:
                        fd_store = true;
                        break;
                case OPT_EXIT_IDLE:
                        a->idle_exit = strtod(optarg, &end);
                        if (end == optarg || *end || !(a->idle_exit > 0 && a->idle_exit < 1e9)) {
                                fprintf(stderr,
                                        "vfiod: --exit-idle '%s' is not a number of seconds\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                case OPT_DEBUG:
                        vfiod_log_set_max_level(LOG_DEBUG);
                        break;
                case 'h':
                        help();
                        return 0;
                case OPT_VERSION:
                        printf("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }
        }
        /* --check-config takes its file as the next argument too. */
        if (a->do_check && !a->check && optind < argc)
                a->check = argv[optind++];
        if (optind < argc) {
                fprintf(stderr, "vfiod: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

/* The running daemon: what set-up makes and teardown undoes. */
struct daemon {
        const struct args *args;
        struct ev_loop *loop;
        struct vfiod_server *server;
        struct vfiod_state *state;
        struct vfiod_monitor *monitor;
        bool own_socket; /* bound here (not from systemd): unlinked at the end */
        ev_signal sig_term, sig_int, sig_hup;
        ev_timer watchdog;
        struct status_watch sw;
};

/* The policy, the loop and the server. Logs what failed. */
static int setup_server(struct daemon *d)
{
        const struct args *a = d->args;
        struct vfiod_errors errors = {0};
        struct vfiod_policy *policy = NULL;
        int r;

        /* Without --config a missing default file means "nothing is allowed to anyone". */
        r = vfiod_policy_load(config_path(a), !a->config, &policy, &errors);
        for (size_t i = 0; i < errors.n; i++)
                log_error("%s", errors.lines[i]);
        vfiod_errors_clear(&errors);
        if (r < 0) {
                log_error("Invalid configuration; not starting");
                return r;
        }
        if (policy->n_rules == 0)
                log_notice("The configuration '%s' has no [Device] rule: nobody may lease anything",
                           config_path(a));
        (void)signal(SIGPIPE, SIG_IGN);
        raise_nofile();
        d->loop = ev_default_loop(EVFLAG_AUTO);
        if (!d->loop) {
                log_error("Cannot initialise the event loop");
                vfiod_policy_free(policy);
                return -ENOMEM;
        }
        /* The policy moves to the server. */
        r = vfiod_server_new(d->loop,
                             &(struct vfiod_server_options){
                                 .sysfs_root = a->sysfs,
                                 .vfio_dir = a->vfio_dir,
                                 .config_path = config_path(a),
                                 .config_missing_ok = !a->config,
                             },
                             policy, &d->server);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the server");
        r = vfiod_monitor_new(d->loop, d->server->devices, &d->monitor);
        if (r < 0)
                log_warning("Cannot watch the kernel's device uevents: %s; devices added, removed "
                            "or rebound while vfiod runs are not seen until it restarts",
                            strerror(-r));
        else
                /* What changed between the server's first scan and the socket. */
                (void)vfiod_registry_scan(d->server->devices);
        vfiod_server_log_devices(d->server);
        return 0;
}

/* The fd store, the leases it kept, and the listening socket. Logs what failed. */
static int setup_state_and_socket(struct daemon *d)
{
        struct vfiod_passed passed = {0};
        int r, fd;

        r = vfiod_passed_from_systemd(&fd, &passed);
        if (r < 0)
                goto fail;
        r = vfiod_state_new(d->server, &d->state);
        if (r < 0) {
                log_error_errno(r, "Cannot set up the fd store");
                goto fail;
        }
        if (fd_store)
                vfiod_state_enable(d->state);
        /* Leases kept by a previous vfiod; a state that cannot be restored is torn down. */
        (void)vfiod_state_restore(d->state, &passed);
        vfiod_passed_done(&passed);
        if (fd == 0) {
                fd = vfiod_socket_bind(d->args->socket_path);
                if (fd < 0)
                        return fd;
                d->own_socket = true;
        }
        r = vfiod_server_listen_take(d->server, fd);
        if (r < 0)
                return log_error_errno(r, "Cannot listen");
        return 0;

fail:
        vfiod_passed_done(&passed);
        return r;
}

/* Signals, READY=1, STATUS=, the idle exit and the watchdog. */
static void start_watchers(struct daemon *d)
{
        const struct args *a = d->args;
        struct status_watch *sw = &d->sw;
        uint64_t watchdog_usec = 0;

        ev_signal_init(&d->sig_term, stop_cb, SIGTERM);
        ev_signal_init(&d->sig_int, stop_cb, SIGINT);
        ev_signal_init(&d->sig_hup, reload_cb, SIGHUP);
        *sw = (struct status_watch){
            .server = d->server,
            .state = d->state,
            .clients = SIZE_MAX,
            .leases = SIZE_MAX,
            .idle_exit = a->idle_exit,
        };
        d->sig_hup.data = sw;
        ev_signal_start(d->loop, &d->sig_term);
        ev_signal_start(d->loop, &d->sig_int);
        ev_signal_start(d->loop, &d->sig_hup);
        log_notice("vfiod %s ready on %s (devices under %s, VFIO in %s)", PACKAGE_VERSION,
                   d->own_socket ? a->socket_path : "the socket from systemd", a->sysfs,
                   a->vfio_dir);
        (void)sd_notify(0, "READY=1\nSTATUS=Serving");
        sw->busy_at = ev_now(d->loop);
        ev_prepare_init(&sw->prepare, status_cb);
        sw->prepare.data = sw;
        /* After the server's reaper, so a client that just left is not counted. */
        ev_set_priority(&sw->prepare, EV_MINPRI);
        ev_prepare_start(d->loop, &sw->prepare);
        ev_timer_init(&sw->idle, idle_cb, 0., 0.);
        sw->idle.data = sw;
        if (sw->idle_exit > 0 && !d->own_socket) {
                ev_timer_set(&sw->idle, sw->idle_exit < 1 ? sw->idle_exit : 1.,
                             sw->idle_exit < 1 ? sw->idle_exit : 1.);
                ev_timer_start(d->loop, &sw->idle);
        } else if (sw->idle_exit > 0)
                log_notice("--exit-idle applies only under socket activation; ignored");
        /* WatchdogSec= in the unit: ping at half the interval. */
        ev_timer_init(&d->watchdog, watchdog_cb, 0., 0.);
        if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
                ev_timer_set(&d->watchdog, watchdog_usec / 2e6, watchdog_usec / 2e6);
                ev_timer_start(d->loop, &d->watchdog);
        }
}

/* After the loop: hands the leases to the fd store or releases them, and stops. */
static void teardown(struct daemon *d)
{
        (void)sd_notify(0, "STOPPING=1");
        if (fd_store && d->server->n_clients > 0) {
                /*
                 * Every lease stays: the fd store holds its fds and the state, and the
                 * next vfiod takes them over. Nothing is released here.
                 */
                vfiod_state_stop(d->state);
                vfiod_state_abandon(d->state);
        }
        ev_signal_stop(d->loop, &d->sig_term);
        ev_signal_stop(d->loop, &d->sig_int);
        ev_signal_stop(d->loop, &d->sig_hup);
        ev_timer_stop(d->loop, &d->watchdog);
        ev_prepare_stop(d->loop, &d->sw.prepare);
        ev_timer_stop(d->loop, &d->sw.idle);
        vfiod_monitor_free(d->monitor);
        vfiod_server_free(d->server);
        vfiod_state_free(d->state);
        if (d->own_socket && unlink(d->args->socket_path) < 0 && errno != ENOENT)
                log_warning("Cannot remove '%s': %m", d->args->socket_path);
        log_notice("Stopped");
}

/* Set-up, the loop, teardown. Returns the exit status. */
static int run(const struct args *a)
{
        struct daemon d = {.args = a};

        if (setup_server(&d) < 0)
                return EXIT_FAILURE;
        if (setup_state_and_socket(&d) < 0) {
                vfiod_monitor_free(d.monitor);
                vfiod_server_free(d.server);
                vfiod_state_free(d.state);
                return EXIT_FAILURE;
        }
        start_watchers(&d);
        ev_run(d.loop, 0);
        teardown(&d);
        return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
        struct args args;
        int r;

        vfiod_log_init();
        r = parse_argv(argc, argv, &args);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        if (args.do_check)
                return check_config(args.check ? args.check : config_path(&args),
                                    !args.check && !args.config, args.sysfs);
        return run(&args);
}
