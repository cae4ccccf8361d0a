"""A strict stand-in for CuPy, for checking the GPU code path on a machine without a GPU.

`STRICT` is a minwave `Backend` whose arrays (`StrictArray`) hold NumPy data but refuse, with a
TypeError (`CupyIncompatible`), what would fail or misbehave on a `cupy.ndarray`, so that a host/device
mix-up fails here in CI instead of on the first GPU that runs it.

Refused because CuPy refuses them too:
- implicit conversion to a host array: `np.asarray(a)`, `np.array(a)`, anything that calls `__array__`
  (CuPy: "Implicit conversion to a NumPy array is not allowed");
- host `np.ndarray` operands, even 0-d ones, and lists in arithmetic and ufuncs (CuPy: "Unsupported
  type"); Python scalars and NumPy scalars such as `np.float32(2)` are fine; ufunc `where=`;
- `float(a)`, `int(a)`, `bool(a)` on arrays of more than one element;
- `scatter_add` into a dtype `cupyx.scatter_add` does not support (e.g. int64).

Refused although CuPy may accept them, because minwave must not rely on them:
- host index arrays / lists in `a[idx]`, host values in `a[idx] = v`, host arguments to `xp.*`
  functions and to `scatter_add` (CuPy copies some of these to the device implicitly, or, as
  `cupy.sum(host)` does, silently computes on the host): every host→device move is an explicit
  `xp.asarray` / `xp.array`;
- NumPy *functions* (`np.concatenate`, `np.sum`, `np.zeros_like`, `np.add.at`, …) on a device array:
  CuPy dispatches those it implements through `__array_function__` and fails on the others; minwave's
  math asks its array module `xp` (STYLE rule 7);
- fancy-index assignment of several values to repeated targets, e.g. `a[idx] += v` (CuPy leaves the
  winner undefined, NumPy keeps the last): accumulation goes through `backend.scatter_add`.

Two more traps of real device memory are reproduced: `xp.empty` returns garbage (here: NaN, or a
sentinel for integers) rather than the zeros a fresh NumPy allocation often happens to hold, and
reductions return 0-d arrays, never Python or NumPy scalars.

Why a wrapper and not an `np.ndarray` subclass: NumPy turns a subclass into a plain host array in
`np.asarray` / `np.array` / `np.ascontiguousarray` without calling `__array__` or `__array_function__`
(measured with NumPy 2.4), so a subclass cannot refuse the most common mistake. A `cupy.ndarray` is not
an `np.ndarray` either, so `isinstance(a, np.ndarray)` being False here is CuPy's behaviour too.

    with strict_backend() as backend:            # registers STRICT with minwave.backend
        model = WaveNet(cfg, backend=backend)
"""

from __future__ import annotations

import contextlib
import numbers
import re
import types

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from minwave.backend import Backend, register, unregister

_SCALARS = (bool, int, float, complex, np.generic)  # what CuPy accepts beside its own arrays
_IMPLICIT = (
    "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array explicitly."
)


class CupyIncompatible(TypeError):
    """An operation that a cupy.ndarray refuses (or that would behave differently on CuPy)."""


def _host_hint(x) -> str:
    return (
        f"Unsupported type {type(x)!r}: a device array cannot be mixed with host data; "
        "move it first with xp.asarray(...) (or to the host with to_host(...))"
    )


# ------------------------------------------------------------------------------------ wrapping
def _unwrap(x):
    """StrictArray -> its NumPy data; scalars pass; host arrays (and lists holding them) are refused."""
    if isinstance(x, StrictArray):
        return x._a
    if isinstance(x, _SCALARS) or x is None:
        return x
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, (np.dtype, type, str, slice)) or x is Ellipsis:
        return x
    raise CupyIncompatible(_host_hint(x))


