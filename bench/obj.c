/*
 * bench/obj.c: reference-counted objects against C++, GLib and Python
 * (issue 3, benchmarks a, b and c).
 *
 *   (a) acquire + release of one object, on 1 thread and on 2 threads
 *       hammering the same object, vs std::shared_ptr copy + destroy;
 *   (b) weak get + release, 1 and 2 threads, vs std::weak_ptr::lock and
 *       GLib's g_weak_ref_get + g_object_unref;
 *   (c) create + one finalizer + release (the finalizer runs at death),
 *       vs g_object_new + g_object_weak_ref + g_object_unref, and vs
 *       Python's weakref.finalize on a fresh object dropped at once.
 *
 * On 2 threads each thread does n operations; the time is wall time per
 * operation of one thread, so contention on the shared count shows.
 */
#define _GNU_SOURCE
#include <glib-object.h>
#include <pthread.h>

#include "bench.h"
#include "reap.h"

void peer_cxx_setup(void);
void peer_cxx_teardown(void);
void peer_cxx_copy(size_t n, int threads);
void peer_cxx_lock(size_t n, int threads);

struct payload {
	long value[4];
};
static reap_obj_type payload_type = {.name = "payload",
				     .size = sizeof(struct payload)};

static struct payload *obj;
static reap_weak *weak;
static GObject *gobj;
static GWeakRef gweak;

static void die(const char *what)
{
	fprintf(stderr, "bench_obj: %s failed\n", what);
	exit(1);
}

/* Run fn(n) on this thread, or on two new threads at once. */
static void on_threads(void *(*fn)(void *), size_t n, int threads)
{
	pthread_t t[2];

	if (threads == 1) {
		fn((void *)n);
		return;
	}
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, fn, (void *)n) != 0)
			die("pthread_create");
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
}

/* ---- (a) -------------------------------------------------------------- */

static void *reap_copy_loop(void *arg)
{
	size_t n = (size_t)arg;

	for (size_t i = 0; i < n; i++) {
		struct payload *p = reap_acquire(obj);

		__asm__ volatile("" : : "r"(p) : "memory");
		reap_release(p);
	}
	return NULL;
}

static void a_reap1(size_t n) { on_threads(reap_copy_loop, n, 1); }
static void a_reap2(size_t n) { on_threads(reap_copy_loop, n, 2); }
static void a_cxx1(size_t n) { peer_cxx_copy(n, 1); }
static void a_cxx2(size_t n) { peer_cxx_copy(n, 2); }

/* ---- (b) -------------------------------------------------------------- */

static void *reap_weak_loop(void *arg)
{
	size_t n = (size_t)arg;

	for (size_t i = 0; i < n; i++) {
		struct payload *p = reap_weak_get(weak);

		if (p == NULL)
			die("reap_weak_get");
		reap_release(p);
	}
	return NULL;
}

static void *glib_weak_loop(void *arg)
{
	size_t n = (size_t)arg;

	for (size_t i = 0; i < n; i++) {
		GObject *p = g_weak_ref_get(&gweak);

		if (p == NULL)
			die("g_weak_ref_get");
		g_object_unref(p);
	}
	return NULL;
}

static void b_reap1(size_t n) { on_threads(reap_weak_loop, n, 1); }
static void b_reap2(size_t n) { on_threads(reap_weak_loop, n, 2); }
static void b_cxx1(size_t n) { peer_cxx_lock(n, 1); }
static void b_cxx2(size_t n) { peer_cxx_lock(n, 2); }
static void b_glib1(size_t n) { on_threads(glib_weak_loop, n, 1); }
static void b_glib2(size_t n) { on_threads(glib_weak_loop, n, 2); }

/* ---- (c) -------------------------------------------------------------- */

static long fin_runs;

static int reap_fin(void *ctx)
{
	(*(long *)ctx)++;
	return 0;
}

static void c_reap(size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct payload *p;

		if (reap_obj_create(&payload_type, &p) < 0 ||
		    reap_finalize(p, reap_fin, &fin_runs, 0, NULL) < 0)
			die("reap_obj_create/reap_finalize");
		reap_release(p);
	}
}

/* The same with the ledger switched off, to show what it costs. */
static void c_reap_noledger(size_t n)
{
	reap_ledger_enable(false);
	c_reap(n);
	reap_ledger_enable(true);
}

