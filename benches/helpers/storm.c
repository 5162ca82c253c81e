/* Zombie storm, run as the child of an init that is PID 1 of a fresh PID namespace.
 *
 * Forks N orphans by double fork: an intermediate forks a grandchild and exits at once, we
 * reap the intermediate, so the grandchild is re-parented to PID 1 (the init under test).
 * Each grandchild exits immediately and stays a zombie until the init reaps it.
 *
 * Every grandchild inherits the write end of a pipe, so EOF on the read end means every
 * orphan has exited. From then on we poll the namespace's /proc until no process other
 * than PID 1 and ourselves is left: that is the moment the init has reaped them all. Only
 * then do we exit, so the init's own reaping is inside the measurement rather than the
 * kernel's clean-up when the namespace dies.
 *
 * Also reads the init's CPU time (first field of /proc/1/schedstat, ns on CPU) before the
 * first fork and once everything is reaped: what reaping the storm cost the init.
 *
 * Prints one JSON line with CLOCK_MONOTONIC ns timestamps; exits 0 when nothing is left,
 * 1 when zombies remain after the timeout, 2 on set-up errors. */
#include "common.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

/* Processes in our PID namespace other than PID 1 and us. */
static long others(pid_t self)
{
	DIR *d = opendir("/proc");
	if (!d)
		return -1;
	long n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		if (pid != 1 && pid != self)
			n++;
	}
	closedir(d);
	return n;
}

/* ns the init (PID 1 of this namespace) has spent on a CPU so far, or 0 if unknown. */
static unsigned long long init_cpu_ns(void)
{
	unsigned long long ns = 0;
	FILE *f = fopen("/proc/1/schedstat", "r");
	if (f) {
		if (fscanf(f, "%llu", &ns) != 1)
			ns = 0;
		fclose(f);
	}
	return ns;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10000;
	double timeout_s = argc > 2 ? atof(argv[2]) : 60.0;
	pid_t self = getpid();
	if (getppid() != 1) {
		fprintf(stderr, "storm: my parent is pid %d, not 1: run under an init that is PID 1 "
				"of a new PID namespace (unshare --pid --fork --mount-proc)\n",
			(int)getppid());
		return 2;
	}
	if (others(self) != 0) {
		fprintf(stderr, "storm: other processes already in this PID namespace\n");
		return 2;
	}
	int p[2];
	if (pipe(p) != 0) {
		perror("storm: pipe");
		return 2;
	}
	unsigned long long cpu_start = init_cpu_ns();
	uint64_t t_start = mono_ns();
	for (long i = 0; i < n; i++) {
		pid_t mid = fork();
		if (mid < 0) {
			perror("storm: fork");
			return 2;
		}
		if (mid == 0) {
			if (fork() < 0)
				_exit(1);
			_exit(0); /* grandchild and intermediate both leave at once */
		}
		int st;
		while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
			;
	}
	uint64_t t_forked = mono_ns();
	close(p[1]);
	for (;;) {
		char b;
		ssize_t r = read(p[0], &b, 1);
		if (r == 0)
			break;
		if (r < 0 && errno != EINTR) {
			perror("storm: read");
			return 2;
		}
	}
	uint64_t t_exited = mono_ns();
	long pending = others(self);
	long left = pending;
	uint64_t deadline = t_exited + (uint64_t)(timeout_s * 1e9);
	while (left > 0 && mono_ns() < deadline) {
		usleep(200);
		left = others(self);
	}
	uint64_t t_reaped = mono_ns();
	unsigned long long cpu_end = init_cpu_ns();
	printf("{\"orphans\":%ld,\"t_start\":%llu,\"t_forked\":%llu,\"t_exited\":%llu,"
	       "\"t_reaped\":%llu,\"pending_at_exit\":%ld,\"left\":%ld,\"init_cpu_ns\":%llu}\n",
	       n, (unsigned long long)t_start, (unsigned long long)t_forked,
	       (unsigned long long)t_exited, (unsigned long long)t_reaped, pending, left,
	       cpu_start && cpu_end ? cpu_end - cpu_start : 0ULL);
	fflush(stdout);
	return left == 0 ? 0 : 1;
}
