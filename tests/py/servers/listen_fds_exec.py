"""Start a command as a service manager does with socket activation.

    listen_fds_exec.py FD [FD ...] -- ARGV ...

The descriptors named become 3, 4, ... in the command, and LISTEN_FDS and
LISTEN_PID (this process's pid, which exec keeps) say so."""

from __future__ import annotations

import fcntl
import os
import sys

sep = sys.argv.index("--")
fds = [int(a) for a in sys.argv[1:sep]]
argv = sys.argv[sep + 1:]
# Out of the way of the targets first: a source may sit where another goes.
high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3 + len(fds)) for fd in fds]
for fd in fds:
    if fd >= 3 + len(fds):
        os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i, inheritable=True)
    os.close(fd)
os.environ["LISTEN_FDS"] = str(len(fds))
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(argv[0], argv)
