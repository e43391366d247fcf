"""Planning studies: capacity per power budget, grid headroom, scenario sweeps."""
