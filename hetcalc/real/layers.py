"""Real PyTorch layers for every kind hetcalc counts. torch is imported here, not at ``import hetcalc``.

The standard convolution is ``torch.nn.Conv2d``. The others:

- ``HetConv2d(impl="exact")``: HetConv as the paper defines it (shifted arrangement, Eqs. 2–4);
  it runs exactly Eq. 4's multiply-accumulates and stores only the kept taps.
- ``HetConv2d(impl="grouped_sum")``: the common public variant, a grouped K×K conv plus a full
  1×1 conv, summed (``hetcalc.core.cost.hetconv_grouped_sum``, reduction 1/P + 1/K², not Eq. 5).
- ``HetConv2d(impl="fast")``: the paper's shifted HetConv in grouped_sum's layout (one grouped
  K×K conv over the residue classes plus one dense 1×1 matmul, or a second conv on a
  channels-last input, summed in place), at
  grouped_sum's multiply-accumulates (``hetcalc.core.cost.hetconv_grouped_sum``).
- ``DwPwConv2d``: depthwise K×K then pointwise 1×1 (DWC+PWC, Eq. 6).
- ``GwPwConv2d``: groupwise K×K (G groups) then pointwise 1×1 (GWC+PWC, Eq. 10).

Each has ``cost(D_out_h, D_out_w=None)``: the ``hetcalc.core.cost`` formula of what it runs.
"""

from __future__ import annotations

import importlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core import cost as costs
from ..core import kinds
from ..core.errors import InvalidInput, positive_int
from ..core.spec import ConvSpec


def _checked(M, N, K, stride, padding) -> tuple[int, int, int, int, int | str]:
    """(M, N, K, stride, padding) validated; padding None means K // 2; "same" and "valid" pass as nn.Conv2d's."""
    M, N, K = positive_int("in_channels", M), positive_int("out_channels", N), positive_int("kernel_size", K)
    stride = positive_int("stride", stride)
    if isinstance(padding, str) and padding not in ("same", "valid"):
        raise InvalidInput("padding", f"must be a whole number >= 0, 'same' or 'valid', got {padding!r}")
    if not isinstance(padding, str):
        padding = K // 2 if padding is None else positive_int("padding", padding, minimum=0)
    return M, N, K, stride, padding


def _uniform(tensor, fan_in: int):
    """nn.Conv2d's default init, kaiming_uniform(a=√5), i.e. U(±1/√fan_in), for a given fan-in."""
    bound = 1 / math.sqrt(fan_in)
    nn.init.uniform_(tensor, -bound, bound)


class _Costed(nn.Module):
    """Shared: the layer as a ConvSpec at a given output size."""

    def spec(self, D_out_h: int, D_out_w: int | None = None) -> ConvSpec:
        return ConvSpec(
            M=self.in_channels,
            N=self.out_channels,
            K=self.kernel_size,
            H=D_out_h,
            W=D_out_w,
            stride=self.stride,
            bias=self.has_bias,
        )


