/* Two per-image loops of the extractor, compiled: the luma and chroma planes of a stack of
 * images (features/extract.py) and the tilted views of a layout (features/windows.py).  Each
 * does its NumPy reference's arithmetic in the same order, every product and sum rounded to
 * float32 as NumPy rounds it; the references stay the fallback where no compiler was found at
 * install, and both give bit-identical results (tests/test_hashes.py, tests/test_windows.py),
 * so the feature version does not depend on which one ran.  NumPy makes a copy of every tap
 * (or channel) first; these loops read them in place (docs/benchmarks.md, "Cheaper features, a compiled build").
 *
 * No NumPy headers: arrays come in through the buffer protocol, so the module builds against
 * Python alone.  The GIL is released for the loops.  Built with floating-point contraction off
 * (pyproject.toml): a fused multiply-add would round differently from NumPy's two ufuncs.
 *
 * planes(rgb, weights, luma, chroma)
 *   rgb     uint8[m * H * W * 3]   the images' pixels, interleaved
 *   weights float32[3]             the luma weights w
 *   luma    float32[m * H * W]     writable: (R * w0 + G * w1) + B * w2
 *   chroma  float32[m * 2 * ceil(H/2) * ceil(W/2)]  writable: at every other pixel of every
 *                                  other row, R - G and (R + G) / 2 - B (exact in float32)
 *
 * tilt(lay, index, weight, out)
 *   lay     float32[n * S]        layouts of S cells each
 *   index   int32[T * 4 * S]      each view's four bilinear source cells, tap-major per view
 *   weight  float32[T * 4 * S]    their weights, in the same order
 *   out     float32[n * T * S]    writable: each view's cells, ((x0 * w0 + x1 * w1) + x2 * w2) + x3 * w3
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static int get(PyObject *obj, Py_buffer *view, int writable, const char *name)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: a C-contiguous%s buffer is needed", name, writable ? " writable" : "");
        return -1;
    }
    return 0;
}

static int is_format(const Py_buffer *view, char want)
{
    const char *f = view->format;
    if (f && (f[0] == '<' || f[0] == '=' || f[0] == '@')) f++;
    return f && f[0] == want && f[1] == '\0';
}

static PyObject *tilt(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *lay_o, *index_o, *weight_o, *out_o;
    if (!PyArg_ParseTuple(args, "OOOO", &lay_o, &index_o, &weight_o, &out_o)) return NULL;
    Py_buffer lay = {0}, index = {0}, weight = {0}, out = {0};
    PyObject *result = NULL;
    if (get(lay_o, &lay, 0, "lay") < 0 || get(index_o, &index, 0, "index") < 0 || get(weight_o, &weight, 0, "weight") < 0
        || get(out_o, &out, 1, "out") < 0)
        goto done;
    if (!is_format(&lay, 'f') || !is_format(&weight, 'f') || !is_format(&out, 'f') || !(is_format(&index, 'i') || is_format(&index, 'l'))
        || index.itemsize != 4) {
        PyErr_SetString(PyExc_TypeError, "tilt: float32 layouts, weights and output, int32 index");
        goto done;
    }
    Py_ssize_t taps = index.len / 4, n_index = taps;
    if (weight.len / 4 != taps || taps % 4) {
        PyErr_SetString(PyExc_ValueError, "tilt: index and weight must have the same 4 * T * S entries");
        goto done;
    }
    Py_ssize_t cells_total = lay.len / 4, outs = out.len / 4;
    /* out holds n * T * S and lay n * S: S = outs / (n * T) with taps = 4 * T * S */
    Py_ssize_t views_cells = taps / 4; /* T * S */
    if (views_cells == 0 || outs % views_cells) {
        PyErr_SetString(PyExc_ValueError, "tilt: out must hold n * T * S cells");
        goto done;
    }
    Py_ssize_t n = outs / views_cells;
    if (n == 0) { result = Py_None; Py_INCREF(result); goto done; }
    if (cells_total % n) {
        PyErr_SetString(PyExc_ValueError, "tilt: layouts and output disagree on the count");
        goto done;
    }
    Py_ssize_t side = cells_total / n;
    if (views_cells % side) {
        PyErr_SetString(PyExc_ValueError, "tilt: index size is not a multiple of the layout size");
        goto done;
    }
    const int32_t *ix = (const int32_t *)index.buf;
    for (Py_ssize_t k = 0; k < n_index; k++) {
        if (ix[k] < 0 || ix[k] >= side) {
            PyErr_SetString(PyExc_ValueError, "tilt: a source cell is outside the layout");
            goto done;
        }
    }
    Py_ssize_t views = views_cells / side;
    const float *L = (const float *)lay.buf, *W = (const float *)weight.buf;
    float *O = (float *)out.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        const float *src = L + i * side;
        for (Py_ssize_t t = 0; t < views; t++) {
            const int32_t *i0 = ix + (t * 4) * side, *i1 = i0 + side, *i2 = i1 + side, *i3 = i2 + side;
            const float *w0 = W + (t * 4) * side, *w1 = w0 + side, *w2 = w1 + side, *w3 = w2 + side;
            float *dst = O + (i * views + t) * side;
            for (Py_ssize_t c = 0; c < side; c++) {
                float v = src[i0[c]] * w0[c];
                float p = src[i1[c]] * w1[c];
                v = v + p;
                p = src[i2[c]] * w2[c];
                v = v + p;
                p = src[i3[c]] * w3[c];
                dst[c] = v + p;
            }
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    if (lay.obj) PyBuffer_Release(&lay);
    if (index.obj) PyBuffer_Release(&index);
    if (weight.obj) PyBuffer_Release(&weight);
    if (out.obj) PyBuffer_Release(&out);
    return result;
}

