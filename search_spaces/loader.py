"""Load a search-space YAML file into a :class:`Spec`: read it with the line of every key, apply ``--quick`` and
``--set``, validate, and place each error at its line or at the ``--set``/``--quick`` that produced the value."""

from __future__ import annotations

import contextlib
import copy
import os
import re
import reprlib
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from search_spaces.errors import SpecError, SpecIssue
from search_spaces.schema import Atoms, Spec, atoms, resolve_key
from search_spaces.sections import KINDS, SAMPLER_CLASSES, sampler_options
from trials.config import did_you_mean, flatten, unknown_key
from trials.entrypoint import DEFAULT_ENTRYPOINT, EntrypointError, describe

BUILTIN_DIR = Path(__file__).resolve().with_name("spaces")
# --quick on a space without a quick: section; training keys only for the core (others may not take them).
DEFAULT_QUICK = {"training.dataset.samples_per_class": 8, "training.epochs": 3, "budget.trials": 6,
                 "budget.max_concurrent": 2}
QUICK_SUFFIX = "-quick"
# the sections Spec._check_configs reads to build the trials' configs (the entrypoint's settings and metrics too)
CONFIG_FIELDS = {"entrypoint", "training", "objective", "params", "enqueue", "targets"}
MAX_YAML_VALUES = 100_000  # a space has hundreds; nested aliases can expand a small file to billions
# what set a value: its key's atoms, the label (the file's, --quick, --set ...), its line, and whether it is the
# built-in quick profile (a file's quick: section is --quick too, and its key's line may be unknown: a YAML merge)
Origin = tuple[Atoms, str, int | None, bool]


class SpaceLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: ``1e-4`` is a number, ``010`` ten, and ``1:30`` and
    ``2024-05-01`` are text (YAML 1.1 reads them as text, eight, 90 in base 60, a date). Booleans stay YAML 1.1's
    (``yes``, ``on``): a function without ``fit.settings`` would get the text ``"no"``, which Python takes for true."""


class SpaceDumper(yaml.SafeDumper):
    """Writes what :class:`SpaceLoader` reads back the same: the texts ``'1e-4'``, ``'0o17'``, ``'010'`` and ``'09'``
    quoted, as is all text that either reads as a number."""


SpaceLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag.rpartition(":")[2] not in ("int", "float", "timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _kind, _pattern, _first in (  # YAML 1.2's core schema; int before float, which would also match 10
        ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
        ("float", r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
         "-+.0123456789")):
    for _yaml in (SpaceLoader, SpaceDumper):  # the dumper quotes a text read as a number by YAML 1.1 or 1.2
        _yaml.add_implicit_resolver(f"tag:yaml.org,2002:{_kind}", re.compile(f"^(?:{_pattern})$"), list(_first))
SpaceLoader.add_constructor("tag:yaml.org,2002:int", lambda loader, node: int(
    text := loader.construct_scalar(node), 0 if text.startswith(("0o", "0x")) else 10))


def read_yaml_value(text: str) -> Any:
    """A YAML document as a space file or ``--set`` reads it."""
    return yaml.load(text, Loader=SpaceLoader)


def list_builtin_spaces() -> list[tuple[str, str]]:
    """``(name, description)`` of every built-in space, sorted by name."""
    found = []
    for path in sorted(BUILTIN_DIR.glob("*.yaml")):
        data = None
        with contextlib.suppress(OSError, yaml.YAMLError):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        found.append((path.stem, " ".join(str(data.get("description", "") if isinstance(data, dict) else "").split())))
    return found


def resolve_space_path(arg: str | os.PathLike[str]) -> Path:
    """An existing local file wins; else ``spaces/NAME.yaml``, ``NAME.yaml`` or ``NAME`` name a built-in space."""
    if not str(arg).strip():  # Path('') is '.', which would be refused as a folder
        raise SpecError.single("SPACE", "is empty; give a space YAML file or a built-in name (e.g. asl20)")
    path = Path(arg).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise SpecError.single(str(arg), "is a folder, not a search-space file")
    if path.exists():  # a FIFO or a device: "no such file" would mislead
        raise SpecError.single(str(arg), "is not a regular file; a search space is a YAML file")
    name = path.stem if path.suffix in (".yaml", ".yml") else path.name
    if path.parent.as_posix() == "." and (local := Path("spaces", f"{name}.yaml")).is_file():
        return local  # NAME means spaces/NAME.yaml, and a local one wins here as it does when spelt out
    if path.parent.as_posix() in (".", "spaces", "search_spaces/spaces") and (BUILTIN_DIR / f"{name}.yaml").is_file():
        return BUILTIN_DIR / f"{name}.yaml"
    names = [n for n, _ in list_builtin_spaces()]
    raise SpecError.single(str(arg), f"no such file, and not a built-in space{did_you_mean(name, names)}; "
                                     f"built-in spaces: {', '.join(names)} (name one as spaces/NAME.yaml or NAME)")


def _read_yaml(text: str, file: str) -> tuple[Any, dict[Atoms, int]]:
    """The data and the line of every key and list item; a key written twice is an error."""
    try:
        root = yaml.compose(text, Loader=SpaceLoader)
        data = read_yaml_value(text)  # not from root: constructing writes merged (<<) keys into the nodes it reads
    except yaml.MarkedYAMLError as exc:
        unclosed = exc.context_mark and re.search(r"stream end|end of stream", str(exc.problem))  # never closed
        mark = exc.context_mark if unclosed else exc.problem_mark or exc.context_mark
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p) or str(exc)
        if "'\\t'" in message:  # PyYAML's words for a tab where YAML allows none
            message += " (YAML indents and separates with spaces, not tabs)"
        raise SpecError.single(file, f"invalid YAML: {message}", line=mark.line + 1 if mark else None) from None
    except (yaml.YAMLError, RecursionError) as exc:  # PyYAML composes nested lists by recursion: [[[[...]]]]
        raise SpecError.single(file, f"invalid YAML: {exc}") from None
    lines: dict[Atoms, int] = {}
    twice: list[SpecIssue] = []
    inside: list[yaml.Node] = []  # the nodes holding the one walked: an alias to one of them contains itself

    def walk(node: yaml.Node, where: Atoms) -> None:
        line = lines.setdefault(where, node.start_mark.line + 1)
        recursive = any(node is outer for outer in inside)
        if recursive or len(lines) > MAX_YAML_VALUES:
            raise SpecError.single(file, "an alias that contains itself" if recursive else
                                   f"more than {MAX_YAML_VALUES:,} values once aliases are expanded", line=line,
                                   field=".".join(where))
        inside.append(node)
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*where, str(i)))
        seen: dict[str, int] = {}
        for key, value in node.value if isinstance(node, yaml.MappingNode) else ():
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in seen:  # also on one line: {a: 1, a: 2}
                    twice.append(SpecIssue(file, key.start_mark.line + 1, ".".join((*where, key.value)),
                                           f"duplicate key (first at line {seen[key.value]})"))
                seen.setdefault(key.value, key.start_mark.line + 1)
                lines.setdefault(here := (*where, *atoms([key.value])), key.start_mark.line + 1)
                walk(value, here)
        inside.pop()

    if root is not None:
        walk(root, ())
    if twice:
        raise SpecError(sorted(twice, key=lambda i: i.line or 0))
    return data, lines


def set_path(data: dict[str, Any], key: str, value: Any) -> tuple[dict[str, Any] | list[Any], Any]:
    """Set a dotted ``key`` in raw spec data (an existing dotted key such as ``model.size`` matches whole); returns
    the mapping or list that now holds the value, and the value it replaced (None if there was none)."""
    parts, node, i = key.split("."), data, 0
    if not all(parts):
        raise ValueError(f"{key!r} is not a dotted key such as budget.trials")
    while True:
        if isinstance(node, list):
            if not parts[i].isdigit() or int(parts[i]) >= len(node):
                raise ValueError(f"{'.'.join(parts[:i])} has no item {parts[i]!r} (it has {len(node)} items)")
            name, j, old = int(parts[i]), i + 1, node[int(parts[i])]
        elif isinstance(node, dict):  # the longest key that exists; a new quick: key or param stays dotted
            whole = i == 1 and (parts[0] == "quick" or (parts[0] == "params" and isinstance(value, dict)))
            j = next((j for j in range(len(parts), i, -1) if ".".join(parts[i:j]) in node),
                     len(parts) if whole else i + 1)
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
    """Set ``key``; a changed ``type`` drops the options that the new type does not take (the old type's), and a
    param pinned (``type: fixed``) leaves the enqueued rows, where its pinned value wins."""
    section, _, last = key.rpartition(".")
    node, old = set_path(data, key, value)
    name = key.removeprefix("params.").removesuffix(".type")
    if key.startswith("params.") and isinstance(param := (data.get("params") or {}).get(name), dict) and \
            param.get("type") == "fixed" and isinstance(data.get("enqueue"), list):
        rows = [{k: v for k, v in r.items() if k != name} if isinstance(r, dict) else r for r in data["enqueue"]]
        data["enqueue"] = [row for row in rows if row != {}]
    if last == "type" and old != value and isinstance(node, dict) and isinstance(value, str):
        model = KINDS.get("params" if section.startswith("params.") else section, {}).get(value)
        kept = {"type", "seed", *sampler_options(value)} if section == "sampler" and value in SAMPLER_CLASSES else \
            set(model.model_fields) if model else set(node)
        for name in set(node) - kept:
            del node[name]


def parse_override(expr: str, whole: Collection[str] = ()) -> dict[str, Any]:
    """``"budget.trials=4"`` -> ``{"budget.trials": 4}``, run and train alike: the value read as YAML (``[a, b]``,
    ``1e-4``, ``80%``; empty: null). A map given to training or a group of it sets each key as its own --set (the
    group's other keys stay); one given elsewhere (a param, the sampler, the scheduler: a new type drops the old
    one's options), to a key in ``whole`` (a setting that holds a map), or an empty one, replaces it whole."""
    key, sep, text = expr.partition("=")
    if not sep or not (key := key.strip()):
        raise ValueError("expected KEY=VALUE, e.g. epochs=3 or budget.trials=4")
    try:
        value = read_yaml_value(text) if text.strip() else None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ValueError(f"cannot read the value {reprlib.repr(text)}: {exc}") from None
    group = isinstance(value, dict) and key.split(".")[0] not in set(Spec.model_fields) - {"training"}
    return (flatten({key: value}, whole)[0] if group else {}) or {key: value}


def quick_profile(data: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The overrides ``--quick`` applies, and whether they come from the file's ``quick:`` section."""
    if isinstance(data.get("quick"), Mapping):  # nested as the sections are, or dotted: each leaf is one --set
        return flatten(data["quick"])[0], True
    core = data.get("entrypoint", DEFAULT_ENTRYPOINT) == DEFAULT_ENTRYPOINT
    # smaller, never larger: a space of 2 epochs and 4 trials keeps them
    written = flatten({k: data[k] for k in ("training", "budget") if isinstance(data.get(k), Mapping)})[0]
    profile = {k: min(v, written[k]) if type(written.get(k)) in (int, float) else v
               for k, v in DEFAULT_QUICK.items() if core or not k.startswith("training.")}
    params = data["params"] if isinstance(data.get("params"), Mapping) else {}
    for key in [k for k in profile if k.startswith("training.")]:  # a param that samples it would win: pinned
        sampled = params.get(name := key.removeprefix("training."))
        kind = sampled.get("type") if isinstance(sampled, Mapping) else None  # a fixed value is pinned down too
        values = [sampled.get("low")] if kind in ("int", "float") else [sampled.get("value")] if kind == "fixed" \
            else sampled.get("choices") if kind else None
        if isinstance(values, list) and values and all(type(v) in (int, float) for v in values):
            profile[f"params.{name}"] = {"type": "fixed", "value": min(*values, profile[key])}
    scheduler = data["scheduler"] if isinstance(data.get("scheduler"), Mapping) else {}
    if "grace_period" in scheduler and "training.epochs" in profile:  # shrunk with the epochs: a function of the
        profile["scheduler.grace_period"] = 1  # user's own trains all of its epochs, and keeps its grace period
    if "max_t" in scheduler and "training.epochs" in profile:  # below the last epoch, as the default: no rung
        profile["scheduler.max_t"] = max(1, profile["training.epochs"] - 1)  # judges a trial that is done
    return profile, False


def _messages(error: Mapping[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """One pydantic error -> ``(path, message)`` pairs, the path as written in the file."""
    raw = tuple(p for p in error["loc"] if p != "[key]")
    tag = {"params": 2, "scheduler": 1}.get(raw[0]) if raw else None  # where a typed section's type stands
    typed = KINDS[raw[0]].get(raw[tag]) if tag and len(raw) > tag else None
    loc = raw[:tag] + raw[tag + 1:] if typed else raw
    kind, given, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "value_error":
        return [(loc, str(ctx["error"]))]
    if kind == "extra_forbidden":  # refused by the typed kind, the top level, or a section's (on_gpu: Resources too)
        model = typed or (Spec.model_fields[loc[0]].annotation if len(loc) > 1 else Spec)
        fields = [name for name in model.model_fields if name not in loc]  # not on_gpu inside on_gpu
        owner = f" for {'an' if str(raw[tag])[:1] in 'aeiou' else 'a'} {raw[tag]} {raw[0].removesuffix('s')}" \
            if typed else ""
        return [(loc, unknown_key(loc[-1], fields).replace(";", owner + ";", 1))]
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
    if given is None and kind.endswith("_type"):  # `key:` with nothing after it, or --set key=
        return [(loc, "has no value: give it one, or leave the key out for its default")]
    if kind == "too_short":
        least = ctx["min_length"]
        return [(loc, f"needs at least {least} item{'s' * (least != 1)} (got {reprlib.repr(given)})")]
    scalar = kind != "spec" and (isinstance(given, str | int | float | bool) or given is None)
    return [(loc, error["msg"] + (f" (got {reprlib.repr(given)})" if scalar else ""))]


def _issue(file: str, lines: dict[Atoms, int], origins: list[Origin], path: Sequence[Any], message: str) -> SpecIssue:
    """Where a problem's value came from: the last override that set it or a part of it, or that set a training
    setting the message quotes (``--set epochs=2``: warmup_epochs=3.0 is not allowed ... (epochs=2)), else the file."""
    at, field = atoms(path), ".".join(map(str, path))
    line = next((lines[at[:n]] for n in range(len(at), 0, -1) if at[:n] in lines), None)
    exact = any(at[:len(over)] == over for over, _, _, _ in origins)
    for over, label, over_line, built_in in reversed(origins):
        if at[:len(over)] == over:  # it set this value, or a section holding it
            return SpecIssue(file, over_line, field, message, label)
        # it changed this value, a sibling (where none set it), or the param of an enqueued value (enqueue.N.KEY)
        if over[:len(at)] == at or (at[:-1] and over[:len(at) - 1] == at[:-1] and not exact) or \
                (at[:1] == ("enqueue",) and len(at) > 2 and over[:1] == ("params",) and over[1:len(at) - 1] == at[2:]):
            return SpecIssue(file, line, field, message, label)
        # a training setting it set, or one in the group or block it set whole (training={...}, training.dataset={...})
        setting = re.escape(".".join(over[1:])) + (r"(?:\.[\w.]+)?" if len(over) > 1 else r"[\w.]+")
        if over[:1] == ("training",) and re.search(rf"(?<![\w.]){setting}=", message):  # what the refusal quotes
            advice = _quick_advice(field, built_in) \
                if label.startswith("--quick") else f"with {label}, change {field} too"
            return SpecIssue(file, line, field, f"{message}; {advice}", label)
    return SpecIssue(file, line, field, message)


def _quick_advice(field: str, built_in: bool) -> str:
    """What to change where the quick profile made a value wrong: the profile (a built-in one by a quick: section)."""
    if built_in:
        return (f"the built-in quick profile's problem, not the full sweep's: a quick: section in the file replaces "
                f"that profile; give it the epochs and trials a smoke run should have, and quick.{field} too")
    return f"the quick profile's problem, not the full sweep's: override {field} in it too (key quick.{field})"


def load_spec(path: str | os.PathLike[str], overrides: Sequence[str] = (), quick: bool = False, *,
              keep_deprecated: bool = False) -> Spec:
    """Read, override and validate a search-space file (a path, or a built-in name); raises SpecError.
    ``keep_deprecated``: sampler options Optuna has deprecated pass, for a caller that refuses them unless the study
    it carries on ran with them (:func:`search_spaces.sections.deprecated_options`)."""
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
    return _build(data, file, lines, resolved.parent, overrides, quick, stem=resolved.stem,
                  keep_deprecated=keep_deprecated)


def spec_from_dict(data: Mapping[str, Any], *, file: str = "<spec>", base_dir: str | os.PathLike[str] | None = None,
                   overrides: Sequence[str] = (), quick: bool = False, stored: bool = False) -> Spec:
    """Validate raw spec data that did not come from a file (e.g. a stored ``to_yaml_dict()``); no line numbers.
    ``stored``: a study's spec, which ran: what Optuna takes but a new space may not use (a deprecated sampler
    option) is kept."""
    if not isinstance(data, Mapping):
        raise SpecError.single(file, "the spec must be a mapping of sections")
    return _build(dict(data), file, {}, Path(base_dir) if base_dir is not None else None, overrides, quick,
                  stored=stored)


def _build(original: dict[str, Any], file: str, lines: dict[Atoms, int], base_dir: Path | None,
           overrides: Sequence[str], quick: bool, stem: str | None = None, stored: bool = False,
           keep_deprecated: bool | Mapping[str, Any] = False) -> Spec:
    data = copy.deepcopy(original)
    if stem and data.get("name") is None:
        data["name"] = stem
    sets: list[tuple[str, Any, str, int | None]] = []  # (key, value, where it comes from, its line)
    refused: list[SpecIssue] = []  # overrides that cannot apply: said beside the spec's own problems
    for expr in overrides:
        try:
            settings = parse_override(expr)
            if settings == {"storage": None}:  # "$URL" unset in a script: the default would take the sweep
                raise ValueError("storage is empty; give a storage URL, or leave the --set out for the space's "
                                 "storage, else the default (sqlite:///sweeps.db)")
            sets += [(k, v, f"--set {expr}", None) for k, v in settings.items()]
        except ValueError as exc:
            refused.append(SpecIssue(file, None, "", str(exc), f"--set {expr}"))
    steps: list[tuple[str, Any, str, int | None]] = []
    from_file = False  # the quick profile is the file's quick: section
    if quick:
        set_quick: dict[str, str] = {}
        for key, value, label, _ in (s for s in sets if s[0] == "quick" or s[0].startswith("quick.")):
            with contextlib.suppress(ValueError):  # applied as set first; the same override below says why
                apply_override(data, key, copy.deepcopy(value))
            whole = key == "quick" and isinstance(value, Mapping)
            set_quick.update(dict.fromkeys(flatten(value)[0] if whole else [key.removeprefix("quick.")], label))
        profile, from_file = quick_profile(data)
        steps = [(str(k), v, f"--quick ({set_quick[k]})", None) if k in set_quick else
                 (str(k), v, "--quick", lines.get(("quick", *atoms([k]))) if from_file else None)
                 for k, v in profile.items()]
        if "name" not in profile and isinstance(data.get("name"), str) and not data["name"].endswith(QUICK_SUFFIX):
            data["name"] += QUICK_SUFFIX  # a smoke run never mixes its trials into the real study
    origins: list[Origin] = []
    for key, value, label, line in steps + sets:
        try:
            entry = describe(str(data.get("entrypoint") or DEFAULT_ENTRYPOINT), base_dir)
        except EntrypointError:
            entry = None  # the spec's validation says why
        path = None
        try:
            path = resolve_key(key, entry, data.get("params") or {}, typed=label != "--quick")
            if entry and path.startswith("training."):  # a key of a map the function declares: from its default
                data["training"] = entry.with_declared_map(data.get("training"), path.removeprefix("training."))
            if label == "--quick" and from_file:  # its training.KEY beside the file's own param: it would change
                resolve_key(key, entry, data.get("params") or {})  # nothing (the steps come before the --sets)
            apply_override(data, path, copy.deepcopy(value))
        except ValueError as exc:
            if label != "--quick" or path is not None:  # else the spec's check of its quick: section says why
                refused.append(SpecIssue(file, line, f"quick.{key}" if line else "", str(exc), label))
        else:
            origins.append((atoms([path]), label, line, label == "--quick" and not from_file))
    spec, issues = None, refused
    context = {"base_dir": base_dir, "stored": stored, "quick": quick, "keep_deprecated": keep_deprecated}
    try:
        spec = Spec.model_validate(data, context=dict(context))
    except ValidationError as exc:
        # pydantic checks the trials' configs (Spec._check_configs) only once every field passed: a section those
        # configs do not read (budget, sampler...), refused, would hide their problems until it was fixed. Only the
        # configs' own are taken, and the scheduler's where it and budget passed: judged beside a refused budget's
        # defaults (Spec.idle_scheduler reads budget.trials), it would be wrong
        errors, failed = exc.errors(), {error["loc"][0] for error in exc.errors() if error["loc"]}
        taken = CONFIG_FIELDS | ({"scheduler"} if not failed & {"scheduler", "budget"} else set())
        if failed and not failed & CONFIG_FIELDS:
            relaxed = {k: v for k, v in data.items() if k not in failed} | {"name": "space"}  # required, in no config
            try:
                Spec.model_validate(relaxed, context=dict(context))
            except ValidationError as again:
                errors += [error for error in again.errors() if error["loc"] and error["loc"][0] in taken]
        issues += [_issue(file, lines, origins, path, why) for error in errors for path, why in _messages(error)]
    if not quick and isinstance(data.get("quick"), Mapping):  # the quick: section is checked whether used or not
        try:  # the deprecated sampler options the caller vets are the full spec's: the quick: section adds none
            _build(original, file, lines, base_dir, overrides, True, stem, stored,
                   keep_deprecated and (spec is None or dict(spec.sampler.options)))
        except SpecError as exc:  # beside the full spec's problems, only those a quick key gave (others may follow on)
            seen = {i.field for i in issues}  # a field refused in both: the full spec's problem, said once
            issues += [i._replace(source=i.source or "--quick") for i in exc.issues if spec or (
                str(i.source).startswith("--quick") and i.field not in seen)]
    if issues:
        raise SpecError(sorted(_once_per_set(issues), key=lambda i: (i.line is None, i.line or 0))) from None
    spec._source, spec._quick_applied, spec._overrides = file, quick, tuple(overrides)
    spec._base_dir = str(base_dir.resolve()) if base_dir is not None else None
    spec._where = (lines, origins)
    return spec


def _once_per_set(issues: list[SpecIssue]) -> list[SpecIssue]:
    """Each problem once: a ``--set quick.KEY`` that cannot apply is refused where it is set, and again as a step
    of the quick profile or by the check of the quick: section it went into. Only what is said of the ``--set``'s
    own KEY (or of no field) is one problem: the same words of another field (each row of ``--set enqueue=[...]``)
    are one problem each."""
    kept: dict[tuple[Any, ...], SpecIssue] = {}  # the first of each: by the --set and its words, else by itself
    for issue in issues:
        source = (issue.source or "").removeprefix("--quick (").removesuffix(")")
        key = source.removeprefix("--set ").partition("=")[0]
        once = source.startswith("--set") and issue.field in ("", key)
        kept.setdefault((source, issue.message) if once else issue, issue)
    return list(kept.values())


def refusal(spec: Spec, path: Sequence[str | int], message: str) -> SpecError:
    """A problem with a valid spec found later (on this machine, on the cluster), placed as validation places
    one: the file's line, or the ``--set`` that gave the value."""
    return SpecError([_issue(spec.source_path or f"space {spec.name!r}", *spec._where, path, message)])


def render_spec(spec: Spec) -> str:
    """The resolved spec as YAML text (what ``sweeper validate`` prints)."""
    notes = [f"# resolved from {spec.source_path}"] * bool(spec.source_path) + ["# with --quick"] * spec.quick_applied
    body = yaml.dump(spec.to_yaml_dict(), Dumper=SpaceDumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=110)
    return "\n".join([*notes, *(f"# with --set {expr}" for expr in spec.overrides), body])
