"""hyperfusion.yamlio: YAML as plain data, with a key written twice refused by name and line."""

from __future__ import annotations

import pytest

from hyperfusion.config import ConfigError, load_config
from hyperfusion.data.manifest import read_spec
from hyperfusion.yamlio import DuplicateKeyError, load_yaml
from tests.faults import fault


def test_plain_data_and_merges_as_safe_load() -> None:
    assert load_yaml("a: 1\nb: [x, {c: 2}]\nd: 1e-3\n") == {"a": 1, "b": ["x", {"c": 2}], "d": "1e-3"}
    assert load_yaml("base: &b {a: 1, b: 2}\nk:\n  <<: *b\n  a: 3\n")["k"] == {"a": 3, "b": 2}
    with pytest.raises(Exception, match="could not determine a constructor"):
        load_yaml("!!python/object:os.system {}")


@fault(
    "configuration",
    "a key written twice in a config or manifest YAML (e.g. a second training: section)",
    "exit status 2 naming the file, the key and both lines (the last had silently won)",
)
def test_a_key_written_twice_is_refused(tmp_path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        "cohort: c.yaml\nmethods: [ad-imaging]\ntraining: {device: cpu, lr: 0.01}\n"
        "protocol: {versions: 1}\ntraining:\n  epochs: 2\n"
    )
    with pytest.raises(
        ConfigError, match=r"run\.yaml, line 5: key 'training' appears twice .*first on line 3"
    ):
        load_config(config)
    manifest = tmp_path / "cohort.yaml"
    manifest.write_text("table: t.csv\nsubject: id\ntarget: {column: y, task: regression, column: z}\n")
    with pytest.raises(DuplicateKeyError, match=r"cohort\.yaml, line 3: key 'column' appears twice"):
        read_spec(manifest)
