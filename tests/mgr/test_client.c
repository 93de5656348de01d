/*
 * The manager's C client (reap/mgr.h): connecting, typed values through
 * every proxy, batches and pipelining, the cache, errors that come back
 * at the call, the manager going away, and the allocation-failure sweep.
 * Each test starts its own manager and ends with no child and no fd
 * left.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../runner.h"

#define SEC 1000000000ull
#define IN(ns) (reap_now_ns() + (ns))

/* A manager and a client in a fresh scope. */
static reap_scope *setup(reap_mgr **m, reap_mgr_client **c,
			 const reap_mgr_client_opts *o)
{
	reap_scope *s;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_mgr_start(s, NULL, m));
	ASSERT_OK(reap_mgr_connect(s, reap_mgr_address(*m), o, c));
	return s;
}

/* Send a raw command through c and return its reply's integer. */
static long long raw_int(reap_mgr_client *c, int argc, const char *const *argv)
{
	reap_mgr_value r;
	long long v;

	ASSERT_OK(reap_mgr_command(c, &r, argc, argv, NULL));
	ASSERT_EQ_INT(r.type, REAP_MGR_T_INT);
	v = r.i;
	reap_mgr_value_free(&r);
	return v;
}

static long long dbsize(reap_mgr_client *c)
{
	const char *a[] = {"DBSIZE"};

	return raw_int(c, 1, a);
}

TEST(dict_typed_roundtrip)
{
	reap_mgr_value arr[4], map[4], v, got;
	reap_mgr_client *c;
	reap_mgr_dict *d;
	reap_mgr *m;
	reap_scope *s;
	size_t n;
	int64_t now;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, NULL);
	ASSERT_GT_INT(reap_mgr_client_id(c), 0);
	ASSERT_OK(reap_mgr_dict_open(s, c, "cfg", NULL, &d));
	arr[0] = reap_mgr_int(-7);
	arr[1] = reap_mgr_str("x");
	arr[2] = reap_mgr_nil();
	arr[3] = reap_mgr_double(0.5);
	map[0] = reap_mgr_str("a");
	map[1] = reap_mgr_array(arr, 4);
	map[2] = reap_mgr_int(2);
	map[3] = reap_mgr_str("42"); /* bytes that look like an int */
	ASSERT_OK(reap_mgr_dict_set(d, "i", reap_mgr_int(INT64_MIN)));
	ASSERT_OK(reap_mgr_dict_set(d, "f", reap_mgr_double(0.1)));
	ASSERT_OK(reap_mgr_dict_set(d, "b", reap_mgr_bytes("a\0b", 3)));
	ASSERT_OK(reap_mgr_dict_set(d, "s", reap_mgr_str("42")));
	ASSERT_OK(reap_mgr_dict_set(d, "n", reap_mgr_nil()));
	ASSERT_OK(reap_mgr_dict_set(d, "m", reap_mgr_map(map, 2)));
	ASSERT_OK(reap_mgr_dict_get(d, "i", &got));
	ASSERT_EQ_INT(got.type, REAP_MGR_T_INT);
	ASSERT_EQ_INT(got.i, INT64_MIN);
	reap_mgr_value_free(&got);
	ASSERT_OK(reap_mgr_dict_get(d, "f", &got));
	ASSERT_EQ_INT(got.type, REAP_MGR_T_DOUBLE);
	ASSERT_TRUE(got.d == 0.1);
	reap_mgr_value_free(&got);
	ASSERT_OK(reap_mgr_dict_get(d, "b", &got));
	v = reap_mgr_bytes("a\0b", 3);
	ASSERT_TRUE(reap_mgr_value_equal(&got, &v));
	reap_mgr_value_free(&got);
	ASSERT_OK(reap_mgr_dict_get(d, "s", &got));
	ASSERT_EQ_INT(got.type, REAP_MGR_T_BYTES);
	ASSERT_EQ_STR((const char *)got.bytes.p, "42");
	reap_mgr_value_free(&got);
	ASSERT_OK(reap_mgr_dict_get(d, "n", &got));
	ASSERT_EQ_INT(got.type, REAP_MGR_T_NIL);
	ASSERT_OK(reap_mgr_dict_get(d, "m", &got));
	v = reap_mgr_map(map, 2);
	ASSERT_TRUE(reap_mgr_value_equal(&got, &v));
	reap_mgr_value_free(&got);
	ASSERT_EQ_INT(reap_mgr_dict_get(d, "nope", &got), -ENOENT);
	ASSERT_EQ_INT(got.type, REAP_MGR_T_NIL);
	ASSERT_OK(reap_mgr_dict_len(d, &n));
	ASSERT_EQ_SIZE(n, 6);
	ASSERT_OK(reap_mgr_dict_incr(d, "i", 1, &now));
	ASSERT_EQ_INT(now, INT64_MIN + 1);
	ASSERT_EQ_INT(reap_mgr_dict_incr(d, "s", 1, &now), -EINVAL);
	ASSERT_CONTAINS(reap_mgr_client_error(c), "not an integer");
	ASSERT_OK(reap_mgr_dict_del(d, "n"));
	ASSERT_EQ_INT(reap_mgr_dict_del(d, "n"), -ENOENT);
	ASSERT_OK(reap_mgr_dict_items(d, &got));
	ASSERT_EQ_INT(got.type, REAP_MGR_T_MAP);
	ASSERT_EQ_SIZE(got.array.n, 5);
	reap_mgr_value_free(&got);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

/* A user type: a point, encoded as "x,y"; refuses negative x. */
struct point {
	int x, y;
};
static int frees;

static int pt_encode(const void *obj, reap_mgr_buf *out, void *arg)
{
	const struct point *p = obj;
	char buf[32];
	int n;

	(void)arg;
	if (p->x < 0)
		return -EINVAL;
	n = snprintf(buf, sizeof buf, "%d,%d", p->x, p->y);
	return reap_mgr_buf_append(out, buf, (size_t)n);
}

static int pt_decode(const void *p, size_t len, void **obj, void *arg)
{
	struct point *pt;
	char buf[32];

	(void)arg;
	if (len >= sizeof buf)
		return -EINVAL;
	memcpy(buf, p, len);
	buf[len] = '\0';
	if ((pt = reap_malloc(sizeof *pt)) == NULL)
		return -ENOMEM;
	if (sscanf(buf, "%d,%d", &pt->x, &pt->y) != 2) {
		reap_free(pt);
		return -EINVAL;
	}
	*obj = pt;
	return 0;
}

static void pt_free(void *obj, void *arg)
{
	(void)arg;
	frees++;
	reap_free(obj);
}

static const reap_mgr_codec point_codec = {"point", pt_encode, pt_decode,
					   pt_free, NULL};

