"""`cv tune lr`: the learning-rate range test on a run's configuration, nothing saved but its plot."""

import json
import math
import re

import pytest
from click.testing import CliRunner

from cvcore.commands.cli import cli
from cvcore.commands.tune import diverged, smoothed, suggestion


def test_the_range_test_suggests_a_rate_where_the_default_job_learns_and_saves_nothing_else(in_tmp):
    result = CliRunner().invoke(cli, ["tune", "lr", "--steps", "120", "--output", "range.png"])
    assert result.exit_code == 0, result.output
    suggested = float(re.search(r"suggested learning rate: (\S+) ", result.output).group(1))
    lowest = float(re.search(r"lowest loss \S+ at (\S+)", result.output).group(1))
    assert 1e-5 < suggested < 1.0 and suggested <= lowest  # Adam on digits learns here; not at 1e-7, nor near 10
    assert (in_tmp / "range.png").stat().st_size > 5_000
    assert sorted(p.name for p in in_tmp.iterdir()) == ["range.png"]  # no run directory, no checkpoint


def test_the_range_test_reads_a_recipe_and_its_sets(in_tmp):
    (in_tmp / "recipe.toml").write_text('[dataset]\nname = "digits"\n[model]\nname = "lenet"\n[optimizer]\n'
                                        'name = "sgd"\nmomentum = 0.9\n[trainer]\nbatch_size = 32\nrun_dir = "never"\n')
    result = CliRunner().invoke(cli, ["tune", "lr", "recipe.toml", "--set", "model.name=mlp", "--steps", "60",
                                      "--max-lr", "1", "--output", "r.png"])
    assert result.exit_code == 0, result.output
    assert not (in_tmp / "never").exists() and (in_tmp / "r.png").exists()


def test_smoothing_and_suggestion_follow_the_curve():
    lrs = [1e-6 * 10 ** (i / 20) for i in range(120)]  # 1e-6 .. 1e0
    # A loss flat at 2, falling fastest around lr 1e-3, then flat, then rising past 1e-1.
    losses = [2 - 1.5 / (1 + math.exp(-(math.log10(lr) + 3) * 4)) + max(0.0, math.log10(lr) + 1) * 50 for lr in lrs]
    assert smoothed([3.0, 3.0, 3.0]) == pytest.approx([3.0, 3.0, 3.0])  # bias-corrected: no pull towards 0
    assert 3e-4 < suggestion(lrs, losses) < 3e-3
    assert not diverged(losses[:80]) and diverged(losses) and diverged([1.0, float("nan")])


@pytest.mark.parametrize("args, message", [
    (["--min-lr", "1", "--max-lr", "0.1"], "--min-lr 1 must be below --max-lr 0.1"),
    (["--steps", "5"], "5 is not in the range 20<=x<=100000"),
])
def test_range_test_options_are_checked_before_anything_is_built(in_tmp, args, message):
    result = CliRunner().invoke(cli, ["tune", "lr", *args])
    assert result.exit_code == 2 and message in result.output, result.output


SPACE = '''["optimizer.lr"]
type = "float"
low = 1e-4
high = 0.1
log = true

["model.name"]
choices = ["lenet", "mlp"]
'''
SHORT = ["--set", "trainer.epochs=2", "--set", "trainer.limit_train_batches=3"]


def searched(*args):
    result = CliRunner().invoke(cli, ["tune", "--space", "space.toml", *SHORT, *args])
    assert result.exit_code == 0, result.output
    return result.output


def finished_trials(storage: str, study: str = "space") -> list:
    import optuna

    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    return [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]


def test_a_search_runs_trials_as_run_directories_and_writes_a_config_that_re_runs_the_best(in_tmp):
    pytest.importorskip("optuna")
    (in_tmp / "space.toml").write_text(SPACE)
    output = searched("--trials", "3")
    storage = f"sqlite:///{in_tmp / 'cvcore-tune.db'}"
    trials = finished_trials(storage)
    assert len(trials) == 3 and all((in_tmp / t.user_attrs["run_dir"] / "summary.json").is_file() for t in trials)
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert f"trial {best.number}, val_acc1 {best.value:.4f}" in output
    rerun = CliRunner().invoke(cli, ["train", "-c", "runs/tune-space/best.toml", "--run-dir", "again"])
    assert rerun.exit_code == 0, rerun.output
    again = json.loads((in_tmp / "again" / "summary.json").read_text())
    assert again["best_value"] == pytest.approx(best.value)  # the same run: the seed, the values, the data


def test_a_stopped_search_resumes_where_it_was(in_tmp):
    pytest.importorskip("optuna")
    (in_tmp / "space.toml").write_text(SPACE)
    searched("--trials", "2")
    first = sorted(p.name for p in (in_tmp / "runs" / "tune-space").iterdir())
    searched("--trials", "3")  # one more, numbered after the two
    assert len(finished_trials(f"sqlite:///{in_tmp / 'cvcore-tune.db'}")) == 3
    assert sorted(p.name for p in (in_tmp / "runs" / "tune-space").iterdir()) == sorted([*first, "trial-0002"])


@pytest.mark.slow
def test_two_processes_join_one_study_in_one_sqlite_file(in_tmp):
    pytest.importorskip("optuna")
    import subprocess
    import sys

    (in_tmp / "space.toml").write_text(SPACE)
    command = [sys.executable, "-m", "cvcore.commands.cli", "tune", "--space", "space.toml", "--trials", "4", *SHORT,
               "--storage", f"sqlite:///{in_tmp / 'shared.db'}"]
    workers = [subprocess.Popen(command, cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), outputs
    trials = finished_trials(f"sqlite:///{in_tmp / 'shared.db'}")
    assert 4 <= len(trials) <= 5  # each process may finish the one trial it had begun
    assert all(re.search(r"^trial \d+:", output, re.M) for output in outputs)  # both took part
    assert len({t.user_attrs["run_dir"] for t in trials}) == len(trials)  # one run directory each


def test_a_bad_search_space_is_one_error_naming_each_entry(in_tmp):
    pytest.importorskip("optuna")
    (in_tmp / "space.toml").write_text('["optimizer.lr"]\ntype = "float"\nlow = 1\nhigh = 0.1\n'
                                       '[lr]\ntype = "int"\nlow = 1\nhigh = 2\n["model.name"]\nchoices = []\n')
    result = CliRunner().invoke(cli, ["tune", "--space", "space.toml"])
    assert result.exit_code == 1 and "needs numbers low < high" in result.output
    assert "'lr': expected a table named by a --set key" in result.output and "choices must be a non-empty list" in result.output
    assert not (in_tmp / "runs").exists()


@pytest.mark.parametrize("space, message", [
    ('["optimizer.lrr"]\ntype = "float"\nlow = 0.001\nhigh = 0.1\n',
     "optimizer.lrr = 0.001 does not fit the run: Unknown option 'lrr' for optimizer 'optim:adam'. Did you mean 'lr'?"),
    ('["model.name"]\nchoices = ["lenet", "lenett"]\n',
     "model.name = 'lenett' does not fit the run: Unknown model 'lenett'. Did you mean 'lenet'"),
])
def test_a_space_the_run_cannot_take_is_refused_before_any_trial_is_recorded(in_tmp, space, message):
    pytest.importorskip("optuna")
    (in_tmp / "space.toml").write_text(space)
    result = CliRunner().invoke(cli, ["tune", "--space", "space.toml"])
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert not (in_tmp / "cvcore-tune.db").exists() and not (in_tmp / "runs").exists()
