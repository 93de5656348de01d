/*
 * Error chains: each link is one allocation holding the link, its
 * message and its owner path. A chain is owned by whoever holds its
 * newest link; links never share causes, so freeing walks the chain once.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

reap_error *reap__error_new(int code, const reap_site *site, const char *msg,
			    const char *where, const reap_error *cause)
{
	size_t lm = msg ? strlen(msg) + 1 : 0, lw = where ? strlen(where) + 1 : 0;
	reap_error *e = reap_malloc(sizeof *e + lm + lw);
	char *p;

	if (e == NULL)
		return NULL;
	p = (char *)(e + 1);
	e->code = code;
	e->site = site;
	e->cause = cause;
	e->msg = NULL;
	e->where = NULL;
	if (msg != NULL) {
		memcpy(p, msg, lm);
		e->msg = p;
		p += lm;
	}
	if (where != NULL) {
		memcpy(p, where, lw);
		e->where = p;
	}
	return e;
}

size_t reap_error_count(const reap_error *e)
{
	size_t n = 0;

	for (; e != NULL; e = e->cause)
		n++;
	return n;
}

void reap_error_free(reap_error *e)
{
	while (e != NULL) {
		reap_error *cause = (reap_error *)e->cause;

		reap_free(e);
		e = cause;
	}
}

void reap_error_print(const reap_error *e, FILE *f)
{
	size_t i = 0, n = reap_error_count(e);

	if (n > 1)
		fprintf(f, "error chain of %zu, newest first:\n", n);
	for (; e != NULL; e = e->cause, i++) {
		fprintf(f, "%s%s (%s)", n > 1 ? "  " : "", reap_errname(e->code),
			reap_strerror(e->code));
		if (e->msg != NULL)
			fprintf(f, ": %s", e->msg);
		if (e->site != NULL)
			fprintf(f, "\n%s    raised at %s:%d in %s()", n > 1 ? "  " : "",
				e->site->file, e->site->line, e->site->func);
		if (e->where != NULL)
			fprintf(f, ", owner %s", e->where);
		fputc('\n', f);
		if (e->cause != NULL)
			fprintf(f, "  ... raised while this was in flight:\n");
	}
}
