"""Code versions derived from source: a function's version is a digest of its own code and of the
project code it reaches (functions, classes, constants and the types of its parameters), followed
transitively. Comments, formatting and docstrings do not count, so only a change that can change
a result makes what was built from it stale.

Pure: no Dagster here. `graph.py` gives every asset the version of its compute function.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Iterable

PROJECT_PACKAGES = ("odyssey", "resources", "assets")
DIGEST_CHARS = 12

SourceOf = Callable[[object], str]


def _project_module(name: str | None, packages: Iterable[str]) -> bool:
    return bool(name) and any(name == p or name.startswith(p + ".") for p in packages)


def canonical_source(source: str) -> str:
    """The code of `source` without comments, formatting or docstrings (an AST dump)."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _constant_text(value: object) -> str | None:
    """A stable text for a module-level constant, or None when it is not plain data."""
    if value is None or isinstance(value, (str, bytes, int, float, bool)):
        return repr(value)
    if isinstance(value, (set, frozenset)):
        items = [_constant_text(v) for v in value]
        return None if None in items else "{" + ",".join(sorted(items)) + "}"
    if isinstance(value, (tuple, list)):
        items = [_constant_text(v) for v in value]
        return None if None in items else "[" + ",".join(items) + "]"
    if isinstance(value, dict):
        items = {repr(k): _constant_text(v) for k, v in value.items()}
        return None if None in items.values() else json.dumps(items, sort_keys=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _constant_text(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return None if None in fields.values() else type(value).__qualname__ + json.dumps(fields, sort_keys=True)
    return None


def _names(code: types.CodeType) -> set[str]:
    """Every global or attribute name the code (and its nested functions) refers to."""
    found = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _names(const)
    return found


class CodeVersions:
    """Digests of project functions and classes, memoised for one pass over the graph.

    `source_of` returns an object's source text (`inspect.getsource` by default); a test passes
    one that edits a function to prove which versions follow.
    """

    def __init__(self, source_of: SourceOf | None = None, packages: Iterable[str] = PROJECT_PACKAGES):
        self.source_of = source_of or inspect.getsource
        self.packages = tuple(packages)
        self._canonical: dict[int, str] = {}
        self._refs: dict[int, list[tuple[str, object]]] = {}
        self._modules: dict[str, ast.Module] = {}

    def _is_project(self, obj: object) -> bool:
        return _project_module(getattr(obj, "__module__", None), self.packages)

    def _module_tree(self, name: str) -> ast.Module:
        if name not in self._modules:
            self._modules[name] = ast.parse(self.source_of(sys.modules[name]))
        return self._modules[name]

    def _lambda_code(self, function: types.FunctionType) -> str:
        """A lambda's own expression (not the statement around it), found in its module's tree,
        with the values its defaults bound (a loop variable)."""
        line = function.__code__.co_firstlineno
        nodes = [n for n in ast.walk(self._module_tree(function.__module__))
                 if isinstance(n, ast.Lambda) and n.lineno == line]
        defaults = [_constant_text(v) or type(v).__qualname__ for v in function.__defaults__ or ()]
        return "|".join(ast.dump(n, annotate_fields=False) for n in nodes) + repr(defaults)

    def _canonical_of(self, obj: object) -> str:
        key = id(obj)
        if key not in self._canonical:
            try:
                if isinstance(obj, types.FunctionType) and obj.__name__ == "<lambda>":
                    text = self._lambda_code(obj)
                else:
                    text = canonical_source(self.source_of(obj))
            except (OSError, TypeError):
                # made at run time (a settings-override config class): its schema is its code
                schema = getattr(obj, "model_json_schema", None)
                text = json.dumps(schema(), sort_keys=True, default=str) if schema else _qualified(obj)
            self._canonical[key] = text
        return self._canonical[key]

    def _references(self, obj: object) -> list[tuple[str, object]]:
        key = id(obj)
        if key not in self._refs:
            self._refs[key] = self._find_references(obj)
        return self._refs[key]

    def _find_references(self, obj: object) -> list[tuple[str, object]]:
        """The project objects (and constant texts) that a function or class refers to."""
        functions: list[types.FunctionType] = []
        annotations: list[object] = []
        module = sys.modules.get(obj.__module__)
        scope_of_class = vars(module) if module else {}
        if isinstance(obj, type):
            for member in vars(obj).values():
                member = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                if isinstance(member, property):
                    functions += [f for f in (member.fget, member.fset) if f is not None]
                elif isinstance(member, types.FunctionType):
                    functions.append(member)
            annotations += [_resolve(a, scope_of_class) for a in getattr(obj, "__annotations__", {}).values()]
            annotations += [b for b in obj.__bases__ if self._is_project(b)]
        else:
            functions.append(obj)
        found: dict[str, object] = {}
        for function in functions:
            function = inspect.unwrap(function)
            scope = function.__globals__
            annotations += [_resolve(a, scope) for a in getattr(function, "__annotations__", {}).values()]
            if "<" not in function.__qualname__:  # a lambda's defaults are part of its code text
                for index, value in enumerate(function.__defaults__ or ()):
                    self._add(found, f"{_qualified(function)}.<default {index}>", value)
                for parameter, value in sorted((function.__kwdefaults__ or {}).items()):
                    self._add(found, f"{_qualified(function)}.<default {parameter}>", value)
            names = _names(function.__code__)
            for name in sorted(names):
                if name in scope:
                    value = scope[name]
                elif _project_module(name, self.packages):
                    # imported inside the function (`from odyssey.policy import train_ppo` or `from
                    # odyssey import policy`, so that loading the code location does not import
                    # torch): followed as if imported at the top
                    value = importlib.import_module(name)
                else:
                    continue
                if isinstance(value, types.ModuleType):
                    self._add_members(found, value, names)
                else:
                    self._add(found, f"{function.__module__}.{name}", value)
        for annotation in annotations:
            for part in _annotation_parts(annotation):
                self._add(found, "", part)
        return sorted(found.items())

    def _add_members(self, found: dict[str, object], module: types.ModuleType, names: set[str], depth: int = 0) -> None:
        """The members of a project module that the code names; a submodule it names (a package's
        `policy` in `from odyssey import policy`, imported here if it was not yet) in turn."""
        if not _project_module(module.__name__, self.packages) or depth > 2:
            return
        for attribute in sorted(names):
            member = vars(module).get(attribute)
            if member is None and hasattr(module, "__path__") and \
                    importlib.util.find_spec(f"{module.__name__}.{attribute}") is not None:
                member = importlib.import_module(f"{module.__name__}.{attribute}")
            if isinstance(member, types.ModuleType):
                self._add_members(found, member, names, depth + 1)
            elif member is not None:
                self._add(found, f"{module.__name__}.{attribute}", member)

    def _add(self, found: dict[str, object], name: str, value: object, depth: int = 0) -> None:
        """Project functions and classes under their own qualified name (a lambda or a function
        kept in a table under the table's entry, e.g. `odyssey.features._COMPUTE['RSI_14']`);
        constants under the name they are read by; the functions inside a table are followed.
        Anything else (libraries, Dagster definitions) is not ours to version."""
        if isinstance(value, functools.partial):
            self._add(found, name, value.func, depth)
            for index, argument in enumerate(value.args):
                self._add(found, f"{name}.<argument {index}>", argument, depth + 1)
            return
        target = inspect.unwrap(value) if hasattr(value, "__wrapped__") else value  # lru_cache, wraps
        if isinstance(target, (types.FunctionType, type)):
            if self._is_project(target):
                anonymous = "<" in target.__qualname__
                found[name if anonymous and name else _qualified(target)] = target
            return
        if not name or not _project_module(name.split("[")[0].rsplit(".", 1)[0], self.packages) or depth > 3:
            return
        text = _constant_text(value)
        if text is not None:
            found[name] = text
        elif isinstance(value, dict):
            for key in sorted(value, key=repr):
                self._add(found, f"{name}[{key!r}]", value[key], depth + 1)
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                self._add(found, f"{name}[{index}]", item, depth + 1)

    def closure(self, *roots: object) -> dict[str, str]:
        """Every project object the roots reach, by qualified name, with its canonical code (or the
        text of a constant)."""
        seen: dict[str, str] = {}
        stack: list[tuple[str, object]] = [(_qualified(r), r) for r in map(inspect.unwrap, roots)]
        while stack:
            name, obj = stack.pop()
            if name in seen:
                continue
            if isinstance(obj, str):  # a constant's text
                seen[name] = obj
            else:
                seen[name] = self._canonical_of(obj)
                stack += self._references(obj)
        return seen

    def version(self, *roots: object) -> str:
        """The digest of everything the roots (a function, and the classes that store its result)
        reach in the project."""
        digest = hashlib.sha256()
        for name, text in sorted(self.closure(*roots).items()):
            digest.update(name.encode() + b"\0" + text.encode() + b"\0")
        return digest.hexdigest()[:DIGEST_CHARS]


def _resolve(annotation: object, scope: dict) -> object:
    """A string annotation (`from __future__ import annotations`) as the objects its names denote."""
    if not isinstance(annotation, str):
        return annotation
    found = []
    for name in re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", annotation):
        head, *rest = name.split(".")
        value = scope.get(head)
        for attribute in rest:
            value = getattr(value, attribute, None)
        if value is not None:
            found.append(value)
    return tuple(found)


def _annotation_parts(annotation: object) -> list[object]:
    """The classes inside an annotation (Optional[X], list[X], X | None, ...)."""
    if isinstance(annotation, tuple):
        return [p for a in annotation for p in _annotation_parts(a)]
    parts = [annotation]
    for arg in typing.get_args(annotation):
        parts += _annotation_parts(arg)
    return [p for p in parts if isinstance(p, type)]


def _qualified(obj: object) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"
