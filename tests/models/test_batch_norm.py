"""``models.layers.BatchNorm`` against ``torch.nn.BatchNorm2d``: outputs in train and eval mode, and the
running statistics after several train-mode calls (PyTorch updates ``running_var`` with the *unbiased*
batch variance; Flax's BatchNorm used the biased one, which moved every trained model's variances by
n / (n - 1)). Float64, so the comparison is exact to rounding."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from siamrn_jax.models.layers import batch_norm


@pytest.mark.parametrize("shape", [(2, 5, 5, 8), (3, 8)])
def test_batch_norm_equals_torch_batch_norm(shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    c = shape[-1]
    scale, bias = rng.uniform(0.5, 1.5, c), rng.uniform(-0.1, 0.1, c)
    mean0, var0 = rng.uniform(-0.1, 0.1, c), rng.uniform(0.5, 1.5, c)
    ref = torch.nn.BatchNorm2d(c).double() if len(shape) == 4 else torch.nn.BatchNorm1d(c).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(scale))
        ref.bias.copy_(torch.tensor(bias))
        ref.running_mean.copy_(torch.tensor(mean0))
        ref.running_var.copy_(torch.tensor(var0))
    to_torch = (lambda a: np.moveaxis(a, -1, 1)) if len(shape) == 4 else (lambda a: a)  # noqa: E731
    variables = {"params": {"scale": scale, "bias": bias}, "batch_stats": {"mean": mean0, "var": var0}}
    bn = batch_norm(True, name=None, dtype=np.float64)
    with jax.enable_x64(True):
        ref.train()
        for i in range(3):  # three calls in one step, as the neck's BNs see four crops
            x = rng.normal(0.3 * i, 1 + i, shape)
            y, new = bn.apply(variables, x, mutable=["batch_stats"])
            want = ref(torch.tensor(to_torch(x))).detach().numpy()
            np.testing.assert_allclose(to_torch(np.asarray(y)), want, rtol=1e-12, atol=1e-12)
            variables = {"params": variables["params"], "batch_stats": new["batch_stats"]}
            np.testing.assert_allclose(new["batch_stats"]["mean"], ref.running_mean.numpy(), rtol=1e-13)
            np.testing.assert_allclose(new["batch_stats"]["var"], ref.running_var.numpy(), rtol=1e-13)
        ref.eval()
        x = rng.normal(0, 2, shape)
        y = batch_norm(False, name=None, dtype=np.float64).apply(variables, x)
        want = ref(torch.tensor(to_torch(x))).detach().numpy()
        np.testing.assert_allclose(to_torch(np.asarray(y)), want, rtol=1e-12, atol=1e-12)
    # the biased variance would be off by n / (n - 1), far above these tolerances
    n = int(np.prod(shape[:-1]))
    assert n / (n - 1) - 1 > 1e-3


@pytest.mark.parametrize("shape", [(2, 5, 5, 8), (3, 8)])
def test_batch_norm_gradients_equal_torch(shape):
    """Train mode has its own backward (``layers.train_normalize``: the batch sums as matrix products,
    5-10x faster on XLA:CPU): the gradients of x, scale and bias against torch autograd, float64."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    c = shape[-1]
    scale, bias = rng.uniform(0.5, 1.5, c), rng.uniform(-0.1, 0.1, c)
    x, weights = rng.normal(0.4, 2.0, shape), rng.normal(0, 1, shape)
    ref = torch.nn.BatchNorm2d(c).double() if len(shape) == 4 else torch.nn.BatchNorm1d(c).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(scale))
        ref.bias.copy_(torch.tensor(bias))
    to_torch = (lambda a: np.moveaxis(a, -1, 1)) if len(shape) == 4 else (lambda a: a)  # noqa: E731
    xt = torch.tensor(to_torch(x), requires_grad=True)
    (torch.tanh(ref.train()(xt)) * torch.tensor(to_torch(weights))).sum().backward()
    bn = batch_norm(True, name=None, dtype=np.float64)
    with jax.enable_x64(True):

        def loss(x, params):
            y, _ = bn.apply(
                {"params": params, "batch_stats": {"mean": 0 * scale, "var": 1 + 0 * scale}},
                x,
                mutable=["batch_stats"],
            )
            return (jax.numpy.tanh(y) * weights).sum()

        dx, dp = jax.grad(loss, argnums=(0, 1))(x, {"scale": scale, "bias": bias})
    np.testing.assert_allclose(to_torch(np.asarray(dx)), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dp["scale"], ref.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dp["bias"], ref.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
