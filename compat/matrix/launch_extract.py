"""A release's server flags and env vars, read from its own sources with `ast` (never imported).

The frameworks build their argument parsers in three ways over their history: explicit
`parser.add_argument(...)` calls with defaults taken from a dataclass (`default=ServerArgs.x`),
vLLM's `get_kwargs(SomeConfig)` that turns config dataclass fields into argparse keywords, and
sglang's `A[T, Arg(...)]` field annotations turned into flags by `add_cli_args_from_dataclass`.
This module runs the parser-building code on a small abstract interpreter: literals, names,
imports, class fields and the calls that build parsers are evaluated; anything else becomes an
`Opaque` value that keeps the source text as the reason it could not be derived.
"""

from __future__ import annotations

import ast
import contextlib
import re
from collections.abc import Mapping
from typing import Any, Optional, Union

from msgspec import Struct, field
from msgspec.structs import replace

# -- results --------------------------------------------------------------------------------


class ArgFact(Struct, frozen=True):
    """One argparse argument of a release, as its source defines it."""

    options: tuple[str, ...]  # option strings, first as written first
    dest: str
    action: str  # store | store_true | store_false | store_const | append | count | boolean | help
    nargs: str = ""  # "", "?", "*", "+", or a number
    type: str = ""  # "" (text) | int | float | json | bool | other
    choices: Optional[tuple[str, ...]] = None
    choices_unknown: str = ""  # choices exist but are computed (the expression)
    default: Any = None  # JSON-able
    default_unknown: str = ""  # the default is not a literal (the expression)
    default_computed: bool = False  # None / "auto" resolved at startup in code
    deprecated: str = ""  # "" | "warn" | "error" (accepted by argparse, then refused)
    replacement: str = ""  # the flag that replaces a deprecated one
    message: str = ""  # the error a retired flag stops with
    required: bool = False
    const: Any = None  # what a store_const switch stores (JSON-able), else None


class ReleaseFacts(Struct, frozen=True):
    """Everything read from one release's sources."""

    args: tuple[ArgFact, ...]
    positionals: tuple[str, ...]
    env: tuple[str, ...]
    env_registry: str  # member holding the env-var registry, "" when the release has none
    features: tuple[str, ...]  # parser behaviours (underscore-dash, config-file, dotted-keys, -O)
    notes: tuple[str, ...]
    # sglang's default --mem-fraction-static by parallel size, where the release sets it from an
    # if/elif chain on tp_size: ("16:0.79", ..., "1:0.88"), what it is keyed on, and where.
    mem_fraction_tp: tuple[str, ...] = ()
    mem_fraction_tp_by: str = ""
    mem_fraction_tp_source: str = ""


# -- values of the abstract interpreter ---------------------------------------------------


class Opaque(Struct, frozen=True):
    """A value that could not be derived statically; `text` says what it was."""

    text: str


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


class Module(Struct, eq=False):
    name: str
    path: str
    tree: ast.Module
    text: str
    scope: dict[str, Any] = field(default_factory=dict)  # name -> ast node or import tuple
    annotations_from: list[ast.expr] = field(default_factory=list)


class ClassRef(Struct, frozen=True, eq=False):
    mod: Module
    node: ast.ClassDef


class FuncRef(Struct, frozen=True, eq=False):
    mod: Module
    node: Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda]
    owner: Optional[ClassRef] = None


class ModRef(Struct, frozen=True, eq=False):
    mod: Module


class Builtin(Struct, frozen=True):
    name: str


class FieldSpec(Struct, frozen=True):
    """`field(default=...)`, `get_field(Cls, "x")`, pydantic `Field(...)`."""

    default: Any = MISSING


class _Parser:
    """Whatever `add_argument` is called on: parsers, groups, subparsers."""


PARSER = _Parser()

_BUILTIN_NAMES = {"int", "float", "str", "bool", "list", "dict", "tuple", "set", "sorted", "len"}
_MAX_DEPTH = 12


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


