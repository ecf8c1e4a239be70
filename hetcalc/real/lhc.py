"""A real LHC-style masked convolution (torch): a Conv2d whose taps are gated by a binary mask.

A dense runtime executes the full K×K filter bank and multiplies the pruned taps by zero:
it pays ``cost.standard`` (what fvcore traces). A heterogeneous/sparse runtime pays only the
kept taps, ``cost.masked``. :meth:`MaskedConv2d.costs` reports both, named.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core import cost
from ..core.errors import InvalidInput
from ..core.spec import ConvSpec


class _BinaryGate(torch.autograd.Function):
    """scores > 0 forward; straight-through gradient backward (LHC learns topology this way)."""

    @staticmethod
    def forward(ctx, scores):
        return (scores > 0).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad


class MaskedConv2d(nn.Conv2d):
    """nn.Conv2d with a binary N×M×K×K tap mask, fixed (a ``mask`` buffer) or learnable.

    ``learnable=True`` keeps real-valued ``mask_scores`` (initialised from ``mask``: +1 kept,
    −1 pruned) and gates with ``scores > 0`` and a straight-through gradient.
    """

    def __init__(self, in_channels, out_channels, kernel_size, mask=None, learnable=False, **conv_kwargs):
        conv_kwargs.setdefault("padding", tuple(k // 2 for k in nn.modules.utils._pair(kernel_size)))
        super().__init__(in_channels, out_channels, kernel_size, **conv_kwargs)
        if mask is None:
            mask = torch.ones_like(self.weight, dtype=torch.bool)
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.shape != self.weight.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(self.weight.shape)}")
        self.learnable = learnable
        if learnable:
            self.mask_scores = nn.Parameter(mask.float() * 2 - 1)
        else:
            self.register_buffer("mask", mask)

    def binary_mask(self) -> torch.Tensor:
        """The current topology as a bool tensor."""
        return self.mask_scores.detach() > 0 if self.learnable else self.mask

    def forward(self, x):
        gate = _BinaryGate.apply(self.mask_scores) if self.learnable else self.mask.to(self.weight.dtype)
        return F.conv2d(
            x, self.weight * gate, self.bias, self.stride, self.padding, self.dilation, self.groups
        )

    def costs(self, out_h: int, out_w: int | None = None) -> dict[str, cost.Cost]:
        """``effective``: kept taps only (a heterogeneous runtime); ``dense``: the full bank (a dense runtime, fvcore)."""
        N, M, K, _ = self.weight.shape
        spec = ConvSpec(M=M * self.groups, N=N, K=K, H=out_h, W=out_w, bias=self.bias is not None)
        kept = int(self.binary_mask().sum())
        return {
            "effective": cost.masked(kept, spec.positions, N, spec.bias),
            "dense": cost.masked(self.weight.numel(), spec.positions, N, spec.bias),
        }


def export_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """{layer name: bool mask} of every MaskedConv2d, ready for ``torch.save`` and ``hetcalc mask``."""
    return {name: m.binary_mask().clone() for name, m in model.named_modules() if isinstance(m, MaskedConv2d)}


def read_masks(path: Path) -> tuple[dict, dict]:
    """The masks of a ``.pt`` file (a tensor, or a dict of them) as arrays by layer name, and its output sizes.

    A dict maps layer names to masks; a state dict's keys ending in ``mask`` are taken when it also
    holds other tensors; an ``output_sizes`` entry maps names to D_o. For ``hetcalc.core.masks.load``.
    """
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a bad file
        raise InvalidInput("FILE", f"{path} is not a readable .pt file ({type(error).__name__})") from None
    if isinstance(data, torch.Tensor):
        return {path.stem: data.numpy()}, {}
    if not isinstance(data, dict):
        raise InvalidInput(
            "FILE", f"{path} holds a {type(data).__name__}; expected a tensor or a dict of masks"
        )
    sizes = data.get("output_sizes", {})
    if not isinstance(sizes, dict):
        raise InvalidInput("FILE", f"{path}: output_sizes must map layer names to D_o")
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    masks = {k: v for k, v in tensors.items() if k.endswith("mask")}
    if not masks and tensors and all(v.dtype == torch.bool for v in tensors.values()):
        masks = tensors
    if not masks:
        raise InvalidInput("FILE", f"{path} holds no masks (no boolean tensors, no keys ending in 'mask')")
    strip = lambda key: key.removesuffix(".mask")  # noqa: E731 - "layer1.mask" names layer "layer1"
    return {strip(k): v.detach().numpy() for k, v in masks.items()}, {strip(k): v for k, v in sizes.items()}
