"""Image files as phones, scanners and archives make them: upright by their EXIF orientation, 16-bit
scaled rather than clipped, folders with link loops or other file kinds, decompression bombs and
extreme strips, all read the same way by the folder cache and by `cv predict`."""

import numpy as np
import pytest
import torch
from PIL import Image

import cvcore
import cvcore.cache as folder_cache
from cvcore.commands.inference import preprocess
from cvcore.images import read_image
from fixtures import write_image_folder


def test_a_phone_portrait_is_read_upright(tmp_path):
    stored = np.zeros((30, 50, 3), np.uint8)  # as the sensor stored it: landscape
    stored[:, :25, 0] = 255  # left half red
    picture = Image.fromarray(stored)
    exif = picture.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    picture.save(tmp_path / "portrait.png", exif=exif)
    Image.fromarray(np.ascontiguousarray(np.rot90(stored, -1))).save(tmp_path / "upright.png")
    assert read_image(tmp_path / "portrait.png").size == (30, 50)
    decoded = folder_cache.decode_image(tmp_path / "portrait.png", 24)
    assert np.array_equal(decoded, folder_cache.decode_image(tmp_path / "upright.png", 24))
    assert decoded[0, :10].mean() > 200 and decoded[0, -10:].mean() < 50  # red on top, as viewed


def test_a_16_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    grey = np.asarray(read_image(tmp_path / "deep.png", channels=1))
    assert np.array_equal(grey, np.round(values / 257).astype(np.uint8))
    assert (grey == 255).mean() < 0.01  # clipping made almost all of it white


def test_a_link_loop_in_a_class_folder_lists_each_image_once(tmp_path):
    root = write_image_folder(tmp_path / "data")
    (root / "train" / "ants" / "again").symlink_to(root / "train" / "ants")
    splits = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    assert len(splits.train) == 6


def test_unknown_kinds_are_named_with_their_counts(tmp_path, capsys):
    root = write_image_folder(tmp_path / "data")
    for name in ("IMG_1.HEIC", "IMG_2.heic", "notes.txt"):
        (root / "train" / "bees" / name).write_bytes(b"\0" * 10)
    cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    err = capsys.readouterr().err
    assert "left out 3 file(s)" in err and "(.heic: 2, .txt: 1)" in err


def test_a_decompression_bomb_is_a_named_error_or_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    root = write_image_folder(tmp_path / "data")
    Image.new("RGB", (200, 200)).save(root / "train" / "ants" / "bomb.png")
    with pytest.raises(cvcore.DataError, match="bomb.png' is too large to decode safely.*skip_unreadable=true"):
        cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36)
    splits = cvcore.create("dataset", "imagefolder", root=root, image_size=32, resize=36, skip_unreadable=True)
    assert len(splits.train) == 6 and "left out 1 unreadable image(s)" in capsys.readouterr().err


def test_a_long_strip_is_not_resized_to_a_million_pixels(tmp_path, monkeypatch):
    Image.fromarray(np.full((1, 4000, 3), 90, np.uint8)).save(tmp_path / "strip.png")
    sizes = []
    resize = torch.nn.functional.interpolate

    def recorded(image, size, **options):
        sizes.append(size)
        return resize(image, size, **options)

    monkeypatch.setattr(torch.nn.functional, "interpolate", recorded)
    decoded = folder_cache.decode_image(tmp_path / "strip.png", 256)
    assert decoded.shape == (3, 256, 384) and (decoded == 90).all()  # its centre, at the stored aspect
    assert max(h * w for h, w in sizes) <= 256 * 256 * 16


def test_predict_reads_a_large_jpeg_as_the_cache_does(tmp_path):
    rng = np.random.default_rng(0)
    smooth = rng.integers(0, 256, (9, 12, 3)).astype(np.uint8)
    photo = Image.fromarray(smooth).resize((1200, 900), Image.BICUBIC)  # JPEG-like content, 4x the size
    for split in ("train", "val"):
        for label in ("a", "b"):
            (tmp_path / "data" / split / label).mkdir(parents=True)
            photo.save(tmp_path / "data" / split / label / "0.jpg", quality=90)
    data = cvcore.create("dataset", "imagefolder", root=tmp_path / "data", image_size=224, resize=256)
    info = {"image_size": [224, 224], "eval_resize": 256, "mean": [0.0] * 3, "std": [1.0] * 3, "in_channels": 3}
    predicted = preprocess([tmp_path / "data" / "val" / "a" / "0.jpg"], info)[0][0]
    (height, width), kept = data.val.extents[0].tolist(), data.val.images[0]
    assert (height, width) == (256, 341)  # the whole 4:3 photo
    top, left = round((height - 224) / 2), round((width - 224) / 2)
    as_bytes = (predicted * 255).round().to(torch.uint8)
    assert torch.equal(as_bytes, kept[:, top:top + 224, left:left + 224])  # one reading, the same pixels


