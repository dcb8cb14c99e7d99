/* One folder's entries with their stat, compiled: the listing of a rerun over a local tree is
 * most of its time, and in Python each entry costs a DirEntry, a stat_result and a key call
 * beside the system call itself.  The same entries as sources/local.py's os.scandir walk, which
 * stays the reference and the fallback where no compiler was found at install.
 *
 * entries(path) -> list of (name, kind, size, mtime_ns, dev, ino, errno), unsorted
 *   name    str, decoded as os.fsdecode decodes it
 *   kind    1 a regular file, 2 a folder, 0 anything else, -1 stat failed (errno says why)
 *   size, mtime_ns, dev, ino   of the target of a symbolic link (stat, not lstat); dev and ino
 *           as unsigned 64-bit values (the caller compares them with os.stat's modulo 2**64)
 * Raises OSError (with the path) when the folder cannot be opened or read.  The GIL is released
 * while the folder is read and its entries stat'ed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if defined(__unix__) || defined(__APPLE__)
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

typedef struct {
    char *name;
    int kind, err;
    long long size, mtime_ns;
    unsigned long long dev, ino;
} Entry;

static void free_entries(Entry *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i].name);
    free(items);
}

static PyObject *entries(PyObject *self, PyObject *args)
{
    PyObject *path_obj;
    if (!PyArg_ParseTuple(args, "O&", PyUnicode_FSConverter, &path_obj))
        return NULL;
    const char *path = PyBytes_AS_STRING(path_obj);
    Entry *items = NULL;
    size_t n = 0, cap = 0;
    int fail = 0, oom = 0;
    Py_BEGIN_ALLOW_THREADS
    DIR *dir = opendir(path);
    if (dir == NULL) {
        fail = errno;
    } else {
        int fd = dirfd(dir);
        for (;;) {
            errno = 0;
            struct dirent *d = readdir(dir);
            if (d == NULL) {
                fail = errno;
                break;
            }
            if (d->d_name[0] == '.' && (d->d_name[1] == 0 || (d->d_name[1] == '.' && d->d_name[2] == 0)))
                continue;
            if (n == cap) {
                size_t grown = cap ? 2 * cap : 64;
                Entry *more = realloc(items, grown * sizeof(Entry));
                if (more == NULL) {
                    oom = 1;
                    break;
                }
                items = more;
                cap = grown;
            }
            Entry *e = &items[n];
            e->name = strdup(d->d_name);
            if (e->name == NULL) {
                oom = 1;
                break;
            }
            n++;
            struct stat st;
            if (fstatat(fd, d->d_name, &st, 0) != 0) {
                e->kind = -1;
                e->err = errno;
                e->size = e->mtime_ns = 0;
                e->dev = e->ino = 0;
                continue;
            }
            e->kind = S_ISREG(st.st_mode) ? 1 : S_ISDIR(st.st_mode) ? 2 : 0;
            e->err = 0;
            e->size = (long long)st.st_size;
#if defined(__APPLE__)
            e->mtime_ns = (long long)st.st_mtimespec.tv_sec * 1000000000LL + st.st_mtimespec.tv_nsec;
#else
            e->mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
#endif
            e->dev = (unsigned long long)st.st_dev;
            e->ino = (unsigned long long)st.st_ino;
        }
        closedir(dir);
    }
    Py_END_ALLOW_THREADS
    if (oom) {
        free_entries(items, n);
        Py_DECREF(path_obj);
        return PyErr_NoMemory();
    }
    if (fail) {
        free_entries(items, n);
        PyObject *name = PyUnicode_DecodeFSDefault(path);
        errno = fail; /* set last: decoding the name may allocate, and so touch errno */
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, name);
        Py_XDECREF(name);
        Py_DECREF(path_obj);
        return NULL;
    }
    Py_DECREF(path_obj);
    PyObject *out = PyList_New((Py_ssize_t)n);
    if (out == NULL) {
        free_entries(items, n);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        Entry *e = &items[i];
        PyObject *name = PyUnicode_DecodeFSDefault(e->name);
        PyObject *row = name == NULL ? NULL
                                     : Py_BuildValue("(NiLLKKi)", name, e->kind, e->size, e->mtime_ns, e->dev, e->ino, e->err);
        if (row == NULL) {
            free_entries(items, n);
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)i, row);
    }
    free_entries(items, n);
    return out;
}

static PyMethodDef methods[] = {
    {"entries", entries, METH_VARARGS, "One folder's entries with their stat: see the module's source."},
    {NULL, NULL, 0, NULL},
};
#else
static PyMethodDef methods[] = {{NULL, NULL, 0, NULL}};
#endif

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dir_loop", "One folder's entries with their stat.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_dir_loop(void) { return PyModule_Create(&module); }
