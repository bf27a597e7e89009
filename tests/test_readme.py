"""What the README shows runs as shown."""

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_python_api_example_trains(in_tmp):
    code = re.search(r"### Python API\n\n```python\n(.*?)```", README, re.S).group(1)
    namespace: dict = {}
    exec(code.replace("epochs=5", "epochs=1"), namespace)
    assert [type(t).__name__ for t in namespace["transforms"]] == ["PadCrop", "CutMix"]
    assert namespace["transforms"][1].p == 0.3 and namespace["transforms"][1].num_classes == 10


def test_every_built_in_transform_is_in_the_readme_table():
    import cvcore

    table = re.search(r"\| transform \| what it does.*?\n\n", README, re.S).group(0)
    listed = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
    assert listed == {c.name for c in cvcore.list_components("transform") if c.plugin.name == "transforms"}


def test_the_using_it_commands_run_in_sequence(in_tmp):
    # Each line of the README's command block, as written, on a short run of the default job and a
    # photo; shortened only in epochs, and without the lines that need downloaded data.
    import shlex

    import numpy as np
    from click.testing import CliRunner
    from PIL import Image

    from cvcore.commands.cli import cli

    block = re.search(r"## Using it\n\n```bash\n(.*?)```", README, re.S).group(1)
    commands = [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("cv ")]
    runner = CliRunner()
    for run in ("runs/RUN", "runs/RUN_A", "runs/RUN_B"):
        assert runner.invoke(cli, ["train", "--epochs", "1", "--limit-train-batches", "3", "--run-dir", run]).exit_code == 0
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)).save("cat.jpg")
    (in_tmp / "photos").mkdir()
    Image.new("RGB", (20, 20)).save(in_tmp / "photos" / "dog.png")
    ran = 0
    for command in commands:
        if "--data-dir data" in command:
            continue  # CIFAR-10 is not downloaded here
        args = [{"20": "2", "+10": "+1"}.get(arg, arg) for arg in shlex.split(command)[1:]]  # extensions, shorter
        if args[:1] == ["train"] and "--resume" not in args and "--print-config" not in args and "--dry-run" not in args:
            args += ["--epochs", "1", "--limit-train-batches", "2"]
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (command, result.output)
        ran += 1
    assert ran == len(commands) - 1
