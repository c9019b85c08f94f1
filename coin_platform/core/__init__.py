"""Pure values every layer shares (intervals, symbols, signal names, time); no I/O, no imports of the project."""
