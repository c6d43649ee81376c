/*
 * Print the layout and values that an ioctl.h gives to the names that
 * tests/abi-test.sh lists in abi-list.inc, one line each, in a form
 * that is compared as text across releases:
 *
 *   STRUCT(s)     "<tag> struct s size N align N"
 *   FIELD(s, f)   "<tag> s.f offset N size N"
 *   FLEX(s, f)    "<tag> s.f offset N flexible" (a flexible array member)
 *   CONST(c)      "<tag> c 0xVALUE"
 *   CMD(c)        "<tag> c 0xVALUE dir D type 0xT nr N size S"
 *
 * The including test defines ABI_TAG, the first word of every line, so
 * that one list can hold sections that are compared differently.
 */
#include "abi-prelude.h"
#include "ioctl.h"

#define STRUCT(s)                                                         \
	printf("%s struct %s size %zu align %zu\n", ABI_TAG, #s,            \
	       sizeof(struct s), _Alignof(struct s));
#define FIELD(s, f)                                                       \
	printf("%s %s.%s offset %zu size %zu\n", ABI_TAG, #s, #f,           \
	       offsetof(struct s, f), sizeof(((struct s *)0)->f));
#define FLEX(s, f)                                                        \
	printf("%s %s.%s offset %zu flexible\n", ABI_TAG, #s, #f,           \
	       offsetof(struct s, f));
#define CONST(c)                                                          \
	printf("%s %s 0x%llx\n", ABI_TAG, #c, (unsigned long long)(c));
#define CMD(c)                                                            \
	printf("%s %s 0x%08llx dir %u type 0x%x nr %u size %u\n", ABI_TAG,  \
	       #c, (unsigned long long)(c), (unsigned)_IOC_DIR(c),          \
	       (unsigned)_IOC_TYPE(c), (unsigned)_IOC_NR(c),                \
	       (unsigned)_IOC_SIZE(c));

int main(void)
{
#include "abi-list.inc"
	return 0;
}
