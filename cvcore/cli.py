"""The `cv` command. Each command reads its options and calls the library; the logic lives there.

Shell completion: ``eval "$(_CV_COMPLETE=bash_source cv)"`` (zsh: ``zsh_source``, fish: ``fish_source``).
"""

from __future__ import annotations

import json
import os
import sys

import click

import cvcore
from cvcore.errors import CvcoreError
from cvcore.loader import registry
from cvcore.registry import KINDS

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _console():
    from rich.console import Console

    return Console(soft_wrap=False)


class CvGroup(click.Group):
    """Turns CvcoreError into a one-paragraph message and exit status 1 (CVCORE_DEBUG=1: traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CvcoreError as exc:
            if os.environ.get("CVCORE_DEBUG") == "1":
                raise
            raise click.ClickException(str(exc)) from None


@click.group(cls=CvGroup, context_settings=CONTEXT)
@click.version_option(cvcore.__version__, "--version", prog_name="cvcore")
@click.option("--strict-plugins", is_flag=True, envvar="CVCORE_STRICT_PLUGINS",
              help="Exit with status 2 if any plugin fails to load (env: CVCORE_STRICT_PLUGINS=1).")
def cli(strict_plugins: bool) -> None:
    """cvcore: compose image-training runs from registered components.

    Plugins are found in the `cvcore.plugins` entry-point group. Choose which load with
    CVCORE_LOAD_PLUGINS=a,b (empty: none) and skip some with CVCORE_DISABLE_PLUGINS=a,b.
    Set CVCORE_DEBUG=1 to see tracebacks.
    """
    if strict_plugins and registry().failures:
        from cvcore.report import print_failures

        print_failures(_console(), registry())
        raise SystemExit(2)


@cli.command("list")
@click.argument("kind", required=False)
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of tables.")
def list_command(kind: str | None, pattern: str | None, as_json: bool) -> None:
    """List registered components, optionally of one KIND and matching PATTERN (fnmatch).

    Examples: cv list; cv list model; cv list model 'res*' --json; cv list 'tv/*'.
    """
    from cvcore.report import component_json, print_components

    if kind is not None and kind not in KINDS and pattern is None:
        kind, pattern = None, kind  # `cv list 'res*'`: one argument that is not a kind
    components = cvcore.list_components(kind, pattern)
    if as_json:
        conflicts = registry().conflicts()
        click.echo(json.dumps([component_json(c, conflicts) for c in components], indent=2))
        return
    if not components:
        from cvcore.errors import did_you_mean

        hint = did_you_mean(pattern, KINDS) if pattern else ""
        click.echo(f"No components match {pattern or kind!r}.{hint} Kinds: {', '.join(KINDS)}.")
    print_components(_console(), components, registry())


@cli.command()
@click.argument("name")
def info(name: str) -> None:
    """Show the documentation and options of one component: NAME, KIND/NAME or PLUGIN:NAME."""
    from cvcore.report import print_component

    print_component(_console(), find_any_kind(name))


def find_any_kind(name: str):
    """Resolve NAME across kinds; 'KIND/NAME' picks the kind when a name exists in several."""
    kind, _, rest = name.partition("/")
    if kind in KINDS and rest:
        return cvcore.get_component(kind, rest)
    found = [c for c in registry().components if name in (c.name, c.qualified_name, *c.aliases)]
    kinds = sorted({c.kind for c in found})
    if len(kinds) > 1:
        raise cvcore.AmbiguousNameError(
            f"'{name}' names a component of several kinds ({', '.join(kinds)}): "
            f"write KIND/NAME, e.g. 'cv info {kinds[0]}/{name}'."
        )
    if kinds:
        return cvcore.get_component(kinds[0], name)
    from cvcore.errors import did_you_mean

    names = {n for c in registry().components for n in (c.name, c.qualified_name)}
    raise cvcore.UnknownNameError(f"Unknown component '{name}'.{did_you_mean(name, names)} See 'cv list'.")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List installed plugins: distribution, version, what each registers, and load errors."""
    from cvcore.report import plugin_json, print_plugins

    reg = registry()
    if as_json:
        click.echo(json.dumps([plugin_json(p, reg) for p in reg.plugins], indent=2))
    else:
        print_plugins(_console(), reg)


@cli.command()
def doctor() -> None:
    """Report python, torch, torchvision, devices and every plugin with its import time."""
    from cvcore.doctor import print_doctor

    print_doctor(_console(), registry())


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="cv")


if __name__ == "__main__":
    sys.exit(main())