def module_name(path: str) -> str:
    """'vllm/config/model.py' -> 'vllm.config.model'; '.../__init__.py' -> the package."""
    name = path[:-3].replace("/", ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


# -- the program: modules, scopes, resolution -----------------------------------------------


class Program:
    """The members of one release, parsed, with name resolution across them."""

    def __init__(self, members: Mapping[str, str]) -> None:
        self.modules: dict[str, Module] = {}
        self.notes: list[str] = []
        for path, text in sorted(members.items()):
            if not path.endswith(".py"):
                continue
            try:
                tree = ast.parse(text)
            except SyntaxError as exc:
                self.notes.append(f"{path}: not parsed ({exc.msg}, line {exc.lineno})")
                continue
            mod = Module(module_name(path), path, tree, text)
            self._scan(
                mod, tree.body, mod.name.endswith("__init__") or path.endswith("__init__.py")
            )
            self.modules[mod.name] = mod
        self.args: list[ArgFact] = []
        self.positionals: list[str] = []
        self._depth = 0
        self._stack: list[ast.AST] = []

    def _scan(self, mod: Module, body: list[ast.stmt], package: bool) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                mod.scope[stmt.name] = stmt
            elif isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    if isinstance(target, ast.Name):
                        # `ServerArgs = msgspec.defstruct(..., namespace=vars(ServerArgs))`
                        # rebuilds a class from itself: the class statement stays the source.
                        if not (
                            isinstance(mod.scope.get(target.id), ast.ClassDef)
                            and isinstance(stmt.value, ast.Call)
                        ):
                            mod.scope[target.id] = stmt.value
                    elif isinstance(target, ast.Tuple) and isinstance(stmt.value, ast.Call):
                        callee = stmt.value.func
                        if isinstance(callee, ast.Name) and callee.id == "collect_input_fields":
                            mod.annotations_from.extend(stmt.value.args[:1])
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                if stmt.value is not None:
                    mod.scope[stmt.target.id] = stmt.value
            elif isinstance(stmt, ast.ImportFrom):
                base = self._absolute(mod, stmt.module or "", stmt.level, package)
                for alias in stmt.names:
                    if alias.name != "*":
                        mod.scope[alias.asname or alias.name] = ("from", base, alias.name)
            elif isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if alias.asname:
                        mod.scope[alias.asname] = ("import", alias.name)
                    else:
                        mod.scope.setdefault(
                            alias.name.split(".")[0], ("import", alias.name.split(".")[0])
                        )
            elif isinstance(stmt, ast.If):
                # `if TYPE_CHECKING:` is for type checkers only; at run time the else holds.
                if "TYPE_CHECKING" not in _text(stmt.test):
                    self._scan(mod, stmt.body, package)
                self._scan(mod, stmt.orelse, package)
            elif isinstance(stmt, ast.Try):
                self._scan(mod, stmt.body, package)
                for handler in stmt.handlers:
                    self._scan(mod, handler.body, package)
            elif isinstance(stmt, ast.With):
                self._scan(mod, stmt.body, package)

    @staticmethod
    def _absolute(mod: Module, name: str, level: int, package: bool) -> str:
        if level == 0:
            return name
        parts = mod.path[:-3].split("/")
        parts = parts[:-1]  # the package this module is in
        for _ in range(level - 1):
            parts = parts[:-1]
        return ".".join([*parts, name] if name else parts)

    # resolution ---------------------------------------------------------------------------

    def lookup(self, mod: Module, name: str, depth: int = 0) -> Any:
        """The value `name` has at module level in `mod`."""
        if depth > _MAX_DEPTH:
            return Opaque(name)
        hit = mod.scope.get(name)
        if hit is None:
            if name in _BUILTIN_NAMES:
                return Builtin(name)
            if name in ("None", "True", "False"):
                return {"None": None, "True": True, "False": False}[name]
            return Opaque(name)
        if isinstance(hit, tuple):
            if hit[0] == "import":
                target = self.modules.get(hit[1])
                return ModRef(target) if target else Opaque(hit[1])
            _, base, attr = hit
            return self.module_attr(base, attr, depth + 1)
        if isinstance(hit, ast.ClassDef):
            return ClassRef(mod, hit)
        if isinstance(hit, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return FuncRef(mod, hit)
        return self.eval(hit, mod, {}, depth + 1)

    def module_attr(self, base: str, attr: str, depth: int = 0) -> Any:
        target = self.modules.get(base)
        if target is not None:
            if attr in target.scope:
                return self.lookup(target, attr, depth)
            sub = self.modules.get(f"{base}.{attr}")
            if sub is not None:
                return ModRef(sub)
            return Opaque(f"{base}.{attr}")
        sub = self.modules.get(f"{base}.{attr}")
        if sub is not None:
            return ModRef(sub)
        if base in ("argparse",) or base.startswith("argparse"):
            return Builtin(f"argparse.{attr}")
        if base == "json" and attr == "loads":
            return Builtin("json.loads")
        if base == "typing" or base == "typing_extensions":
            return Builtin(f"typing.{attr}")
        if base in (
            "dataclasses",
            "pydantic",
            "pydantic.dataclasses",
            "msgspec",
        ) or base.startswith("pydantic"):
            return Builtin(f"{base.split('.')[0]}.{attr}")
        return Opaque(f"{base}.{attr}")

    def bases(self, cls: ClassRef) -> list[ClassRef]:
        out = []
        for base in cls.node.bases:
            value = self.eval(base, cls.mod, {}, 1)
            if isinstance(value, ClassRef):
                out.append(value)
        return out

    def class_fields(
        self, cls: ClassRef, seen: Optional[set[int]] = None
    ) -> list[tuple[str, ast.expr, Optional[ast.expr], Module]]:
        """Annotated fields in dataclass order (bases first); ClassVar excluded."""
        seen = seen or set()
        if id(cls.node) in seen:
            return []
        seen.add(id(cls.node))
        out: dict[str, tuple[str, ast.expr, Optional[ast.expr], Module]] = {}
        for base in reversed(self.bases(cls)):
            for item in self.class_fields(base, seen):
                out[item[0]] = item
        if not any(isinstance(s, ast.AnnAssign) for s in cls.node.body):
            # sglang: ServerArgs' fields live in namespace classes gathered by
            # `collect_input_fields([...])` and merged into its annotations at import.
            for source in cls.mod.annotations_from:
                for ref in self._as_list(self.eval(source, cls.mod, {}, 1)):
                    if isinstance(ref, ClassRef):
                        for item in self.class_fields(ref, seen):
                            out[item[0]] = item
        for stmt in cls.node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                text = ast.unparse(stmt.annotation)
                if "ClassVar" in text or "InitVar" in text:
                    continue
                out[stmt.target.id] = (stmt.target.id, stmt.annotation, stmt.value, cls.mod)
        return list(out.values())

    def class_attr(self, cls: ClassRef, attr: str, depth: int) -> Any:
        local: dict[str, Any] = {}
        for stmt in cls.node.body:
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
                and stmt.targets[0].id != attr
                and depth < _MAX_DEPTH
            ):
                # Enum-like classes: `ALL = (FULL, DISABLED)` names earlier class attributes.
                local[stmt.targets[0].id] = self.eval(stmt.value, cls.mod, dict(local), depth + 1)
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and stmt.target.id == attr
            ):
                if stmt.value is None:
                    return MISSING
                return self._field_default(self.eval(stmt.value, cls.mod, {}, depth + 1))
            if isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    if isinstance(target, ast.Name) and target.id == attr:
                        return self.eval(stmt.value, cls.mod, dict(local), depth + 1)
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == attr:
                return FuncRef(cls.mod, stmt, cls)
            if isinstance(stmt, ast.ClassDef) and stmt.name == attr:
                return ClassRef(cls.mod, stmt)
        for base in self.bases(cls):
            value = self.class_attr(base, attr, depth + 1)
            if not (isinstance(value, Opaque) and value.text.endswith(f".{attr}")):
                return value
        for item in self.class_fields(cls):
            if item[0] == attr:
                return (
                    MISSING
                    if item[2] is None
                    else self._field_default(self.eval(item[2], item[3], {}, depth + 1))
                )
        return Opaque(f"{cls.node.name}.{attr}")

    @staticmethod
    def _field_default(value: Any) -> Any:
        return value.default if isinstance(value, FieldSpec) else value

    @staticmethod
    def _as_list(value: Any) -> list[Any]:
        if isinstance(value, (list, tuple, set, frozenset)):
            return list(value)
        if isinstance(value, dict):
            return list(value)
        return []

    # expressions --------------------------------------------------------------------------

    def eval(
        self, node: Optional[ast.expr], mod: Module, env: dict[str, Any], depth: int = 0
    ) -> Any:
        if node is None:
            return None
        if depth > _MAX_DEPTH * 3:
            return Opaque(_text(node))
        try:
            return self._eval(node, mod, env, depth)
        except RecursionError:  # pragma: no cover - cycles are cut by depth first
            return Opaque(_text(node))

    def _eval(self, node: ast.expr, mod: Module, env: dict[str, Any], depth: int) -> Any:
        def ev(n: ast.expr) -> Any:
            return self.eval(n, mod, env, depth + 1)

        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            return self.lookup(mod, node.id, depth + 1)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items: list[Any] = []
            for elt in node.elts:
                if isinstance(elt, ast.Starred):
                    inner = ev(elt.value)
                    if isinstance(inner, (list, tuple, set, dict)):
                        items.extend(inner)
                    else:
                        return Opaque(_text(node))
                else:
                    items.append(ev(elt))
            if isinstance(node, ast.Tuple):
                return tuple(items)
            if isinstance(node, ast.Set):
                return _uniq(items)
            return items
        if isinstance(node, ast.Dict):
            out: dict[Any, Any] = {}
            for k, v in zip(node.keys, node.values):
                if k is None:
                    inner = ev(v)
                    if isinstance(inner, dict):
                        out.update(inner)
                    else:
                        return Opaque(_text(node))
                else:
                    key = ev(k)
                    if isinstance(key, (str, int, float, bool)) or key is None:
                        out[key] = ev(v)
                    else:
                        return Opaque(_text(node))
            return out
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                if isinstance(value, ast.Constant):
                    parts.append(str(value.value))
                elif isinstance(value, ast.FormattedValue):
                    inner = ev(value.value)
                    if isinstance(inner, (str, int, float)) and not isinstance(inner, bool):
                        parts.append(str(inner))
                    else:
                        return Opaque(_text(node))
            return "".join(parts)
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
                    return list(left) + list(right)
                if isinstance(left, str) and isinstance(right, str):
                    return left + right
                if _number(left) and _number(right):
                    return left + right
            if isinstance(node.op, ast.Mult) and _number(left) and _number(right):
                return left * right
            if isinstance(node.op, ast.Sub) and _number(left) and _number(right):
                return left - right
            if isinstance(node.op, ast.Div) and _number(left) and _number(right) and right:
                return left / right
            if isinstance(node.op, ast.Pow) and _number(left) and _number(right):
                return left**right
            if (
                isinstance(node.op, ast.BitOr)
                and isinstance(left, dict)
                and isinstance(right, dict)
            ):
                return {**left, **right}
            return Opaque(_text(node))
        if isinstance(node, ast.UnaryOp):
            operand = ev(node.operand)
            if isinstance(node.op, ast.USub) and _number(operand):
                return -operand
            if isinstance(node.op, ast.Not) and isinstance(operand, bool):
                return not operand
            return Opaque(_text(node))
        if isinstance(node, ast.Attribute):
            return self._attribute(node, mod, env, depth)
        if isinstance(node, ast.Subscript):
            base = ev(node.value)
            key = ev(node.slice)
            if isinstance(base, dict) and _hashable(key) and key in base:
                return base[key]
            if (
                isinstance(base, (list, tuple))
                and isinstance(key, int)
                and -len(base) <= key < len(base)
            ):
                return base[key]
            return Opaque(_text(node))
        if isinstance(node, ast.Call):
            return self._call(node, mod, env, depth)
        if isinstance(node, ast.Lambda):
            return FuncRef(mod, node)
        if isinstance(node, ast.IfExp):
            return Opaque(_text(node))
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            return self._comprehension(node, mod, env, depth)
        return Opaque(_text(node))

    def _comprehension(
        self,
        node: Union[ast.ListComp, ast.SetComp, ast.GeneratorExp],
        mod: Module,
        env: dict[str, Any],
        depth: int,
    ) -> Any:
        if len(node.generators) != 1 or node.generators[0].ifs:
            return Opaque(_text(node))
        gen = node.generators[0]
        source = self.eval(gen.iter, mod, env, depth + 1)
        if not isinstance(source, (list, tuple, set, dict)):
            return Opaque(_text(node))
        out = []
        for item in source:
            local = dict(env)
            if not self._bind(gen.target, item, local):
                return Opaque(_text(node))
            value = self.eval(node.elt, mod, local, depth + 1)
            if isinstance(value, Opaque):
                return Opaque(_text(node))
            out.append(value)
        return _uniq(out) if isinstance(node, ast.SetComp) else out

    def _attribute(self, node: ast.Attribute, mod: Module, env: dict[str, Any], depth: int) -> Any:
        base = self.eval(node.value, mod, env, depth + 1)
        attr = node.attr
        if isinstance(base, ModRef):
            return self.module_attr(base.mod.name, attr, depth + 1)
        if isinstance(base, ClassRef):
            value = self.class_attr(base, attr, depth + 1)
            if isinstance(value, FuncRef) and value.owner is None:
                return FuncRef(value.mod, value.node, base)
            if isinstance(value, FuncRef):
                return FuncRef(value.mod, value.node, base)
            return value
        if isinstance(base, Builtin):
            return Builtin(f"{base.name}.{attr}")
        if base is PARSER:
            return ("method", PARSER, attr)
        if isinstance(base, (dict, list, str, set, tuple)):
            return ("method", base, attr)
        if isinstance(base, Opaque):
            return Opaque(f"{base.text}.{attr}")
        return Opaque(_text(node))

    def _call(self, node: ast.Call, mod: Module, env: dict[str, Any], depth: int) -> Any:
        func = self.eval(node.func, mod, env, depth + 1)
        args: list[Any] = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                inner = self.eval(a.value, mod, env, depth + 1)
                if isinstance(inner, (list, tuple)):
                    args.extend(inner)
                else:
                    args.append(Opaque("*" + _text(a.value)))
            else:
                args.append(self.eval(a, mod, env, depth + 1))
        kwargs: dict[str, Any] = {}
        for kw in node.keywords:
            value = self.eval(kw.value, mod, env, depth + 1)
            if kw.arg is None:
                if isinstance(value, dict):
                    kwargs.update({str(k): v for k, v in value.items()})
                else:
                    kwargs["**"] = Opaque("**" + _text(kw.value))
            else:
                kwargs[kw.arg] = value
        return self.apply(func, args, kwargs, node, mod, depth)

    def apply(
        self,
        func: Any,
        args: list[Any],
        kwargs: dict[str, Any],
        node: ast.Call,
        mod: Module,
        depth: int,
    ) -> Any:
        if isinstance(func, tuple) and len(func) == 3 and func[0] == "method":
            return self._method(func[1], func[2], args, kwargs, node, mod)
        if isinstance(func, Builtin):
            return self._builtin(func.name, args, kwargs, node)
        if isinstance(func, FuncRef):
            name = getattr(func.node, "name", "<lambda>")
            if name in ("get_kwargs", "_compute_kwargs") and args and isinstance(args[0], ClassRef):
                return self.get_kwargs(args[0])
            if (
                name == "add_cli_args_from_dataclass"
                and len(args) >= 2
                and isinstance(args[1], ClassRef)
            ):
                only = kwargs.get("fields")
                self.from_annotated(
                    args[1], list(only) if isinstance(only, (list, tuple)) else None
                )
                return None
            if (
                name == "get_field"
                and len(args) >= 2
                and isinstance(args[0], ClassRef)
                and isinstance(args[1], str)
            ):
                return FieldSpec(self.class_attr(args[0], args[1], depth + 1))
            if name in ("collect_input_fields",):
                return Opaque(_text(node))
            return self.invoke(func, args, kwargs, depth)
        if isinstance(func, ClassRef):
            name = func.node.name
            if name in ("Field",):
                return FieldSpec(kwargs.get("default", MISSING))
            return Opaque(_text(node))
        if isinstance(func, Opaque):
            name = func.text.rsplit(".", 1)[-1]
            if name in ("field", "Field"):
                if "default" in kwargs:
                    return FieldSpec(kwargs["default"])
                factory = kwargs.get("default_factory")
                if isinstance(factory, Builtin) and factory.name in (
                    "list",
                    "dict",
                    "set",
                    "tuple",
                ):
                    return FieldSpec({"list": [], "dict": {}, "set": [], "tuple": []}[factory.name])
                if factory is not None:
                    return FieldSpec(Opaque(f"{_text(node)}"))
                return FieldSpec(MISSING)
            if name in ("get_kwargs", "_compute_kwargs") and args and isinstance(args[0], ClassRef):
                return self.get_kwargs(args[0])
            if (
                name == "add_cli_args_from_dataclass"
                and len(args) >= 2
                and isinstance(args[1], ClassRef)
            ):
                self.from_annotated(args[1], None)
                return None
        return Opaque(_text(node))

    def _builtin(self, name: str, args: list[Any], kwargs: dict[str, Any], node: ast.Call) -> Any:
        first = args[0] if args else None
        if name in ("list", "tuple", "sorted", "set") and len(args) == 1:
            if isinstance(first, (list, tuple, set, frozenset)):
                items = list(first)
                if name == "sorted":
                    try:
                        items = sorted(items)
                    except TypeError:
                        return Opaque(_text(node))
                return tuple(items) if name == "tuple" else items
            if isinstance(first, dict):
                return sorted(first) if name == "sorted" else list(first)
        if name == "dict" and not args:
            return dict(kwargs)
        if name == "dict" and len(args) == 1 and isinstance(first, dict):
            return {**first, **kwargs}
        if name in ("dataclasses.field", "msgspec.field", "pydantic.Field"):
            if "default" in kwargs:
                return FieldSpec(kwargs["default"])
            factory = kwargs.get("default_factory")
            if isinstance(factory, Builtin) and factory.name in ("list", "dict", "set", "tuple"):
                return FieldSpec({"list": [], "dict": {}, "set": [], "tuple": []}[factory.name])
            return FieldSpec(Opaque(_text(node)) if factory is not None else MISSING)
        if name in ("copy.deepcopy", "copy.copy") and len(args) == 1:
            return _copy(first)
        return Opaque(_text(node))

    def _method(
        self,
        obj: Any,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        node: ast.Call,
        mod: Module,
    ) -> Any:
        if obj is PARSER:
            if name == "add_argument":
                self.record(args, kwargs, node, mod)
                return None
            if name in (
                "add_argument_group",
                "add_mutually_exclusive_group",
                "add_parser",
                "add_subparsers",
            ):
                return PARSER
            return None
        if isinstance(obj, dict):
            if name == "items":
                return list(obj.items())
            if name == "keys":
                return list(obj)
            if name == "values":
                return list(obj.values())
            if name == "copy":
                return dict(obj)
            if name == "get" and args and _hashable(args[0]):
                return obj.get(args[0], args[1] if len(args) > 1 else None)
            if name == "pop" and args and _hashable(args[0]):
                return obj.pop(args[0], args[1] if len(args) > 1 else None)
            if name == "update" and args and isinstance(args[0], dict):
                obj.update(args[0])
                obj.update(kwargs)
                return None
            if name == "update" and not args:
                obj.update(kwargs)
                return None
            if name == "setdefault" and args and _hashable(args[0]):
                return obj.setdefault(args[0], args[1] if len(args) > 1 else None)
        if isinstance(obj, list):
            if name == "append" and len(args) == 1:
                obj.append(args[0])
                return None
            if name == "extend" and len(args) == 1 and isinstance(args[0], (list, tuple)):
                obj.extend(args[0])
                return None
            if name == "remove" and len(args) == 1 and args[0] in obj:
                obj.remove(args[0])
                return None
            if name == "copy":
                return list(obj)
        if isinstance(obj, str):
            if name == "replace" and len(args) == 2 and all(isinstance(a, str) for a in args):
                return obj.replace(args[0], args[1])
            if name in ("lower", "upper", "strip") and not args:
                return getattr(obj, name)()
        if isinstance(obj, (set, tuple)) and name == "copy":
            return obj
        return Opaque(_text(node))

    # statements ---------------------------------------------------------------------------

    def invoke(self, func: FuncRef, args: list[Any], kwargs: dict[str, Any], depth: int) -> Any:
        """Run a function of the release on abstract values (parameters bound by position/name)."""
        if self._depth > _MAX_DEPTH or func.node in self._stack:
            return Opaque(getattr(func.node, "name", "lambda"))
        node = func.node
        env: dict[str, Any] = {}
        params = node.args.posonlyargs + node.args.args
        bound = list(args)
        is_static = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
            _text(d) == "staticmethod" for d in node.decorator_list
        )
        if func.owner is not None and params and not is_static and params[0].arg in ("self", "cls"):
            env[params[0].arg] = func.owner
            params = params[1:]
        defaults = node.args.defaults
        for i, param in enumerate(params):
            if i < len(bound):
                env[param.arg] = bound[i]
            elif param.arg in kwargs:
                env[param.arg] = kwargs[param.arg]
            else:
                d_index = i - (len(params) - len(defaults))
                env[param.arg] = (
                    self.eval(defaults[d_index], func.mod, {}, depth + 1)
                    if d_index >= 0
                    else Opaque(param.arg)
                )
        for param, default in zip(node.args.kwonlyargs, node.args.kw_defaults):
            env[param.arg] = kwargs.get(
                param.arg,
                self.eval(default, func.mod, {}, depth + 1)
                if default is not None
                else Opaque(param.arg),
            )
        if isinstance(node, ast.Lambda):
            return self.eval(node.body, func.mod, env, depth + 1)
        self._depth += 1
        self._stack.append(node)
        try:
            self.run(node.body, func.mod, env, func.owner)
        except _Return as ret:
            return ret.value
        finally:
            self._depth -= 1
            self._stack.pop()
        return None

    def run(
        self, body: list[ast.stmt], mod: Module, env: dict[str, Any], owner: Optional[ClassRef]
    ) -> None:
        for stmt in body:
            self.step(stmt, mod, env, owner)

    def step(
        self, stmt: ast.stmt, mod: Module, env: dict[str, Any], owner: Optional[ClassRef]
    ) -> None:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            self._call_stmt(stmt.value, mod, env, owner)
        elif isinstance(stmt, ast.Assign):
            value = self._value_with_super(stmt.value, mod, env, owner)
            for target in stmt.targets:
                self._assign(target, value, mod, env)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            self._assign(stmt.target, self._value_with_super(stmt.value, mod, env, owner), mod, env)
        elif isinstance(stmt, ast.If):
            # Both branches: a flag registered on one platform or condition still exists.
            self.run(stmt.body, mod, env, owner)
            self.run(stmt.orelse, mod, env, owner)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            self.run(stmt.body, mod, env, owner)
        elif isinstance(stmt, ast.Try):
            self.run(stmt.body, mod, env, owner)
            self.run(stmt.orelse, mod, env, owner)
            self.run(stmt.finalbody, mod, env, owner)
        elif isinstance(stmt, ast.For):
            source = self.eval(stmt.iter, mod, env, 1)
            if isinstance(source, (list, tuple)):
                for item in source:
                    if self._bind(stmt.target, item, env):
                        self.run(stmt.body, mod, env, owner)
        elif isinstance(stmt, ast.Delete):
            for target in stmt.targets:
                if isinstance(target, ast.Subscript):
                    base = self.eval(target.value, mod, env, 1)
                    key = self.eval(target.slice, mod, env, 1)
                    if isinstance(base, dict) and _hashable(key):
                        base.pop(key, None)
        elif isinstance(stmt, ast.Return):
            raise _Return(
                self._value_with_super(stmt.value, mod, env, owner) if stmt.value else None
            )

    def _value_with_super(
        self, node: Optional[ast.expr], mod: Module, env: dict[str, Any], owner: Optional[ClassRef]
    ) -> Any:
        if node is None:
            return None
        if isinstance(node, ast.Call):
            return self._call_stmt(node, mod, env, owner)
        return self.eval(node, mod, env, 1)

    def _call_stmt(
        self, call: ast.Call, mod: Module, env: dict[str, Any], owner: Optional[ClassRef]
    ) -> Any:
        # super().method(...) inside a class: the first base that defines it.
        f = call.func
        if (
            isinstance(f, ast.Attribute)
            and isinstance(f.value, ast.Call)
            and isinstance(f.value.func, ast.Name)
            and f.value.func.id == "super"
            and owner is not None
        ):
            for base in self.bases(owner):
                target = self.class_attr(base, f.attr, 1)
                if isinstance(target, FuncRef):
                    args = [self.eval(a, mod, env, 1) for a in call.args]
                    kwargs = {
                        k.arg: self.eval(k.value, mod, env, 1) for k in call.keywords if k.arg
                    }
                    return self.invoke(
                        FuncRef(
                            target.mod,
                            target.node,
                            env.get("cls", owner)
                            if isinstance(env.get("cls"), ClassRef)
                            else owner,
                        ),
                        args,
                        kwargs,
                        1,
                    )
            return None
        return self.eval(call, mod, env, 1)

    def _assign(self, target: ast.expr, value: Any, mod: Module, env: dict[str, Any]) -> None:
        if isinstance(target, ast.Name):
            env[target.id] = value
        elif isinstance(target, ast.Subscript):
            base = self.eval(target.value, mod, env, 1)
            key = self.eval(target.slice, mod, env, 1)
            if isinstance(base, dict) and _hashable(key):
                base[key] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            self._bind(target, value, env)

    def _bind(self, target: ast.expr, value: Any, env: dict[str, Any]) -> bool:
        if isinstance(target, ast.Name):
            env[target.id] = value
            return True
        if (
            isinstance(target, (ast.Tuple, ast.List))
            and isinstance(value, (list, tuple))
            and len(value) == len(target.elts)
        ):
            return all(self._bind(t, v, env) for t, v in zip(target.elts, value))
        return False

    # argparse -----------------------------------------------------------------------------

    def record(self, args: list[Any], kwargs: dict[str, Any], node: ast.Call, mod: Module) -> None:
        names = [a for a in args if isinstance(a, str)]
        if len(names) != len(args):
            self.notes.append(
                f"{mod.path}:{node.lineno}: option name not derivable: {_text(node)[:120]}"
            )
            return
        if not names:
            return
        if "**" in kwargs:
            self.notes.append(f"{mod.path}:{node.lineno}: keywords not derivable for {names[0]}")
        if not names[0].startswith("-"):
            self.positionals.append(names[0])
            return
        self.args.append(self._fact(names, kwargs))

    def _fact(self, names: list[str], kw: dict[str, Any]) -> ArgFact:
        action, nargs, deprecated, message = self._action(kw)
        dest = kw.get("dest")
        if not isinstance(dest, str):
            longs = [n for n in names if n.startswith("--")]
            dest = (longs[0] if longs else names[0]).lstrip("-").replace("-", "_")
        type_name = _type_name(kw.get("type"), action)
        choices: Optional[tuple[str, ...]] = None
        choices_unknown = ""
        if "choices" in kw and kw["choices"] is not None:
            raw = kw["choices"]
            if isinstance(raw, dict):
                raw = list(raw)
            if isinstance(raw, (list, tuple, set, frozenset)) and all(
                isinstance(c, (str, int, float)) or c is None for c in raw
            ):
                choices = tuple(str(c) for c in raw)
            else:
                choices_unknown = _describe(raw)
        default: Any = None
        default_unknown = ""
        if action == "store_true":
            default = kw.get("default", False)
            if default is None:
                default = False
        elif action == "store_false":
            default = kw.get("default", True)
        elif "default" in kw:
            default = kw["default"]
        if default is MISSING:
            default = None
        if isinstance(default, FieldSpec):
            default = default.default if default.default is not MISSING else None
        if not _jsonable(default):
            default_unknown = _describe(default)
            default = None
        new_flag = kw.get("new_flag")
        err = kw.get("error_message")
        if isinstance(err, str):
            message = err
        elif err is not None and deprecated == "error":
            message = ""
        if deprecated == "error" and err is None:
            deprecated = "warn"
        help_text = kw.get("help")
        if (
            not deprecated
            and isinstance(help_text, str)
            and re.search(r"\bdeprecated\b", help_text, re.I)
        ):
            deprecated = "warn"
        nargs_kw = kw.get("nargs", nargs)
        return ArgFact(
            options=tuple(names),
            dest=dest,
            action=action,
            nargs="" if nargs_kw is None else str(nargs_kw),
            type=type_name,
            choices=choices,
            choices_unknown=choices_unknown,
            default=_json_clean(default),
            default_unknown=default_unknown,
            deprecated=deprecated,
            replacement=new_flag if isinstance(new_flag, str) else "",
            const=_const_of(kw),
            message=message,
            required=kw.get("required") is True,
            default_computed=kw.get("computed") is True and default is None and not default_unknown,
        )

    def _action(self, kw: dict[str, Any]) -> tuple[str, Any, str, str]:
        """(action, its own nargs, deprecated, message) for the `action=` keyword."""
        action = kw.get("action")
        if action is None:
            return "store", None, "", ""
        if isinstance(action, str):
            return action.replace("-", "_"), None, "", ""
        if isinstance(action, Builtin):
            tail = action.name.rsplit(".", 1)[-1]
            if tail == "BooleanOptionalAction":
                return "boolean", None, "", ""
            return _ARGPARSE_ACTIONS.get(tail, "store"), None, "", ""
        if isinstance(action, ClassRef):
            return self._custom_action(action)
        if isinstance(action, Opaque) and action.text.rsplit(".", 1)[-1] == "BooleanOptionalAction":
            return "boolean", None, "", ""
        return "store", None, "", ""

    def _custom_action(self, cls: ClassRef) -> tuple[str, Any, str, str]:
        name = cls.node.name
        deprecated = "warn" if "Deprecat" in name else ""
        nargs: Any = None
        action = "store"
        for base in cls.node.bases:
            text = _text(base)
            for key, value in _ARGPARSE_ACTIONS.items():
                if text.endswith(key):
                    action = value
        init = next(
            (s for s in cls.node.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"),
            None,
        )
        params: dict[str, Any] = {}
        if init is not None:
            args = init.args.args
            defaults = init.args.defaults
            offset = len(args) - len(defaults)
            for i, param in enumerate(args):
                if i >= offset:
                    params[param.arg] = self.eval(defaults[i - offset], cls.mod, {}, 1)
                else:
                    params.setdefault(param.arg, MISSING)
            if "error_message" in params:
                deprecated = "error"
            nargs = params.get("nargs")
            for sub in ast.walk(init):
                if (
                    isinstance(sub, ast.keyword)
                    and sub.arg == "nargs"
                    and isinstance(sub.value, ast.Constant)
                ):
                    nargs = sub.value.value
        if nargs == 0 and action == "store":
            # A switch: store_true-like when it stores True over a False default.
            if params.get("const") is True and params.get("default") is False:
                action = "store_true"
            else:
                action = "store_const"
        if name == "StoreBoolean":
            action = "store"
        return action, nargs, deprecated, ""

    # vLLM: get_kwargs(Config) -------------------------------------------------------------

    def get_kwargs(self, cls: ClassRef) -> dict[str, dict[str, Any]]:
        """argparse keywords per field, by vLLM's `get_kwargs` rules (vllm/engine/arg_utils.py)."""
        out: dict[str, dict[str, Any]] = {}
        special = self._special_fields()
        for name, ann, value, fmod in self.class_fields(cls):
            default: Any = (
                MISSING if value is None else self._field_default(self.eval(value, fmod, {}, 1))
            )
            kw: dict[str, Any] = {"default": None if default is MISSING else default}
            atoms = self.type_atoms(ann, fmod)
            kinds = {a[0] for a in atoms}
            if "dataclass" in kinds:
                kw["type"] = Builtin("json.loads")
            elif "bool" in kinds:
                kw["action"] = Builtin("argparse.BooleanOptionalAction")
            elif "literal" in kinds:
                values = [v for a in atoms if a[0] == "literal" for v in a[1]]
                kw["choices"] = list(values)
                kw["type"] = Builtin(type(values[0]).__name__) if values else Builtin("str")
            elif kinds & {"tuple", "list", "set"}:
                inner = next(a for a in atoms if a[0] in ("tuple", "list", "set"))
                inner_kinds = {a[0] for a in inner[1]}
                lits = [v for a in inner[1] if a[0] == "literal" for v in a[1]]
                if lits:
                    kw["choices"] = lits
                kw["type"] = Builtin(
                    "int" if "int" in inner_kinds else "float" if "float" in inner_kinds else "str"
                )
                kw["nargs"] = "+"
            elif "int" in kinds:
                kw["type"] = Builtin("int")
            elif "float" in kinds:
                kw["type"] = Builtin("float")
            elif "dict" in kinds:
                kw["type"] = Builtin("json.loads")
            else:
                kw["type"] = Builtin("str")
                enums = [a[1] for a in atoms if a[0] == "class"]
                if enums:
                    # Validated when the config is built, not by argparse.
                    kw["choices"] = Opaque(f"members of {enums[0]}")
            if "none" in kinds and "bool" not in kinds and isinstance(kw.get("choices"), list):
                kw["choices"] = [*kw["choices"], "None"]
            if name in special:
                # get_kwargs gives this field its own parser (e.g. "32k" or "auto" for
                # max_model_len): not checked here beyond taking a value.
                kw["type"] = Opaque(f"special case of get_kwargs for {name}")
            out[name] = kw
        return out

    def _special_fields(self) -> frozenset[str]:
        names: set[str] = set()
        for mod in self.modules.values():
            for fn in mod.tree.body:
                if isinstance(fn, ast.FunctionDef) and fn.name in ("get_kwargs", "_compute_kwargs"):
                    for node in ast.walk(fn):
                        if isinstance(node, ast.Compare) and _text(node.left) == "name":
                            for comp in node.comparators:
                                for const in ast.walk(comp):
                                    if isinstance(const, ast.Constant) and isinstance(
                                        const.value, str
                                    ):
                                        names.add(const.value)
        return frozenset(names)

    def type_atoms(self, ann: ast.expr, mod: Module, depth: int = 0) -> list[tuple[Any, ...]]:
        """An annotation as a list of atoms: ('bool',), ('literal', values), ('list', atoms), ..."""
        if depth > _MAX_DEPTH:
            return [("other", _text(ann))]
        if isinstance(ann, ast.Constant):
            if ann.value is None:
                return [("none",)]
            if isinstance(ann.value, str):
                try:
                    parsed = ast.parse(ann.value, mode="eval").body
                except SyntaxError:
                    return [("other", ann.value)]
                return self.type_atoms(parsed, mod, depth + 1)
        if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
            return self.type_atoms(ann.left, mod, depth + 1) + self.type_atoms(
                ann.right, mod, depth + 1
            )
        if isinstance(ann, ast.Subscript):
            head = _text(ann.value).rsplit(".", 1)[-1]
            elts = ann.slice.elts if isinstance(ann.slice, ast.Tuple) else [ann.slice]
            if head in ("Optional",):
                return [*self.type_atoms(elts[0], mod, depth + 1), ("none",)]
            if head == "Union":
                return [a for e in elts for a in self.type_atoms(e, mod, depth + 1)]
            if head == "Annotated":
                return self.type_atoms(elts[0], mod, depth + 1)
            if head == "Literal":
                values = []
                for e in elts:
                    v = self.eval(e, mod, {}, depth + 1)
                    if isinstance(v, (str, int, float, bool)):
                        values.append(v)
                    else:
                        return [("other", _text(ann))]
                return [("literal", tuple(values))]
            if head.lower() in ("list", "sequence"):
                return [("list", tuple(self.type_atoms(elts[0], mod, depth + 1)))]
            if head.lower() in ("set", "frozenset"):
                return [("set", tuple(self.type_atoms(elts[0], mod, depth + 1)))]
            if head.lower() == "tuple":
                return [("tuple", tuple(self.type_atoms(elts[0], mod, depth + 1)))]
            if head.lower() in ("dict", "mapping"):
                return [("dict",)]
            if head in ("type", "Type", "Callable"):
                return [("other", _text(ann))]
            return [("other", _text(ann))]
        if isinstance(ann, (ast.Name, ast.Attribute)):
            name = _text(ann).rsplit(".", 1)[-1]
            if name in ("bool", "int", "float", "str"):
                return [(name,)]
            if name in ("dict", "Dict"):
                return [("dict",)]
            if name in ("list", "List"):
                return [("list", (("str",),))]
            if name in ("Any",):
                return [("other", "Any")]
            target = self._resolve_node(ann, mod, depth)
            if isinstance(target, tuple) and target[0] == "expr":
                return self.type_atoms(target[1], target[2], depth + 1)
            if isinstance(target, ClassRef):
                if self._is_dataclass(target):
                    return [("dataclass", target.node.name)]
                return [("class", target.node.name)]
            return [("other", _text(ann))]
        return [("other", _text(ann))]

    def _resolve_node(self, node: ast.expr, mod: Module, depth: int) -> Any:
        """A Name/Attribute in an annotation: a class, or the expression an alias stands for."""
        if isinstance(node, ast.Name):
            hit = mod.scope.get(node.id)
            if isinstance(hit, ast.ClassDef):
                return ClassRef(mod, hit)
            if isinstance(hit, ast.expr):
                return ("expr", hit, mod)
            if isinstance(hit, tuple) and hit[0] == "from":
                target = self.modules.get(hit[1])
                if target is None:
                    return None
                return (
                    self._resolve_node(ast.Name(id=hit[2]), target, depth + 1)
                    if depth < _MAX_DEPTH
                    else None
                )
            return None
        value = self.eval(node, mod, {}, depth + 1)
        return value if isinstance(value, ClassRef) else None

    def _is_dataclass(self, cls: ClassRef) -> bool:
        for deco in cls.node.decorator_list:
            text = _text(deco)
            if "dataclass" in text or text.split("(")[0] in ("config", "pydantic_dataclass"):
                return True
        return any(self._is_dataclass(b) for b in self.bases(cls))

    # sglang: A[T, Arg(...)] ---------------------------------------------------------------

    def from_annotated(self, cls: ClassRef, only: Optional[list[Any]]) -> None:
        """Flags from `A[T, "help"]` / `A[T, Arg(...)]` fields (sglang's add_cli_args_from_dataclass)."""
        for name, ann, value, fmod in self.class_fields(cls):
            if only is not None and name not in only:
                continue
            meta = self._arg_meta(ann, fmod)
            if meta is None or meta.get("no_cli") is True:
                continue
            inner = (
                ann.slice.elts[0]
                if isinstance(ann, ast.Subscript) and isinstance(ann.slice, ast.Tuple)
                else ann
            )
            cli = (
                meta.get("cli_name")
                if isinstance(meta.get("cli_name"), str)
                else "--" + name.replace("_", "-")
            )
            raw_aliases = meta.get("aliases")
            aliases = raw_aliases if isinstance(raw_aliases, list) else []
            names = [str(cli), *[a for a in aliases if isinstance(a, str)]]
            kw: dict[str, Any] = {"dest": name, "help": meta.get("help", "")}
            if meta.get("resolvable") is True:
                kw["computed"] = True
            default = (
                MISSING if value is None else self._field_default(self.eval(value, fmod, {}, 1))
            )
            if default is not MISSING:
                kw["default"] = default
            atoms = self.type_atoms(inner, fmod)
            real = [a for a in atoms if a[0] != "none"]
            parser = meta.get("type_parser")
            if meta.get("action") is not None:
                kw["action"] = meta["action"]
                extra = meta.get("action_kwargs")
                if isinstance(extra, dict):
                    kw.update(extra)
            elif real and real[0][0] == "literal":
                kw["choices"] = meta.get("choices") or list(real[0][1])
                kw["type"] = parser or Builtin(
                    type(real[0][1][0]).__name__ if real[0][1] else "str"
                )
            elif real and real[0][0] == "list" and parser is None:
                elem = [a for a in real[0][1] if a[0] != "none"]
                kw["type"] = Builtin(
                    elem[0][0] if elem and elem[0][0] in ("int", "float") else "str"
                )
                kw["nargs"] = meta.get("nargs") or "+"
                if meta.get("choices"):
                    kw["choices"] = meta["choices"]
            elif real and real[0][0] == "bool" and len(real) == 1:
                kw["action"] = "store_true"
            else:
                kind = real[0][0] if real else "str"
                kw["type"] = parser or Builtin(kind if kind in ("int", "float") else "str")
                if meta.get("choices"):
                    kw["choices"] = meta["choices"]
                if meta.get("nargs"):
                    kw["nargs"] = meta["nargs"]
            if meta.get("const") is not None:
                kw["const"] = meta["const"]
            self.args.append(self._fact(names, kw))

    def _arg_meta(self, ann: ast.expr, mod: Module) -> Optional[dict[str, Any]]:
        if not isinstance(ann, ast.Subscript) or _text(ann.value).rsplit(".", 1)[-1] not in (
            "A",
            "Annotated",
        ):
            return None
        if not isinstance(ann.slice, ast.Tuple):
            return None
        for extra in ann.slice.elts[1:]:
            if isinstance(extra, ast.Constant) and isinstance(extra.value, str):
                return {"help": extra.value}
            if isinstance(extra, (ast.JoinedStr, ast.BinOp)):
                return {"help": ""}
            if isinstance(extra, ast.Call) and _text(extra.func).rsplit(".", 1)[-1] == "Arg":
                meta: dict[str, Any] = {}
                for kw in extra.keywords:
                    if kw.arg:
                        meta[kw.arg] = self.eval(kw.value, mod, {}, 1)
                if extra.args:
                    meta.setdefault("help", self.eval(extra.args[0], mod, {}, 1))
                return meta
        return None


_ARGPARSE_ACTIONS = {
    "_StoreTrueAction": "store_true",
    "_StoreFalseAction": "store_false",
    "_StoreConstAction": "store_const",
    "_AppendAction": "append",
    "_CountAction": "count",
    "_StoreAction": "store",
    "BooleanOptionalAction": "boolean",
}


def _text(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # pragma: no cover - unparse handles every node ast.parse makes
        return type(node).__name__


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _hashable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, tuple)) or value is None


