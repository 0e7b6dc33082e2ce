"""musicsync: self-hosted music library sync over gRPC."""

__version__ = "0.1.0"
