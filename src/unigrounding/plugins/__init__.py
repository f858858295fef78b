"""Plugins: adapters to heavy third-party models (SAM), the worked example
of an out-of-tree codec, and the loading of plugins from outside the library
(:mod:`~.loading`: entry points, ``--plugins``, ``UNIGROUNDING_PLUGINS``)."""
