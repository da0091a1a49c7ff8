"""World grids, 4x4 spatial matrices, resampling and header orientation."""
