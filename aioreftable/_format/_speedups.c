/* The compiled ref-block decoder: the hot loops of aioreftable/_format/_block.py in C.
 *
 * The pure-Python code in _block.py is the reference. Every function here decodes only what
 * the reference decodes without error and returns exactly its values; at anything else (a
 * damaged record, a varint past the block, an update index past 64 bits) it stops and says
 * where, and the reference takes over from there and raises its FormatError. So no error
 * is raised here, and none can differ between the two paths.
 *
 * Functions (all take the block's bytes and positions as _block.Block holds them):
 *   configure(RefRecord, DELETION, VAL1, VAL2, SYMREF)
 *   ref_records(data, pos, end, prev, hash_size, min_update_index, limit[, prefix])
 *       -> (records, pos, prev): up to `limit` records from `pos`; stops early before the
 *          first record it cannot decode, or whose name does not start with `prefix`
 *          (pos < end then).
 *   ref_iter(data, pos, end, prev, hash_size, min_update_index) -> RefIter
 *       the same, lazily: an iterator whose .pos and .prev say where it stopped.
 *   seek(data, first_pos, end, restart_count, hash_size, want) -> (pos, prev) | None
 *       the cold seek of Block.seek; None where the reference would raise.
 *   hot_index(data, first_pos, end, hash_size) -> bytes | None
 *       every key and position of the block packed in one bytes object (Block._decode_keys).
 *   hot_seek(index, want) -> (pos, prev): bisect.bisect_left over the packed keys.
 *   common_prefix(a, b) -> int: _binary.common_prefix, for the block writer.
 *   configure_ref(Ref) -> bool: the ref layer's value class (a slotted dataclass with the
 *       fields name, oid, target, peeled); False (and refs_from_records unusable) when its
 *       slots are not plain object members.
 *   refs_from_records(records, start, under) -> (refs, index): the Ref of each live record
 *       from records[start] on (ref_from_record in _refs/_core.py; deletions are skipped),
 *       up to the end or the first record whose name does not start with `under` or whose
 *       shape it does not know (index says which), which the caller's Python code handles
 *       (its name rules; its errors).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include "structmember.h"

static PyObject *RefRecordType; /* a tuple subclass (typing.NamedTuple) */
static PyObject *VT[4];         /* RefValueType members: DELETION, VAL1, VAL2, SYMREF */
static PyObject *EMPTY;         /* b"" */

#define OVERFLOW_GUARD (((uint64_t)1) << 57)

/* git's offset varint (_binary.get_varint); 0 where the reference raises. */
static int
get_varint(const unsigned char *d, Py_ssize_t *pos, Py_ssize_t end, uint64_t *out)
{
    Py_ssize_t p = *pos;
    if (p >= end)
        return 0;
    unsigned char c = d[p++];
    uint64_t v = c & 0x7F;
    while (c & 0x80) {
        v += 1;
        if (v >= OVERFLOW_GUARD)
            return 0;
        if (p >= end)
            return 0;
        c = d[p++];
        v = (v << 7) | (c & 0x7F);
    }
    *pos = p;
    *out = v;
    return 1;
}

/* A growable key buffer. */
typedef struct {
    unsigned char *buf;
    Py_ssize_t len, cap;
    unsigned char small[256];
} keybuf;

static void
kb_init(keybuf *k)
{
    k->buf = k->small;
    k->len = 0;
    k->cap = (Py_ssize_t)sizeof(k->small);
}

static void
kb_free(keybuf *k)
{
    if (k->buf != k->small)
        PyMem_Free(k->buf);
}

