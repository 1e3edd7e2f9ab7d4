# tests/vm: suites that run in a QEMU guest on Debian's real kernel with an
# emulated IOMMU and edu devices bound to vfio-pci (see tests/vm/README.md).
# `make check-vm` builds the guest programs and runs them all in one VM; they
# are check programs (built by `make check` too) but never run on the host.
#
# A later suite adds its programs to VM_GUESTS and its run-vm.sh arguments
# (--program/--test/--file/--user) to VM_ARGS.

VM_GUESTS = tests/vm/guest-harness tests/vm/guest-kernel tests/vm/guest-broker \
	tests/vm/vfioctl tests/vm/guest-policy
check_PROGRAMS += $(VM_GUESTS)

# A check program for the guest: -no-install makes libtool write the real
# binary (never a wrapper script), which run-vm.sh copies with its libraries.
vm_ldflags = $(AM_LDFLAGS) -no-install

check_LTLIBRARIES += tests/vm/libedu.la
tests_vm_libedu_la_SOURCES = tests/vm/edu.c tests/vm/edu.h tests/vm/testdev.c tests/vm/testdev.h \
	kernel/module/mdma-regs.h

tests_vm_guest_harness_SOURCES = tests/vm/guest-harness.c
tests_vm_guest_harness_CFLAGS = $(suite_cflags)
tests_vm_guest_harness_LDFLAGS = $(vm_ldflags)
tests_vm_guest_harness_LDADD = $(suite_libs)

tests_vm_guest_kernel_SOURCES = tests/vm/guest-kernel.c
tests_vm_guest_kernel_CFLAGS = $(suite_cflags)
tests_vm_guest_kernel_LDFLAGS = $(vm_ldflags)
tests_vm_guest_kernel_LDADD = kernel/libkvfio.la tests/vm/libedu.la $(suite_libs)

# The broker end to end: vfiod (started by broker-setup.sh) and its clients,
# children of the suite that drop to the users made by --user. It also speaks
# the transport by hand once (a datagram libvfiod refuses to send).
tests_vm_guest_broker_SOURCES = tests/vm/guest-broker.c tests/vm/child.c tests/vm/child.h
tests_vm_guest_broker_CFLAGS = $(suite_cflags) $(PROTOBUF_C_CFLAGS)
tests_vm_guest_broker_LDFLAGS = $(vm_ldflags)
tests_vm_guest_broker_LDADD = client-lib/libvfiod.la kernel/libkvfio.la tests/vm/libedu.la \
	proto/libvfiod-proto.la $(PROTOBUF_C_LIBS) $(suite_libs)

# The policy on the real kernel: each test starts a vfiod of its own (its own
# socket and configuration); users alice, bob, carol (in the group vfio-users
# the suite adds) and eve; Managed=yes moves an edu from uio_pci_generic to
# vfio-pci and back.
tests_vm_guest_policy_SOURCES = tests/vm/guest-policy.c tests/vm/child.c tests/vm/child.h
tests_vm_guest_policy_CFLAGS = $(suite_cflags)
tests_vm_guest_policy_LDFLAGS = $(vm_ldflags)
tests_vm_guest_policy_LDADD = client-lib/libvfiod.la kernel/libkvfio.la tests/vm/libedu.la \
	$(suite_libs)

# vfiod and the users of the broker's policy (broker-setup.sh): alice and bob
# have devices, eve has none.
VM_BROKER_ARGS = \
	--program daemon/vfiod --program tests/vm/vfioctl \
	--file $(srcdir)/tests/vm/broker-setup.sh \
	--user alice:1001 --user bob:1002 --user eve:1003 --user carol:1004 \
	--setup 'sh /vfiod/files/broker-setup.sh'

VM_OUT = tests/vm/check-vm
VM_ARGS = \
	--module uio --module uio_pci_generic \
	$(VM_BROKER_ARGS) \
	--program tests/vm/guest-harness --test guest-harness=guest-harness \
	--program tests/vm/guest-kernel --test guest-kernel=guest-kernel \
	--program tests/vm/guest-broker --test guest-broker=guest-broker \
	--program tests/vm/guest-policy --test guest-policy=guest-policy

