"""Recovery: the only package that changes the world (relaunch, re-point, retire)."""
