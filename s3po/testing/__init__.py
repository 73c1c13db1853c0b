"""Tooling for tests and demos of programs that use s3po; never imported by ``import s3po``.

``s3po.testing.server.MotoServer`` runs moto's standalone S3 server on 127.0.0.1.
"""
