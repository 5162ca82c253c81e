/* Restart-latency child: prints when this generation started ("start <ns>", first thing in
 * main) and when it is about to crash ("crash <ns>"), then exits 1. The supervisor
 * restarts it; start(g+1) - crash(g) is the restart latency. */
#include "common.h"

int main(void)
{
	uint64_t start = mono_ns();
	put_line(1, "start", start);
	put_line(1, "crash", mono_ns());
	_exit(1);
}
