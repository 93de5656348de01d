/*
 * reap-manager: the manager as a standalone daemon, serving unrelated
 * processes over a Unix socket and/or TCP.
 *
 *     reap-manager --unix PATH [--key-file FILE]
 *     reap-manager --tcp 127.0.0.1:PORT --key-file FILE [--print-port]
 *
 * --unix PATH: the socket's directory must be ours and 0700; if it does
 * not exist it is created 0700 and removed at exit. --unix-private
 * creates a private directory with mkdtemp and prints the socket path.
 * --spin-us N: busy-poll N microseconds after serving before sleeping
 * (default 50 with more than one CPU online; 0: never). TCP always
 * requires the key. SIGTERM or SIGINT (or SHUTDOWN) stop it
 * cleanly: every client is disconnected, the socket file and the
 * directory it created are removed, and it exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "reap.h"
#include "../src/mgr/auth.h"
#include "../src/mgr/server.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: reap-manager [--unix PATH | --unix-private] [--tcp ADDR:PORT]\n"
		"                    [--key-file FILE] [--print-port] [--max-clients N]\n"
		"                    [--spin-us N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	reap__mgr_server_opts o = {0};
	const char *key_file = NULL;
	bool print_port = false;
	unsigned char key[256];
	size_t key_len = 0;
	reap_scope *s;
	reap__mgr_server *srv;
	int r;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--unix") == 0 && i + 1 < argc)
			o.unix_path = argv[++i];
		else if (strcmp(argv[i], "--unix-private") == 0)
			o.unix_private = true;
		else if (strcmp(argv[i], "--tcp") == 0 && i + 1 < argc)
			o.tcp = argv[++i];
		else if (strcmp(argv[i], "--key-file") == 0 && i + 1 < argc)
			key_file = argv[++i];
		else if (strcmp(argv[i], "--print-port") == 0)
			print_port = true;
		else if (strcmp(argv[i], "--spin-us") == 0 && i + 1 < argc)
			o.spin_ns = strtoull(argv[++i], NULL, 10) * 1000 ?: UINT64_MAX;
		else if (strcmp(argv[i], "--max-clients") == 0 && i + 1 < argc)
			o.max_clients = (unsigned)strtoul(argv[++i], NULL, 10);
		else
			usage();
	}
	if (!o.unix_path && !o.unix_private && !o.tcp)
		usage();
	if (o.tcp && !key_file) {
		fprintf(stderr, "reap-manager: --tcp requires --key-file\n");
		return 2;
	}
	if (key_file) {
		r = reap__auth_key_load(key_file, key, sizeof key, &key_len);
		if (r < 0) {
			fprintf(stderr, "reap-manager: key file %s: %s\n", key_file,
				reap_strerror(r));
			return 1;
		}
		o.key = key;
		o.key_len = key_len;
	}
	if (o.unix_path) {
		/* create the socket's directory if it does not exist */
		char dir[4096];
		struct stat st;
		snprintf(dir, sizeof dir, "%s", o.unix_path);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = 0;
			if (stat(dir, &st) != 0 && errno == ENOENT)
				o.unix_mkdir = true;
		}
	}
	o.handle_signals = true;
	if ((r = reap_scope_open(NULL, &s)) < 0)
		return 1;
	r = reap__mgr_server_create(s, &o, &srv);
	memset(key, 0, sizeof key);
	if (r < 0) {
		fprintf(stderr, "reap-manager: cannot start: %s\n", reap_strerror(r));
		(void)reap_scope_close(s);
		return 1;
	}
	if (print_port && o.tcp)
		printf("%d\n", reap__mgr_server_port(srv));
	if (o.unix_private)
		printf("%s\n", reap__mgr_server_unix_path(srv));
	fflush(stdout);
	r = reap__mgr_server_run(srv);
	int rc = reap_scope_close(s);
	if (r < 0 || rc < 0) {
		fprintf(stderr, "reap-manager: %s\n", reap_strerror(r < 0 ? r : rc));
		return 1;
	}
	return 0;
}
