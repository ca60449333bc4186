"""Loads an mclr checkpoint into torchvision's ResNet-18 and compares features with mclr's.

Usage: python interop.py RUN/model.safetensors CASE.safetensors

CASE holds `images` (N, 3, 32, 32, already normalised) and `features` (N, 512), mclr's
evaluation-mode features of those images. Prints one JSON line with the largest relative
difference (max |torch - mclr| / max |mclr|) and the keys that did not match. These are the
lines the README shows for taking a checkpoint to PyTorch.
"""

import json
import sys

import torch
import torch.nn as nn
import torchvision
from safetensors.torch import load_file


def cifar_resnet18():
    """torchvision's resnet18 with the CIFAR stem: 3x3 stride-1 conv1, no max-pool, no fc."""
    model = torchvision.models.resnet18()
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Identity()
    return model


def load_mclr_backbone(path):
    model = cifar_resnet18()
    weights = load_file(path)
    state = {k.removeprefix("backbone."): v for k, v in weights.items() if k.startswith("backbone.")}
    # torch counts BatchNorm batches in buffers mclr does not keep (they only matter with
    # momentum=None); every other key must match exactly.
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(value)
    result = model.load_state_dict(state, strict=True)
    return model.eval(), result


def main():
    model_path, case_path = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    model, result = load_mclr_backbone(model_path)
    case = load_file(case_path)
    with torch.no_grad():
        features = model(case["images"].float())
    theirs = case["features"].float()
    err = ((features - theirs).abs().max() / theirs.abs().max()).item()
    print(json.dumps({
        "max_rel_err": err,
        "missing": list(result.missing_keys),
        "unexpected": list(result.unexpected_keys),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
