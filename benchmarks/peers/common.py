"""What the PyTorch peers share: the paper's sine network, its task distribution, and
moving parameters and gradients to and from minimaml's layout.

minimaml's MLP params are a list of ``{"w": (n_in, n_out), "b": (n_out,)}``; they are
exchanged as ``.npz`` files with keys ``w0, b0, w1, b1, ...``. ``torch.nn.Linear``
stores ``weight`` as (n_out, n_in), hence the transposes.
"""
import math

import numpy as np
import torch
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


def load_minimaml_params(model, arrays):
    """Copy minimaml params (dict ``w0, b0, ...`` of numpy arrays) into ``model``."""
    with torch.no_grad():
        for i, layer in enumerate(linear_layers(model)):
            layer.weight.copy_(torch.from_numpy(np.asarray(arrays[f"w{i}"]).T.copy()))
            layer.bias.copy_(torch.from_numpy(np.asarray(arrays[f"b{i}"])))
    return model


def to_minimaml_layout(model, tensors):
    """Per-parameter tensors of ``model`` (in ``model.parameters()`` order) as ``w0, b0, ...``."""
    by_param = {id(p): t for p, t in zip(model.parameters(), tensors)}
    out = {}
    for i, layer in enumerate(linear_layers(model)):
        out[f"w{i}"] = by_param[id(layer.weight)].detach().cpu().numpy().T
        out[f"b{i}"] = by_param[id(layer.bias)].detach().cpu().numpy()
    return out


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
