"""hyperfusion.simulate."""
