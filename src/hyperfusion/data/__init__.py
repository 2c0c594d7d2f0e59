"""hyperfusion.data."""
