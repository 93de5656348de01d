/*
 * Reference-counted objects, weak references and finalizers.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../runner.h"

struct widget {
	int value;
	int *closed; /* incremented by close */
	int *order;  /* log of events */
	int *norder;
};

static void log_ev(struct widget *w, int ev)
{
	if (w->order != NULL)
		w->order[(*w->norder)++] = ev;
}

static void widget_close(void *obj)
{
	struct widget *w = obj;

	if (w->closed != NULL)
		(*w->closed)++;
	log_ev(w, 100);
}

static void widget_describe(void *obj, char *buf, size_t len)
{
	snprintf(buf, len, "widget %d", ((struct widget *)obj)->value);
}

static reap_obj_type widget_type = {
	.name = "widget",
	.size = sizeof(struct widget),
	.close = widget_close,
	.describe = widget_describe,
};

TEST(obj_create_release)
{
	struct widget *w;
	int closed = 0;
	reap_ledger_stat st;

	ASSERT_OK(reap_obj_create(&widget_type, &w));
	ASSERT_EQ_INT(w->value, 0); /* zeroed */
	w->closed = &closed;
	ASSERT_EQ_INT(reap_obj_refs(w), 1);
	ASSERT_EQ_PTR(reap_obj_type_of(w), &widget_type);
	ASSERT_EQ_SIZE(reap_ledger_count(), 1);
	ASSERT_OK(reap_ledger_stats("widget", &st));
	ASSERT_EQ_INT(st.live, 1);
	ASSERT_EQ_PTR(reap_acquire(w), w);
	ASSERT_EQ_INT(reap_obj_refs(w), 2);
	reap_release(w);
	ASSERT_EQ_INT(closed, 0);
	reap_release(w);
	ASSERT_EQ_INT(closed, 1);
	ASSERT_OK(reap_ledger_stats("widget", &st));
	ASSERT_EQ_INT(st.live, 0);
	ASSERT_EQ_INT(st.created, 1);
}

TEST(obj_bad_type)
{
	static reap_obj_type empty = {.name = "empty", .size = 0};
	static reap_obj_type noname = {.size = 8};
	void *o = (void *)0x1;

	ASSERT_EQ_INT(reap_obj_create(&empty, &o), -EINVAL);
	ASSERT_EQ_INT(reap_obj_create(&noname, &o), -EINVAL);
	ASSERT_EQ_PTR(o, (void *)0x1); /* untouched */
}

static void double_release(void *arg)
{
	struct widget *w;

	(void)arg;
	if (reap_obj_create(&widget_type, &w) < 0)
		return;
	reap_release(w);
	reap_release(w);
}

TEST(obj_double_release_names_both_sites)
{
	const char *msg = test_expect_misuse(double_release, NULL);

	ASSERT_NOT_NULL(msg);
	ASSERT_CONTAINS(msg, "release of object");
	ASSERT_CONTAINS(msg, "released for good at ");
	ASSERT_CONTAINS(msg, "; created at ");
	ASSERT_CONTAINS(msg, "double_release");
}

static void use_after_release(void *arg)
{
	struct widget *w;

	(void)arg;
	if (reap_obj_create(&widget_type, &w) < 0)
		return;
	reap_release(w);
	reap_acquire(w);
}

TEST(obj_use_after_release)
{
	const char *msg = test_expect_misuse(use_after_release, NULL);

	ASSERT_NOT_NULL(msg);
	ASSERT_CONTAINS(msg, "acquire of object");
	ASSERT_CONTAINS(msg, "released for good at ");
}

TEST(obj_scope_hold_and_adopt)
{
	struct widget *w;
	reap_scope *s;
	int closed = 0;

	ASSERT_OK(reap_obj_create(&widget_type, &w));
	w->closed = &closed;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_scope_hold(s, w, NULL));
	ASSERT_EQ_INT(reap_obj_refs(w), 2);
	reap_release(w); /* ours; the scope still holds one */
	ASSERT_EQ_INT(closed, 0);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(closed, 1);

	/* adopt: the scope takes the caller's reference */
	closed = 0;
	ASSERT_OK(reap_obj_create(&widget_type, &w));
	w->closed = &closed;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_scope_adopt(s, w, NULL));
	ASSERT_EQ_INT(reap_obj_refs(w), 1);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(closed, 1);
}

