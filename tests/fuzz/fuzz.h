/* SPDX-License-Identifier: MIT */
/*
 * The fuzz targets (libFuzzer's entry point) and what they share.
 *
 * Concepts: each target is one LLVMFuzzerTestOneInput(). Built with
 * --enable-fuzzing it links libFuzzer (`make fuzz`); otherwise it links
 * corpus-main.c, a check suite that runs every file of the target's seed
 * corpus through it once (part of `make check`), so the targets always build
 * and the seeds stay valid regressions.
 *
 * fuzz-dispatch's input is a small script for one client connection:
 *
 *   byte 0         flags: FUZZ_HELLO (send a valid Hello first), FUZZ_ACQUIRE
 *                  (then lease 0000:00:01.0 BROKERED: lease 1, domain 1),
 *                  FUZZ_ADMIN (the peer is uid 0, else uid 1000)
 *   then records   u16 length (little-endian), u8 fd spec, `length` bytes
 *                  sent as one datagram
 *
 * The fd spec's low 2 bits are how many fds go with the datagram (0-3); the
 * kind of fd i is bits 2+2i..3+2i: a sealed 64 KiB memfd, an eventfd, the
 * read end of a pipe, an unsealed memfd.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define FUZZ_HELLO   0x01u
#define FUZZ_ACQUIRE 0x02u
#define FUZZ_ADMIN   0x04u

#define FUZZ_FD_SEALED_MEMFD 0u
#define FUZZ_FD_EVENTFD      1u
#define FUZZ_FD_PIPE         2u
#define FUZZ_FD_MEMFD        3u

/* Size of the sealed memfd a record gets. */
#define FUZZ_MEMFD_SIZE (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