TEST(bad_values_fail_at_the_call)
{
	reap_mgr_value inner[2], outer[2], deep[40], got;
	struct point neg = {-1, 2};
	reap_mgr_client *c;
	reap_mgr_dict *d;
	reap_mgr *m;
	reap_scope *s;
	size_t n;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, NULL);
	ASSERT_OK(reap_mgr_dict_open(s, c, "d", NULL, &d));
	ASSERT_OK(reap_mgr_dict_set(d, "ok", reap_mgr_int(1)));
	/* A NULL string */
	ASSERT_EQ_INT(reap_mgr_dict_set(d, "k", reap_mgr_str(NULL)), -EINVAL);
	ASSERT_CONTAINS(reap_mgr_client_error(c), "NULL string");
	/* Bytes with a NULL pointer, deep in a map */
	inner[0] = reap_mgr_int(1);
	inner[1] = reap_mgr_bytes(NULL, 3);
	outer[0] = reap_mgr_str("k");
	outer[1] = reap_mgr_array(inner, 2);
	ASSERT_EQ_INT(reap_mgr_dict_set(d, "k", reap_mgr_map(outer, 1)), -EINVAL);
	ASSERT_CONTAINS(reap_mgr_client_error(c),
			"bytes with a NULL pointer and length 3, in element 1 of an array, in value 0 of a map");
	/* An object its codec refuses */
	ASSERT_EQ_INT(reap_mgr_dict_set(d, "k", reap_mgr_user(&point_codec, &neg)),
		      -EINVAL);
	ASSERT_CONTAINS(reap_mgr_client_error(c), "codec 'point' could not encode");
	/* A user value without a codec */
	ASSERT_EQ_INT(reap_mgr_dict_set(d, "k", reap_mgr_user(NULL, &neg)), -EINVAL);
	/* Too deep */
	for (int i = 0; i < 40; i++)
		deep[i] = i == 39 ? reap_mgr_int(0) : reap_mgr_array(&deep[i + 1], 1);
	ASSERT_EQ_INT(reap_mgr_dict_set(d, "k", deep[0]), -EINVAL);
	ASSERT_CONTAINS(reap_mgr_client_error(c), "nested deeper than 32");
	/* An error value, an unknown type */
	got.type = REAP_MGR_T_ERROR;
	got.bytes.p = "x";
	got.bytes.len = 1;
	ASSERT_EQ_INT(reap_mgr_dict_set(d, "k", got), -EINVAL);
	got.type = (reap_mgr_type)99;
	ASSERT_EQ_INT(reap_mgr_dict_set(d, "k", got), -EINVAL);
	/* Nothing was sent: the dict is as it was, the connection fine. */
	ASSERT_OK(reap_mgr_dict_len(d, &n));
	ASSERT_EQ_SIZE(n, 1);
	ASSERT_EQ_INT(reap_mgr_dict_get(d, "k", &got), -ENOENT);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

TEST(user_codec_roundtrip)
{
	struct point a = {3, 4}, b = {5, 6};
	reap_mgr_value arr[2], got;
	reap_mgr_client *c, *c2;
	reap_mgr_var *x, *x2;
	reap_mgr *m;
	reap_scope *s;
	const struct point *p;

	TEST_PROCS_BEGIN();
	frees = 0;
	s = setup(&m, &c, NULL);
	ASSERT_OK(reap_mgr_codec_add(c, &point_codec));
	ASSERT_EQ_INT(reap_mgr_codec_add(c, &point_codec), -EEXIST);
	ASSERT_OK(reap_mgr_var_open(s, c, "pts", NULL, &x));
	ASSERT_OK(reap_mgr_var_get(x, &got));
	ASSERT_EQ_INT(got.type, REAP_MGR_T_NIL); /* before the first set */
	arr[0] = reap_mgr_user(&point_codec, &a);
	arr[1] = reap_mgr_user(&point_codec, &b);
	ASSERT_OK(reap_mgr_var_set(x, reap_mgr_array(arr, 2)));
	ASSERT_OK(reap_mgr_var_get(x, &got));
	ASSERT_EQ_INT(got.type, REAP_MGR_T_ARRAY);
	ASSERT_EQ_SIZE(got.array.n, 2);
	ASSERT_EQ_INT(got.array.v[1].type, REAP_MGR_T_USER);
	p = got.array.v[1].user.obj;
	ASSERT_EQ_INT(p->x, 5);
	ASSERT_EQ_INT(p->y, 6);
	ASSERT_TRUE(reap_mgr_value_equal(&got, &(reap_mgr_value){
		.type = REAP_MGR_T_ARRAY, .array = {arr, 2}}));
	reap_mgr_value_free(&got);
	ASSERT_EQ_INT(frees, 2);
	/* A client without the codec cannot read it, and says why. */
	ASSERT_OK(reap_mgr_connect(s, reap_mgr_address(m), NULL, &c2));
	ASSERT_OK(reap_mgr_var_open(s, c2, "pts", NULL, &x2));
	ASSERT_EQ_INT(reap_mgr_var_get(x2, &got), -EPROTO);
	ASSERT_CONTAINS(reap_mgr_client_error(c2), "no codec registered for user type 'point'");
	ASSERT_EQ_INT(got.type, REAP_MGR_T_NIL);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

TEST(lists_and_queues)
{
	reap_mgr_client *c;
	reap_mgr_list *l;
	reap_mgr_queue *q;
	reap_mgr_value got;
	reap_mgr *m;
	reap_scope *s;
	uint64_t t0;
	size_t n;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, NULL);
	ASSERT_OK(reap_mgr_list_open(s, c, "l", NULL, &l));
	for (int i = 0; i < 5; i++)
		ASSERT_OK(reap_mgr_list_append(l, reap_mgr_int(i)));
	ASSERT_OK(reap_mgr_list_len(l, &n));
	ASSERT_EQ_SIZE(n, 5);
	ASSERT_OK(reap_mgr_list_range(l, 1, -2, &got));
	ASSERT_EQ_INT(got.type, REAP_MGR_T_ARRAY);
	ASSERT_EQ_SIZE(got.array.n, 3);
	ASSERT_EQ_INT(got.array.v[0].i, 1);
	ASSERT_EQ_INT(got.array.v[2].i, 3);
	reap_mgr_value_free(&got);
	ASSERT_OK(reap_mgr_list_pop(l, &got));
	ASSERT_EQ_INT(got.i, 4);
	ASSERT_OK(reap_mgr_list_shift(l, &got));
	ASSERT_EQ_INT(got.i, 0);
	/* The kind is checked: a list is not a dict. */
	ASSERT_EQ_INT(reap_mgr_dict_open(s, c, "l", NULL, &(reap_mgr_dict *){0}),
		      -EMEDIUMTYPE);
	ASSERT_CONTAINS(reap_mgr_client_error(c), "'l' holds a list, not a dict");
	ASSERT_OK(reap_mgr_queue_open(s, c, "q", NULL, &q));
	ASSERT_OK(reap_mgr_queue_put(q, reap_mgr_str("job")));
	ASSERT_OK(reap_mgr_queue_get(q, &got, IN(SEC)));
	ASSERT_EQ_STR((const char *)got.bytes.p, "job");
	reap_mgr_value_free(&got);
	/* Empty: a past deadline tries once; a near one times out. */
	ASSERT_EQ_INT(reap_mgr_queue_get(q, &got, 0), -ETIMEDOUT);
	t0 = reap_now_ns();
	ASSERT_EQ_INT(reap_mgr_queue_get(q, &got, IN(SEC / 5)), -ETIMEDOUT);
	ASSERT_GE_INT(reap_now_ns() - t0, SEC / 5);
	ASSERT_OK(reap_mgr_queue_len(q, &n));
	ASSERT_EQ_SIZE(n, 0);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

/* Kinds that share a representation stay apart: a dict does not open
 * as a namespace, a list as a queue, a var as a counter (nor the other
 * way), and the refused open takes no hold. Data made by plain Redis
 * commands opens as any kind of its representation. */
TEST(open_checks_the_kind)
{
	reap_mgr_client *c;
	reap_mgr *m;
	reap_scope *s, *in;
	void *p;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, NULL);
	ASSERT_OK(reap_scope_open(s, &in));
	ASSERT_OK(reap_mgr_dict_open(in, c, "d", NULL, &(reap_mgr_dict *){0}));
	ASSERT_OK(reap_mgr_ns_open(in, c, "n", NULL, &(reap_mgr_ns *){0}));
	ASSERT_OK(reap_mgr_list_open(in, c, "l", NULL, &(reap_mgr_list *){0}));
	ASSERT_OK(reap_mgr_queue_open(in, c, "q", NULL, &(reap_mgr_queue *){0}));
	ASSERT_OK(reap_mgr_counter_open(in, c, "k", NULL, &(reap_mgr_counter *){0}));
	ASSERT_OK(reap_mgr_var_open(in, c, "v", NULL, &(reap_mgr_var *){0}));
	{
		/* the ledger names a proxy by its kind */
		char *txt = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&txt, &len);

		ASSERT_NOT_NULL(f);
		reap_ledger_report(f, REAP_REPORT_TREE);
		fclose(f);
		ASSERT_CONTAINS(txt, "mgr namespace 'n' (shared)");
		ASSERT_CONTAINS(txt, "mgr queue 'q' (shared)");
		free(txt);
	}
	ASSERT_EQ_INT(reap_mgr_ns_open(in, c, "d", NULL, (reap_mgr_ns **)&p), -EMEDIUMTYPE);
	ASSERT_CONTAINS(reap_mgr_client_error(c), "'d' holds a dict, not a namespace");
	ASSERT_EQ_INT(reap_mgr_dict_open(in, c, "n", NULL, (reap_mgr_dict **)&p), -EMEDIUMTYPE);
	ASSERT_CONTAINS(reap_mgr_client_error(c), "'n' holds a namespace, not a dict");
	ASSERT_EQ_INT(reap_mgr_queue_open(in, c, "l", NULL, (reap_mgr_queue **)&p), -EMEDIUMTYPE);
	ASSERT_CONTAINS(reap_mgr_client_error(c), "'l' holds a list, not a queue");
	ASSERT_EQ_INT(reap_mgr_list_open(in, c, "q", NULL, (reap_mgr_list **)&p), -EMEDIUMTYPE);
	ASSERT_EQ_INT(reap_mgr_counter_open(in, c, "v", NULL, (reap_mgr_counter **)&p), -EMEDIUMTYPE);
	ASSERT_CONTAINS(reap_mgr_client_error(c), "'v' holds a value, not a counter");
	ASSERT_EQ_INT(reap_mgr_var_open(in, c, "k", NULL, (reap_mgr_var **)&p), -EMEDIUMTYPE);
	ASSERT_EQ_INT(reap_mgr_lock_open(in, c, "d", NULL, (reap_mgr_lock **)&p), -EMEDIUMTYPE);
	ASSERT_CONTAINS(reap_mgr_client_error(c), "'d' holds a dict, not a lock");
	/* NOCREATE reports the kind too, not only the absence. */
	ASSERT_EQ_INT(reap_mgr_ns_open(in, c, "d", &(reap_mgr_obj_opts){.flags = REAP_MGR_NOCREATE},
				       (reap_mgr_ns **)&p), -EMEDIUMTYPE);
	/* Plain Redis data: a hash, a list and a string. */
	ASSERT_EQ_INT(raw_int(c, 4, (const char *[]){"HSET", "h", "f", "1"}), 1);
	ASSERT_EQ_INT(raw_int(c, 3, (const char *[]){"RPUSH", "r", "x"}), 1);
	ASSERT_EQ_INT(raw_int(c, 3, (const char *[]){"INCRBY", "i", "5"}), 5);
	ASSERT_OK(reap_mgr_dict_open(in, c, "h", NULL, &(reap_mgr_dict *){0}));
	ASSERT_OK(reap_mgr_ns_open(in, c, "h", NULL, &(reap_mgr_ns *){0}));
	ASSERT_OK(reap_mgr_list_open(in, c, "r", NULL, &(reap_mgr_list *){0}));
	ASSERT_OK(reap_mgr_queue_open(in, c, "r", NULL, &(reap_mgr_queue *){0}));
	ASSERT_OK(reap_mgr_counter_open(in, c, "i", NULL, &(reap_mgr_counter *){0}));
	ASSERT_OK(reap_mgr_var_open(in, c, "i", NULL, &(reap_mgr_var *){0}));
	ASSERT_EQ_INT(reap_mgr_lock_open(in, c, "h", NULL, (reap_mgr_lock **)&p), -EMEDIUMTYPE);
	ASSERT_EQ_INT(dbsize(c), 9);
	/* The shared objects made here go with their last hold: a refused
	 * open that had taken one would keep its key. The plain keys stay. */
	ASSERT_OK(reap_scope_close(in));
	ASSERT_EQ_INT(dbsize(c), 3);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

