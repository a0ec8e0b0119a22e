/* Optional C accelerator for wsloop's per-byte work: WebSocket masking.
 *
 * wsloop works without it (frames.py has a pure-Python fallback at about
 * 500 MB/s); built, masking runs at memory speed. It is compiled by the
 * build hook in hatch_build.py when a C compiler is available.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *
apply_mask(PyObject *self, PyObject *args)
{
    Py_buffer data, key;
    Py_ssize_t offset = 0;
    PyObject *out = NULL;

    if (!PyArg_ParseTuple(args, "y*y*|n:apply_mask", &data, &key, &offset))
        return NULL;
    if (key.len != 4) {
        PyErr_SetString(PyExc_ValueError, "the masking key must be 4 bytes");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, data.len);
    if (out == NULL)
        goto done;
    {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
        const unsigned char *src = (const unsigned char *)data.buf;
        const unsigned char *k = (const unsigned char *)key.buf;
        unsigned char rolled[8];
        uint64_t k64;
        Py_ssize_t n = data.len, i = 0;
        for (int j = 0; j < 8; j++)
            rolled[j] = k[(j + (offset & 3)) & 3];
        memcpy(&k64, rolled, 8);
        Py_BEGIN_ALLOW_THREADS
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            memcpy(&w, src + i, 8);
            w ^= k64;
            memcpy(dst + i, &w, 8);
        }
        for (; i < n; i++)
            dst[i] = src[i] ^ rolled[i & 3];
        Py_END_ALLOW_THREADS
    }
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&key);
    return out;
}

static PyMethodDef methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, key, offset=0) -> bytes: XOR data with the 4-byte key stream."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wsloop._speedups", "C accelerator for wsloop.", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