def _wrap(x):
    """NumPy results -> StrictArray (a NumPy scalar becomes a 0-d array, as CuPy returns)."""
    if isinstance(x, np.ndarray):
        return StrictArray(x)
    if isinstance(x, np.generic):
        return StrictArray(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _operand(x, where: str):
    """A ufunc operand: a StrictArray or a Python/NumPy scalar; never a host array, list or None."""
    if isinstance(x, StrictArray):
        return x._a
    if isinstance(x, _SCALARS):
        return x
    raise CupyIncompatible(f"{where}: {_host_hint(x)}")


_UFUNC_KWARGS = {"__call__": {"out", "dtype", "casting"}, "reduce": {"out", "dtype", "axis", "keepdims"}}


def _call_ufunc(ufunc: np.ufunc, method: str, inputs, kwargs):
    if method not in _UFUNC_KWARGS:
        hint = " (use backend.scatter_add)" if method == "at" else ""
        raise CupyIncompatible(f"numpy.{ufunc.__name__}.{method} on a device array is refused{hint}")
    unknown = set(kwargs) - _UFUNC_KWARGS[method]
    if unknown:  # CuPy's ufuncs take out, dtype, casting only (no where=, order=, subok=)
        raise CupyIncompatible(f"{ufunc.__name__}.{method}: CuPy ufuncs do not take {sorted(unknown)}")
    args = [_operand(x, f"operand of {ufunc.__name__}") for x in inputs]
    outs = kwargs.get("out")
    if outs is not None:
        outs = outs if isinstance(outs, tuple) else (outs,)
        if not all(isinstance(o, StrictArray) for o in outs):
            raise CupyIncompatible(f"{ufunc.__name__}: out= must be device arrays, got {[type(o) for o in outs]}")
        kwargs = {**kwargs, "out": tuple(o._a for o in outs)}
    result = getattr(ufunc, method)(*args, **kwargs)
    if outs is not None:
        return outs[0] if len(outs) == 1 else outs
    return _wrap(result)


def _index(key):
    """Check an index the strict way and return its NumPy form (device index arrays unwrapped)."""
    parts = key if isinstance(key, tuple) else (key,)
    out = []
    for k in parts:
        if k is None or k is Ellipsis or isinstance(k, (numbers.Integral, np.integer)):
            out.append(k)
        elif isinstance(k, slice):
            for v in (k.start, k.stop, k.step):
                if not (v is None or isinstance(v, (numbers.Integral, np.integer))):
                    raise CupyIncompatible(f"slice bounds must be Python/NumPy integers, got {type(v)!r}")
            out.append(k)
        elif isinstance(k, StrictArray):
            if k.dtype.kind not in "iub":
                raise IndexError(f"arrays used as indices must be of integer or boolean type, got {k.dtype}")
            out.append(k._a)
        else:
            raise CupyIncompatible(
                f"index of type {type(k)!r} on a device array: index arrays must be device arrays (xp.asarray)"
            )
    return tuple(out) if isinstance(key, tuple) else out[0]


def _check_unique_targets(np_key, shape: tuple[int, ...]) -> None:
    """Refuse a fancy-index assignment that writes one element twice (undefined winner on CuPy)."""
    parts = np_key if isinstance(np_key, tuple) else (np_key,)
    arrays = [p for p in parts if isinstance(p, np.ndarray)]
    if not arrays or any(p.dtype == bool for p in arrays):
        return  # no integer index arrays (masks never repeat an element; a mix is left alone)

    def width(p) -> int:  # how many axes of the indexed array p consumes
        return 0 if p is None or p is Ellipsis else 1

    axis, sizes = 0, []
    for p in parts:
        if p is Ellipsis:
            axis += len(shape) - sum(width(q) for q in parts)
            continue
        if isinstance(p, np.ndarray):
            sizes.append(shape[axis])
        axis += width(p)
    # fold negative indices as NumPy does, then compare the addressed elements
    flat = [np.mod(a, n).reshape(-1) for a, n in zip(np.broadcast_arrays(*arrays), sizes)]
    targets = np.ravel_multi_index(flat, sizes) if len(flat) > 1 else flat[0]
    if np.unique(targets).size != targets.size:
        raise CupyIncompatible(
            "fancy-index assignment writes some element more than once: CuPy keeps an undefined one of the "
            "values (NumPy the last); accumulate with backend.scatter_add instead"
        )


# ------------------------------------------------------------------------------------ the array
class StrictArray(NDArrayOperatorsMixin):
    """A device-array stand-in: NumPy data, CuPy's manners. Build one with `strict.asarray(host_data)`."""

    __slots__ = ("_a",)

    def __init__(self, data: np.ndarray):
        if type(data) is not np.ndarray:
            raise TypeError(f"StrictArray wraps a numpy.ndarray, got {type(data)!r}; use strict.asarray")
        if data.dtype.kind not in "biufc":
            raise CupyIncompatible(f"Unsupported dtype {data.dtype} (CuPy has numeric and bool arrays only)")
        self._a = data

    # ---- the protocols that make it strict
    def __array__(self, *args, **kwargs):
        raise CupyIncompatible(_IMPLICIT)

    def __array_function__(self, func, types, args, kwargs):
        raise CupyIncompatible(
            f"NumPy function numpy.{func.__name__}() called on a device array: use the array module's own "
            f"xp.{func.__name__}() (STYLE rule 7), or move the data with to_host() first"
        )

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _call_ufunc(ufunc, method, inputs, kwargs)

    # ---- explicit host transfer (cupy.ndarray.get)
    def get(self) -> np.ndarray:
        """A host copy (CuPy: a device-to-host copy)."""
        return self._a.copy()

    # ---- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: StrictArray(self._a.T))
    real = property(lambda self: StrictArray(self._a.real))
    imag = property(lambda self: StrictArray(self._a.imag))

    # ---- scalars out (CuPy allows these on size-1 arrays; they synchronise)
    def _size_one(self, what: str):
        if self._a.size != 1:
            raise CupyIncompatible(f"only size-1 arrays can be converted to {what}, got shape {self.shape}")
        return self._a.reshape(()).item()

    def item(self):
        return self._size_one("a Python scalar")

    def tolist(self):
        return self._a.tolist()

    def __float__(self):
        return float(self._size_one("float"))

    def __int__(self):
        return int(self._size_one("int"))

    def __complex__(self):
        return complex(self._size_one("complex"))

    def __bool__(self):
        return bool(self._size_one("bool"))

    def __len__(self):
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    __hash__ = None

    def __repr__(self):
        return "strict_" + repr(self._a)

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        return format(self._a.item() if self._a.ndim == 0 else str(self._a), spec)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    # ---- indexing
    def __getitem__(self, key):
        np_key = _index(key)
        out = self._a[np_key]
        if isinstance(out, np.generic):
            # CuPy returns a 0-d *view* for a full integer index; NumPy gives that with a trailing `...`
            parts = np_key if isinstance(np_key, tuple) else (np_key,)
            out = np.asarray(out) if any(p is Ellipsis for p in parts) else self._a[(*parts, Ellipsis)]
        return StrictArray(out)

    def __setitem__(self, key, value):
        np_key = _index(key)
        if isinstance(value, StrictArray):
            value = value._a
            if value.size > 1:  # one value broadcast to repeated targets is well defined; several are not
                _check_unique_targets(np_key, self.shape)
        elif not isinstance(value, _SCALARS):
            raise CupyIncompatible(f"a[...] = value: {_host_hint(value)}")
        self._a[np_key] = value

    def fill(self, value):
        if isinstance(value, StrictArray) and value.size == 1:
            value = value._a.reshape(())
        elif not isinstance(value, _SCALARS):
            raise CupyIncompatible(f"fill: {_host_hint(value)}")
        self._a.fill(value)


def _method(name: str):
    """cupy.ndarray.<name>: arguments checked (no host arrays), results wrapped (reductions -> 0-d arrays)."""

    def method(self, *args, **kwargs):
        out = kwargs.get("out")
        args, kwargs = _unwrap(args), {k: _unwrap(v) for k, v in kwargs.items()}
        result = getattr(self._a, name)(*args, **kwargs)
        return out if out is not None else _wrap(result)

    method.__name__ = method.__qualname__ = name
    return method


for _name in (
    "sum", "prod", "mean", "var", "std", "max", "min", "argmax", "argmin", "any", "all", "cumsum",
    "reshape", "ravel", "flatten", "transpose", "swapaxes", "squeeze", "astype", "copy", "view",
    "take", "clip", "round", "dot", "nonzero", "repeat", "sort", "argsort", "conj",
):  # fmt: skip
    setattr(StrictArray, _name, _method(_name))
del _name


# ------------------------------------------------------------------------------------ the module
def asarray(a, dtype=None, order=None):
    """Host data (or a device array) -> a device array. The one door from host to device."""
    if isinstance(a, StrictArray):
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    return StrictArray(np.array(_unwrap_nested(a), dtype=dtype, order=order, copy=True))


def array(a, dtype=None, copy=True, order="K"):
    if isinstance(a, StrictArray):
        return a.astype(a.dtype if dtype is None else dtype, copy=copy)
    return StrictArray(np.array(_unwrap_nested(a), dtype=dtype, order=order, copy=True))


def _unwrap_nested(a):
    """A (nested) list of device arrays -> their data (CuPy accepts that in asarray)."""
    if isinstance(a, (list, tuple)):
        return type(a)(_unwrap_nested(v) for v in a)
    return a._a if isinstance(a, StrictArray) else a


def asnumpy(a) -> np.ndarray:
    """cupy.asnumpy: device array -> host copy; host data passes through np.asarray."""
    return a.get() if isinstance(a, StrictArray) else np.asarray(a)


def empty(shape, dtype=float, order="C"):
    """Uninitialised device memory holds garbage: NaN for floats, a sentinel for integers."""
    out = np.empty(shape, dtype=dtype, order=order)
    if out.dtype.kind in "fc":
        out.fill(np.nan)
    elif out.dtype.kind in "iu":
        out.fill(np.iinfo(out.dtype).max // 3)
    elif out.dtype.kind == "b":
        out.fill(True)
    return StrictArray(out)


def empty_like(a, dtype=None, shape=None):
    _require_device(a, "empty_like")
    return empty(a.shape if shape is None else shape, dtype=a.dtype if dtype is None else dtype)


def _require_device(a, name: str):
    if not isinstance(a, StrictArray):
        raise CupyIncompatible(f"xp.{name}: {_host_hint(a)}")


def _like(np_func):
    def f(a, *args, **kwargs):
        _require_device(a, np_func.__name__)
        return _wrap(np_func(a._a, *_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))

    f.__name__ = np_func.__name__
    return f


def _function(np_func, array_first: bool = True):
    """xp.<name>: device arrays in (the first one required when array_first), device arrays out."""

    def f(*args, **kwargs):
        if array_first:
            first = args[0] if args else None
            seq = first if isinstance(first, (list, tuple)) else [first]
            for a in seq:
                _require_device(a, np_func.__name__)
        out = kwargs.get("out")
        result = np_func(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
        return out if out is not None else _wrap(result)

    f.__name__ = np_func.__name__
    return f


def _ufunc(u: np.ufunc):
    def f(*args, **kwargs):
        return _call_ufunc(u, "__call__", args, kwargs)

    f.__name__ = u.__name__
    return f


def scatter_add(a, slices, value) -> None:
    """cupyx.scatter_add: a[slices] += value, accumulating over repeated indices."""
    _require_device(a, "scatter_add")
    np_key = _index(slices)
    if isinstance(value, StrictArray):
        value = value._a
    elif not isinstance(value, _SCALARS):
        raise CupyIncompatible(f"scatter_add value: {_host_hint(value)}")
    supported = (np.int32, np.float16, np.float32, np.float64, np.uint32, np.uint64)
    if a.dtype.type not in supported:  # atomicAdd exists for these only (cupy/_core/_routines_indexing.pyx)
        raise CupyIncompatible("scatter_add only supports int32, float16, float32, float64, uint32, uint64")
    np.add.at(a._a, np_key, value)


class ElementwiseKernel:
    """cupy.ElementwiseKernel, for the small kernels minwave writes, run element-wise with NumPy.

    What it holds a kernel to, as CuPy does: the argument count (inputs, then optionally the outputs),
    device arrays only (Python/NumPy scalars allowed as inputs), one dtype per type placeholder such as
    `T` across all arguments, outputs of exactly the broadcast shape of the inputs; outputs may be
    strided views (they are written in place). The operation may use `;`-separated assignments
    `name = expr` or declarations `T name = expr`, with + - * /, parentheses, casts of literals and
    names such as `(T)0.5`, and the math functions below; anything else is refused (NotImplementedError)
    rather than guessed at.
    """

    _FUNCS = {"tanh": np.tanh, "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1,
              "sqrt": np.sqrt, "abs": np.abs, "fabs": np.abs, "max": np.maximum, "min": np.minimum}  # fmt: skip
    _CAST = re.compile(r"\((\w+)\)\s*(\d+\.?\d*(?:[eE][-+]?\d+)?[fF]?|\.\d+(?:[eE][-+]?\d+)?[fF]?|\w+)")
    _EXPR_OK = re.compile(r"^[\w\s.+\-*/(),]*$")

    def __init__(self, in_params: str, out_params: str, operation: str, name: str = "kernel", **kwargs):
        if kwargs.get("reduce_dims") is False or kwargs.get("preamble") or kwargs.get("loop_prep"):
            raise NotImplementedError(f"ElementwiseKernel stand-in: unsupported options {sorted(kwargs)}")
        self.name = name
        self.in_params, self.out_params = self._params(in_params), self._params(out_params)
        self._casts: set[str] = set()  # type names used in casts such as (T)0.5
        self.statements = [self._statement(st) for st in operation.split(";") if st.strip()]

    @staticmethod
    def _params(text: str) -> list[tuple[str, str]]:
        params = []
        for item in filter(None, (p.strip() for p in text.split(","))):
            words = item.split()
            if len(words) != 2:  # 'raw T x' and the like are not modelled
                raise NotImplementedError(f"ElementwiseKernel stand-in: unsupported parameter {item!r}")
            params.append((words[0], words[1]))
        return params

    def _statement(self, text: str):
        lhs, sep, rhs = text.partition("=")
        if not sep or "=" in rhs:
            raise NotImplementedError(f"ElementwiseKernel stand-in: not an assignment: {text.strip()!r}")
        target = lhs.split()[-1]  # 'T x' (a declaration) or 'x'
        self._casts.update(m.group(1) for m in self._CAST.finditer(rhs))
        rhs = self._CAST.sub(lambda m: f"_cast_{m.group(1)}({m.group(2).rstrip('fF')})", rhs)
        if not self._EXPR_OK.match(rhs):
            raise NotImplementedError(f"ElementwiseKernel stand-in: unsupported expression {rhs.strip()!r}")
        return target, compile(rhs.strip(), f"<{self.name}>", "eval")

    def __call__(self, *args, size=None):
        n_in, n_out = len(self.in_params), len(self.out_params)
        if len(args) not in (n_in, n_in + n_out):
            raise TypeError(f"Wrong number of arguments for {self.name!r}: {len(args)}, not {n_in} or {n_in + n_out}")
        for a in args:
            if not isinstance(a, (StrictArray, *_SCALARS)):
                raise CupyIncompatible(f"ElementwiseKernel {self.name}: {_host_hint(a)}")
        placeholders = {}  # e.g. 'T' -> the dtype of every array argument declared 'T'
        for (typ, name), a in zip(self.in_params + self.out_params, args):
            if isinstance(a, StrictArray) and typ not in _C_TYPES:
                if placeholders.setdefault(typ, a.dtype) != a.dtype:
                    raise TypeError(f"Type is mismatched. {name} {typ} {a.dtype} (expected {placeholders[typ]})")

        def dtype_of(typ: str) -> np.dtype:
            if typ in placeholders:
                return placeholders[typ]
            if typ in _C_TYPES:
                return np.dtype(_C_TYPES[typ])
            raise TypeError(f"{self.name}: cannot determine the type {typ} from the arguments")

        env = dict(self._FUNCS)
        env.update({f"_cast_{typ}": dtype_of(typ).type for typ in self._casts})
        for (typ, name), a in zip(self.in_params, args[:n_in]):
            env[name] = (a._a if isinstance(a, StrictArray) else np.asarray(a)).astype(dtype_of(typ), copy=False)
        shape = np.broadcast_shapes(*(env[name].shape for _, name in self.in_params))
        for target, code in self.statements:
            env[target] = eval(code, {"__builtins__": {}}, env)  # our own kernel text, parsed above
        outs = list(args[n_in:]) or [empty(shape, dtype=dtype_of(typ)) for typ, _ in self.out_params]
        for out, (typ, name) in zip(outs, self.out_params):
            if out.shape != shape:
                raise ValueError(f"{self.name}: output {name} has shape {out.shape}; the inputs broadcast to {shape}")
            out._a[...] = np.broadcast_to(np.asarray(env[name]).astype(dtype_of(typ), copy=False), shape)
        return outs[0] if n_out == 1 else tuple(outs)


_C_TYPES = {"float": "float32", "double": "float64", "int": "int32", "bool": "bool", "float16": "float16",
            "float32": "float32", "float64": "float64", "int32": "int32", "int64": "int64", "uint32": "uint32",
            "uint64": "uint64", "uint8": "uint8", "int8": "int8"}  # fmt: skip


def _build_module() -> types.ModuleType:
    m = types.ModuleType("strict", "A CuPy-like array module over NumPy that refuses host/device mixing.")
    m.ndarray = StrictArray
    m.ElementwiseKernel = ElementwiseKernel
    m.asarray, m.array, m.asnumpy, m.empty, m.empty_like = asarray, array, asnumpy, empty, empty_like
    for name in (
        "float16 float32 float64 complex64 complex128 int8 int16 int32 int64 uint8 uint16 uint32 uint64 bool_ "
        "dtype finfo iinfo result_type promote_types can_cast issubdtype integer floating newaxis pi e inf nan"
    ).split():
        setattr(m, name, getattr(np, name))
    for name in (
        "tanh exp log log1p expm1 log2 log10 sqrt square sign abs absolute negative floor ceil rint trunc sin cos "
        "maximum minimum fmax fmin add subtract multiply divide true_divide floor_divide power mod logaddexp "
        "greater greater_equal less less_equal equal not_equal logical_and logical_or logical_not isnan isinf "
        "isfinite matmul"
    ).split():
        setattr(m, name, _ufunc(getattr(np, name)))
    for name in ("zeros", "ones", "full", "arange", "linspace", "eye", "identity"):
        setattr(m, name, _function(getattr(np, name), array_first=False))
    for name in ("zeros_like", "ones_like", "full_like"):
        setattr(m, name, _like(getattr(np, name)))
    for name in (
        "sum prod mean var std max min amax amin argmax argmin any all cumsum clip reshape ravel transpose "
        "moveaxis swapaxes expand_dims squeeze broadcast_to take take_along_axis flip roll repeat tile pad sort "
        "argsort searchsorted nonzero count_nonzero diff dot tensordot concatenate stack vstack hstack outer "
        "where copy isclose allclose array_equal unique"
    ).split():
        setattr(m, name, _function(getattr(np, name)))
    m.einsum = _function(np.einsum, array_first=False)  # the subscripts come first
    return m


strict = _build_module()


STRICT = Backend(
    name="strict",
    xp=strict,
    array_type=StrictArray,
    to_host=asnumpy,
    scatter_add=scatter_add,
    synchronize=lambda: None,
)


@contextlib.contextmanager
def strict_backend(backend: Backend = STRICT):
    """Register a strict backend (STRICT, or a variant of it made with dataclasses.replace) so that
    minwave.backend.array_module()/backend_of()/to_host() recognise its arrays; unregister after."""
    register(backend)
    try:
        yield backend
    finally:
        unregister(backend)
