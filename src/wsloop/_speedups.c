/* Optional C accelerator for wsloop's hot paths.
 *
 * - apply_mask: WebSocket masking at memory speed (the pure-Python fallback
 *   in frames.py runs at about 500 MB/s).
 * - encode_frame: one frame's header and (masked) payload as one bytes.
 * - PayloadBuffer: a large binary message assembled as it arrives, each
 *   piece copied (and unmasked) once into the bytes object that take()
 *   hands out when it is complete; nothing else can see it before.
 * - send/recv_into: a non-blocking socket's two calls per message, on its fd,
 *   keeping the GIL (the call cannot block; releasing and retaking the GIL,
 *   with the socket module's argument parsing and timeout handling, cost
 *   more than the rest of the read path). POSIX only.
 * - read_frame: the common case of parsing, a whole unfragmented data frame
 *   already buffered. Anything else (control frames, fragments, RSV bits,
 *   partial frames, every protocol error) returns None and is left to the
 *   Python parser in protocol/reader.py, which stays the reference:
 *   this function may only ever agree with it or decline.
 *
 * wsloop works without this module; protocol/frames.py and transport.py
 * each choose it or their Python twin in one place. It is compiled by the
 * build hook in hatch_build.py when a C compiler is available. Only the
 * public C API is used: no object is changed after another one can see it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifndef _WIN32
#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>
#endif
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* XOR n bytes of src with the 4-byte key stream k into dst (which may be
 * src): 8 bytes a step, and first, for 32 bytes or more, 32 bytes a step as
 * a GCC/clang vector, loaded and stored with memcpy so no alignment is
 * assumed. On x86-64 Linux with GCC the vector step is one AVX2 instruction
 * where the CPU has it (target_clones picks at load time) and two SSE2 ones
 * elsewhere. */
#if defined(__GNUC__) && !defined(__INTEL_COMPILER)
typedef uint32_t mask_block __attribute__((vector_size(32)));
#if defined(__x86_64__) && defined(__linux__) && !defined(__clang__)
#define MASK_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MASK_CLONES
#endif
MASK_CLONES static Py_ssize_t
xor_mask_blocks(unsigned char *dst, const unsigned char *src, Py_ssize_t n, uint32_t k32)
{
    mask_block kv = {k32, k32, k32, k32, k32, k32, k32, k32}, w;
    Py_ssize_t i = 0;
    for (; i + 128 <= n; i += 128) {
        for (int b = 0; b < 128; b += 32) {
            memcpy(&w, src + i + b, 32);
            w ^= kv;
            memcpy(dst + i + b, &w, 32);
        }
    }
    for (; i + 32 <= n; i += 32) {
        memcpy(&w, src + i, 32);
        w ^= kv;
        memcpy(dst + i, &w, 32);
    }
    return i;
}
#define MASK_BLOCKS 1
#endif

static void
xor_mask(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char *k)
{
    uint32_t k32;
    uint64_t k64;
    Py_ssize_t i = 0;
    memcpy(&k32, k, 4);
    k64 = ((uint64_t)k32 << 32) | k32; /* the same 8 bytes in either byte order */
#ifdef MASK_BLOCKS
    if (n >= 32)
        i = xor_mask_blocks(dst, src, n, k32); /* a multiple of 4: the key is in phase */
#endif
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= k64;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ k[i & 3];
}

/* Argument helpers of the METH_FASTCALL functions: 0, or -1 with an
 * exception set. */
