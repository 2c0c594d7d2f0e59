"""The plan of a run: every unit of work (one model) and what it waits for.

A run is split seeds × versions × methods × folds (classification) or × one split (regression). Some units need
others first:

- with ``training.warm_start: tabular``, every method with a tabular encoder (HyperFusion's embedding, the FiLM/DAFT
  conditioner's encoder, concatenation's encoder) starts from the trained tabular-only model of the same
  (split seed, version, fold) — the paper's §4.3.6 for HyperFusion, given here to every method alike; with
  ``both`` each also starts its image network from the trained imaging-only model of the same unit (a hyperized
  layer's constant terms take that model's weights), so fusion begins where both modalities already are;
- late fusion is not trained: it combines the separately trained imaging-only and tabular-only models of the same
  (split seed, version, fold) (paper App. B; Prabhu et al. 2022).

Those helper models join the plan even when the config does not list them; they are trained once and shared. The
plan is pure data: it decides nothing about where or how units run (that is the executor's job).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hyperfusion.models import create_model, model_info
from hyperfusion.models.registry import family_member

Kind = Literal["train", "compose", "fit"]
WARM_STARTS = ("tabular", "both", "none")


@dataclass(frozen=True, order=True)
class Unit:
    """One model: a method on one split seed, version (initialisation) and fold."""

    method: str
    split_seed: int
    version: int
    fold: int

    @property
    def key(self) -> str:
        return f"s{self.split_seed}_v{self.version}_f{self.fold}"

    @property
    def name(self) -> str:
        return f"{self.method} {self.key}"

    @property
    def seed(self) -> int:
        """The initialisation seed: shared by every method of a (split seed, version, fold), so runs pair."""
        return 10_000 * self.split_seed + 100 * self.version + self.fold

    def of(self, method: str) -> Unit:
        """The unit of another method on the same split seed, version and fold."""
        return Unit(method, self.split_seed, self.version, self.fold)


@dataclass(frozen=True)
class PlannedUnit:
    """A unit with what it needs: ``kind`` says whether it trains, composes trained members, or fits itself in
    closed form (a model registered with ``fit="closed_form"``, such as the crop reader)."""

    unit: Unit
    kind: Kind
    needs: tuple[Unit, ...] = ()
    warm_start_from: Unit | None = None  # the tabular-only unit whose encoder initialises this one
    warm_network_from: Unit | None = None  # the imaging-only unit whose image network initialises this one
    members: Mapping[str, Unit] = field(default_factory=dict)  # compose: role -> member unit


@functools.lru_cache(maxsize=256)
def _has_tabular_encoder(method: str, kwargs_items: tuple[tuple[str, Any], ...]) -> bool:
    from hyperfusion.nn import tabular_encoders

    return bool(tabular_encoders(create_model(method, **dict(kwargs_items))))


def has_tabular_encoder(method: str, model_kwargs: Mapping[str, Any] | None = None) -> bool:
    """Whether ``method`` reads the tabular record through an encoder that warm start can initialise."""
    info = model_info(method)
    if info.fusion in ("none", "late") or not info.uses_tabular:
        return False
    items = tuple(sorted((k, _hashable(v)) for k, v in (model_kwargs or {}).items()))
    return _has_tabular_encoder(method, items)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def tabular_encoder_of(tabular_model: Any) -> Any:
    """The hidden layers of a tabular-only model: the encoder warm start copies into a fused model."""
    network = getattr(tabular_model, "network", tabular_model)
    encoder = getattr(network, "embedding", None)
    if encoder is None:
        raise ValueError(f"{type(tabular_model).__name__} has no tabular encoder to warm-start from")
    return encoder


def warm_start_conflict(method: str, warm_start: str, kwargs: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Why ``method``'s tabular encoder cannot take its tabular member's trained encoder (None: it can).

    The encoder a fused model is warm-started from is the tabular-only model's hidden layers, so the fused model's
    embedding width must be the member's hidden width; a mismatch (an ``embedding_dim`` set for one and not the
    other) would otherwise surface only when the first fused model starts training.
    """
    tabular, _ = warm_sources(Unit(method, 0, 0, 0), warm_start, kwargs)
    if tabular is None:
        return None
    items = tuple(sorted((k, _hashable(v)) for k, v in (kwargs.get(method) or {}).items()))
    member = tuple(sorted((k, _hashable(v)) for k, v in (kwargs.get(tabular.method) or {}).items()))
    return _warm_start_conflict(method, items, tabular.method, member)


