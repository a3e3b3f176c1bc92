"""Load a search-space YAML file into a :class:`Spec`, with errors that name the file and line.

    spec = load_spec("spaces/asl50.yaml", overrides=["budget.trials=4"], quick=False)

Order of work: read and compose the YAML (every node keeps its line) -> default ``name`` to the file's stem ->
apply the quick profile (``--quick``) -> apply ``--set`` overrides -> validate with pydantic -> map each error's
path back to the YAML line, or to the ``--set``/``--quick`` that produced the value.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from search_spaces.entrypoint import DEFAULT_ENTRYPOINT, import_target
from search_spaces.errors import SpecError, SpecIssue
from search_spaces.schema import Spec
from search_spaces.sections import did_you_mean, unknown_key

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


# ----------------------------------------------------------------------------------------------------------------
# Built-in spaces
# ----------------------------------------------------------------------------------------------------------------
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
    if path.parent.as_posix() in (".", "spaces", "search_spaces/spaces"):
        candidate = BUILTIN_DIR / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    names = [n for n, _ in list_builtin_spaces()]
    raise SpecError.single(str(arg), f"no such file, and not a built-in space{did_you_mean(name, names)}; "
                                     f"built-in spaces: {', '.join(names)} (name one as spaces/NAME.yaml or NAME)")


# ----------------------------------------------------------------------------------------------------------------
# YAML with line numbers
# ----------------------------------------------------------------------------------------------------------------
def _atoms(path: Iterable[Any]) -> list[str]:
    """A path as dotted atoms: ``("training", "dataset.classes")`` -> ``["training", "dataset", "classes"]``."""
    out: list[str] = []
    for part in path:
        out.extend(str(part).split(".") if isinstance(part, str) else [str(part)])
    return out


class YamlDoc:
    """A composed YAML document: the plain data and the line of every key and item."""

    def __init__(self, text: str, file: str) -> None:
        self.file = file
        try:
            self.root = yaml.compose(text, Loader=yaml.SafeLoader)
            self._check_duplicates(self.root)
            self.data = None if self.root is None else yaml.SafeLoader("").construct_document(self.root)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            message = " ".join(str(p) for p in (exc.context, exc.problem) if p) or str(exc)
            raise SpecError.single(file, f"invalid YAML: {message}",
                                   line=mark.line + 1 if mark is not None else None) from None
        except yaml.YAMLError as exc:
            raise SpecError.single(file, f"invalid YAML: {exc}") from None

    def _check_duplicates(self, node: yaml.Node | None) -> None:
        issues = []
        stack = [node] if node is not None else []
        visited: set[int] = set()
        while stack:
            current = stack.pop()
            if id(current) in visited:
                continue
            visited.add(id(current))
            if isinstance(current, yaml.MappingNode):
                seen: dict[str, int] = {}
                for key, value in current.value:
                    if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG:
                        line = key.start_mark.line + 1
                        if key.value in seen:
                            issues.append(SpecIssue(self.file, line, key.value,
                                                    f"duplicate key (first at line {seen[key.value]})"))
                        seen.setdefault(key.value, line)
                    stack.append(value)
            elif isinstance(current, yaml.SequenceNode):
                stack.extend(current.value)
        if issues:
            raise SpecError(sorted(issues, key=lambda i: i.line or 0))

    def line(self, path: Iterable[Any]) -> int | None:
        """The line of the deepest key or item on ``path`` that exists in the file (None: not even the first)."""
        return self.find(path)[0]

    def has(self, path: Iterable[Any]) -> bool:
        return self.find(path)[1]

    def find(self, path: Iterable[Any]) -> tuple[int | None, bool]:
        """(line of the deepest key or item found on ``path``, whether the whole path was found)."""
        atoms = _atoms(path)
        node, line, i = self.root, None, 0
        while i < len(atoms) and node is not None:
            if isinstance(node, yaml.MappingNode):
                best = None
                for key, value in node.value:  # the last match wins, as in YAML
                    if not isinstance(key, yaml.ScalarNode):
                        continue
                    parts = str(key.value).split(".")
                    if atoms[i:i + len(parts)] == parts and (best is None or len(parts) >= len(best[0])):
                        best = (parts, key, value)
                if best is None:
                    break
                parts, key, node = best
                line, i = key.start_mark.line + 1, i + len(parts)
            elif isinstance(node, yaml.SequenceNode):
                if not atoms[i].isdigit() or int(atoms[i]) >= len(node.value):
                    break
                node = node.value[int(atoms[i])]
                line, i = node.start_mark.line + 1, i + 1
            else:
                break
        return line, i >= len(atoms)


# ----------------------------------------------------------------------------------------------------------------
# Overrides and the quick profile
# ----------------------------------------------------------------------------------------------------------------
class _OverrideError(ValueError):
    pass


def set_path(data: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted ``key`` in raw spec data; an existing dotted key (``model.size``) is matched whole."""
    atoms = key.split(".")
    if not key or any(not a for a in atoms):
        raise _OverrideError(f"{key!r} is not a dotted key such as budget.trials")
    node: Any = data
    i = 0
    while True:
        if isinstance(node, list):
            if not atoms[i].isdigit() or int(atoms[i]) >= len(node):
                raise _OverrideError(f"{'.'.join(atoms[:i]) or 'the spec'} has no item {atoms[i]!r} "
                                     f"(it has {len(node)} items)")
            index = int(atoms[i])
            if i == len(atoms) - 1:
                node[index] = value
                return
            if node[index] is None:
                node[index] = {}
            node, i = node[index], i + 1
            continue
        if not isinstance(node, dict):
            raise _OverrideError(f"{'.'.join(atoms[:i])} is {node!r}, not a mapping, so {key} cannot be set")
        flat_section = i == 1 and atoms[0] == "quick"  # quick keys are themselves dotted paths
        match = None
        for j in range(len(atoms), i, -1):
            if ".".join(atoms[i:j]) in node:
                match = j
                break
        if match is None:
            if flat_section or i == len(atoms) - 1:
                node[".".join(atoms[i:])] = value
                return
            nested: Any = value
            for atom in reversed(atoms[i + 1:]):
                nested = {atom: nested}
            node[atoms[i]] = nested
            return
        name = ".".join(atoms[i:match])
        if match == len(atoms):
            node[name] = value
            return
        if node[name] is None:
            node[name] = {}
        node, i = node[name], match


