"""The plugin contract under real pip-installed distributions: name clashes, a duplicate entry-point
name, a broken import, an undecorated hook, factories that raise or return the wrong thing."""

import json
import tomllib

import pytest
from venvs import make_venv, run_cv, write_project

CURRENT = """\
    import cvcore


    @cvcore.hookimpl
    def register_optimizers(register):
        register("current_sgd", current_sgd)


    def current_sgd(params, *, lr: float = 0.1):
        '''Plain SGD, from a plugin that needs cvcore>=0.1.'''
        import torch

        return torch.optim.SGD(params, lr=lr)
"""

ACME = """\
    import cvcore


    @cvcore.hookimpl
    def register_models(register):
        register("lenet", lenet)             # the same short name as the built-in
        register("needs_timm", needs_timm)
        register("returns_none", returns_none)


    @cvcore.hookimpl
    def register_optimizers(register):
        register("own_lr", own_lr)
        register("no_lr", no_lr)


    @cvcore.hookimpl
    def register_schedulers(register):
        register("halving", halving)


    @cvcore.hookimpl
    def register_callbacks(register):
        register("not_a_callback", not_a_callback)


    @cvcore.hookimpl
    def register_datasets(register):
        register("tuple_data", tuple_data)
        register("bright", bright)


    @cvcore.hookimpl
    def register_tasks(register):
        register("brightness", Brightness)


    @cvcore.hookimpl
    def register_losses(register):
        register("l2", l2, tasks=("brightness",))


    class Brightness(cvcore.Task):
        '''Regress the mean brightness of an image.'''
        default_monitor = "val_mae"
        minimized = ("mae",)

        def metric_names(self, num_classes, detailed):
            return ["loss", "mae"]

        def metrics(self, num_classes, device, detailed):
            return AbsoluteError(device)

        def expected_output(self, info):
            return (2, 1), "(N, 1)"

        def example_target(self, info, batch):
            import torch
            return torch.rand(batch, 1)

        def predict(self, output, images, class_names, *, topk, output_dir):
            return [{"image": str(image), "brightness": float(row[0])} for image, row in zip(images, output)]

        def describe(self, result):
            return f"{result['image']}: brightness {result['brightness']:.3f}"


    class AbsoluteError(cvcore.Metrics):
        def __init__(self, device):
            import torch
            self.sums, self.count = torch.zeros(2, device=device), torch.zeros((), device=device)

        def update(self, output, target, loss):
            import torch
            self.seen += len(target)
            self.sums += torch.stack([loss.detach().float() * len(target), (output.float() - target).abs().sum()])

        def running(self):
            loss, error = self.sums.tolist()
            return loss / max(self.seen, 1), error / max(self.seen, 1)

        def tensors(self):
            self.count.fill_(self.seen)
            return [self.sums, self.count]

        def compute(self, prefix):
            (loss, error), count = self.sums.tolist(), max(self.count.item(), 1.0)
            return {f"{prefix}_loss": loss / count, f"{prefix}_mae": error / count}


    def bright(*, count: int = 256):
        '''Flat grey images with noise; the target is their brightness.'''
        import torch
        generator = torch.Generator().manual_seed(0)
        level = torch.rand(count, 1, generator=generator)
        noise = 0.05 * torch.randn(count, 1, 8, 8, generator=generator)
        images = ((level.view(-1, 1, 1, 1) + noise).clamp(0, 1) * 255).to(torch.uint8)
        info = cvcore.DataInfo(task="acme:brightness", num_classes=1, class_names=["brightness"], in_channels=1,
                               image_size=(8, 8), mean=(0.5,), std=(0.25,))
        half = count // 2
        return cvcore.DataSplits(cvcore.TensorImages(images[half:], level[half:]),
                                 cvcore.TensorImages(images[:half], level[:half]), info)


    def l2():
        '''Mean squared error.'''
        import torch
        return torch.nn.MSELoss()


    def lenet(*, num_classes: int = 10, in_channels: int = 1, image_size: tuple[int, int] = (28, 28)):
        '''Acme's own lenet (a linear layer, in fact).'''
        import torch
        pixels = in_channels * image_size[0] * image_size[1]
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(pixels, num_classes))


    def needs_timm():
        '''A model needing an optional dependency.'''
        import timm_is_not_installed  # noqa: F401


    def returns_none(*, num_classes: int = 10):
        '''Forgets to return.'''


    def own_lr(params, *, lr: float = 0.0123):
        '''SGD with its own default learning rate.'''
        import torch
        return torch.optim.SGD(params, lr=lr)


    def no_lr(params, *, momentum: float = 0.0):
        '''An optimizer with no lr option at all.'''
        import torch
        return torch.optim.SGD(params, lr=0.05, momentum=momentum)


    def halving(optimizer, *, every: int = 1):
        '''Halve the learning rate every epoch.

        :param every: epochs between halvings;
            a continuation line that belongs to the option, not to the description.
        '''
        import torch
        return torch.optim.lr_scheduler.StepLR(optimizer, every, 0.5)


    def not_a_callback():
        '''Returns a plain object.'''
        return object()


    def tuple_data():
        '''Returns (train, val) instead of cvcore.DataSplits.'''
        return ([], [])
    """

