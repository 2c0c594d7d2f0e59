import pandas as pd
import pytest

from hyperfusion.cli import main
from tests.faults import fault


def test_cli_writes_a_cohort(tmp_path):
    out = tmp_path / "c"
    args = ["simulate", "ad", "--n", "4", "--voxel-size", "4", "--interaction", "0", "--seed", "1"]
    assert main([*args, "--template", "phantom", "--no-progress", "--out", str(out)]) == 0
    assert len(pd.read_csv(out / "ADNIMERGE.csv")) == 4


@fault("simulator", "--region box for the brain-age cohort", "exit status 2: for the ad cohort only")
def test_cli_rejects_box_for_brain_age(tmp_path, capsys):
    assert main(["simulate", "brain-age", "--n", "2", "--region", "box", "--out", str(tmp_path)]) == 2
    assert "for the ad cohort only" in capsys.readouterr().err


def test_cli_rejects_unknown_task(tmp_path):
    with pytest.raises(SystemExit):
        main(["simulate", "mnist", "--out", str(tmp_path)])
