/*
 * Scoped threads.
 *
 * A reap thread is an exit cleanup of type "thread" in the scope that
 * spawned it, so the ledger counts it, draws it in the owner tree and
 * reports it as a leak like any resource. Its record (struct
 * reap_thread) lives until the thread has ended and been joined, or,
 * for a thread its owner gave up on, until it ends by itself.
 *
 * How a thread ends. fn returns, or the thread calls reap_thread_exit()
 * or pthread_exit(); either way glibc runs the thread-specific data
 * destructors, among them base.c's, which runs the layers' thread-exit
 * hooks and then closes the thread's root scope. Our hook (thread_end):
 *   1. destroys the thread's thread-local values (tls.c), first, so that
 *      destructors can still use what the root scope holds;
 *   2. reports what is still open in the root under REAP_DEBUG=leaks,
 *      then closes it by moving it into a child of the root
 *      (reap_scope_pop_all) and closing that child, which hands over the
 *      error chain: that chain, over the code given to reap_thread_exit(),
 *      is what reap_thread_join() returns;
 *   3. marks the record done under its lock and wakes joiners.
 * pthread_join() returns only after the thread has finished all of
 * that, so a joiner sees the ledger without the thread's resources.
 *
 * Closing the owner (thread_close) requests the thread's cancellation
 * token and waits for `done` at most the join limit. A thread that does
 * not stop by then is detached and reported, with its creation site and
 * what it holds; its record becomes its own (`abandoned`) and is freed by
 * its end hook whenever it ends. The ledger keeps counting it until then
 * (a leak source reports it, since it is in no scope any more). reap
 * frees nothing the thread uses: its record, token and root scope stay
 * valid. Memory of the closed owner that the thread still uses is the
 * program's problem, and the report says so.
 *
 * At process exit (REAP__EXIT_THREADS, before the leak report), every
 * reap thread still running has its cancellation requested and is given
 * its join limit, all at once; those that have not ended by then are
 * reported with what they hold, and the exit does not wait for them
 * again when the process root closes.
 *
 * Locks: reg_lock (the registry of records) is never taken while a
 * record's lock is held, nor the other way round. Reports that read the
 * ledger are built before reg_lock is taken, since the ledger's leak
 * sources take reg_lock under the ledger's own locks.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "thread_internal.h"

#define DEFAULT_JOIN_LIMIT_NS 5000000000ull

static void thread_describe(void *arg, char *buf, size_t len);
static reap_type thread_type = REAP_TYPE_INIT("thread", thread_describe);

static pthread_once_t layer_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_cv; /* a record turned done; CLOCK_MONOTONIC */
static reap_thread *reg_head;

static void thread_end(struct reap__tstate *ts);
static void exit_threads(void);
static size_t leak_source(FILE *f, size_t *per_type);
static void fork_child(struct reap__tstate *ts);

static void reg_cv_init(void)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	reap__cond_reset(&reg_cv, &ca); /* also in a forked child */
	pthread_condattr_destroy(&ca);
}

static void layer_init(void)
{
	reg_cv_init();
	reap__on_thread_exit(thread_end);
	reap__on_exit(REAP__EXIT_THREADS, exit_threads);
	reap__ledger_add_source(leak_source);
	reap__on_fork(REAP__FORK_LAYER, NULL, NULL, fork_child);
}

/*
 * The child of a fork (one thread: the forking one). The reap threads of
 * the registry do not exist here: the registry is forgotten, so that the
 * exit neither waits for them nor reports them; their records are the
 * parent's copies, reached from inherited scopes only, whose cleanups
 * never run. The forking thread, a reap thread or not in the parent, is
 * the child's main thread: no record, no token of its own. The
 * thread-local values and the pools of the layer follow (tls.c, pool.c).
 */
static void fork_child(struct reap__tstate *ts)
{
	reap__mutex_reset(&reg_lock);
	reg_cv_init();
	reg_head = NULL;
	reap__thread_set(ts, NULL);
	reap__tls_fork_child(ts);
	reap__pool_fork_child();
}

/* The layer's hooks: on first spawn, and on first thread-local key (its
 * exit report covers the values of threads reap did not start). */
void reap__thread_layer_init(void)
{
	pthread_once(&layer_once, layer_init);
}

static void reg_add(reap_thread *t)
{
	pthread_mutex_lock(&reg_lock);
	t->prev = NULL;
	t->next = reg_head;
	if (reg_head != NULL)
		reg_head->prev = t;
	reg_head = t;
	pthread_mutex_unlock(&reg_lock);
}

