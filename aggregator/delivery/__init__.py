"""Nightly delivery of site workbooks: build, upload to S3, presigned link, optional e-mail."""
