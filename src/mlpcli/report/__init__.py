"""What the user sees: tables and notes on the terminal, JSON/CSV records, pictures, progress,
and the files written."""