/* A child that connects, puts one item after 100 ms, and exits. */
static const char *child_addr;
static int put_later(void *arg)
{
	reap_mgr_client *c;
	reap_mgr_queue *q;
	reap_scope *s;
	int rc;

	(void)arg;
	if (reap_scope_open(NULL, &s) != 0)
		return 3;
	if (reap_mgr_connect(s, child_addr, NULL, &c) < 0 ||
	    reap_mgr_queue_open(s, c, "q", NULL, &q) < 0)
		rc = 1;
	else {
		usleep(100000);
		rc = reap_mgr_queue_put(q, reap_mgr_int(99)) < 0 ? 2 : 0;
	}
	return reap_scope_close(s) == 0 ? rc : 4;
}

TEST(queue_get_waits_for_another_process)
{
	reap_mgr_client *c;
	reap_mgr_queue *q;
	reap_mgr_value got;
	reap_mgr *m;
	reap_scope *s;
	pid_t pid;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, NULL);
	ASSERT_OK(reap_mgr_queue_open(s, c, "q", NULL, &q));
	child_addr = reap_mgr_address(m);
	pid = test_fork(put_later, NULL);
	ASSERT_OK(reap_mgr_queue_get(q, &got, IN(5 * SEC)));
	ASSERT_EQ_INT(got.i, 99);
	ASSERT_EQ_INT(test_wait(pid), 0);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

TEST(counters_and_vars)
{
	reap_mgr_client *c;
	reap_mgr_counter *k, *k2;
	reap_mgr_var *x;
	reap_mgr_value got;
	reap_mgr *m;
	reap_scope *s;
	int64_t now;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, NULL);
	ASSERT_OK(reap_mgr_counter_open(s, c, "k", &(reap_mgr_obj_opts){.init = 10}, &k));
	ASSERT_OK(reap_mgr_counter_add(k, 5, &now));
	ASSERT_EQ_INT(now, 15);
	ASSERT_OK(reap_mgr_counter_add(k, -20, NULL));
	ASSERT_OK(reap_mgr_counter_get(k, &now));
	ASSERT_EQ_INT(now, -5);
	/* Opening it again does not reset it. */
	ASSERT_OK(reap_mgr_counter_open(s, c, "k", &(reap_mgr_obj_opts){.init = 77}, &k2));
	ASSERT_OK(reap_mgr_counter_get(k2, &now));
	ASSERT_EQ_INT(now, -5);
	ASSERT_OK(reap_mgr_counter_set(k, INT64_MAX));
	ASSERT_EQ_INT(reap_mgr_counter_add(k, 1, &now), -ERANGE);
	ASSERT_OK(reap_mgr_var_open(s, c, "x", NULL, &x));
	ASSERT_OK(reap_mgr_var_set(x, reap_mgr_double(-0.0)));
	ASSERT_OK(reap_mgr_var_get(x, &got));
	ASSERT_EQ_INT(got.type, REAP_MGR_T_DOUBLE);
	ASSERT_TRUE(got.d == 0 && signbit(got.d));
	ASSERT_OK(reap_mgr_var_set(x, reap_mgr_double(1e300)));
	ASSERT_OK(reap_mgr_var_get(x, &got));
	ASSERT_TRUE(got.d == 1e300);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

