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
