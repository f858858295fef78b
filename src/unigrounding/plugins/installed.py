"""Importing this module loads the installed plugins and those named in
``UNIGROUNDING_PLUGINS`` (:mod:`~.loading`): the registries list it among
their ``locations``, so it runs the first time a name is looked up."""

from .loading import load_plugins

load_plugins()