TEST(open_flags_and_lifetimes)
{
	reap_mgr_client *c, *c2;
	reap_mgr_dict *d, *d2;
	reap_scope *s, *s2, *inner;
	reap_mgr *m;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, NULL);
	ASSERT_OK(reap_scope_open(NULL, &s2));
	ASSERT_OK(reap_mgr_connect(s2, reap_mgr_address(m), NULL, &c2));
	ASSERT_EQ_INT(reap_mgr_dict_open(s, c, "d", &(reap_mgr_obj_opts){
				.flags = REAP_MGR_NOCREATE}, &d), -ENOENT);
	ASSERT_EQ_INT(reap_mgr_dict_open(s, c, "", NULL, &d), -EINVAL);
	ASSERT_EQ_INT(reap_mgr_dict_open(s, c, "d", &(reap_mgr_obj_opts){
				.lifetime = (reap_mgr_lifetime)7}, &d), -EINVAL);
	/* shared: held by each proxy, gone with the last */
	ASSERT_OK(reap_scope_open(s, &inner));
	ASSERT_OK(reap_mgr_dict_open(inner, c, "d", &(reap_mgr_obj_opts){
				.flags = REAP_MGR_EXCL}, &d));
	ASSERT_EQ_INT(reap_mgr_dict_open(s, c2, "d", &(reap_mgr_obj_opts){
				.flags = REAP_MGR_EXCL}, &d2), -EEXIST);
	ASSERT_OK(reap_mgr_dict_open(s2, c2, "d", NULL, &d2));
	ASSERT_OK(reap_mgr_dict_set(d, "a", reap_mgr_int(1)));
	ASSERT_OK(reap_scope_close(inner));
	ASSERT_EQ_INT(dbsize(c), 1);
	ASSERT_OK(reap_mgr_dict_open(s, c, "sess", &(reap_mgr_obj_opts){
				.lifetime = REAP_MGR_SESSION}, &d));
	ASSERT_OK(reap_mgr_dict_open(s, c2, "pers", &(reap_mgr_obj_opts){
				.lifetime = REAP_MGR_PERSISTENT}, &d));
	ASSERT_EQ_INT(dbsize(c), 3);
	/* c2's close drops its hold on "d" (the last): "d" goes; "pers" stays */
	ASSERT_OK(reap_scope_close(s2));
	ASSERT_EQ_INT(dbsize(c), 2);
	ASSERT_OK(reap_mgr_delete(c, "pers"));
	ASSERT_EQ_INT(reap_mgr_delete(c, "pers"), -ENOENT);
	/* c's session object goes with its session */
	reap_mgr_disconnect(c);
	ASSERT_EQ_INT(reap_mgr_dict_set(d, "x", reap_mgr_int(1)), -ENOTCONN);
	ASSERT_OK(reap_mgr_connect(s, reap_mgr_address(m), NULL, &c2));
	for (int i = 0; i < 100 && dbsize(c2) != 0; i++)
		usleep(10000);
	ASSERT_EQ_INT(dbsize(c2), 0);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

/* A child that takes the lock "L" and is then killed holding it. */
static int hold_lock(void *arg)
{
	reap_mgr_client *c;
	reap_mgr_lock *l;

	(void)arg;
	if (reap_mgr_connect(NULL, child_addr, NULL, &c) < 0 ||
	    reap_mgr_lock_open(NULL, c, "L", NULL, &l) < 0 ||
	    reap_mgr_lock_acquire(l, REAP_FOREVER) != 0)
		return 1;
	raise(SIGKILL);
	return 2;
}

TEST(locks_semaphores_events)
{
	reap_mgr_client *c, *c2;
	reap_mgr_lock *l, *l2;
	reap_mgr_sem *sem;
	reap_mgr_event *e;
	reap_mgr *m;
	reap_scope *s;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, NULL);
	ASSERT_OK(reap_mgr_connect(s, reap_mgr_address(m), NULL, &c2));
	ASSERT_OK(reap_mgr_lock_open(s, c, "L", NULL, &l));
	ASSERT_OK(reap_mgr_lock_open(s, c2, "L", NULL, &l2));
	ASSERT_EQ_INT(reap_mgr_lock_release(l), -EPERM);
	ASSERT_OK(reap_mgr_lock_acquire(l, REAP_FOREVER));
	ASSERT_EQ_INT(reap_mgr_lock_acquire(l2, IN(SEC / 10)), -ETIMEDOUT);
	ASSERT_OK(reap_mgr_lock_release(l));
	ASSERT_OK(reap_mgr_lock_acquire(l2, 0));
	ASSERT_OK(reap_mgr_lock_release(l2));
	/* A holder that dies: the next acquirer is told, once. */
	child_addr = reap_mgr_address(m);
	ASSERT_EQ_INT(test_wait(test_fork(hold_lock, NULL)), 128 + SIGKILL);
	ASSERT_EQ_INT(reap_mgr_lock_acquire(l, IN(5 * SEC)), REAP_MGR_OWNERDIED);
	ASSERT_OK(reap_mgr_lock_release(l));
	ASSERT_OK(reap_mgr_lock_acquire(l, 0));
	ASSERT_OK(reap_mgr_lock_release(l));

	ASSERT_OK(reap_mgr_sem_open(s, c, "S", &(reap_mgr_obj_opts){.n = 2}, &sem));
	ASSERT_OK(reap_mgr_sem_acquire(sem, 0));
	ASSERT_OK(reap_mgr_sem_acquire(sem, 0));
	ASSERT_EQ_INT(reap_mgr_sem_acquire(sem, IN(SEC / 20)), -ETIMEDOUT);
	ASSERT_OK(reap_mgr_sem_release(sem));
	ASSERT_OK(reap_mgr_sem_acquire(sem, 0));

	ASSERT_OK(reap_mgr_event_open(s, c, "E", NULL, &e));
	ASSERT_EQ_INT(reap_mgr_event_wait(e, IN(SEC / 20)), -ETIMEDOUT);
	ASSERT_OK(reap_mgr_event_set(e));
	ASSERT_OK(reap_mgr_event_wait(e, IN(SEC)));
	ASSERT_OK(reap_mgr_event_wait(e, 0));
	ASSERT_OK(reap_mgr_event_clear(e));
	ASSERT_EQ_INT(reap_mgr_event_wait(e, 0), -ETIMEDOUT);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

