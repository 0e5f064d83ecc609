"""Runs over several processes: which rank this is, the launcher, the process group, the
parallel modes."""
