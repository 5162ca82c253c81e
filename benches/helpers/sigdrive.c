/* Signal-latency driver.
 *
 *   sigdrive RUNS SETTLE_MS -- INIT [ARGS...]
 *
 * For each run: starts INIT ARGS (whose command must be sigchild) with stdout on a pipe and
 * stderr on /dev/null, waits for the child's "ready" line, lets the init settle into its
 * wait loop for SETTLE_MS, records CLOCK_MONOTONIC and sends SIGTERM to the init, then
 * reads the "term <ns>" line the child's handler wrote. Prints one JSON object: the
 * latencies in ns and the number of runs that failed (no forward within 5 s, or a bad
 * exit). */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

/* Reads one line from fd into buf within timeout_ms; returns its length or -1. */
static int read_line(int fd, char *buf, int cap, int timeout_ms)
{
	int n = 0;
	uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * 1000000u;
	while (n < cap - 1) {
		uint64_t now = mono_ns();
		if (now >= deadline)
			return -1;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		ssize_t got = read(fd, buf + n, 1);
		if (got <= 0)
			return -1;
		if (buf[n] == '\n') {
			buf[n] = 0;
			return n;
		}
		n++;
	}
	return -1;
}

static int one_run(char **argv, int settle_ms, uint64_t *latency)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(p[1], 1);
		dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	char line[128];
	int ok = -1;
	if (read_line(p[0], line, sizeof line, 5000) > 0 && strncmp(line, "ready ", 6) == 0) {
		struct timespec ts = {settle_ms / 1000, (long)(settle_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		uint64_t sent = mono_ns();
		kill(pid, SIGTERM);
		if (read_line(p[0], line, sizeof line, 5000) > 0 && strncmp(line, "term ", 5) == 0) {
			uint64_t got = strtoull(line + 5, NULL, 10);
			*latency = got - sent;
			ok = 0;
		}
	}
	if (ok != 0)
		kill(pid, SIGKILL);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	close(p[0]);
	/* The init must end cleanly once its child has handled SIGTERM and exited 0. Ours
	 * exits 0 (Stopped); tini/dumb-init/catatonit pass the child's 0 through. */
	if (ok == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		ok = -1;
	return ok;
}

int main(int argc, char **argv)
{
	if (argc < 5 || strcmp(argv[3], "--") != 0) {
		fprintf(stderr, "usage: sigdrive RUNS SETTLE_MS -- INIT [ARGS...]\n");
		return 2;
	}
	int runs = atoi(argv[1]), settle = atoi(argv[2]), failed = 0;
	printf("{\"latency_ns\":[");
	int first = 1;
	for (int i = 0; i < runs; i++) {
		uint64_t lat = 0;
		if (one_run(argv + 4, settle, &lat) != 0) {
			failed++;
			continue;
		}
		printf("%s%llu", first ? "" : ",", (unsigned long long)lat);
		first = 0;
	}
	printf("],\"failed\":%d}\n", failed);
	return failed ? 1 : 0;
}
