"""What ``sweeper run`` and ``sweeper resume`` check and read before they write anything.

The spec is validated, the storage URL checked, an existing study's stored spec and data compared with what this
run would do, and the results folder tried, all before a study is created or Ray started: bad input (exit 2)
leaves the database and the disk as they were. :mod:`sweeper.driver` runs the sweep on what this returns.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import shlex
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from search_spaces.errors import SpecError, SpecIssue
from search_spaces.loader import load_spec, refusal, resolve_space_path, spec_from_dict
from search_spaces.schema import Spec
from search_spaces.sections import KINDS, CategoricalParam, deprecated_options, deprecated_refusal
from storage import attrs
from storage.engine import check_no_read_only_option, check_sqlite_options, close_storage, open_storage
from storage.errors import NotAStudyDatabase, StorageError
from storage.retry import retry_briefly
from storage.studies import (
    RESUMABLE_SECTIONS,
    default_changes,
    fresh_study_name,
    holds_trials,
    load_existing_study,
    spec_changes,
    study_exists,
)
from storage.urls import (
    ENV_VAR,
    is_sqlite,
    mask_url,
    resolve_storage_url,
    sqlite_path,
    validate_storage_url,
)
from sweeper.console import console, shell_command
from sweeper.errors import BadInput
from sweeper.folders import RESULTS_DIR, here_or_below, relocated
from sweeper.ray_runtime import masked_arg
from sweeper.samplers import check_sampling, sampler_defaults
from trials.config import TrainConfig, flatten
from trials.datasets import check_found, check_splits, data_fingerprint, read_npz, read_wlasl
from trials.entrypoint import DEFAULT_ENTRYPOINT, working_in
from trials.errors import ConfigError, DataError
from trials.synthetic import GENERATOR


@dataclass(frozen=True)
class SweepOptions:
    """What ``sweeper run`` (a space file) or ``sweeper resume`` (a study name) was asked to do."""

    space: str | None = None  # a space file, or a built-in name
    study: str | None = None  # instead of a space: resume this study from the spec stored in it
    overrides: tuple[str, ...] = ()
    quick: bool = False
    fresh: bool = False  # a new study under a fresh name (name-2, name-3, ...) even if the name is taken
    storage: str | None = None
    address: str | None = None
    results_dir: str = RESULTS_DIR
    max_failures: int = 2
    storage_timeout: float | None = None  # seconds a storage outage may last before the sweep stops (resumable)


def sweep_storage_url(url: str) -> str:
    """:func:`validate_storage_url`, and a database the sweep's threads, workers and later commands can all open."""
    url = validate_storage_url(url)
    if is_sqlite(url) and sqlite_path(url) is None:
        raise StorageError(f"{mask_url(url)!r} is an in-memory SQLite database: each connection gets its own, empty "
                           "one, and it is gone when the sweep ends. Name a file, e.g. sqlite:///sweeps.db.")
    check_sqlite_options(url)
    check_no_read_only_option(url)  # before sweeper resume reads the study, which immutable=1 may not see
    return url


def masked_set(expr: str) -> str:
    """``--set storage=URL`` as typed, the URL masked whole (spaces, YAML's quotes: :func:`masked_arg`)."""
    return f"--set {masked_arg(expr)}"


def typed_storage(spec: Spec) -> str | None:
    """The last ``--set storage=URL`` as typed, masked; None where none was typed."""
    typed = next((o for o in reversed(spec.overrides) if o.partition("=")[0].strip() == "storage"), None)
    return typed and masked_set(typed)


def spec_storage_url(spec: Spec, cli_url: str | None) -> str:
    """The checked URL a sweep of ``spec`` uses; a bad one names where it came from unless the user just typed it.

    Typed beats set: ``--storage``, then ``--set storage=URL`` (both typed for this command), then ``SWEEPER_STORAGE``
    (a session's default, exported once), then the space's key: a flag the environment silently beat would write the
    study to a storage the user did not name."""
    shown = typed_storage(spec)
    if cli_url and shown and spec.storage and spec.storage.strip() != cli_url.strip():  # one was silently dropped
        raise StorageError(f"--storage {mask_url(cli_url)} and {shown} name two storages; give one of them")
    typed = spec.storage if cli_url is None and shown else cli_url
    try:
        return sweep_storage_url(resolve_storage_url(spec.storage, typed))
    except StorageError as exc:
        origin = None if cli_url else shown or (ENV_VAR if os.environ.get(ENV_VAR, "").strip() else
                                                f"{spec.source_path}: storage" if spec.storage else None)
        raise StorageError(f"{origin}: {exc}" if origin else str(exc)) from None