# On Debian 12's kernel (the default VFIOD_GUEST_KERNEL) check-vm also runs
# check-vm-launchers, one boot more, and ends with the sum of both boots; on
# another release's kernel, only its own boot.
check-vm: $(VM_GUESTS) daemon/vfiod
	@{ $(srcdir)/tests/vm/run-vm.sh --out $(VM_OUT) $(VM_ARGS); echo $$? >$(VM_OUT).rc; } | \
		tee $(VM_OUT).out; \
	rc=$$(cat $(VM_OUT).rc); \
	case "$${VFIOD_GUEST_KERNEL:-bookworm}" in bookworm) \
		{ $(MAKE) -s check-vm-launchers; echo $$? >$(VM_OUT).rc; } | tee $(LAUNCHERS_OUT).out; \
		[ "$$(cat $(VM_OUT).rc)" = 0 ] || rc=1; \
		echo "check-vm: both boots (the suites, then Debian's QEMU and DPDK):"; \
		cat $(VM_OUT).out $(LAUNCHERS_OUT).out | \
			awk '/^[0-9]+ passed, [0-9]+ failed$$/ { p += $$1; f += $$3 } \
			END { printf "%d passed, %d failed\n", p, f }' ;; \
	esac; \
	rm -f $(VM_OUT).rc; exit $$rc

# The no-IOMMU boot (make check-vm-mdev): Debian's kernel with no IOMMU
# (intel_iommu=off, no intel-iommu device, no edu), kernel/module's mdma.ko
# built against that kernel's headers (build-mdma.sh, which installs
# linux-headers-<version> when missing and can, or for another Debian
# release's kernel builds in a root of that release), three mdma instances
# made by the harness. Runs the module's own mdma-test, then guest-mdev (kernel/
# and vfiod on the mdevs) and the broker's end-to-end suite in its mdma mode,
# with vfiod started by broker-setup.sh for them.
check_PROGRAMS += tests/vm/guest-mdev
tests_vm_guest_mdev_SOURCES = tests/vm/guest-mdev.c kernel/module/mdma-regs.h
tests_vm_guest_mdev_CFLAGS = $(suite_cflags)
tests_vm_guest_mdev_LDFLAGS = $(vm_ldflags)
tests_vm_guest_mdev_LDADD = client-lib/libvfiod.la kernel/libkvfio.la $(suite_libs)

MDEV_OUT = tests/vm/check-vm-mdev
check-vm-mdev: tests/vm/guest-mdev tests/vm/guest-broker tests/vm/vfioctl daemon/vfiod
	@ko=$$($(srcdir)/tests/vm/build-mdma.sh $(srcdir)/kernel/module $(MDEV_OUT)/mdma) || \
	  { echo "FAIL: vm: building mdma.ko for the guest kernel"; echo "0 passed, 1 failed"; exit 1; }; \
	$(srcdir)/tests/vm/run-vm.sh --out $(MDEV_OUT) --no-iommu --edus 0 \
		--module mdev --host-module "$$ko" --mdevs mdma/mdma-1:3 \
		--program "$$(dirname "$$ko")/tests/mdma-test" \
		--program daemon/vfiod --program tests/vm/vfioctl \
		--file $(srcdir)/tests/vm/broker-setup.sh \
		--user alice:1001 --user bob:1002 --user eve:1003 \
		--setup 'sh /vfiod/files/broker-setup.sh mdev' \
		--test mdma-test=mdma-test \
		--program tests/vm/guest-mdev --test guest-mdev=guest-mdev \
		--program tests/vm/guest-broker \
		--test 'guest-broker=VFIOD_TESTDEV=mdma guest-broker'

clean-local: clean-vm-mdev
clean-vm-mdev:
	rm -rf $(MDEV_OUT)

# The boot with iommufd (make check-vm-iommufd): Debian's kernels have no
# iommufd, so the guest boots a kernel built here from Debian's
# linux-source-6.12 with the options of iommufd-kernel.config, everything
# built in (build-kernel.sh; cached in $$VFIOD_CACHE_DIR/kernel-build, built
# again only when its inputs change). Both VFIO interfaces are on: the
# container ones run the driver layer's legacy suites (guest-harness,
# guest-kernel), guest-iommufd runs kernel/iommufd.h's. A suite for this boot
# adds its programs to VM_IOMMUFD_GUESTS and its run-vm.sh arguments to
# VM_IOMMUFD_ARGS (the broker's end-to-end suites on the iommufd interface);
# they run in one VM, in the order given.
check_PROGRAMS += tests/vm/guest-iommufd
tests_vm_guest_iommufd_SOURCES = tests/vm/guest-iommufd.c
tests_vm_guest_iommufd_CFLAGS = $(suite_cflags)
tests_vm_guest_iommufd_LDFLAGS = $(vm_ldflags)
tests_vm_guest_iommufd_LDADD = kernel/libkvfio.la tests/vm/libedu.la $(suite_libs)

