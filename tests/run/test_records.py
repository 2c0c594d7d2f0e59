"""hyperfusion.run.records: sealed records read back only when whole, theirs, and unchanged."""

from __future__ import annotations

import json

import pytest

from hyperfusion.run.records import RecordError, TruncatedRecord, sealed, verified_json, write_sealed


def test_a_record_reads_back_as_written(tmp_path):
    path = write_sealed(
        tmp_path / "r.json", "unit record", {"method": "m", "fold": 1}, {"x": [1.5, None], "n": 3}
    )
    assert verified_json(path, "unit record", {"method": "m", "fold": 1}) == {"x": [1.5, None], "n": 3}
    assert json.loads(path.read_text())["seal"]["kind"] == "unit record"


def test_every_way_a_record_cannot_be_trusted_is_named(tmp_path):
    path = write_sealed(tmp_path / "r.json", "unit record", {"method": "m"}, {"x": 1})
    with pytest.raises(RecordError, match=r"is a 'unit record' record, not a 'cohort fingerprint'"):
        verified_json(path, "cohort fingerprint", {})
    with pytest.raises(RecordError, match=r"holds the unit record of method m, not of method other"):
        verified_json(path, "unit record", {"method": "other"})
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "x": 2}))
    with pytest.raises(RecordError, match="changed after it was written"):
        verified_json(path, "unit record", {"method": "m"})
    path.write_text('{"x": 1, "se')
    with pytest.raises(TruncatedRecord, match=r"r\.json is truncated or not JSON"):
        verified_json(path, "unit record", {"method": "m"})


def test_a_field_named_seal_is_refused():
    with pytest.raises(ValueError, match="may not be named 'seal'"):
        sealed("k", {}, {"seal": 1})
