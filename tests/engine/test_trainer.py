"""The training engine on toy problems: learning, best checkpoint, determinism, views, class balance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hyperfusion.engine import trainer as t
from hyperfusion.engine.module import balanced_class_weights, score_batch
from hyperfusion.evaluation.metrics import balanced_accuracy, mae
from tests.run.training_toys import ToyNet, classification_data, regression_data, targets_of

FAST = {"progress_bar": False, "lr": 0.02}


def _cls_settings(**kw: object) -> t.TrainSettings:
    return t.TrainSettings(task="classification", n_classes=3, **{**FAST, "epochs": 8, **kw})


def _loader(ds, batch_size: int = 16, shuffle: bool = True) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_learns_a_learnable_problem_and_writes_only_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    train, val = classification_data(96, 0), classification_data(48, 1)
    t.seed_everything(0)
    model = ToyNet()
    ckpt = tmp_path / "ckpt" / "best.pt"
    result = t.train_model(model, _loader(train), _loader(val, shuffle=False), _cls_settings(), ckpt)
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 8
    assert losses[-1] < 0.6 * losses[0]
    assert result.best_metric > 0.75 and result.metric_name == "BA"
    # nothing but the checkpoint: no lightning_logs, no checkpoints folder, no temporary files
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["ckpt", "ckpt/best.pt"]


def test_best_checkpoint_is_the_best_epoch(tmp_path: Path) -> None:
    # validation labels are the training labels shifted by one class: the better the fit, the worse the validation BA,
    # so the best epoch is an early one and the last epoch is clearly worse
    train, val = classification_data(96, 0), classification_data(48, 1, flip=True)
    t.seed_everything(0)
    model = ToyNet()
    ckpt = tmp_path / "best.pt"
    settings = _cls_settings(lr=0.005)
    result = t.train_model(model, _loader(train), _loader(val, shuffle=False), settings, ckpt)
    ba = [h["val_BA"] for h in result.history]
    assert result.best_epoch == int(np.argmax(ba))
    assert result.best_metric == max(ba)
    assert result.best_epoch < len(ba) - 1 and ba[-1] < result.best_metric - 0.1
    # the saved weights are the best epoch's: a fresh model loaded from the file scores exactly that
    fresh = ToyNet()
    fresh.load_state_dict(torch.load(ckpt, weights_only=True))
    pred = t.predict(fresh, _loader(val, shuffle=False), task="classification")
    assert balanced_accuracy(pred.values, pred.targets) == pytest.approx(result.best_metric)
    # and train_model left the model holding them
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, fresh.state_dict()[k])


def test_regression_keeps_lowest_mae(tmp_path: Path) -> None:
    train, val = regression_data(96, 0), regression_data(48, 1)
    t.seed_everything(0)
    model = ToyNet(n_out=1)
    settings = t.TrainSettings(task="regression", epochs=10, **FAST)
    result = t.train_model(model, _loader(train), _loader(val, shuffle=False), settings, tmp_path / "b.pt")
    maes = [h["val_MAE"] for h in result.history]
    assert result.metric_name == "MAE" and result.best_epoch == int(np.argmin(maes))
    assert result.history[-1]["train_loss"] < 0.3 * result.history[0]["train_loss"]
    pred = t.predict(model, _loader(val, shuffle=False), task="regression")
    assert pred.values.shape == (48,) and pred.per_view.shape == (48, 1)
    assert mae(pred.values, pred.targets) == pytest.approx(result.best_metric, rel=1e-5)
    assert pred.subject_ids[:2] == ["sub-000", "sub-001"]


def _train_once(tmp_path: Path, seed: int, name: str) -> dict[str, torch.Tensor]:
    t.seed_everything(seed)
    model = ToyNet()
    train, val = classification_data(40, 0), classification_data(20, 1)
    t.train_model(
        model, _loader(train, 8), _loader(val, 8), _cls_settings(epochs=2, seed=seed), tmp_path / name
    )
    return _state(model)


def test_same_seed_same_weights(tmp_path: Path) -> None:
    a = _train_once(tmp_path, 3, "a.pt")
    b = _train_once(tmp_path, 3, "b.pt")
    c = _train_once(tmp_path, 4, "c.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], c[k]) for k in a)


class SideAware(torch.nn.Module):
    """Logits depend on the image mean, so the two views of a subject give different softmaxes."""

    def forward(self, image: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        m = image.mean(dim=(1, 2, 3, 4))
        return torch.stack([m, 2 * m, -m], dim=1) + tabular


def test_two_views_average_the_softmaxes() -> None:
    ds = classification_data(10, 0, views=2)
    model = SideAware()
    pred = t.predict(model, DataLoader(ds, batch_size=4), task="classification")
    assert pred.values.shape == (10, 3) and pred.per_view.shape == (10, 2, 3)
    for i in range(10):
        image, tab, _, sid = ds[i]
        sides = [model(image[s][None], tab[None]).softmax(dim=1)[0] for s in range(2)]
        np.testing.assert_allclose(pred.per_view[i], torch.stack(sides).numpy(), rtol=1e-6)
        np.testing.assert_allclose(pred.values[i], ((sides[0] + sides[1]) / 2).numpy(), rtol=1e-6)
        assert pred.subject_ids[i] == sid
    # regression averages the predictions themselves
    mean, views = score_batch(
        lambda im, tb: im.mean(dim=(1, 2, 3, 4)), ds.images[:3], ds.tabular[:3], "regression"
    )
    np.testing.assert_allclose(
        mean.numpy(), ds.images[:3].mean(dim=(2, 3, 4, 5)).mean(dim=1).numpy(), rtol=1e-6
    )
    assert views.shape == (3, 2)


def test_validation_scores_both_views(tmp_path: Path) -> None:
    train = classification_data(48, 0)
    val = classification_data(24, 1, views=2)
    t.seed_everything(0)
    model = ToyNet()
    result = t.train_model(
        model, _loader(train), _loader(val, 8, False), _cls_settings(epochs=2), tmp_path / "v.pt"
    )
    pred = t.predict(model, _loader(val, 8, False), task="classification")
    assert pred.per_view.shape == (24, 2, 3)
    assert balanced_accuracy(pred.values, pred.targets) == pytest.approx(result.best_metric)


def test_class_weights_hand_computation(tmp_path: Path) -> None:
    # N = 6, C = 3, counts [3, 1, 2] -> w = 6 / (3 * counts) = [2/3, 2, 1]
    np.testing.assert_allclose(balanced_class_weights(np.array([0, 0, 0, 1, 2, 2]), 3), [2 / 3, 2.0, 1.0])
    train, val = classification_data(40, 0), classification_data(20, 1)
    y = np.concatenate([targets_of(train), targets_of(val)])
    counts = np.bincount(y, minlength=3)
    expected = [len(y) / (3 * c) for c in counts]
    t.seed_everything(0)
    result = t.train_model(ToyNet(), _loader(train), _loader(val), _cls_settings(epochs=1), tmp_path / "w.pt")
    np.testing.assert_allclose(result.class_weights, expected)
    # the same weights when the datasets expose no `targets` and are read item by item
    train.__dict__.pop("targets")
    assert (
        t.dataset_targets(torch.utils.data.Subset(val, [2, 0])).tolist() == targets_of(val)[[2, 0]].tolist()
    )
    np.testing.assert_array_equal(t.dataset_targets(train), targets_of(train))
    explicit = _cls_settings(epochs=1, class_weights=(1.1, 0.6962, 1.4))
    assert t.train_model(
        ToyNet(), _loader(train), _loader(val), explicit, tmp_path / "x.pt"
    ).class_weights == [
        1.1,
        0.6962,
        1.4,
    ]
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have no"):
        balanced_class_weights(np.array([0, 2, 2]), 3)


def test_oversampling_balances_classes_and_plain_ce(tmp_path: Path) -> None:
    train = classification_data(60, 0)
    y = targets_of(train)
    loader = t._oversampling_loader(_loader(train, 10), y, seed=0)
    drawn = np.concatenate([b[2].numpy() for _ in range(20) for b in loader])
    freq = np.bincount(drawn, minlength=3) / drawn.size
    np.testing.assert_allclose(freq, 1 / 3, atol=0.04)
    assert np.bincount(y, minlength=3).min() / y.size < 0.3  # the data really are imbalanced enough to matter
    val = classification_data(20, 1)
    for balance in ("oversample", "none"):
        result = t.train_model(
            ToyNet(),
            _loader(train),
            _loader(val),
            _cls_settings(epochs=1, class_balance=balance),
            tmp_path / "o.pt",
        )
        assert result.class_weights is None


def test_batch_of_one_is_skipped_with_batchnorm(tmp_path: Path) -> None:
    train, val = classification_data(9, 0), classification_data(8, 1)  # 9 = 2 × 4 + 1
    result = t.train_model(
        ToyNet(), _loader(train, 4), _loader(val, 4), _cls_settings(epochs=3), tmp_path / "s.pt"
    )
    assert result.skipped_batches == 3
    result = t.train_model(
        ToyNet(batchnorm=False),
        _loader(train, 4),
        _loader(val, 4),
        _cls_settings(epochs=3),
        tmp_path / "s.pt",
    )
    assert result.skipped_batches == 0


def test_bf16_and_channels_last_run_on_cpu(tmp_path: Path) -> None:
    train, val = classification_data(32, 0), classification_data(16, 1)
    settings = _cls_settings(epochs=1, precision="bf16", channels_last=True, deterministic=True)
    result = t.train_model(ToyNet(), _loader(train), _loader(val), settings, tmp_path / "bf.pt")
    assert np.isfinite(result.history[0]["train_loss"])
    assert not torch.are_deterministic_algorithms_enabled()  # the switch does not outlive the training
    state = torch.load(tmp_path / "bf.pt", weights_only=True)
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())
    pred = t.predict(ToyNet(), _loader(val), task="classification", precision="bf16", channels_last=True)
    np.testing.assert_allclose(pred.values.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "segmentation"}, "task"),
        ({"task": "classification"}, "n_classes"),
        ({"task": "regression", "epochs": 0}, "epochs"),
        ({"task": "regression", "lr": 0.0}, "lr"),
        ({"task": "regression", "device": "tpu"}, "device"),
        ({"task": "regression", "precision": "16"}, "precision"),
        ({"task": "classification", "n_classes": 3, "class_balance": "smote"}, "class_balance"),
        ({"task": "classification", "n_classes": 3, "class_weights": (1.0, 2.0)}, "class_weights"),
    ],
)
def test_bad_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        t.TrainSettings(**kwargs)


def test_model_output_must_fit_the_task(tmp_path: Path) -> None:
    train, val = classification_data(16, 0), classification_data(8, 1)
    settings = t.TrainSettings(task="regression", epochs=1, progress_bar=False)
    with pytest.raises(ValueError, match=r"predictions \[B=16\], got \(16, 3\)"):
        t.train_model(ToyNet(), _loader(train), _loader(val), settings, tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"logits \[B=8, C>=2\]"):
        t.predict(ToyNet(n_out=1), _loader(val), task="classification")


def test_training_sets_the_epoch_of_datasets_that_draw_per_epoch(tmp_path):
    """Hippocampus-side draws depend on the epoch; the engine must advance it every epoch."""
    from hyperfusion.data import CohortDataset

    epochs: list[int] = []

    class Recording(CohortDataset):
        def set_epoch(self, epoch: int) -> None:
            epochs.append(epoch)
            super().set_epoch(epoch)

    class ImageOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))

        def forward(self, image, tabular):
            return self.net(image)

    rng = np.random.default_rng(0)
    images = [rng.normal(size=(2, 4, 4, 4)).astype(np.float32) for _ in range(8)]
    tabular = rng.normal(size=(8, 3)).astype(np.float32)
    targets = np.array([0, 1] * 4)
    ids = [str(i) for i in range(8)]
    train = Recording(images, tabular, targets, ids, two_sides=True, train=True)
    val = CohortDataset(images, tabular, targets, ids, two_sides=True, train=False)
    settings = t.TrainSettings(task="classification", n_classes=2, **{**FAST, "epochs": 3})
    t.train_model(ImageOnly(), DataLoader(train, batch_size=4), DataLoader(val, batch_size=4), settings,
                  tmp_path / "m.pt")  # fmt: skip
    assert epochs == [0, 1, 2]
    np.testing.assert_array_equal(train.targets, targets)