static void glib_fin(gpointer data, GObject *dead)
{
	(void)dead;
	(*(long *)data)++;
}

static void c_glib(size_t n)
{
	for (size_t i = 0; i < n; i++) {
		GObject *p = g_object_new(G_TYPE_OBJECT, NULL);

		g_object_weak_ref(p, glib_fin, &fin_runs);
		g_object_unref(p);
	}
}

/* Python runs on its own (one process, its own rounds): median ns. */
static double python_ns(const char *script, size_t n, int reps)
{
	char cmd[1024];
	FILE *p;
	double ns = 0;

	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/py/%s %zu %d", BENCH_SOURCE_DIR,
		 script, n, reps);
	p = popen(cmd, "r");
	if (p == NULL || fscanf(p, "%lf", &ns) != 1 || pclose(p) != 0)
		die(cmd);
	return ns;
}

int main(void)
{
	size_t n = bench_n();
	int reps = bench_reps();

	if (reap_obj_create(&payload_type, &obj) < 0 || reap_weak_create(obj, &weak) < 0)
		die("setup");
	peer_cxx_setup();
	gobj = g_object_new(G_TYPE_OBJECT, NULL);
	g_weak_ref_init(&gweak, gobj);

	bench_contender a[] = {
		{.name = "reap", .run = a_reap1},
		{.name = "std::shared_ptr", .run = a_cxx1},
		{.name = "reap 2 threads", .run = a_reap2},
		{.name = "shared_ptr 2 thr", .run = a_cxx2},
	};
	bench_group("(a) acquire + release", a, 4, n, reps);

	bench_contender b[] = {
		{.name = "reap", .run = b_reap1},
		{.name = "std::weak_ptr", .run = b_cxx1},
		{.name = "GLib GWeakRef", .run = b_glib1},
		{.name = "reap 2 threads", .run = b_reap2},
		{.name = "weak_ptr 2 thr", .run = b_cxx2},
		{.name = "GWeakRef 2 thr", .run = b_glib2},
	};
	bench_group("(b) weak get + release", b, 6, n, reps);

	bench_contender c[] = {
		{.name = "reap", .run = c_reap},
		{.name = "GLib GObject", .run = c_glib},
		{.name = "reap, ledger off", .run = c_reap_noledger},
	};
	bench_group("(c) create + finalizer + release", c, 3, n, reps);
	bench_contender py = {.name = "Python"};
	/* Python is slower by orders of magnitude: a tenth of the objects. */
	py.ns = python_ns("finalize.py", n / 10 ? n / 10 : 1, reps);
	fprintf(stderr, "  %-20s median %8.1f ns/op\n", "Python finalize", py.ns);

	bench_row("3a1", "acquire + release, 1 thread", &a[0], &a[1], ">=1");
	bench_row("3a2", "acquire + release, 2 threads on one object", &a[2], &a[3], ">=1");
	bench_row("3b1", "weak get + release, 1 thread", &b[0], &b[1], ">=1");
	bench_row("3b2", "weak get + release, 1 thread", &b[0], &b[2], ">=3");
	bench_row("3b3", "weak get + release, 2 threads", &b[3], &b[4], ">=1");
	bench_row("3b4", "weak get + release, 2 threads", &b[3], &b[5], ">=3");
	bench_row("3c1", "create + 1 finalizer + release", &c[0], &c[1], ">=5");
	bench_row("3c2", "create + 1 finalizer + release", &c[0], &py, ">=5");
	{
		char note[256];

		snprintf(note, sizeof note, "Row 3c1 with the ledger switched off "
			 "(reap_ledger_enable): %.1f ns per object against %.1f ns "
			 "with it on, the default.", c[2].ns, c[0].ns);
		bench_note(note);
	}
	bench_note("Objects (3a-3c): on 2 threads each thread does the work on one "
		   "shared object, and the time is wall time per operation of one "
		   "thread; Python runs weakref.finalize in its own process on a "
		   "tenth of the objects.");

	g_weak_ref_clear(&gweak);
	g_object_unref(gobj);
	peer_cxx_teardown();
	reap_weak_destroy(weak);
	reap_release(obj);
	return fin_runs == 0;
}
