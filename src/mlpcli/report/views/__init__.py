"""Each result type's view: how it shows itself as a JSON record, CSV tables, whole files
and Rich tables."""
