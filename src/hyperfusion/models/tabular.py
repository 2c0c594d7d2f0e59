"""The tabular-only network: an MLP whose hidden layers double as HyperFusion's embedding.

Paper §3.5.2 / §4.3.5: the tabular baseline is ``Linear(F→8) → BatchNorm1d(8) → PReLU → Linear(8→C)`` (180
parameters for F=16, C=3). Its first three layers are the embedding network of AD HyperFusion, which can start
from a trained tabular baseline (§4.3.6).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from hyperfusion.models.checks import check_tabular


def embedding_mlp(in_features: int, hidden: Sequence[int], *, bn_momentum: float = 0.1) -> nn.Sequential:
    """``[Linear → BatchNorm1d → PReLU]`` per hidden width (one shared PReLU slope each, initialised to 0.25).

    Raises:
        ValueError: for a non-positive width.
    """
    if in_features < 1:
        raise ValueError(f"in_features must be >= 1, got {in_features}")
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        if size < 1:
            raise ValueError(f"hidden widths must be >= 1, got {tuple(hidden)}")
        layers += [nn.Linear(width, size), nn.BatchNorm1d(size, momentum=bn_momentum), nn.PReLU()]
        width = size
    return nn.Sequential(*layers)


class TabularMLP(nn.Module):
    """MLP on the tabular vector: ``classifier(embedding(t))``.

    Args:
        in_features: width ``F`` of the tabular vector.
        out_features: number of outputs (classes).
        hidden: hidden widths; each is a ``Linear → BatchNorm1d → PReLU`` layer of :attr:`embedding`.
        bn_momentum: BatchNorm1d momentum.

    Note:
        BatchNorm1d cannot normalise a training batch of one sample; drop the last incomplete batch when it has
        a single sample.

    Example:
        >>> mlp = TabularMLP(16, 3)
        >>> mlp(torch.randn(4, 16)).shape
        torch.Size([4, 3])
    """

    def __init__(
        self, in_features: int, out_features: int, *, hidden: Sequence[int] = (8,), bn_momentum: float = 0.1
    ) -> None:
        super().__init__()
        if out_features < 1:
            raise ValueError(f"out_features must be >= 1, got {out_features}")
        self.in_features = in_features
        self.embedding = embedding_mlp(in_features, hidden, bn_momentum=bn_momentum)
        self.classifier = nn.Linear(hidden[-1] if len(hidden) else in_features, out_features)

    def forward(self, tabular: Tensor) -> Tensor:
        check_tabular(tabular, features=self.in_features)
        return self.classifier(self.embedding(tabular))


class TabularOnlyModel(nn.Module):
    """Adapter giving a tabular network the package-wide call ``model(image, tabular)``; the image is ignored.

    Args:
        network: a module called ``network(tabular)``, kept as :attr:`network`.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: Tensor | None, tabular: Tensor) -> Tensor:
        return self.network(tabular)
