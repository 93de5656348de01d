/*
 * reap/base.h: errors, call sites, the allocator hook, fault injection,
 * the clock, debug switches and the misuse and report hooks.
 *
 * Every other layer of reap is built on this header. Functions that can
 * fail return 0 or a negative errno value (-ENOMEM, -EINVAL, ...) or one of
 * the REAP_E* codes below; reap_strerror() names all of them.
 */
#ifndef REAP_BASE_H
#define REAP_BASE_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REAP_VERSION_MAJOR 0
#define REAP_VERSION_MINOR 1
#define REAP_VERSION_PATCH 0

#if defined(REAP_STATIC)
#define REAP_API
#elif defined(REAP_BUILDING)
#define REAP_API __attribute__((visibility("default")))
#else
#define REAP_API
#endif

#define REAP_NODISCARD __attribute__((warn_unused_result))
#define REAP_NONNULL(...) __attribute__((nonnull(__VA_ARGS__)))
#define REAP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define REAP_NORETURN __attribute__((noreturn))

/* ------------------------------------------------------------------ */
/* Call sites                                                           */

/*
 * A creation or close site: the user's file, function and line. Every
 * acquiring call is a macro that passes REAP_SITE to an `_at` function, so
 * reports name the caller's line, not reap's. A site has static storage:
 * the pointer stays valid for the life of the program.
 */
typedef struct reap_site {
	const char *file;
	const char *func;
	int line;
} reap_site;

/* The site of the code that expands it, as a pointer to static storage. */
#define REAP_SITE                                                           \
	(__extension__({                                                    \
		static const reap_site reap__site_ = {__FILE__, __func__,  \
						      __LINE__};            \
		&reap__site_;                                               \
	}))

/* ------------------------------------------------------------------ */
/* Errors                                                               */

/*
 * reap's own codes, in a range of their own below every errno value. Like
 * errno values they are returned negated.
 */
enum {
	REAP_EBASE = 20000,
	REAP_ECLOSED = -(REAP_EBASE + 1),  /* the owner is closed or closing */
	REAP_ELEAK = -(REAP_EBASE + 2),    /* resources are still open */
	REAP_ECHAINED = -(REAP_EBASE + 3), /* several errors, see the chain */
	REAP_ELAST = -(REAP_EBASE + 4)
};

/*
 * A cleanup returning REAP_SUPPRESS swallows the error in flight, like an
 * __exit__ that returns True.
 */
#define REAP_SUPPRESS 1

/* Exit status of a process whose exit-time leak check found leaks under
 * REAP_DEBUG=leaks:strict. */
#define REAP_LEAK_EXIT_CODE 23

/*
 * The description of an error code: "Cannot allocate memory" for -ENOMEM,
 * "owner is closed or closing" for REAP_ECLOSED, "Success" for 0.
 * Ownership: returns a static string, never NULL. Thread safety: any
 * thread.
 */
REAP_API const char *reap_strerror(int code);

/* The symbolic name of an error code: "ENOMEM", "REAP_ECLOSED", "0";
 * unknown codes give "E?". Ownership: returns a static string, never
 * NULL. Thread safety: any thread. */
REAP_API const char *reap_errname(int code);

/*
 * Attach a message and a site to an error code, then return the code:
 *
 *     if (fflush(f) != 0)
 *             return reap_raisef(-errno, "flush of %s failed", path);
 *
 * The message is kept in thread-local storage and picked up by the next
 * exit cleanup that returns this code, or the next reap_scope_fail() of
 * it, on this thread; elsewhere it is ignored. Ownership: fmt is copied.
 * Thread safety: any thread (per-thread state).
 */
#define reap_raisef(code, ...) reap_raisef_at(REAP_SITE, (code), __VA_ARGS__)
REAP_API int reap_raisef_at(const reap_site *site, int code, const char *fmt,
			    ...) REAP_PRINTF(3, 4);

typedef struct reap_error reap_error;

/* ------------------------------------------------------------------ */
/* Error chains                                                         */

/*
 * One link of an error chain. The newest error comes first; `cause` is
 * the error that was in flight when this one was raised (Python's
 * __context__). Links are read-only for users; a chain handed to the
 * caller is freed with reap_error_free().
 */
struct reap_error {
	int code;                /* negative errno or REAP_E* code */
	const char *msg;         /* message, or NULL */
	const reap_site *site;   /* where it was raised */
	const char *where;       /* owner path of the scope, or NULL */
	const reap_error *cause; /* the error it was raised over, or NULL */
};

/*
 * Print a chain, newest first, one line per link with its name, message,
 * site and owner path. Ownership: borrows e. Thread safety: any thread.
 */
REAP_API void reap_error_print(const reap_error *e, FILE *f);

/* Number of links in a chain (0 for NULL). Ownership: borrows e.
 * Thread safety: any thread. */
REAP_API size_t reap_error_count(const reap_error *e);

/* Free a chain handed over by reap_scope_close_err(). Ownership: takes e.
 * NULL is a no-op. Thread safety: any thread. */
REAP_API void reap_error_free(reap_error *e);

/* ------------------------------------------------------------------ */
/* Allocation                                                           */

/*
 * The allocator hook. Every allocation reap makes goes through it. The
 * functions follow malloc, realloc and free; ctx is passed back unchanged.
 */
typedef struct reap_allocator {
	void *(*malloc)(void *ctx, size_t size);
	void *(*realloc)(void *ctx, void *ptr, size_t size);
	void (*free)(void *ctx, void *ptr);
	void *ctx;
} reap_allocator;

/*
 * Replace the allocator (NULL restores malloc/realloc/free). Returns
 * -EINVAL for an allocator with a missing function, and -EBUSY if memory
 * from the current allocator is still live or kept for reuse by another
 * thread (the calling thread's is given back first), since it would be
 * handed to the wrong free. Ownership: *a is copied. Thread safety: call
 * it before other threads use reap.
 */
