"""cvcore: a plugin-first computer-vision training framework for PyTorch.

Importing cvcore is cheap: torch is imported only when something is built or trained.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

from cvcore.api import create, create_transforms, get_component, list_components
from cvcore.callbacks import Callback
from cvcore.data import CacheMode, DataInfo, DataSplits, Interpolation, Placement
from cvcore.deprecations import CvcoreDeprecationWarning
from cvcore.errors import (
    AmbiguousNameError,
    ConfigError,
    CvcoreError,
    DataError,
    OptionError,
    PluginError,
    UnknownNameError,
    UnreadableImageError,
)
from cvcore.plugins.options import Between, Named
from cvcore.tasks import Metrics, Monitor, Task, metric_mode, task_for, task_name
from cvcore.training.options import TrainerOptions
from cvcore.transforms import Transform, crop_windows, move_points, take_images

hookimpl = pluggy.HookimplMarker("cvcore")

try:
    __version__ = version("cvcore")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "IGNORE_INDEX", "AmbiguousNameError", "Between", "CacheMode", "Callback", "ConfigError", "CvcoreDeprecationWarning",
    "CvcoreError", "DataError", "DataInfo", "DataSplits", "Interpolation", "Metrics", "Monitor", "Named", "OptionError", "Placement",
    "PluginError", "Task", "TensorImages", "Trainer", "TrainerOptions", "Transform", "UnknownNameError", "UnreadableImageError",
    "__version__",
    "create", "create_transforms", "crop_windows", "get_component", "hookimpl", "list_components", "metric_mode", "move_points",
    "take_images", "task_for", "task_name",
]


_LAZY = {"Trainer": "cvcore.training.trainer", "TensorImages": "cvcore.training.tensor_data",
         "IGNORE_INDEX": "cvcore.training.tensor_data"}


def __getattr__(name: str):
    # These import torch: load them only when asked for.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cvcore' has no attribute {name!r}")