DATA_KEYS = ("dataset.name", "dataset.path", "dataset.split_file", "dataset.landmarks_dir")  # what a trial reads
READ_KEYS = ("dataset.classes", "dataset.seed")  # how it reads the arrays (a param sampling these: not read here)


def data_choices(spec: Spec) -> list[dict[str, Any]] | None:
    """Every combination of the data settings the space's params choose from (``[{}]`` where none does: the
    training block's data), or None where a param samples one from a range, which names no file."""
    sampled = spec.sampled_params()
    keys = [key for key in DATA_KEYS if key in sampled]
    params = [sampled[key] for key in keys]
    if not all(isinstance(param, CategoricalParam) for param in params):
        return None
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(p.choices for p in params))]


def check_data_found(spec: Spec, folder: Path | None = None) -> str | None:
    """Data the built-in core cannot find or read fails every trial that reads it: refuse the sweep instead, for
    each data a param chooses too (a missing choice failed every trial that drew it, after the study was written).
    Not on a cluster (``--address``), where the workers' disks are the ones that count; the arrays and splits are
    not read where a param samples how (``dataset.classes``, ``dataset.seed``). ``folder``: where the trials read
    relative paths (a resumed study's first folder), else this one. Returns the data's fingerprint
    (:func:`trials.datasets.data_fingerprint`, the generator's version for generated data), or None where none was
    taken (a param samples a dataset setting)."""
    choices = data_choices(spec)
    if spec.entrypoint != DEFAULT_ENTRYPOINT or choices is None:
        return None
    sampled = [key for key in spec.sampled_params() if key.startswith("dataset.")]
    reads = not any(key in sampled for key in READ_KEYS)
    folder = folder if folder is not None and folder.is_dir() else Path.cwd()  # as the trials fall back
    fingerprint, seen = None, set()
    for chosen in choices:
        cfg = TrainConfig.from_flat({**spec.base_config(), **chosen}, validate=False)  # valid beside the params
        read = (cfg.dataset_name, *{"npz": (cfg.dataset_path,), "wlasl": (
            cfg.dataset_path, cfg.dataset_split_file, cfg.dataset_landmarks_dir)}.get(cfg.dataset_name, ()))
        if read in seen:  # choices its kind does not read (an npz's split_file) make no other data to check
            continue
        seen.add(read)
        try:
            with working_in(str(folder)):
                check_found(cfg.dataset_name, cfg.dataset_path, cfg.dataset_split_file)
                if cfg.dataset_name == "npz" and reads:  # the arrays and splits too (a NaN, an empty split)
                    check_splits(read_npz(cfg.dataset_path, classes=cfg.dataset_classes, seed=cfg.dataset_seed))
                elif cfg.dataset_name == "wlasl" and reads:
                    check_splits(read_wlasl(cfg.dataset_path, cfg.dataset_split_file, cfg.dataset_landmarks_dir,
                                            classes=cfg.dataset_classes))
                if not sampled:
                    fingerprint = GENERATOR if cfg.dataset_name == "synthetic" else data_fingerprint(
                        cfg.dataset_name, cfg.dataset_path, cfg.dataset_split_file, cfg.dataset_landmarks_dir)
        except DataError as exc:  # where a relative path is read from, for a relative one only
            notes = [f"a relative path is read from {folder}"] * (not Path(cfg.dataset_path).is_absolute()) + \
                [f"drawn with {', '.join(f'{k}={v}' for k, v in chosen.items())}"] * (len(chosen) > 1)
            said = f"{exc} ({', '.join(notes)})" if notes else str(exc)
            if not chosen:
                where = f"{spec.source_path}: " if spec.source_path else ""
                raise DataError(f"{where}training.dataset: {said}") from None
            raise refusal(spec, ("params", next(iter(chosen))), f"{said}: every choice must be data the trials can "
                          "read") from None
    return fingerprint


