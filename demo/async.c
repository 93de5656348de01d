/*
 * The tour, part 4: the event loop. A run with a task group; a failure
 * that cancels its siblings, with the chained errors; an asynchronous
 * close awaited at scope exit; a deadline region that turns a wait into
 * ETIMEDOUT; and the report of a task that waits forever.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "demo.h"

#define MS (REAP_SEC / 1000)

/* ---- a task group ----------------------------------------------------- */

static int fetch(void *arg, void **result)
{
	long ms = (long)(intptr_t)arg;
	int rc = reap_sleep((uint64_t)ms * MS);

	printf("    %s: fetched after %ld ms\n", reap_task_name(reap_task_self()), ms);
	*result = (void *)(intptr_t)(ms * 10);
	return rc;
}

static int run_group(void)
{
	reap_task *t[3];
	reap_group *g;
	long sum = 0;
	int rc;

	if ((rc = reap_group_open(NULL, &g)) < 0)
		return rc;
	for (int i = 0; i < 3; i++) {
		char name[24];

		snprintf(name, sizeof name, "fetch#%d", i + 1);
		if ((rc = reap_task_spawn_opts(g, &(reap_task_opts){.name = name},
					       fetch, (void *)(intptr_t)(30 - 10 * i),
					       &t[i])) < 0) {
			(void)reap_group_close(g, NULL);
			return rc;
		}
	}
	for (int i = 0; i < 3; i++) {
		void *r = NULL;

		if ((rc = reap_task_join(t[i], &r)) == 0)
			sum += (long)(intptr_t)r;
	}
	printf("    joined in spawn order; results add up to %ld\n", sum);
	return reap_group_close(g, NULL);
}

/* ---- a failure cancels the siblings ----------------------------------- */

static int parse(void *arg, void **result)
{
	(void)arg;
	(void)result;
	(void)reap_sleep(10 * MS);
	printf("    parse: fails with EPROTO\n");
	return reap_raisef(-EPROTO, "parse: bad header in chunk 3");
}

static int upload(void *arg, void **result)
{
	int rc = reap_sleep(REAP_SEC);

	(void)arg;
	(void)result;
	printf("    upload: woken by %s; gives up half-way\n", reap_errname(rc));
	return reap_raisef(-EIO, "upload: aborted with 2 of 5 parts sent");
}

static int idle(void *arg, void **result)
{
	int rc = reap_sleep(REAP_SEC);

	(void)arg;
	(void)result;
	printf("    idle: woken by %s\n", reap_errname(rc));
	return rc; /* its own cancellation: not a failure */
}

static int run_failure(void)
{
	static const reap_task_fn fns[] = {parse, upload, idle};
	static const char *names[] = {"parse", "upload", "idle"};
	reap_error *chain = NULL;
	reap_group *g;
	int rc;

	if ((rc = reap_group_open(NULL, &g)) < 0)
		return rc;
	for (int i = 0; i < 3; i++)
		if ((rc = reap_task_spawn_opts(g, &(reap_task_opts){.name = names[i]},
					       fns[i], NULL, NULL)) < 0)
			break;
	rc = reap_group_close(g, &chain);
	printf("    the group's close returned %s; the chain, newest "
	       "first:\n", reap_errname(rc));
	for (const reap_error *e = chain; e != NULL; e = e->cause)
		printf("      %s: %s\n", reap_errname(e->code), e->msg ? e->msg : "");
	reap_error_free(chain);
	return rc == -EPROTO ? 0 : -EPROTO;
}

/* ---- an asynchronous close, awaited at scope exit ---------------------- */

static int flush_close(void *arg, const reap_error *inflight)
{
	uint64_t t0 = reap_now_ns();
	int rc = reap_sleep(25 * MS); /* awaiting the peer's flush */

	(void)inflight;
	printf("    async close of %s: flushed in %llu ms (%s)\n", (const char *)arg,
	       (unsigned long long)((reap_now_ns() - t0) / MS),
	       rc == 0 ? "uninterrupted" : reap_errname(rc));
	return rc;
}

