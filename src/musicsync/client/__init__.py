"""The musicsync client: a library over the public gRPC API, and the desktop commands.

Nothing here is imported by `musicsync serve`; the client's own dependencies
(rich, platformdirs, watchfiles) are imported where they are used.
"""
