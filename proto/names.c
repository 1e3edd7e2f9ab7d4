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
