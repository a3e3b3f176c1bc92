"""Load a search-space YAML file into a :class:`Spec`, with errors that name the file and line.

    spec = load_spec("spaces/asl50.yaml", overrides=["budget.trials=4"], quick=False)

Read the YAML, keeping the line of every key -> default ``name`` to the file's stem -> apply the quick profile
(``--quick``), then the ``--set`` overrides -> validate -> map each error's location to its YAML line, or to the
``--set``/``--quick`` that produced the value.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import BaseModel, ValidationError

from search_spaces.entrypoint import DEFAULT_ENTRYPOINT, EntrypointError, EntrypointInfo, describe
from search_spaces.errors import SpecError, SpecIssue
from search_spaces.schema import Atoms, Spec, atoms, resolve_key
from search_spaces.sections import KINDS, SAMPLER_CLASSES, sampler_options
from trials.config import did_you_mean, unknown_key

BUILTIN_DIR = Path(__file__).resolve().with_name("spaces")
# --quick on a space without a quick: section; training keys only for the core (others may not take them).
DEFAULT_QUICK = {"training.dataset.samples_per_class": 8, "training.epochs": 3, "budget.trials": 6,
                 "budget.max_concurrent": 2}
QUICK_SUFFIX = "-quick"


def list_builtin_spaces() -> list[tuple[str, str]]:
    """``(name, description)`` of every built-in space, sorted by name."""
    found = []
    for path in sorted(BUILTIN_DIR.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            data = None
        found.append((path.stem, " ".join(str(data.get("description", "") if isinstance(data, dict) else "").split())))
    return found


def resolve_space_path(arg: str | os.PathLike[str]) -> Path:
    """An existing local file wins; else ``spaces/NAME.yaml``, ``NAME.yaml`` or ``NAME`` name a built-in space."""
    path = Path(arg).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise SpecError.single(str(arg), "is a folder, not a search-space file")
    name = path.stem if path.suffix in (".yaml", ".yml") else path.name
    if path.parent.as_posix() in (".", "spaces", "search_spaces/spaces") and (BUILTIN_DIR / f"{name}.yaml").is_file():
        return BUILTIN_DIR / f"{name}.yaml"
    names = [n for n, _ in list_builtin_spaces()]
    raise SpecError.single(str(arg), f"no such file, and not a built-in space{did_you_mean(name, names)}; "
                                     f"built-in spaces: {', '.join(names)} (name one as spaces/NAME.yaml or NAME)")


def _read_yaml(text: str, file: str) -> tuple[Any, dict[Atoms, int]]:
    """The data and the line of every key and list item; a key written twice is an error."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = None if root is None else yaml.SafeLoader("").construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p) or str(exc)
        raise SpecError.single(file, f"invalid YAML: {message}", line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise SpecError.single(file, f"invalid YAML: {exc}") from None
    lines: dict[Atoms, int] = {}
    twice: list[SpecIssue] = []

    def walk(node: yaml.Node, where: Atoms) -> None:
        lines.setdefault(where, node.start_mark.line + 1)
        if isinstance(node, yaml.SequenceNode) and len(where) < 64:  # 64: an alias that contains itself
            for i, item in enumerate(node.value):
                walk(item, (*where, str(i)))
        elif isinstance(node, yaml.MappingNode) and len(where) < 64:
            seen: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    if key.value in seen:
                        twice.append(SpecIssue(file, line, ".".join((*where, key.value)),
                                               f"duplicate key (first at line {seen[key.value]})"))
                    seen.setdefault(key.value, line)
                    lines.setdefault(here := (*where, *atoms([key.value])), line)
                    walk(value, here)

    if root is not None:
        walk(root, ())
    if twice:
        raise SpecError(sorted(twice, key=lambda i: i.line or 0))
    return data, lines


def set_path(data: dict[str, Any], key: str, value: Any) -> tuple[dict[str, Any] | list[Any], Any]:
    """Set a dotted ``key`` in raw spec data (an existing dotted key such as ``model.size`` matches whole).

    Returns the mapping or list that now holds the value, and the value it replaced (None if there was none).
    """
    parts, node, i = key.split("."), data, 0
    if not all(parts):
        raise ValueError(f"{key!r} is not a dotted key such as budget.trials")
    while True:
        if isinstance(node, list):
            if not parts[i].isdigit() or int(parts[i]) >= len(node):
                raise ValueError(f"{'.'.join(parts[:i])} has no item {parts[i]!r} (it has {len(node)} items)")
            name, j, old = int(parts[i]), i + 1, node[int(parts[i])]
        elif isinstance(node, dict):  # the longest key that exists; a new key in quick: stays dotted, others nest
            j = next((j for j in range(len(parts), i, -1) if ".".join(parts[i:j]) in node),
                     len(parts) if parts[0] == "quick" else i + 1)
            name = ".".join(parts[i:j])
            old = node.get(name)
        else:
            raise ValueError(f"{'.'.join(parts[:i])} is {node!r}, not a mapping, so {key} cannot be set")
        if j == len(parts):
            node[name] = value
            return node, old
        if old is None:
            node[name] = {}
        node, i = node[name], j


def apply_override(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key``; a changed ``type`` drops the options that the new type does not take (the old type's)."""
    section, _, last = key.rpartition(".")
    node, old = set_path(data, key, value)
    if last != "type" or old == value or not isinstance(node, dict):
        return
    if section == "sampler" and value in SAMPLER_CLASSES:
        kept = {"type", "seed", *sampler_options(value)}
    elif model := KINDS.get("params" if section.startswith("params.") else section, {}).get(value):
        kept = set(model.model_fields)
    else:
        return
    for name in [n for n in node if n not in kept]:
        del node[name]


def parse_override(expr: str) -> tuple[str, Any]:
    """``"budget.trials=4"`` -> ``("budget.trials", 4)``: the value is read as YAML, as in a space file (``[a, b]``,
    ``1e-4``, ``80%``; an empty value is null, like ``key:`` in YAML). Raises ValueError."""
    key, sep, text = expr.partition("=")
    if not sep or not key.strip():
        raise ValueError("expected KEY=VALUE, e.g. epochs=3 or budget.trials=4")
    try:
        return key.strip(), yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ValueError(f"cannot read the value {text!r}: {exc}") from None


def quick_profile(data: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The overrides ``--quick`` applies, and whether they come from the file's ``quick:`` section."""
    if isinstance(data.get("quick"), Mapping):
        return dict(data["quick"]), True
    core = data.get("entrypoint", DEFAULT_ENTRYPOINT) == DEFAULT_ENTRYPOINT
    profile = {k: v for k, v in DEFAULT_QUICK.items() if core or not k.startswith("training.")}
    scheduler = data.get("scheduler")
    if isinstance(scheduler, Mapping):  # the scheduler keeps its type; its periods shrink to the quick run
        if "grace_period" in scheduler:
            profile["scheduler.grace_period"] = 1
        if "max_t" in scheduler:
            profile["scheduler.max_t"] = profile.get("training.epochs", scheduler["max_t"])
    return profile, False


def _model_holding(loc: Sequence[Any]) -> tuple[type[BaseModel], str]:
    """The model that refused an unknown key at pydantic's ``loc`` (where a typed section's type still stands)."""
    tag = {"params": 2, "scheduler": 1}.get(loc[0])
    if tag is not None and len(loc) > tag + 1 and loc[tag] in KINDS[loc[0]]:
        return KINDS[loc[0]][loc[tag]], f" for a {loc[tag]} {loc[0].removesuffix('s')}"
    model = Spec.model_fields[loc[0]].annotation if len(loc) > 1 else Spec
    return (model if isinstance(model, type) and issubclass(model, BaseModel) else Spec), ""


def _messages(error: Mapping[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """One pydantic error -> ``(path, message)`` pairs, the path as written in the file."""
    raw = tuple(p for p in error["loc"] if p != "[key]")
    tag = {"params": 2, "scheduler": 1}.get(raw[0]) if raw else None  # where a typed section's type stands
    loc = raw[:tag] + raw[tag + 1:] if tag and len(raw) > tag and raw[tag] in KINDS[raw[0]] else raw
    kind, given, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "value_error":
        return [(loc, str(ctx["error"]))]
    if kind == "extra_forbidden":
        model, owner = _model_holding(raw)
        return [(loc, unknown_key(loc[-1], list(model.model_fields)).replace(";", owner + ";", 1))]
    if kind == "union_tag_not_found":
        fields = sorted({f for model in KINDS[loc[0]].values() for f in model.model_fields})
        return [((*loc, k), unknown_key(k, fields)) for k in given if k not in fields] or \
            [((*loc, "type"), f"is required (one of: {', '.join(KINDS[loc[0]])})")]
    if kind in ("literal_error", "union_tag_invalid"):
        options = re.findall(r"'([^']*)'", str(ctx.get("expected") or ctx.get("expected_tags")))
        loc, given = ((*loc, "type"), ctx["tag"]) if kind == "union_tag_invalid" else (loc, given)
        hint = did_you_mean(given, options).strip(" ()")
        return [(loc, f"must be one of {', '.join(options)} (got {given!r}{'; ' + hint if hint else ''})")]
    if kind == "missing":
        return [(loc, "is required")]
    scalar = kind != "spec" and (isinstance(given, str | int | float | bool) or given is None)
    return [(loc, error["msg"] + (f" (got {given!r})" if scalar else ""))]


def _issue(file: str, lines: dict[Atoms, int], origins: list[tuple[Atoms, str, int | None]], path: Sequence[Any],
           message: str) -> SpecIssue:
    """Where a problem's value came from: the last override that set it or a part of it, else the file."""
    at, field = atoms(path), ".".join(map(str, path))
    line = next((lines[at[:n]] for n in range(len(at), 0, -1) if at[:n] in lines), None)
    for over, label, over_line in reversed(origins):
        if at[:len(over)] == over:  # it set this value, or a section holding it
            return SpecIssue(file, over_line, field, message, label)
        if over[:len(at)] == at or (at[:-1] and over[:len(at) - 1] == at[:-1] and at[:-1] not in lines):
            return SpecIssue(file, line, field, message, label)  # it changed or made a part of this value
    return SpecIssue(file, line, field, message)


def load_spec(path: str | os.PathLike[str], overrides: Sequence[str] = (), quick: bool = False) -> Spec:
    """Read, override and validate a search-space file (a path, or a built-in name); raises SpecError."""
    resolved = resolve_space_path(path)
    relative = os.path.relpath(resolved)  # a built-in space is named from here when it can be
    file = str(path) if resolved == Path(path).expanduser() else relative if not relative.startswith("..") else \
        str(resolved)
    try:
        data, lines = _read_yaml(resolved.read_text(encoding="utf-8"), file)
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError.single(file, f"cannot read the file: {exc}") from None
    if data is None:
        raise SpecError.single(file, "the file is empty; a search space needs at least a params: section")
    if not isinstance(data, dict):
        raise SpecError.single(file, f"the top level must be a mapping of sections (name, training, params, ...), "
                                     f"not {'a list' if isinstance(data, list) else type(data).__name__}", line=1)
    return _build(data, file, lines, resolved.parent, overrides, quick, stem=resolved.stem)


def spec_from_dict(data: Mapping[str, Any], *, file: str = "<spec>", base_dir: str | os.PathLike[str] | None = None,
                   overrides: Sequence[str] = (), quick: bool = False) -> Spec:
    """Validate raw spec data that did not come from a file (e.g. a stored ``to_yaml_dict()``); no line numbers."""
    if not isinstance(data, Mapping):
        raise SpecError.single(file, "the spec must be a mapping of sections")
    return _build(dict(data), file, {}, Path(base_dir) if base_dir is not None else None, overrides, quick)


def _entry_of(data: Mapping[str, Any], base_dir: Path | None) -> EntrypointInfo | None:
    try:
        return describe(str(data.get("entrypoint") or DEFAULT_ENTRYPOINT), base_dir)
    except EntrypointError:
        return None  # the spec's validation says why


def _build(original: dict[str, Any], file: str, lines: dict[Atoms, int], base_dir: Path | None,
           overrides: Sequence[str], quick: bool, stem: str | None = None) -> Spec:
    data = copy.deepcopy(original)
    if stem and "name" not in data:
        data["name"] = stem
    steps: list[tuple[str, Any, str, int | None]] = []  # (key, value, where it comes from, its line)
    if quick:
        profile, from_file = quick_profile(data)
        steps = [(str(k), v, "--quick", lines.get(("quick", *atoms([k]))) if from_file else None)
                 for k, v in profile.items()]
        if "name" not in profile and isinstance(data.get("name"), str) and not data["name"].endswith(QUICK_SUFFIX):
            data["name"] += QUICK_SUFFIX  # a smoke run never mixes its trials into the real study
    for expr in overrides:
        try:
            steps.append((*parse_override(expr), f"--set {expr}", None))
        except ValueError as exc:
            raise SpecError.single(file, str(exc), source=f"--set {expr}") from None
    origins: list[tuple[Atoms, str, int | None]] = []
    for key, value, label, line in steps:
        try:
            path = resolve_key(key, _entry_of(data, base_dir), data.get("params") or {})
        except ValueError as exc:
            if label == "--quick":
                continue  # the spec's check of its quick: section says why
            raise SpecError.single(file, str(exc), source=label) from None
        try:
            apply_override(data, path, copy.deepcopy(value))
        except ValueError as exc:
            raise SpecError.single(file, str(exc), source=label) from None
        origins.append((atoms([path]), label, line))
    try:
        spec = Spec.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        issues = [_issue(file, lines, origins, path, message) for error in exc.errors()
                  for path, message in _messages(error)]
        raise SpecError(sorted(dict.fromkeys(issues), key=lambda i: (i.line is None, i.line or 0))) from None
    if not quick and isinstance(data.get("quick"), Mapping):  # the quick: section is checked whether used or not
        try:
            _build(original, file, lines, base_dir, overrides, True, stem)
        except SpecError as exc:
            raise SpecError([i if i.source else SpecIssue(i.file, i.line, i.field, i.message, "--quick")
                             for i in exc.issues]) from None
    spec._source, spec._quick_applied, spec._overrides = file, quick, tuple(overrides)
    spec._base_dir = str(base_dir.resolve()) if base_dir is not None else None
    return spec


def training_overrides(exprs: Iterable[str]) -> dict[str, Any]:
    """``sweeper train --set KEY=VALUE``: the flat settings of one training run; ``training.epochs`` is ``epochs``."""
    out = {}
    for expr in exprs:
        try:
            key, value = parse_override(expr)
        except ValueError as exc:
            raise SpecError.single("", str(exc), source=f"--set {expr}") from None
        out[key.removeprefix("training.")] = value
    return out


class Standalone(NamedTuple):
    """What ``sweeper train`` runs: ``import_target(entrypoint, base_dir)(config, report, checkpoint_dir)``."""

    entrypoint: str
    base_dir: str | None
    config: dict[str, Any]


def standalone(space: str | os.PathLike[str] | None, overrides: Mapping[str, Any]) -> Standalone:
    """One training run outside a sweep: the space's training block and fixed params (without a space, the core's
    defaults), then ``overrides`` (:func:`training_overrides`) on top, checked by the entrypoint before anything
    runs. A param the space samples is a plain setting here: nothing samples it."""
    spec = load_spec(space) if space is not None else None
    entry = spec._entrypoint if spec is not None else describe(DEFAULT_ENTRYPOINT)
    assert entry is not None
    file, config = str(space or ""), spec.base_config() if spec is not None else {}
    for key, value in overrides.items():
        if key.split(".")[0] in Spec.model_fields and key not in (entry.settings or {}):
            raise SpecError.single(file, f"{key} belongs to a sweep, not to one training run; sweeper train takes "
                                         f"the settings of {entry.target} (e.g. epochs=3)", source=f"--set {key}")
        try:
            config[key] = entry.coerce(key, value)
        except ValueError as exc:
            raise SpecError.single(file, str(exc), source=f"--set {key}") from None
    if problem := entry.check(config):
        raise SpecError.single(file, f"{entry.target} refuses the training config: {problem}")
    return Standalone(entry.target, spec.base_dir if spec is not None else None, config)


def render_spec(spec: Spec) -> str:
    """The resolved spec as YAML text (what ``sweeper validate`` prints)."""
    notes = [f"# resolved from {spec.source_path}"] * bool(spec.source_path) + ["# with --quick"] * spec.quick_applied
    body = yaml.safe_dump(spec.to_yaml_dict(), sort_keys=False, default_flow_style=False, allow_unicode=True,
                          width=110)
    return "\n".join([*notes, *(f"# with --set {expr}" for expr in spec.overrides), body])