static int
kb_reserve(keybuf *k, Py_ssize_t n)
{
    if (n <= k->cap)
        return 1;
    Py_ssize_t cap = k->cap;
    while (cap < n)
        cap *= 2;
    unsigned char *b = PyMem_Malloc((size_t)cap);
    if (b == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    memcpy(b, k->buf, (size_t)k->len);
    kb_free(k);
    k->buf = b;
    k->cap = cap;
    return 1;
}

/* Decode the key of the record at *pos on top of `key` (holding the previous key), as
 * Block._key_at does. 1: decoded, *pos at the value, *vt set; 0: the reference raises;
 * -1: a Python error (memory). */
static int
key_at(const unsigned char *d, Py_ssize_t *pos, Py_ssize_t end, keybuf *key, int *vt)
{
    Py_ssize_t p = *pos;
    uint64_t prefix, svt;
    if (!get_varint(d, &p, end, &prefix) || !get_varint(d, &p, end, &svt))
        return 0;
    if (prefix > (uint64_t)key->len)
        return 0;
    uint64_t suffix = svt >> 3;
    if (suffix > (uint64_t)(end - p))
        return 0;
    Py_ssize_t n = (Py_ssize_t)prefix + (Py_ssize_t)suffix;
    if (n == 0)
        return 0;
    if (!kb_reserve(key, n))
        return -1;
    memcpy(key->buf + prefix, d + p, (size_t)suffix);
    key->len = n;
    *pos = p + (Py_ssize_t)suffix;
    *vt = (int)(svt & 7);
    return 1;
}

/* The position after a ref value (Block._skip_value); 0 where the reference raises. */
static int
skip_ref_value(const unsigned char *d, Py_ssize_t *pos, Py_ssize_t end, int vt, Py_ssize_t hs)
{
    Py_ssize_t p = *pos;
    uint64_t delta, n;
    if (!get_varint(d, &p, end, &delta))
        return 0;
    switch (vt) {
    case 0:
        break;
    case 1:
        p += hs;
        break;
    case 2:
        p += 2 * hs;
        break;
    case 3:
        if (!get_varint(d, &p, end, &n) || n > (uint64_t)(end - p))
            return 0;
        p += (Py_ssize_t)n;
        break;
    default:
        return 0;
    }
    if (p > end)
        return 0;
    *pos = p;
    return 1;
}

static int
compare(const unsigned char *a, Py_ssize_t alen, const unsigned char *b, Py_ssize_t blen)
{
    Py_ssize_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, (size_t)n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

static PyObject *
py_configure(PyObject *self, PyObject *args)
{
    PyObject *cls, *v[4];
    if (!PyArg_ParseTuple(args, "OOOOO", &cls, &v[0], &v[1], &v[2], &v[3]))
        return NULL;
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "RefRecord must be a tuple subclass");
        return NULL;
    }
    Py_INCREF(cls);
    Py_XSETREF(RefRecordType, cls);
    for (int i = 0; i < 4; i++) {
        Py_INCREF(v[i]);
        Py_XSETREF(VT[i], v[i]);
    }
    Py_RETURN_NONE;
}

static int
as_bytes(PyObject *o, const unsigned char **buf, Py_ssize_t *len)
{
    if (!PyBytes_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "expected bytes");
        return 0;
    }
    *buf = (const unsigned char *)PyBytes_AS_STRING(o);
    *len = PyBytes_GET_SIZE(o);
    return 1;
}

/* One RefRecord: (refname, update_index, value_type, value, target_value, target). Steals
 * the references it is given. */
static PyObject *
make_record(PyObject *key, PyObject *ui, int vt, PyObject *value, PyObject *target_value,
            PyObject *target)
{
    PyTypeObject *tp = (PyTypeObject *)RefRecordType;
    PyObject *rec = tp->tp_alloc(tp, 6);
    if (rec == NULL) {
        Py_DECREF(key);
        Py_DECREF(ui);
        Py_XDECREF(value);
        Py_XDECREF(target_value);
        Py_XDECREF(target);
        return NULL;
    }
    Py_INCREF(VT[vt]);
    PyTuple_SET_ITEM(rec, 0, key);
    PyTuple_SET_ITEM(rec, 1, ui);
    PyTuple_SET_ITEM(rec, 2, VT[vt]);
    if (value == NULL) {
        Py_INCREF(Py_None);
        value = Py_None;
    }
    if (target_value == NULL) {
        Py_INCREF(Py_None);
        target_value = Py_None;
    }
    if (target == NULL) {
        Py_INCREF(Py_None);
        target = Py_None;
    }
    PyTuple_SET_ITEM(rec, 3, value);
    PyTuple_SET_ITEM(rec, 4, target_value);
    PyTuple_SET_ITEM(rec, 5, target);
    /* bytes, ints, None and a value type (an enum member, which refers to no record): no
     * cycle can run through a record, so the cyclic collector need not track it (a scan
     * holds a block's records at once; tracked, they would be walked by every collection) */
    PyObject_GC_UnTrack(rec);
    return rec;
}

