"""`--batch-size auto`: the search for the largest batch that fits, the CUDA step it tries (run on
the CPU with a model that runs out of memory above a size), and the CPU's answer."""

import pytest
import torch
from click.testing import CliRunner

import cvcore
from cvcore.commands.cli import cli
from cvcore.training.batch_size import largest_fitting, step_fits, with_margin


@pytest.mark.parametrize("most", [0, 1, 2, 37, 64, 1000])
def test_the_search_finds_the_largest_size_that_fits(most):
    tried = []

    def fits(size):
        tried.append(size)
        return size <= most

    assert largest_fitting(fits, limit=512) == min(most, 512)
    assert len(tried) <= 2 * 10 + 2  # doubling, then bisection: logarithmic in the limit


def test_the_margin_leaves_a_tenth_and_rounds_to_eights_from_16():
    assert [with_margin(n) for n in (1, 9, 17, 19, 100, 1000)] == [1, 8, 15, 16, 88, 896]


class RunsOutAbove(torch.nn.Module):
    """A classifier that raises CUDA's out-of-memory error for batches above ``most`` images."""

    def __init__(self, most):
        super().__init__()
        self.most, self.linear = most, torch.nn.Linear(3 * 8 * 8, 10)

    def forward(self, images):
        if len(images) > self.most:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.linear(images.flatten(1))


def test_a_probe_step_that_runs_out_of_memory_says_so_and_leaves_no_gradients():
    model = RunsOutAbove(23)
    info = cvcore.DataInfo(num_classes=10, class_names=[str(i) for i in range(10)], in_channels=3, image_size=(8, 8),
                           mean=(0.0,) * 3, std=(1.0,) * 3)
    task = cvcore.task_for(None)
    loss = torch.nn.CrossEntropyLoss()

    def fits(size):
        return step_fits(model, loss, task, info, torch.device("cpu"), None, torch.preserve_format, size)

    assert largest_fitting(fits, limit=4096) == 23
    assert all(p.grad is None for p in model.parameters())


def test_on_the_cpu_auto_says_there_is_nothing_to_probe_and_records_the_size_it_used(in_tmp):
    result = CliRunner().invoke(cli, ["train", "--batch-size", "auto", "--epochs", "1", "--limit-train-batches", "2",
                                      "--run-dir", "r"])
    assert result.exit_code == 0, result.output
    assert "--batch-size auto has nothing to probe on CPU" in result.output and "using 64" in result.output
    assert "batch_size = 64" in (in_tmp / "r" / "config.toml").read_text()  # a resume is the same run


def test_a_batch_size_that_is_neither_a_number_nor_auto_is_refused(in_tmp):
    result = CliRunner().invoke(cli, ["train", "--batch-size", "big"])
    assert result.exit_code == 2 and "'big' is not a whole number or 'auto'" in result.output
