/*
 * The few definitions of upstream scoutfs's kmod/src/ioctl.h that
 * scoutfs-notifyd, scoutfs-notify-watch and scoutfs-notify-forward use
 * besides the notify ABI.
 * tests/lib/tools-src.sh puts them in front of kmod/src/notify-abi.h,
 * the notify block that commit 1 inserts, to build the tools on a machine
 * without an upstream tree.  With SCOUTFS_SRC set it builds against
 * the real patched header instead, and tests/abi-test.sh checks these
 * against it.
 */
#ifndef _SCOUTFS_IOCTL_H_
#define _SCOUTFS_IOCTL_H_

#define SCOUTFS_IOCTL_MAGIC 0xE8

struct scoutfs_ioctl_ino_path {
	__u64 ino;
	__u64 dir_ino;
	__u64 dir_pos;
	__u64 result_ptr;
	__u16 result_bytes;
	__u8 _pad[6];
};

struct scoutfs_ioctl_ino_path_result {
	__u64 dir_ino;
	__u64 dir_pos;
	__u16 path_bytes;
	__u8  _pad[6];
	__u8  path[];
};

#define SCOUTFS_IOC_INO_PATH _IOW(SCOUTFS_IOCTL_MAGIC, 2, \
				  struct scoutfs_ioctl_ino_path)

struct scoutfs_ioctl_statfs_more {
	__u64 fsid;
	__u64 rid;
	__u64 committed_seq;
	__u64 total_meta_blocks;
	__u64 total_data_blocks;
	__u64 reserved_meta_blocks;
};

#define SCOUTFS_IOC_STATFS_MORE _IOR(SCOUTFS_IOCTL_MAGIC, 10, \
				     struct scoutfs_ioctl_statfs_more)
