/* SPDX-License-Identifier: MIT */
/*
 * The names of the protocol's enums: one table per enum, shared by the
 * daemon (logs, policy files) and libvfiod (vfiod_mode_name(), the
 * environment of vfioctl acquire), so a name is spelled in one place.
 * Names are lower-case words; a value without a name gives NULL.
 * Library code: nothing here prints.
 */
#pragma once

/*
 * "direct", "brokered", "group" for VFIOD__MODE__MODE_DIRECT / _BROKERED /
 * _GROUP (the same numbers as libvfiod's enum vfiod_mode); NULL for any
 * other value.
 */
const char *vfiod_proto_mode_to_string(int mode);

/* The mode named s (a VFIOD__MODE__MODE_* value), or -EINVAL. */
int vfiod_proto_mode_from_string(const char *s);