def _uniq(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _jsonable(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, (list, tuple)):
        return all(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    return False


def _json_clean(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_clean(v) for v in value]
    if isinstance(value, list):
        return [_json_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_clean(v) for k, v in value.items()}
    return value


def _const_of(kw: Mapping[str, Any]) -> Any:
    for key in ("const_value", "const"):
        value = kw.get(key)
        if value is not None and _jsonable(value):
            return _json_clean(value)
    return None


def _describe(value: Any) -> str:
    if isinstance(value, Opaque):
        return value.text[:160]
    if isinstance(value, ClassRef):
        return f"{value.node.name} object"
    if isinstance(value, FuncRef):
        return f"computed by {getattr(value.node, 'name', 'lambda')}"
    if isinstance(value, Builtin):
        return value.name
    if isinstance(value, FieldSpec):
        return _describe(value.default)
    return type(value).__name__


def _type_name(value: Any, action: str) -> str:
    if action in (
        "store_true",
        "store_false",
        "store_const",
        "count",
        "boolean",
        "help",
        "version",
    ):
        return ""
    if value is None:
        return ""
    if isinstance(value, Builtin):
        name = value.name
        if name in ("int", "float"):
            return name
        if name == "str":
            return ""
        if name == "bool":
            return "bool"
        if "json" in name:
            return "json"
        return "other"
    if isinstance(value, FuncRef):
        name = getattr(value.node, "name", "")
        if "json" in name or name in ("parse_dataclass",):
            return "json"
        if name in ("nullable_str",):
            return ""
        return "other"
    if isinstance(value, Opaque):
        text = value.text
        match = re.fullmatch(r"(?:optional_type|parse_type)\((\w+(?:\.\w+)?)\)", text)
        if match:
            inner = match.group(1)
            return {"int": "int", "float": "float", "str": "", "json.loads": "json"}.get(
                inner, "other"
            )
        if "json" in text or text.endswith("from_cli") or text.endswith("from_json"):
            return "json"
        return "other"
    return "other"


# -- env vars -------------------------------------------------------------------------------

_ENV_CALLS = re.compile(
    r"""(?:os\.getenv|os\.environ\.get|environ\.get|getenv|get_bool_env_var|get_int_env_var|get_float_env_var|_get_bool_env|env_with_choices|_get_int_env)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
)
_ENV_INDEX = re.compile(r"""os\.environ\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\]""")
_ENV_IN = re.compile(r"""["']([A-Z][A-Z0-9_]+)["']\s+in\s+os\.environ""")


def env_vars(program: Program, framework: str) -> tuple[tuple[str, ...], str]:
    """Env vars the release reads, and the member holding its registry ("" when none)."""
    names: set[str] = set()
    registry = ""
    for mod in program.modules.values():
        for pattern in (_ENV_CALLS, _ENV_INDEX, _ENV_IN):
            names.update(pattern.findall(mod.text))
        if framework == "vllm" and mod.name == "vllm.envs":
            table = mod.scope.get("environment_variables")
            if isinstance(table, ast.Dict):
                registry = mod.path
                for key in table.keys:
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        names.add(key.value)
        if framework == "sglang" and mod.name == "sglang.srt.environ":
            for stmt in mod.tree.body:
                if isinstance(stmt, ast.ClassDef) and stmt.name == "Envs":
                    registry = mod.path
                    for sub in stmt.body:
                        if isinstance(sub, (ast.Assign, ast.AnnAssign)):
                            targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                            value = sub.value
                            if isinstance(value, ast.Call) and _text(value.func).startswith("Env"):
                                names.update(t.id for t in targets if isinstance(t, ast.Name))
    return tuple(sorted(n for n in names if re.fullmatch(r"[A-Z][A-Z0-9_]+", n))), registry


# -- entry points ---------------------------------------------------------------------------


def _features(program: Program, framework: str) -> tuple[str, ...]:
    out: set[str] = set()
    for mod in program.modules.values():
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.ClassDef) and node.name == "FlexibleArgumentParser":
                body = _text(node)
                if re.search(r"""replace\(\s*['"]_['"]\s*,\s*['"]-['"]\s*\)""", body):
                    out.add("underscore-dash")
                if "--config" in body:
                    out.add("config-file")
                if re.search(r"""split\(\s*['"]\.['"]""", body):
                    out.add("dotted-keys")
                if re.search(r"""['"]-O['"]""", body):
                    out.add("-O")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value == "--config"
            ):
                out.add("config-file")
            if (
                isinstance(node, ast.keyword)
                and node.arg == "allow_abbrev"
                and isinstance(node.value, ast.Constant)
                and node.value.value is False
            ):
                out.add("no-abbrev")
    return tuple(sorted(out))


def _entry(program: Program, framework: str) -> None:
    if framework == "sglang":
        mod = program.modules.get("sglang.srt.server_args")
        cls = mod.scope.get("ServerArgs") if mod else None
        if mod is None or not isinstance(cls, ast.ClassDef):
            program.notes.append("sglang/srt/server_args.py: no ServerArgs class")
            return
        method = ClassRef(mod, cls)
        target = program.class_attr(method, "add_cli_args", 0)
        if isinstance(target, FuncRef):
            program.invoke(FuncRef(target.mod, target.node, method), [PARSER], {}, 0)
        else:
            program.notes.append("ServerArgs.add_cli_args not found")
        return
    serve = program.modules.get("vllm.entrypoints.cli.serve")
    cli = program.modules.get("vllm.entrypoints.openai.cli_args")
    api = program.modules.get("vllm.entrypoints.openai.api_server")
    if serve is not None:
        for stmt in serve.tree.body:
            if isinstance(stmt, ast.ClassDef):
                init = next(
                    (
                        s
                        for s in stmt.body
                        if isinstance(s, ast.FunctionDef) and s.name == "subparser_init"
                    ),
                    None,
                )
                if init is not None:
                    program.invoke(FuncRef(serve, init, ClassRef(serve, stmt)), [PARSER], {}, 0)
                    return
    if cli is not None and isinstance(cli.scope.get("make_arg_parser"), ast.FunctionDef):
        program.invoke(FuncRef(cli, cli.scope["make_arg_parser"]), [PARSER], {}, 0)
        return
    if api is not None:
        fn = api.scope.get("parse_args")
        if isinstance(fn, ast.FunctionDef):
            program.invoke(FuncRef(api, fn), [], {}, 0)
            return
        for stmt in api.tree.body:
            if isinstance(stmt, ast.If) and "__main__" in _text(stmt.test):
                env: dict[str, Any] = {}
                with contextlib.suppress(_Return):
                    program.run(stmt.body, api, env, None)
                return
    program.notes.append("no entry point found for vLLM's server arguments")


def extract(framework: str, members: Mapping[str, str]) -> ReleaseFacts:
    """The flags, positionals, env vars and parser features of one release's sources."""
    program = Program(members)
    original = program.apply

    def apply(
        func: Any, args: list[Any], kwargs: dict[str, Any], node: ast.Call, mod: Module, depth: int
    ) -> Any:
        name = ""
        if isinstance(func, (Builtin, Opaque)):
            name = (func.name if isinstance(func, Builtin) else func.text).rsplit(".", 1)[-1]
        elif isinstance(func, ClassRef):
            name = func.node.name
        if name in ("ArgumentParser", "FlexibleArgumentParser"):
            return PARSER
        return original(func, args, kwargs, node, mod, depth)

    program.apply = apply  # type: ignore[method-assign]
    _entry(program, framework)
    assigned = frozenset(
        n for mod in program.modules.values() for n in _filled_when_unset(mod.tree)
    )
    args = [_computed(fact, assigned) for fact in _dedupe(program.args)]
    env, registry = env_vars(program, framework)
    table = _mem_fraction_table(program) if framework == "sglang" else None
    return ReleaseFacts(
        mem_fraction_tp=table[0] if table else (),
        mem_fraction_tp_by=table[1] if table else "",
        mem_fraction_tp_source=table[2] if table else "",
        args=tuple(args),
        positionals=tuple(dict.fromkeys(program.positionals)),
        env=env,
        env_registry=registry,
        features=_features(program, framework),
        notes=tuple(dict.fromkeys(program.notes)),
    )


def _mem_fraction_table(program: Program) -> Optional[tuple[tuple[str, ...], str, str]]:
    """The first `if <size> >= N: self.mem_fraction_static = X ... else: ...` chain of ServerArgs."""
    mod = program.modules.get("sglang.srt.server_args")
    if mod is None:
        return None
    for node in ast.walk(mod.tree):
        if not isinstance(node, ast.If) or "mem_fraction_static is None" not in _text(node.test):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.If):
                rows = _tp_chain(inner)
                if rows:
                    by = _text(inner.test.left) if isinstance(inner.test, ast.Compare) else ""
                    by = by.replace("self.", "")
                    if by == "parallel_size":
                        by = "tp_size*pp_size"
                    return tuple(rows), by, f"{mod.path}:{inner.lineno}"
    return None


