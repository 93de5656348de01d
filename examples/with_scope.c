/*
 * try/finally, `with` and contextlib.ExitStack, done with reap scopes.
 *
 * Python:
 *
 *     def copy(src, dst):
 *         with open(src, "rb") as f, open(dst, "wb") as g:
 *             g.write(f.read())
 *
 *     def open_all(paths):
 *         with ExitStack() as stack:
 *             files = [stack.enter_context(open(p)) for p in paths]
 *             return stack.pop_all(), files   # caller now owns them
 *
 * C with reap, below. Every exit path (error returns, break, the end of
 * the block) closes what was opened, newest first, and a failure while
 * closing is chained to the error that was already in flight.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reap.h"

/* try/finally: one scope for the function, closed on every path. */
static int copy_file(const char *src, const char *dst)
{
	char buf[4096];
	ssize_t n;
	int rc = 0;

	REAP_WITH_SCOPE(s, NULL, &rc) {
		int in = open(src, O_RDONLY | O_CLOEXEC), out;

		if (in < 0) {
			rc = reap_raisef(-errno, "open %s", src);
			break;
		}
		if ((rc = reap_defer_fd(s, in, NULL)) < 0) {
			close(in); /* a failed defer leaves the fd to us */
			break;
		}
		out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (out < 0) {
			rc = -errno;
			break; /* `in` is closed by the scope */
		}
		if ((rc = reap_defer_fd(s, out, NULL)) < 0) {
			close(out);
			break;
		}
		while ((n = read(in, buf, sizeof buf)) > 0) {
			if (write(out, buf, (size_t)n) != n) {
				rc = -EIO;
				break;
			}
		}
		if (n < 0)
			rc = -errno;
	} /* both descriptors are closed here, `out` first */
	return rc;
}

/* ExitStack: open every file or none; on success hand them all over. */
static int open_all(const char *const *paths, int n, FILE **files,
		    reap_scope *owner, reap_scope **kept)
{
	int rc = 0;

	REAP_WITH_SCOPE(stack, NULL, &rc) {
		for (int i = 0; i < n; i++) {
			if ((files[i] = fopen(paths[i], "r")) == NULL) {
				rc = -errno;
				break; /* the ones already open are closed */
			}
			if ((rc = reap_defer_file(stack, files[i], NULL)) < 0) {
				fclose(files[i]);
				break;
			}
		}
		if (rc == 0) /* success: move them out before the block closes */
			rc = reap_scope_pop_all(stack, owner, kept);
	}
	return rc;
}

int main(void)
{
	char src[] = "/tmp/reap-example-XXXXXX", dst[64];
	const char *paths[3], *bad[3];
	FILE *files[3];
	reap_scope *kept;
	int fd, rc;

	if ((fd = mkstemp(src)) < 0 || write(fd, "hello, scopes\n", 14) != 14)
		return 1;
	close(fd);
	snprintf(dst, sizeof dst, "%s.copy", src);

	rc = copy_file(src, dst);
	printf("copy_file(%s) -> %s\n", src, reap_errname(rc));
	rc = copy_file("/nonexistent/source", dst);
	printf("copy_file(/nonexistent/source) -> %s\n", reap_errname(rc));

	paths[0] = src, paths[1] = dst, paths[2] = "/dev/null";
	rc = open_all(paths, 3, files, NULL, &kept);
	printf("open_all(3 good paths) -> %s; %zu resources live, owned by the "
	       "caller's scope\n", reap_errname(rc), reap_ledger_count());
	if (rc == 0) {
		char line[64];

		if (fgets(line, sizeof line, files[1]) != NULL)
			printf("  read back from the copy: %s", line);
		rc = reap_scope_close(kept);
		printf("  closed them all -> %s\n", reap_errname(rc));
	}

	bad[0] = src, bad[1] = "/nonexistent/file", bad[2] = dst;
	rc = open_all(bad, 3, files, NULL, &kept);
	printf("open_all(with a bad path) -> %s; %zu resources live\n",
	       reap_errname(rc), reap_ledger_count());

	unlink(src);
	unlink(dst);
	return reap_ledger_count() == 0 ? 0 : 1;
}