static void reg_del_locked(reap_thread *t)
{
	LIST_UNLINK(reg_head, t, prev, next);
	t->prev = t->next = NULL;
}

static void reg_del(reap_thread *t)
{
	pthread_mutex_lock(&reg_lock);
	reg_del_locked(t);
	pthread_mutex_unlock(&reg_lock);
}

/* Free a record: it goes with the last reference to its own token. */
static void free_thread(reap_thread *t)
{
	t->magic = T_DEAD;
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->done_cv);
	reap_error_free(t->chain);
	t->chain = NULL;
	if (t->cancel != &t->own)
		reap__cancel_unref(t->cancel);
	reap__cancel_unref(&t->own);
}

/* The name as reports show it: the given one, or T<n> once known. */
static const char *tname(const reap_thread *t)
{
	/* Acquire: the name is written before num is published. */
	if (t->named || atomic_load_explicit(&t->num, memory_order_acquire) != 0)
		return t->name;
	return "T?";
}

static void thread_describe(void *arg, char *buf, size_t len)
{
	reap_thread *t = arg;

	snprintf(buf, len, "\"%s\" T%u %s", tname(t),
		 atomic_load_explicit(&t->num, memory_order_relaxed),
		 RD(t->done) ? "(ended, not joined)" : "(running)");
}

static void check_thread(const reap_thread *t, const char *what)
{
	if (unlikely(t->magic != T_MAGIC))
		reap__misuse("%s on %p, which is not a live reap thread (joined "
			     "already, or never spawned)", what, (const void *)t);
}

/* ------------------------------------------------------------------ */
/* Spawning                                                             */

static void *trampoline(void *arg)
{
	reap_thread *t = arg;
	struct reap__tstate *ts = reap__ts();

	reap__thread_set(ts, t);
	if (!t->named)
		snprintf(t->name, sizeof t->name, "T%u", ts->num);
	/* Release: reporters that load the root's name see its bytes. */
	__atomic_store_n(&ts->root.name, (const char *)t->name, __ATOMIC_RELEASE);
	pthread_mutex_lock(&reg_lock);
	t->ts = ts;
	pthread_mutex_unlock(&reg_lock);
	/* Release: pairs with tname()'s acquire. */
	atomic_store_explicit(&t->num, ts->num, memory_order_release);
	if (t->named) {
		char os[16];

		memcpy(os, t->name, sizeof os - 1); /* the OS keeps 15 bytes */
		os[sizeof os - 1] = '\0';
		pthread_setname_np(pthread_self(), os);
	}
	return t->fn(t->arg);
}

static int thread_close(void *arg, const reap_error *inflight);

int reap_thread_spawn_at(reap_scope *s, const reap_thread_opts *opts,
			 reap_thread_fn fn, void *arg, reap_thread **out,
			 const reap_site *site)
{
	struct reap__tstate *ts = reap__ts();
	pthread_attr_t attr, *ap = NULL;
	pthread_condattr_t ca;
	reap_thread *t;
	int rc;

	reap__thread_layer_init();
	if (s == NULL && (s = reap__current(ts)) == NULL)
		return -ENOMEM;
	if (out == NULL)
		return -EINVAL;
	if (opts != NULL && opts->stack_size != 0 &&
	    opts->stack_size < (size_t)PTHREAD_STACK_MIN)
		return -EINVAL;
	if ((t = reap_malloc(sizeof *t)) == NULL)
		return -ENOMEM;
	memset(t, 0, offsetof(struct reap_thread, own));
	t->magic = T_MAGIC;
	t->fn = fn;
	t->arg = arg;
	t->site = site;
	t->t_ns = reap_now_ns();
	t->join_limit_ns = opts != NULL && opts->join_limit_ns != 0
		? opts->join_limit_ns : DEFAULT_JOIN_LIMIT_NS;
	reap__cancel_init(&t->own, site, 1);
	if (opts != NULL && opts->cancel != NULL) {
		reap__cancel_ref(opts->cancel);
		t->cancel = opts->cancel;
	} else {
		t->cancel = &t->own;
	}
	t->name[0] = '\0';
	if (opts != NULL && opts->name != NULL) {
		snprintf(t->name, sizeof t->name, "%s", opts->name);
		t->named = 1;
	}
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->done_cv, &ca);
	pthread_condattr_destroy(&ca);
	reap__owner_path(s, t->owner, sizeof t->owner);

	rc = reap_defer_exit_at(s, &thread_type, thread_close, t, &t->h, site);
	if (rc < 0) {
		free_thread(t);
		return rc;
	}
	reg_add(t);
	if (opts != NULL && opts->stack_size != 0) {
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, opts->stack_size);
		ap = &attr;
	}
	/* A thread is a fallible acquisition for the fault injector. */
	rc = reap__fault_point() ? EAGAIN : pthread_create(&t->th, ap, trampoline, t);
	if (ap != NULL)
		pthread_attr_destroy(ap);
	if (rc != 0) {
		reg_del(t);
		reap_cleanup_cancel(t->h);
		free_thread(t);
		return rc == EPERM || rc == EINVAL ? -rc : -EAGAIN;
	}
	*out = t;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The end of a thread (on the thread itself)                            */

