"""Importing this module imports every codec module and package of
:mod:`unigrounding.codecs` (their registrations run). The registries list it
among their ``locations``."""

import importlib
import pkgutil

from . import __path__ as _path

#: modules of the package that are no codec
_CORE = {"all", "base", "catalog"}

for _info in pkgutil.iter_modules(_path):
    if _info.name not in _CORE:
        importlib.import_module(f"{__package__}.{_info.name}")
