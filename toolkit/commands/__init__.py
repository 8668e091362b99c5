"""One module per CLI command; each is a thin Click wrapper over one library function."""
