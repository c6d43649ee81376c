/*
 * What kmod/src/ioctl.h needs from its surroundings to compile in
 * userspace, as upstream's utils provide it (utils/src/sparse.h): the
 * __u* types, the _IO* macros and the kernel's U*_MAX limits that some
 * of its flag masks are made of.  tests/abi-test.sh includes this
 * before the patched ioctl.h.
 */
#ifndef ABI_PRELUDE_H
#define ABI_PRELUDE_H

#include <stddef.h>
#include <stdio.h>
#include <linux/types.h>
#include <sys/ioctl.h>

#ifndef U8_MAX
#define U8_MAX ((__u8)~0U)
#endif
#ifndef U16_MAX
#define U16_MAX ((__u16)~0U)
#endif
#ifndef U32_MAX
#define U32_MAX ((__u32)~0U)
#endif
#ifndef U64_MAX
#define U64_MAX ((__u64)~0ULL)
#endif

#endif
