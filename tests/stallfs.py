#!/usr/bin/env python3
"""A FUSE folder that stalls on demand: tests/stall.rs's slow disk.

    python3 tests/stallfs.py BACKING MOUNTPOINT

Mounts a read-only view of BACKING at MOUNTPOINT (fusepy over Debian's
libfuse2) and takes orders on stdin, one per line:

    stall     every operation from now on waits (a packages_dir on an SD
              card under write load, a hung NFS or SMB server)
    release   the waiting operations go on, and the next ones do not wait
    quit      releases, unmounts and exits (so does the end of stdin)

and says on stdout, one line each, flushed:

    mounted               the kernel talks to us: the folder can be used
    blocked OP PATH       the first operation that waits since `stall`
                          (the caller is now stuck in the kernel)
    released

An operation never waits more than STALL_LIMIT seconds (30), so that a
test that forgets to release cannot leave a process stuck for ever.
"""

import errno
import os
import sys
import threading

from fuse import FUSE, FuseOSError, Operations

STALL_LIMIT = 30.0


class Stall:
    """Whether operations wait now, and the first one that did."""

    def __init__(self):
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.released.set()
        self.reported = True

    def stall(self):
        with self.lock:
            self.released.clear()
            self.reported = False

    def release(self):
        with self.lock:
            self.released.set()
        say("released")

    def wait(self, op, path):
        if self.released.is_set():
            return
        with self.lock:
            report = not self.reported
            self.reported = True
        if report:
            say(f"blocked {op} {path}")
        self.released.wait(STALL_LIMIT)


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class StallingView(Operations):
    """A read-only pass-through of `root` whose operations all go through `stall`."""

    def __init__(self, root, stall):
        self.root = root
        self.stall = stall

    def __call__(self, op, path, *args):
        if op not in ("init", "destroy"):
            self.stall.wait(op, path)
        return super().__call__(op, path, *args)

    def real(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def init(self, path):
        say("mounted")

    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self.real(path))
        except OSError as error:
            raise FuseOSError(error.errno)
        keys = ("st_mode", "st_size", "st_uid", "st_gid", "st_nlink", "st_ino",
                "st_atime", "st_mtime", "st_ctime")
        attrs = {key: getattr(st, key) for key in keys}
        # Nanoseconds, so that a rewrite within the same second shows.
        for key in ("st_atime", "st_mtime", "st_ctime"):
            attrs[key] = getattr(st, key + "_ns") / 1e9
        return attrs

    def access(self, path, mode):
        if not os.access(self.real(path), mode):
            raise FuseOSError(errno.EACCES)

    def readdir(self, path, fh):
        try:
            return [".", ".."] + os.listdir(self.real(path))
        except OSError as error:
            raise FuseOSError(error.errno)

    def readlink(self, path):
        return os.readlink(self.real(path))

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise FuseOSError(errno.EROFS)
        try:
            return os.open(self.real(path), os.O_RDONLY)
        except OSError as error:
            raise FuseOSError(error.errno)

    def read(self, path, size, offset, fh):
        os.lseek(fh, offset, os.SEEK_SET)
        return os.read(fh, size)

    def release(self, path, fh):
        os.close(fh)

    def statfs(self, path):
        st = os.statvfs(self.real(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        return {key: getattr(st, key) for key in keys}


def orders(stall, mountpoint):
    """Reads stdin's orders until `quit` or its end, then leaves."""
    for line in sys.stdin:
        order = line.strip()
        if order == "stall":
            stall.stall()
        elif order == "release":
            stall.release()
        elif order == "quit":
            break
    stall.release()
    # A lazy unmount: the kernel fails what still waits, nothing hangs.
    os.system(f"fusermount -u -z {mountpoint} >/dev/null 2>&1 || umount -l {mountpoint} >/dev/null 2>&1")
    os._exit(0)


def main():
    backing, mountpoint = sys.argv[1], sys.argv[2]
    stall = Stall()
    threading.Thread(target=orders, args=(stall, mountpoint), daemon=True).start()
    # Multithreaded: a waiting operation holds one thread, the others go on.
    FUSE(StallingView(os.path.realpath(backing), stall), mountpoint,
         foreground=True, nothreads=False, ro=True)


if __name__ == "__main__":
    main()