/* Decode the ref record at *pos following the key *prev (Block._ref_records). 1: *out is
 * the record, *pos and *prev (a new reference) move past it; 0: the reference must decode
 * this record (a damaged one, or an update index past 64 bits); -1: a Python error. */
static int
decode_one(const unsigned char *d, Py_ssize_t *pos, Py_ssize_t end, PyObject **prev,
           Py_ssize_t hs, uint64_t mui, const char *want, Py_ssize_t wlen, PyObject **out)
{
    Py_ssize_t p = *pos;
    uint64_t prefix, svt, delta, n;
    const unsigned char *pb = (const unsigned char *)PyBytes_AS_STRING(*prev);
    Py_ssize_t plen = PyBytes_GET_SIZE(*prev);
    if (!get_varint(d, &p, end, &prefix) || !get_varint(d, &p, end, &svt))
        return 0;
    uint64_t suffix = svt >> 3;
    int vt = (int)(svt & 7);
    if (prefix > (uint64_t)plen || suffix > (uint64_t)(end - p) || prefix + suffix == 0)
        return 0;
    Py_ssize_t at = p;
    if (wlen) { /* the name starts with `want`: prev[:prefix] + suffix, compared in place */
        Py_ssize_t shared = (Py_ssize_t)prefix < wlen ? (Py_ssize_t)prefix : wlen;
        if ((Py_ssize_t)(prefix + suffix) < wlen || memcmp(pb, want, (size_t)shared) != 0 ||
            memcmp(d + at, want + shared, (size_t)(wlen - shared)) != 0)
            return 0;
    }
    p += (Py_ssize_t)suffix;
    if (!get_varint(d, &p, end, &delta) || delta > UINT64_MAX - mui)
        return 0;
    Py_ssize_t v = p, stop;
    if (vt == 1)
        stop = v + hs;
    else if (vt == 2)
        stop = v + 2 * hs;
    else if (vt == 3) {
        if (!get_varint(d, &p, end, &n) || n > (uint64_t)(end - p))
            return 0;
        v = p;
        stop = p + (Py_ssize_t)n;
    }
    else if (vt == 0)
        stop = v;
    else
        return 0;
    if (stop > end)
        return 0;
    PyObject *key = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(prefix + suffix));
    if (key == NULL)
        return -1;
    memcpy(PyBytes_AS_STRING(key), pb, (size_t)prefix);
    memcpy(PyBytes_AS_STRING(key) + prefix, d + at, (size_t)suffix);
    PyObject *ui = PyLong_FromUnsignedLongLong(mui + delta);
    if (ui == NULL) {
        Py_DECREF(key);
        return -1;
    }
    PyObject *a = NULL, *b = NULL, *t = NULL;
    if (vt == 1 || vt == 2) {
        a = PyBytes_FromStringAndSize((const char *)d + v, hs);
        if (a != NULL && vt == 2) {
            b = PyBytes_FromStringAndSize((const char *)d + v + hs, hs);
            if (b == NULL)
                Py_CLEAR(a);
        }
        if (a == NULL) {
            Py_DECREF(key);
            Py_DECREF(ui);
            return -1;
        }
    }
    else if (vt == 3) {
        t = PyBytes_FromStringAndSize((const char *)d + v, stop - v);
        if (t == NULL) {
            Py_DECREF(key);
            Py_DECREF(ui);
            return -1;
        }
    }
    Py_INCREF(key);
    PyObject *rec = make_record(key, ui, vt, a, b, t);
    if (rec == NULL) {
        Py_DECREF(key);
        return -1;
    }
    Py_SETREF(*prev, key);
    *pos = stop;
    *out = rec;
    return 1;
}

