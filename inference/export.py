"""Export of the streaming step to ONNX: what a checkpoint's step.onnx is made of.

Needs PyTorch and `onnx` (training dependencies); the services only read the result
(inference/step.py documents the interface). The export is generic over ModelConfig: the
cell (GRU or LSTM), its size and the running means are all traced from the model as it is.
"""

from __future__ import annotations

import copy
import io
import warnings

import onnx
import torch
from torch import Tensor, nn

from inference.features import N_FEATURES
from inference.model import RiskModel
from inference.step import INPUTS, INTERFACE, META_INTERFACE, META_MODEL_VERSION, OUTPUTS

# Opset 17 is read by every onnxruntime release since 1.13.
OPSET = 17


class _Step(nn.Module):
    """`RiskModel.step` with the risk as a third output, so the services need no sigmoid of their own."""

    def __init__(self, model: RiskModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, state: Tensor, values: Tensor, mask: Tensor, delta: Tensor, last_values: Tensor, last_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        new_state, logit = self.model.step(state, values, mask, delta, last_values, last_mask)
        return new_state, logit, torch.sigmoid(logit)


def export_step(model: RiskModel, model_version: str) -> bytes:
    """The serialised ONNX model of `model.step`, batch dimension dynamic, version in its metadata."""
    model = copy.deepcopy(model).cpu().eval()  # training may hold it on a GPU; export a CPU copy
    batch = 3  # any size: the batch dimension is exported as dynamic
    generator = torch.Generator().manual_seed(0)
    example = (
        torch.zeros(batch, model.state_size),
        *(torch.rand(batch, N_FEATURES, generator=generator) for _ in range(5)),
    )
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of torch.export's, which needs
        # onnxscript; this graph has no control flow, and the classic one traces it exactly.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            _Step(model),
            example,
            buffer,  # type: ignore[arg-type]  # the exporter writes to a file object too; typed as a path only
            dynamo=False,
            opset_version=OPSET,
            input_names=list(INPUTS),
            output_names=list(OUTPUTS),
            dynamic_axes={name: {0: "batch"} for name in (*INPUTS, *OUTPUTS)},
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in ((META_MODEL_VERSION, model_version), (META_INTERFACE, INTERFACE)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"wardwatch risk model {model_version}: one streaming step (inference/step.py)"
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()
