"""An independent reference for docs/contract.md section 2, written the notebook's way.

It uses torch's global generator (`torch.manual_seed`), `torch.mm`, `+` and the out-of-place
functions of `torch.nn.functional`, where mlpcli uses its own generator, `addmm` and in-place
activations: agreement means both read the contract the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "relu": F.relu,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "silu": F.silu,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "softplus": F.softplus,
    "softmax": lambda x: F.softmax(x, dim=-1),
    "identity": lambda x: x,
}


def draw(
    seed: int, layers: list[int], batch: int, *, bias: bool = True, init: str = "normal"
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """features, [W1..WL], [B1..BL] in float32, drawn in the contract's order."""
    torch.manual_seed(seed)
    first_row = torch.randn((1, layers[0]))
    weights = [torch.randn(layers[i], layers[i + 1]) for i in range(len(layers) - 1)]
    biases = [torch.randn((1, n)) for n in layers[1:]] if bias else []
    other_rows = torch.randn((batch - 1, layers[0]))
    if init == "xavier":
        weights = [W * math.sqrt(2 / (W.shape[0] + W.shape[1])) for W in weights]
    elif init == "kaiming":
        weights = [W * math.sqrt(2 / W.shape[0]) for W in weights]
    return torch.cat([first_row, other_rows]), weights, biases


def forward(
    features: torch.Tensor,
    weights: list[torch.Tensor],
    biases: list[torch.Tensor],
    activations: list[str],
) -> torch.Tensor:
    h = features
    for i, W in enumerate(weights):
        z = torch.mm(h, W)
        if biases:
            z = z + biases[i]
        h = FUNCTIONS[activations[i]](z)
    return h
