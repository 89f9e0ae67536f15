"""Where artifacts live (in-cluster MinIO or S3) and the credentials that reach them."""
