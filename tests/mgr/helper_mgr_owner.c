/*
 * Starts a manager, prints its pid and address, then waits to be
 * killed: the test SIGKILLs this owner and checks that the manager exits
 * within a second and removes its socket directory.
 */
#include <stdio.h>
#include <unistd.h>

#include "reap.h"

int main(void)
{
	reap_mgr *m;

	if (reap_mgr_start(NULL, NULL, &m) != 0)
		return 1;
	printf("%d %s\n", (int)reap_proc_pid(reap_mgr_proc(m)), reap_mgr_address(m));
	fflush(stdout);
	for (;;)
		pause();
	return 0;
}
