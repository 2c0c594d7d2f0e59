"""What ``predict`` checks before it scores: where it may write, and whether the models have seen the subjects.

* ``--out`` may not be the table (or manifest) it reads, nor any file inside the run directory: writing the
  predictions there would destroy the input or a run's own file (``--out RUN/config.yaml``).
* A subject whose image *content* is that of one of the run's training or validation subjects (of the split seed
  whose models are applied) gets a warning: its prediction is not a held-out estimate. Content, not the subject id,
  decides: two cohorts may number different people alike, while a copied scan is the same scan under any name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from hyperfusion.data import Cohort, ImageCache, read_partitions
from hyperfusion.run.store import RunDirectory

log = logging.getLogger("hyperfusion")


def check_out(out: Path, run: RunDirectory, inputs: Iterable[Path]) -> Path:
    """``out`` if writing it destroys nothing ``predict`` reads or the run owns.

    Raises:
        ValueError: ``out`` is an input file, lies inside the run directory, or is a folder.
    """
    target = out.resolve()
    for source in inputs:
        if target == source.resolve():
            raise ValueError(
                f"--out {out} is the file predict reads ({source}); write the predictions elsewhere"
            )
    if target.is_relative_to(run.root.resolve()):
        raise ValueError(
            f"--out {out} lies inside the run directory {run.root}, whose files only `hyperfusion run` and "
            "`report` write; write the predictions elsewhere"
        )
    if target.is_dir():
        raise ValueError(f"--out {out} is a folder; name the CSV file to write")
    return out


def warn_if_seen(run: RunDirectory, cohort: Cohort, split_seed: int, test_partition: str) -> list[str]:
    """Warn (one line) about subjects whose image the split seed's models were trained or validated on.

    ``test_partition`` is the partitions file's value of the held-out rows (the last partition, or ``test``).
    Returns the subject ids warned about.
    """
    path = run.partitions(split_seed)
    if not path.is_file() or not run.fingerprint_path.is_file():
        return []
    fingerprint = run.cohort_fingerprint()
    table = read_partitions(path)
    partition = dict(zip(table["subject_id"].astype(str), table["partition"]))
    seen = {
        digest: key.split("#", 1)[0]
        for key, digest in fingerprint["images"].items()
        if str(partition.get(key.split("#", 1)[0])) != test_partition
    }
    cache = ImageCache(run.cache)
    hits = []
    for subject, image, line in zip(cohort.frame["subject_id"], cohort.frame["image"], cohort.frame["line"]):
        trained = seen.get(cache.digest(image))
        if trained is not None:
            hits.append(f"{subject} (line {line}, the image of training subject {trained})")
    if hits:
        log.warning(
            "%d subject(s) of %s are scans the run's models of split seed %d were trained or validated on "
            "(e.g. %s); their predictions are not held-out estimates",
            len(hits),
            cohort.table_path,
            split_seed,
            "; ".join(hits[:3]),
        )
    return [h.split(" ", 1)[0] for h in hits]
