# daemon/: vfiod. Everything but main.c is a convenience library, so the
# daemon-level tests can link it with a fake of the ioctl layer instead of
# kernel/libkvfio.la (which is why that is NOT in the library's LIBADD).
noinst_LTLIBRARIES += daemon/libvfiod-daemon.la
daemon_libvfiod_daemon_la_SOURCES = \
	daemon/client.c \
	daemon/client.h \
	daemon/closer.c \
	daemon/closer.h \
	daemon/devices.c \
	daemon/devices.h \
	daemon/domain.c \
	daemon/domain.h \
	daemon/group.c \
	daemon/group.h \
	daemon/lease.c \
	daemon/lease.h \
	daemon/limits.h \
	daemon/list.h \
	daemon/log.c \
	daemon/log.h \
	daemon/monitor.c \
	daemon/monitor.h \
	daemon/policy.c \
	daemon/policy.h \
	daemon/server.c \
	daemon/server.h \
	daemon/state.c \
	daemon/state.h
daemon_libvfiod_daemon_la_CFLAGS = $(AM_CFLAGS) $(SYSTEMD_CFLAGS) $(INIH_CFLAGS) $(PROTOBUF_C_CFLAGS)

sbin_PROGRAMS += daemon/vfiod
daemon_vfiod_SOURCES = daemon/main.c
daemon_vfiod_CFLAGS = $(AM_CFLAGS) $(SYSTEMD_CFLAGS) $(INIH_CFLAGS) $(PROTOBUF_C_CFLAGS)
daemon_vfiod_LDADD = \
	daemon/libvfiod-daemon.la \
	kernel/libkvfio.la \
	proto/libvfiod-proto.la \
	$(EV_LIBS) $(SYSTEMD_LIBS) $(INIH_LIBS)

dist_man_MANS += man/vfiod.8 man/vfiod.conf.5