TEST(obj_scope_hold_in_report)
{
	struct widget *w;
	reap_scope *s;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	ASSERT_OK(reap_obj_create(&widget_type, &w));
	w->value = 42;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_scope_adopt(s, w, NULL));
	f = open_memstream(&text, &len);
	ASSERT_EQ_INT(reap_ledger_report(f, REAP_REPORT_TREE | REAP_REPORT_LEAKS), 3);
	fclose(f);
	ASSERT_CONTAINS(text, "ref on widget");
	ASSERT_CONTAINS(text, "Open widget widget 42 (object");
	ASSERT_CONTAINS(text, "owner: (shared: 1 reference)");
	ASSERT_CONTAINS(text, "SUMMARY: reap: 3 open resource(s)");
	ASSERT_CONTAINS(text, ", 1 ref");
	ASSERT_CONTAINS(text, ", 1 widget");
	free(text);
	ASSERT_OK(reap_scope_close(s));
}

/* ---- weak references ---------------------------------------------- */

TEST(weak_get_and_death)
{
	struct widget *w, *g;
	reap_weak *wr;
	int closed = 0;

	ASSERT_OK(reap_obj_create(&widget_type, &w));
	w->closed = &closed;
	ASSERT_OK(reap_weak_create(w, &wr));
	ASSERT_TRUE(reap_weak_alive(wr));
	g = reap_weak_get(wr);
	ASSERT_EQ_PTR(g, w);
	ASSERT_EQ_INT(reap_obj_refs(w), 2);
	reap_release(g);
	reap_release(w);
	ASSERT_EQ_INT(closed, 1);
	ASSERT_FALSE(reap_weak_alive(wr));
	ASSERT_NULL(reap_weak_get(wr));
	ASSERT_EQ_SIZE(reap_ledger_count(), 1); /* the weak ref itself */
	reap_weak_destroy(wr);
}

static int cb_runs;
static void weak_cb(reap_weak *w, void *ctx)
{
	struct widget *probe = ctx;

	cb_runs++;
	/* The referent cannot be reached any more. */
	if (reap_weak_get(w) != NULL)
		abort();
	if (probe != NULL)
		probe->value = 7;
}

TEST(weak_callback_runs_once_before_close)
{
	struct widget *w;
	struct widget probe = {0};
	reap_weak *a, *b;
	int order[8], n = 0, closed = 0;

	cb_runs = 0;
	ASSERT_OK(reap_obj_create(&widget_type, &w));
	w->closed = &closed;
	w->order = order;
	w->norder = &n;
	ASSERT_OK(reap_weak_create_cb(w, weak_cb, &probe, &a));
	ASSERT_OK(reap_weak_create_cb(w, weak_cb, NULL, &b));
	reap_weak_destroy(b); /* destroyed: its callback never runs */
	reap_release(w);
	ASSERT_EQ_INT(cb_runs, 1);
	ASSERT_EQ_INT(probe.value, 7);
	ASSERT_EQ_INT(closed, 1);
	reap_weak_destroy(a);
}

static void self_destroying_cb(reap_weak *w, void *ctx)
{
	(*(int *)ctx)++;
	reap_weak_destroy(w);
}

TEST(weak_destroyed_from_its_callback)
{
	struct widget *w;
	reap_weak *wr;
	int runs = 0;

	ASSERT_OK(reap_obj_create(&widget_type, &w));
	ASSERT_OK(reap_weak_create_cb(w, self_destroying_cb, &runs, &wr));
	reap_release(w);
	ASSERT_EQ_INT(runs, 1);
}

/* ---- finalizers ---------------------------------------------------- */

struct fctx {
	int runs;
	int rc;
	int *order;
	int *norder;
	int tag;
};

static int fin(void *ctx)
{
	struct fctx *c = ctx;

	c->runs++;
	if (c->order != NULL)
		c->order[(*c->norder)++] = c->tag;
	return c->rc;
}

