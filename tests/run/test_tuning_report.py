"""The report's tuning section: each method's budget, default and best validation scores and best settings."""

from __future__ import annotations

from hyperfusion.config import config_from_dict
from hyperfusion.run.tuning_report import tuning_rows, tuning_section

FILM = {"tuned": True, "budget": 4, "pruned": 1, "default_score": 0.41, "best_score": 0.5234, "best_trial": 2,
        "training": {"lr": 0.0003, "epochs": 7}, "model": {"init_std": 0.1, "head_dropout": [0.004774028799794827, 0.5],
                                                       "film_layers": ["block3.residual"]}}  # fmt: skip
RAW = {
    "cohort": "c.yaml",
    "methods": ["ad-imaging", "ad-film"],
    "method_training": {"ad-film": {"lr": 0.0003, "epochs": 7}},
    "model_overrides": {
        "ad-film": {
            "init_std": 0.1,
            "head_dropout": [0.004774028799794827, 0.5],
            "film_layers": ["block3.residual"],
        }
    },
    "tuning": {
        "metric": "BA",
        "methods": {"ad-film": FILM, "ad-crop-reader": {"tuned": False, "why": "closed form"}},
    },
}


def test_rows_state_budget_scores_and_best_settings():
    rows = tuning_rows(config_from_dict(RAW))
    assert rows == [
        [
            "ad-film",
            "4",
            "1",
            "0.410",
            "0.523 (trial 2)",
            "lr 0.0003, epochs 7, init_std 0.1, head_dropout [0.00477, 0.5], film_layers [block3.residual]",
        ],
        ["ad-crop-reader", "—", "—", "—", "—", "not tuned: closed form"],
    ]


def test_the_section_renders_for_a_tuned_config_only():
    text = tuning_section(config_from_dict(RAW)).render(None)
    assert (
        text.startswith("\n## Tuning")
        and "| method | trials | pruned | val BA default | val BA best |" in text
    )
    row = (
        "| ad-film | 4 | 1 | 0.410 | 0.523 (trial 2) | lr 0.0003, epochs 7, init_std 0.1, head_dropout [0.00477, 0.5], "
        "film_layers [block3.residual] |"
    )
    assert row in text
    untuned = {k: v for k, v in RAW.items() if k != "tuning"}
    assert tuning_section(config_from_dict(untuned)).render(None) == ""
