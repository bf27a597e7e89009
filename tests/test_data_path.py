"""The in-memory data path: same augmentation distribution as the PIL pipeline, same validation pixels."""

import pytest
import torch
from PIL import Image
from torchvision import transforms as T

import cvcore
from cvcore.training.preparation import Preparation
from cvcore.training.tensor_data import TensorImages
from fixtures import augmented, install_mnist, trust_cifar_fixture, write_cifar10

SAMPLES = 6000


def marker_images(count: int) -> torch.Tensor:
    """Black 32x32 images with one white pixel at (row 10, column 20)."""
    images = torch.zeros(count, 3, 32, 32, dtype=torch.uint8)
    images[:, :, 10, 20] = 255
    return images


def histogram(positions: list[tuple[int, int]]) -> dict:
    counts: dict = {}
    for position in positions:
        counts[position] = counts.get(position, 0) + 1
    return {key: value / len(positions) for key, value in counts.items()}


def marker_positions(batch: torch.Tensor) -> list[tuple[int, int]]:
    flat = batch[:, 0].flatten(1).argmax(1)
    return [(int(i) // 32, int(i) % 32) for i in flat]


def test_the_default_cifar_transforms_match_the_pil_pipeline_in_distribution(tmp_path, monkeypatch):
    trust_cifar_fixture(monkeypatch, write_cifar10(tmp_path))
    defaults = cvcore.create("dataset", "cifar10", root=tmp_path).transforms
    data = TensorImages(marker_images(SAMPLES), torch.zeros(SAMPLES, dtype=torch.long))
    batch, _ = augmented(data, defaults)
    ours = histogram(marker_positions(batch))
    torch.manual_seed(0)
    pipeline = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])
    picture = Image.fromarray(marker_images(1)[0].permute(1, 2, 0).numpy())
    tutorial = histogram(marker_positions(torch.stack([pipeline(picture) for _ in range(SAMPLES)])))
    # 9 x 9 shifts x 2 flips = 162 equally likely outcomes in both pipelines.
    assert len(ours) == len(tutorial) == 162
    total_variation = 0.5 * sum(abs(ours.get(k, 0) - tutorial.get(k, 0)) for k in set(ours) | set(tutorial))
    assert total_variation < 0.12


def test_shifts_are_per_image_not_per_batch():
    data = TensorImages(marker_images(64), torch.zeros(64, dtype=torch.long))
    batch, _ = augmented(data, [("pad_crop", {})], seed=1)
    assert len(set(marker_positions(batch))) > 20


def test_mask_crop_pads_with_ignore_and_moves_with_the_image():
    images = marker_images(200)
    masks = torch.zeros(200, 32, 32, dtype=torch.long)
    masks[:, 10, 20] = 3
    data = TensorImages(images, masks)
    batch, targets = augmented(data, [("flip", {}), ("pad_crop", {"ignore_index": 255})], seed=2, std=1 / 255)
    assert torch.equal(batch[:, 0] > 127, targets == 3)
    assert (targets == 255).any() and set(targets.unique().tolist()) <= {0, 3, 255}


def _val_pairs(name, root):
    pil = cvcore.create("dataset", name, root=root, pipeline="pil").val
    tensor = cvcore.create("dataset", name, root=root, pipeline="tensor").val
    (batch, targets), = tensor.on_device(torch.device("cpu")).batches(len(tensor), shuffle=False)
    info = cvcore.create("dataset", name, root=root, pipeline="tensor").info
    batch, targets, _ = Preparation(info, torch.device("cpu"))(batch, targets, train=False)
    reference = torch.stack([pil[i][0] for i in range(len(pil))])
    return batch, reference, targets, torch.tensor([pil[i][1] for i in range(len(pil))])


def test_cifar_validation_images_agree_between_paths(tmp_path, monkeypatch):
    trust_cifar_fixture(monkeypatch, write_cifar10(tmp_path))
    batch, reference, targets, labels = _val_pairs("cifar10", tmp_path)
    assert (batch - reference).abs().max() <= 1e-6 and torch.equal(targets, labels)


def test_mnist_validation_images_agree_between_paths(tmp_path):
    batch, reference, targets, labels = _val_pairs("mnist", install_mnist(tmp_path, "MNIST"))
    assert (batch - reference).abs().max() <= 1e-6 and torch.equal(targets, labels)


def test_processes_take_disjoint_shards_covering_the_data():
    data = TensorImages(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous(),
                        torch.arange(10))
    device = data.on_device(torch.device("cpu"))
    shards = [torch.cat([t for _, t in device.batches(3, shuffle=True, rank=rank, world_size=2,
                                                       generator=torch.Generator().manual_seed(5))]) for rank in (0, 1)]
    assert sorted(torch.cat(shards).tolist()) == list(range(10)) and len(shards[0]) == 5


@pytest.mark.parametrize("tensor_loader", [True, False])
def test_trainer_runs_both_paths(tensor_loader):
    data = cvcore.create("dataset", "digits", image_size=16)
    model = cvcore.create("model", "lenet", num_classes=10, in_channels=1, image_size=(16, 16))
    trainer = cvcore.Trainer(model=model, loss=torch.nn.CrossEntropyLoss(), data=data,
                             optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                             options=cvcore.TrainerOptions(epochs=1, device="cpu", tensor_loader=tensor_loader))
    summary = trainer.fit()
    assert type(trainer.train_loader).__name__ == ("DeviceLoader" if tensor_loader else "DataLoader")
    assert summary["last"]["val_acc1"] > 0.1
