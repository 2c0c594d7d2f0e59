"""hyperfusion.evaluation."""
