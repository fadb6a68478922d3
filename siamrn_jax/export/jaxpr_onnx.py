"""A jaxpr -> ONNX converter (``convert``): JAX functions of arrays as ONNX graphs, with the ``onnx``
package's helper API.

It traces a function with ``jax.make_jaxpr`` (weights closed over as constants), inlines
nested jaxprs (``jit``, ``custom_jvp_call``, ``custom_vjp_call`` primal, ``scan`` / ``while`` with a
constant trip count unrolled, ``cond``), evaluates every equation whose inputs are all constants at export
time (only constants that runtime nodes read become initializers) and maps the remaining primitives to
ONNX opset 18 nodes (``PRIMITIVES``). A primitive it has no rule for is an ``ExportError`` naming it.
Exports always compute in float32 (onnxruntime's CPU kernels have no bfloat16).

Why our own: jax2onnx 0.17 pins orbax-checkpoint < 0.11.37 (we use 0.12) and, installed without its
dependencies, could not convert flax's max-pool. ``siamrn_jax.export.onnx`` uses it for the tracker.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from siamrn_jax import __version__
from siamrn_jax.export.stablehlo import ExportError

OPSET = 18
# IR version 8 (ONNX 1.13) is the oldest that carries opset 18: onnxruntime >= 1.14 reads the files.
IR_VERSION = 8
_BOOL = np.dtype(bool)


def import_onnx():
    try:
        import onnx
    except ImportError:
        raise ExportError(
            "ONNX export needs the 'onnx' package: pip install onnx (it is in the dev extra)"
        ) from None
    return onnx


# --- values ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Rt:
    """A runtime (graph) value: the ONNX tensor ``name`` has shape ``shape``, which equals the jaxpr value's
    shape ``full`` or has 1 where the value is a broadcast (``broadcast_in_dim`` is lazy: elementwise
    consumers broadcast themselves, the others get an ``Expand``)."""

    name: str
    shape: tuple[int, ...]
    full: tuple[int, ...]
    dtype: np.dtype


def _is_const(v) -> bool:
    return isinstance(v, np.ndarray | np.generic)


def _shape(v) -> tuple[int, ...]:
    return tuple(v.shape) if _is_const(v) else v.full


def _dtype(v) -> np.dtype:
    return np.dtype(v.dtype)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Element-wise equal, NaN equal to NaN: a NaN splat (e.g. ``jnp.where(c, jnp.nan, x)``) is a splat."""
    nan_aware = np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.complexfloating)
    return bool(np.array_equal(a, b, equal_nan=nan_aware))


def _uniform_axes_reduced(a: np.ndarray) -> np.ndarray:
    """``a`` with every axis along which it is constant cut to length 1 (broadcasts back to ``a``)."""
    for ax in range(a.ndim):
        if a.shape[ax] > 1:
            first = np.take(a, [0], axis=ax)
            if _same(a, np.broadcast_to(first, a.shape)):
                a = first
    return a


def _strides(shape: Sequence[int]) -> list[int]:
    out, acc = [], 1
    for n in reversed(shape):
        out.append(acc)
        acc *= int(n)
    return out[::-1]


def _tensor_type(dtype) -> int:
    onnx = import_onnx()
    dtype = np.dtype(dtype)
    if dtype.name == "bfloat16":
        raise ExportError("bfloat16 values: ONNX exports compute in float32")
    return onnx.helper.np_dtype_to_tensor_dtype(dtype)


# NumPy implementations of common primitives for constant folding (exact: IEEE operations, layout
# changes); anything else (integer division, transcendental functions, ...) folds through
# ``primitive.bind`` on the CPU, i.e. with XLA's own arithmetic.
def _np_broadcast_in_dim(x, shape, broadcast_dimensions, **_):
    inter = [1] * len(shape)
    for i, d in enumerate(broadcast_dimensions):
        inter[d] = x.shape[i]
    return np.broadcast_to(x.reshape(inter), shape)


def _call_ufunc(f, *args, **_params):
    return f(*args)


_NP_UFUNCS = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "neg": np.negative,
    "max": np.maximum,
    "min": np.minimum,
    "abs": np.abs,
    "sqrt": np.sqrt,
    "eq": np.equal,
    "ne": np.not_equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "and": np.logical_and,
    "or": np.logical_or,
    "not": np.logical_not,
}
_NP_FOLD: dict[str, Callable] = {
    **{k: functools.partial(_call_ufunc, f) for k, f in _NP_UFUNCS.items()},
    "broadcast_in_dim": _np_broadcast_in_dim,
    "reshape": lambda x, new_sizes, dimensions=None, **_: (
        x if dimensions is None else np.transpose(x, dimensions)
    ).reshape(new_sizes),
    "squeeze": lambda x, dimensions, **_: np.squeeze(x, tuple(dimensions)),
    "transpose": lambda x, permutation, **_: np.transpose(x, permutation),
    "convert_element_type": lambda x, new_dtype, **_: x.astype(new_dtype),
    "iota": lambda dtype, shape, dimension, **_: np.broadcast_to(
        np.arange(shape[dimension], dtype=dtype).reshape(
            [-1 if i == dimension else 1 for i in range(len(shape))]
        ),
        shape,
    ),
    "stop_gradient": lambda x, **_: x,
    "copy": lambda x, **_: x,
}


_NP_OPS = {
    "Add": np.add,
    "Mul": np.multiply,
    "Max": np.maximum,
    "Min": np.minimum,
    "And": np.logical_and,
    "GreaterOrEqual": np.greater_equal,
    "LessOrEqual": np.less_equal,
}
_COMPARISONS = ("And", "GreaterOrEqual", "LessOrEqual")


# --- the converter --------------------------------------------------------------------------------------


PRIMITIVES: set[str] = set()  # primitives with a rule (filled below)
_RULES: dict[str, Callable] = {}


def _rule(*names):
    def register(fn):
        for n in names:
            _RULES[n] = fn
            PRIMITIVES.add(n)
        return fn

    return register


_UNARY = {
    "neg": "Neg",
    "exp": "Exp",
    "log": "Log",
    "tanh": "Tanh",
    "logistic": "Sigmoid",
    "abs": "Abs",
    "sqrt": "Sqrt",
    "floor": "Floor",
    "ceil": "Ceil",
    "sign": "Sign",
    "sin": "Sin",
    "cos": "Cos",
    "tan": "Tan",
    "asin": "Asin",
    "acos": "Acos",
    "atan": "Atan",
    "sinh": "Sinh",
    "cosh": "Cosh",
    "asinh": "Asinh",
    "acosh": "Acosh",
    "atanh": "Atanh",
    "erf": "Erf",
}
_BINARY = {
    "add": "Add",
    "add_any": "Add",
    "sub": "Sub",
    "mul": "Mul",
    "div": "Div",
    "pow": "Pow",
    "eq": "Equal",
    "lt": "Less",
    "le": "LessOrEqual",
    "gt": "Greater",
    "ge": "GreaterOrEqual",
}
_PASS = ("stop_gradient", "copy", "copy_p", "optimization_barrier", "sharding_constraint", "pvary")
_INLINE = ("pjit", "jit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call", "checkpoint")
_INLINE += ("remat", "custom_vjp_call_jaxpr")
PRIMITIVES.update(_UNARY, _BINARY, _PASS, _INLINE, ("scan", "while", "cond", "iota"))


