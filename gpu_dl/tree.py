"""``keras.tree``: functions over nested structures of Python containers.

The nodes are lists, tuples, namedtuples, ``collections.deque``, dicts (their values in sorted key order),
``collections.defaultdict`` (sorted keys too) and ``collections.OrderedDict`` (its own order); anything else,
None included, is a leaf. Dicts of the three kinds are the same structure when their keys are; lists, tuples,
namedtuples and deques are not (``assert_same_paths`` compares paths only, where they are). A path is a tuple
of sequence indices and mapping keys, as Keras gives it.
"""
from __future__ import annotations

import collections

__all__ = ["MAP_TO_NONE", "assert_same_paths", "assert_same_structure", "flatten", "flatten_with_path",
           "is_nested", "lists_to_tuples", "map_shape_structure", "map_structure", "map_structure_up_to",
           "pack_sequence_as", "traverse"]


class MAP_TO_NONE:
    """Returned by a ``traverse`` function to put None in place of a sub-structure."""


def _is_namedtuple(value):
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def _is_mapping(value):
    return isinstance(value, dict)       # dict, OrderedDict, defaultdict


def is_nested(structure):
    """Whether ``structure`` is a node (a sequence or mapping of the kinds above), not a leaf."""
    return isinstance(structure, (list, tuple, dict, collections.deque))


def _keys(mapping):
    if type(mapping) is collections.OrderedDict:
        return list(mapping)
    try:
        return sorted(mapping)
    except TypeError:
        raise TypeError(f"keras.tree: dict keys must be sortable, got {list(mapping)!r:.200}.") from None


def _children(node):
    """``[(path entry, child)]`` of a node, in flattening order."""
    if _is_mapping(node):
        return [(k, node[k]) for k in _keys(node)]
    return list(enumerate(node))


def _rebuild(node, values):
    """A node like ``node`` holding ``values`` (in ``_children`` order)."""
    if _is_mapping(node):
        pairs = dict(zip(_keys(node), values))
        ordered = [(k, pairs[k]) for k in node]       # the node's own key order
        if isinstance(node, collections.defaultdict):
            return type(node)(node.default_factory, ordered)
        return type(node)(ordered)
    if _is_namedtuple(node):
        return type(node)(*values)
    if isinstance(node, collections.deque):
        return collections.deque(values, maxlen=node.maxlen)
    return type(node)(values)


def flatten(structure):
    """The leaves of ``structure``, depth first (``flatten(None) == [None]``, ``flatten(1) == [1]``)."""
    return [leaf for _, leaf in flatten_with_path(structure)]


def flatten_with_path(structure):
    """``[(path, leaf)]`` of ``structure``, depth first; a path is a tuple of indices and keys."""
    out = []

    def visit(node, path):
        if not is_nested(node):
            out.append((path, node))
            return
        for key, child in _children(node):
            visit(child, path + (key,))

    visit(structure, ())
    return out


def _kind(node):
    """What a node is for structure comparisons: the three dict types are one kind."""
    if _is_mapping(node):
        return dict
    return type(node)


def _check_same_node(a, b):
    if _kind(a) is not _kind(b):
        raise ValueError(f"Structures don't have the same nested structure: a {type(a).__name__} against a "
                         f"{type(b).__name__} ({a!r:.100} and {b!r:.100}).")
    if _is_mapping(a):
        if set(a) != set(b):
            raise ValueError(f"Structures don't have the same nested structure: dict keys {sorted(map(str, a))} "
                             f"against {sorted(map(str, b))}.")
    elif len(a) != len(b):
        raise ValueError(f"Structures don't have the same nested structure: {len(a)} items against {len(b)} "
                         f"({a!r:.100} and {b!r:.100}).")


def assert_same_structure(a, b, check_types=None):
    """Raise a ValueError unless ``a`` and ``b`` are nested alike (same node kinds, lengths and keys); the leaves
    may differ. ``check_types`` is Keras's deprecated argument, without effect."""
    if is_nested(a) != is_nested(b):
        raise ValueError(f"Structures don't have the same nested structure: {a!r:.100} and {b!r:.100}.")
    if not is_nested(a):
        return
    _check_same_node(a, b)
    for key, child in _children(a):
        assert_same_structure(child, b[key])