def existing_study_attrs(url: str, name: str) -> dict[str, Any]:
    """An existing study's user attrs (its first run's folder, its data...); empty for a new study."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return {}
    try:
        storage = retry_briefly(lambda: open_storage(url, create=False))
    except NotAStudyDatabase:
        return {}
    try:
        return retry_briefly(lambda: optuna.load_study(study_name=name, storage=storage).user_attrs
                             if study_exists(storage, name) else {})
    finally:
        close_storage(storage)


def check_same_data(spec: Spec, found: Any, data: str | None, folder: str | Path | None = None) -> None:
    """Refuse data that changed under the path a study's first run read (study attr ``data``): its trials would be
    compared with trials trained on the old data."""
    if data is None or found in (None, data):
        return
    where = f"{spec.source_path or spec.name}: training.dataset:"
    if data.startswith("synthetic"):
        raise DataError(f"{where} this sweeper generates other synthetic data ({data}) than study {spec.name!r} "
                        f"began with ({found}): its trials would compare two datasets. Start a study of its own "
                        "(sweeper run SPACE --fresh), or use that sweeper version.")
    path = Path(str(spec.base_config().get("dataset.path"))).expanduser()
    read = f" (read in {folder})" if folder and not path.is_absolute() else ""
    raise DataError(f"{where} {path}{read} is not the data study {spec.name!r} began with (its bytes changed since: "
                    f"{data[:19]}... now, {str(found)[:19]}... then): its trials would compare two datasets. Restore "
                    "the data, or start a study of its own (sweeper run SPACE --fresh).")


def data_to_record(spec: Spec, found: Mapping[str, Any], data: str | None) -> str | None:
    """The fingerprint to record with the study: none for an earlier sweeper's study, whose trials' data is
    unknown (stamping it would vouch for them), said once."""
    if found and data is not None and attrs.DATA not in found:
        console.print(f"study {spec.name} records no fingerprint of the data its trials read (an earlier sweeper "
                      "made it): its next trials read the data as it is now", markup=False)
        return None
    return data


def checked_data(spec: Spec, url: str, options: SweepOptions) -> str | None:
    """The fingerprint of the data the sweep's trials will read (here, as they will: a resumed study's where its
    trials read it), refused where a resumed study's trials read other data."""
    found = existing_study_attrs(url, spec.name)
    # a copied or moved project reads its own data from now on (open_study records it)
    work_dir = {**found, **(relocated(found, url, Path(options.results_dir)) or {})}.get(attrs.WORK_DIR)
    data = check_data_found(spec, Path(work_dir) if isinstance(work_dir, str | Path) else None)
    check_same_data(spec, found.get(attrs.DATA), data, work_dir)
    return data_to_record(spec, found, data)


def prepare(options: SweepOptions) -> tuple[Spec, str]:
    """Validate everything the user gave; raises SpecError/StorageError before anything is written.

    A study that exists is resumed, which is only right if it was made from the same space: a changed training
    block or search space would mix two experiments in one study, so that is an error (``--fresh`` or another
    name is the way out). The sections of ``RESUMABLE_SECTIONS`` (budget, resources, storage...) may change.
    """
    if options.study is not None:
        url = sweep_storage_url(resolve_storage_url(None, options.storage))
        return stored_spec(url, options.study, options.overrides, Path(options.results_dir)), url
    assert options.space is not None
    # a deprecated sampler option passes here: the study it carries on may have run with it (see kept_deprecated)
    spec = load_spec(resolve_space_path(options.space), options.overrides, quick=options.quick, keep_deprecated=True)
    check_sampling(spec)
    unused = [masked_set(o) for o in options.overrides if o.split("=")[0].split(".")[0].strip() == "quick"]
    if unused and not options.quick:  # said, not silent: the full sweep runs where a smoke run was maybe meant
        console.print(f"note: {', '.join(unused)} change{'s' * (len(unused) == 1)} the quick profile, which only "
                      f"--quick applies: this is the full sweep", markup=False)
    url = spec_storage_url(spec, options.storage)
    path = sqlite_path(url)
    if path is not None and not path.exists():  # a new SQLite file holds no study yet: don't create it before the
        return kept_deprecated(spec, None), url  # sweep starts
    try:  # creates nothing: a refusal after this (the machine, the cluster) leaves the database as it was
        storage = retry_briefly(lambda: open_storage(url, create=False))
    except NotAStudyDatabase as exc:
        if exc.empty:  # no tables, so no study: the sweep creates them once nothing can refuse it
            return kept_deprecated(spec, None), url
        if path is not None:  # a SQLite file is one application's database: another's is a mistyped path
            raise
        kept_deprecated(spec, None)  # no Optuna tables, so a new study: refused before they are created
        storage = retry_briefly(lambda: open_storage(url))  # PostgreSQL: Optuna's tables beside others, as Optuna does
    stored = None
    try:
        if options.fresh:
            fresh = retry_briefly(lambda: fresh_study_name(storage, spec.name))
            if fresh != spec.name:
                spec = load_spec(resolve_space_path(options.space), (*options.overrides, f"name={fresh}"),
                                 quick=options.quick, keep_deprecated=True)
        elif (found := retry_briefly(lambda: stored_spec_attr(storage, spec.name, spec.base_dir, attrs.defaults_attr(
                spec.entrypoint_info.settings if spec.entrypoint_info else None)))) is not None:
            stored, has_trials, ran = found
            if not isinstance(stored, dict) and has_trials:  # else: its creator died early
                raise StorageError(
                    f"Study {spec.name!r} in {mask_url(url)} holds trials but no sweeper spec: another program made "
                    "it, and its trials would count in this sweep's budget and best. Start a new study with --fresh, "
                    "or give this space another name (--set name=...).")
            check_defaults(spec, ran if has_trials else None, stored if isinstance(stored, dict) else None)
            if changes := spec_changes(with_defaults(stored, spec, ran), with_defaults(spec_attr(spec), spec)) \
                    if isinstance(stored, dict) else []:
                raise StorageError(
                    f"Study {spec.name!r} in {mask_url(url)} was made from a different space "
                    f"({'; '.join(changes)}); resuming it would mix two experiments. Start a new study with "
                    f"--fresh (nothing is deleted), give this space another name, or continue the study as it "
                    f"was: {resume_command(spec, options, url)}")
    finally:  # the sweep opens its own, heartbeating storage; a PostgreSQL server counts idle connections
        close_storage(storage)
    return kept_deprecated(spec, stored), url