typedef struct {
    const unsigned char *d;
    Py_ssize_t dlen, pos, end, hs;
    uint64_t mui;
} block_args;

/* (data, pos, end, prev, hash_size, min_update_index) -> block_args; 0 with an error set. */
static int
parse_block_args(PyObject *const *args, block_args *b)
{
    const unsigned char *prevbuf;
    Py_ssize_t prevlen;
    if (RefRecordType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_speedups.configure() was not called");
        return 0;
    }
    if (!as_bytes(args[0], &b->d, &b->dlen) || !as_bytes(args[3], &prevbuf, &prevlen))
        return 0;
    b->pos = PyLong_AsSsize_t(args[1]);
    b->end = PyLong_AsSsize_t(args[2]);
    b->hs = PyLong_AsSsize_t(args[4]);
    b->mui = PyLong_AsUnsignedLongLong(args[5]);
    if (PyErr_Occurred())
        return 0;
    if (b->end > b->dlen || b->pos < 0 || b->end < 0 || b->hs < 0) {
        PyErr_SetString(PyExc_ValueError, "positions outside the block");
        return 0;
    }
    return 1;
}

static PyObject *
py_ref_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    block_args b;
    const unsigned char *want = NULL;
    Py_ssize_t wlen = 0;
    if (nargs != 7 && nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "ref_records takes 7 or 8 arguments");
        return NULL;
    }
    if (!parse_block_args(args, &b) || (nargs == 8 && !as_bytes(args[7], &want, &wlen)))
        return NULL;
    Py_ssize_t limit = PyLong_AsSsize_t(args[6]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    PyObject *prev = args[3];
    Py_INCREF(prev);
    for (Py_ssize_t count = 0; b.pos < b.end && count < limit; count++) {
        PyObject *rec;
        int ok = decode_one(b.d, &b.pos, b.end, &prev, b.hs, b.mui, (const char *)want, wlen,
                            &rec);
        if (ok < 0)
            goto error;
        if (ok == 0)
            break;
        int appended = PyList_Append(out, rec);
        Py_DECREF(rec);
        if (appended < 0)
            goto error;
    }
    return Py_BuildValue("(NnN)", out, b.pos, prev);
error:
    Py_DECREF(out);
    Py_DECREF(prev);
    return NULL;
}

/* RefIter: ref_records one record at a time; .pos and .prev say where it stopped. */
typedef struct {
    PyObject_HEAD
    PyObject *data;
    PyObject *prev;
    Py_ssize_t pos, end, hs;
    uint64_t mui;
    int done;
} RefIter;

static void
refiter_dealloc(RefIter *it)
{
    Py_XDECREF(it->data);
    Py_XDECREF(it->prev);
    PyObject_Free(it);
}

static PyObject *
refiter_next(RefIter *it)
{
    if (it->done || it->pos >= it->end) {
        it->done = 1;
        return NULL;
    }
    PyObject *rec;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(it->data);
    int ok = decode_one(d, &it->pos, it->end, &it->prev, it->hs, it->mui, NULL, 0, &rec);
    if (ok <= 0) {
        it->done = 1;
        return NULL;
    }
    return rec;
}

static PyObject *
refiter_pos(RefIter *it, void *closure)
{
    return PyLong_FromSsize_t(it->pos);
}

static PyObject *
refiter_prev(RefIter *it, void *closure)
{
    Py_INCREF(it->prev);
    return it->prev;
}

static PyGetSetDef refiter_getset[] = {
    {"pos", (getter)refiter_pos, NULL, "where decoding stopped (or goes on)", NULL},
    {"prev", (getter)refiter_prev, NULL, "the key before pos", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject RefIterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aioreftable._format._speedups.RefIter",
    .tp_basicsize = sizeof(RefIter),
    .tp_dealloc = (destructor)refiter_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Ref records decoded one at a time; stops before one it cannot decode.",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)refiter_next,
    .tp_getset = refiter_getset,
};

static PyObject *
py_ref_iter(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    block_args b;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "ref_iter takes 6 arguments");
        return NULL;
    }
    if (!parse_block_args(args, &b))
        return NULL;
    RefIter *it = PyObject_New(RefIter, &RefIterType);
    if (it == NULL)
        return NULL;
    Py_INCREF(args[0]);
    Py_INCREF(args[3]);
    it->data = args[0];
    it->prev = args[3];
    it->pos = b.pos;
    it->end = b.end;
    it->hs = b.hs;
    it->mui = b.mui;
    it->done = 0;
    return (PyObject *)it;
}

