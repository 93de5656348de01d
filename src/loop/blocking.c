/*
 * The blocking detector (REAP_DEBUG=blocking, or reap_loop_opts.
 * detect_blocking): a step of a task that holds its loop longer than the
 * threshold is reported while it still blocks, with the task, its
 * creation site and the loop thread's stack at that moment.
 *
 * How. Each loop counts its steps (step_seq) and says whether one runs
 * (in_step): two relaxed stores per step, no clock read. One watchdog
 * thread per process, running while some loop has the detector on,
 * looks at every such loop a few times per threshold; a step that it
 * sees running with the same sequence number for a whole threshold is
 * blocking. It then asks the loop thread for its stack with a signal
 * (SIG_SAMPLE): the handler only calls backtrace() into the loop's
 * buffer (preloaded, so it allocates nothing) and publishes the count;
 * the watchdog symbolizes and reports. Each step is reported once.
 *
 * Blocking sleeps. sleep(), usleep() and nanosleep() are defined here
 * (unless REAP_NO_INTERPOSE is defined at build time), so that a call
 * from a task of a loop whose detector is on is reported at once, with
 * the caller's address; the sleep itself then happens as asked, through
 * the system call (resumed when the sampling signal interrupts it). This
 * works where libreap.a is linked: the program's own definition wins
 * over libc's. libreap.so keeps them hidden (it exports reap_* only), so
 * there the watchdog catches a long sleep like any blocking step.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "loop_internal.h"

#define SIG_SAMPLE (SIGRTMIN + 6)

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond = PTHREAD_COND_INITIALIZER;
static reap_loop *wd_loops;   /* loops watched, under wd_lock */
static int wd_running, wd_stop, wd_started;
static pthread_t wd_thread;
static struct sigaction wd_old;

/* Set by the handler: a sleep of ours that it interrupts goes on. */
static __thread volatile sig_atomic_t sampled;

static void on_sample(int sig, siginfo_t *si, void *uc)
{
	reap_loop *loop = reap__loop_of_thread();
	int saved = errno;

	(void)sig;
	(void)si;
	(void)uc;
	sampled = 1;
	if (loop != NULL && atomic_load(&loop->bt_n) == -1)
		atomic_store(&loop->bt_n, backtrace(loop->bt, 32));
	errno = saved;
}

/* Report the step of loop that has run for held_ns: which task (read
 * first, so that a step that ends meanwhile is not confused with the
 * next), then where it is, if it is still the same step once sampled. */
static void report_step(reap_loop *loop, unsigned long seq, uint64_t held_ns)
{
	char site[256], name[24];
	struct reap__rbuf rb;
	FILE *m;
	int n = -1;

	reap__spin_lock(&loop->step_lock);
	memcpy(name, loop->step_name, sizeof name);
	reap__site_str(loop->step_site, site, sizeof site);
	reap__spin_unlock(&loop->step_lock);
	if (atomic_load(&loop->step_seq) != seq || !atomic_load(&loop->in_step))
		return; /* it ended between the look and the copy */
	atomic_store(&loop->bt_n, -1);
	if (syscall(SYS_tgkill, getpid(), loop->ostid, SIG_SAMPLE) == 0) {
		for (int i = 0; i < 200 && (n = atomic_load(&loop->bt_n)) < 0; i++)
			usleep(500);
	}
	if (atomic_load(&loop->step_seq) != seq)
		n = -2; /* the stack taken is some later step's */
	if ((m = reap__report_open(&rb)) == NULL)
		return;
	fprintf(m, "reap: blocking: task \"%s\" (spawned at %s) has held its loop "
		   "for %llu ms without suspending (threshold %llu ms)", name, site,
		(unsigned long long)(held_ns / 1000000u),
		(unsigned long long)(loop->blocking_ns / 1000000u));
	if (n > 2) {
		char **sym = backtrace_symbols(loop->bt, n);

		fprintf(m, "; the loop thread's stack (addr2line -e <binary> "
			   "<+offset> names the lines):\n");
		/* Frames 0 and 1 are the handler and the kernel's return
		 * trampoline. */
		for (int i = 2; i < n; i++)
			fprintf(m, "    #%d %s\n", i - 2, sym ? sym[i] : "?");
		free(sym);
	} else if (n == -2) {
		fprintf(m, " (it ended before its stack could be sampled)\n");
	} else {
		fprintf(m, " (its stack could not be sampled)\n");
	}
	reap__report_send(&rb);
}

static void *watchdog(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&wd_lock);
	wd_started = 1;
	pthread_cond_broadcast(&wd_cond);
	while (!wd_stop) {
		uint64_t period = UINT64_MAX;
		struct timespec ts;

		for (reap_loop *l = wd_loops; l != NULL; l = l->wd_next) {
			unsigned long seq = atomic_load(&l->step_seq);
			int in = atomic_load(&l->in_step);

			if (l->blocking_ns / 4 < period)
				period = l->blocking_ns / 4;
			if (!in || seq != l->wd_seq) {
				l->wd_seq = seq;
				l->wd_held = 0;
				l->wd_reported = 0;
				continue;
			}
			l->wd_held += l->wd_period;
			if (l->wd_held >= l->blocking_ns && !l->wd_reported) {
				l->wd_reported = 1;
				__atomic_fetch_add(&l->stats.steps_blocking, 1, __ATOMIC_RELAXED);
				report_step(l, seq, l->wd_held);
			}
		}
		for (reap_loop *l = wd_loops; l != NULL; l = l->wd_next)
			l->wd_period = period;
		if (period == UINT64_MAX)
			period = 100000000;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)(period / 1000000000u);
		ts.tv_nsec += (long)(period % 1000000000u);
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&wd_cond, &wd_lock, &ts);
	}
	pthread_mutex_unlock(&wd_lock);
	return NULL;
}