def kept_deprecated(spec: Spec, stored: Any) -> Spec:
    """``spec``, whose sampler options Optuna has deprecated are refused unless ``stored``, the spec of the study it
    carries on, ran with the same: a new study is told to leave them out; a study that ran with one goes on as it
    ran (``sweeper run`` of its space as ``sweeper resume`` does), with a note."""
    deprecated = deprecated_options(spec.sampler)
    ran = stored.get("sampler") if isinstance(stored, dict) else None
    for key, said in deprecated.items():
        if not isinstance(ran, dict) or key not in ran or ran[key] != spec.sampler.options[key]:
            raise refusal(spec, ("sampler", key), deprecated_refusal(said))
    note_deprecated(spec, deprecated)
    return spec


def note_deprecated(spec: Spec, deprecated: Mapping[str, str]) -> None:
    """Say once, plainly, that the study goes on with options Optuna has deprecated: Optuna would print a raw
    FutureWarning (its file and line) each time the sweep builds the sampler, which is silenced for these."""
    for key, said in deprecated.items():
        console.print(f"note: study {spec.name} ran with sampler.{key}, which Optuna has deprecated ({said}); it "
                      "keeps it to go on as it ran, but a new study's space must leave it out", markup=False)
        warnings.filterwarnings("ignore", message=re.escape(said), category=FutureWarning)


def stored_spec_attr(storage: optuna.storages.BaseStorage, name: str, space_dir: str | None = None,
                     declared: Any = None) -> tuple[Any, bool, Any] | None:
    """The spec attr of the study ``name``, whether it holds trials, and the defaults its trials ran at (those of
    its space folder, under ``space_dir``, unless ``declared`` here as they ran: :func:`attrs.defaults_here`); None
    where there is no such study."""
    if not study_exists(storage, name):
        return None
    study = optuna.load_study(study_name=name, storage=storage)
    found = study.user_attrs
    ran = attrs.defaults_here(found, space_dir, declared)
    return found.get(attrs.SPEC), holds_trials(storage, study._study_id), ran


