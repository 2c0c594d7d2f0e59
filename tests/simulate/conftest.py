"""Shared, session-cached fixtures: the phantom anatomy at 2 mm and its 4 mm whole-brain renderer."""

from __future__ import annotations

import pytest

from hyperfusion.simulate.anatomy import build_anatomy
from hyperfusion.simulate.grid import whole_brain_grid
from hyperfusion.simulate.render import build_renderer


@pytest.fixture(scope="session")
def anatomy():
    return build_anatomy("phantom", phantom_mm=2.0)


@pytest.fixture(scope="session")
def renderer(anatomy):
    return build_renderer(whole_brain_grid(4.0), "phantom", phantom_mm=2.0)
