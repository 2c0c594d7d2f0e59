"""The AD classifier's trunk: a pre-activation 3D ResNet (paper §3.5.2, Fig. 3B, Table C.6).

``stem (conv3-BN-ReLU) → maxpool2 → block1 … block{depth} → GAP → dropout → fc1 → ReLU → dropout → fc2``.
Block ``i`` maps ``w·2^(i−1) → w·2^i`` channels (``w`` = base width, 16 in the paper), block 1 at stride 1 and the
others at stride 2. Every fusion model of the AD family is this trunk plus one fusion from :mod:`hyperfusion.nn`
at a named place: concatenation at ``fc1``, FiLM / DAFT at ``block4.residual`` (the last block's main path),
HyperFusion at ``block4.shortcut.conv``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from hyperfusion.models.checks import check_image
from hyperfusion.nn.blocks import ConvNormAct3d, PreActResBlock3d, ShortcutOrder

PAPER_BLOCK_DROPOUT = (0.1, 0.2, 0.2, 0.3)


def default_block_dropout(depth: int) -> tuple[float, ...]:
    """The paper's per-block dropout (0.1, 0.2, 0.2, 0.3); other depths: 0.1 first, 0.3 last, 0.2 between."""
    if depth == 4:
        return PAPER_BLOCK_DROPOUT
    if depth == 1:
        return (0.3,)
    return (0.1, *([0.2] * (depth - 2)), 0.3)


class PreActResNet3d(nn.Module):
    """Pre-activation 3D ResNet classifier, called ``net(image)`` (a tabular argument is accepted and ignored).

    Args:
        in_channels: image channels.
        n_classes: number of logits.
        base_width: channels of the stem; block ``i`` outputs ``base_width·2^i``.
        depth: number of residual blocks.
        block_dropout: channel-dropout probability per block (default :func:`default_block_dropout`).
        head_hidden: width of ``fc1``.
        head_dropout: dropout before ``fc1`` (image features only) and before ``fc2``.
        bn_momentum: BatchNorm3d momentum (0.05 in the paper's runs).
        shortcut_order: order inside projection shortcuts (see :class:`~hyperfusion.nn.blocks.Shortcut3d`).
        last_shortcut_order: order inside the last block's shortcut (default: ``shortcut_order``);
            ``"conv-norm"`` reproduces the authors' hyper block (reference bug B7).

    Raises:
        ValueError: for non-positive sizes or a dropout list of the wrong length.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        n_classes: int = 3,
        base_width: int = 16,
        depth: int = 4,
        block_dropout: Sequence[float] | None = None,
        head_hidden: int = 64,
        head_dropout: tuple[float, float] = (0.6, 0.5),
        bn_momentum: float = 0.05,
        shortcut_order: ShortcutOrder = "norm-conv",
        last_shortcut_order: ShortcutOrder | None = None,
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("n_classes", n_classes),
            ("base_width", base_width),
            ("depth", depth),
            ("head_hidden", head_hidden),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        dropouts = tuple(default_block_dropout(depth) if block_dropout is None else block_dropout)
        if len(dropouts) != depth:
            raise ValueError(f"block_dropout needs one value per block ({depth}), got {dropouts}")
        if len(head_dropout) != 2:
            raise ValueError(f"head_dropout needs two values (before fc1, before fc2), got {head_dropout}")
        self.in_channels = in_channels
        self.depth = depth
        self.n_classes = n_classes
        self._block_args = [
            dict(
                in_channels=base_width * 2 ** (i - 1),
                out_channels=base_width * 2**i,
                stride=1 if i == 1 else 2,
                dropout=dropouts[i - 1],
                bn_momentum=bn_momentum,
                shortcut_order=shortcut_order
                if i < depth or last_shortcut_order is None
                else last_shortcut_order,
            )
            for i in range(1, depth + 1)
        ]
        self.stem = ConvNormAct3d(in_channels, base_width, bn_momentum=bn_momentum)
        self.pool = nn.MaxPool3d(kernel_size=2, stride=2)
        for i, args in enumerate(self._block_args, start=1):
            self.add_module(f"block{i}", PreActResBlock3d(**args))
        self.gap = nn.AdaptiveAvgPool3d(1)
        self.features = base_width * 2**depth
        self.drop1 = nn.Dropout(head_dropout[0])
        self.fc1 = nn.Linear(self.features, head_hidden)
        self.relu = nn.ReLU()
        self.drop2 = nn.Dropout(head_dropout[1])
        self.fc2 = nn.Linear(head_hidden, n_classes)

    @property
    def last_block_name(self) -> str:
        """Name of the last residual block, e.g. ``"block4"``."""
        return f"block{self.depth}"

    def encode(self, image: Tensor) -> Tensor:
        """Feature map entering the last block (stem, pool and all blocks but the last)."""
        check_image(image, channels=self.in_channels)
        if min(image.shape[2:]) < 2:
            raise ValueError(
                f"image sides must be >= 2 voxels for the stem's pooling, got {tuple(image.shape)}"
            )
        x = self.pool(self.stem(image))
        for i in range(1, self.depth):
            x = self.get_submodule(f"block{i}")(x)
        return x

    def head(self, pooled: Tensor) -> Tensor:
        """Logits from the pooled features: ``fc2(drop2(relu(fc1(drop1(pooled)))))``."""
        return self.fc2(self.drop2(self.relu(self.fc1(self.drop1(pooled)))))

    def forward(self, image: Tensor, tabular: Tensor | None = None) -> Tensor:
        """Logits ``[B, n_classes]``; ``tabular`` is ignored (so the trunk alone is the imaging baseline)."""
        x = self.get_submodule(self.last_block_name)(self.encode(image))
        return self.head(self.gap(x).flatten(1))
