# man: targets added here

# A page for each libvfiod function, a link to libvfiod(3) (".so"), so that
# `man vfiod_acquire` finds it: the names of client-lib/libvfiod.sym (the
# functions vfiod.h declares, tests/client-lib/check-exports.sh).
man3_link_names = $(SED) -n 's/^[[:space:]]*\(vfiod_[a-z0-9_]*\);[[:space:]]*$$/\1/p' \
	$(srcdir)/client-lib/libvfiod.sym

install-man3-links:
	@$(MKDIR_P) '$(DESTDIR)$(man3dir)'
	@for f in `$(man3_link_names)`; do \
	  echo '.so man3/libvfiod.3' > '$(DESTDIR)$(man3dir)'/$$f.3 || exit 1; \
	done

uninstall-man3-links:
	@for f in `$(man3_link_names)`; do rm -f '$(DESTDIR)$(man3dir)'/$$f.3; done

install-data-local: install-man3-links
uninstall-local: uninstall-man3-links
.PHONY: install-man3-links uninstall-man3-links
