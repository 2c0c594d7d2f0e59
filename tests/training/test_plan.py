"""The plan of a run: which units train, compose or fit themselves, and what each waits for."""

from __future__ import annotations

from hyperfusion.training.plan import Unit, plan_units


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