def _sub_jaxpr(eqn) -> tuple[Any, list]:
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        j = eqn.params.get(key)
        if isinstance(j, jcore.ClosedJaxpr):
            return j.jaxpr, list(j.consts)
        if isinstance(j, jcore.Jaxpr):
            return j, []
    raise ExportError(f"{eqn.primitive.name}: no inner jaxpr to inline")


class _Converter:
    """One ONNX graph: nodes, initializers, and the jaxpr interpreter that emits them."""

    def __init__(self):
        self.nodes: list = []
        self.inits: list = []
        self._ids = itertools.count()
        self._consts: dict[tuple, str] = {}
        self.arrays: dict[str, np.ndarray] = {}  # initializer name -> value
        self._expanded: dict[str, str] = {}
        self.seen: dict[str, int] = {}  # primitive -> equations met (folded or emitted)
        self.folded = 0

    # -- graph building

    def fresh(self, hint: str) -> str:
        return f"{hint}_{next(self._ids)}"

    def node(self, op: str, inputs: Sequence[str], n_out: int = 1, **attrs) -> Any:
        onnx = import_onnx()
        outs = [self.fresh(op) for _ in range(n_out)]
        self.nodes.append(onnx.helper.make_node(op, list(inputs), outs, name=outs[0], **attrs))
        return outs if n_out > 1 else outs[0]

    def const(self, a) -> str:
        """The name of an initializer holding ``a`` (identical arrays share one)."""
        onnx = import_onnx()
        a = np.asarray(a)
        if not a.flags.c_contiguous:  # (np.ascontiguousarray would make a scalar 1-D)
            a = a.copy(order="C")
        key = (a.dtype.str, a.shape, hashlib.blake2b(a.tobytes(), digest_size=16).digest())
        if key not in self._consts:
            name = self.fresh("c")
            self.inits.append(onnx.numpy_helper.from_array(a, name))
            self._consts[key] = name
            self.arrays[name] = a
        return self._consts[key]

    def i64(self, values) -> str:
        return self.const(np.asarray(values, np.int64))

    def rt(self, name: str, shape, dtype, full=None) -> _Rt:
        shape = tuple(int(d) for d in shape)
        return _Rt(name, shape, shape if full is None else tuple(int(d) for d in full), np.dtype(dtype))

    # -- reading values as ONNX names

    def use(self, v) -> str:
        """Name of a tensor holding ``v`` at its full shape."""
        if _is_const(v):
            flat = v.reshape(-1)
            if v.size > 64 and _same(
                flat, np.broadcast_to(flat[0], flat.shape)
            ):  # a splat: expanded at run time
                return self.node("Expand", [self.const(flat[0]), self.i64(v.shape)])
            return self.const(v)
        if v.shape == v.full:
            return v.name
        if v.name not in self._expanded:
            self._expanded[v.name] = self.node("Expand", [v.name, self.i64(v.full)])
        return self._expanded[v.name]

    def use_bcast(self, v) -> tuple[str, tuple[int, ...]]:
        """(name, shape) of a tensor that broadcasts (numpy rules) to ``v``: for elementwise nodes."""
        if _is_const(v):
            r = _uniform_axes_reduced(v)
            return self.const(r), tuple(r.shape)
        return v.name, v.shape

    def materialize(self, v) -> _Rt | np.ndarray:
        if _is_const(v) or v.shape == v.full:
            return v
        return self.rt(self.use(v), v.full, v.dtype)

    # -- value-level helpers (fold constants, skip no-ops)

    def transpose(self, v, perm):
        perm = [int(p) for p in perm]
        if perm == list(range(len(perm))):
            return v
        if _is_const(v):
            return np.transpose(v, perm)
        shape, full = [v.shape[p] for p in perm], [v.full[p] for p in perm]
        moved = [p for p in perm if v.shape[p] != 1]
        if moved == sorted(moved):  # only length-1 axes move: the same memory order, a free Reshape
            return self.rt(self.node("Reshape", [v.name, self.i64(shape)]), shape, v.dtype, full)
        return self.rt(self.node("Transpose", [v.name], perm=perm), shape, v.dtype, full)

    def reshape(self, v, shape):
        shape = tuple(int(d) for d in shape)
        if _is_const(v):
            return v.reshape(shape)
        v = self.materialize(v)
        if v.full == shape:
            return v
        return self.rt(self.node("Reshape", [v.name, self.i64(shape)]), shape, v.dtype)

    def cast(self, v, dtype):
        dtype = np.dtype(dtype)
        if _dtype(v) == dtype:
            return v
        if _is_const(v):
            return v.astype(dtype)
        return self.rt(self.node("Cast", [v.name], to=_tensor_type(dtype)), v.shape, dtype, v.full)

    def elementwise(self, op: str, ins, full, dtype, **attrs) -> _Rt:
        ins = [np.asarray(v) if _is_const(v) else v for v in ins]
        names, shapes = zip(*(self.use_bcast(v) for v in ins), strict=True)
        shape = np.broadcast_shapes(*shapes)
        name = self.node(op, names, **attrs)
        if len(shape) < len(full):  # keep the rank of the jaxpr value
            shape = (1,) * (len(full) - len(shape)) + tuple(shape)
            name = self.node("Reshape", [name, self.i64(shape)])
        return self.rt(name, shape, dtype, full)

    def op(self, op: str, *vals):
        """An elementwise ONNX op on values (NumPy when all are constants), numpy broadcasting."""
        vals = [v if isinstance(v, _Rt) else np.asarray(v) for v in vals]
        if all(_is_const(v) for v in vals):
            return np.asarray(_NP_OPS[op](*vals))
        full = np.broadcast_shapes(*(_shape(v) for v in vals))
        dtype = _BOOL if op in _COMPARISONS else _dtype(next(v for v in vals if isinstance(v, _Rt)))
        return self.elementwise(op, vals, full, dtype)

    def slice_static(self, v, starts, limits, steps=None):
        """Static ``x[starts:limits:steps]``; broadcast axes of a lazy value stay lazy."""
        full = _shape(v)
        steps = steps or [1] * len(full)
        out_full = [max(0, -(-(lim - st) // sp)) for st, lim, sp in zip(starts, limits, steps, strict=True)]
        if _is_const(v):
            return v[tuple(slice(st, lim, sp) for st, lim, sp in zip(starts, limits, steps, strict=True))]
        axes, s, e, p = [], [], [], []
        shape = list(v.shape)
        for d, (st, lim, sp) in enumerate(zip(starts, limits, steps, strict=True)):
            if v.shape[d] == 1 and v.full[d] != 1:  # a broadcast axis: every slice of it is the same
                continue
            shape[d] = out_full[d]
            if (st, lim, sp) != (0, full[d], 1):
                axes.append(d), s.append(st), e.append(lim), p.append(sp)
        if not axes:
            return self.rt(v.name, shape, v.dtype, out_full)
        name = self.node("Slice", [v.name, self.i64(s), self.i64(e), self.i64(axes), self.i64(p)])
        return self.rt(name, shape, v.dtype, out_full)

    def take0(self, v, i: int):
        """``v[i]`` (the leading axis dropped)."""
        if _is_const(v):
            return v[i]
        if v.shape[0] == 1 and v.full[0] != 1:
            i = 0
        name = self.node("Gather", [v.name, self.const(np.int64(i))], axis=0)
        return self.rt(name, v.shape[1:], v.dtype, v.full[1:])

    def stack(self, vals, axis: int):
        if all(_is_const(v) for v in vals):
            return np.stack(vals, axis)
        names = []
        for v in vals:
            s = list(_shape(v))
            names.append(self.use(self.reshape(v, s[:axis] + [1] + s[axis:])))
        s = list(_shape(vals[0]))
        out = s[:axis] + [len(vals)] + s[axis:]
        return self.rt(self.node("Concat", names, axis=axis), out, _dtype(vals[0]))

    def crop_negative_pads(self, v, pads, first_axis: int = 0):
        """Negative (cropping) ``(lo, hi)`` pads as a slice; returns (value, the non-negative pads)."""
        pads = [(int(lo), int(hi)) for lo, hi in pads]
        if all(lo >= 0 and hi >= 0 for lo, hi in pads):
            return v, pads
        full = _shape(v)
        starts, limits = [0] * len(full), list(full)
        for k, (lo, hi) in enumerate(pads):
            d = first_axis + k
            starts[d], limits[d] = max(0, -lo), full[d] - max(0, -hi)
        return self.materialize(self.slice_static(v, starts, limits)), [
            (max(0, lo), max(0, hi)) for lo, hi in pads
        ]

    # -- interpreter

    def run(self, jaxpr, consts, args) -> list:
        env: dict = {}

        def read(var):
            if isinstance(var, jcore.Literal):
                return np.asarray(var.val, var.aval.dtype)
            return env[var]

        for var, c in zip(jaxpr.constvars, consts, strict=True):
            env[var] = np.asarray(c)
        for var, a in zip(jaxpr.invars, args, strict=True):
            env[var] = a
        for eqn in jaxpr.eqns:
            outs = self.equation(eqn, [read(v) for v in eqn.invars])
            for var, o in zip(eqn.outvars, outs, strict=True):
                if not isinstance(var, jcore.DropVar):
                    env[var] = o
        return [read(v) for v in jaxpr.outvars]

    def equation(self, eqn, ins) -> list:
        name = eqn.primitive.name
        self.seen[name] = self.seen.get(name, 0) + 1
        if name in _INLINE:
            j, consts = _sub_jaxpr(eqn)
            return self.run(j, consts, ins)
        if name in ("scan", "while", "cond"):
            return getattr(self, f"_{name}")(eqn, ins)
        if name in _PASS:
            return list(ins)
        if all(_is_const(v) for v in ins):
            self.folded += 1
            return self.fold(eqn, ins)
        rule = _RULES.get(name)
        if rule is None and name in _UNARY:
            rule = _unary
        elif rule is None and name in _BINARY:
            rule = _binary
        if rule is None:
            avals = ", ".join(v.aval.str_short() for v in eqn.invars)
            raise ExportError(f"ONNX export: no conversion for the JAX primitive '{name}' (inputs {avals})")
        outs = rule(self, eqn, ins)
        return outs if isinstance(outs, list) else [outs]

    def fold(self, eqn, ins) -> list:
        name = eqn.primitive.name
        avals = [v.aval for v in eqn.outvars]
        fn = _NP_FOLD.get(name)
        if fn is not None and not any(a.dtype.name == "bfloat16" for a in ins):
            with np.errstate(all="ignore"):
                out = fn(*ins, **eqn.params)
            outs = [out]
        else:
            params = eqn.primitive.get_bind_params(eqn.params)  # as jax.core.eval_jaxpr binds
            with jax.default_device(jax.devices("cpu")[0]):
                out = eqn.primitive.bind(*ins, **params)
            outs = list(out) if eqn.primitive.multiple_results else [out]
        return [np.asarray(o, a.dtype).reshape(a.shape) for o, a in zip(outs, avals, strict=True)]

    # -- control flow (unrolled)

    def _scan(self, eqn, ins):
        p = eqn.params
        nc, ncar, length = p["num_consts"], p["num_carry"], p["length"]
        body, body_consts = p["jaxpr"].jaxpr, list(p["jaxpr"].consts)
        consts, carry, xs = ins[:nc], list(ins[nc : nc + ncar]), ins[nc + ncar :]
        per_step = []
        steps = range(length - 1, -1, -1) if p["reverse"] else range(length)
        for i in steps:
            outs = self.run(body, body_consts, [*consts, *carry, *(self.take0(x, i) for x in xs)])
            carry, ys = outs[:ncar], outs[ncar:]
            per_step.append(ys)
        if p["reverse"]:
            per_step.reverse()
        ys_avals = [v.aval for v in eqn.outvars[ncar:]]
        if length == 0:
            return [*carry, *(np.zeros(a.shape, a.dtype) for a in ys_avals)]
        return [*carry, *(self.stack([s[j] for s in per_step], 0) for j in range(len(ys_avals)))]

    def _while(self, eqn, ins, max_steps: int = 100_000):
        p = eqn.params
        cn, bn = p["cond_nconsts"], p["body_nconsts"]
        cj, bj = p["cond_jaxpr"], p["body_jaxpr"]
        cconsts, bconsts, carry = ins[:cn], ins[cn : cn + bn], list(ins[cn + bn :])
        for _ in range(max_steps):
            (pred,) = self.run(cj.jaxpr, cj.consts, [*cconsts, *carry])
            if not _is_const(pred):
                raise ExportError(
                    "ONNX export: a 'while' loop whose condition depends on the inputs (only loops with a "
                    "trip count known at export time are unrolled)"
                )
            if not bool(pred):
                return carry
            carry = self.run(bj.jaxpr, bj.consts, [*bconsts, *carry])
        raise ExportError(f"ONNX export: a 'while' loop of more than {max_steps} iterations")

    def _cond(self, eqn, ins):
        branches = eqn.params["branches"]
        index, ops = ins[0], ins[1:]
        if _is_const(index):
            b = branches[int(np.clip(index, 0, len(branches) - 1))]
            return self.run(b.jaxpr, b.consts, ops)
        results = [self.run(b.jaxpr, b.consts, ops) for b in branches]
        outs = []
        for j, var in enumerate(eqn.outvars):
            res = results[-1][j]
            for k in range(len(branches) - 2, -1, -1):  # index <= k picks branch k (lax.cond clamps)
                pick = self.elementwise("LessOrEqual", [index, np.asarray(k, _dtype(index))], (), bool)
                res = self.elementwise("Where", [pick, results[k][j], res], var.aval.shape, var.aval.dtype)
            outs.append(res)
        return outs


def _out(eqn, i: int = 0):
    a = eqn.outvars[i].aval
    return tuple(a.shape), np.dtype(a.dtype)


def _unary(c: _Converter, eqn, ins):
    (x,) = ins
    full, dtype = _out(eqn)
    return c.elementwise(_UNARY[eqn.primitive.name], [x], full, dtype)


def _binary(c: _Converter, eqn, ins):
    full, dtype = _out(eqn)
    return c.elementwise(_BINARY[eqn.primitive.name], ins, full, dtype)


@_rule("max", "min")
def _max_min(c, eqn, ins):
    full, dtype = _out(eqn)
    is_max = eqn.primitive.name == "max"
    if is_max and np.issubdtype(dtype, np.floating) and sum(map(_is_const, ins)) == 1:
        (x,) = [v for v in ins if not _is_const(v)]
        (z,) = [np.asarray(v) for v in ins if _is_const(v)]
        zr = _uniform_axes_reduced(z)
        if np.all(z == 0) and zr.ndim <= len(x.shape) and np.broadcast_shapes(x.shape, zr.shape) == x.shape:
            return c.elementwise("Relu", [x], full, dtype)  # max(x, 0): onnxruntime fuses Relu into Conv
    if dtype == _BOOL:
        return c.elementwise("Or" if is_max else "And", ins, full, dtype)
    return c.elementwise("Max" if is_max else "Min", ins, full, dtype)


@_rule("ne")
def _ne(c, eqn, ins):
    full, dtype = _out(eqn)
    eq = c.elementwise("Equal", ins, full, dtype)
    return c.elementwise("Not", [eq], full, dtype)


@_rule("rsqrt")
def _rsqrt(c, eqn, ins):
    full, dtype = _out(eqn)
    return c.elementwise("Reciprocal", [c.elementwise("Sqrt", ins, full, dtype)], full, dtype)


@_rule("square")
def _square(c, eqn, ins):
    full, dtype = _out(eqn)
    return c.elementwise("Mul", [ins[0], ins[0]], full, dtype)


@_rule("exp2")
def _exp2(c, eqn, ins):
    full, dtype = _out(eqn)
    return c.elementwise("Pow", [np.asarray(2, dtype), ins[0]], full, dtype)


@_rule("log1p", "expm1")
def _log1p_expm1(c, eqn, ins):
    full, dtype = _out(eqn)
    one = np.asarray(1, dtype)
    if eqn.primitive.name == "log1p":
        return c.elementwise("Log", [c.elementwise("Add", [ins[0], one], full, dtype)], full, dtype)
    return c.elementwise("Sub", [c.elementwise("Exp", ins, full, dtype), one], full, dtype)


@_rule("is_finite")
def _is_finite(c, eqn, ins):
    full, _ = _out(eqn)
    x = ins[0]
    bad = c.elementwise(
        "Or", [c.elementwise("IsInf", [x], full, bool), c.elementwise("IsNaN", [x], full, bool)], full, bool
    )
    return c.elementwise("Not", [bad], full, bool)


@_rule("round")
def _round(c, eqn, ins):
    full, dtype = _out(eqn)
    if int(eqn.params.get("rounding_method", 0)) == 1:  # to nearest even, as ONNX Round
        return c.elementwise("Round", ins, full, dtype)
    x = ins[0]  # away from zero: sign(x) floor(|x| + 0.5)
    mag = c.elementwise(
        "Floor",
        [c.elementwise("Add", [c.elementwise("Abs", [x], full, dtype), np.asarray(0.5, dtype)], full, dtype)],
        full,
        dtype,
    )
    return c.elementwise("Mul", [c.elementwise("Sign", [x], full, dtype), mag], full, dtype)


@_rule("rem")
def _rem(c, eqn, ins):
    full, dtype = _out(eqn)
    return c.elementwise("Mod", ins, full, dtype, fmod=1)


@_rule("and", "or", "xor", "not")
def _logical(c, eqn, ins):
    full, dtype = _out(eqn)
    name = eqn.primitive.name
    op = name.capitalize() if dtype == _BOOL else "Bitwise" + name.capitalize()
    return c.elementwise(op, ins, full, dtype)


@_rule("integer_pow")
def _integer_pow(c, eqn, ins):
    full, dtype = _out(eqn)
    y = int(eqn.params["y"])
    x = ins[0]
    if y == 0:
        return np.ones(full, dtype)
    acc, base, n = None, x, abs(y)  # binary exponentiation, as XLA expands it
    while n:
        if n & 1:
            acc = base if acc is None else c.elementwise("Mul", [acc, base], full, dtype)
        n >>= 1
        if n:
            base = c.elementwise("Mul", [base, base], full, dtype)
    if y < 0:
        acc = c.elementwise("Reciprocal", [acc], full, dtype)
    return acc


@_rule("convert_element_type")
def _convert(c, eqn, ins):
    full, dtype = _out(eqn)
    v = c.cast(ins[0], dtype)
    return v if _is_const(v) or v.full == full else dataclasses.replace(v, full=full)


@_rule("reduce_precision")
def _reduce_precision(c, eqn, ins):
    fi = jnp.finfo(eqn.invars[0].aval.dtype)
    if (eqn.params["exponent_bits"], eqn.params["mantissa_bits"]) != (fi.nexp, fi.nmant):
        raise ExportError("ONNX export: reduce_precision to a narrower float format")
    return ins[0]


@_rule("select_n")
def _select_n(c, eqn, ins):
    full, dtype = _out(eqn)
    pred, cases = ins[0], ins[1:]
    if _dtype(pred) == _BOOL:
        return c.elementwise("Where", [pred, cases[1], cases[0]], full, dtype)
    res = cases[-1]
    for k in range(len(cases) - 2, -1, -1):
        pick = c.elementwise("Equal", [pred, np.asarray(k, _dtype(pred))], _shape(pred), bool)
        res = c.elementwise("Where", [pick, cases[k], res], full, dtype)
    return res


@_rule("clamp")
def _clamp(c, eqn, ins):
    full, dtype = _out(eqn)
    lo, x, hi = ins
    return c.elementwise("Min", [c.elementwise("Max", [x, lo], full, dtype), hi], full, dtype)


@_rule("broadcast_in_dim")
def _broadcast_in_dim(c, eqn, ins):
    x = ins[0]
    shape, dims = eqn.params["shape"], eqn.params["broadcast_dimensions"]
    inter = [1] * len(shape)
    for i, d in enumerate(dims):
        inter[d] = x.shape[i]
    name = x.name if list(x.shape) == inter else c.node("Reshape", [x.name, c.i64(inter)])
    return c.rt(name, inter, x.dtype, shape)


@_rule("reshape")
def _reshape(c, eqn, ins):
    x = ins[0]
    if eqn.params.get("dimensions") is not None:
        x = c.transpose(c.materialize(x), eqn.params["dimensions"])
    return c.reshape(x, eqn.params["new_sizes"])


@_rule("squeeze")
def _squeeze(c, eqn, ins):
    x = ins[0]
    dims = {d % len(x.full) for d in eqn.params["dimensions"]}
    shape = [n for d, n in enumerate(x.shape) if d not in dims]
    full = [n for d, n in enumerate(x.full) if d not in dims]
    return c.rt(c.node("Reshape", [x.name, c.i64(shape)]), shape, x.dtype, full)


@_rule("expand_dims")
def _expand_dims(c, eqn, ins):
    return c.reshape(ins[0], _out(eqn)[0])


@_rule("transpose")
def _transpose(c, eqn, ins):
    return c.transpose(ins[0], eqn.params["permutation"])


@_rule("slice")
def _slice(c, eqn, ins):
    p = eqn.params
    return c.slice_static(
        ins[0], list(p["start_indices"]), list(p["limit_indices"]), p["strides"] and list(p["strides"])
    )


@_rule("rev")
def _rev(c, eqn, ins):
    x = c.materialize(ins[0])
    dims = list(eqn.params["dimensions"])
    if not dims:
        return x
    n = len(dims)
    lo = np.iinfo(np.int64).min
    name = c.node("Slice", [x.name, c.i64([-1] * n), c.i64([lo] * n), c.i64(dims), c.i64([-1] * n)])
    return c.rt(name, x.full, x.dtype)


@_rule("concatenate")
def _concatenate(c, eqn, ins):
    full, dtype = _out(eqn)
    return c.rt(c.node("Concat", [c.use(v) for v in ins], axis=int(eqn.params["dimension"])), full, dtype)


@_rule("stack")
def _stack(c, eqn, ins):
    return c.stack(list(ins), int(eqn.params["axis"]))


@_rule("unstack")
def _unstack(c, eqn, ins):
    x, axis = c.materialize(ins[0]), int(eqn.params["axis"])
    x = c.transpose(x, [axis] + [d for d in range(len(x.full)) if d != axis])
    return [c.materialize(c.take0(x, i)) for i in range(x.full[0])]


@_rule("split")
def _split(c, eqn, ins):
    x = c.use(ins[0])
    sizes = [int(s) for s in eqn.params["sizes"]]
    names = c.node("Split", [x, c.i64(sizes)], n_out=len(sizes), axis=int(eqn.params["axis"]))
    names = names if isinstance(names, list) else [names]
    return [c.rt(n, *_out(eqn, i)) for i, n in enumerate(names)]


@_rule("tile")
def _tile(c, eqn, ins):
    full, dtype = _out(eqn)
    return c.rt(c.node("Tile", [c.use(ins[0]), c.i64(eqn.params["reps"])]), full, dtype)


@_rule("pad")
def _pad(c, eqn, ins):
    x, value = ins
    cfg = eqn.params["padding_config"]
    if any(int(i) != 0 for _, _, i in cfg):
        raise ExportError("ONNX export: 'pad' with interior padding")
    x, pads = c.crop_negative_pads(c.materialize(x), [(lo, hi) for lo, hi, _ in cfg])
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    full, dtype = _out(eqn)
    pv = c.const(np.asarray(value, dtype)) if _is_const(value) else c.use(value)
    flat = [lo for lo, _ in pads] + [hi for _, hi in pads]
    return c.rt(c.node("Pad", [c.use(x), c.i64(flat), pv], mode="constant"), full, dtype)


def _clamped_start(c: _Converter, v, lim: int):
    """A start index (scalar or array, constant or runtime) as int64 clamped to [0, lim], as XLA clamps."""
    return c.op("Min", c.op("Max", c.cast(v, np.int64), 0), lim)


def _add_starts(c: _Converter, coords: list, idx, index_shape, dims, lims, check: bool):
    """Adds ``gather`` / ``scatter`` start indices to ``coords`` in place: component ``k`` of ``idx``'s last
    axis (constant or runtime), shaped ``index_shape``, clamped to [0, lims[k]] as XLA does, onto the
    coordinate of operand axis ``dims[k]``. Returns the in-range mask (``check``: FILL_OR_DROP), else True."""
    valid = np.asarray(True)
    rank_i = len(_shape(idx))
    for k, (d, lim) in enumerate(zip(dims, lims, strict=True)):
        if _is_const(idx):
            start = np.asarray(idx[..., k])
        else:
            start = c.node("Gather", [c.use(idx), c.const(np.int64(k))], axis=rank_i - 1)
            start = c.rt(start, _shape(idx)[:-1], idx.dtype)
        start = c.reshape(c.cast(start, np.int64), index_shape)
        if check:
            inside = c.op("And", c.op("GreaterOrEqual", start, 0), c.op("LessOrEqual", start, lim))
            valid = c.op("And", valid, inside)
        coords[d] = c.op("Add", coords[d], _clamped_start(c, start, lim))
    return valid


@_rule("dynamic_slice")
def _dynamic_slice(c, eqn, ins):
    x, starts = c.materialize(ins[0]), ins[1:]
    sizes = [int(s) for s in eqn.params["slice_sizes"]]
    begin = [_clamped_start(c, st, n - k) for st, n, k in zip(starts, _shape(x), sizes, strict=True)]
    if all(_is_const(b) for b in begin):
        b = [int(v) for v in begin]
        return c.materialize(c.slice_static(x, b, [v + k for v, k in zip(b, sizes, strict=True)]))
    begin = c.node("Concat", [c.use(c.reshape(b, (1,))) for b in begin], axis=0)
    end = c.node("Add", [begin, c.i64(sizes)])
    full, dtype = _out(eqn)
    return c.rt(c.node("Slice", [c.use(x), begin, end, c.i64(range(len(sizes)))]), full, dtype)


def _iota_at(rank: int, axis: int, n: int) -> np.ndarray:
    shape = [1] * rank
    shape[axis] = n
    return np.arange(n, dtype=np.int64).reshape(shape)


def _flat_index(c: _Converter, coords, operand_shape, out_shape):
    """Σ_d coords[d] * stride_d (row-major strides of ``operand_shape``) at ``out_shape``: the flat operand
    index of every element; each coordinate broadcasts to ``out_shape``."""
    flat = np.zeros([1] * len(out_shape), np.int64)
    for coord, stride in zip(coords, _strides(operand_shape), strict=True):
        flat = c.op("Add", flat, c.op("Mul", coord, stride))
    if _is_const(flat):
        return np.ascontiguousarray(np.broadcast_to(flat, out_shape))
    return c.materialize(dataclasses.replace(flat, full=tuple(out_shape)))


@_rule("gather")
def _gather(c, eqn, ins):
    """Any ``lax.gather`` as one ``Gather`` on the flattened operand: the operand index of every output
    element is built from the start indices (clamped as XLA does; out-of-range slices replaced by the fill
    value in FILL_OR_DROP mode) and constant iotas over the slice and batching axes."""
    x, idx = ins
    p = eqn.params
    dn, ss = p["dimension_numbers"], [int(s) for s in p["slice_sizes"]]
    out, dtype = _out(eqn)
    S, I = _shape(x), _shape(idx)
    rank = len(out)
    offset_dims = [int(d) for d in dn.offset_dims]
    collapsed = {int(d) for d in dn.collapsed_slice_dims}
    batching = [int(d) for d in dn.operand_batching_dims]
    batch_pos = [q for q in range(rank) if q not in offset_dims]  # output axes of the index batch axes
    index_shape = [1] * rank  # the index batch axes at their output positions
    for k, q in enumerate(batch_pos):
        index_shape[q] = I[k]
    coords: list = [np.zeros([1] * rank, np.int64) for _ in S]
    sliced = [d for d in range(len(S)) if d not in collapsed and d not in batching]
    for q, d in zip(offset_dims, sliced, strict=True):
        coords[d] = coords[d] + _iota_at(rank, q, ss[d])
    for d, k in zip(batching, dn.start_indices_batching_dims, strict=True):
        q = batch_pos[int(k)]
        coords[d] = coords[d] + _iota_at(rank, q, out[q])
    fill = "FILL_OR_DROP" in str(p["mode"])
    dims = [int(d) for d in dn.start_index_map]
    valid = _add_starts(c, coords, idx, index_shape, dims, [S[d] - ss[d] for d in dims], fill)
    flat = _flat_index(c, coords, S, out)
    data = c.reshape(c.materialize(x), (math.prod(S),))
    res = c.rt(c.node("Gather", [c.use(data), c.use(flat)], axis=0), out, dtype)
    if fill and not (_is_const(valid) and np.all(valid)):
        fv = p.get("fill_value")
        if fv is None:  # lax.gather's defaults
            if np.issubdtype(dtype, np.inexact):
                fv = np.nan
            elif dtype == _BOOL:
                fv = True
            else:
                info = np.iinfo(dtype)
                fv = info.min if np.issubdtype(dtype, np.signedinteger) else info.max
        res = c.elementwise("Where", [valid, res, np.asarray(fv, dtype)], out, dtype)
    return res


@_rule("dynamic_update_slice")
def _dynamic_update_slice(c, eqn, ins):
    """``ScatterElements`` on the flattened operand (start indices clamped as XLA does)."""
    x, upd, starts = c.materialize(ins[0]), c.materialize(ins[1]), ins[2:]
    S, U = _shape(x), _shape(upd)
    coords = []
    for d, st in enumerate(starts):
        start = c.reshape(_clamped_start(c, st, S[d] - U[d]), [1] * len(U))
        coords.append(c.op("Add", _iota_at(len(U), d, U[d]), start))
    flat = c.reshape(_flat_index(c, coords, S, U), (math.prod(U),))
    n = math.prod(S)
    data, values = c.reshape(x, (n,)), c.reshape(upd, (math.prod(U),))
    name = c.node("ScatterElements", [c.use(data), c.use(flat), c.use(values)], axis=0)
    return c.reshape(c.rt(name, (n,), _dtype(x)), _out(eqn)[0])


def _scatter(reduction: str):
    def rule(c, eqn, ins):
        """``lax.scatter*`` as one ``ScatterElements`` on the flattened operand (indices built as for
        ``gather``); FILL_OR_DROP sends out-of-range windows to a spare element cut off afterwards."""
        x, idx, upd = c.materialize(ins[0]), ins[1], c.materialize(ins[2])
        p = eqn.params
        dn = p["dimension_numbers"]
        S, I, U = _shape(x), _shape(idx), _shape(upd)
        rank = len(U)
        window_axes = [int(d) for d in dn.update_window_dims]
        inserted = {int(d) for d in dn.inserted_window_dims}
        batching = [int(d) for d in dn.operand_batching_dims]
        scatter_pos = [q for q in range(rank) if q not in window_axes]  # update axes of the index batch
        index_shape = [1] * rank
        for k, q in enumerate(scatter_pos):
            index_shape[q] = I[k]
        coords: list = [np.zeros([1] * rank, np.int64) for _ in S]
        window = [d for d in range(len(S)) if d not in inserted and d not in batching]
        wsize = dict.fromkeys(range(len(S)), 1)
        for q, d in zip(window_axes, window, strict=True):
            coords[d] = coords[d] + _iota_at(rank, q, U[q])
            wsize[d] = U[q]
        for d, k in zip(batching, dn.scatter_indices_batching_dims, strict=True):
            q = scatter_pos[int(k)]
            coords[d] = coords[d] + _iota_at(rank, q, U[q])
        drop = "FILL_OR_DROP" in str(p["mode"])
        dims = [int(d) for d in dn.scatter_dims_to_operand_dims]
        valid = _add_starts(c, coords, idx, index_shape, dims, [S[d] - wsize[d] for d in dims], drop)
        n = math.prod(S)
        flat = _flat_index(c, coords, S, U)
        spare = drop and not (_is_const(valid) and np.all(valid))
        if spare:  # dropped updates land on element n
            flat = c.elementwise("Where", [valid, flat, np.asarray(n, np.int64)], U, np.int64)
        data = c.reshape(x, (n,))
        if spare:
            data = c.rt(
                c.node("Concat", [c.use(data), c.const(np.zeros(1, _dtype(x)))], axis=0), (n + 1,), _dtype(x)
            )
        flat, values = c.reshape(flat, (math.prod(U),)), c.reshape(upd, (math.prod(U),))
        name = c.node(
            "ScatterElements", [c.use(data), c.use(flat), c.use(values)], axis=0, reduction=reduction
        )
        out = c.rt(name, _shape(data), _dtype(x))
        if spare:
            out = c.materialize(c.slice_static(out, [0], [n]))
        return c.reshape(out, S)

    return rule


for _prim, _red in (
    ("scatter", "none"),
    ("scatter-add", "add"),
    ("scatter_add", "add"),
    ("scatter-mul", "mul"),
    ("scatter_mul", "mul"),
    ("scatter-min", "min"),
    ("scatter_min", "min"),
    ("scatter-max", "max"),
    ("scatter_max", "max"),
):
    _rule(_prim)(_scatter(_red))


def _reduce(op: str):
    def rule(c, eqn, ins):
        x = c.materialize(ins[0])
        full, dtype = _out(eqn)
        axes = [int(a) for a in eqn.params["axes"]]
        if not axes:
            return x
        src = x
        if dtype == _BOOL:  # ONNX reductions take numbers
            src = c.cast(x, np.int32)
        name = c.node(op, [c.use(src), c.i64(axes)], keepdims=0)
        y = c.rt(name, full, _dtype(src))
        return c.cast(y, dtype)

    return rule


for _prim, _op in (
    ("reduce_sum", "ReduceSum"),
    ("reduce_max", "ReduceMax"),
    ("reduce_min", "ReduceMin"),
    ("reduce_prod", "ReduceProd"),
    ("reduce_or", "ReduceMax"),
    ("reduce_and", "ReduceMin"),
):
    _rule(_prim)(_reduce(_op))


@_rule("argmax", "argmin")
def _argmax(c, eqn, ins):
    x = c.materialize(ins[0])
    (axis,) = eqn.params["axes"]
    op = "ArgMax" if eqn.primitive.name == "argmax" else "ArgMin"
    full, dtype = _out(eqn)
    name = c.node(op, [c.use(x)], axis=int(axis), keepdims=0, select_last_index=0)
    return c.cast(c.rt(name, full, np.int64), dtype)


@_rule("cumsum")
def _cumsum(c, eqn, ins):
    full, dtype = _out(eqn)
    axis = c.const(np.int64(eqn.params["axis"]))
    return c.rt(
        c.node("CumSum", [c.use(ins[0]), axis], reverse=int(bool(eqn.params["reverse"]))), full, dtype
    )


@_rule("top_k")
def _top_k(c, eqn, ins):
    (vshape, vdtype), (ishape, idtype) = _out(eqn, 0), _out(eqn, 1)
    axis = int(eqn.params.get("axis", len(vshape) - 1))
    k = c.i64([int(eqn.params["k"])])
    vals, idx = c.node("TopK", [c.use(ins[0]), k], n_out=2, axis=axis, largest=1, sorted=1)
    return [c.rt(vals, vshape, vdtype), c.cast(c.rt(idx, ishape, np.int64), idtype)]


@_rule("dot_general")
def _dot_general(c, eqn, ins):
    full, dtype = _out(eqn)
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lc, rc, lb, rb = ([int(d) for d in g] for g in (lc, rc, lb, rb))
    lhs, rhs = (c.cast(c.materialize(v), dtype) for v in ins)
    ls, rs = _shape(lhs), _shape(rhs)
    lf = [d for d in range(len(ls)) if d not in lc and d not in lb]
    rf = [d for d in range(len(rs)) if d not in rc and d not in rb]
    batch = [ls[d] for d in lb]
    m, k, n = math.prod(ls[d] for d in lf), math.prod(ls[d] for d in lc), math.prod(rs[d] for d in rf)
    a = c.reshape(c.transpose(lhs, [*lb, *lf, *lc]), [*batch, m, k])
    b = c.reshape(c.transpose(rhs, [*rb, *rc, *rf]), [*batch, k, n])
    y = c.rt(c.node("MatMul", [c.use(a), c.use(b)]), [*batch, m, n], dtype)
    return c.reshape(y, full)


@_rule("conv_general_dilated")
def _conv(c, eqn, ins):
    p = eqn.params
    if any(int(d) != 1 for d in p["lhs_dilation"]):
        raise ExportError("ONNX export: conv_general_dilated with lhs_dilation (a transposed convolution)")
    if int(p["batch_group_count"]) != 1:
        raise ExportError("ONNX export: conv_general_dilated with batch_group_count > 1")
    lhs_spec, rhs_spec, out_spec = p["dimension_numbers"]
    full, dtype = _out(eqn)
    x = c.transpose(c.materialize(c.cast(ins[0], dtype)), lhs_spec)  # -> N, C, spatial...
    w = c.transpose(c.materialize(c.cast(ins[1], dtype)), rhs_spec)  # -> O, I, spatial...
    x, pads = c.crop_negative_pads(x, p["padding"], first_axis=2)
    nchw = [full[d] for d in out_spec]
    name = c.node(
        "Conv",
        [c.use(x), c.use(w)],
        strides=[int(s) for s in p["window_strides"]],
        pads=[lo for lo, _ in pads] + [hi for _, hi in pads],
        dilations=[int(d) for d in p["rhs_dilation"]],
        group=int(p["feature_group_count"]),
        kernel_shape=list(_shape(w)[2:]),
    )
    return c.transpose(c.rt(name, nchw, dtype), np.argsort(out_spec))


def _reduce_window(kind: str):
    def rule(c, eqn, ins):
        p = eqn.params
        full, dtype = _out(eqn)
        if any(int(b) != 1 for b in p["base_dilation"]):
            raise ExportError(f"ONNX export: {eqn.primitive.name} with base_dilation")
        if kind == "sum" and not np.issubdtype(dtype, np.floating):
            raise ExportError(f"ONNX export: {eqn.primitive.name} on {dtype}")
        x = c.materialize(ins[0])
        wd, ws, wdil = (
            list(map(int, p[k])) for k in ("window_dimensions", "window_strides", "window_dilation")
        )
        x, pads = c.crop_negative_pads(x, p["padding"])
        r = len(wd)
        trivial = [d for d in range(r) if wd[d] == 1 and ws[d] == 1 and pads[d] == (0, 0) and wdil[d] == 1]
        sp = [d for d in range(r) if d not in trivial]
        if not sp:
            return x
        xt = c.transpose(x, trivial + sp)
        shp = _shape(xt)
        lead = shp[: len(trivial)]
        # [N, C, spatial...]: the last untouched axis as channels, the others as the batch
        nc = [math.prod(lead[:-1]), lead[-1]] if lead else [1, 1]
        xt = c.reshape(xt, [*nc, *shp[len(trivial) :]])
        attrs = {
            "kernel_shape": [wd[d] for d in sp],
            "strides": [ws[d] for d in sp],
            "pads": [pads[d][0] for d in sp] + [pads[d][1] for d in sp],
            "dilations": [wdil[d] for d in sp],
        }
        src = c.use(xt)
        if kind == "min":
            src = c.node("Neg", [src])
        if kind == "sum":  # a depthwise convolution with a kernel of ones
            ones = c.const(np.ones([nc[1], 1, *attrs["kernel_shape"]], dtype))
            y = c.node("Conv", [src, ones], group=nc[1], **attrs)
        else:
            y = c.node("MaxPool", [src], **attrs)
        if kind == "min":
            y = c.node("Neg", [y])
        out_sp = [full[d] for d in sp]
        y = c.reshape(c.rt(y, [*nc, *out_sp], dtype), [*lead, *out_sp])
        return c.transpose(y, np.argsort(trivial + sp))

    return rule


for _kind in ("max", "min", "sum"):
    _rule(f"reduce_window_{_kind}")(_reduce_window(_kind))


def _fuse_conv_affine(c: _Converter, nodes: list, outputs: Sequence[str]) -> int:
    """Folds per-output-channel constant Add / Sub / Mul / Div that follow a ``Conv`` with constant weights
    (through at most one ``Transpose``: the layout change back from NCHW) into its weights and bias: an
    inference BatchNorm after a convolution becomes the convolution's bias. Only single-consumer chains;
    the values are computed in float64 and rounded once. Returns the number of nodes removed."""
    consumers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    keep_names = set(outputs)
    removed: set[int] = set()
    for conv in nodes:
        if conv.op_type != "Conv" or conv.input[1] not in c.arrays:
            continue
        if len(conv.input) > 2 and conv.input[2] and conv.input[2] not in c.arrays:
            continue
        w = c.arrays[conv.input[1]].astype(np.float64)
        b = c.arrays[conv.input[2]].astype(np.float64) if len(conv.input) > 2 and conv.input[2] else None
        b = np.zeros(w.shape[0]) if b is None else b
        rank, ch = w.ndim, 1
        cur, last = conv.output[0], conv
        folded = []
        while cur not in keep_names and len(consumers.get(cur, [])) == 1:
            n = consumers[cur][0]
            if n.op_type == "Transpose" and last is conv:
                perm = list(next(a.ints for a in n.attribute if a.name == "perm"))
                ch = perm.index(ch)
                cur, last = n.output[0], n
                continue
            if n.op_type not in ("Add", "Sub", "Mul", "Div") or len(n.input) != 2:
                break
            other = n.input[1] if n.input[0] == cur else n.input[0]
            if other not in c.arrays or (n.op_type in ("Sub", "Div") and n.input[0] != cur):
                break
            k = c.arrays[other]
            if k.ndim > rank or not np.issubdtype(k.dtype, np.floating):
                break
            k = k.reshape((1,) * (rank - k.ndim) + k.shape).astype(np.float64)
            if any(d != 1 for i, d in enumerate(k.shape) if i != ch) or k.shape[ch] not in (1, w.shape[0]):
                break
            kv = np.broadcast_to(k.reshape(-1), (w.shape[0],))
            if n.op_type == "Add":
                b = b + kv
            elif n.op_type == "Sub":
                b = b - kv
            elif n.op_type == "Mul":
                w, b = w * kv.reshape((-1,) + (1,) * (rank - 1)), b * kv
            else:
                w, b = w / kv.reshape((-1,) + (1,) * (rank - 1)), b / kv
            folded.append(n)
            cur = n.output[0]
        if not folded:
            continue
        dtype = c.arrays[conv.input[1]].dtype
        conv.input[:] = [conv.input[0], c.const(w.astype(dtype)), c.const(b.astype(dtype))]
        last.output[0] = cur  # the chain's last value is now produced by the Conv (or its Transpose)
        removed.update(id(n) for n in folded)
    nodes[:] = [n for n in nodes if id(n) not in removed]
    return len(removed)


def _dce(nodes, outputs) -> list:
    """The nodes the outputs depend on (jaxprs may hold dead equations)."""
    need, keep = set(outputs), []
    for n in reversed(nodes):
        if any(o in need for o in n.output):
            keep.append(n)
            need.update(i for i in n.input if i)
    return keep[::-1]


def convert(
    fn: Callable,
    args: Sequence[jax.ShapeDtypeStruct],
    in_names: Sequence[str],
    out_names: Sequence[str],
    graph_name: str = "siamrn_jax",
    doc: str = "",
):
    """``fn(*args) -> tuple of arrays`` as an ``onnx.ModelProto`` (opset ``OPSET``) with the given input and
    output names; its closed-over arrays become initializers. Returns (model, stats dict)."""
    onnx = import_onnx()
    h = onnx.helper
    closed = jax.make_jaxpr(fn)(*args)
    c = _Converter()
    ins = [c.rt(n, a.shape, a.dtype) for n, a in zip(in_names, args, strict=True)]
    outs = c.run(closed.jaxpr, closed.consts, ins)
    if len(outs) != len(out_names):
        raise ExportError(f"ONNX export: {len(outs)} outputs, {len(out_names)} names")
    outputs = []
    for name, v, var in zip(out_names, outs, closed.jaxpr.outvars, strict=True):
        c.nodes.append(h.make_node("Identity", [c.use(v)], [name], name=name))
        outputs.append(h.make_tensor_value_info(name, _tensor_type(var.aval.dtype), list(var.aval.shape)))
    nodes = _dce(c.nodes, out_names)
    fused = _fuse_conv_affine(c, nodes, out_names)
    used = {i for n in nodes for i in n.input}
    inits = [t for t in c.inits if t.name in used]
    inputs = [h.make_tensor_value_info(v.name, _tensor_type(v.dtype), list(v.full)) for v in ins]
    graph = h.make_graph(nodes, graph_name, inputs, outputs, initializer=inits, doc_string=doc)
    model = h.make_model(
        graph,
        opset_imports=[h.make_opsetid("", OPSET)],
        producer_name="siamrn-jax",
        producer_version=__version__,
        ir_version=IR_VERSION,
    )
    stats = {
        "primitives": dict(sorted(c.seen.items())),
        "folded_equations": c.folded,
        "fused_into_conv": fused,
        "nodes": len(nodes),
        "initializers": len(inits),
        "initializer_bytes": int(
            sum(
                int(np.prod(t.dims)) * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
                for t in inits
            )
        ),
        "ops": dict(sorted(_count(n.op_type for n in nodes).items())),
    }
    return model, stats


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out