VM_IOMMUFD_GUESTS = tests/vm/guest-harness tests/vm/guest-kernel tests/vm/guest-iommufd \
	tests/vm/guest-broker tests/vm/vfioctl daemon/vfiod
# The broker's end-to-end suite once more, every lease through iommufd
# (guest-broker's $$VFIOD_INTERFACE), with vfiod as broker-setup.sh starts it.
VM_IOMMUFD_ARGS = \
	--module uio --module uio_pci_generic \
	--program tests/vm/guest-harness --test guest-harness=guest-harness \
	--program tests/vm/guest-kernel --test guest-kernel=guest-kernel \
	--program tests/vm/guest-iommufd --test guest-iommufd=guest-iommufd \
	$(VM_BROKER_ARGS) \
	--program tests/vm/guest-broker \
	--test 'guest-broker-iommufd=VFIOD_INTERFACE=iommufd guest-broker' \
	--file /usr/share/seabios/bios-256k.bin --file /usr/share/qemu/kvmvapic.bin \
	--file $(srcdir)/tests/vm/qemu10.sh \
	--test 'qemu10=sh /vfiod/files/qemu10.sh'

IOMMUFD_OUT = tests/vm/check-vm-iommufd
check-vm-iommufd: $(VM_IOMMUFD_GUESTS)
	@kdir=$$($(srcdir)/tests/vm/build-kernel.sh $(srcdir)/tests/vm/iommufd-kernel.config) || \
	  { echo "FAIL: vm: building the guest kernel with iommufd"; echo "0 passed, 1 failed"; exit 1; }; \
	qdir=$$($(srcdir)/tests/vm/fetch-qemu.sh) || \
	  { echo "FAIL: vm: fetching QEMU 10 from bookworm-backports"; echo "0 passed, 1 failed"; exit 1; }; \
	VFIOD_KERNEL_DIR=$$kdir $(srcdir)/tests/vm/run-vm.sh --out $(IOMMUFD_OUT) $(VM_IOMMUFD_ARGS) \
		--program "$$qdir/usr/bin/qemu-system-x86_64"

CLEANFILES += $(IOMMUFD_OUT)/initramfs.cpio $(IOMMUFD_OUT)/console.txt $(IOMMUFD_OUT)/results.txt
EXTRA_DIST += tests/vm/build-kernel.sh tests/vm/iommufd-kernel.config tests/vm/fetch-qemu.sh \
	tests/vm/qemu10.sh

# vfioctl for the guest: client-lib/vfioctl itself is a libtool wrapper in
# the build tree (it links the shared libvfiod), so the same sources again,
# linked with -no-install.
tests_vm_vfioctl_SOURCES = client-lib/vfioctl.c client-lib/json.c client-lib/json.h
tests_vm_vfioctl_CFLAGS = $(AM_CFLAGS) -DVFIOD_PRELOAD_PATH='"$(pkglibdir)/libvfiod-preload.so"'
tests_vm_vfioctl_LDFLAGS = $(vm_ldflags)
tests_vm_vfioctl_LDADD = client-lib/libvfiod.la

# The demo: a short boot of its own. vfiod starts (broker-setup.sh), alice
# runs demo-client (brokered lease, MapDma of a sealed memfd, DMA both ways,
# MSI through the daemon, release); its transcript, with vfiod's log lines,
# goes to $$VFIOD_SAY, which run-vm.sh prints here. Fails when the demo does.
check_PROGRAMS += tests/vm/demo-client
tests_vm_demo_client_SOURCES = tests/vm/demo-client.c
tests_vm_demo_client_LDFLAGS = $(vm_ldflags)
tests_vm_demo_client_LDADD = client-lib/libvfiod.la tests/vm/libedu.la

DEMO_OUT = tests/vm/demo
demo: daemon/vfiod tests/vm/demo-client
	$(srcdir)/tests/vm/run-vm.sh --out $(DEMO_OUT) --timeout 120 \
		--program daemon/vfiod --program tests/vm/demo-client \
		--file $(srcdir)/tests/vm/broker-setup.sh \
		--user alice:1001 --user bob:1002 \
		--setup 'sh /vfiod/files/broker-setup.sh' \
		--test 'demo=su -s /bin/sh alice -c demo-client >>"$$VFIOD_SAY" 2>&1'

CLEANFILES += $(DEMO_OUT)/initramfs.cpio $(DEMO_OUT)/console.txt $(DEMO_OUT)/results.txt
CLEANFILES += $(VM_OUT)/initramfs.cpio $(VM_OUT)/console.txt $(VM_OUT)/results.txt \
	tests/vm/check-vm.out tests/vm/check-vm-*.out
