/*
 * Finalizers at process exit (run by test_obj's finalize_at_process_exit):
 * A, B (not flagged for exit), C, D (detached) are registered on objects
 * still alive when main returns. Expected output after "main done":
 * fin C, then "fin late" (registered by C's run), then fin A; then fin B
 * when the root scope releases the object.
 */
#include <stdio.h>

#include "reap.h"

struct thing {
	int unused;
};
static reap_obj_type thing_type = {.name = "thing", .size = sizeof(struct thing)};
static struct thing *obj;

static int say(void *ctx)
{
	printf("fin %s\n", (const char *)ctx);
	fflush(stdout);
	return 0;
}

static int say_and_register(void *ctx)
{
	say(ctx);
	return reap_finalize(obj, say, "late", 0, NULL);
}

int main(void)
{
	reap_finalizer *d;

	if (reap_obj_create(&thing_type, &obj) < 0 ||
	    reap_scope_adopt(NULL, obj, NULL) < 0 || /* the root releases it */
	    reap_finalize(obj, say, "A", 0, NULL) < 0 ||
	    reap_finalize(obj, say, "B", REAP_FINALIZE_NO_ATEXIT, NULL) < 0 ||
	    reap_finalize(obj, say_and_register, "C", 0, NULL) < 0 ||
	    reap_finalize(obj, say, "D", 0, &d) < 0)
		return 1;
	if (!reap_finalizer_detach(d, NULL))
		return 2;
	reap_finalizer_release(d);
	printf("main done\n");
	fflush(stdout);
	return 0;
}