def assert_same_paths(a, b):
    """Raise a ValueError unless ``a`` and ``b`` have the same set of leaf paths (so a list and a tuple of the same
    length match)."""
    a_paths = {path for path, _ in flatten_with_path(a)}
    b_paths = {path for path, _ in flatten_with_path(b)}
    if a_paths != b_paths:
        msg = "`a` and `b` don't have the same paths."
        if a_paths - b_paths:
            msg += f"\nPaths in `a` missing in `b`:\n{a_paths - b_paths}"
        if b_paths - a_paths:
            msg += f"\nPaths in `b` missing in `a`:\n{b_paths - a_paths}"
        raise ValueError(msg)


def map_structure(func, *structures, none_is_leaf=True):
    """``func`` applied to the leaves of ``structures`` (nested alike, see ``assert_same_structure``), in a
    structure like the first one. With ``none_is_leaf=False`` None leaves stay None without a call (all the
    structures must have None there)."""
    if not structures:
        raise ValueError("Must provide at least one structure")
    if not callable(func):
        raise TypeError(f"`func` must be callable, got {func!r}.")
    for other in structures[1:]:
        assert_same_structure(structures[0], other)

    def leaf(*args):
        if not none_is_leaf and args[0] is None:
            if not all(a is None for a in args):
                raise ValueError(f"Structure mismatch: some arguments are None, others are not. Received arguments: "
                                 f"{args}.")
            return None
        return func(*args)

    def visit(nodes):
        first = nodes[0]
        if not is_nested(first):
            return leaf(*nodes)
        keys = [k for k, _ in _children(first)]
        values = [visit([n[k] for n in nodes]) for k in keys]
        return _rebuild(first, values)

    return visit(list(structures))


def map_structure_up_to(shallow_structure, func, *structures):
    """``func`` applied to what ``structures`` hold at each leaf of ``shallow_structure`` (sub-structures there
    are passed whole), in the shallow structure's layout."""
    if not structures:
        raise ValueError("Must provide at least one structure")

    def visit(shallow, nodes):
        if not is_nested(shallow):
            return func(*nodes)
        for node in nodes:
            if not is_nested(node):
                raise ValueError(f"Structures don't have the same nested structure: {node!r:.100} is a leaf where "
                                 f"the shallow structure has {shallow!r:.100}.")
            _check_same_node(shallow, node)
        keys = [k for k, _ in _children(shallow)]
        return _rebuild(shallow, [visit(shallow[k], [n[k] for n in nodes]) for k in keys])

    return visit(shallow_structure, list(structures))


def pack_sequence_as(structure, flat_sequence):
    """``flat_sequence``'s items put at the leaves of ``structure`` (in ``flatten`` order)."""
    if isinstance(flat_sequence, (str, bytes)) or not hasattr(flat_sequence, "__len__"):
        raise TypeError(f"`flat_sequence` must be a sequence, got {type(flat_sequence).__name__}.")
    flat = list(flat_sequence)
    count = len(flatten(structure))
    if len(flat) != count:
        raise ValueError(f"The structure holds {count} leaves but `flat_sequence` has {len(flat)} items: "
                         f"structure {structure!r:.200}.")
    items = iter(flat)

    def visit(node):
        if not is_nested(node):
            return next(items)
        return _rebuild(node, [visit(child) for _, child in _children(node)])

    return visit(structure)


def traverse(func, structure, top_down=True):
    """Keras's ``traverse``: ``func`` called on every sub-structure (leaves included), parents first with
    ``top_down`` (a result other than None replaces the sub-structure and stops the descent), else children
    first (a result other than None replaces it); ``MAP_TO_NONE`` puts None there."""
    if not callable(func):
        raise TypeError(f"`func` must be callable, got {func!r}.")

    def children_of(node):
        if not is_nested(node):
            return node
        return _rebuild(node, [visit(child) for _, child in _children(node)])

    def visit(node):
        if top_down:
            result = func(node)
            if result is None:
                return children_of(node)
        else:
            node = children_of(node)
            result = func(node)
            if result is None:
                return node
        return None if result is MAP_TO_NONE else result

    return visit(structure)


def lists_to_tuples(structure):
    """``structure`` with every list made a tuple."""
    return traverse(lambda node: tuple(node) if isinstance(node, list) else None, structure, top_down=False)


def _is_shape(value):
    return isinstance(value, (list, tuple)) and all(isinstance(e, (int, type(None))) for e in value)


def map_shape_structure(func, structure):
    """``func`` applied to each shape (a list or tuple of ints and None) of a nested structure of shapes."""
    if _is_shape(structure) or not is_nested(structure):
        return func(structure)
    return _rebuild(structure, [map_shape_structure(func, child) for _, child in _children(structure)])
