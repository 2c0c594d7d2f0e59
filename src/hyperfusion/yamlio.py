"""YAML read strictly: a key written twice in one mapping is an error naming it and both lines.

PyYAML's ``safe_load`` keeps the last of two equal keys without a word, so a second ``training:`` section
silently resets the device, batch size and learning rate of the first. Every YAML file the package reads
(configs, manifests, a run's saved configuration) goes through `load_yaml`, which is ``safe_load`` (plain data,
never objects) with that one check added.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode

from hyperfusion.text import shown

_MERGE = "tag:yaml.org,2002:merge"


class DuplicateKeyError(ValueError):
    """A mapping in a YAML file names the same key twice."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (``<<`` merges may be overridden, as YAML says)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
                seen.setdefault(key, line)
            except TypeError:  # an unhashable key: SafeLoader refuses it below
                continue
            if first is not None:
                raise DuplicateKeyError(
                    f"{self.name}, line {line}: key {shown(key)} appears twice in one mapping (first on line "
                    f"{first}); the second would silently replace the first — keep one"
                )
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, source: str = "<yaml>") -> Any:
    """Parse ``text`` as plain YAML data (``safe_load``), refusing duplicate keys.

    Raises:
        DuplicateKeyError: a mapping with a key twice, naming ``source``, the key and both lines.
        yaml.YAMLError: text that is not YAML.
    """
    loader = _UniqueKeyLoader(text)
    loader.name = source
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
