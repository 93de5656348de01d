/*
 * Spawns three children that must die with this process: an argv child,
 * a fn child, and an argv child spawned from a thread that then exits.
 * Prints their pids, then "ready", then waits to be killed.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>

#include "reap.h"

#define OPTS(...) (&(reap_proc_opts){__VA_ARGS__})

static int sleeper(reap_scope *root, void *arg)
{
	(void)root;
	(void)arg;
	for (;;)
		pause();
	return 0;
}

static reap_proc *from_thread;

static void *spawn_then_exit(void *arg)
{
	const char *argv[] = {"sleep", "100", NULL};

	if (reap_proc_spawn((reap_scope *)arg, OPTS(.argv = argv),
			    &from_thread) != 0)
		from_thread = NULL;
	return NULL;
}

int main(void)
{
	const char *argv[] = {"sleep", "100", NULL};
	reap_proc *a, *b;
	reap_thread *t;
	reap_scope *s = reap_scope_root();

	if (reap_proc_spawn(s, OPTS(.argv = argv), &a) != 0 ||
	    reap_proc_spawn(s, OPTS(.fn = sleeper), &b) != 0 ||
	    reap_thread_spawn(NULL, spawn_then_exit, s, &t) != 0 ||
	    reap_thread_join(t, NULL, NULL) != 0 || from_thread == NULL)
		return 1;
	printf("%d\n%d\n%d\nready\n", (int)reap_proc_pid(a), (int)reap_proc_pid(b),
	       (int)reap_proc_pid(from_thread));
	fflush(stdout);
	for (;;)
		pause();
}
