/* SPDX-License-Identifier: MIT */
#include "tests/testutil.h"
int main(void)
{
        return 0;
}
