"""Shared test settings: one torch thread (tests time nothing; tiny tensors on two threads spend their time
synchronising threads, not computing)."""

import torch

torch.set_num_threads(1)
