"""Importing this module imports every codec module and package of
:mod:`unigrounding.codecs` (their registrations run), and the proposer
detection stage that ``region_proxy`` and ``token_collective`` share
(:mod:`unigrounding.proposers.pretrain`: the proposers package cannot import
it, as the grounding model imports that package). The registries list it
among their ``locations``."""

import importlib
import pkgutil

from ..proposers import pretrain as _proposer_stage  # noqa: F401  (registration)
from . import __path__ as _path

#: modules of the package that are no codec
_CORE = {"all", "base", "catalog"}

for _info in pkgutil.iter_modules(_path):
    if _info.name not in _CORE:
        importlib.import_module(f"{__package__}.{_info.name}")