def check_defaults(spec: Spec, ran: Any, stored: Mapping[str, Any] | None = None) -> None:
    """Refuse to carry on a study whose trials trained a setting its space leaves out at a default that the
    entrypoint declares otherwise now (``ran``: the ``defaults`` attr): its trials would mix two experiments, as
    for a changed training block, but no spec shows it (a function's config holds no default: it merges its own).
    A setting the ``stored`` spec wrote trained at its written value, not the default: the specs compare that."""
    entry, config, stored = spec.entrypoint_info, spec.base_config(), stored or {}
    settings = (entry.settings if entry else None) or {}
    training = stored.get("training")
    written = {*(flatten(training, {k for k, v in settings.items() if isinstance(v, dict)})[0]
                 if isinstance(training, dict) else ()), *(stored.get("params") or ())}
    left = [k for k in settings if k not in {*config, *spec.params, *written}]
    if changes := default_changes(ran, settings, left):
        raise StorageError(
            f"Study {spec.name!r} trained the settings its space leaves out at {spec.entrypoint}'s defaults, which "
            f"it declares otherwise now ({'; '.join(changes)}); carrying it on would mix two experiments. Put "
            "the defaults back, or write what the study ran with into its space's training block and run that "
            "(sweeper run FILE carries the study on), or start a new study with --fresh (nothing is deleted).")


def with_defaults(stored: dict[str, Any], spec: Spec, ran: Any = None) -> dict[str, Any]:
    """A stored spec with the training settings it leaves out at the entrypoint's defaults (``ran``: those its
    trials ran at, where the study says), flat, and without the sampler and scheduler options it writes at their
    defaults, or an int param's step: 1: writing or removing a line that says the default changes nothing that runs
    (the value the study ran with, written as its default changed, neither). A fixed param is a training value."""
    settings = (spec.entrypoint_info.settings if spec.entrypoint_info else None) or {}
    settings = {**settings, **{k: v for k, v in (ran if isinstance(ran, dict) else {}).items() if k in settings}}
    training = stored.get("training")
    written = flatten(training, {k for k, v in settings.items() if isinstance(v, dict)})[0] \
        if isinstance(training, dict) else {}
    defaults_of = {"sampler": lambda section: sampler_defaults(section.get("type"), spec),
                   "scheduler": lambda section: scheduler_defaults(section, spec)}
    options = {}
    for name, defaults_for in defaults_of.items():
        if isinstance(section := stored.get(name), dict):
            defaults = defaults_for(section)
            options[name] = {k: v for k, v in section.items() if k not in defaults or defaults[k] != v}
    fixed = {}
    if isinstance(params := stored.get("params"), dict):
        fixed = {name: setting_typed(spec, name, "value", p.get("value")) for name, p in params.items()
                 if isinstance(p, dict) and p.get("type") == "fixed"}
        options["params"] = {name: {k: setting_typed(spec, name, k, v) for k, v in p.items()
                                    if (k, v) != ("step", 1) or p.get("type") != "int"}
                             if isinstance(p, dict) else p for name, p in params.items() if name not in fixed}
    return {**stored, "training": {**settings, **written, **fixed}, **options}


def scheduler_defaults(section: dict[str, Any], spec: Spec) -> dict[str, Any]:
    """The scheduler options at their defaults, with ASHA's and HyperBand's max_t as build_scheduler computes it from
    the planned epochs; not where the grace period reaches them: build_scheduler then stops no trial unless one is
    written."""
    defaults = getattr(KINDS["scheduler"].get(section.get("type")), "DEFAULTS", {})
    epochs, grace = spec.planned_epochs(), {**defaults, **section}.get("grace_period", 1)
    if section.get("type") not in ("asha", "hyperband") or (epochs and grace >= epochs):
        return defaults
    return {**defaults, "max_t": epochs - 1 if epochs else 100}


def setting_typed(spec: Spec, name: str, key: str, value: Any) -> Any:
    """A param's choices or fixed value as its trials get them: in the type of the setting it sets, if any (choices
    [1, 2] and [1.0, 2.0] of an int setting give the same trials), else as written."""
    entry = spec.entrypoint_info
    if key not in ("choices", "value") or entry is None or name not in (entry.settings or {}):
        return value
    try:
        return [entry.coerce(name, v) for v in value] if key == "choices" else entry.coerce(name, value)
    except (ConfigError, TypeError):  # a stored spec the entrypoint refuses now: as written, so a change shows
        return value


def resume_command(spec: Spec, options: SweepOptions, url: str, command: str = "resume", flags: str = "") -> str:
    """``sweeper resume NAME`` (or another command on the study, with ``flags``), with the storage where the flag or
    the space named it (SWEEPER_STORAGE stays set)."""
    storage = f" --storage {shlex.quote(mask_url(url))}" if options.storage or spec.storage else ""
    return shell_command(command, spec.name, storage + flags)  # pasted into a shell: spaces in names and paths


