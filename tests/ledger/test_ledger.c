/* The ledger: counts, per-type counters, reports, switching it off, and
 * the exit-time leak report (through helper_exit). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../runner.h"

static int runs;
static void bump(void *arg) { (void)arg; runs++; }

static reap_ledger_stat stat_of(const char *name)
{
	reap_ledger_stat st;

	if (reap_ledger_stats(name, &st) != 0)
		test_fail(__FILE__, __LINE__, "no stats for type \"%s\"", name);
	return st;
}

/* A report into a malloc'd string (freed by the caller). */
static char *report(unsigned flags, size_t *count)
{
	/* Static, not local: the stream keeps &mtext until fclose, and
	 * gcc's -Wdangling-pointer cannot see that it lets go then. */
	static char *mtext;
	static size_t mlen;
	char *text;
	size_t n;
	FILE *m = open_memstream(&mtext, &mlen);

	if (m == NULL)
		test_fail(__FILE__, __LINE__, "open_memstream failed");
	n = reap_ledger_report(m, flags);
	fclose(m);
	if (count != NULL)
		*count = n;
	text = mtext;
	mtext = NULL;
	return text;
}

/* The line of text that contains needle (static buffer), or fail. */
static const char *line_with(const char *text, const char *needle)
{
	static char buf[1024];
	const char *p = strstr(text, needle), *b, *e;

	if (p == NULL)
		test_fail(__FILE__, __LINE__, "no line contains \"%s\" in:\n---\n%s---",
			  needle, text);
	for (b = p; b > text && b[-1] != '\n'; b--)
		;
	for (e = p; *e != '\0' && *e != '\n'; e++)
		;
	snprintf(buf, sizeof buf, "%.*s", (int)(e - b), b);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Counts                                                               */

TEST(count_rises_and_falls_with_scopes_and_cleanups)
{
	reap_scope *s, *c;
	reap_cleanup *h1, *h2;
	int fd;

	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_EQ_SIZE(reap_ledger_count(), 1);
	ASSERT_OK(reap_defer(s, bump, NULL, &h1));
	ASSERT_EQ_SIZE(reap_ledger_count(), 2);
	ASSERT_OK(reap_defer(s, bump, NULL, &h2));
	ASSERT_EQ_SIZE(reap_ledger_count(), 3);
	ASSERT_OK(reap_scope_open(s, &c)); /* the child counts once */
	ASSERT_EQ_SIZE(reap_ledger_count(), 4);
	ASSERT_TRUE((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
	ASSERT_OK(reap_defer_fd(c, fd, NULL));
	ASSERT_EQ_SIZE(reap_ledger_count(), 5);
	ASSERT_NOT_NULL(reap_scope_alloc(c, 100)); /* memory is not a resource */
	ASSERT_OK(reap_scope_name(c, "child"));
	ASSERT_EQ_SIZE(reap_ledger_count(), 5);

	reap_cleanup_cancel(h1);
	ASSERT_EQ_SIZE(reap_ledger_count(), 4);
	runs = 0;
	ASSERT_EQ_INT(reap_cleanup_run(h2), 0);
	ASSERT_EQ_INT(runs, 1);
	ASSERT_EQ_SIZE(reap_ledger_count(), 3);
	ASSERT_EQ_INT(reap_scope_close(c), 0); /* the child and its fd */
	ASSERT_EQ_SIZE(reap_ledger_count(), 1);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
}

TEST(moves_do_not_change_the_count)
{
	reap_scope *a, *b, *c, *out;
	reap_cleanup *h;

	ASSERT_OK(reap_scope_open(NULL, &a));
	ASSERT_OK(reap_scope_open(NULL, &b));
	ASSERT_OK(reap_scope_open(a, &c));
	ASSERT_OK(reap_defer(a, bump, NULL, &h));
	ASSERT_EQ_SIZE(reap_ledger_count(), 4);
	ASSERT_OK(reap_cleanup_move(&h, b));
	ASSERT_EQ_SIZE(reap_ledger_count(), 4);
	ASSERT_OK(reap_scope_move(c, b));
	ASSERT_EQ_SIZE(reap_ledger_count(), 4);
	/* pop_all: a new scope holds what b held. */
	ASSERT_OK(reap_scope_pop_all(b, a, &out));
	ASSERT_EQ_SIZE(reap_ledger_count(), 5);
	ASSERT_EQ_INT(reap_scope_close(b), 0);
	ASSERT_EQ_SIZE(reap_ledger_count(), 4);
	ASSERT_EQ_INT(reap_scope_close(a), 0);
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
}

/* ------------------------------------------------------------------ */
/* Per-type counters                                                    */

TEST(stats_of_scopes_are_exact_on_one_thread)
{
	enum { K = 5 };
	reap_scope *s[K];
	reap_ledger_stat st0 = stat_of("scope"), st;

	for (int i = 0; i < K; i++)
		ASSERT_OK(reap_scope_open(NULL, &s[i]));
	st = stat_of("scope");
	ASSERT_EQ_STR(st.name, "scope");
	ASSERT_EQ_SIZE(st.created, st0.created + K);
	ASSERT_EQ_SIZE(st.closed, st0.closed);
	ASSERT_EQ_SIZE(st.live, K);
	ASSERT_EQ_SIZE(st.peak, K);
	for (int i = K - 1; i >= 0; i--)
		ASSERT_EQ_INT(reap_scope_close(s[i]), 0);
	st = stat_of("scope");
	ASSERT_EQ_SIZE(st.created, st0.created + K);
	ASSERT_EQ_SIZE(st.closed, st0.closed + K);
	ASSERT_EQ_SIZE(st.live, 0);
	ASSERT_EQ_SIZE(st.peak, K);
}

/* The same without looking in between: on a single thread the peak is
 * still exact, whether K is below or above the fold interval. */
static void peak_without_reads(int k)
{
	reap_scope *s[200];
	reap_ledger_stat st0 = stat_of("scope"), st;

	ASSERT_LE_INT(st0.peak, 1);
	for (int i = 0; i < k; i++)
		ASSERT_OK(reap_scope_open(NULL, &s[i]));
	for (int i = k - 1; i >= 0; i--)
		ASSERT_EQ_INT(reap_scope_close(s[i]), 0);
	st = stat_of("scope");
	ASSERT_EQ_SIZE(st.created, st0.created + (uint64_t)k);
	ASSERT_EQ_SIZE(st.closed, st0.closed + (uint64_t)k);
	ASSERT_EQ_SIZE(st.live, 0);
	ASSERT_EQ_SIZE(st.peak, k);
}

TEST(peak_after_opening_5_and_closing_them_is_5)
{
	peak_without_reads(5);
}

TEST(peak_after_opening_100_and_closing_them_is_100)
{
	peak_without_reads(100);
}

/* Two threads, one after the other: B opens two scopes (and folds its
 * counts), closes them (not folded yet); then A opens two. At most two
 * scopes were ever open at once, so the peak must not say more. */
static pthread_barrier_t peak_bar;

static void *peak_thread_b(void *arg)
{
	reap_scope *x, *y;
	reap_cleanup *h;

	(void)arg;
	if (reap_scope_open(NULL, &x) != 0 || reap_scope_open(NULL, &y) != 0)
		test_fail(__FILE__, __LINE__, "open failed");
	/* Enough registrations to fold the thread's counts at least once. */
	for (int i = 0; i < 100; i++) {
		if (reap_defer(x, bump, NULL, &h) != 0)
			test_fail(__FILE__, __LINE__, "defer failed");
		reap_cleanup_cancel(h);
	}
	if (reap_scope_close(y) != 0 || reap_scope_close(x) != 0)
		test_fail(__FILE__, __LINE__, "close failed");
	pthread_barrier_wait(&peak_bar); /* B's two are closed */
	pthread_barrier_wait(&peak_bar); /* A is done */
	return NULL;
}

TEST(peak_never_exceeds_what_was_open_at_once_across_threads)
{
	reap_scope *a1, *a2;
	reap_ledger_stat st;
	pthread_t b;

	ASSERT_EQ_INT(pthread_barrier_init(&peak_bar, NULL, 2), 0);
	ASSERT_EQ_INT(pthread_create(&b, NULL, peak_thread_b, NULL), 0);
	pthread_barrier_wait(&peak_bar);
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
	ASSERT_OK(reap_scope_open(NULL, &a1));
	ASSERT_OK(reap_scope_open(NULL, &a2));
	st = stat_of("scope");
	ASSERT_EQ_SIZE(st.live, 2);
	ASSERT_LE_INT(st.peak, 2);
	ASSERT_EQ_INT(reap_scope_close(a2), 0);
	ASSERT_EQ_INT(reap_scope_close(a1), 0);
	pthread_barrier_wait(&peak_bar);
	ASSERT_EQ_INT(pthread_join(b, NULL), 0);
	pthread_barrier_destroy(&peak_bar);
	st = stat_of("scope");
	ASSERT_EQ_SIZE(st.live, 0);
	ASSERT_EQ_SIZE(st.peak, 2);
}

TEST(stats_of_defers_and_fds_are_exact)
{
	reap_scope *s;
	reap_cleanup *h[4];
	reap_ledger_stat d0, d, f;
	int fd[3];

	/* The "fd" type is not known until its first use. */
	ASSERT_EQ_INT(reap_ledger_stats("fd", &f), -ENOENT);

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer(s, bump, NULL, &h[0]));
	d0 = stat_of("defer");
	for (int i = 1; i < 4; i++)
		ASSERT_OK(reap_defer(s, bump, NULL, &h[i]));
	for (int i = 0; i < 3; i++) {
		ASSERT_TRUE((fd[i] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
		ASSERT_OK(reap_defer_fd(s, fd[i], NULL));
	}
	d = stat_of("defer");
	ASSERT_EQ_SIZE(d.created, d0.created + 3);
	ASSERT_EQ_SIZE(d.live, d0.live + 3);
	ASSERT_EQ_SIZE(d.live, 4);
	f = stat_of("fd");
	ASSERT_EQ_STR(f.name, "fd");
	ASSERT_EQ_SIZE(f.created, 3);
	ASSERT_EQ_SIZE(f.closed, 0);
	ASSERT_EQ_SIZE(f.live, 3);
	ASSERT_EQ_SIZE(f.peak, 3);

	reap_cleanup_cancel(h[1]);
	ASSERT_EQ_INT(reap_cleanup_run(h[2]), 0);
	d = stat_of("defer");
	ASSERT_EQ_SIZE(d.closed, d0.closed + 2);
	ASSERT_EQ_SIZE(d.live, 2);
	ASSERT_EQ_SIZE(d.peak, 4);

	ASSERT_EQ_INT(reap_scope_close(s), 0);
	d = stat_of("defer");
	ASSERT_EQ_SIZE(d.created, d.closed);
	ASSERT_EQ_SIZE(d.live, 0);
	f = stat_of("fd");
	ASSERT_EQ_SIZE(f.created, 3);
	ASSERT_EQ_SIZE(f.closed, 3);
	ASSERT_EQ_SIZE(f.live, 0);
	ASSERT_EQ_SIZE(f.peak, 3);
}

TEST(stats_of_an_unknown_type_is_enoent)
{
	reap_ledger_stat st;

	memset(&st, 0x5a, sizeof st);
	ASSERT_EQ_INT(reap_ledger_stats("no-such-type", &st), -ENOENT);
	ASSERT_EQ_INT(reap_ledger_stats("", &st), -ENOENT);
	ASSERT_EQ_INT(reap_ledger_stats("scope ", &st), -ENOENT);
}

static reap_type stat_type = REAP_TYPE_INIT("stat-widget", NULL);

TEST(stats_all_lists_every_type_used)
{
	reap_ledger_stat all[64], few[1];
	reap_scope *s;
	size_t n, i;
	int seen_scope = 0, seen_defer = 0, seen_user = 0;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer(s, bump, NULL, NULL));
	ASSERT_OK(reap_defer_at(s, &stat_type, bump, NULL, NULL, REAP_SITE));
	ASSERT_OK(reap_defer_at(s, &stat_type, bump, NULL, NULL, REAP_SITE));

	n = reap_ledger_stats_all(all, 64);
	ASSERT_GE_INT(n, 3);
	ASSERT_LE_INT(n, 64);
	for (i = 0; i < n; i++) {
		reap_ledger_stat one;

		ASSERT_NOT_NULL(all[i].name);
		ASSERT_OK(reap_ledger_stats(all[i].name, &one));
		ASSERT_EQ_SIZE(one.created, all[i].created);
		ASSERT_EQ_SIZE(one.closed, all[i].closed);
		ASSERT_EQ_SIZE(one.live, all[i].live);
		ASSERT_EQ_SIZE(all[i].live, all[i].created - all[i].closed);
		if (strcmp(all[i].name, "scope") == 0) {
			seen_scope = 1;
			ASSERT_EQ_SIZE(all[i].live, 1);
		} else if (strcmp(all[i].name, "defer") == 0) {
			seen_defer = 1;
			ASSERT_EQ_SIZE(all[i].live, 1);
		} else if (strcmp(all[i].name, "stat-widget") == 0) {
			seen_user = 1;
			ASSERT_EQ_SIZE(all[i].created, 2);
			ASSERT_EQ_SIZE(all[i].live, 2);
		}
	}
	ASSERT_TRUE(seen_scope && seen_defer && seen_user);

	/* A short array gets the first entries; the count is the total. */
	ASSERT_EQ_SIZE(reap_ledger_stats_all(few, 1), n);
	ASSERT_EQ_STR(few[0].name, all[0].name);
	ASSERT_EQ_SIZE(reap_ledger_stats_all(NULL, 0), n);

	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

/* ------------------------------------------------------------------ */
/* Reports                                                              */

struct conn {
	int id;
	const char *peer;
};

static void conn_describe(void *arg, char *buf, size_t len)
{
	const struct conn *c = arg;

	snprintf(buf, len, "#%d to %s", c->id, c->peer);
}

static int conn_closes;
static int conn_close(void *arg, const reap_error *in)
{
	(void)arg;
	(void)in;
	conn_closes++;
	return 0;
}

static reap_type conn_type = REAP_TYPE_INIT("conn", conn_describe);

TEST(tree_report_shows_a_user_type_with_its_site_and_owner)
{
	reap_scope *server, *cs;
	struct conn c = {12, "db:5432"};
	char want[512], *text;
	const char *srv_line, *cs_line, *conn_line;
	size_t count;
	int line;

	ASSERT_OK(reap_scope_open(NULL, &server));
	ASSERT_OK(reap_scope_name(server, "server"));
	ASSERT_OK(reap_scope_open(server, &cs));
	ASSERT_OK(reap_scope_name(cs, "conn#%d", c.id));
	ASSERT_EQ_STR(reap_scope_get_name(cs), "conn#12");
	line = __LINE__ + 1;
	ASSERT_OK(reap_defer_exit(cs, &conn_type, conn_close, &c, NULL));

	text = report(REAP_REPORT_TREE, &count);
	ASSERT_EQ_SIZE(count, 3);
	ASSERT_EQ_SIZE(count, reap_ledger_count());
	ASSERT_CONTAINS(text, "root");
	srv_line = strstr(text, "server  scope");
	cs_line = strstr(text, "conn#12  scope");
	conn_line = strstr(text, "conn #12 to db:5432");
	ASSERT_NOT_NULL(srv_line);
	ASSERT_NOT_NULL(cs_line);
	ASSERT_NOT_NULL(conn_line);
	ASSERT_TRUE(srv_line < cs_line && cs_line < conn_line); /* nested */
	snprintf(want, sizeof want, "test_ledger.c:%d in "
		 "test_tree_report_shows_a_user_type_with_its_site_and_owner()", line);
	ASSERT_CONTAINS(line_with(text, "conn #12 to db:5432"), want);
	ASSERT_CONTAINS(line_with(text, "conn #12 to db:5432"), "T1");
	/* Deeper in the tree than its scope, which is deeper than server. */
	{
		size_t ind_srv = strspn(line_with(text, "server  scope"), " |`-");
		size_t ind_cs = strspn(line_with(text, "conn#12  scope"), " |`-");
		size_t ind_conn = strspn(line_with(text, "conn #12 to"), " |`-");

		ASSERT_LT_INT(ind_srv, ind_cs);
		ASSERT_LT_INT(ind_cs, ind_conn);
	}
	free(text);

	/* The owner path with the scopes' names. */
	text = report(REAP_REPORT_TREE | REAP_REPORT_LEAKS, NULL);
	ASSERT_CONTAINS(text, "owner: root/server/conn#12\n");
	ASSERT_CONTAINS(text, "Open conn #12 to db:5432");
	free(text);

	conn_closes = 0;
	ASSERT_EQ_INT(reap_scope_close(server), 0);
	ASSERT_EQ_INT(conn_closes, 1);
}

TEST(leak_report_lists_each_resource_and_a_summary_per_type)
{
	reap_scope *outer, *inner;
	char want[256], *text;
	size_t count;
	int fd[2], line_fd;

	ASSERT_OK(reap_scope_open(NULL, &outer));
	ASSERT_OK(reap_scope_name(outer, "outer"));
	ASSERT_OK(reap_scope_open(outer, &inner));
	ASSERT_OK(reap_scope_name(inner, "inner"));
	ASSERT_TRUE((fd[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
	ASSERT_TRUE((fd[1] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
	line_fd = __LINE__ + 1;
	ASSERT_OK(reap_defer_fd(inner, fd[0], NULL));
	ASSERT_OK(reap_defer_fd(inner, fd[1], NULL));
	ASSERT_OK(reap_defer(outer, bump, NULL, NULL));
	ASSERT_OK(reap_defer(inner, bump, NULL, NULL));

	text = report(REAP_REPORT_LEAKS, &count);
	ASSERT_EQ_SIZE(count, 6);
	ASSERT_CONTAINS(text, "ERROR: reap");
	ASSERT_CONTAINS(text, "SUMMARY: reap: 6 open resource(s)");
	ASSERT_CONTAINS(line_with(text, "SUMMARY: reap:"), ", 2 scope");
	ASSERT_CONTAINS(line_with(text, "SUMMARY: reap:"), ", 2 fd");
	ASSERT_CONTAINS(line_with(text, "SUMMARY: reap:"), ", 2 defer");
	snprintf(want, sizeof want, "Open fd %d", fd[0]);
	ASSERT_CONTAINS(text, want);
	snprintf(want, sizeof want, "test_ledger.c:%d in ", line_fd);
	ASSERT_CONTAINS(text, want);
	ASSERT_CONTAINS(text, "owner: root/outer/inner\n");
	ASSERT_CONTAINS(text, "owner: root/outer\n");
	free(text);

	ASSERT_EQ_INT(reap_scope_close(outer), 0);
	text = report(REAP_REPORT_LEAKS, &count);
	ASSERT_EQ_SIZE(count, 0);
	ASSERT_CONTAINS(text, "SUMMARY: reap: 0 open resource(s)");
	free(text);
}

/* A leaked scope is owned by its parent: its owner line names the
 * parent's path (LeakSanitizer's "allocated by"), never an empty path. */
TEST(leak_report_names_the_owner_of_a_leaked_scope)
{
	reap_scope *outer, *inner;
	char *text;
	const char *entry, *owner;

	ASSERT_OK(reap_scope_open(NULL, &outer));
	ASSERT_OK(reap_scope_name(outer, "outer"));
	ASSERT_OK(reap_scope_open(outer, &inner));
	ASSERT_OK(reap_scope_name(inner, "inner"));

	text = report(REAP_REPORT_LEAKS, NULL);
	entry = strstr(text, "Open scope \"inner\"");
	ASSERT_NOT_NULL(entry);
	owner = strstr(entry, "owner: ");
	ASSERT_NOT_NULL(owner);
	ASSERT_TRUE(strncmp(owner, "owner: root/outer", 17) == 0);
	entry = strstr(text, "Open scope \"outer\"");
	ASSERT_NOT_NULL(entry);
	owner = strstr(entry, "owner: ");
	ASSERT_TRUE(strncmp(owner, "owner: root\n", 12) == 0);
	free(text);
	ASSERT_EQ_INT(reap_scope_close(outer), 0);
}

TEST(stats_report_has_a_row_per_type)
{
	reap_scope *s;
	char *text;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer(s, bump, NULL, NULL));
	text = report(REAP_REPORT_STATS, NULL);
	ASSERT_CONTAINS(text, "created");
	ASSERT_CONTAINS(text, "peak");
	ASSERT_CONTAINS(line_with(text, "scope "), "1");
	ASSERT_CONTAINS(text, "defer ");
	free(text);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

static uint64_t fake_ns;
static uint64_t fake_clock(void *ctx)
{
	(void)ctx;
	return fake_ns;
}

/* The clock hook drives the ages in reports. */
TEST(ages_in_reports_follow_the_injected_clock)
{
	static struct conn c7 = {7, "x"};
	reap_scope *s;
	char *text;

	fake_ns = reap_now_ns() + 1000000000ull;
	reap_set_clock(fake_clock, NULL);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_scope_name(s, "aging"));
	ASSERT_OK(reap_defer_exit(s, &conn_type, conn_close, &c7, NULL));
	fake_ns += 2500000000ull; /* 2.5 s later */
	text = report(REAP_REPORT_TREE | REAP_REPORT_LEAKS, NULL);
	ASSERT_CONTAINS(line_with(text, "aging  scope"), "age 2.500s");
	ASSERT_CONTAINS(line_with(text, "conn #7 to x"), "age 2.500s");
	ASSERT_CONTAINS(line_with(text, "Open conn #7"), "2.500s old");
	ASSERT_CONTAINS(line_with(text, "Open scope \"aging\""), "2.500s old");
	free(text);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	reap_set_clock(NULL, NULL);
}

TEST(ledger_check_returns_the_count_and_prints_leaks)
{
	reap_scope *s;
	char *text = NULL;
	size_t len = 0;
	FILE *m;

	ASSERT_NOT_NULL(m = open_memstream(&text, &len));
	ASSERT_EQ_SIZE(reap_ledger_check(m), 0);
	fclose(m);
	ASSERT_TRUE(text == NULL || strstr(text, "ERROR: reap") == NULL);
	free(text);

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_scope_name(s, "checked"));
	ASSERT_OK(reap_defer(s, bump, NULL, NULL));
	text = NULL;
	ASSERT_NOT_NULL(m = open_memstream(&text, &len));
	ASSERT_EQ_SIZE(reap_ledger_check(m), 2);
	fclose(m);
	ASSERT_CONTAINS(text, "ERROR: reap");
	ASSERT_CONTAINS(text, "owner: root/checked");
	ASSERT_CONTAINS(text, "SUMMARY: reap: 2 open resource(s)");
	free(text);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_SIZE(reap_ledger_check(stderr), 0);
}

/* ------------------------------------------------------------------ */
/* Switching the ledger off at run time                                 */

TEST(resources_created_while_off_are_never_counted)
{
	reap_scope *s, *c;
	reap_cleanup *h_off, *h_on;
	reap_ledger_stat sc0 = stat_of("scope"), sc;
	char *text;
	size_t count;
	int fd;

	ASSERT_TRUE(reap_ledger_enabled());
	reap_ledger_enable(false);
	ASSERT_FALSE(reap_ledger_enabled());
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer(s, bump, NULL, &h_off));
	ASSERT_OK(reap_defer(s, bump, NULL, NULL));
	ASSERT_TRUE((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
	ASSERT_OK(reap_defer_fd(s, fd, NULL));
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
	sc = stat_of("scope");
	ASSERT_EQ_SIZE(sc.created, sc0.created);

	/* Back on: still not counted. */
	reap_ledger_enable(true);
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
	sc = stat_of("scope");
	ASSERT_EQ_SIZE(sc.created, sc0.created);

	/* New ones are. */
	ASSERT_OK(reap_scope_open(s, &c));
	ASSERT_OK(reap_defer(s, bump, NULL, &h_on));
	ASSERT_EQ_SIZE(reap_ledger_count(), 2);

	/* Releasing the uncounted ones takes nothing off. */
	reap_cleanup_cancel(h_off);
	ASSERT_EQ_SIZE(reap_ledger_count(), 2);
	reap_cleanup_cancel(h_on);
	ASSERT_EQ_SIZE(reap_ledger_count(), 1);

	text = report(REAP_REPORT_LEAKS, &count);
	ASSERT_EQ_SIZE(count, 1);
	free(text);

	runs = 0;
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(runs, 1);
	ASSERT_EQ_SIZE(reap_ledger_count(), 0); /* not negative: (size_t)-n */
	sc = stat_of("scope");
	ASSERT_EQ_SIZE(sc.created, sc0.created + 1);
	ASSERT_EQ_SIZE(sc.closed, sc0.closed + 1);
	ASSERT_EQ_SIZE(sc.live, 0);
	{
		reap_ledger_stat all[64];
		size_t n = reap_ledger_stats_all(all, 64);

		for (size_t i = 0; i < n && i < 64; i++) {
			ASSERT_TRUE(all[i].closed <= all[i].created);
			ASSERT_EQ_SIZE(all[i].live, 0);
		}
	}
}

TEST(resources_created_while_on_and_released_while_off_are_released)
{
	reap_scope *s;
	reap_cleanup *h;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer(s, bump, NULL, &h));
	ASSERT_OK(reap_defer(s, bump, NULL, NULL));
	ASSERT_EQ_SIZE(reap_ledger_count(), 3);
	reap_ledger_enable(false);
	reap_cleanup_cancel(h);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	reap_ledger_enable(true);
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
}

TEST(debug_ledger_off_switches_it_like_the_call)
{
	reap_scope *s;

	ASSERT_OK(reap_debug_set("ledger:off"));
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer(s, bump, NULL, NULL));
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
	ASSERT_OK(reap_debug_set(""));
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
}

/* A counted scope whose parent was opened while the ledger was off is
 * still "registered while on": the tree must show it and what it holds
 * ("neither counted nor reported" applies to the parent only). */
TEST(tree_report_shows_counted_scopes_under_an_uncounted_one)
{
	reap_scope *s, *c;
	char *text;
	size_t count;

	reap_ledger_enable(false);
	ASSERT_OK(reap_scope_open(NULL, &s));
	reap_ledger_enable(true);
	ASSERT_OK(reap_scope_open(s, &c));
	ASSERT_OK(reap_scope_name(c, "visible"));
	ASSERT_OK(reap_defer(c, bump, NULL, NULL));
	ASSERT_EQ_SIZE(reap_ledger_count(), 2);

	text = report(REAP_REPORT_TREE, &count);
	ASSERT_CONTAINS(text, "visible  scope");
	ASSERT_EQ_SIZE(count, 2);
	free(text);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

/* ------------------------------------------------------------------ */
/* The exit-time report, through helper_exit                            */

struct run {
	int status;
	char *out;
	int line_scope, line_fd, line_defer;
};

static struct run run_helper(const char *mode, const char *debug)
{
	static char path[4200], envbuf[128];
	char *argv[] = {path, (char *)mode, NULL};
	char *env[] = {envbuf, NULL};
	struct run r = {0};
	const char *l;

	snprintf(path, sizeof path, "%s/helper_exit", test_bindir());
	if (access(path, X_OK) != 0)
		test_fail(__FILE__, __LINE__, "helper %s is missing", path);
	/* The helper must not inherit a REAP_DEBUG of ours. */
	unsetenv("REAP_DEBUG");
	if (debug != NULL)
		snprintf(envbuf, sizeof envbuf, "REAP_DEBUG=%s", debug);
	r.status = test_run(argv, debug != NULL ? env : NULL, &r.out);
	if ((l = strstr(r.out, "helper_exit: lines")) != NULL)
		sscanf(l, "helper_exit: lines scope=%d fd=%d defer=%d", &r.line_scope,
		       &r.line_fd, &r.line_defer);
	return r;
}

static void expect_exit(const struct run *r, int code)
{
	if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != code)
		test_fail(__FILE__, __LINE__,
			  "helper_exit: wait status 0x%x, expected exit %d; output:"
			  "\n---\n%s---", r->status, code, r->out);
}

static void expect_leak_report(const struct run *r)
{
	char want[256];

	ASSERT_GT_INT(r->line_fd, 0);
	ASSERT_CONTAINS(r->out, "ERROR: reap");
	snprintf(want, sizeof want, "helper_exit.c:%d in main()", r->line_scope);
	ASSERT_CONTAINS(r->out, want);
	snprintf(want, sizeof want, "helper_exit.c:%d in main()", r->line_fd);
	ASSERT_CONTAINS(r->out, want);
	snprintf(want, sizeof want, "helper_exit.c:%d in main()", r->line_defer);
	ASSERT_CONTAINS(r->out, want);
	ASSERT_CONTAINS(r->out, "Open scope \"leaky-conn\"");
	ASSERT_CONTAINS(r->out, "Open fd ");
	ASSERT_CONTAINS(r->out, "owner: root/leaky-conn\n");
	ASSERT_CONTAINS(r->out, "SUMMARY: reap: 3 open resource(s)");
	ASSERT_CONTAINS(line_with(r->out, "SUMMARY: reap:"), "1 scope");
	ASSERT_CONTAINS(line_with(r->out, "SUMMARY: reap:"), "1 fd");
	ASSERT_CONTAINS(line_with(r->out, "SUMMARY: reap:"), "1 defer");
}

TEST(exit_report_under_debug_leaks)
{
	struct run r = run_helper("leak", "leaks");

	expect_exit(&r, 0);
	expect_leak_report(&r);
	/* The leaked cleanup still ran at exit. */
	ASSERT_CONTAINS(r.out, "helper_exit: leaked cleanup ran\n");
	ASSERT_CONTAINS(r.out, "helper_exit: fd closed at exit\n");
	free(r.out);
}

TEST(exit_report_under_debug_leaks_strict_sets_the_exit_status)
{
	struct run r = run_helper("leak", "leaks:strict");

	expect_exit(&r, REAP_LEAK_EXIT_CODE);
	expect_leak_report(&r);
	ASSERT_CONTAINS(r.out, "helper_exit: leaked cleanup ran\n");
	free(r.out);
}

TEST(no_exit_report_without_debug_leaks)
{
	struct run r = run_helper("leak", NULL);

	expect_exit(&r, 0);
	ASSERT_GT_INT(r.line_fd, 0);
	ASSERT_TRUE(strstr(r.out, "ERROR: reap") == NULL);
	ASSERT_TRUE(strstr(r.out, "SUMMARY: reap") == NULL);
	ASSERT_CONTAINS(r.out, "helper_exit: leaked cleanup ran\n");
	free(r.out);

	r = run_helper("leak", "");
	expect_exit(&r, 0);
	ASSERT_TRUE(strstr(r.out, "ERROR: reap") == NULL);
	free(r.out);
}

TEST(a_clean_exit_reports_nothing_even_when_strict)
{
	struct run r = run_helper("clean", "leaks:strict");

	expect_exit(&r, 0);
	ASSERT_CONTAINS(r.out, "helper_exit: clean\n");
	ASSERT_TRUE(strstr(r.out, "ERROR: reap") == NULL);
	ASSERT_TRUE(strstr(r.out, "SUMMARY: reap") == NULL);
	free(r.out);

	r = run_helper("clean", "leaks");
	expect_exit(&r, 0);
	ASSERT_TRUE(strstr(r.out, "ERROR: reap") == NULL);
	free(r.out);
}

/* exit() from a thread other than main still closes the process root. */
TEST(exit_from_another_thread_closes_the_process_root)
{
	struct run r = run_helper("exit-in-thread", "leaks");

	expect_exit(&r, 0);
	ASSERT_CONTAINS(r.out, "helper_exit: root cleanup ran\n");
	free(r.out);
}

/* REAP_DEBUG=ledger:off at start-up: nothing is counted, so nothing is
 * reported or fails the exit, even in strict mode. */
TEST(exit_with_the_ledger_off_reports_nothing)
{
	struct run r = run_helper("leak", "ledger:off,leaks:strict");

	expect_exit(&r, 0);
	ASSERT_TRUE(strstr(r.out, "ERROR: reap") == NULL);
	ASSERT_CONTAINS(r.out, "helper_exit: leaked cleanup ran\n");
	free(r.out);
}

/* A very deep owner chain: the tree report stays bounded (it says where it
 * stopped) and the leak list still names every scope. */
TEST(tree_report_of_a_very_deep_chain_is_bounded)
{
	reap_scope *top, *s;
	char *text;
	size_t count;

	ASSERT_OK(reap_scope_open(NULL, &top));
	s = top;
	for (int i = 0; i < 5000; i++)
		ASSERT_OK(reap_scope_open(s, &s));
	text = report(REAP_REPORT_TREE, &count);
	ASSERT_CONTAINS(text, "nested deeper than");
	free(text);
	text = report(REAP_REPORT_LEAKS, &count);
	ASSERT_EQ_SIZE(count, 5001);
	free(text);
	ASSERT_EQ_INT(reap_scope_close(top), 0);
}
