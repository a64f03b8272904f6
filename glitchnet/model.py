"""GlitchNet, the seed's small residual CNN for 224x224 Gravity Spy spectrograms."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .architectures import ARCHITECTURE_NAMES
from .classes import NUM_CLASSES
from .images import to_model_input


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions (padding 1) with BatchNorm, ReLU and an identity skip connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class GlitchNet(nn.Module):
    """The seed's GlitchNet.

    Layers: 7x7/2 convolution (3 -> ``width``) + BatchNorm + ReLU; 3x3/2 max-pooling; two ``ResidualBlock``s of
    3x3 convolutions with identity skips; adaptive average pooling to 1x1; one linear layer to ``num_classes``.
    A 224x224 input becomes 112x112 after the stem, 56x56 after pooling, and stays 56x56 through the blocks.

    With the default ``width=64`` (the ResNet convention) and 22 classes the model has 158,934 parameters
    (9,408 stem conv + 128 stem BN + 2 x 73,984 per block + 1,430 classifier), 0.64 MB of float32 weights.
    Grad-CAM hooks ``cam_layer`` (the last residual block), whose 56x56 maps are the finest with full context.
    """

    arch_name = "glitchnet"

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 64) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.width = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = ResidualBlock(width)
        self.layer2 = ResidualBlock(width)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last BN of each block so every block starts as the identity (He et al. 2019 "bag of tricks").
        nn.init.zeros_(self.layer1.bn2.weight)
        nn.init.zeros_(self.layer2.bn2.weight)

    @property
    def cam_layer(self) -> nn.Module:
        """The layer Grad-CAM should hook."""
        return self.layer2

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features (N, ``width``) the classifier reads: what ``similar`` calls a view's embedding."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class FrequencyGlitchNet(GlitchNet):
    """GlitchNet that knows where it is in frequency: a fourth input channel holds each row's log2 frequency.

    Gravity Spy's y axis is log2 frequency, 10 Hz (bottom) to 2048 Hz (top), so a row index is a frequency. The seed
    network's convolutions and global pooling are blind to absolute position, which is why Power_Line (60 Hz) and
    Air_Compressor (50 Hz), or Blip and the lower Tomte, are confused. The coordinate channel (CoordConv, Liu et al.
    2018) is appended inside ``forward``: the input stays the project's one 3-channel image. ``from_glitchnet``
    starts it from a seed model's weights, with zero weights on the new channel, so it begins as that model exactly.
    """

    arch_name = "glitchnet-freq"

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 64) -> None:
        super().__init__(num_classes, width)
        self.conv1 = nn.Conv2d(4, width, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        # +1 at the top row (2048 Hz) to -1 at the bottom (10 Hz), linear in log2 frequency like the image rows
        coord = torch.linspace(1.0, -1.0, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
        return super().features(torch.cat([x, coord], dim=1).contiguous(memory_format=torch.channels_last))

    @staticmethod
    def state_from_glitchnet(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A seed model's weights for this network: the stem gains a zero-weighted coordinate channel."""
        state = dict(state_dict)
        w = state["conv1.weight"]
        state["conv1.weight"] = torch.cat([w, torch.zeros_like(w[:, :1])], dim=1)
        return state

    @classmethod
    def from_glitchnet(cls, state_dict: dict[str, torch.Tensor], num_classes: int, width: int) -> FrequencyGlitchNet:
        model = cls(num_classes, width)
        model.load_state_dict(cls.state_from_glitchnet(state_dict))
        return model


ARCHITECTURES: dict[str, type[GlitchNet]] = {cls.arch_name: cls for cls in (GlitchNet, FrequencyGlitchNet)}
"""The classes behind ``architectures.ARCHITECTURE_NAMES``, by name."""
assert tuple(ARCHITECTURES) == ARCHITECTURE_NAMES, "architectures.py and model.py name the same networks"


def build_architecture(arch: str, num_classes: int = NUM_CLASSES, width: int = 64) -> GlitchNet:
    """A fresh model of a named architecture."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, not {arch!r}")
    return ARCHITECTURES[arch](num_classes=num_classes, width=width)


def autocast(device: str | torch.device) -> torch.autocast:
    """The precision a forward pass runs at on ``device``: bfloat16 autocast on CUDA (tensor cores), float32 on the
    CPU (bfloat16 there is slower without AMX and would move predictions)."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def forward_uint8(model: nn.Module, images_uint8: torch.Tensor | np.ndarray,
                  device: str | torch.device | None = None, features: bool = False) -> torch.Tensor:
    """The model's logits for canonical uint8 images (N, H, W, 3): ``images.to_model_input`` on ``device`` (default:
    where the model's weights are), run under ``autocast(device)``. Gradients flow unless the caller turns them off.
    With ``features``, the pooled features before the classifier (``GlitchNet.features``) instead of the logits.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    x = to_model_input(images_uint8, device)
    with autocast(device):
        return model.features(x) if features else model(x)
