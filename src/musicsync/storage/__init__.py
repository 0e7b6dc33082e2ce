"""Content-addressed blob stores: the interface and its backends."""

from .base import BlobMissing, BlobStore, StagedBlob, is_sha256_hex

__all__ = ["BlobMissing", "BlobStore", "StagedBlob", "is_sha256_hex", "open_blob_store"]


def open_blob_store(settings, metrics=None) -> BlobStore:
    """The configured backend: S3/MinIO when S3_ENDPOINT is set, else DATA_DIR/blobs."""
    if settings.s3_endpoint:
        from .s3 import S3BlobStore  # imported only when used: keeps minio off a local setup
        return S3BlobStore.from_settings(settings, metrics=metrics)
    from .local import LocalBlobStore
    return LocalBlobStore(settings.data_dir / "blobs", metrics=metrics)