TEST(batches_and_pipelining)
{
	const char *fields[16];
	char names[16][16];
	reap_mgr_value vals[16], got[16], one, wrong;
	reap_mgr_client *c;
	reap_mgr_dict *d;
	reap_mgr_list *l;
	reap_mgr *m;
	reap_scope *s;
	size_t failed, n = 0;
	int64_t sum = 0;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, NULL);
	ASSERT_OK(reap_mgr_dict_open(s, c, "d", NULL, &d));
	ASSERT_OK(reap_mgr_list_open(s, c, "l", NULL, &l));
	for (int i = 0; i < 16; i++) {
		snprintf(names[i], sizeof names[i], "f%d", i);
		fields[i] = names[i];
		vals[i] = reap_mgr_int(i * 10);
	}
	/* 16 sets, then 16 gets, one round trip each */
	reap_mgr_batch_begin(c);
	for (int i = 0; i < 16; i++)
		ASSERT_OK(reap_mgr_dict_set(d, fields[i], vals[i]));
	ASSERT_OK(reap_mgr_batch_exec(c, &failed));
	ASSERT_EQ_SIZE(failed, 0);
	reap_mgr_batch_begin(c);
	for (int i = 0; i < 16; i++)
		ASSERT_OK(reap_mgr_dict_get(d, fields[i], &got[i]));
	ASSERT_OK(reap_mgr_dict_get(d, "missing", &one));
	ASSERT_OK(reap_mgr_list_append(l, reap_mgr_int(5)));
	ASSERT_OK(reap_mgr_dict_incr(d, "f1", 1, &sum));
	ASSERT_OK(reap_mgr_list_len(l, &n));
	/* a failing call in the middle: the rest still run */
	ASSERT_OK(reap_mgr_dict_incr(d, "f2", 1, NULL));
	ASSERT_OK(reap_mgr_command(c, &wrong, 2, (const char *[]){"LPOP", "d"}, NULL));
	ASSERT_EQ_INT(got[0].type, REAP_MGR_T_NIL); /* not yet */
	ASSERT_OK(reap_mgr_batch_exec(c, &failed));
	ASSERT_EQ_SIZE(failed, 0); /* a raw call's error reply is its value */
	ASSERT_EQ_INT(wrong.type, REAP_MGR_T_ERROR);
	ASSERT_CONTAINS((const char *)wrong.bytes.p, "WRONGTYPE");
	reap_mgr_value_free(&wrong);
	for (int i = 0; i < 16; i++) {
		ASSERT_EQ_INT(got[i].type, REAP_MGR_T_INT);
		ASSERT_EQ_INT(got[i].i, i * 10);
	}
	ASSERT_EQ_INT(one.type, REAP_MGR_T_NIL);
	ASSERT_EQ_INT(sum, 11);
	ASSERT_EQ_SIZE(n, 1);
	/* failures are counted, the first one returned */
	reap_mgr_batch_begin(c);
	ASSERT_OK(reap_mgr_dict_set(d, "a", reap_mgr_int(1)));
	ASSERT_OK(reap_mgr_list_append((reap_mgr_list *)d, reap_mgr_int(1)));
	ASSERT_OK(reap_mgr_dict_set(d, "b", reap_mgr_int(2)));
	ASSERT_EQ_INT(reap_mgr_dict_set(d, "bad", reap_mgr_str(NULL)), -EINVAL);
	ASSERT_EQ_INT(reap_mgr_batch_exec(c, &failed), -EMEDIUMTYPE);
	ASSERT_EQ_SIZE(failed, 1);
	ASSERT_OK(reap_mgr_dict_mget(d, 2, (const char *[]){"a", "b"}, got));
	ASSERT_EQ_INT(got[0].i + got[1].i, 3);
	/* two batches in flight, then a plain call that waits for both */
	reap_mgr_batch_begin(c);
	ASSERT_OK(reap_mgr_dict_mset(d, 16, fields, vals));
	ASSERT_OK(reap_mgr_batch_send(c));
	reap_mgr_batch_begin(c);
	ASSERT_OK(reap_mgr_dict_mget(d, 16, fields, got));
	ASSERT_OK(reap_mgr_batch_send(c));
	ASSERT_OK(reap_mgr_dict_len(d, &n));
	ASSERT_EQ_SIZE(n, 18);
	ASSERT_EQ_INT(got[15].i, 150);
	ASSERT_OK(reap_mgr_batch_wait(c, &failed));
	ASSERT_EQ_SIZE(failed, 0);
	/* MGET / MSET on plain keys */
	ASSERT_OK(reap_mgr_mset(c, 3, (const char *[]){"x", "y", "z"}, vals));
	ASSERT_OK(reap_mgr_mget(c, 4, (const char *[]){"x", "y", "nope", "z"}, got));
	ASSERT_EQ_INT(got[1].i, 10);
	ASSERT_EQ_INT(got[2].type, REAP_MGR_T_NIL);
	ASSERT_EQ_INT(got[3].i, 20);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

/* The manager SIGKILLed: calls fail within 1 s, never hang. */
static reap_mgr *victim;
static void *kill_later(void *arg)
{
	(void)arg;
	usleep(200000);
	reap_proc_signal(reap_mgr_proc(victim), SIGKILL);
	return NULL;
}

TEST(manager_killed_calls_fail_fast)
{
	reap_mgr_client *c;
	reap_mgr_queue *q;
	reap_mgr_value got;
	reap_mgr *m;
	reap_scope *s;
	pthread_t t;
	uint64_t t0;
	int rc;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, NULL);
	ASSERT_OK(reap_mgr_queue_open(s, c, "q", NULL, &q));
	victim = m;
	ASSERT_EQ_INT(pthread_create(&t, NULL, kill_later, NULL), 0);
	t0 = reap_now_ns();
	rc = reap_mgr_queue_get(q, &got, REAP_FOREVER);
	ASSERT_EQ_INT(rc, -ECONNRESET);
	ASSERT_LT_INT(reap_now_ns() - t0, SEC);
	ASSERT_CONTAINS(reap_mgr_client_error(c), "connection to the manager lost");
	ASSERT_EQ_INT(pthread_join(t, NULL), 0);
	ASSERT_EQ_INT(reap_mgr_queue_put(q, reap_mgr_int(1)), -ENOTCONN);
	/* refused, or reset when it raced with the dying manager's exit */
	rc = reap_mgr_connect(s, reap_mgr_address(m), NULL, &c);
	ASSERT_TRUE(rc == -ECONNREFUSED || rc == -ECONNRESET);
	/* the manager's scope reports it died by SIGKILL; that is expected */
	reap_scope_close(s);
	test_reports_clear();
	TEST_PROCS_END();
}

TEST(auth_and_bad_addresses)
{
	static const char key[] = "0123456789abcdef";
	reap_mgr_client_opts good = {.key = key, .key_len = 16};
	reap_mgr_client_opts bad = {.key = "wrong", .key_len = 5};
	reap_mgr_client *c;
	reap_scope *s;
	reap_mgr *m;
	char addr[300];

	TEST_PROCS_BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_mgr_start(s, &(reap_mgr_opts){.key = key, .key_len = 16}, &m));
	ASSERT_EQ_INT(reap_mgr_connect(s, reap_mgr_address(m), &bad, &c), -EACCES);
	ASSERT_EQ_INT(reap_mgr_connect(s, reap_mgr_address(m), NULL, &c), -EACCES);
	ASSERT_OK(reap_mgr_connect(s, reap_mgr_address(m), &good, &c));
	ASSERT_EQ_INT(dbsize(c), 0);
	/* the path form works too */
	ASSERT_OK(reap_mgr_connect(s, reap_mgr_address(m) + 5, &good, &c));
	snprintf(addr, sizeof addr, "%s.nope", reap_mgr_address(m));
	ASSERT_EQ_INT(reap_mgr_connect(s, addr, NULL, &c), -ENOENT);
	ASSERT_EQ_INT(reap_mgr_connect(s, "http://x", NULL, &c), -EINVAL);
	ASSERT_EQ_INT(reap_mgr_connect(s, "tcp:localhost", NULL, &c), -EINVAL);
	ASSERT_EQ_INT(reap_mgr_connect(s, "tcp:127.0.0.1:1", NULL, &c), -ECONNREFUSED);
	ASSERT_EQ_INT(reap_mgr_connect(s, "unix:", NULL, &c), -EINVAL);
	ASSERT_EQ_INT(reap_mgr_connect(s, "/x", &(reap_mgr_client_opts){.key_len = 3}, &c),
		      -EINVAL);
	ASSERT_EQ_INT(reap_mgr_connect(s, reap_mgr_address(m), &(reap_mgr_client_opts){
				.key = key, .key_len = 16, .name = "has space"}, &c), -EINVAL);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

