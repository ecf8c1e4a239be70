"""LHC topology masks: a binary mask over the N×M×K×K taps of a filter bank, counted exactly.

Standard, HetConv (shifted), groupwise and depthwise convolutions are special masks
(:func:`kind_mask`); any other mask is a learned heterogeneous topology (LHC). For every
mask, FLOPs = D_o² · kept taps and params = kept taps (``hetcalc.core.cost.masked``).
numpy is imported here; torch only to read ``.pt`` files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import cost
from .errors import InvalidInput, dividing, positive_int


def kind_mask(kind: str, M: int, N: int, K: int, P: int = 1) -> np.ndarray:
    """The boolean N×M×K×K mask of a kind: ``standard``, ``hetconv`` (part P), ``gwc`` (P groups), ``dwc``.

    HetConv: filter n keeps the full K×K kernel on input channels c with (c − n) mod P = 0
    and the centre tap on all others. GWC: filter n sees only the channels of its group.
    DWC: filter n sees channel n only (N = M).
    """
    n = np.arange(N)[:, None]
    c = np.arange(M)[None, :]
    full = np.ones((K, K), dtype=bool)
    centre = np.zeros((K, K), dtype=bool)
    centre[K // 2, K // 2] = True
    if kind == "standard":
        kernels_full = np.ones((N, M), dtype=bool)
        kernels_centre = kernels_full
    elif kind == "hetconv":
        P = dividing("P", P, M, "the input channels M")
        kernels_full = (c - n) % P == 0
        kernels_centre = np.ones((N, M), dtype=bool)
    elif kind in ("gwc", "dwc"):
        G = M if kind == "dwc" else P
        if kind == "dwc" and N != M:
            raise InvalidInput("N", f"a depthwise mask needs N = M, got N={N}, M={M}")
        G = dividing("P", G, M, "the input channels M")
        G = dividing("P", G, N, "the output channels N")
        kernels_full = (n // (N // G)) == (c // (M // G))
        kernels_centre = kernels_full
    else:
        raise InvalidInput("kind", f"unknown mask kind {kind!r}; known: standard, hetconv, gwc, dwc")
    return (kernels_full[:, :, None, None] & full) | (kernels_centre[:, :, None, None] & centre)


def topology(mask: np.ndarray) -> dict[str, int]:
    """Kernels (one per filter and input channel) by effective shape: full K×K, centre-only 1×1, empty, other."""
    K = mask.shape[-1]
    taps = mask.reshape(mask.shape[0], mask.shape[1], -1)
    kept = taps.sum(axis=-1)
    centre_only = (kept == 1) & taps[:, :, (K // 2) * K + K // 2]
    full = kept == K * K
    empty = kept == 0
    if K == 1:  # a 1×1 kernel is both full and centre-only: call it full
        centre_only = np.zeros_like(full)
    return {
        "full": int(full.sum()),
        "centre_only": int(centre_only.sum()),
        "empty": int(empty.sum()),
        "other": int(kept.size - full.sum() - centre_only.sum() - empty.sum()),
    }


@dataclass(frozen=True)
class MaskLayer:
    name: str
    mask: np.ndarray  # bool, N×M×K×K
    D_out: int

    def report(self, bias: bool = False) -> dict:
        """Effective cost (only kept taps) beside what a dense execution of the same layer costs."""
        N, M, K, _ = self.mask.shape
        positions = self.D_out * self.D_out
        effective = cost.masked(int(self.mask.sum()), positions, N, bias)
        dense = cost.masked(self.mask.size, positions, N, bias)
        return {
            "name": self.name,
            "N": N,
            "M": M,
            "K": K,
            "D_out": self.D_out,
            "kept_taps": int(self.mask.sum()),
            "density": float(self.mask.mean()),
            "flops": effective.flops,
            "params": effective.params,
            "dense_flops": dense.flops,
            "dense_params": dense.params,
            **{f"kernels_{shape}": count for shape, count in topology(self.mask).items()},
        }


def as_mask(name: str, array) -> np.ndarray:
    """A 4-D boolean N×M×K×K array (0/1 numbers are accepted), or InvalidInput."""
    array = np.asarray(array)
    if array.ndim != 4:
        raise InvalidInput(
            "FILE", f"mask {name!r} has rank {array.ndim}, shape {array.shape}; expected N×M×K×K"
        )
    if array.shape[2] != array.shape[3]:
        raise InvalidInput("FILE", f"mask {name!r} has non-square kernels {array.shape[2]}×{array.shape[3]}")
    if array.dtype != bool:
        if not np.isin(array, (0, 1)).all():
            raise InvalidInput(
                "FILE",
                f"mask {name!r} holds values other than 0/1 (dtype {array.dtype}); expected a boolean mask",
            )
        array = array.astype(bool)
    return array


def load(path: str | Path, D_out: int | None = None, read_pt=None) -> list[MaskLayer]:
    """Masks from a ``.npy`` file (one N×M×K×K array) or a ``.pt`` file read by ``read_pt``.

    ``read_pt(path)`` → (name → array, name → D_o): ``hetcalc.real.lhc.read_masks`` (torch reads
    .pt files; this module imports none). Output sizes: the file's, else ``D_out`` for every layer.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInput("FILE", f"no such file: {path}")
    if path.suffix == ".npy":
        try:
            raw = {path.stem: np.load(path, allow_pickle=False)}
        except (ValueError, OSError) as error:
            raise InvalidInput("FILE", f"{path} is not a readable .npy array ({error})") from None
        sizes = {}
    elif path.suffix == ".pt" and read_pt is not None:
        raw, sizes = read_pt(path)
    else:
        raise InvalidInput("FILE", f"{path.name}: expected a .npy or .pt file")
    if D_out is not None:
        D_out = positive_int("D", D_out)
    layers = []
    for name, array in raw.items():
        size = sizes.get(name, D_out)
        if size is None:
            raise InvalidInput(
                "D", f"no output size for mask {name!r}: pass --D or store output_sizes in the file"
            )
        layers.append(MaskLayer(name, as_mask(name, array), positive_int("D", int(size))))
    return layers