def clean_command(spec: Spec, options: SweepOptions, url: str) -> str:
    """``sweeper clean NAME``, with the storage and results folder this run was given."""
    results = f" --results-dir {shlex.quote(options.results_dir)}" if options.results_dir != RESULTS_DIR else ""
    return resume_command(spec, options, url, "clean", results)


def stored_spec(url: str, name: str, overrides: tuple[str, ...] = (), results_root: Path = Path(RESULTS_DIR)
                ) -> Spec:
    """The spec a study was run with, read back from the study (``sweeper resume``); ``--set`` applies on top."""
    if moved := [expr for expr in overrides if expr.partition("=")[0].strip() == "storage"]:
        raise BadInput(f"{masked_set(moved[0])}: sweeper resume reads study {name!r} from its storage, so it "
                       "cannot move it; name that storage with --storage URL (or SWEEPER_STORAGE)")
    storage = retry_briefly(lambda: open_storage(url, create=False))
    try:
        study = retry_briefly(lambda: load_existing_study(storage, name, url))
        user_attrs = retry_briefly(lambda: study.user_attrs)
        # one trial's row read, not every trial loaded: a study of thousands takes seconds to load
        foreign = not isinstance(user_attrs.get(attrs.SPEC), dict) and retry_briefly(
            lambda: holds_trials(storage, study._study_id))
    finally:
        close_storage(storage)
    data = user_attrs.get(attrs.SPEC)
    if not isinstance(data, dict):  # with trials, another program's (run refuses it too); else its creator died early
        raise StorageError(f"Study {name!r} in {mask_url(url)} holds no sweeper spec" + (
            ": another program made it, so sweeper cannot carry it on; run your space as a new study (sweeper run "
            "FILE --fresh, or --set name=...)." if foreign else "; run its space file with sweeper run instead."))
    space_dir = {**user_attrs, **(relocated(user_attrs, url, results_root) or {})}.get(attrs.SPACE_DIR)  # a copy's
    entrypoint = data.get("entrypoint") or DEFAULT_ENTRYPOINT
    if entrypoint != DEFAULT_ENTRYPOINT and isinstance(space_dir, str) and not Path(space_dir).is_dir():
        raise BadInput(f"study {name!r} trains with {entrypoint} from {space_dir}, which is not on this machine (a "
                       "moved project?): run its space file instead, sweeper run FILE, which carries the study on")
    if entrypoint != DEFAULT_ENTRYPOINT and isinstance(space_dir, str) and not here_or_below(Path(space_dir)):
        raise BadInput(f"study {name!r} trains with {entrypoint} from {space_dir}, which is not in this folder: "
                       "sweeper resume imports a study's code only from the folder it runs in or below (the folder "
                       "is a study attr, which anyone who may write the database sets); run it from that folder or "
                       "a folder above it, or, in a copy of the project, run its space file (sweeper run FILE)")
    file = f"the spec stored in study {name!r}"
    try:
        spec = spec_from_dict(attrs.spec_as_ran(data), file=file, base_dir=space_dir, overrides=overrides,
                              stored=True)
    except SpecError as exc:
        if overrides and stored_is_valid(data, file, space_dir):  # refused for the user's --set: theirs to mend
            raise
        fields = sorted({issue.field for issue in exc.issues})
        # a section that may change on resume is mended there: the study and its RUNNING trials go on
        mendable = all(f.partition(".")[0] in RESUMABLE_SECTIONS - {"storage"} for f in fields)
        why = f"an earlier sweeper stored what this one refuses; {', '.join(fields)} may change on resume: " \
            f"{shell_command('resume', name, f' --set {fields[0]}=VALUE')} carries the study on" if mendable else \
            "an earlier sweeper stored what this one refuses, so the study cannot be carried on: run its space, " \
            "mended, as a new study (sweeper run FILE --fresh)" if entrypoint == DEFAULT_ENTRYPOINT else \
            f"this sweeper, or {entrypoint} as it is here, refuses what the study ran with: put back the code it " \
            "ran and resume; if the code is as it was, run its space, mended, as a new study (sweeper run FILE --fresh)"
        raise SpecError([*exc.issues, SpecIssue(file, None, "", why)]) from None
    check_defaults(spec, attrs.defaults_here(user_attrs, space_dir))
    if changes := spec_changes(data, spec_attr(spec)):  # --set may change how much runs, never what is searched
        may = ", ".join(sorted(RESUMABLE_SECTIONS - {"storage"}))  # --set storage=... was refused above
        raise StorageError(f"--set would change what study {name!r} searches ({'; '.join(changes)}); resuming it so "
                           f"would mix two experiments. Only {may} may change on resume: run the changed space as a "
                           "new study (sweeper run FILE --fresh, or another name).")
    note_deprecated(spec, deprecated_options(spec.sampler))  # what the study ran with: it goes on with it
    return spec


