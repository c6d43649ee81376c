/*
 * A reproducer for upstream scoutfs, not a test of the series: in
 * main's iomap read_iter (KC_USE_IOMAP_FOR_IO), a direct read with
 * IOCB_NOWAIT that can't take the inode lock at once goes to `out:`,
 * which calls inode_dio_end() without the inode_dio_begin() that
 * only comes after the lock.  i_dio_count drops below zero, and the
 * next inode_dio_wait() on the inode (fallocate, the release and
 * move_blocks ioctls) waits forever, holding the inode lock.
 *
 *	dio-nowait-repro <mountpoint>
 *
 * Guest suite dio-repro (tests/vm/guest.sh), never run by default: a
 * reproduced bug leaves a task stuck in D state and the mount busy.
 *
 * Deterministically, without sleeps: a writer thread's write(2) from a
 * userfaultfd-registered buffer takes the inode lock and then blocks
 * faulting the buffer in (main's buffered write faults in its source
 * under the lock); the missing-page event on the userfaultfd says it
 * is there.  An io_uring read of the file, opened O_DIRECT|O_NONBLOCK,
 * is then submitted: O_NONBLOCK is what makes io_uring try it inline
 * with IOCB_NOWAIT first (scoutfs has no FMODE_NOWAIT), the trylock
 * fails, -EAGAIN, and io_uring retries it in a worker, which waits for
 * the lock.  The writer is released (UFFDIO_COPY), both finish, and a
 * child calls fallocate(): it either returns or sleeps in
 * inode_dio_wait (its /proc/<pid>/wchan and stack), which is reported.
 * The same without O_NONBLOCK first, as the control: io_uring then
 * never tries the read with IOCB_NOWAIT and fallocate returns.
 */
#include "notify-lib.h"
#include <poll.h>
#include <pthread.h>
#include <linux/io_uring.h>
#include <linux/userfaultfd.h>

#define BLK 4096

struct writer {
	int fd;
	char *src;
	ssize_t ret;
};

static void *write_thread(void *arg)
{
	struct writer *w = arg;

	w->ret = pwrite(w->fd, w->src, BLK, 0);
	return NULL;
}

/* an io_uring read, submitted; its completion waited for later */
struct ring {
	int fd;
	struct io_uring_params p;
	void *sq, *cq;
	struct io_uring_sqe *sqes;
};

static void ring_read(struct ring *r, int fd, void *buf)
{
	unsigned int *tail, *mask, *array;
	struct io_uring_sqe *sqe;

	memset(r, 0, sizeof(*r));
	r->fd = syscall(__NR_io_uring_setup, 4, &r->p);
	if (r->fd < 0)
		die("io_uring_setup");
	r->sq = mmap(NULL, r->p.sq_off.array + r->p.sq_entries * 4, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	r->cq = mmap(NULL, r->p.cq_off.cqes + r->p.cq_entries * sizeof(struct io_uring_cqe),
		     PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, r->p.sq_entries * sizeof(*sqe), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (r->sq == MAP_FAILED || r->cq == MAP_FAILED || r->sqes == MAP_FAILED)
		die("io_uring mmap");
	tail = (unsigned int *)((char *)r->sq + r->p.sq_off.tail);
	mask = (unsigned int *)((char *)r->sq + r->p.sq_off.ring_mask);
	array = (unsigned int *)((char *)r->sq + r->p.sq_off.array);
	sqe = &r->sqes[*tail & *mask];
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_READ;
	sqe->fd = fd;
	sqe->addr = (unsigned long)buf;
	sqe->len = BLK;
	array[*tail & *mask] = *tail & *mask;
	__atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, r->fd, 1, 0, 0, NULL, 0) != 1)
		die("io_uring_enter submit");
}