SAME_NAME = """\
    import cvcore


    @cvcore.hookimpl
    def register_losses(register):
        register("{name}_loss", lambda: None)
    """

UNDECORATED = """\
    def register_models(register):
        register("ghost", lambda: None)
    """

QUICK = ["--epochs", "1", "--limit-train-batches", "2", "--limit-val-batches", "1"]


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("projects")
    projects = [
        write_project(root, "acme-plugin", "acme", "acme_plugin", ACME),
        write_project(root, "dup-one", "dup", "dup_one", SAME_NAME.format(name="one")),
        write_project(root, "dup-two", "dup", "dup_two", SAME_NAME.format(name="two")),
        write_project(root, "broken-import", "brokenimp", "broken_import", "import not_installed_anywhere\n"),
        write_project(root, "undecorated", "undecorated", "undecorated_plugin", UNDECORATED),
        write_project(root, "from-the-future", "future", "future_plugin", "raise RuntimeError('imported')\n",
                      dependencies=("cvcore>=99", "numpy")),
        write_project(root, "for-this-one", "current", "current_plugin", CURRENT,
                      dependencies=("cvcore>=0.1", "cvcore-extra>=1; extra == 'more'")),
    ]
    return make_venv(tmp_path_factory.mktemp("venv"), *projects)


def failed_cleanly(done, *fragments):
    """Exit 1 with one message (no traceback) holding every fragment."""
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr
    return done.stderr


