"""When two stored objects hold the same bytes: one rule for copy_tree's sync and copy_prefix.

The same size and the same ETag say so from a listing alone. ETags cannot tell when
one object was uploaded in parts and the other not (a server-side copy is one part):
each ETag is then a digest of other pieces. Their full-object checksums can, where
the store keeps them (S3 does, and carries them through a copy): one HEAD each, asked
only for such a pair.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .errors import S3POException
from .parts import multipart_part_count
from .records import Key

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["etags_cannot_tell", "identical", "same_listing"]


def same_listing(size: Optional[int], etag: Optional[str], other_size: Optional[int],
                 other_etag: Optional[str]) -> bool:
    """The same size and the same ETag."""
    return size is not None and size == other_size and etag is not None and etag == other_etag


def etags_cannot_tell(size: Optional[int], etag: Optional[str], other_size: Optional[int],
                      other_etag: Optional[str]) -> bool:
    """Objects of one size whose ETags differ, one of them (at least) a digest of parts."""
    return (size is not None and size == other_size and etag != other_etag
            and (multipart_part_count(etag) is not None or multipart_part_count(other_etag) is not None))


def identical(connection: "Connection", source: Key, target: Key) -> bool:
    """``source`` and ``target`` hold the same bytes, as far as the store can say.

    By their listings; where ETags cannot tell, by the full-object checksums a HEAD of
    each returns. A HEAD that fails, or a store that keeps no checksum, says no: the
    object is copied again, as it would have been.
    """
    if same_listing(source.size, source.etag, target.size, target.etag):
        return True
    if not etags_cannot_tell(source.size, source.etag, target.size, target.etag):
        return False
    try:
        mine = connection._stored_checksum(source.bucket, source.key)
        theirs = connection._stored_checksum(target.bucket, target.key) if mine is not None else None
    except S3POException:
        return False
    return mine is not None and mine == theirs
