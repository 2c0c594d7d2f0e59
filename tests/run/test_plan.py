"""The plan of a run: which units train, compose or fit themselves, and what each waits for."""

from __future__ import annotations

from hyperfusion.run.plan import Unit, plan_units, warm_start_conflict


def test_the_crop_reader_fits_itself_and_waits_for_nothing():
    planned = plan_units(
        ["ad-imaging", "ad-crop-reader", "ad-late-fusion"],
        split_seeds=[0],
        versions=1,
        folds=1,
        warm_start="tabular",
    )
    kinds = {p.unit.method: p for p in planned}
    assert kinds["ad-crop-reader"].kind == "fit" and kinds["ad-crop-reader"].needs == ()
    assert kinds["ad-imaging"].kind == "train"
    late = kinds["ad-late-fusion"]
    assert late.kind == "compose" and set(late.members.values()) == {
        Unit("ad-imaging", 0, 0, 0),
        Unit("ad-tabular", 0, 0, 0),
    }


def test_warm_start_both_waits_for_both_single_modality_models():
    planned = plan_units(
        ["ad-hyperfusion", "ad-concat"], split_seeds=[0], versions=1, folds=1, warm_start="both"
    )
    order = [p.unit.method for p in planned]
    assert order.index("ad-tabular") < order.index("ad-hyperfusion")
    assert order.index("ad-imaging") < order.index("ad-hyperfusion")
    fused = next(p for p in planned if p.unit.method == "ad-hyperfusion")
    assert fused.warm_start_from == Unit("ad-tabular", 0, 0, 0)
    assert fused.warm_network_from == Unit("ad-imaging", 0, 0, 0)
    assert set(fused.needs) == {fused.warm_start_from, fused.warm_network_from}
    tabular_only = plan_units(["ad-film"], split_seeds=[0], versions=1, folds=1, warm_start="tabular")
    film = next(p for p in tabular_only if p.unit.method == "ad-film")
    assert film.warm_network_from is None and film.warm_start_from == Unit("ad-tabular", 0, 0, 0)
    cold = plan_units(["ad-film"], split_seeds=[0], versions=1, folds=1, warm_start="none")
    assert [p.unit.method for p in cold] == ["ad-film"] and cold[0].needs == ()


def test_a_warm_start_needs_the_members_width_in_the_fused_encoder():
    wide = {"ad-hyperfusion": {"embedding_dim": 4}}
    assert "ad-hyperfusion cannot be warm-started from ad-tabular" in warm_start_conflict(
        "ad-hyperfusion", "tabular", wide
    )
    assert warm_start_conflict("ad-hyperfusion", "tabular", {**wide, "ad-tabular": {"hidden": [4]}}) is None
    assert warm_start_conflict("ad-hyperfusion", "none", wide) is None  # nothing is copied
    assert warm_start_conflict("ad-late-fusion", "tabular", {"ad-tabular": {"hidden": [4]}}) is None