/* Live entries of a scope of this thread, oldest first, through fn. */
static size_t each_live(reap_scope *s, void (*fn)(reap_cleanup *e, void *ctx),
			void *ctx)
{
	size_t n = 0;

	for (struct reap__chunk *c = s->chunk; c != NULL; c = c->prev) {
		reap_cleanup *end = c == s->chunk ? s->top : reap__chunk_end(c);

		for (reap_cleanup *e = reap__chunk_first(c); e < end; e++) {
			if (reap__is_seg_header(e) || !(e->kf & F_LIVE))
				continue;
			n++;
			if (fn != NULL)
				fn(e, ctx);
		}
	}
	return n;
}

static void print_leftover(reap_cleanup *e, void *ctx)
{
	FILE *f = ctx;
	const struct reap__key *k = &reap__keys[KF_KEY(e->kf)];
	char desc[128] = "";

	if (F_KIND_OF(e->kf) == E_CHILD) {
		reap_scope *c = e->arg;

		fprintf(f, "    scope%s%s%s  created at ", c->name ? " \"" : "",
			c->name ? c->name : "", c->name ? "\"" : "");
		reap__site_print(f, c->site);
		fputc('\n', f);
		return;
	}
	if (k->type != NULL && k->type->describe != NULL)
		k->type->describe(e->arg, desc, sizeof desc);
	fprintf(f, "    %s%s%s  created at ", k->type ? k->type->name : "?",
		desc[0] ? " " : "", desc);
	reap__site_print(f, k->site);
	fputc('\n', f);
}

static void report_leftovers(reap_thread *t, reap_scope *root, size_t n)
{
	struct reap__rbuf rb;
	FILE *m = reap__report_open(&rb);

	if (m == NULL)
		return;
	fprintf(m, "reap: thread \"%s\" (T%u, spawned at %s:%d in %s()) ended "
		   "with %zu resource(s) still open in its root scope; closing "
		   "them:\n", t->name, atomic_load(&t->num), t->site->file,
		t->site->line, t->site->func, n);
	each_live(root, print_leftover, m);
	reap__report_send(&rb);
}

/* Close what the thread's root holds and keep the error chain. */
static void close_root_contents(reap_thread *t, struct reap__tstate *ts)
{
	reap_scope *root = &ts->root, *n;
	size_t live;

	ts->current = root;
	if (t->code < 0)
		reap_scope_failf_at(root, t->code,
				    t->exit_site ? t->exit_site : t->site, NULL);
	live = each_live(root, NULL, NULL);
	if (live > 0 && (reap_debug_flags() & REAP_DEBUG_LEAKS))
		report_leftovers(t, root, live);
	if (live > 0 && reap_scope_pop_all_at(root, root, &n, t->site) == 0) {
		reap_error *chain = NULL;

		/* The root's error in flight goes with its contents. */
		n->err = root->err;
		n->chain = root->chain;
		root->err = 0;
		root->chain = NULL;
		t->code = reap_scope_close_err_at(n, &chain, t->site);
		t->chain = chain;
		return;
	}
	/* Nothing open, or no memory to move it: the root's own close,
	 * next, closes it and reports its errors. */
	t->code = root->err;
	t->chain = root->chain;
	root->err = 0;
	root->chain = NULL;
}

