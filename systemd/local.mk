# systemd/: the units and the sysusers snippet, installed into
# $(systemdsystemunitdir) (configure --with-systemdsystemunitdir; the default
# comes from pkg-config) and $(sysusersdir).
dist_systemdsystemunit_DATA = systemd/vfiod.socket
systemdsystemunit_DATA += systemd/vfiod.service
sysusersdir = $(prefix)/lib/sysusers.d
sysusers_DATA = systemd/vfiod.conf

systemd/vfiod.service: systemd/vfiod.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) systemd && \
	$(SED) -e 's|@sbindir[@]|$(sbindir)|g' $(srcdir)/systemd/vfiod.service.in >$@.tmp && mv $@.tmp $@

systemd/vfiod.conf: systemd/vfiod.sysusers
	$(AM_V_GEN)$(MKDIR_P) systemd && cp $(srcdir)/systemd/vfiod.sysusers $@

# The exposure score of the service as systemd-analyze security rates it.
security: systemd/vfiod.service
	systemd-analyze security --offline=true $(abs_builddir)/systemd/vfiod.service

CLEANFILES += systemd/vfiod.service systemd/vfiod.conf
EXTRA_DIST += systemd/vfiod.service.in systemd/vfiod.sysusers