def stored_is_valid(data: Mapping[str, Any], file: str, space_dir: Any) -> bool:
    """Whether the stored spec loads as it is, without the user's ``--set``."""
    try:
        spec_from_dict(attrs.spec_as_ran(data), file=file, base_dir=space_dir, stored=True)
    except SpecError:
        return False
    return True


def spec_attr(spec: Spec) -> dict[str, Any]:
    """The spec as the study keeps it: without ``storage`` (also the quick profile's), whose URL may hold a password.

    Every reader of the database (and of optuna-dashboard) sees study attrs; the study lives in that storage anyway,
    and ``sweeper resume`` takes the URL it is given.
    """
    kept = {key: value for key, value in spec.to_yaml_dict().items() if key != "storage"}
    if "quick" in kept:  # the quick profile may name a storage of its own
        kept["quick"] = {key: value for key, value in kept["quick"].items() if key != "storage"}
    return kept


def writable_results_folder(results_dir: str) -> Path:
    """The results folder, absolute, with its ``ray`` folder private (Tune pickles trial configs and results there)
    and room to write: a full disk or another user's folder is bad input before the study is made."""
    results_root = Path(results_dir).resolve()
    try:
        private_folder(results_root / "ray")
        with tempfile.TemporaryFile(dir=results_root / "ray") as probe:
            probe.write(bytes(1 << 16))
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        theirs = exc.errno == errno.EPERM  # chmod of a teammate's folder in a shared project
        raise BadInput(f"--results-dir {results_dir}: cannot write {exc.filename or results_root}: "
                       f"{exc.strerror or exc}" + ("; it is another user's: give --results-dir a folder of your own"
                                                   if theirs else "")) from None
    return results_root


def private_folder(path: Path) -> None:
    """Create ``path`` (and its parents) readable by its owner only; tighten it if it exists."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def fusing_problem(spec: Spec) -> str:
    """Why the trials of ``spec`` cannot train as fused groups; '' when they can."""
    if spec.entrypoint != DEFAULT_ENTRYPOINT:
        return f"fused groups train the built-in model only (entrypoint {DEFAULT_ENTRYPOINT}), not {spec.entrypoint}"
    return ""


def check_spec(spec: Spec) -> None:
    """A ``resources.fuse`` that cannot be, or a metric judged under a name the sweep records for itself, as bad
    input (exit 2) before anything is written. (``on_gpu.fuse`` is what a GPU cluster offers: where it cannot be, the
    driver trains the trials one by one and says so.)"""
    if spec.resources.fuse > 1 and (problem := fusing_problem(spec)):
        raise refusal(spec, ("resources", "fuse"), f"{problem}; or set resources.fuse: 1")
    # the objective is read from the result itself, where only Ray's names are taken; targets and the baseline from
    # the trial's attrs, where sweeper's are too
    taken = (*attrs.SWEEPER_ONLY, *attrs.RAY_RESULT_KEYS)
    judged = [(("objective", "metric"), spec.objective.metric, attrs.RAY_RESULT_KEYS),
              *((("targets", m), m, taken) for m in spec.targets),
              *((("baseline", m), m, taken) for m in (spec.baseline.metrics if spec.baseline else {}))]
    for path, metric, names in judged:
        if metric in names:
            whose = "Ray Tune" if metric in attrs.RAY_RESULT_KEYS else "sweeper"
            raise refusal(spec, path, f"{metric} is a name {whose} records for itself, so a training function's "
                                      f"{metric} is recorded as returned_{metric}, which nothing judges: report it "
                                      f"under another name (e.g. val_{metric})")


def unfusable_on_gpu(spec: Spec) -> str:
    """Why ``resources.on_gpu.fuse`` cannot apply, as the driver and ``validate`` say it; '' when it can."""
    on_gpu = spec.resources.on_gpu
    problem = fusing_problem(spec) if on_gpu is not None and on_gpu.fuse > 1 else ""
    return f"resources.on_gpu.fuse: {on_gpu.fuse} does not apply ({problem}): on a GPU each trial trains alone" \
        if problem else ""