static void thread_end(struct reap__tstate *ts)
{
	reap_thread *t = reap__thread_of(ts);
	int abandoned;

	if (t == NULL)
		return;
	reap__tls_thread_exit(ts);
	close_root_contents(t, ts);
	reap__thread_set(ts, NULL);
	__atomic_store_n(&ts->root.name, (const char *)"thread", __ATOMIC_RELEASE);

	pthread_mutex_lock(&t->lock);
	WR(t->done, 1);
	abandoned = t->abandoned;
	pthread_cond_broadcast(&t->done_cv);
	pthread_mutex_unlock(&t->lock);

	pthread_mutex_lock(&reg_lock);
	t->ts = NULL;
	if (abandoned)
		reg_del_locked(t);
	pthread_cond_broadcast(&reg_cv);
	pthread_mutex_unlock(&reg_lock);
	if (abandoned) {
		/* Its owner gave it up and counted it again then. */
		reap__count_closed(ts, reap__type_id(&thread_type));
		reap__count_settle(ts);
		free_thread(t);
	}
}

void reap_thread_exit_at(void *result, int code, const reap_site *site)
{
	struct reap__tstate *ts = reap__ts_self;
	reap_thread *t = ts != NULL ? reap__thread_of(ts) : NULL;

	if (t != NULL) {
		t->code = code < 0 ? code : 0;
		t->exit_site = site;
	}
	pthread_exit(result);
}

/* ------------------------------------------------------------------ */
/* Joining                                                              */

/* Wait until t is done or the monotonic deadline passes (0: do not
 * wait; UINT64_MAX: no deadline); true if done. */
static int wait_done(reap_thread *t, uint64_t deadline)
{
	struct timespec ts = reap__timespec(deadline);
	int done;

	pthread_mutex_lock(&t->lock);
	while (!t->done && deadline != 0) {
		if (deadline == UINT64_MAX)
			pthread_cond_wait(&t->done_cv, &t->lock);
		else if (pthread_cond_timedwait(&t->done_cv, &t->lock, &ts) == ETIMEDOUT)
			break;
	}
	done = t->done;
	pthread_mutex_unlock(&t->lock);
	return done;
}

/* Join a thread whose end hook ran (or that is the caller), remove its
 * entry from its owner if still there, take its outcome and free its
 * record. Returns its code. */
static int finish(reap_thread *t, void **result, reap_error **chain)
{
	void *res = NULL;
	int code;

	if (!pthread_equal(t->th, pthread_self()))
		pthread_join(t->th, &res);
	/* After the join: had the thread called exit(), the process root,
	 * and maybe t's owner with it, would be closing on that thread. */
	if (t->h != NULL) {
		reap_cleanup_cancel(t->h);
		t->h = NULL;
	}
	reg_del(t);
	if (result != NULL)
		*result = res;
	code = t->code;
	if (chain != NULL) {
		*chain = t->chain;
		t->chain = NULL;
	}
	free_thread(t);
	return code;
}

int reap_thread_join_until(reap_thread *t, uint64_t deadline_ns, void **result,
			   reap_error **chain)
{
	check_thread(t, "reap_thread_join");
	if (chain != NULL)
		*chain = NULL;
	if (pthread_equal(t->th, pthread_self()))
		return -EDEADLK;
	if (deadline_ns != REAP_FOREVER) {
		uint64_t now = reap_now_ns();
		uint64_t left = deadline_ns > now ? deadline_ns - now : 0;

		if (!wait_done(t, left == 0 ? 0 : reap__add_sat(reap__mono_ns(), left)))
			return -ETIMEDOUT;
	}
	return finish(t, result, chain);
}

int reap_thread_join(reap_thread *t, void **result, reap_error **chain)
{
	return reap_thread_join_until(t, REAP_FOREVER, result, chain);
}

/* ------------------------------------------------------------------ */
/* Reports of threads that do not stop                                   */

/* The ledger's owner tree, as text (NULL without memory). */
static char *ledger_tree(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);

	if (m == NULL)
		return NULL;
	reap_ledger_report(m, REAP_REPORT_TREE);
	fclose(m);
	return text;
}

/* From a tree of ledger_tree(), the subtree under thread T<num>'s root
 * scope, indented: what the thread holds there. NULL if nothing. */
static char *subtree(const char *tree, unsigned num)
{
	char *out = NULL, head[48];
	size_t olen = 0;
	const char *p;
	FILE *o;

	if (tree == NULL || (o = open_memstream(&out, &olen)) == NULL)
		return NULL;
	/* The root's line: "T<num>  (root scope ..." or, for a named
	 * thread, "T<num>[name]  (root scope ...". */
	snprintf(head, sizeof head, "T%u", num);
	for (p = tree; *p != '\0';) {
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p) + 1 : strlen(p);
		size_t h = strlen(head);

		if (strncmp(p, head, h) == 0 && (p[h] == '[' || p[h] == ' ') &&
		    memmem(p, n, "  (root scope", 13) != NULL) {
			p += n;
			/* Its entries are the indented lines that follow. */
			while (*p == '|' || *p == '`' || *p == ' ') {
				eol = strchr(p, '\n');
				n = eol ? (size_t)(eol - p) + 1 : strlen(p);
				fprintf(o, "        %.*s", (int)n, p);
				p += n;
			}
			break;
		}
		p += n;
	}
	fclose(o);
	return out;
}