/* The key of restart `i` (Block._restart_key); 0 where the reference raises. */
static int
restart_key(const unsigned char *d, Py_ssize_t first_pos, Py_ssize_t end, Py_ssize_t i,
            keybuf *key)
{
    Py_ssize_t at = end + 3 * i;
    Py_ssize_t r = ((Py_ssize_t)d[at] << 16) | ((Py_ssize_t)d[at + 1] << 8) | d[at + 2];
    if (r < first_pos || r >= end)
        return 0;
    if (d[r] != 0)
        return 0;
    int vt;
    key->len = 0;
    return key_at(d, &r, end, key, &vt);
}

static PyObject *
py_seek(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const unsigned char *d, *want;
    Py_ssize_t dlen, wlen;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "seek takes 6 arguments");
        return NULL;
    }
    if (!as_bytes(args[0], &d, &dlen) || !as_bytes(args[5], &want, &wlen))
        return NULL;
    Py_ssize_t first_pos = PyLong_AsSsize_t(args[1]);
    Py_ssize_t end = PyLong_AsSsize_t(args[2]);
    Py_ssize_t count = PyLong_AsSsize_t(args[3]);
    Py_ssize_t hs = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred())
        return NULL;
    if (first_pos < 0 || end < 0 || count < 0 || end + 3 * count > dlen) {
        PyErr_SetString(PyExc_ValueError, "positions outside the block");
        return NULL;
    }
    keybuf key, prev;
    kb_init(&key);
    kb_init(&prev);
    PyObject *res = NULL;
    int ok;
    /* the first restart whose key is > want */
    Py_ssize_t lo = 0, hi = count;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        ok = restart_key(d, first_pos, end, mid, &key);
        if (ok <= 0)
            goto done;
        if (compare(key.buf, key.len, want, wlen) > 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo == 0) {
        res = Py_BuildValue("(nO)", first_pos, EMPTY);
        goto done;
    }
    Py_ssize_t at = end + 3 * (lo - 1);
    Py_ssize_t pos = ((Py_ssize_t)d[at] << 16) | ((Py_ssize_t)d[at + 1] << 8) | d[at + 2];
    key.len = 0;
    while (pos < end) {
        Py_ssize_t p = pos;
        int vt;
        /* key holds prev; decode the record's key into it after saving prev */
        if (!kb_reserve(&prev, key.len))
            goto done;
        memcpy(prev.buf, key.buf, (size_t)key.len);
        prev.len = key.len;
        ok = key_at(d, &p, end, &key, &vt);
        if (ok <= 0)
            goto done;
        if (compare(key.buf, key.len, want, wlen) >= 0) {
            res = Py_BuildValue("(ny#)", pos, (const char *)prev.buf, prev.len);
            goto done;
        }
        if (!skip_ref_value(d, &p, end, vt, hs))
            goto done;
        pos = p;
    }
    res = Py_BuildValue("(ny#)", pos, (const char *)key.buf, key.len);
done:
    kb_free(&key);
    kb_free(&prev);
    if (res == NULL && !PyErr_Occurred())
        Py_RETURN_NONE;
    return res;
}