def _tp_chain(node: ast.If) -> list[str]:
    rows: list[str] = []
    current: Optional[ast.stmt] = node
    while isinstance(current, ast.If):
        test = current.test
        if not (
            isinstance(test, ast.Compare)
            and len(test.ops) == 1
            and isinstance(test.ops[0], (ast.GtE, ast.Gt))
            and isinstance(test.comparators[0], ast.Constant)
            and _text(test.left) in ("self.tp_size", "parallel_size", "tp_size")
        ):
            return []
        value = _assigned_fraction(current.body)
        if value is None:
            return []
        limit = test.comparators[0]
        if not isinstance(limit, ast.Constant) or not isinstance(limit.value, int):
            return []
        bound = limit.value + (1 if isinstance(test.ops[0], ast.Gt) else 0)
        rows.append(f"{bound}:{value}")
        current = current.orelse[0] if len(current.orelse) == 1 else None
    last = _assigned_fraction(_else_of(node))
    if last is not None:
        rows.append(f"1:{last}")
    return rows


def _else_of(node: ast.If) -> list[ast.stmt]:
    while len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
        node = node.orelse[0]
    return node.orelse


def _assigned_fraction(body: list[ast.stmt]) -> Optional[str]:
    if (
        len(body) == 1
        and isinstance(body[0], ast.Assign)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, (int, float))
        and _text(body[0].targets[0]) == "self.mem_fraction_static"
    ):
        return repr(float(body[0].value.value))
    return None


