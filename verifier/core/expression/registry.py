"""Custom functions: names users add to the expression language, each with an exact definition.

A custom function has two halves. Its *declaration* (name, argument names, definition in the
expression syntax, and where it comes from) is torch-free: the parser, the API's parser
processes and the symbolic sandbox only need it. Its *implementation* (a torch callable) is
what autograd runs, and is needed only where a check runs. In SymPy a custom function is a
:class:`verifier.core.expression.custom.CustomFunction` whose ``definition()`` is the declared
definition, so its derivatives, its certified evaluation (the evaluator compiles the definition) and
the local audit all follow from the definition, while the torch program calls the implementation.

Declarations come from two places: :func:`register_function` in this process (the Python API),
and packages that declare functions under the entry-point group ``derivcheck.functions``
(plugins, loaded on first use in every process that parses; their implementations are imported
by workers only, :func:`load_implementations`). ``docs/custom-functions.md`` tells the whole
story. This module imports SymPy only, never torch.

>>> declare("halfsq", "x**2/2", ("x",)).origin
'registered'
>>> from verifier.core.expression.parse import parse_expression
>>> parse_expression("halfsq(y)").expr.definition()
y**2/2
>>> forget("halfsq")
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import sympy

from verifier.core.expression.custom import REGISTERED, CustomFunction, Declaration
from verifier.core.expression.functions import ALIASES, CONSTANTS, FUNCTIONS
from verifier.core.expression.syntax import make_symbol, parse_syntax
from verifier.errors import ExpressionError, OptionError

ENTRY_POINT_GROUP = "derivcheck.functions"
"""The entry-point group under which a package declares custom functions."""
MAX_CUSTOM_ARGS = 8
"""Most arguments of one custom function."""


@dataclass(frozen=True)
class PluginProblem:
    """A plugin entry point that could not be used, and why."""

    entry_point: str
    reason: str


_lock = threading.RLock()
_classes: dict[str, type[CustomFunction]] = {}
_declarations: dict[str, Declaration] = {}
_implementations: dict[str, Callable[..., Any]] = {}
_implementation_problems: dict[str, str] = {}
_plugin_problems: list[PluginProblem] = []
_plugins_loaded = False
_generation = 0


def declare(
    name: str, definition: str, args: Sequence[str] = ("x",), *, origin: str = REGISTERED
) -> Declaration:
    """Add a custom function's declaration (no implementation yet); returns it.

    Raises:
        OptionError: the name collides with a built-in function, an alias, a constant or
            another custom function, an argument name is not a variable name, or the
            definition does not parse or uses a variable that is not an argument.
    """
    declaration = Declaration(name, tuple(args), definition, None, origin)
    _add(declaration)
    return declaration


def register_function(
    name: str,
    impl: Callable[..., Any],
    definition: str,
    args: Sequence[str] = ("x",),
) -> Declaration:
    """Make ``name`` callable in expressions: ``impl`` on the autograd side, ``definition``
    (expression syntax over ``args``) on the exact side.

    ``impl`` receives one tensor per argument, all of the same shape (one value per point),
    and returns a tensor of that shape and dtype. Registering the same name again with the
    same definition and arguments replaces the implementation; a different definition needs
    :func:`forget` first.

    Raises:
        OptionError: see :func:`declare`; ``impl`` is not callable.
    """
    if not callable(impl):
        raise OptionError(f"register_function({name!r}): impl must be callable")
    declaration = Declaration(name, tuple(args), definition)
    with _lock:
        _ensure_plugins()
        known = _declarations.get(name)
        if known is not None and known.origin != REGISTERED:
            raise OptionError(
                f"custom function {name!r}: the name is already declared ({known.origin})"
            )
        if known is None or (known.args, known.definition) != (declaration.args, definition):
            _add(declaration)
        _implementations[name] = impl
        _implementation_problems.pop(name, None)
    return declaration


def forget(name: str) -> None:
    """Remove a custom function registered in this process (a plugin's stays)."""
    with _lock:
        declaration = _declarations.get(name)
        if declaration is None or declaration.origin != REGISTERED:
            raise OptionError(f"{name!r} is not a function registered in this process")
        del _declarations[name], _classes[name]
        _implementations.pop(name, None)
        _changed()


def lookup(name: str) -> type[CustomFunction] | None:
    """The SymPy class of custom function ``name``, or None."""
    _ensure_plugins()
    return _classes.get(name)


def declarations() -> list[Declaration]:
    """Every custom function declared in this process (plugins first), in declaration order."""
    _ensure_plugins()
    return list(_declarations.values())


def registered_here() -> tuple[Declaration, ...]:
    """The declarations made in this process (not plugins): what a child process must be told."""
    return tuple(d for d in declarations() if d.origin == REGISTERED)


def install(registered: Iterable[Declaration]) -> None:
    """Declare ``registered`` here as the calling process has them (a sandbox child is told
    the parent's functions; plugins it loads from the entry points itself). A name declared
    here otherwise is replaced; other declarations stay."""
    with _lock:
        _ensure_plugins()
        for declaration in registered:
            if _declarations.get(declaration.name) == declaration:
                continue
            if declaration.name in _declarations:
                del _declarations[declaration.name], _classes[declaration.name]
            _add(declaration)


def implementation(name: str) -> Callable[..., Any]:
    """The torch callable of custom function ``name``.

    Raises:
        LookupError: this process has none (its import failed, or it was never loaded); the
            message says why.
    """
    impl = _implementations.get(name)
    if impl is not None:
        return impl
    problem = _implementation_problems.get(name)
    declaration = _declarations.get(name)
    if problem is None and declaration is not None and declaration.implementation is not None:
        load_implementations()
        impl = _implementations.get(name)
        if impl is not None:
            return impl
        problem = _implementation_problems.get(name)
    why = problem or "it was never loaded"
    raise LookupError(f"this process has no torch implementation of function {name!r}: {why}")


def missing_implementations(names: Iterable[str]) -> dict[str, str]:
    """For each custom function among ``names`` that has no implementation here: why."""
    missing: dict[str, str] = {}
    for name in names:
        if lookup(name) is None:
            continue
        try:
            implementation(name)
        except LookupError as error:
            missing[name] = str(error)
    return missing


def load_implementations() -> dict[str, str]:
    """Import every plugin function's implementation; returns name -> problem for those that
    could not be imported (the others are usable; nothing is raised)."""
    _ensure_plugins()
    with _lock:
        for declaration in list(_declarations.values()):
            target = declaration.implementation
            if target is None or declaration.name in _implementations:
                continue
            try:
                impl = _import(target)
            except Exception as error:  # noqa: BLE001  (a broken plugin must not stop the worker)
                _implementation_problems[declaration.name] = (
                    f"importing {target} failed: {type(error).__name__}: {error}"
                )
                continue
            if not callable(impl):
                _implementation_problems[declaration.name] = f"{target} is not callable"
                continue
            _implementations[declaration.name] = impl
            _implementation_problems.pop(declaration.name, None)
        return dict(_implementation_problems)


def plugin_problems() -> list[PluginProblem]:
    """Entry points of the ``derivcheck.functions`` group that could not be declared."""
    _ensure_plugins()
    return list(_plugin_problems)


def reload_plugins() -> None:
    """Read the entry points again (after a package was installed, and in tests)."""
    global _plugins_loaded
    with _lock:
        for name in [n for n, d in _declarations.items() if d.origin != REGISTERED]:
            del _declarations[name], _classes[name]
            _implementations.pop(name, None)
            _implementation_problems.pop(name, None)
        _plugin_problems.clear()
        _plugins_loaded = False
        _changed()
    _ensure_plugins()


def _ensure_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            where = f"{entry_point.name} = {entry_point.value}"
            dist = entry_point.dist.name if entry_point.dist is not None else "unknown package"
            try:
                # The entry point names a torch-free module: a sequence of mappings with
                # name, args, definition and implementation ("module:attribute").
                found = entry_point.load()
                items = list(found() if callable(found) else found)
            except Exception as error:  # noqa: BLE001  (a broken plugin is reported, not fatal)
                _plugin_problems.append(PluginProblem(where, f"{type(error).__name__}: {error}"))
                continue
            for item in items:
                try:
                    declaration = _plugin_declaration(item, f"plugin {dist} ({entry_point.name})")
                    _add(declaration)
                except (OptionError, ExpressionError, TypeError, KeyError) as error:
                    _plugin_problems.append(PluginProblem(where, str(error)))
        _changed()


def _plugin_declaration(item: Any, origin: str) -> Declaration:
    if isinstance(item, Declaration):
        return Declaration(item.name, item.args, item.definition, item.implementation, origin)
    if not isinstance(item, dict):
        raise TypeError(f"a plugin declares mappings, not {type(item).__name__}")
    implementation = item["implementation"]
    if not isinstance(implementation, str) or ":" not in implementation:
        raise TypeError(f"{item.get('name')!r}: implementation must be 'module:attribute'")
    return Declaration(
        name=str(item["name"]),
        args=tuple(str(a) for a in item.get("args", ("x",))),
        definition=str(item["definition"]),
        implementation=implementation,
        origin=origin,
    )


def _import(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


def _add(declaration: Declaration) -> None:
    """Check ``declaration`` and make its SymPy class."""
    name, args = declaration.name, declaration.args
    where = f"custom function {name!r}"
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise OptionError(f"{where}: a name is letters, digits and '_', not starting with '_'")
    if name in FUNCTIONS or name in ALIASES:
        raise OptionError(f"{where}: the name is a built-in function (docs/functions.md)")
    if name in CONSTANTS:
        raise OptionError(f"{where}: the name is a constant")
    with _lock:
        if name in _declarations:
            known = _declarations[name]
            raise OptionError(f"{where}: the name is already declared ({known.origin})")
        if not args or len(args) > MAX_CUSTOM_ARGS or len(set(args)) != len(args):
            raise OptionError(f"{where}: give 1 to {MAX_CUSTOM_ARGS} distinct argument names")
        for arg in args:
            if not isinstance(arg, str) or not arg.isidentifier() or arg.startswith("_"):
                raise OptionError(f"{where}: argument {arg!r} is not a variable name")
            if arg in FUNCTIONS or arg in ALIASES or arg in CONSTANTS or arg in _declarations:
                raise OptionError(f"{where}: argument {arg!r} is the name of a function")
            if arg == name:
                raise OptionError(f"{where}: an argument may not have the function's name")
        try:
            # Under the lock, with the plugins loaded or loading: the functions declared so
            # far are what a definition may call.
            parsed = parse_syntax(declaration.definition, _classes.get)
        except ExpressionError as error:
            raise OptionError(f"{where}: its definition is refused: {error}") from None
        if name in parsed.variables:
            raise OptionError(f"{where}: the definition may not use its own name")
        stray = [v for v in parsed.variables if v not in args]
        if stray:
            raise OptionError(
                f"{where}: the definition uses {stray[0]!r}, which is not an argument "
                f"({', '.join(args)})"
            )
        symbols = tuple(make_symbol(arg) for arg in args)
        cls = type(
            name,
            (CustomFunction,),
            {
                "nargs": len(args),
                "declaration": declaration,
                "body": parsed.expr,
                "symbols": symbols,
                "__module__": __name__,
                "__doc__": f"{name}({', '.join(args)}) = {declaration.definition}",
            },
        )
        _declarations[name] = declaration
        _classes[name] = cls
        _changed()


def _changed() -> None:
    """A new generation: what was derived with the old set of functions is stale (the same
    text may mean otherwise), so caches keyed on :func:`generation` miss."""
    global _generation
    _generation += 1


def generation() -> int:
    """How many times the set of custom functions has changed in this process."""
    return _generation


def in_expression(expr: sympy.Basic) -> list[str]:
    """The custom functions ``expr`` calls, by name, sorted."""
    return sorted({type(node).__name__ for node in expr.atoms(CustomFunction)})


def __getattr__(name: str) -> Any:
    # Pickle finds a custom function's class here by its name (module attribute lookup).
    cls = _classes.get(name)
    if cls is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return cls