def _edge_photo(path, width, height, edge_x, edge_y, **save):
    """White where x >= edge_x or y >= edge_y, black elsewhere: two edges at known photo pixels."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, edge_x:] = 255
    pixels[edge_y:, :] = 255
    Image.fromarray(pixels).save(path, **save)


def _edges_in_input(image) -> tuple[float, float]:
    """Where the input's first row and first column turn white, at sub-pixel precision (the middle
    of the ramp, in continuous coordinates)."""
    brightness = image.mean(0)
    return (float((brightness[0] < 0.5).sum()), float((brightness[:, 0] < 0.5).sum()))


@pytest.mark.parametrize(("size", "edges", "info_size", "eval_resize", "save"), [
    ((64, 40), (30, 25), (32, 32), None, {}),  # landscape, centre crop of the long side
    ((40, 64), (22, 41), (32, 32), None, {}),  # portrait
    ((1200, 900), (700, 500), (224, 224), 256, {"quality": 95}),  # a JPEG decoded at half size (draft)
    ((900, 30), (450, 10), (24, 24), None, {}),  # a strip longer than MAX_ASPECT: only its centre is read
])
def test_placements_map_input_pixels_back_to_the_photo(tmp_path, size, edges, info_size, eval_resize, save):
    suffix = ".jpg" if save else ".png"
    _edge_photo(tmp_path / f"p{suffix}", *size, *edges, **save)
    info = {"image_size": list(info_size), "eval_resize": eval_resize, "mean": [0.0] * 3, "std": [1.0] * 3,
            "in_channels": 3}
    inputs, (placement,) = preprocess([tmp_path / f"p{suffix}"], info)
    assert placement.original_size == (size[1], size[0]) and placement.input_size == tuple(info_size)
    found_x, found_y = placement.to_original(*_edges_in_input(inputs[0]))
    scale_x, scale_y = placement.scale
    assert abs(found_x - edges[0]) <= max(1.0, scale_x)  # within one input pixel, as a photo pixel
    assert abs(found_y - edges[1]) <= max(1.0, scale_y)


def test_a_turned_phone_photo_is_placed_upright(tmp_path):
    stored = np.zeros((30, 50, 3), np.uint8)
    picture = Image.fromarray(stored)
    exif = picture.getexif()
    exif[0x0112] = 6  # stored landscape, viewed portrait
    picture.save(tmp_path / "portrait.png", exif=exif)
    info = {"image_size": [24, 24], "eval_resize": None, "mean": [0.0] * 3, "std": [1.0] * 3, "in_channels": 3}
    _, (placement,) = preprocess([tmp_path / "portrait.png"], info)
    assert placement.original_size == (50, 30)  # as viewed: 50 high, 30 wide
    assert placement.box == pytest.approx((0.0, 10.0, 30.0, 40.0), abs=0.01)  # the centre 30 x 30


@pytest.mark.parametrize("orientation", [1, 3, 6])
@pytest.mark.parametrize(("mode", "channels"), [("RGB", 3), ("L", 3), ("L", 1)])
def test_jpegs_decoded_by_torchvision_have_pils_pixels(tmp_path, orientation, mode, channels):
    """JPEGs that draft mode would not reduce are decoded by torchvision's libjpeg-turbo: exactly the
    pixels PIL gives (upright, grey or colour), resized alike."""
    from torchvision.transforms.v2 import functional as TF

    from cvcore.images import read_stored

    rng = np.random.default_rng(orientation)
    coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((160, 120), Image.BICUBIC)
    picture = coarse.convert(mode)
    exif = picture.getexif()
    exif[0x0112] = orientation
    picture.save(tmp_path / "photo.jpg", exif=exif, quality=90)
    stored, placement = read_stored(tmp_path / "photo.jpg", channels, 96)
    pil = TF.pil_to_tensor(read_image(tmp_path / "photo.jpg", channels))
    expected = torch.nn.functional.interpolate(pil.unsqueeze(0), placement.input_size, mode="bilinear",
                                               antialias=True)[0]
    assert stored.shape[-2:] == ((128, 96) if orientation == 6 else (96, 128))
    assert torch.equal(stored, expected)


def test_without_torchvisions_decoder_jpegs_are_read_by_pil_alike(tmp_path, monkeypatch):
    """torchvision deprecates its decoders: where they are gone, PIL reads the same pixels."""
    import cvcore.images

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "a.jpg")
    with_torchvision, _ = cvcore.images.read_stored(tmp_path / "a.jpg", 3, 40)
    monkeypatch.setattr(cvcore.images, "_torchvision_jpeg_decoder", lambda: None)
    assert torch.equal(cvcore.images.read_stored(tmp_path / "a.jpg", 3, 40)[0], with_torchvision)
