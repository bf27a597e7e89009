"""`cv doctor`: the environment a run would see, for bug reports."""

from __future__ import annotations

import platform

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cvcore.plugins.registry import Registry


def environment() -> dict[str, str]:
    """Versions and devices, as text; imports torch."""
    import torch
    import torchvision

    facts = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda available": str(torch.cuda.is_available()),
        "mps available": str(torch.backends.mps.is_available()),
    }
    for index in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(index)
        facts[f"cuda:{index}"] = (f"{torch.cuda.get_device_name(index)}, capability {major}.{minor}, "
                                  f"bf16 {torch.cuda.is_bf16_supported()}")
    return facts


def print_doctor(console: Console, registry: Registry) -> None:
    table = Table(title="environment", title_justify="left", show_header=False)
    for key, value in environment().items():
        table.add_row(key, escape(value))
    console.print(table)
    plugins = Table(title="plugins", title_justify="left")
    for column in ("plugin", "provider", "import time", "status"):
        plugins.add_column(column)
    for plugin in registry.plugins:
        plugins.add_row(escape(plugin.name), escape(plugin.provider), f"{plugin.import_seconds * 1000:.1f} ms",
                        f"[red]{escape(plugin.error)}[/]" if plugin.error else "ok")
    console.print(plugins)
