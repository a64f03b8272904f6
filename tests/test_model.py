"""The seed's architecture, layer by layer."""

import pytest
import torch
from torch import nn

from glitchnet.classes import CLASSES, NUM_CLASSES
from glitchnet.model import GlitchNet, ResidualBlock, count_parameters


def test_class_list_is_the_22_gravity_spy_classes():
    assert NUM_CLASSES == 22
    assert list(CLASSES) == sorted(CLASSES, key=str)  # Kaggle folder order
    assert {"Blip", "Koi_Fish", "Paired_Doves", "None_of_the_Above", "1080Lines"} <= set(CLASSES)


def test_layers_match_the_seed():
    m = GlitchNet()
    assert (m.conv1.kernel_size, m.conv1.stride, m.conv1.padding) == ((7, 7), (2, 2), (3, 3))
    assert (m.conv1.in_channels, m.conv1.out_channels) == (3, 64)
    assert isinstance(m.bn1, nn.BatchNorm2d) and isinstance(m.relu, nn.ReLU)
    assert (m.maxpool.kernel_size, m.maxpool.stride) == (3, 2)
    for block in (m.layer1, m.layer2):
        assert isinstance(block, ResidualBlock)
        for conv in (block.conv1, block.conv2):
            assert conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.stride == (1, 1)
    assert isinstance(m.avgpool, nn.AdaptiveAvgPool2d) and m.avgpool.output_size == 1
    assert (m.fc.in_features, m.fc.out_features) == (64, 22)
    assert m.cam_layer is m.layer2


def test_shapes_through_the_network():
    m = GlitchNet().eval()
    x = torch.randn(2, 3, 224, 224)
    stem = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    assert stem.shape == (2, 64, 56, 56)
    assert m.layer2(m.layer1(stem)).shape == (2, 64, 56, 56)
    assert m(x).shape == (2, 22)


def test_parameter_count():
    assert count_parameters(GlitchNet()) == 158_934
    assert count_parameters(GlitchNet(width=32)) == 3 * 32 * 49 + 2 * 32 + 2 * (2 * 32 * 32 * 9 + 4 * 32) + 32 * 22 + 22


def test_residual_block_has_identity_skip():
    block = ResidualBlock(8).eval()
    nn.init.zeros_(block.bn2.weight)
    nn.init.zeros_(block.bn2.bias)
    x = torch.rand(1, 8, 10, 10)  # non-negative: relu(0 + x) == x
    assert torch.allclose(block(x), x)


def test_forward_uint8_is_the_model_on_to_model_input_in_float32_on_the_cpu():
    import numpy as np

    from glitchnet.images import normalize
    from glitchnet.model import autocast, forward_uint8

    torch.manual_seed(0)
    model = GlitchNet(width=8).to(memory_format=torch.channels_last).eval()
    images = np.random.default_rng(1).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    logits = forward_uint8(model, images)
    assert logits.dtype == torch.float32 and logits.shape == (3, 22) and logits.requires_grad  # training needs grads
    assert torch.equal(logits, model(normalize(images)))
    with autocast("cpu"):
        assert not torch.is_autocast_enabled("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_forward_uint8_runs_in_bfloat16_on_cuda():
    import numpy as np

    from glitchnet.model import autocast, forward_uint8

    with autocast("cuda"):
        assert torch.is_autocast_enabled("cuda") and torch.get_autocast_dtype("cuda") == torch.bfloat16
    model = GlitchNet(width=8).cuda().to(memory_format=torch.channels_last).eval()
    images = np.random.default_rng(1).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    logits = forward_uint8(model, images)
    assert logits.device.type == "cuda" and logits.dtype == torch.bfloat16
