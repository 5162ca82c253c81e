/* Signal-latency child: installs a SIGTERM handler, says "ready", then sleeps.
 * The handler writes CLOCK_MONOTONIC ns ("term <ns>") to stdout and exits 0, so the
 * driver can subtract the time it sent SIGTERM to the init. */
#include "common.h"
#include <signal.h>
#include <stdlib.h>

static void on_term(int sig)
{
	(void)sig;
	put_line(1, "term", mono_ns());
	_exit(0);
}

int main(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) != 0)
		return 2;
	/* The inits reset the mask, but make sure SIGTERM is deliverable regardless. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	put_line(1, "ready", mono_ns());
	for (;;)
		pause();
}