static PyObject *planes(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer rgb = {0}, weights = {0}, luma = {0}, chroma = {0};
    Py_ssize_t m, h, w;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "nnny*y*w*w*", &m, &h, &w, &rgb, &weights, &luma, &chroma)) return NULL;
    const Py_ssize_t hh = (h + 1) / 2, hw = (w + 1) / 2;
    if (m < 0 || h < 0 || w < 0 || rgb.len != m * h * w * 3 || weights.len != 3 * 4 || luma.len != m * h * w * 4
        || chroma.len != m * 2 * hh * hw * 4) {
        PyErr_SetString(PyExc_ValueError, "planes: arrays of mismatched sizes");
        goto done;
    }
    const float *wt = weights.buf;
    const float w0 = wt[0], w1 = wt[1], w2 = wt[2];
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *px = rgb.buf;
    float *out = luma.buf;
    for (Py_ssize_t k = 0; k < m * h * w; k++) {
        float v = (float)px[3 * k] * w0;
        float p = (float)px[3 * k + 1] * w1;
        v = v + p;
        p = (float)px[3 * k + 2] * w2;
        out[k] = v + p;
    }
    float *cr = chroma.buf;
    for (Py_ssize_t i = 0; i < m; i++) {
        float *rg = cr + i * 2 * hh * hw, *yb = rg + hh * hw;
        for (Py_ssize_t y = 0; y < hh; y++) {
            const uint8_t *row = px + ((i * h + 2 * y) * w) * 3;
            for (Py_ssize_t x = 0; x < hw; x++) {
                const uint8_t *q = row + 6 * x;
                rg[y * hw + x] = (float)((int)q[0] - (int)q[1]);
                yb[y * hw + x] = (float)((int)q[0] + (int)q[1]) * 0.5f - (float)q[2];
            }
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&rgb);
    PyBuffer_Release(&weights);
    PyBuffer_Release(&luma);
    PyBuffer_Release(&chroma);
    return result;
}

static PyMethodDef methods[] = {
    {"planes", planes, METH_VARARGS, "Luma and half-resolution chroma planes of a stack of RGB images."},
    {"tilt", tilt, METH_VARARGS, "Bilinear views of layouts: four weighted taps a cell, rounded as NumPy rounds them."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "pixel_loop", "The extractor's compiled pixel loops.", -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit_pixel_loop(void) { return PyModule_Create(&module); }