static int
ssize_arg(PyObject *arg, Py_ssize_t *out)
{
    *out = PyLong_AsSsize_t(arg);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* A masking key: 4 bytes, or None (*key = NULL). */
static int
key_arg(PyObject *arg, const unsigned char **key)
{
    *key = NULL;
    if (arg == Py_None)
        return 0;
    if (!PyBytes_Check(arg) || PyBytes_GET_SIZE(arg) != 4) {
        PyErr_SetString(PyExc_ValueError, "the masking key must be 4 bytes or None");
        return -1;
    }
    *key = (const unsigned char *)PyBytes_AS_STRING(arg);
    return 0;
}

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
        unsigned char rolled[4];
        for (int j = 0; j < 4; j++)
            rolled[j] = ((const unsigned char *)key.buf)[(j + offset) & 3];
        Py_BEGIN_ALLOW_THREADS
        xor_mask((unsigned char *)PyBytes_AS_STRING(out), (const unsigned char *)data.buf,
                 data.len, rolled);
        Py_END_ALLOW_THREADS
    }
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&key);
    return out;
}

/* encode_frame(first_byte, payload, mask_key) -> bytes */
static PyObject *
encode_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer payload;
    PyObject *out = NULL;
    unsigned char head[14];
    Py_ssize_t hlen, n;
    const unsigned char *key = NULL;
    long b0;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "encode_frame(first_byte, payload, mask_key)");
        return NULL;
    }
    b0 = PyLong_AsLong(args[0]);
    if (b0 == -1 && PyErr_Occurred())
        return NULL;
    if (key_arg(args[2], &key) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &payload, PyBUF_SIMPLE) < 0)
        return NULL;
    n = payload.len;
    head[0] = (unsigned char)b0;
    if (n < 126) {
        head[1] = (unsigned char)n;
        hlen = 2;
    } else if (n < 65536) {
        head[1] = 126;
        head[2] = (unsigned char)(n >> 8);
        head[3] = (unsigned char)n;
        hlen = 4;
    } else {
        uint64_t v = (uint64_t)n;
        head[1] = 127;
        for (int j = 0; j < 8; j++)
            head[2 + j] = (unsigned char)(v >> (56 - 8 * j));
        hlen = 10;
    }
    if (key != NULL) {
        head[1] |= 0x80;
        memcpy(head + hlen, key, 4);
        hlen += 4;
    }
    out = PyBytes_FromStringAndSize(NULL, hlen + n);
    if (out != NULL) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
        memcpy(dst, head, hlen);
        if (key != NULL)
            xor_mask(dst + hlen, (const unsigned char *)payload.buf, n, key);
        else
            memcpy(dst + hlen, payload.buf, n);
    }
    PyBuffer_Release(&payload);
    return out;
}

/* PayloadBuffer(size): one message of a known size, assembled in place.
 *
 * It owns a bytes object made uninitialised by PyBytes_FromStringAndSize
 * (NULL, size), the C API's way to build one, and keeps the only reference
 * until every byte is written: fill() copies (and unmasks) each piece into
 * it, take() hands it out. Used by one connection's reader at a time. */
typedef struct {
    PyObject_HEAD
    PyObject *data; /* NULL once taken */
    Py_ssize_t filled;
} PayloadBuffer;

