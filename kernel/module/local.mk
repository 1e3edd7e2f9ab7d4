# kernel/module: mdma.ko, a mediated VFIO device with an emulated IOMMU (see
# kernel/module/README.md). Kbuild builds it, not automake: `make module`
# copies the sources into $(builddir)/kernel/module/build (Kbuild writes next
# to them; the source tree may be read-only) and builds there against
# $(KERNEL_BUILD_DIR) (configure --with-kernel-build-dir=KDIR; by default the
# running kernel's /lib/modules/$(uname -r)/build). configure
# --enable-kernel-module makes `make all` build it too. The VM harness builds
# its own copy against the guest kernel's headers (tests/vm/build-mdma.sh).

MODULE_BUILD = kernel/module/build
MDMA_FILES = kernel/module/Kbuild kernel/module/Makefile kernel/module/mdma.c \
	kernel/module/mdma-regs.h kernel/module/tests/mdma-test.c

module:
	@$(MKDIR_P) $(MODULE_BUILD)/tests
	@for f in $(MDMA_FILES); do \
	  d=$(MODULE_BUILD)/$${f#kernel/module/}; \
	  cmp -s $(srcdir)/$$f $$d || cp $(srcdir)/$$f $$d; \
	done
	$(MAKE) -C $(MODULE_BUILD) KDIR='$(KERNEL_BUILD_DIR)' KCFLAGS=-Werror modules

if ENABLE_KERNEL_MODULE
all-local: module
endif

clean-local: clean-module
clean-module:
	rm -rf $(MODULE_BUILD)

EXTRA_DIST += $(MDMA_FILES) kernel/module/README.md kernel/module/.clang-format \
	kernel/module/tests/run-vm.sh kernel/module/tests/guest-init.sh

.PHONY: module clean-module
