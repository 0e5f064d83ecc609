"""One module per command; `cli` registers them on the app."""