static PyObject *
payload_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Py_ssize_t size;
    PayloadBuffer *self;
    if (!PyArg_ParseTuple(args, "n:PayloadBuffer", &size))
        return NULL;
    if (size < 2) {
        /* sizes 0 and 1 may be shared singletons */
        PyErr_SetString(PyExc_ValueError, "PayloadBuffer() is for messages of 2 bytes or more");
        return NULL;
    }
    self = (PayloadBuffer *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->data = PyBytes_FromStringAndSize(NULL, size);
    if (self->data == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->filled = 0;
    return (PyObject *)self;
}

static void
payload_dealloc(PayloadBuffer *self)
{
    PyTypeObject *type = Py_TYPE(self);
    Py_CLEAR(self->data);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* Without the GIL (free-threaded builds), each call on a PayloadBuffer holds
 * the object's critical section: fill() and take() never interleave. */
#if PY_VERSION_HEX >= 0x030D0000
#define PAYLOAD_LOCK(self) Py_BEGIN_CRITICAL_SECTION(self)
#define PAYLOAD_UNLOCK(self) Py_END_CRITICAL_SECTION()
#else
#define PAYLOAD_LOCK(self) {
#define PAYLOAD_UNLOCK(self) }
#endif

static PyObject *payload_fill_locked(PayloadBuffer *self, PyObject *const *args,
                                     Py_ssize_t nargs);
static PyObject *payload_take_locked(PayloadBuffer *self);

/* fill(src, start, n, key, key_offset) -> None: append src[start:start + n],
 * XORed with the 4-byte key stream from key_offset unless key is None. */
static PyObject *
payload_fill(PayloadBuffer *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *result;
    PAYLOAD_LOCK(self);
    result = payload_fill_locked(self, args, nargs);
    PAYLOAD_UNLOCK(self);
    return result;
}

/* take() -> bytes: the message, once every byte of it is filled. */
static PyObject *
payload_take(PayloadBuffer *self, PyObject *unused)
{
    PyObject *result;
    PAYLOAD_LOCK(self);
    result = payload_take_locked(self);
    PAYLOAD_UNLOCK(self);
    return result;
}

static PyObject *
payload_fill_locked(PayloadBuffer *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer src;
    Py_ssize_t start, n, key_offset, size;
    const unsigned char *key = NULL;

    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "fill(src, start, n, key, key_offset)");
        return NULL;
    }
    if (self->data == NULL) {
        PyErr_SetString(PyExc_ValueError, "PayloadBuffer.fill() after take()");
        return NULL;
    }
    if (ssize_arg(args[1], &start) < 0 || ssize_arg(args[2], &n) < 0 ||
        ssize_arg(args[4], &key_offset) < 0 || key_arg(args[3], &key) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[0], &src, PyBUF_SIMPLE) < 0)
        return NULL;
    size = PyBytes_GET_SIZE(self->data);
    if (start < 0 || n < 0 || start > src.len || n > src.len - start ||
        n > size - self->filled) {
        PyBuffer_Release(&src);
        PyErr_SetString(PyExc_ValueError, "PayloadBuffer.fill() range out of bounds");
        return NULL;
    }
    {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(self->data) + self->filled;
        const unsigned char *from = (const unsigned char *)src.buf + start;
        if (key != NULL) {
            unsigned char rolled[4];
            for (int j = 0; j < 4; j++)
                rolled[j] = key[(j + key_offset) & 3];
            xor_mask(dst, from, n, rolled);
        } else {
            memcpy(dst, from, n);
        }
    }
    self->filled += n;
    PyBuffer_Release(&src);
    Py_RETURN_NONE;
}

static PyObject *
payload_take_locked(PayloadBuffer *self)
{
    PyObject *data = self->data;
    if (data == NULL || self->filled != PyBytes_GET_SIZE(data)) {
        PyErr_SetString(PyExc_ValueError,
                        data == NULL ? "PayloadBuffer.take() twice"
                                     : "PayloadBuffer.take() before every byte is filled");
        return NULL;
    }
    self->data = NULL;
    return data;
}

static PyObject *
payload_filled(PayloadBuffer *self, void *closure)
{
    return PyLong_FromSsize_t(self->filled);
}

