/* The parts of the tour (demo.c runs them in order). */
#ifndef REAP_DEMO_H
#define REAP_DEMO_H

#include <stdio.h>

#include "reap.h"

int demo_objects(void); /* objects.c */
int demo_threads(void); /* threads.c */
int demo_async(void);   /* async.c */
int demo_proc(void);    /* proc.c */
int demo_mgr(void);     /* mgr.c */

#endif
