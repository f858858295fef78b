"""Plugins: codecs, decoders, proposers (any registered part) from outside
the library, loaded without editing it.

Three ways, all ending in an import whose ``@CODECS.register_module()``
decorators (or those of any other registry) run:

* an installed package declares an entry point in the group
  ``unigrounding.plugins``, naming a module (or a callable, which is called)::

      [project.entry-points."unigrounding.plugins"]
      my_codec = "my_package.my_codec"

* ``--plugins MODULE_OR_FILE`` on any ``unigrounding`` command (a dotted
  module name, importable from the working directory, or a ``.py`` file);
  the command passes them on to the processes it starts through
  ``UNIGROUNDING_PLUGINS`` (names separated by ``os.pathsep``);
* ``custom_imports`` in a config, mmengine's own way.

The registries load the first two the first time anything is looked up in
them (they list this module among their ``locations``), so a plugin's names
resolve in configs, in ``unigrounding codecs``, in ``ablate`` and in the
conformance suite alike. Importing a plugin runs its code: install or name
only plugins you trust.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path

#: the entry-point group installed packages register their plugins under
ENTRY_POINT_GROUP = "unigrounding.plugins"

#: modules or files to load in every process, separated by ``os.pathsep``
ENV_VAR = "UNIGROUNDING_PLUGINS"

_loaded: set[str] = set()


class PluginError(ImportError):
    """A plugin that cannot be imported; the message names it and its source."""


def load_plugins(modules: Iterable[str] = ()) -> list[str]:
    """Import the installed entry points, the plugins named in
    ``UNIGROUNDING_PLUGINS`` and ``modules`` (each once per process);
    returns what this call imported.

    Raises:
        PluginError: a plugin that fails to import, naming it and where it
            was declared.
    """
    fresh = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        key = f"entry point {point.name} = {point.value}"
        if key in _loaded:
            continue
        _loaded.add(key)
        try:
            target = point.load()
        except Exception as err:
            package = point.dist.name if point.dist else "?"
            raise PluginError(f"plugin {key} (package {package}) failed to import: {err}") from err
        if callable(target):
            target()
        fresh.append(point.value)
    for name in [*_named_in_env(), *modules]:
        if name in _loaded:
            continue
        _loaded.add(name)
        _import(name)
        fresh.append(name)
    return fresh


def share_with_subprocesses(modules: Iterable[str]) -> None:
    """Name ``modules`` in ``UNIGROUNDING_PLUGINS`` for the processes this one
    starts (training lanes, torchrun workers)."""
    named = _named_in_env()
    named += [m for m in modules if m not in named]
    os.environ[ENV_VAR] = os.pathsep.join(named)


def _named_in_env() -> list[str]:
    return [m for m in os.environ.get(ENV_VAR, "").split(os.pathsep) if m]


def _import(name: str) -> None:
    """A dotted module name, or a ``.py`` file, imported."""
    try:
        if name.endswith(".py"):
            path = Path(name).resolve()
            if not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            spec = importlib.util.spec_from_file_location(f"unigrounding_plugin_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return
        if "" not in sys.path and os.getcwd() not in sys.path:
            # as ``python -m`` does: a module beside the user is importable
            sys.path.insert(0, os.getcwd())
        importlib.import_module(name)
    except PluginError:
        raise
    except Exception as err:
        raise PluginError(f"plugin {name!r} failed to import: {err}") from err