static PyMethodDef payload_methods[] = {
    {"fill", (PyCFunction)(void (*)(void))payload_fill, METH_FASTCALL,
     "fill(src, start, n, key, key_offset): append src[start:start + n], unmasked with\n"
     "the 4-byte key from key_offset (key None: copied as is)."},
    {"take", (PyCFunction)payload_take, METH_NOARGS,
     "take() -> bytes: the whole message, once every byte is filled."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef payload_getset[] = {
    {"filled", (getter)payload_filled, NULL, "How many bytes are filled.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot payload_slots[] = {
    {Py_tp_new, payload_new},
    {Py_tp_dealloc, payload_dealloc},
    {Py_tp_methods, payload_methods},
    {Py_tp_getset, payload_getset},
    {Py_tp_doc, "PayloadBuffer(size): a message of size bytes (>= 2), assembled in place."},
    {0, NULL},
};

static PyType_Spec payload_spec = {
    "wsloop._speedups.PayloadBuffer", sizeof(PayloadBuffer), 0,
    Py_TPFLAGS_DEFAULT, payload_slots,
};

#ifndef _WIN32
/* Sends this large or larger release the GIL: copying them into the kernel
 * (and, on loopback, the receiver's processing) takes long enough that
 * other threads should run meanwhile. */
#define SEND_KEEPS_GIL (64 * 1024)

static int
fd_arg(PyObject *arg)
{
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return -2;
    if (fd < -1 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "a file descriptor is an int >= -1");
        return -2;
    }
    return (int)fd; /* -1 (a closed socket's) fails in the call with EBADF */
}

/* The syscall of send (sending) or recv_into, with the socket methods'
 * results and exceptions: the count, or OSError (BlockingIOError when the
 * kernel has nothing to give or take); EINTR retried after running signal
 * handlers. */
static PyObject *
fd_io(PyObject *const *args, Py_ssize_t nargs, int sending)
{
    Py_buffer buf;
    Py_ssize_t n;
    int fd;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, sending ? "send(fd, data)" : "recv_into(fd, buffer)");
        return NULL;
    }
    if ((fd = fd_arg(args[0])) == -2)
        return NULL;
    if (PyObject_GetBuffer(args[1], &buf, sending ? PyBUF_SIMPLE : PyBUF_WRITABLE) < 0) {
        if (!sending && PyErr_ExceptionMatches(PyExc_BufferError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "recv_into() needs a writable buffer");
        }
        return NULL;
    }
    for (;;) {
        if (!sending) {
            n = recv(fd, buf.buf, (size_t)buf.len, 0);
        } else if (buf.len < SEND_KEEPS_GIL) {
            n = send(fd, buf.buf, (size_t)buf.len, MSG_NOSIGNAL);
        } else {
            Py_BEGIN_ALLOW_THREADS
            n = send(fd, buf.buf, (size_t)buf.len, MSG_NOSIGNAL);
            Py_END_ALLOW_THREADS
        }
        if (n >= 0 || errno != EINTR)
            break;
        if (PyErr_CheckSignals() < 0) {
            PyBuffer_Release(&buf);
            return NULL;
        }
    }
    PyBuffer_Release(&buf);
    if (n < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromSsize_t(n);
}

/* send(fd, data) -> int: socket.send on a non-blocking socket, without
 * SIGPIPE. */
static PyObject *
fd_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return fd_io(args, nargs, 1);
}

/* recv_into(fd, buffer) -> int: socket.recv_into on a non-blocking socket
 * (0 at the end of the stream). */
static PyObject *
fd_recv_into(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return fd_io(args, nargs, 0);
}

#endif

/* read_frame(buf, pos, end, is_client, limit) -> (data, frame_end) | None
 *
 * Looks at buf[pos:end] only (end: how much of a reused read buffer is
 * filled). data is str for a text frame, bytes for a binary one; frame_end
 * is the offset just past the frame. limit < 0 means no size limit. */
