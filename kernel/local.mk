# kernel/: the VFIO driver layer (see HACKING.md). Two convenience libraries:
# libkvfio-sysfs.la is sysfs discovery and binding only (no ioctl), so the
# daemon's unit tests can link it with a fake of the ioctl layer; libkvfio.la
# is the ioctl layer (container, group, device, irq, dma, iommufd) plus the former.
noinst_HEADERS += \
	kernel/container.h \
	kernel/device.h \
	kernel/dma.h \
	kernel/group.h \
	kernel/iommufd.h \
	kernel/irq.h \
	kernel/sysfs.h

noinst_LTLIBRARIES += kernel/libkvfio-sysfs.la kernel/libkvfio.la

kernel_libkvfio_sysfs_la_SOURCES = kernel/sysfs.c

kernel_libkvfio_la_SOURCES = \
	kernel/caps.c \
	kernel/caps.h \
	kernel/container.c \
	kernel/device.c \
	kernel/dma.c \
	kernel/group.c \
	kernel/iommufd.c \
	kernel/irq.c
kernel_libkvfio_la_LIBADD = kernel/libkvfio-sysfs.la
