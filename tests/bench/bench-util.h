/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the benchmark programs (host and guest): a clock, the
 * statistics of per-round ratios, and the rows of the table `make bench`
 * prints.
 *
 * Concepts: a comparison runs both sides in the same process, round by
 * round, alternating which side goes first, so that machine noise (other
 * builds, a guest on the other core) hits both sides of a round alike. Each
 * round gives one ratio (vfiod side / raw side, or the inverse for a
 * throughput); a row reports min, median and max of those ratios next to the
 * target and says "met" or "missed". Rows are plain text, one per line,
 * prefixed by "row " so that a driver script can pick them out of other
 * output. Timing is never an assertion: nothing here fails on a slow result.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Pins this process (and the children it starts later) to the CPU it runs on now. */
void bench_pin_to_one_cpu(void);

/*
 * Waits until the vfiod at sock answers a Hello, `tries` times 10 ms at the
 * most. Returns 0, -ECHILD (the process pid exited; it is reaped) or
 * -ETIMEDOUT.
 */
int bench_wait_vfiod(const char *sock, pid_t pid, int tries);

/* CLOCK_MONOTONIC in nanoseconds. */
double bench_now_ns(void);

/* Median of n values (n > 0); sorts a copy. */
double bench_median(const double *v, size_t n);
double bench_min(const double *v, size_t n);
double bench_max(const double *v, size_t n);

/* Formats a duration in ns as "12.3 us", "4.56 ms", ... into buf. Returns buf. */
const char *bench_fmt_ns(double ns, char *buf, size_t size);

/*
 * Prints a ratio row. ratios[0..n) are per-round ratios; higher_is_better
 * selects the direction of the target (throughput: ratio >= target; cost:
 * ratio <= target); the row is "met" when the median meets the target
 * (target <= 0: no target, the figure is for information).
 * a_ns/b_ns (may be NULL) are the per-operation times of the vfiod and the
 * raw side in each round, shown as medians.
 */
void bench_row_ratio(FILE *f, const char *name, bool higher_is_better, double target,
                     const double *ratios, size_t n, const double *a_ns, const double *b_ns);

/*
 * Prints a row for an absolute figure (ms, KiB): min/median/max of v[0..n)
 * against target (lower is better; target <= 0: none, the row says "info"),
 * with a free-text note.
 */
void bench_row_value(FILE *f, const char *name, double target, const double *v, size_t n,
                     const char *note);

/* A row for a comparison that could not run, with the reason. */
void bench_row_failed(FILE *f, const char *name, const char *why);

/*
 * The raw side of the no-op round trip, over a connected SOCK_SEQPACKET
 * socket: bench_raw_call() sends a 16-byte request carrying fd (SCM_RIGHTS,
 * borrowed) and waits for the 32-byte answer; bench_raw_server() answers
 * requests until EOF, closing each received fd, then _exit()s.
 */
int bench_raw_call(int sock, int fd, uint64_t id);
void bench_raw_server(int sock) __attribute__((noreturn));

/*
 * The no-op round trip comparison: op(userdata) (one vfiod request) against
 * bench_raw_call() to a forked bench_raw_server(), `rounds` rounds of `ops`
 * requests per side, the sides alternating in blocks of 50 within a round
 * (each side's round figure is its median block). Prints the row (cost
 * ratio, target `target`). Returns 0, or a negative errno when it could not
 * run (a failed row is printed).
 */
int bench_noop(const char *name, double target, int (*op)(void *userdata), void *userdata,
               int rounds, int ops);
