/*
 * reap.h: the umbrella header of reap, a library for the lifecycle of
 * resources in concurrent programs. One header per layer lives under
 * reap/; this one includes them all.
 */
#ifndef REAP_H
#define REAP_H

#include "reap/base.h"
#include "reap/ledger.h"
#include "reap/scope.h"
#include "reap/obj.h"
#include "reap/thread.h"
#include "reap/loop.h"
#include "reap/proc.h"
#include "reap/shm.h"
#include "reap/mgr.h"

#endif /* REAP_H */