static PyObject *
read_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer buf;
    Py_ssize_t pos, end, limit, avail, head = 2;
    uint64_t length;
    int is_client, masked, opcode;
    const unsigned char *p;
    PyObject *data = NULL, *result = NULL;

    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "read_frame(buf, pos, end, is_client, limit)");
        return NULL;
    }
    if (ssize_arg(args[1], &pos) < 0 || ssize_arg(args[2], &end) < 0 ||
        ssize_arg(args[4], &limit) < 0)
        return NULL;
    is_client = PyObject_IsTrue(args[3]);
    if (is_client < 0)
        return NULL;
    if (PyObject_GetBuffer(args[0], &buf, PyBUF_SIMPLE) < 0)
        return NULL;
    if (end > buf.len) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "read_frame() end is past the end of the buffer");
        return NULL;
    }
    avail = end - pos;
    if (pos < 0 || avail < 2)
        goto decline;
    p = (const unsigned char *)buf.buf + pos;
    opcode = p[0] & 0x0F;
    masked = (p[1] & 0x80) != 0;
    /* FIN, no RSV bits, a text or binary frame, masked iff from a client. */
    if ((p[0] & 0xF0) != 0x80 || (opcode != 1 && opcode != 2) || masked == is_client)
        goto decline;
    length = p[1] & 0x7F;
    if (length == 126) {
        if (avail < 4)
            goto decline;
        length = ((uint64_t)p[2] << 8) | p[3];
        head = 4;
        if (length < 126)
            goto decline;
    } else if (length == 127) {
        if (avail < 10)
            goto decline;
        length = 0;
        for (int j = 0; j < 8; j++)
            length = (length << 8) | p[2 + j];
        head = 10;
        if (length < 65536)
            goto decline;
    }
    if (masked)
        head += 4;
    if ((uint64_t)avail < (uint64_t)head || length > (uint64_t)(avail - head))
        goto decline;
    if (limit >= 0 && length > (uint64_t)limit)
        goto decline;
    if (masked) {
        PyObject *raw = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)length);
        if (raw == NULL)
            goto done;
        xor_mask((unsigned char *)PyBytes_AS_STRING(raw), p + head, (Py_ssize_t)length,
                 p + head - 4);
        if (opcode == 1) {
            data = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(raw), (Py_ssize_t)length, "strict");
            Py_DECREF(raw);
        } else {
            data = raw;
        }
    } else if (opcode == 1) {
        data = PyUnicode_DecodeUTF8((const char *)p + head, (Py_ssize_t)length, "strict");
    } else {
        data = PyBytes_FromStringAndSize((const char *)p + head, (Py_ssize_t)length);
    }
    if (data == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear(); /* invalid UTF-8: the Python parser fails the connection */
            goto decline;
        }
        goto done;
    }
    {
        /* Built by hand: Py_BuildValue parses its format on every call. */
        PyObject *frame_end = PyLong_FromSsize_t(pos + head + (Py_ssize_t)length);
        if (frame_end != NULL)
            result = PyTuple_Pack(2, data, frame_end);
        Py_XDECREF(frame_end);
        Py_DECREF(data);
    }
    goto done;
decline:
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&buf);
    return result;
}

static PyMethodDef methods[] = {
    {"encode_frame", (PyCFunction)(void (*)(void))encode_frame, METH_FASTCALL,
     "encode_frame(first_byte, payload, mask_key) -> bytes: one whole frame."},
    {"read_frame", (PyCFunction)(void (*)(void))read_frame, METH_FASTCALL,
     "read_frame(buf, pos, end, is_client, limit) -> (data, frame_end) or None: a whole\n"
     "unfragmented text/binary frame at buf[pos:end], or None to use the Python parser."},
#ifndef _WIN32
    {"send", (PyCFunction)(void (*)(void))fd_send, METH_FASTCALL,
     "send(fd, data) -> int: socket.send on a non-blocking socket's fd, keeping the GIL."},
    {"recv_into", (PyCFunction)(void (*)(void))fd_recv_into, METH_FASTCALL,
     "recv_into(fd, buffer) -> int: socket.recv_into on a non-blocking socket's fd."},

#endif
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, key, offset=0) -> bytes: XOR data with the 4-byte key stream."},
    {NULL, NULL, 0, NULL},
};

static int
module_exec(PyObject *module)
{
    PyObject *type = PyType_FromSpec(&payload_spec);
    if (type == NULL)
        return -1;
    if (PyModule_AddObject(module, "PayloadBuffer", type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED}, /* no global state: safe without the GIL */
#endif
    {0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wsloop._speedups", "C accelerator for wsloop.", 0, methods,
    module_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&module);
}
