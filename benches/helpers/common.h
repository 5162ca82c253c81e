/* Small shared pieces of the bench helpers: monotonic nanoseconds and an
 * async-signal-safe decimal writer (handlers may not call printf). */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Writes "<tag> <value>\n" with one write(2). Async-signal-safe. */
static inline void put_line(int fd, const char *tag, uint64_t value)
{
	char buf[64], digits[24];
	size_t n = 0, d = 0, tl = strlen(tag);
	memcpy(buf, tag, tl);
	n = tl;
	buf[n++] = ' ';
	do {
		digits[d++] = (char)('0' + value % 10);
		value /= 10;
	} while (value);
	while (d)
		buf[n++] = digits[--d];
	buf[n++] = '\n';
	ssize_t r = write(fd, buf, n);
	(void)r;
}
#endif
