# tests/fuzz: libFuzzer targets for the datagram decoder + request dispatcher
# (fuzz-dispatch, a server in the process on the fake ioctl layer) and the
# configuration parser (fuzz-config); see tests/fuzz/fuzz.h.
#
# Normally each target links corpus-main.c and runs as a check suite over its
# seeds (tests/fuzz/corpus/<name>/) in `make check`. Configured with
# --enable-fuzzing (CC=clang) they link libFuzzer instead, and `make fuzz`
# runs each for FUZZ_SECONDS. From a normal build folder `make fuzz`
# configures such a build in ./fuzz-build and runs it there.
fuzz_targets = tests/fuzz/fuzz-dispatch tests/fuzz/fuzz-config
check_PROGRAMS += $(fuzz_targets) tests/fuzz/make-seeds
FUZZ_SECONDS = 60

if ENABLE_FUZZING
fuzz_main =
fuzz_ldflags = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
else
TESTS += $(fuzz_targets)
fuzz_main = tests/fuzz/corpus-main.c
fuzz_ldflags = $(AM_LDFLAGS)
endif

tests_fuzz_fuzz_dispatch_SOURCES = tests/fuzz/fuzz-dispatch.c tests/fuzz/fuzz.h $(fuzz_main)
tests_fuzz_fuzz_dispatch_CFLAGS = $(daemon_suite_cflags) -DFUZZ_TARGET='"fuzz-dispatch"' \
	-DFUZZ_CORPUS='"$(abs_srcdir)/tests/fuzz/corpus/dispatch"'
tests_fuzz_fuzz_dispatch_LDFLAGS = $(fuzz_ldflags)
tests_fuzz_fuzz_dispatch_LDADD = $(daemon_suite_libs)

tests_fuzz_fuzz_config_SOURCES = tests/fuzz/fuzz-config.c tests/fuzz/fuzz.h $(fuzz_main)
tests_fuzz_fuzz_config_CFLAGS = $(daemon_suite_cflags) -DFUZZ_TARGET='"fuzz-config"' \
	-DFUZZ_CORPUS='"$(abs_srcdir)/tests/fuzz/corpus/config"'
tests_fuzz_fuzz_config_LDFLAGS = $(fuzz_ldflags)
tests_fuzz_fuzz_config_LDADD = $(daemon_suite_libs)

# Writes the seed corpora (checked in): make fuzz-seeds.
tests_fuzz_make_seeds_SOURCES = tests/fuzz/make-seeds.c tests/fuzz/fuzz.h
tests_fuzz_make_seeds_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_fuzz_make_seeds_LDADD = proto/libvfiod-proto.la $(PROTOBUF_C_LIBS)

fuzz-seeds: tests/fuzz/make-seeds
	tests/fuzz/make-seeds $(srcdir)/tests/fuzz/corpus

if ENABLE_FUZZING
fuzz:
	$(MAKE) $(AM_MAKEFLAGS) $(BUILT_SOURCES)
	$(MAKE) $(AM_MAKEFLAGS) $(fuzz_targets)
	$(srcdir)/tests/fuzz/run-fuzz.sh $(FUZZ_SECONDS) $(srcdir)/tests/fuzz/corpus $(fuzz_targets)
else
fuzz:
	@$(MKDIR_P) fuzz-build
	@cd fuzz-build && { test -f Makefile || \
	  $(abs_top_srcdir)/configure -q --enable-fuzzing CC=clang; } && \
	  $(MAKE) $(AM_MAKEFLAGS) -s fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)
endif

EXTRA_DIST += tests/fuzz/run-fuzz.sh tests/fuzz/corpus
.PHONY: fuzz fuzz-seeds
