"""Parse and validate a mapping file, keeping YAML line numbers for the error messages.

The file is composed into YAML nodes (``yaml.compose``) rather than loaded into
plain dicts, so every error names the line of the offending key or value.  The
whole file is checked at load time: unknown claims, keys, transforms and options,
bad date formats, defaults that are not valid pivot values, duplicate keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mappings.pivot import PIVOT_CLAIMS, check_claim
from mappings.transforms import TRANSFORMS, Transform

RULE_KEYS = ("from", "transform", "default", "required")
_STR = "tag:yaml.org,2002:str"
_BOOL = "tag:yaml.org,2002:bool"


class MappingError(Exception):
    """An invalid mapping file: ``file``, 1-based ``line`` and ``message``."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file = file
        self.line = line
        self.message = message

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Step:
    transform: Transform
    options: dict[str, Any]

    @property
    def name(self) -> str:
        return self.transform.name


@dataclass(frozen=True)
class ClaimRule:
    claim: str
    sources: tuple[str, ...]
    steps: tuple[Step, ...]
    default: str | None
    required: bool
    line: int


class _Parser:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, node: Node, message: str) -> MappingError:
        return MappingError(self.file, node.start_mark.line + 1, message)

    def items(self, node: MappingNode) -> Iterator[tuple[str, ScalarNode, Node]]:
        seen: set[str] = set()
        for key, value in node.value:
            if not (isinstance(key, ScalarNode) and key.tag == _STR):
                raise self.fail(key, "keys must be plain names")
            if key.value in seen:
                raise self.fail(key, f"duplicate key {key.value!r}")
            seen.add(key.value)
            yield key.value, key, value

    def string(self, node: Node, what: str) -> str:
        if not (isinstance(node, ScalarNode) and node.tag == _STR and node.value.strip()):
            raise self.fail(node, f"{what} must be a non-empty string")
        return node.value

    def strings(self, node: Node, what: str) -> list[Node]:
        """A scalar or a list of scalars, as nodes (to keep each one's line)."""
        if isinstance(node, SequenceNode):
            if not node.value:
                raise self.fail(node, f"{what} must not be empty")
            return list(node.value)
        return [node]

    def rules(self, root: Node | None) -> dict[str, ClaimRule]:
        if root is None:
            raise MappingError(self.file, 1, "empty mapping file: map at least one pivot claim")
        if not isinstance(root, MappingNode):
            raise self.fail(root, "a mapping file maps pivot claims to rules (claim: {from: [...]})")
        rules = {}
        for claim, key, value in self.items(root):
            if claim not in PIVOT_CLAIMS:
                raise self.fail(key, f"unknown pivot claim {claim!r}; pivot claims: {', '.join(PIVOT_CLAIMS)}")
            rules[claim] = self.rule(claim, key, value)
        return rules

    def rule(self, claim: str, key: ScalarNode, node: Node) -> ClaimRule:
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{claim}: expected a rule with keys {', '.join(RULE_KEYS)}")
        sources: list[str] = []
        steps: list[Step] = []
        default, required = None, False
        for name, k, value in self.items(node):
            if name == "from":
                sources = [self.string(n, "each 'from' entry (an attribute name)") for n in self.strings(value, "from")]
            elif name == "transform":
                steps = [self.step(n) for n in self.strings(value, "transform")]
            elif name == "default":
                default = self.default(claim, value)
            elif name == "required":
                if not (isinstance(value, ScalarNode) and value.tag == _BOOL):
                    raise self.fail(value, "required must be true or false")
                required = bool(_construct(value))
            else:
                raise self.fail(k, f"{claim}: unknown key {name!r}; keys: {', '.join(RULE_KEYS)}")
        if not sources and default is None:
            raise self.fail(key, f"{claim}: needs 'from' (attribute names) or a 'default'")
        return ClaimRule(claim, tuple(sources), tuple(steps), default, required, key.start_mark.line + 1)

    def default(self, claim: str, node: Node) -> str:
        if not (isinstance(node, ScalarNode) and node.tag == _STR):
            raise self.fail(node, "default must be a quoted string, e.g. default: '99100'")
        why = check_claim(claim, node.value)
        if why:
            raise self.fail(node, f"default {node.value!r} for {claim} {why}")
        return node.value

    def step(self, node: Node) -> Step:
        options_node: Node | None = None
        if isinstance(node, MappingNode) and len(node.value) == 1:
            node, options_node = node.value[0]
        name = self.string(node, "a transform (a name, or name: {options})")
        transform = TRANSFORMS.get(name)
        if transform is None:
            raise self.fail(node, f"unknown transform {name!r}; transforms: {', '.join(TRANSFORMS)}")
        options = transform.defaults()
        if options_node is not None and not (isinstance(options_node, ScalarNode) and options_node.tag.endswith(":null")):
            if not isinstance(options_node, MappingNode):
                raise self.fail(options_node, f"options of {name!r} must be a mapping, e.g. {{formats: ['%d/%m/%Y']}}")
            for option, key, value in self.items(options_node):
                try:
                    options[option] = transform.check_option(option, _construct(value))
                except ValueError as exc:
                    raise self.fail(key if option not in transform.options else value, str(exc)) from None
        return Step(transform, options)


def _construct(node: Node) -> Any:
    """The plain Python value of a node (safe constructors only)."""
    return yaml.SafeLoader("").construct_object(node, deep=True)


def load_rules(path: str | Path) -> dict[str, ClaimRule]:
    """The claim rules of a mapping file; raises MappingError naming the file and line."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError(file, 0, "no such mapping file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(file, 0, f"cannot read the mapping file: {exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise MappingError(file, mark.line + 1 if mark else 1, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise MappingError(file, 1, f"invalid YAML: {exc}") from None
    return _Parser(file).rules(root)