static int run_async_close(void)
{
	int rc = 0;

	REAP_WITH_SCOPE(s, NULL, &rc) {
		if ((rc = reap_defer_async(s, NULL, flush_close, "conn#7", NULL)) < 0)
			break;
		printf("    leaving the block that owns conn#7...\n");
	}
	printf("    ...the block is left only once the close has finished\n");
	return rc;
}

/* ---- a deadline region ------------------------------------------------ */

static int run_deadline(void)
{
	reap_deadline d;
	reap_chan *ch;
	void *item;
	int rc, mine;

	if ((rc = reap_chan_create(NULL, 1, &ch)) < 0)
		return rc;
	reap_deadline_begin(&d, reap_now_ns() + 40 * MS); /* asyncio.timeout(0.04) */
	rc = reap_chan_recv(ch, &item, REAP_FOREVER); /* nothing will come */
	mine = reap_deadline_end(&d);
	printf("    a receive with no deadline of its own, inside a 40 ms region: "
	       "%s;\n    the region says it fired: %s\n", reap_errname(rc),
	       mine == -ETIMEDOUT ? "yes (our timeout, not a cancellation)" : "no");
	return rc == -ETIMEDOUT && mine == -ETIMEDOUT ? 0 : -EPROTO;
}

static int tour(void *arg, void **result)
{
	int rc;

	(void)arg;
	(void)result;
	printf("   a. A group of three fetches, run concurrently:\n");
	if ((rc = run_group()) < 0)
		return rc;
	printf("\n   b. A failing task cancels its siblings; every failure "
	       "comes back chained:\n");
	if ((rc = run_failure()) < 0)
		return rc;
	printf("\n   c. An asynchronous close (reap_defer_async) awaited at "
	       "scope exit:\n");
	if ((rc = run_async_close()) < 0)
		return rc;
	printf("\n   d. A deadline region (asyncio.timeout):\n");
	return run_deadline();
}

/* ---- the pending-task report ------------------------------------------- */

static int waits_forever(void *arg, void **result)
{
	reap_event *never;
	int rc;

	(void)arg;
	(void)result;
	if ((rc = reap_event_create(NULL, &never)) < 0) /* nobody else knows it */
		return rc;
	return reap_event_wait(never, REAP_FOREVER);
}

static int forgetful(void *arg, void **result)
{
	(void)arg;
	(void)result;
	/* Detached, into the loop's root group: the run waits for it. */
	return reap_task_spawn_opts(NULL, &(reap_task_opts){.name = "forgotten"},
				    waits_forever, NULL, NULL);
}

static void capture(const char *text, void *ctx)
{
	fputs(text, ctx);
}

int demo_async(void)
{
	reap_loop *loop;
	char *text = NULL;
	size_t len = 0;
	FILE *m;
	int rc = 0;

	REAP_WITH_SCOPE(s, NULL, &rc) {
		if ((rc = reap_scope_name(s, "async")) < 0 ||
		    (rc = reap_loop_create(s, &loop)) < 0)
			break;
		if ((rc = reap_loop_run(loop, tour, NULL, NULL)) < 0)
			break;

		printf("\n   e. A task that waits for an event nobody will set: "
		       "the run ends when\n      no task can run again, "
		       "reports it, cancels it and runs it to its end.\n"
		       "      The report, captured with reap_set_report_hook():"
		       "\n\n");
		if ((m = open_memstream(&text, &len)) == NULL) {
			rc = -ENOMEM;
			break;
		}
		reap_set_report_hook(capture, m);
		rc = reap_loop_run(loop, forgetful, NULL, NULL);
		reap_set_report_hook(NULL, NULL);
		fclose(m);
		for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
			printf("      %s\n", line);
		free(text);
		printf("\n      the run returned %s (main's outcome)\n",
		       rc == 0 ? "0" : reap_errname(rc));
	} /* the loop closes with its scope */
	return rc;
}
