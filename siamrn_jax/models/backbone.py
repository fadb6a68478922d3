"""ResNet-50 with atrous (dilated) layer3/layer4, exactly as pysot/SiamBAN/SiamRN ``resnet_atrous.py``.

This is not torchvision's ResNet-50: conv1 has no padding, the stride-2 3x3 conv of layer2 has padding 0,
layer3/layer4 are dilated (2 and 4) with stride 1, and the downsample branches of layers 2-4 are **3x3**
convolutions (45.5 M parameters in all). Only pysot's ``resnet50.model`` ImageNet weights fit it.

Shapes (NHWC): template [B,127,127,3] -> layer2 [B,15,15,512], layer3 [B,15,15,1024],
layer4 [B,15,15,2048]; search [B,255,255,3] -> [B,31,31,*]. All three taps have stride 8.
Input pixels are raw BGR 0-255 floats (no mean/std normalisation anywhere, as in pysot).

Parameter names mirror the PyTorch keys: ``conv1``, ``bn1``, ``layer2/0/conv2``, ``layer2/0/downsample/0``.

Rematerialisation (``remat=True``): every Bottleneck of layer2-4, the stages that train from the official
epoch 10 on, is wrapped in ``nn.remat``; its backward pass then recomputes the block's internal activations
from the block input instead of storing them. Module names, hence the parameter tree and checkpoint keys,
are unchanged, and so are the values (same operations, recomputed).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from siamrn_jax.models.layers import Dtype, batch_norm, conv, materialize, resnet_kernel_init

EXPANSION = 4


class Bottleneck(nn.Module):
    """pysot ``Bottleneck``: 1x1 -> 3x3 (stride, dilation) -> 1x1, BN after each, ReLU after the add.

    Attributes:
      planes: width of the 3x3 conv; the block outputs ``planes * 4`` channels.
      stride: stride of the 3x3 conv (and of the downsample branch).
      dilation: dilation of the 3x3 conv *as passed to the official block*; when the block has a downsample
        branch and ``dilation > 1`` the official code halves it (first block of a dilated stage).
      downsample: ``None`` (identity shortcut), ``'1x1'`` or ``'3x3'`` projection shortcut.
    """

    planes: int
    stride: int = 1
    dilation: int = 1
    downsample: str | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        stride, dilation = self.stride, self.dilation
        # Official rule (resnet_atrous.py Bottleneck.__init__): padding = 2 - stride, except that the first
        # block of a dilated stage runs at dilation // 2, and a dilated conv pads by its dilation.
        padding = 2 - stride
        if self.downsample is not None and dilation > 1:
            dilation //= 2
            padding = dilation
        if dilation > 1:
            padding = dilation
        kw = dict(kernel_init=resnet_kernel_init, dtype=self.dtype)
        out = conv(self.planes, 1, name="conv1", **kw)(x)
        out = nn.relu(batch_norm(train, name="bn1", dtype=self.dtype)(out))
        out = conv(self.planes, 3, stride=stride, padding=padding, dilation=dilation, name="conv2", **kw)(out)
        out = nn.relu(batch_norm(train, name="bn2", dtype=self.dtype)(out))
        out = conv(self.planes * EXPANSION, 1, name="conv3", **kw)(out)
        out = batch_norm(train, name="bn3", dtype=self.dtype)(out)
        if self.downsample is not None:
            x = Downsample(
                self.planes * EXPANSION,
                self.stride,
                self.dilation,
                self.downsample,
                self.dtype,
                name="downsample",
            )(x, train)
        return materialize(nn.relu(out + x))  # its consumers read it, not recompute the stage


class Downsample(nn.Module):
    """Projection shortcut ``downsample.0`` (conv) + ``downsample.1`` (BN) of ``_make_layer``.

    1x1 for layer1 (stride 1, dilation 1); otherwise 3x3 with padding 0 for the stride-2 stage and
    padding = dilation = stage dilation // 2 for the dilated stages.
    """

    features: int
    stride: int
    dilation: int
    kind: str
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if self.kind == "1x1":
            layer = conv(
                self.features,
                1,
                stride=self.stride,
                name="0",
                kernel_init=resnet_kernel_init,
                dtype=self.dtype,
            )
        else:
            dd, padding = (self.dilation // 2, self.dilation // 2) if self.dilation > 1 else (1, 0)
            layer = conv(
                self.features,
                3,
                stride=self.stride,
                padding=padding,
                dilation=dd,
                name="0",
                kernel_init=resnet_kernel_init,
                dtype=self.dtype,
            )
        return batch_norm(train, name="1", dtype=self.dtype)(layer(x))


# ``train`` (argument 2, ``self`` counting as 0) picks the BatchNorm mode and so the variable collections
# the block touches: it must stay a Python bool under remat.
RematBottleneck = nn.remat(Bottleneck, static_argnums=(2,))


class ResLayer(nn.Module):
    """One stage (``layer1`` ... ``layer4``): blocks named ``0``, ``1``, ... like ``nn.Sequential``.

    ``remat``: wrap each block in ``nn.remat`` (same names and parameters, fewer stored activations).
    """

    planes: int
    blocks: int
    stride: int
    dilation: int
    downsample: str | None
    dtype: Dtype = jnp.float32
    remat: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        block = RematBottleneck if self.remat else Bottleneck
        x = block(self.planes, self.stride, self.dilation, self.downsample, self.dtype, name="0")(x, train)
        for b in range(1, self.blocks):
            x = block(self.planes, 1, self.dilation, None, self.dtype, name=str(b))(x, train)
        return x


class ResNetAtrous(nn.Module):
    """Backbone returning the taps of ``used_layers`` (official default ``[2, 3, 4]``).

    Attributes:
      blocks: bottleneck count per stage (ResNet-50: 3, 4, 6, 3).
      widths: ``planes`` per stage (ResNet-50: 64, 128, 256, 512); stage outputs are 4x these.
      stem_width: conv1 output channels (64).
      dtype: computation dtype of the convolutions (parameters and BatchNorm statistics stay float32).
      remat: rematerialise the Bottleneck blocks of layer2-4 (see the module docstring).
      used_layers: increasing stage ids among 2, 3, 4 whose outputs are returned (ablations: the BAN
        head's ``levels``). Stages past the deepest one are not built, so they have no parameters, as in
        pysot's ``ResNet(used_layers)``; a middle stage that is not used is still built (pysot would make it
        an identity and feed layer2 into layer4, a network no ImageNet backbone fits).
    """

    blocks: Sequence[int] = (3, 4, 6, 3)
    widths: Sequence[int] = (64, 128, 256, 512)
    stem_width: int = 64
    dtype: Dtype = jnp.float32
    remat: bool = False
    used_layers: Sequence[int] = (2, 3, 4)

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of the ``used_layers`` taps (the neck's input widths)."""
        return tuple(self.widths[s - 1] * EXPANSION for s in self.used_layers)

    @nn.compact
    def __call__(self, x: jax.Array, train_stem: bool = False, train_layers: bool = False):
        """Args:
          x: [B, H, W, 3] raw BGR pixels (0-255).
          train_stem: BN batch statistics for conv1/bn1/layer1 (the official trainer never does this);
            without it the stem is frozen: no gradient flows into it.
          train_layers: BN batch statistics for layer2-4 (official: from epoch 10 on).

        Returns:
          the ``used_layers`` features (default (layer2, layer3, layer4)), each [B, H', W', 4 * width] with
          H' = (H - 7) // 8 + 1... e.g. 15x15 for a 127 crop and 31x31 for a 255 crop.
        """
        x = conv(
            self.stem_width,
            7,
            stride=2,
            padding=0,
            name="conv1",
            kernel_init=resnet_kernel_init,
            dtype=self.dtype,
        )(x)
        x = nn.relu(batch_norm(train_stem, name="bn1", dtype=self.dtype)(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        # (stride, dilation) per stage, as in ResNet.__init__ of resnet_atrous.py.
        stage_geometry = ((1, 1), (2, 1), (1, 2), (1, 4))
        inplanes = self.stem_width
        taps = []
        last = max(self.used_layers)
        for s, (n_blocks, planes, (stride, dilation)) in enumerate(
            zip(self.blocks, self.widths, stage_geometry, strict=True), start=1
        ):
            if s > last:
                break
            train = train_stem if s == 1 else train_layers
            downsample = None
            if stride != 1 or inplanes != planes * EXPANSION:
                downsample = "1x1" if stride == 1 and dilation == 1 else "3x3"
            # conv1/bn1/layer1 never train in the official recipe: nothing to gain from recomputing them.
            remat = self.remat and s >= 2
            x = ResLayer(planes, n_blocks, stride, dilation, downsample, self.dtype, remat, name=f"layer{s}")(
                x, train
            )
            inplanes = planes * EXPANSION
            if s == 1 and not train_stem:
                # A stem in eval mode is frozen (the optimiser's labels agree): no backward pass through
                # conv1 / layer1, whose full-resolution convolutions cost more than layer2's.
                x = jax.lax.stop_gradient(x)
            if s in self.used_layers:
                taps.append(x)
        return tuple(taps)