_RECEIVERS = frozenset({"self", "args", "server_args"})


def _dest_of(node: ast.AST) -> Optional[str]:
    """`self.X` / `args.X` / `server_args.X` -> X."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in _RECEIVERS
    ):
        return node.attr
    return None


def _unset_tests(test: ast.AST) -> set[str]:
    """Dests a condition finds unset: `X is None`, `X == None`, `not X`, `X in (None, ...)`,
    through `and`/`or`."""
    out: set[str] = set()
    if isinstance(test, ast.BoolOp):
        for v in test.values:
            out |= _unset_tests(v)
    elif isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        dest = _dest_of(test.operand)
        if dest:
            out.add(dest)
    elif isinstance(test, ast.Compare) and len(test.ops) == 1:
        dest = _dest_of(test.left)
        op, right = test.ops[0], test.comparators[0]
        none = isinstance(right, ast.Constant) and right.value is None
        none_in = isinstance(right, (ast.Tuple, ast.List, ast.Set)) and any(
            isinstance(e, ast.Constant) and e.value is None for e in right.elts
        )
        if dest and (
            (isinstance(op, (ast.Is, ast.Eq)) and none) or (isinstance(op, ast.In) and none_in)
        ):
            out.add(dest)
    return out


def _set_tests(test: ast.AST) -> set[str]:
    """Dests a condition finds set: `X`, `X is not None`, `X != None`, `isinstance(X, ...)`,
    `len(X)`, through `and`."""
    out: set[str] = set()
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        for v in test.values:
            out |= _set_tests(v)
        return out
    dest = _dest_of(test)
    if dest:
        out.add(dest)
    elif isinstance(test, ast.Compare) and len(test.ops) == 1:
        right = test.comparators[0]
        if (
            isinstance(test.ops[0], (ast.IsNot, ast.NotEq))
            and isinstance(right, ast.Constant)
            and right.value is None
        ):
            dest = _dest_of(test.left)
            if dest:
                out.add(dest)
    elif (
        isinstance(test, ast.Call)
        and isinstance(test.func, ast.Name)
        and test.func.id in ("isinstance", "len")
        and test.args
    ):
        dest = _dest_of(test.args[0])
        if dest:
            out.add(dest)
    return out


def _empty(value: ast.AST) -> bool:
    """`[]`, `{}`, `()`, `""`, `None`: a fill-in that leaves the setting as good as unset."""
    if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
        return not value.elts
    if isinstance(value, ast.Dict):
        return not value.keys
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        return value.func.id in ("list", "dict", "tuple", "set") and not value.args
    return isinstance(value, ast.Constant) and value.value in (None, "")


def _reads(node: ast.AST, dest: str) -> bool:
    return any(_dest_of(n) == dest for n in ast.walk(node))


def _falls_back(dest: str, value: ast.AST) -> bool:
    """`X = X or ...`, `X = ... if X is None else X`, `X = X if X is not None else ...`."""
    if isinstance(value, ast.BoolOp) and isinstance(value.op, ast.Or):
        return any(_dest_of(v) == dest for v in value.values[:-1])
    if isinstance(value, ast.IfExp):
        return dest in _unset_tests(value.test) or dest in _set_tests(value.test)
    return False


def _filled_when_unset(tree: ast.AST) -> set[str]:
    """Dests the code may give a value when the user left them unset (their None default is
    then decided at startup). Every assignment to `self.X` counts except those that only
    reshape a given value: under a condition that finds X set (`if self.X: self.X = {...}`,
    `if isinstance(self.X, list): ...`) or computed from X itself without a fallback
    (`self.X = normalize(self.X)`), and those that leave it empty (`self.X = []`). An
    assignment under `if self.X is None:`, or one that
    falls back (`self.X = self.X or ...`), always counts. Unsure cases count: an unknown
    default is shown as such, a wrong None would silence what depends on it."""
    out: set[str] = set()

    def visit(node: ast.AST, set_here: frozenset[str]) -> None:
        if isinstance(node, ast.If):
            sets = _set_tests(node.test)
            for child in node.body:
                visit(child, set_here | sets)
            for child in node.orelse:
                visit(child, set_here)
            return
        targets: list[ast.AST] = []
        value: Optional[ast.AST] = None
        if isinstance(node, ast.Assign):
            targets, value = list(node.targets), node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for t in targets:
            dest = _dest_of(t)
            if dest is None or value is None or _empty(value):
                continue
            if _falls_back(dest, value) or (dest not in set_here and not _reads(value, dest)):
                out.add(dest)
        for sub in ast.iter_child_nodes(node):
            visit(sub, set_here)

    visit(tree, frozenset())
    return out


def _computed(fact: ArgFact, assigned: frozenset[str]) -> ArgFact:
    """A None default that the release's code fills in when unset is decided at startup (by
    GPU, model or other flags): `mem_fraction_static`, `attention_backend`, ..."""
    if (
        fact.default is not None
        or fact.default_unknown
        or fact.default_computed
        or fact.action != "store"
        or fact.dest not in assigned
    ):
        return fact
    return replace(fact, default_computed=True)


def _dedupe(args: list[ArgFact]) -> list[ArgFact]:
    """One fact per first option string (a flag registered twice keeps its last definition,
    as argparse would refuse the second; the frameworks guard such cases with conditions)."""
    out: dict[str, ArgFact] = {}
    for fact in args:
        out[fact.options[0]] = fact
    return list(out.values())
