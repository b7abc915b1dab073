"""int8 weight-only linears on the CPU through torch's int8 GEMM, not torchao's dequantize-per-call.

torchao's `Int8Tensor` (what `--quantize int8` and `olmo quantize --method int8` give) computes a
CPU linear by dequantizing the whole weight on every call, so each decoded token pays for a
bf16 copy of every matrix. torch's `_weight_int8pack_mm` multiplies by the int8 weight directly
and applies the per-row scale to the result: the same weights and scales, one read of the int8
bytes per token. The numbers differ from torchao's by rounding only (the scale is applied after
the sum instead of to each weight), which tests bound.
"""

from __future__ import annotations

import torch  # imported only when a model is loaded


def pack_int8_linears(model) -> int:
    """Swap every linear whose weight is a weight-only torchao Int8Tensor for `Int8PackedLinear`;
    returns how many were swapped (0 for any other model)."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            packed = Int8PackedLinear.from_linear(child) if isinstance(child, torch.nn.Linear) else None
            if packed is not None:
                setattr(parent, name, packed)
                swapped += 1
    return swapped


def _weight_only_int8(weight) -> bool:
    try:
        from torchao.quantization import Int8Tensor
    except ImportError:  # no torchao: nothing can be an Int8Tensor
        return False
    if not isinstance(weight, Int8Tensor) or getattr(weight, "act_quant_kwargs", None) is not None:
        return False
    rows, columns = weight.qdata.shape
    per_row = list(weight.block_size) == [1, columns] and tuple(weight.scale.shape) in ((rows, 1), (rows,))
    zero = getattr(weight, "zero_point", None)
    return per_row and (zero is None or not bool(zero.any()))


class Int8PackedLinear(torch.nn.Module):
    """y = (x @ qdata.T) * scale, by `torch._weight_int8pack_mm`; bias added after."""

    def __init__(self, qdata, scale, bias, dtype):
        super().__init__()
        self.in_features, self.out_features = qdata.shape[1], qdata.shape[0]
        self.register_buffer("qdata", qdata.contiguous())
        self.register_buffer("scale", scale.reshape(-1).to(dtype).contiguous())
        self.bias = bias

    @property
    def weight(self) -> torch.Tensor:
        """The int8 values (code that inspects `.weight` of a linear finds it quantized)."""
        return self.qdata  # type: ignore[return-value]

    @classmethod
    def from_linear(cls, linear):
        weight = linear.weight
        if weight.device.type != "cpu" or not _weight_only_int8(weight):
            return None
        return cls(weight.qdata, weight.scale, linear.bias, weight.dtype)

    def forward(self, x):
        flat = x.reshape(-1, self.in_features)
        scale = self.scale if self.scale.dtype == x.dtype else self.scale.to(x.dtype)
        out = torch._weight_int8pack_mm(flat.contiguous(), self.qdata, scale)  # type: ignore[arg-type]
        out = out.reshape(*x.shape[:-1], self.out_features)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weight-only (int8pack_mm)"
