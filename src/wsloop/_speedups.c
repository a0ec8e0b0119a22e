/* Optional C accelerator for wsloop's hot paths.
 *
 * - apply_mask: WebSocket masking at memory speed (the pure-Python fallback
 *   in frames.py runs at about 500 MB/s).
 * - encode_frame: one frame's header and (masked) payload as one bytes; a
 *   large one goes into a retired buffer of its size when there is one
 *   (retire/new_frame).
 * - new_payload/fill_payload: a large binary message assembled in place, each
 *   piece copied (and unmasked) once, straight into the bytes object that is
 *   delivered, instead of buffered, sliced and joined.
 * - send/recv_into: a non-blocking socket's two calls per message, on its fd,
 *   keeping the GIL (the call cannot block; releasing and retaking the GIL,
 *   with the socket module's argument parsing and timeout handling, cost
 *   more than the rest of the read path). POSIX only.
 * - read_frame: the common case of parsing, a whole unfragmented data frame
 *   already buffered. Anything else (control frames, fragments, RSV bits,
 *   partial frames, every protocol error) returns None and is left to the
 *   Python parser in protocol/connection.py, which stays the reference:
 *   this function may only ever agree with it or decline.
 *
 * wsloop works without this module. It is compiled by the build hook in
 * hatch_build.py when a C compiler is available.
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

static void
xor_mask(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char *k)
{
    uint64_t k64;
    unsigned char rolled[8];
    Py_ssize_t i = 0;
    for (int j = 0; j < 8; j++)
        rolled[j] = k[j & 3];
    memcpy(&k64, rolled, 8);
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

/* Large buffers written: the transport hands each one it has finished
 * with (64 KiB to 4 MiB) to retire(), which keeps the last RETIRED of them,
 * and encode_frame writes a new frame of the same size into one of those
 * that nothing else references any more, instead of into a new allocation.
 * Freeing each large frame and allocating the next let glibc give the
 * space back to the kernel and page-fault the next one in again: several
 * faults per 256 KiB round trip, slow on virtual machines. Only a bytes
 * object whose sole reference is this ring's is rewritten, so no one can
 * see it change; its cached hash is reset. Per process, under the GIL; at
 * most RETIRED * RETIRE_MAX bytes stay held. (Without this module the
 * transport keeps its own ring, which only delays the frees.) */
#define RETIRED 2
#define RETIRE_MIN (64 * 1024)
#define RETIRE_MAX (4 * 1024 * 1024)
static PyObject *retired[RETIRED];
static int retired_next;

/* retire(buffer) -> None: the transport is done with buffer. */
static PyObject *
retire(PyObject *self, PyObject *buffer)
{
#ifndef Py_GIL_DISABLED
    Py_ssize_t size;
    if (!PyBytes_CheckExact(buffer))
        Py_RETURN_NONE;
    size = PyBytes_GET_SIZE(buffer);
    if (size < RETIRE_MIN || size > RETIRE_MAX)
        Py_RETURN_NONE;
    for (int i = 0; i < RETIRED; i++) {
        if (retired[i] == buffer)
            Py_RETURN_NONE;
    }
    Py_XSETREF(retired[retired_next], Py_NewRef(buffer));
    retired_next = (retired_next + 1) % RETIRED;
#endif
    Py_RETURN_NONE;
}

static PyObject *
new_frame(Py_ssize_t size)
{
#ifndef Py_GIL_DISABLED
    if (size >= RETIRE_MIN && size <= RETIRE_MAX) {
        for (int i = 0; i < RETIRED; i++) {
            PyObject *frame = retired[i];
            if (frame != NULL && Py_REFCNT(frame) == 1 && PyBytes_GET_SIZE(frame) == size) {
                _Py_COMP_DIAG_PUSH
                _Py_COMP_DIAG_IGNORE_DEPR_DECLS
                ((PyBytesObject *)frame)->ob_shash = -1;
                _Py_COMP_DIAG_POP
                return Py_NewRef(frame);
            }
        }
    }
#endif
    return PyBytes_FromStringAndSize(NULL, size);
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
    out = new_frame(hlen + n);
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

/* new_payload(n) -> bytes of n bytes, not yet written.
 *
 * The one bytes object a large message is assembled in: fill_payload writes
 * each piece into it as it arrives, and only once every byte is written is
 * it handed out (protocol/connection.py keeps it private until then, so no
 * one sees it change or hashes it early). */
static PyObject *
new_payload(PyObject *self, PyObject *arg)
{
    Py_ssize_t n;
    if (ssize_arg(arg, &n) < 0)
        return NULL;
    if (n < 2) {
        /* sizes 0 and 1 may be shared singletons: never written in place */
        PyErr_SetString(PyExc_ValueError, "new_payload() is for payloads of 2 bytes or more");
        return NULL;
    }
    return PyBytes_FromStringAndSize(NULL, n);
}

/* fill_payload(dest, offset, src, start, n, key, key_offset) -> None
 *
 * Copy src[start:start + n] into dest (from new_payload) at offset, XORed
 * with the 4-byte masking key stream from key_offset when key is not None. */
static PyObject *
fill_payload(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer src;
    Py_ssize_t offset, start, n, key_offset;
    const unsigned char *key = NULL;
    PyObject *dest;

    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "fill_payload(dest, offset, src, start, n, key, key_offset)");
        return NULL;
    }
    dest = args[0];
    if (!PyBytes_CheckExact(dest) || PyBytes_GET_SIZE(dest) < 2) {
        PyErr_SetString(PyExc_TypeError, "fill_payload() writes into a bytes from new_payload()");
        return NULL;
    }
    if (ssize_arg(args[1], &offset) < 0 || ssize_arg(args[3], &start) < 0 ||
        ssize_arg(args[4], &n) < 0 || ssize_arg(args[6], &key_offset) < 0 ||
        key_arg(args[5], &key) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[2], &src, PyBUF_SIMPLE) < 0)
        return NULL;
    if (offset < 0 || start < 0 || n < 0 || start > src.len || n > src.len - start ||
        offset > PyBytes_GET_SIZE(dest) || n > PyBytes_GET_SIZE(dest) - offset) {
        PyBuffer_Release(&src);
        PyErr_SetString(PyExc_ValueError, "fill_payload() range out of bounds");
        return NULL;
    }
    {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(dest) + offset;
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
    PyBuffer_Release(&src);
    Py_RETURN_NONE;
}

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
    {"new_payload", new_payload, METH_O,
     "new_payload(n) -> bytes: room for a message of n >= 2 bytes, for fill_payload."},
    {"fill_payload", (PyCFunction)(void (*)(void))fill_payload, METH_FASTCALL,
     "fill_payload(dest, offset, src, start, n, key, key_offset): copy (and unmask)\n"
     "src[start:start + n] into dest, a bytes from new_payload, at offset."},
#ifndef _WIN32
    {"send", (PyCFunction)(void (*)(void))fd_send, METH_FASTCALL,
     "send(fd, data) -> int: socket.send on a non-blocking socket's fd, keeping the GIL."},
    {"recv_into", (PyCFunction)(void (*)(void))fd_recv_into, METH_FASTCALL,
     "recv_into(fd, buffer) -> int: socket.recv_into on a non-blocking socket's fd."},
#endif
    {"retire", retire, METH_O,
     "retire(buffer): the transport has written buffer; keep it for encode_frame to reuse."},
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