TEST(finalize_at_death_newest_first_then_close)
{
	struct widget *w;
	struct fctx a = {0}, b = {0};
	int order[8], n = 0;

	ASSERT_OK(reap_obj_create(&widget_type, &w));
	w->order = order;
	w->norder = &n;
	a.order = b.order = order;
	a.norder = b.norder = &n;
	a.tag = 1;
	b.tag = 2;
	ASSERT_OK(reap_finalize(w, fin, &a, 0, NULL));
	ASSERT_OK(reap_finalize(w, fin, &b, 0, NULL));
	reap_release(w);
	ASSERT_EQ_INT(n, 3);
	ASSERT_EQ_INT(order[0], 2);
	ASSERT_EQ_INT(order[1], 1);
	ASSERT_EQ_INT(order[2], 100); /* close last */
	ASSERT_EQ_INT(a.runs, 1);
	ASSERT_EQ_INT(b.runs, 1);
	ASSERT_EQ_SIZE(reap_finalize_atexit_run(), 0); /* already ran */
}

TEST(finalize_call_detach_peek_alive)
{
	struct widget *w;
	struct fctx a = {.rc = 5}, b = {0};
	reap_finalizer *fa, *fb;
	void *ctx = NULL;

	ASSERT_OK(reap_obj_create(&widget_type, &w));
	ASSERT_OK(reap_finalize(w, fin, &a, 0, &fa));
	ASSERT_OK(reap_finalize(w, fin, &b, REAP_FINALIZE_NO_ATEXIT, &fb));
	ASSERT_TRUE(reap_finalizer_alive(fa));
	ASSERT_TRUE(reap_finalizer_peek(fa, &ctx));
	ASSERT_EQ_PTR(ctx, &a);
	ASSERT_EQ_INT(reap_finalizer_call(fa), 5); /* fn's result */
	ASSERT_EQ_INT(a.runs, 1);
	ASSERT_FALSE(reap_finalizer_alive(fa));
	ASSERT_FALSE(reap_finalizer_peek(fa, &ctx));
	ASSERT_EQ_INT(reap_finalizer_call(fa), -ESRCH);
	ASSERT_EQ_INT(a.runs, 1);

	ctx = NULL;
	ASSERT_TRUE(reap_finalizer_detach(fb, &ctx));
	ASSERT_EQ_PTR(ctx, &b);
	ASSERT_FALSE(reap_finalizer_detach(fb, &ctx));
	ASSERT_EQ_INT(reap_finalizer_call(fb), -ESRCH);
	reap_release(w);
	ASSERT_EQ_INT(a.runs, 1);
	ASSERT_EQ_INT(b.runs, 0);
	/* Handles outlive the object and still answer. */
	ASSERT_FALSE(reap_finalizer_alive(fa));
	ASSERT_EQ_SIZE(reap_ledger_count(), 2);
	reap_finalizer_release(fa);
	reap_finalizer_release(fb);
}

TEST(finalize_error_is_reported)
{
	struct widget *w;
	struct fctx a = {.rc = -EIO};

	test_reports_clear();
	ASSERT_OK(reap_obj_create(&widget_type, &w));
	ASSERT_OK(reap_finalize(w, fin, &a, 0, NULL));
	reap_release(w);
	ASSERT_EQ_INT(a.runs, 1);
	ASSERT_CONTAINS(test_reports(), "finalizer failed");
	ASSERT_CONTAINS(test_reports(), "EIO");
	ASSERT_CONTAINS(test_reports(), "tests/obj/test_obj.c:");
}

TEST(finalize_bad_flags)
{
	struct widget *w;
	struct fctx a = {0};
	reap_finalizer *f = (reap_finalizer *)0x1;

	ASSERT_OK(reap_obj_create(&widget_type, &w));
	ASSERT_EQ_INT(reap_finalize(w, fin, &a, 0x80, &f), -EINVAL);
	ASSERT_EQ_PTR(f, (reap_finalizer *)0x1);
	reap_release(w);
	ASSERT_EQ_INT(a.runs, 0);
}

/* Finalizers left alive run by reap_finalize_atexit_run(), newest
 * first, and pick up the ones registered meanwhile. */
static struct widget *late_obj;
static struct fctx late;
static int fin_registers(void *ctx)
{
	struct fctx *c = ctx;

	c->order[(*c->norder)++] = c->tag;
	c->runs++;
	return reap_finalize(late_obj, fin, &late, 0, NULL);
}