/* Packed hot index: uint32 n, uint32 positions[n + 1], uint32 key_starts[n + 1], keys. */
static PyObject *
py_hot_index(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const unsigned char *d;
    Py_ssize_t dlen;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "hot_index takes 4 arguments");
        return NULL;
    }
    if (!as_bytes(args[0], &d, &dlen))
        return NULL;
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    Py_ssize_t end = PyLong_AsSsize_t(args[2]);
    Py_ssize_t hs = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred())
        return NULL;
    if (pos < 0 || end > dlen || end > 0xFFFFFFFF) {
        PyErr_SetString(PyExc_ValueError, "positions outside the block");
        return NULL;
    }
    keybuf key, keys;
    kb_init(&key);
    kb_init(&keys);
    uint32_t *positions = NULL, *starts = NULL;
    Py_ssize_t n = 0, cap = 64;
    PyObject *res = NULL;
    positions = PyMem_Malloc(sizeof(uint32_t) * (size_t)(cap + 1));
    starts = PyMem_Malloc(sizeof(uint32_t) * (size_t)(cap + 1));
    if (positions == NULL || starts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    while (pos < end) {
        Py_ssize_t p = pos;
        int vt, ok = key_at(d, &p, end, &key, &vt);
        if (ok <= 0 || !skip_ref_value(d, &p, end, vt, hs))
            goto done;
        if (n == cap) {
            cap *= 2;
            uint32_t *np = PyMem_Realloc(positions, sizeof(uint32_t) * (size_t)(cap + 1));
            if (np == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            positions = np;
            np = PyMem_Realloc(starts, sizeof(uint32_t) * (size_t)(cap + 1));
            if (np == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            starts = np;
        }
        if (keys.len + key.len > 0xFFFFFFFF) /* not in a block of at most 16 MiB */
            goto done;
        positions[n] = (uint32_t)pos;
        starts[n] = (uint32_t)keys.len;
        if (!kb_reserve(&keys, keys.len + key.len))
            goto done;
        memcpy(keys.buf + keys.len, key.buf, (size_t)key.len);
        keys.len += key.len;
        n++;
        pos = p;
    }
    positions[n] = (uint32_t)pos;
    starts[n] = (uint32_t)keys.len;
    Py_ssize_t head = 4 + 8 * (n + 1);
    res = PyBytes_FromStringAndSize(NULL, head + keys.len);
    if (res != NULL) {
        char *o = PyBytes_AS_STRING(res);
        uint32_t n32 = (uint32_t)n;
        memcpy(o, &n32, 4);
        memcpy(o + 4, positions, 4 * (size_t)(n + 1));
        memcpy(o + 4 + 4 * (n + 1), starts, 4 * (size_t)(n + 1));
        memcpy(o + head, keys.buf, (size_t)keys.len);
    }
done:
    PyMem_Free(positions);
    PyMem_Free(starts);
    kb_free(&key);
    kb_free(&keys);
    if (res == NULL && !PyErr_Occurred())
        Py_RETURN_NONE;
    return res;
}

static PyObject *
py_hot_seek(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const unsigned char *ix, *want;
    Py_ssize_t ixlen, wlen;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "hot_seek takes 2 arguments");
        return NULL;
    }
    if (!as_bytes(args[0], &ix, &ixlen) || !as_bytes(args[1], &want, &wlen))
        return NULL;
    uint32_t n;
    if (ixlen < 4) {
        PyErr_SetString(PyExc_ValueError, "not a hot index");
        return NULL;
    }
    memcpy(&n, ix, 4);
    Py_ssize_t head = 4 + 8 * ((Py_ssize_t)n + 1);
    if (ixlen < head) {
        PyErr_SetString(PyExc_ValueError, "not a hot index");
        return NULL;
    }
    const unsigned char *pos_at = ix + 4, *start_at = ix + 4 + 4 * ((Py_ssize_t)n + 1);
    const unsigned char *keys = ix + head;
#define U32(base, i) (memcpy(&tmp, (base) + 4 * (i), 4), tmp)
    uint32_t tmp, a, b;
    /* bisect.bisect_left(keys, want) */
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        a = U32(start_at, mid);
        b = U32(start_at, mid + 1);
        if (compare(keys + a, (Py_ssize_t)(b - a), want, wlen) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint32_t pos = U32(pos_at, lo);
    if (lo == 0)
        return Py_BuildValue("(kO)", (unsigned long)pos, EMPTY);
    a = U32(start_at, lo - 1);
    b = U32(start_at, lo);
#undef U32
    return Py_BuildValue("(ky#)", (unsigned long)pos, (const char *)keys + a, (Py_ssize_t)(b - a));
}

/* _binary.common_prefix: the length of the longest common prefix of two byte strings. */
static PyObject *
py_common_prefix(PyObject *self, PyObject *args)
{
    Py_buffer a, b;
    if (!PyArg_ParseTuple(args, "y*y*", &a, &b))
        return NULL;
    Py_ssize_t n = a.len < b.len ? a.len : b.len, i = 0;
    const unsigned char *x = a.buf, *y = b.buf;
    while (i < n && x[i] == y[i])
        i++;
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return PyLong_FromSsize_t(i);
}

/* The ref layer's Ref: a slotted dataclass whose four fields are set straight into their
 * slots (what its generated __init__ does, without the Python call). */
static PyTypeObject *RefType;
static Py_ssize_t REF_SLOT[4]; /* offsets of name, oid, target, peeled */

static PyObject *
py_configure_ref(PyObject *self, PyObject *cls)
{
    static const char *fields[4] = {"name", "oid", "target", "peeled"};
    Py_ssize_t offsets[4];
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "Ref must be a class");
        return NULL;
    }
    PyTypeObject *tp = (PyTypeObject *)cls;
    for (int i = 0; i < 4; i++) {
        PyObject *descr = PyDict_GetItemString(tp->tp_dict, fields[i]);
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type))
            Py_RETURN_FALSE;
        PyMemberDef *m = ((PyMemberDescrObject *)descr)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY) || m->offset <= 0 ||
            m->offset + (Py_ssize_t)sizeof(PyObject *) > tp->tp_basicsize)
            Py_RETURN_FALSE;
        offsets[i] = m->offset;
    }
    if (tp->tp_itemsize != 0 || tp->tp_dictoffset != 0)
        Py_RETURN_FALSE;
    Py_INCREF(cls);
    Py_XSETREF(RefType, tp);
    memcpy(REF_SLOT, offsets, sizeof(offsets));
    Py_RETURN_TRUE;
}

