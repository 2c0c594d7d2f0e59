"""Does a fused survival model use both of its members? Read from a finished run's predictions.csv.

The report says whether a fusion is below a member; this says what it resembles. Per method: the test Harrell C,
and the Pearson correlation of its risks with the imaging-only and tabular-only risks on the same subjects; then
the C of the equal-weight sum of the two members' standardised risks, a combination no fused model should lose to.

    python benchmarks/survival_members.py survival-run [--imaging ad-imaging --tabular ad-tabular]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from hyperfusion.evaluation.survival import harrell_c


def member_table(predictions: pd.DataFrame, imaging: str, tabular: str) -> pd.DataFrame:
    """One row per method (plus the members' standardised sum): C and the correlations with each member."""
    risks = predictions.pivot_table(index="subject_id", columns="method", values="predicted")
    truth = predictions.drop_duplicates("subject_id").set_index("subject_id").loc[risks.index]
    time, event = truth["time"].to_numpy(float), truth["event"].to_numpy(bool)

    def standardised(column: str) -> pd.Series:
        return (risks[column] - risks[column].mean()) / risks[column].std()

    risks["z(imaging) + z(tabular)"] = standardised(imaging) + standardised(tabular)
    rows = []
    for method in risks.columns:
        if risks[method].std() == 0:  # no skill: one risk for everyone, no correlation to speak of
            continue
        rows.append(
            {
                "method": method,
                "harrell_c": harrell_c(risks[method].to_numpy(), time, event),
                "corr_imaging": risks[method].corr(risks[imaging]),
                "corr_tabular": risks[method].corr(risks[tabular]),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished survival run directory")
    parser.add_argument("--imaging", default="ad-imaging")
    parser.add_argument("--tabular", default="ad-tabular")
    args = parser.parse_args()
    predictions = pd.read_csv(args.run / "predictions.csv")
    print(member_table(predictions, args.imaging, args.tabular).to_string(index=False, float_format="%.3f"))


if __name__ == "__main__":
    main()