def parse_override(expr: str) -> tuple[str, Any]:
    """``"budget.trials=4"`` -> ``("budget.trials", 4)``; the value is read as YAML (``[a, b]``, ``1e-4``, ``80%``)."""
    key, sep, text = expr.partition("=")
    key = key.strip()
    if not sep or not key:
        raise _OverrideError("expected dotted.key=value, e.g. budget.trials=4")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise _OverrideError(f"cannot read the value {text!r}: {exc}") from None
    return key, value


def quick_profile(data: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The overrides ``--quick`` applies, and whether they come from the file's ``quick:`` section."""
    section = data.get("quick")
    if isinstance(section, Mapping):
        return dict(section), True
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


def apply_quick(data: Mapping[str, Any]) -> dict[str, Any]:
    """Raw spec data with the quick profile applied: the file's ``quick:`` section, else :data:`DEFAULT_QUICK`.

    The study name gets a ``-quick`` suffix (unless the profile sets ``name``) so smoke runs never mix their trials
    into the real study.
    """
    out = copy.deepcopy(dict(data))
    profile, _ = quick_profile(out)
    for key, value in profile.items():
        set_path(out, str(key), copy.deepcopy(value))
    if "name" not in profile and isinstance(out.get("name"), str) and not out["name"].endswith(QUICK_SUFFIX):
        out["name"] = out["name"] + QUICK_SUFFIX
    return out


# ----------------------------------------------------------------------------------------------------------------
# Validation errors -> file:line issues
# ----------------------------------------------------------------------------------------------------------------
def _unwrap(annotation: Any) -> Any:
    """The model class (or dict/list element type) under Optional/Annotated wrappers."""
    while True:
        origin = get_origin(annotation)
        if origin is None or origin in (dict, list):
            return annotation
        if str(origin) == "typing.Annotated" or hasattr(annotation, "__metadata__"):
            annotation = get_args(annotation)[0]
            continue
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) != 1:
            return annotation
        annotation = members[0]


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    current: Any = Spec
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) is list:
            current = get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _describe(error: Mapping[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """One pydantic error -> ``(path, message)`` pairs (a "spec" error carries several)."""
    loc = tuple(p for p in error["loc"] if p != "[key]")
    kind = error["type"]
    given = error.get("input")
    if loc[:2] in (("sampler", "options"), ("scheduler", "options"), ("baseline", "metrics")):
        loc = loc[:1] + loc[2:]  # these are written flat in the file, beside type/source
    if kind == "spec":
        return [(loc + tuple(sub), message) for sub, message in error["ctx"]["issues"]]
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = [n for n in (model.model_fields if model else {})]
        return [(loc, unknown_key(loc[-1], allowed))]
    if kind == "missing":
        model = _model_at(loc[:-1])
        field = model.model_fields.get(str(loc[-1])) if model else None
        options = get_args(_unwrap(field.annotation)) if field is not None else ()
        hint = f" (one of: {', '.join(map(str, options))})" if options and all(isinstance(o, str) for o in options) \
            else ""
        return [(loc, f"is required{hint}")]
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        hint = did_you_mean(given, options).strip(" ()")
        return [(loc, f"must be one of {', '.join(options)} (got {given!r}{'; ' + hint if hint else ''})")]
    message = error["msg"]
    if isinstance(given, str | int | float | bool) or given is None:
        message += f" (got {given!r})"
    return [(loc, message)]


class _Origins:
    """Where values came from: the file's lines, the quick profile, ``--set`` overrides (applied in that order)."""

    def __init__(self, file: str, doc: YamlDoc | None) -> None:
        self.file = file
        self.doc = doc
        self.overrides: list[tuple[list[str], str, int | None]] = []  # (atoms, label, line)
        self.quick = False

    def issue(self, path: Sequence[Any], message: str) -> SpecIssue:
        atoms = _atoms(path)
        field = ".".join(str(p) for p in path)
        line = self.doc.line(path) if self.doc is not None else None
        for over, label, over_line in reversed(self.overrides):
            if atoms[:len(over)] == over:  # the override set this value, or a section holding it
                return SpecIssue(self.file, over_line, field, message, label)
            if atoms and over[:len(atoms)] == atoms:  # the override changed a part of this value
                return SpecIssue(self.file, line, field, message, label)
            parent = atoms[:-1]
            if parent and over[:len(parent)] == parent and not (self.doc is not None and self.doc.has(parent)):
                return SpecIssue(self.file, line, field, message, label)  # the override created this section
        if self.quick and "refuse" in message:  # a range or config that only fails with the quick values
            message += " (with --quick)"
        return SpecIssue(self.file, line, field, message)


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------
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
    doc = YamlDoc(text, file)
    if doc.data is None:
        raise SpecError.single(file, "the file is empty; a search space needs at least a params: section")
    if not isinstance(doc.data, dict):
        kind = "a list" if isinstance(doc.data, list) else f"a {type(doc.data).__name__}"
        raise SpecError.single(file, f"the top level must be a mapping of sections (name, training, params, ...), "
                                     f"not {kind}", line=doc.root.start_mark.line + 1)
    return _build(doc.data, file, doc, resolved.parent, resolved.stem, overrides, quick)


def spec_from_dict(data: Mapping[str, Any], *, file: str = "<spec>", base_dir: str | os.PathLike[str] | None = None,
                   overrides: Sequence[str] = (), quick: bool = False) -> Spec:
    """Validate raw spec data that did not come from a file (e.g. a stored ``to_yaml_dict()``); no line numbers."""
    if not isinstance(data, Mapping):
        raise SpecError.single(file, "the spec must be a mapping of sections")
    return _build(dict(data), file, None, Path(base_dir) if base_dir is not None else None, None, overrides, quick)


def _build(data: dict[str, Any], file: str, doc: YamlDoc | None, base_dir: Path | None, stem: str | None,
           overrides: Sequence[str], quick: bool) -> Spec:
    origins = _Origins(file, doc)
    data = copy.deepcopy(data)
    if stem is not None and "name" not in data:
        data["name"] = stem
    if quick:
        profile, from_file = quick_profile(data)
        origins.quick = True
        for key in profile:
            line = doc.line(("quick", key)) if (from_file and doc is not None) else None
            origins.overrides.append((_atoms([key]), "--quick", line))
        try:
            data = apply_quick(data)
        except _OverrideError as exc:
            raise SpecError.single(file, str(exc), source="--quick") from None
    for expr in overrides:
        label = f"--set {expr}"
        try:
            key, value = parse_override(expr)
            set_path(data, key, value)
        except _OverrideError as exc:
            raise SpecError.single(file, str(exc), source=label) from None
        origins.overrides.append((_atoms([key]), label, None))
    try:
        spec = Spec.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        issues = [origins.issue(path, message) for error in exc.errors() for path, message in _describe(error)]
        unique = list(dict.fromkeys(issues))
        raise SpecError(sorted(unique, key=lambda i: (i.line is None, i.line or 0))) from None
    spec._source = file
    spec._quick_applied = quick
    spec._overrides = tuple(overrides)
    spec._base_dir = str(base_dir.resolve()) if base_dir is not None else None
    return spec


def render_spec(spec: Spec) -> str:
    """The resolved spec as YAML text (what ``sweeper validate`` prints)."""
    notes = []
    if spec.source_path:
        notes.append(f"# resolved from {spec.source_path}")
    if spec.quick_applied:
        notes.append("# with --quick")
    notes += [f"# with --set {expr}" for expr in spec.overrides]
    body = yaml.safe_dump(spec.to_yaml_dict(), sort_keys=False, default_flow_style=False, allow_unicode=True,
                          width=110)
    return "\n".join([*notes, body]) if notes else body


def import_entrypoint(spec: Spec) -> Callable[..., Any]:
    """Import the spec's training function (the space's folder and the cwd on sys.path while importing)."""
    return import_target(spec.entrypoint, spec.base_dir)
