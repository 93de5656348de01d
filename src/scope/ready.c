/*
 * Ready cleanups for the common resources: fd, FILE *, heap memory and a
 * held mutex. Failures of close(), fclose() and unlock are raised as
 * errors with a message, chained over the error in flight.
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "../base/internal.h"

static void describe_fd(void *arg, char *buf, size_t len)
{
	snprintf(buf, len, "%d", (int)(intptr_t)arg);
}

static void describe_file(void *arg, char *buf, size_t len)
{
	snprintf(buf, len, "%p (fd %d)", arg, fileno((FILE *)arg));
}

static void describe_ptr(void *arg, char *buf, size_t len)
{
	snprintf(buf, len, "%p", arg);
}

reap_type reap_type_defer = REAP_TYPE_INIT("defer", NULL);
reap_type reap_type_fd = REAP_TYPE_INIT("fd", describe_fd);
reap_type reap_type_file = REAP_TYPE_INIT("FILE", describe_file);
reap_type reap_type_memory = REAP_TYPE_INIT("memory", describe_ptr);
reap_type reap_type_mutex = REAP_TYPE_INIT("mutex", describe_ptr);

static int close_fd(void *arg, const reap_error *inflight)
{
	int fd = (int)(intptr_t)arg;

	(void)inflight;
	/* On Linux the descriptor is released even when close() reports
	 * EINTR; retrying could close a descriptor reused by another thread. */
	if (close(fd) < 0 && errno != EINTR)
		return reap_raisef(-errno, "close(%d) failed", fd);
	return 0;
}

static int close_file(void *arg, const reap_error *inflight)
{
	int fd = fileno(arg);

	(void)inflight;
	if (fclose(arg) != 0)
		return reap_raisef(-errno, "fclose of the FILE on fd %d failed", fd);
	return 0;
}

static int unlock_mutex(void *arg, const reap_error *inflight)
{
	int rc = pthread_mutex_unlock(arg);

	(void)inflight;
	if (rc != 0)
		return reap_raisef(-rc, "pthread_mutex_unlock(%p) failed", arg);
	return 0;
}

int reap_defer_fd_at(reap_scope *s, int fd, reap_cleanup **h,
		     const reap_site *site)
{
	if (fd < 0)
		return -EBADF;
	return reap_defer_exit_at(s, &reap_type_fd, close_fd, (void *)(intptr_t)fd,
				  h, site);
}

int reap_defer_file_at(reap_scope *s, FILE *f, reap_cleanup **h,
		       const reap_site *site)
{
	if (f == NULL)
		return -EINVAL;
	return reap_defer_exit_at(s, &reap_type_file, close_file, f, h, site);
}

int reap_defer_free_at(reap_scope *s, void *p, reap_cleanup **h,
		       const reap_site *site)
{
	if (p == NULL)
		return -EINVAL;
	return reap_defer_at(s, &reap_type_memory, free, p, h, site);
}

int reap_defer_unlock_at(reap_scope *s, pthread_mutex_t *m, reap_cleanup **h,
			 const reap_site *site)
{
	if (m == NULL)
		return -EINVAL;
	return reap_defer_exit_at(s, &reap_type_mutex, unlock_mutex, m, h, site);
}