@functools.lru_cache(maxsize=256)
def _warm_start_conflict(
    method: str, items: tuple[tuple[str, Any], ...], member: str, member_items: tuple[tuple[str, Any], ...]
) -> str | None:
    from hyperfusion.nn import warm_start_

    try:  # both built at the registry's default input width: only the configured widths can differ
        warm_start_(
            create_model(method, **dict(items)),
            tabular_encoder_of(create_model(member, **dict(member_items))),
        )
    except ValueError as error:
        return f"{method} cannot be warm-started from {member} ({error})"
    return None


def plan_units(
    methods: Iterable[str],
    *,
    split_seeds: Iterable[int],
    versions: int,
    folds: int,
    warm_start: str,
    model_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[PlannedUnit]:
    """Every unit of a run in an order that respects dependencies (helpers first within each fold).

    Args:
        methods: the methods the config compares.
        split_seeds, versions, folds: the protocol's grid (``folds=1`` for regression).
        warm_start: ``"tabular"`` (encoders from the tabular-only model), ``"both"`` (and the image network from
            the imaging-only model) or ``"none"``.
        model_kwargs: per method, the keyword arguments its model is built with (to tell whether it has an encoder).

    Raises:
        ValueError: late fusion in a family without imaging-only and tabular-only models.
    """
    if warm_start not in WARM_STARTS:
        raise ValueError(f"warm_start must be one of {WARM_STARTS}, got {warm_start!r}")
    methods = list(dict.fromkeys(methods))
    kwargs = model_kwargs or {}
    order: list[str] = []
    for method in methods:
        info = model_info(method)
        needs: list[str] = []
        if info.fusion == "late":
            members = [family_member(method, "imaging"), family_member(method, "tabular")]
            if None in members:
                raise ValueError(
                    f"late fusion {method!r} needs imaging-only and tabular-only models of its family "
                    f"{info.family!r}"
                )
            needs += members  # type: ignore[arg-type]
        else:
            needs += [twin.method for twin in warm_sources(Unit(method, 0, 0, 0), warm_start, kwargs) if twin]
        order += [*needs, method]
    order = list(dict.fromkeys(order))  # each method once, its helpers before it

    planned = []
    for split_seed in split_seeds:
        for version in range(versions):
            for fold in range(folds):
                for method in order:
                    planned.append(_planned(Unit(method, split_seed, version, fold), warm_start, kwargs))
    return planned


def _planned(unit: Unit, warm_start: str, kwargs: Mapping[str, Mapping[str, Any]]) -> PlannedUnit:
    info = model_info(unit.method)
    if info.fit == "closed_form":
        return PlannedUnit(unit, "fit")
    if info.fusion == "late":
        members = {
            "imaging": unit.of(family_member(unit.method, "imaging")),  # type: ignore[arg-type]
            "tabular": unit.of(family_member(unit.method, "tabular")),  # type: ignore[arg-type]
        }
        return PlannedUnit(unit, "compose", needs=tuple(members.values()), members=members)
    tabular, imaging = warm_sources(unit, warm_start, kwargs)
    needs = tuple(u for u in (tabular, imaging) if u is not None)
    return PlannedUnit(unit, "train", needs=needs, warm_start_from=tabular, warm_network_from=imaging)


def warm_sources(
    unit: Unit, warm_start: str, kwargs: Mapping[str, Mapping[str, Any]]
) -> tuple[Unit | None, Unit | None]:
    """The tabular-only and imaging-only units a fused unit starts from under ``warm_start`` (None: not warm)."""
    if warm_start == "none" or not has_tabular_encoder(unit.method, kwargs.get(unit.method)):
        return None, None
    tabular = family_member(unit.method, "tabular")
    imaging = family_member(unit.method, "imaging") if warm_start == "both" else None
    return (unit.of(tabular) if tabular else None), (unit.of(imaging) if imaging else None)


def helper_methods(planned: Iterable[PlannedUnit], methods: Iterable[str]) -> list[str]:
    """Methods in the plan that the config did not ask for (trained only because others need them)."""
    asked = set(methods)
    return list(dict.fromkeys(p.unit.method for p in planned if p.unit.method not in asked))