TEST(finalize_atexit_run_order)
{
	struct widget *x, *y;
	struct fctx a = {0}, b = {0}, c = {0};
	int order[8], n = 0;

	ASSERT_OK(reap_obj_create(&widget_type, &x));
	ASSERT_OK(reap_obj_create(&widget_type, &y));
	late_obj = y;
	a.order = b.order = c.order = late.order = order;
	a.norder = b.norder = c.norder = late.norder = &n;
	a.tag = 1;
	b.tag = 2;
	c.tag = 3;
	late.tag = 4;
	ASSERT_OK(reap_finalize(x, fin, &a, 0, NULL));
	ASSERT_OK(reap_finalize(y, fin_registers, &b, 0, NULL));
	ASSERT_OK(reap_finalize(x, fin, &c, REAP_FINALIZE_NO_ATEXIT, NULL));
	ASSERT_EQ_SIZE(reap_finalize_atexit_run(), 3);
	ASSERT_EQ_INT(n, 3);
	ASSERT_EQ_INT(order[0], 2); /* newest flagged for exit */
	ASSERT_EQ_INT(order[1], 4); /* registered during the run: next */
	ASSERT_EQ_INT(order[2], 1);
	reap_release(x); /* c still runs at death */
	ASSERT_EQ_INT(c.runs, 1);
	ASSERT_EQ_INT(a.runs, 1);
	reap_release(y);
	ASSERT_EQ_INT(late.runs, 1);
}

/* At process exit: the helper registers finalizers and exits; the order
 * of their output is checked from outside. */
TEST(finalize_at_process_exit)
{
	char path[512];
	char *out = NULL;
	int st;

	snprintf(path, sizeof path, "%s/helper_obj_exit", test_bindir());
	char *argv[] = {path, NULL};
	st = test_run(argv, NULL, &out);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ_INT(WEXITSTATUS(st), 0);
	/* B is not flagged for exit: it runs when the root scope releases
	 * the object, after the exit run. D was detached. */
	ASSERT_CONTAINS(out, "main done\nfin C\nfin late\nfin A\nfin B\n");
	ASSERT_TRUE(strstr(out, "fin D") == NULL);
	free(out);
}

/* ---- leak report -------------------------------------------------- */

TEST(obj_leak_report_names_site)
{
	struct widget *w;
	reap_weak *wr;
	reap_finalizer *f;
	struct fctx a = {0};
	char *text = NULL;
	size_t len = 0;
	FILE *m;

	ASSERT_OK(reap_obj_create(&widget_type, &w));
	w->value = 3;
	ASSERT_OK(reap_weak_create(w, &wr));
	ASSERT_OK(reap_finalize(w, fin, &a, REAP_FINALIZE_NO_ATEXIT, &f));
	m = open_memstream(&text, &len);
	ASSERT_EQ_SIZE(reap_ledger_check(m), 3);
	fclose(m);
	ASSERT_CONTAINS(text, "Open widget widget 3 (object");
	ASSERT_CONTAINS(text, "Open weakref to widget");
	ASSERT_CONTAINS(text, "Open finalizer on widget");
	ASSERT_CONTAINS(text, "tests/obj/test_obj.c:");
	ASSERT_CONTAINS(text, "in test_obj_leak_report_names_site()");
	ASSERT_CONTAINS(text, "SUMMARY: reap: 3 open resource(s)");
	free(text);
	reap_finalizer_release(f);
	reap_weak_destroy(wr);
	reap_release(w);
	ASSERT_EQ_INT(a.runs, 1);
}

TEST(obj_ledger_off_not_counted)
{
	struct widget *w;
	reap_weak *wr;

	reap_ledger_enable(false);
	ASSERT_OK(reap_obj_create(&widget_type, &w));
	ASSERT_OK(reap_weak_create(w, &wr));
	reap_ledger_enable(true);
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
	reap_weak_destroy(wr);
	reap_release(w);
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
}

/* ---- threads ------------------------------------------------------- */

static void *release_on_thread(void *arg)
{
	reap_release(arg);
	return NULL;
}

TEST(obj_last_release_on_another_thread)
{
	struct widget *w;
	int closed = 0;
	struct fctx a = {0};
	pthread_t t;

	ASSERT_OK(reap_obj_create(&widget_type, &w));
	w->closed = &closed;
	ASSERT_OK(reap_finalize(w, fin, &a, 0, NULL));
	ASSERT_EQ_INT(pthread_create(&t, NULL, release_on_thread, w), 0);
	ASSERT_EQ_INT(pthread_join(t, NULL), 0);
	ASSERT_EQ_INT(closed, 1);
	ASSERT_EQ_INT(a.runs, 1);
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
}