/* In a loop task, calls suspend the task, not the loop. */
static int ticks;
static int ticker(void *arg, void **result)
{
	(void)result;
	(void)arg;
	for (int i = 0; i < 5; i++) {
		if (reap_sleep(20000000) < 0)
			break;
		ticks++;
	}
	return 0;
}

static int task_main(void *arg, void **result)
{
	reap_scope *s = reap_scope_current();
	reap_mgr_client *c;
	reap_mgr_queue *q;
	reap_mgr_value got;
	reap_group *g;
	int rc;

	ASSERT_OK(reap_mgr_connect(s, arg, NULL, &c));
	ASSERT_OK(reap_mgr_queue_open(s, c, "q", NULL, &q));
	ASSERT_OK(reap_group_open(s, &g));
	ASSERT_OK(reap_task_spawn(g, ticker, NULL, NULL));
	rc = reap_mgr_queue_get(q, &got, IN(SEC / 5));
	ASSERT_EQ_INT(rc, -ETIMEDOUT);
	ASSERT_EQ_INT(ticks, 5); /* the loop ran while the task waited */
	ASSERT_OK(reap_mgr_queue_put(q, reap_mgr_int(1)));
	ASSERT_OK(reap_mgr_queue_get(q, &got, IN(SEC)));
	ASSERT_EQ_INT(got.i, 1);
	(void)result;
	return 0;
}

TEST(client_in_a_loop_task)
{
	reap_loop *loop;
	reap_scope *s;
	reap_mgr *m;

	TEST_PROCS_BEGIN();
	ticks = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_mgr_start(s, NULL, &m));
	ASSERT_OK(reap_loop_create(s, &loop));
	ASSERT_OK(reap_loop_run(loop, task_main, (void *)reap_mgr_address(m), NULL));
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

static void nop_cleanup(void *arg)
{
	(void)arg;
}

#define SENTINEL ((void *)(uintptr_t)0x5e5e)

/* One call under the sweep: t owns what it makes, c is a client
 * connected before the count (NULL for the connect sweep), *out starts
 * as SENTINEL and is set only on success. */
typedef int (*swept_fn)(reap_scope *t, const char *addr, reap_mgr_client *c,
			void **out);

/*
 * Fail the 1st, 2nd, ... acquisition of call until it succeeds: each
 * failure must return -ENOMEM, leave *out untouched and leave the ledger
 * and reap's allocator as they were. Each round runs in a fresh scope
 * (and, with connect set, on a fresh client, so that a failure cannot
 * spoil the next round). check, if given, runs on the success. Returns
 * the number of failures seen.
 */
static int sweep(const char *addr, int connect, swept_fn call,
		 void (*check)(void *out))
{
	reap_mgr_client *obs;
	reap_scope *os;
	int failures = 0;

	/* Start from an empty manager: the last sweep's objects go with
	 * its client's session, which the manager closes when it sees the
	 * disconnect. */
	ASSERT_OK(reap_scope_open(NULL, &os));
	ASSERT_OK(reap_mgr_connect(os, addr, NULL, &obs));
	for (int i = 0; dbsize(obs) != 0; i++) {
		ASSERT_LT_INT(i, 5000);
		reap_sleep(1000000);
	}
	ASSERT_OK(reap_scope_close(os));
	for (long n = 1;; n++) {
		reap_mgr_client *c = NULL;
		struct test_snap snap;
		void *out = SENTINEL;
		reap_scope *t;
		long seen;
		int rc;

		ASSERT_LT_INT(n, 400);
		ASSERT_OK(reap_scope_open(NULL, &t));
		/* t's cleanup chunk, which a failed call may leave grown. */
		ASSERT_OK(reap_defer(t, nop_cleanup, NULL, NULL));
		if (connect)
			ASSERT_OK(reap_mgr_connect(t, addr, NULL, &c));
		snap = test_snap();
		reap_fault_alloc(n);
		rc = call(t, addr, c, &out);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_NE_PTR(out, SENTINEL);
			if (check != NULL)
				check(out);
			ASSERT_OK(reap_scope_close(t));
			return failures;
		}
		ASSERT_GE_INT(seen, n);
		if (rc != -ENOMEM)
			test_fail(__FILE__, __LINE__, "n=%ld: returned %d (%s)", n,
				  rc, reap_errname(rc));
		ASSERT_EQ_PTR(out, SENTINEL);
		ASSERT_UNCHANGED(snap);
		/* Nothing left in the manager either: no object and no hold
		 * made by the failed call. (A failure that cost the connection
		 * leaves nothing there by construction: the session, and all
		 * it made or held, ends with it.) */
		if (c != NULL) {
			reap_mgr_value r;

			if (reap_mgr_command(c, &r, 1, (const char *[]){"DBSIZE"},
					     NULL) == 0) {
				ASSERT_EQ_INT(r.type, REAP_MGR_T_INT);
				if (r.i != 0)
					test_fail(__FILE__, __LINE__, "n=%ld: the failed "
						  "call left %lld keys in the manager",
						  n, (long long)r.i);
				reap_mgr_value_free(&r);
			}
		}
		ASSERT_OK(reap_scope_close(t));
		failures++;
	}
}

static int swept_connect(reap_scope *t, const char *addr, reap_mgr_client *c,
			 void **out)
{
	int rc;

	(void)c;
	c = *out;
	rc = reap_mgr_connect(t, addr,
			      &(reap_mgr_client_opts){.cache = true, .name = "n"}, &c);
	*out = c;
	return rc;
}

static void check_connect(void *out)
{
	ASSERT_GT_INT(dbsize(out), -1);
}

static int swept_codec_add(reap_scope *t, const char *addr, reap_mgr_client *c,
			   void **out)
{
	int rc;

	(void)t;
	(void)addr;
	if ((rc = reap_mgr_codec_add(c, &point_codec)) == 0)
		*out = c;
	return rc;
}

static void check_codec_add(void *out)
{
	/* It is there now, once. */
	ASSERT_EQ_INT(reap_mgr_codec_add(out, &point_codec), -EEXIST);
}

static int swept_dict_open(reap_scope *t, const char *addr, reap_mgr_client *c,
			   void **out)
{
	reap_mgr_dict *d = *out;
	int rc;

	(void)addr;
	rc = reap_mgr_dict_open(t, c, "d", NULL, &d);
	*out = d;
	return rc;
}

static void check_dict_open(void *out)
{
	reap_mgr_value v;

	ASSERT_OK(reap_mgr_dict_set(out, "k", reap_mgr_int(5)));
	ASSERT_OK(reap_mgr_dict_get(out, "k", &v));
	ASSERT_EQ_INT(v.type, REAP_MGR_T_INT);
	ASSERT_EQ_INT(v.i, 5);
	reap_mgr_value_free(&v);
}

static int swept_counter_open(reap_scope *t, const char *addr,
			      reap_mgr_client *c, void **out)
{
	reap_mgr_counter *k = *out;
	int rc;

	(void)addr;
	/* Transient: each round's counter is new, so init applies. */
	rc = reap_mgr_counter_open(t, c, "ctr",
				   &(reap_mgr_obj_opts){.lifetime = REAP_MGR_SESSION,
							.init = 41}, &k);
	*out = k;
	return rc;
}

static void check_counter_open(void *out)
{
	int64_t v;

	ASSERT_OK(reap_mgr_counter_add(out, 1, &v));
	ASSERT_EQ_INT(v, 42);
}

static int swept_barrier_open(reap_scope *t, const char *addr,
			      reap_mgr_client *c, void **out)
{
	reap_mgr_barrier *b = *out;
	int rc;

	(void)addr;
	rc = reap_mgr_barrier_open(t, c, "bar", &(reap_mgr_obj_opts){.n = 2}, &b);
	*out = b;
	return rc;
}

