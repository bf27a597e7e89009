"""Pictures of predictions: de-normalised validation images with their labels drawn under them."""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw
from torchvision.transforms.v2.functional import to_pil_image

TILE, LABEL = 96, 28


def denormalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """Undo Normalize(mean, std): back to [0, 1] pixels."""
    mean = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images * std + mean).clamp(0, 1)


def prediction_grid(trainer, count: int) -> Image.Image:
    info = trainer.data.info
    images, targets = zip(*(trainer.data.val[i] for i in range(min(count, len(trainer.data.val)))))
    batch, _, _ = trainer.prepare(torch.stack(images), torch.as_tensor([int(t) for t in targets]), train=False)
    model = trainer.module
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        predicted = model(batch).argmax(dim=1).tolist()
    model.train(was_training)
    pixels = denormalize(batch.float(), info.mean, info.std).cpu()
    columns = min(8, len(images))
    rows = -(-len(images) // columns)
    grid = Image.new("RGB", (columns * TILE, rows * (TILE + LABEL)), "white")
    draw = ImageDraw.Draw(grid)
    for index, (image, truth, guess) in enumerate(zip(pixels, targets, predicted)):
        x, y = (index % columns) * TILE, (index // columns) * (TILE + LABEL)
        grid.paste(to_pil_image(image).convert("RGB").resize((TILE, TILE), Image.NEAREST), (x, y))
        colour = (0, 128, 0) if guess == int(truth) else (200, 0, 0)
        draw.text((x + 2, y + TILE + 1), f"pred {info.class_names[guess]}"[:15], fill=colour)
        draw.text((x + 2, y + TILE + 13), f"true {info.class_names[int(truth)]}"[:15], fill=(0, 0, 0))
    return grid
