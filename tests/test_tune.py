"""`cv tune lr`: the learning-rate range test on a run's configuration, nothing saved but its plot."""

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