EXTRA_DIST += tests/vm/build-mdma.sh tests/vm/build-root.sh tests/vm/kernel-lib.sh \
	tests/vm/fetch-debs.sh tests/vm/launchers-setup.sh
EXTRA_DIST += tests/vm/README.md tests/vm/run-vm.sh tests/vm/fetch-kernel.sh \
	tests/vm/guest-init.sh tests/vm/broker-setup.sh

# Programs users run, unmodified (make check-vm-launchers; check-vm runs it on
# Debian 12's kernel): Debian's own QEMU 7.2, its firmware and DPDK 22.11's
# dpdk-testpmd with the e1000 PMD, fetched and extracted by fetch-debs.sh into
# $$VFIOD_CACHE_DIR (never into the tree), run by alice through `vfioctl
# acquire ... --preload` in a boot of their own: two edu devices, QEMU's e1000
# NIC (bound to vfio-pci by launchers-setup.sh) whose frames the outer QEMU's
# UDP socket netdev sends back to it, 1 GiB of RAM, and kvm-amd loaded
# (`-cpu max` under TCG has SVM: /dev/kvm in the guest). The files from the
# packages make a second initramfs archive, rebuilt only when they change.
check_PROGRAMS += tests/vm/guest-launchers
tests_vm_guest_launchers_SOURCES = tests/vm/guest-launchers.c tests/vm/child.c tests/vm/child.h
tests_vm_guest_launchers_CFLAGS = $(suite_cflags)
tests_vm_guest_launchers_LDFLAGS = $(vm_ldflags)
tests_vm_guest_launchers_LDADD = client-lib/libvfiod.la tests/vm/libedu.la $(suite_libs)

LAUNCHERS_DEBS = qemu-system-x86 qemu-system-common qemu-system-data seabios \
	dpdk-dev librte-net-e1000-23 librte-mempool-ring23 ibverbs-providers
LAUNCHERS_OUT = tests/vm/check-vm-launchers
check-vm-launchers: tests/vm/guest-launchers tests/vm/vfioctl daemon/vfiod \
		client-lib/libvfiod-preload.la
	@ext=$$($(srcdir)/tests/vm/fetch-debs.sh $(LAUNCHERS_DEBS)) || \
	  { echo "FAIL: vm: Debian's QEMU and DPDK for the guest (fetch-debs.sh)"; \
	    echo "0 passed, 1 failed"; exit 1; }; \
	lib=$$(echo "$$ext"/usr/lib/*-linux-gnu); port=$$((20000 + $$$$ % 20000)); \
	$(srcdir)/tests/vm/run-vm.sh --out $(LAUNCHERS_OUT) --edus 2 --mem 1024 \
		--extracted "$$ext" --module kvm_amd \
		--program "$$ext/usr/bin/qemu-system-x86_64" --program "$$lib/qemu/accel-tcg-x86_64.so" \
		--file "$$ext/usr/share/seabios/bios-256k.bin" --file "$$ext/usr/share/qemu/kvmvapic.bin" \
		--program "$$ext/usr/bin/dpdk-testpmd" \
		--program "$$lib/dpdk/pmds-23.0/librte_net_e1000.so.23.0" \
		--program "$$lib/dpdk/pmds-23.0/librte_mempool_ring.so.23.0" \
		--qemu-arg -device --qemu-arg pcie-root-port,id=rpnic,chassis=9,slot=9 \
		--qemu-arg -device --qemu-arg e1000,bus=rpnic,netdev=nic \
		--qemu-arg -netdev --qemu-arg "socket,id=nic,udp=127.0.0.1:$$port,localaddr=127.0.0.1:$$port" \
		--program daemon/vfiod --program tests/vm/vfioctl \
		--program "client-lib/.libs/libvfiod-preload.so:$(pkglibdir)/libvfiod-preload.so" \
		--file $(srcdir)/tests/vm/launchers-setup.sh --file $(srcdir)/tests/vm/broker-setup.sh \
		--user alice:1001 --user bob:1002 \
		--setup 'sh /vfiod/files/launchers-setup.sh' \
		--program tests/vm/guest-launchers --test guest-launchers=guest-launchers

clean-local: clean-vm-launchers
clean-vm-launchers:
	rm -rf $(LAUNCHERS_OUT)

.PHONY: check-vm demo check-vm-mdev clean-vm-mdev check-vm-launchers clean-vm-launchers \
	check-vm-iommufd