def test_default_job_is_not_ambiguous_with_a_second_lenet_installed(venv, tmp_path):
    done = run_cv(venv, "train", *QUICK, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.endswith("-digits-lenet")


def test_a_typed_ambiguous_name_lists_the_candidates(venv, tmp_path):
    failed_cleanly(run_cv(venv, "train", "--model", "lenet", cwd=tmp_path), "acme:lenet", "models:lenet")
    assert not (tmp_path / "runs").exists()


def test_qualified_names_round_trip_through_config_resume_and_eval(venv, tmp_path):
    first = run_cv(venv, "train", *QUICK, "--model", "models:lenet", "--scheduler", "acme:halving",
                   "--set", "scheduler.halving.every=2", "--run-dir", "first", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    written = tomllib.loads((tmp_path / "first" / "config.toml").read_text())
    assert written["scheduler"]["name"] == ["acme:halving"] and written["scheduler"]["halving"] == {"every": 2}
    again = run_cv(venv, "train", "-c", "first/config.toml", *QUICK, "--run-dir", "again", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    resumed = run_cv(venv, "train", "--resume", "first", "--epochs", "2", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert len((tmp_path / "first" / "metrics.jsonl").read_text().splitlines()) == 2
    evaluated = run_cv(venv, "eval", "first", "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr


def test_two_distributions_with_one_entry_point_name_are_both_reported(venv):
    plugins = json.loads(run_cv(venv, "plugins", "--json").stdout)
    dups = [p for p in plugins if p["name"] == "dup"]
    assert {p["distribution"] for p in dups} == {"dup-one", "dup-two"}
    assert all("also used by" in p["error"] for p in dups)


def test_list_json_carries_load_failures(venv):
    listing = json.loads(run_cv(venv, "list", "--json").stdout)
    failed = {p["name"]: p["error"] for p in listing["failed_plugins"]}
    assert "ModuleNotFoundError" in failed["brokenimp"]
    assert "without @cvcore.hookimpl" in failed["undecorated"]
    assert set(failed) >= {"dup", "brokenimp", "undecorated"}


def test_a_plugin_for_another_cvcore_is_reported_without_being_imported(venv):
    listing = json.loads(run_cv(venv, "list", "--json").stdout)
    failed = {p["name"]: p["error"] for p in listing["failed_plugins"]}
    assert "it needs cvcore>=99, and this is cvcore " in failed["future"]
    assert "imported" not in failed["future"]  # its module never ran
    assert "current" not in failed  # a plugin whose requirement this cvcore meets loads
    table = run_cv(venv, "plugins", env={"COLUMNS": "250"}).stdout
    assert "needs cvcore>=99" in table


def test_info_on_a_broken_plugin_says_why(venv):
    failed_cleanly(run_cv(venv, "info", "brokenimp:anything"), "failed to load", "not_installed_anywhere")


def test_info_keeps_param_continuations_out_of_the_description(venv):
    done = run_cv(venv, "info", "acme:halving", env={"COLUMNS": "200"})
    description = done.stdout.split("options")[0]
    assert "continuation line" not in description
    assert "continuation line that belongs to the option" in done.stdout


@pytest.mark.parametrize(("args", "fragments"), [
    (["--model", "acme:needs_timm"], ["model 'acme:needs_timm'", "acme-plugin 1.0", "ModuleNotFoundError"]),
    (["--model", "acme:returns_none"], ["returned builtins.NoneType", "must return a torch.nn.Module"]),
    (["--callback", "acme:not_a_callback"], ["must return a cvcore.Callback"]),
    (["--dataset", "acme:tuple_data"], ["returned builtins.tuple", "must return a cvcore.DataSplits"]),
])
def test_factory_failures_are_one_paragraph_and_leave_no_run_directory(venv, tmp_path, args, fragments):
    failed_cleanly(run_cv(venv, "train", *QUICK, *args, "--run-dir", "run", cwd=tmp_path), *fragments)
    assert not (tmp_path / "run").exists()


def test_optimizer_defaults_belong_to_the_optimizer(venv, tmp_path):
    constant = ["--set", "scheduler.name=[]"]
    own = run_cv(venv, "train", *QUICK, *constant, "--optimizer", "acme:own_lr", "--run-dir", "own", cwd=tmp_path)
    assert own.returncode == 0, own.stderr
    row = json.loads((tmp_path / "own" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["lr"] == pytest.approx(0.0123)  # not the default job's 0.002 for adam
    none = run_cv(venv, "train", *QUICK, "--optimizer", "acme:no_lr", "--run-dir", "none", cwd=tmp_path)
    assert none.returncode == 0, none.stderr
    given = run_cv(venv, "train", *QUICK, "--optimizer", "acme:own_lr", "--lr", "0.5", "--print-config", cwd=tmp_path)
    assert given.returncode == 0, given.stderr
    assert "lr = 0.5" in given.stdout  # the configuration a run would record


def test_a_third_party_task_trains_evaluates_predicts_and_exports(venv, tmp_path):
    from PIL import Image

    trained = run_cv(venv, "train", "--dataset", "acme:bright", "--model", "acme:lenet", "--loss", "acme:l2",
                     "--optimizer", "optim:adam", "--epochs", "3", "--run-dir", "run", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "best val_mae" in trained.stdout
    evaluated = json.loads(run_cv(venv, "eval", "run", "--json", cwd=tmp_path).stdout)
    assert set(evaluated["metrics"]) == {"val_loss", "val_mae"}
    Image.new("L", (8, 8), color=200).save(tmp_path / "grey.png")
    predicted = run_cv(venv, "predict", "run", "grey.png", cwd=tmp_path)
    assert predicted.returncode == 0 and "grey.png: brightness" in predicted.stdout, predicted.stderr
    exported = run_cv(venv, "export", "run", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
