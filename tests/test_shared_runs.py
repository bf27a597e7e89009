"""Run directories and files from other people: cvcore never writes through a link in a run
directory, keeps only numbers from a checkpoint's history, never downloads on a checkpoint's word,
and answers a hostile ONNX file with one paragraph."""

import json
import os

import pytest
from click.testing import CliRunner
from PIL import Image

from cvcore import checkpoint as ckpt
from cvcore.commands.cli import cli

SHORT = ["--epochs", "1", "--limit-train-batches", "2"]


def cv(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


@pytest.fixture
def run(in_tmp):
    result = cv("train", *SHORT, "--run-dir", "shared")
    assert result.exit_code == 0, result.output
    return in_tmp / "shared"


def plant_links(run, victims):
    """Replace run files (and files the commands will write) with links to files outside the run."""
    links = {}
    for name in ("metrics.jsonl", "summary.json", "config.toml", "checkpoints/confusion.png",
                 "checkpoints/best.weights.safetensors", "checkpoints/best.onnx"):
        target = run / name
        victim = victims / name.replace("/", "_")
        victim.write_text(target.read_text() if target.is_file() and name == "config.toml" else "precious\n")
        target.unlink(missing_ok=True)
        target.symlink_to(victim)
        links[target] = victim
    return links


def test_eval_export_and_resume_never_write_through_links(run, in_tmp):
    victims = in_tmp / "home"
    victims.mkdir()
    links = plant_links(run, victims)
    before = {victim: victim.read_bytes() for victim in links.values()}
    for args in (["eval", run], ["export", run, "--format", "safetensors"], ["export", run],
                 ["train", "--resume", run, "--epochs", "2"]):
        result = cv(*args)
        assert result.exit_code == 0, (args, result.output)
    assert {victim: victim.read_bytes() for victim in links.values()} == before
    assert all(path.is_file() and not path.is_symlink() for path in links)
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_appending_to_a_linked_metrics_file_is_refused(run, in_tmp):
    from cvcore.files import append_text
    from cvcore.errors import DataError

    victim = in_tmp / "victim"
    victim.write_text("precious\n")
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(victim)
    with pytest.raises(DataError, match="symbolic link"):
        append_text(run / "metrics.jsonl", "{}\n")
    assert victim.read_text() == "precious\n"


def test_a_checkpoints_history_gives_only_numbers_to_the_metrics_file(run):
    last = run / "checkpoints" / "last.safetensors"
    saved = ckpt.load(last)
    state = saved.state()
    state["history"][0]["note"] = "$(touch pwned)"
    state["history"][0]["val_loss"] = "`reboot`"
    ckpt.save(last, state, **{k: v for k, v in saved.document.items() if k not in ("format", "state")})
    result = cv("train", "--resume", run, "--epochs", "2", "--callback", "csv")
    assert result.exit_code == 0, result.output
    for name in ("metrics.jsonl", "metrics.csv", "summary.json"):
        text = (run / name).read_text()
        assert "pwned" not in text and "reboot" not in text, name
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["train_loss"] > 0


def test_export_refuses_to_overwrite_a_runs_checkpoint(run):
    best = run / "checkpoints" / "best.safetensors"
    before = best.read_bytes()
    for fmt in ("safetensors", "onnx"):
        result = cv("export", run, "--format", fmt, "--output", best)
        assert result.exit_code != 0 and "would overwrite" in result.output, result.output
    assert best.read_bytes() == before


def test_eval_never_downloads_on_a_checkpoints_word(run, in_tmp):
    last = run / "checkpoints" / "last.safetensors"
    saved = ckpt.load(last)
    document = {k: v for k, v in saved.document.items() if k not in ("format", "state")}
    document["config"]["dataset"] = {"name": "mnist", "root": str(in_tmp / "elsewhere" / "data"), "download": True}
    ckpt.save(last, saved.state(), **document)
    result = cv("eval", run, "--checkpoint", "last")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not (in_tmp / "elsewhere").exists()


def test_a_run_dir_under_home_is_expanded(in_tmp, monkeypatch):
    monkeypatch.setenv("HOME", str(in_tmp / "home"))
    result = cv("train", "--set", "trainer.run_dir=~/runs/a", *SHORT)  # as run_dir = "~/runs/a" in TOML
    assert result.exit_code == 0, result.output
    assert (in_tmp / "home" / "runs" / "a" / "config.toml").is_file() and not (in_tmp / "~").exists()


@pytest.mark.parametrize("damage", ["garbage", "metadata"])
def test_a_hostile_onnx_file_gets_one_paragraph(run, in_tmp, damage):
    import onnx

    model = in_tmp / "model.onnx"
    if damage == "garbage":
        model.write_bytes(b"\x08\x07" + os.urandom(300))
    else:
        assert cv("export", run, "--output", model).exit_code == 0
        proto = onnx.load(str(model))
        onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props},
                                            "image_size": "[-5, 100000000]", "mean": '"x"'})
        onnx.save(proto, str(model))
    Image.new("L", (8, 8)).save(in_tmp / "digit.png")
    result = cv("predict", model, in_tmp / "digit.png")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ("not an ONNX model" if damage == "garbage" else "values out of range") in result.output
