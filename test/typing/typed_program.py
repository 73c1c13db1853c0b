"""A program a type checker must understand: every call's result has its real type.

Checked by test_typing.py with ``mypy --strict``; also run there against the mock.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Optional

import s3po

if TYPE_CHECKING:
    from typing_extensions import assert_type
else:
    def assert_type(value: Any, _: Any) -> Any:
        return value


def main() -> None:
    conn = s3po.Connection(region_name="us-east-1", retry_policy=s3po.RetryPolicy(retries=2))
    with conn.mock(buckets=["typed-bucket"]):
        key = conn.upload("typed-bucket", "a.txt", "hello", headers={"Cache-Control": "no-cache"}, retries=1)
        assert_type(key, s3po.Key)
        data = conn.download("typed-bucket", "a.txt")
        assert_type(data, bytes)
        sink = io.BytesIO()
        assert_type(conn.download("typed-bucket", "a.txt", sink, decompress=False), None)
        assert_type(conn.exists("typed-bucket", "a.txt"), bool)
        assert_type(conn.head("typed-bucket", "a.txt"), s3po.Key)
        assert_type(conn.copy("typed-bucket", "a.txt", "typed-bucket", "b.txt"), s3po.Key)
        assert_type(conn.delete_many("typed-bucket", ["b.txt"]), int)
        background = conn.upload("typed-bucket", "c.txt", b"x", background=True)
        assert_type(background, s3po.Call[s3po.Key])
        conn.wait()

        batch = conn.batch(4)
        assert_type(batch, s3po.Batch)
        with batch:
            handle = batch.upload("typed-bucket", "d.txt", b"data", compress="gzip")
            fetched = batch.download("typed-bucket", "a.txt")
        assert_type(handle, s3po.Call[s3po.Key])
        assert_type(handle.get(), s3po.Key)
        assert_type(fetched.get(), bytes)
        assert_type(handle.value, Optional[s3po.Key])
        for error in batch.errors():
            assert_type(error, s3po.CallError)

        with conn.open("typed-bucket", "a.txt") as stream:
            assert_type(stream, s3po.ObjectStream)
            assert_type(stream.read(), bytes)
        for entry in conn.entries("typed-bucket"):
            assert_type(entry, "s3po.Key | s3po.Prefix")
        for name in conn.list("typed-bucket", "a", delimiter="/"):
            assert_type(name, str)


if __name__ == "__main__":
    main()