TEST(oom_sweep_connect)
{
	reap_scope *s;
	reap_mgr *m;

	TEST_PROCS_BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_mgr_start(s, NULL, &m));
	ASSERT_GE_INT(sweep(reap_mgr_address(m), 0, swept_connect, check_connect), 1);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

TEST(oom_sweep_codec_add)
{
	reap_scope *s;
	reap_mgr *m;

	TEST_PROCS_BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_mgr_start(s, NULL, &m));
	ASSERT_GE_INT(sweep(reap_mgr_address(m), 1, swept_codec_add,
			    check_codec_add), 1);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

/* The open calls share one implementation: dict_open without options,
 * counter_open and barrier_open with the init and n they carry. */
TEST(oom_sweep_open)
{
	reap_scope *s;
	reap_mgr *m;

	TEST_PROCS_BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_mgr_start(s, NULL, &m));
	ASSERT_GE_INT(sweep(reap_mgr_address(m), 1, swept_dict_open,
			    check_dict_open), 1);
	ASSERT_GE_INT(sweep(reap_mgr_address(m), 1, swept_counter_open,
			    check_counter_open), 1);
	ASSERT_GE_INT(sweep(reap_mgr_address(m), 1, swept_barrier_open, NULL), 1);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

/* A child at the barrier: exits with its index (or 100 + error). */
static int at_barrier(void *arg)
{
	reap_mgr_client *c;
	reap_mgr_barrier *b;
	reap_scope *s;
	unsigned idx = 99;
	int rc;

	(void)arg;
	if (reap_scope_open(NULL, &s) != 0)
		return 99;
	if (reap_mgr_connect(s, child_addr, NULL, &c) < 0 ||
	    reap_mgr_barrier_open(s, c, "B", &(reap_mgr_obj_opts){.n = 3}, &b) < 0)
		rc = 100;
	else if ((rc = reap_mgr_barrier_wait(b, reap_now_ns() + 10 * SEC, &idx)) < 0)
		rc = 100 - rc;
	else
		rc = (int)idx;
	return reap_scope_close(s) == 0 ? rc : 99;
}

TEST(barriers_and_namespaces)
{
	reap_mgr_client *c;
	reap_mgr_barrier *b;
	reap_mgr_ns *ns;
	reap_mgr_value got;
	reap_mgr *m;
	reap_scope *s;
	unsigned idx;
	int seen = 0;
	pid_t p[2];

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, NULL);
	ASSERT_EQ_INT(reap_mgr_barrier_open(s, c, "B", NULL, &b), -EINVAL);
	ASSERT_OK(reap_mgr_barrier_open(s, c, "B", &(reap_mgr_obj_opts){.n = 3}, &b));
	/* alone, it times out (and the arrival is withdrawn) */
	ASSERT_EQ_INT(reap_mgr_barrier_wait(b, IN(SEC / 20), &idx), -ETIMEDOUT);
	child_addr = reap_mgr_address(m);
	p[0] = test_fork(at_barrier, NULL);
	p[1] = test_fork(at_barrier, NULL);
	ASSERT_OK(reap_mgr_barrier_wait(b, IN(10 * SEC), &idx));
	ASSERT_LT_INT(idx, 3);
	seen |= 1 << idx;
	for (int i = 0; i < 2; i++) {
		int rc = test_wait(p[i]);

		ASSERT_LT_INT(rc, 3);
		seen |= 1 << rc;
	}
	ASSERT_EQ_INT(seen, 7); /* indices 0, 1, 2, each once */
	/* a namespace: named typed values; a barrier's key is not one */
	ASSERT_EQ_INT(reap_mgr_ns_open(s, c, "B", NULL, &ns), -EMEDIUMTYPE);
	ASSERT_OK(reap_mgr_ns_open(s, c, "cfg", NULL, &ns));
	ASSERT_OK(reap_mgr_ns_set(ns, "workers", reap_mgr_int(4)));
	ASSERT_OK(reap_mgr_ns_set(ns, "mode", reap_mgr_str("fast")));
	ASSERT_OK(reap_mgr_ns_get(ns, "workers", &got));
	ASSERT_EQ_INT(got.i, 4);
	ASSERT_OK(reap_mgr_ns_del(ns, "workers"));
	ASSERT_EQ_INT(reap_mgr_ns_get(ns, "workers", &got), -ENOENT);
	ASSERT_OK(reap_mgr_ns_get(ns, "mode", &got));
	ASSERT_EQ_STR((const char *)got.bytes.p, "fast");
	reap_mgr_value_free(&got);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

/* The manager's count of commands processed (INFO), through c. */
static long long commands(reap_mgr_client *c)
{
	reap_mgr_value r;
	const char *p;
	long long n;

	ASSERT_OK(reap_mgr_command(c, &r, 1, (const char *[]){"INFO"}, NULL));
	p = strstr(r.bytes.p, "total_commands_processed:");
	ASSERT_NOT_NULL(p);
	n = atoll(p + 25);
	reap_mgr_value_free(&r);
	return n;
}

TEST(cache_serves_reads_and_is_invalidated)
{
	reap_mgr_client *c, *w, *obs;
	reap_mgr_dict *d, *dw;
	reap_mgr_var *x, *xw;
	reap_mgr_value got;
	reap_mgr *m;
	reap_scope *s;
	long long before;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, &(reap_mgr_client_opts){.cache = true, .cache_sync_ns = 60 * SEC});
	ASSERT_OK(reap_mgr_connect(s, reap_mgr_address(m), NULL, &w));
	ASSERT_OK(reap_mgr_connect(s, reap_mgr_address(m), NULL, &obs));
	ASSERT_OK(reap_mgr_dict_open(s, c, "d", NULL, &d));
	ASSERT_OK(reap_mgr_dict_open(s, w, "d", NULL, &dw));
	ASSERT_OK(reap_mgr_var_open(s, c, "x", NULL, &x));
	ASSERT_OK(reap_mgr_var_open(s, w, "x", NULL, &xw));
	ASSERT_OK(reap_mgr_dict_set(dw, "k", reap_mgr_int(1)));
	ASSERT_OK(reap_mgr_var_set(xw, reap_mgr_str("v1")));
	/* first reads go to the manager, the next ones do not */
	ASSERT_OK(reap_mgr_dict_get(d, "k", &got));
	ASSERT_EQ_INT(got.i, 1);
	ASSERT_OK(reap_mgr_var_get(x, &got));
	reap_mgr_value_free(&got);
	before = commands(obs);
	for (int i = 0; i < 100; i++) {
		ASSERT_OK(reap_mgr_dict_get(d, "k", &got));
		ASSERT_EQ_INT(got.i, 1);
		ASSERT_OK(reap_mgr_var_get(x, &got));
		ASSERT_EQ_STR((const char *)got.bytes.p, "v1");
		reap_mgr_value_free(&got);
	}
	ASSERT_EQ_INT(commands(obs), before + 1); /* only the INFO itself */
	/* another client writes: the manager's push drops the entries */
	ASSERT_OK(reap_mgr_dict_set(dw, "k", reap_mgr_int(2)));
	ASSERT_OK(reap_mgr_var_set(xw, reap_mgr_str("v2")));
	for (int i = 0; i < 100; i++) { /* the push may trail the writer's reply */
		ASSERT_OK(reap_mgr_dict_get(d, "k", &got));
		if (got.i == 2)
			break;
		usleep(1000);
	}
	ASSERT_EQ_INT(got.i, 2);
	ASSERT_OK(reap_mgr_var_get(x, &got));
	ASSERT_EQ_STR((const char *)got.bytes.p, "v2");
	reap_mgr_value_free(&got);
	/* our own writes are seen at once */
	ASSERT_OK(reap_mgr_dict_set(d, "k", reap_mgr_int(3)));
	ASSERT_OK(reap_mgr_dict_get(d, "k", &got));
	ASSERT_EQ_INT(got.i, 3);
	/* a deleted field: -ENOENT, not the cached value */
	ASSERT_OK(reap_mgr_dict_del(dw, "k"));
	for (int i = 0; i < 100 && reap_mgr_dict_get(d, "k", &got) == 0; i++)
		usleep(1000);
	ASSERT_EQ_INT(reap_mgr_dict_get(d, "k", &got), -ENOENT);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

