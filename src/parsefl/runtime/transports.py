"""Importing this module registers every network transport in ``TRANSPORTS`` (one import line
per transport; :mod:`parsefl.registry` imports it on first read). A plugin registers its own."""

from parsefl.runtime import distributed, grpc_transport  # noqa: F401