static const char HEX[] = "0123456789abcdef";

/* bytes.hex() of an object id. */
static PyObject *
hex_of(PyObject *b)
{
    Py_ssize_t n = PyBytes_GET_SIZE(b);
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(b);
    PyObject *u = PyUnicode_New(2 * n, 127);
    if (u == NULL)
        return NULL;
    Py_UCS1 *o = PyUnicode_1BYTE_DATA(u);
    for (Py_ssize_t i = 0; i < n; i++) {
        o[2 * i] = (Py_UCS1)HEX[s[i] >> 4];
        o[2 * i + 1] = (Py_UCS1)HEX[s[i] & 15];
    }
    return u;
}

/* decode_name: utf-8 with surrogateescape. */
static PyObject *
name_of(PyObject *b)
{
    return PyUnicode_DecodeUTF8(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), "surrogateescape");
}

/* The Ref of one record: 1 made (*out), 2 a deletion (skipped), 0 a shape left to the
 * caller, -1 a Python error. */
static int
ref_of(PyObject *rec, const char *under, Py_ssize_t ulen, PyObject **out)
{
    if (!PyTuple_Check(rec) || PyTuple_GET_SIZE(rec) != 6)
        return 0;
    PyObject *key = PyTuple_GET_ITEM(rec, 0), *vto = PyTuple_GET_ITEM(rec, 2);
    PyObject *value = PyTuple_GET_ITEM(rec, 3), *tv = PyTuple_GET_ITEM(rec, 4);
    PyObject *target = PyTuple_GET_ITEM(rec, 5);
    if (!PyBytes_CheckExact(key) || !PyLong_Check(vto) || PyBytes_GET_SIZE(key) < ulen ||
        memcmp(PyBytes_AS_STRING(key), under, (size_t)ulen) != 0)
        return 0;
    long vt = PyLong_AsLong(vto);
    if (vt == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    PyObject *f[4] = {NULL, NULL, NULL, NULL};
    if (vt == 0)
        return 2;
    if (vt == 1 || vt == 2) {
        if (!PyBytes_CheckExact(value) || (vt == 2 && tv != Py_None && !PyBytes_CheckExact(tv)))
            return 0;
        f[1] = hex_of(value);
        if (f[1] == NULL)
            return -1;
        if (vt == 2 && tv != Py_None) {
            f[3] = hex_of(tv);
            if (f[3] == NULL)
                goto error;
        }
    }
    else if (vt == 3) {
        if (!PyBytes_CheckExact(target))
            return 0;
        f[2] = name_of(target);
        if (f[2] == NULL)
            return -1;
    }
    else
        return 0;
    f[0] = name_of(key);
    if (f[0] == NULL)
        goto error;
    PyObject *ref = RefType->tp_alloc(RefType, 0);
    if (ref == NULL)
        goto error;
    for (int i = 0; i < 4; i++) {
        PyObject *v = f[i] != NULL ? f[i] : Py_NewRef(Py_None);
        *(PyObject **)((char *)ref + REF_SLOT[i]) = v;
    }
    /* Its fields are strings and None: it can be in no reference cycle, so the cyclic
     * collector need not track it (as CPython untracks such tuples and dicts); a scan
     * holds thousands of them at once, which would otherwise make every full collection
     * walk them. */
    if (PyObject_IS_GC(ref))
        PyObject_GC_UnTrack(ref);
    *out = ref;
    return 1;
error:
    for (int i = 0; i < 4; i++)
        Py_XDECREF(f[i]);
    return -1;
}

static PyObject *
py_refs_from_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "refs_from_records takes a list, an index, bytes");
        return NULL;
    }
    const char *under = PyBytes_AS_STRING(args[2]);
    Py_ssize_t ulen = PyBytes_GET_SIZE(args[2]);
    if (RefType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_speedups.configure_ref() did not succeed");
        return NULL;
    }
    PyObject *records = args[0];
    Py_ssize_t i = PyLong_AsSsize_t(args[1]);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0)
        i = 0;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (; i < PyList_GET_SIZE(records); i++) {
        PyObject *ref;
        int ok = ref_of(PyList_GET_ITEM(records, i), under, ulen, &ref);
        if (ok < 0)
            goto error;
        if (ok == 0)
            break;
        if (ok == 2)
            continue;
        int appended = PyList_Append(out, ref);
        Py_DECREF(ref);
        if (appended < 0)
            goto error;
    }
    return Py_BuildValue("(Nn)", out, i);
error:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"common_prefix", py_common_prefix, METH_VARARGS, "Length of the common prefix of a, b."},
    {"configure", py_configure, METH_VARARGS, "Set the record class and value types."},
    {"configure_ref", py_configure_ref, METH_O, "Set the ref layer's Ref class."},
    {"refs_from_records", (PyCFunction)(void (*)(void))py_refs_from_records, METH_FASTCALL,
     "The Ref of each live record from records[start]; stops at a name not under `under` or\n"
     "a shape it does not know."},
    {"ref_records", (PyCFunction)(void (*)(void))py_ref_records, METH_FASTCALL,
     "Decode up to `limit` ref records; stops before one it cannot decode."},
    {"ref_iter", (PyCFunction)(void (*)(void))py_ref_iter, METH_FASTCALL,
     "ref_records as an iterator, one record at a time (RefIter)."},
    {"seek", (PyCFunction)(void (*)(void))py_seek, METH_FASTCALL,
     "Cold seek of a ref block; None where the reference raises."},
    {"hot_index", (PyCFunction)(void (*)(void))py_hot_index, METH_FASTCALL,
     "Every key and position of a ref block, packed; None where the reference raises."},
    {"hot_seek", (PyCFunction)(void (*)(void))py_hot_seek, METH_FASTCALL,
     "bisect_left over a packed hot index: (position, previous key)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "The compiled ref-block decoder.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    EMPTY = PyBytes_FromStringAndSize("", 0);
    if (EMPTY == NULL || PyType_Ready(&RefIterType) < 0)
        return NULL;
    return PyModule_Create(&module);
}
