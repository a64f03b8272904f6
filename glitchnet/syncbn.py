"""BatchNorm over the global batch of every rank, so N ranks × batch B train as one process × batch N·B."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def _in_process_group() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose gradient is again the all-reduced gradient: each rank's statistics feed every rank's
    loss, so each rank gets back its share of every rank's gradient."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode mean and variance are those of the global batch over every rank, for CPU ranks
    (gloo), where ``torch.nn.SyncBatchNorm`` refuses to run. Eval mode, and a world of one, are plain BatchNorm2d.

    One all-reduce per layer carries each rank's per-channel count, sum and sum of squares (from its own mean and
    variance, computed by ``torch.var_mean`` in the input's precision; combined in float64, so the global variance
    loses nothing to cancellation); autograd carries the gradient back through the same all-reduce.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _in_process_group()):
            return super().forward(x)
        channels = x.shape[1]
        var_local, mean_local = torch.var_mean(x, dim=(0, 2, 3), correction=0)
        n_local = x.numel() / channels
        mean64 = mean_local.double()
        local = torch.cat([mean64 * n_local, (var_local.double() + mean64 * mean64) * n_local,
                           mean64.new_tensor([n_local])])
        total = _SumOverRanks.apply(local)
        count = total[-1]
        mean = total[:channels] / count
        var = (total[channels:2 * channels] / count - mean * mean).clamp_min(0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * count / (count - 1) if float(count) > 1 else var
                self.running_mean.mul_(1 - factor).add_(mean.to(x.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.to(x.dtype), alpha=factor)
        scale = torch.rsqrt(var + self.eps).to(x.dtype)
        if self.affine:
            scale = scale * self.weight
        out = (x - mean.to(x.dtype)[None, :, None, None]) * scale[None, :, None, None]
        return out + self.bias[None, :, None, None] if self.affine else out


def synchronize_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` with every BatchNorm layer normalizing over the global batch (all ranks); running statistics then stay
    identical on every rank. CUDA: ``torch.nn.SyncBatchNorm``; CPU: ``GlobalBatchNorm2d``. Outside a process group of
    several ranks, ``model`` is returned unchanged. The state dict keeps its keys, so checkpoints load into GlitchNet.
    """
    if not _in_process_group():
        return model
    if next(model.parameters()).device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _replace(model)


def _replace(module: nn.Module) -> nn.Module:
    if type(module) is nn.BatchNorm2d:
        out = GlobalBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                module.track_running_stats)
        out.load_state_dict(module.state_dict())
        return out.to(device=module.running_mean.device)
    for name, child in module.named_children():
        module.add_module(name, _replace(child))
    return module
