"""hyperfusion.training."""