static int ring_wait(struct ring *r)
{
	unsigned int *head = (unsigned int *)((char *)r->cq + r->p.cq_off.head);
	unsigned int *mask = (unsigned int *)((char *)r->cq + r->p.cq_off.ring_mask);
	struct io_uring_cqe *cqes = (struct io_uring_cqe *)((char *)r->cq + r->p.cq_off.cqes);

	if (syscall(__NR_io_uring_enter, r->fd, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		die("io_uring_enter wait");
	return cqes[*head & *mask].res;
}

/* /proc/<pid>/<what>, first line, newline dropped */
static void proc_line(pid_t pid, const char *what, char *buf, size_t size)
{
	char p[64];
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/%s", pid, what);
	buf[0] = 0;
	f = fopen(p, "r");
	if (f) {
		if (!fgets(buf, size, f))
			buf[0] = 0;
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = 0;
}

static bool in_dio_wait(pid_t pid)
{
	char p[64];
	char line[256];
	bool found = false;
	FILE *f;

	proc_line(pid, "wchan", line, sizeof(line));
	if (strstr(line, "inode_dio_wait"))
		return true;
	snprintf(p, sizeof(p), "/proc/%d/stack", pid);
	f = fopen(p, "r");
	while (f && fgets(line, sizeof(line), f))
		found |= strstr(line, "inode_dio_wait") != NULL;
	if (f)
		fclose(f);
	return found;
}

static void print_stack(pid_t pid)
{
	char p[64];
	char line[256];
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/stack", pid);
	f = fopen(p, "r");
	while (f && fgets(line, sizeof(line), f))
		printf("  %s", line);
	if (f)
		fclose(f);
}

/*
 * fallocate() in a child: true when it returned, false when it is found
 * asleep in inode_dio_wait (left there: it can't be killed).  Polled
 * every 10 ms for up to 60 s; the child is either one or the other.
 */
static bool fallocate_returns(const char *path)
{
	uint64_t end = now_ns(CLOCK_MONOTONIC) + 60000000000ULL;
	struct timespec ts = { 0, 10000000 };
	char wchan[128];
	pid_t pid;
	int st;

	pid = fork();
	if (pid == 0) {
		int fd = open(path, O_RDWR);

		_exit(fd < 0 || fallocate(fd, 0, 0, BLK) ? 1 : 0);
	}
	while (now_ns(CLOCK_MONOTONIC) < end) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) && WEXITSTATUS(st) == 0;
		if (in_dio_wait(pid)) {
			proc_line(pid, "wchan", wchan, sizeof(wchan));
			printf("dio-nowait-repro: fallocate (pid %d, state %c) sleeps in %s:\n", pid,
			       proc_state(pid), wchan);
			print_stack(pid);
			return false;
		}
		nanosleep(&ts, NULL);
	}
	printf("dio-nowait-repro: fallocate (pid %d) neither returned nor waits in inode_dio_wait after 60 s\n", pid);
	return false;
}

/* one round: the writer holds the inode lock while a read is submitted */
static bool round_returns(int oflags)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	struct uffdio_copy copy;
	struct uffd_msg msg;
	struct pollfd pfd;
	struct writer w;
	struct ring ring;
	pthread_t thr;
	char *page;
	void *buf;
	int uffd;
	int rfd;
	int res;

	make_file("dio", 65536, 0644);
	w.fd = open(path_of("dio"), O_WRONLY);
	rfd = open(path_of("dio"), O_RDONLY | O_DIRECT | oflags);
	uffd = syscall(__NR_userfaultfd, O_CLOEXEC);
	if (w.fd < 0 || rfd < 0 || uffd < 0 || ioctl(uffd, UFFDIO_API, &api))
		die("open the file or userfaultfd");
	w.src = mmap(NULL, BLK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	page = mmap(NULL, BLK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	reg = (struct uffdio_register){ .range = { (unsigned long)w.src, BLK },
					.mode = UFFDIO_REGISTER_MODE_MISSING };
	if (w.src == MAP_FAILED || page == MAP_FAILED || ioctl(uffd, UFFDIO_REGISTER, &reg) ||
	    posix_memalign(&buf, BLK, BLK))
		die("userfaultfd register");
	memset(page, 'w', BLK);

	pthread_create(&thr, NULL, write_thread, &w);
	pfd = (struct pollfd){ .fd = uffd, .events = POLLIN };
	if (poll(&pfd, 1, 60000) != 1 || read(uffd, &msg, sizeof(msg)) != sizeof(msg) ||
	    msg.event != UFFD_EVENT_PAGEFAULT)
		die("the writer's fault");
	printf("dio-nowait-repro: the writer faults on its buffer holding the inode lock\n");

	ring_read(&ring, rfd, buf);
	copy = (struct uffdio_copy){ .dst = (unsigned long)w.src, .src = (unsigned long)page,
				     .len = BLK };
	if (ioctl(uffd, UFFDIO_COPY, &copy))
		die("UFFDIO_COPY");
	pthread_join(thr, NULL);
	res = ring_wait(&ring);
	printf("dio-nowait-repro: write %zd, io_uring read %d\n", w.ret, res);
	close(ring.fd);
	close(uffd);
	close(rfd);
	close(w.fd);
	return fallocate_returns(path_of("dio"));
}

static void t_repro(void)
{
	CHECK(round_returns(0),
	      "control, O_DIRECT: fallocate returns after an io_uring read that waited for the inode lock");
	CHECK(round_returns(O_NONBLOCK),
	      "O_DIRECT|O_NONBLOCK: fallocate returns after an io_uring read whose IOCB_NOWAIT try lost the inode lock race (upstream: inode_dio_end without inode_dio_begin)");
}

static const struct test_case tests[] = {
	{ "repro", t_repro },
};

int main(int argc, char **argv)
{
	return run_tests(argc, argv, "dio-nowait-repro", tests, sizeof(tests) / sizeof(tests[0]));
}
