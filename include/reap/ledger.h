/*
 * reap/ledger.h: the registry of live tracked resources.
 *
 * Every tracked resource (scopes and deferred cleanups here; threads,
 * tasks, processes and objects in later layers) records its type, its
 * creation site (file, line, function), the thread that created it, its
 * owner and its creation time. The ledger counts them per type and prints
 * them as an owner tree or, at exit under REAP_DEBUG=leaks, as a
 * LeakSanitizer-style report that names the user's own lines.
 *
 * Creation times: a scope's is read from the clock when it opens. A
 * cleanup's comes from a coarse clock that each thread reads when it opens
 * a scope and every 64 registrations or releases, so it may be early by
 * the time since the thread last did either.
 *
 * Cost: registration and release take no lock. Counters are kept per
 * thread and folded into process-wide totals every 64 operations (the
 * only step that takes a lock); scopes are registered in sharded lists. The ledger can be switched off
 * at run time (reap_ledger_enable, REAP_DEBUG=ledger:off) and compiled out
 * (cmake -DREAP_LEDGER=OFF), in which case counts are 0 and reports say
 * so. Root scopes (the process's and each thread's) are infrastructure,
 * not resources: they are never counted or reported as leaks.
 */
#ifndef REAP_LEDGER_H
#define REAP_LEDGER_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Counters of one resource type. */
typedef struct reap_ledger_stat {
	const char *name; /* the type's name; static storage */
	uint64_t created; /* registered while the ledger was on */
	uint64_t closed;  /* of those, released since */
	uint64_t live;    /* created - closed */
	uint64_t peak;    /* highest live count (see reap_ledger_stats) */
} reap_ledger_stat;

/*
 * Live tracked resources of every type. Exact when no other thread is
 * registering or releasing at the same moment. Ownership: nothing is taken
 * or returned. Thread safety: any thread.
 */
REAP_API size_t reap_ledger_count(void);

/*
 * Counters of the type called name. `peak` is exact while one thread
 * counts; with several it is the highest live count seen when a thread
 * folds its counts into the totals (every 64 registrations or releases)
 * or a count is read, so a short peak between two folds can be missed.
 * Errors: -ENOENT for a type never used. Ownership: fills the caller's
 * *out. Thread safety: any thread.
 */
REAP_API REAP_NODISCARD int reap_ledger_stats(const char *name,
					      reap_ledger_stat *out)
	REAP_NONNULL(1, 2);

/* Fill out[0..cap) with the counters of every type used so far and return
 * how many types there are (which may exceed cap). Thread safety: any
 * thread. Ownership: fills the caller's array. */
REAP_API size_t reap_ledger_stats_all(reap_ledger_stat *out, size_t cap);

enum {
	REAP_REPORT_TREE = 1u << 0,  /* the owner tree of live resources */
	REAP_REPORT_STATS = 1u << 1, /* per-type counters */
	REAP_REPORT_LEAKS = 1u << 2  /* LeakSanitizer-style list + SUMMARY */
};

/*
 * Print the live resources: REAP_REPORT_TREE draws the owner tree with
 * each resource's type, description, creation site, thread and age;
 * REAP_REPORT_STATS adds a table of counters; REAP_REPORT_LEAKS prints
 * each live resource as a leak with its owner path, then a SUMMARY line.
 * Returns the number of live resources printed. A report taken while
 * other threads register and release shows every scope that was open
 * throughout, but may miss or repeat resources that changed meanwhile.
 * Ownership: borrows f. Thread safety: any thread.
 */
REAP_API size_t reap_ledger_report(FILE *f, unsigned flags);

/*
 * Switch recording on or off at run time. Resources registered while the
 * ledger is off are neither counted nor reported, even after it is
 * switched back on. Ownership: nothing is taken or returned.
 * Thread safety: any thread; takes effect for each thread at its next
 * registration.
 */
REAP_API void reap_ledger_enable(bool on);
REAP_API bool reap_ledger_enabled(void);

/* True if the ledger was compiled in. Ownership: nothing is taken or
 * returned. Thread safety: any thread. */
REAP_API bool reap_ledger_compiled(void);

/*
 * The check run at exit under REAP_DEBUG=leaks, callable at any time:
 * print a leak report of every live resource to f and return how many
 * there were. Ownership: borrows f. Thread safety: any thread.
 */
REAP_API size_t reap_ledger_check(FILE *f);

#ifdef __cplusplus
}
#endif
#endif /* REAP_LEDGER_H */
