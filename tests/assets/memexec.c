/* Runs a program from memory: copies the file named by argv[1] into a memfd and fexecve()s it as
   `sleep 0.5` (busybox picks its applet from argv[0]). The agent test's fileless execution. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int in = open(argv[1], O_RDONLY | O_CLOEXEC);
    int mem = memfd_create("payload", MFD_CLOEXEC);
    if (in < 0 || mem < 0) return 1;
    char buffer[65536];
    ssize_t n;
    while ((n = read(in, buffer, sizeof buffer)) > 0)
        if (write(mem, buffer, (size_t)n) != n) return 1;
    char *args[] = {"sleep", "0.5", 0};
    char *env[] = {0};
    fexecve(mem, args, env);
    return 127;
}
