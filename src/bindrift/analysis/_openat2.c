/* openat2(2) for safe_open.py: the call every file of a scan is opened with, compiled (through ctypes it
 * cost a few microseconds per file and the ctypes import on every start-up). Raises OSError with the
 * kernel's errno, ENOSYS on a kernel without openat2 included; the GIL is released during the call. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437 /* the same number on every Linux architecture (unified syscall table, 5.6+) */
#endif

struct how { /* struct open_how of <linux/openat2.h> */
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

static PyObject *openat2(PyObject *module, PyObject *args) {
    int dirfd;
    PyObject *path;
    unsigned long long flags, resolve;
    if (!PyArg_ParseTuple(args, "iO&KK", &dirfd, PyUnicode_FSConverter, &path, &flags, &resolve))
        return NULL;
    struct how how = {.flags = flags, .mode = 0, .resolve = resolve};
    long fd;
    int err;
    Py_BEGIN_ALLOW_THREADS
    fd = syscall(SYS_openat2, dirfd, PyBytes_AS_STRING(path), &how, sizeof how);
    err = errno;
    Py_END_ALLOW_THREADS
    if (fd < 0) {
        errno = err;
        PyObject *name = PyUnicode_DecodeFSDefault(PyBytes_AS_STRING(path));
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, name);
        Py_XDECREF(name);
        Py_DECREF(path);
        return NULL;
    }
    Py_DECREF(path);
    return PyLong_FromLong(fd);
}

static PyMethodDef methods[] = {
    {"openat2", openat2, METH_VARARGS,
     "openat2(dirfd, path, flags, resolve) -> fd: open_how.mode is 0 (files are only read); OSError on failure."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_openat2", "openat2(2) (see safe_open.py).", -1,
                                        methods};

PyMODINIT_FUNC PyInit__openat2(void) { return PyModule_Create(&module_def); }
