"""Load a search-space YAML file into a :class:`Spec`, with errors that name the file and line.

    spec = load_spec("spaces/asl50.yaml", overrides=["budget.trials=4"], quick=False)

Order of work: read the YAML (keeping the line of every key) -> default ``name`` to the file's stem -> apply the
quick profile (``--quick``) -> apply ``--set`` overrides -> validate with pydantic -> map each error's location to
its YAML line, or to the ``--set``/``--quick`` that produced the value.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import BaseModel, ValidationError

from search_spaces.entrypoint import DEFAULT_ENTRYPOINT, EntrypointError, EntrypointInfo, describe
from search_spaces.errors import SpecError, SpecIssue
from search_spaces.schema import Spec, resolve_key
from search_spaces.sections import KINDS, SAMPLER_CLASSES, sampler_options
from trials.config import did_you_mean, unknown_key

BUILTIN_DIR = Path(__file__).resolve().with_name("spaces")

# Applied by --quick when a space has no ``quick:`` section: tiny data, few epochs, few trials. Training keys only
# apply to the shared core (other entrypoints may not accept them).
DEFAULT_QUICK: dict[str, Any] = {
    "training.dataset.samples_per_class": 8,
    "training.epochs": 3,
    "budget.trials": 6,
    "budget.max_concurrent": 2,
}
QUICK_SUFFIX = "-quick"
_MERGE_TAG = "tag:yaml.org,2002:merge"
Atoms = tuple[str, ...]


def list_builtin_spaces() -> list[tuple[str, str]]:
    """``(name, description)`` of every built-in space, sorted by name."""
    found = []
    for path in sorted(BUILTIN_DIR.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            data = None
        description = data.get("description", "") if isinstance(data, dict) else ""
        found.append((path.stem, " ".join(str(description).split())))
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


# -- dotted paths: one spelling for YAML lines, --set keys and error locations ------------------------------------
def atoms(path: Sequence[Any]) -> Atoms:
    """``("training", "dataset.classes", 0)`` -> ``("training", "dataset", "classes", "0")``."""
    return tuple(a for part in path for a in (part.split(".") if isinstance(part, str) else [str(part)]))


def _read_yaml(text: str, file: str) -> tuple[Any, dict[Atoms, int]]:
    """The data and the line of every key and list item, by its atoms; duplicate keys are errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = None if root is None else yaml.SafeLoader("").construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p) or str(exc)
        raise SpecError.single(file, f"invalid YAML: {message}", line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise SpecError.single(file, f"invalid YAML: {exc}") from None
    lines: dict[Atoms, int] = {(): root.start_mark.line + 1} if root is not None else {}
    duplicates: list[SpecIssue] = []
    stack: list[tuple[yaml.Node, Atoms]] = [(root, ())] if root is not None else []
    while stack:
        node, where = stack.pop()
        if len(where) > 64:  # an alias that contains itself
            continue
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG:
                    line = key.start_mark.line + 1
                    if key.value in seen:
                        duplicates.append(SpecIssue(file, line, ".".join((*where, key.value)),
                                                    f"duplicate key (first at line {seen[key.value]})"))
                    seen.setdefault(key.value, line)
                    lines.setdefault(path := (*where, *atoms([key.value])), line)
                    stack.append((value, path))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines.setdefault((*where, str(i)), item.start_mark.line + 1)
                stack.append((item, (*where, str(i))))
    if duplicates:
        raise SpecError(sorted(duplicates, key=lambda i: i.line or 0))
    return data, lines


def set_path(data: dict[str, Any], key: str, value: Any) -> tuple[dict[str, Any] | list[Any], Any]:
    """Set a dotted ``key`` in raw spec data (an existing dotted key such as ``model.size`` matches whole).

    Returns the mapping or list that now holds the value, and the value it replaced (None if there was none).
    """
    parts = key.split(".")
    if not all(parts):
        raise ValueError(f"{key!r} is not a dotted key such as budget.trials")
    node: Any = data
    i = 0
    while True:
        if isinstance(node, list):
            if not parts[i].isdigit() or int(parts[i]) >= len(node):
                raise ValueError(f"{'.'.join(parts[:i])} has no item {parts[i]!r} (it has {len(node)} items)")
            name: Any = int(parts[i])
            j = i + 1
        elif isinstance(node, dict):
            j = next((j for j in range(len(parts), i, -1) if ".".join(parts[i:j]) in node), None)
            if j is None:  # a new key: the quick section's keys stay dotted, others nest
                j = len(parts) if parts[0] == "quick" or i == len(parts) - 1 else i + 1
            name = ".".join(parts[i:j])
        else:
            raise ValueError(f"{'.'.join(parts[:i])} is {node!r}, not a mapping, so {key} cannot be set")
        old = node.get(name) if isinstance(node, dict) else node[name]
        if j == len(parts):
            node[name] = value
            return node, old
        if old is None:
            node[name] = {}
        node, i = node[name], j


def _kept_on_type_change(section: str, kind: Any) -> set[str] | None:
    """The keys a section of this ``type`` accepts (None: not a typed section, or an unknown type)."""
    if section == "sampler" and kind in SAMPLER_CLASSES:
        return {"type", "seed", *sampler_options(kind)}
    model = KINDS.get("params" if section.startswith("params.") else section, {}).get(kind)
    return set(model.model_fields) if model else None


def apply_override(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key``; a changed ``type`` drops the options the new type does not take (the old type's)."""
    section, _, last = key.rpartition(".")
    node, old = set_path(data, key, value)
    kept = _kept_on_type_change(section, value) if last == "type" and old != value else None
    if kept is not None and isinstance(node, dict):
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


def _entry_of(data: Mapping[str, Any], base_dir: Path | None) -> EntrypointInfo | None:
    try:
        return describe(str(data.get("entrypoint") or DEFAULT_ENTRYPOINT), base_dir)
    except EntrypointError:
        return None  # the spec's validation reports it


def quick_profile(data: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The overrides ``--quick`` applies, and whether they come from the file's ``quick:`` section."""
    if isinstance(data.get("quick"), Mapping):
        return dict(data["quick"]), True
    profile = dict(DEFAULT_QUICK)
    if data.get("entrypoint", DEFAULT_ENTRYPOINT) != DEFAULT_ENTRYPOINT:
        profile = {k: v for k, v in profile.items() if not k.startswith("training.")}
    scheduler = data.get("scheduler")
    if isinstance(scheduler, Mapping):  # the scheduler keeps its type; its periods shrink to the quick run
        if "grace_period" in scheduler:
            profile["scheduler.grace_period"] = 1
        if "max_t" in scheduler:
            profile["scheduler.max_t"] = profile.get("training.epochs", scheduler["max_t"])
    return profile, False


def apply_quick(data: Mapping[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
    """Raw spec data with the quick profile applied: the file's ``quick:`` section, else :data:`DEFAULT_QUICK`.

    The study name gets a ``-quick`` suffix (unless the profile sets ``name``) so smoke runs never mix their trials
    into the real study. A key that means nothing is left to the spec's check of the ``quick:`` section.
    """
    out = copy.deepcopy(dict(data))
    profile, _ = quick_profile(out)
    entry = _entry_of(out, base_dir)
    for key, value in profile.items():
        try:
            apply_override(out, resolve_key(str(key), entry, out.get("params") or {}), copy.deepcopy(value))
        except ValueError:
            continue
    if "name" not in profile and isinstance(out.get("name"), str) and not out["name"].endswith(QUICK_SUFFIX):
        out["name"] = out["name"] + QUICK_SUFFIX
    return out


# -- pydantic's errors -> file:line issues --------------------------------------------------------------------------
def _model_holding(loc: Sequence[Any]) -> tuple[type[BaseModel], str]:
    """The model whose field list an unknown key at ``loc`` is measured against, and a name for it."""
    for part in reversed(loc[:-1]):  # a typed section's location holds its type, e.g. scheduler.asha.brackets
        for section, kinds in KINDS.items():
            if part in kinds:
                return kinds[part], f" for a {part} {section.removesuffix('s')}"
    section = Spec.model_fields.get(str(loc[0])) if len(loc) > 1 else None
    model = section.annotation if section is not None else Spec
    return (model, "") if isinstance(model, type) and issubclass(model, BaseModel) else (Spec, "")


def _strip_tags(loc: Sequence[Any], data: Any) -> tuple[Any, ...]:
    """A pydantic location without the tags of discriminated unions (``params.lr.float.low`` -> ``params.lr.low``)."""
    out, node = [], data
    for part in loc:
        if isinstance(node, Mapping) and part not in node and node.get("type") == part:
            continue
        out.append(part)
        ok = isinstance(node, Mapping) or (isinstance(node, list) and isinstance(part, int) and part < len(node))
        node = node[part] if ok and (not isinstance(node, Mapping) or part in node) else None
    return tuple(out)


def _messages(error: Mapping[str, Any], data: Any) -> list[tuple[tuple[Any, ...], str]]:
    """One pydantic error -> ``(path, message)`` pairs, the path as the user wrote it."""
    raw = tuple(p for p in error["loc"] if p != "[key]")
    loc, kind, given, ctx = _strip_tags(raw, data), error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "value_error":
        return [(loc, str(ctx["error"]))]
    if kind == "extra_forbidden":
        model, owner = _model_holding(raw)
        return [(loc, f"{unknown_key(loc[-1], list(model.model_fields))}".replace(";", owner + ";", 1))]
    if kind == "missing":
        return [(loc, "is required")]
    if kind in ("literal_error", "union_tag_invalid", "union_tag_not_found"):
        options = re.findall(r"'([^']*)'", str(ctx.get("expected") or ctx.get("expected_tags") or ""))
        if kind == "literal_error":
            hint = did_you_mean(given, options).strip(" ()")
            return [(loc, f"must be one of {', '.join(options)} (got {given!r}{'; ' + hint if hint else ''})")]
        kinds = KINDS.get(str(loc[0]), {})
        if kind == "union_tag_invalid":
            hint = did_you_mean(ctx.get("tag"), list(kinds)).strip(" ()")
            return [((*loc, "type"), f"must be one of {', '.join(kinds)} (got {ctx.get('tag')!r}"
                                     f"{'; ' + hint if hint else ''})")]
        fields = sorted({f for model in kinds.values() for f in model.model_fields})
        unknown = [k for k in (given if isinstance(given, Mapping) else {}) if k not in fields]
        return [((*loc, k), unknown_key(k, fields)) for k in unknown] or [((*loc, "type"), f"is required (one of: "
                                                                                            f"{', '.join(kinds)})")]
    if kind == "spec":
        return [(loc, error["msg"])]
    scalar = isinstance(given, str | int | float | bool) or given is None
    return [(loc, error["msg"] + (f" (got {given!r})" if scalar else ""))]


class _Origins:
    """Where values came from: the file's lines, then the quick profile and ``--set`` overrides, in that order."""

    def __init__(self, file: str, lines: dict[Atoms, int]) -> None:
        self.file, self.lines = file, lines
        self.overrides: list[tuple[Atoms, str, int | None]] = []  # (atoms of the key, label, line)

    def line(self, path: Atoms) -> int | None:
        return next((self.lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in self.lines), None)

    def issue(self, path: Sequence[Any], message: str) -> SpecIssue:
        at, field = atoms(path), ".".join(str(p) for p in path)
        for over, label, over_line in reversed(self.overrides):
            if at[:len(over)] == over:  # the override set this value, or a section holding it
                return SpecIssue(self.file, over_line, field, message, label)
            if over[:len(at)] == at or (at[:-1] and over[:len(at) - 1] == at[:-1] and at[:-1] not in self.lines):
                return SpecIssue(self.file, self.line(at), field, message, label)  # it changed or made a part of it
        return SpecIssue(self.file, self.line(at), field, message)


def _display(path: Path) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def load_spec(path: str | os.PathLike[str], overrides: Sequence[str] = (), quick: bool = False) -> Spec:
    """Read, override and validate a search-space file (a path, or a built-in name); raises SpecError."""
    resolved = resolve_space_path(path)
    file = str(path) if Path(path).expanduser().is_file() else _display(resolved)
    try:
        text = resolved.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError.single(file, f"cannot read the file: {exc}") from None
    data, lines = _read_yaml(text, file)
    if data is None:
        raise SpecError.single(file, "the file is empty; a search space needs at least a params: section")
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise SpecError.single(file, f"the top level must be a mapping of sections (name, training, params, ...), "
                                     f"not {kind}", line=lines.get(()))
    return _build(data, file, lines, resolved.parent, resolved.stem, overrides, quick)


def spec_from_dict(data: Mapping[str, Any], *, file: str = "<spec>", base_dir: str | os.PathLike[str] | None = None,
                   overrides: Sequence[str] = (), quick: bool = False) -> Spec:
    """Validate raw spec data that did not come from a file (e.g. a stored ``to_yaml_dict()``); no line numbers."""
    if not isinstance(data, Mapping):
        raise SpecError.single(file, "the spec must be a mapping of sections")
    return _build(dict(data), file, {}, Path(base_dir) if base_dir is not None else None, None, overrides, quick)


def _build(data: dict[str, Any], file: str, lines: dict[Atoms, int], base_dir: Path | None, stem: str | None,
           overrides: Sequence[str], quick: bool) -> Spec:
    original = data
    origins = _Origins(file, lines)
    data = copy.deepcopy(data)
    if stem is not None and "name" not in data:
        data["name"] = stem
    if quick:
        profile, from_file = quick_profile(data)
        entry = _entry_of(data, base_dir)
        for key in profile:
            with_line = lines.get(("quick", *atoms([key]))) if from_file else None
            try:
                origins.overrides.append((atoms([resolve_key(str(key), entry, data.get("params") or {})]), "--quick",
                                          with_line))
            except ValueError:
                continue
        try:
            data = apply_quick(data, base_dir)
        except ValueError as exc:
            raise SpecError.single(file, str(exc), source="--quick") from None
    for expr in overrides:
        label = f"--set {expr}"
        try:
            key, value = parse_override(expr)
            key = resolve_key(key, _entry_of(data, base_dir), data.get("params") or {})
            apply_override(data, key, value)
        except ValueError as exc:
            raise SpecError.single(file, str(exc), source=label) from None
        origins.overrides.append((atoms([key]), label, None))
    try:
        spec = Spec.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        issues = [origins.issue(path, message) for error in exc.errors() for path, message in _messages(error, data)]
        raise SpecError(sorted(dict.fromkeys(issues), key=lambda i: (i.line is None, i.line or 0))) from None
    if not quick and isinstance(data.get("quick"), Mapping):  # the quick: section is checked whether used or not
        try:
            _build(original, file, lines, base_dir, stem, overrides, quick=True)
        except SpecError as exc:
            raise SpecError([SpecIssue(i.file, i.line, i.field, i.message, i.source or "--quick")
                             for i in exc.issues]) from None
    spec._source = file
    spec._quick_applied = quick
    spec._overrides = tuple(overrides)
    spec._base_dir = str(base_dir.resolve()) if base_dir is not None else None
    return spec


class Standalone(NamedTuple):
    """What ``sweeper train`` runs: ``import_target(entrypoint, base_dir)(config, report, checkpoint_dir)``."""

    entrypoint: str
    base_dir: str | None
    config: dict[str, Any]


def standalone(space: str | os.PathLike[str] | None, overrides: Sequence[str] = ()) -> Standalone:
    """One training run outside a sweep: the space's training block and fixed params (or the core's defaults
    without a space), then ``--set KEY=VALUE`` on top, checked by the entrypoint before anything runs.

    The keys are the flat training settings, as in the trial config (``epochs``, ``model.size``; ``training.epochs``
    means the same). A sampled param is a plain setting here: nothing samples it.
    """
    spec = load_spec(space) if space is not None else None
    entry = spec._entrypoint if spec is not None else describe(DEFAULT_ENTRYPOINT)
    assert entry is not None
    file = str(space) if space is not None else ""
    config = spec.base_config() if spec is not None else {}
    for expr in overrides:
        try:
            key, value = parse_override(expr)
            key = key.removeprefix("training.")
            if key.split(".")[0] in Spec.model_fields and (entry.settings is None or key not in entry.settings):
                raise ValueError(f"{key} is part of a sweep, not of one training run; sweeper train takes the "
                                 f"training settings (e.g. epochs=3)")
            config[key] = entry.setting(key, value)
        except ValueError as exc:
            raise SpecError.single(file, str(exc), source=f"--set {expr}") from None
    if problem := entry.check(config):
        raise SpecError.single(file, f"{entry.target} refuses the training config: {problem}")
    return Standalone(entry.target, spec.base_dir if spec is not None else None, config)


def render_spec(spec: Spec) -> str:
    """The resolved spec as YAML text (what ``sweeper validate`` prints)."""
    notes = [f"# resolved from {spec.source_path}"] if spec.source_path else []
    notes += ["# with --quick"] if spec.quick_applied else []
    notes += [f"# with --set {expr}" for expr in spec.overrides]
    body = yaml.safe_dump(spec.to_yaml_dict(), sort_keys=False, default_flow_style=False, allow_unicode=True,
                          width=110)
    return "\n".join([*notes, body])
