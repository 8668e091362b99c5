"""One module per ``trainer`` command; each is a thin Click wrapper over one library function."""
