"""Damaged checkpoints and configuration files: every one is a clear message and exit 1, never a
traceback. Hand-picked damage first, then seeded random damage to the JSON document and the bytes."""

import json
import random
import struct

import pytest
from click.testing import CliRunner

from cvcore.commands.cli import cli

QUICK = ["--epochs", "1", "--limit-train-batches", "1", "--limit-val-batches", "1"]


def cv(*args):
    return CliRunner().invoke(cli, list(args))


def clean(result):
    """Success, or one message with exit 1: anything but an uncaught exception."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1), result.output
    if result.exit_code:
        assert result.output.startswith("Error: "), result.output
    return result


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("source")
    result = CliRunner().invoke(cli, ["train", *QUICK, "--run-dir", str(folder / "run")])
    assert result.exit_code == 0, result.output
    return (folder / "run" / "checkpoints" / "last.safetensors").read_bytes()


def split(data: bytes) -> tuple[dict, bytes]:
    """A safetensors file: 8-byte header length, JSON header, tensor bytes."""
    length = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + length]), data[8 + length:]


def join(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def with_document(data: bytes, change) -> bytes:
    header, body = split(data)
    document = json.loads(header["__metadata__"]["cvcore"])
    header["__metadata__"]["cvcore"] = change(document) if callable(change) else change
    if not isinstance(header["__metadata__"]["cvcore"], str):
        header["__metadata__"]["cvcore"] = json.dumps(header["__metadata__"]["cvcore"])
    return join(header, body)


def nested(depth: int) -> str:
    return '{"format": "cvcore-checkpoint/1", "x": ' + "[" * depth + "]" * depth + "}"


def replace_tensor_refs(value, new):
    if isinstance(value, dict):
        return {k: (new if k == "__tensor__" else replace_tensor_refs(v, new)) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_tensor_refs(v, new) for v in value]
    return value


DAMAGE = {
    "deeply nested": lambda doc: nested(100_000),
    "missing tensor": lambda doc: {**doc, "state": replace_tensor_refs(doc["state"], "no.such.tensor")},
    "another model": lambda doc: {**doc, "config": {**doc["config"], "model": {"name": "models:mlp"}}},
    "unknown model": lambda doc: {**doc, "config": {**doc["config"], "model": {"name": "nonexistent"}}},
    "no info": lambda doc: {k: v for k, v in doc.items() if k != "info"},
    "info of wrong type": lambda doc: {**doc, "info": {"num_classes": "ten"}},
    "not an object": lambda doc: [1, 2, 3],
    "not JSON": lambda doc: "{nope",
    "state a list": lambda doc: {**doc, "state": []},
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_checkpoint_document_is_one_clear_error(tmp_path, checkpoint_bytes, damage):
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(with_document(checkpoint_bytes, DAMAGE[damage]))
    for command in (["export", str(path), "--format", "safetensors"], ["eval", str(path)]):
        assert clean(cv(*command)).exit_code == 1


def random_damage(document, rng: random.Random):
    """Delete a key, change a value's type, or swap a string, somewhere in the document."""
    def walk(value, depth=0):
        if isinstance(value, dict) and value and rng.random() < 0.8:
            key = rng.choice(sorted(value))
            action = rng.random()
            if action < 0.3:
                return {k: v for k, v in value.items() if k != key}
            if action < 0.6:
                return {**value, key: rng.choice([None, 0, -1, "x", [], {}, 1e300, True])}
            return {**value, key: walk(value[key], depth + 1)}
        if isinstance(value, list) and value:
            index = rng.randrange(len(value))
            return value[:index] + [walk(value[index], depth + 1)] + value[index + 1:]
        return rng.choice([None, 0, "x", [], {}, value])
    return walk(document)


def test_random_damage_to_the_document_never_escapes_as_a_traceback(tmp_path, checkpoint_bytes):
    rng = random.Random(1234)
    for trial in range(40):
        path = tmp_path / f"random-{trial}.safetensors"
        path.write_bytes(with_document(checkpoint_bytes, lambda doc: random_damage(doc, rng)))
        clean(cv("export", str(path), "--format", "safetensors", "--output", str(tmp_path / f"out-{trial}")))


def test_random_bytes_never_escape_as_a_traceback(tmp_path, checkpoint_bytes):
    rng = random.Random(99)
    for trial in range(40):
        data = bytearray(checkpoint_bytes)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[:rng.randrange(len(data))]
        path = tmp_path / f"bytes-{trial}.safetensors"
        path.write_bytes(bytes(data))
        clean(cv("export", str(path), "--format", "safetensors", "--output", str(tmp_path / f"out-{trial}")))


CONFIGS = {
    "not UTF-8": b"[trainer]\nepochs = 1\n# caf\xe9\n",
    "deeply nested": b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "not TOML": b"[trainer\nepochs = ",
    "section not a table": b"model = 3\n",
    "unknown section": b"[trainr]\nepochs = 1\n",
    "name not a string": b"[model]\nname = 3\n",
    "options of a missing scheduler": b"[scheduler]\nname = []\n[scheduler.cosine]\nmin_lr = 0.1\n",
}


@pytest.mark.parametrize("damage", sorted(CONFIGS))
def test_damaged_config_file_is_one_clear_error(in_tmp, damage):
    (in_tmp / "run.toml").write_bytes(CONFIGS[damage])
    assert clean(cv("train", "-c", "run.toml", "--dry-run")).exit_code == 1


def test_random_bytes_in_a_config_never_escape_as_a_traceback(in_tmp):
    base = cv("train", "--print-config").output.encode()
    rng = random.Random(7)
    for trial in range(60):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        (in_tmp / "run.toml").write_bytes(bytes(data))
        clean(cv("train", "-c", "run.toml", "--print-config"))
