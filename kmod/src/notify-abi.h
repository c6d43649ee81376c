/*
 * Observer-only access notifications.  While a reader is attached each
 * mount records opens and reads of regular files in a small ring and
 * the reader drains the ring with this ioctl.  Recording never blocks
 * or slows the I/O it describes: when the ring is full the newest
 * record is dropped, and only its sequence number is consumed.
 *
 * Every record is 64 bytes of naturally aligned native endian fields.
 * @seq starts at 1 for each mount and advances for every record that
 * was generated, including those dropped because the ring was full, so
 * the difference between consecutive seqs minus one is exactly the
 * number of records lost between them.  Ops are only ever appended;
 * readers must skip ops they don't know.  Fields that an op doesn't use
 * are zero.
 *
 * @SCOUTFS_NOTIFY_OP_OPEN: a regular file was opened, @flags holds the
 * file's flags as its open method sees them: the open(2) flags,
 * including O_CREAT, O_EXCL and O_TRUNC, plus O_LARGEFILE which 64bit
 * kernels add.
 * @SCOUTFS_NOTIFY_OP_READ: @len bytes were read at @offset by read(2)
 * and its relatives (pread, readv, sendfile, splice, aio, io_uring),
 * recorded once for each call that returned data.  An asynchronous
 * direct read is recorded when it completes, with the submitter's
 * @pid, @uid and @gid; if too many are in flight to keep track of, it
 * is recorded when it's queued, with SCOUTFS_NOTIFY_READ_SUBMITTED in
 * @flags: @len is then the length asked for, up to the file size at
 * that time, not the bytes read.  Reads of mmap()ed pages are not seen
 * one by one: the mapping is recorded as an MMAP record.
 * @SCOUTFS_NOTIFY_OP_ATTACH: a reader attached.  Nothing is recorded
 * while no reader is attached, so this marks the start of an observed
 * period; @ino is 0 and @pid is the reader's.
 * @SCOUTFS_NOTIFY_OP_MMAP: a regular file was mmap()ed: @offset and
 * @len are the file range the mapping covers, @flags has
 * SCOUTFS_NOTIFY_MMAP_SHARED for a shared mapping (MAP_SHARED) and
 * SCOUTFS_NOTIFY_MMAP_WRITE for one mapped writable (PROT_WRITE).
 *
 * @time_ns is CLOCK_REALTIME, @pid is the thread group id (the process
 * id) in the initial pid namespace, and @uid and @gid are the fsuid and
 * fsgid in the initial user namespace.
 *
 * @calls is the number of calls the record stands for.  It is 0 in
 * every record of a reader that doesn't ask for merged records (the
 * four bytes were zero padding before merging existed, and such a
 * reader still sees exactly those records), and at least 1 in every
 * record of a reader that does (SCOUTFS_IOC_RN_MERGE below).  For such
 * a reader a call is merged into the newest record in the ring, instead
 * of taking a slot and a seq, when nothing was recorded (or dropped)
 * after that record, the reader hasn't begun to copy it, and the call
 * has the record's @ino, @pid, @uid and @gid and:
 *  - READ: has the same @flags and starts at @offset + @len: @len grows
 *    by the bytes read, so @offset and @len cover the @calls reads,
 *    which were sequential;
 *  - OPEN: has the same @flags (identical consecutive opens, as
 *    fanotify merges them).
 * @time_ns stays the time of the first call.  ATTACH and MMAP records
 * are never merged.  A merged call consumes no seq, so a seq gap still
 * counts records that were lost, and each lost record was one call.
 */
struct scoutfs_ioctl_notify_record {
	__u64 seq;
	__u64 ino;
	__u64 time_ns;
	__u64 offset;
	__u64 len;
	__u32 op;
	__u32 pid;
	__u32 uid;
	__u32 gid;
	__u32 flags;
	__u32 calls;
};

#define SCOUTFS_NOTIFY_OP_OPEN		1
#define SCOUTFS_NOTIFY_OP_READ		2
#define SCOUTFS_NOTIFY_OP_ATTACH	3
#define SCOUTFS_NOTIFY_OP_MMAP		4

#define SCOUTFS_NOTIFY_MMAP_SHARED	(1U << 0)
#define SCOUTFS_NOTIFY_MMAP_WRITE	(1U << 1)

#define SCOUTFS_NOTIFY_READ_SUBMITTED	(1U << 0)

/*
 * Copy the oldest records out of the ring into the array of
 * @recs_nr records at @recs_ptr, returning the number of records copied.
 *
 * The first call attaches the file as the mount's only reader and
 * recording starts.  The file stays the reader until it is closed.
 * The ioctl must be issued on a directory in the mount (typically its
 * root) and needs CAP_SYS_ADMIN.  A call on another file while a reader
 * is attached returns -EBUSY.
 *
 * Without flags a call returns 0 immediately when the ring is empty.
 * With SCOUTFS_IOC_RN_WAIT it waits for records for up to @timeout_ms
 * (0 waits until records arrive) and returns 0 if none arrived or
 * -EINTR if a signal arrived first.
 *
 * A waiting reader can ask for a batch rather than being woken by the
 * first record: once records are waiting, a call with @batch_nr > 1
 * keeps waiting until @batch_nr records are in the ring (or the ring is
 * full), or until @batch_us microseconds have passed since it saw the
 * first of them (0: no such limit; @timeout_ms still bounds the whole
 * call).  Producers then wake the reader once per batch, not per
 * record.  Zeroed batch fields are the behaviour described above.
 *
 * SCOUTFS_IOC_RN_MERGE asks for merged records (see @calls above): the
 * flag of the reader's latest call decides whether the records stored
 * after that call are merged and carry a call count.  A reader that
 * never passes it gets one record per call, with @calls 0, as before.
 *
 * -EINVAL is returned for a @recs_nr of 0, unknown flags, a timeout
 * without the wait flag or over U32_MAX ms, batch fields without the
 * wait flag, a @batch_nr over @recs_nr, a @batch_us over 1000000 or
 * without a @batch_nr over 1, or a non-zero @_reserved.  -EFAULT is
 * returned if no records could be copied to @recs_ptr; records that
 * weren't copied stay in the ring.  -ENOLINK is returned once the
 * filesystem is being forcibly unmounted (umount -f) and the ring is
 * empty: the reader should close its file so the unmount can finish.
 */
struct scoutfs_ioctl_read_notify {
	__u64 recs_ptr;
	__u64 recs_nr;
	__u64 timeout_ms;
	__u64 flags;
	__u32 batch_nr;
	__u32 batch_us;
	__u64 _reserved;
};

#define SCOUTFS_IOC_RN_WAIT		(1ULL << 0)
#define SCOUTFS_IOC_RN_MERGE		(1ULL << 1)
#define SCOUTFS_IOC_RN__UNKNOWN		(U64_MAX << 2)

/*
 * nr 25 is also upstream's SCOUTFS_IOC_INJECT_TOTL_DELTA from v1.31
 * on, an _IOW with a 40 byte argument.  The command values differ in
 * both direction and size so both can be dispatched.  These notify
 * definitions come first, out of number order, so that the same
 * change applies to releases that keep appending their own ioctls.
 */
#define SCOUTFS_IOC_READ_NOTIFY \
	_IOR(SCOUTFS_IOCTL_MAGIC, 25, struct scoutfs_ioctl_read_notify)
