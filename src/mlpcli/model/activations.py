"""What each activation is, beyond the torch op that computes it (engine/network): the range of
its values, whether it needs a whole row, and the names other formats give it. One entry each;
the statistics, the plan of a parallel run, the shapes' arithmetic and the ONNX and Keras
readers all read them here."""

from __future__ import annotations

from dataclasses import dataclass

from mlpcli.model.config import Activation


@dataclass(frozen=True)
class Facts:
    """One activation's facts."""

    bounds: tuple[float, float] | None = None  # its values lie within: saturation, histograms
    whole_row: bool = False  # each value needs the row's every value (all-gathered over ranks)
    computes: bool = True  # False: the layer's product is its value, no work after it
    keras: tuple[str | None, ...] = ()  # Keras' names where Keras computes the same
    onnx: str | None = None  # the ONNX op that is it alone, with no attribute to check


FACTS: dict[Activation, Facts] = {
    Activation.SIGMOID: Facts(bounds=(0.0, 1.0), keras=("sigmoid",), onnx="Sigmoid"),
    Activation.RELU: Facts(keras=("relu",), onnx="Relu"),
    Activation.TANH: Facts(bounds=(-1.0, 1.0), keras=("tanh",), onnx="Tanh"),
    Activation.GELU: Facts(keras=("gelu",)),  # ONNX Gelu: its `approximate` is checked
    Activation.SILU: Facts(keras=("silu", "swish")),  # ONNX: x * Sigmoid(x)
    Activation.LEAKY_RELU: Facts(),  # Keras' slope is 0.2, torch's 0.01; ONNX: its alpha
    Activation.ELU: Facts(keras=("elu",)),  # ONNX Elu: its alpha is checked
    Activation.SOFTPLUS: Facts(keras=("softplus",), onnx="Softplus"),
    Activation.SOFTMAX: Facts(bounds=(0.0, 1.0), whole_row=True, keras=("softmax",)),
    Activation.IDENTITY: Facts(computes=False, keras=("linear", None)),
}

BOUNDED = {activation: facts.bounds for activation, facts in FACTS.items() if facts.bounds}
WHOLE_ROW = frozenset(activation for activation, facts in FACTS.items() if facts.whole_row)
KERAS = {name: activation.value for activation, facts in FACTS.items() for name in facts.keras}
ONNX = {facts.onnx: activation.value for activation, facts in FACTS.items() if facts.onnx}
