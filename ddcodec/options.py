"""Options declared once: a config field carries its default, its help and its command-line
shape, and the click options are generated from the dataclass.

    ipc: int = option(10, "Pixels: images per class.", min=1)

Nested configs are walked recursively; every leaf name is unique across the tree, so that the
command line and the Python API's keyword overrides stay flat (`spc=...`, `--spc`) while the
code reads `config.latent.spc`. `build(Config, **flat)` routes flat names into the tree.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Callable

import click

from ddcodec.errors import DDCodecError


def option(default: Any, help: str = "", *, min: float | None = None, min_open: bool = False,
           choices: tuple | None = None, path: str | None = None, cli: bool = True,
           flag: str | None = None, default_text: str | None = None,
           alias: Callable[[str], str] | None = None, listed: type | None = None,
           repeat: bool = False):
    """A config field with what the command line needs to offer it. `cli=False` keeps it
    API-only; `default_text` is shown instead of a None default ("dm 0.1, gm 0.01, ...");
    `alias` maps other spellings onto one of `choices` (which --help lists); `min_open`: the
    value must exceed `min` (a temperature > 0). A tuple field is
    either `listed` (one comma-separated option of that type: `--budgets 6000,12000`) or
    `repeat`ed (the option given once per value: `--loss dm --loss gm`)."""
    meta = {"help": help, "min": min, "min_open": min_open, "choices": choices, "path": path, "cli": cli and bool(help),
            "flag": flag, "default_text": default_text, "alias": alias, "listed": listed,
            "repeat": repeat}
    return dataclasses.field(default=default, metadata={"option": meta})


def _is_config(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def leaves(cls) -> dict[str, tuple[tuple[str, ...], dataclasses.Field, Any]]:
    """Every leaf option of a (nested) config: name -> (path of sub-configs, field, type)."""
    out: dict[str, tuple[tuple[str, ...], dataclasses.Field, Any]] = {}
    types = _field_types(cls)
    for f in dataclasses.fields(cls):
        tp = types[f.name]
        if _is_config(tp):
            for name, (path, leaf, leaf_type) in leaves(tp).items():
                if name in out:
                    raise TypeError(f"option {name!r} is declared twice in {cls.__name__}")
                out[name] = ((f.name, *path), leaf, leaf_type)
        else:
            if f.name in out:
                raise TypeError(f"option {f.name!r} is declared twice in {cls.__name__}")
            out[f.name] = ((), f, tp)
    return out


def build(cls, **flat):
    """A nested config from flat option names; unknown names are refused with one line."""
    known = leaves(cls)
    unknown = sorted(set(flat) - set(known))
    if unknown:
        raise DDCodecError(f"unknown option{'s' if len(unknown) > 1 else ''} "
                           f"{', '.join(unknown)} for {cls.__name__}")
    return _build(cls, flat)


def _build(cls, flat: dict):
    types = _field_types(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if _is_config(types[f.name]):
            values[f.name] = _build(types[f.name], flat)
        elif f.name in flat:
            value = flat[f.name]
            # a flag given through the API: "no" or 0 would pass as truthy or falsy unnoticed
            if _optional(types[f.name]) is bool and not isinstance(value, bool) and not (
                    value is None and _optional(types[f.name]) is not types[f.name]):
                raise DDCodecError(f"option {f.name} takes True or False, not {value!r}")
            values[f.name] = value
    return cls(**values)


def flatten(config) -> dict[str, Any]:
    """The leaf values of a (nested) config by their flat names."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten(value))
        else:
            out[f.name] = value
    return out


def _optional(tp) -> Any:
    """int | None -> int."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


class AliasChoice(click.Choice):
    """A choice that also takes other spellings of its values (ConvNet-D3 for convnet)."""

    def __init__(self, choices, alias: Callable[[str], str] | None = None):
        super().__init__(choices)
        self.alias = alias

    def convert(self, value, param, ctx):
        if self.alias is not None and isinstance(value, str):
            try:
                value = self.alias(value)
            except Exception:  # not an alias: the choice's own message lists the values
                pass
        return super().convert(value, param, ctx)


def listed_text(values) -> str:
    """A tuple as the command line writes it: 6000,12000,24576."""
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _parse_listed(kind: type, flag: str) -> Callable:
    def parse(ctx, param, text):
        try:
            values = tuple(kind(v) for v in str(text).replace(" ", "").split(",") if v)
        except ValueError:
            what = "numbers" if kind in (int, float) else "values"
            raise click.BadParameter(f"{flag} must be comma-separated {what}, got {text!r}") \
                from None
        if not values:
            raise click.BadParameter(f"{flag} is empty")
        return values
    return parse


def _click_option(name: str, f: dataclasses.Field, tp) -> Callable:
    meta = f.metadata["option"]
    base = _optional(tp)
    flag = meta["flag"] or "--" + name.replace("_", "-")
    kwargs: dict[str, Any] = {"help": meta["help"]}
    if meta["default_text"]:
        kwargs["help"] = f"{meta['help']}  [default: {meta['default_text']}]"
    if meta["listed"]:
        return click.option(flag, name, default=listed_text(f.default), show_default=True,
                            callback=_parse_listed(meta["listed"], flag), **kwargs)
    if meta["repeat"]:
        kind = click.Choice([str(c) for c in meta["choices"]]) if meta["choices"] else str
        shown = f" [default: {listed_text(f.default)}]" if f.default else ""
        kwargs["help"] = f"{kwargs['help']} Repeatable.{shown}"
        return click.option(flag, name, type=kind, multiple=True, default=f.default,
                            callback=lambda ctx, param, value: tuple(value), **kwargs)
    if base is bool:  # a flag, or an on/off pair ("--dsa/--no-dsa")
        return click.option(flag, name, is_flag=True, default=bool(f.default), help=kwargs["help"],
                            show_default="/" in flag)
    if meta["choices"]:
        kind = AliasChoice([str(c) for c in meta["choices"]], meta["alias"])
        if base is int:
            kwargs["callback"] = lambda ctx, param, value: None if value is None else int(value)
    elif meta["path"]:
        kind = click.Path(file_okay=meta["path"] == "file", dir_okay=meta["path"] == "dir")
    elif meta["min"] is not None:
        kind = (click.IntRange(min=meta["min"]) if base is int else
                click.FloatRange(min=meta["min"], min_open=meta.get("min_open", False)))
    else:
        kind = {int: int, float: float, str: str}.get(base, str)
    default = f.default
    if meta["choices"] and default is not None:
        default = str(default)
    return click.option(flag, name, type=kind, default=default,
                        show_default=default is not None and not meta["default_text"], **kwargs)


def click_options(cls, exclude: tuple[str, ...] = ()):
    """A decorator adding a click option for every command-line leaf of `cls`, in field order."""
    generated = [_click_option(name, f, tp) for name, (_, f, tp) in leaves(cls).items()
                 if f.metadata.get("option", {}).get("cli") and name not in exclude]

    def decorate(func):
        for make in reversed(generated):
            func = make(func)
        return func

    return decorate