TEST(cache_periodic_sync)
{
	reap_mgr_client *c, *obs;
	reap_mgr_dict *d;
	reap_mgr_value got;
	reap_mgr *m;
	reap_scope *s;
	long long before;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, &(reap_mgr_client_opts){.cache = true,
						  .cache_sync_ns = SEC / 10});
	ASSERT_OK(reap_mgr_connect(s, reap_mgr_address(m), NULL, &obs));
	ASSERT_OK(reap_mgr_dict_open(s, c, "d", NULL, &d));
	ASSERT_OK(reap_mgr_dict_set(d, "k", reap_mgr_int(1)));
	ASSERT_OK(reap_mgr_dict_get(d, "k", &got));
	before = commands(obs);
	ASSERT_OK(reap_mgr_dict_get(d, "k", &got)); /* cached */
	ASSERT_EQ_INT(commands(obs), before + 1);
	usleep(150000);
	ASSERT_OK(reap_mgr_dict_get(d, "k", &got)); /* the cache was emptied */
	ASSERT_EQ_INT(got.i, 1);
	ASSERT_EQ_INT(commands(obs), before + 3);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

/* A forked child must not use its parent's client: the socket is shared,
 * and requests and replies would interleave. */
static reap_mgr_client *parent_client;
static reap_mgr_dict *parent_dict;
static int use_inherited(void *arg)
{
	reap_mgr_value v;

	(void)arg;
	if (reap_mgr_dict_set(parent_dict, "k", reap_mgr_int(2)) != -ENOTCONN ||
	    reap_mgr_dict_get(parent_dict, "k", &v) != -ENOTCONN ||
	    strstr(reap_mgr_client_error(parent_client), "inherited across fork") == NULL)
		return 1;
	reap_mgr_batch_begin(parent_client);
	/* Refused at once, not queued; the exec fails as well. */
	if (reap_mgr_dict_set(parent_dict, "k", reap_mgr_int(3)) != -ENOTCONN)
		return 3;
	return reap_mgr_batch_exec(parent_client, NULL) == -ENOTCONN ? 0 : 2;
}

TEST(forked_child_cannot_use_parent_client)
{
	reap_mgr_client *c;
	reap_mgr_value v;
	reap_mgr *m;
	reap_scope *s;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, &(reap_mgr_client_opts){.cache = true});
	ASSERT_OK(reap_mgr_dict_open(s, c, "d", NULL, &parent_dict));
	ASSERT_OK(reap_mgr_dict_set(parent_dict, "k", reap_mgr_int(1)));
	ASSERT_OK(reap_mgr_dict_get(parent_dict, "k", &v)); /* now cached */
	parent_client = c;
	ASSERT_EQ_INT(test_wait(test_fork(use_inherited, NULL)), 0);
	/* the parent's connection is untouched */
	ASSERT_OK(reap_mgr_dict_get(parent_dict, "k", &v));
	ASSERT_EQ_INT(v.i, 1);
	ASSERT_EQ_INT(dbsize(c), 1);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

TEST(objects_show_the_creators_line)
{
	reap_mgr_client *c;
	reap_mgr_dict *d;
	reap_mgr_value r;
	reap_mgr *m;
	reap_scope *s;
	char want[64];
	int line;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, &(reap_mgr_client_opts){.name = "maker"});
	line = __LINE__ + 1;
	ASSERT_OK(reap_mgr_dict_open(s, c, "d", NULL, &d));
	ASSERT_OK(reap_mgr_command(c, &r, 1, (const char *[]){"REAP.OBJECTS"}, NULL));
	ASSERT_EQ_INT(r.type, REAP_MGR_T_ARRAY);
	ASSERT_EQ_SIZE(r.array.n, 1);
	snprintf(want, sizeof want, "test_client.c:%d in test_", line);
	for (size_t i = 0; i + 1 < r.array.v[0].array.n; i += 2) {
		const reap_mgr_value *k = &r.array.v[0].array.v[i];

		if (strcmp(k->bytes.p, "creator-site") == 0)
			ASSERT_CONTAINS((const char *)k[1].bytes.p, want);
		if (strcmp(k->bytes.p, "creator-name") == 0)
			ASSERT_EQ_STR((const char *)k[1].bytes.p, "maker");
	}
	reap_mgr_value_free(&r);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

/* A blocking call in a batch may take its own deadline, beyond the
 * client's timeout, without the connection being dropped. */
TEST(blocking_call_in_a_batch_uses_its_deadline)
{
	reap_mgr_client *c;
	reap_mgr_queue *q;
	reap_mgr_value got;
	reap_mgr *m;
	reap_scope *s;
	size_t failed;
	uint64_t t0;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, &(reap_mgr_client_opts){.timeout_ns = SEC / 10});
	ASSERT_OK(reap_mgr_queue_open(s, c, "q", NULL, &q));
	t0 = reap_now_ns();
	reap_mgr_batch_begin(c);
	ASSERT_OK(reap_mgr_queue_get(q, &got, IN(SEC / 2)));
	ASSERT_EQ_INT(reap_mgr_batch_exec(c, &failed), -ETIMEDOUT);
	ASSERT_EQ_SIZE(failed, 1);
	ASSERT_GE_INT(reap_now_ns() - t0, SEC / 2);
	/* the connection is fine */
	ASSERT_OK(reap_mgr_queue_put(q, reap_mgr_int(1)));
	ASSERT_OK(reap_mgr_queue_get(q, &got, IN(SEC)));
	ASSERT_EQ_INT(got.i, 1);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

/* Calls that must not leave an out parameter behind in a batch: a
 * counter's get fills *now at exec, and an open is never queued. */
TEST(batch_counter_get_and_open_inside_a_batch)
{
	reap_mgr_client *c;
	reap_mgr_counter *k;
	reap_mgr_dict *d = NULL;
	reap_mgr *m;
	reap_scope *s;
	int64_t now = 0;
	size_t failed;

	TEST_PROCS_BEGIN();
	s = setup(&m, &c, NULL);
	ASSERT_OK(reap_mgr_counter_open(s, c, "k", &(reap_mgr_obj_opts){.init = 41}, &k));
	reap_mgr_batch_begin(c);
	ASSERT_OK(reap_mgr_counter_add(k, 1, NULL));
	ASSERT_OK(reap_mgr_counter_get(k, &now));
	/* opening runs at once, sending what is queued first */
	ASSERT_EQ_INT(reap_mgr_dict_open(s, c, "nope", &(reap_mgr_obj_opts){
				.flags = REAP_MGR_NOCREATE}, &d), -ENOENT);
	ASSERT_NULL(d);
	ASSERT_OK(reap_mgr_batch_exec(c, &failed));
	ASSERT_EQ_SIZE(failed, 0);
	ASSERT_EQ_INT(now, 42);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}