void reap__blocking_start(reap_loop *loop)
{
	void *warm[2];

	(void)backtrace(warm, 2); /* loads the unwinder before any signal */
	loop->blocking_ns = loop->opts.blocking_ns;
	atomic_store(&loop->bt_n, 0);
	pthread_mutex_lock(&wd_lock);
	loop->wd_next = wd_loops;
	loop->wd_seq = 0;
	loop->wd_held = 0;
	loop->wd_period = loop->blocking_ns / 4;
	wd_loops = loop;
	if (!wd_running) {
		struct sigaction sa;

		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = on_sample;
		sa.sa_flags = SA_SIGINFO | SA_RESTART;
		sigemptyset(&sa.sa_mask);
		sigaction(SIG_SAMPLE, &sa, &wd_old);
		wd_stop = 0;
		wd_started = 0;
		if (pthread_create(&wd_thread, NULL, watchdog, NULL) == 0) {
			wd_running = 1;
			/* Return once it watches: a step blocking right after
			 * the create is caught, and a fork() right after it
			 * never copies a thread still being set up (with some
			 * sanitizer runtimes, one that holds their allocator's
			 * lock, which the child's next thread then waits on
			 * for ever). */
			while (!wd_started)
				pthread_cond_wait(&wd_cond, &wd_lock);
		}
	}
	pthread_mutex_unlock(&wd_lock);
}

void reap__blocking_stop(reap_loop *loop)
{
	int join = 0;

	if (!loop->detect)
		return;
	pthread_mutex_lock(&wd_lock);
	for (reap_loop **p = &wd_loops; *p != NULL; p = &(*p)->wd_next) {
		if (*p == loop) {
			*p = loop->wd_next;
			break;
		}
	}
	if (wd_loops == NULL && wd_running) {
		wd_stop = 1;
		wd_running = 0;
		join = 1;
		pthread_cond_broadcast(&wd_cond);
	}
	pthread_mutex_unlock(&wd_lock);
	if (join) {
		pthread_join(wd_thread, NULL);
		sigaction(SIG_SAMPLE, &wd_old, NULL);
	}
	loop->detect = 0;
}

/* In a forked child the watchdog thread does not exist and the loops it
 * watched are the parent's: forget both, so that a loop of the child
 * starts a watchdog of its own. Our handler of SIG_SAMPLE is put back to
 * what it replaced, as the watchdog's stop would have done, so that the
 * next start saves the program's handler, not ours. */
void reap__blocking_fork_child(void)
{
	reap__mutex_reset(&wd_lock);
	reap__cond_reset(&wd_cond, NULL);
	if (wd_running)
		sigaction(SIG_SAMPLE, &wd_old, NULL);
	wd_loops = NULL;
	wd_running = 0;
	wd_stop = 0;
}

/* ------------------------------------------------------------------ */
/* Blocking sleeps called from tasks                                    */

#ifndef REAP_NO_INTERPOSE
static void report_sleep(const char *what, const void *caller)
{
	reap_task *t = reap__task_cur();
	Dl_info di;
	char site[256], where[256];

	if (t == NULL || !t->loop->detect)
		return;
	if (dladdr(caller, &di) && di.dli_sname != NULL)
		snprintf(where, sizeof where, "%s+0x%lx (%s)", di.dli_sname,
			 (unsigned long)((const char *)caller - (const char *)di.dli_saddr),
			 di.dli_fname ? di.dli_fname : "?");
	else if (dladdr(caller, &di) && di.dli_fname != NULL)
		snprintf(where, sizeof where, "%s+0x%lx", di.dli_fname,
			 (unsigned long)((const char *)caller - (const char *)di.dli_fbase));
	else
		snprintf(where, sizeof where, "%p", caller);
	__atomic_fetch_add(&t->loop->stats.steps_blocking, 1, __ATOMIC_RELAXED);
	reap__report("reap: blocking: %s called in task \"%s\" (spawned at %s), "
		     "from %s: it blocks the whole loop; use reap_sleep()\n",
		     what, reap__task_name(t), reap__site_str(t->site, site, sizeof site), where);
}

/* nanosleep(2), resumed for the time left when the interruption was
 * only the detector's sampling signal. */
static int sys_nanosleep(const struct timespec *req, struct timespec *rem)
{
	struct timespec want = *req, left;
	int rc;

	for (;;) {
		sampled = 0;
		rc = (int)syscall(SYS_nanosleep, &want, &left);
		if (rc == 0 || errno != EINTR || !sampled)
			break;
		want = left;
	}
	if (rc < 0 && rem != NULL)
		*rem = left;
	return rc;
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
	if (reap__task_cur() != NULL)
		report_sleep("nanosleep()", __builtin_return_address(0));
	return sys_nanosleep(req, rem);
}

int usleep(useconds_t us)
{
	struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000};

	if (reap__task_cur() != NULL)
		report_sleep("usleep()", __builtin_return_address(0));
	return sys_nanosleep(&ts, NULL);
}

unsigned int sleep(unsigned int s)
{
	struct timespec ts = {(time_t)s, 0}, rem = {0, 0};

	if (reap__task_cur() != NULL)
		report_sleep("sleep()", __builtin_return_address(0));
	if (sys_nanosleep(&ts, &rem) < 0 && errno == EINTR)
		return (unsigned)rem.tv_sec + (rem.tv_nsec > 0);
	return 0;
}
#endif