class HetConv2d(_Costed):
    """HetConv: each of the N filters holds M/P kernels of K×K and M − M/P kernels of 1×1.

    ``impl="exact"`` (the paper): filter n has its K×K kernels on the input channels c with
    (c − n) mod P = 0 and a 1×1 kernel (the centre tap) on every other channel. It runs Eq. 4's
    multiply-accumulates exactly and holds N·(M·K²/P + M − M/P) weights (+N bias).
    Layout, by residue r = n mod P (filters n ≡ r share the channels c ≡ r):
    ``weight`` (N, M/P, K, K) is one grouped K×K conv, group r mapping channels c ≡ r to
    filters n ≡ r (row r·N/P + j is filter j·P + r, column m is channel m·P + r);
    ``weight_1x1`` (P, N/P, (P−1)·M/P) is one batched matmul per image in which the filters
    n ≡ r read the other P − 1 residue groups, r+1, …, r+P−1 (mod P): a sliding window (a view)
    over the residue groups laid out twice, so no residue needs its own copy of the input.

    ``impl="grouped_sum"`` (common public code): a grouped K×K conv (P contiguous groups) plus a
    full 1×1 conv, summed: N·(M·K²/P + M) weights and as many MACs per output position. Same
    function class (a 1×1 weight on a channel that has a K×K kernel folds into its centre tap),
    M/P more 1×1 taps per filter, and contiguous groups rather than the shifted pattern.

    ``impl="fast"``: the shifted pattern of ``exact`` in grouped_sum's layout. ``weight`` is laid
    out as in ``exact``; ``weight_1x1`` (N, M) is a dense 1×1 kernel over every channel (filter n,
    channel c at [n, c]). The forward copies the input once with its channels by residue (so the
    residue classes are contiguous groups), runs one grouped K×K conv and one batched matmul for
    the 1×1 kernels (``bmm``, filters in order), and adds the conv's output into the matmul's in
    place, reading it back to filter order as a strided view. A channels-last input takes a path
    without oneDNN's layout reorders: the residue copy is made channels last, and the 1×1 kernels
    run as a second convolution on the input as it is (the same multiply-accumulates); the output
    is channels last, as ``nn.Conv2d``'s is. Function class: the paper's HetConv
    exactly (a 1×1 weight on a channel that has a K×K kernel folds into its centre tap), support
    the shifted pattern, at grouped_sum's N·(M·K²/P + M) weights and MACs per output position.

    ``dense_weight()`` is the equivalent N×M×K×K kernel of any impl: ``F.conv2d(x,
    layer.dense_weight(), layer.bias, stride, padding)`` equals ``layer(x)``. K must be odd (the
    1×1 kernel is the centre tap); P must divide M and N.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        p: int,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = False,
        impl: str = "exact",
    ):
        super().__init__()
        M, N, K, stride, padding = _checked(in_channels, out_channels, kernel_size, stride, padding)
        if isinstance(padding, str):  # "same" (stride 1, odd K) pads K // 2
            padding = K // 2 if padding == "same" else 0
        if impl not in kinds.IMPLS:
            raise InvalidInput("impl", f"must be one of {', '.join(map(repr, kinds.IMPLS))}, got {impl!r}")
        kinds.check(ConvSpec(M=M, N=N, K=K), kinds.IMPLS[impl], p)
        P = positive_int("P", p)
        self.in_channels, self.out_channels, self.kernel_size, self.P = M, N, K, P
        self.stride, self.padding, self.impl, self.has_bias = stride, padding, impl, bias
        self.weight = nn.Parameter(torch.empty(N, M // P, K, K))
        if impl == "exact":
            self.weight_1x1 = nn.Parameter(torch.empty(P, N // P, (P - 1) * (M // P))) if P > 1 else None
        else:
            self.weight_1x1 = nn.Parameter(
                torch.empty(N, M, 1, 1) if impl == "grouped_sum" else torch.empty(N, M)
            )
        fan_in = self.cost(1).macs // N  # the weights of one filter
        self.bias = nn.Parameter(torch.empty(N)) if bias else None
        for parameter in self.parameters():
            _uniform(parameter, fan_in)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, P={self.P}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.has_bias}, impl={self.impl!r}"
        )

    def _centre(self, x):
        """The input as a 1×1 conv with this stride must see it to read the K×K kernels' centre taps."""
        shift = self.padding - self.kernel_size // 2
        return F.pad(x, (shift,) * 4) if shift else x  # a negative shift crops

    def forward(self, x):
        return {"exact": self._exact, "grouped_sum": self._grouped_sum, "fast": self._fast}[self.impl](x)

    def _fast(self, x):
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            return self._fast_channels_last(x)
        M, N, P, s = self.in_channels, self.out_channels, self.P, self.stride
        by_residue = x.unflatten(1, (M // P, P)).transpose(1, 2).flatten(1, 2)  # one copy, as in _exact
        bias = self._residue_bias()
        y = F.conv2d(by_residue, self.weight, bias, s, self.padding, groups=P)  # filters in residue order
        del by_residue  # freed before the matmul allocates: one activation less at peak
        centre = self._centre(x)[:, :, ::s, ::s].flatten(2)  # (B, M, H'·W'): what the 1×1 taps read
        out = torch.bmm(self.weight_1x1.expand(len(x), N, M), centre)  # (B, N, H'·W'), filter order
        out.unflatten(1, (N // P, P)).add_(y.flatten(2).unflatten(1, (P, N // P)).transpose(1, 2))
        return out.view(len(x), N, *y.shape[2:])

    def _fast_channels_last(self, x):
        """``_fast`` for a channels-last input: two oneDNN convs with no layout reorders, summed in place."""
        M, N, P, s = self.in_channels, self.out_channels, self.P, self.stride
        pixels = x.movedim(1, -1)  # (B, H, W, M), contiguous
        by_residue = torch.empty(*pixels.shape[:3], P, M // P, dtype=x.dtype, device=x.device)
        by_residue.copy_(pixels.unflatten(-1, (M // P, P)).transpose(-1, -2))  # channel m·P + r at r·M/P + m
        by_residue = by_residue.flatten(-2).movedim(-1, 1)  # (B, M, H, W) view, channels last
        bias = self._residue_bias()
        y = F.conv2d(by_residue, self.weight, bias, s, self.padding, groups=P)  # filters in residue order
        del by_residue
        out = F.conv2d(self._centre(x), self.weight_1x1.view(N, M, 1, 1), None, s)  # filters in order
        in_filter_order = (
            y.movedim(1, -1).unflatten(-1, (P, N // P)).transpose(-1, -2)
        )  # (B, H', W', N/P, P) view
        out.movedim(1, -1).unflatten(-1, (N // P, P)).add_(in_filter_order)
        return out

    def _residue_bias(self):
        """The bias with the filters in residue order (filter j·P + r at r·N/P + j), or None."""
        P = self.P
        return None if self.bias is None else self.bias.view(self.out_channels // P, P).t().flatten()

    def _grouped_sum(self, x):
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, groups=self.P)
        return y + F.conv2d(self._centre(x), self.weight_1x1, None, self.stride)

    def _exact(self, x):
        M, N, P, s = self.in_channels, self.out_channels, self.P, self.stride
        by_residue = x.unflatten(1, (M // P, P)).transpose(1, 2).flatten(1, 2)  # channel m·P + r at r·M/P + m
        bias = self._residue_bias()
        y = F.conv2d(by_residue, self.weight, bias, s, self.padding, groups=P)  # filters in residue order
        if P > 1:
            centre = self._centre(x)[:, :, ::s, ::s]  # (B, M, H', W'): what the 1×1 taps read
            groups = centre.unflatten(1, (M // P, P)).transpose(1, 2).flatten(3)  # (B, P, M/P, H'·W')
            twice = torch.cat([groups, groups[:, :-1]], dim=1)  # residues 0, …, P−1, 0, …, P−2
            others = (
                twice[:, 1:].unfold(1, P - 1, 1).permute(0, 1, 4, 2, 3).flatten(2, 3)
            )  # (B, P, (P−1)·M/P, H'·W')
            ones = torch.stack([torch.bmm(self.weight_1x1, image) for image in others])  # (B, P, N/P, H'·W')
            y = y + ones.view_as(y)
        return y.unflatten(1, (P, N // P)).transpose(1, 2).flatten(1, 2)  # back to filter order j·P + r

    def dense_weight(self):
        """The equivalent dense N×M×K×K kernel (zeros where the layer has no tap), differentiable."""
        M, N, K, P, c = self.in_channels, self.out_channels, self.kernel_size, self.P, self.kernel_size // 2
        n = torch.arange(N, device=self.weight.device)
        if self.impl == "fast":
            dense = self._shifted_full()
            dense[:, :, c, c] += self.weight_1x1
            return dense
        if self.impl == "grouped_sum":
            dense = self.weight.new_zeros(N, P, M // P, K, K)  # channel g·M/P + m at [:, g, m]
            dense[n, n // (N // P)] = self.weight  # filter n is in group n // (N/P)
            dense = dense.view(N, M, K, K)
            dense[:, :, c, c] += self.weight_1x1.view(N, M)  # 1×1 kernels are centre taps
            return dense
        dense = self._shifted_full().view(N, M // P, P, K, K)  # channel m·P + q at [:, m, q]
        if P > 1:
            ones = (
                self.weight_1x1.unflatten(2, (P - 1, M // P)).transpose(0, 1).flatten(0, 1)
            )  # (N, P−1, M/P)
            residues = (n[:, None] % P + 1 + torch.arange(P - 1, device=n.device)) % P  # (N, P−1)
            dense[n[:, None], :, residues, c, c] = ones
        return dense.view(N, M, K, K)

    def _shifted_full(self):
        """The dense N×M×K×K kernel of ``weight`` alone: filter n's K×K kernels on the channels c ≡ n (mod P)."""
        M, N, K, P = self.in_channels, self.out_channels, self.kernel_size, self.P
        n = torch.arange(N, device=self.weight.device)
        dense = self.weight.new_zeros(N, M // P, P, K, K)  # channel m·P + q at [:, m, q]
        dense[n, :, n % P] = self.weight.unflatten(0, (P, N // P)).transpose(0, 1).flatten(0, 1)
        return dense.view(N, M, K, K)

    def cost(self, D_out_h: int, D_out_w: int | None = None) -> costs.Cost:
        """What it runs at D_out_h × D_out_w: Eq. 4 (impl="exact") or grouped_sum's formula (grouped_sum, fast)."""
        return kinds.layer_cost(self.spec(D_out_h, D_out_w), kinds.IMPLS[self.impl], self.P)


class DwPwConv2d(_Costed):
    """DWC+PWC (MobileNet): depthwise K×K conv M → M, then pointwise 1×1 conv M → N (Eq. 6).

    No normalisation or activation in between: the two convolutions the cost model counts.
    ``bias=True`` gives both convolutions a bias, as ``hetcalc.core.cost.dwc_pwc`` counts.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = False,
    ):
        super().__init__()
        M, N, K, stride, padding = _checked(in_channels, out_channels, kernel_size, stride, padding)
        self.in_channels, self.out_channels, self.kernel_size = M, N, K
        self.stride, self.padding, self.has_bias = stride, padding, bias
        self.depthwise = nn.Conv2d(M, M, K, stride, padding, groups=M, bias=bias)
        self.pointwise = nn.Conv2d(M, N, 1, bias=bias)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))

    def cost(self, D_out_h: int, D_out_w: int | None = None) -> costs.Cost:
        """Eq. 6 (hetcalc.core.cost.dwc_pwc) at a D_out_h × D_out_w output."""
        return kinds.layer_cost(self.spec(D_out_h, D_out_w), "dwc_pwc")


class GwPwConv2d(_Costed):
    """GWC+PWC: groupwise K×K conv M → mid with G groups, then pointwise 1×1 conv mid → N (Eq. 10).

    ``mid`` defaults to M (the paper's experiments). ``bias=True`` gives both convolutions a
    bias, as ``hetcalc.core.cost.gwc_pwc`` counts. G must divide M and mid.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        groups: int,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = False,
        mid_channels: int | None = None,
    ):
        super().__init__()
        M, N, K, stride, padding = _checked(in_channels, out_channels, kernel_size, stride, padding)
        mid = M if mid_channels is None else positive_int("mid_channels", mid_channels)
        kinds.check(ConvSpec(M=M, N=N, K=K), "gwc_pwc", groups, mid)
        G = groups
        self.in_channels, self.out_channels, self.kernel_size, self.groups, self.mid_channels = (
            M,
            N,
            K,
            G,
            mid,
        )
        self.stride, self.padding, self.has_bias = stride, padding, bias
        self.groupwise = nn.Conv2d(M, mid, K, stride, padding, groups=G, bias=bias)
        self.pointwise = nn.Conv2d(mid, N, 1, bias=bias)

    def forward(self, x):
        return self.pointwise(self.groupwise(x))

    def cost(self, D_out_h: int, D_out_w: int | None = None) -> costs.Cost:
        """Eq. 10 (hetcalc.core.cost.gwc_pwc) at a D_out_h × D_out_w output."""
        return kinds.layer_cost(self.spec(D_out_h, D_out_w), "gwc_pwc", self.groups, self.mid_channels)


def build_layer(
    kind: str,
    M: int,
    N: int,
    K: int,
    value=None,
    *,
    stride: int = 1,
    padding: int | str | None = None,
    bias: bool = False,
    impl: str = "exact",
    mid: int | None = None,
) -> nn.Module:
    """The real layer of ``kind`` (its class named in ``hetcalc.core.kinds``) for a convolution M → N, K×K.

    Checked for eligibility first (``kinds.check``); ``value`` is its P or G; ``padding`` None is K // 2.
    """
    kinds.check(ConvSpec(M=M, N=N, K=K, stride=stride, bias=bias), kind, value, mid)
    padding = K // 2 if padding is None else padding
    module, name = kinds.get(kind).layer.split(":")
    cls = getattr(importlib.import_module(module), name)
    return kinds.get(kind).make(cls, M, N, K, value, stride, padding, bias, impl, mid)
