"""Runtime sensors from the kernel, no extra daemons: fanotify (file written, file executed) and the
proc connector (exec, fork, exit) feeding a process table."""
