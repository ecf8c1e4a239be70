"""Real layers and real models (torch): layers, the MAC counter, tracing, conversion, folding, timing."""
