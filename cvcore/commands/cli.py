"""The `cv` command. Each command reads its options and calls the library; the logic lives there.

Shell completion: ``eval "$(_CV_COMPLETE=bash_source cv)"`` (zsh: ``zsh_source``, fish: ``fish_source``).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import click

import cvcore
from cvcore.errors import CvcoreError
from cvcore.plugins.loader import registry
from cvcore.plugins.registry import KINDS

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _console():
    from rich.console import Console

    return Console(soft_wrap=False)


class CvGroup(click.Group):
    """Turns CvcoreError into a one-paragraph message and exit status 1 (CVCORE_DEBUG=1: traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CvcoreError as exc:
            if os.environ.get("CVCORE_DEBUG") == "1":
                raise
            raise click.ClickException(str(exc)) from None


@click.group(cls=CvGroup, context_settings=CONTEXT)
@click.version_option(cvcore.__version__, "--version", prog_name="cvcore")
@click.option("--strict-plugins", is_flag=True, envvar="CVCORE_STRICT_PLUGINS",
              help="Exit with status 2 if any plugin fails to load (env: CVCORE_STRICT_PLUGINS=1).")
def cli(strict_plugins: bool) -> None:
    """cvcore: compose image-training runs from registered components.

    Plugins are found in the `cvcore.plugins` entry-point group. Choose which load with
    CVCORE_LOAD_PLUGINS=a,b (empty: none) and skip some with CVCORE_DISABLE_PLUGINS=a,b.
    Set CVCORE_DEBUG=1 to see tracebacks.
    """
    ctx = click.get_current_context()
    if ctx.invoked_subcommand in ("list", "plugins", "doctor", "train", "info"):
        for warning in registry().warnings:
            click.echo(f"warning: {warning}", err=True)
    if strict_plugins and registry().failures:
        from cvcore.commands.report import print_failures

        print_failures(_console(), registry())
        raise SystemExit(2)


@cli.command("list")
@click.argument("kind", required=False)
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of tables.")
def list_command(kind: str | None, pattern: str | None, as_json: bool) -> None:
    """List registered components, optionally of one KIND and matching PATTERN (fnmatch).

    Examples: cv list; cv list model; cv list model 'res*' --json; cv list 'tv/*'.
    """
    from cvcore.commands.report import component_json, print_components

    if kind is not None and kind not in KINDS and pattern is None:
        kind, pattern = None, kind  # `cv list 'res*'`: one argument that is not a kind
    components = cvcore.list_components(kind, pattern)
    if as_json:
        from cvcore.commands.report import LIST_FORMAT, plugin_json

        reg = registry()
        failed = [plugin_json(p, reg) for p in reg.failures]
        listing = [component_json(c, reg.conflicts()) for c in components]
        click.echo(json.dumps({"format": LIST_FORMAT, "components": listing, "failed_plugins": failed,
                               "warnings": list(reg.warnings)}, indent=2))
        return
    if not components:
        from cvcore.errors import did_you_mean

        hint = did_you_mean(pattern, KINDS) if pattern else ""
        what = f"match {pattern or kind!r}" if pattern or kind else "are registered: no plugin is loaded"
        raise click.ClickException(f"No components {what}.{hint} Kinds: {', '.join(KINDS)}."
                                   f"{registry().selection_note}")
    print_components(_console(), components, registry(), group_families=pattern is None)


@cli.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def info(name: str, as_json: bool) -> None:
    """Show the documentation and options of one component: NAME, KIND/NAME or PLUGIN:NAME."""
    from cvcore.commands.report import component_detail_json, print_component

    if as_json:
        click.echo(json.dumps(component_detail_json(find_any_kind(name)), indent=2))
    else:
        print_component(_console(), find_any_kind(name))


def find_any_kind(name: str):
    """Resolve NAME across kinds; 'KIND/NAME' picks the kind when a name exists in several."""
    kind, _, rest = name.partition("/")
    if kind in KINDS and rest:
        return cvcore.get_component(kind, rest)
    found = [c for c in registry().components if c.is_named(name)]
    kinds = sorted({c.kind for c in found})
    if len(kinds) > 1:
        raise cvcore.AmbiguousNameError(
            f"'{name}' names a component of several kinds ({', '.join(kinds)}): "
            f"write KIND/NAME, e.g. 'cv info {kinds[0]}/{name}'."
        )
    if kinds:
        return cvcore.get_component(kinds[0], name)
    raise registry().unknown(None, name)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List installed plugins: distribution, version, what each registers, and load errors."""
    from cvcore.commands.report import plugin_json, print_plugins

    reg = registry()
    if as_json:
        click.echo(json.dumps([plugin_json(p, reg) for p in reg.plugins], indent=2))
    else:
        print_plugins(_console(), reg)


@cli.command()
def doctor() -> None:
    """Report python, torch, torchvision, devices and every plugin with its import time."""
    from cvcore.commands.doctor import print_doctor

    print_doctor(_console(), registry())


def _flags_config(flags: dict, callbacks: list[str]) -> dict:
    """The configuration that command-line flags set (flags left unset set nothing).

    ``--callback`` adds to ``callbacks``, the names already configured."""
    places = {**{option.name: "trainer" for option in _trainer_fields()}, "lr": "optimizer", "data_dir": "dataset"}
    renamed = {"data_dir": "root"}
    config: dict = {}
    for key, section in places.items():
        if flags.get(key) is not None:
            config.setdefault(section, {})[renamed.get(key, key)] = flags[key]
    for section in ("dataset", "model", "loss", "optimizer"):
        if flags.get(section):
            config.setdefault(section, {})["name"] = flags[section]
    for flag, section in (("scheduler", "scheduler"), ("transform", "transforms")):
        if flags.get(flag):
            config[section] = {"name": [name for name in flags[flag] if name != "none"]}
    if flags.get("callback"):
        config["callbacks"] = {"name": callbacks + [n for n in flags["callback"] if not _among(n, callbacks)]}
    return config


def _trainer_fields():
    from cvcore.plugins.options import describe
    from cvcore.training.options import TrainerOptions

    return describe(TrainerOptions, 0)


class _OrNone(click.ParamType):
    """A value of ``kind``, or ``none``: kept as the string "none", which options read as None (as in
    TOML, which has no null), so that it differs from a flag left unset."""

    def __init__(self, kind: type) -> None:
        self.kind, self.name = kind, f"{kind.__name__.upper()}|none"

    def convert(self, value, param, ctx):
        if value in (None, "none") or isinstance(value, self.kind):
            return value
        try:
            return self.kind(value)
        except ValueError:
            self.fail(f"{value!r} is not {'an' if self.kind is int else 'a'} {self.kind.__name__} or 'none'.", param, ctx)


def _recipe(config_file: str | None) -> dict:
    """The configuration a command starts from: a TOML recipe, or the default job."""
    from cvcore.runs import config as cfg

    return cfg.choose_components(cfg.BASE, cfg.load(config_file) if config_file else cfg.DEFAULT_JOB)


class _IntOr(click.ParamType):
    """A whole number, or one of ``words`` (``auto``)."""

    def __init__(self, words: list[str]) -> None:
        self.words, self.name = words, "INTEGER|" + "|".join(words)

    def convert(self, value, param, ctx):
        if value in self.words or isinstance(value, int):
            return value
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is not a whole number or {' or '.join(repr(w) for w in self.words)}.", param, ctx)


class _Epochs(click.ParamType):
    """A number of epochs, or ``+N``: N more than the resumed run has done (kept as the string)."""

    name = "N|+N"

    def convert(self, value, param, ctx):
        text = str(value)
        try:
            if not text.startswith("+"):
                return int(text)  # a count below 1 is refused with the other trainer options
            if text[1:].isdigit() and int(text[1:]) >= 1:
                return text
            raise ValueError(text)
        except ValueError:
            self.fail(f"{value!r} is not a number of epochs (N) or epochs to add to a resumed run (+N, N at "
                      f"least 1).", param, ctx)


def _trainer_flags(command):
    """One flag per TrainerOptions field, typed and documented from it: the one source of truth
    (`--epochs`, `--batch-size`, `--no-tensor-loader`, ...). Unset flags set nothing."""
    import typing

    aliases = {"time_budget": ["--time"]}
    for option in reversed(_trainer_fields()):
        flag = "--" + option.name.replace("_", "-")
        optional = type(None) in typing.get_args(option.type)
        arms = [arm for arm in typing.get_args(option.type) if arm is not type(None)] if optional else [option.type]
        text = option.help[:1].upper() + option.help[1:]
        if bool in arms:
            decorator = click.option(f"{flag}/--no-{flag[2:]}", option.name, default=None, help=text)
        elif int in typing.get_args(arms[0]):  # a number or a word: --batch-size auto
            words = [w for arm in typing.get_args(arms[0]) if typing.get_origin(arm) is typing.Literal
                     for w in typing.get_args(arm)]
            decorator = click.option(flag, option.name, type=_IntOr(words), help=text)
        elif typing.get_origin(arms[0]) is typing.Literal:
            decorator = click.option(flag, option.name, type=click.Choice(typing.get_args(arms[0])), help=text)
        elif option.name == "epochs":
            decorator = click.option(flag, option.name, type=_Epochs(),
                                     help=text + " With --resume, +N adds N epochs to those the run has done.")
        else:
            kind = arms[0] if arms[0] in (int, float) else str
            decorator = click.option(flag, *aliases.get(option.name, []), option.name,
                                     type=_OrNone(kind) if optional else kind, help=text)
        command = decorator(command)
    return command


def _among(name: str, names: list[str]) -> bool:
    """Whether callback ``name`` is one of ``names``, short or qualified (``checkpoint`` is
    ``callbacks:checkpoint``); a name that does not resolve is left for the plan to report."""
    try:
        wanted = registry().get("callback", name)
        return any(registry().get("callback", other) is wanted for other in names)
    except CvcoreError:
        return name in names


@cli.command()
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False, path_type=str),
              help="TOML file with [trainer], [dataset], [model], ... tables.")
@click.option("--dataset", help="Data set name (cv list dataset).")
@click.option("--model", help="Model name (cv list model).")
@click.option("--loss", help="Loss name (cv list loss).")
@click.option("--optimizer", help="Optimizer name (cv list optimizer).")
@click.option("--scheduler", multiple=True, help="LR scheduler name; repeat to chain (warmup, then multistep).")
@click.option("--callback", multiple=True, help="Callback name; repeatable.")
@click.option("--transform", multiple=True,
              help="Training augmentation (cv list transform); repeat to apply several in order. Replaces the "
                   "data set's own list; --transform none: no augmentation.")
@click.option("--lr", type=float, help="Learning rate (optimizer.lr); the optimizer's own default when unset.")
@click.option("--data-dir", help="Root folder of the data set (its `root` option).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override any option, e.g. --set optimizer.momentum=0.9; repeatable.")
@click.option("--resume", type=click.Path(exists=True, path_type=Path),
              help="Continue a run: its directory or a checkpoint file. Flags (e.g. --epochs) apply on top.")
@click.option("--print-config", is_flag=True, help="Print the resolved configuration as TOML and exit.")
@click.option("--dry-run", is_flag=True, help="Build everything, run one batch, report, and exit.")
@_trainer_flags
def train(config_file, sets, resume, print_config, dry_run, **flags) -> None:
    """Train a model. With no arguments: the default job (digits + lenet, offline, about 10 s on CPU).

    Precedence: built-in defaults < -c FILE (or the resumed run's config) < flags < --set.
    --callback adds to the configured callbacks (checkpoint is on by default).
    --transform replaces the data set's augmentations (see 'cv info DATASET').
    """
    from cvcore.runs import config as cfg
    from cvcore.runs import job
    from cvcore.runs.plan import plan
    from cvcore.runs.resume import Resume
    from cvcore.training.interrupts import Interrupted

    if resume and config_file:
        raise click.UsageError("--resume continues a run with its own saved configuration; drop -c.")
    if "none" in flags.get("transform", ()) and len(set(flags["transform"])) > 1:
        raise click.UsageError(f"--transform none turns augmentation off, yet others are listed too "
                               f"({', '.join(t for t in flags['transform'] if t != 'none')}): give one or the other.")
    resumed = Resume(resume) if resume else None
    if isinstance(flags.get("epochs"), str):  # +N
        if not resumed:
            raise click.UsageError(f"--epochs {flags['epochs']} adds epochs to a run: give it with --resume RUN "
                                   f"(a new run takes --epochs N).")
        flags["epochs"] = resumed.state["epoch"] + int(flags["epochs"][1:])
    if resumed and flags.get("run_dir") and Path(flags["run_dir"]).expanduser().resolve() != resumed.run_dir.resolve():
        raise click.UsageError(f"--resume continues '{resumed.run_dir}' in its own directory; --run-dir "
                               f"'{flags['run_dir']}' does not apply (copy the run directory to continue it elsewhere).")
    config = resumed.config if resumed else _recipe(config_file)
    config = cfg.choose_components(config, _flags_config(flags, cfg.names(config, "callbacks")))
    config = cfg.apply_sets(config, sets)
    if resumed:
        config = resumed.continued(config)
    checked = plan(config)
    if print_config:
        click.echo(cfg.to_toml(checked.config), nl=False)
    elif dry_run:
        for line in job.dry_run(checked, resumed):
            click.echo(line)
    else:
        previous = _exit_on_signals()
        try:
            summary, run_dir = job.train(config, resumed)
        except (Interrupted, SystemExit) as stopped:
            _ignore_signals()  # exiting now: a further Ctrl-C must not kill the process mid-shutdown
            stop = _interruption(stopped)
            if stop is None:
                raise
            resume_with = f"cv train --resume {stop.run_dir}" if stop.run_dir else "cv train --resume RUN_DIR"
            if os.environ.get("RANK", "0") == "0":  # under torchrun every process stops; the first one says so
                click.echo(f"Interrupted by {_signal_name(stop.signum)} after {stop.epoch} completed epoch(s): the "
                           f"step in flight finished; the checkpoints hold epoch {stop.epoch} (the interrupted epoch "
                           f"re-runs from its start). Resume with: {resume_with}", err=True)
            raise SystemExit(128 + stop.signum) from None
        finally:
            _restore_signals(previous)  # run in-process (tests, notebooks), the caller keeps its handlers
        if run_dir is not None:
            click.echo(_summary_line(summary, run_dir))


def _interruption(stopped: BaseException):
    """The Interrupted that stopped training, else None.

    A second signal right after the first exits through _exit_on_signals' handler while the
    Interrupted is on its way up: it is then the SystemExit's context. Only numbers are kept: a
    traceback held until exit would keep DataLoader workers alive past their shutdown."""
    from cvcore.training.interrupts import Interrupted

    stop = stopped if isinstance(stopped, Interrupted) else stopped.__context__
    if not isinstance(stop, Interrupted):
        return None
    return Interrupted(stop.signum, stop.epoch, stop.run_dir)


def _signal_name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


def _exit_on_signals() -> None:
    """SIGINT/SIGTERM outside the training loop (loading data, or again after the save) exit at once
    with 130/143 and no traceback; inside the loop the Trainer's own handlers take over."""
    import signal

    def leave(signum, frame):
        _ignore_signals()
        raise SystemExit(128 + signum)

    return {sig: signal.signal(sig, leave) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(previous: dict) -> None:
    import signal

    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _ignore_signals() -> None:
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _summary_line(summary: dict, run_dir) -> str:
    per_class = "  ".join(f"{name}: {value:.3f}" for name, value in summary["per_class"].items()
                          if value is not None)
    stopped = f" ({summary['stop_reason']})" if summary["stop_reason"] else ""
    averaged = f"the weights' average (ema {summary['ema']})" if summary.get("ema") else ""
    if summary["best_value"] is None:
        return (f"done{stopped}: {summary['monitor']} was never finite in {summary['epochs_run']} epoch(s), so no "
                f"best epoch was chosen and {averaged or 'the last weights'} stay; run in {run_dir}")
    per_class_line = f"per-class {summary['per_class_metric']} (best epoch): {per_class}\n" if per_class else ""
    return (f"{per_class_line}done{stopped}: best {summary['monitor']} {summary['best_value']:.4f} at epoch "
            f"{summary['best_epoch']} of {summary['epochs_run']}"
            f"{f' with {averaged}' if averaged else ''}; weights restored; run in {run_dir}")


def _which_applies(target: Path) -> None:
    """--checkpoint chooses within a run directory: refuse it, when given, with a checkpoint file."""
    source = click.get_current_context().get_parameter_source("which")
    if source == click.core.ParameterSource.COMMANDLINE and not Path(target).is_dir():
        raise click.UsageError(f"--checkpoint picks best or last of a run directory, but '{target}' is a file: "
                               f"drop --checkpoint, or give the run directory.")


_WHICH = click.option("--checkpoint", "which", type=click.Choice(["best", "last"]), default="best", show_default=True,
                       help="Which checkpoint of a run directory: best (the weights training ended with) or last.")


@cli.command("export")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["onnx", "safetensors"]), default="onnx", show_default=True,
              help="onnx (dynamic batch, class names and normalisation in its metadata) or plain weights.")
@click.option("--opset", type=int, help="ONNX opset version.")
@click.option("--output", type=click.Path(path_type=Path), help="Output file (default: beside the checkpoint).")
@_WHICH
def export_command(checkpoint: Path, fmt: str, opset: int | None, output: Path | None, which: str) -> None:
    """Export the model of CHECKPOINT (a file or a run directory) to ONNX or safetensors."""
    from cvcore import checkpoint as ckpt
    from cvcore.export import export_onnx, export_safetensors, load_model

    _which_applies(checkpoint)
    if opset is not None and fmt != "onnx":
        raise click.UsageError("--opset applies to --format onnx; safetensors weights have no opset.")
    source = ckpt.find(checkpoint, which)
    output = output or source.with_suffix(".onnx" if fmt == "onnx" else ".weights.safetensors")
    if ckpt.saved_epoch(output) is not None:  # a whole checkpoint; a damaged source fails to load below
        raise click.UsageError(f"--output '{output}' is a training checkpoint, which the export would overwrite "
                               f"(checkpoints of a run are its record). Choose another file.")
    loaded = load_model(source)
    if fmt == "safetensors":
        click.echo(f"wrote {export_safetensors(loaded, output)}")
        return
    difference = export_onnx(loaded, output, opset)
    verified = "not verified (install onnxruntime to compare with PyTorch)" if difference is None else (
        f"verified with onnxruntime: max |difference| from PyTorch {difference:.2e}")
    click.echo(f"wrote {output}; onnx.checker passed; {verified}")


@cli.command("eval")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--dataset", help="Evaluate on this data set instead of the one trained on.")
@click.option("--data-dir", help="Root folder of the data set.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True, help="Images per batch.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--output", type=click.Path(path_type=Path), help="Confusion matrix PNG (default: beside the checkpoint).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@_WHICH
def eval_command(checkpoint: Path, dataset, data_dir, batch_size: int, device: str, output, as_json: bool,
                 which: str) -> None:
    """Evaluate CHECKPOINT (a file or a run directory) on its validation set: metrics, per class, confusion."""
    from cvcore import checkpoint as ckpt
    from cvcore.commands.inference import evaluate_checkpoint, save_confusion_png

    _which_applies(checkpoint)
    result = evaluate_checkpoint(checkpoint, dataset, data_dir, batch_size, device, which)
    evaluated = ckpt.find(checkpoint, which)
    name = "confusion.png" if evaluated.stem == "best" else f"confusion-{evaluated.stem}.png"  # best's stays
    picture = save_confusion_png(result, output or evaluated.with_name(name))
    if as_json:
        click.echo(json.dumps({**result, "confusion_png": str(picture) if picture else None}, indent=2))
        return
    from cvcore.commands.report import print_evaluation

    print_evaluation(_console(), result)
    if result["confusion"] is not None:
        click.echo(f"confusion matrix: {picture}" if picture else "confusion matrix PNG skipped: pip install matplotlib")


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--topk", type=click.IntRange(min=1), default=5, show_default=True, help="Classes to show per image.")
@click.option("--output-dir", type=click.Path(path_type=Path),
              help="Segmentation masks, detection pictures: where they go (default: here).")
@click.option("--min-score", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Detection: the boxes scoring at least this are reported.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_WHICH
def predict(model: Path, images: tuple[Path, ...], topk: int, output_dir: Path | None, min_score: float,
            as_json: bool, which: str) -> None:
    """Predict IMAGES (files, or folders of them) with MODEL: a checkpoint, a run directory or an
    exported .onnx file.

    Each task reports in its own way: classifiers print the top-k classes, segmentation models
    write IMAGE.mask.png (class ids), multi-label models print the classes scored at least 0.5,
    detectors give boxes in the photo's pixels and write IMAGE.boxes.png.
    """
    from cvcore.commands.inference import predict as run_predict

    _which_applies(model)
    results, lines = run_predict(model, list(images), topk, output_dir, which, min_score)
    click.echo(json.dumps(results, indent=2) if as_json else "\n".join(lines))


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--output", type=click.Path(path_type=Path), help="PNG file (default: RUN_DIR/curves.png for one run, "
              "curves.png here for several).")
def plot(run_dirs: tuple[Path, ...], output: Path | None) -> None:
    """Plot loss, accuracy and learning rate per epoch of one or more runs, overlaid (needs matplotlib)."""
    from cvcore.commands.plot import plot_runs

    output = output or (run_dirs[0] / "curves.png" if len(run_dirs) == 1 else Path("curves.png"))
    click.echo(f"wrote {plot_runs(list(run_dirs), output)}")


@cli.group(invoke_without_command=True)
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False, path_type=str),
              help="The run to tune, as TOML (default: the default job).")
@click.option("--space", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML search space: a table per --set key (type float/int with low, high, log, step; or choices).")
@click.option("--trials", type=click.IntRange(1), default=20, show_default=True,
              help="Finished trials the study should hold (a resumed or shared study counts the earlier ones).")
@click.option("--study", "study_name", help="Study name (default: the space file's name).")
@click.option("--storage", help="Optuna storage URL (default: sqlite:///cvcore-tune.db here); several processes "
                                "or machines sharing it join one study.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any option of the run, as in cv train.")
@click.pass_context
def tune(ctx, config_file, space, trials, study_name, storage, sets) -> None:
    """Find hyperparameters: a search with Optuna (cv tune -c RUN.toml --space SPACE.toml), or the
    learning rate (cv tune lr). Every trial is a normal run directory under runs/tune-STUDY/; the
    best one is written as a config.toml that re-runs it."""
    if ctx.invoked_subcommand is not None:
        return
    if space is None:
        raise click.UsageError("Give the search space with --space SPACE.toml (or use a subcommand: cv tune lr).")
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise click.UsageError("cv tune needs Optuna: pip install 'cvcore[tune]'.")
    from cvcore.commands.tune import read_space, search, with_values
    from cvcore.runs import config as cfg

    base = cfg.apply_sets(_recipe(config_file), sets)
    searched = read_space(space)
    name = study_name or space.stem
    storage = storage or f"sqlite:///{Path('cvcore-tune.db').resolve()}"
    study, monitor = search(base, searched, trials, name, storage, Path("runs") / f"tune-{name}", click.echo)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        raise click.ClickException(f"No trial of study '{name}' completed (all pruned or failed): nothing to report.")
    best = study.best_trial
    output = Path("runs") / f"tune-{name}" / "best.toml"
    from cvcore.files import make_directory, write_text

    make_directory(output.parent)
    write_text(output, cfg.to_toml(with_values(base, best.params)))
    click.echo(f"best of {len(study.trials)} trials: trial {best.number}, {monitor} {best.value:.4f} with "
               f"{', '.join(f'{k}={v}' for k, v in best.params.items())}; its run: {best.user_attrs.get('run_dir')}")
    click.echo(f"re-run it: cv train -c {output}")


@tune.command("lr")
@click.argument("config_file", required=False, type=click.Path(dir_okay=False, path_type=str))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any option, as in cv train.")
@click.option("--steps", type=click.IntRange(20, 100_000), default=200, show_default=True,
              help="Optimizer steps at most (the test stops early once the loss diverges).")
@click.option("--min-lr", type=click.FloatRange(0, min_open=True), default=1e-7, show_default=True)
@click.option("--max-lr", type=click.FloatRange(0, min_open=True), default=10.0, show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("lr_range.png"),
              show_default=True, help="PNG of the loss against the learning rate (needs matplotlib).")
def tune_lr(config_file, sets, steps, min_lr, max_lr, output) -> None:
    """Learning-rate range test (Smith, 2017) on CONFIG_FILE (a recipe or a run's config.toml; default:
    the default job): the learning rate grows geometrically over up to STEPS training steps; prints the
    rate where the loss falls fastest. Trains a throwaway copy: nothing is saved but the PNG."""
    from cvcore.commands.tune import diverged, plot_range, suggestion
    from cvcore.runs import config as cfg
    from cvcore.runs.build import Built
    from cvcore.runs.plan import plan

    if min_lr >= max_lr:
        raise click.UsageError(f"--min-lr {min_lr:g} must be below --max-lr {max_lr:g}.")
    config = cfg.apply_sets(_recipe(config_file), sets)
    config.get("trainer", {}).pop("run_dir", None)  # a run's config.toml names its directory: never touched
    built = Built(plan(config), None)
    lrs, losses = built.trainer.lr_range(min_lr, max_lr, steps, diverged)
    suggested = suggestion(lrs, losses)
    lowest = min(range(len(losses)), key=lambda i: losses[i] if math.isfinite(losses[i]) else math.inf)
    click.echo(f"{len(losses)} steps from {min_lr:.2g} to {lrs[-1]:.2g}"
               f"{' (stopped: the loss diverged)' if len(losses) < steps else ''}; lowest loss {losses[lowest]:.4f} "
               f"at {lrs[lowest]:.2g}")
    click.echo(f"suggested learning rate: {suggested:.2g} (where the smoothed loss falls fastest); "
               f"try it with --lr {suggested:.2g}")
    picture = plot_range(lrs, losses, suggested, output)
    click.echo(f"wrote {picture}" if picture else "PNG skipped: pip install matplotlib")


def main() -> None:
    """Console-script entry point."""
    if not sys.warnoptions:  # a plugin using a deprecated API is told so, unless the user chose filters
        import warnings

        from cvcore.deprecations import CvcoreDeprecationWarning

        warnings.simplefilter("default", CvcoreDeprecationWarning)
    try:
        cli(prog_name="cv")
    except SystemExit as leaving:
        if leaving.code in (130, 143):  # interrupted: the process ends now, and a late Ctrl-C must not break that
            _ignore_signals()
        raise


if __name__ == "__main__":
    sys.exit(main())
