"""What the PyTorch peers share: the paper's sine network and Omniglot conv net, their
task distributions, and moving parameters and gradients to and from minimaml's layout.

minimaml's MLP params are a list of ``{"w": (n_in, n_out), "b": (n_out,)}``; they are
exchanged as ``.npz`` files with keys ``w0, b0, w1, b1, ...`` (the conv net's blocks:
``w{i}, scale{i}, offset{i}``). ``torch.nn.Linear`` stores ``weight`` as (n_out, n_in)
and ``Conv2d`` as (C_out, C_in, 3, 3) where minimaml has (3, 3, C_in, C_out), hence
the transposes.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def sine_net(hidden=(40, 40)):
    """The paper's regressor 1-40-40-1 with ReLU, as an ``nn.Sequential``."""
    sizes = (1, *hidden, 1)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def linear_layers(model):
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


class OmniglotNet(nn.Module):
    """minimaml's conv net (``minimaml.nets.conv_apply``) in torch: ``blocks`` x [3x3 conv,
    stride 2, "SAME" padding (TensorFlow's: the odd pixel at the bottom/right), no bias;
    BatchNorm on this batch's statistics; ReLU], the spatial mean, a linear layer.

    x: (B, H, W, C) as minimaml takes it -> logits (B, ways).
    """

    def __init__(self, ways=5, in_channels=1, filters=64, blocks=4):
        super().__init__()
        channels = [in_channels] + [filters] * blocks
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, 3, stride=2, bias=False)
                                   for c_in, c_out in zip(channels[:-1], channels[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm2d(filters, track_running_stats=False)
                                   for _ in range(blocks))
        self.linear = nn.Linear(filters, ways)

    def forward(self, x):
        x = x.permute(0, 3, 1, 2)
        for conv, norm in zip(self.convs, self.norms):
            size = x.shape[-1]
            pad = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
            x = F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
            x = F.relu(norm(conv(x)))
        return self.linear(x.mean(dim=(2, 3)))


def _transpose(a):
    return a.T


def _keep(a):
    return a


def minimaml_layout(model):
    """[(npz key, torch parameter, to torch, to minimaml)] for the two networks."""
    if isinstance(model, OmniglotNet):
        rows = []
        for i, (conv, norm) in enumerate(zip(model.convs, model.norms)):
            rows += [(f"w{i}", conv.weight, lambda a: a.transpose(3, 2, 0, 1),
                      lambda a: a.transpose(2, 3, 1, 0)),
                     (f"scale{i}", norm.weight, _keep, _keep),
                     (f"offset{i}", norm.bias, _keep, _keep)]
        last = len(model.convs)
        return rows + [(f"w{last}", model.linear.weight, _transpose, _transpose),
                       (f"b{last}", model.linear.bias, _keep, _keep)]
    rows = []
    for i, layer in enumerate(linear_layers(model)):
        rows += [(f"w{i}", layer.weight, _transpose, _transpose),
                 (f"b{i}", layer.bias, _keep, _keep)]
    return rows


def load_minimaml_params(model, arrays):
    """Copy minimaml params (npz-style dict ``w0, b0, ...``) into ``model``."""
    with torch.no_grad():
        for key, param, to_torch, _ in minimaml_layout(model):
            param.copy_(torch.from_numpy(np.ascontiguousarray(to_torch(np.asarray(arrays[key])))))
    return model


def to_minimaml_layout(model, tensors):
    """Per-parameter tensors of ``model`` (in ``model.parameters()`` order) as ``w0, b0, ...``."""
    by_param = {id(p): t for p, t in zip(model.parameters(), tensors)}
    return {key: to_minimaml(by_param[id(param)].detach().cpu().numpy())
            for key, param, _, to_minimaml in minimaml_layout(model)}


def sample_omniglot_tasks(generator, images, num_tasks, ways, shots, queries):
    """N-way K-shot tasks as ``minimaml.omniglot.sample_tasks`` draws them, in torch:
    N distinct characters, a random quarter turn each, K + Q distinct drawings each.

    images: (C, D, H, W). Returns (support_x (T, N*K, H, W, 1), support_y (T, N*K),
    query_x (T, N*Q, H, W, 1), query_y (T, N*Q)), class-major, labels int64.
    """
    num_chars, drawings = images.shape[:2]
    characters = torch.stack([torch.randperm(num_chars, generator=generator)[:ways]
                              for _ in range(num_tasks)])
    rotations = torch.randint(0, 4, (num_tasks, ways), generator=generator)
    drawers = torch.argsort(torch.rand(num_tasks, ways, drawings, generator=generator),
                            dim=-1)[..., :shots + queries]
    x = images[characters[..., None], drawers]                      # (T, N, K+Q, H, W)
    turned = torch.stack([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])
    x = turned[rotations, torch.arange(num_tasks)[:, None], torch.arange(ways)[None, :]]
    x = x[..., None]
    y = torch.arange(ways)[None, :, None].expand(num_tasks, ways, shots + queries)
    h, w = x.shape[-3:-1]
    return (x[:, :, :shots].reshape(num_tasks, ways * shots, h, w, 1),
            y[:, :, :shots].reshape(num_tasks, -1),
            x[:, :, shots:].reshape(num_tasks, ways * queries, h, w, 1),
            y[:, :, shots:].reshape(num_tasks, -1))


def sample_sine_tasks(generator, num_tasks, support_size, query_size, dtype=torch.float32):
    """The paper's p(T), as ``minimaml.sinusoid.sample_tasks`` draws it, in torch.

    Returns (support_x, support_y, query_x, query_y): (T, K, 1), (T, K, 1), (T, Q, 1), (T, Q, 1).
    """
    amplitude = 0.1 + 4.9 * torch.rand(num_tasks, 1, 1, generator=generator, dtype=dtype)
    phase = math.pi * torch.rand(num_tasks, 1, 1, generator=generator, dtype=dtype)
    x = -5.0 + 10.0 * torch.rand(num_tasks, support_size + query_size, 1,
                                 generator=generator, dtype=dtype)
    y = amplitude * torch.sin(x - phase)
    return x[:, :support_size], y[:, :support_size], x[:, support_size:], y[:, support_size:]
