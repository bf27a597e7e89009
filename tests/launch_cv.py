"""`cv` with the test plugins registered, for tests that need a process of their own (torchrun,
signals): python launch_cv.py ARGS... MNIST_MIRROR=URL points MNIST's download at a local server."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import probe_plugin  # noqa: E402

from cvcore.commands.cli import main  # noqa: E402
from cvcore.testing import plugin_registered  # noqa: E402

if os.environ.get("MNIST_MIRROR"):
    import json

    from torchvision.datasets import MNIST

    MNIST.mirrors = [os.environ["MNIST_MIRROR"]]
    MNIST.resources = json.loads(os.environ["MNIST_RESOURCES"])

with plugin_registered(probe_plugin, name="probe"):
    main()