/* Print what t holds: its thread-local values and its root scope.
 * Caller holds reg_lock (t->ts stays put). */
static void print_holdings(FILE *f, reap_thread *t, const char *sub)
{
	size_t n = 0;

	fprintf(f, "    it holds:\n");
	if (t->ts != NULL)
		n += reap__tls_print_thread(t->ts, f, "      thread-local ");
	if (sub != NULL && sub[0] != '\0') {
		fprintf(f, "      in its root scope:\n%s", sub);
		n++;
	}
	if (n == 0)
		fprintf(f, "      nothing reap knows of\n");
}

static void report_abandoned(reap_thread *t)
{
	char *tree = ledger_tree(), *sub = subtree(tree, atomic_load(&t->num));
	struct reap__rbuf rb;
	FILE *m = reap__report_open(&rb);

	free(tree);
	if (m == NULL) {
		free(sub);
		return;
	}
	fprintf(m, "reap: thread \"%s\" (T%u), spawned at %s:%d in %s() and "
		   "owned by %s, did not stop within %llu.%03llus of its "
		   "cancellation when its owner closed; it is left running, "
		   "detached, and counted as open until it ends (reap keeps its "
		   "record, token and root scope; what the closed owner held is "
		   "gone, and the thread must not use it)\n",
		tname(t), atomic_load(&t->num), t->site->file, t->site->line,
		t->site->func, t->owner,
		(unsigned long long)(t->join_limit_ns / 1000000000u),
		(unsigned long long)(t->join_limit_ns / 1000000u % 1000u));
	pthread_mutex_lock(&reg_lock);
	print_holdings(m, t, sub);
	pthread_mutex_unlock(&reg_lock);
	reap__report_send(&rb);
	free(sub);
}

/* The owner's cleanup: cancel, join within the limit, or give up. */
static int thread_close(void *arg, const reap_error *inflight)
{
	reap_thread *t = arg;
	struct reap__tstate *ts = reap__ts();
	int self = pthread_equal(t->th, pthread_self());
	uint64_t limit = t->exit_waited ? 0 : t->join_limit_ns;
	const reap_site *site = t->site;
	reap_error *chain = NULL;
	char name[32];
	int code;

	(void)inflight;
	t->h = NULL; /* the entry is gone */
	if (self)
		/* The thread closes its own owner: it called exit() and the
		 * process root is closing. Another thread may be about to
		 * join it, so its record stays; the process is ending. */
		return 0;
	reap_cancel_request(t->cancel);
	if (!wait_done(t, limit == 0 ? 0 : reap__add_sat(reap__mono_ns(), limit))) {
		int gave_up;

		pthread_mutex_lock(&t->lock);
		gave_up = !t->done;
		if (gave_up) {
			WR(t->abandoned, 1);
			pthread_detach(t->th);
			/* Still running: it stays counted until it ends. */
			reap__count_created(ts, reap__type_id(&thread_type));
		}
		pthread_mutex_unlock(&t->lock);
		if (gave_up) {
			if (t->exit_waited)
				return 0; /* reported by the exit already */
			report_abandoned(t);
			return reap_raisef_at(t->site, -ETIMEDOUT, "thread \"%s\" "
					      "did not stop within its join "
					      "limit; left running", tname(t));
		}
	}
	snprintf(name, sizeof name, "%s", tname(t));
	code = finish(t, NULL, &chain);
	if (code == -ECANCELED && (chain == NULL || chain->cause == NULL))
		code = 0; /* it stopped because we asked it to */
	if (code < 0 && reap_error_count(chain) > 1) {
		struct reap__rbuf rb;
		FILE *m = reap__report_open(&rb);

		if (m != NULL) {
			fprintf(m, "reap: thread \"%s\", joined by its owner's close, "
				   "ended with %zu error(s):\n", name,
				reap_error_count(chain));
			reap_error_print(chain, m);
			reap__report_send(&rb);
		}
	}
	if (code < 0)
		code = reap_raisef_at(site, code, "thread \"%s\" ended with %s%s%s", name,
				   reap_errname(code),
				   chain && chain->msg ? ": " : "",
				   chain && chain->msg ? chain->msg : "");
	reap_error_free(chain);
	return code;
}

