"""The symbolic core: specs, formulas, the kinds registry, models and plans as data, counting. Imports no torch."""
