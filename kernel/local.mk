# kernel/: the VFIO driver layer (see HACKING.md). Two convenience libraries:
# libkvfio-sysfs.la is sysfs discovery and binding only (no ioctl), so the
# daemon's unit tests can link it with a fake of the ioctl layer; libkvfio.la
# is the ioctl layer (container, group, device, irq, dma) plus the former.
noinst_HEADERS += \
	kernel/container.h \
	kernel/device.h \
	kernel/dma.h \
	kernel/group.h \
	kernel/irq.h \
	kernel/sysfs.h
