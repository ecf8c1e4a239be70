"""Whole-model inference conversion: BatchNorm folded, HetConv fused and kept in residue order (torch).

>>> model = inference(convert(vgg, 4, impl="fast"))     # eval mode, no autograd, same function

``inference(model)`` returns a frozen copy that computes what ``model`` computes in eval mode,
with the same multiply-accumulates (fvcore's count equals the cost model's), arranged to run
faster on the CPU:

- **BatchNorm folding** (``fold_batchnorm``): a BatchNorm2d whose only input is a convolution
  (nn.Conv2d, HetConv2d, GWC+PWC or DWC+PWC, called once) is folded into that convolution's
  weights and bias and replaced by nn.Identity. It applies to every variant alike, the standard
  network too, so no variant is favoured.
- **Fused HetConv**: HetConv2d ``fast`` and ``grouped_sum`` become :class:`FusedHetConv`: one
  grouped K×K conv, then the dense 1×1 kernel as one GEMM accumulated in place into its output
  (``addmm`` with ``out=``): no separate sum pass. ``exact`` keeps its own layer (BN folded).
- **Residue order** (``residue_order``): a ``fast`` HetConv's grouped conv wants its input
  channels by residue (channel m·P + r at r·M/P + m) and produces its filters by residue. Where
  the activation between two layers passes only through per-channel modules (BatchNorm, ReLU,
  max-pooling, identity) and each side is either a ``fast`` HetConv with the same P or a dense
  nn.Conv2d (which absorbs the permutation into its weight rows or columns, and the BatchNorm
  in between into its parameters), the activation stays in residue order: no per-layer gather.

Channels-last memory is the caller's choice (``channels_last=True`` converts the weights; give
the input in channels_last too); the fused layer accumulates in place in either layout.
The graph is read with torch.fx (hetcalc's layers as leaves); a model fx cannot trace is left
unfused, with the reason in the report.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from .layers import DwPwConv2d, GwPwConv2d, HetConv2d
from .trace import HETCALC_LAYERS

CHANNELWISE = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Identity, nn.MaxPool2d, nn.Dropout)
"""Modules that act on each channel alone: a channel permutation passes through them."""
_CHANNELWISE_CALLS = {F.relu, torch.relu, F.max_pool2d}
_CHANNELWISE_METHODS = {"relu", "relu_"}


def residue_permutation(C: int, P: int) -> torch.Tensor:
    """Residue order of C channels for part P: position r·C/P + m holds channel m·P + r."""
    return torch.arange(C).view(C // P, P).t().flatten()


class FusedHetConv(nn.Module):
    """Inference-only HetConv: grouped K×K conv (P groups), then a dense 1×1 GEMM summed into it in place.

    ``weight`` (N, M/P, K, K) and ``bias`` (N) are in the output order ``out_perm`` (position i
    is filter ``out_perm[i]``; None: filter order); ``weight_1x1`` (M, N) maps the input as it
    arrives (position c) to that output order. ``gather``: the grouped conv needs the input's
    channels by residue and the input comes in filter order (one copy); ``scatter``: the output
    must leave in filter order (one copy). Same multiply-accumulates as HetConv2d fast and
    grouped_sum: N·(M·K²/P + M) per output position.
    """

    def __init__(self, layer: HetConv2d):
        super().__init__()
        if layer.impl not in ("fast", "grouped_sum"):
            raise ValueError(f"FusedHetConv takes impl fast or grouped_sum, not {layer.impl!r}")
        M, N, P = layer.in_channels, layer.out_channels, layer.P
        self.in_channels, self.out_channels, self.kernel_size, self.P = M, N, layer.kernel_size, P
        self.stride, self.padding, self.shift = (
            layer.stride,
            layer.padding,
            layer.padding - layer.kernel_size // 2,
        )
        self.impl, self.gather, self.scatter = layer.impl, layer.impl == "fast", layer.impl == "fast"
        dense = layer.weight_1x1.detach().reshape(N, M)
        self.out_perm = residue_permutation(N, P) if layer.impl == "fast" else None
        if self.out_perm is not None:
            dense = dense[self.out_perm]
        self.weight = nn.Parameter(layer.weight.detach().clone(), requires_grad=False)
        self.weight_1x1 = nn.Parameter(dense.t().contiguous(), requires_grad=False)
        bias = layer.bias.detach() if layer.bias is not None else torch.zeros(N, dtype=dense.dtype)
        self.bias = nn.Parameter(bias[self.out_perm] if self.out_perm is not None else bias.clone(), False)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, P={self.P}, "
            f"stride={self.stride}, impl={self.impl!r}, gather={self.gather}, scatter={self.scatter}"
        )

    def take_residue_input(self) -> None:
        """The input now arrives in residue order: no gather; the 1×1 kernel reads it as it is."""
        self.gather = False
        self.weight_1x1.data = self.weight_1x1.data[residue_permutation(self.in_channels, self.P)]

    def forward(self, x):
        M, N, P, s = self.in_channels, self.out_channels, self.P, self.stride
        grouped_input = x
        if self.gather:
            pixels = x.movedim(1, -1)  # (B, H, W, M)
            grouped_input = pixels.unflatten(-1, (M // P, P)).transpose(-1, -2).reshape(pixels.shape)
            grouped_input = grouped_input.movedim(-1, 1)  # channels by residue, channels last
        y = F.conv2d(grouped_input, self.weight, self.bias, s, self.padding, groups=P)
        del grouped_input
        y = y.contiguous(memory_format=torch.channels_last)  # no-op for a channels-last input
        centre = F.pad(x, (self.shift,) * 4) if self.shift else x
        pixels = centre[:, :, ::s, ::s].movedim(1, -1).reshape(-1, M)  # a view for channels last, stride 1
        rows = y.movedim(1, -1).view(-1, N)
        torch.addmm(rows, pixels, self.weight_1x1, out=rows)  # the 1×1 kernels, summed in place
        if self.scatter:  # residue order → filter order
            out = y.movedim(1, -1).unflatten(-1, (P, N // P)).transpose(-1, -2).reshape(rows.shape[0], N)
            y = out.view(y.shape[0], *y.shape[2:], N).movedim(-1, 1)
        return y


@dataclass
class Folding:
    """What ``inference`` did, by module name."""

    folded: list[str] = field(default_factory=list)  # "conv ← batchnorm"
    fused: list[str] = field(default_factory=list)
    residue_edges: list[str] = field(default_factory=list)  # "producer → consumer"
    notes: list[str] = field(default_factory=list)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, module, name):
        return isinstance(module, (*HETCALC_LAYERS, FusedHetConv)) or super().is_leaf_module(module, name)


def _graph(model: nn.Module, report: Folding):
    try:
        return _Tracer().trace(model)
    except Exception as error:  # dynamic control flow, data-dependent shapes, …
        report.notes.append(f"torch.fx cannot trace the model ({type(error).__name__}): left unfused")
        return None


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attribute, module)


def _fold_into(layer: nn.Module, scale: torch.Tensor, shift: torch.Tensor) -> bool:
    """y ↦ y·scale + shift (per filter, filter order) folded into ``layer``'s weights and bias."""
    if isinstance(layer, (GwPwConv2d, DwPwConv2d)):
        layer.has_bias = True
        return _fold_into(layer.pointwise, scale, shift)
    if isinstance(layer, nn.Conv2d):
        bias = layer.bias if layer.bias is not None else torch.zeros_like(scale)
        layer.weight.data = layer.weight.data * scale.view(-1, 1, 1, 1)
        layer.bias = nn.Parameter(bias.detach() * scale + shift, requires_grad=False)
        return True
    if isinstance(layer, FusedHetConv):
        perm = layer.out_perm if layer.out_perm is not None else slice(None)
        layer.weight.data = layer.weight.data * scale[perm].view(-1, 1, 1, 1)
        layer.weight_1x1.data = layer.weight_1x1.data * scale[perm]
        layer.bias.data = layer.bias.data * scale[perm] + shift[perm]
        return True
    if isinstance(layer, HetConv2d) and layer.impl == "exact":
        N, P = layer.out_channels, layer.P
        by_residue = scale.view(N // P, P).t()  # [r, j]: filter j·P + r
        layer.weight.data = layer.weight.data * by_residue.flatten().view(-1, 1, 1, 1)
        if layer.weight_1x1 is not None:
            layer.weight_1x1.data = layer.weight_1x1.data * by_residue[:, :, None]
        bias = layer.bias if layer.bias is not None else torch.zeros_like(scale)
        layer.bias, layer.has_bias = nn.Parameter(bias.detach() * scale + shift, requires_grad=False), True
        return True
    return False


def _single_call(graph, node) -> bool:
    return sum(n.op == "call_module" and n.target == node.target for n in graph.nodes) == 1


def _fold_batchnorms(model, graph, report: Folding) -> None:
    for node in graph.nodes:
        module = model.get_submodule(node.target) if node.op == "call_module" else None
        if not isinstance(module, nn.BatchNorm2d) or module.running_var is None:
            continue
        source = node.args[0] if node.args else None
        if not isinstance(source, fx.Node) or source.op != "call_module" or len(source.users) != 1:
            continue
        if not (_single_call(graph, source) and _single_call(graph, node)):
            continue
        scale = module.weight.detach() if module.affine else torch.ones_like(module.running_var)
        scale = scale / torch.sqrt(module.running_var + module.eps)
        shift = (module.bias.detach() if module.affine else 0) - module.running_mean * scale
        if _fold_into(model.get_submodule(source.target), scale, shift):
            _set(model, node.target, nn.Identity())
            report.folded.append(f"{source.target} ← {node.target}")


def _channelwise(model, node) -> bool:
    if node.op == "call_module":
        return isinstance(model.get_submodule(node.target), CHANNELWISE)
    if node.op == "call_function":
        return node.target in _CHANNELWISE_CALLS
    return node.op == "call_method" and node.target in _CHANNELWISE_METHODS


def _endpoint(model, node):
    """(P of a fast FusedHetConv, or 0 for a dense nn.Conv2d, or None: cannot take a permutation)."""
    if node.op != "call_module":
        return None
    module = model.get_submodule(node.target)
    if isinstance(module, FusedHetConv) and module.impl == "fast":
        return module.P
    if isinstance(module, nn.Conv2d) and module.groups == 1:
        return 0
    return None


def _keep_residue_order(model, graph, report: Folding) -> None:
    """Every producer → (per-channel modules) → consumer edge that can carry residue order, carries it."""
    for consumer in graph.nodes:
        if _endpoint(model, consumer) is None or not _single_call(graph, consumer) or not consumer.args:
            continue
        chain, source = [], consumer.args[0]
        while isinstance(source, fx.Node) and len(source.users) == 1 and _channelwise(model, source):
            chain.append(source)
            source = source.args[0] if source.args else None
        if not isinstance(source, fx.Node) or len(source.users) != 1 or not _single_call(graph, source):
            continue
        if any(n.op == "call_module" and not _single_call(graph, n) for n in chain):
            continue
        ends = (_endpoint(model, source), _endpoint(model, consumer))
        if None in ends or ends == (0, 0) or (ends[0] and ends[1] and ends[0] != ends[1]):
            continue
        producer, taker = model.get_submodule(source.target), model.get_submodule(consumer.target)
        perm = residue_permutation(taker.in_channels, max(ends))
        if isinstance(producer, FusedHetConv):
            producer.scatter = False
        else:
            producer.weight.data = producer.weight.data[perm]
            if producer.bias is not None:
                producer.bias.data = producer.bias.data[perm]
        for n in chain:
            module = model.get_submodule(n.target) if n.op == "call_module" else None
            if isinstance(module, nn.BatchNorm2d):
                for tensor in (module.weight, module.bias, module.running_mean, module.running_var):
                    if tensor is not None:
                        tensor.data = tensor.data[perm]
        if isinstance(taker, FusedHetConv):
            taker.take_residue_input()
        else:
            taker.weight.data = taker.weight.data[:, perm]
        report.residue_edges.append(f"{source.target} → {consumer.target}")


def inference(
    model: nn.Module,
    *,
    fold_batchnorm: bool = True,
    fuse: bool = True,
    residue_order: bool = True,
    channels_last: bool = True,
    return_report: bool = False,
):
    """A frozen eval-mode copy of ``model``, same function and MACs, arranged for CPU inference.

    ``fuse``: HetConv2d fast and grouped_sum → FusedHetConv; ``residue_order`` (needs ``fuse``):
    residue order kept between layers where it can be; ``channels_last``: 4-D weights in
    channels_last memory. ``return_report=True`` returns ``(model, Folding)``.
    """
    model = copy.deepcopy(model).eval().requires_grad_(False)
    report = Folding()
    if fuse:
        for name, module in list(model.named_modules()):
            if isinstance(module, HetConv2d) and module.impl in ("fast", "grouped_sum"):
                _set(model, name, FusedHetConv(module))
                report.fused.append(name)
    graph = _graph(model, report) if (fold_batchnorm or (fuse and residue_order)) else None
    if graph is not None and fold_batchnorm:
        _fold_batchnorms(model, graph, report)
    if graph is not None and fuse and residue_order:
        _keep_residue_order(model, graph, report)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return (model, report) if return_report else model
