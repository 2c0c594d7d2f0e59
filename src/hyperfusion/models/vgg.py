"""The brain-age regressor's trunk: a VGG-like 3D CNN (paper §3.5.1, Fig. 2, Table A.5; after Levakov et al. 2020).

``block1 … block{depth}`` (:class:`~hyperfusion.nn.blocks.VGGBlock3d`, ``w·2^(i−1)`` channels) → Dropout3d →
flatten → ``linear1 → ReLU → … → linear{n} → ReLU → final_layer`` → the predicted age ``[B]``.
Valid convolutions make the flattened size depend on the input shape; it is computed at construction, and the
network checks the image shape it is given. For 1×90×120×99 and width 16 it is 64·7·11·8 = 39,424.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from hyperfusion.models.checks import check_image
from hyperfusion.nn.blocks import VGGBlock3d

BRAIN_AGE_INPUT = (90, 120, 99)


class VGG3dRegressor(nn.Module):
    """VGG-like 3D regressor, called ``net(image)`` (a tabular argument is accepted and ignored).

    Args:
        input_shape: spatial shape ``(D, H, W)`` of the images.
        in_channels: image channels.
        base_width: channels of block 1; block ``i`` has ``base_width·2^(i−1)``.
        depth: number of convolutional blocks.
        hidden: widths of ``linear1, linear2, …``; ``final_layer`` maps the last one to 1.
        dropout: channel-dropout probability before flattening.
        bn_momentum: BatchNorm3d momentum.

    Raises:
        ValueError: for an input too small for ``depth`` blocks or non-positive sizes.
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int] = BRAIN_AGE_INPUT,
        in_channels: int = 1,
        base_width: int = 16,
        depth: int = 3,
        hidden: Sequence[int] = (16, 32, 64),
        dropout: float = 0.2,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("base_width", base_width), ("depth", depth)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden widths must be >= 1, got {tuple(hidden)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(f"input_shape must be (D, H, W), got {tuple(input_shape)}")
        spatial = list(self.input_shape)
        for _ in range(depth):
            spatial = [VGGBlock3d.output_size(s) for s in spatial]
        if min(spatial) < 1:
            raise ValueError(
                f"input_shape {self.input_shape} is too small for {depth} blocks "
                f"(each side n becomes (n - 4) // 2; it would end at {tuple(spatial)})"
            )
        self.in_channels = in_channels
        self.depth = depth
        for i in range(1, depth + 1):
            width_in = in_channels if i == 1 else base_width * 2 ** (i - 2)
            self.add_module(
                f"block{i}", VGGBlock3d(width_in, base_width * 2 ** (i - 1), bn_momentum=bn_momentum)
            )
        self.dropout = nn.Dropout3d(dropout)
        self.flat_features = base_width * 2 ** (depth - 1) * math.prod(spatial)

        self.linear_names = [f"linear{i}" for i in range(1, len(hidden) + 1)] + ["final_layer"]
        widths = [self.flat_features, *hidden, 1]
        for name, fan_in, fan_out in zip(self.linear_names, widths[:-1], widths[1:]):
            self.add_module(name, nn.Linear(fan_in, fan_out))
        self.relu = nn.ReLU()

    def forward(self, image: Tensor, tabular: Tensor | None = None) -> Tensor:
        """Predictions ``[B]``; ``tabular`` is ignored (so the trunk alone is the imaging baseline)."""
        check_image(image, channels=self.in_channels, spatial=self.input_shape)
        x = image
        for i in range(1, self.depth + 1):
            x = self.get_submodule(f"block{i}")(x)
        x = self.dropout(x).flatten(1)
        for name in self.linear_names:
            x = self.get_submodule(name)(x)
            if name != "final_layer":
                x = self.relu(x)
        return x[:, 0]
