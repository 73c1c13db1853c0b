"""A program with a misspelt keyword: the type checker must refuse it."""

import s3po

conn = s3po.Connection()
conn.upload("bucket", "key", b"data", hedaers={"Cache-Control": "no-cache"})
