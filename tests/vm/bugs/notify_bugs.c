// SPDX-License-Identifier: GPL-2.0
/*
 * Planted bugs for the debug kernel's detectors (tests/vm/guest.sh,
 * suite detectors, run by `make vm-test DEBUG_KERNEL=1`).  Each load
 * with bug=NAME commits that one bug in its init and loads; the suite
 * unloads it again.  (An init that failed would run twice: busybox's
 * insmod retries a failed finit_module with init_module.)  The suite
 * checks that each bug is reported the way guest.sh looks for reports:
 * that proves a bug of that kind in scoutfs or the notify code would
 * fail the run.
 *
 *	insmod notify_bugs.ko bug=lockdep|atomic|uaf|ubsan|list|leak|hung
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/list.h>
#include <linux/sched.h>
#include <linux/string.h>

static char *bug = "";
module_param(bug, charp, 0444);
MODULE_PARM_DESC(bug, "the bug to commit");

static DEFINE_MUTEX(notify_bugs_a);
static DEFINE_MUTEX(notify_bugs_b);
static DEFINE_SPINLOCK(notify_bugs_lock);

/* a then b, later b then a: lockdep reports the inversion (one task
 * suffices, nothing deadlocks) */
static noinline void bug_lockdep(void)
{
	mutex_lock(&notify_bugs_a);
	mutex_lock(&notify_bugs_b);
	mutex_unlock(&notify_bugs_b);
	mutex_unlock(&notify_bugs_a);

	mutex_lock(&notify_bugs_b);
	mutex_lock(&notify_bugs_a);
	mutex_unlock(&notify_bugs_a);
	mutex_unlock(&notify_bugs_b);
}

/* a function that may sleep, called under a spinlock */
static noinline void bug_atomic(void)
{
	spin_lock(&notify_bugs_lock);
	might_sleep();
	spin_unlock(&notify_bugs_lock);
}

static noinline void bug_uaf(void)
{
	char *p = kmalloc(64, GFP_KERNEL);

	if (!p)
		return;
	kfree(p);
	OPTIMIZER_HIDE_VAR(p);
	pr_info("notify_bugs: read %d after free\n", READ_ONCE(p[8]));
}

static noinline void bug_ubsan(void)
{
	volatile int shift = 40;
	int v = 1 << shift;

	pr_info("notify_bugs: 1 << 40 = %d\n", v);
}

/* the second list_del of an entry: DEBUG_LIST's LIST_POISON check */
static noinline void bug_list(void)
{
	LIST_HEAD(head);
	struct list_head e;

	list_add(&e, &head);
	list_del(&e);
	list_del(&e);
}

/* 1234 bytes whose only pointer is dropped: kmemleak lists them, and
 * its hex dump shows the marker */
static noinline void bug_leak(void)
{
	char *p = kmalloc(1234, GFP_KERNEL);

	if (p)
		memcpy(p, "notify_bugs leak", 16);
	/* the marker must be stored though nothing reads it */
	asm volatile("" : : "r"(p) : "memory");
}

/* 45 s uninterruptible: the hung-task detector (its timeout set to
 * 10 s by the suite) reports insmod */
static noinline void bug_hung(void)
{
	schedule_timeout_uninterruptible(45 * HZ);
}

static int __init notify_bugs_init(void)
{
	if (!strcmp(bug, "lockdep"))
		bug_lockdep();
	else if (!strcmp(bug, "atomic"))
		bug_atomic();
	else if (!strcmp(bug, "uaf"))
		bug_uaf();
	else if (!strcmp(bug, "ubsan"))
		bug_ubsan();
	else if (!strcmp(bug, "list"))
		bug_list();
	else if (!strcmp(bug, "leak"))
		bug_leak();
	else if (!strcmp(bug, "hung"))
		bug_hung();
	else
		return -EINVAL;
	return 0;
}
module_init(notify_bugs_init);

static void __exit notify_bugs_exit(void)
{
}
module_exit(notify_bugs_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("planted bugs for the debug kernel's detectors");