REAP_API REAP_NODISCARD int reap_set_allocator(const reap_allocator *a);

/*
 * Allocate through the hook, counting live blocks and honouring fault
 * injection. NULL on failure (errno is set to ENOMEM). Ownership: the
 * caller owns the block and frees it with reap_free(), which takes it.
 * Thread safety: any thread.
 */
REAP_API void *reap_malloc(size_t size) __attribute__((malloc));
REAP_API void *reap_calloc(size_t n, size_t size) __attribute__((malloc));
REAP_API void *reap_realloc(void *ptr, size_t size);
REAP_API void reap_free(void *ptr);

/* Blocks allocated through the hook and not yet freed (blocks kept in the
 * cache below do not count). Ownership: nothing is taken or returned.
 * Thread safety: any thread. */
REAP_API size_t reap_alloc_live(void);

/*
 * The block cache. Memory that closing a scope releases (cleanup chunks
 * and scope memory blocks) is kept by the thread that closed it for the
 * next scope, up to a process-wide limit of 128 MiB by default, and given
 * back through the allocator hook when the thread ends or the limit is
 * reached. reap_set_cache_limit(0) turns the cache off and empties the
 * calling thread's; reap_cache_trim() empties the calling thread's now.
 * Ownership: the cached blocks are reap's. Thread safety: any thread.
 */
REAP_API void reap_set_cache_limit(size_t bytes);
REAP_API void reap_cache_trim(void);

/*
 * Fault injection: make the nth fallible acquisition from now fail (1 is
 * the next one), as if memory ran out; 0 disarms. Every allocation reap
 * makes counts, and later layers count their other acquisitions (thread
 * creation, for one) through the same counter. The environment variable
 * REAP_FAULT_ALLOC=N arms it at start-up. Ownership: nothing is taken or
 * returned. Thread safety: any thread; the counter is process-wide.
 */
REAP_API void reap_fault_alloc(long nth);

/* Acquisitions counted since the last reap_fault_alloc() call.
 * Ownership: nothing is taken or returned. Thread safety: any thread. */
REAP_API long reap_fault_count(void);

/* ------------------------------------------------------------------ */
/* Clock                                                                */

/* A deadline that never comes: the waits that take an absolute deadline
 * on reap_now_ns()'s clock wait without one. */
#define REAP_FOREVER UINT64_MAX

/* Monotonic time in nanoseconds, from the clock hook. Ownership: nothing
 * is taken or returned. Thread safety: any thread. */
REAP_API uint64_t reap_now_ns(void);

/*
 * Replace the clock (NULL restores CLOCK_MONOTONIC), so that tests can
 * move time by hand. Ownership: borrows ctx until the clock is replaced.
 * Thread safety: set it before threads use reap; now() is then called
 * from any thread.
 */
REAP_API void reap_set_clock(uint64_t (*now)(void *ctx), void *ctx);

/* ------------------------------------------------------------------ */
/* Debug switches and hooks                                             */

enum {
	REAP_DEBUG_LEAKS = 1u << 0,  /* report what is open at exit */
	REAP_DEBUG_STRICT = 1u << 1, /* ... and exit with REAP_LEAK_EXIT_CODE */
	REAP_DEBUG_NOLEDGER = 1u << 2, /* start with the ledger off */
	REAP_DEBUG_GC = 1u << 3,       /* "gc": statistics per collection */
	REAP_DEBUG_GC_UNCOLLECTABLE = 1u << 4, /* "gc:uncollectable" */
	REAP_DEBUG_LOCKS = 1u << 5,    /* "locks": lock-order checking */
	REAP_DEBUG_BLOCKING = 1u << 6  /* "blocking": loop steps that block */
};

/*
 * Switch debug features from a spec in the REAP_DEBUG syntax:
 * comma-separated words, "leaks", "leaks:strict", "ledger:off", "gc",
 * "gc:uncollectable", "locks", "blocking". The
 * environment variable is read once at start-up; this call replaces it
 * (the variable also accepts words of later layers; this call does not).
 * Returns -EINVAL, changing nothing, for an unknown word. Ownership: spec
 * is borrowed for the call. Thread safety: any thread.
 */
REAP_API REAP_NODISCARD int reap_debug_set(const char *spec);

/* The current debug flags (REAP_DEBUG_*). Ownership: nothing is taken or
 * returned. Thread safety: any thread. */
REAP_API unsigned reap_debug_flags(void);

/*
 * The misuse hook. Misuse (double close, use after close, closing an
 * owner from inside its child's cleanup) is a bug, not an error: reap
 * calls the hook with a message naming the creation site and the first
 * close site, then abort(). The hook may end the process or longjmp away;
 * if it returns, reap aborts. NULL restores the default, which prints the
 * message to stderr. Ownership: borrows ctx until the hook is replaced;
 * msg is valid during the call only. Thread safety: set it before threads
 * use reap.
 */
typedef void (*reap_misuse_fn)(const char *msg, void *ctx);
REAP_API void reap_set_misuse_hook(reap_misuse_fn fn, void *ctx);

/*
 * The report hook receives diagnostics that are not failures of the
 * caller: error chains that nobody retrieved, the exit-time leak report.
 * NULL restores the default, which writes the text to stderr. Ownership:
 * borrows ctx until the hook is replaced; text is valid during the call
 * only. Thread safety: set it before threads use reap; the hook is called
 * from any thread, one report at a time.
 */
typedef void (*reap_report_fn)(const char *text, void *ctx);
REAP_API void reap_set_report_hook(reap_report_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* REAP_BASE_H */
