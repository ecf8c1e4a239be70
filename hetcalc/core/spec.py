"""What a convolution layer is, in the paper's notation (M in, N out, K×K, output D_o×D_o)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import InvalidInput, positive_int


def output_size(d_in: int, k: int, stride: int = 1, padding: int | None = None) -> int:
    """D_o = floor((D_i + 2p − K) / s) + 1, with p = K // 2 when ``padding`` is None."""
    d_in = positive_int("D_in", d_in)
    k = positive_int("K", k)
    stride = positive_int("stride", stride)
    padding = k // 2 if padding is None else positive_int("padding", padding, minimum=0)
    span = d_in + 2 * padding - k
    if span < 0:
        raise InvalidInput("D_in", f"input {d_in} with padding {padding} is smaller than the kernel ({k})")
    return span // stride + 1


@dataclass(frozen=True)
class ConvSpec:
    """A convolution layer M → N with K×K kernels producing an H×W output map.

    ``H = W = D_o`` in the paper; ``H = W = 1`` is the cost per output position.
    ``bias`` adds N parameters and one addition per output element.
    """

    M: int
    N: int
    K: int
    H: int = 1
    W: int | None = None
    stride: int = 1
    bias: bool = False
    name: str = ""

    def __post_init__(self):
        for parameter in ("M", "N", "K", "H", "stride"):
            object.__setattr__(self, parameter, positive_int(parameter, getattr(self, parameter)))
        width = self.H if self.W is None else positive_int("W", self.W)
        object.__setattr__(self, "W", width)

    @property
    def positions(self) -> int:
        """Output positions per channel, D_o · D_o."""
        return self.H * self.W

    def with_(self, **changes) -> ConvSpec:
        return replace(self, **changes)