/* ------------------------------------------------------------------ */
/* Process exit                                                         */

/* Still running, and not the calling thread. Caller holds reg_lock. */
static int running_other(const reap_thread *t)
{
	return !RD(t->done) && !pthread_equal(t->th, pthread_self());
}

static void exit_threads(void)
{
	struct reap__tstate *self = reap__ts();
	uint64_t now = reap__mono_ns(), until = now;
	struct reap__rbuf rb;
	size_t nlate = 0;
	char *tree;
	FILE *m;

	/* Ask every thread to stop, all at once, and give each its limit. */
	pthread_mutex_lock(&reg_lock);
	for (reap_thread *t = reg_head; t != NULL; t = t->next) {
		if (!running_other(t))
			continue;
		reap_cancel_request(t->cancel);
		t->exit_waited = 1;
		if (reap__add_sat(now, t->join_limit_ns) > until)
			until = reap__add_sat(now, t->join_limit_ns);
	}
	for (;;) {
		struct timespec ts = reap__timespec(until);
		int running = 0;

		for (reap_thread *t = reg_head; t != NULL && !running; t = t->next)
			running = running_other(t);
		if (!running || reap__mono_ns() >= until)
			break;
		pthread_cond_timedwait(&reg_cv, &reg_lock, &ts);
	}
	pthread_mutex_unlock(&reg_lock);

	/* Report those still running, with what they hold. The ledger's
	 * tree is taken before reg_lock (see the essay). */
	tree = ledger_tree();
	if ((m = reap__report_open(&rb)) == NULL) {
		free(tree);
		return;
	}
	pthread_mutex_lock(&reg_lock);
	for (reap_thread *t = reg_head; t != NULL; t = t->next) {
		unsigned num = atomic_load(&t->num);
		char *sub;

		if (!running_other(t))
			continue;
		nlate++;
		fprintf(m, "reap: thread \"%s\" (T%u), spawned at %s:%d in %s() and "
			   "owned by %s, is still running at exit: it did not stop "
			   "within %llu.%03llus of its cancellation\n",
			tname(t), num, t->site->file, t->site->line, t->site->func,
			t->owner,
			(unsigned long long)(t->join_limit_ns / 1000000000u),
			(unsigned long long)(t->join_limit_ns / 1000000u % 1000u));
		sub = subtree(tree, num);
		print_holdings(m, t, sub);
		free(sub);
	}
	pthread_mutex_unlock(&reg_lock);
	if (reap_debug_flags() & REAP_DEBUG_LEAKS)
		nlate += reap__tls_print_foreign(m, self);
	if (nlate > 0)
		reap__report_send(&rb);
	else
		reap__report_drop(&rb);
	free(tree);
}

/* Threads their owner gave up on: in no scope, but still open. */
static size_t leak_source(FILE *f, size_t *per_type)
{
	uint32_t now = reap__now_ms();
	unsigned id = reap__type_id(&thread_type);
	size_t n = 0;

	pthread_mutex_lock(&reg_lock);
	for (reap_thread *t = reg_head; t != NULL; t = t->next) {
		char desc[96], owner[192];
		uint64_t start_ms;

		if (!RD(t->abandoned) || RD(t->done))
			continue;
		start_ms = t->t_ns > reap__start_ns()
			? (t->t_ns - reap__start_ns()) / 1000000u : 0;
		snprintf(desc, sizeof desc, "\"%s\" T%u (running; its owner gave up "
			 "waiting for it)", tname(t), atomic_load(&t->num));
		snprintf(owner, sizeof owner, "none (detached when %s closed)",
			 t->owner);
		reap__leak_print(f, "thread", desc,
				 now > start_ms ? now - start_ms : 0,
				 atomic_load(&t->num), t->site, owner);
		per_type[id]++;
		n++;
	}
	pthread_mutex_unlock(&reg_lock);
	return n;
}

/* ------------------------------------------------------------------ */
/* Accessors                                                            */

reap_cancel *reap_thread_cancel_token(reap_thread *t)
{
	check_thread(t, "reap_thread_cancel_token");
	return t->cancel;
}

const char *reap_thread_name(const reap_thread *t)
{
	check_thread(t, "reap_thread_name");
	return tname(t);
}

reap_thread *reap_thread_self(void)
{
	struct reap__tstate *ts = reap__ts_self;

	return ts != NULL ? reap__thread_of(ts) : NULL;
}
