"""Load one YAML document with limits that keep hostile input cheap.

PyYAML's safe loader builds only plain data, but three inputs still cost far more than
their size or never finish. These are aliases that repeat collections ("billion laughs"),
an alias inside the collection that it names (a recursive value), and integers longer
than CPython's int-string limit of 4,300 decimal digits (the check counts the digits of
an integer in any base). `load_yaml` composes the node tree, checks these in one pass
over the distinct nodes, and only then constructs Python data. Every failure is a
one-line `SpecError` with the file, line and, where known, the key path.
"""

from __future__ import annotations

from typing import Any

import yaml

from metagen_jax.specs.errors import KeyPath, SpecError

# Nodes that aliases may add beyond the nodes written in the file. Reusing an anchored
# component or setting a few times stays far below this, while a document of nested
# aliases ("billion laughs") exceeds it within a few levels.
MAX_ALIAS_NODES = 10_000
# CPython's default int-string limit (sys.int_info.default_max_str_digits). Longer decimal
# integers make PyYAML's int() call raise ValueError, and json.dumps fails on them too.
MAX_INT_DIGITS = 4300

_INT_TAG = "tag:yaml.org,2002:int"
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str, file: str) -> tuple[Any, yaml.Node | None]:
    """Parse one YAML document and return its data and its composed node tree.

    Both are None for a document with only comments or blank lines.

    Raises:
        SpecError: for invalid YAML, more than one document, nesting too deep, aliases
            that expand past MAX_ALIAS_NODES or refer to their own collection, or an
            integer of more than MAX_INT_DIGITS digits.
    """
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_nodes(node, file)
        return loader.construct_document(node), node
    except yaml.MarkedYAMLError as error:
        raise _yaml_error(error, file) from None
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1
        code = error.character if isinstance(error.character, int) else ord(error.character)
        raise SpecError(
            f"invalid YAML: the control character U+{code:04X} is not allowed in a YAML file.",
            file=file,
            line=line,
        ) from None
    except yaml.YAMLError as error:
        raise SpecError(f"invalid YAML: {error}", file=file) from None
    except RecursionError:
        raise SpecError("invalid YAML: the document is nested too deeply.", file=file) from None
    finally:
        loader.dispose()


def _check_nodes(root: yaml.Node, file: str) -> None:
    """Walk the distinct nodes once, depth first, counting each node's size with aliases expanded.

    A node that is reached again while it is still open is its own ancestor, which is
    a recursive alias. Sizes are exact Python ints, so deep alias chains cannot overflow.
    """
    expanded: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            size = 1 + sum(expanded[id(child)] for child in _children(node))
            expanded[key] = size
            # Every node below this one is finished, so len(expanded) is at least the number
            # of distinct nodes below it. The difference never overstates what aliases add.
            if size - len(expanded) > MAX_ALIAS_NODES:
                raise _node_error(
                    root, node, file,
                    f"YAML aliases (*name) expand this value to more than {MAX_ALIAS_NODES:,} "
                    "nodes beyond those written in the file, the maximum allowed. Write "
                    "the value out or use fewer nested aliases.",
                )
            continue
        if key in expanded:
            continue
        if key in open_nodes:
            raise _node_error(
                root, node, file,
                "a YAML alias (*name) refers to the collection that contains it, so the "
                "value never ends. Remove the recursive alias.",
            )
        if isinstance(node, yaml.ScalarNode):
            _check_scalar(root, node, file)
            expanded[key] = 1
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in reversed(_children(node)):
            # Finish scalars here, without a trip through the stack, because most nodes are scalars.
            if isinstance(child, yaml.ScalarNode):
                _check_scalar(root, child, file)
                expanded[id(child)] = 1
            else:
                stack.append((child, False))


def _check_scalar(root: yaml.Node, node: yaml.ScalarNode, file: str) -> None:
    if node.tag != _INT_TAG:
        return
    digits = sum(character.isdigit() for character in node.value)
    if digits > MAX_INT_DIGITS:
        raise _node_error(
            root, node, file,
            f"invalid integer: it has {digits:,} digits, more than the {MAX_INT_DIGITS:,} "
            "that a number may have.",
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _node_error(root: yaml.Node, target: yaml.Node, file: str, reason: str) -> SpecError:
    return SpecError(
        reason,
        file=file,
        line=target.start_mark.line + 1,
        key_path=_key_path_to(root, target) or None,
    )


def _key_path_to(root: yaml.Node, target: yaml.Node) -> KeyPath:
    """Return the first key path that reaches `target`, or () when it is the root or a key."""
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, KeyPath]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in reversed(node.value):
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                stack.append((value_node, (*path, name)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, index)) for index, item in reversed(list(enumerate(node.value))))
    return ()


def _yaml_error(error: yaml.MarkedYAMLError, file: str) -> SpecError:
    mark = error.problem_mark or error.context_mark
    problem = error.problem or error.context or "the document does not parse"
    if error.context and error.problem:
        problem = f"{problem} ({error.context})"
    column = f" (column {mark.column + 1})" if mark is not None else ""
    return SpecError(
        f"invalid YAML: {problem}{column}.",
        file=file,
        line=mark.line + 1 if mark is not None else None,
    )
