"""hyperfusion.models."""
