# tests/vm-systemd: the project's Debian packages (make deb) installed into a
# Debian root with systemd as PID 1, booted in QEMU with the edu devices of
# tests/vm (see tests/vm-systemd/README.md). `make check-vm-systemd` needs
# root (the root file system is built with debootstrap once, cached outside
# the tree).
check_PROGRAMS += tests/vm-systemd/sd-client tests/vm-systemd/sd-probe
tests_vm_systemd_sd_client_SOURCES = tests/vm-systemd/sd-client.c
tests_vm_systemd_sd_client_LDFLAGS = $(vm_ldflags)
tests_vm_systemd_sd_client_LDADD = client-lib/libvfiod.la tests/vm/libedu.la
tests_vm_systemd_sd_probe_SOURCES = tests/vm-systemd/sd-probe.c
tests_vm_systemd_sd_probe_LDFLAGS = $(vm_ldflags)
tests_vm_systemd_sd_probe_LDADD = tests/vm/libedu.la

VM_SYSTEMD_OUT = tests/vm-systemd/check-vm-systemd
check-vm-systemd: tests/vm-systemd/sd-client tests/vm-systemd/sd-probe
	$(MAKE) $(AM_MAKEFLAGS) deb
	$(srcdir)/tests/vm-systemd/run-vm-systemd.sh --out $(VM_SYSTEMD_OUT) --debs $(DEB_OUT) \
		--program tests/vm-systemd/sd-client --program tests/vm-systemd/sd-probe

clean-local: clean-vm-systemd
clean-vm-systemd:
	rm -rf $(VM_SYSTEMD_OUT)

EXTRA_DIST += tests/vm-systemd/README.md tests/vm-systemd/run-vm-systemd.sh \
	tests/vm-systemd/make-rootfs.sh tests/vm-systemd/guest-systemd.sh \
	tests/vm-systemd/guest-deb.sh
