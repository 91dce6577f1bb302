#!/usr/bin/env python3
"""A FUSE file system, spoken raw over /dev/fuse, whose statfs hangs: it stands in for a hard
NFS mount whose server went away (tests/host_collector.rs).

    hang_statfs.py MOUNTPOINT RELEASE_FILE

Mounts an empty directory at MOUNTPOINT, prints "mounted" and serves it. statfs requests are
left unanswered while RELEASE_FILE does not exist; once it appears they (and every later one)
are answered with a small fixed size. Exits when the kernel ends the connection (umount or
an abort through /sys/fs/fuse/connections). Needs root; uses only the standard library.
Run it under `unshare --mount --propagation private` so the hung mount exists only in its own
mount namespace: any process on the machine that statfs'es every mount would hang on it.
"""
import ctypes
import errno
import os
import select
import struct
import sys

FUSE_LOOKUP, FUSE_FORGET, FUSE_GETATTR, FUSE_STATFS, FUSE_INIT, FUSE_DESTROY = 1, 2, 3, 17, 26, 38
FUSE_BATCH_FORGET = 42
IN_HEADER = struct.Struct("<IIQQIIIHH")  # len, opcode, unique, nodeid, uid, gid, pid, extlen, pad
OUT_HEADER = struct.Struct("<IiQ")  # len, error, unique


def reply(fd, unique, payload=b"", error=0):
    os.write(fd, OUT_HEADER.pack(OUT_HEADER.size + len(payload), error, unique) + payload)


def root_attr():
    # fuse_attr_out: attr_valid, attr_valid_nsec, dummy, then fuse_attr (88 bytes).
    attr = struct.pack(
        "<QQQQQQIIIIIIIIII", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0o040755, 2, 0, 0, 0, 4096, 0
    )
    return struct.pack("<QII", 1, 0, 0) + attr


def statfs_out():
    # fuse_kstatfs: blocks, bfree, bavail, files, ffree, bsize, namelen, frsize, padding, spare[6].
    return struct.pack("<QQQQQIIII6I", 1000, 500, 400, 100, 50, 4096, 255, 4096, 0, *([0] * 6))


def main():
    mountpoint, release = sys.argv[1], sys.argv[2]
    fd = os.open("/dev/fuse", os.O_RDWR)
    libc = ctypes.CDLL(None, use_errno=True)
    opts = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
    MS_NOSUID, MS_NODEV = 2, 4
    if libc.mount(b"redline-hang", mountpoint.encode(), b"fuse.redlinehang", MS_NOSUID | MS_NODEV, opts) != 0:
        e = ctypes.get_errno()
        print(f"mount failed: {os.strerror(e)}", flush=True)
        sys.exit(2)
    print("mounted", flush=True)
    pending = []
    while True:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if pending and os.path.exists(release):
            for unique in pending:
                reply(fd, unique, statfs_out())
            pending.clear()
        if not ready:
            continue
        try:
            buf = os.read(fd, 1 << 20)
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ECONNABORTED):
                return  # unmounted or aborted
            if e.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
                continue
            raise
        _, opcode, unique, _, _, _, _, _, _ = IN_HEADER.unpack_from(buf)
        body = buf[IN_HEADER.size:]
        if opcode == FUSE_INIT:
            major, minor = struct.unpack_from("<II", body)
            # fuse_init_out: major, minor, max_readahead, flags, max_background,
            # congestion_threshold, max_write, time_gran, max_pages, map_alignment, flags2, unused[7].
            out = struct.pack("<IIIIHHIIHHI7I", 7, min(minor, 31), 0, 0, 1, 1, 4096, 1, 1, 0, 0, *([0] * 7))
            reply(fd, unique, out)
        elif opcode == FUSE_GETATTR:
            reply(fd, unique, root_attr())
        elif opcode == FUSE_STATFS:
            if os.path.exists(release):
                reply(fd, unique, statfs_out())
            else:
                pending.append(unique)
        elif opcode in (FUSE_FORGET, FUSE_BATCH_FORGET):
            pass  # no reply expected
        elif opcode == FUSE_DESTROY:
            reply(fd, unique)
            return
        elif opcode == FUSE_LOOKUP:
            reply(fd, unique, error=-errno.ENOENT)
        else:
            reply(fd, unique, error=-errno.ENOSYS)


if __name__ == "__main__":
    main()
