/* SPDX-License-Identifier: MIT */
#include "proto/names.h"

#include "proto/macro.h"
#include "proto/vfiod.pb-c.h"

static const char *const vfiod_proto_mode_table[] = {
    [VFIOD__MODE__MODE_DIRECT] = "direct",
    [VFIOD__MODE__MODE_BROKERED] = "brokered",
    [VFIOD__MODE__MODE_GROUP] = "group",
};

DEFINE_STRING_TABLE_LOOKUP(vfiod_proto_mode, int)

static const char *const vfiod_proto_interface_table[] = {
    [VFIOD__INTERFACE__INTERFACE_LEGACY] = "legacy",
    [VFIOD__INTERFACE__INTERFACE_IOMMUFD] = "iommufd",
    [VFIOD__INTERFACE__INTERFACE_ANY] = "any",
};

DEFINE_STRING_TABLE_LOOKUP(vfiod_proto_interface, int)
